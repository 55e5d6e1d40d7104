//! Adaptive scheduling under a call budget: when each folder is listed next.
//!
//! Every folder has its own poll interval and next-due time, kept in the store
//! ([`FolderSchedule`]) so a restart resumes where it stopped:
//! - a folder found **unchanged** when due has its interval doubled, up to the watch's
//!   ceiling ([`Schedule::max_interval`]);
//! - a folder found **changed** drops back to the base interval; one that changes
//!   repeatedly (an airing show, a category where new titles land) holds the base
//!   interval for four times its gap between changes, so a daily show is polled at the
//!   base until past its next episode instead of growing away from it (a quick second
//!   change, like subtitles after an episode, never shortens a hold);
//! - a folder whose own entry moved in its parent's listing (mtime or size), a folder
//!   just created, and a folder a push hint names are **due at once** (a hint also asks
//!   the source to bypass its cache, [`ListOptions::force_refresh`](crate::ListOptions));
//! - a folder first recorded by a baseline starts at the ceiling, its first due time
//!   spread out ([`Schedule::recorded`]), so a fresh index does not come due all at
//!   once.
//!
//! Due folders are listed oldest due first ([`Engine::pass_due`](crate::Engine::pass_due)),
//! at most a given number per call, which a [`CallBudget`] hands out. Since a listed
//! folder is due again only after its interval, each folder is in the due queue at most
//! once; a folder due at `t` is therefore listed before `t` plus the time to list every
//! folder of the watch once. No folder waits longer than its ceiling plus one pass.

use crate::clock::{Timestamp, secs};
use crate::listing::Fingerprint;
use std::time::Duration;

/// A watch's scheduling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Schedule {
    /// The interval of a folder that just changed. Default 10 minutes.
    pub base_interval: Duration,
    /// The ceiling an unchanged folder's interval grows to; it bounds the worst-case
    /// detection delay (plus one pass under a backlog). Default 24 hours.
    pub max_interval: Duration,
    /// How long a changed folder must stay unchanged before its changes are committed
    /// and scanned (uploads in progress). Default 0: scan at once.
    pub settle: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            base_interval: Duration::from_secs(600),
            max_interval: Duration::from_secs(24 * 3600),
            settle: Duration::ZERO,
        }
    }
}

impl Schedule {
    /// The default schedule with another base interval.
    pub fn with_base_interval(mut self, d: Duration) -> Self {
        self.base_interval = d;
        self
    }

    /// The default schedule with another ceiling.
    pub fn with_max_interval(mut self, d: Duration) -> Self {
        self.max_interval = d;
        self
    }

    /// With a settle time.
    pub fn with_settle(mut self, d: Duration) -> Self {
        self.settle = d;
        self
    }

    /// The base interval, at least one second (a zero interval would make a folder
    /// due forever).
    pub fn base(&self) -> Duration {
        Duration::from_secs(self.base_interval.as_secs().max(1))
    }

    /// The ceiling, never below the base.
    pub fn ceiling(&self) -> Duration {
        Duration::from_secs(self.max_interval.as_secs()).max(self.base())
    }

    fn clamp(&self, d: Duration) -> Duration {
        d.clamp(self.base(), self.ceiling())
    }

    /// A folder's current interval; an unknown one (zero, from a migrated store) counts
    /// as the ceiling.
    pub fn current(&self, s: &FolderSchedule) -> Duration {
        if s.interval.is_zero() {
            self.ceiling()
        } else {
            self.clamp(s.interval)
        }
    }

    /// The schedule of the `ordinal`-th folder (from 0) recorded by a baseline: at the
    /// ceiling, first due [`BASELINE_SPREAD`] apart in recording order, wrapping within
    /// one ceiling. A fresh index of 20,000 folders thus comes due over about a day, at
    /// most one folder every few seconds, instead of all at once; and due times that
    /// grow in recording order keep the store's due index cheap to fill.
    pub fn recorded(&self, ordinal: u64, now: Timestamp) -> FolderSchedule {
        let ceiling = self.ceiling().as_secs().max(1);
        let offset = ordinal.wrapping_mul(BASELINE_SPREAD.as_secs()) % ceiling + 1;
        FolderSchedule {
            interval: self.ceiling(),
            next_due: now.plus(Duration::from_secs(offset)),
            last_change: None,
            hold_until: None,
            force_refresh: false,
            settling: None,
        }
    }

    /// The schedule of a folder just created: base interval, due after one base
    /// interval.
    pub fn changed(&self, now: Timestamp) -> FolderSchedule {
        FolderSchedule {
            interval: self.base(),
            next_due: now.plus(self.base()),
            last_change: Some(now),
            hold_until: None,
            force_refresh: false,
            settling: None,
        }
    }

    /// The schedule of a folder found changed, given its schedule before: as
    /// [`changed`](Self::changed), and when it had changed before, within two ceilings,
    /// it holds the base interval for four times that gap: it is likely to change again
    /// on the same rhythm. Four, not two: arrivals are irregular, and a hold costs only
    /// the few folders that change repeatedly. A running hold is never shortened.
    pub fn changed_again(&self, previous: &FolderSchedule, now: Timestamp) -> FolderSchedule {
        let mut s = self.changed(now);
        s.hold_until = previous.hold_until.filter(|h| *h > now);
        if let Some(last) = previous.last_change {
            let gap = now.since(last);
            if !gap.is_zero() && gap <= self.ceiling().saturating_mul(2) {
                let until = now.plus(gap.saturating_mul(4));
                s.hold_until = Some(s.hold_until.map_or(until, |h| h.max(until)));
            }
        }
        s
    }

    /// The schedule of a folder found unchanged when due: interval doubled up to the
    /// ceiling, due after the new interval, a pending hint cleared.
    pub fn unchanged(&self, s: &FolderSchedule, now: Timestamp) -> FolderSchedule {
        let interval = match s.hold_until {
            Some(until) if now < until => self.base(),
            _ => self.clamp(self.current(s).saturating_mul(2)),
        };
        FolderSchedule {
            interval,
            next_due: now.plus(interval),
            last_change: s.last_change,
            hold_until: s.hold_until,
            force_refresh: false,
            // The listing equals the stored one again: whatever was settling is moot.
            settling: None,
        }
    }

    /// The schedule of a folder whose listing failed: due again after its current
    /// interval (not grown, hint kept), so a folder that keeps failing never holds the
    /// head of the queue.
    pub fn failed(&self, s: &FolderSchedule, now: Timestamp) -> FolderSchedule {
        FolderSchedule {
            interval: self.current(s),
            next_due: now.plus(self.base().min(self.current(s))),
            ..*s
        }
    }
}

/// How far apart the first due times of a baseline's folders are (see
/// [`Schedule::recorded`]): 4 s, so about 21,600 folders per day.
pub const BASELINE_SPREAD: Duration = Duration::from_secs(4);

/// A changed listing waiting for the settle time: its fingerprint and since when it
/// has looked like that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settling {
    /// Fingerprint of the newest listing seen.
    pub fingerprint: Fingerprint,
    /// When that listing was first seen.
    pub since: Timestamp,
}

/// One folder's schedule, as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderSchedule {
    /// The current poll interval. Zero means unknown (a store migrated from before
    /// scheduling) and counts as the ceiling.
    pub interval: Duration,
    /// When the folder is due to be listed.
    pub next_due: Timestamp,
    /// When a listing last differed from the stored one; `None` when never seen.
    pub last_change: Option<Timestamp>,
    /// A folder that changes repeatedly keeps the base interval until then.
    pub hold_until: Option<Timestamp>,
    /// A push hint asked for this folder: list it with `force_refresh`.
    pub force_refresh: bool,
    /// A change held back by the settle time.
    pub settling: Option<Settling>,
}

impl FolderSchedule {
    /// This schedule made due by `now` at the latest, with `force_refresh` added when
    /// `force` is set. An earlier due time is kept, so a promotion never pushes a
    /// folder back in the queue.
    pub fn promoted(mut self, now: Timestamp, force: bool) -> Self {
        self.next_due = self.next_due.min(now);
        self.force_refresh |= force;
        self
    }
}

/// Counts for `status`: how the schedule of one watch looks now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleSummary {
    /// Folders with a schedule.
    pub folders: u64,
    /// Folders due now or overdue.
    pub due_now: u64,
    /// Folders due within the window asked for (the due ones included).
    pub due_within: u64,
    /// The longest current interval (unknown intervals are left out).
    pub longest_interval: Duration,
    /// The earliest due time.
    pub next_due: Option<Timestamp>,
    /// Folders waiting for a forced re-list (push hints).
    pub forced: u64,
    /// Folders holding a change back for the settle time.
    pub settling: u64,
}

/// A token bucket of listing calls over virtual or real time: `calls` per `per`, with
/// at most one window's worth saved up.
///
/// The engine never lists more folders in a scheduled pass than it is given, so
/// handing out calls from one bucket bounds the calls of every pass together. (In
/// production the source's rate limit layer paces the calls as well.)
#[derive(Debug, Clone)]
pub struct CallBudget {
    calls: u64,
    per_secs: u64,
    /// Tokens times `per_secs`, so refills stay whole numbers.
    scaled: u64,
    last: Option<Timestamp>,
}

impl CallBudget {
    /// `calls` listings per `per` (at least one second), starting full.
    pub fn new(calls: u64, per: Duration) -> Self {
        let per_secs = per.as_secs().max(1);
        CallBudget {
            calls,
            per_secs,
            scaled: calls.saturating_mul(per_secs),
            last: None,
        }
    }

    /// The calls that may be made at `now`.
    pub fn available(&mut self, now: Timestamp) -> u64 {
        if let Some(last) = self.last {
            let elapsed = u64::try_from(now.as_secs().saturating_sub(last.as_secs())).unwrap_or(0);
            let cap = self.calls.saturating_mul(self.per_secs);
            self.scaled = self
                .scaled
                .saturating_add(elapsed.saturating_mul(self.calls))
                .min(cap);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        self.scaled / self.per_secs
    }

    /// Records `n` calls made (more than available empties the bucket).
    pub fn spend(&mut self, n: u64) {
        self.scaled = self.scaled.saturating_sub(n.saturating_mul(self.per_secs));
    }
}

/// Seconds of a duration for storage.
pub(crate) fn duration_secs(d: Duration) -> i64 {
    secs(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_double_to_the_ceiling_and_reset_on_change() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(60))
            .with_max_interval(Duration::from_secs(300));
        let t = Timestamp::from_secs(1000);
        let mut f = s.changed(t);
        assert_eq!(f.interval, Duration::from_secs(60));
        let mut seen = Vec::new();
        for _ in 0..5 {
            f = s.unchanged(&f, t);
            seen.push(f.interval.as_secs());
        }
        assert_eq!(seen, [120, 240, 300, 300, 300]);
        assert_eq!(f.next_due, Timestamp::from_secs(1300));
        assert_eq!(s.changed(t).interval.as_secs(), 60);
        let unknown = FolderSchedule {
            interval: Duration::ZERO,
            ..f
        };
        assert_eq!(s.current(&unknown).as_secs(), 300);
    }

    #[test]
    fn a_folder_that_changes_repeatedly_holds_the_base_for_four_times_its_gap() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(60))
            .with_max_interval(Duration::from_secs(3600));
        let t = Timestamp::from_secs(10_000);
        let first = s.changed(t);
        let again = s.changed_again(&first, t.plus(Duration::from_secs(1000)));
        assert_eq!(again.hold_until, Some(Timestamp::from_secs(15_000)));
        // A quick third change does not shorten the hold.
        let quick = s.changed_again(&again, Timestamp::from_secs(11_010));
        assert_eq!(quick.hold_until, Some(Timestamp::from_secs(15_000)));
        let held = s.unchanged(&quick, Timestamp::from_secs(14_000));
        assert_eq!(held.interval.as_secs(), 60, "still within the hold");
        let grown = s.unchanged(&held, Timestamp::from_secs(15_000));
        assert_eq!(grown.interval.as_secs(), 120, "grows once the hold is over");
        // A gap longer than two ceilings is no rhythm.
        let late = s.changed_again(&first, t.plus(Duration::from_secs(7201)));
        assert_eq!(late.hold_until, None);
    }

    #[test]
    fn recorded_folders_spread_within_one_ceiling() {
        let s = Schedule::default().with_max_interval(Duration::from_secs(1000));
        let t = Timestamp::from_secs(0);
        let dues: Vec<i64> = (0..200)
            .map(|i| s.recorded(i, t).next_due.as_secs())
            .collect();
        assert!(dues.iter().all(|d| (1..=1000).contains(d)));
        assert!(dues.iter().filter(|d| **d <= 500).count() > 50);
        assert!(dues.iter().filter(|d| **d > 500).count() > 50);
    }

    #[test]
    fn the_budget_refills_and_never_saves_more_than_a_window() {
        let mut b = CallBudget::new(2, Duration::from_secs(4));
        let t = Timestamp::from_secs(0);
        assert_eq!(b.available(t), 2);
        b.spend(2);
        assert_eq!(b.available(t), 0);
        assert_eq!(b.available(t.plus(Duration::from_secs(1))), 0);
        assert_eq!(b.available(t.plus(Duration::from_secs(2))), 1);
        assert_eq!(b.available(t.plus(Duration::from_secs(100))), 2);
    }
}
