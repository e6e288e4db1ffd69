//! Runs simulation seeds: `rookery-sim [--seeds N] [--from S] [--seed S] [--steps K]
//! [--trace] [--reconfig] [--strict | --check-stalls --unsynced-snapshots]`. `cargo xtask sim` builds it in release mode and times it. Exits 1 when a
//! seed fails, after printing what broke and the command that replays it.

use std::process::ExitCode;

use rookery_sim::{SimOptions, Strict, run};

struct Args {
    seeds: u64,
    from: u64,
    steps: Option<u64>,
    trace: bool,
    verbose: bool,
    strict: Strict,
    reconfig: bool,
    bugs: rookery_zab::peer::InjectedBugs,
}

const USAGE: &str = "usage: rookery-sim [--seeds N] [--from S] [--seed S] [--steps K] [--trace] [--verbose] [--reconfig]\n       [--strict | --check-stalls --unsynced-snapshots]\n       [--inject ack-before-sync|commit-without-quorum] (with --features inject-bugs)";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: 100,
        from: 0,
        steps: None,
        trace: false,
        verbose: false,
        strict: Strict::default(),
        reconfig: false,
        bugs: rookery_zab::peer::InjectedBugs::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number\n{USAGE}"))
        };
        match flag.as_str() {
            "--seeds" => args.seeds = number("--seeds")?,
            "--from" => args.from = number("--from")?,
            "--seed" => {
                args.from = number("--seed")?;
                args.seeds = 1;
            }
            "--steps" => args.steps = Some(number("--steps")?),
            "--trace" => args.trace = true,
            "--verbose" => args.verbose = true,
            "--strict" => args.strict = Strict::all(),
            "--check-stalls" => args.strict.stalls = true,
            "--unsynced-snapshots" => args.strict.unsynced_snapshots = true,
            "--reconfig" => args.reconfig = true,
            // Only honoured when built with the `inject-bugs` feature.
            "--inject" => match it.next().as_deref() {
                Some("ack-before-sync") => args.bugs.ack_before_sync = true,
                Some("commit-without-quorum") => args.bugs.commit_without_quorum = true,
                _ => {
                    return Err(format!(
                        "--inject needs ack-before-sync or commit-without-quorum\n{USAGE}"
                    ));
                }
            },
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut opts = SimOptions {
        record_trace: args.trace,
        strict: args.strict,
        bugs: args.bugs,
        reconfig: args.reconfig,
        ..SimOptions::default()
    };
    if let Some(steps) = args.steps {
        opts.fault_steps = steps;
    }
    let mut failed = Vec::new();
    let (mut steps, mut acked, mut crashes) = (0, 0, 0);
    for seed in args.from..args.from.saturating_add(args.seeds) {
        let report = run(seed, &opts);
        steps += report.steps;
        acked += report.stats.writes_acked;
        crashes += report.stats.crashes;
        for line in &report.trace {
            println!("{line}");
        }
        if args.verbose || args.seeds == 1 {
            println!(
                "seed {seed}: {} steps, {} ms simulated, trace {:016x}, {:?}\n  {:?}",
                report.steps, report.time_ms, report.trace_hash, report.scenario, report.stats
            );
        }
        if let Some(f) = report.failure {
            println!("{f}\n");
            failed.push(seed);
        }
    }
    println!(
        "rookery-sim: {} seeds from {}, {} failed; {steps} steps, {acked} acknowledged writes, {crashes} crashes",
        args.seeds,
        args.from,
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}
