use crate::Rig;
use pps_core::memory::{MemorySource, MemoryStore, MemoryTarget};
use pps_core::path::Excludes;
use pps_core::sqlite::SqliteStore;
use pps_core::store::Origin;
use pps_core::{
    Capabilities, Change, Engine, EngineOptions, Error, ErrorKind, Library, MtimeStore,
    ScanRequest, TargetSpec, Update, Watch,
};
use std::sync::Arc;
use std::time::Duration;

fn req(path: &str, update: Update, is_dir: bool) -> ScanRequest {
    ScanRequest {
        path: path.into(),
        update,
        is_dir,
    }
}

#[tokio::test]
async fn first_pass_is_a_baseline_and_scans_nothing() {
    let rig = Rig::new();
    rig.source.write_file("/w/TV/Show/S01/e1.mkv", 10);
    rig.source.write_file("/w/Movies/m.mkv", 10);
    let r = rig.cycle().await;
    assert!(r.baseline);
    assert!(r.changes.is_empty());
    assert_eq!(r.folders_listed, 5);
    assert!(rig.files.received().is_empty() && rig.folders.received().is_empty());
    let again = rig.cycle().await;
    assert!(!again.baseline);
    assert!(again.changes.is_empty());
    assert_eq!(again.folders_changed, 0);
}

#[tokio::test]
async fn file_changes_reach_file_and_folder_targets() {
    let rig = Rig::new();
    rig.source.write_file("/w/TV/Show/S01/e1.mkv", 10);
    rig.source.write_file("/w/TV/Show/S01/old.mkv", 10);
    rig.cycle().await;

    rig.source.write_file("/w/TV/Show/S01/e2.mkv", 10);
    rig.source.write_file("/w/TV/Show/S01/e1.mkv", 11);
    rig.source.remove("/w/TV/Show/S01/old.mkv");
    let r = rig.cycle().await;
    assert_eq!(
        r.changes,
        vec![
            Change::new("/w/TV/Show/S01/e1.mkv", Update::Modified, false),
            Change::new("/w/TV/Show/S01/e2.mkv", Update::Created, false),
            Change::new("/w/TV/Show/S01/old.mkv", Update::Deleted, false),
        ]
    );
    assert_eq!(
        rig.files.received(),
        vec![
            req("/w/TV/Show/S01/e1.mkv", Update::Modified, false),
            req("/w/TV/Show/S01/e2.mkv", Update::Created, false),
            req("/w/TV/Show/S01/old.mkv", Update::Deleted, false),
        ]
    );
    // Three file changes in one folder: one folder scan.
    assert_eq!(
        rig.folders.received(),
        vec![req("/w/TV/Show/S01", Update::Modified, true)]
    );
    assert_eq!(
        rig.store
            .stats()
            .unwrap()
            .outbox
            .iter()
            .map(|o| o.1)
            .sum::<u64>(),
        0
    );
}

#[tokio::test]
async fn a_created_folder_is_one_change_and_its_subtree_is_recorded() {
    let rig = Rig::new();
    rig.source.create_dir("/w/TV");
    rig.cycle().await;
    rig.source.write_file("/w/TV/New Show/S01/e1.mkv", 1);
    rig.source.write_file("/w/TV/New Show/S02/e1.mkv", 1);
    let r = rig.cycle().await;
    assert_eq!(
        r.changes,
        vec![Change::new("/w/TV/New Show", Update::Created, true)]
    );
    assert_eq!(
        rig.folders.received(),
        vec![req("/w/TV/New Show", Update::Created, true)]
    );
    let scope = rig.store.scope("src", "/w").unwrap();
    assert!(
        rig.store
            .folder(scope, "/w/TV/New Show/S02")
            .unwrap()
            .is_some()
    );
    // Nothing more to find.
    let r = rig.cycle().await;
    assert!(r.changes.is_empty());
    // A change deep in the new subtree is found exactly.
    rig.source.write_file("/w/TV/New Show/S02/e2.mkv", 1);
    let r = rig.cycle().await;
    assert_eq!(
        r.changes,
        vec![Change::new(
            "/w/TV/New Show/S02/e2.mkv",
            Update::Created,
            false
        )]
    );
}

#[tokio::test]
async fn a_deleted_folder_drops_its_subtree() {
    let store = Arc::new(MemoryStore::new());
    let rig = Rig::with_store(store.clone());
    rig.source.write_file("/w/TV/Gone/S01/e.mkv", 1);
    rig.source.write_file("/w/TV/Gone Too/e.mkv", 1);
    rig.cycle().await;
    rig.source.remove("/w/TV/Gone");
    let r = rig.cycle().await;
    assert_eq!(
        r.changes,
        vec![Change::new("/w/TV/Gone", Update::Deleted, true)]
    );
    assert_eq!(
        rig.folders.received(),
        vec![req("/w/TV", Update::Modified, true)]
    );
    let scope = store.scope("src", "/w").unwrap();
    let left: Vec<_> = store.fingerprints(scope).unwrap().into_keys().collect();
    assert!(
        left.iter()
            .all(|p| !p.starts_with("/w/TV/Gone/") && p != "/w/TV/Gone"),
        "{left:?}"
    );
    assert!(left.contains(&"/w/TV/Gone Too".to_owned()));
}

#[tokio::test]
async fn renames_are_a_delete_and_a_create() {
    let rig = Rig::new();
    rig.source.write_file("/w/A/x.mkv", 1);
    rig.source.write_file("/w/f.mkv", 1);
    rig.cycle().await;
    rig.source.rename("/w/A", "/w/B");
    rig.source.rename("/w/f.mkv", "/w/A.mkv");
    let r = rig.cycle().await;
    let mut got = r.changes.clone();
    got.sort_by(|a, b| (&a.path, a.update).cmp(&(&b.path, b.update)));
    assert_eq!(
        got,
        vec![
            Change::new("/w/A", Update::Deleted, true),
            Change::new("/w/A.mkv", Update::Created, false),
            Change::new("/w/B", Update::Created, true),
            Change::new("/w/f.mkv", Update::Deleted, false),
        ]
    );
}

#[tokio::test]
async fn a_listing_error_keeps_old_state_and_the_change_is_found_later() {
    let rig = Rig::new();
    rig.source.write_file("/w/A/B/x.mkv", 1);
    rig.cycle().await;
    rig.source.write_file("/w/A/B/y.mkv", 1);
    rig.source.write_file("/w/A/z.mkv", 1);
    rig.source
        .inject_fault("/w/A", ErrorKind::Unavailable, None);
    let r = rig.cycle().await;
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].kind(), ErrorKind::Unavailable);
    assert_eq!(r.errors[0].context_value("path"), Some("/w/A"));
    assert_eq!(r.errors[0].context_value("source"), Some("src"));
    // Below the failing folder the walk went on from stored state.
    assert_eq!(
        r.changes,
        vec![Change::new("/w/A/B/y.mkv", Update::Created, false)]
    );
    rig.source.clear_fault("/w/A");
    let r = rig.cycle().await;
    assert!(r.errors.is_empty());
    assert_eq!(
        r.changes,
        vec![Change::new("/w/A/z.mkv", Update::Created, false)]
    );
}

#[tokio::test]
async fn an_empty_or_missing_root_is_an_outage_not_a_mass_deletion() {
    let rig = Rig::new();
    for i in 0..5 {
        rig.source.write_file(&format!("/w/Show {i}/e.mkv"), 1);
    }
    rig.cycle().await;
    let before = rig
        .store
        .fingerprints(rig.store.scope("src", "/w").unwrap())
        .unwrap();

    // Unmounted: the root lists empty.
    let snapshot = rig.source.snapshot();
    for i in 0..5 {
        rig.source.remove(&format!("/w/Show {i}"));
    }
    let err = rig.engine.pass(&rig.watch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Outage);
    assert!(err.to_string().contains("knows 5 entries"), "{err}");
    // Missing altogether.
    rig.source.remove("/w");
    let err = rig.engine.pass(&rig.watch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Outage);
    assert_eq!(
        rig.store
            .fingerprints(rig.store.scope("src", "/w").unwrap())
            .unwrap(),
        before
    );
    assert!(rig.store.pending("files", 10).unwrap().is_empty());

    // Back again with one real change: only that is reported.
    for (p, e) in snapshot {
        if e.is_dir() {
            rig.source.create_dir(&p);
        } else {
            rig.source.write_file(&p, e.size);
        }
    }
    rig.source.write_file("/w/Show 9/e.mkv", 1);
    let r = rig.cycle().await;
    // Re-created files carry new mtimes in the memory source, so they read as modified;
    // what matters is that nothing was deleted.
    assert!(
        r.changes.iter().all(|c| c.update != Update::Deleted),
        "{:?}",
        r.changes
    );
    assert!(
        r.changes
            .contains(&Change::new("/w/Show 9", Update::Created, true))
    );
}

#[tokio::test]
async fn a_root_that_held_one_entry_and_lists_empty_is_an_outage() {
    // An unmounted drive whose root holds a single `TV/` is the case the guard is for.
    let rig = Rig::new();
    rig.source.write_file("/w/TV/e1.mkv", 1);
    rig.cycle().await;
    rig.source.remove("/w/TV");
    let err = rig.engine.pass(&rig.watch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Outage, "{err}");
    assert!(
        rig.store.pending("t", 10).unwrap().is_empty(),
        "nothing is scanned during an outage"
    );
    // Back again: no deletion was ever reported.
    rig.source.write_file("/w/TV/e1.mkv", 1);
    let r = rig.cycle().await;
    assert!(
        r.changes.iter().all(|c| c.update != Update::Deleted),
        "{:?}",
        r.changes
    );
}

#[tokio::test]
async fn excludes_hide_churn_and_changing_them_reports_nothing() {
    let rig = Rig::new();
    let mut watch = rig.watch.clone();
    watch.excludes = Excludes::new(["*.part", "@eaDir", ".*"]).unwrap();
    rig.source.write_file("/w/A/x.mkv", 1);
    rig.source.write_file("/w/A/@eaDir/thumb.jpg", 1);
    rig.engine.pass(&watch).await.unwrap();
    rig.source.write_file("/w/A/y.mkv.part", 1);
    rig.source.write_file("/w/A/.hidden", 1);
    rig.source.write_file("/w/A/@eaDir/thumb2.jpg", 1);
    let r = rig.engine.pass(&watch).await.unwrap();
    assert!(r.changes.is_empty(), "{:?}", r.changes);
    // Dropping an exclude later is not a flood of deletions, and adding one is not
    // either.
    watch.excludes = Excludes::new(["*.part", ".*", "*.mkv"]).unwrap();
    let r = rig.engine.pass(&watch).await.unwrap();
    assert!(
        r.changes.iter().all(|c| c.update != Update::Deleted),
        "{:?}",
        r.changes
    );
}

#[tokio::test]
async fn an_interrupted_baseline_is_a_baseline_again() {
    let source = MemorySource::new();
    for i in 0..50 {
        source.write_file(&format!("/w/D{i}/f.mkv"), 1);
    }
    let store = MemoryStore::new();
    let target = MemoryTarget::new(Capabilities::files(10));
    let engine = Engine::new(Arc::new(store.clone()))
        .with_source("src", Arc::new(source.clone()))
        .with_target(TargetSpec::new("files", Arc::new(target.clone())))
        .with_options({
            let mut o = EngineOptions::default();
            o.commit_batch = 8;
            o
        });
    let watch = Watch::new("src", "/w").unwrap();
    // Two commits of 8 folders get through, the third fails: the first index dies
    // half-way.
    store.fail_commits_after(2, 1);
    let err = engine.pass(&watch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let scope = store.scope("src", "/w").unwrap();
    let recorded = store.fingerprints(scope).unwrap();
    assert_eq!(recorded.len(), 16);
    assert!(!recorded.contains_key("/w"), "the root is written last");
    // The next pass is a baseline again: nothing is reported or queued.
    let r = engine.pass(&watch).await.unwrap();
    assert!(r.baseline);
    assert!(r.changes.is_empty());
    assert!(store.pending("files", 100).unwrap().is_empty());
    assert_eq!(store.fingerprints(scope).unwrap().len(), 51);
}

#[tokio::test]
async fn delivery_keeps_failed_scans_and_parks_refused_ones() {
    let rig = Rig::new();
    rig.source.create_dir("/w/A");
    rig.cycle().await;
    rig.source.write_file("/w/A/1.mkv", 1);
    rig.source.write_file("/w/A/2.mkv", 1);
    rig.source.write_file("/w/A/3.mkv", 1);
    rig.files
        .script([None, Some(Error::new(ErrorKind::Unavailable, "503"))]);
    rig.engine.pass(&rig.watch).await.unwrap();
    let r = rig.engine.deliver("files").await.unwrap();
    // 1 and 3 accepted in the same call as the failing 2: both settle at once.
    assert_eq!(r.sent, 2);
    assert!(r.temporary_failure.as_deref().unwrap().contains("503"));
    assert!(r.remaining);
    let pending = rig.store.pending("files", 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].change.path, "/w/A/2.mkv");
    assert_eq!(pending[0].attempts, 1);
    // The folder target is independent of the failing one.
    let r = rig.engine.deliver("folders").await.unwrap();
    assert_eq!((r.sent, r.settled), (1, 3));

    rig.files.script([Some(
        Error::new(ErrorKind::Rejected, "no library").permanent(),
    )]);
    let r = rig.engine.deliver_all("files").await.unwrap();
    assert_eq!((r.sent, r.parked, r.remaining), (0, 1, false));
    let parked = rig.store.parked("files").unwrap();
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("no library")
    );
    assert_eq!(rig.files.received().len(), 2);
}

#[tokio::test]
async fn unmapped_paths_are_parked_with_a_reason() {
    let source = MemorySource::new();
    source.write_file("/w/a/x.mkv", 1);
    let store = Arc::new(MemoryStore::new());
    let target = MemoryTarget::new(Capabilities::folders_only());
    let mut spec = TargetSpec::new("plex", Arc::new(target.clone()));
    spec.mapping = pps_core::mapping::PathMapping::new([pps_core::mapping::MappingRule {
        from: "/w/b".into(),
        to: "/mnt/b".into(),
    }])
    .unwrap();
    let engine = Engine::new(store.clone())
        .with_source("s", Arc::new(source.clone()))
        .with_target(spec);
    let watch = Watch::new("s", "/w").unwrap();
    engine.pass(&watch).await.unwrap();
    source.write_file("/w/a/y.mkv", 1);
    engine.pass(&watch).await.unwrap();
    let r = engine.deliver_all("plex").await.unwrap();
    assert_eq!(r.parked, 1);
    assert!(
        store.parked("plex").unwrap()[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("path_mapping")
    );
}

#[tokio::test]
async fn library_roots_are_never_scanned_for_a_change_below() {
    let rig = Rig::new();
    rig.folders.set_libraries(vec![Library {
        id: "1".into(),
        name: "Movies".into(),
        locations: vec!["/w/Movies".into()],
    }]);
    rig.source.create_dir("/w/Movies");
    rig.cycle().await;
    rig.source.write_file("/w/Movies/film.mkv", 1);
    rig.source.write_file("/w/Movies/Film (2020)/film.mkv", 1);
    rig.cycle().await;
    let got = rig.folders.received();
    assert!(got.iter().all(|r| r.path != "/w/Movies"), "{got:?}");
    assert!(got.contains(&req("/w/Movies/film.mkv", Update::Created, false)));
    assert!(got.contains(&req("/w/Movies/Film (2020)", Update::Created, true)));
}

#[tokio::test(start_paused = true)]
async fn run_delivery_backs_off_then_delivers() {
    let rig = Rig::new();
    rig.source.create_dir("/w/A");
    rig.cycle().await;
    rig.source.write_file("/w/A/1.mkv", 1);
    rig.engine.pass(&rig.watch).await.unwrap();
    let err = || Some(Error::new(ErrorKind::Unavailable, "down"));
    rig.files.script([err(), err(), err()]);
    let wake = Arc::new(tokio::sync::Notify::new());
    let engine = rig.engine.clone();
    let task = tokio::spawn({
        let wake = wake.clone();
        async move {
            engine
                .run_delivery("files", wake, Duration::from_secs(60))
                .await
        }
    });
    // Backoff 1s, 2s, 4s (each jittered to 50-100%): after 3 failures it gets through
    // within 7 s of virtual time, and not before the first backoff.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(rig.files.scan_calls(), 1);
    assert!(rig.files.received().is_empty());
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(rig.files.scan_calls(), 4);
    assert_eq!(
        rig.files.received(),
        vec![req("/w/A/1.mkv", Update::Created, false)]
    );
    task.abort();
}

#[tokio::test]
async fn several_watches_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let rig = Rig::with_store(store.clone());
    rig.source.write_file("/w/a/x.mkv", 1);
    rig.source.write_file("/v/a/x.mkv", 1);
    let engine = rig
        .engine
        .clone()
        .with_source("other", Arc::new(rig.source.clone()));
    let w1 = Watch::new("src", "/w").unwrap();
    let w2 = Watch::new("src", "/w/a").unwrap();
    let w3 = Watch::new("other", "/w").unwrap();
    for w in [&w1, &w2, &w3] {
        assert!(engine.pass(w).await.unwrap().baseline);
    }
    rig.source.write_file("/w/a/y.mkv", 1);
    for w in [&w1, &w2, &w3] {
        let r = engine.pass(w).await.unwrap();
        assert_eq!(
            r.changes,
            vec![Change::new("/w/a/y.mkv", Update::Created, false)],
            "{}",
            w.label()
        );
    }
    drop(engine);
    drop(rig);
    drop(store);
    // Reopened, the state is all there: no baseline, no change.
    let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let rig = Rig::with_store(store);
    rig.source.write_file("/w/a/x.mkv", 1);
    rig.source.write_file("/w/a/y.mkv", 1);
    let r = rig.engine.pass(&w1).await.unwrap();
    assert!(!r.baseline);
    assert_eq!(
        rig.store.pending("files", 100).unwrap().len(),
        3 + r.changes.len()
    );
}

#[tokio::test]
async fn a_folder_a_baseline_could_not_list_is_baselined_later_not_reported() {
    for scheduled in [false, true] {
        let clock = pps_core::ManualClock::new(pps_core::Timestamp::from_secs(1_800_000_000));
        let rig = Rig::new();
        let engine = rig.engine.clone().with_clock(Arc::new(clock.clone()));
        for i in 0..3 {
            rig.source.write_file(&format!("/w/Show {i}/S01/e1.mkv"), 1);
        }
        rig.source
            .inject_fault("/w/Show 1", ErrorKind::Unavailable, None);
        let r = engine.pass(&rig.watch).await.unwrap();
        assert!(r.baseline);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        rig.source.clear_fault("/w/Show 1");
        // cd2 is back: the folder lists, and what it held all along is no news.
        clock.advance(Duration::from_secs(3600));
        let r = if scheduled {
            engine.pass_due(&rig.watch, u64::MAX).await.unwrap()
        } else {
            engine.pass(&rig.watch).await.unwrap()
        };
        assert!(
            r.changes.is_empty(),
            "scheduled={scheduled}: nothing changed, nothing is reported: {:?}",
            r.changes
        );
        assert!(rig.store.pending("files", 10).unwrap().is_empty());
        if scheduled {
            // Its subfolders were recorded silently as well, listed now or later.
            clock.advance(Duration::from_secs(3600));
            let r = engine.pass_due(&rig.watch, u64::MAX).await.unwrap();
            assert!(r.changes.is_empty(), "{:?}", r.changes);
        }
        // From now on it is watched like every other folder.
        rig.source.write_file("/w/Show 1/S01/e2.mkv", 1);
        let r = engine.pass(&rig.watch).await.unwrap();
        assert_eq!(
            r.changes,
            vec![Change::new("/w/Show 1/S01/e2.mkv", Update::Created, false)],
            "scheduled={scheduled}"
        );
    }
}

#[tokio::test]
async fn a_reindex_replaces_the_baseline_only_once_it_is_complete() {
    let rig = Rig::new();
    for i in 0..4 {
        rig.source.write_file(&format!("/w/Show {i}/e1.mkv"), 1);
    }
    rig.cycle().await;
    // Changes land, then a re-index is interrupted: by the root failing, and by being
    // dropped mid-way (Ctrl-C).
    rig.source.write_file("/w/Show 0/e2.mkv", 1);
    rig.source.write_file("/w/Show 3/e2.mkv", 1);
    rig.source
        .inject_fault("/w", ErrorKind::Unavailable, Some(1));
    assert!(rig.engine.reindex(&rig.watch).await.is_err());
    // A source that never answers for one folder, so the re-index is mid-way (with
    // commits made) when it is dropped.
    #[derive(Debug)]
    struct Stall(MemorySource, Arc<tokio::sync::Notify>);
    #[async_trait::async_trait]
    impl pps_core::DirectorySource for Stall {
        async fn list(
            &self,
            path: &str,
            o: pps_core::ListOptions,
        ) -> pps_core::Result<Vec<pps_core::Entry>> {
            if path == "/w/Show 3" {
                self.1.notify_one();
                std::future::pending::<()>().await;
            }
            self.0.list(path, o).await
        }
        async fn stat(&self, path: &str) -> pps_core::Result<pps_core::Entry> {
            self.0.stat(path).await
        }
    }
    let gate = Arc::new(tokio::sync::Notify::new());
    let slow = Engine::new(rig.store.clone())
        .with_source("src", Arc::new(Stall(rig.source.clone(), gate.clone())))
        .with_options({
            let mut o = EngineOptions::default();
            o.concurrency = 1;
            o.commit_batch = 1;
            o
        });
    tokio::select! {
        _ = slow.reindex(&rig.watch) => panic!("the re-index should have been stopped"),
        _ = gate.notified() => {}
    }
    // The old baseline is whole: the next pass finds both changes.
    let r = rig.engine.pass(&rig.watch).await.unwrap();
    let mut found: Vec<_> = r.changes.iter().map(|c| c.path.clone()).collect();
    found.sort();
    assert_eq!(found, ["/w/Show 0/e2.mkv", "/w/Show 3/e2.mkv"]);

    // A complete re-index takes in what changed without scanning it; a folder it cannot
    // list keeps its old state, so a change there is still found afterwards.
    rig.source.write_file("/w/Show 1/e2.mkv", 1);
    rig.source.write_file("/w/Show 2/e2.mkv", 1);
    rig.source
        .inject_fault("/w/Show 2", ErrorKind::Unavailable, Some(1));
    let r = rig.engine.reindex(&rig.watch).await.unwrap();
    assert!(r.baseline && r.changes.is_empty());
    assert_eq!(r.errors.len(), 1);
    let r = rig.engine.pass(&rig.watch).await.unwrap();
    assert_eq!(
        r.changes,
        vec![Change::new("/w/Show 2/e2.mkv", Update::Created, false)],
        "Show 1 was re-baselined; Show 2 kept its old state"
    );
}

#[tokio::test]
async fn ten_thousand_hints_are_one_commit_and_absurd_paths_are_refused() {
    let store = Arc::new(MemoryStore::new());
    let rig = Rig::with_store(store.clone());
    rig.source.write_file("/w/TV/Show/e1.mkv", 1);
    rig.cycle().await;
    let paths: Vec<String> = (0..10_000)
        .map(|i| format!("/w/TV/Show/new {i}.mkv"))
        .collect();
    // The next commit passes, the one after fails: one commit or it errs.
    store.fail_commits_after(1, 1);
    let marked = rig
        .engine
        .hint_paths(&rig.watch, &paths, Origin::Webhook)
        .unwrap();
    assert!(marked.iter().all(|m| m.as_deref() == Some("/w/TV/Show")));
    let deep = format!("/w/{}", "a/".repeat(300));
    let err = rig
        .engine
        .hint(&rig.watch, &deep, Origin::Push)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.message().contains("256 components"), "{err}");
    let long = format!("/w/{}", "x".repeat(5000));
    assert!(rig.engine.hint(&rig.watch, &long, Origin::Push).is_err());
}

/// A target that cannot be reached before anything is sent (its library listing
/// fails): the waiting scans carry the error, an attempt and a next try, as a failed
/// send does, so `pps status` and the UI show why they wait (not only "N pending").
#[tokio::test]
async fn a_target_that_is_down_counts_against_its_waiting_scans() {
    let rig = Rig::new();
    rig.cycle().await;
    rig.files.set_unreachable(true);
    rig.source.write_file("/w/Film/film.mkv", 10);
    let r = rig.engine.pass(&rig.watch).await.unwrap();
    assert_eq!(r.changes.len(), 1);
    let d = rig.engine.deliver("files").await.unwrap();
    assert!(d.temporary_failure.is_some());
    let failing = rig.store.failing("files", 10).unwrap();
    assert_eq!(failing.len(), 1, "the waiting scan is marked failing");
    assert_eq!(failing[0].attempts, 1);
    assert!(
        failing[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot read the target's libraries")
                && e.contains("cannot connect")),
        "{failing:?}"
    );
    assert!(failing[0].next_try.is_some(), "and when it is tried next");
}
