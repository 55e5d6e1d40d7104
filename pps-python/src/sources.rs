//! Directory sources: `pps.LocalSource`, `pps.CloudDrive`, `pps.OpenList` and `pps.Rclone`.

use crate::errors::{config, to_pyerr};
use crate::runtime::{self, future, wait_pps};
use crate::scanner::seconds;
use crate::types::PyEntry;
use pps_clouddrive::{Auth, CloudDrive, CloudDriveConfig};
use pps_core::local::LocalSource;
use pps_core::{DirectorySource, Entry, ListOptions, Result, Secret};
use pps_http_sources::{OpenList, OpenListAuth, OpenListConfig, Pacing, Rclone, RcloneConfig};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

fn entries(_py: Python<'_>, list: Vec<Entry>) -> PyResult<Vec<PyEntry>> {
    Ok(list.into_iter().map(PyEntry::from).collect())
}

fn entry(_py: Python<'_>, e: Entry) -> PyResult<PyEntry> {
    Ok(PyEntry::from(e))
}

async fn list(src: Arc<dyn DirectorySource>, path: String, refresh: bool) -> Result<Vec<Entry>> {
    let options = if refresh {
        ListOptions::force_refresh()
    } else {
        ListOptions::default()
    };
    src.list(&path, options).await
}

async fn stat(src: Arc<dyn DirectorySource>, path: String) -> Result<Entry> {
    src.stat(&path).await
}

/// A local path as a pps source path (UTF-8, as every pps path is).
fn local_path(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    path.into_os_string()
        .into_string()
        .map_err(|_| config(py, "path", "the path is not valid UTF-8"))
}

/// Folders of the local filesystem: a mounted cloud drive, a NAS share, any folder.
///
/// Symbolic links are reported as files and never followed; names that are not UTF-8
/// are skipped. A missing path raises ``NotFoundError`` (a ``FileNotFoundError``).
#[pyclass(module = "pps", name = "LocalSource", frozen)]
#[derive(Debug)]
pub struct PyLocalSource {
    inner: Arc<dyn DirectorySource>,
}

#[pymethods]
impl PyLocalSource {
    #[new]
    fn new() -> Self {
        PyLocalSource {
            inner: Arc::new(LocalSource::new()),
        }
    }

    /// The direct children of the folder at ``path``, as ``Entry`` objects, in no
    /// particular order.
    fn list(&self, py: Python<'_>, path: PathBuf) -> PyResult<Vec<PyEntry>> {
        let path = local_path(py, path)?;
        let v = wait_pps(py, list(self.inner.clone(), path, false))?;
        entries(py, v)
    }

    /// ``list()`` as a coroutine.
    fn list_async<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
        let path = local_path(py, path)?;
        future(py, list(self.inner.clone(), path, false), entries)
    }

    /// The ``Entry`` of one path (a symbolic link is not followed).
    fn stat(&self, py: Python<'_>, path: PathBuf) -> PyResult<PyEntry> {
        let path = local_path(py, path)?;
        let e = wait_pps(py, stat(self.inner.clone(), path))?;
        entry(py, e)
    }

    /// ``stat()`` as a coroutine.
    fn stat_async<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
        let path = local_path(py, path)?;
        future(py, stat(self.inner.clone(), path), entry)
    }

    fn __repr__(&self) -> &'static str {
        "LocalSource()"
    }
}

/// A CloudDrive2 ("cd2") server, over its gRPC API.
///
/// Give an ``api_token`` (made in cd2's web UI), or a ``username`` and ``password``,
/// or neither for a server that asks for none. Every listing and lookup is paced to
/// ``max_queries_per_second`` (fractional; 115 tolerates about one a second) with up to
/// ``burst`` calls at once after a quiet spell; throttled and transient failures are
/// retried ``retries`` times with backoff; one call (a whole listing) may take
/// ``timeout`` seconds. Each left out (``None``) takes the default of a ``pps.toml``
/// source (0.9 per second, a burst of 2, 4 retries, 60 s). Nothing is contacted until
/// the first call.
///
/// ``repr`` and every error show the URL without credentials, never the token or
/// password.
#[pyclass(module = "pps", name = "CloudDrive", frozen)]
#[derive(Debug)]
pub struct PyCloudDrive {
    inner: Arc<dyn DirectorySource>,
    shown: String,
    auth: &'static str,
}

#[pymethods]
impl PyCloudDrive {
    #[new]
    #[pyo3(signature = (url, *, api_token = None, username = None, password = None, max_queries_per_second = None, burst = None, retries = None, timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: String,
        api_token: Option<String>,
        username: Option<String>,
        password: Option<String>,
        max_queries_per_second: Option<f64>,
        burst: Option<u32>,
        retries: Option<u32>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let (auth, kind) = match (api_token, username, password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(config(
                    py,
                    "api_token",
                    "give either api_token or username and password, not both",
                ));
            }
            (Some(t), None, None) => (Auth::ApiToken(Secret::new(t)), "api_token"),
            (None, Some(u), Some(p)) => (
                Auth::Password {
                    username: u,
                    password: Secret::new(p),
                },
                "password",
            ),
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(config(py, "password", "give both username and password"));
            }
            (None, None, None) => (Auth::None, "none"),
        };
        // The defaults are the adapter's own, as a pps.toml source gets them.
        let mut cfg = CloudDriveConfig::new(url).with_auth(auth);
        if let Some(q) = max_queries_per_second {
            cfg.max_queries_per_second = q;
        }
        if let Some(b) = burst {
            cfg.burst = b;
        }
        if let Some(r) = retries {
            cfg.retries = r;
        }
        if let Some(t) = seconds(py, timeout)? {
            cfg.timeout = t;
        }
        cfg.validate().map_err(|e| to_pyerr(py, e))?;
        let shown = cfg.display_url();
        let cd = runtime::enter(py, || CloudDrive::connect(cfg)).map_err(|e| to_pyerr(py, e))?;
        Ok(PyCloudDrive {
            inner: Arc::new(cd),
            shown,
            auth: kind,
        })
    }

    /// The direct children of the folder at ``path`` (a cd2 path such as
    /// ``/115/电影``), as ``Entry`` objects. ``refresh=True`` asks cd2 to bypass its
    /// cache (one more cloud call).
    #[pyo3(signature = (path, *, refresh = false))]
    fn list(&self, py: Python<'_>, path: String, refresh: bool) -> PyResult<Vec<PyEntry>> {
        let v = wait_pps(py, list(self.inner.clone(), path, refresh))?;
        entries(py, v)
    }

    /// ``list()`` as a coroutine.
    #[pyo3(signature = (path, *, refresh = false))]
    fn list_async<'py>(
        &self,
        py: Python<'py>,
        path: String,
        refresh: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        future(py, list(self.inner.clone(), path, refresh), entries)
    }

    /// The ``Entry`` of one path.
    fn stat(&self, py: Python<'_>, path: String) -> PyResult<PyEntry> {
        let e = wait_pps(py, stat(self.inner.clone(), path))?;
        entry(py, e)
    }

    /// ``stat()`` as a coroutine.
    fn stat_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        future(py, stat(self.inner.clone(), path), entry)
    }

    /// The server URL without credentials.
    #[getter]
    fn url(&self) -> &str {
        &self.shown
    }

    fn __repr__(&self) -> String {
        format!("CloudDrive(url={:?}, auth={:?})", self.shown, self.auth)
    }
}

/// The pacing keys a Python caller left out (`None`) keep the adapter's defaults, as a
/// `pps.toml` source gets them.
fn pace(
    py: Python<'_>,
    pacing: &mut Pacing,
    max_queries_per_second: Option<f64>,
    burst: Option<u32>,
    retries: Option<u32>,
    timeout: Option<f64>,
) -> PyResult<()> {
    if let Some(q) = max_queries_per_second {
        pacing.max_queries_per_second = q;
    }
    if let Some(b) = burst {
        pacing.burst = b;
    }
    if let Some(r) = retries {
        pacing.retries = r;
    }
    if let Some(t) = seconds(py, timeout)? {
        pacing.timeout = t;
    }
    Ok(())
}

/// An OpenList (or AList v3) server, over its JSON API (``POST /api/fs/list``).
///
/// Give a ``token`` (the admin's settings token or a JWT, sent as is), or a ``username``
/// and ``password`` (pps logs in and logs in again when the token is refused), or
/// neither for OpenList's guest user. ``folder_password`` opens password-protected
/// folders. ``refresh`` (on by default) lets ``list(path, refresh=True)`` bypass
/// OpenList's cache, which needs write permission; a user without it gets the cached
/// listing and a warning. Pacing, retries and ``timeout`` are as for ``CloudDrive``
/// (0.9 per second, a burst of 2, 4 retries, 60 s when left out). Nothing is contacted
/// until the first call.
///
/// ``repr`` and every error show the URL, never the token or a password.
#[pyclass(module = "pps", name = "OpenList", frozen)]
#[derive(Debug)]
pub struct PyOpenList {
    inner: Arc<dyn DirectorySource>,
    shown: String,
    auth: &'static str,
}

#[pymethods]
impl PyOpenList {
    #[new]
    #[pyo3(signature = (url, *, token = None, username = None, password = None, folder_password = None, refresh = true, max_queries_per_second = None, burst = None, retries = None, timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: String,
        token: Option<String>,
        username: Option<String>,
        password: Option<String>,
        folder_password: Option<String>,
        refresh: bool,
        max_queries_per_second: Option<f64>,
        burst: Option<u32>,
        retries: Option<u32>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let (auth, kind) = match (token, username, password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(config(
                    py,
                    "token",
                    "give either token or username and password, not both",
                ));
            }
            (Some(t), None, None) => (OpenListAuth::Token(Secret::new(t)), "token"),
            (None, Some(u), Some(p)) => (
                OpenListAuth::Password {
                    username: u,
                    password: Secret::new(p),
                },
                "password",
            ),
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(config(py, "password", "give both username and password"));
            }
            (None, None, None) => (OpenListAuth::None, "none"),
        };
        let mut cfg = OpenListConfig::new(url).with_auth(auth);
        cfg.folder_password = folder_password.map(Secret::new);
        cfg.refresh = refresh;
        pace(
            py,
            &mut cfg.pacing,
            max_queries_per_second,
            burst,
            retries,
            timeout,
        )?;
        cfg.validate().map_err(|e| to_pyerr(py, e))?;
        let shown = cfg.display_url();
        let source = runtime::enter(py, || OpenList::connect(cfg)).map_err(|e| to_pyerr(py, e))?;
        Ok(PyOpenList {
            inner: Arc::new(source),
            shown,
            auth: kind,
        })
    }

    /// The direct children of the folder at ``path`` (an OpenList path such as
    /// ``/115/电影``), as ``Entry`` objects. ``refresh=True`` asks OpenList to bypass
    /// its cache (a cloud call; needs write permission).
    #[pyo3(signature = (path, *, refresh = false))]
    fn list(&self, py: Python<'_>, path: String, refresh: bool) -> PyResult<Vec<PyEntry>> {
        let v = wait_pps(py, list(self.inner.clone(), path, refresh))?;
        entries(py, v)
    }

    /// ``list()`` as a coroutine.
    #[pyo3(signature = (path, *, refresh = false))]
    fn list_async<'py>(
        &self,
        py: Python<'py>,
        path: String,
        refresh: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        future(py, list(self.inner.clone(), path, refresh), entries)
    }

    /// The ``Entry`` of one path (``POST /api/fs/get``).
    fn stat(&self, py: Python<'_>, path: String) -> PyResult<PyEntry> {
        let e = wait_pps(py, stat(self.inner.clone(), path))?;
        entry(py, e)
    }

    /// ``stat()`` as a coroutine.
    fn stat_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        future(py, stat(self.inner.clone(), path), entry)
    }

    /// The server URL without credentials.
    #[getter]
    fn url(&self) -> &str {
        &self.shown
    }

    fn __repr__(&self) -> String {
        format!("OpenList(url={:?}, auth={:?})", self.shown, self.auth)
    }
}

/// An rclone remote-control server (``rclone rcd``, or a ``rclone mount --rc``),
/// listing ``remote`` (as rclone writes it: ``"115dav:"``, ``"remote:sub"``) with
/// ``operations/list``, straight from the remote and never from a mount's cache.
///
/// Give ``username`` and ``password`` (rclone's ``--rc-user`` and ``--rc-pass``, sent
/// as HTTP basic auth), or neither for a server run with ``--rc-no-auth``. With
/// ``vfs_refresh``, a folder that lists differently from the last time this object
/// listed it is also ``vfs/refresh``-ed, so a ``rclone mount --rc`` shows the change
/// sooner. Pacing, retries and ``timeout`` are as for ``CloudDrive``. Nothing is
/// contacted until the first call; the path ``/TV/x`` is ``TV/x`` in the remote.
///
/// ``repr`` and every error show the URL and remote, never the password.
#[pyclass(module = "pps", name = "Rclone", frozen)]
#[derive(Debug)]
pub struct PyRclone {
    inner: Arc<dyn DirectorySource>,
    shown: String,
    remote: String,
    auth: &'static str,
}

#[pymethods]
impl PyRclone {
    #[new]
    #[pyo3(signature = (url, remote, *, username = None, password = None, vfs_refresh = false, max_queries_per_second = None, burst = None, retries = None, timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: String,
        remote: String,
        username: Option<String>,
        password: Option<String>,
        vfs_refresh: bool,
        max_queries_per_second: Option<f64>,
        burst: Option<u32>,
        retries: Option<u32>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut cfg = RcloneConfig::new(url, remote.clone());
        let kind = match (username, password) {
            (Some(u), Some(p)) => {
                cfg = cfg.with_login(u, Secret::new(p));
                "basic"
            }
            (None, None) => "none",
            _ => return Err(config(py, "password", "give both username and password")),
        };
        cfg.vfs_refresh = vfs_refresh;
        pace(
            py,
            &mut cfg.pacing,
            max_queries_per_second,
            burst,
            retries,
            timeout,
        )?;
        cfg.validate().map_err(|e| to_pyerr(py, e))?;
        let shown = cfg.display_url();
        let source = runtime::enter(py, || Rclone::connect(cfg)).map_err(|e| to_pyerr(py, e))?;
        Ok(PyRclone {
            inner: Arc::new(source),
            shown,
            remote,
            auth: kind,
        })
    }

    /// The direct children of the folder at ``path`` (``/`` is the remote's root), as
    /// ``Entry`` objects. rclone lists the remote itself, so there is no cache to
    /// refresh.
    fn list(&self, py: Python<'_>, path: String) -> PyResult<Vec<PyEntry>> {
        let v = wait_pps(py, list(self.inner.clone(), path, false))?;
        entries(py, v)
    }

    /// ``list()`` as a coroutine.
    fn list_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        future(py, list(self.inner.clone(), path, false), entries)
    }

    /// The ``Entry`` of one path (its parent folder listed: one call).
    fn stat(&self, py: Python<'_>, path: String) -> PyResult<PyEntry> {
        let e = wait_pps(py, stat(self.inner.clone(), path))?;
        entry(py, e)
    }

    /// ``stat()`` as a coroutine.
    fn stat_async<'py>(&self, py: Python<'py>, path: String) -> PyResult<Bound<'py, PyAny>> {
        future(py, stat(self.inner.clone(), path), entry)
    }

    /// The server URL without credentials.
    #[getter]
    fn url(&self) -> &str {
        &self.shown
    }

    /// The rclone remote listed.
    #[getter]
    fn remote(&self) -> &str {
        &self.remote
    }

    fn __repr__(&self) -> String {
        format!(
            "Rclone(url={:?}, remote={:?}, auth={:?})",
            self.shown, self.remote, self.auth
        )
    }
}
