//! `rookery`: the server binary and its operator commands.
//!
//! Thin on purpose: argument parsing, logging set-up and wiring; the work lives in the
//! library crates.

/// `println!` for the operator commands, whose output is often piped into `head` or
/// `grep -q`: a closed pipe ends the process quietly with success, as SIGPIPE ends C
/// tools, instead of `println!`'s panic. Any other write error exits 1 with a message.
macro_rules! outln {
    () => {
        $crate::stdout_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout_line(format_args!($($arg)*))
    };
}

mod admin;
mod logging;
mod serve;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc rather than glibc's malloc: a write allocates and frees 1 KiB buffers, which
/// glibc serves outside its thread caches (16% of the CPU under a setData load, see
/// docs/performance.md). Its 2.x line (the `v2` feature): 3.x held about 25 MiB more
/// with 1M znodes loaded, at the same throughput.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Behind [`outln!`].
fn stdout_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("rookery: writing to stdout: {e}");
            std::process::exit(1)
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "rookery",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    /// Log line format: human, or json (one object per line, for log shippers).
    /// Default: zoo.cfg's log.format for `serve`, else human.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter in RUST_LOG's syntax: a level, and levels per module, e.g.
    /// `info,rookery_server::quorum=debug`. Wins over RUST_LOG, which wins over
    /// zoo.cfg's log.level. Default: info for `serve`, warn otherwise.
    #[arg(long, global = true, value_parser = logging::parse_filter)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

impl From<LogFormat> for rookery_server::config::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Human => rookery_server::config::LogFormat::Human,
            LogFormat::Json => rookery_server::config::LogFormat::Json,
        }
    }
}

/// What the command line says about logging, for the command to combine with its
/// configuration.
#[derive(Debug, Clone)]
pub(crate) struct LogArgs {
    pub(crate) format: Option<rookery_server::config::LogFormat>,
    pub(crate) level: Option<String>,
}

impl LogArgs {
    /// For commands that read no zoo.cfg settings for themselves: their output is for
    /// people and scripts, so logs only when asked for.
    fn init_quiet(&self) {
        logging::init(
            self.format.unwrap_or_default(),
            self.level.as_deref(),
            None,
            "warn",
        );
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a server from a ZooKeeper zoo.cfg (and dataDir/myid).
    Serve {
        /// Path to zoo.cfg.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask the configured server for its mode, like `zkServer.sh status`.
    ///
    /// Without --config, reads $ZOOCFGDIR/$ZOOCFG as zkServer.sh does (ZOOCFGDIR
    /// defaulting to ../conf beside the rookery binary, ZOOCFG to zoo.cfg).
    Status {
        /// Path to zoo.cfg.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Ask a server's gRPC admin API (status, members, sessions, snapshots).
    Admin(admin::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = LogArgs {
        format: cli.log_format.map(Into::into),
        level: cli.log_level,
    };
    match cli.command {
        // Logging starts once zoo.cfg is read (it may choose the format and filter);
        // an unreadable zoo.cfg is reported on stderr below.
        Command::Serve { config } => match serve::run(&config, &log) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("rookery: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Status { config } => {
            log.init_quiet();
            status::run(config)
        }
        Command::Admin(args) => {
            log.init_quiet();
            admin::run(args)
        }
    }
}
