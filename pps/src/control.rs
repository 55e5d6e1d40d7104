//! How the running service is steered from outside one config: requests to read the
//! config again (a web UI edit, SIGHUP), and the generation of the config in force.
//!
//! A leaf: it names nothing else in the crate, so [`App`](crate::App) can carry it and
//! every part of the service (the HTTP wing, the reload loop in
//! [`service::run`](crate::service::run)) can reach it without importing each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Shared by every [`App`](crate::App) the reload loop builds, so a request made
/// through one config's handlers is seen by the loop and by the next config's.
#[derive(Debug)]
pub struct Control {
    /// A changed config file should be applied (the web UI wrote one).
    reload: tokio::sync::Notify,
    /// The config should be read and applied even if the file looks unchanged (SIGHUP:
    /// a secret in an `_FILE` or the environment may have changed).
    forced: tokio::sync::Notify,
    generation: tokio::sync::watch::Sender<u64>,
    reloading: AtomicBool,
    /// The reader of the process's stdout went away (`pps run | head -1`), seen by
    /// watching the pipe rather than by a failed write.
    stdout_gone: tokio::sync::Notify,
    /// Why the config file on disk is not in force (a hand edit that was refused), until
    /// it is fixed or put back.
    refused: std::sync::Mutex<Option<String>>,
    /// A reload loop ([`service::run`](crate::service::run)) applies requests; a bare
    /// `serve` does not, and the web UI says so instead of waiting for one.
    applies: AtomicBool,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            reload: tokio::sync::Notify::new(),
            forced: tokio::sync::Notify::new(),
            generation: tokio::sync::watch::Sender::new(0),
            reloading: AtomicBool::new(false),
            stdout_gone: tokio::sync::Notify::new(),
            refused: std::sync::Mutex::new(None),
            applies: AtomicBool::new(false),
        }
    }
}

/// Why the reload loop looks at the config again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The file was edited (by the web UI): applied when its content changed.
    Edited,
    /// Asked for by the operator (SIGHUP): read and applied even when the file is the
    /// same.
    Forced,
}

impl Control {
    /// Asks the service to read its config file again and apply it when it changed.
    /// Without [`service::run`](crate::service::run) (a bare `serve`), nothing applies
    /// it.
    pub fn request_reload(&self) {
        self.reload.notify_one();
    }

    /// Asks the service to read its config again and apply it even when the file is
    /// unchanged, as SIGHUP does.
    pub fn force_reload(&self) {
        self.forced.notify_one();
    }

    /// Resolves at the next request, with its kind.
    pub async fn reload_requested(&self) -> Reload {
        tokio::select! {
            _ = self.forced.notified() => Reload::Forced,
            _ = self.reload.notified() => Reload::Edited,
        }
    }

    /// The generation of the config in force: one more each time a `serve` starts.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Waits (at most `limit`) for a generation after `seen`: the new config applied.
    /// False when it did not come in time.
    pub async fn wait_past(&self, seen: u64, limit: Duration) -> bool {
        let mut rx = self.generation.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|g| *g > seen))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The current `serve` stops to be replaced: it skips the last delivery (queued
    /// scans stay queued for the next one, which starts at once).
    pub fn set_reloading(&self, on: bool) {
        self.reloading.store(on, Ordering::SeqCst);
    }

    /// Whether the `serve` stopping now is being replaced by a new config.
    pub fn reloading(&self) -> bool {
        self.reloading.load(Ordering::SeqCst)
    }

    /// Says the reader of stdout is gone: the service's stdout targets are closed and
    /// it stops, leaving what is queued for the next start.
    pub fn stdout_gone(&self) {
        self.stdout_gone.notify_one();
    }

    /// Resolves once [`Control::stdout_gone`] was called.
    pub(crate) async fn stdout_gone_notified(&self) {
        self.stdout_gone.notified().await;
    }

    /// Whether a reload loop applies [`Control::request_reload`] (false under a bare
    /// `serve`: an edit then applies at the next start).
    pub fn applies_reloads(&self) -> bool {
        self.applies.load(Ordering::SeqCst)
    }

    pub(crate) fn set_applies_reloads(&self, on: bool) {
        self.applies.store(on, Ordering::SeqCst);
    }

    /// Why the config file is not in force: the message of the last refused edit,
    /// until a valid one is applied or the file is put back as it was.
    pub fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_refused(&self, why: Option<String>) {
        *self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = why;
    }

    /// A new `serve` is in force.
    pub(crate) fn next_generation(&self) -> u64 {
        self.set_reloading(false);
        self.generation.send_modify(|g| *g += 1);
        self.generation()
    }
}
