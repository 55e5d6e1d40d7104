//! The Plex Media Server target.
//!
//! A scan is `GET /library/sections/{key}/refresh?path=<folder>` for every section
//! whose location contains the folder; Plex only queues it and answers 200.

use crate::http::{self, Http, LibraryCache, Pacer, Service};
use async_trait::async_trait;
use pps_core::confirm::same_or_below;
use pps_core::mapping::target_parent;
use pps_core::target::not_in_any_library;
use pps_core::{
    Capabilities, ConfirmPlan, ConfirmRequest, Error, ErrorKind, Item, Library, Lookup, Remedy,
    Result, ScanRequest, ScanTarget, Secret, TargetInfo, Update,
};
use reqwest::Method;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
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
    /// Per section key: its type (`movie`, `show`, `artist`) and whether it was
    /// scanning when the sections were last read.
    kinds: std::sync::Mutex<HashMap<String, (String, bool)>>,
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
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    refreshing: bool,
    #[serde(rename = "Location", default)]
    locations: Vec<Location>,
}

/// `/library/sections/{key}/all` and `/library/metadata/{id}`.
#[derive(Deserialize)]
struct MetadataList {
    #[serde(rename = "Metadata", default)]
    metadata: Vec<Metadata>,
}

/// One library item: only what a confirmation reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    rating_key: serde_json::Value,
    #[serde(default)]
    title: String,
    #[serde(default)]
    grandparent_title: Option<String>,
    #[serde(default)]
    parent_index: Option<i64>,
    #[serde(default)]
    index: Option<i64>,
    #[serde(default)]
    year: Option<i64>,
    #[serde(rename = "type", default)]
    kind: String,
    /// Set on an item in the trash (its file is gone, the trash not yet emptied).
    #[serde(default)]
    deleted_at: Option<i64>,
    #[serde(rename = "Media", default)]
    media: Vec<Media>,
}

#[derive(Deserialize)]
struct Media {
    #[serde(rename = "Part", default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    file: String,
}

impl Metadata {
    fn id(&self) -> String {
        match &self.rating_key {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// `Dune (2021)`, `Severance S02E05`, `Artist – Track`.
    fn shown_title(&self) -> String {
        match (self.kind.as_str(), &self.grandparent_title) {
            ("episode", Some(show)) => format!(
                "{show} S{:02}E{:02}",
                self.parent_index.unwrap_or(0),
                self.index.unwrap_or(0)
            ),
            ("track", Some(artist)) => format!("{artist} – {}", self.title),
            _ => match self.year {
                Some(y) => format!("{} ({y})", self.title),
                None => self.title.clone(),
            },
        }
    }

    /// The item as a confirmation reports it, when one of its files (any version, any
    /// part) is at `path` (or below it, for a folder).
    fn matching(&self, path: &str, is_dir: bool) -> Option<Item> {
        let file = self
            .media
            .iter()
            .flat_map(|m| &m.parts)
            .find(|p| same_or_below(path, &p.file, is_dir))?;
        Some(Item {
            id: self.id(),
            title: self.shown_title(),
            path: file.file.clone(),
        })
    }
}

/// The items a section lists per confirmation query (one page).
const PAGE: usize = 200;
/// Pages read per section and round: a library that saved more than this since the
/// scan is in a full scan, and the next check reads again.
const MAX_PAGES: usize = 5;

/// Plex's search type for the items of a section type (`utils.SEARCHTYPES`).
fn search_type(kind: &str) -> Option<&'static str> {
    match kind {
        "movie" => Some("1"),
        "show" => Some("4"),
        "artist" => Some("10"),
        _ => None,
    }
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
            kinds: std::sync::Mutex::default(),
        })
    }

    async fn fetch_sections(&self) -> Result<Vec<Library>> {
        let list: Envelope<SectionList> = self
            .http
            .get_json("/library/sections", "list sections")
            .await?;
        let mut out = Vec::new();
        let mut kinds = HashMap::new();
        for dir in list.container.directories {
            let id = match dir.key {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    tracing::warn!(key = %other, "skipping a Plex section with an unusable key");
                    continue;
                }
            };
            kinds.insert(id.clone(), (dir.kind, dir.refreshing));
            out.push(Library {
                id,
                name: dir.title,
                locations: dir.locations.into_iter().map(|l| l.path).collect(),
            });
        }
        *self.kinds.lock().unwrap_or_else(|p| p.into_inner()) = kinds;
        Ok(out)
    }

    fn kind_of(&self, key: &str) -> Option<(String, bool)> {
        self.kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// One page of the items of section `key` saved at or after `since` (Unix
    /// seconds), most recent first.
    async fn saved_since(
        &self,
        key: &str,
        kind: &str,
        since: i64,
        start: usize,
    ) -> Result<Vec<Metadata>> {
        let mut url = self.http.url("/library/sections");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(key).push("all");
        }
        // `updatedAt>>=` is Plex's "at or after" filter; a replaced file keeps its item
        // and moves its updatedAt, so this finds new and replaced files alike.
        url.query_pairs_mut()
            .append_pair("type", kind)
            .append_pair("sort", "updatedAt:desc")
            .append_pair("updatedAt>>", &since.to_string())
            .append_pair("X-Plex-Container-Start", &start.to_string())
            .append_pair("X-Plex-Container-Size", &PAGE.to_string());
        let reply = self
            .http
            .send(Method::GET, url, None, "list recently saved items")
            .await
            .map_err(|e| e.with_default("section", key))?;
        let list: Envelope<MetadataList> = http::decode(&reply.body, Service::Plex)?;
        Ok(list.container.metadata)
    }

    /// The item `id`, or `None` when Plex no longer has it (404, or in the trash).
    async fn item(&self, id: &str) -> Result<Option<Metadata>> {
        let mut url = self.http.url("/library/metadata");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(id);
        }
        match self.http.send(Method::GET, url, None, "read an item").await {
            Ok(reply) => {
                let list: Envelope<MetadataList> = http::decode(&reply.body, Service::Plex)?;
                Ok(list
                    .container
                    .metadata
                    .into_iter()
                    .find(|m| m.deleted_at.is_none()))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Confirms created and modified paths: one query per section (paged), matched on
    /// `Part.file`. `out[i]` is filled for each index in `wanted`.
    async fn confirm_added(
        &self,
        requests: &[ConfirmRequest],
        wanted: &[usize],
        out: &mut [Option<Result<Lookup>>],
    ) {
        let libs = match self.sections(false).await {
            Ok(l) => l,
            Err(e) => {
                for &i in wanted {
                    out[i] = Some(Err(copy_error(&e)));
                }
                return;
            }
        };
        // Section key -> the requests it may hold.
        let mut by_section: HashMap<String, Vec<usize>> = HashMap::new();
        for &i in wanted {
            let holders = http::containing(&libs, &requests[i].path);
            if holders.is_empty() {
                out[i] = Some(Err(not_in_any_library(&requests[i].path)));
            }
            for lib in holders {
                by_section.entry(lib.id.clone()).or_default().push(i);
            }
        }
        let mut found: HashMap<usize, Item> = HashMap::new();
        let mut failed: HashMap<usize, Error> = HashMap::new();
        for (key, idx) in by_section {
            let Some(kind) = self.kind_of(&key).and_then(|(k, _)| search_type(&k)) else {
                continue; // a photo section holds no items pps confirms
            };
            // A minute of slack: Plex stamps updatedAt from its own clock.
            let since = idx
                .iter()
                .map(|&i| requests[i].since.as_secs())
                .min()
                .unwrap_or(0)
                - 60;
            let mut start = 0;
            for _ in 0..MAX_PAGES {
                self.pacer.wait().await;
                let page = match self.saved_since(&key, kind, since, start).await {
                    Ok(p) => p,
                    Err(e) => {
                        for &i in &idx {
                            failed.entry(i).or_insert_with(|| copy_error(&e));
                        }
                        break;
                    }
                };
                for &i in &idx {
                    if found.contains_key(&i) {
                        continue;
                    }
                    let r = &requests[i];
                    if let Some(item) = page.iter().find_map(|m| m.matching(&r.path, r.is_dir)) {
                        found.insert(i, item);
                    }
                }
                if page.len() < PAGE || idx.iter().all(|i| found.contains_key(i)) {
                    break;
                }
                start += PAGE;
            }
        }
        for &i in wanted {
            if out[i].is_some() {
                continue;
            }
            out[i] = Some(match (found.remove(&i), failed.remove(&i)) {
                (Some(item), _) => Ok(Lookup::found(vec![item])),
                (None, Some(e)) => Err(e),
                (None, None) => Ok(Lookup::missing()),
            });
        }
    }

    /// Confirms a deletion through the item ids seen indexed for the path.
    async fn confirm_removed(&self, request: &ConfirmRequest) -> Result<Lookup> {
        if request.known.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "Plex cannot look a path up, and no item was seen indexed there",
            )
            .permanent()
            .with("path", request.path.clone()));
        }
        let mut items = Vec::new();
        for id in &request.known {
            self.pacer.wait().await;
            if let Some(m) = self.item(id).await? {
                items.push(Item {
                    id: m.id(),
                    title: m.shown_title(),
                    path: request.path.clone(),
                });
            }
        }
        Ok(Lookup::found(items))
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
/// A copy of `e` for another request of the same failed call.
fn copy_error(e: &Error) -> Error {
    pps_core::target::all_failed(1, e)
        .pop()
        .and_then(|r| r.err())
        .unwrap_or_else(|| Error::new(e.kind(), e.message()))
}

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

    fn confirm_plan(&self) -> Option<ConfirmPlan> {
        // Plex queues a path scan; it runs in seconds on an idle server and much later
        // behind a full scan (Cloudbox/autoscan#52). Looking at once misses
        // (autopulse#150): first look after 10 s.
        Some(ConfirmPlan {
            checks: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(60),
            ],
            every: Duration::from_secs(60),
            remedy_after: Duration::from_secs(300),
            remedy_wait: Duration::from_secs(300),
            deadline: Duration::from_secs(600),
            lookup_by_path: false,
            strm_items: false,
        })
    }

    async fn confirm(&self, requests: &[ConfirmRequest]) -> Vec<Result<Lookup>> {
        let mut out: Vec<Option<Result<Lookup>>> = (0..requests.len()).map(|_| None).collect();
        let added: Vec<usize> = (0..requests.len())
            .filter(|&i| requests[i].update != Update::Deleted)
            .collect();
        self.confirm_added(requests, &added, &mut out).await;
        for (i, r) in requests.iter().enumerate() {
            if r.update == Update::Deleted {
                out[i] = Some(self.confirm_removed(r).await);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Unexpected,
                        "lookup left without a result",
                    ))
                })
            })
            .collect()
    }

    async fn remedy(&self, request: &ConfirmRequest) -> Result<Remedy> {
        let (folder, _) = scan_folder(&ScanRequest {
            path: request.path.clone(),
            update: request.update,
            is_dir: request.is_dir,
        })?;
        // Fresh section states: a second scan while the section scans would only queue
        // behind it (and may be dropped), so wait until it is idle.
        let libs = self.sections(true).await?;
        let holders: Vec<Library> = http::containing(&libs, &folder)
            .into_iter()
            .cloned()
            .collect();
        if holders.is_empty() {
            return Err(not_in_any_library(&folder));
        }
        if let Some(busy) = holders.iter().find(|l| {
            self.kind_of(&l.id)
                .is_some_and(|(_, refreshing)| refreshing)
        }) {
            return Ok(Remedy::Busy(format!(
                "Plex section {:?} is still scanning",
                busy.name
            )));
        }
        for lib in &holders {
            if http::is_root_of(lib, &folder) {
                continue; // never a whole section
            }
            self.refresh(&lib.id, &folder).await?;
        }
        Ok(Remedy::Done(format!(
            "scanned {folder:?} again once its section was idle"
        )))
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
