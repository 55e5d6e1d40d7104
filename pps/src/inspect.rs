//! A folder's live listing beside its stored state: `pps ls`, and the web UI's browser.

use crate::app::App;
use pps_core::{Entry, Error, ErrorKind, Result, Update};

/// How one entry of a folder compares with the stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// The folder has no stored state (never listed): nothing to compare with.
    Unknown,
    /// As stored.
    Same,
    /// Not in the stored state: a pass would report it created.
    New,
    /// Its size or mtime moved: a pass would report it modified.
    Modified,
    /// Stored, no longer listed: a pass would report it deleted.
    Gone,
    /// Left out by the watch's excludes.
    Excluded,
}

impl EntryState {
    /// `same`, `new`, `modified`, `gone`, `excluded` or `unknown`, as `pps ls` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Unknown => "unknown",
            EntryState::Same => "same",
            EntryState::New => "new",
            EntryState::Modified => "modified",
            EntryState::Gone => "gone",
            EntryState::Excluded => "excluded",
        }
    }
}

/// One row of [`LsReport`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct LsRow {
    /// How it compares.
    pub state: EntryState,
    /// The entry (the stored one for a gone entry).
    pub entry: Entry,
    /// The stored entry of that name, when there is one (its mtime beside the live
    /// one says what a pass would see as modified).
    pub stored: Option<Entry>,
}

/// What `pps ls SOURCE:PATH` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LsReport {
    /// The source's name.
    pub source: String,
    /// The folder listed.
    pub path: String,
    /// The watch holding it, `source:root`.
    pub watch: String,
    /// Whether the folder has stored state.
    pub stored: bool,
    /// Changes a pass listing it now would report.
    pub changes: usize,
    /// The live entries the watch keeps, then the gone ones, then the excluded ones.
    pub rows: Vec<LsRow>,
}

/// Lists `SOURCE:PATH` (one call to the source) and compares it with its stored state
/// as a pass would, changing nothing.
pub async fn ls(app: &App, spec: &str) -> Result<LsReport> {
    let (i, path) = app.resolve(spec)?;
    let (wc, w) = &app.watches[i];
    if !app.sources.contains_key(&wc.source) {
        return Err(Error::new(ErrorKind::ConfigInvalid, "unknown source"));
    }
    compare(&app.engine, wc, w, path).await
}

/// Lists `path` of `source` (one call) beside its stored state, inside a watch or not
/// (the web UI's browser): the deepest watch of that source holding the path decides
/// the excludes and the stored state; outside every watch nothing is stored
/// (`unknown`) and the report's `watch` is empty.
pub async fn browse(
    engine: &pps_core::Engine,
    watches: &[(crate::config::WatchConfig, pps_core::Watch)],
    source: &str,
    path: &str,
) -> Result<LsReport> {
    let path = pps_core::path::normalize(path)?;
    let best = watches
        .iter()
        .filter(|(wc, _)| wc.source == source && pps_core::path::is_at_or_under(&path, &wc.path))
        .max_by_key(|(wc, _)| wc.path.len());
    match best {
        Some((wc, w)) => compare(engine, wc, w, path).await,
        None => {
            let wc = crate::config::WatchConfig::new(source, &path, Vec::new())?;
            let w = pps_core::Watch::new(source, &path)?;
            let mut r = compare(engine, &wc, &w, path).await?;
            r.watch.clear();
            Ok(r)
        }
    }
}

async fn compare(
    engine: &pps_core::Engine,
    wc: &crate::config::WatchConfig,
    w: &pps_core::Watch,
    path: String,
) -> Result<LsReport> {
    let cmp = engine.compare(w, &path).await?;
    // By path and by name, so a folder of 20,000 entries costs 20,000 lookups, not
    // 20,000 scans of 20,000.
    let mut changes_at: std::collections::HashMap<&str, Vec<&pps_core::Change>> =
        std::collections::HashMap::new();
    for c in &cmp.changes {
        changes_at.entry(c.path.as_str()).or_default().push(c);
    }
    let stored_by: std::collections::HashMap<&str, &Entry> = cmp
        .stored
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let state_of = |e: &Entry| -> EntryState {
        let p = pps_core::path::join(&path, &e.name);
        let mut s = EntryState::Same;
        for c in changes_at.get(p.as_str()).into_iter().flatten() {
            s = match (c.update, c.is_dir == e.is_dir()) {
                (Update::Created, true) => EntryState::New,
                (Update::Modified, _) => EntryState::Modified,
                (Update::Deleted, true) => EntryState::Gone,
                _ => s,
            };
        }
        s
    };
    let stored_of = |name: &str| stored_by.get(name).map(|e| (*e).clone());
    let mut rows: Vec<LsRow> = cmp
        .live
        .iter()
        .map(|e| LsRow {
            state: if cmp.stored.is_none() {
                EntryState::Unknown
            } else {
                state_of(e)
            },
            entry: e.clone(),
            stored: stored_of(&e.name),
        })
        .collect();
    for e in cmp.stored.iter().flatten() {
        let p = pps_core::path::join(&path, &e.name);
        if changes_at
            .get(p.as_str())
            .into_iter()
            .flatten()
            .any(|c| c.update == Update::Deleted && c.is_dir == e.is_dir())
        {
            rows.push(LsRow {
                state: EntryState::Gone,
                entry: e.clone(),
                stored: Some(e.clone()),
            });
        }
    }
    rows.extend(cmp.excluded.iter().map(|e| LsRow {
        state: EntryState::Excluded,
        entry: e.clone(),
        stored: None,
    }));
    Ok(LsReport {
        source: wc.source.clone(),
        path,
        watch: wc.label(),
        stored: cmp.stored.is_some(),
        changes: cmp.changes.len(),
        rows,
    })
}
