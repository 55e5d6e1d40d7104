//! Scenario 3: a media server down for a while, then back. Plex first answers 503 to
//! everything, then is gone altogether (connection refused), then comes back on the same
//! port; Jellyfin stays up throughout. Jellyfin gets every scan while Plex is down, the
//! Plex scans wait in the outbox, and all arrive once Plex is back.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn config(dir: &Path, root: &Path, plex: &str, jellyfin: &str) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "state.db"

[sources.disk]
kind = "local"

[targets.plex]
kind = "plex"
url = "{plex}"
path_mapping = [{{ from = "{root}", to = "/mnt/media" }}]
pacing = "0s"
timeout = "2s"

[targets.jellyfin]
kind = "jellyfin"
url = "{jellyfin}"
path_mapping = [{{ from = "{root}", to = "/mnt/media" }}]
timeout = "2s"

[[watch]]
source = "disk"
path = "{root}"
interval = "1s"
max_interval = "1s"
"#,
            root = root.display()
        ),
    )
    .unwrap();
    config
}

fn batch(root: &Path, tag: &str, n: usize, made: &mut Vec<Made>) {
    for i in 0..n {
        let rel = format!("Show {}/S01/{tag} {i}.mkv", i % 5);
        std::fs::write(root.join(&rel), b"x").unwrap();
        made.push(Made {
            at: Instant::now(),
            path: format!("/mnt/media/{rel}"),
            what: "file created",
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_wait_for_a_server_that_is_down_and_never_delay_another() {
    let n = if soak() { 200 } else { 20 };
    let log = Transcript::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plex_addr = listener.local_addr().unwrap();
    let plex = Media::start_on(Kind::Plex, &["/mnt/media"], &log, Some(listener)).await;
    let jellyfin = Media::start(Kind::Jellyfin, &["/mnt/media"], &log).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    for s in 0..5 {
        std::fs::create_dir_all(root.join(format!("Show {s}/S01"))).unwrap();
        std::fs::write(root.join(format!("Show {s}/S01/e1.mkv")), b"x").unwrap();
    }
    let root = root.canonicalize().unwrap();
    let config = config(dir.path(), &root, &plex.url(), &jellyfin.url());
    let mut c = pps(Some(&config));
    c.arg("index");
    assert_eq!(run(c, Duration::from_secs(60), &log).code, Some(0));

    let errlog = dir.path().join("run.err");
    let mut child = pps(Some(&config))
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .unwrap();

    // Phase 1: Plex answers 503.
    plex.set_down(true);
    let mut made = Vec::new();
    batch(&root, "a", n, &mut made);
    let jelly_1 = poll(Duration::from_secs(60), || {
        uncovered(&made, &jellyfin.accepted()).is_empty()
    });
    let plex_tried = poll(Duration::from_secs(30), || plex.refused() > 0);
    assert!(
        jelly_1,
        "jellyfin did not get its scans while plex answered 503"
    );
    assert!(plex_tried, "plex was never tried");
    assert!(plex.accepted().is_empty());
    let waiting_1 = pending(pps(Some(&config)), &log);
    let plex_waiting = waiting_1.iter().find(|t| t.0 == "plex").unwrap().1;
    assert!(plex_waiting > 0, "{waiting_1:?}");
    let refused_503 = plex.refused();

    // Phase 2: Plex gone (connection refused).
    drop(plex);
    let phase_1 = made.len();
    batch(&root, "b", n, &mut made);
    let jelly_2 = poll(Duration::from_secs(60), || {
        uncovered(&made, &jellyfin.accepted()).is_empty()
    });
    assert!(
        jelly_2,
        "jellyfin did not get its scans while plex was gone"
    );
    let waiting_2 = pending(pps(Some(&config)), &log);

    // Phase 3: Plex back on the same port.
    let back = Instant::now();
    let listener = std::net::TcpListener::bind(plex_addr).unwrap();
    let plex = Media::start_on(Kind::Plex, &["/mnt/media"], &log, Some(listener)).await;
    let delivered = poll(Duration::from_secs(120), || {
        uncovered(&made, &plex.accepted()).is_empty()
    });
    let waited = back.elapsed();
    sigterm(&child);
    let status = wait_within(&mut child, Duration::from_secs(30), "pps run after SIGTERM");
    let err = std::fs::read_to_string(&errlog).unwrap();
    log.add(&err);
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked at"), "{err}");
    let left = pending(pps(Some(&config)), &log);
    let (pa, ja) = (plex.accepted(), jellyfin.accepted());
    let lines = log.assert_no_secrets();
    summary(
        "3 media server down",
        &format!(
            "plex answered 503 ({refused_503} requests refused) during {phase_1} changes, then refused connections during {} more, then came back on the same port; jellyfin up throughout",
            made.len() - phase_1
        ),
        &format!(
            "jellyfin got all {} changes while plex was down (plex outbox {plex_waiting} then {waiting_2:?}); plex got {} scans ({} distinct) after it came back (all within {:.1}s of its return), lost plex {}, jellyfin {}; redundant plex {}, jellyfin {}; outbox after {left:?}; {lines} lines free of secrets",
            made.len(),
            pa.len(),
            distinct(&pa),
            waited.as_secs_f64(),
            uncovered(&made, &pa).len(),
            uncovered(&made, &ja).len(),
            redundant(&made, &pa),
            redundant(&made, &ja),
        ),
    );
    assert!(
        delivered,
        "plex did not get the waiting scans after it came back"
    );
    assert!(left.iter().all(|(_, p, k)| *p == 0 && *k == 0), "{left:?}");
    assert_eq!(plex.unauthorized() + jellyfin.unauthorized(), 0);
}
