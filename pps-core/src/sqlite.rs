//! The embedded store: one SQLite file (bundled SQLite, no system library needed).
//!
//! - WAL journal with `synchronous = NORMAL`: a commit survives a killed process; a
//!   power cut may roll back the last few commits, which is still safe because a folder's
//!   state and its scans always roll back together and the next pass finds the same
//!   changes again.
//! - `folders` (a rowid table since v6): one row per (scope, folder path) with the
//!   listing fingerprint and the compact listing, and an index of (scope, path,
//!   fingerprint) so a pass loads every fingerprint without reading a listing. A
//!   subtree is dropped by one range delete on the primary key: `path = P OR P/ <=
//!   path < P0` (`0` is the byte after `/`), which matches whole components only.
//! - `outbox`: undelivered scans, ids never reused (`AUTOINCREMENT`) so they order
//!   enqueue time.
//! - `schedule` (v2): one row per (scope, folder path) with its poll interval, next due
//!   time, last change, pending hint and settling listing, indexed by due time so the
//!   scheduler's due query reads only the due rows (and ranks them). A row may exist
//!   without a `folders` row: a folder due to be listed for the first time.
//! - `history` (v5): the activity history, one row per change found and per delivery
//!   outcome, inserted in the transaction of what it records and pruned (by age and
//!   count, [`HistoryLimits`]) in the same transactions that add to it.
//! - `PRAGMA user_version` is the schema version; migrations run in one transaction on
//!   open. A file from a newer pps is refused, never altered. `PRAGMA application_id`
//!   marks the file as a pps store, so pointing pps at another database is refused too.

use crate::budget::{self, Bucket, CallLimits, Grant, Windows};
use crate::clock::Timestamp;
use crate::confirm::{NewConfirm, Outcome, PendingConfirm};
use crate::error::{Error, ErrorKind, Result};
use crate::listing::Fingerprint;
use crate::schedule::{BANDS, duration_secs};
use crate::store::{
    Commit, Event, FolderRecord, FolderSchedule, HistoryEntry, HistoryLimits, HistoryQuery,
    MtimeStore, NotifierState, QueuedScan, ScheduleSummary, ScopeId, Settling, SourceHealth,
    StoreStats,
};
use crate::types::{Change, Update};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// `pps1` in ASCII: marks a SQLite file as a pps store.
const APPLICATION_ID: i64 = 0x7070_7331;

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: scopes, folders, outbox.
    "CREATE TABLE scopes (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        root TEXT NOT NULL,
        UNIQUE (source, root)
    );
    CREATE TABLE folders (
        scope INTEGER NOT NULL,
        path TEXT NOT NULL,
        fingerprint BLOB NOT NULL,
        listing BLOB NOT NULL,
        PRIMARY KEY (scope, path)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        scope INTEGER NOT NULL,
        path TEXT NOT NULL,
        update_kind INTEGER NOT NULL,
        is_dir INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        parked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_by_target ON outbox (target, parked, id);",
    // v2: per-folder schedules. Folders of a v1 store get an unknown interval (read as
    // the ceiling) and a first due time spread over a day, so an upgrade re-checks the
    // library within a day without a burst of listings.
    "CREATE TABLE schedule (
        scope INTEGER NOT NULL,
        path TEXT NOT NULL,
        due INTEGER NOT NULL,
        interval INTEGER NOT NULL,
        last_change INTEGER,
        hold_until INTEGER,
        force INTEGER NOT NULL DEFAULT 0,
        settle_fp BLOB,
        settle_since INTEGER,
        PRIMARY KEY (scope, path)
    ) WITHOUT ROWID;
    CREATE INDEX schedule_by_due ON schedule (scope, due, path);
    INSERT INTO schedule (scope, path, due, interval)
        SELECT scope, path, CAST(strftime('%s', 'now') AS INTEGER) + 1 + abs(random() % 86400), 0
        FROM folders;",
    // v3: when a failed scan is tried again, for `status`.
    "ALTER TABLE outbox ADD COLUMN next_try INTEGER;",
    // v4: cadences (the start of the latest burst of changes, the gap between bursts)
    // and when each folder was last listed, for spare listings.
    "ALTER TABLE schedule ADD COLUMN burst INTEGER;
     ALTER TABLE schedule ADD COLUMN cadence INTEGER;
     ALTER TABLE schedule ADD COLUMN listed INTEGER;",
    // v5: the activity history: changes found and what delivery did with each scan,
    // written in the transaction of what it records; pruned by age and count.
    "CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        event INTEGER NOT NULL,
        scope INTEGER,
        target TEXT,
        path TEXT NOT NULL,
        update_kind INTEGER NOT NULL,
        is_dir INTEGER NOT NULL,
        detail TEXT
    );
    CREATE INDEX history_by_at ON history (at);",
    // v6: folders as a rowid table. In the WITHOUT ROWID table of v1 a listing of more
    // than about 1,000 bytes (a season of a dozen episodes) spilled into an overflow
    // page of its own: a 20,000-folder library took 94 MB, 70 MB of it empty. A rowid
    // table keeps a row of up to about 4 KB inline; the index of (scope, path,
    // fingerprint) keeps loading every fingerprint an index-only scan.
    "CREATE TABLE folders_v6 (
        scope INTEGER NOT NULL,
        path TEXT NOT NULL,
        fingerprint BLOB NOT NULL,
        listing BLOB NOT NULL,
        PRIMARY KEY (scope, path)
    );
    INSERT INTO folders_v6 (scope, path, fingerprint, listing)
        SELECT scope, path, fingerprint, listing FROM folders ORDER BY scope, path;
    DROP TABLE folders;
    ALTER TABLE folders_v6 RENAME TO folders;
    CREATE INDEX folders_fingerprints ON folders (scope, path, fingerprint);",
    // v7: calls per source and hour, so `max_calls_per_day` counts across restarts.
    "CREATE TABLE calls (
        source TEXT NOT NULL,
        hour INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (source, hour)
    ) WITHOUT ROWID;",
    // v8: evidence of a change (a folder created, its entry moved, a push hint) puts a
    // due folder first, and the last change pps itself saw marks a burst; calls per
    // minute instead of per hour, so every process of one account shares per-minute
    // and per-hour ceilings, and a token bucket per source shared by those processes
    // (one budget per cloud account, not per process).
    // A watch root is listed at its interval from now on: a root an older pps set a
    // day ahead comes due at once.
    "ALTER TABLE schedule ADD COLUMN evidence INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE schedule ADD COLUMN seen_change INTEGER;
     ALTER TABLE schedule ADD COLUMN epoch INTEGER;
     ALTER TABLE schedule ADD COLUMN changes INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE calls_v8 (
        source TEXT NOT NULL,
        minute INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (source, minute)
     ) WITHOUT ROWID;
     INSERT INTO calls_v8 (source, minute, n) SELECT source, hour * 60, n FROM calls;
     DROP TABLE calls;
     ALTER TABLE calls_v8 RENAME TO calls;
     CREATE TABLE budget (
        source TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        at REAL NOT NULL,
        paused_until REAL NOT NULL DEFAULT 0
     );
     UPDATE schedule SET due = min(due, coalesce(listed, due) + 1)
        WHERE EXISTS (SELECT 1 FROM scopes WHERE scopes.id = schedule.scope AND scopes.root = schedule.path);",
    // v9: confirmations that a media server indexed what it was sent, written with the
    // scan they confirm; the item ids found (so a later deletion can be checked by id on
    // servers without a lookup by path); and the time from change to library per
    // history line.
    "CREATE TABLE confirms (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        scope INTEGER NOT NULL,
        source_path TEXT NOT NULL,
        update_kind INTEGER NOT NULL,
        is_dir INTEGER NOT NULL,
        path TEXT NOT NULL,
        changed_at INTEGER NOT NULL,
        sent_at INTEGER NOT NULL,
        next_check INTEGER NOT NULL,
        deadline INTEGER NOT NULL,
        checks INTEGER NOT NULL DEFAULT 0,
        remedied INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        stuck TEXT,
        UNIQUE (target, path)
     );
     CREATE INDEX confirms_due ON confirms (target, next_check) WHERE stuck IS NULL;
     CREATE TABLE items (
        target TEXT NOT NULL,
        path TEXT NOT NULL,
        item TEXT NOT NULL,
        PRIMARY KEY (target, path)
     ) WITHOUT ROWID;
     ALTER TABLE history ADD COLUMN took INTEGER;",
    // v10: notifiers read the history; each keeps its cursor and delivery state here.
    "CREATE TABLE notifiers (
        name TEXT PRIMARY KEY,
        cursor INTEGER NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_sent INTEGER,
        sent INTEGER NOT NULL DEFAULT 0,
        parked TEXT
     );",
    // v11: who asked for a hinted folder (a push event, a webhook), so the history can
    // say where a change came from.
    "ALTER TABLE schedule ADD COLUMN hinted_by INTEGER;",
];

/// The first schema version whose migration rewrites the folders: after it, the file
/// is vacuumed once so the space the old layout wasted goes back to the disk.
const REWRITES_FOLDERS: i64 = 6;

/// The newest schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    limits: HistoryLimits,
    #[cfg(feature = "testing")]
    fail_at_step: std::sync::atomic::AtomicUsize,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, migrating an older schema.
    ///
    /// # Errors
    /// [`Corrupt`](ErrorKind::Corrupt) when the file is not a SQLite database, not a pps
    /// store, damaged, or written by a newer pps; [`Unavailable`](ErrorKind::Unavailable)
    /// or [`PermissionDenied`](ErrorKind::PermissionDenied) when it cannot be opened.
    /// Every error names the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), true)
    }

    /// Opens the store at `path` only if it exists: for commands that read state
    /// (`status`, `ls`) and must not leave an empty store behind.
    ///
    /// # Errors
    /// [`NotFound`](ErrorKind::NotFound) when there is no file; otherwise as
    /// [`open`](Self::open).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, create: bool) -> Result<Self> {
        let path = path.to_path_buf();
        check_location(&path, create)?;
        // No URI flag: a store named `file:x` is a file named `file:x`.
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| explain_open(sql_error(e, &path), &path))?;
        Self::init(conn, path.clone()).map_err(|e| explain_open(e, &path))
    }

    /// A store in memory (for tests and one-off runs).
    pub fn open_in_memory() -> Result<Self> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| sql_error(e, &path))?;
        Self::init(conn, path)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(mut conn: Connection, path: PathBuf) -> Result<Self> {
        let err = |e| sql_error(e, &path);
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        // The first read of the header is where a non-database file shows itself.
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        // Only a file pps made, or an empty one, is a store; anything else (another
        // app's database, even one without tables) is refused before anything in it
        // changes: the journal mode below rewrites header bytes.
        let fresh = app_id == 0 && version == 0 && tables == 0;
        if app_id != APPLICATION_ID && !fresh {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "this SQLite file is not a pps store; point --store (or [store] path) at a new or pps-made file",
            )
            .permanent()
            .with("store", path.display().to_string()));
        }
        if version > SCHEMA_VERSION {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the store was written by a newer pps (schema v{version}; this pps knows up to v{SCHEMA_VERSION}); upgrade pps, the file was left untouched"
                ),
            )
            .permanent()
            .with("store", path.display().to_string()));
        }
        if path.as_os_str() != ":memory:" {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(store = %path.display(), mode, "WAL journal not available; using {mode}");
            }
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")
            .map_err(err)?;
        if version < SCHEMA_VERSION {
            let tx = conn.transaction().map_err(err)?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(sql).map_err(err)?;
                tracing::debug!(store = %path.display(), to = i + 1, "migrated store schema");
            }
            tx.execute_batch(&format!(
                "PRAGMA user_version = {SCHEMA_VERSION}; PRAGMA application_id = {APPLICATION_ID};"
            ))
            .map_err(err)?;
            tx.commit().map_err(err)?;
            if version > 0 && version < REWRITES_FOLDERS && path.as_os_str() != ":memory:" {
                // Outside the transaction (VACUUM cannot run in one); a failure here
                // leaves a correct store that is only larger than it needs to be.
                if let Err(e) = conn.execute_batch("VACUUM") {
                    tracing::warn!(store = %path.display(), error = %e, "could not compact the store after its upgrade");
                }
            }
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            limits: HistoryLimits::default(),
            #[cfg(feature = "testing")]
            fail_at_step: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Keeps the history within `limits` from now on (the next write prunes).
    pub fn with_history_limits(mut self, limits: HistoryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Writes a consistent copy of the whole store to a new file at `path` (SQLite's
    /// `VACUUM INTO`), reading only: what a dry run works on, so the store itself is
    /// never changed.
    pub fn copy_to(&self, path: &Path) -> Result<()> {
        let to = path.to_str().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "the copy's path is not valid UTF-8",
            )
            .with("path", path.display().to_string())
        })?;
        self.conn()
            .execute("VACUUM INTO ?1", [to])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves at worst an open transaction, which
        // rusqlite rolls back when the `Transaction` is dropped during unwinding.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        sql_error(e, &self.path)
    }

    /// Makes the next commit fail just before its `step`-th statement (1-based; a
    /// commit's statements are its removals, then its folder writes, then its scans,
    /// then its schedules, then the final COMMIT). Lets tests interrupt a commit at any
    /// step.
    #[cfg(feature = "testing")]
    pub fn fail_next_commit_at(&self, step: usize) {
        self.fail_at_step
            .store(step, std::sync::atomic::Ordering::SeqCst);
    }

    fn check_step(&self, _step: usize) -> Result<()> {
        #[cfg(feature = "testing")]
        {
            use std::sync::atomic::Ordering;
            let at = self.fail_at_step.load(Ordering::SeqCst);
            if at != 0 && at == _step {
                self.fail_at_step.store(0, Ordering::SeqCst);
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "injected failure inside a commit",
                ));
            }
        }
        Ok(())
    }
}

/// One writer per store: a lock held by the process that lists folders into a store
/// (`pps run`, `once`, `index`), so a second one is refused instead of doubling the
/// calls the cloud counts.
///
/// The lock is an advisory lock on a file of its own beside the store (`FILE.lock`,
/// holding the holder's pid and command), never on the store file: closing any other
/// descriptor of a SQLite file drops SQLite's own POSIX locks on it. The lock ends with
/// the process (also on `kill -9`); the file stays, harmlessly, so no two processes
/// ever race to create it.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl StoreLock {
    /// The lock file of the store at `store`.
    pub fn path_for(store: &Path) -> PathBuf {
        let mut p = store.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    }

    /// Takes the lock of the store at `store` for `holder` (e.g. `pps run`), without
    /// waiting.
    ///
    /// # Errors
    /// [`Unavailable`](ErrorKind::Unavailable) naming the pid and command of the holder
    /// when another process has it; an I/O error when the lock file cannot be made.
    pub fn acquire(store: &Path, holder: &str) -> Result<StoreLock> {
        use std::io::{Read, Seek, Write};
        let path = Self::path_for(store);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) {
                    let dir = store
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    Error::new(
                        ErrorKind::PermissionDenied,
                        format!(
                            "the folder holding the store ({}) is not writable (read-only): pps keeps its lock file and SQLite its -wal and -shm files beside the store",
                            dir.display()
                        ),
                    )
                    .permanent()
                    .with("store", store.display().to_string())
                } else {
                    Error::new(ErrorKind::Unavailable, format!("cannot create the lock file: {e}"))
                        .with("lock", path.display().to_string())
                }
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = file.read_to_string(&mut who);
                let who = who.trim();
                let who = if who.is_empty() {
                    "another process"
                } else {
                    who
                };
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "store {} is in use by {who}; stop it first (`pps status` and `pps ls` work beside it)",
                        store.display()
                    ),
                )
                .permanent());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::from(e).with("lock", path.display().to_string()));
            }
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "pid {} ({holder})", std::process::id());
        let _ = file.flush();
        Ok(StoreLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The files SQLite keeps for the store at `store` (the store, its `-wal`, `-shm` and
/// `-journal`) and its lock file: what a local source never reports, wherever they are.
pub fn store_files(store: &Path) -> Vec<PathBuf> {
    let mut out = vec![store.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = store.as_os_str().to_owned();
        p.push(suffix);
        out.push(PathBuf::from(p));
    }
    out.push(StoreLock::path_for(store));
    out
}

/// Refuses a store path SQLite would mishandle, before SQLite touches it: a folder, a
/// device (SQLite would create `/dev/null-journal`), a dangling link, a missing folder.
/// Each gets its own message instead of SQLite's "unable to open database file".
fn check_location(path: &Path, create: bool) -> Result<()> {
    let shown = || path.display().to_string();
    let fail = |kind: ErrorKind, msg: String| {
        Err(Error::new(kind, msg).permanent().with("store", shown()))
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return fail(
                ErrorKind::ConfigInvalid,
                "the store path is a folder; name a file in it, e.g. FOLDER/pps.db".to_owned(),
            );
        }
        Ok(m) if !m.is_file() => {
            return fail(
                ErrorKind::ConfigInvalid,
                "the store path is not a regular file (a device or a pipe); name a file".to_owned(),
            );
        }
        Ok(_) => return Ok(()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::from(e).with("store", shown()));
        }
        Err(_) => {}
    }
    if let Ok(target) = std::fs::read_link(path) {
        return fail(
            ErrorKind::ConfigInvalid,
            format!(
                "the store path is a symbolic link to {}, which does not exist",
                target.display()
            ),
        );
    }
    if !create {
        return fail(
            ErrorKind::NotFound,
            "there is no store yet (`pps index`, `pps once` or `pps run` creates it)".to_owned(),
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return fail(
            ErrorKind::ConfigInvalid,
            format!(
                "the folder {} does not exist; create it or point the store elsewhere",
                parent.display()
            ),
        );
    }
    Ok(())
}

/// A clearer message for an open that failed where the folder, not the file, is the
/// problem: SQLite keeps its `-wal` and `-shm` files beside the store, so a read-only
/// folder fails even when the file itself is writable.
fn explain_open(err: Error, path: &Path) -> Error {
    if !matches!(err.kind(), ErrorKind::PermissionDenied) {
        return err;
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if folder_writable(parent) {
        return err;
    }
    Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "the folder holding the store ({}) is not writable; SQLite keeps the store's -wal and -shm files beside it",
            parent.display()
        ),
    )
    .permanent()
    .with("store", path.display().to_string())
}

/// Whether a file can be created in `dir` (tried, then removed at once): permission
/// bits do not tell for root, ACLs or read-only mounts.
fn folder_writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".pps-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

fn sql_error(e: rusqlite::Error, path: &Path) -> Error {
    let (kind, message) = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => (
                ErrorKind::Corrupt,
                "the store file is damaged or not a SQLite database; it was left untouched (move it aside to start over)",
            ),
            ErrorCode::DiskFull => (ErrorKind::Unavailable, "the disk holding the store is full"),
            // Opening a WAL store creates and sizes its `-shm` file; on a full disk that
            // fails as SQLITE_IOERR_SHMSIZE, not SQLITE_FULL.
            ErrorCode::SystemIoFailure
                if f.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE =>
            {
                (
                    ErrorKind::Unavailable,
                    "the disk holding the store is full (no room for the store's -shm file)",
                )
            }
            ErrorCode::ReadOnly => (ErrorKind::PermissionDenied, "the store file is read-only"),
            ErrorCode::PermissionDenied | ErrorCode::CannotOpen => (
                ErrorKind::PermissionDenied,
                "the store file cannot be opened",
            ),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => (
                ErrorKind::Unavailable,
                "the store is locked by another process",
            ),
            ErrorCode::SystemIoFailure => (ErrorKind::Unavailable, "I/O error on the store file"),
            _ => (ErrorKind::Unexpected, "store error"),
        },
        _ => (ErrorKind::Unexpected, "store error"),
    };
    let err = Error::new(kind, message).with("store", path.display().to_string());
    let err = match kind {
        ErrorKind::Unavailable => err.temporary(),
        _ => err.permanent(),
    };
    err.set_source(e)
}

/// Drops history beyond `limits`: by age (the index on `at`), then by count (a range
/// of the primary key). Cheap enough to run with every write that adds to it.
fn prune_history(tx: &rusqlite::Transaction<'_>, limits: HistoryLimits) -> rusqlite::Result<()> {
    let cutoff =
        now_secs().saturating_sub(i64::try_from(limits.max_age.as_secs()).unwrap_or(i64::MAX));
    tx.prepare_cached("DELETE FROM history WHERE at < ?1")?
        .execute([cutoff])?;
    let keep = i64::try_from(limits.max_rows).unwrap_or(i64::MAX);
    tx.prepare_cached("DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?1")?
        .execute([keep])?;
    Ok(())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn corrupt_row(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        format!("corrupt {what} in store").into(),
    )
}

fn read_queued(row: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedScan> {
    let code: i64 = row.get(3)?;
    let update = Update::from_code(code).ok_or_else(|| corrupt_row("update kind"))?;
    Ok(QueuedScan {
        id: row.get(0)?,
        target: row.get(1)?,
        change: Change {
            path: row.get(2)?,
            update,
            is_dir: row.get(4)?,
        },
        attempts: row.get(5)?,
        last_error: row.get(6)?,
        next_try: row.get::<_, Option<i64>>(7)?.map(Timestamp::from_secs),
        scope: ScopeId(row.get(8)?),
        queued_at: Timestamp::from_secs(row.get(9)?),
    })
}

/// A history line from the columns `id, at, event, source, root, target, path,
/// update_kind, is_dir, detail, took`.
fn read_history(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryEntry> {
    let event: i64 = r.get(2)?;
    let source: Option<String> = r.get(3)?;
    let root: Option<String> = r.get(4)?;
    let update: i64 = r.get(7)?;
    Ok(HistoryEntry {
        id: r.get(0)?,
        at: Timestamp::from_secs(r.get(1)?),
        event: Event::from_code(event).ok_or_else(|| corrupt_row("event"))?,
        watch: source.zip(root),
        target: r.get(5)?,
        change: Change::new(
            r.get::<_, String>(6)?,
            Update::from_code(update).ok_or_else(|| corrupt_row("update"))?,
            r.get(8)?,
        ),
        detail: r.get(9)?,
        took: r
            .get::<_, Option<i64>>(10)?
            .map(|t| u64::try_from(t).unwrap_or(0)),
    })
}

/// A confirmation from the columns of [`CONFIRM_COLUMNS`].
fn read_confirm(row: &rusqlite::Row<'_>) -> rusqlite::Result<PendingConfirm> {
    let code: i64 = row.get(3)?;
    let update = Update::from_code(code).ok_or_else(|| corrupt_row("update kind"))?;
    Ok(PendingConfirm {
        id: row.get(0)?,
        target: row.get(1)?,
        change: Change::new(row.get::<_, String>(2)?, update, row.get(4)?),
        path: row.get(5)?,
        changed_at: Timestamp::from_secs(row.get(6)?),
        sent_at: Timestamp::from_secs(row.get(7)?),
        next_check: Timestamp::from_secs(row.get(8)?),
        deadline: Timestamp::from_secs(row.get(9)?),
        checks: row.get(10)?,
        remedied: row.get(11)?,
        note: row.get(12)?,
        stuck: row.get(13)?,
    })
}

/// The columns [`read_confirm`] reads, in its order.
const CONFIRM_COLUMNS: &str = "id, target, source_path, update_kind, is_dir, path, changed_at, \
     sent_at, next_check, deadline, checks, remedied, note, stuck";

/// `path` and the bounds of the paths below it on whole components, in the path's own
/// separator style: `[path + sep, path + next(sep))` in byte order.
fn below_bounds(path: &str) -> (String, String, String) {
    let sep = crate::mapping::PathStyle::of(path).separator();
    let base = path.trim_end_matches(sep);
    let next = char::from_u32(sep as u32 + 1).unwrap_or(sep);
    (
        base.to_owned(),
        format!("{base}{sep}"),
        format!("{base}{next}"),
    )
}

/// A schedule from columns `due, interval, last_change, hold_until, force, settle_fp,
/// settle_since, burst, cadence, listed, evidence, seen_change, epoch, changes,
/// hinted_by` starting at column `at`.
fn read_schedule(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<FolderSchedule> {
    let fp: Option<Vec<u8>> = row.get(at + 5)?;
    let since: Option<i64> = row.get(at + 6)?;
    let settling = match (fp, since) {
        (Some(fp), Some(since)) => {
            let fp: [u8; 16] = fp.try_into().map_err(|_| corrupt_row("fingerprint"))?;
            Some(Settling {
                fingerprint: Fingerprint(fp),
                since: Timestamp::from_secs(since),
            })
        }
        _ => None,
    };
    Ok(FolderSchedule {
        next_due: Timestamp::from_secs(row.get(at)?),
        interval: std::time::Duration::from_secs(row.get::<_, i64>(at + 1)?.max(0) as u64),
        last_change: row.get::<_, Option<i64>>(at + 2)?.map(Timestamp::from_secs),
        hold_until: row.get::<_, Option<i64>>(at + 3)?.map(Timestamp::from_secs),
        force_refresh: row.get(at + 4)?,
        settling,
        burst: row.get::<_, Option<i64>>(at + 7)?.map(Timestamp::from_secs),
        cadence: row
            .get::<_, Option<i64>>(at + 8)?
            .map(|c| std::time::Duration::from_secs(c.max(0) as u64)),
        listed: row.get::<_, Option<i64>>(at + 9)?.map(Timestamp::from_secs),
        evidence: row.get(at + 10)?,
        seen_change: row
            .get::<_, Option<i64>>(at + 11)?
            .map(Timestamp::from_secs),
        epoch: row
            .get::<_, Option<i64>>(at + 12)?
            .map(Timestamp::from_secs),
        changes: row.get(at + 13)?,
        // An unknown code (a newer build's origin) reads as unknown, not as an error.
        hinted_by: row
            .get::<_, Option<i64>>(at + 14)?
            .and_then(crate::store::Origin::from_code),
    })
}

/// Counts `n` calls of `source` in `minute`; the first count of a minute also prunes
/// what is older than [`CALLS_KEPT`](crate::budget::CALLS_KEPT).
fn count_calls(conn: &Connection, source: &str, minute: i64, n: u64) -> rusqlite::Result<()> {
    let total: i64 = conn
        .prepare_cached(
            "INSERT INTO calls (source, minute, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (source, minute) DO UPDATE SET n = n + excluded.n
             RETURNING n",
        )?
        .query_row(
            params![source, minute, i64::try_from(n).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
    if u64::try_from(total).unwrap_or(0) == n {
        let keep = (crate::budget::CALLS_KEPT.as_secs() / 60) as i64;
        conn.prepare_cached("DELETE FROM calls WHERE minute <= ?1")?
            .execute([minute - keep])?;
    }
    Ok(())
}

fn subtree_bounds(root: &str) -> (String, String) {
    let root = root.strip_suffix('/').unwrap_or(root);
    (format!("{root}/"), format!("{root}0"))
}

impl MtimeStore for SqliteStore {
    fn scope(&self, source: &str, root: &str) -> Result<ScopeId> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO scopes (source, root) VALUES (?1, ?2)",
            params![source, root],
        )
        .map_err(|e| self.err(e))?;
        let id = conn
            .query_row(
                "SELECT id FROM scopes WHERE source = ?1 AND root = ?2",
                params![source, root],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(ScopeId(id))
    }

    fn fingerprints(&self, scope: ScopeId) -> Result<HashMap<String, Fingerprint>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT path, fingerprint FROM folders WHERE scope = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([scope.0], |r| {
                let path: String = r.get(0)?;
                let fp: Vec<u8> = r.get(1)?;
                let fp: [u8; 16] = fp.try_into().map_err(|_| corrupt_row("fingerprint"))?;
                Ok((path, Fingerprint(fp)))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn folder(&self, scope: ScopeId, path: &str) -> Result<Option<FolderRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT fingerprint, listing FROM folders WHERE scope = ?1 AND path = ?2",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![scope.0, path], |r| {
            let fp: Vec<u8> = r.get(0)?;
            let fp: [u8; 16] = fp.try_into().map_err(|_| corrupt_row("fingerprint"))?;
            Ok(FolderRecord {
                fingerprint: Fingerprint(fp),
                listing: r.get(1)?,
            })
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    fn commit(&self, scope: ScopeId, commit: &Commit) -> Result<()> {
        if commit.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| sql_error(e, &self.path))?;
        let err = |e| sql_error(e, &self.path);
        let mut step = 0;
        {
            let mut del = tx
                .prepare_cached(
                    "DELETE FROM folders WHERE scope = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))",
                )
                .map_err(err)?;
            let mut del_all = tx
                .prepare_cached("DELETE FROM folders WHERE scope = ?1")
                .map_err(err)?;
            let mut del_sched = tx
                .prepare_cached(
                    "DELETE FROM schedule WHERE scope = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))",
                )
                .map_err(err)?;
            let mut del_sched_all = tx
                .prepare_cached("DELETE FROM schedule WHERE scope = ?1")
                .map_err(err)?;
            for root in &commit.removed {
                step += 1;
                self.check_step(step)?;
                if root == "/" {
                    del_all.execute([scope.0]).map_err(err)?;
                    del_sched_all.execute([scope.0]).map_err(err)?;
                } else {
                    let (lo, hi) = subtree_bounds(root);
                    del.execute(params![scope.0, root, lo, hi]).map_err(err)?;
                    del_sched
                        .execute(params![scope.0, root, lo, hi])
                        .map_err(err)?;
                }
            }
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO folders (scope, path, fingerprint, listing) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            for (path, rec) in &commit.folders {
                step += 1;
                self.check_step(step)?;
                put.execute(params![scope.0, path, &rec.fingerprint.0[..], rec.listing])
                    .map_err(err)?;
            }
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO outbox (target, scope, path, update_kind, is_dir, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            let now = now_secs();
            for scan in &commit.scans {
                step += 1;
                self.check_step(step)?;
                add.execute(params![
                    scan.target,
                    scope.0,
                    scan.change.path,
                    scan.change.update.code(),
                    scan.change.is_dir,
                    now
                ])
                .map_err(err)?;
            }
            let mut sched = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO schedule (scope, path, due, interval, last_change, hold_until, force, settle_fp, settle_since, burst, cadence, listed, evidence, seen_change, epoch, changes, hinted_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(err)?;
            for (path, s) in &commit.schedules {
                step += 1;
                self.check_step(step)?;
                sched
                    .execute(params![
                        scope.0,
                        path,
                        s.next_due.as_secs(),
                        duration_secs(s.interval),
                        s.last_change.map(Timestamp::as_secs),
                        s.hold_until.map(Timestamp::as_secs),
                        s.force_refresh,
                        s.settling.map(|x| x.fingerprint.0.to_vec()),
                        s.settling.map(|x| x.since.as_secs()),
                        s.burst.map(Timestamp::as_secs),
                        s.cadence.map(duration_secs),
                        s.listed.map(Timestamp::as_secs),
                        s.evidence,
                        s.seen_change.map(Timestamp::as_secs),
                        s.epoch.map(Timestamp::as_secs),
                        s.changes,
                        s.hinted_by.map(crate::store::Origin::code),
                    ])
                    .map_err(err)?;
            }
        }
        if !commit.changes.is_empty() {
            let now = now_secs();
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO history (at, event, scope, path, update_kind, is_dir, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for (c, origin) in &commit.changes {
                add.execute(params![
                    now,
                    Event::Change.code(),
                    scope.0,
                    c.path,
                    c.update.code(),
                    c.is_dir,
                    origin.as_str()
                ])
                .map_err(err)?;
            }
            drop(add);
            prune_history(&tx, self.limits).map_err(err)?;
        }
        step += 1;
        self.check_step(step)?;
        // Dropping `tx` on any early return above rolls everything back.
        tx.commit().map_err(err)
    }

    fn forget(&self, scope: ScopeId, root: &str) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut n = 0;
        for table in ["folders", "schedule"] {
            let dropped = if root == "/" {
                tx.execute(&format!("DELETE FROM {table} WHERE scope = ?1"), [scope.0])
            } else {
                let (lo, hi) = subtree_bounds(root);
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE scope = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))"
                    ),
                    params![scope.0, root, lo, hi],
                )
            }
            .map_err(|e| self.err(e))?;
            if table == "folders" {
                n = dropped;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    fn schedule(&self, scope: ScopeId, path: &str) -> Result<Option<FolderSchedule>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT due, interval, last_change, hold_until, force, settle_fp, settle_since, burst, cadence, listed, evidence, seen_change, epoch, changes, hinted_by FROM schedule
                 WHERE scope = ?1 AND path = ?2",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![scope.0, path], |r| read_schedule(r, 0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn due_ranked(
        &self,
        scope: ScopeId,
        now: Timestamp,
        starved: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, FolderSchedule)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT path, due, interval, last_change, hold_until, force, settle_fp, settle_since, burst, cadence, listed, evidence, seen_change, epoch, changes, hinted_by FROM schedule
                 WHERE scope = ?1 AND due <= ?2
                 ORDER BY (force OR evidence) DESC,
                    coalesce(listed, due - interval) <= ?8 DESC,
                    CASE WHEN coalesce(listed, due - interval) <= ?8
                        THEN coalesce(listed, due - interval) ELSE 0 END,
                    max(0, ?2 - coalesce(listed, due - interval)) * 1.0 /
                        CASE WHEN seen_change IS NOT NULL AND ?2 - seen_change < ?9 THEN ?7
                        ELSE max(?4,
                            CASE WHEN cadence >= ?5 AND burst IS NOT NULL AND ?2 - burst <= ?6 * cadence
                                    THEN cadence
                                 WHEN epoch IS NOT NULL THEN (?2 - epoch) * 1.0 / (changes + 1)
                                 WHEN last_change IS NOT NULL THEN ?2 - last_change
                                 WHEN interval > 0 THEN 10 * interval
                                 ELSE 864000 END) END DESC,
                    due, path
                 LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![
                    scope.0,
                    now.as_secs(),
                    limit,
                    duration_secs(crate::schedule::MIN_GAP),
                    duration_secs(crate::schedule::BURST),
                    i64::from(crate::schedule::CADENCE_LIFE),
                    duration_secs(crate::schedule::BURST_GAP),
                    starved.map_or(i64::MIN, Timestamp::as_secs),
                    duration_secs(crate::schedule::BURST_WINDOW),
                ],
                |r| Ok((r.get(0)?, read_schedule(r, 1)?)),
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn schedule_summary(
        &self,
        scope: ScopeId,
        now: Timestamp,
        window: std::time::Duration,
    ) -> Result<ScheduleSummary> {
        let conn = self.conn();
        let horizon = now.plus(window);
        conn.query_row(
            "SELECT count(*), coalesce(sum(due <= ?2), 0), coalesce(sum(due <= ?3), 0),
                    coalesce(max(interval), 0), min(due), coalesce(sum(force), 0),
                    coalesce(sum(settle_fp IS NOT NULL), 0),
                    coalesce(sum(interval > 0 AND interval <= ?4), 0),
                    coalesce(sum(interval > ?4 AND interval <= ?5), 0),
                    coalesce(sum(interval > ?5 AND interval <= ?6), 0),
                    coalesce(sum(interval > ?6 AND interval <= ?7), 0),
                    coalesce(sum(interval = 0 OR interval > ?7), 0),
                    coalesce(sum(CASE WHEN interval > 0 THEN 86400.0 / interval ELSE 1.0 END), 0.0)
             FROM schedule WHERE scope = ?1",
            params![
                scope.0,
                now.as_secs(),
                horizon.as_secs(),
                BANDS[0] as i64,
                BANDS[1] as i64,
                BANDS[2] as i64,
                BANDS[3] as i64
            ],
            |r| {
                let count = |i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
                Ok(ScheduleSummary {
                    folders: count(0)?,
                    due_now: count(1)?,
                    due_within: count(2)?,
                    longest_interval: std::time::Duration::from_secs(count(3)?),
                    next_due: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_secs),
                    forced: count(5)?,
                    settling: count(6)?,
                    bands: [count(7)?, count(8)?, count(9)?, count(10)?, count(11)?],
                    calls_per_day: r.get(12)?,
                })
            },
        )
        .map_err(|e| self.err(e))
    }

    fn pending(&self, target: &str, limit: usize) -> Result<Vec<QueuedScan>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, target, path, update_kind, is_dir, attempts, last_error, next_try, scope, created_at FROM outbox
                 WHERE target = ?1 AND parked = 0 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![target, limit], read_queued)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn complete_confirming(
        &self,
        ids: &[i64],
        sent_as: &str,
        confirms: &[NewConfirm],
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let err = |e| sql_error(e, &self.path);
        {
            // Copied from the outbox row before it goes, in the same transaction.
            let mut add = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO confirms (target, scope, source_path, update_kind, is_dir,
                        path, changed_at, sent_at, next_check, deadline)
                     SELECT target, scope, path, update_kind, is_dir, ?2, created_at, ?3, ?4, ?5
                     FROM outbox WHERE id = ?1",
                )
                .map_err(err)?;
            for c in confirms.iter().filter(|c| ids.contains(&c.scan)) {
                add.execute(params![
                    c.scan,
                    c.path,
                    c.sent_at.as_secs(),
                    c.next_check.as_secs(),
                    c.deadline.as_secs()
                ])
                .map_err(err)?;
            }
            let mut log = tx
                .prepare_cached(
                    "INSERT INTO history (at, event, scope, target, path, update_kind, is_dir, detail)
                     SELECT ?2, ?3, scope, target, path, update_kind, is_dir, ?4 FROM outbox WHERE id = ?1",
                )
                .map_err(err)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")
                .map_err(err)?;
            let now = now_secs();
            for id in ids {
                log.execute(params![id, now, Event::Sent.code(), sent_as])
                    .map_err(err)?;
                delete.execute(params![id]).map_err(err)?;
            }
        }
        prune_history(&tx, self.limits).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn confirms_due(
        &self,
        target: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<PendingConfirm>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {CONFIRM_COLUMNS} FROM confirms
                 WHERE target = ?1 AND stuck IS NULL AND next_check <= ?2
                 ORDER BY next_check, id LIMIT ?3"
            ))
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![target, now.as_secs(), limit], read_confirm)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn next_confirm(&self, target: &str) -> Result<Option<Timestamp>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT min(next_check) FROM confirms WHERE target = ?1 AND stuck IS NULL",
            [target],
            |r| r.get::<_, Option<i64>>(0),
        )
        .map(|t| t.map(Timestamp::from_secs))
        .map_err(|e| self.err(e))
    }

    fn update_confirm(&self, c: &PendingConfirm) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE confirms SET next_check = ?2, deadline = ?3, checks = ?4, remedied = ?5, note = ?6
             WHERE id = ?1 AND stuck IS NULL",
            params![
                c.id,
                c.next_check.as_secs(),
                c.deadline.as_secs(),
                c.checks,
                c.remedied,
                c.note
            ],
        )
        .map(|_| ())
        .map_err(|e| self.err(e))
    }

    fn settle_confirm(&self, id: i64, outcome: &Outcome) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let err = |e| sql_error(e, &self.path);
        let row: Option<PendingConfirm> = tx
            .query_row(
                &format!("SELECT {CONFIRM_COLUMNS} FROM confirms WHERE id = ?1"),
                [id],
                read_confirm,
            )
            .optional()
            .map_err(err)?;
        let Some(c) = row else {
            return Ok(());
        };
        let now = now_secs();
        let took = u64::try_from(now - c.changed_at.as_secs()).unwrap_or(0);
        let (event, detail, took) = match outcome {
            Outcome::Indexed(item) => {
                tx.execute(
                    "INSERT OR REPLACE INTO items (target, path, item) VALUES (?1, ?2, ?3)",
                    params![c.target, c.path, item.id],
                )
                .map_err(err)?;
                (
                    Event::Indexed,
                    crate::confirm::indexed_detail(item),
                    Some(took),
                )
            }
            Outcome::Removed => {
                let (base, lo, hi) = below_bounds(&c.path);
                tx.execute(
                    "DELETE FROM items WHERE target = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))",
                    params![c.target, base, lo, hi],
                )
                .map_err(err)?;
                (Event::Removed, c.path.clone(), Some(took))
            }
            Outcome::Stuck(reason) => (Event::Stuck, reason.clone(), None),
        };
        tx.execute(
            "INSERT INTO history (at, event, scope, target, path, update_kind, is_dir, detail, took)
             SELECT ?2, ?3, scope, target, source_path, update_kind, is_dir, ?4, ?5 FROM confirms WHERE id = ?1",
            params![id, now, event.code(), detail, took.map(|t| t as i64)],
        )
        .map_err(err)?;
        match outcome {
            Outcome::Stuck(reason) => tx.execute(
                "UPDATE confirms SET stuck = ?2 WHERE id = ?1",
                params![id, reason],
            ),
            _ => tx.execute("DELETE FROM confirms WHERE id = ?1", [id]),
        }
        .map_err(err)?;
        prune_history(&tx, self.limits).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn stuck(&self, target: &str) -> Result<Vec<PendingConfirm>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {CONFIRM_COLUMNS} FROM confirms WHERE target = ?1 AND stuck IS NOT NULL ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([target], read_confirm)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn retry_stuck(&self, target: Option<&str>) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let err = |e| sql_error(e, &self.path);
        let now = now_secs();
        tx.execute(
            "INSERT INTO outbox (target, scope, path, update_kind, is_dir, created_at)
             SELECT target, scope, source_path, update_kind, is_dir, ?2 FROM confirms
             WHERE stuck IS NOT NULL AND (?1 IS NULL OR target = ?1) ORDER BY id",
            params![target, now],
        )
        .map_err(err)?;
        let n = tx
            .execute(
                "DELETE FROM confirms WHERE stuck IS NOT NULL AND (?1 IS NULL OR target = ?1)",
                params![target],
            )
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n as u64)
    }

    fn known_items(&self, target: &str, path: &str) -> Result<Vec<String>> {
        let (base, lo, hi) = below_bounds(path);
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT item FROM items WHERE target = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))
                 ORDER BY path",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![target, base, lo, hi], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn indexed_times(&self, target: &str, since: Timestamp) -> Result<Vec<u64>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT took FROM history WHERE event = ?1 AND target = ?2 AND at >= ?3 AND took IS NOT NULL
                 ORDER BY took",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![Event::Indexed.code(), target, since.as_secs()],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|t| u64::try_from(t).unwrap_or(0)))
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn record_failure(&self, ids: &[i64], error: &str, next_try: Timestamp) -> Result<()> {
        self.update_ids(
            ids,
            &format!(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_try = {} WHERE id = ?1",
                next_try.as_secs()
            ),
            Some(error),
            (Event::Retried, error),
        )
    }

    fn park(&self, ids: &[i64], reason: &str) -> Result<()> {
        self.update_ids(
            ids,
            "UPDATE outbox SET parked = 1, last_error = ?2 WHERE id = ?1",
            Some(reason),
            (Event::Parked, reason),
        )?;
        // Older parked scans of the same target and path (the index on target, parked
        // finds them).
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "DELETE FROM outbox WHERE parked = 1 AND id < ?1
                   AND (target, path) = (SELECT target, path FROM outbox WHERE id = ?1)",
            )
            .map_err(|e| self.err(e))?;
        for id in ids {
            stmt.execute([id]).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn parked(&self, target: &str) -> Result<Vec<QueuedScan>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, target, path, update_kind, is_dir, attempts, last_error, next_try, scope, created_at FROM outbox
                 WHERE target = ?1 AND parked = 1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([target], read_queued)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn schedules(&self, scope: ScopeId) -> Result<Vec<(String, FolderSchedule)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT path, due, interval, last_change, hold_until, force, settle_fp, settle_since, burst, cadence, listed, evidence, seen_change, epoch, changes, hinted_by
                 FROM schedule WHERE scope = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([scope.0], |r| Ok((r.get(0)?, read_schedule(r, 1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn nearest_schedule(
        &self,
        scope: ScopeId,
        candidates: &[String],
    ) -> Result<Option<(String, FolderSchedule)>> {
        if candidates.is_empty() {
            return Ok(None);
        }
        let conn = self.conn();
        // Candidates come in chunks below SQLite's bound on parameters; the deepest
        // chunk is asked first, since the deepest match wins.
        for chunk in candidates.chunks(500).rev() {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "SELECT path, due, interval, last_change, hold_until, force, settle_fp, settle_since, burst, cadence, listed, evidence, seen_change, epoch, changes, hinted_by
                 FROM schedule WHERE scope = ?1 AND path IN ({}) ORDER BY length(path) DESC LIMIT 1",
                marks.join(", ")
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&scope.0];
            values.extend(chunk.iter().map(|c| c as &dyn rusqlite::ToSql));
            let found = stmt
                .query_row(values.as_slice(), |r| Ok((r.get(0)?, read_schedule(r, 1)?)))
                .optional()
                .map_err(|e| self.err(e))?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    fn check_writable(&self) -> Result<()> {
        let conn = self.conn();
        // Taking the write lock and letting it go proves the file is writable and not
        // held by another writer; the wait is short, so /health never hangs for the
        // ten seconds a pass would wait.
        conn.busy_timeout(std::time::Duration::from_millis(500))
            .map_err(|e| self.err(e))?;
        let result = conn
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| self.err(e));
        if result.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        result
    }

    fn failing(&self, target: &str, limit: usize) -> Result<Vec<QueuedScan>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, target, path, update_kind, is_dir, attempts, last_error, next_try, scope, created_at FROM outbox
                 WHERE target = ?1 AND parked = 0 AND attempts > 0 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![target, limit], read_queued)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn unpark(&self, target: Option<&str>) -> Result<u64> {
        let conn = self.conn();
        let n = conn
            .execute(
                "UPDATE outbox SET parked = 0, attempts = 0, last_error = NULL, next_try = NULL
                 WHERE parked = 1 AND (?1 IS NULL OR target = ?1)",
                params![target],
            )
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    fn drop_scans(&self, target: &str, path: Option<&str>) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let err = |e| sql_error(e, &self.path);
        let (p, lo, hi) = match path {
            None | Some("/") => (None, String::new(), String::new()),
            Some(p) => {
                let (lo, hi) = subtree_bounds(p);
                (Some(p), lo, hi)
            }
        };
        let which = "target = ?1 AND (?2 IS NULL OR path = ?2 OR (path >= ?3 AND path < ?4))";
        tx.execute(
            &format!(
                "INSERT INTO history (at, event, scope, target, path, update_kind, is_dir, detail)
                 SELECT ?5, ?6, scope, target, path, update_kind, is_dir, 'dropped by hand' FROM outbox WHERE {which} ORDER BY id"
            ),
            params![target, p, lo, hi, now_secs(), Event::Dropped.code()],
        )
        .map_err(err)?;
        let n = tx
            .execute(
                &format!("DELETE FROM outbox WHERE {which}"),
                params![target, p, lo, hi],
            )
            .map_err(err)?;
        prune_history(&tx, self.limits).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n as u64)
    }

    fn record_calls(&self, source: &str, at: Timestamp, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let conn = self.conn();
        count_calls(&conn, source, at.as_secs().div_euclid(60), n).map_err(|e| self.err(e))
    }

    fn calls_since(&self, source: &str, since: Timestamp) -> Result<u64> {
        let conn = self.conn();
        let n: i64 = conn
            .query_row(
                "SELECT coalesce(sum(n), 0) FROM calls WHERE source = ?1 AND minute >= ?2",
                params![source, since.as_secs().div_euclid(60)],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn calls_by_hour(&self, source: &str, now: Timestamp, hours: usize) -> Result<Vec<u64>> {
        let last = now.as_secs().div_euclid(3600);
        let first = last - hours as i64 + 1;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT minute / 60 - ?2, sum(n) FROM calls WHERE source = ?1 AND minute >= ?2 * 60
                 GROUP BY minute / 60",
            )
            .map_err(|e| self.err(e))?;
        let mut out = vec![0u64; hours];
        let rows = stmt
            .query_map(params![source, first], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (i, n) = row.map_err(|e| self.err(e))?;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                *slot += u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(out)
    }

    fn take_call(&self, source: &str, now: f64, limits: &CallLimits) -> Result<Grant> {
        let mut conn = self.conn();
        let err = |e| self.err(e);
        // IMMEDIATE: the read and the write are one step for every process of the
        // store, so two of them can never both take the last token.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let bucket = tx
            .query_row(
                "SELECT tokens, at, paused_until FROM budget WHERE source = ?1",
                [source],
                |r| {
                    Ok(Bucket {
                        tokens: r.get(0)?,
                        at: r.get(1)?,
                        paused_until: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(err)?
            .unwrap_or_else(|| Bucket::full(limits, now));
        let cur = budget::minute_of(now);
        let [m, h, d] = budget::WINDOW_MINUTES;
        // Without ceilings the windows decide nothing: no read of the counts per call.
        let ceilings =
            limits.per_minute.is_some() || limits.per_hour.is_some() || limits.per_day.is_some();
        let w = if !ceilings {
            Windows::default()
        } else {
            tx.query_row(
                "SELECT coalesce(sum(CASE WHEN minute > ?2 - ?3 THEN n END), 0),
                        coalesce(sum(CASE WHEN minute = ?2 - ?3 THEN n END), 0),
                        coalesce(sum(CASE WHEN minute > ?2 - ?4 THEN n END), 0),
                        coalesce(sum(CASE WHEN minute = ?2 - ?4 THEN n END), 0),
                        coalesce(sum(CASE WHEN minute > ?2 - ?5 THEN n END), 0),
                        coalesce(sum(CASE WHEN minute = ?2 - ?5 THEN n END), 0)
                 FROM calls WHERE source = ?1 AND minute >= ?2 - ?5",
                params![source, cur, m, h, d],
                |r| {
                    let g = |i| r.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                    Ok(Windows {
                        minute: (g(0)?, g(1)?),
                        hour: (g(2)?, g(3)?),
                        day: (g(4)?, g(5)?),
                    })
                },
            )
            .map_err(err)?
        };
        let (grant, bucket) = budget::decide(limits, bucket, w, now);
        if grant == Grant::Now {
            tx.execute(
                "INSERT INTO budget (source, tokens, at, paused_until) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source) DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
                params![source, bucket.tokens, bucket.at, bucket.paused_until],
            )
            .map_err(err)?;
            count_calls(&tx, source, cur, 1).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(grant)
    }

    fn pause_calls(&self, source: &str, until: f64) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO budget (source, tokens, at, paused_until) VALUES (?1, 1, ?2, ?2)
             ON CONFLICT (source) DO UPDATE SET paused_until = max(paused_until, excluded.paused_until)",
            params![source, until],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn record_source_health(&self, h: &SourceHealth) -> Result<()> {
        let conn = self.conn();
        // A table outside the numbered schema: created by the first service that
        // records, read as "nothing recorded" where it does not exist, so an older pps
        // opening the store sees nothing new to migrate.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS source_health (
                source TEXT PRIMARY KEY,
                reachable INTEGER NOT NULL,
                error TEXT,
                since INTEGER NOT NULL,
                checked INTEGER NOT NULL,
                rate REAL NOT NULL
            )",
        )
        .map_err(|e| self.err(e))?;
        conn.execute(
            "INSERT INTO source_health (source, reachable, error, since, checked, rate)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (source) DO UPDATE SET reachable = excluded.reachable,
                error = excluded.error, since = excluded.since, checked = excluded.checked,
                rate = excluded.rate",
            params![h.source, h.reachable, h.error, h.since, h.checked, h.rate],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn source_health(&self, source: &str) -> Result<Option<SourceHealth>> {
        let conn = self.conn();
        let paused_until: Option<f64> = conn
            .query_row(
                "SELECT paused_until FROM budget WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .filter(|p: &f64| *p > 0.0);
        let row = conn.query_row(
            "SELECT reachable, error, since, checked, rate FROM source_health WHERE source = ?1",
            [source],
            |r| {
                Ok(SourceHealth {
                    source: source.to_owned(),
                    reachable: r.get(0)?,
                    error: r.get(1)?,
                    since: r.get(2)?,
                    checked: r.get(3)?,
                    rate: r.get(4)?,
                    paused_until,
                })
            },
        );
        match row {
            Ok(h) => Ok(Some(h)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => {
                Ok(None)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    fn history(&self, q: &HistoryQuery) -> Result<Vec<HistoryEntry>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let events: Option<String> = (!q.events.is_empty()).then(|| {
            q.events
                .iter()
                .map(|e| e.code().to_string())
                .collect::<Vec<_>>()
                .join(",")
        });
        // The path filter is a substring: `instr` needs no escaping of LIKE's `%` and `_`.
        let sql = format!(
            "SELECT h.id, h.at, h.event, s.source, s.root, h.target, h.path, h.update_kind, h.is_dir, h.detail, h.took
             FROM history h LEFT JOIN scopes s ON s.id = h.scope
             WHERE (?1 IS NULL OR h.target = ?1)
               AND (?2 IS NULL OR instr(h.path, ?2) > 0)
               AND (?3 IS NULL OR s.source = ?3)
               AND (?4 IS NULL OR h.at >= ?4)
               AND (?5 IS NULL OR h.id < ?5)
               {}
             ORDER BY h.id DESC LIMIT ?6",
            events.map_or(String::new(), |e| format!("AND h.event IN ({e})"))
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    q.target,
                    q.path,
                    q.source,
                    q.since.map(Timestamp::as_secs),
                    q.before,
                    i64::try_from(q.limit).unwrap_or(i64::MAX)
                ],
                read_history,
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn log_event(
        &self,
        scope: Option<ScopeId>,
        event: Event,
        path: &str,
        detail: &str,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let err = |e| sql_error(e, &self.path);
        tx.execute(
            "INSERT INTO history (at, event, scope, path, update_kind, is_dir, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
            params![
                now_secs(),
                event.code(),
                scope.map(|s| s.0),
                path,
                Update::Modified.code(),
                detail
            ],
        )
        .map_err(err)?;
        prune_history(&tx, self.limits).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn history_after(&self, after: i64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT h.id, h.at, h.event, s.source, s.root, h.target, h.path, h.update_kind, h.is_dir, h.detail, h.took
                 FROM history h LEFT JOIN scopes s ON s.id = h.scope
                 WHERE h.id > ?1 ORDER BY h.id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after, limit], read_history)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn last_history_id(&self) -> Result<i64> {
        self.conn()
            .query_row("SELECT coalesce(max(id), 0) FROM history", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn notifier(&self, name: &str) -> Result<Option<NotifierState>> {
        self.conn()
            .query_row(
                "SELECT cursor, failures, last_error, last_sent, sent, parked FROM notifiers WHERE name = ?1",
                [name],
                |r| {
                    Ok(NotifierState {
                        cursor: r.get(0)?,
                        failures: r.get(1)?,
                        last_error: r.get(2)?,
                        last_sent: r.get::<_, Option<i64>>(3)?.map(Timestamp::from_secs),
                        sent: r.get::<_, i64>(4)? as u64,
                        parked: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn save_notifier(&self, name: &str, n: &NotifierState) -> Result<()> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO notifiers (name, cursor, failures, last_error, last_sent, sent, parked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    name,
                    n.cursor,
                    n.failures,
                    n.last_error,
                    n.last_sent.map(Timestamp::as_secs),
                    i64::try_from(n.sent).unwrap_or(i64::MAX),
                    n.parked
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn replace_scope(&self, into: ScopeId, from: ScopeId, keep: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let err = |e| sql_error(e, &self.path);
        // Decided before anything moves: the folders `from` failed to list that `into`
        // still knows.
        let mut kept = Vec::new();
        for k in keep.iter().filter(|k| k.as_str() != "/") {
            let has_old: bool = tx
                .query_row(
                    "SELECT count(*) > 0 FROM folders WHERE scope = ?1 AND path = ?2",
                    params![into.0, k],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if has_old {
                kept.push(k);
            }
        }
        for table in ["folders", "schedule"] {
            for k in &kept {
                // The old subtree moves into `from`, in place of the placeholder there.
                let (lo, hi) = subtree_bounds(k);
                let within = "(path = ?2 OR (path >= ?3 AND path < ?4))";
                tx.execute(
                    &format!("DELETE FROM {table} WHERE scope = ?1 AND {within}"),
                    params![from.0, k, lo, hi],
                )
                .map_err(err)?;
                tx.execute(
                    &format!("UPDATE {table} SET scope = ?5 WHERE scope = ?1 AND {within}"),
                    params![into.0, k, lo, hi, from.0],
                )
                .map_err(err)?;
            }
            tx.execute(&format!("DELETE FROM {table} WHERE scope = ?1"), [into.0])
                .map_err(err)?;
            tx.execute(
                &format!("UPDATE {table} SET scope = ?1 WHERE scope = ?2"),
                params![into.0, from.0],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn stats(&self) -> Result<StoreStats> {
        let conn = self.conn();
        let mut stats = StoreStats::default();
        let mut stmt = conn
            .prepare(
                "SELECT s.id, s.source, s.root, (SELECT count(*) FROM folders f WHERE f.scope = s.id)
                 FROM scopes s ORDER BY s.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    ScopeId(r.get(0)?),
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        stats.scopes = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare(
                "SELECT target, sum(parked = 0), sum(parked = 1) FROM outbox GROUP BY target ORDER BY target",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        stats.outbox = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare(
                "SELECT target, sum(stuck IS NULL), sum(stuck IS NOT NULL) FROM confirms GROUP BY target ORDER BY target",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        stats.confirms = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        Ok(stats)
    }
}

impl SqliteStore {
    /// Runs `sql` for each id in one transaction, each preceded by its history line
    /// (`event` with `detail`) copied from the outbox row before it changes.
    fn update_ids(
        &self,
        ids: &[i64],
        sql: &str,
        text: Option<&str>,
        (event, detail): (Event, &str),
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| sql_error(e, &self.path))?;
        let err = |e| sql_error(e, &self.path);
        {
            let mut log = tx
                .prepare_cached(
                    "INSERT INTO history (at, event, scope, target, path, update_kind, is_dir, detail)
                     SELECT ?2, ?3, scope, target, path, update_kind, is_dir, ?4 FROM outbox WHERE id = ?1",
                )
                .map_err(err)?;
            let mut stmt = tx.prepare_cached(sql).map_err(err)?;
            let now = now_secs();
            for id in ids {
                log.execute(params![id, now, event.code(), detail])
                    .map_err(err)?;
                match text {
                    Some(t) => stmt.execute(params![id, t]),
                    None => stmt.execute(params![id]),
                }
                .map_err(err)?;
            }
        }
        prune_history(&tx, self.limits).map_err(err)?;
        tx.commit().map_err(err)
    }
}
