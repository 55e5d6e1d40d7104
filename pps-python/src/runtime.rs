//! The one tokio runtime every call runs on, and the two ways Python waits for it.
//!
//! Sync methods hand their future to the runtime and wait with the interpreter
//! released, waking every few milliseconds to run Python's signal handlers: Ctrl-C
//! raises `KeyboardInterrupt` in the caller and cancels the Rust work at its next await
//! point (the store commits atomically, so nothing is half-written). Async methods
//! return a coroutine that, once awaited, drives an `asyncio.Future` on the same runtime
//! (pyo3-async-runtimes); cancelling it drops the Rust work the same way.

use crate::errors::to_pyerr;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyDict, PyTuple};
use std::future::Future;
use std::sync::Mutex;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;
use tokio::runtime::Runtime;

/// How often a waiting sync call looks for a pending signal (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The shared multi-threaded runtime (the one pyo3-async-runtimes drives futures on).
pub fn runtime() -> &'static Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `fut` on the runtime and waits for it with the interpreter released.
///
/// A signal handler that raises (Ctrl-C's `KeyboardInterrupt`) aborts the task and the
/// exception propagates. A task that ends without a value (a panic inside the engine)
/// becomes a `PpsError`, never a crash of the interpreter.
pub fn wait<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, mut rx) = sync_channel(1);
    let task = runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    loop {
        let (back, got) = py.detach(move || {
            let got = rx.recv_timeout(SIGNAL_POLL);
            (rx, got)
        });
        rx = back;
        match got {
            Ok(value) => return Ok(value),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    task.abort();
                    return Err(interrupt);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(crate::errors::internal(
                    py,
                    "the operation stopped without a result (a bug in pps; please report it)",
                ));
            }
        }
    }
}

/// [`wait`] for a future that returns a pps result: errors become pps exceptions.
pub fn wait_pps<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = pps_core::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    wait(py, fut)?.map_err(|e| to_pyerr(py, e))
}

/// A coroutine for `fut`: awaiting it runs `fut` on the shared runtime (through an
/// `asyncio.Future` from pyo3-async-runtimes); pps errors become pps exceptions and
/// `convert` turns the value into its Python form.
///
/// The work is deferred until the coroutine is awaited, so `asyncio.run(x.f_async())`
/// works (the future needs the running loop, which does not exist at call time) and
/// `asyncio.create_task` takes it. Cancelling the task cancels the asyncio future, which
/// drops the Rust work at its next await point.
pub fn future<'py, F, T, O, C>(py: Python<'py>, fut: F, convert: C) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = pps_core::Result<T>> + Send + 'static,
    T: Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<O> + Send + 'static,
    O: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let pending = Mutex::new(Some((fut, convert)));
    let start = PyCFunction::new_closure(
        py,
        Some(c"start"),
        None,
        move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| {
            let py = args.py();
            let taken = pending.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some((fut, convert)) = taken else {
                return Err(PyRuntimeError::new_err(
                    "this coroutine was already awaited",
                ));
            };
            pyo3_async_runtimes::tokio::future_into_py(py, async move {
                let out = fut.await;
                Python::attach(|py| match out {
                    Ok(v) => convert(py, v),
                    Err(e) => Err(to_pyerr(py, e)),
                })
            })
            .map(Bound::unbind)
        },
    )?;
    let drive = DRIVE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("pps._aio")?.getattr("drive")?.unbind())
    })?;
    drive.bind(py).call1((start,))
}

static DRIVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Runs a constructor that must see the runtime (cd2's client spawns its connection
/// lazily on it) with the interpreter released.
pub fn enter<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(|| {
        let _guard = runtime().enter();
        f()
    })
}
