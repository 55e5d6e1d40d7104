//! Helpers shared by the target tests: request matchers, a recording responder, log
//! capture, and servers that refuse or drop connections.

use pps_core::ScanRequest;
use std::io::Write;
use std::sync::{Arc, Mutex};
use wiremock::{Match, Request, Respond, ResponseTemplate};

/// The token every test uses; no log line or error may ever show it.
pub const TOKEN: &str = "tok-SECRET-4242";

/// Matches when the raw (still encoded) query string is exactly `expected`.
pub struct RawQuery(pub Option<&'static str>);

impl Match for RawQuery {
    fn matches(&self, request: &Request) -> bool {
        request.url.query() == self.0
    }
}

/// Matches when the request lacks header `name`.
pub struct NoHeader(pub &'static str);

impl Match for NoHeader {
    fn matches(&self, request: &Request) -> bool {
        !request.headers.contains_key(self.0)
    }
}

/// A responder that records what each request asked for (as the server understood it)
/// and answers with `template`.
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<ScanRequest>>>,
    pub parse: fn(&Request) -> Vec<ScanRequest>,
    pub template: ResponseTemplate,
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let parsed = (self.parse)(request);
        if let Ok(mut seen) = self.seen.lock() {
            seen.extend(parsed);
        }
        self.template.clone()
    }
}

/// Captured log output of the current thread, at every level.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Starts capturing; logs are captured until the guard drops. Tests run on a
    /// current-thread runtime, so every event of the test lands here.
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }

    /// Panics if any line shows the token; returns the text for more checks.
    pub fn assert_no_token(&self) -> String {
        let text = self.text();
        assert!(!text.contains(TOKEN), "a log line shows the token:\n{text}");
        text
    }
}

/// The address of a port nobody listens on (bound, then released).
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A server that accepts each connection, reads the request, and closes without a reply.
pub async fn dropping_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        }
    });
    format!("http://{addr}")
}

/// A scan request.
pub fn req(path: &str, update: pps_core::Update, is_dir: bool) -> ScanRequest {
    ScanRequest {
        path: path.to_owned(),
        update,
        is_dir,
    }
}
