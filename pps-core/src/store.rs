//! The mtime store: what every watched folder looked like, and the outbox of scans not
//! yet delivered.

use crate::budget::{CallLimits, Grant};
use crate::clock::Timestamp;
use crate::confirm::{NewConfirm, Outcome, PendingConfirm};
use crate::error::Result;
use crate::listing::Fingerprint;
pub use crate::schedule::{FolderSchedule, ScheduleSummary, Settling};
use crate::types::Change;
use std::collections::HashMap;
use std::fmt;

/// Identifies one watch's state inside a store: a (source name, watched root) pair.
/// Several sources and watches share one store without their folders colliding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeId(pub i64);

/// A folder's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRecord {
    /// Fingerprint of the listing.
    pub fingerprint: Fingerprint,
    /// The listing in its compact encoding ([`crate::listing::encode`]).
    pub listing: Vec<u8>,
}

impl FolderRecord {
    /// A placeholder for a folder a baseline could not list (see
    /// [`Fingerprint::UNLISTED`]): an empty listing, so walking below it finds nothing.
    pub fn unlisted() -> Self {
        FolderRecord {
            fingerprint: Fingerprint::UNLISTED,
            listing: crate::listing::encode(&[]).bytes,
        }
    }

    /// True for a placeholder.
    pub fn is_unlisted(&self) -> bool {
        self.fingerprint.is_unlisted()
    }
}

/// A scan to enqueue: one change for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewScan {
    /// The target's name.
    pub target: String,
    /// The change, in source paths; the target's mapping and planning are applied at
    /// delivery, so a corrected `path_mapping` applies to scans already waiting.
    pub change: Change,
}

/// One atomic write: folders' new states and schedules, subtrees to drop, and the
/// scans they cause.
///
/// A store applies a commit entirely or not at all: after a crash at any point, either
/// the old states remain (and the next pass finds the same changes again) or the new
/// states are there together with their scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// Subtrees (a folder and everything below it, on whole components) to drop,
    /// applied before `folders`.
    pub removed: Vec<String>,
    /// Folder states to insert or replace: `(path, record)`.
    pub folders: Vec<(String, FolderRecord)>,
    /// Scans to add to the outbox.
    pub scans: Vec<NewScan>,
    /// Folder schedules to insert or replace, applied after `removed` (a schedule may
    /// exist for a folder with no state yet: one due to be listed for the first time).
    pub schedules: Vec<(String, FolderSchedule)>,
    /// The changes found, for the history ([`Event::Change`]), each with what made pps
    /// look ([`Origin`], the line's detail): written with the state and scans they
    /// caused, so the history never claims a change that was not committed.
    pub changes: Vec<(Change, Origin)>,
}

impl Commit {
    /// True when the commit writes nothing.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
            && self.folders.is_empty()
            && self.scans.is_empty()
            && self.schedules.is_empty()
            && self.changes.is_empty()
    }
}

/// What made pps look where it found a change: the answer to "where did this come
/// from?" in the activity history (the detail of an [`Event::Change`] line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A full walk of the watch: `pps once --full`, a watch's first pass, and every
    /// pass of `--watch` mode (which keeps no schedule).
    Walk,
    /// A scheduled listing: the folder was due.
    Poll,
    /// A spare listing: budget left over went to a folder likely to have changed.
    Spare,
    /// A source's push event (CloudDrive2's file watcher, inotify) named the folder.
    Push,
    /// A webhook (Sonarr, Radarr, an autoscan-style `POST`) named the folder.
    Webhook,
    /// Queued by hand (`pps scan`, the web UI's "Scan now").
    Manual,
}

impl Origin {
    /// Every origin, in code order.
    pub const ALL: [Origin; 6] = [
        Origin::Walk,
        Origin::Poll,
        Origin::Spare,
        Origin::Push,
        Origin::Webhook,
        Origin::Manual,
    ];

    /// The lowercase name (`walk`, `poll`, `spare`, `push`, `webhook`, `manual`).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Walk => "walk",
            Origin::Poll => "poll",
            Origin::Spare => "spare",
            Origin::Push => "push",
            Origin::Webhook => "webhook",
            Origin::Manual => "manual",
        }
    }

    /// The origin named `name` (as [`as_str`](Self::as_str) gives).
    pub fn parse(name: &str) -> Option<Origin> {
        Origin::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The number it is stored as.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The origin stored as `code`.
    pub fn from_code(code: i64) -> Option<Origin> {
        Origin::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a history line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// A change found by a pass, or queued by hand (no target); the detail is its
    /// [`Origin`] (none in lines written before pps recorded it).
    Change,
    /// A scan a target accepted; the detail is the path as sent (mapped).
    Sent,
    /// A delivery attempt that failed and will be retried; the detail is the error.
    Retried,
    /// A scan parked, never retried on its own; the detail is the reason.
    Parked,
    /// A queued scan dropped by hand (`pps drop`).
    Dropped,
    /// A confirmation found the item in the library; the detail names it.
    Indexed,
    /// A confirmation found a deletion reached the library.
    Removed,
    /// A confirmation gave up: not found by its deadline; the detail is the reason.
    Stuck,
    /// A source became unreachable (or its root an outage); the path is the watch's
    /// root, the detail the error. Written once per outage, not per pass.
    SourceDown,
    /// A source answered again after [`Event::SourceDown`].
    SourceUp,
    /// The cloud pushed back and pps lowered its rate; the detail says how.
    Throttled,
    /// A notifier delivered a message (or was parked); the path is the notifier's
    /// name, the detail what happened.
    Notified,
}

impl Event {
    /// Every event, in code order.
    pub const ALL: [Event; 12] = [
        Event::Change,
        Event::Sent,
        Event::Retried,
        Event::Parked,
        Event::Dropped,
        Event::Indexed,
        Event::Removed,
        Event::Stuck,
        Event::SourceDown,
        Event::SourceUp,
        Event::Throttled,
        Event::Notified,
    ];

    /// The lowercase name (`change`, `sent`, `retried`, `parked`, `dropped`, `indexed`,
    /// `removed`, `stuck`, `source_down`, `source_up`, `throttled`, `notified`).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Change => "change",
            Event::Sent => "sent",
            Event::Retried => "retried",
            Event::Parked => "parked",
            Event::Dropped => "dropped",
            Event::Indexed => "indexed",
            Event::Removed => "removed",
            Event::Stuck => "stuck",
            Event::SourceDown => "source_down",
            Event::SourceUp => "source_up",
            Event::Throttled => "throttled",
            Event::Notified => "notified",
        }
    }

    /// The event named `name` (as [`as_str`](Self::as_str) gives).
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The number it is stored as.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The event stored as `code`.
    pub fn from_code(code: i64) -> Option<Event> {
        Event::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the activity history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Increases with time of writing; a page is asked for by the last id seen.
    pub id: i64,
    /// When it was written (the store's wall clock).
    pub at: Timestamp,
    /// What happened.
    pub event: Event,
    /// The watch it belongs to: (source, root); `None` when its scope is gone.
    pub watch: Option<(String, String)>,
    /// The target, for delivery events.
    pub target: Option<String>,
    /// The change, in source paths.
    pub change: Change,
    /// The mapped path sent, the error, the reason, or a change's origin (see [`Event`]).
    pub detail: Option<String>,
    /// For [`Event::Indexed`] and [`Event::Removed`]: the time from the change being
    /// queued to the confirmation, in seconds.
    pub took: Option<u64>,
}

impl HistoryEntry {
    /// For an [`Event::Change`] line, what made pps look; `None` for other events and
    /// for lines written before pps recorded it.
    pub fn origin(&self) -> Option<Origin> {
        match self.event {
            Event::Change => self.detail.as_deref().and_then(Origin::parse),
            _ => None,
        }
    }
}

/// Which history lines to read: newest first, every filter optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this target's deliveries.
    pub target: Option<String>,
    /// Only lines whose path contains this text.
    pub path: Option<String>,
    /// Only these events (empty: all).
    pub events: Vec<Event>,
    /// Only lines of this source (a watch's source name).
    pub source: Option<String>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Only lines older than this id (the next page after one ending at it).
    pub before: Option<i64>,
    /// At most this many lines (0: none).
    pub limit: usize,
}

/// How much history a store keeps. Pruning runs with the writes that add to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Lines older than this are dropped.
    pub max_age: std::time::Duration,
    /// At most this many lines are kept (the oldest go first).
    pub max_rows: u64,
}

impl Default for HistoryLimits {
    /// 30 days and 50,000 lines: about 10 MB of SQLite (BENCHMARKS.md), so the store of
    /// a 20,000-folder library stays well under 50 MB.
    fn default() -> Self {
        HistoryLimits {
            max_age: std::time::Duration::from_secs(30 * 86_400),
            max_rows: 50_000,
        }
    }
}

/// Where a notifier stands in the history ([`MtimeStore::notifier`]): notifications
/// are read from the history, which is written in the transaction of what it records,
/// so a crash loses none; the cursor moves only after a delivery, so a restart repeats
/// none that was delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifierState {
    /// The last history id delivered (or passed over as not wanted).
    pub cursor: i64,
    /// Failed deliveries in a row.
    pub failures: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the last message was delivered.
    pub last_sent: Option<Timestamp>,
    /// Messages delivered so far.
    pub sent: u64,
    /// Why delivery stopped until a retry; `None` while delivering.
    pub parked: Option<String>,
}

/// A scan waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedScan {
    /// Outbox id; increases with enqueue order.
    pub id: i64,
    /// The target's name.
    pub target: String,
    /// The change, in source paths.
    pub change: Change,
    /// Delivery attempts that failed so far.
    pub attempts: u32,
    /// The last failure, or for a parked scan the reason it was parked.
    pub last_error: Option<String>,
    /// After a failed attempt: about when delivery tries again (the delivery loop's
    /// backoff, as estimated when the failure was recorded). `None` before any failure.
    pub next_try: Option<Timestamp>,
    /// The watch the change was found in.
    pub scope: ScopeId,
    /// When the change was queued (the store's wall clock).
    pub queued_at: Timestamp,
}

/// A source's health as the service last found it ([`MtimeStore::record_source_health`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceHealth {
    /// The source's name.
    pub source: String,
    /// Whether it answered at the last check.
    pub reachable: bool,
    /// Why not, when it did not (a message without secrets).
    pub error: Option<String>,
    /// Since when it has been in this state (reachable or not), Unix seconds.
    pub since: i64,
    /// When it was last checked, Unix seconds.
    pub checked: i64,
    /// The rate in force then, calls per second (lowered after the cloud throttled).
    pub rate: f64,
    /// Every call of every process paused until then (Unix seconds) because the cloud
    /// throttled; `None` when no pause was ever set.
    pub paused_until: Option<f64>,
}

/// Counts for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Folders stored per scope, with the scope's source and root.
    pub scopes: Vec<(ScopeId, String, String, u64)>,
    /// Per target: (pending, parked).
    pub outbox: Vec<(String, u64, u64)>,
    /// Per target: confirmations (pending, stuck).
    pub confirms: Vec<(String, u64, u64)>,
}

/// Durable state of watched folders plus the outbox of undelivered scans.
///
/// Methods are synchronous: every implementation so far is in memory or SQLite, and a
/// call takes microseconds to a few milliseconds. Implementations must be safe to share
/// across threads and must keep [`commit`](Self::commit) atomic.
pub trait MtimeStore: Send + Sync + fmt::Debug {
    /// The scope of `(source, root)`, created on first use. The same pair always gives
    /// the same id, also after reopening a durable store.
    fn scope(&self, source: &str, root: &str) -> Result<ScopeId>;

    /// Every stored folder of a scope with its fingerprint. An unknown scope has none.
    fn fingerprints(&self, scope: ScopeId) -> Result<HashMap<String, Fingerprint>>;

    /// One folder's stored state, `None` when it has none.
    fn folder(&self, scope: ScopeId, path: &str) -> Result<Option<FolderRecord>>;

    /// Applies `commit` to `scope` atomically (see [`Commit`]).
    ///
    /// # Behaviour
    /// - Removal covers a folder and every folder below it, on whole components:
    ///   removing `/a/TV` never touches `/a/TV Shows`. It drops their schedules too.
    /// - On any error nothing of the commit is applied; a full disk or a read-only file
    ///   is an error of kind `Unavailable`, not a partial write.
    fn commit(&self, scope: ScopeId, commit: &Commit) -> Result<()>;

    /// Drops the stored state and schedules at and under `path` in `scope`, so the
    /// next pass re-baselines it. Returns the number of folder states dropped. Queued
    /// scans stay.
    fn forget(&self, scope: ScopeId, path: &str) -> Result<u64>;

    /// One folder's schedule, `None` when it has none.
    fn schedule(&self, scope: ScopeId, path: &str) -> Result<Option<FolderSchedule>>;

    /// Of `candidates` (paths of one scope), the one with a schedule that comes last
    /// in the slice, with its schedule: one query for a hint's nearest known folder,
    /// however deep the path (the caller passes the path and its ancestors, shortest
    /// first). `None` when none has a schedule.
    fn nearest_schedule(
        &self,
        scope: ScopeId,
        candidates: &[String],
    ) -> Result<Option<(String, FolderSchedule)>> {
        for c in candidates.iter().rev() {
            if let Some(s) = self.schedule(scope, c)? {
                return Ok(Some((c.clone(), s)));
            }
        }
        Ok(None)
    }

    /// Proves the store can be written now, asking the store itself (a write
    /// transaction begun and rolled back), never by opening its files another way:
    /// for `/health`. An error says why (locked, read-only, full, damaged).
    fn check_writable(&self) -> Result<()> {
        self.stats().map(|_| ())
    }

    /// Every folder schedule of `scope`: what spare listings are ranked from. Scales
    /// with the folders stored; the engine calls it about once a minute per watch.
    fn schedules(&self, scope: ScopeId) -> Result<Vec<(String, FolderSchedule)>>;

    /// Up to `limit` folders of `scope` whose `next_due` is at or before `now`, with
    /// their schedules, best first: every folder with evidence of a change
    /// ([`FolderSchedule::evidence`] or a pending `force_refresh`) before the rest, then
    /// by the changes a listing is expected to find now
    /// ([`FolderSchedule::expected`], highest first), then oldest due, then by path (so
    /// the order is stable).
    ///
    /// # Behaviour
    /// - A folder due exactly at `now` is included.
    /// - `limit` 0 returns nothing; an unknown scope has nothing due.
    /// - Scales with the number of due folders (they are ranked), not the number
    ///   stored (an index on the due time): the scheduler asks every few seconds. Under
    ///   a budget the due set stays small; a saturated one ranks a few thousand rows,
    ///   a few milliseconds (BENCHMARKS.md).
    fn due(
        &self,
        scope: ScopeId,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(String, FolderSchedule)>> {
        self.due_ranked(scope, now, None, limit)
    }

    /// [`due`](Self::due), where every due folder last listed at or before `starved`
    /// (when given) comes right after the folders with evidence, longest unlisted
    /// first: the scheduler passes `now` minus the watch's ceiling, so under any load
    /// no folder waits past its ceiling plus the time to list those ahead of it.
    fn due_ranked(
        &self,
        scope: ScopeId,
        now: Timestamp,
        starved: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, FolderSchedule)>>;

    /// The schedule of `scope` at `now` for `status`: folders with a schedule, how many
    /// are due now and within `window` from now, the longest current interval, the
    /// earliest due time, and the folders waiting for a forced re-list or settling.
    fn schedule_summary(
        &self,
        scope: ScopeId,
        now: Timestamp,
        window: std::time::Duration,
    ) -> Result<ScheduleSummary>;

    /// Up to `limit` queued, unparked scans of `target`, oldest first.
    fn pending(&self, target: &str, limit: usize) -> Result<Vec<QueuedScan>>;

    /// Removes delivered scans, `sent_as` the path the target was sent (mapped), with
    /// a [`Event::Sent`] history line each in the same transaction. Unknown ids are
    /// ignored.
    fn complete(&self, ids: &[i64], sent_as: &str) -> Result<()> {
        self.complete_confirming(ids, sent_as, &[])
    }

    /// [`complete`](Self::complete), and in the same transaction the confirmations of
    /// those scans ([`NewConfirm`], each naming one of `ids`), so a crash after the
    /// server accepted a scan never loses the check that it was indexed.
    ///
    /// # Behaviour
    /// - A confirmation copies its scan's target, watch, change and enqueue time.
    /// - A confirmation for a path that already has one for the same target (pending
    ///   or stuck) replaces it: the clock starts at the last report.
    /// - A confirmation naming an id not in `ids` or not in the outbox is skipped.
    fn complete_confirming(
        &self,
        ids: &[i64],
        sent_as: &str,
        confirms: &[NewConfirm],
    ) -> Result<()>;

    /// Up to `limit` pending (not stuck) confirmations of `target` whose next check is
    /// at or before `now`, earliest first.
    fn confirms_due(
        &self,
        target: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PendingConfirm>>;

    /// The earliest next check of `target`'s pending confirmations.
    fn next_confirm(&self, target: &str) -> Result<Option<Timestamp>>;

    /// Stores a pending confirmation's new `next_check`, `deadline`, `checks`,
    /// `remedied` and `note` (after a check that found no outcome). Unknown ids are
    /// ignored.
    fn update_confirm(&self, confirm: &PendingConfirm) -> Result<()>;

    /// Ends a confirmation, with a history line in the same transaction:
    /// - [`Outcome::Indexed`]: an [`Event::Indexed`] line (detail: the item's title and
    ///   id; `took`: seconds from queued to now); the item's id is remembered for the
    ///   path ([`known_items`](Self::known_items)); the confirmation is removed.
    /// - [`Outcome::Removed`]: an [`Event::Removed`] line; the ids remembered at or
    ///   below the path are forgotten; the confirmation is removed.
    /// - [`Outcome::Stuck`]: an [`Event::Stuck`] line with the reason; the
    ///   confirmation is kept, marked stuck, until [`retry_stuck`](Self::retry_stuck).
    fn settle_confirm(&self, id: i64, outcome: &Outcome) -> Result<()>;

    /// Stuck confirmations of `target`, oldest first.
    fn stuck(&self, target: &str) -> Result<Vec<PendingConfirm>>;

    /// Puts the changes of stuck confirmations (of `target`, or of every target) back
    /// into the outbox as new scans and removes the confirmations: a retry sends the
    /// scan again and confirms it afresh. Returns how many.
    fn retry_stuck(&self, target: Option<&str>) -> Result<u64>;

    /// The item ids remembered for `target` at or below `path` (whole components, in
    /// the path's separator style).
    fn known_items(&self, target: &str, path: &str) -> Result<Vec<String>>;

    /// Seconds from queued to indexed of `target`'s [`Event::Indexed`] lines written at
    /// or after `since`, ascending.
    fn indexed_times(&self, target: &str, since: Timestamp) -> Result<Vec<u64>>;

    /// Records a failed, retryable attempt for these scans, and about when the next
    /// attempt is due (shown by `status`; delivery itself follows its own backoff),
    /// with a [`Event::Retried`] history line each.
    fn record_failure(&self, ids: &[i64], error: &str, next_try: Timestamp) -> Result<()>;

    /// Parks these scans with a reason: kept and shown, never retried; a
    /// [`Event::Parked`] history line each. An older parked scan of the same target and
    /// path goes (the newer one says it all): a path scanned again by hand and refused
    /// again is parked once, not twice.
    fn park(&self, ids: &[i64], reason: &str) -> Result<()>;

    /// Parked scans of `target`, oldest first.
    fn parked(&self, target: &str) -> Result<Vec<QueuedScan>>;

    /// Up to `limit` unparked scans of `target` that failed at least once, oldest
    /// first: what `status` shows beside the parked ones.
    fn failing(&self, target: &str, limit: usize) -> Result<Vec<QueuedScan>>;

    /// Puts parked scans back in the queue (of `target`, or of every target), with
    /// their attempts reset, for when the cause is fixed (a library added, a token
    /// corrected). Returns how many.
    fn unpark(&self, target: Option<&str>) -> Result<u64>;

    /// Drops the queued scans (pending and parked) of `target` whose path is at or
    /// under `path` (whole components), or all of them, with a [`Event::Dropped`]
    /// history line each. Returns how many.
    fn drop_scans(&self, target: &str, path: Option<&str>) -> Result<u64>;

    /// Counts `n` calls made to `source` at `at` without asking the budget (`pps walk
    /// --force`), kept per minute for [`CALLS_KEPT`](crate::budget::CALLS_KEPT).
    fn record_calls(&self, source: &str, at: Timestamp, n: u64) -> Result<()>;

    /// Calls counted for `source` in the minutes from the one holding `since` on.
    fn calls_since(&self, source: &str, since: Timestamp) -> Result<u64>;

    /// Calls counted for `source` per hour, for the `hours` whole hours up to and
    /// including the one holding `now`, oldest first (zero for an hour without calls).
    fn calls_by_hour(&self, source: &str, now: Timestamp, hours: usize) -> Result<Vec<u64>>;

    /// Asks the shared budget of `source` for one call at `now` (Unix seconds): reads
    /// its bucket and its calls in the windows of its ceilings, applies
    /// [`budget::decide`](crate::budget::decide), and when granted stores the bucket and
    /// counts the call, all in one transaction, so processes sharing the store never
    /// together exceed `limits`.
    ///
    /// # Behaviour
    /// - A source never asked for starts with a full bucket.
    /// - A wait counts nothing and changes nothing.
    /// - Counts older than [`CALLS_KEPT`](crate::budget::CALLS_KEPT) are pruned.
    fn take_call(&self, source: &str, now: f64, limits: &CallLimits) -> Result<Grant>;

    /// Pauses every call to `source` until `until` (Unix seconds); an earlier pause
    /// already in force is extended, never shortened.
    fn pause_calls(&self, source: &str, until: f64) -> Result<()>;

    /// Records what the process watching `source` last found of its health, for
    /// `pps status` in another process. The default keeps nothing (a store that cannot
    /// share it).
    fn record_source_health(&self, health: &SourceHealth) -> Result<()> {
        let _ = health;
        Ok(())
    }

    /// The health last recorded for `source`, with the pause in force from
    /// [`pause_calls`](Self::pause_calls); `None` when none was recorded.
    fn source_health(&self, source: &str) -> Result<Option<SourceHealth>> {
        let _ = source;
        Ok(None)
    }

    /// History lines matching `query`, newest first.
    ///
    /// # Behaviour
    /// - Changes are written by [`commit`](Self::commit) (its `changes`), deliveries by
    ///   [`complete`](Self::complete), [`record_failure`](Self::record_failure),
    ///   [`park`](Self::park) and [`drop_scans`](Self::drop_scans), each in the same
    ///   transaction as what it records.
    /// - Lines beyond the store's [`HistoryLimits`] are pruned as new ones are written.
    fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryEntry>>;

    /// Writes a history line of its own (an event that is no scan: a source down or up,
    /// a throttle), for `scope`'s watch when given.
    fn log_event(
        &self,
        scope: Option<ScopeId>,
        event: Event,
        path: &str,
        detail: &str,
    ) -> Result<()>;

    /// Up to `limit` history lines with an id above `after`, oldest first: what a
    /// notifier has not yet read.
    fn history_after(&self, after: i64, limit: usize) -> Result<Vec<HistoryEntry>>;

    /// The newest history id (0 for none): where a new notifier starts.
    fn last_history_id(&self) -> Result<i64>;

    /// The stored state of the notifier `name`, `None` before its first save.
    fn notifier(&self, name: &str) -> Result<Option<NotifierState>>;

    /// Stores the state of the notifier `name`.
    fn save_notifier(&self, name: &str, state: &NotifierState) -> Result<()>;

    /// Replaces the folder states and schedules of `into` with those of `from`, in one
    /// atomic step, leaving `from` empty: how a re-index swaps in its new baseline only
    /// once it is complete. `keep` names folders `from` could not list: where `into`
    /// holds state for one of them, that subtree of `into` is kept instead of `from`'s.
    /// Queued scans are untouched.
    fn replace_scope(&self, into: ScopeId, from: ScopeId, keep: &[String]) -> Result<()>;

    /// Counts of folders per scope and of scans per target.
    fn stats(&self) -> Result<StoreStats>;
}
