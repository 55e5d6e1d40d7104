//! The OpenList HTTP client: the innermost source, one call per operation, with
//! authentication. It neither paces nor retries; the one thing it repeats is a call
//! refused for its token while logged in with a password (a JWT ends after 48 h by
//! default, or when the admin changes the password): it logs in once more and repeats.

use super::config::{OpenListAuth, OpenListConfig};
use super::core::{ListData, Object, entry_of, envelope};
use crate::http::{Counters, Credential, Http};
use pps_core::{Entry, Error, ErrorKind, ListOptions, Result, Secret, path};
use serde_json::json;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Renew a login token after this long: half of OpenList's default 48 h lifetime,
/// since the reply does not say how long the token lasts.
const RENEW_AFTER: Duration = Duration::from_secs(24 * 3600);

struct CachedToken {
    value: Secret,
    renew_at: Instant,
}

pub(crate) struct Inner {
    pub(crate) http: Http,
    pub(crate) config: OpenListConfig,
    pub(crate) counters: Arc<Counters>,
    /// Held across a login so that concurrent calls log in once.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

/// OpenList as a bare [`DirectorySource`](pps_core::DirectorySource): no rate limit, no
/// retries. [`OpenList`](crate::OpenList) wraps it in both.
#[derive(Clone)]
pub struct OpenListClient {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for OpenListClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenListClient")
            .field("source", &self.inner.http.shown)
            .finish_non_exhaustive()
    }
}

impl OpenListClient {
    /// A client for `config`; no call is made yet.
    ///
    /// # Errors
    /// `ConfigInvalid` for a bad configuration.
    pub fn new(config: OpenListConfig) -> Result<Self> {
        Self::with_counters(config, Arc::new(Counters::default()))
    }

    pub(crate) fn with_counters(config: OpenListConfig, counters: Arc<Counters>) -> Result<Self> {
        config.validate()?;
        let http = Http::new(&config.url, "OpenList", config.pacing.timeout)?;
        Ok(OpenListClient {
            inner: Arc::new(Inner {
                http,
                config,
                counters,
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.inner.http.shown
    }
}

impl Inner {
    /// The token to send, logging in first when there is none or it is a day old.
    async fn token(&self) -> Result<Option<Secret>> {
        match &self.config.auth {
            OpenListAuth::None => Ok(None),
            OpenListAuth::Token(t) => Ok(Some(t.clone())),
            OpenListAuth::Password { username, password } => {
                let mut cached = self.token.lock().await;
                if let Some(t) = cached.as_ref()
                    && Instant::now() < t.renew_at
                {
                    return Ok(Some(t.value.clone()));
                }
                let value = self.login(username, password).await?;
                *cached = Some(CachedToken {
                    value: value.clone(),
                    renew_at: Instant::now() + RENEW_AFTER,
                });
                Ok(Some(value))
            }
        }
    }

    async fn forget_token(&self, used: Option<&Secret>) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| Some(&t.value) == used) {
            *cached = None;
        }
    }

    async fn login(&self, username: &str, password: &Secret) -> Result<Secret> {
        Counters::bump(&self.counters.logins);
        let body = json!({"username": username, "password": password.expose()});
        let reply = self
            .http
            .post("/api/auth/login", &body, Credential::None, "login", "/")
            .await?;
        let data = envelope(&self.http, &reply, "/api/auth/login", "login", "/").map_err(|e| {
            if matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::Unavailable | ErrorKind::Throttled) {
                return e;
            }
            // OpenList answers a wrong password with code 400 (or 401/403).
            Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "OpenList refused the login of user {username:?} ({}); check the user name and password",
                    e.message()
                ),
            )
            .permanent()
            .with("operation", "login")
            .with("source", self.http.shown.clone())
        })?;
        match data.get("token").and_then(|t| t.as_str()) {
            Some(t) if !t.is_empty() => {
                tracing::debug!(source = %self.http.shown, "logged in to OpenList");
                Ok(Secret::new(t))
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                "OpenList's login reply holds no token: not an OpenList (or AList v3) server?",
            )
            .permanent()
            .with("operation", "login")
            .with("source", self.http.shown.clone())),
        }
    }

    /// One authenticated call: the envelope's `data`, or its error. A refused token with
    /// a password login logs in once more and repeats the call.
    pub(crate) async fn call(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
        operation: &str,
        path: &str,
    ) -> Result<serde_json::Value> {
        let mut logged_in_again = false;
        loop {
            let token = self.token().await?;
            let credential = match &token {
                Some(t) => Credential::Raw(t.expose()),
                None => Credential::None,
            };
            let reply = self
                .http
                .post(endpoint, body, credential, operation, path)
                .await
                .inspect_err(|_| Counters::bump(&self.counters.transient))?;
            let err = match envelope(&self.http, &reply, endpoint, operation, path) {
                Ok(data) => return Ok(data),
                Err(e) => e,
            };
            let password = matches!(self.config.auth, OpenListAuth::Password { .. });
            match err.kind() {
                ErrorKind::Unauthenticated if password && !logged_in_again => {
                    tracing::info!(source = %self.http.shown, "OpenList refused the token; logging in again");
                    self.forget_token(token.as_ref()).await;
                    logged_in_again = true;
                    continue;
                }
                ErrorKind::Unauthenticated => {
                    let what = match self.config.auth {
                        OpenListAuth::None => {
                            "OpenList wants a token: set `token`, or `username` and `password`"
                        }
                        OpenListAuth::Token(_) => {
                            "OpenList refused the token: check it (OpenList's settings, \"Other\", token) or log in with `username` and `password`"
                        }
                        OpenListAuth::Password { .. } => {
                            "OpenList refused the token it just issued"
                        }
                    };
                    return Err(Error::new(
                        ErrorKind::Unauthenticated,
                        format!("{what} ({})", err.message()),
                    )
                    .permanent()
                    .with("operation", operation.to_owned())
                    .with("path", path.to_owned())
                    .with("source", self.http.shown.clone()));
                }
                ErrorKind::Throttled => Counters::bump(&self.counters.throttled),
                ErrorKind::Unavailable => Counters::bump(&self.counters.transient),
                _ => {}
            }
            return Err(err);
        }
    }

    fn folder_password(&self) -> &str {
        self.config
            .folder_password
            .as_ref()
            .map_or("", |p| p.expose())
    }
}

impl OpenListClient {
    /// `POST /api/fs/list`: every entry in one call (`per_page` 0: OpenList fetches
    /// the whole folder anyway, so paging would only cost more calls).
    pub(crate) async fn list_folder(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        let inner = &*self.inner;
        let refresh = options.force_refresh && inner.config.refresh;
        let body = json!({
            "path": path,
            "password": inner.folder_password(),
            "page": 1,
            "per_page": 0,
            "refresh": refresh,
        });
        Counters::bump(&inner.counters.listings);
        let data = inner.call("/api/fs/list", &body, "list", path).await?;
        let data: ListData = serde_json::from_value(data).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("OpenList's listing reply has an unexpected shape: {e}"),
            )
            .permanent()
            .with("operation", "list")
            .with("path", path.to_owned())
            .with("source", inner.http.shown.clone())
        })?;
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        for object in data.content.unwrap_or_default() {
            match entry_of(&object) {
                Some(e) if seen.insert(e.name.clone()) => entries.push(e),
                Some(_) => {}
                None => tracing::warn!(folder = path, "skipped an entry without a usable name"),
            }
        }
        Ok(entries)
    }

    /// `POST /api/fs/get`.
    pub(crate) async fn lookup(&self, path: &str) -> Result<Entry> {
        if path == "/" {
            return Ok(Entry::dir("/", None));
        }
        let inner = &*self.inner;
        let body = json!({"path": path, "password": inner.folder_password()});
        Counters::bump(&inner.counters.lookups);
        let data = inner.call("/api/fs/get", &body, "stat", path).await?;
        let not_found = || {
            Error::new(ErrorKind::NotFound, "OpenList has no such path")
                .with("operation", "stat")
                .with("path", path.to_owned())
                .with("source", inner.http.shown.clone())
        };
        let object: Object = serde_json::from_value(data).map_err(|_| not_found())?;
        let mut entry = entry_of(&object).ok_or_else(not_found)?;
        entry.name = path::file_name(path).to_owned();
        Ok(entry)
    }
}
