//! The state of a store: folders and schedules per watch, the outbox per target.

use crate::app::App;
use pps_core::{Error, ErrorKind, Result};
use std::path::Path;
use std::time::Duration;

/// What `pps status` reports: the store, each watch's folders and schedule, each
/// target's outbox with the scans that failed or were parked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// The store file.
    pub store: String,
    /// Its size in bytes (the WAL included).
    pub store_bytes: u64,
    /// Per cloud source: its budget and what was spent of it.
    pub sources: Vec<SourceStatus>,
    /// Per watch.
    pub watches: Vec<WatchStatus>,
    /// Per target.
    pub targets: Vec<TargetStatus>,
    /// Per notifier: its last delivery and error, parked or not.
    pub notifiers: Vec<NotifierStatus>,
    /// `--watch` mode: every pass lists every folder, so no per-folder schedule or
    /// call budget applies (the schedule figures are then not shown).
    pub full_passes: bool,
}

/// One notifier in [`StatusReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotifierStatus {
    /// Its name.
    pub notifier: String,
    /// `webhook`, `telegram`, `discord` or `apprise`.
    pub kind: &'static str,
    /// Messages delivered.
    pub sent: u64,
    /// When the last message was delivered (Unix seconds).
    pub last_sent: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Failed deliveries in a row.
    pub failures: u32,
    /// Why it stopped until retried (`pps notify retry`).
    pub parked: Option<String>,
}

/// One cloud source in [`StatusReport`]: the calls actually made (every listing of every
/// pps process of this store: due, spare, `walk`, `ls`, the UI's browser) beside the
/// budget.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    /// The source's name.
    pub source: String,
    /// Its rate, in calls per second.
    pub calls_per_second: f64,
    /// What the rate allows a day.
    pub budget_per_day: u64,
    /// The ceilings set (`None`: none).
    pub max_calls_per_minute: Option<u64>,
    /// See [`max_calls_per_minute`](Self::max_calls_per_minute).
    pub max_calls_per_hour: Option<u64>,
    /// See [`max_calls_per_minute`](Self::max_calls_per_minute).
    pub max_calls_per_day: Option<u64>,
    /// Calls made in the last hour (whole minutes).
    pub calls_last_hour: u64,
    /// Calls made in the last 24 hours (whole minutes).
    pub calls_last_day: u64,
    /// Calls per hour over the last 48 hours, oldest first, the current hour last.
    pub calls_by_hour: Vec<u64>,
    /// Its health as the running service last found it (`None`: no `pps run` has
    /// checked it yet).
    pub health: Option<pps_core::store::SourceHealth>,
    /// The time of this report, Unix seconds (to read `health`'s times against).
    pub now: i64,
}

/// The calls made to `source` in the last hour and the last 24 hours, in whole minutes
/// (the store counts per minute: the current one and the 59, or 1,439, before it).
pub fn calls_made(
    store: &dyn pps_core::MtimeStore,
    source: &str,
    now: pps_core::Timestamp,
) -> Result<(u64, u64)> {
    let hour = store.calls_since(source, now.minus(Duration::from_secs(3600 - 60)))?;
    let day = store.calls_since(source, now.minus(Duration::from_secs(86_400 - 60)))?;
    Ok((hour, day))
}

/// Hours of [`SourceStatus::calls_by_hour`].
pub const CHART_HOURS: usize = 48;

/// What the current schedule implies for a watch, in [`ScheduleStatus`]: the longest
/// a change waits before a pass finds it (then delivery sends it at once).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DelayStatus {
    /// A new title created directly in the root, or a change inside one of its direct
    /// children where the source moves the child's mtime (115 does): the root's
    /// interval plus one pass.
    pub new_title_s: u64,
    /// A change in the quietest folder (no hint): its interval plus the time to list
    /// what is due now at the source's rate.
    pub quietest_s: u64,
}

/// One watch in [`StatusReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchStatus {
    /// `source:path`.
    pub watch: String,
    /// The source's name.
    pub source: String,
    /// The watched root.
    pub path: String,
    /// Folders with stored state.
    pub folders: u64,
    /// Whether a baseline was recorded.
    pub baseline: bool,
    /// The schedule now.
    pub schedule: ScheduleStatus,
}

/// A watch's schedule in [`WatchStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleStatus {
    /// Folders due now or overdue.
    pub due_now: u64,
    /// Folders due within the next hour (the due ones included).
    pub due_next_hour: u64,
    /// The longest current interval, in seconds.
    pub longest_interval_s: u64,
    /// Seconds until the next folder is due (negative: overdue).
    pub next_due_in_s: Option<i64>,
    /// Folders waiting for a forced re-list (push hints).
    pub forced: u64,
    /// Folders holding a change back for the settle time.
    pub settling: u64,
    /// Folders per interval: up to 15 minutes, an hour, 6 hours, a day, longer.
    pub bands: IntervalBands,
    /// Listings a day the schedule is on course to spend (due listings; spare ones
    /// come on top, up to the budget).
    pub calls_per_day: u64,
    /// What the source's rate allows a day (`None` for a local folder), and its daily
    /// ceiling when one is set.
    pub budget_per_day: Option<u64>,
    /// The source's `max_calls_per_day`.
    pub max_calls_per_day: Option<u64>,
    /// The longest waits the schedule implies.
    pub delay: DelayStatus,
}

/// Folders per interval band in [`ScheduleStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct IntervalBands {
    /// Intervals up to 15 minutes.
    pub up_to_15m: u64,
    /// Over 15 minutes, up to an hour.
    pub up_to_1h: u64,
    /// Over an hour, up to 6 hours.
    pub up_to_6h: u64,
    /// Over 6 hours, up to a day.
    pub up_to_1d: u64,
    /// Longer than a day.
    pub longer: u64,
}

/// One target in [`StatusReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetStatus {
    /// The target's name.
    pub target: String,
    /// Scans waiting for delivery.
    pub pending: u64,
    /// Scans parked (never retried until `pps retry`).
    pub parked: u64,
    /// Pending scans that failed at least once (the first 20).
    pub failing_scans: Vec<ScanStatus>,
    /// Parked scans with their reasons (the first 20).
    pub parked_scans: Vec<ScanStatus>,
    /// Scans accepted by the server and not yet found in its library.
    pub confirming: u64,
    /// Scans the server did not index by the deadline (retried by `pps retry`).
    pub stuck: u64,
    /// Stuck scans with their reasons (the first 20).
    pub stuck_scans: Vec<StuckStatus>,
    /// Seconds from a change being found to its item being in the library, over the
    /// last day: `(median, worst, how many)`; `None` when nothing was confirmed.
    pub indexed_last_day: Option<IndexedTimes>,
}

/// The time from change to library of one target, over the last day.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexedTimes {
    /// The median, in seconds.
    pub median_s: u64,
    /// The worst, in seconds.
    pub worst_s: u64,
    /// Items confirmed.
    pub count: u64,
}

/// One stuck scan in [`TargetStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct StuckStatus {
    /// The source path.
    pub path: String,
    /// The path the server was asked about.
    pub target_path: String,
    /// `created`, `modified` or `deleted`.
    pub update: pps_core::Update,
    /// What was tried and what is still wrong.
    pub reason: String,
    /// When the scan was accepted (Unix seconds).
    pub sent_at: i64,
}

/// The median and the worst of ascending `secs` (`(0, 0)` for none).
pub fn quantiles(secs: &[u64]) -> (u64, u64) {
    match secs {
        [] => (0, 0),
        _ => (secs[(secs.len() - 1) / 2], secs[secs.len() - 1]),
    }
}

/// One queued scan in [`TargetStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScanStatus {
    /// The source path.
    pub path: String,
    /// `created`, `modified` or `deleted`.
    pub update: pps_core::Update,
    /// The last error, or why it was parked.
    pub reason: Option<String>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Seconds until the next attempt (pending scans; negative: due).
    pub next_try_in_s: Option<i64>,
}

/// `pps status` as data: the store, folders per watch, the outbox per target with failed
/// and parked scans and their reasons.
pub fn status(app: &App) -> Result<StatusReport> {
    StatusSource::of(app).status()
}

/// What `status` reads, detached from the [`App`] (which holds the store's lock and
/// lives in one place): the web UI keeps one to build the report on each page.
#[derive(Debug, Clone)]
pub struct StatusSource {
    engine: pps_core::Engine,
    store_path: std::path::PathBuf,
    watches: Vec<(crate::config::WatchConfig, pps_core::Watch)>,
    targets: Vec<String>,
    notifiers: Vec<(String, &'static str)>,
    /// Per source: its shared call budget (`None`: a local folder) and calls per
    /// second.
    budgets: std::collections::BTreeMap<String, (Option<pps_core::CallLimits>, f64)>,
    full_passes: bool,
}

impl StatusSource {
    /// The status source of `app`.
    pub fn of(app: &App) -> Self {
        StatusSource {
            engine: app.engine.clone(),
            store_path: app.config.store.clone(),
            watches: app.watches.clone(),
            targets: app.targets.keys().cloned().collect(),
            notifiers: app
                .config
                .notifiers
                .iter()
                .map(|(n, c)| (n.clone(), c.kind.name()))
                .collect(),
            budgets: app
                .config
                .sources
                .keys()
                .map(|s| (s.clone(), (app.call_limits(s), app.calls_per_second(s))))
                .collect(),
            full_passes: app.full_passes,
        }
    }

    /// The report now.
    pub fn status(&self) -> Result<StatusReport> {
        let store = self.engine.store();
        let stats = store.stats()?;
        let now = self.engine.clock().now();
        let mut sources = Vec::new();
        for (name, (limits, rate)) in &self.budgets {
            let Some(l) = limits else { continue };
            let (hour, day) = calls_made(store.as_ref(), name, now)?;
            sources.push(SourceStatus {
                source: name.clone(),
                calls_per_second: *rate,
                budget_per_day: (rate * 86_400.0).round() as u64,
                max_calls_per_minute: l.per_minute,
                max_calls_per_hour: l.per_hour,
                max_calls_per_day: l.per_day,
                calls_last_hour: hour,
                calls_last_day: day,
                calls_by_hour: store.calls_by_hour(name, now, CHART_HOURS)?,
                health: store.source_health(name)?,
                now: now.as_secs(),
            });
        }
        let mut watches = Vec::new();
        for (wc, w) in &self.watches {
            let folders = stats
                .scopes
                .iter()
                .find(|(_, s, r, _)| *s == wc.source && *r == wc.path)
                .map_or(0, |s| s.3);
            let sched = self.engine.schedule_summary(w, Duration::from_secs(3600))?;
            let (limits, rate) = self.budgets.get(&wc.source).copied().unwrap_or((None, 0.0));
            // A pass plans at most PASS_SECONDS of the rate; a local folder's is instant.
            let pass = if limits.is_some() {
                pps_core::engine::PASS_SECONDS as u64
            } else {
                0
            };
            let backlog = if rate > 0.0 {
                (sched.due_now as f64 / rate).ceil() as u64
            } else {
                0
            };
            let delay = DelayStatus {
                new_title_s: wc.interval.as_secs() + pass,
                quietest_s: sched.longest_interval.as_secs().max(wc.interval.as_secs())
                    + backlog
                    + pass,
            };
            watches.push(WatchStatus {
                watch: wc.label(),
                source: wc.source.clone(),
                path: wc.path.clone(),
                folders,
                baseline: folders > 0,
                schedule: ScheduleStatus {
                    due_now: sched.due_now,
                    due_next_hour: sched.due_within,
                    longest_interval_s: sched.longest_interval.as_secs(),
                    next_due_in_s: sched.next_due.map(|d| d.as_secs() - now.as_secs()),
                    forced: sched.forced,
                    settling: sched.settling,
                    bands: IntervalBands {
                        up_to_15m: sched.bands[0],
                        up_to_1h: sched.bands[1],
                        up_to_6h: sched.bands[2],
                        up_to_1d: sched.bands[3],
                        longer: sched.bands[4],
                    },
                    calls_per_day: sched.calls_per_day.round() as u64,
                    budget_per_day: limits.map(|_| (rate * 86_400.0).round() as u64),
                    max_calls_per_day: limits.and_then(|l| l.per_day),
                    delay,
                },
            });
        }
        let scan = |q: pps_core::store::QueuedScan| ScanStatus {
            path: q.change.path,
            update: q.change.update,
            reason: q.last_error,
            attempts: q.attempts,
            next_try_in_s: q.next_try.map(|t| t.as_secs() - now.as_secs()),
        };
        let mut targets = Vec::new();
        for name in &self.targets {
            let (pending, parked) = stats
                .outbox
                .iter()
                .find(|(t, _, _)| t == name)
                .map_or((0, 0), |o| (o.1, o.2));
            let (confirming, stuck) = stats
                .confirms
                .iter()
                .find(|(t, _, _)| t == name)
                .map_or((0, 0), |o| (o.1, o.2));
            let times = store.indexed_times(name, now.minus(Duration::from_secs(86_400)))?;
            let indexed_last_day = (!times.is_empty()).then(|| {
                let (median_s, worst_s) = quantiles(&times);
                IndexedTimes {
                    median_s,
                    worst_s,
                    count: times.len() as u64,
                }
            });
            targets.push(TargetStatus {
                target: name.clone(),
                pending,
                parked,
                confirming,
                stuck,
                stuck_scans: store
                    .stuck(name)?
                    .into_iter()
                    .take(20)
                    .map(|c| StuckStatus {
                        path: c.change.path,
                        target_path: c.path,
                        update: c.change.update,
                        reason: c.stuck.unwrap_or_default(),
                        sent_at: c.sent_at.as_secs(),
                    })
                    .collect(),
                indexed_last_day,
                failing_scans: store.failing(name, 20)?.into_iter().map(scan).collect(),
                parked_scans: store
                    .parked(name)?
                    .into_iter()
                    .take(20)
                    .map(|mut q| {
                        q.next_try = None;
                        scan(q)
                    })
                    .collect(),
            });
        }
        // The WAL holds recent commits until a checkpoint: part of what the store takes.
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let store_bytes = pps_core::sqlite::store_files(&self.store_path)
            .iter()
            .take(2)
            .map(|p| size(p))
            .sum();
        let mut notifiers = Vec::new();
        for (name, kind) in &self.notifiers {
            let st = store.notifier(name)?.unwrap_or_default();
            notifiers.push(NotifierStatus {
                notifier: name.clone(),
                kind,
                sent: st.sent,
                last_sent: st.last_sent.map(|t| t.as_secs()),
                last_error: st.last_error,
                failures: st.failures,
                parked: st.parked,
            });
        }
        Ok(StatusReport {
            store: self.store_path.display().to_string(),
            store_bytes,
            sources,
            watches,
            targets,
            notifiers,
            full_passes: self.full_passes,
        })
    }
}

impl StatusReport {
    /// The report as one JSON object, as `pps status --json` prints it.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))
    }
}
