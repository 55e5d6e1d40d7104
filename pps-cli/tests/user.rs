//! PUID, PGID and UMASK with the `pps` binary as a process. Dropping from root needs
//! root: those tests say so and return early when run as anyone else (CI runs as
//! root; `scripts/test-deploy` checks the same in the image).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pps() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
    c.env_remove("PPS_LOG")
        .env_remove("PUID")
        .env_remove("PGID")
        .env_remove("UMASK")
        .env_remove("PPS_STORE_PATH");
    c
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn bad_values_are_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    for (vars, says) in [
        (
            &[("PUID", "abc"), ("PGID", "100")][..],
            "PUID must be a numeric id",
        ),
        (&[("PUID", "99")][..], "PGID is not"),
        (&[("PUID", "99"), ("PGID", "0")][..], "PGID=0"),
        (&[("UMASK", "800")][..], "UMASK must be octal"),
    ] {
        let out = pps()
            .envs(vars.iter().copied())
            .arg("init")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {err}");
        assert!(err.contains(says), "{vars:?}: {err}");
        assert!(
            !config.exists(),
            "{vars:?}: nothing is written before the check"
        );
    }
}

#[test]
fn umask_applies_to_files_pps_creates() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let store = dir.path().join("pps.db");
    let out = pps()
        .env("UMASK", "077")
        .args(["once", "--watch"])
        .arg(&media)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the store under UMASK=077 is {mode:o}");
    let out = pps()
        .env("UMASK", "027")
        .args(["once", "--watch"])
        .arg(&media)
        .arg("--store")
        .arg(dir.path().join("open.db"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mode = std::fs::metadata(dir.path().join("open.db"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    // SQLite asks for 0644: the group keeps read, others get nothing.
    assert_eq!(mode, 0o640, "the store under UMASK=027 is {mode:o}");
}

#[test]
fn started_as_root_with_puid_pgid_it_drops_and_owns_its_folders() {
    if !is_root() {
        eprintln!("skipped: dropping from root needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    let data_dir = dir.path().join("data");
    let media = dir.path().join("media");
    for d in [&config_dir, &data_dir, &media, &config_dir.join("deeper")] {
        std::fs::create_dir(d).unwrap();
    }
    // Left by an earlier start as another user: given to PUID/PGID too.
    std::fs::write(data_dir.join("old.txt"), "x").unwrap();
    std::fs::write(config_dir.join("deeper/untouched"), "x").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = config_dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.nas]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n\
             [[watch]]\nsource = \"nas\"\npath = \"{}\"\ninterval = \"1s\"\n",
            media.display()
        ),
    )
    .unwrap();
    let mut child = pps()
        .env("PUID", "99")
        .env("PGID", "100")
        .env("PPS_STORE_PATH", data_dir.join("pps.db"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !data_dir.join("pps.db").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every thread of the process: real, effective, saved and file-system ids.
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        };
        threads.push((
            field("Uid:"),
            field("Gid:"),
            field("Groups:"),
            field("CapEff:"),
        ));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("running as PUID=99 PGID=100"), "{err}");
    assert!(threads.len() > 1, "the runtime's threads: {threads:?}");
    for t in &threads {
        assert_eq!(
            t,
            &(
                "99 99 99 99".to_owned(),
                "100 100 100 100".to_owned(),
                String::new(),
                "0000000000000000".to_owned()
            ),
            "{threads:?}"
        );
    }
    let owner = |p: &std::path::Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    for p in [
        config_dir.as_path(),
        &config,
        &data_dir,
        &data_dir.join("old.txt"),
        &data_dir.join("pps.db"),
        &config_dir.join("deeper"),
    ] {
        assert_eq!(owner(p), (99, 100), "{}", p.display());
    }
    assert_eq!(
        owner(&config_dir.join("deeper/untouched")),
        (0, 0),
        "only one level is given away"
    );
    assert_eq!(owner(&media), (0, 0), "the watched folder is only read");
}

#[test]
fn puid_of_another_user_without_root_is_ignored_with_a_warning() {
    // As root, setpriv (util-linux) starts it as another user, as `--user` does.
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=4343", "--regid=4343", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_pps"))
            .env_remove("PPS_LOG");
        c
    } else {
        pps()
    };
    let out = cmd
        .env("PUID", "4242")
        .env("PGID", "4242")
        .arg("status")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PUID=4242 PGID=4242 ignored"), "{err}");
}
