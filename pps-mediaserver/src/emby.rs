//! The Emby and Jellyfin targets: one protocol, two auth headers.
//!
//! A scan is `POST /Library/Media/Updated` with
//! `{"Updates":[{"Path":"...","UpdateType":"Created|Modified|Deleted"}, ...]}`, many
//! paths per request; any 2xx is success.

use crate::http::{self, Http, LibraryCache, Service};
use async_trait::async_trait;
use pps_core::confirm::same_or_below;
use pps_core::mapping::target_parent;
use pps_core::target::{all_failed, not_in_any_library};
use pps_core::{
    Capabilities, ConfirmPlan, ConfirmRequest, Error, ErrorKind, Item, Library, Lookup, Remedy,
    Result, ScanRequest, ScanTarget, Secret, TargetInfo, Update,
};
use reqwest::Method;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Which of the two servers a target talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Emby: `X-Emby-Token` header.
    Emby,
    /// Jellyfin: `Authorization: MediaBrowser Token="..."` header.
    Jellyfin,
}

impl Flavor {
    fn service(self) -> Service {
        match self {
            Flavor::Emby => Service::Emby,
            Flavor::Jellyfin => Service::Jellyfin,
        }
    }
}

/// How to reach an Emby or Jellyfin server. As read from a `[targets.NAME]` table of
/// kind `emby` or `jellyfin` (every key but `kind`, `path_mapping` and `scan_files`),
/// with the defaults of [`EmbyConfig::default`]; durations are text (`"30s"`).
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbyConfig {
    /// Base URL, e.g. `http://nas:8096` (Emby also answers below `/emby`; a prefix is
    /// kept). No user, password or query: the key has its own field.
    pub url: String,
    /// An API key made by an administrator (reading the libraries needs one).
    pub api_key: Secret,
    /// The longest one HTTP request may take.
    #[serde(deserialize_with = "pps_core::duration::serde")]
    pub timeout: Duration,
    /// The most paths sent in one `/Library/Media/Updated` request (at least 1).
    pub max_batch: usize,
    /// How long the library list is trusted before it is read again. A path that no
    /// cached library contains re-reads it at once, whatever this says.
    #[serde(deserialize_with = "pps_core::duration::serde")]
    pub libraries_ttl: Duration,
}

/// Jellyfin takes the same settings as Emby.
pub type JellyfinConfig = EmbyConfig;

impl Default for EmbyConfig {
    /// No URL or key yet; timeout 30 s, batches of 100 paths, library TTL 5 min.
    fn default() -> Self {
        EmbyConfig {
            url: String::new(),
            api_key: Secret::default(),
            timeout: Duration::from_secs(30),
            max_batch: 100,
            libraries_ttl: Duration::from_secs(300),
        }
    }
}

impl EmbyConfig {
    /// A config with the default timeout (30 s), batch size (100) and library TTL
    /// (5 min).
    pub fn new(url: impl Into<String>, api_key: impl Into<Secret>) -> Self {
        EmbyConfig {
            url: url.into(),
            api_key: api_key.into(),
            ..EmbyConfig::default()
        }
    }

    /// Checks every value; a mistake is a `ConfigInvalid` error naming the key.
    pub fn validate(&self) -> Result<()> {
        crate::http::check_url_key(&self.url, "url")?;
        crate::http::require(&self.api_key, "api_key")?;
        crate::http::positive(self.timeout, "timeout")?;
        if self.max_batch == 0 {
            return Err(
                Error::new(ErrorKind::ConfigInvalid, "`max_batch` must be at least 1")
                    .permanent()
                    .with("key", "max_batch"),
            );
        }
        Ok(())
    }
}

impl fmt::Debug for EmbyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbyConfig")
            .field("url", &pps_core::secret::redact_url(&self.url))
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("max_batch", &self.max_batch)
            .field("libraries_ttl", &self.libraries_ttl)
            .finish()
    }
}

/// What Emby and Jellyfin share; [`EmbyTarget`] and [`JellyfinTarget`] wrap it.
struct EmbyLike {
    flavor: Flavor,
    http: Http,
    max_batch: usize,
    libraries: LibraryCache,
    libraries_ttl: Duration,
    /// Jellyfin: whether the targeted-scans plugin is installed, and when that was read.
    plugin: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// Jellyfin: what the plugin answered per path, until a confirmation reads it.
    answers: std::sync::Mutex<HashMap<String, PluginAnswer>>,
}

/// What the targeted-scans plugin said about one path.
#[derive(Debug, Clone)]
enum PluginAnswer {
    /// It knows an item there now.
    Indexed(Item),
    /// It removed the item (or there was none to remove).
    Removed,
    /// It could not act; the text is for the stuck reason.
    Note(String),
}

/// Plugin names that serve `/Library/ScanPaths` (TargetedScan, and omniscan's).
const PLUGIN_NAMES: &[&str] = &["TargetedScan", "Targeted Scan", "OmniscanPlugin"];

/// `/Plugins`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Plugin {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: Option<String>,
}

/// `/Library/ScanPaths`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScanPathsReply {
    #[serde(default)]
    results: Vec<ScanPathResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScanPathResult {
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    item_name: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// `/Items`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ItemList {
    #[serde(default)]
    items: Vec<EmbyItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EmbyItem {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(default)]
    series_name: Option<String>,
    #[serde(default)]
    parent_index_number: Option<i64>,
    #[serde(default)]
    index_number: Option<i64>,
    #[serde(default)]
    production_year: Option<i64>,
    /// Every version's file: Jellyfin leaves alternate versions out of `/Items` lists,
    /// so a second version's path is only here, on the primary.
    #[serde(default)]
    media_sources: Vec<MediaSource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MediaSource {
    #[serde(default)]
    path: Option<String>,
}

impl EmbyItem {
    /// `Dune (2021)`, `Severance S02E05`.
    fn shown_title(&self) -> String {
        match (self.kind.as_str(), &self.series_name) {
            ("Episode", Some(series)) => format!(
                "{series} S{:02}E{:02}",
                self.parent_index_number.unwrap_or(0),
                self.index_number.unwrap_or(0)
            ),
            _ => match self.production_year {
                Some(y) => format!("{} ({y})", self.name),
                None => self.name.clone(),
            },
        }
    }

    /// The item as a confirmation reports it, when its path or one of its versions is
    /// at `path` (or below it, for a folder).
    fn matching(&self, path: &str, is_dir: bool) -> Option<Item> {
        let file = self
            .path
            .iter()
            .chain(self.media_sources.iter().filter_map(|m| m.path.as_ref()))
            .find(|p| same_or_below(path, p, is_dir))?;
        Some(Item {
            id: self.id.clone(),
            title: self.shown_title(),
            path: file.clone(),
        })
    }
}

/// Items read per library query (one page); a library that saved more since the scan
/// is in a full scan, and the next check reads again.
const ITEMS_PAGE: usize = 500;

impl fmt::Debug for EmbyLike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbyLike")
            .field("flavor", &self.flavor)
            .field("url", &self.http.shown_base())
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// One entry of `/Library/VirtualFolders`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VirtualFolder {
    #[serde(default)]
    name: String,
    #[serde(default)]
    locations: Vec<String>,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// One entry of Emby's `/Library/SelectableMediaFolders`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SelectableFolder {
    #[serde(default)]
    name: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    sub_folders: Vec<SubFolder>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubFolder {
    path: String,
}

/// `/System/Info` and `/System/Info/Public`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SystemInfo {
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    product_name: Option<String>,
}

/// A copy of `e` for another request of the same failed call.
fn copy_error(e: &Error) -> Error {
    all_failed(1, e)
        .pop()
        .and_then(|r| r.err())
        .unwrap_or_else(|| Error::new(e.kind(), e.message()))
}

fn update_type(update: Update) -> &'static str {
    match update {
        Update::Created => "Created",
        Update::Modified => "Modified",
        Update::Deleted => "Deleted",
    }
}

impl EmbyLike {
    fn new(flavor: Flavor, config: EmbyConfig) -> Result<Self> {
        config.validate()?;
        let http = Http::new(
            flavor.service(),
            &config.url,
            "url",
            config.api_key,
            config.timeout,
        )?;
        Ok(EmbyLike {
            flavor,
            http,
            max_batch: config.max_batch,
            libraries: LibraryCache::new(config.libraries_ttl),
            libraries_ttl: config.libraries_ttl,
            plugin: tokio::sync::Mutex::new(None),
            answers: std::sync::Mutex::default(),
        })
    }

    async fn fetch_libraries(&self) -> Result<Vec<Library>> {
        let virtual_folders: Result<Vec<VirtualFolder>> = self
            .http
            .get_json("/Library/VirtualFolders", "list libraries")
            .await;
        match virtual_folders {
            Ok(folders) => Ok(folders
                .into_iter()
                .map(|f| Library {
                    id: f.item_id.or(f.id).unwrap_or_else(|| f.name.clone()),
                    name: f.name,
                    locations: f.locations,
                })
                .collect()),
            // VirtualFolders is for administrators; Emby offers the selectable folders
            // to any user, which is enough to match paths.
            Err(e)
                if self.flavor == Flavor::Emby
                    && matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::NotFound) =>
            {
                let folders: Vec<SelectableFolder> = self
                    .http
                    .get_json("/Library/SelectableMediaFolders", "list libraries")
                    .await?;
                Ok(folders
                    .into_iter()
                    .map(|f| Library {
                        id: f.id.unwrap_or_else(|| f.name.clone()),
                        name: f.name,
                        locations: f.sub_folders.into_iter().map(|s| s.path).collect(),
                    })
                    .collect())
            }
            Err(e) => Err(e),
        }
    }

    async fn libraries(&self, force: bool) -> Result<Arc<Vec<Library>>> {
        self.libraries.get(force, || self.fetch_libraries()).await
    }

    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        if requests.is_empty() {
            return Vec::new();
        }
        if self.flavor == Flavor::Jellyfin && self.plugin_active().await {
            return self.scan_with_plugin(requests).await;
        }
        self.report_updated(requests).await
    }

    /// `POST /Library/Media/Updated` for `requests`.
    async fn report_updated(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let mut libs = match self.libraries(false).await {
            Ok(libs) => libs,
            Err(e) => return all_failed(requests.len(), &e),
        };
        let misses = |libs: &[Library]| {
            requests
                .iter()
                .any(|r| http::containing(libs, &r.path).is_empty())
        };
        if misses(&libs) {
            // A library added since the last read: re-read once before parking paths.
            libs = match self.libraries(true).await {
                Ok(libs) => libs,
                Err(e) => return all_failed(requests.len(), &e),
            };
        }
        let mut out: Vec<Option<Result<()>>> = Vec::with_capacity(requests.len());
        let mut updates = Vec::new();
        let mut sent = Vec::new();
        for (i, req) in requests.iter().enumerate() {
            if http::containing(&libs, &req.path).is_empty() {
                // Parked by the engine with this reason, so it is reported once.
                tracing::warn!(
                    service = self.flavor.service().name(),
                    path = %req.path,
                    "no library contains the path"
                );
                out.push(Some(Err(not_in_any_library(&req.path))));
            } else {
                // The path goes as it is: the engine already chose the deepest path that
                // covers the change, which is what keeps Jellyfin's refresh small.
                updates.push(serde_json::json!({
                    "Path": req.path,
                    "UpdateType": update_type(req.update),
                }));
                sent.push(i);
                out.push(None);
            }
        }
        if !updates.is_empty() {
            let body = serde_json::json!({ "Updates": updates });
            let url = self.http.url("/Library/Media/Updated");
            let result = self
                .http
                .send(Method::POST, url, Some(&body), "report media updated")
                .await
                .map(|_| ());
            let results = match result {
                Ok(()) => sent.iter().map(|_| Ok(())).collect(),
                Err(e) => all_failed(sent.len(), &e),
            };
            for (i, r) in sent.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    // Unreachable by construction; an error beats a panic all the same.
                    Err(Error::new(
                        ErrorKind::Unexpected,
                        "request left without a result",
                    ))
                })
            })
            .collect()
    }

    /// Whether Jellyfin's targeted-scans plugin is installed and active (`GET
    /// /Plugins`, read again after the libraries' TTL). A server that refuses the list
    /// (not an administrator's key) counts as without it.
    async fn plugin_active(&self) -> bool {
        let mut state = self.plugin.lock().await;
        if let Some((at, active)) = *state
            && at.elapsed() < self.libraries_ttl
        {
            return active;
        }
        let active = match self
            .http
            .get_json::<Vec<Plugin>>("/Plugins", "list plugins")
            .await
        {
            Ok(list) => list.iter().any(|p| {
                PLUGIN_NAMES.contains(&p.name.as_str())
                    && p.status.as_deref().is_none_or(|s| s == "Active")
            }),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list Jellyfin plugins; scanning without the targeted-scans plugin");
                false
            }
        };
        *state = Some((Instant::now(), active));
        active
    }

    fn plugin_gone(&self) {
        if let Ok(mut state) = self.plugin.try_lock() {
            *state = Some((Instant::now(), false));
        }
    }

    /// Scans through the plugin's `POST /Library/ScanPaths`, which answers per path what
    /// it did: an item id is the confirmation itself. What the plugin could not do
    /// (a parent it does not know, a failure) goes to `Media/Updated` instead, and a
    /// plugin that is gone or failing sends everything there.
    async fn scan_with_plugin(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
        let body = serde_json::json!({ "Paths": paths });
        let url = self.http.url("/Library/ScanPaths");
        let (status, reply) = match self
            .http
            .send_raw(Method::POST, url, Some(&body), "targeted scan")
            .await
        {
            Ok(r) => r,
            Err(e) => return all_failed(requests.len(), &e),
        };
        // The plugin answers 404 (a path not found) and 500 (an item removed) with its
        // JSON answer: read the body, not only the status.
        let parsed: Option<ScanPathsReply> = serde_json::from_slice(&reply).ok();
        let Some(parsed) = parsed.filter(|p| !p.results.is_empty()) else {
            if status.is_success() || status.as_u16() == 404 {
                tracing::warn!(
                    status = status.as_u16(),
                    "the targeted-scans plugin gave no answer; reporting to Media/Updated instead"
                );
                self.plugin_gone();
                return self.report_updated(requests).await;
            }
            let e = self.http.status_error(status, &reply, "targeted scan");
            if e.is_temporary() {
                tracing::warn!(error = %e, "the targeted-scans plugin failed; reporting to Media/Updated instead");
                return self.report_updated(requests).await;
            }
            return all_failed(requests.len(), &e);
        };
        let mut fallback = Vec::new();
        let mut out: Vec<Option<Result<()>>> = (0..requests.len()).map(|_| None).collect();
        {
            let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
            for (i, req) in requests.iter().enumerate() {
                let result = parsed
                    .results
                    .iter()
                    .find(|r| r.path.as_deref() == Some(req.path.as_str()))
                    .or_else(|| parsed.results.get(i).filter(|r| r.path.is_none()));
                let Some(r) = result else {
                    fallback.push(i);
                    continue;
                };
                let answer = match (
                    r.status.as_str(),
                    r.item_id.as_deref().filter(|s| !s.is_empty()),
                ) {
                    ("Created" | "Refreshed" | "Existing", Some(id)) => {
                        Some(PluginAnswer::Indexed(Item {
                            id: id.to_owned(),
                            title: r.item_name.clone().unwrap_or_default(),
                            path: req.path.clone(),
                        }))
                    }
                    ("Removed", _) => Some(PluginAnswer::Removed),
                    ("PathNotFound", _) if req.update == Update::Deleted => {
                        Some(PluginAnswer::Removed)
                    }
                    ("PathNotFound", _) => Some(PluginAnswer::Note(format!(
                        "Jellyfin's targeted-scans plugin answered PathNotFound: Jellyfin cannot see {:?} (check the path_mapping and the library's folders)",
                        req.path
                    ))),
                    _ => None,
                };
                match answer {
                    Some(a) => {
                        answers.insert(req.path.clone(), a);
                        out[i] = Some(Ok(()));
                    }
                    None => {
                        tracing::info!(path = %req.path, status = %r.status, message = r.message.as_deref().unwrap_or(""), "the targeted-scans plugin could not scan the path; reporting it to Media/Updated");
                        fallback.push(i);
                    }
                }
            }
        }
        let rest: Vec<ScanRequest> = fallback.iter().map(|&i| requests[i].clone()).collect();
        for (i, r) in fallback.into_iter().zip(self.report_updated(&rest).await) {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Unexpected,
                        "request left without a result",
                    ))
                })
            })
            .collect()
    }

    fn confirm_plan(&self) -> ConfirmPlan {
        match self.flavor {
            // Users see Emby act on Media/Updated almost at once (jellyfin#15070).
            Flavor::Emby => ConfirmPlan {
                checks: [5, 15, 30, 60, 90].map(Duration::from_secs).to_vec(),
                every: Duration::from_secs(60),
                remedy_after: Duration::from_secs(90),
                remedy_wait: Duration::from_secs(300),
                deadline: Duration::from_secs(600),
                lookup_by_path: true,
                strm_items: true,
            },
            // Jellyfin waits LibraryMonitorDelay (60 s) after the last report, then
            // refreshes; 10.11 often takes 10-15 min (jellyfin#15070, #16176). The first
            // check reads the plugin's answer when there is one.
            Flavor::Jellyfin => ConfirmPlan {
                checks: [5, 75].map(Duration::from_secs).to_vec(),
                every: Duration::from_secs(60),
                remedy_after: Duration::from_secs(600),
                remedy_wait: Duration::from_secs(300),
                deadline: Duration::from_secs(1200),
                lookup_by_path: false,
                strm_items: true,
            },
        }
    }

    /// `GET /Items` with `query`, decoded.
    async fn items(
        &self,
        query: &[(&str, &str)],
        operation: &'static str,
    ) -> Result<Vec<EmbyItem>> {
        let mut url = self.http.url("/Items");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        let reply = self.http.send(Method::GET, url, None, operation).await?;
        let list: ItemList = http::decode(&reply.body, self.flavor.service())?;
        Ok(list.items)
    }

    /// Items at `path` by Emby's path filter, re-checked (the filter's exactness is not
    /// documented).
    async fn items_at(&self, path: &str, is_dir: bool) -> Result<Vec<Item>> {
        let items = self
            .items(
                &[
                    ("Path", path),
                    ("Recursive", "true"),
                    ("Fields", "Path,MediaSources"),
                    ("EnableImages", "false"),
                ],
                "look up a path",
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| i.matching(path, is_dir))
            .collect())
    }

    /// The items with these ids that still exist.
    async fn items_by_id(&self, ids: &[String]) -> Result<Vec<EmbyItem>> {
        let ids = ids.join(",");
        self.items(
            &[
                ("Ids", &ids),
                ("Fields", "Path,MediaSources"),
                ("EnableImages", "false"),
            ],
            "look up items",
        )
        .await
    }

    async fn confirm(&self, requests: &[ConfirmRequest]) -> Vec<Result<Lookup>> {
        let mut out: Vec<Option<Result<Lookup>>> = (0..requests.len()).map(|_| None).collect();
        // The plugin's answers first: they are the confirmation itself.
        let mut notes: HashMap<usize, String> = HashMap::new();
        {
            let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
            for (i, r) in requests.iter().enumerate() {
                match answers.remove(&r.path) {
                    Some(PluginAnswer::Indexed(item)) if r.update != Update::Deleted => {
                        out[i] = Some(Ok(Lookup::found(vec![item])));
                    }
                    Some(PluginAnswer::Removed) if r.update == Update::Deleted => {
                        out[i] = Some(Ok(Lookup::missing()));
                    }
                    Some(PluginAnswer::Note(n)) => {
                        notes.insert(i, n);
                    }
                    _ => {}
                }
            }
        }
        // Created and modified: one query per library for what it saved since the
        // earliest scan, matched on Path.
        let added: Vec<usize> = (0..requests.len())
            .filter(|&i| out[i].is_none() && requests[i].update != Update::Deleted)
            .collect();
        if !added.is_empty() {
            match self.libraries(false).await {
                Ok(libs) => {
                    let mut by_lib: HashMap<String, Vec<usize>> = HashMap::new();
                    for &i in &added {
                        let holders = http::containing(&libs, &requests[i].path);
                        if holders.is_empty() {
                            out[i] = Some(Err(not_in_any_library(&requests[i].path)));
                        }
                        for lib in holders {
                            by_lib.entry(lib.id.clone()).or_default().push(i);
                        }
                    }
                    for (lib, idx) in by_lib {
                        let since = idx
                            .iter()
                            .map(|&i| requests[i].since.as_secs())
                            .min()
                            .unwrap_or(0)
                            - 60;
                        let since = http::iso8601(since);
                        let limit = ITEMS_PAGE.to_string();
                        let found = self
                            .items(
                                &[
                                    ("ParentId", &lib),
                                    ("Recursive", "true"),
                                    ("MinDateLastSaved", &since),
                                    ("Fields", "Path,MediaSources"),
                                    ("EnableImages", "false"),
                                    ("Limit", &limit),
                                ],
                                "list recently saved items",
                            )
                            .await;
                        for &i in &idx {
                            if matches!(out[i], Some(Ok(ref l)) if !l.items.is_empty()) {
                                continue;
                            }
                            let r = &requests[i];
                            out[i] = Some(match &found {
                                Ok(items) => Ok(Lookup::found(
                                    items
                                        .iter()
                                        .filter_map(|it| it.matching(&r.path, r.is_dir))
                                        .take(1)
                                        .collect(),
                                )),
                                Err(e) => Err(copy_error(e)),
                            });
                        }
                    }
                }
                Err(e) => {
                    for &i in &added {
                        out[i] = Some(Err(copy_error(&e)));
                    }
                }
            }
        }
        // Deleted: Emby looks the path up; both check the ids seen indexed.
        for (i, r) in requests.iter().enumerate() {
            if out[i].is_some() || r.update != Update::Deleted {
                continue;
            }
            out[i] = Some(self.confirm_removed(r).await);
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Unexpected,
                        "lookup left without a result",
                    ))
                });
                if let (Ok(lookup), Some(note)) = (&mut r, notes.remove(&i)) {
                    lookup.note = Some(note);
                }
                r
            })
            .collect()
    }

    async fn confirm_removed(&self, r: &ConfirmRequest) -> Result<Lookup> {
        let mut items = Vec::new();
        if self.flavor == Flavor::Emby {
            items = self.items_at(&r.path, r.is_dir).await?;
        } else if r.known.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "Jellyfin cannot look a path up, and no item was seen indexed there",
            )
            .permanent()
            .with("path", r.path.clone()));
        }
        if items.is_empty() && !r.known.is_empty() {
            items = self
                .items_by_id(&r.known)
                .await?
                .into_iter()
                .map(|it| Item {
                    title: it.shown_title(),
                    path: it.path.clone().unwrap_or_default(),
                    id: it.id,
                })
                .collect();
        }
        Ok(Lookup::found(items))
    }

    async fn remedy(&self, r: &ConfirmRequest) -> Result<Remedy> {
        match self.flavor {
            Flavor::Emby => self.refresh_nearest(r).await,
            Flavor::Jellyfin => {
                if self.plugin_active().await {
                    let body = serde_json::json!({ "Path": r.path });
                    let url = self.http.url("/Library/ScanPath");
                    let (status, reply) = self
                        .http
                        .send_raw(Method::POST, url, Some(&body), "targeted scan")
                        .await?;
                    let answer: Option<ScanPathResult> = serde_json::from_slice(&reply).ok();
                    return match answer {
                        Some(a) => {
                            if let Some(id) = a.item_id.filter(|s| !s.is_empty()) {
                                self.answers
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .insert(
                                        r.path.clone(),
                                        PluginAnswer::Indexed(Item {
                                            id,
                                            title: a.item_name.unwrap_or_default(),
                                            path: r.path.clone(),
                                        }),
                                    );
                            }
                            Ok(Remedy::Done(format!(
                                "asked the targeted-scans plugin to scan it ({})",
                                a.status
                            )))
                        }
                        None => Err(self.http.status_error(status, &reply, "targeted scan")),
                    };
                }
                // Without the plugin, the one thing to do is report the path again.
                let req = ScanRequest {
                    path: r.path.clone(),
                    update: r.update,
                    is_dir: r.is_dir,
                };
                match self.report_updated(std::slice::from_ref(&req)).await.pop() {
                    Some(Ok(())) => Ok(Remedy::Done("reported it to Jellyfin again".to_owned())),
                    Some(Err(e)) => Err(e),
                    None => Err(Error::new(ErrorKind::Unexpected, "no result")),
                }
            }
        }
    }

    /// Emby: refreshes the nearest item Emby knows above the path (a season, a show,
    /// the library), recursively, so it finds the new files below.
    async fn refresh_nearest(&self, r: &ConfirmRequest) -> Result<Remedy> {
        let libs = self.libraries(false).await?;
        let Some(lib) = http::containing(&libs, &r.path).into_iter().next().cloned() else {
            return Err(not_in_any_library(&r.path));
        };
        let mut at = target_parent(&r.path);
        let mut target: Option<(String, String)> = None;
        while let Some(folder) = at {
            if http::is_root_of(&lib, &folder)
                || http::containing(std::slice::from_ref(&lib), &folder).is_empty()
            {
                break;
            }
            let found = self
                .items(
                    &[
                        ("Path", &folder),
                        ("Fields", "Path"),
                        ("EnableImages", "false"),
                    ],
                    "look up a folder",
                )
                .await?;
            if let Some(item) = found.iter().find(|i| {
                i.path
                    .as_deref()
                    .is_some_and(|p| same_or_below(&folder, p, false))
            }) {
                target = Some((item.id.clone(), item.name.clone()));
                break;
            }
            at = target_parent(&folder);
        }
        let (id, name) = target.unwrap_or((lib.id.clone(), lib.name.clone()));
        let mut url = self.http.url("/Items");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(&id).push("Refresh");
        }
        url.query_pairs_mut()
            .append_pair("Recursive", "true")
            .append_pair("MetadataRefreshMode", "Default")
            .append_pair("ImageRefreshMode", "Default")
            .append_pair("ReplaceAllMetadata", "false")
            .append_pair("ReplaceAllImages", "false");
        self.http
            .send(Method::POST, url, None, "refresh an item")
            .await?;
        Ok(Remedy::Done(format!(
            "refreshed {name:?}, the nearest item Emby knows"
        )))
    }

    async fn check(&self) -> Result<TargetInfo> {
        let product = match self.flavor {
            Flavor::Emby => "Emby Server",
            Flavor::Jellyfin => "Jellyfin Server",
        };
        let info: SystemInfo = match self.http.get_json("/System/Info", "identify").await {
            Ok(info) => info,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Unauthenticated | ErrorKind::PermissionDenied
                ) =>
            {
                // Tell "wrong key" from "wrong server": the public info needs no key.
                let public: Result<SystemInfo> = self
                    .http
                    .get_json("/System/Info/Public", "identify (public)")
                    .await;
                return Err(match public {
                    Ok(p) => e
                        .with("server", p.server_name.unwrap_or_default())
                        .with("version", p.version.unwrap_or_default()),
                    Err(_) => e,
                });
            }
            Err(e) => return Err(e),
        };
        let product = info.product_name.unwrap_or_else(|| product.to_owned());
        let name = info.server_name.unwrap_or_default();
        let mut server = format!("{product} {name:?}");
        if self.flavor == Flavor::Jellyfin {
            // Re-read now: `pps check` is where a user learns whether it took effect.
            *self.plugin.lock().await = None;
            server.push_str(if self.plugin_active().await {
                ", targeted-scans plugin installed (scans are confirmed at once)"
            } else {
                ", no targeted-scans plugin (scans wait for LibraryMonitorDelay)"
            });
        }
        Ok(TargetInfo {
            server,
            version: info.version,
            libraries: self.libraries(true).await?.as_ref().clone(),
        })
    }
}

macro_rules! emby_like_target {
    ($(#[$doc:meta])* $name:ident, $flavor:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(EmbyLike);

        impl $name {
            /// Checks the config and builds the client. Contacts nobody.
            ///
            /// A bad URL, an empty key or a `max_batch` of 0 is a `ConfigInvalid` error
            /// naming the key (`url`, `api_key`, `max_batch`).
            pub fn new(config: EmbyConfig) -> Result<Self> {
                EmbyLike::new($flavor, config).map($name)
            }
        }

        #[async_trait]
        impl ScanTarget for $name {
            fn capabilities(&self) -> Capabilities {
                Capabilities::files(self.0.max_batch)
            }

            async fn libraries(&self) -> Result<Vec<Library>> {
                Ok(self.0.libraries(false).await?.as_ref().clone())
            }

            async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
                self.0.scan(requests).await
            }

            async fn check(&self) -> Result<TargetInfo> {
                self.0.check().await
            }

            fn confirm_plan(&self) -> Option<ConfirmPlan> {
                Some(self.0.confirm_plan())
            }

            async fn confirm(&self, requests: &[ConfirmRequest]) -> Vec<Result<Lookup>> {
                if requests.is_empty() {
                    return Vec::new();
                }
                self.0.confirm(requests).await
            }

            async fn remedy(&self, request: &ConfirmRequest) -> Result<Remedy> {
                self.0.remedy(request).await
            }
        }
    };
}

emby_like_target!(
    /// An Emby server as a scan target.
    ///
    /// Takes file and folder paths with their update type, up to `max_batch` per
    /// request, authenticated with the `X-Emby-Token` header. Whether Emby acts on the
    /// update type is undocumented; the true type is sent anyway.
    EmbyTarget,
    Flavor::Emby
);

emby_like_target!(
    /// A Jellyfin server as a scan target.
    ///
    /// Same requests as [`EmbyTarget`], authenticated with
    /// `Authorization: MediaBrowser Token="..."` (accepted by 10.11 and by 12, which
    /// refuses the legacy headers). Jellyfin ignores the update type, waits
    /// `LibraryMonitorDelay` (60 s by default), merges sibling paths into their parent
    /// and refreshes the nearest item it already knows: see the crate docs for what a
    /// user sees.
    JellyfinTarget,
    Flavor::Jellyfin
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_key() {
        let cfg = EmbyConfig::new("http://nas:8096/emby", "key-98765");
        let debug = format!("{cfg:?}");
        assert!(
            debug.contains("/emby") && !debug.contains("key-98765"),
            "{debug}"
        );
    }

    #[test]
    fn zero_batch_is_a_config_error() {
        let mut cfg = EmbyConfig::new("http://nas:8096", "k");
        cfg.max_batch = 0;
        let err = JellyfinTarget::new(cfg).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
        assert_eq!(err.context_value("key"), Some("max_batch"));
    }

    #[test]
    fn update_types_are_capitalised() {
        assert_eq!(
            [Update::Created, Update::Modified, Update::Deleted].map(update_type),
            ["Created", "Modified", "Deleted"]
        );
    }
}
