//! [`Host`]: resolves queries against the registry, checks the entry, picks its
//! adapter (the entry's, else the backend table's default) and loads its engine
//! (shared between entries that load the same weights with the same settings).
//!
//! Imports everything below it (config, registry, adapters, engines,
//! credentials, backends); must not import the server or the tools.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::adapters::{wit, AdapterLimits, AdapterRuntime};
use crate::backends::{find_backend, BackendKind};
use crate::config::HostConfig;
use crate::credentials::KeyStore;
use crate::engines::{engine_file, engine_key, load_engine_from, Engine, EngineError, EngineInfo};
use crate::error::{Error, Result};
use crate::generation::GenerationParams;
use crate::model::Model;
use crate::registry::{
    validate_spec, AdapterSettings, ModelSpec, Query, Registry, RegistryError, Severity, SpecSource,
};

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
    engines: Mutex<HashMap<String, Engine>>,
}

impl Host {
    /// A host configured from the environment ([`HostConfig::from_env`]).
    pub fn new() -> Result<Self> {
        Self::with_config(HostConfig::from_env())
    }

    /// A host with an explicit configuration.
    pub fn with_config(config: HostConfig) -> Result<Self> {
        let registry = Registry::layered(&config.registry_files, &config.home)?;
        let adapters = AdapterRuntime::with_adapter_dirs(config.component_cache_dir(), config.adapter_dirs.clone())?;
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
    pub fn load_spec(&self, mut spec: ModelSpec) -> Result<Model> {
        let name = spec.model_name().to_string();
        if let Some(threads) = self.config.threads {
            if spec.backend_kind() == Some(crate::backends::BackendKind::Local) {
                spec.set_from_query("threads", threads.into());
            }
        }
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
        let defaults = GenerationParams::from_spec(&spec).map_err(|e| Error::InvalidRequest {
            model: name.clone(),
            message: format!("generation defaults of `{name}`: {e}"),
        })?;
        let adapter_settings: AdapterSettings = spec.settings().map_err(EngineError::from)?;
        let adapter_ref = match adapter_settings.adapter {
            Some(a) => a,
            None => find_backend(spec.backend())
                .map(|b| b.default_adapter)
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
            limits_for(
                &spec,
                adapter_settings.adapter_limits.as_ref(),
                self.config.adapter_limits,
            )?,
        )?;
        let info = model_info(&spec, engine.info());
        Ok(Model::new(spec, engine, adapter, info, defaults))
    }

    fn engine(&self, spec: &ModelSpec) -> Result<Engine> {
        let file = engine_file(spec, &self.config.model_dirs, &self.config.hub)?;
        let key = engine_key(spec, file.as_deref());
        if let Some(key) = &key {
            if let Some(engine) = self.engines.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
                return Ok(engine.clone());
            }
        }
        // Keys are read when a remote model is loaded, so a broken key.json
        // never stands in the way of local models.
        let keys = if spec.backend_kind() == Some(BackendKind::Remote) {
            self.config.key_store().map_err(|e| EngineError::InvalidSpec {
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
/// (`deadline_ms`, `request_budget_ms`, `memory_mb`, `output_mb`,
/// `template_fuel`, `template_memory_mb`, `template_deadline_ms`) on top. Values above the
/// sandbox's maxima are refused, not clamped.
fn limits_for(spec: &ModelSpec, limits: Option<&Map<String, Value>>, base: AdapterLimits) -> Result<AdapterLimits> {
    let invalid = |message: String| {
        Error::from(EngineError::InvalidSpec {
            model: spec.model_name().into(),
            message,
        })
    };
    let Some(map) = limits else {
        return Ok(base);
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
            "request_budget_ms" => limits.request_budget = Duration::from_millis(within(600_000, "ms")?),
            "memory_mb" => limits.memory_bytes = (within(1024, "MiB")? as usize) << 20,
            "output_mb" => limits.output_bytes = (within(256, "MiB")? as usize) << 20,
            "template_fuel" => limits.template.fuel = within(1_000_000_000, "units")?,
            "template_memory_mb" => limits.template.memory_bytes = (within(1024, "MiB")? as usize) << 20,
            "template_deadline_ms" => limits.template.deadline = Duration::from_millis(within(60_000, "ms")?),
            other => {
                return Err(invalid(format!(
                    "unknown key `adapter_limits.{other}` (known: deadline_ms, request_budget_ms, memory_mb, output_mb, template_fuel, \
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
