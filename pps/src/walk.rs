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
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to walk.
#[derive(Debug, Clone)]
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
    /// Print a progress line on stderr.
    pub progress: bool,
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
    /// Time the listings spent waiting for the source's rate limiter, summed.
    pub limiter_wait: Duration,
    /// True when Ctrl-C stopped the walk early.
    pub interrupted: bool,
    /// The options used.
    pub rate: Option<f64>,
    /// Base interval for the estimate.
    pub interval: Duration,
    /// Ceiling for the estimate.
    pub max_interval: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `1h 02m`, `3m 20s`, `12.5s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 86_400.0 {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else {
        format!(
            "{}d {:02}h",
            (s / 86_400.0) as u64,
            ((s % 86_400.0) / 3600.0) as u64
        )
    }
}

impl WalkReport {
    fn pass_time(&self, rate: f64) -> Duration {
        Duration::from_secs_f64(self.folders.max(1) as f64 / rate)
    }

    /// p50, p95 and the maximum of the listings' own latency.
    fn latency(&self) -> (Duration, Duration, Duration) {
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

    /// The report as text.
    pub fn to_text(&self) -> String {
        let (p50, p95, max) = self.latency();
        let mut o = String::new();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        o.push_str(&format!(
            "walk of {}{}\n",
            self.root,
            if self.interrupted {
                " (interrupted: figures so far)"
            } else {
                ""
            }
        ));
        o.push_str(&format!(
            "  tree:     {}, {}, {}, deepest level {}, largest folder {} ({})\n",
            crate::commands::plural(self.folders, "folder", "folders"),
            crate::commands::plural(self.files, "file", "files"),
            crate::commands::size(self.bytes),
            self.deepest,
            crate::commands::plural(self.largest.1 as u64, "entry", "entries"),
            self.largest.0
        ));
        o.push_str(&format!(
            "  calls:    {}, {}, {}, {}{}\n",
            crate::commands::plural(self.calls, "listing call", "listing calls"),
            crate::commands::plural(self.throttled, "throttled answer", "throttled answers"),
            crate::commands::plural(self.retries, "retry", "retries"),
            crate::commands::plural(self.failed.len() as u64, "failed folder", "failed folders"),
            if self.errors.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    self.errors
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
        o.push_str(&format!(
            "  speed:    {} elapsed, {:.2} calls/s; listing latency p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms{}\n",
            human(self.elapsed),
            self.calls as f64 / secs,
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0,
            if self.wire_latency.is_some() {
                format!(
                    " (each call's own time); {} waiting for the rate limit in all",
                    human(self.limiter_wait)
                )
            } else {
                String::new()
            }
        ));
        let configured = match self.rate {
            Some(r) => format!(
                "{} at the configured {r} calls/s; ",
                human(self.pass_time(r))
            ),
            None => String::new(),
        };
        o.push_str(&format!(
            "  schedule: one full pass takes {configured}{} at 0.5/s, {} at 1/s, {} at 5/s\n",
            human(self.pass_time(0.5)),
            human(self.pass_time(1.0)),
            human(self.pass_time(5.0))
        ));
        let (quiet, active) = self.calls_per_day();
        o.push_str(&format!(
            "            with interval {} and max_interval {}: {:.0} calls/day when every folder is quiet, {:.0} when every folder is active{}\n",
            human(self.interval),
            human(self.max_interval),
            quiet,
            active,
            match self.rate {
                Some(r) => format!("; the configured rate allows {:.0}/day", r * 86_400.0),
                None => String::new(),
            }
        ));
        for (p, e) in &self.failed {
            o.push_str(&format!("  failed:   {p}: {e}\n"));
        }
        o
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
        ..WalkReport::default()
    };
    let mut queue: VecDeque<(String, usize)> = VecDeque::from([(root.to_owned(), 0)]);
    let mut in_flight = FuturesUnordered::new();
    let mut stop = std::pin::pin!(stop);
    let tty = opts.progress && std::io::stderr().is_terminal();
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
        if tty && last_print.elapsed() >= Duration::from_millis(100) {
            last_print = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2Kwalk: {} folders, {} files, {:.1} listings/s, {} waiting",
                r.folders,
                r.files,
                r.folders as f64 / secs,
                queue.len() + in_flight.len()
            );
            let _ = err.flush();
        }
    }
    if tty {
        eprintln!();
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
