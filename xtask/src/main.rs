//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.

mod bench;
mod cluster;
mod golden;
mod image;
mod jepsen;
mod sim;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Rookery project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything CI runs: fmt, clippy, tidy, the whole test suite, and the client
    /// scenarios again against Apache ZooKeeper.
    Ci,
    /// Check DESIGN.md's dependency rules against `cargo metadata`.
    Tidy,
    /// A local Rookery ensemble under target/cluster/: up, status, down, kill, restart, logs.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Run seeds of the deterministic cluster simulator (release build), e.g.
    /// `--seeds 2000`, or replay one with `--seed S`.
    Sim(sim::SimArgs),
    /// Build the container image rookery:dev FROM scratch, without a registry
    /// (needs docker; `rookery` is linked statically against glibc).
    Image(image::ImageArgs),
    /// Rookery vs Apache ZooKeeper side by side (release build); report under
    /// <target>/bench/. Flags after it go to rookery-bench, e.g. `--only get,set`.
    Bench(bench::BenchArgs),
    /// Issue 6's register workload under the combined nemesis (release build); report
    /// under <target>/jepsen/, e.g. `-- --target zookeeper --time 60 --seed 7`.
    Jepsen(jepsen::JepsenArgs),
    /// Golden wire vectors from Apache ZooKeeper 3.8 (`golden record`, `golden handbuilt`).
    Golden {
        #[command(subcommand)]
        cmd: golden::GoldenCmd,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Ci => ci(),
        Cmd::Tidy => {
            let violations = tidy::check(&project_root())?;
            report_tidy(&violations)
        }
        Cmd::Golden { cmd } => golden::run(&project_root(), cmd),
        Cmd::Cluster { cmd } => cluster::run(&project_root(), cmd),
        Cmd::Sim(args) => sim::run(&args),
        Cmd::Image(args) => image::run(&project_root(), &args),
        Cmd::Bench(args) => bench::run(&project_root(), &args),
        Cmd::Jepsen(args) => jepsen::run(&project_root(), &args),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn report_tidy(violations: &[String]) -> Result<()> {
    if violations.is_empty() {
        println!("tidy: dependency rules hold");
        return Ok(());
    }
    for v in violations {
        eprintln!("tidy: {v}");
    }
    bail!("tidy: {} violation(s)", violations.len())
}

pub(crate) fn run(step: &str, cmd: &mut Command) -> Result<()> {
    println!("==> {step}: {cmd:?}");
    let status = cmd
        .current_dir(project_root())
        .status()
        .with_context(|| format!("starting {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

/// Cargo's target directory: CARGO_TARGET_DIR (relative to the workspace), else the
/// workspace's `target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci() -> Result<()> {
    run("fmt", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    report_tidy(&tidy::check(&project_root())?)?;
    run("test", cargo().args(["test", "--workspace", "--locked"]))?;
    // The simulator must still catch the core's known bugs (they compile only here).
    run(
        "simulator bug injection",
        cargo().args([
            "test",
            "-p",
            "rookery-sim",
            "--features",
            "inject-bugs",
            "--locked",
        ]),
    )?;
    // The same client scenarios against Apache ZooKeeper: this is what proves the tests.
    if Path::new("/usr/share/java/zookeeper.jar").is_file() {
        run(
            "client scenarios against Apache ZooKeeper",
            cargo()
                .args(["test", "-p", "rookery-tests", "--locked"])
                .env("ROOKERY_TEST_TARGET", "zookeeper"),
        )?;
    } else {
        println!(
            "==> skipping the scenarios against Apache ZooKeeper: Debian's zookeeper is not installed"
        );
    }
    // The Jepsen-style harness, bounded: workloads under nemeses against both systems,
    // and each injected bug, which it must report.
    jepsen::ci_runs(&project_root())?;
    println!("ci: all steps passed");
    Ok(())
}
