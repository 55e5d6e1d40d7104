//! The Emby and Jellyfin targets against mock servers.

use crate::common::{Logs, NoHeader, RawQuery, Recorder, TOKEN, dropping_server, refused_url, req};
use pps_core::{ErrorKind, ScanRequest, ScanTarget, Update};
use pps_mediaserver::{EmbyConfig, EmbyTarget, JellyfinTarget};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const JELLYFIN_AUTH: &str = "MediaBrowser Token=\"tok-SECRET-4242\"";

fn config(url: &str) -> EmbyConfig {
    let mut config = EmbyConfig::new(url, TOKEN);
    config.timeout = Duration::from_secs(5);
    config.max_batch = 10;
    config
}

fn emby(url: &str) -> EmbyTarget {
    EmbyTarget::new(config(url)).expect("config")
}

fn jellyfin(url: &str) -> JellyfinTarget {
    JellyfinTarget::new(config(url)).expect("config")
}

fn virtual_folders(list: &[(&str, &str, &[&str])]) -> Value {
    Value::Array(
        list.iter()
            .map(|(id, name, locs)| {
                json!({"Name": name, "Locations": locs, "CollectionType": "tvshows",
                       "ItemId": id, "RefreshStatus": "Idle"})
            })
            .collect(),
    )
}

async fn mount_emby_folders(server: &MockServer, list: &[(&str, &str, &[&str])]) {
    Mock::given(method("GET"))
        .and(path("/Library/VirtualFolders"))
        .and(header("X-Emby-Token", TOKEN))
        .and(RawQuery(None))
        .respond_with(ResponseTemplate::new(200).set_body_json(virtual_folders(list)))
        .mount(server)
        .await;
}

async fn mount_jellyfin_folders(server: &MockServer, list: &[(&str, &str, &[&str])]) {
    Mock::given(method("GET"))
        .and(path("/Library/VirtualFolders"))
        .and(header("Authorization", JELLYFIN_AUTH))
        .and(NoHeader("x-emby-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(virtual_folders(list)))
        .mount(server)
        .await;
}

async fn count(server: &MockServer, p: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

#[tokio::test]
async fn emby_gets_one_batch_with_the_true_update_types() {
    let (logs, _guard) = Logs::capture();
    let server = MockServer::start().await;
    mount_emby_folders(
        &server,
        &[
            ("a1", "TV", &["/media/tv"]),
            ("b2", "Movies", &["/media/movies"]),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .and(header("X-Emby-Token", TOKEN))
        .and(header("Content-Type", "application/json"))
        .and(NoHeader("authorization"))
        .and(RawQuery(None))
        .and(body_json(json!({"Updates": [
            {"Path": "/media/tv/Show & Co #1/S01/e01 100%+.mkv", "UpdateType": "Created"},
            {"Path": "/media/movies/电影 (2020)", "UpdateType": "Modified"},
            {"Path": "/media/tv/Show & Co #1/S01/e00.mkv", "UpdateType": "Deleted"},
        ]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let results = emby(&server.uri())
        .scan(&[
            req(
                "/media/tv/Show & Co #1/S01/e01 100%+.mkv",
                Update::Created,
                false,
            ),
            req("/media/movies/电影 (2020)", Update::Modified, true),
            req("/media/tv/Show & Co #1/S01/e00.mkv", Update::Deleted, false),
        ])
        .await;
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    server.verify().await;
    let text = logs.assert_no_token();
    assert!(
        text.contains("/Library/Media/Updated"),
        "the request is logged:\n{text}"
    );
}

#[tokio::test]
async fn jellyfin_sends_the_mediabrowser_authorization_header() {
    let (logs, _guard) = Logs::capture();
    let server = MockServer::start().await;
    mount_jellyfin_folders(&server, &[("f1", "Movies", &["/data/movies"])]).await;
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .and(header("Authorization", JELLYFIN_AUTH))
        .and(NoHeader("x-emby-token"))
        .and(NoHeader("x-mediabrowser-token"))
        .and(RawQuery(None))
        .and(body_json(json!({"Updates": [
            {"Path": "/data/movies/New Film (2024)/New Film.mkv", "UpdateType": "Created"},
        ]})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let results = jellyfin(&server.uri())
        .scan(&[req(
            "/data/movies/New Film (2024)/New Film.mkv",
            Update::Created,
            false,
        )])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    server.verify().await;
    logs.assert_no_token();
}

#[tokio::test]
async fn any_2xx_is_success() {
    for status in [200, 202, 204] {
        let server = MockServer::start().await;
        mount_emby_folders(&server, &[("a", "TV", &["/tv"])]).await;
        Mock::given(method("POST"))
            .and(path("/Library/Media/Updated"))
            .respond_with(ResponseTemplate::new(status).set_body_string("ok"))
            .expect(1)
            .mount(&server)
            .await;
        let results = emby(&server.uri())
            .scan(&[req("/tv/x", Update::Modified, true)])
            .await;
        assert!(results[0].is_ok(), "{status}: {results:?}");
        server.verify().await;
    }
}

#[tokio::test]
async fn a_path_outside_every_library_is_parked_and_the_rest_is_sent() {
    let server = MockServer::start().await;
    mount_emby_folders(&server, &[("a", "TV", &["/tv"])]).await;
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .and(body_json(
            json!({"Updates": [{"Path": "/tv/Show", "UpdateType": "Created"}]}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let target = emby(&server.uri());
    let results = target
        .scan(&[
            req("/tvshows/Other", Update::Created, true),
            req("/tv/Show", Update::Created, true),
        ])
        .await;
    let err = results[0].as_ref().expect_err("/tvshows is in no library");
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(!err.is_temporary());
    assert_eq!(err.context_value("path"), Some("/tvshows/Other"));
    assert!(results[1].is_ok(), "{results:?}");
    assert_eq!(
        count(&server, "/Library/VirtualFolders").await,
        2,
        "one re-read on the miss"
    );
    server.verify().await;

    // All outside: nothing is posted.
    let results = target
        .scan(&[req("/elsewhere", Update::Deleted, false)])
        .await;
    assert!(results[0].is_err());
    assert_eq!(count(&server, "/Library/Media/Updated").await, 1);
}

#[tokio::test]
async fn a_library_added_after_start_is_found() {
    let server = MockServer::start().await;
    Mock::given(path("/Library/VirtualFolders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(virtual_folders(&[(
            "a",
            "TV",
            &["/tv"],
        )])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_jellyfin_folders(
        &server,
        &[("a", "TV", &["/tv"]), ("b", "Anime", &["/anime"])],
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .respond_with(ResponseTemplate::new(204))
        .expect(2)
        .mount(&server)
        .await;
    let target = jellyfin(&server.uri());
    assert!(target.scan(&[req("/tv/a", Update::Created, true)]).await[0].is_ok());
    assert!(target.scan(&[req("/anime/b", Update::Created, true)]).await[0].is_ok());
    let libs = target.libraries().await.expect("libraries");
    assert_eq!(
        libs.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(libs[1].locations, ["/anime"]);
    server.verify().await;
}

#[tokio::test]
async fn emby_falls_back_to_selectable_media_folders() {
    let server = MockServer::start().await;
    Mock::given(path("/Library/VirtualFolders"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Library/SelectableMediaFolders"))
        .and(header("X-Emby-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"Name": "TV", "Id": "9", "SubFolders": [{"Name": "tv", "Id": "91", "Path": "/mnt/tv"}]}
        ])))
        .mount(&server)
        .await;
    let libs = emby(&server.uri()).libraries().await.expect("libraries");
    assert_eq!(libs.len(), 1);
    assert_eq!((libs[0].id.as_str(), libs[0].name.as_str()), ("9", "TV"));
    assert_eq!(libs[0].locations, ["/mnt/tv"]);
}

#[tokio::test]
async fn unauthorized_is_permanent_for_every_request_with_a_hint() {
    let (logs, _guard) = Logs::capture();
    let server = MockServer::start().await;
    mount_jellyfin_folders(&server, &[("a", "TV", &["/tv"])]).await;
    Mock::given(path("/Library/Media/Updated"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let results = jellyfin(&server.uri())
        .scan(&[
            req("/tv/a", Update::Created, true),
            req("/tv/b", Update::Deleted, false),
        ])
        .await;
    assert_eq!(results.len(), 2);
    for r in &results {
        let err = r.as_ref().expect_err("401");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        assert!(err.message().contains("Jellyfin"), "{err}");
        assert!(!format!("{err:?}").contains(TOKEN));
    }
    logs.assert_no_token();
}

#[tokio::test]
async fn emby_headers_on_jellyfin_12_hint_at_the_kind() {
    let server = MockServer::start().await;
    // Jellyfin 12 with the legacy headers switched off.
    Mock::given(path("/Library/VirtualFolders"))
        .and(header("X-Emby-Token", TOKEN))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let err = emby(&server.uri())
        .scan(&[req("/tv/a", Update::Created, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(err.message().contains("kind \"jellyfin\""), "{err}");
}

#[tokio::test]
async fn server_errors_and_timeouts_are_temporary() {
    let server = MockServer::start().await;
    mount_emby_folders(&server, &[("a", "TV", &["/tv"])]).await;
    Mock::given(path("/Library/Media/Updated"))
        .and(body_json(
            json!({"Updates": [{"Path": "/tv/slow", "UpdateType": "Created"}]}),
        ))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_millis(190)))
        .mount(&server)
        .await;
    Mock::given(path("/Library/Media/Updated"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let mut cfg = config(&server.uri());
    cfg.timeout = Duration::from_millis(100);
    let target = EmbyTarget::new(cfg).expect("config");
    let results = target
        .scan(&[
            req("/tv/a", Update::Created, true),
            req("/tv/b", Update::Created, true),
        ])
        .await;
    for r in &results {
        let err = r.as_ref().expect_err("500");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.is_temporary());
        assert_eq!(err.context_value("status"), Some("500"));
    }
    let err = target
        .scan(&[req("/tv/slow", Update::Created, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary());
    assert!(err.message().contains("did not answer within"), "{err}");
}

#[tokio::test]
async fn refused_and_dropped_connections_are_temporary() {
    for url in [refused_url(), dropping_server().await] {
        let target = jellyfin(&url);
        let results = target.scan(&[req("/tv/a", Update::Created, true)]).await;
        let err = results[0].as_ref().expect_err("no server");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_temporary(), "{err}");
        assert!(!err.to_string().contains(TOKEN));
    }
}

#[tokio::test]
async fn check_reports_the_server_and_its_libraries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/System/Info"))
        .and(header("Authorization", JELLYFIN_AUTH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ServerName": "living room", "Version": "10.11.2", "ProductName": "Jellyfin Server",
            "Id": "abc", "OperatingSystem": "Linux"
        })))
        .mount(&server)
        .await;
    mount_jellyfin_folders(&server, &[("a", "TV", &["/tv", "/tv2"])]).await;
    let info = jellyfin(&server.uri()).check().await.expect("check");
    assert_eq!(
        info.server,
        "Jellyfin Server \"living room\", no targeted-scans plugin (scans wait for LibraryMonitorDelay)"
    );
    assert_eq!(info.version.as_deref(), Some("10.11.2"));
    assert_eq!(info.libraries[0].locations, ["/tv", "/tv2"]);

    // Emby's System/Info has no ProductName.
    let server = MockServer::start().await;
    Mock::given(path("/emby/System/Info"))
        .and(header("X-Emby-Token", TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ServerName": "nas", "Version": "4.8.10.0"})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/emby/Library/VirtualFolders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let info = emby(&format!("{}/emby", server.uri()))
        .check()
        .await
        .expect("check");
    assert_eq!(info.server, "Emby Server \"nas\"");
    assert!(info.libraries.is_empty());
}

#[tokio::test]
async fn check_with_a_wrong_key_names_the_reachable_server() {
    let server = MockServer::start().await;
    Mock::given(path("/System/Info"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(path("/System/Info/Public"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ServerName": "jf", "Version": "12.0.0"})),
        )
        .mount(&server)
        .await;
    let err = jellyfin(&server.uri()).check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert_eq!(err.context_value("server"), Some("jf"));
    assert_eq!(err.context_value("version"), Some("12.0.0"));
}

fn parse_updates(request: &Request) -> Vec<ScanRequest> {
    let body: Value = request.body_json().unwrap_or(Value::Null);
    let updates = body["Updates"].as_array().cloned().unwrap_or_default();
    updates
        .iter()
        .map(|u| {
            let path = u["Path"].as_str().unwrap_or_default().to_owned();
            let update = match u["UpdateType"].as_str() {
                Some("Created") => Update::Created,
                Some("Deleted") => Update::Deleted,
                _ => Update::Modified,
            };
            // The protocol does not say; the conformance requests end files in `.mkv`.
            let is_dir = !path.ends_with(".mkv");
            ScanRequest {
                path,
                update,
                is_dir,
            }
        })
        .collect()
}

fn conformance_requests() -> Vec<ScanRequest> {
    vec![
        req("/lib/Film & Co #1 (2020)/film.mkv", Update::Created, false),
        req("/lib/电影 🎬 100%+", Update::Modified, true),
        req("/lib/a+b 50%.mkv", Update::Deleted, false),
        req("/lib/Show/S01", Update::Created, true),
        req("/lib/Show/S01/e1.mkv", Update::Modified, false),
    ]
}

async fn conformance_server(
    auth: (&'static str, &'static str),
) -> (MockServer, Arc<Mutex<Vec<ScanRequest>>>) {
    let server = MockServer::start().await;
    Mock::given(path("/Library/VirtualFolders"))
        .and(header(auth.0, auth.1))
        .respond_with(ResponseTemplate::new(200).set_body_json(virtual_folders(&[(
            "a",
            "Lib",
            &["/lib"],
        )])))
        .mount(&server)
        .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .and(header(auth.0, auth.1))
        .respond_with(Recorder {
            seen: Arc::clone(&seen),
            parse: parse_updates,
            template: ResponseTemplate::new(204),
        })
        .mount(&server)
        .await;
    (server, seen)
}

#[tokio::test]
async fn emby_conformance() {
    let (logs, _guard) = Logs::capture();
    let (server, seen) = conformance_server(("X-Emby-Token", TOKEN)).await;
    let mut cfg = config(&server.uri());
    cfg.max_batch = 2;
    let target = EmbyTarget::new(cfg).expect("config");
    let received = || seen.lock().map(|s| s.clone()).unwrap_or_default();
    pps_core::testing::target_conformance(&target, conformance_requests(), &received).await;
    assert_eq!(
        count(&server, "/Library/Media/Updated").await,
        3,
        "5 requests in batches of 2"
    );
    logs.assert_no_token();
}

#[tokio::test]
async fn jellyfin_conformance() {
    let (logs, _guard) = Logs::capture();
    let (_server, seen) = conformance_server(("Authorization", JELLYFIN_AUTH)).await;
    let target = jellyfin(&_server.uri());
    let received = || seen.lock().map(|s| s.clone()).unwrap_or_default();
    pps_core::testing::target_conformance(&target, conformance_requests(), &received).await;
    logs.assert_no_token();
}

/// An Emby or Jellyfin server that answers `answer`: 503 to scans, 401 to everything,
/// or libraries that do not hold `/tv`.
async fn answering(answer: pps_core::testing::Answer, jellyfin: bool) -> MockServer {
    use pps_core::testing::Answer;
    let server = MockServer::start().await;
    let libs: &[(&str, &str, &[&str])] = match answer {
        Answer::NoLibrary => &[("1", "Movies", &["/movies"])],
        _ => &[("1", "TV", &["/tv"])],
    };
    if answer == Answer::Refused {
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        return server;
    }
    if jellyfin {
        mount_jellyfin_folders(&server, libs).await;
    } else {
        mount_emby_folders(&server, libs).await;
    }
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn emby_and_jellyfin_failures_are_what_the_trait_promises() {
    use pps_core::ScanTarget;
    for jf in [false, true] {
        let servers = Arc::new(Mutex::new(Vec::new()));
        pps_core::testing::target_outcome_conformance(
            |answer| {
                let servers = servers.clone();
                async move {
                    let server = answering(answer, jf).await;
                    let t: Arc<dyn ScanTarget> = if jf {
                        Arc::new(jellyfin(&server.uri()))
                    } else {
                        Arc::new(emby(&server.uri()))
                    };
                    servers.lock().unwrap().push(server);
                    Some(t)
                }
            },
            req("/tv/Show/S01/e1.mkv", Update::Created, false),
        )
        .await;
    }
}
