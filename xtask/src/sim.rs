//! `cargo xtask sim`: runs seeds of the deterministic simulator (`rookery-sim`) in
//! release mode and times them. A failing seed prints what broke and the command that
//! replays it; this then exits non-zero.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;

#[derive(Args)]
pub(crate) struct SimArgs {
    /// How many consecutive seeds to run (from --from).
    #[arg(long, default_value_t = 1_000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Run (replay) this one seed, printing its scenario and counters.
    #[arg(long, conflicts_with_all = ["seeds", "from"])]
    seed: Option<u64>,
    /// Events in each run's fault phase (the heal phase follows).
    #[arg(long)]
    steps: Option<u64>,
    /// All of the checks below for the core's known gaps.
    #[arg(long)]
    strict: bool,
    /// Check that after the heal no proposal waits for a later write to commit.
    #[arg(long)]
    check_stalls: bool,
    /// Let hosts snapshot a tree that is ahead of their synced log.
    #[arg(long)]
    unsynced_snapshots: bool,
    /// The leader changes the membership now and then, under the same faults.
    #[arg(long)]
    reconfig: bool,
    /// Print every event of the run (with --seed).
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Switch on a known bug (`ack-before-sync`, `commit-without-quorum`) to see the
    /// checks catch it; builds with the inject-bugs feature.
    #[arg(long)]
    inject: Option<String>,
}

pub(crate) fn run(args: &SimArgs) -> Result<()> {
    let mut cmd = crate::cargo();
    cmd.args(["run", "--quiet", "--release", "-p", "rookery-sim"]);
    if args.inject.is_some() {
        cmd.args(["--features", "inject-bugs"]);
    }
    cmd.args(["--bin", "rookery-sim", "--"]);
    let seeds = match args.seed {
        Some(seed) => {
            cmd.args(["--seed", &seed.to_string()]);
            1
        }
        None => {
            cmd.args(["--seeds", &args.seeds.to_string()]);
            cmd.args(["--from", &args.from.to_string()]);
            args.seeds
        }
    };
    if let Some(steps) = args.steps {
        cmd.args(["--steps", &steps.to_string()]);
    }
    for (on, flag) in [
        (args.strict, "--strict"),
        (args.check_stalls, "--check-stalls"),
        (args.unsynced_snapshots, "--unsynced-snapshots"),
        (args.reconfig, "--reconfig"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    if args.trace {
        cmd.arg("--trace");
    }
    if let Some(bug) = &args.inject {
        cmd.args(["--inject", bug]);
    }
    let started = Instant::now();
    let result = crate::run("sim", &mut cmd);
    let secs = started.elapsed().as_secs_f64();
    // Includes the release build when it is not up to date.
    println!(
        "sim: {seeds} seed(s) in {secs:.1} s ({:.1} ms per seed)",
        secs * 1_000.0 / seeds.max(1) as f64
    );
    if result.is_err() {
        bail!("sim: a seed failed; its replay command is printed above");
    }
    Ok(())
}
