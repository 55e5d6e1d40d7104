//! How big the store of a 20,000-folder library grows with a full history (issue 17).
//! Run: `cargo run --release -p pps-benches --bin store_size`.
//!
//! The library: 2,000 shows of 10 seasons (20,000 season folders, plus the show
//! folders and the root), 12 episodes each with names as long as real ones. A baseline
//! is recorded into a SQLite file; then changes and their deliveries fill the history
//! past its default limits (`HistoryLimits::default()`), so the file is measured at the
//! size it keeps from then on.

use pps_benches::machine;
use pps_core::memory::MemorySource;
use pps_core::sqlite::SqliteStore;
use pps_core::store::{Commit, HistoryLimits, HistoryQuery, NewScan};
use pps_core::{Change, Engine, Entry, Mtime, MtimeStore, Update, Watch};
use std::sync::Arc;

const SHOWS: usize = 2_000;
const SEASONS: usize = 10;
const EPISODES: usize = 12;

fn library() -> MemorySource {
    let mtime = Some(Mtime::from_nanos(1_700_000_000_000_000_000));
    let root = std::iter::once((
        "/115/电视剧".to_owned(),
        (0..SHOWS)
            .map(|s| Entry::dir(format!("A Show With a Long Name {s:04} (2019)"), mtime))
            .collect(),
    ));
    let shows = (0..SHOWS).flat_map(move |s| {
        let show = format!("/115/电视剧/A Show With a Long Name {s:04} (2019)");
        let seasons = (0..SEASONS)
            .map(|n| Entry::dir(format!("Season {:02}", n + 1), mtime))
            .collect();
        let episodes = (0..SEASONS).map({
            let show = show.clone();
            move |n| {
                (
                    format!("{show}/Season {:02}", n + 1),
                    (0..EPISODES)
                        .map(|e| {
                            Entry::file(
                                format!(
                                    "A Show With a Long Name {s:04} - S{:02}E{:02} - An Episode Title 1080p WEB-DL.mkv",
                                    n + 1,
                                    e + 1
                                ),
                                1_500_000_000 + e as u64,
                                mtime,
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            }
        });
        std::iter::once((show, seasons)).chain(episodes)
    });
    MemorySource::from_listings(root.chain(shows))
}

fn file_size(db: &std::path::Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::main]
async fn main() {
    println!("machine: {}", machine());
    let dir = tempfile::tempdir().expect("temp dir");
    // PPS_BENCH_KEEP=FILE keeps the store there for a look inside (sqlite3's dbstat).
    let db = std::env::var_os("PPS_BENCH_KEEP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("pps.db"));
    let limits = HistoryLimits::default();
    let store = Arc::new(
        SqliteStore::open(&db)
            .expect("store")
            .with_history_limits(limits),
    );
    let engine = Engine::new(store.clone()).with_source("cd2", Arc::new(library()));
    let watch = Watch::new("cd2", "/115/电视剧").expect("watch");
    let r = engine.pass(&watch).await.expect("baseline");
    drop(engine);
    println!("baseline: {} folders", r.folders_listed);
    checkpoint(&db);
    let base = file_size(&db);
    println!("store after the baseline: {:.1} MB", base as f64 / 1e6);
    // History: each round one new episode found and sent to two targets (a change
    // line and two sent lines, the mapped path as detail).
    let scope = store.scope("cd2", "/115/电视剧").expect("scope");
    let rounds = limits.max_rows as usize; // three lines a round: well past the limit
    for i in 0..rounds {
        let s = i % SHOWS;
        let path = format!(
            "/115/电视剧/A Show With a Long Name {s:04} (2019)/Season 11/A Show With a Long Name {s:04} - S11E{:02} - An Episode Title 1080p WEB-DL.mkv",
            i / SHOWS + 1
        );
        let change = Change::new(path.clone(), Update::Created, false);
        store
            .commit(
                scope,
                &Commit {
                    scans: ["plex", "jellyfin"]
                        .map(|t| NewScan {
                            target: t.into(),
                            change: change.clone(),
                        })
                        .to_vec(),
                    changes: vec![(change, pps_core::store::Origin::Poll)],
                    ..Commit::default()
                },
            )
            .expect("commit");
        for t in ["plex", "jellyfin"] {
            let ids: Vec<i64> = store
                .pending(t, 10)
                .expect("pending")
                .iter()
                .map(|q| q.id)
                .collect();
            let sent = format!(
                "/mnt/CloudNAS/CloudDrive{}",
                path.rsplit_once('/').map_or("", |p| p.0)
            );
            store.complete(&ids, &sent).expect("complete");
        }
    }
    checkpoint(&db);
    let kept = store
        .history(&HistoryQuery {
            limit: usize::MAX,
            ..HistoryQuery::default()
        })
        .expect("history")
        .len();
    let full = file_size(&db);
    println!(
        "history: {} lines written, {kept} kept (max_rows {}); store {:.1} MB ({:.1} MB of it history)",
        rounds * 3,
        limits.max_rows,
        full as f64 / 1e6,
        (full.saturating_sub(base)) as f64 / 1e6
    );
}

/// Folds the WAL into the main file (SQLite's own checkpoint, from a second
/// connection), so the size is what the store keeps, not a WAL's high-water mark.
fn checkpoint(db: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
}
