//! The service's loop (`Engine::run_scheduled`) as users meet it, on tokio's paused
//! clock: the library shapes of issue 24 (a quiet root, a saturated budget) through the
//! real rate limit layer, and one budget shared by two processes of a store.

use pps_core::budget::{CallLimits, StoreGate};
use pps_core::clock::TokioClock;
use pps_core::engine::{PassBudget, SparePolicy};
use pps_core::layers::{RateLimit, RateLimitPolicy};
use pps_core::memory::{MemorySource, MemoryStore};
use pps_core::sqlite::SqliteStore;
use pps_core::{
    Change, Clock, DirectorySource, Engine, ListOptions, ManualClock, MtimeStore, Schedule,
    Timestamp, Update, Watch,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T0: i64 = 1_800_000_000;
const DAY: u64 = 86_400;

/// Changes found by the loop, with the (virtual) time of the pass that found them.
type Found = Arc<Mutex<Vec<(Timestamp, Change)>>>;

/// Starts the loop for `watch` on `engine`; returns what it finds.
fn start(engine: &Engine, watch: &Watch, rate: f64) -> Found {
    let found: Found = Arc::default();
    let (engine, watch, out) = (engine.clone(), watch.clone(), found.clone());
    let budget = PassBudget::new(watch.source.clone(), rate, SparePolicy::Rate);
    tokio::spawn(async move {
        let wake = tokio::sync::Notify::new();
        let clock = engine.clock().clone();
        engine
            .run_scheduled(&watch, &budget, &wake, |r| {
                let at = clock.now();
                out.lock()
                    .unwrap()
                    .extend(r.changes.iter().map(|c| (at, c.clone())));
            })
            .await;
    });
    found
}

fn found_at(found: &Found, path: &str) -> Option<Timestamp> {
    found
        .lock()
        .unwrap()
        .iter()
        .find(|(_, c)| c.path == path)
        .map(|(t, _)| *t)
}

/// A memory source whose existing files carry the mtimes of `age` ago, and whose later
/// writes carry the loop's (virtual) time.
fn library(age: Duration, build: impl FnOnce(&MemorySource)) -> (MemorySource, TokioClock) {
    let src = MemorySource::new();
    let then = ManualClock::new(Timestamp::from_secs(T0).minus(age));
    src.set_clock(Arc::new(then));
    build(&src);
    let clock = TokioClock::new(Timestamp::from_secs(T0));
    src.set_clock(Arc::new(clock));
    (src, clock)
}

fn engine(src: &MemorySource, clock: TokioClock, rate: f64) -> Engine {
    let limited = RateLimit::new(src.clone(), RateLimitPolicy::new(rate, 1));
    Engine::new(Arc::new(MemoryStore::new()))
        .with_source("cd2", Arc::new(limited))
        .with_clock(Arc::new(clock))
}

/// Issue 24, case 1: a new film created directly in a quiet root (every film months
/// old) was not found 15 minutes later with `interval = "10s"`: the root was due a day
/// after the index. A root is listed at its interval.
#[tokio::test(start_paused = true)]
async fn a_new_title_in_a_quiet_root_is_found_within_its_interval() {
    let (src, clock) = library(Duration::from_secs(200 * DAY), |src| {
        for i in 0..14 {
            src.write_file(&format!("/115/电影/Film {i:02} (2020)/film.mkv"), 1);
        }
    });
    let engine = engine(&src, clock, 0.9);
    let watch = Watch::new("cd2", "/115/电影").unwrap().with_schedule(
        Schedule::default()
            .with_base_interval(Duration::from_secs(10))
            .with_max_interval(Duration::from_secs(DAY)),
    );
    assert!(engine.pass(&watch).await.unwrap().baseline);
    let found = start(&engine, &watch, 0.9);
    // A quarter of an hour on, twice, a new film lands directly in the root.
    for round in 0..2 {
        tokio::time::sleep(Duration::from_secs(900)).await;
        let film = format!("/115/电影/New {round} (2026)");
        let written = clock.now();
        src.write_file(&format!("{film}/film.mkv"), 1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let at = found_at(&found, &film).unwrap_or_else(|| {
            panic!(
                "{film} not found a minute later: {:?}",
                found.lock().unwrap()
            )
        });
        let delay = at.since(written);
        assert!(
            delay <= Duration::from_secs(10 + 5),
            "{film}: found after {delay:?}, over the interval plus the wait for a call"
        );
    }
    let created = found
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, c)| c.update == Update::Created)
        .count();
    assert_eq!(created, 2, "{:?}", found.lock().unwrap());
}

/// Issue 24, case 2: 411 shows whose seasons are all fresh (a library copied minutes
/// ago), 5 calls a second, `interval = "2s"`: the due folders (823 at intervals of
/// about 20 s: some 45 a second) outnumber the budget nine times over, for good. Once
/// the airing season's first episode is found, its next ones must be found within
/// seconds, not behind hundreds of folders that are merely due.
#[tokio::test(start_paused = true)]
async fn a_folder_just_seen_changing_is_listed_again_within_seconds_under_a_saturated_budget() {
    let (src, clock) = library(Duration::from_secs(300), |src| {
        for i in 0..411 {
            for e in 1..=3 {
                src.write_file(&format!("/lib/Show {i:03}/S01/E{e:02}.mkv"), 1);
            }
        }
    });
    let rate = 5.0;
    let engine = engine(&src, clock, rate);
    let watch = Watch::new("cd2", "/lib").unwrap().with_schedule(
        Schedule::default()
            .with_base_interval(Duration::from_secs(2))
            .with_max_interval(Duration::from_secs(DAY)),
    );
    assert!(engine.pass(&watch).await.unwrap().baseline);
    let calls_before = src.list_calls();
    let started = clock.now();
    let found = start(&engine, &watch, rate);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let season = "/lib/Show 007/S01";
    let mut delays = Vec::new();
    for ep in 10..16 {
        let path = format!("{season}/E{ep:02}.mkv");
        let written = clock.now();
        src.write_file(&path, 1);
        // A round of every folder at 5 a second takes under three minutes.
        let wait = if delays.is_empty() { 240 } else { 60 };
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let at = found_at(&found, &path)
            .unwrap_or_else(|| panic!("{path} not found within {wait} s under saturation"));
        delays.push(at.since(written).as_secs());
    }
    // The first episode waits its turn in the round (nothing told pps earlier); each
    // one after it is found within 15 s.
    assert!(
        delays[1..].iter().all(|d| *d <= 15),
        "delays after the first change: {delays:?}"
    );
    // Still saturated, and never above the rate (plus the limiter's burst of one).
    let due = engine
        .schedule_summary(&watch, Duration::ZERO)
        .unwrap()
        .due_now;
    assert!(due > 100, "saturated: {due} folders due");
    let elapsed = clock.now().since(started).as_secs_f64();
    let calls = (src.list_calls() - calls_before) as f64;
    assert!(
        calls <= rate * elapsed + 1.0,
        "{calls} calls in {elapsed} s"
    );
    assert!(
        calls >= 0.9 * rate * elapsed,
        "the budget is used: {calls} in {elapsed} s"
    );
}

/// Issue 24, case 3: `pps walk` beside `pps run` spent a second budget on the same
/// account. Two "processes" (two store handles on one SQLite file, each with its own
/// rate limit layer at the full rate) list as fast as they may: together they stay
/// within the one budget.
#[tokio::test(start_paused = true)]
async fn two_processes_of_one_store_share_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let src = MemorySource::new();
    src.create_dir("/115");
    let clock = TokioClock::new(Timestamp::from_secs(T0));
    let limits = CallLimits::new(1.0);
    let process = || {
        let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
        let layer = RateLimit::new(src.clone(), RateLimitPolicy::new(1.0, 1));
        let wall = Arc::new(move || clock.wall());
        assert!(layer.share_budget(Arc::new(
            StoreGate::new(store.clone(), "cd2", limits).with_clock(wall)
        )));
        (layer, store)
    };
    let (a, store) = process();
    let (b, _) = process();
    let before = src.list_calls();
    let run = |s: RateLimit<MemorySource>| {
        tokio::spawn(async move {
            loop {
                s.list("/115", ListOptions::default()).await.unwrap();
            }
        })
    };
    let (ta, tb) = (run(a), run(b));
    tokio::time::sleep(Duration::from_secs(120)).await;
    ta.abort();
    tb.abort();
    let calls = src.list_calls() - before;
    // 120 s at one a second, plus the bucket's one saved call.
    assert!(
        calls <= 121,
        "{calls} calls in 120 s against a budget of 1/s"
    );
    assert!(calls >= 115, "the budget is still used: {calls}");
    assert_eq!(
        store.calls_since("cd2", Timestamp::from_secs(T0)).unwrap(),
        calls,
        "every call counted once in the store"
    );
}

/// When the cloud says calls come too fast, every process of the store pauses at
/// least a minute: 115 keeps throttling an account that comes back within seconds.
#[tokio::test(start_paused = true)]
async fn a_throttled_answer_pauses_every_process_for_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let src = MemorySource::new();
    src.create_dir("/115/A");
    let clock = TokioClock::new(Timestamp::from_secs(T0));
    let process = || {
        let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
        let layer = RateLimit::new(src.clone(), RateLimitPolicy::new(10.0, 1));
        let wall = Arc::new(move || clock.wall());
        layer.share_budget(Arc::new(
            StoreGate::new(store, "cd2", CallLimits::new(10.0)).with_clock(wall),
        ));
        layer
    };
    let (a, b) = (process(), process());
    src.inject_fault("/115/A", pps_core::ErrorKind::Throttled, Some(1));
    let err = a.list("/115/A", ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), pps_core::ErrorKind::Throttled);
    let throttled_at = tokio::time::Instant::now();
    // The other process's next call waits out the pause.
    b.list("/115", ListOptions::default()).await.unwrap();
    let waited = throttled_at.elapsed();
    assert!(
        waited >= Duration::from_secs(60),
        "the other process called again after {waited:?}"
    );
    assert!(waited < Duration::from_secs(62), "{waited:?}");
}

/// Two watches of one local source share its pass budget: both get their baseline at
/// once and both keep being listed. (A guard, not a reproduction: the systemd unit's
/// test once saw a second watch's baseline not come in 20 s, which a token race would
/// explain, but on a paused clock with stores in memory nothing yields while tokens
/// are held, so this passed before that fix too.)
#[tokio::test(start_paused = true)]
async fn two_watches_of_a_source_both_get_their_baseline_at_once() {
    let src = MemorySource::new();
    src.write_file("/srv/media/a.mkv", 1);
    src.write_file("/home/media/b.mkv", 1);
    let clock = TokioClock::new(Timestamp::from_secs(T0));
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(store.clone())
        .with_source("nas", Arc::new(src.clone()))
        .with_clock(Arc::new(clock));
    let schedule = Schedule::default()
        .with_base_interval(Duration::from_secs(1))
        .with_max_interval(Duration::from_secs(2));
    let budget = Arc::new(PassBudget::new("nas", 1000.0, SparePolicy::Off));
    for root in ["/srv/media", "/home/media"] {
        let (engine, budget) = (engine.clone(), budget.clone());
        let watch = Watch::new("nas", root).unwrap().with_schedule(schedule);
        tokio::spawn(async move {
            let wake = tokio::sync::Notify::new();
            engine.run_scheduled(&watch, &budget, &wake, |_| {}).await;
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for root in ["/srv/media", "/home/media"] {
        let scope = store.scope("nas", root).unwrap();
        assert!(
            store.folder(scope, root).unwrap().is_some(),
            "{root} has its baseline within half a second"
        );
    }
    // Both keep being listed at their interval.
    let before = src.list_calls();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        src.list_calls() - before >= 10,
        "{}",
        src.list_calls() - before
    );
}
