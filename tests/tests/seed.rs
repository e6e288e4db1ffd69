//! The seed tutorial (../shared/seed), exactly as written, on three hosts.
//!
//! Three Linux network namespaces play the tutorial's machines hadoop1, hadoop2 and
//! hadoop3 ([`rookery_tests::netns::Network`]): each has one veth interface (on a
//! 10.213.x.0/24 claimed for the run) on a bridge that lives in a fourth, private
//! namespace, and its own /etc/hosts (`ip netns exec` bind-mounts
//! /etc/netns/NAME/hosts over /etc/hosts) naming all three. So every node gets the
//! tutorial's zoo.cfg word for word (`server.0=hadoop1:2888:3888`, ...; only dataDir is
//! per node) and its myid 0, 1 or 2, the servers are started, and the tutorial's check
//! must hold: `rookery status` and, where Debian's zookeeper is installed, the
//! tutorial's own `zkServer.sh status` print one `Mode: leader` and two
//! `Mode: follower`. Then kazoo, run inside a namespace, writes through hadoop1 and
//! reads it back through hadoop2 and hadoop3, and through the connect string
//! `hadoop1:2181,hadoop2:2181,hadoop3:2181`.
//!
//! `ROOKERY_TEST_TARGET=zookeeper` runs the same steps on Apache ZooKeeper 3.8, started
//! by `zkServer.sh start-foreground zoo.cfg`: that proves the test (CI runs both).
//!
//! Needs root and `ip` (iproute2); without them, or if `ip netns add` is refused (an
//! unprivileged container), the test prints why and passes. Namespaces, bridge,
//! /etc/netns entries and every process in the namespaces are removed when the test
//! ends, also when it fails. The namespaces are named per run
//! (`rookery-<pid>-<n>-hadoop1`, ...); the host names inside them are hadoop1..3.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rookery_tests::netns::{self, NetnsError, Network};
use rookery_tests::{Target, ZOOKEEPER_JAR, client_script, missing, rookery_bin};

const ZK_SERVER_SH: &str = "/usr/share/zookeeper/bin/zkServer.sh";
const HOSTS: [&str; 3] = ["hadoop1", "hadoop2", "hadoop3"];
/// From the first start to one leader and two followers; ZooKeeper needs the most
/// (three JVMs on two cores).
const SETTLE: Duration = Duration::from_secs(45);

/// The tutorial's zoo.cfg: zoo_sample.cfg's settings, dataDir, one line per server.
fn tutorial_zoo_cfg(data_dir: &Path) -> String {
    format!(
        "tickTime=2000\n\
         initLimit=10\n\
         syncLimit=5\n\
         dataDir={}\n\
         clientPort=2181\n\
         server.0=hadoop1:2888:3888\n\
         server.1=hadoop2:2888:3888\n\
         server.2=hadoop3:2888:3888\n",
        data_dir.display()
    )
}

#[test]
fn seed_tutorial_three_hosts_one_leader_two_followers() {
    let target = Target::from_env();
    let mut needs = vec!["kazoo"];
    if target == Target::ZooKeeper {
        needs.push("zookeeper");
    }
    if let Some(reason) = missing(&needs) {
        println!("SKIPPED: {reason}");
        return;
    }
    if target == Target::ZooKeeper && !Path::new(ZK_SERVER_SH).is_file() {
        println!("SKIPPED: {ZK_SERVER_SH} is not installed");
        return;
    }
    if let Some(reason) = netns::unsupported() {
        println!("SKIPPED: {reason}");
        return;
    }
    let began = Instant::now();
    // Built before the namespaces exist, so a slow build does not hold them.
    let rookery = rookery_bin();
    let mut net = match Hosts::create() {
        Ok(net) => net,
        Err(NetnsError::Unsupported(reason)) => {
            println!("SKIPPED: cannot build the three hosts: {reason}");
            return;
        }
        Err(e) => panic!("building the three hosts: {e}"),
    };
    println!(
        "hosts: {} (namespaces {:?}), set up in {:?}",
        HOSTS.join(", "),
        (0..HOSTS.len())
            .map(|i| net.net.namespace(i))
            .collect::<Vec<_>>(),
        began.elapsed()
    );

    // The tutorial: the same zoo.cfg on every node, myid 0, 1, 2 in dataDir.
    let mut configs = Vec::new();
    for (i, host) in HOSTS.iter().enumerate() {
        let node = net.dir.path().join(host);
        let data = node.join("data");
        let conf = node.join("conf");
        std::fs::create_dir_all(&data).expect("dataDir");
        std::fs::create_dir_all(&conf).expect("conf dir");
        std::fs::write(data.join("myid"), format!("{i}\n")).expect("myid");
        let cfg = conf.join("zoo.cfg");
        std::fs::write(&cfg, tutorial_zoo_cfg(&data)).expect("zoo.cfg");
        configs.push(cfg);
    }

    // `zkServer.sh start` on each node (for Rookery: `rookery serve`).
    for (i, cfg) in configs.iter().enumerate() {
        let (program, args): (PathBuf, Vec<String>) = match target {
            Target::Rookery => (
                rookery.clone(),
                vec!["serve".into(), "--config".into(), path_arg(cfg)],
            ),
            Target::ZooKeeper => (
                ZK_SERVER_SH.into(),
                vec!["start-foreground".into(), path_arg(cfg)],
            ),
        };
        net.spawn(i, &program, &args);
    }

    // `zkServer.sh status` on each node, until the election is over.
    let deadline = Instant::now() + SETTLE;
    let modes = loop {
        let modes: Vec<Option<String>> = (0..HOSTS.len())
            .map(|i| {
                mode_of(&net.exec(i, &rookery, &["status", "--config", &path_arg(&configs[i])]))
            })
            .collect();
        if settled(&modes) {
            break modes;
        }
        net.assert_running(target);
        assert!(
            Instant::now() < deadline,
            "no leader and two followers after {SETTLE:?}: {modes:?}\n{}",
            net.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let modes: Vec<String> = modes.into_iter().flatten().collect();
    for (i, host) in HOSTS.iter().enumerate() {
        println!("{host}: rookery status -> Mode: {}", modes[i]);
    }
    println!("settled after {:?}", began.elapsed());

    // The tutorial's own status command agrees (it asks `srvr` through a JVM).
    if Path::new(ZK_SERVER_SH).is_file() && Path::new(ZOOKEEPER_JAR).is_file() {
        for (i, host) in HOSTS.iter().enumerate() {
            let out = net.exec(
                i,
                Path::new(ZK_SERVER_SH),
                &["status", &path_arg(&configs[i])],
            );
            assert_eq!(
                mode_of(&out).as_deref(),
                Some(modes[i].as_str()),
                "{host}: zkServer.sh status printed:\n{out}"
            );
            println!("{host}: zkServer.sh status -> Mode: {}", modes[i]);
        }
    } else {
        println!("zkServer.sh status not checked: Debian's zookeeper is not installed");
    }

    // A write through one node is read through the others, by name.
    let script = client_script("seed_replication.py");
    let ports: Vec<String> = HOSTS.iter().map(|h| format!("{h}:2181")).collect();
    let ensemble = ports.join(",");
    let out = net.exec(
        0,
        Path::new(rookery_tests::DEBIAN_PYTHON),
        &[
            &path_arg(&script),
            &ports[0],
            &ports[1],
            &ports[2],
            "--",
            &ensemble,
        ],
    );
    print!("{out}");
    assert_eq!(
        out.lines().last(),
        Some("OK"),
        "kazoo in {} failed:\n{out}\n{}",
        HOSTS[0],
        net.logs()
    );
    // And it was the server meant: Rookery's `srvr` version says so, ZooKeeper's not.
    let versions: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Zookeeper version:"))
        .collect();
    assert_eq!(versions.len(), HOSTS.len(), "{out}");
    for v in versions {
        assert_eq!(v.contains("-rookery-"), target == Target::Rookery, "{v}");
    }
    println!("{} passed in {:?}", target.name(), began.elapsed());
}

/// One leader and the rest followers.
fn settled(modes: &[Option<String>]) -> bool {
    let leaders = modes
        .iter()
        .filter(|m| m.as_deref() == Some("leader"))
        .count();
    let followers = modes
        .iter()
        .filter(|m| m.as_deref() == Some("follower"))
        .count();
    leaders == 1 && followers == modes.len() - 1
}

/// The word after `Mode:` in `zkServer.sh status` / `rookery status` output.
fn mode_of(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Mode:"))
        .map(|m| m.trim().to_owned())
}

fn path_arg(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_owned()
}

/// The three hosts and the servers started on them; on drop the servers' process
/// groups are killed, then the network removes everything else.
struct Hosts {
    /// Servers by host index, each the leader of its own process group (zkServer.sh
    /// starts the JVM as its child).
    children: Vec<(usize, Child)>,
    net: Network,
    /// zoo.cfg, dataDir and logs of every node; removed after the network, so after
    /// every process that might write there.
    dir: tempfile::TempDir,
}

impl Hosts {
    fn create() -> Result<Hosts, NetnsError> {
        let net = Network::create(&HOSTS)?;
        let hosts = Hosts {
            children: Vec::new(),
            net,
            dir: tempfile::tempdir().map_err(|e| NetnsError::Failed(format!("tempdir: {e}")))?,
        };
        // The hosts see each other by name before anything starts.
        for (i, host) in HOSTS.iter().enumerate() {
            let peer = (i + 1) % HOSTS.len();
            let out = hosts.exec(i, Path::new("getent"), &["hosts", HOSTS[peer]]);
            if !out.contains(&hosts.net.addr(peer).to_string()) {
                return Err(NetnsError::Failed(format!(
                    "{host} does not resolve its peers: {out}"
                )));
            }
        }
        Ok(hosts)
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", HOSTS[i]))
    }

    /// Starts a server on host `i` in its own process group, logging to a file.
    fn spawn(&mut self, i: usize, program: &Path, args: &[String]) {
        let log = std::fs::File::create(self.log_path(i)).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = self
            .net
            .command(i, program)
            .args(args)
            // Three JVMs on two cores: the client compiler and serial GC start faster.
            .env(
                "SERVER_JVMFLAGS",
                "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1",
            )
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("ip netns exec");
        self.children.push((i, child));
    }

    /// Runs a command on host `i` and returns what it printed (stdout, then stderr).
    fn exec(&self, i: usize, program: &Path, args: &[&str]) -> String {
        self.net.exec(i, program, args)
    }

    /// Panics with the logs when a server has exited.
    fn assert_running(&mut self, target: Target) {
        let mut dead = Vec::new();
        for (i, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                dead.push(format!(
                    "{} on {} exited: {status}",
                    target.name(),
                    HOSTS[*i]
                ));
            }
        }
        assert!(dead.is_empty(), "{}\n{}", dead.join("\n"), self.logs());
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for (i, host) in HOSTS.iter().enumerate() {
            let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            // The tail is what explains a failure; three whole JVM logs drown it.
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let _ = writeln!(all, "--- {host} (last {} lines)", tail.len());
            for line in tail.iter().rev() {
                let _ = writeln!(all, "{line}");
            }
        }
        all
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        // Then `net` drops: anything else in the hosts (a status JVM, a client) is
        // killed and the namespaces go.
    }
}
