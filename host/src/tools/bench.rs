//! `lmhost bench`: speed measured against a baseline in the same run.
//!
//! Timings on a shared machine swing by several times between runs, so every
//! figure here is a ratio of two things measured in the same process, with runs
//! interleaved (baseline, lmhost, baseline, lmhost, …) and medians compared:
//! - lmhost's path (wasm adapter, streaming, scheduler thread) against a bare
//!   `llama-cpp-2` decode loop on the same GGUF, prompt and thread count;
//! - N concurrent requests (decoded together in one batch) against the same N
//!   requests one after another;
//! - the same request with a JSON-schema `response_format` (a grammar checks
//!   every token) against it without (generation tokens per second);
//! - with `candle`, the candle engine (`huggingface_local`) on the same GGUF
//!   against the llama.cpp engine, both through lmhost: once on lmhost's CPU
//!   kernels (the default) and once on candle's own (`candle_kernels: candle`).
//!
//! The bare loop is deliberately written out here: it is the baseline. It runs
//! in a child process (this binary, `lmhost bench --bare-worker`): two llama.cpp
//! contexts decoding from two threads of one process share libgomp's thread
//! accounting, and once a process holds more OpenMP threads than cores libgomp
//! stops spinning at barriers (its "throttled" spin count): generation fell from
//! ~110 to ~70 t/s on *both* sides, and lmhost ÷ bare hid a gap to llama.cpp's
//! own build (BENCHMARKS.md).

use std::io::{BufRead, BufReader, Write};
use std::num::NonZeroU32;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engines::resolve_model_file;
use crate::{Error, GenerationParams, Host, Message, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A llamacpp model (name or JSON query).
    pub model: String,
    /// Tokens to generate per request (greedy; both sides stop at the same end token).
    pub max_tokens: u32,
    /// Interleaved runs of each side.
    pub runs: usize,
    /// Requests in the concurrency comparison.
    pub concurrency: usize,
    /// CPU threads for both sides.
    pub threads: u32,
    /// Also run the candle engine on the same file.
    pub candle: bool,
}

/// Medians of one side.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Speed {
    /// Prompt tokens per second.
    pub prompt_tps: f64,
    /// Generated tokens per second.
    pub generation_tps: f64,
}

/// The results, with the ratios that matter.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Model name.
    pub model: String,
    /// The GGUF file.
    pub file: String,
    /// Threads used by both sides.
    pub threads: u32,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Tokens generated per request.
    pub completion_tokens: u32,
    /// Runs per side.
    pub runs: usize,
    /// Bare llama-cpp-2 loop.
    pub bare: Speed,
    /// Through lmhost (adapter + engine, streaming).
    pub lmhost: Speed,
    /// lmhost ÷ bare, prompt.
    pub prompt_ratio: f64,
    /// lmhost ÷ bare, generation.
    pub generation_ratio: f64,
    /// Requests in the concurrency comparison.
    pub concurrency: usize,
    /// Generated tokens per second, requests one after another.
    pub sequential_tps: f64,
    /// Generated tokens per second, requests concurrently.
    pub concurrent_tps: f64,
    /// concurrent ÷ sequential.
    pub concurrency_ratio: f64,
    /// Through lmhost with a JSON-schema `response_format` (grammar-constrained).
    pub grammar: Speed,
    /// grammar ÷ lmhost, generation: what enforcing the schema costs per token.
    pub grammar_generation_ratio: f64,
    /// The candle engine on the same GGUF, through lmhost (with `candle`).
    pub candle: Option<Speed>,
    /// candle ÷ llama.cpp (both through lmhost), generation.
    pub candle_generation_ratio: Option<f64>,
    /// candle ÷ llama.cpp (both through lmhost), prompt.
    pub candle_prompt_ratio: Option<f64>,
    /// The candle engine on candle's own kernels (`candle_kernels: candle`).
    pub candle_own_kernels: Option<Speed>,
    /// That ÷ llama.cpp, generation.
    pub candle_own_kernels_generation_ratio: Option<f64>,
}

const PROMPT: &str = "Read the following passage and summarise it in three sentences.\n\n\
The lighthouse stood on a rock at the mouth of the harbour for two hundred years. Its keepers \
lived in a small stone cottage beside it, trimming the wick every four hours through the night \
and winding the clockwork that turned the great lens. Ships coming home in winter storms looked \
for its beam long before they could see the coast, and many captains said they owed their lives \
to it. When the light was finally automated, the last keeper refused to leave, and the town let \
him stay on as a guide, telling visitors about the wrecks, the rescues and the long quiet nights.";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        0.0
    } else {
        xs[xs.len() / 2]
    }
}

fn rate(tokens: u32, seconds: f64) -> f64 {
    if seconds > 0.0 {
        f64::from(tokens) / seconds
    } else {
        0.0
    }
}

fn fail(model: &str, message: impl std::fmt::Display) -> Error {
    Error::InvalidRequest {
        model: model.into(),
        message: message.to_string(),
    }
}

/// Run the benchmark.
pub fn run_bench(host: &Host, config: &BenchConfig) -> Result<BenchReport> {
    let mut query = match config.model.parse::<crate::registry::Query>()? {
        crate::registry::Query::Name(name) => serde_json::json!({ "model_name": name }),
        crate::registry::Query::Spec(map) => Value::Object(map),
    };
    let slots = config.concurrency.max(1);
    query["threads"] = config.threads.into();
    query["parallel"] = slots.into();
    let spec = host.resolve(query.to_string().as_str())?;
    let name = spec.model_name().to_string();
    if spec.backend() != "llamacpp" {
        return Err(fail(
            &name,
            format!(
                "bench compares against llama.cpp; `{}` is a `{}` model",
                name,
                spec.backend()
            ),
        ));
    }
    let path = resolve_model_file(&spec, &host.config().model_dirs, &host.config().hub)?;
    let model = host.load_spec(spec)?;
    let messages = [Message::user(PROMPT)];
    let params = GenerationParams::greedy(config.max_tokens);

    // Warm up both sides and learn the exact prompt lmhost sends.
    let warm = model.generate(&messages, &params)?;
    let prompt_text = warm.prompt.as_str().unwrap_or_default().to_string();
    let mut bare =
        BareWorker::spawn(&path, config.threads, config.max_tokens, &prompt_text).map_err(|e| fail(&name, e))?;
    bare.run().map_err(|e| fail(&name, e))?;

    let candle_with = |kernels: &str| -> Result<_> {
        let spec = serde_json::json!({
            "model_name": format!("{name}-candle-{kernels}"),
            "backend": "huggingface_local",
            "model_path": path,
            "premade_chat_template": true,
            "candle_kernels": kernels,
            "threads": config.threads,
        });
        let candle = host.load(spec.to_string().as_str())?;
        candle.generate(&messages, &params)?;
        Ok(candle)
    };
    let (candle, candle_own) = match config.candle {
        true => (Some(candle_with("lmhost")?), Some(candle_with("candle")?)),
        false => (None, None),
    };
    let (mut candle_prompt, mut candle_gen) = (vec![], vec![]);
    let (mut own_prompt, mut own_gen) = (vec![], vec![]);
    let (mut bare_prompt, mut bare_gen, mut ours_prompt, mut ours_gen) = (vec![], vec![], vec![], vec![]);
    // A schema that lets the answer run long: the summary as a list of sentences.
    let constrained = GenerationParams {
        response_format: Some(crate::generation::ResponseFormat::JsonSchema {
            schema: serde_json::json!({
                "type": "object",
                "properties": {"sentences": {"type": "array", "items": {"type": "string"}, "minItems": 3}},
                "required": ["sentences"]
            }),
        }),
        ..params.clone()
    };
    model.generate(&messages, &constrained)?;
    let (mut grammar_prompt, mut grammar_gen) = (vec![], vec![]);
    let mut completion_tokens = 0;
    for _ in 0..config.runs.max(1) {
        let b = bare.run().map_err(|e| fail(&name, e))?;
        bare_prompt.push(rate(b.prompt_tokens, b.prompt_s));
        bare_gen.push(rate(b.generated, b.generation_s));
        let g = model.generate_stream(&messages, &params, |_| {})?;
        if g.usage.completion_tokens != b.generated {
            return Err(fail(
                &name,
                format!(
                    "the two sides generated different token counts ({} vs {}): not comparable",
                    g.usage.completion_tokens, b.generated
                ),
            ));
        }
        completion_tokens = g.usage.completion_tokens;
        ours_prompt.push(g.prompt_tokens_per_second());
        ours_gen.push(g.tokens_per_second());
        let c = model.generate_stream(&messages, &constrained, |_| {})?;
        grammar_prompt.push(c.prompt_tokens_per_second());
        grammar_gen.push(c.tokens_per_second());
        if let Some(candle) = &candle {
            let c = candle.generate_stream(&messages, &params, |_| {})?;
            candle_prompt.push(c.prompt_tokens_per_second());
            candle_gen.push(c.tokens_per_second());
        }
        if let Some(candle) = &candle_own {
            let c = candle.generate_stream(&messages, &params, |_| {})?;
            own_prompt.push(c.prompt_tokens_per_second());
            own_gen.push(c.tokens_per_second());
        }
    }
    let candle_own_speed = candle_own.is_some().then(|| Speed {
        prompt_tps: median(own_prompt),
        generation_tps: median(own_gen),
    });
    let candle_speed = candle.is_some().then(|| Speed {
        prompt_tps: median(candle_prompt),
        generation_tps: median(candle_gen),
    });
    let bare_speed = Speed {
        prompt_tps: median(bare_prompt),
        generation_tps: median(bare_gen),
    };
    let ours = Speed {
        prompt_tps: median(ours_prompt),
        generation_tps: median(ours_gen),
    };
    let grammar = Speed {
        prompt_tps: median(grammar_prompt),
        generation_tps: median(grammar_gen),
    };

    // N requests one after another, then the same N together.
    let requests: Vec<_> = (0..slots).map(|_| (messages.to_vec(), params.clone())).collect();
    let started = Instant::now();
    let mut tokens = 0;
    for (m, p) in &requests {
        tokens += model.generate(m, p)?.usage.completion_tokens;
    }
    let sequential_tps = rate(tokens, started.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut tokens = 0;
    for g in model.generate_batch(&requests) {
        tokens += g?.usage.completion_tokens;
    }
    let concurrent_tps = rate(tokens, started.elapsed().as_secs_f64());

    Ok(BenchReport {
        model: name,
        file: path.display().to_string(),
        threads: config.threads,
        prompt_tokens: warm.usage.prompt_tokens,
        completion_tokens,
        runs: config.runs.max(1),
        prompt_ratio: ours.prompt_tps / bare_speed.prompt_tps,
        generation_ratio: ours.generation_tps / bare_speed.generation_tps,
        bare: bare_speed,
        lmhost: ours,
        grammar_generation_ratio: grammar.generation_tps / ours.generation_tps,
        grammar,
        concurrency: slots,
        sequential_tps,
        concurrent_tps,
        concurrency_ratio: concurrent_tps / sequential_tps,
        candle_generation_ratio: candle_speed.map(|c| c.generation_tps / ours.generation_tps),
        candle_prompt_ratio: candle_speed.map(|c| c.prompt_tps / ours.prompt_tps),
        candle: candle_speed,
        candle_own_kernels_generation_ratio: candle_own_speed.map(|c| c.generation_tps / ours.generation_tps),
        candle_own_kernels: candle_own_speed,
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct BareRun {
    prompt_tokens: u32,
    generated: u32,
    prompt_s: f64,
    generation_s: f64,
}

/// The bare loop in its own process (see the module doc): one line in (the
/// prompt as a JSON string), then one `run` line per run, each answered with a
/// [`BareRun`] as one JSON line.
struct BareWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl BareWorker {
    fn spawn(path: &std::path::Path, threads: u32, max_tokens: u32, prompt: &str) -> std::result::Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("bare worker: {e}"))?;
        let mut child = Command::new(exe)
            .arg("bench")
            .arg("--bare-worker")
            .arg(path)
            .args([
                "--threads",
                &threads.to_string(),
                "--max-tokens",
                &max_tokens.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("bare worker: {e}"))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("bare worker: no pipes".into());
        };
        writeln!(stdin, "{}", serde_json::to_string(prompt).unwrap_or_default()).map_err(|e| e.to_string())?;
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    fn run(&mut self) -> std::result::Result<BareRun, String> {
        writeln!(self.stdin, "run").map_err(|e| format!("bare worker: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("bare worker: {e}"))?;
        serde_json::from_str(&line).map_err(|e| format!("bare worker: {e}: {line:?}"))
    }
}

impl Drop for BareWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lmhost bench --bare-worker FILE`: the child side of [`BareWorker`].
pub fn bare_worker(path: &std::path::Path, threads: u32, max_tokens: u32) -> std::result::Result<(), String> {
    let bare = BareLoop::load(path, threads)?;
    let mut lines = std::io::stdin().lock().lines();
    let prompt: String = match lines.next() {
        Some(Ok(line)) => serde_json::from_str(&line).map_err(|e| format!("bare worker: prompt: {e}"))?,
        _ => return Err("bare worker: no prompt on stdin".into()),
    };
    let mut out = std::io::stdout().lock();
    for line in lines {
        if line.map_err(|e| e.to_string())? != "run" {
            break;
        }
        let run = bare.run(&prompt, max_tokens)?;
        let json = serde_json::to_string(&run).map_err(|e| e.to_string())?;
        writeln!(out, "{json}")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The baseline: the plainest greedy loop llama-cpp-2 allows.
struct BareLoop {
    model: LlamaModel,
    threads: i32,
}

impl BareLoop {
    fn load(path: &std::path::Path, threads: u32) -> std::result::Result<Self, String> {
        let backend = crate::engines::llama_backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| format!("bare load: {e}"))?;
        Ok(Self {
            model,
            threads: threads as i32,
        })
    }

    fn run(&self, prompt: &str, max_tokens: u32) -> std::result::Result<BareRun, String> {
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        let n_ctx = (tokens.len() as u32 + max_tokens).div_ceil(256) * 256;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(512)
            .with_n_ubatch(512)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self
            .model
            .new_context(crate::engines::llama_backend()?, params)
            .map_err(|e| e.to_string())?;
        let mut batch = LlamaBatch::new(512.max(tokens.len()), 1);
        let started = Instant::now();
        for (i, t) in tokens.iter().enumerate() {
            batch
                .add(*t, i as i32, &[0], i + 1 == tokens.len())
                .map_err(|e| e.to_string())?;
        }
        ctx.decode(&mut batch).map_err(|e| e.to_string())?;
        let mut sampler = LlamaSampler::greedy();
        let mut token = sampler.sample(&ctx, batch.n_tokens() - 1);
        let prompt_s = started.elapsed().as_secs_f64();
        let mut generated = 1;
        let mut pos = tokens.len() as i32;
        while generated < max_tokens && !vocab.is_eog(token) {
            let _piece = vocab.token_to_piece(token, true, None);
            batch.clear();
            batch.add(token, pos, &[0], true).map_err(|e| e.to_string())?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| e.to_string())?;
            token = sampler.sample(&ctx, 0);
            generated += 1;
        }
        Ok(BareRun {
            prompt_tokens: tokens.len() as u32,
            generated,
            prompt_s,
            generation_s: started.elapsed().as_secs_f64() - prompt_s,
        })
    }
}
