//! Benchmarks of pps-core (issue 2). Run: `cargo run --release -p pps-benches --bin core`
//! (optionally with `memory`, `big-folder` or `local` to run one part).

use pps_benches::{machine, median, ms, peak_rss_mb, reset_peak_rss, rss_mb};
use pps_core::local::LocalSource;
use pps_core::memory::MemorySource;
use pps_core::sqlite::SqliteStore;
use pps_core::{Engine, EngineOptions, Entry, Mtime, Watch};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CATEGORIES: usize = 100;
const PER_CATEGORY: usize = 1000;
const FILES: usize = 10;

fn memory_tree() -> MemorySource {
    let mtime = Some(Mtime::from_nanos(1_700_000_000_000_000_000));
    // Generated lazily, one folder at a time, so building the tree never holds it
    // uncompressed (the allocator would keep that memory and inflate every figure).
    let root = std::iter::once((
        "/lib".to_owned(),
        (0..CATEGORIES)
            .map(|c| Entry::dir(format!("cat{c:03}"), mtime))
            .collect(),
    ));
    let categories = (0..CATEGORIES).flat_map(move |c| {
        let cat = std::iter::once((
            format!("/lib/cat{c:03}"),
            (0..PER_CATEGORY)
                .map(|f| Entry::dir(format!("Show {f:04}"), mtime))
                .collect(),
        ));
        let shows = (0..PER_CATEGORY).map(move |f| {
            (
                format!("/lib/cat{c:03}/Show {f:04}"),
                (0..FILES)
                    .map(|i| Entry::file(format!("e{i:02}.mkv"), 1_000_000 + i as u64, mtime))
                    .collect::<Vec<_>>(),
            )
        });
        cat.chain(shows)
    });
    let src = MemorySource::from_listings(root.chain(categories));
    src.put_entry("/lib", Entry::dir("lib", mtime));
    src
}

async fn memory(rt_note: &str) {
    let t = Instant::now();
    let src = memory_tree();
    let folders = CATEGORIES * PER_CATEGORY + CATEGORIES + 1;
    println!("## In-memory source, {folders} folders x {FILES} files, SQLite store ({rt_note})");
    println!(
        "tree built in {:.1} s; RSS with the tree: {:.0} MB",
        t.elapsed().as_secs_f64(),
        rss_mb()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("store"));
    let engine = Engine::new(store).with_source("mem", Arc::new(src.clone()));
    let watch = Watch::new("mem", "/lib").expect("watch");

    let before = rss_mb();
    reset_peak_rss();
    let t = Instant::now();
    let r = engine.pass(&watch).await.expect("baseline");
    let baseline = t.elapsed();
    assert!(r.baseline && r.folders_listed as usize == folders);
    println!(
        "baseline: {:.2} s ({:.0} folders/s), peak RSS {:.0} MB (+{:.0} MB over the tree)",
        baseline.as_secs_f64(),
        folders as f64 / baseline.as_secs_f64(),
        peak_rss_mb(),
        peak_rss_mb() - before
    );
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..5 {
        let before = rss_mb();
        reset_peak_rss();
        let t = Instant::now();
        let r = engine.pass(&watch).await.expect("pass");
        times.push(t.elapsed());
        peaks.push((peak_rss_mb(), peak_rss_mb() - before));
        assert!(r.changes.is_empty() && r.folders_changed == 0);
    }
    let med = median(times.clone());
    let best = times.iter().min().copied().unwrap_or_default();
    let (peak, extra) = peaks
        .iter()
        .fold((0.0f64, 0.0f64), |a, p| (a.0.max(p.0), a.1.max(p.1)));
    println!(
        "no-change pass (5 runs): median {:.3} s = {:.0} folders/s, best {:.0} folders/s; peak RSS {peak:.0} MB (+{extra:.0} MB over the tree)",
        med.as_secs_f64(),
        folders as f64 / med.as_secs_f64(),
        folders as f64 / best.as_secs_f64()
    );
}

async fn big_folder() {
    println!("## One folder of 10,000 entries, one entry changed: list + diff + commit");
    let src = MemorySource::new();
    for i in 0..10_000 {
        src.write_file(&format!("/big/episode {i:05}.mkv"), 1000);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("store"));
    let engine = Engine::new(store).with_source("mem", Arc::new(src.clone()));
    let watch = Watch::new("mem", "/big").expect("watch");
    engine.pass(&watch).await.expect("baseline");
    let mut times = Vec::new();
    for k in 0..50 {
        src.write_file(&format!("/big/episode {:05}.mkv", k * 197), 2000 + k);
        let t = Instant::now();
        let r = engine.pass(&watch).await.expect("pass");
        times.push(t.elapsed());
        assert_eq!(r.changes.len(), 1);
    }
    let max = times.iter().max().copied().unwrap_or_default();
    println!("50 runs: median {}, max {}", ms(median(times)), ms(max));
}

fn make_local_tree(root: &std::path::Path, folders: usize) {
    for c in 0..100 {
        for f in 0..folders / 100 {
            let d = root.join(format!("cat{c:03}/Show {f:04}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("e01.mkv"), b"x").expect("write");
        }
    }
}

async fn local() {
    let folders = 100_000;
    println!("## Local tree of {folders} folders (+100 categories), 1 file each, page cache warm");
    let dir = tempfile::tempdir_in(std::env::var("PPS_BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("tempdir");
    let root = dir.path().join("tree");
    let t = Instant::now();
    make_local_tree(&root, folders);
    println!("tree made in {:.1} s", t.elapsed().as_secs_f64());
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("store"));
    let mut options = EngineOptions::default();
    if let Some(c) = std::env::var("PPS_BENCH_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        options.concurrency = c;
    }
    println!("engine concurrency {}", options.concurrency);
    let engine = Engine::new(store)
        .with_source("local", Arc::new(LocalSource::new()))
        .with_options(options);
    let watch = Watch::new("local", root.to_str().expect("utf-8 path")).expect("watch");
    let t = Instant::now();
    engine.pass(&watch).await.expect("baseline");
    println!("baseline: {:.2} s", t.elapsed().as_secs_f64());
    let find = || {
        let t = Instant::now();
        let out = std::process::Command::new("find")
            .arg(&root)
            .args(["-printf", "%T@ %p\n"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("find");
        assert!(out.success());
        t.elapsed()
    };
    find(); // warm the cache
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..5 {
        theirs.push(find());
        let t = Instant::now();
        let r = engine.pass(&watch).await.expect("pass");
        ours.push(t.elapsed());
        assert!(r.changes.is_empty());
    }
    let (o, f): (Duration, Duration) = (median(ours), median(theirs));
    println!(
        "no-change pass: median {:.3} s; `find DIR -printf '%T@ %p\\n'`: median {:.3} s; ratio pps/find = {:.2}",
        o.as_secs_f64(),
        f.as_secs_f64(),
        o.as_secs_f64() / f.as_secs_f64()
    );
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("machine: {}", machine());
    rt.block_on(async {
        if which == "all" || which == "memory" {
            memory("multi-thread runtime").await;
        }
        if which == "all" || which == "big-folder" {
            big_folder().await;
        }
        if which == "all" || which == "local" {
            local().await;
        }
    });
}
