//! The reliability faults, the same for both sources: refused (nothing listens),
//! throttled, down mid-pass and back, and an empty root.

use crate::fast;
use pps_core::memory::{MemoryStore, MemoryTarget};
use pps_core::{
    Capabilities, DirectorySource, Engine, ErrorKind, ListOptions, TargetSpec, Update, Watch,
};
use pps_http_sources::mock::{StandIn, Tree};
use pps_http_sources::{OpenList, OpenListConfig, Rclone, RcloneConfig};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Kind {
    OpenList,
    Rclone,
}

async fn server(kind: Kind, tree: Tree) -> StandIn {
    match kind {
        Kind::OpenList => StandIn::openlist().start(tree).await,
        Kind::Rclone => StandIn::rclone().start(tree).await,
    }
}

fn source(kind: Kind, url: String) -> Arc<dyn DirectorySource> {
    match kind {
        Kind::OpenList => {
            let mut c = OpenListConfig::new(url);
            c.pacing = fast();
            Arc::new(OpenList::connect(c).unwrap())
        }
        Kind::Rclone => {
            let mut c = RcloneConfig::new(url, "115dav:");
            c.pacing = fast();
            Arc::new(Rclone::connect(c).unwrap())
        }
    }
}

fn library() -> Tree {
    let mut t = Tree::new();
    for i in 0..8 {
        t.write_file(&format!("/115/TV/Show {i}/S01/e1.mkv"), 1);
    }
    t
}

fn engine(src: Arc<dyn DirectorySource>) -> (Engine, Watch) {
    let engine = Engine::new(Arc::new(MemoryStore::new()))
        .with_source("src", src)
        .with_target(TargetSpec::new(
            "t",
            Arc::new(MemoryTarget::new(Capabilities::files(100))),
        ));
    (engine, Watch::new("src", "/115/TV").unwrap())
}

async fn refused(kind: Kind) {
    let server = server(kind, library()).await;
    let src = source(kind, server.url());
    server.stop().await;
    let err = src
        .list("/115/TV", ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{kind:?}: {err}");
    assert!(err.is_temporary());
    assert!(
        err.message().contains("nothing listens on 127.0.0.1:"),
        "{err}"
    );
}

async fn throttled(kind: Kind) {
    let server = server(kind, library()).await;
    let src = source(kind, server.url());
    server.faults(|f| f.throttle_next = 2);
    let entries = src.list("/115/TV", ListOptions::default()).await.unwrap();
    assert_eq!(
        entries.len(),
        8,
        "{kind:?}: listed whole after two throttled answers"
    );
    let path = if matches!(kind, Kind::OpenList) {
        "/api/fs/list"
    } else {
        "/operations/list"
    };
    assert_eq!(server.calls(path), 3);
    // A proxy's 503 is transient too.
    server.faults(|f| f.unavailable_next = 1);
    assert!(src.list("/115/TV", ListOptions::default()).await.is_ok());
    // Throttled beyond the retries: reported as throttled, temporary.
    server.faults(|f| f.throttle_next = 100);
    let err = src
        .list("/115/TV", ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{kind:?}: {err}");
    assert!(err.is_temporary());
}

async fn down_mid_pass(kind: Kind) {
    let server = Arc::new(server(kind, library()).await);
    let (engine, watch) = engine(source(kind, server.url()));
    engine.pass(&watch).await.unwrap(); // baseline
    server.faults(|f| f.latency = Duration::from_millis(30));
    server.tree(|t| t.write_file("/115/TV/Show 3/S01/e2.mkv", 2));
    let full = watch.clone();
    let stopper = server.clone();
    let stop = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(45)).await;
        stopper.stop().await;
    });
    let during = engine.pass(&full).await;
    stop.await.unwrap();
    // The server went away mid-pass: listings failed and were reported, never read
    // as empty folders.
    let report = during
        .as_ref()
        .expect("a pass with failed listings still reports");
    assert!(
        !report.errors.is_empty(),
        "{kind:?}: the stop landed mid-pass"
    );
    assert!(
        report.changes.iter().all(|c| c.update != Update::Deleted),
        "{kind:?}: a server going down is no deletion: {:?}",
        report.changes
    );
    server.restart().await.unwrap();
    server.faults(|f| f.latency = Duration::ZERO);
    let after = engine.pass(&full).await.unwrap();
    let before_changes = during.map(|r| r.changes).unwrap_or_default();
    let all: Vec<_> = before_changes.iter().chain(&after.changes).collect();
    assert!(
        all.iter()
            .any(|c| c.path == "/115/TV/Show 3/S01/e2.mkv" && c.update == Update::Created),
        "{kind:?}: the change made while down is found: {all:?}"
    );
    assert!(all.iter().all(|c| c.update != Update::Deleted), "{all:?}");
}

async fn empty_root(kind: Kind) {
    let server = server(kind, library()).await;
    let (engine, watch) = engine(source(kind, server.url()));
    engine.pass(&watch).await.unwrap(); // baseline
    server.tree(|t| {
        for i in 0..8 {
            t.remove(&format!("/115/TV/Show {i}"));
        }
    });
    let full = watch.clone();
    let err = engine.pass(&full).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Outage, "{kind:?}: {err}");
}

#[tokio::test]
async fn openlist_refused() {
    refused(Kind::OpenList).await;
}
#[tokio::test]
async fn rclone_refused() {
    refused(Kind::Rclone).await;
}
#[tokio::test]
async fn openlist_throttled() {
    throttled(Kind::OpenList).await;
}
#[tokio::test]
async fn rclone_throttled() {
    throttled(Kind::Rclone).await;
}
#[tokio::test]
async fn openlist_down_mid_pass() {
    down_mid_pass(Kind::OpenList).await;
}
#[tokio::test]
async fn rclone_down_mid_pass() {
    down_mid_pass(Kind::Rclone).await;
}
#[tokio::test]
async fn openlist_empty_root_is_an_outage() {
    empty_root(Kind::OpenList).await;
}
#[tokio::test]
async fn rclone_empty_root_is_an_outage() {
    empty_root(Kind::Rclone).await;
}
