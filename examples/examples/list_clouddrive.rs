//! List a CloudDrive2 folder through pps's cd2 source (rate limit and retries included).
//!
//! With `CD2_URL`, `CD2_TOKEN` (and optionally `CD2_PATH`) set it lists your server;
//! otherwise it starts the mock cd2 server in-process and lists that.

use pps_clouddrive::mock::{MockServer, MockTree};
use pps_clouddrive::{Auth, CloudDrive, CloudDriveConfig};
use pps_core::{DirectorySource, ListOptions, Secret};

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> pps_core::Result<()> {
    let (url, token, path, _mock) = match (std::env::var("CD2_URL"), std::env::var("CD2_TOKEN")) {
        (Ok(url), Ok(token)) => (
            url,
            token,
            std::env::var("CD2_PATH").unwrap_or_else(|_| "/".into()),
            None,
        ),
        _ => {
            let mut tree = MockTree::new();
            tree.write_file("/115/电影/Film & Co (2020)/film.mkv", 4_000_000_000);
            tree.create_dir("/115/电影/Another (2021)");
            let mock = MockServer::builder()
                .api_token("example-token")
                .start(tree)
                .await
                .map_err(pps_core::Error::from)?;
            (
                mock.url(),
                "example-token".to_owned(),
                "/115/电影".to_owned(),
                Some(mock),
            )
        }
    };
    let mut config = CloudDriveConfig::new(url).with_auth(Auth::ApiToken(Secret::new(token)));
    config.max_queries_per_second = 0.9; // what 115 tolerates
    let cd = CloudDrive::connect(config)?;
    let mut entries = cd.list(&path, ListOptions::default()).await?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    println!("{path}:");
    for e in &entries {
        println!(
            "  {:<4} {:>14}  {}",
            if e.is_dir() { "dir" } else { "file" },
            e.size,
            e.name
        );
    }
    assert!(!entries.is_empty() || std::env::var("CD2_URL").is_ok());
    Ok(())
}

#[test]
fn runs() {
    // The example itself, as CI runs it: against the mock servers.
    main().expect("the example runs");
}
