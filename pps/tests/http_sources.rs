//! OpenList and rclone sources from `pps.toml`: their keys, secrets from the
//! environment, the budget keys, and what `pps check` says in plain words against their
//! stand-ins over loopback.

use pps::App;
use pps::check::{RootOutcome, SourceOutcome};
use pps::config::{Config, SourceConfig};
use pps_core::memory::MemoryStore;
use pps_http_sources::OpenListAuth;
use pps_http_sources::mock::{StandIn, Tree};
use std::sync::Arc;
use std::time::Duration;

fn openlist_toml(url: &str, extra: &str, root: &str) -> String {
    format!(
        "[store]\npath = \"/tmp/pps-unused.db\"\n[sources.ol]\nkind = \"openlist\"\nurl = \"{url}\"\n{extra}\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"ol\"\npath = \"{root}\"\n"
    )
}

fn rclone_toml(url: &str, extra: &str, root: &str) -> String {
    format!(
        "[store]\npath = \"/tmp/pps-unused.db\"\n[sources.rc]\nkind = \"rclone\"\nurl = \"{url}\"\n{extra}\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"rc\"\npath = \"{root}\"\n"
    )
}

#[test]
fn openlist_keys_budget_and_secrets_from_the_environment() {
    let text = openlist_toml(
        "http://127.0.0.1:5244",
        "username = \"alice\"\nrefresh = false\nmax_queries_per_second = 0.5\nburst = 1\ntimeout = \"20s\"\nmax_calls_per_minute = 200\nmax_calls_per_hour = 12000\nconcurrency = 1\nthrottle_pause = \"5m\"",
        "/115/TV",
    );
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "s3cret-pass\n").unwrap();
    let env = pps::config::expand_file_vars(vec![
        (
            "PPS_SOURCES_OL_PASSWORD_FILE".to_owned(),
            secret.display().to_string(),
        ),
        (
            "PPS_SOURCES_OL_FOLDER_PASSWORD".to_owned(),
            "1234".to_owned(),
        ),
    ])
    .unwrap();
    let c = Config::parse(&text, None, &env).unwrap();
    let SourceConfig::OpenList { settings, budget } = &c.sources["ol"] else {
        panic!("{:?}", c.sources["ol"])
    };
    assert!(
        matches!(&settings.auth, OpenListAuth::Password { username, password } if username == "alice" && password.expose() == "s3cret-pass")
    );
    assert_eq!(
        settings.folder_password.as_ref().map(|p| p.expose()),
        Some("1234"),
        "a numeric folder password stays a string"
    );
    assert!(!settings.refresh);
    assert_eq!(settings.pacing.max_queries_per_second, 0.5);
    assert_eq!(settings.pacing.timeout, Duration::from_secs(20));
    assert_eq!(budget.concurrency, 1);
    assert_eq!(
        (budget.max_calls_per_minute, budget.max_calls_per_hour),
        (Some(200), Some(12_000))
    );
    assert_eq!(budget.throttle_pause, Duration::from_secs(300));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s3cret-pass") && !shown.contains("\"1234\""),
        "{shown}"
    );
    // The budget is the same cloud account's: same limits as a cd2 source.
    let limits = pps::app::call_limits(&c.sources["ol"]).unwrap();
    assert_eq!(limits.calls_per_second, 0.5);
}

#[test]
fn openlist_and_rclone_mistakes_name_their_key() {
    let cases = [
        (openlist_toml("", "", "/a"), "`url` is required"),
        (
            openlist_toml(
                "http://x:5244",
                "token = \"t\"\nusername = \"u\"\npassword = \"p\"",
                "/a",
            ),
            "either `token` or `username`/`password`",
        ),
        (openlist_toml("http://x:5244", "colour = 1", "/a"), "colour"),
        (
            openlist_toml("http://x:5244", "max_calls_per_day = 0", "/a"),
            "sources.ol.max_calls_per_day",
        ),
        (
            openlist_toml("http://u:secretpw@x:5244", "", "/a"),
            "not in the URL",
        ),
        (
            rclone_toml("http://x:5572", "", "/a"),
            "`remote` is required",
        ),
        (
            rclone_toml("http://x:5572", "remote = \"115dav\"", "/a"),
            "not an rclone remote",
        ),
        (
            rclone_toml("http://x:5572", "remote = \"a:\"\nusername = \"rc\"", "/a"),
            "go together",
        ),
    ];
    for (text, want) in cases {
        let err = Config::parse(&text, None, &[]).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in: {err}");
        assert!(!err.contains("secretpw"), "{err}");
    }
    let c = Config::parse(
        &rclone_toml(
            "http://x:5572",
            "remote = \"115dav:\"\nvfs_refresh = true",
            "/a",
        ),
        None,
        &[
            ("PPS_SOURCES_RC_PASSWORD".to_owned(), "p".to_owned()),
            ("PPS_SOURCES_RC_USERNAME".to_owned(), "rc".to_owned()),
        ],
    )
    .unwrap();
    let SourceConfig::Rclone { settings, budget } = &c.sources["rc"] else {
        panic!()
    };
    assert!(settings.vfs_refresh);
    assert_eq!(settings.username.as_deref(), Some("rc"));
    assert_eq!(budget.concurrency, pps::config::HTTP_SOURCE_CONCURRENCY);
}

async fn check(text: &str) -> pps::check::CheckReport {
    let config = Config::parse(text, None, &[]).unwrap();
    let app = App::build_with_store(config, Arc::new(MemoryStore::new())).unwrap();
    pps::check::check(&app).await
}

fn failed(report: &pps::check::CheckReport) -> String {
    match &report.sources[0].outcome {
        SourceOutcome::Failed(m) => m.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn tree() -> Tree {
    let mut t = Tree::new();
    t.write_file("/115/TV/Show/e1.mkv", 1);
    t
}

#[tokio::test]
async fn check_says_what_is_wrong_with_an_openlist_source() {
    let server = StandIn::openlist()
        .token("right")
        .refresh_allowed(false)
        .start(tree())
        .await;
    let url = server.url();

    // A refused token.
    let r = check(&openlist_toml(&url, "token = \"wrong-token\"", "/115/TV")).await;
    let m = failed(&r);
    assert!(m.contains("OpenList refused the token"), "{m}");
    assert!(!format!("{r:?}").contains("wrong-token"));

    // `refresh` without write permission.
    let r = check(&openlist_toml(&url, "token = \"right\"", "/115/TV")).await;
    let m = failed(&r);
    assert!(
        m.contains("no write permission") && m.contains("refresh = false"),
        "{m}"
    );

    // With refresh off: ready, and a watch root that does not exist is named.
    let r = check(&openlist_toml(
        &url,
        "token = \"right\"\nrefresh = false",
        "/115/Nope",
    ))
    .await;
    assert!(
        matches!(r.sources[0].outcome, SourceOutcome::Ready),
        "{:?}",
        r.sources
    );
    match &r.watches[0].root {
        RootOutcome::Failed(m) => {
            assert!(m.starts_with("not found") && m.contains("/115/Nope"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let r = check(&openlist_toml(
        &url,
        "token = \"right\"\nrefresh = false",
        "/115/TV",
    ))
    .await;
    assert!(
        matches!(r.watches[0].root, RootOutcome::Listed(1)),
        "{:?}",
        r.watches
    );

    // Not an OpenList server: an rclone rc on that port.
    let rclone = StandIn::rclone().start(tree()).await;
    let r = check(&openlist_toml(&rclone.url(), "", "/115/TV")).await;
    let m = failed(&r);
    assert!(m.contains("not an OpenList server"), "{m}");

    // Nothing listening.
    server.stop().await;
    let r = check(&openlist_toml(&url, "token = \"right\"", "/115/TV")).await;
    let m = failed(&r);
    assert!(
        m.contains("nothing listens on") && m.contains("is OpenList running"),
        "{m}"
    );
}

#[tokio::test]
async fn check_says_what_is_wrong_with_an_rclone_source() {
    let server = StandIn::rclone().user("rc", "pa55").start(tree()).await;
    let url = server.url();
    let r = check(&rclone_toml(
        &url,
        "remote = \"115dav:\"\nusername = \"rc\"\npassword = \"nope-pass\"",
        "/115/TV",
    ))
    .await;
    let m = failed(&r);
    assert!(
        m.contains("rclone refused the user name and password"),
        "{m}"
    );
    assert!(!format!("{r:?}").contains("nope-pass"));

    let r = check(&rclone_toml(
        &url,
        "remote = \"typo:\"\nusername = \"rc\"\npassword = \"pa55\"",
        "/115/TV",
    ))
    .await;
    let m = failed(&r);
    assert!(m.contains("no such remote"), "{m}");

    let r = check(&rclone_toml(
        &url,
        "remote = \"115dav:\"\nusername = \"rc\"\npassword = \"pa55\"",
        "/115/Nope",
    ))
    .await;
    assert!(
        matches!(r.sources[0].outcome, SourceOutcome::Ready),
        "{:?}",
        r.sources
    );
    assert!(
        matches!(&r.watches[0].root, RootOutcome::Failed(m) if m.contains("directory not found")),
        "{:?}",
        r.watches
    );

    let openlist = StandIn::openlist().start(tree()).await;
    let r = check(&rclone_toml(
        &openlist.url(),
        "remote = \"115dav:\"",
        "/115/TV",
    ))
    .await;
    let m = failed(&r);
    assert!(m.contains("not an rclone rc server"), "{m}");
}
