//! The HTTP surface of `pps run --listen ADDR`: health, Prometheus metrics, and
//! authenticated triggers (cd2 webhooks, Sonarr/Radarr/Lidarr, manual).
//!
//! A trigger never scans anything by itself: each path it names becomes a hint that
//! makes the folder holding it due now (with `forceRefresh` on cd2). The hint is
//! committed to the store before `202 Accepted` is answered, so a crash right after
//! loses nothing, and the listing comparison still decides what changed, so a wrong or
//! replayed event costs at most one listing.

use crate::app::App;
use crate::metrics::Metrics;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pps_clouddrive::CloudDrive;
use pps_core::mapping::PathMapping;
use pps_core::{DirectorySource, Engine, Secret, Watch};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ServerState {
    engine: Engine,
    watches: Arc<Vec<(Watch, Arc<Notify>)>>,
    sources: BTreeMap<String, Arc<dyn DirectorySource>>,
    clouddrives: BTreeMap<String, CloudDrive>,
    targets: Vec<String>,
    store: PathBuf,
    token: Secret,
    arr: PathMapping,
    clouddrive2: PathMapping,
    metrics: Arc<Metrics>,
    max_body: usize,
    public_metrics: bool,
    /// The last health answer and when it was made: monitors poll `/health`, and
    /// each answer costs a store transaction and a cd2 call.
    health: Arc<tokio::sync::Mutex<Option<(Instant, Health)>>>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is left out on purpose.
        f.debug_struct("ServerState")
            .field("watches", &self.watches.len())
            .field("targets", &self.targets)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// State for the server of `app`; `watches` pairs each watch with the notifier
    /// that wakes its loop.
    pub fn new(app: &App, watches: Vec<(Watch, Arc<Notify>)>, metrics: Arc<Metrics>) -> Self {
        ServerState {
            engine: app.engine.clone(),
            watches: Arc::new(watches),
            sources: app.sources.clone(),
            clouddrives: app.clouddrives.clone(),
            targets: app.targets.keys().cloned().collect(),
            store: app.config.store.clone(),
            token: app.config.server.token.clone().unwrap_or_default(),
            arr: app.config.server.arr_mapping.clone(),
            clouddrive2: app.config.server.clouddrive2_mapping.clone(),
            metrics,
            max_body: app.config.server.max_body_bytes,
            public_metrics: app.config.server.public_metrics,
            health: Arc::default(),
        }
    }
}

pub use super::{BODY_TIMEOUT, HEADER_TIMEOUT, REQUEST_TIMEOUT};
/// How long a health answer is reused.
pub const HEALTH_CACHE: Duration = Duration::from_secs(5);

/// The router: `/health`, `/metrics`, `/triggers/{clouddrive2,arr,manual}`.
///
/// Triggers (and `/metrics` unless `public_metrics`) check the token and the declared
/// body length before any of the body is read, so a client without the token can make
/// pps hold no more than a request head. Bodies are read up to `max_body_bytes`, with a
/// timeout; the whole request has one too.
pub fn router(state: ServerState) -> Router {
    let triggers = Router::new()
        .route("/triggers/clouddrive2", post(trigger_clouddrive2))
        .route("/triggers/arr", post(trigger_arr))
        .route("/triggers/manual", post(trigger_manual))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    let metrics_route = if state.public_metrics {
        Router::new().route("/metrics", get(metrics))
    } else {
        Router::new()
            .route("/metrics", get(metrics))
            .route_layer(middleware::from_fn_with_state(state.clone(), guard))
    };
    Router::new()
        .route("/health", get(health))
        .merge(metrics_route)
        .merge(triggers)
        .fallback(|| async { Reject(StatusCode::NOT_FOUND, "no such endpoint".to_owned()) })
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// `router` while its generation is in force. After a new config was applied, a request
/// that still reaches this router (on a connection kept alive from before) is answered
/// `307` to the same place with `Connection: close`: the client sends it again on a new
/// connection, which the new config's router takes.
pub fn current_only(
    router: Router,
    control: Arc<crate::control::Control>,
    generation: u64,
) -> Router {
    router.layer(middleware::from_fn(
        move |req: axum::extract::Request, next: middleware::Next| {
            let control = control.clone();
            async move {
                if control.generation() == generation {
                    return next.run(req).await;
                }
                // Same place, never another site: `//host/x` would be read as a host.
                let to = req.uri().path_and_query().map_or("/".to_owned(), |p| {
                    format!("/{}", p.as_str().trim_start_matches(['/', '\\']))
                });
                let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
                if let Ok(v) = axum::http::HeaderValue::from_str(&to) {
                    r.headers_mut().insert(axum::http::header::LOCATION, v);
                }
                r.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
                r
            }
        },
    ))
}

/// Serves `router` on `listener` until the task is dropped: HTTP/1 connections from
/// hyper's connection builder, with [`HEADER_TIMEOUT`] for request heads (idle
/// keep-alive connections included), and at most `max_connections` open at once; a
/// connection beyond that waits in the kernel's queue. The cap is held well below the
/// process's limit of open files, so sockets never take the descriptors the source's
/// listings need.
pub async fn serve_http(listener: tokio::net::TcpListener, router: Router, max_connections: usize) {
    let cap = connection_cap(max_connections);
    let permits = Arc::new(tokio::sync::Semaphore::new(cap));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: wait instead of spinning on the error.
                tracing::warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // The client's address, for the UI's login limit.
        let service = hyper_util::service::TowerToHyperService::new(
            router.clone().layer(axum::Extension(super::Peer(peer))),
        );
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// The connection cap in force: the configured one, but at most a quarter of the soft
/// limit of open files, so the server never starves the rest of pps of descriptors.
pub fn connection_cap(configured: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let quarter = usize::try_from(soft / 4).unwrap_or(usize::MAX).max(4);
    configured.clamp(1, quarter)
}

/// A refused request: a status and a reason, answered as `{"error": reason}`.
#[derive(Debug)]
struct Reject(StatusCode, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        reply(self.0, json!({"error": self.1}))
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The token a request presents: `Authorization: Bearer TOKEN` (the scheme in any
/// case, RFC 7235) or `?token=`.
fn presented<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim_start().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        });
    from_header.or_else(|| {
        query?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| {
                url::form_urlencoded::parse(format!("t={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
    })
}

fn authorized(state: &ServerState, headers: &HeaderMap, query: Option<&str>) -> Result<(), Reject> {
    match presented(headers, query) {
        Some(t)
            if !state.token.is_empty()
                && super::same(t.as_bytes(), state.token.expose().as_bytes()) =>
        {
            Ok(())
        }
        Some(_) => Err(Reject(StatusCode::UNAUTHORIZED, "wrong token".to_owned())),
        None => Err(Reject(
            StatusCode::UNAUTHORIZED,
            "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN".to_owned(),
        )),
    }
}

/// Runs before a protected handler and before any of the body is read: the token,
/// then the declared length.
async fn guard(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    if let Err(r) = authorized(&state, req.headers(), req.uri().query()) {
        return r.into_response();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return too_large(state.max_body);
    }
    next.run(req).await
}

/// A 413 with `Connection: close`: the body was never read, so the connection cannot
/// carry another request; saying so keeps a client from sending its next request on a
/// connection the server is about to drop (it would fail as an incomplete message).
fn too_large(max: usize) -> Response {
    let mut r = Reject(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than max_body_bytes ({max} bytes)"),
    )
    .into_response();
    r.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}

/// Reads a body of at most `max_body_bytes`; a longer one (sent without a length) is
/// a 413, a stalled or broken one a 400 with the reason.
async fn read_body(state: &ServerState, body: Body) -> Result<Bytes, Response> {
    match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut cause: Option<&dyn std::error::Error> = Some(&e);
            while let Some(c) = cause {
                if c.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large(state.max_body));
                }
                cause = c.source();
            }
            Err(Reject(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            )
            .into_response())
        }
    }
}

/// One path a trigger named: as given, and as a source path after the trigger's path
/// mapping (`None` when no rule covers it).
struct Named {
    given: String,
    mapped: Option<String>,
    /// The mapping key applied, for the reason of an ignored path.
    mapping: &'static str,
}

impl Named {
    /// A path taken as it is (a manual trigger).
    fn plain(p: String) -> Self {
        Named {
            mapped: Some(p.clone()),
            given: p,
            mapping: "",
        }
    }

    fn mapped(given: String, mapping: &PathMapping, key: &'static str) -> Self {
        // An empty mapping passes paths through unchanged.
        let mapped = if mapping.is_empty() {
            Some(given.clone())
        } else {
            mapping.map(&given)
        };
        Named {
            given,
            mapped,
            mapping: key,
        }
    }
}

/// What a trigger did: paths accepted, and each path ignored with its reason.
struct Outcome {
    accepted: usize,
    ignored: Vec<(String, String)>,
}

/// Hints every watch that holds the named paths, each folder once, with one store
/// commit per watch; wakes the watches that got one. A path that reaches no watch is
/// reported with the reason, in the answer and the log, never dropped silently.
/// Synchronous store work: call it through [`hint_blocking`].
fn hint_all(state: &ServerState, origin: &str, paths: Vec<Named>) -> Result<Outcome, Reject> {
    let mut out = Outcome {
        accepted: 0,
        ignored: Vec::new(),
    };
    let after = |named: &Named, p: &str| {
        if named.mapping.is_empty() || p == named.given {
            String::new()
        } else {
            format!(" (after {}: {} -> {p})", named.mapping, named.given)
        }
    };
    // Each usable path once, with the watches that hold it.
    let mut wanted: Vec<(Named, String, Vec<usize>)> = Vec::new();
    let mut seen = BTreeSet::new();
    // Lengths first, of the path as given and as mapped: a path no rule covers is
    // echoed back and logged, so it must not be a megabyte long either.
    let unnameable = |p: &str| {
        p.len() > pps_core::engine::MAX_HINT_BYTES
            || p.split('/').filter(|c| !c.is_empty()).count() > pps_core::engine::MAX_HINT_DEPTH
    };
    if paths
        .iter()
        .any(|n| unnameable(&n.given) || n.mapped.as_deref().is_some_and(unnameable))
    {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            format!(
                "a path is longer than {} bytes or deeper than {} components; no folder is named like that",
                pps_core::engine::MAX_HINT_BYTES,
                pps_core::engine::MAX_HINT_DEPTH
            ),
        ));
    }
    for named in paths {
        let Some(p) = named.mapped.clone() else {
            out.ignored.push((
                named.given.clone(),
                format!("no `{}` rule covers it", named.mapping),
            ));
            continue;
        };
        let Ok(p) = pps_core::path::normalize(&p) else {
            let reason = format!("not an absolute path{}", after(&named, &p));
            out.ignored.push((named.given.clone(), reason));
            continue;
        };
        if !seen.insert(p.clone()) {
            continue;
        }
        let holders: Vec<usize> = state
            .watches
            .iter()
            .enumerate()
            .filter(|(_, (w, _))| pps_core::path::is_at_or_under(&p, &w.root))
            .map(|(i, _)| i)
            .collect();
        if holders.is_empty() {
            let reason = format!("no watch contains {p}{}", after(&named, &p));
            out.ignored.push((named.given.clone(), reason));
            continue;
        }
        wanted.push((named, p, holders));
    }
    let mut hit = vec![false; wanted.len()];
    let mut marked: BTreeSet<(usize, String)> = BTreeSet::new();
    for (i, (w, _)) in state.watches.iter().enumerate() {
        let mine: Vec<usize> = (0..wanted.len())
            .filter(|&k| wanted[k].2.contains(&i))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let list: Vec<String> = mine.iter().map(|&k| wanted[k].1.clone()).collect();
        let folders = state
            .engine
            .hint_paths(w, &list, pps_core::store::Origin::Webhook)
            .map_err(|e| {
                // Not accepted: the caller must retry (a crash could lose it otherwise).
                tracing::error!(error = %e, "could not record hints");
                Reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store refused the hints: {}", e.message()),
                )
            })?;
        for (k, folder) in mine.into_iter().zip(folders) {
            if let Some(f) = folder {
                hit[k] = true;
                marked.insert((i, f));
            }
        }
    }
    for (k, (named, p, _)) in wanted.iter().enumerate() {
        if hit[k] {
            out.accepted += 1;
        } else {
            out.ignored.push((
                named.given.clone(),
                format!(
                    "its watch has no baseline yet (the first pass records one){}",
                    after(named, p)
                ),
            ));
        }
    }
    let woken: BTreeSet<usize> = marked.iter().map(|(i, _)| *i).collect();
    for i in woken {
        state.watches[i].1.notify_one();
    }
    state.metrics.hints(origin, out.accepted as u64);
    for (path, reason) in &out.ignored {
        tracing::warn!(origin, path = %path, reason = %reason, "trigger path ignored");
    }
    tracing::info!(
        origin,
        accepted = out.accepted,
        ignored = out.ignored.len(),
        folders = marked.len(),
        "trigger handled"
    );
    Ok(out)
}

/// [`hint_all`] on a blocking thread: store work (a busy store waits up to its busy
/// timeout) never stalls the async workers that answer `/health`.
async fn hint_blocking(state: &ServerState, origin: &'static str, paths: Vec<Named>) -> Response {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || hint_all(&state, origin, paths)).await {
        Ok(Ok(out)) => accepted(&out),
        Ok(Err(r)) => r.into_response(),
        Err(_) => Reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            "recording the hints failed".to_owned(),
        )
        .into_response(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| {
        Reject(
            StatusCode::BAD_REQUEST,
            format!("the body is not what this trigger takes: {e}"),
        )
    })
}

fn accepted(out: &Outcome) -> Response {
    let ignored: Vec<_> = out
        .ignored
        .iter()
        .map(|(path, reason)| json!({"path": path, "reason": reason}))
        .collect();
    reply(
        StatusCode::ACCEPTED,
        json!({"accepted": out.accepted, "ignored": ignored.len(), "ignored_paths": ignored}),
    )
}

#[derive(Deserialize)]
struct Cd2Body {
    data: Vec<Cd2Item>,
}

#[derive(Deserialize)]
struct Cd2Item {
    #[allow(dead_code)]
    action: Option<String>,
    source_file: Option<String>,
    destination_file: Option<String>,
}

async fn trigger_clouddrive2(State(state): State<ServerState>, body: Body) -> Response {
    let body = match read_body(&state, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed: Cd2Body = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    // Every path named (both ends of a rename): the folder holding it is re-listed,
    // and its listing decides what happened.
    let mut paths = Vec::new();
    for item in parsed.data {
        // cd2 fills `destination_file` with an empty string for anything but a rename.
        for p in [item.source_file, item.destination_file]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
        {
            paths.push(Named::mapped(
                p,
                &state.clouddrive2,
                "server.clouddrive2_path_mapping",
            ));
        }
    }
    hint_blocking(&state, "clouddrive2", paths).await
}

async fn trigger_arr(State(state): State<ServerState>, body: Body) -> Response {
    let body = match read_body(&state, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let v: serde_json::Value = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let event = v["eventType"].as_str().unwrap_or("");
    if event.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "no eventType: not a Sonarr, Radarr or Lidarr webhook"}),
        );
    }
    if event == "Test" {
        return reply(StatusCode::OK, json!({"test": "ok"}));
    }
    // The deepest folders the *arr names: the imported file's folder when given, the
    // series/movie/artist folder otherwise.
    let mut found = Vec::new();
    for file_key in ["episodeFile", "movieFile", "trackFile"] {
        if let Some(p) = v[file_key]["path"].as_str() {
            found.push(p.to_owned());
        }
    }
    for files_key in ["episodeFiles", "trackFiles"] {
        if let Some(list) = v[files_key].as_array() {
            found.extend(
                list.iter()
                    .filter_map(|f| f["path"].as_str().map(str::to_owned)),
            );
        }
    }
    for (obj, key) in [
        ("series", "path"),
        ("movie", "folderPath"),
        ("artist", "path"),
        ("album", "path"),
    ] {
        if let Some(p) = v[obj][key].as_str() {
            found.push(p.to_owned());
        }
    }
    if let Some(p) = v["destinationPath"].as_str() {
        found.push(p.to_owned());
    }
    if found.is_empty() {
        return reply(
            StatusCode::OK,
            json!({"accepted": 0, "ignored": 0, "note": format!("event {event} names no path")}),
        );
    }
    let unique: BTreeSet<String> = found.into_iter().collect();
    let paths = unique
        .into_iter()
        .map(|p| Named::mapped(p, &state.arr, "server.arr_path_mapping"))
        .collect();
    hint_blocking(&state, "arr", paths).await
}

#[derive(Deserialize)]
struct ManualBody {
    path: String,
}

async fn trigger_manual(
    State(state): State<ServerState>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    // autoscan's form: POST /triggers/manual?dir=/path
    let path = match query.get("dir") {
        Some(d) => d.clone(),
        None => {
            let body = match read_body(&state, body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match parse::<ManualBody>(&body) {
                Ok(b) => b.path,
                Err(r) => return r.into_response(),
            }
        }
    };
    hint_blocking(&state, "manual", vec![Named::plain(path)]).await
}

/// A health answer: short reasons anyone may read (no paths, no addresses), and the
/// full ones for a caller with the token.
#[derive(Debug, Clone, Default)]
struct Health {
    short: Vec<String>,
    full: Vec<String>,
}

impl Health {
    fn problem(&mut self, short: String, full: String) {
        self.short.push(short);
        self.full.push(full);
    }
}

async fn check_health(state: &ServerState) -> Health {
    let mut h = Health::default();
    // The store is asked through its own open connection: opening the file by other
    // means and closing it would drop SQLite's POSIX locks on it (see "How To Corrupt
    // An SQLite Database File", 2.2).
    let store = state.engine.store().clone();
    match tokio::task::spawn_blocking(move || store.check_writable()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => h.problem(format!("store: {}", e.kind()), format!("store: {e}")),
        Err(_) => h.problem("store: check failed".into(), "store: check failed".into()),
    }
    for (name, cd) in &state.clouddrives {
        // Paced like a listing: a monitor polling /health spends the same budget.
        match tokio::time::timeout(Duration::from_secs(5), cd.system_info_paced()).await {
            Ok(Ok(info)) if info.is_login && !info.has_error => {}
            Ok(Ok(_)) => h.problem(
                format!("source {name}: cd2 not logged in or in error"),
                format!("source {name}: cd2 is not logged in to its cloud, or reports an error"),
            ),
            Ok(Err(e)) => h.problem(
                format!("source {name}: {}", e.kind()),
                format!("source {name}: {e}"),
            ),
            Err(_) => h.problem(
                format!("source {name}: no answer"),
                format!("source {name}: no answer within 5 s"),
            ),
        }
    }
    for (i, (w, _)) in state.watches.iter().enumerate() {
        if state.clouddrives.contains_key(&w.source) {
            continue;
        }
        if let Some(src) = state.sources.get(&w.source)
            && let Err(e) = src.stat(&w.root).await
        {
            h.problem(
                format!("watch {} ({}): root {}", i + 1, w.source, e.kind()),
                format!("watch {}: {e}", w.label()),
            );
        }
    }
    h
}

async fn health(State(state): State<ServerState>, req: Request) -> Response {
    let detailed = authorized(&state, req.headers(), req.uri().query()).is_ok();
    let h = {
        let mut cached = state.health.lock().await;
        match cached.as_ref() {
            Some((at, h)) if at.elapsed() < HEALTH_CACHE => h.clone(),
            _ => {
                let h = check_health(&state).await;
                *cached = Some((Instant::now(), h.clone()));
                h
            }
        }
    };
    if h.short.is_empty() {
        reply(StatusCode::OK, json!({"status": "ok"}))
    } else {
        let reasons = if detailed { h.full } else { h.short };
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unhealthy", "reasons": reasons}),
        )
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(state): State<ServerState>) -> Response {
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let snapshot = state.metrics.with(|c| {
        (
            c.listings.clone(),
            c.changes.clone(),
            c.scans.clone(),
            c.passes.clone(),
            c.hints.clone(),
            c.confirms.clone(),
            c.notifications.clone(),
        )
    });
    let (listings, changes, scans, passes, hints, confirms, notifications) = snapshot;
    family(
        &mut o,
        "pps_listings_total",
        "counter",
        "Folder listings by source and outcome.",
    );
    for ((s, out), n) in &listings {
        let _ = writeln!(
            o,
            "pps_listings_total{{source=\"{}\",outcome=\"{out}\"}} {n}",
            label(s)
        );
    }
    family(
        &mut o,
        "pps_changes_total",
        "counter",
        "Changes found, by kind.",
    );
    for (k, n) in &changes {
        let _ = writeln!(o, "pps_changes_total{{kind=\"{k}\"}} {n}");
    }
    family(
        &mut o,
        "pps_scans_total",
        "counter",
        "Scan requests by target and outcome (failed counts failed delivery rounds).",
    );
    for ((t, out), n) in &scans {
        let _ = writeln!(
            o,
            "pps_scans_total{{target=\"{}\",outcome=\"{out}\"}} {n}",
            label(t)
        );
    }
    family(
        &mut o,
        "pps_pass_duration_seconds",
        "summary",
        "Time spent in passes, per watch.",
    );
    for (w, (sum, count)) in &passes {
        let _ = writeln!(
            o,
            "pps_pass_duration_seconds_sum{{watch=\"{}\"}} {sum}",
            label(w)
        );
        let _ = writeln!(
            o,
            "pps_pass_duration_seconds_count{{watch=\"{}\"}} {count}",
            label(w)
        );
    }
    family(
        &mut o,
        "pps_hints_total",
        "counter",
        "Hints accepted, by origin.",
    );
    for (origin, n) in &hints {
        let _ = writeln!(o, "pps_hints_total{{origin=\"{origin}\"}} {n}");
    }
    family(
        &mut o,
        "pps_confirms_total",
        "counter",
        "Confirmations that a media server indexed a scan, by target and outcome (indexed, removed, stuck; remedied counts remedies sent, lookup_failed rounds the server did not answer).",
    );
    family(
        &mut o,
        "pps_notifications_total",
        "counter",
        "Notification messages by notifier and outcome (sent, failed; parked counts failures that parked the notifier).",
    );
    for ((t, out), n) in &notifications {
        let _ = writeln!(
            o,
            "pps_notifications_total{{notifier=\"{}\",outcome=\"{out}\"}} {n}",
            label(t)
        );
    }
    for ((t, out), n) in &confirms {
        let _ = writeln!(
            o,
            "pps_confirms_total{{target=\"{}\",outcome=\"{out}\"}} {n}",
            label(t)
        );
    }
    let store = state.engine.store().clone();
    // Calls of every process of this store (due, spare, walk, ls, the UI), from the
    // store's shared budget, per cloud source: the last hour and the last day.
    let sources: Vec<String> = state.clouddrives.keys().cloned().collect();
    let now = state.engine.clock().now();
    let spent = tokio::task::spawn_blocking(move || {
        sources
            .into_iter()
            .map(|s| {
                let (hour, day) = crate::status::calls_made(store.as_ref(), &s, now)?;
                Ok((s, hour, day))
            })
            .collect::<pps_core::Result<Vec<_>>>()
    })
    .await;
    if let Ok(Ok(spent)) = spent
        && !spent.is_empty()
    {
        for (name, help, pick) in [
            (
                "pps_source_calls_last_hour",
                "Calls made to the source in the last hour by every pps process of this store.",
                1,
            ),
            (
                "pps_source_calls_last_day",
                "Calls made to the source in the last 24 hours by every pps process of this store.",
                2,
            ),
        ] {
            family(&mut o, name, "gauge", help);
            for (s, hour, day) in &spent {
                let n = if pick == 1 { hour } else { day };
                let _ = writeln!(o, "{name}{{source=\"{}\"}} {n}", label(s));
            }
        }
    }
    let store = state.engine.store().clone();
    let stats = tokio::task::spawn_blocking(move || store.stats()).await;
    if let Ok(Ok(stats)) = stats {
        family(
            &mut o,
            "pps_outbox_pending",
            "gauge",
            "Scans waiting for delivery, per target.",
        );
        for t in &state.targets {
            let n = stats.outbox.iter().find(|x| x.0 == *t).map_or(0, |x| x.1);
            let _ = writeln!(o, "pps_outbox_pending{{target=\"{}\"}} {n}", label(t));
        }
        family(
            &mut o,
            "pps_outbox_parked",
            "gauge",
            "Scans parked (never retried), per target.",
        );
        for t in &state.targets {
            let n = stats.outbox.iter().find(|x| x.0 == *t).map_or(0, |x| x.2);
            let _ = writeln!(o, "pps_outbox_parked{{target=\"{}\"}} {n}", label(t));
        }
        for (name, help, pick) in [
            (
                "pps_confirms_pending",
                "Scans accepted and not yet found in the library, per target.",
                1,
            ),
            (
                "pps_confirms_stuck",
                "Scans the media server did not index by the deadline (retry them), per target.",
                2,
            ),
        ] {
            family(&mut o, name, "gauge", help);
            for (t, pending, stuck) in &stats.confirms {
                let n = if pick == 1 { pending } else { stuck };
                let _ = writeln!(o, "{name}{{target=\"{}\"}} {n}", label(t));
            }
        }
    }
    // The time from a change to its item in the library, per target, over the last day.
    let store = state.engine.store().clone();
    let targets = state.targets.clone();
    let since = state
        .engine
        .clock()
        .now()
        .minus(Duration::from_secs(86_400));
    let times = tokio::task::spawn_blocking(move || {
        targets
            .iter()
            .map(|t| Ok((t.clone(), store.indexed_times(t, since)?)))
            .collect::<pps_core::Result<Vec<_>>>()
    })
    .await;
    if let Ok(Ok(times)) = times {
        family(
            &mut o,
            "pps_indexed_seconds",
            "summary",
            "Seconds from a change being found to its item being in the library, per target, over the last day.",
        );
        for (t, secs) in times.iter().filter(|(_, s)| !s.is_empty()) {
            let q = crate::status::quantiles(secs);
            let t = label(t);
            let _ = writeln!(
                o,
                "pps_indexed_seconds{{target=\"{t}\",quantile=\"0.5\"}} {}",
                q.0
            );
            let _ = writeln!(
                o,
                "pps_indexed_seconds{{target=\"{t}\",quantile=\"1\"}} {}",
                q.1
            );
            let _ = writeln!(
                o,
                "pps_indexed_seconds_sum{{target=\"{t}\"}} {}",
                secs.iter().sum::<u64>()
            );
            let _ = writeln!(
                o,
                "pps_indexed_seconds_count{{target=\"{t}\"}} {}",
                secs.len()
            );
        }
    }
    // One family per cd2 counter, one sample per cd2 source.
    type Read = fn(&CloudDrive) -> String;
    let cd2_families: [(&str, &str, &str, Read); 6] = [
        (
            "pps_clouddrive_listings_total",
            "counter",
            "GetSubFiles calls sent to cd2, retries included.",
            |cd| cd.stats().listings.to_string(),
        ),
        (
            "pps_clouddrive_lookups_total",
            "counter",
            "FindFileByPath calls sent to cd2, retries included.",
            |cd| cd.stats().lookups.to_string(),
        ),
        (
            "pps_clouddrive_throttled_total",
            "counter",
            "Answers that said the cloud throttled us.",
            |cd| cd.stats().throttled.to_string(),
        ),
        (
            "pps_clouddrive_retries_total",
            "counter",
            "Attempts repeated after throttling or a transient failure.",
            |cd| cd.stats().retries.to_string(),
        ),
        (
            "pps_clouddrive_rate_lowered_total",
            "counter",
            "Times the rate limiter lowered its rate after throttling.",
            |cd| cd.stats().rate_lowered.to_string(),
        ),
        (
            "pps_clouddrive_rate",
            "gauge",
            "The rate limit in force now, in calls per second.",
            |cd| cd.current_rate().to_string(),
        ),
    ];
    if !state.clouddrives.is_empty() {
        for (name, kind, help, read) in cd2_families {
            family(&mut o, name, kind, help);
            for (source, cd) in &state.clouddrives {
                let _ = writeln!(o, "{name}{{source=\"{}\"}} {}", label(source), read(cd));
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], o).into_response()
}
