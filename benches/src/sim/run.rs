//! The real engine on a manual clock, second by second: a baseline at the start (a cold
//! start, no warm-up), then the library's changes applied as their second comes, and
//! every virtual second the scheduled passes that the per-second `CallBudget` allows,
//! spare budget going to spare listings.

use super::library::{DAY, Kind, Library, T0, apply};
use pps_core::memory::MemoryStore;
use pps_core::path::is_at_or_under;
use pps_core::{CallBudget, Clock, Engine, ManualClock, PassReport, Timestamp, Watch};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One measured change: when it was made, its kind, whether active, and how long until a
/// pass reported it (until the end of the run when none did).
#[derive(Debug, Clone, Copy)]
pub struct Found {
    /// When the change was made.
    pub t: i64,
    /// Its kind.
    pub kind: Kind,
    /// Whether the folder that shows it had another change in the 48 hours before.
    pub active: bool,
    /// Seconds from the change to the pass that reported it.
    pub delay: i64,
    /// Whether a pass reported it before the run ended.
    pub found: bool,
}

/// The run's options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A daily ceiling on listings, which spare listings respect (`max_calls_per_day`).
    pub max_calls_per_day: Option<u64>,
}

/// What the schedule asked for at one moment: the listings a second it is on course to
/// spend (the sum of one over each folder's interval).
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    /// Seconds after the start.
    pub at: i64,
    /// Listings a second.
    pub per_second: f64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every change of the measured period.
    pub found: Vec<Found>,
    /// Whether each event was active, in event order (for the walks).
    pub active: Vec<bool>,
    /// Folders listed by the baseline (not counted against the budget).
    pub baseline_calls: u64,
    /// Listings in the measured period.
    pub calls_measured: u64,
    /// Of them, spare listings.
    pub spare_calls: u64,
    /// Listings on day 1.
    pub calls_day1: u64,
    /// The most listings in any one virtual second, from the source's call counter.
    pub max_per_second: u64,
    /// Every folder of the watches at the start and at the end of the measured period.
    pub folders: BTreeSet<String>,
    /// Folders at the start.
    pub folders_at_start: usize,
    /// Right after the baseline: folders per interval band (as `ScheduleSummary::bands`).
    pub bands: [u64; 5],
    /// The schedule's demand after the baseline and later on.
    pub demand: Vec<Demand>,
    /// Wall time of building the library and running it.
    pub wall: Duration,
    /// Virtual seconds simulated after the start: the run stops in the quiet tail once
    /// every measured change is found, since nothing after that is measured.
    pub simulated: i64,
    /// The machine's load average over the last minute at the end (another build on a
    /// two-core machine slows the run down: wall times are only comparable with it).
    pub load: f64,
}

/// When the schedule's demand is sampled, in seconds after the start.
const DEMAND_AT: [i64; 5] = [0, 3600, 6 * 3600, DAY, 7 * DAY];

/// Runs the engine over the library; `built` is when building the library started.
pub fn run(lib: &Library, opts: Options, built: Instant) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    lib.source.set_clock(Arc::new(clock.clone()));
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(store)
        .with_source("cloud", Arc::new(lib.source.clone()))
        .with_clock(Arc::new(clock.clone()));
    let watches: Vec<Watch> = lib
        .roots
        .iter()
        .map(|r| {
            Watch::new("cloud", r)
                .expect("watch")
                .with_schedule(lib.schedule)
        })
        .collect();
    let under_roots = |p: &str| lib.roots.iter().any(|r| is_at_or_under(p, r));
    let folders_now = || -> BTreeSet<String> {
        lib.source
            .folders()
            .into_iter()
            .filter(|p| under_roots(p))
            .collect()
    };

    // A cold start: the baseline, and from the next second on, the measured period.
    let mut baseline_calls = 0;
    for w in &watches {
        let r = rt.block_on(engine.pass(w)).expect("baseline");
        assert!(r.baseline);
        baseline_calls += r.folders_listed;
    }
    let mut folders = folders_now();
    let folders_at_start = folders.len();
    let mut bands = [0u64; 5];
    let mut demand = Vec::new();
    let sample = |at: i64| Demand {
        at,
        per_second: watches
            .iter()
            .map(|w| {
                engine
                    .schedule_summary(w, Duration::from_secs(3600))
                    .expect("summary")
                    .calls_per_day
            })
            .sum::<f64>()
            / DAY as f64,
    };
    for w in &watches {
        let s = engine
            .schedule_summary(w, Duration::from_secs(3600))
            .expect("summary");
        for (b, n) in bands.iter_mut().zip(s.bands) {
            *b += n;
        }
    }
    demand.push(sample(0));

    let active = lib.classify();
    let measured = lib.measured_range();
    let rate = lib.rate;
    let mut budget = CallBudget::new(rate.calls, Duration::from_secs(rate.per_secs));
    let cap = rate.cap_per_second();
    let mut daily = opts
        .max_calls_per_day
        .map(|n| CallBudget::new(n, Duration::from_secs(DAY as u64)));
    // Changes not yet reported, by the path whose reported change finds them.
    let mut pending: BTreeMap<String, Vec<(i64, bool, Kind)>> = BTreeMap::new();
    let mut found: Vec<Found> = Vec::new();
    let mut next = 0;
    let (mut calls_measured, mut calls_day1, mut spare_calls) = (0u64, 0u64, 0u64);
    let mut max_per_second = 0u64;
    let end = T0 + lib.measured + lib.tail;
    let mut now = T0 + 1;
    while now < end {
        // The second that ends the measured period still runs (its demand is sampled).
        if now > measured.end && pending.is_empty() {
            break;
        }
        clock.set(Timestamp::from_secs(now));
        while next < lib.events.len() && lib.events[next].t <= now {
            let e = &lib.events[next];
            for op in &e.ops {
                apply(&lib.source, op);
            }
            if measured.contains(&e.t) {
                pending
                    .entry(e.path.clone())
                    .or_default()
                    .push((e.t, active[next], e.kind));
            }
            next += 1;
        }
        if now == measured.end {
            // The folders created during the measured period count in the optimum.
            folders.extend(folders_now());
        }
        let before = lib.source.list_calls();
        // What the bucket holds, and never more than the rate limit layer lets through
        // in one second.
        let allowed = budget.available(clock.now()).min(cap);
        let spare = daily
            .as_mut()
            .map_or(u64::MAX, |d| d.available(clock.now()));
        let reports = passes(&rt, &engine, &watches, now, allowed, spare);
        let spent = lib.source.list_calls() - before;
        assert!(
            spent <= allowed,
            "the passes of a second spent more than its budget"
        );
        budget.spend(spent);
        if let Some(d) = daily.as_mut() {
            d.spend(spent);
        }
        max_per_second = max_per_second.max(spent);
        if measured.contains(&now) {
            calls_measured += spent;
            spare_calls += reports.iter().map(|r| r.folders_spare).sum::<u64>();
        }
        if now < T0 + DAY {
            calls_day1 += spent;
        }
        for c in reports.iter().flat_map(|r| &r.changes) {
            let hits: Vec<String> = pending
                .range(c.path.clone()..)
                .take_while(|(p, _)| p.starts_with(c.path.as_str()))
                .filter(|(p, _)| is_at_or_under(p, &c.path))
                .map(|(p, _)| p.clone())
                .collect();
            for p in hits {
                for (t, active, kind) in pending.remove(&p).unwrap_or_default() {
                    found.push(Found {
                        t,
                        kind,
                        active,
                        delay: now - t,
                        found: true,
                    });
                }
            }
        }
        if DEMAND_AT[1..].contains(&(now - T0)) {
            demand.push(sample(now - T0));
        }
        now += 1;
    }
    // Changes never reported count with their delay so far (a lower bound).
    for (t, active, kind) in pending.into_values().flatten() {
        found.push(Found {
            t,
            kind,
            active,
            delay: end - t,
            found: false,
        });
    }
    found.sort_by_key(|f| f.t);
    Outcome {
        found,
        active,
        baseline_calls,
        calls_measured,
        spare_calls,
        calls_day1,
        max_per_second,
        folders,
        folders_at_start,
        bands,
        demand,
        wall: built.elapsed(),
        simulated: now - T0,
        load: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0),
    }
}

/// One virtual second's passes. One watch: a single `pass_due_spare`, due folders first,
/// then spare listings. Several watches on one source share the second's calls: each
/// lists its due folders, and the spare budget goes to one watch per second in turn (the
/// last one, so the others' due folders come before its spare listings).
fn passes(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    watches: &[Watch],
    now: i64,
    allowed: u64,
    spare: u64,
) -> Vec<PassReport> {
    let n = watches.len();
    let receiver = usize::try_from(now).unwrap_or(0) % n;
    let mut left = allowed;
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let w = (receiver + i) % n;
        if left == 0 {
            break;
        }
        let spare = if w == receiver { spare } else { 0 };
        let r = rt
            .block_on(engine.pass_due_spare(&watches[w], left, spare))
            .expect("scheduled pass");
        left = left.saturating_sub(r.folders_listed);
        out.push(r);
    }
    out
}
