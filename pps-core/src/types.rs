//! The values that cross every trait: entries of a listing, changes, scan updates.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether an entry is a folder or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file (and anything that is not a folder: pps never descends into it).
    File,
    /// A folder.
    Dir,
}

/// A modification time in nanoseconds since the Unix epoch (negative before 1970).
///
/// Sources keep all the precision they have: the local filesystem gives nanoseconds,
/// cd2 gives a protobuf `Timestamp`. "Unknown" is `Option::None`, never a sentinel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Mtime(i64);

impl Mtime {
    /// The whole second it falls in, as the scheduler's clock counts.
    pub fn to_timestamp(self) -> crate::clock::Timestamp {
        crate::clock::Timestamp::from_secs(self.0.div_euclid(1_000_000_000))
    }

    /// From nanoseconds since the Unix epoch.
    pub const fn from_nanos(nanos: i64) -> Self {
        Mtime(nanos)
    }

    /// From seconds and nanoseconds since the Unix epoch (a protobuf `Timestamp`).
    /// `None` when it does not fit in 64-bit nanoseconds (years before 1677 or after 2262).
    pub fn from_parts(seconds: i64, nanos: i32) -> Option<Self> {
        seconds
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(i64::from(nanos)))
            .map(Mtime)
    }

    /// From a `SystemTime`; `None` when out of range.
    pub fn from_system_time(time: SystemTime) -> Option<Self> {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).ok().map(Mtime),
            Err(before) => i64::try_from(before.duration().as_nanos())
                .ok()
                .map(|n| Mtime(-n)),
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_nanos(self.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_nanos(self.0.unsigned_abs())
        }
    }
}

/// One child of a listed folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The child's name: one path component, never empty, never containing `/`.
    pub name: String,
    /// Folder or file.
    pub kind: EntryKind,
    /// Size in bytes as the source reports it (0 for folders on most sources).
    pub size: u64,
    /// Modification time, `None` when the source does not know it.
    pub mtime: Option<Mtime>,
}

impl Entry {
    /// A file entry.
    pub fn file(name: impl Into<String>, size: u64, mtime: Option<Mtime>) -> Self {
        Entry {
            name: name.into(),
            kind: EntryKind::File,
            size,
            mtime,
        }
    }

    /// A folder entry.
    pub fn dir(name: impl Into<String>, mtime: Option<Mtime>) -> Self {
        Entry {
            name: name.into(),
            kind: EntryKind::Dir,
            size: 0,
            mtime,
        }
    }

    /// True for folders.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// What happened to a path, as a media server is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// The path is new.
    Created,
    /// The path's content changed (for a folder: something inside it).
    Modified,
    /// The path is gone.
    Deleted,
}

impl Update {
    /// `created`, `modified` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Update::Created => "created",
            Update::Modified => "modified",
            Update::Deleted => "deleted",
        }
    }

    pub(crate) fn code(self) -> i64 {
        match self {
            Update::Created => 0,
            Update::Modified => 1,
            Update::Deleted => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Update::Created),
            1 => Some(Update::Modified),
            2 => Some(Update::Deleted),
            _ => None,
        }
    }
}

impl fmt::Display for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One exact change found by comparing a folder's listing with the stored one.
///
/// `path` is the source's absolute path of the child that changed. A created folder is
/// one change: its content is recorded silently, since a scan of the folder covers it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Change {
    /// Absolute source path of the changed entry.
    pub path: String,
    /// Created, modified or deleted.
    pub update: Update,
    /// Whether the entry is (or was, for a deletion) a folder.
    pub is_dir: bool,
}

impl Change {
    /// A new change.
    pub fn new(path: impl Into<String>, update: Update, is_dir: bool) -> Self {
        Change {
            path: path.into(),
            update,
            is_dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtime_round_trips_through_system_time() {
        for nanos in [0, 1, 1_700_000_000_123_456_789, -5_000_000_001] {
            let m = Mtime::from_nanos(nanos);
            assert_eq!(Mtime::from_system_time(m.to_system_time()), Some(m));
        }
        assert_eq!(Mtime::from_parts(-62_135_596_800, 0), None);
        assert_eq!(
            Mtime::from_parts(1, 5),
            Some(Mtime::from_nanos(1_000_000_005))
        );
    }
}
