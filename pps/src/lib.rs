//! # pps
//!
//! pps as a library: what the `pps` command, the Python package and the HTTP surface
//! all stand on. It reads a `pps.toml` ([`Config`]), assembles the engine of
//! `pps-core` with its sources, targets and watches ([`App`]), and offers every
//! operation as a function that returns a typed report and prints nothing:
//!
//! | operation | function | report |
//! |---|---|---|
//! | record baselines anew | [`index::reindex`] | [`pps_core::PassReport`] |
//! | one pass and delivery (cron) | [`once::once`] | [`once::OnceReport`] |
//! | the service | [`service::serve`] | runs until its stop future resolves |
//! | the service, applying config edits | [`service::run`] | the app in force at the end |
//! | a folder beside its stored state | [`inspect::ls`] | [`inspect::LsReport`] |
//! | a scan by hand | [`outbox::scan`] | [`outbox::ScanReport`] |
//! | the store, schedules, outbox | [`status::status`] | [`status::StatusReport`] |
//! | forget, retry, drop | [`outbox::forget`], [`outbox::retry`], [`outbox::drop_scans`] | counts |
//! | reach everything | [`check::check`] | [`check::CheckReport`] |
//! | measure a tree | [`walk::walk_root`] | [`walk::WalkReport`] |
//! | the activity history | [`history::history`] | [`pps_core::store::HistoryEntry`] lines |
//! | edit the watches of `pps.toml` | [`edit::edit_watches`] | the new [`Config`] |
//!
//! A Rust program that embeds pps loads a config (or builds one in code), builds the
//! app, and runs once or serves:
//!
//! ```no_run
//! # async fn demo() -> pps_core::Result<()> {
//! use pps::{Access, App, Config};
//!
//! let config = Config::load("pps.toml".as_ref())?;
//! // A writer takes the store's lock, as `pps run` does: one lister per store.
//! let app = App::build_for(config, Access::Writer("my-program"))?;
//! let report = pps::once::once(&app, false).await?;
//! for (watch, pass) in &report.passes {
//!     if let Ok(pass) = pass {
//!         for change in &pass.changes {
//!             println!("{watch}: {} {}", change.update, change.path);
//!         }
//!     }
//! }
//! // Or the service for an hour, applying edits of pps.toml (by hand or from the web
//! // UI) as pps run does:
//! let reload = || Config::load("pps.toml".as_ref());
//! let hour = tokio::time::sleep(std::time::Duration::from_secs(3600));
//! pps::service::run(app, "my-program", Some(reload), hour, |_phase| {}).await?;
//! # Ok(()) }
//! ```
//!
//! A config can also be written in code: [`Config::parse`] takes TOML text, and
//! [`Config::for_folders`] watches local folders with the stdout target, as
//! `pps run --watch DIR` does.
//!
//! The HTTP surface (`/health`, `/metrics`, `/triggers/*`, webhooks, the web UI) is
//! the [`http`] module, behind the `http` feature (on by default): the service starts it when
//! `[server] listen` is set, on the same engine and operations. Without the feature (the
//! Python package) no web framework is linked, and a `listen` address is an error.

pub mod app;
pub mod check;
pub mod config;
pub mod control;
pub mod dry_run;
pub mod edit;
pub mod history;
#[cfg(feature = "http")]
pub mod http;
pub mod index;
pub mod inspect;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod once;
pub mod outbox;
pub mod service;
pub mod status;
pub mod text;
pub mod walk;

pub use app::{Access, App};
pub use config::Config;
