//! The HTTP surface of `pps run --listen` under attack (issue 14), measured against the
//! real binary. Run:
//! `cargo build --release --bin pps && cargo run --release -p pps-benches --bin attack [-- PATH_TO_PPS]`
//! (figures go to RELIABILITY.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";

fn kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn request(port: u16, raw: &[u8]) -> (u16, Duration) {
    let t = Instant::now();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, t.elapsed());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, t.elapsed())
}

fn main() {
    let pps = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/pps"));
    assert!(
        pps.exists(),
        "build it first: cargo build --release --bin pps"
    );
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    for i in 0..200 {
        std::fs::create_dir_all(media.join(format!("Show {i}/S01"))).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"pps.db\"\n[sources.nas]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[server]\nlisten = \"127.0.0.1:{port}\"\nmax_body_bytes = 2097152\n[[watch]]\nsource = \"nas\"\npath = \"{}\"\ninterval = \"1m\"\n",
            media.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(&pps)
        .arg("-c")
        .arg(&config)
        .arg("run")
        .env("PPS_SERVER_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss0 = kib(pid, "VmRSS:");

    // 1. 1,000 connections, each announcing and sending 1 MiB without a token.
    let body = vec![b'x'; 1 << 20];
    let t = Instant::now();
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut raw = format!(
                    "POST /triggers/manual HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                raw.extend_from_slice(&body);
                request(port, &raw).0
            })
        })
        .collect();
    let codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let took = t.elapsed();
    let peak = kib(pid, "VmHWM:");
    let after = kib(pid, "VmRSS:");
    let refused = codes.iter().filter(|c| **c == 401).count();
    println!(
        "1,000 unauthenticated 1 MiB uploads: {refused} answered 401, others {:?}; in {:.1} s; RSS {} MB before, peak {} MB, {} MB after",
        codes.iter().filter(|c| **c != 401).count(),
        took.as_secs_f64(),
        rss0 / 1024,
        peak / 1024,
        after / 1024
    );

    // 2. An idle connection: how long pps keeps it.
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    println!(
        "an idle connection is closed after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST /triggers/manual HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let _ = s.read_to_end(&mut buf);
    println!(
        "a partial header is closed after {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // 3. /health while four deep-path hints (1 MiB paths, 520,000 components) run.
    let deep = format!(
        "{{\"path\": \"{}/{}\"}}",
        media.display(),
        "a/".repeat(520_000)
    );
    let deep_req = format!(
        "POST /triggers/manual HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{deep}",
        deep.len()
    );
    let hints: Vec<_> = (0..4)
        .map(|_| {
            let r = deep_req.clone();
            std::thread::spawn(move || request(port, r.as_bytes()))
        })
        .collect();
    let mut worst = Duration::ZERO;
    let mut health_codes = Vec::new();
    for _ in 0..20 {
        let (code, d) = request(
            port,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        health_codes.push(code);
        worst = worst.max(d);
    }
    let hint_results: Vec<(u16, Duration)> = hints.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "4 deep-path hints answered {:?} in at most {:.0} ms; /health during them: codes {:?}, slowest {:.1} ms",
        hint_results.iter().map(|r| r.0).collect::<Vec<_>>(),
        hint_results
            .iter()
            .map(|r| r.1)
            .max()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0,
        health_codes
            .iter()
            .collect::<std::collections::BTreeSet<_>>(),
        worst.as_secs_f64() * 1000.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
