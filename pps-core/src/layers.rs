//! Rate limit and retry, as layers: structs that wrap any inner [`DirectorySource`] and
//! are one themselves, so each is tested on its own with a fake inner source and
//! tokio's paused clock.
//!
//! They live in core so any source can use them (a local source, a third-party one),
//! behind the `layers` feature (the limiter is governor's). CloudDrive2 stacks them as
//! `Retry(RateLimit(client))`: every
//! attempt the retry layer makes passes through the limiter (a retry costs a cloud
//! call like any other, so it must pay for it), and the limiter sees every throttled
//! answer first, so it can lower the rate before the retry layer tries again.
//!
//! Both read time from tokio (`tokio::time::Instant`, `tokio::time::sleep`), so a test
//! with `#[tokio::test(start_paused = true)]` runs hours of pacing in microseconds and
//! sees exact instants.

use crate::budget::CallGate;
use crate::{DirectorySource, Entry, ErrorKind, Hint, ListOptions, Result};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What the layers of one source did; shared by its layers (and their clones) and
/// read by whoever reports on the source. Every counter only grows.
#[derive(Debug, Default)]
pub struct LayerStats {
    retries: AtomicU64,
    rate_lowered: AtomicU64,
    waited_nanos: AtomicU64,
}

impl LayerStats {
    /// Attempts repeated by [`Retry`].
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Times [`RateLimit`] lowered its rate after a throttled answer.
    pub fn rate_lowered(&self) -> u64 {
        self.rate_lowered.load(Ordering::Relaxed)
    }

    /// Time calls spent waiting for [`RateLimit`], summed.
    pub fn limiter_wait(&self) -> Duration {
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A small random number source for backoff jitter. Seeded from std's per-process
/// random hash keys, so it needs no extra dependency; jitter needs no cryptography.
#[derive(Debug)]
pub struct Jitter(Mutex<u64>);

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Jitter {
    /// A source seeded afresh.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        Jitter(Mutex::new(h.finish() | 1))
    }

    /// A value in `[0, 1)`.
    pub fn next_f64(&self) -> f64 {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // xorshift64*
        let mut x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// governor's clock, read from tokio's clock so that paused time pauses the limiter too.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// How fast a [`RateLimit`] lets calls through.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RateLimitPolicy {
    /// Calls per second; fractional values are fine.
    pub queries_per_second: f64,
    /// Calls that may go out at once after a quiet spell (at least 1).
    pub burst: u32,
    /// How long a lowered rate holds after a throttled answer before it steps back up.
    pub throttle_cooldown: Duration,
}

impl RateLimitPolicy {
    /// A policy of `queries_per_second` with `burst`, and a two-minute cooldown.
    pub fn new(queries_per_second: f64, burst: u32) -> Self {
        RateLimitPolicy {
            queries_per_second,
            burst: burst.max(1),
            throttle_cooldown: Duration::from_secs(120),
        }
    }

    /// The same policy with another cooldown.
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.throttle_cooldown = cooldown;
        self
    }
}

/// The most the rate is halved after throttling: 1/8 of the configured rate.
const MAX_SLOWDOWN: u32 = 3;

struct Shaper {
    policy: RateLimitPolicy,
    clock: TokioClock,
    counters: Arc<LayerStats>,
    state: Mutex<ShaperState>,
    /// The budget shared beyond this process, asked after this process's own pacing.
    gate: std::sync::OnceLock<Arc<dyn CallGate>>,
}

struct ShaperState {
    /// 0 is the configured rate; each level halves it.
    level: u32,
    limiter: Arc<Limiter>,
    /// When the current lowered rate may step back up.
    calm_until: Instant,
}

impl Shaper {
    fn new(policy: RateLimitPolicy, counters: Arc<LayerStats>) -> Self {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let limiter = Arc::new(Self::limiter(&policy, clock, 0, false));
        Shaper {
            policy,
            clock,
            counters,
            state: Mutex::new(ShaperState {
                level: 0,
                limiter,
                calm_until: Instant::now(),
            }),
            gate: std::sync::OnceLock::new(),
        }
    }

    fn rate(policy: &RateLimitPolicy, level: u32) -> f64 {
        policy.queries_per_second / f64::from(1u32 << level)
    }

    /// A limiter at `level`. A replacement starts `drained`: as if it had just let a
    /// call through, so swapping limiters never opens a burst and the configured rate
    /// holds across the swap.
    fn limiter(policy: &RateLimitPolicy, clock: TokioClock, level: u32, drained: bool) -> Limiter {
        // At most a day between calls: guards the conversion against absurd rates.
        let period = Duration::try_from_secs_f64(1.0 / Self::rate(policy, level))
            .unwrap_or(Duration::from_secs(86_400))
            .clamp(Duration::from_nanos(1), Duration::from_secs(86_400));
        let burst = if level == 0 { policy.burst.max(1) } else { 1 };
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let limiter = RateLimiter::direct_with_clock(quota, clock);
        if drained {
            // The bucket holds exactly `burst` cells, so this cannot fail; ignoring the
            // result keeps a surprise from becoming a panic.
            let _ = limiter.check_n(burst);
        }
        limiter
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ShaperState> {
        // A panic elsewhere while holding the lock leaves consistent state: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a call may go out.
    async fn acquire(&self) {
        loop {
            let limiter = {
                let mut state = self.state();
                if state.level > 0 && Instant::now() >= state.calm_until {
                    state.level -= 1;
                    state.limiter =
                        Arc::new(Self::limiter(&self.policy, self.clock, state.level, true));
                    state.calm_until = Instant::now() + self.policy.throttle_cooldown;
                    tracing::info!(
                        rate = Self::rate(&self.policy, state.level),
                        "rate limit steps back up"
                    );
                }
                state.limiter.clone()
            };
            match limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    // Not tokio's sleep alone: with a burst of 1 the limiter counts
                    // from when a call goes out, so its ~1 ms lateness is rate lost.
                    crate::clock::sleep_precisely(wait).await;
                }
            }
        }
    }

    /// A throttled answer arrived: halve the rate (down to 1/8) and restart the cooldown.
    fn throttled(&self) {
        let mut state = self.state();
        if state.level < MAX_SLOWDOWN {
            state.level += 1;
            state.limiter = Arc::new(Self::limiter(&self.policy, self.clock, state.level, true));
            LayerStats::bump(&self.counters.rate_lowered);
            tracing::warn!(
                rate = Self::rate(&self.policy, state.level),
                "cd2 throttled a call; lowering the rate for a while"
            );
        }
        state.calm_until = Instant::now() + self.policy.throttle_cooldown;
    }

    fn current_rate(&self) -> f64 {
        Self::rate(&self.policy, self.state().level)
    }
}

/// Paces the calls of the inner source with a governor limiter shared by every call
/// (and every clone) of this source; lowers the rate after a throttled answer and steps
/// back up after a quiet cooldown.
pub struct RateLimit<S> {
    inner: S,
    shaper: Arc<Shaper>,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            shaper: self.shaper.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("policy", &self.shaper.policy)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S> RateLimit<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: RateLimitPolicy) -> Self {
        Self::with_stats(inner, policy, Arc::new(LayerStats::default()))
    }

    /// Wraps `inner` with `policy`, counting into `stats` (shared with other layers of
    /// the same source).
    pub fn with_stats(inner: S, policy: RateLimitPolicy, counters: Arc<LayerStats>) -> Self {
        RateLimit {
            inner,
            shaper: Arc::new(Shaper::new(policy, counters)),
        }
    }

    /// The rate in force now, in calls per second: the configured one, or lower for a
    /// while after throttling.
    pub fn current_rate(&self) -> f64 {
        self.shaper.current_rate()
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Asks `gate` too before every call, after this layer's own pacing: a budget
    /// shared with other processes ([`StoreGate`](crate::budget::StoreGate)). Set once,
    /// for this layer and every clone of it; false when a gate was already set.
    pub fn share_budget(&self, gate: Arc<dyn CallGate>) -> bool {
        self.shaper.gate.set(gate).is_ok()
    }

    /// Runs `call` once the limiter lets it through: for calls that are not listings
    /// but cost the server all the same (a health probe).
    pub async fn paced<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let asked = Instant::now();
        self.shaper.acquire().await;
        if let Some(gate) = self.shaper.gate.get() {
            gate.acquire().await;
        }
        // Kept apart from the calls' own latency: time spent waiting for the limiter
        // says the rate is the bottleneck, not the cloud.
        self.shaper
            .counters
            .waited_nanos
            .fetch_add(asked.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let result = call.await;
        if let Err(err) = &result
            && err.kind() == ErrorKind::Throttled
        {
            self.shaper.throttled();
            if let Some(gate) = self.shaper.gate.get() {
                gate.throttled();
            }
        }
        result
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: DirectorySource> DirectorySource for RateLimit<S> {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        self.paced(self.inner.list(path, options)).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.paced(self.inner.stat(path)).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        // One long-lived call, not a cloud query: not paced.
        self.inner.hints()
    }
}

/// When and how often [`Retry`] tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// First wait after a transient failure.
    pub backoff: Duration,
    /// First wait after a throttled answer (longer: the cloud asked us to slow down).
    pub throttle_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// `retries` attempts after the first, with 0.5 s / 5 s first waits and a 2 min cap.
    pub fn new(retries: u32) -> Self {
        RetryPolicy {
            retries,
            backoff: Duration::from_millis(500),
            throttle_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(120),
        }
    }

    /// The same policy with other waits.
    pub fn with_backoff(
        mut self,
        backoff: Duration,
        throttle_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        self.backoff = backoff;
        self.throttle_backoff = throttle_backoff;
        self.max_backoff = max_backoff;
        self
    }

    /// The wait before retry number `attempt` (0-based) after an error of `kind`,
    /// before jitter: doubling from the first wait, capped.
    pub fn delay(&self, kind: ErrorKind, attempt: u32) -> Duration {
        let first = if kind == ErrorKind::Throttled {
            self.throttle_backoff
        } else {
            self.backoff
        };
        first
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_backoff)
    }
}

/// Retries temporary failures (throttled, unavailable, cut streams) with exponential
/// backoff and jitter; permanent ones (not found, refused, bad credentials) pass
/// through at once. A listing is retried whole, so it is never returned half-read.
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    counters: Arc<LayerStats>,
    jitter: Arc<Jitter>,
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            policy: self.policy,
            counters: self.counters.clone(),
            jitter: self.jitter.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("policy", &self.policy)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S> Retry<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self::with_stats(inner, policy, Arc::new(LayerStats::default()))
    }

    /// Wraps `inner` with `policy`, counting into `stats` (shared with other layers of
    /// the same source).
    pub fn with_stats(inner: S, policy: RetryPolicy, counters: Arc<LayerStats>) -> Self {
        Retry {
            inner,
            policy,
            counters,
            jitter: Arc::new(Jitter::new()),
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn retried<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0u32;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_temporary() && attempt < self.policy.retries => {
                    let delay = self.policy.delay(err.kind(), attempt);
                    // "Equal jitter": at least half the delay, so backoff still grows,
                    // and spread over the other half, so parallel callers do not retry
                    // in lockstep.
                    let wait = delay / 2 + delay.mul_f64(self.jitter.next_f64() / 2.0);
                    tracing::debug!(error = %err, ?wait, attempt, "retrying after a temporary failure");
                    LayerStats::bump(&self.counters.retries);
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                Err(err) => {
                    return Err(if attempt > 0 {
                        err.with_default("attempts", (attempt + 1).to_string())
                    } else {
                        err
                    });
                }
            }
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: DirectorySource> DirectorySource for Retry<S> {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        self.retried(|| self.inner.list(path, options)).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.retried(|| self.inner.stat(path)).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        // The push stream reconnects by itself.
        self.inner.hints()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let j = Jitter::new();
        for _ in 0..1000 {
            let x = j.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn delays_double_and_cap() {
        let p = RetryPolicy::new(5).with_backoff(
            Duration::from_secs(1),
            Duration::from_secs(4),
            Duration::from_secs(10),
        );
        assert_eq!(p.delay(ErrorKind::Unavailable, 0), Duration::from_secs(1));
        assert_eq!(p.delay(ErrorKind::Unavailable, 2), Duration::from_secs(4));
        assert_eq!(p.delay(ErrorKind::Throttled, 1), Duration::from_secs(8));
        assert_eq!(p.delay(ErrorKind::Throttled, 9), Duration::from_secs(10));
    }
}
