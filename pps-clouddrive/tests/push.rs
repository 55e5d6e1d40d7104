//! Push events from the mock.

use crate::mock_server::{config, standard_tree};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use pps_clouddrive::mock::{Method, MockServer};
use pps_clouddrive::{Auth, CloudDrive};
use pps_core::{DirectorySource, Hint, ListOptions, Secret};
use std::time::Duration;

/// Reads hints in the background, so the stream is connected while the test acts.
fn collect(
    mut hints: BoxStream<'static, Hint>,
) -> tokio::sync::mpsc::UnboundedReceiver<Option<Hint>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let hint = hints.next().await;
            let end = hint.is_none();
            if tx.send(hint).is_err() || end {
                return;
            }
        }
    });
    rx
}

/// Waits (without sleeping) until the mock sees `condition`; a guard ends a hang.
async fn wait(server: &MockServer, condition: impl Fn(&MockServer) -> bool) {
    tokio::time::timeout(Duration::from_secs(20), server.wait_until(condition))
        .await
        .expect("the client never got there");
}

async fn wait_for_channels(server: &MockServer, n: usize) {
    wait(server, |s| s.push_channels() >= n).await;
}

fn hint(path: &str, new_path: Option<&str>, is_dir: bool) -> Option<Hint> {
    Some(Hint {
        path: path.into(),
        new_path: new_path.map(String::from),
        is_dir,
    })
}

#[tokio::test]
async fn changes_become_hints_and_survive_reconnects() {
    let server = MockServer::builder()
        .api_token("tok")
        .start(standard_tree())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, Auth::ApiToken(Secret::new("tok")))).unwrap();
    let mut hints = collect(cd2.hints().expect("push is on by default"));
    wait_for_channels(&server, 1).await;

    server.create_dir("/115/pps-test/New Show");
    server.write_file("/115/pps-test/top.txt", 4);
    server.rename("/115/pps-test/Empty", "/115/pps-test/Full");
    server.remove("/115/pps-test/Movies");
    assert_eq!(
        hints.recv().await.unwrap(),
        hint("/115/pps-test/New Show", None, true)
    );
    assert_eq!(
        hints.recv().await.unwrap(),
        hint("/115/pps-test/top.txt", None, false)
    );
    assert_eq!(
        hints.recv().await.unwrap(),
        hint("/115/pps-test/Empty", Some("/115/pps-test/Full"), true)
    );
    assert_eq!(
        hints.recv().await.unwrap(),
        hint("/115/pps-test/Movies", None, true)
    );
    // The tree changed too.
    let names: Vec<String> = cd2
        .list("/115/pps-test", ListOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&"Full".to_owned()) && !names.contains(&"Movies".to_owned()));

    // A dropped channel is reopened; later changes still arrive.
    server.drop_push_channels();
    // The client reconnects after a backoff of about a second.
    wait(&server, |s| {
        s.calls(Method::PushMessage) >= 2 && s.push_channels() >= 1
    })
    .await;
    assert_eq!(server.calls(Method::PushMessage), 2);
    server.touch("/115/pps-test/Full");
    assert_eq!(
        hints.recv().await.unwrap(),
        hint("/115/pps-test/Full", None, true)
    );
}

#[tokio::test]
async fn no_push_ends_the_stream_once() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    server.faults(|f| f.no_push = true);
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let mut hints = cd2.hints().unwrap();
    assert_eq!(hints.next().await, None);
    assert_eq!(
        server.calls(Method::PushMessage),
        1,
        "asked once, not retried"
    );

    let mut off = config(&server, Auth::None);
    off.push = false;
    assert!(CloudDrive::connect(off).unwrap().hints().is_none());
}

#[tokio::test]
async fn an_older_push_format_means_no_push() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    server.faults(|f| f.legacy_push = true);
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let mut hints = cd2.hints().unwrap();
    assert_eq!(
        hints.next().await,
        None,
        "undecodable messages end the stream"
    );
    assert_eq!(
        server.calls(Method::PushMessage),
        1,
        "and it is not retried"
    );
    // Listings are unaffected.
    assert_eq!(
        cd2.list("/115/pps-test", ListOptions::default())
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn force_exit_logs_in_again() {
    let server = MockServer::builder()
        .user("alice", "pa55")
        .start(standard_tree())
        .await
        .unwrap();
    let auth = Auth::Password {
        username: "alice".into(),
        password: Secret::new("pa55"),
    };
    let cd2 = CloudDrive::connect(config(&server, auth)).unwrap();
    let mut hints = collect(cd2.hints().unwrap());
    wait_for_channels(&server, 1).await;
    assert_eq!(server.calls(Method::GetToken), 1);

    server.force_exit();
    wait(&server, |s| {
        s.calls(Method::PushMessage) >= 2 && s.push_channels() >= 1
    })
    .await;
    assert_eq!(
        server.calls(Method::GetToken),
        2,
        "a fresh login after FORCE_EXIT"
    );
    server.create_dir("/115/pps-test/After");
    assert_eq!(
        hints.recv().await.unwrap(),
        hint("/115/pps-test/After", None, true)
    );
    // Listings use the new token without being refused.
    let before = server.calls(Method::GetSubFiles);
    cd2.list("/115/pps-test", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(server.calls(Method::GetSubFiles) - before, 1);
}

#[tokio::test]
async fn mount_and_cloud_changes_are_outage_signals_not_hints() {
    let server = MockServer::builder()
        .api_token("tok")
        .start(standard_tree())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, Auth::ApiToken(Secret::new("tok")))).unwrap();
    let mut hints = collect(cd2.hints().unwrap());
    wait_for_channels(&server, 1).await;
    server.push_bare(5); // MOUNT_POINT_CHANGE
    server.push_bare(5);
    server.push_bare(9); // CLOUD_API_CHANGE
    server.push_bare(10); // BACKUP_SYNC_ISSUE: ignored
    server.touch("/115/pps-test/top.txt");
    // The signals make no folder due (re-listing everything would spend the budget);
    // the next hint is the change after them.
    assert_eq!(
        hints.recv().await.unwrap(),
        hint("/115/pps-test/top.txt", None, false)
    );
    assert_eq!(cd2.stats().outage_signals, 3);
    assert_eq!(
        server.calls(Method::PushMessage),
        1,
        "the channel stayed open"
    );
}
