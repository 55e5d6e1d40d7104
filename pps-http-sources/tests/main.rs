//! Integration tests: both sources against their stand-ins over real HTTP on loopback.
//! The rate limit and retry layers are tested in pps-core; here the tests assert what
//! goes over the wire (method, path, headers, body), how answers map to error kinds,
//! and the reliability faults (refused, throttled, down mid-pass, empty root).

// Test helpers are documented by the tests that use them.
#![allow(missing_docs)]

mod faults;
mod openlist;
mod rclone;

use pps_core::testing::{STANDARD_TREE, big_folder_files};
use pps_http_sources::Pacing;
use pps_http_sources::mock::Tree;
use std::time::Duration;

pub const ROOT: &str = "/115/pps-test";

pub fn standard_tree() -> Tree {
    let mut tree = Tree::new();
    for (path, size) in STANDARD_TREE {
        let full = format!("{ROOT}/{path}");
        match size {
            None => tree.create_dir(&full),
            Some(size) => tree.write_file(&full, *size),
        }
    }
    for file in big_folder_files() {
        tree.write_file(&format!("{ROOT}/{file}"), 1);
    }
    tree
}

/// Fast pacing and millisecond backoff: these tests run on the real clock (sockets and
/// tokio's paused clock do not mix), so they assert counts and kinds, never durations.
pub fn fast() -> Pacing {
    let mut p = Pacing::default();
    p.max_queries_per_second = 1000.0;
    p.burst = 20;
    p.timeout = Duration::from_secs(10);
    p.backoff = Duration::from_millis(1);
    p.throttle_backoff = Duration::from_millis(2);
    p.max_backoff = Duration::from_millis(20);
    p.retries = 4;
    p
}
