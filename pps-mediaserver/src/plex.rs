//! The Plex Media Server target.
//!
//! A scan is `GET /library/sections/{key}/refresh?path=<folder>` for every section
//! whose location contains the folder; Plex only queues it and answers 200.

use crate::http::{self, Http, LibraryCache, Pacer, Service};
use async_trait::async_trait;
use pps_core::mapping::target_parent;
use pps_core::target::not_in_any_library;
use pps_core::{
    Capabilities, Error, ErrorKind, Library, Result, ScanRequest, ScanTarget, Secret, TargetInfo,
    Update,
};
use reqwest::Method;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How to reach a Plex Media Server. As read from a `[targets.NAME]` table of kind
/// `plex` (every key but `kind`, `path_mapping` and `scan_files`), with the defaults of
/// [`PlexConfig::default`]; durations are text (`"1s"`).
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlexConfig {
    /// Base URL, e.g. `http://nas:32400` (a path prefix such as a reverse proxy's
    /// `/plex` is kept). No user, password or query: the token has its own field.
    pub url: String,
    /// The server owner's `X-Plex-Token`; a shared user's token cannot start scans.
    pub token: Secret,
    /// The least time between two scan requests, so a burst of changes does not
    /// hammer the server. Zero sends without waiting.
    #[serde(deserialize_with = "pps_core::duration::serde")]
    pub pacing: Duration,
    /// How long the section list is trusted before it is read again. A path that no
    /// cached section contains re-reads it at once, whatever this says.
    #[serde(deserialize_with = "pps_core::duration::serde")]
    pub sections_ttl: Duration,
    /// The longest one HTTP request may take.
    #[serde(deserialize_with = "pps_core::duration::serde")]
    pub timeout: Duration,
}

impl Default for PlexConfig {
    /// No URL or token yet; pacing 1 s, section TTL 5 min, timeout 30 s.
    fn default() -> Self {
        PlexConfig {
            url: String::new(),
            token: Secret::default(),
            pacing: Duration::from_secs(1),
            sections_ttl: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
        }
    }
}

impl PlexConfig {
    /// A config with the default pacing (1 s), section TTL (5 min) and timeout (30 s).
    pub fn new(url: impl Into<String>, token: impl Into<Secret>) -> Self {
        PlexConfig {
            url: url.into(),
            token: token.into(),
            ..PlexConfig::default()
        }
    }

    /// Checks every value; a mistake is a `ConfigInvalid` error naming the key.
    pub fn validate(&self) -> Result<()> {
        crate::http::check_url_key(&self.url, "url")?;
        crate::http::require(&self.token, "token")?;
        crate::http::positive(self.timeout, "timeout")
    }
}

impl fmt::Debug for PlexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlexConfig")
            .field("url", &pps_core::secret::redact_url(&self.url))
            .field("token", &self.token)
            .field("pacing", &self.pacing)
            .field("sections_ttl", &self.sections_ttl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A Plex Media Server as a scan target.
///
/// Folders only, one request per call: a file becomes its parent folder, and each folder
/// is sent to every section whose location contains it (4K and HD sections over one
/// folder both rescan), matched on whole path components. A folder that is a section's
/// root is never scanned because of a change below it. Requests are paced; `force=1` is
/// never sent.
pub struct PlexTarget {
    http: Http,
    pacer: Pacer,
    sections: LibraryCache,
    /// Set once the server answered 405 to a GET refresh: the published API lists POST,
    /// every known server takes GET, so GET is tried first.
    use_post: AtomicBool,
}

impl fmt::Debug for PlexTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlexTarget")
            .field("url", &self.http.shown_base())
            .field("pacer", &self.pacer)
            .finish_non_exhaustive()
    }
}

/// `{"MediaContainer": {...}}`, the envelope of every Plex JSON reply.
#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(rename = "MediaContainer")]
    container: T,
}

#[derive(Deserialize)]
struct SectionList {
    #[serde(rename = "Directory", default)]
    directories: Vec<Directory>,
}

#[derive(Deserialize)]
struct Directory {
    /// A string in JSON today; a number is accepted too in case a version changes it.
    key: serde_json::Value,
    #[serde(default)]
    title: String,
    #[serde(rename = "Location", default)]
    locations: Vec<Location>,
}

#[derive(Deserialize)]
struct Location {
    path: String,
}

#[derive(Deserialize)]
struct ServerRoot {
    #[serde(rename = "friendlyName", default)]
    friendly_name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

/// The folder Plex must scan for a request, and whether it is the request's own path or
/// one walked up to (a file, or a deleted folder, scans its parent).
fn scan_folder(req: &ScanRequest) -> Result<(String, bool)> {
    // Plex scans folders only: given a file path it tries to open it as a folder and
    // fails. A deleted folder cannot be opened either; its parent notices the loss.
    if req.is_dir && req.update != Update::Deleted {
        return Ok((req.path.clone(), false));
    }
    match target_parent(&req.path) {
        Some(parent) => Ok((parent, true)),
        None => Err(Error::new(
            ErrorKind::Rejected,
            "a root has no parent folder for Plex to scan",
        )
        .permanent()
        .with("path", req.path.clone())),
    }
}

impl PlexTarget {
    /// Checks the config and builds the client. Contacts nobody.
    ///
    /// A bad URL or an empty token is a `ConfigInvalid` error naming the key (`url`,
    /// `token`).
    pub fn new(config: PlexConfig) -> Result<Self> {
        config.validate()?;
        let http = Http::new(
            Service::Plex,
            &config.url,
            "url",
            config.token,
            config.timeout,
        )?;
        Ok(PlexTarget {
            http,
            pacer: Pacer::new(config.pacing),
            sections: LibraryCache::new(config.sections_ttl),
            use_post: AtomicBool::new(false),
        })
    }

    async fn fetch_sections(&self) -> Result<Vec<Library>> {
        let list: Envelope<SectionList> = self
            .http
            .get_json("/library/sections", "list sections")
            .await?;
        let mut out = Vec::new();
        for dir in list.container.directories {
            let id = match dir.key {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    tracing::warn!(key = %other, "skipping a Plex section with an unusable key");
                    continue;
                }
            };
            out.push(Library {
                id,
                name: dir.title,
                locations: dir.locations.into_iter().map(|l| l.path).collect(),
            });
        }
        Ok(out)
    }

    async fn sections(&self, force: bool) -> Result<Arc<Vec<Library>>> {
        self.sections.get(force, || self.fetch_sections()).await
    }

    /// One paced refresh request for `folder` in section `key`.
    async fn refresh(&self, key: &str, folder: &str) -> Result<()> {
        // The key comes from the server; encode it as a path segment all the same.
        let mut url = self.http.url("/library/sections");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(key).push("refresh");
        }
        // Form encoding: `/` to %2F, space to `+`, `&` to %26. Never `force=1`: it
        // refreshes the metadata of the whole section.
        url.query_pairs_mut().append_pair("path", folder);
        let with_context = |e: Error| {
            e.with("operation", "refresh")
                .with_default("section", key)
                .with_default("path", folder)
        };
        self.pacer.wait().await;
        let method = if self.use_post.load(Ordering::Relaxed) {
            Method::POST
        } else {
            Method::GET
        };
        match self
            .http
            .send(method.clone(), url.clone(), None, "refresh")
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if method == Method::GET && e.context_value("status") == Some("405") => {
                tracing::info!("Plex refused GET for a refresh; switching to POST");
                self.use_post.store(true, Ordering::Relaxed);
                self.pacer.wait().await;
                self.http
                    .send(Method::POST, url, None, "refresh")
                    .await
                    .map(|_| ())
                    .map_err(with_context)
            }
            Err(e) => Err(with_context(e)),
        }
    }

    /// Scans one request; `reread` records whether this call already re-read the
    /// sections (at most once per call, however many misses it has).
    async fn scan_one(
        &self,
        req: &ScanRequest,
        libs: &mut Arc<Vec<Library>>,
        reread: &mut bool,
        sent: &mut HashSet<(String, String)>,
    ) -> Result<()> {
        let (folder, walked_up) = scan_folder(req)?;
        if http::containing(libs, &folder).is_empty() && !*reread {
            // A library added since the last read: re-read before giving up.
            *reread = true;
            *libs = self.sections(true).await?;
        }
        let mut done: Vec<String> = Vec::new();
        let mut failures: Vec<Error> = Vec::new();
        let mut guarded: Vec<String> = Vec::new();
        let mut queue: Vec<Library> = http::containing(libs, &folder)
            .into_iter()
            .cloned()
            .collect();
        let mut retried_404 = false;
        while let Some(section) = queue.pop() {
            if done.contains(&section.id) {
                continue;
            }
            // Never a whole section because of a change below its root. A folder
            // deleted directly in the root (a show removed from a TV section) is
            // scanned as its own path instead: Plex scans a path that is gone and
            // drops what it held there. A file there has no folder of its own to scan.
            let scan_path = if walked_up && http::is_root_of(&section, &folder) {
                if req.is_dir && req.update == Update::Deleted {
                    req.path.clone()
                } else {
                    guarded.push(section.name.clone());
                    continue;
                }
            } else {
                folder.clone()
            };
            let key = (section.id.clone(), scan_path.clone());
            if sent.contains(&key) {
                // Two files of one folder in one call: Plex rescans the folder once.
                done.push(section.id.clone());
                continue;
            }
            match self.refresh(&section.id, &scan_path).await {
                Ok(()) => {
                    done.push(section.id.clone());
                    sent.insert(key);
                }
                Err(e) if e.kind() == ErrorKind::NotFound && !retried_404 => {
                    // The section may have been deleted or re-created under a new key:
                    // re-read once, then scan whatever sections hold the folder now.
                    retried_404 = true;
                    if !*reread {
                        *reread = true;
                        *libs = self.sections(true).await?;
                    }
                    queue = http::containing(libs, &folder)
                        .into_iter()
                        .filter(|l| !done.contains(&l.id))
                        .cloned()
                        .collect();
                    if queue.is_empty() && done.is_empty() {
                        return Err(not_in_any_library(&folder));
                    }
                }
                // A section 404 that survives a re-read is a server-side hiccup (Plex
                // answers 404 while a section is being created): worth retrying.
                Err(e) if e.kind() == ErrorKind::NotFound => failures.push(e.temporary()),
                Err(e) => failures.push(e),
            }
        }
        if let Some(err) = pick_failure(failures) {
            return Err(err);
        }
        if done.is_empty() {
            if guarded.is_empty() {
                tracing::warn!(path = %folder, "no Plex section contains the path");
                return Err(not_in_any_library(&folder));
            }
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "the file is directly in the root of section {:?}, and Plex scans folders \
                     only; pps never scans a whole section for it (scan that section by hand \
                     if needed)",
                    guarded.join(", ")
                ),
            )
            .permanent()
            .with("path", req.path.clone()));
        }
        Ok(())
    }
}

/// Of several section failures for one folder, the one to report: a temporary one if
/// any (a retry redoes them all, and rescanning a section twice is harmless), else the
/// first.
fn pick_failure(mut failures: Vec<Error>) -> Option<Error> {
    let idx = failures.iter().position(Error::is_temporary).unwrap_or(0);
    if failures.is_empty() {
        None
    } else {
        Some(failures.swap_remove(idx))
    }
}

#[async_trait]
impl ScanTarget for PlexTarget {
    fn capabilities(&self) -> Capabilities {
        Capabilities::folders_only()
    }

    async fn libraries(&self) -> Result<Vec<Library>> {
        Ok(self.sections(false).await?.as_ref().clone())
    }

    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let mut libs = match self.sections(false).await {
            Ok(libs) => libs,
            Err(e) => return pps_core::target::all_failed(requests.len(), &e),
        };
        let mut reread = false;
        let mut sent = HashSet::new();
        let mut out = Vec::with_capacity(requests.len());
        for req in requests {
            out.push(self.scan_one(req, &mut libs, &mut reread, &mut sent).await);
        }
        out
    }

    async fn check(&self) -> Result<TargetInfo> {
        // `/` needs the token, so one request proves reachability and authentication.
        let root: Envelope<ServerRoot> = self.http.get_json("/", "identify").await?;
        let name = root.container.friendly_name.unwrap_or_default();
        Ok(TargetInfo {
            server: format!("Plex Media Server {name:?}"),
            version: root.container.version,
            libraries: self.sections(true).await?.as_ref().clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, update: Update, is_dir: bool) -> ScanRequest {
        ScanRequest {
            path: path.into(),
            update,
            is_dir,
        }
    }

    #[test]
    fn files_and_deleted_folders_scan_their_parent() {
        let cases = [
            (
                req("/tv/Show/S01", Update::Created, true),
                "/tv/Show/S01",
                false,
            ),
            (
                req("/tv/Show/S01", Update::Modified, true),
                "/tv/Show/S01",
                false,
            ),
            (req("/tv/Show/S01", Update::Deleted, true), "/tv/Show", true),
            (
                req("/tv/Show/S01/e1.mkv", Update::Created, false),
                "/tv/Show/S01",
                true,
            ),
            (
                req("D:\\TV\\Show\\e1.mkv", Update::Deleted, false),
                "D:\\TV\\Show",
                true,
            ),
        ];
        for (r, folder, walked) in cases {
            assert_eq!(
                scan_folder(&r).unwrap(),
                (folder.to_owned(), walked),
                "{r:?}"
            );
        }
        assert!(scan_folder(&req("/", Update::Deleted, true)).is_err());
    }

    #[test]
    fn config_debug_hides_the_token() {
        let cfg = PlexConfig::new("http://nas:32400", "tok-123456");
        let debug = format!("{cfg:?}");
        assert!(
            debug.contains("nas:32400") && !debug.contains("tok-123456"),
            "{debug}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_configured_pacing_spaces_refreshes() {
        // HTTP cannot run under paused time (an idle runtime jumps to the request
        // timeout), so this checks the pacer the refreshes wait on, as configured.
        let mut cfg = PlexConfig::new("http://nas:32400", "t");
        cfg.pacing = Duration::from_millis(1500);
        let plex = PlexTarget::new(cfg).unwrap();
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            plex.pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(3000));
        assert_eq!(
            PlexConfig::new("http://x", "t").pacing,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let err = PlexTarget::new(PlexConfig::new("nas:32400", "t")).unwrap_err();
        assert_eq!(err.context_value("key"), Some("url"));
        let err = PlexTarget::new(PlexConfig::new("http://nas:32400", "")).unwrap_err();
        assert_eq!(err.context_value("key"), Some("token"));
    }
}
