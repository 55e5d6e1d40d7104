//! The Plex target against a mock Plex Media Server.

use crate::common::{Logs, NoHeader, RawQuery, Recorder, TOKEN, dropping_server, refused_url, req};
use pps_core::{ErrorKind, ScanRequest, ScanTarget, Update};
use pps_mediaserver::{PlexConfig, PlexTarget};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A target with no pacing (so no test waits) and a long section TTL.
fn target(url: &str) -> PlexTarget {
    let mut config = PlexConfig::new(url, TOKEN);
    config.pacing = Duration::ZERO;
    config.sections_ttl = Duration::from_secs(3600);
    config.timeout = Duration::from_secs(5);
    PlexTarget::new(config).expect("valid config")
}

/// The JSON of `/library/sections` for `(key, title, locations)`.
fn sections(list: &[(&str, &str, &[&str])]) -> Value {
    let dirs: Vec<Value> = list
        .iter()
        .map(|(key, title, locs)| {
            json!({
                "key": key, "title": title, "type": "show", "refreshing": false,
                "Location": locs.iter().enumerate()
                    .map(|(i, p)| json!({"id": i, "path": p})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"MediaContainer": {"size": dirs.len(), "Directory": dirs}})
}

/// Mounts `/library/sections`, checking the token header and JSON accept header.
async fn mount_sections(server: &MockServer, list: &[(&str, &str, &[&str])]) {
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .and(header("X-Plex-Token", TOKEN))
        .and(header("Accept", "application/json"))
        .and(RawQuery(None))
        .respond_with(ResponseTemplate::new(200).set_body_json(sections(list)))
        .mount(server)
        .await;
}

/// Expects exactly `times` refreshes of section `key` with the raw query `query`,
/// token in the header, never in the URL, and no `force`.
async fn expect_refresh(server: &MockServer, key: &str, query: &'static str, times: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/library/sections/{key}/refresh")))
        .and(header("X-Plex-Token", TOKEN))
        .and(header("Accept", "application/json"))
        .and(RawQuery(Some(query)))
        .respond_with(ResponseTemplate::new(200))
        .expect(times)
        .named(format!("refresh of section {key} with {query}"))
        .mount(server)
        .await;
}

/// Every request the server got, as `(method, path, raw query)`.
async fn requests(server: &MockServer) -> Vec<(String, String, Option<String>)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_owned(),
                r.url.query().map(str::to_owned),
            )
        })
        .collect()
}

fn count(reqs: &[(String, String, Option<String>)], p: &str) -> usize {
    reqs.iter().filter(|(_, rp, _)| rp == p).count()
}

#[tokio::test]
async fn odd_characters_are_form_encoded_in_the_query() {
    let (logs, _guard) = Logs::capture();
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/data/tv"])]).await;
    expect_refresh(
        &server,
        "1",
        "path=%2Fdata%2Ftv%2FPrinces+%26+The+Kingdom+%231+100%25%2B+%E7%94%B5%E5%BD%B1+S01",
        1,
    )
    .await;
    let plex = target(&server.uri());
    let results = plex
        .scan(&[req(
            "/data/tv/Princes & The Kingdom #1 100%+ 电影 S01",
            Update::Modified,
            true,
        )])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    server.verify().await;
    let text = logs.assert_no_token();
    assert!(
        text.contains("/library/sections/1/refresh"),
        "the refresh is logged:\n{text}"
    );
}

#[tokio::test]
async fn a_file_scans_its_folder_and_force_is_never_sent() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/data/tv"])]).await;
    // Two files of one folder in one call: one refresh of that folder.
    expect_refresh(&server, "1", "path=%2Fdata%2Ftv%2FShow%2FS01", 1).await;
    let plex = target(&server.uri());
    let results = plex
        .scan(&[
            req("/data/tv/Show/S01/e01.mkv", Update::Created, false),
            req("/data/tv/Show/S01/e02.mkv", Update::Deleted, false),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    server.verify().await;
}

#[tokio::test]
async fn a_folder_in_two_sections_scans_both_and_no_prefix_lookalike() {
    let server = MockServer::start().await;
    mount_sections(
        &server,
        &[
            ("1", "TV", &["/media/tv"]),
            ("2", "TV 4K", &["/other", "/media/tv/"]),
            ("3", "TV lookalike", &["/media/tv-4k"]),
        ],
    )
    .await;
    expect_refresh(&server, "1", "path=%2Fmedia%2Ftv%2FShow", 1).await;
    expect_refresh(&server, "2", "path=%2Fmedia%2Ftv%2FShow", 1).await;
    let plex = target(&server.uri());
    let results = plex
        .scan(&[req("/media/tv/Show", Update::Created, true)])
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    server.verify().await;
    assert_eq!(
        count(&requests(&server).await, "/library/sections/3/refresh"),
        0
    );
}

#[tokio::test]
async fn nested_locations_and_the_section_root_guard() {
    let server = MockServer::start().await;
    mount_sections(
        &server,
        &[("1", "All", &["/media"]), ("2", "TV", &["/media/tv"])],
    )
    .await;
    // A folder deep in both: both sections.
    expect_refresh(&server, "1", "path=%2Fmedia%2Ftv%2FShow%2FS01", 1).await;
    expect_refresh(&server, "2", "path=%2Fmedia%2Ftv%2FShow%2FS01", 1).await;
    // A file directly in TV's root: its folder is the root of TV (never scanned for a
    // change below it) but an ordinary folder of All.
    expect_refresh(&server, "1", "path=%2Fmedia%2Ftv", 1).await;
    expect_refresh(&server, "2", "path=%2Fmedia%2Ftv", 0).await;
    let plex = target(&server.uri());
    let results = plex
        .scan(&[
            req("/media/tv/Show/S01", Update::Modified, true),
            req("/media/tv/readme.txt", Update::Modified, false),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    server.verify().await;
}

#[tokio::test]
async fn a_file_directly_in_a_sections_root_is_refused_a_deleted_folder_is_scanned_as_itself() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "Movies", &["/movies"])]).await;
    // A show or film folder deleted from the section root: scanned as its own path, so
    // Plex drops it (its parent is the whole section, never scanned for it).
    expect_refresh(&server, "1", "path=%2Fmovies%2FOld+Film", 1).await;
    let plex = target(&server.uri());
    let results = plex
        .scan(&[
            req("/movies/film.mkv", Update::Created, false),
            req("/movies/Old Film", Update::Deleted, true),
        ])
        .await;
    let err = results[0]
        .as_ref()
        .expect_err("a section root is never scanned for a file in it");
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(!err.is_temporary());
    assert!(err.message().contains("Movies"), "{err}");
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(
        requests(&server)
            .await
            .iter()
            .all(|(_, p, q)| !p.ends_with("/refresh") || q.as_deref() != Some("path=%2Fmovies")),
        "the section root itself is never scanned for a change below it"
    );
    // The root itself, asked for explicitly, is scanned.
    expect_refresh(&server, "1", "path=%2Fmovies", 1).await;
    assert!(plex.scan(&[req("/movies", Update::Modified, true)]).await[0].is_ok());
    server.verify().await;
}

#[tokio::test]
async fn a_windows_server_gets_windows_paths() {
    let server = MockServer::start().await;
    mount_sections(
        &server,
        &[
            ("4", "TV", &["D:\\Media\\TV"]),
            ("5", "TV2", &["D:\\Media\\TV2"]),
        ],
    )
    .await;
    expect_refresh(
        &server,
        "4",
        "path=D%3A%5CMedia%5CTV%5CShow+%26+Co%5CSeason+1",
        1,
    )
    .await;
    // Windows compares without case: the mapped path may differ from the location.
    expect_refresh(&server, "4", "path=d%3A%5Cmedia%5Ctv%5COther", 1).await;
    let plex = target(&server.uri());
    let results = plex
        .scan(&[
            req(
                "D:\\Media\\TV\\Show & Co\\Season 1\\ep 1.mkv",
                Update::Created,
                false,
            ),
            req("d:\\media\\tv\\Other", Update::Created, true),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    server.verify().await;
    assert_eq!(
        count(&requests(&server).await, "/library/sections/5/refresh"),
        0
    );
}

#[tokio::test]
async fn a_section_added_after_start_is_found_without_restart() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sections(&[("1", "TV", &["/tv"])])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_sections(
        &server,
        &[("1", "TV", &["/tv"]), ("2", "Movies", &["/movies"])],
    )
    .await;
    expect_refresh(&server, "1", "path=%2Ftv%2FShow", 1).await;
    expect_refresh(&server, "2", "path=%2Fmovies%2FFilm", 1).await;
    let plex = target(&server.uri());
    assert!(plex.scan(&[req("/tv/Show", Update::Created, true)]).await[0].is_ok());
    assert_eq!(
        plex.libraries().await.expect("libraries").len(),
        1,
        "cached"
    );
    assert!(
        plex.scan(&[req("/movies/Film", Update::Created, true)])
            .await[0]
            .is_ok()
    );
    assert_eq!(
        count(&requests(&server).await, "/library/sections"),
        2,
        "one re-read on the miss"
    );
    assert_eq!(plex.libraries().await.expect("libraries").len(), 2);

    // Paths in no section: one re-read for the whole call, then a permanent refusal.
    let results = plex
        .scan(&[
            req("/music/a", Update::Created, true),
            req("/music/b", Update::Created, true),
        ])
        .await;
    for r in &results {
        let err = r.as_ref().expect_err("no section holds /music");
        assert_eq!(err.kind(), ErrorKind::Rejected);
        assert!(!err.is_temporary(), "parked, not retried forever");
        assert!(
            err.context_value("path")
                .is_some_and(|p| p.starts_with("/music/"))
        );
    }
    assert_eq!(count(&requests(&server).await, "/library/sections"), 3);
    server.verify().await;
}

#[tokio::test]
async fn sections_are_re_read_when_their_ttl_runs_out() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/tv"])]).await;
    expect_refresh(&server, "1", "path=%2Ftv%2FShow", 2).await;
    let mut config = PlexConfig::new(server.uri(), TOKEN);
    config.pacing = Duration::ZERO;
    config.sections_ttl = Duration::ZERO;
    let plex = PlexTarget::new(config).expect("config");
    for _ in 0..2 {
        assert!(plex.scan(&[req("/tv/Show", Update::Created, true)]).await[0].is_ok());
    }
    assert_eq!(count(&requests(&server).await, "/library/sections"), 2);
    server.verify().await;
}

#[tokio::test]
async fn a_404_re_reads_the_sections_once() {
    let server = MockServer::start().await;
    // The section was re-created under a new key.
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sections(&[("1", "TV", &["/tv"])])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_sections(&server, &[("7", "TV", &["/tv"])]).await;
    Mock::given(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    expect_refresh(&server, "7", "path=%2Ftv%2FShow", 1).await;
    let plex = target(&server.uri());
    let results = plex.scan(&[req("/tv/Show", Update::Created, true)]).await;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(count(&requests(&server).await, "/library/sections"), 2);
    server.verify().await;
}

#[tokio::test]
async fn a_404_that_survives_the_re_read_is_retried_later() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/tv"])]).await;
    Mock::given(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(404))
        .expect(2)
        .mount(&server)
        .await;
    let plex = target(&server.uri());
    let err = plex
        .scan(&[req("/tv/Show", Update::Created, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.is_temporary(), "{err}");
    assert_eq!(err.context_value("section"), Some("1"));
    server.verify().await;
}

#[tokio::test]
async fn a_section_gone_after_a_404_parks_the_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sections(&[("1", "TV", &["/tv"])])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_sections(&server, &[]).await;
    Mock::given(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let plex = target(&server.uri());
    let err = plex
        .scan(&[req("/tv/Show", Update::Created, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(!err.is_temporary());
    server.verify().await;
}

#[tokio::test]
async fn unauthorized_is_permanent_with_a_hint_and_never_shows_the_token() {
    let (logs, _guard) = Logs::capture();
    let server = MockServer::start().await;
    // Every endpoint refuses the token (and echoes it, as a careless proxy might).
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("bad token {TOKEN}")))
        .mount(&server)
        .await;
    let plex = target(&server.uri());
    let results = plex
        .scan(&[
            req("/tv/a", Update::Created, true),
            req("/tv/b", Update::Created, true),
        ])
        .await;
    assert_eq!(results.len(), 2);
    for r in &results {
        let err = r.as_ref().expect_err("401");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_temporary());
        let shown = err.to_string();
        assert!(shown.contains("admin"), "hint: {shown}");
        assert!(
            !shown.contains(TOKEN),
            "the echoed token is scrubbed: {shown}"
        );
        assert!(shown.contains("bad token ***"), "{shown}");
    }
    let err = plex.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!format!("{err} {err:?} {plex:?}").contains(TOKEN));
    logs.assert_no_token();
}

#[tokio::test]
async fn a_401_on_the_refresh_itself_is_permanent() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/tv"])]).await;
    Mock::given(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let plex = target(&server.uri());
    let err = plex
        .scan(&[req("/tv/a", Update::Created, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.is_temporary());
    assert_eq!(err.context_value("operation"), Some("refresh"));
}

#[tokio::test]
async fn server_errors_are_temporary() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/tv"])]).await;
    Mock::given(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(503).set_body_string("starting up"))
        .mount(&server)
        .await;
    let plex = target(&server.uri());
    let err = plex
        .scan(&[req("/tv/a", Update::Created, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary());
    assert_eq!(err.context_value("status"), Some("503"));
    assert!(err.message().contains("starting up"), "{err}");
}

#[tokio::test]
async fn a_timeout_is_temporary() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/tv"])]).await;
    Mock::given(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(190)))
        .mount(&server)
        .await;
    let mut config = PlexConfig::new(server.uri(), TOKEN);
    config.pacing = Duration::ZERO;
    config.timeout = Duration::from_millis(100);
    let plex = PlexTarget::new(config).expect("config");
    // The sections answer at once; only the refresh runs into the timeout.
    let err = plex
        .scan(&[req("/tv/a", Update::Created, true)])
        .await
        .remove(0)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary());
    assert!(err.message().contains("did not answer within"), "{err}");
    assert_eq!(err.context_value("operation"), Some("refresh"));
}

#[tokio::test]
async fn refused_and_dropped_connections_are_temporary() {
    for url in [refused_url(), dropping_server().await] {
        let plex = target(&url);
        let results = plex.scan(&[req("/tv/a", Update::Created, true)]).await;
        let err = results[0].as_ref().expect_err("no server");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_temporary(), "{err}");
        let check = plex.check().await.unwrap_err();
        assert!(check.is_temporary(), "{check}");
    }
}

#[tokio::test]
async fn a_server_that_wants_post_gets_post() {
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/tv"])]).await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .respond_with(ResponseTemplate::new(405))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/library/sections/1/refresh"))
        .and(header("X-Plex-Token", TOKEN))
        .and(RawQuery(Some("path=%2Ftv%2Fa")))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/library/sections/1/refresh"))
        .and(RawQuery(Some("path=%2Ftv%2Fb")))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let plex = target(&server.uri());
    assert!(plex.scan(&[req("/tv/a", Update::Created, true)]).await[0].is_ok());
    // Remembered: the next refresh goes straight to POST.
    assert!(plex.scan(&[req("/tv/b", Update::Created, true)]).await[0].is_ok());
    server.verify().await;
}

#[tokio::test]
async fn check_reports_name_version_and_sections() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .and(header("X-Plex-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "MediaContainer": {"friendlyName": "nas", "version": "1.41.3.9314", "size": 0}
        })))
        .expect(1)
        .mount(&server)
        .await;
    mount_sections(&server, &[("1", "TV", &["/tv", "/tv2"])]).await;
    let info = target(&server.uri()).check().await.expect("check");
    assert_eq!(info.server, "Plex Media Server \"nas\"");
    assert_eq!(info.version.as_deref(), Some("1.41.3.9314"));
    assert_eq!(info.libraries.len(), 1);
    assert_eq!(info.libraries[0].id, "1");
    assert_eq!(info.libraries[0].name, "TV");
    assert_eq!(info.libraries[0].locations, ["/tv", "/tv2"]);
    server.verify().await;
}

#[tokio::test]
async fn a_path_prefix_in_the_url_is_kept() {
    let server = MockServer::start().await;
    Mock::given(path("/plex/library/sections"))
        .and(NoHeader("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sections(&[("1", "TV", &["/tv"])])))
        .mount(&server)
        .await;
    Mock::given(path("/plex/library/sections/1/refresh"))
        .and(RawQuery(Some("path=%2Ftv%2Fa")))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let plex = target(&format!("{}/plex/", server.uri()));
    assert!(plex.scan(&[req("/tv/a", Update::Created, true)]).await[0].is_ok());
    server.verify().await;
}

fn parse_refresh(request: &Request) -> Vec<ScanRequest> {
    request
        .url
        .query_pairs()
        .filter(|(k, _)| k == "path")
        .map(|(_, v)| ScanRequest {
            path: v.into_owned(),
            update: Update::Modified,
            is_dir: true,
        })
        .collect()
}

#[tokio::test]
async fn conformance() {
    let (logs, _guard) = Logs::capture();
    let server = MockServer::start().await;
    mount_sections(&server, &[("1", "TV", &["/data/tv"])]).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .and(header("X-Plex-Token", TOKEN))
        .respond_with(Recorder {
            seen: Arc::clone(&seen),
            parse: parse_refresh,
            template: ResponseTemplate::new(200),
        })
        .mount(&server)
        .await;
    let plex = target(&server.uri());
    let requests = [
        "/data/tv/Film & Co #1 (2020)",
        "/data/tv/电影 🎬 100%+",
        "/data/tv/a+b 50%/Season 1",
        "/data/tv/plain",
    ]
    .map(|p| req(p, Update::Modified, true))
    .to_vec();
    let received = || seen.lock().map(|s| s.clone()).unwrap_or_default();
    pps_core::testing::target_conformance(&plex, requests, &received).await;
    logs.assert_no_token();
}

#[tokio::test]
async fn plex_failures_are_what_the_trait_promises() {
    use pps_core::ScanTarget;
    use pps_core::testing::Answer;
    let servers = Arc::new(Mutex::new(Vec::new()));
    pps_core::testing::target_outcome_conformance(
        |answer| {
            let servers = servers.clone();
            async move {
                let server = MockServer::start().await;
                match answer {
                    Answer::Refused => {
                        Mock::given(wiremock::matchers::any())
                            .respond_with(ResponseTemplate::new(401))
                            .mount(&server)
                            .await;
                    }
                    Answer::Temporary => {
                        mount_sections(&server, &[("1", "TV", &["/tv"])]).await;
                        Mock::given(method("GET"))
                            .and(path("/library/sections/1/refresh"))
                            .respond_with(ResponseTemplate::new(503))
                            .mount(&server)
                            .await;
                    }
                    Answer::NoLibrary => {
                        mount_sections(&server, &[("1", "Movies", &["/movies"])]).await;
                    }
                }
                let t: Arc<dyn ScanTarget> = Arc::new(target(&server.uri()));
                servers.lock().unwrap().push(server);
                Some(t)
            }
        },
        req("/tv/Show/S01", Update::Modified, true),
    )
    .await;
}
