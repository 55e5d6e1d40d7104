//! rclone against its stand-in.

use crate::{ROOT, fast, standard_tree};
use pps_core::testing::source_conformance;
use pps_core::{DirectorySource, ErrorKind, ListOptions, Secret};
use pps_http_sources::mock::{StandIn, Tree};
use pps_http_sources::{Rclone, RcloneConfig};
use serde_json::json;

pub fn config(server: &StandIn) -> RcloneConfig {
    let mut c = RcloneConfig::new(server.url(), "115dav:");
    c.pacing = fast();
    c
}

#[tokio::test]
async fn conformance_over_loopback_with_the_documented_requests() {
    let server = StandIn::rclone()
        .user("rc", "pa55")
        .start(standard_tree())
        .await;
    let rc = Rclone::connect(config(&server).with_login("rc", Secret::new("pa55"))).unwrap();
    source_conformance(&rc, ROOT, true).await;
    // A lookup is a listing of the parent: 6 + 8 listings and 3 lookups.
    assert_eq!(server.calls("/operations/list"), 6 + 8 + 3);
    let requests = server.requests();
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/operations/list");
        // Basic auth of rc:pa55.
        assert_eq!(r.authorization.as_deref(), Some("Basic cmM6cGE1NQ=="));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(
        requests[0].body,
        json!({"fs": "115dav:", "remote": ROOT.trim_start_matches('/'), "opt": {"recurse": false}})
    );
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_never_shown() {
    let server = StandIn::rclone()
        .user("rc", "pa55")
        .start(standard_tree())
        .await;
    let bad = Rclone::connect(config(&server).with_login("rc", Secret::new("hunter2"))).unwrap();
    let err = bad.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.is_temporary());
    assert!(err.message().contains("--rc-user and --rc-pass"), "{err}");
    assert!(!format!("{err} {err:?} {bad:?}").contains("hunter2"));
    assert_eq!(server.calls("/operations/list"), 1);

    let none = Rclone::connect(config(&server)).unwrap();
    let err = none.check().await.unwrap_err();
    assert!(
        err.message()
            .contains("rclone wants a user name and password"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_paths_unknown_remotes_and_other_servers_are_named() {
    let server = StandIn::rclone().start(standard_tree()).await;
    let rc = Rclone::connect(config(&server)).unwrap();
    let err = rc
        .list("/115/nope", ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("directory not found"), "{err}");

    let mut c = config(&server);
    c.remote = "typo:".into();
    let err = Rclone::connect(c).unwrap().check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("no such remote"), "{err}");

    let openlist = StandIn::openlist().start(Tree::new()).await;
    let mut c = config(&server);
    c.url = openlist.url();
    let err = Rclone::connect(c).unwrap().check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("not an rclone rc server"), "{err}");
}

#[tokio::test]
async fn vfs_refresh_follows_a_changed_folder_only() {
    let mut tree = Tree::new();
    tree.write_file("/TV/Show/e1.mkv", 1);
    let server = StandIn::rclone().start(tree).await;
    let mut c = config(&server);
    c.vfs_refresh = true;
    let rc = Rclone::connect(c).unwrap();
    rc.list("/TV/Show", ListOptions::default()).await.unwrap();
    rc.list("/TV/Show", ListOptions::default()).await.unwrap();
    assert_eq!(
        server.calls("/vfs/refresh"),
        0,
        "first sight and no change: no refresh"
    );
    server.tree(|t| t.write_file("/TV/Show/e2.mkv", 2));
    rc.list("/TV/Show", ListOptions::default()).await.unwrap();
    let refreshes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/vfs/refresh")
        .collect();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].body, json!({"dir": "TV/Show"}));
    assert_eq!(rc.stats().refreshes, 1);

    // Off by default.
    let plain = Rclone::connect(config(&server)).unwrap();
    plain
        .list("/TV/Show", ListOptions::default())
        .await
        .unwrap();
    server.tree(|t| t.write_file("/TV/Show/e3.mkv", 3));
    plain
        .list("/TV/Show", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(server.calls("/vfs/refresh"), 1);
}
