//! Scenario 5: the store file in trouble. A disk that fills up during commits (a tiny
//! tmpfs), a store on a read-only mount, and store files damaged in five ways. Each time:
//! a clear error, no partial state, the file never rebuilt or deleted, and nothing lost
//! once the trouble is gone.

use crate::common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A mount made for the test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    /// Runs `mount ARGS... DIR`; None (with the reason) when this sandbox cannot.
    fn new(args: &[&str], dir: &Path) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(args)
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Mount(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn tree(root: &Path) {
    for s in 0..10 {
        std::fs::create_dir_all(root.join(format!("Show {s}/S01"))).unwrap();
        std::fs::write(root.join(format!("Show {s}/S01/e1.mkv")), b"x").unwrap();
    }
}

fn watch(root: &Path, store: &Path) -> Command {
    let mut c = pps(None);
    c.args(["once", "--watch"])
        .arg(root)
        .arg("--store")
        .arg(store);
    c
}

#[test]
fn a_full_disk_during_commits_is_a_clear_error_and_loses_nothing() {
    let log = Transcript::default();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    tree(&root);
    let disk = dir.path().join("disk");
    let mount = match Mount::new(&["-t", "tmpfs", "-o", "size=8m", "tmpfs"], &disk) {
        Ok(m) => m,
        Err(why) => {
            summary(
                "5 store: full disk",
                "a store on an 8 MB tmpfs",
                &format!("SKIPPED: cannot mount a tmpfs here ({why})"),
            );
            return;
        }
    };
    let store = disk.join("pps.db");
    let r = root.canonicalize().unwrap();
    let r = r.to_str().unwrap().to_owned();

    // At open: a full disk before pps starts (no room for SQLite's -shm file).
    let out = run(watch(&root, &store), Duration::from_secs(60), &log);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let filler = disk.join("filler");
    let fill = || {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        let _ = f.sync_all();
    };
    fill();
    let at_open = run(watch(&root, &store), Duration::from_secs(60), &log);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(at_open.code, Some(1), "{}", at_open.all());
    assert!(at_open.stdout.is_empty());
    let open_msg = at_open
        .stderr
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_owned();
    // SQLite cannot create its -shm file: it answers SQLITE_IOERR_SHMSIZE, which must
    // still read as a full disk (bug found by this test: it read "I/O error").
    assert!(
        open_msg.contains("the disk holding the store is full"),
        "{open_msg}"
    );

    // During commits: the service runs, the disk fills, changes come.
    let before = stored(&store, "local", &r);
    let out_file = dir.path().join("run.out");
    let err_file = dir.path().join("run.err");
    let mut child = pps(None)
        .args(["run", "--interval", "1s", "--watch"])
        .arg(&root)
        .arg("--store")
        .arg(&store)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let running = poll(Duration::from_secs(30), || {
        std::fs::read_to_string(&err_file).is_ok_and(|e| e.contains("pps running"))
            && disk.join("pps.db-shm").exists()
    });
    assert!(running, "{}", std::fs::read_to_string(&err_file).unwrap());
    fill();
    let mut want = BTreeSet::new();
    for s in 0..10 {
        for i in 0..60 {
            let name = format!("{}{i:04}.mkv", "long name ".repeat(10));
            let p = root.join(format!("Show {s}/S01/{name}"));
            std::fs::write(&p, b"x").unwrap();
            want.insert((p.to_str().unwrap().to_owned(), "created".to_owned()));
        }
    }
    let failed = poll(Duration::from_secs(60), || {
        std::fs::read_to_string(&err_file).is_ok_and(|e| e.contains("pass failed"))
    });
    let err_full = std::fs::read_to_string(&err_file).unwrap();
    let printed_full = std::fs::read_to_string(&out_file).unwrap().lines().count();
    std::fs::remove_file(&filler).unwrap();
    let scans_of = |text: &str| -> BTreeSet<(String, String)> {
        Out {
            code: None,
            stdout: text.to_owned(),
            stderr: String::new(),
        }
        .scans()
        .into_iter()
        .map(|(p, u, _)| (p, u))
        .collect()
    };
    let all_in = poll(Duration::from_secs(90), || {
        scans_of(&std::fs::read_to_string(&out_file).unwrap()) == want
    });
    // The service still delivers: one more change after the trouble.
    let late = r.clone() + "/Show 0/S01/after the disk was full.mkv";
    std::fs::write(&late, b"x").unwrap();
    let late_in = poll(Duration::from_secs(60), || {
        std::fs::read_to_string(&out_file).is_ok_and(|o| o.contains("after the disk was full"))
    });
    sigterm(&child);
    let status = wait_within(&mut child, Duration::from_secs(30), "pps run after SIGTERM");
    let err = std::fs::read_to_string(&err_file).unwrap();
    log.add(&err);
    assert!(!err.contains("panicked at"), "{err}");
    assert!(status.success(), "{err}");
    // A store error is temporary: delivery backs off and goes on (bug found by this
    // test: the delivery loop ended for good on the first full-disk error).
    assert!(
        !err.contains("delivery stopped"),
        "delivery gave up:\n{}",
        err.lines()
            .filter(|l| l.contains("delivery"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        late_in,
        "a change after the full disk was never delivered; stderr tail:\n{}",
        err.lines().rev().take(12).collect::<Vec<_>>().join("\n")
    );
    assert!(failed, "the full disk never failed a pass:\n{err_full}");
    let message = err_full
        .lines()
        .find(|l| l.contains("pass failed"))
        .and_then(|l| l.split("error=").nth(1))
        .unwrap_or("")
        .trim()
        .to_owned();
    assert!(
        message.contains("the disk holding the store is full"),
        "not a clear message: {message}"
    );
    if !all_in {
        let got = scans_of(&std::fs::read_to_string(&out_file).unwrap());
        let missing: Vec<_> = want.difference(&got).take(3).collect();
        let extra: Vec<_> = got.difference(&want).take(3).collect();
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        panic!(
            "changes lost after the disk had space again: {} of {} missing, e.g. {missing:?}; extra {extra:?}; stderr tail:\n{}",
            want.difference(&got).count(),
            want.len(),
            tail.join("\n")
        );
    }
    let stopped = err.matches("delivery stopped").count();
    let printed = std::fs::read_to_string(&out_file).unwrap();
    let lines = printed.lines().count();
    // No partial state: each folder holds its old listing or its complete new one.
    let after = stored(&store, "local", &r);
    assert_eq!(after.len(), before.len());
    drop(mount);
    summary(
        "5 store: full disk",
        &format!(
            "a store on an 8 MB tmpfs filled to the last byte: before a start, and under a running service while {} files were created",
            want.len()
        ),
        &format!(
            "at start: exit 1 with `{open_msg}`; during commits: `{message}`, {printed_full} scans printed while full; after space was freed all {} changes arrived ({lines} lines, {} repeated), lost 0; delivery loop stopped {stopped} times",
            want.len(),
            lines - want.len()
        ),
    );
}

/// Delivery writes to the store too (an attempt that failed, a scan settled). A full
/// disk at that moment must not end delivery: regression test for the delivery loop
/// that stopped for good on the first store error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_delivery_never_stops_delivery() {
    let log = Transcript::default();
    let plex = Media::start(Kind::Plex, &["/mnt/media"], &log).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    tree(&root);
    let root = root.canonicalize().unwrap();
    let disk = dir.path().join("disk");
    let mount = match Mount::new(&["-t", "tmpfs", "-o", "size=8m", "tmpfs"], &disk) {
        Ok(m) => m,
        Err(why) => {
            summary(
                "5 store: full disk during delivery",
                "a store on an 8 MB tmpfs",
                &format!("SKIPPED: cannot mount a tmpfs here ({why})"),
            );
            return;
        }
    };
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n\n[sources.disk]\nkind = \"local\"\n\n[targets.plex]\nkind = \"plex\"\nurl = \"{}\"\npath_mapping = [{{ from = \"{r}\", to = \"/mnt/media\" }}]\npacing = \"0s\"\n\n[[watch]]\nsource = \"disk\"\npath = \"{r}\"\ninterval = \"1s\"\nmax_interval = \"1s\"\n",
            disk.join("pps.db").display(),
            plex.url(),
            r = root.display()
        ),
    )
    .unwrap();
    let mut c = pps(Some(&config));
    c.arg("index");
    assert_eq!(run(c, Duration::from_secs(60), &log).code, Some(0));
    let err_file = dir.path().join("run.err");
    let mut child = pps(Some(&config))
        .arg("run")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    // Plex refuses scans: the scan waits in the outbox, each attempt recorded.
    plex.set_scans_down(true);
    let made = vec![Made {
        at: std::time::Instant::now(),
        path: "/mnt/media/Show 4/S01/e2.mkv".to_owned(),
        what: "file created",
    }];
    std::fs::write(root.join("Show 4/S01/e2.mkv"), b"x").unwrap();
    assert!(poll(Duration::from_secs(30), || plex.refused() > 0));
    // The disk fills; the next attempt cannot record its failure.
    let filler = disk.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        let _ = f.sync_all();
    }
    let refused = plex.refused();
    let hit = poll(Duration::from_secs(60), || {
        plex.refused() > refused
            && std::fs::read_to_string(&err_file).is_ok_and(|e| {
                e.contains("delivery stopped") || e.contains("delivery could not use the store")
            })
    });
    std::fs::remove_file(&filler).unwrap();
    plex.set_scans_down(false);
    let delivered = poll(Duration::from_secs(90), || {
        uncovered(&made, &plex.accepted()).is_empty()
    });
    sigterm(&child);
    let status = wait_within(&mut child, Duration::from_secs(30), "pps run after SIGTERM");
    let err = std::fs::read_to_string(&err_file).unwrap();
    log.add(&err);
    drop(mount);
    assert!(status.success(), "{err}");
    assert!(hit, "no delivery attempt met the full disk:\n{err}");
    assert!(
        !err.contains("delivery stopped"),
        "delivery gave up:\n{err}"
    );
    assert!(delivered, "the waiting scan was never delivered:\n{err}");
    let message = err
        .lines()
        .find(|l| l.contains("delivery could not use the store"))
        .unwrap_or("")
        .to_owned();
    summary(
        "5 store: full disk during delivery",
        "Plex refusing scans while the store's disk filled, so delivery could not record its attempt; then space back and Plex up",
        &format!(
            "delivery backed off and went on (`{}`); the waiting scan arrived, lost 0",
            message
                .split("pps_core::engine: ")
                .nth(1)
                .unwrap_or(&message)
                .trim()
        ),
    );
}

#[test]
fn a_read_only_store_is_a_clear_error_and_loses_nothing() {
    let log = Transcript::default();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    tree(&root);
    let rw = dir.path().join("rw");
    std::fs::create_dir(&rw).unwrap();
    let store = rw.join("pps.db");
    let out = run(watch(&root, &store), Duration::from_secs(60), &log);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let ro = dir.path().join("ro");
    let bind = Mount::new(&["--bind", rw.to_str().unwrap()], &ro);
    let remount = bind.as_ref().ok().map(|_| {
        Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&ro)
            .output()
            .unwrap()
    });
    let Some(remount) = remount.filter(|o| o.status.success()) else {
        summary(
            "5 store: read-only",
            "a store on a read-only bind mount",
            "SKIPPED: cannot make a read-only bind mount here",
        );
        return;
    };
    drop(remount);
    let r = root.canonicalize().unwrap();
    let new = r.join("Show 3/S01/e2.mkv");
    std::fs::write(&new, b"x").unwrap();
    let bytes = std::fs::read(&store).unwrap();
    let out = run(
        watch(&root, &ro.join("pps.db")),
        Duration::from_secs(60),
        &log,
    );
    assert!(matches!(out.code, Some(1 | 2)), "{}", out.all());
    assert!(
        out.stdout.is_empty(),
        "nothing printed from a read-only store: {}",
        out.all()
    );
    assert!(
        out.stderr.contains("read-only") || out.stderr.contains("cannot be opened"),
        "{}",
        out.all()
    );
    assert_eq!(
        std::fs::read(&store).unwrap(),
        bytes,
        "the file is untouched"
    );
    drop(bind);
    let back = run(watch(&root, &store), Duration::from_secs(60), &log);
    assert_eq!(back.code, Some(0), "{}", back.all());
    let got: Vec<_> = back.scans().into_iter().map(|(p, u, _)| (p, u)).collect();
    assert_eq!(
        got,
        [(new.to_str().unwrap().to_owned(), "created".to_owned())],
        "the change made while the store was read-only"
    );
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("read-only") || l.contains("cannot"))
        .unwrap_or("")
        .trim()
        .to_owned();
    summary(
        "5 store: read-only",
        "a change made, then `pps once` on the store through a read-only bind mount (at start; a remount while pps holds the file open for writing is refused by the kernel)",
        &format!(
            "exit {:?} with `{line}`, nothing printed, file untouched; on the writable store the change arrived, lost 0",
            out.code
        ),
    );
}

#[test]
fn a_damaged_store_is_detected_at_start_and_never_rebuilt() {
    let log = Transcript::default();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    tree(&root);
    let good = dir.path().join("good.db");
    let out = run(watch(&root, &good), Duration::from_secs(60), &log);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let bytes = std::fs::read(&good).unwrap();
    assert!(bytes.len() > 8192, "a store of several pages");
    let mut rng = Rng::new(seed(0x5eed_0005));
    let noise = |n: usize, rng: &mut Rng| -> Vec<u8> { (0..n).map(|_| rng.next() as u8).collect() };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("random bytes", noise(16384, &mut rng)));
    cases.push(("truncated to 1000 bytes", bytes[..1000].to_vec()));
    let mut pages = bytes.clone();
    let tail = noise(pages.len() - 4096, &mut rng);
    pages[4096..].copy_from_slice(&tail);
    cases.push(("every page after the first overwritten", pages));
    let mut other = bytes.clone();
    other[68..72].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    cases.push(("another application's SQLite file", other));
    let mut newer = bytes.clone();
    newer[60..64].copy_from_slice(&99u32.to_be_bytes());
    cases.push(("written by a newer pps (schema v99)", newer));
    let mut found = Vec::new();
    for (i, (what, content)) in cases.iter().enumerate() {
        let store = dir.path().join(format!("case{i}.db"));
        std::fs::write(&store, content).unwrap();
        for args in [&["once"][..], &["status"][..]] {
            let mut c = pps(None);
            let c = if args[0] == "once" {
                c.args(["once", "--watch"])
                    .arg(&root)
                    .arg("--store")
                    .arg(&store);
                c
            } else {
                // status needs a config: a minimal one pointing at the damaged store.
                let config = dir.path().join(format!("case{i}.toml"));
                std::fs::write(
                    &config,
                    format!("[store]\npath = \"{}\"\n", store.display()),
                )
                .unwrap();
                c.arg("--config").arg(&config).arg("status");
                c
            };
            let out = run(c, Duration::from_secs(60), &log);
            assert!(
                matches!(out.code, Some(1 | 2)),
                "{what}: {args:?} did not fail:\n{}",
                out.all()
            );
            assert!(out.stdout.is_empty(), "{what}: {}", out.all());
            let clear = ["damaged", "not a pps store", "newer pps"]
                .iter()
                .any(|p| out.stderr.contains(p));
            assert!(clear, "{what}: {args:?} no clear message:\n{}", out.all());
            assert!(
                out.stderr.contains(store.to_str().unwrap()),
                "{what}: the message names the file:\n{}",
                out.all()
            );
            assert_eq!(
                &std::fs::read(&store).unwrap(),
                content,
                "{what}: the file was altered"
            );
            if args[0] == "once" {
                let msg = out.stderr.lines().last().unwrap_or("").trim().to_owned();
                found.push(format!("{what}: `{msg}`"));
            }
        }
    }
    summary(
        "5 store: damaged file",
        &format!(
            "{} damaged store files, each opened by `pps once` and `pps status`",
            cases.len()
        ),
        &format!(
            "every one refused at start with a clear message naming the file, exit 1/2, bytes untouched: {}",
            found.join("; ")
        ),
    );
}
