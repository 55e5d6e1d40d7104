//! `pps.toml`: parsing, environment overrides and validation.
//!
//! Every mistake is an error of kind [`ConfigInvalid`](ErrorKind::ConfigInvalid) whose
//! context names the file, the line and the key. Secrets are held as [`Secret`] and can
//! come from the environment instead of the file: `PPS_SOURCES_<NAME>_<KEY>` and
//! `PPS_TARGETS_<NAME>_<KEY>` (upper case, `-` as `_`), e.g. `PPS_TARGETS_PLEX_TOKEN`.

use crate::duration;
use pps_core::mapping::{MappingRule, PathMapping};
use pps_core::path::Excludes;
use pps_core::{Error, ErrorKind, Result, Secret};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
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

/// One `[sources.NAME]`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// `kind = "clouddrive2"`.
    CloudDrive2(CloudDriveSettings),
    /// `kind = "local"`.
    Local {
        /// Listings in flight at once.
        concurrency: usize,
    },
}

impl SourceConfig {
    /// Listings in flight at once for watches of this source.
    pub fn concurrency(&self) -> usize {
        match self {
            SourceConfig::CloudDrive2(c) => c.concurrency,
            SourceConfig::Local { concurrency } => *concurrency,
        }
    }
}

/// `[sources.NAME]` with `kind = "clouddrive2"`.
#[derive(Clone)]
pub struct CloudDriveSettings {
    /// `http://HOST:19798` or `https://…`.
    pub url: String,
    /// An API token made in cd2's web UI.
    pub api_token: Option<Secret>,
    /// Or a cd2 account.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<Secret>,
    /// The source's call budget.
    pub max_queries_per_second: f64,
    /// A daily ceiling on calls, which spare listings respect (due ones are never held
    /// back by it). `None`: only the rate limits them.
    pub max_calls_per_day: Option<u64>,
    /// Calls allowed at once after a quiet spell.
    pub burst: u32,
    /// Listings in flight at once.
    pub concurrency: usize,
    /// Use cd2's push events as hints.
    pub push: bool,
    /// Longest time for one call.
    pub timeout: Duration,
    /// Retries of a throttled or transient failure.
    pub retries: u32,
    /// First wait after a transient failure (doubles per retry).
    pub backoff: Duration,
    /// First wait after a throttled answer (doubles per retry).
    pub throttle_backoff: Duration,
}

impl fmt::Debug for CloudDriveSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudDriveSettings")
            .field("url", &self.url)
            .field("api_token", &self.api_token)
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("password", &self.password)
            .field("max_queries_per_second", &self.max_queries_per_second)
            .field("max_calls_per_day", &self.max_calls_per_day)
            .field("burst", &self.burst)
            .field("concurrency", &self.concurrency)
            .field("push", &self.push)
            .finish()
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
    /// The line of the table, for messages.
    pub line: usize,
}

/// The kind-specific part of a target.
#[derive(Debug, Clone)]
pub enum TargetKind {
    /// Plex Media Server.
    Plex {
        /// Server URL.
        url: String,
        /// `X-Plex-Token` (the owner's).
        token: Secret,
        /// Pause between two refresh requests.
        pacing: Duration,
        /// Request timeout.
        timeout: Duration,
    },
    /// Emby.
    Emby {
        /// Server URL.
        url: String,
        /// API key.
        api_key: Secret,
        /// Request timeout.
        timeout: Duration,
    },
    /// Jellyfin.
    Jellyfin {
        /// Server URL.
        url: String,
        /// API key.
        api_key: Secret,
        /// Request timeout.
        timeout: Duration,
    },
    /// A program run with the scan paths as arguments.
    Command {
        /// The program (a path, or a name looked up in `PATH`).
        program: String,
        /// Fixed arguments before the paths.
        args: Vec<String>,
        /// Longest run.
        timeout: Duration,
        /// Paths per run.
        max_batch: usize,
        /// `PPS_*` variables passed on to the program (every other one is removed).
        env: Vec<String>,
    },
    /// JSON lines on standard output.
    Stdout,
}

impl TargetKind {
    /// `plex`, `emby`, `jellyfin`, `command` or `stdout`.
    pub fn name(&self) -> &'static str {
        match self {
            TargetKind::Plex { .. } => "plex",
            TargetKind::Emby { .. } => "emby",
            TargetKind::Jellyfin { .. } => "jellyfin",
            TargetKind::Command { .. } => "command",
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
    /// The line of the `[[watch]]`, for messages.
    pub line: usize,
}

impl WatchConfig {
    /// `source:path`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.source, self.path)
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloudDrive {
    #[allow(dead_code)]
    kind: String,
    url: String,
    api_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    max_queries_per_second: Option<f64>,
    max_calls_per_day: Option<u64>,
    burst: Option<u32>,
    concurrency: Option<usize>,
    push: Option<bool>,
    timeout: Option<String>,
    retries: Option<u32>,
    backoff: Option<String>,
    throttle_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    #[allow(dead_code)]
    kind: String,
    concurrency: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: String,
    url: Option<String>,
    token: Option<String>,
    api_key: Option<String>,
    program: Option<String>,
    args: Option<Vec<String>>,
    env: Option<Vec<String>>,
    pacing: Option<String>,
    timeout: Option<String>,
    max_batch: Option<usize>,
    #[serde(default)]
    path_mapping: Vec<MappingRule>,
    scan_files: Option<bool>,
}

/// Listings in flight for a local source. Many queued listings let the source's few
/// blocking workers drain them back to back instead of paying a thread hand-off per
/// folder (see BENCHMARKS.md, `local_handoff`).
pub const LOCAL_CONCURRENCY: usize = 32;

/// `[server] max_connections` by default: plenty for webhooks and a few browsers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Keys that hold secrets: their values are never shown in an error.
const SECRET_KEYS: &[&str] = &["api_token", "password", "token", "api_key"];

/// Keys whose environment value is always a string (never parsed as a number).
const STRING_KEYS: &[&str] = &[
    "url",
    "api_token",
    "username",
    "password",
    "token",
    "api_key",
    "program",
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
                if msg.starts_with("unknown field") || msg.starts_with("missing field") {
                    msg.split('`').nth(1).unwrap_or("").to_owned()
                } else {
                    String::new()
                }
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

    fn duration_in(
        &self,
        v: &Option<String>,
        table_at: usize,
        key: &str,
        default: Duration,
    ) -> Result<Duration> {
        match v {
            None => Ok(default),
            Some(s) => duration::parse(s).map_err(|m| self.key_err(table_at, key, m)),
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
        Self::parse(&text, Some(file), &std::env::vars().collect::<Vec<_>>())
    }

    /// Parses and validates config text. `env` holds `(name, value)` pairs for the
    /// `PPS_SOURCES_*` / `PPS_TARGETS_*` overrides.
    pub fn parse(text: &str, file: Option<&Path>, env: &[(String, String)]) -> Result<Config> {
        let cx = Ctx { text, file };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            let key = offset.map(|o| cx.key_at(o)).unwrap_or_default();
            cx.err(offset, &key, e.message().trim().to_owned())
        })?;
        let base = base_dir(file);
        let store = raw
            .store
            .and_then(|s| s.path)
            .map_or_else(|| base.join("pps.db"), |p| base.join(p));

        let mut sources = BTreeMap::new();
        for (name, table) in raw.sources {
            let at = table.span().start;
            let mut table = table.into_inner();
            let from_env = apply_env(&mut table, "SOURCES", &name, env);
            let key = |k: &str| format!("sources.{name}.{k}");
            let kind = kind_of(&table, &cx, at, &key("kind"))?;
            let source = match kind.as_str() {
                "clouddrive2" => {
                    let r: RawCloudDrive =
                        cx.typed(table, at, &format!("sources.{name}"), &from_env)?;
                    if r.api_token.is_none()
                        && (r.username.is_none() || r.password.is_none())
                        && (r.username.is_some() || r.password.is_some())
                    {
                        return Err(cx.key_err(
                            at,
                            &key("password"),
                            "give both `username` and `password`, or an `api_token`",
                        ));
                    }
                    if r.api_token.is_some() && r.username.is_some() {
                        return Err(cx.key_err(
                            at,
                            &key("api_token"),
                            "give either `api_token` or `username`/`password`, not both",
                        ));
                    }
                    let qps = r.max_queries_per_second.unwrap_or(0.9);
                    if !(qps > 0.0 && qps <= 1000.0) {
                        return Err(cx.key_err(
                            at,
                            &key("max_queries_per_second"),
                            format!("must be above 0 and at most 1000, not {qps}"),
                        ));
                    }
                    let concurrency = r.concurrency.unwrap_or(2);
                    if concurrency == 0 {
                        return Err(cx.key_err(at, &key("concurrency"), "must be at least 1"));
                    }
                    check_url(&r.url).map_err(|m| cx.key_err(at, &key("url"), m))?;
                    SourceConfig::CloudDrive2(CloudDriveSettings {
                        url: r.url,
                        api_token: r.api_token.map(Secret::from),
                        username: r.username,
                        password: r.password.map(Secret::from),
                        max_queries_per_second: qps,
                        max_calls_per_day: r.max_calls_per_day,
                        burst: r.burst.unwrap_or(2).max(1),
                        concurrency,
                        push: r.push.unwrap_or(true),
                        timeout: cx.duration_in(
                            &r.timeout,
                            at,
                            &key("timeout"),
                            Duration::from_secs(60),
                        )?,
                        retries: r.retries.unwrap_or(4),
                        backoff: cx.duration_in(
                            &r.backoff,
                            at,
                            &key("backoff"),
                            Duration::from_millis(500),
                        )?,
                        throttle_backoff: cx.duration_in(
                            &r.throttle_backoff,
                            at,
                            &key("throttle_backoff"),
                            Duration::from_secs(5),
                        )?,
                    })
                }
                "local" => {
                    let r: RawLocal = cx.typed(table, at, &format!("sources.{name}"), &from_env)?;
                    let concurrency = r.concurrency.unwrap_or(LOCAL_CONCURRENCY);
                    if concurrency == 0 {
                        return Err(cx.key_err(at, &key("concurrency"), "must be at least 1"));
                    }
                    SourceConfig::Local { concurrency }
                }
                other => {
                    return Err(cx.key_err(
                        at,
                        &key("kind"),
                        format!("unknown source kind `{other}`; use \"clouddrive2\" or \"local\""),
                    ));
                }
            };
            sources.insert(name, source);
        }

        let mut targets = BTreeMap::new();
        let mut target_at = BTreeMap::new();
        for (name, table) in raw.targets {
            let at = table.span().start;
            target_at.insert(name.clone(), at);
            let mut table = table.into_inner();
            let from_env = apply_env(&mut table, "TARGETS", &name, env);
            let key = |k: &str| format!("targets.{name}.{k}");
            kind_of(&table, &cx, at, &key("kind"))?;
            let r: RawTarget = cx.typed(table, at, &format!("targets.{name}"), &from_env)?;
            let need = |v: Option<String>, k: &str| -> Result<String> {
                v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                    cx.key_err(
                        at,
                        &key(k),
                        format!(
                            "`{k}` is required for a {} target (or set PPS_TARGETS_{}_{})",
                            r.kind,
                            env_name(&name),
                            k.to_uppercase()
                        ),
                    )
                })
            };
            let forbid = |present: bool, k: &str| -> Result<()> {
                if present {
                    Err(cx.key_err(
                        at,
                        &key(k),
                        format!("`{k}` does not apply to a {} target", r.kind),
                    ))
                } else {
                    Ok(())
                }
            };
            let timeout =
                cx.duration_in(&r.timeout, at, &key("timeout"), Duration::from_secs(30))?;
            let kind = match r.kind.as_str() {
                "plex" => {
                    forbid(r.api_key.is_some(), "api_key")?;
                    forbid(r.program.is_some() || r.args.is_some(), "program")?;
                    forbid(r.env.is_some(), "env")?;
                    if r.scan_files == Some(true) {
                        return Err(cx.key_err(
                            at,
                            &key("scan_files"),
                            "Plex scans folders only; remove `scan_files` or set it to false",
                        ));
                    }
                    let url = need(r.url.clone(), "url")?;
                    check_url(&url).map_err(|m| cx.key_err(at, &key("url"), m))?;
                    TargetKind::Plex {
                        url,
                        token: Secret::new(need(r.token.clone(), "token")?),
                        pacing: cx.duration_in(
                            &r.pacing,
                            at,
                            &key("pacing"),
                            Duration::from_secs(1),
                        )?,
                        timeout,
                    }
                }
                "emby" | "jellyfin" => {
                    forbid(r.token.is_some(), "token")?;
                    forbid(r.pacing.is_some(), "pacing")?;
                    forbid(r.program.is_some() || r.args.is_some(), "program")?;
                    forbid(r.env.is_some(), "env")?;
                    let url = need(r.url.clone(), "url")?;
                    check_url(&url).map_err(|m| cx.key_err(at, &key("url"), m))?;
                    let api_key = Secret::new(need(r.api_key.clone(), "api_key")?);
                    if r.kind == "emby" {
                        TargetKind::Emby {
                            url,
                            api_key,
                            timeout,
                        }
                    } else {
                        TargetKind::Jellyfin {
                            url,
                            api_key,
                            timeout,
                        }
                    }
                }
                "command" => {
                    forbid(r.url.is_some(), "url")?;
                    forbid(r.token.is_some() || r.api_key.is_some(), "token")?;
                    TargetKind::Command {
                        program: need(r.program.clone(), "program")?,
                        args: r.args.clone().unwrap_or_default(),
                        timeout: cx.duration_in(
                            &r.timeout,
                            at,
                            &key("timeout"),
                            Duration::from_secs(60),
                        )?,
                        max_batch: r.max_batch.unwrap_or(50).max(1),
                        env: r.env.clone().unwrap_or_default(),
                    }
                }
                "stdout" => {
                    forbid(r.url.is_some(), "url")?;
                    forbid(r.token.is_some() || r.api_key.is_some(), "token")?;
                    TargetKind::Stdout
                }
                other => {
                    return Err(cx.key_err(at, &key("kind"), format!("unknown target kind `{other}`; use plex, emby, jellyfin, command or stdout")));
                }
            };
            let mapping = PathMapping::new(r.path_mapping.clone()).map_err(|e| {
                cx.key_err(
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
            let scan_files = r.scan_files.unwrap_or(!matches!(
                kind,
                TargetKind::Plex { .. } | TargetKind::Command { .. }
            ));
            targets.insert(
                name,
                TargetConfig {
                    kind,
                    mapping,
                    rules: r.path_mapping,
                    scan_files,
                    line: cx.line(at),
                },
            );
        }

        let mut watches = Vec::new();
        for (i, w) in raw.watch.into_iter().enumerate() {
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
            let path = pps_core::path::normalize(w.path.get_ref()).map_err(|e| {
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
                // A rule below the watched root maps part of it, which is fine (the rest
                // is parked with its reason); a mapping that covers none of it is a
                // mistake worth stopping for.
                let partly = tc.rules.iter().any(|r| {
                    pps_core::path::normalize(&r.from)
                        .is_ok_and(|f| pps_core::path::is_at_or_under(&f, &path))
                });
                if !tc.mapping.is_empty() && tc.mapping.map(&path).is_none() && !partly {
                    let t_at = target_at.get(t).copied().unwrap_or(at);
                    return Err(cx.key_err(t_at, &format!("targets.{t}.path_mapping"), format!("maps nothing of watch `{source}:{path}` (line {}): no `from` covers that path, so every scan would be parked; add a rule or leave this target out of the watch's `targets`", cx.line(at))));
                }
            }
            watches.push(WatchConfig {
                source,
                path,
                interval,
                max_interval,
                active_max_interval,
                settle,
                exclude,
                targets: names,
                line: cx.line(at),
            });
        }
        let server = match raw.server {
            None => ServerConfig {
                max_body_bytes: 1 << 20,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                ..ServerConfig::default()
            },
            Some(table) => {
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
                        cx.key_err(
                            at,
                            "server.listen",
                            format!(
                                "`{l}` is not an address; write e.g. 127.0.0.1:8090 or [::]:8090"
                            ),
                        )
                    })?),
                };
                if r.token
                    .as_ref()
                    .is_some_and(|t| !t.trim().is_empty() && t.trim() != t)
                {
                    // A token a client sends trimmed would never match; say so at start
                    // instead of refusing every trigger later.
                    return Err(cx.key_err(
                        at,
                        "server.token",
                        "`token` has spaces or line breaks before or after it; remove them",
                    ));
                }
                let token = r.token.filter(|t| !t.trim().is_empty()).map(Secret::new);
                if listen.is_some() && token.is_none() {
                    return Err(cx.key_err(at, "server.token", "`token` is required when `listen` is set (or set PPS_SERVER_TOKEN): every trigger must present it"));
                }
                let mapping = |rules: Vec<MappingRule>, k: &str| {
                    PathMapping::new(rules)
                        .map_err(|e| cx.key_err(at, &format!("server.{k}"), e.message().to_owned()))
                };
                ServerConfig {
                    listen,
                    token,
                    max_body_bytes: r.max_body_bytes.unwrap_or(1 << 20).max(1024),
                    max_connections: r.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
                    public_metrics: r.public_metrics.unwrap_or(false),
                    arr_mapping: mapping(r.arr_path_mapping, "arr_path_mapping")?,
                    clouddrive2_mapping: mapping(
                        r.clouddrive2_path_mapping,
                        "clouddrive2_path_mapping",
                    )?,
                    line: cx.line(at),
                }
            }
        };
        Ok(Config {
            file: file.map(Path::to_path_buf),
            store,
            sources,
            targets,
            watches,
            server,
        })
    }
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

fn kind_of(table: &toml::Table, cx: &Ctx<'_>, at: usize, key: &str) -> Result<String> {
    match table.get("kind") {
        Some(toml::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(cx.key_err(at, key, "`kind` must be a string")),
        None => Err(cx.key_err(at, key, "`kind` is required")),
    }
}

fn check_url(url: &str) -> std::result::Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{}` is not a URL; write e.g. http://127.0.0.1:32400",
            redact_url(url)
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "the URL scheme must be http or https, not `{scheme}`"
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if let Err(e) = url::Url::parse(url) {
        return Err(format!("`{}` is not a valid URL: {e}", redact_url(url)));
    }
    if host.contains('@') {
        return Err("put credentials in `token`/`api_key`/`api_token`, not in the URL".to_owned());
    }
    if rest.contains('?') {
        return Err("the URL may not carry a query (credentials belong in `token`/`api_key`, never in a URL)".to_owned());
    }
    Ok(())
}

/// A URL as it may be shown: anything before an `@` in the authority is dropped.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => {
            if url.contains('@') {
                "***".to_owned()
            } else {
                url.to_owned()
            }
        }
    }
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
        if key.is_empty() {
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
#   PPS_SOURCES_<NAME>_<KEY> and PPS_TARGETS_<NAME>_<KEY>, e.g. PPS_TARGETS_PLEX_TOKEN.

[store]
# The state file (SQLite), relative to this file.
path = "pps.db"

# A folder on this machine (a cloud drive mount, a NAS share).
[sources.nas]
kind = "local"
# concurrency = 32               # listings in flight at once

# A CloudDrive2 server, listed over its gRPC API (no mount needed).
# [sources.cd2]
# kind = "clouddrive2"
# url = "http://127.0.0.1:19798"
# api_token = "..."              # or: username = "..." and password = "..."
# max_queries_per_second = 0.9   # 115 bans accounts that call too often
# max_calls_per_day = 40000      # cap what spare listings add to the due ones (default: the rate)
# concurrency = 2
# push = true                    # use cd2's change events as hints

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
exclude = ["@eaDir", ".*", "*.part"]
# targets = ["print"]            # default: every target
"#;
