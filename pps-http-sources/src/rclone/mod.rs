//! rclone's remote-control API as a pps directory source.

mod client;
mod config;
mod core;

pub use self::client::RcloneClient;
pub use self::config::RcloneConfig;

use crate::http::{Counters, Stats};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use pps_core::layers::{LayerStats, RateLimit, Retry};
use pps_core::listing::Fingerprint;
use pps_core::{DirectorySource, Entry, Hint, ListOptions, Result};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// An rclone rc server as a pps [`DirectorySource`]: client, rate limit and retries,
/// and optionally `vfs/refresh` of folders whose listing changed. Cheap to clone;
/// clones share the limiter and the counters.
#[derive(Clone)]
pub struct Rclone {
    stack: Retry<RateLimit<RcloneClient>>,
    counters: Arc<Counters>,
    layers: Arc<LayerStats>,
    /// The last listing of each folder this process saw, to notice a change (only kept
    /// with `vfs_refresh` on).
    seen: Arc<Mutex<HashMap<String, Fingerprint>>>,
}

impl fmt::Debug for Rclone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rclone")
            .field("source", &self.source_name())
            .field("remote", &self.client().inner.config.remote)
            .field("rate", &self.current_rate())
            .finish_non_exhaustive()
    }
}

impl Rclone {
    /// Checks `config` and builds the stack; no call is made yet.
    pub fn connect(config: RcloneConfig) -> Result<Self> {
        let counters = Arc::new(Counters::default());
        let layers = Arc::new(LayerStats::default());
        let pacing = config.pacing.clone();
        let client = RcloneClient::with_counters(config, counters.clone())?;
        Ok(Rclone {
            stack: pacing.stack(client, layers.clone()),
            counters,
            layers,
            seen: Arc::default(),
        })
    }

    fn client(&self) -> &RcloneClient {
        self.stack.inner().inner()
    }

    /// Makes every call ask `gate` first, after this source's own rate limit (the
    /// budget shared with other processes). False when one was already set.
    pub fn share_budget(&self, gate: Arc<dyn pps_core::CallGate>) -> bool {
        self.stack.inner().share_budget(gate)
    }

    /// What `pps check` asks, paced but never retried: one listing of the remote's
    /// root, so a wrong password, a wrong port, a server that is not rclone or a remote
    /// rclone does not know is reported at once in plain words.
    pub async fn check(&self) -> Result<()> {
        self.stack.inner().list("/", ListOptions::default()).await?;
        Ok(())
    }

    /// Counters since this source was made.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot(&self.layers)
    }

    /// The rate in force now (lower than configured for a while after throttling).
    pub fn current_rate(&self) -> f64 {
        self.stack.inner().current_rate()
    }

    /// The url without credentials, as used in errors and logs.
    pub fn source_name(&self) -> &str {
        self.client().source()
    }

    /// With `vfs_refresh` on: when `path` listed differently from the last time this
    /// process listed it, asks the mount to re-read it (paced like a listing; a
    /// failure is logged, never the listing's failure).
    async fn refresh_if_changed(&self, path: &str, entries: &[Entry]) {
        let fingerprint = pps_core::listing::encode(entries).fingerprint;
        let before = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.insert(path.to_owned(), fingerprint)
        };
        if before.is_none_or(|b| b == fingerprint) {
            return;
        }
        let client = self.client();
        if let Err(e) = self.stack.inner().paced(client.vfs_refresh(path)).await {
            tracing::warn!(source = %self.source_name(), folder = path, "vfs/refresh failed: {e}");
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl DirectorySource for Rclone {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        let entries = self.stack.list(path, options).await?;
        if self.client().inner.config.vfs_refresh {
            self.refresh_if_changed(path, &entries).await;
        }
        Ok(entries)
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.stack.stat(path).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        None
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl DirectorySource for RcloneClient {
    /// rc listings come from the remote itself: there is no cache to skip.
    async fn list(&self, path: &str, _options: ListOptions) -> Result<Vec<Entry>> {
        self.list_folder(path).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.lookup(path).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        // rclone's rc has no change feed.
        None
    }
}
