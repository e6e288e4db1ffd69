//! A multi-process ensemble on loopback: N voters and M observers of the current
//! [`Target`] (the `rookery` binary, or Apache ZooKeeper's `QuorumPeerMain`), each with
//! its own zoo.cfg, `data/myid` and log, ids 1..=N+M as the seed tutorial numbers them.
//!
//! The nemesis operations are per process (`kill9`, `restart`, `stop`/`resume` with
//! SIGSTOP/SIGCONT) and, when started with [`ClusterOptions::proxied`], per network link:
//! every server reaches every peer through a TCP proxy the harness owns, one per
//! directed (from, to) pair, so `cut`, `isolate` and `heal` model partitions without
//! root, iptables or network namespaces. A cut resets the connections at once; a
//! `silence` keeps them open and drops every byte, as a network that loses packets
//! does, so the peers notice only through their timeouts.
//!
//! How the proxies are wired: a server listens on the ports of its own `server.N` line,
//! so each node gets its own zoo.cfg whose own line holds its real ports while every
//! peer's line holds the ports of the proxy dedicated to (self -> peer). The files differ
//! only in the peers' addresses.
//!
//! With [`ClusterOptions::netns`] (root only) the links fail at the packet level
//! instead: every server runs in its own network namespace with its own address on a
//! private switch ([`crate::netns::Network`]), zoo.cfg names those addresses with the
//! ports the loopback mode would use, and a link fault is an iptables rule in the
//! receiving node's namespace. The test process reaches every node's client port from
//! the root namespace ([`Cluster::client_addr`], [`Cluster::connect_string`]). Both
//! mechanisms sit behind the same fault methods ([`Cluster::cut`], [`Cluster::silence`],
//! ...); their doc comments say where the two differ.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::netns::{Block, NetnsError, Network};
use crate::{Target, four_letter_at, missing, rookery_bin, zk_jvm_flags, zk_system_properties};

/// What a Rookery without replication prints when handed an ensemble config.
pub const REFUSES_ENSEMBLES: &str = "replication is not implemented yet";

/// Generous, for a loaded two-core CI machine running four JVMs; tests never assert
/// on how fast an election is, only that it ends.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(60);

/// Timing small enough for failover within seconds; ZooKeeper requires session
/// timeouts of at least 2 * tickTime, so clients may use 1 s and up.
const DEFAULT_TIMING: &str = "tickTime=500\ninitLimit=10\nsyncLimit=5\n";

/// How to build a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Voting servers: ids 1..=voters.
    pub voters: usize,
    /// Non-voting observers: ids after the voters.
    pub observers: usize,
    /// Route every peer connection through a per-link proxy so links can be cut.
    pub proxied: bool,
    /// Run every server in its own network namespace, with its own address, so links
    /// fail at the packet level (iptables); needs root, else [`Cluster::try_start`]
    /// says [`StartError::Unsupported`]. Not together with `proxied`.
    pub netns: bool,
    /// Appended to every zoo.cfg. Both servers let the last of duplicate keys win,
    /// so `tickTime=2000` here overrides the harness's timing.
    pub extra_config: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            voters: 3,
            observers: 0,
            proxied: false,
            netns: false,
            extra_config: String::new(),
        }
    }
}

/// Why a cluster did not come up.
#[derive(Debug)]
pub enum StartError {
    /// The server cannot run an ensemble at all (Rookery before replication), or this
    /// machine cannot give it what the options ask for (network namespaces without
    /// root): tests skip rather than fail.
    Unsupported(String),
    /// It should have worked and did not; the message carries the logs.
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Unsupported(m) => write!(f, "cluster unsupported here: {m}"),
            StartError::Failed(m) => write!(f, "cluster failed to start: {m}"),
        }
    }
}

/// Starts a cluster of the target from the environment, or prints why it cannot run
/// here (ZooKeeper not installed, Rookery refusing ensembles) and returns None, so the
/// test returns without running. Any other failure panics with the logs.
pub fn start_cluster_if_available(opts: ClusterOptions) -> Option<Cluster> {
    let target = Target::from_env();
    if target == Target::ZooKeeper {
        if let Some(reason) = missing(&["zookeeper"]) {
            println!("SKIPPED: {reason}");
            return None;
        }
    }
    match Cluster::try_start(target, opts) {
        Ok(c) => Some(c),
        Err(StartError::Unsupported(reason)) => {
            println!("SKIPPED: {reason}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// One server of the cluster.
#[derive(Debug)]
pub struct Node {
    id: usize,
    observer: bool,
    /// 127.0.0.1, or the node's own address in its network namespace.
    host: Ipv4Addr,
    client_port: u16,
    quorum_port: u16,
    election_port: u16,
    admin_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
    stopped: bool,
}

impl Node {
    pub fn id(&self) -> usize {
        self.id
    }

    pub fn is_observer(&self) -> bool {
        self.observer
    }

    /// Where Rookery's gRPC admin API listens (`host:port`). In a namespaced cluster
    /// that is off loopback, so callers need the token of
    /// [`Node::admin_token_file`] (`rookery admin --config <its zoo.cfg>` finds it).
    pub fn admin_endpoint(&self) -> String {
        format!("{}:{}", self.host, self.admin_port)
    }

    /// The bearer token file of Rookery's admin API, when it needs one (a namespaced
    /// cluster: Rookery refuses an admin API off loopback without one).
    pub fn admin_token_file(&self) -> Option<PathBuf> {
        Some(self.admin_token_path()).filter(|p| p.is_file())
    }

    fn admin_token_path(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The address the server binds: 127.0.0.1, or in a namespaced cluster its own.
    pub fn host(&self) -> IpAddr {
        IpAddr::V4(self.host)
    }

    /// Where clients reach it from the test process.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host(), self.client_port)
    }

    /// The real ports this server listens on (peers may reach them through proxies).
    pub fn quorum_port(&self) -> u16 {
        self.quorum_port
    }

    pub fn election_port(&self) -> u16 {
        self.election_port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("server-{}.log", self.starts))
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// How a cluster's peer links can be made to fail, if they can.
#[derive(Debug)]
enum Links {
    /// Every peer connection crosses a proxy of the harness ([`ClusterOptions::proxied`]).
    Proxies(Mesh),
    /// Every node is a host of this network ([`ClusterOptions::netns`]); node `n` is
    /// host `n - 1`.
    Netns(Network),
}

/// A link fault, whichever mechanism makes it.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Cut,
    Silence,
}

/// A running ensemble; dropping it kills every server, closes every proxy and removes
/// the network namespaces.
#[derive(Debug)]
pub struct Cluster {
    target: Target,
    opts: ClusterOptions,
    nodes: Vec<Node>,
    links: Option<Links>,
    // Last, so the directory goes after the processes writing into it.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `voters` + `observers` servers of the target from the environment, waiting until
    /// one leads and the rest follow or observe. Panics if that does not happen.
    pub fn start(voters: usize, observers: usize) -> Cluster {
        Cluster::start_with(ClusterOptions {
            voters,
            observers,
            ..ClusterOptions::default()
        })
    }

    /// Like [`Cluster::start`] with every option.
    pub fn start_with(opts: ClusterOptions) -> Cluster {
        Cluster::try_start(Target::from_env(), opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the cluster and waits until it has settled (one leader, everyone else
    /// following or observing), or says why not.
    pub fn try_start(target: Target, opts: ClusterOptions) -> Result<Cluster, StartError> {
        assert!(opts.voters >= 1, "a cluster needs a voter");
        assert!(
            !(opts.proxied && opts.netns),
            "ClusterOptions: proxied and netns are two ways to fail links; pick one"
        );
        let total = opts.voters + opts.observers;
        // First, so a machine that cannot do it skips before anything starts.
        let network = if opts.netns {
            let names: Vec<String> = (1..=total).map(|id| format!("node{id}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut net = Network::create(&names).map_err(netns_error)?;
            net.enable_firewall().map_err(netns_error)?;
            Some(net)
        } else {
            None
        };
        let dir = tempfile::tempdir().map_err(|e| StartError::Failed(format!("tempdir: {e}")))?;
        // Held until the proxies have their ports too, so none of them takes a node's.
        let reserved = reserve_ports(4 * total);
        let ports: Vec<u16> = reserved
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| StartError::Failed(format!("free ports: {e}")))?;
        let nodes: Vec<Node> = (1..=total)
            .map(|id| {
                let p = &ports[4 * (id - 1)..4 * id];
                Node {
                    id,
                    observer: id > opts.voters,
                    host: network
                        .as_ref()
                        .map_or(Ipv4Addr::LOCALHOST, |net| net.addr(id - 1)),
                    client_port: p[0],
                    quorum_port: p[1],
                    election_port: p[2],
                    admin_port: p[3],
                    dir: dir.path().join(format!("node{id}")),
                    child: None,
                    starts: 0,
                    stopped: false,
                }
            })
            .collect();
        let links = match network {
            Some(net) => Some(Links::Netns(net)),
            None if opts.proxied => Some(Links::Proxies(
                Mesh::new(&nodes).map_err(|e| StartError::Failed(format!("proxies: {e}")))?,
            )),
            None => None,
        };
        drop(reserved);
        let mut cluster = Cluster {
            target,
            opts,
            nodes,
            links,
            _dir: dir,
        };
        for id in cluster.ids() {
            cluster
                .write_config(id)
                .map_err(|e| StartError::Failed(format!("writing node {id}'s config: {e}")))?;
        }
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        cluster.wait_settled_or_explain(CLUSTER_WAIT)?;
        Ok(cluster)
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// 1..=voters+observers.
    pub fn ids(&self) -> std::ops::RangeInclusive<usize> {
        1..=self.nodes.len()
    }

    pub fn voters(&self) -> Vec<usize> {
        self.ids().filter(|&n| !self.node(n).observer).collect()
    }

    pub fn observers(&self) -> Vec<usize> {
        self.ids().filter(|&n| self.node(n).observer).collect()
    }

    pub fn node(&self, n: usize) -> &Node {
        assert!(
            (1..=self.nodes.len()).contains(&n),
            "no node {n} in a cluster of {}",
            self.nodes.len()
        );
        &self.nodes[n - 1]
    }

    fn node_mut(&mut self, n: usize) -> &mut Node {
        assert!(
            (1..=self.nodes.len()).contains(&n),
            "no node {n} in a cluster of {}",
            self.nodes.len()
        );
        &mut self.nodes[n - 1]
    }

    /// Node `n`'s client port; on 127.0.0.1 unless the cluster is namespaced, so
    /// prefer [`Cluster::client_addr`] in code that may run against either.
    pub fn client_port(&self, n: usize) -> u16 {
        self.node(n).client_port
    }

    /// Where the test process reaches node `n`'s clients' port (and four-letter words).
    pub fn client_addr(&self, n: usize) -> SocketAddr {
        self.node(n).client_addr()
    }

    /// Every server's client address, for clients that fail over.
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.client_addr().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The network namespaces the nodes run in (node `n` is host `n - 1`), if the
    /// cluster was started with [`ClusterOptions::netns`]: to run a program beside a
    /// node ([`Network::command`]) or find its namespace. Links are blocked through
    /// the fault methods, which keep the rules and the cluster's idea of them together.
    pub fn network(&self) -> Option<&Network> {
        match &self.links {
            Some(Links::Netns(net)) => Some(net),
            _ => None,
        }
    }

    pub fn data_dir(&self, n: usize) -> PathBuf {
        self.node(n).data_dir()
    }

    pub fn config_path(&self, n: usize) -> PathBuf {
        self.node(n).config_path()
    }

    /// Everything node `n` has logged since its last start.
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.node(n).log_path()).unwrap_or_default()
    }

    /// Every node's log since its last start, headed by its id, for failure messages.
    pub fn logs(&self) -> String {
        self.ids()
            .map(|n| format!("===== node {n} =====\n{}", self.log(n)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The zoo.cfg node `n` reads: the shared settings, then every `server.N` line as
    /// node `n` must dial it (through its proxies when the cluster is proxied).
    fn config_text(&self, n: usize) -> String {
        let node = self.node(n);
        let mut cfg = format!(
            "# Written by the rookery-tests cluster harness for server.{n}.\n\
             {DEFAULT_TIMING}\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress={}\n\
             4lw.commands.whitelist=*\n\
             admin.enableServer=false\n",
            node.data_dir().display(),
            node.client_port,
            node.host,
        );
        if self.target == Target::Rookery {
            // Rookery's gRPC admin API defaults to 7181, which would clash across nodes.
            cfg.push_str(&format!("admin.grpcAddress={}\n", node.admin_endpoint()));
            if !node.host.is_loopback() {
                // Rookery refuses an admin API off loopback without a token.
                cfg.push_str(&format!(
                    "admin.authTokenFile={}\n",
                    node.admin_token_path().display()
                ));
            }
        }
        if node.observer {
            cfg.push_str("peerType=observer\n");
        }
        for peer in &self.nodes {
            let (q, e) = match &self.links {
                Some(Links::Proxies(mesh)) if peer.id != n => mesh.ports(n, peer.id),
                _ => (peer.quorum_port, peer.election_port),
            };
            let role = if peer.observer { ":observer" } else { "" };
            cfg.push_str(&format!("server.{}={}:{q}:{e}{role}\n", peer.id, peer.host));
        }
        cfg.push_str(&self.opts.extra_config);
        cfg.push('\n');
        cfg
    }

    fn write_config(&self, n: usize) -> std::io::Result<()> {
        let node = self.node(n);
        std::fs::create_dir_all(node.data_dir())?;
        std::fs::write(node.data_dir().join("myid"), format!("{n}\n"))?;
        if self.target == Target::Rookery && !node.host.is_loopback() {
            // A test's secret, not a real one: it only has to be there.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let token = format!("rookery-tests-{}-{n}-{nanos}\n", std::process::id());
            std::fs::write(node.admin_token_path(), token)?;
        }
        std::fs::write(node.config_path(), self.config_text(n))
    }

    /// `program` as node `n` runs it: in its network namespace if it has one (`ip
    /// netns exec` execs it, so the child's pid is the program's).
    fn command(&self, n: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.links {
            Some(Links::Netns(net)) => net.command(n - 1, program),
            _ => Command::new(program),
        }
    }

    fn spawn(&mut self, n: usize) {
        let target = self.target;
        let extra = self.opts.extra_config.clone();
        let program = match target {
            Target::Rookery => rookery_bin(),
            Target::ZooKeeper => PathBuf::from("java"),
        };
        let mut cmd = self.command(n, program);
        let node = self.node_mut(n);
        node.starts += 1;
        node.stopped = false;
        let log = std::fs::File::create(node.log_path()).expect("log file");
        let err = log.try_clone().expect("log file");
        match target {
            Target::Rookery => {
                cmd.args(["serve", "--config"]).arg(node.config_path());
                cmd.env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                );
            }
            Target::ZooKeeper => {
                // Four JVMs on two cores: the client compiler and serial GC start faster.
                cmd.args(zk_jvm_flags(&[
                    "-Xmx256m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                ]))
                .args([
                    "-Dzookeeper.admin.enableServer=false",
                    "-Dorg.slf4j.simpleLogger.showDateTime=true",
                    "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                ])
                .arg(format!("-Dzookeeper.log.dir={}", node.dir.display()))
                .args(zk_system_properties(&extra))
                .args(["-cp", &zk_classpath()])
                .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                .arg(node.config_path());
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("starting a server");
        node.child = Some(child);
    }

    /// Starts a new server that is not a member yet, as an operator would before
    /// adding it (Rookery's `rookery admin members add`, ZooKeeper's `reconfig -add`):
    /// its zoo.cfg lists every current server and itself as an observer. Returns its
    /// id; it serves only once the ensemble has added it. Not in proxied clusters; in
    /// a namespaced one it gets a host of its own.
    pub fn add_server(&mut self) -> usize {
        let id = self.nodes.len() + 1;
        let host = match &mut self.links {
            Some(Links::Proxies(_)) => panic!("joiners are not proxied"),
            Some(Links::Netns(net)) => {
                let i = net
                    .add_host(&format!("node{id}"))
                    .unwrap_or_else(|e| panic!("a host for node {id}: {e}"));
                assert_eq!(i, id - 1, "node {id} must be host {}", id - 1);
                net.addr(i)
            }
            None => Ipv4Addr::LOCALHOST,
        };
        let reserved = reserve_ports(4);
        let p: Vec<u16> = reserved
            .iter()
            .map(|l| l.local_addr().expect("port").port())
            .collect();
        drop(reserved);
        let dir = self.nodes[0].dir.with_file_name(format!("node{id}"));
        self.nodes.push(Node {
            id,
            observer: true,
            host,
            client_port: p[0],
            quorum_port: p[1],
            election_port: p[2],
            admin_port: p[3],
            dir,
            child: None,
            starts: 0,
            stopped: false,
        });
        self.write_config(id).expect("writing the joiner's config");
        self.spawn(id);
        id
    }

    /// Records a membership change the test made, so [`Cluster::is_settled`] expects
    /// node `n` to follow (voter) or observe.
    pub fn set_observer(&mut self, n: usize, observer: bool) {
        self.node_mut(n).observer = observer;
    }

    /// Whether node `n`'s process is alive (a SIGSTOPped one is).
    pub fn is_running(&mut self, n: usize) -> bool {
        self.node_mut(n)
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Node `n`'s server process while it runs (for ZooKeeper, the JVM's; in a
    /// namespaced cluster too, as `ip netns exec` execs the server).
    pub fn pid(&self, n: usize) -> Option<u32> {
        self.node(n).pid()
    }

    /// SIGKILL: no shutdown path runs; the peers see the connections drop.
    pub fn kill9(&mut self, n: usize) {
        let node = self.node_mut(n);
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        node.stopped = false;
    }

    /// Kills node `n` if it runs, starts it again with the same config and data, and
    /// waits until it serves (reports a mode). Panics with its log if it does not.
    pub fn restart(&mut self, n: usize) {
        self.kill9(n);
        self.spawn(n);
        if self.wait_for_mode(n, CLUSTER_WAIT).is_none() {
            panic!("node {n} did not serve after a restart:\n{}", self.log(n));
        }
    }

    /// Starts node `n` again after [`Cluster::kill9`] without waiting for it to serve:
    /// with every node down, none serves until a quorum is back.
    pub fn start_again(&mut self, n: usize) {
        if !self.is_running(n) {
            self.spawn(n);
        }
    }

    /// SIGSTOP: the process freezes with its sockets open, as a long GC pause or a
    /// hung machine does; peers notice only through their timeouts.
    pub fn stop(&mut self, n: usize) {
        if self.signal(n, "STOP") {
            self.node_mut(n).stopped = true;
        }
    }

    /// SIGCONT after [`Cluster::stop`].
    pub fn resume(&mut self, n: usize) {
        self.signal(n, "CONT");
        self.node_mut(n).stopped = false;
    }

    pub fn is_stopped(&self, n: usize) -> bool {
        self.node(n).stopped
    }

    /// `kill -SIG pid`: the workspace forbids `unsafe`, so no libc::kill.
    fn signal(&self, n: usize, sig: &str) -> bool {
        let Some(pid) = self.pid(n) else {
            return false;
        };
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Node `n`'s `Mode:` from `srvr` (leader, follower, observer, standalone), or None
    /// while it is down, stopped, electing or not yet serving.
    pub fn mode(&mut self, n: usize) -> Option<String> {
        if self.node(n).stopped || !self.is_running(n) {
            return None;
        }
        four_letter_at(self.client_addr(n), "srvr").and_then(|r| parse_mode(&r))
    }

    /// Every node's mode, by id.
    pub fn modes(&mut self) -> BTreeMap<usize, Option<String>> {
        self.ids().map(|n| (n, self.mode(n))).collect()
    }

    /// Waits until `f` returns Some, polling every 100 ms, for at most `timeout`.
    pub fn wait_until<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&mut Cluster) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until node `n` reports a mode.
    pub fn wait_for_mode(&mut self, n: usize, timeout: Duration) -> Option<String> {
        self.wait_until(timeout, |c| c.mode(n))
    }

    /// Waits until node `n` reports exactly `mode`.
    pub fn wait_for_mode_eq(&mut self, n: usize, mode: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |c| {
            (c.mode(n).as_deref() == Some(mode)).then_some(())
        })
        .is_some()
    }

    /// The leader, waiting up to [`CLUSTER_WAIT`] for exactly one node to say so.
    pub fn leader(&mut self) -> Option<usize> {
        self.wait_for_leader(CLUSTER_WAIT)
    }

    /// Waits until exactly one node reports `Mode: leader` and returns it.
    pub fn wait_for_leader(&mut self, timeout: Duration) -> Option<usize> {
        let all: Vec<usize> = self.ids().collect();
        self.wait_for_leader_among(&all, timeout)
    }

    /// Waits until exactly one of `candidates` reports `Mode: leader`; the others are
    /// not asked, so a deposed leader that has not noticed yet does not get in the way.
    pub fn wait_for_leader_among(
        &mut self,
        candidates: &[usize],
        timeout: Duration,
    ) -> Option<usize> {
        self.wait_until(timeout, |c| {
            let leaders: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&n| c.mode(n).as_deref() == Some("leader"))
                .collect();
            (leaders.len() == 1).then(|| leaders[0])
        })
    }

    /// True once every running, unstopped node reports its proper mode: exactly one
    /// voter leads, the other voters follow, observers observe.
    pub fn is_settled(&mut self) -> bool {
        let mut leaders = 0;
        for n in self.ids() {
            if self.node(n).stopped || !self.is_running(n) {
                continue;
            }
            match (self.node(n).observer, self.mode(n).as_deref()) {
                (false, Some("leader")) => leaders += 1,
                (false, Some("follower")) | (true, Some("observer")) => {}
                _ => return false,
            }
        }
        leaders == 1
    }

    /// Waits until [`Cluster::is_settled`].
    pub fn wait_settled(&mut self, timeout: Duration) -> bool {
        self.wait_until(timeout, |c| c.is_settled().then_some(()))
            .is_some()
    }

    /// Like [`Cluster::wait_settled`] during start-up, but tells a server that refuses
    /// ensembles (or died) from a slow election.
    fn wait_settled_or_explain(&mut self, timeout: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_settled() {
                return Ok(());
            }
            let exited: Vec<usize> = self.ids().filter(|&n| !self.is_running(n)).collect();
            if !exited.is_empty() {
                // Let the others finish printing before reading the logs.
                std::thread::sleep(Duration::from_millis(300));
                let logs = self.logs();
                if logs.contains(REFUSES_ENSEMBLES) {
                    return Err(StartError::Unsupported(format!(
                        "{} refuses ensemble configs ({REFUSES_ENSEMBLES})",
                        self.target.name()
                    )));
                }
                return Err(StartError::Failed(format!(
                    "node(s) {exited:?} exited during start-up\n{logs}"
                )));
            }
            if Instant::now() >= deadline {
                let modes = self.modes();
                return Err(StartError::Failed(format!(
                    "no settled ensemble within {timeout:?}; modes {modes:?}\n{}",
                    self.logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn links_mut(&mut self) -> &mut Links {
        self.links.as_mut().expect(
            "link faults need a cluster started with ClusterOptions { proxied: true } \
             or { netns: true }",
        )
    }

    /// The one place a one-way fault is made, whichever the mechanism.
    fn fault_one_way(&mut self, from: usize, to: usize, fault: Fault) {
        assert_ne!(from, to, "node {from}'s link to itself");
        let _ = (self.node(from), self.node(to));
        match (self.links_mut(), fault) {
            (Links::Proxies(mesh), Fault::Cut) => mesh.link(from, to).cut(),
            (Links::Proxies(mesh), Fault::Silence) => mesh.link(from, to).silence(),
            (Links::Netns(net), fault) => {
                let how = match fault {
                    Fault::Cut => Block::Reject,
                    Fault::Silence => Block::Drop,
                };
                net.block(from - 1, to - 1, how)
                    .unwrap_or_else(|e| panic!("blocking {from} -> {to}: {e}"));
            }
        }
    }

    /// Severs the link between `a` and `b` both ways. Both directions, because a TCP
    /// connection carries both: ZooKeeper sends votes both ways over one connection.
    ///
    /// Proxied: open connections are closed and new ones are accepted and closed at
    /// once. Namespaced: every TCP segment between the two is answered with a reset by
    /// its receiver (non-TCP packets are dropped; resets themselves pass, so each side
    /// gets the other's), so open connections break as soon as either side sends and
    /// new ones are refused.
    pub fn cut(&mut self, a: usize, b: usize) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Severs one direction of the link; the two mechanisms differ here.
    ///
    /// Proxied: severs the connections `from` dials to `to` (both directions of
    /// their bytes). With Rookery's one-way peer connections (the dialer only sends)
    /// this loses `from`'s messages to `to` and keeps `to`'s to `from`; with ZooKeeper
    /// it depends on who dialed.
    ///
    /// Namespaced: a true one-way fault at the IP level, whoever dialed: every TCP
    /// segment from `from` to `to` is answered with a reset by `to` (non-TCP packets
    /// dropped), packets from `to` to `from` pass. As TCP needs acknowledgements both
    /// ways, `from`'s connections with `to` break as soon as `from` sends on them,
    /// `from`'s new connections to `to` are refused, and `to`'s new connections to
    /// `from` hang until `to`'s connect timeout (`from`'s handshake reply is rejected).
    pub fn cut_one_way(&mut self, from: usize, to: usize) {
        self.fault_one_way(from, to, Fault::Cut);
    }

    /// Drops everything between `a` and `b` both ways while keeping the connections
    /// open: neither side sees a reset, only silence, until its timeouts fire.
    ///
    /// Proxied: new connections are accepted and get nothing through; a heal closes
    /// the connections the silence went through (their streams lost bytes).
    /// Namespaced: every packet between the two is dropped on arrival; new connections
    /// hang in their handshake; after a heal, connections that have not timed out
    /// resume, TCP resending what was lost.
    pub fn silence(&mut self, a: usize, b: usize) {
        self.silence_one_way(a, b);
        self.silence_one_way(b, a);
    }

    /// Silences one direction of the link; the two mechanisms differ here.
    ///
    /// Proxied: drops the bytes on the connections `from` dials to `to`, in both
    /// directions (a TCP connection carries both), keeping them open.
    ///
    /// Namespaced: a true one-way loss at the IP level, whoever dialed: every packet
    /// from `from` to `to` is dropped on arrival, packets from `to` to `from` pass.
    /// Nothing is reset; `to` stops hearing from `from`, while `from` hears `to` but
    /// its acknowledgements never arrive, so both sides' TCP stalls on what needs
    /// `from`'s packets and only timeouts notice.
    pub fn silence_one_way(&mut self, from: usize, to: usize) {
        self.fault_one_way(from, to, Fault::Silence);
    }

    /// Silences every link of node `n`; its clients can still reach it.
    pub fn isolate_silently(&mut self, n: usize) {
        for m in self.ids() {
            if m != n {
                self.silence(n, m);
            }
        }
    }

    /// Restores the link between `a` and `b` both ways (after a cut or a silence).
    pub fn heal(&mut self, a: usize, b: usize) {
        let _ = (self.node(a), self.node(b));
        match self.links_mut() {
            Links::Proxies(mesh) => {
                mesh.link(a, b).heal();
                mesh.link(b, a).heal();
            }
            Links::Netns(net) => {
                for (from, to) in [(a, b), (b, a)] {
                    net.unblock(from - 1, to - 1)
                        .unwrap_or_else(|e| panic!("unblocking {from} -> {to}: {e}"));
                }
            }
        }
    }

    /// Cuts every link of node `n`; its clients can still reach it (the proxies only
    /// carry peer links; the iptables rules match only the peers' addresses).
    pub fn isolate(&mut self, n: usize) {
        for m in self.ids() {
            if m != n {
                self.cut(n, m);
            }
        }
    }

    /// Restores every link.
    pub fn heal_all(&mut self) {
        match self.links_mut() {
            Links::Proxies(mesh) => {
                for link in mesh.links.values() {
                    link.heal();
                }
            }
            Links::Netns(net) => net
                .unblock_all()
                .unwrap_or_else(|e| panic!("unblocking every link: {e}")),
        }
    }
}

/// A network that could not be built is a reason to skip only when this machine
/// cannot build one at all.
fn netns_error(e: NetnsError) -> StartError {
    match e {
        NetnsError::Unsupported(m) => StartError::Unsupported(m),
        NetnsError::Failed(m) => StartError::Failed(format!("network namespaces: {m}")),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.ids() {
            self.kill9(n);
        }
        // A network's own drop then removes whatever still runs in its namespaces.
        if let Some(Links::Proxies(mesh)) = self.links.take() {
            mesh.shutdown();
        }
    }
}

/// ZooKeeper's classpath, plus slf4j-simple when Debian has it: without a binding
/// ZooKeeper logs nothing, and an election that does not end is then a mystery.
fn zk_classpath() -> String {
    let mut cp = crate::zookeeper_classpath();
    if Path::new(SLF4J_SIMPLE).is_file() {
        cp.push(':');
        cp.push_str(SLF4J_SIMPLE);
    }
    cp
}

const SLF4J_SIMPLE: &str = "/usr/share/java/slf4j-simple.jar";

/// The word after `Mode:` in a `srvr` (or `stat`) answer.
pub fn parse_mode(reply: &str) -> Option<String> {
    reply
        .lines()
        .find_map(|l| l.trim().strip_prefix("Mode:"))
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
}

/// `count` listeners on different free loopback ports; the caller drops them just
/// before the servers bind those ports.
fn reserve_ports(count: usize) -> Vec<TcpListener> {
    (0..count).map(|_| crate::reserve_port()).collect()
}

/// The proxies: for every directed pair (from, to), one for `to`'s quorum port and one
/// for its election port, both controlled by the pair's [`Link`].
#[derive(Debug)]
struct Mesh {
    links: BTreeMap<(usize, usize), Arc<Link>>,
    /// (from, to) -> (quorum proxy port, election proxy port).
    ports: BTreeMap<(usize, usize), (u16, u16)>,
    stop: Arc<AtomicBool>,
}

impl Mesh {
    fn new(nodes: &[Node]) -> std::io::Result<Mesh> {
        let mut links = BTreeMap::new();
        let mut listeners = BTreeMap::new();
        let mut ports = BTreeMap::new();
        for a in nodes {
            for b in nodes {
                if a.id == b.id {
                    continue;
                }
                let q = TcpListener::bind("127.0.0.1:0")?;
                let e = TcpListener::bind("127.0.0.1:0")?;
                ports.insert(
                    (a.id, b.id),
                    (q.local_addr()?.port(), e.local_addr()?.port()),
                );
                listeners.insert((a.id, b.id), (q, e));
                links.insert((a.id, b.id), Arc::new(Link::default()));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        for ((from, to), (q, e)) in listeners {
            let target = &nodes[to - 1];
            let link = Arc::clone(&links[&(from, to)]);
            // When `from` (lower id) dials `to`'s election port, ZooKeeper's `to` hangs
            // up and dials back the address `from` advertises in its first message: its
            // own, real port. Advertise the proxy for (to -> from) instead, so that
            // connection crosses the proxy too.
            let back = ports[&(to, from)].1;
            spawn_proxy(
                q,
                target.quorum_port,
                Arc::clone(&link),
                None,
                Arc::clone(&stop),
            );
            spawn_proxy(
                e,
                target.election_port,
                link,
                Some(format!("127.0.0.1:{back}")),
                Arc::clone(&stop),
            );
        }
        Ok(Mesh { links, ports, stop })
    }

    fn ports(&self, from: usize, to: usize) -> (u16, u16) {
        self.ports[&(from, to)]
    }

    fn link(&self, from: usize, to: usize) -> &Link {
        self.links
            .get(&(from, to))
            .unwrap_or_else(|| panic!("no link {from} -> {to}"))
    }

    /// Closes every connection and ends the accept loops (each is woken by a
    /// connection it then sees it must not serve).
    fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for link in self.links.values() {
            link.cut();
        }
        for (q, e) in self.ports.values() {
            let _ = TcpStream::connect(("127.0.0.1", *q));
            let _ = TcpStream::connect(("127.0.0.1", *e));
        }
    }
}

/// One directed link's state: whether it is cut or silenced, and its open
/// connections (both sockets of each), so a cut or a heal can close them.
#[derive(Debug, Default)]
struct Link {
    cut: AtomicBool,
    silent: AtomicBool,
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next: AtomicU64,
}

impl Link {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, (TcpStream, TcpStream)>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for (_, (a, b)) in self.conns().drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    fn silence(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    fn is_silent(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }

    /// Lets new connections through again; after a silence, first closes the
    /// connections it kept open, whose streams have lost bytes.
    fn heal(&self) {
        let mut conns = self.conns();
        if self.silent.swap(false, Ordering::SeqCst) {
            for (_, (a, b)) in conns.drain() {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Registers a proxied connection unless the link is cut; checked under the lock so
    /// a concurrent `cut` either refuses it or closes it.
    fn admit(&self, a: &TcpStream, b: &TcpStream) -> Option<u64> {
        let mut conns = self.conns();
        if self.cut.load(Ordering::SeqCst) {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        conns.insert(id, (a.try_clone().ok()?, b.try_clone().ok()?));
        Some(id)
    }

    fn forget(&self, id: u64) {
        if let Some((a, b)) = self.conns().remove(&id) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn spawn_proxy(
    listener: TcpListener,
    upstream_port: u16,
    link: Arc<Link>,
    advertise: Option<String>,
    stop: Arc<AtomicBool>,
) {
    let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
    std::thread::spawn(move || {
        for incoming in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(client) = incoming else { continue };
            if link.cut.load(Ordering::SeqCst) {
                continue; // dropped: accepted and closed, like a refused connection
            }
            if link.is_silent() {
                // Held open and drained, never reaching `upstream`, until the dialer
                // gives up or a heal or cut closes it.
                let Some(id) = link.admit(&client, &client) else {
                    continue;
                };
                let link = Arc::clone(&link);
                std::thread::spawn(move || {
                    let mut client = client;
                    let mut buf = [0u8; 4096];
                    while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
                    link.forget(id);
                });
                continue;
            }
            let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let Some(id) = link.admit(&client, &server) else {
                continue;
            };
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                link.forget(id);
                continue;
            };
            let up_link = Arc::clone(&link);
            let advertise = advertise.clone();
            std::thread::spawn(move || {
                pump(client, server, &up_link, advertise.as_deref());
                up_link.forget(id);
            });
            let down_link = Arc::clone(&link);
            std::thread::spawn(move || {
                pump(server2, client2, &down_link, None);
                down_link.forget(id);
            });
        }
    });
}

/// Copies `from` to `to` until either end closes, dropping what it reads while the
/// link is silenced. With `advertise`, a ZooKeeper election connection's first
/// message gets its address replaced (see [`Mesh::new`]).
fn pump(mut from: TcpStream, mut to: TcpStream, link: &Link, advertise: Option<&str>) {
    let mut buf = vec![0u8; 64 * 1024];
    if let Some(addr) = advertise {
        let Some(first) = read_first_message(&mut from) else {
            return;
        };
        let out = rewrite_initial_message(&first, addr).unwrap_or(first);
        if !link.is_silent() && to.write_all(&out).is_err() {
            return;
        }
    }
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !link.is_silent() && to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// ZooKeeper's election protocol versions (QuorumCnxManager.PROTOCOL_VERSION_V1/V2).
const ZK_PROTOCOL_VERSIONS: [i64; 2] = [-65536, -65535];
/// QuorumCnxManager's bound on the address part of the first message.
const ZK_MAX_INITIAL_ADDRESS: usize = 2048;

/// Reads the start of a connection: enough bytes to hold ZooKeeper's whole first
/// message if that is what it is, or whatever arrived first if it is not. None if the
/// connection closed before anything came.
fn read_first_message(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut acc = Vec::new();
    let mut buf = [0u8; 4096];
    let mut want = 8;
    loop {
        while acc.len() < want {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return (!acc.is_empty()).then_some(acc),
                Ok(n) => acc.extend_from_slice(&buf[..n]),
            }
        }
        let version = i64::from_be_bytes(acc[..8].try_into().ok()?);
        if !ZK_PROTOCOL_VERSIONS.contains(&version) {
            return Some(acc);
        }
        if acc.len() < 20 {
            want = 20;
            continue;
        }
        let len = i32::from_be_bytes(acc[16..20].try_into().ok()?);
        match usize::try_from(len) {
            Ok(len) if (1..=ZK_MAX_INITIAL_ADDRESS).contains(&len) && acc.len() < 20 + len => {
                want = 20 + len;
            }
            _ => return Some(acc),
        }
    }
}

/// ZooKeeper's first election message is `version: i64, sid: i64, len: i32,
/// address: [u8; len]` ("host:port", `|`-separated in V2). Returns the bytes with the
/// address replaced by `addr` (and whatever followed kept), or None if `bytes` does not
/// start with such a message.
fn rewrite_initial_message(bytes: &[u8], addr: &str) -> Option<Vec<u8>> {
    let version = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    if !ZK_PROTOCOL_VERSIONS.contains(&version) {
        return None;
    }
    let len = i32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    if !(1..=ZK_MAX_INITIAL_ADDRESS).contains(&len) {
        return None;
    }
    let rest = bytes.get(20 + len..)?;
    let new_len = i32::try_from(addr.len()).ok()?;
    let mut out = Vec::with_capacity(20 + addr.len() + rest.len());
    out.extend_from_slice(&bytes[..16]);
    out.extend_from_slice(&new_len.to_be_bytes());
    out.extend_from_slice(addr.as_bytes());
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initial(version: i64, sid: i64, addr: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&sid.to_be_bytes());
        v.extend_from_slice(&(addr.len() as i32).to_be_bytes());
        v.extend_from_slice(addr.as_bytes());
        v
    }

    #[test]
    fn the_advertised_election_address_is_replaced_and_what_follows_kept() {
        let mut msg = initial(-65535, 2, "127.0.0.1:3888|10.0.0.1:3888");
        msg.extend_from_slice(b"vote");
        let mut want = initial(-65535, 2, "127.0.0.1:40000");
        want.extend_from_slice(b"vote");
        assert_eq!(rewrite_initial_message(&msg, "127.0.0.1:40000"), Some(want));
        assert_eq!(
            rewrite_initial_message(&initial(-65536, 7, "h:1"), "127.0.0.1:2"),
            Some(initial(-65536, 7, "127.0.0.1:2"))
        );
    }

    #[test]
    fn other_protocols_and_truncated_messages_pass_untouched() {
        // Rookery's quorum frames start with a 4-byte length.
        assert_eq!(
            rewrite_initial_message(b"\0\0\0\x10rookery-quorum", "x:1"),
            None
        );
        let msg = initial(-65536, 1, "127.0.0.1:3888");
        assert_eq!(rewrite_initial_message(&msg[..msg.len() - 1], "x:1"), None);
        assert_eq!(rewrite_initial_message(&msg[..10], "x:1"), None);
        assert_eq!(
            rewrite_initial_message(&initial(-65536, 1, ""), "x:1"),
            None
        );
    }

    #[test]
    fn parse_mode_reads_the_srvr_line() {
        let reply = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\n\
                     Mode: follower\nNode count: 5\n";
        assert_eq!(parse_mode(reply).as_deref(), Some("follower"));
        assert_eq!(
            parse_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    /// An echo server behind one proxied link: bytes pass, a cut closes the open
    /// connection and refuses new ones, a heal lets new ones through again.
    #[test]
    fn a_cut_link_closes_and_refuses_until_healed() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in echo.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = Arc::new(Link::default());
        let stop = Arc::new(AtomicBool::new(false));
        spawn_proxy(
            listener,
            echo_port,
            Arc::clone(&link),
            None,
            Arc::clone(&stop),
        );

        let roundtrip = |s: &mut TcpStream| -> bool {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut b = [0u8; 4];
            s.write_all(b"ping").is_ok() && s.read_exact(&mut b).is_ok() && &b == b"ping"
        };
        let mut open = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(roundtrip(&mut open));

        link.cut();
        assert!(
            !roundtrip(&mut open),
            "the open connection survived the cut"
        );
        let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(
            !roundtrip(&mut fresh),
            "a new connection crossed a cut link"
        );

        link.heal();
        let mut healed = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(roundtrip(&mut healed));
        stop.store(true, Ordering::SeqCst);
    }

    /// A silenced link keeps its connections open but delivers nothing, nor does a
    /// new one; a heal closes them and lets new connections through.
    #[test]
    fn a_silenced_link_drops_bytes_keeps_connections_and_heals() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in echo.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = Arc::new(Link::default());
        let stop = Arc::new(AtomicBool::new(false));
        spawn_proxy(
            listener,
            echo_port,
            Arc::clone(&link),
            None,
            Arc::clone(&stop),
        );
        // Ok(true): echoed; Ok(false): silence (timed out); Err: closed.
        let roundtrip = |s: &mut TcpStream| -> Result<bool, ()> {
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            s.write_all(b"ping").map_err(|_| ())?;
            let mut b = [0u8; 4];
            match s.read(&mut b) {
                Ok(0) => Err(()),
                Ok(_) => Ok(true),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(false)
                }
                Err(_) => Err(()),
            }
        };
        let mut open = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(roundtrip(&mut open), Ok(true));

        link.silence();
        assert_eq!(roundtrip(&mut open), Ok(false), "bytes crossed a silence");
        let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(
            roundtrip(&mut fresh),
            Ok(false),
            "a new connection got through"
        );

        link.heal();
        let mut buf = [0u8; 16];
        open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(
            matches!(open.read(&mut buf), Ok(0) | Err(_)),
            "the heal left a connection that lost bytes open"
        );
        let mut healed = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(roundtrip(&mut healed), Ok(true));
        stop.store(true, Ordering::SeqCst);
    }
}
