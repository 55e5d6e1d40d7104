//! The subcommands: each calls an operation of the `pps` library, renders its report
//! and picks the exit code. Only `main` prints errors.

use crate::render::{self, plural};
use pps::App;
use pps_core::stdout::JsonLinesTarget;
use pps_core::{Error, ErrorKind, Result};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Exit code for an error that stopped a command: 2 for configuration and usage, 1
/// for everything else.
pub fn exit_code(err: &Error) -> u8 {
    match err.kind() {
        ErrorKind::ConfigInvalid => 2,
        _ => 1,
    }
}

/// `pps init`: writes the commented template; never overwrites.
pub fn init(path: &Path) -> Result<ExitCode> {
    pps::config::write_template(path)?;
    eprintln!("wrote {}; edit it, then run `pps check`", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `pps run --init-if-missing` without a config: writes the template and says what to
/// do, exiting 2, so a container never starts watching nothing.
pub fn first_start(path: &Path) -> Result<ExitCode> {
    pps::config::write_template(path)?;
    eprintln!(
        "wrote a commented config to {}: edit it (sources, targets, [[watch]]), then start pps again",
        path.display()
    );
    Ok(ExitCode::from(2))
}

/// `pps health`: GET /health of a running service over plain HTTP/1.0, exit 0 on 200.
/// No HTTP client library: the container image has no curl, and this is one request.
pub fn health(addr: Option<String>, config: &Path) -> Result<ExitCode> {
    use std::io::{Read, Write};
    let addr = addr.unwrap_or_else(|| {
        pps::Config::load(config)
            .ok()
            .and_then(|c| c.server.listen)
            .map(|a| {
                // A service bound to every address answers on loopback.
                let ip = if a.ip().is_unspecified() {
                    if a.is_ipv4() {
                        std::net::IpAddr::from([127, 0, 0, 1])
                    } else {
                        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                    }
                } else {
                    a.ip()
                };
                std::net::SocketAddr::new(ip, a.port()).to_string()
            })
            .unwrap_or_else(|| "127.0.0.1:8090".to_owned())
    });
    let fail = |msg: String| {
        eprintln!("unhealthy: {msg}");
        Ok(ExitCode::from(1))
    };
    let timeout = Duration::from_secs(5);
    let target = match std::net::ToSocketAddrs::to_socket_addrs(&addr.as_str()) {
        Ok(mut a) => match a.next() {
            Some(a) => a,
            None => return fail(format!("{addr} resolves to no address")),
        },
        Err(e) => return fail(format!("{addr} is not host:port ({e})")),
    };
    let mut conn = match std::net::TcpStream::connect_timeout(&target, timeout) {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot connect to {addr}: {e}")),
    };
    let _ = conn.set_read_timeout(Some(timeout));
    let _ = conn.set_write_timeout(Some(timeout));
    if let Err(e) = conn.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n") {
        return fail(format!("{addr}: {e}"));
    }
    let mut answer = Vec::new();
    if let Err(e) = conn.take(64 * 1024).read_to_end(&mut answer) {
        return fail(format!("{addr}: {e}"));
    }
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
    if status.split(' ').nth(1) == Some("200") {
        println!("{body}");
        Ok(ExitCode::SUCCESS)
    } else {
        fail(format!("{status}: {body}"))
    }
}

/// `pps man [--dir DIR]`: man pages from the same clap definition the binary parses
/// with: `pps.1` on stdout, or `pps.1` and one `pps-SUB.1` per subcommand in DIR.
pub fn man(cmd: clap::Command, dir: Option<&Path>) -> Result<ExitCode> {
    let io = |what: String| {
        move |e: std::io::Error| Error::new(ErrorKind::Unexpected, format!("{what}: {e}"))
    };
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(io("rendering the man page".into()))?;
        std::io::stdout()
            .write_all(&out)
            .map_err(io("writing the man page".into()))?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let cmd = cmd.display_name("pps");
    let mut pages = vec![("pps".to_owned(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("pps-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().display_name(name)));
    }
    for (name, page) in pages {
        let file = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut out)
            .map_err(io(format!("rendering {name}")))?;
        std::fs::write(&file, out).map_err(io(format!("writing {}", file.display())))?;
        // A closed stdout (`pps man --dir D | head`) is not an error of writing pages.
        let _ = writeln!(std::io::stdout(), "{}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `pps once [--full]`: one pass over every watch (the folders due now, or with
/// `full` every folder), delivery to every target, a summary.
pub async fn once(app: &App, full: bool) -> Result<ExitCode> {
    app.require_watches()?;
    let report = pps::once::once(app, full).await?;
    if app.stdout.iter().any(JsonLinesTarget::is_closed) {
        return Ok(stdout_gone());
    }
    let (mut listed, mut changes, mut queued) = (0u64, 0usize, 0u64);
    for (label, r) in &report.passes {
        match r {
            Ok(r) => {
                pps::service::log_pass(r);
                listed += r.folders_listed;
                changes += r.changes.len();
                queued += r.scans_queued;
            }
            Err(e) => tracing::error!(watch = %label, error = %e, "pass failed"),
        }
    }
    let mut delivered = Vec::new();
    for (name, r) in &report.deliveries {
        if let Some(f) = &r.temporary_failure {
            tracing::error!(target = %name, error = %f, "delivery failed; scans stay queued for the next run");
        }
        delivered.push(format!(
            "{name}: {} sent, {} parked{}",
            r.sent,
            r.parked,
            if r.remaining {
                ", some still queued"
            } else {
                ""
            }
        ));
    }
    if app.store_copy.is_some() {
        let delivered = delivered.join("; ").replace(" sent,", " would be sent,");
        tracing::info!(watches = app.watches.len(), folders = listed, changes, scans = queued, delivery = %delivered, "dry run done: nothing was sent and the store is unchanged");
    } else {
        tracing::info!(watches = app.watches.len(), folders = listed, changes, scans = queued, delivery = %delivered.join("; "), "once done");
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Exit code 141 (128 + SIGPIPE), as a Unix tool killed by a closed pipe would end,
/// after a line on stderr: the reader of stdout went away (`pps run | head -1`), and
/// the scans that could not be printed stay queued.
pub fn stdout_gone() -> ExitCode {
    eprintln!("stdout was closed; stopping (scans not printed stay queued for the next run)");
    ExitCode::from(141)
}

/// Resolves (its `notified`) once stdout is a pipe whose reader has gone
/// (`pps run | head -1` after `head` exits), found by polling the pipe from a thread of
/// its own, so the service ends at once instead of at its next write. Never for a
/// terminal or a file.
fn stdout_pipe_gone() -> std::sync::Arc<tokio::sync::Notify> {
    let gone = std::sync::Arc::new(tokio::sync::Notify::new());
    #[cfg(unix)]
    {
        use rustix::event::{PollFd, PollFlags};
        use std::os::fd::AsFd;
        let stdout = std::io::stdout();
        let is_pipe = rustix::fs::fstat(stdout.as_fd()).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
        });
        if is_pipe {
            let tell = gone.clone();
            let spawned = std::thread::Builder::new()
                .name("stdout-watch".into())
                .spawn(move || {
                    let stdout = std::io::stdout();
                    loop {
                        // No events asked for: a pipe's writer end reports only ERR
                        // (the reader closed) and HUP.
                        let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
                        match rustix::event::poll(&mut fds, None) {
                            Ok(_)
                                if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) =>
                            {
                                // notify_one keeps the permit for a `notified` not
                                // yet polled.
                                tell.notify_one();
                                return;
                            }
                            // Anything else it reports (NVAL) would come back at
                            // once forever: stop watching rather than spin.
                            Ok(_) if !fds[0].revents().is_empty() => return,
                            Ok(_) | Err(rustix::io::Errno::INTR) => {}
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::debug!(error = %e, "cannot watch stdout; a closed pipe is found at the next write");
            }
        }
    }
    gone
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are registered when this
/// is called, not when it is first polled, so a signal sent right after the call is
/// never missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut t), Some(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                (Some(mut t), None) => {
                    t.recv().await;
                }
                (None, Some(mut i)) => {
                    i.recv().await;
                }
                (None, None) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `pps run`: the service, [`pps::service::run`], with the process's signals wired in.
/// SIGINT/SIGTERM stop it between atomic commits; a second signal exits at once. SIGHUP
/// asks for the config to be read again (`reload`; `None` in `--watch` mode), as an
/// edit of the file or from the web UI does. Under systemd (Type=notify) each phase is
/// told to the supervisor.
pub async fn run(
    app: App,
    reload: Option<impl Fn() -> Result<pps::config::Config>>,
) -> Result<ExitCode> {
    let mut hangup = hangup_signal();
    let control = app.control.clone();
    tokio::spawn(async move {
        loop {
            hangup.recv().await;
            control.force_reload();
        }
    });
    // `pps run | head -1`: the reader is gone, noticed without waiting for a write.
    let pipe_gone = stdout_pipe_gone();
    let control = app.control.clone();
    tokio::spawn(async move {
        pipe_gone.notified().await;
        control.stdout_gone();
    });
    let mut fed = false;
    let app = pps::service::run(
        app,
        "pps run",
        reload,
        shutdown_signal(),
        |phase| match phase {
            pps::service::Phase::Ready => {
                // Ready once the config is valid and the store is ours; the watchdog is fed
                // from the runtime, so a wedged runtime stops feeding it.
                crate::notify::notify("READY=1");
                if !fed && let Some(period) = crate::notify::watchdog() {
                    fed = true;
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(period / 2);
                        loop {
                            tick.tick().await;
                            crate::notify::notify("WATCHDOG=1");
                        }
                    });
                }
            }
            pps::service::Phase::Reloading => crate::notify::notify("RELOADING=1"),
            pps::service::Phase::Stopping => {
                crate::notify::notify("STOPPING=1");
                // Listen for the second signal before saying it can be sent.
                let second = shutdown_signal();
                tracing::info!("stopping; a second signal (Ctrl-C again) exits at once");
                tokio::spawn(async {
                    second.await;
                    // Everything committed is safe; queued scans are delivered on the next start.
                    std::process::exit(130);
                });
            }
        },
    )
    .await?;
    if app.stdout.iter().any(JsonLinesTarget::is_closed) {
        return Ok(stdout_gone());
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP as a stream of wake-ups (never on other platforms).
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.0 {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Hangup(signal(SignalKind::hangup()).ok())
    }
    #[cfg(not(unix))]
    Hangup()
}

/// Prints progress of a pass on stderr: a live line on a terminal, a plain line every
/// five seconds otherwise.
fn progress_printer() -> impl Fn(&str, pps_core::engine::Progress) + Send + Sync + 'static {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let last = AtomicU64::new(0);
    move |label, p| {
        let ms = started.elapsed().as_millis() as u64;
        let every = if tty { 100 } else { 5000 };
        let prev = last.load(Ordering::Relaxed);
        if ms < prev + every {
            return;
        }
        last.store(ms, Ordering::Relaxed);
        let secs = (ms as f64 / 1000.0).max(0.001);
        let rate = p.listed as f64 / secs;
        let line = format!(
            "{label}: {} folders listed, {rate:.0}/s, {} waiting, {secs:.0}s elapsed",
            p.listed, p.queued
        );
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

/// `pps index [WATCH...]`: records the baseline of the named watches (all when none),
/// with progress. An existing baseline is dropped and recorded anew; changes not yet
/// found are not scanned.
pub async fn index(app: &App, selected: &[String]) -> Result<ExitCode> {
    app.require_watches()?;
    let chosen = pps::index::select(app, selected)?;
    let mut failed = false;
    let mut stop = std::pin::pin!(shutdown_signal());
    for i in chosen {
        let wc = &app.watches[i].0;
        let started = Instant::now();
        let r = tokio::select! {
            r = pps::index::reindex(app, i, Some(Box::new(progress_printer()))) => r,
            _ = &mut stop => {
                if std::io::stderr().is_terminal() {
                    eprintln!();
                }
                // Dropping the re-index stops it between atomic commits; what it wrote
                // went to a staging area, so the old baseline is untouched.
                eprintln!(
                    "index of {} interrupted; its previous baseline is kept whole (run `pps index` again to finish)",
                    wc.label()
                );
                return Ok(ExitCode::from(130));
            }
        };
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        match r {
            Ok(r) => {
                eprintln!(
                    "indexed {}: {} in {:.1}s{}",
                    wc.label(),
                    plural(r.folders_listed, "folder", "folders"),
                    started.elapsed().as_secs_f64(),
                    if r.errors.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", {} could not be listed (each keeps its earlier state, or is recorded when it next lists)",
                            plural(r.errors.len() as u64, "folder", "folders")
                        )
                    }
                );
                for e in &r.errors {
                    eprintln!("  {e}");
                }
                failed |= !r.errors.is_empty();
            }
            Err(e) => {
                eprintln!("index of {} failed: {e}", wc.label());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `pps check`: reaches every source and target and shows, per watch, where its scans
/// land. Every problem is a line of its own; exit 1 when there is any.
pub async fn check(app: &App) -> Result<ExitCode> {
    let report = pps::check::check(app).await;
    print!("{}", render::check(&report));
    let _ = std::io::stdout().flush();
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `pps ls SOURCE:PATH`: the live listing beside the stored one, marking what a pass
/// would report.
pub async fn ls(app: &App, spec: &str) -> Result<ExitCode> {
    print!("{}", render::ls(&pps::inspect::ls(app, spec).await?));
    Ok(ExitCode::SUCCESS)
}

/// `pps scan SOURCE:PATH [--target NAME]`: queues a scan of that path through the outbox
/// and delivers it now.
pub async fn scan(app: &App, spec: &str, target: Option<&str>) -> Result<ExitCode> {
    let report = pps::outbox::scan(app, spec, target).await?;
    for (t, r) in &report.deliveries {
        let state = match (&r.temporary_failure, r.parked) {
            (Some(f), _) => format!("will retry: {f}"),
            (None, p) if p > 0 => "parked (see `pps status`)".to_owned(),
            _ => "sent".to_owned(),
        };
        println!("{t}: {state} ({} requests)", r.sent);
    }
    if report.update == pps_core::Update::Deleted {
        println!(
            "{} is gone at the source: scanned as deleted (servers that scan folders get its parent)",
            report.path
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `pps status [--json]`: folders per watch, the outbox per target (failed and parked
/// scans with reasons).
pub fn status(app: &App, json: bool) -> Result<ExitCode> {
    let report = pps::status::status(app)?;
    if json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", render::status(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// `pps passwd`: the argon2id hash of the password on stdin's first line, for `[ui]
/// password_hash`. At a terminal it asks twice, with echo off, and refuses two that
/// differ. The password is never echoed or stored; only its salted hash is printed.
pub fn passwd() -> Result<ExitCode> {
    use std::io::IsTerminal;
    let tty = std::io::stdin().is_terminal();
    let password = read_password(
        tty,
        "password for the web UI (at least 8 characters), then Enter: ",
    )?;
    if password.is_empty() {
        return Err(pps_core::Error::new(
            pps_core::ErrorKind::ConfigInvalid,
            "no password given; type one (at least 8 characters), or pipe it on stdin",
        ));
    }
    if tty {
        let again = read_password(tty, "the same password again: ")?;
        if again != password {
            return Err(pps_core::Error::new(
                pps_core::ErrorKind::ConfigInvalid,
                "the two passwords differ; nothing was hashed, try again",
            ));
        }
    }
    let hash = pps::http::ui::hash_password(&password)?;
    println!("{hash}");
    eprintln!(
        "put it in pps.toml as  [ui] password_hash = \"<the line above>\"  or in PPS_UI_PASSWORD_HASH"
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of stdin without its line break; at a terminal after `prompt` on stderr,
/// with echo off while it is typed and back as it was afterwards (also when the read
/// fails).
fn read_password(tty: bool, prompt: &str) -> Result<String> {
    use std::io::BufRead;
    #[cfg(unix)]
    let saved = if tty {
        let stdin = std::io::stdin();
        rustix::termios::tcgetattr(&stdin).ok().inspect(|t| {
            let mut quiet = t.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        })
    } else {
        None
    };
    if tty {
        eprint!("{prompt}");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    #[cfg(unix)]
    if let Some(t) = saved {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &t);
        eprintln!();
    }
    read.map_err(|e| {
        pps_core::Error::new(
            pps_core::ErrorKind::Unavailable,
            format!("cannot read stdin: {e}"),
        )
    })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `pps history`: a line per event, newest first, or JSON lines.
pub fn history(app: &App, filter: &pps::history::HistoryFilter, json: bool) -> Result<ExitCode> {
    let lines = pps::history::history(app, filter)?;
    let mut out = std::io::stdout().lock();
    let text = if json {
        lines
            .iter()
            .map(|h| pps::history::to_json(h).to_string() + "\n")
            .collect()
    } else {
        crate::render::history(&lines, filter.limit.unwrap_or(100))
    };
    if let Err(e) = std::io::Write::write_all(&mut out, text.as_bytes()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(pps_core::Error::new(
            pps_core::ErrorKind::Unavailable,
            format!("cannot write to stdout: {e}"),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `pps forget SOURCE:PATH`: drops stored state at and under that path; exit 1 when
/// nothing was stored there (a typo in the path, most likely).
pub fn forget(app: &App, spec: &str) -> Result<ExitCode> {
    // A path no watch holds has nothing stored either: exit 1, as the README says, not
    // the 2 of a usage error (a path that is not a path at all stays a usage error).
    if let Err(e) = app.resolve(spec) {
        let path = match spec.split_once(':') {
            Some((s, p)) if app.config.sources.contains_key(s) => p,
            _ => spec,
        };
        if pps_core::path::normalize(path).is_ok() {
            eprintln!("nothing stored under {spec}: {}", e.message());
            return Ok(ExitCode::from(1));
        }
    }
    let (n, at) = pps::outbox::forget(app, spec)?;
    if n == 0 {
        eprintln!("nothing stored under {at}");
        return Ok(ExitCode::from(1));
    }
    println!(
        "forgot {} at and under {at}",
        plural(n, "folder", "folders")
    );
    Ok(ExitCode::SUCCESS)
}

/// `pps retry [TARGET]`: queues parked and stuck scans again (of one target, or all).
pub fn retry(app: &App, target: Option<&str>) -> Result<ExitCode> {
    let (parked, stuck) = pps::outbox::retry_all(app, target)?;
    let what = match (parked, stuck) {
        (p, 0) => plural(p, "parked scan", "parked scans"),
        (0, s) => plural(s, "stuck scan", "stuck scans"),
        (p, s) => format!(
            "{} and {}",
            plural(p, "parked scan", "parked scans"),
            plural(s, "stuck scan", "stuck scans")
        ),
    };
    println!(
        "{what} queued again{}",
        target.map(|t| format!(" for {t}")).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `pps drop TARGET [PATH]`: gives up queued scans (pending and parked) of a target;
/// exit 1 when there was none.
pub fn drop_scans(app: &App, target: &str, path: Option<&str>) -> Result<ExitCode> {
    let (n, path) = pps::outbox::drop_scans(app, target, path)?;
    println!(
        "dropped {} of {target}{}",
        plural(n, "scan", "scans"),
        path.map(|p| format!(" at and under {p}"))
            .unwrap_or_default()
    );
    Ok(if n == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `pps walk SOURCE:PATH`: a read-only traversal that reports the tree and its cost;
/// a live progress line on a terminal, Ctrl-C prints the figures so far.
pub async fn walk(config: &Path, args: &pps::walk::WalkArgs, json: bool) -> Result<ExitCode> {
    let tty = !json && std::io::stderr().is_terminal();
    let progress: Option<pps::walk::ProgressFn> = if tty {
        Some(std::sync::Arc::new(|p: &pps::walk::WalkProgress| {
            let mut err = std::io::stderr().lock();
            if p.done {
                let _ = writeln!(err);
                return;
            }
            let secs = p.elapsed.as_secs_f64().max(1e-9);
            let _ = write!(
                err,
                "\r\x1b[2Kwalk: {} folders, {} files, {:.1} listings/s, {} waiting",
                p.folders,
                p.files,
                p.folders as f64 / secs,
                p.waiting
            );
            let _ = err.flush();
        }))
    } else {
        None
    };
    let report = pps::walk::walk_root(config, args, progress, shutdown_signal()).await?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", render::walk(&report));
    }
    let _ = std::io::stdout().flush();
    Ok(if report.failed.is_empty() && !report.interrupted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `pps notify test NAME`: a test message through one notifier, now.
pub async fn notify_test(app: &App, name: &str) -> Result<ExitCode> {
    match pps::notify::send_test(app, name).await {
        Ok(()) => {
            println!("test message sent through {name}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == pps_core::ErrorKind::ConfigInvalid => Err(e),
        Err(e) => {
            eprintln!(
                "{name}: the test message was not delivered: {}",
                e.message()
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// `pps notify retry [NAME]`: unparks notifiers; the service sends what waited.
pub fn notify_retry(app: &App, name: Option<&str>) -> Result<ExitCode> {
    if let Some(n) = name
        && !app.config.notifiers.contains_key(n)
    {
        return Err(pps_core::Error::new(
            pps_core::ErrorKind::ConfigInvalid,
            "no notifier of that name is configured",
        )
        .permanent()
        .with("notifier", n));
    }
    let n = pps::notify::retry(app, name)?;
    println!(
        "{} delivering again",
        plural(n, "parked notifier", "parked notifiers")
    );
    Ok(ExitCode::SUCCESS)
}
