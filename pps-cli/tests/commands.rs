//! Every subcommand as a process, with a config file, the mock cd2 server over loopback
//! gRPC and a wiremock Plex; and a check that no configured secret ever shows up in any
//! output or log.

use pps_clouddrive::mock::{MockServer, MockTree};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer as Http, ResponseTemplate};

const CD2_TOKEN: &str = "cd2-secret-token-4f1a";
const PLEX_TOKEN: &str = "plex-secret-token-9z8y";

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    outputs: Vec<String>,
}

impl Setup {
    fn pps(&mut self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_pps"))
            .arg("--config")
            .arg(&self.config)
            .args(["-vv"])
            .args(args)
            .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
            .env("PPS_TARGETS_PLEX_TOKEN", PLEX_TOKEN)
            .env_remove("PPS_LOG")
            .current_dir(&self.dir)
            .output()
            .unwrap();
        self.outputs
            .push(String::from_utf8_lossy(&out.stdout).into_owned());
        self.outputs
            .push(String::from_utf8_lossy(&out.stderr).into_owned());
        out
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn plex() -> Http {
    let server = Http::start().await;
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .and(header("X-Plex-Token", PLEX_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "MediaContainer": {"Directory": [
                {"key": "1", "title": "TV", "type": "show", "Location": [{"id": 1, "path": "/mnt/115/TV"}]}
            ]}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(header("X-Plex-Token", PLEX_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "MediaContainer": {"friendlyName": "nas", "version": "1.41.0"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .and(header("X-Plex-Token", PLEX_TOKEN))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

fn refreshes(requests: &[wiremock::Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.url.path() == "/library/sections/1/refresh")
        .map(|r| {
            assert!(
                r.url
                    .query_pairs()
                    .all(|(k, _)| k != "X-Plex-Token" && k != "force"),
                "{}",
                r.url
            );
            r.url
                .query_pairs()
                .find(|(k, _)| k == "path")
                .map(|(_, v)| v.into_owned())
                .unwrap()
        })
        .collect()
}

fn write_config(dir: &Path, cd2: &str, plex: &str) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "state.db"

[sources.cd2]
kind = "clouddrive2"
url = "{cd2}"
max_queries_per_second = 50

[targets.plex]
kind = "plex"
url = "{plex}"
path_mapping = [{{ from = "/115", to = "/mnt/115" }}]
pacing = "0s"

[targets.print]
kind = "stdout"

[[watch]]
source = "cd2"
path = "/115/TV"
interval = "10m"
"#
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_mock_servers() {
    let mut tree = MockTree::new();
    tree.write_file("/115/TV/Show & Co/S01/e1.mkv", 10);
    tree.create_dir("/115/Movies");
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let plex = plex().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cd2.url(), &plex.uri());
    let mut s = Setup {
        dir: dir.path().to_path_buf(),
        config,
        outputs: Vec::new(),
        _dir: dir,
    };

    // init refuses to overwrite.
    let out = s.pps(&["init"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("exists; not overwritten"),
        "{}",
        text(&out.stderr)
    );

    // check reaches both and shows where the watch lands.
    let out = s.pps(&["check"]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    assert!(
        shown.contains("target plex (plex): ok, Plex Media Server \"nas\" 1.41.0, 1 library"),
        "{shown}"
    );
    assert!(shown.contains("plex: /mnt/115/TV -> \"TV\" [1]"), "{shown}");
    assert!(shown.contains("source: ok, 1 entry at the root"), "{shown}");

    // index records the baseline and scans nothing.
    let out = s.pps(&["index"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("indexed cd2:/115/TV: 3 folders"),
        "{}",
        text(&out.stderr)
    );

    // After the baseline, folders come due one by one (spread over time, at the
    // ceiling's pace): a scheduled `once` succeeds, and status shows the schedule.
    cd2.write_file("/115/TV/Show & Co/S01/e2 #2 100%.mkv", 5);
    let scheduled = s.pps(&["once"]);
    assert_eq!(
        scheduled.status.code(),
        Some(0),
        "{}",
        text(&scheduled.stderr)
    );
    let out = s.pps(&["status"]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("  schedule: ") && shown.contains("longest interval 1d 00h"),
        "{shown}"
    );

    // A full pass finds the new episode: its season is scanned on Plex, the file printed.
    let out = s.pps(&["once", "--full"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The season may already have come due for the scheduled run; between the two
    // runs the episode is reported exactly once.
    let lines: Vec<Value> = (text(&scheduled.stdout) + &text(&out.stdout))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["path"], "/115/TV/Show & Co/S01/e2 #2 100%.mkv");
    assert_eq!(lines[0]["update"], "created");
    let got = refreshes(&plex.received_requests().await.unwrap());
    assert_eq!(got, ["/mnt/115/TV/Show & Co/S01"]);

    // status: nothing pending, folders known.
    let out = s.pps(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["watches"][0]["folders"], 3);
    assert_eq!(v["targets"][0]["pending"], 0);
    // The schedule's bands and what it is on course to spend, next to the budget.
    let sc = &v["watches"][0]["schedule"];
    let bands = &sc["bands"];
    let total: u64 = ["up_to_15m", "up_to_1h", "up_to_6h", "up_to_1d", "longer"]
        .iter()
        .map(|k| bands[*k].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3, "{sc}");
    assert!(sc["calls_per_day"].as_u64().unwrap() >= 3, "{sc}");
    assert_eq!(sc["budget_per_day"], 50 * 86_400, "{sc}");
    let shown = text(&s.pps(&["status"]).stdout);
    assert!(
        shown.contains("  intervals: ") && shown.contains("of the 4320000 the rate allows"),
        "{shown}"
    );

    // ls shows a change before a pass reports it.
    cd2.write_file("/115/TV/Show & Co/S01/e3.mkv", 5);
    let out = s.pps(&["ls", "cd2:/115/TV/Show & Co/S01"]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("new") && l.ends_with("e3.mkv")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("same") && l.ends_with("e1.mkv")),
        "{shown}"
    );

    // scan by hand, one target.
    let out = s.pps(&["scan", "cd2:/115/TV/Show & Co", "--target", "plex"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = refreshes(&plex.received_requests().await.unwrap());
    assert_eq!(
        got.last().map(String::as_str),
        Some("/mnt/115/TV/Show & Co")
    );

    // A typo is no deletion to push: neither cd2 nor pps's state has that path.
    let sent = plex.received_requests().await.unwrap().len();
    let out = s.pps(&["scan", "cd2:/115/TV/Shwo & Co", "--target", "plex"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("is not at the source, and pps never saw it there"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(plex.received_requests().await.unwrap().len(), sent);

    // forget, on whole components.
    let out = s.pps(&["forget", "cd2:/115/TV/Show & Co/S01"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "forgot 1 folder at and under cd2:/115/TV/Show & Co/S01"
    );

    // A path outside every watch is a usage error.
    let out = s.pps(&["ls", "cd2:/elsewhere"]);
    assert_eq!(out.status.code(), Some(2));

    // No configured secret in any output or log line, at trace level.
    for o in &s.outputs {
        assert!(
            !o.contains(CD2_TOKEN) && !o.contains(PLEX_TOKEN),
            "a secret leaked:\n{o}"
        );
    }
    cd2.shutdown().await;
}

#[test]
fn init_writes_a_config_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let config = dir.path().join("new.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(&config)
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        written.replace("/srv/media", media.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // PPS_CONFIG works as --config.
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .env("PPS_CONFIG", &config)
        .args(["once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn config_errors_exit_2_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    std::fs::write(&config, "[sources.nas]\nkind = \"local\"\n\n[[watch]]\nsource = \"nas\"\npath = \"/x\"\ninterval = \"soon\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("line: 7") && err.contains("watch[0].interval") && err.contains("soon"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .arg("once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.toml"));
}

/// `pps walk` against the mock cd2 with latency and throttling: its counts match the
/// mock's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_counts_match_the_mock() {
    let mut tree = MockTree::new();
    for s in 0..6 {
        for e in 0..4 {
            tree.write_file(&format!("/115/TV/Show {s}/S01/e{e}.mkv"), 1000);
        }
    }
    tree.create_dir("/115/TV/Empty");
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    cd2.faults(|f| {
        f.latency = std::time::Duration::from_millis(5);
        f.throttle_next = 3;
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{}\"\nmax_queries_per_second = 200\nthrottle_backoff = \"20ms\"\nbackoff = \"10ms\"\nthrottle_pause = \"0s\"\nconcurrency = 4\n",
            cd2.url()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(&config)
        .args([
            "walk",
            "cd2:/115/TV",
            "--json",
            "--interval",
            "1h",
            "--max-interval",
            "1d",
        ])
        .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 1 root + 6 shows + 6 seasons + Empty.
    assert_eq!(v["folders"], 14, "{v}");
    assert_eq!(v["files"], 24);
    assert_eq!(v["bytes"], 24_000);
    assert_eq!(v["deepest_level"], 2);
    assert_eq!(v["largest_folder"]["entries"], 7);
    assert_eq!(v["throttled"], 3);
    assert_eq!(v["retries"], 3);
    assert_eq!(
        v["calls"],
        cd2.calls(pps_clouddrive::mock::Method::GetSubFiles),
        "the walk counts what the server saw"
    );
    assert_eq!(v["calls"], 17);
    assert_eq!(v["calls_per_day"]["all_quiet"], 14.0);
    assert_eq!(v["calls_per_day"]["all_active"], 14.0 * 24.0);
    assert_eq!(v["full_pass_s"]["at_1"], 14.0);
    assert_eq!(v["full_pass_s"]["configured"], 0.1);
    assert!(v["latency_ms"]["p50"].as_f64().unwrap() >= 5.0, "{v}");
    assert!(!text(&out.stdout).contains(CD2_TOKEN) && !text(&out.stderr).contains(CD2_TOKEN));

    // A failing folder is reported, the walk goes on, and the exit code says so.
    cd2.remove("/115/TV/Show 3/S01");
    cd2.faults(|f| f.unavailable_next = 100);
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(&config)
        .args(["walk", "cd2:/115/TV", "--max-depth", "0"])
        .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("1 failed folder (1 unavailable)") && shown.contains("failed:   /115/TV"),
        "{shown}"
    );
    cd2.shutdown().await;
}

/// Issue 24, case 3: `pps walk` beside `pps run` spent a second budget on the same
/// account. A walk now draws from the budget kept in the config's store, which every
/// pps process of that config shares: the calls of one walk count against the next,
/// a walk that reaches a ceiling waits (and says why), `--force` goes beyond it and
/// says so, and `pps status` shows every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_draws_from_the_budget_every_process_of_the_store_shares() {
    let mut tree = MockTree::new();
    for s in 0..13 {
        tree.write_file(&format!("/115/TV/Show {s:02}/e1.mkv"), 1000);
    }
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{}\"\nmax_queries_per_second = 200\nmax_calls_per_hour = 20\npush = false\n",
            cd2.url()
        ),
    )
    .unwrap();
    let walk = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
        c.arg("--config")
            .arg(&config)
            .args(["walk", "cd2:/115/TV"])
            .args(extra)
            .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN);
        c
    };
    let listings = || cd2.calls(pps_clouddrive::mock::Method::GetSubFiles);
    // One walk: 14 folders, 14 calls of the hour's 20.
    let out = walk(&["--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["folders"], 14, "{v}");
    assert!(
        v["budget"]
            .as_str()
            .unwrap_or("")
            .starts_with("shared with every pps process"),
        "{v}"
    );
    let status = |dir: &Path| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_pps"))
            .arg("--config")
            .arg(dir.join("pps.toml"))
            .args(["status", "--json"])
            .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let s = status(dir.path());
    assert_eq!(s["sources"][0]["source"], "cd2", "{s}");
    assert_eq!(s["sources"][0]["calls_last_hour"], 14, "{s}");
    assert_eq!(s["sources"][0]["max_calls_per_hour"], 20, "{s}");

    // A second walk, as another process: 6 calls are left in the hour; at the
    // ceiling it waits and says why, instead of spending a second budget.
    let mut child = walk(&["-v"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let said = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let hit = line.contains("calls wait for the ceiling per hour");
            seen.push(line);
            if hit {
                return (true, seen);
            }
        }
        (false, seen)
    });
    let (waited, seen) = said.join().unwrap();
    assert!(waited, "the walk says it waits for the ceiling: {seen:?}");
    assert_eq!(listings(), 20, "no call beyond the hour's 20");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(listings(), 20);

    // --force spends beyond it, says so, and its calls still count.
    let out = walk(&["--force", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["folders"], 14, "{v}");
    assert!(
        v["budget"].as_str().unwrap_or("").starts_with("--force"),
        "{v}"
    );
    assert!(
        text(&out.stderr).contains("--force"),
        "said loudly: {}",
        text(&out.stderr)
    );
    assert_eq!(listings(), 34);
    assert_eq!(status(dir.path())["sources"][0]["calls_last_hour"], 34);
    cd2.shutdown().await;
}

#[test]
fn walk_of_a_local_tree() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let d = dir.path().join(format!("d{i}/sub"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f.mkv"), vec![0u8; 100]).unwrap();
    }
    let root = format!("local:{}", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_pps"))
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .args(["walk", &root, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["folders"].as_u64(),
            v["files"].as_u64(),
            v["bytes"].as_u64()
        ),
        (Some(11), Some(5), Some(500))
    );
    assert_eq!(v["calls"], 11);
    assert_eq!(v["full_pass_s"]["configured"], Value::Null);
}

/// `pps run` with a schedule: after the baseline nothing is due for an hour, yet a cd2
/// push event makes the changed folder due at once, and its change is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_acts_on_push_hints_between_scheduled_listings() {
    use std::io::BufRead;
    let mut tree = MockTree::new();
    tree.write_file("/115/TV/Show/S01/e1.mkv", 10);
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{}\"\nmax_queries_per_second = 50\n\n[targets.print]\nkind = \"stdout\"\n\n[[watch]]\nsource = \"cd2\"\npath = \"/115/TV\"\ninterval = \"1h\"\n",
            cd2.url()
        ),
    )
    .unwrap();
    let pps = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
        c.arg("--config")
            .arg(&config)
            .args(args)
            .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN);
        c
    };
    assert!(pps(&["index"]).output().unwrap().status.success());
    let mut child = pps(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the service holds cd2's push channel open, then change the tree.
    cd2.wait_until(|m| m.push_channels() > 0).await;
    let before = cd2.calls(pps_clouddrive::mock::Method::GetSubFiles);
    cd2.write_file("/115/TV/Show/S01/e2.mkv", 10);
    let stdout = child.stdout.take().unwrap();
    // The reader stays open until the end: with it gone pps would end on that (141).
    let read = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        (lines.next(), lines)
    });
    // A guard against a hang, not a speed assertion.
    let Ok(read) = tokio::time::timeout(std::time::Duration::from_secs(60), read).await else {
        let _ = child.kill();
        panic!("no scan printed within 60 s");
    };
    let (line, _reader) = read.unwrap();
    let line = line.expect("a line").unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["path"], "/115/TV/Show/S01/e2.mkv");
    assert_eq!(v["update"], "created");
    // Only the hinted folder was listed, not the tree.
    let listed = cd2.calls(pps_clouddrive::mock::Method::GetSubFiles) - before;
    assert!(listed <= 2, "{listed} listings for one hint");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    cd2.shutdown().await;
}

/// SIGTERM stops the service gracefully (a bounded last delivery); a second signal
/// during that exits at once with 130, and nothing committed is lost: the scan that
/// could not be delivered is still queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("Show/S01")).unwrap();
    // A Plex that takes a minute to answer a refresh: the last delivery hangs.
    let plex = Http::start().await;
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "MediaContainer": {"Directory": [{"key": "1", "title": "TV", "type": "show", "Location": [{"id": 1, "path": media.display().to_string()}]}]}
        })))
        .mount(&plex)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(60)))
        .mount(&plex)
        .await;
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.nas]\nkind = \"local\"\n\n[targets.plex]\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"t\"\npacing = \"0s\"\ntimeout = \"90s\"\n\n[[watch]]\nsource = \"nas\"\npath = \"{}\"\ninterval = \"1h\"\n",
            plex.uri(),
            media.display()
        ),
    )
    .unwrap();
    let pps = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
        c.arg("--config").arg(&config).args(args);
        c
    };
    assert!(pps(&["index"]).output().unwrap().status.success());
    std::fs::write(media.join("Show/S01/e1.mkv"), b"x").unwrap();
    // Queue the scan with a full pass; its delivery is what will hang.
    let mut child = pps(&["run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    // The scheduled service lists nothing due: queue a scan by hand beside it (`scan`
    // works beside a running service; a second lister like `once` is refused).
    let folder = format!("nas:{}/Show/S01", media.display());
    let once = pps(&["scan", &folder]).spawn().unwrap();
    // Wait until the refresh request reached Plex (the service or once is now waiting).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while plex
        .received_requests()
        .await
        .unwrap()
        .iter()
        .all(|r| r.url.path() != "/library/sections/1/refresh")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no refresh reached Plex"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut once = once;
    let _ = once.kill();
    let _ = once.wait();
    let kill = |sig: &str| {
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
    };
    kill("-TERM");
    // Wait for the graceful stop to begin, then signal again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_ok_and(|l| l.contains("a second signal (Ctrl-C again)"))
        {
            break;
        }
    }
    kill("-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "the second signal exits at once");
    // The undelivered scan is still queued.
    let out = pps(&["status", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["targets"][0]["pending"], 1, "{v}");
}

/// `pps notify test` as a process against a Telegram Bot API stand-in (`api_url`): the
/// message arrives with the chat id; a refused token exits 1 saying why without the
/// token; `pps status` lists the notifier; an unknown name is a config error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_through_a_bot_api_and_never_shows_the_token() {
    const BOT: &str = "424242:bot-SECRET-token";
    let api = Http::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT}/sendMessage")))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
        .expect(1)
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let config = dir.path().join("pps.toml");
    let write = |token_line: &str| {
        std::fs::write(
            &config,
            format!(
                "[sources.disk]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"disk\"\npath = \"{}\"\n[notifiers.tg]\nkind = \"telegram\"\n{token_line}\nchat_id = \"@pps_news\"\napi_url = \"{}\"\nlanguage = \"zh\"\n",
                media.display(),
                api.uri()
            ),
        )
        .unwrap();
    };
    write("");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pps"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("PPS_NOTIFIERS_TG_BOT_TOKEN", BOT)
            .env_remove("PPS_LOG")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert!(run(&["index"]).status.success());
    let out = run(&["notify", "test", "tg"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "test message sent through tg");
    let got = api.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["chat_id"], "@pps_news");
    assert_eq!(body["text"], "pps：测试消息。通知会发到这里。");

    // A refused token: exit 1, the reason, never the token.
    let refused = Http::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "ok": false, "error_code": 401, "description": "Unauthorized"})))
        .mount(&refused)
        .await;
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&api.uri(), &refused.uri()),
    )
    .unwrap();
    let out = run(&["notify", "test", "tg"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("telegram answered 401: Unauthorized"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET") && !String::from_utf8_lossy(&out.stdout).contains("SECRET"));

    let out = run(&["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("notifier tg (telegram): 0 sent, nothing sent yet"),
        "{stdout}"
    );
    let out = run(&["notify", "test", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no notifier of that name"));
}
