//! The library API: a [`Host`] resolves queries and loads [`Model`]s; a model
//! generates through its adapter and engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::adapters::{
    adapter_dirs, default_adapter, wit, Adapter, AdapterLimits, AdapterRuntime, AdapterSession, AdapterStream,
};
use crate::credentials::KeyStore;
use crate::engines::hub::HubOptions;
use crate::engines::{
    engine_file, engine_key, load_engine_from, Engine, EngineError, EngineInfo, FinishReason, HttpInput, PromptInput,
};
use crate::error::{Error, Result};
use crate::generation::{Generation, GenerationParams, Message, Timings, Usage};
use crate::registry::{validate_spec, ModelSpec, Query, Registry, RegistryError, Severity, SpecSource};

/// Where the host finds its files.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// lmhost's home: user registry, component cache, models (`$LMHOST_HOME`, default `~/.lmhost`).
    pub home: PathBuf,
    /// Registry files consulted before the default layers (`--registry`).
    pub registry_files: Vec<PathBuf>,
    /// Folders searched for relative `model_path`s, in order.
    pub model_dirs: Vec<PathBuf>,
    /// Keep precompiled adapters in `<home>/cache/components`.
    pub component_cache: bool,
    /// Limits for every adapter call.
    pub adapter_limits: AdapterLimits,
    /// Folders searched for `<name>.wasm` when an entry names an adapter that is
    /// not built in ([`adapter_dirs`]: `$LMHOST_ADAPTERS_DIR`, `<home>/adapters`,
    /// this checkout's `guests/out`).
    pub adapter_dirs: Vec<PathBuf>,
    /// Where `llamacpp` entries with `huggingface_id` + `filename` get their files
    /// ([`HubOptions::from_lookup`] on the environment and `home`'s key.json).
    pub hub: HubOptions,
    /// The key.json files remote backends take their keys from, first wins per
    /// backend ([`KeyStore::default_files`]).
    pub key_files: Vec<PathBuf>,
    /// Whether API keys in the environment (`OPENAI_API_KEY`, ...) override them.
    pub keys_from_env: bool,
}

/// `$LMHOST_HOME`, default `~/.lmhost`.
pub(crate) fn default_home() -> PathBuf {
    std::env::var_os("LMHOST_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".lmhost")
    })
}

impl HostConfig {
    /// From the environment: `LMHOST_HOME` (default `~/.lmhost`), `LMHOST_MODELS_DIR`
    /// (default `<home>/models`), then `./models`.
    pub fn from_env() -> Self {
        Self::with_home(default_home())
    }

    /// With an explicit home folder (tests use a temporary one); the hub options
    /// still come from the environment.
    pub fn with_home(home: PathBuf) -> Self {
        let models = std::env::var_os("LMHOST_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("models"));
        Self {
            model_dirs: vec![models, PathBuf::from("models")],
            hub: HubOptions::from_lookup(&home, |name| std::env::var(name).ok()),
            adapter_dirs: adapter_dirs(&home),
            key_files: KeyStore::default_files(&home, std::env::var_os("HOME").map(PathBuf::from)),
            keys_from_env: true,
            home,
            registry_files: Vec::new(),
            component_cache: true,
            adapter_limits: AdapterLimits::default(),
        }
    }
}

/// The registry, the adapter runtime and the loaded engines.
///
/// ```no_run
/// use lmhost::{Host, Message, GenerationParams};
/// let host = Host::new()?;
/// let model = host.load("SmolLM2-135M-Instruct")?;
/// let g = model.generate(&[Message::user("Name a colour.")], &GenerationParams::greedy(16))?;
/// println!("{} ({:.0} tokens/s)", g.response_text, g.tokens_per_second());
/// # Ok::<(), lmhost::Error>(())
/// ```
pub struct Host {
    config: HostConfig,
    registry: Registry,
    adapters: AdapterRuntime,
    engines: Mutex<HashMap<String, Arc<dyn Engine>>>,
}

impl Host {
    /// A host configured from the environment ([`HostConfig::from_env`]).
    pub fn new() -> Result<Self> {
        Self::with_config(HostConfig::from_env())
    }

    /// A host with an explicit configuration.
    pub fn with_config(config: HostConfig) -> Result<Self> {
        let registry = Registry::layered(&config.registry_files, &config.home)?;
        let cache = config
            .component_cache
            .then(|| config.home.join("cache").join("components"));
        let adapters = AdapterRuntime::with_adapter_dirs(cache, config.adapter_dirs.clone())?;
        Ok(Self {
            config,
            registry,
            adapters,
            engines: Mutex::new(HashMap::new()),
        })
    }

    /// The layered registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The adapter runtime (to load adapters directly).
    pub fn adapters(&self) -> &AdapterRuntime {
        &self.adapters
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Resolve a query (a name, or a JSON object as text) to a spec.
    pub fn resolve(&self, query: impl Into<Query>) -> Result<ModelSpec> {
        Ok(self.registry.resolve(&query.into())?)
    }

    /// Resolve and load a model. Engines are shared between specs that name the
    /// same weights and settings, so loading twice costs nothing.
    pub fn load(&self, query: impl Into<Query>) -> Result<Model> {
        let spec = self.resolve(query)?;
        self.load_spec(spec)
    }

    /// Load a model from a resolved spec.
    pub fn load_spec(&self, spec: ModelSpec) -> Result<Model> {
        let name = spec.model_name().to_string();
        let problems: Vec<String> = validate_spec(&spec)
            .into_iter()
            .filter(|(severity, _, _)| *severity == Severity::Error)
            .map(|(_, key, message)| match key {
                Some(key) => format!("`{key}` {message}"),
                None => message,
            })
            .collect();
        if !problems.is_empty() {
            return Err(RegistryError::InvalidEntry {
                model: name,
                source_desc: spec.source().to_string(),
                problems,
            }
            .into());
        }
        let defaults = GenerationParams::from_spec(&spec).map_err(|message| Error::InvalidRequest {
            model: name.clone(),
            message,
        })?;
        let adapter_ref = match spec.get_str("adapter").map_err(|message| EngineError::InvalidSpec {
            model: name.clone(),
            message,
        })? {
            Some(a) => a.to_string(),
            None => default_adapter(spec.backend())
                .ok_or_else(|| EngineError::UnsupportedBackend {
                    model: name.clone(),
                    backend: spec.backend().into(),
                })?
                .to_string(),
        };
        let engine = self.engine(&spec)?;
        let base = match spec.source() {
            SpecSource::File { path, .. } => path.parent().map(|p| p.to_path_buf()),
            _ => None,
        };
        let adapter = self.adapters.load(
            &adapter_ref,
            base.as_deref(),
            limits_for(&spec, self.config.adapter_limits)?,
        )?;
        let info = model_info(&spec, engine.info());
        Ok(Model {
            spec,
            engine,
            adapter,
            info,
            defaults,
        })
    }

    fn engine(&self, spec: &ModelSpec) -> Result<Arc<dyn Engine>> {
        let file = engine_file(spec, &self.config.model_dirs, &self.config.hub)?;
        let key = engine_key(spec, file.as_deref());
        if let Some(key) = &key {
            if let Some(engine) = self.engines.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
                return Ok(engine.clone());
            }
        }
        // Keys are read when a remote model is loaded, so a broken key.json
        // never stands in the way of local models.
        let keys = if spec.backend_kind() == Some(crate::registry::BackendKind::Remote) {
            let env = self.config.keys_from_env;
            KeyStore::from_files(&self.config.key_files, |name| {
                env.then(|| std::env::var(name).ok()).flatten()
            })
            .map_err(|e| EngineError::InvalidSpec {
                model: spec.model_name().into(),
                message: e.to_string(),
            })?
        } else {
            KeyStore::default()
        };
        let engine = load_engine_from(spec, file.as_deref(), &keys)?;
        if let Some(key) = key {
            self.engines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, engine.clone());
        }
        Ok(engine)
    }
}

/// The adapter limits of an entry: the host's, with the entry's `adapter_limits`
/// (`deadline_ms`, `memory_mb`, `output_mb`, `template_fuel`,
/// `template_memory_mb`, `template_deadline_ms`) on top. Values above the
/// sandbox's maxima are refused, not clamped.
fn limits_for(spec: &ModelSpec, base: AdapterLimits) -> Result<AdapterLimits> {
    let invalid = |message: String| {
        Error::from(EngineError::InvalidSpec {
            model: spec.model_name().into(),
            message,
        })
    };
    let Some(value) = spec.get("adapter_limits") else {
        return Ok(base);
    };
    let Some(map) = value.as_object() else {
        return Err(invalid(format!("`adapter_limits` must be an object, found {value}")));
    };
    let mut limits = base;
    for (key, v) in map {
        let n = v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(format!("`adapter_limits.{key}` must be a positive integer, found {v}")))?;
        let within = |max: u64, unit: &str| {
            if n > max {
                Err(invalid(format!(
                    "`adapter_limits.{key}` is {n}, over the maximum of {max} {unit}"
                )))
            } else {
                Ok(n)
            }
        };
        match key.as_str() {
            "deadline_ms" => limits.deadline = Duration::from_millis(within(60_000, "ms")?),
            "memory_mb" => limits.memory_bytes = (within(1024, "MiB")? as usize) << 20,
            "output_mb" => limits.output_bytes = (within(256, "MiB")? as usize) << 20,
            "template_fuel" => limits.template.fuel = within(1_000_000_000, "units")?,
            "template_memory_mb" => limits.template.memory_bytes = (within(1024, "MiB")? as usize) << 20,
            "template_deadline_ms" => limits.template.deadline = Duration::from_millis(within(60_000, "ms")?),
            other => {
                return Err(invalid(format!(
                    "unknown key `adapter_limits.{other}` (known: deadline_ms, memory_mb, output_mb, template_fuel, \
                     template_memory_mb, template_deadline_ms)"
                )))
            }
        }
    }
    Ok(limits)
}

fn model_info(spec: &ModelSpec, engine: &EngineInfo) -> wit::ModelInfo {
    wit::ModelInfo {
        name: spec.model_name().into(),
        backend: spec.backend().into(),
        spec_json: Value::Object(spec.as_json().clone()).to_string(),
        builtin_template: engine.builtin_template.clone(),
        bos_token: engine.bos_token.clone(),
        eos_token: engine.eos_token.clone(),
        add_bos: engine.add_bos,
        context_length: engine.context_length,
    }
}

/// A loaded model: spec, engine and adapter. Cheap to share across threads.
pub struct Model {
    spec: ModelSpec,
    engine: Arc<dyn Engine>,
    adapter: Adapter,
    info: wit::ModelInfo,
    defaults: GenerationParams,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name())
            .field("backend", &self.spec.backend())
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// The resolved registry entry.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The model's registry name.
    pub fn name(&self) -> &str {
        self.spec.model_name()
    }

    /// The adapter shaping its requests.
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }

    /// What its adapter is told about it (`model-info`: spec, template, BOS/EOS from the engine).
    pub fn model_info(&self) -> &wit::ModelInfo {
        &self.info
    }

    /// One user message, the entry's default parameters.
    pub fn run(&self, prompt: &str) -> Result<Generation> {
        self.generate(&[Message::user(prompt)], &GenerationParams::default())
    }

    /// Generate an answer to `messages`.
    pub fn generate(&self, messages: &[Message], params: &GenerationParams) -> Result<Generation> {
        self.call(messages, params, None)
    }

    /// Generate answers to several conversations at once. They run concurrently
    /// and, on llama.cpp, are decoded together in one batch per step; the results
    /// come back in input order.
    pub fn generate_batch(&self, requests: &[(Vec<Message>, GenerationParams)]) -> Vec<Result<Generation>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = requests
                .iter()
                .map(|(messages, params)| scope.spawn(move || self.generate(messages, params)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::InvalidRequest {
                            model: self.name().into(),
                            message: "a batch worker panicked".into(),
                        })
                    })
                })
                .collect()
        })
    }

    /// Generate, handing answer text to `on_text` as it is produced. The pieces
    /// concatenate to the returned `response_text`.
    pub fn generate_stream(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        mut on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        self.call(
            messages,
            params,
            Some(&mut |piece: &str| {
                on_text(piece);
                true
            }),
        )
    }

    /// Like [`generate_stream`](Self::generate_stream), but `on_text` returns
    /// whether to go on: `false` stops generation early (the generation then
    /// ends with `finish_reason` `cancelled`). Used when the reader of a stream
    /// has gone away.
    ///
    /// ```
    /// # let host = lmhost::Host::new()?;
    /// let model = host.load(r#"{"model_name": "x", "backend": "mock", "reply": "one two three four"}"#)?;
    /// let mut pieces = Vec::new();
    /// let g = model.generate_stream_while(&[lmhost::Message::user("Hi")], &Default::default(), |piece| {
    ///     pieces.push(piece.to_string());
    ///     pieces.len() < 2
    /// })?;
    /// assert_eq!(pieces, ["one", " two"]); // the adapter holds back trailing spaces
    /// assert_eq!(g.finish_reason, "cancelled");
    /// # Ok::<(), lmhost::Error>(())
    /// ```
    pub fn generate_stream_while(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        self.call(messages, params, Some(&mut on_text))
    }

    fn call(
        &self,
        messages: &[Message],
        params: &GenerationParams,
        on_text: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<Generation> {
        let started = Instant::now();
        let name = self.name().to_string();
        if messages.is_empty() {
            return Err(Error::InvalidRequest {
                model: name,
                message: "no messages".into(),
            });
        }
        let params = params.or(&self.defaults);
        let wit_messages: Vec<wit::Message> = messages
            .iter()
            .map(|m| wit::Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let wit_params = wit::Params {
            stream: on_text.is_some(),
            ..wit::Params::from(&params)
        };
        // One adapter instance serves the whole request: shape, then parse or stream.
        let mut session = self.adapter.session();
        let request = session.shape_request(&self.info, &wit_messages, &wit_params)?;
        let mut adapter_time = started.elapsed();
        let prompt = match request {
            wit::Request::Prompt(p) => p,
            wit::Request::Http(request) => return self.call_http(session, request, on_text, started, adapter_time),
        };
        let mut stop = params.stop.clone();
        for s in &prompt.stop {
            if !stop.contains(s) {
                stop.push(s.clone());
            }
        }
        let input = PromptInput {
            text: &prompt.text,
            add_bos: prompt.add_bos,
            stop: &stop,
            params: &params,
        };

        let (output, completion) = match on_text {
            None => {
                let output = self.engine.complete(&input, &mut |_| true)?;
                let t = Instant::now();
                let completion = session.parse_response(&self.info, &output.text)?;
                adapter_time += t.elapsed();
                (output, completion)
            }
            Some(on_text) => {
                let t = Instant::now();
                let mut stream = session.stream(&self.info)?;
                adapter_time += t.elapsed();
                let mut failure = None;
                let output = self.engine.complete(&input, &mut |raw| {
                    let t = Instant::now();
                    let pushed = stream.push(raw);
                    adapter_time += t.elapsed();
                    deliver(pushed, &mut failure, &mut *on_text)
                })?;
                if let Some(e) = failure {
                    return Err(e.into());
                }
                let t = Instant::now();
                let (completion, rest) = stream.finish()?;
                adapter_time += t.elapsed();
                if !rest.is_empty() && output.finish_reason != FinishReason::Cancelled {
                    on_text(&rest);
                }
                (output, completion)
            }
        };
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        Ok(Generation {
            model: name,
            prompt: Value::String(prompt.text),
            response: Value::String(output.text),
            response_text: completion.text,
            finish_reason: match output.finish_reason {
                FinishReason::Stop => completion.finish_reason.unwrap_or_else(|| "stop".into()),
                other => other.as_str().into(),
            },
            usage: Usage {
                prompt_tokens: output.prompt_tokens,
                completion_tokens: output.completion_tokens,
                total_tokens: output.prompt_tokens + output.completion_tokens,
            },
            timings: Timings {
                adapter_ms: ms(adapter_time),
                prompt_ms: ms(output.prompt_time),
                generation_ms: ms(output.generation_time),
                time_to_first_token_ms: output.time_to_first_token.map(ms),
                total_ms: ms(started.elapsed()),
            },
        })
    }
}

impl Model {
    /// The HTTP half of [`call`](Self::call): send what the adapter shaped, hand
    /// each event of a streamed reply to the adapter's stream (created at the
    /// first event, so a provider that streams unasked is still read right), or
    /// the whole body to `parse-response`.
    fn call_http(
        &self,
        session: AdapterSession,
        request: wit::HttpRequest,
        mut on_text: Option<&mut dyn FnMut(&str) -> bool>,
        started: Instant,
        mut adapter_time: Duration,
    ) -> Result<Generation> {
        let name = self.name().to_string();
        let Some(http) = self.engine.as_http() else {
            return Err(EngineError::WrongInput {
                model: name,
                backend: self.spec.backend().into(),
                expected: "a prompt",
                got: "an HTTP request",
            }
            .into());
        };
        let input = HttpInput {
            method: &request.method,
            path: &request.path,
            headers: &request.headers,
            body: &request.body,
        };
        // The session until the first event turns it into a stream.
        let mut session = Some(session);
        let mut stream: Option<AdapterStream> = None;
        let mut failure = None;
        let start_stream = |session: &mut Option<AdapterSession>| match session.take() {
            Some(session) => session.stream(&self.info),
            None => self.adapter.stream(&self.info),
        };
        let output = http.send(&input, &mut |event| {
            let t = Instant::now();
            let pushed = match stream.take() {
                Some(s) => Ok(s),
                None => start_stream(&mut session),
            }
            .and_then(|mut s| {
                let piece = s.push(event);
                stream = Some(s);
                piece
            });
            adapter_time += t.elapsed();
            deliver(pushed, &mut failure, &mut |piece| {
                on_text.as_mut().is_none_or(|f| f(piece))
            })
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        let t = Instant::now();
        let completion = if output.event_stream {
            let stream = match stream {
                Some(stream) => stream,
                None => start_stream(&mut session)?,
            };
            let (completion, rest) = stream.finish()?;
            if let (false, Some(f)) = (rest.is_empty() || output.cancelled, on_text.as_mut()) {
                f(&rest);
            }
            completion
        } else {
            let completion = match session {
                Some(mut session) => session.parse_response(&self.info, &output.body)?,
                None => self.adapter.parse_response(&self.info, &output.body)?,
            };
            if let (false, Some(f)) = (completion.text.is_empty(), on_text.as_mut()) {
                f(&completion.text);
            }
            completion
        };
        adapter_time += t.elapsed();

        let json = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
        let response = if output.event_stream {
            Value::Array(output.events.iter().map(|e| json(e)).collect())
        } else {
            json(&output.body)
        };
        let prompt_tokens = completion.prompt_tokens.unwrap_or(0);
        let completion_tokens = completion.completion_tokens.unwrap_or(0);
        // A streamed reply: "prompt" time is the wait for the first event. A
        // whole reply: the provider's generation is the whole request.
        let (prompt_time, generation_time) = match output.time_to_first_event {
            Some(first) if output.event_stream => (first, output.total.saturating_sub(first)),
            _ => (Duration::ZERO, output.total),
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Ok(Generation {
            model: name,
            prompt: json(&request.body),
            response,
            response_text: completion.text,
            finish_reason: if output.cancelled {
                FinishReason::Cancelled.as_str().into()
            } else {
                completion.finish_reason.unwrap_or_else(|| "stop".into())
            },
            usage: Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens + completion_tokens,
            },
            timings: Timings {
                adapter_ms: ms(adapter_time),
                prompt_ms: ms(prompt_time),
                generation_ms: ms(generation_time),
                time_to_first_token_ms: output.time_to_first_event.filter(|_| output.event_stream).map(ms),
                total_ms: ms(started.elapsed()),
            },
        })
    }
}

/// Hand a piece the adapter's stream returned to the reader; `false` stops the
/// engine, when the reader says so or when the adapter failed (kept in `failure`).
fn deliver(
    pushed: std::result::Result<String, crate::adapters::AdapterError>,
    failure: &mut Option<crate::adapters::AdapterError>,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> bool {
    match pushed {
        Ok(piece) => piece.is_empty() || on_text(&piece),
        Err(e) => {
            *failure = Some(e);
            false
        }
    }
}

/// The parameters as the adapter contract carries them.
impl From<&GenerationParams> for wit::Params {
    fn from(p: &GenerationParams) -> Self {
        wit::Params {
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
            min_p: p.min_p,
            seed: p.seed,
            stop: p.stop.clone(),
            repetition_penalty: p.repetition_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            stream: false,
        }
    }
}
