//! Shared pieces of the reliability suite: running the real `pps` binary with deadlines,
//! mock media servers that record every request with its arrival instant and can be
//! taken down, the coverage rule, and the secret check.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CD2_TOKEN: &str = "cd2-SECRET-token-7c1e";
pub const CD2_USER: &str = "pps-user";
pub const CD2_PASSWORD: &str = "cd2-SECRET-passw0rd-3b9d";
pub const PLEX_TOKEN: &str = "plex-SECRET-token-51aa";
pub const EMBY_KEY: &str = "emby-SECRET-key-0e42";
pub const JELLYFIN_KEY: &str = "jellyfin-SECRET-key-d7f0";

/// Every secret the suite configures; none may ever appear in output, logs or URLs.
pub const SECRETS: [&str; 5] = [CD2_TOKEN, CD2_PASSWORD, PLEX_TOKEN, EMBY_KEY, JELLYFIN_KEY];

/// True in the soak variant (`PPS_SOAK=1`): more kills, more changes, longer runs.
pub fn soak() -> bool {
    std::env::var("PPS_SOAK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The real `pps` command, with no inherited pps settings and every secret supplied
/// through the environment (the way the README recommends).
pub fn pps(config: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps-e2e"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PPS_") {
            c.env_remove(k);
        }
    }
    if let Some(config) = config {
        c.arg("--config").arg(config);
    }
    c.env("PPS_TARGETS_PLEX_TOKEN", PLEX_TOKEN)
        .env("PPS_TARGETS_EMBY_API_KEY", EMBY_KEY)
        .env("PPS_TARGETS_JELLYFIN_API_KEY", JELLYFIN_KEY)
        .env("RUST_BACKTRACE", "0");
    c
}

/// What a finished `pps` process left: exit code (None when killed by a signal),
/// stdout and stderr.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The stdout target's JSON lines as (path, update, is_dir); panics on a line that
    /// is not JSON (logs must never reach stdout).
    pub fn scans(&self) -> Vec<(String, String, bool)> {
        self.stdout
            .lines()
            .map(|l| {
                let v: Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
                (
                    v["path"].as_str().unwrap().to_owned(),
                    v["update"].as_str().unwrap().to_owned(),
                    v["is_dir"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// Both streams, for messages.
    pub fn all(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for a child, killing it and failing the test when it outlives `limit`: a hang
/// is a finding, never a stuck suite.
pub fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hang: `{what}` still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion within `limit`, capturing both streams; records them in
/// `log` for the secret check.
pub fn run(mut cmd: Command, limit: Duration, log: &Transcript) -> Out {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_within(&mut child, limit, &what);
    let out = Out {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    log.add(&out.stdout);
    log.add(&out.stderr);
    assert_no_panic(&out);
    out
}

/// A panic is never an acceptable answer, whatever the input.
pub fn assert_no_panic(out: &Out) {
    assert!(
        out.code != Some(101) && !out.stderr.contains("panicked at"),
        "pps panicked:\n{}",
        out.all()
    );
}

/// Every line pps printed (and every URL a mock received) during a scenario, for the
/// secret check.
#[derive(Debug, Default, Clone)]
pub struct Transcript(Arc<Mutex<Vec<String>>>);

impl Transcript {
    pub fn add(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_owned());
    }

    /// Number of bytes checked (for the summary line).
    pub fn bytes(&self) -> usize {
        self.0.lock().unwrap().iter().map(String::len).sum()
    }

    /// Fails when any secret appears anywhere in what was recorded; returns the number
    /// of lines checked.
    pub fn assert_no_secrets(&self) -> usize {
        let all = self.0.lock().unwrap();
        let mut lines = 0;
        for text in all.iter() {
            for line in text.lines() {
                lines += 1;
                for s in SECRETS {
                    assert!(!line.contains(s), "a secret leaked: {line}");
                }
            }
        }
        lines
    }
}

/// Polls `cond` every 20 ms until it holds; false when `limit` passed first.
pub fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a scan of `scan` covers a change at `change`: the same path or a folder
/// above it, on whole components.
pub fn covers(scan: &str, change: &str) -> bool {
    change == scan
        || (change.starts_with(scan) && change.as_bytes().get(scan.len()) == Some(&b'/'))
        || scan == "/"
}

/// The kind of media server a [`Media`] mock stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plex,
    Emby,
    Jellyfin,
}

/// One scan request a mock media server received: for Plex one refresh (its `path`
/// query), for Emby/Jellyfin one entry of `Updates`.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    /// `Created`/`Modified`/`Deleted` for Emby and Jellyfin, empty for Plex.
    pub update: String,
    pub accepted: bool,
}

#[derive(Debug)]
struct MediaState {
    kind: Kind,
    locations: Vec<String>,
    down: AtomicBool,
    /// Answers 503 to scan requests only (libraries still listed).
    scans_down: AtomicBool,
    received: Mutex<Vec<Received>>,
    unauthorized: Mutex<usize>,
    /// Requests of any kind answered 503 while down.
    down_answers: Mutex<usize>,
    urls: Transcript,
}

#[derive(Debug, Clone)]
struct Responder(Arc<MediaState>);

impl Respond for Responder {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let s = &self.0;
        s.urls.add(r.url.as_str());
        for (k, v) in &r.headers {
            // Every header value is checked too, except the one auth header the
            // protocol requires (checked for its exact value below).
            let k = k.as_str();
            if k != "x-plex-token" && k != "x-emby-token" && k != "authorization" {
                s.urls.add(v.to_str().unwrap_or(""));
            }
        }
        let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
        let authed = match s.kind {
            Kind::Plex => header("x-plex-token") == Some(PLEX_TOKEN),
            Kind::Emby => header("x-emby-token") == Some(EMBY_KEY),
            Kind::Jellyfin => {
                header("authorization").map(str::to_owned)
                    == Some(format!("MediaBrowser Token=\"{JELLYFIN_KEY}\""))
            }
        };
        if !authed {
            *s.unauthorized.lock().unwrap() += 1;
            return ResponseTemplate::new(401);
        }
        let down = s.down.load(Ordering::SeqCst);
        let scans_down = s.scans_down.load(Ordering::SeqCst);
        if down {
            *s.down_answers.lock().unwrap() += 1;
        }
        let path = r.url.path();
        let method = r.method.as_str();
        let is_scan = match s.kind {
            Kind::Plex => method == "GET" && path == "/library/sections/1/refresh",
            _ => method == "POST" && path == "/Library/Media/Updated",
        };
        if is_scan {
            let down = down || scans_down;
            if scans_down {
                *s.down_answers.lock().unwrap() += 1;
            }
            let at = Instant::now();
            let mut got = s.received.lock().unwrap();
            match s.kind {
                Kind::Plex => {
                    let p = r
                        .url
                        .query_pairs()
                        .find(|(k, _)| k == "path")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    got.push(Received {
                        at,
                        path: p,
                        update: String::new(),
                        accepted: !down,
                    });
                }
                _ => {
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    for u in v["Updates"].as_array().cloned().unwrap_or_default() {
                        got.push(Received {
                            at,
                            path: u["Path"].as_str().unwrap_or_default().to_owned(),
                            update: u["UpdateType"].as_str().unwrap_or_default().to_owned(),
                            accepted: !down,
                        });
                    }
                }
            }
            return if down {
                ResponseTemplate::new(503)
            } else if s.kind == Kind::Plex {
                ResponseTemplate::new(200)
            } else {
                ResponseTemplate::new(204)
            };
        }
        if down {
            return ResponseTemplate::new(503);
        }
        match (s.kind, path) {
            (Kind::Plex, "/library/sections") => {
                let locs: Vec<Value> = s
                    .locations
                    .iter()
                    .enumerate()
                    .map(|(i, p)| json!({"id": i + 1, "path": p}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({
                    "MediaContainer": {"Directory": [
                        {"key": "1", "title": "Media", "type": "show", "Location": locs}
                    ]}
                }))
            }
            (Kind::Plex, "/") => ResponseTemplate::new(200).set_body_json(json!({
                "MediaContainer": {"friendlyName": "mock", "version": "1.41.0"}
            })),
            (_, "/Library/VirtualFolders") => ResponseTemplate::new(200).set_body_json(json!([
                {"Name": "Media", "Locations": s.locations, "CollectionType": "tvshows", "ItemId": "1"}
            ])),
            (_, "/System/Info") | (_, "/System/Info/Public") => ResponseTemplate::new(200)
                .set_body_json(json!({"ServerName": "mock", "Version": "10.9.0", "Id": "x"})),
            _ => ResponseTemplate::new(404),
        }
    }
}

/// A mock Plex, Emby or Jellyfin over loopback with one library at `locations`.
#[derive(Debug)]
pub struct Media {
    pub server: MockServer,
    state: Arc<MediaState>,
}

impl Media {
    pub async fn start(kind: Kind, locations: &[&str], urls: &Transcript) -> Media {
        Self::start_on(kind, locations, urls, None).await
    }

    /// Like [`start`](Self::start), on a given listener (to come back on the same port).
    pub async fn start_on(
        kind: Kind,
        locations: &[&str],
        urls: &Transcript,
        listener: Option<std::net::TcpListener>,
    ) -> Media {
        let server = match listener {
            Some(l) => MockServer::builder().listener(l).start().await,
            None => MockServer::start().await,
        };
        let state = Arc::new(MediaState {
            kind,
            locations: locations.iter().map(|s| (*s).to_owned()).collect(),
            down: AtomicBool::new(false),
            scans_down: AtomicBool::new(false),
            received: Mutex::new(Vec::new()),
            unauthorized: Mutex::new(0),
            down_answers: Mutex::new(0),
            urls: urls.clone(),
        });
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        Media { server, state }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    /// Answers 503 to everything while down.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Answers 503 to scan requests only while set (the server lists its libraries).
    pub fn set_scans_down(&self, down: bool) {
        self.state.scans_down.store(down, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }

    /// Requests of any kind (library lists, scans) answered 503 while down.
    pub fn refused(&self) -> usize {
        *self.state.down_answers.lock().unwrap()
    }

    /// Requests that did not carry the right credentials (must stay 0).
    pub fn unauthorized(&self) -> usize {
        *self.state.unauthorized.lock().unwrap()
    }
}

/// A change the test made: when it was done, the path it touched (as the media server
/// sees it), and what it was.
#[derive(Debug, Clone)]
pub struct Made {
    pub at: Instant,
    pub path: String,
    pub what: &'static str,
}

/// The changes no accepted scan covers: a scan covers a change when it was accepted
/// after the change was made and its path is the change's path or a folder above it.
pub fn uncovered<'a>(made: &'a [Made], accepted: &[Received]) -> Vec<&'a Made> {
    made.iter()
        .filter(|m| {
            !accepted
                .iter()
                .any(|r| r.at > m.at && covers(&r.path, &m.path))
        })
        .collect()
}

/// Redundant deliveries: an accepted (path, update) accepted again although no change
/// under that path was made since the earlier acceptance. An upper bound on duplicates:
/// it also counts a change made just before one delivery and found by the next listing.
pub fn redundant(made: &[Made], accepted: &[Received]) -> usize {
    let mut n = 0;
    for (i, r) in accepted.iter().enumerate() {
        let earlier = accepted[..i]
            .iter()
            .rev()
            .find(|e| e.path == r.path && e.update == r.update);
        if let Some(e) = earlier
            && !made
                .iter()
                .any(|m| m.at > e.at && m.at < r.at && covers(&r.path, &m.path))
        {
            n += 1;
        }
    }
    n
}

/// Distinct paths among accepted scans.
pub fn distinct(accepted: &[Received]) -> usize {
    accepted
        .iter()
        .map(|r| (&r.path, &r.update))
        .collect::<BTreeSet<_>>()
        .len()
}

/// A small deterministic generator (xorshift), seeded per test so runs reproduce.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

/// The seed of a randomised scenario: `PPS_SEED` when set, else a fixed one.
pub fn seed(default: u64) -> u64 {
    std::env::var("PPS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The one summary line each scenario prints (visible with `--nocapture`).
pub fn summary(scenario: &str, tried: &str, found: &str) {
    println!("[{scenario}] tried: {tried}; found: {found}");
}

/// `pps status --json` run with `c` (a [`pps`] command with its config): pending and
/// parked scans per target.
pub fn pending(mut c: Command, log: &Transcript) -> Vec<(String, u64, u64)> {
    c.args(["status", "--json"]);
    let out = run(c, Duration::from_secs(60), log);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_owned(),
                t["pending"].as_u64().unwrap(),
                t["parked"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Sends SIGTERM to a child.
pub fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// A tree as folder -> child names (folders end in `/`), for comparing the store with
/// the truth.
pub type Listing = std::collections::BTreeMap<String, BTreeSet<String>>;

/// Every folder the store holds for `(source, root)`, with its stored child names.
/// Opens the store file directly; only while no pps process runs.
pub fn stored(db: &Path, source: &str, root: &str) -> Listing {
    use pps_core::MtimeStore;
    let store = pps_core::sqlite::SqliteStore::open(db).unwrap();
    let scope = store.scope(source, root).unwrap();
    let mut out = Listing::new();
    for path in store.fingerprints(scope).unwrap().into_keys() {
        let rec = store.folder(scope, &path).unwrap().unwrap();
        let names = pps_core::listing::decode(&rec.listing)
            .unwrap()
            .into_iter()
            .map(|e| {
                if e.is_dir() {
                    format!("{}/", e.name)
                } else {
                    e.name
                }
            })
            .collect();
        out.insert(path, names);
    }
    out
}

/// Counts of changes made by kind, for the summary.
pub fn by_kind(made: &[Made]) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for m in made {
        *counts.entry(m.what).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
