//! The `pps` command line: argument parsing, logging, dispatch. The binary's `main` is
//! [`main`] here, so other crates (the end-to-end tests) can build the very same
//! binary.
//!
//! This is the only place that prints errors and picks exit codes: 0 when all went
//! well, 1 when a folder or a target failed, 2 on a usage or config error.

use crate::commands;
use clap::{Args, Parser, Subcommand, ValueEnum};
use pps::{Access, App, Config};
use pps_core::duration;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "pps",
    version = env!("PPS_VERSION_LONG"),
    about = "Partial path scanner: rescan only the folders that changed"
)]
struct Cli {
    /// The config file (default: $PPS_CONFIG, else ./pps.toml).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    quiet: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented pps.toml (never overwrites).
    Init,
    /// Validate the config, reach every source and target, show where each watch's scans land.
    Check,
    /// Record the baseline of watches (all when none is named), with progress.
    Index {
        /// Watches as SOURCE:PATH.
        watches: Vec<String>,
    },
    /// One pass over every watch (the folders due now), deliver, and exit (for cron).
    Once {
        #[command(flatten)]
        watch: WatchArgs,
        /// List every folder, regardless of its schedule.
        #[arg(long)]
        full: bool,
        /// List and compare as usual, print what each target would be sent (one JSON
        /// line each, with its libraries), send nothing and change no state (the pass
        /// works on a copy of the store).
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the service: passes on schedule, delivery with retries, until SIGINT/SIGTERM.
    ///
    /// SIGHUP re-reads the config file and applies it without a restart (a config
    /// that does not validate is refused and the running one stays).
    Run(RunArgs),
    /// Show a folder's live entries beside the stored state.
    Ls {
        /// SOURCE:PATH
        path: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Scan a path now, by hand, through the outbox.
    Scan {
        /// SOURCE:PATH
        path: String,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Folders tracked, the outbox per target, failed and parked scans with reasons.
    Status {
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// What happened, newest first: changes found and what each target was sent.
    History {
        /// Only this target's deliveries.
        #[arg(long)]
        target: Option<String>,
        /// Only lines whose path contains this text.
        #[arg(long)]
        path: Option<String>,
        /// Only the last DURATION (90s, 10m, 2h, 1d).
        #[arg(long, value_parser = duration::parse)]
        since: Option<Duration>,
        /// Only these events: change, sent, retried, parked, dropped, indexed, removed, stuck,
        /// source_down, source_up, throttled, notified (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        event: Vec<String>,
        /// At most this many lines.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Lines older than this id (the next page: the last id shown).
        #[arg(long)]
        before: Option<i64>,
        /// One JSON object per line on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Hash a password for the web UI (asked twice at a terminal, else the first line of
    /// stdin) and print the hash for
    /// `[ui] password_hash` or PPS_UI_PASSWORD_HASH.
    Passwd,
    /// Drop stored state under a path (the next pass records it afresh).
    Forget {
        /// SOURCE:PATH
        path: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Queue parked and stuck scans again (of one target, or all), e.g. after adding a library.
    Retry {
        /// Only this target's parked scans.
        target: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Notifiers: send a test message, or let a parked one deliver again.
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Give up queued scans (pending and parked) of a target, all or under a path.
    Drop {
        /// The target.
        target: String,
        /// Only scans at and under this source path (SOURCE:PATH or PATH).
        path: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Traverse a tree read-only and report its size and what listing it costs.
    Walk {
        /// SOURCE:PATH (a source of the config file, or local:PATH).
        root: String,
        /// Listings in flight at once (default: the source's concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Override the source's max_queries_per_second (clouddrive2).
        #[arg(long)]
        max_queries_per_second: Option<f64>,
        /// Do not list below this depth (the root is 0).
        #[arg(long)]
        max_depth: Option<usize>,
        /// Base interval for the calls-per-day estimate (default: the `interval` of the
        /// watch holding the root, else 10m).
        #[arg(long, value_parser = duration::parse)]
        interval: Option<Duration>,
        /// Ceiling for the calls-per-day estimate (default: the watch's `max_interval`,
        /// else 24h).
        #[arg(long, value_parser = duration::parse)]
        max_interval: Option<Duration>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Do not wait for the call budget this walk shares with `pps run` and every
        /// other pps process of the config's store (its calls still count).
        #[arg(long)]
        force: bool,
    },
    /// Ask a running service's /health (for container health checks; exit 0 when healthy).
    Health {
        /// host:port of the service (default: `[server] listen` of the config, else 127.0.0.1:8090).
        addr: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or write one page per subcommand with --dir.
    Man {
        /// Write pps.1 and pps-SUBCOMMAND.1 here (e.g. /usr/local/share/man/man1).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Watch a local folder without a config file (repeatable); scans are printed to
    /// stdout as JSON lines.
    #[arg(long = "watch", value_name = "DIR")]
    watch: Vec<PathBuf>,
    /// The state file (SQLite) in --watch mode.
    #[arg(long, value_name = "FILE", default_value = "pps.db")]
    store: PathBuf,
    /// In --watch mode: exclude names matching a glob (`*.part`, `.*`, `@eaDir`) or an
    /// absolute path; repeatable.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
}

/// `--store FILE` for the commands that read a store: without a config file (the
/// store `pps run --watch DIR` made), its watches are the ones recorded in it.
#[derive(Debug, Args)]
struct StoreArg {
    /// Use this store (as `--watch DIR` mode made it) instead of a config file.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    watch: WatchArgs,
    /// In --watch mode: time between passes (90s, 10m, 2h, 1d).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse_interval)]
    interval: Duration,
    /// Serve health, metrics and triggers on this address (overrides `[server] listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// When the config file does not exist, write the commented template there and
    /// exit with a message to edit it (a container's first start).
    #[arg(long)]
    init_if_missing: bool,
    /// List and compare as usual, print what each target would be sent (one JSON line
    /// each, with its libraries), send nothing and change no state (the service works
    /// on a copy of the store; no HTTP surface, no reload).
    #[arg(long)]
    dry_run: bool,
}

fn init_logs(verbose: u8, quiet: u8, format: LogFormat) {
    let level = match (i16::from(verbose) - i16::from(quiet)).clamp(-2, 2) {
        -2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // pps's own crates at the level asked for; libraries (h2, hyper, tonic) at warn, so
    // `-v` shows what pps does rather than HTTP/2 frames. PPS_LOG takes a full filter.
    let ours = [
        "pps_cli",
        "pps_core",
        "pps_clouddrive",
        "pps_mediaserver",
        "pps",
    ]
    .map(|c| format!("{c}={level}"))
    .join(",");
    let deps = if level == "error" { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{deps},{ours}")));
    // Local time with its offset (TZ, else /etc/localtime, else UTC), as users of a
    // container set TZ for: `2026-12-03T19:40:01.123456+01:00`, never ambiguous.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(tracing_subscriber::fmt::time::ChronoLocal::new(
            "%Y-%m-%dT%H:%M:%S%.6f%:z".to_owned(),
        ))
        .with_writer(std::io::stderr);
    // The web UI's log page reads what stderr shows from the same events.
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    match format {
        LogFormat::Json => builder.json().finish().with(pps::logs::layer()).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .fmt_fields(pps::logs::text_fields())
            .finish()
            .with(pps::logs::layer())
            .init(),
    }
}

fn config_path(cli: Option<PathBuf>) -> PathBuf {
    cli.or_else(|| std::env::var_os("PPS_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("pps.toml"))
}

fn load(cli: Option<PathBuf>, access: Access) -> pps_core::Result<App> {
    App::build_for(Config::load(&config_path(cli))?, access)
}

/// The app of a reading command: from `--store FILE` alone when given, else from the
/// config file.
fn load_or_store(cli: Option<PathBuf>, store: StoreArg, access: Access) -> pps_core::Result<App> {
    match store.store {
        Some(path) => {
            // A store without a config file is a `--watch` store: its passes list
            // every folder, which `pps status` says instead of a schedule.
            let mut app = App::build_for(Config::from_store(path)?, access)?;
            app.full_passes = true;
            Ok(app)
        }
        None => load(cli, access),
    }
}

fn load_or_watch(
    cli: Option<PathBuf>,
    w: WatchArgs,
    interval: Duration,
    access: Access,
) -> pps_core::Result<App> {
    if w.watch.is_empty() {
        load(cli, access)
    } else {
        let config = Config::for_folders(&w.watch, w.store, &w.exclude, interval)?;
        let mut app = App::build_for(config, access)?;
        app.full_passes = true;
        Ok(app)
    }
}

/// `--listen ADDR` over `[server] listen`: the triggers need a token, from the config
/// or `PPS_SERVER_TOKEN`.
fn with_listen(config: &mut Config, listen: Option<std::net::SocketAddr>) -> pps_core::Result<()> {
    let Some(addr) = listen else {
        return Ok(());
    };
    if config.server.token.is_none() {
        let env = pps::config::process_env()?;
        let token = env
            .into_iter()
            .find(|(k, _)| k == "PPS_SERVER_TOKEN")
            .map(|(_, v)| v);
        config.server.token = match token {
            Some(t) if t.trim().is_empty() => {
                return Err(pps_core::Error::new(
                    pps_core::ErrorKind::ConfigInvalid,
                    "PPS_SERVER_TOKEN is blank; set a token (a long random string)",
                )
                .with("env", "PPS_SERVER_TOKEN"));
            }
            Some(t) if t.trim() != t => {
                return Err(pps_core::Error::new(
                    pps_core::ErrorKind::ConfigInvalid,
                    "PPS_SERVER_TOKEN has spaces or line breaks before or after it; remove them",
                )
                .with("env", "PPS_SERVER_TOKEN"));
            }
            Some(t) => Some(pps_core::Secret::new(t)),
            None => None,
        };
    }
    if config.server.token.is_none() {
        return Err(pps_core::Error::new(
            pps_core::ErrorKind::ConfigInvalid,
            "--listen needs a token for the triggers: set [server] token or PPS_SERVER_TOKEN",
        )
        .with("option", "--listen"));
    }
    config.server.listen = Some(addr);
    Ok(())
}

async fn dispatch(cli: Cli) -> pps_core::Result<ExitCode> {
    let config = cli.config;
    match cli.command {
        Command::Init => commands::init(&config_path(config)),
        Command::Check => {
            let config = Config::load(&config_path(config))?;
            // Checking opens no store that is not there yet.
            let app = if config.store.exists() {
                App::build_for(config, Access::Shared)?
            } else {
                let memory = pps_core::sqlite::SqliteStore::open_in_memory()?;
                App::build_with_store(config, std::sync::Arc::new(memory))?
            };
            commands::check(&app).await
        }
        Command::Index { watches } => {
            commands::index(&load(config, Access::Writer("pps index"))?, &watches).await
        }
        Command::Once {
            watch: w,
            full,
            dry_run,
        } => {
            let access = if dry_run {
                Access::DryRun
            } else {
                Access::Writer("pps once")
            };
            let app = load_or_watch(config, w, Duration::from_secs(600), access)?;
            commands::once(&app, full).await
        }
        Command::Run(r) => {
            let file = config_path(config.clone());
            if r.init_if_missing && r.watch.watch.is_empty() && !file.exists() {
                return commands::first_start(&file);
            }
            let watch_mode = !r.watch.watch.is_empty();
            let dry_run = r.dry_run;
            let access = if dry_run {
                Access::DryRun
            } else {
                Access::Writer("pps run")
            };
            let mut app = load_or_watch(config, r.watch, r.interval, access)?;
            let listen = r.listen;
            if dry_run {
                // A dry run serves no UI (its edits would be real) and no triggers.
                app.config.server.listen = None;
                tracing::info!(
                    "dry run: nothing is sent and the store is not changed (the service works on a copy of it)"
                );
                return commands::run(app, None::<fn() -> pps_core::Result<Config>>).await;
            }
            with_listen(&mut app.config, listen)?;
            // SIGHUP re-reads the file with the same command-line overrides; in
            // --watch mode there is no file to re-read.
            let reload = (!watch_mode).then_some(move || -> pps_core::Result<Config> {
                let mut c = Config::load(&file)?;
                with_listen(&mut c, listen)?;
                Ok(c)
            });
            commands::run(app, reload).await
        }
        Command::Ls { path, store } => {
            commands::ls(&load_or_store(config, store, Access::Existing)?, &path).await
        }
        Command::Scan { path, target } => {
            commands::scan(&load(config, Access::Shared)?, &path, target.as_deref()).await
        }
        Command::Status { json, store } => {
            commands::status(&load_or_store(config, store, Access::Existing)?, json)
        }
        Command::History {
            target,
            path,
            since,
            event,
            limit,
            before,
            json,
            store,
        } => {
            let filter = pps::history::HistoryFilter {
                target,
                path,
                since,
                events: event,
                before,
                limit: Some(limit),
            };
            commands::history(
                &load_or_store(config, store, Access::Existing)?,
                &filter,
                json,
            )
        }
        Command::Passwd => commands::passwd(),
        Command::Forget { path, store } => {
            commands::forget(&load_or_store(config, store, Access::Existing)?, &path)
        }
        Command::Notify { action } => match action {
            NotifyAction::Test { name } => {
                commands::notify_test(&load(config, Access::Existing)?, &name).await
            }
            NotifyAction::Retry { name } => {
                commands::notify_retry(&load(config, Access::Existing)?, name.as_deref())
            }
        },
        Command::Retry { target, store } => commands::retry(
            &load_or_store(config, store, Access::Existing)?,
            target.as_deref(),
        ),
        Command::Drop {
            target,
            path,
            store,
        } => commands::drop_scans(
            &load_or_store(config, store, Access::Existing)?,
            &target,
            path.as_deref(),
        ),
        Command::Walk {
            root,
            concurrency,
            max_queries_per_second,
            max_depth,
            interval,
            max_interval,
            json,
            force,
        } => {
            let args = pps::walk::WalkArgs {
                root,
                concurrency,
                max_queries_per_second,
                max_depth,
                interval,
                max_interval,
                force,
            };
            commands::walk(&config_path(config), &args, json).await
        }
        Command::Health { addr } => commands::health(addr, &config_path(config)),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "pps", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            commands::man(<Cli as clap::CommandFactory>::command(), dir.as_deref())
        }
    }
}

/// Runs the `pps` command with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // PUID/PGID/UMASK before anything else: no thread, file or log exists yet.
    let applied = match crate::user::Settings::from_env().and_then(|s| {
        let dirs = crate::user::folders(
            &config_path(cli.config.clone()),
            std::env::var_os("PPS_STORE_PATH"),
        );
        crate::user::apply(&s, &dirs)
    }) {
        Ok(a) => a,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(commands::exit_code(&err));
        }
    };
    init_logs(cli.verbose, cli.quiet, cli.log_format);
    if let Some((uid, gid)) = applied.dropped_to {
        tracing::info!(
            "running as PUID={uid} PGID={gid} (started as root; {} files and folders given to it)",
            applied.chowned
        );
    } else if let Some(why) = &applied.ignored {
        tracing::warn!("{why}");
    } else if applied.root_without_puid && matches!(cli.command, Command::Run(_)) {
        tracing::warn!(
            "running as root: pps needs no root rights; set PUID and PGID to run as a user of your own"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(commands::exit_code(&err))
        }
    }
}

/// `pps notify` actions.
#[derive(Debug, Subcommand)]
pub enum NotifyAction {
    /// Send a test message through a notifier now (exit 1 when it fails, saying why).
    Test {
        /// The notifier's name (`[notifiers.NAME]`).
        name: String,
    },
    /// Let a parked notifier deliver again, from where it stopped (or every one).
    Retry {
        /// Only this notifier.
        name: Option<String>,
    },
}
