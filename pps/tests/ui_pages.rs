//! What a new user's trial of the web UI found, each as an in-process test: the UI's
//! router called directly with a real config file (the UI edits it), a logged-in
//! session, and pages read as HTML.

use crate::ui_attack::{PASSWORD, cookie_of, from, hash, login, router};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use pps::{App, Config};
use pps_core::memory::MemoryStore;
use std::sync::Arc;
use tower::ServiceExt as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Ui {
    _dir: tempfile::TempDir,
    store: Arc<MemoryStore>,
    router: axum::Router,
    cookie: String,
    csrf: String,
    root: String,
}

/// A UI on a config file with one watch of `<dir>/lib` and `targets`, logged in.
async fn ui(targets: &str) -> Ui {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lib");
    std::fs::create_dir_all(root.join("Films")).unwrap();
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    let root = root.to_str().unwrap().to_owned();
    let file = dir.path().join("pps.toml");
    std::fs::write(
        &file,
        format!(
            "[sources.disk]\nkind = \"local\"\n{targets}\n[[watch]]\nsource = \"disk\"\npath = {root:?}\n[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"tok-tok-tok-tok\"\n[ui]\npassword_hash = \"{}\"\n",
            hash()
        ),
    )
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let app = App::build_with_store(Config::load(&file).unwrap(), store.clone()).unwrap();
    let router = router(&app);
    let cookie = cookie_of(&login(&router, "127.0.0.1:4000", PASSWORD, None).await);
    let mut ui = Ui {
        _dir: dir,
        store,
        router,
        cookie,
        csrf: String::new(),
        root,
    };
    let overview = ui.page("/").await;
    ui.csrf = overview
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token on the page")
        .to_owned();
    ui
}

/// Where a redirect sends.
fn location(resp: &axum::response::Response) -> String {
    resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

impl Ui {
    /// Queues `changes` for the target `print` and parks them with `reason`; each change
    /// with an origin also gets its change line in the history.
    fn park(&self, changes: &[(pps_core::Change, Option<pps_core::store::Origin>)], reason: &str) {
        use pps_core::MtimeStore;
        use pps_core::store::{Commit, NewScan};
        let scope = self.store.scope("disk", &self.root).unwrap();
        let commit = Commit {
            scans: changes
                .iter()
                .map(|(c, _)| NewScan {
                    target: "print".into(),
                    change: c.clone(),
                })
                .collect(),
            changes: changes
                .iter()
                .filter_map(|(c, o)| Some((c.clone(), (*o)?)))
                .collect(),
            ..Commit::default()
        };
        self.store.commit(scope, &commit).unwrap();
        let ids: Vec<i64> = self
            .store
            .pending("print", 1000)
            .unwrap()
            .iter()
            .map(|q| q.id)
            .collect();
        self.store.park(&ids, reason).unwrap();
    }

    async fn send(&self, req: Request<Body>) -> axum::response::Response {
        self.router
            .clone()
            .oneshot(from("127.0.0.1:4000", req))
            .await
            .unwrap()
    }

    async fn page(&self, uri: &str) -> String {
        self.page_in(uri, "en").await
    }

    async fn page_in(&self, uri: &str, lang: &str) -> String {
        let resp = self
            .send(
                Request::get(uri)
                    .header("cookie", format!("{}; pps_lang={lang}", self.cookie))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn post(&self, uri: &str, form: &[(&str, &str)]) -> axum::response::Response {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        pairs.append_pair("csrf", &self.csrf);
        for (k, v) in form {
            pairs.append_pair(k, v);
        }
        self.send(
            Request::post(uri)
                .header("cookie", &self.cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(pairs.finish()))
                .unwrap(),
        )
        .await
    }
}

#[tokio::test]
async fn the_delete_confirmation_names_the_watch() {
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let page = ui.page("/watches").await;
    let want = format!("data-confirm=\"Delete the watch disk:{}?", ui.root);
    assert!(page.contains(&want), "{want} in {page}");
    let zh = ui.page_in("/watches", "zh").await;
    let want = format!("data-confirm=\"删除监控目录 disk:{}？", ui.root);
    assert!(zh.contains(&want), "{want} in {zh}");
}

/// A watch saved from the UI whose folder lands in no library of an Emby target: the
/// UI says so, as `pps check` does, instead of a bare "Saved".
#[tokio::test]
async fn a_watch_that_lands_in_no_library_is_saved_with_a_warning() {
    let emby = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/Library/VirtualFolders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"Name": "Films", "ItemId": "7", "Locations": ["/mnt/media/Films"]}
        ])))
        .mount(&emby)
        .await;
    Mock::given(method("GET"))
        .and(path("/System/Info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ServerName": "nas", "Version": "4.8", "ProductName": "Emby Server"
        })))
        .mount(&emby)
        .await;
    let ui = ui(&format!(
        "[targets.emby]\nkind = \"emby\"\nurl = \"{}\"\napi_key = \"emby-key-123\"\npath_mapping = [{{ from = \"/\", to = \"/mnt/media/\" }}]\n",
        emby.uri()
    ))
    .await;
    // No service runs the reload here: the save answers once its wait for it ends.
    let other = std::path::Path::new(&ui.root).with_file_name("other");
    let resp = ui
        .post(
            "/watches/save",
            &[
                ("source", "disk"),
                ("path", other.to_str().unwrap()),
                ("interval", "10m"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    assert!(to.contains("nolib="), "{to}");
    let page = ui.page(&to).await;
    assert!(
        page.contains("is in no library: its scans would be parked"),
        "{page}"
    );
    assert!(page.contains("emby"), "{page}");
    // Nothing reloads this UI's config (no service::run): it says when the edit applies.
    assert!(page.contains("applies at its next start"), "{page}");
}

/// Retry on a parked scan says what it did (it used to answer with the bare page).
#[tokio::test]
async fn retry_says_how_many_scans_were_queued_again() {
    use pps_core::{Change, MtimeStore, Update};
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let path = format!("{}/Films/Dune (2021)", ui.root);
    ui.park(
        &[(Change::new(&path, Update::Created, true), None)],
        "the library refused it",
    );
    let overview = ui.page("/").await;
    assert!(overview.contains("the library refused it"), "{overview}");
    let resp = ui.post("/actions/retry", &[("target", "print")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    let page = ui.page(&to).await;
    assert!(
        page.contains("Queued again: 1; their targets are tried now."),
        "{page}"
    );
    assert_eq!(ui.store.parked("print").unwrap().len(), 0);
}

/// "Drop all" on the Overview drops every queued scan of a target (as `pps drop
/// TARGET`), and a long parked list says how much of it is shown.
#[tokio::test]
async fn drop_all_empties_a_target_s_queue() {
    use pps_core::{Change, MtimeStore, Update};
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let changes: Vec<_> = (0..30)
        .map(|i| {
            let path = format!("{}/Films/f{i}.mkv", ui.root);
            (Change::new(path, Update::Created, false), None)
        })
        .collect();
    ui.park(&changes, "no library");
    let overview = ui.page("/").await;
    assert!(
        overview.contains("print: 20 of 30 parked scans shown"),
        "{overview}"
    );
    assert!(
        overview.contains("Drop all 30 scans queued for print"),
        "{overview}"
    );
    let resp = ui.post("/actions/drop", &[("target", "print")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(ui.store.parked("print").unwrap().is_empty());
    assert!(ui.store.pending("print", 10).unwrap().is_empty());
}

/// Activity says what made pps look for each change, and a delivery's line can be
/// scanned again from where it stands (autopulse's per-line retry).
#[tokio::test]
async fn activity_shows_each_change_s_origin_and_scans_a_line_again() {
    use pps_core::store::Origin;
    use pps_core::{Change, MtimeStore, Update};
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let path = format!("{}/Films", ui.root);
    ui.park(
        &[(
            Change::new(&path, Update::Created, true),
            Some(Origin::Webhook),
        )],
        "the library refused it",
    );

    let page = ui.page("/activity").await;
    assert!(page.contains("named by a webhook"), "{page}");
    // One button, on the parked line (the change line has no target).
    assert_eq!(page.matches("Scan again").count(), 1, "{page}");
    let form = page
        .split("<form class=\"again\"")
        .nth(1)
        .and_then(|f| f.split("</form>").next())
        .expect("a Scan again form");
    for field in [
        format!("name=\"path\" value=\"{path}\""),
        "name=\"target\" value=\"print\"".to_owned(),
        "name=\"source\" value=\"disk\"".to_owned(),
        format!("name=\"csrf\" value=\"{}\"", ui.csrf),
    ] {
        assert!(form.contains(&field), "{field} in {form}");
    }
    let zh = ui.page_in("/activity", "zh").await;
    assert!(
        zh.contains("重新扫描") && zh.contains("Webhook 通知"),
        "{zh}"
    );

    let resp = ui
        .post(
            "/browse/scan",
            &[
                ("back", "activity"),
                ("source", "disk"),
                ("path", &path),
                ("target", "print"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    assert!(to.starts_with("/activity?done=queued&scanned="), "{to}");
    // The page says what went where, and the history that it was a rescan by hand.
    let page = ui.page(&to).await;
    assert!(
        page.contains(&format!("Scan of {path} queued for print.")),
        "{page}"
    );
    assert!(
        page.contains("rescan of the folder, <span class=\"origin\">asked for by hand</span>"),
        "{page}"
    );
    let queued = ui.store.pending("print", 10).unwrap();
    assert_eq!(queued.len(), 1, "queued once more: {queued:?}");
    assert_eq!(queued[0].change.path, path);
    // Refused again: it replaces the parked scan of that path, it is not listed twice.
    ui.store.park(&[queued[0].id], "refused again").unwrap();
    let parked = ui.store.parked("print").unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].last_error.as_deref(), Some("refused again"));

    // A typed path that is wrong comes back to Activity with the error, the form as
    // it was sent; one pps never saw is no deletion to push.
    for (typed, error) in [
        (
            "/elsewhere/x".to_owned(),
            "That path is outside every watch in force.",
        ),
        (
            format!("{}/Films/Ghost (1990)", ui.root),
            "is not at the source, and pps never saw it there",
        ),
    ] {
        let resp = ui
            .post(
                "/browse/scan",
                &[
                    ("back", "activity"),
                    ("source", "disk"),
                    ("path", &typed),
                    ("target", "print"),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = location(&resp);
        let page = ui.page(&to).await;
        assert!(
            page.contains("<details class=\"scan-typed\" open>"),
            "{page}"
        );
        assert!(page.contains(error), "{error}: {page}");
        assert!(
            page.contains(&format!("name=\"path\" required value=\"{typed}\"")),
            "{page}"
        );
        assert_eq!(ui.store.pending("print", 10).unwrap().len(), 0, "{typed}");
    }
}

/// An unknown address under the UI is a page a browser can leave, in the reader's
/// language (it was the server's JSON 404); a script still gets JSON.
#[tokio::test]
async fn an_unknown_address_is_a_page_with_a_way_back() {
    let ui = ui("").await;
    let get = |accept: &'static str, lang: &'static str| {
        Request::get("/no/such/page")
            .header("cookie", format!("{}; pps_lang={lang}", ui.cookie))
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap()
    };
    for (lang, words) in [("en", "There is no page here"), ("zh", "这里没有页面")] {
        let resp = ui.send(get("text/html,application/xhtml+xml", lang)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains(words) && body.contains("href=\"/\""),
            "{body}"
        );
        // The logged-in reader keeps the menu (and the way out).
        assert!(
            body.contains("href=\"/watches\"") && body.contains("action=\"/logout\""),
            "{body}"
        );
    }
    // Without a session it shows no more than the login page does.
    let resp = ui
        .send(
            Request::get("/no/such/page")
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        !body.contains("/watches") && !body.contains("logout"),
        "{body}"
    );
    let resp = ui.send(get("application/json", "en")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    // Its language link works as on every page: remembered, then the same address.
    let resp = ui.send(get("text/html", "en")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = ui
        .send(
            Request::get("/no/such/page?lang=zh")
                .header("cookie", &ui.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()[header::LOCATION], "/no/such/page");
    let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("pps_lang=zh"), "{set}");
    // A mistyped action is refused the same way, whatever its method.
    let resp = ui.post("/actions/nothing", &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// With two sources, the add-watch form makes the user choose one (it preselected the
/// alphabetically first); the Browser's "Watch this folder" still comes with its own.
#[tokio::test]
async fn the_add_watch_form_preselects_no_source_of_several() {
    let ui = ui("[sources.cloud]\nkind = \"local\"\n").await;
    let page = ui.page("/watches").await;
    let select = page
        .split("<select name=\"source\" required>")
        .nth(1)
        .and_then(|s| s.split("</select>").next())
        .expect("the source choice");
    assert!(
        select.starts_with("<option value=\"\" disabled selected>Choose a source</option>"),
        "{select}"
    );
    assert!(!select.contains("\" selected>cloud") && !select.contains("\" selected>disk"));
    let page = ui.page("/watches?source=disk&path=/x").await;
    let select = page
        .split("<select name=\"source\" required>")
        .nth(1)
        .and_then(|s| s.split("</select>").next())
        .unwrap();
    assert!(
        select.contains("<option value=\"disk\" selected>disk</option>"),
        "{select}"
    );
    assert!(!select.contains("Choose a source"), "{select}");
}

/// `pps check` on the Config page speaks the page's language; what the system said (a
/// path, an error) stays as it was said.
#[tokio::test]
async fn the_check_on_the_config_page_is_in_the_page_s_language() {
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let home = ui.page("/").await;
    let k = home
        .split("href=\"/browse?k=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the Browser link carries the view token");
    let check = format!("/config?check=1&k={k}");
    let zh = ui.page_in(&check, "zh").await;
    assert!(zh.contains("来源 disk（本地）：正常"), "{zh}");
    assert!(
        zh.contains(&format!("监控 disk:{}：根目录已列出，1 项", ui.root)),
        "{zh}"
    );
    assert!(!zh.contains("root listed"), "{zh}");
    assert!(
        zh.contains("目标 print（stdout）：正常，接受任何路径（它没有媒体库）"),
        "{zh}"
    );
    // The log levels too.
    let logs = ui.page_in("/logs", "zh").await;
    assert!(
        logs.contains("<option value=\"info\" selected>信息</option>"),
        "{logs}"
    );
    let en = ui.page_in(&check, "en").await;
    assert!(
        en.contains("target print (stdout): ok, it takes any path (it has no libraries)"),
        "{en}"
    );
    assert!(
        en.contains(&format!("watch disk:{}: root listed, 1 entry", ui.root)),
        "{en}"
    );
}

#[tokio::test]
async fn what_scan_now_finds_reads_as_asked_for_by_hand() {
    use pps_core::MtimeStore;
    use pps_core::store::{Event, HistoryQuery, Origin};
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let scan_now = || async {
        let resp = ui
            .post("/watches/scan", &[("index", "0"), ("expect", &ui.root)])
            .await;
        assert!(resp.status().is_redirection(), "{}", resp.status());
        // The pass runs in the background; the watch list says when it is done.
        for _ in 0..100_000 {
            if ui.page("/watches").await.contains("Scanned") {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("Scan now never finished");
    };
    scan_now().await; // the baseline: nothing to report
    std::fs::write(format!("{}/Films/New (2026).mkv", ui.root), b"x").unwrap();
    scan_now().await;
    let changes: Vec<_> = ui
        .store
        .history(&HistoryQuery {
            events: vec![Event::Change],
            limit: 100,
            ..HistoryQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|h| (h.change.path.clone(), h.origin()))
        .collect();
    assert_eq!(
        changes,
        [(
            format!("{}/Films/New (2026).mkv", ui.root),
            Some(Origin::Manual)
        )]
    );
    let page = ui.page("/activity").await;
    assert!(page.contains("asked for by hand"), "{page}");
}

#[tokio::test]
async fn a_refusal_reads_in_the_page_s_language() {
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let post_zh = |uri: &'static str, form: Vec<(&'static str, String)>| {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        pairs.append_pair("csrf", &ui.csrf);
        for (k, v) in &form {
            pairs.append_pair(k, v);
        }
        Request::post(uri)
            .header("cookie", format!("{}; pps_lang=zh", ui.cookie))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(pairs.finish()))
            .unwrap()
    };
    let body = |resp: axum::response::Response| async move {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    // The one watch cannot be deleted.
    let resp = ui
        .send(post_zh(
            "/watches/delete",
            vec![("index", "0".into()), ("expect", ui.root.clone())],
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let page = body(resp).await;
    assert!(page.contains("最后一个 [[watch]] 不能删除"), "{page}");
    assert!(!page.contains("cannot be deleted"), "{page}");
    // A scan of a path outside every watch, from the Browser.
    let resp = ui
        .send(post_zh(
            "/browse/scan",
            vec![
                ("source", "disk".into()),
                ("path", "/elsewhere".into()),
                ("target", "print".into()),
            ],
        ))
        .await;
    let page = body(resp).await;
    assert!(page.contains("该路径不在任何生效的目录内"), "{page}");
    // A watch index that names none.
    let resp = ui
        .send(post_zh(
            "/watches/scan",
            vec![("index", "7".into()), ("expect", "/x".into())],
        ))
        .await;
    let page = body(resp).await;
    assert!(page.contains("没有这个目录"), "{page}");
}

/// Attack item 9: the UI saved watch roots `pps check` fails. Each is refused, named,
/// and the file stays byte-identical.
#[tokio::test]
async fn the_ui_refuses_a_root_pps_check_would_fail() {
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let file = ui._dir.path().join("pps.toml");
    let before = std::fs::read(&file).unwrap();
    let missing = format!("{}/No Such Folder", ui.root);
    let long = format!("/{}", "a".repeat(5_000));
    for (path, why) in [
        (missing.as_str(), "Not saved: source disk has no folder"),
        ("/films\u{0}x", "control character"),
        ("/films\nx", "control character"),
        (long.as_str(), "bytes long; a path is at most 4096"),
    ] {
        let resp = ui
            .post(
                "/watches/save",
                &[
                    ("source", "disk"),
                    ("path", path),
                    ("interval", "10m"),
                    ("enabled", "on"),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path:.40}");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        let page = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(page.contains(why), "{why} in {page:.3000}");
        // The form comes back as sent, to be corrected.
        assert!(page.contains("name=\"path\""), "{page:.3000}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "{path:.40}");
    }
    // 70 KB is past what a UI form may send (64 KiB): refused before it is read.
    let huge = format!("/{}", "a".repeat(70_000));
    let resp = ui
        .post("/watches/save", &[("source", "disk"), ("path", &huge)])
        .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(std::fs::read(&file).unwrap(), before);
    // A disabled watch is not listed, so its root is not asked for.
    let resp = ui
        .post(
            "/watches/save",
            &[("source", "disk"), ("path", &missing), ("interval", "10m")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_ne!(std::fs::read(&file).unwrap(), before);
    // An edit that keeps a watch's source and folder lists nothing: the watch in force
    // (its folder gone meanwhile, a mount down) can still get another interval.
    std::fs::remove_dir_all(&ui.root).unwrap();
    let root = ui.root.clone();
    let resp = ui
        .post(
            "/watches/save",
            &[
                ("index", "0"),
                ("expect", &root),
                ("source", "disk"),
                ("path", &root),
                ("interval", "20m"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("interval = \"20m\""), "{text}");
}

/// A form sent with a stale CSRF token (a second tab after logging in again), or after
/// the session ended: a page in the reader's language, or the login; never bare text.
#[tokio::test]
async fn a_stale_form_or_an_ended_session_is_answered_in_words() {
    let ui = ui("[targets.print]\nkind = \"stdout\"\n").await;
    let resp = ui
        .send(
            Request::post("/watches/toggle")
                .header("cookie", format!("{}; pps_lang=zh", ui.cookie))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("csrf=stale&index=0"))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    let page = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(page.contains("此表单来自之前的会话或页面"), "{page}");
    // No session: a browser's form goes to the login; a script gets the 401.
    let post = |accept: &'static str| {
        Request::post("/watches/toggle")
            .header(header::ACCEPT, accept)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("csrf=x&index=0"))
            .unwrap()
    };
    let resp = ui.send(post("text/html,application/xhtml+xml")).await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(location(&resp), "/login");
    let resp = ui.send(post("application/json")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
