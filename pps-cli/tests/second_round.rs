//! What a new user hit in the CLI, second round (issue 30), each as the CLI run as a
//! process against real folders, real stores, the mock cd2 and wiremock servers.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CD2_TOKEN: &str = "cd2-second-round-token";

fn pps(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PPS_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir)
        .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN);
    c
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("panicked"), "{all}");
    assert!(!all.contains(CD2_TOKEN), "a secret leaked: {all}");
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

/// A config with one cd2 source at `url` and the stdout target.
fn cd2_config(dir: &Path, url: &str) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.cd2]
kind = "clouddrive2"
url = "{url}"
retries = 0

[targets.out]
kind = "stdout"

[[watch]]
source = "cd2"
path = "/115/电视"
"#
        ),
    )
    .unwrap();
    config
}

/// A plain HTTP/1 web server (as `python3 -m http.server` answers): whatever arrives,
/// a 400.
async fn plain_web_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.0 400 Bad request\r\nContent-Type: text/html\r\n\r\n<html>bad request</html>\n",
                    )
                    .await;
                // Keep the connection until the client closes it, as a real server
                // lingers: a close racing the answer would test the race, not the words.
                while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

fn check(dir: &Path, config: &Path) -> (Option<i32>, String) {
    let out = run(pps(dir).arg("-c").arg(config).arg("check"));
    (
        out.status.code(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_web_server_https_to_plain_http_and_an_unknown_host() {
    let dir = tempfile::tempdir().unwrap();
    let web = plain_web_server().await;

    let config = cd2_config(dir.path(), &format!("http://{web}"));
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains(&format!("{web} is not a gRPC server")),
        "{shown}"
    );
    assert!(!shown.contains("transport error"), "{shown}");

    let config = cd2_config(dir.path(), &format!("https://{web}"));
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "{web} speaks plain HTTP, not HTTPS: write the url as http://{web}"
        )),
        "{shown}"
    );
    assert!(!shown.contains("InvalidContentType"), "{shown}");

    let config = cd2_config(dir.path(), "http://no-such-cd2.invalid:19798");
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("no such host: no-such-cd2.invalid"),
        "{shown}"
    );
    assert!(!shown.contains("dns error"), "{shown}");
}

#[test]
fn a_cd2_url_without_a_scheme_is_answered_with_its_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), "127.0.0.1:19798");
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("write e.g. http://127.0.0.1:19798"),
        "{shown}"
    );
    assert!(
        !shown.contains("32400"),
        "no Plex port for a cd2 source: {shown}"
    );
    assert!(shown.contains("sources.cd2.url"), "{shown}");
}

/// A config with a local source `nas` watching `media` under `dir`, with `targets`.
fn local_config(dir: &Path, targets: &[&str], watch_extra: &str) -> PathBuf {
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    let mut toml = "[sources.nas]\nkind = \"local\"\n\n".to_owned();
    for t in targets {
        toml.push_str(&format!("[targets.\"{t}\"]\nkind = \"stdout\"\n\n"));
    }
    toml.push_str(&format!(
        "[[watch]]\nsource = \"nas\"\npath = \"{}\"\n{watch_extra}\n",
        media.display()
    ));
    let config = dir.join("pps.toml");
    std::fs::write(&config, toml).unwrap();
    config
}

#[test]
fn forget_of_a_path_no_watch_holds_exits_1_as_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &["tv"], "");
    let out = run(pps(dir.path()).arg("-c").arg(&config).arg("once"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["forget", "nas:/nowhere/at/all"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("nothing stored under nas:/nowhere/at/all"),
        "{err}"
    );
    // What is not a path at all stays a usage error.
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["forget", "nas:relative/x"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn walk_estimates_with_the_watch_s_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(
        dir.path(),
        &["tv"],
        "interval = \"1h\"\nmax_interval = \"2d\"",
    );
    std::fs::create_dir_all(dir.path().join("media/Show/S01")).unwrap();
    let root = format!("nas:{}", dir.path().join("media").display());
    let out = run(pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["walk", &root, "--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["calls_per_day"]["interval_s"], 3600, "{v}");
    assert_eq!(v["calls_per_day"]["max_interval_s"], 172_800, "{v}");
    // The options still win.
    let out = run(pps(dir.path()).arg("-c").arg(&config).args([
        "walk",
        &root,
        "--json",
        "--interval",
        "5m",
    ]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["calls_per_day"]["interval_s"], 300, "{v}");
    assert_eq!(v["calls_per_day"]["max_interval_s"], 172_800, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_says_its_rate_limit_wait_is_a_sum_over_listings_in_flight() {
    let mut tree = pps_clouddrive::mock::MockTree::new();
    tree.write_file("/115/电视/Show/S01/e1.mkv", 10);
    let cd2 = pps_clouddrive::mock::MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url());
    let out = run(pps(dir.path()).arg("-c").arg(&config).args([
        "walk",
        "cd2:/115/电视",
        "--max-queries-per-second",
        "50",
        "--concurrency",
        "2",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("waiting for the rate limit, summed over the 2 listings in flight at once"),
        "{shown}"
    );
}

/// The terminal column where `needle` starts in `line` (a CJK character takes two).
fn column(line: &str, needle: &str) -> usize {
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {line}"));
    unicode_width::UnicodeWidthStr::width(&line[..at])
}

#[test]
fn history_columns_line_up_whatever_the_target_names() {
    let dir = tempfile::tempdir().unwrap();
    for targets in [&["电视机顶盒", "tv"][..], &["tv"][..]] {
        let _ = std::fs::remove_dir_all(dir.path().join("media"));
        for f in ["pps.db", "pps.db-wal", "pps.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        let config = local_config(dir.path(), targets, "");
        let out = run(pps(dir.path()).arg("-c").arg(&config).arg("once"));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        std::fs::write(dir.path().join("media/a.mkv"), b"x").unwrap();
        let out = run(pps(dir.path())
            .arg("-c")
            .arg(&config)
            .args(["once", "--full"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let out = run(pps(dir.path()).arg("-c").arg(&config).arg("history"));
        let shown = text(&out.stdout);
        let rows: Vec<&str> = shown.lines().collect();
        assert_eq!(rows.len(), 1 + 1 + targets.len(), "{shown}");
        let header = column(rows[0], "path");
        for row in &rows[1..] {
            assert_eq!(column(row, "/"), header, "{shown}");
        }
    }
}

#[test]
fn the_stdout_line_has_the_readme_s_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(media.join("e2.mkv"), b"x").unwrap();
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    let line = text(&out.stdout);
    let keys: Vec<&str> = ["\"target\"", "\"path\"", "\"update\"", "\"is_dir\""]
        .into_iter()
        .filter(|k| line.contains(k))
        .collect();
    assert_eq!(keys.len(), 4, "{line}");
    let at: Vec<usize> = keys.iter().map(|k| line.find(k).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
    // The README shows the same order.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains(r#"{"target":"stdout","path":"/media/TV/Show/S01/e2.mkv","update":"created","is_dir":false}"#),
        "README"
    );
    // And the template and the README agree on the history's size.
    let template = std::process::Command::new(env!("CARGO_BIN_EXE_pps"))
        .current_dir(dir.path())
        .args(["init", "--config", "t.toml"])
        .output()
        .unwrap();
    assert!(template.status.success(), "{template:?}");
    let t = std::fs::read_to_string(dir.path().join("t.toml")).unwrap();
    assert!(t.contains("about 12 MB"), "{t}");
    assert!(readme.contains("about 12 MB"));
}

/// `pps history --json` of a `--watch` store: (event, file name) per line.
fn history_of(dir: &Path) -> Vec<(String, String)> {
    let out = run(pps(dir).args(["history", "--store", "pps.db", "--json"]));
    lines(&out)
        .iter()
        .map(|l| {
            (
                l["event"].as_str().unwrap_or_default().to_owned(),
                l["path"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Waits for `child` to end, failing the test if it is still running after a
/// generous bound (a liveness bound, not a measurement).
fn wait_ended(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn run_piped_into_head_ends_when_head_does_without_another_write() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut child = pps(dir.path())
        .args(["run", "--interval", "1s", "--watch", "media"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(media.join("a.mkv"), b"x").unwrap();
    // `head -1`: read one line, then go.
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("a.mkv"), "{first}");
    drop(reader);
    // Nothing changes any more: only the pipe can tell pps that its reader went.
    let status = wait_ended(&mut child, "pps kept running after its reader went away");
    assert_eq!(status.code(), Some(141));
    let history = history_of(dir.path());
    assert!(
        history.iter().all(|(e, _)| e != "retried"),
        "no write was tried after the reader went: {history:?}"
    );
}

#[test]
fn a_scan_that_found_the_pipe_closed_is_retried_once_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(media.join("b.mkv"), b"x").unwrap();
    // `| head -0`: the reader is gone before pps starts.
    let mut child = pps(dir.path())
        .args(["run", "--interval", "1s", "--watch", "media"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = wait_ended(&mut child, "pps kept running with stdout closed");
    assert_eq!(status.code(), Some(141));
    let retried: Vec<_> = history_of(dir.path())
        .into_iter()
        .filter(|(e, _)| e == "retried")
        .collect();
    assert!(retried.len() <= 1, "{retried:?}");
    // And the scan waited in the store.
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert!(text(&out.stdout).contains("b.mkv"), "{}", text(&out.stdout));
}

#[test]
fn a_watch_store_made_for_other_folders_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let (media, m2) = (dir.path().join("media"), dir.path().join("m2"));
    std::fs::create_dir(&media).unwrap();
    std::fs::create_dir(&m2).unwrap();
    let (media_abs, m2_abs) = (
        std::fs::canonicalize(&media).unwrap(),
        std::fs::canonicalize(&m2).unwrap(),
    );
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(media.join("x.mkv"), b"x").unwrap();
    // `pps run --watch media | head -0`: x.mkv stays queued in ./pps.db.
    let mut child = pps(dir.path())
        .args(["once", "--watch", "media"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(141));

    let out = run(pps(dir.path()).args(["once", "--watch", "m2"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("x.mkv"),
        "a scan of another folder was delivered: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "the store pps.db was made for --watch {}, not for --watch {}",
            media_abs.display(),
            m2_abs.display()
        )),
        "{err}"
    );
    assert!(err.contains("--store"), "{err}");
    // Forgotten, the folder's queued scan still belongs to it.
    let out =
        run(pps(dir.path()).args(["forget", "--store", "pps.db", media_abs.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(pps(dir.path()).args(["once", "--watch", "m2"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("x.mkv"));
    // A store of its own works; watching the folder again (plus another) delivers.
    let out = run(pps(dir.path()).args(["once", "--watch", "m2", "--store", "m2.db"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    let out = run(pps(dir.path()).args(["once", "--watch", "media", "--watch", "m2"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("x.mkv"), "{}", text(&out.stdout));
}

#[test]
fn scans_queued_by_a_removed_watch_are_delivered_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path(), &["out"], "");
    let media = std::fs::canonicalize(dir.path().join("media")).unwrap();
    let out = run(pps(dir.path()).arg("-c").arg(&config).arg("once"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(media.join("x.mkv"), b"x").unwrap();
    let mut child = pps(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["once", "--full"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(141));
    // The watch moves to another folder; x.mkv is still owed.
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let other = std::fs::canonicalize(dir.path().join("other")).unwrap();
    let toml = std::fs::read_to_string(&config).unwrap().replace(
        &format!("\"{}\"", media.display()),
        &format!("\"{}\"", other.display()),
    );
    std::fs::write(&config, toml).unwrap();
    let out = run(pps(dir.path()).arg("-c").arg(&config).arg("once"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("x.mkv"), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("no longer configured") && err.contains(&format!("nas:{}", media.display())),
        "{err}"
    );
}

const PLEX_TOKEN: &str = "plex-second-round-token";
const EMBY_KEY: &str = "emby-second-round-key";

/// A Plex whose TV section's root is `/mnt/115/电视`, and an Emby with the same
/// library, both taking scans.
async fn media_servers() -> (wiremock::MockServer, wiremock::MockServer) {
    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let plex = MockServer::start().await;
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
    let emby = MockServer::start().await;
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

/// A cd2 source at `cd2` sending to that Plex and Emby.
fn servers_config(dir: &Path, cd2: &str, plex: &str, emby: &str) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.cd2]
kind = "clouddrive2"
url = "{cd2}"
max_queries_per_second = 200
burst = 20
retries = 0

[targets.plex]
kind = "plex"
url = "{plex}"
path_mapping = [{{ from = "/115", to = "/mnt/115" }}]
pacing = "0s"

[targets.emby]
kind = "emby"
url = "{emby}"
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

fn with_server_secrets(c: &mut Command) -> &mut Command {
    c.env("PPS_TARGETS_PLEX_TOKEN", PLEX_TOKEN)
        .env("PPS_TARGETS_EMBY_API_KEY", EMBY_KEY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_of_a_path_deleted_at_the_source_scans_it_as_deleted() {
    let mut tree = pps_clouddrive::mock::MockTree::new();
    tree.write_file("/115/电视/Show 1/S01/e1.mkv", 10);
    tree.write_file("/115/电视/Show 1/S02/e1.mkv", 10);
    let cd2 = pps_clouddrive::mock::MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let (plex, emby) = media_servers().await;
    let dir = tempfile::tempdir().unwrap();
    let config = servers_config(dir.path(), &cd2.url(), &plex.uri(), &emby.uri());
    let out = run(with_server_secrets(&mut pps(dir.path()))
        .arg("-c")
        .arg(&config)
        .arg("index"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    cd2.remove("/115/电视/Show 1/S02");
    let out = run(with_server_secrets(&mut pps(dir.path()))
        .arg("-c")
        .arg(&config)
        .args(["scan", "cd2:/115/电视/Show 1/S02"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("gone at the source: scanned as deleted"),
        "{}",
        text(&out.stdout)
    );
    // Plex scans folders: the season's parent, the show.
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
    assert_eq!(refreshed, ["/mnt/115/电视/Show 1"]);
    // Emby takes the path itself, as deleted.
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
        [
            serde_json::json!({"Updates": [{"Path": "/mnt/115/电视/Show 1/S02", "UpdateType": "Deleted"}]})
        ]
    );
    cd2.shutdown().await;
}

/// Runs `pps status` until its text holds `want` (a liveness bound of 60 s).
fn status_until(dir: &Path, config: &Path, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = run(pps(dir).arg("-c").arg(config).arg("status"));
        let shown = text(&out.stdout);
        if shown.contains(want) {
            return shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never showed {want:?}: {shown}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_source_health_and_run_logs_once_when_it_is_back() {
    let mut tree = pps_clouddrive::mock::MockTree::new();
    tree.write_file("/115/电视/Show/S01/e1.mkv", 10);
    let cd2 = pps_clouddrive::mock::MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree.clone())
        .await
        .unwrap();
    let addr = cd2.addr();
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), &cd2.url());
    let out = run(pps(dir.path()).arg("-c").arg(&config).arg("index"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = run(pps(dir.path()).arg("-c").arg(&config).arg("status"));
    assert!(
        text(&shown.stdout).contains("health: not checked yet"),
        "{}",
        text(&shown.stdout)
    );
    let mut service = pps(dir.path())
        .arg("-c")
        .arg(&config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = service.stderr.take().unwrap();
    let logged = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let (d, c) = (dir.path().to_owned(), config.clone());
    let shown =
        tokio::task::spawn_blocking(move || status_until(&d, &c, "health: reachable since"))
            .await
            .unwrap();
    assert!(shown.contains("rate in force"), "{shown}");
    cd2.shutdown().await;
    let (d, c) = (dir.path().to_owned(), config.clone());
    let shown = tokio::task::spawn_blocking(move || status_until(&d, &c, "UNREACHABLE since"))
        .await
        .unwrap();
    assert!(
        shown.contains(&format!("nothing listens on {addr}")),
        "{shown}"
    );
    let cd2 = pps_clouddrive::mock::MockServer::builder()
        .api_token(CD2_TOKEN)
        .start_on(addr, tree)
        .await
        .unwrap();
    let (d, c) = (dir.path().to_owned(), config.clone());
    tokio::task::spawn_blocking(move || status_until(&d, &c, "health: reachable since"))
        .await
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    assert_eq!(service.wait().unwrap().code(), Some(0));
    let logged = logged.join().unwrap();
    assert_eq!(logged.matches("source is back").count(), 1, "{logged}");
    assert_eq!(
        logged.matches("source is unreachable").count(),
        1,
        "{logged}"
    );
    // The outage is in the history once each way (what notifiers announce).
    let out = run(pps(dir.path()).arg("-c").arg(&config).args([
        "history",
        "--event",
        "source_down,source_up",
        "--json",
    ]));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines
        .iter()
        .rev()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["source_down", "source_up"], "{lines:?}");
    assert_eq!(lines[1]["path"], "cd2");
    cd2.shutdown().await;
}

#[test]
fn status_of_a_watch_store_says_every_pass_lists_everything() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    for i in 0..3 {
        std::fs::create_dir_all(media.join(format!("Show {i}/S01"))).unwrap();
    }
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(pps(dir.path()).args(["status", "--store", "pps.db"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("--watch mode: every pass") && shown.contains("lists all 7 folders"),
        "{shown}"
    );
    assert!(!shown.contains("on course for"), "{shown}");
    assert!(!shown.contains("longest interval"), "{shown}");
    let out = run(pps(dir.path()).args(["status", "--store", "pps.db", "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["full_passes"], true, "{v}");
}

async fn seen(server: &wiremock::MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap()
}

/// The store's files, byte for byte (the WAL too, when there is one).
fn store_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    ["pps.db", "pps.db-wal"]
        .iter()
        .filter_map(|f| {
            std::fs::read(dir.join(f))
                .ok()
                .map(|b| ((*f).to_owned(), b))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_dry_run_prints_what_each_target_would_get_and_sends_and_changes_nothing() {
    let (plex, emby) = media_servers().await;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("115/电视");
    std::fs::create_dir_all(media.join("Show 1/S01")).unwrap();
    let root = std::fs::canonicalize(dir.path().join("115")).unwrap();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.nas]
kind = "local"

[targets.plex]
kind = "plex"
url = "{plex}"
path_mapping = [{{ from = "{root}", to = "/mnt/115" }}]
pacing = "0s"

[targets.emby]
kind = "emby"
url = "{emby}"
path_mapping = [{{ from = "{root}", to = "/mnt/115" }}]

[[watch]]
source = "nas"
path = "{root}/电视"
"#,
            plex = plex.uri(),
            emby = emby.uri(),
            root = root.display()
        ),
    )
    .unwrap();
    let out = run(with_server_secrets(&mut pps(dir.path()))
        .arg("-c")
        .arg(&config)
        .arg("once"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(media.join("Show 1/S01/e2.mkv"), b"x").unwrap();
    let before = store_bytes(dir.path());
    assert!(!before.is_empty());
    let (plex_before, emby_before) = (seen(&plex).await.len(), seen(&emby).await.len());
    let out = run(with_server_secrets(&mut pps(dir.path()))
        .arg("-c")
        .arg(&config)
        .args(["once", "--full", "--dry-run"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = lines(&out);
    assert_eq!(got.len(), 2, "{}", text(&out.stdout));
    let plex_line = got.iter().find(|l| l["target"] == "plex").unwrap();
    assert_eq!(plex_line["dry_run"], true);
    assert_eq!(
        plex_line["path"], "/mnt/115/电视/Show 1/S01",
        "Plex: the folder"
    );
    assert_eq!(plex_line["libraries"], serde_json::json!(["TV"]));
    let emby_line = got.iter().find(|l| l["target"] == "emby").unwrap();
    assert_eq!(emby_line["path"], "/mnt/115/电视/Show 1/S01/e2.mkv");
    assert_eq!(emby_line["update"], "created");
    assert_eq!(emby_line["libraries"], serde_json::json!(["TV"]));
    // Nothing was sent: the servers saw only the reads of their library lists.
    for (server, before) in [(&plex, plex_before), (&emby, emby_before)] {
        for r in &seen(server).await[before..] {
            assert_eq!(r.method.as_str(), "GET", "{} {}", r.method, r.url);
            assert!(
                ["/library/sections", "/Library/VirtualFolders"].contains(&r.url.path()),
                "{}",
                r.url
            );
        }
    }
    assert_eq!(store_bytes(dir.path()), before, "the store is unchanged");
    // And the change is still there for a real pass to find and send.
    let out = run(with_server_secrets(&mut pps(dir.path()))
        .arg("-c")
        .arg(&config)
        .args(["once", "--full"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sent = emby
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/Library/Media/Updated")
        .count();
    assert_eq!(sent, 1);
}

#[test]
fn run_dry_run_prints_and_leaves_the_store_as_it_was() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(media.join("new.mkv"), b"x").unwrap();
    let before = store_bytes(dir.path());
    let mut child = pps(dir.path())
        .args(["run", "--dry-run", "--interval", "1s", "--watch", "media"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["dry_run"], true, "{first}");
    assert!(v["path"].as_str().unwrap().ends_with("/new.mkv"), "{first}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    drop(reader);
    assert_eq!(store_bytes(dir.path()), before, "the store is unchanged");
    let out = run(pps(dir.path()).args(["once", "--watch", "media"]));
    assert!(
        text(&out.stdout).contains("new.mkv"),
        "{}",
        text(&out.stdout)
    );
}
