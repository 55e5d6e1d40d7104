//! The service under attack and beside other programs (issue 14): `pps run --listen`
//! as a process, probed with raw sockets, a second SQLite client and `kill -9`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "attack-trigger-token-31";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Svc {
    child: Child,
    port: u16,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Svc {
    fn start(dir: &Path, config: &Path, port: u16) -> Svc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pps"))
            .current_dir(dir)
            .arg("-c")
            .arg(config)
            .arg("run")
            .env("PPS_SERVER_TOKEN", TOKEN)
            .env("PPS_KEEP_ME", "kept")
            .env("PPS_SECRET_ELSE", "hidden-from-scripts")
            .env_remove("PPS_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let svc = Svc {
            child,
            port,
            stderr: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the service never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        svc
    }

    /// One request over a fresh connection; returns (status, body).
    fn request(&self, raw: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        (status, body)
    }

    fn get(&self, path: &str, token: bool) -> (u16, String) {
        let auth = if token {
            format!("Authorization: Bearer {TOKEN}\r\n")
        } else {
            String::new()
        };
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        ))
    }

    fn post(&self, path: &str, auth: &str, body: &str) -> (u16, String) {
        self.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    fn pending(&self) -> u64 {
        let (_, m) = self.get("/metrics", true);
        m.lines()
            .find(|l| l.starts_with("pps_outbox_pending{target=\"slow\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A watch of `media` sending to a command target that always asks for a retry (so
/// scans stay pending) and records its environment.
fn config(dir: &Path, media: &Path, port: u16, extra_server: &str) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "pps.db"

[sources.nas]
kind = "local"

[targets.slow]
kind = "command"
program = "/bin/sh"
args = ["-c", "env > '{env}'; exit 75", "sh"]
env = ["PPS_KEEP_ME"]

[server]
listen = "127.0.0.1:{port}"
max_body_bytes = 65536
{extra_server}

[[watch]]
source = "nas"
path = "{m}"
interval = "1s"
"#,
            env = dir.join("env.txt").display(),
            m = media.display()
        ),
    )
    .unwrap();
    config
}

fn setup(extra_server: &str) -> (tempfile::TempDir, PathBuf, PathBuf, u16) {
    let dir = tempfile::tempdir().unwrap();
    let media = dir
        .path()
        .join("media")
        .canonicalize()
        .ok()
        .unwrap_or_else(|| {
            std::fs::create_dir(dir.path().join("media")).unwrap();
            dir.path().join("media").canonicalize().unwrap()
        });
    for i in 0..20 {
        std::fs::create_dir_all(media.join(format!("Show {i}"))).unwrap();
    }
    let port = free_port();
    let config = config(dir.path(), &media, port, extra_server);
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("-c")
        .arg(&config)
        .arg("index")
        .env("PPS_SERVER_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, media, config, port)
}

fn outbox_rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap()
}

/// Another program on the machine reading the store: Python's sqlite3 module (the
/// system's SQLite, as the `sqlite3` shell would be), opened and closed.
fn outside_reader(db: &Path) -> i64 {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nprint(c.execute('select count(*) from outbox').fetchone()[0])\nc.close()")
        .arg(db)
        .output()
        .expect("python3 runs (the test command needs it anyway)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn health_then_an_outside_reader_then_kill_9_loses_nothing() {
    let (dir, media, config, port) = setup("");
    let svc = Svc::start(dir.path(), &config, port);
    let wait_pending = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while svc.pending() < n {
            assert!(Instant::now() < deadline, "pending {}", svc.pending());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Changes are found (every folder comes due within its 1 s interval); their scans
    // stay pending, since the target asks for a retry.
    for i in 0..10 {
        std::fs::write(media.join(format!("Show {i}/e1.mkv")), b"x").unwrap();
    }
    wait_pending(10);
    let (code, body) = svc.get("/health", false);
    assert_eq!(code, 200, "{body}");
    // Another program reads the store and closes it. Had /health dropped pps's locks,
    // that program's SQLite would take itself for the last user, checkpoint and delete
    // the WAL, and pps would go on writing into a deleted file.
    let db = dir.path().join("pps.db");
    assert_eq!(
        outside_reader(&db),
        10,
        "the outside reader sees every queued scan"
    );
    assert!(
        dir.path().join("pps.db-wal").exists(),
        "the outside reader deleted the live WAL: pps's locks were gone"
    );
    // A hint answered 202, and more changes, written after the outside reader left.
    let (code, _) = svc.post(
        "/triggers/manual",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
        &format!("{{\"path\": \"{}/Show 7\"}}", media.display()),
    );
    assert_eq!(code, 202);
    for i in 10..20 {
        std::fs::write(media.join(format!("Show {i}/e1.mkv")), b"x").unwrap();
    }
    wait_pending(20);
    svc.kill9();
    assert_eq!(
        outbox_rows(&db),
        20,
        "a kill -9 after /health and a reader lost scans"
    );
    // The command target never saw pps's secrets, only what the config lets through.
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env.contains("PPS_KEEP_ME=kept"), "{env}");
    assert!(
        !env.contains("PPS_SERVER_TOKEN") && !env.contains(TOKEN),
        "{env}"
    );
    assert!(!env.contains("PPS_SECRET_ELSE"), "{env}");
}

#[test]
fn no_body_is_read_before_the_token_and_the_length_are_checked() {
    let (dir, media, config, port) = setup("");
    let svc = Svc::start(dir.path(), &config, port);
    // An enormous declared length without a token: refused at once, nothing read.
    let (code, body) = svc.request(
        "POST /triggers/manual HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"error\""), "JSON: {body}");
    // With the token, the declared length alone earns a JSON 413.
    let (code, body) = svc.request(&format!(
        "POST /triggers/manual HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100000000000\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(code, 413, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("max_body_bytes"),
        "{v}"
    );
    // A chunked body that grows past the limit: 413 as well.
    let chunk = "a".repeat(40_000);
    let (code, body) = svc.request(&format!(
        "POST /triggers/manual HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    ));
    assert_eq!(code, 413, "{body}");
    // The scheme of Authorization is case-insensitive (RFC 7235).
    let (code, _) = svc.post(
        "/triggers/manual",
        &format!("Authorization: bearer {TOKEN}\r\n"),
        &format!("{{\"path\": \"{}/Show 1\"}}", media.display()),
    );
    assert_eq!(code, 202);
    // A path longer than any real one is a 400 with the reason, not seconds of work.
    let deep = format!("{}/{}", media.display(), "a/".repeat(30_000));
    let (code, body) = svc.post(
        "/triggers/manual",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
        &format!("{{\"path\": \"{deep}\"}}"),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("4096 bytes"), "{body}");
    // Public health says little; metrics want the token.
    assert_eq!(svc.get("/metrics", false).0, 401);
    assert_eq!(svc.get("/nope", false).0, 404);
    svc.kill9();
}

#[test]
fn idle_and_slow_connections_are_closed_and_capped() {
    let (dir, media, config, port) = setup("max_connections = 8");
    let svc = Svc::start(dir.path(), &config, port);
    let pid = svc.child.id();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let before = fds();
    // A partial header, a silent connection, a partial body: all closed by pps.
    let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
    partial
        .write_all(b"POST /triggers/manual HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut body = TcpStream::connect(("127.0.0.1", port)).unwrap();
    body.write_all(
        format!("POST /triggers/manual HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{\"pa").as_bytes(),
    )
    .unwrap();
    // 80 more idle sockets: pps accepts at most 8 connections at a time.
    let idle: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = fds();
    assert!(
        held <= before + 8 + 2,
        "pps holds {held} descriptors ({before} before): the cap did not hold"
    );
    // Scanning goes on meanwhile: a new file is found and queued.
    std::fs::write(media.join("Show 3/new.mkv"), b"x").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = rusqlite::Connection::open(dir.path().join("pps.db")).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        if n >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pass stopped while sockets piled up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each of the three is closed by pps within its timeout (10 s), not kept.
    let started = Instant::now();
    for mut s in [partial, silent, body] {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    let kept = started.elapsed();
    assert!(kept < Duration::from_secs(45), "connections kept {kept:?}");
    drop(idle);
    // And the service answers again once the idle ones are gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    while svc.get("/health", false).0 != 200 {
        assert!(Instant::now() < deadline, "health never came back");
    }
    let _ = svc.stderr.try_recv();
    svc.kill9();
}
