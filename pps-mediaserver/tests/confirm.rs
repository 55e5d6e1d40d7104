//! Confirming that Plex, Emby and Jellyfin indexed a scan, against stand-ins that
//! answer as each server documents: the lookups' method, path, headers and query are
//! asserted, and each outcome (found, never there, another case on Windows, a second
//! version, removed, a server down) and each remedy has a test.

use crate::common::{TOKEN, refused_url};
use pps_core::{ConfirmRequest, ErrorKind, Remedy, ScanRequest, ScanTarget, Timestamp, Update};
use pps_mediaserver::{EmbyConfig, EmbyTarget, JellyfinTarget, PlexConfig, PlexTarget};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const JELLYFIN_AUTH: &str = "MediaBrowser Token=\"tok-SECRET-4242\"";
const SENT: i64 = 1_800_000_000;

fn ask(path: &str, update: Update, is_dir: bool) -> ConfirmRequest {
    ConfirmRequest {
        path: path.into(),
        update,
        is_dir,
        since: Timestamp::from_secs(SENT),
        known: Vec::new(),
    }
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

// ---------------------------------------------------------------- Plex

fn plex(url: &str) -> PlexTarget {
    let mut config = PlexConfig::new(url, TOKEN);
    config.pacing = Duration::ZERO;
    config.timeout = Duration::from_secs(5);
    PlexTarget::new(config).expect("config")
}

async fn plex_sections(server: &MockServer, refreshing: bool) {
    Mock::given(method("GET"))
        .and(path("/library/sections"))
        .and(header("X-Plex-Token", TOKEN))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"MediaContainer": {
            "Directory": [
                {"key": "1", "title": "TV", "type": "show", "refreshing": refreshing,
                 "Location": [{"id": 1, "path": "/tv"}]},
                {"key": "2", "title": "Films", "type": "movie", "refreshing": false,
                 "Location": [{"id": 2, "path": "O:\\Films"}]},
            ]}})),
        )
        .mount(server)
        .await;
}

fn episode(key: &str, show: &str, s: i64, e: i64, files: &[&[&str]]) -> Value {
    json!({"ratingKey": key, "type": "episode", "title": "Ep", "grandparentTitle": show,
           "parentIndex": s, "index": e,
           "Media": files.iter().map(|parts| json!({"Part": parts.iter().map(|f| json!({"file": f})).collect::<Vec<_>>()})).collect::<Vec<_>>()})
}

async fn plex_saved(server: &MockServer, section: &str, items: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(format!("/library/sections/{section}/all")))
        .and(header("X-Plex-Token", TOKEN))
        .and(header("Accept", "application/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"MediaContainer": {"Metadata": items}})),
        )
        .mount(server)
        .await;
}

#[tokio::test]
async fn plex_finds_a_new_episode_by_part_file_in_any_version_with_one_query_per_section() {
    let server = MockServer::start().await;
    plex_sections(&server, false).await;
    plex_saved(
        &server,
        "1",
        vec![
            episode("11", "Other", 1, 1, &[&["/tv/Other/e1.mkv"]]),
            // Two versions: the new file is the second version's part.
            episode(
                "12",
                "Show",
                1,
                2,
                &[&["/tv/Show/S01/e2.1080p.mkv"], &["/tv/Show/S01/e2.mkv"]],
            ),
        ],
    )
    .await;
    let t = plex(&server.uri());
    let out = t
        .confirm(&[
            ask("/tv/Show/S01/e2.mkv", Update::Created, false),
            ask("/tv/Show/S01/e3.mkv", Update::Created, false),
            ask("/tv/Show 2", Update::Created, true),
        ])
        .await;
    let found = out[0].as_ref().expect("lookup");
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id, "12");
    assert_eq!(found.items[0].title, "Show S01E02");
    assert!(
        out[1].as_ref().expect("lookup").items.is_empty(),
        "not indexed yet"
    );
    assert!(
        out[2].as_ref().expect("lookup").items.is_empty(),
        "/tv/Show is not inside /tv/Show 2"
    );
    let asked = requests_to(&server, "/library/sections/1/all").await;
    assert_eq!(asked.len(), 1, "one query answers every path of a section");
    let q = asked[0].url.query().unwrap_or_default().to_owned();
    assert!(q.contains("type=4"), "episodes of a show section: {q}");
    assert!(q.contains("sort=updatedAt%3Adesc"), "{q}");
    assert!(
        q.contains(&format!("updatedAt%3E%3E={}", SENT - 60)),
        "saved since the scan, `>>` encoded: {q}"
    );
    assert!(q.contains("X-Plex-Container-Size=200"), "{q}");
    assert!(!q.contains(TOKEN), "the token travels in the header");
}

#[tokio::test]
async fn plex_on_windows_matches_another_case() {
    let server = MockServer::start().await;
    plex_sections(&server, false).await;
    plex_saved(
        &server,
        "2",
        vec![
            json!({"ratingKey": 5, "type": "movie", "title": "Dune", "year": 2021,
                    "Media": [{"Part": [{"file": "o:\\films\\dune (2021)\\DUNE.mkv"}]}]}),
        ],
    )
    .await;
    let out = plex(&server.uri())
        .confirm(&[ask(
            "O:\\Films\\Dune (2021)\\Dune.mkv",
            Update::Created,
            false,
        )])
        .await;
    let item = &out[0].as_ref().expect("lookup").items[0];
    assert_eq!(
        (item.id.as_str(), item.title.as_str()),
        ("5", "Dune (2021)")
    );
    let q = requests_to(&server, "/library/sections/2/all").await[0]
        .url
        .query()
        .unwrap_or_default()
        .to_owned();
    assert!(q.contains("type=1"), "movies: {q}");
}

#[tokio::test]
async fn plex_confirms_a_deletion_by_the_id_seen_indexed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/library/metadata/55"))
        .and(header("X-Plex-Token", TOKEN))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/metadata/56"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"MediaContainer": {"Metadata": [
            {"ratingKey": "56", "type": "movie", "title": "Trashed", "deletedAt": 1_800_000_100}]}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/library/metadata/57"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"MediaContainer": {"Metadata": [
            {"ratingKey": "57", "type": "movie", "title": "Still here"}]}})),
        )
        .mount(&server)
        .await;
    let t = plex(&server.uri());
    let mut gone = ask("/tv/Show/e1.mkv", Update::Deleted, false);
    gone.known = vec!["55".into(), "56".into()];
    let mut kept = ask("/tv/Show/e2.mkv", Update::Deleted, false);
    kept.known = vec!["57".into()];
    let unknown = ask("/tv/Show/e3.mkv", Update::Deleted, false);
    let out = t.confirm(&[gone, kept, unknown]).await;
    assert!(
        out[0].as_ref().expect("lookup").items.is_empty(),
        "404 and trashed both mean removed"
    );
    assert_eq!(
        out[1].as_ref().expect("lookup").items[0].title,
        "Still here"
    );
    let err = out[2].as_ref().expect_err("no id, no lookup by path");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn plex_scans_the_folder_again_only_once_the_section_is_idle() {
    let busy = MockServer::start().await;
    plex_sections(&busy, true).await;
    let r = plex(&busy.uri())
        .remedy(&ask("/tv/Show/S01/e2.mkv", Update::Created, false))
        .await
        .expect("remedy");
    assert!(
        matches!(r, Remedy::Busy(ref why) if why.contains("\"TV\" is still scanning")),
        "{r:?}"
    );
    assert!(
        requests_to(&busy, "/library/sections/1/refresh")
            .await
            .is_empty()
    );

    let idle = MockServer::start().await;
    plex_sections(&idle, false).await;
    Mock::given(method("GET"))
        .and(path("/library/sections/1/refresh"))
        .and(query_param("path", "/tv/Show/S01"))
        .and(header("X-Plex-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&idle)
        .await;
    let r = plex(&idle.uri())
        .remedy(&ask("/tv/Show/S01/e2.mkv", Update::Created, false))
        .await
        .expect("remedy");
    assert!(
        matches!(r, Remedy::Done(ref what) if what.contains("/tv/Show/S01")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_server_down_while_confirming_is_a_temporary_failure() {
    let url = refused_url();
    for out in [
        plex(&url)
            .confirm(&[ask("/tv/a.mkv", Update::Created, false)])
            .await,
        emby(&url)
            .confirm(&[ask("/tv/a.mkv", Update::Created, false)])
            .await,
        jellyfin(&url)
            .confirm(&[ask("/tv/a.mkv", Update::Created, false)])
            .await,
    ] {
        let err = out[0].as_ref().expect_err("down");
        assert!(err.is_temporary(), "{err}");
        assert!(!err.to_string().contains(TOKEN));
    }
}

// ---------------------------------------------------------------- Emby

fn config(url: &str) -> EmbyConfig {
    let mut config = EmbyConfig::new(url, TOKEN);
    config.timeout = Duration::from_secs(5);
    config
}

fn emby(url: &str) -> EmbyTarget {
    EmbyTarget::new(config(url)).expect("config")
}

fn jellyfin(url: &str) -> JellyfinTarget {
    JellyfinTarget::new(config(url)).expect("config")
}

async fn folders(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/Library/VirtualFolders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"Name": "TV", "Locations": ["/tv"], "ItemId": "lib1"},
            {"Name": "Films", "Locations": ["/films"], "ItemId": "lib2"},
        ])))
        .mount(server)
        .await;
}

fn item(id: &str, kind: &str, name: &str, p: &str) -> Value {
    json!({"Id": id, "Type": kind, "Name": name, "Path": p, "SeriesName": "Show",
           "ParentIndexNumber": 1, "IndexNumber": 2, "MediaSources": [{"Path": p}]})
}

#[tokio::test]
async fn emby_finds_new_items_in_one_query_per_library_since_the_scan() {
    let server = MockServer::start().await;
    folders(&server).await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .and(header("X-Emby-Token", TOKEN))
        .and(query_param("ParentId", "lib1"))
        .and(query_param("Recursive", "true"))
        .and(query_param("MinDateLastSaved", "2027-01-15T07:59:00Z"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            item("e2", "Episode", "Ep", "/tv/Show/S01/e2.mkv"),
            item("s", "Series", "Show", "/tv/Show"),
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let out = emby(&server.uri())
        .confirm(&[
            ask("/tv/Show/S01/e2.mkv", Update::Created, false),
            ask("/tv/Show/S01/e3.mkv", Update::Created, false),
        ])
        .await;
    let found = &out[0].as_ref().expect("lookup").items;
    assert_eq!(
        (found[0].id.as_str(), found[0].title.as_str()),
        ("e2", "Show S01E02")
    );
    assert!(
        out[1].as_ref().expect("lookup").items.is_empty(),
        "never there"
    );
}

#[tokio::test]
async fn emby_confirms_a_deletion_by_path_and_rechecks_the_path() {
    let server = MockServer::start().await;
    // The path filter answers an unrelated item (as an unfiltered list would): it
    // must not count as present.
    Mock::given(method("GET"))
        .and(path("/Items"))
        .and(query_param("Path", "/tv/Show/S01/e2.mkv"))
        .and(header("X-Emby-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            item("x", "Episode", "Other", "/tv/Other/e9.mkv")]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .and(query_param("Path", "/tv/Show/S01/e3.mkv"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            item("e3", "Episode", "Ep", "/tv/Show/S01/e3.mkv")]})))
        .mount(&server)
        .await;
    let out = emby(&server.uri())
        .confirm(&[
            ask("/tv/Show/S01/e2.mkv", Update::Deleted, false),
            ask("/tv/Show/S01/e3.mkv", Update::Deleted, false),
        ])
        .await;
    assert!(out[0].as_ref().expect("lookup").items.is_empty(), "removed");
    assert_eq!(
        out[1].as_ref().expect("lookup").items[0].id,
        "e3",
        "still there"
    );
}

#[tokio::test]
async fn emby_refreshes_the_nearest_item_it_knows() {
    let server = MockServer::start().await;
    folders(&server).await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .and(query_param("Path", "/tv/Show/S02"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": []})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .and(query_param("Path", "/tv/Show"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            item("series9", "Series", "Show", "/tv/Show")]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Items/series9/Refresh"))
        .and(header("X-Emby-Token", TOKEN))
        .and(query_param("Recursive", "true"))
        .and(query_param("MetadataRefreshMode", "Default"))
        .and(query_param("ReplaceAllMetadata", "false"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let r = emby(&server.uri())
        .remedy(&ask("/tv/Show/S02/e1.mkv", Update::Created, false))
        .await
        .expect("remedy");
    assert_eq!(
        r,
        Remedy::Done("refreshed \"Show\", the nearest item Emby knows".into())
    );
}

// ---------------------------------------------------------------- Jellyfin

async fn plugins(server: &MockServer, installed: bool) {
    let list = if installed {
        json!([{"Name": "TargetedScan", "Version": "1.0.0.0", "Id": "x", "Status": "Active"}])
    } else {
        json!([{"Name": "TMDb", "Version": "10.11.0.0", "Id": "y", "Status": "Active"}])
    };
    Mock::given(method("GET"))
        .and(path("/Plugins"))
        .and(header("Authorization", JELLYFIN_AUTH))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .mount(server)
        .await;
}

#[tokio::test]
async fn jellyfin_with_the_plugin_scans_by_path_and_its_answer_is_the_confirmation() {
    let server = MockServer::start().await;
    folders(&server).await;
    plugins(&server, true).await;
    Mock::given(method("POST"))
        .and(path("/Library/ScanPaths"))
        .and(header("Authorization", JELLYFIN_AUTH))
        .and(body_json(json!({"Paths": ["/tv/Show/S01/e2.mkv", "/tv/New/e1.mkv", "/tv/Typo/e1.mkv"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Results": [
            {"ItemId": "abc", "ItemName": "Episode 2", "Status": "Created", "Path": "/tv/Show/S01/e2.mkv"},
            {"ItemId": "", "ItemName": "", "Status": "ParentNotFound", "Path": "/tv/New/e1.mkv", "Message": "no parent"},
            {"ItemId": "", "Status": "PathNotFound", "Path": "/tv/Typo/e1.mkv"},
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .and(body_json(
            json!({"Updates": [{"Path": "/tv/New/e1.mkv", "UpdateType": "Created"}]}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .named("what the plugin could not place goes to Media/Updated")
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": []})))
        .mount(&server)
        .await;
    let t = jellyfin(&server.uri());
    let scans: Vec<ScanRequest> = ["/tv/Show/S01/e2.mkv", "/tv/New/e1.mkv", "/tv/Typo/e1.mkv"]
        .iter()
        .map(|p| ScanRequest {
            path: (*p).into(),
            update: Update::Created,
            is_dir: false,
        })
        .collect();
    let results = t.scan(&scans).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let out = t
        .confirm(&[
            ask("/tv/Show/S01/e2.mkv", Update::Created, false),
            ask("/tv/Typo/e1.mkv", Update::Created, false),
        ])
        .await;
    let found = &out[0].as_ref().expect("lookup").items[0];
    assert_eq!(
        (found.id.as_str(), found.title.as_str()),
        ("abc", "Episode 2")
    );
    let typo = out[1].as_ref().expect("lookup");
    assert!(typo.items.is_empty());
    assert!(
        typo.note
            .as_deref()
            .is_some_and(|n| n.contains("PathNotFound")),
        "the plugin's answer is kept for the stuck reason: {typo:?}"
    );
    let lookups = requests_to(&server, "/Items").await;
    assert_eq!(
        lookups.len(),
        1,
        "only the path the plugin did not confirm is looked up"
    );
}

#[tokio::test]
async fn jellyfin_reads_the_plugin_answer_from_404_and_500_bodies() {
    let server = MockServer::start().await;
    folders(&server).await;
    plugins(&server, true).await;
    Mock::given(method("POST"))
        .and(path("/Library/ScanPaths"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"Results": [
            {"ItemId": "", "Status": "Removed", "Path": "/tv/Show/S01/e1.mkv"}]})))
        .mount(&server)
        .await;
    let t = jellyfin(&server.uri());
    let r = t
        .scan(&[ScanRequest {
            path: "/tv/Show/S01/e1.mkv".into(),
            update: Update::Deleted,
            is_dir: false,
        }])
        .await;
    assert!(r[0].is_ok(), "a 500 carrying `Removed` is an answer: {r:?}");
    let out = t
        .confirm(&[ask("/tv/Show/S01/e1.mkv", Update::Deleted, false)])
        .await;
    assert!(
        out[0].as_ref().expect("lookup").items.is_empty(),
        "removed, no lookup needed"
    );
    assert!(requests_to(&server, "/Items").await.is_empty());
    assert!(
        requests_to(&server, "/Library/Media/Updated")
            .await
            .is_empty()
    );

    // A 404 without the plugin's JSON: the route is gone; Media/Updated instead.
    let gone = MockServer::start().await;
    folders(&gone).await;
    plugins(&gone, true).await;
    Mock::given(method("POST"))
        .and(path("/Library/ScanPaths"))
        .respond_with(ResponseTemplate::new(404).set_body_string("Not Found"))
        .mount(&gone)
        .await;
    Mock::given(method("POST"))
        .and(path("/Library/Media/Updated"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&gone)
        .await;
    let r = jellyfin(&gone.uri())
        .scan(&[ScanRequest {
            path: "/tv/a.mkv".into(),
            update: Update::Created,
            is_dir: false,
        }])
        .await;
    assert!(r[0].is_ok(), "{r:?}");
}

#[tokio::test]
async fn jellyfin_without_the_plugin_matches_saved_items_on_path_and_versions() {
    let server = MockServer::start().await;
    folders(&server).await;
    plugins(&server, false).await;
    Mock::given(method("GET"))
        .and(path("/Items"))
        .and(header("Authorization", JELLYFIN_AUTH))
        .and(query_param("ParentId", "lib2"))
        .and(query_param("Recursive", "true"))
        .and(query_param("Fields", "Path,MediaSources"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            // Jellyfin ignores unknown filters: an unrelated item must not confirm.
            {"Id": "m1", "Type": "Movie", "Name": "Other", "Path": "/films/Other/o.mkv"},
            // The new file is the second version of an existing film.
            {"Id": "m2", "Type": "Movie", "Name": "Dune", "ProductionYear": 2021,
             "Path": "/films/Dune (2021)/Dune - 1080p.mkv",
             "MediaSources": [{"Path": "/films/Dune (2021)/Dune - 1080p.mkv"},
                              {"Path": "/films/Dune (2021)/Dune - 2160p.mkv"}]},
        ]})))
        .mount(&server)
        .await;
    let out = jellyfin(&server.uri())
        .confirm(&[
            ask(
                "/films/Dune (2021)/Dune - 2160p.mkv",
                Update::Created,
                false,
            ),
            ask("/films/Arrival (2016)/Arrival.mkv", Update::Created, false),
        ])
        .await;
    let dune = &out[0].as_ref().expect("lookup").items[0];
    assert_eq!(
        (dune.id.as_str(), dune.title.as_str()),
        ("m2", "Dune (2021)")
    );
    assert!(out[1].as_ref().expect("lookup").items.is_empty());
    // Jellyfin has no path lookup: a deletion with no id seen indexed cannot be checked.
    let out = jellyfin(&server.uri())
        .confirm(&[ask("/films/Other/o.mkv", Update::Deleted, false)])
        .await;
    assert_eq!(
        out[0].as_ref().expect_err("unsupported").kind(),
        ErrorKind::Unsupported
    );
}

#[tokio::test]
async fn jellyfin_check_says_whether_the_plugin_is_there() {
    for installed in [true, false] {
        let server = MockServer::start().await;
        folders(&server).await;
        plugins(&server, installed).await;
        Mock::given(method("GET"))
            .and(path("/System/Info"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"ServerName": "nas", "Version": "10.11.2", "ProductName": "Jellyfin Server"}),
            ))
            .mount(&server)
            .await;
        let info = jellyfin(&server.uri()).check().await.expect("check");
        let expected = if installed {
            "targeted-scans plugin installed"
        } else {
            "no targeted-scans plugin"
        };
        assert!(info.server.contains(expected), "{}", info.server);
    }
}
