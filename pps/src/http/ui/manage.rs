//! The pages that change things: the watch list (add, edit, delete, enable/disable,
//! scan now) and the folder browser (live listing beside the stored state; scan a path,
//! watch a folder, forget stored state).
//!
//! Watch edits go through [`crate::edit`]: written to `pps.toml` keeping its comments,
//! validated as `pps check` validates (an invalid edit is refused with that message and
//! the file stays byte-identical), then applied by the running service: the UI asks
//! through [`Control`](crate::control::Control) and [`service::run`](crate::service::run)
//! reads the file again, without a restart.

use super::{Checked, Lang, LoggedIn, T, UiState, Viewer, lang, page, t};
use crate::edit::{WatchEdit, WatchForm};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use std::time::Duration;

/// Entries the browser shows of one folder (the rest are counted; `pps ls` lists all).
const MAX_ROWS: usize = 2000;

/// How long a save waits for the targets' libraries, to warn of a watch that lands in
/// none.
const LANDING_WAIT: Duration = Duration::from_secs(10);

/// How long a save waits for the service to apply the new config before answering.
const APPLY_WAIT: Duration = Duration::from_secs(15);

/// The flash messages a redirect may name in `?done=` (only these are ever shown).
const FLASHES: [(&str, T); 7] = [
    ("saved_restart", T::SavedRestart),
    ("scan_started", T::ScanStarted),
    ("saved", T::Saved),
    ("saved_slow", T::SavedSlow),
    ("queued", T::Queued),
    ("forgotten", T::Forgotten),
    ("reindex_started", T::ReindexStarted),
];

/// Where a job started from the UI (a scan or a re-index) stands.
#[derive(Debug, Clone)]
pub(crate) enum JobState {
    /// Listing: what it has done so far.
    Running(pps_core::engine::Progress),
    /// Done at (UTC seconds), with the folders listed, the folders that failed and
    /// the changes found.
    Done(i64, u64, usize, usize),
    /// It stopped with this error; the old baseline stays.
    Failed(String),
}

pub(super) fn flash(lang: Lang, q: &HashMap<String, String>) -> Markup {
    let done = q.get("done").map(String::as_str);
    // A scan queued from Activity says what went where.
    let queued = match (done, q.get("scanned"), q.get("to")) {
        (Some("queued"), Some(path), Some(target)) => Some(super::fill(
            t(lang, T::QueuedFor),
            &[("path", path), ("target", target)],
        )),
        _ => None,
    };
    html! {
        @if let Some(text) = queued {
            p.flash role="status" { (text) }
        } @else if let Some((_, text)) = FLASHES.iter().find(|(k, _)| Some(*k) == done) {
            p.flash role="status" { (t(lang, *text)) }
        }
    }
}

/// The warnings a save sends along (`nolib`, `unmapped`, repeated per target): where
/// the saved watch's scans would land nowhere, in `pps check`'s words.
fn landing_warnings(lang: Lang, query: Option<&str>) -> Markup {
    let texts: Vec<String> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter_map(|(k, v)| match k.as_ref() {
            "nolib" => {
                let (target, mapped) = v.split_once('\u{1f}').unwrap_or((&v, ""));
                Some(super::fill(
                    t(lang, T::LandsInNoLibrary),
                    &[("target", target), ("path", mapped)],
                ))
            }
            "unmapped" => Some(super::fill(t(lang, T::LandsUnmapped), &[("target", &v)])),
            _ => None,
        })
        .collect();
    html! { @for text in texts { p.error role="alert" { (text) } } }
}

/// A running job's progress: how many folders of how many known so far, or that it
/// is starting (before the root is listed nothing is known: not "0 / 0").
fn job_progress(lang: Lang, running: T, p: pps_core::engine::Progress) -> String {
    let job = t(lang, running);
    if p.listed + p.queued == 0 {
        return super::fill(t(lang, T::JobStarting), &[("job", job)]);
    }
    super::fill(
        t(lang, T::JobProgress),
        &[
            ("job", job),
            ("listed", &p.listed.to_string()),
            ("known", &(p.listed + p.queued).to_string()),
        ],
    )
}

fn error_box(msg: &str) -> Markup {
    html! { p.error role="alert" { (msg) } }
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

/// The file's watches as written, or (no file: `--watch` mode) as in force.
fn watch_forms(state: &UiState) -> Vec<WatchForm> {
    // A hand edit that was refused is not what runs: show the config in force.
    if let Some(text) = state
        .app
        .config
        .file
        .as_ref()
        .filter(|_| state.app.control.refused().is_none())
        .and_then(|f| std::fs::read_to_string(f).ok())
    {
        return crate::edit::read_watches(&text);
    }
    state
        .app
        .config
        .watches
        .iter()
        .map(|w| WatchForm {
            source: w.source.clone(),
            path: w.path.clone(),
            interval: crate::text::human(w.interval),
            max_interval: crate::text::human(w.max_interval),
            settle: String::new(),
            exclude: Vec::new(),
            targets: w.targets.clone(),
            enabled: w.enabled,
        })
        .collect()
}

pub(super) async fn watches(
    State(state): State<UiState>,
    Viewer { session: s, lang }: Viewer,
    Query(q): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
) -> Response {
    let app = state.app.clone();
    let report = tokio::task::spawn_blocking(move || (app.status)())
        .await
        .ok()
        .and_then(Result::ok);
    let forms = watch_forms(&state);
    // Edits go into the file: not while it holds a refused hand edit (the banner says so).
    let editable = state.app.config.file.is_some() && state.app.control.refused().is_none();
    let csrf = s.csrf.as_str();
    let mut rows = Vec::new();
    for (i, f) in forms.iter().enumerate() {
        let norm = pps_core::path::normalize(&f.path).unwrap_or_else(|_| f.path.clone());
        let label = format!("{}:{norm}", f.source);
        let st = report
            .as_ref()
            .and_then(|r| r.watches.iter().find(|w| w.watch == label));
        let last = last_change(&state, &f.source, &norm).await;
        let job = state
            .sessions
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&label)
            .cloned();
        let (running, done) = match job.as_ref().map(|(j, _)| *j) {
            Some(Job::Scan) => (T::Scanning, T::Scanned),
            _ => (T::Reindexing, T::Reindexed),
        };
        let or_default = |v: &str| {
            html! {
                @if v.is_empty() { span.dim { (t(lang, T::Default)) } } @else { (v) }
            }
        };
        let due = st.and_then(|w| w.schedule.next_due_in_s).map(|d| {
            if d <= 0 {
                t(lang, T::DueNow).to_owned()
            } else {
                super::span_text(lang, Duration::from_secs(d.unsigned_abs()))
            }
        });
        rows.push(html! {
            tr class=(if f.enabled { "on" } else { "off" }) {
                td data-label=(t(lang, T::Enabled)) { (t(lang, if f.enabled { T::Yes } else { T::No })) }
                td data-label=(t(lang, T::Source)) { (f.source) }
                td.path data-label=(t(lang, T::Path)) { a href=(browse_url(&state, csrf, &f.source, &norm)) { (f.path) } }
                td data-label=(t(lang, T::Interval)) { (or_default(&f.interval)) }
                td data-label=(t(lang, T::Ceiling)) { (or_default(&f.max_interval)) }
                td data-label=(t(lang, T::Settle)) { (or_default(&f.settle)) }
                td data-label=(t(lang, T::Exclude)) { (f.exclude.join(", ")) }
                td data-label=(t(lang, T::Targets)) {
                    @if f.targets.is_empty() { span.dim { (t(lang, T::AllTargets)) } } @else { (f.targets.join(", ")) }
                }
                td data-label=(t(lang, T::Folders)) { @if let Some(w) = st { (w.folders) } }
                td data-label=(t(lang, T::NextDue)) { @if let Some(d) = due { (d) } }
                td data-label=(t(lang, T::LastChange)) { @if let Some(at) = last { (super::time(at)) } }
                td.actions {
                    @if editable {
                        a.button href={ (state.path("watches/edit")) "?i=" (i) } { (t(lang, T::Edit)) }
                        (index_form(&state, "watches/toggle", csrf, i, &f.path,
                            t(lang, if f.enabled { T::Disable } else { T::Enable }), None))
                    }
                    @if f.enabled {
                        (index_form(&state, "watches/scan", csrf, i, &f.path, t(lang, T::ScanNow), None))
                        (index_form(&state, "watches/reindex", csrf, i, &f.path, t(lang, T::Reindex), None))
                        @match job.map(|(_, r)| r) {
                            Some(JobState::Running(p)) => {
                                span.hint data-refresh="2" { (job_progress(lang, running, p)) }
                            }
                            Some(JobState::Done(at, n, failed, changes)) => {
                                span.hint {
                                    // The time is an element (shown in the reader's zone):
                                    // the sentence is filled around it.
                                    @let text = t(lang, if failed > 0 { T::JobDoneFailed } else { T::JobDone });
                                    @let (before, after) = text.split_once("{time}").unwrap_or((text, ""));
                                    @let counts = [("job", t(lang, done).to_owned()), ("n", n.to_string()), ("failed", failed.to_string()), ("changes", changes.to_string())];
                                    @let counts: Vec<(&str, &str)> = counts.iter().map(|(k, v)| (*k, v.as_str())).collect();
                                    (super::fill(before, &counts)) (super::time(at)) (super::fill(after, &counts))
                                }
                            }
                            Some(JobState::Failed(e)) => { (error_box(&super::said(lang, &e))) }
                            None => {}
                        }
                    }
                    @if editable {
                        (index_form(&state, "watches/delete", csrf, i, &f.path, t(lang, T::Delete),
                            Some(&super::fill(t(lang, T::ConfirmDelete), &[("watch", &label)]))))
                    }
                }
            }
        });
    }
    let blank = WatchForm {
        // The source asked for (the Browser's "Watch this folder"), else none: with one
        // source the form shows it chosen anyway.
        source: q.get("source").cloned().unwrap_or_else(|| {
            let sources = &state.app.config.sources;
            match sources.len() {
                1 => sources.keys().next().cloned().unwrap_or_default(),
                _ => String::new(),
            }
        }),
        path: q.get("path").cloned().unwrap_or_default(),
        enabled: true,
        ..WatchForm::default()
    };
    let body = html! {
        h1 { (t(lang, T::Watches)) }
        (flash(lang, &q))
        (landing_warnings(lang, uri.query()))
        @if state.app.config.file.is_none() { p.hint { (t(lang, T::NoFile)) } }
        div.scroll { table #watches .cards {
            @let cols = [T::Enabled, T::Source, T::Path, T::Interval, T::Ceiling, T::Settle,
                T::Exclude, T::Targets, T::Folders, T::NextDue, T::LastChange];
            thead { tr { @for c in cols { th { (t(lang, c)) } } th {} } }
            tbody { @for r in rows { (r) } }
        } }
        @if editable {
            h2 { (t(lang, T::AddWatch)) }
            (watch_form(&state, lang, csrf, None, &blank))
        }
    };
    page(&state, lang, t(lang, T::Watches), Some(csrf), body)
}

/// When the last change under a watch's root was found (from the history).
async fn last_change(state: &UiState, source: &str, root: &str) -> Option<i64> {
    let store = state.app.engine.store().clone();
    let query = pps_core::store::HistoryQuery {
        target: None,
        path: Some(root.to_owned()),
        events: vec![pps_core::store::Event::Change],
        source: Some(source.to_owned()),
        since: None,
        before: None,
        limit: 200,
    };
    // The store matches the text; the root must hold the path folder by folder
    // (`/media` does not hold `/media2/x`).
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || store.history(&query))
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|h| {
            h.into_iter()
                .find(|h| pps_core::path::is_at_or_under(&h.change.path, &root))
        })
        .map(|h| h.at.as_secs())
}

/// A button that posts a watch's place in the file (and its path, so an edit of the
/// file in between is noticed). A destructive one (`danger`: its question, which
/// names what it acts on) is asked first by live.js.
fn index_form(
    state: &UiState,
    action: &str,
    csrf: &str,
    index: usize,
    expect: &str,
    label: &str,
    danger: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(state.path(action)) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="index" value=(index);
            input type="hidden" name="expect" value=(expect);
            @if let Some(q) = danger {
                button.danger data-confirm=(q) { (label) }
            } @else {
                button { (label) }
            }
        }
    }
}

/// A Browser address that lists `source:path`, vouched for with the session's view
/// token (`k`): a listing costs a call, so only the UI's own pages may start one (see
/// [`vouched`](super::vouched)).
fn browse_url(state: &UiState, csrf: &str, source: &str, path: &str) -> String {
    format!(
        "{}?{}",
        state.path("browse"),
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("source", source)
            .append_pair("path", path)
            .append_pair("k", &super::view_token(csrf))
            .finish()
    )
}

/// The add/edit form; `index` is the watch's place in the file when editing.
fn watch_form(
    state: &UiState,
    lang: Lang,
    csrf: &str,
    index: Option<(usize, &str)>,
    f: &WatchForm,
) -> Markup {
    let (index, expect) = match index {
        Some((i, e)) => (i.to_string(), e.to_owned()),
        None => (String::new(), String::new()),
    };
    let default = t(lang, T::Default);
    html! {
        form.watch-form method="post" action=(state.path("watches/save")) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="index" value=(index);
            input type="hidden" name="expect" value=(expect);
            // With several sources and none chosen yet, none is preselected: a watch
            // saved on the alphabetically first by an unread default lists the wrong
            // drive.
            @let sources = &state.app.config.sources;
            label { (t(lang, T::Source)) " " select name="source" required {
                @if sources.len() > 1 && !sources.contains_key(&f.source) {
                    option value="" disabled selected { (t(lang, T::ChooseSource)) }
                }
                @for name in sources.keys() {
                    option value=(name) selected[*name == f.source] { (name) }
                }
            } }
            label { (t(lang, T::Path)) " " input name="path" value=(f.path) required placeholder="/115/TV"; }
            label { (t(lang, T::Interval)) " " input name="interval" value=(f.interval) placeholder={ "10m (" (default) ")" }; }
            label { (t(lang, T::Ceiling)) " " input name="max_interval" value=(f.max_interval) placeholder={ "24h (" (default) ")" }; }
            label { (t(lang, T::Settle)) " " input name="settle" value=(f.settle) placeholder={ "0s (" (default) ")" }; }
            label { (t(lang, T::Exclude)) " " textarea name="exclude" rows="3" placeholder=(t(lang, T::OnePerLine)) { (f.exclude.join("\n")) } }
            label { (t(lang, T::Targets)) " " input name="targets" value=(f.targets.join(", "))
                placeholder=(t(lang, T::AllTargets)) title=(t(lang, T::Comma)) list="target-names"; }
            datalist #target-names { @for n in &state.app.targets { option value=(n); } }
            label.check { input type="checkbox" name="enabled" value="on" checked[f.enabled]; " " (t(lang, T::Enabled)) }
            button type="submit" { (t(lang, T::Save)) }
        }
    }
}

pub(super) async fn edit_form(
    State(state): State<UiState>,
    Viewer { session: s, lang }: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let forms = watch_forms(&state);
    let Some((i, f)) = q
        .get("i")
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| forms.get(i).map(|f| (i, f)))
    else {
        return Redirect::to(&state.path("watches")).into_response();
    };
    let body = html! {
        h1 { (t(lang, T::EditWatch)) }
        (watch_form(&state, lang, &s.csrf, Some((i, &f.path)), f))
    };
    page(&state, lang, t(lang, T::EditWatch), Some(&s.csrf), body)
}

#[derive(serde::Deserialize)]
pub(super) struct SaveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    index: String,
    #[serde(default)]
    expect: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    interval: String,
    #[serde(default)]
    max_interval: String,
    #[serde(default)]
    settle: String,
    #[serde(default)]
    exclude: String,
    #[serde(default)]
    targets: String,
    #[serde(default)]
    enabled: String,
}

/// Writes an edit and waits for the service to apply it; answers the redirect to the
/// watch list, or the refusal with `pps check`'s message.
async fn write_and_apply(
    state: &UiState,
    lang: Lang,
    edit: WatchEdit,
) -> Result<&'static str, String> {
    let Some(file) = state.app.config.file.clone() else {
        return Err(t(lang, T::NoConfigFile).to_owned());
    };
    let control = state.app.control.clone();
    let seen = control.generation();
    let written = tokio::task::spawn_blocking(move || {
        crate::edit::edit_watches(&file, &edit).map(|e| e.changed)
    })
    .await
    .map_err(|e| e.to_string())?;
    match written {
        // Saved as it was: nothing to apply.
        Ok(false) => Ok("saved"),
        Err(e) => {
            tracing::warn!(error = %e, "web UI: an edit of the config was refused; the file is unchanged");
            Err(edit_refusal(lang, &e))
        }
        Ok(true) if !control.applies_reloads() => {
            tracing::info!(
                "web UI: the config file was edited; it applies at the next start (this program does not reload its config)"
            );
            Ok("saved_restart")
        }
        Ok(true) => {
            tracing::info!("web UI: the config file was edited; applying it");
            control.request_reload();
            Ok(if control.wait_past(seen, APPLY_WAIT).await {
                "saved"
            } else {
                "saved_slow"
            })
        }
    }
}

/// Why an edit was not saved, for the page: a config file pps may not write (the
/// systemd unit's ProtectSystem=strict, a read-only mount) in the page's language with
/// what to do; any other refusal as `pps check` words it.
fn edit_refusal(lang: Lang, e: &pps_core::Error) -> String {
    match (e.kind(), e.context_value("file")) {
        (pps_core::ErrorKind::PermissionDenied, Some(file)) => {
            super::fill(t(lang, T::ConfigReadOnly), &[("file", file)])
        }
        _ => super::said(lang, &e.to_string()),
    }
}

fn done(state: &UiState, key: &str) -> Response {
    Redirect::to(&format!("{}?done={key}", state.path("watches"))).into_response()
}

pub(super) async fn save(
    State(state): State<UiState>,
    headers: HeaderMap,
    Checked {
        session: s, form, ..
    }: Checked<SaveForm>,
) -> Response {
    let lang = lang(&headers);
    let watch = WatchForm {
        source: form.source.clone(),
        path: form.path.clone(),
        interval: form.interval.clone(),
        max_interval: form.max_interval.clone(),
        settle: form.settle.clone(),
        exclude: form.exclude.lines().map(str::to_owned).collect(),
        targets: form.targets.split(',').map(str::to_owned).collect(),
        enabled: form.enabled == "on",
    };
    let edit = match form.index.trim() {
        "" => WatchEdit::Add(watch.clone()),
        i => match i.parse::<usize>() {
            Ok(index) => WatchEdit::Update {
                index,
                expect: form.expect.clone(),
                form: watch.clone(),
            },
            Err(_) => return refuse(StatusCode::BAD_REQUEST, "`index` is not a watch's place"),
        },
    };
    // The form again, with why it was not saved.
    let refused_form = |msg: &str| {
        let index = form.index.parse::<usize>().ok();
        let title = if index.is_some() {
            t(lang, T::EditWatch)
        } else {
            t(lang, T::AddWatch)
        };
        let body = html! {
            h1 { (title) }
            (error_box(msg))
            (watch_form(
                &state,
                lang,
                &s.csrf,
                index.map(|i| (i, form.expect.as_str())),
                &watch
            ))
        };
        let mut r = page(&state, lang, title, Some(&s.csrf), body);
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    // A root the source does not have fails `pps check` and every pass after: refuse
    // it before the file is touched. A source that cannot answer now (down, slow) is
    // no reason to refuse; the passes will say. An edit that keeps the watch's source
    // and folder costs no listing.
    let unchanged = form.index.trim().parse::<usize>().ok().is_some_and(|i| {
        watch_forms(&state)
            .get(i)
            .is_some_and(|f| f.source == watch.source && f.path == watch.path)
    });
    if watch.enabled
        && !unchanged
        && crate::config::path_problem(&watch.path).is_none()
        && let Ok(root) = pps_core::path::normalize(&watch.path)
    {
        let checker = state.app.checker.clone();
        let source = watch.source.clone();
        let listed = tokio::time::timeout(LANDING_WAIT, async move {
            checker.list_root(&source, &root).await
        })
        .await;
        if let Ok(Some(Err(e))) = listed
            && e.kind() == pps_core::ErrorKind::NotFound
        {
            let why = super::fill(
                t(lang, T::RootMissing),
                &[
                    ("path", &watch.path),
                    ("source", &watch.source),
                    ("why", &super::said(lang, &e.to_string())),
                ],
            );
            return refused_form(&why);
        }
    }
    match write_and_apply(&state, lang, edit).await {
        Ok(key) => {
            // Saved; warn now, as `pps check` would, when its scans would land nowhere.
            let targets: Vec<String> = watch
                .targets
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            let path = pps_core::path::normalize(&watch.path).unwrap_or(watch.path.clone());
            let checker = state.app.checker.clone();
            let landings = tokio::time::timeout(LANDING_WAIT, async move {
                checker.landings(&path, &targets).await
            })
            .await
            .unwrap_or_default();
            let mut to = url::form_urlencoded::Serializer::new(String::new());
            to.append_pair("done", key);
            for (target, landing) in landings {
                match landing {
                    crate::check::Landing::NoLibrary(mapped) => {
                        to.append_pair("nolib", &format!("{target}\u{1f}{mapped}"));
                    }
                    crate::check::Landing::Unmapped => {
                        to.append_pair("unmapped", &target);
                    }
                    _ => {}
                }
            }
            Redirect::to(&format!("{}?{}", state.path("watches"), to.finish())).into_response()
        }
        Err(msg) => refused_form(&msg),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct IndexForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    index: usize,
    #[serde(default)]
    expect: String,
}

/// A refusal shown on the watch list.
fn refused_page(state: &UiState, headers: &HeaderMap, csrf: &str, msg: &str) -> Response {
    let lang = lang(headers);
    let body = html! {
        h1 { (t(lang, T::Watches)) }
        (error_box(msg))
        p { a href=(state.path("watches")) { (t(lang, T::Watches)) } }
    };
    let mut r = page(state, lang, t(lang, T::Watches), Some(csrf), body);
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

pub(super) async fn toggle(
    State(state): State<UiState>,
    headers: HeaderMap,
    Checked {
        session: s, form, ..
    }: Checked<IndexForm>,
) -> Response {
    let enabled = !watch_forms(&state)
        .get(form.index)
        .is_some_and(|f| f.enabled);
    let edit = WatchEdit::Enable {
        index: form.index,
        expect: form.expect,
        enabled,
    };
    match write_and_apply(&state, lang(&headers), edit).await {
        Ok(key) => done(&state, key),
        Err(msg) => refused_page(&state, &headers, &s.csrf, &msg),
    }
}

pub(super) async fn delete(
    State(state): State<UiState>,
    headers: HeaderMap,
    Checked {
        session: s, form, ..
    }: Checked<IndexForm>,
) -> Response {
    if watch_forms(&state).len() <= 1 {
        return refused_page(&state, &headers, &s.csrf, t(lang(&headers), T::LastWatch));
    }
    let edit = WatchEdit::Remove {
        index: form.index,
        expect: form.expect,
    };
    match write_and_apply(&state, lang(&headers), edit).await {
        Ok(key) => done(&state, key),
        Err(msg) => refused_page(&state, &headers, &s.csrf, &msg),
    }
}

/// Scan now: one full pass of the watch in the background (every folder listed once,
/// at the source's rate limit, as `pps once --full`), its progress on the watch list;
/// what it finds is queued and the targets' delivery loops are woken.
pub(super) async fn scan_now(
    State(state): State<UiState>,
    headers: HeaderMap,
    form: Checked<IndexForm>,
) -> Response {
    start_job(state, headers, form, Job::Scan).await
}

/// A background job on one watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// A full pass that reports changes.
    Scan,
    /// A new baseline, swapped in once complete.
    Reindex,
}

async fn start_job(
    state: UiState,
    headers: HeaderMap,
    Checked {
        session: s, form, ..
    }: Checked<IndexForm>,
    job: Job,
) -> Response {
    let forms = watch_forms(&state);
    let Some(f) = forms.get(form.index) else {
        let why = t(lang(&headers), T::NoSuchWatch);
        return refused_page(&state, &headers, &s.csrf, why);
    };
    let Ok(root) = pps_core::path::normalize(&f.path) else {
        let why = t(lang(&headers), T::WatchPathInvalid);
        return refused_page(&state, &headers, &s.csrf, why);
    };
    let Some((wc, w, _)) = state
        .app
        .watches
        .iter()
        .find(|(wc, _, _)| wc.source == f.source && wc.path == root)
        .cloned()
    else {
        return refused_page(
            &state,
            &headers,
            &s.csrf,
            t(lang(&headers), T::WatchNotInForce),
        );
    };
    let label = wc.label();
    let sessions = state.sessions.clone();
    {
        let mut r = sessions
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(r.get(&label), Some((_, JobState::Running(_)))) {
            return refused_page(&state, &headers, &s.csrf, t(lang(&headers), T::JobRunning));
        }
        r.insert(
            label.clone(),
            (
                job,
                JobState::Running(pps_core::engine::Progress {
                    listed: 0,
                    queued: 0,
                    changes: 0,
                }),
            ),
        );
    }
    let mut options = pps_core::EngineOptions::default();
    if let Some(sc) = state.app.config.sources.get(&wc.source) {
        options.concurrency = sc.concurrency();
    }
    let progress = {
        let (sessions, label) = (sessions.clone(), label.clone());
        move |_: &str, p: pps_core::engine::Progress| {
            sessions
                .jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(label.clone(), (job, JobState::Running(p)));
        }
    };
    let engine = state
        .app
        .engine
        .clone()
        .with_options(options)
        .with_progress(progress);
    let wakes: Vec<_> = wc
        .targets
        .iter()
        .filter_map(|t| state.app.wakes.get(t).cloned())
        .collect();
    tracing::info!(watch = %label, job = ?job, "web UI: started");
    tokio::spawn(async move {
        let result = match job {
            Job::Scan => engine.pass_as(&w, pps_core::store::Origin::Manual).await,
            Job::Reindex => engine.reindex(&w).await,
        };
        let done = match result {
            Ok(r) => {
                crate::logs::log_pass(&r);
                if r.scans_queued > 0 {
                    wakes.iter().for_each(|n| n.notify_one());
                }
                JobState::Done(
                    engine.clock().now().as_secs(),
                    r.folders_listed,
                    r.errors.len(),
                    r.changes.len(),
                )
            }
            Err(e) => {
                tracing::warn!(watch = %label, error = %e, "web UI: the job failed; the stored state stays");
                JobState::Failed(e.to_string())
            }
        };
        sessions
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(label, (job, done));
    });
    done(
        &state,
        match job {
            Job::Scan => "scan_started",
            Job::Reindex => "reindex_started",
        },
    )
}

/// Re-index a watch in the background: a baseline recorded into a staging scope and
/// swapped in only once complete (as `pps index`), its progress on the watch list.
pub(super) async fn reindex(
    State(state): State<UiState>,
    headers: HeaderMap,
    form: Checked<IndexForm>,
) -> Response {
    start_job(state, headers, form, Job::Reindex).await
}

pub(super) async fn browse(
    State(state): State<UiState>,
    headers: HeaderMap,
    Viewer { session: s, lang }: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let vouched = super::vouched(&headers, &q, &s.csrf);
    let first = state.app.config.watches.first();
    let source = q
        .get("source")
        .filter(|v| state.app.config.sources.contains_key(*v))
        .cloned()
        .or_else(|| first.map(|w| w.source.clone()))
        .or_else(|| state.app.config.sources.keys().next().cloned())
        .unwrap_or_default();
    let raw_path = q
        .get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .or_else(|| first.filter(|w| w.source == source).map(|w| w.path.clone()))
        .unwrap_or_else(|| "/".to_owned());
    let head = html! {
        h1 { (t(lang, T::Browse)) }
        (flash(lang, &q))
        form.filters method="get" {
            label { (t(lang, T::Source)) " " select name="source" {
                @for name in state.app.config.sources.keys() {
                    option value=(name) selected[*name == source] { (name) }
                }
            } }
            label { (t(lang, T::Path)) " " input name="path" value=(raw_path); }
            input type="hidden" name="k" value=(super::view_token(&s.csrf));
            button { (t(lang, T::Go)) }
        }
    };
    // An address that came from elsewhere (a bookmark, another site's link over plain
    // HTTP, where browsers send no Sec-Fetch-Site): the form, no listing until Go.
    if !vouched {
        let body = html! { (head) p.hint { (t(lang, T::BrowseAsk)) } };
        return page(&state, lang, t(lang, T::Browse), Some(&s.csrf), body);
    }
    let refused = |status: StatusCode, why: String| {
        let body = html! { (head) (error_box(&why)) };
        let mut r = page(&state, lang, t(lang, T::Browse), Some(&s.csrf), body);
        *r.status_mut() = status;
        r
    };
    let path = match pps_core::path::normalize(&raw_path) {
        Ok(p) => p,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("{}: {}", raw_path, e.message()),
            );
        }
    };
    let watches: Vec<_> = state
        .app
        .watches
        .iter()
        .map(|(wc, w, _)| (wc.clone(), w.clone()))
        .collect();
    let report = match crate::inspect::browse(&state.app.engine, &watches, &source, &path).await {
        Ok(r) => r,
        Err(e) => return refused(StatusCode::BAD_GATEWAY, super::said(lang, &e.to_string())),
    };
    // Breadcrumbs: each ancestor a link.
    let mut crumbs = Vec::new();
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        crumbs.push((part.to_owned(), browse_url(&state, &s.csrf, &source, &at)));
    }
    let watch_this = format!(
        "{}?{}",
        state.path("watches"),
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("source", &source)
            .append_pair("path", &path)
            .finish()
    );
    // Each target with the path it would be sent, as its path_mapping maps it.
    let targets: Vec<(String, String)> = state
        .app
        .targets
        .iter()
        .map(|tg| {
            let mapped = state
                .app
                .config
                .targets
                .get(tg)
                .and_then(|tc| tc.mapping.map(&path));
            (
                tg.clone(),
                mapped.unwrap_or_else(|| t(lang, T::Unmapped).to_owned()),
            )
        })
        .collect();
    let when = |e: &pps_core::Entry| e.mtime.map(|m| super::time(m.to_timestamp().as_secs()));
    let body = html! {
        (head)
        nav.crumbs {
            a href=(browse_url(&state, &s.csrf, &source, "/")) { (source) ":/" }
            @for (part, url) in &crumbs { " / " a href=(url) { (part) } }
        }
        @if state.app.config.sources.get(&source).is_some_and(|sc| sc.rate().is_some()) {
            p.hint { (t(lang, T::BudgetNote)) }
        }
        div.actions {
            a.button href=(watch_this) { (t(lang, T::WatchThis)) }
            @if report.watch.is_empty() {
                span.hint { (t(lang, T::NotWatched)) }
            } @else {
                form.inline.scan-to method="post" action=(state.path("browse/scan")) {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="source" value=(source);
                    input type="hidden" name="path" value=(path);
                    select name="target" aria-label=(t(lang, T::Target)) {
                        @for (name, mapped) in &targets {
                            option value=(name) title=(mapped) { (name) " → " (mapped) }
                        }
                    }
                    button { (t(lang, T::ScanTo)) }
                }
                form.inline method="post" action=(state.path("browse/forget")) {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="source" value=(source);
                    input type="hidden" name="path" value=(path);
                    button.danger data-confirm=(super::fill(t(lang, T::ConfirmForget), &[("path", &format!("{source}:{path}"))])) {
                        (t(lang, T::Forget))
                    }
                }
            }
        }
        div.scroll { table #listing .cards {
            @let cols = [T::State, T::Name, T::Size, T::Mtime, T::StoredMtime];
            thead { tr { @for c in cols { th { (t(lang, c)) } } } }
            tbody { @for row in report.rows.iter().take(MAX_ROWS) {
                @let e = &row.entry;
                tr class={ "st-" (row.state.as_str()) } {
                    td data-label=(t(lang, T::State)) { (t(lang, T::entry(row.state))) }
                    td.path data-label=(t(lang, T::Name)) {
                        @if e.is_dir() && row.state != crate::inspect::EntryState::Gone {
                            a href=(browse_url(&state, &s.csrf, &source, &pps_core::path::join(&path, &e.name))) { (e.name) "/" }
                        } @else {
                            (e.name)
                        }
                    }
                    td data-label=(t(lang, T::Size)) { @if !e.is_dir() { (crate::text::human_size(e.size)) } }
                    td data-label=(t(lang, T::Mtime)) { (when(e).unwrap_or_default()) }
                    td data-label=(t(lang, T::StoredMtime)) { (row.stored.as_ref().and_then(when).unwrap_or_default()) }
                }
            } }
        } }
        @if report.rows.len() > MAX_ROWS {
            p.hint {
                (super::fill(t(lang, T::MoreRows), &[("n", &(report.rows.len() - MAX_ROWS).to_string())]))
                " (" code { "pps ls " (source) ":" (path) } ")"
            }
        }
    };
    page(&state, lang, t(lang, T::Browse), Some(&s.csrf), body)
}

#[derive(serde::Deserialize)]
pub(super) struct PathForm {
    #[serde(default)]
    csrf: String,
    /// `activity`: a scan of a typed path from the Activity page, which goes back there.
    #[serde(default)]
    back: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    target: String,
}

super::auth::csrf_field!(SaveForm, IndexForm, PathForm);

/// The deepest watch in force holding `source:path`, with the path normalised.
fn holder(
    state: &UiState,
    lang: Lang,
    source: &str,
    path: &str,
) -> Result<(crate::config::WatchConfig, pps_core::Watch, String), String> {
    let path = pps_core::path::normalize(path).map_err(|e| e.message().to_owned())?;
    state
        .app
        .watches
        .iter()
        .filter(|(wc, _, _)| wc.source == source && pps_core::path::is_at_or_under(&path, &wc.path))
        .max_by_key(|(wc, _, _)| wc.path.len())
        .map(|(wc, w, _)| (wc.clone(), w.clone(), path.clone()))
        .ok_or_else(|| t(lang, T::OutsideWatches).to_owned())
}

fn back_to_browse(state: &UiState, csrf: &str, source: &str, path: &str, key: &str) -> Response {
    Redirect::to(&format!(
        "{}&done={key}",
        browse_url(state, csrf, source, path)
    ))
    .into_response()
}

/// Scan this path now, to one target: queued in the outbox like any change, and the
/// target's delivery loop woken.
pub(super) async fn browse_scan(
    State(state): State<UiState>,
    headers: HeaderMap,
    Checked {
        session: s, form, ..
    }: Checked<PathForm>,
) -> Response {
    // From Activity, a refusal goes back there with the form as it was sent.
    let refused = |m: &str| {
        if form.back == "activity" {
            back_to_activity(
                &state,
                &[
                    ("scan_error", m),
                    ("scan_source", &form.source),
                    ("scan_path", &form.path),
                    ("scan_target", &form.target),
                ],
            )
        } else {
            refused_page(&state, &headers, &s.csrf, m)
        }
    };
    if !state.app.targets.contains(&form.target) {
        return refused(t(lang(&headers), T::NoSuchTarget));
    }
    let (_, w, path) = match holder(&state, lang(&headers), &form.source, &form.path) {
        Ok(h) => h,
        Err(m) => return refused(&m),
    };
    match state
        .app
        .engine
        .queue_scan(&w, &path, std::slice::from_ref(&form.target))
        .await
    {
        Ok(_) => {
            if let Some(n) = state.app.wakes.get(&form.target) {
                n.notify_one();
            }
            tracing::info!(target = %form.target, %path, "web UI: scan queued");
            if form.back == "activity" {
                return back_to_activity(
                    &state,
                    &[("done", "queued"), ("scanned", &path), ("to", &form.target)],
                );
            }
            back_to_browse(&state, &s.csrf, &form.source, &path, "queued")
        }
        Err(e) => refused(&super::said(lang(&headers), &e.to_string())),
    }
}

/// To the Activity page with these query parameters (a value past 2,000 bytes, a path
/// no one types, is left out rather than making the address too long to follow).
fn back_to_activity(state: &UiState, pairs: &[(&str, &str)]) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| v.len() <= 2000))
        .finish();
    Redirect::to(&format!("{}?{query}", state.path("activity"))).into_response()
}

/// Forget stored state at and under a path: the next pass records it afresh.
pub(super) async fn browse_forget(
    State(state): State<UiState>,
    headers: HeaderMap,
    Checked {
        session: s, form, ..
    }: Checked<PathForm>,
) -> Response {
    let (wc, _, path) = match holder(&state, lang(&headers), &form.source, &form.path) {
        Ok(h) => h,
        Err(m) => return refused_page(&state, &headers, &s.csrf, &m),
    };
    let store = state.app.engine.store().clone();
    let p = path.clone();
    let r = tokio::task::spawn_blocking(move || {
        let scope = store.scope(&wc.source, &wc.path)?;
        store.forget(scope, &p)
    })
    .await;
    match r {
        Ok(Ok(n)) => {
            tracing::info!(%path, folders = n, "web UI: stored state forgotten");
            back_to_browse(&state, &s.csrf, &form.source, &path, "forgotten")
        }
        Ok(Err(e)) => {
            let why = super::said(lang(&headers), &e.to_string());
            refused_page(&state, &headers, &s.csrf, &why)
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A level's name in the page's language (`error`, `warn`, `info`, `debug`, `trace`).
fn level_text(lang: Lang, level: &str) -> &'static str {
    t(
        lang,
        match level {
            "error" => T::LvError,
            "warn" => T::LvWarn,
            "info" => T::LvInfo,
            "debug" => T::LvDebug,
            _ => T::LvTrace,
        },
    )
}

fn log_row(l: &crate::logs::LogLine, lang: Lang) -> Markup {
    let level = l.level.as_str().to_ascii_lowercase();
    html! {
        tr class={ "lv-" (level) } {
            td data-label=(t(lang, T::Time)) { (super::time(l.at_ms.div_euclid(1000))) }
            td data-label=(t(lang, T::Level)) { (level_text(lang, &level)) }
            td.module data-label=(t(lang, T::Module)) { (l.target) }
            td.path data-label=(t(lang, T::Message)) { (l.text) }
        }
    }
}

fn log_level(q: &HashMap<String, String>) -> tracing::Level {
    q.get("level")
        .and_then(|l| crate::logs::level(l))
        .unwrap_or(tracing::Level::INFO)
}

/// The log page: the newest lines at the level asked for, newest first (where the
/// reader is looking), followed live.
pub(super) async fn logs(
    State(state): State<UiState>,
    Viewer { session: s, lang }: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let level = log_level(&q);
    let lines = crate::logs::after(0, level, 500);
    let name = level.as_str().to_ascii_lowercase();
    let body = html! {
        h1 { (t(lang, T::Logs)) }
        form.filters method="get" {
            label { (t(lang, T::Level)) " " select name="level" {
                @for l in ["error", "warn", "info", "debug"] {
                    option value=(l) selected[l == name] { (level_text(lang, l)) }
                }
            } }
            button { (t(lang, T::Filter)) }
            a.button href={ (state.path("logs/download")) "?level=" (name) } download="pps.log" { (t(lang, T::Download)) }
        }
        p.hint #live data-events={ (state.path("logs/events")) "?level=" (name) }
            data-after=(lines.last().map_or(0, |l| l.seq)) data-live="true" data-table="logs" {
            (t(lang, T::Live)) " " (t(lang, T::NewestFirst))
        }
        div.scroll { table #logs .cards {
            @let cols = [T::Time, T::Level, T::Module, T::Message];
            thead { tr { @for c in cols { th { (t(lang, c)) } } } }
            tbody { @for l in lines.iter().rev() { (log_row(l, lang)) } }
        } }
    };
    page(&state, lang, t(lang, T::Logs), Some(&s.csrf), body)
}

/// Every kept line at the level asked for, as a text file.
pub(super) async fn logs_download(
    _: LoggedIn,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut text = String::new();
    for l in crate::logs::after(0, log_level(&q), usize::MAX) {
        text.push_str(&l.to_text());
        text.push('\n');
    }
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"pps.log\"",
            ),
        ],
        text,
    )
        .into_response()
}

/// New log lines as server-sent events, each an escaped table row.
pub(super) async fn logs_events(
    State(state): State<UiState>,
    user: LoggedIn,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let level = log_level(&q);
    let lang = user.lang;
    super::live_rows(
        &state,
        user,
        &headers,
        &q,
        Duration::from_millis(500),
        move |after| {
            let rows = crate::logs::after(u64::try_from(after).unwrap_or(0), level, 200)
                .into_iter()
                .map(|l| {
                    (
                        i64::try_from(l.seq).unwrap_or(i64::MAX),
                        log_row(&l, lang).into_string(),
                    )
                })
                .collect();
            std::future::ready(rows)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{Lang, T, edit_refusal, job_progress};
    use pps_core::engine::Progress;

    #[test]
    fn a_read_only_config_is_explained_in_the_page_s_language() {
        // As under the systemd unit; tests run as root, which no permission stops, so
        // the error is made rather than provoked.
        let e = crate::edit::write_error(
            std::path::Path::new("/etc/pps/pps.toml"),
            &std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem),
        );
        let zh = edit_refusal(Lang::Zh, &e);
        assert!(
            zh.contains("/etc/pps/pps.toml") && zh.contains("只读"),
            "{zh}"
        );
        let en = edit_refusal(Lang::En, &e);
        assert!(
            en.contains("read-only for pps") && en.contains("systemctl reload pps"),
            "{en}"
        );
    }

    #[test]
    fn a_job_that_has_listed_nothing_says_it_is_starting_not_0_of_0() {
        let p = |listed, queued| Progress {
            listed,
            queued,
            changes: 0,
        };
        let start = job_progress(Lang::En, T::Reindexing, p(0, 0));
        assert!(!start.contains("0 / 0"), "{start}");
        assert!(start.contains("starting"), "{start}");
        assert_eq!(
            job_progress(Lang::En, T::Reindexing, p(3, 9)),
            "Re-indexing: 3 / 12 folders listed"
        );
    }
}
