//! Notifiers against local stand-ins of each service (wiremock, over loopback), with
//! method, path, headers and body asserted: what is sent, batching, a 429's
//! `retry_after`, parking, a crash between commit and delivery, and source outages
//! written once. Rounds are driven with explicit times: no test sleeps.

use pps::Config;
use pps::notify::{Health, Notifier};
use pps_core::memory::MemoryStore;
use pps_core::sqlite::SqliteStore;
use pps_core::store::{Commit, Event, HistoryQuery, NewScan};
use pps_core::{Change, Error, ErrorKind, MtimeStore, Timestamp, Update};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BOT: &str = "123456:SECRET-bot-token";

/// A config with one notifier table `extra` (and a stdout target `print`).
fn notifier(extra: &str) -> pps::notify::NotifierConfig {
    let text = format!(
        "[sources.disk]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"disk\"\npath = \"/lib\"\n[notifiers.n]\n{extra}\n"
    );
    let c = Config::parse(&text, None, &[]).expect("config");
    c.notifiers["n"].clone()
}

/// `paths` found and sent to `print`: `sent` history lines, as delivery writes them.
fn sent(store: &dyn MtimeStore, paths: &[&str]) {
    let scope = store.scope("disk", "/lib").unwrap();
    let commit = Commit {
        scans: paths
            .iter()
            .map(|p| NewScan {
                target: "print".into(),
                change: Change::new(*p, Update::Created, false),
            })
            .collect(),
        ..Commit::default()
    };
    store.commit(scope, &commit).unwrap();
    for q in store.pending("print", 10_000).unwrap() {
        store.complete(&[q.id], &q.change.path).unwrap();
    }
}

fn wall() -> Timestamp {
    Timestamp::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    )
}

fn make(store: &Arc<dyn MtimeStore>, config: pps::notify::NotifierConfig) -> Notifier {
    Notifier::new("n", config, store.clone(), BTreeSet::new()).unwrap()
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_webhook_gets_the_versioned_document_after_the_window_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header("authorization", "Bearer hook-secret"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let store: Arc<dyn MtimeStore> = Arc::new(MemoryStore::new());
    let mut n = make(
        &store,
        notifier(&format!(
            "kind = \"webhook\"\nurl = \"{}/hook\"\nheaders = {{ Authorization = \"Bearer hook-secret\" }}\nwindow = \"30s\"",
            server.uri()
        )),
    );
    // Created before anything happened: it starts at the newest line.
    sent(store.as_ref(), &["/lib/old/before.mkv"]);
    assert_eq!(n.round(wall()).await.unwrap().delivered, None);
    let t = wall();
    n.state().unwrap();
    sent(
        store.as_ref(),
        &[
            "/lib/沙丘2 (2024)/Dune.Part.Two.mkv",
            "/lib/三体/Season 1/三体.S01E05.mkv",
            "/lib/三体/Season 1/三体.S01E06.mkv",
        ],
    );
    assert_eq!(n.round(t).await.unwrap().delivered, None, "still gathering");
    let r = n
        .round(t.plus(std::time::Duration::from_secs(31)))
        .await
        .unwrap();
    assert_eq!(r.delivered, Some(3));
    let got = bodies(&server).await;
    assert_eq!(got.len(), 1, "one message");
    let doc = &got[0];
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["notifier"], "n");
    let titles: Vec<&str> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["沙丘2 (2024)", "三体 S01E05", "三体 S01E06"]);
    assert_eq!(doc["events"][0]["event"], "scanned");
    assert_eq!(doc["events"][0]["target"], "print");
    assert_eq!(doc["events"][0]["watch"], "disk:/lib");
    let text = doc["text"].as_str().unwrap();
    assert!(text.contains("沙丘2 (2024) → Print"), "{text}");
    assert!(text.contains("三体 S01E05–E06 → Print"), "{text}");
    assert!(
        !text.contains("before.mkv"),
        "nothing from before it existed"
    );
    // Delivered: never again.
    let later = t.plus(std::time::Duration::from_secs(120));
    assert_eq!(n.round(later).await.unwrap().delivered, None);
    assert_eq!(bodies(&server).await.len(), 1);
    assert_eq!(n.state().unwrap().sent, 1);
    // The delivery is in the history (Activity, `pps history`), and is never notified.
    let h = store
        .history(&HistoryQuery {
            events: vec![Event::Notified],
            limit: 10,
            ..HistoryQuery::default()
        })
        .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].change.path, "n");
    assert_eq!(
        h[0].detail.as_deref(),
        Some("sent through webhook: 3 lines")
    );
    assert_eq!(
        n.round(later.plus(std::time::Duration::from_secs(60)))
            .await
            .unwrap()
            .delivered,
        None
    );
}

#[tokio::test]
async fn two_hundred_changes_in_a_window_are_one_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/d/webhook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let store: Arc<dyn MtimeStore> = Arc::new(MemoryStore::new());
    let mut n = make(
        &store,
        notifier(&format!(
            "kind = \"discord\"\nurl = \"{}/d/webhook\"",
            server.uri()
        )),
    );
    n.state().unwrap();
    let films: Vec<String> = (0..200)
        .map(|i| format!("/lib/Film {i} (2020)/f.mkv"))
        .collect();
    let refs: Vec<&str> = films.iter().map(String::as_str).collect();
    sent(store.as_ref(), &refs);
    let r = n
        .round(wall().plus(std::time::Duration::from_secs(31)))
        .await
        .unwrap();
    assert_eq!(r.delivered, Some(200));
    let got = bodies(&server).await;
    assert_eq!(got.len(), 1);
    let content = got[0]["content"].as_str().unwrap();
    assert!(content.contains("… and 170 more"), "{content}");
    assert!(content.chars().count() <= 1901, "Discord's limit");
}

#[tokio::test]
async fn telegram_through_its_api_url_honours_retry_after_and_hides_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT}/sendMessage")))
        .and(body_partial_json(json!({"chat_id": "-100200300"})))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "ok": false, "error_code": 429,
            "description": format!("Too Many Requests: retry after 7 (bot{BOT})"),
            "parameters": {"retry_after": 7}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT}/sendMessage")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let store: Arc<dyn MtimeStore> = Arc::new(MemoryStore::new());
    let mut n = make(
        &store,
        notifier(&format!(
            "kind = \"telegram\"\nbot_token = \"{BOT}\"\nchat_id = -100200300\napi_url = \"{}\"\nlanguage = \"zh\"\nwindow = \"0s\"",
            server.uri()
        )),
    );
    n.state().unwrap();
    sent(store.as_ref(), &["/lib/沙丘2 (2024)/d.mkv"]);
    let t = wall();
    let r = n.round(t).await.unwrap();
    let err = r.failed.expect("429");
    assert!(err.contains("429"), "{err}");
    assert!(
        !err.contains(BOT) && !err.contains("SECRET"),
        "the token never shows: {err}"
    );
    assert!(!format!("{n:?}").contains("SECRET"), "nor in Debug");
    assert_eq!(
        n.round(t.plus(std::time::Duration::from_secs(5)))
            .await
            .unwrap(),
        Default::default(),
        "retry_after is 7 s"
    );
    let r = n
        .round(t.plus(std::time::Duration::from_secs(8)))
        .await
        .unwrap();
    assert_eq!(r.delivered, Some(1));
    let got = bodies(&server).await;
    assert_eq!(got.len(), 2);
    let text = got[1]["text"].as_str().unwrap();
    assert!(text.starts_with("已入库\n沙丘2 (2024) → Print"), "{text}");
    assert_eq!(got[1]["chat_id"], "-100200300");
}

#[tokio::test]
async fn apprise_gets_a_warning_for_what_needs_the_user_and_a_refusal_parks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/notify/pps-key"))
        .and(body_partial_json(
            json!({"title": "pps", "type": "warning", "tag": "admins"}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/notify/pps-key"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad key"))
        .mount(&server)
        .await;
    let store: Arc<dyn MtimeStore> = Arc::new(MemoryStore::new());
    let mut n = make(
        &store,
        notifier(&format!(
            "kind = \"apprise\"\nurl = \"{}/notify/pps-key\"\ntag = \"admins\"\nwindow = \"0s\"\nevents = [\"parked\", \"source_down\"]",
            server.uri()
        )),
    );
    n.state().unwrap();
    let scope = store.scope("disk", "/lib").unwrap();
    store
        .commit(
            scope,
            &Commit {
                scans: vec![NewScan {
                    target: "print".into(),
                    change: Change::new("/lib/Music", Update::Created, true),
                }],
                ..Commit::default()
            },
        )
        .unwrap();
    let q = store.pending("print", 1).unwrap();
    store
        .park(&[q[0].id], "no library contains the path")
        .unwrap();
    sent(store.as_ref(), &["/lib/not/wanted.mkv"]);
    let r = n.round(wall()).await.unwrap();
    assert_eq!(
        r.delivered,
        Some(1),
        "only the parked scan: `scanned` is not wanted"
    );
    let body = bodies(&server).await[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(body.contains("Needs you"), "{body}");
    assert!(
        body.contains("Parked for Print: /lib/Music — no library contains the path"),
        "{body}"
    );

    // A refusal that cannot pass parks the notifier with the reason; no more requests.
    store
        .log_event(Some(scope), Event::SourceDown, "/lib", "connection refused")
        .unwrap();
    let r = n.round(wall()).await.unwrap();
    assert!(r.parked);
    let st = n.state().unwrap();
    assert!(
        st.parked.as_deref().is_some_and(|p| p.contains("401")),
        "{st:?}"
    );
    assert!(
        !st.parked.unwrap().contains("pps-key"),
        "the URL's key never shows"
    );
    let before = bodies(&server).await.len();
    assert!(n.round(wall()).await.unwrap().parked);
    assert_eq!(bodies(&server).await.len(), before, "parked: nothing sent");
}

#[tokio::test]
async fn a_crash_between_commit_and_delivery_delivers_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pps.db");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let config = notifier(&format!(
        "kind = \"webhook\"\nurl = \"{}/hook\"\nwindow = \"0s\"",
        server.uri()
    ));
    {
        let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
        let mut n = make(&store, config.clone());
        n.state().unwrap();
        sent(store.as_ref(), &["/lib/Arrival (2016)/a.mkv"]);
        let r = n.round(wall()).await.unwrap();
        assert!(r.failed.is_some(), "the service was down");
        // The process ends here.
    }
    let store: Arc<dyn MtimeStore> = Arc::new(SqliteStore::open(&db).unwrap());
    let mut n = make(&store, config);
    assert_eq!(n.round(wall()).await.unwrap().delivered, Some(1));
    assert_eq!(n.round(wall()).await.unwrap().delivered, None);
    let ok: Vec<Value> = bodies(&server).await;
    assert_eq!(ok.len(), 2, "one failed attempt, one delivery, no repeat");
    assert_eq!(ok[1]["events"][0]["title"], "Arrival (2016)");
}

#[test]
fn an_outage_is_written_once_when_it_begins_and_once_when_it_ends() {
    let store = MemoryStore::new();
    let scope = store.scope("cd2", "/115").ok();
    let health = Health::default();
    let down = Error::new(ErrorKind::Unavailable, "connection refused");
    health.up(&store, "cd2", scope, "/115");
    for _ in 0..5 {
        health.down(&store, "cd2", scope, "/115", &down);
    }
    // A folder missing is no outage of the source.
    health.down(
        &store,
        "cd2",
        scope,
        "/115",
        &Error::new(ErrorKind::NotFound, "gone"),
    );
    assert_eq!(health.down_now().len(), 1);
    health.up(&store, "cd2", scope, "/115");
    health.up(&store, "cd2", scope, "/115");
    health.throttles(&store, "cd2", 0, "x");
    health.throttles(&store, "cd2", 3, "slowed down");
    health.throttles(&store, "cd2", 3, "slowed down");
    let lines = store
        .history(&HistoryQuery {
            limit: 100,
            ..HistoryQuery::default()
        })
        .unwrap();
    let events: Vec<Event> = lines.iter().rev().map(|h| h.event).collect();
    assert_eq!(
        events,
        [Event::SourceDown, Event::SourceUp, Event::Throttled]
    );
    assert!(health.down_now().is_empty());
}

#[test]
fn notifier_config_mistakes_name_their_key_and_secrets_stay_hidden() {
    let bad = |extra: &str| {
        let text = format!(
            "[sources.disk]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"disk\"\npath = \"/lib\"\n[notifiers.tg]\n{extra}\n"
        );
        Config::parse(&text, None, &[]).unwrap_err().to_string()
    };
    let e = bad("kind = \"telegram\"\nchat_id = 1");
    assert!(
        e.contains("notifiers.tg.bot_token") && e.contains("line"),
        "{e}"
    );
    let e = bad("kind = \"webhook\"\nurl = \"http://h/x\"\ntargets = [\"plex\"]");
    assert!(
        e.contains("notifiers.tg.targets") && e.contains("plex"),
        "{e}"
    );
    let e = bad("kind = \"webhook\"\nurl = \"http://h/x\"\nwatches = [\"disk:/other\"]");
    assert!(e.contains("notifiers.tg.watches"), "{e}");
    let e = bad("kind = \"discord\"\nurl = \"http://h/x\"\nbot_token = \"1:a\"");
    assert!(e.contains("does not apply to a discord notifier"), "{e}");
    let e = bad("kind = \"pager\"");
    assert!(e.contains("unknown notifier kind `pager`"), "{e}");
    // From the environment, and never shown.
    let text = "[sources.disk]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"disk\"\npath = \"/lib\"\n[notifiers.tg]\nkind = \"telegram\"\nchat_id = 5\n";
    let env = vec![("PPS_NOTIFIERS_TG_BOT_TOKEN".to_owned(), BOT.to_owned())];
    let c = Config::parse(text, None, &env).unwrap();
    assert!(!format!("{c:?}").contains("SECRET"), "no secret in Debug");
    match &c.notifiers["tg"].kind {
        pps::notify::NotifierKind::Telegram { bot_token, .. } => {
            assert_eq!(bot_token.expose(), BOT)
        }
        other => panic!("{other:?}"),
    }
}
