//! The directory source: where folder listings come from.

use crate::error::Result;
use crate::types::Entry;
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use std::fmt;

/// How to list a folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// Ask the source to bypass its own cache (cd2's `forceRefresh`). pps sets it only
    /// where it has a reason to: a push hint or a user's explicit scan. Sources without
    /// a cache ignore it.
    pub force_refresh: bool,
}

impl ListOptions {
    /// Options with `force_refresh` set.
    pub fn force_refresh() -> Self {
        ListOptions {
            force_refresh: true,
        }
    }
}

/// A hint that something changed at a path, from a source's push channel (cd2's
/// `PushMessage`). Hints only make folders due sooner; the listing comparison decides
/// what changed, so a lost, late or wrong hint costs latency, never correctness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The path the event names (for a rename, the old path).
    pub path: String,
    /// For a rename, the new path.
    pub new_path: Option<String>,
    /// Whether the event says the path is a folder.
    pub is_dir: bool,
}

/// A source of folder listings: the local filesystem, CloudDrive2, or anything that can
/// list a folder.
///
/// Paths are absolute source paths (see [`crate::path`]). Implementations must be cheap
/// to share (`Arc<dyn DirectorySource>`) and safe to call concurrently; the engine
/// bounds the concurrency, layers bound the rate.
#[async_trait]
pub trait DirectorySource: Send + Sync + fmt::Debug {
    /// Lists the direct children of the folder at `path`.
    ///
    /// # Behaviour
    /// - **Empty folder**: `Ok` with no entries.
    /// - **Missing path**: `Err` of kind [`NotFound`](crate::ErrorKind::NotFound).
    ///   A path that is a file is also `NotFound` (there is no folder there).
    /// - **Permission refused**: `Err` of kind
    ///   [`PermissionDenied`](crate::ErrorKind::PermissionDenied), for this folder only.
    /// - **Unknown mtime**: the entry's `mtime` is `None`; never the epoch, year 1 or
    ///   any other sentinel.
    /// - **Throttled**: `Err` of kind [`Throttled`](crate::ErrorKind::Throttled),
    ///   temporary.
    /// - **Transient failure** (timeout, connection cut, stream cut mid-listing): `Err`
    ///   of kind [`Unavailable`](crate::ErrorKind::Unavailable), temporary. A listing is
    ///   never returned half-read: either every child or an error.
    /// - Entries come in any order, each name once; names that cannot be represented
    ///   (not UTF-8) are skipped with a warning naming the folder. Symbolic links are
    ///   reported as files and never followed.
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>>;

    /// Looks up one path.
    ///
    /// # Behaviour
    /// - **Existing file or folder**: `Ok` with its entry (`name` is the last component;
    ///   for `/` it is `/`).
    /// - **Missing path**: `Err` of kind [`NotFound`](crate::ErrorKind::NotFound).
    /// - **Permission refused**, **throttled**, **transient failure**: as for
    ///   [`list`](Self::list).
    /// - **Unknown mtime**: `mtime` is `None`.
    async fn stat(&self, path: &str) -> Result<Entry>;

    /// A stream of change hints, when the source has a push channel. `None` (the
    /// default) means "poll only". The stream reconnects by itself and ends only when
    /// the source is dropped or the server has no push.
    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        None
    }
}
