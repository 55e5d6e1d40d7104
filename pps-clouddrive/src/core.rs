//! What every part of the crate shares: the one mapping from gRPC statuses to pps
//! errors, the conversion of cd2's file records, counters, and a jitter source.

use crate::proto;
use pps_core::{Entry, EntryKind, Error, ErrorKind, Mtime};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tonic::{Code, Status};

/// .NET's `DateTime.MinValue` (0001-01-01T00:00:00Z) in Unix seconds: cd2 sends it for
/// an unknown time.
pub(crate) const DOTNET_MIN_SECONDS: i64 = -62_135_596_800;

/// True when a message text says the cloud throttled the call. cd2 forwards the cloud's
/// HTTP error in an `INTERNAL` status, e.g. `status: 429 Too Many Requests`; 115 answers
/// `405 Not Allowed` when it throttles.
pub(crate) fn is_throttle_text(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("429") || lower.contains("too many requests") || lower.contains("not allowed")
}

/// Where a status was seen: decides how an ambiguous code is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before any reply arrived (or for a unary call).
    Call,
    /// In the middle of a streamed listing: any failure that is not a clear answer is a
    /// cut stream, which is transient.
    MidStream,
}

/// The one mapping from a gRPC status to a pps error. `operation`, `path` and `source`
/// (the url without credentials) go into the context; the status message is cd2's text,
/// which holds no credentials of ours.
pub(crate) fn parse_error(
    status: &Status,
    phase: Phase,
    operation: &str,
    path: &str,
    source: &str,
) -> Error {
    let message = status.message();
    if let Some(err) = connection_error(status, phase, operation, path, source) {
        return err;
    }
    let (kind, temporary) = match status.code() {
        Code::NotFound => (ErrorKind::NotFound, false),
        Code::PermissionDenied => (ErrorKind::PermissionDenied, false),
        Code::Unauthenticated => (ErrorKind::Unauthenticated, false),
        Code::ResourceExhausted => (ErrorKind::Throttled, true),
        Code::Internal | Code::Unknown if is_throttle_text(message) => (ErrorKind::Throttled, true),
        Code::Unavailable | Code::DeadlineExceeded => (ErrorKind::Unavailable, true),
        Code::Unimplemented => (ErrorKind::Unsupported, false),
        Code::InvalidArgument if message.to_ascii_lowercase().contains("not found") => {
            (ErrorKind::NotFound, false)
        }
        // A stream that breaks after replies began arrived (h2 reset, connection lost,
        // cancelled) is a cut, not an answer about the folder.
        Code::Internal | Code::Unknown | Code::Cancelled | Code::Aborted
            if phase == Phase::MidStream =>
        {
            (ErrorKind::Unavailable, true)
        }
        // Connection-level failures surface as Unknown/Cancelled with transport text.
        Code::Unknown | Code::Cancelled if message.contains("transport") => {
            (ErrorKind::Unavailable, true)
        }
        _ => (ErrorKind::Unexpected, false),
    };
    let text = if message.is_empty() {
        format!("cd2 answered {:?}", status.code())
    } else {
        format!("cd2 answered {:?}: {message}", status.code())
    };
    let err = Error::new(kind, text)
        .with("operation", operation)
        .with("path", path)
        .with("source", source);
    if temporary {
        err.temporary()
    } else {
        err.permanent()
    }
}

/// The plain-words error for a call that never reached a cd2 server: nothing listens on
/// the port (cd2 not running, a wrong port), or what answers is not gRPC (a web server,
/// a proxy without HTTP/2). tonic reports both as a bare "transport error" or "h2
/// protocol error", which says nothing to a user; the cause sits in the error's source
/// chain.
fn connection_error(
    status: &Status,
    phase: Phase,
    operation: &str,
    path: &str,
    source: &str,
) -> Option<Error> {
    let mut refused = false;
    // The chain's texts, lower case: hyper, h2 and rustls say what went wrong only in
    // their Display (their error kinds are not all public).
    let mut texts = String::new();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(status);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            refused = true;
        }
        texts.push_str(&e.to_string().to_ascii_lowercase());
        texts.push('\n');
        cause = e.source();
    }
    let (scheme, rest) = source.split_once("://").unwrap_or(("http", source));
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.parse::<u16>().is_ok())
        .map_or(authority, |(host, _)| host);
    let (kind, message, temporary) = if refused {
        (
            ErrorKind::Unavailable,
            format!(
                "nothing listens on {authority}: is CloudDrive2 running, and is this its port?"
            ),
            // cd2 restarting looks the same: worth retrying in a service.
            true,
        )
    } else if texts.contains("dns error") {
        (
            ErrorKind::Unavailable,
            format!("no such host: {host} (from the url {source}); check its spelling"),
            // A container network still coming up looks the same: worth retrying.
            true,
        )
    } else if scheme == "https"
        && (texts.contains("invalidcontenttype") || texts.contains("corrupt message"))
    {
        // rustls read a plain HTTP answer where a TLS record should be.
        (
            ErrorKind::Unsupported,
            format!(
                "{authority} speaks plain HTTP, not HTTPS: write the url as http://{authority}"
            ),
            false,
        )
    } else if phase == Phase::Call
        && ((status.code() == Code::Internal
            && status.message().starts_with("h2 protocol error"))
            // An HTTP/1 server reads the HTTP/2 preface as a bad request and answers
            // with a text h2 cannot parse as a frame.
            || texts.contains("frame with invalid size"))
    {
        (
            ErrorKind::Unsupported,
            format!(
                "{authority} is not a gRPC server: it does not speak CloudDrive2's gRPC (an HTTP server without HTTP/2 answered); check the url's port"
            ),
            false,
        )
    } else if status.message().contains("grpc-status header missing") {
        // An HTTP/2 server that is no gRPC server: its plain HTTP answer has no
        // grpc-status, which tonic maps from the HTTP status.
        (
            ErrorKind::Unsupported,
            format!(
                "{authority} is not a gRPC server: it does not speak CloudDrive2's gRPC (a web server answered: {}); check the url's port",
                status.message()
            ),
            false,
        )
    } else {
        return None;
    };
    let err = Error::new(kind, message)
        .with("operation", operation)
        .with("path", path)
        .with("source", source);
    Some(if temporary {
        err.temporary()
    } else {
        err.permanent()
    })
}

/// A cd2 time as an mtime: an absent time, the .NET minimum date (and anything before
/// 1900, which no real file has) are unknown.
pub(crate) fn mtime_of(time: Option<&prost_types::Timestamp>) -> Option<Mtime> {
    let time = time?;
    // -2_208_988_800 is 1900-01-01: nothing a cloud stores is older; the sentinel is far below.
    if time.seconds <= DOTNET_MIN_SECONDS || time.seconds < -2_208_988_800 {
        return None;
    }
    Mtime::from_parts(time.seconds, time.nanos)
}

/// A cd2 file record as a listing entry. `None` for a record without a usable name.
pub(crate) fn entry_of(file: &proto::CloudDriveFile) -> Option<Entry> {
    let name = if file.name.is_empty() {
        // Fall back to the last component of the full path.
        file.full_path_name
            .rsplit('/')
            .find(|s| !s.is_empty())?
            .to_owned()
    } else {
        file.name.clone()
    };
    if name.contains('/') || name == "." || name == ".." {
        return None;
    }
    // isDirectory is the field to trust: fileType's Directory is also its default 0.
    let kind = if file.is_directory {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    Some(Entry {
        name,
        kind,
        size: if kind == EntryKind::Dir {
            0
        } else {
            u64::try_from(file.size).unwrap_or(0)
        },
        mtime: mtime_of(file.write_time.as_ref()),
    })
}

/// True when an OK reply to `FindFileByPath` carries no file: cd2 sends an empty
/// record for a missing path in some versions.
pub(crate) fn is_empty_file(file: &proto::CloudDriveFile) -> bool {
    file.name.is_empty() && file.full_path_name.is_empty() && file.id.is_empty()
}

/// Counters of one source, shared by its layers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) listings: AtomicU64,
    pub(crate) lookups: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) transient: AtomicU64,
    pub(crate) logins: AtomicU64,
    pub(crate) outage_signals: AtomicU64,
    /// How long each `GetSubFiles` call took on the wire (its own time, from sending
    /// the request to the last reply), limiter waits excluded.
    pub(crate) listing_latency: Histogram,
}

/// Buckets of a [`Histogram`]: each ~19% wider than the one before (four per doubling),
/// from 100 µs up; the last one takes everything longer than ~10 minutes.
const BUCKETS: usize = 96;

fn bucket_bound(i: usize) -> Duration {
    Duration::from_secs_f64(100e-6 * 2f64.powf(i as f64 / 4.0))
}

/// A latency histogram of fixed logarithmic buckets: constant memory however long a
/// service runs, percentiles within one bucket (~19%), the maximum exact.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    max_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            max_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let i = (0..BUCKETS - 1)
            .find(|&i| d <= bucket_bound(i))
            .unwrap_or(BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.max_nanos
            .fetch_max(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Latency {
        Latency {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            max: Duration::from_nanos(self.max_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// A snapshot of call latencies (see [`CloudDrive::listing_latency`](crate::CloudDrive::listing_latency)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latency {
    buckets: Vec<u64>,
    max: Duration,
}

impl Latency {
    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The calls counted since `earlier` (a snapshot of the same source). The maximum
    /// is this snapshot's, since maxima do not subtract.
    pub fn since(&self, earlier: &Latency) -> Latency {
        Latency {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
            max: self.max,
        }
    }

    /// The latency `p` (0 to 1) of the calls are at or below: the upper bound of its
    /// bucket, never above the maximum. Zero when nothing was counted.
    pub fn percentile(&self, p: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let want = ((total as f64) * p.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return bucket_bound(i).min(self.max);
            }
        }
        self.max
    }

    /// The longest call.
    pub fn max(&self) -> Duration {
        self.max
    }
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, layers: &pps_core::layers::LayerStats) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            listings: get(&self.listings),
            lookups: get(&self.lookups),
            throttled: get(&self.throttled),
            transient: get(&self.transient),
            retries: layers.retries(),
            logins: get(&self.logins),
            outage_signals: get(&self.outage_signals),
            rate_lowered: layers.rate_lowered(),
            limiter_wait: layers.limiter_wait(),
        }
    }
}

/// What one source has done since it was made: every counter only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `GetSubFiles` calls sent (each attempt counts).
    pub listings: u64,
    /// `FindFileByPath` calls sent (each attempt counts).
    pub lookups: u64,
    /// Answers that said the cloud throttled us.
    pub throttled: u64,
    /// Transient failures: unavailable, timed out, stream cut.
    pub transient: u64,
    /// Attempts repeated by the retry layer.
    pub retries: u64,
    /// Logins with user name and password (`GetToken` calls).
    pub logins: u64,
    /// Push messages saying a mount point or cloud account changed
    /// (`MOUNT_POINT_CHANGE`, `CLOUD_API_CHANGE`).
    pub outage_signals: u64,
    /// Times the rate limiter lowered its rate after a throttled answer.
    pub rate_lowered: u64,
    /// Time calls spent waiting for the rate limiter, summed over calls.
    pub limiter_wait: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: Code, msg: &str, phase: Phase) -> (ErrorKind, bool) {
        let e = parse_error(&Status::new(code, msg), phase, "list", "/a", "http://x");
        (e.kind(), e.is_temporary())
    }

    #[test]
    fn statuses_map_to_kinds() {
        use ErrorKind::*;
        let call = Phase::Call;
        assert_eq!(kind(Code::NotFound, "", call), (NotFound, false));
        assert_eq!(
            kind(Code::PermissionDenied, "", call),
            (PermissionDenied, false)
        );
        assert_eq!(
            kind(Code::Unauthenticated, "", call),
            (Unauthenticated, false)
        );
        let t = "http error HttpError: status: 429 Too Many Requests, message: too many requests";
        assert_eq!(kind(Code::Internal, t, call), (Throttled, true));
        assert_eq!(
            kind(Code::Internal, "405 Not Allowed", call),
            (Throttled, true)
        );
        assert_eq!(
            kind(Code::Internal, "disk on fire", call),
            (Unexpected, false)
        );
        assert_eq!(
            kind(Code::Internal, "h2 protocol error", Phase::MidStream),
            (Unavailable, true)
        );
        assert_eq!(kind(Code::Unavailable, "", call), (Unavailable, true));
        assert_eq!(kind(Code::DeadlineExceeded, "", call), (Unavailable, true));
        assert_eq!(kind(Code::Unimplemented, "", call), (Unsupported, false));
    }

    #[test]
    fn unknown_times_are_none() {
        let ts = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert_eq!(mtime_of(None), None);
        assert_eq!(mtime_of(Some(&ts(DOTNET_MIN_SECONDS))), None);
        assert_eq!(
            mtime_of(Some(&ts(1_700_000_000))),
            Some(Mtime::from_nanos(1_700_000_000_000_000_000))
        );
    }

    #[test]
    fn latency_percentiles_fall_in_the_right_bucket() {
        let h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let l = h.snapshot();
        assert_eq!(l.count(), 100);
        let p50 = l.percentile(0.5).as_secs_f64() * 1000.0;
        assert!((50.0..=50.0 * 1.2).contains(&p50), "{p50}");
        assert_eq!(l.percentile(1.0), Duration::from_millis(100));
        assert_eq!(l.max(), Duration::from_millis(100));
        let before = l.clone();
        h.record(Duration::from_secs(3));
        let d = h.snapshot().since(&before);
        assert_eq!(d.count(), 1);
        assert_eq!(d.percentile(0.5), Duration::from_secs(3));
        assert_eq!(Latency::default().percentile(0.5), Duration::ZERO);
    }
}
