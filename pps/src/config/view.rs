//! The config in force as people may see it: a [`Serialize`] view of a [`Config`] for the
//! web UI's Config page. Every secret is [`Hidden`], URLs lose their credentials, and
//! durations read as the file writes them, so the text can be pasted back into
//! `pps.toml`. Only what this view names is shown: a secret added to the config later
//! stays out until someone decides how to show it here.

use super::{Config, SourceConfig, TargetKind};
use pps_core::secret::redact_url;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A secret's place: it is set, and that is all that is said.
#[derive(Debug, Clone, Copy)]
pub struct Hidden;

impl Serialize for Hidden {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("••••")
    }
}

/// A length of time as the file writes it (`10m`, `24h`, `1500ms`).
#[derive(Debug, Clone, Copy)]
pub struct Span(pub Duration);

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::text::duration_text(self.0))
    }
}

/// One `{ from, to }` rule of a path mapping.
#[derive(Debug, Serialize)]
pub struct Rule<'a> {
    from: &'a str,
    to: &'a str,
}

fn rules(m: &pps_core::mapping::PathMapping) -> Vec<Rule<'_>> {
    m.rules().map(|(from, to)| Rule { from, to }).collect()
}

/// The view of a whole config.
#[derive(Debug, Serialize)]
pub struct ConfigView<'a> {
    store: BTreeMap<&'static str, String>,
    sources: BTreeMap<&'a str, SourceView<'a>>,
    targets: BTreeMap<&'a str, TargetView<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    notifiers: BTreeMap<&'a str, NotifierView<'a>>,
    watch: Vec<WatchView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerView<'a>>,
    history: HistoryView,
    #[serde(skip_serializing_if = "Option::is_none")]
    ui: Option<UiView<'a>>,
}

#[derive(Debug, Serialize)]
struct SourceView<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_token: Option<Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    folder_password: Option<Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vfs_refresh: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_queries_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
    concurrency: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_calls_per_minute: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_calls_per_hour: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_calls_per_day: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttle_pause: Option<Span>,
}

impl<'a> SourceView<'a> {
    fn of(s: &'a SourceConfig) -> Self {
        let mut v = SourceView {
            kind: s.kind(),
            url: None,
            remote: None,
            api_token: None,
            token: None,
            username: None,
            password: None,
            folder_password: None,
            push: None,
            refresh: None,
            vfs_refresh: None,
            max_queries_per_second: s.rate().map(|(q, _)| q),
            burst: s.rate().map(|(_, b)| b),
            concurrency: s.concurrency(),
            max_calls_per_minute: None,
            max_calls_per_hour: None,
            max_calls_per_day: None,
            throttle_pause: None,
        };
        if let Some((minute, hour, day, pause)) = s.ceilings() {
            v.max_calls_per_minute = minute;
            v.max_calls_per_hour = hour;
            v.max_calls_per_day = day;
            v.throttle_pause = Some(Span(pause));
        }
        match s {
            SourceConfig::Local { .. } => {}
            SourceConfig::CloudDrive2 { settings, .. } => {
                v.url = Some(redact_url(&settings.url));
                v.push = Some(settings.push);
                match &settings.auth {
                    pps_clouddrive::Auth::None => {}
                    pps_clouddrive::Auth::ApiToken(_) => v.api_token = Some(Hidden),
                    pps_clouddrive::Auth::Password { username, .. } => {
                        v.username = Some(username);
                        v.password = Some(Hidden);
                    }
                    // A kind of credential this view does not know: nothing of it shown.
                    _ => {}
                }
            }
            SourceConfig::OpenList { settings, .. } => {
                v.url = Some(settings.display_url());
                v.refresh = Some(settings.refresh);
                v.folder_password = settings.folder_password.as_ref().map(|_| Hidden);
                match &settings.auth {
                    pps_http_sources::OpenListAuth::None => {}
                    pps_http_sources::OpenListAuth::Token(_) => v.token = Some(Hidden),
                    pps_http_sources::OpenListAuth::Password { username, .. } => {
                        v.username = Some(username);
                        v.password = Some(Hidden);
                    }
                    _ => {}
                }
            }
            SourceConfig::Rclone { settings, .. } => {
                v.url = Some(settings.display_url());
                v.remote = Some(&settings.remote);
                v.username = settings.username.as_deref();
                v.password = settings.password.as_ref().map(|_| Hidden);
                v.vfs_refresh = Some(settings.vfs_refresh);
            }
        }
        v
    }
}

#[derive(Debug, Serialize)]
struct TargetView<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    program: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_batch: Option<usize>,
    scan_files: bool,
    /// What users come to this page to check: where each source path lands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    path_mapping: Vec<Rule<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirm_deadline: Option<Span>,
}

impl<'a> TargetView<'a> {
    fn of(tc: &'a super::TargetConfig) -> Self {
        let server = !matches!(tc.kind, TargetKind::Command(_) | TargetKind::Stdout);
        let mut v = TargetView {
            kind: "stdout",
            url: None,
            token: None,
            api_key: None,
            program: None,
            args: None,
            env: None,
            timeout: None,
            max_batch: None,
            scan_files: tc.scan_files,
            path_mapping: tc
                .rules
                .iter()
                .map(|r| Rule {
                    from: &r.from,
                    to: &r.to,
                })
                .collect(),
            confirm: server.then_some(tc.confirm),
            confirm_deadline: tc.confirm_deadline.filter(|_| server).map(Span),
        };
        match &tc.kind {
            TargetKind::Plex(p) => {
                v.kind = "plex";
                v.url = Some(redact_url(&p.url));
                v.token = Some(Hidden);
                v.timeout = Some(Span(p.timeout));
            }
            TargetKind::Emby(e) | TargetKind::Jellyfin(e) => {
                v.kind = if matches!(tc.kind, TargetKind::Emby(_)) {
                    "emby"
                } else {
                    "jellyfin"
                };
                v.url = Some(redact_url(&e.url));
                v.api_key = Some(Hidden);
                v.timeout = Some(Span(e.timeout));
                v.max_batch = Some(e.max_batch);
            }
            TargetKind::Command(c) => {
                v.kind = "command";
                v.program = Some(c.program.display().to_string());
                v.args = Some(&c.args);
                v.env = Some(&c.env);
                v.timeout = Some(Span(c.timeout));
                v.max_batch = Some(c.max_batch);
            }
            TargetKind::Stdout => {}
        }
        v
    }
}

/// A notifier: its kind, what it sends and when; every secret it holds (a token, a
/// webhook URL, header values) is left out.
#[derive(Debug, Serialize)]
struct NotifierView<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Hidden>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'a str, Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bot_token: Option<Hidden>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chat_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    events: Vec<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    watches: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    targets: &'a [String],
    language: &'static str,
    window: Span,
}

#[derive(Debug, Serialize)]
struct WatchView<'a> {
    source: &'a str,
    path: &'a str,
    interval: Span,
    max_interval: Span,
    active_max_interval: Span,
    settle: Span,
    exclude: Vec<String>,
    targets: &'a [String],
    enabled: bool,
}

#[derive(Debug, Serialize)]
struct ServerView<'a> {
    listen: String,
    token: Hidden,
    max_body_bytes: usize,
    max_connections: usize,
    public_metrics: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    arr_path_mapping: Vec<Rule<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    clouddrive2_path_mapping: Vec<Rule<'a>>,
}

#[derive(Debug, Serialize)]
struct HistoryView {
    max_age: Span,
    max_rows: u64,
}

#[derive(Debug, Serialize)]
struct UiView<'a> {
    password_hash: Hidden,
    base_path: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trusted_proxies: Vec<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    hosts: &'a [String],
}

impl<'a> ConfigView<'a> {
    /// The view of `c`.
    pub fn of(c: &'a Config) -> Self {
        ConfigView {
            store: BTreeMap::from([("path", c.store.display().to_string())]),
            sources: c
                .sources
                .iter()
                .map(|(n, s)| (n.as_str(), SourceView::of(s)))
                .collect(),
            targets: c
                .targets
                .iter()
                .map(|(n, t)| (n.as_str(), TargetView::of(t)))
                .collect(),
            notifiers: c
                .notifiers
                .iter()
                .map(|(name, n)| {
                    use super::notifiers::NotifierKind as K;
                    let (url, headers, bot_token, chat_id, api_url, tag) = match &n.kind {
                        K::Webhook { headers, .. } => (
                            Some(Hidden),
                            headers.iter().map(|(k, _)| (k.as_str(), Hidden)).collect(),
                            None,
                            None,
                            None,
                            None,
                        ),
                        K::Telegram {
                            chat_id, api_url, ..
                        } => (
                            None,
                            BTreeMap::new(),
                            Some(Hidden),
                            Some(chat_id.as_str()),
                            Some(redact_url(api_url)),
                            None,
                        ),
                        K::Discord { .. } => {
                            (Some(Hidden), BTreeMap::new(), None, None, None, None)
                        }
                        K::Apprise { tag, .. } => (
                            Some(Hidden),
                            BTreeMap::new(),
                            None,
                            None,
                            None,
                            tag.as_deref(),
                        ),
                    };
                    (
                        name.as_str(),
                        NotifierView {
                            kind: n.kind.name(),
                            url,
                            headers,
                            bot_token,
                            chat_id,
                            api_url,
                            tag,
                            events: n.events.iter().map(|e| e.as_str()).collect(),
                            watches: &n.watches,
                            targets: &n.targets,
                            language: match n.language {
                                super::notifiers::Language::En => "en",
                                super::notifiers::Language::Zh => "zh",
                            },
                            window: Span(n.window),
                        },
                    )
                })
                .collect(),
            watch: c
                .watches
                .iter()
                .map(|w| WatchView {
                    source: &w.source,
                    path: &w.path,
                    interval: Span(w.interval),
                    max_interval: Span(w.max_interval),
                    active_max_interval: Span(w.active_max_interval),
                    settle: Span(w.settle),
                    exclude: w.exclude.patterns(),
                    targets: &w.targets,
                    enabled: w.enabled,
                })
                .collect(),
            server: c.server.listen.map(|l| ServerView {
                listen: l.to_string(),
                token: Hidden,
                max_body_bytes: c.server.max_body_bytes,
                max_connections: c.server.max_connections,
                public_metrics: c.server.public_metrics,
                arr_path_mapping: rules(&c.server.arr_mapping),
                clouddrive2_path_mapping: rules(&c.server.clouddrive2_mapping),
            }),
            history: HistoryView {
                max_age: Span(c.history.max_age),
                max_rows: c.history.max_rows,
            },
            ui: c.ui.password_hash.as_ref().map(|_| UiView {
                password_hash: Hidden,
                base_path: &c.ui.base_path,
                trusted_proxies: c
                    .ui
                    .trusted_proxies
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect(),
                hosts: &c.ui.hosts,
            }),
        }
    }

    /// As TOML, for the Config page: path mappings written inline, as in the README
    /// and most files (`path_mapping = [{ from = "/115", to = "/mnt/115" }]`).
    pub fn to_toml(&self) -> String {
        let text = match toml::to_string(self) {
            Ok(t) => t,
            Err(e) => return format!("# the config could not be shown: {e}\n"),
        };
        match text.parse::<toml_edit::DocumentMut>() {
            Ok(mut doc) => {
                inline_mappings(doc.as_table_mut());
                doc.to_string()
            }
            Err(_) => text,
        }
    }
}

/// Every `*path_mapping` array of tables under `t` as an inline array.
fn inline_mappings(t: &mut toml_edit::Table) {
    for (mut key, item) in t.iter_mut() {
        if key.get().ends_with("path_mapping")
            && let toml_edit::Item::ArrayOfTables(rules) = item
        {
            let mut inline = std::mem::take(rules).into_array();
            inline.fmt();
            *item = toml_edit::value(inline);
            // The key was a header's (`[[x]]`); as a key of a value it gets its spaces.
            key.leaf_decor_mut().clear();
        } else if let toml_edit::Item::Table(sub) = item {
            inline_mappings(sub);
        }
    }
}
