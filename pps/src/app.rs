//! From a validated [`Config`] to a running engine: sources, targets, watches.

use crate::config::{Config, SourceConfig, TargetConfig, TargetKind, WatchConfig};
use pps_clouddrive::CloudDrive;
use pps_core::local::LocalSource;
use pps_core::sqlite::{SqliteStore, StoreLock};
use pps_core::stdout::JsonLinesTarget;
use pps_core::{
    DirectorySource, Engine, EngineOptions, Error, ErrorKind, Result, ScanTarget, TargetSpec, Watch,
};
use pps_http_sources::{OpenList, Rclone};
use pps_mediaserver::{CommandTarget, EmbyTarget, JellyfinTarget, PlexTarget};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything a command needs: the config, the engine with every source and target, and
/// the watches.
#[derive(Debug)]
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The engine (all sources, all targets, the store).
    pub engine: Engine,
    /// Sources by name (for `ls`, `check`).
    pub sources: BTreeMap<String, Arc<dyn DirectorySource>>,
    /// CloudDrive2 sources by name (health, counters).
    pub clouddrives: BTreeMap<String, CloudDrive>,
    /// Every cloud source by name (cd2, OpenList, rclone): budgets and `check`.
    pub remotes: BTreeMap<String, Remote>,
    /// Targets by name.
    pub targets: BTreeMap<String, Arc<dyn ScanTarget>>,
    /// The watches, each with its engine-level form.
    pub watches: Vec<(WatchConfig, Watch)>,
    /// Every pass lists the whole tree (`--watch DIR` mode, where listing is cheap and
    /// users expect every change at the next pass); otherwise passes follow each
    /// folder's schedule.
    pub full_passes: bool,
    /// The store's writer lock, held by commands that list folders into it.
    pub lock: Option<StoreLock>,
    /// `--dry-run`: the copy of the store this app works on, removed with it.
    pub store_copy: Option<crate::dry_run::StoreCopy>,
    /// The stdout targets, to notice when the reader of stdout went away.
    pub stdout: Vec<JsonLinesTarget>,
    /// Reload requests and the generation in force, shared by every app
    /// [`service::run`](crate::service::run) builds for the same service.
    pub control: Arc<crate::control::Control>,
}

/// How a command uses the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Lists folders into the store (`run`, `once`, `index`): takes its writer lock, so
    /// a second such process is refused instead of doubling the cloud's calls.
    Writer(&'static str),
    /// A small write beside a running service (`scan`): creates a missing store, no lock.
    Shared,
    /// Reads or edits state that must exist (`status`, `ls`, `forget`, `retry`,
    /// `drop`): never creates a store, no lock.
    Existing,
    /// `--dry-run`: works on a copy of the store (no lock on the store itself, which
    /// is only read) with every target wrapped in a [`DryRunTarget`](crate::dry_run::DryRunTarget)
    /// that prints what it would be sent and sends nothing.
    DryRun,
}

/// A source that calls a cloud's API, with what pps asks of it beyond listings: a
/// shared budget, a check.
#[derive(Debug, Clone)]
pub enum Remote {
    /// A CloudDrive2 server.
    CloudDrive(CloudDrive),
    /// An OpenList (or AList v3) server.
    OpenList(OpenList),
    /// An rclone rc server.
    Rclone(Rclone),
}

impl Remote {
    /// Makes every call ask `gate` first (see [`share_budget`]).
    pub fn share_budget(&self, gate: Arc<dyn pps_core::CallGate>) -> bool {
        match self {
            Remote::CloudDrive(s) => s.share_budget(gate),
            Remote::OpenList(s) => s.share_budget(gate),
            Remote::Rclone(s) => s.share_budget(gate),
        }
    }

    /// The CloudDrive2 source, when it is one (health, latency counters).
    pub fn clouddrive(&self) -> Option<&CloudDrive> {
        match self {
            Remote::CloudDrive(cd) => Some(cd),
            _ => None,
        }
    }

    /// The rate in force now (lower than configured for a while after throttling).
    pub fn current_rate(&self) -> f64 {
        match self {
            Remote::CloudDrive(s) => s.current_rate(),
            Remote::OpenList(s) => s.current_rate(),
            Remote::Rclone(s) => s.current_rate(),
        }
    }

    /// Throttled answers since the source was made.
    pub fn throttled(&self) -> u64 {
        match self {
            Remote::CloudDrive(s) => s.stats().throttled,
            Remote::OpenList(s) => s.stats().throttled,
            Remote::Rclone(s) => s.stats().throttled,
        }
    }
}

/// Builds a source. A local source never lists the files in `hidden` (pps's own store
/// files).
pub fn source(
    config: &SourceConfig,
    hidden: &[std::path::PathBuf],
) -> Result<(Arc<dyn DirectorySource>, Option<Remote>)> {
    match config {
        SourceConfig::Local { .. } => Ok((
            Arc::new(LocalSource::new().hiding(hidden.iter().cloned())),
            None,
        )),
        SourceConfig::CloudDrive2 { settings, .. } => {
            let cd = CloudDrive::connect(settings.clone())?;
            Ok((Arc::new(cd.clone()), Some(Remote::CloudDrive(cd))))
        }
        SourceConfig::OpenList { settings, .. } => {
            let s = OpenList::connect(settings.clone())?;
            Ok((Arc::new(s.clone()), Some(Remote::OpenList(s))))
        }
        SourceConfig::Rclone { settings, .. } => {
            let s = Rclone::connect(settings.clone())?;
            Ok((Arc::new(s.clone()), Some(Remote::Rclone(s))))
        }
    }
}

/// The shared call budget a source's config sets (`None` for a local folder).
pub fn call_limits(config: &SourceConfig) -> Option<pps_core::CallLimits> {
    let (rate, burst) = config.rate()?;
    let (minute, hour, day, pause) = config.ceilings()?;
    Some(
        pps_core::CallLimits::new(rate)
            .with_burst(burst)
            .with_ceilings(minute, hour, day)
            .with_throttle_pause(pause),
    )
}

/// Makes every call of `cd` ask the shared budget of source `name` in `store` first
/// (`force`: count the calls, never wait).
pub fn share_budget(
    cd: &Remote,
    store: Arc<dyn pps_core::MtimeStore>,
    name: &str,
    limits: pps_core::CallLimits,
    force: bool,
) {
    let gate = pps_core::StoreGate::new(store, name, limits);
    let gate = if force { gate.forced() } else { gate };
    cd.share_budget(Arc::new(gate));
}

/// Builds a target.
pub fn target(name: &str, config: &TargetConfig) -> Result<Arc<dyn ScanTarget>> {
    let t: Arc<dyn ScanTarget> = match &config.kind {
        TargetKind::Plex(c) => Arc::new(PlexTarget::new(c.clone())?),
        // One protocol, two authentication headers: the target type picks it.
        TargetKind::Emby(c) => Arc::new(EmbyTarget::new(c.clone())?),
        TargetKind::Jellyfin(c) => Arc::new(JellyfinTarget::new(c.clone())?),
        TargetKind::Command(c) => Arc::new(CommandTarget::new(c.clone())?),
        TargetKind::Stdout => Arc::new(JsonLinesTarget::stdout(name)),
    };
    Ok(t)
}

impl App {
    /// Builds everything and opens the store as a writer (`pps run`).
    pub fn build(config: Config) -> Result<App> {
        Self::build_for(config, Access::Writer("pps run"))
    }

    /// Builds everything and opens the store for `access`.
    pub fn build_for(mut config: Config, access: Access) -> Result<App> {
        if access == Access::DryRun {
            let copy = crate::dry_run::StoreCopy::of(&config.store)?;
            config.store = copy.path.clone();
            for t in config.targets.values_mut() {
                // Nothing is sent, so nothing is to be confirmed.
                t.confirm = false;
            }
            let store = SqliteStore::open(&config.store)?.with_history_limits(config.history);
            let mut app = Self::build_inner(config, Arc::new(store), true)?;
            app.store_copy = Some(copy);
            return Ok(app);
        }
        let lock = match access {
            Access::Writer(holder) => Some(StoreLock::acquire(&config.store, holder)?),
            _ => None,
        };
        let store = match access {
            Access::Existing => SqliteStore::open_existing(&config.store)?,
            _ => SqliteStore::open(&config.store)?,
        }
        .with_history_limits(config.history);
        let mut app = Self::build_with_store(config, Arc::new(store))?;
        app.lock = lock;
        if app.lock.is_some() {
            app.warn_foreign_scans();
        }
        Ok(app)
    }

    /// Says so when the outbox holds scans queued by a folder no enabled watch holds any
    /// more (a `[[watch]]` removed or disabled since): they are still delivered, as a
    /// scan found is owed, but never silently. (`--watch` mode refuses such a store.)
    fn warn_foreign_scans(&self) {
        let store = self.engine.store();
        let Ok(stats) = store.stats() else { return };
        for name in self.targets.keys() {
            let Ok(queued) = store.pending(name, usize::MAX) else {
                continue;
            };
            let mut foreign: BTreeMap<String, usize> = BTreeMap::new();
            for q in &queued {
                let Some((_, source, root, _)) = stats.scopes.iter().find(|s| s.0 == q.scope)
                else {
                    continue;
                };
                let held = self
                    .watches
                    .iter()
                    .any(|(w, _)| w.source == *source && w.path == *root);
                if !held && !source.starts_with('\u{1}') {
                    *foreign.entry(format!("{source}:{root}")).or_default() += 1;
                }
            }
            for (watch, n) in foreign {
                tracing::warn!(target = %name, scans = n, watch = %watch, "scans queued by a watch that is no longer configured (or is disabled) will be delivered; `pps drop {name} PATH` gives them up");
            }
        }
    }

    /// Builds everything over a given store. Every cloud source asks the store's shared
    /// call budget before each call ([`share_budget`]), so this process and any other
    /// of the same store (`pps run`, `pps walk`, `pps ls`, the UI) spend one budget.
    pub fn build_with_store(config: Config, store: Arc<dyn pps_core::MtimeStore>) -> Result<App> {
        Self::build_inner(config, store, false)
    }

    fn build_inner(
        config: Config,
        store: Arc<dyn pps_core::MtimeStore>,
        dry_run: bool,
    ) -> Result<App> {
        let mut engine = Engine::new(store.clone());
        let mut sources = BTreeMap::new();
        let mut clouddrives = BTreeMap::new();
        let mut remotes = BTreeMap::new();
        let hidden = pps_core::sqlite::store_files(&config.store);
        for (name, sc) in &config.sources {
            let (src, cd) =
                source(sc, &hidden).map_err(|e| e.with_default("source", name.clone()))?;
            engine = engine.with_source(name.clone(), src.clone());
            sources.insert(name.clone(), src);
            if let Some(cd) = cd {
                if let Some(limits) = call_limits(sc) {
                    share_budget(&cd, store.clone(), name, limits, false);
                }
                if let Some(c) = cd.clouddrive() {
                    clouddrives.insert(name.clone(), c.clone());
                }
                remotes.insert(name.clone(), cd);
            }
        }
        let mut targets = BTreeMap::new();
        let mut stdout = Vec::new();
        for (name, tc) in &config.targets {
            let t = if matches!(tc.kind, TargetKind::Stdout) {
                let j = JsonLinesTarget::stdout(name);
                stdout.push(j.clone());
                Arc::new(j) as Arc<dyn ScanTarget>
            } else {
                target(name, tc).map_err(|e| e.with_default("target", name.clone()))?
            };
            let t: Arc<dyn ScanTarget> = if dry_run {
                Arc::new(crate::dry_run::DryRunTarget::new(name.clone(), t))
            } else {
                t
            };
            let mut spec = TargetSpec::new(name.clone(), t.clone());
            spec.mapping = tc.mapping.clone();
            spec.scan_files = tc.scan_files;
            spec.confirm = tc.confirm;
            spec.confirm_deadline = tc.confirm_deadline;
            engine = engine.with_target(spec);
            targets.insert(name.clone(), t);
        }
        let mut watches = Vec::new();
        // A disabled watch stays in the file (and the UI) but is never passed.
        for wc in config.watches.iter().filter(|w| w.enabled) {
            let schedule = pps_core::Schedule::default()
                .with_base_interval(wc.interval)
                .with_max_interval(wc.max_interval)
                .with_active_max_interval(wc.active_max_interval)
                .with_settle(wc.settle);
            let mut w = Watch::new(wc.source.clone(), &wc.path)?.with_schedule(schedule);
            w.excludes = wc.exclude.clone();
            w.targets = wc.targets.clone();
            watches.push((wc.clone(), w));
        }
        Ok(App {
            config,
            engine,
            sources,
            clouddrives,
            remotes,
            targets,
            watches,
            full_passes: false,
            lock: None,
            store_copy: None,
            stdout,
            control: Arc::default(),
        })
    }

    /// The error for a config with no `[[watch]]`: nothing to do is a mistake, never a
    /// silent idle service. `Ok` when there are watches.
    pub fn require_watches(&self) -> Result<()> {
        if !self.watches.is_empty() {
            return Ok(());
        }
        let file = self
            .config
            .file
            .as_ref()
            .map_or("the config".to_owned(), |f| f.display().to_string());
        if !self.config.watches.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("every [[watch]] in {file} has `enabled = false`: enable one"),
            ));
        }
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "{file} has no [[watch]]: pps has nothing to watch; add one (see `pps init`'s template)"
            ),
        ))
    }

    /// The target called `name`, or an error listing the configured ones.
    pub fn target_named(&self, name: &str) -> Result<&Arc<dyn ScanTarget>> {
        self.targets.get(name).ok_or_else(|| {
            let known: Vec<_> = self.targets.keys().cloned().collect();
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "no target named `{name}` (targets: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
    }

    /// Resolves when the reader of stdout went away (`pps run | head -1`), for a stdout
    /// target; never when there is none.
    pub async fn stdout_closed(&self) {
        if self.stdout.is_empty() {
            return std::future::pending().await;
        }
        let all = self.stdout.iter().map(|t| Box::pin(t.closed()));
        futures_util::future::select_all(all).await;
    }

    /// Listing calls per second a source may spend on scheduled passes: its
    /// `max_queries_per_second` for CloudDrive2; for a local folder a high figure, since
    /// only the disk pays.
    pub fn calls_per_second(&self, source: &str) -> f64 {
        match self.config.sources.get(source).and_then(SourceConfig::rate) {
            Some((rate, _)) => rate,
            None => 1000.0,
        }
    }

    /// How a source's spare budget is spent: up to its rate, or within its daily
    /// ceiling; never for a local folder (listing it costs nothing worth saving, and
    /// re-listing it without pause would only keep its disk busy).
    pub fn spare_policy(&self, source: &str) -> pps_core::engine::SparePolicy {
        use pps_core::engine::SparePolicy;
        match self
            .config
            .sources
            .get(source)
            .and_then(SourceConfig::ceilings)
        {
            Some((_, _, max_calls_per_day, _)) => {
                max_calls_per_day.map_or(SparePolicy::Rate, SparePolicy::Daily)
            }
            None => SparePolicy::Off,
        }
    }

    /// Whether the config asks to confirm what target `name` indexed (`confirm`, on by
    /// default for Plex, Emby and Jellyfin).
    pub fn config_confirms(&self, name: &str) -> bool {
        self.config.targets.get(name).is_some_and(|t| t.confirm)
    }

    /// The shared call budget of a source (`None`: a local folder has none).
    pub fn call_limits(&self, source: &str) -> Option<pps_core::CallLimits> {
        self.config.sources.get(source).and_then(call_limits)
    }

    /// The engine tuned for one watch (its source's concurrency).
    pub fn engine_for(&self, watch: &WatchConfig) -> Engine {
        let mut options = EngineOptions::default();
        if let Some(s) = self.config.sources.get(&watch.source) {
            options.concurrency = s.concurrency();
        }
        self.engine.clone().with_options(options)
    }

    /// Finds the watch named by `SOURCE:PATH` or a plain path: the watch of that source
    /// whose root holds the path (the deepest one), with the path normalised.
    pub fn resolve(&self, spec: &str) -> Result<(usize, String)> {
        let (source, path) = match spec.split_once(':') {
            Some((s, p)) if self.config.sources.contains_key(s) => (Some(s), p),
            _ => (None, spec),
        };
        let path = pps_core::path::normalize(path)?;
        let mut best: Option<usize> = None;
        for (i, (wc, _)) in self.watches.iter().enumerate() {
            if source.is_some_and(|s| s != wc.source) {
                continue;
            }
            if pps_core::path::is_at_or_under(&path, &wc.path)
                && best.is_none_or(|b| self.watches[b].0.path.len() < wc.path.len())
            {
                best = Some(i);
            }
        }
        best.map(|i| (i, path.clone())).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "no watch holds that path; write SOURCE:PATH inside a [[watch]] path",
            )
            .with("path", spec)
        })
    }
}
