//! `pps run --listen`: real HTTP requests to the running service.

use pps_clouddrive::mock::{MockServer, MockTree};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TOKEN: &str = "trigger-secret-77";
const CD2_TOKEN: &str = "cd2-secret-55";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Service {
    child: Child,
    lines: mpsc::Receiver<String>,
    base: String,
    http: reqwest::Client,
}

impl Service {
    fn start(config: &Path, port: u16) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pps"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("PPS_SERVER_TOKEN", TOKEN)
            .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Service {
            child,
            lines: rx,
            base: format!("http://127.0.0.1:{port}"),
            // reqwest is built without a default TLS provider in this workspace (the
            // media server targets pick ring per client); plain-HTTP tests still need one.
            http: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::new()
            },
        }
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/health", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service never became healthy");
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    /// Waits (bounded) until every path in `want` was printed as created.
    fn expect_created(&self, want: &BTreeSet<String>) -> BTreeSet<String> {
        let mut got = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !want.is_subset(&got) && Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let v: Value = serde_json::from_str(&l).unwrap();
                got.insert(v["path"].as_str().unwrap().to_owned());
            }
        }
        got
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn local_config(dir: &Path, media: &Path, port: u16) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.nas]
kind = "local"

[targets.print]
kind = "stdout"

[server]
listen = "127.0.0.1:{port}"
max_body_bytes = 200000
arr_path_mapping = [{{ from = "/tv", to = "{m}" }}]
clouddrive2_path_mapping = [{{ from = "/115", to = "{m}" }}]

[[watch]]
source = "nas"
path = "{m}"
interval = "1h"
"#,
            m = media.display()
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    for i in 0..10 {
        std::fs::create_dir_all(media.join(format!("Show {i}/S01"))).unwrap();
    }
    let port = free_port();
    let config = local_config(dir.path(), &media, port);
    let index = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(&config)
        .arg("index")
        .env("PPS_SERVER_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        index.status.success(),
        "{}",
        String::from_utf8_lossy(&index.stderr)
    );
    let svc = Service::start(&config, port);
    svc.wait_healthy().await;
    let m = media.display().to_string();

    // Auth: missing, wrong, header, query.
    let r = svc
        .post("/triggers/manual")
        .json(&json!({"path": m}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("token is required"));
    let r = svc
        .post("/triggers/manual")
        .bearer_auth("nope")
        .json(&json!({"path": m}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Bad bodies: 400 with a reason; too large: 413.
    let r = svc
        .post("/triggers/manual")
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("not what this trigger takes")
    );
    let r = svc
        .post("/triggers/clouddrive2")
        .bearer_auth(TOKEN)
        .body(vec![b' '; 300_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers()["connection"],
        "close",
        "the unread body ends the connection, and the 413 says so"
    );
    let r = svc
        .post("/triggers/arr")
        .bearer_auth(TOKEN)
        .json(&json!({"x": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Manual, JSON form: the folder is due at once although its interval is an hour.
    std::fs::write(media.join("Show 0/S01/e1.mkv"), b"x").unwrap();
    let r = svc
        .post("/triggers/manual")
        .bearer_auth(TOKEN)
        .json(&json!({"path": format!("{m}/Show 0/S01/e1.mkv")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["accepted"], 1);
    let want = BTreeSet::from([format!("{m}/Show 0/S01/e1.mkv")]);
    assert_eq!(svc.expect_created(&want), want);

    // Manual, autoscan's form with ?token= and ?dir=.
    std::fs::write(media.join("Show 1/S01/e1.mkv"), b"x").unwrap();
    let r = svc
        .post(&format!(
            "/triggers/manual?token={TOKEN}&dir={}",
            url_escape(&format!("{m}/Show 1/S01"))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let want = BTreeSet::from([format!("{m}/Show 1/S01/e1.mkv")]);
    assert_eq!(svc.expect_created(&want), want);

    // Sonarr: the Test event is answered without acting; a Download names the file.
    let r = svc
        .post("/triggers/arr")
        .bearer_auth(TOKEN)
        .json(&json!({"eventType": "Test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    std::fs::write(media.join("Show 2/S01/e5.mkv"), b"x").unwrap();
    let sonarr = json!({
        "eventType": "Download",
        "series": {"title": "Show 2", "path": "/tv/Show 2"},
        "episodeFile": {"relativePath": "S01/e5.mkv", "path": "/tv/Show 2/S01/e5.mkv"}
    });
    let r = svc
        .post("/triggers/arr")
        .bearer_auth(TOKEN)
        .json(&sonarr)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let want = BTreeSet::from([format!("{m}/Show 2/S01/e5.mkv")]);
    assert_eq!(svc.expect_created(&want), want);
    // Attack item 6: a path outside the mapping skipped the length check, so a 900 KB
    // path came back in the answer and went into the log. Lengths come first now.
    let long = format!("/elsewhere/{}", "x".repeat(190_000));
    let r = svc
        .post("/triggers/arr")
        .bearer_auth(TOKEN)
        .json(&json!({"eventType": "Download", "series": {"title": "X", "path": long}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(
        body.len() < 1000 && body.contains("4096 bytes"),
        "{body:.300}"
    );

    // cd2: a burst of 1,000 items in one body, coalesced into 10 folders, none lost.
    let mut items = Vec::new();
    let mut want = BTreeSet::new();
    for i in 0..1000 {
        let show = 3 + i % 7;
        let name = format!("Show {show}/S01/b{i:04}.mkv");
        std::fs::write(media.join(&name), b"x").unwrap();
        items.push(json!({"action": "create", "is_dir": "false", "source_file": format!("/115/{name}"), "destination_file": null}));
        want.insert(format!("{m}/{name}"));
    }
    let r = svc
        .post("/triggers/clouddrive2")
        .bearer_auth(TOKEN)
        .json(&json!({"event_category": "file", "data": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["accepted"], 1000);
    let got = svc.expect_created(&want);
    assert_eq!(got.len(), 1000, "all 1,000 changes printed");
    // Still responsive.
    let r = svc
        .http
        .get(format!("{}/health", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A path outside every watch is accepted as ignored, with the reason, and costs
    // nothing.
    let r = svc
        .post("/triggers/manual")
        .bearer_auth(TOKEN)
        .json(&json!({"path": "/elsewhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 0, "ignored": 1, "ignored_paths": [
            {"path": "/elsewhere", "reason": "no watch contains /elsewhere"}
        ]})
    );

    // The last lines may be printed a moment before their scans leave the outbox, and
    // the counters are updated when a delivery round ends, after its scans left it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let m = svc
            .http
            .get(format!("{}/metrics", svc.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let settled = m.contains("pps_outbox_pending{target=\"print\"} 0")
            && m.contains("pps_scans_total{target=\"print\",outcome=\"sent\"} 1003");
        if settled || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics.contains("pps_hints_total{origin=\"clouddrive2\"} 1000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pps_hints_total{origin=\"manual\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pps_changes_total{kind=\"file_created\"} 1003"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pps_outbox_pending{target=\"print\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pps_scans_total{target=\"print\",outcome=\"sent\"} 1003"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pps_listings_total{source=\"nas\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains(TOKEN));

    // /metrics names roots and targets: it wants the token unless public_metrics.
    let r = svc
        .http
        .get(format!("{}/metrics", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Health turns 503 with a reason when the watched folder goes away (answers are
    // reused for a few seconds); the public reason names no path.
    let moved = dir.path().join("moved");
    std::fs::rename(&media, &moved).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let v: Value = loop {
        let r = svc
            .http
            .get(format!("{}/health", svc.base))
            .send()
            .await
            .unwrap();
        if r.status() == 503 || Instant::now() > deadline {
            assert_eq!(r.status(), 503);
            break r.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = v["reasons"][0].as_str().unwrap();
    assert!(reason.contains("not found"), "{v}");
    assert!(
        !reason.contains(media.to_str().unwrap()),
        "no path in public: {v}"
    );
    let full: Value = svc
        .http
        .get(format!("{}/health", svc.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        full["reasons"][0]
            .as_str()
            .unwrap()
            .contains(media.to_str().unwrap()),
        "with the token, the full reason: {full}"
    );
    std::fs::rename(&moved, &media).unwrap();
    svc.stop();
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A hint accepted just before a crash is not lost: the listing it asked for happens
/// after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hint_accepted_before_a_crash_is_acted_on_after_restart() {
    let mut tree = MockTree::new();
    tree.write_file("/115/TV/Show/S01/e1.mkv", 1);
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{}\"\nmax_queries_per_second = 50\npush = false\n\n[targets.print]\nkind = \"stdout\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[watch]]\nsource = \"cd2\"\npath = \"/115/TV\"\ninterval = \"1h\"\n",
            cd2.url()
        ),
    )
    .unwrap();
    let index = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(&config)
        .arg("index")
        .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
        .env("PPS_SERVER_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        index.status.success(),
        "{}",
        String::from_utf8_lossy(&index.stderr)
    );
    let mut svc = Service::start(&config, port);
    svc.wait_healthy().await;
    // Every listing now hangs for a minute: the hinted folder cannot be listed before
    // the crash.
    cd2.faults(|f| f.latency = Duration::from_secs(60));
    cd2.write_file("/115/TV/Show/S01/e2.mkv", 1);
    let r = svc
        .post("/triggers/manual")
        .bearer_auth(TOKEN)
        .json(&json!({"path": "/115/TV/Show/S01/e2.mkv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    svc.child.kill().unwrap();
    let _ = svc.child.wait();
    cd2.faults(|f| f.latency = Duration::ZERO);
    let svc = Service::start(&config, port);
    let want = BTreeSet::from(["/115/TV/Show/S01/e2.mkv".to_owned()]);
    assert_eq!(
        svc.expect_created(&want),
        want,
        "the hint survived the crash"
    );
    svc.stop();
    cd2.shutdown().await;
}
