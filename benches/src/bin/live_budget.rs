//! Issue 24, live: the release `pps` binary as a process against the mock cd2 over gRPC on
//! loopback, three cases.
//!
//! 1. A new title in a quiet root: `/115/电影` with 14 film folders months old,
//!    `interval = "10s"`, 0.9 calls/s; a new film folder lands in the root at 60 s,
//!    5 min and 15 min into `pps run` (`--short`: 60 s, 3 min, 6 min). Delay: from the
//!    write to the stdout target's JSON line naming the folder. Goal: interval + 5 s.
//! 2. Saturated, all fresh: 411 folders whose files are minutes old, 5 calls/s,
//!    `interval = "2s"`, `max_interval = "10m"`; a new episode in one season every 6 s
//!    for 90 s. Goal: after the first is found, each next one within 15 s.
//! 3. `pps walk` beside `pps run` on case 2's tree and store at 2 calls/s: the mock's
//!    call arrival times give the calls per second and the most calls in any 1-second
//!    window while both run; then the same with `pps walk --force`, and `pps status`.
//!
//! Case 1 runs beside cases 2 and 3 (separate mock servers and stores), so the whole
//! takes about as long as case 1. Run:
//! `cargo build --release --bin pps && cargo run --release -p pps-benches --bin live_budget [-- [--short] [PATH_TO_PPS]]`

use pps_clouddrive::mock::{Method, MockServer, MockTree};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};

const DAY: u64 = 86_400;

fn config(url: &str, rate: f64, root: &str, interval: &str, max_interval: Option<&str>) -> String {
    let mut c = format!(
        "[store]\npath = \"pps.db\"\n[sources.cd2]\nkind = \"clouddrive2\"\nurl = \"{url}\"\napi_token = \"live\"\nmax_queries_per_second = {rate}\npush = false\n[targets.print]\nkind = \"stdout\"\n[[watch]]\nsource = \"cd2\"\npath = \"{root}\"\ninterval = \"{interval}\"\n"
    );
    if let Some(m) = max_interval {
        let _ = writeln!(c, "max_interval = \"{m}\"");
    }
    c
}

fn pps_cmd(pps: &Path, config: &Path) -> Command {
    let mut c = Command::new(pps);
    c.arg("-c").arg(config);
    c
}

fn index(pps: &Path, config: &Path) -> f64 {
    let t = Instant::now();
    let out = pps_cmd(pps, config).arg("index").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// `pps -v run` with `PPS_LOG=pps=debug`, stderr into `log`.
fn spawn_run(pps: &Path, config: &Path, log: &Path, stdout: Stdio) -> Child {
    pps_cmd(pps, config)
        .arg("-v")
        .arg("run")
        .env("PPS_LOG", "pps=debug")
        .stdout(stdout)
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Each stdout line of `child` with the instant it was read: (instant, path).
fn lines(child: &mut Child) -> Receiver<(Instant, String)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let at = Instant::now();
            let v: serde_json::Value = serde_json::from_str(&l).unwrap_or_default();
            let _ = tx.send((at, v["path"].as_str().unwrap_or("").to_owned()));
        }
    });
    rx
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

/// Sends `sig`, then SIGKILL after `grace`; true when it ended on the signal alone.
fn stop(child: &mut Child, sig: &str, grace: Duration) -> bool {
    signal(child, sig);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Drains `rx` into `seen` until `until`.
fn drain(rx: &Receiver<(Instant, String)>, seen: &mut Vec<(Instant, String)>, until: Instant) {
    while Instant::now() < until {
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(20)) {
            seen.push(x);
        }
    }
    while let Ok(x) = rx.try_recv() {
        seen.push(x);
    }
}

fn found(seen: &[(Instant, String)], path: &str, after: Instant) -> Option<Instant> {
    let below = format!("{path}/");
    seen.iter()
        .filter(|(t, p)| *t >= after && (p == path || p.starts_with(&below)))
        .map(|(t, _)| *t)
        .min()
}

/// Calls in `[from, to)`: count, seconds, calls/s, most calls in any 1-second window.
struct Window {
    calls: usize,
    secs: f64,
    max_1s: usize,
}

impl Window {
    fn of(arrivals: &[Instant], from: Instant, to: Instant) -> Window {
        let a: Vec<Instant> = arrivals
            .iter()
            .copied()
            .filter(|t| *t >= from && *t < to)
            .collect();
        let mut max_1s = 0;
        let mut j = 0;
        for i in 0..a.len() {
            while j < a.len() && a[j] < a[i] + Duration::from_secs(1) {
                j += 1;
            }
            max_1s = max_1s.max(j - i);
        }
        Window {
            calls: a.len(),
            secs: to.duration_since(from).as_secs_f64(),
            max_1s,
        }
    }

    fn rate(&self) -> f64 {
        self.calls as f64 / self.secs
    }
}

/// Calls in each whole second from `from`, for `n` seconds.
fn per_second(arrivals: &[Instant], from: Instant, n: usize) -> Vec<usize> {
    let mut v = vec![0; n];
    for t in arrivals {
        if *t >= from {
            let s = t.duration_since(from).as_secs() as usize;
            if s < n {
                v[s] += 1;
            }
        }
    }
    v
}

fn listing_calls(cd2: &MockServer) -> u64 {
    cd2.calls(Method::GetSubFiles) + cd2.calls(Method::FindFileByPath)
}

/// Case 1: a new title in a quiet root.
fn quiet_root(pps: &Path, cd2: &MockServer, dir: &Path, at: &[u64], out: &mut String) {
    let root = "/115/电影";
    let config = dir.join("pps.toml");
    std::fs::write(&config, config_text(cd2, 0.9, root, "10s", None)).unwrap();
    let idx = index(pps, &config);
    eprintln!("case 1: index {idx:.1} s");
    cd2.record_arrivals();
    let log = dir.join("run.log");
    let mut child = spawn_run(pps, &config, &log, Stdio::piped());
    let started = Instant::now();
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    let mut written: Vec<(String, Instant, u64)> = Vec::new();
    for (k, secs) in at.iter().enumerate() {
        drain(&rx, &mut seen, started + Duration::from_secs(*secs));
        let name = format!("新片 {} (2025)", k + 1);
        let folder = format!("{root}/{name}");
        let file = format!("{folder}/{name}.mkv");
        cd2.with_tree(|t| t.write_file_at(&file, 4 << 30, SystemTime::now()));
        let w = Instant::now();
        eprintln!(
            "case 1: wrote {folder} at {:.1} s",
            w.duration_since(started).as_secs_f64()
        );
        written.push((folder.clone(), w, *secs));
        // Wait for it (at most 60 s) before the next, so the log shows each one alone.
        let until = w + Duration::from_secs(60);
        while Instant::now() < until && found(&seen, &folder, w).is_none() {
            drain(&rx, &mut seen, Instant::now() + Duration::from_millis(200));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let calls_run = cd2.arrivals().len();
    let clean = stop(&mut child, "TERM", Duration::from_secs(10));
    let _ = writeln!(
        out,
        "\n### 1. A new title in a quiet root\n\n`/115/电影` with 14 film folders (one .mkv each) whose mtimes are 60–190 days old, `interval = \"10s\"`, \
         `max_queries_per_second = 0.9`, push off, `max_interval` at its default (24h). `pps index` took {idx:.1} s; then `pps run` for {elapsed:.0} s \
         ({calls_run} listing calls, {:.2}/s{}). A new folder `新片 N (2025)/新片 N (2025).mkv` (mtime now) is written into the root at each time below; \
         the delay runs from the write to the stdout target's JSON line naming it. Goal: within `interval` + 5 s = 15 s.\n",
        calls_run as f64 / elapsed,
        if clean {
            ""
        } else {
            "; it did not stop on SIGTERM"
        }
    );
    let _ = writeln!(
        out,
        "| written at (into the run) | found after | goal 15 s |"
    );
    let _ = writeln!(out, "|---|---|---|");
    for (folder, w, secs) in &written {
        let at = if *secs % 60 == 0 {
            format!("{} min", secs / 60)
        } else {
            format!("{secs} s")
        };
        match found(&seen, folder, *w) {
            Some(t) => {
                let d = t.duration_since(*w).as_secs_f64();
                let _ = writeln!(
                    out,
                    "| {at} | {d:.1} s | {} |",
                    if d <= 15.0 { "met" } else { "NOT met" }
                );
            }
            None => {
                let _ = writeln!(out, "| {at} | not found within 60 s | NOT met |");
            }
        }
    }
    let _ = writeln!(out, "\n(log: `{}`)", log.display());
}

fn config_text(
    cd2: &MockServer,
    rate: f64,
    root: &str,
    interval: &str,
    max: Option<&str>,
) -> String {
    config(&cd2.url(), rate, root, interval, max)
}

/// Case 2: saturated, all fresh (case 3 reuses its mock and store).
fn saturated(pps: &Path, cd2: &MockServer, dir: &Path, folders: usize, out: &mut String) {
    let config = dir.join("pps.toml");
    std::fs::write(&config, config_text(cd2, 5.0, "/115/TV", "2s", Some("10m"))).unwrap();
    let idx = index(pps, &config);
    let idx_calls = listing_calls(cd2);
    eprintln!("case 2: index {idx:.1} s, {idx_calls} calls");
    let log = dir.join("run-saturated.log");
    let mut child = spawn_run(pps, &config, &log, Stdio::piped());
    let started = Instant::now();
    cd2.record_arrivals();
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    let mut written: Vec<(String, Instant)> = Vec::new();
    let season = "/115/TV/Show 042/Season 2";
    let mut k = 2;
    while started.elapsed() < Duration::from_secs(90) {
        let path = format!("{season}/E{k:02}.mkv");
        cd2.with_tree(|t| t.write_file_at(&path, 1 << 30, SystemTime::now()));
        written.push((path, Instant::now()));
        k += 1;
        drain(&rx, &mut seen, Instant::now() + Duration::from_secs(6));
    }
    drain(&rx, &mut seen, Instant::now() + Duration::from_secs(20));
    let elapsed = started.elapsed().as_secs_f64();
    let calls = cd2.arrivals().len();
    let clean = stop(&mut child, "TERM", Duration::from_secs(10));
    let _ = writeln!(
        out,
        "\n### 2. Saturated, all fresh\n\n`/115/TV`: {folders} folders (136 shows × 2 seasons, an E01.mkv in each season) whose files' mtimes are 5–20 minutes \
         before the start, nothing singling out any show; `max_queries_per_second = 5`, `interval = \"2s\"`, `max_interval = \"10m\"`, push off. \
         `pps index` took {idx:.1} s ({idx_calls} calls). Then `pps run` for {elapsed:.0} s ({calls} listing calls, {:.2}/s{}) while a new episode \
         (mtime now) lands in `{season}` every 6 s for 90 s; the delay runs from the write to the JSON line naming it. \
         Goal: after the first is found, each next one within 15 s.\n",
        calls as f64 / elapsed,
        if clean {
            ""
        } else {
            "; it did not stop on SIGTERM"
        }
    );
    let mut delays = Vec::new();
    let mut head = String::from("| episode |");
    let mut sep = String::from("|---|");
    let mut row = String::from("| found after (s) |");
    for (i, (p, w)) in written.iter().enumerate() {
        let _ = write!(head, " {} |", i + 2);
        sep.push_str("---|");
        match found(&seen, p, *w) {
            Some(t) => {
                let d = t.duration_since(*w).as_secs_f64();
                let _ = write!(row, " {d:.1} |");
                delays.push(Some(d));
            }
            None => {
                row.push_str(" not found |");
                delays.push(None);
            }
        }
    }
    let _ = writeln!(out, "{head}\n{sep}\n{row}\n");
    // The goal counts from the first find: episodes written before it are found in the
    // same listing as the first; each one written after it must take at most 15 s.
    let first_find = written
        .iter()
        .filter_map(|(p, w)| found(&seen, p, *w))
        .min();
    let verdict = match first_find {
        None => "no episode was found: NOT met".to_owned(),
        Some(f) => {
            let first_write = written[0].1;
            let before = written.iter().filter(|(_, w)| *w < f).count();
            let after: Vec<Option<f64>> = written
                .iter()
                .zip(&delays)
                .filter(|((_, w), _)| *w >= f)
                .map(|(_, d)| *d)
                .collect();
            let worst = after.iter().flatten().copied().fold(0.0f64, f64::max);
            let missing = after.iter().filter(|d| d.is_none()).count();
            format!(
                "the first find came {:.1} s after the first write and named the {before} episode(s) written by then; \
                 of the {} written after it the worst took {worst:.1} s{} (goal 15 s: {})",
                f.duration_since(first_write).as_secs_f64(),
                after.len(),
                if missing > 0 {
                    format!(", {missing} not found")
                } else {
                    String::new()
                },
                if worst <= 15.0 && missing == 0 {
                    "met"
                } else {
                    "NOT met"
                }
            )
        }
    };
    let _ = writeln!(
        out,
        "{} episodes written, {} found; {verdict}. (log: `{}`)",
        written.len(),
        delays.iter().flatten().count(),
        log.display()
    );
}

/// One round of case 3: `pps run`, then at 20 s `pps walk [--force]` for up to 60 s.
fn walk_round(pps: &Path, cd2: &MockServer, dir: &Path, force: bool, out: &mut String) {
    let config = dir.join("pps.toml");
    let tag = if force { "walk-force" } else { "walk" };
    let log = dir.join(format!("run-{tag}.log"));
    cd2.record_arrivals();
    let mut run = spawn_run(pps, &config, &log, Stdio::null());
    let run_started = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let mut walk = pps_cmd(pps, &config);
    walk.arg("walk").arg("cd2:/115/TV");
    if force {
        walk.arg("--force");
    }
    let walk_out_path = dir.join(format!("{tag}.out"));
    let walk_err_path = dir.join(format!("{tag}.err"));
    let mut walk = walk
        .stdout(std::fs::File::create(&walk_out_path).unwrap())
        .stderr(std::fs::File::create(&walk_err_path).unwrap())
        .spawn()
        .unwrap();
    let walk_started = Instant::now();
    let mut finished = false;
    while walk_started.elapsed() < Duration::from_secs(60) {
        if walk.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if finished {
        let _ = walk.wait();
    } else {
        // Ctrl-C prints the figures so far.
        stop(&mut walk, "INT", Duration::from_secs(5));
    }
    let walk_ended = Instant::now();
    let after = if force { 30 } else { 10 };
    std::thread::sleep(Duration::from_secs(after));
    let run_end = Instant::now();
    let clean = stop(&mut run, "TERM", Duration::from_secs(10));
    let arrivals: Vec<Instant> = cd2.arrivals().into_iter().map(|t| t.into_std()).collect();
    let alone = Window::of(&arrivals, run_started, walk_started);
    let both = Window::of(&arrivals, walk_started, walk_ended);
    let after_w = Window::of(&arrivals, walk_ended, run_end);
    let walk_text = std::fs::read_to_string(&walk_out_path).unwrap_or_default();
    // The walk's own count ("calls:    94 listing calls"); the rest of the window is pps run's.
    let walk_calls: Option<usize> = walk_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("calls:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let _ = writeln!(
        out,
        "\n#### `pps walk{}` beside `pps run`\n\n`pps run` started at 0 s, `pps walk{} cd2:/115/TV` at {:.1} s; the walk {} after {:.1} s; `pps run` stopped {after} s later{}. \
         Listing calls the mock received (GetSubFiles and FindFileByPath, by arrival time), against the configured 2 calls/s:\n",
        if force { " --force" } else { "" },
        if force { " --force" } else { "" },
        walk_started.duration_since(run_started).as_secs_f64(),
        if finished {
            "ended by itself"
        } else {
            "was interrupted (SIGINT)"
        },
        walk_ended.duration_since(walk_started).as_secs_f64(),
        if clean {
            ""
        } else {
            " (it did not stop on SIGTERM)"
        },
    );
    let _ = writeln!(
        out,
        "| span | seconds | calls | calls/s | most calls in any 1 s window |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (name, w) in [
        ("`pps run` alone (before the walk)", &alone),
        ("both running", &both),
        ("`pps run` alone (after the walk)", &after_w),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.1} | {} | {:.2} | {} |",
            w.secs,
            w.calls,
            w.rate(),
            w.max_1s
        );
    }
    if let Some(n) = walk_calls {
        let _ = writeln!(
            out,
            "\nWhile both ran, the walk made {n} of the {} calls ({:.2}/s, its own report) and `pps run` the other {} ({:.2}/s).",
            both.calls,
            n as f64 / both.secs,
            both.calls.saturating_sub(n),
            both.calls.saturating_sub(n) as f64 / both.secs
        );
    }
    let secs = (walk_ended.duration_since(walk_started).as_secs_f64().ceil() as usize).max(1);
    let ps = per_second(&arrivals, walk_started, secs);
    let _ = writeln!(
        out,
        "\nCalls in each whole second from the walk's start, while both ran: {}\n",
        ps.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(out, "The walk's own report:\n\n```\n{}```", walk_text);
    eprintln!(
        "case 3 {tag}: alone {:.2}/s max {}, both {:.2}/s max {} over {:.1} s, after {:.2}/s max {}",
        alone.rate(),
        alone.max_1s,
        both.rate(),
        both.max_1s,
        both.secs,
        after_w.rate(),
        after_w.max_1s
    );
}

fn walk_beside_run(pps: &Path, cd2: &MockServer, dir: &Path, out: &mut String) {
    let config = dir.join("pps.toml");
    std::fs::write(&config, config_text(cd2, 2.0, "/115/TV", "2s", Some("10m"))).unwrap();
    let _ = writeln!(
        out,
        "\n### 3. `pps walk` beside `pps run`\n\nCase 2's mock and store, its config now with `max_queries_per_second = 2` (burst 2, the default): the shared budget's bucket holds 2 calls, so a 1-second window may hold up to 3."
    );
    walk_round(pps, cd2, dir, false, out);
    walk_round(pps, cd2, dir, true, out);
    let status = pps_cmd(pps, &config).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    let line = text
        .lines()
        .filter(|l| l.contains("calls in the last hour"))
        .collect::<Vec<_>>()
        .join("\n");
    let _ = writeln!(
        out,
        "\n`pps status -c CONFIG` afterwards:\n\n```\n{line}\n```\n\nThe mock received {} listing calls (GetSubFiles and FindFileByPath) from every process in all (case 2's index and run, both rounds' runs and walks), {} GetSystemInfo and {} GetToken calls.",
        listing_calls(cd2),
        cd2.calls(Method::GetSystemInfo),
        cd2.calls(Method::GetToken),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let t0 = Instant::now();
    let mut short = false;
    let mut pps = PathBuf::from("target/release/pps");
    for a in std::env::args().skip(1) {
        if a == "--short" {
            short = true;
        } else {
            pps = PathBuf::from(a);
        }
    }
    assert!(
        pps.exists(),
        "build it first: cargo build --release --bin pps"
    );
    let at: Vec<u64> = if short {
        vec![60, 180, 360]
    } else {
        vec![60, 300, 900]
    };
    let now = SystemTime::now();

    // Case 1's library: 14 films, 60 to 190 days old.
    let mut films = MockTree::new();
    for i in 0..14u64 {
        let name = format!("Film {:02} ({})", i + 1, 2010 + i);
        films.write_file_at(
            &format!("/115/电影/{name}/{name}.mkv"),
            4 << 30,
            now - Duration::from_secs((60 + 10 * i) * DAY),
        );
    }
    // Cases 2 and 3: 136 shows of two seasons, every file 5 to 20 minutes old.
    let mut tv = MockTree::new();
    for i in 0..136u64 {
        for s in 1..=2u64 {
            tv.write_file_at(
                &format!("/115/TV/Show {i:03}/Season {s}/E01.mkv"),
                1 << 30,
                now - Duration::from_secs(300 + (i * 2 + s) * 900 / 272),
            );
        }
    }
    let folders = tv.folder_count();
    let cd2_films = MockServer::builder()
        .api_token("live")
        .start(films)
        .await
        .unwrap();
    let cd2_tv = MockServer::builder()
        .api_token("live")
        .start(tv)
        .await
        .unwrap();
    let base = std::env::temp_dir().join(format!("pps-live-budget-{}", std::process::id()));
    let dir1 = base.join("quiet");
    let dir2 = base.join("tv");
    std::fs::create_dir_all(&dir1).unwrap();
    std::fs::create_dir_all(&dir2).unwrap();
    eprintln!("work dirs and logs under {}", base.display());

    let pps1 = pps.clone();
    let case1 = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        quiet_root(&pps1, &cd2_films, &dir1, &at, &mut out);
        out
    });
    let pps2 = pps.clone();
    let case23 = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        saturated(&pps2, &cd2_tv, &dir2, folders, &mut out);
        walk_beside_run(&pps2, &cd2_tv, &dir2, &mut out);
        out
    });
    let out23 = case23.await.unwrap();
    eprintln!("cases 2 and 3 done at {:.0} s", t0.elapsed().as_secs_f64());
    let out1 = case1.await.unwrap();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("## Issue 24, live: quiet root, saturated budget, walk beside run\n");
    println!(
        "`cargo build --release --bin pps && cargo run --release -p pps-benches --bin live_budget{}`: the release `pps` binary as a process against \
         the mock cd2 (`pps_clouddrive::mock::MockServer`) over gRPC on loopback, push off. Case 1 runs beside cases 2 and 3 (each with its own mock \
         server and store). Machine: {} (`nproc` = {}); load average at the end: {}. Wall time of the binary: {:.0} s.",
        if short { " -- --short" } else { "" },
        pps_benches::machine(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        t0.elapsed().as_secs_f64()
    );
    print!("{out1}");
    print!("{out23}");
}
