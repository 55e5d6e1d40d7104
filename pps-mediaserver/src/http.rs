//! What the three HTTP servers share: the client, the auth header, the one
//! [`parse_error`] that maps HTTP statuses to pps error kinds, transport-error mapping,
//! URL redaction, pacing, and the cached library list.

use pps_core::mapping::{target_contains, target_same};
use pps_core::{Error, ErrorKind, Library, Result, Secret};
use reqwest::header::{ACCEPT, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

/// Which server a client talks to; decides the auth header and the hints in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Plex,
    Emby,
    Jellyfin,
}

impl Service {
    /// The product name, as shown in errors and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Plex => "Plex",
            Service::Emby => "Emby",
            Service::Jellyfin => "Jellyfin",
        }
    }

    /// What the server's credential is called in its own UI.
    fn credential(self) -> &'static str {
        match self {
            Service::Plex => "token",
            Service::Emby | Service::Jellyfin => "API key",
        }
    }

    /// What a user should check when the server refuses the credentials.
    fn auth_hint(self) -> &'static str {
        match self {
            Service::Plex => {
                "scanning needs the X-Plex-Token of the server's owner (admin); a shared \
                 user's token is refused"
            }
            Service::Emby => {
                "use an API key created by an Emby administrator (Dashboard > Advanced > \
                 API Keys); if this server is Jellyfin, use kind \"jellyfin\": Jellyfin 12 \
                 refuses the X-Emby-Token header"
            }
            Service::Jellyfin => {
                "use an API key from Jellyfin's Dashboard > API Keys; pps sends it as \
                 `Authorization: MediaBrowser Token=...`, which Jellyfin 10.11 and 12 accept, \
                 so the key itself is wrong or revoked"
            }
        }
    }

    /// The header that carries the credential. All three accept a query parameter too;
    /// pps never uses it, since URLs end up in proxy and server logs.
    fn auth_header(self, secret: &Secret) -> Result<(HeaderName, HeaderValue)> {
        let (name, value) = match self {
            Service::Plex => ("x-plex-token", secret.expose().to_owned()),
            Service::Emby => ("x-emby-token", secret.expose().to_owned()),
            // Jellyfin 12 turns the legacy X-Emby-Token header off by default; this form
            // works on 10.11 and on 12.
            Service::Jellyfin => (
                "authorization",
                format!("MediaBrowser Token=\"{}\"", secret.expose()),
            ),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            // Never echo the value: it is the secret.
            Error::new(
                ErrorKind::ConfigInvalid,
                "the token holds characters that cannot go into an HTTP header",
            )
            .with("key", self.secret_key())
        })?;
        // Keeps the value out of reqwest's and hyper's Debug output.
        value.set_sensitive(true);
        Ok((HeaderName::from_static(name), value))
    }

    /// The config key of the credential, for errors about it.
    fn secret_key(self) -> &'static str {
        match self {
            Service::Plex => "token",
            Service::Emby | Service::Jellyfin => "api_key",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Maps an HTTP status that is not a success to a pps error, for all three servers.
///
/// - 401: `Unauthenticated`, 403: `PermissionDenied`, both permanent with a hint on
///   which credential the server wants.
/// - 404: `NotFound`, permanent here; Plex re-reads its sections before it decides.
/// - 408 and 5xx: `Unavailable`, 429: `Throttled`, both temporary.
/// - 3xx: `Rejected`, permanent: pps does not follow redirects, so that a token never
///   travels to another host.
/// - Any other status: `Rejected`, permanent.
///
/// `body` must already be free of secrets; a short, single-line piece of it goes into
/// the message when it is not an HTML page.
pub(crate) fn parse_error(status: StatusCode, body: &str, service: Service) -> Error {
    let code = status.as_u16();
    let (kind, temporary, what) = match code {
        401 => (
            ErrorKind::Unauthenticated,
            false,
            format!(
                "{service} refused the {}; {}",
                service.credential(),
                service.auth_hint()
            ),
        ),
        403 => (
            ErrorKind::PermissionDenied,
            false,
            format!(
                "{service} refused the request for lack of permission; {}",
                service.auth_hint()
            ),
        ),
        404 => (
            ErrorKind::NotFound,
            false,
            format!("{service} has no such resource; check the url (and its path prefix)"),
        ),
        408 => (
            ErrorKind::Unavailable,
            true,
            format!("{service} timed out the request"),
        ),
        429 => (
            ErrorKind::Throttled,
            true,
            format!("{service} asked to slow down"),
        ),
        300..=399 => (
            ErrorKind::Rejected,
            false,
            format!(
                "{service} answered with a redirect; set url to the address it redirects to \
                 (pps does not follow redirects so that the token never leaves for another host)"
            ),
        ),
        500..=599 => (
            ErrorKind::Unavailable,
            true,
            format!("{service} failed with a server error"),
        ),
        _ => (
            ErrorKind::Rejected,
            false,
            format!("{service} refused the request"),
        ),
    };
    let mut message = format!("{what} (HTTP {code})");
    if let Some(snippet) = snippet(body) {
        message.push_str(": ");
        message.push_str(&snippet);
    }
    let err = Error::new(kind, message).with("status", code.to_string());
    if temporary {
        err.temporary()
    } else {
        err.permanent()
    }
}

/// A short single-line piece of an error body, or `None` for an empty body or an HTML
/// page (Plex answers errors with HTML that says nothing the status does not).
fn snippet(body: &str) -> Option<String> {
    const MAX_CHARS: usize = 200;
    let body = body.trim();
    if body.is_empty() || body.starts_with('<') {
        return None;
    }
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(MAX_CHARS).collect();
    if one_line.chars().count() > MAX_CHARS {
        out.push('…');
    }
    Some(out)
}

/// Maps a failure below HTTP (connect, timeout, a connection cut short) to a pps error.
/// Every such failure is temporary: the server may be restarting.
pub(crate) fn transport_error(err: reqwest::Error, service: Service, timeout: Duration) -> Error {
    // reqwest puts the request URL into its Display; drop it before anything prints.
    let err = err.without_url();
    let chain = error_chain(&err);
    if err.is_builder() {
        return Error::new(
            ErrorKind::Unexpected,
            format!("could not build the request: {chain}"),
        )
        .permanent();
    }
    let message = if err.is_timeout() {
        format!("{service} did not answer within {timeout:?}")
    } else if err.is_connect() {
        format!("could not connect to {service}: {chain}")
    } else {
        format!("the connection to {service} failed: {chain}")
    };
    Error::new(ErrorKind::Unavailable, message).temporary()
}

/// The messages of an error and its causes, joined: reqwest's own message alone ("error
/// sending request") does not say what went wrong.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // hyper repeats its inner error's text at each layer; keep each text once.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// A URL as it may be shown: scheme, host, port and path, without user, password, query
/// or fragment.
pub(crate) fn redact(url: &Url) -> String {
    pps_core::secret::redact_url(url.as_str())
}

/// A configured URL, checked: the error names `key` and never echoes a credential.
pub(crate) fn check_url_key(url: &str, key: &'static str) -> Result<()> {
    if url.trim().is_empty() {
        return Err(
            Error::new(ErrorKind::ConfigInvalid, format!("`{key}` is required"))
                .permanent()
                .with("key", key),
        );
    }
    pps_core::secret::check_url(url.trim()).map_err(|why| {
        Error::new(ErrorKind::ConfigInvalid, why)
            .permanent()
            .with("key", key)
    })
}

/// A credential that must be given.
pub(crate) fn require(secret: &Secret, key: &'static str) -> Result<()> {
    if secret.expose().trim().is_empty() {
        return Err(
            Error::new(ErrorKind::ConfigInvalid, format!("`{key}` is required"))
                .permanent()
                .with("key", key),
        );
    }
    Ok(())
}

/// A duration that must be above zero.
pub(crate) fn positive(d: std::time::Duration, key: &'static str) -> Result<()> {
    if d.is_zero() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("`{key}` must be above zero"),
        )
        .permanent()
        .with("key", key));
    }
    Ok(())
}

/// Parses and checks a server URL from the config. Errors name `key` and never echo a
/// value that might hold credentials.
pub(crate) fn parse_base_url(url: &str, key: &'static str) -> Result<Url> {
    let invalid = |why: String| {
        Error::new(ErrorKind::ConfigInvalid, why)
            .permanent()
            .with("key", key)
    };
    let parsed =
        Url::parse(url.trim()).map_err(|e| invalid(format!("`{key}` is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "`{key}` must start with http:// or https://"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("`{key}` has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(format!(
            "`{key}` may not hold a user or password: it would reach logs; give the token \
             in its own key"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(format!(
            "`{key}` may not hold a query or fragment (a token in a URL ends up in logs); \
             give the token in its own key"
        )));
    }
    Ok(parsed)
}

/// Builds the TLS configuration: rustls with the ring provider and the platform's
/// certificate verifier. Passed to reqwest explicitly, so pps neither compiles aws-lc
/// nor installs a process-wide default provider behind an embedding program's back.
/// A reqwest client as the targets use (rustls with ring and the platform's verifier,
/// no redirects so a credential never travels to another host, `timeout` per request)
/// for other HTTP clients of pps: the notifiers.
pub fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pps/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot build an HTTP client: {e}"),
            )
        })
}

fn tls_config() -> Result<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| {
        Error::new(ErrorKind::Unexpected, format!("could not set up TLS: {e}")).permanent()
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_platform_verifier()
        .map_err(tls_error)?
        .with_no_client_auth())
}

/// An HTTP client for one server: base URL, credential header, timeout.
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    service: Service,
    secret: Secret,
    auth: (HeaderName, HeaderValue),
    timeout: Duration,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("service", &self.service)
            .field("url", &redact(&self.base))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The body of a successful reply.
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
}

impl Http {
    /// A client for `service` at `url` (checked, named `url_key` in errors).
    pub(crate) fn new(
        service: Service,
        url: &str,
        url_key: &'static str,
        secret: Secret,
        timeout: Duration,
    ) -> Result<Self> {
        let base = parse_base_url(url, url_key)?;
        if secret.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("`{}` is empty", service.secret_key()),
            )
            .permanent()
            .with("key", service.secret_key()));
        }
        if timeout.is_zero() {
            return Err(
                Error::new(ErrorKind::ConfigInvalid, "`timeout` must be above zero")
                    .permanent()
                    .with("key", "timeout"),
            );
        }
        let auth = service.auth_header(&secret)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(timeout)
            // A redirect to another host would carry the token header along (reqwest
            // strips only the standard auth headers); a 3xx is reported instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pps/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| transport_error(e, service, timeout))?;
        Ok(Http {
            client,
            base,
            service,
            secret,
            auth,
            timeout,
        })
    }

    /// The base URL without credentials, for errors and logs.
    pub(crate) fn shown_base(&self) -> String {
        redact(&self.base)
    }

    /// The URL of an endpoint (`/library/sections`) below the base URL, keeping any path
    /// prefix of the base (a reverse proxy's `/plex`, Emby's `/emby`).
    pub(crate) fn url(&self, endpoint: &str) -> Url {
        let mut url = self.base.clone();
        let path = format!("{}{}", self.base.path().trim_end_matches('/'), endpoint);
        url.set_path(&path);
        url
    }

    /// Sends a request with the credential header and `Accept: application/json`.
    ///
    /// Any 2xx is success. Every error carries the operation, the status when there is
    /// one, and the redacted base URL; none carries the credential.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        json_body: Option<&serde_json::Value>,
        operation: &'static str,
    ) -> Result<Reply> {
        let shown_path = url.path().to_owned();
        let mut request = self
            .client
            .request(method.clone(), url)
            .header(self.auth.0.clone(), self.auth.1.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = json_body {
            request = request.json(body);
        }
        let context = |e: Error| {
            e.with("operation", operation)
                .with("url", self.shown_base())
        };
        let response = request
            .send()
            .await
            .map_err(|e| context(transport_error(e, self.service, self.timeout)))?;
        let status = response.status();
        tracing::debug!(
            service = self.service.name(),
            %method,
            path = %shown_path,
            status = status.as_u16(),
            "{operation}"
        );
        let body = response
            .bytes()
            .await
            .map_err(|e| context(transport_error(e, self.service, self.timeout)))?;
        if status.is_success() {
            return Ok(Reply {
                body: body.to_vec(),
            });
        }
        let text = String::from_utf8_lossy(&body);
        // Servers may echo what they were sent; never let the credential through.
        let text = if self.secret.is_empty() {
            text.into_owned()
        } else {
            text.replace(self.secret.expose(), "***")
        };
        Err(context(parse_error(status, &text, self.service)))
    }

    /// Sends a request like [`send`](Self::send) but returns any status with its body:
    /// for endpoints whose error replies carry an answer (the targeted-scans plugin
    /// answers 404 with JSON for a path it cannot find). Transport errors stay errors.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        url: Url,
        json_body: Option<&serde_json::Value>,
        operation: &'static str,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let mut request = self
            .client
            .request(method, url)
            .header(self.auth.0.clone(), self.auth.1.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = json_body {
            request = request.json(body);
        }
        let context = |e: Error| {
            e.with("operation", operation)
                .with("url", self.shown_base())
        };
        let response = request
            .send()
            .await
            .map_err(|e| context(transport_error(e, self.service, self.timeout)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| context(transport_error(e, self.service, self.timeout)))?;
        Ok((status, body.to_vec()))
    }

    /// The error [`send`](Self::send) would have returned for this status and body.
    pub(crate) fn status_error(
        &self,
        status: StatusCode,
        body: &[u8],
        operation: &'static str,
    ) -> Error {
        let text = String::from_utf8_lossy(body);
        let text = if self.secret.is_empty() {
            text.into_owned()
        } else {
            text.replace(self.secret.expose(), "***")
        };
        parse_error(status, &text, self.service)
            .with("operation", operation)
            .with("url", self.shown_base())
    }

    /// `GET endpoint` and decode its JSON reply.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        operation: &'static str,
    ) -> Result<T> {
        let reply = self
            .send(Method::GET, self.url(endpoint), None, operation)
            .await?;
        decode(&reply.body, self.service).map_err(|e| {
            e.with("operation", operation)
                .with("url", self.shown_base())
        })
    }
}

/// Decodes a JSON reply; a reply of another shape is an `Unexpected`, temporary error
/// (a proxy's error page, a server mid-upgrade).
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], service: Service) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("{service} answered with JSON of an unexpected shape: {e}"),
        )
        .temporary()
    })
}

/// `secs` (Unix seconds) as ISO 8601 in UTC (`2026-12-04T20:00:00Z`), as Emby and
/// Jellyfin take dates in queries.
pub(crate) fn iso8601(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Spaces out requests to one server: each waits until `gap` after the one before.
/// Shared by all callers of a target, so concurrent scans queue rather than burst.
#[derive(Debug)]
pub(crate) struct Pacer {
    gap: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer with `gap` between requests; zero means no waiting.
    pub(crate) fn new(gap: Duration) -> Self {
        Pacer {
            gap,
            next: Mutex::new(None),
        }
    }

    /// Waits for this request's turn.
    pub(crate) async fn wait(&self) {
        if self.gap.is_zero() {
            return;
        }
        // The lock is held across the sleep on purpose: waiters line up in order.
        let mut next = self.next.lock().await;
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        *next = Some(Instant::now() + self.gap);
    }
}

/// A server's library list, cached for `ttl` and re-read on demand (a miss, a 404), so a
/// library added later is found without a restart.
#[derive(Debug)]
pub(crate) struct LibraryCache {
    ttl: Duration,
    state: Mutex<Option<(Instant, Arc<Vec<Library>>)>>,
}

impl LibraryCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        LibraryCache {
            ttl,
            state: Mutex::new(None),
        }
    }

    /// The cached list, fetched with `fetch` when absent, older than the TTL, or when
    /// `force` is set. The lock is held during the fetch so concurrent callers share one
    /// request. A failed fetch keeps nothing and returns the error.
    pub(crate) async fn get<F, Fut>(&self, force: bool, fetch: F) -> Result<Arc<Vec<Library>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Library>>>,
    {
        let mut state = self.state.lock().await;
        if let (false, Some((at, libs))) = (force, state.as_ref())
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(libs));
        }
        let libs = Arc::new(fetch().await?);
        *state = Some((Instant::now(), Arc::clone(&libs)));
        Ok(libs)
    }
}

/// The libraries with a location that contains `path` (whole components, in the
/// location's separator style).
pub(crate) fn containing<'a>(libs: &'a [Library], path: &str) -> Vec<&'a Library> {
    libs.iter()
        .filter(|l| l.locations.iter().any(|loc| target_contains(loc, path)))
        .collect()
}

/// True when `path` is one of `lib`'s locations itself.
pub(crate) fn is_root_of(lib: &Library, path: &str) -> bool {
    lib.locations.iter().any(|loc| target_same(loc, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let cases = [
            (401, ErrorKind::Unauthenticated, false),
            (403, ErrorKind::PermissionDenied, false),
            (404, ErrorKind::NotFound, false),
            (408, ErrorKind::Unavailable, true),
            (429, ErrorKind::Throttled, true),
            (302, ErrorKind::Rejected, false),
            (400, ErrorKind::Rejected, false),
            (500, ErrorKind::Unavailable, true),
            (503, ErrorKind::Unavailable, true),
        ];
        for (code, kind, temporary) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            let err = parse_error(status, "", Service::Plex);
            assert_eq!(err.kind(), kind, "{code}");
            assert_eq!(err.is_temporary(), temporary, "{code}");
            assert_eq!(err.context_value("status"), Some(code.to_string().as_str()));
        }
    }

    #[test]
    fn auth_errors_carry_hints() {
        let err = parse_error(StatusCode::UNAUTHORIZED, "", Service::Plex);
        assert!(err.message().contains("owner (admin)"), "{err}");
        let err = parse_error(StatusCode::UNAUTHORIZED, "", Service::Emby);
        assert!(err.message().contains("Jellyfin 12"), "{err}");
        let err = parse_error(StatusCode::FORBIDDEN, "", Service::Jellyfin);
        assert!(err.message().contains("MediaBrowser"), "{err}");
    }

    #[test]
    fn bodies_are_short_and_html_is_dropped() {
        let err = parse_error(StatusCode::BAD_REQUEST, "bad\n  path", Service::Emby);
        assert!(err.message().ends_with(": bad path"), "{err}");
        let err = parse_error(
            StatusCode::BAD_REQUEST,
            "<html><body>401</body></html>",
            Service::Plex,
        );
        assert!(!err.message().contains("html"), "{err}");
        let long = "x".repeat(1000);
        let err = parse_error(StatusCode::BAD_REQUEST, &long, Service::Emby);
        assert!(err.message().len() < 400, "{err}");
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        let ok = parse_base_url("http://nas:32400/plex/", "url").unwrap();
        assert_eq!(redact(&ok), "http://nas:32400/plex/");
        for bad in [
            "nas:32400",
            "ftp://nas",
            "http://u:secret-pw@nas:32400",
            "http://nas:32400/?X-Plex-Token=secret-pw",
            "not a url",
        ] {
            let err = parse_base_url(bad, "url").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{bad}");
            assert_eq!(err.context_value("key"), Some("url"), "{bad}");
            assert!(!err.to_string().contains("secret-pw"), "{err}");
        }
        assert_eq!(
            redact(&Url::parse("http://u:pw@h/x?t=1#f").unwrap()),
            "http://h/x",
            "credentials, query and fragment stripped"
        );
    }

    #[test]
    fn endpoints_keep_the_base_prefix() {
        let http = Http::new(
            Service::Emby,
            "http://nas:8096/emby/",
            "url",
            Secret::new("s3cr3t-key"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            http.url("/Library/Media/Updated").as_str(),
            "http://nas:8096/emby/Library/Media/Updated"
        );
        let debug = format!("{http:?}");
        assert!(
            debug.contains("nas:8096") && !debug.contains("s3cr3t"),
            "{debug}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_requests() {
        let pacer = Pacer::new(Duration::from_secs(1));
        let start = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..3 {
            pacer.wait().await;
            seen.push(start.elapsed());
        }
        assert_eq!(
            seen,
            [0, 1, 2].map(Duration::from_secs).to_vec(),
            "one request per second"
        );
        // After a quiet spell longer than the gap, the next request goes at once.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = Instant::now();
        pacer.wait().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_pacing_never_waits() {
        let pacer = Pacer::new(Duration::ZERO);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_rereads_after_ttl_and_on_force() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = LibraryCache::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        let fetch = || async {
            let n = reads.fetch_add(1, Ordering::SeqCst);
            Ok(vec![Library {
                id: n.to_string(),
                name: "TV".into(),
                locations: vec!["/tv".into()],
            }])
        };
        assert_eq!(cache.get(false, fetch).await.unwrap()[0].id, "0");
        assert_eq!(cache.get(false, fetch).await.unwrap()[0].id, "0", "cached");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(cache.get(false, fetch).await.unwrap()[0].id, "1", "expired");
        assert_eq!(cache.get(true, fetch).await.unwrap()[0].id, "2", "forced");
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        let failed = cache
            .get(true, || async {
                Err(Error::new(ErrorKind::Unavailable, "down"))
            })
            .await;
        assert!(failed.is_err());
    }

    #[test]
    fn matching_is_on_whole_components() {
        let libs = vec![
            Library {
                id: "1".into(),
                name: "TV".into(),
                locations: vec!["/tvshows".into()],
            },
            Library {
                id: "2".into(),
                name: "TV 4K".into(),
                locations: vec!["/tvshows-4k".into()],
            },
        ];
        let ids: Vec<_> = containing(&libs, "/tvshows-4k/Show")
            .iter()
            .map(|l| l.id.as_str())
            .collect();
        assert_eq!(ids, ["2"]);
        assert!(is_root_of(&libs[0], "/tvshows/"));
        assert!(!is_root_of(&libs[0], "/tvshows/Show"));
    }
}
