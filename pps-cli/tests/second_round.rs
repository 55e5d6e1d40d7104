//! What a new user hit in the CLI, second round (issue 30), each as the CLI run as a
//! process against real folders, real stores, the mock cd2 and wiremock servers.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CD2_TOKEN: &str = "cd2-second-round-token";

fn pps(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pps"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PPS_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir)
        .env("PPS_SOURCES_CD2_API_TOKEN", CD2_TOKEN);
    c
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("panicked"), "{all}");
    assert!(!all.contains(CD2_TOKEN), "a secret leaked: {all}");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[allow(dead_code)]
fn lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A config with one cd2 source at `url` and the stdout target.
fn cd2_config(dir: &Path, url: &str) -> PathBuf {
    let config = dir.join("pps.toml");
    std::fs::write(
        &config,
        format!(
            r#"[sources.cd2]
kind = "clouddrive2"
url = "{url}"
retries = 0

[targets.out]
kind = "stdout"

[[watch]]
source = "cd2"
path = "/115/电视"
"#
        ),
    )
    .unwrap();
    config
}

/// A plain HTTP/1 web server (as `python3 -m http.server` answers): whatever arrives,
/// a 400 and the connection closed.
async fn plain_web_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.0 400 Bad request\r\nContent-Type: text/html\r\n\r\n<html>bad request</html>\n",
                    )
                    .await;
            });
        }
    });
    addr
}

fn check(dir: &Path, config: &Path) -> (Option<i32>, String) {
    let out = run(pps(dir).arg("-c").arg(config).arg("check"));
    (
        out.status.code(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_web_server_https_to_plain_http_and_an_unknown_host() {
    let dir = tempfile::tempdir().unwrap();
    let web = plain_web_server().await;

    let config = cd2_config(dir.path(), &format!("http://{web}"));
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains(&format!("{web} is not a gRPC server")),
        "{shown}"
    );
    assert!(!shown.contains("transport error"), "{shown}");

    let config = cd2_config(dir.path(), &format!("https://{web}"));
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "{web} speaks plain HTTP, not HTTPS: write the url as http://{web}"
        )),
        "{shown}"
    );
    assert!(!shown.contains("InvalidContentType"), "{shown}");

    let config = cd2_config(dir.path(), "http://no-such-cd2.invalid:19798");
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("no such host: no-such-cd2.invalid"),
        "{shown}"
    );
    assert!(!shown.contains("dns error"), "{shown}");
}

#[test]
fn a_cd2_url_without_a_scheme_is_answered_with_its_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let config = cd2_config(dir.path(), "127.0.0.1:19798");
    let (code, shown) = check(dir.path(), &config);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("write e.g. http://127.0.0.1:19798"),
        "{shown}"
    );
    assert!(
        !shown.contains("32400"),
        "no Plex port for a cd2 source: {shown}"
    );
    assert!(shown.contains("sources.cd2.url"), "{shown}");
}
