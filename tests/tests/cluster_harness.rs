//! The multi-process cluster harness, proven against the current target: an ensemble
//! of three voters and an observer elects one leader; after kill -9, SIGSTOP or
//! isolation of the leader the other voters elect another, and the old leader comes
//! back as a follower. Run with `ROOKERY_TEST_TARGET=zookeeper` this proves the harness
//! (and its per-link proxies) on Apache ZooKeeper; against a Rookery that refuses
//! ensembles the tests print why and pass.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rookery_tests::{CLUSTER_WAIT, Cluster, ClusterOptions, start_cluster_if_available};

/// One ensemble at a time: four JVMs per test are plenty for a two-core machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn start(proxied: bool) -> Option<Cluster> {
    start_cluster_if_available(ClusterOptions {
        voters: 3,
        observers: 1,
        proxied,
        ..ClusterOptions::default()
    })
}

/// The cluster's modes, for assertion messages.
fn modes(c: &mut Cluster) -> String {
    format!("{:?}", c.modes())
}

/// Exactly one voter leads, the other voters follow, the observer observes.
fn assert_settled(c: &mut Cluster) {
    assert!(
        c.wait_settled(CLUSTER_WAIT),
        "not settled: {}\n{}",
        modes(c),
        c.logs()
    );
    let leader = c.leader().expect("a leader");
    assert!(c.voters().contains(&leader), "observer {leader} leads");
    for n in c.ids() {
        let want = if n == leader {
            "leader"
        } else if c.node(n).is_observer() {
            "observer"
        } else {
            "follower"
        };
        assert_eq!(c.mode(n).as_deref(), Some(want), "node {n}: {}", modes(c));
    }
}

/// The voters other than `n`.
fn other_voters(c: &Cluster, n: usize) -> Vec<usize> {
    c.voters().into_iter().filter(|&v| v != n).collect()
}

/// After `old` lost the lead, another voter takes it and `old` stops claiming it.
fn assert_new_leader(c: &mut Cluster, old: usize) -> usize {
    let others = other_voters(c, old);
    let new = c
        .wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no new leader among {others:?}: {}\n{}", modes(c), c.logs()));
    assert_ne!(new, old);
    new
}

#[test]
fn three_voters_and_an_observer_elect_one_leader() {
    let _serial = serial();
    let Some(mut c) = start(false) else { return };
    assert_settled(&mut c);
    assert_eq!(c.observers(), vec![4]);
    let ports: Vec<String> = c
        .ids()
        .map(|n| format!("127.0.0.1:{}", c.client_port(n)))
        .collect();
    assert_eq!(c.connect_string(), ports.join(","));
    for n in c.ids() {
        let myid = std::fs::read_to_string(c.data_dir(n).join("myid")).unwrap();
        assert_eq!(myid.trim(), n.to_string());
    }
}

#[test]
fn a_killed_leader_is_replaced_and_rejoins_as_follower() {
    let _serial = serial();
    let Some(mut c) = start(false) else { return };
    let leader = c.leader().expect("a leader");

    c.kill9(leader);
    assert!(!c.is_running(leader));
    let new = assert_new_leader(&mut c, leader);
    // The observer follows the new leader.
    assert!(
        c.wait_for_mode_eq(4, "observer", CLUSTER_WAIT),
        "{}",
        modes(&mut c)
    );

    c.restart(leader);
    assert!(
        c.wait_for_mode_eq(leader, "follower", CLUSTER_WAIT),
        "{}\n{}",
        modes(&mut c),
        c.log(leader)
    );
    assert_eq!(c.leader(), Some(new));
    assert_settled(&mut c);
}

#[test]
fn a_stopped_leader_is_replaced_and_follows_when_resumed() {
    let _serial = serial();
    let Some(mut c) = start(false) else { return };
    let leader = c.leader().expect("a leader");

    // Frozen with its sockets open: the others notice only by timeouts (syncLimit).
    c.stop(leader);
    assert_eq!(c.mode(leader), None);
    assert_new_leader(&mut c, leader);

    c.resume(leader);
    assert!(
        c.wait_for_mode_eq(leader, "follower", CLUSTER_WAIT),
        "{}\n{}",
        modes(&mut c),
        c.log(leader)
    );
    assert_settled(&mut c);
}

#[test]
fn an_isolated_leader_is_replaced_and_rejoins_when_healed() {
    let _serial = serial();
    let Some(mut c) = start(true) else { return };
    let leader = c.leader().expect("a leader");

    c.isolate(leader);
    let new = assert_new_leader(&mut c, leader);
    // Cut off from every voter, the old leader gives up leading.
    assert!(
        c.wait_until(CLUSTER_WAIT, |c| (c.mode(leader).as_deref()
            != Some("leader"))
        .then_some(()))
            .is_some(),
        "the isolated node {leader} still leads: {}",
        modes(&mut c)
    );
    // Its clients can still reach it: only peer links are cut.
    assert!(rookery_tests::four_letter(c.client_port(leader), "ruok").is_some());

    c.heal_all();
    assert!(
        c.wait_for_mode_eq(leader, "follower", CLUSTER_WAIT),
        "{}\n{}",
        modes(&mut c),
        c.log(leader)
    );
    assert_eq!(c.leader(), Some(new));
    assert_settled(&mut c);
}

#[test]
fn a_cut_between_two_followers_changes_nothing() {
    let _serial = serial();
    let Some(mut c) = start(true) else { return };
    let leader = c.leader().expect("a leader");
    let followers = other_voters(&c, leader);

    c.cut(followers[0], followers[1]);
    // Each follower still reaches the leader; give the ensemble a few ticks to react.
    std::thread::sleep(Duration::from_secs(3));
    assert_settled(&mut c);
    assert_eq!(c.leader(), Some(leader));
    c.heal(followers[0], followers[1]);
}
