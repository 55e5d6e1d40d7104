//! The full stack against the mock cd2 server.

use futures_util::future::join_all;
use pps_clouddrive::mock::{Method, MockServer, MockTree};
use pps_clouddrive::{Auth, CloudDrive, CloudDriveConfig};
use pps_core::testing::{STANDARD_TREE, big_folder_files, source_conformance};
use pps_core::{DirectorySource, ErrorKind, ListOptions, Secret};
use std::time::Duration;

const ROOT: &str = "/115/pps-test";

pub fn standard_tree() -> MockTree {
    let mut tree = MockTree::new();
    for (path, size) in STANDARD_TREE {
        let full = format!("{ROOT}/{path}");
        match size {
            None => tree.create_dir(&full),
            Some(size) => tree.write_file(&full, *size),
        }
    }
    for file in big_folder_files() {
        tree.write_file(&format!("{ROOT}/{file}"), 1);
    }
    tree
}

/// Fast pacing and millisecond backoff: these tests run on the real clock (tokio's
/// paused clock and real sockets do not mix: it jumps to the next timer whenever the
/// runtime waits for I/O), so they assert counts and kinds, never durations. Long
/// spans (token lifetimes, cooldowns) are skipped with `pause` + `advance`, never slept.
pub fn config(server: &MockServer, auth: Auth) -> CloudDriveConfig {
    let mut config = CloudDriveConfig::new(server.url()).with_auth(auth);
    config.max_queries_per_second = 1000.0;
    config.burst = 20;
    config.timeout = Duration::from_secs(30);
    config.backoff = Duration::from_millis(1);
    config.throttle_backoff = Duration::from_millis(2);
    config.max_backoff = Duration::from_millis(20);
    config
}

/// Moves tokio's clock forward by `span` at once, without waiting.
pub async fn skip(span: Duration) {
    tokio::time::pause();
    tokio::time::advance(span).await;
    tokio::time::resume();
}

fn token(t: &str) -> Auth {
    Auth::ApiToken(Secret::new(t))
}

fn password(user: &str, pass: &str) -> Auth {
    Auth::Password {
        username: user.into(),
        password: Secret::new(pass),
    }
}

#[tokio::test]
async fn conformance_over_loopback() {
    let server = MockServer::builder()
        .api_token("tok")
        .start(standard_tree())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, token("tok"))).unwrap();
    source_conformance(&cd2, ROOT, true).await;
    let listings = server.calls(Method::GetSubFiles);
    let lookups = server.calls(Method::FindFileByPath);
    assert_eq!(listings, 6 + 8, "one GetSubFiles per listing, no retries");
    assert_eq!(lookups, 3);
    assert_eq!(cd2.stats().listings, listings);
}

#[tokio::test]
async fn large_folder_arrives_whole_over_several_replies() {
    let mut tree = MockTree::new();
    for i in 0..5000 {
        tree.write_file(&format!("/big/e{i:05}.mkv"), i);
    }
    let server = MockServer::builder()
        .page_size(128)
        .start(tree)
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let entries = cd2.list("/big", ListOptions::default()).await.unwrap();
    assert_eq!(entries.len(), 5000);
    assert!(
        entries
            .iter()
            .any(|e| e.name == "e04999.mkv" && e.size == 4999)
    );
    assert_eq!(server.calls(Method::GetSubFiles), 1);
}

#[tokio::test]
async fn api_token_is_sent_and_a_wrong_one_is_permanent() {
    let server = MockServer::builder()
        .api_token("right")
        .start(standard_tree())
        .await
        .unwrap();
    let good = CloudDrive::connect(config(&server, token("right"))).unwrap();
    assert_eq!(
        good.list(ROOT, ListOptions::default()).await.unwrap().len(),
        4
    );

    let bad = CloudDrive::connect(config(&server, token("wrong-secret-value"))).unwrap();
    let before = server.calls(Method::GetSubFiles);
    let err = bad.list(ROOT, ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.is_temporary());
    assert_eq!(
        server.calls(Method::GetSubFiles) - before,
        1,
        "no retry loop"
    );
    let shown = format!("{err} {err:?} {bad:?}");
    assert!(!shown.contains("wrong-secret-value"), "{shown}");
    assert_eq!(err.context_value("source"), Some(server.url().as_str()));

    let none = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let err = none.stat(&format!("{ROOT}/top.txt")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
}

#[tokio::test]
async fn password_login_once_and_wrong_password_is_permanent() {
    let server = MockServer::builder()
        .user("alice", "pa55")
        .start(standard_tree())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, password("alice", "pa55"))).unwrap();
    let results = join_all((0..5).map(|_| cd2.list(ROOT, ListOptions::default()))).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(
        server.calls(Method::GetToken),
        1,
        "concurrent calls share one login"
    );
    assert_eq!(cd2.stats().logins, 1);

    let wrong = CloudDrive::connect(config(&server, password("alice", "hunter2"))).unwrap();
    let err = wrong.list(ROOT, ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.is_temporary());
    assert!(
        err.to_string().contains("invalid user name or password"),
        "{err}"
    );
    assert!(!format!("{err} {err:?} {wrong:?}").contains("hunter2"));
    assert_eq!(
        server.calls(Method::GetToken),
        2,
        "one failed login, no loop"
    );
}

#[tokio::test]
async fn token_is_renewed_before_it_expires() {
    let server = MockServer::builder()
        .user("alice", "pa55")
        .token_lifetime(Duration::from_secs(100))
        .start(standard_tree())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, password("alice", "pa55"))).unwrap();
    cd2.list(ROOT, ListOptions::default()).await.unwrap();
    skip(Duration::from_secs(50)).await;
    cd2.list(ROOT, ListOptions::default()).await.unwrap();
    assert_eq!(server.calls(Method::GetToken), 1, "still fresh at 50 s");
    // Past four fifths of the lifetime, but before it ends: renewed ahead of time, so
    // the server never has to refuse a call.
    skip(Duration::from_secs(35)).await;
    cd2.list(ROOT, ListOptions::default()).await.unwrap();
    assert_eq!(server.calls(Method::GetToken), 2);
    assert_eq!(server.calls(Method::GetSubFiles), 3, "no refused call");
}

#[tokio::test]
async fn refused_token_logs_in_once_more() {
    let server = MockServer::builder()
        .user("alice", "pa55")
        .start(standard_tree())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, password("alice", "pa55"))).unwrap();
    cd2.list(ROOT, ListOptions::default()).await.unwrap();
    server.expire_tokens();
    let entries = cd2.list(ROOT, ListOptions::default()).await.unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(server.calls(Method::GetToken), 2);
    assert_eq!(
        server.calls(Method::GetSubFiles),
        3,
        "one refused, then repeated"
    );
    assert_eq!(cd2.stats().retries, 0, "the re-login is not a retry");
}

#[tokio::test]
async fn unknown_times_are_none() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    server.faults(|f| f.unknown_times = true);
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let entries = cd2.list(ROOT, ListOptions::default()).await.unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e.mtime.is_none()), "{entries:?}");
    let file = cd2.stat(&format!("{ROOT}/top.txt")).await.unwrap();
    assert_eq!((file.size, file.mtime), (3, None));
    server.faults(|f| f.unknown_times = false);
    let file = cd2.stat(&format!("{ROOT}/top.txt")).await.unwrap();
    assert!(file.mtime.is_some());
}

#[tokio::test]
async fn throttled_answers_are_retried_and_slow_the_source() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    server.faults(|f| f.throttle_next = 2);
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let entries = cd2.list(ROOT, ListOptions::default()).await.unwrap();
    assert_eq!(entries.len(), 4);
    let stats = cd2.stats();
    assert_eq!((stats.throttled, stats.retries, stats.listings), (2, 2, 3));
    assert_eq!(cd2.current_rate(), 250.0, "halved twice");
    assert_eq!(stats.rate_lowered, 2);

    // Throttled on every attempt: a temporary Throttled error after 1 + retries calls.
    server.faults(|f| f.throttle_next = 100);
    let before = server.calls(Method::GetSubFiles);
    let err = cd2.list(ROOT, ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.is_temporary());
    assert_eq!(server.calls(Method::GetSubFiles) - before, 5);

    // After a quiet spell the rate steps back up to the configured one.
    server.faults(|f| f.throttle_next = 0);
    assert_eq!(cd2.current_rate(), 125.0, "the floor is an eighth");
    for _ in 0..3 {
        skip(Duration::from_secs(150)).await;
        cd2.list(ROOT, ListOptions::default()).await.unwrap();
    }
    assert_eq!(
        cd2.current_rate(),
        1000.0,
        "one step back up per quiet cooldown"
    );
}

#[tokio::test]
async fn a_share_of_throttled_answers_still_lists_everything() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    server.faults(|f| f.throttle_share = 0.25);
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    for _ in 0..12 {
        assert_eq!(
            cd2.list(ROOT, ListOptions::default()).await.unwrap().len(),
            4
        );
    }
    let stats = cd2.stats();
    assert!(stats.throttled >= 3, "{stats:?}");
    assert_eq!(stats.listings, 12 + stats.throttled);
}

#[tokio::test]
async fn unavailable_is_retried_a_bounded_number_of_times() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    server.faults(|f| f.unavailable_next = 2);
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    assert_eq!(
        cd2.list(ROOT, ListOptions::default()).await.unwrap().len(),
        4
    );
    assert_eq!(cd2.stats().retries, 2);

    server.faults(|f| f.unavailable_next = 50);
    let err = cd2.stat(&format!("{ROOT}/top.txt")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.context_value("operation"), Some("stat"));
    assert_eq!(server.calls(Method::FindFileByPath), 5, "1 + 4 retries");
}

#[tokio::test]
async fn a_cut_stream_is_never_returned_half_read() {
    let server = MockServer::builder()
        .page_size(100)
        .start(standard_tree())
        .await
        .unwrap();
    server.faults(|f| f.cut_next = 2);
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let big = cd2
        .list(&format!("{ROOT}/Big"), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(big.len(), 1200, "retried whole");
    assert_eq!(server.calls(Method::GetSubFiles), 3);
    assert_eq!(cd2.stats().transient, 2);

    server.faults(|f| f.cut_next = 100);
    let err = cd2
        .list(&format!("{ROOT}/Big"), ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
}

#[tokio::test]
async fn latency_beyond_the_timeout_is_unavailable() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    server.faults(|f| f.latency = Duration::from_millis(500));
    let mut hasty = config(&server, Auth::None);
    hasty.retries = 1;
    hasty.timeout = Duration::from_millis(20);
    let cd2 = CloudDrive::connect(hasty).unwrap();
    let err = cd2.list(ROOT, ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(server.calls(Method::GetSubFiles), 2);

    assert_eq!(cd2.stats().transient, 2);
    // Within the timeout the same latency is just slow.
    let patient = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    assert_eq!(
        patient
            .list(ROOT, ListOptions::default())
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn not_found_and_empty_records() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let err = cd2
        .list(&format!("{ROOT}/nope"), ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.is_temporary()),
        (ErrorKind::NotFound, false)
    );
    assert_eq!(
        server.calls(Method::GetSubFiles),
        1,
        "not found is not retried"
    );
    server.faults(|f| f.empty_not_found = true);
    let err = cd2.stat(&format!("{ROOT}/nope.mkv")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let root = cd2.stat("/").await.unwrap();
    assert_eq!(root.name, "/");
    assert!(root.is_dir());
}

#[tokio::test]
async fn the_mock_answers_both_lookup_conventions_and_unimplemented() {
    use pps_clouddrive::proto::FindFileByPathRequest;
    use pps_clouddrive::proto::cloud_drive_file_srv_client::CloudDriveFileSrvClient;
    let server = MockServer::start(standard_tree()).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = CloudDriveFileSrvClient::new(channel.clone());
    let full = raw
        .find_file_by_path(FindFileByPathRequest {
            parent_path: String::new(),
            path: format!("{ROOT}/top.txt"),
        })
        .await
        .unwrap()
        .into_inner();
    let split = raw
        .find_file_by_path(FindFileByPathRequest {
            parent_path: ROOT.into(),
            path: "top.txt".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full, split);
    assert_eq!((full.name.as_str(), full.size), ("top.txt", 3));

    // A method the mock does not implement, called over raw gRPC.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/clouddrive.CloudDriveFileSrv/GetMountPoints",
    );
    let answer: Result<tonic::Response<()>, _> = grpc
        .unary(
            tonic::Request::new(()),
            path,
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert_eq!(answer.unwrap_err().code(), tonic::Code::Unimplemented);
    let info = CloudDrive::connect(config(&server, Auth::None))
        .unwrap()
        .system_info()
        .await
        .unwrap();
    assert!(info.system_ready);
    assert_eq!(server.calls(Method::GetSystemInfo), 1);
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let err = CloudDrive::connect(CloudDriveConfig::new("http://127.0.0.1:1")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected);
}

#[tokio::test]
async fn the_mock_serves_a_local_folder_and_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("电影/Film (2020)")).unwrap();
    std::fs::write(dir.path().join("电影/Film (2020)/film.mkv"), b"12345").unwrap();
    let server = MockServer::start(MockTree::from_dir(dir.path()).unwrap())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let films = cd2
        .list("/电影/Film (2020)", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(films.len(), 1);
    assert_eq!((films[0].name.as_str(), films[0].size), ("film.mkv", 5));
    assert!(films[0].mtime.is_some());

    let before = cd2.stat("/电影/Film (2020)/film.mkv").await.unwrap().mtime;
    server.touch("/电影/Film (2020)/film.mkv");
    let after = cd2.stat("/电影/Film (2020)/film.mkv").await.unwrap().mtime;
    assert_ne!(before, after, "a touched file has a new mtime");
    server.rename("/电影/Film (2020)", "/电影/Film (2021)");
    assert_eq!(
        cd2.list("/电影/Film (2021)", ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let gone = cd2
        .list("/电影/Film (2020)", ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_token_that_looks_expired_is_used_until_refused() {
    // A 10 s lifetime looks like clock skew: renewing by it would log in before every
    // call, so the client keeps the token until cd2 refuses it.
    let server = MockServer::builder()
        .user("alice", "pa55")
        .token_lifetime(Duration::from_secs(10))
        .start(standard_tree())
        .await
        .unwrap();
    let cd2 = CloudDrive::connect(config(&server, password("alice", "pa55"))).unwrap();
    for _ in 0..5 {
        cd2.list(ROOT, ListOptions::default()).await.unwrap();
    }
    assert_eq!(server.calls(Method::GetToken), 1);
    skip(Duration::from_secs(11)).await;
    cd2.list(ROOT, ListOptions::default()).await.unwrap();
    assert_eq!(
        server.calls(Method::GetToken),
        2,
        "refused once, logged in once more"
    );
    assert_eq!(server.calls(Method::GetSubFiles), 7);
}

#[tokio::test]
async fn a_port_with_nothing_behind_it_and_a_web_server_are_named_plainly() {
    // Nothing listens: a free port, closed again.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut c = CloudDriveConfig::new(format!("http://127.0.0.1:{port}"));
    c.retries = 0;
    let cd = CloudDrive::connect(c).unwrap();
    let err = cd.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.message().contains(&format!(
            "nothing listens on 127.0.0.1:{port}: is CloudDrive2 running"
        )),
        "{err}"
    );
    // A plain HTTP/1 server on the port (a web UI, a proxy): not cd2's gRPC.
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = web.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = web.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nbad")
                    .await;
                // Keep the connection open, as a real web server does.
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let cd =
        CloudDrive::connect(CloudDriveConfig::new(format!("http://127.0.0.1:{port}"))).unwrap();
    let err = cd.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(
        err.message().contains("does not speak CloudDrive2's gRPC"),
        "{err}"
    );
    assert!(!err.is_temporary(), "retrying a web server helps nobody");
}

#[tokio::test]
async fn check_proves_the_token_without_retrying() {
    let server = MockServer::builder()
        .api_token("right")
        .start(standard_tree())
        .await
        .unwrap();
    let cd = CloudDrive::connect(config(&server, token("wrong"))).unwrap();
    let err = cd.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(err.message().contains("cd2 refused the API token"), "{err}");
    assert_eq!(
        server.calls(Method::GetSubFiles),
        1,
        "asked once, no retries"
    );
    let cd = CloudDrive::connect(config(&server, token("right"))).unwrap();
    let info = cd.check().await.unwrap();
    assert!(info.is_login);
}

#[tokio::test]
async fn the_mock_follows_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("TV/Show")).unwrap();
    let server = MockServer::start(MockTree::following(dir.path()).unwrap())
        .await
        .unwrap();
    let cd = CloudDrive::connect(config(&server, Auth::None)).unwrap();
    let names = |entries: Vec<pps_core::Entry>| -> Vec<String> {
        entries.into_iter().map(|e| e.name).collect()
    };
    assert!(
        cd.list("/TV/Show", ListOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    std::fs::write(dir.path().join("TV/Show/e1.mkv"), b"12345").unwrap();
    let listed = cd.list("/TV/Show", ListOptions::default()).await.unwrap();
    assert_eq!(
        names(listed.clone()),
        ["e1.mkv"],
        "a file added later shows"
    );
    assert_eq!(listed[0].size, 5);
    assert!(cd.stat("/TV/Show/e1.mkv").await.is_ok());
    let err = cd
        .list("/TV/../..", ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "never outside the folder");
    std::fs::remove_file(dir.path().join("TV/Show/e1.mkv")).unwrap();
    assert_eq!(
        cd.stat("/TV/Show/e1.mkv").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn listing_latency_is_the_calls_own_time_not_the_wait_for_the_limiter() {
    let server = MockServer::start(standard_tree()).await.unwrap();
    let mut c = config(&server, Auth::None);
    // Four calls at 10/s with no burst: about 0.3 s of waiting, for calls that each
    // take a fraction of a millisecond.
    c.max_queries_per_second = 10.0;
    c.burst = 1;
    let cd = CloudDrive::connect(c).unwrap();
    for _ in 0..4 {
        cd.list(ROOT, ListOptions::default()).await.unwrap();
    }
    let lat = cd.listing_latency();
    assert_eq!(lat.count(), 4);
    let waited = cd.stats().limiter_wait;
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(
        lat.max() < waited,
        "the slowest call ({:?}) took less than the waits ({waited:?}) together",
        lat.max()
    );
}
