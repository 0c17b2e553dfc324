//! llama.cpp (GGUF) through `llama-cpp-2`.
//!
//! One loaded model is shared by every request. A scheduler thread per model
//! owns one llama.cpp context with one KV stream per sequence slot; concurrent
//! requests become sequences of that context and are decoded together, one
//! batch per step (continuous batching), instead of queueing one by one, with
//! the same tokens they would get alone (see `scheduler`). A request is
//! checked against the context before any decoding: prompt + `max_tokens` over
//! `n_ctx` fails with both numbers instead of being truncated.

mod cpu;
mod grammar;
mod scheduler;

pub use cpu::{BackendModule, CpuChoice};

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

/// Context when the entry sets no `n_ctx` and free memory cannot be read.
const FALLBACK_N_CTX: u32 = 4096;
/// The smallest default context (a model trained for less gets its own).
const MIN_DEFAULT_N_CTX: u32 = 512;
/// Of the memory available at load time, the share the KV cache may take by
/// default (weights, other models and the rest of the machine need the rest).
const KV_MEMORY_SHARE: u64 = 4;
/// Default most sequences decoded together (`parallel` in the entry). Each
/// costs an `n_ctx`-sized KV stream.
const DEFAULT_PARALLEL: u32 = 4;

/// The process's llama.cpp backend (initialised once, logs silenced unless
/// `LMHOST_LLAMA_LOG` is set), with its CPU module loaded (`cpu.rs`); the
/// reason there is none if no CPU module could be loaded.
///
/// The module is registered before llama.cpp initialises: with no backend
/// registered, llama.cpp loads ggml's own choice from ggml's own search path,
/// which trusts cpuid alone and includes the working directory. So without a
/// module of ours llama.cpp is not initialised at all.
pub fn backend() -> Result<&'static LlamaBackend, &'static str> {
    static BACKEND: OnceLock<Result<LlamaBackend, &'static str>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let quiet = !crate::config::llama_log_enabled();
            if quiet {
                silence_logs();
            }
            cpu::load().as_ref().map_err(String::as_str)?;
            let mut backend = LlamaBackend::init().map_err(|_| "llama.cpp's backend was initialised twice")?;
            if quiet {
                backend.void_logs();
            }
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| *e)
}

/// The CPU backend module this process runs llama.cpp on (the variant chosen
/// for this CPU, see `cpu.rs`), or why there is none.
pub fn cpu_backend() -> Result<&'static CpuChoice, &'static str> {
    backend()?;
    cpu::load().as_ref().map_err(String::as_str)
}

/// llama.cpp's and ggml's log callback set to one that drops everything (the
/// modules log as they load, before a [`LlamaBackend`] exists to do it).
fn silence_logs() {
    unsafe extern "C" fn drop_log(
        _: llama_cpp_sys_2::ggml_log_level,
        _: *const std::ffi::c_char,
        _: *mut std::ffi::c_void,
    ) {
    }
    // SAFETY: sets a process-wide callback to a function that does nothing.
    unsafe { llama_cpp_sys_2::llama_log_set(Some(drop_log), std::ptr::null_mut()) };
}

/// Whether this build of llama.cpp sees a GPU to offload layers to. (llama.cpp's
/// own `supports_gpu_offload` also counts RPC and says yes on CPU-only builds.)
pub fn gpu_offload_supported() -> bool {
    use llama_cpp_2::LlamaBackendDeviceType::{Gpu, IntegratedGpu};
    if backend().is_err() {
        return false;
    }
    llama_cpp_2::list_llama_ggml_backend_devices()
        .iter()
        .any(|d| matches!(d.device_type, Gpu | IntegratedGpu))
}

/// Why llama.cpp has no GPU device here, for the error of an entry that asks
/// for one: no GPU module in this build, a module that did not load (and the
/// loader's reason), or one that loaded and found no device.
fn no_gpu_reason() -> String {
    let modules = match cpu_backend() {
        Ok(choice) => &choice.others,
        Err(e) => return format!("llama.cpp is not initialised ({e})"),
    };
    if modules.is_empty() {
        return "this build of lmhost has no GPU backend module (scripts/build-cuda.sh builds one)".into();
    }
    let said: Vec<_> = modules
        .iter()
        .map(|m| match &m.loaded {
            Ok(()) => format!("the {} module loaded but found no device", m.name),
            Err(e) => format!("the {} module did not load ({e})", m.name),
        })
        .collect();
    format!("llama.cpp has no GPU device: {}", said.join("; "))
}

/// Threads when the entry sets no `threads`: (generation, prompt). Prompt
/// evaluation gets every core: each step is a large matrix product that
/// splits well. Generation gets half of them (at least one): a step is one
/// token per sequence, the threads meet at a spinning barrier many times per
/// token, and when another process holds a core the spinning threads wait for
/// the descheduled one. Measured on 2 cores with 6 busy processes: 23 tokens/s
/// with one generation thread, 11 to 15 with two; unloaded, one and two give
/// the same speed (BENCHMARKS.md, "Threads under load").
fn default_threads(cores: usize) -> (i32, i32) {
    let cores = i32::try_from(cores.max(1)).unwrap_or(i32::MAX);
    ((cores / 2).max(1), cores)
}

/// The context when the entry sets no `n_ctx`: what the model was trained
/// for, capped so that the KV cache (`parallel` streams of `n_ctx` cells, f16)
/// takes at most a quarter of the memory available at load time; a multiple
/// of 256, at least [`MIN_DEFAULT_N_CTX`] (or the trained length, if less).
/// The KV size per token is estimated from the header (layers × KV heads ×
/// head size, head size taken as `n_embd / n_head`).
fn default_n_ctx(model: &LlamaModel, trained: u32, parallel: u32, available: Option<u64>) -> u32 {
    let kv_width =
        u64::from(model.n_head_kv()) * u64::try_from(model.n_embd()).unwrap_or(0) / u64::from(model.n_head().max(1));
    let per_token = 2 * 2 * u64::from(model.n_layer()) * kv_width.max(1);
    context_within(trained, parallel, per_token, available)
}

/// [`default_n_ctx`]'s arithmetic: `trained`, capped so that `parallel` ×
/// context × `per_token` bytes fit a [`KV_MEMORY_SHARE`] of `available`.
fn context_within(trained: u32, parallel: u32, per_token: u64, available: Option<u64>) -> u32 {
    let Some(available) = available else {
        return FALLBACK_N_CTX.min(trained);
    };
    let budget = available / KV_MEMORY_SHARE;
    let fits = budget / (per_token.max(1) * u64::from(parallel.max(1)));
    let fits = u32::try_from(fits).unwrap_or(u32::MAX) / 256 * 256;
    trained.min(fits.max(MIN_DEFAULT_N_CTX))
}

/// `MemAvailable` of /proc/meminfo, in bytes (`None` where there is none).
/// Read by hand: one line of one file, where a system-information crate would
/// bring a dependency tree for it.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The compute devices llama.cpp sees: (backend, name, description, kind, total memory in bytes).
pub fn devices() -> Vec<(String, String, String, &'static str, usize)> {
    use llama_cpp_2::LlamaBackendDeviceType as T;
    if backend().is_err() {
        return Vec::new();
    }
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
        let (threads, threads_batch) = match settings.threads {
            Some(_) => {
                let n = super::cpu_threads(spec, settings.threads)? as i32;
                (n, n)
            }
            None => default_threads(std::thread::available_parallelism().map_or(1, |n| n.get())),
        };
        let parallel = match settings.parallel {
            Some(0) => return Err(SettingsError::key(spec, "parallel", "must be at least 1").into()),
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(256),
            None => DEFAULT_PARALLEL,
        };
        let gpu_layers = gpu_layers(&settings);
        if gpu_layers > 0 && !gpu_offload_supported() {
            return Err(invalid(format!(
                "it asks for GPU layers (`execute_on: gpu` or `gpu_layers_offloaded`), but {}; or set `execute_on: cpu`",
                no_gpu_reason()
            )));
        }
        let llama = backend().map_err(|message| EngineError::Load {
            model: name.clone(),
            path: path.to_path_buf(),
            message: message.to_string(),
        })?;
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
        let model = LlamaModel::load_from_file(llama, path, &params).map_err(|e| EngineError::Load {
            model: name.clone(),
            path: path.to_path_buf(),
            message: format!("{e} (is it a GGUF file?)"),
        })?;
        let trained = model.n_ctx_train().max(1);
        let n_ctx = match requested_ctx {
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(trained),
            None => default_n_ctx(&model, trained, parallel, available_memory()),
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
            threads_batch,
        };
        let jobs = scheduler::start(llama, model.clone(), config).map_err(|message| EngineError::Load {
            model: name.clone(),
            path: path.to_path_buf(),
            message,
        })?;
        tracing::debug!(model = %name, path = %path.display(), n_ctx, parallel, threads, threads_batch, gpu_layers, "loaded GGUF");
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

#[cfg(test)]
mod tests {
    use super::{context_within, default_threads};

    #[test]
    fn generation_gets_half_the_cores_and_prompts_all_of_them() {
        assert_eq!(default_threads(1), (1, 1));
        assert_eq!(default_threads(2), (1, 2));
        assert_eq!(default_threads(16), (8, 16));
        assert_eq!(default_threads(0), (1, 1));
    }

    #[test]
    fn the_default_context_is_the_trained_one_within_a_quarter_of_free_memory() {
        // SmolLM2-135M: 30 layers x 192-wide K and V, f16: 23 040 bytes a token.
        let per_token = 2 * 2 * 30 * 192;
        let gib = 1u64 << 30;
        assert_eq!(context_within(8192, 4, per_token, Some(16 * gib)), 8192);
        // 1 GiB free: 256 MiB for 4 streams, 2912 tokens each, down to 2816.
        assert_eq!(context_within(8192, 4, per_token, Some(gib)), 2816);
        // Never below 512, unless the model was trained for less.
        assert_eq!(context_within(8192, 4, per_token, Some(gib / 64)), 512);
        assert_eq!(context_within(256, 4, per_token, Some(gib / 64)), 256);
        // Memory unknown: 4096, or less if the model was trained for less.
        assert_eq!(context_within(131_072, 4, per_token, None), 4096);
        assert_eq!(context_within(2048, 4, per_token, None), 2048);
    }
}
