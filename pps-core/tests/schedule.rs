//! The scheduler's rules, on a manual clock: no sleeps, no wall-clock assertions.

use async_trait::async_trait;
use pps_core::memory::{MemorySource, MemoryStore, MemoryTarget};
use pps_core::sqlite::SqliteStore;
use pps_core::store::{Origin, ScopeId};
use pps_core::{
    Capabilities, Change, DirectorySource, Engine, Entry, Hint, ListOptions, ManualClock,
    MtimeStore, Schedule, TargetSpec, Timestamp, Update, Watch,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIN: u64 = 60;
const T0: i64 = 1_800_000_000;

/// A memory source that remembers which listings asked for `force_refresh`.
#[derive(Debug, Clone, Default)]
struct Recording {
    inner: MemorySource,
    forced: Arc<Mutex<Vec<String>>>,
    listed: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl DirectorySource for Recording {
    async fn list(&self, path: &str, options: ListOptions) -> pps_core::Result<Vec<Entry>> {
        if options.force_refresh {
            self.forced.lock().unwrap().push(path.to_owned());
        }
        self.listed.lock().unwrap().push(path.to_owned());
        self.inner.list(path, options).await
    }

    async fn stat(&self, path: &str) -> pps_core::Result<Entry> {
        self.inner.stat(path).await
    }
}

impl Recording {
    fn take_listed(&self) -> Vec<String> {
        let mut v = std::mem::take(&mut *self.listed.lock().unwrap());
        v.sort();
        v
    }
}

struct Rig {
    source: Recording,
    store: Arc<dyn MtimeStore>,
    clock: ManualClock,
    engine: Engine,
    watch: Watch,
    scope: ScopeId,
}

fn schedule() -> Schedule {
    Schedule::default()
        .with_base_interval(Duration::from_secs(5 * MIN))
        .with_max_interval(Duration::from_secs(80 * MIN))
}

impl Rig {
    fn new(store: Arc<dyn MtimeStore>, schedule: Schedule) -> Self {
        let source = Recording {
            inner: MemorySource::new(),
            ..Recording::default()
        };
        source.inner.create_dir("/w");
        let clock = ManualClock::new(Timestamp::from_secs(T0));
        let engine = Rig::engine(&store, &source, &clock);
        let watch = Watch::new("src", "/w").unwrap().with_schedule(schedule);
        let scope = store.scope("src", "/w").unwrap();
        Rig {
            source,
            store,
            clock,
            engine,
            watch,
            scope,
        }
    }

    fn engine(store: &Arc<dyn MtimeStore>, source: &Recording, clock: &ManualClock) -> Engine {
        Engine::new(store.clone())
            .with_source("src", Arc::new(source.clone()))
            .with_target(TargetSpec::new(
                "t",
                Arc::new(MemoryTarget::new(Capabilities::files(100))),
            ))
            .with_clock(Arc::new(clock.clone()))
    }

    fn memory() -> Self {
        Rig::new(Arc::new(MemoryStore::new()), schedule())
    }

    fn now(&self) -> Timestamp {
        use pps_core::Clock;
        self.clock.now()
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    fn interval(&self, path: &str) -> u64 {
        self.store
            .schedule(self.scope, path)
            .unwrap()
            .unwrap_or_else(|| panic!("no schedule for {path}"))
            .interval
            .as_secs()
    }

    fn due_at(&self, path: &str) -> i64 {
        self.store
            .schedule(self.scope, path)
            .unwrap()
            .unwrap()
            .next_due
            .as_secs()
    }

    /// Makes every folder due at `now + at` with interval `interval` (a known state to
    /// start rules from, instead of the spread a baseline gives).
    fn reschedule_all(&self, at: u64, interval: u64) {
        let now = self.now();
        let mut schedules = Vec::new();
        for (p, mut s) in self
            .store
            .due(self.scope, Timestamp::from_secs(i64::MAX), usize::MAX)
            .unwrap()
        {
            s.next_due = now.plus(Duration::from_secs(at));
            s.interval = Duration::from_secs(interval);
            schedules.push((p, s));
        }
        self.store
            .commit(
                self.scope,
                &pps_core::store::Commit {
                    schedules,
                    ..Default::default()
                },
            )
            .unwrap();
    }

    async fn due_pass(&self, budget: u64) -> pps_core::PassReport {
        self.engine.pass_due(&self.watch, budget).await.unwrap()
    }
}

#[tokio::test]
async fn a_baseline_spreads_first_due_times_within_one_ceiling() {
    let rig = Rig::memory();
    for i in 0..40 {
        rig.source.inner.create_dir(&format!("/w/D{i:02}"));
    }
    let r = rig.due_pass(1000).await;
    assert!(r.baseline, "a watch without baseline gets a full pass");
    let ceiling = 80 * MIN as i64;
    let dues: Vec<i64> = (0..40)
        .map(|i| rig.due_at(&format!("/w/D{i:02}")) - T0)
        .collect();
    assert!(dues.iter().all(|d| (1..=ceiling).contains(d)), "{dues:?}");
    let mut distinct = dues.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        dues.len(),
        "no two come due at once: {dues:?}"
    );
    assert_eq!(
        rig.interval("/w/D00"),
        80 * MIN,
        "baseline folders start at the ceiling"
    );
    // Right after the baseline nothing is due: a scheduled pass lists nothing.
    rig.source.take_listed();
    let r = rig.due_pass(1000).await;
    assert_eq!((r.folders_listed, r.folders_due), (0, 0));
}

/// An empty folder tells nothing of its age by its entries: a watch root made for pps
/// (no parent listing dates it) starts at the base interval instead of waiting a
/// ceiling before its first file is seen; an empty season folder made an hour ago is
/// young by its own mtime; one untouched for years still starts at the ceiling.
#[tokio::test]
async fn a_baseline_dates_empty_folders_by_their_own_mtime_and_an_empty_root_is_listed_soon() {
    let rig = Rig::memory();
    let r = rig.due_pass(1000).await;
    assert!(r.baseline);
    assert_eq!(
        rig.interval("/w"),
        5 * MIN,
        "an empty root: the base interval"
    );
    // The first file arrives: found at the next base interval, not the ceiling's.
    rig.source.inner.write_file("/w/Show/S01/e1.mkv", 1);
    rig.advance(5 * MIN);
    let r = rig.due_pass(1000).await;
    assert_eq!(r.changes.len(), 1, "{:?}", r.changes);

    let rig = Rig::memory();
    let hour_ago = pps_core::Mtime::from_nanos((T0 - 3600) * 1_000_000_000);
    rig.source.inner.create_dir("/w/Young");
    rig.source
        .inner
        .put_entry("/w/Young", Entry::dir("Young", Some(hour_ago)));
    rig.source.inner.create_dir("/w/Old");
    rig.due_pass(1000).await;
    assert!(
        rig.interval("/w/Young") <= 5 * MIN,
        "an empty folder made an hour ago starts near the base: {}",
        rig.interval("/w/Young")
    );
    assert_eq!(
        rig.interval("/w/Old"),
        80 * MIN,
        "an empty folder from years ago starts at the ceiling"
    );
    // A root stays at the base interval, empty or not: new titles land there.
    let rig = Rig::memory();
    rig.due_pass(1000).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        rig.advance(rig.interval("/w"));
        rig.due_pass(1000).await;
        seen.push(rig.interval("/w") / MIN);
    }
    assert_eq!(seen, [5, 5, 5, 5, 5]);
}

#[tokio::test]
async fn intervals_double_when_unchanged_up_to_the_ceiling_and_reset_on_change() {
    let rig = Rig::memory();
    rig.source.inner.write_file("/w/A/f.mkv", 1);
    rig.due_pass(100).await;
    rig.reschedule_all(0, 5 * MIN);
    let mut intervals = Vec::new();
    for _ in 0..6 {
        let r = rig.due_pass(100).await;
        assert_eq!(r.folders_listed, 2, "/w and /w/A are due");
        intervals.push(rig.interval("/w/A") / MIN);
        rig.advance(rig.interval("/w/A"));
    }
    assert_eq!(
        intervals,
        [10, 20, 40, 80, 80, 80],
        "doubling, capped at the ceiling"
    );
    assert_eq!(
        rig.due_at("/w/A"),
        rig.now().as_secs(),
        "due after its interval"
    );

    rig.source.inner.write_file("/w/A/g.mkv", 1);
    let r = rig.due_pass(100).await;
    assert_eq!(
        r.changes,
        vec![Change::new("/w/A/g.mkv", Update::Created, false)]
    );
    assert_eq!(
        rig.interval("/w/A"),
        5 * MIN,
        "back to the base on a change"
    );
    let s = rig.store.schedule(rig.scope, "/w/A").unwrap().unwrap();
    assert_eq!(s.last_change, Some(rig.now()));
    assert_eq!(s.next_due, rig.now().plus(Duration::from_secs(5 * MIN)));
    // Not due yet: a scheduled pass right away lists nothing.
    assert_eq!(rig.due_pass(100).await.folders_listed, 0);
}

#[tokio::test]
async fn a_moved_entry_makes_the_child_due_at_once() {
    let rig = Rig::memory();
    rig.source.inner.write_file("/w/TV/Show/S01/e1.mkv", 1);
    rig.due_pass(100).await;
    // The season folder is not due for an hour; the show folder is due now.
    rig.reschedule_all(3600, 80 * MIN);
    let show = rig
        .store
        .schedule(rig.scope, "/w/TV/Show")
        .unwrap()
        .unwrap();
    rig.store
        .commit(
            rig.scope,
            &pps_core::store::Commit {
                schedules: vec![("/w/TV/Show".into(), show.promoted(rig.now(), false))],
                ..Default::default()
            },
        )
        .unwrap();
    // A new episode moves only the season folder's entry in the show's listing.
    rig.source.inner.write_file("/w/TV/Show/S01/e2.mkv", 1);
    rig.source.take_listed();
    let r = rig.due_pass(1).await;
    assert_eq!(r.folders_listed, 1, "the budget is one listing");
    assert_eq!(rig.source.take_listed(), ["/w/TV/Show"]);
    assert!(
        r.changes.is_empty(),
        "the show folder itself has no new child"
    );
    assert_eq!((r.folders_promoted, r.folders_deferred), (1, 1));
    assert_eq!(
        rig.due_at("/w/TV/Show/S01"),
        rig.now().as_secs(),
        "promoted, persisted"
    );
    let r = rig.due_pass(1).await;
    assert_eq!(rig.source.take_listed(), ["/w/TV/Show/S01"]);
    assert_eq!(
        r.changes,
        vec![Change::new("/w/TV/Show/S01/e2.mkv", Update::Created, false)]
    );
    // With room in the budget the promoted folder is listed in the same pass.
    rig.advance(5 * MIN);
    rig.source.inner.write_file("/w/TV/Show/S01/e3.mkv", 1);
    let r = rig.due_pass(10).await;
    assert_eq!(
        rig.source.take_listed(),
        ["/w", "/w/TV/Show", "/w/TV/Show/S01"],
        "the root at its interval, then the show and its season"
    );
    assert_eq!(
        r.changes,
        vec![Change::new("/w/TV/Show/S01/e3.mkv", Update::Created, false)]
    );
}

#[tokio::test]
async fn a_created_folder_is_reported_and_its_subtree_recorded_within_budget() {
    let rig = Rig::memory();
    rig.source.inner.create_dir("/w/TV");
    rig.due_pass(100).await;
    rig.reschedule_all(0, 5 * MIN);
    rig.source.inner.write_file("/w/TV/New/S01/e1.mkv", 1);
    rig.source.inner.write_file("/w/TV/New/S02/e1.mkv", 1);
    let r = rig.due_pass(3).await;
    assert_eq!(
        r.folders_listed, 3,
        "/w, /w/TV, then /w/TV/New within the budget"
    );
    assert_eq!(
        r.changes,
        vec![Change::new("/w/TV/New", Update::Created, true)]
    );
    assert!(
        r.folders_deferred >= 2,
        "the seasons wait for the next pass"
    );
    let r = rig.due_pass(3).await;
    assert_eq!(r.folders_listed, 2);
    assert_eq!(
        r.changes,
        vec![
            Change::new("/w/TV/New/S01", Update::Created, true),
            Change::new("/w/TV/New/S02", Update::Created, true),
        ],
        "left due past the pass that reported their parent: reported again"
    );
    assert!(
        rig.store
            .folder(rig.scope, "/w/TV/New/S02")
            .unwrap()
            .is_some()
    );
    assert_eq!(
        rig.interval("/w/TV/New/S02"),
        5 * MIN,
        "a new folder starts at the base"
    );
}

#[tokio::test]
async fn a_hint_makes_the_nearest_known_folder_due_with_force_refresh() {
    let rig = Rig::memory();
    rig.source.inner.write_file("/w/TV/Show/S01/e1.mkv", 1);
    rig.due_pass(100).await;
    rig.reschedule_all(3600, 80 * MIN);
    rig.source.inner.write_file("/w/TV/Show/S01/e2.mkv", 1);
    // The hint names the new file: its folder is what gets listed.
    let marked = rig
        .engine
        .hint(&rig.watch, "/w/TV/Show/S01/e2.mkv", Origin::Push)
        .unwrap();
    assert_eq!(marked.as_deref(), Some("/w/TV/Show/S01"));
    assert!(
        rig.engine
            .hint(&rig.watch, "/elsewhere/x", Origin::Push)
            .unwrap()
            .is_none()
    );
    let s = rig
        .store
        .schedule(rig.scope, "/w/TV/Show/S01")
        .unwrap()
        .unwrap();
    assert!(
        s.force_refresh && s.next_due == rig.now(),
        "persisted at once: {s:?}"
    );
    rig.source.take_listed();
    let r = rig.due_pass(10).await;
    assert_eq!(*rig.source.forced.lock().unwrap(), ["/w/TV/Show/S01"]);
    assert_eq!(rig.source.take_listed(), ["/w/TV/Show/S01"]);
    assert_eq!(
        r.changes,
        vec![Change::new("/w/TV/Show/S01/e2.mkv", Update::Created, false)]
    );
    assert!(
        !rig.store
            .schedule(rig.scope, "/w/TV/Show/S01")
            .unwrap()
            .unwrap()
            .force_refresh
    );

    // A rename event names both paths; a deleted folder lists as missing and makes its
    // parent due, whose listing reports the deletion.
    rig.source
        .inner
        .rename("/w/TV/Show/S01", "/w/TV/Show/Season 1");
    let marked = rig
        .engine
        .hint_event(
            &rig.watch,
            &Hint {
                path: "/w/TV/Show/S01".into(),
                new_path: Some("/w/TV/Show/Season 1".into()),
                is_dir: true,
            },
        )
        .unwrap();
    assert_eq!(marked, ["/w/TV/Show/S01", "/w/TV/Show"]);
    let r = rig.due_pass(10).await;
    let mut changes = r.changes.clone();
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        changes,
        vec![
            Change::new("/w/TV/Show/S01", Update::Deleted, true),
            Change::new("/w/TV/Show/Season 1", Update::Created, true),
        ]
    );
    assert!(
        rig.store
            .schedule(rig.scope, "/w/TV/Show/S01")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_backlog_is_served_best_first_and_no_folder_waits_past_ceiling_plus_a_pass() {
    let rig = Rig::memory();
    let n = 60;
    for i in 0..n {
        rig.source.inner.create_dir(&format!("/w/D{i:02}"));
    }
    rig.due_pass(1000).await;
    // Everything overdue at once, with different due times: a backlog of n + 1.
    rig.reschedule_all(0, 80 * MIN);
    let mut overdue = Vec::new();
    for (k, (p, mut s)) in rig
        .store
        .due(rig.scope, Timestamp::from_secs(i64::MAX), usize::MAX)
        .unwrap()
        .into_iter()
        .enumerate()
    {
        // Scramble the order so due order differs from path order.
        s.next_due = rig
            .now()
            .minus(Duration::from_secs(((k * 37) % 61) as u64 + 1));
        overdue.push((p, s));
    }
    rig.store
        .commit(
            rig.scope,
            &pps_core::store::Commit {
                schedules: overdue.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    // The root first (listed at its interval whatever the queue), then the store's
    // ranking: the changes a listing is expected to find (all listed together, so the
    // one that changed last comes first, at any later time), then the due time.
    let now = rig.now().plus(Duration::from_secs(1));
    overdue.sort_by(|a, b| {
        (b.0 == "/w")
            .cmp(&(a.0 == "/w"))
            .then(b.1.expected(now).total_cmp(&a.1.expected(now)))
            .then((a.1.next_due, &a.0).cmp(&(b.1.next_due, &b.0)))
    });
    let want: Vec<String> = overdue.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(want[0], "/w");

    // One listing per second; new due folders keep arriving (the due time of the
    // folders listed comes round again after their interval).
    let mut order = Vec::new();
    let mut last_listed = std::collections::HashMap::new();
    let mut worst = 0u64;
    for _ in 0..(3 * 80 * MIN) {
        rig.source.take_listed();
        let r = rig.due_pass(1).await;
        assert!(r.folders_listed <= 1, "never more than the budget");
        for p in rig.source.take_listed() {
            if order.len() < want.len() {
                order.push(p.clone());
            }
            if let Some(prev) = last_listed.insert(p, rig.now().as_secs()) {
                worst = worst.max((rig.now().as_secs() - prev) as u64);
            }
        }
        rig.advance(1);
    }
    assert_eq!(order[..2], want[..2], "the root, then the best first");
    let mut seen = order.clone();
    seen.sort();
    let mut all = want.clone();
    all.sort();
    assert_eq!(seen, all, "each once before any twice");
    let one_pass = (n + 1) as u64;
    assert!(
        worst <= 80 * MIN + one_pass,
        "worst gap {worst} s > ceiling + one pass"
    );
    assert_eq!(last_listed.len(), n + 1, "every folder was listed");
}

#[tokio::test]
async fn a_restart_keeps_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let rig = Rig::new(store, schedule());
    for i in 0..10 {
        rig.source.inner.create_dir(&format!("/w/D{i}"));
    }
    rig.due_pass(100).await;
    rig.reschedule_all(0, 5 * MIN);
    rig.due_pass(100).await; // all listed: due again in 10 minutes
    rig.reschedule_all(20 * MIN, 10 * MIN);
    let s = rig.store.schedule(rig.scope, "/w/D3").unwrap().unwrap();
    let Rig {
        source,
        clock,
        watch,
        ..
    } = rig;
    // "Restart": a new store handle and engine on the same file, 5 minutes later.
    clock.advance(Duration::from_secs(5 * MIN));
    let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let scope = store.scope("src", "/w").unwrap();
    assert_eq!(
        store.schedule(scope, "/w/D3").unwrap(),
        Some(s),
        "survives reopening"
    );
    let engine = Rig::engine(&store, &source, &clock);
    source.take_listed();
    let r = engine.pass_due(&watch, 100).await.unwrap();
    assert_eq!(
        source.take_listed(),
        ["/w"],
        "a restart does not make everything due (the root is, at its interval)"
    );
    assert_eq!(r.folders_listed, 1);
    // Nor does it postpone: at the stored due time they are listed.
    clock.advance(Duration::from_secs(15 * MIN));
    let r = engine.pass_due(&watch, 100).await.unwrap();
    assert_eq!(r.folders_listed, 11);
}

#[tokio::test]
async fn settle_holds_a_change_until_the_folder_stops_changing() {
    let rig = Rig::new(
        Arc::new(MemoryStore::new()),
        schedule().with_settle(Duration::from_secs(10 * MIN)),
    );
    rig.source.inner.write_file("/w/A/a.mkv", 1);
    rig.due_pass(100).await;
    rig.reschedule_all(0, 5 * MIN);
    // An upload in progress.
    rig.source.inner.write_file("/w/A/big.mkv", 100);
    let r = rig.due_pass(100).await;
    assert!(r.changes.is_empty(), "held: {:?}", r.changes);
    assert_eq!(
        r.folders_settling, 2,
        "/w/A, and /w where the entry of A moved"
    );
    assert!(
        rig.store
            .schedule(rig.scope, "/w/A")
            .unwrap()
            .unwrap()
            .settling
            .is_some()
    );
    assert_eq!(rig.due_at("/w/A"), rig.now().as_secs() + 10 * MIN as i64);
    rig.advance(6 * MIN);
    rig.source.inner.write_file("/w/A/big.mkv", 200);
    assert!(rig.due_pass(100).await.changes.is_empty(), "not due yet");
    rig.advance(4 * MIN);
    let r = rig.due_pass(100).await;
    assert!(
        r.changes.is_empty(),
        "it changed again: the wait starts over"
    );
    assert!(r.folders_settling >= 1, "{r:?}");
    assert!(
        rig.store
            .schedule(rig.scope, "/w/A")
            .unwrap()
            .unwrap()
            .settling
            .is_some()
    );
    rig.advance(10 * MIN);
    let r = rig.due_pass(100).await;
    assert_eq!(
        r.changes,
        vec![Change::new("/w/A/big.mkv", Update::Created, false)],
        "one change, against the state before the upload"
    );
    assert_eq!(
        rig.store
            .schedule(rig.scope, "/w/A")
            .unwrap()
            .unwrap()
            .settling,
        None
    );
    // A full pass follows the same rule.
    rig.source.inner.write_file("/w/A/c.mkv", 1);
    let r = rig.engine.pass(&rig.watch).await.unwrap();
    assert!(r.changes.is_empty() && r.folders_settling == 2, "{r:?}");
    rig.advance(10 * MIN);
    let r = rig.engine.pass(&rig.watch).await.unwrap();
    assert_eq!(
        r.changes,
        vec![Change::new("/w/A/c.mkv", Update::Created, false)]
    );
}

#[tokio::test]
async fn a_full_pass_keeps_schedules_current() {
    let rig = Rig::memory();
    rig.source.inner.write_file("/w/A/a.mkv", 1);
    rig.source.inner.write_file("/w/B/b.mkv", 1);
    rig.source.inner.write_file("/w/C/c.mkv", 1);
    rig.engine.pass(&rig.watch).await.unwrap();
    rig.reschedule_all(0, 10 * MIN);
    // /w/B not due: a full pass leaves its schedule alone when it is unchanged.
    let b = rig.store.schedule(rig.scope, "/w/B").unwrap().unwrap();
    let later = pps_core::store::FolderSchedule {
        next_due: rig.now().plus(Duration::from_secs(30 * MIN)),
        ..b
    };
    rig.store
        .commit(
            rig.scope,
            &pps_core::store::Commit {
                schedules: vec![("/w/B".into(), later)],
                ..Default::default()
            },
        )
        .unwrap();
    rig.source.inner.write_file("/w/A/a2.mkv", 1);
    let r = rig.engine.pass(&rig.watch).await.unwrap();
    assert_eq!(r.changes.len(), 1);
    assert_eq!(rig.interval("/w/A"), 5 * MIN, "changed: reset");
    assert_eq!(rig.interval("/w/C"), 20 * MIN, "due and unchanged: grown");
    assert_eq!(
        rig.interval("/w"),
        5 * MIN,
        "the entry of /w/A moved in it: changed"
    );
    assert_eq!(rig.store.schedule(rig.scope, "/w/B").unwrap(), Some(later));
    // The status summary.
    let sum = rig
        .engine
        .schedule_summary(&rig.watch, Duration::from_secs(3600))
        .unwrap();
    assert_eq!((sum.folders, sum.due_now, sum.due_within), (4, 0, 4));
    assert_eq!(sum.longest_interval, Duration::from_secs(20 * MIN));
}

#[tokio::test]
async fn a_created_folder_left_due_is_reported_again_when_first_recorded() {
    // Files can arrive in a new folder between the scan its creation caused and its
    // first listing; scanning it again is the at-least-once answer.
    for full in [false, true] {
        let rig = Rig::memory();
        rig.source.inner.create_dir("/w/TV");
        rig.due_pass(100).await;
        rig.reschedule_all(0, 5 * MIN);
        rig.source.inner.write_file("/w/TV/New/S01/e1.mkv", 1);
        let r = rig.due_pass(2).await;
        assert_eq!(
            r.changes,
            vec![Change::new("/w/TV/New", Update::Created, true)]
        );
        assert!(
            rig.store.folder(rig.scope, "/w/TV/New").unwrap().is_none(),
            "left due"
        );
        rig.source.inner.write_file("/w/TV/New/S01/e2.mkv", 1);
        let r = if full {
            rig.engine.pass(&rig.watch).await.unwrap()
        } else {
            rig.due_pass(100).await
        };
        assert_eq!(
            r.changes,
            vec![Change::new("/w/TV/New", Update::Created, true)],
            "full pass: {full}"
        );
        assert!(
            rig.store
                .folder(rig.scope, "/w/TV/New/S01")
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn spare_budget_goes_to_the_likeliest_folders_and_never_beyond_it() {
    let rig = Rig::memory();
    for i in 0..40 {
        rig.source
            .inner
            .write_file(&format!("/w/Old {i:02}/a.mkv"), 1);
    }
    rig.source.inner.write_file("/w/Airing/S01/e1.mkv", 1);
    rig.engine.pass(&rig.watch).await.unwrap();
    // Known history: the airing season changed a day ago, the rest years ago; nothing
    // is due for an hour.
    let now = rig.now();
    let mut commit = pps_core::store::Commit::default();
    for (p, mut s) in rig.store.schedules(rig.scope).unwrap() {
        s.next_due = now.plus(Duration::from_secs(3600));
        s.interval = Duration::from_secs(3600);
        s.listed = Some(now);
        s.last_change = Some(if p == "/w/Airing/S01" {
            now.minus(Duration::from_secs(86_400))
        } else {
            now.minus(Duration::from_secs(1000 * 86_400))
        });
        commit.schedules.push((p, s));
    }
    rig.store.commit(rig.scope, &commit).unwrap();
    rig.advance(20 * MIN);
    rig.source.take_listed();
    // Nothing is due but the root (at its interval): without spare budget, nothing
    // else is listed.
    let r = rig.engine.pass_due(&rig.watch, 10).await.unwrap();
    assert_eq!(r.folders_listed, 1);
    assert_eq!(rig.source.take_listed(), ["/w"]);
    // With it, the airing season first, and never more than was given.
    rig.source.inner.write_file("/w/Airing/S01/e2.mkv", 1);
    let r = rig.engine.pass_due_spare(&rig.watch, 10, 3).await.unwrap();
    assert_eq!(r.folders_spare, 3);
    assert_eq!(r.folders_listed, 3, "the budget given, no more");
    let listed = rig.source.take_listed();
    assert!(listed.contains(&"/w/Airing/S01".to_owned()), "{listed:?}");
    assert_eq!(
        r.changes,
        vec![Change::new("/w/Airing/S01/e2.mkv", Update::Created, false)],
        "a spare listing reports what it finds"
    );
    // A spare listing that finds nothing keeps the folder's interval.
    let other = listed
        .iter()
        .find(|p| p.starts_with("/w/Old"))
        .expect("an old folder got a spare listing too");
    assert_eq!(rig.interval(other), 3600);
    // A folder just listed is not listed again before a base interval passed.
    let r = rig
        .engine
        .pass_due_spare(&rig.watch, 100, 100)
        .await
        .unwrap();
    let again = rig.source.take_listed();
    assert!(!again.iter().any(|p| listed.contains(p)), "{again:?}");
    assert!(r.folders_spare <= 100);
}

/// The (path, origin) of every change line in the history, oldest first.
fn change_origins(store: &dyn MtimeStore) -> Vec<(String, Option<Origin>)> {
    let mut lines = store
        .history(&pps_core::store::HistoryQuery {
            events: vec![pps_core::store::Event::Change],
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    lines.reverse();
    lines
        .into_iter()
        .map(|h| (h.change.path.clone(), h.origin()))
        .collect()
}

#[tokio::test]
async fn the_history_says_what_made_pps_look_for_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let rig = Rig::new(store, schedule());
    for f in ["/w/A/a.mkv", "/w/B/b.mkv", "/w/C/c.mkv"] {
        rig.source.inner.write_file(f, 1);
    }
    rig.due_pass(100).await;

    // Due by the schedule: a poll.
    rig.reschedule_all(0, 5 * MIN);
    rig.source.inner.write_file("/w/A/a2.mkv", 1);
    rig.due_pass(100).await;
    // Nothing due for an hour: only what a hint names is listed.
    rig.reschedule_all(3600, 80 * MIN);
    rig.source.inner.write_file("/w/B/b2.mkv", 1);
    rig.engine
        .hint_paths(&rig.watch, &["/w/B/b2.mkv".to_owned()], Origin::Webhook)
        .unwrap();
    rig.due_pass(100).await;
    rig.source.inner.write_file("/w/C/c2.mkv", 1);
    rig.engine
        .hint_event(
            &rig.watch,
            &Hint {
                path: "/w/C/c2.mkv".into(),
                new_path: None,
                is_dir: false,
            },
        )
        .unwrap();
    rig.due_pass(100).await;
    // A full walk, then a scan by hand.
    rig.source.inner.write_file("/w/A/a3.mkv", 1);
    rig.engine.pass(&rig.watch).await.unwrap();
    rig.engine
        .queue_scan(&rig.watch, "/w/C/c.mkv", &["t".to_owned()])
        .await
        .unwrap();
    // A full pass a user asked for (the web UI's Scan now).
    rig.source.inner.write_file("/w/B/b3.mkv", 1);
    rig.engine
        .pass_as(&rig.watch, Origin::Manual)
        .await
        .unwrap();

    let want = vec![
        ("/w/A/a2.mkv".to_owned(), Some(Origin::Poll)),
        ("/w/B/b2.mkv".to_owned(), Some(Origin::Webhook)),
        ("/w/C/c2.mkv".to_owned(), Some(Origin::Push)),
        ("/w/A/a3.mkv".to_owned(), Some(Origin::Walk)),
        ("/w/C/c.mkv".to_owned(), Some(Origin::Manual)),
        ("/w/B/b3.mkv".to_owned(), Some(Origin::Manual)),
    ];
    assert_eq!(change_origins(rig.store.as_ref()), want);
    // Written to the file: a reopened store says the same.
    drop(rig);
    let reopened = SqliteStore::open(&db).unwrap();
    assert_eq!(change_origins(&reopened), want);
}

#[tokio::test]
async fn a_hint_s_origin_outlasts_the_settle_wait() {
    let rig = Rig::new(
        Arc::new(MemoryStore::new()),
        schedule().with_settle(Duration::from_secs(10 * MIN)),
    );
    rig.source.inner.write_file("/w/A/a.mkv", 1);
    rig.due_pass(100).await;
    rig.reschedule_all(3600, 80 * MIN);
    rig.source.inner.write_file("/w/A/big.mkv", 100);
    rig.engine
        .hint(&rig.watch, "/w/A/big.mkv", Origin::Webhook)
        .unwrap();
    let r = rig.due_pass(100).await;
    assert!(r.changes.is_empty(), "held: {:?}", r.changes);
    // The listing that commits it after the wait is due by the settle rule, yet the
    // change is still the webhook's (and the root, due again by then, found it too).
    rig.advance(10 * MIN);
    let r = rig.due_pass(100).await;
    assert_eq!(r.changes.len(), 1, "{r:?}");
    assert_eq!(
        change_origins(rig.store.as_ref()),
        [("/w/A/big.mkv".to_owned(), Some(Origin::Webhook))]
    );
}
