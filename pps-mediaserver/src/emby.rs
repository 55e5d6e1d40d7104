//! The Emby and Jellyfin targets: one protocol, two auth headers.
//!
//! A scan is `POST /Library/Media/Updated` with
//! `{"Updates":[{"Path":"...","UpdateType":"Created|Modified|Deleted"}, ...]}`, many
//! paths per request; any 2xx is success.

use crate::http::{self, Http, LibraryCache, Service};
use async_trait::async_trait;
use pps_core::target::{all_failed, not_in_any_library};
use pps_core::{
    Capabilities, Error, ErrorKind, Library, Result, ScanRequest, ScanTarget, Secret, TargetInfo,
    Update,
};
use reqwest::Method;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
}

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
        Ok(TargetInfo {
            server: format!("{product} {name:?}"),
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
