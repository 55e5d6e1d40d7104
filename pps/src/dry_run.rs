//! `--dry-run`: a pass and a delivery as usual, on a copy of the store, with every
//! target answering "accepted" without being sent anything; what each would have been
//! sent is printed instead. The store and the media servers are left as they were.

use pps_core::mapping::target_contains;
use pps_core::{Capabilities, Library, Result, ScanRequest, ScanTarget};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A target that reads its inner target's capabilities and libraries (read-only calls)
/// but sends nothing: each request is printed on stdout as one JSON line,
/// `{"dry_run":true,"target":…,"path":…,"update":…,"is_dir":…,"libraries":[…]}`, and
/// answered as accepted.
#[derive(Debug)]
pub struct DryRunTarget {
    name: String,
    inner: Arc<dyn ScanTarget>,
}

impl DryRunTarget {
    /// Wraps `inner`, named `name`.
    pub fn new(name: impl Into<String>, inner: Arc<dyn ScanTarget>) -> Self {
        DryRunTarget {
            name: name.into(),
            inner,
        }
    }
}

#[async_trait::async_trait]
impl ScanTarget for DryRunTarget {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn libraries(&self) -> Result<Vec<Library>> {
        self.inner.libraries().await
    }

    async fn scan(&self, requests: &[ScanRequest]) -> Vec<Result<()>> {
        // The engine asked for the libraries just before: the inner target's cache
        // answers, so this costs the server nothing.
        let libraries = self.inner.libraries().await.unwrap_or_default();
        let mut out = Vec::new();
        for r in requests {
            let libs: Vec<String> = libraries
                .iter()
                .filter(|l| l.locations.iter().any(|loc| target_contains(loc, &r.path)))
                .map(|l| l.name.clone())
                .collect();
            // A struct keeps the stdout target's key order (json! would sort them).
            #[derive(serde::Serialize)]
            struct Line<'a> {
                dry_run: bool,
                target: &'a str,
                path: &'a str,
                update: pps_core::Update,
                is_dir: bool,
                libraries: Vec<String>,
            }
            let line = Line {
                dry_run: true,
                target: &self.name,
                path: &r.path,
                update: r.update,
                is_dir: r.is_dir,
                libraries: libs,
            };
            // Serialising strings, an enum and bools cannot fail.
            let _ = serde_json::to_writer(&mut out, &line);
            out.push(b'\n');
        }
        // A reader gone (`| head`) is no failure of a target that sends nothing.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
        requests.iter().map(|_| Ok(())).collect()
    }
}

/// The copy of the store a dry run works on, in a folder of its own that is removed
/// when this is dropped.
#[derive(Debug)]
pub struct StoreCopy {
    dir: PathBuf,
    /// The copy's file.
    pub path: PathBuf,
}

impl StoreCopy {
    /// Copies `store` (when it exists; else the copy starts empty) into a new folder
    /// under the system's temporary folder, reading the store only.
    pub fn of(store: &Path) -> Result<StoreCopy> {
        use pps_core::{Error, ErrorKind};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("pps-dry-run-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot make a folder for the dry run's copy of the store: {e}"),
            )
            .with("path", dir.display().to_string())
        })?;
        let copy = StoreCopy {
            path: dir.join("pps.db"),
            dir,
        };
        if store.exists() {
            pps_core::sqlite::SqliteStore::open_existing(store)
                .and_then(|s| s.copy_to(&copy.path))
                .map_err(|e| e.with_default("store", store.display().to_string()))?;
        }
        Ok(copy)
    }
}

impl Drop for StoreCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
