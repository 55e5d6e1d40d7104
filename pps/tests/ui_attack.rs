//! The attack review's findings against the web UI, each as an in-process test: the
//! UI's router called directly (no socket), as the server would, with the client's
//! address set per request.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use pps::http::Peer;
use pps::{App, Config};
use pps_core::memory::MemoryStore;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt as _;

pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) fn hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| pps::http::ui::hash_password(PASSWORD).unwrap())
}

fn app_with(ui_extra: &str, hash: &str) -> App {
    let text = format!(
        "[sources.disk]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"disk\"\npath = \"/lib\"\n[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"tok-tok-tok-tok\"\n[ui]\npassword_hash = \"{hash}\"\n{ui_extra}\n"
    );
    App::build_with_store(
        Config::parse(&text, None, &[]).unwrap(),
        Arc::new(MemoryStore::new()),
    )
    .unwrap()
}

/// Starts the HTTP wing (as a reload does) of a config without the UI, with `server`
/// as its `[server]` table, on what an earlier config's wing kept; whether it listens.
pub(crate) async fn start_without_ui(server: &str, kept: &pps::http::Kept) -> bool {
    let text = format!(
        "[sources.disk]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"disk\"\npath = \"/lib\"\n{server}"
    );
    let app = App::build_with_store(
        Config::parse(&text, None, &[]).unwrap(),
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    pps::http::start(
        &app,
        kept,
        Default::default(),
        Vec::new(),
        Arc::new(pps::metrics::Metrics::default()),
    )
    .await
    .unwrap()
    .is_some()
}

pub(crate) fn router(app: &App) -> axum::Router {
    router_kept(app, &pps::http::Kept::default())
}

/// The router of `app` with what an earlier config's router kept (as a reload does).
fn router_kept(app: &App, kept: &pps::http::Kept) -> axum::Router {
    // A wake-up per watch, as the service gives (the UI acts only on watches it has).
    let wakes: Vec<_> = app
        .watches
        .iter()
        .map(|_| Arc::new(tokio::sync::Notify::new()))
        .collect();
    let ui = pps::http::ui::UiState::new(
        app,
        kept,
        Default::default(),
        &wakes,
        Arc::new(pps::metrics::Metrics::default()),
    )
    .expect("the UI is on");
    pps::http::ui::router(ui)
}

pub(crate) fn from(peer: &str, req: Request<Body>) -> Request<Body> {
    let mut req = req;
    req.extensions_mut()
        .insert(Peer(peer.parse::<SocketAddr>().unwrap()));
    req
}

pub(crate) async fn login(
    r: &axum::Router,
    peer: &str,
    password: &str,
    xff: Option<&str>,
) -> axum::response::Response {
    let mut b =
        Request::post("/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(x) = xff {
        b = b.header("x-forwarded-for", x);
    }
    let body = format!("password={}", password.replace(' ', "+"));
    r.clone()
        .oneshot(from(peer, b.body(Body::from(body)).unwrap()))
        .await
        .unwrap()
}

pub(crate) fn cookie_of(resp: &axum::response::Response) -> String {
    resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn get(r: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    r.clone()
        .oneshot(from("127.0.0.1:5000", b.body(Body::empty()).unwrap()))
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn item_2_a_loopback_peer_cannot_spoof_its_address_unless_it_is_a_trusted_proxy() {
    let app = app_with("", hash());
    let r = router(&app);
    for i in 0..5 {
        let resp = login(
            &r,
            "127.0.0.1:4000",
            "wrong password!",
            Some(&format!("10.0.0.{i}")),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = login(&r, "127.0.0.1:4000", "wrong password!", Some("10.9.9.9")).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a new header is the same client"
    );

    // Behind a configured proxy, the address it appends names the client.
    let app = app_with("trusted_proxies = [\"127.0.0.1\"]", hash());
    let r = router(&app);
    for _ in 0..5 {
        login(&r, "127.0.0.1:4000", "wrong password!", Some("10.0.0.1")).await;
    }
    let other = login(&r, "127.0.0.1:4000", PASSWORD, Some("10.0.0.2")).await;
    assert_eq!(
        other.status(),
        StatusCode::SEE_OTHER,
        "another client behind the proxy"
    );
}

#[tokio::test]
async fn item_3_ipv4_clients_on_an_ipv6_socket_are_told_apart() {
    let app = app_with("", hash());
    let r = router(&app);
    for _ in 0..5 {
        login(&r, "[::ffff:192.0.2.1]:4000", "wrong password!", None).await;
    }
    let locked = login(&r, "[::ffff:192.0.2.1]:4001", PASSWORD, None).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = login(&r, "[::ffff:192.0.2.2]:4000", PASSWORD, None).await;
    assert_eq!(
        other.status(),
        StatusCode::SEE_OTHER,
        "one guesser does not lock out everyone"
    );
}

#[tokio::test]
async fn item_4_a_new_password_hash_ends_every_session() {
    let kept = pps::http::Kept::default();
    let app = app_with("", hash());
    let r = router_kept(&app, &kept);
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    assert_eq!(get(&r, "/", &[("cookie", &cookie)]).await, StatusCode::OK);
    // A reload with another hash: the sessions live on in what the HTTP wing keeps,
    // bound to the old hash.
    let changed = app_with(
        "",
        &pps::http::ui::hash_password("another password 42").unwrap(),
    );
    let r2 = router_kept(&changed, &kept);
    assert_eq!(
        get(&r2, "/", &[("cookie", &cookie)]).await,
        StatusCode::SEE_OTHER,
        "logged out"
    );
    // The same hash keeps it (a reload for another edit logs nobody out).
    let same = app_with("", hash());
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    assert_eq!(
        get(&router_kept(&same, &kept), "/", &[("cookie", &cookie)]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn item_4_turning_the_ui_off_and_on_ends_every_session() {
    let kept = pps::http::Kept::default();
    let app = app_with("", hash());
    let r = router_kept(&app, &kept);
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    assert_eq!(get(&r, "/", &[("cookie", &cookie)]).await, StatusCode::OK);
    // A reload without the UI (its [ui] taken out), then one with it again, the same
    // password hash: the session of before must not come back.
    let off = "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"tok-tok-tok-tok\"\n";
    assert!(
        start_without_ui(off, &kept).await,
        "it still listens for triggers"
    );
    let on = router_kept(&app_with("", hash()), &kept);
    assert_eq!(
        get(&on, "/", &[("cookie", &cookie)]).await,
        StatusCode::SEE_OTHER,
        "logged out"
    );
}

/// A live view (Activity, Logs) opened before a new password hash ends with it: it
/// used to run on until some other request cleared the old sessions.
#[tokio::test(start_paused = true)]
async fn item_4_a_live_view_ends_when_a_new_password_hash_is_applied() {
    use futures_util::StreamExt as _;
    let kept = pps::http::Kept::default();
    let app = app_with("", hash());
    let r = router_kept(&app, &kept);
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    let req = Request::get("/activity/events")
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    let resp = r.oneshot(from("127.0.0.1:4000", req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    let _reloaded = router_kept(
        &app_with(
            "",
            &pps::http::ui::hash_password("another password 42").unwrap(),
        ),
        &kept,
    );
    let ended = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(chunk) = body.next().await {
            chunk.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the live view ended with its session");
}

/// Sessions end 7 days after their login however active (and after 12 idle hours).
#[tokio::test(start_paused = true)]
async fn item_4_a_session_ends_at_its_lifetime_however_active() {
    let app = app_with("", hash());
    let r = router(&app);
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    let hour = std::time::Duration::from_secs(3600);
    // Used every 11 hours: never idle 12, alive until the 7 days are up.
    for step in 1..=15 {
        tokio::time::advance(11 * hour).await;
        assert_eq!(
            get(&r, "/", &[("cookie", &cookie)]).await,
            StatusCode::OK,
            "{} hours after login",
            11 * step
        );
    }
    tokio::time::advance(11 * hour).await; // 176 hours: past 168
    assert_eq!(
        get(&r, "/", &[("cookie", &cookie)]).await,
        StatusCode::SEE_OTHER
    );
    // Idle for 12 hours ends a fresh one.
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    tokio::time::advance(12 * hour).await;
    assert_eq!(
        get(&r, "/", &[("cookie", &cookie)]).await,
        StatusCode::SEE_OTHER
    );
}

/// Each refused login logged a line: 6,000 requests replaced the whole log page in
/// seconds. Now: one line per client per window, and the count when the window ends.
#[tokio::test(start_paused = true)]
async fn item_5_refused_logins_log_one_line_per_client_and_a_count() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let _log =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(pps::logs::layer()));
    let level = tracing::Level::INFO;
    let start = pps::logs::after(0, level, usize::MAX)
        .last()
        .map_or(0, |l| l.seq);
    let app = app_with("", hash());
    let r = router(&app);
    let mut refused = 0;
    for _ in 0..300 {
        let resp = login(&r, "203.0.113.9:4000", "wrong", None).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused >= 290, "{refused}");
    let lines = |start| {
        pps::logs::after(start, level, usize::MAX)
            .into_iter()
            .filter(|l| l.text.contains("203.0.113.9"))
            .map(|l| l.text)
            .collect::<Vec<_>>()
    };
    let all = lines(start);
    // The guesses the limit let through are logged each (five a window at most)...
    let wrong = all.iter().filter(|l| l.contains("wrong password")).count();
    assert_eq!(wrong, 300 - refused, "{all:#?}");
    // ...the refusals once.
    let mine: Vec<_> = all
        .iter()
        .filter(|l| !l.contains("wrong password"))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert!(mine[0].contains("too many login attempts"), "{mine:#?}");
    // The window ends; the next refusal (the limiter's own clock has not moved) says
    // how many went uncounted in the log.
    tokio::time::advance(std::time::Duration::from_secs(16 * 60)).await;
    let resp = login(&r, "203.0.113.9:4000", "wrong", None).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let mine: Vec<_> = lines(start)
        .into_iter()
        .filter(|l| !l.contains("wrong password"))
        .collect();
    assert_eq!(mine.len(), 3, "{mine:#?}");
    assert!(
        mine[1].contains(&format!("refused={}", refused - 1)),
        "{mine:#?}"
    );
}

#[tokio::test]
async fn item_7_a_body_is_never_read_without_a_session_and_is_capped() {
    let app = app_with("", hash());
    let r = router(&app);
    let big = vec![b'a'; 2 * 1024 * 1024];
    let req = Request::post("/watches/save")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(big.clone()))
        .unwrap();
    let resp = r
        .clone()
        .oneshot(from("127.0.0.1:4000", req))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    let req = Request::post("/watches/save")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .body(Body::from(big))
        .unwrap();
    let resp = r
        .clone()
        .oneshot(from("127.0.0.1:4000", req))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "64 KiB is the most a form sends"
    );
}

#[tokio::test]
async fn item_8_another_port_s_page_cannot_fetch_check_or_post() {
    let app = app_with("", hash());
    let r = router(&app);
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    let c = ("cookie", cookie.as_str());
    let same_site = ("sec-fetch-site", "same-site");
    for uri in ["/config?check=1", "/browse?source=disk&path=/lib"] {
        assert_eq!(
            get(&r, uri, &[c, same_site, ("sec-fetch-mode", "navigate")]).await,
            StatusCode::FORBIDDEN,
            "{uri}: costs calls, even navigated to"
        );
    }
    assert_eq!(
        get(&r, "/", &[c, same_site, ("sec-fetch-mode", "cors")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(
            &r,
            "/",
            &[
                c,
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate")
            ]
        )
        .await,
        StatusCode::OK,
        "a link from elsewhere still opens the page"
    );
    assert_eq!(
        get(
            &r,
            "/config?check=1",
            &[c, ("sec-fetch-site", "same-origin")]
        )
        .await,
        StatusCode::OK
    );
    // Over plain HTTP on a LAN browsers send no Sec-Fetch-* at all: a page on another
    // port could navigate to a check or a listing. Those then need the session's CSRF
    // token in the address (`k`), which only the UI's own links and forms carry.
    let page = |uri: String| {
        let r = r.clone();
        let cookie = cookie.clone();
        async move {
            let req = Request::get(uri)
                .header("cookie", cookie)
                .body(Body::empty())
                .unwrap();
            let resp = r.oneshot(from("127.0.0.1:4000", req)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    let overview = page("/".into()).await;
    let csrf = overview
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    for k in ["", "&k=guess"] {
        let shown = page(format!("/config?check=1{k}")).await;
        assert!(!shown.contains("id=\"check\""), "no check ran: {shown}");
        let shown = page(format!("/browse?source=disk&path=/lib{k}")).await;
        assert!(
            !shown.contains("id=\"listing\"") && shown.contains("press Go to list"),
            "no listing: {shown}"
        );
    }
    // The UI's own links carry it: a view token derived from the CSRF token, which
    // itself never stands in an address.
    let k = overview
        .split("href=\"/browse?k=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the Browser link carries k")
        .to_owned();
    assert_ne!(k, csrf);
    assert!(!overview.contains(&format!("k={csrf}")), "{overview}");
    let shown = page(format!("/config?check=1&k={csrf}")).await;
    assert!(
        !shown.contains("id=\"check\""),
        "the CSRF token is not the view token"
    );
    let shown = page(format!("/config?check=1&k={k}")).await;
    assert!(shown.contains("id=\"check\""), "{shown}");

    let req = Request::post("/logout")
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-site")
        .body(Body::empty())
        .unwrap();
    let resp = r
        .clone()
        .oneshot(from("127.0.0.1:4000", req))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn configured_host_names_refuse_others() {
    let app = app_with("hosts = [\"nas.local\"]", hash());
    let r = router(&app);
    assert_eq!(
        get(&r, "/login", &[("host", "evil.example")]).await,
        StatusCode::MISDIRECTED_REQUEST
    );
    assert_eq!(
        get(&r, "/login", &[("host", "nas.local:8090")]).await,
        StatusCode::OK
    );
}

/// What a new user's trial found missing: the config page shows each target's
/// `path_mapping` and each source's concurrency; a target that is down shows its
/// failing scan with the last error, attempts and next try.
#[tokio::test]
async fn the_config_page_shows_mappings_and_the_overview_shows_failing_scans() {
    use pps_core::store::{Commit, NewScan};
    use pps_core::{Change, MtimeStore, Timestamp, Update};
    let text = format!(
        "[sources.disk]\nkind = \"local\"\n[targets.plex]\nkind = \"plex\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"plex-secret-tok\"\npath_mapping = [{{ from = \"/lib\", to = \"/mnt/lib\" }}]\n[[watch]]\nsource = \"disk\"\npath = \"/lib\"\n[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"tok-tok-tok-tok\"\n[ui]\npassword_hash = \"{}\"\n",
        hash()
    );
    let store: Arc<dyn MtimeStore> = Arc::new(MemoryStore::new());
    let app =
        App::build_with_store(Config::parse(&text, None, &[]).unwrap(), store.clone()).unwrap();
    let scope = store.scope("disk", "/lib").unwrap();
    store
        .commit(
            scope,
            &Commit {
                scans: vec![NewScan {
                    target: "plex".into(),
                    change: Change::new("/lib/Show/e1.mkv", Update::Created, false),
                }],
                ..Commit::default()
            },
        )
        .unwrap();
    let q = store.pending("plex", 1).unwrap();
    store
        .record_failure(
            &[q[0].id],
            "plex: cannot connect",
            Timestamp::from_secs(i64::MAX / 2),
        )
        .unwrap();
    let r = router(&app);
    let cookie = cookie_of(&login(&r, "127.0.0.1:4000", PASSWORD, None).await);
    let page = |uri: &'static str| {
        let r = r.clone();
        let cookie = cookie.clone();
        async move {
            let resp = r
                .oneshot(from(
                    "127.0.0.1:4000",
                    Request::get(uri)
                        .header("cookie", cookie)
                        .body(Body::empty())
                        .unwrap(),
                ))
                .await
                .unwrap();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    let config = page("/config").await;
    assert!(
        config.contains("path_mapping = [{ from = &quot;/lib&quot;, to = &quot;/mnt/lib&quot; }]"),
        "{config}"
    );
    assert!(config.contains("concurrency = 32"), "{config}");
    assert!(!config.contains("plex-secret-tok"), "secrets stay hidden");
    let overview = page("/").await;
    assert!(overview.contains("id=\"failing\""), "{overview}");
    assert!(overview.contains("plex: cannot connect"), "{overview}");
}
