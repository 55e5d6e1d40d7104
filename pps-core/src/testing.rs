//! The conformance suite: one set of checks that every source, store and target
//! implementation runs, so they all behave as the trait docs say.
//!
//! Enabled by the `testing` feature. Each function panics with a message naming the
//! check that failed; call them from a `#[test]`.
//!
//! - Sources: build [`STANDARD_TREE`] below a root of your backend (files with exactly
//!   the given sizes), then call [`source_conformance`].
//! - Stores: call [`store_conformance`] with a function that opens a fresh, empty store.
//! - Targets: call [`target_conformance`] with requests your target can accept and a
//!   function that reports what the server received.

use crate::clock::Timestamp;
use crate::error::ErrorKind;
use crate::listing::{self, Fingerprint};
use crate::path::join;
use crate::source::{DirectorySource, ListOptions};
use crate::store::{
    Commit, Event, FolderRecord, FolderSchedule, HistoryQuery, MtimeStore, NewScan, Origin,
    QueuedScan, Settling,
};
use crate::target::{ScanRequest, ScanTarget};
use crate::types::{Change, Entry, EntryKind, Mtime, Update};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Number of files in the standard tree's `Big` folder: large enough that cd2 splits
/// its listing into several replies.
pub const BIG_FOLDER_FILES: usize = 1200;

/// The tree a source under test must hold below its root: `(relative path, size)`,
/// where a size of `None` marks a folder. `Big/` also holds [`BIG_FOLDER_FILES`] files
/// named `f0000.mkv`, `f0001.mkv`, … of 1 byte each (see [`big_folder_files`]).
pub const STANDARD_TREE: &[(&str, Option<u64>)] = &[
    ("Movies", None),
    ("Movies/Film & Co #1 (2020)", None),
    ("Movies/Film & Co #1 (2020)/film.mkv", Some(1000)),
    ("Movies/Film & Co #1 (2020)/film.nfo", Some(10)),
    ("Movies/电影 🎬 100%+", None),
    ("Movies/电影 🎬 100%+/a+b 50%.mkv", Some(5)),
    ("Empty", None),
    ("top.txt", Some(3)),
    ("Big", None),
];

/// The files of the standard tree's `Big` folder, as relative paths.
pub fn big_folder_files() -> impl Iterator<Item = String> {
    (0..BIG_FOLDER_FILES).map(|i| format!("Big/f{i:04}.mkv"))
}

fn names(entries: &[Entry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

/// Checks a source against the trait's documented behaviour. `root` holds
/// [`STANDARD_TREE`]; `mtimes_known` says whether the source always knows mtimes.
pub async fn source_conformance(source: &dyn DirectorySource, root: &str, mtimes_known: bool) {
    let opts = ListOptions::default();

    // The root lists exactly its direct children, with kinds and sizes.
    let top = source.list(root, opts).await.expect("listing the root");
    assert_eq!(
        names(&top),
        ["Big", "Empty", "Movies", "top.txt"]
            .map(String::from)
            .into(),
        "root listing names"
    );
    for e in &top {
        let want = if e.name == "top.txt" {
            EntryKind::File
        } else {
            EntryKind::Dir
        };
        assert_eq!(e.kind, want, "kind of {}", e.name);
        if e.name == "top.txt" {
            assert_eq!(e.size, 3, "size of top.txt");
        }
        if mtimes_known {
            assert!(e.mtime.is_some(), "mtime of {} should be known", e.name);
        }
        if let Some(m) = e.mtime {
            // Neither the epoch nor year 1: a real time after 1990.
            assert!(
                m > Mtime::from_nanos(631_152_000_000_000_000),
                "mtime of {} is a sentinel",
                e.name
            );
        }
    }

    // Names with reserved URL characters, CJK and emoji round-trip exactly.
    let movies = source
        .list(&join(root, "Movies"), opts)
        .await
        .expect("listing Movies");
    assert_eq!(
        names(&movies),
        ["Film & Co #1 (2020)", "电影 🎬 100%+"]
            .map(String::from)
            .into(),
        "names with & # ( ) % + CJK and emoji"
    );
    let odd = source
        .list(&join(root, "Movies/电影 🎬 100%+"), opts)
        .await
        .expect("listing a folder with CJK and emoji in its path");
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0].name, "a+b 50%.mkv");
    assert_eq!(odd[0].size, 5);

    // An empty folder is Ok and empty.
    let empty = source
        .list(&join(root, "Empty"), opts)
        .await
        .expect("listing Empty");
    assert!(empty.is_empty(), "an empty folder lists no entries");

    // A missing folder is NotFound, never an empty listing.
    let missing = source.list(&join(root, "No Such Folder"), opts).await;
    assert_eq!(
        missing.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound),
        "listing a missing folder: {missing:?}"
    );

    // A large folder arrives whole.
    let big = source
        .list(&join(root, "Big"), opts)
        .await
        .expect("listing Big");
    assert_eq!(big.len(), BIG_FOLDER_FILES, "every entry of a large folder");
    let big_names = names(&big);
    assert_eq!(big_names.len(), BIG_FOLDER_FILES, "no entry twice");
    assert!(
        big_names.contains("f0000.mkv")
            && big_names.contains(&format!("f{:04}.mkv", BIG_FOLDER_FILES - 1))
    );

    // stat of a file, a folder, and a missing path.
    let film = source
        .stat(&join(root, "Movies/Film & Co #1 (2020)/film.mkv"))
        .await
        .expect("stat of a file");
    assert_eq!(
        (film.name.as_str(), film.kind, film.size),
        ("film.mkv", EntryKind::File, 1000)
    );
    let dir = source
        .stat(&join(root, "Movies"))
        .await
        .expect("stat of a folder");
    assert_eq!((dir.name.as_str(), dir.kind), ("Movies", EntryKind::Dir));
    let gone = source.stat(&join(root, "Movies/nothing.mkv")).await;
    assert_eq!(
        gone.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound),
        "stat of a missing path: {gone:?}"
    );

    // Concurrent listings of one folder agree.
    let path = join(root, "Movies/Film & Co #1 (2020)");
    let lists = futures_util::future::join_all((0..8).map(|_| source.list(&path, opts))).await;
    let first = names(lists[0].as_ref().expect("concurrent listing"));
    assert_eq!(first, ["film.mkv", "film.nfo"].map(String::from).into());
    for l in &lists {
        assert_eq!(
            names(l.as_ref().expect("concurrent listing")),
            first,
            "concurrent listings agree"
        );
    }
}

fn record(n: u8) -> FolderRecord {
    let entries = vec![Entry::file(format!("f{n}"), u64::from(n), None)];
    let enc = listing::encode(&entries);
    FolderRecord {
        fingerprint: enc.fingerprint,
        listing: enc.bytes,
    }
}

fn folders(store: &dyn MtimeStore, scope: crate::store::ScopeId) -> BTreeSet<String> {
    store
        .fingerprints(scope)
        .expect("fingerprints")
        .into_keys()
        .collect()
}

/// Checks a store against the trait's documented behaviour. `open` returns a fresh,
/// empty store each time it is called.
pub fn store_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    // Scopes are stable and never collide.
    let store = open();
    let a = store.scope("cd2", "/115/TV").expect("scope");
    assert_eq!(
        store.scope("cd2", "/115/TV").expect("scope"),
        a,
        "same pair, same scope"
    );
    let b = store.scope("cd2", "/115/Movies").expect("scope");
    let c = store.scope("nas", "/115/TV").expect("scope");
    assert!(
        a != b && a != c && b != c,
        "distinct pairs, distinct scopes"
    );

    // A commit's folders are visible in its own scope only.
    let paths = [
        "/a/TV",
        "/a/TV/S1",
        "/a/TV Shows",
        "/a/TV Shows/x",
        "/a/TV2",
        "/a/TV.bak",
    ];
    let commit = Commit {
        folders: paths
            .iter()
            .enumerate()
            .map(|(i, p)| ((*p).to_owned(), record(i as u8)))
            .collect(),
        ..Commit::default()
    };
    store.commit(a, &commit).expect("commit");
    assert_eq!(
        folders(&*store, a),
        paths.iter().map(|p| (*p).to_owned()).collect()
    );
    assert!(folders(&*store, b).is_empty(), "another scope sees nothing");
    let got = store
        .folder(a, "/a/TV/S1")
        .expect("folder")
        .expect("stored");
    assert_eq!(got, record(1), "a record reads back as written");
    assert_eq!(store.folder(b, "/a/TV/S1").expect("folder"), None);
    assert_eq!(store.folder(a, "/nope").expect("folder"), None);
    let fp: Fingerprint = store.fingerprints(a).expect("fingerprints")["/a/TV2"];
    assert_eq!(fp, record(4).fingerprint);

    // Removal works on whole components, and replaces before it writes.
    let commit = Commit {
        removed: vec!["/a/TV".to_owned()],
        folders: vec![("/a/TV/new".to_owned(), record(9))],
        ..Commit::default()
    };
    store.commit(a, &commit).expect("commit with removal");
    assert_eq!(
        folders(&*store, a),
        [
            "/a/TV Shows",
            "/a/TV Shows/x",
            "/a/TV.bak",
            "/a/TV/new",
            "/a/TV2"
        ]
        .map(String::from)
        .into(),
        "removing /a/TV keeps /a/TV Shows, /a/TV.bak and /a/TV2"
    );

    // forget counts what it drops, on whole components.
    assert_eq!(store.forget(a, "/a/TV Shows").expect("forget"), 2);
    assert_eq!(store.forget(a, "/a/none").expect("forget"), 0);
    assert_eq!(
        folders(&*store, a),
        ["/a/TV.bak", "/a/TV/new", "/a/TV2"]
            .map(String::from)
            .into()
    );
    store
        .commit(
            b,
            &Commit {
                folders: vec![("/m".into(), record(1))],
                ..Commit::default()
            },
        )
        .expect("commit");
    assert_eq!(store.forget(a, "/").expect("forget all"), 3);
    assert_eq!(
        folders(&*store, b).len(),
        1,
        "forgetting / of one scope keeps the others"
    );

    // A large listing round-trips.
    let mut big: Vec<Entry> = (0..10_000)
        .map(|i| {
            Entry::file(
                format!("episode {i:05}.mkv"),
                i,
                Some(Mtime::from_nanos(i as i64)),
            )
        })
        .collect();
    listing::sort_entries(&mut big);
    let enc = listing::encode(&big);
    let rec = FolderRecord {
        fingerprint: enc.fingerprint,
        listing: enc.bytes,
    };
    store
        .commit(
            c,
            &Commit {
                folders: vec![("/big".into(), rec.clone())],
                ..Commit::default()
            },
        )
        .expect("commit");
    assert_eq!(store.folder(c, "/big").expect("folder"), Some(rec));

    // The outbox: order, per target, limit, failure, park, complete.
    let store = open();
    let s = store.scope("src", "/w").expect("scope");
    let scan = |t: &str, p: &str, u| NewScan {
        target: t.into(),
        change: Change::new(p, u, false),
    };
    let commit = Commit {
        scans: vec![
            scan("plex", "/w/1", Update::Created),
            scan("emby", "/w/1", Update::Created),
            scan("plex", "/w/2", Update::Modified),
            scan("plex", "/w/3", Update::Deleted),
        ],
        ..Commit::default()
    };
    store.commit(s, &commit).expect("commit scans");
    let pending = store.pending("plex", 10).expect("pending");
    assert_eq!(
        pending
            .iter()
            .map(|q| q.change.path.as_str())
            .collect::<Vec<_>>(),
        ["/w/1", "/w/2", "/w/3"],
        "oldest first"
    );
    assert_eq!(pending[2].change.update, Update::Deleted);
    assert!(
        pending.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase"
    );
    assert_eq!(store.pending("plex", 2).expect("pending").len(), 2, "limit");
    assert_eq!(store.pending("emby", 10).expect("pending").len(), 1);
    assert!(store.pending("jellyfin", 10).expect("pending").is_empty());

    assert_eq!(pending[0].next_try, None, "no failure, no next try");
    assert!(store.failing("plex", 10).expect("failing").is_empty());
    store
        .record_failure(
            &[pending[0].id],
            "503 from server",
            Timestamp::from_secs(1_700_000_060),
        )
        .expect("record failure");
    let again = store.pending("plex", 10).expect("pending");
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("503 from server"));
    assert_eq!(again[0].next_try, Some(Timestamp::from_secs(1_700_000_060)));
    let failing = store.failing("plex", 10).expect("failing");
    assert_eq!(
        failing.iter().map(|q| q.id).collect::<Vec<_>>(),
        [pending[0].id],
        "only scans that failed are failing"
    );

    store
        .park(&[pending[1].id], "no library contains /w/2")
        .expect("park");
    let again = store.pending("plex", 10).expect("pending");
    assert_eq!(again.len(), 2, "a parked scan is not pending");
    let parked = store.parked("plex").expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].last_error.as_deref(),
        Some("no library contains /w/2")
    );
    // The same path queued again and refused again: parked once, with the newer reason.
    store
        .commit(
            s,
            &Commit {
                scans: vec![NewScan {
                    target: "plex".into(),
                    change: parked[0].change.clone(),
                }],
                ..Commit::default()
            },
        )
        .expect("commit");
    let newer = store.pending("plex", 10).expect("pending");
    let newer = newer
        .iter()
        .find(|q| q.change.path == "/w/2")
        .expect("queued again")
        .id;
    store.park(&[newer], "still no library").expect("park");
    let parked = store.parked("plex").expect("parked");
    assert_eq!(
        parked
            .iter()
            .map(|q| (q.id, q.last_error.as_deref()))
            .collect::<Vec<_>>(),
        [(newer, Some("still no library"))]
    );

    store
        .complete(&[pending[0].id, pending[2].id, 999_999], "/mnt/w/1")
        .expect("complete");
    assert!(
        store.pending("plex", 10).expect("pending").is_empty(),
        "completed scans leave"
    );
    let stats = store.stats().expect("stats");
    assert!(
        stats.outbox.contains(&("plex".to_owned(), 0, 1)),
        "stats: {stats:?}"
    );
    assert!(
        stats.outbox.contains(&("emby".to_owned(), 1, 0)),
        "stats: {stats:?}"
    );
    store
        .commit(s, &Commit::default())
        .expect("an empty commit is fine");

    outbox_repair_conformance(open);
    replace_conformance(open);
    schedule_conformance(open);
    history_conformance(open);
    calls_conformance(open);
    confirm_conformance(open);
    notifier_conformance(open);
}

/// Notifiers: events of their own in the history, read oldest first after a cursor,
/// and a state that round-trips.
fn notifier_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    use crate::store::NotifierState;
    let store = open();
    assert_eq!(store.last_history_id().expect("last"), 0);
    assert!(store.history_after(0, 10).expect("after").is_empty());
    let s = store.scope("cd2", "/115").expect("scope");
    store
        .log_event(Some(s), Event::SourceDown, "/115", "connection refused")
        .expect("log");
    store
        .log_event(None, Event::Throttled, "cd2", "rate halved to 0.45/s")
        .expect("log");
    store
        .log_event(Some(s), Event::SourceUp, "/115", "answers again")
        .expect("log");
    let last = store.last_history_id().expect("last");
    let all = store.history_after(0, 10).expect("after");
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].id, last);
    let events: Vec<Event> = all.iter().map(|h| h.event).collect();
    assert_eq!(
        events,
        [Event::SourceDown, Event::Throttled, Event::SourceUp],
        "oldest first"
    );
    assert_eq!(all[0].watch, Some(("cd2".to_owned(), "/115".to_owned())));
    assert_eq!(all[0].detail.as_deref(), Some("connection refused"));
    assert_eq!(all[1].watch, None);
    let rest = store.history_after(all[0].id, 1).expect("after");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event, Event::Throttled);
    let found = store
        .history(&HistoryQuery {
            events: vec![Event::SourceDown],
            limit: 10,
            ..HistoryQuery::default()
        })
        .expect("history");
    assert_eq!(found.len(), 1, "the history filters them like any event");

    assert_eq!(store.notifier("tg").expect("state"), None);
    let state = NotifierState {
        cursor: last,
        failures: 2,
        last_error: Some("429".into()),
        last_sent: Some(Timestamp::from_secs(1_800_000_000)),
        sent: 7,
        parked: Some("refused".into()),
    };
    store.save_notifier("tg", &state).expect("save");
    assert_eq!(store.notifier("tg").expect("state"), Some(state.clone()));
    let again = NotifierState {
        parked: None,
        ..state
    };
    store.save_notifier("tg", &again).expect("save");
    assert_eq!(store.notifier("tg").expect("state"), Some(again));
    assert_eq!(store.notifier("other").expect("state"), None);
}

/// Confirmations: written with the scan's completion, due in order, rescheduled,
/// settled with history and remembered ids, stuck and retried, per target.
fn confirm_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    use crate::confirm::{Item, NewConfirm, Outcome};
    let store = open();
    let s = store.scope("src", "/w").expect("scope");
    let scan = |t: &str, p: &str, u: Update| NewScan {
        target: t.into(),
        change: Change::new(p, u, false),
    };
    let commit = Commit {
        scans: vec![
            scan("plex", "/w/TV/S/e1.mkv", Update::Created),
            scan("plex", "/w/TV/S/e2.mkv", Update::Created),
            scan("plex", "/w/TV/S/e1.srt", Update::Created),
            scan("emby", "/w/TV/S/e1.mkv", Update::Created),
        ],
        ..Commit::default()
    };
    store.commit(s, &commit).expect("commit scans");
    let plex = store.pending("plex", 10).expect("pending");
    assert_eq!(plex.len(), 3);
    assert_eq!(plex[0].scope, s, "a queued scan names its watch");
    let t = |secs: i64| Timestamp::from_secs(1_000_000 + secs);
    let new = |q: &QueuedScan, path: &str, first: i64| NewConfirm {
        scan: q.id,
        path: path.into(),
        sent_at: t(0),
        next_check: t(first),
        deadline: t(600),
    };
    let ids: Vec<i64> = plex.iter().map(|q| q.id).collect();
    store
        .complete_confirming(
            &ids,
            "/mnt/TV/S",
            &[
                new(&plex[0], "/mnt/TV/S/e1.mkv", 10),
                new(&plex[1], "/mnt/TV/S/e2.mkv", 5),
                // Names a scan outside `ids`: skipped.
                NewConfirm {
                    scan: 999_999,
                    ..new(&plex[0], "/mnt/x.mkv", 1)
                },
            ],
        )
        .expect("complete with confirmations");
    assert!(store.pending("plex", 10).expect("pending").is_empty());
    assert!(
        store
            .confirms_due("plex", t(4), 10)
            .expect("due")
            .is_empty()
    );
    let due = store.confirms_due("plex", t(10), 10).expect("due");
    let paths: Vec<&str> = due.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/mnt/TV/S/e2.mkv", "/mnt/TV/S/e1.mkv"],
        "earliest first"
    );
    assert_eq!(
        due[1].change.path, "/w/TV/S/e1.mkv",
        "the source change is kept"
    );
    assert_eq!(due[1].changed_at, plex[0].queued_at);
    assert_eq!(due[1].deadline, t(600));
    assert_eq!(store.confirms_due("plex", t(10), 1).expect("due").len(), 1);
    assert!(
        store
            .confirms_due("emby", t(10), 10)
            .expect("due")
            .is_empty(),
        "per target"
    );
    assert_eq!(store.next_confirm("plex").expect("next"), Some(t(5)));
    assert_eq!(store.next_confirm("emby").expect("next"), None);

    // A check that found nothing reschedules.
    let mut e2 = due[0].clone();
    e2.next_check = t(30);
    e2.checks = 1;
    e2.remedied = true;
    e2.note = Some("PathNotFound".into());
    store.update_confirm(&e2).expect("update");
    assert_eq!(store.next_confirm("plex").expect("next"), Some(t(10)));
    let again = store.confirms_due("plex", t(30), 10).expect("due");
    let back = again.iter().find(|c| c.id == e2.id).expect("still pending");
    assert_eq!((back.checks, back.remedied), (1, true));
    assert_eq!(back.note.as_deref(), Some("PathNotFound"));

    // Indexed: a history line with the time taken, the id remembered.
    let item = Item {
        id: "4711".into(),
        title: "S S01E01".into(),
        path: "/mnt/TV/S/e1.mkv".into(),
    };
    store
        .settle_confirm(due[1].id, &Outcome::Indexed(item))
        .expect("indexed");
    assert_eq!(
        store.known_items("plex", "/mnt/TV/S").expect("known"),
        ["4711"]
    );
    assert_eq!(
        store
            .known_items("plex", "/mnt/TV/S/e1.mkv")
            .expect("known"),
        ["4711"]
    );
    assert!(
        store
            .known_items("plex", "/mnt/TV/Show")
            .expect("known")
            .is_empty(),
        "whole components"
    );
    assert!(
        store
            .known_items("emby", "/mnt/TV/S")
            .expect("known")
            .is_empty(),
        "per target"
    );
    let h = store
        .history(&HistoryQuery {
            events: vec![Event::Indexed],
            limit: 10,
            ..HistoryQuery::default()
        })
        .expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].change.path, "/w/TV/S/e1.mkv");
    assert_eq!(h[0].target.as_deref(), Some("plex"));
    assert_eq!(h[0].detail.as_deref(), Some("S S01E01 (id 4711)"));
    assert!(h[0].took.is_some(), "indexed lines carry the time taken");
    assert_eq!(h[0].watch, Some(("src".to_owned(), "/w".to_owned())));
    assert_eq!(
        store
            .indexed_times("plex", Timestamp::default())
            .expect("times")
            .len(),
        1
    );
    assert!(
        store
            .indexed_times("emby", Timestamp::default())
            .expect("times")
            .is_empty()
    );
    store
        .settle_confirm(due[1].id, &Outcome::Removed)
        .expect("a settled id is ignored");

    // Stuck: kept and listed, not due, then retried as a new scan.
    store
        .settle_confirm(e2.id, &Outcome::Stuck("not found after 10 min".into()))
        .expect("stuck");
    assert!(
        store
            .confirms_due("plex", t(10_000), 10)
            .expect("due")
            .is_empty()
    );
    assert_eq!(store.next_confirm("plex").expect("next"), None);
    let stuck = store.stuck("plex").expect("stuck");
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].stuck.as_deref(), Some("not found after 10 min"));
    let stats = store.stats().expect("stats");
    assert!(
        stats.confirms.contains(&("plex".to_owned(), 0, 1)),
        "{stats:?}"
    );
    assert_eq!(store.retry_stuck(Some("emby")).expect("retry"), 0);
    assert_eq!(store.retry_stuck(Some("plex")).expect("retry"), 1);
    assert!(store.stuck("plex").expect("stuck").is_empty());
    let requeued = store.pending("plex", 10).expect("pending");
    assert_eq!(requeued.len(), 1);
    assert_eq!(
        requeued[0].change,
        Change::new("/w/TV/S/e2.mkv", Update::Created, false)
    );
    assert_eq!(requeued[0].attempts, 0);

    // A later report for the same path replaces the confirmation: its clock restarts.
    store
        .complete_confirming(
            &[requeued[0].id],
            "/mnt/TV/S",
            &[new(&requeued[0], "/mnt/TV/S/e2.mkv", 100)],
        )
        .expect("complete");
    let due = store.confirms_due("plex", t(100), 10).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].checks, 0);

    // Removed: the remembered ids at or below the path are forgotten.
    store
        .settle_confirm(due[0].id, &Outcome::Removed)
        .expect("removed");
    assert!(
        store
            .confirms_due("plex", t(10_000), 10)
            .expect("due")
            .is_empty()
    );
    let commit = Commit {
        scans: vec![NewScan {
            target: "plex".into(),
            change: Change::new("/w/TV/S", Update::Deleted, true),
        }],
        ..Commit::default()
    };
    store.commit(s, &commit).expect("commit");
    let del = store.pending("plex", 10).expect("pending");
    store
        .complete_confirming(&[del[0].id], "/mnt/TV", &[new(&del[0], "/mnt/TV/S", 1)])
        .expect("complete");
    let due = store.confirms_due("plex", t(1), 10).expect("due");
    store
        .settle_confirm(due[0].id, &Outcome::Removed)
        .expect("removed");
    assert!(
        store
            .known_items("plex", "/mnt/TV/S")
            .expect("known")
            .is_empty(),
        "a removed folder forgets the ids below it"
    );
    let removed = store
        .history(&HistoryQuery {
            events: vec![Event::Removed],
            limit: 10,
            ..HistoryQuery::default()
        })
        .expect("history");
    assert_eq!(removed.len(), 2);
    assert!(removed.iter().all(|h| h.took.is_some()));
}

/// Calls per source and minute: counted, summed from a minute on, per hour for the
/// chart, kept two days; the shared budget's grants, waits, ceilings and pauses.
fn calls_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    use crate::budget::{CallLimits, Grant, WaitFor};
    let store = open();
    // 1_800_000_000 is a whole hour (500,000 of them).
    let h = |n: i64| Timestamp::from_secs(1_800_000_000 + n * 3600);
    let m = |t: Timestamp, mins: u64| t.plus(Duration::from_secs(mins * 60));
    assert_eq!(store.calls_since("cd2", h(0)).expect("calls"), 0);
    store.record_calls("cd2", h(0), 5).expect("record");
    store.record_calls("cd2", m(h(0), 1), 2).expect("record");
    store.record_calls("cd2", h(3), 10).expect("record");
    store.record_calls("other", h(3), 100).expect("record");
    store.record_calls("cd2", h(3), 0).expect("nothing");
    assert_eq!(store.calls_since("cd2", h(0)).expect("calls"), 17);
    assert_eq!(
        store
            .calls_since("cd2", h(0).plus(Duration::from_secs(30)))
            .expect("calls"),
        17,
        "the minute holding `since` counts whole"
    );
    assert_eq!(store.calls_since("cd2", m(h(0), 1)).expect("calls"), 12);
    assert_eq!(store.calls_since("cd2", m(h(0), 2)).expect("calls"), 10);
    assert_eq!(store.calls_since("other", h(0)).expect("calls"), 100);
    assert_eq!(
        store
            .calls_by_hour("cd2", h(3).plus(Duration::from_secs(5)), 5)
            .expect("by hour"),
        [0, 7, 0, 0, 10],
        "oldest first, the current hour last"
    );
    // Two days and an hour later the old minutes are gone.
    store.record_calls("cd2", h(52), 1).expect("record");
    assert_eq!(store.calls_since("cd2", h(0)).expect("calls"), 1);

    // The shared budget: one a second with a burst of two; the calls it grants are
    // counted; a wait counts nothing.
    let t = 1_900_000_020.0; // 20 s into a minute
    let limits = CallLimits::new(1.0).with_burst(2);
    let take = |at: f64, l: &CallLimits| store.take_call("cd2", at, l).expect("take");
    assert_eq!(take(t, &limits), Grant::Now, "a new source starts full");
    assert_eq!(take(t, &limits), Grant::Now, "its burst");
    assert_eq!(
        take(t + 0.25, &limits),
        Grant::Wait(Duration::from_millis(750), WaitFor::Rate)
    );
    assert_eq!(take(t + 1.0, &limits), Grant::Now);
    let at = |s: f64| Timestamp::from_secs(s as i64);
    assert_eq!(store.calls_since("cd2", at(t)).expect("calls"), 3);
    assert_eq!(
        store.take_call("other", t, &limits).expect("take"),
        Grant::Now,
        "per source"
    );
    // A ceiling per minute of 4: the minute holds 3, one more, then a wait.
    let ceiling = limits.with_ceilings(Some(4), None, None);
    assert_eq!(take(t + 2.0, &ceiling), Grant::Now);
    assert!(matches!(
        take(t + 3.0, &ceiling),
        Grant::Wait(_, WaitFor::Minute)
    ));
    // A day's ceiling counts what the minutes before hold (3 + 1 + the 4 of today).
    let day = limits.with_ceilings(None, None, Some(4));
    assert!(matches!(take(t + 10.0, &day), Grant::Wait(_, WaitFor::Day)));
    // A pause holds every call; a shorter one never shortens it.
    store.pause_calls("cd2", t + 100.0).expect("pause");
    store.pause_calls("cd2", t + 50.0).expect("pause");
    assert_eq!(
        take(t + 40.0, &limits),
        Grant::Wait(Duration::from_secs(60), WaitFor::Paused)
    );
    assert_eq!(take(t + 100.0, &limits), Grant::Now);
}

/// The history: changes written with their commit, one line per delivery outcome
/// written with the outbox change it records, newest first, filters and paging.
fn history_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    use crate::store::{Event, HistoryQuery};
    let store = open();
    let s = store.scope("cd2", "/115/TV").expect("scope");
    let all = |q: HistoryQuery| {
        store
            .history(&HistoryQuery { limit: 100, ..q })
            .expect("history")
    };
    assert!(
        all(HistoryQuery::default()).is_empty(),
        "a new store has none"
    );
    let show = Change::new("/115/TV/Show/e1.mkv", Update::Created, false);
    let gone = Change::new("/115/TV/Old", Update::Deleted, true);
    store
        .commit(
            s,
            &Commit {
                scans: ["plex", "emby"]
                    .iter()
                    .flat_map(|t| {
                        [show.clone(), gone.clone()].map(|c| NewScan {
                            target: (*t).into(),
                            change: c,
                        })
                    })
                    .collect(),
                changes: vec![
                    (show.clone(), Origin::Poll),
                    (gone.clone(), Origin::Webhook),
                ],
                ..Commit::default()
            },
        )
        .expect("commit");
    let changes = all(HistoryQuery::default());
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|h| h.event == Event::Change
        && h.target.is_none()
        && h.watch == Some(("cd2".into(), "/115/TV".into()))));
    assert_eq!(changes[0].change, gone, "newest first");
    // What made pps look is kept with each change.
    assert_eq!(changes[0].origin(), Some(Origin::Webhook));
    assert_eq!(changes[1].origin(), Some(Origin::Poll));
    assert!(changes[0].id > changes[1].id);

    let plex = store.pending("plex", 10).expect("pending");
    let emby = store.pending("emby", 10).expect("pending");
    store
        .record_failure(&[plex[0].id], "503 from plex", Timestamp::from_secs(1))
        .expect("failure");
    store
        .complete(&[plex[0].id], "/mnt/115/TV/Show")
        .expect("complete");
    store
        .park(&[plex[1].id], "no library contains /mnt/115/TV/Old")
        .expect("park");
    store.drop_scans("emby", None).expect("drop");
    assert_eq!(emby.len(), 2);
    let h = all(HistoryQuery::default());
    let kinds: Vec<(Event, Option<&str>, Option<&str>)> = h
        .iter()
        .map(|h| (h.event, h.target.as_deref(), h.detail.as_deref()))
        .collect();
    assert_eq!(
        kinds[..5],
        [
            (Event::Dropped, Some("emby"), Some("dropped by hand")),
            (Event::Dropped, Some("emby"), Some("dropped by hand")),
            (
                Event::Parked,
                Some("plex"),
                Some("no library contains /mnt/115/TV/Old")
            ),
            (Event::Sent, Some("plex"), Some("/mnt/115/TV/Show")),
            (Event::Retried, Some("plex"), Some("503 from plex")),
        ],
        "{h:#?}"
    );
    assert_eq!(
        h[3].change, show,
        "a delivery line names the change it settled"
    );
    assert_eq!(h[3].watch, Some(("cd2".into(), "/115/TV".into())));
    assert_eq!(h.len(), 7);

    // Filters.
    let only = |q: HistoryQuery| all(q).iter().map(|h| h.event).collect::<Vec<_>>();
    assert_eq!(
        only(HistoryQuery {
            target: Some("plex".into()),
            ..HistoryQuery::default()
        }),
        [Event::Parked, Event::Sent, Event::Retried]
    );
    assert_eq!(
        only(HistoryQuery {
            events: vec![Event::Sent, Event::Parked],
            ..HistoryQuery::default()
        }),
        [Event::Parked, Event::Sent]
    );
    assert_eq!(
        all(HistoryQuery {
            path: Some("Show/e1".into()),
            ..HistoryQuery::default()
        })
        .len(),
        4,
        "the change, its retry and its delivery to plex, its drop for emby"
    );
    assert_eq!(
        all(HistoryQuery {
            path: Some("%".into()),
            ..HistoryQuery::default()
        })
        .len(),
        0,
        "a path filter is text, not a pattern"
    );
    assert!(
        all(HistoryQuery {
            source: Some("local".into()),
            ..HistoryQuery::default()
        })
        .is_empty()
    );
    assert!(
        all(HistoryQuery {
            since: Some(Timestamp::from_secs(i64::MAX / 2)),
            ..HistoryQuery::default()
        })
        .is_empty()
    );
    // Paging: pages of 3 by the last id seen give every line once, in order.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .history(&HistoryQuery {
                before,
                limit: 3,
                ..HistoryQuery::default()
            })
            .expect("page");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|h| h.id);
        seen.extend(page.into_iter().map(|h| h.id));
    }
    assert_eq!(seen, h.iter().map(|h| h.id).collect::<Vec<_>>());
    assert!(
        store
            .history(&HistoryQuery::default())
            .expect("limit 0")
            .is_empty()
    );
}

/// `unpark` and `drop_scans`: the ways out for parked scans.
fn outbox_repair_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    let store = open();
    let s = store.scope("src", "/w").expect("scope");
    let scan = |t: &str, p: &str| NewScan {
        target: t.into(),
        change: Change::new(p, Update::Created, false),
    };
    let commit = Commit {
        scans: vec![
            scan("plex", "/w/TV/a"),
            scan("plex", "/w/TV Shows/b"),
            scan("plex", "/w/Movies/c"),
            scan("emby", "/w/TV/a"),
        ],
        ..Commit::default()
    };
    store.commit(s, &commit).expect("commit scans");
    let plex: Vec<i64> = store
        .pending("plex", 10)
        .expect("pending")
        .iter()
        .map(|q| q.id)
        .collect();
    let emby: Vec<i64> = store
        .pending("emby", 10)
        .expect("pending")
        .iter()
        .map(|q| q.id)
        .collect();
    store.park(&plex[..2], "no library").expect("park");
    store.park(&emby, "401").expect("park");
    assert_eq!(store.unpark(Some("plex")).expect("unpark"), 2);
    let back = store.pending("plex", 10).expect("pending");
    assert_eq!(back.len(), 3, "unparked scans are pending again");
    assert!(
        back.iter()
            .all(|q| q.attempts == 0 && q.last_error.is_none()),
        "a fresh start: {back:?}"
    );
    assert_eq!(
        store.parked("emby").expect("parked").len(),
        1,
        "other targets keep theirs"
    );
    assert_eq!(store.unpark(None).expect("unpark all"), 1);
    assert_eq!(store.unpark(None).expect("nothing parked"), 0);

    // Dropping is on whole components: /w/TV never takes /w/TV Shows.
    assert_eq!(store.drop_scans("plex", Some("/w/TV")).expect("drop"), 1);
    let left: Vec<String> = store
        .pending("plex", 10)
        .expect("pending")
        .into_iter()
        .map(|q| q.change.path)
        .collect();
    assert_eq!(left, ["/w/TV Shows/b", "/w/Movies/c"]);
    assert_eq!(
        store.pending("emby", 10).expect("pending").len(),
        1,
        "per target"
    );
    assert_eq!(store.drop_scans("plex", None).expect("drop all"), 2);
    assert!(store.pending("plex", 10).expect("pending").is_empty());
}

/// `replace_scope`: a re-index swaps its baseline in at once, keeping old state where it
/// could not list.
fn replace_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    let store = open();
    let live = store.scope("cd2", "/w").expect("scope");
    let staging = store.scope("\u{1}staging:cd2", "/w").expect("scope");
    let other = store.scope("cd2", "/x").expect("scope");
    let put = |scope, folders: &[(&str, u8)], schedules: &[(&str, i64)]| {
        let commit = Commit {
            folders: folders
                .iter()
                .map(|(p, r)| ((*p).to_owned(), record(*r)))
                .collect(),
            schedules: schedules
                .iter()
                .map(|(p, d)| ((*p).to_owned(), sched(*d, 60)))
                .collect(),
            ..Commit::default()
        };
        store.commit(scope, &commit).expect("commit");
    };
    put(
        live,
        &[
            ("/w", 1),
            ("/w/A", 1),
            ("/w/B", 1),
            ("/w/B/x", 1),
            ("/w/Gone", 1),
        ],
        &[
            ("/w", 10),
            ("/w/A", 10),
            ("/w/B", 10),
            ("/w/B/x", 10),
            ("/w/Gone", 10),
        ],
    );
    put(other, &[("/x", 7)], &[("/x", 70)]);
    // The new baseline: /w/B could not be listed (a placeholder), /w/New appeared.
    let staged = Commit {
        folders: vec![
            ("/w".into(), record(2)),
            ("/w/A".into(), record(2)),
            ("/w/B".into(), FolderRecord::unlisted()),
            ("/w/New".into(), record(2)),
            ("/w/Never".into(), FolderRecord::unlisted()),
        ],
        schedules: vec![
            ("/w".into(), sched(20, 60)),
            ("/w/New".into(), sched(20, 60)),
        ],
        ..Commit::default()
    };
    store.commit(staging, &staged).expect("commit");
    store
        .replace_scope(live, staging, &["/w/B".to_owned(), "/w/Never".to_owned()])
        .expect("replace");
    assert_eq!(
        folders(&*store, live),
        ["/w", "/w/A", "/w/B", "/w/B/x", "/w/New", "/w/Never"]
            .map(String::from)
            .into(),
        "new state, old state kept under the folder that failed, gone folders gone"
    );
    assert_eq!(store.folder(live, "/w").expect("folder"), Some(record(2)));
    assert_eq!(
        store.folder(live, "/w/B").expect("folder"),
        Some(record(1)),
        "the old state of a folder the re-index could not list survives"
    );
    assert!(
        store
            .folder(live, "/w/Never")
            .expect("folder")
            .is_some_and(|r| r.is_unlisted()),
        "a folder with no old state keeps its placeholder"
    );
    assert_eq!(
        due_paths(&*store, live, 15),
        ["/w/B", "/w/B/x"],
        "kept folders keep their schedules; the rest follow the new baseline"
    );
    assert_eq!(
        due_paths(&*store, live, 25),
        ["/w/B", "/w/B/x", "/w", "/w/New"]
    );
    assert!(
        folders(&*store, staging).is_empty(),
        "the staging scope is left empty"
    );
    assert!(due_paths(&*store, staging, i64::MAX).is_empty());
    assert_eq!(folders(&*store, other).len(), 1, "other scopes untouched");
    assert_eq!(due_paths(&*store, other, 100), ["/x"]);
}

fn sched(due: i64, interval: u64) -> FolderSchedule {
    FolderSchedule {
        interval: Duration::from_secs(interval),
        next_due: Timestamp::from_secs(due),
        ..FolderSchedule::default()
    }
}

fn due_paths(store: &dyn MtimeStore, scope: crate::store::ScopeId, now: i64) -> Vec<String> {
    store
        .due(scope, Timestamp::from_secs(now), usize::MAX)
        .expect("due")
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// The schedule half of [`store_conformance`].
fn schedule_conformance(open: &dyn Fn() -> Arc<dyn MtimeStore>) {
    let store = open();
    let a = store.scope("cd2", "/a").expect("scope");
    let b = store.scope("cd2", "/b").expect("scope");

    // Every field round-trips, also a schedule for a folder with no state.
    let full = FolderSchedule {
        interval: Duration::from_secs(3600),
        next_due: Timestamp::from_secs(1_700_000_000),
        last_change: Some(Timestamp::from_secs(1_699_999_000)),
        hold_until: Some(Timestamp::from_secs(1_700_001_000)),
        force_refresh: true,
        hinted_by: Some(Origin::Webhook),
        settling: Some(Settling {
            fingerprint: record(7).fingerprint,
            since: Timestamp::from_secs(1_699_999_500),
        }),
        burst: Some(Timestamp::from_secs(1_699_998_000)),
        cadence: Some(Duration::from_secs(7 * 86_400)),
        listed: Some(Timestamp::from_secs(1_699_999_900)),
        evidence: true,
        seen_change: Some(Timestamp::from_secs(1_699_999_950)),
        epoch: Some(Timestamp::from_secs(1_699_000_000)),
        changes: 3,
    };
    let commit = Commit {
        folders: vec![("/a".into(), record(1)), ("/a/TV".into(), record(2))],
        schedules: vec![
            ("/a".into(), sched(300, 60)),
            ("/a/TV".into(), full),
            ("/a/TV Shows".into(), sched(100, 0)),
            ("/a/TV/S1".into(), sched(200, 60)),
            ("/a/TV/S2".into(), sched(200, 60)),
        ],
        ..Commit::default()
    };
    store.commit(a, &commit).expect("commit schedules");
    assert_eq!(store.schedule(a, "/a/TV").expect("schedule"), Some(full));
    // The nearest scheduled folder of a chain of ancestors, in one call.
    let chain = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let near = store
        .nearest_schedule(a, &chain(&["/a", "/a/TV", "/a/TV/S9", "/a/TV/S9/e1.mkv"]))
        .expect("nearest");
    assert_eq!(
        near,
        Some(("/a/TV".to_owned(), full)),
        "the deepest that has one"
    );
    assert_eq!(
        store
            .nearest_schedule(b, &chain(&["/a", "/a/TV"]))
            .expect("nearest"),
        None,
        "per scope"
    );
    assert_eq!(store.nearest_schedule(a, &[]).expect("nearest"), None);
    let deep: Vec<String> = (0..1200).map(|i| format!("/a/TV/{i}")).collect();
    let mut long = chain(&["/a"]);
    long.extend(deep);
    assert_eq!(
        store
            .nearest_schedule(a, &long)
            .expect("nearest")
            .map(|(p, _)| p),
        Some("/a".to_owned()),
        "more candidates than one query takes"
    );
    store.check_writable().expect("a fresh store is writable");
    let mut all = store.schedules(a).expect("schedules");
    all.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        all.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["/a", "/a/TV", "/a/TV Shows", "/a/TV/S1", "/a/TV/S2"],
        "every schedule of the scope, no other's"
    );
    assert_eq!(all[1].1, full);
    assert!(store.schedules(b).expect("schedules").is_empty());
    assert_eq!(
        store.schedule(a, "/a/TV Shows").expect("schedule"),
        Some(sched(100, 0)),
        "a schedule needs no folder state; interval 0 stays 0"
    );
    assert_eq!(store.schedule(b, "/a/TV").expect("schedule"), None);
    assert_eq!(store.schedule(a, "/nope").expect("schedule"), None);

    // Due: best first (see `MtimeStore::due`), `now` inclusive, limited, per scope. With
    // nothing known of these folders but their intervals, S1 and S2 (interval 60, so a
    // 600 s gap, due 100 s) expect the most, then /a, then TV Shows (interval unknown:
    // a ten-day gap); S1 and S2 tie and go by due time, then path.
    assert_eq!(
        due_paths(&*store, a, 300),
        ["/a/TV/S1", "/a/TV/S2", "/a", "/a/TV Shows"],
        "by expected changes, ties by due time and path"
    );
    assert_eq!(
        due_paths(&*store, a, 200),
        ["/a/TV/S1", "/a/TV/S2", "/a/TV Shows"]
    );
    assert_eq!(due_paths(&*store, a, 99), Vec::<String>::new());
    assert!(
        due_paths(&*store, b, i64::MAX).is_empty(),
        "other scopes see nothing"
    );
    let two = store
        .due(a, Timestamp::from_secs(1000), 2)
        .expect("due with a limit");
    assert_eq!(two.len(), 2, "limit");
    assert_eq!(two[0], ("/a/TV/S1".to_owned(), sched(200, 60)));
    assert!(
        store
            .due(a, Timestamp::from_secs(1000), 0)
            .expect("due")
            .is_empty()
    );

    // Replacing a schedule moves the folder in the due order: evidence of a change
    // (a parent's listing showed it move) puts TV Shows first.
    store
        .commit(
            a,
            &Commit {
                schedules: vec![(
                    "/a/TV Shows".into(),
                    sched(250, 120).promoted(Timestamp::from_secs(250), false),
                )],
                ..Commit::default()
            },
        )
        .expect("reschedule");
    assert_eq!(
        due_paths(&*store, a, 300),
        ["/a/TV Shows", "/a/TV/S1", "/a/TV/S2", "/a"]
    );
    // A starved folder (last listed at or before the cut: its interval ago from its
    // due time, here /a, listed at 240, and S1/S2 at 140) goes right after evidence,
    // longest unlisted first.
    let ranked = |starved: i64| -> Vec<String> {
        store
            .due_ranked(
                a,
                Timestamp::from_secs(300),
                Some(Timestamp::from_secs(starved)),
                usize::MAX,
            )
            .expect("due ranked")
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    assert_eq!(
        ranked(240),
        ["/a/TV Shows", "/a/TV/S1", "/a/TV/S2", "/a"],
        "all starved: the longest unlisted first"
    );
    store
        .commit(
            a,
            &Commit {
                schedules: vec![("/a".into(), {
                    let mut s = sched(300, 60);
                    s.listed = Some(Timestamp::from_secs(10));
                    s
                })],
                ..Commit::default()
            },
        )
        .expect("reschedule");
    assert_eq!(
        ranked(100),
        ["/a/TV Shows", "/a", "/a/TV/S1", "/a/TV/S2"],
        "only /a starved (listed at 10): it passes S1 and S2"
    );
    assert_eq!(
        due_paths(&*store, a, 300),
        ["/a/TV Shows", "/a", "/a/TV/S1", "/a/TV/S2"],
        "unlisted for 290 s, /a now expects the most anyway"
    );

    // The summary for `status`.
    let sum = store
        .schedule_summary(a, Timestamp::from_secs(200), Duration::from_secs(60))
        .expect("summary");
    assert_eq!(sum.folders, 5);
    assert_eq!(sum.due_now, 2, "S1 and S2 at 200");
    assert_eq!(sum.due_within, 3, "and TV Shows at 250");
    assert_eq!(sum.longest_interval, Duration::from_secs(3600));
    assert_eq!(sum.next_due, Some(Timestamp::from_secs(200)));
    assert_eq!((sum.forced, sum.settling), (1, 1));
    let empty = store
        .schedule_summary(b, Timestamp::from_secs(0), Duration::from_secs(60))
        .expect("summary");
    assert_eq!((empty.folders, empty.next_due), (0, None));

    // Removal and forget drop schedules on whole components, in the same commit.
    store
        .commit(
            a,
            &Commit {
                removed: vec!["/a/TV".into()],
                schedules: vec![("/a/TV/S3".into(), sched(50, 60))],
                ..Commit::default()
            },
        )
        .expect("commit with removal");
    assert_eq!(store.schedule(a, "/a/TV/S1").expect("schedule"), None);
    assert_eq!(store.schedule(a, "/a/TV").expect("schedule"), None);
    assert_eq!(
        due_paths(&*store, a, 300),
        ["/a/TV Shows", "/a/TV/S3", "/a"],
        "removal keeps /a/TV Shows; schedules are written after removals"
    );
    store.forget(a, "/a/TV Shows").expect("forget");
    assert_eq!(due_paths(&*store, a, 300), ["/a/TV/S3", "/a"]);
    store.forget(a, "/").expect("forget all");
    assert!(due_paths(&*store, a, i64::MAX).is_empty());
}

/// Checks a target: `requests` must be acceptable to it (inside its libraries, folders
/// for a folder-only target); `received` reports what the server got, in the same
/// shape.
pub async fn target_conformance(
    target: &dyn ScanTarget,
    requests: Vec<ScanRequest>,
    received: &dyn Fn() -> Vec<ScanRequest>,
) {
    let caps = target.capabilities();
    assert!(caps.max_batch >= 1, "max_batch is at least 1");
    let before = received().len();
    assert!(
        target.scan(&[]).await.is_empty(),
        "an empty scan answers nothing"
    );
    assert_eq!(received().len(), before, "an empty scan contacts nobody");

    for chunk in requests.chunks(caps.max_batch) {
        let results = target.scan(chunk).await;
        assert_eq!(results.len(), chunk.len(), "one result per request");
        for (r, req) in results.iter().zip(chunk) {
            assert!(r.is_ok(), "scan of {} failed: {r:?}", req.path);
        }
    }
    let mut got: Vec<_> = received().into_iter().skip(before).collect();
    let mut want = requests.clone();
    let key = |r: &ScanRequest| (r.path.clone(), r.update);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want, "the server received exactly the requests");
    target.libraries().await.expect("libraries");
}

/// How the server behind a target is made to answer, for [`target_outcome_conformance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Overloaded or down for a moment (5xx, a timeout, exit status 75): retry later.
    Temporary,
    /// The credentials refused (401/403, a permanent failure): never retried.
    Refused,
    /// Reachable, but no library holds the path.
    NoLibrary,
}

/// The failure half of the target conformance suite: `target_for(answer)` gives a target
/// whose server answers that way (the test sets up its mock accordingly; `None` when the
/// target has no such case, as a command has no libraries). One `request` is scanned
/// against each, and the outcome must be what [`ScanTarget::scan`] promises: a
/// temporary error to retry, a permanent one to park, and for a path in no library a
/// permanent `Rejected` error that says so.
pub async fn target_outcome_conformance<F, Fut>(target_for: F, request: ScanRequest)
where
    F: Fn(Answer) -> Fut,
    Fut: std::future::Future<Output = Option<Arc<dyn ScanTarget>>>,
{
    for answer in [Answer::Temporary, Answer::Refused, Answer::NoLibrary] {
        let Some(target) = target_for(answer).await else {
            continue;
        };
        let results = target.scan(std::slice::from_ref(&request)).await;
        assert_eq!(results.len(), 1, "{answer:?}: one result per request");
        let err = results
            .into_iter()
            .next()
            .and_then(|r| r.err())
            .unwrap_or_else(|| panic!("{answer:?}: the scan must fail"));
        match answer {
            Answer::Temporary => {
                assert!(err.is_temporary(), "{answer:?}: retried later, got {err}");
            }
            Answer::Refused => {
                assert!(!err.is_temporary(), "{answer:?}: parked, got {err}");
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::Unauthenticated
                            | ErrorKind::PermissionDenied
                            | ErrorKind::Rejected
                    ),
                    "{answer:?}: {err}"
                );
            }
            Answer::NoLibrary => {
                assert!(!err.is_temporary(), "{answer:?}: parked, got {err}");
                assert_eq!(err.kind(), ErrorKind::Rejected, "{answer:?}: {err}");
                assert!(err.message().contains("no library"), "{answer:?}: {err}");
            }
        }
    }
}
