//! The `[notifiers.NAME]` tables: what each notifier is, as written and as checked.
//! The notifiers themselves are [`crate::notify`].

use pps_core::Secret;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What a notifier can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// What reached each media server.
    Scanned,
    /// A scan parked: it needs the user.
    Parked,
    /// A scan the server did not index by the deadline.
    Stuck,
    /// A source became unreachable.
    SourceDown,
    /// A source answers again.
    SourceUp,
    /// The cloud pushed back; pps lowered its rate.
    Throttled,
    /// A test message.
    Test,
}

impl NotifyEvent {
    /// Every event.
    pub const ALL: [NotifyEvent; 7] = [
        NotifyEvent::Scanned,
        NotifyEvent::Parked,
        NotifyEvent::Stuck,
        NotifyEvent::SourceDown,
        NotifyEvent::SourceUp,
        NotifyEvent::Throttled,
        NotifyEvent::Test,
    ];

    /// Its name in `pps.toml` and the JSON document.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Scanned => "scanned",
            NotifyEvent::Parked => "parked",
            NotifyEvent::Stuck => "stuck",
            NotifyEvent::SourceDown => "source_down",
            NotifyEvent::SourceUp => "source_up",
            NotifyEvent::Throttled => "throttled",
            NotifyEvent::Test => "test",
        }
    }

    /// The event named `name`.
    pub fn parse(name: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// True for the events that ask the user to act.
    pub(crate) fn needs_you(self) -> bool {
        matches!(
            self,
            NotifyEvent::Parked | NotifyEvent::Stuck | NotifyEvent::SourceDown
        )
    }
}

/// The language of a notifier's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English.
    En,
    /// Chinese.
    Zh,
}

/// Where a notifier sends, with its own settings.
#[derive(Debug, Clone)]
pub enum NotifierKind {
    /// POST the JSON document to `url`, with `headers` (e.g. an `Authorization`).
    Webhook {
        /// The URL (a secret: webhook URLs often carry a token).
        url: Secret,
        /// Headers sent with every request; values are secrets.
        headers: Vec<(String, Secret)>,
    },
    /// Telegram's Bot API `sendMessage`.
    Telegram {
        /// The bot's token (it goes into the URL path, as the Bot API wants; that URL is
        /// never logged or shown).
        bot_token: Secret,
        /// The chat to send to.
        chat_id: String,
        /// The Bot API server: `https://api.telegram.org`, a proxy, or a self-hosted one.
        api_url: String,
    },
    /// A Discord webhook.
    Discord {
        /// The webhook URL (it holds the webhook's token).
        url: Secret,
    },
    /// An Apprise API server's notify endpoint (`http://apprise:8000/notify/KEY`), which
    /// fans out to WeCom, Bark, ServerChan, PushPlus, ntfy, Gotify, email and more.
    Apprise {
        /// The notify endpoint (its key is a secret).
        url: Secret,
        /// Apprise tags to notify, when set.
        tag: Option<String>,
    },
}

impl NotifierKind {
    /// `webhook`, `telegram`, `discord` or `apprise`.
    pub fn name(&self) -> &'static str {
        match self {
            NotifierKind::Webhook { .. } => "webhook",
            NotifierKind::Telegram { .. } => "telegram",
            NotifierKind::Discord { .. } => "discord",
            NotifierKind::Apprise { .. } => "apprise",
        }
    }
}

/// One `[notifiers.NAME]`.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Where it sends.
    pub kind: NotifierKind,
    /// What it is told (`events`; default: all but `test`, which is always sent when
    /// asked for).
    pub events: BTreeSet<NotifyEvent>,
    /// Only lines of these watches (`source:path` labels); empty: all.
    pub watches: Vec<String>,
    /// Only lines of these targets (lines without a target always pass); empty: all.
    pub targets: Vec<String>,
    /// The messages' language (`language = "zh"`).
    pub language: Language,
    /// Lines are gathered this long before a message goes (`window`, default 30 s).
    pub window: Duration,
    /// The longest one request may take (`timeout`, default 15 s).
    pub timeout: Duration,
}

/// The keys of a `[notifiers.NAME]` table, as written.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawNotifier {
    pub(crate) kind: String,
    pub(crate) url: Option<String>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) bot_token: Option<String>,
    pub(crate) chat_id: Option<toml::Value>,
    pub(crate) api_url: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) events: Option<Vec<String>>,
    pub(crate) watches: Vec<String>,
    pub(crate) targets: Vec<String>,
    pub(crate) language: Option<String>,
    pub(crate) window: Option<String>,
    pub(crate) timeout: Option<String>,
}

impl RawNotifier {
    /// Checks and converts; an error names the key (without the table prefix).
    pub(crate) fn build(self) -> std::result::Result<NotifierConfig, (&'static str, String)> {
        let need = |v: Option<String>,
                    key: &'static str|
         -> std::result::Result<String, (&'static str, String)> {
            match v {
                Some(s) if !s.trim().is_empty() => Ok(s),
                _ => Err((
                    key,
                    format!("`{key}` is required for a {} notifier", self.kind),
                )),
            }
        };
        let http_url =
            |u: &str, key: &'static str| -> std::result::Result<(), (&'static str, String)> {
                match url::Url::parse(u) {
                    Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => Ok(()),
                    Ok(_) => Err((key, "must be an http:// or https:// URL".to_owned())),
                    // Never echo the URL: it may hold a token.
                    Err(e) => Err((key, format!("is not a URL ({e})"))),
                }
            };
        let kind_name = self.kind.clone();
        let forbid =
            |set: bool, key: &'static str| -> std::result::Result<(), (&'static str, String)> {
                if set {
                    Err((
                        key,
                        format!("`{key}` does not apply to a {kind_name} notifier"),
                    ))
                } else {
                    Ok(())
                }
            };
        let kind = match self.kind.as_str() {
            "webhook" => {
                let url = need(self.url.clone(), "url")?;
                http_url(&url, "url")?;
                forbid(self.bot_token.is_some(), "bot_token")?;
                forbid(self.chat_id.is_some(), "chat_id")?;
                forbid(self.tag.is_some(), "tag")?;
                let mut headers = Vec::new();
                for (k, v) in &self.headers {
                    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                        || reqwest::header::HeaderValue::from_str(v).is_err()
                    {
                        return Err(("headers", format!("`{k}` is not a valid HTTP header")));
                    }
                    headers.push((k.clone(), Secret::new(v.clone())));
                }
                NotifierKind::Webhook {
                    url: Secret::new(url),
                    headers,
                }
            }
            "telegram" => {
                let bot_token = need(self.bot_token.clone(), "bot_token")?;
                if !bot_token.contains(':') || bot_token.contains('/') {
                    return Err((
                        "bot_token",
                        "does not look like a bot token (`123456:ABC…` from @BotFather)".to_owned(),
                    ));
                }
                let chat_id = match &self.chat_id {
                    Some(toml::Value::Integer(i)) => i.to_string(),
                    Some(toml::Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    _ => return Err(("chat_id", "`chat_id` is required for a telegram notifier: a number such as -1001234567890, or \"@channel\"".to_owned())),
                };
                let api_url = self
                    .api_url
                    .clone()
                    .unwrap_or_else(|| "https://api.telegram.org".to_owned());
                http_url(&api_url, "api_url")?;
                forbid(self.url.is_some(), "url")?;
                forbid(!self.headers.is_empty(), "headers")?;
                forbid(self.tag.is_some(), "tag")?;
                NotifierKind::Telegram {
                    bot_token: Secret::new(bot_token),
                    chat_id,
                    api_url: api_url.trim_end_matches('/').to_owned(),
                }
            }
            "discord" => {
                let url = need(self.url.clone(), "url")?;
                http_url(&url, "url")?;
                forbid(self.bot_token.is_some(), "bot_token")?;
                forbid(self.chat_id.is_some(), "chat_id")?;
                forbid(!self.headers.is_empty(), "headers")?;
                forbid(self.tag.is_some(), "tag")?;
                NotifierKind::Discord {
                    url: Secret::new(url),
                }
            }
            "apprise" => {
                let url = need(self.url.clone(), "url")?;
                http_url(&url, "url")?;
                forbid(self.bot_token.is_some(), "bot_token")?;
                forbid(self.chat_id.is_some(), "chat_id")?;
                forbid(!self.headers.is_empty(), "headers")?;
                NotifierKind::Apprise {
                    url: Secret::new(url),
                    tag: self.tag.clone(),
                }
            }
            "" => {
                return Err((
                    "kind",
                    "`kind` is required: webhook, telegram, discord or apprise".to_owned(),
                ));
            }
            other => {
                return Err((
                    "kind",
                    format!(
                        "unknown notifier kind `{other}`; use webhook, telegram, discord or apprise"
                    ),
                ));
            }
        };
        let events = match &self.events {
            None => NotifyEvent::ALL
                .into_iter()
                .filter(|e| *e != NotifyEvent::Test)
                .collect(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for e in list {
                    set.insert(NotifyEvent::parse(e).ok_or_else(|| {
                        (
                            "events",
                            format!(
                                "unknown event `{e}`; use {}",
                                NotifyEvent::ALL.map(NotifyEvent::as_str).join(", ")
                            ),
                        )
                    })?);
                }
                set
            }
        };
        let language = match self.language.as_deref() {
            None | Some("en") => Language::En,
            Some("zh") => Language::Zh,
            Some(other) => {
                return Err((
                    "language",
                    format!("`{other}` is not a language pps writes; use \"en\" or \"zh\""),
                ));
            }
        };
        let duration = |v: &Option<String>, key: &'static str, default: Duration| match v {
            None => Ok(default),
            Some(t) => pps_core::duration::parse(t).map_err(|e| (key, e)),
        };
        let timeout = duration(&self.timeout, "timeout", Duration::from_secs(15))?;
        if timeout.is_zero() {
            return Err(("timeout", "must be above zero".to_owned()));
        }
        Ok(NotifierConfig {
            kind,
            events,
            watches: self.watches,
            targets: self.targets,
            language,
            window: duration(&self.window, "window", Duration::from_secs(30))?,
            timeout,
        })
    }
}
