//! OpenList (and AList v3) as a pps directory source.

mod client;
mod config;
mod core;

pub use self::client::OpenListClient;
pub use self::config::{OpenListAuth, OpenListConfig};

use crate::http::{Counters, Stats};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use pps_core::layers::{LayerStats, RateLimit, Retry};
use pps_core::{DirectorySource, Entry, ErrorKind, Hint, ListOptions, Result};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// An OpenList server as a pps [`DirectorySource`]: client, rate limit and retries.
/// Cheap to clone; clones share the limiter, the token and the counters.
#[derive(Clone)]
pub struct OpenList {
    stack: Retry<RateLimit<OpenListClient>>,
    counters: Arc<Counters>,
    layers: Arc<LayerStats>,
    /// Set once OpenList refused `refresh: true`: later listings go without it.
    refresh_refused: Arc<AtomicBool>,
}

impl fmt::Debug for OpenList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenList")
            .field("source", &self.source_name())
            .field("rate", &self.current_rate())
            .finish_non_exhaustive()
    }
}

impl OpenList {
    /// Checks `config` and builds the stack; no call is made yet.
    pub fn connect(config: OpenListConfig) -> Result<Self> {
        let counters = Arc::new(Counters::default());
        let layers = Arc::new(LayerStats::default());
        let pacing = config.pacing.clone();
        let client = OpenListClient::with_counters(config, counters.clone())?;
        Ok(OpenList {
            stack: pacing.stack(client, layers.clone()),
            counters,
            layers,
            refresh_refused: Arc::new(AtomicBool::new(false)),
        })
    }

    fn client(&self) -> &OpenListClient {
        self.stack.inner().inner()
    }

    /// Makes every call ask `gate` first, after this source's own rate limit (the
    /// budget shared with other processes). False when one was already set.
    pub fn share_budget(&self, gate: Arc<dyn pps_core::CallGate>) -> bool {
        self.stack.inner().share_budget(gate)
    }

    /// What `pps check` asks, paced but never retried, so a wrong token, a wrong port
    /// or a server that is not OpenList is reported at once in plain words: a listing
    /// of `/` (OpenList builds it from its storage list), then, when `refresh` is on,
    /// the same listing with `refresh: true`, which OpenList refuses to a user without
    /// write permission.
    pub async fn check(&self) -> Result<()> {
        let limited = self.stack.inner();
        limited.list("/", ListOptions::default()).await?;
        if self.client().inner.config.refresh {
            limited.list("/", ListOptions::force_refresh()).await?;
        }
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
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl DirectorySource for OpenList {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        let mut options = options;
        if self.refresh_refused.load(Ordering::Relaxed) {
            options.force_refresh = false;
        }
        match self.stack.list(path, options).await {
            Err(e)
                if options.force_refresh
                    && e.kind() == ErrorKind::PermissionDenied
                    && e.context_value(self::core::REFRESH_REFUSED).is_some() =>
            {
                // A read-only user can still list: say so once, then list from the cache.
                if !self.refresh_refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(source = %self.source_name(), "{}; listing without refresh from now on", e.message());
                }
                self.stack.list(path, ListOptions::default()).await
            }
            other => other,
        }
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
impl DirectorySource for OpenListClient {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        self.list_folder(path, options).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.lookup(path).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        // OpenList has no change feed.
        None
    }
}
