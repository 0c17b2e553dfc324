//! llama.cpp (GGUF) through `llama-cpp-2`.
//!
//! One loaded model is shared by every request; each request gets its own
//! context sized to prompt + `max_tokens`, so requests never see each other's
//! KV cache. The context is checked before any decoding: an overflowing request
//! fails with both numbers instead of being truncated.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::text::TextAccumulator;
use super::{Engine, EngineError, EngineInfo, EngineOutput, FinishReason, PromptInput, TextSink};
use crate::registry::ModelSpec;

/// Default context cap when the entry sets no `n_ctx` (the model's own may be larger).
const DEFAULT_N_CTX: u32 = 4096;
/// Prompt tokens decoded per batch.
const PROMPT_BATCH: usize = 512;

fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let mut backend = LlamaBackend::init().expect("llama.cpp backend initialises once");
        if std::env::var_os("LMHOST_LLAMA_LOG").is_none() {
            backend.void_logs();
        }
        backend
    })
}

/// A GGUF model loaded with llama.cpp.
pub struct LlamaEngine {
    name: String,
    model: LlamaModel,
    info: EngineInfo,
    n_ctx: u32,
    threads: i32,
    /// Creating contexts concurrently is not sound in llama.cpp; decoding is.
    context_lock: Mutex<()>,
}

impl LlamaEngine {
    /// Load `path` with the settings of `spec` (`n_ctx`, `threads`).
    pub fn load(spec: &ModelSpec, path: &Path) -> Result<Self, EngineError> {
        let name = spec.model_name().to_string();
        let invalid = |message: String| EngineError::InvalidSpec {
            model: name.clone(),
            message,
        };
        let threads = match spec.get_u64("threads").map_err(invalid)? {
            Some(t) => i32::try_from(t).map_err(|_| invalid(format!("`threads` {t} is too large")))?,
            None => std::thread::available_parallelism()
                .map(|n| n.get() as i32)
                .unwrap_or(2),
        };
        let requested_ctx = spec.get_u64("n_ctx").map_err(invalid)?;
        let model = LlamaModel::load_from_file(backend(), path, &LlamaModelParams::default()).map_err(|e| {
            EngineError::Load {
                model: name.clone(),
                path: path.to_path_buf(),
                message: format!("{e} (is it a GGUF file?)"),
            }
        })?;
        let trained = model.n_ctx_train().max(1);
        let n_ctx = match requested_ctx {
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(trained),
            None => DEFAULT_N_CTX.min(trained),
        };
        let vocab = model.vocab();
        let piece = |t: LlamaToken| {
            let bytes = vocab.token_to_piece(t, true, None);
            Some(String::from_utf8_lossy(&bytes).into_owned()).filter(|s| !s.is_empty())
        };
        let bos = (vocab.bos().0 >= 0).then(|| piece(vocab.bos())).flatten();
        let eos = (vocab.eos().0 >= 0).then(|| piece(vocab.eos())).flatten();
        let spec_string = |key: &str| spec.get_str(key).ok().flatten().map(str::to_string);
        let info = EngineInfo {
            builtin_template: model.chat_template(None).ok().and_then(|t| t.to_string().ok()),
            bos_token: bos.or_else(|| spec_string("bos_string")),
            eos_token: eos.or_else(|| spec_string("eos_string")),
            add_bos: vocab.should_add_bos(),
            context_length: Some(n_ctx),
        };
        tracing::debug!(model = %name, path = %path.display(), n_ctx, threads, "loaded GGUF");
        Ok(Self {
            name,
            model,
            info,
            n_ctx,
            threads,
            context_lock: Mutex::new(()),
        })
    }

    fn fail(&self, message: impl std::fmt::Display) -> EngineError {
        EngineError::Inference {
            model: self.name.clone(),
            message: message.to_string(),
        }
    }

    fn sampler(&self, input: &PromptInput<'_>) -> Result<LlamaSampler, EngineError> {
        let p = input.params;
        let bad = |message: String| EngineError::InvalidParams {
            model: self.name.clone(),
            message,
        };
        let temperature = p.temperature.unwrap_or(0.0);
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(bad(format!("temperature must be a number ≥ 0, got {temperature}")));
        }
        let mut chain = Vec::new();
        let repeat = p.repetition_penalty.unwrap_or(1.0);
        let freq = p.frequency_penalty.unwrap_or(0.0);
        let presence = p.presence_penalty.unwrap_or(0.0);
        if repeat != 1.0 || freq != 0.0 || presence != 0.0 {
            if repeat <= 0.0 {
                return Err(bad(format!("repetition_penalty must be > 0, got {repeat}")));
            }
            chain.push(LlamaSampler::penalties(
                self.model.n_vocab(),
                64,
                repeat,
                freq,
                presence,
            ));
        }
        if temperature == 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if let Some(k) = p.top_k.filter(|k| *k > 0) {
                chain.push(LlamaSampler::top_k(i32::try_from(k).unwrap_or(i32::MAX)));
            }
            if let Some(top_p) = p.top_p {
                if !(0.0..=1.0).contains(&top_p) {
                    return Err(bad(format!("top_p must be in [0, 1], got {top_p}")));
                }
                chain.push(LlamaSampler::top_p(top_p, 1));
            }
            if let Some(min_p) = p.min_p {
                if !(0.0..=1.0).contains(&min_p) {
                    return Err(bad(format!("min_p must be in [0, 1], got {min_p}")));
                }
                chain.push(LlamaSampler::min_p(min_p, 1));
            }
            chain.push(LlamaSampler::temp(temperature));
            // llama.cpp's "pick a random seed" value when none is given.
            let seed = p.seed.map(|s| (s ^ (s >> 32)) as u32).unwrap_or(u32::MAX);
            chain.push(LlamaSampler::dist(seed));
        }
        Ok(LlamaSampler::chain_simple(chain))
    }
}

impl Engine for LlamaEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn complete(&self, input: &PromptInput<'_>, sink: TextSink<'_>) -> Result<EngineOutput, EngineError> {
        let started = Instant::now();
        let vocab = self.model.vocab();
        let mut tokens = Vec::with_capacity(input.text.len() / 3 + 2);
        if input.add_bos && vocab.bos().0 >= 0 {
            tokens.push(vocab.bos());
        }
        tokens.extend(vocab.tokenize(input.text.as_bytes(), false, true));
        if tokens.is_empty() {
            return Err(EngineError::InvalidParams {
                model: self.name.clone(),
                message: "the prompt is empty".into(),
            });
        }
        let prompt_tokens = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        let max_tokens = input.params.max_tokens.unwrap_or(crate::generation::DEFAULT_MAX_TOKENS);
        if u64::from(prompt_tokens) + u64::from(max_tokens) > u64::from(self.n_ctx) {
            return Err(EngineError::ContextOverflow {
                model: self.name.clone(),
                prompt_tokens,
                max_tokens,
                context: self.n_ctx,
            });
        }
        let mut sampler = self.sampler(input)?;
        let needed = (prompt_tokens + max_tokens).div_ceil(256) * 256;
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(needed.min(self.n_ctx)))
            .with_n_batch(PROMPT_BATCH as u32)
            .with_n_ubatch(PROMPT_BATCH as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = {
            let _guard = self.context_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.model
                .new_context(backend(), ctx_params)
                .map_err(|e| self.fail(format!("cannot create a context: {e}")))?
        };

        // Prompt, in batches; logits only for the very last token.
        let mut batch = LlamaBatch::new(PROMPT_BATCH, 1);
        let last = tokens.len() - 1;
        for (chunk_index, chunk) in tokens.chunks(PROMPT_BATCH).enumerate() {
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let pos = chunk_index * PROMPT_BATCH + i;
                batch
                    .add(*token, pos as i32, &[0], pos == last)
                    .map_err(|e| self.fail(e))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| self.fail(format!("prompt decode: {e}")))?;
        }
        let prompt_time = started.elapsed();

        let generation_started = Instant::now();
        let mut acc = TextAccumulator::new(input.stop);
        let mut time_to_first_token = None;
        let mut completion_tokens = 0u32;
        let mut pos = tokens.len() as i32;
        let mut logits_index = batch.n_tokens() - 1;
        let mut finish_reason = FinishReason::Length;
        while completion_tokens < max_tokens {
            let token = sampler.sample(&ctx, logits_index);
            completion_tokens += 1;
            time_to_first_token.get_or_insert_with(|| started.elapsed());
            let bytes = vocab.token_to_piece(token, true, None);
            if vocab.is_eog(token) {
                // The end-of-turn token is part of the raw response (clembench's
                // `response`); the adapter culls it from `response_text`.
                acc.push_final(&bytes);
                finish_reason = FinishReason::Stop;
                break;
            }
            let piece = acc.push(&bytes);
            if !piece.is_empty() && !sink(&piece) {
                finish_reason = FinishReason::Cancelled;
                break;
            }
            if acc.stopped() {
                finish_reason = FinishReason::Stop;
                break;
            }
            if completion_tokens == max_tokens {
                break;
            }
            batch.clear();
            batch.add(token, pos, &[0], true).map_err(|e| self.fail(e))?;
            pos += 1;
            logits_index = 0;
            ctx.decode(&mut batch).map_err(|e| self.fail(format!("decode: {e}")))?;
        }
        if finish_reason != FinishReason::Cancelled {
            let rest = acc.finish();
            if !rest.is_empty() {
                sink(&rest);
            }
        }
        Ok(EngineOutput {
            text: acc.text().to_string(),
            prompt_tokens,
            completion_tokens,
            finish_reason,
            prompt_time,
            generation_time: generation_started.elapsed(),
            time_to_first_token,
        })
    }
}
