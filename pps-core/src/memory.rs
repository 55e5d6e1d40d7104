//! In-memory implementations of the three traits: reference implementations and the
//! test doubles used everywhere.

use crate::budget::{self, Bucket, CallLimits, Grant, Windows};
use crate::clock::Timestamp;
use crate::confirm::{
    ConfirmPlan, ConfirmRequest, Item, Lookup, NewConfirm, Outcome, PendingConfirm, Remedy,
};
use crate::error::{Error, ErrorKind, Result};
use crate::listing::Fingerprint;
use crate::path;
use crate::source::{DirectorySource, ListOptions};
use crate::store::{
    Commit, Event, FolderRecord, FolderSchedule, HistoryEntry, HistoryLimits, HistoryQuery,
    MtimeStore, NotifierState, QueuedScan, ScheduleSummary, ScopeId, StoreStats,
};
use crate::target::{Capabilities, Library, ScanRequest, ScanTarget};
use crate::types::{Change, Entry, Mtime};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another test thread must not cascade: the data is still consistent
    // because every mutation below completes before unlocking.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A folder's children in the compact listing encoding: a tree of 100,000 folders
/// then fits in a few tens of MB, so benchmarks measure the engine, not the double.
#[derive(Debug, Clone)]
struct Packed(Vec<u8>);

impl Packed {
    fn new(entries: &[Entry]) -> Self {
        Packed(crate::listing::encode(entries).bytes)
    }

    fn entries(&self) -> Vec<Entry> {
        // Only `Packed::new` writes these bytes, so they always decode.
        crate::listing::decode(&self.0).unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Tree {
    /// Folder path -> children sorted by name.
    folders: HashMap<String, Packed>,
    /// Injected failures: path -> (kind, remaining count; `None` = until cleared).
    faults: HashMap<String, (ErrorKind, Option<u32>)>,
    /// A logical clock for mtimes: every mutation is one tick (one second).
    clock: i64,
    /// When set, mtimes are this clock's time instead (simulations on virtual time).
    time: Option<Arc<dyn crate::clock::Clock>>,
}

impl Tree {
    /// Edits the children of `folder` in place (decoded, then re-encoded).
    fn edit<R>(&mut self, folder: &str, f: impl FnOnce(&mut Vec<Entry>) -> R) -> Option<R> {
        let packed = self.folders.get_mut(folder)?;
        let mut entries = packed.entries();
        let r = f(&mut entries);
        *packed = Packed::new(&entries);
        Some(r)
    }

    fn child(&self, folder: &str, name: &str) -> Option<Entry> {
        self.folders
            .get(folder)?
            .entries()
            .into_iter()
            .find(|e| e.name == name)
    }
}

/// A mutable tree in memory that lists like a real source.
///
/// Every mutation stamps the touched entry and its parent folder with a fresh mtime, as
/// a POSIX filesystem does. Failures can be injected per path, and listings are counted,
/// so tests can assert how many calls a pass spent. Clones share the same tree.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    tree: Arc<Mutex<Tree>>,
    lists: Arc<AtomicU64>,
}

impl MemorySource {
    /// An empty tree holding only `/`.
    pub fn new() -> Self {
        let src = MemorySource::default();
        lock(&src.tree)
            .folders
            .insert("/".to_owned(), Packed::new(&[]));
        src
    }

    fn tick(tree: &mut Tree) -> Mtime {
        tree.clock += 1;
        match &tree.time {
            // The clock's second, with the tick in the nanoseconds so that two writes
            // in one second still differ.
            Some(c) => {
                Mtime::from_nanos(c.now().as_secs() * 1_000_000_000 + tree.clock % 1_000_000_000)
            }
            None => Mtime::from_nanos(1_600_000_000_000_000_000 + tree.clock * 1_000_000_000),
        }
    }

    /// Stamps mtimes from `clock` from now on (a simulation's virtual time), instead of
    /// the logical clock.
    pub fn set_clock(&self, clock: Arc<dyn crate::clock::Clock>) {
        lock(&self.tree).time = Some(clock);
    }

    /// A tree given folder by folder: `(folder path, its children)`. Every folder named
    /// by a child entry of kind folder should have its own item; `/` is added when
    /// missing. Builds large trees fast (benchmarks), without the per-write mtime
    /// bookkeeping of [`write_file`](Self::write_file).
    pub fn from_listings(listings: impl IntoIterator<Item = (String, Vec<Entry>)>) -> Self {
        let src = MemorySource::new();
        {
            let mut tree = lock(&src.tree);
            for (folder, mut entries) in listings {
                crate::listing::sort_entries(&mut entries);
                tree.folders.insert(folder, Packed::new(&entries));
            }
        }
        src
    }

    /// Creates a folder and any missing parents (like `mkdir -p`).
    pub fn create_dir(&self, path: &str) {
        let mut tree = lock(&self.tree);
        Self::mkdirs(&mut tree, path);
    }

    fn mkdirs(tree: &mut Tree, path: &str) {
        if tree.folders.contains_key(path) {
            return;
        }
        let parent = path::parent(path).unwrap_or("/").to_owned();
        Self::mkdirs(tree, &parent);
        let now = Self::tick(tree);
        Self::put(tree, &parent, Entry::dir(path::file_name(path), Some(now)));
        tree.folders.insert(path.to_owned(), Packed::new(&[]));
    }

    /// Puts `entry` into folder `parent`, replacing one of the same name, and touches
    /// the parent's own entry.
    fn put(tree: &mut Tree, parent: &str, entry: Entry) {
        let now = Self::tick(tree);
        let replaced_dir = tree
            .edit(parent, |children| {
                match children.binary_search_by(|e| e.name.as_str().cmp(&entry.name)) {
                    Ok(i) => {
                        let was_dir = children[i].is_dir() && !entry.is_dir();
                        children[i] = entry.clone();
                        was_dir
                    }
                    Err(i) => {
                        children.insert(i, entry.clone());
                        false
                    }
                }
            })
            .unwrap_or(false);
        if replaced_dir {
            // A file written over a folder replaces the folder and all it held.
            let gone = path::join(parent, &entry.name);
            tree.folders.retain(|p, _| !path::is_at_or_under(p, &gone));
        }
        Self::touch(tree, parent, now);
    }

    fn touch(tree: &mut Tree, folder: &str, now: Mtime) {
        if let Some(pp) = path::parent(folder) {
            let name = path::file_name(folder).to_owned();
            tree.edit(pp, |children| {
                if let Ok(i) = children.binary_search_by(|e| e.name.as_str().cmp(&name)) {
                    children[i].mtime = Some(now);
                }
            });
        }
    }

    /// Writes a file of `size` bytes (creating parents), with a fresh mtime.
    pub fn write_file(&self, path: &str, size: u64) {
        let mut tree = lock(&self.tree);
        let parent = path::parent(path).unwrap_or("/").to_owned();
        Self::mkdirs(&mut tree, &parent);
        let now = Self::tick(&mut tree);
        Self::put(
            &mut tree,
            &parent,
            Entry::file(path::file_name(path), size, Some(now)),
        );
    }

    /// Sets one entry exactly as given (name taken from `path`), creating parents. Lets a
    /// test produce unknown mtimes or unusual sizes. A folder entry put this way has no
    /// listing of its own until [`create_dir`](Self::create_dir) is called.
    pub fn put_entry(&self, path: &str, mut entry: Entry) {
        let mut tree = lock(&self.tree);
        let parent = path::parent(path).unwrap_or("/").to_owned();
        Self::mkdirs(&mut tree, &parent);
        entry.name = path::file_name(path).to_owned();
        tree.edit(&parent, |children| {
            match children.binary_search_by(|e| e.name.cmp(&entry.name)) {
                Ok(i) => children[i] = entry,
                Err(i) => children.insert(i, entry),
            }
        });
    }

    /// Removes a file or a whole folder. Missing paths are ignored.
    pub fn remove(&self, path: &str) {
        let mut tree = lock(&self.tree);
        Self::remove_locked(&mut tree, path);
    }

    fn remove_locked(tree: &mut Tree, target: &str) {
        let Some(parent) = path::parent(target).map(str::to_owned) else {
            return;
        };
        let name = path::file_name(target).to_owned();
        let removed = tree
            .edit(&parent, |children| {
                match children.binary_search_by(|e| e.name.cmp(&name)) {
                    Ok(i) => Some(children.remove(i)),
                    Err(_) => None,
                }
            })
            .flatten();
        if let Some(e) = removed {
            if e.is_dir() {
                tree.folders.retain(|p, _| !path::is_at_or_under(p, target));
            }
            let now = Self::tick(tree);
            Self::touch(tree, &parent, now);
        }
    }

    /// Moves a file or folder (with its subtree) to `to`, replacing what was there.
    /// Like a rename on a real filesystem, the moved entries keep their mtimes.
    pub fn rename(&self, from: &str, to: &str) {
        let mut tree = lock(&self.tree);
        let Some(from_parent) = path::parent(from).map(str::to_owned) else {
            return;
        };
        let name = path::file_name(from).to_owned();
        let Some(mut entry) = tree.child(&from_parent, &name) else {
            return;
        };
        let moved: Vec<(String, Packed)> = if entry.is_dir() {
            tree.folders
                .iter()
                .filter(|(p, _)| path::is_at_or_under(p, from))
                .map(|(p, c)| (format!("{to}{}", &p[from.len()..]), c.clone()))
                .collect()
        } else {
            Vec::new()
        };
        Self::remove_locked(&mut tree, from);
        Self::remove_locked(&mut tree, to);
        let to_parent = path::parent(to).unwrap_or("/").to_owned();
        Self::mkdirs(&mut tree, &to_parent);
        entry.name = path::file_name(to).to_owned();
        Self::put(&mut tree, &to_parent, entry);
        for (p, c) in moved {
            tree.folders.insert(p, c);
        }
    }

    /// Makes listings and lookups of exactly `path` fail with `kind`: `times` times, or
    /// until [`clear_fault`](Self::clear_fault) when `None`.
    pub fn inject_fault(&self, path: &str, kind: ErrorKind, times: Option<u32>) {
        lock(&self.tree)
            .faults
            .insert(path.to_owned(), (kind, times));
    }

    /// Removes an injected failure.
    pub fn clear_fault(&self, path: &str) {
        lock(&self.tree).faults.remove(path);
    }

    /// How many `list` calls were made so far.
    pub fn list_calls(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// Every folder path in the tree (unsorted).
    pub fn folders(&self) -> Vec<String> {
        lock(&self.tree).folders.keys().cloned().collect()
    }

    /// A snapshot: each path with its entry, sorted by path. `/` itself is left out.
    pub fn snapshot(&self) -> BTreeMap<String, Entry> {
        let tree = lock(&self.tree);
        let mut out = BTreeMap::new();
        for (folder, children) in &tree.folders {
            for e in children.entries() {
                out.insert(path::join(folder, &e.name), e);
            }
        }
        out
    }

    fn fault(tree: &mut Tree, path: &str) -> Option<Error> {
        let (kind, remaining) = tree.faults.get_mut(path)?;
        let kind = *kind;
        if let Some(n) = remaining {
            if *n == 0 {
                tree.faults.remove(path);
                return None;
            }
            *n -= 1;
        }
        Some(Error::new(kind, "injected failure").with("path", path))
    }
}

#[async_trait]
impl DirectorySource for MemorySource {
    async fn list(&self, path: &str, _options: ListOptions) -> Result<Vec<Entry>> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let mut tree = lock(&self.tree);
        if let Some(err) = Self::fault(&mut tree, path) {
            return Err(err.with("operation", "list"));
        }
        tree.folders.get(path).map(Packed::entries).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "no such folder")
                .permanent()
                .with("operation", "list")
                .with("path", path)
        })
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let mut tree = lock(&self.tree);
        if let Some(err) = Self::fault(&mut tree, path) {
            return Err(err.with("operation", "stat"));
        }
        let not_found = || {
            Error::new(ErrorKind::NotFound, "no such path")
                .with("operation", "stat")
                .with("path", path)
        };
        let Some(parent) = path::parent(path) else {
            return Ok(Entry::dir("/", None));
        };
        let name = path::file_name(path);
        tree.child(parent, name).ok_or_else(not_found)
    }
}

#[derive(Debug, Clone)]
struct Queued {
    scan: QueuedScan,
    parked: bool,
    scope: i64,
}

#[derive(Debug, Default)]
struct StoreState {
    scopes: Vec<(String, String)>,
    folders: BTreeMap<(i64, String), FolderRecord>,
    schedules: BTreeMap<(i64, String), FolderSchedule>,
    /// `(scope, next_due, path)` of every schedule: the due queue, as an index would be.
    due_index: BTreeSet<(i64, Timestamp, String)>,
    outbox: BTreeMap<i64, Queued>,
    next_id: i64,
    history: VecDeque<HistoryEntry>,
    next_history: i64,
    /// Confirmations by id, with the scope of their watch.
    confirms: BTreeMap<i64, (i64, PendingConfirm)>,
    next_confirm: i64,
    /// Item ids found per (target, path).
    items: BTreeMap<(String, String), String>,
    notifiers: BTreeMap<String, NotifierState>,
    /// Calls per (source, minute).
    calls: BTreeMap<(String, i64), u64>,
    /// The shared call budget's bucket per source.
    buckets: HashMap<String, Bucket>,
    limits: HistoryLimits,
    /// Commits to let through before failing `fail_commits` of them.
    pass_commits: u32,
    fail_commits: u32,
}

/// A store in memory: the reference implementation of [`MtimeStore`].
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<StoreState>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the history within `limits` from now on.
    pub fn with_history_limits(self, limits: HistoryLimits) -> Self {
        lock(&self.state).limits = limits;
        self
    }

    /// Lets `ok` commits through, then makes the next `fail` commits fail with nothing
    /// applied, to test error paths.
    pub fn fail_commits_after(&self, ok: u32, fail: u32) {
        let mut st = lock(&self.state);
        st.pass_commits = ok;
        st.fail_commits = fail;
    }
}

/// The wall clock in whole seconds, as the SQLite store stamps its rows.
fn wall_now() -> Timestamp {
    Timestamp::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
}

/// True when `p` is `base` or below it on whole components, in `base`'s separator style.
fn at_or_below(base: &str, p: &str) -> bool {
    let sep = crate::mapping::PathStyle::of(base).separator();
    let base = base.trim_end_matches(sep);
    p == base || (p.starts_with(base) && p[base.len()..].starts_with(sep))
}

impl StoreState {
    /// Adds a history line and prunes to the limits, as the SQLite store does.
    fn log(
        &mut self,
        event: Event,
        scope: Option<i64>,
        target: Option<String>,
        change: Change,
        detail: Option<String>,
    ) {
        self.log_took(event, scope, target, change, detail, None);
    }

    /// [`log`](Self::log) with the time from queued to confirmed.
    fn log_took(
        &mut self,
        event: Event,
        scope: Option<i64>,
        target: Option<String>,
        change: Change,
        detail: Option<String>,
        took: Option<u64>,
    ) {
        self.next_history += 1;
        let at = wall_now();
        let watch = scope
            .and_then(|s| usize::try_from(s - 1).ok())
            .and_then(|i| self.scopes.get(i).cloned());
        self.history.push_back(HistoryEntry {
            id: self.next_history,
            at,
            event,
            watch,
            target,
            change,
            detail,
            took,
        });
        let cutoff = at.minus(self.limits.max_age);
        while self
            .history
            .front()
            .is_some_and(|h| h.at < cutoff || self.history.len() as u64 > self.limits.max_rows)
        {
            self.history.pop_front();
        }
    }

    /// Counts `n` calls of `source` in `minute`, and forgets what is older than
    /// [`CALLS_KEPT`](crate::budget::CALLS_KEPT).
    fn count_calls(&mut self, source: &str, minute: i64, n: u64) {
        *self.calls.entry((source.to_owned(), minute)).or_default() += n;
        let keep = (crate::budget::CALLS_KEPT.as_secs() / 60) as i64;
        self.calls.retain(|(_, m), _| *m > minute - keep);
    }

    /// A history line for the queued scan `id` before it changes.
    fn log_queued(&mut self, id: i64, event: Event, detail: &str) {
        if let Some(q) = self.outbox.get(&id).cloned() {
            self.log(
                event,
                Some(q.scope),
                Some(q.scan.target),
                q.scan.change,
                Some(detail.to_owned()),
            );
        }
    }

    fn put_schedule(&mut self, scope: i64, path: &str, s: FolderSchedule) {
        let key = (scope, path.to_owned());
        if let Some(old) = self.schedules.insert(key, s) {
            self.due_index
                .remove(&(scope, old.next_due, path.to_owned()));
        }
        self.due_index.insert((scope, s.next_due, path.to_owned()));
    }

    fn remove_schedules(&mut self, scope: i64, root: &str) {
        for key in subtree_keys(&self.schedules, scope, root) {
            if let Some(old) = self.schedules.remove(&key) {
                self.due_index.remove(&(scope, old.next_due, key.1));
            }
        }
    }
}

fn subtree_keys<V>(
    folders: &BTreeMap<(i64, String), V>,
    scope: i64,
    root: &str,
) -> Vec<(i64, String)> {
    folders
        .range((scope, root.to_owned())..)
        .take_while(|((s, p), _)| *s == scope && (p.as_str() <= root || p.starts_with(root)))
        .filter(|((_, p), _)| path::is_at_or_under(p, root))
        .map(|(k, _)| k.clone())
        .collect()
}

impl MtimeStore for MemoryStore {
    fn scope(&self, source: &str, root: &str) -> Result<ScopeId> {
        let mut st = lock(&self.state);
        let key = (source.to_owned(), root.to_owned());
        if let Some(i) = st.scopes.iter().position(|s| *s == key) {
            return Ok(ScopeId(i as i64 + 1));
        }
        st.scopes.push(key);
        Ok(ScopeId(st.scopes.len() as i64))
    }

    fn fingerprints(&self, scope: ScopeId) -> Result<HashMap<String, Fingerprint>> {
        let st = lock(&self.state);
        Ok(st
            .folders
            .range((scope.0, String::new())..(scope.0 + 1, String::new()))
            .map(|((_, p), r)| (p.clone(), r.fingerprint))
            .collect())
    }

    fn folder(&self, scope: ScopeId, path: &str) -> Result<Option<FolderRecord>> {
        let st = lock(&self.state);
        Ok(st.folders.get(&(scope.0, path.to_owned())).cloned())
    }

    fn commit(&self, scope: ScopeId, commit: &Commit) -> Result<()> {
        let mut st = lock(&self.state);
        if st.pass_commits > 0 {
            st.pass_commits -= 1;
        } else if st.fail_commits > 0 {
            st.fail_commits -= 1;
            return Err(Error::new(
                ErrorKind::Unavailable,
                "injected commit failure",
            ));
        }
        for root in &commit.removed {
            for key in subtree_keys(&st.folders, scope.0, root) {
                st.folders.remove(&key);
            }
            st.remove_schedules(scope.0, root);
        }
        for (p, rec) in &commit.folders {
            st.folders.insert((scope.0, p.clone()), rec.clone());
        }
        for (p, sched) in &commit.schedules {
            st.put_schedule(scope.0, p, *sched);
        }
        for scan in &commit.scans {
            st.next_id += 1;
            let id = st.next_id;
            st.outbox.insert(
                id,
                Queued {
                    scan: QueuedScan {
                        id,
                        target: scan.target.clone(),
                        change: scan.change.clone(),
                        attempts: 0,
                        last_error: None,
                        next_try: None,
                        scope,
                        queued_at: wall_now(),
                    },
                    parked: false,
                    scope: scope.0,
                },
            );
        }
        for (c, origin) in &commit.changes {
            let detail = Some(origin.as_str().to_owned());
            st.log(Event::Change, Some(scope.0), None, c.clone(), detail);
        }
        Ok(())
    }

    fn forget(&self, scope: ScopeId, root: &str) -> Result<u64> {
        let mut st = lock(&self.state);
        let keys = subtree_keys(&st.folders, scope.0, root);
        for key in &keys {
            st.folders.remove(key);
        }
        st.remove_schedules(scope.0, root);
        Ok(keys.len() as u64)
    }

    fn schedules(&self, scope: ScopeId) -> Result<Vec<(String, FolderSchedule)>> {
        let st = lock(&self.state);
        Ok(st
            .schedules
            .range((scope.0, String::new())..(scope.0 + 1, String::new()))
            .map(|((_, p), s)| (p.clone(), *s))
            .collect())
    }

    fn schedule(&self, scope: ScopeId, path: &str) -> Result<Option<FolderSchedule>> {
        let st = lock(&self.state);
        Ok(st.schedules.get(&(scope.0, path.to_owned())).copied())
    }

    fn due_ranked(
        &self,
        scope: ScopeId,
        now: Timestamp,
        starved: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, FolderSchedule)>> {
        let st = lock(&self.state);
        let from = (scope.0, Timestamp::from_secs(i64::MIN), String::new());
        let mut due: Vec<(String, FolderSchedule)> = st
            .due_index
            .range(from..)
            .take_while(|(s, due, _)| *s == scope.0 && *due <= now)
            .filter_map(|(_, _, p)| {
                st.schedules
                    .get(&(scope.0, p.clone()))
                    .map(|s| (p.clone(), *s))
            })
            .collect();
        // The order the trait documents (the SQLite store's ORDER BY): evidence first,
        // then the starved ones (longest unlisted first), then the changes a listing is
        // expected to find, then oldest due, then path.
        let listed = |s: &FolderSchedule| s.listed.unwrap_or_else(|| s.next_due.minus(s.interval));
        let starving = |s: &FolderSchedule| starved.is_some_and(|t| listed(s) <= t);
        let key = |s: &FolderSchedule| {
            (
                s.force_refresh || s.evidence,
                starving(s),
                if starving(s) { listed(s).as_secs() } else { 0 },
                s.expected(now),
            )
        };
        due.sort_by(|(pa, a), (pb, b)| {
            let (ea, sa, la, xa) = key(a);
            let (eb, sb, lb, xb) = key(b);
            eb.cmp(&ea)
                .then(sb.cmp(&sa))
                .then(la.cmp(&lb))
                .then(xb.total_cmp(&xa))
                .then(a.next_due.cmp(&b.next_due))
                .then(pa.cmp(pb))
        });
        due.truncate(limit);
        Ok(due)
    }

    fn schedule_summary(
        &self,
        scope: ScopeId,
        now: Timestamp,
        window: std::time::Duration,
    ) -> Result<ScheduleSummary> {
        let st = lock(&self.state);
        let horizon = now.plus(window);
        let mut sum = ScheduleSummary::default();
        for s in st
            .schedules
            .range((scope.0, String::new())..(scope.0 + 1, String::new()))
            .map(|(_, s)| s)
        {
            sum.folders += 1;
            sum.due_now += u64::from(s.next_due <= now);
            sum.due_within += u64::from(s.next_due <= horizon);
            sum.longest_interval = sum.longest_interval.max(s.interval);
            sum.next_due = Some(sum.next_due.map_or(s.next_due, |d| d.min(s.next_due)));
            sum.forced += u64::from(s.force_refresh);
            sum.settling += u64::from(s.settling.is_some());
            let secs = s.interval.as_secs();
            let band = if secs == 0 {
                crate::schedule::BANDS.len()
            } else {
                crate::schedule::BANDS
                    .iter()
                    .position(|b| secs <= *b)
                    .unwrap_or(crate::schedule::BANDS.len())
            };
            sum.bands[band] += 1;
            sum.calls_per_day += if secs == 0 {
                1.0
            } else {
                86_400.0 / secs as f64
            };
        }
        Ok(sum)
    }

    fn pending(&self, target: &str, limit: usize) -> Result<Vec<QueuedScan>> {
        let st = lock(&self.state);
        Ok(st
            .outbox
            .values()
            .filter(|q| !q.parked && q.scan.target == target)
            .take(limit)
            .map(|q| q.scan.clone())
            .collect())
    }

    fn complete_confirming(
        &self,
        ids: &[i64],
        sent_as: &str,
        confirms: &[NewConfirm],
    ) -> Result<()> {
        let mut st = lock(&self.state);
        for c in confirms.iter().filter(|c| ids.contains(&c.scan)) {
            let Some(q) = st.outbox.get(&c.scan).cloned() else {
                continue;
            };
            st.confirms
                .retain(|_, (_, p)| !(p.target == q.scan.target && p.path == c.path));
            st.next_confirm += 1;
            let id = st.next_confirm;
            st.confirms.insert(
                id,
                (
                    q.scope,
                    PendingConfirm {
                        id,
                        target: q.scan.target.clone(),
                        change: q.scan.change.clone(),
                        path: c.path.clone(),
                        changed_at: q.scan.queued_at,
                        sent_at: c.sent_at,
                        next_check: c.next_check,
                        deadline: c.deadline,
                        checks: 0,
                        remedied: false,
                        note: None,
                        stuck: None,
                    },
                ),
            );
        }
        for id in ids {
            st.log_queued(*id, Event::Sent, sent_as);
            st.outbox.remove(id);
        }
        Ok(())
    }

    fn confirms_due(
        &self,
        target: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PendingConfirm>> {
        let st = lock(&self.state);
        let mut due: Vec<PendingConfirm> = st
            .confirms
            .values()
            .map(|(_, c)| c)
            .filter(|c| c.target == target && c.stuck.is_none() && c.next_check <= now)
            .cloned()
            .collect();
        due.sort_by_key(|c| (c.next_check, c.id));
        due.truncate(limit);
        Ok(due)
    }

    fn next_confirm(&self, target: &str) -> Result<Option<Timestamp>> {
        let st = lock(&self.state);
        Ok(st
            .confirms
            .values()
            .map(|(_, c)| c)
            .filter(|c| c.target == target && c.stuck.is_none())
            .map(|c| c.next_check)
            .min())
    }

    fn update_confirm(&self, c: &PendingConfirm) -> Result<()> {
        let mut st = lock(&self.state);
        if let Some((_, p)) = st.confirms.get_mut(&c.id)
            && p.stuck.is_none()
        {
            p.next_check = c.next_check;
            p.deadline = c.deadline;
            p.checks = c.checks;
            p.remedied = c.remedied;
            p.note = c.note.clone();
        }
        Ok(())
    }

    fn settle_confirm(&self, id: i64, outcome: &Outcome) -> Result<()> {
        let mut st = lock(&self.state);
        let Some((scope, c)) = st.confirms.get(&id).cloned() else {
            return Ok(());
        };
        let took = wall_now().since(c.changed_at).as_secs();
        let (event, detail, took) = match outcome {
            Outcome::Indexed(item) => {
                st.items
                    .insert((c.target.clone(), c.path.clone()), item.id.clone());
                (
                    Event::Indexed,
                    crate::confirm::indexed_detail(item),
                    Some(took),
                )
            }
            Outcome::Removed => {
                st.items
                    .retain(|(t, p), _| !(*t == c.target && at_or_below(&c.path, p)));
                (Event::Removed, c.path.clone(), Some(took))
            }
            Outcome::Stuck(reason) => (Event::Stuck, reason.clone(), None),
        };
        st.log_took(
            event,
            Some(scope),
            Some(c.target.clone()),
            c.change.clone(),
            Some(detail),
            took,
        );
        match outcome {
            Outcome::Stuck(reason) => {
                if let Some((_, p)) = st.confirms.get_mut(&id) {
                    p.stuck = Some(reason.clone());
                }
            }
            _ => {
                st.confirms.remove(&id);
            }
        }
        Ok(())
    }

    fn stuck(&self, target: &str) -> Result<Vec<PendingConfirm>> {
        let st = lock(&self.state);
        Ok(st
            .confirms
            .values()
            .map(|(_, c)| c)
            .filter(|c| c.target == target && c.stuck.is_some())
            .cloned()
            .collect())
    }

    fn retry_stuck(&self, target: Option<&str>) -> Result<u64> {
        let mut st = lock(&self.state);
        let ids: Vec<i64> = st
            .confirms
            .iter()
            .filter(|(_, (_, c))| c.stuck.is_some() && target.is_none_or(|t| c.target == t))
            .map(|(id, _)| *id)
            .collect();
        let now = wall_now();
        for id in &ids {
            let Some((scope, c)) = st.confirms.remove(id) else {
                continue;
            };
            st.next_id += 1;
            let qid = st.next_id;
            st.outbox.insert(
                qid,
                Queued {
                    scan: QueuedScan {
                        id: qid,
                        target: c.target,
                        change: c.change,
                        attempts: 0,
                        last_error: None,
                        next_try: None,
                        scope: ScopeId(scope),
                        queued_at: now,
                    },
                    parked: false,
                    scope,
                },
            );
        }
        Ok(ids.len() as u64)
    }

    fn known_items(&self, target: &str, path: &str) -> Result<Vec<String>> {
        let st = lock(&self.state);
        Ok(st
            .items
            .iter()
            .filter(|((t, p), _)| t == target && at_or_below(path, p))
            .map(|(_, id)| id.clone())
            .collect())
    }

    fn indexed_times(&self, target: &str, since: Timestamp) -> Result<Vec<u64>> {
        let st = lock(&self.state);
        let mut times: Vec<u64> = st
            .history
            .iter()
            .filter(|h| {
                h.event == Event::Indexed && h.target.as_deref() == Some(target) && h.at >= since
            })
            .filter_map(|h| h.took)
            .collect();
        times.sort_unstable();
        Ok(times)
    }

    fn record_failure(&self, ids: &[i64], error: &str, next_try: Timestamp) -> Result<()> {
        let mut st = lock(&self.state);
        for id in ids {
            st.log_queued(*id, Event::Retried, error);
            if let Some(q) = st.outbox.get_mut(id) {
                q.scan.attempts += 1;
                q.scan.last_error = Some(error.to_owned());
                q.scan.next_try = Some(next_try);
            }
        }
        Ok(())
    }

    fn park(&self, ids: &[i64], reason: &str) -> Result<()> {
        let mut st = lock(&self.state);
        for id in ids {
            st.log_queued(*id, Event::Parked, reason);
            let Some(q) = st.outbox.get_mut(id) else {
                continue;
            };
            q.parked = true;
            q.scan.last_error = Some(reason.to_owned());
            let (target, path) = (q.scan.target.clone(), q.scan.change.path.clone());
            st.outbox.retain(|other, o| {
                !(o.parked && *other < *id && o.scan.target == target && o.scan.change.path == path)
            });
        }
        Ok(())
    }

    fn parked(&self, target: &str) -> Result<Vec<QueuedScan>> {
        let st = lock(&self.state);
        Ok(st
            .outbox
            .values()
            .filter(|q| q.parked && q.scan.target == target)
            .map(|q| q.scan.clone())
            .collect())
    }

    fn failing(&self, target: &str, limit: usize) -> Result<Vec<QueuedScan>> {
        let st = lock(&self.state);
        Ok(st
            .outbox
            .values()
            .filter(|q| !q.parked && q.scan.target == target && q.scan.attempts > 0)
            .take(limit)
            .map(|q| q.scan.clone())
            .collect())
    }

    fn unpark(&self, target: Option<&str>) -> Result<u64> {
        let mut st = lock(&self.state);
        let mut n = 0;
        for q in st.outbox.values_mut() {
            if q.parked && target.is_none_or(|t| q.scan.target == t) {
                q.parked = false;
                q.scan.attempts = 0;
                q.scan.last_error = None;
                q.scan.next_try = None;
                n += 1;
            }
        }
        Ok(n)
    }

    fn drop_scans(&self, target: &str, path: Option<&str>) -> Result<u64> {
        let mut st = lock(&self.state);
        let gone: Vec<i64> = st
            .outbox
            .iter()
            .filter(|(_, q)| {
                q.scan.target == target
                    && path.is_none_or(|p| path::is_at_or_under(&q.scan.change.path, p))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            st.log_queued(*id, Event::Dropped, "dropped by hand");
            st.outbox.remove(id);
        }
        Ok(gone.len() as u64)
    }

    fn record_calls(&self, source: &str, at: Timestamp, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let minute = at.as_secs().div_euclid(60);
        let mut st = lock(&self.state);
        st.count_calls(source, minute, n);
        Ok(())
    }

    fn calls_since(&self, source: &str, since: Timestamp) -> Result<u64> {
        let from = since.as_secs().div_euclid(60);
        let st = lock(&self.state);
        Ok(st
            .calls
            .range((source.to_owned(), from)..=(source.to_owned(), i64::MAX))
            .map(|(_, n)| n)
            .sum())
    }

    fn calls_by_hour(&self, source: &str, now: Timestamp, hours: usize) -> Result<Vec<u64>> {
        let last = now.as_secs().div_euclid(3600);
        let first = last - hours as i64 + 1;
        let mut out = vec![0u64; hours];
        let st = lock(&self.state);
        for ((_, minute), n) in st
            .calls
            .range((source.to_owned(), first * 60)..=(source.to_owned(), i64::MAX))
        {
            if let Some(slot) = usize::try_from(minute.div_euclid(60) - first)
                .ok()
                .and_then(|i| out.get_mut(i))
            {
                *slot += n;
            }
        }
        Ok(out)
    }

    fn take_call(&self, source: &str, now: f64, limits: &CallLimits) -> Result<Grant> {
        let mut st = lock(&self.state);
        let bucket = st
            .buckets
            .get(source)
            .copied()
            .unwrap_or_else(|| Bucket::full(limits, now));
        let cur = budget::minute_of(now);
        let count = |w: i64| -> (u64, u64) {
            let whole = st
                .calls
                .range((source.to_owned(), cur - w + 1)..=(source.to_owned(), i64::MAX))
                .map(|(_, n)| n)
                .sum();
            let edge = st
                .calls
                .get(&(source.to_owned(), cur - w))
                .copied()
                .unwrap_or(0);
            (whole, edge)
        };
        let [m, h, d] = budget::WINDOW_MINUTES;
        let windows = Windows {
            minute: count(m),
            hour: count(h),
            day: count(d),
        };
        let (grant, bucket) = budget::decide(limits, bucket, windows, now);
        if grant == Grant::Now {
            st.buckets.insert(source.to_owned(), bucket);
            st.count_calls(source, cur, 1);
        }
        Ok(grant)
    }

    fn pause_calls(&self, source: &str, until: f64) -> Result<()> {
        let mut st = lock(&self.state);
        let b = st.buckets.entry(source.to_owned()).or_insert(Bucket {
            tokens: 1.0,
            at: until,
            paused_until: 0.0,
        });
        b.paused_until = b.paused_until.max(until);
        Ok(())
    }

    fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryEntry>> {
        let st = lock(&self.state);
        Ok(st
            .history
            .iter()
            .rev()
            .filter(|h| {
                q.target
                    .as_ref()
                    .is_none_or(|t| h.target.as_ref() == Some(t))
                    && q.path
                        .as_ref()
                        .is_none_or(|p| h.change.path.contains(p.as_str()))
                    && q.source
                        .as_ref()
                        .is_none_or(|s| h.watch.as_ref().is_some_and(|(src, _)| src == s))
                    && q.since.is_none_or(|t| h.at >= t)
                    && q.before.is_none_or(|b| h.id < b)
                    && (q.events.is_empty() || q.events.contains(&h.event))
            })
            .take(q.limit)
            .cloned()
            .collect())
    }

    fn log_event(
        &self,
        scope: Option<ScopeId>,
        event: Event,
        path: &str,
        detail: &str,
    ) -> Result<()> {
        let mut st = lock(&self.state);
        st.log(
            event,
            scope.map(|s| s.0),
            None,
            Change::new(path, crate::types::Update::Modified, true),
            Some(detail.to_owned()),
        );
        Ok(())
    }

    fn history_after(&self, after: i64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let st = lock(&self.state);
        Ok(st
            .history
            .iter()
            .filter(|h| h.id > after)
            .take(limit)
            .cloned()
            .collect())
    }

    fn last_history_id(&self) -> Result<i64> {
        Ok(lock(&self.state).history.back().map_or(0, |h| h.id))
    }

    fn notifier(&self, name: &str) -> Result<Option<NotifierState>> {
        Ok(lock(&self.state).notifiers.get(name).cloned())
    }

    fn save_notifier(&self, name: &str, state: &NotifierState) -> Result<()> {
        lock(&self.state)
            .notifiers
            .insert(name.to_owned(), state.clone());
        Ok(())
    }

    fn replace_scope(&self, into: ScopeId, from: ScopeId, keep: &[String]) -> Result<()> {
        let mut st = lock(&self.state);
        let kept: Vec<&String> = keep
            .iter()
            .filter(|k| k.as_str() != "/" && st.folders.contains_key(&(into.0, (*k).clone())))
            .collect();
        for k in &kept {
            for key in subtree_keys(&st.folders, from.0, k) {
                st.folders.remove(&key);
            }
            st.remove_schedules(from.0, k);
            for (_, p) in subtree_keys(&st.folders, into.0, k) {
                if let Some(r) = st.folders.remove(&(into.0, p.clone())) {
                    st.folders.insert((from.0, p), r);
                }
            }
            for (_, p) in subtree_keys(&st.schedules, into.0, k) {
                if let Some(s) = st.schedules.get(&(into.0, p.clone())).copied() {
                    st.put_schedule(from.0, &p, s);
                }
            }
        }
        for key in subtree_keys(&st.folders, into.0, "/") {
            st.folders.remove(&key);
        }
        st.remove_schedules(into.0, "/");
        for (_, p) in subtree_keys(&st.folders, from.0, "/") {
            if let Some(r) = st.folders.remove(&(from.0, p.clone())) {
                st.folders.insert((into.0, p), r);
            }
        }
        for (_, p) in subtree_keys(&st.schedules, from.0, "/") {
            if let Some(s) = st.schedules.get(&(from.0, p.clone())).copied() {
                st.put_schedule(into.0, &p, s);
            }
        }
        st.remove_schedules(from.0, "/");
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats> {
        let st = lock(&self.state);
        let mut stats = StoreStats::default();
        for (i, (source, root)) in st.scopes.iter().enumerate() {
            let id = i as i64 + 1;
            let n = st.folders.keys().filter(|(s, _)| *s == id).count() as u64;
            stats
                .scopes
                .push((ScopeId(id), source.clone(), root.clone(), n));
        }
        let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for q in st.outbox.values() {
            let e = per.entry(q.scan.target.clone()).or_default();
            if q.parked {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
        stats.outbox = per.into_iter().map(|(t, (a, b))| (t, a, b)).collect();
        let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (_, c) in st.confirms.values() {
            let e = per.entry(c.target.clone()).or_default();
            if c.stuck.is_some() {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
        stats.confirms = per.into_iter().map(|(t, (a, b))| (t, a, b)).collect();
        Ok(stats)
    }
}

/// A target in memory: records every request it accepts, and answers from a script.
///
/// Scripted answers are taken one per request, in order; when the script is empty every
/// request is accepted. Clones share the same record and script.
#[derive(Debug, Clone)]
pub struct MemoryTarget {
    caps: Capabilities,
    libraries: Arc<Mutex<Vec<Library>>>,
    received: Arc<Mutex<Vec<ScanRequest>>>,
    script: Arc<Mutex<VecDeque<Option<Error>>>>,
    calls: Arc<AtomicU64>,
    confirming: Arc<Mutex<Option<ConfirmModel>>>,
    /// Library listings fail as a server that is down (temporarily) when set.
    unreachable: Arc<std::sync::atomic::AtomicBool>,
}

/// How a [`MemoryTarget`] answers confirmations: a library index the test fills, and
/// what a remedy does.
#[derive(Debug, Default)]
struct ConfirmModel {
    plan: Option<ConfirmPlan>,
    /// Item path to (id, title).
    index: BTreeMap<String, (String, String)>,
    /// Paths that appear in the index when a remedy runs.
    on_remedy: Vec<(String, String, String)>,
    lookups: u64,
    remedies: Vec<String>,
    down: bool,
}

impl MemoryTarget {
    /// A target with the given capabilities and no libraries.
    pub fn new(caps: Capabilities) -> Self {
        MemoryTarget {
            caps,
            libraries: Arc::default(),
            received: Arc::default(),
            script: Arc::default(),
            calls: Arc::default(),
            confirming: Arc::default(),
            unreachable: Arc::default(),
        }
    }

    /// Makes every call fail as a server that cannot be reached (`true`), or answer
    /// again: the library listing fails with a temporary error.
    pub fn set_unreachable(&self, down: bool) {
        self.unreachable.store(down, Ordering::SeqCst);
    }

    /// Makes the target confirm scans with `plan`, answering from an index the test
    /// fills with [`index`](Self::index) (the server "indexing" an item).
    pub fn confirming(self, plan: ConfirmPlan) -> Self {
        lock(&self.confirming)
            .get_or_insert_with(Default::default)
            .plan = Some(plan);
        self
    }

    /// Puts an item at `path` into the modelled library.
    pub fn index(&self, path: &str, id: &str, title: &str) {
        let mut m = lock(&self.confirming);
        let m = m.get_or_insert_with(Default::default);
        m.index
            .insert(path.to_owned(), (id.to_owned(), title.to_owned()));
    }

    /// Removes the item at `path` from the modelled library.
    pub fn unindex(&self, path: &str) {
        if let Some(m) = lock(&self.confirming).as_mut() {
            m.index.remove(path);
        }
    }

    /// Makes a remedy put an item at `path` into the library.
    pub fn index_on_remedy(&self, path: &str, id: &str, title: &str) {
        let mut m = lock(&self.confirming);
        let m = m.get_or_insert_with(Default::default);
        m.on_remedy
            .push((path.to_owned(), id.to_owned(), title.to_owned()));
    }

    /// Makes lookups fail as an unreachable server would (`true`) or answer again.
    pub fn set_down(&self, down: bool) {
        lock(&self.confirming)
            .get_or_insert_with(Default::default)
            .down = down;
    }

    /// Lookup calls made so far (one per `confirm` call, however many requests).
    pub fn lookups(&self) -> u64 {
        lock(&self.confirming).as_ref().map_or(0, |m| m.lookups)
    }

    /// The paths remedies ran for, in order.
    pub fn remedies(&self) -> Vec<String> {
        lock(&self.confirming)
            .as_ref()
            .map_or_else(Vec::new, |m| m.remedies.clone())
    }

    /// Replaces the libraries it reports.
    pub fn set_libraries(&self, libraries: Vec<Library>) {
        *lock(&self.libraries) = libraries;
    }

    /// Queues answers for the next requests: `None` accepts, `Some(err)` fails.
    pub fn script(&self, answers: impl IntoIterator<Item = Option<Error>>) {
        lock(&self.script).extend(answers);
    }

    /// Every request accepted so far.
    pub fn received(&self) -> Vec<ScanRequest> {
        lock(&self.received).clone()
    }

    /// Takes and clears the accepted requests.
    pub fn take_received(&self) -> Vec<ScanRequest> {
        std::mem::take(&mut *lock(&self.received))
    }

    /// How many `scan` calls were made (accepted or not).
    pub fn scan_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ScanTarget for MemoryTarget {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    async fn libraries(&self) -> Result<Vec<Library>> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(
                Error::new(ErrorKind::Unavailable, "cannot connect to the server").temporary(),
            );
        }
        Ok(lock(&self.libraries).clone())
    }

    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        if requests.is_empty() {
            return Vec::new();
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity(requests.len());
        for req in requests {
            let answer = lock(&self.script).pop_front().flatten();
            match answer {
                None => {
                    lock(&self.received).push(req.clone());
                    out.push(Ok(()));
                }
                Some(err) => out.push(Err(err)),
            }
        }
        out
    }

    fn confirm_plan(&self) -> Option<ConfirmPlan> {
        lock(&self.confirming).as_ref().and_then(|m| m.plan.clone())
    }

    async fn confirm(&self, requests: &[ConfirmRequest]) -> Vec<Result<Lookup>> {
        let mut guard = lock(&self.confirming);
        let Some(m) = guard.as_mut() else {
            return requests
                .iter()
                .map(|_| Err(Error::new(ErrorKind::Unsupported, "not confirming")))
                .collect();
        };
        if requests.is_empty() {
            return Vec::new();
        }
        m.lookups += 1;
        requests
            .iter()
            .map(|r| {
                if m.down {
                    return Err(Error::new(ErrorKind::Unavailable, "connection refused"));
                }
                let items = m
                    .index
                    .iter()
                    .filter(|(p, _)| crate::confirm::same_or_below(&r.path, p, r.is_dir))
                    .map(|(p, (id, title))| Item {
                        id: id.clone(),
                        title: title.clone(),
                        path: p.clone(),
                    })
                    .collect();
                Ok(Lookup::found(items))
            })
            .collect()
    }

    async fn remedy(&self, request: &ConfirmRequest) -> Result<Remedy> {
        let mut guard = lock(&self.confirming);
        let Some(m) = guard.as_mut() else {
            return Err(Error::new(ErrorKind::Unsupported, "not confirming"));
        };
        m.remedies.push(request.path.clone());
        for (p, id, title) in std::mem::take(&mut m.on_remedy) {
            m.index.insert(p, (id, title));
        }
        Ok(Remedy::Done(format!("refreshed {:?}", request.path)))
    }
}
