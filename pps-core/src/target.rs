//! The scan target: a media server (or a command) that rescans paths on request.

use crate::confirm::{ConfirmPlan, ConfirmRequest, Lookup, Remedy};
use crate::error::{Error, ErrorKind, Result};
use crate::types::Update;
use async_trait::async_trait;
use serde::Serialize;
use std::fmt;

/// What a target can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// True when the target takes file paths with their update type (Emby, Jellyfin);
    /// false when it scans folders only (Plex), so a file change becomes a scan of its
    /// folder.
    pub scans_files: bool,
    /// The most requests one call to [`ScanTarget::scan`] may carry (at least 1).
    pub max_batch: usize,
}

impl Capabilities {
    /// Capabilities of a target that scans folders only, one request per call.
    pub fn folders_only() -> Self {
        Capabilities {
            scans_files: false,
            max_batch: 1,
        }
    }

    /// Capabilities of a target that scans folders only, `max_batch` per call.
    pub fn folders(max_batch: usize) -> Self {
        Capabilities {
            scans_files: false,
            max_batch: max_batch.max(1),
        }
    }

    /// Capabilities of a target that takes file paths, `max_batch` per call.
    pub fn files(max_batch: usize) -> Self {
        Capabilities {
            scans_files: true,
            max_batch: max_batch.max(1),
        }
    }
}

/// A library of a media server: a Plex section, an Emby or Jellyfin virtual folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Library {
    /// The server's id for it (Plex section key, Emby `ItemId`).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The folders it covers, as the server sees them.
    pub locations: Vec<String>,
}

/// One path for the target to rescan, already mapped to the target's view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ScanRequest {
    /// The path as the target sees it (after path mapping, in the target's separator
    /// style).
    pub path: String,
    /// What happened there. Folder-only targets receive `Modified` for a folder whose
    /// content changed and `Created` for a new folder.
    pub update: Update,
    /// Whether the path is a folder.
    pub is_dir: bool,
}

/// What [`ScanTarget::check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetInfo {
    /// Server product and name, e.g. `Plex Media Server "nas"`.
    pub server: String,
    /// Server version when known.
    pub version: Option<String>,
    /// Its libraries with their locations.
    pub libraries: Vec<Library>,
}

/// A media server or command that rescans paths.
///
/// The engine maps, plans and coalesces before calling a target, so an implementation
/// only speaks its protocol. It must never put a credential into an error, a log line or
/// a URL.
#[async_trait]
pub trait ScanTarget: Send + Sync + fmt::Debug {
    /// What the target can take. Constant for the target's life.
    fn capabilities(&self) -> Capabilities;

    /// The target's libraries with their locations, as the server sees them.
    ///
    /// # Behaviour
    /// - Implementations cache and refresh as fits their server (a library added later
    ///   must be found without a restart).
    /// - A target without libraries (stdout, a command) returns an empty list; the
    ///   engine then skips the library-root guard.
    /// - **Unauthenticated** or **permission refused**: a permanent `Err`.
    /// - **Unreachable**, **timeout**, **5xx**: a temporary `Err`.
    async fn libraries(&self) -> Result<Vec<Library>>;

    /// Asks the target to rescan `requests` (at most `max_batch` of them).
    ///
    /// # Behaviour
    /// - Returns one result per request, in order. `Ok` means the target accepted it
    ///   (most servers only queue a scan; acceptance is all pps can know).
    /// - A temporary `Err` (unreachable, 5xx, timeout, throttled) is retried later with
    ///   backoff; a permanent `Err` (401/403, no library holds the path) is parked with
    ///   its message as the reason.
    /// - An empty slice returns an empty vector without contacting the server.
    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>>;

    /// How this target confirms that a scan was indexed ([`crate::confirm`]), or `None`
    /// when it cannot (the default: stdout, a command).
    fn confirm_plan(&self) -> Option<ConfirmPlan> {
        None
    }

    /// Looks for each request's path in the server's libraries.
    ///
    /// # Behaviour
    /// - Returns one result per request, in order. `Ok` with no items means the server
    ///   has no item at the path (or, for a folder, at or below it); pps decides from
    ///   that and the request's update whether the change is indexed or removed.
    /// - Implementations batch: one library query answers many requests.
    /// - A temporary `Err` (unreachable, 5xx) makes pps ask again later, within the
    ///   deadline; a permanent one ends the confirmation as stuck with its message.
    /// - An empty slice returns an empty vector without contacting the server.
    /// - The default answers `Unsupported` for every request.
    async fn confirm(&self, requests: &[ConfirmRequest]) -> Vec<Result<Lookup>> {
        requests
            .iter()
            .map(|_| {
                Err(Error::new(
                    ErrorKind::Unsupported,
                    "this target cannot confirm scans",
                ))
            })
            .collect()
    }

    /// The one bounded remedy for a request still missing: what this server offers to
    /// make it look again (a refresh of the nearest known ancestor, a targeted scan).
    ///
    /// `Ok(Remedy::Busy)` asks to be called again at the next check (the library is
    /// scanning). The default answers `Unsupported`: pps then only waits.
    async fn remedy(&self, request: &ConfirmRequest) -> Result<Remedy> {
        let _ = request;
        Err(Error::new(
            ErrorKind::Unsupported,
            "this target has no remedy for a missing item",
        ))
    }

    /// Reaches the server and reports who it is and what libraries it has.
    ///
    /// The default reports the libraries under the name `"target"`.
    async fn check(&self) -> Result<TargetInfo> {
        Ok(TargetInfo {
            server: "target".to_owned(),
            version: None,
            libraries: self.libraries().await?,
        })
    }
}

/// Builds the per-request results of a call that failed as a whole.
pub fn all_failed(n: usize, err: &Error) -> Vec<Result<()>> {
    (0..n)
        .map(|_| {
            let copy = Error::new(err.kind(), err.message());
            let copy = if err.is_temporary() {
                copy.temporary()
            } else {
                copy.permanent()
            };
            Err(err
                .context()
                .iter()
                .fold(copy, |e, (k, v)| e.with(k, v.clone())))
        })
        .collect()
}

/// The error for a path that no library of the target contains.
pub fn not_in_any_library(path: &str) -> Error {
    Error::new(
        ErrorKind::Rejected,
        "no library of this target contains the path; check the target's path_mapping",
    )
    .permanent()
    .with("path", path)
}
