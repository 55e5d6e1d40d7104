//! What a new user meets in the first hour (issue 13), each as the CLI run as a process
//! against real folders, the mock cd2 over gRPC and wiremock media servers.

use pps_clouddrive::mock::{MockServer, MockTree};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer as Http, ResponseTemplate};

const CD2_TOKEN: &str = "cd2-first-hour-token";
const PLEX_TOKEN: &str = "plex-first-hour-token";
const EMBY_KEY: &str = "emby-first-hour-key";

fn pps(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PPS_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir)
        .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
        .env("PPS_TARGETS_PLEX_TOKEN", PLEX_TOKEN)
        .env("PPS_TARGETS_EMBY_API_KEY", EMBY_KEY);
    c
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("panicked"), "{all}");
    for secret in [CD2_TOKEN, PLEX_TOKEN, EMBY_KEY] {
        assert!(!all.contains(secret), "a secret leaked: {all}");
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A Plex whose TV section's root is `/mnt/115/电视`, and an Emby with the same library.
async fn servers() -> (Http, Http) {
    let plex = Http::start().await;
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .and(header("X-Plex-Token", PLEX_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MediaContainer": {"Directory": [
                {"key": "1", "title": "TV", "type": "show", "Location": [{"id": 1, "path": "/mnt/115/电视"}]}
            ]}
        })))
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .and(header("X-Plex-Token", PLEX_TOKEN))
        .respond_with(ResponseTemplate::new(200))
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(header("X-Plex-Token", PLEX_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MediaContainer": {"friendlyName": "nas", "version": "1.41.0"}
        })))
        .mount(&plex)
        .await;
    // Anything else (a wrong token) is refused, as Plex does.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(&plex)
        .await;
    let emby = Http::start().await;
    Mock::given(method("GET"))
        .and(path("/System/Info"))
        .and(header("X-Emby-Token", EMBY_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ServerName": "nas", "Version": "4.8", "ProductName": "Emby Server"
        })))
        .mount(&emby)
        .await;
    Mock::given(method("GET"))
        .and(path("/Library/VirtualFolders"))
        .and(header("X-Emby-Token", EMBY_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"Name": "TV", "ItemId": "9", "Locations": ["/mnt/115/电视"]}
        ])))
        .mount(&emby)
        .await;
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .and(header("X-Emby-Token", EMBY_KEY))
        .respond_with(ResponseTemplate::new(204))
        .mount(&emby)
        .await;
    (plex, emby)
}

fn cd2_config(dir: &Path, cd2: &str, plex: &str, emby: &str, extra: &str) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "pps.db"

[sources.cd2]
kind = "clouddrive2"
url = "{cd2}"
max_queries_per_second = 200
burst = 20
retries = 0
{extra}
[targets.plex]
kind = "plex"
url = "{plex}"
path_mapping = [{{ from = "/115", to = "/mnt/115" }}]
pacing = "0s"

[targets.emby]
kind = "emby"
url = "{emby}"
scan_files = false
path_mapping = [{{ from = "/115", to = "/mnt/115" }}]

[[watch]]
source = "cd2"
path = "/115/电视"
"#
        ),
    )
    .unwrap();
    config
}

fn show_tree(shows: usize) -> MockTree {
    let mut tree = MockTree::new();
    for i in 0..shows {
        tree.write_file(&format!("/115/电视/Show {i}/S01/e1.mkv"), 10);
    }
    tree
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_deleted_from_a_section_root_reaches_plex_and_emby() {
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(show_tree(4))
        .await
        .unwrap();
    let (plex, emby) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri(), "");
    let out = run(pps(dir.path()).arg("-c").arg(&config).arg("index"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    cd2.remove("/115/电视/Show 3");
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["once", "--full"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let refreshed: Vec<String> = plex
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/library/sections/1/refresh")
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "path")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(
        refreshed,
        ["/mnt/115/电视/Show 3"],
        "the show folder itself, never the section"
    );
    let bodies: Vec<Value> = emby
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/Library/Media/Updated")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [json!({"Updates": [{"Path": "/mnt/115/电视/Show 3", "UpdateType": "Deleted"}]})]
    );
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["status", "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["parked"] == 0),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_reindex_keeps_the_old_baseline() {
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(show_tree(30))
        .await
        .unwrap();
    let (plex, emby) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri(), "");
    let out = run(pps(dir.path()).arg("-c").arg(&config).arg("index"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Changes land while nobody is looking.
    cd2.write_file("/115/电视/Show 0/S01/e2.mkv", 10);
    cd2.write_file("/115/电视/Show 29/S01/e2.mkv", 10);

    // A slow re-index, stopped with Ctrl-C once it has listed (and committed) a part.
    cd2.faults(|f| f.latency = Duration::from_millis(40));
    let mut child = pps(dir.path())
        .arg("-c")
        .arg(&config)
        .arg("index")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cd2.calls(pps_clouddrive::mock::Method::GetSubFiles) < 62 + 20 {
        assert!(Instant::now() < deadline, "the re-index never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut err = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .lines()
        .for_each(|l| err.push_str(&(l.unwrap() + "\n")));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("previous baseline is kept whole"), "{err}");
    cd2.faults(|f| f.latency = Duration::ZERO);

    // The old baseline is whole, so the changes made before the re-index are found.
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["once", "--full"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sent = refreshes_of(&plex).await;
    assert_eq!(
        sent,
        ["/mnt/115/电视/Show 0/S01", "/mnt/115/电视/Show 29/S01"],
        "{}",
        text(&out.stderr)
    );
}

async fn refreshes_of(plex: &Http) -> Vec<String> {
    let mut v: Vec<String> = plex
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/refresh"))
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "path")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_that_failed_during_index_are_not_scanned_as_created_later() {
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(show_tree(14))
        .await
        .unwrap();
    let (plex, emby) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri(), "");
    // The root lists, then cd2 goes away: all 14 show folders fail.
    cd2.faults(|f| {
        f.unavailable_after = 1;
        f.unavailable_next = 14;
    });
    let out = run(pps(dir.path()).arg("-c").arg(&config).arg("index"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("14 folders could not be listed"),
        "{}",
        text(&out.stderr)
    );
    // cd2 is back; nothing changed, so nothing is scanned, however often pps looks.
    for _ in 0..2 {
        let out = run(pps(dir.path())
            .arg("-c")
            .arg(&config)
            .args(["once", "--full"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    assert!(
        refreshes_of(&plex).await.is_empty(),
        "{:?}",
        refreshes_of(&plex).await
    );
    // And the folders are watched from now on.
    cd2.write_file("/115/电视/Show 5/S01/e2.mkv", 1);
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["once", "--full"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(refreshes_of(&plex).await, ["/mnt/115/电视/Show 5/S01"]);
}

fn watch_once(dir: &Path, watched: &str, extra: &[&str]) -> Output {
    run(pps(dir).args(["once", "--watch", watched]).args(extra))
}

#[test]
fn the_store_inside_the_watched_folder_is_never_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.mkv"), b"x").unwrap();
    // The README's first command, from inside the folder: the default store pps.db
    // lands in the watched folder.
    let out = watch_once(dir.path(), ".", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for _ in 0..3 {
        let out = watch_once(dir.path(), ".", &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(lines(&out).is_empty(), "{}", text(&out.stdout));
    }
    // Another file that happens to end in .db is a file like any other.
    std::fs::write(dir.path().join("library.db"), b"x").unwrap();
    let out = watch_once(dir.path(), ".", &[]);
    let got: Vec<String> = lines(&out)
        .iter()
        .map(|l| {
            l["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(got, ["library.db"]);
}

#[test]
fn a_second_writer_is_refused_and_readers_work_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    std::fs::write(media.join("a.mkv"), b"x").unwrap();
    let mut service = pps(dir.path())
        .args(["run", "--interval", "1s", "--watch", "media"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(service.stderr.take().unwrap()).lines();
    loop {
        let l = logs.next().expect("the service logs").unwrap();
        if l.contains("baseline recorded") {
            break;
        }
    }
    for args in [
        &["once", "--watch", "media"][..],
        &["run", "--watch", "media"][..],
    ] {
        let out = run(pps(dir.path()).args(args));
        assert_eq!(out.status.code(), Some(1), "{:?}", out);
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("is in use by pid {} (pps run)", service.id())),
            "{err}"
        );
    }
    let out = run(pps(dir.path()).args(["status", "--store", "pps.db"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 folder"),
        "{}",
        text(&out.stdout)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    assert_eq!(service.wait().unwrap().code(), Some(0));
}

#[test]
fn a_closed_stdout_ends_the_service_and_the_scan_stays_queued() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    std::fs::write(media.join("a.mkv"), b"x").unwrap();
    let out = watch_once(dir.path(), "media", &[]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(media.join("b.mkv"), b"x").unwrap();
    // `pps run ... | head -0`: the reader is gone before the first line.
    let mut child = pps(dir.path())
        .args(["run", "--interval", "1s", "--watch", "media"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let err = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "pps kept running with stdout closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut logged = String::new();
    std::io::Read::read_to_string(&mut { err }, &mut logged).unwrap();
    assert_eq!(status.code(), Some(141), "{logged}");
    assert!(logged.contains("stdout was closed"), "{logged}");
    assert!(
        logged.matches("Broken pipe").count() <= 1,
        "no retry loop on a closed pipe: {logged}"
    );
    let out = watch_once(dir.path(), "media", &[]);
    let got: Vec<&str> = lines(&out)
        .iter()
        .map(|l| l["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .map(|s| if s == "b.mkv" { "b.mkv" } else { "other" })
        .collect();
    assert_eq!(got, ["b.mkv"], "the scan waited in the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_plainly_what_is_wrong() {
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(show_tree(1))
        .await
        .unwrap();
    let (plex, emby) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri(), "");
    let check = |token: &str, plex_token: &str| {
        let out = run(pps(dir.path())
            .arg("-c")
            .arg(&config)
            .arg("check")
            .env("PPS_SOURCES_CD2_API_TOKEN", token)
            .env("PPS_TARGETS_PLEX_TOKEN", plex_token));
        (out.status.code(), text(&out.stdout))
    };
    let (code, shown) = check(CD2_TOKEN, PLEX_TOKEN);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("the token is accepted"), "{shown}");
    let (code, shown) = check("wrong-token", "wrong-plex");
    assert_eq!(code, Some(1));
    assert!(shown.contains("cd2 refused the API token"), "{shown}");
    assert!(!shown.contains("cd2 ready"), "{shown}");
    assert!(shown.contains("Plex refused the token"), "{shown}");
    assert!(!shown.contains("target unreachable"), "{shown}");
    assert!(
        !shown.contains("wrong-"),
        "a refused secret is not echoed: {shown}"
    );

    // Nothing on the port: said at once, without a round of retries.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let dead = cd2_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &plex.uri(),
        &emby.uri(),
        "",
    );
    let out = run(pps(dir.path()).arg("-c").arg(&dead).arg("check"));
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        shown.contains(&format!(
            "nothing listens on 127.0.0.1:{port}: is CloudDrive2 running"
        )),
        "{shown}"
    );
    // A web server (wiremock speaks HTTP/1) on the cd2 port.
    let web = cd2_config(dir.path(), &plex.uri(), &plex.uri(), &emby.uri(), "");
    let out = run(pps(dir.path()).arg("-c").arg(&web).arg("check"));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("does not speak CloudDrive2's gRPC"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_scans_have_a_way_out_and_status_shows_why() {
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(show_tree(1))
        .await
        .unwrap();
    let (_, emby) = servers().await;
    // A Plex that has no library for the watch yet.
    let plex = Http::start().await;
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"MediaContainer": {"Directory": []}})),
        )
        .up_to_n_times(3)
        .mount(&plex)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri(), "");
    let pps_c = |args: &[&str]| run(pps(dir.path()).arg("-c").arg(&config).args(args));
    assert_eq!(pps_c(&["index"]).status.code(), Some(0));
    cd2.write_file("/115/电视/Show 0/S01/e2.mkv", 1);
    let out = pps_c(&["once", "--full"]);
    assert_eq!(out.status.code(), Some(1), "parked: {}", text(&out.stderr));
    let out = pps_c(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plex_status = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "plex")
        .unwrap()
        .clone();
    assert_eq!(plex_status["parked"], 1, "{v}");
    let reason = plex_status["parked_scans"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no library"), "{reason}");
    let shown = text(&pps_c(&["status"]).stdout);
    assert!(shown.contains("`pps retry plex`"), "{shown}");

    // The library is added in Plex: `pps retry` puts the scan back, and it is sent.
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MediaContainer": {"Directory": [
                {"key": "1", "title": "TV", "type": "show", "Location": [{"id": 1, "path": "/mnt/115/电视"}]}
            ]}
        })))
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&plex)
        .await;
    let out = pps_c(&["retry", "plex"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "1 parked scan queued again for plex"
    );
    // A failed attempt is shown with its error, attempts and next try.
    let out = pps_c(&["once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = text(&pps_c(&["status"]).stdout);
    assert!(
        shown.contains("failing /115/电视/Show 0/S01/e2.mkv (created)")
            && shown.contains("after 1 attempt")
            && shown.contains("next try"),
        "{shown}"
    );
    let out = pps_c(&["once"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        refreshes_of(&plex).await,
        ["/mnt/115/电视/Show 0/S01", "/mnt/115/电视/Show 0/S01"]
    );

    // drop gives scans up, on whole components; nothing to drop is exit 1.
    cd2.write_file("/115/电视/Show 0/S01/e3.mkv", 1);
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["once", "--full"])
        .env("PPS_TARGETS_PLEX_URL", "http://127.0.0.1:9"));
    assert_eq!(out.status.code(), Some(1));
    let out = pps_c(&["drop", "plex", "cd2:/115/电视/Show 0"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "dropped 1 scan of plex at and under /115/电视/Show 0"
    );
    let out = pps_c(&["drop", "plex"]);
    assert_eq!(out.status.code(), Some(1));
    let out = pps_c(&["drop", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no target named `nosuch`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn watch_mode_state_is_read_with_store_and_a_new_user_is_told_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("Show")).unwrap();
    std::fs::write(media.join("Show/e1.mkv"), b"x").unwrap();
    // Plain `pps run` with no config says how to start.
    let out = run(pps(dir.path()).arg("run"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("pps init") && err.contains("pps run --watch DIR"),
        "{err}"
    );
    // status never creates a store.
    let out = run(pps(dir.path()).args(["status", "--store", "pps.db"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no store yet"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !dir.path().join("pps.db").exists(),
        "status created a store"
    );
    // --interval below a second is refused.
    let out = run(pps(dir.path()).args(["run", "--watch", "media", "--interval", "0s"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("shortest is 1s"),
        "{}",
        text(&out.stderr)
    );

    assert_eq!(watch_once(dir.path(), "media", &[]).status.code(), Some(0));
    let root = media.canonicalize().unwrap();
    let root = root.to_str().unwrap();
    let out = run(pps(dir.path()).args(["status", "--store", "pps.db"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("watch local:{root}: 2 folders")),
        "{}",
        text(&out.stdout)
    );
    std::fs::write(media.join("Show/e2.mkv"), b"x").unwrap();
    let out = run(pps(dir.path()).args(["ls", "--store", "pps.db", &format!("local:{root}/Show")]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.starts_with("new") && l.ends_with("e2.mkv")),
        "{}",
        text(&out.stdout)
    );
    let out = run(pps(dir.path()).args(["forget", "--store", "pps.db", &format!("{root}/Show")]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("forgot 1 folder"),
        "{}",
        text(&out.stdout)
    );
    // Nothing stored there (any more): said, exit 1.
    let out = run(pps(dir.path()).args(["forget", "--store", "pps.db", &format!("{root}/Show")]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nothing stored under"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn small_things_a_new_user_reads() {
    let dir = tempfile::tempdir().unwrap();
    // init twice: the second says the file exists, not "config invalid".
    assert_eq!(run(pps(dir.path()).arg("init")).status.code(), Some(0));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("pps.toml"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the config can hold tokens");
    let out = run(pps(dir.path()).arg("init"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("pps.toml exists; not overwritten"), "{err}");
    assert!(
        !err.contains("config invalid") && !err.contains("(permanent)"),
        "{err}"
    );

    // An empty config: check and run say there is nothing to watch, exit 1 or 2.
    std::fs::write(dir.path().join("empty.toml"), "").unwrap();
    for cmd in ["check", "run", "once"] {
        let out = run(pps(dir.path()).args(["-c", "empty.toml", cmd]));
        assert_ne!(out.status.code(), Some(0), "{cmd}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(all.contains("has no [[watch]]"), "{cmd}: {all}");
    }

    // A typo in an environment variable names the variable, not line 1 of the file.
    std::fs::write(
        dir.path().join("plex.toml"),
        "[targets.plex]\nkind = \"plex\"\nurl = \"http://127.0.0.1:32400\"\ntoken = \"x\"\n",
    )
    .unwrap();
    let out = run(pps(dir.path())
        .args(["-c", "plex.toml", "check"])
        .env("PPS_TARGETS_PLEX_TOKN", "x"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("environment variable PPS_TARGETS_PLEX_TOKN"),
        "{err}"
    );
    assert!(!err.contains("line: 1"), "{err}");
    // A secret written as a bare number is never echoed.
    std::fs::write(
        dir.path().join("num.toml"),
        "[targets.plex]\nkind = \"plex\"\nurl = \"http://127.0.0.1:32400\"\ntoken = 424242424242\n",
    )
    .unwrap();
    let out = run(pps(dir.path())
        .args(["-c", "num.toml", "check"])
        .env_remove("PPS_TARGETS_PLEX_TOKEN"));
    let err = text(&out.stderr);
    assert!(
        err.contains("must be a string") && !err.contains("424242424242"),
        "{err}"
    );

    // walk takes a relative local folder, as --watch does; words are in the plural
    // only when they should be, sizes in sensible units.
    std::fs::create_dir_all(dir.path().join("media/A")).unwrap();
    std::fs::write(dir.path().join("media/A/x.mkv"), b"12345").unwrap();
    let out = run(pps(dir.path()).args(["walk", "local:media"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("2 folders, 1 file, 5 B"), "{shown}");
    assert!(
        !shown.contains("0.00 GB") && !shown.contains("1 entries"),
        "{shown}"
    );
}

#[test]
fn logs_say_what_pps_did_and_not_what_http2_did() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("A")).unwrap();
    std::fs::write(
        media
            .join("A")
            .join(std::ffi::OsStr::from_bytes(b"bad\xff.mkv")),
        b"x",
    )
    .unwrap();
    let mut child = pps(dir.path())
        .args(["-v", "run", "--interval", "1s", "--watch", "media"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut passes = 0;
    while passes < 3 {
        let l = logs.next().expect("logs").unwrap();
        if l.contains("pass: no change") || l.contains("baseline recorded") {
            passes += 1;
        }
        seen.push(l);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let all = seen.join("\n");
    assert!(
        all.contains("listed") && all.contains("/media/A"),
        "which folders were listed: {all}"
    );
    assert_eq!(all.matches("not UTF-8").count(), 1, "said once: {all}");
    assert!(!all.contains("h2::") && !all.contains("hyper"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_latency_is_the_calls_own_time_and_limiter_waits_are_apart() {
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(show_tree(2))
        .await
        .unwrap();
    let (plex, emby) = servers().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri(), "");
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("burst = 20", "burst = 1");
    std::fs::write(&config, toml).unwrap();
    // 5 folders at 5 calls/s with no burst and two in flight: the walk mostly waits
    // for the limiter, while the mock answers at once.
    let out = run(pps(dir.path()).arg("-c").arg(&config).args([
        "walk",
        "cd2:/115/电视",
        "--max-queries-per-second",
        "5",
        "--concurrency",
        "2",
        "--json",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p50 = v["latency_ms"]["p50"].as_f64().unwrap();
    let waited = v["rate_limit_wait_s"].as_f64().unwrap();
    assert!(waited >= 0.3, "{v}");
    assert!(
        p50 * 4.0 < waited * 1000.0,
        "p50 {p50} ms is the call, not the wait: {v}"
    );
    let out = run(pps(dir.path()).arg("-c").arg(&config).args([
        "walk",
        "cd2:/115/电视",
        "--max-queries-per-second",
        "5",
    ]));
    assert!(
        text(&out.stdout).contains("waiting for the rate limit"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_when_a_watch_lands_in_no_library() {
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(show_tree(1))
        .await
        .unwrap();
    let (_, emby) = servers().await;
    // A Plex whose only library is the films: the TV watch maps into none of it.
    let plex = Http::start().await;
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MediaContainer": {"Directory": [
                {"key": "2", "title": "Films", "type": "movie", "Location": [{"id": 2, "path": "/mnt/115/电影"}]}
            ]}
        })))
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MediaContainer": {"friendlyName": "nas", "version": "1.41.0"}
        })))
        .mount(&plex)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri(), "");
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .arg("check")
        .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
        .env("PPS_TARGETS_PLEX_TOKEN", PLEX_TOKEN));
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("plex: WARNING: /mnt/115/电视 is in no library of plex"),
        "{shown}"
    );
}
