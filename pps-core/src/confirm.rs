//! Confirming that a media server indexed what it was sent.
//!
//! A media server answers a scan request at once and scans later, and none of Plex,
//! Emby or Jellyfin says when it is done. So after a target accepts a scan, pps looks
//! for each reported media file (or new folder) the way that server allows, on a
//! schedule that follows the server's real timing ([`ConfirmPlan`]), until it finds the
//! outcome:
//!
//! - **indexed**: an item with the path exists (its id and title are recorded);
//! - **removed**: a deletion reached the library (no item has the path any more);
//! - **stuck**: not found by the deadline, after one bounded remedy (a refresh of the
//!   nearest known ancestor, a targeted rescan, one more scan once the library is
//!   idle). Kept and shown like a parked scan, until the user retries it.
//!
//! A pending confirmation lives in the store beside the outbox and is written in the
//! same transaction that settles the scan ([`MtimeStore::complete_confirming`]), so a
//! crash between the server's `200 OK` and the lookup loses nothing.
//!
//! Only what can become a library item is confirmed: media files (by extension), new
//! folders that hold one, and deletions the server can look up (by path, or by an item
//! id pps recorded when it confirmed the file). A subtitle or an `.nfo` is scanned but
//! never confirmed: it is never an item of its own.
//!
//! [`MtimeStore::complete_confirming`]: crate::MtimeStore::complete_confirming

use crate::clock::Timestamp;
use crate::types::{Change, Update};
use serde::Serialize;
use std::time::Duration;

/// When and how long a target is asked whether a scan reached its library.
///
/// Checks happen `checks[0]`, `checks[1]`, … after the scan was accepted, then every
/// `every`, until `deadline`. When the item is still missing `remedy_after` the scan
/// (or at the deadline, whichever is first) the target's one remedy runs, and the
/// deadline moves to at least `remedy_wait` after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmPlan {
    /// Offsets of the first checks after the scan was accepted, ascending (at least one).
    pub checks: Vec<Duration>,
    /// The gap between checks after the last of `checks`.
    pub every: Duration,
    /// How long after the scan a missing item gets the remedy.
    pub remedy_after: Duration,
    /// The time the remedy is given to work before the item is called stuck.
    pub remedy_wait: Duration,
    /// How long after the scan a missing item is called stuck (the target's default;
    /// a target's `confirm_deadline` replaces it).
    pub deadline: Duration,
    /// True when the server can look a path up (Emby's `/Items?Path=`), so a deletion
    /// is confirmed even for an item pps never saw indexed. Otherwise a deletion is
    /// confirmed only through item ids recorded when their files were indexed.
    pub lookup_by_path: bool,
    /// Whether `.strm` files become items on this server (Emby and Jellyfin index
    /// them; Plex does not).
    pub strm_items: bool,
}

impl ConfirmPlan {
    /// The time of check number `done` (0-based) for a scan accepted at `sent`.
    pub fn check_at(&self, sent: Timestamp, done: u32) -> Timestamp {
        let i = done as usize;
        let offset = match self.checks.get(i) {
            Some(d) => *d,
            None => {
                let last = self.checks.last().copied().unwrap_or(self.every);
                let beyond = (i + 1).saturating_sub(self.checks.len()) as u32;
                last.saturating_add(self.every.saturating_mul(beyond))
            }
        };
        sent.plus(offset)
    }
}

/// One path to look for, in the target's view (after path mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmRequest {
    /// The path as the target sees it: a media file, or a folder (a created or deleted
    /// folder matches every item at or below it).
    pub path: String,
    /// What was reported there.
    pub update: Update,
    /// Whether the path is a folder.
    pub is_dir: bool,
    /// When the scan covering it was accepted (an item saved before it proves nothing
    /// about this change).
    pub since: Timestamp,
    /// For a deletion: the server's ids of the items pps saw indexed at or below the
    /// path, so servers without a lookup by path can check them by id.
    pub known: Vec<String>,
}

/// A library item a lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The server's id (Plex `ratingKey`, Emby/Jellyfin `Id`).
    pub id: String,
    /// A title to show: `Dune: Part Two`, `Severance S02E05`.
    pub title: String,
    /// The item's path as the server spells it.
    pub path: String,
}

/// What a target found for one [`ConfirmRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lookup {
    /// Items at the path (or at or below it, for a folder). Empty: none.
    pub items: Vec<Item>,
    /// What the server said beside it, kept for the stuck reason (a targeted scan's
    /// `PathNotFound`, a library still scanning).
    pub note: Option<String>,
}

impl Lookup {
    /// A lookup that found `items`.
    pub fn found(items: Vec<Item>) -> Self {
        Lookup { items, note: None }
    }

    /// A lookup that found nothing.
    pub fn missing() -> Self {
        Lookup::default()
    }
}

/// What a remedy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// It ran; the text says what it did (`refreshed "Season 1"`), for the stuck reason.
    Done(String),
    /// Not now (the library is scanning): ask again at the next check.
    Busy(String),
}

/// A scan accepted by a target, to confirm: what [`crate::MtimeStore::complete_confirming`]
/// writes for one queued scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConfirm {
    /// The outbox id of the scan it confirms (its change, watch and enqueue time are
    /// copied from there).
    pub scan: i64,
    /// The path to look for, in the target's view.
    pub path: String,
    /// When the scan was accepted.
    pub sent_at: Timestamp,
    /// The first check.
    pub next_check: Timestamp,
    /// When a missing item is called stuck.
    pub deadline: Timestamp,
}

/// A confirmation in the store: pending, or stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConfirm {
    /// Its id in the store.
    pub id: i64,
    /// The target's name.
    pub target: String,
    /// The change, in source paths.
    pub change: Change,
    /// The path looked for, in the target's view.
    pub path: String,
    /// When the change was queued (Unix seconds; the store's wall clock).
    pub changed_at: Timestamp,
    /// When the scan was accepted.
    pub sent_at: Timestamp,
    /// The next check.
    pub next_check: Timestamp,
    /// When a missing item is called stuck.
    pub deadline: Timestamp,
    /// Checks that did not find the outcome so far.
    pub checks: u32,
    /// Whether the remedy ran.
    pub remedied: bool,
    /// What the server or the remedy said last.
    pub note: Option<String>,
    /// Why it is stuck; `None` while pending.
    pub stuck: Option<String>,
}

/// How a confirmation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The item is in the library.
    Indexed(Item),
    /// The deletion reached the library.
    Removed,
    /// Not found by the deadline; the reason says what was tried.
    Stuck(String),
}

/// The history detail of an indexed item: its title and the server's id.
pub fn indexed_detail(item: &Item) -> String {
    format!("{} (id {})", item.title, item.id)
}

/// Video and audio file extensions a media server makes items of (lowercase).
const MEDIA_EXTENSIONS: &[&str] = &[
    // video
    "mkv", "mp4", "m4v", "avi", "mov", "wmv", "ts", "m2ts", "mts", "iso", "webm", "flv", "rmvb",
    "rm", "mpg", "mpeg", "vob", "3gp", "ogv", "divx", // audio
    "flac", "mp3", "m4a", "aac", "ogg", "opus", "wav", "ape", "dsf", "dff", "alac", "wma", "wv",
];

/// True when the file at `path` becomes a library item of its own: a video or audio
/// file, or a `.strm` where the server indexes those.
pub fn is_media_file(path: &str, strm_items: bool) -> bool {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    if stem.is_empty() {
        return false; // a hidden file such as `.mkv`
    }
    let ext = ext.to_ascii_lowercase();
    (strm_items && ext == "strm") || MEDIA_EXTENSIONS.contains(&ext.as_str())
}

/// True when `item_path` (as a server spells it) is `path`, or below it when `is_dir`.
///
/// Whole components only; the separator is the path's own (`\` for Windows paths), and
/// case is folded only for Windows paths (`O:\…`, `\\server\…`), as those servers do.
pub fn same_or_below(path: &str, item_path: &str, is_dir: bool) -> bool {
    let windows = is_windows_path(path);
    let (a, b) = if windows {
        (path.to_lowercase(), item_path.to_lowercase())
    } else {
        (path.to_owned(), item_path.to_owned())
    };
    let sep = if windows { '\\' } else { '/' };
    let a = a.trim_end_matches(sep);
    if b == a {
        return true;
    }
    is_dir && b.len() > a.len() && b.starts_with(a) && b[a.len()..].starts_with(sep)
}

/// True for a Windows path: a drive letter (`O:\`) or a UNC path (`\\server\share`).
fn is_windows_path(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with("\\\\") || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_files_are_told_from_side_files() {
        assert!(is_media_file("/m/Dune (2021)/Dune.mkv", false));
        assert!(is_media_file("/m/x/EP05.MP4", false));
        assert!(is_media_file("O:\\TV\\S01E01.ts", false));
        assert!(!is_media_file("/m/Dune (2021)/Dune.zh.srt", false));
        assert!(!is_media_file("/m/Dune (2021)/movie.nfo", false));
        assert!(!is_media_file("/m/Dune (2021)/poster.jpg", false));
        assert!(!is_media_file("/m/.mkv", false));
        assert!(!is_media_file("/m/noext", false));
        assert!(!is_media_file("/m/a.strm", false));
        assert!(is_media_file("/m/a.strm", true));
    }

    #[test]
    fn paths_match_on_whole_components() {
        assert!(same_or_below("/tv/Show", "/tv/Show", true));
        assert!(same_or_below("/tv/Show", "/tv/Show/S01/e1.mkv", true));
        assert!(!same_or_below("/tv/Show", "/tv/Show 2/e1.mkv", true));
        assert!(!same_or_below("/tv/Show", "/tv/Show/e1.mkv", false));
        assert!(!same_or_below("/tv/show/e1.mkv", "/tv/Show/e1.mkv", false));
        // Windows servers: case folded, backslashes.
        assert!(same_or_below(
            "O:\\TV\\Show\\e1.mkv",
            "o:\\tv\\show\\E1.MKV",
            false
        ));
        assert!(same_or_below(
            "\\\\nas\\tv\\Show",
            "\\\\NAS\\tv\\Show\\S01\\e.mkv",
            true
        ));
        assert!(!same_or_below(
            "O:\\TV\\Show",
            "O:\\TV\\Showtime\\e.mkv",
            true
        ));
    }

    #[test]
    fn checks_follow_the_plan_then_repeat() {
        let plan = ConfirmPlan {
            checks: vec![Duration::from_secs(10), Duration::from_secs(30)],
            every: Duration::from_secs(60),
            remedy_after: Duration::from_secs(300),
            remedy_wait: Duration::from_secs(300),
            deadline: Duration::from_secs(600),
            lookup_by_path: false,
            strm_items: false,
        };
        let t = Timestamp::from_secs(1000);
        assert_eq!(plan.check_at(t, 0).as_secs(), 1010);
        assert_eq!(plan.check_at(t, 1).as_secs(), 1030);
        assert_eq!(plan.check_at(t, 2).as_secs(), 1090);
        assert_eq!(plan.check_at(t, 3).as_secs(), 1150);
    }
}
