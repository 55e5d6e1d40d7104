//! Confirmation after delivery: indexed, removed, stuck with a remedy, a server down
//! while confirming, what is never confirmed, and a restart that loses nothing. Runs on
//! a manual clock: no test sleeps.

use pps_core::memory::{MemorySource, MemoryStore, MemoryTarget};
use pps_core::sqlite::SqliteStore;
use pps_core::store::{Event, HistoryQuery};
use pps_core::{
    Capabilities, ConfirmPlan, Engine, ManualClock, MtimeStore, TargetSpec, Timestamp, Watch,
};
use std::sync::Arc;
use std::time::Duration;

fn plan() -> ConfirmPlan {
    ConfirmPlan {
        checks: vec![Duration::from_secs(10), Duration::from_secs(30)],
        every: Duration::from_secs(60),
        remedy_after: Duration::from_secs(120),
        remedy_wait: Duration::from_secs(300),
        deadline: Duration::from_secs(600),
        lookup_by_path: false,
        strm_items: false,
    }
}

struct Rig {
    source: MemorySource,
    store: Arc<dyn MtimeStore>,
    server: MemoryTarget,
    clock: ManualClock,
    engine: Engine,
    watch: Watch,
}

impl Rig {
    fn new(store: Arc<dyn MtimeStore>) -> Self {
        let source = MemorySource::new();
        source.create_dir("/w");
        source.create_dir("/w/TV/Show/S01");
        source.write_file("/w/TV/Show/S01/e1.mkv", 10);
        Self::with(store, source)
    }

    fn with(store: Arc<dyn MtimeStore>, source: MemorySource) -> Self {
        let server = MemoryTarget::new(Capabilities::files(100)).confirming(plan());
        let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
        let engine = Engine::new(store.clone())
            .with_clock(Arc::new(clock.clone()))
            .with_source("src", Arc::new(source.clone()))
            .with_target(TargetSpec::new("jelly", Arc::new(server.clone())));
        Rig {
            source,
            store,
            server,
            clock,
            engine,
            watch: Watch::new("src", "/w").unwrap(),
        }
    }

    async fn cycle(&self) {
        self.engine.pass(&self.watch).await.expect("pass");
        self.engine.deliver_all("jelly").await.expect("deliver");
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    async fn round(&self) -> pps_core::engine::ConfirmReport {
        self.engine.confirm_round("jelly").await.expect("round")
    }

    fn history(&self, event: Event) -> Vec<pps_core::store::HistoryEntry> {
        self.store
            .history(&HistoryQuery {
                events: vec![event],
                limit: 100,
                ..HistoryQuery::default()
            })
            .unwrap()
    }
}

fn stores() -> Vec<(Arc<dyn MtimeStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(dir.path().join("pps.db")).unwrap());
    vec![
        (Arc::new(MemoryStore::new()), tempfile::tempdir().unwrap()),
        (sqlite, dir),
    ]
}

#[tokio::test]
async fn an_item_that_appears_is_indexed_with_its_id_and_title() {
    for (store, _dir) in stores() {
        let rig = Rig::new(store);
        rig.cycle().await; // baseline
        rig.source.write_file("/w/TV/Show/S01/e2.mkv", 10);
        rig.source.write_file("/w/TV/Show/S01/e2.srt", 1);
        rig.cycle().await;
        assert_eq!(rig.server.received().len(), 2, "both files were sent");
        assert_eq!(
            rig.store.stats().unwrap().confirms,
            [("jelly".to_owned(), 1, 0)],
            "only the media file is confirmed; a subtitle is never an item"
        );

        // Not due yet: no lookup.
        assert_eq!(rig.round().await.checked, 0);
        rig.advance(10);
        let r = rig.round().await;
        assert_eq!((r.checked, r.indexed), (1, 0), "not indexed yet");
        rig.server
            .index("/w/TV/Show/S01/e2.mkv", "77", "Show S01E02");
        rig.advance(10);
        assert_eq!(
            rig.round().await.checked,
            0,
            "the next check is 30 s after the scan"
        );
        rig.advance(10);
        let r = rig.round().await;
        assert_eq!((r.checked, r.indexed), (1, 1));
        let h = rig.history(Event::Indexed);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].change.path, "/w/TV/Show/S01/e2.mkv");
        assert_eq!(h[0].detail.as_deref(), Some("Show S01E02 (id 77)"));
        assert_eq!(
            rig.store.known_items("jelly", "/w/TV/Show").unwrap(),
            ["77"]
        );
        assert!(rig.store.stats().unwrap().confirms.is_empty());
        assert_eq!(
            rig.server.remedies(),
            Vec::<String>::new(),
            "no remedy was needed"
        );
    }
}

#[tokio::test]
async fn a_missing_item_gets_one_remedy_then_is_stuck_with_the_reason_and_can_be_retried() {
    for (store, _dir) in stores() {
        let rig = Rig::new(store);
        rig.cycle().await;
        rig.source.write_file("/w/TV/Show/S01/e3.mkv", 10);
        rig.cycle().await;
        let mut remedied = 0;
        let mut stuck = 0;
        for _ in 0..40 {
            rig.advance(30);
            let r = rig.round().await;
            remedied += r.remedied;
            stuck += r.stuck;
        }
        assert_eq!(remedied, 1, "one bounded remedy");
        assert_eq!(rig.server.remedies(), ["/w/TV/Show/S01/e3.mkv"]);
        assert_eq!(stuck, 1);
        let s = rig.store.stuck("jelly").unwrap();
        assert_eq!(s.len(), 1);
        let reason = s[0].stuck.clone().unwrap();
        assert!(
            reason.starts_with("not found 10 min after the scan"),
            "{reason}"
        );
        assert!(
            reason.contains("refreshed"),
            "the remedy is named: {reason}"
        );
        assert!(reason.ends_with("still missing"), "{reason}");
        assert_eq!(rig.history(Event::Stuck).len(), 1);
        let lookups = rig.server.lookups();
        rig.advance(3600);
        assert_eq!(
            rig.round().await.checked,
            0,
            "a stuck item costs no lookups"
        );
        assert_eq!(rig.server.lookups(), lookups);

        // Retry: the scan is sent again and confirmed afresh.
        assert_eq!(rig.store.retry_stuck(Some("jelly")).unwrap(), 1);
        rig.server.take_received();
        rig.engine.deliver_all("jelly").await.unwrap();
        assert_eq!(rig.server.received().len(), 1, "sent again");
        rig.server
            .index("/w/TV/Show/S01/e3.mkv", "78", "Show S01E03");
        rig.advance(10);
        assert_eq!(rig.round().await.indexed, 1);
        assert!(rig.store.stuck("jelly").unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_item_the_remedy_brings_is_indexed() {
    let rig = Rig::new(Arc::new(MemoryStore::new()));
    rig.cycle().await;
    rig.source.write_file("/w/TV/Show/S01/e4.mkv", 10);
    rig.cycle().await;
    rig.server
        .index_on_remedy("/w/TV/Show/S01/e4.mkv", "80", "Show S01E04");
    let mut indexed = 0;
    for _ in 0..10 {
        rig.advance(30);
        indexed += rig.round().await.indexed;
    }
    assert_eq!(indexed, 1);
    assert_eq!(rig.server.remedies().len(), 1);
    assert!(rig.store.stuck("jelly").unwrap().is_empty());
}

#[tokio::test]
async fn a_deletion_is_confirmed_by_the_id_seen_indexed() {
    let rig = Rig::new(Arc::new(MemoryStore::new()));
    rig.cycle().await;
    rig.source.write_file("/w/TV/Show/S01/e5.mkv", 10);
    rig.cycle().await;
    rig.server
        .index("/w/TV/Show/S01/e5.mkv", "90", "Show S01E05");
    rig.advance(10);
    assert_eq!(rig.round().await.indexed, 1);

    // A deletion of a file no item was seen for cannot be checked here: not confirmed.
    rig.source.write_file("/w/TV/Show/S01/other.mkv", 10);
    rig.cycle().await;
    rig.advance(600);
    while rig.round().await.checked > 0 {
        rig.advance(600);
    }
    rig.source.remove("/w/TV/Show/S01/other.mkv");
    rig.cycle().await;
    assert!(rig.store.stats().unwrap().confirms.iter().all(|c| c.1 == 0));

    rig.source.remove("/w/TV/Show/S01/e5.mkv");
    rig.cycle().await;
    assert_eq!(
        rig.store.stats().unwrap().confirms[0].1,
        1,
        "known id: confirmed"
    );
    rig.advance(10);
    let r = rig.round().await;
    assert_eq!((r.checked, r.removed), (1, 0), "still in the library");
    rig.server.unindex("/w/TV/Show/S01/e5.mkv");
    rig.advance(20);
    assert_eq!(rig.round().await.removed, 1);
    assert_eq!(rig.history(Event::Removed).len(), 1);
    assert!(
        rig.store
            .known_items("jelly", "/w/TV/Show/S01/e5.mkv")
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_new_folder_is_confirmed_only_when_it_holds_media() {
    let rig = Rig::new(Arc::new(MemoryStore::new()));
    rig.cycle().await;
    rig.source.create_dir("/w/Movies/Dune (2021)/Subs");
    rig.source.write_file("/w/Movies/Dune (2021)/Dune.mkv", 10);
    rig.source.create_dir("/w/Movies/Extras");
    rig.source.write_file("/w/Movies/Extras/readme.txt", 1);
    rig.cycle().await;
    let due: Vec<String> = rig
        .store
        .confirms_due("jelly", Timestamp::from_secs(i64::MAX), 10)
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(
        due,
        ["/w/Movies"],
        "the new folder holding a film; not one of text"
    );
    rig.server
        .index("/w/Movies/Dune (2021)/Dune.mkv", "5", "Dune");
    rig.advance(10);
    assert_eq!(
        rig.round().await.indexed,
        1,
        "an item below a new folder confirms it"
    );
}

#[tokio::test]
async fn a_server_down_while_confirming_is_asked_again_and_stuck_only_at_the_deadline() {
    let rig = Rig::new(Arc::new(MemoryStore::new()));
    rig.cycle().await;
    rig.source.write_file("/w/TV/Show/S01/e6.mkv", 10);
    rig.cycle().await;
    rig.server.set_down(true);
    rig.advance(10);
    let r = rig.round().await;
    assert!(r.failure.is_some());
    assert_eq!(r.stuck, 0);
    rig.advance(30);
    assert_eq!(
        rig.round().await.checked,
        0,
        "asked again a minute later, not at once"
    );
    rig.advance(30);
    assert_eq!(rig.round().await.checked, 1);
    rig.server.set_down(false);
    rig.server
        .index("/w/TV/Show/S01/e6.mkv", "6", "Show S01E06");
    rig.advance(60);
    assert_eq!(rig.round().await.indexed, 1);

    // Down past the deadline: stuck, saying why.
    rig.source.write_file("/w/TV/Show/S01/e7.mkv", 10);
    rig.cycle().await;
    rig.server.set_down(true);
    let mut stuck = 0;
    for _ in 0..20 {
        rig.advance(60);
        stuck += rig.round().await.stuck;
    }
    assert_eq!(stuck, 1);
    let reason = rig.store.stuck("jelly").unwrap()[0].stuck.clone().unwrap();
    assert!(reason.contains("could not ask the server"), "{reason}");
    assert!(reason.contains("connection refused"), "{reason}");
}

#[tokio::test]
async fn confirming_off_writes_no_confirmations() {
    let source = MemorySource::new();
    source.create_dir("/w/A");
    let store: Arc<dyn MtimeStore> = Arc::new(MemoryStore::new());
    let server = MemoryTarget::new(Capabilities::files(100)).confirming(plan());
    let mut spec = TargetSpec::new("jelly", Arc::new(server.clone()));
    spec.confirm = false;
    let engine = Engine::new(store.clone())
        .with_source("src", Arc::new(source.clone()))
        .with_target(spec);
    let watch = Watch::new("src", "/w").unwrap();
    engine.pass(&watch).await.unwrap();
    source.write_file("/w/A/x.mkv", 1);
    engine.pass(&watch).await.unwrap();
    let r = engine.deliver_all("jelly").await.unwrap();
    assert_eq!((r.sent, r.confirming), (1, 0));
    assert!(store.stats().unwrap().confirms.is_empty());
}

#[tokio::test]
async fn a_restart_between_the_scan_and_its_confirmation_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let source = MemorySource::new();
    source.create_dir("/w/TV/Show/S01");
    {
        let rig = Rig::with(Arc::new(SqliteStore::open(&db).unwrap()), source.clone());
        rig.cycle().await;
        source.write_file("/w/TV/Show/S01/e8.mkv", 10);
        rig.cycle().await;
        assert_eq!(rig.server.received().len(), 1);
        // The process ends here, after the server's 200 and before any lookup.
    }
    let rig = Rig::with(Arc::new(SqliteStore::open(&db).unwrap()), source);
    rig.server
        .index("/w/TV/Show/S01/e8.mkv", "8", "Show S01E08");
    rig.advance(10);
    let r = rig.round().await;
    assert_eq!(
        (r.checked, r.indexed),
        (1, 1),
        "the confirmation survived the restart"
    );
}
