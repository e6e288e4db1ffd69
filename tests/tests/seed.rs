//! The seed tutorial (../shared/seed), exactly as written, on three hosts.
//!
//! Three Linux network namespaces play the tutorial's machines hadoop1, hadoop2 and
//! hadoop3: each has one veth interface (10.77.0.1-3/24) on a bridge that lives in a
//! fourth, private namespace, and its own /etc/hosts (`ip netns exec` bind-mounts
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
//! ends, also when it fails. If a namespace named hadoop1..3 already exists (another
//! run, or a stale one), this run uses hadoopN-<pid> instead; the host names inside the
//! namespaces are hadoop1..3 either way.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rookery_tests::{Target, ZOOKEEPER_JAR, client_script, missing, rookery_bin};

const ZK_SERVER_SH: &str = "/usr/share/zookeeper/bin/zkServer.sh";
const HOSTS: [&str; 3] = ["hadoop1", "hadoop2", "hadoop3"];
const SUBNET: &str = "10.77.0";
/// `ip netns exec NAME` bind-mounts each file of /etc/netns/NAME over /etc.
const ETC_NETNS: &str = "/etc/netns";
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
    if let Some(reason) = cannot_make_namespaces() {
        println!("SKIPPED: {reason}");
        return;
    }
    let began = Instant::now();
    // Built before the namespaces exist, so a slow build does not hold them.
    let rookery = rookery_bin();
    let mut net = match Hosts::create() {
        Ok(net) => net,
        Err(reason) => {
            println!("SKIPPED: cannot build the three hosts: {reason}");
            return;
        }
    };
    println!(
        "hosts: {} (namespaces {:?}), set up in {:?}",
        HOSTS.join(", "),
        net.namespaces,
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

/// Why this machine cannot run the test, if it cannot.
fn cannot_make_namespaces() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        return Some("network namespaces need root (run as root, as CI does)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) is not installed".into()),
    }
}

/// Runs `ip ARGS`; the error carries what ip printed.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists() || Path::new("/var/run/netns").join(name).exists()
}

/// The three hosts and everything made for them; Drop removes it all.
struct Hosts {
    /// The namespaces of hadoop1..3, in order.
    namespaces: Vec<String>,
    /// The namespace holding the bridge.
    switch: Option<String>,
    /// /etc/netns/NAME directories this run created.
    etc_dirs: Vec<PathBuf>,
    /// Whether /etc/netns was there before this run.
    etc_netns_existed: bool,
    /// Servers by host index, each the leader of its own process group.
    children: Vec<(usize, Child)>,
    /// zoo.cfg, dataDir and logs of every node; removed last.
    dir: tempfile::TempDir,
}

impl Hosts {
    fn create() -> Result<Hosts, String> {
        let pid = std::process::id();
        let taken = HOSTS.iter().any(|h| namespace_exists(h));
        let names: Vec<String> = HOSTS
            .iter()
            .map(|h| {
                if taken {
                    format!("{h}-{pid}")
                } else {
                    (*h).to_owned()
                }
            })
            .collect();
        let mut net = Hosts {
            namespaces: Vec::new(),
            switch: None,
            etc_dirs: Vec::new(),
            etc_netns_existed: Path::new(ETC_NETNS).is_dir(),
            children: Vec::new(),
            dir: tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?,
        };
        let switch = format!("rookery-seed-sw-{pid}");
        ip(&["netns", "add", &switch])?;
        net.switch = Some(switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;

        let mut hosts_file = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
        for (i, h) in HOSTS.iter().enumerate() {
            let _ = writeln!(hosts_file, "{SUBNET}.{}\t{h}", i + 1);
        }
        for (i, ns) in names.iter().enumerate() {
            ip(&["netns", "add", ns])?;
            net.namespaces.push(ns.clone());
            let port = format!("p{}", i + 1);
            ip(&[
                "link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", &port,
                "netns", &switch,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            let addr = format!("{SUBNET}.{}/24", i + 1);
            ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let etc = Path::new(ETC_NETNS).join(ns);
            std::fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
            net.etc_dirs.push(etc.clone());
            std::fs::write(etc.join("hosts"), &hosts_file)
                .map_err(|e| format!("{}/hosts: {e}", etc.display()))?;
        }
        // The hosts see each other by name before anything starts.
        for i in 0..HOSTS.len() {
            let out = net.exec(i, Path::new("getent"), &["hosts", HOSTS[(i + 1) % 3]]);
            if !out.contains(&format!("{SUBNET}.{}", (i + 1) % 3 + 1)) {
                return Err(format!("{} does not resolve its peers: {out}", HOSTS[i]));
            }
        }
        Ok(net)
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", HOSTS[i]))
    }

    /// Starts a server on host `i` in its own process group, logging to a file.
    fn spawn(&mut self, i: usize, program: &Path, args: &[String]) {
        let log = std::fs::File::create(self.log_path(i)).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i]])
            .arg(program)
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
        let out = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i]])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        s
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
        // Anything else still running in the hosts (a status JVM, a client) goes too:
        // a namespace outlives `ip netns del` while a process is in it.
        for ns in &self.namespaces {
            if let Ok(pids) = ip(&["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
        }
        for ns in self.namespaces.iter().chain(self.switch.iter()) {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        for dir in &self.etc_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !self.etc_netns_existed {
            // Only if empty: another run may be using it.
            let _ = std::fs::remove_dir(ETC_NETNS);
        }
    }
}
