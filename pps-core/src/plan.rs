//! Planning: from queued changes (source paths) to the fewest scan requests that cover
//! them, for one target.
//!
//! 1. Map each changed path with the target's [`PathMapping`]; a path no rule maps is
//!    unplannable (it is parked with the reason, never retried).
//! 2. Choose the scan path. A target that takes files gets the path itself with its
//!    update. A folder-only target gets a created folder as itself, and for anything
//!    else (a file created, modified or deleted, a folder deleted) the parent folder.
//!    Never a library root because of a change below it: when the parent would be a
//!    library root, the changed child itself is sent.
//! 3. Merge duplicates (the update of the merged request follows what happened last)
//!    and drop every request that an ancestor request covers. A scan of an existing
//!    folder covers everything below it; a deletion covers only deletions below it.

use crate::mapping::{PathMapping, PathStyle, target_parent, target_same};
use crate::store::QueuedScan;
use crate::target::ScanRequest;
use crate::types::Update;
use std::collections::HashMap;

/// One request to send and the queued scans it settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// What to send.
    pub request: ScanRequest,
    /// Outbox ids this request covers, in enqueue order.
    pub covers: Vec<i64>,
}

/// A queued scan that cannot be planned, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplannable {
    /// Outbox id.
    pub id: i64,
    /// Why: shown to the user when the scan is parked.
    pub reason: String,
}

/// Plans `queued` (oldest first) for one target.
///
/// `scans_files` is the target's capability (and the user's `scan_files` setting);
/// `library_roots` are the target's library locations as the target sees them (empty
/// when it has none).
pub fn plan(
    queued: &[QueuedScan],
    scans_files: bool,
    mapping: &PathMapping,
    library_roots: &[String],
) -> (Vec<Planned>, Vec<Unplannable>) {
    let mut unplannable = Vec::new();
    // Target-side key (case-folded on Windows) -> index into `planned`.
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut planned: Vec<Planned> = Vec::new();

    for q in queued {
        let Some(mapped) = mapping.map(&q.change.path) else {
            unplannable.push(Unplannable {
                id: q.id,
                reason: format!(
                    "no path_mapping rule of this target covers {}",
                    q.change.path
                ),
            });
            continue;
        };
        let change = &q.change;
        let request = if scans_files || (change.is_dir && change.update == Update::Created) {
            ScanRequest {
                path: mapped,
                update: change.update,
                is_dir: change.is_dir,
            }
        } else {
            match target_parent(&mapped) {
                Some(parent) if !library_roots.iter().any(|r| target_same(r, &parent)) => {
                    ScanRequest {
                        path: parent,
                        update: Update::Modified,
                        is_dir: true,
                    }
                }
                // The parent is a library root (or the path has none): send the child.
                _ => ScanRequest {
                    path: mapped,
                    update: change.update,
                    is_dir: change.is_dir,
                },
            }
        };
        let key = key_of(&request.path);
        match by_key.get(&key) {
            Some(&i) => {
                let p = &mut planned[i];
                p.request.update = merge(p.request.update, request.update);
                p.request.is_dir = request.is_dir || p.request.is_dir;
                p.covers.push(q.id);
            }
            None => {
                by_key.insert(key, planned.len());
                planned.push(Planned {
                    request,
                    covers: vec![q.id],
                });
            }
        }
    }

    // Drop requests covered by an ancestor request. Shallow paths first, so every
    // survivor is known before its descendants are looked at.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (depth(&planned[i].request.path), i));
    let mut survivors: HashMap<String, usize> = HashMap::new();
    let mut absorbed: Vec<Option<usize>> = vec![None; planned.len()];
    for &i in &order {
        let req = &planned[i].request;
        let mut cur = target_parent(&req.path);
        let mut into = None;
        while let Some(p) = cur {
            if let Some(&a) = survivors.get(&key_of(&p)) {
                let anc = &planned[a].request;
                if anc.update != Update::Deleted || req.update == Update::Deleted {
                    into = Some(a);
                    break;
                }
            }
            cur = target_parent(&p);
        }
        match into {
            Some(a) => absorbed[i] = Some(a),
            None => {
                survivors.insert(key_of(&req.path), i);
            }
        }
    }
    for i in 0..planned.len() {
        if let Some(a) = absorbed[i] {
            let ids = std::mem::take(&mut planned[i].covers);
            planned[a].covers.extend(ids);
        }
    }
    let mut out: Vec<Planned> = planned
        .into_iter()
        .enumerate()
        .filter(|(i, _)| absorbed[*i].is_none())
        .map(|(_, mut p)| {
            p.covers.sort_unstable();
            p
        })
        .collect();
    out.sort_by_key(|p| p.covers.first().copied().unwrap_or(i64::MAX));
    (out, unplannable)
}

/// The update of two reports of one path, `first` older than `then`.
fn merge(first: Update, then: Update) -> Update {
    match (first, then) {
        // Created and then changed again: still new to the server.
        (Update::Created, Update::Modified) => Update::Created,
        // Otherwise what happened last is what the server must learn.
        (_, later) => later,
    }
}

fn key_of(path: &str) -> String {
    match PathStyle::of(path) {
        PathStyle::Posix => path.trim_end_matches('/').to_owned(),
        PathStyle::Windows => path
            .trim_end_matches(['\\', '/'])
            .replace('/', "\\")
            .to_lowercase(),
    }
}

fn depth(path: &str) -> usize {
    path.split(['/', '\\']).filter(|c| !c.is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MappingRule;
    use crate::types::Change;

    fn q(id: i64, path: &str, update: Update, is_dir: bool) -> QueuedScan {
        QueuedScan {
            id,
            target: "t".into(),
            change: Change::new(path, update, is_dir),
            attempts: 0,
            last_error: None,
            next_try: None,
            scope: crate::store::ScopeId(1),
            queued_at: crate::clock::Timestamp::default(),
        }
    }

    fn paths(p: &[Planned]) -> Vec<(&str, Update)> {
        p.iter()
            .map(|p| (p.request.path.as_str(), p.request.update))
            .collect()
    }

    #[test]
    fn folder_only_targets_get_folders() {
        let queued = [
            q(1, "/tv/Show/S01/e1.mkv", Update::Created, false),
            q(2, "/tv/Show/S01/e2.mkv", Update::Created, false),
            q(3, "/tv/New Show", Update::Created, true),
            q(4, "/tv/Old/S02", Update::Deleted, true),
        ];
        let (p, u) = plan(&queued, false, &PathMapping::default(), &[]);
        assert!(u.is_empty());
        assert_eq!(
            paths(&p),
            [
                ("/tv/Show/S01", Update::Modified),
                ("/tv/New Show", Update::Created),
                ("/tv/Old", Update::Modified)
            ]
        );
        assert_eq!(p[0].covers, [1, 2]);
    }

    #[test]
    fn never_a_library_root_for_a_change_below_it() {
        let queued = [
            q(1, "/m/Film.mkv", Update::Created, false),
            q(2, "/m/Gone", Update::Deleted, true),
            q(3, "/m/Deep/x.mkv", Update::Created, false),
        ];
        let (p, _) = plan(&queued, false, &PathMapping::default(), &["/m/".to_owned()]);
        assert_eq!(
            paths(&p),
            [
                ("/m/Film.mkv", Update::Created),
                ("/m/Gone", Update::Deleted),
                ("/m/Deep", Update::Modified)
            ]
        );
    }

    #[test]
    fn file_targets_get_paths_and_coalesce() {
        let queued = [
            q(1, "/tv/New", Update::Created, true),
            q(2, "/tv/New/a.mkv", Update::Created, false),
            q(3, "/tv/x.mkv", Update::Created, false),
            q(4, "/tv/x.mkv", Update::Modified, false),
            q(5, "/tv/Old", Update::Deleted, true),
            q(6, "/tv/Old/y.mkv", Update::Deleted, false),
            q(7, "/tv/Gone", Update::Deleted, true),
            q(8, "/tv/Gone/new.mkv", Update::Created, false),
            q(9, "/tv/z.mkv", Update::Created, false),
            q(10, "/tv/z.mkv", Update::Deleted, false),
        ];
        let (p, _) = plan(&queued, true, &PathMapping::default(), &[]);
        assert_eq!(
            paths(&p),
            [
                ("/tv/New", Update::Created),
                ("/tv/x.mkv", Update::Created),
                ("/tv/Old", Update::Deleted),
                ("/tv/Gone", Update::Deleted),
                ("/tv/Gone/new.mkv", Update::Created),
                ("/tv/z.mkv", Update::Deleted),
            ]
        );
        assert_eq!(p[0].covers, [1, 2]);
        assert_eq!(p[2].covers, [5, 6]);
    }

    #[test]
    fn mapping_and_windows_targets() {
        let mapping = PathMapping::new([MappingRule {
            from: "/115/TV".into(),
            to: "D:\\Media\\TV".into(),
        }])
        .unwrap();
        let queued = [
            q(1, "/115/TV/Show & Co/S01/e1.mkv", Update::Created, false),
            q(2, "/115/Movies/x.mkv", Update::Created, false),
            q(3, "/115/TV/Top.mkv", Update::Created, false),
        ];
        let (p, u) = plan(&queued, false, &mapping, &["d:\\media\\tv".to_owned()]);
        assert_eq!(
            paths(&p),
            [
                ("D:\\Media\\TV\\Show & Co\\S01", Update::Modified),
                ("D:\\Media\\TV\\Top.mkv", Update::Created)
            ]
        );
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].id, 2);
        assert!(u[0].reason.contains("/115/Movies/x.mkv"));
    }
}
