//! Ask Plex to rescan one folder, in every section that holds it.
//!
//! With `PLEX_URL`, `PLEX_TOKEN` and `PLEX_PATH` set it talks to your server; otherwise
//! it starts a mock Plex (wiremock) that checks the request and prints it.

use pps_core::{ScanRequest, ScanTarget, Update};
use pps_mediaserver::{PlexConfig, PlexTarget};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> pps_core::Result<()> {
    let (url, token, folder, mock) = match (
        std::env::var("PLEX_URL"),
        std::env::var("PLEX_TOKEN"),
        std::env::var("PLEX_PATH"),
    ) {
        (Ok(u), Ok(t), Ok(p)) => (u, t, p, None),
        _ => {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .and(path("/library/sections"))
                .and(header("X-Plex-Token", "example-token"))
                .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "MediaContainer": {"Directory": [
                        {"key": "2", "title": "TV Shows", "type": "show", "Location": [{"id": 3, "path": "/data/tv"}]}
                    ]}
                })))
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .and(path("/library/sections/2/refresh"))
                .and(query_param(
                    "path",
                    "/data/tv/Princes & The Kingdom/Season 1",
                ))
                .and(header("X-Plex-Token", "example-token"))
                .respond_with(ResponseTemplate::new(200))
                .expect(1)
                .mount(&server)
                .await;
            (
                server.uri(),
                "example-token".to_owned(),
                "/data/tv/Princes & The Kingdom/Season 1".to_owned(),
                Some(server),
            )
        }
    };
    let plex = PlexTarget::new(PlexConfig::new(url, token))?;
    let results = plex
        .scan(&[ScanRequest {
            path: folder.clone(),
            update: Update::Modified,
            is_dir: true,
        }])
        .await;
    for r in &results {
        match r {
            Ok(()) => println!("Plex accepted a scan of {folder}"),
            Err(e) => println!("Plex refused: {e}"),
        }
    }
    if let Some(server) = mock {
        // Panics if the refresh was not exactly as expected (path form-encoded, token in a header).
        server.verify().await;
    }
    results.into_iter().collect()
}

#[test]
fn runs() {
    // The example itself, as CI runs it: against the mock servers.
    main().expect("the example runs");
}
