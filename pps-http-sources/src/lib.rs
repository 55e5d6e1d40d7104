//! OpenList (the maintained AList, and AList v3) and rclone's remote-control API as pps
//! directory sources: pps lists `/115/电影` through their JSON APIs, with no mount.
//!
//! One crate for both because they are the same kind of adapter: JSON over HTTP/1.1
//! through one reqwest client, the same transport errors, the same pacing, and one
//! stand-in server for tests. Each keeps the file shape of `pps-clouddrive`:
//! `config.rs`, `client.rs` (one call per operation, authentication) and `core.rs`
//! (the one mapping from the server's answers to error kinds).
//!
//! As for cd2, **every call is paced, and failures are sorted before anything retries
//! them**: the stack is `Retry(RateLimit(client))` from `pps_core::layers`, so each
//! retry pays for its call and a throttled answer lowers the rate before the retry.
//!
//! Neither server has a change feed: both sources only answer listings, so pps's
//! budgeted re-listing is what finds changes. OpenList answers from its own cache
//! (`cache_expiration` minutes per storage): a listing may be that old unless sent with
//! `refresh: true`, which pps does only where it has reason to (a user's scan). rclone's
//! `operations/list` reads the remote itself; with `vfs_refresh` a changed folder is
//! refreshed in the user's `rclone mount --rc` too.
//!
//! With the `mock` feature, the `mock` module holds stand-ins for both APIs over real HTTP.

#![warn(missing_docs)]

mod http;
#[cfg(feature = "mock")]
pub mod mock;
mod openlist;
mod rclone;

pub use crate::http::{Pacing, Stats};
pub use crate::openlist::{OpenList, OpenListAuth, OpenListClient, OpenListConfig};
pub use crate::rclone::{Rclone, RcloneClient, RcloneConfig};
pub use pps_core::layers::{RateLimit, RateLimitPolicy, Retry, RetryPolicy};
