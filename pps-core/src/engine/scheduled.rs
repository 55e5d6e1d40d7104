//! The service's loop for one watch: scheduled passes within its source's budget
//! ([`Engine::run_scheduled`], [`PassBudget`]). `pps run`, `Scanner.serve()` and any Rust
//! program embedding pps run this loop; the service only wires it to its tasks.

use super::{Engine, PassReport, Watch};
use crate::clock::Timestamp;
use crate::error::Error;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How many seconds of its source's rate one scheduled pass may plan. Short, because a
/// pass delivers what it found only when it ends, and a folder listed in it is listed
/// again only in a later pass: with passes of a minute (as before), a folder just seen
/// changing could not be looked at again, nor its change delivered, for a minute under
/// a saturated budget. Five seconds keeps both within seconds and still lets a pass fill
/// its source's concurrency.
pub const PASS_SECONDS: f64 = 5.0;

/// How a source's spare budget (what due folders leave of its rate) is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparePolicy {
    /// No spare listings (a local folder: listing it costs nothing worth saving, and
    /// re-listing it without pause would only keep its disk busy).
    Off,
    /// Spare listings up to the rate.
    Rate,
    /// Spare listings while the calls of the last 24 hours stay an hour of due
    /// listings under this ceiling (`max_calls_per_day`; the shared budget holds every
    /// call to it).
    Daily(u64),
}

/// What one source may spend on scheduled passes: its rate as tokens (at most
/// [`PASS_SECONDS`] of them saved), shared by the loops of all its watches. A loop
/// reserves what it plans before its pass and gives back what the pass did not list,
/// so two watches of one source never plan the same calls.
///
/// This plans; it does not pace. The source's rate limit layer and, across processes,
/// the store's shared budget ([`crate::budget`]) pace every call.
#[derive(Debug)]
pub struct PassBudget {
    source: String,
    rate: f64,
    spare: SparePolicy,
    state: Mutex<Tokens>,
    /// Per watch (by label), the listings a day its schedule is on course to spend.
    courses: Mutex<HashMap<String, f64>>,
}

#[derive(Debug)]
struct Tokens {
    tokens: f64,
    at: Instant,
}

impl PassBudget {
    /// The budget of `source` at `calls_per_second`, starting with one pass's worth.
    pub fn new(source: impl Into<String>, calls_per_second: f64, spare: SparePolicy) -> Self {
        let rate = if calls_per_second.is_finite() && calls_per_second > 0.0 {
            calls_per_second
        } else {
            1.0
        };
        PassBudget {
            source: source.into(),
            rate,
            spare,
            state: Mutex::new(Tokens {
                tokens: rate * PASS_SECONDS,
                at: Instant::now(),
            }),
            courses: Mutex::new(HashMap::new()),
        }
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The rate, in calls per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The most listings one pass plans: [`PASS_SECONDS`] of the rate, at least one.
    pub fn per_pass(&self) -> u64 {
        (self.rate * PASS_SECONDS).floor().max(1.0) as u64
    }

    fn refill(&self) -> std::sync::MutexGuard<'_, Tokens> {
        let mut t = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let cap = self.per_pass() as f64;
        t.tokens = (t.tokens + now.duration_since(t.at).as_secs_f64() * self.rate).min(cap);
        t.at = now;
        t
    }

    /// Reserves up to `want` listings for a pass now (whole tokens there are).
    pub fn reserve(&self, want: u64) -> u64 {
        let mut t = self.refill();
        let n = t.tokens.floor().max(0.0).min(want as f64);
        t.tokens -= n;
        n as u64
    }

    /// Gives back what a pass reserved and did not list.
    pub fn give_back(&self, n: u64) {
        let mut t = self.refill();
        t.tokens = (t.tokens + n as f64).min(self.per_pass() as f64);
    }

    /// How long until one token is there.
    pub fn until_next(&self) -> Duration {
        let t = self.refill();
        if t.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - t.tokens) / self.rate)
        }
    }

    fn set_course(&self, watch: &str, calls_per_day: f64) {
        self.courses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(watch.to_owned(), calls_per_day);
    }

    /// Spare listings a pass of `engine` may make at `now`, at most `room`.
    fn spare(&self, engine: &Engine, room: u64, now: Timestamp) -> u64 {
        match self.spare {
            SparePolicy::Off => 0,
            SparePolicy::Rate => room,
            SparePolicy::Daily(cap) => {
                let since = now.minus(Duration::from_secs(86_400));
                let spent = match engine.store().calls_since(&self.source, since) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(source = %self.source, error = %e, "cannot read the calls of the last day; no spare listings for now");
                        return 0;
                    }
                };
                let course: f64 = self
                    .courses
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .sum();
                // An hour of the due listings' course stays free for them.
                let reserve = (course / 24.0).ceil() as u64;
                cap.saturating_sub(spent.saturating_add(reserve)).min(room)
            }
        }
    }
}

impl Engine {
    /// Runs `watch`'s scheduled passes for ever (drop the future to stop; every commit
    /// is atomic): each pass lists the due folders best first within what `budget`
    /// gives ([`PASS_SECONDS`] of its rate at most) and spends what due folders leave on
    /// spare listings; `on_pass` sees each report (wake delivery there, count metrics).
    /// Between passes it sleeps until a folder comes due or a token comes back,
    /// whichever is later, at most a minute, or until `wake` is notified (a push hint,
    /// "scan now").
    ///
    /// A failed pass (an outage, a store error) is logged and tried again on schedule.
    pub async fn run_scheduled(
        &self,
        watch: &Watch,
        budget: &PassBudget,
        wake: &tokio::sync::Notify,
        on_pass: impl FnMut(&PassReport),
    ) {
        self.run_scheduled_observed(watch, budget, wake, on_pass, |_| {})
            .await;
    }

    /// [`run_scheduled`](Self::run_scheduled), with `on_error` seeing every pass that
    /// failed as a whole (an outage, an unreachable source): what a health tracker
    /// needs to tell "down" from "up".
    pub async fn run_scheduled_observed(
        &self,
        watch: &Watch,
        budget: &PassBudget,
        wake: &tokio::sync::Notify,
        mut on_pass: impl FnMut(&PassReport),
        mut on_error: impl FnMut(&Error),
    ) {
        let label = format!("{}:{}", watch.source, watch.root);
        loop {
            let summary = self.schedule_summary(watch, Duration::ZERO);
            // A pass's worth of tokens (what it does not list goes back at its end):
            // its due folders first, then the folders its listings find created or
            // moved, listed in the same pass; spare listings only from what the due
            // folders leave. A baseline takes none: it is a full pass, which ignores
            // the pass budget (the source's rate limit paces it), so it never waits
            // behind another watch of the source. A loop with nothing to list takes
            // none either, so an idle watch never holds the tokens a busy one needs.
            let (baseline, due_now) = match &summary {
                Ok(s) => (s.folders == 0, s.due_now),
                Err(_) => (false, 1),
            };
            let wants = due_now > 0 || budget.spare != SparePolicy::Off;
            let due = if !baseline && wants {
                budget.reserve(budget.per_pass())
            } else {
                0
            };
            let spare = if baseline {
                0
            } else {
                budget.spare(self, due.saturating_sub(due_now), self.clock.now())
            };
            let planned = if baseline { 1 } else { due };
            let mut spared = 0;
            if planned > 0 {
                match self.pass_due_spare(watch, planned, spare).await {
                    Ok(r) => {
                        budget.give_back(due.saturating_sub(r.folders_listed));
                        spared = r.folders_spare;
                        on_pass(&r);
                    }
                    Err(e) => {
                        // What was reserved may have been spent in part; keep it spent.
                        tracing::error!(watch = %label, error = %e, "pass failed");
                        on_error(&e);
                    }
                }
            }
            let wait = match self.schedule_summary(watch, Duration::ZERO) {
                Ok(s) => {
                    budget.set_course(&label, s.calls_per_day);
                    if spared > 0 || s.due_now > 0 || s.folders == 0 {
                        // More to list: as soon as the rate gives a call.
                        budget.until_next()
                    } else {
                        s.next_due
                            .map_or(Duration::from_secs(60), |d| d.since(self.clock.now()))
                            .max(budget.until_next())
                    }
                }
                Err(e) => {
                    tracing::warn!(watch = %label, error = %e, "cannot read the schedule");
                    Duration::from_secs(60)
                }
            };
            // At least a moment, so a loop with nothing to list never spins; at most a
            // minute, so a changed clock or a refilled budget is noticed.
            let wait = wait.clamp(Duration::from_millis(50), Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
            }
        }
    }
}
