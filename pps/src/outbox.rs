//! Scans by hand and the ways out of the outbox: `pps scan`, `forget`, `retry`, `drop`.

use crate::app::App;
use pps_core::engine::DeliveryReport;
use pps_core::{Result, Update};

/// What [`scan`] did.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// The path queued, normalised.
    pub path: String,
    /// Queued as `created` (a folder), `modified` (a file) or `deleted` (a path gone at
    /// the source).
    pub update: Update,
    /// Per target: its name and the delivery that followed.
    pub deliveries: Vec<(String, DeliveryReport)>,
}

impl ScanReport {
    /// True when every target accepted the scan.
    pub fn ok(&self) -> bool {
        self.deliveries
            .iter()
            .all(|(_, r)| r.temporary_failure.is_none() && r.parked == 0)
    }
}

/// Queues a scan of `SOURCE:PATH` for `target` (or every target of its watch) through
/// the outbox, then delivers to those targets now.
pub async fn scan(app: &App, spec: &str, target: Option<&str>) -> Result<ScanReport> {
    let (i, path) = app.resolve(spec)?;
    let (wc, w) = &app.watches[i];
    let targets: Vec<String> = match target {
        Some(t) => {
            app.target_named(t)?;
            vec![t.to_owned()]
        }
        None => wc.targets.clone(),
    };
    let update = app.engine.queue_scan(w, &path, &targets).await?;
    let mut deliveries = Vec::new();
    for t in &targets {
        deliveries.push((t.clone(), app.engine.deliver_all(t).await?));
    }
    Ok(ScanReport {
        path,
        update,
        deliveries,
    })
}

/// Drops stored state at and under `SOURCE:PATH` (or a plain path inside a watch), so
/// the next pass records it afresh. Returns `(folders dropped, "source:path")`.
pub fn forget(app: &App, spec: &str) -> Result<(u64, String)> {
    let (i, path) = app.resolve(spec)?;
    let (wc, _) = &app.watches[i];
    let store = app.engine.store();
    let scope = store.scope(&wc.source, &wc.path)?;
    Ok((store.forget(scope, &path)?, format!("{}:{path}", wc.source)))
}

/// Puts parked scans (of `target`, or every target) back in the queue; returns how many.
pub fn retry(app: &App, target: Option<&str>) -> Result<u64> {
    Ok(retry_all(app, target)?.0)
}

/// [`retry`], and stuck scans too: each is queued again as a new scan, sent, and
/// confirmed afresh. Returns `(parked, stuck)` queued again.
pub fn retry_all(app: &App, target: Option<&str>) -> Result<(u64, u64)> {
    if let Some(t) = target {
        app.target_named(t)?;
    }
    let store = app.engine.store();
    Ok((store.unpark(target)?, store.retry_stuck(target)?))
}

/// Gives up the queued scans (pending and parked) of `target`, all of them or those at
/// and under `path` (`SOURCE:PATH` or a plain path). Returns `(how many, the path
/// normalised)`.
pub fn drop_scans(app: &App, target: &str, path: Option<&str>) -> Result<(u64, Option<String>)> {
    app.target_named(target)?;
    let path = match path {
        Some(p) => {
            let p = p
                .split_once(':')
                .filter(|(s, _)| app.sources.contains_key(*s))
                .map_or(p, |(_, p)| p);
            Some(pps_core::path::normalize(p).map_err(|e| e.with("argument", p.to_owned()))?)
        }
        None => None,
    };
    let n = app.engine.store().drop_scans(target, path.as_deref())?;
    Ok((n, path))
}
