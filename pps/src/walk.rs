//! `pps walk`: a read-only traversal through the same source stack as a pass (rate
//! limit and retries included), measuring the tree and what listing it costs, so a user
//! can pick `max_queries_per_second`, `concurrency` and intervals from figures instead of
//! guesses. Nothing is stored and nothing is scanned.

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pps_clouddrive::CloudDrive;
use pps_core::{DirectorySource, ListOptions};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to walk.
#[derive(Clone)]
pub struct WalkOptions {
    /// Listings in flight at once.
    pub concurrency: usize,
    /// Do not list below this depth (the root is depth 0).
    pub max_depth: Option<usize>,
    /// The source's configured rate, when it has one (for the schedule estimates).
    pub rate: Option<f64>,
    /// Base interval for the calls-per-day estimate.
    pub interval: Duration,
    /// Ceiling for the calls-per-day estimate.
    pub max_interval: Duration,
    /// Called about every 100 ms while the walk goes on, and once at its end.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for WalkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalkOptions")
            .field("concurrency", &self.concurrency)
            .field("max_depth", &self.max_depth)
            .field("rate", &self.rate)
            .field("interval", &self.interval)
            .field("max_interval", &self.max_interval)
            .finish_non_exhaustive()
    }
}

/// A progress callback of a walk.
pub type ProgressFn = Arc<dyn Fn(&WalkProgress) + Send + Sync>;

/// How far a walk got, for progress lines.
#[derive(Debug, Clone, Copy)]
pub struct WalkProgress {
    /// Folders listed.
    pub folders: u64,
    /// Files seen.
    pub files: u64,
    /// Folders queued or in flight.
    pub waiting: usize,
    /// Time since the walk began.
    pub elapsed: Duration,
    /// True for the last call, when the walk is over.
    pub done: bool,
}

/// What a walk found.
#[derive(Debug, Default, Clone)]
pub struct WalkReport {
    /// The walked root, `SOURCE:PATH`.
    pub root: String,
    /// Folders listed successfully.
    pub folders: u64,
    /// Files seen.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Deepest folder level reached (the root is 0).
    pub deepest: usize,
    /// The folder with the most entries, and how many.
    pub largest: (String, usize),
    /// Listing calls sent, retries included (the source's own count when it keeps one).
    pub calls: u64,
    /// Answers that said the cloud throttled us.
    pub throttled: u64,
    /// Attempts repeated by the retry layer.
    pub retries: u64,
    /// Failed folders by error kind.
    pub errors: BTreeMap<String, u64>,
    /// The folders that failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency of each successful listing of a source without its own latency record
    /// (a local folder), as the walk saw it.
    pub latencies: Vec<Duration>,
    /// The listings' own time on the wire, from a cd2 source's record: never the wait
    /// for its rate limiter.
    pub wire_latency: Option<pps_clouddrive::Latency>,
    /// Time the listings spent waiting for the source's rate limiter, summed over every
    /// listing in flight (so it can exceed `elapsed` when `concurrency` is above 1).
    pub limiter_wait: Duration,
    /// Listings in flight at once.
    pub concurrency: usize,
    /// True when Ctrl-C stopped the walk early.
    pub interrupted: bool,
    /// The options used.
    pub rate: Option<f64>,
    /// Base interval for the estimate.
    pub interval: Duration,
    /// Ceiling for the estimate.
    pub max_interval: Duration,
    /// How the walk's calls were budgeted: shared with the other pps processes of a
    /// store, or `--force`d beyond it (`None`: a local folder, no budget).
    pub budget: Option<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl WalkReport {
    /// How long one full pass over the walked tree takes at `rate` calls a second.
    pub fn pass_time(&self, rate: f64) -> Duration {
        Duration::from_secs_f64(self.folders.max(1) as f64 / rate)
    }

    /// p50, p95 and the maximum of the listings' own latency.
    pub fn latency(&self) -> (Duration, Duration, Duration) {
        if let Some(l) = &self.wire_latency {
            return (l.percentile(0.5), l.percentile(0.95), l.max());
        }
        let mut v = self.latencies.clone();
        v.sort();
        (
            percentile(&v, 0.5),
            percentile(&v, 0.95),
            v.last().copied().unwrap_or_default(),
        )
    }

    /// Calls per day of the adaptive schedule on this tree: every folder quiet (at the
    /// ceiling) and every folder active (at the base interval).
    pub fn calls_per_day(&self) -> (f64, f64) {
        let f = self.folders as f64;
        let per = |d: Duration| f * 86_400.0 / d.as_secs_f64().max(1.0);
        (per(self.max_interval), per(self.interval))
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let (p50, p95, max) = self.latency();
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        let (quiet, active) = self.calls_per_day();
        let pass = |r: f64| (self.pass_time(r).as_secs_f64() * 10.0).round() / 10.0;
        json!({
            "root": self.root,
            "interrupted": self.interrupted,
            "folders": self.folders,
            "files": self.files,
            "bytes": self.bytes,
            "deepest_level": self.deepest,
            "largest_folder": {"path": self.largest.0, "entries": self.largest.1},
            "calls": self.calls,
            "throttled": self.throttled,
            "retries": self.retries,
            "errors": self.errors,
            "failed_folders": self.failed.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "calls_per_second": self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9),
            "latency_ms": {"p50": ms(p50), "p95": ms(p95), "max": ms(max)},
            "rate_limit_wait_s": (self.limiter_wait.as_secs_f64() * 10.0).round() / 10.0,
            "concurrency": self.concurrency,
            "budget": self.budget,
            "full_pass_s": {
                "configured": self.rate.map(pass),
                "at_0.5": pass(0.5), "at_1": pass(1.0), "at_5": pass(5.0),
            },
            "calls_per_day": {
                "interval_s": self.interval.as_secs(), "max_interval_s": self.max_interval.as_secs(),
                "all_quiet": quiet.round(), "all_active": active.round(),
                "budget_at_configured_rate": self.rate.map(|r| (r * 86_400.0).round()),
            },
        })
    }
}

/// Walks `root` read-only until done or until `stop` resolves (the report then holds
/// what was found so far).
pub async fn walk(
    label: &str,
    source: Arc<dyn DirectorySource>,
    clouddrive: Option<&CloudDrive>,
    root: &str,
    opts: &WalkOptions,
    stop: impl Future<Output = ()>,
) -> WalkReport {
    let started = Instant::now();
    let before = clouddrive.map(CloudDrive::stats);
    let latency_before = clouddrive.map(CloudDrive::listing_latency);
    let mut r = WalkReport {
        root: label.to_owned(),
        rate: opts.rate,
        interval: opts.interval,
        max_interval: opts.max_interval,
        concurrency: opts.concurrency.max(1),
        ..WalkReport::default()
    };
    let mut queue: VecDeque<(String, usize)> = VecDeque::from([(root.to_owned(), 0)]);
    let mut in_flight = FuturesUnordered::new();
    let mut stop = std::pin::pin!(stop);
    let mut last_print = Instant::now();
    let mut local_calls = 0u64;
    loop {
        while in_flight.len() < opts.concurrency.max(1) {
            let Some((path, depth)) = queue.pop_front() else {
                break;
            };
            let src = source.clone();
            local_calls += 1;
            in_flight.push(async move {
                let t = Instant::now();
                let res = src.list(&path, ListOptions::default()).await;
                (path, depth, t.elapsed(), res)
            });
        }
        let next = tokio::select! {
            biased;
            _ = &mut stop => { r.interrupted = true; break; }
            n = in_flight.next() => n,
        };
        let Some((path, depth, took, res)) = next else {
            break;
        };
        match res {
            Ok(entries) => {
                r.folders += 1;
                r.latencies.push(took);
                r.deepest = r.deepest.max(depth);
                if entries.len() > r.largest.1 || r.largest.0.is_empty() {
                    r.largest = (path.clone(), entries.len());
                }
                for e in entries {
                    if e.is_dir() {
                        if opts.max_depth.is_none_or(|m| depth < m) {
                            queue.push_back((pps_core::path::join(&path, &e.name), depth + 1));
                        }
                    } else {
                        r.files += 1;
                        r.bytes += e.size;
                    }
                }
            }
            Err(e) => {
                *r.errors.entry(e.kind().to_string()).or_default() += 1;
                r.failed.push((path, e.to_string()));
            }
        }
        if let Some(p) = &opts.progress
            && last_print.elapsed() >= Duration::from_millis(100)
        {
            last_print = Instant::now();
            p(&WalkProgress {
                folders: r.folders,
                files: r.files,
                waiting: queue.len() + in_flight.len(),
                elapsed: started.elapsed(),
                done: false,
            });
        }
    }
    if let Some(p) = &opts.progress {
        p(&WalkProgress {
            folders: r.folders,
            files: r.files,
            waiting: 0,
            elapsed: started.elapsed(),
            done: true,
        });
    }
    r.elapsed = started.elapsed();
    match (clouddrive, before) {
        (Some(cd), Some(b)) => {
            let a = cd.stats();
            r.calls = a.listings - b.listings;
            r.throttled = a.throttled - b.throttled;
            r.retries = a.retries - b.retries;
            r.limiter_wait = a.limiter_wait.saturating_sub(b.limiter_wait);
            r.wire_latency = latency_before.map(|l| cd.listing_latency().since(&l));
        }
        _ => r.calls = local_calls - in_flight.len() as u64,
    }
    r
}

/// What `pps walk` is asked.
#[derive(Debug, Clone)]
pub struct WalkArgs {
    /// `SOURCE:PATH`: a source of the config file, or `local:PATH` (relative is fine).
    pub root: String,
    /// Listings in flight at once (default: the source's `concurrency`).
    pub concurrency: Option<usize>,
    /// Override of a clouddrive2 source's `max_queries_per_second`.
    pub max_queries_per_second: Option<f64>,
    /// Do not list below this depth.
    pub max_depth: Option<usize>,
    /// Base interval for the calls-per-day estimate (`None`: the `interval` of the watch
    /// holding the root, else the `[[watch]]` default).
    pub interval: Option<Duration>,
    /// Ceiling for the calls-per-day estimate (`None`: as `interval`, from the watch).
    pub max_interval: Option<Duration>,
    /// Spend beyond the source's shared budget (its calls are still counted).
    pub force: bool,
}

/// Walks `args.root` read-only through the source stack a pass uses, until done or
/// `stop` resolves. `config` is read when it exists; `local:PATH` works without one.
pub async fn walk_root(
    config: &std::path::Path,
    args: &WalkArgs,
    progress: Option<ProgressFn>,
    stop: impl Future<Output = ()>,
) -> pps_core::Result<WalkReport> {
    use crate::config::{Config, LOCAL_CONCURRENCY, SourceConfig};
    use pps_core::{Error, ErrorKind};
    let (name, path) = args.root.split_once(':').ok_or_else(|| {
        Error::new(
            ErrorKind::ConfigInvalid,
            "write the root as SOURCE:PATH, e.g. cd2:/115/TV or local:/mnt/media",
        )
        .with("argument", args.root.clone())
    })?;
    // A local folder may be written relative, as `--watch DIR` takes it.
    let path = if name == "local" && !path.starts_with('/') {
        std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .ok_or_else(|| {
                Error::new(ErrorKind::ConfigInvalid, "the folder cannot be opened")
                    .with("argument", args.root.clone())
            })?
    } else {
        path.to_owned()
    };
    let path = pps_core::path::normalize(&path)?;
    let loaded = if config.exists() {
        Some(Config::load(config)?)
    } else {
        None
    };
    let mut settings = match loaded.as_ref().and_then(|c| c.sources.get(name)) {
        Some(s) => s.clone(),
        None if name == "local" => SourceConfig::Local {
            concurrency: LOCAL_CONCURRENCY,
        },
        None => {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "no source named `{name}` (use a source of the config file, or local:PATH)"
                ),
            )
            .with("file", config.display().to_string()));
        }
    };
    if let Some(q) = args.max_queries_per_second {
        if settings.rate().is_none() {
            tracing::warn!(
                "--max-queries-per-second applies to cloud sources only (clouddrive2, openlist, rclone); ignored"
            );
        } else if !(q > 0.0 && q <= 1000.0) {
            return Err(
                Error::new(ErrorKind::ConfigInvalid, "must be above 0 and at most 1000")
                    .with("option", "--max-queries-per-second"),
            );
        } else {
            settings.set_rate(q);
        }
    }
    let rate = settings.rate().map(|(q, _)| q);
    let (source, cd) = crate::app::source(&settings, &[])
        .map_err(|e| e.with_default("source", name.to_owned()))?;
    // 115 counts calls per account: a walk beside `pps run` draws from the budget the
    // service draws from, through the store both open, at the config's rate and
    // ceilings (a `--max-queries-per-second` above them cannot raise them).
    let mut budget = None;
    if let (Some(cd), Some(loaded)) = (&cd, &loaded)
        && let Some(limits) = loaded.sources.get(name).and_then(crate::app::call_limits)
    {
        let store = pps_core::sqlite::SqliteStore::open(&loaded.store)
            .map_err(|e| e.with_default("store", loaded.store.display().to_string()))?;
        crate::app::share_budget(cd, std::sync::Arc::new(store), name, limits, args.force);
        budget = Some(if args.force {
            tracing::warn!(source = %name, "--force: this walk does not wait for the budget it shares with `pps run` and the other pps processes of {}; its calls still count", loaded.store.display());
            format!(
                "--force: beyond the budget shared with every pps process of {} ({}/s); its calls were counted",
                loaded.store.display(),
                limits.calls_per_second
            )
        } else {
            format!(
                "shared with every pps process of {} ({}/s)",
                loaded.store.display(),
                limits.calls_per_second
            )
        });
    }
    // The estimate is for the schedule the tree would have: the deepest enabled watch
    // of this source holding the root, else a `[[watch]]` with the defaults.
    let holding = loaded.as_ref().and_then(|c| {
        c.watches
            .iter()
            .filter(|w| {
                w.enabled && w.source == name && pps_core::path::is_at_or_under(&path, &w.path)
            })
            .max_by_key(|w| w.path.len())
            .cloned()
    });
    let watch = match holding {
        Some(w) => w,
        None => crate::config::WatchConfig::new(name, &path, Vec::new())?,
    };
    let opts = WalkOptions {
        concurrency: args
            .concurrency
            .unwrap_or_else(|| settings.concurrency())
            .max(1),
        max_depth: args.max_depth,
        rate,
        interval: args.interval.unwrap_or(watch.interval),
        max_interval: args.max_interval.unwrap_or(watch.max_interval),
        progress,
    };
    let budget_note = budget;
    let label = format!("{name}:{path}");
    let clouddrive = cd.as_ref().and_then(crate::app::Remote::clouddrive);
    let mut report = walk(&label, source, clouddrive, &path, &opts, stop).await;
    report.budget = budget_note;
    Ok(report)
}
