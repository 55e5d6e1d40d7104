//! The rclone rc client: the innermost source, one `operations/list` per listing,
//! basic auth. It neither paces nor retries.

use super::config::RcloneConfig;
use super::core::{ListReply, entry_of, reply_json};
use crate::http::{Counters, Credential, Http};
use pps_core::{Entry, Error, ErrorKind, Result, path};
use serde_json::json;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

pub(crate) struct Inner {
    pub(crate) http: Http,
    pub(crate) config: RcloneConfig,
    pub(crate) counters: Arc<Counters>,
}

/// rclone's rc as a bare [`DirectorySource`](pps_core::DirectorySource): no rate limit,
/// no retries. [`Rclone`](crate::Rclone) wraps it in both.
#[derive(Clone)]
pub struct RcloneClient {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for RcloneClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcloneClient")
            .field("source", &self.inner.http.shown)
            .field("remote", &self.inner.config.remote)
            .finish_non_exhaustive()
    }
}

/// pps's absolute path as a path inside the remote: `/TV/x` is `TV/x`, `/` is empty.
pub(crate) fn remote_path(path: &str) -> &str {
    path.trim_matches('/')
}

impl RcloneClient {
    /// A client for `config`; no call is made yet.
    ///
    /// # Errors
    /// `ConfigInvalid` for a bad configuration.
    pub fn new(config: RcloneConfig) -> Result<Self> {
        Self::with_counters(config, Arc::new(Counters::default()))
    }

    pub(crate) fn with_counters(config: RcloneConfig, counters: Arc<Counters>) -> Result<Self> {
        config.validate()?;
        let http = Http::new(&config.url, "rclone", config.pacing.timeout)?;
        Ok(RcloneClient {
            inner: Arc::new(Inner {
                http,
                config,
                counters,
            }),
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.inner.http.shown
    }

    /// One rc command: its JSON reply, or the error it carries.
    pub(crate) async fn command(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
        operation: &str,
        path: &str,
    ) -> Result<serde_json::Value> {
        let inner = &*self.inner;
        let credential = match (&inner.config.username, &inner.config.password) {
            (Some(u), Some(p)) => Credential::Basic(u, p.expose()),
            _ => Credential::None,
        };
        let reply = inner
            .http
            .post(endpoint, body, credential, operation, path)
            .await
            .inspect_err(|_| Counters::bump(&inner.counters.transient))?;
        reply_json(&inner.http, &reply, endpoint, operation, path).map_err(|e| {
            match e.kind() {
                ErrorKind::Throttled => Counters::bump(&inner.counters.throttled),
                ErrorKind::Unavailable => Counters::bump(&inner.counters.transient),
                _ => {}
            }
            if e.kind() == ErrorKind::Unauthenticated && inner.config.username.is_none() {
                return Error::new(
                    ErrorKind::Unauthenticated,
                    "rclone wants a user name and password: set `username` and `password` to its --rc-user and --rc-pass",
                )
                .permanent()
                .with("operation", operation.to_owned())
                .with("source", inner.http.shown.clone());
            }
            e
        })
    }

    /// `operations/list` of one folder, not recursive: straight from the remote,
    /// never from a mount's cache.
    pub(crate) async fn list_folder(&self, path: &str) -> Result<Vec<Entry>> {
        let inner = &*self.inner;
        let body = json!({
            "fs": inner.config.remote,
            "remote": remote_path(path),
            "opt": {"recurse": false},
        });
        Counters::bump(&inner.counters.listings);
        let reply = self
            .command("/operations/list", &body, "list", path)
            .await?;
        let reply: ListReply = serde_json::from_value(reply).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("rclone's listing reply has an unexpected shape: {e}"),
            )
            .permanent()
            .with("operation", "list")
            .with("path", path.to_owned())
            .with("source", inner.http.shown.clone())
        })?;
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        for item in reply.list.unwrap_or_default() {
            match entry_of(&item) {
                Some(e) if seen.insert(e.name.clone()) => entries.push(e),
                Some(_) => {}
                None => tracing::warn!(folder = path, "skipped an entry without a usable name"),
            }
        }
        Ok(entries)
    }

    /// One path: its parent listed, the name found in it (the documented rc call; one
    /// listing like any other).
    pub(crate) async fn lookup(&self, path: &str) -> Result<Entry> {
        if remote_path(path).is_empty() {
            return Ok(Entry::dir("/", None));
        }
        let parent = path::parent(path).unwrap_or("/");
        let name = path::file_name(path);
        Counters::bump(&self.inner.counters.lookups);
        let entries = self.list_folder(parent).await?;
        entries.into_iter().find(|e| e.name == name).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "rclone lists no such path")
                .permanent()
                .with("operation", "stat")
                .with("path", path.to_owned())
                .with("source", self.inner.http.shown.clone())
        })
    }

    /// `vfs/refresh` of one folder (not recursive): the mount re-reads it.
    pub(crate) async fn vfs_refresh(&self, path: &str) -> Result<()> {
        let dir = remote_path(path);
        let body = if dir.is_empty() {
            json!({})
        } else {
            json!({"dir": dir})
        };
        Counters::bump(&self.inner.counters.refreshes);
        self.command("/vfs/refresh", &body, "vfs_refresh", path)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn remote_paths() {
        assert_eq!(super::remote_path("/"), "");
        assert_eq!(super::remote_path("/TV/a b"), "TV/a b");
    }
}
