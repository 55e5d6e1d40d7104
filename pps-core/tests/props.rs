//! Property tests: random edits of a tree, a pass after each batch; the changes of a
//! pass explain the new tree exactly, and the plan covers every change once.

use pps_core::mapping::PathMapping;
use pps_core::memory::{MemorySource, MemoryStore};
use pps_core::path::{is_at_or_under, parent};
use pps_core::plan::plan;
use pps_core::store::QueuedScan;
use pps_core::{Engine, Entry, Update, Watch};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Write(usize, usize, u64),
    Mkdir(usize, usize),
    Remove(usize),
    Rename(usize, usize, usize),
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "Show & Co",
    "电影",
    "c d",
    "x+y",
    "#1",
    "100%",
    "e.mkv",
    "f.nfo",
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..64usize, 0..NAMES.len(), 1..5u64).prop_map(|(d, n, s)| Op::Write(d, n, s)),
        2 => (0..64usize, 0..NAMES.len()).prop_map(|(d, n)| Op::Mkdir(d, n)),
        2 => (0..64usize).prop_map(Op::Remove),
        1 => (0..64usize, 0..64usize, 0..NAMES.len()).prop_map(|(a, b, n)| Op::Rename(a, b, n)),
    ]
}

fn apply(src: &MemorySource, op: &Op) {
    let mut dirs: Vec<String> = src
        .folders()
        .into_iter()
        .filter(|d| is_at_or_under(d, "/w"))
        .collect();
    dirs.sort();
    let mut all: Vec<String> = src
        .snapshot()
        .into_keys()
        .filter(|p| p.starts_with("/w/"))
        .collect();
    all.sort();
    match op {
        Op::Write(d, n, s) => {
            src.write_file(&format!("{}/{}", dirs[d % dirs.len()], NAMES[*n]), *s)
        }
        Op::Mkdir(d, n) => src.create_dir(&format!("{}/{}", dirs[d % dirs.len()], NAMES[*n])),
        Op::Remove(i) if !all.is_empty() => src.remove(&all[i % all.len()]),
        Op::Rename(a, b, n) if !all.is_empty() => {
            let from = &all[a % all.len()];
            let to_dir = &dirs[b % dirs.len()];
            if !is_at_or_under(to_dir, from) {
                src.rename(from, &format!("{to_dir}/{}", NAMES[*n]));
            }
        }
        _ => {}
    }
}

fn under_w(snap: BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    snap.into_iter()
        .filter(|(p, _)| p.starts_with("/w/"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn changes_explain_the_new_tree_and_plans_cover_them(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..12), 1..6)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let src = MemorySource::new();
        src.create_dir("/w/a");
        src.write_file("/w/a/e.mkv", 1);
        let engine = Engine::new(Arc::new(MemoryStore::new())).with_source("s", Arc::new(src.clone()));
        let watch = Watch::new("s", "/w").unwrap();
        rt.block_on(engine.pass(&watch)).unwrap();
        // The tree as of the last pass that committed: an outage commits nothing, so
        // the next pass compares against this.
        let mut old = under_w(src.snapshot());
        for batch in batches {
            for op in &batch {
                apply(&src, op);
            }
            let new = under_w(src.snapshot());
            let report = match rt.block_on(engine.pass(&watch)) {
                Ok(r) => r,
                // Emptying the whole root is an outage by design; nothing to check.
                Err(e) => { prop_assert_eq!(e.kind(), pps_core::ErrorKind::Outage); continue; }
            };
            // Apply the changes to the old tree.
            let mut applied = old.clone();
            for c in &report.changes {
                match c.update {
                    Update::Deleted => {
                        prop_assert!(applied.contains_key(&c.path), "deleted {} was not there", c.path);
                        applied.retain(|p, _| !is_at_or_under(p, &c.path));
                    }
                    Update::Created => {
                        prop_assert!(!applied.contains_key(&c.path), "created {} was there", c.path);
                        // A created folder brings its whole subtree.
                        for (p, e) in new.iter().filter(|(p, _)| is_at_or_under(p, &c.path)) {
                            applied.insert(p.clone(), e.clone());
                        }
                    }
                    Update::Modified => {
                        prop_assert!(applied.contains_key(&c.path));
                        applied.insert(c.path.clone(), new[&c.path].clone());
                    }
                }
            }
            // Folder entries' own mtimes are not changes (their content is), so compare
            // files exactly and folders by presence.
            let files = |m: &BTreeMap<String, Entry>| m.iter().filter(|(_, e)| !e.is_dir()).map(|(p, e)| (p.clone(), (e.size, e.mtime))).collect::<BTreeMap<_, _>>();
            let dirs = |m: &BTreeMap<String, Entry>| m.iter().filter(|(_, e)| e.is_dir()).map(|(p, _)| p.clone()).collect::<Vec<_>>();
            prop_assert_eq!(files(&applied), files(&new));
            prop_assert_eq!(dirs(&applied), dirs(&new));
            old = new.clone();

            // Plans: every change covered exactly once, nothing covered twice.
            let queued: Vec<QueuedScan> = report.changes.iter().enumerate().map(|(i, c)| QueuedScan {
                id: i as i64, target: "t".into(), change: c.clone(), attempts: 0, last_error: None, next_try: None,
                scope: pps_core::store::ScopeId(1), queued_at: pps_core::Timestamp::default(),
            }).collect();
            for scans_files in [true, false] {
                let (planned, unplannable) = plan(&queued, scans_files, &PathMapping::default(), &[]);
                prop_assert!(unplannable.is_empty());
                let mut ids: Vec<i64> = planned.iter().flat_map(|p| p.covers.clone()).collect();
                ids.sort_unstable();
                prop_assert_eq!(ids, (0..queued.len() as i64).collect::<Vec<_>>());
                for p in &planned {
                    for id in &p.covers {
                        let c = &queued[*id as usize].change;
                        let target = if scans_files || (c.is_dir && c.update == Update::Created) {
                            c.path.as_str()
                        } else {
                            parent(&c.path).unwrap()
                        };
                        prop_assert!(is_at_or_under(target, &p.request.path), "{} covered by {}", c.path, p.request.path);
                    }
                    for q in &planned {
                        if std::ptr::eq(p, q) { continue; }
                        prop_assert_ne!(&p.request.path, &q.request.path, "a path planned twice");
                        if is_at_or_under(&q.request.path, &p.request.path) {
                            // Only a deletion may stand above a live path.
                            prop_assert!(p.request.update == Update::Deleted && q.request.update != Update::Deleted);
                        }
                    }
                }
            }
        }
    }
}
