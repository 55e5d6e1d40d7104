//! Counters the service keeps: what `/metrics` shows and the heartbeat line reports.

use pps_core::PassReport;
use pps_core::engine::{ConfirmReport, DeliveryReport};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Counters the service keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// (source, outcome) -> listings.
    pub(crate) listings: BTreeMap<(String, String), u64>,
    /// change kind -> count.
    pub(crate) changes: BTreeMap<String, u64>,
    /// (target, outcome) -> scan requests.
    pub(crate) scans: BTreeMap<(String, String), u64>,
    /// watch -> (sum of seconds, passes).
    pub(crate) passes: BTreeMap<String, (f64, u64)>,
    /// origin -> hints accepted.
    pub(crate) hints: BTreeMap<String, u64>,
    /// (target, outcome) -> confirmations ended or remedied (`indexed`, `removed`,
    /// `stuck`, `remedied`, `lookup_failed`).
    pub(crate) confirms: BTreeMap<(String, String), u64>,
    /// (notifier, outcome) -> messages (`sent`, `failed`, `parked`).
    pub(crate) notifications: BTreeMap<(String, String), u64>,
}

impl Metrics {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a pass of a watch on `source`.
    pub fn pass(&self, source: &str, watch: &str, r: &PassReport) {
        self.with(|c| {
            let failed = r.errors.len() as u64;
            *c.listings
                .entry((source.to_owned(), "ok".into()))
                .or_default() += r.folders_listed.saturating_sub(failed);
            *c.listings
                .entry((source.to_owned(), "error".into()))
                .or_default() += failed;
            for ch in &r.changes {
                let kind = format!(
                    "{}_{}",
                    if ch.is_dir { "folder" } else { "file" },
                    ch.update
                );
                *c.changes.entry(kind).or_default() += 1;
            }
            let p = c.passes.entry(watch.to_owned()).or_default();
            p.0 += r.elapsed.as_secs_f64();
            p.1 += 1;
        });
    }

    /// Records a delivery round of `target`.
    pub fn delivery(&self, target: &str, r: &DeliveryReport) {
        self.with(|c| {
            *c.scans
                .entry((target.to_owned(), "sent".into()))
                .or_default() += r.sent;
            *c.scans
                .entry((target.to_owned(), "parked".into()))
                .or_default() += r.parked;
            if r.temporary_failure.is_some() {
                *c.scans
                    .entry((target.to_owned(), "failed".into()))
                    .or_default() += 1;
            }
        });
    }

    /// Records a confirmation round of `target`.
    pub fn confirm(&self, target: &str, r: &ConfirmReport) {
        self.with(|c| {
            for (outcome, n) in [
                ("indexed", r.indexed),
                ("removed", r.removed),
                ("stuck", r.stuck),
                ("remedied", r.remedied),
                ("lookup_failed", u64::from(r.failure.is_some())),
            ] {
                if n > 0 {
                    *c.confirms
                        .entry((target.to_owned(), outcome.into()))
                        .or_default() += n;
                }
            }
        });
    }

    /// Records a notifier round.
    pub fn notified(&self, notifier: &str, r: &crate::notify::RoundReport) {
        self.with(|c| {
            let mut add = |o: &str| {
                *c.notifications
                    .entry((notifier.to_owned(), o.into()))
                    .or_default() += 1;
            };
            if r.delivered.is_some() {
                add("sent");
            }
            if r.failed.is_some() {
                add("failed");
                if r.parked {
                    add("parked");
                }
            }
        });
    }

    /// Listings so far per source (every outcome), and changes found so far: what the
    /// service's once-a-minute heartbeat reports the growth of.
    pub fn totals(&self) -> (BTreeMap<String, u64>, u64) {
        self.with(|c| {
            let mut per: BTreeMap<String, u64> = BTreeMap::new();
            for ((source, _), n) in &c.listings {
                *per.entry(source.clone()).or_default() += n;
            }
            (per, c.changes.values().sum())
        })
    }

    /// Records accepted hints.
    pub fn hints(&self, origin: &str, n: u64) {
        self.with(|c| *c.hints.entry(origin.to_owned()).or_default() += n);
    }
}
