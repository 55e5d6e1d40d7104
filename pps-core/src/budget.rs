//! One call budget per cloud account, shared by every process and every operation.
//!
//! 115 counts calls per account, not per process: `pps run`, a `pps walk` beside it,
//! `pps ls`, `pps scan` and the web UI's browser all spend the same allowance. So the
//! budget lives in the store, which every pps process of a config opens: a token bucket
//! per source (the rate, [`CallLimits::calls_per_second`], with a small burst), calls
//! counted per minute for the ceilings per minute, hour and day, and a pause every
//! process honours after the cloud said calls come too fast.
//!
//! A source asks before each call through a [`CallGate`]; [`StoreGate`] is the gate
//! over a store. The decision itself is one pure function, [`decide`], which both
//! stores call inside their own transaction, so the SQLite and in-memory stores cannot
//! disagree on what the budget allows.
//!
//! The ceilings count in whole minutes, with the classic sliding-window estimate: a
//! window of `W` minutes holds the calls of its last `W - 1` whole minutes and the
//! current one, plus the share of the minute before them that the window still
//! covers. Exact at minute boundaries, and within one minute's calls of the truth in
//! between.

use crate::store::MtimeStore;
use async_trait::async_trait;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a source may spend: its rate, a burst, and optional ceilings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CallLimits {
    /// Calls a second, over every process of the account.
    pub calls_per_second: f64,
    /// Calls that may go out back to back after a quiet spell (at least 1).
    pub burst: u32,
    /// At most this many calls in any minute.
    pub per_minute: Option<u64>,
    /// At most this many calls in any hour.
    pub per_hour: Option<u64>,
    /// At most this many calls in any 24 hours (`max_calls_per_day`).
    pub per_day: Option<u64>,
    /// How long every process stops calling after the cloud answered "too fast"
    /// (zero: no pause, for a cloud that throttles single calls at random).
    pub throttle_pause: Duration,
}

impl CallLimits {
    /// `calls_per_second` with a burst of one, no ceilings, and a one-minute pause
    /// after throttling.
    pub fn new(calls_per_second: f64) -> Self {
        CallLimits {
            calls_per_second,
            burst: 1,
            per_minute: None,
            per_hour: None,
            per_day: None,
            throttle_pause: MIN_THROTTLE_PAUSE,
        }
    }

    /// With a burst.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// With ceilings per minute, hour and day (`None`: no ceiling).
    pub fn with_ceilings(
        mut self,
        per_minute: Option<u64>,
        per_hour: Option<u64>,
        per_day: Option<u64>,
    ) -> Self {
        self.per_minute = per_minute;
        self.per_hour = per_hour;
        self.per_day = per_day;
        self
    }

    /// With a pause after throttling: at least [`MIN_THROTTLE_PAUSE`], or zero for
    /// none (the rate limit layer still lowers the rate after a throttled answer).
    pub fn with_throttle_pause(mut self, pause: Duration) -> Self {
        self.throttle_pause = if pause.is_zero() {
            Duration::ZERO
        } else {
            pause.max(MIN_THROTTLE_PAUSE)
        };
        self
    }

    fn rate(&self) -> f64 {
        if self.calls_per_second.is_finite() && self.calls_per_second > 0.0 {
            self.calls_per_second
        } else {
            // A rate that is not a positive number (a config check refuses it) must
            // never divide by zero here: one call a day.
            1.0 / 86_400.0
        }
    }
}

/// The shortest pause after the cloud said calls come too fast: the field's practice
/// for 115, which keeps throttling an account that comes back within seconds.
pub const MIN_THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// How long the store keeps the calls per minute: two days and an hour, for the
/// daily ceiling and the Overview's chart of the last two days.
pub const CALLS_KEPT: Duration = Duration::from_secs(49 * 3600);

/// Why a call must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The rate (the token bucket is empty).
    Rate,
    /// The ceiling per minute.
    Minute,
    /// The ceiling per hour.
    Hour,
    /// The ceiling per day.
    Day,
    /// The pause after the cloud throttled a call.
    Paused,
}

impl fmt::Display for WaitFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitFor::Rate => "the rate",
            WaitFor::Minute => "the ceiling per minute",
            WaitFor::Hour => "the ceiling per hour",
            WaitFor::Day => "the ceiling per day",
            WaitFor::Paused => "the pause after throttling",
        })
    }
}

/// The answer to "may I call now?".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grant {
    /// Yes: the call is counted.
    Now,
    /// Not yet: ask again after this long (nothing was counted).
    Wait(Duration, WaitFor),
}

/// A source's bucket as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens in the bucket at `at`.
    pub tokens: f64,
    /// When `tokens` was last brought up to date (Unix seconds).
    pub at: f64,
    /// No call before this (Unix seconds; 0 when never paused).
    pub paused_until: f64,
}

impl Bucket {
    /// The bucket of a source never seen: full.
    pub fn full(limits: &CallLimits, now: f64) -> Self {
        Bucket {
            tokens: f64::from(limits.burst.max(1)),
            at: now,
            paused_until: 0.0,
        }
    }
}

/// A source's calls in the windows of its ceilings, read from the counts per minute:
/// for a window of `W` minutes, `whole` is the calls of the current minute and the
/// `W - 1` before it, `edge` the calls of the minute before those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Windows {
    /// The minute window: (whole, edge).
    pub minute: (u64, u64),
    /// The hour window.
    pub hour: (u64, u64),
    /// The day window.
    pub day: (u64, u64),
}

/// The minutes of the three windows, for the stores' queries.
pub const WINDOW_MINUTES: [i64; 3] = [1, 60, 1440];

/// The minute holding `now` (Unix seconds).
pub fn minute_of(now: f64) -> i64 {
    (now / 60.0).floor() as i64
}

/// Decides one call at `now` (Unix seconds): the answer and the bucket to store (the
/// same bucket when the call must wait). The one rule both stores apply.
pub fn decide(limits: &CallLimits, bucket: Bucket, windows: Windows, now: f64) -> (Grant, Bucket) {
    if bucket.paused_until > now {
        return (
            Grant::Wait(secs(bucket.paused_until - now), WaitFor::Paused),
            bucket,
        );
    }
    let rate = limits.rate();
    let cap = f64::from(limits.burst.max(1));
    // A clock that went back refills nothing; one that jumped ahead fills the bucket.
    let tokens = (bucket.tokens + (now - bucket.at).max(0.0) * rate).min(cap);
    if tokens < 1.0 {
        return (
            Grant::Wait(secs((1.0 - tokens) / rate), WaitFor::Rate),
            bucket,
        );
    }
    // Into the current minute: how much of the edge minute a window still covers.
    let into = (now - minute_of(now) as f64 * 60.0) / 60.0;
    let next_minute = secs(60.0 - into * 60.0);
    let ceilings = [
        (limits.per_minute, windows.minute, WaitFor::Minute),
        (limits.per_hour, windows.hour, WaitFor::Hour),
        (limits.per_day, windows.day, WaitFor::Day),
    ];
    for (ceiling, (whole, edge), why) in ceilings {
        let Some(ceiling) = ceiling else { continue };
        let used = whole as f64 + edge as f64 * (1.0 - into);
        if used + 1.0 > ceiling as f64 {
            // The window slides on; ask again when the next minute starts (or sooner,
            // as the edge minute's share shrinks, for the minute window).
            let wait = if why == WaitFor::Minute {
                next_minute.min(Duration::from_secs(5))
            } else {
                next_minute
            };
            return (
                Grant::Wait(wait.max(Duration::from_millis(50)), why),
                bucket,
            );
        }
    }
    (
        Grant::Now,
        Bucket {
            tokens: tokens - 1.0,
            at: now,
            paused_until: bucket.paused_until,
        },
    )
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(86_400))
}

/// Asked before every call a source makes to its cloud: the place a budget shared
/// beyond this process is enforced. The rate limit layer
/// ([`RateLimit`](crate::layers::RateLimit)) asks it after its own pacing, for every
/// attempt (retries cost calls too).
#[async_trait]
pub trait CallGate: Send + Sync + fmt::Debug {
    /// Waits until one call may go out, and counts it.
    async fn acquire(&self);

    /// The cloud answered that calls come too fast: every process of the account
    /// pauses.
    fn throttled(&self);
}

/// Wall-clock time in Unix seconds, with a fraction: what the budget is kept in, since
/// it is shared between processes.
pub type WallClock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The system's wall clock.
pub fn system_wall_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    })
}

/// A [`CallGate`] over a store's shared budget for one source.
///
/// `force` (`pps walk --force`) counts every call but never waits: spending beyond the
/// budget is the user's explicit choice, and the calls still show in the figures.
/// A store that cannot be asked (locked for long, read-only, full) never stops
/// listing: the call goes out, paced by this process's own rate limit, and a warning
/// says the budget is not shared for now.
pub struct StoreGate {
    store: Arc<dyn MtimeStore>,
    source: String,
    limits: CallLimits,
    clock: WallClock,
    force: bool,
    last_warning: Mutex<Option<tokio::time::Instant>>,
}

impl fmt::Debug for StoreGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreGate")
            .field("source", &self.source)
            .field("limits", &self.limits)
            .field("force", &self.force)
            .finish_non_exhaustive()
    }
}

impl StoreGate {
    /// The gate of `source` in `store`, under `limits`, on the system's clock.
    pub fn new(store: Arc<dyn MtimeStore>, source: impl Into<String>, limits: CallLimits) -> Self {
        StoreGate {
            store,
            source: source.into(),
            limits,
            clock: system_wall_clock(),
            force: false,
            last_warning: Mutex::new(None),
        }
    }

    /// On another wall clock (tests: one that follows tokio's paused time).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// Counts calls without waiting for the budget.
    pub fn forced(mut self) -> Self {
        self.force = true;
        self
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    fn warn(&self, what: &str, error: &crate::Error) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        if last.is_none_or(|l| now.duration_since(l) >= Duration::from_secs(60)) {
            *last = Some(now);
            tracing::warn!(source = %self.source, error = %error, "{what}");
        }
    }
}

#[async_trait]
impl CallGate for StoreGate {
    async fn acquire(&self) {
        if self.force {
            let at = crate::Timestamp::from_secs((self.clock)().floor() as i64);
            if let Err(e) = self.store.record_calls(&self.source, at, 1) {
                self.warn("cannot count a call in the store", &e);
            }
            return;
        }
        let mut said: Option<WaitFor> = None;
        loop {
            match self
                .store
                .take_call(&self.source, (self.clock)(), &self.limits)
            {
                Ok(Grant::Now) => return,
                Ok(Grant::Wait(wait, why)) => {
                    if why != WaitFor::Rate && said != Some(why) {
                        // The rate's waits are the normal pacing; the others are news.
                        tracing::info!(source = %self.source, waiting_s = wait.as_secs(), "calls wait for {why}");
                        said = Some(why);
                    }
                    // The wait is exact (until the bucket holds a token), so it is
                    // slept exactly: with a burst of 1 any lateness is rate lost.
                    crate::clock::sleep_precisely(wait.min(Duration::from_secs(60))).await;
                }
                Err(e) => {
                    self.warn(
                        "cannot ask the store for the shared call budget; this call goes out on this process's own rate limit",
                        &e,
                    );
                    return;
                }
            }
        }
    }

    fn throttled(&self) {
        if self.limits.throttle_pause.is_zero() {
            return;
        }
        let until = (self.clock)() + self.limits.throttle_pause.as_secs_f64();
        match self.store.pause_calls(&self.source, until) {
            Ok(()) => {
                tracing::warn!(source = %self.source, pause_s = self.limits.throttle_pause.as_secs(), "the cloud said calls come too fast: every pps process of this source pauses")
            }
            Err(e) => self.warn("cannot record the pause after throttling in the store", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 1_800_000_000.0; // a whole minute

    #[test]
    fn the_bucket_paces_at_the_rate_with_its_burst() {
        let l = CallLimits::new(2.0).with_burst(2);
        let w = Windows::default();
        let b = Bucket::full(&l, T);
        let (g, b) = decide(&l, b, w, T);
        assert_eq!(g, Grant::Now);
        let (g, b) = decide(&l, b, w, T);
        assert_eq!(g, Grant::Now, "the burst");
        let (g, b2) = decide(&l, b, w, T);
        assert_eq!(g, Grant::Wait(Duration::from_millis(500), WaitFor::Rate));
        assert_eq!(b2, b, "a wait changes nothing");
        let (g, _) = decide(&l, b, w, T + 0.5);
        assert_eq!(g, Grant::Now);
    }

    #[test]
    fn ceilings_count_the_window_and_a_share_of_the_minute_before() {
        let l =
            CallLimits::new(100.0)
                .with_burst(100)
                .with_ceilings(Some(10), Some(100), Some(1000));
        let b = Bucket::full(&l, T);
        let at = |minute: (u64, u64)| Windows {
            minute,
            ..Windows::default()
        };
        assert_eq!(decide(&l, b, at((9, 0)), T).0, Grant::Now);
        assert!(matches!(
            decide(&l, b, at((10, 0)), T).0,
            Grant::Wait(_, WaitFor::Minute)
        ));
        // Half a minute on, half of the minute before still counts: 4 + 10 / 2 = 9.
        assert_eq!(decide(&l, b, at((4, 10)), T + 30.0).0, Grant::Now);
        assert!(matches!(
            decide(&l, b, at((5, 10)), T + 30.0).0,
            Grant::Wait(_, WaitFor::Minute)
        ));
        let day = Windows {
            day: (1000, 0),
            ..Windows::default()
        };
        match decide(&l, b, day, T + 15.0).0 {
            Grant::Wait(d, WaitFor::Day) => assert_eq!(d, Duration::from_secs(45)),
            g => panic!("{g:?}"),
        }
    }

    #[test]
    fn a_pause_holds_every_call_and_a_bad_rate_never_divides_by_zero() {
        let l = CallLimits::new(1.0);
        let mut b = Bucket::full(&l, T);
        b.paused_until = T + 60.0;
        assert_eq!(
            decide(&l, b, Windows::default(), T + 1.0).0,
            Grant::Wait(Duration::from_secs(59), WaitFor::Paused)
        );
        assert_eq!(decide(&l, b, Windows::default(), T + 60.0).0, Grant::Now);
        let zero = CallLimits::new(0.0);
        let mut empty = Bucket::full(&zero, T);
        empty.tokens = 0.0;
        assert!(matches!(
            decide(&zero, empty, Windows::default(), T).0,
            Grant::Wait(_, WaitFor::Rate)
        ));
        assert_eq!(
            CallLimits::new(1.0)
                .with_throttle_pause(Duration::from_secs(5))
                .throttle_pause,
            MIN_THROTTLE_PAUSE,
            "never under a minute"
        );
        assert_eq!(
            CallLimits::new(1.0)
                .with_throttle_pause(Duration::ZERO)
                .throttle_pause,
            Duration::ZERO,
            "or off, said so"
        );
    }
}
