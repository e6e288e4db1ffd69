//! The simulator as CI runs it: a bounded range of seeds must pass (with and without
//! membership changes), and a seed must replay exactly. More seeds, in release mode: `cargo xtask sim --seeds 2000`.

use std::time::Instant;

use rookery_sim::{SimOptions, run};

/// Seeds a plain `cargo test` runs (debug build): a few seconds' worth.
const CI_SEEDS: u64 = 300;

/// Seeds that once failed because of a bug in the core, with the invariant they broke
/// and the bug: each must keep passing. (Seeds move when the simulator changes how it
/// draws from its PRNG; the bugs then need new seeds from `cargo xtask sim`.)
const FIXED_BUGS: &[(u64, &str, &str)] = &[
    (
        1260,
        "PrefixConsistency",
        "the leader INFORMed an observer from a log purged past the observer's sync point, \
         naming the wrong previous zxid (now: the observer syncs again)",
    ),
    (
        12706,
        "PrimaryIntegrity",
        "a stale duplicate TRUNC from an earlier handshake cut entries the learner had \
         ACKed to the same leader (now ignored)",
    ),
    (
        7918,
        "PrimaryIntegrity",
        "a follower took an epoch roll's epoch as current at NEWEPOCH; the roll never \
         finished, another leader was established in that epoch number without the \
         rolled history, and the follower's vote then beat it (now: current with the \
         epoch's first Txn, sent after a quorum promised)",
    ),
    (
        27108,
        "PrefixConsistency",
        "a late PROPOSAL of an earlier handshake with the same leader was appended by \
         a synced observer, then committed by the next COMMIT (now: older than the \
         epoch held with the leader, ignored)",
    ),
    (
        2929,
        "Convergence",
        "two voters that missed each other's notifications never re-sent while a third \
         kept repeating a losing vote (now re-sends keep their own clock)",
    ),
];

/// Runs seeds `0..n` with `opts`; fails with every failure's report.
fn range_passes(what: &str, n: u64, opts: &SimOptions) -> rookery_sim::Stats {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut total = rookery_sim::Stats::default();
    for seed in 0..n {
        let report = run(seed, opts);
        total.writes_acked += report.stats.writes_acked;
        total.crashes += report.stats.crashes;
        total.reconfigs_proposed += report.stats.reconfigs_proposed;
        if let Some(f) = report.failure {
            failures.push(f.to_string());
        }
    }
    println!(
        "rookery-sim{what}: {n} seeds in {:.1?}: {} acknowledged writes, {} crashes, {} membership changes proposed",
        started.elapsed(),
        total.writes_acked,
        total.crashes,
        total.reconfigs_proposed
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    total
}

#[test]
fn a_range_of_seeds_keeps_every_invariant_and_converges() {
    range_passes("", CI_SEEDS, &SimOptions::default());
}

#[test]
fn membership_changes_under_faults_keep_every_invariant() {
    let opts = SimOptions {
        reconfig: true,
        ..SimOptions::default()
    };
    let total = range_passes(" --reconfig", CI_SEEDS / 2, &opts);
    assert!(total.reconfigs_proposed > 100, "{total:?}");
}

#[test]
fn seeds_of_fixed_bugs_pass() {
    for (seed, invariant, bug) in FIXED_BUGS {
        let failure = run(*seed, &SimOptions::default()).failure;
        assert!(
            failure.is_none(),
            "seed {seed} breaks {invariant} again ({bug}): {failure:?}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let opts = SimOptions {
        record_trace: true,
        ..SimOptions::default()
    };
    for seed in [3, 11] {
        let a = run(seed, &opts);
        let b = run(seed, &opts);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(a.stats, b.stats, "seed {seed}");
        assert!(a.steps > 1_000, "seed {seed} ran only {} steps", a.steps);
    }
    assert_ne!(run(3, &opts).trace_hash, run(4, &opts).trace_hash);
}

#[test]
fn a_run_exercises_the_fault_and_sync_paths() {
    // Over a few seeds, every kind of fault and every sync mode happens, so a
    // change that quietly stops one (a scheduling slip) shows here.
    let mut total = rookery_sim::Stats::default();
    for seed in 0..20 {
        let s = run(seed, &SimOptions::default()).stats;
        total.crashes += s.crashes;
        total.partitions += s.partitions;
        total.messages_dropped += s.messages_dropped;
        total.messages_duplicated += s.messages_duplicated;
        total.writes_acked += s.writes_acked;
        total.diffs += s.diffs;
        total.truncs += s.truncs;
        total.snaps += s.snaps;
        total.purges += s.purges;
        total.syncs_answered += s.syncs_answered;
        total.new_epochs += s.new_epochs;
    }
    println!("{total:?}");
    for (what, n) in [
        ("crashes", total.crashes),
        ("partitions", total.partitions),
        ("dropped messages", total.messages_dropped),
        ("duplicated messages", total.messages_duplicated),
        ("acknowledged writes", total.writes_acked),
        ("DIFFs", total.diffs),
        ("TRUNCs", total.truncs),
        ("SNAPs", total.snaps),
        ("purges", total.purges),
        ("answered syncs", total.syncs_answered),
        ("epoch rolls (NEWEPOCH)", total.new_epochs),
    ] {
        assert!(n > 0, "no {what} in 20 seeds");
    }
}
