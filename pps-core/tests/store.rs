use pps_core::listing;
use pps_core::sqlite::SqliteStore;
use pps_core::store::{Commit, FolderRecord, NewScan, Origin};
use pps_core::{Change, Entry, ErrorKind, MtimeStore, Update};
use std::collections::BTreeMap;
use std::sync::Arc;

fn rec(name: &str) -> FolderRecord {
    let enc = listing::encode(&[Entry::file(name, 1, None)]);
    FolderRecord {
        fingerprint: enc.fingerprint,
        listing: enc.bytes,
    }
}

type Snapshot = (BTreeMap<String, Vec<u8>>, Vec<(String, String)>);

fn snapshot(store: &SqliteStore) -> Snapshot {
    let scope = store.scope("s", "/w").unwrap();
    let mut folders = BTreeMap::new();
    for p in store.fingerprints(scope).unwrap().into_keys() {
        folders.insert(p.clone(), store.folder(scope, &p).unwrap().unwrap().listing);
    }
    let scans = store
        .pending("t", 1000)
        .unwrap()
        .into_iter()
        .map(|q| (q.change.path, q.change.update.to_string()))
        .collect();
    (folders, scans)
}

/// A commit interrupted before any of its statements, or before COMMIT itself, leaves
/// exactly the old state: never folder states without their scans.
#[test]
fn a_commit_interrupted_at_any_step_leaves_old_or_new_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let store = SqliteStore::open(&db).unwrap();
    let scope = store.scope("s", "/w").unwrap();
    let first = Commit {
        folders: ["/w", "/w/A", "/w/A/1", "/w/B"]
            .iter()
            .map(|p| ((*p).to_owned(), rec("old")))
            .collect(),
        scans: vec![NewScan {
            target: "t".into(),
            change: Change::new("/w/B", Update::Created, true),
        }],
        ..Commit::default()
    };
    store.commit(scope, &first).unwrap();
    let old = snapshot(&store);

    let second = Commit {
        removed: vec!["/w/A".into()],
        folders: vec![("/w".into(), rec("new")), ("/w/C".into(), rec("new"))],
        scans: vec![
            NewScan {
                target: "t".into(),
                change: Change::new("/w/A", Update::Deleted, true),
            },
            NewScan {
                target: "t".into(),
                change: Change::new("/w/C", Update::Created, true),
            },
        ],
        ..Commit::default()
    };
    let steps = second.removed.len() + second.folders.len() + second.scans.len() + 1;
    for step in 1..=steps {
        store.fail_next_commit_at(step);
        let err = store.commit(scope, &second).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(snapshot(&store), old, "failed at step {step}");
        // And on disk, seen by a fresh connection.
        assert_eq!(
            snapshot(&SqliteStore::open(&db).unwrap()),
            old,
            "on disk after step {step}"
        );
    }
    store.commit(scope, &second).unwrap();
    let new = snapshot(&SqliteStore::open(&db).unwrap());
    assert_eq!(new.0.keys().collect::<Vec<_>>(), ["/w", "/w/B", "/w/C"]);
    assert_eq!(new.1.len(), 3);
}

#[test]
fn a_store_from_a_newer_pps_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    drop(SqliteStore::open(&db).unwrap());
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = SqliteStore::open(&db).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    let text = err.to_string();
    assert!(
        text.contains("newer pps") && text.contains("v99") && text.contains("pps.db"),
        "{text}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn foreign_and_damaged_files_are_refused_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = SqliteStore::open(&other).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.to_string().contains("not a pps store") && err.to_string().contains("other.db"),
        "{err}"
    );

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&junk).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("junk.db"), "{err}");
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        vec![0x42u8; 8192],
        "a damaged file is never rewritten"
    );
}

#[test]
fn a_foreign_sqlite_file_without_tables_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("app.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    let err = SqliteStore::open(&other).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert_eq!(
        std::fs::read(&other).unwrap(),
        before,
        "not one byte changes (bytes 18-19 would turn to WAL)"
    );
    assert!(!dir.path().join("app.db-wal").exists());
}

#[test]
fn unusable_store_paths_each_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let msg = |p: &std::path::Path| SqliteStore::open(p).unwrap_err().to_string();
    assert!(
        msg(dir.path()).contains("is a folder"),
        "{}",
        msg(dir.path())
    );
    let dev = std::path::Path::new("/dev/null");
    assert!(msg(dev).contains("not a regular file"), "{}", msg(dev));
    assert!(
        !std::path::Path::new("/dev/null-journal").exists(),
        "nothing is left beside a device"
    );
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(dir.path().join("nowhere/x.db"), &link).unwrap();
    assert!(msg(&link).contains("symbolic link"), "{}", msg(&link));
    let missing = dir.path().join("no/such/folder/pps.db");
    assert!(
        msg(&missing).contains("does not exist"),
        "{}",
        msg(&missing)
    );
    // A folder that cannot take the -wal and -shm files (a read-only filesystem here:
    // the tests may run as root, who ignores permission bits).
    let ro = std::path::Path::new("/proc/pps-test.db");
    let text = msg(ro);
    assert!(
        text.contains("folder holding the store") && text.contains("not writable"),
        "{text}"
    );
    // Commands that only read never create a store.
    let absent = dir.path().join("absent.db");
    let err = SqliteStore::open_existing(&absent).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no store yet"), "{err}");
    assert!(!absent.exists(), "open_existing created the file");
}

#[test]
fn one_writer_at_a_time_and_the_lock_names_its_holder() {
    use pps_core::sqlite::StoreLock;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let held = StoreLock::acquire(&db, "pps run").unwrap();
    let err = StoreLock::acquire(&db, "pps index").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("in use by pid {} (pps run)", std::process::id())),
        "{text}"
    );
    drop(held);
    let _again = StoreLock::acquire(&db, "pps index").expect("free once released");
    // The lock never touches the store file: SQLite's own locks stay as they are.
    assert!(!db.exists());
}

#[test]
fn a_read_only_store_fails_clearly_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let store = SqliteStore::open(&db).unwrap();
    let scope = store.scope("s", "/w").unwrap();
    store
        .commit(
            scope,
            &Commit {
                folders: vec![("/w".into(), rec("a"))],
                ..Commit::default()
            },
        )
        .unwrap();
    drop(store);
    // Open read-only through SQLite itself: works for root too, unlike file modes.
    let ro = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let err = ro.execute("DELETE FROM folders", []).unwrap_err();
    assert!(matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly)
    ));
    let store = SqliteStore::open(&db).unwrap();
    assert!(store.folder(scope, "/w").unwrap().is_some());
}

/// A store written by the first release (schema v1, before scheduling) opens, migrates
/// to the current schema and keeps its data; its folders get a schedule with an
/// unknown interval, due within a day, not all at once.
#[test]
fn a_v1_store_migrates_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.db");
    let listing = listing::encode(&[Entry::file("e1.mkv", 7, None)]);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE scopes (id INTEGER PRIMARY KEY, source TEXT NOT NULL, root TEXT NOT NULL, UNIQUE (source, root));
             CREATE TABLE folders (scope INTEGER NOT NULL, path TEXT NOT NULL, fingerprint BLOB NOT NULL,
                 listing BLOB NOT NULL, PRIMARY KEY (scope, path)) WITHOUT ROWID;
             CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, scope INTEGER NOT NULL,
                 path TEXT NOT NULL, update_kind INTEGER NOT NULL, is_dir INTEGER NOT NULL, created_at INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, parked INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX outbox_by_target ON outbox (target, parked, id);
             INSERT INTO scopes (id, source, root) VALUES (1, 's', '/w');
             INSERT INTO outbox (target, scope, path, update_kind, is_dir, created_at) VALUES ('t', 1, '/w/A/e1.mkv', 0, 0, 0);
             PRAGMA user_version = 1; PRAGMA application_id = 1886417713;",
        )
        .unwrap();
        for p in ["/w", "/w/A"] {
            conn.execute(
                "INSERT INTO folders (scope, path, fingerprint, listing) VALUES (1, ?1, ?2, ?3)",
                rusqlite::params![p, &listing.fingerprint.0[..], &listing.bytes],
            )
            .unwrap();
        }
    }
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let store = SqliteStore::open(&db).unwrap();
    let scope = store.scope("s", "/w").unwrap();
    assert_eq!(scope.0, 1, "the scope keeps its id");
    let rec = store.folder(scope, "/w/A").unwrap().unwrap();
    assert_eq!(rec.listing, listing.bytes, "folder state kept");
    assert_eq!(store.pending("t", 10).unwrap().len(), 1, "outbox kept");
    for p in ["/w", "/w/A"] {
        let s = store
            .schedule(scope, p)
            .unwrap()
            .expect("a schedule per folder");
        assert_eq!(s.interval, std::time::Duration::ZERO, "unknown interval");
        let due = s.next_due.as_secs() - before;
        assert!((0..=86_400 + 5).contains(&due), "due within a day: {due}");
        assert!(!s.force_refresh && s.settling.is_none() && s.last_change.is_none());
        assert!(s.hold_until.is_none());
    }
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, pps_core::sqlite::SCHEMA_VERSION);
    assert_eq!(v, 11);
}

/// The history stays within its limits, in both stores, and a commit that fails leaves
/// no history line behind (the history never claims what did not happen).
#[test]
fn history_is_pruned_to_its_limits_and_rolls_back_with_its_commit() {
    use pps_core::store::{HistoryLimits, HistoryQuery};
    let dir = tempfile::tempdir().unwrap();
    let limits = HistoryLimits {
        max_age: std::time::Duration::from_secs(3600),
        max_rows: 5,
    };
    let sqlite = pps_core::sqlite::SqliteStore::open(dir.path().join("pps.db"))
        .unwrap()
        .with_history_limits(limits);
    let stores: Vec<Arc<dyn MtimeStore>> = vec![
        Arc::new(pps_core::memory::MemoryStore::new().with_history_limits(limits)),
        Arc::new(sqlite),
    ];
    for store in &stores {
        let s = store.scope("src", "/w").unwrap();
        for i in 0..12 {
            let c = Change::new(format!("/w/{i}"), Update::Created, false);
            store
                .commit(
                    s,
                    &Commit {
                        changes: vec![(c, Origin::Poll)],
                        ..Commit::default()
                    },
                )
                .unwrap();
        }
        let h = store
            .history(&HistoryQuery {
                limit: 100,
                ..HistoryQuery::default()
            })
            .unwrap();
        let paths: Vec<&str> = h.iter().map(|h| h.change.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/w/11", "/w/10", "/w/9", "/w/8", "/w/7"],
            "{store:?}"
        );
    }
    // Age: a line older than max_age goes with the next write.
    let db = dir.path().join("pps.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE history SET at = at - 7200 WHERE path = '/w/9'", [])
        .unwrap();
    let store = pps_core::sqlite::SqliteStore::open(&db)
        .unwrap()
        .with_history_limits(limits);
    let s = store.scope("src", "/w").unwrap();
    let one = |p: &str| Commit {
        changes: vec![(Change::new(p, Update::Modified, false), Origin::Poll)],
        folders: vec![(p.to_owned(), FolderRecord::unlisted())],
        ..Commit::default()
    };
    store.commit(s, &one("/w/12")).unwrap();
    let all = || {
        store
            .history(&HistoryQuery {
                limit: 100,
                ..HistoryQuery::default()
            })
            .unwrap()
            .into_iter()
            .map(|h| h.change.path)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        all(),
        ["/w/12", "/w/11", "/w/10", "/w/8"],
        "/w/9 by age, /w/7 by count"
    );
    // A commit interrupted at its first statement writes no history line.
    store.fail_next_commit_at(1);
    assert!(store.commit(s, &one("/w/13")).is_err());
    assert_eq!(all(), ["/w/12", "/w/11", "/w/10", "/w/8"]);
}
