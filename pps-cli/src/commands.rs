//! The subcommands. Each returns an exit code or an error; only `main` prints errors.

use crate::app::App;
use crate::config::{self, Config, SourceConfig, TargetConfig, TargetKind, WatchConfig};
use pps_core::listing;
use pps_core::mapping::target_contains;
use pps_core::stdout::JsonLinesTarget;
use pps_core::store::{Commit, NewScan};
use pps_core::{Change, Entry, Error, ErrorKind, ListOptions, PassReport, Result, Update};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Exit code for an error that stopped a command: 2 for configuration and usage, 1
/// for everything else.
pub fn exit_code(err: &Error) -> u8 {
    match err.kind() {
        ErrorKind::ConfigInvalid => 2,
        _ => 1,
    }
}

/// A config for `--watch DIR` without a file: the local source and the stdout target.
pub fn watch_config(
    dirs: &[PathBuf],
    store: PathBuf,
    excludes: &[String],
    interval: Duration,
) -> Result<Config> {
    let exclude =
        pps_core::path::Excludes::new(excludes).map_err(|e| e.with("option", "--exclude"))?;
    let mut watches = Vec::new();
    for dir in dirs {
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
        watches.push(WatchConfig {
            source: "local".into(),
            path: pps_core::path::normalize(root)?,
            interval,
            max_interval: interval.max(Duration::from_secs(86_400)),
            active_max_interval: interval.max(Duration::from_secs(3600)),
            settle: Duration::ZERO,
            exclude: exclude.clone(),
            targets: vec!["stdout".into()],
            line: 0,
        });
    }
    let mut sources = BTreeMap::new();
    sources.insert(
        "local".to_owned(),
        SourceConfig::Local {
            concurrency: crate::config::LOCAL_CONCURRENCY,
        },
    );
    let mut targets = BTreeMap::new();
    targets.insert(
        "stdout".to_owned(),
        TargetConfig {
            kind: TargetKind::Stdout,
            mapping: Default::default(),
            rules: Vec::new(),
            scan_files: true,
            line: 0,
        },
    );
    Ok(Config {
        file: None,
        store,
        sources,
        targets,
        watches,
        server: crate::config::ServerConfig {
            max_body_bytes: 1 << 20,
            max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
            ..Default::default()
        },
    })
}

/// A config for `--store FILE` without a config file: the watches the store recorded
/// (those of `--watch DIR` mode are local folders), the local source, and the stdout
/// target. Only an existing store is read.
pub fn store_config(store: PathBuf) -> Result<Config> {
    let existing = pps_core::sqlite::SqliteStore::open_existing(&store)?;
    let stats = pps_core::MtimeStore::stats(&existing)?;
    drop(existing);
    let mut config = watch_config(&[], store, &[], Duration::from_secs(600))?;
    for (_, source, root, _) in stats.scopes {
        // Other sources need their settings from the config file; a re-index's staging
        // area is no watch.
        if source != "local" {
            continue;
        }
        config.watches.push(WatchConfig {
            source,
            path: root,
            interval: Duration::from_secs(600),
            max_interval: Duration::from_secs(86_400),
            active_max_interval: Duration::from_secs(3600),
            settle: Duration::ZERO,
            exclude: Default::default(),
            targets: vec!["stdout".into()],
            line: 0,
        });
    }
    Ok(config)
}

/// `pps init`: writes the commented template; never overwrites.
pub fn init(path: &Path) -> Result<ExitCode> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // The config can hold tokens: readable by its owner only, whatever the umask.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| {
        let msg = if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists; not overwritten (edit it, or pass --config NEW_FILE)",
                path.display()
            )
        } else {
            format!("cannot create {}: {e}", path.display())
        };
        Error::new(ErrorKind::ConfigInvalid, msg)
    })?;
    f.write_all(config::TEMPLATE.as_bytes())
        .map_err(|e| Error::from(e).with("file", path.display().to_string()))?;
    eprintln!("wrote {}; edit it, then run `pps check`", path.display());
    Ok(ExitCode::SUCCESS)
}

fn log_pass(report: &PassReport) {
    if report.baseline {
        tracing::info!(watch = %report.watch, folders = report.folders_listed, elapsed_ms = report.elapsed.as_millis() as u64, "baseline recorded; changes from now on will be scanned");
    } else if report.changes.is_empty() {
        tracing::debug!(watch = %report.watch, folders = report.folders_listed, elapsed_ms = report.elapsed.as_millis() as u64, "pass: no change");
    } else {
        tracing::info!(watch = %report.watch, folders = report.folders_listed, changes = report.changes.len(), scans = report.scans_queued, elapsed_ms = report.elapsed.as_millis() as u64, "pass found changes");
    }
    for e in &report.errors {
        tracing::warn!(watch = %report.watch, error = %e, "folder not listed; it keeps its old state");
    }
}

/// What `pps once` did: every watch's pass and every target's delivery.
#[derive(Debug, Default)]
pub struct OnceReport {
    /// Per watch: its label and the pass report, or the error that stopped the pass.
    pub passes: Vec<(String, Result<PassReport>)>,
    /// Per target: its name and what delivery did.
    pub deliveries: Vec<(String, pps_core::engine::DeliveryReport)>,
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
pub async fn run_once(app: &App, full: bool) -> Result<OnceReport> {
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

/// `pps once [--full]`: one pass over every watch (the folders due now, or with
/// `full` every folder), delivery to every target, a summary.
pub async fn once(app: &App, full: bool) -> Result<ExitCode> {
    if app.watches.is_empty() {
        return Err(no_watches(app));
    }
    let report = run_once(app, full).await?;
    if app.stdout.iter().any(JsonLinesTarget::is_closed) {
        return Ok(stdout_gone());
    }
    let (mut listed, mut changes, mut queued) = (0u64, 0usize, 0u64);
    for (label, r) in &report.passes {
        match r {
            Ok(r) => {
                log_pass(r);
                listed += r.folders_listed;
                changes += r.changes.len();
                queued += r.scans_queued;
            }
            Err(e) => tracing::error!(watch = %label, error = %e, "pass failed"),
        }
    }
    let mut delivered = Vec::new();
    for (name, r) in &report.deliveries {
        if let Some(f) = &r.temporary_failure {
            tracing::error!(target = %name, error = %f, "delivery failed; scans stay queued for the next run");
        }
        delivered.push(format!(
            "{name}: {} sent, {} parked{}",
            r.sent,
            r.parked,
            if r.remaining {
                ", some still queued"
            } else {
                ""
            }
        ));
    }
    tracing::info!(watches = app.watches.len(), folders = listed, changes, scans = queued, delivery = %delivered.join("; "), "once done");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Exit code 141 (128 + SIGPIPE), as a Unix tool killed by a closed pipe would end,
/// after a line on stderr: the reader of stdout went away (`pps run | head -1`), and
/// the scans that could not be printed stay queued.
pub fn stdout_gone() -> ExitCode {
    eprintln!("stdout was closed; stopping (scans not printed stay queued for the next run)");
    ExitCode::from(141)
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are registered when this
/// is called, not when it is first polled, so a signal sent right after the call is
/// never missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut t), Some(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                (Some(mut t), None) => {
                    t.recv().await;
                }
                (None, Some(mut i)) => {
                    i.recv().await;
                }
                (None, None) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `pps run`: the service. Each watch is passed every `interval`; each target has its
/// own delivery loop, woken when a pass queues scans, so one target that is down never
/// delays another. SIGINT/SIGTERM abandon work between atomic commits; a second signal
/// exits at once.
pub async fn run(app: &App) -> Result<ExitCode> {
    if app.watches.is_empty() {
        return Err(no_watches(app));
    }
    let first = shutdown_signal();
    serve(app, async {
        tokio::select! {
            _ = first => {}
            // `pps run | head -1`: the reader is gone, so end as Unix tools do instead
            // of retrying a closed pipe every pass.
            _ = app.stdout_closed() => return,
        }
        // Listen for the second signal before saying it can be sent.
        let second = shutdown_signal();
        tracing::info!("stopping; press Ctrl-C again to exit at once");
        tokio::spawn(async {
            second.await;
            // Everything committed is safe; queued scans are delivered on the next start.
            std::process::exit(130);
        });
    })
    .await?;
    if app.stdout.iter().any(JsonLinesTarget::is_closed) {
        return Ok(stdout_gone());
    }
    Ok(ExitCode::SUCCESS)
}

/// The service until `stop` resolves: passes on schedule and a delivery loop per
/// target, then a short, bounded last delivery. Work stops between atomic commits, so
/// nothing committed is lost and nothing is half-written.
pub async fn serve(app: &App, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let metrics = Arc::new(crate::server::Metrics::default());
    let wakes: BTreeMap<String, Arc<tokio::sync::Notify>> = app
        .targets
        .keys()
        .map(|n| (n.clone(), Arc::new(tokio::sync::Notify::new())))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (name, wake) in &wakes {
        let engine = app.engine.clone();
        let (name, wake) = (name.clone(), wake.clone());
        let metrics = metrics.clone();
        tasks.spawn(async move {
            let observe = |r: &pps_core::engine::DeliveryReport| metrics.delivery(&name, r);
            if let Err(e) = engine
                .run_delivery_observed(&name, wake, Duration::from_secs(30), observe)
                .await
            {
                tracing::error!(target = %name, error = %e, "delivery stopped");
            }
        });
    }
    // One call budget per source, shared by its watches: scheduled passes never plan
    // more listings than the source's rate allows (its rate limit layer paces them too).
    let mut budgets: BTreeMap<String, Arc<std::sync::Mutex<pps_core::CallBudget>>> =
        BTreeMap::new();
    // Per source with a daily ceiling: a day's bucket, which spare listings need and
    // every listing spends.
    let mut daily: BTreeMap<String, Arc<std::sync::Mutex<pps_core::CallBudget>>> = BTreeMap::new();
    let mut watch_wakes: Vec<Arc<tokio::sync::Notify>> = Vec::new();
    for (wc, w) in &app.watches {
        let engine = app.engine_for(wc);
        let (wc, w) = (wc.clone(), w.clone());
        let wake: Vec<_> = wc
            .targets
            .iter()
            .filter_map(|t| wakes.get(t).cloned())
            .collect();
        let own = Arc::new(tokio::sync::Notify::new());
        watch_wakes.push(own.clone());
        let metrics = metrics.clone();
        if app.full_passes {
            tasks.spawn(async move {
                loop {
                    match engine.pass(&w).await {
                        Ok(r) => {
                            log_pass(&r);
                            metrics.pass(&wc.source, &wc.label(), &r);
                            if r.scans_queued > 0 {
                                wake.iter().for_each(|n| n.notify_one());
                            }
                        }
                        Err(e) => tracing::error!(watch = %wc.label(), error = %e, "pass failed"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wc.interval) => {}
                        _ = own.notified() => {}
                    }
                }
            });
            continue;
        }
        let rate = app.calls_per_second(&wc.source);
        let budget = budgets
            .entry(wc.source.clone())
            .or_insert_with(|| {
                // A minute's worth of calls at most is saved up.
                let calls = (rate * 60.0).round().max(1.0) as u64;
                Arc::new(std::sync::Mutex::new(pps_core::CallBudget::new(
                    calls,
                    Duration::from_secs(60),
                )))
            })
            .clone();
        let spare_policy = app.spare_policy(&wc.source);
        let day = match spare_policy {
            Some(Some(cap)) => Some(
                daily
                    .entry(wc.source.clone())
                    .or_insert_with(|| {
                        Arc::new(std::sync::Mutex::new(pps_core::CallBudget::new(
                            cap,
                            Duration::from_secs(86_400),
                        )))
                    })
                    .clone(),
            ),
            _ => None,
        };
        tasks.spawn(async move {
            let lock = |b: &Arc<std::sync::Mutex<pps_core::CallBudget>>| {
                b.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .available(engine.clock().now())
            };
            loop {
                let n = lock(&budget);
                // Spare listings spend what the due folders leave of the rate, within the
                // daily ceiling when there is one; never for a local source.
                // At most about a second's worth per pass: the loop comes back every
                // second, and a big batch of spare listings would hold up the due ones
                // (a new episode) until the rate limit had let it all through.
                let per_pass = rate.ceil().max(1.0) as u64;
                let spare = match (&spare_policy, &day) {
                    (None, _) => 0,
                    (Some(_), Some(d)) => lock(d).min(per_pass),
                    (Some(_), None) => per_pass,
                };
                let mut spared = 0;
                if n > 0 {
                    match engine.pass_due_spare(&w, n, spare).await {
                        Ok(r) => {
                            metrics.pass(&wc.source, &wc.label(), &r);
                            spared = r.folders_spare;
                            budget
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .spend(r.folders_listed);
                            if let Some(d) = &day {
                                d.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .spend(r.folders_listed);
                            }
                            if r.folders_listed > r.folders_spare {
                                log_pass(&r);
                            }
                            if r.scans_queued > 0 {
                                wake.iter().for_each(|n| n.notify_one());
                            }
                        }
                        Err(e) => tracing::error!(watch = %wc.label(), error = %e, "pass failed"),
                    }
                }
                // Sleep until the next folder is due (at most a minute, so a changed
                // clock or a refilled budget is noticed), or until a hint arrives; not
                // at all while spare listings are being made (the rate limit paces them).
                let wait = match engine.schedule_summary(&w, Duration::ZERO) {
                    _ if spared > 0 => Duration::ZERO,
                    Ok(s) if s.due_now > 0 => Duration::from_secs(1),
                    Ok(s) => s
                        .next_due
                        .map_or(Duration::from_secs(60), |d| d.since(engine.clock().now()))
                        .clamp(Duration::from_secs(1), Duration::from_secs(60)),
                    Err(_) => Duration::from_secs(60),
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = own.notified() => {}
                }
            }
        });
    }
    // Push hints (cd2's change events) make the named folders due at once; the listing
    // still decides what changed.
    for (name, src) in &app.sources {
        let Some(mut hints) = src.hints() else {
            continue;
        };
        let mine: Vec<(pps_core::Watch, Arc<tokio::sync::Notify>)> = app
            .watches
            .iter()
            .zip(&watch_wakes)
            .filter(|((wc, _), _)| wc.source == *name)
            .map(|((_, w), n)| (w.clone(), n.clone()))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let engine = app.engine.clone();
        let name = name.clone();
        tasks.spawn(async move {
            use futures_util::StreamExt;
            while let Some(hint) = hints.next().await {
                for (w, wake) in &mine {
                    match engine.hint_event(w, &hint) {
                        Ok(marked) if !marked.is_empty() => {
                            tracing::debug!(source = %name, path = %hint.path, "push hint: folder due now");
                            wake.notify_one();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(source = %name, error = %e, "could not record a push hint"),
                    }
                }
            }
            tracing::info!(source = %name, "push events ended; polling continues");
        });
    }
    if let Some(addr) = app.config.server.listen {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("cannot listen on {addr}: {e}"),
            )
            .with("key", "server.listen")
        })?;
        let watches: Vec<_> = app
            .watches
            .iter()
            .map(|(_, w)| w.clone())
            .zip(watch_wakes.iter().cloned())
            .collect();
        let state = crate::server::ServerState::new(app, watches, metrics.clone());
        let router = crate::server::router(state);
        let cap = crate::server::connection_cap(app.config.server.max_connections);
        tracing::info!(%addr, max_connections = cap, "listening for health, metrics and triggers");
        tasks.spawn(crate::server::serve_http(listener, router, cap));
    }
    if !app.full_passes {
        // Scheduled passes are quiet when nothing changes; one line a minute says the
        // service is alive and what it spends of each source's budget.
        let metrics = metrics.clone();
        let rates: BTreeMap<String, f64> = app
            .config
            .sources
            .iter()
            .filter(|(_, s)| matches!(s, SourceConfig::CloudDrive2(_)))
            .map(|(n, _)| (n.clone(), app.calls_per_second(n)))
            .collect();
        tasks.spawn(async move {
            let every = Duration::from_secs(60);
            let mut last = metrics.totals();
            loop {
                tokio::time::sleep(every).await;
                let now = metrics.totals();
                let listed: u64 = now.0.values().sum::<u64>() - last.0.values().sum::<u64>();
                let budget: Vec<String> = rates
                    .iter()
                    .map(|(name, rate)| {
                        let used = now.0.get(name).copied().unwrap_or(0)
                            - last.0.get(name).copied().unwrap_or(0);
                        format!("{name} {used} of {:.0}", rate * every.as_secs_f64())
                    })
                    .collect();
                tracing::info!(
                    folders_listed = listed,
                    calls_of_budget = %budget.join(", "),
                    changes = now.1 - last.1,
                    "last minute"
                );
                last = now;
            }
        });
    }
    tracing::info!(watches = app.watches.len(), targets = app.targets.len(), store = %app.config.store.display(), "pps running");
    stop.await;
    // Tasks only stop at await points, never inside a commit.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Queued scans get a short, bounded last chance, every target at once.
    let mut last = tokio::task::JoinSet::new();
    for name in app.targets.keys() {
        let engine = app.engine.clone();
        let name = name.clone();
        last.spawn(async move {
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(5), engine.deliver_all(&name)).await
                && r.remaining
            {
                tracing::info!(target = %name, "some scans stay queued for the next start");
            }
        });
    }
    while last.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// Prints progress of a pass on stderr: a live line on a terminal, a plain line every
/// five seconds otherwise.
fn progress_printer() -> impl Fn(&str, pps_core::engine::Progress) + Send + Sync + 'static {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let last = AtomicU64::new(0);
    move |label, p| {
        let ms = started.elapsed().as_millis() as u64;
        let every = if tty { 100 } else { 5000 };
        let prev = last.load(Ordering::Relaxed);
        if ms < prev + every {
            return;
        }
        last.store(ms, Ordering::Relaxed);
        let secs = (ms as f64 / 1000.0).max(0.001);
        let rate = p.listed as f64 / secs;
        let line = format!(
            "{label}: {} folders listed, {rate:.0}/s, {} waiting, {secs:.0}s elapsed",
            p.listed, p.queued
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

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

/// `pps index [WATCH...]`: records the baseline of the named watches (all when none),
/// with progress. An existing baseline is dropped and recorded anew; changes not yet
/// found are not scanned.
pub async fn index(app: &App, selected: &[String]) -> Result<ExitCode> {
    let mut chosen = Vec::new();
    if selected.is_empty() {
        chosen.extend(0..app.watches.len());
    } else {
        for s in selected {
            let i = app
                .watches
                .iter()
                .position(|(wc, _)| wc.label() == *s || wc.path == *s)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        "no watch has that name; use SOURCE:PATH as `pps status` shows it",
                    )
                    .with("watch", s.clone())
                })?;
            chosen.push(i);
        }
    }
    if chosen.is_empty() {
        return Err(no_watches(app));
    }
    let mut failed = false;
    let mut stop = std::pin::pin!(shutdown_signal());
    for i in chosen {
        let wc = &app.watches[i].0;
        let started = Instant::now();
        let r = tokio::select! {
            r = reindex(app, i, Some(Box::new(progress_printer()))) => r,
            _ = &mut stop => {
                if std::io::stderr().is_terminal() {
                    eprintln!();
                }
                // Dropping the re-index stops it between atomic commits; what it wrote
                // went to a staging area, so the old baseline is untouched.
                eprintln!(
                    "index of {} interrupted; its previous baseline is kept whole (run `pps index` again to finish)",
                    wc.label()
                );
                return Ok(ExitCode::from(130));
            }
        };
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        match r {
            Ok(r) => {
                eprintln!(
                    "indexed {}: {} in {:.1}s{}",
                    wc.label(),
                    plural(r.folders_listed, "folder", "folders"),
                    started.elapsed().as_secs_f64(),
                    if r.errors.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", {} could not be listed (each keeps its earlier state, or is recorded when it next lists)",
                            plural(r.errors.len() as u64, "folder", "folders")
                        )
                    }
                );
                for e in &r.errors {
                    eprintln!("  {e}");
                }
                failed |= !r.errors.is_empty();
            }
            Err(e) => {
                eprintln!("index of {} failed: {e}", wc.label());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `1 folder`, `2 folders`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The error for a config with no `[[watch]]`: nothing to do is a mistake, never a
/// silent idle service.
pub fn no_watches(app: &App) -> Error {
    let file = app
        .config
        .file
        .as_ref()
        .map_or("the config".to_owned(), |f| f.display().to_string());
    Error::new(
        ErrorKind::ConfigInvalid,
        format!(
            "{file} has no [[watch]]: pps has nothing to watch; add one (see `pps init`'s template)"
        ),
    )
}

/// `pps check`: reaches every source and target and shows, per watch, where its scans
/// land. Every problem is a line of its own; exit 1 when there is any.
pub async fn check(app: &App) -> Result<ExitCode> {
    let mut ok = true;
    let mut out = String::new();
    let file = app
        .config
        .file
        .as_ref()
        .map_or("(none)".to_owned(), |f| f.display().to_string());
    out.push_str(&format!(
        "config {file}: {}, {}, {}; store {}\n",
        plural(app.config.sources.len() as u64, "source", "sources"),
        plural(app.config.targets.len() as u64, "target", "targets"),
        plural(app.config.watches.len() as u64, "watch", "watches"),
        app.config.store.display()
    ));
    if app.watches.is_empty() {
        ok = false;
        out.push_str(&format!("problem: {}\n", no_watches(app)));
    }
    let mut down = std::collections::BTreeSet::new();
    for (name, sc) in &app.config.sources {
        match sc {
            SourceConfig::Local { .. } => out.push_str(&format!("source {name} (local): ok\n")),
            SourceConfig::CloudDrive2(c) => {
                let Some(cd) = app.clouddrives.get(name) else {
                    continue;
                };
                // Health, then one authenticated call, neither retried: a wrong token or
                // port is said at once, in plain words.
                match cd.check().await {
                    Ok(info) => {
                        let mut notes = Vec::new();
                        if !info.system_ready {
                            notes.push("cd2 is still starting".to_owned());
                        }
                        if !info.is_login {
                            notes.push("cd2 is not logged in to its cloud account".to_owned());
                        }
                        if info.has_error {
                            notes.push(format!(
                                "cd2 reports an error: {}",
                                info.system_message.clone().unwrap_or_default()
                            ));
                        }
                        if notes.is_empty() {
                            out.push_str(&format!(
                                "source {name} (clouddrive2 {}): ok, cd2 ready, the token is accepted\n",
                                c.url
                            ));
                        } else {
                            ok = false;
                            out.push_str(&format!(
                                "source {name} (clouddrive2 {}): reachable, but {}\n",
                                c.url,
                                notes.join("; ")
                            ));
                        }
                    }
                    Err(e) => {
                        ok = false;
                        down.insert(name.clone());
                        out.push_str(&format!(
                            "source {name} (clouddrive2 {}): FAILED: {}\n",
                            c.url,
                            e.message()
                        ));
                    }
                }
            }
        }
    }
    let mut libraries = BTreeMap::new();
    for (name, t) in &app.targets {
        let kind = app.config.targets[name].kind.name();
        match t.check().await {
            Ok(info) => {
                out.push_str(&format!(
                    "target {name} ({kind}): ok, {}{}, {}\n",
                    info.server,
                    info.version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default(),
                    plural(info.libraries.len() as u64, "library", "libraries")
                ));
                for l in &info.libraries {
                    out.push_str(&format!(
                        "  {} [{}]: {}\n",
                        l.name,
                        l.id,
                        l.locations.join(", ")
                    ));
                }
                libraries.insert(name.clone(), info.libraries);
            }
            Err(e) => {
                ok = false;
                out.push_str(&format!(
                    "target {name} ({kind}): FAILED: {}\n",
                    e.message()
                ));
            }
        }
    }
    for (wc, _) in &app.watches {
        out.push_str(&format!(
            "watch {}{}\n",
            wc.label(),
            if wc.line > 0 {
                format!(" (line {})", wc.line)
            } else {
                String::new()
            }
        ));
        match app.sources.get(&wc.source) {
            Some(_) if down.contains(&wc.source) => {
                out.push_str("  source: not checked (the source failed, see above)\n");
            }
            Some(src) => match src.list(&wc.path, ListOptions::default()).await {
                Ok(entries) => out.push_str(&format!(
                    "  source: ok, {} at the root\n",
                    plural(entries.len() as u64, "entry", "entries")
                )),
                Err(e) => {
                    ok = false;
                    out.push_str(&format!("  source: FAILED: {e}\n"));
                }
            },
            None => ok = false,
        }
        for t in &wc.targets {
            let tc = &app.config.targets[t];
            let Some(mapped) = tc.mapping.map(&wc.path) else {
                out.push_str(&format!("  {t}: the watch root is not mapped (only paths under a rule's `from` reach this target)\n"));
                continue;
            };
            match libraries.get(t) {
                None => out.push_str(&format!(
                    "  {t}: {mapped} (target not reached, see above)\n"
                )),
                Some(libs) if libs.is_empty() => out.push_str(&format!("  {t}: {mapped}\n")),
                Some(libs) => {
                    let hit: Vec<String> = libs
                        .iter()
                        .filter(|l| {
                            l.locations.iter().any(|loc| {
                                target_contains(loc, &mapped) || target_contains(&mapped, loc)
                            })
                        })
                        .map(|l| format!("\"{}\" [{}]", l.name, l.id))
                        .collect();
                    if hit.is_empty() {
                        ok = false;
                        out.push_str(&format!("  {t}: WARNING: {mapped} is in no library of {t}; every scan of this watch would be parked (check `path_mapping`, or add the library)\n"));
                    } else {
                        out.push_str(&format!("  {t}: {mapped} -> {}\n", hit.join(", ")));
                    }
                }
            }
        }
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Civil date and time (UTC) of a Unix time, `YYYY-MM-DD HH:MM:SS`.
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A size in bytes for people: `812 B`, `1.2 MB`, `9120.6 GB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn describe(e: &Entry) -> (String, String, String) {
    let kind = if e.is_dir() { "dir" } else { "file" };
    let sz = if e.is_dir() {
        "-".to_owned()
    } else {
        size(e.size)
    };
    let mt = e.mtime.map_or("unknown".to_owned(), |m| {
        utc(m.as_nanos().div_euclid(1_000_000_000))
    });
    (kind.to_owned(), sz, mt)
}

/// `pps ls SOURCE:PATH`: the live listing beside the stored one, marking what a pass
/// would report.
pub async fn ls(app: &App, spec: &str) -> Result<ExitCode> {
    let (i, path) = app.resolve(spec)?;
    let (wc, _) = &app.watches[i];
    let src = app
        .sources
        .get(&wc.source)
        .ok_or_else(|| Error::new(ErrorKind::ConfigInvalid, "unknown source"))?;
    let store = app.engine.store();
    let scope = store.scope(&wc.source, &wc.path)?;
    let stored = match store.folder(scope, &path)? {
        // A placeholder: seen by a baseline, never listed; it holds nothing yet.
        Some(rec) if !rec.is_unlisted() => Some(listing::decode(&rec.listing)?),
        _ => None,
    };
    let mut live = src.list(&path, ListOptions::default()).await?;
    listing::sort_entries(&mut live);
    let (kept, excluded): (Vec<Entry>, Vec<Entry>) = live
        .into_iter()
        .partition(|e| !wc.exclude.excludes(&path, &e.name));
    let changes = match &stored {
        Some(old) => {
            let old: Vec<Entry> = old
                .iter()
                .filter(|e| !wc.exclude.excludes(&path, &e.name))
                .cloned()
                .collect();
            listing::diff(&path, &old, &kept)
        }
        None => Vec::new(),
    };
    let state_of = |name: &str, is_dir: bool| -> &'static str {
        let p = pps_core::path::join(&path, name);
        let mut s = "same";
        for c in changes.iter().filter(|c| c.path == p) {
            s = match (c.update, c.is_dir == is_dir) {
                (Update::Created, true) => "new",
                (Update::Modified, _) => "modified",
                (Update::Deleted, true) => "gone",
                _ => s,
            };
        }
        s
    };
    let mut rows = Vec::new();
    for e in &kept {
        let (k, s, m) = describe(e);
        rows.push((
            if stored.is_none() {
                "unknown"
            } else {
                state_of(&e.name, e.is_dir())
            },
            k,
            s,
            m,
            e.name.clone(),
        ));
    }
    if let Some(old) = &stored {
        for e in old {
            let p = pps_core::path::join(&path, &e.name);
            if changes
                .iter()
                .any(|c| c.path == p && c.update == Update::Deleted && c.is_dir == e.is_dir())
            {
                let (k, s, m) = describe(e);
                rows.push(("gone", k, s, m, e.name.clone()));
            }
        }
    }
    for e in &excluded {
        let (k, s, m) = describe(e);
        rows.push(("excluded", k, s, m, e.name.clone()));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{}:{path}  (watch {}; {})\n",
        wc.source,
        wc.label(),
        match &stored {
            Some(_) if changes.is_empty() => "unchanged since the last pass".to_owned(),
            Some(_) => format!(
                "{} a pass would report",
                plural(changes.len() as u64, "change", "changes")
            ),
            None => "no stored state: the next pass records it".to_owned(),
        }
    ));
    out.push_str(&format!(
        "{:<9} {:<4} {:>10}  {:<19}  NAME\n",
        "STATE", "KIND", "SIZE", "MTIME (UTC)"
    ));
    for (st, k, s, m, n) in rows {
        out.push_str(&format!("{st:<9} {k:<4} {s:>10}  {m:<19}  {n}\n"));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `pps scan SOURCE:PATH [--target NAME]`: queues a scan of that path through the outbox
/// and delivers it now.
pub async fn scan(app: &App, spec: &str, target: Option<&str>) -> Result<ExitCode> {
    let (i, path) = app.resolve(spec)?;
    let (wc, _) = &app.watches[i];
    let targets: Vec<String> = match target {
        Some(t) if app.targets.contains_key(t) => vec![t.to_owned()],
        Some(t) => {
            return Err(
                Error::new(ErrorKind::ConfigInvalid, "no target of that name").with("target", t),
            );
        }
        None => wc.targets.clone(),
    };
    let src = app
        .sources
        .get(&wc.source)
        .ok_or_else(|| Error::new(ErrorKind::ConfigInvalid, "unknown source"))?;
    let entry = src.stat(&path).await?;
    // A folder is queued as "created" so every target scans the folder itself (a
    // folder-only target would otherwise scan its parent).
    let update = if entry.is_dir() {
        Update::Created
    } else {
        Update::Modified
    };
    let store = app.engine.store();
    let scope = store.scope(&wc.source, &wc.path)?;
    let commit = Commit {
        scans: targets
            .iter()
            .map(|t| NewScan {
                target: t.clone(),
                change: Change::new(path.clone(), update, entry.is_dir()),
            })
            .collect(),
        ..Commit::default()
    };
    store.commit(scope, &commit)?;
    let mut failed = false;
    for t in &targets {
        let r = app.engine.deliver_all(t).await?;
        let state = match (&r.temporary_failure, r.parked) {
            (Some(f), _) => {
                failed = true;
                format!("will retry: {f}")
            }
            (None, p) if p > 0 => {
                failed = true;
                "parked (see `pps status`)".to_owned()
            }
            _ => "sent".to_owned(),
        };
        println!("{t}: {state} ({} requests)", r.sent);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What `pps status` reports: the store, each watch's folders and schedule, each
/// target's outbox with the scans that failed or were parked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// The store file.
    pub store: String,
    /// Its size in bytes (the WAL included).
    pub store_bytes: u64,
    /// Per watch.
    pub watches: Vec<WatchStatus>,
    /// Per target.
    pub targets: Vec<TargetStatus>,
}

/// One watch in [`StatusReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchStatus {
    /// `source:path`.
    pub watch: String,
    /// The source's name.
    pub source: String,
    /// The watched root.
    pub path: String,
    /// Folders with stored state.
    pub folders: u64,
    /// Whether a baseline was recorded.
    pub baseline: bool,
    /// The schedule now.
    pub schedule: ScheduleStatus,
}

/// A watch's schedule in [`WatchStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleStatus {
    /// Folders due now or overdue.
    pub due_now: u64,
    /// Folders due within the next hour (the due ones included).
    pub due_next_hour: u64,
    /// The longest current interval, in seconds.
    pub longest_interval_s: u64,
    /// Seconds until the next folder is due (negative: overdue).
    pub next_due_in_s: Option<i64>,
    /// Folders waiting for a forced re-list (push hints).
    pub forced: u64,
    /// Folders holding a change back for the settle time.
    pub settling: u64,
    /// Folders per interval: up to 15 minutes, an hour, 6 hours, a day, longer.
    pub bands: IntervalBands,
    /// Listings a day the schedule is on course to spend (due listings; spare ones
    /// come on top, up to the budget).
    pub calls_per_day: u64,
    /// What the source's rate allows a day (`None` for a local folder), and its daily
    /// ceiling when one is set.
    pub budget_per_day: Option<u64>,
    /// The source's `max_calls_per_day`.
    pub max_calls_per_day: Option<u64>,
}

/// Folders per interval band in [`ScheduleStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct IntervalBands {
    /// Intervals up to 15 minutes.
    pub up_to_15m: u64,
    /// Over 15 minutes, up to an hour.
    pub up_to_1h: u64,
    /// Over an hour, up to 6 hours.
    pub up_to_6h: u64,
    /// Over 6 hours, up to a day.
    pub up_to_1d: u64,
    /// Longer than a day.
    pub longer: u64,
}

/// One target in [`StatusReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetStatus {
    /// The target's name.
    pub target: String,
    /// Scans waiting for delivery.
    pub pending: u64,
    /// Scans parked (never retried until `pps retry`).
    pub parked: u64,
    /// Pending scans that failed at least once (the first 20).
    pub failing_scans: Vec<ScanStatus>,
    /// Parked scans with their reasons (the first 20).
    pub parked_scans: Vec<ScanStatus>,
}

/// One queued scan in [`TargetStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScanStatus {
    /// The source path.
    pub path: String,
    /// `created`, `modified` or `deleted`.
    pub update: pps_core::Update,
    /// The last error, or why it was parked.
    pub reason: Option<String>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Seconds until the next attempt (pending scans; negative: due).
    pub next_try_in_s: Option<i64>,
}

/// `pps status` as data: the store, folders per watch, the outbox per target with failed
/// and parked scans and their reasons.
pub fn status_report(app: &App) -> Result<StatusReport> {
    let store = app.engine.store();
    let stats = store.stats()?;
    let now = app.engine.clock().now();
    let mut watches = Vec::new();
    for (wc, w) in &app.watches {
        let folders = stats
            .scopes
            .iter()
            .find(|(_, s, r, _)| *s == wc.source && *r == wc.path)
            .map_or(0, |s| s.3);
        let sched = app.engine.schedule_summary(w, Duration::from_secs(3600))?;
        watches.push(WatchStatus {
            watch: wc.label(),
            source: wc.source.clone(),
            path: wc.path.clone(),
            folders,
            baseline: folders > 0,
            schedule: ScheduleStatus {
                due_now: sched.due_now,
                due_next_hour: sched.due_within,
                longest_interval_s: sched.longest_interval.as_secs(),
                next_due_in_s: sched.next_due.map(|d| d.as_secs() - now.as_secs()),
                forced: sched.forced,
                settling: sched.settling,
                bands: IntervalBands {
                    up_to_15m: sched.bands[0],
                    up_to_1h: sched.bands[1],
                    up_to_6h: sched.bands[2],
                    up_to_1d: sched.bands[3],
                    longer: sched.bands[4],
                },
                calls_per_day: sched.calls_per_day.round() as u64,
                budget_per_day: app
                    .spare_policy(&wc.source)
                    .map(|_| (app.calls_per_second(&wc.source) * 86_400.0).round() as u64),
                max_calls_per_day: app.spare_policy(&wc.source).flatten(),
            },
        });
    }
    let scan = |q: pps_core::store::QueuedScan| ScanStatus {
        path: q.change.path,
        update: q.change.update,
        reason: q.last_error,
        attempts: q.attempts,
        next_try_in_s: q.next_try.map(|t| t.as_secs() - now.as_secs()),
    };
    let mut targets = Vec::new();
    for name in app.targets.keys() {
        let (pending, parked) = stats
            .outbox
            .iter()
            .find(|(t, _, _)| t == name)
            .map_or((0, 0), |o| (o.1, o.2));
        targets.push(TargetStatus {
            target: name.clone(),
            pending,
            parked,
            failing_scans: store.failing(name, 20)?.into_iter().map(scan).collect(),
            parked_scans: store
                .parked(name)?
                .into_iter()
                .take(20)
                .map(|mut q| {
                    q.next_try = None;
                    scan(q)
                })
                .collect(),
        });
    }
    // The WAL holds recent commits until a checkpoint: part of what the store takes.
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let store_bytes = pps_core::sqlite::store_files(&app.config.store)
        .iter()
        .take(2)
        .map(|p| size(p))
        .sum();
    Ok(StatusReport {
        store: app.config.store.display().to_string(),
        store_bytes,
        watches,
        targets,
    })
}

/// `pps status [--json]`: folders per watch, the outbox per target (failed and parked
/// scans with reasons).
pub fn status(app: &App, json: bool) -> Result<ExitCode> {
    let v = status_report(app)?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&v)
                .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!("store {} ({})\n", v.store, size(v.store_bytes));
    for w in &v.watches {
        out.push_str(&format!(
            "watch {}: {}{}\n",
            w.watch,
            plural(w.folders, "folder", "folders"),
            if w.baseline { "" } else { " (no baseline yet)" }
        ));
        let sc = &w.schedule;
        let next = match sc.next_due_in_s {
            Some(s) if s <= 0 => "now".to_owned(),
            Some(s) => format!("in {}", crate::walk::human(Duration::from_secs(s as u64))),
            None => "-".to_owned(),
        };
        let count = |n: u64, what: &str| {
            if n > 0 {
                format!(", {n} {what}")
            } else {
                String::new()
            }
        };
        out.push_str(&format!(
            "  schedule: {} due now, {} due in the next hour, next {next}, longest interval {}{}{}\n",
            sc.due_now,
            sc.due_next_hour,
            crate::walk::human(Duration::from_secs(sc.longest_interval_s)),
            count(sc.forced, "hinted"),
            count(sc.settling, "settling"),
        ));
        let b = &sc.bands;
        let budget = match (sc.budget_per_day, sc.max_calls_per_day) {
            (Some(r), Some(cap)) => format!(
                " of the {r} the rate allows (spare listings fill it up to max_calls_per_day = {cap})"
            ),
            (Some(r), None) => format!(" of the {r} the rate allows (spare listings use the rest)"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  intervals: {} up to 15 min, {} up to 1 h, {} up to 6 h, {} up to a day, {} longer; on course for {} calls a day{budget}\n",
            b.up_to_15m, b.up_to_1h, b.up_to_6h, b.up_to_1d, b.longer, sc.calls_per_day
        ));
    }
    for t in &v.targets {
        out.push_str(&format!(
            "target {}: {} pending, {} parked\n",
            t.target, t.pending, t.parked
        ));
        for p in &t.failing_scans {
            let next = match p.next_try_in_s {
                Some(s) if s > 0 => format!(
                    ", next try in {}",
                    crate::walk::human(Duration::from_secs(s as u64))
                ),
                Some(_) => ", next try now".to_owned(),
                None => String::new(),
            };
            out.push_str(&format!(
                "  failing {} ({}): {} after {}{next}\n",
                p.path,
                p.update,
                p.reason.as_deref().unwrap_or(""),
                plural(u64::from(p.attempts), "attempt", "attempts"),
            ));
        }
        for p in &t.parked_scans {
            out.push_str(&format!(
                "  parked {} ({}): {}\n",
                p.path,
                p.update,
                p.reason.as_deref().unwrap_or("")
            ));
        }
        if t.parked > 0 {
            out.push_str(&format!(
                "  (`pps retry {}` queues parked scans again; `pps drop {} [PATH]` gives them up)\n",
                t.target, t.target
            ));
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Drops stored state at and under `SOURCE:PATH` (or a plain path inside a watch);
/// returns the number of folders dropped.
pub fn forget_path(app: &App, spec: &str) -> Result<u64> {
    let (i, path) = app.resolve(spec)?;
    let (wc, _) = &app.watches[i];
    let store = app.engine.store();
    let scope = store.scope(&wc.source, &wc.path)?;
    store.forget(scope, &path)
}

/// `pps forget SOURCE:PATH`: drops stored state at and under that path; exit 1 when
/// nothing was stored there (a typo in the path, most likely).
pub fn forget(app: &App, spec: &str) -> Result<ExitCode> {
    let n = forget_path(app, spec)?;
    let (i, path) = app.resolve(spec)?;
    let source = &app.watches[i].0.source;
    if n == 0 {
        eprintln!("nothing stored under {source}:{path}");
        return Ok(ExitCode::from(1));
    }
    println!(
        "forgot {} at and under {source}:{path}",
        plural(n, "folder", "folders")
    );
    Ok(ExitCode::SUCCESS)
}

/// `pps retry [TARGET]`: queues parked scans again (of one target, or all).
pub async fn retry(app: &App, target: Option<&str>) -> Result<ExitCode> {
    if let Some(t) = target
        && !app.targets.contains_key(t)
    {
        return Err(unknown_target(app, t));
    }
    let n = app.engine.store().unpark(target)?;
    println!(
        "{} queued again{}",
        plural(n, "parked scan", "parked scans"),
        target.map(|t| format!(" for {t}")).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `pps drop TARGET [PATH]`: gives up queued scans (pending and parked) of a target,
/// all of them or those at and under a source path.
pub fn drop_scans(app: &App, target: &str, path: Option<&str>) -> Result<ExitCode> {
    if !app.targets.contains_key(target) {
        return Err(unknown_target(app, target));
    }
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
    println!(
        "dropped {} of {target}{}",
        plural(n, "scan", "scans"),
        path.map(|p| format!(" at and under {p}"))
            .unwrap_or_default()
    );
    Ok(if n == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn unknown_target(app: &App, name: &str) -> Error {
    let known: Vec<_> = app.targets.keys().cloned().collect();
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
}

/// What `pps walk` was asked.
#[derive(Debug, Clone)]
pub struct WalkArgs {
    /// `SOURCE:PATH`.
    pub root: String,
    /// Listings in flight at once (default: the source's `concurrency`).
    pub concurrency: Option<usize>,
    /// Override of a clouddrive2 source's `max_queries_per_second`.
    pub max_queries_per_second: Option<f64>,
    /// Do not list below this depth.
    pub max_depth: Option<usize>,
    /// Base interval for the calls-per-day estimate.
    pub interval: Duration,
    /// Ceiling for the calls-per-day estimate.
    pub max_interval: Duration,
    /// Print one JSON object instead of text.
    pub json: bool,
}

/// `pps walk SOURCE:PATH`: a read-only traversal that reports the tree and its cost.
/// `config` is used when it exists; `local:PATH` works without one.
pub async fn walk(config: &Path, args: &WalkArgs) -> Result<ExitCode> {
    let (name, path) = args.root.split_once(':').ok_or_else(|| {
        Error::new(
            ErrorKind::ConfigInvalid,
            "write the root as SOURCE:PATH, e.g. cd2:/115/TV or local:/mnt/media",
        )
        .with("argument", args.root.clone())
    })?;
    // A local folder may be written relative, as `--watch DIR` takes it.
    let path = if name == "local" && !path.starts_with('/') {
        std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .ok_or_else(|| {
                Error::new(ErrorKind::ConfigInvalid, "the folder cannot be opened")
                    .with("argument", args.root.clone())
            })?
    } else {
        path.to_owned()
    };
    let path = pps_core::path::normalize(&path)?;
    let loaded = if config.exists() {
        Some(Config::load(config)?)
    } else {
        None
    };
    let mut settings = match loaded.as_ref().and_then(|c| c.sources.get(name)) {
        Some(s) => s.clone(),
        None if name == "local" => SourceConfig::Local {
            concurrency: crate::config::LOCAL_CONCURRENCY,
        },
        None => {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "no source named `{name}` (use a source of the config file, or local:PATH)"
                ),
            )
            .with("file", config.display().to_string()));
        }
    };
    if let Some(q) = args.max_queries_per_second {
        match &mut settings {
            SourceConfig::CloudDrive2(c) if q > 0.0 => c.max_queries_per_second = q,
            SourceConfig::CloudDrive2(_) => {
                return Err(Error::new(ErrorKind::ConfigInvalid, "must be above 0")
                    .with("option", "--max-queries-per-second"));
            }
            SourceConfig::Local { .. } => {
                tracing::warn!(
                    "--max-queries-per-second applies to clouddrive2 sources only; ignored"
                );
            }
        }
    }
    let rate = match &settings {
        SourceConfig::CloudDrive2(c) => Some(c.max_queries_per_second),
        SourceConfig::Local { .. } => None,
    };
    let (source, cd) = crate::app::source(&settings, &[])
        .map_err(|e| e.with_default("source", name.to_owned()))?;
    let opts = crate::walk::WalkOptions {
        concurrency: args
            .concurrency
            .unwrap_or_else(|| settings.concurrency())
            .max(1),
        max_depth: args.max_depth,
        rate,
        interval: args.interval,
        max_interval: args.max_interval,
        progress: !args.json,
    };
    let label = format!("{name}:{path}");
    let report =
        crate::walk::walk(&label, source, cd.as_ref(), &path, &opts, shutdown_signal()).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    let _ = std::io::stdout().flush();
    Ok(if report.failed.is_empty() && !report.interrupted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
