//! The `pps` binary as a process: real folders, a real store file, stdout parsed as
//! JSON lines, stderr kept apart.

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn pps() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
    c.env_remove("PPS_LOG");
    c
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        std::fs::create_dir(&root).unwrap();
        let store = dir.path().join("pps.db");
        Tree {
            root: root.canonicalize().unwrap(),
            store,
            _dir: dir,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).to_str().unwrap().to_owned()
    }

    fn write(&self, rel: &str, body: &str) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn once(&self) -> Output {
        pps()
            .args(["once", "--watch"])
            .arg(&self.root)
            .arg("--store")
            .arg(&self.store)
            .output()
            .unwrap()
    }
}

/// Parses stdout as JSON lines into (path, update, is_dir); panics on any line that is
/// not JSON (logs must never reach stdout).
fn scans(stdout: &[u8]) -> BTreeSet<(String, String, bool)> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
            assert_eq!(v["target"], "stdout");
            (
                v["path"].as_str().unwrap().to_owned(),
                v["update"].as_str().unwrap().to_owned(),
                v["is_dir"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, bool)]) -> BTreeSet<(String, String, bool)> {
    items
        .iter()
        .map(|(p, u, d)| ((*p).to_owned(), (*u).to_owned(), *d))
        .collect()
}

#[test]
fn once_reports_creates_modifies_deletes_and_renames() {
    let t = Tree::new();
    t.write("TV/Show/S01/e1.mkv", "a");
    t.write("TV/Show/S01/old.mkv", "a");
    t.write("Movies/Old Film/f.mkv", "a");
    t.write("Movies/Keep/k.mkv", "a");
    let out = t.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(scans(&out.stdout).is_empty(), "the baseline scans nothing");
    assert!(String::from_utf8_lossy(&out.stderr).contains("baseline recorded"));

    t.write("TV/Show/S01/e2 & co #1 100%+.mkv", "new");
    t.write("TV/Show/S01/e1.mkv", "changed size");
    std::fs::remove_file(t.p("TV/Show/S01/old.mkv")).unwrap();
    t.write("TV/New Show 电影 🎬/S01/e1.mkv", "a");
    std::fs::remove_dir_all(t.p("Movies/Old Film")).unwrap();
    std::fs::rename(t.p("Movies/Keep"), t.p("Movies/Kept")).unwrap();
    let out = t.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        scans(&out.stdout),
        set(&[
            (&t.s("TV/Show/S01/e2 & co #1 100%+.mkv"), "created", false),
            (&t.s("TV/Show/S01/e1.mkv"), "modified", false),
            (&t.s("TV/Show/S01/old.mkv"), "deleted", false),
            (&t.s("TV/New Show 电影 🎬"), "created", true),
            (&t.s("Movies/Old Film"), "deleted", true),
            (&t.s("Movies/Keep"), "deleted", true),
            (&t.s("Movies/Kept"), "created", true),
        ])
    );
    // Nothing left to report.
    let out = t.once();
    assert!(scans(&out.stdout).is_empty());
}

#[test]
fn bad_arguments_are_clear_errors_with_exit_code_2() {
    let t = Tree::new();
    let out = pps()
        .args(["once", "--watch", "/no/such/folder/here", "--store"])
        .arg(&t.store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no/such/folder/here") && err.contains("--watch"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = pps()
        .args(["run", "--watch"])
        .arg(&t.root)
        .args(["--interval", "10 parsecs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("10 parsecs"));

    let out = pps()
        .args(["once", "--watch"])
        .arg(&t.root)
        .args(["--exclude", "a/b", "--store"])
        .arg(&t.store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--exclude"));

    let junk = t.root.parent().unwrap().join("junk.db");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let out = pps()
        .args(["once", "--watch"])
        .arg(&t.root)
        .arg("--store")
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.db"));
    assert_eq!(std::fs::read(&junk).unwrap(), vec![7u8; 4096]);
}

/// Reads the child's stdout on a thread, so the test can wait for lines with a deadline.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    lines_of(child.stdout.take().unwrap())
}

fn lines_of(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(
    rx: &mpsc::Receiver<String>,
    want: &BTreeSet<(String, String, bool)>,
    got: &mut BTreeSet<(String, String, bool)>,
) {
    // A generous deadline for a slow CI machine; this waits for output, it asserts no
    // speed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.is_subset(got) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            got.extend(scans(format!("{line}\n").as_bytes()));
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn run_reports_changes_and_stops_cleanly_on_sigterm() {
    let t = Tree::new();
    t.write("A/x.mkv", "a");
    let mut child = pps()
        .args(["run", "--interval", "1s", "--watch"])
        .arg(&t.root)
        .arg("--store")
        .arg(&t.store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = line_reader(&mut child);
    let logs = lines_of(child.stderr.take().unwrap());
    let mut stderr = Vec::new();
    // Wait for the baseline before changing anything.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && !stderr
            .iter()
            .any(|l: &String| l.contains("baseline recorded"))
    {
        if let Ok(l) = logs.recv_timeout(Duration::from_millis(200)) {
            stderr.push(l);
        }
    }
    t.write("A/y.mkv", "b");
    t.write("B/z.mkv", "c");
    let want = set(&[
        (&t.s("A/y.mkv"), "created", false),
        (&t.s("B"), "created", true),
    ]);
    let mut got = BTreeSet::new();
    wait_for(&rx, &want, &mut got);
    assert_eq!(got, want);
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    stderr.extend(logs.iter());
    let err = stderr.join("\n");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("stopped"), "{err}");
}

/// kill -9 at a random point of a pass, then run again: every change still reaches
/// stdout (at least once).
#[test]
fn a_pass_killed_with_sigkill_loses_no_change() {
    let t = Tree::new();
    for i in 0..300 {
        t.write(&format!("D{i:03}/S1/e.mkv"), "a");
    }
    assert!(t.once().status.success());
    let mut want = BTreeSet::new();
    for i in 0..300 {
        t.write(&format!("D{i:03}/S1/new.mkv"), "b");
        want.insert((
            t.s(&format!("D{i:03}/S1/new.mkv")),
            "created".to_owned(),
            false,
        ));
    }
    let mut got = BTreeSet::new();
    // Kill at increasing delays, from "right at start" to "mid-delivery".
    for delay_ms in [0u64, 5, 15, 40, 80] {
        let mut child = pps()
            .args(["once", "--watch"])
            .arg(&t.root)
            .arg("--store")
            .arg(&t.store)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rx = line_reader(&mut child);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Lines fully printed before the kill count: a scan printed counts as delivered.
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                got.insert((
                    v["path"].as_str().unwrap().to_owned(),
                    v["update"].as_str().unwrap().to_owned(),
                    v["is_dir"].as_bool().unwrap(),
                ));
            }
        }
    }
    let out = t.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    got.extend(scans(&out.stdout));
    assert_eq!(got, want, "every change reached stdout");
    assert!(scans(&t.once().stdout).is_empty());
}

/// Waits (with a generous deadline for a slow machine; no speed is asserted) until a
/// line of `logs` not yet in `seen` contains `needle`, keeping what it read in `seen`.
fn wait_log(logs: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut from = seen.len();
    loop {
        if seen[from..].iter().any(|l| l.contains(needle)) {
            return true;
        }
        from = seen.len();
        if Instant::now() > deadline {
            return false;
        }
        if let Ok(l) = logs.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
}

/// SIGHUP applies an edited config without a restart (`systemctl reload pps`); an edit
/// that does not validate is refused with its reason and the running config stays.
#[test]
fn sighup_applies_a_valid_config_and_refuses_a_broken_one() {
    let t = Tree::new();
    t.write("A/x.mkv", "a");
    t.write("B/x.mkv", "b");
    let cfg = t.root.parent().unwrap().join("pps.toml");
    let watch = |dir: &str| {
        format!(
            "[[watch]]\nsource = \"nas\"\npath = \"{}\"\ninterval = \"1s\"\n",
            t.s(dir)
        )
    };
    let head = format!(
        "[store]\npath = \"{}\"\n\n[sources.nas]\nkind = \"local\"\n\n[targets.stdout]\nkind = \"stdout\"\n\n",
        t.store.display()
    );
    std::fs::write(&cfg, format!("{head}{}", watch("A"))).unwrap();
    let mut child = pps()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = line_reader(&mut child);
    let logs = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    assert!(wait_log(&logs, &mut seen, "baseline recorded"), "{seen:?}");

    // A broken edit: refused, named, and the service goes on with what it had.
    std::fs::write(&cfg, format!("{head}{}", watch("A").replace("1s", "soon"))).unwrap();
    signal(&child, "-HUP");
    assert!(wait_log(&logs, &mut seen, "config refused"), "{seen:?}");
    let refusal = seen.iter().find(|l| l.contains("config refused")).unwrap();
    assert!(refusal.contains("interval"), "{refusal}");
    t.write("A/y.mkv", "a");
    let want = set(&[(&t.s("A/y.mkv"), "created", false)]);
    let mut got = BTreeSet::new();
    wait_for(&rx, &want, &mut got);
    assert_eq!(got, want, "still watching A: {seen:?}");

    // A valid edit that adds a watch: applied, and B is watched from then on.
    std::fs::write(&cfg, format!("{head}{}\n{}", watch("A"), watch("B"))).unwrap();
    signal(&child, "-HUP");
    assert!(wait_log(&logs, &mut seen, "config reloaded"), "{seen:?}");
    assert!(wait_log(&logs, &mut seen, "baseline recorded"), "{seen:?}");
    t.write("B/y.mkv", "b");
    t.write("A/z.mkv", "a");
    let want = set(&[
        (&t.s("B/y.mkv"), "created", false),
        (&t.s("A/z.mkv"), "created", false),
    ]);
    let mut got = BTreeSet::new();
    wait_for(&rx, &want, &mut got);
    assert_eq!(got, want, "{seen:?}");

    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    seen.extend(logs.iter());
    assert_eq!(status.code(), Some(0), "{seen:?}");
}

/// `pps history` beside the store `--watch` mode made: the changes and their deliveries,
/// newest first, as text and as JSON lines, with filters.
#[test]
fn history_shows_changes_and_deliveries() {
    let t = Tree::new();
    t.write("A/x.mkv", "a");
    assert!(t.once().status.success());
    let history = |args: &[&str]| {
        let out = pps()
            .arg("history")
            .args(args)
            .arg("--store")
            .arg(&t.store)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        history(&[]).starts_with("no history (yet)"),
        "a baseline is no change"
    );
    t.write("A/y.mkv", "b");
    assert!(t.once().status.success());
    let text = history(&[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("time (UTC)"), "{text}");
    assert!(
        lines[1].contains("sent") && lines[1].contains("stdout"),
        "{text}"
    );
    assert!(
        // `--watch` passes list every folder: what found it was a full walk.
        lines[2].contains("change") && lines[2].contains("(created file, by a full walk)"),
        "{text}"
    );
    assert!(
        lines.iter().skip(1).all(|l| l.contains(&t.s("A/y.mkv"))),
        "{text}"
    );
    let json: Vec<Value> = history(&["--json", "--event", "change"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["event"], "change");
    assert_eq!(json[0]["path"], t.s("A/y.mkv"));
    assert_eq!(json[0]["update"], "created");
    assert_eq!(json[0]["source"], "local");
    assert_eq!(json[0]["origin"], "walk");
    // Paging: a full page says how to get the next.
    let page = history(&["--limit", "1"]);
    assert!(
        page.lines().last().unwrap().starts_with("more: --before "),
        "{page}"
    );
    // A mistyped event is an error that lists the events.
    let out = pps()
        .args(["history", "--event", "snet", "--store"])
        .arg(&t.store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one of: change, sent"));
}

/// Issue 30, item 1: a watch inside another watch of the same source (which the UI's
/// "Watch this folder" offers for any subfolder) listed and scanned every change in
/// it twice. `pps check`, `pps run` and `--watch` refuse it, naming both watches and
/// the line; a disabled inner watch, or the same path on another source, is fine.
#[test]
fn a_watch_inside_another_watch_of_its_source_is_refused() {
    let t = Tree::new();
    t.write("电影/Inception (2010)/film.mkv", "x");
    let cfg = t.root.parent().unwrap().join("pps.toml");
    let watch = |dir: &str, extra: &str| {
        format!(
            "[[watch]]\nsource = \"nas\"\npath = \"{}\"\n{extra}\n",
            t.s(dir)
        )
    };
    let head = format!(
        "[store]\npath = \"{}\"\n\n[sources.nas]\nkind = \"local\"\n\n[sources.other]\nkind = \"local\"\n\n[targets.stdout]\nkind = \"stdout\"\n\n",
        t.store.display()
    );
    let text = format!(
        "{head}{}{}",
        watch("电影", ""),
        watch("电影/Inception (2010)", "")
    );
    std::fs::write(&cfg, &text).unwrap();
    for cmd in ["check", "once"] {
        let out = pps().arg("--config").arg(&cfg).arg(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("watch[1].path"), "{cmd}: {err}");
        assert!(
            err.contains(&format!("nas:{}", t.s("电影"))) && err.contains("Inception (2010)"),
            "names both watches: {err}"
        );
        assert!(err.contains("scanned twice"), "{err}");
        let line = text.lines().position(|l| l.contains("Inception")).unwrap() + 1;
        assert!(err.contains(&format!("line: {line}")), "{err}");
    }
    // The outer one written second is refused too.
    let reversed = format!(
        "{head}{}{}",
        watch("电影/Inception (2010)", ""),
        watch("电影", "")
    );
    std::fs::write(&cfg, &reversed).unwrap();
    let out = pps()
        .arg("--config")
        .arg(&cfg)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds watch[0]"));
    // Disabled, or on another source: accepted.
    for ok in [
        format!(
            "{head}{}{}",
            watch("电影", ""),
            watch("电影/Inception (2010)", "enabled = false")
        ),
        format!(
            "{head}{}{}",
            watch("电影", ""),
            watch("电影/Inception (2010)", "").replace("\"nas\"", "\"other\"")
        ),
    ] {
        std::fs::write(&cfg, &ok).unwrap();
        let out = pps()
            .arg("--config")
            .arg(&cfg)
            .arg("check")
            .output()
            .unwrap();
        assert_ne!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // --watch mode: the same rule.
    let out = pps()
        .args(["once", "--store"])
        .arg(t.root.parent().unwrap().join("w.db"))
        .arg("--watch")
        .arg(t.s("电影"))
        .arg("--watch")
        .arg(t.s("电影/Inception (2010)"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("scanned twice"));
}
