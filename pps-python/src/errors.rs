//! One exception hierarchy rooted at `pps.PpsError`, one class per error kind.
//!
//! The classes are made at import with `type(name, bases, ns)` rather than pyo3's
//! `create_exception!`, because the ones that match a built-in also derive from it
//! (`NotFoundError` is a `FileNotFoundError`, `PermissionDeniedError` a
//! `PermissionError`), and `create_exception!` takes one base.
//!
//! Every raised instance carries `kind` (the pps kind in words), `temporary` (worth
//! retrying) and `context` (operation, path, key, line, ...). The message is the pps
//! error's `Display`, which by pps's rule never holds a secret.

use pps_core::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception classes, in the order they are made (a base before its subclasses).
struct Spec {
    name: &'static str,
    /// Index of the pps base in [`SPECS`], or `None` for `Exception`.
    base: Option<usize>,
    /// A built-in to derive from as well.
    builtin: Option<&'static str>,
    /// errno given to instances of an `OSError` subclass.
    errno: Option<i32>,
    doc: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "PpsError",
        base: None,
        builtin: None,
        errno: None,
        doc: "The base of every pps exception.\n\n\
              Attributes: ``kind`` (the failure in words, e.g. ``\"not found\"``), \
              ``temporary`` (``True`` when retrying later may succeed) and ``context`` \
              (a dict such as ``{\"operation\": \"list\", \"path\": \"/115/TV\"}``). \
              Messages never contain a token, key or password.",
    },
    Spec {
        name: "ConfigError",
        base: Some(0),
        builtin: Some("ValueError"),
        errno: None,
        doc: "A configuration value is wrong. ``context`` names the ``key`` and, for \
              ``pps.toml``, the ``file`` and ``line``.",
    },
    Spec {
        name: "AuthError",
        base: Some(0),
        builtin: None,
        errno: None,
        doc: "Credentials are missing, wrong or expired (cd2 token or password, Plex \
              token, Emby/Jellyfin API key).",
    },
    Spec {
        name: "PermissionDeniedError",
        base: Some(0),
        builtin: Some("PermissionError"),
        errno: Some(13),
        doc: "The path exists but may not be read, or the credentials lack a permission \
              (HTTP 403). Also a ``PermissionError``.",
    },
    Spec {
        name: "NotFoundError",
        base: Some(0),
        builtin: Some("FileNotFoundError"),
        errno: Some(2),
        doc: "The path, library or section does not exist. Also a ``FileNotFoundError``.",
    },
    Spec {
        name: "ThrottledError",
        base: Some(0),
        builtin: None,
        errno: None,
        doc: "The remote asked pps to slow down (HTTP 429, 115's throttling through cd2). \
              Temporary.",
    },
    Spec {
        name: "UnavailableError",
        base: Some(0),
        builtin: Some("ConnectionError"),
        errno: None,
        doc: "The remote was unreachable, timed out, or cut a reply short. Usually \
              temporary. Also a ``ConnectionError``.",
    },
    Spec {
        name: "OutageError",
        base: Some(0),
        builtin: None,
        errno: None,
        doc: "A watched root listed empty or missing while pps knows it held content (a \
              mount or cd2 is down). Nothing was committed or scanned.",
    },
    Spec {
        name: "TargetError",
        base: Some(0),
        builtin: None,
        errno: None,
        doc: "A media server accepted the connection but refused the request (no library \
              holds the path, a bad request). Permanent: pps parks such scans.",
    },
    Spec {
        name: "StoreError",
        base: Some(0),
        builtin: None,
        errno: None,
        doc: "The SQLite store is unreadable, not a pps store, damaged, or written by a \
              newer pps.",
    },
    Spec {
        name: "UnsupportedError",
        base: Some(0),
        builtin: None,
        errno: None,
        doc: "The operation is not offered by this server or source.",
    },
];

/// The class index for a kind.
fn index_of(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::ConfigInvalid => 1,
        ErrorKind::Unauthenticated => 2,
        ErrorKind::PermissionDenied => 3,
        ErrorKind::NotFound => 4,
        ErrorKind::Throttled => 5,
        ErrorKind::Unavailable => 6,
        ErrorKind::Outage => 7,
        ErrorKind::Rejected => 8,
        ErrorKind::Corrupt => 9,
        ErrorKind::Unsupported => 10,
        _ => 0,
    }
}

static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn make_classes(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = builtins.getattr("type")?;
    let empty = py
        .import("types")?
        .getattr("MappingProxyType")?
        .call1((PyDict::new(py),))?;
    let mut out: Vec<Py<PyType>> = Vec::with_capacity(SPECS.len());
    for spec in SPECS {
        let mut bases: Vec<Bound<'_, PyAny>> = Vec::new();
        match spec.base {
            Some(i) => bases.push(out[i].bind(py).clone().into_any()),
            None => bases.push(builtins.getattr("Exception")?),
        }
        if let Some(b) = spec.builtin {
            bases.push(builtins.getattr(b)?);
        }
        let ns = PyDict::new(py);
        ns.set_item("__doc__", spec.doc)?;
        ns.set_item("__module__", "pps")?;
        if spec.base.is_none() {
            // Defaults for instances raised by user code; pps sets all three.
            ns.set_item("kind", "unexpected")?;
            ns.set_item("temporary", false)?;
            ns.set_item("context", &empty)?;
        }
        let cls = type_.call1((spec.name, PyTuple::new(py, bases)?, ns))?;
        out.push(cls.cast_into::<PyType>()?.unbind());
    }
    Ok(out)
}

fn classes(py: Python<'_>) -> PyResult<&'static Vec<Py<PyType>>> {
    CLASSES.get_or_try_init(py, || make_classes(py))
}

/// Adds every exception class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (spec, cls) in SPECS.iter().zip(classes(py)?) {
        m.add(spec.name, cls.bind(py))?;
    }
    Ok(())
}

/// The exception instance for a pps error (not raised): used for the `errors` lists of
/// reports and for [`to_pyerr`].
pub fn error_object<'py>(py: Python<'py>, err: &Error) -> PyResult<Bound<'py, PyAny>> {
    let i = index_of(err.kind());
    let cls = classes(py)?[i].bind(py);
    let obj = cls.call1((err.to_string(),))?;
    obj.setattr("kind", err.kind().as_str())?;
    obj.setattr("temporary", err.is_temporary())?;
    let context = PyDict::new(py);
    for (k, v) in err.context() {
        context.set_item(*k, v)?;
    }
    obj.setattr("context", context)?;
    if let Some(errno) = SPECS[i].errno {
        obj.setattr("errno", errno)?;
    }
    Ok(obj)
}

/// The Python exception for a pps error.
pub fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    match error_object(py, &err) {
        Ok(obj) => PyErr::from_value(obj),
        Err(e) => e,
    }
}

/// A `PpsError` of kind "unexpected" for a failure inside the binding.
pub fn internal(py: Python<'_>, message: &str) -> PyErr {
    to_pyerr(py, Error::new(ErrorKind::Unexpected, message))
}

/// A `ConfigError` naming an argument.
pub fn config(py: Python<'_>, key: &'static str, message: impl Into<String>) -> PyErr {
    to_pyerr(
        py,
        Error::new(ErrorKind::ConfigInvalid, message)
            .permanent()
            .with("key", key),
    )
}

/// The kind named by its words (`"not found"`) or its variant name (`"NotFound"`).
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub fn kind_from_str(name: &str) -> Option<ErrorKind> {
    const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::Unauthenticated,
        ErrorKind::Throttled,
        ErrorKind::Unavailable,
        ErrorKind::ConfigInvalid,
        ErrorKind::Unsupported,
        ErrorKind::Outage,
        ErrorKind::Corrupt,
        ErrorKind::Rejected,
        ErrorKind::Unexpected,
    ];
    let wanted = name.to_ascii_lowercase().replace(['_', ' '], "");
    ALL.into_iter()
        .find(|k| k.as_str().replace(' ', "") == wanted)
}
