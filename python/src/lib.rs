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
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

use lmhost::registry::Query;
use lmhost::{GenerationParams, HostConfig, Message};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyString, PyTuple};
use pythonize::{depythonize, pythonize};
use serde_json::Value;

mod calls;
mod convert;
mod errors;
mod results;

use calls::{generate, run_blocking, settle, spawn_call, wait, Event};
use errors::{internal, to_py};
use results::{Delta, Generation, Timings, Usage};

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
