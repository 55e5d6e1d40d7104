//! Scan targets: `pps.Plex`, `pps.Emby`, `pps.Jellyfin`, on one base `pps.Target`.

use crate::errors::{config, error_object};
use crate::runtime::{future, wait_pps};
use crate::scanner::seconds;
use crate::types::{PyLibrary, PyTargetInfo};
use pps_core::{Library, Result, ScanRequest, ScanTarget, TargetInfo, Update};
use pps_mediaserver::{EmbyConfig, EmbyTarget, JellyfinTarget, PlexConfig, PlexTarget};
use pyo3::prelude::*;
use std::sync::Arc;

fn libraries(_py: Python<'_>, v: Vec<Library>) -> PyResult<Vec<PyLibrary>> {
    Ok(v.into_iter().map(PyLibrary::from).collect())
}

fn info(_py: Python<'_>, v: TargetInfo) -> PyResult<PyTargetInfo> {
    Ok(PyTargetInfo::from(v))
}

fn results(py: Python<'_>, v: Vec<Result<()>>) -> PyResult<Vec<Option<Py<PyAny>>>> {
    v.into_iter()
        .map(|r| match r {
            Ok(()) => Ok(None),
            Err(e) => error_object(py, &e).map(|o| Some(o.unbind())),
        })
        .collect()
}

/// Sends `requests` in batches the target takes; one result per request, in order.
async fn scan_all(
    target: Arc<dyn ScanTarget>,
    requests: Vec<ScanRequest>,
) -> Result<Vec<Result<()>>> {
    let batch = target.capabilities().max_batch.max(1);
    let mut out = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(batch) {
        out.extend(target.scan(chunk).await);
    }
    Ok(out)
}

fn parse_update(py: Python<'_>, update: &str) -> PyResult<Update> {
    match update {
        "created" => Ok(Update::Created),
        "modified" => Ok(Update::Modified),
        "deleted" => Ok(Update::Deleted),
        _ => Err(config(
            py,
            "update",
            "update must be \"created\", \"modified\" or \"deleted\"",
        )),
    }
}

/// A media server that rescans paths on request; the base of ``Plex``, ``Emby`` and
/// ``Jellyfin``.
///
/// Paths given to a target are the server's own paths (after any path mapping: see
/// ``PathMapping``). Credentials travel in request headers, never in URLs, and never
/// appear in ``repr`` or in an error.
#[pyclass(module = "pps", name = "Target", frozen, subclass)]
#[derive(Debug)]
pub struct PyTarget {
    inner: Arc<dyn ScanTarget>,
    kind: &'static str,
    shown: String,
}

#[pymethods]
impl PyTarget {
    /// The server's libraries (Plex sections, Emby/Jellyfin virtual folders) with the
    /// folders they cover.
    fn libraries(&self, py: Python<'_>) -> PyResult<Vec<PyLibrary>> {
        let t = self.inner.clone();
        let v = wait_pps(py, async move { t.libraries().await })?;
        libraries(py, v)
    }

    /// ``libraries()`` as a coroutine.
    fn libraries_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        future(py, async move { t.libraries().await }, libraries)
    }

    /// Reaches the server (proving the URL and the credentials) and returns a
    /// ``TargetInfo``: who it is, its version, its libraries.
    fn check(&self, py: Python<'_>) -> PyResult<PyTargetInfo> {
        let t = self.inner.clone();
        let v = wait_pps(py, async move { t.check().await })?;
        info(py, v)
    }

    /// ``check()`` as a coroutine.
    fn check_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.inner.clone();
        future(py, async move { t.check().await }, info)
    }

    /// Asks the server to rescan ``paths`` (the server's own paths), each with
    /// ``update`` (``"created"``, ``"modified"`` or ``"deleted"``) and ``is_dir``.
    ///
    /// Returns one item per path, in order: ``None`` when the server accepted it, or
    /// the ``PpsError`` (not raised) saying why not: ``TargetError`` when no library
    /// holds the path, ``AuthError`` for a wrong token, ``UnavailableError`` when the
    /// server is down. Plex scans folders only: a file path scans its folder.
    #[pyo3(signature = (paths, *, update = "modified", is_dir = true))]
    fn scan(
        &self,
        py: Python<'_>,
        paths: Vec<String>,
        update: &str,
        is_dir: bool,
    ) -> PyResult<Vec<Option<Py<PyAny>>>> {
        let requests = requests(py, paths, update, is_dir)?;
        let v = wait_pps(py, scan_all(self.inner.clone(), requests))?;
        results(py, v)
    }

    /// ``scan()`` as a coroutine.
    #[pyo3(signature = (paths, *, update = "modified", is_dir = true))]
    fn scan_async<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<String>,
        update: &str,
        is_dir: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let requests = requests(py, paths, update, is_dir)?;
        future(py, scan_all(self.inner.clone(), requests), results)
    }

    /// ``True`` when the server takes file paths (Emby, Jellyfin); ``False`` when it
    /// scans folders only (Plex).
    #[getter]
    fn scans_files(&self) -> bool {
        self.inner.capabilities().scans_files
    }

    /// The server URL without credentials.
    #[getter]
    fn url(&self) -> &str {
        &self.shown
    }

    fn __repr__(&self) -> String {
        format!("{}(url={:?})", self.kind, self.shown)
    }
}

fn requests(
    py: Python<'_>,
    paths: Vec<String>,
    update: &str,
    is_dir: bool,
) -> PyResult<Vec<ScanRequest>> {
    let update = parse_update(py, update)?;
    Ok(paths
        .into_iter()
        .map(|path| ScanRequest {
            path,
            update,
            is_dir,
        })
        .collect())
}

fn base(inner: Arc<dyn ScanTarget>, kind: &'static str, url: &str) -> PyTarget {
    PyTarget {
        inner,
        kind,
        shown: pps_core::secret::redact_url(url),
    }
}

/// A Plex Media Server.
///
/// ``token`` is the server owner's ``X-Plex-Token`` (a shared user's token cannot start
/// scans). Scans are ``GET /library/sections/{key}/refresh?path=<folder>`` for every
/// section holding the folder, at least ``pacing`` seconds apart; a file path scans
/// its folder, and a section's root is never scanned because of a change below it.
#[pyclass(module = "pps", name = "Plex", frozen, extends = PyTarget)]
#[derive(Debug)]
pub struct PyPlex;

#[pymethods]
impl PyPlex {
    #[new]
    #[pyo3(signature = (url, token, *, pacing = 1.0, timeout = 30.0))]
    fn new(
        py: Python<'_>,
        url: String,
        token: String,
        pacing: f64,
        timeout: f64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let mut c = PlexConfig::new(url.clone(), token);
        c.pacing = seconds(py, Some(pacing))?.unwrap_or_default();
        c.timeout = seconds(py, Some(timeout))?.unwrap_or_default();
        let t = crate::runtime::enter(py, || PlexTarget::new(c))
            .map_err(|e| crate::errors::to_pyerr(py, e))?;
        Ok(PyClassInitializer::from(base(Arc::new(t), "Plex", &url)).add_subclass(PyPlex))
    }
}

fn emby_config(
    py: Python<'_>,
    url: &str,
    api_key: String,
    timeout: f64,
    max_batch: usize,
) -> PyResult<EmbyConfig> {
    let mut c = EmbyConfig::new(url.to_owned(), api_key);
    c.timeout = seconds(py, Some(timeout))?.unwrap_or_default();
    c.max_batch = max_batch;
    Ok(c)
}

/// An Emby server.
///
/// ``api_key`` is an API key made by an administrator. Scans are
/// ``POST /Library/Media/Updated`` with up to ``max_batch`` paths, files or folders,
/// each with its update type.
#[pyclass(module = "pps", name = "Emby", frozen, extends = PyTarget)]
#[derive(Debug)]
pub struct PyEmby;

#[pymethods]
impl PyEmby {
    #[new]
    #[pyo3(signature = (url, api_key, *, timeout = 30.0, max_batch = 100))]
    fn new(
        py: Python<'_>,
        url: String,
        api_key: String,
        timeout: f64,
        max_batch: usize,
    ) -> PyResult<PyClassInitializer<Self>> {
        let c = emby_config(py, &url, api_key, timeout, max_batch)?;
        let t = crate::runtime::enter(py, || EmbyTarget::new(c))
            .map_err(|e| crate::errors::to_pyerr(py, e))?;
        Ok(PyClassInitializer::from(base(Arc::new(t), "Emby", &url)).add_subclass(PyEmby))
    }
}

/// A Jellyfin server.
///
/// The same requests as ``Emby``, authenticated with
/// ``Authorization: MediaBrowser Token="..."``. Jellyfin waits about a minute
/// (``LibraryMonitorDelay``) before it acts, and refreshes the nearest item it knows.
#[pyclass(module = "pps", name = "Jellyfin", frozen, extends = PyTarget)]
#[derive(Debug)]
pub struct PyJellyfin;

#[pymethods]
impl PyJellyfin {
    #[new]
    #[pyo3(signature = (url, api_key, *, timeout = 30.0, max_batch = 100))]
    fn new(
        py: Python<'_>,
        url: String,
        api_key: String,
        timeout: f64,
        max_batch: usize,
    ) -> PyResult<PyClassInitializer<Self>> {
        let c = emby_config(py, &url, api_key, timeout, max_batch)?;
        let t = crate::runtime::enter(py, || JellyfinTarget::new(c))
            .map_err(|e| crate::errors::to_pyerr(py, e))?;
        Ok(PyClassInitializer::from(base(Arc::new(t), "Jellyfin", &url)).add_subclass(PyJellyfin))
    }
}
