//! Where a paced source loses rate: the parts of a `pps walk`'s pacing measured alone,
//! on a real SQLite file, with no HTTP. For issue 29's finding that a walk at 50 calls/s
//! with a burst of 1 ran about 6% under the limit.
//!
//! 1. `take_call` on a real store file (a rate it never has to wait for): its cost.
//! 2. tokio's `sleep` of 20 ms: how late it wakes.
//! 3. The rate limit layer alone, the store's gate alone, and both (as `pps walk` stacks
//!    them), at 50 calls/s with a burst of 1, with 1 and 4 callers: the rate reached.
//!
//! `cargo run --release -p pps-benches --bin pacing`

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use pps_core::budget::Grant;
use pps_core::layers::{RateLimit, RateLimitPolicy};
use pps_core::sqlite::SqliteStore;
use pps_core::{CallLimits, DirectorySource, Entry, Hint, ListOptions, MtimeStore, StoreGate};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: f64 = 50.0;
const CALLS: usize = 400;

#[derive(Debug)]
struct Nothing;

#[async_trait]
impl DirectorySource for Nothing {
    async fn list(&self, _: &str, _: ListOptions) -> pps_core::Result<Vec<Entry>> {
        Ok(Vec::new())
    }
    async fn stat(&self, path: &str) -> pps_core::Result<Entry> {
        Ok(Entry::dir(path, None))
    }
    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        None
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MtimeStore> =
        Arc::new(SqliteStore::open(dir.path().join("pps.db")).unwrap());

    // 1. take_call's own cost.
    let limits = CallLimits::new(1e6).with_burst(1000);
    let mut took = Vec::new();
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    for _ in 0..2000 {
        let t = Instant::now();
        let g = store.take_call("probe", wall(), &limits).unwrap();
        took.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(g, Grant::Now);
    }
    took.sort_by(f64::total_cmp);
    let sync: String = {
        let c = rusqlite::Connection::open(dir.path().join("pps.db")).unwrap();
        let j: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        format!("journal_mode {j}")
    };
    println!(
        "take_call on a real file ({sync}): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took.last().unwrap()
    );

    // 2. tokio's sleep.
    let mut late = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        late.push((t.elapsed().as_secs_f64() - 0.020) * 1e3);
    }
    late.sort_by(f64::total_cmp);
    println!(
        "tokio sleep(20 ms) wakes late by: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&late, 0.5),
        percentile(&late, 0.99)
    );

    // 3. The layers at 50/s, burst 1.
    for callers in [1usize, 4] {
        for what in ["rate limit layer", "store gate", "both"] {
            let limited = RateLimit::new(
                Nothing,
                if what == "store gate" {
                    RateLimitPolicy::new(1e6, 1000)
                } else {
                    RateLimitPolicy::new(RATE, 1)
                },
            );
            if what != "rate limit layer" {
                let name = format!("{what}-{callers}");
                let gate = StoreGate::new(store.clone(), name, CallLimits::new(RATE).with_burst(1));
                limited.share_budget(Arc::new(gate));
            }
            let limited = Arc::new(limited);
            let started = Instant::now();
            let mut tasks = Vec::new();
            let each = CALLS / callers;
            for _ in 0..callers {
                let l = limited.clone();
                tasks.push(tokio::spawn(async move {
                    let mut at = Vec::new();
                    for _ in 0..each {
                        l.list("/", ListOptions::default()).await.unwrap();
                        at.push(Instant::now());
                    }
                    at
                }));
            }
            let mut at: Vec<Instant> = Vec::new();
            for t in tasks {
                at.extend(t.await.unwrap());
            }
            at.sort();
            let span = at.last().unwrap().duration_since(at[0]).as_secs_f64();
            let rate = (at.len() - 1) as f64 / span;
            println!(
                "{what:>16}, {callers} caller(s): {:.2}/s ({:+.1}% of {RATE}/s) over {:.1} s",
                rate,
                (rate / RATE - 1.0) * 100.0,
                started.elapsed().as_secs_f64()
            );
        }
    }
}
