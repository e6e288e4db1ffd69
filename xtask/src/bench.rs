//! `cargo xtask bench`: issue 7's benchmark, Rookery against Apache ZooKeeper in one
//! run. Installs ZooKeeper if it is missing (as root), builds the release `rookery` and
//! `rookery-bench`, runs the matrix with the harness pointed at the release binary
//! (`ROOKERY_BIN`) and ZooKeeper's JVM given a real heap (`ROOKERY_ZK_JVM_OPTS`), and
//! says where the report is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::Args;

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// ZooKeeper's JVM heap/GC/JIT flags, replacing the test harness's small-heap,
    /// client-compiler defaults (a million znodes need the heap).
    #[arg(long, default_value = "-Xmx2g")]
    zk_jvm_opts: String,
    /// Passed on to rookery-bench: --only get,set --targets standalone --reps N
    /// --duration SECS --znodes N ... (`cargo xtask bench -- --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub(crate) fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    ensure_zookeeper()?;
    crate::run(
        "build the release binaries",
        crate::cargo().args(["build", "--release", "-p", "rookery", "-p", "rookery-bench"]),
    )?;
    let release = crate::target_dir(root).join("release");
    let started = SystemTime::now();
    crate::run(
        "bench",
        Command::new(release.join("rookery-bench"))
            .args(&args.args)
            .env("ROOKERY_BIN", release.join("rookery"))
            .env("ROOKERY_ZK_JVM_OPTS", &args.zk_jvm_opts)
            .env("RUST_LOG", "info"),
    )?;
    if let Some(dir) = newest_report(&crate::target_dir(root).join("bench"), started) {
        println!("bench: report in {}", dir.display());
    }
    Ok(())
}

/// Debian's zookeeper package, installed when missing if we are root.
fn ensure_zookeeper() -> Result<()> {
    let java = Command::new("java").arg("-version").output().is_ok();
    if Path::new(ZOOKEEPER_JAR).is_file() && java {
        return Ok(());
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .context("running id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!(
            "Apache ZooKeeper is not installed ({ZOOKEEPER_JAR} or java missing); \
             install Debian's package first: sudo apt-get install -y zookeeper"
        );
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "zookeeper"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        crate::run("apt-get update", Command::new("apt-get").arg("update"))?;
        let status = install().context("running apt-get install")?;
        if !status.success() {
            bail!("apt-get install -y zookeeper failed ({status})");
        }
    }
    Ok(())
}

/// The report directory this run wrote (the newest written since `since`).
fn newest_report(dir: &Path, since: SystemTime) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let path = e.ok()?.path();
            let modified = path.join("report.md").metadata().ok()?.modified().ok()?;
            (modified >= since).then_some((modified, path))
        })
        .max()
        .map(|(_, p)| p)
}
