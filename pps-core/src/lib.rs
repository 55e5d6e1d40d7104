//! pps-core (placeholder docs; rewritten below)
pub mod error;
pub mod listing;
pub mod mapping;
pub mod memory;
pub mod path;
pub mod secret;
pub mod source;
pub mod store;
pub mod target;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;

pub use error::{Error, ErrorKind, Result};
pub use source::{DirectorySource, Hint, ListOptions};
pub use store::MtimeStore;
pub use target::{Capabilities, Library, ScanRequest, ScanTarget, TargetInfo};
pub use secret::Secret;
pub use types::{Change, Entry, EntryKind, Mtime, Update};
