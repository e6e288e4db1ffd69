//! Global sessions across an ensemble: a session moved to another server keeps its
//! ephemerals, and a write through the old server's connection is refused (SessionMoved,
//! which closes that connection). Run against Apache
//! ZooKeeper with `ROOKERY_TEST_TARGET=zookeeper` to prove the scenario itself.

use rookery_tests::{
    CLUSTER_WAIT, ClusterOptions, client_script, missing, run_python, start_cluster_if_available,
};

#[test]
fn a_moved_session_keeps_its_ephemeral_and_the_old_connection_is_refused() {
    if let Some(why) = missing(&["kazoo"]) {
        eprintln!("skipping: {why}");
        return;
    }
    let Some(mut c) = start_cluster_if_available(ClusterOptions {
        voters: 3,
        observers: 0,
        ..ClusterOptions::default()
    }) else {
        return;
    };
    assert!(
        c.wait_settled(CLUSTER_WAIT),
        "{:?}\n{}",
        c.modes(),
        c.logs()
    );
    // Two followers, so neither connection is on the leader's own client port.
    let leader = c.leader().expect("a leader");
    let followers: Vec<usize> = c.voters().into_iter().filter(|&n| n != leader).collect();
    let a = format!("127.0.0.1:{}", c.client_port(followers[0]));
    let b = format!("127.0.0.1:{}", c.client_port(followers[1]));
    let out = run_python(&client_script("session_moved.py"), &[&a, &b]);
    print!("{out}");
    assert!(out.ends_with("ok\n"), "{out}");
}
