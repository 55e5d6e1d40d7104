//! Stand-ins for OpenList and rclone's rc over real HTTP on loopback (wiremock with a
//! responder that follows the documented request and reply shapes), serving a tree held
//! in memory, with injectable faults: throttled answers, a proxy's 503, latency, the
//! server going down and coming back on the same port, a refused token or login,
//! `refresh` without write permission.
//!
//! Every request is logged ([`StandIn::requests`]) with its method, path, the headers
//! pps sends and its JSON body, so tests assert what went over the wire.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One node of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// A folder, or a file of `size` bytes.
    pub dir: bool,
    /// Size in bytes (0 for a folder).
    pub size: u64,
    /// Seconds since the epoch; `None` is sent as the zero time (unknown).
    pub mtime: Option<i64>,
}

/// A tree of folders and files by absolute path (`/` always exists).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    clock: i64,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree {
            nodes: BTreeMap::new(),
            clock: 1_700_000_000,
        }
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    /// Creates a folder and any missing parents.
    pub fn create_dir(&mut self, path: &str) {
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            if !self.nodes.contains_key(&at) {
                let mtime = Some(self.tick());
                self.nodes.insert(
                    at.clone(),
                    Node {
                        dir: true,
                        size: 0,
                        mtime,
                    },
                );
            }
        }
    }

    /// Writes a file of `size` bytes, creating its parents.
    pub fn write_file(&mut self, path: &str, size: u64) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.create_dir(parent);
        }
        let mtime = Some(self.tick());
        self.nodes.insert(
            path.to_owned(),
            Node {
                dir: false,
                size,
                mtime,
            },
        );
    }

    /// Sets a path's mtime (`None`: unknown).
    pub fn set_mtime(&mut self, path: &str, mtime: Option<i64>) {
        if let Some(n) = self.nodes.get_mut(path) {
            n.mtime = mtime;
        }
    }

    /// Removes a path and everything under it.
    pub fn remove(&mut self, path: &str) {
        let under = format!("{}/", path.trim_end_matches('/'));
        self.nodes
            .retain(|p, _| p != path && !p.starts_with(&under));
    }

    /// The node at `path`; `/` is a folder.
    pub fn get(&self, path: &str) -> Option<Node> {
        if path == "/" {
            return Some(Node {
                dir: true,
                size: 0,
                mtime: None,
            });
        }
        self.nodes.get(path).cloned()
    }

    /// The direct children of the folder at `path`, or `None` when there is no folder.
    pub fn children(&self, path: &str) -> Option<Vec<(String, Node)>> {
        if !self.get(path)?.dir {
            return None;
        }
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        Some(
            self.nodes
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .filter(|(p, _)| !p[prefix.len()..].contains('/'))
                .map(|(p, n)| (p[prefix.len()..].to_owned(), n.clone()))
                .collect(),
        )
    }

    /// Folders in the tree (without `/`).
    pub fn folders(&self) -> usize {
        self.nodes.values().filter(|n| n.dir).count()
    }
}

/// Faults the stand-in injects, shared by every call.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Faults {
    /// The next this many listing or lookup calls are answered as throttled by the cloud.
    pub throttle_next: u32,
    /// The next this many calls of any kind get a proxy's HTTP 503.
    pub unavailable_next: u32,
    /// Delay before every answer.
    pub latency: Duration,
}

/// Which API a stand-in speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenList (AList v3): `POST /api/fs/list`, `/api/fs/get`, `/api/auth/login`.
    OpenList,
    /// rclone rc: `POST /operations/list`, `/vfs/refresh`.
    Rclone,
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The HTTP method.
    pub method: String,
    /// The url path (`/api/fs/list`).
    pub path: String,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Debug)]
struct State {
    api: Api,
    tree: Mutex<Tree>,
    faults: Mutex<Faults>,
    /// OpenList: the one token accepted (besides issued ones); rclone: none.
    token: Option<String>,
    /// OpenList: a user who may log in; rclone: the basic-auth pair.
    user: Option<(String, String)>,
    /// OpenList tokens issued by logins and still valid.
    issued: Mutex<Vec<String>>,
    logins: Mutex<u64>,
    refresh_allowed: bool,
    /// rclone: the remote name `fs` must be.
    remote: String,
    received: Mutex<Vec<Received>>,
}

/// Builds a [`StandIn`].
#[derive(Debug, Clone)]
pub struct StandInBuilder {
    api: Api,
    token: Option<String>,
    user: Option<(String, String)>,
    refresh_allowed: bool,
    remote: String,
    faults: Faults,
}

impl StandInBuilder {
    /// OpenList: accept this token (sent raw in `Authorization`).
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// OpenList: a user who may log in; rclone: `--rc-user` and `--rc-pass`.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.user = Some((name.to_owned(), password.to_owned()));
        self
    }

    /// OpenList: whether `refresh: true` is allowed (the user's write permission).
    pub fn refresh_allowed(mut self, allowed: bool) -> Self {
        self.refresh_allowed = allowed;
        self
    }

    /// rclone: the remote `fs` must name (default `"115dav:"`).
    pub fn remote(mut self, remote: &str) -> Self {
        self.remote = remote.to_owned();
        self
    }

    /// Faults from the start.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Serves `tree` on 127.0.0.1 on a free port.
    pub async fn start(self, tree: Tree) -> StandIn {
        let state = Arc::new(State {
            api: self.api,
            tree: Mutex::new(tree),
            faults: Mutex::new(self.faults),
            token: self.token,
            user: self.user,
            issued: Mutex::default(),
            logins: Mutex::default(),
            refresh_allowed: self.refresh_allowed,
            remote: self.remote,
            received: Mutex::default(),
        });
        let server = serve(&state, None).await;
        let addr = *server.address();
        StandIn {
            state,
            server: tokio::sync::Mutex::new(Some(server)),
            addr,
        }
    }
}

async fn serve(state: &Arc<State>, listener: Option<std::net::TcpListener>) -> MockServer {
    let mut builder = MockServer::builder().disable_request_recording();
    if let Some(l) = listener {
        builder = builder.listener(l);
    }
    let server = builder.start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Responder(state.clone()))
        .mount(&server)
        .await;
    server
}

/// A stand-in OpenList or rclone rc server.
#[derive(Debug)]
pub struct StandIn {
    state: Arc<State>,
    server: tokio::sync::Mutex<Option<MockServer>>,
    addr: SocketAddr,
}

impl StandIn {
    /// A builder for an OpenList stand-in (no auth, `refresh` allowed).
    pub fn openlist() -> StandInBuilder {
        StandInBuilder {
            api: Api::OpenList,
            token: None,
            user: None,
            refresh_allowed: true,
            remote: String::new(),
            faults: Faults::default(),
        }
    }

    /// A builder for an rclone rc stand-in (no auth, remote `115dav:`).
    pub fn rclone() -> StandInBuilder {
        StandInBuilder {
            api: Api::Rclone,
            token: None,
            user: None,
            refresh_allowed: true,
            remote: "115dav:".to_owned(),
            faults: Faults::default(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the tree.
    pub fn tree(&self, change: impl FnOnce(&mut Tree)) {
        change(&mut lock(&self.state.tree));
    }

    /// Changes the injected faults.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.state.faults));
    }

    /// OpenList: every token issued by a login stops being accepted (the JWTs expired).
    pub fn expire_tokens(&self) {
        lock(&self.state.issued).clear();
    }

    /// OpenList logins so far.
    pub fn logins(&self) -> u64 {
        *lock(&self.state.logins)
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Requests to `path` so far.
    pub fn calls(&self, path: &str) -> usize {
        lock(&self.state.received)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Stops listening: connections are refused until [`restart`](Self::restart).
    ///
    /// Returns once the port refuses a connection: wiremock shuts its server down on its own
    /// thread after the drop, and until then the kernel still queues connections on the old
    /// listener, which are then reset ("the connection broke") instead of refused.
    pub async fn stop(&self) {
        self.server.lock().await.take();
        // Real time, on a blocking thread: a test's paused clock must not cut the wait short.
        let addr = self.addr;
        let _ = tokio::task::spawn_blocking(move || {
            for _ in 0..500 {
                match std::net::TcpStream::connect(addr) {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        })
        .await;
    }

    /// Listens again on the same port, with the same tree.
    pub async fn restart(&self) -> std::io::Result<()> {
        let mut server = self.server.lock().await;
        if server.is_none() {
            let listener = std::net::TcpListener::bind(self.addr)?;
            *server = Some(serve(&self.state, Some(listener)).await);
        }
        Ok(())
    }
}

struct Responder(Arc<State>);

fn envelope(code: u16, message: &str, data: Value) -> ResponseTemplate {
    // OpenList sends its errors with HTTP 200 and the status in `code`.
    ResponseTemplate::new(200)
        .set_body_json(json!({"code": code, "message": message, "data": data}))
}

fn rclone_error(status: u16, error: &str, input: &Value, path: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({"error": error, "status": status, "input": input, "path": path.trim_start_matches('/')}),
    )
}

/// An RFC 3339 text in +08:00 (OpenList's usual zone), or the zero time.
fn rfc3339(mtime: Option<i64>, offset_hours: i64) -> String {
    let Some(secs) = mtime else {
        return "0001-01-01T00:00:00Z".to_owned();
    };
    let local = secs + offset_hours * 3600;
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let zone = if offset_hours == 0 {
        "Z".to_owned()
    } else {
        format!("+{offset_hours:02}:00")
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.5{zone}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let s = &*self.0;
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let path = request.url.path().to_owned();
        lock(&s.received).push(Received {
            method: request.method.to_string(),
            path: path.clone(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: body.clone(),
            at: Instant::now(),
        });
        let faults = lock(&s.faults).clone();
        let reply = self.answer(request, &path, &body, header("authorization"));
        reply.set_delay(faults.latency)
    }
}

impl Responder {
    fn answer(
        &self,
        request: &Request,
        path: &str,
        body: &Value,
        authorization: Option<String>,
    ) -> ResponseTemplate {
        let s = &*self.0;
        {
            let mut faults = lock(&s.faults);
            if faults.unavailable_next > 0 {
                faults.unavailable_next -= 1;
                return ResponseTemplate::new(503).set_body_string("503 Service Unavailable");
            }
        }
        if request.method.as_str() != "POST" {
            return ResponseTemplate::new(404).set_body_string("404 page not found");
        }
        let listing = matches!(path, "/api/fs/list" | "/api/fs/get" | "/operations/list");
        if listing {
            let mut faults = lock(&s.faults);
            if faults.throttle_next > 0 {
                faults.throttle_next -= 1;
                let text = "http error: status: 429 Too Many Requests, message: too many requests";
                return match s.api {
                    Api::OpenList => {
                        envelope(500, &format!("failed get objs: {text}"), Value::Null)
                    }
                    Api::Rclone => rclone_error(500, text, body, path),
                };
            }
        }
        match s.api {
            Api::OpenList => self.openlist(path, body, authorization),
            Api::Rclone => self.rclone(path, body, authorization),
        }
    }

    fn openlist(
        &self,
        path: &str,
        body: &Value,
        authorization: Option<String>,
    ) -> ResponseTemplate {
        let s = &*self.0;
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if path == "/api/auth/login" {
            *lock(&s.logins) += 1;
            return match &s.user {
                Some((u, p)) if *u == text("username") && *p == text("password") => {
                    let mut issued = lock(&s.issued);
                    let token = format!("jwt-{}-{}", u, issued.len() + 1);
                    issued.push(token.clone());
                    envelope(200, "success", json!({"token": token}))
                }
                _ => envelope(400, "password is incorrect", Value::Null),
            };
        }
        if !matches!(path, "/api/fs/list" | "/api/fs/get") {
            return ResponseTemplate::new(404).set_body_string("404 page not found");
        }
        let guarded = s.token.is_some() || s.user.is_some();
        if guarded {
            let ok = authorization.as_ref().is_some_and(|a| {
                s.token.as_deref() == Some(a.as_str()) || lock(&s.issued).contains(a)
            });
            if !ok {
                return match authorization {
                    None => envelope(401, "Guest user is disabled, login please", Value::Null),
                    Some(_) => envelope(401, "token is invalidated", Value::Null),
                };
            }
        }
        let target = text("path");
        let tree = lock(&s.tree);
        let object = |name: &str, n: &Node| {
            json!({
                "name": name, "size": n.size, "is_dir": n.dir,
                "modified": rfc3339(n.mtime, 8), "created": rfc3339(n.mtime, 8),
                "sign": "", "thumb": "", "type": if n.dir { 1 } else { 0 }, "hash_info": null,
            })
        };
        if path == "/api/fs/get" {
            return match tree.get(&target) {
                Some(n) => {
                    let name = target.rsplit('/').next().unwrap_or_default();
                    envelope(200, "success", object(name, &n))
                }
                None => envelope(500, "failed get obj: object not found", Value::Null),
            };
        }
        if body.get("refresh").and_then(Value::as_bool) == Some(true) && !s.refresh_allowed {
            return envelope(403, "Refresh without permission", Value::Null);
        }
        match tree.children(&target) {
            None => envelope(
                500,
                "failed get objs: failed get dir: object not found",
                Value::Null,
            ),
            Some(children) => {
                // OpenList sends `null` content for an empty folder.
                let content = if children.is_empty() {
                    Value::Null
                } else {
                    Value::Array(children.iter().map(|(name, n)| object(name, n)).collect())
                };
                let total = children.len();
                envelope(
                    200,
                    "success",
                    json!({"content": content, "total": total, "readme": "", "header": "", "write": s.refresh_allowed, "provider": "115 Cloud"}),
                )
            }
        }
    }

    fn rclone(&self, path: &str, body: &Value, authorization: Option<String>) -> ResponseTemplate {
        let s = &*self.0;
        if let Some((u, p)) = &s.user {
            let want = format!("Basic {}", base64(format!("{u}:{p}").as_bytes()));
            if authorization.as_deref() != Some(want.as_str()) {
                return ResponseTemplate::new(401).set_body_string("401 Unauthorized\n");
            }
        }
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match path {
            "/operations/list" => {
                if text("fs") != s.remote {
                    return rclone_error(
                        500,
                        &format!(
                            "failed to create file system for {:?}: didn't find section in config file",
                            text("fs")
                        ),
                        body,
                        path,
                    );
                }
                let remote = text("remote");
                let folder = format!("/{}", remote.trim_matches('/'));
                let tree = lock(&s.tree);
                match tree.children(&folder) {
                    None => rclone_error(404, "directory not found", body, path),
                    Some(children) => {
                        let list: Vec<Value> = children
                            .iter()
                            .map(|(name, n)| {
                                let p = if remote.is_empty() { name.clone() } else { format!("{remote}/{name}") };
                                json!({
                                    "Path": p, "Name": name,
                                    "Size": if n.dir { -1 } else { i64::try_from(n.size).unwrap_or(i64::MAX) },
                                    "MimeType": if n.dir { "inode/directory" } else { "video/x-matroska" },
                                    "ModTime": rfc3339(n.mtime, 0), "IsDir": n.dir,
                                })
                            })
                            .collect();
                        ResponseTemplate::new(200).set_body_json(json!({"list": list}))
                    }
                }
            }
            "/vfs/refresh" => {
                if body.get("recursive").is_some_and(|r| !r.is_string()) {
                    return rclone_error(500, "recursive: expecting string", body, path);
                }
                let dir = text("dir");
                ResponseTemplate::new(200).set_body_json(json!({"result": {dir: "OK"}}))
            }
            other => rclone_error(
                404,
                &format!("couldn't find method {:?}", other.trim_start_matches('/')),
                body,
                path,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn helpers() {
        assert_eq!(super::base64(b"rc:pa55"), "cmM6cGE1NQ==");
        assert_eq!(
            super::rfc3339(Some(1_700_000_000), 8),
            "2023-11-15T06:13:20.5+08:00"
        );
        assert_eq!(super::rfc3339(None, 8), "0001-01-01T00:00:00Z");
    }
}
