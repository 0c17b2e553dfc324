//! How a call runs: on a worker thread of its own, the caller waiting with the
//! GIL released and waking every [`SIGNAL_POLL`] for Python's signal handlers;
//! async calls hand their result to the event loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lmhost::{GenerationParams, Message, StreamDelta};
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};

use crate::errors::{internal, to_py};
use crate::results::Generation;

/// How often a waiting thread wakes to run Python's signal handlers.
pub(crate) const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Hand an async call's result to its future, on the loop's thread; nothing
/// if the future was cancelled meanwhile.
pub(crate) fn settle(
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
pub(crate) fn spawn_call(
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
pub(crate) fn wait<T: Send>(py: Python<'_>, rx: &Mutex<Receiver<T>>, cancel: &AtomicBool) -> PyResult<T> {
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
pub(crate) fn run_blocking<T: Send + 'static>(
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

pub(crate) fn generate(
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
pub(crate) enum Event {
    Delta(StreamDelta),
    Done(Box<lmhost::Result<lmhost::Generation>>),
}
