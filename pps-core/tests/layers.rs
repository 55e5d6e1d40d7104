//! The rate limit and retry layers on their own, over a scripted source, with tokio's
//! paused clock: every instant below is exact.

use async_trait::async_trait;
use pps_core::layers::{RateLimit, RateLimitPolicy, Retry, RetryPolicy};
use pps_core::{DirectorySource, Entry, Error, ErrorKind, ListOptions, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Records when each call arrived and answers from a script (`None` = success).
#[derive(Debug, Default, Clone)]
struct Scripted {
    calls: Arc<Mutex<Vec<Instant>>>,
    script: Arc<Mutex<VecDeque<Option<ErrorKind>>>>,
}

impl Scripted {
    fn with_script(script: impl IntoIterator<Item = Option<ErrorKind>>) -> Self {
        Scripted {
            calls: Arc::default(),
            script: Arc::new(Mutex::new(script.into_iter().collect())),
        }
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl DirectorySource for Scripted {
    async fn list(&self, _path: &str, _options: ListOptions) -> Result<Vec<Entry>> {
        self.calls.lock().unwrap().push(Instant::now());
        match self.script.lock().unwrap().pop_front().flatten() {
            None => Ok(vec![Entry::file("a", 1, None)]),
            Some(kind) => Err(Error::new(kind, "scripted")),
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.list(path, ListOptions::default())
            .await
            .map(|mut e| e.remove(0))
    }
}

/// The most calls in any half-open window of `window` starting at a call.
fn max_in_window(calls: &[Instant], window: Duration) -> usize {
    let mut sorted = calls.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| **t < sorted[i] + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_never_exceed_the_rate() {
    let inner = Scripted::with_script([]);
    let limited = Arc::new(RateLimit::new(inner.clone(), RateLimitPolicy::new(5.0, 1)));
    let start = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let limited = limited.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    limited.list("/", ListOptions::default()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let calls = inner.calls();
    assert_eq!(calls.len(), 50);
    assert_eq!(
        max_in_window(&calls, Duration::from_secs(1)),
        5,
        "never above 5 in any second"
    );
    assert_eq!(max_in_window(&calls, Duration::from_secs(10)), 50);
    // 50 calls at 5/s: the last one goes out at 49 × 0.2 s.
    let elapsed = calls.iter().max().unwrap().duration_since(start);
    assert!(
        elapsed >= Duration::from_millis(9_799) && elapsed <= Duration::from_millis(9_850),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn fractional_rate_with_a_burst() {
    let inner = Scripted::with_script([]);
    let limited = RateLimit::new(inner.clone(), RateLimitPolicy::new(0.9, 2));
    let start = Instant::now();
    for _ in 0..11 {
        limited.list("/", ListOptions::default()).await.unwrap();
    }
    let calls: Vec<f64> = inner
        .calls()
        .iter()
        .map(|t| t.duration_since(start).as_secs_f64())
        .collect();
    // Two at once, then one every 1/0.9 s.
    assert!(calls[0] < 0.001 && calls[1] < 0.001, "{calls:?}");
    for pair in calls[1..].windows(2) {
        assert!((pair[1] - pair[0] - 1.0 / 0.9).abs() < 0.01, "{calls:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_halves_the_rate_then_recovers() {
    // The third call is throttled.
    let inner = Scripted::with_script([None, None, Some(ErrorKind::Throttled)]);
    let policy = RateLimitPolicy::new(4.0, 1).with_cooldown(Duration::from_secs(30));
    let limited = RateLimit::new(inner.clone(), policy);
    for _ in 0..3 {
        let _ = limited.list("/", ListOptions::default()).await;
    }
    assert_eq!(limited.current_rate(), 2.0);
    for _ in 0..5 {
        limited.list("/", ListOptions::default()).await.unwrap();
    }
    let calls = inner.calls();
    for pair in calls[2..].windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(499),
            "half rate after throttling: {:?}",
            pair[1] - pair[0]
        );
    }
    // After a quiet cooldown the next call brings the full rate back.
    tokio::time::sleep(Duration::from_secs(31)).await;
    limited.list("/", ListOptions::default()).await.unwrap();
    assert_eq!(limited.current_rate(), 4.0);
    let before = inner.calls().len();
    let start = Instant::now();
    for _ in 0..8 {
        limited.list("/", ListOptions::default()).await.unwrap();
    }
    assert_eq!(inner.calls().len() - before, 8);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1_999) && took <= Duration::from_millis(2_050),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_backs_off_exponentially_with_jitter() {
    let unavailable = Some(ErrorKind::Unavailable);
    let inner = Scripted::with_script([unavailable, unavailable, unavailable]);
    let policy = RetryPolicy::new(4).with_backoff(
        Duration::from_secs(1),
        Duration::from_secs(8),
        Duration::from_secs(60),
    );
    let retry = Retry::new(inner.clone(), policy);
    let start = Instant::now();
    retry.list("/", ListOptions::default()).await.unwrap();
    let calls = inner.calls();
    assert_eq!(calls.len(), 4);
    // Waits of 1, 2 and 4 s, each jittered into its upper half.
    for (i, pair) in calls.windows(2).enumerate() {
        let full = Duration::from_secs(1 << i);
        let wait = pair[1] - pair[0];
        assert!(wait >= full / 2 && wait <= full, "wait {i}: {wait:?}");
    }
    assert!(start.elapsed() <= Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn retry_stops_on_permanent_errors_and_after_its_budget() {
    let inner = Scripted::with_script([Some(ErrorKind::NotFound)]);
    let retry = Retry::new(inner.clone(), RetryPolicy::new(4));
    let err = retry.list("/", ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(inner.calls().len(), 1);

    let throttled = Some(ErrorKind::Throttled);
    let inner = Scripted::with_script([throttled; 10]);
    let policy = RetryPolicy::new(2).with_backoff(
        Duration::from_secs(1),
        Duration::from_secs(10),
        Duration::from_secs(60),
    );
    let retry = Retry::new(inner.clone(), policy);
    let err = retry.stat("/x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert_eq!(err.context_value("attempts"), Some("3"));
    let calls = inner.calls();
    assert_eq!(calls.len(), 3);
    // Throttled answers use the longer first wait.
    assert!(calls[1] - calls[0] >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn the_stack_retries_through_the_limiter() {
    // Retry outside RateLimit: each retry waits for the limiter too.
    let throttled = Some(ErrorKind::Throttled);
    let inner = Scripted::with_script([throttled, throttled]);
    let limited = RateLimit::new(inner.clone(), RateLimitPolicy::new(1.0, 1));
    let policy = RetryPolicy::new(3).with_backoff(
        Duration::from_millis(10),
        Duration::from_millis(10),
        Duration::from_secs(1),
    );
    let stack = Retry::new(limited, policy);
    stack.list("/", ListOptions::default()).await.unwrap();
    let calls = inner.calls();
    assert_eq!(calls.len(), 3);
    // After one throttle the rate is 1/2 per second, after two 1/4.
    assert!(
        calls[1] - calls[0] >= Duration::from_millis(1_999),
        "{:?}",
        calls[1] - calls[0]
    );
    assert!(
        calls[2] - calls[1] >= Duration::from_millis(3_999),
        "{:?}",
        calls[2] - calls[1]
    );
    assert_eq!(stack.inner().current_rate(), 0.25);
}
