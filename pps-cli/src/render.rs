//! Reports as text: what the terminal shows. Everything here is a pure function of a
//! report (`pps --json` prints the reports' own JSON instead).

use pps::check::{CheckReport, Landing, RootOutcome, SourceOutcome};
use pps::inspect::LsReport;
use pps::status::StatusReport;
use pps::text::human;
use pps::walk::WalkReport;
use pps_core::Entry;
use std::time::Duration;

/// `1 folder`, `2 folders`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn utc(secs: i64) -> String {
    pps::text::utc_text(secs)
}

pub use pps::text::human_size as size;

fn describe(e: &Entry) -> (String, String, String) {
    let kind = if e.is_dir() { "dir" } else { "file" };
    let sz = if e.is_dir() {
        "-".to_owned()
    } else {
        size(e.size)
    };
    let mt = e.mtime.map_or("unknown".to_owned(), |m| {
        utc(m.as_nanos().div_euclid(1_000_000_000))
    });
    (kind.to_owned(), sz, mt)
}

/// `pps walk`'s text.
pub fn walk(r: &WalkReport) -> String {
    let (p50, p95, max) = r.latency();
    let mut o = String::new();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    o.push_str(&format!(
        "walk of {}{}\n",
        r.root,
        if r.interrupted {
            " (interrupted: figures so far)"
        } else {
            ""
        }
    ));
    o.push_str(&format!(
        "  tree:     {}, {}, {}, deepest level {}, largest folder {} ({})\n",
        plural(r.folders, "folder", "folders"),
        plural(r.files, "file", "files"),
        size(r.bytes),
        r.deepest,
        plural(r.largest.1 as u64, "entry", "entries"),
        r.largest.0
    ));
    o.push_str(&format!(
        "  calls:    {}, {}, {}, {}{}\n",
        plural(r.calls, "listing call", "listing calls"),
        plural(r.throttled, "throttled answer", "throttled answers"),
        plural(r.retries, "retry", "retries"),
        plural(r.failed.len() as u64, "failed folder", "failed folders"),
        if r.errors.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                r.errors
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    o.push_str(&format!(
        "  speed:    {} elapsed, {:.2} calls/s; listing latency p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms{}\n",
        human(r.elapsed),
        r.calls as f64 / secs,
        p50.as_secs_f64() * 1000.0,
        p95.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0,
        if r.wire_latency.is_some() {
            format!(
                " (each call's own time); {} waiting for the rate limit, summed over the {} listings in flight at once (wall time overlaps)",
                human(r.limiter_wait),
                r.concurrency
            )
        } else {
            String::new()
        }
    ));
    if let Some(b) = &r.budget {
        o.push_str(&format!("  budget:   {b}\n"));
    }
    let configured = match r.rate {
        Some(rate) => format!(
            "{} at the configured {rate} calls/s; ",
            human(r.pass_time(rate))
        ),
        None => String::new(),
    };
    o.push_str(&format!(
        "  schedule: one full pass takes {configured}{} at 0.5/s, {} at 1/s, {} at 5/s\n",
        human(r.pass_time(0.5)),
        human(r.pass_time(1.0)),
        human(r.pass_time(5.0))
    ));
    let (quiet, active) = r.calls_per_day();
    o.push_str(&format!(
        "            with interval {} and max_interval {}: {:.0} calls/day when every folder is quiet, {:.0} when every folder is active{}\n",
        human(r.interval),
        human(r.max_interval),
        quiet,
        active,
        match r.rate {
            Some(rate) => format!("; the configured rate allows {:.0}/day", rate * 86_400.0),
            None => String::new(),
        }
    ));
    for (p, e) in &r.failed {
        o.push_str(&format!("  failed:   {p}: {e}\n"));
    }
    o
}

/// A source's health line in `pps status`: reachable or not since when, the error, the
/// rate in force and a throttle pause.
fn source_health(s: &pps::status::SourceStatus) -> String {
    let Some(h) = &s.health else {
        return "  health: not checked yet (`pps run` checks it every 5 s; `pps check` now)\n"
            .to_owned();
    };
    let ago = |t: i64| human(Duration::from_secs(u64::try_from(s.now - t).unwrap_or(0)));
    let mut line = if h.reachable {
        format!(
            "  health: reachable since {} ({} ago)",
            utc(h.since),
            ago(h.since)
        )
    } else {
        format!(
            "  health: UNREACHABLE since {} ({} ago): {}",
            utc(h.since),
            ago(h.since),
            h.error.as_deref().unwrap_or("no answer")
        )
    };
    line.push_str(&format!("; last checked {} ago", ago(h.checked)));
    if h.rate + 1e-9 < s.calls_per_second {
        line.push_str(&format!(
            "; rate in force {:.2}/s, lowered from {}/s after the cloud throttled",
            h.rate, s.calls_per_second
        ));
    } else {
        line.push_str(&format!("; rate in force {}/s", s.calls_per_second));
    }
    if let Some(until) = h.paused_until
        && until > s.now as f64
    {
        line.push_str(&format!(
            "; THROTTLED: every call paused until {}",
            utc(until as i64)
        ));
    }
    line.push('\n');
    line
}

/// `pps status`'s text.
pub fn status(v: &StatusReport) -> String {
    let mut out = format!("store {} ({})\n", v.store, size(v.store_bytes));
    for s in &v.sources {
        let ceilings: Vec<String> = [
            (s.max_calls_per_minute, "a minute"),
            (s.max_calls_per_hour, "an hour"),
            (s.max_calls_per_day, "a day"),
        ]
        .iter()
        .filter_map(|(c, per)| c.map(|c| format!("{c} {per}")))
        .collect();
        out.push_str(&format!(
            "source {}: {} calls in the last hour, {} in the last day (every pps process of this store); rate {}/s = {} a day{}\n",
            s.source,
            s.calls_last_hour,
            s.calls_last_day,
            s.calls_per_second,
            s.budget_per_day,
            if ceilings.is_empty() {
                String::new()
            } else {
                format!(", at most {}", ceilings.join(", "))
            }
        ));
        out.push_str(&source_health(s));
    }
    for w in &v.watches {
        out.push_str(&format!(
            "watch {}: {}{}\n",
            w.watch,
            plural(w.folders, "folder", "folders"),
            if w.baseline { "" } else { " (no baseline yet)" }
        ));
        if v.full_passes {
            out.push_str(&format!(
                "  --watch mode: every pass (each --interval of `pps run`, 10s by default) lists all {} and compares each with its stored listing; no per-folder schedule or call budget applies\n",
                plural(w.folders, "folder", "folders")
            ));
            continue;
        }
        let sc = &w.schedule;
        let next = match sc.next_due_in_s {
            Some(s) if s <= 0 => "now".to_owned(),
            Some(s) => format!("in {}", human(Duration::from_secs(s as u64))),
            None => "-".to_owned(),
        };
        let count = |n: u64, what: &str| {
            if n > 0 {
                format!(", {n} {what}")
            } else {
                String::new()
            }
        };
        out.push_str(&format!(
            "  schedule: {} due now, {} due in the next hour, next {next}, longest interval {}{}{}\n",
            sc.due_now,
            sc.due_next_hour,
            human(Duration::from_secs(sc.longest_interval_s)),
            count(sc.forced, "hinted"),
            count(sc.settling, "settling"),
        ));
        let b = &sc.bands;
        let budget = match (sc.budget_per_day, sc.max_calls_per_day) {
            (Some(r), Some(cap)) => format!(
                " of the {r} the rate allows (spare listings fill it up to an hour short of max_calls_per_day = {cap})"
            ),
            (Some(r), None) => format!(" of the {r} the rate allows (spare listings use the rest)"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  intervals: {} up to 15 min, {} up to 1 h, {} up to 6 h, {} up to a day, {} longer; on course for {} calls a day{budget}\n",
            b.up_to_15m, b.up_to_1h, b.up_to_6h, b.up_to_1d, b.longer, sc.calls_per_day
        ));
        out.push_str(&format!(
            "  found within: a new title in the root {}, a change in the quietest folder {}\n",
            human(Duration::from_secs(sc.delay.new_title_s)),
            human(Duration::from_secs(sc.delay.quietest_s)),
        ));
    }
    for t in &v.targets {
        out.push_str(&format!(
            "target {}: {} pending, {} parked\n",
            t.target, t.pending, t.parked
        ));
        for p in &t.failing_scans {
            let next = match p.next_try_in_s {
                Some(s) if s > 0 => {
                    format!(", next try in {}", human(Duration::from_secs(s as u64)))
                }
                Some(_) => ", next try now".to_owned(),
                None => String::new(),
            };
            out.push_str(&format!(
                "  failing {} ({}): {} after {}{next}\n",
                p.path,
                p.update,
                p.reason.as_deref().unwrap_or(""),
                plural(u64::from(p.attempts), "attempt", "attempts"),
            ));
        }
        for p in &t.parked_scans {
            out.push_str(&format!(
                "  parked {} ({}): {}\n",
                p.path,
                p.update,
                p.reason.as_deref().unwrap_or("")
            ));
        }
        if t.parked > 0 {
            out.push_str(&format!(
                "  (`pps retry {}` queues parked scans again; `pps drop {} [PATH]` gives them up)\n",
                t.target, t.target
            ));
        }
        if let Some(i) = &t.indexed_last_day {
            out.push_str(&format!(
                "  in the library after {} (median), {} at worst: {} in the last day\n",
                human(Duration::from_secs(i.median_s)),
                human(Duration::from_secs(i.worst_s)),
                plural(i.count, "item", "items"),
            ));
        }
        if t.confirming > 0 {
            out.push_str(&format!(
                "  {} sent, not yet in the library (checking)\n",
                plural(t.confirming, "scan", "scans")
            ));
        }
        for s in &t.stuck_scans {
            out.push_str(&format!(
                "  stuck {} ({}): {}\n",
                s.path, s.update, s.reason
            ));
        }
        if t.stuck > 0 {
            out.push_str(&format!(
                "  (`pps retry {}` sends stuck scans again and checks afresh)\n",
                t.target
            ));
        }
    }
    for n in &v.notifiers {
        let last = n.last_sent.map_or("nothing sent yet".to_owned(), |t| {
            format!("last sent {} UTC", utc(t))
        });
        out.push_str(&format!(
            "notifier {} ({}): {} sent, {last}\n",
            n.notifier, n.kind, n.sent
        ));
        if let Some(p) = &n.parked {
            out.push_str(&format!(
                "  PARKED: {p} (fix it, then `pps notify retry {}`)\n",
                n.notifier
            ));
        } else if let Some(e) = &n.last_error {
            out.push_str(&format!(
                "  failing: {e} ({})\n",
                plural(u64::from(n.failures), "failure", "failures")
            ));
        }
    }
    out
}

/// `pps ls`'s text: a header, then one row per entry.
pub fn ls(r: &LsReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}:{}  (watch {}; {})\n",
        r.source,
        r.path,
        r.watch,
        if !r.stored {
            "no stored state: the next pass records it".to_owned()
        } else if r.changes == 0 {
            "unchanged since the last pass".to_owned()
        } else {
            format!(
                "{} a pass would report",
                plural(r.changes as u64, "change", "changes")
            )
        }
    ));
    out.push_str(&format!(
        "{:<9} {:<4} {:>10}  {:<19}  NAME\n",
        "STATE", "KIND", "SIZE", "MTIME (UTC)"
    ));
    for row in &r.rows {
        let (k, s, m) = describe(&row.entry);
        let st = row.state.as_str();
        let n = &row.entry.name;
        out.push_str(&format!("{st:<9} {k:<4} {s:>10}  {m:<19}  {n}\n"));
    }
    out
}

/// `pps check`'s text: a line per source, target and watch, each problem on its own.
pub fn check(r: &CheckReport) -> String {
    let mut out = String::new();
    let (s, t, w) = r.counts;
    out.push_str(&format!(
        "config {}: {}, {}, {}; store {}\n",
        r.file,
        plural(s as u64, "source", "sources"),
        plural(t as u64, "target", "targets"),
        plural(w as u64, "watch", "watches"),
        r.store
    ));
    if let Some(p) = &r.no_watches {
        out.push_str(&format!("problem: {p}\n"));
    }
    for s in &r.sources {
        match &s.outcome {
            SourceOutcome::Local => out.push_str(&format!("source {} (local): ok\n", s.name)),
            SourceOutcome::Ready if s.what.starts_with("clouddrive2") => out.push_str(&format!(
                "source {} ({}): ok, cd2 ready, the token is accepted\n",
                s.name, s.what
            )),
            // OpenList and rclone: "cd2 ready" would name the wrong program.
            SourceOutcome::Ready => out.push_str(&format!(
                "source {} ({}): ok, it answers and accepts pps\n",
                s.name, s.what
            )),
            SourceOutcome::Reachable(notes) => out.push_str(&format!(
                "source {} ({}): reachable, but {}\n",
                s.name,
                s.what,
                notes.join("; ")
            )),
            SourceOutcome::Failed(why) => {
                out.push_str(&format!("source {} ({}): FAILED: {why}\n", s.name, s.what));
            }
        }
    }
    for t in &r.targets {
        match &t.result {
            // A command or stdout: no server, no libraries; any path is taken.
            Ok(info) if info.libraries.is_empty() && info.server == "target" => {
                out.push_str(&format!(
                    "target {} ({}): ok, it takes any path (it has no libraries)\n",
                    t.name, t.kind
                ));
            }
            Ok(info) => {
                out.push_str(&format!(
                    "target {} ({}): ok, {}{}, {}\n",
                    t.name,
                    t.kind,
                    info.server,
                    info.version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default(),
                    plural(info.libraries.len() as u64, "library", "libraries")
                ));
                for l in &info.libraries {
                    out.push_str(&format!(
                        "  {} [{}]: {}\n",
                        l.name,
                        l.id,
                        l.locations.join(", ")
                    ));
                }
            }
            Err(why) => {
                out.push_str(&format!("target {} ({}): FAILED: {why}\n", t.name, t.kind));
            }
        }
    }
    for w in &r.watches {
        out.push_str(&format!(
            "watch {}{}\n",
            w.label,
            if w.line > 0 {
                format!(" (line {})", w.line)
            } else {
                String::new()
            }
        ));
        match &w.root {
            RootOutcome::NotChecked => {
                out.push_str("  source: not checked (the source failed, see above)\n");
            }
            RootOutcome::Listed(n) => out.push_str(&format!(
                "  source: ok, {} at the root\n",
                plural(*n as u64, "entry", "entries")
            )),
            RootOutcome::Failed(e) => out.push_str(&format!("  source: FAILED: {e}\n")),
            RootOutcome::NoSource => {}
        }
        for (t, landing) in &w.targets {
            match landing {
                Landing::Unmapped => out.push_str(&format!("  {t}: the watch root is not mapped (only paths under a rule's `from` reach this target)\n")),
                Landing::Unreached(mapped) => out.push_str(&format!("  {t}: {mapped} (target not reached, see above)\n")),
                Landing::Anywhere(mapped) => out.push_str(&format!("  {t}: {mapped}\n")),
                Landing::NoLibrary(mapped) => out.push_str(&format!("  {t}: WARNING: {mapped} is in no library of {t}; every scan of this watch would be parked (check `path_mapping`, or add the library)\n")),
                Landing::Libraries(mapped, hit) => {
                    let hit: Vec<String> = hit
                        .iter()
                        .map(|(name, id)| format!("\"{name}\" [{id}]"))
                        .collect();
                    out.push_str(&format!("  {t}: {mapped} -> {}\n", hit.join(", ")));
                }
            }
        }
    }
    out
}

/// `pps history` as text: time (UTC), event, target, path, and what was sent or why
/// not; a last line saying how to see the next page when the page is full.
pub fn history(lines: &[pps_core::store::HistoryEntry], limit: usize) -> String {
    if lines.is_empty() {
        return "no history (yet): changes and deliveries appear here as they happen\n".into();
    }
    // Columns padded by the width a terminal shows (a CJK character takes two cells), not
    // by bytes; never narrower than the header.
    let cells = |s: &str| unicode_width::UnicodeWidthStr::width(s);
    let pad = |s: &str, width: usize| format!("{s}{}", " ".repeat(width.saturating_sub(cells(s))));
    let width = lines
        .iter()
        .map(|h| h.target.as_deref().map_or(1, cells))
        .chain([cells("target")])
        .max()
        .unwrap_or(1);
    let mut out = format!(
        "{:<19}  {:<7}  {}  path\n",
        "time (UTC)",
        "event",
        pad("target", width)
    );
    for h in lines {
        let what = match (&h.event, &h.detail) {
            (pps_core::store::Event::Change, _) => match h.origin() {
                // A scan by hand changed nothing, unless the path is gone.
                Some(o @ pps_core::store::Origin::Manual)
                    if h.change.update != pps_core::Update::Deleted =>
                {
                    format!("rescan of the {}, {}", kind(h), origin(o))
                }
                Some(o) => format!("{} {}, {}", h.change.update, kind(h), origin(o)),
                None => format!("{} {}", h.change.update, kind(h)),
            },
            (pps_core::store::Event::Sent, Some(d)) if *d != h.change.path => format!("as {d}"),
            (pps_core::store::Event::Sent, _) => String::new(),
            (pps_core::store::Event::Indexed | pps_core::store::Event::Removed, Some(d)) => {
                match h.took {
                    Some(t) => format!("{d}, {} after the change", human(Duration::from_secs(t))),
                    None => d.clone(),
                }
            }
            (_, Some(d)) => d.clone(),
            (_, None) => String::new(),
        };
        let what = if what.is_empty() {
            what
        } else {
            format!("  ({what})")
        };
        out.push_str(&format!(
            "{}  {:<7}  {}  {}{what}\n",
            utc(h.at.as_secs()),
            h.event.as_str(),
            pad(h.target.as_deref().unwrap_or("-"), width),
            h.change.path,
        ));
    }
    if lines.len() >= limit
        && let Some(last) = lines.last()
    {
        out.push_str(&format!("more: --before {}\n", last.id));
    }
    out
}

/// What made pps look, as a history line says it.
fn origin(o: pps_core::store::Origin) -> &'static str {
    use pps_core::store::Origin;
    match o {
        Origin::Walk => "by a full walk",
        Origin::Poll => "by polling",
        Origin::Spare => "by a spare listing",
        Origin::Push => "by a push event",
        Origin::Webhook => "by a webhook",
        Origin::Manual => "by hand",
    }
}

fn kind(h: &pps_core::store::HistoryEntry) -> &'static str {
    if h.change.is_dir { "folder" } else { "file" }
}
