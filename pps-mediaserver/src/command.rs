//! The command target: runs a program with the scan paths as arguments.

use async_trait::async_trait;
use pps_core::{
    Capabilities, Error, ErrorKind, Library, Result, ScanRequest, ScanTarget, TargetInfo,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// The exit status a program uses to ask for a retry (`EX_TEMPFAIL` of sysexits.h).
pub const EXIT_TEMPORARY: i32 = 75;

/// How much of the end of stderr goes into an error.
const STDERR_TAIL_CHARS: usize = 500;

/// What to run for a scan. As read from a `[targets.NAME]` table of kind `command`
/// (every key but `kind`, `path_mapping` and `scan_files`), with the defaults of
/// [`CommandConfig::default`]; durations are text (`"60s"`).
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandConfig {
    /// The program: a path, or a bare name looked up in `PATH`. Run directly, never
    /// through a shell, so paths with `&`, `;` or spaces arrive intact.
    pub program: PathBuf,
    /// Fixed arguments, placed before the paths.
    pub args: Vec<String>,
    /// The longest one run may take; then the program is killed and the scan retried.
    #[serde(deserialize_with = "pps_core::duration::serde")]
    pub timeout: Duration,
    /// The most paths given to one run (at least 1).
    pub max_batch: usize,
    /// Environment variables starting with `PPS_` passed on to the program anyway.
    /// Every other `PPS_*` variable (the server token, API keys given through the
    /// environment) is removed from the program's environment.
    pub env: Vec<String>,
}

impl Default for CommandConfig {
    /// No program yet; no fixed arguments, a 60 s timeout, up to 50 paths per run.
    fn default() -> Self {
        CommandConfig {
            program: PathBuf::new(),
            args: Vec::new(),
            timeout: Duration::from_secs(60),
            max_batch: 50,
            env: Vec::new(),
        }
    }
}

impl CommandConfig {
    /// A config with no fixed arguments, a 60 s timeout and up to 50 paths per run.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        CommandConfig {
            program: program.into(),
            ..CommandConfig::default()
        }
    }

    /// Checks every value; a mistake is a `ConfigInvalid` error naming the key.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key: &'static str, why: &str| {
            Err(Error::new(ErrorKind::ConfigInvalid, why.to_owned())
                .permanent()
                .with("key", key))
        };
        if self.program.as_os_str().is_empty() {
            return invalid("program", "`program` is required");
        }
        if self.timeout.is_zero() {
            return invalid("timeout", "`timeout` must be above zero");
        }
        if self.max_batch == 0 {
            return invalid("max_batch", "`max_batch` must be at least 1");
        }
        Ok(())
    }
}

impl fmt::Debug for CommandConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fixed arguments may carry a token (`--token xyz`): only their number is shown.
        f.debug_struct("CommandConfig")
            .field("program", &self.program)
            .field("args", &format_args!("[{} hidden]", self.args.len()))
            .field("timeout", &self.timeout)
            .field("max_batch", &self.max_batch)
            .field("env", &self.env)
            .finish()
    }
}

/// A program as a scan target: `program args... path1 path2 ...`.
///
/// Folders only (a file change arrives as its folder), up to `max_batch` paths per run.
/// Exit status 0 accepts every path of the run; [`EXIT_TEMPORARY`] (75), death by a
/// signal, or the timeout make them retried later; any other status parks them, with
/// the tail of stderr in the reason. Standard output is ignored.
pub struct CommandTarget {
    config: CommandConfig,
}

impl fmt::Debug for CommandTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandTarget")
            .field("config", &self.config)
            .finish()
    }
}

impl CommandTarget {
    /// Checks the config. Runs nothing.
    ///
    /// An empty program, a zero timeout or a `max_batch` of 0 is a `ConfigInvalid` error
    /// naming the key.
    pub fn new(config: CommandConfig) -> Result<Self> {
        config.validate()?;
        Ok(CommandTarget { config })
    }

    fn program_shown(&self) -> String {
        self.config.program.display().to_string()
    }

    async fn run(&self, paths: &[&str]) -> Result<()> {
        let program = self.program_shown();
        let mut cmd = Command::new(&self.config.program);
        cmd.args(&self.config.args)
            .args(paths)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // A timed-out run is dropped; this makes the drop kill the program.
            .kill_on_drop(true);
        // pps's own secrets may sit in PPS_* variables: a script gets none of them but
        // those the user lists.
        for (k, _) in std::env::vars_os() {
            if let Some(name) = k.to_str()
                && name.starts_with("PPS_")
                && !self.config.env.iter().any(|e| e == name)
            {
                cmd.env_remove(&k);
            }
        }
        // Its own process group, so a timeout ends what the program started too (a
        // script's `sleep`), not just the program.
        #[cfg(unix)]
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::ConfigInvalid,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Unexpected,
            };
            Error::new(kind, format!("could not start the program: {e}"))
                .permanent()
                .with("key", "program")
                .with("program", program.clone())
        })?;
        tracing::debug!(%program, paths = paths.len(), "running scan command");
        let pid = child.id();
        let output = match tokio::time::timeout(self.config.timeout, child.wait_with_output()).await
        {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("waiting for the program failed: {e}"),
                )
                .temporary()
                .with("program", program));
            }
            Err(_) => {
                #[cfg(unix)]
                if let Some(pgid) = pid
                    .and_then(|p| i32::try_from(p).ok())
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ =
                        rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the program did not finish within {:?} and was killed",
                        self.config.timeout
                    ),
                )
                .temporary()
                .with("program", program));
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let tail = stderr_tail(&output.stderr);
        let (kind, temporary, what) = match output.status.code() {
            Some(EXIT_TEMPORARY) => (
                ErrorKind::Unavailable,
                true,
                format!("the program asked for a retry (exit status {EXIT_TEMPORARY})"),
            ),
            Some(code) => (
                ErrorKind::Rejected,
                false,
                format!("the program failed with exit status {code}"),
            ),
            // No code: killed by a signal, which says nothing about the paths.
            None => (
                ErrorKind::Unavailable,
                true,
                format!("the program was killed ({})", output.status),
            ),
        };
        let message = if tail.is_empty() {
            what
        } else {
            format!("{what}; stderr: {tail}")
        };
        let err = Error::new(kind, message).with("program", program);
        Err(if temporary {
            err.temporary()
        } else {
            err.permanent()
        })
    }
}

/// The last [`STDERR_TAIL_CHARS`] characters of stderr, trimmed, lines joined by ` | `.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let count = joined.chars().count();
    if count <= STDERR_TAIL_CHARS {
        joined
    } else {
        let tail: String = joined.chars().skip(count - STDERR_TAIL_CHARS).collect();
        format!("…{tail}")
    }
}

/// Whether `program` can be found: as given when it names a path, else in `PATH`.
fn program_exists(program: &Path) -> bool {
    if program.components().count() > 1 || program.is_absolute() {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

#[async_trait]
impl ScanTarget for CommandTarget {
    fn capabilities(&self) -> Capabilities {
        Capabilities::folders(self.config.max_batch)
    }

    async fn libraries(&self) -> Result<Vec<Library>> {
        Ok(Vec::new())
    }

    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(self.config.max_batch) {
            let paths: Vec<&str> = chunk.iter().map(|r| r.path.as_str()).collect();
            match self.run(&paths).await {
                Ok(()) => out.extend(chunk.iter().map(|_| Ok(()))),
                Err(e) => out.extend(pps_core::target::all_failed(chunk.len(), &e)),
            }
        }
        out
    }

    async fn check(&self) -> Result<TargetInfo> {
        if !program_exists(&self.config.program) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "the program was not found (give a path, or a name in PATH)",
            )
            .permanent()
            .with("key", "program")
            .with("program", self.program_shown()));
        }
        Ok(TargetInfo {
            server: format!("command {}", self.program_shown()),
            version: None,
            libraries: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_end() {
        assert_eq!(stderr_tail(b"  first\n\nsecond  \n"), "first | second");
        let long = format!("{}END", "x".repeat(2000));
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.ends_with("END") && tail.chars().count() == STDERR_TAIL_CHARS + 1);
        assert_eq!(stderr_tail(b""), "");
    }

    #[test]
    fn config_checks_and_hides_args() {
        let mut cfg = CommandConfig::new("notify");
        cfg.args = vec!["--token".into(), "tok-5555".into()];
        let debug = format!("{cfg:?}");
        assert!(
            debug.contains("notify") && !debug.contains("tok-5555"),
            "{debug}"
        );
        cfg.max_batch = 0;
        let err = CommandTarget::new(cfg).unwrap_err();
        assert_eq!(err.context_value("key"), Some("max_batch"));
        let err = CommandTarget::new(CommandConfig::new("")).unwrap_err();
        assert_eq!(err.context_value("key"), Some("program"));
    }

    #[test]
    fn programs_are_found_in_path() {
        assert!(program_exists(Path::new("sh")));
        assert!(program_exists(Path::new("/bin/sh")));
        assert!(!program_exists(Path::new("pps-no-such-program-xyz")));
    }
}
