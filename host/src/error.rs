//! The library's error: one enum gathering each domain's own.
//!
//! Imports the adapter, engine and registry errors; must not import the model
//! layer, the server or the tools.

use crate::adapters::AdapterError;
use crate::engines::EngineError;
use crate::registry::RegistryError;

/// Any lmhost error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Registry loading or lookup.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The adapter sandbox.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// The engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Bad parameters for a call.
    #[error("invalid request for `{model}`: {message}")]
    InvalidRequest {
        /// Model name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// An I/O failure outside any model (e.g. the server cannot bind its address).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `Result` with lmhost's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
