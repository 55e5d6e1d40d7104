//! Time for the scheduler: a [`Timestamp`] in whole seconds and a [`Clock`] that gives
//! the current one.
//!
//! The scheduler never reads the wall clock itself: the engine asks its clock, so
//! tests and the simulation drive virtual time with a [`ManualClock`] and never sleep.

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
}
