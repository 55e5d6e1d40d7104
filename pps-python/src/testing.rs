//! `pps._testing` (feature `testing`): a mock cd2 server and an error factory, for the
//! Python tests. Not part of the public API.

use crate::errors::{error_object, kind_from_str, to_pyerr};
use crate::runtime::wait;
use pps_clouddrive::mock::{Method, MockServer, MockTree};
use pps_core::{Error, ErrorKind};
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// A mock CloudDrive2 server over real gRPC on 127.0.0.1, serving ``tree`` from
/// memory: ``{"/115/TV/a.mkv": 42, "/115/Empty": None}`` (a size makes a file, ``None``
/// a folder). With ``api_token`` it refuses calls without that token.
#[pyclass(module = "pps._testing", name = "MockCloudDrive", frozen)]
#[derive(Debug)]
pub struct PyMockCloudDrive {
    server: Mutex<Option<MockServer>>,
    url: String,
}

fn method(py: Python<'_>, name: &str) -> PyResult<Method> {
    Ok(match name {
        "GetSystemInfo" => Method::GetSystemInfo,
        "GetToken" => Method::GetToken,
        "GetSubFiles" => Method::GetSubFiles,
        "FindFileByPath" => Method::FindFileByPath,
        "PushMessage" => Method::PushMessage,
        _ => return Err(crate::errors::config(py, "method", "unknown cd2 method")),
    })
}

impl PyMockCloudDrive {
    fn lock(&self) -> MutexGuard<'_, Option<MockServer>> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&MockServer) -> T) -> PyResult<T> {
        match self.lock().as_ref() {
            Some(s) => Ok(f(s)),
            None => Err(crate::errors::internal(py, "the mock server was stopped")),
        }
    }
}

#[pymethods]
impl PyMockCloudDrive {
    #[new]
    #[pyo3(signature = (tree = None, *, api_token = None, page_size = 500))]
    fn new(
        py: Python<'_>,
        tree: Option<BTreeMap<String, Option<u64>>>,
        api_token: Option<String>,
        page_size: usize,
    ) -> PyResult<Self> {
        let mut t = MockTree::new();
        for (path, size) in tree.unwrap_or_default() {
            match size {
                Some(n) => t.write_file(&path, n),
                None => t.create_dir(&path),
            }
        }
        let mut builder = MockServer::builder().page_size(page_size);
        if let Some(token) = api_token {
            builder = builder.api_token(token);
        }
        let server = wait(py, async move { builder.start(t).await })?
            .map_err(|e| to_pyerr(py, Error::from(e)))?;
        let url = server.url();
        Ok(PyMockCloudDrive {
            server: Mutex::new(Some(server)),
            url,
        })
    }

    /// ``http://127.0.0.1:PORT``.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Adds or replaces a file (parents are created).
    fn write_file(&self, py: Python<'_>, path: &str, size: u64) -> PyResult<()> {
        self.with(py, |s| s.write_file(path, size))
    }

    /// Adds a folder (parents are created).
    fn create_dir(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        self.with(py, |s| s.create_dir(path))
    }

    /// Removes a path; ``False`` when it did not exist.
    fn remove(&self, py: Python<'_>, path: &str) -> PyResult<bool> {
        self.with(py, |s| s.remove(path))
    }

    /// Calls received by a method (``"GetSubFiles"``, ``"FindFileByPath"``, ...).
    fn calls(&self, py: Python<'_>, name: &str) -> PyResult<u64> {
        let m = method(py, name)?;
        self.with(py, |s| s.calls(m))
    }

    /// Answers the next ``n`` listings or lookups as throttled.
    fn throttle_next(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.with(py, |s| s.faults(|f| f.throttle_next = n))
    }

    /// Answers the next ``n`` listings or lookups ``UNAVAILABLE``.
    fn unavailable_next(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.with(py, |s| s.faults(|f| f.unavailable_next = n))
    }

    /// Stops serving (later calls to it fail as unreachable).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let server = self.lock().take();
        if let Some(s) = server {
            wait(py, async move { s.shutdown().await })?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("MockCloudDrive(url={:?})", self.url)
    }
}

/// The exception pps raises for an error of ``kind`` (``"not found"``, ``"NotFound"``,
/// ...), built through the same conversion as every real error; returned, not raised.
#[pyfunction]
#[pyo3(signature = (kind, message, *, temporary = None, path = None))]
fn error(
    py: Python<'_>,
    kind: &str,
    message: &str,
    temporary: Option<bool>,
    path: Option<String>,
) -> PyResult<Py<PyAny>> {
    let kind: ErrorKind = kind_from_str(kind)
        .ok_or_else(|| crate::errors::config(py, "kind", "unknown error kind"))?;
    let mut e = Error::new(kind, message);
    e = match temporary {
        Some(true) => e.temporary(),
        Some(false) => e.permanent(),
        None => e,
    };
    if let Some(p) = path {
        e = e.with("path", p);
    }
    Ok(error_object(py, &e)?.unbind())
}

/// Builds the `pps._testing` module and registers it in `sys.modules`.
pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, "_testing")?;
    m.setattr(
        "__doc__",
        "Test helpers (built with the `testing` feature only).",
    )?;
    m.add_class::<PyMockCloudDrive>()?;
    m.add_function(wrap_pyfunction!(error, &m)?)?;
    // Importable as `pps._testing` through sys.modules only; not an attribute of
    // `pps._pps`, whose names stay those of the public build.
    let _ = parent;
    py.import("sys")?
        .getattr("modules")?
        .set_item("pps._testing", &m)?;
    Ok(())
}
