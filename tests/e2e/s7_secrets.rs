//! Scenario 7: secrets. Every command at trace level with a cd2 token and a Plex token
//! in the file, Emby and Jellyfin keys in the environment, a wrong Emby key (refused,
//! parked with its reason) and a revoked cd2 token: no token, key or password in any
//! output, log line, error, status or URL a mock received. (Scenarios 1-6 run the same
//! check over everything they saw.)

use crate::common::*;
use pps_clouddrive::mock::{MockServer, MockTree};
use std::time::Duration;

const WRONG_EMBY_KEY: &str = "emby-SECRET-wrong-key-8a2c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_log_status_or_url() {
    let log = Transcript::default();
    let plex = Media::start(Kind::Plex, &["/mnt/115/TV"], &log).await;
    let emby = Media::start(Kind::Emby, &["/mnt/115/TV"], &log).await;
    let jellyfin = Media::start(Kind::Jellyfin, &["/mnt/115/TV"], &log).await;
    let mut tree = MockTree::new();
    tree.write_file("/115/TV/Show/S01/e1.mkv", 10);
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    let map = "path_mapping = [{ from = \"/115\", to = \"/mnt/115\" }]";
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"state.db\"\n\n[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{}\"\napi_token = \"{CD2_TOKEN}\"\nmax_queries_per_second = 100\n\n[targets.plex]\nkind = \"plex\"\nurl = \"{}\"\ntoken = \"{PLEX_TOKEN}\"\n{map}\npacing = \"0s\"\n\n[targets.emby]\nkind = \"emby\"\nurl = \"{}\"\n{map}\n\n[targets.jellyfin]\nkind = \"jellyfin\"\nurl = \"{}\"\n{map}\n\n[[watch]]\nsource = \"cd2\"\npath = \"/115/TV\"\n",
            cd2.url(),
            plex.url(),
            emby.url(),
            jellyfin.url()
        ),
    )
    .unwrap();
    let cmd = |args: &[&str]| {
        let mut c = pps(Some(&config));
        c.env("PPS_LOG", "trace").args(args);
        run(c, Duration::from_secs(60), &log)
    };
    let mut runs = 0;
    for args in [
        &["check"][..],
        &["index"],
        &["status"],
        &["status", "--json"],
        &["ls", "cd2:/115/TV/Show/S01"],
    ] {
        let out = cmd(args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.all());
        runs += 1;
    }
    cd2.write_file("/115/TV/Show/S01/e2.mkv", 10);
    let out = cmd(&["once", "--full"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let out = cmd(&["scan", "cd2:/115/TV/Show"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    runs += 2;
    assert!(
        !plex.accepted().is_empty()
            && !emby.accepted().is_empty()
            && !jellyfin.accepted().is_empty()
    );

    // A wrong Emby key: refused, parked, the reason shown by status.
    cd2.write_file("/115/TV/Show/S01/e3.mkv", 10);
    let mut c = pps(Some(&config));
    c.env("PPS_LOG", "trace")
        .env("PPS_TARGETS_EMBY_API_KEY", WRONG_EMBY_KEY)
        .args(["once", "--full"]);
    let wrong = run(c, Duration::from_secs(60), &log);
    assert_eq!(wrong.code, Some(1), "{}", wrong.all());
    let status = cmd(&["status"]);
    assert!(status.stdout.contains("parked"), "{}", status.all());
    // A revoked cd2 token.
    let mut c = pps(Some(&config));
    c.env("PPS_LOG", "trace")
        .env("PPS_SOURCES_CD2_API_TOKEN", "cd2-SECRET-revoked-11ee")
        .args(["once", "--full"]);
    let revoked = run(c, Duration::from_secs(60), &log);
    assert_eq!(revoked.code, Some(1), "{}", revoked.all());
    runs += 3;

    let lines = log.assert_no_secrets();
    for text in [
        &wrong.stdout,
        &wrong.stderr,
        &status.stdout,
        &revoked.stderr,
    ] {
        assert!(!text.contains(WRONG_EMBY_KEY) && !text.contains("cd2-SECRET-revoked-11ee"));
    }
    summary(
        "7 secrets",
        &format!(
            "{runs} commands at trace level (check, index, status, status --json, ls, once, scan, a wrong emby key, a revoked cd2 token) with 4 secrets in the file and the environment"
        ),
        &format!(
            "{lines} lines of output, logs and received URLs/headers ({} bytes) hold no secret; credentials only in the protocol's auth headers (checked for their exact value, {} unauthorized requests besides the deliberately wrong key)",
            log.bytes(),
            plex.unauthorized() + jellyfin.unauthorized()
        ),
    );
    assert_eq!(plex.unauthorized() + jellyfin.unauthorized(), 0);
    assert!(emby.unauthorized() > 0, "the wrong key was used");
    cd2.shutdown().await;
}
