//! A mock cd2 server over real gRPC, for tests, benchmarks and trying a configuration
//! without a cloud.
//!
//! It serves a tree held in memory (built in code or read from a local folder) and
//! implements `GetSystemInfo`, `GetToken`, `GetSubFiles` (split into several replies),
//! `FindFileByPath` (both request conventions) and `PushMessage` (an event for every
//! change made through [`MockServer`]); every other method answers `UNIMPLEMENTED`.
//! It checks the token, counts calls per method, and injects faults on request:
//! latency, throttled answers, `UNAVAILABLE`, streams cut mid-listing, token expiry,
//! unknown-time sentinels, and push channels that drop or force an exit.
//!
//! Its clock is tokio's, so tests with paused time control token lifetimes and latency.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pps_clouddrive::mock::{MockServer, MockTree};
//! let mut tree = MockTree::new();
//! tree.write_file("/115/电影/a.mkv", 42);
//! let server = MockServer::builder().api_token("t0k3n").start(tree).await?;
//! println!("{}", server.url());
//! # Ok(()) }
//! ```

use crate::core::DOTNET_MIN_SECONDS;
use crate::proto::cloud_drive_file_srv_server::{CloudDriveFileSrv, CloudDriveFileSrvServer};
use crate::proto::cloud_drive_push_message::{Data, MessageType};
use crate::proto::file_system_change::ChangeType;
use crate::proto::{
    CloudDriveFile, CloudDrivePushMessage, CloudDriveSystemInfo, ExitedMessage, FileSystemChange,
    FindFileByPathRequest, GetTokenRequest, JwtToken, ListSubFileRequest, SubFilesReply,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

/// The text cd2 sends when the cloud throttles (in an `INTERNAL` status).
pub const THROTTLE_MESSAGE: &str =
    "http error HttpError: status: 429 Too Many Requests, message: too many requests";

/// The methods the mock implements, for [`MockServer::calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GetSystemInfo`
    GetSystemInfo,
    /// `GetToken`
    GetToken,
    /// `GetSubFiles`
    GetSubFiles,
    /// `FindFileByPath`
    FindFileByPath,
    /// `PushMessage`
    PushMessage,
}

impl Method {
    const ALL: [Method; 5] = [
        Method::GetSystemInfo,
        Method::GetToken,
        Method::GetSubFiles,
        Method::FindFileByPath,
        Method::PushMessage,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone)]
struct Node {
    is_dir: bool,
    size: u64,
    mtime: SystemTime,
}

/// A tree of folders and files for the mock to serve. Paths are absolute cd2 paths
/// (`/115/电影/a.mkv`); missing parent folders are created on the way.
#[derive(Debug, Clone)]
pub struct MockTree {
    /// Each folder's children by name; every folder has an entry, `/` always.
    dirs: HashMap<String, BTreeMap<String, Node>>,
    /// A logical clock: each change gets a later mtime, one second apart, so tests see
    /// every change without reading the wall clock.
    tick: u64,
    /// Serve this local folder as it is at each call, instead of `dirs`.
    live: Option<std::path::PathBuf>,
}

impl Default for MockTree {
    fn default() -> Self {
        Self::new()
    }
}

fn split(path: &str) -> Option<(String, String)> {
    let path = normalize(path);
    if path == "/" {
        return None;
    }
    let (parent, name) = path.rsplit_once('/')?;
    let parent = if parent.is_empty() { "/" } else { parent };
    Some((parent.to_owned(), name.to_owned()))
}

fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    for part in path.split('/').filter(|p| !p.is_empty()) {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl MockTree {
    /// An empty tree (only `/`).
    pub fn new() -> Self {
        let mut dirs = HashMap::new();
        dirs.insert("/".to_owned(), BTreeMap::new());
        MockTree {
            dirs,
            tick: 0,
            live: None,
        }
    }

    /// Reads a local folder into a tree served under `/`: folders, files with their
    /// sizes and mtimes. Names that are not UTF-8 are skipped; links are files.
    pub fn from_dir(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let mut tree = MockTree::new();
        let mut pending = vec![(root.as_ref().to_path_buf(), "/".to_owned())];
        while let Some((dir, at)) = pending.pop() {
            for item in std::fs::read_dir(&dir)? {
                let item = item?;
                let Ok(name) = item.file_name().into_string() else {
                    continue;
                };
                let meta = item.path().symlink_metadata()?;
                let path = join(&at, &name);
                let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
                if meta.is_dir() {
                    tree.put(
                        &path,
                        Node {
                            is_dir: true,
                            size: 0,
                            mtime,
                        },
                    );
                    pending.push((item.path(), path));
                } else {
                    tree.put(
                        &path,
                        Node {
                            is_dir: false,
                            size: meta.len(),
                            mtime,
                        },
                    );
                }
            }
        }
        Ok(tree)
    }

    /// A tree that serves the local folder `root` under `/` as it is at each call: a
    /// file added there shows in the next listing, so a user can try a configuration
    /// against the mock by editing a folder. Names that are not UTF-8 are skipped; links
    /// are files; `..` never leaves `root`. The edit methods of this type do not apply.
    pub fn following(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::other("not a folder"));
        }
        let mut tree = MockTree::new();
        tree.live = Some(root);
        Ok(tree)
    }

    /// The local path of cd2 path `path` in a followed folder; `None` for a path with
    /// `.` or `..` in it.
    fn local(root: &Path, path: &str) -> Option<std::path::PathBuf> {
        let mut out = root.to_path_buf();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if part == "." || part == ".." {
                return None;
            }
            out.push(part);
        }
        Some(out)
    }

    fn node_of(meta: &std::fs::Metadata) -> Node {
        Node {
            is_dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
        }
    }

    /// The children of folder `path`, by name; `None` when it is not a folder.
    fn children(&self, path: &str) -> Option<Vec<(String, Node)>> {
        let Some(root) = &self.live else {
            return self.dirs.get(path).map(|c| {
                c.iter()
                    .map(|(n, node)| (n.clone(), node.clone()))
                    .collect()
            });
        };
        let dir = Self::local(root, path)?;
        let mut out = Vec::new();
        for item in std::fs::read_dir(dir).ok()?.flatten() {
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            if let Ok(meta) = item.path().symlink_metadata() {
                out.push((name, Self::node_of(&meta)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Some(out)
    }

    fn next_mtime(&mut self) -> SystemTime {
        self.tick += 1;
        // 2023-11-14, then one second per change.
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + self.tick)
    }

    fn put(&mut self, path: &str, node: Node) {
        let Some((parent, name)) = split(path) else {
            return;
        };
        if !self.dirs.contains_key(&parent) {
            let mtime = node.mtime;
            self.put(
                &parent,
                Node {
                    is_dir: true,
                    size: 0,
                    mtime,
                },
            );
        }
        let full = join(&parent, &name);
        if node.is_dir {
            self.dirs.entry(full).or_default();
        }
        if let Some(children) = self.dirs.get_mut(&parent) {
            children.insert(name, node);
        }
    }

    /// Adds a folder (and its missing parents).
    pub fn create_dir(&mut self, path: &str) {
        let mtime = self.next_mtime();
        self.put(
            path,
            Node {
                is_dir: true,
                size: 0,
                mtime,
            },
        );
    }

    /// Adds or replaces a file of `size` bytes with a new mtime.
    pub fn write_file(&mut self, path: &str, size: u64) {
        let mtime = self.next_mtime();
        self.write_file_at(path, size, mtime);
    }

    /// Adds or replaces a file of `size` bytes with the given mtime (a library's
    /// history: last week's episode).
    pub fn write_file_at(&mut self, path: &str, size: u64, mtime: SystemTime) {
        self.put(
            path,
            Node {
                is_dir: false,
                size,
                mtime,
            },
        );
    }

    /// Removes a file or a folder with everything below it. Returns whether it existed
    /// and whether it was a folder.
    pub fn remove(&mut self, path: &str) -> Option<bool> {
        let (parent, name) = split(path)?;
        let node = self.dirs.get_mut(&parent)?.remove(&name)?;
        if node.is_dir {
            let full = join(&parent, &name);
            let below = format!("{full}/");
            self.dirs
                .retain(|k, _| *k != full && !k.starts_with(&below));
        }
        Some(node.is_dir)
    }

    /// Moves a file or folder (with its content) to `to`. Returns whether `from`
    /// existed and whether it was a folder.
    pub fn rename(&mut self, from: &str, to: &str) -> Option<bool> {
        let from = normalize(from);
        let to = normalize(to);
        let (parent, name) = split(&from)?;
        let node = self.dirs.get(&parent)?.get(&name)?.clone();
        let moved: Vec<(String, BTreeMap<String, Node>)> = if node.is_dir {
            let below = format!("{from}/");
            self.dirs
                .iter()
                .filter(|(k, _)| **k == from || k.starts_with(&below))
                .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
                .collect()
        } else {
            Vec::new()
        };
        self.remove(&from);
        self.put(&to, node.clone());
        for (k, v) in moved {
            self.dirs.insert(k, v);
        }
        Some(node.is_dir)
    }

    /// Gives an existing file or folder a new mtime.
    pub fn touch(&mut self, path: &str) -> Option<bool> {
        let (parent, name) = split(path)?;
        let mtime = self.next_mtime();
        let node = self.dirs.get_mut(&parent)?.get_mut(&name)?;
        node.mtime = mtime;
        Some(node.is_dir)
    }

    /// Number of folders, `/` included.
    pub fn folder_count(&self) -> usize {
        self.dirs.len()
    }

    fn node(&self, path: &str) -> Option<Node> {
        if let Some(root) = &self.live {
            let meta = Self::local(root, path)?.symlink_metadata().ok()?;
            return Some(Self::node_of(&meta));
        }
        let (parent, name) = split(path)?;
        self.dirs.get(&parent)?.get(&name).cloned()
    }
}

/// Faults the mock injects, shared by every call. Set through [`MockServer::faults`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Faults {
    /// Added before every answer (every method).
    pub latency: Duration,
    /// Share of listings and lookups answered as throttled (`INTERNAL` with
    /// [`THROTTLE_MESSAGE`]), spread evenly: 0.25 throttles every fourth call.
    pub throttle_share: f64,
    /// The next this many listings or lookups are throttled.
    pub throttle_next: u32,
    /// The next this many listings or lookups answer `UNAVAILABLE`.
    pub unavailable_next: u32,
    /// Listings and lookups let through before `unavailable_next` starts (cd2 going
    /// away mid-way through a walk).
    pub unavailable_after: u32,
    /// The next this many listings send their first reply, then break the stream.
    pub cut_next: u32,
    /// Files carry the 0001-01-01 sentinel and folders no time at all.
    pub unknown_times: bool,
    /// A missing path answers OK with an empty record (some cd2 versions), not
    /// `NOT_FOUND`.
    pub empty_not_found: bool,
    /// `PushMessage` answers `UNIMPLEMENTED`, like cd2 before 0.8.
    pub no_push: bool,
    /// `PushMessage` sends cd2 0.7's older messages (a list under field 5), which a
    /// current client cannot decode.
    pub legacy_push: bool,
}

#[derive(Clone)]
enum PushEvent {
    Change(Box<FileSystemChange>),
    /// A message of this type with no payload (newer servers' signals).
    Bare(i32),
    ForceExit,
    Drop,
}

struct State {
    tree: Mutex<MockTree>,
    faults: Mutex<Faults>,
    calls: [AtomicU64; 5],
    /// Listings and lookups seen, for spreading `throttle_share`.
    cloud_calls: AtomicU64,
    api_tokens: Vec<String>,
    users: Vec<(String, String)>,
    token_lifetime: Duration,
    page_size: usize,
    issued: Mutex<HashMap<String, Instant>>,
    push: broadcast::Sender<PushEvent>,
    /// Arrival instants of listings and lookups, when recording (benchmarks).
    arrivals: Mutex<Option<Vec<Instant>>>,
    /// Woken on every call and every push channel opened, for [`MockServer::wait_until`].
    changed: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The mock's state stays consistent across a panicking test thread: keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds a [`MockServer`].
#[derive(Debug, Clone)]
pub struct MockServerBuilder {
    api_tokens: Vec<String>,
    users: Vec<(String, String)>,
    token_lifetime: Duration,
    page_size: usize,
    faults: Faults,
}

impl MockServerBuilder {
    /// Accepts this API token. Without any token or user the mock asks for none.
    pub fn api_token(mut self, token: impl Into<String>) -> Self {
        self.api_tokens.push(token.into());
        self
    }

    /// Accepts this user name and password at `GetToken`.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// Lifetime of tokens issued by `GetToken` (default one hour).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Entries per `GetSubFiles` reply (default 500, so 1,200 entries take 3 replies).
    pub fn page_size(mut self, entries: usize) -> Self {
        self.page_size = entries.max(1);
        self
    }

    /// Faults to inject from the start.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Serves `tree` on 127.0.0.1 on a free port.
    pub async fn start(self, tree: MockTree) -> std::io::Result<MockServer> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0)), tree)
            .await
    }

    /// Serves `tree` on `addr` (port 0 picks a free one).
    pub async fn start_on(self, addr: SocketAddr, tree: MockTree) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (push, _) = broadcast::channel(4096);
        let state = Arc::new(State {
            tree: Mutex::new(tree),
            faults: Mutex::new(self.faults),
            calls: Default::default(),
            cloud_calls: AtomicU64::new(0),
            api_tokens: self.api_tokens,
            users: self.users,
            token_lifetime: self.token_lifetime,
            page_size: self.page_size,
            issued: Mutex::new(HashMap::new()),
            push,
            changed: tokio::sync::Notify::new(),
            arrivals: Mutex::new(None),
        });
        let service = Front {
            inner: CloudDriveFileSrvServer::new(Service {
                state: state.clone(),
            })
            .max_encoding_message_size(64 << 20),
            state: state.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        // No Nagle: a gRPC answer is several small writes (headers, data, trailers),
        // and with Nagle and delayed ACKs each call would wait 40 ms.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                tracing::warn!("mock cd2 server stopped: {err}");
            }
        });
        Ok(MockServer {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }
}

/// A running mock cd2 server. Dropping it stops it.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// A builder: no auth, 500 entries per reply, no faults.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder {
            api_tokens: Vec::new(),
            users: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
            page_size: 500,
            faults: Faults::default(),
        }
    }

    /// Serves `tree` on 127.0.0.1 on a free port, without auth or faults.
    pub async fn start(tree: MockTree) -> std::io::Result<MockServer> {
        Self::builder().start(tree).await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls received by `method` (every call, including refused ones).
    pub fn calls(&self, method: Method) -> u64 {
        self.state.calls[method.index()].load(Ordering::Relaxed)
    }

    /// Calls received by every method, in a map.
    pub fn all_calls(&self) -> HashMap<Method, u64> {
        Method::ALL.iter().map(|m| (*m, self.calls(*m))).collect()
    }

    /// Changes the injected faults.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.state.faults));
    }

    /// Makes every token issued so far expired, as if its lifetime had passed.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in lock(&self.state.issued).values_mut() {
            *expiry = now;
        }
    }

    /// Sends `FORCE_EXIT` on every open push channel and revokes issued tokens.
    pub fn force_exit(&self) {
        self.expire_tokens();
        let _ = self.state.push.send(PushEvent::ForceExit);
    }

    /// Sends a message of `message_type` with no payload on every open push channel
    /// (`5` MOUNT_POINT_CHANGE, `9` CLOUD_API_CHANGE, as newer cd2 versions do).
    pub fn push_bare(&self, message_type: i32) {
        let _ = self.state.push.send(PushEvent::Bare(message_type));
    }

    /// Breaks every open push channel (the client should reconnect).
    pub fn drop_push_channels(&self) {
        let _ = self.state.push.send(PushEvent::Drop);
    }

    /// Open push channels.
    pub fn push_channels(&self) -> usize {
        self.state.push.receiver_count()
    }

    /// Waits until `condition` holds, checking it after every call the server receives
    /// and every push channel it opens: lets a test wait for the client without
    /// sleeping.
    pub async fn wait_until(&self, condition: impl Fn(&MockServer) -> bool) {
        loop {
            let changed = self.state.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if condition(self) {
                return;
            }
            changed.await;
        }
    }

    /// Starts recording when each listing and lookup arrives (after injected latency),
    /// dropping earlier records; read them with [`arrivals`](Self::arrivals).
    pub fn record_arrivals(&self) {
        *lock(&self.state.arrivals) = Some(Vec::new());
    }

    /// Arrival instants recorded since [`record_arrivals`](Self::record_arrivals).
    pub fn arrivals(&self) -> Vec<Instant> {
        lock(&self.state.arrivals).clone().unwrap_or_default()
    }

    /// Reads or changes the tree without push events.
    pub fn with_tree<T>(&self, f: impl FnOnce(&mut MockTree) -> T) -> T {
        f(&mut lock(&self.state.tree))
    }

    fn announce(&self, kind: ChangeType, path: &str, new_path: Option<&str>, is_dir: Option<bool>) {
        if let Some(is_dir) = is_dir {
            let change = FileSystemChange {
                change_type: kind as i32,
                is_directory: is_dir,
                path: normalize(path),
                new_path: new_path.map(normalize),
                the_file: None,
            };
            // No receiver is fine: nobody listens.
            let _ = self.state.push.send(PushEvent::Change(Box::new(change)));
        }
    }

    /// Adds a folder and announces it.
    pub fn create_dir(&self, path: &str) {
        self.with_tree(|t| t.create_dir(path));
        self.announce(ChangeType::Create, path, None, Some(true));
    }

    /// Adds or replaces a file and announces it.
    pub fn write_file(&self, path: &str, size: u64) {
        let existed = self.with_tree(|t| {
            let existed = t.node(path).is_some();
            t.write_file(path, size);
            existed
        });
        let kind = if existed {
            ChangeType::Modify
        } else {
            ChangeType::Create
        };
        self.announce(kind, path, None, Some(false));
    }

    /// Removes a path and announces it; false when it did not exist.
    pub fn remove(&self, path: &str) -> bool {
        let was = self.with_tree(|t| t.remove(path));
        self.announce(ChangeType::Delete, path, None, was);
        was.is_some()
    }

    /// Renames a path and announces it; false when it did not exist.
    pub fn rename(&self, from: &str, to: &str) -> bool {
        let was = self.with_tree(|t| t.rename(from, to));
        self.announce(ChangeType::Rename, from, Some(to), was);
        was.is_some()
    }

    /// Gives a path a new mtime and announces it as modified.
    pub fn touch(&self, path: &str) -> bool {
        let was = self.with_tree(|t| t.touch(path));
        self.announce(ChangeType::Modify, path, None, was);
        was.is_some()
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.state.push.send(PushEvent::Drop);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.state.push.send(PushEvent::Drop);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Service {
    state: Arc<State>,
}

fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let (seconds, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => (
            -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
            0,
        ),
    };
    prost_types::Timestamp {
        seconds,
        nanos: i32::try_from(nanos).unwrap_or(0),
    }
}

fn record(parent: &str, name: &str, node: &Node, unknown_times: bool) -> CloudDriveFile {
    let full = join(parent, name);
    let time = if unknown_times {
        // Files get .NET's minimum date, folders no time at all: both mean unknown.
        (!node.is_dir).then_some(prost_types::Timestamp {
            seconds: DOTNET_MIN_SECONDS,
            nanos: 0,
        })
    } else {
        Some(timestamp(node.mtime))
    };
    CloudDriveFile {
        id: full.clone(),
        name: name.to_owned(),
        full_path_name: full,
        size: i64::try_from(node.size).unwrap_or(i64::MAX),
        file_type: if node.is_dir { 0 } else { 1 },
        create_time: time,
        write_time: time,
        access_time: time,
        is_directory: node.is_dir,
        is_root: false,
        is_cloud_root: parent == "/" && node.is_dir,
        is_cloud_directory: node.is_dir,
        is_cloud_file: !node.is_dir,
    }
}

type ReplyStream<T> = BoxStream<'static, Result<T, Status>>;

impl Service {
    async fn enter<T>(
        &self,
        method: Method,
        request: &Request<T>,
        needs_token: bool,
    ) -> Result<Faults, Status> {
        self.state.calls[method.index()].fetch_add(1, Ordering::Relaxed);
        self.state.changed.notify_waiters();
        let faults = lock(&self.state.faults).clone();
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        if needs_token {
            self.check_token(request)?;
        }
        Ok(faults)
    }

    fn check_token<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let state = &self.state;
        if state.api_tokens.is_empty() && state.users.is_empty() {
            return Ok(());
        }
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing token"))?;
        if state.api_tokens.iter().any(|t| t == token) {
            return Ok(());
        }
        match lock(&state.issued).get(token) {
            Some(expiry) if Instant::now() < *expiry => Ok(()),
            Some(_) => Err(Status::unauthenticated("token expired")),
            None => Err(Status::unauthenticated("invalid token")),
        }
    }

    /// The injected cloud faults for one listing or lookup, taken in turn.
    fn cloud_fault(&self) -> Result<(), Status> {
        if let Some(arrivals) = lock(&self.state.arrivals).as_mut() {
            arrivals.push(Instant::now());
        }
        let n = self.state.cloud_calls.fetch_add(1, Ordering::Relaxed) + 1;
        let mut faults = lock(&self.state.faults);
        if faults.throttle_next > 0 {
            faults.throttle_next -= 1;
            return Err(Status::internal(THROTTLE_MESSAGE));
        }
        if faults.unavailable_next > 0 {
            if faults.unavailable_after > 0 {
                faults.unavailable_after -= 1;
            } else {
                faults.unavailable_next -= 1;
                return Err(Status::unavailable("cloud unreachable (injected)"));
            }
        }
        let share = faults.throttle_share.clamp(0.0, 1.0);
        if share > 0.0 && ((n as f64) * share).floor() > (((n - 1) as f64) * share).floor() {
            return Err(Status::internal(THROTTLE_MESSAGE));
        }
        Ok(())
    }

    fn take_cut(&self) -> bool {
        let mut faults = lock(&self.state.faults);
        if faults.cut_next > 0 {
            faults.cut_next -= 1;
            true
        } else {
            false
        }
    }
}

#[tonic::async_trait]
impl CloudDriveFileSrv for Service {
    async fn get_system_info(
        &self,
        request: Request<()>,
    ) -> Result<Response<CloudDriveSystemInfo>, Status> {
        self.enter(Method::GetSystemInfo, &request, false).await?;
        Ok(Response::new(CloudDriveSystemInfo {
            is_login: true,
            user_name: "m***k".to_owned(),
            system_ready: true,
            system_message: None,
            has_error: Some(false),
        }))
    }

    async fn get_token(
        &self,
        request: Request<GetTokenRequest>,
    ) -> Result<Response<JwtToken>, Status> {
        self.enter(Method::GetToken, &request, false).await?;
        let ask = request.into_inner();
        let known = self
            .state
            .users
            .iter()
            .any(|(u, p)| *u == ask.user_name && *p == ask.password);
        if !known {
            return Ok(Response::new(JwtToken {
                success: false,
                error_message: "invalid user name or password".to_owned(),
                token: String::new(),
                expiration: None,
            }));
        }
        let mut issued = lock(&self.state.issued);
        let token = format!("mock-jwt-{}", issued.len() + 1);
        issued.insert(token.clone(), Instant::now() + self.state.token_lifetime);
        Ok(Response::new(JwtToken {
            success: true,
            error_message: String::new(),
            token,
            expiration: Some(timestamp(SystemTime::now() + self.state.token_lifetime)),
        }))
    }

    type GetSubFilesStream = ReplyStream<SubFilesReply>;

    async fn get_sub_files(
        &self,
        request: Request<ListSubFileRequest>,
    ) -> Result<Response<Self::GetSubFilesStream>, Status> {
        let faults = self.enter(Method::GetSubFiles, &request, true).await?;
        self.cloud_fault()?;
        let path = normalize(&request.into_inner().path);
        let files: Vec<CloudDriveFile> = {
            let tree = lock(&self.state.tree);
            let children = tree
                .children(&path)
                .ok_or_else(|| Status::not_found(format!("folder not found: {path}")))?;
            children
                .iter()
                .map(|(name, node)| record(&path, name, node, faults.unknown_times))
                .collect()
        };
        let mut replies: Vec<Result<SubFilesReply, Status>> = files
            .chunks(self.state.page_size)
            .map(|chunk| {
                Ok(SubFilesReply {
                    sub_files: chunk.to_vec(),
                })
            })
            .collect();
        if self.take_cut() {
            // First reply, then a broken stream, as when the connection drops.
            replies.truncate(1);
            replies.push(Err(Status::internal(
                "h2 protocol error: stream reset (injected cut)",
            )));
        }
        Ok(Response::new(futures_util::stream::iter(replies).boxed()))
    }

    async fn find_file_by_path(
        &self,
        request: Request<FindFileByPathRequest>,
    ) -> Result<Response<CloudDriveFile>, Status> {
        let faults = self.enter(Method::FindFileByPath, &request, true).await?;
        self.cloud_fault()?;
        let ask = request.into_inner();
        // Both conventions: an empty parent and the full path, or parent and leaf.
        let full = if ask.parent_path.is_empty() || ask.path.starts_with('/') {
            normalize(&ask.path)
        } else {
            normalize(&join(&normalize(&ask.parent_path), &ask.path))
        };
        if full == "/" {
            let mut root = CloudDriveFile {
                name: "/".to_owned(),
                full_path_name: "/".to_owned(),
                is_directory: true,
                is_root: true,
                ..CloudDriveFile::default()
            };
            root.id = "/".to_owned();
            return Ok(Response::new(root));
        }
        let tree = lock(&self.state.tree);
        let found = split(&full).and_then(|(parent, name)| {
            let node = tree.node(&full)?;
            Some(record(&parent, &name, &node, faults.unknown_times))
        });
        match found {
            Some(file) => Ok(Response::new(file)),
            None if faults.empty_not_found => Ok(Response::new(CloudDriveFile::default())),
            None => Err(Status::not_found(format!("file not found: {full}"))),
        }
    }

    type PushMessageStream = ReplyStream<CloudDrivePushMessage>;

    async fn push_message(
        &self,
        request: Request<()>,
    ) -> Result<Response<Self::PushMessageStream>, Status> {
        let faults = self.enter(Method::PushMessage, &request, true).await?;
        if faults.no_push {
            return Err(Status::unimplemented(
                "PushMessage is not supported by this version",
            ));
        }
        let receiver = self.state.push.subscribe();
        self.state.changed.notify_waiters();
        let stream = futures_util::stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            loop {
                match receiver.recv().await {
                    Ok(PushEvent::Change(change)) => {
                        let message = CloudDrivePushMessage {
                            message_type: MessageType::FileSystemChange as i32,
                            data: Some(Data::FileSystemChange(*change)),
                        };
                        return Some((Ok(message), Some(receiver)));
                    }
                    Ok(PushEvent::Bare(message_type)) => {
                        let message = CloudDrivePushMessage {
                            message_type,
                            data: None,
                        };
                        return Some((Ok(message), Some(receiver)));
                    }
                    Ok(PushEvent::ForceExit) => {
                        let message = CloudDrivePushMessage {
                            message_type: MessageType::ForceExit as i32,
                            data: Some(Data::ExitedMessage(ExitedMessage {})),
                        };
                        return Some((Ok(message), Some(receiver)));
                    }
                    Ok(PushEvent::Drop) => {
                        return Some((
                            Err(Status::unavailable("push channel dropped (injected)")),
                            None,
                        ));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Response::new(stream.boxed()))
    }
}

/// cd2 0.7's push message: field 5 held a list, so it does not decode as a
/// `FileSystemChange`.
#[derive(Clone, PartialEq, prost::Message)]
struct LegacyPushMessage {
    #[prost(int32, tag = "1")]
    message_type: i32,
    #[prost(message, repeated, tag = "5")]
    changes: Vec<LegacyChange>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LegacyChange {
    #[prost(string, repeated, tag = "1")]
    paths: Vec<String>,
}

/// Serves `PushMessage` in the legacy format.
struct LegacyPush;

impl tonic::server::ServerStreamingService<()> for LegacyPush {
    type Response = LegacyPushMessage;
    type ResponseStream = ReplyStream<LegacyPushMessage>;
    type Future = std::future::Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        let message = LegacyPushMessage {
            message_type: MessageType::FileSystemChange as i32,
            changes: vec![LegacyChange {
                paths: vec!["/legacy".to_owned()],
            }],
        };
        // One message, then the stream stays open as a real server's would.
        let stream =
            futures_util::stream::iter([Ok(message)]).chain(futures_util::stream::pending());
        std::future::ready(Ok(Response::new(stream.boxed())))
    }
}

/// The generated server, with `PushMessage` taken over when `legacy_push` is set: the
/// generated code can only send the current message type.
#[derive(Clone)]
struct Front {
    inner: CloudDriveFileSrvServer<Service>,
    state: Arc<State>,
}

impl tonic::server::NamedService for Front {
    const NAME: &'static str = "clouddrive.CloudDriveFileSrv";
}

impl<B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for Front
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let legacy = request.uri().path() == "/clouddrive.CloudDriveFileSrv/PushMessage"
            && lock(&self.state.faults).legacy_push;
        if !legacy {
            return self.inner.call(request);
        }
        self.state.calls[Method::PushMessage.index()].fetch_add(1, Ordering::Relaxed);
        self.state.changed.notify_waiters();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(
                tonic_prost::ProstCodec::<LegacyPushMessage, ()>::default(),
            );
            Ok(grpc.server_streaming(LegacyPush, request).await)
        })
    }
}
