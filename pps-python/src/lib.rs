//! The Python package `pps`: the pps library (not the CLI) from Python.
//!
//! This crate is the native module `pps._pps`; `python/pps/__init__.py` re-exports it,
//! `python/pps/_pps.pyi` types it. It is a thin layer over the Rust crates:
//!
//! | Python | Rust |
//! |---|---|
//! | `Config.load` / `Config.from_toml` | `pps::Config::{load, parse}` |
//! | `Scanner` (`index`, `run_once`, `status`, `forget`, `serve`) | `pps::App` and the operations of the `pps` crate |
//! | `LocalSource`, `CloudDrive` (`list`, `stat`) | `pps_core::local::LocalSource`, `pps_clouddrive::CloudDrive` |
//! | `OpenList`, `Rclone` (`list`, `stat`) | `pps_http_sources::{OpenList, Rclone}` |
//! | `Plex`, `Emby`, `Jellyfin` (`libraries`, `check`, `scan`) | `pps_mediaserver` targets |
//! | `PathMapping` | `pps_core::mapping::PathMapping` |
//! | `PpsError` and subclasses | `pps_core::Error` by `ErrorKind` |
//!
//! **The one rule that shapes it: Python never waits holding the interpreter.** Every
//! call runs on one shared tokio runtime (the `runtime` module); a sync method waits with the
//! interpreter released and wakes to run signal handlers, so Ctrl-C interrupts it; its
//! `*_async` twin returns a coroutine driven by the same runtime.
//!
//! Rust tests of this crate would have to link and start libpython, so it has none; its
//! tests are the pytest suite in `tests/`, run by `scripts/test-python` against the
//! built module (with the `testing` feature, which adds `pps._testing`).

#![warn(missing_docs)]

mod config;
mod errors;
mod mapping;
mod runtime;
mod scanner;
mod sources;
mod targets;
#[cfg(feature = "testing")]
mod testing;
mod types;

use pyo3::prelude::*;

/// The native part of the `pps` package; import `pps`, not this module.
#[pymodule(name = "_pps")]
fn pps_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<config::PyConfig>()?;
    m.add_class::<scanner::PyScanner>()?;
    m.add_class::<sources::PyLocalSource>()?;
    m.add_class::<sources::PyCloudDrive>()?;
    m.add_class::<sources::PyOpenList>()?;
    m.add_class::<sources::PyRclone>()?;
    m.add_class::<targets::PyTarget>()?;
    m.add_class::<targets::PyPlex>()?;
    m.add_class::<targets::PyEmby>()?;
    m.add_class::<targets::PyJellyfin>()?;
    m.add_class::<mapping::PyPathMapping>()?;
    m.add_class::<types::PyEntry>()?;
    m.add_class::<types::PyChange>()?;
    m.add_class::<types::PyLibrary>()?;
    m.add_class::<types::PyTargetInfo>()?;
    m.add_class::<types::PyPassReport>()?;
    m.add_class::<types::PyDeliveryReport>()?;
    m.add_class::<types::PyOnceReport>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    #[cfg(feature = "testing")]
    testing::register(m)?;
    Ok(())
}
