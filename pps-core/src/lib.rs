//! # pps-core
//!
//! pps (partial path scanner) notices what changed in a media library on a cloud drive
//! and asks media servers to rescan only the folders that changed. This crate is its
//! heart; adapters (CloudDrive2, Plex, Emby, Jellyfin) live in their own crates and
//! depend on this one, never the other way round.
//!
//! **The one decision that shapes everything: pps compares folder listings, not folder
//! mtimes.** On 115 a new file moves only its parent's mtime, a rename elsewhere moves
//! nothing, and some clouds never move folder mtimes at all. So every folder's listing is
//! kept as a fingerprint plus a compact copy; a pass re-lists folders, skips those whose
//! fingerprint is unchanged, and diffs the rest child by child into exact [`Change`]s.
//!
//! ## The three traits
//! - [`DirectorySource`]: lists a folder's children (name, kind, size, mtime when
//!   known) and looks up one path. Implemented here by [`local::LocalSource`] and
//!   [`memory::MemorySource`]; CloudDrive2 lives in `pps-clouddrive`.
//! - [`MtimeStore`]: the last seen state of every folder, plus the outbox of scans not
//!   yet delivered, written together in one atomic [`store::Commit`]. Implemented by
//!   [`sqlite::SqliteStore`] (one file, the default) and [`memory::MemoryStore`].
//! - [`ScanTarget`]: a media server or command that rescans paths and reports, per
//!   request, accepted / retry later / never. Implemented here by
//!   [`stdout::JsonLinesTarget`] and [`memory::MemoryTarget`]; Plex, Emby and Jellyfin
//!   live in `pps-mediaserver`.
//!
//! Each trait documents its behaviour per method (empty folder, missing path, refused
//! permission, unknown mtime, throttling, transient failure), and the [`testing`]
//! module (feature `testing`) is the conformance suite every implementation runs.
//!
//! ## The change model
//! A pass ([`Engine::pass`]) turns differences into created / modified / deleted files
//! and created / deleted folders. The first pass of a watch records a baseline and
//! scans nothing. A created folder is one change (its subtree is recorded silently); a
//! deleted folder drops its subtree from the store in one range delete. A listing that
//! fails is never read as empty, and a watched root that suddenly lists empty or missing
//! is an outage ([`ErrorKind::Outage`]), not a mass deletion.
//!
//! ## Scheduling under a call budget
//! Every listing is an API call, and clouds such as 115 allow about one a second. Each
//! folder therefore has its own interval and next-due time in the store ([`schedule`]):
//! doubled while the folder stays unchanged (up to the watch's ceiling), back to the
//! base when it changes, held at the base for folders that change on a rhythm, and due
//! at once when its entry moved in its parent's listing, when it is new, or when a push
//! hint names it ([`Engine::hint`]). [`Engine::pass_due`] lists only due folders, oldest
//! first, never more than the calls it is given (a [`CallBudget`]); the clock is a
//! [`Clock`], so tests and simulations run on virtual time.
//!
//! ## The delivery guarantee
//! At least once: a folder's new state and the scans its changes cause are committed
//! together, and a scan leaves the outbox only when its target accepted it. A crash at
//! any point loses nothing; a restart resumes from the outbox. Planning per target
//! ([`plan`]) maps paths ([`mapping`]), turns file changes into folder scans for
//! folder-only servers, merges duplicates, drops paths under another pending path, and
//! never scans a library root because of a change below it.
//!
//! ```no_run
//! use pps_core::{Engine, TargetSpec, Watch};
//! use pps_core::local::LocalSource;
//! use pps_core::sqlite::SqliteStore;
//! use pps_core::stdout::JsonLinesTarget;
//! use std::sync::Arc;
//!
//! # async fn demo() -> pps_core::Result<()> {
//! let engine = Engine::new(Arc::new(SqliteStore::open("pps.db")?))
//!     .with_source("local", Arc::new(LocalSource::new()))
//!     .with_target(TargetSpec::new("stdout", Arc::new(JsonLinesTarget::stdout("stdout"))));
//! let watch = Watch::new("local", "/mnt/media")?;
//! let report = engine.pass(&watch).await?; // the first pass is the baseline
//! engine.deliver_all("stdout").await?;     // prints one JSON line per scan
//! # let _ = report; Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod budget;
pub mod clock;
pub mod confirm;
pub mod duration;
pub mod engine;
pub mod error;
#[cfg(feature = "layers")]
pub mod layers;
pub mod listing;
pub mod local;
pub mod mapping;
pub mod memory;
pub mod path;
pub mod plan;
pub mod schedule;
pub mod secret;
pub mod source;
pub mod sqlite;
pub mod stdout;
pub mod store;
pub mod target;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;

pub use budget::{CallGate, CallLimits, StoreGate};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use confirm::{ConfirmPlan, ConfirmRequest, Item, Lookup, Outcome, Remedy};
pub use engine::{Engine, EngineOptions, PassReport, TargetSpec, Watch};
pub use error::{Error, ErrorKind, Result};
pub use schedule::{CallBudget, Schedule};
pub use secret::Secret;
pub use source::{DirectorySource, Hint, ListOptions};
pub use store::MtimeStore;
pub use target::{Capabilities, Library, ScanRequest, ScanTarget, TargetInfo};
pub use types::{Change, Entry, EntryKind, Mtime, Update};
