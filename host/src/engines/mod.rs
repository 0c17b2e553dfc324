//! Engines: the native code that runs a model, one file (or folder) per engine.
//!
//! A loaded [`Engine`] is one of two kinds. **Local** engines (llama.cpp, candle,
//! mock, human) implement [`LocalEngine`]: they take exactly the prompt an adapter
//! rendered and return exactly what the model produced, raw. The **remote**
//! engine ([`HttpEngine`]) takes the HTTP request an adapter shaped and returns
//! the provider's reply. Engines never post-process text (that is the adapter's
//! job) and read only their own keys of the registry entry. Which engine runs a
//! backend is a column of the backend table ([`crate::backends`]); [`load_engine`]
//! is the one place that turns that column into a loaded engine.
//!
//! Imports the registry (specs), generation parameters, credentials, config and
//! the backend table; must not import adapters, the model layer, the server or
//! the tools.

#[cfg(feature = "candle")]
mod candle;
mod files;
#[cfg(any(feature = "candle", feature = "llama"))]
mod gguf;
#[cfg(feature = "remote")]
pub mod http;
pub mod hub;
mod human;
#[cfg(feature = "llama")]
mod llama;
mod mock;
pub(crate) mod sampling;
#[cfg(feature = "remote")]
pub mod sse;
pub(crate) mod text;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "candle")]
pub use candle::{CandleEngine, KNOWN_GGUF_PRE_TOKENIZERS};
pub use files::resolve_model_file;
#[cfg(feature = "remote")]
pub use http::{HttpEngine, HttpInput, HttpOutput, HttpPolicy};
pub use hub::{HubError, HubOptions};
pub use human::HumanEngine;
#[cfg(feature = "llama")]
pub use llama::{
    backend as llama_backend, cpu_backend, devices, gpu_offload_supported, BackendModule, CpuChoice, LlamaEngine,
};
pub use mock::MockEngine;

use crate::backends::{find_backend, runnable_backend_names, EngineKind};
use crate::credentials::KeyStore;
use crate::generation::GenerationParams;
use crate::registry::{CandleSettings, LlamaSettings, ModelSpec, SettingsError};

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
    /// Output the engine must produce, if any.
    pub constraint: Option<&'a Constraint>,
}

/// Output a local engine must produce, enforced token by token: `prefix`, JSON
/// valid against `schema`, `suffix`. With `lazy`, output is free until `prefix`
/// appears and constrained from there.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// Literal text before the JSON.
    pub prefix: String,
    /// The JSON schema (an object).
    pub schema: serde_json::Value,
    /// Literal text after the JSON.
    pub suffix: String,
    /// Free until `prefix` appears.
    pub lazy: bool,
    /// What asked for it, for messages: `response_format` or `tool_choice`.
    pub what: &'static str,
}

impl Constraint {
    /// The whole output is JSON of `format`.
    pub fn response_format(format: &crate::generation::ResponseFormat) -> Self {
        Self {
            prefix: String::new(),
            schema: format.schema(),
            suffix: String::new(),
            lazy: false,
            what: "response_format",
        }
    }
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
#[cfg(any(feature = "llama", feature = "candle"))]
const MAX_THREADS: u64 = 1024;

/// An entry's `threads` for a local engine: 1 to [`MAX_THREADS`], default every core.
#[cfg(any(feature = "llama", feature = "candle"))]
pub(crate) fn cpu_threads(spec: &ModelSpec, threads: Option<u64>) -> Result<usize, SettingsError> {
    match threads {
        Some(0) => Err(SettingsError::key(spec, "threads", "must be at least 1")),
        Some(n) if n > MAX_THREADS => Err(SettingsError::key(
            spec,
            "threads",
            format!("{n} is more than {MAX_THREADS}"),
        )),
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
#[cfg(any(feature = "llama", feature = "candle"))]
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

/// A local engine: a loaded model that turns a rendered prompt into text.
pub trait LocalEngine: Send + Sync {
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

    /// Whether the engine enforces a [`Constraint`] while decoding (a
    /// `response_format`, a required tool call). One that does not gets no
    /// call with a constraint that is not lazy: the call fails first.
    fn enforces_constraints(&self) -> bool {
        false
    }
}

/// A loaded engine: local (takes a prompt) or remote (takes an HTTP request).
/// Cheap to clone; clones share the loaded model.
#[derive(Clone)]
pub enum Engine {
    /// llama.cpp, candle, mock or human.
    Local(Arc<dyn LocalEngine>),
    /// A remote API.
    #[cfg(feature = "remote")]
    Remote(Arc<HttpEngine>),
}

impl Engine {
    /// Facts about the model for the adapter.
    pub fn info(&self) -> &EngineInfo {
        match self {
            Engine::Local(engine) => engine.info(),
            #[cfg(feature = "remote")]
            Engine::Remote(engine) => engine.info(),
        }
    }

    /// The local engine, if this is one.
    pub fn as_local(&self) -> Option<&dyn LocalEngine> {
        match self {
            Engine::Local(engine) => Some(engine.as_ref()),
            #[cfg(feature = "remote")]
            Engine::Remote(_) => None,
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Local(_) => "Engine::Local",
            #[cfg(feature = "remote")]
            Engine::Remote(_) => "Engine::Remote",
        })
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
    /// A `response_format` the engine cannot enforce, or a schema it cannot
    /// turn into a grammar.
    #[error("`{model}`: {message}")]
    ResponseFormat {
        /// Model name.
        model: String,
        /// What is wrong.
        message: String,
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
    /// The user's key is not sent where the entry points (`engines/http/origin.rs`),
    /// and the backend needs one.
    #[error("no API key for `{model}`: {message}")]
    KeyWithheld {
        /// Model name.
        model: String,
        /// Why, and what the user can do.
        message: String,
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

impl From<SettingsError> for EngineError {
    /// An unusable setting is an invalid entry.
    fn from(e: SettingsError) -> Self {
        EngineError::InvalidSpec {
            model: e.model().into(),
            message: e.to_string(),
        }
    }
}

fn unsupported(model: &str, backend: &str) -> String {
    let runnable = runnable_backend_names().join(", ");
    match find_backend(backend) {
        Some(_) => format!(
            "backend `{backend}` of `{model}` is known, but this build of lmhost cannot run it (its cargo feature is off); it runs: {runnable}"
        ),
        None => format!("backend `{backend}` of `{model}` is not supported; lmhost runs: {runnable}"),
    }
}

/// The engine kind of a spec's backend, if this build runs it.
fn engine_kind(spec: &ModelSpec) -> Result<EngineKind, EngineError> {
    find_backend(spec.backend())
        .filter(|b| b.runnable())
        .map(|b| b.engine)
        .ok_or_else(|| EngineError::UnsupportedBackend {
            model: spec.model_name().into(),
            backend: spec.backend().into(),
        })
}

/// Load the engine a spec asks for. `model_dirs` are searched for relative
/// `model_path`s; `hub` says where to get files an entry names by `huggingface_id`.
pub fn load_engine(
    spec: &ModelSpec,
    model_dirs: &[std::path::PathBuf],
    hub: &HubOptions,
    keys: &KeyStore,
) -> Result<Engine, EngineError> {
    let file = engine_file(spec, model_dirs, hub)?;
    load_engine_from(spec, file.as_deref(), keys)
}

/// The weights file a spec's engine loads, for backends that load one.
pub(crate) fn engine_file(
    spec: &ModelSpec,
    model_dirs: &[std::path::PathBuf],
    hub: &HubOptions,
) -> Result<Option<std::path::PathBuf>, EngineError> {
    if engine_kind(spec)?.loads_file() {
        resolve_model_file(spec, model_dirs, hub).map(Some)
    } else {
        Ok(None)
    }
}

/// Load the engine of a spec whose file [`engine_file`] found: the one match
/// from the backend table's engine column to an engine.
#[cfg_attr(
    not(all(feature = "llama", feature = "candle", feature = "remote")),
    allow(unused_variables)
)]
pub(crate) fn load_engine_from(spec: &ModelSpec, file: Option<&Path>, keys: &KeyStore) -> Result<Engine, EngineError> {
    let local: Arc<dyn LocalEngine> = match engine_kind(spec)? {
        #[cfg(feature = "llama")]
        EngineKind::Llama => Arc::new(LlamaEngine::load(spec, weights(spec, file)?)?),
        #[cfg(feature = "candle")]
        EngineKind::Candle => Arc::new(CandleEngine::load(spec, weights(spec, file)?)?),
        #[cfg(feature = "remote")]
        EngineKind::Http => {
            let credential = keys.for_backend(spec.backend());
            return Ok(Engine::Remote(Arc::new(HttpEngine::from_spec(spec, &credential)?)));
        }
        EngineKind::Mock => Arc::new(MockEngine::from_spec(spec)?),
        EngineKind::Human => Arc::new(HumanEngine::stdio()),
        // Kinds whose feature is off never pass `engine_kind`.
        #[allow(unreachable_patterns)]
        _ => {
            return Err(EngineError::UnsupportedBackend {
                model: spec.model_name().into(),
                backend: spec.backend().into(),
            })
        }
    };
    Ok(Engine::Local(local))
}

/// The weights file of an engine that loads one.
#[cfg(any(feature = "llama", feature = "candle"))]
fn weights<'a>(spec: &ModelSpec, file: Option<&'a Path>) -> Result<&'a Path, EngineError> {
    file.ok_or_else(|| EngineError::InvalidSpec {
        model: spec.model_name().into(),
        message: "no model file was resolved for this entry".into(),
    })
}

/// The key under which a loaded engine can be shared by several specs: the
/// engine kind, the file, and the engine's settings struct as JSON
/// ([`LlamaSettings`], [`CandleSettings`]). Every key an engine reads is a field
/// of its struct, so none can be forgotten here (`bos_string`/`eos_string` once
/// were). `None`: not shared (no file, or settings that do not read).
pub(crate) fn engine_key(spec: &ModelSpec, file: Option<&Path>) -> Option<String> {
    let kind = find_backend(spec.backend())?.engine;
    let path = file.filter(|_| kind.loads_file())?;
    let settings = match kind {
        EngineKind::Llama => serde_json::to_string(&spec.settings::<LlamaSettings>().ok()?),
        EngineKind::Candle => serde_json::to_string(&spec.settings::<CandleSettings>().ok()?),
        _ => return None,
    }
    .ok()?;
    Some(format!(
        "{kind:?}:{}:{settings}",
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf()).display(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::SpecSource;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> ModelSpec {
        ModelSpec::from_entry(v.as_object().unwrap(), SpecSource::Query).unwrap()
    }

    #[test]
    fn engine_key_holds_every_engine_setting_and_nothing_else() {
        let file = Path::new("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let key = |v| engine_key(&spec(v), Some(file)).unwrap();
        let base = key(json!({"model_name": "a", "backend": "llamacpp", "eos_string": "</s>"}));
        // Another EOS fallback is another engine (the bug: the second entry got the first's EOS).
        assert_ne!(
            base,
            key(json!({"model_name": "b", "backend": "llamacpp", "eos_string": "<eos>"}))
        );
        assert_ne!(
            base,
            key(json!({"model_name": "a", "backend": "llamacpp", "eos_string": "</s>", "bos_string": "<s>"}))
        );
        assert_ne!(
            base,
            key(json!({"model_name": "a", "backend": "llamacpp", "eos_string": "</s>", "n_ctx": 512}))
        );
        // Names, metadata, adapter keys, generation defaults and unknown keys share it.
        assert_eq!(
            base,
            key(
                json!({"model_name": "c", "backend": "llamacpp", "eos_string": "</s>", "license": "x",
                "eos_to_cull": "x", "adapter": "chat-template", "temperature": 0.5, "whatever": 1})
            )
        );
        // Engines without a file are never shared; candle keys its own settings.
        assert_eq!(
            engine_key(&spec(json!({"model_name": "m", "backend": "mock"})), Some(file)),
            None
        );
        let candle = |v| engine_key(&spec(v), Some(file)).unwrap();
        assert_ne!(
            candle(json!({"model_name": "a", "backend": "huggingface_local"})),
            candle(json!({"model_name": "a", "backend": "huggingface_local", "candle_kernels": "candle"}))
        );
    }
}
