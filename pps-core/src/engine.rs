//! The engine: passes over watched trees, and delivery from the outbox.
//!
//! A **pass** lists a watch's folders with bounded concurrency, starting at the root.
//! Each fresh listing is fingerprinted; only a folder whose fingerprint differs from
//! the stored one has its stored listing loaded and diffed into exact [`Change`]s. A
//! folder's new state and the scans its changes cause go into the store in the same
//! atomic commit (commits are batched, never split across a folder).
//!
//! A **scheduled pass** ([`Engine::pass_due`]) lists only the folders whose next-due
//! time has come, best first (the root, then evidence of a change, then the changes a
//! listing is expected to find), never more than the calls it is given; see
//! [`crate::schedule`] for the rules. A full pass keeps every folder's schedule current
//! too, so the two mix freely. [`Engine::run_scheduled`] is the service's loop of
//! scheduled passes within a source's [`PassBudget`].
//!
//! **Delivery** runs per target: it takes the target's queued scans, plans them
//! ([`crate::plan`]), sends them, and removes a scan from the outbox only when the target
//! accepted the request covering it. Temporary failures back off exponentially;
//! permanent ones are parked with their reason. Targets never wait on each other.

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::PathMapping;
use crate::path::{self, Excludes};
use crate::schedule::{Schedule, ScheduleSummary};
use crate::source::{DirectorySource, Hint};
use crate::store::{Commit, MtimeStore, Origin, ScopeId};
use crate::target::ScanTarget;
use crate::types::Change;
mod confirm;
mod delivery;
mod pass;
mod scheduled;

pub use confirm::{CONFIRM_BATCH, CONFIRM_PACE, CONFIRM_RETRY, ConfirmReport, human};
pub use delivery::DeliveryReport;
pub use pass::Comparison;
pub use scheduled::{PASS_SECONDS, PassBudget, SparePolicy};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One watched tree: a root folder of a named source, what to leave out, and which
/// targets hear about its changes.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The name the source was registered under.
    pub source: String,
    /// The watched root, a normalised source path.
    pub root: String,
    /// What to leave out.
    pub excludes: Excludes,
    /// Target names; empty means every target.
    pub targets: Vec<String>,
    /// Base interval, ceiling and settle time of its folders.
    pub schedule: Schedule,
}

impl Watch {
    /// A watch of `root` on `source` with no excludes, for every target.
    pub fn new(source: impl Into<String>, root: &str) -> Result<Self> {
        Ok(Watch {
            source: source.into(),
            root: path::normalize(root)?,
            excludes: Excludes::default(),
            targets: Vec::new(),
            schedule: Schedule::default(),
        })
    }

    /// The same watch with another schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// `source:root`, as shown to users.
    pub fn label(&self) -> String {
        format!("{}:{}", self.source, self.root)
    }
}

/// A registered target: the target itself, its path mapping, and whether it gets file
/// paths.
#[derive(Clone)]
pub struct TargetSpec {
    /// The target's name.
    pub name: String,
    /// The target.
    pub target: Arc<dyn ScanTarget>,
    /// Source path to target path.
    pub mapping: PathMapping,
    /// Send file paths (when the target can take them). `false` turns a file-capable
    /// target into a folder-only one (the first system's `isfile_based_scanning: false`).
    pub scan_files: bool,
    /// Confirm that accepted scans were indexed, when the target can
    /// ([`ScanTarget::confirm_plan`]). On by default.
    pub confirm: bool,
    /// When a missing item is called stuck, counted from the scan; `None` takes the
    /// target's own default ([`crate::ConfirmPlan::deadline`]).
    pub confirm_deadline: Option<Duration>,
}

impl fmt::Debug for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetSpec")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("mapping", &self.mapping)
            .field("scan_files", &self.scan_files)
            .field("confirm", &self.confirm)
            .field("confirm_deadline", &self.confirm_deadline)
            .finish()
    }
}

impl TargetSpec {
    /// A target with no path mapping that gets file paths when it can take them.
    pub fn new(name: impl Into<String>, target: Arc<dyn ScanTarget>) -> Self {
        TargetSpec {
            name: name.into(),
            target,
            mapping: PathMapping::default(),
            scan_files: true,
            confirm: true,
            confirm_deadline: None,
        }
    }

    fn scans_files(&self) -> bool {
        self.scan_files && self.target.capabilities().scans_files
    }
}

/// Tuning of passes and delivery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Listings in flight at once per pass.
    pub concurrency: usize,
    /// Folders per store commit. Larger batches baseline faster; each folder's state
    /// and its scans always share a commit.
    pub commit_batch: usize,
    /// A watched root that lists empty or missing while the store knows at least this
    /// many children is an outage, not a deletion. One by default: an unmounted drive
    /// whose root held a single `TV/` is exactly the case the guard exists for.
    pub outage_min_children: usize,
    /// Queued scans taken per delivery round.
    pub delivery_batch: usize,
    /// First backoff after a temporary delivery failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            concurrency: 8,
            commit_batch: 512,
            outage_min_children: 1,
            delivery_batch: 1000,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// `source:root` of the watch.
    pub watch: String,
    /// True when this pass recorded the first baseline (and scanned nothing).
    pub baseline: bool,
    /// Listing calls made.
    pub folders_listed: u64,
    /// Folders whose listing differed from the stored one.
    pub folders_changed: u64,
    /// Every change found, in the order found.
    pub changes: Vec<Change>,
    /// Scans added to the outbox (one per change per target).
    pub scans_queued: u64,
    /// Scheduled passes: folders that were due when the pass began (up to its budget).
    pub folders_due: u64,
    /// Folders made due at once: created, or their entry moved in a listed parent, or
    /// their parent lost them.
    pub folders_promoted: u64,
    /// Of those, folders left due for a later pass because the budget was spent.
    pub folders_deferred: u64,
    /// Folders listed before they were due, with budget the due ones left unused.
    pub folders_spare: u64,
    /// Folders whose change is held back by the settle time.
    pub folders_settling: u64,
    /// Folders that could not be listed; each kept its old state.
    pub errors: Vec<Error>,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

/// The longest path a hint may name, in bytes: the platform's `PATH_MAX`. Anything
/// longer names no real folder, and resolving it would only cost time.
pub const MAX_HINT_BYTES: usize = 4096;

/// The deepest path a hint may name, in components.
pub const MAX_HINT_DEPTH: usize = 256;

fn check_hint_path(p: &str) -> Result<()> {
    let depth = p.split('/').filter(|c| !c.is_empty()).count();
    if p.len() > MAX_HINT_BYTES || depth > MAX_HINT_DEPTH {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "the path is {} bytes and {depth} components long; a hint may name at most {MAX_HINT_BYTES} bytes and {MAX_HINT_DEPTH} components",
                p.len()
            ),
        )
        .permanent());
    }
    Ok(())
}

/// The source-name prefix of the staging scope a re-index writes into; no configured
/// source name starts with a control character.
pub(crate) const STAGING: &str = "\u{1}staging:";

/// Progress of a pass, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Folders listed so far.
    pub listed: u64,
    /// Folders waiting to be listed.
    pub queued: u64,
    /// Changes found so far.
    pub changes: u64,
}

type ProgressFn = Arc<dyn Fn(&str, Progress) + Send + Sync>;

/// Passes and delivery over one store, named sources and named targets.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn MtimeStore>,
    sources: HashMap<String, Arc<dyn DirectorySource>>,
    targets: Vec<TargetSpec>,
    options: EngineOptions,
    progress: Option<ProgressFn>,
    clock: Arc<dyn Clock>,
    /// Per watch scope, the folders ranked for spare listings and when they were
    /// ranked: re-ranked at most every [`SPARE_RERANK`], since ranking reads every
    /// schedule of the watch.
    spare: Arc<std::sync::Mutex<HashMap<ScopeId, Ranking>>>,
}

/// Folders ranked for spare listings, best first, and when they were ranked.
pub(crate) type Ranking = (Timestamp, VecDeque<String>);

/// How often spare candidates are ranked anew.
pub const SPARE_RERANK: Duration = Duration::from_secs(60);

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("targets", &self.targets)
            .field("options", &self.options)
            .field("clock", &self.clock)
            .finish()
    }
}

impl Engine {
    /// An engine over `store` with no sources or targets yet.
    pub fn new(store: Arc<dyn MtimeStore>) -> Self {
        Engine {
            store,
            sources: HashMap::new(),
            targets: Vec::new(),
            options: EngineOptions::default(),
            progress: None,
            clock: Arc::new(SystemClock),
            spare: Arc::default(),
        }
    }

    /// Replaces the clock schedules are computed with (the system clock by default);
    /// tests and simulations pass a [`ManualClock`](crate::ManualClock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Registers a source under `name`.
    pub fn with_source(
        mut self,
        name: impl Into<String>,
        source: Arc<dyn DirectorySource>,
    ) -> Self {
        self.sources.insert(name.into(), source);
        self
    }

    /// Registers a target.
    pub fn with_target(mut self, spec: TargetSpec) -> Self {
        // A name registered again replaces the first: one name, one target.
        self.targets.retain(|t| t.name != spec.name);
        self.targets.push(spec);
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// Calls `f(watch label, progress)` after every listing of a pass.
    pub fn with_progress(mut self, f: impl Fn(&str, Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MtimeStore> {
        &self.store
    }

    /// The registered targets.
    pub fn targets(&self) -> &[TargetSpec] {
        &self.targets
    }

    /// The options in force.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Makes the folder a hint names due now, to be listed with `force_refresh`; the
    /// mark is committed to the store at once, so a crash does not lose it.
    ///
    /// `path` may name a file, a folder, or something pps has not seen: the nearest
    /// folder at or above it that has a schedule is marked (the listing of the parent
    /// is what reveals a new or deleted child). Returns the folder marked, or `None`
    /// when `path` is outside the watch or the watch has no baseline yet. `by` says who
    /// asked (a push event, a webhook): the history gives it as the origin of what the
    /// listing finds.
    ///
    /// # Errors
    /// A path longer than [`MAX_HINT_BYTES`] or deeper than [`MAX_HINT_DEPTH`] is a
    /// `ConfigInvalid` error naming the bound (it names no real folder); store failures.
    pub fn hint(&self, watch: &Watch, path: &str, by: Origin) -> Result<Option<String>> {
        Ok(self
            .hint_paths(watch, &[path.to_owned()], by)?
            .into_iter()
            .next()
            .flatten())
    }

    /// [`hint`](Self::hint) for many paths at once: each path's nearest known folder
    /// found in one store query, and every mark written in one commit, so a webhook
    /// naming 10,000 files costs one commit, not 10,000. Returns, per path, the folder
    /// marked.
    pub fn hint_paths(
        &self,
        watch: &Watch,
        paths: &[String],
        by: Origin,
    ) -> Result<Vec<Option<String>>> {
        let scope = self.store.scope(&watch.source, &watch.root)?;
        let now = self.clock.now();
        let mut marked: Vec<Option<String>> = Vec::with_capacity(paths.len());
        let mut commit = Commit::default();
        let mut seen: HashSet<String> = HashSet::new();
        for p in paths {
            check_hint_path(p)?;
            let Ok(p) = path::normalize(p) else {
                marked.push(None);
                continue;
            };
            if !path::is_at_or_under(&p, &watch.root) {
                marked.push(None);
                continue;
            }
            // The path and its ancestors down to the root, shortest first.
            let mut chain = vec![p.clone()];
            let mut at = p.as_str();
            while at != watch.root {
                match path::parent(at) {
                    Some(parent) => {
                        chain.push(parent.to_owned());
                        at = parent;
                    }
                    None => break,
                }
            }
            chain.reverse();
            match self.store.nearest_schedule(scope, &chain)? {
                Some((folder, s)) => {
                    if seen.insert(folder.clone()) {
                        commit.schedules.push((folder.clone(), s.hinted(now, by)));
                    }
                    marked.push(Some(folder));
                }
                None => marked.push(None),
            }
        }
        self.store.commit(scope, &commit)?;
        Ok(marked)
    }

    /// [`hint`](Self::hint) for a source's push event: its path and, for a rename, its
    /// new path. Returns the folders marked.
    pub fn hint_event(&self, watch: &Watch, hint: &Hint) -> Result<Vec<String>> {
        let mut marked = Vec::new();
        for p in std::iter::once(&hint.path).chain(hint.new_path.as_ref()) {
            if let Some(m) = self.hint(watch, p, Origin::Push)?
                && !marked.contains(&m)
            {
                marked.push(m);
            }
        }
        Ok(marked)
    }

    /// The schedule of `watch` now, for `status`: folders due now and within `window`,
    /// the longest current interval, the earliest due time (when the service loop
    /// next has work).
    pub fn schedule_summary(&self, watch: &Watch, window: Duration) -> Result<ScheduleSummary> {
        let scope = self.store.scope(&watch.source, &watch.root)?;
        self.store.schedule_summary(scope, self.clock.now(), window)
    }

    fn target(&self, name: &str) -> Result<&TargetSpec> {
        self.targets.iter().find(|t| t.name == name).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "no target of that name is configured",
            )
            .with("target", name)
        })
    }
}
