//! `pps run` and `pps once` over local folders with the stdout target.

use pps_core::local::LocalSource;
use pps_core::path::Excludes;
use pps_core::sqlite::SqliteStore;
use pps_core::stdout::JsonLinesTarget;
use pps_core::{Engine, Error, ErrorKind, PassReport, TargetSpec, Watch};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What `--watch`, `--store` and `--exclude` say.
#[derive(Debug)]
pub struct Settings {
    pub watches: Vec<PathBuf>,
    pub store: PathBuf,
    pub excludes: Vec<String>,
}

const SOURCE: &str = "local";
const TARGET: &str = "stdout";

/// The exit code for an error that stopped the command.
pub fn exit_code(err: &Error) -> u8 {
    match err.kind() {
        ErrorKind::ConfigInvalid => 2,
        _ => 1,
    }
}

fn build(settings: &Settings) -> Result<(Engine, Vec<Watch>), Error> {
    let excludes = Excludes::new(&settings.excludes).map_err(|e| e.with("option", "--exclude"))?;
    let mut watches = Vec::new();
    for dir in &settings.watches {
        let shown = dir.display().to_string();
        let abs = std::fs::canonicalize(dir).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("the watched folder cannot be opened: {e}"),
            )
            .with("option", "--watch")
            .with("path", shown.clone())
        })?;
        if !abs.is_dir() {
            return Err(
                Error::new(ErrorKind::ConfigInvalid, "the watched path is not a folder")
                    .with("option", "--watch")
                    .with("path", shown),
            );
        }
        let root = abs.to_str().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "the watched path is not valid UTF-8",
            )
            .with("option", "--watch")
            .with("path", shown.clone())
        })?;
        let mut watch = Watch::new(SOURCE, root).map_err(|e| e.with("option", "--watch"))?;
        watch.excludes = excludes.clone();
        watches.push(watch);
    }
    let store = SqliteStore::open(&settings.store)?;
    let engine = Engine::new(Arc::new(store))
        .with_source(SOURCE, Arc::new(LocalSource::new()))
        .with_target(TargetSpec::new(
            TARGET,
            Arc::new(JsonLinesTarget::stdout(TARGET)),
        ));
    Ok((engine, watches))
}

fn log_pass(report: &PassReport) {
    if report.baseline {
        tracing::info!(
            watch = %report.watch,
            folders = report.folders_listed,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "baseline recorded; changes from now on will be scanned"
        );
    } else if report.changes.is_empty() {
        tracing::debug!(watch = %report.watch, folders = report.folders_listed, elapsed_ms = report.elapsed.as_millis() as u64, "pass: no change");
    } else {
        tracing::info!(
            watch = %report.watch,
            folders = report.folders_listed,
            changes = report.changes.len(),
            scans = report.scans_queued,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "pass found changes"
        );
    }
}

/// `pps once`: one pass per watch, deliver, exit 0 when all went well and 1 otherwise.
pub async fn once(settings: Settings) -> Result<ExitCode, Error> {
    let (engine, watches) = build(&settings)?;
    let mut failed = false;
    for watch in &watches {
        match engine.pass(watch).await {
            Ok(report) => {
                log_pass(&report);
                for e in &report.errors {
                    tracing::error!(watch = %report.watch, error = %e, "folder not listed");
                }
                failed |= !report.errors.is_empty();
            }
            Err(e) => {
                tracing::error!(watch = %watch.label(), error = %e, "pass failed");
                failed = true;
            }
        }
    }
    let delivery = engine.deliver_all(TARGET).await?;
    if let Some(f) = &delivery.temporary_failure {
        tracing::error!(target = TARGET, error = %f, "delivery failed; scans stay queued for the next run");
        failed = true;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `pps run`: a pass per watch every `interval`, delivery as scans are queued, until
/// SIGINT or SIGTERM. A pass in progress is abandoned between commits (each commit is
/// atomic, so nothing is half-written); a second signal exits at once.
pub async fn run(settings: Settings, interval: Duration) -> Result<ExitCode, Error> {
    let (engine, watches) = build(&settings)?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let delivery = tokio::spawn({
        let engine = engine.clone();
        let wake = wake.clone();
        async move {
            engine
                .run_delivery(TARGET, wake, Duration::from_secs(30))
                .await
        }
    });
    tracing::info!(watches = watches.len(), interval_s = interval.as_secs_f64(), store = %settings.store.display(), "pps running");
    let mut shutdown = std::pin::pin!(shutdown_signal());
    'service: loop {
        for watch in &watches {
            tokio::select! {
                biased;
                _ = &mut shutdown => break 'service,
                result = engine.pass(watch) => match result {
                    Ok(report) => {
                        log_pass(&report);
                        for e in &report.errors {
                            tracing::warn!(watch = %report.watch, error = %e, "folder not listed; it keeps its old state");
                        }
                        if report.scans_queued > 0 {
                            wake.notify_one();
                        }
                    }
                    Err(e) => tracing::error!(watch = %watch.label(), error = %e, "pass failed"),
                },
            }
        }
        tokio::select! {
            biased;
            _ = &mut shutdown => break 'service,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!("stopping; press Ctrl-C again to exit at once");
    tokio::spawn(async {
        shutdown_signal().await;
        // Everything committed is safe; queued scans are delivered on the next start.
        std::process::exit(130);
    });
    delivery.abort();
    // Give queued scans a short, bounded chance to go out before exiting.
    match tokio::time::timeout(Duration::from_secs(5), engine.deliver_all(TARGET)).await {
        Ok(Ok(r)) if r.remaining => tracing::info!("some scans stay queued for the next start"),
        Ok(Err(e)) => tracing::warn!(error = %e, "final delivery failed; scans stay queued"),
        _ => {}
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
