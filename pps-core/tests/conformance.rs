use pps_core::local::LocalSource;
use pps_core::memory::{MemorySource, MemoryStore, MemoryTarget};
use pps_core::sqlite::SqliteStore;
use pps_core::stdout::JsonLinesTarget;
use pps_core::testing::{self, STANDARD_TREE};
use pps_core::{Capabilities, MtimeStore, ScanRequest, Update};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn memory_source() {
    let src = MemorySource::new();
    for (rel, size) in STANDARD_TREE {
        let p = format!("/root/{rel}");
        match size {
            None => src.create_dir(&p),
            Some(n) => src.write_file(&p, *n),
        }
    }
    for rel in testing::big_folder_files() {
        src.write_file(&format!("/root/{rel}"), 1);
    }
    testing::source_conformance(&src, "/root", true).await;
}

#[tokio::test]
async fn local_source() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_owned();
    for (rel, size) in STANDARD_TREE {
        let p = dir.path().join(rel);
        match size {
            None => std::fs::create_dir_all(&p).unwrap(),
            Some(n) => std::fs::write(&p, vec![b'x'; *n as usize]).unwrap(),
        }
    }
    for rel in testing::big_folder_files() {
        std::fs::write(dir.path().join(rel), b"x").unwrap();
    }
    testing::source_conformance(&LocalSource::new(), &root, true).await;
}

#[test]
fn memory_store() {
    testing::store_conformance(&|| Arc::new(MemoryStore::new()) as Arc<dyn MtimeStore>);
}

#[test]
fn sqlite_store_on_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    testing::store_conformance(&|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Arc::new(SqliteStore::open(dir.path().join(format!("s{i}.db"))).unwrap())
            as Arc<dyn MtimeStore>
    });
}

fn requests() -> Vec<ScanRequest> {
    vec![
        ScanRequest {
            path: "/tv/Show & Co #1/S01".into(),
            update: Update::Modified,
            is_dir: true,
        },
        ScanRequest {
            path: "/tv/电影 🎬/a+b 100%.mkv".into(),
            update: Update::Created,
            is_dir: false,
        },
        ScanRequest {
            path: "/tv/old.mkv".into(),
            update: Update::Deleted,
            is_dir: false,
        },
    ]
}

#[tokio::test]
async fn memory_target() {
    let t = MemoryTarget::new(Capabilities::files(2));
    let t2 = t.clone();
    testing::target_conformance(&t, requests(), &move || t2.received()).await;
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn json_lines_target() {
    let buf = Shared::default();
    let t = JsonLinesTarget::new("stdout", Box::new(buf.clone()));
    let read = buf.clone();
    testing::target_conformance(&t, requests(), &move || {
        let text = String::from_utf8(read.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["target"], "stdout");
                ScanRequest {
                    path: v["path"].as_str().unwrap().to_owned(),
                    update: serde_json::from_value(v["update"].clone()).unwrap(),
                    is_dir: v["is_dir"].as_bool().unwrap(),
                }
            })
            .collect()
    })
    .await;
}

#[tokio::test]
async fn local_source_never_follows_links_and_skips_non_utf8_names() {
    use pps_core::{DirectorySource, EntryKind, ListOptions};
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("w");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    // A link loop: a/b/up -> ../.. (the root), and a dangling link.
    std::os::unix::fs::symlink("../..", root.join("a/b/up")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("a/dangling")).unwrap();
    // A name that is not UTF-8.
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff\xfename.mkv");
    std::fs::write(root.join("a").join(bad), b"x").unwrap();
    std::fs::write(root.join("a/good.mkv"), b"x").unwrap();

    let src = LocalSource::new();
    let a = src
        .list(root.join("a").to_str().unwrap(), ListOptions::default())
        .await
        .unwrap();
    let mut names: Vec<_> = a.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("b", EntryKind::Dir),
            ("dangling", EntryKind::File),
            ("good.mkv", EntryKind::File)
        ]
    );
    let b = src
        .list(root.join("a/b").to_str().unwrap(), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].name.as_str(), b[0].kind),
        ("up", EntryKind::File),
        "a link is a file, never followed"
    );

    // A whole pass over the loop terminates and records exactly the real folders.
    let store = Arc::new(MemoryStore::new());
    let engine = pps_core::Engine::new(store.clone()).with_source("l", Arc::new(src));
    let watch = pps_core::Watch::new("l", root.to_str().unwrap()).unwrap();
    let r = engine.pass(&watch).await.unwrap();
    assert_eq!(r.folders_listed, 3);
    // Listing a file is "not found", not an error of another kind.
    let err = LocalSource::new()
        .list(
            root.join("a/good.mkv").to_str().unwrap(),
            ListOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pps_core::ErrorKind::NotFound);
}

#[tokio::test]
async fn local_source_hides_the_store_files_but_not_other_db_files() {
    use pps_core::{DirectorySource, ListOptions};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("w");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let store = root.join("sub/pps.db");
    let _open = pps_core::sqlite::SqliteStore::open(&store).unwrap();
    std::fs::write(root.join("sub/other.db"), b"x").unwrap();
    std::fs::write(root.join("sub/pps.db.bak"), b"x").unwrap();
    // Hidden however the store path is written: through a link to its folder.
    std::os::unix::fs::symlink(root.join("sub"), dir.path().join("link")).unwrap();
    let src = LocalSource::new().hiding(pps_core::sqlite::store_files(
        &dir.path().join("link/pps.db"),
    ));
    let mut names: Vec<String> = src
        .list(root.join("sub").to_str().unwrap(), ListOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert!(
        std::fs::read_dir(root.join("sub"))
            .unwrap()
            .any(|e| e.unwrap().file_name() == "pps.db-wal"),
        "the store has its WAL beside it"
    );
    assert_eq!(names, ["other.db", "pps.db.bak"]);
}

#[tokio::test]
async fn json_lines_target_says_when_its_reader_went_away() {
    use pps_core::{ScanRequest, ScanTarget, Update};
    struct Gone;
    impl std::io::Write for Gone {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let t = pps_core::stdout::JsonLinesTarget::new("out", Box::new(Gone));
    let closed = t.clone();
    let waiter = tokio::spawn(async move { closed.closed().await });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    let r = t
        .scan(&[ScanRequest {
            path: "/x".into(),
            update: Update::Created,
            is_dir: false,
        }])
        .await;
    let err = r[0].as_ref().unwrap_err();
    assert!(err.is_temporary(), "the scan stays queued: {err}");
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("closed() resolves")
        .unwrap();
    // And at once for a caller that asks later.
    t.closed().await;
}

#[tokio::test]
async fn memory_target_failures() {
    use pps_core::testing::Answer;
    testing::target_outcome_conformance(
        |answer| async move {
            let t = MemoryTarget::new(Capabilities::files(2));
            let err = match answer {
                Answer::Temporary => pps_core::Error::new(pps_core::ErrorKind::Unavailable, "503"),
                Answer::Refused => {
                    pps_core::Error::new(pps_core::ErrorKind::Unauthenticated, "401").permanent()
                }
                Answer::NoLibrary => pps_core::target::not_in_any_library("/tv/x"),
            };
            t.script([Some(err)]);
            Some(Arc::new(t) as Arc<dyn pps_core::ScanTarget>)
        },
        requests().remove(0),
    )
    .await;
}
