//! TLS between the servers (`sslQuorum=true`, keys under `ssl.quorum.`): a three-voter
//! ensemble elects, replicates and fails over with every quorum link encrypted and
//! both ends showing certificates; a server whose certificate another CA signed is
//! kept out until it gets a trusted one; a certificate renewed in place is what the
//! quorum port presents within seconds, and the links made after it (a new election)
//! work with it.
//!
//! Every scenario runs against Apache ZooKeeper too (`ROOKERY_TEST_TARGET=zookeeper`),
//! with the same zoo.cfg keys and PEM files. (ZooKeeper's TLS listeners need
//! netty-codec and netty-resolver, which Debian's zookeeper.jar leaves off its
//! classpath; without them each listener died at its first connection and logged
//! nothing. The harness adds them.)

use rookery_tests::zk::runtime;
use std::time::{Duration, Instant};

use rookery_tests::certs::{TestCa, presented_certificate};
use rookery_tests::{CLUSTER_WAIT, Cluster, ClusterOptions, StartError, Target};
use zookeeper_client::{Acls, Client, CreateMode};

const WAIT: Duration = Duration::from_secs(30);

/// zoo.cfg lines for quorum TLS with one key store shared by every server (each
/// server's certificate names 127.0.0.1, which is where the harness runs them).
fn quorum_tls_config(key_store: &std::path::Path, trust_store: &std::path::Path) -> String {
    format!(
        "sslQuorum=true\n\
         ssl.quorum.keyStore.location={}\n\
         ssl.quorum.keyStore.type=PEM\n\
         ssl.quorum.trustStore.location={}\n\
         ssl.quorum.trustStore.type=PEM\n\
         sslQuorumReloadCertFiles=true\n",
        key_store.display(),
        trust_store.display()
    )
}

fn start(extra_config: String) -> Option<Cluster> {
    let opts = ClusterOptions {
        extra_config,
        ..ClusterOptions::default()
    };
    match Cluster::try_start(Target::from_env(), opts) {
        Ok(c) => Some(c),
        Err(StartError::Unsupported(why)) => {
            println!("SKIPPED: {why}");
            None
        }
        Err(StartError::Failed(logs)) => panic!("the TLS ensemble did not start:\n{logs}"),
    }
}

async fn connect(addr: std::net::SocketAddr) -> Client {
    let deadline = Instant::now() + WAIT;
    loop {
        match Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&addr.to_string())
            .await
        {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Reads `path` through `n` after a sync, so the answer reflects every committed write.
async fn read_synced(cluster: &Cluster, n: usize, path: &str) -> Vec<u8> {
    let c = connect(cluster.client_addr(n)).await;
    c.sync(path).await.expect("sync");
    let (data, _) = c.get_data(path).await.expect("getData");
    data
}

#[test]
fn an_ensemble_with_quorum_tls_replicates_and_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("quorum");
    let me = ca.issue("server", dir.path(), "server");
    let trust = ca.write_trust_store(dir.path());
    let Some(mut cluster) = start(quorum_tls_config(&me.key_store, &trust)) else {
        return;
    };
    let leader = cluster
        .wait_for_leader(CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no leader over TLS links:\n{}", cluster.logs()));
    let follower = cluster.voters().into_iter().find(|&n| n != leader).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let c = connect(cluster.client_addr(follower)).await;
        c.create(
            "/tls-quorum",
            b"over tls",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .expect("create through a follower, committed over TLS links");
        for n in cluster.voters() {
            assert_eq!(read_synced(&cluster, n, "/tls-quorum").await, b"over tls");
        }
    });

    cluster.kill9(leader);
    let others: Vec<usize> = cluster
        .voters()
        .into_iter()
        .filter(|&n| n != leader)
        .collect();
    let next = cluster
        .wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no new leader after the kill:\n{}", cluster.logs()));
    rt.block_on(async {
        assert_eq!(
            read_synced(&cluster, next, "/tls-quorum").await,
            b"over tls"
        );
        let c = connect(cluster.client_addr(next)).await;
        c.set_data("/tls-quorum", b"after failover", None)
            .await
            .expect("a write under the new leader");
    });
    cluster.restart(leader);
    assert!(
        cluster.wait_settled(CLUSTER_WAIT),
        "the killed server did not rejoin over TLS:\n{}",
        cluster.logs()
    );
    rt.block_on(async {
        assert_eq!(
            read_synced(&cluster, leader, "/tls-quorum").await,
            b"after failover"
        );
    });
}

#[test]
fn a_server_with_an_untrusted_certificate_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("quorum");
    let stranger_ca = TestCa::new("stranger");
    let me = ca.issue("server", dir.path(), "server");
    let stranger = stranger_ca.issue("server", dir.path(), "stranger");
    let trust = ca.write_trust_store(dir.path());
    let Some(mut cluster) = start(quorum_tls_config(&me.key_store, &trust)) else {
        return;
    };
    cluster
        .wait_for_leader(CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no leader over TLS links:\n{}", cluster.logs()));
    assert!(cluster.wait_settled(CLUSTER_WAIT), "{}", cluster.logs());

    // Server 3 comes back with a certificate the others do not trust.
    let cfg_path = cluster.config_path(3);
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    let bad = good.replace(
        &me.key_store.display().to_string(),
        &stranger.key_store.display().to_string(),
    );
    assert_ne!(good, bad, "server 3's zoo.cfg names the shared key store");
    cluster.kill9(3);
    std::fs::write(&cfg_path, &bad).unwrap();
    cluster.start_again(3);

    // The two trusted servers keep a quorum and take writes; server 3 never follows.
    let leader = cluster
        .wait_for_leader_among(&[1, 2], CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("1 and 2 lost their quorum:\n{}", cluster.logs()));
    let rt = runtime();
    rt.block_on(async {
        let c = connect(cluster.client_addr(leader)).await;
        c.create(
            "/without-3",
            b"x",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .expect("write with server 3 locked out");
    });
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let mode = cluster.mode(3);
        assert!(
            !matches!(mode.as_deref(), Some("follower" | "leader")),
            "server 3 joined with a certificate nobody trusts (mode {mode:?}):\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // With a trusted certificate again it joins and catches up.
    cluster.kill9(3);
    std::fs::write(&cfg_path, &good).unwrap();
    cluster.restart(3);
    assert!(
        cluster.wait_for_mode_eq(3, "follower", CLUSTER_WAIT),
        "server 3 did not join with a trusted certificate:\n{}",
        cluster.logs()
    );
    rt.block_on(async {
        assert_eq!(read_synced(&cluster, 3, "/without-3").await, b"x");
    });
}

#[test]
fn renewed_quorum_certificates_are_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("quorum");
    let me = ca.issue("server", dir.path(), "server");
    let trust = ca.write_trust_store(dir.path());
    let operator = ca.issue("operator", dir.path(), "operator");
    let Some(mut cluster) = start(quorum_tls_config(&me.key_store, &trust)) else {
        return;
    };
    let leader = cluster
        .wait_for_leader(CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no leader over TLS links:\n{}", cluster.logs()));
    let quorum = |n: usize| format!("127.0.0.1:{}", cluster.node(n).quorum_port());
    assert_eq!(
        presented_certificate(&quorum(leader), &trust, &operator, b""),
        me.der()
    );

    // The same file, a new certificate in it (as a renewal job writes it).
    let renewed = ca.issue("server", dir.path(), "server");
    assert_ne!(renewed.serial, me.serial);
    let deadline = Instant::now() + WAIT;
    while presented_certificate(&quorum(leader), &trust, &operator, b"") != renewed.der() {
        assert!(
            Instant::now() < deadline,
            "the quorum port still presents the old certificate after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Links made from now on use it: a new election and a write still work.
    cluster.kill9(leader);
    let others: Vec<usize> = cluster
        .voters()
        .into_iter()
        .filter(|&n| n != leader)
        .collect();
    let next = cluster
        .wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| {
            panic!(
                "no new leader with renewed certificates:\n{}",
                cluster.logs()
            )
        });
    let rt = runtime();
    rt.block_on(async {
        let c = connect(cluster.client_addr(next)).await;
        c.create(
            "/renewed",
            b"r",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await
        .expect("a write after the renewal");
    });
    cluster.restart(leader);
    rt.block_on(async {
        assert_eq!(read_synced(&cluster, leader, "/renewed").await, b"r");
    });
}
