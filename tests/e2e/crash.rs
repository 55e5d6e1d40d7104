//! The store under SIGKILL: a child process commits generation after generation (a
//! folder state together with its scan); the parent kills it with SIGKILL at varied
//! moments, reopens the file, and checks that no commit was ever half-applied.

use pps_core::listing;
use pps_core::sqlite::SqliteStore;
use pps_core::store::{Commit, FolderRecord, NewScan};
use pps_core::{Change, Entry, MtimeStore, Update};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "PPS_CRASH_CHILD_STORE";

fn generation_record(g: u64) -> FolderRecord {
    let enc = listing::encode(&[Entry::file(format!("gen{g:08}"), g, None)]);
    FolderRecord {
        fingerprint: enc.fingerprint,
        listing: enc.bytes,
    }
}

/// The last committed generation, checked for consistency: every generation up to it
/// has its folder and exactly its one scan, and nothing of a later one exists.
fn check(store: &SqliteStore) -> Option<u64> {
    let scope = store.scope("crash", "/w").unwrap();
    let root = store.folder(scope, "/w").unwrap()?;
    let entries = listing::decode(&root.listing).unwrap();
    let g: u64 = entries[0].name.trim_start_matches("gen").parse().unwrap();
    let folders = store.fingerprints(scope).unwrap();
    assert_eq!(
        folders.len() as u64,
        g + 2,
        "root plus one folder per generation 0..={g}"
    );
    for i in 0..=g {
        assert!(
            folders.contains_key(&format!("/w/g{i:08}")),
            "folder of generation {i}"
        );
    }
    let scans = store.pending("t", usize::MAX).unwrap();
    let paths: Vec<String> = scans.into_iter().map(|q| q.change.path).collect();
    let want: Vec<String> = (0..=g).map(|i| format!("/w/g{i:08}")).collect();
    assert_eq!(paths, want, "exactly one scan per committed generation");
    Some(g)
}

/// Entry point of the child: commits generations until killed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = SqliteStore::open(&path).unwrap();
    let scope = store.scope("crash", "/w").unwrap();
    let mut g = check(&store).map_or(0, |g| g + 1);
    loop {
        let commit = Commit {
            folders: vec![
                ("/w".into(), generation_record(g)),
                (format!("/w/g{g:08}"), generation_record(g)),
            ],
            scans: vec![NewScan {
                target: "t".into(),
                change: Change::new(format!("/w/g{g:08}"), Update::Created, true),
            }],
            ..Commit::default()
        };
        store.commit(scope, &commit).unwrap();
        g += 1;
    }
}

#[test]
fn sigkill_during_commits_never_splits_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let exe = std::env::current_exe().unwrap();
    let mut last = None;
    let mut advanced = 0;
    for k in 0..24u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Varied moments: while opening, mid-stream of commits, later.
        std::thread::sleep(Duration::from_millis(5 + (k * 37) % 120));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed, not finished");
        let store = SqliteStore::open(&db).unwrap();
        let g = check(&store);
        if g > last {
            advanced += 1;
        }
        assert!(
            g >= last,
            "committed generations never go back: {g:?} < {last:?}"
        );
        last = g;
    }
    println!(
        "24 kills; the store advanced across {advanced} of them, last generation {last:?}; every reopen consistent"
    );
    assert!(
        advanced >= 12,
        "most kills came after some commits ({advanced})"
    );
}
