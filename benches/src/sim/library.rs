//! What a simulated library is: a tree in a `MemorySource` with a real library's history
//! in its mtimes, the watches over it and their schedule, the call budget, and the
//! changes a generator makes to it second by second.

use pps_core::memory::MemorySource;
use pps_core::path::{is_at_or_under, parent};
use pps_core::{Entry, Mtime, Schedule};
use std::collections::{BTreeMap, HashMap};

/// A day in seconds.
pub const DAY: i64 = 86_400;
/// The start: the baseline is recorded at this second, the measured period begins the
/// next one.
pub const T0: i64 = 1_800_000_000;
/// A change is *active* when the folder that shows it had another change in the 48
/// hours before (history before the start included), otherwise *cold*.
pub const ACTIVE_WINDOW: i64 = 2 * DAY;

/// A call budget: `calls` listings per `per_secs` seconds. 115's 0.9 a second is 9 per 10
/// seconds; whole numbers keep `CallBudget` exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Listings per window.
    pub calls: u64,
    /// The window in seconds.
    pub per_secs: u64,
}

impl Rate {
    /// Listings a second, R in the optimum.
    pub fn per_second(self) -> f64 {
        self.calls as f64 / self.per_secs as f64
    }

    /// The most listings allowed in any one second: the rate rounded up, what the source's
    /// rate limit layer lets through (0.9 a second is one call in a second, never two).
    pub fn cap_per_second(self) -> u64 {
        self.calls.div_ceil(self.per_secs).max(1)
    }
}

/// How a kind of change counts towards the goals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// A new title in a folder where titles land (a watch root, a genre, a TV region):
    /// goal p95 <= base interval + 1 minute.
    NewTitle,
    /// An airing show's episode or its subtitles: goal p95 <= 5 minutes while the show
    /// is active.
    Show,
    /// Everything else (edits, deletions, renames, metadata of a new title).
    Other,
}

/// A kind of change, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind {
    /// The goal it counts towards; tables are sorted by it first.
    pub class: Class,
    /// What the report calls it.
    pub name: &'static str,
}

impl Kind {
    /// A kind of change.
    pub const fn new(name: &'static str, class: Class) -> Self {
        Kind { class, name }
    }
}

/// One operation on the tree.
#[derive(Debug, Clone)]
pub enum Op {
    /// Writes a file of that size (creating parent folders).
    Write(String, u64),
    /// Removes a file or a folder with everything under it.
    Remove(String),
    /// Moves a file or folder.
    Rename(String, String),
}

/// One change to the library at a time, and the path whose reported change finds it.
#[derive(Debug, Clone)]
pub struct Event {
    /// When it is made (virtual seconds).
    pub t: i64,
    /// What it does to the tree.
    pub ops: Vec<Op>,
    /// The path whose reported change (at or above it) finds it; its parent is the
    /// folder whose listing shows it ([`shown_by`]).
    pub path: String,
    /// Its kind.
    pub kind: Kind,
    /// When the generator picked the folder at random from a pool (an old film getting
    /// subtitles), the pool's index in [`Library::pools`]: the change's rate is spread
    /// over the pool, not given to the one folder it happened to land in.
    pub pool: Option<usize>,
}

/// Folders a generator picks from at random, with the probability of each (summing to
/// one): a pooled change's true rate is the pool's rate times that probability.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    /// Each folder that shows a pooled change, with its probability.
    pub folders: Vec<(String, f64)>,
}

impl Pool {
    /// Every folder equally likely.
    pub fn uniform(folders: impl IntoIterator<Item = String>) -> Self {
        let folders: Vec<String> = folders.into_iter().collect();
        let p = 1.0 / folders.len().max(1) as f64;
        Pool {
            folders: folders.into_iter().map(|f| (f, p)).collect(),
        }
    }
}

/// A simulated library, ready to run.
#[derive(Debug)]
pub struct Library {
    /// Its name on the command line and in file names: busy, quiet, saturated.
    pub name: &'static str,
    /// The report's heading.
    pub title: String,
    /// The report's paragraph on its shape and changes (markdown).
    pub description: String,
    /// The tree, with the history in its mtimes.
    pub source: MemorySource,
    /// The watch roots (one source, one budget shared by the watches).
    pub roots: Vec<String>,
    /// Every watch's schedule.
    pub schedule: Schedule,
    /// The source's call budget.
    pub rate: Rate,
    /// The measured period in seconds, from `T0 + 1`.
    pub measured: i64,
    /// Quiet time after it, so that every change can be found.
    pub tail: i64,
    /// The last change before the start, per folder that shows it.
    pub history: HashMap<String, i64>,
    /// The changes, in time order.
    pub events: Vec<Event>,
    /// The pools of randomly placed changes.
    pub pools: Vec<Pool>,
    /// Folders under the roots in walk order (breadth first), for the walking strategies.
    pub order: Vec<String>,
}

impl Library {
    /// The measured period as a range of virtual seconds.
    pub fn measured_range(&self) -> std::ops::Range<i64> {
        T0..T0 + self.measured
    }

    /// Whether each event is active ([`ACTIVE_WINDOW`]), in event order.
    pub fn classify(&self) -> Vec<bool> {
        let mut last = self.history.clone();
        self.events
            .iter()
            .map(|e| {
                let f = shown_by(&e.path);
                let active = last.get(&f).is_some_and(|t| e.t - t <= ACTIVE_WINDOW);
                last.insert(f, e.t);
                active
            })
            .collect()
    }
}

/// Applies one operation to the tree.
pub fn apply(src: &MemorySource, op: &Op) {
    match op {
        Op::Write(p, size) => src.write_file(p, *size),
        Op::Remove(p) => src.remove(p),
        Op::Rename(a, b) => src.rename(a, b),
    }
}

/// The folder whose listing shows an event.
pub fn shown_by(path: &str) -> String {
    parent(path).unwrap_or("/").to_owned()
}

/// An mtime at a virtual second.
pub fn mt(t: i64) -> Option<Mtime> {
    Some(Mtime::from_nanos(t * 1_000_000_000))
}

/// Every folder's listing, as `MemorySource::from_listings` takes them.
pub type Listings = Vec<(String, Vec<Entry>)>;

/// Files per folder with their mtimes; folders get the mtime of their newest child.
/// Builds a large tree with a history far faster than writing file by file.
#[derive(Debug, Default)]
pub struct Builder {
    files: BTreeMap<String, Vec<Entry>>,
    history: HashMap<String, i64>,
}

impl Builder {
    /// A file written at `t`.
    pub fn file(&mut self, path: &str, size: u64, t: i64) {
        let folder = shown_by(path);
        let name = path.rsplit('/').next().unwrap_or(path);
        self.files
            .entry(folder.clone())
            .or_default()
            .push(Entry::file(name, size, mt(t)));
        let h = self.history.entry(folder).or_insert(t);
        *h = (*h).max(t);
    }

    /// An empty folder.
    pub fn folder(&mut self, path: &str) {
        self.files.entry(path.to_owned()).or_default();
    }

    /// Folders so far.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no folder yet.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every folder's listing: its files, and its subfolders with their newest mtime.
    fn listings(mut self) -> (Listings, HashMap<String, i64>) {
        let mut paths: Vec<String> = self.files.keys().cloned().collect();
        // Parents of every folder exist too.
        for p in paths.clone() {
            let mut at = p.as_str();
            while let Some(parent) = parent(at) {
                if parent == "/" {
                    break;
                }
                if !self.files.contains_key(parent) {
                    self.files.insert(parent.to_owned(), Vec::new());
                    paths.push(parent.to_owned());
                }
                at = parent;
            }
        }
        // Deepest first, so a folder's newest mtime is known before its parent's.
        paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        let mut newest: HashMap<String, i64> = HashMap::new();
        for p in &paths {
            let own = self.files[p]
                .iter()
                .filter_map(|e| e.mtime.map(|m| m.to_timestamp().as_secs()))
                .max()
                .unwrap_or(T0 - 10 * 365 * DAY);
            let n = newest.get(p).copied().unwrap_or(i64::MIN).max(own);
            newest.insert(p.clone(), n);
            if let Some(par) = parent(p)
                && par != "/"
            {
                let name = p.rsplit('/').next().unwrap_or(p).to_owned();
                self.files
                    .get_mut(par)
                    .expect("parent added")
                    .push(Entry::dir(name, mt(n)));
                let e = newest.entry(par.to_owned()).or_insert(n);
                *e = (*e).max(n);
            }
        }
        (self.files.into_iter().collect(), self.history)
    }

    /// The tree as a source, the folders under `roots` in walk order (by depth, then by
    /// path), and the last change before the start per folder.
    pub fn finish(self, roots: &[String]) -> (MemorySource, Vec<String>, HashMap<String, i64>) {
        let (listings, history) = self.listings();
        let mut order: Vec<String> = listings
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| roots.iter().any(|r| is_at_or_under(p, r)))
            .collect();
        order.sort_by(|a, b| (a.matches('/').count(), a).cmp(&(b.matches('/').count(), b)));
        (MemorySource::from_listings(listings), order, history)
    }
}
