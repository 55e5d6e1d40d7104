//! The service: scheduled passes within each source's call budget, push hints, a
//! delivery loop per target, the HTTP surface when `[server] listen` is set, and a clean
//! stop between atomic commits. `pps run` and `Scanner.serve()` are this.

use crate::app::App;
use crate::metrics::Metrics;
use pps_core::{Error, ErrorKind, PassReport, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What outlives one [`serve`] when the service applies a new config: the UI's sessions
/// and login limits, the way a UI edit asks for the new config to be applied, and a
/// generation counter. Each `serve` takes a new generation once it listens; requests
/// that reach the previous one's handlers (a browser's kept-alive connection) are sent
/// again with `Connection: close`, so they land on the config in force.
#[derive(Debug)]
pub struct Handover {
    reload: tokio::sync::Notify,
    generation: tokio::sync::watch::Sender<u64>,
    reloading: std::sync::atomic::AtomicBool,
    #[cfg(feature = "http")]
    pub(crate) ui: Arc<crate::ui::Sessions>,
    /// The listening socket, kept across reloads: closing it and binding again left a
    /// gap in which a local process could take the port (and receive the next login
    /// and webhook tokens). Each `serve` listens on a duplicate of it.
    #[cfg(feature = "http")]
    listener: std::sync::Mutex<Option<(std::net::SocketAddr, std::net::TcpListener)>>,
}

impl Default for Handover {
    fn default() -> Self {
        Handover {
            reload: tokio::sync::Notify::new(),
            generation: tokio::sync::watch::Sender::new(0),
            reloading: std::sync::atomic::AtomicBool::new(false),
            #[cfg(feature = "http")]
            ui: Arc::default(),
            #[cfg(feature = "http")]
            listener: std::sync::Mutex::new(None),
        }
    }
}

impl Handover {
    /// A listener on `addr` for one `serve`: the socket kept from an earlier `serve`
    /// when it listens on the same address, else a new one (which is then kept).
    ///
    /// The socket is never closed between two configs, so no other process can bind
    /// the port during a reload. When `listen` changed and the new address cannot be
    /// bound, the socket in force is kept (the error is logged): the UI stays where
    /// it was instead of the service exiting.
    #[cfg(feature = "http")]
    pub async fn listener_for(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<tokio::net::TcpListener> {
        let kept = {
            let slot = self
                .listener
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.as_ref().map(|(a, l)| (*a, l.try_clone()))
        };
        match kept {
            Some((a, l)) if a == addr => return tokio::net::TcpListener::from_std(l?),
            _ => {}
        }
        // tokio's bind sets SO_REUSEADDR (a restart need not wait out TIME_WAIT).
        let fresh = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l.into_std()?,
            Err(e) => {
                if let Some((old, l)) = kept {
                    tracing::error!(%addr, error = %e, %old, "cannot listen on the new address; staying on the old one");
                    return tokio::net::TcpListener::from_std(l?);
                }
                return Err(e);
            }
        };
        let copy = fresh.try_clone()?;
        *self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((addr, fresh));
        tokio::net::TcpListener::from_std(copy)
    }

    /// Asks the program running the service (`pps run`) to read its config file again
    /// and apply it, as SIGHUP does.
    pub fn request_reload(&self) {
        self.reload.notify_one();
    }

    /// Resolves when [`Handover::request_reload`] was called.
    pub async fn reload_requested(&self) {
        self.reload.notified().await;
    }

    /// The generation of the `serve` in force.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Waits (at most `limit`) for a generation after `seen`: the new config applied.
    /// False when it did not come in time.
    pub async fn wait_past(&self, seen: u64, limit: Duration) -> bool {
        let mut rx = self.generation.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|g| *g > seen))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The current `serve` stops to be replaced: it skips the last delivery (queued
    /// scans stay queued for the next one, which starts at once).
    pub fn set_reloading(&self, on: bool) {
        self.reloading
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn next_generation(&self) -> u64 {
        self.set_reloading(false);
        self.generation.send_modify(|g| *g += 1);
        self.generation()
    }
}

/// Logs what a pass did: a baseline and changes at info, a quiet pass at debug, each
/// folder that failed at warn.
pub fn log_pass(report: &PassReport) {
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

/// The service until `stop` resolves: passes on schedule and a delivery loop per
/// target, then a short, bounded last delivery. Work stops between atomic commits, so
/// nothing committed is lost and nothing is half-written.
pub async fn serve(app: &App, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
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
    if let Some(addr) = app.config.server.listen {
        #[cfg(feature = "http")]
        {
            let listener = app.handover.listener_for(addr).await.map_err(|e| {
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
            let generation = app.handover.next_generation();
            let state = crate::server::ServerState::new(app, watches, metrics.clone());
            let mut router = crate::server::router(state);
            if let Some(ui) =
                crate::ui::UiState::new(app, wakes.clone(), &watch_wakes, metrics.clone())
            {
                tracing::info!(%addr, base = %app.config.ui.base_path, "web UI on");
                router = crate::ui::router(ui).merge(router);
            }
            let router = crate::server::current_only(router, app.handover.clone(), generation);
            let cap = crate::server::connection_cap(app.config.server.max_connections);
            tracing::info!(%addr, max_connections = cap, "listening for health, metrics and triggers");
            tasks.spawn(crate::server::serve_http(listener, router, cap));
        }
        #[cfg(not(feature = "http"))]
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
        app.handover.next_generation();
    }
    tracing::info!(watches = app.watches.len(), targets = app.targets.len(), store = %app.config.store.display(), "pps running");
    stop.await;
    if app
        .handover
        .reloading
        .load(std::sync::atomic::Ordering::SeqCst)
    {
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
