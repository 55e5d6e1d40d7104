//! The last lines the process logged, for the web UI's log page: a `tracing` layer
//! that keeps the newest [`KEEP`] events in memory, each with a sequence number so a
//! reader can ask for what came after the line it saw last.
//!
//! The layer sees what the process's filter lets through (what stderr shows). The
//! lines hold what the log holds and nothing more: secrets never reach a log line in
//! pps (they are redacted where they are formatted), so none reach this buffer.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Lines kept: at about 200 bytes a line, under half a megabyte.
pub const KEEP: usize = 2000;

/// The longest line kept, in bytes; a longer one is cut (a webhook can name a path of
/// a megabyte, and 2,000 such lines would be 2 GB).
pub const LINE_BYTES: usize = 4096;

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its place in the process's log, from 1.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Its level.
    pub level: Level,
    /// The module that logged it.
    pub target: String,
    /// The message, then its fields as `key=value`.
    pub text: String,
}

impl LogLine {
    /// `2026-12-04T01:02:03.456Z INFO  pps::service: message key=value`, as a downloaded
    /// log shows it.
    pub fn to_text(&self) -> String {
        format!(
            "{}.{:03}Z {:<5} {}: {}",
            crate::text::utc_text(self.at_ms.div_euclid(1000)).trim_end_matches('Z'),
            self.at_ms.rem_euclid(1000),
            self.level,
            self.target,
            self.text
        )
    }
}

struct Ring {
    lines: VecDeque<LogLine>,
    next: u64,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    lines: VecDeque::new(),
    next: 1,
});

/// The layer that fills the buffer; add it to the process's subscriber.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogLayer;

/// The layer that fills the buffer.
pub fn layer() -> LogLayer {
    LogLayer
}

struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let meta = event.metadata();
        push(*meta.level(), meta.target(), f.message + &f.rest, at_ms);
    }
}

fn push(level: Level, target: &str, text: String, at_ms: i64) {
    let text = clip(text);
    let mut ring = RING.lock().unwrap_or_else(PoisonError::into_inner);
    let seq = ring.next;
    ring.next += 1;
    if ring.lines.len() == KEEP {
        ring.lines.pop_front();
    }
    ring.lines.push_back(LogLine {
        seq,
        at_ms,
        level,
        target: target.to_owned(),
        text,
    });
}

/// How a text log line (stderr) writes an event's fields: each one cut and escaped as
/// the log page keeps it ([`LINE_BYTES`], control characters shown escaped). A newline
/// or an escape sequence in a path a webhook sent cannot forge a line or colour a
/// terminal, and a megabyte path is not a megabyte line. (JSON lines escape already.)
pub fn text_fields()
-> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let v = clip(format!("{value:?}"));
        if field.name() == "message" {
            write!(w, "{v}")
        } else {
            write!(w, "{}={v}", field.name())
        }
    })
    .delimited(" ")
}

/// `text` cut to [`LINE_BYTES`] on a character boundary, with control characters
/// (a newline in a path) shown escaped so one event stays one line.
fn clip(text: String) -> String {
    let needs_escape = text.chars().any(char::is_control);
    if text.len() <= LINE_BYTES && !needs_escape {
        return text;
    }
    let mut out = String::with_capacity(text.len().min(LINE_BYTES + 16));
    for c in text.chars() {
        if out.len() >= LINE_BYTES {
            out.push_str(" …(cut)");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The kept lines after `seq` at `level` or more severe, oldest first, at most `limit`
/// (the newest ones when there are more).
pub fn after(seq: u64, level: Level, limit: usize) -> Vec<LogLine> {
    let ring = RING.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out: Vec<LogLine> = ring
        .lines
        .iter()
        .rev()
        .filter(|l| l.seq > seq && l.level <= level)
        .take(limit)
        .cloned()
        .collect();
    out.reverse();
    out
}

/// A level from its name (`error`, `warn`, `info`, `debug`, `trace`).
pub fn level(name: &str) -> Option<Level> {
    name.parse().ok()
}

/// Logs what a pass did: a baseline and changes at info, a quiet pass at debug, each
/// folder that failed at warn.
pub fn log_pass(report: &pps_core::PassReport) {
    if report.baseline {
        tracing::info!(watch = %report.watch, folders = report.folders_listed, elapsed_ms = report.elapsed.as_millis() as u64, "baseline recorded; changes from now on will be scanned");
    } else if report.changes.is_empty() {
        tracing::debug!(watch = %report.watch, folders = report.folders_listed, elapsed_ms = report.elapsed.as_millis() as u64, "pass: no change");
    } else {
        tracing::info!(watch = %report.watch, folders = report.folders_listed, changes = report.changes.len(), scans = report.scans_queued, elapsed_ms = report.elapsed.as_millis() as u64, "pass found changes");
    }
    for e in &report.errors {
        tracing::warn!(watch = %report.watch, error = %e, "folder not listed; it keeps its old state");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_huge_or_multi_line_message_is_one_bounded_line() {
        // Attack review item 6: 150 webhooks naming 1 MB paths took the process from
        // 12 MB to 180 MB through this ring.
        let huge = "x".repeat(1_000_000);
        let cut = clip(format!("path={huge}"));
        assert!(cut.len() <= LINE_BYTES + 16, "{}", cut.len());
        assert!(cut.ends_with("…(cut)"));
        assert_eq!(clip("a\nb".into()), "a\\nb");
        assert_eq!(clip("plain".into()), "plain");
        let multibyte = "沙".repeat(5000);
        assert!(
            clip(multibyte).len() <= LINE_BYTES + 16,
            "cut on a character boundary"
        );
    }

    /// Attack review item 9 (and 6): a path a webhook sent, with a newline and an escape
    /// sequence, forged a line on stderr; a 1 MB path made a 1 MB line.
    #[test]
    fn a_text_log_line_stays_one_bounded_line_whatever_a_path_holds() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(text_fields())
            .with_writer(move || sink.clone())
            .finish();
        let forged = "/tv/x\n2026-12-05T00:00:00Z ERROR pps: forged line\u{1b}[31m";
        let huge = "y".repeat(1_000_000);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(path = %forged, "webhook: hint queued");
            tracing::warn!("no watch holds {huge}");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:.500}");
        assert!(!text.contains('\u{1b}'), "{text:.500}");
        assert!(
            lines[0].ends_with("webhook: hint queued path=/tv/x\\n2026-12-05T00:00:00Z ERROR pps: forged line\\u{1b}[31m"),
            "{}",
            lines[0]
        );
        assert!(lines[1].len() < LINE_BYTES + 100, "{}", lines[1].len());
    }

    #[test]
    fn lines_are_kept_in_order_filtered_and_bounded() {
        let subscriber = tracing_subscriber::registry().with(layer());
        let start = after(0, Level::TRACE, usize::MAX)
            .last()
            .map_or(0, |l| l.seq);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(watch = "nas:/tv", folders = 3, "pass found changes");
            tracing::warn!(error = %"timed out", "folder not listed");
        });
        let mine = after(start, Level::TRACE, usize::MAX);
        assert_eq!(mine.len(), 2);
        assert_eq!(mine[0].text, "pass found changes watch=nas:/tv folders=3");
        assert!(
            mine[1]
                .to_text()
                .contains("WARN  pps::logs::tests: folder not listed error=timed out")
        );
        let warn = after(start, Level::WARN, usize::MAX);
        assert_eq!(warn.len(), 1);
        assert_eq!(
            after(start, Level::TRACE, 1),
            vec![mine[1].clone()],
            "the newest"
        );
        for i in 0..KEEP + 10 {
            push(Level::DEBUG, "t", format!("{i}"), 0);
        }
        let all = after(0, Level::TRACE, usize::MAX);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all.last().unwrap().text, format!("{}", KEEP + 9));
    }
}
