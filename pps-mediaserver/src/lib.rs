//! Scan targets for pps: Plex, Emby and Jellyfin over HTTP, and a command.
//!
//! Each type implements [`pps_core::ScanTarget`]. The engine has already mapped,
//! planned and coalesced the paths; a target only speaks its protocol and says, per
//! request, whether the server accepted it, whether to retry, or why it never will.
//!
//! # What each target sends
//!
//! | target | request | paths |
//! |---|---|---|
//! | [`PlexTarget`] | `GET /library/sections/{key}/refresh?path=<folder>` per section | folders only, one per request, paced |
//! | [`EmbyTarget`] | `POST /Library/Media/Updated`, `{"Updates":[{"Path","UpdateType"}]}` | files and folders, many per request |
//! | [`JellyfinTarget`] | the same as Emby | the same |
//! | [`CommandTarget`] | `program args... path...`, no shell | folders, many per run |
//!
//! - **Credentials travel in headers, never in URLs:** `X-Plex-Token`, `X-Emby-Token`,
//!   and for Jellyfin `Authorization: MediaBrowser Token="..."` (Jellyfin 12 refuses the
//!   legacy headers). Config types print secrets as `***`; errors and log lines carry
//!   the server's URL without credentials, and error bodies are scrubbed of the token.
//! - **Plex** gets folders: a file becomes its parent folder, and the folder goes to
//!   every section whose location contains it, matched on whole path components (a 4K
//!   and an HD section over one folder both rescan; `/tvshows` never matches
//!   `/tvshows-4k`). A section root is never scanned because of a change below it, and
//!   `force=1` is never sent. The path is form-encoded (`&` becomes `%26`).
//! - **Libraries** are read from `/library/sections` (Plex) and `/Library/VirtualFolders`
//!   (Emby falls back to `/Library/SelectableMediaFolders`), cached for a TTL, and
//!   re-read at once when a path is in none of them, so a library added later is found
//!   without a restart. A path still in no library is refused permanently (the engine
//!   parks it with the reason) instead of being retried forever.
//!
//! # Errors
//!
//! One function maps HTTP statuses for all three servers: 401 and 403 are permanent,
//! with a hint on which token the server wants; 5xx, 408, 429, timeouts, refused and
//! dropped connections are temporary; a Plex 404 on a section re-reads the sections once
//! before it decides. Redirects are not followed (a token header must not travel to
//! another host): a 3xx is a permanent error asking for the final URL.
//!
//! # What a Jellyfin user should expect
//!
//! Jellyfin ignores `UpdateType`. It collects reported paths for `LibraryMonitorDelay`
//! seconds (60 by default), merges sibling paths into their common parent, then walks up
//! from each path to the nearest item it already knows and refreshes that item. So:
//!
//! - a new episode in a known season refreshes that season;
//! - a brand-new show or movie folder is unknown to Jellyfin, so it refreshes the
//!   nearest known ancestor, which in a flat movie library is **the whole library**;
//! - several new titles reported in one 60 s window are merged into their parent, again
//!   often the library.
//!
//! pps sends the deepest path that covers each change (the file itself for a file
//! change), which keeps these refreshes as small as Jellyfin allows; the rest is
//! Jellyfin's choice. Scans are accepted at once (204) and happen after the delay.
//!
//! # TLS
//!
//! HTTPS uses rustls with the ring provider and the platform's certificate verifier,
//! configured per client; no process-wide crypto provider is installed.

mod command;
mod emby;
mod http;
mod plex;

pub use command::{CommandConfig, CommandTarget, EXIT_TEMPORARY};
pub use emby::{EmbyConfig, EmbyTarget, JellyfinConfig, JellyfinTarget};
pub use http::client;
pub use plex::{PlexConfig, PlexTarget};
