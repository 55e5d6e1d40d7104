//! The web UI of `pps run`: server-rendered pages on the same operations as the CLI
//! (status, history, the outbox's ways out, the config in force), behind a password.
//!
//! Security, in the order a request meets it:
//! - off until `[ui] password_hash` (argon2id, from `pps passwd`) is set: no default
//!   password;
//! - logins limited per client address ([`LOGIN_ATTEMPTS`] failures per
//!   [`LOGIN_WINDOW`]), the hash checked on a blocking thread;
//! - a session is a random 256-bit id in an `HttpOnly`, `SameSite=Strict` cookie
//!   scoped to the base path, expiring after [`SESSION_TTL`] idle;
//! - every state-changing request carries the session's CSRF token (a form field or
//!   the `X-CSRF-Token` header), compared in constant time;
//! - pages are maud templates, which escape every value (a name from a source, a
//!   server or the store) unless it is marked `PreEscaped`, which no page does; pages
//!   send a `Content-Security-Policy` that allows only their own script and style.
//!
//! The trigger endpoints keep their token; a UI session does not open them.

use crate::status::StatusReport;
use crate::text::utc_text as civil;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use maud::{DOCTYPE, Markup, html};
use pps_core::store::{Event, HistoryEntry, HistoryQuery};
use pps_core::{Error, ErrorKind, MtimeStore, Result, Secret};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The largest body a UI form may send: its fields are short (64 KiB is plenty), and
/// a body is read only after the session was checked.
pub const UI_BODY_LIMIT: usize = 64 * 1024;

const STYLE: &str = include_str!("ui/style.css");
const SCRIPT: &str = include_str!("ui/live.js");

/// Makes the argon2id hash (PHC string) of a password, for `[ui] password_hash`.
///
/// # Errors
/// `ConfigInvalid` for a password under 8 characters; `Unexpected` when the OS has no
/// random source.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < 8 {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            "the password is too short: use at least 8 characters",
        ));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("no random source: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("hashing failed: {e}")))
}

/// True when `password` matches the PHC `hash`. A malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A UTC time (seconds) as a `<time>` element: `2026-12-04 01:02:03 UTC`, which the
/// page's script shows in the reader's time zone and language.
fn time(secs: i64) -> Markup {
    let text = civil(secs);
    html! { time datetime={ (text.replacen(' ', "T", 1)) "Z" } { (text) " UTC" } }
}

pub use super::Peer;
pub(crate) use auth::CsrfField;
pub(crate) use auth::Sessions;
use auth::{Checked, LoggedIn, Viewer};
pub use auth::{LOGIN_ATTEMPTS, LOGIN_WINDOW, SESSION_MAX, SESSION_TTL};

/// Event streams (Activity, Logs) open at once: each holds a connection, and the
/// connection cap must leave room for `/health` and the triggers.
pub const MAX_STREAMS: usize = 8;

/// A slot among [`MAX_STREAMS`], given back when the stream ends.
struct StreamSlot(Arc<Sessions>);

impl StreamSlot {
    fn take(sessions: &Arc<Sessions>) -> Option<StreamSlot> {
        use std::sync::atomic::Ordering;
        let n = sessions.streams.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_STREAMS {
            sessions.streams.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(StreamSlot(sessions.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0
            .streams
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What the UI's handlers share.
#[derive(Clone)]
pub struct UiState {
    app: Arc<UiApp>,
    hash: Secret,
    base: String,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for UiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the hash nor the sessions.
        f.debug_struct("UiState")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The parts of the running app the pages read.
struct UiApp {
    engine: pps_core::Engine,
    /// Each target's delivery loop, woken when its parked scans are queued again.
    wakes: std::collections::BTreeMap<String, Arc<tokio::sync::Notify>>,
    status: Box<dyn Fn() -> Result<StatusReport> + Send + Sync>,
    config_text: String,
    targets: Vec<String>,
    /// The config in force (every watch, the disabled ones too).
    config: crate::Config,
    /// The watches passed, each with the wake-up of its pass loop.
    watches: Vec<(
        crate::config::WatchConfig,
        pps_core::Watch,
        Arc<tokio::sync::Notify>,
    )>,
    control: Arc<crate::control::Control>,
    metrics: Arc<crate::metrics::Metrics>,
    clouddrives: std::collections::BTreeMap<String, pps_clouddrive::CloudDrive>,
    remotes: std::collections::BTreeMap<String, crate::app::Remote>,
    checker: crate::check::Checker,
}

impl UiState {
    /// The UI of `app`, or `None` when it has no password hash (the UI is off).
    /// `wakes` wake each target's delivery loop.
    pub fn new(
        app: &crate::App,
        kept: &super::Kept,
        wakes: std::collections::BTreeMap<String, Arc<tokio::sync::Notify>>,
        watch_wakes: &[Arc<tokio::sync::Notify>],
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Option<UiState> {
        let hash = app.config.ui.password_hash.clone()?;
        kept.ui.bind_to(&hash);
        let status_app = crate::status::StatusSource::of(app);
        Some(UiState {
            app: Arc::new(UiApp {
                engine: app.engine.clone(),
                wakes,
                status: Box::new(move || status_app.status()),
                config_text: config_text(&app.config),
                targets: app.targets.keys().cloned().collect(),
                config: app.config.clone(),
                watches: app
                    .watches
                    .iter()
                    .zip(watch_wakes)
                    .map(|((wc, w), n)| (wc.clone(), w.clone(), n.clone()))
                    .collect(),
                control: app.control.clone(),
                metrics,
                clouddrives: app.clouddrives.clone(),
                remotes: app.remotes.clone(),
                checker: crate::check::Checker::of(app),
            }),
            hash,
            base: app.config.ui.base_path.clone(),
            sessions: kept.ui.clone(),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.base)
    }
}

/// An address under the UI that names no page: for a browser, a page in the reader's
/// language with a way back; for any other client (a script with a mistyped trigger,
/// under a UI at `/`), the server's JSON answer.
async fn not_found(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    // Its language link, as on every page: remembered, then the same address again.
    if let Ok(Query(q)) = Query::<HashMap<String, String>>::try_from_uri(&uri)
        && let Some(l) = q.get("lang")
    {
        let l = if l == "zh" { Lang::Zh } else { Lang::En };
        return auth::switch_to(&state, l, uri.path());
    }
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if !browser {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"error": "no such endpoint"}).to_string(),
        )
            .into_response();
    }
    let lang = lang(&headers);
    let body = html! {
        h1 { (t(lang, T::NotFound)) }
        p { a href=(state.base) { (t(lang, T::BackHome)) } }
    };
    // A logged-in reader keeps the menu; anyone else sees no more than the login does.
    let csrf = state.session(&headers).map(|(_, s)| s.csrf);
    let mut r = page(&state, lang, t(lang, T::NotFound), csrf.as_deref(), body);
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// The UI's routes under its base path.
pub fn router(state: UiState) -> Router {
    let b = |p: &str| state.path(p);
    let mut r = Router::new()
        .route(&b("login"), get(auth::login_page).post(auth::login))
        .route(&b("logout"), post(auth::logout))
        .route(&b("activity"), get(activity))
        .route(&b("activity/events"), get(activity_events))
        .route(&b("config"), get(config_page))
        .route(&b("watches"), get(manage::watches))
        .route(&b("watches/edit"), get(manage::edit_form))
        .route(&b("watches/save"), post(manage::save))
        .route(&b("watches/toggle"), post(manage::toggle))
        .route(&b("watches/delete"), post(manage::delete))
        .route(&b("watches/scan"), post(manage::scan_now))
        .route(&b("watches/reindex"), post(manage::reindex))
        .route(&b("browse"), get(manage::browse))
        .route(&b("logs"), get(manage::logs))
        .route(&b("lang"), get(switch_language))
        .route(&b("logs/events"), get(manage::logs_events))
        .route(&b("logs/download"), get(manage::logs_download))
        .route(&b("browse/scan"), post(manage::browse_scan))
        .route(&b("browse/forget"), post(manage::browse_forget))
        .route(&b("actions/retry"), post(action_retry))
        .route(&b("actions/drop"), post(action_drop))
        .route(&b("actions/notify-test"), post(action_notify_test))
        .route(&b("actions/notify-retry"), post(action_notify_retry))
        .route(&b("static/style.css"), get(style))
        .route(&b("static/live.js"), get(script));
    r = r
        .route(&state.base, get(overview))
        .route(&b("{*rest}"), any(not_found));
    if state.base != "/" {
        // `/pps` without its slash: where a user types it.
        let bare = state.base.trim_end_matches('/').to_owned();
        let to = state.base.clone();
        r = r.route(&bare, get(move || async move { Redirect::to(&to) }));
    }
    // The same bounds as the triggers: a body must arrive within BODY_TIMEOUT and a
    // request be answered within REQUEST_TIMEOUT (an event stream is answered at
    // once; its body runs on), so a client that sends a head and then nothing holds
    // a connection only that long.
    r.layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(UI_BODY_LIMIT))
        .with_state(state)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            super::BODY_TIMEOUT,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            super::REQUEST_TIMEOUT,
        ))
}

/// Checks every UI request before any body is read:
/// - `Host` is one of `ui.hosts` when set (a DNS-rebinding page names its own host);
/// - a request another site's page made (`Sec-Fetch-Site: same-site` or `cross-site`:
///   `SameSite` cookies ignore ports, so a page on another port of this host is
///   "same-site") may only navigate to a page; it may not fetch one, post a form, or
///   start what costs calls (a config check, a Browser listing);
/// - a POST other than the login needs a session, so a stranger's body is never read
///   (and bodies are capped at [`UI_BODY_LIMIT`]).
async fn guard(
    State(state): State<UiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = req.headers();
    let hosts = &state.app.config.ui.hosts;
    if !hosts.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        if !hosts.iter().any(|h| *h == host || h == bare) {
            tracing::debug!(host = %host, "web UI: a request for another host name was refused");
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this server does not answer to that host name",
            )
                .into_response();
        }
    }
    let from_elsewhere = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "same-site" || v == "cross-site");
    if from_elsewhere {
        let navigate = headers
            .get("sec-fetch-mode")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "navigate");
        let path = req.uri().path();
        let costly = path.ends_with("/browse")
            || (path.ends_with("/config")
                && req.uri().query().is_some_and(|q| q.contains("check")));
        if req.method() != axum::http::Method::GET || !navigate || costly {
            tracing::warn!(path = %path, "web UI: a request made by another site's page was refused");
            return (
                StatusCode::FORBIDDEN,
                "refused: this request came from another site's page",
            )
                .into_response();
        }
    }
    if req.method() == axum::http::Method::POST
        && req.uri().path() != state.path("login")
        && state.session(headers).is_none()
    {
        // A form sent after the session ended (a restart, 12 idle hours): to the login,
        // in the reader's language, rather than a bare 401.
        let browser = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if browser {
            return axum::response::Redirect::to(&state.path("login")).into_response();
        }
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    }
    next.run(req).await
}

/// Whether a GET that costs calls (a config check, a Browser listing) comes from the
/// UI's own page: the browser says so (`Sec-Fetch-Site: same-origin`, or `none` for an
/// address the user typed), or the address carries the session's CSRF token as `k`,
/// which only the UI's pages put in their links and forms. Browsers send
/// `Sec-Fetch-Site` only to https and localhost origins: on a LAN over plain HTTP the
/// token is what tells a page of pps from a page on another port of the same host.
fn vouched(headers: &HeaderMap, q: &HashMap<String, String>, csrf: &str) -> bool {
    let own = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "same-origin" || v == "none");
    own || q
        .get("k")
        .is_some_and(|k| super::same(k.as_bytes(), view_token(csrf).as_bytes()))
}

/// The token a session's links carry as `k` (see [`vouched`]): derived one way from its
/// CSRF token, so an address kept in a browser's history or a proxy's log never holds
/// the token that changes things. It only lets that session's own cookie list a folder
/// or run the check.
fn view_token(csrf: &str) -> String {
    use blake2::Digest as _;
    let digest = blake2::Blake2s256::new()
        .chain_update(b"pps web UI view token\0")
        .chain_update(csrf.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The language of a request: a `pps_lang` cookie, else the browser's first choice.
fn lang(headers: &HeaderMap) -> Lang {
    if let Some(l) = auth::chosen_lang(headers) {
        return l;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim_start().to_ascii_lowercase().starts_with("zh") {
        Lang::Zh
    } else {
        Lang::En
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Zh,
}

/// The UI's words, in English and Simplified Chinese: one variant each, so a word
/// that is missing in either language, or a misspelt name, fails to compile.
macro_rules! texts {
    ($($key:ident => ($en:expr, $zh:expr $(,)?)),* $(,)?) => {
        /// A text of the UI ([`t`] gives it in a language).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum T {
            $($key,)*
        }

        impl T {
            /// Every text, for the tests.
            #[cfg(test)]
            const ALL: &[T] = &[$(T::$key,)*];

            fn words(self) -> (&'static str, &'static str) {
                match self {
                    $(T::$key => ($en, $zh),)*
                }
            }
        }
    };
}

texts! {
    Overview => ("Overview", "概览"),
    Activity => ("Activity", "活动"),
    Config => ("Config", "配置"),
    Logout => ("Log out", "退出"),
    Login => ("Log in", "登录"),
    Password => ("Password", "密码"),
    Wrong => ("Wrong password.", "密码错误。"),
    Slow => ("Too many attempts; try again in a few minutes.",
            "尝试次数过多，请几分钟后再试。"),
    Watches => ("Watches", "监控目录"),
    Targets => ("Targets", "目标"),
    Watch => ("Watch", "目录"),
    Folders => ("Folders", "文件夹"),
    DueNow => ("Due now", "待扫描"),
    DueHour => ("Due within the hour", "一小时内"),
    Longest => ("Longest interval", "最长间隔"),
    CallsDay => ("Due listings a day (on course)", "每日到期调用（预计）"),
    FoundWithin => ("Found within", "发现时间上限"),
    FoundWithinText => ("new title in the root: {new} · quietest folder: {quiet}",
            "根目录新影片：{new} · 最安静的文件夹：{quiet}"),
    CallsHourMade => ("Calls in the last hour", "最近一小时调用"),
    CallsDayMade => ("Calls in the last day", "最近一天调用"),
    CallsChart => ("Calls per hour, last two days", "每小时调用，最近两天"),
    ChartBudget => ("the rate's budget per hour: {n}", "速率允许的每小时额度：{n}"),
    ChartTitle => ("{chart}: {n} calls in the last hour", "{chart}：最近一小时 {n} 次调用"),
    ParkedWhy => ("Parked: {why}", "已搁置：{why}"),
    ChartNow => ("now", "现在"),
    ChartAgo => ("48 h ago", "48 小时前"),
    Target => ("Target", "目标"),
    Pending => ("Pending", "待发送"),
    Parked => ("Parked", "已搁置"),
    Stuck => ("Stuck", "未入库"),
    StuckHint => ("Sent, but the media server did not index it by the deadline. Retry sends the scan again and checks afresh.",
            "已发送，但媒体服务器在期限内没有入库。重试会再次发送扫描并重新确认。"),
    Checking => ("Checking", "确认中"),
    Failing => ("Failing (will retry)", "发送失败（将重试）"),
    LastError => ("Last error", "最近错误"),
    Attempts => ("Attempts", "尝试次数"),
    NextTry => ("Next try in", "下次重试"),
    Now => ("now", "现在"),
    Notifiers => ("Notifiers", "通知"),
    Notifier => ("Notifier", "通知渠道"),
    Kind => ("Kind", "类型"),
    SentN => ("Sent", "已发送"),
    LastSent => ("Last sent", "最近发送"),
    SendTest => ("Send test", "发送测试"),
    TestOk => ("Test message sent through {name}.", "测试消息已通过 {name} 发送。"),
    TestFailed => ("Test message through {name} failed.", "通过 {name} 发送测试消息失败。"),
    Ok => ("OK", "正常"),
    InLibrary => ("In the library after (median / worst, last day)",
            "入库用时（中位 / 最长，最近一天）"),
    Retry => ("Retry", "重试"),
    Drop => ("Drop", "丢弃"),
    Reason => ("Reason", "原因"),
    Path => ("Path", "路径"),
    Time => ("Time", "时间"),
    Event => ("Event", "事件"),
    Detail => ("Detail", "详情"),
    Filter => ("Filter", "筛选"),
    All => ("all", "全部"),
    Older => ("Older", "更早"),
    None => ("Nothing yet.", "暂无记录。"),
    Live => ("Live: new lines appear here.", "实时：新记录会出现在这里。"),
    InForce => ("The config in force (secrets shown as ••••).",
            "当前生效的配置（密钥显示为 ••••）。"),
    Browse => ("Browser", "浏览"),
    Enabled => ("Enabled", "启用"),
    Source => ("Source", "来源"),
    Interval => ("Interval", "间隔"),
    Ceiling => ("Ceiling", "最长间隔"),
    Settle => ("Settle", "稳定等待"),
    Exclude => ("Excludes", "排除"),
    NextDue => ("Next due", "下次扫描"),
    LastChange => ("Last change", "最近变化"),
    Edit => ("Edit", "编辑"),
    Delete => ("Delete", "删除"),
    DropAll => ("Drop all", "全部丢弃"),
    ConfirmDropAll => (
        "Drop all {n} scans queued for {target} (waiting and parked)? They are not sent; the history keeps a line for each.",
        "丢弃 {target} 队列中的全部 {n} 个扫描（等待中和已搁置）？它们不会被发送；历史中为每个保留一行记录。",
    ),
    ParkedShown => (
        "{target}: {shown} of {n} parked scans shown. Retry or Drop all acts on every one of them.",
        "{target}：显示了 {n} 个已搁置扫描中的 {shown} 个。重试或全部丢弃会作用于所有扫描。",
    ),
    NewestFirst => ("Newest first.", "最新的在最上面。"),
    ScanTyped => ("Scan a path now", "立即扫描一个路径"),
    ScanTypedHint => (
        "Queues a scan of a path under a watch to one target, without listing it (no call to the source).",
        "把监控目录下某个路径的扫描排入一个目标的队列，不列出该路径（不调用来源）。",
    ),
    RetriedN => (
        "Queued again: {n}; their targets are tried now.",
        "{n} 个扫描已重新排队，正在向目标重试。",
    ),
    CheckTooLong => ("pps check took longer than 60 s.", "pps check 超过 60 秒未完成。"),
    CreatedFile => ("created file", "新增文件"),
    CreatedFolder => ("created folder", "新增文件夹"),
    ModifiedFile => ("modified file", "修改文件"),
    ModifiedFolder => ("modified folder", "修改文件夹"),
    DeletedFile => ("deleted file", "删除文件"),
    DeletedFolder => ("deleted folder", "删除文件夹"),
    RescanFile => ("rescan of the file", "重新扫描文件"),
    RescanFolder => ("rescan of the folder", "重新扫描文件夹"),
    SavedRestart => (
        "Saved in pps.toml. This program does not reload its config: the change applies at its next start.",
        "已保存到 pps.toml。此程序不会重新加载配置：修改将在下次启动时生效。",
    ),
    ConfigRefused => (
        "pps.toml was edited by hand and the edit was refused: the config in force stays, and this UI shows it. Fix the file (pps check says the same) or put it back; until then the UI does not edit it.",
        "pps.toml 被手工修改，但修改被拒绝：当前配置继续生效，本页面显示的就是它。请修正文件（pps check 给出同样的信息）或改回原样；在此之前本页面不会编辑它。",
    ),
    LandsInNoLibrary => (
        "Saved, but on {target} the folder {path} is in no library: its scans would be parked. Fix the target's path_mapping or add the folder to a library (pps check warns the same).",
        "已保存，但在 {target} 上，文件夹 {path} 不属于任何媒体库：它的扫描将被搁置。请修正该目标的 path_mapping，或把该文件夹加入媒体库（pps check 给出同样的警告）。",
    ),
    LandsUnmapped => (
        "Saved, but no rule of {target}'s path_mapping covers this folder: nothing will be sent to {target}.",
        "已保存，但 {target} 的 path_mapping 没有覆盖此文件夹的规则：不会向 {target} 发送任何扫描。",
    ),
    ConfirmDelete => (
        "Delete the watch {watch}? Its folders are no longer passed; its stored state stays until you forget it.",
        "删除监控目录 {watch}？其文件夹将不再被检查；已存状态保留，直到你清除它。",
    ),
    ConfirmForget => (
        "Forget what pps remembers of {path}? Its next pass records it anew (a baseline: no scans).",
        "清除 pps 对 {path} 的记忆？下一次检查将重新记录（作为基线，不触发扫描）。",
    ),
    Enable => ("Enable", "启用"),
    Disable => ("Disable", "停用"),
    ScanNow => ("Scan now", "立即扫描"),
    AddWatch => ("Add a watch", "添加监控目录"),
    EditWatch => ("Edit a watch", "编辑监控目录"),
    Save => ("Save", "保存"),
    Saved => ("Saved to the config file and applied.",
            "已写入配置文件并生效。"),
    SavedSlow => ("Saved to the config file; the service is still applying it.",
            "已写入配置文件，服务正在应用。"),
    NoFile => ("This service runs without a config file (--watch): watches cannot be edited here.",
            "此服务未使用配置文件（--watch），无法在此编辑监控目录。"),
    Default => ("default", "默认"),
    AllTargets => ("every target", "全部目标"),
    OnePerLine => ("one pattern per line", "每行一个模式"),
    Comma => ("names, separated by commas", "名称，以逗号分隔"),
    Yes => ("yes", "是"),
    No => ("no", "否"),
    State => ("State", "状态"),
    Name => ("Name", "名称"),
    Size => ("Size", "大小"),
    Mtime => ("Modified (source)", "修改时间（来源）"),
    StoredMtime => ("Modified (stored)", "修改时间（已存）"),
    BudgetNote => ("Listing this folder was one call against the source's budget, like any other.",
            "列出此文件夹会像其他调用一样计入来源的调用额度。"),
    WatchThis => ("Watch this folder", "监控此文件夹"),
    Forget => ("Forget stored state", "清除已存状态"),
    ScanTo => ("Scan this path now", "立即扫描此路径"),
    ScanAgain => ("Scan again", "重新扫描"),
    LvError => ("error", "错误"),
    LvWarn => ("warn", "警告"),
    LvInfo => ("info", "信息"),
    LvDebug => ("debug", "调试"),
    LvTrace => ("trace", "跟踪"),
    QueuedFor => ("Scan of {path} queued for {target}.", "已为 {target} 排队扫描 {path}。"),
    ScanPathExample => ("/115/Movies/Dune (2021)", "/115/电影/Dune (2021)"),
    Sep => (", ", "，"),
    SentAs => ("sent as {path}", "发送为 {path}"),
    ChooseSource => ("Choose a source", "选择来源"),
    NotFound => ("There is no page here", "这里没有页面"),
    BackHome => ("Go to the Overview", "前往概览"),
    Refused => ("Not done", "未执行"),
    OriginWalk => ("found by a full walk", "全量遍历时发现"),
    OriginPoll => ("found by polling", "定时列出时发现"),
    OriginSpare => ("found by a spare listing", "空闲额度列出时发现"),
    OriginPush => ("named by a push event", "推送事件通知"),
    OriginWebhook => ("named by a webhook", "Webhook 通知"),
    OriginManual => ("asked for by hand", "手动发起"),
    NotWatched => ("Outside every watch: nothing is stored for it.",
            "不在任何监控目录内：没有已存状态。"),
    Queued => ("Scan queued", "扫描已排队"),
    Forgotten => ("Stored state forgotten", "已清除状态"),
    Go => ("Go", "前往"),
    Sources => ("Sources", "来源"),
    EvChange => ("change", "变化"),
    EvSent => ("sent", "已发送"),
    EvRetried => ("retried", "重试中"),
    EvParked => ("parked", "已搁置"),
    EvDropped => ("dropped", "已丢弃"),
    EvIndexed => ("indexed", "已入库"),
    EvRemoved => ("removed", "已移除"),
    EvStuck => ("stuck", "未入库"),
    EvSourceDown => ("source down", "来源不可用"),
    EvSourceUp => ("source up", "来源已恢复"),
    EvThrottled => ("throttled", "被限流"),
    EvNotified => ("notified", "已通知"),
    StUnknown => ("unknown (never listed)", "未知（从未列出）"),
    StSame => ("same", "未变"),
    StNew => ("new", "新增"),
    StModified => ("modified", "已修改"),
    StGone => ("gone", "已删除"),
    StExcluded => ("excluded", "已排除"),
    Over6h => ("Near the ceiling (over 6 h)", "接近最长间隔（6 小时以上）"),
    Passes => ("Passes since start", "启动以来检查次数"),
    MeanPass => ("Mean pass", "平均每次"),
    Budget => ("Budget", "额度"),
    Rate => ("Rate in force", "当前速率"),
    PerDay => ("Ceilings (minute / hour / day)", "上限（分钟 / 小时 / 天）"),
    Listed => ("Listings since start", "启动以来列出"),
    Failed => ("Failed", "失败"),
    Throttled => ("Throttled", "被限流"),
    Local => ("local (no budget)", "本地（无额度）"),
    RunCheck => ("Run pps check", "运行 pps check"),
    CkProblem => ("problem: {why}", "问题：{why}"),
    CkLocal => ("source {name} (local): ok", "来源 {name}（本地）：正常"),
    CkCd2Ready => ("source {name} ({what}): ok, cd2 ready, the token is accepted",
            "来源 {name}（{what}）：正常，cd2 已就绪，令牌被接受"),
    CkReady => ("source {name} ({what}): ok, it answers and accepts pps",
            "来源 {name}（{what}）：正常，可以连接并接受 pps 的凭据"),
    CkReachable => ("source {name} ({what}): reachable, but {why}",
            "来源 {name}（{what}）：可以连接，但 {why}"),
    CkSourceFailed => ("source {name} ({what}): FAILED: {why}", "来源 {name}（{what}）：失败：{why}"),
    CkTarget => ("target {name} ({kind}): ok, {server}, {n} libraries",
            "目标 {name}（{kind}）：正常，{server}，{n} 个媒体库"),
    CkTargetAny => ("target {name} ({kind}): ok, it takes any path (it has no libraries)",
            "目标 {name}（{kind}）：正常，接受任何路径（它没有媒体库）"),
    CkTargetFailed => ("target {name} ({kind}): FAILED: {why}", "目标 {name}（{kind}）：失败：{why}"),
    CkListed => ("watch {watch}: root listed, {n} entries", "监控 {watch}：根目录已列出，{n} 项"),
    CkListedOne => ("watch {watch}: root listed, 1 entry", "监控 {watch}：根目录已列出，1 项"),
    CkAnywhere => ("  → {target}: {path}", "  → {target}：{path}"),
    CkRootFailed => ("watch {watch}: root FAILED: {why}", "监控 {watch}：根目录失败：{why}"),
    CkNotChecked => ("watch {watch}: not checked (its source failed)",
            "监控 {watch}：未检查（其来源失败）"),
    CkNoSource => ("watch {watch}: no such source", "监控 {watch}：没有这个来源"),
    CkUnmapped => ("  → {target}: no path_mapping rule covers the root",
            "  → {target}：没有 path_mapping 规则覆盖根目录"),
    CkUnreached => ("  → {target}: {path} (target not reached)", "  → {target}：{path}（未能连接目标）"),
    CkNoLibrary => ("  → {target}: WARNING {path} is in no library of {target}: its scans would be parked",
            "  → {target}：警告：{path} 不属于 {target} 的任何媒体库，它的扫描将被搁置"),
    CkLibraries => ("  → {target}: {path} in {libs}", "  → {target}：{path} 属于 {libs}"),
    CheckNote => ("Reaches every source and target and lists each watch's root: a few calls against the budget.",
            "连接每个来源与目标并列出每个监控根目录：会消耗少量调用额度。"),
    Check => ("Check", "检查"),
    Reindex => ("Re-index", "重建基线"),
    Scanning => ("Scanning", "正在扫描"),
    JobStarting => ("{job}: starting…", "{job}：正在开始…"),
    JobProgress => ("{job}: {listed} / {known} folders listed", "{job}：已列出 {listed} / {known} 个文件夹"),
    Scanned => ("Scanned", "已扫描"),
    JobDone => ("{job} {time}: {n} folders listed, {changes} changes", "{job} {time}：列出 {n} 个文件夹，{changes} 处变化"),
    JobDoneFailed => ("{job} {time}: {n} folders listed, {failed} failed, {changes} changes",
            "{job} {time}：列出 {n} 个文件夹，{failed} 个失败，{changes} 处变化"),
    ScanStarted => ("Scan started: every folder of the watch is listed once, at the source's rate.",
            "扫描已开始：按来源的速率将该目录下每个文件夹列出一次。"),
    Reindexing => ("Re-indexing", "正在重建基线"),
    Reindexed => ("Re-indexed", "基线已重建"),
    ReindexStarted => ("Re-index started: the new baseline replaces the old one once complete.",
            "已开始重建基线：完成后新基线才会替换旧基线。"),
    MoreRows => ("{n} more entries not shown", "另有 {n} 个条目未显示"),
    Unmapped => ("(no path_mapping rule)", "（无路径映射规则）"),
    Logs => ("Logs", "日志"),
    Level => ("Level", "级别"),
    Download => ("Download", "下载"),
    Module => ("Module", "模块"),
    Message => ("Message", "消息"),
    NoConfigFile => ("This service runs without a config file (--watch): there is nothing to save to.",
            "此服务未使用配置文件运行（--watch），无处保存。"),
    LastWatch => ("The last [[watch]] cannot be deleted (pps run needs one): disable it instead.",
            "最后一个 [[watch]] 不能删除（pps run 至少需要一个），请改为停用。"),
    NoSuchWatch => ("There is no such watch; reload the page.", "没有这个目录，请刷新页面。"),
    WatchPathInvalid => ("That watch's path is not valid.", "该目录的路径无效。"),
    WatchNotInForce => ("That watch is not in force (disabled?).", "该目录未生效（已停用？）。"),
    JobRunning => ("That watch is being scanned or re-indexed already.", "该目录正在扫描或重建基线。"),
    OutsideWatches => ("That path is outside every watch in force.", "该路径不在任何生效的目录内。"),
    NoSuchTarget => ("There is no such target.", "没有这个目标。"),
    ConfigReadOnly => ("Not saved: the config file {file} is read-only for pps here (the systemd unit's ProtectSystem=strict, or a read-only mount). Edit it by hand and reload (systemctl reload pps, or SIGHUP), or give pps write access to its folder.",
            "未保存：配置文件 {file} 对 pps 只读（systemd 单元的 ProtectSystem=strict，或只读挂载）。请手动编辑后重新加载（systemctl reload pps 或 SIGHUP），或给 pps 写入其所在目录的权限。"),
    BrowseAsk => ("Listing a folder is one call against the source's budget: press Go to list this one.",
            "列出一个文件夹会消耗来源的一次调用额度：按“前往”列出它。"),
    RootMissing => ("Not saved: source {source} has no folder {path}, so pps check would fail ({why}).",
            "未保存：来源 {source} 没有文件夹 {path}，pps check 会失败（{why}）。"),
    CsrfStale => ("This form came from an earlier session or page: nothing was done. Reload the page and try again.",
            "此表单来自之前的会话或页面，未执行任何操作。请刷新页面后重试。"),
    KindNotFound => ("not found", "不存在"),
    KindPermission => ("permission denied", "没有权限"),
    KindUnauthenticated => ("unauthenticated", "认证失败"),
    KindThrottled => ("throttled", "被限流"),
    KindUnavailable => ("unavailable", "无法连接"),
    KindConfig => ("config invalid", "配置无效"),
    KindUnsupported => ("unsupported", "不支持"),
    KindOutage => ("outage", "来源中断"),
    KindCorrupt => ("corrupt", "数据损坏"),
    KindRejected => ("rejected", "被拒绝"),
    KindUnexpected => ("unexpected", "意外错误"),
}

/// An error as pps wrote it (`unavailable: connection refused [target: plex]`), its
/// kind in the page's language. The rest is what pps or a server said, kept as said:
/// it is what a search or a bug report needs.
fn said(lang: Lang, msg: &str) -> String {
    use pps_core::ErrorKind as K;
    if lang == Lang::En {
        return msg.to_owned();
    }
    let kinds = [
        (K::NotFound, T::KindNotFound),
        (K::PermissionDenied, T::KindPermission),
        (K::Unauthenticated, T::KindUnauthenticated),
        (K::Throttled, T::KindThrottled),
        (K::Unavailable, T::KindUnavailable),
        (K::ConfigInvalid, T::KindConfig),
        (K::Unsupported, T::KindUnsupported),
        (K::Outage, T::KindOutage),
        (K::Corrupt, T::KindCorrupt),
        (K::Rejected, T::KindRejected),
        (K::Unexpected, T::KindUnexpected),
    ];
    for (kind, key) in kinds {
        if let Some(rest) = msg
            .strip_prefix(kind.as_str())
            .and_then(|r| r.strip_prefix(": "))
        {
            return format!("{}：{rest}", t(lang, key));
        }
    }
    msg.to_owned()
}

impl T {
    /// The name of a history event.
    fn event(e: Event) -> T {
        match e {
            Event::Change => T::EvChange,
            Event::Sent => T::EvSent,
            Event::Retried => T::EvRetried,
            Event::Parked => T::EvParked,
            Event::Dropped => T::EvDropped,
            Event::Indexed => T::EvIndexed,
            Event::Removed => T::EvRemoved,
            Event::Stuck => T::EvStuck,
            Event::SourceDown => T::EvSourceDown,
            Event::SourceUp => T::EvSourceUp,
            Event::Throttled => T::EvThrottled,
            Event::Notified => T::EvNotified,
        }
    }

    /// The state of a Browser entry beside what the store holds.
    fn entry(s: crate::inspect::EntryState) -> T {
        use crate::inspect::EntryState;
        match s {
            EntryState::Unknown => T::StUnknown,
            EntryState::Same => T::StSame,
            EntryState::New => T::StNew,
            EntryState::Modified => T::StModified,
            EntryState::Gone => T::StGone,
            EntryState::Excluded => T::StExcluded,
        }
    }
}

/// `key` in `lang`.
/// `text` with each `{key}` of `pairs` put in, in one pass: a value is never read for
/// placeholders (a watch named `{path}` stays so).
fn fill(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((close, pairs.iter().find(|(k, _)| *k == &after[..close])?)))
        {
            Some((close, (_, v))) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A length of time to read (`1h 02m`, `3m 20s`; `1小时02分`, `3分20秒` on Chinese
/// pages). Not for a form's value, which is the config file's syntax.
fn span_text(lang: Lang, d: Duration) -> String {
    if lang == Lang::En {
        crate::text::human(d)
    } else {
        crate::text::human_zh(d)
    }
}

fn t(lang: Lang, key: T) -> &'static str {
    let (en, zh) = key.words();
    if lang == Lang::Zh { zh } else { en }
}

/// On every page of a logged-in user while the config file holds a refused hand edit:
/// that the file is not what runs, and `pps check`'s words for why.
fn refused_banner(state: &UiState, lang: Lang, logged_in: bool) -> Markup {
    html! {
        @if let Some(why) = state.app.control.refused().filter(|_| logged_in) {
            div.error.banner role="alert" {
                p { (t(lang, T::ConfigRefused)) }
                pre { (why) }
            }
        }
    }
}

/// The page around `body`: the navigation (for a logged-in user, `csrf` set), the
/// refused-config banner, and headers that keep it ours (CSP, no caching).
fn page(state: &UiState, lang: Lang, title: &str, csrf: Option<&str>, body: Markup) -> Response {
    let other = if lang == Lang::Zh { "en" } else { "zh" };
    let other_name = if lang == Lang::Zh {
        "English"
    } else {
        "中文"
    };
    let html = html! {
        (DOCTYPE)
        html lang=(if lang == Lang::Zh { "zh-CN" } else { "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · pps" }
                link rel="stylesheet" href=(state.path("static/style.css"));
                script src=(state.path("static/live.js")) defer {}
            }
            body data-base=(state.base) {
                header {
                    strong { "pps" }
                    nav {
                        @if let Some(csrf) = csrf {
                            a href=(state.base) { (t(lang, T::Overview)) }
                            a href=(state.path("watches")) { (t(lang, T::Watches)) }
                            a href={ (state.path("browse")) "?k=" (view_token(csrf)) } { (t(lang, T::Browse)) }
                            a href=(state.path("activity")) { (t(lang, T::Activity)) }
                            a href=(state.path("logs")) { (t(lang, T::Logs)) }
                            a href=(state.path("config")) { (t(lang, T::Config)) }
                            form.inline method="post" action=(state.path("logout")) {
                                input type="hidden" name="csrf" value=(csrf);
                                button { (t(lang, T::Logout)) }
                            }
                            a.lang href={ (state.path("lang?to=")) (other) } { (other_name) }
                        } @else {
                            a.lang href={ "?lang=" (other) } { (other_name) }
                        }
                    }
                }
                main {
                    (refused_banner(state, lang, csrf.is_some()))
                    (body)
                }
            }
        }
    };
    let mut r = Html(html.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The language link: sets the cookie and goes back to the page it was clicked on
/// (from `Referer`, when that is a page of this UI), filters and path kept.
async fn switch_language(
    State(state): State<UiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    const PAGES: [&str; 8] = [
        "",
        "watches",
        "watches/edit",
        "browse",
        "activity",
        "logs",
        "config",
        "login",
    ];
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| {
            u.path()
                .strip_prefix(state.base.as_str())
                .is_some_and(|rest| PAGES.contains(&rest))
        })
        .map_or_else(
            || state.base.clone(),
            |u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            },
        );
    let l = if q.get("to").is_some_and(|l| l == "zh") {
        Lang::Zh
    } else {
        Lang::En
    };
    auth::switch_to(&state, l, &back)
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    path: String,
}

auth::csrf_field!(CsrfForm);

async fn overview(
    State(state): State<UiState>,
    Viewer { session: s, lang }: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let app = state.app.clone();
    let report = match tokio::task::spawn_blocking(move || (app.status)()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let passes = state.app.metrics.with(|c| c.passes.clone());
    let human = |s: u64| span_text(lang, Duration::from_secs(s));
    let tested = q
        .get("tested")
        .filter(|name| state.app.config.notifiers.contains_key(*name))
        .map(|name| (name, q.get("ok").is_some_and(|v| v == "1")));
    let csrf = s.csrf.as_str();
    let body = html! {
        h1 { (t(lang, T::Overview)) }
        @if let Some(n) = q.get("retried").and_then(|n| n.parse::<u64>().ok()) {
            p.flash role="status" id="retried" {
                (fill(t(lang, T::RetriedN), &[("n", &n.to_string())]))
            }
        }
        h2 { (t(lang, T::Watches)) }
        div.scroll { table #schedule .cards {
            @let cols = [T::Watch, T::Folders, T::DueNow, T::DueHour, T::Over6h, T::Longest,
                T::Passes, T::MeanPass, T::CallsDay, T::FoundWithin];
            thead { tr { @for c in cols { th { (t(lang, c)) } } } }
            tbody { @for w in &report.watches {
                @let (secs, n) = passes.get(&w.watch).copied().unwrap_or((0.0, 0));
                tr {
                    td data-label=(t(lang, T::Watch)) { (w.watch) }
                    td data-label=(t(lang, T::Folders)) { (w.folders) }
                    td data-label=(t(lang, T::DueNow)) { (w.schedule.due_now) }
                    td data-label=(t(lang, T::DueHour)) { (w.schedule.due_next_hour) }
                    td data-label=(t(lang, T::Over6h)) { (w.schedule.bands.up_to_1d + w.schedule.bands.longer) }
                    td data-label=(t(lang, T::Longest)) { (human(w.schedule.longest_interval_s)) }
                    td data-label=(t(lang, T::Passes)) { (n) }
                    td data-label=(t(lang, T::MeanPass)) {
                        @if n > 0 { (span_text(lang, Duration::from_secs_f64(secs / n as f64))) }
                    }
                    td data-label=(t(lang, T::CallsDay)) {
                        (w.schedule.calls_per_day)
                        @if let Some(b) = w.schedule.budget_per_day { " / " (b) }
                    }
                    td data-label=(t(lang, T::FoundWithin)) {
                        (fill(t(lang, T::FoundWithinText), &[
                            ("new", &human(w.schedule.delay.new_title_s)),
                            ("quiet", &human(w.schedule.delay.quietest_s)),
                        ]))
                    }
                }
            } }
        } }
        (sources_table(&state, lang, &report.sources))
        h2 { (t(lang, T::Targets)) }
        div.scroll { table #targets .cards {
            @let cols = [T::Target, T::Pending, T::Parked, T::Checking, T::Stuck, T::InLibrary];
            thead { tr { @for c in cols { th { (t(lang, c)) } } th {} } }
            tbody { @for tr in &report.targets {
                tr {
                    td data-label=(t(lang, T::Target)) { (tr.target) }
                    td data-label=(t(lang, T::Pending)) { (tr.pending) }
                    td data-label=(t(lang, T::Parked)) { (tr.parked) }
                    td data-label=(t(lang, T::Checking)) { (tr.confirming) }
                    td data-label=(t(lang, T::Stuck)) { (tr.stuck) }
                    td data-label=(t(lang, T::InLibrary)) {
                        @if let Some(i) = &tr.indexed_last_day {
                            (human(i.median_s)) " / " (human(i.worst_s)) " (" (i.count) ")"
                        }
                    }
                    td.actions {
                        @if tr.parked > 0 || tr.stuck > 0 {
                            (action_form(&state, "actions/retry", csrf, &tr.target, "", t(lang, T::Retry)))
                        }
                        @if tr.pending + tr.parked > 0 {
                            form.inline method="post" action=(state.path("actions/drop")) {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="target" value=(tr.target);
                                button.danger data-confirm=(fill(t(lang, T::ConfirmDropAll), &[
                                    ("n", &(tr.pending + tr.parked).to_string()),
                                    ("target", &tr.target),
                                ])) { (t(lang, T::DropAll)) }
                            }
                        }
                    }
                }
            } }
        } }
        @let parked: Vec<_> = report.targets.iter()
            .flat_map(|tr| tr.parked_scans.iter().map(move |p| (&tr.target, p))).collect();
        @if !parked.is_empty() {
            h2 { (t(lang, T::Parked)) }
            div.scroll { table #parked .cards {
                thead { tr { th { (t(lang, T::Target)) } th { (t(lang, T::Path)) } th { (t(lang, T::Reason)) } th {} } }
                tbody { @for (target, p) in parked.iter().copied() {
                    tr {
                        td data-label=(t(lang, T::Target)) { (target) }
                        td.path data-label=(t(lang, T::Path)) { (p.path) }
                        td data-label=(t(lang, T::Reason)) { (said(lang, p.reason.as_deref().unwrap_or(""))) }
                        td.actions { (action_form(&state, "actions/drop", csrf, target, &p.path, t(lang, T::Drop))) }
                    }
                } }
            } }
        }
        @for tr in report.targets.iter().filter(|tr| tr.parked > tr.parked_scans.len() as u64) {
            p.hint {
                (fill(t(lang, T::ParkedShown), &[
                        ("shown", &tr.parked_scans.len().to_string()),
                        ("n", &tr.parked.to_string()),
                        ("target", &tr.target),
                    ]))
            }
        }
        @if let Some((name, ok)) = tested {
            p.hint #tested { (fill(t(lang, if ok { T::TestOk } else { T::TestFailed }), &[("name", name)])) }
        }
        @if !report.notifiers.is_empty() {
            h2 { (t(lang, T::Notifiers)) }
            div.scroll { table #notifiers .cards {
                @let cols = [T::Notifier, T::Kind, T::SentN, T::LastSent, T::State];
                thead { tr { @for c in cols { th { (t(lang, c)) } } th {} } }
                tbody { @for n in &report.notifiers {
                    tr {
                        td data-label=(t(lang, T::Notifier)) { (n.notifier) }
                        td data-label=(t(lang, T::Kind)) { (n.kind) }
                        td data-label=(t(lang, T::SentN)) { (n.sent) }
                        td data-label=(t(lang, T::LastSent)) { @if let Some(at) = n.last_sent { (time(at)) } }
                        td data-label=(t(lang, T::State)) {
                            @match (&n.parked, &n.last_error) {
                                (Some(p), _) => { (fill(t(lang, T::ParkedWhy), &[("why", &said(lang, p))])) }
                                (None, Some(e)) => { (said(lang, e)) }
                                (None, None) => { (t(lang, T::Ok)) }
                            }
                        }
                        td.actions {
                            (action_form(&state, "actions/notify-test", csrf, &n.notifier, "", t(lang, T::SendTest)))
                            @if n.parked.is_some() {
                                (action_form(&state, "actions/notify-retry", csrf, &n.notifier, "", t(lang, T::Retry)))
                            }
                        }
                    }
                } }
            } }
        }
        @let failing: Vec<_> = report.targets.iter()
            .flat_map(|tr| tr.failing_scans.iter().map(move |p| (&tr.target, p))).collect();
        @if !failing.is_empty() {
            // A target that is down: each scan's last error, attempts and next try (not
            // only "1 pending").
            h2 { (t(lang, T::Failing)) }
            div.scroll { table #failing .cards {
                @let cols = [T::Target, T::Path, T::LastError, T::Attempts, T::NextTry];
                thead { tr { @for c in cols { th { (t(lang, c)) } } } }
                tbody { @for (target, p) in failing {
                    tr {
                        td data-label=(t(lang, T::Target)) { (target) }
                        td.path data-label=(t(lang, T::Path)) { (p.path) }
                        td data-label=(t(lang, T::LastError)) { (said(lang, p.reason.as_deref().unwrap_or(""))) }
                        td data-label=(t(lang, T::Attempts)) { (p.attempts) }
                        td data-label=(t(lang, T::NextTry)) {
                            @match p.next_try_in_s {
                                Some(n) if n > 0 => { (human(n.unsigned_abs())) }
                                _ => { (t(lang, T::Now)) }
                            }
                        }
                    }
                } }
            } }
        }
        @let stuck: Vec<_> = report.targets.iter()
            .flat_map(|tr| tr.stuck_scans.iter().map(move |p| (&tr.target, p))).collect();
        @if !stuck.is_empty() {
            h2 { (t(lang, T::Stuck)) }
            p.hint { (t(lang, T::StuckHint)) }
            div.scroll { table #stuck .cards {
                thead { tr { th { (t(lang, T::Target)) } th { (t(lang, T::Path)) } th { (t(lang, T::Reason)) } } }
                tbody { @for (target, p) in stuck {
                    tr {
                        td data-label=(t(lang, T::Target)) { (target) }
                        td.path data-label=(t(lang, T::Path)) { (p.path) }
                        td data-label=(t(lang, T::Reason)) { (said(lang, &p.reason)) }
                    }
                } }
            } }
        }
    };
    page(&state, lang, t(lang, T::Overview), Some(csrf), body)
}

/// A source's call ceilings per minute / hour / day, `—` where there is none.
fn ceilings(sc: &crate::config::SourceConfig) -> String {
    let c = |v: Option<u64>| v.map_or("—".to_owned(), |d| d.to_string());
    let (minute, hour, day, _) = sc.ceilings().unwrap_or_default();
    format!("{} / {} / {}", c(minute), c(hour), c(day))
}

/// Each source: its budget, the rate in force, what it was asked since the start and
/// how often the cloud throttled.
fn sources_table(state: &UiState, lang: Lang, spent: &[crate::status::SourceStatus]) -> Markup {
    use crate::config::SourceConfig;
    let (listed, _) = state.app.metrics.totals();
    let failed = state.app.metrics.with(|c| {
        c.listings
            .iter()
            .filter(|((_, o), _)| o == "error")
            .map(|((s, _), n)| (s.clone(), *n))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    let cols = [
        T::Source,
        T::Budget,
        T::Rate,
        T::PerDay,
        T::CallsHourMade,
        T::CallsDayMade,
        T::Listed,
        T::Failed,
        T::Throttled,
    ];
    html! {
        h2 { (t(lang, T::Sources)) }
        div.scroll { table #sources .cards {
            thead { tr { @for c in cols { th { (t(lang, c)) } } } }
            tbody { @for (name, sc) in &state.app.config.sources {
                @let (budget, per_day, rate, throttled) = match sc {
                    SourceConfig::Local { .. } => (
                        t(lang, T::Local).to_owned(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ),
                    SourceConfig::CloudDrive2 { settings, .. } => {
                        let cd = state.app.clouddrives.get(name);
                        (
                            format!("{}/s", settings.max_queries_per_second),
                            ceilings(sc),
                            cd.map_or(String::new(), |c| format!("{:.2}/s", c.current_rate())),
                            cd.map_or(String::new(), |c| c.stats().throttled.to_string()),
                        )
                    }
                    SourceConfig::OpenList { .. } | SourceConfig::Rclone { .. } => {
                        let remote = state.app.remotes.get(name);
                        (
                            format!("{}/s", sc.rate().map_or(0.0, |r| r.0)),
                            ceilings(sc),
                            remote.map_or(String::new(), |r| format!("{:.2}/s", r.current_rate())),
                            remote.map_or(String::new(), |r| r.throttled().to_string()),
                        )
                    }
                };
                @let made = spent.iter().find(|s| s.source == *name);
                tr {
                    td data-label=(t(lang, T::Source)) { (name) }
                    td data-label=(t(lang, T::Budget)) { (budget) }
                    td data-label=(t(lang, T::Rate)) { (rate) }
                    td data-label=(t(lang, T::PerDay)) { (per_day) }
                    td data-label=(t(lang, T::CallsHourMade)) { @if let Some(m) = made { (m.calls_last_hour) } }
                    td data-label=(t(lang, T::CallsDayMade)) { @if let Some(m) = made { (m.calls_last_day) } }
                    td data-label=(t(lang, T::Listed)) { (listed.get(name).copied().unwrap_or(0)) }
                    td data-label=(t(lang, T::Failed)) { (failed.get(name).copied().unwrap_or(0)) }
                    td data-label=(t(lang, T::Throttled)) { (throttled) }
                }
            } }
        } }
        @for m in spent { (calls_chart(lang, m)) }
    }
}

/// Calls per hour over the last two days against the budget, as an inline SVG drawn
/// here: no script, no font, nothing from the internet. Bars scale to the larger of
/// the busiest hour and the rate's budget per hour, which is drawn as a dashed line.
fn calls_chart(lang: Lang, m: &crate::status::SourceStatus) -> Markup {
    let (w, h) = (480.0_f64, 120.0_f64);
    let budget = m.calls_per_second * 3600.0;
    let hour_cap = m.max_calls_per_hour.map(|c| c as f64);
    let budget = hour_cap.map_or(budget, |c| c.min(budget));
    let top = m.calls_by_hour.iter().copied().max().unwrap_or(0).max(1) as f64;
    let top = top.max(budget) * 1.1;
    let n = m.calls_by_hour.len().max(1) as f64;
    let bw = w / n;
    let y = format!("{:.1}", h - budget / top * h);
    let caption = t(lang, T::CallsChart);
    let budget_text = fill(t(lang, T::ChartBudget), &[("n", &format!("{budget:.0}"))]);
    html! {
        figure.chart {
            figcaption { (caption) " — " (m.source) }
            svg viewBox={ "0 0 " (w) " " (h + 14.0) } width="100%" role="img" aria-label=(caption) {
                title { (fill(t(lang, T::ChartTitle), &[
                    ("chart", caption),
                    ("n", &m.calls_by_hour.last().copied().unwrap_or(0).to_string()),
                ])) }
                @for (i, v) in m.calls_by_hour.iter().enumerate() {
                    @let bh = (*v as f64 / top * h).max(if *v > 0 { 1.0 } else { 0.0 });
                    rect x=(format!("{:.1}", i as f64 * bw + 0.5)) y=(format!("{:.1}", h - bh))
                        width=(format!("{:.1}", (bw - 1.0).max(0.5))) height=(format!("{bh:.1}"))
                        fill="#4a7bd0" { title { (v) } }
                }
                line x1="0" y1=(y) x2=(w) y2=(y) stroke="#c0392b" stroke-dasharray="4 3" { title { (budget_text) } }
                text x="0" y=(h + 11.0) font-size="10" fill="currentColor" { (t(lang, T::ChartAgo)) }
                text x=(w) y=(h + 11.0) font-size="10" text-anchor="end" fill="currentColor" { (t(lang, T::ChartNow)) }
            }
            p.legend { "— — " (budget_text) }
        }
    }
}

fn action_form(
    state: &UiState,
    action: &str,
    csrf: &str,
    target: &str,
    path: &str,
    label: &str,
) -> Markup {
    html! {
        form.inline method="post" action=(state.path(action)) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="target" value=(target);
            input type="hidden" name="path" value=(path);
            button { (label) }
        }
    }
}

async fn action_retry(
    State(state): State<UiState>,
    Checked { form, .. }: Checked<CsrfForm>,
) -> Response {
    if !state.app.targets.contains(&form.target) {
        return (StatusCode::BAD_REQUEST, "no such target").into_response();
    }
    let engine = state.app.engine.clone();
    let target = form.target.clone();
    let retried = tokio::task::spawn_blocking(move || {
        let store = engine.store();
        Ok::<_, pps_core::Error>(store.unpark(Some(&target))? + store.retry_stuck(Some(&target))?)
    });
    match retried.await {
        Ok(Ok(n)) => {
            tracing::info!(target = %form.target, scans = n, "web UI: parked and stuck scans queued again");
            if let Some(w) = state.app.wakes.get(&form.target) {
                w.notify_one();
            }
            Redirect::to(&format!("{}?retried={n}", state.base)).into_response()
        }
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn action_notify_test(
    State(state): State<UiState>,
    Checked { form, .. }: Checked<CsrfForm>,
) -> Response {
    let Some(config) = state.app.config.notifiers.get(&form.target) else {
        return (StatusCode::BAD_REQUEST, "no such notifier").into_response();
    };
    let ok = match crate::notify::send_test_with(&form.target, config).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(notifier = %form.target, error = %e, "web UI: test message failed");
            // Shown in the notifier's row until its next delivery.
            let store = state.app.engine.store().clone();
            let (name, msg) = (form.target.clone(), e.message().to_owned());
            let _ = tokio::task::spawn_blocking(move || {
                let mut st = store.notifier(&name)?.unwrap_or_default();
                st.last_error = Some(format!("test: {msg}"));
                store.save_notifier(&name, &st)
            })
            .await;
            false
        }
    };
    let to = format!(
        "{}?tested={}&ok={}",
        state.base,
        url::form_urlencoded::byte_serialize(form.target.as_bytes()).collect::<String>(),
        u8::from(ok)
    );
    Redirect::to(&to).into_response()
}

async fn action_notify_retry(
    State(state): State<UiState>,
    Checked { form, .. }: Checked<CsrfForm>,
) -> Response {
    if !state.app.config.notifiers.contains_key(&form.target) {
        return (StatusCode::BAD_REQUEST, "no such notifier").into_response();
    }
    let store = state.app.engine.store().clone();
    let name = form.target.clone();
    let r = tokio::task::spawn_blocking(move || {
        if let Some(mut st) = store.notifier(&name)? {
            st.parked = None;
            st.failures = 0;
            store.save_notifier(&name, &st)?;
        }
        Ok::<_, pps_core::Error>(())
    })
    .await;
    match r {
        Ok(Ok(())) => Redirect::to(&state.base).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn action_drop(
    State(state): State<UiState>,
    Checked { form, .. }: Checked<CsrfForm>,
) -> Response {
    if !state.app.targets.contains(&form.target) {
        return (StatusCode::BAD_REQUEST, "no such target").into_response();
    }
    // Validated as the CLI validates a path: absolute, normalised. No path: every
    // queued scan of the target (the Overview's "Drop all", as `pps drop TARGET`).
    let path = match form.path.as_str() {
        "" => None,
        p => match pps_core::path::normalize(p) {
            Ok(p) => Some(p),
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
    };
    let engine = state.app.engine.clone();
    let target = form.target.clone();
    match tokio::task::spawn_blocking(move || engine.store().drop_scans(&target, path.as_deref()))
        .await
    {
        Ok(Ok(n)) => {
            tracing::info!(target = %form.target, scans = n, "web UI: queued scans dropped");
            Redirect::to(&state.base).into_response()
        }
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn history_query(q: &HashMap<String, String>, limit: usize) -> HistoryQuery {
    let some = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    // `watch=SOURCE:ROOT`: that source's lines under that root (a path search, when
    // given, narrows them further; see `in_watch`).
    let watch =
        some("watch").and_then(|w| w.split_once(':').map(|(s, r)| (s.to_owned(), r.to_owned())));
    HistoryQuery {
        target: some("target"),
        path: some("path").or_else(|| watch.as_ref().map(|(_, r)| r.clone())),
        source: watch.map(|(s, _)| s),
        events: some("event")
            .and_then(|e| Event::parse(&e))
            .into_iter()
            .collect(),
        since: None,
        before: some("before").and_then(|b| b.parse().ok()),
        limit,
    }
}

/// Whether a line is under the root of the page's `watch` filter.
fn in_watch(q: &HashMap<String, String>, h: &HistoryEntry) -> bool {
    match q.get("watch").and_then(|w| w.split_once(':')) {
        Some((_, root)) if !root.is_empty() => pps_core::path::is_at_or_under(&h.change.path, root),
        _ => true,
    }
}

/// What a history row needs besides its line: the page's language, and for its **Scan
/// again** button the session's CSRF token, where the button posts, and the targets in
/// force (a line of a target since removed gets none).
#[derive(Clone)]
struct RowKit {
    lang: Lang,
    csrf: String,
    action: String,
    targets: Vec<String>,
}

impl RowKit {
    fn new(state: &UiState, lang: Lang, csrf: &str) -> Self {
        RowKit {
            lang,
            csrf: csrf.to_owned(),
            action: state.path("browse/scan"),
            targets: state.app.targets.clone(),
        }
    }
}

fn origin_text(o: pps_core::store::Origin) -> T {
    use pps_core::store::Origin;
    match o {
        Origin::Walk => T::OriginWalk,
        Origin::Poll => T::OriginPoll,
        Origin::Spare => T::OriginSpare,
        Origin::Push => T::OriginPush,
        Origin::Webhook => T::OriginWebhook,
        Origin::Manual => T::OriginManual,
    }
}

/// One history line as a table row (also sent live, as an event, by
/// [`activity_events`]). A line of a delivery to a target has **Scan again**: the path
/// queued once more to that target, as the Browser's Scan now does.
fn history_row(h: &HistoryEntry, kit: &RowKit) -> Markup {
    let lang = kit.lang;
    let again = match (&h.target, &h.watch) {
        (Some(target), Some((source, _)))
            if h.event != Event::Notified && kit.targets.contains(target) =>
        {
            Some((source, target))
        }
        _ => None,
    };
    html! {
        tr data-id=(h.id) class={ "ev-" (h.event.as_str()) } {
            td data-label=(t(lang, T::Time)) { (time(h.at.as_secs())) }
            td data-label=(t(lang, T::Event)) { (t(lang, T::event(h.event))) }
            td data-label=(t(lang, T::Target)) { (h.target.as_deref().unwrap_or("")) }
            td.path data-label=(t(lang, T::Path)) { (h.change.path) }
            // One element in the cell: on a phone the cell is a grid of label and value.
            td data-label=(t(lang, T::Detail)) { span.detail {
                @match h.event {
                    Event::Change => {
                        // A scan by hand changed nothing: it is a rescan, unless the
                        // path is gone (a deletion pushed by hand).
                        @let manual = h.origin() == Some(pps_core::store::Origin::Manual);
                        (t(lang, match (h.change.update, h.change.is_dir) {
                            (pps_core::Update::Deleted, false) => T::DeletedFile,
                            (pps_core::Update::Deleted, true) => T::DeletedFolder,
                            (_, false) if manual => T::RescanFile,
                            (_, true) if manual => T::RescanFolder,
                            (pps_core::Update::Created, false) => T::CreatedFile,
                            (pps_core::Update::Created, true) => T::CreatedFolder,
                            (pps_core::Update::Modified, false) => T::ModifiedFile,
                            (pps_core::Update::Modified, true) => T::ModifiedFolder,
                        }))
                        @if let Some(o) = h.origin() {
                            (t(lang, T::Sep)) span.origin { (t(lang, origin_text(o))) }
                        }
                    }
                    // The path as the server was sent it, when mapping changed it.
                    Event::Sent => {
                        @if let Some(d) = h.detail.as_deref().filter(|d| *d != h.change.path) {
                            (fill(t(lang, T::SentAs), &[("path", d)]))
                        }
                    }
                    _ => { (said(lang, h.detail.as_deref().unwrap_or(""))) }
                }
                @if let Some((source, target)) = again {
                    form.again method="post" action=(kit.action) {
                        input type="hidden" name="csrf" value=(kit.csrf);
                        input type="hidden" name="back" value="activity";
                        input type="hidden" name="source" value=(source);
                        input type="hidden" name="path" value=(h.change.path);
                        input type="hidden" name="target" value=(target);
                        button.small { (t(lang, T::ScanAgain)) }
                    }
                }
            } }
        }
    }
}

async fn activity(
    State(state): State<UiState>,
    Viewer { session: s, lang }: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = history_query(&q, 50);
    let engine = state.app.engine.clone();
    let lines = match tokio::task::spawn_blocking({
        let query = query.clone();
        move || engine.store().history(&query)
    })
    .await
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    // The page ends where the store's page ended, whatever the watch filter kept of it.
    let page_end = (lines.len() == query.limit)
        .then(|| lines.last().map(|h| h.id))
        .flatten();
    let lines: Vec<HistoryEntry> = lines.into_iter().filter(|h| in_watch(&q, h)).collect();
    let chosen = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (sel_watch, sel_target, sel_event) = (chosen("watch"), chosen("target"), chosen("event"));
    let options = |selected: &str, values: Vec<(String, String)>| {
        html! {
            option value="" selected[selected.is_empty()] { (t(lang, T::All)) }
            @for (v, label) in values {
                option value=(v) selected[v == selected] { (label) }
            }
        }
    };
    let watches: Vec<(String, String)> = state
        .app
        .config
        .watches
        .iter()
        .map(|w| (w.label(), w.label()))
        .collect();
    let targets: Vec<(String, String)> = state
        .app
        .targets
        .iter()
        .map(|t| (t.clone(), t.clone()))
        .collect();
    let events: Vec<(String, String)> = Event::ALL
        .iter()
        .map(|e| (e.as_str().to_owned(), t(lang, T::event(*e)).to_owned()))
        .collect();
    let events_url = format!(
        "{}?{}",
        state.path("activity/events"),
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                ["watch", "target", "event", "path"]
                    .iter()
                    .filter_map(|k| q.get(*k).map(|v| (*k, v.as_str())))
            )
            .finish()
    );
    let older = page_end.map(|last| {
        let mut next = q.clone();
        next.insert("before".into(), last.to_string());
        next.remove("lang");
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next.iter())
            .finish()
    });
    let body = html! {
        h1 { (t(lang, T::Activity)) }
        form.filters method="get" {
            label { (t(lang, T::Watch)) " " select name="watch" { (options(&sel_watch, watches)) } }
            label { (t(lang, T::Target)) " " select name="target" { (options(&sel_target, targets)) } }
            label { (t(lang, T::Event)) " " select name="event" { (options(&sel_event, events)) } }
            label { (t(lang, T::Path)) " " input name="path" value=(chosen("path")); }
            button { (t(lang, T::Filter)) }
        }
        (manage::flash(lang, &q))
        // A refused scan comes back here, with its error and the form as it was sent.
        @let scan_error = q.get("scan_error");
        @let sources = &state.app.config.sources;
        @let (scan_source, scan_target) = (chosen("scan_source"), chosen("scan_target"));
        details.scan-typed open[scan_error.is_some()] {
            summary { (t(lang, T::ScanTyped)) }
            p.hint { (t(lang, T::ScanTypedHint)) }
            @if let Some(e) = scan_error { p.error role="alert" { (e) } }
            form.filters method="post" action=(state.path("browse/scan")) {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="back" value="activity";
                label { (t(lang, T::Source)) " " select name="source" required {
                    @if sources.len() > 1 && !sources.contains_key(&scan_source) {
                        option value="" disabled selected { (t(lang, T::ChooseSource)) }
                    }
                    @for name in sources.keys() {
                        option value=(name) selected[*name == scan_source] { (name) }
                    }
                } }
                label { (t(lang, T::Path)) " " input name="path" required value=(chosen("scan_path"))
                    placeholder=(t(lang, T::ScanPathExample)); }
                label { (t(lang, T::Target)) " " select name="target" {
                    @for name in &state.app.targets { option value=(name) selected[*name == scan_target] { (name) } }
                } }
                button { (t(lang, T::ScanTo)) }
            }
        }
        // Only the first page follows new lines.
        p.hint #live data-events=(events_url) data-after=(lines.first().map_or(0, |h| h.id))
            data-live=(query.before.is_none()) { (t(lang, T::Live)) }
        div.scroll { table #history .cards {
            @let cols = [T::Time, T::Event, T::Target, T::Path, T::Detail];
            thead { tr { @for c in cols { th { (t(lang, c)) } } } }
            @let kit = RowKit::new(&state, lang, &s.csrf);
            tbody { @for h in &lines { (history_row(h, &kit)) } }
        } }
        @if lines.is_empty() { p #empty { (t(lang, T::None)) } }
        @if let Some(qs) = older {
            p { a.older href={ "?" (qs) } { (t(lang, T::Older)) } }
        }
    };
    page(&state, lang, t(lang, T::Activity), Some(&s.csrf), body)
}

/// Server-sent events: each new history line (matching the page's filters) as an
/// HTML table row, rendered and escaped here; the store is looked at once a second.
async fn activity_events(
    State(state): State<UiState>,
    user: LoggedIn,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let kit = RowKit::new(&state, user.lang, &user.session.csrf);
    let query = history_query(&q, 200);
    let store: Arc<dyn MtimeStore> = state.app.engine.store().clone();
    let filters = q.clone();
    live_rows(
        &state,
        user,
        &headers,
        &q,
        Duration::from_secs(1),
        move |after| {
            let (store, query, q, kit) =
                (store.clone(), query.clone(), filters.clone(), kit.clone());
            async move {
                tokio::task::spawn_blocking(move || store.history(&query))
                    .await
                    .ok()
                    .and_then(std::result::Result::ok)
                    .unwrap_or_default()
                    .into_iter()
                    .rev()
                    .filter(|h| h.id > after && in_watch(&q, h))
                    .map(|h| (h.id, history_row(&h, &kit).into_string()))
                    .collect()
            }
        },
    )
}

/// A page's live table: every `every`, `poll(after)` gives the rows (id, HTML, escaped)
/// after the last one sent, which go out as server-sent events. The client's
/// `Last-Event-ID` (or `?after=`) is where it starts; a comment every 15 s of quiet keeps
/// proxies from closing the stream; at most [`MAX_STREAMS`] are open, and each ends
/// with its session.
fn live_rows<F, Fut>(
    state: &UiState,
    user: LoggedIn,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    every: Duration,
    poll: F,
) -> Response
where
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<(i64, String)>> + Send,
{
    let id = user.id;
    let Some(slot) = StreamSlot::take(&state.sessions) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many live views open; close one",
        )
            .into_response();
    };
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("after").map(String::as_str))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let idle_every = (Duration::from_secs(15).as_millis() / every.as_millis().max(1)).max(1) as u64;
    let stream = futures_util::stream::unfold(
        (poll, after, 0u64),
        move |(poll, after, ticks)| async move {
            tokio::time::sleep(every).await;
            let rows = poll(after).await;
            let next = rows.iter().map(|(i, _)| *i).fold(after, i64::max);
            let mut events: Vec<SseEvent> = rows
                .into_iter()
                .map(|(i, html)| SseEvent::default().id(i.to_string()).data(html))
                .collect();
            let ticks = ticks + 1;
            if events.is_empty() && ticks.is_multiple_of(idle_every) {
                events.push(SseEvent::default().comment("idle"));
            }
            let out = futures_util::stream::iter(
                events.into_iter().map(Ok::<_, std::convert::Infallible>),
            );
            Some((out, (poll, next, ticks)))
        },
    )
    .flatten();
    Sse::new(while_logged_in(stream, state.sessions.clone(), id, slot)).into_response()
}

/// `stream` until its session ends (logout, idle, its 7 days, a new password hash),
/// holding its slot until then.
fn while_logged_in<S: futures_util::Stream<Item: Send> + Send + 'static>(
    stream: S,
    sessions: Arc<Sessions>,
    id: String,
    slot: StreamSlot,
) -> impl futures_util::Stream<Item = S::Item> + Send {
    stream.take_while(move |_| {
        let _held = &slot;
        std::future::ready(sessions.alive(&id))
    })
}

use futures_util::StreamExt as _;

mod auth;
mod manage;

async fn config_page(
    State(state): State<UiState>,
    headers: HeaderMap,
    Viewer { session: s, lang }: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // The check calls every source and target: only from the UI's own page.
    let check = if q.contains_key("check") && vouched(&headers, &q, &s.csrf) {
        let checker = state.app.checker.clone();
        Some(
            tokio::time::timeout(Duration::from_secs(60), async move { checker.run().await }).await,
        )
    } else {
        None
    };
    let body = html! {
        h1 { (t(lang, T::Config)) }
        p { (t(lang, T::InForce)) }
        pre.config { (state.app.config_text) }
        h2 { (t(lang, T::Check)) }
        form method="get" {
            input type="hidden" name="check" value="1";
            input type="hidden" name="k" value=(view_token(&s.csrf));
            button { (t(lang, T::RunCheck)) }
            " "
            span.hint { (t(lang, T::CheckNote)) }
        }
        @match check {
            Some(Ok(report)) => { (check_html(&report, lang)) }
            Some(Err(_)) => { p.error { (t(lang, T::CheckTooLong)) } }
            None => {}
        }
    };
    page(&state, lang, t(lang, T::Config), Some(&s.csrf), body)
}

/// `pps check`'s findings as a list, in its own words (as the CLI prints them).
fn check_html(r: &crate::check::CheckReport, lang: Lang) -> Markup {
    use crate::check::{Landing, RootOutcome, SourceOutcome};
    // `pps check`'s lines, in the page's language; what servers and the system said
    // (an error, a mapped path, a library name) stays as they said it.
    let fill = |key: T, pairs: &[(&str, &str)]| fill(t(lang, key), pairs);
    let mut lines: Vec<(bool, String)> = Vec::new();
    let mut li = |ok: bool, text: String| lines.push((ok, text));
    if let Some(p) = &r.no_watches {
        li(false, fill(T::CkProblem, &[("why", p)]));
    }
    for s in &r.sources {
        let (name, what) = (s.name.as_str(), s.what.as_str());
        match &s.outcome {
            SourceOutcome::Local => li(true, fill(T::CkLocal, &[("name", name)])),
            SourceOutcome::Ready => {
                let key = if what.starts_with("clouddrive2") {
                    T::CkCd2Ready
                } else {
                    T::CkReady
                };
                li(true, fill(key, &[("name", name), ("what", what)]));
            }
            SourceOutcome::Reachable(n) => li(
                false,
                fill(
                    T::CkReachable,
                    &[("name", name), ("what", what), ("why", &n.join("; "))],
                ),
            ),
            SourceOutcome::Failed(why) => li(
                false,
                fill(
                    T::CkSourceFailed,
                    &[("name", name), ("what", what), ("why", why)],
                ),
            ),
        }
    }
    for tg in &r.targets {
        let (name, kind) = (tg.name.as_str(), tg.kind);
        match &tg.result {
            // A command or stdout: no server, no libraries; any path is taken.
            Ok(info) if info.libraries.is_empty() && info.server == "target" => li(
                true,
                fill(T::CkTargetAny, &[("name", name), ("kind", kind)]),
            ),
            Ok(info) => {
                let server = match &info.version {
                    Some(v) => format!("{} {v}", info.server),
                    None => info.server.clone(),
                };
                let n = info.libraries.len().to_string();
                li(
                    true,
                    fill(
                        T::CkTarget,
                        &[
                            ("name", name),
                            ("kind", kind),
                            ("server", &server),
                            ("n", &n),
                        ],
                    ),
                );
            }
            Err(e) => li(
                false,
                fill(
                    T::CkTargetFailed,
                    &[("name", name), ("kind", kind), ("why", &said(lang, e))],
                ),
            ),
        }
    }
    for w in &r.watches {
        let watch = w.label.as_str();
        match &w.root {
            RootOutcome::Listed(n) => {
                let key = if *n == 1 { T::CkListedOne } else { T::CkListed };
                li(true, fill(key, &[("watch", watch), ("n", &n.to_string())]));
            }
            RootOutcome::Failed(e) => li(
                false,
                fill(
                    T::CkRootFailed,
                    &[("watch", watch), ("why", &said(lang, e))],
                ),
            ),
            RootOutcome::NotChecked => li(false, fill(T::CkNotChecked, &[("watch", watch)])),
            RootOutcome::NoSource => li(false, fill(T::CkNoSource, &[("watch", watch)])),
        }
        for (tn, l) in &w.targets {
            let tn = tn.as_str();
            match l {
                Landing::Unmapped => li(false, fill(T::CkUnmapped, &[("target", tn)])),
                Landing::Unreached(m) => {
                    li(false, fill(T::CkUnreached, &[("target", tn), ("path", m)]))
                }
                Landing::Anywhere(m) => {
                    li(true, fill(T::CkAnywhere, &[("target", tn), ("path", m)]))
                }
                Landing::NoLibrary(m) => {
                    li(false, fill(T::CkNoLibrary, &[("target", tn), ("path", m)]))
                }
                Landing::Libraries(m, libs) => {
                    let libs = libs
                        .iter()
                        .map(|(n, id)| format!("{n} (#{id})"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    li(
                        true,
                        fill(
                            T::CkLibraries,
                            &[("target", tn), ("path", m), ("libs", &libs)],
                        ),
                    );
                }
            }
        }
    }
    html! {
        ul.check #check {
            @for (ok, text) in lines {
                li class=(if ok { "ok" } else { "bad" }) { (text) }
            }
        }
    }
}

/// The config in force as TOML: its redacted [`Serialize`](serde::Serialize) view
/// ([`ConfigView`](crate::config::view::ConfigView)), every secret `••••`, which can
/// be pasted back into `pps.toml`.
fn config_text(c: &crate::Config) -> String {
    crate::config::view::ConfigView::of(c).to_toml()
}

#[cfg(test)]
mod tests {
    use super::{Lang, T, config_text, fill, said, span_text, t};

    #[test]
    fn an_error_s_kind_reads_in_the_page_s_language_and_what_was_said_stays() {
        let e = pps_core::Error::new(pps_core::ErrorKind::Unavailable, "connection refused")
            .with("target", "plex");
        let text = e.to_string();
        assert_eq!(said(Lang::En, &text), text);
        assert_eq!(
            said(Lang::Zh, &text),
            "无法连接：connection refused [target: plex]"
        );
        let e = pps_core::Error::new(pps_core::ErrorKind::Rejected, "no library holds the path");
        assert_eq!(
            said(Lang::Zh, &e.to_string()),
            "被拒绝：no library holds the path"
        );
        // Not an error of pps's: as it was.
        assert_eq!(said(Lang::Zh, "took 12 s"), "took 12 s");
        assert_eq!(said(Lang::Zh, "rejected"), "rejected");
    }

    #[test]
    fn lengths_of_time_read_in_the_page_s_language() {
        use std::time::Duration;
        let d = |s| Duration::from_secs(s);
        assert_eq!(span_text(Lang::En, d(200)), "3m 20s");
        assert_eq!(span_text(Lang::Zh, d(200)), "3分20秒");
        assert_eq!(span_text(Lang::Zh, d(3720)), "1小时02分");
        assert_eq!(span_text(Lang::Zh, d(2 * 86_400 + 3 * 3600)), "2天03小时");
        assert_eq!(span_text(Lang::Zh, Duration::from_millis(12_500)), "12.5秒");
    }

    #[test]
    fn placeholders_are_filled_once_and_values_are_never_read_for_them() {
        let pairs = [("target", "{path}"), ("path", "/m/{x}")];
        assert_eq!(
            fill("→ {target}: {path} {unknown} {", &pairs),
            "→ {path}: /m/{x} {unknown} {"
        );
        assert_eq!(
            fill("监控 {watch}：{n} 项", &[("watch", "a:/b"), ("n", "3")]),
            "监控 a:/b：3 项"
        );
    }

    /// The Config page's text is TOML that reads back (a path with quotes, a
    /// backslash and Chinese in it), with every secret hidden.
    #[test]
    fn the_config_in_force_reads_back_as_toml_without_its_secrets() {
        let text = r#"
[sources.cd2]
kind = "clouddrive2"
url = "http://nas:19798"
api_token = "cd2-secret-token"
[targets.plex]
kind = "plex"
url = "http://plex:32400"
token = "plex-secret-token"
path_mapping = [{ from = "/115", to = "/mnt/115 \"电视\" \\ x" }]
[targets.hook]
kind = "command"
program = "/usr/local/bin/on-scan"
args = ["--quiet"]
[sources.ol]
kind = "openlist"
url = "http://alist:5244"
username = "admin"
password = "ol-secret-password"
[sources.rc]
kind = "rclone"
url = "http://rc:5572"
remote = "gdrive:"
username = "rc"
password = "rc-secret-password"
[notifiers.tg]
kind = "telegram"
bot_token = "123:tg-secret-token"
chat_id = "-100123"
language = "zh"
[[watch]]
source = "cd2"
path = "/115/电视 \"x\""
max_interval = "2d"
[server]
listen = "127.0.0.1:8787"
token = "server-secret-token"
max_connections = 32
public_metrics = true
arr_path_mapping = [{ from = "/tv", to = "/115/电视" }]
[ui]
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ui-secret-hash"
hosts = ["pps.lan"]
trusted_proxies = ["10.0.0.2"]
"#;
        let config = crate::Config::parse(text, None, &[]).unwrap();
        let shown = config_text(&config);
        // What users come to check, and what earlier versions left out.
        for key in [
            "arr_path_mapping",
            "max_connections = 32",
            "public_metrics = true",
            "hosts = [\"pps.lan\"]",
            "trusted_proxies = [\"10.0.0.2\"]",
            "program = \"/usr/local/bin/on-scan\"",
            "username = \"admin\"",
            "remote = \"gdrive:\"",
            "language = \"zh\"",
            "max_interval = \"2d\"",
        ] {
            assert!(shown.contains(key), "{key} in {shown}");
        }
        let back: toml::Table = toml::from_str(&shown).expect(&shown);
        assert_eq!(back["watch"][0]["path"].as_str(), Some("/115/电视 \"x\""));
        assert_eq!(
            back["targets"]["plex"]["path_mapping"][0]["to"].as_str(),
            Some("/mnt/115 \"电视\" \\ x")
        );
        assert_eq!(back["sources"]["cd2"]["api_token"].as_str(), Some("••••"));
        for secret in [
            "cd2-secret-token",
            "plex-secret-token",
            "ol-secret-password",
            "rc-secret-password",
            "tg-secret-token",
            "server-secret-token",
            "ui-secret-hash",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // It is a config pps reads (given the hash, which must be an argon2 one), and
        // reads as the same config.
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ui-secret-hash";
        let with_hash = shown
            .replace(
                "password_hash = \"••••\"",
                &format!("password_hash = \"{hash}\""),
            )
            .replace("bot_token = \"••••\"", "bot_token = \"123:abc\"");
        let again = crate::Config::parse(&with_hash, None, &[]).expect(&shown);
        assert_eq!(config_text(&again), shown);
    }

    /// Every text has both languages, and the Chinese one is Chinese (a word copied
    /// over untranslated shows as ASCII only).
    #[test]
    fn both_languages_of_a_text_have_the_same_placeholders() {
        let names = |text: &str| {
            let mut out: Vec<String> = text
                .split('{')
                .skip(1)
                .filter_map(|r| r.split_once('}').map(|(n, _)| n.to_owned()))
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .collect();
            out.sort();
            out
        };
        for &key in T::ALL {
            let (en, zh) = (t(Lang::En, key), t(Lang::Zh, key));
            assert_eq!(names(en), names(zh), "{key:?}: {en:?} / {zh:?}");
        }
    }

    #[test]
    fn every_text_is_in_both_languages() {
        for &key in T::ALL {
            let (en, zh) = (t(Lang::En, key), t(Lang::Zh, key));
            assert!(!en.trim().is_empty(), "{key:?} has no English");
            assert!(!zh.is_ascii(), "{key:?} is not translated: {zh:?}");
        }
    }
}
