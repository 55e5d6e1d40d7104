//! The service: scheduled passes within each source's call budget, push hints, a
//! delivery loop per target, the HTTP surface when `[server] listen` is set, and a clean
//! stop between atomic commits. `pps run` and `Scanner.serve()` are this.

use crate::app::App;
pub use crate::logs::log_pass;
use pps_core::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The service until `stop` resolves: passes on schedule and a delivery loop per
/// target, then a short, bounded last delivery. Work stops between atomic commits, so
/// nothing committed is lost and nothing is half-written.
///
/// A config edit (from the web UI) is not applied here: [`run`] does that.
pub async fn serve(app: &App, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    serve_kept(app, &Kept::default(), stop).await
}

/// Where [`run`] is in its life, for a supervisor (systemd's `sd_notify`) or a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A config is in force and its store is ours (at the start and after each reload).
    Ready,
    /// A new config was read and is valid: the running one stops to be replaced.
    Reloading,
    /// `stop` resolved: the last, bounded delivery runs, then `run` returns.
    Stopping,
}

/// How often [`run`] looks at the config file for an edit (by hand or from the web UI).
pub const CONFIG_POLL: Duration = Duration::from_secs(2);

/// The service with its config kept current, until `stop` resolves (or the reader of a
/// stdout target went away). `pps run` is this; a Rust program that embeds the service
/// gets the same reloads.
///
/// The config is read again with `reload` when its file's content changed (a hand edit,
/// looked at every [`CONFIG_POLL`]), when the web UI saved an edit, and when
/// [`Control::force_reload`](crate::control::Control::force_reload) is called (SIGHUP),
/// then:
/// - a config that does not load, or has no `[[watch]]`, is refused with the reason
///   logged, and the running one goes on unchanged;
/// - a valid one replaces the running service between two atomic commits: the old one
///   stops (queued scans stay queued), lets go of the store and its lock, and the new one
///   starts on the same store, the same listening socket and the same UI sessions;
/// - when the new config cannot be built (a store that cannot be opened), the previous
///   config is built again.
///
/// `reload` is `None` for a config made in code (`--watch`): nothing to read again.
/// `holder` names the program in the store's writer lock. `phase` is told each
/// [`Phase`]. Returns the app in force at the end (its `stdout` tells whether a reader
/// went away).
pub async fn run(
    mut app: App,
    holder: &'static str,
    reload: Option<impl Fn() -> Result<crate::Config>>,
    stop: impl std::future::Future<Output = ()>,
    mut phase: impl FnMut(Phase),
) -> Result<App> {
    // Every watch disabled is a service with nothing to pass, but its UI can enable
    // one again: only a config with no [[watch]] at all is refused.
    if app.config.watches.is_empty() {
        app.require_watches()?;
    } else if app.watches.is_empty() {
        tracing::warn!(
            "every [[watch]] has `enabled = false`: nothing is passed until one is enabled"
        );
    }
    let mut stop = std::pin::pin!(stop);
    let kept = Kept::default();
    let control = app.control.clone();
    control.set_applies_reloads(reload.is_some());
    // What the config file held when it was last looked at, and when it was last
    // applied: an edit is noticed by its content, not its modification time (which a
    // copy or an editor may keep).
    let file = app.config.file.clone().filter(|_| reload.is_some());
    let read = |f: &Option<std::path::PathBuf>| f.as_ref().and_then(|f| std::fs::read(f).ok());
    let mut seen = read(&file);
    let mut in_force = seen.clone();
    // The config before the last reload: a new config that builds but cannot start
    // (its new `listen` address is taken) goes back to it instead of ending pps.
    let mut before_reload: Option<crate::Config> = None;
    phase(Phase::Ready);
    loop {
        let mut next = None;
        let served = serve_kept(&app, &kept, async {
            // Awaited only once the service started: from here an error is this
            // config's own, not a reason to go back.
            before_reload = None;
            let mut poll = tokio::time::interval(CONFIG_POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let why = tokio::select! {
                    _ = &mut stop => break,
                    // `pps run | head -1`: the reader is gone, so end as Unix tools do
                    // instead of retrying a closed pipe every pass.
                    _ = app.stdout_closed() => return,
                    // ... and noticed without waiting for a write: the pipe says so.
                    _ = control.stdout_gone_notified(), if !app.stdout.is_empty() => {
                        app.stdout.iter().for_each(pps_core::stdout::JsonLinesTarget::mark_closed);
                        return;
                    }
                    r = control.reload_requested() => match r {
                        crate::control::Reload::Forced => "asked to reload",
                        crate::control::Reload::Edited => "the web UI edited the config",
                    },
                    _ = poll.tick(), if file.is_some() => "the config file changed",
                };
                if why != "asked to reload" {
                    let now = read(&file);
                    if now.is_none() || now == seen {
                        continue;
                    }
                    // Refused or not, this content has been looked at.
                    seen = now;
                    if seen == in_force {
                        // Put back as it was: what is on disk runs again.
                        control.set_refused(None);
                        continue;
                    }
                }
                let Some(reload) = &reload else {
                    tracing::info!(reason = why, "nothing to reload: the config was made in code (--watch)");
                    continue;
                };
                let loaded = reload().and_then(|c| {
                    if c.watches.is_empty() {
                        Err(Error::new(
                            ErrorKind::ConfigInvalid,
                            "the config has no [[watch]]",
                        ))
                    } else {
                        Ok(c)
                    }
                });
                match loaded {
                    Ok(c) => {
                        phase(Phase::Reloading);
                        tracing::info!(reason = why, "config valid; applying it");
                        control.set_reloading(true);
                        next = Some(c);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(reason = why, error = %e, "config refused; the running config stays");
                        control.set_refused(Some(e.to_string()));
                    }
                }
            }
            phase(Phase::Stopping);
        })
        .await;
        if let Err(e) = served {
            let Some(previous) = before_reload.take() else {
                return Err(e);
            };
            tracing::error!(error = %e, "the new config could not start; going on with the previous one");
            control.set_refused(Some(e.to_string()));
            drop(app);
            app = App::build_for(previous, crate::app::Access::Writer(holder))?;
            app.control = control.clone();
            phase(Phase::Ready);
            continue;
        }
        let Some(config) = next else { break };
        // The old service has stopped; its store and lock go with it before the new one
        // takes them.
        let previous = app.config.clone();
        before_reload = Some(previous.clone());
        drop(app);
        app = match App::build_for(config, crate::app::Access::Writer(holder)) {
            Ok(a) => {
                tracing::info!("config reloaded");
                a
            }
            Err(e) => {
                tracing::error!(error = %e, "the new config could not be applied; going on with the previous one");
                App::build_for(previous, crate::app::Access::Writer(holder))?
            }
        };
        // Reload requests and the generation go on with the new app.
        app.control = control.clone();
        control.set_refused(None);
        seen = read(&file);
        in_force = seen.clone();
        phase(Phase::Ready);
    }
    control.set_applies_reloads(false);
    Ok(app)
}

/// What the HTTP wing keeps across reloads (nothing without it).
#[cfg(feature = "http")]
use crate::http::Kept;
#[cfg(not(feature = "http"))]
#[derive(Default)]
struct Kept {
    metrics: Arc<crate::metrics::Metrics>,
}

/// [`serve`] with what the previous config's HTTP wing kept (its socket, the UI's
/// sessions).
async fn serve_kept(
    app: &App,
    kept: &Kept,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let metrics = kept.metrics.clone();
    let wakes: BTreeMap<String, Arc<tokio::sync::Notify>> = app
        .targets
        .keys()
        .map(|n| (n.clone(), Arc::new(tokio::sync::Notify::new())))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    // Notifiers read the history on their own: one that is down never delays a scan.
    let confirming = crate::notify::confirming_targets(app);
    for (name, nc) in &app.config.notifiers {
        match crate::notify::Notifier::new(
            name,
            nc.clone(),
            app.engine.store().clone(),
            confirming.clone(),
        ) {
            Ok(n) => {
                let metrics = metrics.clone();
                tasks.spawn(crate::notify::run(n, move |name, r| {
                    metrics.notified(name, r)
                }));
            }
            Err(e) => tracing::error!(notifier = %name, error = %e, "notifier not started"),
        }
    }
    let health = Arc::new(crate::notify::Health::default());
    if !app.clouddrives.is_empty() {
        // A throttle is written to the history once per episode (for notifiers).
        let (health, store, cds) = (
            health.clone(),
            app.engine.store().clone(),
            app.clouddrives.clone(),
        );
        tasks.spawn(async move {
            loop {
                for (name, cd) in &cds {
                    let n = cd.stats().throttled;
                    health.throttles(
                        store.as_ref(),
                        name,
                        n,
                        "the cloud asked pps to slow down; the rate is lowered for a while",
                    );
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
    }
    for (name, wake) in &wakes {
        let engine = app.engine.clone();
        let (name, wake) = (name.clone(), wake.clone());
        let metrics = metrics.clone();
        // Confirmation runs beside delivery, woken when a round wrote confirmations, so
        // a slow lookup never holds back the next scan.
        let confirming = app
            .targets
            .get(&name)
            .is_some_and(|t| t.confirm_plan().is_some())
            && app.config_confirms(&name);
        let confirm_wake = Arc::new(tokio::sync::Notify::new());
        if confirming {
            let (engine, name, wake, metrics) = (
                engine.clone(),
                name.clone(),
                confirm_wake.clone(),
                metrics.clone(),
            );
            tasks.spawn(async move {
                let observe = |r: &pps_core::engine::ConfirmReport| metrics.confirm(&name, r);
                if let Err(e) = engine.run_confirm(&name, wake, observe).await {
                    tracing::error!(target = %name, error = %e, "confirmation stopped");
                }
            });
        }
        tasks.spawn(async move {
            let observe = |r: &pps_core::engine::DeliveryReport| {
                metrics.delivery(&name, r);
                if r.confirming > 0 {
                    confirm_wake.notify_one();
                }
            };
            if let Err(e) = engine
                .run_delivery_observed(&name, wake, Duration::from_secs(30), observe)
                .await
            {
                tracing::error!(target = %name, error = %e, "delivery stopped");
            }
        });
    }
    // One pass budget per source, shared by its watches: scheduled passes never plan
    // more listings than the source's rate allows. Every call also asks the store's
    // shared budget (App::build_with_store), so other pps processes of this store
    // spend from the same account's allowance.
    let mut budgets: BTreeMap<String, Arc<pps_core::engine::PassBudget>> = BTreeMap::new();
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
        // A cd2 source has its own health check (GetSystemInfo, every few seconds,
        // no cloud call) that writes its outages; the others are judged by their passes.
        let health = (!app.clouddrives.contains_key(&wc.source)).then(|| health.clone());
        let store = app.engine.store().clone();
        let scope = store.scope(&wc.source, &wc.path).ok();
        if app.full_passes {
            tasks.spawn(async move {
                loop {
                    match engine.pass(&w).await {
                        Ok(r) => {
                            if let Some(h) = &health
                                && r.folders_listed > r.errors.len() as u64
                            {
                                h.up(store.as_ref(), &wc.source, scope, &wc.path);
                            }
                            log_pass(&r);
                            metrics.pass(&wc.source, &wc.label(), &r);
                            if r.scans_queued > 0 {
                                wake.iter().for_each(|n| n.notify_one());
                            }
                        }
                        Err(e) => {
                            tracing::error!(watch = %wc.label(), error = %e, "pass failed");
                            if let Some(h) = &health {
                                h.down(store.as_ref(), &wc.source, scope, &wc.path, &e);
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wc.interval) => {}
                        _ = own.notified() => {}
                    }
                }
            });
            continue;
        }
        let budget = budgets
            .entry(wc.source.clone())
            .or_insert_with(|| {
                Arc::new(pps_core::engine::PassBudget::new(
                    wc.source.clone(),
                    app.calls_per_second(&wc.source),
                    app.spare_policy(&wc.source),
                ))
            })
            .clone();
        tasks.spawn(async move {
            engine
                .run_scheduled_observed(
                    &w,
                    &budget,
                    &own,
                    |r| {
                        if let Some(h) = &health
                            && r.folders_listed > r.errors.len() as u64
                        {
                            h.up(store.as_ref(), &wc.source, scope, &wc.path);
                        }
                        metrics.pass(&wc.source, &wc.label(), r);
                        if r.folders_listed > r.folders_spare {
                            log_pass(r);
                        }
                        if r.scans_queued > 0 {
                            wake.iter().for_each(|n| n.notify_one());
                        }
                    },
                    |e| {
                        if let Some(h) = &health {
                            h.down(store.as_ref(), &wc.source, scope, &wc.path, e);
                        }
                    },
                )
                .await;
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
    #[cfg(feature = "http")]
    {
        let watches: Vec<_> = app
            .watches
            .iter()
            .map(|(_, w)| w.clone())
            .zip(watch_wakes.iter().cloned())
            .collect();
        if let Some(wing) =
            crate::http::start(app, kept, wakes.clone(), watches, metrics.clone()).await?
        {
            tasks.spawn(wing);
        }
    }
    #[cfg(not(feature = "http"))]
    if let Some(addr) = app.config.server.listen {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "this build of pps has no HTTP surface (feature `http`); cannot listen on {addr}"
            ),
        )
        .with("key", "server.listen"));
    }
    if !app.full_passes {
        // Scheduled passes are quiet when nothing changes; one line a minute says the
        // service is alive and what it spends of each source's budget.
        let metrics = metrics.clone();
        let rates: BTreeMap<String, f64> = app
            .config
            .sources
            .iter()
            .filter(|(_, s)| s.rate().is_some())
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
                if budget.is_empty() {
                    // Local sources only: no call budget to report.
                    tracing::info!(
                        folders_listed = listed,
                        changes = now.1 - last.1,
                        "last minute"
                    );
                } else {
                    tracing::info!(
                        folders_listed = listed,
                        calls_of_budget = %budget.join(", "),
                        changes = now.1 - last.1,
                        "last minute"
                    );
                }
                last = now;
            }
        });
    }
    for (name, cd) in &app.clouddrives {
        tasks.spawn(watch_source_health(
            name.clone(),
            cd.clone(),
            app.engine.store().clone(),
        ));
    }
    if app.config.server.listen.is_none() {
        app.control.next_generation();
    }
    tracing::info!(watches = app.watches.len(), targets = app.targets.len(), store = %app.config.store.display(), "pps running");
    stop.await;
    if app.control.reloading() {
        // A new config takes over at once: its delivery loops send what is queued.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::info!("stopped for the new config");
        return Ok(());
    }
    // Tasks only stop at await points, never inside a commit.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Queued scans get a short, bounded last chance, every target at once.
    let mut last = tokio::task::JoinSet::new();
    for name in app.targets.keys() {
        // A stdout whose reader is gone gets no last try: it would only fail again and
        // write a second `retried` line for the same scan.
        if app
            .stdout
            .iter()
            .any(|t| t.name() == name.as_str() && t.is_closed())
        {
            tracing::info!(target = %name, "the reader of stdout is gone: what is queued stays queued for the next start");
            continue;
        }
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

/// How often the service asks each cd2 source for its health (`GetSystemInfo`: no
/// token, no cloud call, not paced).
pub const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// Asks a cd2 source for its health every [`HEALTH_EVERY`] and records it in the store
/// for `pps status` (reachable, the error and since when, the rate in force); logs once
/// when it goes down and once when it comes back, never at every check.
async fn watch_source_health(
    name: String,
    cd: pps_clouddrive::CloudDrive,
    store: Arc<dyn pps_core::MtimeStore>,
) {
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    };
    // A state already recorded (by this service before a restart) keeps its "since".
    let mut last: Option<pps_core::store::SourceHealth> = store.source_health(&name).ok().flatten();
    loop {
        let error = match cd.system_info().await {
            Ok(info) if !info.is_login => {
                Some("cd2 is not logged in to its cloud account".to_owned())
            }
            Ok(_) => None,
            Err(e) => Some(e.message().to_owned()),
        };
        let now = unix_now();
        let reachable = error.is_none();
        let since = match &last {
            Some(h) if h.reachable == reachable => h.since,
            Some(h) => {
                let down_for = Duration::from_secs(u64::try_from(now - h.since).unwrap_or(0));
                // Written to the history once per outage: what notifiers announce.
                let (event, detail) = if reachable {
                    tracing::info!(source = %name, after = ?down_for, last_error = h.error.as_deref().unwrap_or(""), "source is back");
                    (
                        pps_core::store::Event::SourceUp,
                        format!("answers again after {}", pps_core::engine::human(down_for)),
                    )
                } else {
                    tracing::warn!(source = %name, error = error.as_deref().unwrap_or(""), "source is unreachable; pps keeps trying and logs once when it is back");
                    (
                        pps_core::store::Event::SourceDown,
                        error.clone().unwrap_or_default(),
                    )
                };
                if let Err(e) = store.log_event(None, event, &name, &detail) {
                    tracing::debug!(source = %name, error = %e, "cannot record the source's state in the history");
                }
                now
            }
            None => {
                if !reachable {
                    tracing::warn!(source = %name, error = error.as_deref().unwrap_or(""), "source is unreachable; pps keeps trying and logs once when it is back");
                    let detail = error.clone().unwrap_or_default();
                    if let Err(e) =
                        store.log_event(None, pps_core::store::Event::SourceDown, &name, &detail)
                    {
                        tracing::debug!(source = %name, error = %e, "cannot record the source's state in the history");
                    }
                }
                now
            }
        };
        let health = pps_core::store::SourceHealth {
            source: name.clone(),
            reachable,
            error,
            since,
            checked: now,
            rate: cd.current_rate(),
            paused_until: None,
        };
        if let Err(e) = store.record_source_health(&health) {
            tracing::debug!(source = %name, error = %e, "cannot record the source's health");
        }
        last = Some(health);
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}
