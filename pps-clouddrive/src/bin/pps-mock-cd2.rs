//! `pps-mock-cd2`: a mock CloudDrive2 server, to try a pps configuration without a cloud
//! or to benchmark against.
//!
//! ```text
//! pps-mock-cd2 [--listen 127.0.0.1:19798] [--dir PATH | --folders N]
//!              [--token TOKEN] [--user NAME --password PASSWORD]
//!              [--latency-ms MS] [--throttle-share 0.1] [--page-size N]
//! ```
//! `--dir` serves a local folder under `/`, read afresh at every call (add a file there
//! and the next listing shows it: a sandbox to try a pps configuration without cd2);
//! `--folders N` serves N generated folders
//! under `/mock`, each holding a few files; with neither, a small demo tree.

use pps_clouddrive::mock::{Faults, MockServer, MockTree};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: pps-mock-cd2 [--listen ADDR] [--dir PATH | --folders N] [--token TOKEN] \
[--user NAME --password PASSWORD] [--latency-ms MS] [--throttle-share SHARE] [--page-size N]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pps-mock-cd2: {message}");
            ExitCode::FAILURE
        }
    }
}

fn value<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<T, String> {
    let raw = args
        .next()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    raw.parse()
        .map_err(|_| format!("{flag}: cannot read {raw:?}\n{USAGE}"))
}

fn run() -> Result<(), String> {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 19798));
    let mut dir: Option<String> = None;
    let mut folders: Option<usize> = None;
    let mut builder = MockServer::builder();
    let mut faults = Faults::default();
    let (mut user, mut password): (Option<String>, Option<String>) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => listen = value(&mut args, &flag)?,
            "--dir" => dir = Some(value(&mut args, &flag)?),
            "--folders" => folders = Some(value(&mut args, &flag)?),
            "--token" => builder = builder.api_token(value::<String>(&mut args, &flag)?),
            "--user" => user = Some(value(&mut args, &flag)?),
            "--password" => password = Some(value(&mut args, &flag)?),
            "--latency-ms" => faults.latency = Duration::from_millis(value(&mut args, &flag)?),
            "--throttle-share" => faults.throttle_share = value(&mut args, &flag)?,
            "--page-size" => builder = builder.page_size(value(&mut args, &flag)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    match (user, password) {
        (Some(u), Some(p)) => builder = builder.user(u, p),
        (None, None) => {}
        _ => return Err("--user and --password go together".to_owned()),
    }
    let tree = match (dir, folders) {
        (Some(dir), _) => {
            MockTree::following(&dir).map_err(|e| format!("cannot serve {dir}: {e}"))?
        }
        (None, Some(n)) => generated(n),
        (None, None) => demo(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let server = builder
            .faults(faults)
            .start_on(listen, tree)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        println!("mock cd2 serving on {}", server.url());
        // Runs until the process is stopped (Ctrl-C ends it by default).
        std::future::pending::<()>().await;
        drop(server);
        Ok(())
    })
}

fn demo() -> MockTree {
    let mut tree = MockTree::new();
    tree.write_file("/115/电影/Film (2020)/film.mkv", 1_000_000);
    tree.write_file("/115/电影/Film (2020)/film.nfo", 1_000);
    tree.write_file("/115/剧集/Show/Season 1/S01E01.mkv", 500_000);
    tree.create_dir("/115/剧集/Show/Season 2");
    tree
}

/// `n` folders under `/mock`, in groups of 100, each holding three files.
pub fn generated(n: usize) -> MockTree {
    let mut tree = MockTree::new();
    for i in 0..n {
        let folder = format!("/mock/g{:03}/d{i:05}", i / 100);
        for f in 0..3 {
            tree.write_file(&format!("{folder}/f{f}.mkv"), 1000 + f);
        }
    }
    tree
}
