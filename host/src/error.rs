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

/// A panic's payload in words, truncated to its first 200 characters (it may
/// quote untrusted input): how the server and the command line report a panic
/// they caught instead of dying of it.
#[cfg_attr(not(any(feature = "server", feature = "cli")), allow(dead_code))]
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    let total = text.chars().count();
    if total > 200 {
        let head: String = text.chars().take(200).collect();
        format!("panicked: {head}… ({total} characters)")
    } else {
        format!("panicked: {text}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn panic_messages_are_quoted_truncated() {
        let short = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
        assert_eq!(super::panic_message(short), "panicked: boom");
        let long = std::panic::catch_unwind(|| panic!("{}", "x".repeat(5000))).unwrap_err();
        let text = super::panic_message(long);
        assert!(text.ends_with("… (5000 characters)") && text.len() < 300, "{text}");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(super::panic_message(other), "panicked: no message");
    }
}
