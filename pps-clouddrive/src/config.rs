//! How to reach and pace one cd2 server.

use pps_core::{Error, ErrorKind, Result, Secret};
use std::fmt;
use std::time::Duration;

/// How pps proves who it is to cd2.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials: only for a server that asks for none (a mock without a token).
    #[default]
    None,
    /// An API token made in cd2's web UI (the vendor's recommendation for programs).
    /// Listing needs its `allow_list` permission, push events `allow_push_message`.
    ApiToken(Secret),
    /// A cd2 account: pps logs in with `GetToken` and renews the token before it expires.
    Password {
        /// The account's user name (not a secret, but never needed in a log either).
        username: String,
        /// The account's password.
        password: Secret,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that no future field can leak: only the variant shows.
        match self {
            Auth::None => f.write_str("None"),
            Auth::ApiToken(_) => f.write_str("ApiToken(***)"),
            Auth::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"***")
                .finish(),
        }
    }
}

/// Configuration of one CloudDrive2 source.
///
/// The defaults suit a 115 drive: about one listing a second, a burst of two, a few
/// retries. `Debug` never shows the token or password.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct CloudDriveConfig {
    /// `http://HOST:19798` (cd2's default, cleartext HTTP/2) or `https://…`.
    pub url: String,
    /// Credentials.
    pub auth: Auth,
    /// The source's own call budget, in listings and lookups per second; fractional
    /// values are fine (`0.9`, what 115 users are told to set in cd2).
    pub max_queries_per_second: f64,
    /// How many calls may go out at once after a quiet spell (at least 1).
    pub burst: u32,
    /// How many times a throttled or transient failure is retried before it is
    /// reported.
    pub retries: u32,
    /// The longest one call (a whole listing, every reply of it) may take.
    pub timeout: Duration,
    /// Whether [`hints`](pps_core::DirectorySource::hints) opens cd2's push channel.
    pub push: bool,
    /// First wait after a transient failure; doubles with each retry.
    pub backoff: Duration,
    /// First wait after a throttled answer; doubles with each retry.
    pub throttle_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long the source keeps its lowered rate after a throttled answer before it
    /// steps back up (one halving per quiet period).
    pub throttle_cooldown: Duration,
}

impl Default for CloudDriveConfig {
    fn default() -> Self {
        CloudDriveConfig {
            url: "http://127.0.0.1:19798".to_owned(),
            auth: Auth::None,
            max_queries_per_second: 0.9,
            burst: 2,
            retries: 4,
            timeout: Duration::from_secs(60),
            push: true,
            backoff: Duration::from_millis(500),
            throttle_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(120),
            throttle_cooldown: Duration::from_secs(120),
        }
    }
}

impl CloudDriveConfig {
    /// A configuration for `url` with the default pacing and no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        CloudDriveConfig {
            url: url.into(),
            ..CloudDriveConfig::default()
        }
    }

    /// The same configuration with other credentials.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key: &'static str, msg: &str| {
            Err(Error::new(ErrorKind::ConfigInvalid, msg.to_owned()).with("key", key))
        };
        let scheme_ok = self.url.starts_with("http://") || self.url.starts_with("https://");
        if !scheme_ok {
            return invalid("url", "the cd2 url must start with http:// or https://");
        }
        let qps = self.max_queries_per_second;
        if !(qps.is_finite() && qps > 0.0 && qps <= 1000.0) {
            return invalid(
                "max_queries_per_second",
                &format!("must be above 0 and at most 1000, not {qps}"),
            );
        }
        if self.burst == 0 {
            return invalid("burst", "burst must be at least 1");
        }
        if self.timeout.is_zero() {
            return invalid("timeout", "timeout must be longer than zero");
        }
        match &self.auth {
            Auth::ApiToken(token) if token.is_empty() => {
                invalid("api_token", "the api token is empty")
            }
            Auth::Password { username, .. } if username.is_empty() => {
                invalid("username", "the user name is empty")
            }
            _ => Ok(()),
        }
    }

    /// The url as it may appear in errors and logs: user info and query removed.
    pub fn display_url(&self) -> String {
        pps_core::secret::redact_url(&self.url)
    }
}

/// The keys of a `[sources.NAME]` table of kind `clouddrive2`, as written: the
/// credentials are three flat keys there, one [`Auth`] here. Every key may be left out;
/// [`CloudDriveConfig::default`] holds every default.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Toml {
    url: String,
    api_token: Option<Secret>,
    username: Option<String>,
    password: Option<Secret>,
    max_queries_per_second: f64,
    burst: u32,
    retries: u32,
    #[serde(deserialize_with = "pps_core::duration::serde")]
    timeout: Duration,
    push: bool,
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
        let d = CloudDriveConfig::default();
        Toml {
            url: String::new(),
            api_token: None,
            username: None,
            password: None,
            max_queries_per_second: d.max_queries_per_second,
            burst: d.burst,
            retries: d.retries,
            timeout: d.timeout,
            push: d.push,
            backoff: d.backoff,
            throttle_backoff: d.throttle_backoff,
            max_backoff: d.max_backoff,
            throttle_cooldown: d.throttle_cooldown,
        }
    }
}

impl TryFrom<Toml> for CloudDriveConfig {
    type Error = String;

    fn try_from(t: Toml) -> std::result::Result<Self, String> {
        let auth = match (t.api_token, t.username, t.password) {
            (Some(_), Some(_), _) => {
                return Err("give either `api_token` or `username`/`password`, not both".to_owned());
            }
            (Some(token), None, _) => Auth::ApiToken(token),
            (None, Some(username), Some(password)) => Auth::Password { username, password },
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(
                    "`password` and `username` go together: give both, or an `api_token`"
                        .to_owned(),
                );
            }
            (None, None, None) => Auth::None,
        };
        if t.url.trim().is_empty() {
            return Err("`url` is required, e.g. http://127.0.0.1:19798".to_owned());
        }
        Ok(CloudDriveConfig {
            url: t.url,
            auth,
            max_queries_per_second: t.max_queries_per_second,
            burst: t.burst,
            retries: t.retries,
            timeout: t.timeout,
            push: t.push,
            backoff: t.backoff,
            throttle_backoff: t.throttle_backoff,
            max_backoff: t.max_backoff,
            throttle_cooldown: t.throttle_cooldown,
        })
    }
}

/// Reads the keys of a `[sources.NAME]` table (all but `kind` and pps's own
/// `concurrency` and `max_calls_per_day`), with the defaults of
/// [`CloudDriveConfig::default`]. Unknown keys are errors; durations are text (`"60s"`).
impl<'de> serde::Deserialize<'de> for CloudDriveConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = Toml::deserialize(d)?;
        CloudDriveConfig::try_from(t).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for CloudDriveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudDriveConfig")
            .field("url", &self.display_url())
            .field("auth", &self.auth)
            .field("max_queries_per_second", &self.max_queries_per_second)
            .field("burst", &self.burst)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .field("push", &self.push)
            .field("backoff", &self.backoff)
            .field("throttle_backoff", &self.throttle_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("throttle_cooldown", &self.throttle_cooldown)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_urls_hide_secrets() {
        let config = CloudDriveConfig::new("http://bob:hunter2@cd2.lan:19798/x?token=abc#f")
            .with_auth(Auth::Password {
                username: "bob".into(),
                password: Secret::new("hunter2"),
            });
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("abc"),
            "{shown}"
        );
        assert_eq!(config.display_url(), "http://cd2.lan:19798/x");
        let token = Auth::ApiToken(Secret::new("tok-123"));
        assert_eq!(format!("{token:?}"), "ApiToken(***)");
    }

    #[test]
    fn validation_names_the_key() {
        let mut config = CloudDriveConfig::new("ftp://x");
        let err = config
            .validate()
            .err()
            .map(|e| e.context_value("key").map(String::from));
        assert_eq!(err, Some(Some("url".to_owned())));
        config.url = "http://x".into();
        config.max_queries_per_second = 0.0;
        assert!(config.validate().is_err());
        config.max_queries_per_second = 0.9;
        assert!(config.validate().is_ok());
    }
}
