//! `pps.Scanner`: the whole library over one config (what `pps::App` holds).

use crate::config::PyConfig;
use crate::errors::to_pyerr;
use crate::runtime::{self, future, wait_pps};
use crate::types::{PyOnceReport, PyPassReport, json_to_py, once_report, pass_report};
use pps::index::ProgressFn;
use pps::{Access, App, Config};
use pps_core::{Error, ErrorKind, Result};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;
use tokio::sync::oneshot;

/// Watches folders, finds what changed, and asks media servers to rescan only that.
///
/// ``Scanner(config)`` takes a ``Config`` (or the path of a ``pps.toml``), opens the
/// SQLite store and builds every source and target; nothing is contacted yet.
///
/// - ``index()`` records a fresh baseline of each watch (scans nothing);
/// - ``run_once()`` passes every watch once and delivers the scans (for cron);
/// - ``serve()`` runs the service: passes on schedule, delivery loops, until
///   cancelled (Ctrl-C, ``duration`` elapsed, or the asyncio task cancelled);
/// - ``status()``, ``history()``, ``ls(path)`` and ``forget(path)`` read and trim
///   the store; ``check()`` reaches every source and target; ``walk(root)`` measures
///   a tree.
///
/// Every method releases the interpreter while it works and has an ``*_async`` twin
/// returning a coroutine. Ctrl-C interrupts a sync call (``KeyboardInterrupt``);
/// the store commits atomically, so an interrupted pass loses nothing.
///
/// A Scanner holds the store's writer lock from its creation until it is garbage
/// collected, as ``pps run`` does: beside a running ``pps run`` it raises
/// ``UnavailableError`` (``store pps.db is in use by pid N (pps run)``), and a
/// ``pps run`` started beside it is refused naming ``a Python pps.Scanner``. It can
/// be shared between threads; run its passes (``index``, ``run_once``, ``serve``)
/// from one at a time.
#[pyclass(module = "pps", name = "Scanner", frozen)]
#[derive(Debug)]
pub struct PyScanner {
    app: Arc<App>,
    /// Callables `serve()` hands each new history line to (``on_event``).
    listeners: std::sync::Mutex<Vec<Py<PyAny>>>,
}

fn progress_fn(cb: Arc<Py<PyAny>>) -> ProgressFn {
    Box::new(move |label, p| {
        Python::attach(|py| {
            if let Err(e) = cb.call1(py, (label, p.listed, p.queued)) {
                // A failing callback must not stop the pass; Python reports it as
                // unraisable (printed, or seen by sys.unraisablehook).
                e.write_unraisable(py, None);
            }
        })
    })
}

impl PyScanner {
    /// Hands the history lines after `cursor` to the listeners; returns the new cursor.
    fn tell_listeners(&self, py: Python<'_>, cursor: i64) -> i64 {
        let store = self.app.engine.store().clone();
        let lines = match py.detach(move || store.history_after(cursor, 1000)) {
            Ok(l) => l,
            Err(e) => {
                // Reported, not raised: the service goes on; the next look tries again.
                to_pyerr(py, e).write_unraisable(py, None);
                return cursor;
            }
        };
        let Some(last) = lines.last().map(|h| h.id) else {
            return cursor;
        };
        let listeners: Vec<Py<PyAny>> = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|l| l.clone_ref(py))
            .collect();
        for h in &lines {
            let Ok(event) = json_to_py(py, &pps::history::to_json(h)) else {
                continue;
            };
            for l in &listeners {
                if let Err(e) = l.call1(py, (event.clone_ref(py),)) {
                    e.write_unraisable(py, None);
                }
            }
        }
        last
    }

    fn walk_future(
        &self,
        root: String,
        concurrency: Option<usize>,
        max_queries_per_second: Option<f64>,
        max_depth: Option<usize>,
    ) -> impl std::future::Future<Output = Result<serde_json::Value>> + use<> {
        // The walk reads the sources' settings and the budget's store from the config
        // file; a config made from text has none, and `local:PATH` still works.
        let file = self.app.config.file.clone().unwrap_or_default();
        let args = pps::walk::WalkArgs {
            root,
            concurrency,
            max_queries_per_second,
            max_depth,
            interval: None,
            max_interval: None,
            force: false,
        };
        async move {
            let r = pps::walk::walk_root(&file, &args, None, std::future::pending::<()>()).await?;
            Ok(r.to_json())
        }
    }

    /// The watches `index` works on: all, or the one named by `source:path` or path.
    fn chosen(&self, watch: Option<&str>) -> Result<Vec<usize>> {
        let names: Vec<String> = watch.into_iter().map(str::to_owned).collect();
        pps::index::select(&self.app, &names)
    }

    fn index_future(
        &self,
        watch: Option<&str>,
        progress: Option<Py<PyAny>>,
    ) -> Result<impl std::future::Future<Output = Result<Vec<pps_core::PassReport>>> + use<>> {
        let chosen = self.chosen(watch)?;
        let app = self.app.clone();
        let progress = progress.map(Arc::new);
        Ok(async move {
            let mut out = Vec::with_capacity(chosen.len());
            for i in chosen {
                let p = progress.clone().map(progress_fn);
                out.push(pps::index::reindex(&app, i, p).await?);
            }
            Ok(out)
        })
    }
}

fn convert_passes(
    py: Python<'_>,
    reports: Vec<pps_core::PassReport>,
) -> PyResult<Vec<PyPassReport>> {
    reports.into_iter().map(|r| pass_report(py, r)).collect()
}

#[pymethods]
impl PyScanner {
    #[new]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Self> {
        let config: Config = match config.cast::<PyConfig>() {
            Ok(c) => c.get().inner.clone(),
            Err(_) => {
                let path: PathBuf = config.extract()?;
                py.detach(|| Config::load(&path))
                    .map_err(|e| to_pyerr(py, e))?
            }
        };
        // A Scanner lists folders into its store, as `pps run` does: it takes the
        // store's writer lock, so it never doubles the calls of a running service.
        let app = runtime::enter(py, || {
            App::build_for(config, Access::Writer("a Python pps.Scanner"))
        })
        .map_err(|e| to_pyerr(py, e))?;
        Ok(PyScanner {
            app: Arc::new(app),
            listeners: std::sync::Mutex::default(),
        })
    }

    /// The watches as ``source:path`` labels, in config order.
    #[getter]
    fn watches(&self) -> Vec<String> {
        self.app.watches.iter().map(|(w, _)| w.label()).collect()
    }

    /// The config the scanner was built from.
    #[getter]
    fn config(&self) -> PyConfig {
        PyConfig {
            inner: self.app.config.clone(),
        }
    }

    /// Records the baseline of each watch anew (all, or the one named by ``watch``:
    /// ``source:path`` or its path): drops its stored state, lists every folder, scans
    /// nothing. Returns one ``PassReport`` per watch.
    ///
    /// ``progress(watch, folders_listed, folders_waiting)`` is called as folders are
    /// listed (from a worker thread; keep it quick).
    #[pyo3(signature = (watch = None, *, progress = None))]
    fn index(
        &self,
        py: Python<'_>,
        watch: Option<&str>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<PyPassReport>> {
        let fut = self
            .index_future(watch, progress)
            .map_err(|e| to_pyerr(py, e))?;
        convert_passes(py, wait_pps(py, fut)?)
    }

    /// ``index()`` as a coroutine.
    #[pyo3(signature = (watch = None, *, progress = None))]
    fn index_async<'py>(
        &self,
        py: Python<'py>,
        watch: Option<&str>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self
            .index_future(watch, progress)
            .map_err(|e| to_pyerr(py, e))?;
        future(py, fut, convert_passes)
    }

    /// One pass over every watch, then delivery to every target; returns a
    /// ``OnceReport`` (changes, deliveries per target, errors).
    ///
    /// By default a pass lists the folders due now (each folder has its own poll
    /// interval, which grows while it stays unchanged); ``full=True`` lists every
    /// folder. A watch that fails (an outage, a missing root) or a target that is down
    /// is reported in the result, not raised; only a broken store or config raises.
    #[pyo3(signature = (*, full = false))]
    fn run_once(&self, py: Python<'_>, full: bool) -> PyResult<PyOnceReport> {
        let app = self.app.clone();
        let r = wait_pps(py, async move { pps::once::once(&app, full).await })?;
        once_report(py, r)
    }

    /// ``run_once()`` as a coroutine.
    #[pyo3(signature = (*, full = false))]
    fn run_once_async<'py>(&self, py: Python<'py>, full: bool) -> PyResult<Bound<'py, PyAny>> {
        let app = self.app.clone();
        future(
            py,
            async move { pps::once::once(&app, full).await },
            once_report,
        )
    }

    /// The store as a dict: its file and size, folders per watch, and per target the
    /// pending and parked scans (with the reasons of up to 20 parked ones).
    fn status(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let app = self.app.clone();
        let v = py
            .detach(|| status_value(&app))
            .map_err(|e| to_pyerr(py, e))?;
        json_to_py(py, &v)
    }

    /// ``status()`` as a coroutine.
    fn status_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let app = self.app.clone();
        future(py, blocking(move || status_value(&app)), |py, v| {
            json_to_py(py, &v)
        })
    }

    /// Asks each media server whether it indexed what it was sent: one confirmation
    /// round per target (Plex, Emby, Jellyfin). By default only the checks that are due
    /// (``serve()`` runs them on its own); ``all=True`` looks up every pending one now.
    /// Returns a list of dicts, one per target: ``target``, ``checked``, ``indexed``,
    /// ``removed``, ``stuck``, ``remedied``, ``failure`` (the server's last failure to
    /// answer, or ``None``). The outcomes are in ``history()`` (``indexed``,
    /// ``removed``, ``stuck``) and ``status()``.
    #[pyo3(signature = (*, all = false))]
    fn confirm(&self, py: Python<'_>, all: bool) -> PyResult<Py<PyAny>> {
        let app = self.app.clone();
        let r = wait_pps(py, async move { pps::once::confirm(&app, all).await })?;
        json_to_py(py, &confirm_value(r))
    }

    /// ``confirm()`` as a coroutine.
    #[pyo3(signature = (*, all = false))]
    fn confirm_async<'py>(&self, py: Python<'py>, all: bool) -> PyResult<Bound<'py, PyAny>> {
        let app = self.app.clone();
        future(
            py,
            async move { pps::once::confirm(&app, all).await },
            |py, r| json_to_py(py, &confirm_value(r)),
        )
    }

    /// The activity history, newest first, as a list of dicts (``id``, ``at`` in Unix
    /// seconds, ``event``: ``change``/``sent``/``retried``/``parked``/``dropped``/
    /// ``indexed``/``removed``/``stuck``, ``source``, ``watch``, ``target``, ``path``,
    /// ``update``, ``is_dir``, ``detail``: the path as sent, the error, the reason, or
    /// the item found; ``origin``: for ``change``, what made pps look (``poll``,
    /// ``spare``, ``walk``, ``push``, ``webhook``, ``manual``; ``None`` in lines from
    /// before pps recorded it); ``took_s``: for ``indexed`` and ``removed``, the seconds from
    /// the change being found to the library). Filters: ``target``, ``path`` (text the
    /// path contains), ``since`` (seconds back from now), ``events``, ``before`` (an
    /// id: the next page), ``limit``.
    #[pyo3(signature = (*, target = None, path = None, since = None, events = None, before = None, limit = 100))]
    #[allow(clippy::too_many_arguments)]
    fn history(
        &self,
        py: Python<'_>,
        target: Option<String>,
        path: Option<String>,
        since: Option<f64>,
        events: Option<Vec<String>>,
        before: Option<i64>,
        limit: usize,
    ) -> PyResult<Py<PyAny>> {
        let since = match since {
            None => None,
            Some(s) if (0.0..1e10).contains(&s) => Some(Duration::from_secs_f64(s)),
            Some(_) => {
                return Err(crate::errors::config(
                    py,
                    "since",
                    "must be a finite number of seconds, at least 0",
                ));
            }
        };
        let filter = pps::history::HistoryFilter {
            target,
            path,
            since,
            events: events.unwrap_or_default(),
            before,
            limit: Some(limit),
        };
        let app = self.app.clone();
        let lines = py
            .detach(|| pps::history::history(&app, &filter))
            .map_err(|e| to_pyerr(py, e))?;
        let v = serde_json::Value::Array(lines.iter().map(pps::history::to_json).collect());
        json_to_py(py, &v)
    }

    /// Drops stored state at and under ``path`` (``source:path``, or a path inside a
    /// watch); the next pass records it again as a baseline, without scanning. Returns
    /// the number of folders dropped.
    fn forget(&self, py: Python<'_>, path: String) -> PyResult<u64> {
        let app = self.app.clone();
        py.detach(|| pps::outbox::forget(&app, &path).map(|(n, _)| n))
            .map_err(|e| to_pyerr(py, e))
    }

    /// ``forget()`` as a coroutine.
    fn forget_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        let app = self.app.clone();
        future(
            py,
            blocking(move || pps::outbox::forget(&app, &path).map(|(n, _)| n)),
            |_, n| Ok(n),
        )
    }

    /// Lists ``path`` (``source:path``, or a path inside a watch) live, one call to the
    /// source, beside its stored state, changing nothing: a dict with ``source``,
    /// ``path``, ``watch``, ``stored`` (whether the folder has stored state),
    /// ``changes`` (what a pass listing it now would report) and ``rows``, each with
    /// ``state`` (``same``, ``new``, ``modified``, ``gone``, ``excluded``), ``entry``
    /// and ``stored`` (the stored entry of that name, or ``None``). As ``pps ls``.
    fn ls(&self, py: Python<'_>, path: String) -> PyResult<Py<PyAny>> {
        let app = self.app.clone();
        let r = wait_pps(py, async move { pps::inspect::ls(&app, &path).await })?;
        json_to_py(py, &to_value(&r)?)
    }

    /// ``ls()`` as a coroutine.
    fn ls_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        let app = self.app.clone();
        future(
            py,
            async move { pps::inspect::ls(&app, &path).await },
            |py, r| json_to_py(py, &to_value(&r)?),
        )
    }

    /// Reaches every source and target and works out where each watch's scans land,
    /// as ``pps check``: a dict with ``ok`` (nothing wrong), ``problem`` (a config
    /// without a watch, or ``None``), ``sources`` (``name``, ``what``, ``state``:
    /// ``local``/``ready``/``reachable``/``failed``, ``notes`` or ``error``),
    /// ``targets`` (``name``, ``kind``, ``server``, ``libraries`` or ``error``) and
    /// ``watches`` (``watch``, ``root``: ``listed``/``failed``/``not checked``,
    /// ``entries`` or ``error``, and per target ``landing``: ``unmapped``,
    /// ``unreached``, ``anywhere``, ``no library`` or ``libraries``, with the
    /// ``mapped`` path and the ``libraries`` it lands in). Never raises for what it
    /// finds wrong: that is in the dict.
    fn check(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let app = self.app.clone();
        let r = wait_pps(py, async move { Ok(pps::check::check(&app).await) })?;
        json_to_py(py, &check_value(&r))
    }

    /// ``check()`` as a coroutine.
    fn check_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let app = self.app.clone();
        future(
            py,
            async move { Ok(pps::check::check(&app).await) },
            |py, r| json_to_py(py, &check_value(&r)),
        )
    }

    /// Lists the tree under ``root`` (``source:path`` of this config, or
    /// ``local:PATH``) read-only through the source's rate limit and retries, stores
    /// nothing and scans nothing, and reports its size and what listing it costs, as
    /// ``pps walk --json``: ``folders``, ``files``, ``bytes``, ``calls``,
    /// ``throttled``, ``latency_ms``, ``rate_limit_wait_s``, ``full_pass_s``,
    /// ``calls_per_day`` and more. Its calls come out of the budget the store keeps
    /// for the source (it waits for it beside a running ``pps run``).
    #[pyo3(signature = (root, *, concurrency = None, max_queries_per_second = None, max_depth = None))]
    fn walk(
        &self,
        py: Python<'_>,
        root: String,
        concurrency: Option<usize>,
        max_queries_per_second: Option<f64>,
        max_depth: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let fut = self.walk_future(root, concurrency, max_queries_per_second, max_depth);
        let r = wait_pps(py, fut)?;
        json_to_py(py, &r)
    }

    /// ``walk()`` as a coroutine.
    #[pyo3(signature = (root, *, concurrency = None, max_queries_per_second = None, max_depth = None))]
    fn walk_async<'py>(
        &self,
        py: Python<'py>,
        root: String,
        concurrency: Option<usize>,
        max_queries_per_second: Option<f64>,
        max_depth: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.walk_future(root, concurrency, max_queries_per_second, max_depth);
        future(py, fut, |py, r| json_to_py(py, &r))
    }

    /// Runs the service: each watch is passed every ``interval`` and each target has its
    /// own delivery loop. Returns after ``duration`` seconds when given; otherwise runs
    /// until Ctrl-C, which stops it cleanly (a short last delivery) and then raises
    /// ``KeyboardInterrupt``.
    #[pyo3(signature = (*, duration = None))]
    fn serve(&self, py: Python<'_>, duration: Option<f64>) -> PyResult<()> {
        let duration = seconds(py, duration)?;
        let app = self.app.clone();
        // Listeners get what happens from now on, on this thread, between waits.
        let listening = !self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty();
        let mut cursor = if listening {
            let store = app.engine.store().clone();
            py.detach(move || store.last_history_id())
                .map_err(|e| to_pyerr(py, e))?
        } else {
            0
        };
        let mut last_look = std::time::Instant::now();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (tx, mut rx) = sync_channel(1);
        runtime::runtime().spawn(async move {
            let r = pps::service::serve(&app, stop_when(stop_rx, duration)).await;
            let _ = tx.send(r);
        });
        let mut stop_tx = Some(stop_tx);
        let mut interrupt: Option<PyErr> = None;
        loop {
            let (back, got) = py.detach(move || {
                let got = rx.recv_timeout(Duration::from_millis(50));
                (rx, got)
            });
            rx = back;
            match got {
                Ok(r) => {
                    r.map_err(|e| to_pyerr(py, e))?;
                    return match interrupt {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                }
                Err(RecvTimeoutError::Timeout) => {
                    if listening && last_look.elapsed() >= Duration::from_millis(500) {
                        last_look = std::time::Instant::now();
                        cursor = self.tell_listeners(py, cursor);
                    }
                    if interrupt.is_none()
                        && let Err(e) = py.check_signals()
                    {
                        // Stop cleanly, wait for the last delivery, then re-raise.
                        interrupt = Some(e);
                        if let Some(tx) = stop_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(crate::errors::internal(
                        py,
                        "the service stopped without a result (a bug in pps; please report it)",
                    ));
                }
            }
        }
    }

    /// Registers ``callback`` to receive what happens while ``serve()`` runs: each new
    /// history line as a dict (the keys of ``history()``: ``event`` is ``change``,
    /// ``sent``, ``indexed``, ``removed``, ``stuck``, ``parked``, ``source_down``,
    /// ``source_up``, ``throttled``, ...), oldest first, on the thread that called
    /// ``serve()``, about twice a second. An exception in the callback is reported as
    /// unraisable and does not stop the service. ``serve_async()`` does not call it.
    fn on_event(&self, callback: Py<PyAny>) {
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(callback);
    }

    /// ``serve()`` as a coroutine: runs until ``duration`` elapses or the task awaiting
    /// it is cancelled; cancelling stops the service cleanly in the background (a short
    /// last delivery).
    #[pyo3(signature = (*, duration = None))]
    fn serve_async<'py>(
        &self,
        py: Python<'py>,
        duration: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let duration = seconds(py, duration)?;
        let app = self.app.clone();
        future(
            py,
            async move {
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                // The service runs in its own task so that, when this future is dropped
                // (cancelled), dropping `stop_tx` lets it stop cleanly instead of being
                // cut off.
                let task = tokio::spawn(async move {
                    pps::service::serve(&app, stop_when(stop_rx, duration)).await
                });
                let _stop = stop_tx;
                task.await.map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("the service task failed: {e}"),
                    )
                })?
            },
            |_, ()| Ok(()),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "Scanner(store={:?}, watches={:?}, targets={:?})",
            self.app.config.store.display().to_string(),
            self.watches(),
            self.app.targets.keys().collect::<Vec<_>>()
        )
    }
}

/// A future that resolves when `stop` fires or is dropped, or after `duration`.
async fn stop_when(stop: oneshot::Receiver<()>, duration: Option<Duration>) {
    match duration {
        Some(d) => {
            tokio::select! {
                _ = stop => {}
                _ = tokio::time::sleep(d) => {}
            }
        }
        None => {
            let _ = stop.await;
        }
    }
}

/// Runs blocking store work on the runtime's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("store task failed: {e}")))?
}

/// A non-negative finite number of seconds.
pub(crate) fn seconds(py: Python<'_>, value: Option<f64>) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if (0.0..1e10).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => Err(crate::errors::config(
            py,
            "duration",
            "must be a finite number of seconds, at least 0",
        )),
    }
}

/// `confirm()`'s list of dicts.
fn confirm_value(r: Vec<(String, pps_core::engine::ConfirmReport)>) -> serde_json::Value {
    serde_json::Value::Array(
        r.into_iter()
            .map(|(target, r)| {
                serde_json::json!({
                    "target": target,
                    "checked": r.checked,
                    "indexed": r.indexed,
                    "removed": r.removed,
                    "stuck": r.stuck,
                    "remedied": r.remedied,
                    "failure": r.failure,
                })
            })
            .collect(),
    )
}

/// `status()` as JSON: the same report `pps status --json` prints.
fn status_value(app: &App) -> pps_core::Result<serde_json::Value> {
    let report = pps::status::status(app)?;
    serde_json::to_value(report)
        .map_err(|e| pps_core::Error::new(pps_core::ErrorKind::Unexpected, e.to_string()))
}

/// `ls()`'s report as JSON.
fn to_value(v: &pps::inspect::LsReport) -> PyResult<serde_json::Value> {
    serde_json::to_value(v)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("report: {e}")))
}

/// `check()`'s dict.
fn check_value(r: &pps::check::CheckReport) -> serde_json::Value {
    use pps::check::{Landing, RootOutcome, SourceOutcome};
    use serde_json::json;
    let sources: Vec<_> = r
        .sources
        .iter()
        .map(|s| match &s.outcome {
            SourceOutcome::Local => json!({"name": s.name, "what": s.what, "state": "local"}),
            SourceOutcome::Ready => json!({"name": s.name, "what": s.what, "state": "ready"}),
            SourceOutcome::Reachable(notes) => {
                json!({"name": s.name, "what": s.what, "state": "reachable", "notes": notes})
            }
            SourceOutcome::Failed(e) => {
                json!({"name": s.name, "what": s.what, "state": "failed", "error": e})
            }
        })
        .collect();
    let targets: Vec<_> = r
        .targets
        .iter()
        .map(|t| match &t.result {
            Ok(info) => json!({
                "name": t.name, "kind": t.kind, "server": info.server, "version": info.version,
                "libraries": info.libraries.iter().map(|l| json!({"id": l.id, "name": l.name, "locations": l.locations})).collect::<Vec<_>>(),
            }),
            Err(e) => json!({"name": t.name, "kind": t.kind, "error": e}),
        })
        .collect();
    let watches: Vec<_> = r
        .watches
        .iter()
        .map(|w| {
            let root = match &w.root {
                RootOutcome::Listed(n) => json!({"root": "listed", "entries": n}),
                RootOutcome::Failed(e) => json!({"root": "failed", "error": e}),
                RootOutcome::NotChecked | RootOutcome::NoSource => json!({"root": "not checked"}),
            };
            let lands: Vec<_> = w
                .targets
                .iter()
                .map(|(t, l)| match l {
                    Landing::Unmapped => json!({"target": t, "landing": "unmapped"}),
                    Landing::Unreached(m) => json!({"target": t, "landing": "unreached", "mapped": m}),
                    Landing::Anywhere(m) => json!({"target": t, "landing": "anywhere", "mapped": m}),
                    Landing::NoLibrary(m) => json!({"target": t, "landing": "no library", "mapped": m}),
                    Landing::Libraries(m, libs) => json!({
                        "target": t, "landing": "libraries", "mapped": m,
                        "libraries": libs.iter().map(|(name, id)| json!({"name": name, "id": id})).collect::<Vec<_>>(),
                    }),
                })
                .collect();
            let mut v = json!({"watch": w.label, "line": w.line, "targets": lands});
            if let (Some(o), serde_json::Value::Object(root)) = (v.as_object_mut(), root) {
                o.extend(root);
            }
            v
        })
        .collect();
    json!({
        "ok": r.ok(),
        "file": r.file,
        "store": r.store,
        "problem": r.no_watches,
        "sources": sources,
        "targets": targets,
        "watches": watches,
    })
}
