//! The service loop (`pps::service::serve`) on tokio's paused clock: the engine's clock
//! follows tokio's, so minutes of scheduling run in microseconds and every instant is
//! exact. The source is in memory, wrapped to record when each listing came.

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use pps::{App, Config};
use pps_core::StoreGate;
use pps_core::layers::{RateLimit, RateLimitPolicy};
use pps_core::memory::{MemorySource, MemoryStore};
use pps_core::{Clock, DirectorySource, Entry, Hint, ListOptions, MtimeStore, Result, Timestamp};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const T0: i64 = 1_800_000_000;

/// The engine's clock, read from tokio's: paused time moves both.
#[derive(Debug)]
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_secs(T0 + self.0.elapsed().as_secs() as i64)
    }
}

/// A memory source that records (virtual time, path) of every listing, can stall on one
/// path, and hands out push hints from a channel.
#[derive(Debug, Clone)]
struct Probe {
    inner: MemorySource,
    start: tokio::time::Instant,
    listed: Arc<Mutex<Vec<(Duration, String)>>>,
    stall: Arc<Mutex<Option<String>>>,
    hints: Arc<Mutex<Option<mpsc::UnboundedReceiver<Hint>>>>,
}

#[async_trait]
impl DirectorySource for Probe {
    async fn list(&self, path: &str, options: ListOptions) -> Result<Vec<Entry>> {
        self.listed
            .lock()
            .unwrap()
            .push((self.start.elapsed(), path.to_owned()));
        let stalled = self.stall.lock().unwrap().as_deref() == Some(path);
        if stalled {
            std::future::pending::<()>().await;
        }
        self.inner.list(path, options).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.inner.stat(path).await
    }

    fn hints(&self) -> Option<BoxStream<'static, Hint>> {
        let rx = self.hints.lock().unwrap().take()?;
        Some(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|h| (h, rx)) },
        )))
    }
}

struct Rig {
    app: Arc<App>,
    probe: Probe,
    store: Arc<MemoryStore>,
    hint: mpsc::UnboundedSender<Hint>,
}

/// A cd2 source at `qps` calls a second (its settings only: the listings go to the
/// probe), one watch of `/lib` with `folders` show folders, baselined, every folder
/// then made due at once.
async fn rig(qps: f64, folders: usize) -> Rig {
    rig_with(qps, folders, "").await
}

/// As [`rig`], with more keys for the source.
async fn rig_with(qps: f64, folders: usize, source_keys: &str) -> Rig {
    let text = format!(
        r#"
[sources.cd2]
kind = "clouddrive2"
url = "http://127.0.0.1:9"
max_queries_per_second = {qps}
push = false
{source_keys}

[targets.print]
kind = "command"
program = "/bin/true"

[[watch]]
source = "cd2"
path = "/lib"
interval = "1m"
"#
    );
    let config = Config::parse(&text, None, &[]).unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut app = App::build_with_store(config, store.clone()).unwrap();
    let inner = MemorySource::new();
    for i in 0..folders {
        inner.write_file(&format!("/lib/Show {i:03}/e1.mkv"), 1);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe {
        inner,
        start: tokio::time::Instant::now(),
        listed: Arc::default(),
        stall: Arc::default(),
        hints: Arc::new(Mutex::new(Some(rx))),
    };
    // As a cd2 source is: its rate limit layer, asking the store's shared budget
    // before every call (so every call is counted there).
    let limited = RateLimit::new(probe.clone(), RateLimitPolicy::new(qps, 2));
    let start = probe.start;
    let wall = Arc::new(move || T0 as f64 + start.elapsed().as_secs_f64());
    let limits = app.call_limits("cd2").expect("a cd2 source has a budget");
    limited.share_budget(Arc::new(
        StoreGate::new(store.clone(), "cd2", limits).with_clock(wall),
    ));
    let source: Arc<dyn DirectorySource> = Arc::new(limited);
    // The baseline on the bare probe: neither paced nor counted, so the test's
    // virtual time and the store's counts start with the service.
    app.engine = app
        .engine
        .clone()
        .with_source("cd2", Arc::new(probe.clone()))
        .with_clock(Arc::new(TokioClock(probe.start)));
    let (_, w) = &app.watches[0];
    app.engine.pass(w).await.unwrap();
    app.engine = app.engine.clone().with_source("cd2", source.clone());
    app.sources.insert("cd2".into(), source);
    // Every folder due now: the service has more to list than its budget allows.
    let scope = store.scope("cd2", "/lib").unwrap();
    let mut commit = pps_core::store::Commit::default();
    for (p, mut s) in store.schedules(scope).unwrap() {
        s.next_due = Timestamp::from_secs(T0);
        commit.schedules.push((p, s));
    }
    store.commit(scope, &commit).unwrap();
    probe.listed.lock().unwrap().clear();
    Rig {
        app: Arc::new(app),
        probe,
        store,
        hint: tx,
    }
}

fn listed(p: &Probe) -> Vec<(Duration, String)> {
    p.listed.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn due_folders_are_listed_within_the_call_budget() {
    let rig = rig(2.0, 300).await;
    let app = rig.app.clone();
    let stop = tokio::time::sleep(Duration::from_secs(160));
    pps::service::serve(&app, stop).await.unwrap();
    let calls = listed(&rig.probe);
    // The shared budget holds a burst of 2 and refills at 2/s: by any moment t, at
    // most 2 + 2t listings (nothing is saved up beyond that, unlike the minute's worth
    // of old, which let 120 calls out at once).
    for (i, (at, _)) in calls.iter().enumerate() {
        let allowed = 2 + (2.0 * at.as_secs_f64()).floor() as usize;
        assert!(
            i < allowed,
            "listing {i} at {at:?} beyond the budget of {allowed}"
        );
    }
    assert!(
        calls.len() >= 300,
        "every due folder was listed within 160 s: {}",
        calls.len()
    );
    assert!(calls.len() <= 2 + 2 * 160, "{}", calls.len());
    assert_eq!(
        rig.store
            .calls_since("cd2", Timestamp::from_secs(T0))
            .unwrap(),
        calls.len() as u64,
        "every call counted in the store"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hint_makes_its_folder_listed_at_once() {
    let rig = rig(2.0, 10).await;
    // Nothing due for a while: the service sleeps.
    let scope = rig.store.scope("cd2", "/lib").unwrap();
    let mut commit = pps_core::store::Commit::default();
    for (p, mut s) in rig.store.schedules(scope).unwrap() {
        s.next_due = Timestamp::from_secs(T0 + 3600);
        s.listed = Some(Timestamp::from_secs(T0));
        commit.schedules.push((p, s));
    }
    rig.store.commit(scope, &commit).unwrap();
    let app = rig.app.clone();
    let hint = rig.hint.clone();
    let service = tokio::spawn(async move {
        pps::service::serve(&app, tokio::time::sleep(Duration::from_secs(600))).await
    });
    tokio::time::sleep(Duration::from_secs(300)).await;
    let before = listed(&rig.probe).len();
    rig.probe.inner.write_file("/lib/Show 007/e2.mkv", 1);
    hint.send(Hint {
        path: "/lib/Show 007/e2.mkv".into(),
        new_path: None,
        is_dir: false,
    })
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = listed(&rig.probe);
    let after: Vec<&(Duration, String)> = calls[before..].iter().collect();
    assert!(
        after
            .iter()
            .any(|(at, p)| p == "/lib/Show 007" && *at <= Duration::from_secs(301)),
        "the hinted folder was listed within a second: {after:?}"
    );
    service.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_between_commits_and_loses_nothing() {
    let rig = rig(1000.0, 20).await;
    // A change, and a listing that never answers, so the pass is in flight at the stop.
    rig.probe.inner.write_file("/lib/Show 003/e2.mkv", 1);
    *rig.probe.stall.lock().unwrap() = Some("/lib/Show 010".into());
    let app = rig.app.clone();
    let stop = tokio::time::sleep(Duration::from_secs(30));
    tokio::time::timeout(Duration::from_secs(120), pps::service::serve(&app, stop))
        .await
        .expect("serve returns after its stop, though a listing hangs")
        .unwrap();
    // The store is whole: the hung folder kept its old state, and what was committed is
    // there with its scan; a full pass afterwards finds nothing more to report.
    *rig.probe.stall.lock().unwrap() = None;
    let pending = rig.store.pending("print", 10).unwrap();
    let (_, w) = &rig.app.watches[0];
    let r = rig.app.engine.pass(w).await.unwrap();
    let reported: Vec<String> = pending
        .iter()
        .map(|q| q.change.path.clone())
        .chain(r.changes.iter().map(|c| c.path.clone()))
        .collect();
    assert_eq!(
        reported,
        ["/lib/Show 003/e2.mkv"],
        "the change is queued exactly once, before or after the stop"
    );
}

/// `max_calls_per_day` counts the calls of the last day across a restart: with the
/// day's calls spent before the start, no spare listing is made; with none spent, the
/// idle budget goes to spare listings, and they are counted in the store.
#[tokio::test(start_paused = true)]
async fn the_daily_ceiling_counts_the_calls_before_a_restart() {
    async fn spare_listings(spent_before: u64) -> (usize, u64) {
        let rig = rig_with(2.0, 40, "max_calls_per_day = 100").await;
        let scope = rig.store.scope("cd2", "/lib").unwrap();
        // Nothing due for a day: whatever is listed is a spare listing.
        let mut commit = pps_core::store::Commit::default();
        for (p, mut s) in rig.store.schedules(scope).unwrap() {
            s.next_due = Timestamp::from_secs(T0 + 86_400);
            commit.schedules.push((p, s));
        }
        rig.store.commit(scope, &commit).unwrap();
        rig.store
            .record_calls("cd2", Timestamp::from_secs(T0 - 3600), spent_before)
            .unwrap();
        let app = rig.app.clone();
        // Spare listings wait a base interval (1m) after the baseline listed a folder.
        pps::service::serve(&app, tokio::time::sleep(Duration::from_secs(150)))
            .await
            .unwrap();
        let counted = rig
            .store
            .calls_since("cd2", Timestamp::from_secs(T0 - 86_400))
            .unwrap();
        (listed(&rig.probe).len(), counted)
    }
    let (fresh, counted) = spare_listings(0).await;
    assert!(fresh > 0, "an idle budget goes to spare listings");
    assert_eq!(
        counted, fresh as u64,
        "every listing is counted in the store"
    );
    let (spent, counted) = spare_listings(100).await;
    assert_eq!(spent, 0, "the day's calls were spent before the start");
    assert_eq!(counted, 100);
}

/// The service confirms what a media server indexed, on its own: delivery wakes the
/// confirmation loop, which looks up the new file on the server's schedule and writes
/// the outcome (here after the server indexed it 40 s after the scan).
#[tokio::test(start_paused = true)]
async fn the_service_confirms_what_the_server_indexed() {
    use pps_core::memory::MemoryTarget;
    use pps_core::store::{Event, HistoryQuery};
    use pps_core::{Capabilities, ConfirmPlan, TargetSpec};
    let text = r#"
[sources.disk]
kind = "local"

[targets.plex]
kind = "plex"
url = "http://127.0.0.1:9"
token = "t"

[[watch]]
source = "disk"
path = "/lib"
interval = "10s"
"#;
    let config = Config::parse(text, None, &[]).unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut app = App::build_with_store(config, store.clone()).unwrap();
    let source = MemorySource::new();
    source.write_file("/lib/Show/S01/e1.mkv", 1);
    let plex = MemoryTarget::new(Capabilities::folders_only()).confirming(ConfirmPlan {
        checks: vec![Duration::from_secs(10), Duration::from_secs(30)],
        every: Duration::from_secs(60),
        remedy_after: Duration::from_secs(300),
        remedy_wait: Duration::from_secs(300),
        deadline: Duration::from_secs(600),
        lookup_by_path: false,
        strm_items: false,
    });
    let start = tokio::time::Instant::now();
    app.engine = app
        .engine
        .clone()
        .with_source("disk", Arc::new(source.clone()))
        .with_target(TargetSpec::new("plex", Arc::new(plex.clone())))
        .with_clock(Arc::new(TokioClock(start)));
    app.sources.insert("disk".into(), Arc::new(source.clone()));
    app.targets.insert("plex".into(), Arc::new(plex.clone()));
    let (_, w) = &app.watches[0];
    app.engine.pass(w).await.unwrap();
    let app = Arc::new(app);

    let serving = {
        let app = app.clone();
        tokio::spawn(async move {
            pps::service::serve(&app, tokio::time::sleep(Duration::from_secs(300))).await
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    // In a direct child of the root: its entry moves in the root's listing.
    source.write_file("/lib/Show/e2.mkv", 1);
    // Found within the root's interval and sent; then indexed by the server 40 s on.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(plex.received().len(), 1, "the scan was sent");
    assert_eq!(store.stats().unwrap().confirms, [("plex".to_owned(), 1, 0)]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    plex.index("/lib/Show/e2.mkv", "42", "Show S01E02");
    tokio::time::sleep(Duration::from_secs(120)).await;
    let h = store
        .history(&HistoryQuery {
            events: vec![Event::Indexed],
            limit: 10,
            ..HistoryQuery::default()
        })
        .unwrap();
    assert_eq!(h.len(), 1, "confirmed by the service's own loop");
    assert_eq!(h[0].detail.as_deref(), Some("Show S01E02 (id 42)"));
    assert!(store.stats().unwrap().confirms.is_empty());
    assert!(
        plex.lookups() <= 4,
        "looked up on the schedule, not in a loop: {}",
        plex.lookups()
    );
    serving.await.unwrap().unwrap();
}

/// A notifier whose server is down never delays a scan: it runs on its own.
#[tokio::test(start_paused = true)]
async fn a_notifier_that_is_down_never_delays_scans() {
    use pps_core::memory::MemoryTarget;
    use pps_core::{Capabilities, TargetSpec};
    let text = r#"
[sources.disk]
kind = "local"

[targets.cmd]
kind = "command"
program = "/bin/true"

[notifiers.down]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
window = "0s"

[[watch]]
source = "disk"
path = "/lib"
interval = "10s"
"#;
    let config = Config::parse(text, None, &[]).unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut app = App::build_with_store(config, store.clone()).unwrap();
    let source = MemorySource::new();
    source.write_file("/lib/Show/e1.mkv", 1);
    let cmd = MemoryTarget::new(Capabilities::folders_only());
    let start = tokio::time::Instant::now();
    app.engine = app
        .engine
        .clone()
        .with_source("disk", Arc::new(source.clone()))
        .with_target(TargetSpec::new("cmd", Arc::new(cmd.clone())))
        .with_clock(Arc::new(TokioClock(start)));
    app.sources.insert("disk".into(), Arc::new(source.clone()));
    app.targets.insert("cmd".into(), Arc::new(cmd.clone()));
    let (_, w) = &app.watches[0];
    app.engine.pass(w).await.unwrap();
    let app = Arc::new(app);
    let serving = {
        let app = app.clone();
        tokio::spawn(async move {
            pps::service::serve(&app, tokio::time::sleep(Duration::from_secs(120))).await
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    source.write_file("/lib/Show/e2.mkv", 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        cmd.received().len(),
        1,
        "the scan went out while the notifier failed"
    );
    serving.await.unwrap().unwrap();
    let st = store.notifier("down").unwrap().expect("the notifier ran");
    assert!(st.failures > 0 || st.parked.is_some(), "{st:?}");
    assert!(
        st.last_error.is_some_and(|e| e.contains("cannot connect")),
        "no URL in the error"
    );
}

/// Attack review, item 1: a reload used to close the listener and bind again ~15 ms
/// later; a local process binding in that gap took the port (and the next login). The
/// socket is now kept by the HTTP wing between two `serve`s.
#[tokio::test]
async fn a_reload_never_frees_the_listening_port() {
    let handover = pps::http::Kept::default();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let first = handover.listener_for(addr).await.unwrap();
    drop(first); // the first config's service has stopped
    let squatter = std::net::TcpListener::bind(addr);
    assert!(
        squatter.is_err(),
        "between two configs nobody else can take the port"
    );
    let second = handover.listener_for(addr).await.unwrap();
    let client = tokio::spawn(async move { tokio::net::TcpStream::connect(addr).await });
    let (_conn, _) = second.accept().await.unwrap();
    client.await.unwrap().unwrap();

    // A new address that cannot be bound keeps the one in force.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let kept = handover.listener_for(busy).await.unwrap();
    assert_eq!(kept.local_addr().unwrap(), addr);
}

/// A reload that takes `listen` out closes the port: the kept socket used to stay in
/// LISTEN with nobody accepting, so a client's connection hung until it timed out.
#[tokio::test]
async fn a_removed_listen_closes_the_port() {
    let kept = pps::http::Kept::default();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    drop(kept.listener_for(addr).await.unwrap());
    assert!(
        std::net::TcpStream::connect(addr).is_ok(),
        "kept, listening"
    );
    assert_eq!(kept.listening(), Some(addr));
    assert!(!crate::ui_attack::start_without_ui("", &kept).await);
    // Closed: nothing of pps holds the port. (Connecting to see it refused would race
    // with other tests binding ephemeral ports, which may be given this one.)
    assert_eq!(kept.listening(), None);
}

/// The reload loop is the library's (`pps::service::run`), not only `pps run`'s: a
/// program that embeds the service applies a web UI edit and a hand edit, and refuses
/// an invalid one while the running config goes on. Real files and a real SQLite store,
/// on tokio's paused clock (the config file is looked at every CONFIG_POLL).
#[tokio::test(start_paused = true)]
async fn the_library_applies_config_edits_and_refuses_an_invalid_one() {
    use pps::service::Phase;
    let dir = tempfile::tempdir().unwrap();
    for d in ["a", "b", "c"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let file = dir.path().join("pps.toml");
    let text = |watches: &[&str]| {
        let mut t = format!(
            "[store]\npath = {:?}\n[sources.disk]\nkind = \"local\"\n[targets.print]\nkind = \"stdout\"\n",
            dir.path().join("state.db")
        );
        for w in watches {
            t += &format!(
                "[[watch]]\nsource = \"disk\"\npath = {:?}\n",
                dir.path().join(w)
            );
        }
        t
    };
    std::fs::write(&file, text(&["a"])).unwrap();
    let load = {
        let file = file.clone();
        move || Config::load(&file)
    };
    let app = App::build_for(load().unwrap(), pps::Access::Writer("a test")).unwrap();
    let control = app.control.clone();
    let phases = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let phases = phases.clone();
        pps::service::run(
            app,
            "a test",
            Some(load),
            async {
                let _ = stopped.await;
            },
            move |p| phases.lock().unwrap().push(p),
        )
    });
    let settle = || tokio::time::sleep(pps::service::CONFIG_POLL * 2);
    settle().await;
    assert_eq!(*phases.lock().unwrap(), [Phase::Ready]);

    // The web UI writes the file and asks: applied without waiting for the poll.
    let seen = control.generation();
    std::fs::write(&file, text(&["a", "b"])).unwrap();
    control.request_reload();
    assert!(control.wait_past(seen, Duration::from_secs(30)).await);
    assert_eq!(
        *phases.lock().unwrap(),
        [Phase::Ready, Phase::Reloading, Phase::Ready]
    );

    // An invalid hand edit is refused: no reload, the running config goes on.
    std::fs::write(&file, "[[watch]]\nsource = \"nowhere\"\n").unwrap();
    settle().await;
    assert_eq!(
        phases.lock().unwrap().len(),
        3,
        "an invalid config is never applied"
    );

    // A valid hand edit is noticed by the poll (after another refused one: applying
    // it ends the refusal).
    std::fs::write(&file, "[[watch]]\nsource = \"nowhere\"\n").unwrap();
    settle().await;
    assert!(control.refused().is_some());
    let seen = control.generation();
    std::fs::write(&file, text(&["a", "b", "c"])).unwrap();
    assert!(control.wait_past(seen, Duration::from_secs(30)).await);
    assert_eq!(control.refused(), None);
    assert!(control.applies_reloads());

    // A forced reload (SIGHUP) of an unchanged file applies it again.
    let seen = control.generation();
    control.force_reload();
    assert!(control.wait_past(seen, Duration::from_secs(30)).await);

    // Attack review, item 1: a config that builds but cannot start (its new `listen`
    // is taken) used to end pps with exit 2. It goes back to the config in force.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    std::fs::write(
        &file,
        format!(
            "{}[server]\nlisten = \"{busy}\"\ntoken = \"tok-tok-tok-tok\"\n",
            text(&["a"])
        ),
    )
    .unwrap();
    settle().await;
    settle().await;
    assert!(!running.is_finished(), "pps goes on");
    let refused = control.refused().unwrap_or_default();
    assert!(refused.contains("cannot listen"), "{refused}");

    stop.send(()).unwrap();
    let app = running.await.unwrap().unwrap();
    assert_eq!(
        app.config.watches.len(),
        3,
        "the last edit that started is in force"
    );
    assert!(app.config.server.listen.is_none());
    assert_eq!(phases.lock().unwrap().last(), Some(&Phase::Stopping));
}
