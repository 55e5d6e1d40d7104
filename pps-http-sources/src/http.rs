//! What both adapters share: the reqwest client with its TLS set-up, pacing settings,
//! the transport error mapping, RFC 3339 times, and the counters.

use pps_core::layers::{LayerStats, RateLimit, RateLimitPolicy, Retry, RetryPolicy};
use pps_core::{Error, ErrorKind, Mtime, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How fast a source calls its server and how it retries: the same keys and defaults
/// as a CloudDrive2 source, since the budget is the same cloud account's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Pacing {
    /// Listings and lookups per second; fractional values are fine (`0.9`).
    pub max_queries_per_second: f64,
    /// Calls that may go out at once after a quiet spell (at least 1).
    pub burst: u32,
    /// How many times a throttled or transient failure is retried before it is reported.
    pub retries: u32,
    /// The longest one call may take.
    pub timeout: Duration,
    /// First wait after a transient failure; doubles with each retry.
    pub backoff: Duration,
    /// First wait after a throttled answer; doubles with each retry.
    pub throttle_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long a lowered rate holds after a throttled answer.
    pub throttle_cooldown: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        // Users of AList-fronted 115 settle on one call a second; 0.9 as for cd2.
        Pacing {
            max_queries_per_second: 0.9,
            burst: 2,
            retries: 4,
            timeout: Duration::from_secs(60),
            backoff: Duration::from_millis(500),
            throttle_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(120),
            throttle_cooldown: Duration::from_secs(120),
        }
    }
}

impl Pacing {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let qps = self.max_queries_per_second;
        if !(qps.is_finite() && qps > 0.0 && qps <= 1000.0) {
            return Err(invalid(
                "max_queries_per_second",
                format!("must be above 0 and at most 1000, not {qps}"),
            ));
        }
        if self.burst == 0 {
            return Err(invalid("burst", "burst must be at least 1".to_owned()));
        }
        if self.timeout.is_zero() {
            return Err(invalid(
                "timeout",
                "timeout must be longer than zero".to_owned(),
            ));
        }
        Ok(())
    }

    /// `Retry(RateLimit(client))`, the order cd2 uses: every retry pays for its call,
    /// and the limiter sees a throttled answer before the retry layer tries again.
    pub(crate) fn stack<C>(&self, client: C, layers: Arc<LayerStats>) -> Retry<RateLimit<C>> {
        let rate = RateLimitPolicy::new(self.max_queries_per_second, self.burst)
            .with_cooldown(self.throttle_cooldown);
        let retry = RetryPolicy::new(self.retries).with_backoff(
            self.backoff,
            self.throttle_backoff,
            self.max_backoff,
        );
        let limited = RateLimit::with_stats(client, rate, layers.clone());
        Retry::with_stats(limited, retry, layers)
    }
}

pub(crate) fn invalid(key: &'static str, message: String) -> Error {
    Error::new(ErrorKind::ConfigInvalid, message)
        .permanent()
        .with("key", key)
}

/// Checks a server url: `http://` or `https://` with a host, no credentials, no query
/// (credentials have keys of their own and never travel in a url).
pub(crate) fn check_url(url: &str) -> Result<()> {
    pps_core::secret::check_url(url).map_err(|m| invalid("url", m))
}

/// Builds the TLS configuration: rustls with the ring provider and the platform's
/// verifier, handed to reqwest, so no process-wide provider is installed.
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

/// One server: a reqwest client, its base url and the name shown in errors.
#[derive(Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    /// The url as errors and logs show it (no credentials, no query).
    pub(crate) shown: String,
    /// "OpenList" or "rclone", for messages.
    pub(crate) product: &'static str,
    pub(crate) timeout: Duration,
}

/// A reply as it came: HTTP status and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// How a request proves who it is.
pub(crate) enum Credential<'a> {
    None,
    /// OpenList: the raw token in `Authorization`, no `Bearer`.
    Raw(&'a str),
    /// rclone: HTTP basic auth.
    Basic(&'a str, &'a str),
}

impl Http {
    pub(crate) fn new(url: &str, product: &'static str, timeout: Duration) -> Result<Self> {
        check_url(url)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect to another host would carry the credentials along.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pps/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("cannot build the HTTP client: {}", e.without_url()),
                )
            })?;
        Ok(Http {
            client,
            base: url.trim_end_matches('/').to_owned(),
            shown: pps_core::secret::redact_url(url),
            product,
            timeout,
        })
    }

    /// POSTs `body` as JSON to `endpoint` (`/api/fs/list`, `/operations/list`).
    pub(crate) async fn post(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
        credential: Credential<'_>,
        operation: &str,
        path: &str,
    ) -> Result<Reply> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot encode a request: {e}"),
            )
        })?;
        let mut request = self
            .client
            .post(format!("{}{endpoint}", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(bytes);
        request = match credential {
            Credential::None => request,
            Credential::Raw(token) => {
                let mut value = reqwest::header::HeaderValue::from_str(token).map_err(|_| {
                    // Never echo the value: it is the secret.
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        "the token holds characters a header cannot carry",
                    )
                    .permanent()
                    .with("key", "token")
                    .with("source", self.shown.clone())
                })?;
                value.set_sensitive(true);
                request.header(reqwest::header::AUTHORIZATION, value)
            }
            Credential::Basic(user, pass) => request.basic_auth(user, Some(pass)),
        };
        let outcome = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Reply { status, body })
        }
        .await;
        outcome.map_err(|e| self.transport_error(&e, operation, path))
    }

    /// The plain-words error for a call that got no whole answer.
    fn transport_error(&self, e: &reqwest::Error, operation: &str, path: &str) -> Error {
        let authority = self
            .shown
            .split_once("://")
            .map_or(self.shown.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut refused = false;
        let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                refused = true;
            }
            cause = c.source();
        }
        let message = if refused {
            format!(
                "nothing listens on {authority}: is {} running, and is this its port?",
                self.product
            )
        } else if e.is_timeout() {
            format!("no complete answer within {:?}", self.timeout)
        } else if e.is_connect() {
            format!("cannot connect to {authority}")
        } else {
            // The answer was cut (connection reset mid-body) or never came.
            "the connection broke before a whole answer arrived".to_owned()
        };
        // Every one of these may pass: the server restarting looks the same.
        Error::new(ErrorKind::Unavailable, message)
            .temporary()
            .with("operation", operation.to_owned())
            .with("path", path.to_owned())
            .with("source", self.shown.clone())
    }
}

/// An RFC 3339 time (`2024-05-01T12:34:56.789+08:00`) as an mtime. `None` for text that
/// is not one, and for a zero or pre-1900 time (Go's zero time `0001-01-01T00:00:00Z`
/// means "unknown", never a real mtime).
pub(crate) fn parse_time(text: &str) -> Option<Mtime> {
    let b = text.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = b.get(from..to)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, want: &[u8]| b.get(i).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if year < 1900 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = (i - start).min(9);
        if digits == 0 {
            return None;
        }
        nanos *= 10i64.pow(9 - digits as u32);
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let minutes = num(i + 1, i + 3)? * 60 + num(i + 4, i + 6)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    Mtime::from_parts(seconds, i32::try_from(nanos).ok()?)
}

/// Counters of one source, shared by its layers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) listings: AtomicU64,
    pub(crate) lookups: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) transient: AtomicU64,
    pub(crate) logins: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, layers: &LayerStats) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            listings: get(&self.listings),
            lookups: get(&self.lookups),
            refreshes: get(&self.refreshes),
            throttled: get(&self.throttled),
            transient: get(&self.transient),
            logins: get(&self.logins),
            retries: layers.retries(),
            rate_lowered: layers.rate_lowered(),
            limiter_wait: layers.limiter_wait(),
        }
    }
}

/// What one source has done since it was made: every counter only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Listing calls sent (each attempt counts).
    pub listings: u64,
    /// Lookup calls sent (each attempt counts).
    pub lookups: u64,
    /// rclone `vfs/refresh` calls sent.
    pub refreshes: u64,
    /// Answers that said the cloud throttled us.
    pub throttled: u64,
    /// Transient failures: unavailable, timed out, cut.
    pub transient: u64,
    /// OpenList logins (`/api/auth/login` calls).
    pub logins: u64,
    /// Attempts repeated by the retry layer.
    pub retries: u64,
    /// Times the rate limiter lowered its rate after a throttled answer.
    pub rate_lowered: u64,
    /// Time calls spent waiting for the rate limiter, summed over calls.
    pub limiter_wait: Duration,
}

/// True when a message says the cloud throttled the call: HTTP 429, 115's 405 and its
/// code 770004 ("访问频率过高", calls too frequent), as OpenList and rclone pass them on.
pub(crate) fn is_throttle_text(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("429")
        || lower.contains("too many requests")
        || lower.contains("405 not allowed")
        || lower.contains("770004")
        || message.contains("访问频率过高")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_and_unknown_ones() {
        let t = |s| parse_time(s).map(Mtime::as_nanos);
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("2023-11-14T22:13:20Z"), Some(1_700_000_000_000_000_000));
        assert_eq!(
            t("2023-11-15T06:13:20.5+08:00"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            t("2023-11-14T21:13:20.123456789-01:00"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(t("0001-01-01T00:00:00Z"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("2023-13-01T00:00:00Z"), None);
        assert_eq!(t("2023-11-14T22:13:20"), None, "no zone");
        assert_eq!(t("2023-11-14T22:13:20.Z"), None);
        assert_eq!(
            t("２０２３-11-14T22:13:20Z"),
            None,
            "no panic on multibyte text"
        );
    }

    #[test]
    fn throttle_texts() {
        assert!(is_throttle_text("http error: 429 Too Many Requests"));
        assert!(is_throttle_text("code 770004: 访问频率过高"));
        assert!(!is_throttle_text("object not found"));
    }
}
