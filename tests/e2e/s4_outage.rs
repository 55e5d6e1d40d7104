//! Scenario 4: the source goes away. A local watched root that lists empty (an
//! unmounted disk: the mount point is left behind) or is missing; a cd2 root that lists
//! empty (cd2 logged out of its cloud) or missing, and a cd2 that refuses pps's token.
//! Each time: a clear error, nothing committed, nothing scanned. Real changes made
//! during the outage are found once the source is back, and nothing spurious is sent.

use crate::common::*;
use pps_clouddrive::mock::{MockServer, MockTree};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(p, u)| ((*p).to_owned(), (*u).to_owned()))
        .collect()
}

fn scans(out: &Out) -> BTreeSet<(String, String)> {
    out.scans().into_iter().map(|(p, u, _)| (p, u)).collect()
}

/// One pass during an outage: exit 1, the error names the outage, nothing printed or
/// sent, the store unchanged.
fn assert_outage(out: &Out, db: &Path, source: &str, root: &str, before: &Listing, plex: &Media) {
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stdout.is_empty(), "{}", out.all());
    assert!(
        out.stderr.contains("outage")
            || out.stderr.contains("cannot")
            || out.stderr.contains("refused"),
        "no clear error:\n{}",
        out.all()
    );
    assert_eq!(
        &stored(db, source, root),
        before,
        "the store changed during an outage"
    );
    assert!(
        plex.received().is_empty(),
        "a scan was sent during an outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_missing_root_is_an_outage_and_nothing_is_lost() {
    let log = Transcript::default();
    let plex = Media::start(Kind::Plex, &["/mnt/media"], &log).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    for s in 0..4 {
        std::fs::create_dir_all(root.join(format!("Show {s}/S01"))).unwrap();
        std::fs::write(root.join(format!("Show {s}/S01/e1.mkv")), b"x").unwrap();
    }
    let root = root.canonicalize().unwrap();
    let r = root.to_str().unwrap().to_owned();
    let aside = dir.path().join("aside");
    let config = dir.path().join("pps.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"state.db\"\n\n[sources.disk]\nkind = \"local\"\n\n[targets.plex]\nkind = \"plex\"\nurl = \"{}\"\npath_mapping = [{{ from = \"{r}\", to = \"/mnt/media\" }}]\npacing = \"0s\"\n\n[targets.print]\nkind = \"stdout\"\n\n[[watch]]\nsource = \"disk\"\npath = \"{r}\"\n",
            plex.url()
        ),
    )
    .unwrap();
    let db = dir.path().join("state.db");
    let once = || {
        let mut c = pps(Some(&config));
        c.args(["once", "--full"]);
        run(c, Duration::from_secs(60), &log)
    };
    let out = once();
    assert_eq!(out.code, Some(0), "{}", out.all());
    let before = stored(&db, "disk", &r);
    assert_eq!(before.len(), 9);

    // Unmounted: the mount point is there, empty. A real change happens meanwhile on
    // the "disk" (aside).
    std::fs::rename(&root, &aside).unwrap();
    std::fs::create_dir(&root).unwrap();
    std::fs::write(aside.join("Show 1/S01/e2.mkv"), b"new").unwrap();
    std::fs::remove_file(aside.join("Show 2/S01/e1.mkv")).unwrap();
    let empty = once();
    assert_outage(&empty, &db, "disk", &r, &before, &plex);
    // Gone altogether.
    std::fs::remove_dir(&root).unwrap();
    let missing = once();
    assert_outage(&missing, &db, "disk", &r, &before, &plex);
    // Back.
    std::fs::rename(&aside, &root).unwrap();
    let back = once();
    assert_eq!(back.code, Some(0), "{}", back.all());
    let want = set(&[
        (&format!("{r}/Show 1/S01/e2.mkv"), "created"),
        (&format!("{r}/Show 2/S01/e1.mkv"), "deleted"),
    ]);
    assert_eq!(
        scans(&back),
        want,
        "exactly the real changes, nothing spurious"
    );
    let refreshed: BTreeSet<String> = plex.accepted().into_iter().map(|x| x.path).collect();
    let want_plex: BTreeSet<String> = ["/mnt/media/Show 1/S01", "/mnt/media/Show 2/S01"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(refreshed, want_plex);
    let line = empty
        .stderr
        .lines()
        .find(|l| l.contains("outage"))
        .unwrap_or("")
        .to_owned();
    let lines = log.assert_no_secrets();
    summary(
        "4 source outage (local)",
        "watched root emptied (mount point left behind), then removed, while a file was added and one deleted on the real disk; then restored",
        &format!(
            "both outage passes exit 1 with the store unchanged, no scan printed or sent; after the return exactly the 2 real changes (plex: {} folders refreshed), nothing spurious; {lines} lines free of secrets; the error: {line}",
            refreshed.len()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cd2_root_that_lists_empty_or_missing_or_refuses_is_an_outage() {
    let log = Transcript::default();
    let plex = Media::start(Kind::Plex, &["/mnt/115/TV"], &log).await;
    let mut tree = MockTree::new();
    for s in 0..4 {
        tree.write_file(&format!("/115/TV/Show {s}/S01/e1.mkv"), 10);
    }
    let cd2 = MockServer::builder()
        .api_token(CD2_TOKEN)
        .start(tree)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pps.toml");
    let write = |url: &str| {
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"state.db\"\n\n[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{url}\"\nmax_queries_per_second = 100\npush = false\nretries = 1\nbackoff = \"10ms\"\nthrottle_backoff = \"10ms\"\ntimeout = \"5s\"\n\n[targets.plex]\nkind = \"plex\"\nurl = \"{}\"\npath_mapping = [{{ from = \"/115\", to = \"/mnt/115\" }}]\npacing = \"0s\"\n\n[targets.print]\nkind = \"stdout\"\n\n[[watch]]\nsource = \"cd2\"\npath = \"/115/TV\"\n",
                plex.url()
            ),
        )
        .unwrap();
    };
    write(&cd2.url());
    let db = dir.path().join("state.db");
    let once = |token: &str| {
        let mut c = pps(Some(&config));
        c.env("PPS_SOURCES_CD2_API_TOKEN", token)
            .args(["once", "--full"]);
        run(c, Duration::from_secs(60), &log)
    };
    let out = once(CD2_TOKEN);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let before = stored(&db, "cd2", "/115/TV");
    assert_eq!(before.len(), 9);
    let saved = cd2.with_tree(|t| t.clone());

    // cd2 logged out of its cloud: the root lists empty.
    cd2.with_tree(|t| {
        let mut empty = MockTree::new();
        empty.create_dir("/115/TV");
        *t = empty;
    });
    let empty = once(CD2_TOKEN);
    assert_outage(&empty, &db, "cd2", "/115/TV", &before, &plex);
    // The root is missing.
    cd2.with_tree(|t| *t = MockTree::new());
    let missing = once(CD2_TOKEN);
    assert_outage(&missing, &db, "cd2", "/115/TV", &before, &plex);
    // cd2 refuses pps's token (a token revoked in cd2's web UI).
    cd2.with_tree(|t| *t = saved.clone());
    let refused = once("a-revoked-token");
    assert_outage(&refused, &db, "cd2", "/115/TV", &before, &plex);
    // Back, with one real change made meanwhile.
    cd2.write_file("/115/TV/Show 3/S01/e2.mkv", 10);
    let back = once(CD2_TOKEN);
    assert_eq!(back.code, Some(0), "{}", back.all());
    assert_eq!(
        scans(&back),
        set(&[("/115/TV/Show 3/S01/e2.mkv", "created")]),
        "exactly the real change"
    );
    let refreshed: Vec<String> = plex.accepted().into_iter().map(|x| x.path).collect();
    assert_eq!(refreshed, ["/mnt/115/TV/Show 3/S01"]);
    let err = |o: &Out| {
        o.stderr
            .lines()
            .find(|l| l.contains("ERROR") || l.contains("error"))
            .unwrap_or("")
            .to_owned()
    };
    let lines = log.assert_no_secrets();
    summary(
        "4 source outage (cd2)",
        "cd2 root listing empty, then missing, then the token refused; then back with one real change",
        &format!(
            "three outage passes exit 1 with the store unchanged and nothing sent; after the return exactly the 1 real change; {lines} lines free of secrets; errors: [{}] [{}] [{}]",
            err(&empty),
            err(&missing),
            err(&refused)
        ),
    );
    cd2.shutdown().await;
}
