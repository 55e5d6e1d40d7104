//! What installing pps needs from the binary: completions and man pages of every
//! subcommand, a container's first start, secrets from files, systemd's readiness.

use std::process::{Command, Stdio};

fn pps() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
    c.env_remove("PPS_CONFIG").env_remove("PPS_LOG");
    c
}

const SUBCOMMANDS: &[&str] = &[
    "init",
    "check",
    "index",
    "once",
    "run",
    "ls",
    "scan",
    "status",
    "history",
    "passwd",
    "forget",
    "retry",
    "drop",
    "walk",
    "health",
    "completions",
    "man",
];

#[test]
fn completions_and_man_pages_list_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = pps().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let out = pps().arg("man").output().unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH pps"),
        "{page}"
    );
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "pps.1 lacks {sub}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = pps()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    for sub in SUBCOMMANDS {
        let page = std::fs::read_to_string(dir.path().join(format!("pps-{sub}.1"))).unwrap();
        assert!(page.contains(&format!("pps-{sub}")), "{sub}");
    }
}

#[test]
fn first_start_writes_the_template_and_exits_asking_for_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pps.toml");
    let out = pps()
        .args(["run", "--init-if-missing", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("edit it"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, pps::config::TEMPLATE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_secret_file_is_used_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "tok-FROM-FILE-42\n").unwrap();
    std::fs::write(dir.path().join("pps.toml"), pps::config::TEMPLATE).unwrap();
    // The token is read from the file: with both set the variable is named, not the value.
    let out = pps()
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("pps.toml"))
        .env("PPS_SERVER_TOKEN_FILE", &secret)
        .env("PPS_SERVER_TOKEN", "other")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PPS_SERVER_TOKEN_FILE"), "{err}");
    assert!(!err.contains("tok-FROM-FILE-42"), "{err}");
    let env = pps::config::expand_file_vars(vec![(
        "PPS_TARGETS_PLEX_TOKEN_FILE".into(),
        secret.display().to_string(),
    )])
    .unwrap();
    assert_eq!(
        env,
        vec![("PPS_TARGETS_PLEX_TOKEN".into(), "tok-FROM-FILE-42".into())]
    );
    let missing = pps::config::expand_file_vars(vec![(
        "PPS_TARGETS_PLEX_TOKEN_FILE".into(),
        "/nonexistent/secret".into(),
    )])
    .unwrap_err()
    .to_string();
    assert!(missing.contains("/nonexistent/secret"), "{missing}");
}

#[cfg(target_os = "linux")]
#[test]
fn run_tells_systemd_it_is_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut child = pps()
        .args(["run", "-q", "--watch"])
        .arg(&media)
        .arg("--store")
        .arg(dir.path().join("pps.db"))
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    rustix_kill(child.id());
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(child.wait().unwrap().success());
}

#[cfg(target_os = "linux")]
fn rustix_kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Log lines carry local time from `TZ` with its offset, as a container's `TZ` asks (a
/// POSIX rule, so the test needs no tzdata on the machine).
#[test]
fn logs_are_in_the_local_time_of_tz() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let stamp = |tz: &str| {
        let out = pps()
            .args(["once", "--watch"])
            .arg(&media)
            .arg("--store")
            .arg(dir.path().join("pps.db"))
            .env("TZ", tz)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err.lines()
            .next()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_owned()
    };
    let east = stamp("XYZ-8");
    assert!(east.ends_with("+08:00"), "{east}");
    let utc = stamp("UTC0");
    assert!(utc.ends_with("+00:00"), "{utc}");
}
