//! Notifications: tell people what reached their library, and what needs them.
//!
//! **Where notifications come from.** The history is already the durable record of
//! everything pps does, written in the transaction of what it records (a change and
//! its scans, a delivery, a confirmation). A notifier reads it after a cursor kept in
//! the store ([`NotifierState`]) and moves the cursor only after a message was
//! delivered, so a crash loses no notification and a restart repeats none that was
//! delivered. There is no second outbox to keep in step with the first.
//!
//! **Which lines become which event** ([`NotifyEvent`]):
//! - `scanned`: an item confirmed in a library (`indexed`, `removed`), or a scan sent
//!   to a target that does not confirm (a command, stdout). A scan sent to Plex, Emby
//!   or Jellyfin waits for its confirmation: "in the library" means in it.
//! - `parked`, `stuck`: a scan that needs the user, with the reason.
//! - `source_down`, `source_up`: an outage begins and ends, once each ([`Health`]).
//! - `throttled`: the cloud pushed back and pps lowered its rate.
//! - `test`: sent on request (`pps notify test NAME`, the UI's "Send test").
//!
//! **Never a flood.** Lines are gathered until the oldest wanted one is `window` old
//! (30 s by default), then sent as one message, titles grouped ("三体 S01E05–E06 →
//! Plex, Emby"). Each service's own limits are kept: at least 3 s between two Telegram
//! messages (about 20 a minute to one chat), a 429's `retry_after` is honoured, other
//! failures back off exponentially; after [`MAX_FAILURES`] in a row, or at once on a
//! refusal that cannot pass (a wrong token), the notifier is parked with the reason
//! until retried. A notifier that is down never delays a scan: it runs on its own.

use crate::app::App;
use pps_core::store::{Event, HistoryEntry, NotifierState};
use pps_core::{Error, ErrorKind, MtimeStore, Result, Timestamp, Update};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Failed deliveries in a row before a notifier is parked.
pub const MAX_FAILURES: u32 = 8;
/// History lines read per round.
const READ: usize = 2000;
/// Lines shown in one message; the rest is counted.
const SHOWN: usize = 30;
/// The JSON document's version (`webhook`): bumped when a field changes meaning.
pub const DOCUMENT_VERSION: u32 = 1;

pub use crate::config::notifiers::{Language, NotifierConfig, NotifierKind, NotifyEvent};

/// One line of a message, as the JSON document carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    /// The event.
    pub event: &'static str,
    /// When it happened (Unix seconds).
    pub at: i64,
    /// The target, for delivery events.
    pub target: Option<String>,
    /// The watch (`source:path`), when known.
    pub watch: Option<String>,
    /// The source path (a source's root for source events).
    pub path: String,
    /// `created`, `modified` or `deleted`.
    pub update: &'static str,
    /// A title made from the path: `Dune (2021)`, `Severance S02E05`.
    pub title: String,
    /// The item found, the reason, or the error.
    pub detail: Option<String>,
    /// Seconds from the change to the library (`scanned` lines that were confirmed).
    pub took_s: Option<u64>,
}

/// The notify event of a history line for a notifier, if it wants it.
fn event_of(h: &HistoryEntry, confirming: &BTreeSet<String>) -> Option<NotifyEvent> {
    Some(match h.event {
        Event::Indexed | Event::Removed => NotifyEvent::Scanned,
        Event::Sent => {
            // A server that confirms tells "in the library" with its `indexed` line.
            if h.target.as_ref().is_some_and(|t| confirming.contains(t)) {
                return None;
            }
            NotifyEvent::Scanned
        }
        Event::Parked => NotifyEvent::Parked,
        Event::Stuck => NotifyEvent::Stuck,
        Event::SourceDown => NotifyEvent::SourceDown,
        Event::SourceUp => NotifyEvent::SourceUp,
        Event::Throttled => NotifyEvent::Throttled,
        Event::Change | Event::Retried | Event::Dropped | Event::Notified => return None,
    })
}

/// The wanted lines of `lines` for `config`, as notices.
pub fn notices(
    config: &NotifierConfig,
    lines: &[HistoryEntry],
    confirming: &BTreeSet<String>,
) -> Vec<Notice> {
    lines
        .iter()
        .filter_map(|h| {
            let event = event_of(h, confirming)?;
            if !config.events.contains(&event) {
                return None;
            }
            let watch = h.watch.as_ref().map(|(s, r)| format!("{s}:{r}"));
            if !config.watches.is_empty()
                && !watch
                    .as_ref()
                    .is_some_and(|w| config.watches.iter().any(|x| x == w))
            {
                return None;
            }
            if !config.targets.is_empty()
                && h.target
                    .as_ref()
                    .is_some_and(|t| !config.targets.contains(t))
            {
                return None;
            }
            Some(Notice {
                event: event.as_str(),
                at: h.at.as_secs(),
                target: h.target.clone(),
                watch,
                path: h.change.path.clone(),
                update: h.change.update.as_str(),
                title: title(&h.change.path, h.change.is_dir),
                detail: h.detail.clone(),
                took_s: h.took,
            })
        })
        .collect()
}

/// `S01E05` in a file name: (season, episode).
fn episode_of(stem: &str) -> Option<(u32, u32)> {
    let b = stem.as_bytes();
    for i in 0..b.len() {
        if !b[i].eq_ignore_ascii_case(&b's') {
            continue;
        }
        let digits = |from: usize| {
            let n = b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
            (n > 0 && n <= 3).then(|| (stem[from..from + n].parse::<u32>().ok(), from + n))
        };
        let Some((Some(season), at)) = digits(i + 1) else {
            continue;
        };
        if at < b.len()
            && b[at].eq_ignore_ascii_case(&b'e')
            && let Some((Some(ep), _)) = digits(at + 1)
        {
            return Some((season, ep));
        }
    }
    None
}

/// True for a season folder's name (`Season 1`, `S01`, `第一季`, `Specials`).
fn is_season_folder(name: &str) -> bool {
    let l = name.to_lowercase();
    l.starts_with("season")
        || l == "specials"
        || (l.starts_with('s') && l.len() <= 4 && l[1..].chars().all(|c| c.is_ascii_digit()))
        || (name.starts_with('第') && name.ends_with('季'))
}

/// A title for a path: the show and episode for an episode file, else the title's
/// folder (`沙丘2 (2024)`) or the file's name without its extension.
pub fn title(path: &str, is_dir: bool) -> String {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let Some(name) = parts.last() else {
        return path.to_owned();
    };
    if is_dir {
        return (*name).to_owned();
    }
    let stem = name.rsplit_once('.').map_or(*name, |(s, _)| s);
    let folders = &parts[..parts.len() - 1];
    if let Some((s, e)) = episode_of(stem) {
        let show = folders
            .iter()
            .rev()
            .find(|f| !is_season_folder(f))
            .copied()
            .unwrap_or(stem);
        return format!("{show} S{s:02}E{e:02}");
    }
    match folders.last() {
        // A film in its own folder is named by the folder (`Dune (2021)/Dune.mkv`).
        Some(f) if has_year(f) => (*f).to_owned(),
        _ => stem.to_owned(),
    }
}

fn has_year(name: &str) -> bool {
    name.as_bytes().windows(6).any(|w| {
        (w[0] == b'(' || w[0] == b'[')
            && w[1..5].iter().all(u8::is_ascii_digit)
            && (w[5] == b')' || w[5] == b']')
    })
}

/// Episode titles of one show and season merged: `三体 S01E05–E06`, `X S01E01, E03`.
fn merge_titles(titles: &[String]) -> Vec<String> {
    let mut episodes: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut out: Vec<String> = Vec::new();
    for t in titles {
        match t.rsplit_once(' ').and_then(|(show, code)| {
            let (s, e) = episode_of(code)?;
            (code.len() == 6).then(|| (format!("{show} S{s:02}"), e))
        }) {
            Some((key, e)) => {
                if !episodes.contains_key(&key) {
                    out.push(key.clone());
                }
                episodes.entry(key).or_default().insert(e);
            }
            None if !out.contains(t) => out.push(t.clone()),
            None => {}
        }
    }
    out.into_iter()
        .map(|k| match episodes.get(&k) {
            None => k,
            Some(eps) => {
                let eps: Vec<u32> = eps.iter().copied().collect();
                let contiguous = eps.windows(2).all(|w| w[1] == w[0] + 1);
                let first = eps[0];
                let last = eps[eps.len() - 1];
                if eps.len() == 1 {
                    format!("{k}E{first:02}")
                } else if contiguous {
                    format!("{k}E{first:02}–E{last:02}")
                } else {
                    let rest: Vec<String> = eps[1..].iter().map(|e| format!("E{e:02}")).collect();
                    format!("{k}E{first:02}, {}", rest.join(", "))
                }
            }
        })
        .collect()
}

/// A target's name as a message shows it: `plex` → `Plex`.
fn shown(target: &str) -> String {
    let mut c = target.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The text of a message for `notices`.
pub fn text(notices: &[Notice], language: Language) -> String {
    let zh = language == Language::Zh;
    let mut out = String::new();
    // In the library: titles grouped, each with the targets that have it.
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut removed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in notices.iter().filter(|n| n.event == "scanned") {
        let t = n.target.clone().unwrap_or_default();
        if n.update == Update::Deleted.as_str() {
            removed.entry(n.title.clone()).or_default().push(t);
        } else {
            by_target.entry(t).or_default().push(n.title.clone());
        }
    }
    let mut targets_of: Vec<(String, Vec<String>)> = Vec::new();
    for (target, titles) in &by_target {
        for t in merge_titles(titles) {
            match targets_of.iter_mut().find(|(x, _)| *x == t) {
                Some((_, ts)) => ts.push(shown(target)),
                None => targets_of.push((t, vec![shown(target)])),
            }
        }
    }
    if !targets_of.is_empty() {
        out.push_str(if zh {
            "已入库\n"
        } else {
            "In the library\n"
        });
        for (t, ts) in targets_of.iter().take(SHOWN) {
            let _ = writeln!(out, "{t} → {}", ts.join(", "));
        }
        if targets_of.len() > SHOWN {
            let more = targets_of.len() - SHOWN;
            let _ = writeln!(
                out,
                "{}",
                if zh {
                    format!("……另有 {more} 项")
                } else {
                    format!("… and {more} more")
                }
            );
        }
    }
    if !removed.is_empty() {
        out.push_str(if zh { "已移除\n" } else { "Removed\n" });
        for (t, ts) in removed.iter().take(SHOWN) {
            let ts: Vec<String> = ts.iter().map(|t| shown(t)).collect();
            let _ = writeln!(out, "{t} ✕ {}", ts.join(", "));
        }
    }
    let needs: Vec<&Notice> = notices
        .iter()
        .filter(|n| NotifyEvent::parse(n.event).is_some_and(NotifyEvent::needs_you))
        .collect();
    if !needs.is_empty() {
        out.push_str(if zh { "需要处理\n" } else { "Needs you\n" });
        for n in needs.iter().take(SHOWN) {
            let detail = n.detail.as_deref().unwrap_or("");
            let target = n.target.as_deref().map(shown).unwrap_or_default();
            let line = match (n.event, zh) {
                ("parked", false) => {
                    format!("• Parked for {target}: {} — {detail} (`pps retry`)", n.path)
                }
                ("parked", true) => format!(
                    "• 已搁置（{target}）：{} — {detail}（`pps retry` 重试）",
                    n.path
                ),
                ("stuck", false) => format!("• Not in {target}: {} — {detail}", n.title),
                ("stuck", true) => format!("• 未入库（{target}）：{} — {detail}", n.title),
                (_, false) => format!("• Source {} is down: {detail}", source_of(n)),
                (_, true) => format!("• 来源 {} 无法访问：{detail}", source_of(n)),
            };
            let _ = writeln!(out, "{line}");
        }
    }
    for n in notices
        .iter()
        .filter(|n| matches!(n.event, "source_up" | "throttled"))
    {
        let detail = n.detail.as_deref().unwrap_or("");
        let line = match (n.event, zh) {
            ("source_up", false) => format!("Source {} is back", source_of(n)),
            ("source_up", true) => format!("来源 {} 已恢复", source_of(n)),
            (_, false) => format!("Source {} throttled: {detail}", source_of(n)),
            (_, true) => format!("来源 {} 被限流：{detail}", source_of(n)),
        };
        let _ = writeln!(out, "{line}");
    }
    for n in notices.iter().filter(|n| n.event == "test") {
        let _ = writeln!(out, "{}", n.detail.as_deref().unwrap_or(""));
    }
    out.trim_end().to_owned()
}

fn source_of(n: &Notice) -> String {
    n.watch
        .as_deref()
        .and_then(|w| w.split_once(':').map(|(s, _)| s.to_owned()))
        .unwrap_or_else(|| n.path.clone())
}

/// Why a message was not delivered.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong, without any secret.
    pub message: String,
    /// True when trying again may succeed.
    pub temporary: bool,
    /// How long the service asked us to wait (a 429's `retry_after`).
    pub retry_after: Option<Duration>,
}

/// Sends one message.
pub async fn send(
    client: &reqwest::Client,
    name: &str,
    config: &NotifierConfig,
    notices: &[Notice],
) -> std::result::Result<(), SendError> {
    let body = text(notices, config.language);
    let warning = notices
        .iter()
        .any(|n| NotifyEvent::parse(n.event).is_some_and(NotifyEvent::needs_you));
    let (request, secret): (reqwest::RequestBuilder, Vec<String>) = match &config.kind {
        NotifierKind::Webhook { url, headers } => {
            let doc = serde_json::json!({
                "version": DOCUMENT_VERSION,
                "notifier": name,
                "text": body,
                "events": notices,
            });
            let mut r = client.post(url.expose()).json(&doc);
            for (k, v) in headers {
                r = r.header(k.as_str(), v.expose());
            }
            let mut secrets = vec![url.expose().to_owned()];
            secrets.extend(headers.iter().map(|(_, v)| v.expose().to_owned()));
            (r, secrets)
        }
        NotifierKind::Telegram {
            bot_token,
            chat_id,
            api_url,
        } => {
            let url = format!("{api_url}/bot{}/sendMessage", bot_token.expose());
            let doc = serde_json::json!({
                "chat_id": chat_id,
                "text": clip(&body, 4000),
                "disable_web_page_preview": true,
            });
            (
                client.post(url).json(&doc),
                vec![bot_token.expose().to_owned()],
            )
        }
        NotifierKind::Discord { url } => {
            let doc = serde_json::json!({ "content": clip(&body, 1900) });
            (
                client.post(url.expose()).json(&doc),
                vec![url.expose().to_owned()],
            )
        }
        NotifierKind::Apprise { url, tag } => {
            let mut doc = serde_json::json!({
                "title": "pps",
                "body": body,
                "type": if warning { "warning" } else { "info" },
            });
            if let Some(t) = tag {
                doc["tag"] = serde_json::Value::String(t.clone());
            }
            (
                client.post(url.expose()).json(&doc),
                vec![url.expose().to_owned()],
            )
        }
    };
    let scrub = |s: String| {
        secret
            .iter()
            .filter(|x| !x.is_empty())
            .fold(s, |acc, x| acc.replace(x.as_str(), "***"))
    };
    let kind = config.kind.name();
    let response = request.send().await.map_err(|e| SendError {
        // reqwest's error names the URL: keep only its kind.
        message: scrub(format!(
            "{kind}: {}",
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                "the request failed".to_owned()
            }
        )),
        temporary: true,
        retry_after: None,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    // Telegram: `parameters.retry_after`; Discord: `retry_after` (seconds, float).
    let retry_after = json["parameters"]["retry_after"]
        .as_f64()
        .or_else(|| json["retry_after"].as_f64())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    let said = json["description"]
        .as_str()
        .or_else(|| json["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(200).collect());
    let code = status.as_u16();
    Err(SendError {
        message: scrub(format!("{kind} answered {code}: {said}")),
        temporary: code == 429 || code == 408 || status.is_server_error(),
        retry_after,
    })
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// What one round of a notifier did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// A message was delivered, with this many lines.
    pub delivered: Option<usize>,
    /// The delivery failed with this.
    pub failed: Option<String>,
    /// The notifier is parked (now or already).
    pub parked: bool,
}

/// One notifier's delivery: reads the history after its cursor, batches, sends.
#[derive(Debug)]
pub struct Notifier {
    name: String,
    config: NotifierConfig,
    client: reqwest::Client,
    store: Arc<dyn MtimeStore>,
    confirming: BTreeSet<String>,
    next_try: Option<Timestamp>,
    last_message: Option<Timestamp>,
}

impl Notifier {
    /// A notifier over `store`; `confirming` names the targets whose scans are
    /// confirmed (their `sent` lines wait for `indexed`).
    pub fn new(
        name: &str,
        config: NotifierConfig,
        store: Arc<dyn MtimeStore>,
        confirming: BTreeSet<String>,
    ) -> Result<Self> {
        let client = pps_mediaserver::client(config.timeout)?;
        Ok(Notifier {
            name: name.to_owned(),
            config,
            client,
            store,
            confirming,
            next_try: None,
            last_message: None,
        })
    }

    /// The stored state; a notifier seen for the first time starts at the newest line
    /// (it does not announce a month of history).
    pub fn state(&self) -> Result<NotifierState> {
        match self.store.notifier(&self.name)? {
            Some(s) => Ok(s),
            None => {
                let s = NotifierState {
                    cursor: self.store.last_history_id()?,
                    ..NotifierState::default()
                };
                self.store.save_notifier(&self.name, &s)?;
                Ok(s)
            }
        }
    }

    /// One round at `now` (Unix seconds): sends what waited long enough, as one
    /// message. Errors only when the store fails.
    pub async fn round(&mut self, now: Timestamp) -> Result<RoundReport> {
        let mut state = self.state()?;
        let mut report = RoundReport::default();
        if state.parked.is_some() {
            report.parked = true;
            return Ok(report);
        }
        if self.next_try.is_some_and(|t| now < t) {
            return Ok(report);
        }
        // Telegram takes about 20 messages a minute to one chat.
        if matches!(self.config.kind, NotifierKind::Telegram { .. })
            && self
                .last_message
                .is_some_and(|t| now < t.plus(Duration::from_secs(3)))
        {
            return Ok(report);
        }
        let lines = self.store.history_after(state.cursor, READ)?;
        let Some(last) = lines.last().map(|h| h.id) else {
            return Ok(report);
        };
        let wanted = notices(&self.config, &lines, &self.confirming);
        if wanted.is_empty() {
            state.cursor = last;
            self.store.save_notifier(&self.name, &state)?;
            return Ok(report);
        }
        let oldest = wanted.iter().map(|n| n.at).min().unwrap_or(now.as_secs());
        if lines.len() < READ && now < Timestamp::from_secs(oldest).plus(self.config.window) {
            return Ok(report); // still gathering
        }
        match send(&self.client, &self.name, &self.config, &wanted).await {
            Ok(()) => {
                state.cursor = last;
                state.failures = 0;
                state.last_error = None;
                state.last_sent = Some(now);
                state.sent += 1;
                self.next_try = None;
                self.last_message = Some(now);
                self.store.save_notifier(&self.name, &state)?;
                tracing::info!(notifier = %self.name, lines = wanted.len(), "notification sent");
                let what = format!(
                    "sent through {}: {} lines",
                    self.config.kind.name(),
                    wanted.len()
                );
                self.store
                    .log_event(None, Event::Notified, &self.name, &what)?;
                report.delivered = Some(wanted.len());
            }
            Err(e) => {
                state.failures += 1;
                state.last_error = Some(e.message.clone());
                if !e.temporary || state.failures >= MAX_FAILURES {
                    let why = if e.temporary {
                        format!(
                            "{} failures in a row; the last: {}",
                            state.failures, e.message
                        )
                    } else {
                        e.message.clone()
                    };
                    tracing::error!(notifier = %self.name, reason = %why, "notifier parked: fix it, then retry it (the UI, or `pps notify retry`)");
                    self.store.log_event(
                        None,
                        Event::Notified,
                        &self.name,
                        &format!("parked: {why}"),
                    )?;
                    state.parked = Some(why);
                    report.parked = true;
                } else {
                    let backoff = Duration::from_secs(5u64 << state.failures.min(8))
                        .min(Duration::from_secs(900));
                    let wait = e
                        .retry_after
                        .map_or(backoff, |r| r.max(Duration::from_secs(1)));
                    self.next_try = Some(now.plus(wait));
                    tracing::warn!(notifier = %self.name, error = %e.message, wait_s = wait.as_secs(), "notification failed; will retry");
                }
                self.store.save_notifier(&self.name, &state)?;
                report.failed = Some(e.message);
            }
        }
        Ok(report)
    }
}

/// Sends a test message through notifier `name` at once.
pub async fn send_test(app: &App, name: &str) -> Result<()> {
    let config = app.config.notifiers.get(name).ok_or_else(|| {
        Error::new(
            ErrorKind::ConfigInvalid,
            "no notifier of that name is configured",
        )
        .permanent()
        .with("notifier", name)
    })?;
    send_test_with(name, config).await
}

/// [`send_test`] for a notifier's config.
pub async fn send_test_with(name: &str, config: &NotifierConfig) -> Result<()> {
    let client = pps_mediaserver::client(config.timeout)?;
    let detail = match config.language {
        Language::En => "pps: a test message. Notifications reach you here.",
        Language::Zh => "pps：测试消息。通知会发到这里。",
    };
    let n = Notice {
        event: "test",
        at: now().as_secs(),
        target: None,
        watch: None,
        path: String::new(),
        update: "modified",
        title: String::new(),
        detail: Some(detail.to_owned()),
        took_s: None,
    };
    send(&client, name, config, &[n]).await.map_err(|e| {
        let kind = if e.temporary {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Rejected
        };
        let err = Error::new(kind, e.message).with("notifier", name);
        if e.temporary {
            err.temporary()
        } else {
            err.permanent()
        }
    })
}

/// Unparks notifier `name` (or every one): it sends what waited, from where it stopped.
pub fn retry(app: &App, name: Option<&str>) -> Result<u64> {
    let store = app.engine.store();
    let mut n = 0;
    for (k, _) in app
        .config
        .notifiers
        .iter()
        .filter(|(k, _)| name.is_none_or(|x| x == *k))
    {
        if let Some(mut s) = store.notifier(k)?
            && s.parked.is_some()
        {
            s.parked = None;
            s.failures = 0;
            store.save_notifier(k, &s)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The targets of `app` whose scans are confirmed.
pub fn confirming_targets(app: &App) -> BTreeSet<String> {
    app.targets
        .iter()
        .filter(|(n, t)| app.config_confirms(n) && t.confirm_plan().is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

fn now() -> Timestamp {
    Timestamp::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
}

/// Runs notifier `name` for ever (drop the future to stop): a round every few seconds.
pub async fn run(mut notifier: Notifier, observe: impl Fn(&str, &RoundReport)) {
    loop {
        match notifier.round(now()).await {
            Ok(r) => observe(&notifier.name, &r),
            Err(e) => {
                tracing::warn!(notifier = %notifier.name, error = %e, "notifier could not use the store; will retry")
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Whether each source is up, so an outage is written to the history once when it
/// begins and once when it ends, never per pass; and each cd2 source's throttle count,
/// so a throttle is written once per episode.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<BTreeMap<String, SourceHealth>>,
}

#[derive(Debug, Default, Clone)]
struct SourceHealth {
    down: Option<String>,
    throttled: u64,
}

impl Health {
    /// A pass of `scope` on `source` listed something: the source is up.
    pub fn up(
        &self,
        store: &dyn MtimeStore,
        source: &str,
        scope: Option<pps_core::store::ScopeId>,
        root: &str,
    ) {
        let was = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.entry(source.to_owned()).or_default().down.take()
        };
        if was.is_some() {
            tracing::info!(source, "the source answers again");
            if let Err(e) = store.log_event(scope, Event::SourceUp, root, "answers again") {
                tracing::warn!(error = %e, "cannot record that the source is back");
            }
        }
    }

    /// A pass failed as a whole with `err`: an outage begins unless one is on.
    pub fn down(
        &self,
        store: &dyn MtimeStore,
        source: &str,
        scope: Option<pps_core::store::ScopeId>,
        root: &str,
        err: &Error,
    ) {
        if !matches!(
            err.kind(),
            ErrorKind::Outage
                | ErrorKind::Unavailable
                | ErrorKind::Unauthenticated
                | ErrorKind::PermissionDenied
        ) {
            return;
        }
        let first = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let h = s.entry(source.to_owned()).or_default();
            let first = h.down.is_none();
            h.down.get_or_insert_with(|| err.to_string());
            first
        };
        if first {
            tracing::warn!(source, error = %err, "the source is down; notifying once until it answers again");
            if let Err(e) = store.log_event(scope, Event::SourceDown, root, &err.to_string()) {
                tracing::warn!(error = %e, "cannot record that the source is down");
            }
        }
    }

    /// `total` throttled answers of `source` so far: a rise is a throttle episode.
    pub fn throttles(&self, store: &dyn MtimeStore, source: &str, total: u64, detail: &str) {
        let rose = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let h = s.entry(source.to_owned()).or_default();
            let rose = total > h.throttled;
            h.throttled = total;
            rose
        };
        if rose && let Err(e) = store.log_event(None, Event::Throttled, source, detail) {
            tracing::warn!(error = %e, "cannot record a throttle");
        }
    }

    /// Sources down now, with the error that began the outage.
    pub fn down_now(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(k, v)| v.down.clone().map(|d| (k.clone(), d)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_from_paths() {
        assert_eq!(
            title("/115/电影/沙丘2 (2024)/Dune.Part.Two.2024.mkv", false),
            "沙丘2 (2024)"
        );
        assert_eq!(
            title("/115/剧集/三体/Season 1/三体.S01E05.mkv", false),
            "三体 S01E05"
        );
        assert_eq!(
            title("/tv/Severance/S02/severance.s02e05.1080p.mkv", false),
            "Severance S02E05"
        );
        assert_eq!(title("/movies/Loose File.mkv", false), "Loose File");
        assert_eq!(title("/movies/Arrival (2016)", true), "Arrival (2016)");
        assert_eq!(title("D:\\TV\\Show\\S01E02.mkv", false), "Show S01E02");
    }

    #[test]
    fn episodes_merge_into_ranges() {
        let t = |v: &[&str]| merge_titles(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(t(&["三体 S01E05", "三体 S01E06"]), ["三体 S01E05–E06"]);
        assert_eq!(
            t(&["X S01E01", "X S01E03", "Dune (2021)"]),
            ["X S01E01, E03", "Dune (2021)"]
        );
        assert_eq!(t(&["A S01E02", "A S02E01"]), ["A S01E02", "A S02E01"]);
        assert_eq!(t(&["Dune (2021)", "Dune (2021)"]), ["Dune (2021)"]);
    }

    #[test]
    fn raw_notifiers_are_checked_and_name_their_key() {
        use crate::config::notifiers::RawNotifier;
        let raw = |kind: &str| RawNotifier {
            kind: kind.into(),
            ..RawNotifier::default()
        };
        assert_eq!(raw("telegram").build().unwrap_err().0, "bot_token");
        let mut t = raw("telegram");
        t.bot_token = Some("123:abc".into());
        assert_eq!(t.build().unwrap_err().0, "chat_id");
        assert_eq!(raw("slack").build().unwrap_err().0, "kind");
        let mut d = raw("discord");
        d.url = Some("not a url".into());
        let e = d.build().unwrap_err();
        assert_eq!(e.0, "url");
        assert!(
            !e.1.contains("not a url"),
            "the URL is never echoed: {}",
            e.1
        );
        let mut w = raw("webhook");
        w.url = Some("http://hook".into());
        w.events = Some(vec!["scaned".into()]);
        assert_eq!(w.build().unwrap_err().0, "events");
        let mut a = raw("apprise");
        a.url = Some("http://apprise:8000/notify/k".into());
        a.language = Some("fr".into());
        assert_eq!(a.build().unwrap_err().0, "language");
    }
}
