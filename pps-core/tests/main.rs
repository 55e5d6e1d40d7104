//! Integration tests of pps-core: one test binary, so it links once.

// Test helpers are documented by the tests that use them.
#![allow(missing_docs)]

mod confirm;
mod conformance;
mod engine;
mod layers;
mod props;
mod schedule;
mod service_loop;
mod store;

use pps_core::memory::{MemorySource, MemoryStore, MemoryTarget};
use pps_core::{Capabilities, Engine, MtimeStore, TargetSpec, Watch};
use std::sync::Arc;

/// An engine over a memory source named `src` with a file target `files` and a
/// folder-only target `folders`.
#[derive(Debug)]
pub struct Rig {
    pub source: MemorySource,
    pub store: Arc<dyn MtimeStore>,
    pub files: MemoryTarget,
    pub folders: MemoryTarget,
    pub engine: Engine,
    pub watch: Watch,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    pub fn new() -> Self {
        Self::with_store(Arc::new(MemoryStore::new()))
    }

    pub fn with_store(store: Arc<dyn MtimeStore>) -> Self {
        let source = MemorySource::new();
        source.create_dir("/w");
        let files = MemoryTarget::new(Capabilities::files(100));
        let folders = MemoryTarget::new(Capabilities::folders_only());
        let engine = Engine::new(store.clone())
            .with_source("src", Arc::new(source.clone()))
            .with_target(TargetSpec::new("files", Arc::new(files.clone())))
            .with_target(TargetSpec::new("folders", Arc::new(folders.clone())));
        let watch = Watch::new("src", "/w").unwrap();
        Rig {
            source,
            store,
            files,
            folders,
            engine,
            watch,
        }
    }

    /// A pass, then delivery to both targets; returns the pass report.
    pub async fn cycle(&self) -> pps_core::PassReport {
        let report = self.engine.pass(&self.watch).await.expect("pass");
        for t in ["files", "folders"] {
            self.engine.deliver_all(t).await.expect("deliver");
        }
        report
    }
}
