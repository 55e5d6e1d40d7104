//! A target that prints each scan request as one JSON line: the `stdout` target of
//! `pps run --watch DIR`, and a way to feed pps into any script.

use crate::error::{Error, Result};
use crate::target::{Capabilities, Library, ScanRequest, ScanTarget};
use async_trait::async_trait;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Writes `{"target":…,"path":…,"update":"created"|"modified"|"deleted","is_dir":…}`
/// per request, one per line, and flushes after each call, so a reader sees every
/// accepted scan at once. A write error fails the request, which then stays in the
/// outbox. A closed pipe (`pps run | head -1`) also resolves [`closed`](Self::closed),
/// so a program can end as Unix tools do instead of retrying a reader that is gone.
#[derive(Clone)]
pub struct JsonLinesTarget {
    name: String,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    closed: Arc<Closed>,
}

#[derive(Default)]
struct Closed {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl fmt::Debug for JsonLinesTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesTarget")
            .field("name", &self.name)
            .finish()
    }
}

impl JsonLinesTarget {
    /// Prints to standard output.
    pub fn stdout(name: impl Into<String>) -> Self {
        Self::new(name, Box::new(std::io::stdout()))
    }

    /// Prints to any writer.
    pub fn new(name: impl Into<String>, out: Box<dyn Write + Send>) -> Self {
        JsonLinesTarget {
            name: name.into(),
            out: Arc::new(Mutex::new(out)),
            closed: Arc::default(),
        }
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Says the reader is gone without a write having found it (a program that watches
    /// its stdout pipe for the reader's end): [`closed`](Self::closed) resolves, and
    /// every later call fails at once without writing.
    pub fn mark_closed(&self) {
        self.closed.flag.store(true, Ordering::SeqCst);
        self.closed.notify.notify_waiters();
    }

    /// True once a write found the reader gone (a broken pipe), or
    /// [`mark_closed`](Self::mark_closed) said so.
    pub fn is_closed(&self) -> bool {
        self.closed.flag.load(Ordering::SeqCst)
    }

    /// Resolves once a write found the reader gone (a broken pipe); at once if that has
    /// happened already.
    pub async fn closed(&self) {
        loop {
            let notified = self.closed.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.closed.flag.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl ScanTarget for JsonLinesTarget {
    fn capabilities(&self) -> Capabilities {
        Capabilities::files(1000)
    }

    async fn libraries(&self) -> Result<Vec<Library>> {
        Ok(Vec::new())
    }

    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let mut buf = Vec::with_capacity(requests.len() * 96);
        for r in requests {
            // A struct, not json!: its keys keep this order (json! sorts them), the order
            // the README shows and a reader expects: who, where, what.
            #[derive(serde::Serialize)]
            struct Line<'a> {
                target: &'a str,
                path: &'a str,
                update: crate::Update,
                is_dir: bool,
            }
            let line = Line {
                target: &self.name,
                path: &r.path,
                update: r.update,
                is_dir: r.is_dir,
            };
            // Serialising strings, an enum and a bool cannot fail.
            let _ = serde_json::to_writer(&mut buf, &line);
            buf.push(b'\n');
        }
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // One write for the whole batch: either every line reaches the pipe or the
        // batch fails and is retried (a duplicate line is allowed, a lost one is not).
        match out.write_all(&buf).and_then(|()| out.flush()) {
            Ok(()) => requests.iter().map(|_| Ok(())).collect(),
            Err(e) => {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    self.mark_closed();
                    let err = Error::new(
                        crate::ErrorKind::Unavailable,
                        "the reader of standard output went away (a closed pipe); the scan stays queued",
                    )
                    .temporary()
                    .with("target", self.name.clone());
                    return crate::target::all_failed(requests.len(), &err);
                }
                let err = Error::from(e).temporary().with("target", self.name.clone());
                crate::target::all_failed(requests.len(), &err)
            }
        }
    }
}
