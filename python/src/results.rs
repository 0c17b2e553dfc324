//! What calls return, as Python objects: `Generation` (with its `Usage` and
//! `Timings`) and the `Delta`s of a stream.

use lmhost::{Message, StreamDelta};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pythonize::pythonize;

/// A piece of a streamed answer (`stream(..., deltas=True)`).
#[pyclass(module = "lmhost", frozen, get_all)]
pub(crate) struct Delta {
    /// Answer text.
    text: String,
    /// Reasoning text.
    reasoning: String,
    /// Tool calls completed in this piece (dicts: id, name, arguments).
    tool_calls: Vec<Py<PyAny>>,
}

impl From<StreamDelta> for Delta {
    fn from(d: StreamDelta) -> Self {
        let tool_calls = Python::attach(|py| d.tool_calls.iter().filter_map(|c| call_dict(py, c).ok()).collect());
        Self {
            text: d.text,
            reasoning: d.reasoning,
            tool_calls,
        }
    }
}

#[pymethods]
impl Delta {
    fn __repr__(&self) -> String {
        format!(
            "Delta(text={:?}, reasoning={:?}, tool_calls={})",
            self.text,
            self.reasoning,
            self.tool_calls.len()
        )
    }
}

fn call_dict(py: Python<'_>, c: &lmhost::ToolCall) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item("id", &c.id)?;
    d.set_item("name", &c.name)?;
    d.set_item("arguments", &c.arguments)?;
    Ok(d.into_any().unbind())
}

/// The result of one call: `prompt`, `response` and `response_text` as
/// clembench defines them, plus reasoning, tool calls, usage and timings.
#[pyclass(module = "lmhost", frozen)]
pub(crate) struct Generation {
    pub(crate) inner: lmhost::Generation,
}

#[pymethods]
impl Generation {
    /// The model's registry name.
    #[getter]
    fn model(&self) -> &str {
        &self.inner.model
    }
    /// Exactly what the engine was given: the rendered prompt text (local
    /// engines) or the HTTP request body (remote), as a dict.
    #[getter]
    fn prompt<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &self.inner.prompt)?)
    }
    /// Exactly what the engine returned (text, or the response body as a dict).
    #[getter]
    fn response<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &self.inner.response)?)
    }
    /// The answer alone, post-processed by the adapter.
    #[getter]
    fn response_text(&self) -> &str {
        &self.inner.response_text
    }
    /// The model's reasoning, if it wrote any.
    #[getter]
    fn reasoning(&self) -> Option<&str> {
        self.inner.reasoning.as_deref()
    }
    /// Tool calls, as dicts with `id`, `name` and `arguments` (JSON text).
    #[getter]
    fn tool_calls(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.inner.tool_calls.iter().map(|c| call_dict(py, c)).collect()
    }
    /// `stop`, `length`, `tool_calls` or `cancelled`.
    #[getter]
    fn finish_reason(&self) -> &str {
        &self.inner.finish_reason
    }
    /// Token counts.
    #[getter]
    fn usage(&self) -> Usage {
        Usage {
            inner: self.inner.usage,
        }
    }
    /// Where the time went.
    #[getter]
    fn timings(&self) -> Timings {
        Timings {
            inner: self.inner.timings,
        }
    }
    /// Generated tokens per second of generation time.
    #[getter]
    fn tokens_per_second(&self) -> f64 {
        self.inner.tokens_per_second()
    }
    /// The assistant turn to append to the history for the next call.
    fn message<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &Message::from_generation(&self.inner))?)
    }
    /// Everything, as plain Python values (JSON-serialisable).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &self.inner)?)
    }
    fn __str__(&self) -> &str {
        &self.inner.response_text
    }
    fn __repr__(&self) -> String {
        format!(
            "Generation(model={:?}, response_text={:?}, finish_reason={:?}, completion_tokens={})",
            self.inner.model, self.inner.response_text, self.inner.finish_reason, self.inner.usage.completion_tokens
        )
    }
}

/// Token counts of a call.
#[pyclass(module = "lmhost", frozen)]
pub(crate) struct Usage {
    inner: lmhost::Usage,
}

#[pymethods]
impl Usage {
    /// Tokens in the prompt.
    #[getter]
    fn prompt_tokens(&self) -> u32 {
        self.inner.prompt_tokens
    }
    /// Tokens generated.
    #[getter]
    fn completion_tokens(&self) -> u32 {
        self.inner.completion_tokens
    }
    /// Their sum.
    #[getter]
    fn total_tokens(&self) -> u32 {
        self.inner.total_tokens
    }
    /// Of the completion tokens, those spent reasoning.
    #[getter]
    fn reasoning_tokens(&self) -> u32 {
        self.inner.reasoning_tokens
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &self.inner)?)
    }
    fn __repr__(&self) -> String {
        format!(
            "Usage(prompt_tokens={}, completion_tokens={}, total_tokens={}, reasoning_tokens={})",
            self.inner.prompt_tokens,
            self.inner.completion_tokens,
            self.inner.total_tokens,
            self.inner.reasoning_tokens
        )
    }
}

/// Where a call's time went, in milliseconds.
#[pyclass(module = "lmhost", frozen)]
pub(crate) struct Timings {
    inner: lmhost::Timings,
}

#[pymethods]
impl Timings {
    /// In the adapter (shaping and parsing).
    #[getter]
    fn adapter_ms(&self) -> f64 {
        self.inner.adapter_ms
    }
    /// Evaluating the prompt.
    #[getter]
    fn prompt_ms(&self) -> f64 {
        self.inner.prompt_ms
    }
    /// Generating, first token included.
    #[getter]
    fn generation_ms(&self) -> f64 {
        self.inner.generation_ms
    }
    /// From the engine call to the first generated token.
    #[getter]
    fn time_to_first_token_ms(&self) -> Option<f64> {
        self.inner.time_to_first_token_ms
    }
    /// The whole call.
    #[getter]
    fn total_ms(&self) -> f64 {
        self.inner.total_ms
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &self.inner)?)
    }
    fn __repr__(&self) -> String {
        format!(
            "Timings(total_ms={:.1}, prompt_ms={:.1}, generation_ms={:.1}, adapter_ms={:.1})",
            self.inner.total_ms, self.inner.prompt_ms, self.inner.generation_ms, self.inner.adapter_ms
        )
    }
}
