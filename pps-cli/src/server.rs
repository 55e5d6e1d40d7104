//! The HTTP surface of `pps run --listen ADDR`: health, Prometheus metrics, and
//! authenticated triggers (cd2 webhooks, Sonarr/Radarr/Lidarr, manual).
//!
//! A trigger never scans anything by itself: each path it names becomes a hint that
//! makes the folder holding it due now (with `forceRefresh` on cd2). The hint is
//! committed to the store before `202 Accepted` is answered, so a crash right after
//! loses nothing, and the listing comparison still decides what changed, so a wrong or
//! replayed event costs at most one listing.

use crate::app::App;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pps_clouddrive::CloudDrive;
use pps_core::engine::DeliveryReport;
use pps_core::mapping::PathMapping;
use pps_core::{DirectorySource, Engine, PassReport, Secret, Watch};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

/// Counters the service keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// (source, outcome) -> listings.
    listings: BTreeMap<(String, String), u64>,
    /// change kind -> count.
    changes: BTreeMap<String, u64>,
    /// (target, outcome) -> scan requests.
    scans: BTreeMap<(String, String), u64>,
    /// watch -> (sum of seconds, passes).
    passes: BTreeMap<String, (f64, u64)>,
    /// origin -> hints accepted.
    hints: BTreeMap<String, u64>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a pass of a watch on `source`.
    pub fn pass(&self, source: &str, watch: &str, r: &PassReport) {
        self.with(|c| {
            let failed = r.errors.len() as u64;
            *c.listings
                .entry((source.to_owned(), "ok".into()))
                .or_default() += r.folders_listed.saturating_sub(failed);
            *c.listings
                .entry((source.to_owned(), "error".into()))
                .or_default() += failed;
            for ch in &r.changes {
                let kind = format!(
                    "{}_{}",
                    if ch.is_dir { "folder" } else { "file" },
                    ch.update
                );
                *c.changes.entry(kind).or_default() += 1;
            }
            let p = c.passes.entry(watch.to_owned()).or_default();
            p.0 += r.elapsed.as_secs_f64();
            p.1 += 1;
        });
    }

    /// Records a delivery round of `target`.
    pub fn delivery(&self, target: &str, r: &DeliveryReport) {
        self.with(|c| {
            *c.scans
                .entry((target.to_owned(), "sent".into()))
                .or_default() += r.sent;
            *c.scans
                .entry((target.to_owned(), "parked".into()))
                .or_default() += r.parked;
            if r.temporary_failure.is_some() {
                *c.scans
                    .entry((target.to_owned(), "failed".into()))
                    .or_default() += 1;
            }
        });
    }

    /// Listings so far per source (every outcome), and changes found so far: what the
    /// service's once-a-minute heartbeat reports the growth of.
    pub fn totals(&self) -> (BTreeMap<String, u64>, u64) {
        self.with(|c| {
            let mut per: BTreeMap<String, u64> = BTreeMap::new();
            for ((source, _), n) in &c.listings {
                *per.entry(source.clone()).or_default() += n;
            }
            (per, c.changes.values().sum())
        })
    }

    /// Records accepted hints.
    pub fn hints(&self, origin: &str, n: u64) {
        self.with(|c| *c.hints.entry(origin.to_owned()).or_default() += n);
    }
}

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
        }
    }
}

/// The router: `/health`, `/metrics`, `/triggers/{clouddrive2,arr,manual}`.
pub fn router(state: ServerState, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/triggers/clouddrive2", post(trigger_clouddrive2))
        .route("/triggers/arr", post(trigger_arr))
        .route("/triggers/manual", post(trigger_manual))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Compares without an early exit, so the time taken says nothing about how much of
/// a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
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

fn authorize(
    state: &ServerState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), Reject> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| query.get("token").map(String::as_str));
    match given {
        Some(t)
            if !state.token.is_empty() && same(t.as_bytes(), state.token.expose().as_bytes()) =>
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

/// Hints every watch that holds the named paths, each folder once; wakes the watches
/// that got one. A path that reaches no watch is reported with the reason, in the
/// answer and the log, never dropped silently.
fn hint_all(state: &ServerState, origin: &str, paths: Vec<Named>) -> Result<Outcome, Reject> {
    let mut out = Outcome {
        accepted: 0,
        ignored: Vec::new(),
    };
    let mut marked: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for named in paths {
        let after = |p: &str| {
            if named.mapping.is_empty() || p == named.given {
                String::new()
            } else {
                format!(" (after {}: {} -> {p})", named.mapping, named.given)
            }
        };
        let Some(p) = named.mapped.as_deref() else {
            out.ignored.push((
                named.given.clone(),
                format!("no `{}` rule covers it", named.mapping),
            ));
            continue;
        };
        let Ok(p) = pps_core::path::normalize(p) else {
            out.ignored.push((
                named.given.clone(),
                format!("not an absolute path{}", after(p)),
            ));
            continue;
        };
        if !seen.insert(p.clone()) {
            continue;
        }
        let mut inside = false;
        let mut any = false;
        for (i, (w, _)) in state.watches.iter().enumerate() {
            if !pps_core::path::is_at_or_under(&p, &w.root) {
                continue;
            }
            inside = true;
            match state.engine.hint(w, &p) {
                Ok(Some(folder)) => {
                    any = true;
                    marked.insert((i, folder));
                }
                Ok(None) => {}
                Err(e) => {
                    // Not accepted: the caller must retry (a crash could lose it otherwise).
                    tracing::error!(error = %e, "could not record a hint");
                    return Err(Reject(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("the store refused the hint: {e}"),
                    ));
                }
            }
        }
        if any {
            out.accepted += 1;
        } else if inside {
            out.ignored.push((
                named.given.clone(),
                format!(
                    "its watch has no baseline yet (the first pass records one){}",
                    after(&p)
                ),
            ));
        } else {
            out.ignored.push((
                named.given.clone(),
                format!("no watch contains {p}{}", after(&p)),
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

async fn trigger_clouddrive2(
    State(state): State<ServerState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &query) {
        return r.into_response();
    }
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
    match hint_all(&state, "clouddrive2", paths) {
        Ok(out) => accepted(&out),
        Err(r) => r.into_response(),
    }
}

async fn trigger_arr(
    State(state): State<ServerState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &query) {
        return r.into_response();
    }
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
    match hint_all(&state, "arr", paths) {
        Ok(out) => accepted(&out),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
struct ManualBody {
    path: String,
}

async fn trigger_manual(
    State(state): State<ServerState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &query) {
        return r.into_response();
    }
    // autoscan's form: POST /triggers/manual?dir=/path
    let path = match query.get("dir") {
        Some(d) => d.clone(),
        None => match parse::<ManualBody>(&body) {
            Ok(b) => b.path,
            Err(r) => return r.into_response(),
        },
    };
    match hint_all(&state, "manual", vec![Named::plain(path)]) {
        Ok(out) => accepted(&out),
        Err(r) => r.into_response(),
    }
}

async fn health(State(state): State<ServerState>) -> Response {
    let mut problems = Vec::new();
    // The store: readable, and its file writable.
    if let Err(e) = state.engine.store().stats() {
        problems.push(format!("store: {e}"));
    } else if state.store.as_os_str() != ":memory:"
        && let Err(e) = std::fs::OpenOptions::new().append(true).open(&state.store)
    {
        problems.push(format!(
            "store {} is not writable: {e}",
            state.store.display()
        ));
    }
    for (name, cd) in &state.clouddrives {
        match tokio::time::timeout(Duration::from_secs(5), cd.system_info()).await {
            Ok(Ok(info)) if info.is_login && !info.has_error => {}
            Ok(Ok(_)) => problems.push(format!(
                "source {name}: cd2 is not logged in to its cloud, or reports an error"
            )),
            Ok(Err(e)) => problems.push(format!("source {name}: {e}")),
            Err(_) => problems.push(format!("source {name}: no answer within 5 s")),
        }
    }
    for (w, _) in state.watches.iter() {
        if state.clouddrives.contains_key(&w.source) {
            continue;
        }
        if let Some(src) = state.sources.get(&w.source)
            && let Err(e) = src.stat(&w.root).await
        {
            problems.push(format!("watch {}: {e}", w.label()));
        }
    }
    if problems.is_empty() {
        reply(StatusCode::OK, json!({"status": "ok"}))
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unhealthy", "reasons": problems}),
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
        )
    });
    let (listings, changes, scans, passes, hints) = snapshot;
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
    if let Ok(stats) = state.engine.store().stats() {
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

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(same(b"token", b"token"));
        assert!(!same(b"token", b"tokem"));
        assert!(!same(b"token", b"token2"));
        assert!(!same(b"", b"x"));
        assert!(same(b"", b""));
    }
}
