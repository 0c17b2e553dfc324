//! lmhost runs language models behind one registry and one API, with every
//! per-model quirk moved out of native code into sandboxed WebAssembly adapters.
//!
//! Where to start:
//! - [`registry`]: model entries (clembench format) and lookup by unification;
//! - [`adapters`]: the wasm sandbox and the `render-template` host import;
//! - [`engines`]: llama.cpp and the mock engine, behind one trait;
//! - [`Host`] / [`Model`]: the library API; [`Generation`] is what a call returns;
//! - [`Chat`]: a conversation that keeps its history;
//! - async: [`Model::generate_async`], [`Model::stream`] (tokio);
//! - [`server`]: the OpenAI-compatible HTTP server behind `lmhost serve`.
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
pub mod bench;
mod chat;
#[doc(hidden)]
pub mod cli;
pub mod credentials;
pub mod engines;
mod error;
mod generation;
mod model;
pub mod registry;
pub mod server;

pub use async_api::StreamEvent;
pub use chat::Chat;
pub use error::{Error, Result};
pub use generation::{Generation, GenerationParams, Message, Timings, Usage, DEFAULT_MAX_TOKENS};
pub use model::{Host, HostConfig, Model};
