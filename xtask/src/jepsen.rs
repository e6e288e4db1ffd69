//! `cargo xtask jepsen`: issue 6's Jepsen-style test. Builds `rookery` and
//! `rookery-jepsen` (release), then runs rookery-jepsen with the harness pointed at
//! that binary (`ROOKERY_BIN`); reports go under <target>/jepsen/. The exit status is
//! rookery-jepsen's: non-zero on any anomaly.
//!
//! `--inject-bug NAME` runs servers built with the `inject-bugs` feature and that bug
//! switched on (`ROOKERY_INJECT_BUG`), to see the harness catch it. CI runs a bounded
//! set ([`ci_runs`]): each workload under a different nemesis against Rookery and
//! against Apache ZooKeeper, and each injected bug, which must be reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args)]
pub(crate) struct JepsenArgs {
    /// Run servers with this injected bug: ack-before-durable, leader-alone, seq-reuse.
    #[arg(long)]
    inject_bug: Option<String>,
    /// Build and run debug binaries (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
    /// Passed on to rookery-jepsen: --target rookery|zookeeper --workload LIST
    /// --nemesis LIST --time SECS --seed N ... (`cargo xtask jepsen -- --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// The binaries to run: rookery-jepsen and the server, built in `profile`.
struct Binaries {
    jepsen: PathBuf,
    rookery: PathBuf,
}

/// Builds rookery-jepsen and the server, the server with the injected bugs when asked.
/// The bug build is copied aside (`rookery-inject-bugs`) and the normal one rebuilt, so
/// that `rookery` in the target directory is never the buggy one.
fn build(root: &Path, release: bool, bugs: bool) -> Result<Binaries> {
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    let dir = crate::target_dir(root).join(if release { "release" } else { "debug" });
    let mut rookery = dir.join("rookery");
    if bugs {
        crate::run(
            "build the server with injected bugs",
            crate::cargo().arg("build").args(profile).args([
                "-p",
                "rookery",
                "--features",
                "inject-bugs",
                "--locked",
            ]),
        )?;
        let aside = dir.join("rookery-inject-bugs");
        std::fs::copy(&rookery, &aside)
            .with_context(|| format!("copying {} aside", rookery.display()))?;
        rookery = aside;
    }
    crate::run(
        "build the server and rookery-jepsen",
        crate::cargo().arg("build").args(profile).args([
            "-p",
            "rookery",
            "-p",
            "rookery-jepsen",
            "--locked",
        ]),
    )?;
    Ok(Binaries {
        jepsen: dir.join("rookery-jepsen"),
        rookery,
    })
}

/// Runs rookery-jepsen once; its exit code (0 valid, 1 anomaly, 2 unknown).
fn run_once(root: &Path, bins: &Binaries, bug: Option<&str>, args: &[&str]) -> Result<i32> {
    let mut cmd = Command::new(&bins.jepsen);
    cmd.args(args)
        .arg("--out")
        .arg(crate::target_dir(root).join("jepsen"))
        .env("ROOKERY_BIN", &bins.rookery)
        .current_dir(root);
    match bug {
        Some(b) => cmd.env("ROOKERY_INJECT_BUG", b),
        None => cmd.env_remove("ROOKERY_INJECT_BUG"),
    };
    println!(
        "==> jepsen {}{args:?}",
        bug.map(|b| format!("[{b}] ")).unwrap_or_default()
    );
    let status = cmd.status().context("starting rookery-jepsen")?;
    Ok(status.code().unwrap_or(-1))
}

pub(crate) fn run(root: &Path, args: &JepsenArgs) -> Result<()> {
    let bins = build(root, !args.debug, args.inject_bug.is_some())?;
    let argv: Vec<&str> = args.args.iter().map(String::as_str).collect();
    let code = run_once(root, &bins, args.inject_bug.as_deref(), &argv)?;
    if code != 0 {
        bail!("jepsen: exit status {code} (see the report directory printed above)");
    }
    Ok(())
}

/// Seconds per CI run: bounded so the set takes a few minutes; longer runs are
/// `cargo xtask jepsen -- --time 600`.
const CI_TIME: &str = "30";

/// Workloads and nemeses of the CI set, each pair once per target: (workloads,
/// Rookery's nemesis, ZooKeeper's nemesis). ZooKeeper's leave out the silenced leader
/// and kill-all: ZooKeeper 3.8.0 diverged after each in 600 s runs (docs/testing.md),
/// and CI's ZooKeeper runs are there to prove the harness, not to chase its bugs.
const CI_RUNS: [(&str, &str, &str); 3] = [
    ("register,set", "kill", "kill-random,kill-leader"),
    (
        "ids,queue",
        "partition",
        "isolate-leader,random-halves,bridge,one-way",
    ),
    ("lock,sessions", "pause", "pause"),
];

/// Each injected bug with the run that must report it.
const CI_BUGS: [(&str, &str, &str); 3] = [
    ("ack-before-durable", "register,set", "kill-all"),
    ("leader-alone", "register,set", "isolate-leader"),
    ("seq-reuse", "ids,queue", "kill-leader"),
];

/// The bounded set `cargo xtask ci` runs (debug builds, random seeds that are printed).
pub(crate) fn ci_runs(root: &Path) -> Result<()> {
    let bins = build(root, false, true)?;
    let mut targets = vec!["rookery"];
    if Path::new("/usr/share/java/zookeeper.jar").is_file() {
        targets.push("zookeeper");
    } else {
        println!("==> jepsen: skipping Apache ZooKeeper: Debian's zookeeper is not installed");
    }
    for target in targets {
        for (workload, ours, theirs) in CI_RUNS {
            let nemesis = if target == "rookery" { ours } else { theirs };
            let args = [
                "--target",
                target,
                "--workload",
                workload,
                "--nemesis",
                nemesis,
                "--time",
                CI_TIME,
            ];
            match run_once(root, &bins, None, &args)? {
                0 => {}
                code => bail!("jepsen {target} {workload} under {nemesis}: exit status {code}"),
            }
        }
    }
    for (bug, workload, nemesis) in CI_BUGS {
        let args = [
            "--workload",
            workload,
            "--nemesis",
            nemesis,
            "--time",
            CI_TIME,
            "--interval",
            "4",
        ];
        match run_once(root, &bins, Some(bug), &args)? {
            1 => println!("==> jepsen caught the injected bug {bug}"),
            code => bail!(
                "jepsen did not report the injected bug {bug} (exit status {code}; 1 = anomaly)"
            ),
        }
    }
    Ok(())
}
