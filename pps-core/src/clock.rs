//! Time for the scheduler: a [`Timestamp`] in whole seconds and a [`Clock`] that gives
//! the current one.
//!
//! The scheduler never reads the wall clock itself: the engine asks its clock, so
//! tests and the simulation drive virtual time with a [`ManualClock`] and never sleep.
//!
//! The pacers of cloud calls wait with [`sleep_precisely`], not with tokio's timer alone.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, in whole seconds since the Unix epoch.
///
/// Seconds are enough: the shortest interval pps schedules is a poll interval of
/// seconds to minutes, and a store row stays one small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From seconds since the Unix epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn as_secs(self) -> i64 {
        self.0
    }

    /// This time plus `d` (whole seconds), saturating instead of overflowing.
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(secs(d)))
    }

    /// This time minus `d` (whole seconds), saturating instead of overflowing.
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(secs(d)))
    }

    /// The time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_secs(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// Whole seconds of `d`, saturating at `i64::MAX`.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Where the engine gets the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A clock before 1970 is a misconfigured machine; 0 keeps the arithmetic sane.
        Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        )
    }
}

/// A clock that moves only when told: for tests and simulations. Clones share the same
/// time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    /// Sets the time (it may go backwards; the scheduler tolerates that).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(secs(d), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// A clock that follows tokio's time from a given start: under
/// `#[tokio::test(start_paused = true)]` it moves exactly as far as the runtime's
/// sleeps do, so the service loop ([`crate::engine::Engine::run_scheduled`]) is tested
/// on virtual time without a second clock to keep in step.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Timestamp,
    at: tokio::time::Instant,
}

impl TokioClock {
    /// A clock showing `start` now, moving with tokio's time.
    pub fn new(start: Timestamp) -> Self {
        TokioClock {
            start,
            at: tokio::time::Instant::now(),
        }
    }

    /// The time in Unix seconds with its fraction: a wall clock for the shared call
    /// budget ([`crate::budget::WallClock`]).
    pub fn wall(&self) -> f64 {
        self.start.0 as f64 + self.at.elapsed().as_secs_f64()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.start.plus(self.at.elapsed())
    }
}

/// How long before a deadline [`sleep_precisely`] stops trusting tokio's timer: more
/// than the timer's lateness (measured 1.1 ms at the median and 1.3 ms at p99 for a
/// 20 ms sleep on a 2-core Linux box: `benches` `pacing`).
const TIMER_SLACK: Duration = Duration::from_micros(1500);

/// Waits `wait`, waking within microseconds of the deadline instead of tokio's timer's
/// millisecond or so late.
///
/// tokio's timer ticks in whole milliseconds and wakes up to about 1.3 ms after the
/// deadline. A pacer that counts a call from the moment it goes out (a token bucket
/// whose burst is 1, where a late call cannot borrow the time it lost) loses that delay
/// on every call: 5% of the rate at 50 calls a second. So the timer sleeps until
/// `TIMER_SLACK` (1.5 ms) before the deadline, and the rest is spent yielding to other tasks
/// until the deadline passes (a fraction of a millisecond per paced call).
///
/// Never returns before the deadline. Under tokio's paused clock (tests), whose time
/// only the timer advances, the rest is left to the timer as well.
pub async fn sleep_precisely(wait: Duration) {
    let start = tokio::time::Instant::now();
    let Some(deadline) = start.checked_add(wait) else {
        // Beyond any clock: only the timer can wait that long.
        return tokio::time::sleep(wait).await;
    };
    if wait > TIMER_SLACK {
        tokio::time::sleep_until(deadline - TIMER_SLACK).await;
    }
    let mut last = tokio::time::Instant::now();
    while last < deadline {
        tokio::task::yield_now().await;
        let now = tokio::time::Instant::now();
        if now == last {
            // A clock that did not move across a yield is tokio's paused one.
            tokio::time::sleep_until(deadline).await;
            return;
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative() {
        let t = Timestamp::from_secs(100);
        assert_eq!(t.plus(Duration::from_secs(5)).as_secs(), 105);
        assert_eq!(t.minus(Duration::from_secs(5)).as_secs(), 95);
        assert_eq!(t.since(Timestamp::from_secs(40)), Duration::from_secs(60));
        assert_eq!(t.since(Timestamp::from_secs(400)), Duration::ZERO);
        assert_eq!(
            Timestamp::from_secs(i64::MAX - 1)
                .plus(Duration::from_secs(10))
                .as_secs(),
            i64::MAX
        );
        let c = ManualClock::new(t);
        let c2 = c.clone();
        c.advance(Duration::from_secs(7));
        assert_eq!(c2.now().as_secs(), 107);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_precisely_waits_the_whole_wait_on_a_paused_clock() {
        // On the paused clock only the timer moves time: the yielding part must not
        // spin forever, and the wait must end at the deadline, never before.
        for wait in [
            Duration::ZERO,
            Duration::from_micros(300),
            TIMER_SLACK,
            Duration::from_millis(20),
            Duration::from_secs(90),
        ] {
            let start = tokio::time::Instant::now();
            sleep_precisely(wait).await;
            // The paused timer advances to its next whole-millisecond tick.
            let slept = start.elapsed();
            assert!(
                slept >= wait && slept <= wait + Duration::from_millis(1),
                "{slept:?} for {wait:?}"
            );
        }
    }

    #[tokio::test]
    async fn sleep_precisely_never_returns_early() {
        for wait in [Duration::from_micros(200), Duration::from_millis(3)] {
            let start = std::time::Instant::now();
            sleep_precisely(wait).await;
            assert!(start.elapsed() >= wait, "{:?} < {wait:?}", start.elapsed());
        }
    }
}
