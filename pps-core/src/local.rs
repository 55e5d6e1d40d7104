//! The local filesystem source: a mounted cloud drive, a NAS share, any folder.

use crate::error::{Error, ErrorKind, Result};
use crate::source::{DirectorySource, ListOptions};
use crate::types::{Entry, EntryKind, Mtime};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// Lists folders of the local filesystem.
///
/// - Each listing runs on tokio's blocking pool, never on an async worker: a slow or
///   hung mount stalls one blocking thread, not the engine. Up to eight workers run at
///   once, each draining the queue of waiting listings.
/// - Symbolic links are never followed: a link is reported as a file with its own
///   (`lstat`) size and mtime, so a link loop cannot hang a pass.
/// - Names that are not UTF-8 are skipped with a warning naming their folder, once per
///   folder for the life of the source (pps paths are UTF-8, and a media server would
///   not take them either).
/// - Paths given to [`hiding`](Self::hiding) are never listed: pps's own store files,
///   which change on every pass, would otherwise be reported as changing forever when
///   the store sits inside a watched folder.
/// - mtimes keep nanoseconds. Folder sizes are reported as 0: a directory's own size is
///   a filesystem detail that changes with unrelated churn.
#[derive(Debug, Clone, Default)]
pub struct LocalSource {
    queue: Arc<Queue>,
    /// Folder -> names in it never listed.
    hidden: Arc<HashMap<String, HashSet<String>>>,
}

impl LocalSource {
    /// A local source.
    pub fn new() -> Self {
        LocalSource::default()
    }

    /// The same source, never listing these files (absolute paths; a relative one is
    /// taken from the current folder). Each path's folder is resolved through symbolic
    /// links, so the file is hidden however the watched root reaches it.
    pub fn hiding(mut self, files: impl IntoIterator<Item = std::path::PathBuf>) -> Self {
        let mut hidden: HashMap<String, HashSet<String>> = (*self.hidden).clone();
        for f in files {
            let (Some(parent), Some(name)) = (f.parent(), f.file_name()) else {
                continue;
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let (Ok(dir), Some(name)) = (fs::canonicalize(parent), name.to_str()) else {
                continue;
            };
            if let Some(dir) = dir.to_str() {
                hidden
                    .entry(dir.to_owned())
                    .or_default()
                    .insert(name.to_owned());
            }
        }
        self.hidden = Arc::new(hidden);
        self
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Vec<Entry>>>;

/// Listings waiting for a blocking worker. A round trip to tokio's blocking pool costs
/// more than listing a small cached folder, so each worker drains every request queued
/// while it runs instead of taking one (measured: `benches` `local_handoff`). At most
/// [`WORKERS`] run at once, so listings still proceed side by side and one hung folder
/// holds up only its own worker.
#[derive(Debug, Default)]
struct Queue {
    inner: Mutex<QueueState>,
    /// Folders already warned about for names that are not UTF-8.
    warned: Mutex<HashSet<String>>,
}

#[derive(Debug, Default)]
struct QueueState {
    waiting: VecDeque<(String, Reply)>,
    workers: usize,
}

/// Blocking workers a local source runs at once.
const WORKERS: usize = 8;

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a listing; starts a worker when fewer than [`WORKERS`] run.
    fn push(self: &Arc<Self>, path: String, reply: Reply) {
        let mut st = self.lock();
        st.waiting.push_back((path, reply));
        if st.workers < WORKERS {
            st.workers += 1;
            drop(st);
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.drain());
        }
    }

    fn drain(&self) {
        loop {
            let next = {
                let mut st = self.lock();
                match st.waiting.pop_front() {
                    Some(job) => job,
                    None => {
                        // Decided under the lock: a push that sees `workers` at the
                        // limit is sure to be drained by a worker still running.
                        st.workers -= 1;
                        return;
                    }
                }
            };
            let (path, reply) = next;
            // A caller that went away (a cancelled pass) does not want the result.
            if !reply.is_closed() {
                let mut skipped = Vec::new();
                let result = list_folder(&path, &mut skipped);
                if !skipped.is_empty()
                    && self
                        .warned
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(path.clone())
                {
                    tracing::warn!(folder = %path, names = ?skipped, "skipping names that are not UTF-8 (said once per folder)");
                }
                let _ = reply.send(result);
            }
        }
    }
}

fn io_error(err: std::io::Error, op: &'static str, path: &str) -> Error {
    // ENOTDIR (20 on Linux and macOS): the path exists but is a file, so there is no
    // folder to list there.
    let not_a_dir = err.raw_os_error() == Some(20);
    let e = if not_a_dir {
        Error::new(ErrorKind::NotFound, "not a folder").set_source(err)
    } else {
        Error::from(err)
    };
    let e = match e.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied => e.permanent(),
        _ => e,
    };
    e.with("operation", op).with("path", path)
}

fn entry_of(name: String, meta: &fs::Metadata) -> Entry {
    let kind = if meta.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    let size = if kind == EntryKind::Dir {
        0
    } else {
        meta.len()
    };
    let mtime = meta.modified().ok().and_then(Mtime::from_system_time);
    Entry {
        name,
        kind,
        size,
        mtime,
    }
}

/// Lists one folder synchronously (the blocking half of [`LocalSource::list`]); names
/// that are not UTF-8 are left out.
pub fn list_blocking(path: &str) -> Result<Vec<Entry>> {
    list_folder(path, &mut Vec::new())
}

/// [`list_blocking`], collecting the names left out for not being UTF-8 in `skipped`.
fn list_folder(path: &str, skipped: &mut Vec<std::ffi::OsString>) -> Result<Vec<Entry>> {
    let dir = fs::read_dir(path).map_err(|e| io_error(e, "list", path))?;
    let mut out = Vec::new();
    for item in dir {
        let item = item.map_err(|e| io_error(e, "list", path))?;
        let name = match item.file_name().into_string() {
            Ok(n) => n,
            Err(raw) => {
                skipped.push(raw);
                continue;
            }
        };
        // DirEntry::metadata does not follow symlinks (fstatat with
        // AT_SYMLINK_NOFOLLOW on Unix).
        match item.metadata() {
            Ok(meta) => out.push(entry_of(name, &meta)),
            // Removed between readdir and stat: it is gone, leave it out.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e, "list", path).with("entry", name)),
        }
    }
    Ok(out)
}

#[async_trait]
impl DirectorySource for LocalSource {
    async fn list(&self, path: &str, _options: ListOptions) -> Result<Vec<Entry>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.push(path.to_owned(), tx);
        let mut entries = rx.await.map_err(|_| {
            Error::new(ErrorKind::Unexpected, "the listing worker stopped").with("path", path)
        })??;
        if let Some(names) = self
            .hidden
            .get(path.trim_end_matches('/'))
            .or_else(|| self.hidden.get(path))
        {
            entries.retain(|e| !names.contains(&e.name));
        }
        Ok(entries)
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let owned = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let meta = fs::symlink_metadata(&owned).map_err(|e| io_error(e, "stat", &owned))?;
            let name = Path::new(&owned)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".to_owned());
            Ok(entry_of(name, &meta))
        })
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Unexpected, format!("stat task failed: {e}")).with("path", path)
        })?
    }
}
