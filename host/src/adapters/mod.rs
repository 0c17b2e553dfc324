//! Adapters: untrusted WebAssembly components that hold every per-model quirk.
//!
//! This module owns the sandbox. [`AdapterRuntime`] holds one wasmtime engine
//! (component model, pooling allocator, epoch interruption, a ticker thread) and
//! compiles each component once (through an on-disk cache). Every request gets
//! a fresh store and instance from a cached `InstancePre` ([`AdapterSession`]:
//! `shape-request`, then `parse-response` or a stream, in that one instance),
//! with WASI linked deny-by-default (no preopened dirs, no env, no args, no
//! sockets, no name lookup), a memory cap, an epoch deadline on each call and an
//! output cap. A trap or a limit hit becomes an [`AdapterError`] naming the
//! adapter; the instance is dropped and never reused, so the next call starts
//! clean. No instance outlives its request, so nothing one request leaves in an
//! adapter's memory reaches another.
//!
//! It must not know about engines or the registry beyond the `model-info` record.

mod builtin;
mod cache;
pub mod conformance;
pub mod inspect;
pub mod scaffold;
mod template;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use builtin::{
    adapter_dirs, builtin_adapter, default_adapter, is_adapter_name, BUILTIN_ADAPTERS, GUEST_DIR, REPO_ADAPTER_DIR,
};
use template::TemplateSandbox;
pub use template::{check_template, TemplateLimits};

#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "adapter",
        path: "../wit",
    });
}

/// The WIT types, as the host sees them.
pub mod wit {
    pub use super::bindings::exports::lmhost::adapter::model_adapter::{
        AdapterError, Completion, Message, ModelInfo, Params, Request,
    };
    pub use super::bindings::lmhost::adapter::types::{HttpRequest, Prompt};
}

/// How often the epoch ticker advances; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to every call into one adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterLimits {
    /// Wall-clock budget of one call (shape, parse, one stream push).
    pub deadline: Duration,
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest string an adapter may hand back, in bytes.
    pub output_bytes: usize,
    /// Budgets of `render-template`.
    pub template: TemplateLimits,
}

impl Default for AdapterLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(2),
            memory_bytes: 256 << 20,
            output_bytes: 16 << 20,
            template: TemplateLimits::default(),
        }
    }
}

/// The largest memory any adapter may be given (the pool's slot size).
const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Memory of a freed instance reset in place rather than returned to the kernel
/// (enough for an interpreter adapter's heap: 12 MiB for the Python one). At most
/// this much stays resident per warm pool slot.
const KEEP_RESIDENT_BYTES: usize = 16 << 20;

/// What went wrong in an adapter. Each variant names the adapter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// The component could not be read, compiled or linked.
    #[error("adapter `{adapter}` cannot be loaded: {message}")]
    Load {
        /// Adapter name.
        adapter: String,
        /// Why.
        message: String,
    },
    /// A call ran past its deadline and was interrupted.
    #[error("adapter `{adapter}` timed out: a call ran past its deadline of {deadline:?}")]
    Timeout {
        /// Adapter name.
        adapter: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The instance tried to grow its memory past the cap.
    #[error("adapter `{adapter}` hit its memory limit of {limit} bytes")]
    MemoryLimit {
        /// Adapter name.
        adapter: String,
        /// The cap.
        limit: usize,
    },
    /// The adapter returned more text than allowed.
    #[error("adapter `{adapter}` returned {size} bytes, over its output limit of {limit} bytes")]
    OutputLimit {
        /// Adapter name.
        adapter: String,
        /// What it returned.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The adapter tried something the sandbox refuses (blocking).
    #[error("adapter `{adapter}` was stopped: {what}")]
    Denied {
        /// Adapter name.
        adapter: String,
        /// What it tried.
        what: String,
    },
    /// The adapter trapped (a panic, an illegal operation, invalid UTF-8).
    #[error("adapter `{adapter}` crashed: {message}")]
    Crashed {
        /// Adapter name.
        adapter: String,
        /// The trap, first lines.
        message: String,
    },
    /// The adapter answered with an error value.
    #[error("adapter `{adapter}` refused: {kind}: {message}")]
    Refused {
        /// Adapter name.
        adapter: String,
        /// `invalid input`, `unsupported` or `upstream`.
        kind: &'static str,
        /// Its message.
        message: String,
    },
    /// The adapter broke the contract (e.g. streamed text the final text contradicts).
    #[error("adapter `{adapter}` broke the adapter contract: {message}")]
    Contract {
        /// Adapter name.
        adapter: String,
        /// What it did.
        message: String,
    },
}

/// Per-call state of one instance.
struct AdapterState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    adapter: Arc<str>,
    template: TemplateLimits,
    templates: Arc<TemplateSandbox>,
}

impl WasiView for AdapterState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::lmhost::adapter::types::Host for AdapterState {}

impl bindings::lmhost::adapter::host::Host for AdapterState {
    fn render_template(&mut self, template: String, context_json: String) -> Result<String, String> {
        self.templates.render(&template, &context_json, &self.template)
    }

    fn log(&mut self, level: bindings::lmhost::adapter::host::LogLevel, message: String) {
        use bindings::lmhost::adapter::host::LogLevel;
        let message: String = message.chars().take(4096).collect();
        let adapter = &*self.adapter;
        match level {
            LogLevel::Trace => tracing::trace!(adapter, "{message}"),
            LogLevel::Debug => tracing::debug!(adapter, "{message}"),
            LogLevel::Info => tracing::info!(adapter, "{message}"),
            LogLevel::Warn => tracing::warn!(adapter, "{message}"),
            LogLevel::Error => tracing::error!(adapter, "{message}"),
        }
    }
}

/// Caps linear memory and remembers that it did, to tell a memory limit from a crash.
pub(crate) struct MemoryCap {
    pub(crate) limit: usize,
    pub(crate) hit: bool,
    /// The largest size any linear memory of the instance asked for.
    pub(crate) peak: usize,
}

/// The trap an adapter gets for trying to block (see [`link_wasi`]).
#[derive(Debug)]
pub(crate) struct BlockingDenied;

impl std::fmt::Display for BlockingDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it tried to block (sleep, or wait on a pollable), which adapters may not do")
    }
}

impl std::error::Error for BlockingDenied {}

/// Link WASI p2, deny-by-default, into a linker for untrusted code.
///
/// Blocking is refused: `wasi:io/poll`'s `poll` and `pollable.block` trap. A
/// call blocked inside the host cannot be interrupted by the epoch deadline, so
/// an adapter that sleeps for an hour would hold its thread for an hour.
/// Adapters are pure functions of their input; they have nothing to wait for.
pub(crate) fn link_wasi<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut poll = linker.instance("wasi:io/poll@0.2.12")?;
    for name in ["poll", "[method]pollable.block"] {
        poll.func_new(name, |_, _, _, _| Err(wasmtime::Error::new(BlockingDenied)))?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// WASI for untrusted code: nothing but clocks, random and empty stdio. No
/// preopened folders, no environment, no arguments, no sockets, no name lookup.
pub(crate) fn sandbox_wasi() -> WasiCtx {
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.peak = self.peak.max(desired);
        if desired > self.limit {
            self.hit = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.limit);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The wasmtime engine and everything shared between adapters.
#[derive(Clone)]
pub struct AdapterRuntime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<AdapterState>,
    cache_dir: Option<PathBuf>,
    adapter_dirs: Vec<PathBuf>,
    loaded: Mutex<HashMap<String, bindings::AdapterPre<AdapterState>>>,
    templates: Arc<TemplateSandbox>,
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
    /// disk cache), finding named adapters in [`adapter_dirs`] of `$LMHOST_HOME`.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, AdapterError> {
        Self::with_adapter_dirs(cache_dir, adapter_dirs(&crate::model::default_home()))
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
                let pre = bindings::AdapterPre::new(instance_pre)
                    .map_err(|e| fail(format!("it does not implement the lmhost:adapter world: {e:#}")))?;
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

fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("lmhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch ticker");
}

/// A loaded adapter. Cheap to clone. Each request runs in a fresh instance
/// ([`Adapter::session`]); the one-call methods take a fresh instance each.
#[derive(Clone)]
pub struct Adapter {
    name: Arc<str>,
    hash: Arc<str>,
    pre: bindings::AdapterPre<AdapterState>,
    runtime: Arc<RuntimeInner>,
    limits: AdapterLimits,
    /// The largest linear memory any instance of this handle (and its clones) reached.
    peak_memory: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter")
            .field("name", &self.name)
            .field("sha256", &self.hash)
            .finish()
    }
}

/// An instance with its store, for one call or one stream.
struct Instance {
    store: Store<AdapterState>,
    bindings: bindings::Adapter,
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

    /// The largest linear memory (bytes) any instance of this adapter reached so
    /// far, over every call through this handle and its clones.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// The compiled component (its type lists imports and exports).
    pub fn component(&self) -> &wasmtime::component::Component {
        self.pre.instance_pre().component()
    }

    /// The engine it runs on.
    pub fn engine(&self) -> &Engine {
        &self.runtime.engine
    }

    fn note_peak(&self, store: &Store<AdapterState>) {
        self.peak_memory.fetch_max(store.data().memory.peak, Ordering::Relaxed);
    }

    fn instantiate(&self) -> Result<Instance, AdapterError> {
        let state = AdapterState {
            wasi: sandbox_wasi(),
            table: ResourceTable::new(),
            memory: MemoryCap {
                limit: self.limits.memory_bytes,
                hit: false,
                peak: 0,
            },
            adapter: self.name.clone(),
            template: self.limits.template,
            templates: self.runtime.templates.clone(),
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.memory);
        self.arm(&mut store);
        let bindings = self.pre.instantiate(&mut store).map_err(|e| self.trap(&store, e))?;
        Ok(Instance { store, bindings })
    }

    fn arm(&self, store: &mut Store<AdapterState>) {
        let ticks = self.limits.deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
    }

    fn trap(&self, store: &Store<AdapterState>, err: wasmtime::Error) -> AdapterError {
        let adapter = self.name.to_string();
        if store.data().memory.hit {
            return AdapterError::MemoryLimit {
                adapter,
                limit: self.limits.memory_bytes,
            };
        }
        if let Some(denied) = err.downcast_ref::<BlockingDenied>() {
            return AdapterError::Denied {
                adapter,
                what: denied.to_string(),
            };
        }
        if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return AdapterError::Timeout {
                adapter,
                deadline: self.limits.deadline,
            };
        }
        // The trap's own words ("call stack exhausted", …), not the backtrace.
        let message = match err.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => err.root_cause().to_string(),
        };
        AdapterError::Crashed { adapter, message }
    }

    fn check_len(&self, text: &str) -> Result<(), AdapterError> {
        if text.len() > self.limits.output_bytes {
            return Err(AdapterError::OutputLimit {
                adapter: self.name.to_string(),
                size: text.len(),
                limit: self.limits.output_bytes,
            });
        }
        Ok(())
    }

    fn refused(&self, e: wit::AdapterError) -> AdapterError {
        let (kind, message) = match e {
            wit::AdapterError::InvalidInput(m) => ("invalid input", m),
            wit::AdapterError::Unsupported(m) => ("unsupported", m),
            wit::AdapterError::Upstream(m) => ("upstream", m),
        };
        AdapterError::Refused {
            adapter: self.name.to_string(),
            kind,
            message,
        }
    }

    /// A fresh instance for one request: `shape-request`, then `parse-response`
    /// or a stream. The instance is made at the first call.
    pub fn session(&self) -> AdapterSession {
        AdapterSession {
            adapter: self.clone(),
            inst: None,
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

    /// The engine's whole raw output → the answer (in a fresh instance).
    pub fn parse_response(&self, model: &wit::ModelInfo, raw: &str) -> Result<wit::Completion, AdapterError> {
        self.session().parse_response(model, raw)
    }

    /// Start streaming post-processing for one response (in a fresh instance).
    pub fn stream(&self, model: &wit::ModelInfo) -> Result<AdapterStream, AdapterError> {
        self.session().stream(model)
    }
}

/// One request's instance of an adapter. Every call is armed with its own
/// deadline; a call that traps or hits a limit drops the instance, and a later
/// call starts from a fresh one. An error value from the adapter keeps it.
pub struct AdapterSession {
    adapter: Adapter,
    inst: Option<Instance>,
}

impl AdapterSession {
    /// The instance, made now if there is none, armed for one call.
    fn instance(&mut self) -> Result<&mut Instance, AdapterError> {
        let inst = match self.inst.take() {
            Some(mut inst) => {
                self.adapter.arm(&mut inst.store);
                inst
            }
            None => self.adapter.instantiate()?,
        };
        Ok(self.inst.insert(inst))
    }

    /// A call's outcome: a trap drops the instance (after noting its memory peak).
    fn settle<T>(&mut self, result: wasmtime::Result<Result<T, wit::AdapterError>>) -> Result<T, AdapterError> {
        let inst = self.inst.as_ref().expect("a call has an instance");
        self.adapter.note_peak(&inst.store);
        match result {
            Ok(answer) => answer.map_err(|e| self.adapter.refused(e)),
            Err(e) => {
                let err = self.adapter.trap(&inst.store, e);
                self.inst = None;
                Err(err)
            }
        }
    }

    /// Messages and parameters → what the engine consumes.
    pub fn shape_request(
        &mut self,
        model: &wit::ModelInfo,
        messages: &[wit::Message],
        params: &wit::Params,
    ) -> Result<wit::Request, AdapterError> {
        let inst = self.instance()?;
        let result =
            inst.bindings
                .lmhost_adapter_model_adapter()
                .call_shape_request(&mut inst.store, model, messages, params);
        let request = self.settle(result)?;
        match &request {
            wit::Request::Prompt(p) => self.adapter.check_len(&p.text)?,
            wit::Request::Http(h) => self.adapter.check_len(&h.body)?,
        }
        Ok(request)
    }

    /// The engine's whole raw output → the answer.
    pub fn parse_response(&mut self, model: &wit::ModelInfo, raw: &str) -> Result<wit::Completion, AdapterError> {
        let inst = self.instance()?;
        let result = inst
            .bindings
            .lmhost_adapter_model_adapter()
            .call_parse_response(&mut inst.store, model, raw);
        let completion = self.settle(result)?;
        self.adapter.check_len(&completion.text)?;
        Ok(completion)
    }

    /// Start streaming post-processing for the response, in this instance.
    pub fn stream(mut self, model: &wit::ModelInfo) -> Result<AdapterStream, AdapterError> {
        let inst = self.instance()?;
        let result = inst
            .bindings
            .lmhost_adapter_model_adapter()
            .response_stream()
            .call_constructor(&mut inst.store, model);
        let resource = self.settle(result.map(Ok))?;
        let inst = self.inst.take().expect("a stream has an instance");
        Ok(AdapterStream {
            adapter: self.adapter,
            inst,
            resource,
            emitted: String::new(),
        })
    }
}

/// Streaming post-processing of one response. The host enforces the contract:
/// what was emitted is always a prefix of the final text.
pub struct AdapterStream {
    adapter: Adapter,
    inst: Instance,
    resource: ResourceAny,
    emitted: String,
}

impl AdapterStream {
    /// Feed raw engine text; returns answer text that is safe to show now.
    pub fn push(&mut self, chunk: &str) -> Result<String, AdapterError> {
        self.adapter.arm(&mut self.inst.store);
        let result = self
            .inst
            .bindings
            .lmhost_adapter_model_adapter()
            .response_stream()
            .call_push(&mut self.inst.store, self.resource, chunk)
            .map_err(|e| self.adapter.trap(&self.inst.store, e))?;
        let piece = result.map_err(|e| self.adapter.refused(e))?;
        self.adapter.check_len(&piece)?;
        self.emitted.push_str(&piece);
        self.adapter.check_len(&self.emitted)?;
        Ok(piece)
    }

    /// End of the raw text: the final completion, and what of its text was not yet emitted.
    pub fn finish(mut self) -> Result<(wit::Completion, String), AdapterError> {
        self.adapter.arm(&mut self.inst.store);
        let result = self
            .inst
            .bindings
            .lmhost_adapter_model_adapter()
            .response_stream()
            .call_finish(&mut self.inst.store, self.resource)
            .map_err(|e| self.adapter.trap(&self.inst.store, e));
        self.adapter.note_peak(&self.inst.store);
        let result = result?;
        let completion = result.map_err(|e| self.adapter.refused(e))?;
        self.adapter.check_len(&completion.text)?;
        let Some(rest) = completion.text.strip_prefix(self.emitted.as_str()) else {
            return Err(AdapterError::Contract {
                adapter: self.adapter.name.to_string(),
                message: format!(
                    "it streamed {:?} but its final text {:?} does not start with that",
                    truncate(&self.emitted),
                    truncate(&completion.text)
                ),
            });
        };
        let rest = rest.to_string();
        let _ = self.resource.resource_drop(&mut self.inst.store);
        Ok((completion, rest))
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}
