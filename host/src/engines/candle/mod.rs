//! The candle engine: `huggingface_local` in pure Rust, with the same adapters,
//! parameters, stop strings, streaming, context guard and metrics as the
//! llama.cpp engine.
//!
//! It loads either
//! - a quantized GGUF of the llama family (`general.architecture` = `llama`:
//!   SmolLM2, Llama, Mistral-style), its tokenizer from a `tokenizer.json` beside
//!   the file or else rebuilt from the GGUF's own vocabulary ([`vocab`]); or
//! - a safetensors checkpoint folder: `config.json` (a llama config),
//!   `tokenizer.json`, `tokenizer_config.json` (chat template, BOS/EOS) and
//!   `*.safetensors`.
//!
//! A GGUF on the CPU whose matrices are Q4_0, Q4_1 or Q8_0 runs on lmhost's own
//! forward pass and integer kernels (`cpu_llama`, `kernels`); any other file,
//! a GPU, or `candle_kernels: "candle"` runs on candle's `quantized_llama`.
//! Forward passes run on a thread pool of `threads` (default: every core).
//!
//! One request at a time per loaded model (the KV cache lives in the model);
//! others wait their turn. `execute_on: "gpu"` needs a build with `--features candle-cuda`.

mod cpu_llama;
mod kernels;
mod vocab;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{llama, quantized_llama};

use super::sampling::{Sampler, SamplingConfig};
use super::text::TextAccumulator;
use super::{check_prompt, EngineError, EngineInfo, EngineOutput, FinishReason, LocalEngine, PromptInput, TextSink};
use crate::registry::{CandleKernels, CandleSettings, ExecuteOn, ModelSpec};
use vocab::Vocab;

pub use vocab::KNOWN_PRE as KNOWN_GGUF_PRE_TOKENIZERS;

/// The trained context when a GGUF file does not say.
const DEFAULT_N_CTX: u32 = 4096;

enum Runner {
    /// GGUF on the CPU with lmhost's kernels.
    Cpu(Box<cpu_llama::CpuLlama>),
    /// GGUF with candle's `quantized_llama`.
    Gguf(quantized_llama::ModelWeights),
    Llama {
        model: llama::Llama,
        config: llama::Config,
        dtype: DType,
    },
}

impl Runner {
    /// A fresh KV cache for one request (the GGUF model resets its own at position 0).
    fn cache(&self, device: &Device) -> candle_core::Result<Option<llama::Cache>> {
        match self {
            Runner::Cpu(_) | Runner::Gguf(_) => Ok(None),
            Runner::Llama { config, dtype, .. } => llama::Cache::new(true, *dtype, config, device).map(Some),
        }
    }

    /// Logits after feeding `tokens` at `position`.
    fn forward(
        &mut self,
        tokens: &[u32],
        position: usize,
        cache: &mut Option<llama::Cache>,
        device: &Device,
    ) -> candle_core::Result<Vec<f32>> {
        let input = || Tensor::new(tokens, device)?.unsqueeze(0);
        let logits = match (self, cache) {
            (Runner::Cpu(model), _) => return model.forward(tokens, position).map_err(candle_core::Error::msg),
            (Runner::Gguf(model), _) => model.forward(&input()?, position)?,
            (Runner::Llama { model, .. }, Some(cache)) => model.forward(&input()?, position, cache)?,
            (Runner::Llama { .. }, None) => candle_core::bail!("no KV cache"),
        };
        logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()
    }
}

/// A model run by candle.
pub struct CandleEngine {
    name: String,
    runner: Mutex<Runner>,
    vocab: Vocab,
    device: Device,
    n_ctx: u32,
    info: EngineInfo,
    /// The CPU threads a forward pass runs on (`threads`, default every core).
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for CandleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleEngine")
            .field("name", &self.name)
            .field("n_ctx", &self.n_ctx)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl CandleEngine {
    /// Load `path` (a GGUF file, or a safetensors checkpoint folder) with the
    /// entry's `n_ctx` and `execute_on`.
    pub fn load(spec: &ModelSpec, path: &Path) -> Result<Self, EngineError> {
        let name = spec.model_name().to_string();
        let invalid = |message: String| EngineError::InvalidSpec {
            model: name.clone(),
            message,
        };
        let fail = |message: String| EngineError::Load {
            model: name.clone(),
            path: path.to_path_buf(),
            message,
        };
        let settings: CandleSettings = spec.settings()?;
        let device = match settings.execute_on {
            Some(ExecuteOn::Gpu) => gpu().map_err(invalid)?,
            _ => Device::Cpu,
        };
        let requested = settings.n_ctx;
        let threads = super::cpu_threads(spec, settings.threads)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("lmhost-candle-{i}"))
            .build()
            .map_err(|e| fail(format!("cannot start {threads} threads: {e}")))?;
        let (runner, vocab, template, trained) = if path.is_dir() {
            load_safetensors(path, &device).map_err(fail)?
        } else {
            let own = device.is_cpu() && settings.candle_kernels != Some(CandleKernels::Candle);
            load_gguf(path, &device, own).map_err(fail)?
        };
        // The KV cache grows with each request's tokens (nothing is reserved
        // up front), so the default is the whole trained context.
        let n_ctx = requested
            .map(|n| n.min(u64::from(u32::MAX)) as u32)
            .unwrap_or(trained)
            .min(trained)
            .max(1);
        let info = EngineInfo {
            builtin_template: template,
            bos_token: vocab.bos.and_then(|id| vocab.text_of(id)),
            eos_token: vocab.eos.and_then(|id| vocab.text_of(id)),
            add_bos: vocab.add_bos,
            context_length: Some(n_ctx),
        };
        tracing::debug!(model = %name, path = %path.display(), n_ctx, "loaded with candle");
        Ok(Self {
            name,
            runner: Mutex::new(runner),
            vocab,
            device,
            n_ctx,
            info,
            pool,
        })
    }

    /// One forward pass on the engine's threads.
    fn forward(
        &self,
        runner: &mut Runner,
        tokens: &[u32],
        position: usize,
        cache: &mut Option<llama::Cache>,
    ) -> Result<Vec<f32>, EngineError> {
        self.pool
            .install(|| runner.forward(tokens, position, cache, &self.device))
            .map_err(|e| self.failed(e))
    }

    /// Teacher forcing, to compare with other implementations: feed `prompt`,
    /// then `continuation` one token at a time; before each continuation token,
    /// the model's own choice. Each entry: (best id, its logit, the logit of the
    /// continuation token there).
    pub fn forced(&self, prompt: &[u32], continuation: &[u32]) -> Result<Vec<(u32, f32, f32)>, EngineError> {
        if prompt.is_empty() || prompt.len() + continuation.len() > self.n_ctx as usize {
            return Err(self.bad_params(format!("forcing needs 1 to {} tokens", self.n_ctx)));
        }
        let mut runner = self.runner.lock().unwrap_or_else(|p| p.into_inner());
        let mut cache = runner.cache(&self.device).map_err(|e| self.failed(e))?;
        let mut logits = self.forward(&mut runner, prompt, 0, &mut cache)?;
        let mut out = Vec::with_capacity(continuation.len());
        for (i, &token) in continuation.iter().enumerate() {
            let (best, top) = logits
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, &l)| if l > a.1 { (i as u32, l) } else { a });
            let theirs = logits
                .get(token as usize)
                .copied()
                .ok_or_else(|| self.bad_params(format!("token id {token} is outside the vocabulary")))?;
            out.push((best, top, theirs));
            if i + 1 < continuation.len() {
                logits = self.forward(&mut runner, &[token], prompt.len() + i, &mut cache)?;
            }
        }
        Ok(out)
    }

    fn bad_params(&self, message: String) -> EngineError {
        EngineError::InvalidParams {
            model: self.name.clone(),
            message,
        }
    }

    fn failed(&self, e: candle_core::Error) -> EngineError {
        EngineError::Inference {
            model: self.name.clone(),
            message: plain(e),
        }
    }
}

/// A candle error's message without the backtrace candle attaches to it when
/// `RUST_BACKTRACE` is set: an API error or a load error is no place for one.
fn plain(e: candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => plain(*inner),
        e => e.to_string(),
    }
}

#[cfg(feature = "candle-cuda")]
fn gpu() -> Result<Device, String> {
    Device::new_cuda(0).map_err(|e| format!("`execute_on` is gpu, but no CUDA device is usable: {}", plain(e)))
}

#[cfg(not(feature = "candle-cuda"))]
fn gpu() -> Result<Device, String> {
    Err("`execute_on` is gpu, but this build of lmhost has no CUDA support for candle (build with `--features candle-cuda`)".into())
}

type Loaded = (Runner, Vocab, Option<String>, u32);

/// A GGUF file; `own`: on lmhost's CPU kernels where they cover the file.
fn load_gguf(path: &Path, device: &Device, own: bool) -> Result<Loaded, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // candle allocates what the header states: bound it first (gguf.rs).
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    super::gguf::check_header(&mut file, len).map_err(|e| format!("not a readable GGUF file: {e}"))?;
    std::io::Seek::rewind(&mut file).map_err(|e| e.to_string())?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| format!("not a readable GGUF file: {e}"))?;
    let md = &content.metadata;
    let text = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
    let arch = text("general.architecture").unwrap_or_default();
    if arch != "llama" {
        return Err(format!(
            "architecture `{arch}` is not one the candle engine runs from GGUF (llama); use the llamacpp backend"
        ));
    }
    let beside = path.with_file_name("tokenizer.json");
    let vocab = if beside.is_file() {
        let token = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        let mut v = vocab::from_files(&beside, None, None)?;
        v.bos = token("tokenizer.ggml.bos_token_id");
        v.eos = token("tokenizer.ggml.eos_token_id");
        v.end_of_generation.extend(v.eos);
        v
    } else {
        vocab::from_gguf(md)?
    };
    let template = text("tokenizer.chat_template");
    let trained = md
        .get("llama.context_length")
        .and_then(|v| v.to_u32().ok())
        .unwrap_or(DEFAULT_N_CTX);
    if own {
        match cpu_llama::unsupported(&content) {
            None => {
                let model = cpu_llama::CpuLlama::load(&content, &mut file)?;
                return Ok((Runner::Cpu(Box::new(model)), vocab, template, trained));
            }
            Some(why) => tracing::info!(path = %path.display(), "candle's kernels run this GGUF: {why}"),
        }
    }
    let model = quantized_llama::ModelWeights::from_gguf(content, &mut file, device).map_err(plain)?;
    // candle's model keeps rotary tables for this many positions only.
    let trained = trained.min(quantized_llama::MAX_SEQ_LEN as u32);
    Ok((Runner::Gguf(model), vocab, template, trained))
}

fn load_safetensors(dir: &Path, device: &Device) -> Result<Loaded, String> {
    let read = |name: &str| -> Result<String, String> {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let config_text = read("config.json")?;
    // Other architectures (qwen2, gemma, ...) can parse as a llama config and then
    // run with wrong weights silently: only llama checkpoints are accepted.
    let raw: serde_json::Value =
        serde_json::from_str(&config_text).map_err(|e| format!("config.json is not JSON: {e}"))?;
    match raw.get("model_type").and_then(serde_json::Value::as_str) {
        Some("llama") => {}
        other => {
            return Err(format!(
                "config.json has model_type {}; the candle engine runs llama checkpoints (and llama-architecture GGUF)",
                other.map_or("(none)".to_string(), |t| format!("`{t}`"))
            ))
        }
    }
    let config: llama::LlamaConfig =
        serde_json::from_value(raw).map_err(|e| format!("config.json is not a llama config: {e}"))?;
    let trained = u32::try_from(config.max_position_embeddings).unwrap_or(u32::MAX);
    let config = config.into_config(false);
    let tokenizer_config: serde_json::Value = match read("tokenizer_config.json") {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("tokenizer_config.json: {e}"))?,
        Err(_) => serde_json::Value::Null,
    };
    // A token is a string, or an object with its `content`.
    let token = |key: &str| {
        let v = tokenizer_config.get(key)?;
        v.as_str().or_else(|| v.get("content")?.as_str()).map(str::to_string)
    };
    let mut vocab = vocab::from_files(
        &dir.join("tokenizer.json"),
        token("bos_token").as_deref(),
        token("eos_token").as_deref(),
    )?;
    vocab.add_bos = tokenizer_config
        .get("add_bos_token")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let template = match tokenizer_config.get("chat_template") {
        Some(serde_json::Value::String(t)) => Some(t.clone()),
        // A list of named templates: the `default` one.
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.safetensors in {}", dir.display()));
    }
    let dtype = DType::F32;
    // SAFETY: the files are mapped read-only and not changed while the model lives.
    let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&files, dtype, device) }.map_err(plain)?;
    let model = llama::Llama::load(vb, &config).map_err(plain)?;
    Ok((Runner::Llama { model, config, dtype }, vocab, template, trained))
}

impl LocalEngine for CandleEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn tokenize(&self, text: &str) -> Option<Result<Vec<u32>, EngineError>> {
        Some(self.vocab.encode(text).map_err(|m| self.bad_params(m)))
    }

    fn complete(&self, input: &PromptInput<'_>, sink: TextSink<'_>) -> Result<EngineOutput, EngineError> {
        let started = Instant::now();
        let mut tokens = Vec::new();
        if input.add_bos {
            tokens.extend(self.vocab.bos);
        }
        tokens.extend(self.vocab.encode(input.text).map_err(|m| self.bad_params(m))?);
        let (prompt_tokens, max_tokens) = check_prompt(&self.name, tokens.len(), input.params, self.n_ctx)?;
        let mut sampler = Sampler::new(SamplingConfig::from_params(input.params).map_err(|m| self.bad_params(m))?);

        let mut runner = self.runner.lock().unwrap_or_else(|p| p.into_inner());
        let admitted = Instant::now();
        let mut cache = runner.cache(&self.device).map_err(|e| self.failed(e))?;
        let mut logits = self.forward(&mut runner, &tokens, 0, &mut cache)?;
        let prompt_time = admitted.elapsed();
        let mut acc = TextAccumulator::new(input.stop);
        let mut history = tokens;
        let mut ids = Vec::new();
        let mut first_token = None;
        let finish_reason = loop {
            let next = sampler.sample(&mut logits, &history);
            ids.push(next);
            history.push(next);
            first_token.get_or_insert_with(|| started.elapsed());
            let bytes = self
                .vocab
                .token_bytes
                .get(next as usize)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if self.vocab.end_of_generation.contains(&next) {
                // Part of the raw response, as with llama.cpp; the adapter culls it.
                acc.push_final(bytes);
                break FinishReason::Stop;
            }
            let piece = acc.push(bytes);
            if !piece.is_empty() && !sink(&piece) {
                break FinishReason::Cancelled;
            }
            if acc.stopped() {
                break FinishReason::Stop;
            }
            if ids.len() >= max_tokens as usize {
                break FinishReason::Length;
            }
            logits = self.forward(&mut runner, &[next], history.len() - 1, &mut cache)?;
        };
        drop(runner);
        let rest = acc.finish();
        if finish_reason != FinishReason::Cancelled && !rest.is_empty() {
            sink(&rest);
        }
        let total = admitted.elapsed();
        Ok(EngineOutput {
            text: acc.text().to_string(),
            completion_tokens: ids.len() as u32,
            token_ids: ids,
            prompt_tokens,
            finish_reason,
            prompt_time,
            generation_time: total.saturating_sub(prompt_time),
            time_to_first_token: first_token,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn candle_errors_lose_their_backtrace() {
        let wrapped = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("no CUDA device".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(wrapped.to_string().len() > "no CUDA device".len());
        assert_eq!(super::plain(wrapped), "no CUDA device");
    }
}
