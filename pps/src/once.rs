//! One pass over every watch, then delivery to every target: `pps once`, cron, and
//! `Scanner.run_once()`.

use crate::app::App;
use pps_core::engine::DeliveryReport;
use pps_core::{ErrorKind, PassReport, Result};

/// What `pps once` did: every watch's pass and every target's delivery.
#[derive(Debug, Default)]
pub struct OnceReport {
    /// Per watch: its label and the pass report, or the error that stopped the pass.
    pub passes: Vec<(String, Result<PassReport>)>,
    /// Per target: its name and what delivery did.
    pub deliveries: Vec<(String, DeliveryReport)>,
}

impl OnceReport {
    /// True when every folder was listed and every scan accepted.
    pub fn ok(&self) -> bool {
        self.passes
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|r| r.errors.is_empty()))
            && self
                .deliveries
                .iter()
                .all(|(_, d)| d.temporary_failure.is_none() && d.parked == 0)
    }
}

/// One pass over every watch (the folders due now, or every folder when `full` or in
/// `--watch DIR` mode), then delivery to every target, without printing.
/// Errors only when the store fails or the configuration is wrong; a failing watch or
/// target is reported in the result.
pub async fn once(app: &App, full: bool) -> Result<OnceReport> {
    let mut report = OnceReport::default();
    for (wc, w) in &app.watches {
        let engine = app.engine_for(wc);
        // A scheduled pass lists what is due now, all of it: the source's rate limit
        // paces the calls of a one-off run.
        let result = if full || app.full_passes {
            engine.pass(w).await
        } else {
            engine.pass_due(w, u64::MAX).await
        };
        match result {
            Ok(r) => report.passes.push((wc.label(), Ok(r))),
            Err(e) if matches!(e.kind(), ErrorKind::ConfigInvalid | ErrorKind::Corrupt) => {
                return Err(e);
            }
            Err(e) => report.passes.push((wc.label(), Err(e))),
        }
    }
    for name in app.targets.keys() {
        let d = app.engine.deliver_all(name).await?;
        report.deliveries.push((name.clone(), d));
    }
    Ok(report)
}

/// One confirmation round for every target that confirms: whether the media servers
/// indexed what they were sent. `all` looks up every pending confirmation now instead
/// of only those due (for a one-shot run that will not wait for the schedule).
/// Returns each target's report, in name order.
pub async fn confirm(
    app: &App,
    all: bool,
) -> Result<Vec<(String, pps_core::engine::ConfirmReport)>> {
    let mut out = Vec::new();
    for name in app.targets.keys() {
        if !app.config_confirms(name) {
            continue;
        }
        let r = if all {
            app.engine.confirm_now(name).await?
        } else {
            app.engine.confirm_round(name).await?
        };
        out.push((name.clone(), r));
    }
    Ok(out)
}
