//! The harness's second way to fail links (issue 6): every server in its own network
//! namespace, links broken with iptables rules ([`ClusterOptions::netns`], root only).
//!
//! First the mechanism alone, at the packet level, between two bare hosts and a tiny
//! echo server (tests/clients/netns_probe.py): what a cut, a silence and their one-way
//! forms do to new and open TCP connections, and that the test process's own traffic
//! passes. Then ensembles of the current target (Rookery, or Apache ZooKeeper 3.8 with
//! `ROOKERY_TEST_TARGET=zookeeper`, which proves the scenarios): an isolated leader is
//! replaced, a write goes through the new one, and the old leader rejoins as a follower
//! holding it; a one-way fault between the leader and one follower (dropped, then
//! rejected) keeps that follower out until healed while the leader and the other
//! follower carry on; and the process faults (kill -9, SIGSTOP, restarts) work on
//! servers inside namespaces as on loopback.
//!
//! Without root (or where namespaces or iptables are refused) every test prints why
//! and passes.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rookery_tests::netns::{Block, NetnsError, Network};
use rookery_tests::{
    CLUSTER_WAIT, Cluster, ClusterOptions, DEBIAN_PYTHON, Target, client_script, four_letter_at,
    start_cluster_if_available,
};

/// One ensemble at a time: three JVMs per test are plenty for a two-core machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A namespaced cluster of the target from the environment, or None (printed why)
/// where it cannot run.
fn start(voters: usize, observers: usize) -> Option<Cluster> {
    start_cluster_if_available(ClusterOptions {
        voters,
        observers,
        netns: true,
        ..ClusterOptions::default()
    })
}

fn modes(c: &mut Cluster) -> String {
    format!("{:?}", c.modes())
}

// ---------------------------------------------------------------------------------
// The mechanism alone.

const PORT: u16 = 7000;

/// `netns_probe.py serve` on host `i`, ready once it has said so.
fn serve(net: &Network, i: usize) -> Child {
    let mut child = net
        .command(i, DEBIAN_PYTHON)
        .arg(client_script("netns_probe.py"))
        .args(["serve", &net.addr(i).to_string(), &PORT.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ip netns exec python3");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line.trim(), "listening", "the echo server on host {i}");
    child
}

/// One new connection from host `from` to host `to`'s echo server: ok, refused,
/// timeout, ...
fn probe(net: &Network, from: usize, to: usize) -> String {
    let out = net.exec(
        from,
        DEBIAN_PYTHON,
        &[
            &client_script("netns_probe.py").to_string_lossy(),
            "probe",
            &net.addr(to).to_string(),
            &PORT.to_string(),
        ],
    );
    out.trim().to_owned()
}

/// A connection host `from` holds open to host `to`, one round trip per [`Held::trip`].
struct Held {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Held {
    fn open(net: &Network, from: usize, to: usize) -> Held {
        let mut child = net
            .command(from, DEBIAN_PYTHON)
            .arg(client_script("netns_probe.py"))
            .args(["hold", &net.addr(to).to_string(), &PORT.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ip netns exec python3");
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("no pipes to the probe");
        };
        let mut held = Held {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        assert_eq!(held.line(), "ok", "the first round trip");
        held
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_owned()
    }

    /// A round trip on the open connection, waiting at most `timeout` for the echo.
    fn trip(&mut self, timeout: Duration) -> String {
        let _ = writeln!(self.stdin, "{}", timeout.as_secs_f64());
        let _ = self.stdin.flush();
        self.line()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let began = Instant::now();
    let v = f();
    (v, began.elapsed())
}

/// Two hosts, an echo server on each: what every kind of block does to new and open
/// connections, in which direction, and that the test's own address is never blocked.
#[test]
fn iptables_blocks_act_on_packets_from_one_host_to_another() {
    if !Path::new(DEBIAN_PYTHON).is_file() {
        println!("SKIPPED: {DEBIAN_PYTHON} is not installed");
        return;
    }
    let mut net = match Network::create(&["a", "b"]).and_then(|mut net| {
        net.enable_firewall()?;
        Ok(net)
    }) {
        Ok(net) => net,
        Err(NetnsError::Unsupported(reason)) => {
            println!("SKIPPED: {reason}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let (a, b) = (0, 1);
    let _servers = [serve(&net, a), serve(&net, b)];
    let from_root = |net: &Network, i: usize| {
        std::net::TcpStream::connect_timeout(
            &SocketAddr::from((net.addr(i), PORT)),
            Duration::from_secs(2),
        )
        .is_ok()
    };
    assert_eq!(probe(&net, a, b), "ok");
    assert_eq!(probe(&net, b, a), "ok");
    assert!(from_root(&net, a) && from_root(&net, b));

    // Reject a -> b: a's new connections are refused at once; b's to a hang (a's
    // handshake reply is rejected); the root namespace still gets through.
    let mut open = Held::open(&net, a, b);
    net.block(a, b, Block::Reject).expect("block");
    assert_eq!(net.blocked(a, b), Some(Block::Reject));
    assert_eq!(net.blocked(b, a), None);
    let (got, took) = timed(|| probe(&net, a, b));
    assert_eq!(got, "refused");
    assert!(took < Duration::from_secs(2), "a refusal took {took:?}");
    assert_eq!(probe(&net, b, a), "timeout");
    assert!(from_root(&net, b), "the test's own address was blocked");
    // The open connection breaks as soon as a sends on it.
    let (got, took) = timed(|| open.trip(Duration::from_secs(5)));
    assert_eq!(got, "reset", "an open connection across a cut");
    assert!(took < Duration::from_secs(2), "the reset took {took:?}");
    drop(open);
    net.unblock(a, b).expect("unblock");
    assert_eq!(probe(&net, a, b), "ok");

    // Drop a -> b, replacing a reject made first: silence both ways for TCP, nothing
    // reset, and an open connection resumes after the unblock.
    let mut open = Held::open(&net, a, b);
    net.block(a, b, Block::Reject).expect("block");
    net.block(a, b, Block::Drop).expect("block");
    assert_eq!(net.blocked(a, b), Some(Block::Drop));
    assert_eq!(probe(&net, a, b), "timeout");
    assert_eq!(probe(&net, b, a), "timeout");
    assert_eq!(open.trip(Duration::from_secs(2)), "timeout");
    net.unblock(a, b).expect("unblock");
    assert_eq!(net.blocked(a, b), None);
    assert_eq!(
        open.trip(Duration::from_secs(10)),
        "ok",
        "a silenced connection did not resume after the unblock"
    );
    assert_eq!(probe(&net, a, b), "ok");

    // The other direction only, then both, then everything undone at once.
    net.block(b, a, Block::Reject).expect("block");
    assert_eq!(probe(&net, b, a), "refused");
    assert_eq!(probe(&net, a, b), "timeout");
    net.block(a, b, Block::Reject).expect("block");
    assert_eq!(probe(&net, a, b), "refused");
    assert!(from_root(&net, a) && from_root(&net, b));
    net.unblock_all().expect("unblock all");
    assert_eq!(probe(&net, a, b), "ok");
    assert_eq!(probe(&net, b, a), "ok");
}

// ---------------------------------------------------------------------------------
// Ensembles.

/// A client session on node `n` alone (never failing over), run on its own runtime.
fn on_node<T>(
    c: &Cluster,
    n: usize,
    f: impl AsyncFnOnce(&zookeeper_client::Client) -> Result<T, zookeeper_client::Error>,
) -> Result<T, String> {
    let addr = c.client_addr(n).to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    rt.block_on(async {
        let connect = zookeeper_client::Client::connector()
            .with_session_timeout(Duration::from_secs(6))
            .connect(&addr);
        let client = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| format!("no session on node {n} ({addr}) within 5 s"))?
            .map_err(|e| format!("connecting to node {n} ({addr}): {e}"))?;
        tokio::time::timeout(Duration::from_secs(5), f(&client))
            .await
            .map_err(|_| format!("no reply from node {n} within 5 s"))?
            .map_err(|e| format!("node {n}: {e}"))
    })
}

/// Creates `path` through node `n`, retrying (a fresh session each time) until it is
/// there: an ensemble just recovering may not accept writes yet. Panics with the logs
/// if it never does.
fn create_via(c: &mut Cluster, n: usize, path: &str, data: &[u8]) {
    use zookeeper_client::{Acls, CreateMode, Error};
    let mut last = String::new();
    let done = c.wait_until(CLUSTER_WAIT, |c| {
        let r = on_node(c, n, async |zk| {
            let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
            match zk.create(path, data, &opts).await {
                // An earlier attempt that looked lost may have gone through.
                Ok(_) | Err(Error::NodeExists) => Ok(()),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| last = e).ok()
    });
    assert!(
        done.is_some(),
        "creating {path} through node {n}: {last}\n{}",
        c.logs()
    );
}

/// Waits until node `n` itself (no sync: what it holds) has `path` with `data`.
fn assert_holds(c: &mut Cluster, n: usize, path: &str, data: &[u8]) {
    let mut last = String::new();
    let held = c.wait_until(CLUSTER_WAIT, |c| {
        match on_node(c, n, async |zk| zk.get_data(path).await) {
            Ok((d, _)) if d == data => Some(()),
            Ok((d, _)) => {
                last = format!("{:?}", String::from_utf8_lossy(&d));
                None
            }
            Err(e) => {
                last = e;
                None
            }
        }
    });
    assert!(
        held.is_some(),
        "node {n} does not hold {path}: {last}\n{}",
        c.logs()
    );
}

/// The namespace's inode: equal to /proc/PID/ns/net's for a process inside it.
fn netns_inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Every node serves on its own address in its own namespace, and its pid is the
/// server's, not `ip`'s.
fn assert_each_node_in_its_namespace(c: &mut Cluster) {
    let net = c.network().expect("a namespaced cluster");
    let root = net.root_addr();
    let ours = netns_inode(Path::new("/proc/self/ns/net"));
    let mut addrs = Vec::new();
    for n in c.ids() {
        let addr = c.client_addr(n);
        assert_eq!(addr.ip(), std::net::IpAddr::V4(net.addr(n - 1)));
        assert_ne!(addr.ip(), std::net::IpAddr::V4(root));
        addrs.push(addr.to_string());
        let pid = c.pid(n).expect("a running server");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let want = match c.target() {
            Target::Rookery => "rookery",
            Target::ZooKeeper => "java",
        };
        assert_eq!(comm.trim(), want, "node {n}'s pid {pid}");
        let inside = netns_inode(&Path::new("/proc").join(pid.to_string()).join("ns/net"));
        let pinned = netns_inode(&Path::new("/run/netns").join(net.namespace(n - 1)));
        assert!(inside.is_some(), "node {n}: no /proc/{pid}/ns/net");
        assert_eq!(inside, pinned, "node {n} runs outside its namespace");
        assert_ne!(inside, ours, "node {n} runs in the test's namespace");
    }
    assert_eq!(c.connect_string(), addrs.join(","));
}

/// Waits until node `n` no longer says `mode`.
fn wait_not_mode(c: &mut Cluster, n: usize, mode: &str) -> bool {
    c.wait_until(CLUSTER_WAIT, |c| {
        (c.mode(n).as_deref() != Some(mode)).then_some(())
    })
    .is_some()
}

#[test]
fn netns_an_isolated_leader_is_replaced_and_rejoins_holding_the_new_write() {
    let _serial = serial();
    let Some(mut c) = start(3, 0) else { return };
    assert!(c.wait_settled(CLUSTER_WAIT), "{}", modes(&mut c));
    assert_each_node_in_its_namespace(&mut c);
    let leader = c.leader().expect("a leader");
    let others: Vec<usize> = c.ids().filter(|&n| n != leader).collect();
    create_via(&mut c, leader, "/before", b"all three");

    c.isolate(leader);
    let new = c
        .wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no new leader among {others:?}: {}", modes(&mut c)));
    create_via(&mut c, new, "/during", b"written without the old leader");
    assert!(
        wait_not_mode(&mut c, leader, "leader"),
        "the isolated node {leader} still leads: {}",
        modes(&mut c)
    );
    // Only peer links are blocked: the test (a client) still reaches it.
    assert!(
        four_letter_at(c.client_addr(leader), "ruok").is_some(),
        "the isolated node {leader} is unreachable from the test"
    );

    c.heal_all();
    assert!(
        c.wait_for_mode_eq(leader, "follower", CLUSTER_WAIT),
        "{}\n{}",
        modes(&mut c),
        c.log(leader)
    );
    assert_eq!(c.leader(), Some(new));
    assert_holds(&mut c, leader, "/during", b"written without the old leader");
    assert_holds(&mut c, leader, "/before", b"all three");
    assert!(c.wait_settled(CLUSTER_WAIT), "{}", modes(&mut c));
}

/// How long a follower cut off from its leader must stay out to count as kept out:
/// several times syncLimit * tickTime (2.5 s in the harness), so a follower that got
/// back in would have.
const KEPT_OUT: Duration = Duration::from_secs(8);

/// A one-way fault from the leader to one follower, or from that follower to the
/// leader: the follower drops out and stays out (it never hears from the leader, or
/// the leader never hears from it, and no quorum elects anyone without the leader
/// that still has the other follower), the leader and the other follower carry on
/// and commit, and once healed the follower is back holding what they wrote.
fn one_way_keeps_a_follower_out(c: &mut Cluster, fault: &str, path: &str) {
    assert!(c.wait_settled(CLUSTER_WAIT), "{}", modes(c));
    let leader = c.leader().expect("a leader");
    let followers: Vec<usize> = c.ids().filter(|&n| n != leader).collect();
    let (out, other) = (followers[0], followers[1]);
    match fault {
        "silence leader->follower" => c.silence_one_way(leader, out),
        "cut follower->leader" => c.cut_one_way(out, leader),
        other => panic!("unknown fault {other}"),
    }
    let began = Instant::now();
    assert!(
        wait_not_mode(c, out, "follower"),
        "{fault}: node {out} still follows: {}\n{}",
        modes(c),
        c.log(out)
    );
    println!(
        "{fault}: node {out} dropped out after {:?}",
        began.elapsed()
    );
    create_via(c, leader, path, b"committed without the cut-off follower");
    let deadline = Instant::now() + KEPT_OUT;
    while Instant::now() < deadline {
        let m = c.modes();
        assert_eq!(m[&leader].as_deref(), Some("leader"), "{fault}: {m:?}");
        assert_eq!(m[&other].as_deref(), Some("follower"), "{fault}: {m:?}");
        assert!(
            !matches!(m[&out].as_deref(), Some("follower" | "leader")),
            "{fault}: node {out} got back in: {m:?}\n{}",
            c.log(out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    c.heal_all();
    assert!(
        c.wait_for_mode_eq(out, "follower", CLUSTER_WAIT),
        "{fault}: node {out} did not rejoin: {}\n{}",
        modes(c),
        c.log(out)
    );
    assert_eq!(c.leader(), Some(leader));
    assert_holds(c, out, path, b"committed without the cut-off follower");
}

#[test]
fn netns_one_way_faults_between_leader_and_a_follower_keep_it_out_until_healed() {
    let _serial = serial();
    let Some(mut c) = start(3, 0) else { return };
    one_way_keeps_a_follower_out(&mut c, "silence leader->follower", "/silenced");
    one_way_keeps_a_follower_out(&mut c, "cut follower->leader", "/cut");
    assert!(c.wait_settled(CLUSTER_WAIT), "{}", modes(&mut c));
}

#[test]
fn netns_process_faults_reach_the_servers_inside_their_namespaces() {
    let _serial = serial();
    let Some(mut c) = start(3, 1) else { return };
    assert!(c.wait_settled(CLUSTER_WAIT), "{}", modes(&mut c));
    assert_each_node_in_its_namespace(&mut c);
    assert_eq!(c.observers(), vec![4]);
    let leader = c.leader().expect("a leader");
    let voters = c.voters();

    // SIGSTOP reaches the server itself (the pid is not `ip`'s): it stops answering
    // and the others replace it; SIGCONT brings it back as a follower.
    c.stop(leader);
    assert!(c.is_stopped(leader));
    assert!(
        four_letter_at(c.client_addr(leader), "srvr").is_none(),
        "a stopped node {leader} answered"
    );
    let others: Vec<usize> = voters.iter().copied().filter(|&v| v != leader).collect();
    let second = c
        .wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no leader after a SIGSTOP: {}", modes(&mut c)));
    c.resume(leader);
    assert!(
        c.wait_for_mode_eq(leader, "follower", CLUSTER_WAIT),
        "{}\n{}",
        modes(&mut c),
        c.log(leader)
    );

    // kill -9, then start again without waiting, then a restart that waits.
    let pid = c.pid(second).expect("a pid");
    c.kill9(second);
    assert!(!c.is_running(second));
    assert!(
        !Path::new("/proc").join(pid.to_string()).exists(),
        "pid {pid} survived kill -9"
    );
    let rest: Vec<usize> = voters.iter().copied().filter(|&v| v != second).collect();
    let third = c
        .wait_for_leader_among(&rest, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no leader after a kill -9: {}", modes(&mut c)));
    c.start_again(second);
    assert!(
        c.wait_for_mode_eq(second, "follower", CLUSTER_WAIT),
        "{}\n{}",
        modes(&mut c),
        c.log(second)
    );
    assert_ne!(c.pid(second), Some(pid));
    c.restart(4);
    assert!(
        c.wait_for_mode_eq(4, "observer", CLUSTER_WAIT),
        "{}\n{}",
        modes(&mut c),
        c.log(4)
    );
    assert_eq!(c.leader(), Some(third));
    assert_each_node_in_its_namespace(&mut c);
    assert!(c.wait_settled(CLUSTER_WAIT), "{}", modes(&mut c));
}
