//! OpenList against its stand-in.

use crate::{ROOT, fast, standard_tree};
use futures_util::future::join_all;
use pps_core::testing::source_conformance;
use pps_core::{DirectorySource, ErrorKind, ListOptions, Secret};
use pps_http_sources::mock::{StandIn, Tree};
use pps_http_sources::{OpenList, OpenListAuth, OpenListConfig};
use serde_json::json;

pub fn config(server: &StandIn, auth: OpenListAuth) -> OpenListConfig {
    let mut c = OpenListConfig::new(server.url()).with_auth(auth);
    c.pacing = fast();
    c
}

fn token(t: &str) -> OpenListAuth {
    OpenListAuth::Token(Secret::new(t))
}

#[tokio::test]
async fn conformance_over_loopback_with_the_documented_requests() {
    let server = StandIn::openlist()
        .token("tok-abc")
        .start(standard_tree())
        .await;
    let ol = OpenList::connect(config(&server, token("tok-abc"))).unwrap();
    source_conformance(&ol, ROOT, true).await;
    assert_eq!(
        server.calls("/api/fs/list"),
        6 + 8,
        "one call per listing, no retries"
    );
    assert_eq!(server.calls("/api/fs/get"), 3);
    assert_eq!(ol.stats().listings, 14);
    let requests = server.requests();
    for r in &requests {
        assert_eq!(r.method, "POST");
        // The raw token: no `Bearer` prefix.
        assert_eq!(r.authorization.as_deref(), Some("tok-abc"));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    let first = &requests[0];
    assert_eq!(first.path, "/api/fs/list");
    assert_eq!(
        first.body,
        json!({"path": ROOT, "password": "", "page": 1, "per_page": 0, "refresh": false})
    );
    let get = requests.iter().find(|r| r.path == "/api/fs/get").unwrap();
    assert_eq!(
        get.body,
        json!({"path": format!("{ROOT}/Movies/Film & Co #1 (2020)/film.mkv"), "password": ""})
    );
}

#[tokio::test]
async fn zero_times_are_unknown_and_offsets_are_honoured() {
    let mut tree = Tree::new();
    tree.write_file("/a/known.mkv", 1);
    tree.write_file("/a/unknown.mkv", 2);
    tree.set_mtime("/a/known.mkv", Some(1_700_000_000));
    tree.set_mtime("/a/unknown.mkv", None);
    let server = StandIn::openlist().start(tree).await;
    let ol = OpenList::connect(config(&server, OpenListAuth::None)).unwrap();
    let mut entries = ol.list("/a", ListOptions::default()).await.unwrap();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    // The stand-in writes +08:00 with half a second.
    assert_eq!(
        entries[0].mtime.map(|m| m.as_nanos()),
        Some(1_700_000_000_500_000_000)
    );
    assert_eq!(entries[1].mtime, None);
}

#[tokio::test]
async fn a_refused_token_is_permanent_named_plainly_and_never_shown() {
    let server = StandIn::openlist()
        .token("right")
        .start(standard_tree())
        .await;
    let bad = OpenList::connect(config(&server, token("wrong-secret-value"))).unwrap();
    let err = bad.list(ROOT, ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.is_temporary());
    assert!(
        err.message().contains("OpenList refused the token"),
        "{err}"
    );
    assert_eq!(server.calls("/api/fs/list"), 1, "no retry loop");
    let shown = format!("{err} {err:?} {bad:?}");
    assert!(!shown.contains("wrong-secret-value"), "{shown}");
    assert_eq!(err.context_value("source"), Some(server.url().as_str()));

    let guest = OpenList::connect(config(&server, OpenListAuth::None)).unwrap();
    let err = guest.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(err.message().contains("OpenList wants a token"), "{err}");
}

#[tokio::test]
async fn a_password_login_is_shared_renewed_when_refused_and_a_wrong_one_is_permanent() {
    let server = StandIn::openlist()
        .user("alice", "pa55")
        .start(standard_tree())
        .await;
    let auth = OpenListAuth::Password {
        username: "alice".into(),
        password: Secret::new("pa55"),
    };
    let ol = OpenList::connect(config(&server, auth)).unwrap();
    let results = join_all((0..5).map(|_| ol.list(ROOT, ListOptions::default()))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.logins(), 1, "concurrent calls share one login");
    let login = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/auth/login")
        .unwrap();
    assert_eq!(login.body, json!({"username": "alice", "password": "pa55"}));
    assert_eq!(login.authorization, None);

    server.expire_tokens();
    assert!(ol.list(ROOT, ListOptions::default()).await.is_ok());
    assert_eq!(
        server.logins(),
        2,
        "one fresh login after the token was refused"
    );
    assert_eq!(ol.stats().logins, 2);

    let wrong = OpenList::connect(config(
        &server,
        OpenListAuth::Password {
            username: "alice".into(),
            password: Secret::new("hunter2"),
        },
    ))
    .unwrap();
    let err = wrong.list(ROOT, ListOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(!err.is_temporary());
    assert!(
        err.message()
            .contains("refused the login of user \"alice\""),
        "{err}"
    );
    assert!(!format!("{err} {err:?} {wrong:?}").contains("hunter2"));
    assert_eq!(server.logins(), 3, "one failed login, no loop");
}

#[tokio::test]
async fn refresh_is_sent_only_when_asked_and_a_refusal_falls_back_once() {
    let server = StandIn::openlist()
        .refresh_allowed(false)
        .start(standard_tree())
        .await;
    let ol = OpenList::connect(config(&server, OpenListAuth::None)).unwrap();
    ol.list(ROOT, ListOptions::default()).await.unwrap();
    // A forced listing: refused, then listed from the cache.
    let entries = ol.list(ROOT, ListOptions::force_refresh()).await.unwrap();
    assert_eq!(entries.len(), 4);
    ol.list(ROOT, ListOptions::force_refresh()).await.unwrap();
    let refresh: Vec<bool> = server
        .requests()
        .iter()
        .map(|r| r.body["refresh"].as_bool().unwrap())
        .collect();
    assert_eq!(
        refresh,
        [false, true, false, false],
        "refused once, never asked again"
    );

    // `check` names the problem and what to do.
    let fresh = OpenList::connect(config(&server, OpenListAuth::None)).unwrap();
    let err = fresh.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.message().contains("no write permission"), "{err}");
    assert!(err.message().contains("`refresh = false`"), "{err}");

    // With `refresh = false` a forced listing is an ordinary one and check passes.
    let mut c = config(&server, OpenListAuth::None);
    c.refresh = false;
    let off = OpenList::connect(c).unwrap();
    off.check().await.unwrap();
    let before = server.requests().len();
    off.list(ROOT, ListOptions::force_refresh()).await.unwrap();
    assert_eq!(server.requests()[before].body["refresh"], json!(false));
}

#[tokio::test]
async fn a_missing_path_is_not_found_in_plain_words() {
    let server = StandIn::openlist().start(standard_tree()).await;
    let ol = OpenList::connect(config(&server, OpenListAuth::None)).unwrap();
    let err = ol
        .list("/115/nope", ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("object not found"), "{err}");
    assert_eq!(err.context_value("path"), Some("/115/nope"));
    assert_eq!(server.calls("/api/fs/list"), 1, "not retried");
}

#[tokio::test]
async fn a_server_that_is_not_openlist_is_named() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
    let web = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>router login</html>"))
        .mount(&web)
        .await;
    let ol = OpenList::connect(OpenListConfig::new(web.uri())).unwrap();
    let err = ol.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("not an OpenList server"), "{err}");

    // An rclone rc on the port: it answers 404 with its own JSON error.
    let rclone = StandIn::rclone().start(Tree::new()).await;
    let ol = OpenList::connect(OpenListConfig::new(rclone.url())).unwrap();
    let err = ol.check().await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unsupported | ErrorKind::NotFound),
        "{err}"
    );
}
