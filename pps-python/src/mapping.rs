//! `pps.PathMapping`: source paths to the paths a media server sees.

use crate::errors::{config, to_pyerr};
use crate::types::repr_str;
use pps_core::mapping::{MappingRule, PathMapping};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

/// Ordered ``from → to`` rules mapping source paths to the paths a media server sees,
/// in the shape of a target's ``path_mapping`` in ``pps.toml``::
///
///     m = pps.PathMapping([{"from": "/115", "to": "/mnt/115"}])
///     m.map("/115/TV/Show")   # "/mnt/115/TV/Show"
///     m.map("/other")         # None: no rule applies
///
/// A rule applies when ``from`` is the path or one of its ancestors on whole
/// components (``/115/Public`` never matches ``/115/PublicX``); the longest applying
/// ``from`` wins. The rest of the path is joined in the style of ``to``, so a Windows
/// server gets ``D:\Media\TV\Show``. With no rules every path maps to itself. A rule
/// with an empty or relative ``from``, or an empty ``to``, raises ``ConfigError``.
#[pyclass(module = "pps", name = "PathMapping", frozen)]
#[derive(Debug)]
pub struct PyPathMapping {
    inner: PathMapping,
    rules: Vec<(String, String)>,
}

fn rule_of(py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<MappingRule> {
    if let Ok(m) = item.cast::<PyMapping>() {
        if m.len()? != 2 {
            return Err(config(
                py,
                "path_mapping",
                "a rule has exactly the keys \"from\" and \"to\"",
            ));
        }
        let get = |k: &str| -> PyResult<String> {
            m.get_item(k)
                .map_err(|_| {
                    config(
                        py,
                        "path_mapping",
                        format!("a rule needs the key \"{k}\" (and only \"from\" and \"to\")"),
                    )
                })?
                .extract()
        };
        return Ok(MappingRule {
            from: get("from")?,
            to: get("to")?,
        });
    }
    let (from, to): (String, String) = item.extract().map_err(|_| {
        config(
            py,
            "path_mapping",
            "a rule is {\"from\": ..., \"to\": ...} or a (from, to) pair",
        )
    })?;
    Ok(MappingRule { from, to })
}

#[pymethods]
impl PyPathMapping {
    #[new]
    #[pyo3(signature = (rules = None))]
    fn new(py: Python<'_>, rules: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut parsed = Vec::new();
        if let Some(rules) = rules {
            for item in rules.try_iter()? {
                parsed.push(rule_of(py, &item?)?);
            }
        }
        let inner = PathMapping::new(parsed.clone()).map_err(|e| to_pyerr(py, e))?;
        Ok(PyPathMapping {
            inner,
            rules: parsed.into_iter().map(|r| (r.from, r.to)).collect(),
        })
    }

    /// The target's path for ``path`` (an absolute source path), or ``None`` when rules
    /// exist and none applies (the server cannot see that path).
    fn map(&self, path: &str) -> Option<String> {
        self.inner.map(path)
    }

    /// The rules as given, as ``{"from": ..., "to": ...}`` dicts.
    #[getter]
    fn rules<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.rules
            .iter()
            .map(|(f, t)| {
                let d = PyDict::new(py);
                d.set_item("from", f)?;
                d.set_item("to", t)?;
                Ok(d)
            })
            .collect()
    }

    fn __len__(&self) -> usize {
        self.rules.len()
    }

    fn __repr__(&self) -> String {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|(f, t)| format!("{{'from': {}, 'to': {}}}", repr_str(f), repr_str(t)))
            .collect();
        format!("PathMapping([{}])", rules.join(", "))
    }
}
