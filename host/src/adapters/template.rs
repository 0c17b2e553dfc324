//! `render-template`, the Jinja renderer lent to adapters, run in its own sandbox.
//!
//! The dialect lives in the `lmhost-template` crate (minijinja as Hugging Face
//! templates use it). The host never renders a template itself: every render
//! runs in a fresh instance of the built-in `template-renderer` component, with
//! a memory cap and a deadline on top of the crate's fuel and output budgets.
//! A template that loops, recurses or allocates without end (from an adapter,
//! a registry entry or a model file) fails with an error; the host is untouched.
//! Parsing alone (`check_template`, for registry validation) runs on the host,
//! bounded by the crate's shape limits (tokens per tag, block depth) measured
//! before minijinja parses: a deep expression would otherwise overflow the
//! host's stack while parsing, compiling or dropping the template.

use std::path::Path;
use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::sandbox::{link_wasi, sandbox_wasi, MemoryCap};
use super::{cache, EPOCH_TICK};

pub use lmhost_template::check as check_template;

/// Budgets of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// minijinja fuel (roughly one unit per instruction).
    pub fuel: u64,
    /// Longest rendered output, in bytes.
    pub max_output_bytes: usize,
    /// Memory of the renderer instance, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget of one render.
    pub deadline: Duration,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self {
            fuel: 5_000_000,
            max_output_bytes: 16 << 20,
            memory_bytes: 128 << 20,
            deadline: Duration::from_secs(1),
        }
    }
}

#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "renderer",
        path: "wit",
    });
}

struct RendererState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
}

impl WasiView for RendererState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The compiled renderer, ready to instantiate.
pub(crate) struct TemplateSandbox {
    engine: Engine,
    pre: bindings::RendererPre<RendererState>,
}

impl TemplateSandbox {
    pub(crate) fn new(engine: &Engine, cache_dir: Option<&Path>) -> wasmtime::Result<Self> {
        let bytes = super::builtin::TEMPLATE_RENDERER;
        let (component, _) = cache::load(engine, bytes, &cache::content_hash(bytes), cache_dir)?;
        let mut linker = Linker::new(engine);
        link_wasi(&mut linker)?;
        let pre = bindings::RendererPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self {
            engine: engine.clone(),
            pre,
        })
    }

    /// Render in a fresh, capped instance.
    pub(crate) fn render(&self, template: &str, context_json: &str, limits: &TemplateLimits) -> Result<String, String> {
        let state = RendererState {
            wasi: sandbox_wasi(),
            table: ResourceTable::new(),
            memory: MemoryCap::new(limits.memory_bytes),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        let ticks = limits.deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        let trapped = |store: &Store<RendererState>, e: wasmtime::Error| {
            if store.data().memory.hit {
                format!(
                    "template rendering hit its memory limit of {} bytes",
                    limits.memory_bytes
                )
            } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                format!("template rendering timed out after {:?}", limits.deadline)
            } else {
                format!(
                    "template rendering crashed: {}",
                    format!("{e:#}").lines().next().unwrap_or_default()
                )
            }
        };
        let renderer = self.pre.instantiate(&mut store).map_err(|e| trapped(&store, e))?;
        renderer
            .lmhost_renderer_template_renderer()
            .call_render(
                &mut store,
                template,
                context_json,
                limits.fuel,
                limits.max_output_bytes as u64,
            )
            .map_err(|e| trapped(&store, e))?
    }
}
