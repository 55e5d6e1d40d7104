//! How to reach and pace one OpenList (or AList v3) server.

use crate::http::{Pacing, invalid};
use pps_core::{Result, Secret};
use std::fmt;
use std::time::Duration;

/// How pps proves who it is to OpenList.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenListAuth {
    /// No credentials: OpenList's guest user (when the admin enabled it).
    #[default]
    None,
    /// A token sent as is in `Authorization` (the admin's settings token, or a JWT).
    Token(Secret),
    /// An OpenList user: pps logs in with `/api/auth/login` and logs in again when
    /// the token is refused or a day old (tokens last 48 h by default).
    Password {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
}

impl fmt::Debug for OpenListAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenListAuth::None => f.write_str("None"),
            OpenListAuth::Token(_) => f.write_str("Token(***)"),
            OpenListAuth::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"***")
                .finish(),
        }
    }
}

/// Configuration of one OpenList source. `Debug` never shows a token or password.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct OpenListConfig {
    /// `http://HOST:5244` (OpenList's default port) or `https://…`, with any path
    /// prefix a reverse proxy adds.
    pub url: String,
    /// Credentials.
    pub auth: OpenListAuth,
    /// The password of password-protected folders (OpenList's "meta" password).
    pub folder_password: Option<Secret>,
    /// Whether a listing pps has reason to refresh (a user's scan) is sent with
    /// `refresh: true`, which bypasses OpenList's cache and needs write permission.
    pub refresh: bool,
    /// Rate, burst, retries, timeout.
    pub pacing: Pacing,
}

impl Default for OpenListConfig {
    fn default() -> Self {
        OpenListConfig {
            url: "http://127.0.0.1:5244".to_owned(),
            auth: OpenListAuth::None,
            folder_password: None,
            refresh: true,
            pacing: Pacing::default(),
        }
    }
}

impl fmt::Debug for OpenListConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenListConfig")
            .field("url", &self.display_url())
            .field("auth", &self.auth)
            .field(
                "folder_password",
                &self.folder_password.as_ref().map(|_| "***"),
            )
            .field("refresh", &self.refresh)
            .field("pacing", &self.pacing)
            .finish()
    }
}

impl OpenListConfig {
    /// A configuration for `url` with the default pacing and no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        OpenListConfig {
            url: url.into(),
            ..OpenListConfig::default()
        }
    }

    /// The same configuration with other credentials.
    pub fn with_auth(mut self, auth: OpenListAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        crate::http::check_url(&self.url)?;
        self.pacing.validate()?;
        match &self.auth {
            OpenListAuth::Token(t) if t.is_empty() => {
                Err(invalid("token", "the token is empty".to_owned()))
            }
            OpenListAuth::Password { username, .. } if username.is_empty() => {
                Err(invalid("username", "the user name is empty".to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// The url as it may appear in errors and logs.
    pub fn display_url(&self) -> String {
        pps_core::secret::redact_url(&self.url)
    }
}

/// The keys of a `[sources.NAME]` table of kind `openlist`.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Toml {
    url: String,
    token: Option<Secret>,
    username: Option<String>,
    password: Option<Secret>,
    folder_password: Option<Secret>,
    refresh: bool,
    max_queries_per_second: f64,
    burst: u32,
    retries: u32,
    #[serde(deserialize_with = "pps_core::duration::serde")]
    timeout: Duration,
    #[serde(deserialize_with = "pps_core::duration::serde")]
    backoff: Duration,
    #[serde(deserialize_with = "pps_core::duration::serde")]
    throttle_backoff: Duration,
    #[serde(deserialize_with = "pps_core::duration::serde")]
    max_backoff: Duration,
    #[serde(deserialize_with = "pps_core::duration::serde")]
    throttle_cooldown: Duration,
}

impl Default for Toml {
    fn default() -> Self {
        let p = Pacing::default();
        Toml {
            url: String::new(),
            token: None,
            username: None,
            password: None,
            folder_password: None,
            refresh: true,
            max_queries_per_second: p.max_queries_per_second,
            burst: p.burst,
            retries: p.retries,
            timeout: p.timeout,
            backoff: p.backoff,
            throttle_backoff: p.throttle_backoff,
            max_backoff: p.max_backoff,
            throttle_cooldown: p.throttle_cooldown,
        }
    }
}

impl TryFrom<Toml> for OpenListConfig {
    type Error = String;

    fn try_from(t: Toml) -> std::result::Result<Self, String> {
        let auth = match (t.token, t.username, t.password) {
            (Some(_), Some(_), _) => {
                return Err("give either `token` or `username`/`password`, not both".to_owned());
            }
            (Some(token), None, None) => OpenListAuth::Token(token),
            (None, Some(username), Some(password)) => OpenListAuth::Password { username, password },
            (Some(_), None, Some(_)) | (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(
                    "`password` and `username` go together: give both, or a `token`".to_owned(),
                );
            }
            (None, None, None) => OpenListAuth::None,
        };
        if t.url.trim().is_empty() {
            return Err("`url` is required, e.g. http://127.0.0.1:5244".to_owned());
        }
        Ok(OpenListConfig {
            url: t.url,
            auth,
            folder_password: t.folder_password,
            refresh: t.refresh,
            pacing: Pacing {
                max_queries_per_second: t.max_queries_per_second,
                burst: t.burst,
                retries: t.retries,
                timeout: t.timeout,
                backoff: t.backoff,
                throttle_backoff: t.throttle_backoff,
                max_backoff: t.max_backoff,
                throttle_cooldown: t.throttle_cooldown,
            },
        })
    }
}

/// Reads the keys of a `[sources.NAME]` table of kind `openlist` (all but `kind` and
/// pps's own budget keys). Unknown keys are errors; durations are text (`"60s"`).
impl<'de> serde::Deserialize<'de> for OpenListConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = Toml::deserialize(d)?;
        OpenListConfig::try_from(t).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let mut config =
            OpenListConfig::new("http://ol.lan:5244").with_auth(OpenListAuth::Password {
                username: "bob".into(),
                password: Secret::new("hunter2"),
            });
        config.folder_password = Some(Secret::new("meta-pass"));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("meta-pass"),
            "{shown}"
        );
        assert!(shown.contains("bob"));
    }

    #[test]
    fn validation_names_the_key() {
        let config = OpenListConfig::new("ftp://x");
        assert_eq!(
            config
                .validate()
                .err()
                .and_then(|e| e.context_value("key").map(String::from)),
            Some("url".to_owned())
        );
        let config =
            OpenListConfig::new("http://x:5244").with_auth(OpenListAuth::Token(Secret::default()));
        assert_eq!(
            config
                .validate()
                .err()
                .and_then(|e| e.context_value("key").map(String::from)),
            Some("token".to_owned())
        );
    }
}
