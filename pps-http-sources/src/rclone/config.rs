//! How to reach and pace one rclone remote-control server (`rclone rcd`, or a
//! `rclone mount --rc`).

use crate::http::{Pacing, invalid};
use pps_core::{Result, Secret};
use std::fmt;
use std::time::Duration;

/// Configuration of one rclone source. `Debug` never shows the password.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct RcloneConfig {
    /// The rc server: `http://HOST:5572` by default.
    pub url: String,
    /// The remote to list, as rclone writes it: `"115dav:"`, `"cd2:"`, `"remote:sub"`.
    /// pps's source path `/TV/x` is `TV/x` in it.
    pub remote: String,
    /// `--rc-user`; `None` for a server run with `--rc-no-auth`.
    pub username: Option<String>,
    /// `--rc-pass`.
    pub password: Option<Secret>,
    /// After a listing found a folder changed, ask rclone to `vfs/refresh` it, so a
    /// `rclone mount --rc` of the same remote shows the new files to the media server
    /// without waiting for its directory cache to expire. Each refresh is paced like
    /// a listing.
    pub vfs_refresh: bool,
    /// Rate, burst, retries, timeout.
    pub pacing: Pacing,
}

impl Default for RcloneConfig {
    fn default() -> Self {
        RcloneConfig {
            url: "http://127.0.0.1:5572".to_owned(),
            remote: String::new(),
            username: None,
            password: None,
            vfs_refresh: false,
            pacing: Pacing::default(),
        }
    }
}

impl fmt::Debug for RcloneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcloneConfig")
            .field("url", &self.display_url())
            .field("remote", &self.remote)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("vfs_refresh", &self.vfs_refresh)
            .field("pacing", &self.pacing)
            .finish()
    }
}

impl RcloneConfig {
    /// A configuration for the rc server at `url` listing `remote`.
    pub fn new(url: impl Into<String>, remote: impl Into<String>) -> Self {
        RcloneConfig {
            url: url.into(),
            remote: remote.into(),
            ..RcloneConfig::default()
        }
    }

    /// The same configuration with basic-auth credentials.
    pub fn with_login(mut self, username: impl Into<String>, password: Secret) -> Self {
        self.username = Some(username.into());
        self.password = Some(password);
        self
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        crate::http::check_url(&self.url)?;
        self.pacing.validate()?;
        if !self.remote.contains(':') {
            return Err(invalid(
                "remote",
                format!(
                    "`{}` is not an rclone remote: write it as rclone does, with a colon (\"115dav:\", \"remote:path\")",
                    self.remote
                ),
            ));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(_)) if u.is_empty() => {
                Err(invalid("username", "the user name is empty".to_owned()))
            }
            (Some(_), None) | (None, Some(_)) => Err(invalid(
                "password",
                "`username` and `password` go together (rclone's --rc-user and --rc-pass)"
                    .to_owned(),
            )),
            _ => Ok(()),
        }
    }

    /// The url as it may appear in errors and logs.
    pub fn display_url(&self) -> String {
        pps_core::secret::redact_url(&self.url)
    }
}

#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Toml {
    url: String,
    remote: String,
    username: Option<String>,
    password: Option<Secret>,
    vfs_refresh: bool,
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
            url: "http://127.0.0.1:5572".to_owned(),
            remote: String::new(),
            username: None,
            password: None,
            vfs_refresh: false,
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

/// Reads the keys of a `[sources.NAME]` table of kind `rclone` (all but `kind` and
/// pps's own budget keys). Unknown keys are errors; durations are text (`"60s"`).
impl<'de> serde::Deserialize<'de> for RcloneConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = Toml::deserialize(d)?;
        if t.remote.is_empty() {
            return Err(serde::de::Error::custom(
                "`remote` is required: the rclone remote to list, e.g. \"115dav:\"",
            ));
        }
        Ok(RcloneConfig {
            url: t.url,
            remote: t.remote,
            username: t.username,
            password: t.password,
            vfs_refresh: t.vfs_refresh,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password_and_validation_names_keys() {
        let c = RcloneConfig::new("http://127.0.0.1:5572", "115dav:")
            .with_login("rc", Secret::new("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.validate().is_ok());
        let bad = RcloneConfig::new("http://127.0.0.1:5572", "115dav");
        assert_eq!(
            bad.validate()
                .err()
                .and_then(|e| e.context_value("key").map(String::from)),
            Some("remote".to_owned())
        );
    }
}
