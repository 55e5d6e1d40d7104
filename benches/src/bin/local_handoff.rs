//! Where the local pass's time goes: the same no-change pass over a local tree with
//! each listing run inline on the pass's task, and on tokio's blocking pool (what
//! `LocalSource` does, so a hung mount cannot stall the engine) at concurrency 1 and 8.
//!
//! Run: `cargo run --release -p pps-benches --bin local_handoff -- DIR` on any tree.
use pps_core::local::{LocalSource, list_blocking};
use pps_core::sqlite::SqliteStore;
use pps_core::{DirectorySource, Engine, EngineOptions, Entry, ListOptions, Watch};
use std::sync::Arc;
use std::time::Instant;

/// `LocalSource`'s listing, run inline (for this measurement only: it blocks the
/// task that polls it).
#[derive(Debug)]
struct Inline;
#[async_trait::async_trait]
impl DirectorySource for Inline {
    async fn list(&self, p: &str, _: ListOptions) -> pps_core::Result<Vec<Entry>> {
        list_blocking(p)
    }
    async fn stat(&self, p: &str) -> pps_core::Result<Entry> {
        LocalSource::new().stat(p).await
    }
}

fn main() {
    let root = std::env::args().nth(1).expect("usage: local_handoff DIR");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        for (name, src, c) in [
            ("inline c1", Arc::new(Inline) as Arc<dyn DirectorySource>, 1),
            (
                "pool c1",
                Arc::new(LocalSource::new()) as Arc<dyn DirectorySource>,
                1,
            ),
            (
                "pool c8",
                Arc::new(LocalSource::new()) as Arc<dyn DirectorySource>,
                8,
            ),
            (
                "pool c32",
                Arc::new(LocalSource::new()) as Arc<dyn DirectorySource>,
                32,
            ),
        ] {
            let dir = tempfile::tempdir().expect("tmp");
            let store = Arc::new(SqliteStore::open(dir.path().join("s.db")).expect("store"));
            let mut o = EngineOptions::default();
            o.concurrency = c;
            let e = Engine::new(store).with_source("l", src).with_options(o);
            let w = Watch::new("l", &root).expect("w");
            e.pass(&w).await.expect("base");
            let t = Instant::now();
            e.pass(&w).await.expect("pass");
            println!("{name}: {:.3} s", t.elapsed().as_secs_f64());
        }
    });
}
