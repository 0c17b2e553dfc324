//! The sandbox every adapter instance runs in: deny-by-default WASI, the memory
//! cap (per instance: all its memories and tables together), the epoch deadline
//! and its ticker, blocking refused, traps turned into [`AdapterError`]s that
//! name the adapter, and log records kept to one escaped line within the
//! request's log budget.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::ledger::RequestLog;
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
    /// The request's log budget (shared with the session).
    pub(super) log: Arc<RequestLog>,
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
        let Some(message) = self.log.admit(&message) else {
            return;
        };
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

/// Caps the memory of one instance: the sum of all its linear memories and
/// tables (a component may hold many core instances, each with its own memory,
/// so a cap per memory would multiply), and how many of each it may create.
/// Remembers that it refused, to tell a memory limit from a crash.
pub(super) struct MemoryCap {
    pub(crate) limit: usize,
    pub(crate) hit: bool,
    /// Bytes held now by all memories and tables of the instance.
    pub(crate) total: usize,
    /// The most `total` reached.
    pub(crate) peak: usize,
    /// The growth allowed last, taken back if wasmtime then fails to grow.
    pending: usize,
}

/// Most linear memories, tables and core instances one store may create (the
/// pooling allocator bounds them per component as well).
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 32;
const MAX_CORE_INSTANCES: usize = 64;

/// Bytes a table element is counted as (a pointer, as wasmtime stores it).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

impl MemoryCap {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            hit: false,
            total: 0,
            peak: 0,
            pending: 0,
        }
    }

    /// Account for a memory or table growing from `current` to `desired` bytes.
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let added = desired.saturating_sub(current);
        let total = self.total.saturating_add(added);
        if total > self.limit {
            self.hit = true;
            wasmtime::bail!(
                "memory limit of {} bytes reached ({} held, {added} more asked for)",
                self.limit,
                self.total
            );
        }
        self.total = total;
        self.peak = self.peak.max(total);
        self.pending = added;
        Ok(true)
    }

    fn grow_failed(&mut self) {
        self.total -= std::mem::take(&mut self.pending);
    }
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
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let bytes = |elements: usize| elements.saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow(bytes(current), bytes(desired))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
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

    /// A fresh instance armed for one call of at most `remaining` (the
    /// request's budget left); its log records count against `log`.
    pub(super) fn instantiate(&self, log: Arc<RequestLog>, remaining: Duration) -> Result<Instance, AdapterError> {
        let state = AdapterState {
            wasi: sandbox_wasi(),
            table: ResourceTable::new(),
            memory: MemoryCap::new(self.limits.memory_bytes),
            adapter: self.name.clone(),
            template: self.limits.template,
            templates: self.runtime.templates.clone(),
            log,
        };
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.memory);
        let by_budget = self.arm(&mut store, remaining);
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.trap(&store, e, by_budget))?;
        Ok(Instance { store, bindings })
    }

    /// Arm the store for one call: the per-call deadline, or what is left of
    /// the request budget if that is shorter (then `true`).
    pub(super) fn arm(&self, store: &mut Store<AdapterState>, remaining: Duration) -> bool {
        let by_budget = remaining < self.limits.deadline;
        let limit = self.limits.deadline.min(remaining);
        let ticks = limit.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        by_budget
    }

    /// The error for a failed call; `by_budget`: it was armed with the rest of
    /// the request budget rather than the per-call deadline.
    pub(super) fn trap(&self, store: &Store<AdapterState>, err: wasmtime::Error, by_budget: bool) -> AdapterError {
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
            if by_budget {
                return AdapterError::RequestBudget {
                    adapter,
                    budget: self.limits.request_budget,
                };
            }
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

    pub(super) fn refused(&self, e: wit::AdapterError) -> AdapterError {
        let (kind, message) = match e {
            wit::AdapterError::InvalidInput(m) => ("invalid input", m),
            wit::AdapterError::Unsupported(m) => ("unsupported", m),
            wit::AdapterError::Upstream(m) => ("upstream", m),
        };
        AdapterError::Refused {
            adapter: self.name.to_string(),
            kind,
            message: super::ledger::error_text(&message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_cap_is_on_the_sum_of_every_memory_and_table_of_an_instance() {
        let mut cap = MemoryCap::new(256 * MIB);
        // Eight core instances, each creating a 255 MiB memory, as wasmtime asks
        // (from 0 to the initial size): the second one is refused.
        assert!(cap.memory_growing(0, 255 * MIB, None).unwrap());
        assert!(cap.memory_growing(0, 255 * MIB, None).is_err());
        assert!(cap.hit);
        assert_eq!((cap.total, cap.peak), (255 * MIB, 255 * MIB));

        let mut cap = MemoryCap::new(256 * MIB);
        for _ in 0..4 {
            assert!(cap.memory_growing(0, 60 * MIB, None).unwrap());
        }
        // Growing one of them counts only what it adds; a table counts its elements.
        assert!(cap.memory_growing(60 * MIB, 75 * MIB, None).unwrap());
        assert!(cap.table_growing(0, 1024, None).unwrap());
        assert_eq!(cap.total, 255 * MIB + 1024 * TABLE_ELEMENT_BYTES);
        assert!(cap.table_growing(1024, 2 * MIB / TABLE_ELEMENT_BYTES, None).is_err());
        assert!(cap.hit && cap.total <= cap.limit);
    }

    #[test]
    fn a_growth_that_fails_is_taken_back() {
        let mut cap = MemoryCap::new(100 * MIB);
        assert!(cap.memory_growing(0, MIB, None).unwrap());
        assert!(cap.memory_growing(MIB, 90 * MIB, None).unwrap());
        cap.memory_grow_failed(wasmtime::Error::msg("over the memory's maximum"))
            .unwrap();
        assert_eq!(cap.total, MIB);
        assert!(cap.memory_growing(MIB, 50 * MIB, None).unwrap());
        assert_eq!((cap.total, cap.peak), (50 * MIB, 90 * MIB));
    }
}
