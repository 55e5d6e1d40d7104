//! The values pps hands back: entries, changes, libraries, reports. All frozen.

use crate::errors::error_object;
use pps::once::OnceReport;
use pps_core::engine::DeliveryReport;
use pps_core::{Change, Entry, Library, PassReport, TargetInfo};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TIMEDELTA: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An aware UTC `datetime` for nanoseconds since the Unix epoch (microsecond precision,
/// as `datetime` holds; the exact value stays in `mtime_ns`).
fn datetime_from_nanos(py: Python<'_>, nanos: i64) -> PyResult<Bound<'_, PyAny>> {
    let epoch = EPOCH.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let dt = py.import("datetime")?;
        let utc = dt.getattr("timezone")?.getattr("utc")?;
        Ok(dt
            .getattr("datetime")?
            .call1((1970, 1, 1, 0, 0, 0, 0, utc))?
            .unbind())
    })?;
    let delta = TIMEDELTA.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("datetime")?.getattr("timedelta")?.unbind())
    })?;
    let micros = nanos.div_euclid(1000);
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("microseconds", micros)?;
    let d = delta.bind(py).call((), Some(&kwargs))?;
    epoch.bind(py).add(d)
}

pub(crate) fn repr_str(s: &str) -> String {
    // Python's own repr, so quotes and escapes read as Python.
    Python::attach(|py| {
        pyo3::types::PyString::new(py, s)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| format!("{s:?}"))
    })
}

/// One child of a listed folder (or the result of ``stat``).
///
/// ``mtime`` is an aware UTC ``datetime`` (microsecond precision) or ``None`` when the
/// source does not know it; ``mtime_ns`` keeps the exact nanoseconds.
#[pyclass(module = "pps", name = "Entry", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PyEntry {
    /// The name: one path component (``/`` for the root).
    #[pyo3(get)]
    name: String,
    /// ``True`` for a folder.
    #[pyo3(get)]
    is_dir: bool,
    /// Size in bytes as the source reports it (0 for folders on most sources).
    #[pyo3(get)]
    size: u64,
    /// Modification time in nanoseconds since the Unix epoch, or ``None``.
    #[pyo3(get)]
    mtime_ns: Option<i64>,
}

impl From<Entry> for PyEntry {
    fn from(e: Entry) -> Self {
        PyEntry {
            is_dir: e.is_dir(),
            name: e.name,
            size: e.size,
            mtime_ns: e.mtime.map(|m| m.as_nanos()),
        }
    }
}

#[pymethods]
impl PyEntry {
    /// Modification time as an aware UTC ``datetime``, or ``None`` when unknown.
    #[getter]
    fn mtime<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.mtime_ns
            .map(|n| datetime_from_nanos(py, n))
            .transpose()
    }

    /// ``"dir"`` or ``"file"``.
    #[getter]
    fn kind(&self) -> &'static str {
        if self.is_dir { "dir" } else { "file" }
    }

    fn __repr__(&self) -> String {
        format!(
            "Entry(name={}, is_dir={}, size={}, mtime_ns={})",
            repr_str(&self.name),
            py_bool(self.is_dir),
            self.size,
            self.mtime_ns.map_or("None".to_owned(), |n| n.to_string())
        )
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// One change a pass found: a file created, modified or deleted, or a folder created
/// or deleted.
#[pyclass(module = "pps", name = "Change", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PyChange {
    /// Absolute source path of the changed entry.
    #[pyo3(get)]
    path: String,
    /// ``"created"``, ``"modified"`` or ``"deleted"``.
    #[pyo3(get)]
    update: &'static str,
    /// Whether the entry is (or was, for a deletion) a folder.
    #[pyo3(get)]
    is_dir: bool,
}

impl From<&Change> for PyChange {
    fn from(c: &Change) -> Self {
        PyChange {
            path: c.path.clone(),
            update: c.update.as_str(),
            is_dir: c.is_dir,
        }
    }
}

#[pymethods]
impl PyChange {
    /// ``"dir"`` or ``"file"``.
    #[getter]
    fn kind(&self) -> &'static str {
        if self.is_dir { "dir" } else { "file" }
    }

    fn __repr__(&self) -> String {
        format!(
            "Change(path={}, update='{}', kind='{}')",
            repr_str(&self.path),
            self.update,
            self.kind()
        )
    }
}

/// A library of a media server: a Plex section, an Emby or Jellyfin virtual folder.
#[pyclass(module = "pps", name = "Library", frozen, eq)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyLibrary {
    /// The server's id for it (Plex section key, Emby ``ItemId``).
    #[pyo3(get)]
    id: String,
    /// Its display name.
    #[pyo3(get)]
    name: String,
    /// The folders it covers, as the server sees them.
    #[pyo3(get)]
    locations: Vec<String>,
}

impl From<Library> for PyLibrary {
    fn from(l: Library) -> Self {
        PyLibrary {
            id: l.id,
            name: l.name,
            locations: l.locations,
        }
    }
}

#[pymethods]
impl PyLibrary {
    fn __repr__(&self) -> String {
        let locs: Vec<String> = self.locations.iter().map(|l| repr_str(l)).collect();
        format!(
            "Library(id={}, name={}, locations=[{}])",
            repr_str(&self.id),
            repr_str(&self.name),
            locs.join(", ")
        )
    }
}

/// What ``check()`` found: who the server is and its libraries.
#[pyclass(module = "pps", name = "TargetInfo", frozen)]
#[derive(Debug, Clone)]
pub struct PyTargetInfo {
    /// Server product and name, e.g. ``Plex Media Server "nas"``.
    #[pyo3(get)]
    server: String,
    /// Server version, when known.
    #[pyo3(get)]
    version: Option<String>,
    /// Its libraries with their locations.
    #[pyo3(get)]
    libraries: Vec<PyLibrary>,
}

impl From<TargetInfo> for PyTargetInfo {
    fn from(t: TargetInfo) -> Self {
        PyTargetInfo {
            server: t.server,
            version: t.version,
            libraries: t.libraries.into_iter().map(PyLibrary::from).collect(),
        }
    }
}

#[pymethods]
impl PyTargetInfo {
    fn __repr__(&self) -> String {
        format!(
            "TargetInfo(server={}, version={}, libraries={})",
            repr_str(&self.server),
            self.version.as_deref().map_or("None".to_owned(), repr_str),
            self.libraries.len()
        )
    }
}

/// What one pass over one watch did.
///
/// The first pass of a watch records a baseline (``baseline`` is ``True``) and reports
/// no change. Folders that could not be listed keep their old state and appear in
/// ``errors`` (exception instances, not raised).
#[pyclass(module = "pps", name = "PassReport", frozen)]
#[derive(Debug)]
pub struct PyPassReport {
    /// ``source:root`` of the watch.
    #[pyo3(get)]
    watch: String,
    /// ``True`` when this pass recorded the first baseline (and scanned nothing).
    #[pyo3(get)]
    baseline: bool,
    /// Listing calls made.
    #[pyo3(get)]
    folders_listed: u64,
    /// Folders whose listing differed from the stored one.
    #[pyo3(get)]
    folders_changed: u64,
    /// Every change found, in the order found.
    #[pyo3(get)]
    changes: Vec<PyChange>,
    /// Scans added to the outbox (one per change per target).
    #[pyo3(get)]
    scans_queued: u64,
    /// Wall time of the pass, in seconds.
    #[pyo3(get)]
    elapsed: f64,
    errors: Vec<Py<PyAny>>,
}

#[pymethods]
impl PyPassReport {
    /// Folders that could not be listed, as ``PpsError`` instances (not raised).
    #[getter]
    fn errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.errors.iter().map(|e| e.clone_ref(py)))
    }

    fn __repr__(&self) -> String {
        format!(
            "PassReport(watch={}, baseline={}, folders_listed={}, changes={}, scans_queued={}, errors={})",
            repr_str(&self.watch),
            py_bool(self.baseline),
            self.folders_listed,
            self.changes.len(),
            self.scans_queued,
            self.errors.len()
        )
    }
}

/// Converts an engine pass report.
pub fn pass_report(py: Python<'_>, r: PassReport) -> PyResult<PyPassReport> {
    let errors = r
        .errors
        .iter()
        .map(|e| error_object(py, e).map(Bound::unbind))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyPassReport {
        baseline: r.baseline,
        folders_listed: r.folders_listed,
        folders_changed: r.folders_changed,
        changes: r.changes.iter().map(PyChange::from).collect(),
        scans_queued: r.scans_queued,
        elapsed: r.elapsed.as_secs_f64(),
        errors,
        watch: r.watch,
    })
}

/// What one delivery round did for one target.
#[pyclass(module = "pps", name = "DeliveryReport", frozen)]
#[derive(Debug, Clone)]
pub struct PyDeliveryReport {
    /// The target's name in the config.
    #[pyo3(get)]
    target: String,
    /// Requests the target accepted.
    #[pyo3(get)]
    sent: u64,
    /// Queued scans settled by those requests.
    #[pyo3(get)]
    settled: u64,
    /// Queued scans parked (never retried; ``status()`` shows the reasons).
    #[pyo3(get)]
    parked: u64,
    /// The last temporary failure, when one stopped the round (the scans stay queued).
    #[pyo3(get)]
    temporary_failure: Option<String>,
    /// ``True`` when queued scans are still waiting after the round.
    #[pyo3(get)]
    remaining: bool,
    /// Checks started that the server indexed what it accepted (media files and new
    /// folders); ``Scanner.confirm()`` and ``serve()`` carry them out.
    #[pyo3(get)]
    confirming: u64,
    /// The scans the target accepted, as sent: paths as the server sees them (after
    /// ``path_mapping``), folders for folder-only servers.
    #[pyo3(get)]
    scans: Vec<PyChange>,
}

impl PyDeliveryReport {
    fn new(target: String, d: DeliveryReport) -> Self {
        PyDeliveryReport {
            target,
            scans: d
                .requests
                .iter()
                .map(|r| PyChange {
                    path: r.path.clone(),
                    update: r.update.as_str(),
                    is_dir: r.is_dir,
                })
                .collect(),
            sent: d.sent,
            settled: d.settled,
            parked: d.parked,
            temporary_failure: d.temporary_failure,
            remaining: d.remaining,
            confirming: d.confirming,
        }
    }
}

#[pymethods]
impl PyDeliveryReport {
    fn __repr__(&self) -> String {
        format!(
            "DeliveryReport(target={}, scans=<{} Change>, sent={}, settled={}, parked={}, remaining={})",
            repr_str(&self.target),
            self.scans.len(),
            self.sent,
            self.settled,
            self.parked,
            py_bool(self.remaining)
        )
    }
}

/// What ``Scanner.run_once()`` did: a pass over every watch, then delivery to every
/// target.
///
/// ``changes`` gathers every pass's changes; ``deliveries`` has one entry per target
/// (the scans it was sent); ``errors`` holds every failure as a ``PpsError`` instance
/// (not raised): folders that could not be listed, and whole passes that failed (an
/// outage, a missing root), each with ``context["watch"]``.
#[pyclass(module = "pps", name = "OnceReport", frozen)]
#[derive(Debug)]
pub struct PyOnceReport {
    passes: Vec<Py<PyPassReport>>,
    /// One per target: what delivery did.
    #[pyo3(get)]
    deliveries: Vec<PyDeliveryReport>,
    /// Every change found by every pass.
    #[pyo3(get)]
    changes: Vec<PyChange>,
    errors: Vec<Py<PyAny>>,
    /// ``True`` when every folder was listed and every scan accepted.
    #[pyo3(get)]
    ok: bool,
}

#[pymethods]
impl PyOnceReport {
    /// The pass of each watch that ran (a watch whose pass failed is in ``errors``).
    #[getter]
    fn passes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.passes.iter().map(|p| p.clone_ref(py)))
    }

    /// Every failure, as ``PpsError`` instances (not raised).
    #[getter]
    fn errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.errors.iter().map(|e| e.clone_ref(py)))
    }

    fn __repr__(&self) -> String {
        // The lists themselves, so the repr never suggests `changes` is a count.
        let changes: Vec<String> = self.changes.iter().map(PyChange::__repr__).collect();
        let deliveries: Vec<String> = self
            .deliveries
            .iter()
            .map(PyDeliveryReport::__repr__)
            .collect();
        format!(
            "OnceReport(changes=[{}], deliveries=[{}], passes=<{} PassReport>, errors=<{} PpsError>, ok={})",
            changes.join(", "),
            deliveries.join(", "),
            self.passes.len(),
            self.errors.len(),
            py_bool(self.ok)
        )
    }
}

/// Converts what `run_once` did.
pub fn once_report(py: Python<'_>, r: OnceReport) -> PyResult<PyOnceReport> {
    let ok = r.ok();
    let mut passes = Vec::new();
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for (label, pass) in r.passes {
        match pass {
            Ok(p) => {
                let p = pass_report(py, p)?;
                changes.extend(p.changes.iter().cloned());
                errors.extend(p.errors.iter().map(|e| e.clone_ref(py)));
                passes.push(Py::new(py, p)?);
            }
            Err(e) => {
                let e = e.with_default("watch", label);
                errors.push(error_object(py, &e)?.unbind());
            }
        }
    }
    Ok(PyOnceReport {
        passes,
        deliveries: r
            .deliveries
            .into_iter()
            .map(|(t, d)| PyDeliveryReport::new(t, d))
            .collect(),
        changes,
        errors,
        ok,
    })
}

/// Converts a JSON value to plain Python objects (dict, list, str, int, float, bool,
/// None) through the `json` module, which handles every case exactly.
pub fn json_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    Ok(py
        .import("json")?
        .call_method1("loads", (value.to_string(),))?
        .unbind())
}
