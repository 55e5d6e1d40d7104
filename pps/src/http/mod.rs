//! The HTTP wing: the service's endpoints (health, metrics, triggers, webhooks) in
//! [`server`] and the web UI in [`ui`]. The service hands it an [`App`](crate::App), the
//! wake-ups of its loops and a [`Kept`]; nothing outside this module names a handler.

pub mod server;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

/// How long a client may take to send a request's headers (also how long an idle
/// keep-alive connection is kept: the wait for the next request's headers).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in all, its handler included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client's address, set by the server for each connection (the UI's login limit
/// and its trusted proxies read it).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Compares a presented secret (a token, a CSRF token) with the expected one in
/// constant time, so the time taken says nothing about how much of a guess was right.
/// Only the length may show, which says nothing about the content.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// What the HTTP wing keeps from one config to the next while
/// [`service::run`](crate::service::run) applies edits: the listening socket and the
/// UI's sessions and login limits. A bare [`service::serve`](crate::service::serve)
/// makes a new one.
#[derive(Debug, Default)]
pub struct Kept {
    /// The UI's sessions and login limits: a reload logs nobody out.
    pub(crate) ui: Arc<ui::Sessions>,
    /// What `/metrics` and the Overview count: a reload is no restart, so the counters
    /// go on (they used to start again from zero at every UI edit).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The listening socket, kept across reloads: closing it and binding again left a
    /// gap in which a local process could take the port (and receive the next login
    /// and webhook tokens). Each `serve` listens on a duplicate of it.
    listener: std::sync::Mutex<Option<(std::net::SocketAddr, std::net::TcpListener)>>,
}

impl Kept {
    /// A listener on `addr` for one `serve`: the socket kept from an earlier `serve`
    /// when it listens on the same address, else a new one (which is then kept).
    ///
    /// The socket is never closed between two configs, so no other process can bind
    /// the port during a reload. When `listen` changed and the new address cannot be
    /// bound, the socket in force is kept (the error is logged): the UI stays where
    /// it was instead of the service exiting.
    pub async fn listener_for(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<tokio::net::TcpListener> {
        let kept = {
            let slot = self
                .listener
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.as_ref().map(|(a, l)| (*a, l.try_clone()))
        };
        match kept {
            Some((a, l)) if a == addr => return tokio::net::TcpListener::from_std(l?),
            _ => {}
        }
        // tokio's bind sets SO_REUSEADDR (a restart need not wait out TIME_WAIT).
        let fresh = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l.into_std()?,
            Err(e) => {
                if let Some((old, l)) = kept {
                    tracing::error!(%addr, error = %e, %old, "cannot listen on the new address; staying on the old one");
                    return tokio::net::TcpListener::from_std(l?);
                }
                return Err(e);
            }
        };
        let copy = fresh.try_clone()?;
        *self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((addr, fresh));
        tokio::net::TcpListener::from_std(copy)
    }
}

/// The HTTP wing of one config: its endpoints and, when `[ui]` has a password, the web
/// UI, on the kept socket. The service spawns what this returns and knows nothing of
/// routers. `None` when the config has no `listen`: the kept socket is closed then (a
/// removed `listen` must stop answering, not leave a port that accepts and never
/// replies).
///
/// A config without the UI also ends every UI session: turning the UI off and on again
/// must not bring back the sessions of before.
pub async fn start(
    app: &crate::App,
    kept: &Kept,
    wakes: std::collections::BTreeMap<String, Arc<tokio::sync::Notify>>,
    watches: Vec<(pps_core::Watch, Arc<tokio::sync::Notify>)>,
    metrics: Arc<crate::metrics::Metrics>,
) -> pps_core::Result<Option<impl std::future::Future<Output = ()> + Send + 'static>> {
    let watch_wakes: Vec<_> = watches.iter().map(|(_, n)| n.clone()).collect();
    if app.config.ui.password_hash.is_none() {
        kept.ui.end_all();
    }
    let Some(addr) = app.config.server.listen else {
        kept.close();
        return Ok(None);
    };
    let listener = kept.listener_for(addr).await.map_err(|e| {
        pps_core::Error::new(
            pps_core::ErrorKind::ConfigInvalid,
            format!("cannot listen on {addr}: {e}"),
        )
        .with("key", "server.listen")
    })?;
    let generation = app.control.next_generation();
    let state = server::ServerState::new(app, watches, metrics.clone());
    let mut router = server::router(state);
    if let Some(ui) = ui::UiState::new(app, kept, wakes, &watch_wakes, metrics) {
        tracing::info!(%addr, base = %app.config.ui.base_path, "web UI on");
        router = ui::router(ui).merge(router);
    }
    let router = server::current_only(router, app.control.clone(), generation);
    let cap = server::connection_cap(app.config.server.max_connections);
    tracing::info!(%addr, max_connections = cap, "listening for health, metrics and triggers");
    Ok(Some(server::serve_http(listener, router, cap)))
}

impl Kept {
    /// The address the kept socket listens on, if one is kept.
    pub fn listening(&self) -> Option<std::net::SocketAddr> {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(a, _)| *a)
    }

    /// Closes the kept socket (the config no longer listens).
    fn close(&self) {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(same(b"token", b"token"));
        assert!(!same(b"token", b"tokem"));
        assert!(!same(b"token", b"token2"));
        assert!(!same(b"", b"x"));
        assert!(same(b"", b""));
    }
}
