//! Issue 29: `pps walk` as a process against the OpenList and rclone stand-ins (HTTP on
//! loopback), 3,000 folders below the root, at 50 calls/s with a burst of 1 and 4 listings in flight. Reports
//! the calls the stand-in received against the folders the walk listed, the mean rate
//! from the first call to the last, and the most calls in any whole second (counted
//! from the first call).
//!
//! `cargo build --release --bin pps && cargo run --release -p pps-benches --bin http_walk -- PATH_TO_PPS`
//! (`$CARGO_TARGET_DIR/release/pps`; without a path, `target/debug/pps`)

use pps_http_sources::mock::{StandIn, Tree};
use std::process::Command;
use std::time::Instant;

const RATE: f64 = 50.0;

fn tree() -> Tree {
    let mut t = Tree::new();
    // 60 shows of 49 seasons: 3,000 folders below /115/TV, one file in each season.
    for show in 0..60 {
        for season in 1..=49 {
            t.write_file(&format!("/115/TV/Show {show:02}/S{season:02}/e01.mkv"), 1);
        }
    }
    t
}

async fn one(pps: &str, kind: &str) {
    let (server, path, extra) = match kind {
        "openlist" => (
            StandIn::openlist().token("bench").start(tree()).await,
            "/api/fs/list",
            "token = \"bench\"",
        ),
        _ => (
            StandIn::rclone().user("rc", "bench").start(tree()).await,
            "/operations/list",
            "remote = \"115dav:\"\nusername = \"rc\"\npassword = \"bench\"",
        ),
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"pps.db\"\n[sources.src]\nkind = \"{kind}\"\nurl = \"{}\"\n{extra}\nmax_queries_per_second = {RATE}\nburst = 1\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"src\"\npath = \"/115/TV\"\n",
            server.url()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let pps = pps.to_owned();
        let config = config.clone();
        move || {
            Command::new(pps)
                .arg("-c")
                .arg(&config)
                // Four in flight: the stand-in answers in about 40 ms, so two in flight
                // would cap the pace below 50/s and measure latency, not the limiter.
                .args(["walk", "--concurrency", "4", "src:/115/TV"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let arrivals: Vec<Instant> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.at)
        .collect();
    let first = arrivals[0];
    let span = arrivals.last().unwrap().duration_since(first).as_secs_f64();
    let mut per_second = vec![0u32; span as usize + 1];
    for a in &arrivals {
        per_second[a.duration_since(first).as_secs() as usize] += 1;
    }
    let full: Vec<u32> = per_second[..per_second.len() - 1].to_vec();
    let most = per_second.iter().max().unwrap();
    // n calls over the span between the first and the last: n - 1 gaps.
    let rate = (arrivals.len() - 1) as f64 / span;
    println!("## {kind}");
    println!(
        "calls received by the stand-in ({path}): {}",
        arrivals.len()
    );
    println!(
        "first to last call: {span:.2} s; rate {rate:.3}/s against {RATE}/s ({:+.2}%)",
        (rate / RATE - 1.0) * 100.0
    );
    println!("most calls in any whole second from the first call: {most} (limit {RATE})");
    println!(
        "whole seconds: {} ; min {} max {}",
        full.len(),
        full.iter().min().unwrap(),
        full.iter().max().unwrap()
    );
    println!("wall time of `pps walk`: {wall:.1} s");
    println!("walk report:\n{stdout}");
}

#[tokio::main]
async fn main() {
    let pps = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/debug/pps".to_owned());
    for kind in ["openlist", "rclone"] {
        one(&pps, kind).await;
    }
}
