//! CloudDrive2 as a pps directory source: pps lists `/115/电影` through cd2's gRPC API,
//! with no local mount.
//!
//! The one decision that shapes this crate: **every cloud call is paced, and failures
//! are sorted before anything retries them.** 115 bans accounts that list too fast, so
//! the source limits itself (a governor limiter in queries per second, fractional,
//! default 0.9) and, when cd2 reports that the cloud throttled a call, slows down
//! further for a while instead of hammering. Only temporary failures are retried; a
//! missing path, a refused permission or a wrong password is reported at once.
//!
//! # Layers
//! [`CloudDrive::connect`] builds, from the inside out:
//! 1. [`CloudDriveClient`]: one gRPC call per operation, authentication (API token, or
//!    user name and password through `GetToken`, renewed before it expires, with one
//!    fresh login on `UNAUTHENTICATED`), and the one status-to-error mapping.
//! 2. [`RateLimit`]: waits for the limiter before each call; halves the rate on a
//!    throttled answer and steps back up after a quiet cooldown.
//! 3. [`Retry`]: repeats temporary failures with exponential backoff and jitter.
//!
//! The order matters: retries sit outside the limiter so that every attempt pays for
//! its cloud call, and the limiter sits outside the client so that it sees every
//! throttled answer before the retry layer tries again.
//!
//! Push events (`PushMessage`) come through [`DirectorySource::hints`]; they only make
//! folders due sooner, so the stream ends quietly when a server has none.
//!
//! With the `mock` feature, [`mock::MockServer`] serves a tree from memory or a local
//! folder over real gRPC, with injectable faults; the `pps-mock-cd2` binary runs it.

#![warn(missing_docs)]

mod client;
mod config;
mod core;
#[cfg(feature = "mock")]
pub mod mock;
mod push;

/// The code generated from `proto/clouddrive.proto` (messages, client, server).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod proto {
    tonic::include_proto!("clouddrive");
}

pub use crate::client::{CloudDriveClient, SystemInfo};
pub use crate::config::{Auth, CloudDriveConfig};
pub use crate::core::{Latency, Stats};
pub use pps_core::layers::{RateLimit, RateLimitPolicy, Retry, RetryPolicy};

use crate::core::Counters;
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use pps_core::{DirectorySource, Entry, Hint, ListOptions, Result};
use std::fmt;
use std::sync::Arc;

/// A CloudDrive2 server as a pps [`DirectorySource`]: client, rate limit and retries.
/// Cheap to clone; clones share the limiter, the token and the counters.
#[derive(Clone)]
pub struct CloudDrive {
    stack: Retry<RateLimit<CloudDriveClient>>,
    counters: Arc<Counters>,
    layers: Arc<pps_core::layers::LayerStats>,
}

impl fmt::Debug for CloudDrive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudDrive")
            .field("source", &self.client().inner.source)
            .field("rate", &self.stack.inner().current_rate())
            .finish_non_exhaustive()
    }
}

impl CloudDrive {
    /// Checks `config` and builds the stack. No connection is made yet (the first call
    /// connects), so this fails only on a bad configuration; call
    /// [`system_info`](Self::system_info) to check that cd2 answers. Call it inside a
    /// tokio runtime (`Unexpected` error otherwise).
    pub fn connect(config: CloudDriveConfig) -> Result<Self> {
        let counters = Arc::new(Counters::default());
        let rate = RateLimitPolicy::new(config.max_queries_per_second, config.burst)
            .with_cooldown(config.throttle_cooldown);
        let retry = RetryPolicy::new(config.retries).with_backoff(
            config.backoff,
            config.throttle_backoff,
            config.max_backoff,
        );
        let layers = Arc::new(pps_core::layers::LayerStats::default());
        let client = CloudDriveClient::with_counters(config, counters.clone())?;
        let limited = RateLimit::with_stats(client, rate, layers.clone());
        Ok(CloudDrive {
            stack: Retry::with_stats(limited, retry, layers.clone()),
            counters,
            layers,
        })
    }

    /// Makes every call to the cloud (listings, retries, paced health checks) ask
    /// `gate` first, after this source's own rate limit: a budget shared with other
    /// processes ([`pps_core::StoreGate`]). Set once for this source and its clones;
    /// false when one was already set.
    pub fn share_budget(&self, gate: Arc<dyn pps_core::CallGate>) -> bool {
        self.stack.inner().share_budget(gate)
    }

    fn client(&self) -> &CloudDriveClient {
        self.stack.inner().inner()
    }

    /// cd2's health report (`GetSystemInfo`): needs no token, costs no cloud call, and
    /// is neither paced nor retried.
    pub async fn system_info(&self) -> Result<SystemInfo> {
        self.client().system_info().await
    }

    /// [`system_info`](Self::system_info) through the rate limiter, so a health check
    /// polled by a monitor counts against the source's budget like any other call.
    pub async fn system_info_paced(&self) -> Result<SystemInfo> {
        self.stack.inner().paced(self.client().system_info()).await
    }

    /// What `pps check` asks: cd2's health report, then one authenticated listing of
    /// `/` (cd2 answers it from memory: no cloud call), neither retried, so a wrong
    /// token, a wrong port or a server that is not cd2 is reported at once in plain
    /// words instead of after a round of retries.
    pub async fn check(&self) -> Result<SystemInfo> {
        let info = self.client().system_info().await?;
        self.stack.inner().list("/", ListOptions::default()).await?;
        Ok(info)
    }

    /// How long `GetSubFiles` calls took on the wire since this source was made: each
    /// call's own time, never the wait for the rate limiter (that is
    /// [`Stats::limiter_wait`]).
    pub fn listing_latency(&self) -> Latency {
        self.counters.listing_latency.snapshot()
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
        &self.client().inner.source
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl DirectorySource for CloudDrive {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        self.stack.list(path, options).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.stack.stat(path).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        self.stack.hints()
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl DirectorySource for CloudDriveClient {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        self.list_folder(path, options).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.lookup(path).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        if self.inner.config.push {
            Some(push::hints(self.inner.clone()))
        } else {
            None
        }
    }
}
