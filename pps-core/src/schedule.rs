//! Adaptive scheduling under a call budget: when each folder is listed next.
//!
//! Every folder has its own poll interval and next-due time, kept in the store
//! ([`FolderSchedule`]) so a restart resumes where it stopped:
//! - a folder first recorded by a **baseline** starts from what its listing says: the
//!   age of its newest entry sets the first interval (a sixteenth of the age, between
//!   the base and the ceiling; a folder whose newest entry is from the last two weeks
//!   starts at most at [`Schedule::active_max_interval`]), and regular gaps between its
//!   entries' mtimes (a weekly show's episodes) give it a cadence at once. A listing
//!   without mtimes (a source that reports none) starts at the ceiling, first due times
//!   spread out ([`Schedule::recorded`]), and the spare budget reaches it earlier;
//! - a folder found **unchanged** when due has its interval doubled, up to the ceiling,
//!   or up to [`Schedule::active_max_interval`] while its last change is less than two
//!   weeks old;
//! - a folder found **changed** drops back to the base interval; one that changes
//!   repeatedly (an airing show, a category where new titles land) holds the base
//!   interval for four times its gap between changes;
//! - a folder whose changes come in bursts at regular gaps (a weekly show: an episode,
//!   its subtitles minutes later, and again a week on) has a **cadence**: around its next
//!   expected change (a tenth of the gap either side, 30 minutes to 12 hours) it is
//!   listed at the base interval, and before that it is never due later than the
//!   window's start, so it cannot drift to the ceiling between episodes;
//! - a folder whose own entry moved in its parent's listing (mtime or size), a folder
//!   just created, and a folder a push hint names are **due at once** (a hint also asks
//!   the source to bypass its cache, [`ListOptions::force_refresh`](crate::ListOptions)).
//!
//! A **watch root** is listed at the base interval whatever its age ([`Schedule::root`]):
//! new titles land there, and a change inside one of its direct children shows in its
//! listing through the child's mtime.
//!
//! When more folders are due than the budget lists, they are taken by the changes one
//! listing is expected to find ([`FolderSchedule::expected`]: the time since a folder
//! was listed over its typical gap between changes), after every folder with
//! **evidence** of a change (created, its entry moved, a push hint). So a folder just
//! seen changing is listed again before hundreds that are merely due, and a folder left
//! unlisted long enough rises until it is listed: none starves. This is the
//! square-root law's ranking (`shared/docs/scheduling.md`): listing by expected changes
//! found per call spends the budget where the rate λ is high, and each folder's own
//! interval keeps it listed at least every ceiling plus a pass.
//!
//! Budget the due folders leave unused goes to **spare listings**
//! ([`Engine::pass_due_spare`](crate::Engine::pass_due_spare)): the folders with the
//! most changes expected since they were last listed ([`FolderSchedule::expected`]: the
//! time since listed over the folder's typical gap between changes), never more than
//! the budget. A spare listing that finds nothing keeps the folder's interval.

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
    /// The longest interval of a folder that changed in the last [`ACTIVE_WINDOW`]
    /// (two weeks). Default 1 hour.
    pub active_max_interval: Duration,
    /// How long a changed folder must stay unchanged before its changes are committed
    /// and scanned (uploads in progress). Default 0: scan at once.
    pub settle: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            base_interval: Duration::from_secs(600),
            max_interval: Duration::from_secs(24 * 3600),
            active_max_interval: Duration::from_secs(3600),
            settle: Duration::ZERO,
        }
    }
}

/// A folder whose last change is younger than this is *active*: its interval stays at
/// or under [`Schedule::active_max_interval`].
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(14 * 86_400);

/// Changes less than this apart are one burst (an episode and its subtitles); the
/// cadence is measured between the starts of bursts.
pub const BURST: Duration = Duration::from_secs(3600);

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

    /// With another longest interval for active folders.
    pub fn with_active_max_interval(mut self, d: Duration) -> Self {
        self.active_max_interval = d;
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

    /// The ceiling of a folder at `now`: [`active_max_interval`](Self::active_max_interval)
    /// while its last change is within [`ACTIVE_WINDOW`], else the ceiling.
    fn ceiling_for(&self, last_change: Option<Timestamp>, now: Timestamp) -> Duration {
        let active = last_change.is_some_and(|c| now.since(c) < ACTIVE_WINDOW);
        if active {
            self.active_max_interval.clamp(self.base(), self.ceiling())
        } else {
            self.ceiling()
        }
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

    /// The schedule of the `ordinal`-th folder (from 0) recorded by a baseline whose
    /// listing tells nothing of its age (no mtimes): at the ceiling, first due
    /// [`BASELINE_SPREAD`] apart in recording order, wrapping within one ceiling. A
    /// fresh index of 20,000 such folders thus comes due over about a day instead of
    /// all at once.
    pub fn recorded(&self, ordinal: u64, now: Timestamp) -> FolderSchedule {
        let ceiling = self.ceiling().as_secs().max(1);
        let offset = ordinal.wrapping_mul(BASELINE_SPREAD.as_secs()) % ceiling + 1;
        FolderSchedule {
            interval: self.ceiling(),
            next_due: now.plus(Duration::from_secs(offset)),
            listed: Some(now),
            ..FolderSchedule::default()
        }
    }

    /// The schedule of the `ordinal`-th folder recorded by a baseline, from its entries'
    /// mtimes (`None` each where unknown): the age of the newest sets the first interval
    /// (a sixteenth of it, between the base and the ceiling, at most
    /// [`active_max_interval`](Self::active_max_interval) for an entry from the last two
    /// weeks); regular gaps between bursts of entries give a cadence. The first due
    /// time is spread within that interval by `ordinal`. Without any mtime it is
    /// [`recorded`](Self::recorded).
    pub fn first(
        &self,
        mtimes: impl IntoIterator<Item = Option<Timestamp>>,
        ordinal: u64,
        now: Timestamp,
    ) -> FolderSchedule {
        let mut times: Vec<Timestamp> = mtimes.into_iter().flatten().collect();
        let Some(newest) = times.iter().max().copied() else {
            return self.recorded(ordinal, now);
        };
        // A clock ahead of ours makes an entry look new: that is age zero, not an error.
        let newest = newest.min(now);
        let age = now.since(newest);
        let interval = self
            .clamp(age / 16)
            .min(self.ceiling_for(Some(newest), now));
        // The baseline just listed it: its first due time falls between half and one
        // interval from now, spread by `ordinal`, so a fresh index does not list every
        // folder again within minutes, nor all at once an interval later.
        let offset = spread(ordinal, interval);
        times.sort_unstable();
        let (burst, cadence) = cadence_of(&times);
        let mut s = FolderSchedule {
            interval,
            next_due: now.plus(Duration::from_secs(offset)),
            epoch: Some(newest),
            last_change: Some(newest),
            burst: burst.map(|b| b.min(now)),
            cadence,
            listed: Some(now),
            ..FolderSchedule::default()
        };
        if let Some(start) = self.window(&s, now).map(|(start, _)| start) {
            s.next_due = s.next_due.min(start.max(now));
        }
        s
    }

    /// The schedule of an empty folder a baseline found with nothing to tell its age
    /// (a watch root made for pps, with no parent listing to date it): nothing says it
    /// is idle, and listing it is one call, so it starts at the base interval and
    /// doubles from there while it stays empty ([`unchanged`](Self::unchanged)),
    /// reaching the ceiling after a few dozen listings instead of waiting one first.
    pub fn empty(&self, now: Timestamp) -> FolderSchedule {
        FolderSchedule {
            interval: self.base(),
            next_due: now.plus(self.base()),
            listed: Some(now),
            ..FolderSchedule::default()
        }
    }

    /// The schedule of a folder just created: base interval, due after one base
    /// interval.
    pub fn changed(&self, now: Timestamp) -> FolderSchedule {
        FolderSchedule {
            interval: self.base(),
            next_due: now.plus(self.base()),
            last_change: Some(now),
            burst: Some(now),
            listed: Some(now),
            seen_change: Some(now),
            epoch: Some(now),
            ..FolderSchedule::default()
        }
    }

    /// The schedule of a folder found changed, given its schedule before: as
    /// [`changed`](Self::changed), and:
    /// - when pps saw it change before, less than [`BURST`] earlier, it holds the base
    ///   interval for four times that gap: it is likely to change again on the same
    ///   rhythm. A running hold is never shortened;
    /// - a change [`BURST`] or more after the start of the last burst starts a new one,
    ///   and the gap between the two starts is the cadence (averaged with the one before
    ///   when it is within a quarter of it); a change within the burst keeps both.
    pub fn changed_again(&self, previous: &FolderSchedule, now: Timestamp) -> FolderSchedule {
        let mut s = self.changed(now);
        s.hold_until = previous.hold_until.filter(|h| *h > now);
        s.epoch = previous.epoch.or(previous.last_change).or(Some(now));
        s.changes = previous.changes.saturating_add(1);
        // Two changes pps saw, less than BURST apart: a rhythm. A baseline's mtimes are
        // no such evidence (a library copied an hour ago would hold every folder it
        // sees change at the base interval for hours).
        if let Some(last) = previous.seen_change {
            let gap = now.since(last);
            if !gap.is_zero() && gap <= BURST {
                let until = now.plus(gap.saturating_mul(4));
                s.hold_until = Some(s.hold_until.map_or(until, |h| h.max(until)));
            }
        }
        match previous.burst {
            Some(start) if now.since(start) < BURST => {
                s.burst = Some(start);
                s.cadence = previous.cadence;
            }
            Some(start) => {
                let gap = now.since(start);
                s.cadence = Some(match previous.cadence {
                    Some(c) if gap.abs_diff(c) <= c / 4 => (c * 3 + gap) / 4,
                    _ => gap,
                });
            }
            None => s.cadence = previous.cadence,
        }
        s
    }

    /// The schedule of a folder found unchanged when due: interval doubled up to its
    /// ceiling (two weeks after its last change, the watch's ceiling; before, the
    /// active one; [`BURST_INTERVAL`] while [`in a burst`](FolderSchedule::in_burst)),
    /// due after the new interval but never after the start of its cadence window;
    /// inside the window, at the base interval. A pending hint is cleared.
    pub fn unchanged(&self, s: &FolderSchedule, now: Timestamp) -> FolderSchedule {
        let grown = match s.hold_until {
            Some(until) if now < until => self.base(),
            _ => self
                .clamp(self.current(s).saturating_mul(2))
                .min(self.ceiling_for(s.last_change, now)),
        };
        let grown = if s.in_burst(now) {
            grown.min(BURST_INTERVAL.max(self.base()))
        } else {
            grown
        };
        self.next_after(s, grown, now)
    }

    /// The schedule of a folder a spare listing found unchanged: listed early, so its
    /// interval stays as it was (an early look says less than a due one), and it is
    /// due again one interval from now.
    pub fn unchanged_early(&self, s: &FolderSchedule, now: Timestamp) -> FolderSchedule {
        let kept = self.current(s).min(self.ceiling_for(s.last_change, now));
        self.next_after(s, kept, now)
    }

    fn next_after(&self, s: &FolderSchedule, interval: Duration, now: Timestamp) -> FolderSchedule {
        let mut next = FolderSchedule {
            interval,
            next_due: now.plus(interval),
            force_refresh: false,
            hinted_by: None,
            evidence: false,
            // The listing equals the stored one again: whatever was settling is moot.
            settling: None,
            listed: Some(now),
            ..*s
        };
        if let Some((start, end)) = self.window(s, now) {
            if now >= start && now <= end {
                next.interval = self.base();
                next.next_due = now.plus(self.base());
            } else if start > now {
                next.next_due = next.next_due.min(start);
            }
        }
        next
    }

    /// The window around a folder's next expected change, from its cadence: the next
    /// `burst + k × cadence` whose window has not ended, a tenth of the cadence either
    /// side (30 minutes to 12 hours). `None` without a cadence, or once the cadence is
    /// over ([`FolderSchedule::live_cadence`]: a show that ended gets no more windows).
    pub fn window(&self, s: &FolderSchedule, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let cadence = s.live_cadence(now)?;
        let burst = s.burst?;
        let tolerance =
            (cadence / 10).clamp(Duration::from_secs(1800), Duration::from_secs(12 * 3600));
        let cad = cadence.as_secs().max(1) as i64;
        // The first expected change whose window ends after now.
        let since = now.as_secs() - tolerance.as_secs() as i64 - burst.as_secs();
        let k = if since <= 0 {
            1
        } else {
            (since + cad - 1) / cad
        }
        .max(1);
        let expected = Timestamp::from_secs(burst.as_secs().saturating_add(k.saturating_mul(cad)));
        Some((expected.minus(tolerance), expected.plus(tolerance)))
    }

    /// The schedule of a watch root, whatever the rest of the schedule made of it: at
    /// the base interval, due at most one base interval after it was last listed. The
    /// root is where new titles land (a film folder created in `/115/电影`), and on
    /// 115 a change inside a direct child moves that child's mtime in the root's
    /// listing, so listing the root every interval finds both, whatever the age of its
    /// newest entry. It costs one call per interval per watch.
    pub fn root(&self, s: &FolderSchedule, now: Timestamp) -> FolderSchedule {
        let listed = s.listed.unwrap_or(now);
        FolderSchedule {
            interval: self.base(),
            next_due: s.next_due.min(listed.plus(self.base())),
            ..*s
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

/// The start of the newest burst of `times` (sorted) and, when the bursts before it
/// came at regular gaps (at least three bursts, the longest of the last gaps at most
/// one and a half times the shortest), the median gap.
fn cadence_of(times: &[Timestamp]) -> (Option<Timestamp>, Option<Duration>) {
    let mut starts: Vec<Timestamp> = Vec::new();
    let mut last: Option<Timestamp> = None;
    for t in times {
        if last.is_none_or(|l| t.since(l) >= BURST) {
            starts.push(*t);
        }
        last = Some(*t);
    }
    let burst = starts.last().copied();
    // The last few gaps: a show's rhythm now, not when it began years ago.
    let gaps: Vec<Duration> = starts
        .windows(2)
        .rev()
        .take(4)
        .map(|w| w[1].since(w[0]))
        .collect();
    if gaps.len() < 2 {
        return (burst, None);
    }
    let (min, max) = (
        gaps.iter().min().copied().unwrap_or_default(),
        gaps.iter().max().copied().unwrap_or_default(),
    );
    if min.is_zero() || max > min.mul_f64(1.5) {
        return (burst, None);
    }
    let mut sorted = gaps.clone();
    sorted.sort();
    (burst, Some(sorted[sorted.len() / 2]))
}

/// How far apart the first due times of a baseline's folders without mtimes are (see
/// [`Schedule::recorded`]): 4 s, so about 21,600 folders per day.
pub const BASELINE_SPREAD: Duration = Duration::from_secs(4);

/// Seconds from now to the first due time of the `ordinal`-th folder of a baseline
/// whose interval is `interval`: between half and one interval, at the `ordinal`-th
/// point of the golden-ratio sequence, which spreads any number of folders evenly
/// (three folders or 20,000) without knowing the count.
fn spread(ordinal: u64, interval: Duration) -> u64 {
    const PHI: f64 = 0.618_033_988_749_895;
    let frac = (ordinal as f64 * PHI).fract();
    let secs = interval.as_secs().max(1) as f64;
    ((secs / 2.0) * (1.0 + frac)).round().max(1.0) as u64
}

/// How many cadences after its last burst a cadence still holds: a weekly show that
/// missed three weeks in a row has ended (or is on a break) and gets no more windows.
pub const CADENCE_LIFE: u32 = 4;

/// The shortest typical gap between changes [`FolderSchedule::expected`] assumes for a
/// folder not in a burst.
pub const MIN_GAP: Duration = Duration::from_secs(600);

/// How long after a change pps saw a folder is *in a burst*: changes come in bursts
/// (an episode, then its subtitles; a season uploaded file by file; the next episode
/// of a show airing several a day), so right after one the next is likely soon.
pub const BURST_WINDOW: Duration = Duration::from_secs(600);

/// The typical gap between changes of a folder in a burst ([`FolderSchedule::gap`]): a
/// hundredth of [`MIN_GAP`], so when due it goes before folders that are merely due.
pub const BURST_GAP: Duration = Duration::from_secs(6);

/// The longest interval of a folder in a burst (or the base interval, when longer):
/// found unchanged it doubles from the base up to this, not beyond, for the rest of the
/// window. So its next change is found within seconds, and a burst that does not go
/// on costs about sixty listings.
pub const BURST_INTERVAL: Duration = Duration::from_secs(10);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// Who asked, while `force_refresh` is set (a push event, a webhook): the origin
    /// the history gives the changes its listing finds. `None` in stores from before.
    pub hinted_by: Option<crate::store::Origin>,
    /// A change held back by the settle time.
    pub settling: Option<Settling>,
    /// The start of the latest burst of changes (changes less than [`BURST`] apart).
    pub burst: Option<Timestamp>,
    /// The gap between bursts, when they come regularly (a weekly show: a week).
    pub cadence: Option<Duration>,
    /// When the folder was last listed; `None` when unknown (an older store).
    pub listed: Option<Timestamp>,
    /// Something says it changed: it was just created, its entry moved in its parent's
    /// listing, or a push hint named it. Such a folder goes before every folder that is
    /// merely due; cleared by its next listing.
    pub evidence: bool,
    /// When pps itself last saw its listing change (`None`: never; a baseline's dates
    /// are not this). A change pps observed is far stronger evidence than an mtime: a
    /// library copied last night gives every folder a fresh mtime, but only the airing
    /// show is seen changing.
    pub seen_change: Option<Timestamp>,
    /// Where the folder's record of changes starts: the newest entry's mtime when a
    /// baseline dated it (one change in that long is what its listing says), or when
    /// pps first saw it. `None` in stores from before.
    pub epoch: Option<Timestamp>,
    /// Changes pps saw since [`epoch`](Self::epoch).
    pub changes: u32,
}

impl FolderSchedule {
    /// Its cadence while it holds: a cadence of at least [`BURST`] whose last burst is
    /// less than [`CADENCE_LIFE`] cadences old.
    pub fn live_cadence(&self, now: Timestamp) -> Option<Duration> {
        let (burst, cadence) = (self.burst?, self.cadence?);
        (cadence >= BURST && now.since(burst) <= cadence.saturating_mul(CADENCE_LIFE))
            .then_some(cadence)
    }

    /// Whether pps saw it change less than [`BURST_WINDOW`] ago.
    pub fn in_burst(&self, now: Timestamp) -> bool {
        self.seen_change
            .is_some_and(|c| now.since(c) < BURST_WINDOW)
    }

    /// The typical time between its changes, in seconds: the estimate of 1/λ behind
    /// [`expected`](Self::expected).
    ///
    /// - [`In a burst`](Self::in_burst): [`BURST_GAP`]. Its interval stays at most
    ///   [`BURST_INTERVAL`] meanwhile ([`Schedule::unchanged`]), so this puts it first
    ///   only every few seconds, whatever the load, and only for [`BURST_WINDOW`].
    /// - Else its live cadence; else the time since its [`epoch`](Self::epoch) over the
    ///   changes in it (the one its baseline's newest entry shows, and each pps saw
    ///   since); in a store from before, the age of its last change; else, never seen
    ///   changing, ten of its intervals (ten days when the interval is unknown); never
    ///   under [`MIN_GAP`].
    pub fn gap(&self, now: Timestamp) -> f64 {
        if self.in_burst(now) {
            return BURST_GAP.as_secs_f64();
        }
        let gap = match (self.live_cadence(now), self.last_change) {
            (Some(c), _) => c.as_secs_f64(),
            // Its own record: one change in the age its baseline showed, plus each
            // change pps saw since, over the whole time (a Bayesian count: one change
            // does not make a folder twenty times likelier than its neighbours).
            (None, _) if self.epoch.is_some() => {
                let span = now.since(self.epoch.unwrap_or(now)).as_secs_f64();
                span / f64::from(self.changes.saturating_add(1))
            }
            (None, Some(c)) => now.since(c).as_secs_f64(),
            (None, None) if !self.interval.is_zero() => self.interval.as_secs_f64() * 10.0,
            (None, None) => 864_000.0,
        };
        gap.max(MIN_GAP.as_secs_f64())
    }

    /// The changes expected since the folder was last listed: the time since then over
    /// its [`gap`](Self::gap). This is the expected number of changes one listing of it
    /// finds now, what due folders are ordered by when they outnumber the budget
    /// ([`MtimeStore::due`](crate::MtimeStore::due)) and what spare listings are ranked
    /// by. A folder just seen changing scores high (a short gap), so it is listed again
    /// before folders that are merely due; a folder left unlisted long enough scores
    /// high too, so none starves.
    pub fn expected(&self, now: Timestamp) -> f64 {
        let listed = self
            .listed
            .unwrap_or_else(|| self.next_due.minus(self.interval));
        now.since(listed).as_secs_f64() / self.gap(now)
    }

    /// This schedule made due by `now` at the latest, with `force_refresh` added when
    /// `force` is set, and marked as having [`evidence`](Self::evidence) of a change.
    /// An earlier due time is kept, so a promotion never pushes a folder back in the
    /// queue.
    pub fn promoted(mut self, now: Timestamp, force: bool) -> Self {
        self.next_due = self.next_due.min(now);
        self.force_refresh |= force;
        self.evidence = true;
        self
    }

    /// [`promoted`](Self::promoted) by a hint from `by` (a push event, a webhook): listed
    /// with `force_refresh`, and what its listing finds is put down to `by`.
    pub fn hinted(self, now: Timestamp, by: crate::store::Origin) -> Self {
        FolderSchedule {
            hinted_by: Some(by),
            ..self.promoted(now, true)
        }
    }
}

/// Counts for `status`: how the schedule of one watch looks now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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
    /// Folders per interval band: up to 15 minutes, up to an hour, up to 6 hours, up to
    /// a day, longer.
    pub bands: [u64; 5],
    /// Listings a day the schedule is on course to spend: the sum of a day over each
    /// folder's interval.
    pub calls_per_day: f64,
}

/// The upper bounds of [`ScheduleSummary::bands`], in seconds (the last band is open).
pub const BANDS: [u64; 4] = [15 * 60, 3600, 6 * 3600, 86_400];

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
        // In the burst after the change pps saw, the interval stays at the base (60 s
        // here, over BURST_INTERVAL); after the window it doubles.
        assert_eq!(s.unchanged(&f, t).interval.as_secs(), 60);
        let after = t.plus(BURST_WINDOW);
        let mut seen = Vec::new();
        for _ in 0..5 {
            f = s.unchanged(&f, after);
            seen.push(f.interval.as_secs());
        }
        assert_eq!(seen, [120, 240, 300, 300, 300]);
        assert_eq!(f.next_due, after.plus(Duration::from_secs(300)));
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

    const H: i64 = 3600;
    const D: i64 = 86_400;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn a_baseline_starts_from_the_age_of_the_newest_entry() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(300))
            .with_max_interval(Duration::from_secs(D as u64));
        let now = ts(1_800_000_000);
        let first =
            |ages: &[i64]| s.first(ages.iter().map(|a| Some(ts(now.as_secs() - a))), 0, now);
        // Minutes old: the base. A sixteenth of the age in between; two weeks or less:
        // at most the active ceiling (1 h); a year: the ceiling.
        assert_eq!(first(&[60]).interval.as_secs(), 300);
        assert_eq!(first(&[8 * H]).interval.as_secs(), 1800);
        assert_eq!(first(&[5 * D]).interval.as_secs(), 3600);
        assert_eq!(first(&[365 * D]).interval.as_secs(), D as u64);
        assert_eq!(
            first(&[365 * D, 60]).interval.as_secs(),
            300,
            "the newest counts"
        );
        let f = first(&[8 * H]);
        assert!(
            f.next_due > now && f.next_due <= now.plus(f.interval),
            "{f:?}"
        );
        assert_eq!(f.last_change, Some(ts(now.as_secs() - 8 * H)));
        // No mtimes at all: the ceiling, spread, as before.
        let none = s.first([None, None], 3, now);
        assert_eq!(none, s.recorded(3, now));
        // An entry from the future (another clock) is new, not an error.
        assert_eq!(first(&[-3600]).interval.as_secs(), 300);
    }

    #[test]
    fn regular_bursts_in_a_listing_give_a_cadence_and_a_window() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(300))
            .with_max_interval(Duration::from_secs(D as u64));
        let now = ts(1_800_000_000);
        // A weekly show: an episode each week and its subtitles ten minutes later.
        let mut mtimes = Vec::new();
        for w in 1..=4 {
            let t = now.as_secs() - w * 7 * D + 2 * D;
            mtimes.push(Some(ts(t)));
            mtimes.push(Some(ts(t + 600)));
        }
        let f = s.first(mtimes.clone(), 0, now);
        assert_eq!(f.cadence, Some(Duration::from_secs(7 * D as u64)));
        let expected = f.burst.unwrap().plus(Duration::from_secs(7 * D as u64));
        let (start, end) = s.window(&f, now).unwrap();
        assert_eq!(start, expected.minus(Duration::from_secs(12 * H as u64)));
        assert_eq!(end, expected.plus(Duration::from_secs(12 * H as u64)));
        // Between episodes it grows, but is never due after the window opens...
        let mut g = f;
        let mut t = now;
        while t < start {
            g = s.unchanged(&g, t);
            assert!(g.next_due <= start.max(t.plus(s.base())), "{g:?} at {t}");
            t = g.next_due;
        }
        // ...and inside the window it is listed at the base interval.
        let inside = s.unchanged(&g, start.plus(Duration::from_secs(60)));
        assert_eq!(inside.interval.as_secs(), 300);
        // Irregular gaps are no cadence.
        let irregular = [D, 3 * D, 10 * D, 11 * D].map(|a| Some(ts(now.as_secs() - a)));
        assert_eq!(s.first(irregular, 0, now).cadence, None);
    }

    #[test]
    fn bursts_not_single_changes_set_the_cadence() {
        let s = Schedule::default().with_max_interval(Duration::from_secs(D as u64));
        let t0 = ts(1_800_000_000);
        let ep1 = s.changed(t0);
        let sub1 = s.changed_again(&ep1, t0.plus(Duration::from_secs(600)));
        assert_eq!(
            sub1.burst,
            Some(t0),
            "subtitles belong to the episode's burst"
        );
        let ep2 = s.changed_again(&sub1, t0.plus(Duration::from_secs(7 * D as u64)));
        assert_eq!(ep2.cadence, Some(Duration::from_secs(7 * D as u64)));
        let sub2 = s.changed_again(&ep2, t0.plus(Duration::from_secs(7 * D as u64 + 300)));
        assert_eq!(
            sub2.cadence, ep2.cadence,
            "a quick second change keeps the cadence"
        );
        // An episode a little late: averaged, not replaced.
        let ep3 = s.changed_again(
            &sub2,
            t0.plus(Duration::from_secs(14 * D as u64 + 4 * H as u64)),
        );
        let c = ep3.cadence.unwrap().as_secs() as i64;
        assert!(c > 7 * D && c < 7 * D + 4 * H, "{c}");
    }

    #[test]
    fn a_folder_that_changed_in_the_last_two_weeks_waits_at_most_an_hour() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(300))
            .with_max_interval(Duration::from_secs(D as u64));
        let t0 = ts(1_800_000_000);
        let mut f = s.changed(t0);
        let mut t = t0;
        while t.since(t0) <= ACTIVE_WINDOW + Duration::from_secs(D as u64) {
            t = f.next_due;
            f = s.unchanged(&f, t);
            if t.since(t0) < ACTIVE_WINDOW {
                assert!(f.interval.as_secs() <= 3600, "{f:?}");
            }
        }
        assert!(t.since(t0) > ACTIVE_WINDOW);
        assert_eq!(f.interval.as_secs(), D as u64, "then the ceiling again");
        // A spare listing that finds nothing keeps the interval.
        let g = s.unchanged_early(&f, t.plus(Duration::from_secs(60)));
        assert_eq!(g.interval, f.interval);
        assert_eq!(g.listed, Some(t.plus(Duration::from_secs(60))));
    }

    #[test]
    fn expected_changes_rank_active_folders_first() {
        let now = ts(1_800_000_000);
        let listed = Some(now.minus(Duration::from_secs(H as u64)));
        let active = FolderSchedule {
            last_change: Some(now.minus(Duration::from_secs(D as u64))),
            listed,
            interval: Duration::from_secs(3600),
            ..FolderSchedule::default()
        };
        let old = FolderSchedule {
            last_change: Some(now.minus(Duration::from_secs(1000 * D as u64))),
            ..active
        };
        let weekly = FolderSchedule {
            cadence: Some(Duration::from_secs(7 * D as u64)),
            burst: Some(now.minus(Duration::from_secs(6 * D as u64))),
            ..old
        };
        assert!(active.expected(now) > weekly.expected(now));
        assert!(weekly.expected(now) > old.expected(now));
        let later = FolderSchedule {
            listed: Some(now.minus(Duration::from_secs(10 * H as u64))),
            ..active
        };
        assert!(
            later.expected(now) > active.expected(now),
            "longer unlisted, more expected"
        );
    }

    #[test]
    fn a_burst_keeps_the_interval_short_for_its_window_only() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(2))
            .with_max_interval(Duration::from_secs(D as u64));
        let t = ts(1_800_000_000);
        let mut f = s.changed(t);
        let mut at = t;
        let mut listings = 0;
        while at.since(t) < BURST_WINDOW {
            at = f.next_due;
            f = s.unchanged(&f, at);
            listings += 1;
            if at.since(t) < BURST_WINDOW {
                assert!(f.interval <= BURST_INTERVAL, "{f:?}");
            }
        }
        assert!(
            listings <= 65,
            "a burst that does not go on costs {listings} listings"
        );
        // Then it grows as any folder does.
        let g = s.unchanged(&f, f.next_due);
        assert_eq!(g.interval, f.interval * 2);
        // A first change pps saw holds nothing (a baseline's mtimes are no rhythm); a
        // second within the hour does.
        let first = s.changed_again(&s.first([Some(t.minus(Duration::from_secs(300)))], 0, t), t);
        assert_eq!(first.hold_until, None);
        let second = s.changed_again(&first, t.plus(Duration::from_secs(120)));
        assert_eq!(
            second.hold_until,
            Some(t.plus(Duration::from_secs(120 + 480)))
        );
    }

    #[test]
    fn a_cadence_ends_after_four_missed_beats() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(300))
            .with_max_interval(Duration::from_secs(D as u64));
        let now = ts(1_800_000_000);
        // A weekly show whose last episode aired 42 days ago: six weeks missed.
        let weekly =
            |last_age: i64| (0..5).map(move |w| Some(ts(now.as_secs() - last_age - w * 7 * D)));
        let ended = s.first(weekly(42 * D), 0, now);
        assert_eq!(ended.cadence, Some(Duration::from_secs(7 * D as u64)));
        assert_eq!(ended.live_cadence(now), None);
        assert_eq!(s.window(&ended, now), None, "no window for an ended show");
        assert_eq!(
            ended.interval.as_secs(),
            D as u64,
            "nothing keeps it from the ceiling"
        );
        // Three weeks since the last: still on (a break of two weeks happens).
        let paused = s.first(weekly(21 * D), 0, now);
        assert!(paused.live_cadence(now).is_some());
        assert!(s.window(&paused, now).is_some());
        // An ended show's gap is the age of its last change, not its old cadence.
        assert!(ended.gap(now) >= 42.0 * D as f64);
    }

    #[test]
    fn a_baseline_comes_due_between_half_and_one_interval_later() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(10))
            .with_max_interval(Duration::from_secs(D as u64));
        let now = ts(1_800_000_000);
        let old = Some(ts(now.as_secs() - 400 * D));
        let dues: Vec<i64> = (0..121)
            .map(|i| s.first([old], i, now).next_due.as_secs() - now.as_secs())
            .collect();
        // 121 year-old folders: none comes due in the first half day (they were just
        // listed), and they spread over the second half, not a few seconds apart.
        assert!(dues.iter().all(|d| (D / 2..=D).contains(d)), "{dues:?}");
        let mut sorted = dues.clone();
        sorted.sort_unstable();
        let widest_gap = sorted.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(
            widest_gap < D / 20,
            "evenly spread: widest gap {widest_gap}"
        );
    }

    #[test]
    fn a_root_is_listed_at_the_base_interval_whatever_its_age() {
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(10))
            .with_max_interval(Duration::from_secs(D as u64));
        let now = ts(1_800_000_000);
        let quiet = s.first([Some(ts(now.as_secs() - 200 * D))], 0, now);
        assert!(quiet.next_due.since(now) > Duration::from_secs(H as u64));
        let root = s.root(&quiet, now);
        assert_eq!(root.interval.as_secs(), 10);
        assert_eq!(root.next_due, now.plus(Duration::from_secs(10)));
        let grown = s.unchanged(&root, root.next_due);
        assert_eq!(
            s.root(&grown, root.next_due).next_due,
            root.next_due.plus(Duration::from_secs(10))
        );
    }

    #[test]
    fn a_folder_just_seen_changing_expects_more_than_one_merely_due() {
        let now = ts(1_800_000_000);
        let s = Schedule::default()
            .with_base_interval(Duration::from_secs(2))
            .with_max_interval(Duration::from_secs(D as u64));
        // Listed 2 s ago, changed then: in a burst.
        let airing = s.changed(now.minus(Duration::from_secs(2)));
        // Entries from last night, due, unlisted for a minute and a half (411 such
        // folders at 5 calls a second are each listed about that often).
        let fresh = FolderSchedule {
            last_change: Some(now.minus(Duration::from_secs(12 * H as u64))),
            listed: Some(now.minus(Duration::from_secs(90))),
            interval: Duration::from_secs(600),
            ..FolderSchedule::default()
        };
        assert!(airing.expected(now) > fresh.expected(now));
        // But a merely-due folder left long enough (here six hours, for one whose
        // last change is half a day old) rises above it: none starves.
        let starved = FolderSchedule {
            listed: Some(now.minus(Duration::from_secs(6 * H as u64))),
            ..fresh
        };
        assert!(starved.expected(now) > airing.expected(now));
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
