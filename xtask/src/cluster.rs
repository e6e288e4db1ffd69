//! `cargo xtask cluster`: a local Rookery ensemble under `target/cluster/`, laid out
//! the way the seed tutorial lays out ZooKeeper: one directory per node with its
//! `zoo.cfg` (every node listing the same `server.N` lines), `data/myid` and a log.
//! Ids run 1..=N, voters first, then observers.
//!
//! The servers run detached (setsid, a pid file per node) so they outlive this
//! command; `status`, `kill`, `restart`, `logs` and `down` find them by those files.
//! A server that refuses ensemble configs (Rookery before replication) makes `up`
//! fail with that reason: nothing pretends to be a cluster.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

/// Node N serves clients on `BASE_CLIENT_PORT + N - 1`: 2181, 2182, 2183 as usual.
const BASE_CLIENT_PORT: u16 = 2181;
/// Node N's quorum port is `BASE_QUORUM_PORT + N`: away from 2888, which a local
/// ZooKeeper may hold.
const BASE_QUORUM_PORT: u16 = 12888;
/// Node N's election port is `BASE_ELECTION_PORT + N`.
const BASE_ELECTION_PORT: u16 = 13888;
/// Node N's gRPC admin API is on `BASE_ADMIN_PORT + N - 1` (the default, 7181, for node 1).
const BASE_ADMIN_PORT: u16 = 7181;
/// More nodes than this would run the client ports into the quorum ports' range
/// neighbourhood and make no sense on one machine anyway.
const MAX_NODES: u16 = 99;

/// What a Rookery without replication says about an ensemble config.
const REFUSES_ENSEMBLES: &str = "replication is not implemented yet";
/// How long `up` and `restart` wait for the nodes to report their modes.
const MODE_WAIT: Duration = Duration::from_secs(60);
/// How long `down` and `restart` give a SIGTERMed server before SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(10);

#[derive(Subcommand)]
pub(crate) enum ClusterCmd {
    /// Build Rookery (release), write each node's zoo.cfg and myid, start every node and
    /// wait until one leads and the others follow or observe.
    Up {
        /// Voting servers (ids 1..=nodes).
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Non-voting observers, numbered after the voters.
        #[arg(long, default_value_t = 0)]
        observers: u16,
    },
    /// Each node: id, role, pid, and its `Mode:` line as `zkServer.sh status` prints it.
    Status,
    /// Stop every node (SIGTERM, then SIGKILL after 10 s). The data stays unless --wipe.
    Down {
        /// Also delete target/cluster/: configs, data and logs.
        #[arg(long)]
        wipe: bool,
    },
    /// SIGKILL node N: no shutdown path runs.
    Kill { id: u16 },
    /// Stop node N if it runs, start it again with the same config and data, and wait
    /// until it reports a mode.
    Restart { id: u16 },
    /// Print node N's log (every start appends to it).
    Logs {
        id: u16,
        /// Keep printing as the log grows (tail -F).
        #[arg(long, short)]
        follow: bool,
    },
}

pub(crate) fn run(root: &Path, cmd: ClusterCmd) -> Result<()> {
    let cluster = root.join("target").join("cluster");
    match cmd {
        ClusterCmd::Up { nodes, observers } => up(root, &cluster, Layout::new(nodes, observers)?),
        ClusterCmd::Status => status(root, &cluster),
        ClusterCmd::Down { wipe } => down(&cluster, wipe),
        ClusterCmd::Kill { id } => kill(&cluster, id),
        ClusterCmd::Restart { id } => restart(root, &cluster, id),
        ClusterCmd::Logs { id, follow } => logs(&cluster, id, follow),
    }
}

/// How many voters and observers; everything else (ports, ids, files) follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    voters: u16,
    observers: u16,
}

impl Layout {
    fn new(voters: u16, observers: u16) -> Result<Layout> {
        if voters == 0 {
            bail!("an ensemble needs at least one voter (--nodes 1 or more)");
        }
        if voters.saturating_add(observers) > MAX_NODES {
            bail!("at most {MAX_NODES} nodes on one machine");
        }
        Ok(Layout { voters, observers })
    }

    fn total(self) -> u16 {
        self.voters + self.observers
    }

    fn ids(self) -> std::ops::RangeInclusive<u16> {
        1..=self.total()
    }

    fn is_observer(self, id: u16) -> bool {
        id > self.voters
    }

    /// The `server.N` lines, the same in every node's zoo.cfg.
    fn server_lines(self) -> String {
        self.ids()
            .map(|id| {
                let role = if self.is_observer(id) {
                    ":observer"
                } else {
                    ""
                };
                format!(
                    "server.{id}=127.0.0.1:{}:{}{role}\n",
                    quorum_port(id),
                    election_port(id)
                )
            })
            .collect()
    }

    /// Node `id`'s zoo.cfg, its data directory being `data_dir`.
    fn zoo_cfg(self, id: u16, data_dir: &Path) -> String {
        let mut cfg = format!(
            "# Written by `cargo xtask cluster up` for server.{id} of {} voter(s) and {} \
             observer(s).\n\
             tickTime=2000\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=*\n\
             admin.grpcAddress=127.0.0.1:{}\n",
            self.voters,
            self.observers,
            data_dir.display(),
            client_port(id),
            admin_port(id),
        );
        if self.is_observer(id) {
            cfg.push_str("peerType=observer\n");
        }
        cfg.push_str(&self.server_lines());
        cfg
    }

    fn describe(self) -> String {
        format!(
            "{} voter(s) and {} observer(s)",
            self.voters, self.observers
        )
    }
}

fn client_port(id: u16) -> u16 {
    BASE_CLIENT_PORT + id - 1
}

fn quorum_port(id: u16) -> u16 {
    BASE_QUORUM_PORT + id
}

fn election_port(id: u16) -> u16 {
    BASE_ELECTION_PORT + id
}

fn admin_port(id: u16) -> u16 {
    BASE_ADMIN_PORT + id - 1
}

/// `myid` holds the id and a newline, as the tutorial's `echo N > myid` writes it.
fn myid_text(id: u16) -> String {
    format!("{id}\n")
}

/// `127.0.0.1:2181,127.0.0.1:2182,...` for clients that fail over.
fn connect_string(layout: Layout) -> String {
    layout
        .ids()
        .map(|id| format!("127.0.0.1:{}", client_port(id)))
        .collect::<Vec<_>>()
        .join(",")
}

fn node_dir(cluster: &Path, id: u16) -> PathBuf {
    cluster.join(format!("node{id}"))
}

fn log_path(cluster: &Path, id: u16) -> PathBuf {
    node_dir(cluster, id).join("rookery.log")
}

fn pid_path(cluster: &Path, id: u16) -> PathBuf {
    node_dir(cluster, id).join("rookery.pid")
}

fn rookery_bin(root: &Path) -> PathBuf {
    crate::target_dir(root).join("release").join("rookery")
}

/// The nodes already under `cluster` (directories `nodeN` holding a zoo.cfg), by id,
/// with their zoo.cfg text.
fn existing_nodes(cluster: &Path) -> Result<Vec<(u16, String)>> {
    let mut nodes = Vec::new();
    let Ok(entries) = std::fs::read_dir(cluster) else {
        return Ok(nodes);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("node"))
            .and_then(|n| n.parse::<u16>().ok())
        else {
            continue;
        };
        if let Ok(cfg) = std::fs::read_to_string(entry.path().join("zoo.cfg")) {
            nodes.push((id, cfg));
        }
    }
    nodes.sort();
    Ok(nodes)
}

/// `up` over an existing cluster must not change its shape: a node count or role that
/// differs would leave servers with different ideas of the ensemble.
fn check_existing(existing: &[(u16, String)], layout: Layout, cluster: &Path) -> Result<()> {
    if existing.is_empty() {
        return Ok(());
    }
    let ids: Vec<u16> = existing.iter().map(|(id, _)| *id).collect();
    let want: Vec<u16> = layout.ids().collect();
    let same = ids == want
        && existing
            .iter()
            .all(|(id, cfg)| *cfg == layout.zoo_cfg(*id, &node_dir(cluster, *id).join("data")));
    if !same {
        let observers = existing
            .iter()
            .filter(|(_, cfg)| cfg.lines().any(|l| l.trim() == "peerType=observer"))
            .count();
        bail!(
            "{} already holds a different cluster (nodes {ids:?}, {observers} observer(s)), \
             not {}; run `cargo xtask cluster down --wipe` to remove it first",
            cluster.display(),
            layout.describe()
        );
    }
    Ok(())
}

fn up(root: &Path, cluster: &Path, layout: Layout) -> Result<()> {
    check_existing(&existing_nodes(cluster)?, layout, cluster)?;
    crate::run(
        "build",
        crate::cargo().args(["build", "--release", "-p", "rookery"]),
    )?;
    let bin = rookery_bin(root);

    for id in layout.ids() {
        let data = node_dir(cluster, id).join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        std::fs::write(data.join("myid"), myid_text(id))?;
        std::fs::write(
            node_dir(cluster, id).join("zoo.cfg"),
            layout.zoo_cfg(id, &data),
        )?;
    }

    let mut started: Vec<(u16, Child)> = Vec::new();
    for id in layout.ids() {
        if let Some(pid) = running_pid(cluster, id) {
            println!("node {id} is already running (pid {pid})");
            continue;
        }
        started.push((id, start_node(&bin, cluster, id, "up")?));
    }

    let deadline = Instant::now() + MODE_WAIT;
    loop {
        check_started(cluster, &mut started)?;
        let modes: Vec<(u16, Option<String>)> = layout
            .ids()
            .map(|id| (id, node_mode(&bin, cluster, id)))
            .collect();
        if settled(layout, &modes) {
            print_modes(cluster, layout, &modes);
            println!(
                "\nRookery ensemble of {} is up.\n  connect:  {}\n  \
                 try:      zkCli.sh -server {}\n  admin:    {} admin --endpoint \
                 127.0.0.1:{} status\n  more:     cargo xtask cluster \
                 status | kill N | restart N | logs N [--follow] | down [--wipe]",
                layout.describe(),
                connect_string(layout),
                connect_string(layout),
                bin.display(),
                admin_port(1),
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            print_modes(cluster, layout, &modes);
            bail!(
                "no leader with every other node following or observing within {} s; the \
                 nodes keep running: see `cargo xtask cluster logs N`, stop them with \
                 `cargo xtask cluster down`",
                MODE_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Fails if a node started by this command has exited: with the server's own reason
/// when it refuses ensembles (stopping the rest, so no half cluster stays behind).
fn check_started(cluster: &Path, started: &mut [(u16, Child)]) -> Result<()> {
    let mut exited = Vec::new();
    for (id, child) in started.iter_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            exited.push((*id, status));
        }
    }
    if exited.is_empty() {
        return Ok(());
    }
    // Give the others a moment to fail the same way before reading the logs.
    std::thread::sleep(Duration::from_millis(500));
    let refused = exited.iter().any(|(id, _)| {
        std::fs::read_to_string(log_path(cluster, *id))
            .is_ok_and(|log| log.contains(REFUSES_ENSEMBLES))
    });
    if refused {
        for (id, child) in started.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(pid_path(cluster, *id));
        }
        bail!(
            "this rookery refuses ensemble configs ({REFUSES_ENSEMBLES}), so there is no \
             cluster to run yet; nothing was left running. The configs stay in {} (log: {})",
            cluster.display(),
            log_path(cluster, exited[0].0).display()
        );
    }
    let (id, status) = exited[0];
    let _ = std::fs::remove_file(pid_path(cluster, id));
    bail!(
        "node {id} exited during start-up ({status}); the end of {}:\n{}",
        log_path(cluster, id).display(),
        log_tail(cluster, id, 20)
    )
}

/// One leader among the voters, every other voter a follower, every observer an observer.
fn settled(layout: Layout, modes: &[(u16, Option<String>)]) -> bool {
    let mut leaders = 0;
    for (id, mode) in modes {
        match (layout.is_observer(*id), mode.as_deref()) {
            (false, Some("leader")) => leaders += 1,
            (false, Some("follower")) | (true, Some("observer")) => {}
            _ => return false,
        }
    }
    leaders == 1
}

fn print_modes(cluster: &Path, layout: Layout, modes: &[(u16, Option<String>)]) {
    for (id, mode) in modes {
        let role = if layout.is_observer(*id) {
            "observer"
        } else {
            "voter"
        };
        let pid =
            running_pid(cluster, *id).map_or_else(|| "not running".into(), |p| format!("pid {p}"));
        println!(
            "node{id}  {role:<8}  127.0.0.1:{:<5}  admin 127.0.0.1:{:<5}  {pid:<12}  Mode: {}",
            client_port(*id),
            admin_port(*id),
            mode.as_deref().unwrap_or("-")
        );
    }
}

/// Starts node `id` detached and records its pid; the log is appended to, with a line
/// saying which command started it.
fn start_node(bin: &Path, cluster: &Path, id: u16, why: &str) -> Result<Child> {
    if !bin.is_file() {
        bail!(
            "{} does not exist; run `cargo xtask cluster up` (it builds it)",
            bin.display()
        );
    }
    let cfg = node_dir(cluster, id).join("zoo.cfg");
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(cluster, id))
        .with_context(|| format!("opening {}", log_path(cluster, id).display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    std::io::Write::write_all(
        &mut log,
        format!("----- started by `cargo xtask cluster {why}` at unix time {now} -----\n")
            .as_bytes(),
    )?;
    // setsid: the server must outlive this command and the terminal it ran in.
    let child = Command::new("setsid")
        .arg(bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    std::fs::write(pid_path(cluster, id), format!("{}\n", child.id()))?;
    Ok(child)
}

/// The `Mode:` word `rookery status` reports for node `id` (the zkServer.sh status
/// path operators use), or None if it is not serving.
fn node_mode(bin: &Path, cluster: &Path, id: u16) -> Option<String> {
    let out = Command::new(bin)
        .args(["status", "--config"])
        .arg(node_dir(cluster, id).join("zoo.cfg"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_mode(&String::from_utf8_lossy(&out.stdout))
}

/// The word after `Mode:` in `srvr`-style text.
fn parse_mode(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Mode:"))
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
}

fn status(root: &Path, cluster: &Path) -> Result<()> {
    let nodes = existing_nodes(cluster)?;
    if nodes.is_empty() {
        println!(
            "no cluster under {}; run `cargo xtask cluster up`",
            cluster.display()
        );
        return Ok(());
    }
    let bin = rookery_bin(root);
    for (id, cfg) in &nodes {
        let observer = cfg.lines().any(|l| l.trim() == "peerType=observer");
        let role = if observer { "observer" } else { "voter" };
        let (pid, mode) = match running_pid(cluster, *id) {
            Some(pid) => {
                let mode = node_mode(&bin, cluster, *id).map_or_else(
                    || "not serving (electing?)".into(),
                    |m| format!("Mode: {m}"),
                );
                (format!("pid {pid}"), mode)
            }
            None => ("not running".to_string(), "-".to_string()),
        };
        println!("node{id}  {role:<8}  {pid:<12}  {mode}");
    }
    Ok(())
}

fn down(cluster: &Path, wipe: bool) -> Result<()> {
    let nodes = existing_nodes(cluster)?;
    let running: Vec<(u16, u32)> = nodes
        .iter()
        .filter_map(|(id, _)| running_pid(cluster, *id).map(|pid| (*id, pid)))
        .collect();
    for (_, pid) in &running {
        signal(*pid, "TERM")?;
    }
    // One deadline for all: they shut down in parallel.
    let deadline = Instant::now() + STOP_WAIT;
    for (id, pid) in &running {
        if wait_gone(*pid, deadline.saturating_duration_since(Instant::now())) {
            println!("stopped node {id} (pid {pid})");
        } else {
            signal(*pid, "KILL")?;
            wait_gone(*pid, STOP_WAIT);
            println!(
                "killed node {id} (pid {pid}) with SIGKILL: it had not exited {} s after SIGTERM",
                STOP_WAIT.as_secs()
            );
        }
    }
    for (id, _) in &nodes {
        let _ = std::fs::remove_file(pid_path(cluster, *id));
    }
    if running.is_empty() {
        println!("no node was running");
    }
    if wipe && cluster.exists() {
        std::fs::remove_dir_all(cluster)
            .with_context(|| format!("removing {}", cluster.display()))?;
        println!("removed {}", cluster.display());
    }
    Ok(())
}

fn require_node(cluster: &Path, id: u16) -> Result<()> {
    if !node_dir(cluster, id).join("zoo.cfg").is_file() {
        let ids: Vec<u16> = existing_nodes(cluster)?.iter().map(|(id, _)| *id).collect();
        bail!(
            "no node {id} under {} (nodes: {ids:?}); run `cargo xtask cluster up`",
            cluster.display()
        );
    }
    Ok(())
}

fn kill(cluster: &Path, id: u16) -> Result<()> {
    require_node(cluster, id)?;
    let Some(pid) = running_pid(cluster, id) else {
        println!("node {id} is not running");
        return Ok(());
    };
    signal(pid, "KILL")?;
    wait_gone(pid, STOP_WAIT);
    let _ = std::fs::remove_file(pid_path(cluster, id));
    println!("killed node {id} (pid {pid}) with SIGKILL");
    Ok(())
}

fn restart(root: &Path, cluster: &Path, id: u16) -> Result<()> {
    require_node(cluster, id)?;
    if let Some(pid) = running_pid(cluster, id) {
        signal(pid, "TERM")?;
        if !wait_gone(pid, STOP_WAIT) {
            signal(pid, "KILL")?;
            wait_gone(pid, STOP_WAIT);
        }
        println!("stopped node {id} (pid {pid})");
    }
    let bin = rookery_bin(root);
    let mut child = start_node(&bin, cluster, id, "restart")?;
    println!("started node {id} (pid {})", child.id());
    let deadline = Instant::now() + MODE_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(pid_path(cluster, id));
            bail!(
                "node {id} exited ({status}); the end of {}:\n{}",
                log_path(cluster, id).display(),
                log_tail(cluster, id, 20)
            );
        }
        if let Some(mode) = node_mode(&bin, cluster, id) {
            println!("node {id}: Mode: {mode}");
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "node {id} runs but reported no mode within {} s; see `cargo xtask cluster \
                 logs {id}`",
                MODE_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn logs(cluster: &Path, id: u16, follow: bool) -> Result<()> {
    require_node(cluster, id)?;
    let path = log_path(cluster, id);
    if follow {
        let status = Command::new("tail")
            .args(["-n", "+1", "-F"])
            .arg(&path)
            .status()
            .context("running tail")?;
        if !status.success() {
            bail!("tail -F {} failed ({status})", path.display());
        }
        return Ok(());
    }
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::io::copy(&mut file, &mut std::io::stdout().lock())?;
    Ok(())
}

/// The last `lines` lines of node `id`'s log.
fn log_tail(cluster: &Path, id: u16, lines: usize) -> String {
    let log = std::fs::read_to_string(log_path(cluster, id)).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `kill -SIG pid` (the workspace forbids the `unsafe` a libc call needs).
fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    // It may have exited on its own meanwhile; that is what we wanted.
    if !status.success() && alive(pid) {
        bail!("kill -{sig} {pid} failed ({status})");
    }
    Ok(())
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// The pid in node `id`'s pid file, if that process is still a live rookery.
fn running_pid(cluster: &Path, id: u16) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_path(cluster, id))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// Whether `pid` is a running (not zombie) rookery process: the pid file may be stale
/// and its number reused by something else since.
fn alive(pid: u32) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let is_rookery = std::fs::read(proc.join("cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("rookery"));
    // /proc/PID/stat is "pid (comm) STATE ..."; comm may hold spaces, so split at ')'.
    let zombie = std::fs::read_to_string(proc.join("stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    });
    is_rookery && !zombie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(voters: u16, observers: u16) -> Layout {
        Layout::new(voters, observers).unwrap()
    }

    #[test]
    fn three_voters_get_the_tutorial_layout() {
        let cfg = layout(3, 0).zoo_cfg(1, Path::new("/c/node1/data"));
        assert_eq!(
            cfg,
            "# Written by `cargo xtask cluster up` for server.1 of 3 voter(s) and 0 observer(s).\n\
             tickTime=2000\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir=/c/node1/data\n\
             clientPort=2181\n\
             clientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=*\n\
             admin.grpcAddress=127.0.0.1:7181\n\
             server.1=127.0.0.1:12889:13889\n\
             server.2=127.0.0.1:12890:13890\n\
             server.3=127.0.0.1:12891:13891\n"
        );
        assert_eq!(myid_text(1), "1\n");
        assert_eq!(
            connect_string(layout(3, 0)),
            "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"
        );
    }

    #[test]
    fn every_node_lists_the_same_servers_and_its_own_ports() {
        let l = layout(3, 2);
        for id in l.ids() {
            let cfg = l.zoo_cfg(id, Path::new("/d"));
            let servers: String = cfg
                .lines()
                .filter(|x| x.starts_with("server."))
                .map(|x| format!("{x}\n"))
                .collect();
            assert_eq!(servers, l.server_lines(), "node {id}");
            assert!(
                cfg.contains(&format!("\nclientPort={}\n", 2180 + id)),
                "{cfg}"
            );
            assert!(
                cfg.contains(&format!("\nadmin.grpcAddress=127.0.0.1:{}\n", 7180 + id)),
                "{cfg}"
            );
        }
        let mut ports: Vec<u16> = l
            .ids()
            .flat_map(|id| {
                [
                    client_port(id),
                    quorum_port(id),
                    election_port(id),
                    admin_port(id),
                ]
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 4 * usize::from(l.total()), "ports clash");
    }

    #[test]
    fn observers_come_after_the_voters_and_say_so() {
        let l = layout(3, 2);
        assert_eq!(
            l.server_lines(),
            "server.1=127.0.0.1:12889:13889\n\
             server.2=127.0.0.1:12890:13890\n\
             server.3=127.0.0.1:12891:13891\n\
             server.4=127.0.0.1:12892:13892:observer\n\
             server.5=127.0.0.1:12893:13893:observer\n"
        );
        for id in 1..=3 {
            assert!(!l.zoo_cfg(id, Path::new("/d")).contains("peerType"));
        }
        for id in 4..=5 {
            assert!(
                l.zoo_cfg(id, Path::new("/d"))
                    .contains("\npeerType=observer\n")
            );
        }
    }

    #[test]
    fn an_ensemble_needs_a_voter() {
        assert!(Layout::new(0, 1).is_err());
        assert!(Layout::new(1, 0).is_ok());
        assert!(Layout::new(90, 10).is_err());
    }

    #[test]
    fn up_refuses_to_reshape_an_existing_cluster() {
        let dir = Path::new("/c");
        let three = layout(3, 0);
        let existing: Vec<(u16, String)> = three
            .ids()
            .map(|id| (id, three.zoo_cfg(id, &node_dir(dir, id).join("data"))))
            .collect();
        assert!(check_existing(&existing, three, dir).is_ok());
        assert!(check_existing(&[], layout(5, 0), dir).is_ok());

        let err = check_existing(&existing, layout(5, 0), dir).unwrap_err();
        assert!(err.to_string().contains("down --wipe"), "{err}");
        // Same count, different roles.
        assert!(check_existing(&existing, layout(2, 1), dir).is_err());
        // The old standalone layout (node0).
        let old = [(0, "clientPort=2181\n".to_string())];
        assert!(check_existing(&old, three, dir).is_err());
    }

    /// A scratch directory holding a fake `rookery` script, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, script: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("xtask-cluster-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("bin")).unwrap();
            let bin = dir.join("bin").join("rookery");
            std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
            Command::new("chmod").arg("+x").arg(&bin).status().unwrap();
            let l = layout(3, 0);
            for id in l.ids() {
                let data = node_dir(&dir, id).join("data");
                std::fs::create_dir_all(&data).unwrap();
                std::fs::write(node_dir(&dir, id).join("zoo.cfg"), l.zoo_cfg(id, &data)).unwrap();
            }
            Scratch(dir)
        }

        fn start_all(&self) -> Vec<(u16, Child)> {
            let bin = self.0.join("bin").join("rookery");
            (1..=3)
                .map(|id| (id, start_node(&bin, &self.0, id, "test").unwrap()))
                .collect()
        }

        /// check_started's verdict once the fakes have had time to exit.
        fn verdict(&self, started: &mut [(u16, Child)]) -> Result<()> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let r = check_started(&self.0, started);
                if r.is_err() || Instant::now() >= deadline {
                    return r;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_server_that_refuses_ensembles_fails_up_with_its_reason() {
        let s = Scratch::new(
            "refuses",
            "echo 'Error: Rookery runs standalone only for now; replication is not \
             implemented yet' >&2; exit 1",
        );
        let mut started = s.start_all();
        let err = s.verdict(&mut started).unwrap_err().to_string();
        assert!(err.contains("refuses ensemble configs"), "{err}");
        assert!(err.contains("nothing was left running"), "{err}");
        for id in 1..=3 {
            assert!(!pid_path(&s.0, id).exists(), "node {id}'s pid file stayed");
            assert!(running_pid(&s.0, id).is_none());
        }
    }

    #[test]
    fn a_server_that_dies_otherwise_fails_up_with_its_log() {
        let s = Scratch::new("dies", "echo 'cannot bind 127.0.0.1:2181' >&2; exit 3");
        let mut started = s.start_all();
        let err = s.verdict(&mut started).unwrap_err().to_string();
        assert!(err.contains("exited during start-up"), "{err}");
        assert!(err.contains("cannot bind 127.0.0.1:2181"), "{err}");
    }

    #[test]
    fn running_servers_are_found_by_their_pid_files() {
        let s = Scratch::new("runs", "while :; do sleep 0.1; done");
        let mut started = s.start_all();
        assert!(check_started(&s.0, &mut started).is_ok());
        for (id, child) in &mut started {
            // The script's cmdline names .../bin/rookery, as a real server's does. Read
            // during its exec (setsid, then sh), /proc/PID/cmdline can be empty for a
            // moment (seen once in CI), so wait for it.
            let deadline = Instant::now() + Duration::from_secs(5);
            while running_pid(&s.0, *id).is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(running_pid(&s.0, *id), Some(child.id()));
            let _ = child.kill();
            let _ = child.wait();
            assert_eq!(running_pid(&s.0, *id), None);
        }
        let log = std::fs::read_to_string(log_path(&s.0, 1)).unwrap();
        assert!(
            log.contains("started by `cargo xtask cluster test`"),
            "{log}"
        );
    }

    #[test]
    fn mode_is_read_from_the_status_output() {
        let out = "Client port found: 2181. Client address: 127.0.0.1. Client SSL: false.\n\
                   Mode: follower\n";
        assert_eq!(parse_mode(out).as_deref(), Some("follower"));
        assert_eq!(parse_mode("Error contacting service."), None);
        let modes = |m: [&str; 3]| -> Vec<(u16, Option<String>)> {
            (1..=3)
                .zip(m)
                .map(|(i, m)| (i, Some(m.to_string())))
                .collect()
        };
        let l = layout(2, 1);
        assert!(settled(l, &modes(["follower", "leader", "observer"])));
        assert!(!settled(l, &modes(["leader", "leader", "observer"])));
        assert!(!settled(l, &modes(["follower", "follower", "leader"])));
        assert!(!settled(
            l,
            &[(1, Some("leader".into())), (2, None), (3, None)]
        ));
    }
}
