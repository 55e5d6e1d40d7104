//! The activity history: `pps history`, `Scanner.history()` and the web UI's activity
//! page read it here, with the filters users type (`--since 1h`, `--target plex`).

use crate::app::App;
use pps_core::store::{Event, HistoryEntry, HistoryQuery};
use pps_core::{Error, ErrorKind, Result, Timestamp};
use std::time::Duration;

/// Filters as a user gives them; every one optional.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only this target's deliveries (a target of the config).
    pub target: Option<String>,
    /// Only lines whose path contains this text.
    pub path: Option<String>,
    /// Only lines of the last `since` (`1h`, `2d`).
    pub since: Option<Duration>,
    /// Only these events, by name (`change`, `sent`, `retried`, `parked`, `dropped`).
    pub events: Vec<String>,
    /// Only lines older than this id (the next page).
    pub before: Option<i64>,
    /// At most this many lines (default 100).
    pub limit: Option<usize>,
}

/// Reads the history, newest first.
///
/// # Errors
/// `ConfigInvalid` naming the option when a target or an event is unknown; store
/// failures.
pub fn history(app: &App, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>> {
    if let Some(t) = &filter.target
        && app.config.file.is_some()
    {
        // A typo would otherwise read as "nothing happened". (With `--store` alone the
        // targets are not known.)
        app.target_named(t)
            .map_err(|e| e.with("option", "--target"))?;
    }
    let mut events = Vec::new();
    for name in &filter.events {
        let e = Event::parse(name).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "no event `{name}`; one of: {}",
                    Event::ALL.map(Event::as_str).join(", ")
                ),
            )
            .with("option", "--event")
        })?;
        events.push(e);
    }
    // The store stamps lines with the wall clock, so `since` counts back from it too.
    let since = filter.since.map(|d| {
        pps_core::Clock::now(&pps_core::SystemClock)
            .minus(d)
            .max(Timestamp::from_secs(0))
    });
    app.engine.store().history(&HistoryQuery {
        target: filter.target.clone(),
        path: filter.path.clone().filter(|p| !p.is_empty()),
        events,
        source: None,
        since,
        before: filter.before,
        limit: filter.limit.unwrap_or(100),
    })
}

/// One history line as JSON: what `pps history --json` prints a line of and
/// `Scanner.history()` returns a dict of.
pub fn to_json(h: &HistoryEntry) -> serde_json::Value {
    serde_json::json!({
        "id": h.id,
        "at": h.at.as_secs(),
        "event": h.event.as_str(),
        "source": h.watch.as_ref().map(|w| &w.0),
        "watch": h.watch.as_ref().map(|w| &w.1),
        "target": h.target,
        "path": h.change.path,
        "update": h.change.update.as_str(),
        "is_dir": h.change.is_dir,
        "detail": h.detail,
        "origin": h.origin().map(pps_core::store::Origin::as_str),
        "took_s": h.took,
    })
}
