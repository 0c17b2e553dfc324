//! The sandbox every adapter instance runs in: deny-by-default WASI, the memory
//! cap, the epoch deadline and its ticker, blocking refused, traps turned into
//! [`AdapterError`]s that name the adapter, and the output cap.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::session::Instance;
use super::template::TemplateSandbox;
use super::{bindings, wit, Adapter, AdapterError, TemplateLimits, EPOCH_TICK};

/// Per-call state of one instance.
pub(super) struct AdapterState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) memory: MemoryCap,
    pub(super) adapter: Arc<str>,
    pub(super) template: TemplateLimits,
    pub(super) templates: Arc<TemplateSandbox>,
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
pub(super) struct MemoryCap {
    pub(crate) limit: usize,
    pub(crate) hit: bool,
    /// The largest size any linear memory of the instance asked for.
    pub(crate) peak: usize,
}

/// The trap an adapter gets for trying to block (see [`link_wasi`]).
#[derive(Debug)]
pub(super) struct BlockingDenied;

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
pub(super) fn link_wasi<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
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
pub(super) fn sandbox_wasi() -> WasiCtx {
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

pub(super) fn start_ticker(engine: &Engine) {
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

impl Adapter {
    /// A fresh store and instance under this adapter's limits, armed for one call.
    pub(super) fn note_peak(&self, store: &Store<AdapterState>) {
        self.peak_memory.fetch_max(store.data().memory.peak, Ordering::Relaxed);
    }

    pub(super) fn instantiate(&self) -> Result<Instance, AdapterError> {
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

    pub(super) fn arm(&self, store: &mut Store<AdapterState>) {
        let ticks = self.limits.deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
    }

    pub(super) fn trap(&self, store: &Store<AdapterState>, err: wasmtime::Error) -> AdapterError {
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

    pub(super) fn check_len(&self, text: &str) -> Result<(), AdapterError> {
        if text.len() > self.limits.output_bytes {
            return Err(AdapterError::OutputLimit {
                adapter: self.name.to_string(),
                size: text.len(),
                limit: self.limits.output_bytes,
            });
        }
        Ok(())
    }

    pub(super) fn refused(&self, e: wit::AdapterError) -> AdapterError {
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
}
