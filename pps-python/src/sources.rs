//! Directory sources: `pps.LocalSource` and `pps.CloudDrive`.

use crate::errors::{config, to_pyerr};
use crate::runtime::{self, future, wait_pps};
use crate::scanner::seconds;
use crate::types::PyEntry;
use pps_clouddrive::{Auth, CloudDrive, CloudDriveConfig};
use pps_core::local::LocalSource;
use pps_core::{DirectorySource, Entry, ListOptions, Result, Secret};
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
