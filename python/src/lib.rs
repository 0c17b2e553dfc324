//! `lmhost._lmhost`: the lmhost library for Python.
//!
//! Every call runs on a worker thread of its own while the calling thread
//! waits with the GIL released, waking every 50 ms to let Python run its
//! signal handlers: Ctrl-C raises `KeyboardInterrupt` at once and stops the
//! generation at its next token (a remote request that is not streamed ends on
//! its own; its answer is dropped). Async calls, streams and batches are the
//! same worker threads; on llama.cpp the concurrent requests of a batch are
//! decoded together by the engine's scheduler.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lmhost::registry::Query;
use lmhost::{GenerationParams, HostConfig, Message, StreamDelta};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyString, PyTuple};
use pythonize::{depythonize, pythonize};
use serde_json::Value;

mod convert;
mod errors;

use errors::{internal, to_py};

/// How often a waiting thread wakes to run Python's signal handlers.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Models behind one registry: resolves queries and loads models.
#[pyclass(module = "lmhost", frozen)]
struct Host {
    inner: Arc<lmhost::Host>,
}

#[pymethods]
impl Host {
    /// `Host(registry=None, *, home=None, models_dir=None)`.
    #[new]
    #[pyo3(signature = (registry = None, *, home = None, models_dir = None))]
    fn new(
        py: Python<'_>,
        registry: Option<&Bound<'_, PyAny>>,
        home: Option<PathBuf>,
        models_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut config = match home {
            Some(home) => HostConfig::with_home(home),
            None => HostConfig::from_env(),
        };
        config.registry_files = match registry {
            None => Vec::new(),
            Some(r) if r.is_instance_of::<PyString>() || r.hasattr("__fspath__")? => vec![r.extract()?],
            Some(r) => r
                .try_iter()
                .map_err(|_| PyTypeError::new_err("registry must be a path or a list of paths"))?
                .map(|p| p?.extract::<PathBuf>())
                .collect::<PyResult<_>>()?,
        };
        if let Some(dir) = models_dir {
            config.model_dirs.insert(0, dir);
        }
        let host = py.detach(|| lmhost::Host::with_config(config)).map_err(to_py)?;
        Ok(Self { inner: Arc::new(host) })
    }

    /// Resolve and load a model: a registry name, or a dict to unify with the
    /// registry's entries (a full entry loads a model no registry names).
    fn load(&self, py: Python<'_>, query: &Bound<'_, PyAny>) -> PyResult<Model> {
        let query = to_query(query)?;
        let host = self.inner.clone();
        let model = run_blocking(py, None, move || host.load(query))?;
        Ok(Model { inner: Arc::new(model) })
    }

    /// The registry entry a query resolves to, as a dict.
    fn resolve<'py>(&self, py: Python<'py>, query: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let spec = self.inner.resolve(to_query(query)?).map_err(to_py)?;
        Ok(pythonize(py, &Value::Object(spec.as_json().clone()))?)
    }

    /// The names of the registry's entries, first match first.
    fn models(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.inner
            .registry()
            .entries()
            .iter()
            .map(|e| e.model_name().to_string())
            .filter(|n| seen.insert(n.clone()))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Host(home={:?})", self.inner.config().home.display().to_string())
    }
}

fn to_query(query: &Bound<'_, PyAny>) -> PyResult<Query> {
    if let Ok(s) = query.cast::<PyString>() {
        return s.to_str()?.parse::<Query>().map_err(|e| to_py(e.into()));
    }
    match depythonize::<Value>(query) {
        Ok(Value::Object(map)) => Ok(Query::Spec(map)),
        _ => Err(PyTypeError::new_err(
            "a model query is a registry name or a dict (registry entry features)",
        )),
    }
}

/// A loaded model.
#[pyclass(module = "lmhost", frozen)]
struct Model {
    inner: Arc<lmhost::Model>,
}

#[pymethods]
impl Model {
    /// The registry name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The backend (`llamacpp`, `openai`, …).
    #[getter]
    fn backend(&self) -> &str {
        self.inner.spec().backend()
    }

    /// The context size in tokens, when the engine knows it.
    #[getter]
    fn context_length(&self) -> Option<u32> {
        self.inner.model_info().context_length
    }

    /// The resolved registry entry, as a dict.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize(py, &Value::Object(self.inner.spec().as_json().clone()))?)
    }

    /// Generate an answer to `messages` (a string, or a list of message dicts).
    #[pyo3(signature = (messages, **params))]
    fn generate(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Generation> {
        let messages = convert::messages(messages)?;
        let params = convert::params(params)?;
        generate(py, &self.inner, messages, params)
    }

    /// Generate answers to several conversations at once (decoded together
    /// on llama.cpp); results in input order. With `return_exceptions=True`
    /// a failed request's exception takes its place instead of being raised.
    #[pyo3(signature = (requests, *, return_exceptions = false, **params))]
    fn generate_batch(
        &self,
        py: Python<'_>,
        requests: &Bound<'_, PyAny>,
        return_exceptions: bool,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let conversations: Vec<Vec<Message>> = requests
            .try_iter()
            .map_err(|_| PyTypeError::new_err("requests must be a list of conversations"))?
            .enumerate()
            .map(|(i, r)| {
                convert::messages(&r?).map_err(|e| {
                    let text = e.value(py).to_string();
                    errors::invalid_request(&format!("requests[{i}]: {text}"))
                })
            })
            .collect::<PyResult<_>>()?;
        let params = convert::params(params)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        for (i, messages) in conversations.iter().cloned().enumerate() {
            let tx = tx.clone();
            spawn_call(&self.inner, messages, params.clone(), cancel.clone(), None, move |r| {
                let _ = tx.send((i, r));
            })?;
        }
        drop(tx);
        let rx = Mutex::new(rx);
        let mut results: Vec<Option<lmhost::Result<lmhost::Generation>>> = conversations.iter().map(|_| None).collect();
        for _ in 0..conversations.len() {
            let (i, r) = wait(py, &rx, &cancel)?;
            results[i] = Some(r);
        }
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r.ok_or_else(|| internal("a batch request returned no result"))? {
                Ok(g) => out.push(Py::new(py, Generation { inner: g })?.into_any()),
                Err(e) if return_exceptions => out.push(to_py(e).into_value(py).into_any()),
                Err(e) => return Err(to_py(e)),
            }
        }
        Ok(out)
    }

    /// Stream the answer: an iterator of text pieces (of `Delta`s with
    /// `deltas=True`); `.generation` holds the whole result once it ends.
    /// Leaving the loop early (or `close()`) stops the generation.
    #[pyo3(signature = (messages, *, deltas = false, **params))]
    fn stream(
        &self,
        messages: &Bound<'_, PyAny>,
        deltas: bool,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Stream> {
        let messages = convert::messages(messages)?;
        let params = convert::params(params)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let done = tx.clone();
        spawn_call(&self.inner, messages, params, cancel.clone(), Some(tx), move |r| {
            let _ = done.send(Event::Done(Box::new(r)));
        })?;
        Ok(Stream {
            events: Mutex::new(rx),
            ended: AtomicBool::new(false),
            cancel,
            deltas,
            generation: Mutex::new(None),
        })
    }

    /// `await model.agenerate(messages, **params)`: `generate` for asyncio.
    /// Cancelling the task stops the generation.
    #[pyo3(signature = (messages, **params))]
    fn agenerate<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        params: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let messages = convert::messages(messages)?;
        let params = convert::params(params)?;
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        let cancel = Arc::new(AtomicBool::new(false));
        let on_cancel = cancel.clone();
        let watch = PyCFunction::new_closure(
            py,
            None,
            None,
            move |args: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
                if args.get_item(0)?.call_method0("cancelled")?.is_truthy()? {
                    on_cancel.store(true, Ordering::Relaxed);
                }
                Ok(())
            },
        )?;
        future.call_method1("add_done_callback", (watch,))?;
        let (target, event_loop) = (future.clone().unbind(), event_loop.unbind());
        spawn_call(&self.inner, messages, params, cancel, None, move |result| {
            // The interpreter may be shutting down: then nobody awaits.
            Python::try_attach(|py| {
                let _ = settle(py, &event_loop, target, result);
            });
        })?;
        Ok(future)
    }

    /// `await model.agenerate_batch(requests, **params)`: `generate_batch`
    /// for asyncio (the calls run concurrently and are decoded together);
    /// cancelling the task stops them all.
    #[pyo3(signature = (requests, *, return_exceptions = false, **params))]
    fn agenerate_batch<'py>(
        &self,
        py: Python<'py>,
        requests: &Bound<'py, PyAny>,
        return_exceptions: bool,
        params: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conversations: Vec<Bound<'py, PyAny>> = requests
            .try_iter()
            .map_err(|_| PyTypeError::new_err("requests must be a list of conversations"))?
            .collect::<PyResult<_>>()?;
        let mut futures = Vec::with_capacity(conversations.len());
        for (i, messages) in conversations.iter().enumerate() {
            let future = self.agenerate(py, messages, params).map_err(|e| {
                let text = e.value(py).to_string();
                errors::invalid_request(&format!("requests[{i}]: {text}"))
            })?;
            futures.push(future);
        }
        let gather = py.import("asyncio")?.getattr("gather")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("return_exceptions", return_exceptions)?;
        gather.call(PyTuple::new(py, futures)?, Some(&kwargs))
    }

    /// The number of tokens `text` is to the model (no special tokens
    /// added); `None` for a remote model, whose tokenizer lmhost does not have.
    fn count_tokens(&self, text: &str) -> PyResult<Option<u32>> {
        self.inner.count_tokens(text).map_err(to_py)
    }

    /// A conversation with this model that keeps its history.
    #[pyo3(signature = (system = None, **params))]
    fn chat(
        slf: Py<Self>,
        py: Python<'_>,
        system: Option<String>,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Chat> {
        let params = convert::params(params)?;
        let model = slf.get().inner.clone();
        let _ = py;
        Ok(Chat {
            model,
            state: Mutex::new(ChatState {
                system,
                history: Vec::new(),
                params,
            }),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(name={:?}, backend={:?})",
            self.inner.name(),
            self.inner.spec().backend()
        )
    }
}

/// Hand an async call's result to its future, on the loop's thread; nothing
/// if the future was cancelled meanwhile.
fn settle(
    py: Python<'_>,
    event_loop: &Py<PyAny>,
    future: Py<PyAny>,
    result: lmhost::Result<lmhost::Generation>,
) -> PyResult<()> {
    let (method, value) = match result {
        Ok(g) => ("set_result", Py::new(py, Generation { inner: g })?.into_any()),
        Err(e) => ("set_exception", to_py(e).into_value(py).into_any()),
    };
    let apply = PyCFunction::new_closure(
        py,
        None,
        None,
        move |args: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            let py = args.py();
            let future = future.bind(py);
            if !future.call_method0("done")?.is_truthy()? {
                future.call_method1(method, (value.bind(py),))?;
            }
            Ok(())
        },
    )?;
    // A closed loop refuses: its caller is gone.
    event_loop.bind(py).call_method1("call_soon_threadsafe", (apply,))?;
    Ok(())
}

/// One call on a worker thread of its own; `done` gets its result. With
/// `deltas`, each streamed piece is sent there first.
fn spawn_call(
    model: &Arc<lmhost::Model>,
    messages: Vec<Message>,
    params: GenerationParams,
    cancel: Arc<AtomicBool>,
    deltas: Option<Sender<Event>>,
    done: impl FnOnce(lmhost::Result<lmhost::Generation>) + Send + 'static,
) -> PyResult<()> {
    let model = model.clone();
    std::thread::Builder::new()
        .name("lmhost-call".into())
        .spawn(move || {
            let stop = || cancel.load(Ordering::Relaxed);
            let result = match deltas {
                None => model.generate_cancellable(&messages, &params, &stop),
                Some(tx) => model.generate_stream_deltas(&messages, &params, |d| {
                    !stop() && tx.send(Event::Delta(d.clone())).is_ok()
                }),
            };
            done(result);
        })
        .map(|_| ())
        .map_err(|e| internal(&format!("cannot start a generation thread: {e}")))
}

/// Wait for a worker's message with the GIL released, running Python's signal
/// handlers between waits; a `KeyboardInterrupt` cancels the work.
fn wait<T: Send>(py: Python<'_>, rx: &Mutex<Receiver<T>>, cancel: &AtomicBool) -> PyResult<T> {
    loop {
        let received = py.detach(|| rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(SIGNAL_POLL));
        match received {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    cancel.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(internal("the generation thread ended without a result"))
            }
        }
    }
}

/// Run `work` on a worker thread and wait for it (Ctrl-C-able).
fn run_blocking<T: Send + 'static>(
    py: Python<'_>,
    cancel: Option<Arc<AtomicBool>>,
    work: impl FnOnce() -> lmhost::Result<T> + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("lmhost-call".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| internal(&format!("cannot start a worker thread: {e}")))?;
    let cancel = cancel.unwrap_or_default();
    wait(py, &Mutex::new(rx), &cancel)?.map_err(to_py)
}

fn generate(
    py: Python<'_>,
    model: &Arc<lmhost::Model>,
    messages: Vec<Message>,
    params: GenerationParams,
) -> PyResult<Generation> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    spawn_call(model, messages, params, cancel.clone(), None, move |r| {
        let _ = tx.send(r);
    })?;
    let g = wait(py, &Mutex::new(rx), &cancel)?.map_err(to_py)?;
    Ok(Generation { inner: g })
}

/// What a streaming worker sends.
enum Event {
    Delta(StreamDelta),
    Done(Box<lmhost::Result<lmhost::Generation>>),
}

/// A streamed answer: iterate for its pieces; `generation` once it has ended.
#[pyclass(module = "lmhost")]
struct Stream {
    events: Mutex<Receiver<Event>>,
    ended: AtomicBool,
    cancel: Arc<AtomicBool>,
    deltas: bool,
    generation: Mutex<Option<Py<Generation>>>,
}

#[pymethods]
impl Stream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        while !self.ended.load(Ordering::Relaxed) {
            match wait(py, &self.events, &self.cancel) {
                Ok(Event::Delta(d)) => {
                    if self.deltas {
                        return Ok(Some(Py::new(py, Delta::from(d))?.into_any()));
                    }
                    if !d.text.is_empty() {
                        return Ok(Some(PyString::new(py, &d.text).into_any().unbind()));
                    }
                }
                Ok(Event::Done(result)) => {
                    self.ended.store(true, Ordering::Relaxed);
                    let g = (*result).map_err(to_py)?;
                    *self.generation.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Py::new(py, Generation { inner: g })?);
                }
                Err(e) => {
                    self.ended.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// The whole result (text, usage, timings), once the stream has ended.
    #[getter]
    fn generation(&self, py: Python<'_>) -> Option<Py<Generation>> {
        self.generation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|g| g.clone_ref(py))
    }

    /// Stop the generation (it ends with finish reason `cancelled`).
    fn close(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(&self, _a: Option<&Bound<'_, PyAny>>, _b: Option<&Bound<'_, PyAny>>, _c: Option<&Bound<'_, PyAny>>) {
        self.close();
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// A piece of a streamed answer (`stream(..., deltas=True)`).
#[pyclass(module = "lmhost", frozen, get_all)]
struct Delta {
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
struct Generation {
    inner: lmhost::Generation,
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
struct Usage {
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
struct Timings {
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

struct ChatState {
    system: Option<String>,
    history: Vec<Message>,
    params: GenerationParams,
}

/// A conversation that keeps its history: `chat.say("…")`.
#[pyclass(module = "lmhost", frozen)]
struct Chat {
    model: Arc<lmhost::Model>,
    state: Mutex<ChatState>,
}

#[pymethods]
impl Chat {
    /// Send a user turn; the answer joins the history. Parameters given here
    /// apply to this turn, over the chat's own.
    #[pyo3(signature = (text, **params))]
    fn say(&self, py: Python<'_>, text: String, params: Option<&Bound<'_, PyDict>>) -> PyResult<Generation> {
        let turn = convert::params(params)?;
        let (messages, params) = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut messages: Vec<Message> = state.system.iter().map(Message::system).collect();
            messages.extend(state.history.iter().cloned());
            messages.push(Message::user(text.clone()));
            (messages, turn.or(&state.params))
        };
        let g = generate(py, &self.model, messages, params)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.history.push(Message::user(text));
        state.history.push(Message::from_generation(&g.inner));
        Ok(g)
    }

    /// The system prompt, if any.
    #[getter]
    fn system(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).system.clone()
    }

    /// The turns so far (without the system prompt), as message dicts.
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let items = state
            .history
            .iter()
            .map(|m| pythonize(py, m))
            .collect::<Result<Vec<_>, _>>()?;
        PyList::new(py, items)
    }

    /// Forget the turns (the system prompt stays).
    fn clear(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).history.clear();
    }
}

/// The extension module.
#[pymodule]
fn _lmhost(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Host>()?;
    m.add_class::<Model>()?;
    m.add_class::<Generation>()?;
    m.add_class::<Usage>()?;
    m.add_class::<Timings>()?;
    m.add_class::<Stream>()?;
    m.add_class::<Delta>()?;
    m.add_class::<Chat>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
