//! Delivery: from the outbox to each target, planned, sent, settled or parked, with
//! backoff after temporary failures ([`Engine::deliver`], [`Engine::run_delivery`]).

use super::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::plan;
use crate::target::Library;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What one delivery round did for one target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Requests the target accepted.
    pub sent: u64,
    /// Those requests, as sent (mapped paths), in order.
    pub requests: Vec<crate::target::ScanRequest>,
    /// Queued scans settled by those requests.
    pub settled: u64,
    /// Queued scans parked (never retried).
    pub parked: u64,
    /// The last temporary failure, when one stopped the round.
    pub temporary_failure: Option<String>,
    /// Queued scans still waiting after the round.
    pub remaining: bool,
    /// Confirmations written for the accepted requests (checks that they were indexed).
    pub confirming: u64,
}

impl Engine {
    /// One delivery round for the target `name`: plans its queued scans and sends them.
    ///
    /// Stops at the first temporary failure (the rest waits for the next round);
    /// parks what can never succeed. Errors only when the store fails.
    pub async fn deliver(&self, name: &str) -> Result<DeliveryReport> {
        let spec = self.target(name)?;
        let mut report = DeliveryReport::default();
        let queued = self.store.pending(name, self.options.delivery_batch)?;
        if queued.is_empty() {
            return Ok(report);
        }
        let libraries: Vec<Library> = match spec.target.libraries().await {
            Ok(l) => l,
            Err(e) if e.is_temporary() => {
                // Counted against the scans that wait, as a failed send is: their last
                // error, attempts and next try are what `pps status` and the UI show
                // for a target that is down (not only "N pending").
                let msg = format!("cannot read the target's libraries: {e}");
                tracing::warn!(target = name, error = %e, "cannot read the target's libraries; will retry");
                let ids: Vec<i64> = queued.iter().map(|q| q.id).collect();
                let tried = queued.iter().map(|q| q.attempts).max().unwrap_or(0);
                let next = self.clock.now().plus(self.backoff_after(tried + 1));
                self.store.record_failure(&ids, &msg, next)?;
                report.temporary_failure = Some(msg);
                report.remaining = true;
                return Ok(report);
            }
            Err(e) => {
                // Without the library list a library root could be scanned by accident;
                // better to park with the reason than to guess.
                let ids: Vec<i64> = queued.iter().map(|q| q.id).collect();
                let reason = e.to_string();
                tracing::error!(target = name, error = %reason, scans = ids.len(), "target refuses to list its libraries; parking its scans");
                self.store.park(&ids, &reason)?;
                report.parked += ids.len() as u64;
                report.remaining = !self.store.pending(name, 1)?.is_empty();
                return Ok(report);
            }
        };
        let attempts: HashMap<i64, u32> = queued.iter().map(|q| (q.id, q.attempts)).collect();
        let by_id: HashMap<i64, &crate::store::QueuedScan> =
            queued.iter().map(|q| (q.id, q)).collect();
        let roots: Vec<String> = libraries.into_iter().flat_map(|l| l.locations).collect();
        let (planned, unplannable) = plan(&queued, spec.scans_files(), &spec.mapping, &roots);
        // One log line per round, not per scan: a mapping that covers none of a
        // season's 500 files would otherwise write 500 lines. Each scan's own reason is
        // in its history line.
        if let Some(first) = unplannable.first() {
            tracing::warn!(target = name, scans = unplannable.len(), first = %first.reason, "parking scans that cannot be planned; `pps history --event parked` lists each");
        }
        for u in &unplannable {
            self.store.park(&[u.id], &u.reason)?;
            report.parked += 1;
        }
        let batch = spec.target.capabilities().max_batch.max(1);
        for chunk in planned.chunks(batch) {
            let requests: Vec<_> = chunk.iter().map(|p| p.request.clone()).collect();
            let mut results = spec.target.scan(&requests).await;
            if results.len() != requests.len() {
                results = crate::target::all_failed(
                    requests.len(),
                    &Error::new(
                        ErrorKind::Unexpected,
                        "target answered the wrong number of results",
                    )
                    .temporary(),
                );
            }
            for (p, r) in chunk.iter().zip(results) {
                match r {
                    Ok(()) => {
                        // The checks that it was indexed are written with the scan's
                        // completion, so a crash after the 200 loses neither.
                        let confirms = self.confirms_for(spec, &p.covers, &by_id)?;
                        report.confirming += confirms.len() as u64;
                        self.store
                            .complete_confirming(&p.covers, &p.request.path, &confirms)?;
                        report.sent += 1;
                        report.requests.push(p.request.clone());
                        report.settled += p.covers.len() as u64;
                    }
                    Err(e) if e.is_temporary() => {
                        let msg = e.to_string();
                        tracing::warn!(target = name, path = %p.request.path, error = %msg, "scan failed; will retry");
                        let tried = p
                            .covers
                            .iter()
                            .filter_map(|id| attempts.get(id))
                            .max()
                            .copied()
                            .unwrap_or(0);
                        let next = self.clock.now().plus(self.backoff_after(tried + 1));
                        self.store.record_failure(&p.covers, &msg, next)?;
                        report.temporary_failure = Some(msg);
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        tracing::error!(target = name, path = %p.request.path, error = %msg, "scan refused; parked, it will not be retried");
                        self.store.park(&p.covers, &msg)?;
                        report.parked += p.covers.len() as u64;
                    }
                }
            }
            // Every answer of a call is recorded (an accepted request is never sent
            // twice for nothing), then a temporary failure ends the round.
            if report.temporary_failure.is_some() {
                break;
            }
        }
        report.remaining = !self.store.pending(name, 1)?.is_empty();
        Ok(report)
    }

    /// The delivery loop's wait after `failures` failed rounds in a row (before
    /// jitter): the minimum backoff doubled per failure, up to the maximum.
    fn backoff_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.options
            .min_backoff
            .saturating_mul(1 << doublings)
            .min(self.options.max_backoff)
    }

    /// Delivers to `name` until its outbox is empty or a temporary failure stops it.
    pub async fn deliver_all(&self, name: &str) -> Result<DeliveryReport> {
        let mut total = DeliveryReport::default();
        loop {
            let r = self.deliver(name).await?;
            total.sent += r.sent;
            total.requests.extend(r.requests);
            total.settled += r.settled;
            total.parked += r.parked;
            total.confirming += r.confirming;
            total.remaining = r.remaining;
            if r.temporary_failure.is_some() {
                total.temporary_failure = r.temporary_failure;
                return Ok(total);
            }
            if !r.remaining || (r.sent == 0 && r.parked == 0) {
                return Ok(total);
            }
        }
    }

    /// Runs delivery for one target for ever (drop the future to stop it): delivers
    /// whenever `wake` is notified (after a commit) or every `idle` interval, and backs
    /// off exponentially (with jitter) after temporary failures. Never returns early on
    /// a target failure or a temporary store failure (a full disk); only a permanent
    /// store error (a damaged file) ends it.
    pub async fn run_delivery(
        &self,
        name: &str,
        wake: Arc<tokio::sync::Notify>,
        idle: Duration,
    ) -> Result<()> {
        self.run_delivery_observed(name, wake, idle, |_| {}).await
    }

    /// [`run_delivery`](Self::run_delivery), calling `observe` with the report of
    /// every round (for metrics).
    pub async fn run_delivery_observed(
        &self,
        name: &str,
        wake: Arc<tokio::sync::Notify>,
        idle: Duration,
        observe: impl Fn(&DeliveryReport),
    ) -> Result<()> {
        let mut backoff = self.options.min_backoff;
        let mut seed = jitter_seed(name);
        loop {
            let r = match self.deliver_all(name).await {
                Ok(r) => r,
                // A store that is full or locked for a moment is no reason to stop
                // delivering for good: back off like after a target failure.
                Err(e) if e.is_temporary() => {
                    tracing::warn!(target = name, error = %e, "delivery could not use the store; will retry");
                    DeliveryReport {
                        temporary_failure: Some(e.to_string()),
                        remaining: true,
                        ..DeliveryReport::default()
                    }
                }
                Err(e) => return Err(e),
            };
            observe(&r);
            if r.temporary_failure.is_some() {
                let wait = jittered(backoff, &mut seed);
                backoff = (backoff * 2).min(self.options.max_backoff);
                tokio::time::sleep(wait).await;
            } else {
                backoff = self.options.min_backoff;
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                }
            }
        }
    }
}

fn jitter_seed(name: &str) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    xxhash_rust::xxh3::xxh3_64(name.as_bytes()) ^ t | 1
}

/// `base` scaled by a factor in [0.5, 1.0): spreads retries of many targets apart.
fn jittered(base: Duration, seed: &mut u64) -> Duration {
    // xorshift64: enough randomness for spreading retries, no dependency.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let frac = 0.5 + (*seed % 1000) as f64 / 2000.0;
    base.mul_f64(frac)
}
