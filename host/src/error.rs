//! The library's error: one enum gathering each domain's own.

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
}

/// `Result` with lmhost's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
