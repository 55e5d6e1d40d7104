//! The web UI (issue 17) over real HTTP: `pps run` as a process with `[ui]` set from
//! `pps passwd`, driven by an HTTP client that keeps its cookie by hand, as a browser
//! would. (The browser itself drives it in scripts/test-ui.)

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "ui-test-trigger-token-7";
const PASSWORD: &str = "correct horse battery";
/// A file name that is markup (a name cannot hold `/`, so no `</script>`).
const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'.mkv";

fn pps() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
    c.env_remove("PPS_LOG").env_remove("PPS_CONFIG");
    c
}

fn hash(password: &str) -> String {
    let mut child = pps()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(!h.contains(password));
    h
}

struct Svc {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    media: std::path::PathBuf,
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Svc {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("Show")).unwrap();
    let port = free_port();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.nas]
kind = "local"

[targets.print]
kind = "stdout"

# Refuses every scan for good: its scans are parked.
[targets.broken]
kind = "command"
program = "/bin/sh"
args = ["-c", "echo no library for this >&2; exit 1", "sh"]

[server]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"

[ui]
password_hash = "{}"
base_path = "/pps"
# The test plays the proxy: it appends X-Forwarded-For from loopback.
trusted_proxies = ["127.0.0.1"]

[[watch]]
source = "nas"
path = "{}"
interval = "1s"
"#,
            hash(PASSWORD),
            media.display()
        ),
    )
    .unwrap();
    run_service(dir, &config, port, media)
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `pps run` on `config` in `dir`, once it listens on `port`.
fn run_service(
    dir: tempfile::TempDir,
    config: &std::path::Path,
    port: u16,
    media: std::path::PathBuf,
) -> Svc {
    let child = pps()
        .current_dir(dir.path())
        .arg("-c")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the service never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    Svc {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
        media,
    }
}

fn client() -> reqwest::Client {
    // reqwest is built without a TLS provider of its own; these requests are plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The CSRF token a page embeds in its forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with the CSRF token");
    page[at + 19..].split('"').next().unwrap().to_owned()
}

async fn wait_for_page(c: &reqwest::Client, url: &str, cookie: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = c
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains(needle) || Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `name=value` of the session cookie a login answered with.
fn session_cookie(r: &reqwest::Response) -> String {
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn login(c: &reqwest::Client, svc: &Svc, password: &str) -> reqwest::Response {
    c.post(format!("{}/pps/login", svc.base))
        .form(&[("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_behind_its_password_shows_activity_live_and_escapes_names() {
    let svc = start();
    let c = client();
    let base = format!("{}/pps/", svc.base);

    // Nothing without a session: every page sends to the login.
    let r = c.get(&base).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/pps/login");
    let r = c.get(format!("{}/pps", svc.base)).send().await.unwrap();
    assert_eq!(location(&r), "/pps/", "the base path without its slash");

    // A wrong password is refused; the right one opens a session in a strict cookie.
    let r = login(&c, &svc, "wrong password!").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("Wrong password."));
    let r = login(&c, &svc, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/pps/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();

    // The overview: the watch, both targets, and the page's security headers.
    let r = c.get(&base).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("nas:{}", svc.media.display())),
        "{page}"
    );
    assert!(page.contains("broken") && page.contains("print"), "{page}");
    let csrf = csrf_of(&page);

    // Live: the events stream of Activity sends a new change as an escaped row.
    let activity = format!("{}/pps/activity", svc.base);
    let mut events = c
        .get(format!("{activity}/events?after=0"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        events.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    std::fs::write(svc.media.join("Show").join(HOSTILE), "x").unwrap();
    // Escaped as HTML text (maud leaves `'` as it is: harmless in text, and every
    // attribute is double-quoted).
    let escaped = "&lt;img src=x onerror=alert(1)&gt;&quot;'.mkv";
    let mut streamed = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !streamed.contains(escaped) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), events.chunk()).await {
            Ok(Ok(Some(b))) => streamed.push_str(&String::from_utf8_lossy(&b)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    assert!(streamed.contains("data: <tr"), "{streamed}");
    assert!(streamed.contains(escaped), "{streamed}");
    assert!(!streamed.contains("<img"), "{streamed}");
    drop(events);

    // The page shows the name as text, never as markup; the broken target parked it.
    let page = wait_for_page(&c, &activity, &cookie, "ev-parked").await;
    assert!(page.contains(escaped) && !page.contains(HOSTILE), "{page}");
    assert!(
        page.contains("ev-sent") && page.contains("ev-parked"),
        "{page}"
    );
    let filtered = c
        .get(format!("{activity}?event=parked&target=broken"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        filtered.contains("ev-parked") && !filtered.contains("ev-sent"),
        "{filtered}"
    );

    // Parked scans on the overview, with their reason; a retry needs the CSRF token.
    let page = wait_for_page(&c, &base, &cookie, "no library for this").await;
    assert!(page.contains("no library for this"), "{page}");
    let retry = format!("{}/pps/actions/retry", svc.base);
    let r = c
        .post(&retry)
        .header("cookie", &cookie)
        .form(&[("target", "broken")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let r = c
        .post(&retry)
        .header("cookie", &cookie)
        .form(&[("target", "broken"), ("csrf", "0".repeat(64).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a wrong CSRF token");
    let r = c
        .post(&retry)
        .header("cookie", &cookie)
        .form(&[("target", "broken"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Retried, it is refused and parked again: a second parked line in Activity.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = c
            .get(format!("{activity}?event=parked"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.matches("ev-parked").count() >= 2 || Instant::now() > deadline {
            assert!(page.matches("ev-parked").count() >= 2, "{page}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The config in force, secrets hidden.
    let page = c
        .get(format!("{}/pps/config", svc.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("••••"), "{page}");
    assert!(!page.contains(TOKEN) && !page.contains("$argon2"), "{page}");

    // A session opens no trigger: those keep their token.
    let r = c
        .post(format!("{}/triggers/manual", svc.base))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"path": svc.media.display().to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Chinese from the browser's language, and a switch back that sticks.
    let mut zh = HeaderMap::new();
    zh.insert(
        "accept-language",
        HeaderValue::from_static("zh-CN,zh;q=0.9"),
    );
    zh.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
    let page = c
        .get(&base)
        .headers(zh.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("概览") && page.contains("lang=\"zh-CN\""),
        "{page}"
    );
    let r = c
        .get(format!("{base}?lang=en"))
        .headers(zh.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("pps_lang=en")
    );

    // Logout ends the session.
    let r = c
        .post(format!("{}/pps/logout", svc.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c.get(&base).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(location(&r), "/pps/login", "the old cookie opens nothing");

    // A right password gave the earlier failure back. Twenty guesses sent at once are
    // held to five checked; the rest, and then the right one, wait.
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let c = c.clone();
            let url = format!("{}/pps/login", svc.base);
            tokio::spawn(async move {
                c.post(url)
                    .form(&[("password", format!("guess {i}"))])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut checked = 0;
    for g in guesses {
        match g.await.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            s => assert_eq!(s, StatusCode::TOO_MANY_REQUESTS),
        }
    }
    assert_eq!(checked, 5, "only five guesses were checked");
    let r = login(&c, &svc, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Behind a proxy on this machine, each client counts by the address it appended.
    let r = c
        .post(format!("{}/pps/login", svc.base))
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https")
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "another client is not locked out"
    );
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

/// Reads one HTTP/1.1 answer's head from a raw connection.
fn head_of(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_bounds_slow_bodies_streams_and_stale_connections() {
    let svc = start();
    let c = client();
    let r = login(&c, &svc, PASSWORD).await;
    let cookie = session_cookie(&r);
    let addr = svc.base.trim_start_matches("http://").to_owned();

    // A head that promises a body and sends none is answered within the body timeout
    // (10 s), not held forever.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(b"POST /pps/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let head = head_of(&mut slow);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 408") || head.starts_with("HTTP/1.1 400"),
        "{head}"
    );

    // At most eight live views at once; the ninth is told to close one. A client of
    // its own: a pooled connection left idle through the slow-client waits above can
    // be closed by pps's idle timeout just as it is reused (IncompleteMessage).
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let events = format!("{}/pps/activity/events", svc.base);
    let mut open = Vec::new();
    for _ in 0..8 {
        let r = c
            .get(&events)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let r = c
        .get(&events)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    open.truncate(1);
    // A slot comes back when its stream closes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = format!("{}/pps/logs/events", svc.base);
    let mut stream = loop {
        let r = c.get(&logs).header("cookie", &cookie).send().await.unwrap();
        if r.status() == StatusCode::OK {
            break r;
        }
        assert!(Instant::now() < deadline, "no slot came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(open);

    // A stream opened before logout ends with the session.
    let page = c
        .get(format!("{}/pps/", svc.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    c.post(format!("{}/pps/logout", svc.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");

    // A kept-alive connection from before a reload is sent again to the same place,
    // never to another host.
    let mut kept = std::net::TcpStream::connect(&addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = head_of(&mut kept);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    {
        use std::io::Read;
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let mut body = vec![0; len];
        kept.read_exact(&mut body).unwrap();
    }
    // The passes counted so far, which a reload must not reset (it is no restart). The
    // client follows no redirect: a kept-alive connection from before a reload is
    // answered 307 once, and the request goes again.
    let passes = || async {
        loop {
            let r = c
                .get(format!("{}/metrics", svc.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::TEMPORARY_REDIRECT {
                continue;
            }
            let m = r.text().await.unwrap();
            return m
                .lines()
                .filter(|l| l.starts_with("pps_pass_duration_seconds_count"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    };
    let before_reload = passes().await;
    assert!(before_reload > 0, "passes ran before the reload");
    let file = svc._dir.path().join("pps.toml");
    let edited = std::fs::read_to_string(&file).unwrap().replacen(
        "interval = \"1s\"",
        "interval = \"2s\"",
        1,
    );
    std::fs::write(&file, edited).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.get(format!("{}/health", svc.base)).send().await;
        if let Ok(r) = r
            && r.status() == StatusCode::OK
        {
            // A fresh connection that reached the new config's router.
            let page = c
                .get(format!("{}/pps/login", svc.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(page.contains("Log in"));
        }
        let log = std::fs::read_to_string(svc._dir.path().join("stderr.log")).unwrap_or_default();
        if log.contains("config reloaded") {
            break;
        }
        assert!(Instant::now() < deadline, "the hand edit was never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_reload = passes().await;
    assert!(
        after_reload >= before_reload,
        "the counters went on across the reload: {before_reload} then {after_reload}"
    );
    kept.write_all(b"GET //evil.example/phish?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = head_of(&mut kept);
    assert!(head.starts_with("HTTP/1.1 307"), "{head}");
    let location = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(str::to_owned)
        })
        .unwrap();
    assert_eq!(location.trim(), "/evil.example/phish?x=1");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );

    // A save whose `index` is not a place is refused, the file untouched. (The client's
    // own kept-alive connection from before the reload is answered 307 first.)
    let mut r = login(&c, &svc, PASSWORD).await;
    while r.status() == StatusCode::TEMPORARY_REDIRECT {
        r = login(&c, &svc, PASSWORD).await;
    }
    let cookie = session_cookie(&r);
    let page = get(&c, &format!("{}/pps/watches", svc.base), &cookie).await;
    let csrf = csrf_of(&page);
    let before = std::fs::read(&file).unwrap();
    let media = svc.media.display().to_string();
    let r = c
        .post(format!("{}/pps/watches/save", svc.base))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("index", "-3"),
            ("source", "nas"),
            ("path", media.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

/// A page, following the `307` a kept-alive connection to the previous config's
/// server answers (as a browser does).
async fn get(c: &reqwest::Client, url: &str, cookie: &str) -> String {
    for _ in 0..3 {
        // As a browser sends for an address the user typed (a check or a listing from
        // elsewhere needs the page's token; `ui_attack::item_8_…` tests that).
        let r = c
            .get(url)
            .header("cookie", cookie)
            .header("sec-fetch-site", "none")
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TEMPORARY_REDIRECT {
            assert_eq!(r.headers()["connection"], "close");
            continue;
        }
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        return r.text().await.unwrap();
    }
    panic!("{url} kept redirecting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_edited_in_pps_toml_and_applied_without_a_restart() {
    let svc = start();
    let c = client();
    let r = login(&c, &svc, PASSWORD).await;
    let cookie = session_cookie(&r);
    let watches = format!("{}/pps/watches", svc.base);
    let save = format!("{}/pps/watches/save", svc.base);
    let page = get(&c, &watches, &cookie).await;
    let media = svc.media.display().to_string();
    assert!(page.contains(&media) && page.contains("1s"), "{page}");
    let csrf = csrf_of(&page);
    let file = svc._dir.path().join("pps.toml");
    let before = std::fs::read(&file).unwrap();

    // An invalid interval: refused with `pps check`'s message, the file byte-identical.
    let r = c
        .post(&save)
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("index", "0"),
            ("expect", media.as_str()),
            ("source", "nas"),
            ("path", media.as_str()),
            ("interval", "soon"),
            ("enabled", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = r.text().await.unwrap();
    assert!(page.contains("watch[0].interval"), "{page}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the file is untouched"
    );
    // The message is the one `pps check` prints for that file (`pps.toml` stays as
    // it was, so the edited text is checked as a copy in a folder of its own).
    let trial_dir = svc._dir.path().join("trial");
    std::fs::create_dir_all(&trial_dir).unwrap();
    let trial = trial_dir.join("pps.toml");
    std::fs::write(
        &trial,
        String::from_utf8(before.clone()).unwrap().replacen(
            "interval = \"1s\"",
            "interval = \"soon\"",
            1,
        ),
    )
    .unwrap();
    let check = pps().arg("-c").arg(&trial).arg("check").output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    let said = String::from_utf8_lossy(&check.stderr)
        .lines()
        .find(|l| l.contains("watch[0].interval"))
        .expect("pps check names the key")
        .trim_start_matches("error: ")
        .replace(&trial.display().to_string(), &file.display().to_string());
    let html = said
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert!(page.contains(&html), "{html}\n{page}");

    // A new watch, added from the UI: written after the comments, applied at once.
    let films = svc.media.parent().unwrap().join("films");
    std::fs::create_dir_all(films.join("Film")).unwrap();
    let films_s = films.display().to_string();
    let r = c
        .post(&save)
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("source", "nas"),
            ("path", films_s.as_str()),
            ("interval", "1s"),
            ("exclude", "*.part\n"),
            ("targets", "print"),
            ("enabled", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        "/pps/watches?done=saved",
        "applied, not only written"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# Refuses every scan for good"), "{text}");
    assert!(
        text.ends_with(&format!(
            "[[watch]]\nsource = \"nas\"\npath = \"{films_s}\"\ninterval = \"1s\"\nexclude = [\"*.part\"]\ntargets = [\"print\"]\n"
        )),
        "{text}"
    );
    // The same session goes on after the reload; the new watch is in force and finds a
    // new file once its baseline is recorded.
    let page = get(&c, &watches, &cookie).await;
    assert!(page.contains(&films_s), "{page}");
    let overview = format!("{}/pps/", svc.base);
    let label = format!("nas:{films_s}");
    let page = wait_for_page(&c, &overview, &cookie, &label).await;
    assert!(page.contains(&label), "{page}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::write(films.join("Film").join("film.mkv"), "x").unwrap();
    let activity = format!("{}/pps/activity?path=film.mkv", svc.base);
    let page = wait_for_page(&c, &activity, &cookie, "ev-sent").await;
    assert!(
        page.contains("film.mkv") && page.contains("ev-sent"),
        "{page}"
    );
    // The watch filter: that watch's lines only.
    let by_watch = |root: &str| format!("{}/pps/activity?watch=nas:{root}", svc.base);
    let page = get(&c, &by_watch(&films_s), &cookie).await;
    assert!(page.contains("film.mkv"), "{page}");
    let page = get(&c, &by_watch(&media), &cookie).await;
    assert!(
        !page.contains("film.mkv") && page.contains("selected"),
        "{page}"
    );

    // A hand edit of the file is picked up by the running service.
    let edited = std::fs::read_to_string(&file).unwrap().replacen(
        "interval = \"1s\"\n",
        "interval = \"3s\"\n",
        1,
    );
    std::fs::write(&file, &edited).unwrap();
    let config = format!("{}/pps/config", svc.base);
    let page = wait_for_page(&c, &config, &cookie, "interval = &quot;3s&quot;").await;
    assert!(page.contains("interval = &quot;3s&quot;"), "{page}");

    // Disable: `enabled = false` in the file; the watch stays listed, greyed.
    let page = get(&c, &watches, &cookie).await;
    let csrf = csrf_of(&page);
    let r = c
        .post(format!("{}/pps/watches/toggle", svc.base))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("index", "1"),
            ("expect", films_s.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("enabled = false")
    );
    let page = get(&c, &watches, &cookie).await;
    assert!(page.contains("class=\"off\""), "{page}");
    // Without the CSRF token nothing is written.
    let before = std::fs::read(&file).unwrap();
    let r = c
        .post(format!("{}/pps/watches/delete", svc.base))
        .header("cookie", &cookie)
        .form(&[("index", "1"), ("expect", films_s.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // The browser: the live listing beside the stored state, names linked.
    let page = get(
        &c,
        &format!("{}/pps/browse?source=nas&path={}", svc.base, media),
        &cookie,
    )
    .await;
    assert!(
        page.contains("Show/</a>") && page.contains("st-same"),
        "{page}"
    );
    // A local source has no call budget: no note about spending one.
    assert!(!page.contains("one call against the source"), "{page}");

    // Re-index from the UI: in the background, its progress then its result on the list.
    let page = get(&c, &watches, &cookie).await;
    let csrf = csrf_of(&page);
    let r = c
        .post(format!("{}/pps/watches/reindex", svc.base))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("index", "0"),
            ("expect", media.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/pps/watches?done=reindex_started");
    let page = wait_for_page(&c, &watches, &cookie, "Re-indexed ").await;
    assert!(
        page.contains("Re-indexed ") && page.contains(" folders listed"),
        "{page}"
    );

    // The overview names each source with its budget; the config page runs pps check.
    let page = get(&c, &format!("{}/pps/", svc.base), &cookie).await;
    assert!(
        page.contains("id=\"sources\"")
            && page.contains("local (no budget)")
            && page.contains("Passes since start"),
        "{page}"
    );
    let page = get(&c, &format!("{}/pps/config?check=1", svc.base), &cookie).await;
    assert!(page.contains("source nas (local): ok"), "{page}");
    assert!(
        page.contains(&format!("watch nas:{media}: root listed")),
        "{page}"
    );
    assert!(page.contains("target broken (command): ok"), "{page}");

    // Logs: what stderr shows, the UI's own actions among them, and a download.
    let page = get(&c, &format!("{}/pps/logs", svc.base), &cookie).await;
    assert!(page.contains("web UI: logged in"), "{page}");
    assert!(page.contains("config reloaded"), "{page}");
    let page = get(&c, &format!("{}/pps/logs?level=warn", svc.base), &cookie).await;
    assert!(!page.contains("web UI: logged in"), "{page}");
    assert!(
        page.contains("refused"),
        "the refused edit is a warning: {page}"
    );
    let r = c
        .get(format!("{}/pps/logs/download", svc.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("pps.log")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains("INFO  pps::http::ui::auth: web UI: logged in"),
        "{text}"
    );
    assert!(!text.contains(TOKEN) && !text.contains(PASSWORD));
    let r = c
        .get(format!("{}/pps/logs/download", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn the_ui_is_off_without_a_password_and_a_password_is_never_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pps.toml");
    let write = |ui: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[sources.nas]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n[server]\nlisten = \"127.0.0.1:9\"\ntoken = \"t\"\n{ui}\n[[watch]]\nsource = \"nas\"\npath = \"{}\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
    };
    let check = || {
        let out = pps().arg("-c").arg(&cfg).arg("status").output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    write("[ui]\npassword_hash = \"hunter22\"");
    let err = check();
    assert!(
        err.contains("ui.password_hash") && err.contains("pps passwd"),
        "{err}"
    );
    assert!(!err.contains("hunter22"), "{err}");
    write("[ui]\nbase_path = \"/a b/\"");
    assert!(check().contains("ui.base_path"));
    // Too short a password is refused by pps passwd.
    let mut child = pps()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "short").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
}

/// Issue 24: the Overview shows the calls a cloud source actually made (every listing
/// of every pps process of the store), with a chart of the last two days against the
/// budget drawn as inline SVG, and how soon each watch finds a change; the Browser's
/// listings of a cloud folder draw from, and count against, that same budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_the_calls_made_and_the_browser_counts_against_the_budget() {
    use pps_clouddrive::mock::{Method, MockServer, MockTree};
    let mut tree = MockTree::new();
    for s in 0..4 {
        tree.write_file(&format!("/115/TV/Show {s}/e1.mkv"), 1);
    }
    let cd2 = MockServer::builder()
        .api_token("ui-cd2-token")
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.cd2]
kind = "clouddrive2"
url = "{}"
api_token = "ui-cd2-token"
max_queries_per_second = 20
max_calls_per_hour = 5000
push = false

[targets.print]
kind = "stdout"

[server]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"

[ui]
password_hash = "{}"
base_path = "/pps"

[[watch]]
source = "cd2"
path = "/115/TV"
interval = "2s"
"#,
            cd2.url(),
            hash(PASSWORD),
        ),
    )
    .unwrap();
    let svc = run_service(dir, &config, port, std::path::PathBuf::new());
    let c = client();
    let cookie = session_cookie(&login(&c, &svc, PASSWORD).await);
    let overview = format!("{}/pps/", svc.base);
    // The baseline's 5 calls and the root's listings every 2 s show as calls made.
    let page = wait_for_page(&c, &overview, &cookie, "Calls in the last hour").await;
    assert!(page.contains("<svg"), "the chart is drawn in the page");
    assert!(page.contains("Calls per hour, last two days"), "{page}");
    assert!(
        page.contains("the rate&#39;s budget per hour")
            || page.contains("the rate's budget per hour"),
        "{page}"
    );
    assert!(
        !page.contains("<script src=\"http"),
        "nothing from the internet"
    );
    assert!(
        page.contains("new title in the root: 7.0s"),
        "interval 2 s + a pass: {page}"
    );
    assert!(page.contains("— / 5000 / —"), "the ceilings: {page}");
    let status = |config: &std::path::Path| -> serde_json::Value {
        let out = pps()
            .arg("-c")
            .arg(config)
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let config = svc._dir.path().join("pps.toml");
    // Past the baseline (5 folders) and a listing of the root at its interval.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (made, seen) = loop {
        let seen = cd2.calls(Method::GetSubFiles);
        let made = status(&config)["sources"][0]["calls_last_hour"]
            .as_u64()
            .unwrap();
        if made >= 6 || Instant::now() > deadline {
            break (made, seen);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(made >= 6, "{made} counted, the mock saw {seen}");
    // Every listing the mock saw is counted in the store (one may land between the
    // two reads).
    assert!(
        made >= seen && made <= seen + 2,
        "mock {seen}, store {made}"
    );
    // /metrics says the same, from the same store.
    let metrics = c
        .get(format!("{}/metrics", svc.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{source=\"cd2\"}} ")))
            .unwrap_or_else(|| panic!("{name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(gauge("pps_source_calls_last_hour") >= made, "{metrics}");
    // Two queries: a call may land between them.
    assert!(gauge("pps_source_calls_last_day") >= gauge("pps_source_calls_last_hour"));
    // A Browser listing of a cloud folder is a call like any other: counted.
    let before = cd2.calls(Method::GetSubFiles);
    let page = c
        .get(format!(
            "{}/pps/browse?source=cd2&path=/115/TV/Show%202",
            svc.base
        ))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "none")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("e1.mkv"), "{page}");
    assert!(cd2.calls(Method::GetSubFiles) > before);
    let after = status(&config)["sources"][0]["calls_last_hour"]
        .as_u64()
        .unwrap();
    assert!(
        after > made,
        "the browser's listing counts: {made} then {after}"
    );
    drop(svc);
    cd2.shutdown().await;
}

/// Issue 29: the Browser offers OpenList and rclone sources beside the others and
/// lists their folders live through each API (stand-ins over HTTP on loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_lists_openlist_and_rclone_sources() {
    use pps_http_sources::mock::{StandIn, Tree};
    let mut tree = Tree::new();
    tree.write_file("/115/TV/Show A/a1.mkv", 1);
    tree.write_file("/115/Movies/Film <B> (2024)/film.mkv", 2);
    let ol = StandIn::openlist()
        .token("ui-ol-token")
        .start(tree.clone())
        .await;
    let rc = StandIn::rclone().user("rc", "ui-rc-pass").start(tree).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.ol]
kind = "openlist"
url = "{}"
token = "ui-ol-token"
max_queries_per_second = 20

[sources.rc]
kind = "rclone"
url = "{}"
remote = "115dav:"
username = "rc"
password = "ui-rc-pass"
max_queries_per_second = 20

[targets.print]
kind = "stdout"

[server]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"

[ui]
password_hash = "{}"
base_path = "/pps"

[[watch]]
source = "ol"
path = "/115/TV"
interval = "1h"
"#,
            ol.url(),
            rc.url(),
            hash(PASSWORD),
        ),
    )
    .unwrap();
    let svc = run_service(dir, &config, port, std::path::PathBuf::new());
    let c = client();
    let cookie = session_cookie(&login(&c, &svc, PASSWORD).await);
    // With no source asked for, the first watch's: OpenList, its folder listed live.
    let page = get(&c, &format!("{}/pps/browse", svc.base), &cookie).await;
    assert!(
        page.contains(r#"<option value="ol" selected>ol</option>"#),
        "{page}"
    );
    assert!(page.contains(r#"<option value="rc">rc</option>"#), "{page}");
    assert!(page.contains("Show A"), "{page}");
    // rclone's folders, by its own API, names escaped.
    let before = rc.calls("/operations/list");
    let page = get(
        &c,
        &format!("{}/pps/browse?source=rc&path=/115/Movies", svc.base),
        &cookie,
    )
    .await;
    assert!(
        page.contains(r#"<option value="rc" selected>rc</option>"#),
        "{page}"
    );
    assert!(page.contains("Film &lt;B&gt; (2024)"), "{page}");
    assert!(!page.contains("Film <B>"), "escaped: {page}");
    assert!(rc.calls("/operations/list") > before);
    // And OpenList's, outside any watch.
    let before = ol.calls("/api/fs/list");
    let page = get(
        &c,
        &format!("{}/pps/browse?source=ol&path=/115/Movies", svc.base),
        &cookie,
    )
    .await;
    assert!(page.contains("Film &lt;B&gt; (2024)"), "{page}");
    assert!(ol.calls("/api/fs/list") > before);
    // Neither secret reaches the page.
    assert!(!page.contains("ui-ol-token") && !page.contains("ui-rc-pass"));
    // `pps check`, on the Config page and at the command line, names no other
    // program's readiness ("cd2 ready" was said of every source).
    let page = get(&c, &format!("{}/pps/config?check=1", svc.base), &cookie).await;
    let out = pps().arg("-c").arg(&config).arg("check").output().unwrap();
    let cli = String::from_utf8_lossy(&out.stdout);
    for (shown, what) in [(page.as_str(), "page"), (&*cli, "pps check")] {
        for source in ["ol (openlist", "rc (rclone"] {
            let line = shown
                .lines()
                .find(|l| l.contains(&format!("source {source}")))
                .unwrap_or_else(|| panic!("{what}: no line for {source}: {shown}"));
            assert!(
                line.contains("ok, it answers and accepts pps"),
                "{what}: {line}"
            );
            assert!(!line.contains("cd2"), "{what}: {line}");
        }
    }
    drop(svc);
}

/// `pps passwd` on empty input says so; at a terminal it asks twice and refuses two
/// that differ. The terminal is a pseudo-terminal from util-linux's `script`.
#[test]
fn passwd_empty_and_twice_at_a_terminal() {
    let out = pps()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            writeln!(c.stdin.take().unwrap())?;
            c.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no password given"), "{err}");
    assert!(out.stdout.is_empty());

    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped the terminal half: no `script` (util-linux) here");
        return;
    }
    let at_tty = |input: &str| {
        let cmd = format!("{} passwd", env!("CARGO_BIN_EXE_pps"));
        let mut c = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("PPS_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = at_tty("long-enough\nlong-enough\n");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the same password again"), "{text}");
    assert!(text.contains("$argon2id$"), "{text}");
    let (code, text) = at_tty("long-enough\nlong-enougH\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("the two passwords differ"), "{text}");
    assert!(!text.contains("$argon2id$"), "{text}");
    let (code, text) = at_tty("\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no password given"), "{text}");
}

/// A scan Emby never indexed shows in the Overview's Stuck table with its reason, in
/// the Checking/Stuck columns, and the target's Retry sends it again (the stuck row
/// leaves). The stuck confirmation is written into the store before the service starts,
/// as one left by an earlier run would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_scan_is_shown_with_its_reason_and_retried() {
    use pps_core::confirm::{NewConfirm, Outcome};
    use pps_core::store::{Commit, NewScan};
    use pps_core::{Change, MtimeStore, Timestamp, Update};
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("Show")).unwrap();
    let episode = media.join("Show").join("e5.mkv").display().to_string();
    {
        let store = pps_core::sqlite::SqliteStore::open(dir.path().join("pps.db")).unwrap();
        let scope = store.scope("nas", &media.display().to_string()).unwrap();
        let commit = Commit {
            scans: vec![NewScan {
                target: "emby".into(),
                change: Change::new(episode.clone(), Update::Created, false),
            }],
            ..Commit::default()
        };
        store.commit(scope, &commit).unwrap();
        let q = store.pending("emby", 10).unwrap();
        let t = Timestamp::from_secs(1_800_000_000);
        store
            .complete_confirming(
                &[q[0].id],
                &episode,
                &[NewConfirm {
                    scan: q[0].id,
                    path: episode.clone(),
                    sent_at: t,
                    next_check: t,
                    deadline: t,
                }],
            )
            .unwrap();
        let c = store.confirms_due("emby", t, 1).unwrap();
        store
            .settle_confirm(
                c[0].id,
                &Outcome::Stuck("not found 10 min after the scan; <b>still missing</b>".into()),
            )
            .unwrap();
    }
    let port = free_port();
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.nas]
kind = "local"

[targets.emby]
kind = "emby"
url = "http://127.0.0.1:9"
api_key = "k"

[server]
listen = "127.0.0.1:{port}"
token = "{TOKEN}"

[ui]
password_hash = "{}"
base_path = "/pps"

[[watch]]
source = "nas"
path = "{}"
interval = "1h"
"#,
            hash(PASSWORD),
            media.display()
        ),
    )
    .unwrap();
    let svc = run_service(dir, &config, port, media);
    let c = client();
    let r = login(&c, &svc, PASSWORD).await;
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let base = format!("{}/pps/", svc.base);
    let page = wait_for_page(&c, &base, &cookie, "id=\"stuck\"").await;
    assert!(page.contains("<th>Stuck</th>"), "{page}");
    assert!(page.contains(&episode), "{page}");
    assert!(
        page.contains("not found 10 min after the scan; &lt;b&gt;still missing&lt;/b&gt;"),
        "the reason, escaped: {page}"
    );
    assert!(
        page.contains("actions/retry"),
        "a Retry for the target: {page}"
    );
    let csrf = csrf_of(&page);
    let r = c
        .post(format!("{}/pps/actions/retry", svc.base))
        .header("cookie", &cookie)
        .form(&[("target", "emby"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = c
        .get(&base)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("id=\"stuck\""),
        "retried: no stuck row left: {page}"
    );

    // Chinese pages name the column in Chinese.
    let zh = c
        .get(&base)
        .header("cookie", format!("{cookie}; pps_lang=zh"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(zh.contains("未入库"), "{zh}");
}
