//! The gRPC client: the innermost source, one call per method, with authentication.
//!
//! It neither paces nor retries (the layers do that), with one exception that only it
//! can do: a call answered `UNAUTHENTICATED` while logged in with a password logs in
//! once more and repeats the call, because a cd2 token can end early (a restart, a
//! `FORCE_EXIT`) and that is not the caller's failure.

use crate::config::{Auth, CloudDriveConfig};
use crate::core::{Counters, Phase, entry_of, is_empty_file, parse_error};
use crate::proto;
use crate::proto::cloud_drive_file_srv_client::CloudDriveFileSrvClient;
use pps_core::{Entry, Error, ErrorKind, ListOptions, Result, Secret, path};
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// cd2's health report (`GetSystemInfo`, which needs no token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SystemInfo {
    /// Whether cd2 itself is logged in to its account.
    pub is_login: bool,
    /// The account name (masked by newer cd2 versions).
    pub user_name: String,
    /// Whether cd2 has finished starting.
    pub system_ready: bool,
    /// A message cd2 shows about its state, if any.
    pub system_message: Option<String>,
    /// Whether cd2 reports an error state.
    pub has_error: bool,
}

/// A token from `GetToken` and when to get a new one.
struct CachedToken {
    value: Secret,
    /// `None` when cd2 gave no expiration: use it until it is refused.
    renew_at: Option<Instant>,
}

pub(crate) struct ClientInner {
    pub(crate) grpc: CloudDriveFileSrvClient<Channel>,
    pub(crate) config: CloudDriveConfig,
    /// The url without credentials, for errors and logs.
    pub(crate) source: String,
    pub(crate) counters: Arc<Counters>,
    /// Held across a login so that concurrent calls log in once.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

/// The CloudDrive2 gRPC client as a bare [`DirectorySource`](pps_core::DirectorySource): no rate limit, no retries.
/// [`CloudDrive`](crate::CloudDrive) wraps it in both; use this type directly only to
/// build a different stack.
#[derive(Clone)]
pub struct CloudDriveClient {
    pub(crate) inner: Arc<ClientInner>,
}

impl fmt::Debug for CloudDriveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudDriveClient")
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

/// What a call closure can fail with: a status and where in the call it came.
pub(crate) type CallError = (Status, Phase);

impl CloudDriveClient {
    /// A client for `config`. No connection is made yet: the first call connects, so a
    /// service can start while cd2 is still down.
    ///
    /// # Errors
    /// `ConfigInvalid` for a bad configuration; `Unexpected` when called outside a
    /// tokio runtime (the connection needs one to run on).
    pub fn new(config: CloudDriveConfig) -> Result<Self> {
        Self::with_counters(config, Arc::new(Counters::default()))
    }

    pub(crate) fn with_counters(config: CloudDriveConfig, counters: Arc<Counters>) -> Result<Self> {
        config.validate()?;
        let source = config.display_url();
        let invalid = |msg: String| {
            Error::new(ErrorKind::ConfigInvalid, msg)
                .with("key", "url")
                .with("source", source.clone())
        };
        let endpoint = Endpoint::from_shared(config.url.clone())
            .map_err(|e| invalid(format!("not a valid url: {e}")))?
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true);
        let endpoint = if config.url.starts_with("https://") {
            tls(endpoint).map_err(invalid)?
        } else {
            endpoint
        };
        // The channel spawns its worker task at once: without a runtime tonic would
        // panic, so say so instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::new(
                ErrorKind::Unexpected,
                "the cd2 source must be created inside a tokio runtime",
            )
            .with("source", source));
        }
        let channel = endpoint.connect_lazy();
        Ok(CloudDriveClient {
            inner: Arc::new(ClientInner {
                // cd2 sends large folders in many replies; allow big messages anyway.
                grpc: CloudDriveFileSrvClient::new(channel).max_decoding_message_size(64 << 20),
                config,
                source,
                counters,
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// cd2's health report; needs no token and is not rate limited (it costs no cloud
    /// call).
    pub async fn system_info(&self) -> Result<SystemInfo> {
        let inner = &self.inner;
        let mut grpc = inner.grpc.clone();
        let reply =
            tokio::time::timeout(inner.config.timeout, grpc.get_system_info(Request::new(())))
                .await
                .map_err(|_| inner.timed_out("system_info", "/"))?
                .map_err(|s| parse_error(&s, Phase::Call, "system_info", "/", &inner.source))?
                .into_inner();
        Ok(SystemInfo {
            is_login: reply.is_login,
            user_name: reply.user_name,
            system_ready: reply.system_ready,
            system_message: reply.system_message,
            has_error: reply.has_error.unwrap_or(false),
        })
    }
}

#[cfg(feature = "tls")]
fn tls(endpoint: Endpoint) -> std::result::Result<Endpoint, String> {
    endpoint
        .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
        .map_err(|e| format!("cannot set up TLS: {e}"))
}

#[cfg(not(feature = "tls"))]
fn tls(_endpoint: Endpoint) -> std::result::Result<Endpoint, String> {
    Err("https:// needs pps-clouddrive's `tls` feature, which this build lacks".to_owned())
}

impl ClientInner {
    pub(crate) fn timed_out(&self, operation: &str, path: &str) -> Error {
        Counters::bump(&self.counters.transient);
        Error::new(
            ErrorKind::Unavailable,
            format!("no complete answer within {:?}", self.config.timeout),
        )
        .with("operation", operation)
        .with("path", path)
        .with("source", self.source.clone())
    }

    /// The token to send, logging in first when there is none or it is about to expire.
    pub(crate) async fn bearer(&self) -> Result<Option<Secret>> {
        match &self.config.auth {
            Auth::None => Ok(None),
            Auth::ApiToken(token) => Ok(Some(token.clone())),
            Auth::Password { username, password } => {
                let mut cached = self.token.lock().await;
                if let Some(token) = cached.as_ref()
                    && token.renew_at.is_none_or(|at| Instant::now() < at)
                {
                    return Ok(Some(token.value.clone()));
                }
                let fresh = self.login(username, password).await?;
                let value = fresh.value.clone();
                *cached = Some(fresh);
                Ok(Some(value))
            }
        }
    }

    /// Drops `used` from the cache (unless another call already replaced it), so the
    /// next call logs in again.
    pub(crate) async fn forget_token(&self, used: Option<&Secret>) {
        let mut cached = self.token.lock().await;
        let same = match (cached.as_ref(), used) {
            (Some(token), Some(used)) => token.value == *used,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if same {
            *cached = None;
        }
    }

    async fn login(&self, username: &str, password: &Secret) -> Result<CachedToken> {
        Counters::bump(&self.counters.logins);
        let request = proto::GetTokenRequest {
            user_name: username.to_owned(),
            password: password.expose().to_owned(),
            totp_code: None,
        };
        let mut grpc = self.grpc.clone();
        let reply =
            tokio::time::timeout(self.config.timeout, grpc.get_token(Request::new(request)))
                .await
                .map_err(|_| self.timed_out("login", "/"))?
                .map_err(|s| parse_error(&s, Phase::Call, "login", "/", &self.source))?
                .into_inner();
        if !reply.success || reply.token.is_empty() {
            let why = if reply.error_message.is_empty() {
                "no reason given".to_owned()
            } else {
                reply.error_message
            };
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                format!("cd2 refused the login of user {username:?}: {why}; check the user name and password"),
            )
            .permanent()
            .with("operation", "login")
            .with("source", self.source.clone()));
        }
        let renew_at = reply.expiration.and_then(|exp| {
            let exp = SystemTime::UNIX_EPOCH.checked_add(Duration::new(
                u64::try_from(exp.seconds).ok()?,
                u32::try_from(exp.nanos).ok()?,
            ))?;
            let left = exp
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            if left < Duration::from_secs(60) {
                // Expired or about to, by our clock: most likely the two clocks
                // disagree. Renewing by it would log in before every call; use the
                // token until cd2 refuses it instead (which logs in once more).
                tracing::debug!(source = %self.source, "token expiry looks skewed; renewing on refusal only");
                return None;
            }
            // Renew a fifth of the lifetime early (at most five minutes), so a call in
            // flight never carries a token that expires under it.
            let margin = (left / 5).min(Duration::from_secs(300));
            Some(Instant::now() + (left - margin))
        });
        tracing::debug!(source = %self.source, "logged in to cd2");
        Ok(CachedToken {
            value: Secret::new(reply.token),
            renew_at,
        })
    }

    /// Wraps a message with the `authorization` header.
    pub(crate) fn request<T>(&self, message: T, token: Option<&Secret>) -> Result<Request<T>> {
        let mut request = Request::new(message);
        if let Some(token) = token {
            let mut value: MetadataValue<Ascii> =
                format!("Bearer {}", token.expose()).parse().map_err(|_| {
                    // Never echo the value: it is the secret.
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        "the token holds characters a header cannot carry",
                    )
                    .permanent()
                    .with("key", "api_token")
                    .with("source", self.source.clone())
                })?;
            value.set_sensitive(true);
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    /// Runs one authenticated call under the timeout. On `UNAUTHENTICATED` with a
    /// password login, logs in once more and repeats the call; the error surfaces only
    /// if that fails too.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        path: &str,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut(Request<()>) -> Fut,
        Fut: Future<Output = std::result::Result<T, CallError>>,
    {
        let mut logged_in_again = false;
        loop {
            let token = self.bearer().await?;
            let auth = self.request((), token.as_ref())?;
            let sent = Instant::now();
            let outcome = tokio::time::timeout(self.config.timeout, f(auth)).await;
            if operation == "list" {
                self.counters.listing_latency.record(sent.elapsed());
            }
            let (status, phase) = match outcome {
                Err(_) => return Err(self.timed_out(operation, path)),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
            };
            let password = matches!(self.config.auth, Auth::Password { .. });
            if status.code() == Code::Unauthenticated && password && !logged_in_again {
                tracing::info!(source = %self.source, "cd2 refused the token; logging in again");
                self.forget_token(token.as_ref()).await;
                logged_in_again = true;
                continue;
            }
            let mut err = parse_error(&status, phase, operation, path, &self.source);
            match err.kind() {
                ErrorKind::Throttled => Counters::bump(&self.counters.throttled),
                ErrorKind::Unavailable => Counters::bump(&self.counters.transient),
                ErrorKind::Unauthenticated => {
                    let what = match self.config.auth {
                        Auth::None => {
                            "cd2 wants a token: set an api token or a user name and password"
                        }
                        Auth::ApiToken(_) => {
                            "cd2 refused the API token: check it in cd2's web UI (and that it allows listing)"
                        }
                        Auth::Password { .. } => "cd2 refused the token it just issued",
                    };
                    err = Error::new(
                        ErrorKind::Unauthenticated,
                        format!("{what} ({})", err.message()),
                    )
                    .permanent()
                    .with("operation", operation)
                    .with("path", path)
                    .with("source", self.source.clone());
                }
                _ => {}
            }
            return Err(err);
        }
    }
}

/// Moves the `authorization` header of `auth` onto a request for `message`.
pub(crate) fn with_auth<T>(auth: &Request<()>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    *request.metadata_mut() = auth.metadata().clone();
    request
}

impl CloudDriveClient {
    /// `GetSubFiles`: every reply of the stream, gathered.
    pub(crate) async fn list_folder(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        let inner = &*self.inner;
        inner
            .call("list", path, |auth| {
                Counters::bump(&inner.counters.listings);
                let mut grpc = inner.grpc.clone();
                let request = with_auth(
                    &auth,
                    proto::ListSubFileRequest {
                        path: path.to_owned(),
                        force_refresh: options.force_refresh,
                        check_expires: None,
                    },
                );
                async move {
                    let mut stream = grpc
                        .get_sub_files(request)
                        .await
                        .map_err(|s| (s, Phase::Call))?
                        .into_inner();
                    let mut entries = Vec::new();
                    let mut seen = HashSet::new();
                    let mut replies = 0usize;
                    // Read to the end: a listing is returned whole or not at all.
                    loop {
                        match stream.message().await {
                            Ok(Some(reply)) => {
                                replies += 1;
                                for file in &reply.sub_files {
                                    match entry_of(file) {
                                        Some(entry) if seen.insert(entry.name.clone()) => {
                                            entries.push(entry)
                                        }
                                        Some(_) => {}
                                        None => tracing::warn!(
                                            folder = path,
                                            "skipped an entry without a usable name"
                                        ),
                                    }
                                }
                            }
                            Ok(None) => return Ok(entries),
                            Err(status) => {
                                let phase = if replies > 0 {
                                    Phase::MidStream
                                } else {
                                    Phase::Call
                                };
                                return Err((status, phase));
                            }
                        }
                    }
                }
            })
            .await
    }

    /// `FindFileByPath`; an empty reply is not found.
    pub(crate) async fn lookup(&self, path: &str) -> Result<Entry> {
        if path == "/" {
            // The root always exists; cd2 has no record to return for it.
            return Ok(Entry::dir("/", None));
        }
        let inner = &*self.inner;
        let parent = path::parent(path).unwrap_or("/").to_owned();
        let name = path::file_name(path).to_owned();
        let file = inner
            .call("stat", path, |auth| {
                Counters::bump(&inner.counters.lookups);
                let mut grpc = inner.grpc.clone();
                // Parent folder and leaf name: one of the two conventions cd2 accepts.
                let request = with_auth(
                    &auth,
                    proto::FindFileByPathRequest {
                        parent_path: parent.clone(),
                        path: name.clone(),
                    },
                );
                async move {
                    grpc.find_file_by_path(request)
                        .await
                        .map(|r| r.into_inner())
                        .map_err(|s| (s, Phase::Call))
                }
            })
            .await?;
        let not_found = || {
            Error::new(ErrorKind::NotFound, "cd2 has no such path")
                .with("operation", "stat")
                .with("path", path)
                .with("source", inner.source.clone())
        };
        if is_empty_file(&file) {
            return Err(not_found());
        }
        let mut entry = entry_of(&file).ok_or_else(not_found)?;
        // The caller asked for this name; cd2's record may spell the full path only.
        entry.name = name;
        Ok(entry)
    }
}
