//! Engines: the native code that runs a model. One trait, one file per backend.
//!
//! An engine takes exactly what an adapter shaped (a prompt, or later an HTTP
//! request) and returns exactly what the model produced, raw. It never
//! post-processes text (that is the adapter's job) and never reads the registry
//! beyond its own keys.

mod candle;
mod files;
pub mod http;
pub mod hub;
mod human;
mod llama;
mod mock;
pub(crate) mod sampling;
pub mod sse;
pub(crate) mod text;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use candle::{CandleEngine, KNOWN_GGUF_PRE_TOKENIZERS};
pub use files::resolve_model_file;
pub use http::{HttpEngine, HttpInput, HttpOutput, HttpPolicy};
pub use hub::{HubError, HubOptions};
pub use human::HumanEngine;
pub use llama::{backend as llama_backend, devices, gpu_offload_supported, LlamaEngine};
pub use mock::MockEngine;

use crate::credentials::KeyStore;
use crate::generation::GenerationParams;
use crate::registry::ModelSpec;

/// What the engine knows about its model, for the adapter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineInfo {
    /// Chat template shipped in the model file.
    pub builtin_template: Option<String>,
    /// Text of the BOS token.
    pub bos_token: Option<String>,
    /// Text of the EOS token.
    pub eos_token: Option<String>,
    /// Whether the tokenizer adds BOS by default.
    pub add_bos: bool,
    /// Longest context the engine will run with.
    pub context_length: Option<u32>,
}

/// A prompt, as the adapter shaped it, plus the merged parameters.
#[derive(Debug, Clone)]
pub struct PromptInput<'a> {
    /// The exact text to tokenize.
    pub text: &'a str,
    /// Prepend BOS.
    pub add_bos: bool,
    /// All stop strings (call's and adapter's).
    pub stop: &'a [String],
    /// Sampling and length parameters.
    pub params: &'a GenerationParams,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn (end-of-generation token) or hit a stop string.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The consumer of the stream asked to stop.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// What the engine produced.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    /// The raw generated text (special tokens rendered, stop strings excluded).
    pub text: String,
    /// The generated token ids (empty for engines without tokens).
    pub token_ids: Vec<u32>,
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Time spent evaluating the prompt.
    pub prompt_time: Duration,
    /// Time spent generating, first token included.
    pub generation_time: Duration,
    /// From the start of the call to the first generated token.
    pub time_to_first_token: Option<Duration>,
}

/// Most CPU threads an entry may ask for.
const MAX_THREADS: u64 = 1024;

/// An entry's `threads` for a local engine: 1 to [`MAX_THREADS`], default every core.
pub(crate) fn cpu_threads(spec: &ModelSpec) -> Result<usize, String> {
    match spec.get_u64("threads")? {
        Some(0) => Err("`threads` must be at least 1".into()),
        Some(n) if n > MAX_THREADS => Err(format!("`threads` {n} is more than {MAX_THREADS}")),
        Some(n) => Ok(n as usize),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The checks every local engine makes on a tokenized prompt before generating:
/// not empty, `max_tokens` at least 1 (default [`DEFAULT_MAX_TOKENS`]), and prompt
/// plus `max_tokens` within the context (an error with both numbers, never a
/// truncation). Returns the prompt's token count and `max_tokens`.
///
/// [`DEFAULT_MAX_TOKENS`]: crate::generation::DEFAULT_MAX_TOKENS
pub(crate) fn check_prompt(
    model: &str,
    prompt_len: usize,
    params: &GenerationParams,
    context: u32,
) -> Result<(u32, u32), EngineError> {
    let bad = |message: &str| EngineError::InvalidParams {
        model: model.into(),
        message: message.into(),
    };
    if prompt_len == 0 {
        return Err(bad("the prompt is empty"));
    }
    let prompt_tokens = u32::try_from(prompt_len).unwrap_or(u32::MAX);
    let max_tokens = params.max_tokens.unwrap_or(crate::generation::DEFAULT_MAX_TOKENS);
    if max_tokens == 0 {
        return Err(bad("max_tokens must be at least 1"));
    }
    if u64::from(prompt_tokens) + u64::from(max_tokens) > u64::from(context) {
        return Err(EngineError::ContextOverflow {
            model: model.into(),
            prompt_tokens,
            max_tokens,
            context,
        });
    }
    Ok((prompt_tokens, max_tokens))
}

/// Receives raw text as it is generated; returns `false` to stop generation.
pub type TextSink<'a> = &'a mut dyn FnMut(&str) -> bool;

/// A loaded model that turns prompts into text.
pub trait Engine: Send + Sync {
    /// Facts about the model for the adapter.
    fn info(&self) -> &EngineInfo;

    /// Generate from a prompt; every piece of raw text goes to `sink` as it is
    /// produced, and the pieces concatenate to the output's `text`.
    fn complete(&self, input: &PromptInput<'_>, sink: TextSink<'_>) -> Result<EngineOutput, EngineError>;

    /// Token ids of `text` as this engine reads a prompt (special tokens parsed,
    /// no BOS added); `None` for engines without a tokenizer.
    fn tokenize(&self, _text: &str) -> Option<Result<Vec<u32>, EngineError>> {
        None
    }

    /// The HTTP engine behind this one, for adapters that shape HTTP requests.
    fn as_http(&self) -> Option<&HttpEngine> {
        None
    }
}

/// What went wrong in an engine. Each variant names the model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The registry entry names a backend lmhost does not run.
    #[error("{}", unsupported(model, backend))]
    UnsupportedBackend {
        /// Model name.
        model: String,
        /// The backend.
        backend: String,
    },
    /// A key of the registry entry is missing or has the wrong type.
    #[error("registry entry of `{model}`: {message}")]
    InvalidSpec {
        /// Model name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// The weights file is not where the entry says.
    #[error(
        "model file of `{model}` not found; tried {}. Put the file there (for the default model: `make model`), or set `model_path` in the registry entry",
        files::list_paths(tried)
    )]
    ModelFileNotFound {
        /// Model name.
        model: String,
        /// Every path looked at.
        tried: Vec<std::path::PathBuf>,
    },
    /// The entry names its file on a model hub, and getting it failed.
    #[error(
        "model file of `{model}`: {error}{}",
        if tried.is_empty() { String::new() } else { format!("; `model_path` was not found either (tried {})", files::list_paths(tried)) }
    )]
    Hub {
        /// Model name.
        model: String,
        /// What went wrong.
        error: Box<HubError>,
        /// The `model_path` candidates looked at first, if the entry has one.
        tried: Vec<std::path::PathBuf>,
    },
    /// The weights file exists but cannot be loaded.
    #[error("cannot load `{}` for `{model}`: {message}", path.display())]
    Load {
        /// Model name.
        model: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// Prompt plus requested tokens do not fit the context.
    #[error("prompt of {prompt_tokens} tokens + max_tokens {max_tokens} = {} exceeds the context of {context} tokens of `{model}`", prompt_tokens + max_tokens)]
    ContextOverflow {
        /// Model name.
        model: String,
        /// Tokens in the prompt.
        prompt_tokens: u32,
        /// Tokens requested.
        max_tokens: u32,
        /// Context size.
        context: u32,
    },
    /// A parameter the engine cannot honour.
    #[error("`{model}`: {message}")]
    InvalidParams {
        /// Model name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// The adapter produced an input this engine does not take.
    #[error("the {backend} engine of `{model}` takes {expected}, but the adapter produced {got}")]
    WrongInput {
        /// Model name.
        model: String,
        /// Backend.
        backend: String,
        /// What it takes.
        expected: &'static str,
        /// What it got.
        got: &'static str,
    },
    /// A remote backend has no API key.
    #[error(
        "no API key for `{model}` (backend `{backend}`): set ${env}, or add {{\"{section}\": {{\"api_key\": \"...\"}}}} to key.json (./key.json, ~/.clemcore/key.json or $LMHOST_HOME/key.json)"
    )]
    MissingKey {
        /// Model name.
        model: String,
        /// Backend.
        backend: String,
        /// The environment variable read.
        env: &'static str,
        /// The key.json section read.
        section: &'static str,
    },
    /// The adapter asked for a request the host does not send.
    #[error("the adapter of `{model}` asked for a request the host refuses: {message}")]
    Refused {
        /// Model name.
        model: String,
        /// What was refused and why.
        message: String,
    },
    /// A remote API answered with an error.
    #[error("`{model}`: the {backend} API answered {status}: {message}")]
    Provider {
        /// Model name.
        model: String,
        /// Backend.
        backend: String,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// A remote API could not be reached or its reply not read.
    #[error("`{model}`: {message}")]
    Http {
        /// Model name.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// Inference failed.
    #[error("`{model}`: inference failed: {message}")]
    Inference {
        /// Model name.
        model: String,
        /// Why.
        message: String,
    },
}

fn unsupported(model: &str, backend: &str) -> String {
    let runnable = crate::registry::runnable_backend_names().join(", ");
    match crate::registry::find_backend(backend) {
        Some(_) => format!(
            "backend `{backend}` of `{model}` is known, but this build of lmhost cannot run it yet; it runs: {runnable}"
        ),
        None => format!("backend `{backend}` of `{model}` is not supported; lmhost runs: {runnable}"),
    }
}

/// Load the engine a spec asks for. `model_dirs` are searched for relative
/// `model_path`s; `hub` says where to get files an entry names by `huggingface_id`.
pub fn load_engine(
    spec: &ModelSpec,
    model_dirs: &[std::path::PathBuf],
    hub: &HubOptions,
    keys: &KeyStore,
) -> Result<Arc<dyn Engine>, EngineError> {
    let file = engine_file(spec, model_dirs, hub)?;
    load_engine_from(spec, file.as_deref(), keys)
}

/// The weights file a spec's engine loads, for backends that load one.
pub(crate) fn engine_file(
    spec: &ModelSpec,
    model_dirs: &[std::path::PathBuf],
    hub: &HubOptions,
) -> Result<Option<std::path::PathBuf>, EngineError> {
    match spec.backend() {
        "llamacpp" | "huggingface_local" => resolve_model_file(spec, model_dirs, hub).map(Some),
        _ => Ok(None),
    }
}

/// Load the engine of a spec whose file [`engine_file`] found.
pub(crate) fn load_engine_from(
    spec: &ModelSpec,
    file: Option<&Path>,
    keys: &KeyStore,
) -> Result<Arc<dyn Engine>, EngineError> {
    if let Some(backend) = crate::registry::find_backend(spec.backend()) {
        if backend.kind == crate::registry::BackendKind::Remote {
            return Ok(Arc::new(HttpEngine::from_spec(spec, &keys.for_backend(backend.name))?));
        }
    }
    match (spec.backend(), file) {
        ("llamacpp", Some(path)) => Ok(Arc::new(LlamaEngine::load(spec, path)?)),
        ("huggingface_local", Some(path)) => Ok(Arc::new(CandleEngine::load(spec, path)?)),
        ("mock" | "programmatic", _) => Ok(Arc::new(MockEngine::from_spec(spec)?)),
        ("human" | "terminal", _) => Ok(Arc::new(HumanEngine::stdio())),
        (other, _) => Err(EngineError::UnsupportedBackend {
            model: spec.model_name().into(),
            backend: other.into(),
        }),
    }
}

/// The key under which a loaded engine can be shared by several specs.
pub(crate) fn engine_key(spec: &ModelSpec, file: Option<&Path>) -> Option<String> {
    match (spec.backend(), file) {
        ("llamacpp", Some(path)) => {
            // Every key that changes how the engine is loaded is part of the key.
            let settings: Vec<String> = ["threads", "n_ctx", "parallel", "execute_on", "gpu_layers_offloaded"]
                .iter()
                .map(|k| spec.get(k).map(|v| v.to_string()).unwrap_or_default())
                .collect();
            Some(format!(
                "llamacpp:{}:{}",
                path.canonicalize().unwrap_or_else(|_| path.to_path_buf()).display(),
                settings.join(":")
            ))
        }
        ("huggingface_local", Some(path)) => Some(format!(
            "candle:{}:{}",
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()).display(),
            ["n_ctx", "execute_on", "candle_kernels", "threads"]
                .iter()
                .map(|k| spec.get(k).map(|v| v.to_string()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(":")
        )),
        _ => None,
    }
}
