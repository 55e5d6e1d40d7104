//! The first hour, live (issue 15): the release `pps` binary against the mock cd2 over
//! gRPC, a library of a few hundred folders and a 5 calls/s budget; `pps index`, then
//! `pps run` while a new episode lands in one show's season folder every 6 s. Prints the
//! delay of every episode, from the write to the line pps prints. Run:
//! `cargo build --release --bin pps && cargo run --release -p pps-benches --bin live [-- PATH_TO_PPS]`

use pps_clouddrive::mock::{MockServer, MockTree};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SHOWS: usize = 136;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pps = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/pps"));
    assert!(
        pps.exists(),
        "build it first: cargo build --release --bin pps"
    );
    let mut tree = MockTree::new();
    for i in 0..SHOWS {
        for s in 1..=2 {
            tree.write_file(&format!("/115/TV/Show {i:03}/Season {s}/E01.mkv"), 1 << 30);
        }
    }
    // The airing show, as a real library holds it: its last episode landed yesterday
    // (every other folder is years old).
    let yesterday = std::time::SystemTime::now() - Duration::from_secs(86_400);
    tree.write_file_at("/115/TV/Show 042/Season 2/E01.mkv", 1 << 30, yesterday);
    let folders = tree.folder_count();
    let cd2 = MockServer::builder()
        .api_token("live")
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"pps.db\"\n[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{}\"\napi_token = \"live\"\nmax_queries_per_second = 5\npush = false\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"cd2\"\npath = \"/115/TV\"\ninterval = \"2s\"\nmax_interval = \"10m\"\n",
            cd2.url()
        ),
    )
    .unwrap();
    let t = Instant::now();
    let out = Command::new(&pps)
        .arg("-c")
        .arg(&config)
        .arg("index")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "index: {folders} folders in {:.1} s at 5 calls/s",
        t.elapsed().as_secs_f64()
    );
    let mut child = Command::new(&pps)
        .arg("-c")
        .arg(&config)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), l));
        }
    });
    let started = Instant::now();
    let mut written: Vec<(String, Instant)> = Vec::new();
    let mut seen: Vec<(String, Instant)> = Vec::new();
    let season = "/115/TV/Show 042/Season 2";
    let mut k = 2;
    while started.elapsed() < Duration::from_secs(75) {
        let path = format!("{season}/E{k:02}.mkv");
        cd2.write_file(&path, 1 << 30);
        written.push((path, Instant::now()));
        k += 1;
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            if let Ok((at, l)) = rx.recv_timeout(Duration::from_millis(50)) {
                let v: serde_json::Value = serde_json::from_str(&l).unwrap();
                seen.push((v["path"].as_str().unwrap_or("").to_owned(), at));
            }
        }
    }
    // A last look for the final episodes.
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if let Ok((at, l)) = rx.recv_timeout(Duration::from_millis(50)) {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            seen.push((v["path"].as_str().unwrap_or("").to_owned(), at));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let calls = cd2.calls(pps_clouddrive::mock::Method::GetSubFiles);
    let mut delays = Vec::new();
    for (i, (p, at)) in written.iter().enumerate() {
        let found = seen.iter().find(|(q, _)| q == p).map(|(_, t)| *t);
        match found {
            Some(t) => {
                let d = t.duration_since(*at).as_secs_f64();
                println!("episode {:2}: found after {d:5.1} s", i + 1);
                delays.push(d);
            }
            None => println!("episode {:2}: not found", i + 1),
        }
    }
    let after_first = delays.iter().skip(1).copied().fold(0.0f64, f64::max);
    println!(
        "{} episodes, {} found; the first after {:.1} s, the worst of the others {:.1} s (goal <= 15 s: {}); {} GetSubFiles calls in all (index included)",
        written.len(),
        delays.len(),
        delays.first().copied().unwrap_or(f64::NAN),
        after_first,
        if after_first <= 15.0 && delays.len() == written.len() {
            "met"
        } else {
            "NOT met"
        },
        calls
    );
}
