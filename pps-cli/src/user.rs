//! `PUID`, `PGID` and `UMASK`, as NAS users set them for every container (Unraid:
//! `PUID=99 PGID=100`).
//!
//! Started as root with `PUID` and `PGID` set, pps gives the config folder and the
//! store's folder (and what lies directly in them) to that user and group, then drops
//! to them for good: supplementary groups cleared, then real, effective and saved gid,
//! then uid. Nothing else has happened yet (no log set up, no file opened, no thread
//! started), so the image needs no shell, `su-exec` or `gosu`. Without `PUID`/`PGID`
//! pps runs as whoever started it, as before. `UMASK` (octal, e.g. `002`) is the file
//! creation mask in either case.
//!
//! An empty value counts as unset (a template field left blank); anything else that
//! is not a plain number is refused, naming the variable.

use pps_core::{Error, ErrorKind, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What the environment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// `(PUID, PGID)` when both are set.
    pub user: Option<(u32, u32)>,
    /// `UMASK`, at most `0o777`.
    pub umask: Option<u32>,
}

impl Settings {
    /// Reads `PUID`, `PGID` and `UMASK` through `get` (the process environment in
    /// [`Settings::from_env`]; a map in tests).
    pub fn parse(get: impl Fn(&str) -> Option<OsString>) -> Result<Settings> {
        let value = |name: &'static str| -> Result<Option<String>> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.into_string() {
                    Ok(s) if s.trim().is_empty() => Ok(None),
                    Ok(s) => Ok(Some(s.trim().to_owned())),
                    Err(_) => Err(invalid(name, format!("{name} is not valid UTF-8"))),
                },
            }
        };
        let puid = value("PUID")?.map(|v| id("PUID", &v)).transpose()?;
        let pgid = value("PGID")?.map(|v| id("PGID", &v)).transpose()?;
        let user = match (puid, pgid) {
            (Some(u), Some(g)) => Some((u, g)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "PGID",
                    "PUID is set but PGID is not; set both (Unraid: PUID=99 PGID=100)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "PUID",
                    "PGID is set but PUID is not; set both (Unraid: PUID=99 PGID=100)",
                ));
            }
        };
        let umask = value("UMASK")?.map(|v| mask(&v)).transpose()?;
        Ok(Settings { user, umask })
    }

    /// [`Settings::parse`] of the process environment.
    pub fn from_env() -> Result<Settings> {
        Settings::parse(|k| std::env::var_os(k))
    }
}

fn invalid(name: &'static str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, message).with("env", name)
}

/// A user or group id: decimal, not 0 (pps would stay root), not 4294967295 (-1,
/// "no change" to the kernel).
fn id(name: &'static str, v: &str) -> Result<u32> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            name,
            format!("{name} must be a numeric id such as 99 or 1000, not {v:?}"),
        ));
    }
    match v.parse::<u32>() {
        Ok(0) => Err(invalid(
            name,
            format!(
                "{name}=0 would keep pps running as root; pps needs no root rights: \
                 give it a user of its own (Unraid: PUID=99 PGID=100)"
            ),
        )),
        Ok(n) if n < u32::MAX => Ok(n),
        _ => Err(invalid(
            name,
            format!("{name}={v} is too large for an id (at most 4294967294)"),
        )),
    }
}

/// A umask: octal digits, at most `777` (`022`, `0002`, `000`).
fn mask(v: &str) -> Result<u32> {
    let digits = v.strip_prefix("0o").unwrap_or(v);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() && !digits.starts_with('+') => Ok(m),
        _ => Err(invalid(
            "UMASK",
            format!("UMASK must be octal digits such as 022 or 002 (at most 777), not {v:?}"),
        )),
    }
}

/// The folders pps writes in: the config file's (the first start writes the
/// template there) and the store's from `PPS_STORE_PATH` (otherwise the store lies
/// beside the config file by default).
pub fn folders(config: &Path, store: Option<OsString>) -> Vec<PathBuf> {
    let parent = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut dirs = vec![parent(config)];
    if let Some(s) = store.filter(|s| !s.is_empty()) {
        let d = parent(Path::new(&s));
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// What [`apply`] did, for one log line once logging is up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The uid and gid pps dropped to (it started as root).
    pub dropped_to: Option<(u32, u32)>,
    /// Files and folders whose owner was changed.
    pub chowned: usize,
    /// Started as root without `PUID`/`PGID`.
    pub root_without_puid: bool,
    /// Why `PUID`/`PGID` were not applied (started as another user than root).
    pub ignored: Option<String>,
}

/// Applies `settings` to this process: the umask, then (started as root) the folders'
/// owner and the drop to `PUID`/`PGID`.
///
/// Must run before any thread is started: on Linux the ids belong to a thread, and
/// threads started later inherit the caller's.
#[cfg(target_os = "linux")]
pub fn apply(settings: &Settings, dirs: &[PathBuf]) -> Result<Applied> {
    use rustix::process::{Gid, Uid};
    use rustix::process::{getegid, geteuid, getgid, getuid};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};

    if let Some(m) = settings.umask {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(m));
    }
    let mut applied = Applied::default();
    let Some((uid, gid)) = settings.user else {
        applied.root_without_puid = geteuid().is_root();
        return Ok(applied);
    };
    if !geteuid().is_root() {
        if getuid().as_raw() == uid && geteuid().as_raw() == uid && getegid().as_raw() == gid {
            // Already that user (`user: 99:100` and PUID/PGID alike): nothing to do.
            return Ok(applied);
        }
        // Started as a user already (`--user 1000:1000` with the image's default
        // PUID/PGID): that user it stays; a warning says PUID/PGID did nothing.
        applied.ignored = Some(format!(
            "PUID={uid} PGID={gid} ignored: pps was started as uid {} gid {}, not as root, \
             and runs as that; to let PUID/PGID choose the user, start it as root (no \
             `user:` / `--user`)",
            geteuid().as_raw(),
            getegid().as_raw()
        ));
        return Ok(applied);
    }
    for dir in dirs {
        applied.chowned += give(dir, uid, gid)?;
    }
    let fail = |what: &str, e: rustix::io::Errno| {
        invalid(
            "PUID",
            format!(
                "cannot switch to PUID={uid} PGID={gid} ({what}: {e}); the container needs \
                 the SETUID and SETGID capabilities (do not drop them with cap_drop: ALL)"
            ),
        )
    };
    set_thread_groups(&[]).map_err(|e| fail("setgroups", e))?;
    let (g, u) = (Gid::from_raw(gid), Uid::from_raw(uid));
    set_thread_res_gid(g, g, g).map_err(|e| fail("setresgid", e))?;
    set_thread_res_uid(u, u, u).map_err(|e| fail("setresuid", e))?;
    // Trust, but verify: there must be no way back.
    if getuid() != u || geteuid() != u || getgid() != g || getegid() != g {
        return Err(invalid(
            "PUID",
            format!("switched to PUID={uid} PGID={gid}, but the process still has other ids"),
        ));
    }
    applied.dropped_to = Some((uid, gid));
    Ok(applied)
}

/// Elsewhere there is no PUID/PGID convention: only refuse to ignore them silently.
#[cfg(not(target_os = "linux"))]
pub fn apply(settings: &Settings, _dirs: &[PathBuf]) -> Result<Applied> {
    if settings.user.is_some() || settings.umask.is_some() {
        return Err(invalid(
            "PUID",
            "PUID, PGID and UMASK are supported on Linux only",
        ));
    }
    Ok(Applied::default())
}

/// Gives `dir` and the entries directly in it to `uid:gid` (symbolic links
/// themselves, never what they point to); returns how many changed owner. The root
/// folder is never touched, nor anything below one level (a store's folder holds its
/// files, not a tree). A folder that does not exist is left for pps to report.
#[cfg(target_os = "linux")]
fn give(dir: &Path, uid: u32, gid: u32) -> Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = dir.canonicalize() else {
        return Ok(0);
    };
    if dir.parent().is_none() {
        return Ok(0);
    }
    let mut paths = vec![dir.clone()];
    let entries = std::fs::read_dir(&dir).map_err(|e| chown_error(&dir, e))?;
    for entry in entries {
        paths.push(entry.map_err(|e| chown_error(&dir, e))?.path());
    }
    let mut changed = 0;
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // gone meanwhile
        };
        if meta.uid() == uid && meta.gid() == gid {
            continue;
        }
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| chown_error(&p, e))?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(target_os = "linux")]
fn chown_error(p: &Path, e: std::io::Error) -> Error {
    invalid(
        "PUID",
        format!(
            "cannot give {} to PUID/PGID: {e} (the container needs the CHOWN capability, or \
             chown the folder on the host)",
            p.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        Settings::parse(|k| map.get(k).cloned())
    }

    fn err(vars: &[(&str, &str)]) -> String {
        parse(vars).expect_err("should be refused").to_string()
    }

    #[test]
    fn nothing_set_is_nothing_to_do() {
        assert_eq!(parse(&[]).unwrap(), Settings::default());
        assert_eq!(
            parse(&[("PUID", ""), ("PGID", " "), ("UMASK", "")]).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn unraid_values() {
        let s = parse(&[("PUID", "99"), ("PGID", "100"), ("UMASK", "022")]).unwrap();
        assert_eq!(s.user, Some((99, 100)));
        assert_eq!(s.umask, Some(0o022));
        assert_eq!(parse(&[("UMASK", "0002")]).unwrap().umask, Some(0o002));
        assert_eq!(parse(&[("UMASK", "000")]).unwrap().umask, Some(0));
        assert_eq!(parse(&[("UMASK", "777")]).unwrap().umask, Some(0o777));
        assert_eq!(
            parse(&[("PUID", " 1000 "), ("PGID", "1000")]).unwrap().user,
            Some((1000, 1000))
        );
    }

    #[test]
    fn bad_ids_name_the_variable() {
        let e = err(&[("PUID", "nobody"), ("PGID", "100")]);
        assert!(
            e.contains("PUID must be a numeric id") && e.contains("nobody"),
            "{e}"
        );
        let e = err(&[("PUID", "99"), ("PGID", "-1")]);
        assert!(e.contains("PGID must be a numeric id"), "{e}");
        let e = err(&[("PUID", "0"), ("PGID", "100")]);
        assert!(e.contains("PUID=0 would keep pps running as root"), "{e}");
        let e = err(&[("PUID", "99"), ("PGID", "0")]);
        assert!(e.contains("PGID=0"), "{e}");
        let e = err(&[("PUID", "4294967295"), ("PGID", "100")]);
        assert!(e.contains("PUID=4294967295 is too large"), "{e}");
        let e = err(&[("PUID", "99999999999"), ("PGID", "100")]);
        assert!(e.contains("too large"), "{e}");
        let e = err(&[("PUID", "+99"), ("PGID", "100")]);
        assert!(e.contains("PUID must be a numeric id"), "{e}");
    }

    #[test]
    fn one_without_the_other_is_refused() {
        let e = err(&[("PUID", "99")]);
        assert!(e.contains("PGID is not"), "{e}");
        let e = err(&[("PGID", "100")]);
        assert!(e.contains("PUID is not"), "{e}");
    }

    #[test]
    fn bad_umask_names_the_variable() {
        for v in ["8", "0999", "1000", "abc", "-022", "+22", "0o"] {
            let e = err(&[("UMASK", v)]);
            assert!(e.contains("UMASK must be octal"), "{v}: {e}");
            assert!(e.contains("env: UMASK") || e.contains("UMASK"), "{e}");
        }
    }

    #[test]
    fn errors_are_config_errors_with_the_variable_as_context() {
        let e = parse(&[("PUID", "x"), ("PGID", "1")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert!(e.to_string().contains("env"), "{e}");
    }

    #[test]
    fn folders_of_config_and_store() {
        assert_eq!(
            folders(Path::new("/config/pps.toml"), Some("/data/pps.db".into())),
            vec![PathBuf::from("/config"), PathBuf::from("/data")]
        );
        assert_eq!(
            folders(Path::new("/config/pps.toml"), Some("/config/pps.db".into())),
            vec![PathBuf::from("/config")]
        );
        assert_eq!(
            folders(Path::new("pps.toml"), None),
            vec![PathBuf::from(".")]
        );
        assert_eq!(
            folders(Path::new("/c/pps.toml"), Some("".into())),
            vec![PathBuf::from("/c")]
        );
    }

    /// Not root: no PUID is nothing to do, and a PUID other than ours is ignored with
    /// what to do instead.
    #[cfg(target_os = "linux")]
    #[test]
    fn not_root_cannot_switch() {
        if rustix::process::geteuid().is_root() {
            return; // as root, apply would really drop this test process's rights
        }
        assert_eq!(
            apply(&Settings::default(), &[]).unwrap(),
            Applied::default()
        );
        let me = rustix::process::geteuid().as_raw();
        let other = if me == 12345 { 12346 } else { 12345 };
        let a = apply(
            &Settings {
                user: Some((other, other)),
                umask: None,
            },
            &[],
        )
        .unwrap();
        assert_eq!(a.dropped_to, None);
        let why = a.ignored.expect("a reason");
        assert!(
            why.contains("not as root") && why.contains("ignored"),
            "{why}"
        );
        assert_eq!(rustix::process::geteuid().as_raw(), me);
    }
}
