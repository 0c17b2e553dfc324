//! lmhost's errors as Python exceptions. The classes live in Python
//! (`lmhost/errors.py`), where a class can have two bases (`ModelNotFound` is
//! also a `LookupError`, `InvalidRequest` a `ValueError`); they are looked up
//! here when an error is raised, and the fields a caller acts on (the token
//! counts of a context overflow, a provider's HTTP status) become attributes.

use lmhost::adapters::AdapterError;
use lmhost::engines::EngineError;
use lmhost::registry::RegistryError;
use lmhost::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The exception for an lmhost error.
pub fn to_py(error: Error) -> PyErr {
    Python::attach(|py| build(py, &error).unwrap_or_else(|e| e))
}

/// `InvalidRequest` with a message (bad arguments found by the binding).
pub fn invalid_request(message: &str) -> PyErr {
    Python::attach(|py| raise(py, "InvalidRequest", message, None).unwrap_or_else(|e| e))
}

/// An internal failure the caller cannot act on (a worker thread died).
pub fn internal(message: &str) -> PyErr {
    PyRuntimeError::new_err(format!("lmhost: {message}"))
}

fn build(py: Python<'_>, error: &Error) -> PyResult<PyErr> {
    let message = error.to_string();
    let attrs = PyDict::new(py);
    let class = match error {
        Error::Registry(RegistryError::NoMatch { .. }) => "ModelNotFound",
        Error::Registry(_) => "RegistryError",
        Error::Adapter(AdapterError::Timeout { .. }) => "AdapterTimeout",
        Error::Adapter(_) => "AdapterError",
        Error::Engine(e) => {
            if let Some(model) = engine_model(e) {
                attrs.set_item("model", model)?;
            }
            match e {
                EngineError::ContextOverflow {
                    prompt_tokens,
                    max_tokens,
                    context,
                    ..
                } => {
                    attrs.set_item("prompt_tokens", prompt_tokens)?;
                    attrs.set_item("max_tokens", max_tokens)?;
                    attrs.set_item("context_length", context)?;
                    "ContextLengthExceeded"
                }
                EngineError::ModelFileNotFound { .. } | EngineError::Hub { .. } | EngineError::Load { .. } => {
                    "ModelLoadError"
                }
                EngineError::UnsupportedBackend { .. } | EngineError::InvalidSpec { .. } => "RegistryError",
                EngineError::MissingKey { .. } | EngineError::KeyWithheld { .. } => "MissingApiKey",
                EngineError::Provider { status, .. } => {
                    attrs.set_item("status", status)?;
                    "ProviderError"
                }
                EngineError::ResponseFormat { .. } | EngineError::InvalidParams { .. } => "InvalidRequest",
                _ => "EngineError",
            }
        }
        Error::InvalidRequest { model, .. } => {
            attrs.set_item("model", model)?;
            "InvalidRequest"
        }
        _ => "Error",
    };
    raise(py, class, &message, Some(&attrs))
}

fn engine_model(e: &EngineError) -> Option<&str> {
    Some(match e {
        EngineError::ContextOverflow { model, .. }
        | EngineError::ModelFileNotFound { model, .. }
        | EngineError::Load { model, .. }
        | EngineError::Provider { model, .. }
        | EngineError::InvalidParams { model, .. }
        | EngineError::ResponseFormat { model, .. } => model,
        _ => return None,
    })
}

fn raise(py: Python<'_>, class: &str, message: &str, attrs: Option<&Bound<'_, PyDict>>) -> PyResult<PyErr> {
    let class = py.import("lmhost.errors")?.getattr(class)?;
    let exception = class.call1((message,))?;
    if let Some(attrs) = attrs {
        for (k, v) in attrs.iter() {
            exception.setattr(k.cast_into::<pyo3::types::PyString>()?, v)?;
        }
    }
    Ok(PyErr::from_value(exception))
}
