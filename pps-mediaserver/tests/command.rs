//! The command target, driving `/bin/sh` scripts that record their arguments.

use crate::common::req;
use pps_core::{ErrorKind, ScanRequest, ScanTarget, Update};
use pps_mediaserver::{CommandConfig, CommandTarget};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A target running `sh -c script sh <fixed...> <paths...>`: the script sees the
/// fixed args and paths as `$@`.
fn sh(script: &str, fixed: &[&str], max_batch: usize) -> CommandTarget {
    let mut args = vec!["-c".to_owned(), script.to_owned(), "sh".to_owned()];
    args.extend(fixed.iter().map(|s| (*s).to_owned()));
    CommandTarget::new(CommandConfig {
        program: "/bin/sh".into(),
        args,
        timeout: Duration::from_secs(20),
        max_batch,
        env: Vec::new(),
    })
    .expect("config")
}

/// A script that appends each argument on its own line, then `--` after each run.
fn recording_script(log: &Path) -> String {
    format!(
        "printf '%s\\n' \"$@\" >> '{}'; echo -- >> '{}'",
        log.display(),
        log.display()
    )
}

fn runs(log: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("--\n")
        .filter(|run| !run.is_empty())
        .map(|run| run.lines().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn paths_arrive_intact_after_the_fixed_args() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("args");
    let target = sh(&recording_script(&log), &["--section", "tv"], 2);
    let paths = [
        "/tv/Show & Co; rm -rf ~",
        "/tv/$HOME `id` 'q' \"d\"",
        "/tv/电影 100%+",
    ];
    let requests: Vec<_> = paths
        .iter()
        .map(|p| req(p, Update::Modified, true))
        .collect();
    let results = target.scan(&requests).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        runs(&log),
        vec![
            vec!["--section", "tv", paths[0], paths[1]],
            vec!["--section", "tv", paths[2]],
        ],
        "no shell expansion, fixed args first, max_batch paths per run"
    );
}

#[tokio::test]
async fn a_failing_program_is_permanent_with_its_stderr_tail() {
    let target = sh(
        "echo starting >&2; echo 'no such library: tv' >&2; exit 3",
        &[],
        5,
    );
    let results = target
        .scan(&[
            req("/a", Update::Modified, true),
            req("/b", Update::Created, true),
        ])
        .await;
    assert_eq!(results.len(), 2);
    for r in &results {
        let err = r.as_ref().expect_err("exit 3");
        assert_eq!(err.kind(), ErrorKind::Rejected);
        assert!(!err.is_temporary());
        assert!(err.message().contains("exit status 3"), "{err}");
        assert!(
            err.message()
                .ends_with("stderr: starting | no such library: tv"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn exit_75_asks_for_a_retry() {
    let err = sh("exit 75", &[], 1)
        .scan(&[req("/a", Update::Modified, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_program_past_its_timeout_is_killed_and_retried() {
    // Paused time: the runtime is idle while the program sleeps, so the clock jumps to
    // the timeout at once; no test waits on the wall clock.
    let target = CommandTarget::new(CommandConfig {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "sleep 30".into()],
        timeout: Duration::from_secs(5),
        max_batch: 1,
        env: Vec::new(),
    })
    .expect("config");
    let started = std::time::Instant::now();
    let err = target
        .scan(&[req("/a", Update::Modified, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary());
    assert!(err.message().contains("killed"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the program"
    );
}

#[tokio::test]
async fn a_missing_program_is_a_config_error() {
    let target = CommandTarget::new(CommandConfig::new("/nonexistent/pps-notify")).expect("config");
    let err = target
        .scan(&[req("/a", Update::Modified, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert_eq!(err.context_value("key"), Some("program"));
    let err = target.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    let info = sh("true", &[], 1).check().await.expect("check");
    assert_eq!(info.server, "command /bin/sh");
    assert!(info.libraries.is_empty());
}

#[tokio::test]
async fn conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("args");
    let target = sh(&recording_script(&log), &[], 3);
    let requests = [
        "/m/Film & Co #1 (2020)",
        "/m/电影 🎬 100%+",
        "/m/a",
        "/m/b",
        "/m/c",
    ]
    .map(|p| req(p, Update::Modified, true))
    .to_vec();
    let received = || -> Vec<ScanRequest> {
        runs(&log)
            .into_iter()
            .flatten()
            .map(|p| req(&p, Update::Modified, true))
            .collect()
    };
    pps_core::testing::target_conformance(&target, requests, &received).await;
    assert_eq!(runs(&log).len(), 2, "5 paths in runs of 3");
}

#[tokio::test]
async fn a_timeout_ends_what_the_program_started_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("pid");
    // The script starts a long sleep and waits for it: killing only the shell would
    // leave the sleep running.
    let script = format!("sleep 300 & echo $! > '{}'; wait", pidfile.display());
    let target = CommandTarget::new(CommandConfig {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script, "sh".into()],
        timeout: Duration::from_millis(500),
        max_batch: 1,
        env: Vec::new(),
    })
    .expect("config");
    let r = target.scan(&[req("/tv/x", Update::Modified, true)]).await;
    let err = r[0].as_ref().expect_err("timed out");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let pid = std::fs::read_to_string(&pidfile).expect("the script ran");
    let pid = pid.trim();
    // The group was sent SIGKILL; give the kernel a moment to reap it.
    let mut alive = true;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its parent: either way it runs no more.
        if stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z") {
            alive = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !alive,
        "the sleep {pid} started by the script is still running"
    );
}

#[tokio::test]
async fn command_failures_are_what_the_trait_promises() {
    use pps_core::ScanTarget;
    use pps_core::testing::Answer;
    pps_core::testing::target_outcome_conformance(
        |answer| async move {
            // Exit 75 asks for a retry; any other failure is permanent; a command has
            // no libraries, so "no library" does not apply.
            let script = match answer {
                Answer::Temporary => "exit 75",
                Answer::Refused => "echo 'token refused' >&2; exit 3",
                Answer::NoLibrary => return None,
            };
            Some(Arc::new(sh(script, &[], 1)) as Arc<dyn ScanTarget>)
        },
        req("/m/Film", Update::Modified, true),
    )
    .await;
}
