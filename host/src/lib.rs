//! lmhost runs language models behind one registry and one API, with every
//! per-model quirk moved out of native code into sandboxed WebAssembly adapters.
//!
//! Where to start, bottom to top (a module imports only from those above it in
//! this list; `tests/integration/layers.rs` checks it):
//! - [`backends`]: THE backend table, one row per backend;
//! - [`credentials`]: key.json and API-key variables, masked;
//! - [`adapters`]: the wasm sandbox, runtime and per-request sessions;
//! - [`registry`]: model entries (clembench format) and lookup by unification;
//! - [`config`]: [`HostConfig`], the home folder, every environment read;
//! - [`engines`]: llama.cpp, candle, mock, human (local) and HTTP (remote);
//! - [`Host`] / [`Model`]: the library API; [`Generation`] is what a call returns;
//! - [`Chat`]: a conversation that keeps its history;
//! - async: [`Model::generate_async`], [`Model::stream`] (tokio);
//! - [`server`]: the OpenAI-compatible HTTP server behind `lmhost serve` (feature `server`);
//! - [`tools`]: developer tooling (adapter conformance, inspect, scaffold, bench)
//!   and the command line (feature `cli`), outside the library core.
//!
//! Cargo features (all on by default): `llama` (llama.cpp; needs cmake and
//! libclang), `candle`, `remote` (HTTP backends), `server`, `cli`. A build for
//! remote backends alone: `--no-default-features --features remote,server`.
//!
//! ```no_run
//! let host = lmhost::Host::new()?;
//! let model = host.load("SmolLM2-135M-Instruct")?;
//! let g = model.run("What is the capital of France?")?;
//! assert!(!g.response_text.contains("<|im_end|>"));
//! # Ok::<(), lmhost::Error>(())
//! ```

pub mod adapters;
mod async_api;
pub mod backends;
mod chat;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
pub mod config;
pub mod credentials;
pub mod engines;
mod error;
mod generation;
mod host;
mod model;
pub mod registry;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "cli")]
pub mod tools;

pub use async_api::StreamEvent;
pub use chat::Chat;
pub use config::HostConfig;
pub use error::{Error, Result};
pub use generation::{
    Generation, GenerationParams, Message, ResponseFormat, StreamDelta, Timings, Tool, ToolCall, ToolChoice, Usage,
    DEFAULT_MAX_TOKENS,
};
pub use host::Host;
pub use model::Model;
