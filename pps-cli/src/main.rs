//! `pps`: keeps Plex, Emby and Jellyfin current when media lands on a cloud drive.
//!
//! This binary is the only place that prints errors and picks exit codes: 0 when all
//! went well, 1 when a folder or a target failed, 2 on a usage or config error.

mod duration;
mod run;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "pps",
    version,
    about = "Partial path scanner: rescan only the folders that changed"
)]
struct Cli {
    /// More log output (-v debug, -vv trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    quiet: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: a pass every interval, delivery as changes are found.
    Run(RunArgs),
    /// One pass over every watch, deliver, and exit (for cron).
    Once(OnceArgs),
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// A local folder to watch; repeat for several. Scans are printed to stdout as
    /// JSON lines.
    #[arg(long = "watch", value_name = "DIR", required = true)]
    watch: Vec<PathBuf>,
    /// The state file (SQLite).
    #[arg(long, value_name = "FILE", default_value = "pps.db")]
    store: PathBuf,
    /// Exclude names matching a glob (`*.part`, `.*`, `@eaDir`) or an absolute path;
    /// repeat for several.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    watch: WatchArgs,
    /// Time between passes: 90s, 10m, 2h, 1d.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    interval: Duration,
}

#[derive(Debug, Args)]
struct OnceArgs {
    #[command(flatten)]
    watch: WatchArgs,
}

fn init_logs(verbose: u8, quiet: u8) {
    let level = match (i16::from(verbose) - i16::from(quiet)).clamp(-2, 2) {
        -2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose, cli.quiet);
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args.watch.into(), args.interval).await,
            Command::Once(args) => run::once(args.watch.into()).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(run::exit_code(&err))
        }
    }
}

impl From<WatchArgs> for run::Settings {
    fn from(a: WatchArgs) -> Self {
        run::Settings {
            watches: a.watch,
            store: a.store,
            excludes: a.exclude,
        }
    }
}
