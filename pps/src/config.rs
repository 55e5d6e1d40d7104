//! `pps.toml`: parsing, environment overrides and validation.
//!
//! Every mistake is an error of kind [`ConfigInvalid`](ErrorKind::ConfigInvalid) whose
//! context names the file, the line and the key. Secrets are held as [`Secret`] and can
//! come from the environment instead of the file: `PPS_SOURCES_<NAME>_<KEY>` and
//! `PPS_TARGETS_<NAME>_<KEY>` (upper case, `-` as `_`), e.g. `PPS_TARGETS_PLEX_TOKEN`.
//!
//! Each adapter owns its settings: a source or target table (but for `kind` and the
//! keys pps itself reads, such as `concurrency` or `path_mapping`) is the adapter's
//! config type deserialised, defaults and checks included
//! ([`CloudDriveConfig`], [`PlexConfig`], [`EmbyConfig`], [`CommandConfig`]). This
//! module dispatches on `kind` and adds the file, the line and the key to every error.

use pps_clouddrive::CloudDriveConfig;
use pps_core::duration;
use pps_core::mapping::{MappingRule, PathMapping};
use pps_core::path::Excludes;
use pps_core::{Error, ErrorKind, Result, Secret};
use pps_http_sources::{OpenListConfig, RcloneConfig};
use pps_mediaserver::{CommandConfig, EmbyConfig, PlexConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod notifiers;
pub mod view;
use std::time::Duration;
use toml::Spanned;

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages), if any.
    pub file: Option<PathBuf>,
    /// The SQLite state file.
    pub store: PathBuf,
    /// Named sources.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Named targets.
    pub targets: BTreeMap<String, TargetConfig>,
    /// The watches, in file order.
    pub watches: Vec<WatchConfig>,
    /// `[server]`: the HTTP surface of `pps run` (off unless `listen` is set).
    pub server: ServerConfig,
    /// `[history]`: how much activity history the store keeps.
    pub history: pps_core::store::HistoryLimits,
    /// `[ui]`: the web UI of `pps run` (off until a password hash is set).
    pub ui: UiConfig,
    /// Named notifiers (`[notifiers.NAME]`).
    pub notifiers: BTreeMap<String, notifiers::NotifierConfig>,
}

/// `[ui]`: the web UI, served by `pps run` on `[server] listen`.
#[derive(Debug, Clone, Default)]
pub struct UiConfig {
    /// The argon2 hash (PHC string, from `pps passwd`) of the UI's password; `None`
    /// keeps the UI off: there is no default password.
    pub password_hash: Option<Secret>,
    /// Where the UI lives, `/` or `/pps/` behind a reverse proxy (always starts and
    /// ends with `/`).
    pub base_path: String,
    /// Proxies whose `X-Forwarded-For` names the client (`trusted_proxies`); none by
    /// default: every other peer's header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Host names the UI answers to (`hosts`); empty: any. A request naming another
    /// `Host` is refused (DNS rebinding).
    pub hosts: Vec<String>,
}

/// `[server]`: health, metrics and authenticated triggers.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Where to listen (`127.0.0.1:8090`); `None` keeps the HTTP surface off.
    pub listen: Option<std::net::SocketAddr>,
    /// The token every trigger must present (`Authorization: Bearer …` or `?token=`).
    pub token: Option<Secret>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// The most HTTP connections open at once (held under a quarter of the process's
    /// limit of open files).
    pub max_connections: usize,
    /// Whether `/metrics` answers without the token (off by default: it names watch
    /// roots and targets).
    pub public_metrics: bool,
    /// Maps Sonarr/Radarr/Lidarr paths to source paths.
    pub arr_mapping: PathMapping,
    /// Maps paths in cd2 webhooks to source paths (when the watch is a local mount of
    /// cd2, say).
    pub clouddrive2_mapping: PathMapping,
    /// The line of `[server]`, for messages.
    pub line: usize,
}

impl ServerConfig {
    /// No HTTP surface, the default limits.
    pub fn off() -> Self {
        ServerConfig {
            max_body_bytes: 1 << 20,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            ..ServerConfig::default()
        }
    }
}

/// One `[sources.NAME]`.
#[derive(Debug, Clone)]
// Built once per source when a config is read: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum SourceConfig {
    /// `kind = "clouddrive2"`.
    CloudDrive2 {
        /// The adapter's own settings (url, credentials, rate, retries).
        settings: CloudDriveConfig,
        /// Listings in flight at once.
        concurrency: usize,
        /// At most this many calls in any 24 hours, by every pps process of the store
        /// together (spare listings stop an hour of due listings short of it). `None`:
        /// only the rate limits them.
        max_calls_per_day: Option<u64>,
        /// At most this many calls in any minute (115's practice: 200).
        max_calls_per_minute: Option<u64>,
        /// At most this many calls in any hour (115's practice: 12,000).
        max_calls_per_hour: Option<u64>,
        /// How long every process stops calling after the cloud said calls come too
        /// fast (at least a minute, or zero for no pause; default a minute).
        throttle_pause: Duration,
    },
    /// `kind = "openlist"` (OpenList, or AList v3).
    OpenList {
        /// The adapter's own settings (url, credentials, refresh, rate, retries).
        settings: OpenListConfig,
        /// Concurrency and the shared call budget, as for cd2.
        budget: CloudBudget,
    },
    /// `kind = "rclone"` (rclone's remote-control API).
    Rclone {
        /// The adapter's own settings (url, remote, credentials, rate, retries).
        settings: RcloneConfig,
        /// Concurrency and the shared call budget, as for cd2.
        budget: CloudBudget,
    },
    /// `kind = "local"`.
    Local {
        /// Listings in flight at once.
        concurrency: usize,
    },
}

/// A cloud source's calls per minute, hour and day (`None`: no ceiling) and its
/// throttle pause.
pub type Ceilings = (Option<u64>, Option<u64>, Option<u64>, Duration);

/// pps's own keys of an OpenList or rclone source: the same as a CloudDrive2 source's
/// (`concurrency`, the ceilings, `throttle_pause`), since the budget is the same cloud
/// account's.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudBudget {
    /// Listings in flight at once.
    pub concurrency: usize,
    /// At most this many calls in any 24 hours, by every pps process of the store.
    pub max_calls_per_day: Option<u64>,
    /// At most this many calls in any minute.
    pub max_calls_per_minute: Option<u64>,
    /// At most this many calls in any hour.
    pub max_calls_per_hour: Option<u64>,
    /// How long every process stops calling after the cloud throttled.
    pub throttle_pause: Duration,
}

impl SourceConfig {
    /// Listings in flight at once for watches of this source.
    pub fn concurrency(&self) -> usize {
        match self {
            SourceConfig::CloudDrive2 { concurrency, .. } | SourceConfig::Local { concurrency } => {
                *concurrency
            }
            SourceConfig::OpenList { budget, .. } | SourceConfig::Rclone { budget, .. } => {
                budget.concurrency
            }
        }
    }

    /// The source's own rate and burst; `None` for a local folder (no call budget).
    pub fn rate(&self) -> Option<(f64, u32)> {
        match self {
            SourceConfig::CloudDrive2 { settings, .. } => {
                Some((settings.max_queries_per_second, settings.burst))
            }
            SourceConfig::OpenList { settings, .. } => Some((
                settings.pacing.max_queries_per_second,
                settings.pacing.burst,
            )),
            SourceConfig::Rclone { settings, .. } => Some((
                settings.pacing.max_queries_per_second,
                settings.pacing.burst,
            )),
            SourceConfig::Local { .. } => None,
        }
    }

    /// Sets the source's own rate (`pps walk --max-queries-per-second`); false for a
    /// local folder.
    pub fn set_rate(&mut self, q: f64) -> bool {
        match self {
            SourceConfig::CloudDrive2 { settings, .. } => settings.max_queries_per_second = q,
            SourceConfig::OpenList { settings, .. } => settings.pacing.max_queries_per_second = q,
            SourceConfig::Rclone { settings, .. } => settings.pacing.max_queries_per_second = q,
            SourceConfig::Local { .. } => return false,
        }
        true
    }

    /// The ceilings per minute, hour and day, and the throttle pause; `None` for a
    /// local folder.
    pub fn ceilings(&self) -> Option<Ceilings> {
        match self {
            SourceConfig::CloudDrive2 {
                max_calls_per_minute,
                max_calls_per_hour,
                max_calls_per_day,
                throttle_pause,
                ..
            } => Some((
                *max_calls_per_minute,
                *max_calls_per_hour,
                *max_calls_per_day,
                *throttle_pause,
            )),
            SourceConfig::OpenList { budget, .. } | SourceConfig::Rclone { budget, .. } => Some((
                budget.max_calls_per_minute,
                budget.max_calls_per_hour,
                budget.max_calls_per_day,
                budget.throttle_pause,
            )),
            SourceConfig::Local { .. } => None,
        }
    }

    /// The kind as written in `pps.toml`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::CloudDrive2 { .. } => "clouddrive2",
            SourceConfig::OpenList { .. } => "openlist",
            SourceConfig::Rclone { .. } => "rclone",
            SourceConfig::Local { .. } => "local",
        }
    }
}

/// One `[targets.NAME]`.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// What kind of target, with its own settings.
    pub kind: TargetKind,
    /// Source path to target path.
    pub mapping: PathMapping,
    /// The rules as written.
    pub rules: Vec<MappingRule>,
    /// Send file paths (targets that can take them); `false` sends folders only.
    pub scan_files: bool,
    /// Confirm that accepted scans were indexed (`confirm`, on by default; only Plex,
    /// Emby and Jellyfin can).
    pub confirm: bool,
    /// `confirm_deadline`: when a missing item is called stuck; `None` keeps the
    /// server's own default (Plex and Emby 10 min, Jellyfin 20 min).
    pub confirm_deadline: Option<Duration>,
    /// The line of the table, for messages.
    pub line: usize,
}

/// The kind-specific part of a target: the adapter's own settings.
#[derive(Debug, Clone)]
pub enum TargetKind {
    /// Plex Media Server.
    Plex(PlexConfig),
    /// Emby.
    Emby(EmbyConfig),
    /// Jellyfin.
    Jellyfin(EmbyConfig),
    /// A program run with the scan paths as arguments.
    Command(CommandConfig),
    /// JSON lines on standard output.
    Stdout,
}

impl TargetKind {
    /// `plex`, `emby`, `jellyfin`, `command` or `stdout`.
    pub fn name(&self) -> &'static str {
        match self {
            TargetKind::Plex(_) => "plex",
            TargetKind::Emby(_) => "emby",
            TargetKind::Jellyfin(_) => "jellyfin",
            TargetKind::Command(_) => "command",
            TargetKind::Stdout => "stdout",
        }
    }
}

/// One `[[watch]]`.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The source's name.
    pub source: String,
    /// The watched root (normalised).
    pub path: String,
    /// Base interval between listings of a folder.
    pub interval: Duration,
    /// Longest interval an unchanged folder grows to.
    pub max_interval: Duration,
    /// Longest interval of a folder that changed in the last two weeks.
    pub active_max_interval: Duration,
    /// How long a changed folder must stay unchanged before it is scanned.
    pub settle: Duration,
    /// Exclude patterns.
    pub exclude: Excludes,
    /// Target names (every target when the file names none).
    pub targets: Vec<String>,
    /// `enabled = false` keeps the watch in the file but out of every pass (the UI's
    /// enable/disable); its stored state stays.
    pub enabled: bool,
    /// The line of the `[[watch]]`, for messages.
    pub line: usize,
}

impl WatchConfig {
    /// `source:path`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.source, self.path)
    }

    /// A watch of `source:path` with the defaults of a `[[watch]]` that names only
    /// those, sending to `targets`.
    pub fn new(source: &str, path: &str, targets: Vec<String>) -> Result<Self> {
        Ok(WatchConfig {
            source: source.to_owned(),
            path: pps_core::path::normalize(path)?,
            interval: Duration::from_secs(600),
            max_interval: Duration::from_secs(86_400),
            active_max_interval: Duration::from_secs(3600),
            settle: Duration::ZERO,
            exclude: Excludes::default(),
            targets,
            enabled: true,
            line: 0,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: Option<RawStore>,
    #[serde(default)]
    sources: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    targets: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    watch: Vec<Spanned<RawWatch>>,
    server: Option<Spanned<toml::Table>>,
    history: Option<RawHistory>,
    ui: Option<Spanned<RawUi>>,
    #[serde(default)]
    notifiers: BTreeMap<String, Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    password_hash: Option<String>,
    base_path: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    max_age: Option<Spanned<String>>,
    max_rows: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    token: Option<String>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    public_metrics: Option<bool>,
    #[serde(default)]
    arr_path_mapping: Vec<MappingRule>,
    #[serde(default)]
    clouddrive2_path_mapping: Vec<MappingRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    source: Spanned<String>,
    path: Spanned<String>,
    interval: Option<Spanned<String>>,
    max_interval: Option<Spanned<String>>,
    active_max_interval: Option<Spanned<String>>,
    settle: Option<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    targets: Option<Vec<Spanned<String>>>,
    enabled: Option<bool>,
}

/// The keys of a source table pps reads itself; the rest is the adapter's.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SourceKeys {
    concurrency: Option<usize>,
    max_calls_per_day: Option<u64>,
    max_calls_per_minute: Option<u64>,
    max_calls_per_hour: Option<u64>,
    throttle_pause: Option<String>,
}

/// The longest watch path accepted, in bytes (Linux's PATH_MAX).
const MAX_PATH_BYTES: usize = 4096;

/// Why no folder can be named `raw` (a watch root), if none can: longer than any file
/// system's path (4096 bytes on Linux), or holding a control character. What `pps
/// check` would fail on, refused before the file or the UI holds it.
pub(crate) fn path_problem(raw: &str) -> Option<String> {
    if raw.len() > MAX_PATH_BYTES {
        return Some(format!(
            "is {} bytes long; a path is at most {MAX_PATH_BYTES}",
            raw.len()
        ));
    }
    raw.chars().any(char::is_control).then(|| {
        "holds a control character (a newline, a tab or a NUL): no folder is named so".to_owned()
    })
}

/// The keys of [`SourceKeys`] that only a cloud source takes.
const BUDGET_KEYS: [&str; 4] = [
    "max_calls_per_day",
    "max_calls_per_minute",
    "max_calls_per_hour",
    "throttle_pause",
];

/// The keys of a target table pps reads itself; the rest is the adapter's.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TargetKeys {
    path_mapping: Vec<MappingRule>,
    scan_files: Option<bool>,
    confirm: Option<bool>,
    #[serde(deserialize_with = "optional_duration")]
    confirm_deadline: Option<Duration>,
}

/// An optional duration written as text (`"20m"`).
fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    pps_core::duration::serde(d).map(Some)
}

/// Listings in flight for a local source. Many queued listings let the source's few
/// blocking workers drain them back to back instead of paying a thread hand-off per
/// folder (see BENCHMARKS.md, `local_handoff`).
pub const LOCAL_CONCURRENCY: usize = 32;

/// Listings in flight for a CloudDrive2 source: the rate, not parallelism, sets the
/// pace, and 115 frowns on many parallel listings.
pub const CLOUDDRIVE_CONCURRENCY: usize = 2;

/// Listings in flight for an OpenList or rclone source: as for cd2, the rate sets the
/// pace, and the cloud behind frowns on parallel listings.
pub const HTTP_SOURCE_CONCURRENCY: usize = 2;

/// `[server] max_connections` by default: plenty for webhooks and a few browsers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Keys that hold secrets: their values are never shown in an error.
const SECRET_KEYS: &[&str] = &[
    "bot_token",
    "api_token",
    "password",
    "token",
    "api_key",
    "folder_password",
];

/// Keys whose environment value is always a string (never parsed as a number).
const STRING_KEYS: &[&str] = &[
    "url",
    "bot_token",
    "api_url",
    "tag",
    "remote",
    "folder_password",
    "api_token",
    "username",
    "password",
    "token",
    "api_key",
    "program",
];

/// Every adapter key of any target kind: one that another kind takes "does not apply",
/// rather than being unknown.
const TARGET_KEYS: &[&str] = &[
    "url",
    "token",
    "api_key",
    "pacing",
    "timeout",
    "sections_ttl",
    "max_batch",
    "libraries_ttl",
    "program",
    "args",
    "env",
];

/// The directory `pps.toml` paths are relative to.
fn base_dir(file: Option<&Path>) -> PathBuf {
    file.and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

struct Ctx<'a> {
    text: &'a str,
    file: Option<&'a Path>,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text
            .get(..offset.min(self.text.len()))
            .map_or(1, |t| t.matches('\n').count() + 1)
    }

    fn err(&self, offset: Option<usize>, key: &str, message: impl Into<String>) -> Error {
        let mut e = Error::new(ErrorKind::ConfigInvalid, message).permanent();
        if let Some(f) = self.file {
            e = e.with("file", f.display().to_string());
        }
        if let Some(o) = offset {
            e = e.with("line", self.line(o).to_string());
        }
        if !key.is_empty() {
            e = e.with("key", key);
        }
        e
    }

    /// The offset of `key = ...` inside the table that starts at `table_at`, so an
    /// error points at the key's own line; the table's line when it is not written
    /// there (a missing key, or one set from the environment).
    fn locate(&self, table_at: usize, key: &str) -> usize {
        let mut offset = table_at;
        let mut first = true;
        for line in self
            .text
            .get(table_at..)
            .unwrap_or("")
            .split_inclusive('\n')
        {
            let t = line.trim_start();
            if !first && t.starts_with('[') {
                break;
            }
            first = false;
            if let Some(rest) = t.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                return offset;
            }
            offset += line.len();
        }
        table_at
    }

    /// An error about `key` of the table at `table_at`.
    fn key_err(&self, table_at: usize, full_key: &str, message: impl Into<String>) -> Error {
        let short = full_key.rsplit('.').next().unwrap_or(full_key);
        self.err(Some(self.locate(table_at, short)), full_key, message)
    }

    /// As [`Ctx::key_err`], but a key set from the environment (`from_env`, as in
    /// [`Ctx::typed`]) names its variable instead of a line of a file it is not in.
    fn key_or_env_err(
        &self,
        table_at: usize,
        full_key: &str,
        from_env: &BTreeMap<String, String>,
        message: impl Into<String>,
    ) -> Error {
        let short = full_key.rsplit('.').next().unwrap_or(full_key);
        let Some(var) = from_env.get(short) else {
            return self.key_err(table_at, full_key, message);
        };
        let mut err = Error::new(
            ErrorKind::ConfigInvalid,
            format!("environment variable {var}: {}", message.into()),
        )
        .permanent()
        .with("env", var.clone());
        if let Some(f) = self.file {
            err = err.with("file", f.display().to_string());
        }
        err.with("key", full_key.to_owned())
    }

    /// Deserialises the table at `table_at` into `T`; an error names the field that
    /// failed (`sources.cd2.concurrency`) and points at its line.
    ///
    /// `from_env` maps keys set from the environment to their variable: an error about
    /// one names the variable, not a line of the file it is not in. The value of a
    /// secret key is never echoed (`token = 424242` would otherwise be shown back).
    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        table: toml::Table,
        table_at: usize,
        table_key: &str,
        from_env: &BTreeMap<String, String>,
    ) -> Result<T> {
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().trim().to_owned();
            let field = if path.is_empty() || path == "." {
                // serde names the field in backticks (unknown, missing); so do the
                // adapters' own checks of a whole table ("`password` and `username`
                // go together").
                msg.split('`')
                    .nth(1)
                    .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or("")
                    .to_owned()
            } else {
                path.split(['.', '[']).next().unwrap_or(&path).to_owned()
            };
            let msg = if SECRET_KEYS.contains(&field.as_str()) && msg.starts_with("invalid type") {
                format!(
                    "`{field}` must be a string in quotes (its value is not shown: it is a secret)"
                )
            } else {
                msg
            };
            if let Some(var) = from_env.get(&field) {
                let mut err = Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("environment variable {var}: {msg}"),
                )
                .permanent()
                .with("env", var.clone());
                if let Some(f) = self.file {
                    err = err.with("file", f.display().to_string());
                }
                return err.with("key", format!("{table_key}.{field}"));
            }
            if path.is_empty() || path == "." {
                let mut key = table_key.to_owned();
                let mut offset = table_at;
                if !field.is_empty() {
                    key = format!("{table_key}.{field}");
                    offset = self.locate(table_at, &field);
                }
                self.err(Some(offset), &key, msg)
            } else {
                self.err(
                    Some(self.locate(table_at, &field)),
                    &format!("{table_key}.{path}"),
                    msg,
                )
            }
        })
    }

    /// The key written on the line holding `offset` (`key = …`), with the table it is
    /// in (`watch[1].exclude`), for errors the TOML parser reports only by position.
    fn key_at(&self, offset: usize) -> String {
        let upto = self.text.get(..offset.min(self.text.len())).unwrap_or("");
        let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
        let line = self.text[line_start..].lines().next().unwrap_or("");
        let Some((key, _)) = line.split_once('=') else {
            return String::new();
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return String::new();
        }
        // The nearest table header above, and for [[watch]] which one it is.
        let header = upto[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['));
        match header {
            Some("[[watch]]") => {
                let index = upto[..line_start]
                    .lines()
                    .filter(|l| l.trim() == "[[watch]]")
                    .count()
                    .saturating_sub(1);
                format!("watch[{index}].{key}")
            }
            Some(h) => format!("{}.{key}", h.trim_matches(['[', ']'])),
            None => key.to_owned(),
        }
    }

    fn duration(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration> {
        match v {
            None => Ok(default),
            Some(s) => {
                duration::parse(s.get_ref()).map_err(|m| self.err(Some(s.span().start), key, m))
            }
        }
    }
}

impl Config {
    /// Reads and validates a config file, with environment overrides from the process.
    pub fn load(file: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            let msg = if e.kind() == std::io::ErrorKind::NotFound {
                "there is no config file here: `pps init` writes a commented one to edit; or watch a folder without one: `pps run --watch DIR`".to_owned()
            } else {
                format!("cannot read the config file: {e}")
            };
            Error::new(ErrorKind::ConfigInvalid, msg)
                .permanent()
                .with("file", file.display().to_string())
        })?;
        Self::parse(&text, Some(file), &process_env()?)
    }

    /// Parses and validates config text. `env` holds `(name, value)` pairs for the
    /// `PPS_SOURCES_*` / `PPS_TARGETS_*` / `PPS_SERVER_*` overrides.
    pub fn parse(text: &str, file: Option<&Path>, env: &[(String, String)]) -> Result<Config> {
        let cx = Ctx { text, file };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            let key = offset.map(|o| cx.key_at(o)).unwrap_or_default();
            cx.err(offset, &key, e.message().trim().to_owned())
        })?;
        let base = base_dir(file);
        // PPS_STORE_PATH puts the store on a volume of its own (a container's /data)
        // while the config stays where it is.
        let store = env
            .iter()
            .find(|(k, _)| k == "PPS_STORE_PATH")
            .map(|(_, v)| PathBuf::from(v))
            .or_else(|| raw.store.and_then(|s| s.path).map(PathBuf::from))
            .map_or_else(|| base.join("pps.db"), |p| base.join(p));
        let mut sources = BTreeMap::new();
        for (name, table) in raw.sources {
            let source = cx.source(&name, table, env)?;
            sources.insert(name, source);
        }
        let mut targets = BTreeMap::new();
        let mut target_at = BTreeMap::new();
        for (name, table) in raw.targets {
            target_at.insert(name.clone(), table.span().start);
            let target = cx.target(&name, table, env)?;
            targets.insert(name, target);
        }
        let mut watches = Vec::new();
        for (i, w) in raw.watch.into_iter().enumerate() {
            let path_at = w.get_ref().path.span().start;
            let wc = cx.watch(i, w, &sources, &targets, &target_at)?;
            cx.not_nested(i, &wc, &watches, path_at)?;
            watches.push(wc);
        }
        // `PPS_SERVER_*` alone turns the server on (a container sets PPS_SERVER_LISTEN
        // and a token file, with no `[server]` table in the user's pps.toml).
        let server_env = env
            .iter()
            .any(|(k, _)| k.len() > "PPS_SERVER_".len() && k.starts_with("PPS_SERVER_"));
        let server = match raw.server {
            None if !server_env => ServerConfig::off(),
            None => cx.server(Spanned::new(0..0, toml::Table::new()), env)?,
            Some(table) => cx.server(table, env)?,
        };
        let history = match raw.history {
            None => pps_core::store::HistoryLimits::default(),
            Some(h) => {
                let d = pps_core::store::HistoryLimits::default();
                let max_rows = match h.max_rows {
                    Some(n) if *n.get_ref() == 0 => {
                        return Err(cx.err(
                            Some(n.span().start),
                            "history.max_rows",
                            "`max_rows` must be at least 1",
                        ));
                    }
                    Some(n) => n.into_inner(),
                    None => d.max_rows,
                };
                pps_core::store::HistoryLimits {
                    max_age: cx.duration(&h.max_age, "history.max_age", d.max_age)?,
                    max_rows,
                }
            }
        };
        let ui = cx.ui(raw.ui, env)?;
        let mut notifiers = BTreeMap::new();
        for (name, table) in raw.notifiers {
            let n = cx.notifier(&name, table, env, &targets, &watches)?;
            notifiers.insert(name, n);
        }
        if ui.password_hash.is_some() && server.listen.is_none() {
            return Err(cx.err(
                None,
                "ui.password_hash",
                "the web UI is served on [server] listen: set it (and a token), or PPS_SERVER_LISTEN",
            ));
        }
        Ok(Config {
            file: file.map(Path::to_path_buf),
            store,
            sources,
            targets,
            watches,
            server,
            history,
            ui,
            notifiers,
        })
    }

    /// A config for `--watch DIR` without a file: the local source, the stdout target
    /// and one watch per folder (made absolute), every pass listing the whole tree.
    pub fn for_folders(
        dirs: &[PathBuf],
        store: PathBuf,
        excludes: &[String],
        interval: Duration,
    ) -> Result<Config> {
        let exclude = Excludes::new(excludes).map_err(|e| e.with("option", "--exclude"))?;
        let mut watches = Vec::new();
        for dir in dirs {
            let shown = dir.display().to_string();
            let abs = std::fs::canonicalize(dir).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("the watched folder cannot be opened: {e}"),
                )
                .with("option", "--watch")
                .with("path", shown.clone())
            })?;
            if !abs.is_dir() {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "the watched path is not a folder",
                )
                .with("option", "--watch")
                .with("path", shown));
            }
            let root = abs.to_str().ok_or_else(|| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    "the watched path is not valid UTF-8",
                )
                .with("option", "--watch")
                .with("path", shown.clone())
            })?;
            let mut w = WatchConfig::new("local", root, vec!["stdout".into()])?;
            w.interval = interval;
            w.max_interval = interval.max(Duration::from_secs(86_400));
            w.active_max_interval = interval.max(Duration::from_secs(3600));
            w.exclude = exclude.clone();
            if let Some(o) = watches.iter().find(|o: &&WatchConfig| {
                pps_core::path::is_at_or_under(&o.path, &w.path)
                    || pps_core::path::is_at_or_under(&w.path, &o.path)
            }) {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "`{}` and `{}` hold each other: every change there would be listed and scanned twice; watch the outer folder only",
                        o.path, w.path
                    ),
                )
                .with("option", "--watch")
                .with("path", shown));
            }
            watches.push(w);
        }
        if !dirs.is_empty() {
            check_store_roots(&store, &watches)?;
        }
        let sources = BTreeMap::from([(
            "local".to_owned(),
            SourceConfig::Local {
                concurrency: LOCAL_CONCURRENCY,
            },
        )]);
        let targets = BTreeMap::from([(
            "stdout".to_owned(),
            TargetConfig {
                kind: TargetKind::Stdout,
                mapping: PathMapping::default(),
                rules: Vec::new(),
                scan_files: true,
                confirm: false,
                confirm_deadline: None,
                line: 0,
            },
        )]);
        Ok(Config {
            file: None,
            store,
            sources,
            targets,
            watches,
            server: ServerConfig::off(),
            history: pps_core::store::HistoryLimits::default(),
            ui: UiConfig {
                password_hash: None,
                base_path: "/".to_owned(),
                trusted_proxies: Vec::new(),
                hosts: Vec::new(),
            },
            notifiers: BTreeMap::new(),
        })
    }

    /// A config for `--store FILE` without a config file: the watches of local folders
    /// the store recorded (what `--watch DIR` mode made), the local source and the
    /// stdout target. Only an existing store is read.
    pub fn from_store(store: PathBuf) -> Result<Config> {
        let existing = pps_core::sqlite::SqliteStore::open_existing(&store)?;
        let stats = pps_core::MtimeStore::stats(&existing)?;
        drop(existing);
        let mut config = Self::for_folders(&[], store, &[], Duration::from_secs(600))?;
        for (_, source, root, _) in stats.scopes {
            // Other sources need their settings from the config file; a re-index's
            // staging area is no watch.
            if source == "local" {
                config
                    .watches
                    .push(WatchConfig::new(&source, &root, vec!["stdout".into()])?);
            }
        }
        Ok(config)
    }
}

/// A `--watch` store belongs to the folders it was made for: its state and queued scans
/// are theirs. An existing store that holds a folder none of `watches` holds is refused,
/// naming both, so a run never delivers scans queued for a folder it was not asked to
/// watch (`pps run --watch media`, later `pps once --watch m2` in the same directory).
/// Adding a folder to the set is fine: it gets its baseline.
fn check_store_roots(store: &Path, watches: &[WatchConfig]) -> Result<()> {
    if !store.exists() {
        return Ok(());
    }
    // A store that cannot be read here (read-only, damaged, newer) is left to the real
    // open, whose message says so; this check only compares roots.
    let read = pps_core::sqlite::SqliteStore::open_existing(store).and_then(|existing| {
        let stats = pps_core::MtimeStore::stats(&existing)?;
        // A folder forgotten (`pps forget`) may still have scans queued: they count too.
        let mut queued = pps_core::MtimeStore::pending(&existing, "stdout", usize::MAX)?;
        queued.extend(pps_core::MtimeStore::parked(&existing, "stdout")?);
        Ok((stats, queued))
    });
    let Ok((stats, queued)) = read else {
        return Ok(());
    };
    let stored: Vec<String> = stats
        .scopes
        .into_iter()
        .filter(|(id, source, _, folders)| {
            source == "local" && (*folders > 0 || queued.iter().any(|q| q.scope == *id))
        })
        .map(|(_, _, root, _)| root)
        .collect();
    let foreign: Vec<&String> = stored
        .iter()
        .filter(|root| !watches.iter().any(|w| w.path == **root))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let list = |roots: &mut dyn Iterator<Item = &str>| roots.collect::<Vec<_>>().join(", ");
    let shown = store.display();
    Err(Error::new(
        ErrorKind::ConfigInvalid,
        format!(
            "the store {shown} was made for --watch {}, not for --watch {}: its state and queued scans belong to those folders. Give this folder set a store of its own (--store other.db), or watch the same folders again; `pps forget --store {shown} PATH` drops a folder from it",
            list(&mut stored.iter().map(String::as_str)),
            list(&mut watches.iter().map(|w| w.path.as_str())),
        ),
    )
    .with("option", "--store")
    .with("store", shown.to_string()))
}

/// Writes [`TEMPLATE`] to `path`, readable by its owner only (it will hold tokens);
/// never overwrites.
///
/// # Errors
/// `ConfigInvalid` naming the file when it exists or cannot be made.
pub fn write_template(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| {
        let msg = if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists; not overwritten (edit it, or pass --config NEW_FILE)",
                path.display()
            )
        } else {
            format!("cannot create {}: {e}", path.display())
        };
        Error::new(ErrorKind::ConfigInvalid, msg)
    })?;
    f.write_all(TEMPLATE.as_bytes())
        .map_err(|e| Error::from(e).with("file", path.display().to_string()))
}

impl Ctx<'_> {
    /// One `[sources.NAME]`: `kind`, pps's own keys, the rest the adapter's.
    fn source(
        &self,
        name: &str,
        table: Spanned<toml::Table>,
        env: &[(String, String)],
    ) -> Result<SourceConfig> {
        let at = table.span().start;
        let mut table = table.into_inner();
        let from_env = apply_env(&mut table, "SOURCES", name, env);
        let key = |k: &str| format!("sources.{name}.{k}");
        let kind = kind_of(&mut table, self, at, &key("kind"))?;
        let ours: SourceKeys = self.typed(
            take(
                &mut table,
                &[
                    "concurrency",
                    "max_calls_per_day",
                    "max_calls_per_minute",
                    "max_calls_per_hour",
                    "throttle_pause",
                ],
            ),
            at,
            &format!("sources.{name}"),
            &from_env,
        )?;
        let concurrency = |default: usize| -> Result<usize> {
            match ours.concurrency {
                Some(0) => Err(self.key_err(at, &key("concurrency"), "must be at least 1")),
                Some(n) => Ok(n),
                None => Ok(default),
            }
        };
        // The call budget of a cloud source: the same keys for cd2, OpenList and rclone.
        let cloud_budget = |default_concurrency: usize| -> Result<CloudBudget> {
            for (k, v) in [
                ("max_calls_per_day", ours.max_calls_per_day),
                ("max_calls_per_minute", ours.max_calls_per_minute),
                ("max_calls_per_hour", ours.max_calls_per_hour),
            ] {
                if v == Some(0) {
                    return Err(self.key_err(
                        at,
                        &key(k),
                        "must be at least 1 (leave it out for no ceiling)",
                    ));
                }
            }
            let pause = match &ours.throttle_pause {
                None => pps_core::budget::MIN_THROTTLE_PAUSE,
                Some(p) => {
                    let d = duration::parse(p)
                        .map_err(|m| self.key_err(at, &key("throttle_pause"), m))?;
                    if !d.is_zero() && d < pps_core::budget::MIN_THROTTLE_PAUSE {
                        return Err(self.key_err(
                            at,
                            &key("throttle_pause"),
                            format!("`{p}` is under a minute: a cloud that throttled keeps throttling an account that comes back sooner (\"0s\" turns the pause off)"),
                        ));
                    }
                    d
                }
            };
            Ok(CloudBudget {
                concurrency: concurrency(default_concurrency)?,
                max_calls_per_day: ours.max_calls_per_day,
                max_calls_per_minute: ours.max_calls_per_minute,
                max_calls_per_hour: ours.max_calls_per_hour,
                throttle_pause: pause,
            })
        };
        match kind.as_str() {
            "clouddrive2" => {
                let settings: CloudDriveConfig =
                    self.typed(table, at, &format!("sources.{name}"), &from_env)?;
                // In a config file the URL carries no credentials or query: they have
                // keys of their own (a program may still hand them in a URL).
                pps_core::secret::check_url(&settings.url)
                    .map_err(|m| self.key_err(at, &key("url"), m))?;
                settings.validate().map_err(|e| {
                    self.adapter_err(at, &format!("sources.{name}"), name, "SOURCES", e)
                })?;
                let budget = cloud_budget(CLOUDDRIVE_CONCURRENCY)?;
                Ok(SourceConfig::CloudDrive2 {
                    settings,
                    concurrency: budget.concurrency,
                    max_calls_per_day: budget.max_calls_per_day,
                    max_calls_per_minute: budget.max_calls_per_minute,
                    max_calls_per_hour: budget.max_calls_per_hour,
                    throttle_pause: budget.throttle_pause,
                })
            }
            "openlist" => {
                let settings: OpenListConfig =
                    self.typed(table, at, &format!("sources.{name}"), &from_env)?;
                pps_core::secret::check_url(&settings.url)
                    .map_err(|m| self.key_err(at, &key("url"), m))?;
                settings.validate().map_err(|e| {
                    self.adapter_err(at, &format!("sources.{name}"), name, "SOURCES", e)
                })?;
                let budget = cloud_budget(HTTP_SOURCE_CONCURRENCY)?;
                Ok(SourceConfig::OpenList { settings, budget })
            }
            "rclone" => {
                let settings: RcloneConfig =
                    self.typed(table, at, &format!("sources.{name}"), &from_env)?;
                pps_core::secret::check_url(&settings.url)
                    .map_err(|m| self.key_err(at, &key("url"), m))?;
                settings.validate().map_err(|e| {
                    self.adapter_err(at, &format!("sources.{name}"), name, "SOURCES", e)
                })?;
                let budget = cloud_budget(HTTP_SOURCE_CONCURRENCY)?;
                Ok(SourceConfig::Rclone { settings, budget })
            }
            "local" => {
                let _: LocalKeys = self.typed(table, at, &format!("sources.{name}"), &from_env)?;
                let set = [
                    ours.max_calls_per_day.is_some(),
                    ours.max_calls_per_minute.is_some(),
                    ours.max_calls_per_hour.is_some(),
                    ours.throttle_pause.is_some(),
                ];
                if let Some((k, _)) = BUDGET_KEYS.iter().zip(set).find(|(_, on)| *on) {
                    return Err(self.key_err(
                        at,
                        &key(k),
                        format!("`{k}` applies to cloud sources only (clouddrive2, openlist, rclone; a local folder has no call budget)"),
                    ));
                }
                Ok(SourceConfig::Local {
                    concurrency: concurrency(LOCAL_CONCURRENCY)?,
                })
            }
            other => Err(self.key_err(
                at,
                &key("kind"),
                format!("unknown source kind `{other}`; use \"clouddrive2\", \"openlist\", \"rclone\" or \"local\""),
            )),
        }
    }

    /// One `[targets.NAME]`: `kind`, `path_mapping` and `scan_files`, the rest the
    /// adapter's.
    fn target(
        &self,
        name: &str,
        table: Spanned<toml::Table>,
        env: &[(String, String)],
    ) -> Result<TargetConfig> {
        let at = table.span().start;
        let mut table = table.into_inner();
        let from_env = apply_env(&mut table, "TARGETS", name, env);
        let key = |k: &str| format!("targets.{name}.{k}");
        let table_key = format!("targets.{name}");
        let kind = kind_of(&mut table, self, at, &key("kind"))?;
        let ours: TargetKeys = self.typed(
            take(
                &mut table,
                &["path_mapping", "scan_files", "confirm", "confirm_deadline"],
            ),
            at,
            &table_key,
            &from_env,
        )?;
        // A key another kind of target takes "does not apply" here; anything else
        // unknown is the adapter deserialiser's to report.
        let foreign = |accepted: &[&str], table: &toml::Table| -> Result<()> {
            match table
                .keys()
                .find(|k| !accepted.contains(&k.as_str()) && TARGET_KEYS.contains(&k.as_str()))
            {
                Some(k) => Err(self.key_err(
                    at,
                    &key(k),
                    format!("`{k}` does not apply to a {kind} target"),
                )),
                None => Ok(()),
            }
        };
        let check =
            |r: Result<()>| r.map_err(|e| self.adapter_err(at, &table_key, name, "TARGETS", e));
        let kind = match kind.as_str() {
            "plex" => {
                foreign(
                    &["url", "token", "pacing", "timeout", "sections_ttl"],
                    &table,
                )?;
                if ours.scan_files == Some(true) {
                    return Err(self.key_err(
                        at,
                        &key("scan_files"),
                        "Plex scans folders only; remove `scan_files` or set it to false",
                    ));
                }
                let c: PlexConfig = self.typed(table, at, &table_key, &from_env)?;
                check(c.validate())?;
                TargetKind::Plex(c)
            }
            "emby" | "jellyfin" => {
                foreign(
                    &["url", "api_key", "timeout", "max_batch", "libraries_ttl"],
                    &table,
                )?;
                let c: EmbyConfig = self.typed(table, at, &table_key, &from_env)?;
                check(c.validate())?;
                if kind == "emby" {
                    TargetKind::Emby(c)
                } else {
                    TargetKind::Jellyfin(c)
                }
            }
            "command" => {
                foreign(&["program", "args", "timeout", "max_batch", "env"], &table)?;
                let c: CommandConfig = self.typed(table, at, &table_key, &from_env)?;
                check(c.validate())?;
                TargetKind::Command(c)
            }
            "stdout" => {
                foreign(&[], &table)?;
                let _: LocalKeys = self.typed(table, at, &table_key, &from_env)?;
                TargetKind::Stdout
            }
            other => {
                return Err(self.key_err(
                    at,
                    &key("kind"),
                    format!(
                        "unknown target kind `{other}`; use plex, emby, jellyfin, command or stdout"
                    ),
                ));
            }
        };
        let mapping = PathMapping::new(ours.path_mapping.clone()).map_err(|e| {
            self.key_err(
                at,
                &key("path_mapping"),
                format!(
                    "{} ({})",
                    e.message(),
                    e.context()
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let scan_files = ours.scan_files.unwrap_or(!matches!(
            kind,
            TargetKind::Plex(_) | TargetKind::Command(_)
        ));
        let media_server = matches!(
            kind,
            TargetKind::Plex(_) | TargetKind::Emby(_) | TargetKind::Jellyfin(_)
        );
        for k in ["confirm", "confirm_deadline"] {
            let set = if k == "confirm" {
                ours.confirm.is_some()
            } else {
                ours.confirm_deadline.is_some()
            };
            if set && !media_server {
                return Err(self.key_err(
                    at,
                    &key(k),
                    format!(
                        "`{k}` does not apply to a {} target: only Plex, Emby and Jellyfin can say what they indexed",
                        kind.name()
                    ),
                ));
            }
        }
        if let Some(d) = ours.confirm_deadline
            && d < Duration::from_secs(60)
        {
            return Err(self.key_err(
                at,
                &key("confirm_deadline"),
                "is too short: media servers take a minute or more to index a scan; use at least \"1m\"",
            ));
        }
        Ok(TargetConfig {
            kind,
            mapping,
            rules: ours.path_mapping,
            scan_files,
            confirm: ours.confirm.unwrap_or(media_server),
            confirm_deadline: ours.confirm_deadline,
            line: self.line(at),
        })
    }

    /// One `[notifiers.NAME]`, with `PPS_NOTIFIERS_<NAME>_<KEY>` (or `_FILE`) over the
    /// file; its `targets` and `watches` must name configured ones.
    fn notifier(
        &self,
        name: &str,
        table: Spanned<toml::Table>,
        env: &[(String, String)],
        targets: &BTreeMap<String, TargetConfig>,
        watches: &[WatchConfig],
    ) -> Result<notifiers::NotifierConfig> {
        let at = table.span().start;
        let mut table = table.into_inner();
        let from_env = apply_env(&mut table, "NOTIFIERS", name, env);
        let table_key = format!("notifiers.{name}");
        let raw: notifiers::RawNotifier = self.typed(table, at, &table_key, &from_env)?;
        for t in &raw.targets {
            if !targets.contains_key(t) {
                return Err(self.key_err(
                    at,
                    &format!("{table_key}.targets"),
                    format!("no target `{t}` is configured"),
                ));
            }
        }
        for w in &raw.watches {
            if !watches.iter().any(|x| x.label() == *w) {
                return Err(self.key_err(
                    at,
                    &format!("{table_key}.watches"),
                    format!("no watch `{w}` is configured (name watches as source:path, e.g. `cd2:/115/电影`)"),
                ));
            }
        }
        raw.build().map_err(|(key, msg)| {
            let full = format!("{table_key}.{key}");
            match from_env.get(key) {
                Some(var) => Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("environment variable {var}: {msg}"),
                )
                .permanent()
                .with("env", var.clone())
                .with("key", full),
                None => self.key_err(at, &full, msg),
            }
        })
    }

    /// An adapter's own check of its settings, with the file, the line of the key it
    /// names and, for a missing credential, the environment variable that can give it.
    fn adapter_err(
        &self,
        at: usize,
        table_key: &str,
        name: &str,
        section: &str,
        e: Error,
    ) -> Error {
        let k = e.context_value("key").unwrap_or("").to_owned();
        let mut msg = e.message().to_owned();
        if msg.ends_with("is required") && STRING_KEYS.contains(&k.as_str()) {
            msg.push_str(&format!(
                " (or set PPS_{section}_{}_{})",
                env_name(name),
                k.to_uppercase()
            ));
        }
        if k.is_empty() {
            self.err(Some(at), table_key, msg)
        } else {
            self.key_err(at, &format!("{table_key}.{k}"), msg)
        }
    }

    /// Refuses watch `i` when it and an earlier enabled watch of the same source hold
    /// each other (the same folder, or one inside the other): every change in the
    /// inner one would be listed twice and scanned twice. The outer watch already
    /// covers the inner folder.
    fn not_nested(
        &self,
        i: usize,
        wc: &WatchConfig,
        before: &[WatchConfig],
        path_at: usize,
    ) -> Result<()> {
        if !wc.enabled {
            return Ok(());
        }
        let inside = pps_core::path::is_at_or_under;
        let Some((j, other)) = before.iter().enumerate().find(|(_, o)| {
            o.enabled
                && o.source == wc.source
                && (inside(&wc.path, &o.path) || inside(&o.path, &wc.path))
        }) else {
            return Ok(());
        };
        let how = if wc.path == other.path {
            "is the same folder as".to_owned()
        } else if inside(&wc.path, &other.path) {
            "is inside".to_owned()
        } else {
            "holds".to_owned()
        };
        Err(self.err(
            Some(path_at),
            &format!("watch[{i}].path"),
            format!(
                "watch[{i}] (`{}:{}`) {how} watch[{j}] (`{}:{}`): every change there would be listed and scanned twice; keep the outer watch (it covers the folder) and remove or disable the other",
                wc.source, wc.path, other.source, other.path
            ),
        ))
    }

    /// One `[[watch]]`, checked against the sources and targets.
    fn watch(
        &self,
        i: usize,
        w: Spanned<RawWatch>,
        sources: &BTreeMap<String, SourceConfig>,
        targets: &BTreeMap<String, TargetConfig>,
        target_at: &BTreeMap<String, usize>,
    ) -> Result<WatchConfig> {
        let cx = self;
        let at = w.span().start;
        let w = w.into_inner();
        let key = |k: &str| format!("watch[{i}].{k}");
        let source = w.source.get_ref().clone();
        if !sources.contains_key(&source) {
            let known: Vec<_> = sources.keys().cloned().collect();
            return Err(cx.err(
                Some(w.source.span().start),
                &key("source"),
                format!(
                    "no source named `{source}` is configured (sources: {})",
                    list(&known)
                ),
            ));
        }
        // What `pps check` would fail on, refused here so neither the file nor the UI
        // can hold it: a control character (a NUL, a newline) or a path longer than any
        // file system's (4096 bytes on Linux).
        let raw_path = w.path.get_ref();
        if let Some(why) = path_problem(raw_path) {
            return Err(cx.err(Some(w.path.span().start), &key("path"), why));
        }
        let path = pps_core::path::normalize(raw_path).map_err(|e| {
            cx.err(
                Some(w.path.span().start),
                &key("path"),
                e.message().to_owned(),
            )
        })?;
        let interval = cx.duration(&w.interval, &key("interval"), Duration::from_secs(600))?;
        let max_interval = cx.duration(
            &w.max_interval,
            &key("max_interval"),
            Duration::from_secs(86_400),
        )?;
        if interval < Duration::from_secs(1) {
            return Err(cx.key_err(
                at,
                &key("interval"),
                "must be at least 1s (a shorter interval lists without pause)",
            ));
        }
        let active_max_interval = cx.duration(
            &w.active_max_interval,
            &key("active_max_interval"),
            Duration::from_secs(3600),
        )?;
        if active_max_interval < interval {
            return Err(cx.key_err(
                at,
                &key("active_max_interval"),
                "must be at least `interval`",
            ));
        }
        if max_interval < interval {
            return Err(cx.key_err(at, &key("max_interval"), "must be at least `interval`"));
        }
        let settle = cx.duration(&w.settle, &key("settle"), Duration::ZERO)?;
        let exclude = Excludes::new(&w.exclude).map_err(|e| {
            cx.key_err(
                at,
                &key("exclude"),
                format!(
                    "{} {}",
                    e.message(),
                    e.context_value("pattern")
                        .map(|p| format!("(`{p}`)"))
                        .unwrap_or_default()
                ),
            )
        })?;
        let names: Vec<String> = match &w.targets {
            Some(given) => {
                let mut names = Vec::new();
                for t in given {
                    if !targets.contains_key(t.get_ref()) {
                        let known: Vec<_> = targets.keys().cloned().collect();
                        return Err(cx.err(
                            Some(t.span().start),
                            &key("targets"),
                            format!(
                                "no target named `{}` is configured (targets: {})",
                                t.get_ref(),
                                list(&known)
                            ),
                        ));
                    }
                    names.push(t.get_ref().clone());
                }
                names
            }
            None => targets.keys().cloned().collect(),
        };
        for t in &names {
            let tc = &targets[t];
            // A rule below the watched root maps part of it, which is fine (the rest is
            // parked with its reason); a mapping that covers none of it is a mistake
            // worth stopping for.
            let partly = tc.rules.iter().any(|r| {
                pps_core::path::normalize(&r.from)
                    .is_ok_and(|f| pps_core::path::is_at_or_under(&f, &path))
            });
            if !tc.mapping.is_empty() && tc.mapping.map(&path).is_none() && !partly {
                let t_at = target_at.get(t).copied().unwrap_or(at);
                return Err(cx.key_err(t_at, &format!("targets.{t}.path_mapping"), format!("maps nothing of watch `{source}:{path}` (line {}): no `from` covers that path, so every scan would be parked; add a rule or leave this target out of the watch's `targets`", cx.line(at))));
            }
        }
        Ok(WatchConfig {
            source,
            path,
            interval,
            max_interval,
            active_max_interval,
            settle,
            exclude,
            targets: names,
            enabled: w.enabled.unwrap_or(true),
            line: cx.line(at),
        })
    }

    /// `[ui]`, with `PPS_UI_PASSWORD_HASH` (or `_FILE`) over the file.
    fn ui(&self, raw: Option<Spanned<RawUi>>, env: &[(String, String)]) -> Result<UiConfig> {
        let at = raw.as_ref().map(|r| r.span().start);
        let raw = raw.map(Spanned::into_inner);
        let from_env = env
            .iter()
            .find(|(k, v)| k == "PPS_UI_PASSWORD_HASH" && !v.is_empty())
            .map(|(_, v)| v.clone());
        let hash = from_env
            .clone()
            .or_else(|| raw.as_ref().and_then(|r| r.password_hash.clone()))
            .filter(|h| !h.trim().is_empty());
        if let Some(h) = &hash
            && !h.starts_with("$argon2")
        {
            // A password typed where its hash belongs would otherwise sit in the file.
            let msg = "`password_hash` is not an argon2 hash; make one with `pps passwd` (never put the password itself here)";
            return Err(match from_env {
                Some(_) => Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("environment variable PPS_UI_PASSWORD_HASH: {msg}"),
                )
                .with("env", "PPS_UI_PASSWORD_HASH"),
                None => self.key_err(at.unwrap_or(0), "ui.password_hash", msg),
            });
        }
        let base = raw
            .as_ref()
            .and_then(|r| r.base_path.clone())
            .unwrap_or_else(|| "/".to_owned());
        let trimmed = base.trim_matches('/');
        if !trimmed.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        }) && !trimmed.is_empty()
        {
            return Err(self.key_err(
                at.unwrap_or(0),
                "ui.base_path",
                format!(
                    "`{base}` is not a path like /pps/ (letters, digits, - _ . between slashes)"
                ),
            ));
        }
        let base_path = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        };
        let mut trusted_proxies = Vec::new();
        for p in raw.as_ref().map_or(&[][..], |r| &r.trusted_proxies[..]) {
            match p.parse::<std::net::IpAddr>() {
                Ok(ip) => trusted_proxies.push(ip),
                Err(_) => {
                    return Err(self.key_err(
                        at.unwrap_or(0),
                        "ui.trusted_proxies",
                        format!("`{p}` is not an IP address (list the proxy's own address, e.g. \"127.0.0.1\")"),
                    ));
                }
            }
        }
        let hosts: Vec<String> = raw.as_ref().map_or_else(Vec::new, |r| {
            r.hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
        });
        if let Some(h) = hosts
            .iter()
            .find(|h| h.is_empty() || h.contains(['/', ' ', '@']))
        {
            return Err(self.key_err(
                at.unwrap_or(0),
                "ui.hosts",
                format!("`{h}` is not a host name (write `nas.local` or `nas.local:8090`)"),
            ));
        }
        Ok(UiConfig {
            password_hash: hash.map(Secret::new),
            base_path,
            trusted_proxies,
            hosts,
        })
    }

    /// `[server]`, with `PPS_SERVER_*` overrides.
    fn server(
        &self,
        table: Spanned<toml::Table>,
        env: &[(String, String)],
    ) -> Result<ServerConfig> {
        let cx = self;
        let at = table.span().start;
        let mut table = table.into_inner();
        let mut from_env = BTreeMap::new();
        for (k, v) in env {
            if let Some(key) = k.strip_prefix("PPS_SERVER_")
                && !key.is_empty()
            {
                from_env.insert(key.to_lowercase(), k.clone());
                table.insert(key.to_lowercase(), toml::Value::String(v.clone()));
            }
        }
        let r: RawServer = cx.typed(table, at, "server", &from_env)?;
        let listen = match &r.listen {
            None => None,
            Some(l) => Some(l.parse::<std::net::SocketAddr>().map_err(|_| {
                cx.key_or_env_err(
                    at,
                    "server.listen",
                    &from_env,
                    format!("`{l}` is not an address; write e.g. 127.0.0.1:8090 or [::]:8090"),
                )
            })?),
        };
        if r.token
            .as_ref()
            .is_some_and(|t| !t.trim().is_empty() && t.trim() != t)
        {
            // A token a client sends trimmed would never match; say so at start instead
            // of refusing every trigger later.
            return Err(cx.key_or_env_err(
                at,
                "server.token",
                &from_env,
                "`token` has spaces or line breaks before or after it; remove them",
            ));
        }
        let token = r.token.filter(|t| !t.trim().is_empty()).map(Secret::new);
        if listen.is_some() && token.is_none() {
            let msg = "`token` is required when `listen` is set (or set PPS_SERVER_TOKEN): every trigger must present it";
            // Listening asked for by PPS_SERVER_LISTEN: name it, not a line of the file.
            if let Some(var) = from_env.get("listen") {
                let by = BTreeMap::from([("token".to_owned(), var.clone())]);
                return Err(cx.key_or_env_err(at, "server.token", &by, msg));
            }
            return Err(cx.key_err(at, "server.token", msg));
        }
        let mapping = |rules: Vec<MappingRule>, k: &str| {
            PathMapping::new(rules)
                .map_err(|e| cx.key_err(at, &format!("server.{k}"), e.message().to_owned()))
        };
        Ok(ServerConfig {
            listen,
            token,
            max_body_bytes: r.max_body_bytes.unwrap_or(1 << 20).max(1024),
            max_connections: r.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
            public_metrics: r.public_metrics.unwrap_or(false),
            arr_mapping: mapping(r.arr_path_mapping, "arr_path_mapping")?,
            clouddrive2_mapping: mapping(r.clouddrive2_path_mapping, "clouddrive2_path_mapping")?,
            line: cx.line(at),
        })
    }
}

/// A table with no keys of its own left (a local source, a stdout target): anything
/// in it is unknown.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalKeys {}

/// Moves `keys` out of `table` into a table of their own.
fn take(table: &mut toml::Table, keys: &[&str]) -> toml::Table {
    keys.iter()
        .filter_map(|k| table.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect()
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn env_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// The table's `kind`, taken out of it.
fn kind_of(table: &mut toml::Table, cx: &Ctx<'_>, at: usize, key: &str) -> Result<String> {
    match table.remove("kind") {
        Some(toml::Value::String(s)) => Ok(s),
        Some(_) => Err(cx.key_err(at, key, "`kind` must be a string")),
        None => Err(cx.key_err(at, key, "`kind` is required")),
    }
}

/// The process's environment with every `PPS_..._FILE=PATH` variable replaced by
/// `PPS_...` holding the file's content (one trailing line break dropped), as compose
/// and Kubernetes secrets are mounted. Errors name the variable and the path, never
/// the content; setting both `PPS_X` and `PPS_X_FILE` is refused as ambiguous.
pub fn process_env() -> Result<Vec<(String, String)>> {
    expand_file_vars(std::env::vars().collect())
}

/// [`process_env`] over given pairs.
pub fn expand_file_vars(env: Vec<(String, String)>) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    let mut from_files = Vec::new();
    for (k, v) in env {
        match k.strip_prefix("PPS_").and_then(|r| r.strip_suffix("_FILE")) {
            Some(rest) if !rest.is_empty() && k != "PPS_CONFIG_FILE" => {
                let text = std::fs::read_to_string(&v).map_err(|e| {
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        format!("cannot read the secret file {v}: {e}"),
                    )
                    .permanent()
                    .with("env", k.clone())
                })?;
                let text = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text)
                    .to_owned();
                from_files.push((format!("PPS_{rest}"), text, k));
            }
            _ => out.push((k, v)),
        }
    }
    for (name, value, var) in from_files {
        if out.iter().any(|(k, _)| *k == name) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("both {name} and {var} are set; keep one"),
            )
            .permanent()
            .with("env", var));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Sets keys of `table` from `PPS_{section}_{NAME}_{KEY}` variables; returns which keys
/// came from which variable.
fn apply_env(
    table: &mut toml::Table,
    section: &str,
    name: &str,
    env: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut from = BTreeMap::new();
    let prefix = format!("PPS_{section}_{}_", env_name(name));
    for (k, v) in env {
        let Some(key) = k.strip_prefix(&prefix) else {
            continue;
        };
        // An empty value is no value: Unraid passes every field of its template,
        // blank ones as `-e NAME=''`, and a blank field must not hide the file's key.
        if key.is_empty() || v.is_empty() {
            continue;
        }
        let key = key.to_lowercase();
        let value = if STRING_KEYS.contains(&key.as_str()) {
            toml::Value::String(v.clone())
        } else {
            v.parse::<i64>()
                .map(toml::Value::Integer)
                .or_else(|_| v.parse::<f64>().map(toml::Value::Float))
                .or_else(|_| v.parse::<bool>().map(toml::Value::Boolean))
                .unwrap_or_else(|_| toml::Value::String(v.clone()))
        };
        from.insert(key.clone(), k.clone());
        table.insert(key, value);
    }
    from
}

/// The commented file `pps init` writes. It parses as is (a test checks), watching a
/// local folder and printing scans, so `pps check` and `pps once` work right after.
pub const TEMPLATE: &str = r#"# pps.toml: what to watch, where to send scans. Every key is documented in the README.
# Secrets can come from the environment instead of this file:
#   PPS_SOURCES_<NAME>_<KEY>, PPS_TARGETS_<NAME>_<KEY> and PPS_NOTIFIERS_<NAME>_<KEY>,
#   e.g. PPS_TARGETS_PLEX_TOKEN.

[store]
# The state file (SQLite), relative to this file.
path = "pps.db"

# The activity history (`pps history`): changes found and what each target was sent.
# [history]
# max_age = "30d"                # older lines are dropped
# max_rows = 50000               # at most this many lines (about 12 MB)

# A folder on this machine (a cloud drive mount, a NAS share).
[sources.nas]
kind = "local"
# concurrency = 32               # listings in flight at once

# A CloudDrive2 server, listed over its gRPC API (no mount needed).
# [sources.cd2]
# kind = "clouddrive2"
# url = "http://127.0.0.1:19798"
# api_token = "..."              # or: username = "..." and password = "..."
# max_queries_per_second = 0.9   # 115 bans accounts that call too often; shared by
#                                # every pps process of this store (run, walk, ls, the UI)
# max_calls_per_minute = 200     # ceilings over every call (115's practice: 3/s, 200 a
# max_calls_per_hour = 12000     # minute, 12,000 an hour); none by default
# max_calls_per_day = 40000
# throttle_pause = "60s"         # every process pauses this long when the cloud says
#                                # calls come too fast (at least 60s; "0s": no pause)
# concurrency = 2
# push = true                    # use cd2's change events as hints

# An OpenList (or AList v3) server, listed over its HTTP API. The same budget keys as
# cd2 apply (max_queries_per_second, max_calls_per_*, throttle_pause, concurrency).
# [sources.ol]
# kind = "openlist"
# url = "http://127.0.0.1:5244"
# token = "..."                  # the admin's token, or: username = "..." and password = "..."
# max_queries_per_second = 0.9
# refresh = true                 # a `pps scan` bypasses OpenList's cache (needs write permission)

# rclone's remote-control API (`rclone rcd`, or `rclone mount --rc`); same budget keys.
# [sources.rc]
# kind = "rclone"
# url = "http://127.0.0.1:5572"
# remote = "115dav:"             # the rclone remote to list; /TV is 115dav:TV
# username = "..."               # --rc-user and --rc-pass
# password = "..."
# vfs_refresh = false            # refresh a changed folder in the rclone mount too

# Print each scan as one JSON line (try pps before wiring a media server).
[targets.print]
kind = "stdout"

# [targets.plex]
# kind = "plex"
# url = "http://127.0.0.1:32400"
# token = "..."                  # the server owner's X-Plex-Token
# path_mapping = [{ from = "/115", to = "/mnt/cd2/115" }]
# pacing = "1s"                  # pause between two refresh requests

# [targets.emby]
# kind = "emby"                  # or "jellyfin"
# url = "http://127.0.0.1:8096"
# api_key = "..."
# path_mapping = [{ from = "/115", to = "/mnt/user/CloudDrive/115" }]
# scan_files = true              # false: send folders only
# confirm = true                 # check that the server indexed each scan (Plex, Emby, Jellyfin)
# confirm_deadline = "10m"       # still missing this long after the scan: stuck (Jellyfin: "20m")

# Notifications (README, "Notifications"): what reached the library, what needs you.
# [notifiers.tg]
# kind = "telegram"              # or "discord", "webhook", "apprise"
# bot_token = "..."              # or PPS_NOTIFIERS_TG_BOT_TOKEN
# chat_id = 123456789
# language = "zh"

# The web UI on [server] listen: off until a password hash is set (`pps passwd`).
# [ui]
# password_hash = "$argon2id$..."  # or PPS_UI_PASSWORD_HASH
# base_path = "/"                  # "/pps/" behind a reverse proxy at /pps/

# Health, metrics and triggers for `pps run` (cd2 webhooks, Sonarr/Radarr, manual).
# [server]
# listen = "127.0.0.1:8090"
# token = "..."                  # or PPS_SERVER_TOKEN; every trigger must present it
# arr_path_mapping = [{ from = "/tv", to = "/srv/media/TV" }]

[[watch]]
source = "nas"
path = "/srv/media"
interval = "10m"                 # base interval between listings of a folder
# max_interval = "24h"           # unchanged folders are listed less often, up to this
# active_max_interval = "1h"     # ...but a folder that changed in the last two weeks, up to this
# settle = "0s"                  # wait until a changed folder stays unchanged this long
# enabled = false                # keep the watch here but out of every pass
exclude = ["@eaDir", ".*", "*.part"]
# targets = ["print"]            # default: every target
"#;
