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
//! Files: `runtime` (engine, component cache, finding adapters), `sandbox` (WASI,
//! limits, traps), `session` (one request's instance and its stream), `ledger`
//! (what a request's calls return, log and spend, against fixed caps), `template`
//! (the host-internal renderer behind `render-template`), `builtin` (adapters
//! compiled into lmhost).
//!
//! It must not import engines, the registry, the model layer or the tools: it
//! knows a model only through the `model-info` record. Adapter tooling
//! (conformance, inspect, scaffold) lives in `crate::tools`.

mod builtin;
mod cache;
pub mod ledger;
mod runtime;
mod sandbox;
mod session;
mod template;

use std::time::Duration;

pub use builtin::{builtin_adapter, is_adapter_name, GuestRole, BUILTIN_ADAPTERS, GUESTS, GUEST_DIR, REPO_ADAPTER_DIR};
pub use runtime::{Adapter, AdapterRuntime, AdapterSource};
#[cfg(feature = "cli")]
pub(crate) use session::truncate;
pub use session::{AdapterSession, AdapterStream};
pub use template::{check_template, TemplateLimits};

/// The current contract, `lmhost:adapter@0.2.0` (`wit/0.2/`): what the host
/// speaks. Every other version is converted to and from it (`v01`).
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "adapter",
        path: "../wit/0.2",
        additional_derives: [PartialEq],
    });
}

/// `lmhost:adapter@0.1.0` (`wit/adapter.wit`), still linked so that adapters
/// built against it keep working.
#[allow(missing_docs)]
mod bindings_v01 {
    wasmtime::component::bindgen!({
        world: "adapter",
        path: "../wit",
    });
}

mod v01;

/// The WIT types of the current contract, as the host sees them.
pub mod wit {
    pub use super::bindings::exports::lmhost::adapter::model_adapter::{
        AdapterError, Completion, Delta, Message, ModelInfo, Params, Request,
    };
    pub use super::bindings::lmhost::adapter::types::{
        Constraint, HttpRequest, JsonSchemaFormat, Prompt, ResponseFormat, Tool, ToolCall, ToolChoice,
    };

    impl Message {
        /// A message with only a role and text.
        pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
            Message {
                role: role.into(),
                content: content.into(),
                tool_calls: Vec::new(),
                tool_call_id: None,
                name: None,
                reasoning: None,
            }
        }
    }

    impl Params {
        /// No sampling settings, no tools, free text.
        pub fn plain() -> Self {
            Params {
                max_tokens: None,
                temperature: None,
                top_p: None,
                top_k: None,
                min_p: None,
                seed: None,
                stop: Vec::new(),
                repetition_penalty: None,
                frequency_penalty: None,
                presence_penalty: None,
                stream: false,
                tools: Vec::new(),
                tool_choice: ToolChoice::Auto,
                parallel_tool_calls: true,
                response_format: ResponseFormat::Text,
            }
        }

        /// Whether anything in it needs contract 0.2 (tools, a tool choice).
        pub fn uses_tools(&self) -> bool {
            !self.tools.is_empty() || !matches!(self.tool_choice, ToolChoice::Auto)
        }
    }

    impl Completion {
        /// Answer text alone.
        pub fn text(text: impl Into<String>) -> Self {
            Completion {
                text: text.into(),
                reasoning: None,
                tool_calls: Vec::new(),
                prompt_tokens: None,
                completion_tokens: None,
                reasoning_tokens: None,
                finish_reason: None,
            }
        }
    }

    impl Request {
        /// An empty prompt: what a raw output is parsed against when no
        /// `shape-request` made a request (tests, tooling).
        pub fn empty_prompt() -> Self {
            Request::Prompt(Prompt {
                text: String::new(),
                stop: Vec::new(),
                add_bos: false,
                constraint: None,
            })
        }
    }

    impl Delta {
        /// Nothing to show.
        pub fn empty() -> Self {
            Delta {
                text: String::new(),
                reasoning: String::new(),
                tool_calls: Vec::new(),
            }
        }

        /// Whether there is nothing in it.
        pub fn is_empty(&self) -> bool {
            self.text.is_empty() && self.reasoning.is_empty() && self.tool_calls.is_empty()
        }
    }
}

/// The contract versions the host links, newest first.
pub const CONTRACT_VERSIONS: [&str; 2] = ["0.2.0", "0.1.0"];

/// How often the epoch ticker advances; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to every call into one adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterLimits {
    /// Wall-clock budget of one call (shape, parse, one stream push).
    pub deadline: Duration,
    /// Wall-clock budget of all the calls one request makes (instantiation,
    /// shape, parse or every stream push and the finish), counted only while
    /// the adapter runs.
    pub request_budget: Duration,
    /// Most memory one instance may hold, in bytes: all its linear memories and
    /// tables together.
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
            request_budget: Duration::from_secs(30),
            memory_bytes: 256 << 20,
            output_bytes: 16 << 20,
            template: TemplateLimits::default(),
        }
    }
}

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
    /// The adapter returned more than allowed: text over the output cap, or a
    /// list or string over its fixed cap (see `SECURITY.md`).
    #[error("adapter `{adapter}` returned {size} {what}, over the limit of {limit}")]
    OutputLimit {
        /// Adapter name.
        adapter: String,
        /// What was counted (`bytes of prompt text`, `stop strings`, …).
        what: &'static str,
        /// How much it returned.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The request's calls into the adapter together ran past the request budget.
    #[error(
        "adapter `{adapter}` used up its request budget of {budget:?} (the time all its calls for one request may take)"
    )]
    RequestBudget {
        /// Adapter name.
        adapter: String,
        /// The budget.
        budget: Duration,
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
