//! Passes: full ([`Engine::pass`]), re-index ([`Engine::reindex`]) and scheduled
//! ([`Engine::pass_due`], [`Engine::pass_due_spare`]), and the visit of one listing.

use super::{Engine, PassReport, Progress, SPARE_RERANK, STAGING, Watch};
use crate::clock::Timestamp;
use crate::error::{Error, ErrorKind, Result};
use crate::listing::{self, Fingerprint};
use crate::path;
use crate::schedule::{FolderSchedule, Schedule, Settling};
use crate::source::{DirectorySource, ListOptions};
use crate::store::{Commit, FolderRecord, NewScan, Origin, ScopeId};
use crate::types::{Change, Entry, Mtime, Update};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

struct Visit {
    path: String,
    /// Inside a folder created in this pass (or a baseline): record, do not report.
    silent: bool,
    /// Inside a subtree created since the last look: starts at the base interval
    /// instead of the ceiling.
    active: bool,
    /// A push hint asked for this folder: bypass the source's cache.
    force: bool,
    /// Inside a baseline (a watch's first pass, a re-index, or the subtree of a folder
    /// a baseline could not list): a listing that fails leaves a placeholder, so the
    /// folder is baselined when it next lists instead of reported as created.
    baseline: bool,
    /// A spare listing, before the folder was due: unchanged, it keeps its interval.
    early: bool,
    /// The folder's schedule when the pass knows it.
    sched: Option<FolderSchedule>,
    /// The folder's own mtime from its parent's listing: at a baseline, an empty
    /// folder made yesterday (a season waiting for its first episode) is young.
    mtime: Option<Timestamp>,
    /// What made pps list it, for the history of what it finds. A folder a listing
    /// made due (created, its entry moved) inherits the origin of that listing.
    origin: Origin,
}

impl Visit {
    fn new(path: String, silent: bool, active: bool) -> Self {
        Visit {
            path,
            silent,
            active,
            force: false,
            baseline: false,
            early: false,
            sched: None,
            mtime: None,
            origin: Origin::Walk,
        }
    }

    /// A visit of a folder the schedule made due, with its schedule.
    fn due(path: String, s: FolderSchedule) -> Self {
        Visit {
            force: s.force_refresh,
            origin: origin_of(&s, Origin::Poll),
            sched: Some(s),
            ..Visit::new(path, false, false)
        }
    }

    fn options(&self) -> ListOptions {
        if self.force {
            ListOptions::force_refresh()
        } else {
            ListOptions::default()
        }
    }
}

struct PassState<'a> {
    watch: &'a Watch,
    scope: ScopeId,
    targets: Vec<String>,
    known: HashMap<String, Fingerprint>,
    baseline: bool,
    pending: Commit,
    held_root: Option<(String, FolderRecord)>,
    held_root_schedule: Option<FolderSchedule>,
    report: PassReport,
    now: Timestamp,
    /// Full passes: the folders due now, with their schedules.
    due: HashMap<String, FolderSchedule>,
    /// Scheduled passes: every folder planned for listing, so none is listed twice.
    planned: HashSet<String>,
    /// Folders given a baseline schedule so far.
    recorded: u64,
    /// Folders of a baseline that could not be listed (placeholders were written).
    unlisted: Vec<String>,
    /// Scheduled passes: the origin of the listing being handled, which the folders it
    /// makes due inherit.
    origin: Origin,
}

impl Engine {
    /// One pass over `watch`.
    ///
    /// The first pass of a watch records a baseline and queues nothing. Later passes
    /// queue one scan per change per target. A folder that cannot be listed keeps its
    /// old state and is reported in [`PassReport::errors`]; the pass goes on.
    ///
    /// # Errors
    /// - [`Outage`](ErrorKind::Outage) when the root lists missing or empty while the
    ///   store knows it had content: nothing is committed or queued.
    /// - A failing root listing, an unknown source, or a store failure.
    ///
    /// Dropping the future mid-pass is safe: every commit is atomic, and what was not
    /// committed is found again by the next pass.
    ///
    /// # Schedules
    /// Every folder listed keeps its schedule current in the same commits: a changed
    /// folder drops to the base interval; an unchanged folder that was due grows its
    /// interval (one not yet due keeps its schedule, so a full pass costs no store
    /// writes when nothing changed); a new folder gets its first schedule (at the
    /// ceiling, spread, for a baseline; at the base interval inside a created subtree).
    /// A folder a push hint named is listed with `force_refresh`. This is the pass for
    /// `pps once --full`; its changes are reported as found by a [`Walk`](Origin::Walk).
    pub async fn pass(&self, watch: &Watch) -> Result<PassReport> {
        self.pass_as(watch, Origin::Walk).await
    }

    /// [`pass`](Self::pass), its changes reported as found by `origin`: a full pass a
    /// user asked for (the web UI's Scan now) is [`Manual`](Origin::Manual), so the
    /// history says who looked. A folder a hint asked for keeps the hint's origin.
    pub async fn pass_as(&self, watch: &Watch, origin: Origin) -> Result<PassReport> {
        let scope = self.store.scope(&watch.source, &watch.root)?;
        self.pass_in(watch, scope, origin).await.map(|(r, _)| r)
    }

    /// Records the baseline of `watch` anew, replacing the old one only once the new one
    /// is complete: the listing goes into a staging scope, and one atomic store step
    /// swaps it in. Dropping the future, a failing root or an outage leaves the old
    /// baseline whole (and the changes made since it are found by the next pass). A
    /// folder the new baseline could not list keeps its old state. Nothing is scanned.
    ///
    /// # Errors
    /// As [`pass`](Self::pass); on any error the old baseline is untouched.
    pub async fn reindex(&self, watch: &Watch) -> Result<PassReport> {
        let scope = self.store.scope(&watch.source, &watch.root)?;
        let staging = self
            .store
            .scope(&format!("{STAGING}{}", watch.source), &watch.root)?;
        // What an interrupted re-index left behind.
        self.store.forget(staging, "/")?;
        let (mut report, unlisted) = self.pass_in(watch, staging, Origin::Walk).await?;
        self.store.replace_scope(scope, staging, &unlisted)?;
        report.baseline = true;
        Ok(report)
    }

    /// A full pass over `watch` with its state in `scope`; also returns the folders a
    /// baseline could not list.
    async fn pass_in(
        &self,
        watch: &Watch,
        scope: ScopeId,
        origin: Origin,
    ) -> Result<(PassReport, Vec<String>)> {
        let started = Instant::now();
        let source = self.source(watch)?;
        let known = self.store.fingerprints(scope)?;
        let baseline = !known.contains_key(&watch.root);
        let now = self.clock.now();
        let due = if baseline {
            HashMap::new()
        } else {
            self.store
                .due(scope, now, usize::MAX)?
                .into_iter()
                .collect()
        };
        let mut st = self.pass_state(watch, scope, known, baseline, now);
        st.origin = origin;
        st.due = due;

        // The root is listed alone first: its result decides between a pass and an
        // outage before anything else is looked at.
        let mut root_visit = st.visit_of(watch.root.clone(), baseline, false);
        root_visit.baseline = baseline;
        let root_result = source.list(&watch.root, root_visit.options()).await;
        st.report.folders_listed += 1;
        self.check_outage(&st, &root_result)?;
        let root_result = root_result.map_err(|e| self.context(e, watch, &watch.root))?;

        let mut queue: VecDeque<Visit> = VecDeque::new();
        self.visit(&mut st, root_visit, Ok(root_result), &mut queue)?;

        self.drive(&source, &mut st, &mut queue, |st, v, r, q| {
            self.visit(st, v, r, q)
        })
        .await?;
        // A baseline's root state is written last, so an interrupted first index is
        // simply a baseline again next time, never a flood of "created" scans.
        if let Some(root) = st.held_root.take() {
            st.pending.folders.push(root);
        }
        if let Some(s) = st.held_root_schedule.take() {
            st.pending.schedules.push((watch.root.clone(), s));
        }
        self.flush(&mut st)?;
        st.report.elapsed = started.elapsed();
        Ok((st.report, st.unlisted))
    }

    fn source(&self, watch: &Watch) -> Result<Arc<dyn DirectorySource>> {
        self.sources.get(&watch.source).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "the watch names a source that is not configured",
            )
            .with("source", watch.source.clone())
        })
    }

    fn pass_state<'a>(
        &self,
        watch: &'a Watch,
        scope: ScopeId,
        known: HashMap<String, Fingerprint>,
        baseline: bool,
        now: Timestamp,
    ) -> PassState<'a> {
        let targets = if watch.targets.is_empty() {
            self.targets.iter().map(|t| t.name.clone()).collect()
        } else {
            watch.targets.clone()
        };
        PassState {
            watch,
            scope,
            targets,
            known,
            baseline,
            pending: Commit::default(),
            held_root: None,
            held_root_schedule: None,
            report: PassReport {
                watch: watch.label(),
                baseline,
                ..PassReport::default()
            },
            now,
            due: HashMap::new(),
            planned: HashSet::new(),
            recorded: 0,
            unlisted: Vec::new(),
            origin: Origin::Walk,
        }
    }

    fn context(&self, e: Error, watch: &Watch, path: &str) -> Error {
        e.with_default("source", watch.source.clone())
            .with_default("path", path)
    }

    fn check_outage(&self, st: &PassState<'_>, root: &Result<Vec<Entry>>) -> Result<()> {
        let watch = st.watch;
        let looks_gone = match root {
            Err(e) => e.kind() == ErrorKind::NotFound,
            Ok(entries) => !entries
                .iter()
                .any(|e| !watch.excludes.excludes(&watch.root, &e.name)),
        };
        if !looks_gone || st.baseline {
            return Ok(());
        }
        let Some(rec) = self.store.folder(st.scope, &watch.root)? else {
            return Ok(());
        };
        let known = listing::decode(&rec.listing)?
            .iter()
            .filter(|e| !watch.excludes.excludes(&watch.root, &e.name))
            .count();
        if known >= self.options.outage_min_children.max(1) {
            let what = if root.is_err() {
                "is missing"
            } else {
                "lists empty"
            };
            return Err(Error::new(
                ErrorKind::Outage,
                format!(
                    "the watched root {what} while pps knows {known} entries in it; treating it as an outage (unmounted disk, cd2 down or logged out), nothing was committed or scanned. If the content was really removed, run `pps forget` on it"
                ),
            )
            .with("source", watch.source.clone())
            .with("path", watch.root.clone()));
        }
        Ok(())
    }

    fn visit(
        &self,
        st: &mut PassState<'_>,
        visit: Visit,
        result: Result<Vec<Entry>>,
        queue: &mut VecDeque<Visit>,
    ) -> Result<()> {
        let watch = st.watch;
        let mut visit = visit;
        if result.is_ok()
            && st
                .known
                .get(&visit.path)
                .is_some_and(Fingerprint::is_unlisted)
        {
            // A placeholder: this first listing is its baseline.
            st.known.remove(&visit.path);
            visit.silent = true;
            visit.baseline = true;
        }
        let folder = visit.path;
        let mut entries = match result {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(watch = %st.report.watch, error = %err, "listing failed; the folder keeps its old state");
                st.report.errors.push(err);
                if visit.baseline && !st.known.contains_key(&folder) {
                    // Seen in its parent, never listed: recorded, silently, when it
                    // next lists; until then it is due like a folder that just failed.
                    let s = watch
                        .schedule
                        .failed(&watch.schedule.changed(st.now), st.now);
                    st.pending
                        .folders
                        .push((folder.clone(), FolderRecord::unlisted()));
                    st.pending.schedules.push((folder.clone(), s));
                    st.unlisted.push(folder);
                    return Ok(());
                }
                if let Some(s) = st.due.get(&folder) {
                    let s = watch.schedule.failed(s, st.now);
                    st.pending.schedules.push((folder.clone(), s));
                }
                // Keep walking below it from what was stored, so one failing folder does
                // not hide changes deeper down.
                if st.known.contains_key(&folder)
                    && let Some(rec) = self.store.folder(st.scope, &folder)?
                {
                    for e in listing::decode(&rec.listing)? {
                        if e.is_dir() && !watch.excludes.excludes(&folder, &e.name) {
                            let mut v = st.visit_of(
                                path::join(&folder, &e.name),
                                visit.silent,
                                visit.active,
                            );
                            v.baseline = visit.baseline;
                            queue.push_back(v);
                        }
                    }
                }
                return Ok(());
            }
        };
        keep_watched(watch, &folder, &mut entries);
        let encoded = listing::encode(&entries);

        let mut created_dirs: Vec<String> = Vec::new();
        let schedule = &watch.schedule;
        let mut new_schedule = None;
        match st.known.get(&folder) {
            Some(fp) if *fp == encoded.fingerprint => {
                if let Some(s) = st.due.get(&folder) {
                    new_schedule = Some(schedule.unchanged(s, st.now));
                }
            }
            Some(_) => {
                let current = self.store.schedule(st.scope, &folder)?;
                if let Some(hold) = settle_hold(schedule, current, encoded.fingerprint, st.now) {
                    // Not committed yet: walk on only into folders it already had.
                    st.report.folders_settling += 1;
                    st.pending.schedules.push((folder.clone(), hold));
                    for e in entries.iter().filter(|e| e.is_dir()) {
                        let child = path::join(&folder, &e.name);
                        if st.known.contains_key(&child) {
                            let v = st.visit_of(child, visit.silent, visit.active);
                            queue.push_back(v);
                        }
                    }
                    return Ok(());
                }
                new_schedule = Some(match &current {
                    Some(c) => schedule.changed_again(c, st.now),
                    None => schedule.changed(st.now),
                });
                st.report.folders_changed += 1;
                let rec = self.store.folder(st.scope, &folder)?;
                let changes = changes_since(watch, &folder, rec.as_ref(), &entries)?;
                for c in &changes {
                    if c.is_dir && c.update == Update::Deleted {
                        st.pending.removed.push(c.path.clone());
                    }
                    if c.is_dir && c.update == Update::Created {
                        created_dirs.push(path::file_name(&c.path).to_owned());
                    }
                }
                if !visit.silent {
                    self.queue_scans(st, changes, visit.origin);
                }
            }
            None => {
                // A folder pps has no state for, reached from a parent it knew: its
                // earlier content is unknown, so scan it as new. (That includes a
                // created folder a scheduled pass reported and left due: what arrived
                // in it since the report must reach the server too.)
                if !visit.silent && folder != watch.root {
                    self.queue_scans(
                        st,
                        vec![Change::new(folder.clone(), Update::Created, true)],
                        visit.origin,
                    );
                }
                new_schedule = Some(if visit.active || !visit.silent {
                    schedule.changed(st.now)
                } else {
                    // A baseline: the listing's mtimes say how active the folder is.
                    st.recorded += 1;
                    if entries.is_empty() && visit.mtime.is_none() {
                        schedule.empty(st.now)
                    } else {
                        schedule.first(
                            entries
                                .iter()
                                .map(|e| e.mtime.map(Mtime::to_timestamp))
                                .chain([visit.mtime]),
                            st.recorded - 1,
                            st.now,
                        )
                    }
                });
            }
        }
        let unknown = !st.known.contains_key(&folder);
        let children_silent = visit.silent || unknown;
        let children_active = visit.active || (unknown && !visit.silent);
        for e in &entries {
            if e.is_dir() {
                let created = created_dirs.contains(&e.name);
                let mut v = st.visit_of(
                    path::join(&folder, &e.name),
                    children_silent || created,
                    children_active || created,
                );
                v.baseline = visit.baseline;
                v.mtime = e.mtime.map(Mtime::to_timestamp);
                queue.push_back(v);
            }
        }
        if let Some(s) = new_schedule {
            if st.baseline && folder == watch.root {
                st.held_root_schedule = Some(s);
            } else {
                st.pending.schedules.push((folder.clone(), s));
            }
        }
        if st.known.get(&folder) != Some(&encoded.fingerprint) {
            let record = FolderRecord {
                fingerprint: encoded.fingerprint,
                listing: encoded.bytes,
            };
            if st.baseline && folder == watch.root {
                st.held_root = Some((folder, record));
            } else {
                st.pending.folders.push((folder, record));
            }
        }
        Ok(())
    }

    fn queue_scans(&self, st: &mut PassState<'_>, changes: Vec<Change>, origin: Origin) {
        for c in changes {
            for t in &st.targets {
                st.pending.scans.push(NewScan {
                    target: t.clone(),
                    change: c.clone(),
                });
            }
            st.pending.changes.push((c.clone(), origin));
            st.report.changes.push(c);
        }
    }

    fn flush(&self, st: &mut PassState<'_>) -> Result<()> {
        if st.pending.is_empty() {
            return Ok(());
        }
        let mut commit = std::mem::take(&mut st.pending);
        // Whatever a listing made of the root's schedule, the root stays at the base
        // interval (`Schedule::root`): one place, so no path can set it a day ahead.
        for (path, s) in &mut commit.schedules {
            if *path == st.watch.root {
                *s = st.watch.schedule.root(s, st.now);
            }
        }
        self.store.commit(st.scope, &commit)?;
        st.report.scans_queued += commit.scans.len() as u64;
        Ok(())
    }

    /// One scheduled pass over `watch`: lists the folders whose next-due time has come,
    /// best first (the root when due by its rule, then the store's ranking,
    /// [`MtimeStore::due`](crate::MtimeStore::due)), and never more than `max_listings`
    /// of them.
    ///
    /// A listed folder is handled exactly as in [`pass`](Self::pass) (same changes, same
    /// atomic commit of state, schedule and scans, same excludes, same outage rule when
    /// the root is due): a changed folder drops to the base interval, an unchanged one
    /// doubles its interval up to the ceiling. Folders it finds created, and child
    /// folders whose entry's mtime or size moved, become due at once: listed in this
    /// pass while the budget lasts, otherwise left due (persisted) for the next. A
    /// folder that lists as missing makes its parent due, so the parent's listing
    /// decides whether it was deleted.
    ///
    /// A watch with no baseline yet gets one: a full [`pass`](Self::pass), which must see
    /// every folder once and so ignores `max_listings` (the source's rate limit layer
    /// still paces it).
    ///
    /// # Errors
    /// As [`pass`](Self::pass).
    pub async fn pass_due(&self, watch: &Watch, max_listings: u64) -> Result<PassReport> {
        self.pass_due_spare(watch, max_listings, 0).await
    }

    /// [`pass_due`](Self::pass_due), then, with what is left of `max_listings` (at most
    /// `spare`), **spare listings**: the folders not yet due with the most changes
    /// expected since they were last listed ([`FolderSchedule::expected`]), none listed
    /// less than a base interval ago. A spare listing handles changes as any other;
    /// unchanged, the folder keeps its interval
    /// ([`Schedule::unchanged_early`]). The ranking is refreshed every
    /// [`SPARE_RERANK`].
    pub async fn pass_due_spare(
        &self,
        watch: &Watch,
        max_listings: u64,
        spare: u64,
    ) -> Result<PassReport> {
        let started = Instant::now();
        let source = self.source(watch)?;
        let scope = self.store.scope(&watch.source, &watch.root)?;
        if self.store.folder(scope, &watch.root)?.is_none() {
            return self.pass(watch).await;
        }
        let now = self.clock.now();
        let budget = usize::try_from(max_listings).unwrap_or(usize::MAX);
        let mut st = self.pass_state(watch, scope, HashMap::new(), false, now);
        let mut queue: VecDeque<Visit> = self
            .store
            .due_ranked(
                scope,
                now,
                Some(now.minus(watch.schedule.ceiling())),
                budget,
            )?
            .into_iter()
            .map(|(path, s)| Visit::due(path, s))
            .collect();
        // The root goes first whenever it is due by the root rule (`Schedule::root`),
        // read from its last listing: a store indexed before the rule still holds a
        // root set a day ahead, and a root must never wait behind a full queue.
        if budget > 0
            && !queue.iter().any(|v| v.path == watch.root)
            && let Some(s) = self.store.schedule(scope, &watch.root)?
            && watch.schedule.root(&s, now).next_due <= now
        {
            if queue.len() >= budget {
                queue.pop_back();
            }
            queue.push_front(Visit::due(watch.root.clone(), s));
        }
        st.report.folders_due = queue.len() as u64;
        st.planned = queue.iter().map(|v| v.path.clone()).collect();
        let mut room = budget.saturating_sub(queue.len());

        // A due root is listed alone first, as in a full pass: an outage stops the pass
        // before anything is committed.
        if let Some(i) = queue.iter().position(|v| v.path == watch.root)
            && let Some(root) = queue.remove(i)
        {
            let result = source.list(&root.path, root.options()).await;
            st.report.folders_listed += 1;
            self.check_outage(&st, &result)?;
            let result = result.map_err(|e| self.context(e, watch, &watch.root));
            self.visit_due(&mut st, root, result, &mut queue, &mut room)?;
        }

        self.drive(&source, &mut st, &mut queue, |st, v, r, q| {
            self.visit_due(st, v, r, q, &mut room)
        })
        .await?;
        let spare = room.min(usize::try_from(spare).unwrap_or(usize::MAX));
        if spare > 0 {
            // Decided after the due folders and their promotions: those come first.
            self.flush(&mut st)?;
            let picked = self.spare_candidates(&st, spare)?;
            st.report.folders_spare = picked.len() as u64;
            for (path, s) in picked {
                st.planned.insert(path.clone());
                queue.push_back(Visit {
                    path,
                    silent: false,
                    active: false,
                    force: false,
                    baseline: false,
                    early: true,
                    sched: Some(s),
                    mtime: None,
                    origin: Origin::Spare,
                });
            }
            room -= queue.len();
            self.drive(&source, &mut st, &mut queue, |st, v, r, q| {
                self.visit_due(st, v, r, q, &mut room)
            })
            .await?;
        }
        self.flush(&mut st)?;
        st.report.elapsed = started.elapsed();
        Ok(st.report)
    }

    /// Up to `n` folders for spare listings, best first, from the watch's ranking (made
    /// anew when older than [`SPARE_RERANK`]); each with its current schedule, never the
    /// root (its listing decides outages), never one planned in this pass or listed less
    /// than a base interval ago.
    fn spare_candidates(
        &self,
        st: &PassState<'_>,
        n: usize,
    ) -> Result<Vec<(String, FolderSchedule)>> {
        let now = st.now;
        let base = st.watch.schedule.base();
        let mut ranked = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        let stale = ranked
            .get(&st.scope)
            .is_none_or(|(at, q)| q.is_empty() || now.since(*at) >= SPARE_RERANK || now < *at);
        if stale {
            let mut all: Vec<(f64, String)> = self
                .store
                .schedules(st.scope)?
                .into_iter()
                .filter(|(p, s)| {
                    *p != st.watch.root
                        && s.next_due > now
                        && s.listed.is_none_or(|l| now.since(l) >= base)
                })
                .map(|(p, s)| (s.expected(now), p))
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            // Enough for a re-rank period at a generous rate, no more.
            all.truncate(4096);
            ranked.insert(st.scope, (now, all.into_iter().map(|(_, p)| p).collect()));
        }
        let Some((_, queue)) = ranked.get_mut(&st.scope) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        while out.len() < n {
            let Some(p) = queue.pop_front() else { break };
            if st.planned.contains(&p) {
                continue;
            }
            // Re-read: it may have been listed, hinted or dropped since the ranking.
            if let Some(s) = self.store.schedule(st.scope, &p)?
                && s.next_due > now
                && s.listed.is_none_or(|l| now.since(l) >= base)
            {
                out.push((p, s));
            }
        }
        Ok(out)
    }

    /// Lists the queued folders with bounded concurrency until none is left, hands each
    /// result to `handle` (which may queue more), commits in batches and reports
    /// progress. Shared by full and scheduled passes, which differ only in `handle`.
    async fn drive(
        &self,
        source: &Arc<dyn DirectorySource>,
        st: &mut PassState<'_>,
        queue: &mut VecDeque<Visit>,
        mut handle: impl FnMut(
            &mut PassState<'_>,
            Visit,
            Result<Vec<Entry>>,
            &mut VecDeque<Visit>,
        ) -> Result<()>,
    ) -> Result<()> {
        let watch = st.watch;
        let mut in_flight = FuturesUnordered::new();
        let limit = self.options.concurrency.max(1);
        loop {
            while in_flight.len() < limit {
                let Some(v) = queue.pop_front() else { break };
                let src = source.clone();
                in_flight.push(async move {
                    let r = src.list(&v.path, v.options()).await;
                    (v, r)
                });
            }
            let Some((visit, result)) = in_flight.next().await else {
                return Ok(());
            };
            st.report.folders_listed += 1;
            match &result {
                Ok(entries) => {
                    tracing::debug!(watch = %st.report.watch, folder = %visit.path, entries = entries.len(), "listed")
                }
                Err(e) => {
                    tracing::debug!(watch = %st.report.watch, folder = %visit.path, error = %e, "listing failed")
                }
            }
            let result = result.map_err(|e| self.context(e, watch, &visit.path));
            handle(st, visit, result, queue)?;
            if st.pending.folders.len().max(st.pending.schedules.len()) >= self.options.commit_batch
            {
                self.flush(st)?;
            }
            if let Some(p) = &self.progress {
                p(
                    &st.report.watch,
                    Progress {
                        listed: st.report.folders_listed,
                        queued: (queue.len() + in_flight.len()) as u64,
                        changes: st.report.changes.len() as u64,
                    },
                );
            }
        }
    }

    /// Handles one listing of a scheduled pass.
    fn visit_due(
        &self,
        st: &mut PassState<'_>,
        visit: Visit,
        result: Result<Vec<Entry>>,
        queue: &mut VecDeque<Visit>,
        room: &mut usize,
    ) -> Result<()> {
        let watch = st.watch;
        let schedule = &watch.schedule;
        let now = st.now;
        let origin = visit.origin;
        st.origin = origin;
        let folder = visit.path;
        if st
            .pending
            .removed
            .iter()
            .any(|r| path::is_at_or_under(&folder, r))
        {
            // Its parent's listing, earlier in this pass, found it deleted.
            return Ok(());
        }
        let sched = visit.sched.unwrap_or_else(|| schedule.changed(now));
        let rec = self.store.folder(st.scope, &folder)?;
        // A placeholder a baseline left: its first listing is its baseline too.
        let placeholder = rec.as_ref().is_some_and(FolderRecord::is_unlisted);
        let mut entries = match result {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(watch = %st.report.watch, error = %err, "listing failed; the folder keeps its old state");
                let missing = err.kind() == ErrorKind::NotFound;
                st.report.errors.push(err);
                if missing && rec.is_none() && !placeholder {
                    // Never recorded and gone again: nothing to keep.
                    st.pending.removed.push(folder.clone());
                } else {
                    st.pending
                        .schedules
                        .push((folder.clone(), schedule.failed(&sched, now)));
                }
                if missing
                    && let Some(parent) = path::parent(&folder)
                    && path::is_at_or_under(parent, &watch.root)
                    && let Some(ps) = self.store.schedule(st.scope, parent)?
                {
                    self.make_due(st, parent.to_owned(), Some(ps), false, queue, room);
                }
                return Ok(());
            }
        };
        keep_watched(watch, &folder, &mut entries);
        let encoded = listing::encode(&entries);
        let record = |encoded: listing::EncodedListing| FolderRecord {
            fingerprint: encoded.fingerprint,
            listing: encoded.bytes,
        };
        let rec = rec.filter(|r| !r.is_unlisted());
        let Some(rec) = rec else {
            // First listing of a folder whose creation its parent already reported:
            // record it and, in turn, its subfolders. Listed in the pass that reported
            // it, that is all; left due for a later pass, it is reported created again,
            // since what arrived in it meanwhile may have missed the first scan.
            // A placeholder's subfolders get placeholders in turn, so however late they
            // are listed, they are baselined, never reported.
            if !visit.silent && !placeholder {
                let again = Change::new(folder.clone(), Update::Created, true);
                self.queue_scans(st, vec![again], origin);
            }
            for e in entries.iter().filter(|e| e.is_dir()) {
                let child = path::join(&folder, &e.name);
                if placeholder {
                    st.pending
                        .folders
                        .push((child.clone(), FolderRecord::unlisted()));
                }
                self.make_due(st, child, None, true, queue, room);
            }
            st.pending.folders.push((folder.clone(), record(encoded)));
            st.pending.schedules.push((folder, schedule.changed(now)));
            return Ok(());
        };
        if rec.fingerprint == encoded.fingerprint {
            let next = if visit.early {
                schedule.unchanged_early(&sched, now)
            } else {
                schedule.unchanged(&sched, now)
            };
            st.pending.schedules.push((folder, next));
            return Ok(());
        }
        if let Some(hold) = settle_hold(schedule, Some(sched), encoded.fingerprint, now) {
            st.report.folders_settling += 1;
            st.pending.schedules.push((folder, hold));
            return Ok(());
        }
        st.report.folders_changed += 1;
        let mut old = listing::decode(&rec.listing)?;
        old.retain(|e| !watch.excludes.excludes(&folder, &e.name));
        let changes = listing::diff(&folder, &old, &entries);
        for c in &changes {
            if c.is_dir && c.update == Update::Deleted {
                // Anything this pass already wrote below it goes too: removals apply
                // before the rest of a commit.
                st.pending
                    .schedules
                    .retain(|(p, _)| !path::is_at_or_under(p, &c.path));
                st.pending
                    .folders
                    .retain(|(p, _)| !path::is_at_or_under(p, &c.path));
                st.pending.removed.push(c.path.clone());
            }
        }
        let created: Vec<String> = changes
            .iter()
            .filter(|c| c.is_dir && c.update == Update::Created)
            .map(|c| c.path.clone())
            .collect();
        self.queue_scans(st, changes, origin);
        for child in created {
            self.make_due(st, child, None, true, queue, room);
        }
        // A subfolder whose own entry moved (mtime or size) changed inside: on 115 a new
        // file moves only its parent folder's mtime, so this is how a new episode shows.
        let old_dirs: HashMap<&str, &Entry> = old
            .iter()
            .filter(|e| e.is_dir())
            .map(|e| (e.name.as_str(), e))
            .collect();
        for e in entries.iter().filter(|e| e.is_dir()) {
            if let Some(o) = old_dirs.get(e.name.as_str())
                && (o.mtime != e.mtime || o.size != e.size)
            {
                let child = path::join(&folder, &e.name);
                let current = self.store.schedule(st.scope, &child)?;
                self.make_due(st, child, current, false, queue, room);
            }
        }
        st.pending.folders.push((folder.clone(), record(encoded)));
        st.pending
            .schedules
            .push((folder, schedule.changed_again(&sched, now)));
        Ok(())
    }

    /// Makes `path` due now (persisted in the pass's commit), and lists it in this pass
    /// while the budget has room. `silent`: its creation was already reported.
    fn make_due(
        &self,
        st: &mut PassState<'_>,
        path: String,
        current: Option<FolderSchedule>,
        silent: bool,
        queue: &mut VecDeque<Visit>,
        room: &mut usize,
    ) {
        if st.planned.contains(&path) {
            // Listed in this very pass already (or about to be).
            return;
        }
        let s = current
            .unwrap_or_else(|| st.watch.schedule.changed(st.now))
            .promoted(st.now, false);
        st.pending.schedules.push((path.clone(), s));
        st.report.folders_promoted += 1;
        if *room > 0 {
            *room -= 1;
            st.planned.insert(path.clone());
            queue.push_back(Visit {
                path,
                silent,
                active: true,
                force: s.force_refresh,
                baseline: false,
                early: false,
                mtime: None,
                // A folder a hint asked for is the hint's, whoever else found it due.
                origin: origin_of(&s, st.origin),
                sched: Some(s),
            });
        } else {
            st.report.folders_deferred += 1;
        }
    }
}

impl PassState<'_> {
    /// A visit of `path` in a full pass, forced when a hint is pending for it; what it
    /// finds is the pass's (or that hint's).
    fn visit_of(&self, path: String, silent: bool, active: bool) -> Visit {
        let mut v = Visit::new(path, silent, active);
        v.origin = self.origin;
        if let Some(s) = self.due.get(&v.path) {
            v.force = s.force_refresh;
            v.origin = origin_of(s, self.origin);
        }
        v
    }
}

/// What made pps list a folder with schedule `s`: the hint that asked for it (one from
/// a store older than hint origins was a push or a webhook; push is the likelier), else
/// `otherwise`.
fn origin_of(s: &FolderSchedule, otherwise: Origin) -> Origin {
    match (s.hinted_by, s.force_refresh) {
        (Some(by), _) => by,
        (None, true) => Origin::Push,
        (None, false) => otherwise,
    }
}

/// Leaves out of a fresh listing of `folder` what the watch excludes, and sorts it: the
/// form every listing is fingerprinted, stored and compared in.
fn keep_watched(watch: &Watch, folder: &str, entries: &mut Vec<Entry>) {
    if !watch.excludes.is_empty() {
        entries.retain(|e| !watch.excludes.excludes(folder, &e.name));
    }
    listing::sort_entries(entries);
}

/// The changes from the stored state of `folder` (`None`: nothing stored) to `entries`
/// (as [`keep_watched`] left them), the watch's excludes applied to both sides, so
/// changing an exclude never reports what it hides.
fn changes_since(
    watch: &Watch,
    folder: &str,
    stored: Option<&FolderRecord>,
    entries: &[Entry],
) -> Result<Vec<Change>> {
    let mut old = match stored {
        Some(rec) => listing::decode(&rec.listing)?,
        None => Vec::new(),
    };
    old.retain(|e| !watch.excludes.excludes(folder, &e.name));
    Ok(listing::diff(folder, &old, entries))
}

/// A folder's live listing beside its stored state, as a pass would judge it
/// ([`Engine::compare`]).
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The live entries the watch keeps, sorted by name.
    pub live: Vec<Entry>,
    /// The live entries the watch excludes.
    pub excluded: Vec<Entry>,
    /// The stored entries (excludes applied), `None` when nothing is stored (never
    /// listed, or a placeholder a baseline left).
    pub stored: Option<Vec<Entry>>,
    /// What a pass listing the folder now would report.
    pub changes: Vec<Change>,
}

impl Engine {
    /// Lists `path` (a folder of `watch`) and compares it with its stored state exactly
    /// as a pass would, changing nothing: `pps ls` and the web UI's browser. One call
    /// to the source.
    pub async fn compare(&self, watch: &Watch, path: &str) -> Result<Comparison> {
        let source = self.source(watch)?;
        let scope = self.store.scope(&watch.source, &watch.root)?;
        let rec = self.store.folder(scope, path)?.filter(|r| !r.is_unlisted());
        let mut all = source
            .list(path, ListOptions::default())
            .await
            .map_err(|e| self.context(e, watch, path))?;
        listing::sort_entries(&mut all);
        let (excluded, mut live): (Vec<Entry>, Vec<Entry>) = all
            .into_iter()
            .partition(|e| watch.excludes.excludes(path, &e.name));
        keep_watched(watch, path, &mut live);
        let changes = match &rec {
            Some(_) => changes_since(watch, path, rec.as_ref(), &live)?,
            None => Vec::new(),
        };
        let stored = match rec {
            Some(r) => {
                let mut old = listing::decode(&r.listing)?;
                old.retain(|e| !watch.excludes.excludes(path, &e.name));
                Some(old)
            }
            None => None,
        };
        Ok(Comparison {
            live,
            excluded,
            stored,
            changes,
        })
    }

    /// Queues a scan of `path` (a folder or file of `watch`) for `targets`, through the
    /// outbox like any change, so it is delivered at least once: a user's manual scan.
    /// A folder is queued as created so that every target scans the folder itself (a
    /// folder-only target would otherwise scan its parent). A path the source no longer
    /// has but pps's state does is queued as deleted (a folder-only target scans its
    /// parent). Returns the update queued.
    ///
    /// # Errors
    /// `NotFound` for a path neither the source nor pps's state has (a typo: no deletion
    /// is pushed for it); the source's failure to look the path up; store failures.
    pub async fn queue_scan(
        &self,
        watch: &Watch,
        path: &str,
        targets: &[String],
    ) -> Result<Update> {
        let source = self.source(watch)?;
        let scope = self.store.scope(&watch.source, &watch.root)?;
        // A path gone at the source is scanned as deleted, so a removed season can be
        // pushed to a server by hand (folder-only servers get its parent, as for any
        // deletion); a folder if the store knew it as one.
        let (update, is_dir) = match source.stat(path).await {
            Ok(entry) if entry.is_dir() => (Update::Created, true),
            Ok(_) => (Update::Modified, false),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                match self.stored_kind(scope, path)? {
                    Some(is_dir) => (Update::Deleted, is_dir),
                    // Never there as far as pps knows: a typo, not a deletion to push.
                    None => {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "{path} is not at the source, and pps never saw it there: nothing to scan (check the path)"
                            ),
                        ));
                    }
                }
            }
            Err(e) => return Err(self.context(e, watch, path)),
        };
        let change = Change::new(path, update, is_dir);
        let commit = Commit {
            scans: targets
                .iter()
                .map(|t| NewScan {
                    target: t.clone(),
                    change: change.clone(),
                })
                .collect(),
            changes: vec![(change, Origin::Manual)],
            ..Commit::default()
        };
        self.store.commit(scope, &commit)?;
        Ok(update)
    }
}

impl Engine {
    /// Whether pps's stored state has `path`: `Some(true)` for a folder it recorded,
    /// `Some(is_dir)` for an entry of a recorded folder's listing, `None` when neither.
    fn stored_kind(&self, scope: ScopeId, path: &str) -> Result<Option<bool>> {
        if self.store.folder(scope, path)?.is_some() {
            return Ok(Some(true));
        }
        let Some(parent) = path::parent(path) else {
            return Ok(None);
        };
        let Some(rec) = self.store.folder(scope, parent)? else {
            return Ok(None);
        };
        let name = path::file_name(path);
        Ok(listing::decode(&rec.listing)?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.is_dir()))
    }
}

/// The settle rule for a folder whose listing differs from the stored one: `None` to
/// commit the change now, or the schedule that holds it back until the listing has
/// stayed the same for the settle time.
fn settle_hold(
    schedule: &Schedule,
    current: Option<FolderSchedule>,
    fingerprint: Fingerprint,
    now: Timestamp,
) -> Option<FolderSchedule> {
    if schedule.settle.is_zero() {
        return None;
    }
    match current.and_then(|s| s.settling.map(|x| (s, x))) {
        Some((s, x)) if x.fingerprint == fingerprint => {
            if now.since(x.since) >= schedule.settle {
                None
            } else {
                Some(FolderSchedule {
                    next_due: x.since.plus(schedule.settle),
                    force_refresh: false,
                    ..s
                })
            }
        }
        // First sight of this listing: it changed (again), so the wait starts over.
        _ => Some(FolderSchedule {
            interval: schedule.base(),
            next_due: now.plus(schedule.settle),
            // The change counts when it is committed; the rhythm is measured from the
            // change before.
            last_change: current.and_then(|s| s.last_change),
            hold_until: current.and_then(|s| s.hold_until),
            force_refresh: false,
            // The listing that commits the change after the wait is still the hint's.
            hinted_by: current.and_then(|s| s.hinted_by),
            settling: Some(Settling {
                fingerprint,
                since: now,
            }),
            burst: current.and_then(|s| s.burst),
            cadence: current.and_then(|s| s.cadence),
            evidence: false,
            seen_change: current.and_then(|s| s.seen_change),
            epoch: current.and_then(|s| s.epoch),
            changes: current.map_or(0, |s| s.changes),
            listed: Some(now),
        }),
    }
}
