//! CloudDrive2 source benchmarks against the in-process mock cd2 server over loopback.
//!
//! Run: `cargo run --release -p pps-benches --bin cd2` (figures go to BENCHMARKS.md;
//! nothing here asserts).
//!
//! The mock and the client run on separate tokio runtimes (one worker thread each,
//! named `mock` and `client`), so CPU time can be split per side from
//! `/proc/self/task/*/schedstat`.
//!
//! 1. 20 ms latency per call, 10,000 folders: throughput at concurrency 1, 2, 4, 8 as a
//!    share of the ideal (concurrency / latency).
//! 2. A limit of 5 queries per second for 30 s: achieved rate and the most calls the
//!    server saw in any 1 s window.
//! 3. No latency, no limit to speak of: 10,000 folder listings, folders per second and
//!    CPU time per listing.

use pps_clouddrive::mock::{Faults, MockServer, MockTree};
use pps_clouddrive::{Auth, CloudDrive, CloudDriveConfig};
use pps_core::{DirectorySource, ListOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const FOLDERS: usize = 10_000;

fn folder(i: usize) -> String {
    format!("/mock/g{:03}/d{i:05}", i / 100)
}

fn tree() -> MockTree {
    let mut tree = MockTree::new();
    for i in 0..FOLDERS {
        for f in 0..3 {
            tree.write_file(&format!("{}/f{f}.mkv", folder(i)), 1000 + f);
        }
    }
    tree
}

fn runtime(name: &'static str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// CPU time (ns) of this process's threads whose name starts with `prefix`.
fn cpu_ns(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .map(|c| c.trim().starts_with(prefix))
                .unwrap_or(false)
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

fn config(url: String, qps: f64, burst: u32) -> CloudDriveConfig {
    let mut config = CloudDriveConfig::new(url).with_auth(Auth::None);
    config.max_queries_per_second = qps;
    config.burst = burst;
    config.push = false;
    config
}

/// Lists `count` folders with `concurrency` workers; returns the wall time.
async fn list_many(cd2: &CloudDrive, count: usize, concurrency: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let cd2 = cd2.clone();
        let next = next.clone();
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let entries = cd2
                    .list(&folder(i % FOLDERS), ListOptions::default())
                    .await
                    .expect("listing");
                assert_eq!(entries.len(), 3);
            }
        })
    });
    for w in workers.collect::<Vec<_>>() {
        w.await.expect("worker");
    }
    start.elapsed()
}

fn main() {
    let mock_rt = runtime("mock");
    let client_rt = runtime("client");
    let server = mock_rt
        .block_on(MockServer::builder().start(tree()))
        .expect("the mock starts");
    let url = server.url();
    // The client's connection tasks belong to the client runtime.
    let _client_context = client_rt.enter();
    println!("mock cd2 at {url} serving {} folders", FOLDERS + 100 + 2);

    // 1. Latency-bound throughput.
    server.faults(|f| *f = Faults::default());
    server.faults(|f| f.latency = Duration::from_millis(20));
    let cd2 = CloudDrive::connect(config(url.clone(), 1e6, 1000)).expect("config");
    client_rt.block_on(list_many(&cd2, 16, 8)); // warm the connection
    for concurrency in [1usize, 2, 4, 8] {
        let count = 150 * concurrency;
        let took = client_rt.block_on(list_many(&cd2, count, concurrency));
        let rate = count as f64 / took.as_secs_f64();
        let ideal = concurrency as f64 / 0.020;
        println!(
            "{}",
            serde_json::json!({"bench": "latency20ms", "concurrency": concurrency, "listings": count,
                "seconds": took.as_secs_f64(), "per_second": rate, "ideal": ideal, "share": rate / ideal})
        );
    }

    // 2. 5 queries per second for 30 s.
    server.faults(|f| f.latency = Duration::ZERO);
    let limited = CloudDrive::connect(config(url.clone(), 5.0, 1)).expect("config");
    server.record_arrivals();
    let stop = Instant::now() + Duration::from_secs(30);
    let done = client_rt.block_on(async {
        let workers = (0..4).map(|w| {
            let cd2 = limited.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < stop {
                    cd2.list(&folder(w * 1000 + n), ListOptions::default())
                        .await
                        .expect("listing");
                    n += 1;
                }
                n
            })
        });
        let mut total = 0;
        for w in workers.collect::<Vec<_>>() {
            total += w.await.expect("worker");
        }
        total
    });
    let arrivals = server.arrivals();
    let (first, last) = (arrivals[0], arrivals[arrivals.len() - 1]);
    let span = (last - first).as_secs_f64();
    let achieved = (arrivals.len() - 1) as f64 / span;
    let max_window = (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| **t < arrivals[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({"bench": "limit5qps", "listings": done, "server_calls": arrivals.len(), "span_seconds": span,
            "achieved_per_second": achieved, "error_pct": (achieved - 5.0) / 5.0 * 100.0,
            "max_calls_in_any_1s_window": max_window})
    );

    // 3. Unthrottled, no latency: 10,000 folders.
    let fast = CloudDrive::connect(config(url, 1e6, 1000)).expect("config");
    client_rt.block_on(list_many(&fast, 200, 8));
    for concurrency in [1usize, 8] {
        let (client0, mock0) = (cpu_ns("client"), cpu_ns("mock"));
        let took = client_rt.block_on(list_many(&fast, FOLDERS, concurrency));
        let (client1, mock1) = (cpu_ns("client"), cpu_ns("mock"));
        let per = |a: u64, b: u64| (b - a) as f64 / FOLDERS as f64 / 1000.0;
        println!(
            "{}",
            serde_json::json!({"bench": "unthrottled", "concurrency": concurrency, "folders": FOLDERS,
                "seconds": took.as_secs_f64(), "folders_per_second": FOLDERS as f64 / took.as_secs_f64(),
                "client_cpu_us_per_listing": per(client0, client1), "mock_cpu_us_per_listing": per(mock0, mock1)})
        );
    }
    drop(server);
}
