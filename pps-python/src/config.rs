//! `pps.Config`: a validated `pps.toml`.

use crate::errors::to_pyerr;
use pps::Config;
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A validated ``pps.toml``: sources, targets, watches and the store.
///
/// Build one with ``Config.load(path)`` or ``Config.from_toml(text)``. Every mistake
/// raises ``ConfigError`` whose ``context`` names the ``key`` and, when known, the
/// ``file`` and ``line``. Secrets (tokens, keys, passwords) may come from the
/// environment instead of the file: ``PPS_SOURCES_<NAME>_<KEY>`` and
/// ``PPS_TARGETS_<NAME>_<KEY>``, e.g. ``PPS_TARGETS_PLEX_TOKEN``. ``repr`` never shows
/// a secret.
#[pyclass(module = "pps", name = "Config", frozen)]
#[derive(Debug)]
pub struct PyConfig {
    pub(crate) inner: Config,
}

#[pymethods]
impl PyConfig {
    /// Reads and validates a config file, with overrides from the process environment.
    ///
    /// Relative paths in the file (the store) are relative to the file's folder.
    #[classmethod]
    fn load(_cls: &Bound<'_, PyType>, py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| Config::load(&path))
            .map(|inner| PyConfig { inner })
            .map_err(|e| to_pyerr(py, e))
    }

    /// Parses and validates config text.
    ///
    /// ``path``, when given, is the file the text stands for: messages name it and
    /// relative paths (the store) are relative to its folder; otherwise they are
    /// relative to the current directory. ``env`` holds the variables for the
    /// ``PPS_SOURCES_*`` / ``PPS_TARGETS_*`` overrides; ``None`` reads the process
    /// environment.
    #[classmethod]
    #[pyo3(signature = (text, *, path = None, env = None))]
    fn from_toml(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        text: &str,
        path: Option<PathBuf>,
        env: Option<BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let env: Vec<(String, String)> = match env {
            Some(map) => map.into_iter().collect(),
            None => std::env::vars().collect(),
        };
        Config::parse(text, path.as_deref(), &env)
            .map(|inner| PyConfig { inner })
            .map_err(|e| to_pyerr(py, e))
    }

    /// The SQLite state file.
    #[getter]
    fn store(&self) -> PathBuf {
        self.inner.store.clone()
    }

    /// The file the config came from, or ``None``.
    #[getter]
    fn file(&self) -> Option<PathBuf> {
        self.inner.file.clone()
    }

    /// Source names, sorted.
    #[getter]
    fn sources(&self) -> Vec<String> {
        self.inner.sources.keys().cloned().collect()
    }

    /// Target names, sorted.
    #[getter]
    fn targets(&self) -> Vec<String> {
        self.inner.targets.keys().cloned().collect()
    }

    /// The watches as ``source:path`` labels, in file order.
    #[getter]
    fn watches(&self) -> Vec<String> {
        self.inner.watches.iter().map(|w| w.label()).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Config(file={}, store={:?}, sources={:?}, targets={:?}, watches={:?})",
            self.inner
                .file
                .as_ref()
                .map_or("None".to_owned(), |f| format!(
                    "{:?}",
                    f.display().to_string()
                )),
            self.inner.store.display().to_string(),
            self.sources(),
            self.targets(),
            self.watches()
        )
    }
}
