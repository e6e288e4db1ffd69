//! The checks catch real bugs: with a known bug switched on in every peer, some seed
//! within a small range must fail. Run with `cargo test -p rookery-sim --features
//! inject-bugs` (as `cargo xtask ci` does).
#![cfg(feature = "inject-bugs")]

use rookery_sim::{SimOptions, run};
use rookery_zab::peer::InjectedBugs;

/// A bug must be caught within this many seeds.
const MAX_SEEDS: u64 = 300;

fn first_failure(bugs: InjectedBugs) -> String {
    let opts = SimOptions {
        bugs,
        ..SimOptions::default()
    };
    for seed in 0..MAX_SEEDS {
        if let Some(f) = run(seed, &opts).failure {
            // Only a failure the bug causes counts: the seed must pass without it.
            if run(seed, &SimOptions::default()).failure.is_none() {
                return format!("seed {seed}: {} ({})", f.invariant, f.detail);
            }
        }
    }
    panic!("{bugs:?} went unnoticed for {MAX_SEEDS} seeds");
}

#[test]
fn acking_before_the_log_is_synced_is_caught() {
    let caught = first_failure(InjectedBugs {
        ack_before_sync: true,
        ..InjectedBugs::default()
    });
    println!("ack_before_sync caught at {caught}");
}

#[test]
fn committing_without_a_quorum_is_caught() {
    let caught = first_failure(InjectedBugs {
        commit_without_quorum: true,
        ..InjectedBugs::default()
    });
    println!("commit_without_quorum caught at {caught}");
}
