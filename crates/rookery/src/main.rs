//! `rookery`: the server binary and its operator commands.
//!
//! Thin on purpose: argument parsing, logging set-up and wiring; the work lives in the
//! library crates.

mod admin;
mod serve;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "rookery",
    version,
    about = "A ZooKeeper-compatible coordination service"
)]
struct Cli {
    /// Log line format (filter with RUST_LOG, e.g. RUST_LOG=rookery=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
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

fn init_logging(format: LogFormat, default_directive: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_logging(cli.log_format, "info");
            match serve::run(&config) {
                Ok(code) => code,
                Err(err) => {
                    eprintln!("rookery: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { config } => {
            // Status output is for people and scripts; logs only when asked for.
            init_logging(cli.log_format, "warn");
            status::run(config)
        }
        Command::Admin(args) => {
            init_logging(cli.log_format, "warn");
            admin::run(args)
        }
    }
}
