//! Issue 25, live: the release `pps` binary as a process, watching a local folder, sending
//! to stand-ins of Plex, Emby and Jellyfin (with the targeted-scans plugin) that model
//! indexing, and confirming what each indexed. The figure users care about: the time
//! from a change being found to its item being in each library, and what the checks
//! cost in requests.
//!
//! The stand-ins answer as the servers document (see `shared/docs/media-servers.md`):
//! - Plex queues a path scan and indexes the folder's files `PLEX_DELAY` later; its
//!   section lists them with `Media[].Part[].file`.
//! - Emby indexes a reported path `EMBY_DELAY` after `Media/Updated`; `/Items` with
//!   `ParentId` lists it.
//! - Jellyfin's plugin scans synchronously: `/Library/ScanPaths` answers `Created` with
//!   an item id for every path that exists.
//!
//! Six new episodes land two at a time, 20 s apart. Run:
//! `cargo build --release --bin pps && cargo run --release -p pps-benches --bin confirm_latency [-- PATH_TO_PPS]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PLEX_DELAY: Duration = Duration::from_secs(8);
const EMBY_DELAY: Duration = Duration::from_secs(3);

/// Scans received: (when, path).
type Scans = Arc<Mutex<Vec<(Instant, String)>>>;

/// Plex: a refresh of a folder indexes the files in it `PLEX_DELAY` later.
struct PlexAll(Scans);

impl Respond for PlexAll {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let scans = self.0.lock().unwrap().clone();
        let mut items = Vec::new();
        for (at, folder) in scans {
            if at.elapsed() < PLEX_DELAY {
                continue;
            }
            for e in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
                let file = e.path().display().to_string();
                items.push(serde_json::json!({
                    "ratingKey": items.len().to_string(), "type": "episode", "title": "Ep",
                    "grandparentTitle": "Show", "parentIndex": 1, "index": items.len() + 1,
                    "Media": [{"Part": [{"file": file}]}]}));
            }
        }
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"MediaContainer": {"Metadata": items}}))
    }
}

struct Record(Scans, fn(&Request) -> Vec<String>, ResponseTemplate);

impl Respond for Record {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let now = Instant::now();
        self.0
            .lock()
            .unwrap()
            .extend((self.1)(r).into_iter().map(|p| (now, p)));
        self.2.clone()
    }
}

/// Emby: a reported file is an item `EMBY_DELAY` later.
struct EmbyItems(Scans);

impl Respond for EmbyItems {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let items: Vec<_> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| at.elapsed() >= EMBY_DELAY)
            .enumerate()
            .map(|(i, (_, p))| serde_json::json!({"Id": format!("e{i}"), "Type": "Episode", "Name": "Ep", "Path": p, "SeriesName": "Show", "ParentIndexNumber": 1, "IndexNumber": i + 1}))
            .collect();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"Items": items}))
    }
}

/// Jellyfin's plugin: `Created` with an id for every path that exists.
struct ScanPaths;

impl Respond for ScanPaths {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let results: Vec<_> = body["Paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .enumerate()
            .map(|(i, p)| {
                if Path::new(p).exists() {
                    serde_json::json!({"ItemId": format!("j{i}"), "ItemName": "Ep", "Status": "Created", "Path": p})
                } else {
                    serde_json::json!({"ItemId": "", "Status": "PathNotFound", "Path": p})
                }
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"Results": results}))
    }
}

fn paths_of_updates(r: &Request) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["Updates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["Path"].as_str().map(str::to_owned))
        .collect()
}

fn plex_folder(r: &Request) -> Vec<String> {
    r.url
        .query_pairs()
        .filter(|(k, _)| k == "path")
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn stand_ins(library: &str) -> (MockServer, MockServer, MockServer) {
    let (plex, emby, jelly) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    let plex_scans: Scans = Arc::default();
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"MediaContainer": {"Directory": [
            {"key": "1", "title": "TV", "type": "show", "refreshing": false, "Location": [{"id": 1, "path": library}]}]}})))
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .respond_with(Record(
            plex_scans.clone(),
            plex_folder,
            ResponseTemplate::new(200),
        ))
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/all"))
        .respond_with(PlexAll(plex_scans))
        .mount(&plex)
        .await;
    let folders = serde_json::json!([{"Name": "TV", "ItemId": "lib1", "Locations": [library]}]);
    for s in [&emby, &jelly] {
        Mock::given(method("GET"))
            .and(path("/Library/VirtualFolders"))
            .respond_with(ResponseTemplate::new(200).set_body_json(folders.clone()))
            .mount(s)
            .await;
    }
    let emby_scans: Scans = Arc::default();
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .respond_with(Record(
            emby_scans.clone(),
            paths_of_updates,
            ResponseTemplate::new(204),
        ))
        .mount(&emby)
        .await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .respond_with(EmbyItems(emby_scans))
        .mount(&emby)
        .await;
    Mock::given(method("GET"))
        .and(path("/Plugins"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!([{"Name": "TargetedScan", "Status": "Active"}])),
        )
        .mount(&jelly)
        .await;
    Mock::given(method("POST"))
        .and(path("/Library/ScanPaths"))
        .respond_with(ScanPaths)
        .mount(&jelly)
        .await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"Items": []})))
        .mount(&jelly)
        .await;
    (plex, emby, jelly)
}

async fn count(server: &MockServer, p: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pps: PathBuf = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/release/pps"), PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("TV");
    let season = library.join("Show/S01");
    std::fs::create_dir_all(&season).unwrap();
    std::fs::write(season.join("e01.mkv"), b"x").unwrap();
    let (plex, emby, jelly) = stand_ins(&library.display().to_string()).await;
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"pps.db\"\n[sources.disk]\nkind = \"local\"\n\
             [targets.plex]\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"bench\"\npacing = \"0s\"\n\
             [targets.emby]\nkind = \"emby\"\nurl = \"{}\"\napi_key = \"bench\"\n\
             [targets.jellyfin]\nkind = \"jellyfin\"\nurl = \"{}\"\napi_key = \"bench\"\n\
             [[watch]]\nsource = \"disk\"\npath = \"{}\"\ninterval = \"2s\"\n",
            plex.uri(),
            emby.uri(),
            jelly.uri(),
            library.join("Show").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(&pps)
            .arg("-c")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["index"]).status.success());
    let mut child = Command::new(&pps)
        .arg("-c")
        .arg(&config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    for batch in 0..3 {
        for k in 0..2 {
            let n = 2 + batch * 2 + k;
            std::fs::write(season.join(format!("e{n:02}.mkv")), b"x").unwrap();
        }
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let elapsed = started.elapsed();

    let out = run(&[
        "history",
        "--json",
        "--event",
        "indexed,stuck",
        "--limit",
        "1000",
    ]);
    let mut took: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut stuck = 0;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
        if v["event"] == "stuck" {
            stuck += 1;
            continue;
        }
        if let (Some(t), Some(s)) = (v["target"].as_str(), v["took_s"].as_u64()) {
            took.entry(t.to_owned()).or_default().push(s);
        }
    }
    println!(
        "6 episodes, 2 at a time every 20 s, {:.0} s of `pps run`; stuck: {stuck}",
        elapsed.as_secs_f64()
    );
    println!("| target | indexed | change → library, median | worst | lookups | scans sent |");
    println!("|---|---|---|---|---|---|");
    let lookups = [
        (
            "plex",
            count(&plex, "/library/sections/1/all").await,
            count(&plex, "/library/sections/1/refresh").await,
        ),
        (
            "emby",
            count(&emby, "/Items").await,
            count(&emby, "/Library/Media/Updated").await,
        ),
        (
            "jellyfin",
            count(&jelly, "/Items").await,
            count(&jelly, "/Library/ScanPaths").await,
        ),
    ];
    for (t, looked, sent) in lookups {
        let mut s = took.remove(t).unwrap_or_default();
        s.sort_unstable();
        let (median, worst) = match s.as_slice() {
            [] => (0, 0),
            _ => (s[(s.len() - 1) / 2], s[s.len() - 1]),
        };
        println!(
            "| {t} | {} | {median} s | {worst} s | {looked} | {sent} |",
            s.len()
        );
    }
}
