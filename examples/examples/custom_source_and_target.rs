//! Embed pps with your own source and target: a source that serves a fixed catalogue
//! and a target that collects scan requests. Everything else (change detection, the
//! store, planning, at-least-once delivery) comes from pps-core.

use async_trait::async_trait;
use pps_core::memory::MemoryStore;
use pps_core::{
    Capabilities, DirectorySource, Engine, Entry, Error, ErrorKind, Library, ListOptions, Result,
    ScanRequest, ScanTarget, TargetSpec, Watch,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A source backed by a map of folder -> entries (think: a catalogue from an API).
#[derive(Debug, Default)]
struct Catalogue(Mutex<HashMap<String, Vec<Entry>>>);

#[async_trait]
impl DirectorySource for Catalogue {
    async fn list(&self, path: &str, _: ListOptions) -> Result<Vec<Entry>> {
        let map = self
            .0
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "poisoned"))?;
        map.get(path)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such folder").with("path", path))
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        Err(Error::new(ErrorKind::Unsupported, "not needed by passes").with("path", path))
    }
}

/// A target that just remembers what it was asked to scan (think: a webhook).
#[derive(Debug, Default)]
struct Collector(Mutex<Vec<ScanRequest>>);

#[async_trait]
impl ScanTarget for Collector {
    fn capabilities(&self) -> Capabilities {
        Capabilities::folders(10)
    }

    async fn libraries(&self) -> Result<Vec<Library>> {
        Ok(vec![Library {
            id: "1".into(),
            name: "TV".into(),
            locations: vec!["/tv".into()],
        }])
    }

    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.extend(requests.iter().cloned());
        requests.iter().map(|_| Ok(())).collect()
    }
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<()> {
    let catalogue = Arc::new(Catalogue::default());
    let put = |folder: &str, entries: Vec<Entry>| {
        catalogue
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(folder.to_owned(), entries);
    };
    put("/tv", vec![Entry::dir("Show", None)]);
    put("/tv/Show", vec![Entry::file("e1.mkv", 100, None)]);

    let collector = Arc::new(Collector::default());
    let engine = Engine::new(Arc::new(MemoryStore::new()))
        .with_source("catalogue", catalogue.clone())
        .with_target(TargetSpec::new("collector", collector.clone()));
    let watch = Watch::new("catalogue", "/tv")?;

    engine.pass(&watch).await?; // the baseline: records, scans nothing
    put(
        "/tv/Show",
        vec![
            Entry::file("e1.mkv", 100, None),
            Entry::file("e2.mkv", 100, None),
        ],
    );
    let report = engine.pass(&watch).await?;
    engine.deliver_all("collector").await?;

    let scans = collector
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    println!("changes: {:?}", report.changes);
    println!("scans sent: {scans:?}");
    // A folder-only target gets the episode's folder, never the library root.
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].path, "/tv/Show");
    Ok(())
}

#[test]
fn runs() {
    // The example itself, as CI runs it: against the mock servers.
    main().expect("the example runs");
}
