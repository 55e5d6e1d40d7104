//! Re-recording baselines: `pps index`, `Scanner.index()`, the web UI's re-index.

use crate::app::App;
use pps_core::{Error, ErrorKind, PassReport, Result};

/// A progress callback: `(watch label, progress)` after every listing.
pub type ProgressFn = Box<dyn Fn(&str, pps_core::engine::Progress) + Send + Sync>;

/// Records the baseline of watch `i` anew: a pass that records everything and scans
/// nothing, swapped in for the old baseline only once complete
/// ([`Engine::reindex`](pps_core::Engine::reindex)). `progress` sees every listing.
pub async fn reindex(app: &App, i: usize, progress: Option<ProgressFn>) -> Result<PassReport> {
    let (wc, w) = app
        .watches
        .get(i)
        .ok_or_else(|| Error::new(ErrorKind::ConfigInvalid, "no such watch"))?;
    let mut engine = app.engine_for(wc);
    if let Some(p) = progress {
        engine = engine.with_progress(p);
    }
    engine.reindex(w).await
}

/// The watches `names` picks (`SOURCE:PATH` labels, or roots), in the order given; all
/// of them when `names` is empty.
///
/// # Errors
/// `ConfigInvalid` naming the first name no watch has.
pub fn select(app: &App, names: &[String]) -> Result<Vec<usize>> {
    if names.is_empty() {
        return Ok((0..app.watches.len()).collect());
    }
    names
        .iter()
        .map(|s| {
            app.watches
                .iter()
                .position(|(wc, _)| wc.label() == *s || wc.path == *s)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        "no watch has that name; use SOURCE:PATH as `pps status` shows it",
                    )
                    .with("watch", s.clone())
                })
        })
        .collect()
}
