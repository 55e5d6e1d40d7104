//! Confirmation: after a target accepted a scan, look for the item until it is
//! indexed, removed, or stuck ([`Engine::confirm_round`], [`Engine::run_confirm`]).
//!
//! Runs beside delivery, never inside it: a slow or down server delays only its own
//! confirmations, and a scan is never held back by the check of an earlier one.

use super::{Engine, TargetSpec};
use crate::clock::Timestamp;
use crate::confirm::{
    ConfirmPlan, ConfirmRequest, Lookup, NewConfirm, Outcome, PendingConfirm, Remedy, is_media_file,
};
use crate::error::Result;
use crate::store::{QueuedScan, ScopeId};
use crate::types::Update;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Confirmations looked up in one round (one batch; a server answers many per query).
pub const CONFIRM_BATCH: usize = 100;

/// The least time between two rounds of one target, so a stream of accepted scans
/// never turns into a stream of lookups: every round batches what came due meanwhile.
pub const CONFIRM_PACE: Duration = Duration::from_secs(5);

/// How long to wait before asking a server again that failed to answer a lookup, or
/// that asked for patience (a library still scanning).
pub const CONFIRM_RETRY: Duration = Duration::from_secs(60);

/// Folders read from the store to learn whether a new folder holds a media file.
const MEDIA_SEARCH_FOLDERS: usize = 64;

/// What one confirmation round did for one target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfirmReport {
    /// Confirmations looked up.
    pub checked: u64,
    /// Found in the library.
    pub indexed: u64,
    /// Deletions confirmed.
    pub removed: u64,
    /// Given up on (stuck).
    pub stuck: u64,
    /// Remedies run.
    pub remedied: u64,
    /// The server's last failure to answer, when one happened.
    pub failure: Option<String>,
}

impl Engine {
    /// The confirmations of the scans `covers` that `spec` accepted: one per media
    /// file, new folder holding media, or deletion the target can check.
    pub(super) fn confirms_for(
        &self,
        spec: &TargetSpec,
        covers: &[i64],
        queued: &HashMap<i64, &QueuedScan>,
    ) -> Result<Vec<NewConfirm>> {
        let Some(plan) = spec.confirm.then(|| spec.target.confirm_plan()).flatten() else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let deadline = now.plus(spec.confirm_deadline.unwrap_or(plan.deadline));
        let mut out = Vec::new();
        for id in covers {
            let Some(q) = queued.get(id) else { continue };
            let change = &q.change;
            let Some(path) = spec.mapping.map(&change.path) else {
                continue;
            };
            let media = |p: &str| is_media_file(p, plan.strm_items);
            let wanted = match (change.update, change.is_dir) {
                (_, false) if !media(&change.path) => false,
                (Update::Deleted, _) => {
                    plan.lookup_by_path || !self.store.known_items(&spec.name, &path)?.is_empty()
                }
                (_, false) => true,
                (_, true) => self.holds_media(q.scope, &change.path, &plan)?,
            };
            if wanted {
                out.push(NewConfirm {
                    scan: *id,
                    path,
                    sent_at: now,
                    next_check: plan.check_at(now, 0),
                    deadline,
                });
            }
        }
        Ok(out)
    }

    /// Whether the folder at `path` (as recorded by its watch) holds a media file at
    /// any depth, reading at most [`MEDIA_SEARCH_FOLDERS`] folders. A folder the store
    /// does not know counts as holding one: better a check too many than a new title
    /// never confirmed.
    fn holds_media(&self, scope: ScopeId, path: &str, plan: &ConfirmPlan) -> Result<bool> {
        let mut queue = vec![path.to_owned()];
        let mut read = 0;
        while let Some(folder) = queue.pop() {
            if read == MEDIA_SEARCH_FOLDERS {
                return Ok(true);
            }
            read += 1;
            let Some(record) = self.store.folder(scope, &folder)? else {
                return Ok(true);
            };
            let Ok(entries) = crate::listing::decode(&record.listing) else {
                return Ok(true);
            };
            for e in entries {
                let child = crate::path::join(&folder, &e.name);
                if e.is_dir() {
                    queue.push(child);
                } else if is_media_file(&child, plan.strm_items) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// One confirmation round for the target `name`: looks up the confirmations that
    /// are due (one batch), settles what it found, runs a remedy where one is due, and
    /// reschedules the rest. Errors only when the store fails.
    pub async fn confirm_round(&self, name: &str) -> Result<ConfirmReport> {
        self.confirm_round_until(name, self.clock.now()).await
    }

    /// A round that looks up every pending confirmation now, due or not (up to one
    /// batch): for a one-shot run (`Scanner.confirm(all=True)`) that will not wait
    /// for the schedule. Deadlines and the remedy still follow the clock.
    pub async fn confirm_now(&self, name: &str) -> Result<ConfirmReport> {
        self.confirm_round_until(name, Timestamp::from_secs(i64::MAX))
            .await
    }

    async fn confirm_round_until(&self, name: &str, cutoff: Timestamp) -> Result<ConfirmReport> {
        let spec = self.target(name)?;
        let mut report = ConfirmReport::default();
        let Some(plan) = spec.target.confirm_plan() else {
            return Ok(report);
        };
        let now = self.clock.now();
        let due = self.store.confirms_due(name, cutoff, CONFIRM_BATCH)?;
        if due.is_empty() {
            return Ok(report);
        }
        let mut requests = Vec::with_capacity(due.len());
        for c in &due {
            requests.push(self.request_of(name, c)?);
        }
        let mut results = spec.target.confirm(&requests).await;
        if results.len() != requests.len() {
            results = requests
                .iter()
                .map(|_| {
                    Err(crate::Error::new(
                        crate::ErrorKind::Unexpected,
                        "target answered the wrong number of lookups",
                    )
                    .temporary())
                })
                .collect();
        }
        report.checked = due.len() as u64;
        for ((mut c, request), result) in due.into_iter().zip(requests).zip(results) {
            let lookup = match result {
                Ok(lookup) => lookup,
                Err(e) if e.is_temporary() => {
                    let msg = e.to_string();
                    tracing::warn!(target = name, path = %c.path, error = %msg, "could not ask the server whether a scan was indexed; will ask again");
                    report.failure = Some(msg.clone());
                    if now >= c.deadline {
                        let reason = format!(
                            "could not ask the server before the deadline ({} after the scan): {msg}",
                            human(now.since(c.sent_at))
                        );
                        self.stuck(&c, reason, &mut report)?;
                    } else {
                        c.note = Some(format!("lookup failed: {msg}"));
                        c.next_check = now.plus(CONFIRM_RETRY).min(c.deadline);
                        self.store.update_confirm(&c)?;
                    }
                    continue;
                }
                Err(e) => {
                    let reason = format!("the server refused the lookup: {e}");
                    self.stuck(&c, reason, &mut report)?;
                    continue;
                }
            };
            match (c.change.update, lookup.items.first().cloned()) {
                (Update::Deleted, None) => {
                    tracing::info!(target = name, path = %c.path, "deletion reached the library");
                    self.store.settle_confirm(c.id, &Outcome::Removed)?;
                    report.removed += 1;
                }
                (Update::Created | Update::Modified, Some(item)) => {
                    tracing::info!(target = name, path = %c.path, item = %item.title, "indexed");
                    self.store.settle_confirm(c.id, &Outcome::Indexed(item))?;
                    report.indexed += 1;
                }
                _ => {
                    self.missed(spec, &plan, &mut c, &request, lookup, now, &mut report)
                        .await?
                }
            }
        }
        Ok(report)
    }

    /// A check that did not find the outcome: remedy when due, stuck past the
    /// deadline, otherwise the next check.
    #[allow(clippy::too_many_arguments)]
    async fn missed(
        &self,
        spec: &TargetSpec,
        plan: &ConfirmPlan,
        c: &mut PendingConfirm,
        request: &ConfirmRequest,
        lookup: Lookup,
        now: Timestamp,
        report: &mut ConfirmReport,
    ) -> Result<()> {
        c.checks += 1;
        if lookup.note.is_some() {
            c.note = lookup.note;
        }
        let next = plan
            .check_at(c.sent_at, c.checks)
            .max(now.plus(CONFIRM_PACE));
        let remedy_due = now >= c.sent_at.plus(plan.remedy_after) || next >= c.deadline;
        if !c.remedied && remedy_due {
            match spec.target.remedy(request).await {
                Ok(Remedy::Done(what)) => {
                    tracing::info!(target = %spec.name, path = %c.path, remedy = %what, "item still missing; remedy sent");
                    c.remedied = true;
                    c.note = Some(match c.note.take() {
                        Some(n) => format!("{n}; {what}"),
                        None => what,
                    });
                    c.deadline = c.deadline.max(now.plus(plan.remedy_wait));
                    report.remedied += 1;
                }
                // The library is scanning: wait for it, up to the deadline plus the
                // time a remedy would have had.
                Ok(Remedy::Busy(why)) if now < c.deadline.plus(plan.remedy_wait) => {
                    c.note = Some(why);
                    c.next_check = now.plus(CONFIRM_RETRY);
                    self.store.update_confirm(c)?;
                    return Ok(());
                }
                Ok(Remedy::Busy(why)) => {
                    c.remedied = true;
                    c.note = Some(why);
                }
                Err(e) if e.is_temporary() && now < c.deadline => {
                    c.note = Some(format!("remedy failed: {e}"));
                    c.next_check = now.plus(CONFIRM_RETRY).min(c.deadline);
                    self.store.update_confirm(c)?;
                    return Ok(());
                }
                Err(e) => {
                    // No remedy on this server (or it refused): waiting is all that is left.
                    c.remedied = true;
                    if e.kind() != crate::ErrorKind::Unsupported {
                        c.note = Some(format!("remedy failed: {e}"));
                    }
                }
            }
        }
        if now >= c.deadline {
            let what = match c.change.update {
                Update::Deleted => "still in the library",
                _ => "not found",
            };
            let mut reason = format!("{what} {} after the scan", human(now.since(c.sent_at)));
            if let Some(note) = &c.note {
                reason.push_str("; ");
                reason.push_str(note);
            }
            if c.remedied && c.change.update != Update::Deleted {
                reason.push_str("; still missing");
            }
            return self.stuck(c, reason, report);
        }
        c.next_check = if c.remedied && c.deadline > next {
            next
        } else {
            next.min(c.deadline)
        };
        self.store.update_confirm(c)
    }

    fn stuck(&self, c: &PendingConfirm, reason: String, report: &mut ConfirmReport) -> Result<()> {
        tracing::warn!(target = %c.target, path = %c.path, reason = %reason, "stuck: the media server did not index what it was sent");
        self.store.settle_confirm(c.id, &Outcome::Stuck(reason))?;
        report.stuck += 1;
        Ok(())
    }

    fn request_of(&self, target: &str, c: &PendingConfirm) -> Result<ConfirmRequest> {
        let known = if c.change.update == Update::Deleted {
            self.store.known_items(target, &c.path)?
        } else {
            Vec::new()
        };
        Ok(ConfirmRequest {
            path: c.path.clone(),
            update: c.change.update,
            is_dir: c.change.is_dir,
            since: c.sent_at,
            known,
        })
    }

    /// Runs confirmation for one target for ever (drop the future to stop it): a round
    /// whenever a confirmation comes due, or when `wake` is notified (delivery accepted
    /// scans), never more often than [`CONFIRM_PACE`]. Only a permanent store error
    /// ends it.
    pub async fn run_confirm(
        &self,
        name: &str,
        wake: Arc<tokio::sync::Notify>,
        observe: impl Fn(&ConfirmReport),
    ) -> Result<()> {
        let idle = Duration::from_secs(300);
        loop {
            match self.confirm_round(name).await {
                Ok(r) => observe(&r),
                Err(e) if e.is_temporary() => {
                    tracing::warn!(target = name, error = %e, "confirmation could not use the store; will retry");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(CONFIRM_PACE).await;
            let wait = match self.store.next_confirm(name) {
                Ok(Some(at)) => at.since(self.clock.now()).min(idle),
                _ => idle,
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// A duration for a reason a user reads: `45 s`, `12 min`, `2 h 5 min`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
