//! candle's own quantized llama path on a GGUF, timed: a 128-token prompt, then
//! greedy decoding. Built twice (portable, and with `-C target-cpu=native`) to
//! measure what compile-time CPU features give candle's kernels, which pick
//! their SIMD code at compile time. Usage: `candle-flags MODEL.gguf [TOKENS] [RUNS]`.

use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: candle-flags MODEL.gguf [TOKENS] [RUNS]"))?;
    let tokens: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let runs: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let device = Device::Cpu;
    let mut file = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut file)?;
    let vocab = content.metadata["llama.vocab_size"].to_u32().unwrap_or(32000);
    let mut model = ModelWeights::from_gguf(content, &mut file, &device)?;
    // A fixed prompt of ids spread over the vocabulary (no tokenizer needed).
    let prompt: Vec<u32> = (0..128u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let (mut prompt_tps, mut gen_tps) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let mut logits = model.forward(&Tensor::new(prompt.as_slice(), &device)?.unsqueeze(0)?, 0)?;
        prompt_tps.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for i in 0..tokens {
            let next = logits.squeeze(0)?.argmax(0)?.to_scalar::<u32>()?;
            logits = model.forward(&Tensor::new(&[next], &device)?.unsqueeze(0)?, prompt.len() + i)?;
        }
        gen_tps.push(tokens as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "avx2 at compile time: {}, fma: {}; prompt {:.1} t/s, generation {:.1} t/s (median of {runs})",
        cfg!(target_feature = "avx2"),
        cfg!(target_feature = "fma"),
        median(prompt_tps),
        median(gen_tps)
    );
    Ok(())
}
