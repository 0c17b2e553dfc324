//! llama.cpp (GGUF) through `llama-cpp-2`.
//!
//! One loaded model is shared by every request. A scheduler thread per model
//! owns one llama.cpp context with one KV stream per sequence slot; concurrent
//! requests become sequences of that context and are decoded together, one
//! batch per step (continuous batching), instead of queueing one by one, with
//! the same tokens they would get alone (see `scheduler`). A request is
//! checked against the context before any decoding: prompt + `max_tokens` over
//! `n_ctx` fails with both numbers instead of being truncated.

mod grammar;
mod scheduler;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Instant;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::sampling::{SamplingConfig, PENALTY_WINDOW};
use super::{check_prompt, Constraint, EngineError, EngineInfo, EngineOutput, LocalEngine, PromptInput, TextSink};
use crate::generation::GenerationParams;
use crate::registry::{ExecuteOn, LlamaSettings, ModelSpec, SettingsError};
use scheduler::{Event, Job, SchedulerConfig};

/// Default context when the entry sets no `n_ctx` (the model's own may be larger).
const DEFAULT_N_CTX: u32 = 4096;
/// Default most sequences decoded together (`parallel` in the entry). Each
/// costs an `n_ctx`-sized KV stream.
const DEFAULT_PARALLEL: u32 = 4;

/// The process's llama.cpp backend (initialised once, logs silenced unless `LMHOST_LLAMA_LOG` is set).
pub fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let mut backend = LlamaBackend::init().expect("llama.cpp backend initialises once");
        if !crate::config::llama_log_enabled() {
            backend.void_logs();
        }
        backend
    })
}

/// Whether this build of llama.cpp sees a GPU to offload layers to. (llama.cpp's
/// own `supports_gpu_offload` also counts RPC and says yes on CPU-only builds.)
pub fn gpu_offload_supported() -> bool {
    use llama_cpp_2::LlamaBackendDeviceType::{Gpu, IntegratedGpu};
    backend();
    llama_cpp_2::list_llama_ggml_backend_devices()
        .iter()
        .any(|d| matches!(d.device_type, Gpu | IntegratedGpu))
}

/// The compute devices llama.cpp sees: (backend, name, description, kind, total memory in bytes).
pub fn devices() -> Vec<(String, String, String, &'static str, usize)> {
    use llama_cpp_2::LlamaBackendDeviceType as T;
    backend();
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| {
            let kind = match d.device_type {
                T::Cpu => "cpu",
                T::Accelerator => "accelerator",
                T::Gpu => "gpu",
                T::IntegratedGpu => "igpu",
                T::Unknown => "unknown",
            };
            (d.backend, d.name, d.description, kind, d.memory_total)
        })
        .collect()
}

/// A GGUF model loaded with llama.cpp.
pub struct LlamaEngine {
    name: String,
    model: Arc<LlamaModel>,
    info: EngineInfo,
    n_ctx: u32,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for LlamaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaEngine")
            .field("name", &self.name)
            .field("n_ctx", &self.n_ctx)
            .finish_non_exhaustive()
    }
}

/// Layers to offload from `execute_on` (`gpu` = all, `cpu` = none), else `gpu_layers_offloaded`.
fn gpu_layers(settings: &LlamaSettings) -> u32 {
    match settings.execute_on {
        Some(ExecuteOn::Gpu) => u32::MAX,
        Some(ExecuteOn::Cpu) => 0,
        None => settings
            .gpu_layers_offloaded
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

impl LlamaEngine {
    /// Load `path` with the settings of `spec`: `n_ctx`, `parallel`, `threads`,
    /// `execute_on` / `gpu_layers_offloaded`.
    pub fn load(spec: &ModelSpec, path: &Path) -> Result<Self, EngineError> {
        let name = spec.model_name().to_string();
        let invalid = |message: String| EngineError::InvalidSpec {
            model: name.clone(),
            message,
        };
        let settings: LlamaSettings = spec.settings()?;
        let threads = super::cpu_threads(spec, settings.threads)? as i32;
        let parallel = match settings.parallel {
            Some(0) => return Err(SettingsError::key(spec, "parallel", "must be at least 1").into()),
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(256),
            None => DEFAULT_PARALLEL,
        };
        let gpu_layers = gpu_layers(&settings);
        if gpu_layers > 0 && !gpu_offload_supported() {
            return Err(invalid(
                "it asks for GPU layers (`execute_on: gpu` or `gpu_layers_offloaded`), but this build of lmhost has no \
                 GPU support: build with `--features cuda`, or set `execute_on: cpu`"
                    .into(),
            ));
        }
        let requested_ctx = settings.n_ctx;
        let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
        // The header is untrusted (hub downloads): the same bounded walk as
        // candle's loader gets, before native code reads it.
        let header = std::fs::File::open(path)
            .and_then(|f| f.metadata().map(|m| (f, m.len())))
            .map_err(|e| e.to_string())
            .and_then(|(f, len)| super::gguf::check_header(f, len));
        if let Err(message) = header {
            return Err(EngineError::Load {
                model: name.clone(),
                path: path.to_path_buf(),
                message: format!("not a readable GGUF file: {message}"),
            });
        }
        let model = LlamaModel::load_from_file(backend(), path, &params).map_err(|e| EngineError::Load {
            model: name.clone(),
            path: path.to_path_buf(),
            message: format!("{e} (is it a GGUF file?)"),
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
        let info = EngineInfo {
            builtin_template: model.chat_template(None).ok().and_then(|t| t.to_string().ok()),
            bos_token: bos.or(settings.bos_string),
            eos_token: eos.or(settings.eos_string),
            add_bos: vocab.should_add_bos(),
            context_length: Some(n_ctx),
        };
        let model = Arc::new(model);
        let config = SchedulerConfig {
            name: name.clone(),
            n_ctx,
            parallel,
            threads,
        };
        let jobs = scheduler::start(model.clone(), config).map_err(|message| EngineError::Load {
            model: name.clone(),
            path: path.to_path_buf(),
            message,
        })?;
        tracing::debug!(model = %name, path = %path.display(), n_ctx, parallel, threads, gpu_layers, "loaded GGUF");
        Ok(Self {
            name,
            model,
            info,
            n_ctx,
            jobs: Mutex::new(jobs),
        })
    }

    fn bad_format(&self, message: String) -> EngineError {
        EngineError::ResponseFormat {
            model: self.name.clone(),
            message,
        }
    }

    fn bad_params(&self, message: String) -> EngineError {
        EngineError::InvalidParams {
            model: self.name.clone(),
            message,
        }
    }

    /// The grammar of the call's constraint, if it has one (applied by the
    /// scheduler apart from the sampling chain); lazy: it starts at the prefix.
    fn grammar(&self, constraint: Option<&Constraint>) -> Result<Option<LlamaSampler>, EngineError> {
        let Some(c) = constraint else {
            return Ok(None);
        };
        let (grammar, root) = grammar::for_constraint(c).map_err(|m| self.bad_format(m))?;
        let sampler = if c.lazy {
            LlamaSampler::grammar_lazy(&self.model, &grammar, &root, [c.prefix.as_bytes()], &[])
        } else {
            LlamaSampler::grammar(&self.model, &grammar, &root)
        };
        sampler.map(Some).map_err(|e| {
            self.bad_format(format!(
                "`{}`: llama.cpp refused the grammar made from the schema: {e}",
                c.what
            ))
        })
    }

    fn sampler(&self, p: &GenerationParams) -> Result<LlamaSampler, EngineError> {
        let c = SamplingConfig::from_params(p).map_err(|m| self.bad_params(m))?;
        let mut chain = Vec::new();
        if c.penalises() {
            chain.push(LlamaSampler::penalties(
                self.model.n_vocab(),
                PENALTY_WINDOW as i32,
                c.repetition_penalty,
                c.frequency_penalty,
                c.presence_penalty,
            ));
        }
        if c.temperature == 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if let Some(k) = c.top_k {
                chain.push(LlamaSampler::top_k(i32::try_from(k).unwrap_or(i32::MAX)));
            }
            if let Some(top_p) = c.top_p {
                chain.push(LlamaSampler::top_p(top_p, 1));
            }
            if let Some(min_p) = c.min_p {
                chain.push(LlamaSampler::min_p(min_p, 1));
            }
            chain.push(LlamaSampler::temp(c.temperature));
            // u32::MAX is llama.cpp's "pick a random seed".
            let seed = c.seed.map(|s| (s ^ (s >> 32)) as u32).unwrap_or(u32::MAX);
            chain.push(LlamaSampler::dist(seed));
        }
        Ok(LlamaSampler::chain_simple(chain))
    }
}

impl LocalEngine for LlamaEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn enforces_constraints(&self) -> bool {
        true
    }

    fn tokenize(&self, text: &str) -> Option<Result<Vec<u32>, EngineError>> {
        let tokens = self.model.vocab().tokenize(text.as_bytes(), false, true);
        Some(Ok(tokens.into_iter().map(|t| t.0 as u32).collect()))
    }

    fn complete(&self, input: &PromptInput<'_>, sink: TextSink<'_>) -> Result<EngineOutput, EngineError> {
        let submitted = Instant::now();
        let vocab = self.model.vocab();
        let mut tokens = Vec::with_capacity(input.text.len() / 3 + 2);
        if input.add_bos && vocab.bos().0 >= 0 {
            tokens.push(vocab.bos());
        }
        tokens.extend(vocab.tokenize(input.text.as_bytes(), false, true));
        let (_, max_tokens) = check_prompt(&self.name, tokens.len(), input.params, self.n_ctx)?;
        let sampler = self.sampler(input.params)?;
        let grammar = self.grammar(input.constraint)?;
        let (events, receiver) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            tokens,
            max_tokens,
            sampler,
            grammar,
            stops: input.stop.to_vec(),
            events,
            cancel: cancel.clone(),
            submitted,
        };
        let stopped = || EngineError::Inference {
            model: self.name.clone(),
            message: "the decoding thread stopped".into(),
        };
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| stopped())?;
        for event in receiver {
            match event {
                Event::Piece(piece) => {
                    if !cancel.load(Ordering::Relaxed) && !sink(&piece) {
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
                Event::Done(output) => return Ok(output),
                Event::Failed(message) => {
                    return Err(EngineError::Inference {
                        model: self.name.clone(),
                        message,
                    })
                }
            }
        }
        Err(stopped())
    }
}
