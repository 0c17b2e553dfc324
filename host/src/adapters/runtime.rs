//! The adapter runtime: one wasmtime engine (component model, pooling
//! allocator, epoch interruption), components compiled once through the on-disk
//! cache, and adapters found by name, in the adapter folders, or by path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::builtin::{self, builtin_adapter, is_adapter_name, BUILTIN_ADAPTERS};
use super::sandbox::{link_wasi, start_ticker, AdapterState};
use super::session::{AdapterSession, AdapterStream};
use super::template::TemplateSandbox;
use super::v01::Pre;
use super::{bindings, bindings_v01, cache, wit, AdapterError, AdapterLimits, TemplateLimits};

/// The largest memory any adapter may be given (the pool's slot size).
const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Memory of a freed instance reset in place rather than returned to the kernel
/// (enough for an interpreter adapter's heap: 12 MiB for the Python one). At most
/// this much stays resident per warm pool slot.
const KEEP_RESIDENT_BYTES: usize = 16 << 20;

/// The wasmtime engine and everything shared between adapters.
#[derive(Clone)]
pub struct AdapterRuntime {
    inner: Arc<RuntimeInner>,
}

pub(super) struct RuntimeInner {
    pub(super) engine: Engine,
    pub(super) linker: Linker<AdapterState>,
    pub(super) cache_dir: Option<PathBuf>,
    pub(super) adapter_dirs: Vec<PathBuf>,
    pub(super) loaded: Mutex<HashMap<String, Pre>>,
    pub(super) templates: Arc<TemplateSandbox>,
}

/// Where an adapter reference points: a built-in's bytes or a `.wasm` file.
#[derive(Debug, Clone)]
pub enum AdapterSource {
    /// Compiled into lmhost.
    Builtin(&'static [u8]),
    /// A component file.
    File(PathBuf),
}

impl AdapterSource {
    /// The component bytes.
    pub fn bytes(&self, adapter: &str) -> Result<Cow<'static, [u8]>, AdapterError> {
        match self {
            Self::Builtin(bytes) => Ok(Cow::Borrowed(bytes)),
            Self::File(path) => std::fs::read(path).map(Cow::Owned).map_err(|e| AdapterError::Load {
                adapter: adapter.into(),
                message: format!("cannot read `{}`: {e}", path.display()),
            }),
        }
    }
}

impl AdapterRuntime {
    /// A runtime whose precompiled components are cached in `cache_dir` (none: no
    /// disk cache) that loads built-in adapters and `.wasm` paths; it searches no
    /// adapter folders for names (see [`with_adapter_dirs`](Self::with_adapter_dirs)
    /// and `crate::config::adapter_dirs`).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, AdapterError> {
        Self::with_adapter_dirs(cache_dir, Vec::new())
    }

    /// A runtime that looks for named adapters (`<name>.wasm`) in `adapter_dirs`, in order.
    pub fn with_adapter_dirs(cache_dir: Option<PathBuf>, adapter_dirs: Vec<PathBuf>) -> Result<Self, AdapterError> {
        let fail = |e: wasmtime::Error| AdapterError::Load {
            adapter: "<runtime>".into(),
            message: format!("{e:#}"),
        };
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(1024)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .max_core_instances_per_component(64)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(4 << 20)
            .max_memory_size(MAX_MEMORY_BYTES)
            .max_unused_warm_slots(16)
            // Reset a freed slot's memory with memset (only its dirty pages where the
            // kernel has PAGEMAP_SCAN) instead of madvise: every instance still starts
            // from the component's original memory image, without the page faults
            // that made a fresh instance cost most of a call.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .max_wasm_stack(1 << 20);
        let engine = Engine::new(&config).map_err(fail)?;
        let mut linker = Linker::new(&engine);
        link_wasi(&mut linker).map_err(fail)?;
        bindings::Adapter::add_to_linker::<AdapterState, HasSelf<AdapterState>>(&mut linker, |s| s).map_err(fail)?;
        bindings_v01::Adapter::add_to_linker::<AdapterState, HasSelf<AdapterState>>(&mut linker, |s| s)
            .map_err(fail)?;
        let templates = Arc::new(TemplateSandbox::new(&engine, cache_dir.as_deref()).map_err(fail)?);
        start_ticker(&engine);
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache_dir,
                adapter_dirs,
                loaded: Mutex::new(HashMap::new()),
                templates,
            }),
        })
    }

    /// Load an adapter: a built-in name (`chat-template`), the name of a
    /// `<name>.wasm` in the adapter folders (`chat-template-py`), or a path to a
    /// `.wasm` component. `base` resolves relative paths (e.g. the registry file's folder).
    pub fn load(&self, reference: &str, base: Option<&Path>, limits: AdapterLimits) -> Result<Adapter, AdapterError> {
        let bytes = self.locate(reference, base)?.bytes(reference)?;
        self.load_bytes(reference, &bytes, limits)
    }

    /// The folders searched for named adapters, in order.
    pub fn adapter_dirs(&self) -> &[PathBuf] {
        &self.inner.adapter_dirs
    }

    /// Where `reference` points, without reading or compiling it (see [`Self::load`]).
    pub fn locate(&self, reference: &str, base: Option<&Path>) -> Result<AdapterSource, AdapterError> {
        if let Some(bytes) = builtin_adapter(reference) {
            return Ok(AdapterSource::Builtin(bytes));
        }
        if is_adapter_name(reference) {
            let file = format!("{reference}.wasm");
            if let Some(path) = self
                .inner
                .adapter_dirs
                .iter()
                .map(|d| d.join(&file))
                .find(|p| p.is_file())
            {
                return Ok(AdapterSource::File(path));
            }
            let searched: Vec<String> = self
                .inner
                .adapter_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return Err(AdapterError::Load {
                adapter: reference.into(),
                message: format!(
                    "it is not built in (built in: {}) and no {file} is in the adapter folders ({}): {}",
                    BUILTIN_ADAPTERS.join(", "),
                    searched.join(", "),
                    builtin::build_hint(reference)
                ),
            });
        }
        if !reference.ends_with(".wasm") {
            return Err(AdapterError::Load {
                adapter: reference.into(),
                message: format!(
                    "no built-in adapter has that name (built in: {}), and it is not a path to a .wasm file",
                    BUILTIN_ADAPTERS.join(", ")
                ),
            });
        }
        let mut path = PathBuf::from(reference);
        if path.is_relative() {
            if let Some(base) = base.filter(|b| b.join(&path).is_file()) {
                path = base.join(path);
            }
        }
        Ok(AdapterSource::File(path))
    }

    /// Load an adapter from component bytes.
    pub fn load_bytes(&self, name: &str, bytes: &[u8], limits: AdapterLimits) -> Result<Adapter, AdapterError> {
        let fail = |message: String| AdapterError::Load {
            adapter: name.into(),
            message,
        };
        if limits.memory_bytes > MAX_MEMORY_BYTES {
            return Err(fail(format!(
                "memory limit {} is over the maximum of {MAX_MEMORY_BYTES} bytes",
                limits.memory_bytes
            )));
        }
        let hash = cache::content_hash(bytes);
        let mut loaded = self.inner.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let pre = match loaded.get(&hash) {
            Some(pre) => pre.clone(),
            None => {
                let (component, _from_cache) =
                    cache::load(&self.inner.engine, bytes, &hash, self.inner.cache_dir.as_deref())
                        .map_err(|e| fail(format!("not a usable component: {e:#}")))?;
                let instance_pre = self
                    .inner
                    .linker
                    .instantiate_pre(&component)
                    .map_err(|e| fail(format!("it needs something lmhost does not lend: {e:#}")))?;
                let pre = Pre::new(instance_pre).map_err(|e| {
                    fail(format!(
                        "it implements no version of the lmhost:adapter world (the host links {}): {e}",
                        super::CONTRACT_VERSIONS.join(", ")
                    ))
                })?;
                loaded.insert(hash.clone(), pre.clone());
                pre
            }
        };
        Ok(Adapter {
            name: Arc::from(name),
            hash: Arc::from(hash),
            pre,
            runtime: self.inner.clone(),
            limits,
            peak_memory: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Render a chat template in the template sandbox (as `render-template` does
    /// for adapters).
    pub fn render_template(
        &self,
        template: &str,
        context_json: &str,
        limits: &TemplateLimits,
    ) -> Result<String, String> {
        self.inner.templates.render(template, context_json, limits)
    }

    /// Compile a component with cranelift, bypassing every cache (to measure a cold start).
    pub fn precompile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, AdapterError> {
        self.inner
            .engine
            .precompile_component(bytes)
            .map_err(|e| AdapterError::Load {
                adapter: name.into(),
                message: format!("not a usable component: {e:#}"),
            })
    }

    /// How long loading the component from the on-disk cache and linking it takes
    /// (the entry is written first if missing); `None` without a disk cache.
    pub fn time_cached_load(&self, name: &str, bytes: &[u8]) -> Result<Option<Duration>, AdapterError> {
        let Some(dir) = self.inner.cache_dir.as_deref() else {
            return Ok(None);
        };
        let fail = |e: wasmtime::Error| AdapterError::Load {
            adapter: name.into(),
            message: format!("{e:#}"),
        };
        let hash = cache::content_hash(bytes);
        cache::load(&self.inner.engine, bytes, &hash, Some(dir)).map_err(fail)?;
        let t = std::time::Instant::now();
        let (component, from_cache) = cache::load(&self.inner.engine, bytes, &hash, Some(dir)).map_err(fail)?;
        self.inner.linker.instantiate_pre(&component).map_err(fail)?;
        Ok(from_cache.then(|| t.elapsed()))
    }

    /// Whether a component with these bytes is in the on-disk cache.
    pub fn is_cached(&self, bytes: &[u8]) -> bool {
        let Some(dir) = &self.inner.cache_dir else { return false };
        let hash = cache::content_hash(bytes);
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&hash))
            })
            .unwrap_or(false)
    }
}

/// A loaded adapter. Cheap to clone. Each request runs in a fresh instance
/// ([`Adapter::session`]); the one-call methods take a fresh instance each.
#[derive(Clone)]
pub struct Adapter {
    pub(super) name: Arc<str>,
    pub(super) hash: Arc<str>,
    pub(super) pre: Pre,
    pub(super) runtime: Arc<RuntimeInner>,
    pub(super) limits: AdapterLimits,
    /// The largest linear memory any instance of this handle (and its clones) reached.
    pub(super) peak_memory: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter")
            .field("name", &self.name)
            .field("sha256", &self.hash)
            .finish()
    }
}

impl Adapter {
    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the component.
    pub fn sha256(&self) -> &str {
        &self.hash
    }

    /// Render a template in the template sandbox under this adapter's limits,
    /// exactly as its `render-template` import would.
    pub fn render_template(&self, template: &str, context_json: &str) -> Result<String, String> {
        self.runtime
            .templates
            .render(template, context_json, &self.limits.template)
    }

    /// The limits applied to each call.
    pub fn limits(&self) -> AdapterLimits {
        self.limits
    }

    /// The most memory (bytes, all linear memories and tables of one instance
    /// together) any instance of this adapter held so far, over every call
    /// through this handle and its clones.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// The version of the adapter contract it implements (`0.2.0`, `0.1.0`).
    pub fn contract_version(&self) -> &'static str {
        self.pre.version()
    }

    /// The compiled component (its type lists imports and exports).
    pub fn component(&self) -> &wasmtime::component::Component {
        self.pre.instance_pre().component()
    }

    /// The engine it runs on.
    pub fn engine(&self) -> &Engine {
        &self.runtime.engine
    }
    /// A fresh instance for one request: `shape-request`, then `parse-response`
    /// or a stream. The instance is made at the first call.
    pub fn session(&self) -> AdapterSession {
        AdapterSession {
            adapter: self.clone(),
            inst: None,
            budget: super::session::Budget::new(self),
        }
    }

    /// Messages and parameters → what the engine consumes (in a fresh instance).
    pub fn shape_request(
        &self,
        model: &wit::ModelInfo,
        messages: &[wit::Message],
        params: &wit::Params,
    ) -> Result<wit::Request, AdapterError> {
        self.session().shape_request(model, messages, params)
    }

    /// The engine's whole raw output → the answer (in a fresh instance);
    /// `request` is what `shape-request` returned for the call.
    pub fn parse_response(
        &self,
        model: &wit::ModelInfo,
        params: &wit::Params,
        request: &wit::Request,
        raw: &str,
    ) -> Result<wit::Completion, AdapterError> {
        self.session().parse_response(model, params, request, raw)
    }

    /// Start streaming post-processing for one response (in a fresh instance).
    pub fn stream(
        &self,
        model: &wit::ModelInfo,
        params: &wit::Params,
        request: &wit::Request,
    ) -> Result<AdapterStream, AdapterError> {
        self.session().stream(model, params, request)
    }
}
