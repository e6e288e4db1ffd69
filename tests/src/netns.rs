//! Hosts made of Linux network namespaces, for tests that need real addresses and a
//! network they can break at the packet level (root only).
//!
//! A [`Network`] is one private switch (a bridge in a namespace of its own) and any
//! number of hosts, each a namespace with one veth interface `eth0` on that bridge,
//! its own IPv4 address on a /24 and its own /etc/hosts naming every host
//! (`ip netns exec` bind-mounts /etc/netns/NAME/hosts over /etc/hosts). The test
//! process itself stays in the root namespace and reaches every host through one more
//! veth from the root namespace into the switch, with the subnet's `.254`, so clients
//! and four-letter words from the test need no namespace.
//!
//! Link faults ([`Network::block`]) are iptables rules in the receiving host's
//! namespace that match the sending host's address, so traffic from the test's own
//! address (clients, `srvr`) is never touched.
//!
//! Everything is named per run (`rookery-<pid>-<n>-...`, the subnet `10.213.<x>.0/24`
//! claimed through the root-side interface name `rk213-<x>`), so tests in parallel and
//! in other processes do not collide, and everything is removed on drop, also when the
//! test panics: every process still in a host, the namespaces, the bridge, the veths
//! and the /etc/netns entries. A run killed before its drop leaves its namespaces
//! behind; the next [`Network::create`] removes those whose process is gone.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// `ip netns exec NAME` bind-mounts each file of /etc/netns/NAME over /etc.
const ETC_NETNS: &str = "/etc/netns";
/// Where `ip netns add` pins the namespaces it names.
const RUN_NETNS: &str = "/run/netns";
/// Every namespace this module makes is called `rookery-<pid>-<n>-<what>`; the pid
/// tells a stale one (its process gone) from one in use.
const PREFIX: &str = "rookery-";
/// The first two octets of every subnet; the third is claimed per run.
const NET: [u8; 2] = [10, 213];
/// The root namespace's address on the subnet (hosts get .1 upwards).
const ROOT_HOST: u8 = 254;
/// The iptables chain in every host's filter table that holds the link faults; INPUT
/// jumps to it first, so [`Network::unblock_all`] is one flush per host.
const CHAIN: &str = "ROOKERY-LINKS";

/// Why a [`Network`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsError {
    /// This machine or process cannot do it (not root, no iproute2 or iptables,
    /// namespaces refused as in an unprivileged container): tests skip.
    Unsupported(String),
    /// It should have worked and did not.
    Failed(String),
}

impl std::fmt::Display for NetnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsError::Unsupported(m) => write!(f, "network namespaces unsupported: {m}"),
            NetnsError::Failed(m) => write!(f, "network namespaces failed: {m}"),
        }
    }
}

/// What happens to the packets of a blocked link (see [`Network::block`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// TCP segments are answered with a reset (`REJECT --reject-with tcp-reset`), so
    /// connections break and new ones are refused at once; other protocols are
    /// dropped. Resets themselves pass, or the receiver's reset for a packet it
    /// rejected would be lost at the other end when that end blocks the reverse
    /// direction too.
    Reject,
    /// Every packet is dropped: nothing is refused or reset, the sender sees silence
    /// until its own timeouts fire, as on a network that loses packets.
    Drop,
}

/// Why this process cannot make namespaces, if it cannot: not root, or no `ip`.
pub fn unsupported() -> Option<String> {
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

/// One host: a namespace with `eth0` on the switch.
#[derive(Debug)]
struct Host {
    name: String,
    namespace: String,
    /// /etc/netns/<namespace>, once created.
    etc: Option<PathBuf>,
}

/// A switch, the hosts on it and the root namespace's link to it; dropping it removes
/// them all (see the module documentation).
#[derive(Debug)]
pub struct Network {
    /// `<pid>-<n>`: this network's part of every namespace name.
    run: String,
    /// The third octet of this network's subnet.
    subnet: u8,
    /// The namespace holding the bridge `br0`, once created.
    switch: Option<String>,
    /// The root namespace's end of the veth to the switch, once created.
    root_link: Option<String>,
    hosts: Vec<Host>,
    /// Whether /etc/netns was there before this network made entries in it.
    etc_netns_existed: bool,
    /// Whether every host has the [`CHAIN`] (see [`Network::enable_firewall`]).
    firewall: bool,
    /// Blocked links: (from, to) host indices.
    blocks: BTreeMap<(usize, usize), Block>,
}

impl Network {
    /// A switch and one host per name (each `[a-z0-9-]`, as in /etc/hosts), host `i`
    /// at `10.213.<x>.<i+1>`. Unsupported when [`unsupported`] says so or `ip netns
    /// add` is refused; Failed for anything after that.
    pub fn create(names: &[&str]) -> Result<Network, NetnsError> {
        if let Some(reason) = unsupported() {
            return Err(NetnsError::Unsupported(reason));
        }
        reap_stale();
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let k = RUNS.fetch_add(1, Ordering::Relaxed);
        let mut net = Network {
            run: format!("{pid}-{k}"),
            subnet: 0,
            switch: None,
            root_link: None,
            hosts: Vec::new(),
            etc_netns_existed: Path::new(ETC_NETNS).is_dir(),
            firewall: false,
            blocks: BTreeMap::new(),
        };
        let switch = format!("{PREFIX}{}-sw", net.run);
        ip(&["netns", "add", &switch]).map_err(|e| {
            NetnsError::Unsupported(format!("cannot create a network namespace: {e}"))
        })?;
        net.switch = Some(switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]).map_err(NetnsError::Failed)?;
        ip(&["-n", &switch, "link", "set", "br0", "up"]).map_err(NetnsError::Failed)?;
        net.claim_subnet(pid.wrapping_add(k.wrapping_mul(97)))?;
        for name in names {
            net.add_host(name)?;
        }
        Ok(net)
    }

    /// Picks a free `10.213.<x>.0/24`, starting the search at `seed`: the root-side
    /// interface `rk213-<x>` is the claim (names are unique in the root namespace, so
    /// of two runs racing for one subnet exactly one gets it), and a subnet the root
    /// namespace already routes is skipped.
    fn claim_subnet(&mut self, seed: u32) -> Result<(), NetnsError> {
        let switch = self.switch.clone().unwrap_or_default();
        let in_use = format!(
            "{}\n{}",
            ip(&["-4", "-o", "addr", "show"]).unwrap_or_default(),
            ip(&["-4", "route", "show"]).unwrap_or_default()
        );
        for step in 0..256u32 {
            let Ok(x) = u8::try_from((seed.wrapping_add(step)) % 256) else {
                continue;
            };
            if in_use.contains(&format!("{}.{}.{x}.", NET[0], NET[1])) {
                continue;
            }
            let link = format!("rk{}-{x}", NET[1]);
            match ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", "uplink", "netns", &switch,
            ]) {
                Ok(_) => {}
                Err(e) if e.contains("File exists") => continue,
                Err(e) => return Err(NetnsError::Failed(e)),
            }
            self.root_link = Some(link.clone());
            self.subnet = x;
            let addr = format!("{}/24", self.root_addr());
            for args in [
                vec!["-n", &switch, "link", "set", "uplink", "master", "br0"],
                vec!["-n", &switch, "link", "set", "uplink", "up"],
                vec!["addr", "add", &addr, "dev", &link],
                vec!["link", "set", &link, "up"],
            ] {
                ip(&args).map_err(NetnsError::Failed)?;
            }
            return Ok(());
        }
        Err(NetnsError::Failed(format!(
            "no free subnet in {}.{}.0.0/16",
            NET[0], NET[1]
        )))
    }

    /// Adds a host named `name` on the switch and returns its index; every host's
    /// /etc/hosts is rewritten to name it (in place, so processes already running see
    /// it too). If the firewall is enabled the new host gets its chain.
    pub fn add_host(&mut self, name: &str) -> Result<usize, NetnsError> {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "host name {name:?} is not [a-z0-9-]+"
        );
        let i = self.hosts.len();
        let Some(last) = u8::try_from(i + 1).ok().filter(|&h| h < ROOT_HOST) else {
            return Err(NetnsError::Failed(format!(
                "a /24 has room for {} hosts",
                ROOT_HOST - 1
            )));
        };
        let switch = self.switch.clone().unwrap_or_default();
        let ns = format!("{PREFIX}{}-{name}", self.run);
        ip(&["netns", "add", &ns]).map_err(NetnsError::Failed)?;
        self.hosts.push(Host {
            name: name.to_owned(),
            namespace: ns.clone(),
            etc: None,
        });
        let port = format!("h{i}");
        let addr = format!("{}/24", self.subnet_addr(last));
        for args in [
            vec![
                "link", "add", "name", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &switch,
            ],
            vec!["-n", &switch, "link", "set", &port, "master", "br0"],
            vec!["-n", &switch, "link", "set", &port, "up"],
            vec!["-n", &ns, "addr", "add", &addr, "dev", "eth0"],
            vec!["-n", &ns, "link", "set", "eth0", "up"],
            vec!["-n", &ns, "link", "set", "lo", "up"],
        ] {
            ip(&args).map_err(NetnsError::Failed)?;
        }
        let etc = Path::new(ETC_NETNS).join(&ns);
        std::fs::create_dir_all(&etc)
            .map_err(|e| NetnsError::Failed(format!("{}: {e}", etc.display())))?;
        self.hosts[i].etc = Some(etc);
        self.write_hosts_files()?;
        if self.firewall {
            self.firewall_for(i)
                .map_err(|e| NetnsError::Failed(format!("iptables on {name}: {e}")))?;
        }
        Ok(i)
    }

    fn write_hosts_files(&self) -> Result<(), NetnsError> {
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
        for i in 0..self.hosts.len() {
            let _ = writeln!(text, "{}\t{}", self.addr(i), self.hosts[i].name);
        }
        for h in &self.hosts {
            if let Some(etc) = &h.etc {
                std::fs::write(etc.join("hosts"), &text)
                    .map_err(|e| NetnsError::Failed(format!("{}/hosts: {e}", etc.display())))?;
            }
        }
        Ok(())
    }

    fn subnet_addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(NET[0], NET[1], self.subnet, last)
    }

    /// How many hosts there are.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i`'s name, as its peers' /etc/hosts has it.
    pub fn name(&self, i: usize) -> &str {
        &self.host(i).name
    }

    /// Host `i`'s namespace, for `ip netns exec`.
    pub fn namespace(&self, i: usize) -> &str {
        &self.host(i).namespace
    }

    fn host(&self, i: usize) -> &Host {
        self.hosts
            .get(i)
            .unwrap_or_else(|| panic!("no host {i} among {}", self.hosts.len()))
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let _ = self.host(i);
        // `add_host` refused indices whose address would not fit.
        self.subnet_addr(u8::try_from(i + 1).unwrap_or(0))
    }

    /// The test process's address on the subnet (the root namespace's end).
    pub fn root_addr(&self) -> Ipv4Addr {
        self.subnet_addr(ROOT_HOST)
    }

    /// `ip netns exec <host i's namespace> program`: `ip` enters the namespace and
    /// execs `program` in its own process, so the child's pid is the program's.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.namespace(i)]).arg(program);
        c
    }

    /// Runs `program args` on host `i` and returns what it printed (stdout, then
    /// stderr), whatever its exit status.
    pub fn exec(&self, i: usize, program: impl AsRef<OsStr>, args: &[&str]) -> String {
        let out = self
            .command(i, program)
            .args(args)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) => {
                let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&out.stderr));
                s
            }
            Err(e) => format!("ip netns exec {}: {e}", self.namespace(i)),
        }
    }

    /// `iptables -w ARGS` on host `i`.
    fn iptables(&self, i: usize, args: &[&str]) -> Result<String, String> {
        run(
            self.command(i, "iptables").arg("-w").args(args),
            &format!("iptables {} (on {})", args.join(" "), self.name(i)),
        )
    }

    /// Gives every host (and every host added later) the chain link faults go in.
    /// Unsupported when iptables is missing or does not work in a namespace.
    pub fn enable_firewall(&mut self) -> Result<(), NetnsError> {
        if !self.firewall {
            for i in 0..self.hosts.len() {
                self.firewall_for(i).map_err(|e| {
                    NetnsError::Unsupported(format!("iptables in a network namespace: {e}"))
                })?;
            }
            self.firewall = true;
        }
        Ok(())
    }

    fn firewall_for(&self, i: usize) -> Result<(), String> {
        self.iptables(i, &["-N", CHAIN])?;
        self.iptables(i, &["-I", "INPUT", "-j", CHAIN])?;
        Ok(())
    }

    /// The rules that make `how` for packets from `from_ip`, in the receiver's chain.
    fn rules(how: Block, from_ip: &str) -> Vec<Vec<&str>> {
        match how {
            Block::Reject => vec![
                vec![
                    "-s",
                    from_ip,
                    "-p",
                    "tcp",
                    "!",
                    "--tcp-flags",
                    "RST",
                    "RST",
                    "-j",
                    "REJECT",
                    "--reject-with",
                    "tcp-reset",
                ],
                vec!["-s", from_ip, "!", "-p", "tcp", "-j", "DROP"],
            ],
            Block::Drop => vec![vec!["-s", from_ip, "-j", "DROP"]],
        }
    }

    /// Blocks the packets host `from` sends to host `to`, and only those: the rules sit
    /// in `to`'s INPUT chain and match `from`'s address, so packets are lost on
    /// arrival, `to`'s packets to `from` still arrive, and the test process's traffic
    /// is untouched. Why only INPUT: a rule in the sender's OUTPUT chain would also
    /// catch the resets a [`Block::Reject`] at the other end sends back, and one place
    /// for every rule makes a link's state one lookup.
    ///
    /// At the TCP level a one-way block still stalls connections both ways (each
    /// direction needs the other's acknowledgements): with [`Block::Reject`], `from`'s
    /// connections to or from `to` are reset as soon as `from` sends on them, `from`'s
    /// new connections to `to` are refused, and `to`'s new connections to `from` hang
    /// (the handshake's reply is rejected) until `to`'s connect timeout; with
    /// [`Block::Drop`], nothing is reset and everything involving a packet from `from`
    /// hangs. A later block of the same link replaces the earlier one.
    pub fn block(&mut self, from: usize, to: usize, how: Block) -> Result<(), String> {
        assert_ne!(from, to, "a host's link to itself");
        let _ = (self.host(from), self.host(to));
        if self.blocks.get(&(from, to)) == Some(&how) {
            return Ok(());
        }
        self.enable_firewall().map_err(|e| e.to_string())?;
        self.unblock(from, to)?;
        let from_ip = self.addr(from).to_string();
        for rule in Network::rules(how, &from_ip) {
            let mut args = vec!["-A", CHAIN];
            args.extend(rule);
            self.iptables(to, &args)?;
        }
        self.blocks.insert((from, to), how);
        Ok(())
    }

    /// Removes the block on packets from `from` to `to`, if any. Connections a
    /// [`Block::Drop`] stalled but did not time out resume: TCP resends what was lost.
    pub fn unblock(&mut self, from: usize, to: usize) -> Result<(), String> {
        let Some(how) = self.blocks.remove(&(from, to)) else {
            return Ok(());
        };
        let from_ip = self.addr(from).to_string();
        for rule in Network::rules(how, &from_ip) {
            let mut args = vec!["-D", CHAIN];
            args.extend(rule);
            self.iptables(to, &args)?;
        }
        Ok(())
    }

    /// Removes every block (one flush of the chain per host).
    pub fn unblock_all(&mut self) -> Result<(), String> {
        if self.firewall {
            for i in 0..self.hosts.len() {
                self.iptables(i, &["-F", CHAIN])?;
            }
        }
        self.blocks.clear();
        Ok(())
    }

    /// How packets from `from` to `to` are blocked, if they are.
    pub fn blocked(&self, from: usize, to: usize) -> Option<Block> {
        self.blocks.get(&(from, to)).copied()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let namespaces: Vec<String> = self
            .hosts
            .iter()
            .map(|h| h.namespace.clone())
            .chain(self.switch.clone())
            .collect();
        for ns in &namespaces {
            kill_everything_in(ns);
        }
        // Deleting the switch would take it along, but only once the kernel gets
        // round to it: a new run must not find the interface name still taken.
        if let Some(link) = &self.root_link {
            if let Err(e) = ip(&["link", "del", link]) {
                eprintln!("netns cleanup: {e}");
            }
        }
        for ns in &namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns cleanup: {e}");
            }
        }
        for h in &self.hosts {
            if let Some(etc) = &h.etc {
                let _ = std::fs::remove_dir_all(etc);
            }
        }
        if !self.etc_netns_existed {
            // Only if empty: another run may be using it.
            let _ = std::fs::remove_dir(ETC_NETNS);
        }
    }
}

/// SIGKILLs every process in namespace `ns`: a namespace outlives `ip netns del` while
/// a process is in it, and a server left behind would hold its ports and data.
fn kill_everything_in(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Removes the namespaces (and /etc/netns entries) of runs whose process is gone:
/// killed before their drop could run.
fn reap_stale() {
    let Ok(entries) = std::fs::read_dir(RUN_NETNS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        kill_everything_in(&name);
        let _ = ip(&["netns", "del", &name]);
        let _ = std::fs::remove_dir_all(Path::new(ETC_NETNS).join(&name));
    }
}

/// Runs `ip ARGS`; the error carries what ip printed.
fn ip(args: &[&str]) -> Result<String, String> {
    run(
        Command::new("ip").args(args),
        &format!("ip {}", args.join(" ")),
    )
}

/// Runs `cmd` to completion; Ok(stdout) if it succeeded, else what it printed.
fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
