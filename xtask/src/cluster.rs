//! `cargo xtask cluster up|status|down`: a local Rookery cluster under
//! `target/cluster/`, laid out the way the seed tutorial lays out ZooKeeper: one
//! directory per node with its `zoo.cfg`, `data/myid` (ids from 0) and a log.
//!
//! Replication does not exist yet, so `up` starts one standalone server (node 0) and
//! says so; the three-node layout replaces it when the replication issue lands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

/// The first client port; node N listens on `BASE_CLIENT_PORT + N`.
const BASE_CLIENT_PORT: u16 = 2181;

#[derive(Subcommand)]
pub(crate) enum ClusterCmd {
    /// Build Rookery (release) and start the local cluster.
    Up,
    /// Print each node's `Mode:` as `zkServer.sh status` does.
    Status,
    /// Stop every node (their data stays under target/cluster/).
    Down,
}

pub(crate) fn run(root: &Path, cmd: ClusterCmd) -> Result<()> {
    let dir = root.join("target").join("cluster");
    match cmd {
        ClusterCmd::Up => up(root, &dir),
        ClusterCmd::Status => status(root, &dir),
        ClusterCmd::Down => down(&dir),
    }
}

fn node_dir(cluster: &Path, id: u16) -> PathBuf {
    cluster.join(format!("node{id}"))
}

fn rookery_bin(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("release").join("rookery")
}

fn up(root: &Path, cluster: &Path) -> Result<()> {
    crate::run(
        "build",
        crate::cargo().args(["build", "--release", "-p", "rookery"]),
    )?;
    let bin = rookery_bin(root);
    // Standalone until replication exists: one node, id 0.
    let id = 0u16;
    let dir = node_dir(cluster, id);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let port = BASE_CLIENT_PORT + id;
    if let Some(pid) = running_pid(&dir) {
        println!("node {id} is already running (pid {pid}) on 127.0.0.1:{port}");
        return Ok(());
    }
    std::fs::write(data.join("myid"), format!("{id}\n"))?;
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "# Written by `cargo xtask cluster up`.\n\
             tickTime=2000\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={port}\n\
             4lw.commands.whitelist=*\n",
            data.display()
        ),
    )?;
    let log = std::fs::File::create(dir.join("rookery.log"))?;
    // setsid: the server must outlive this command and the terminal it ran in.
    let child = Command::new("setsid")
        .arg(&bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    std::fs::write(dir.join("rookery.pid"), format!("{}\n", child.id()))?;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(&bin)
            .args(["status", "--config"])
            .arg(&cfg)
            .output()?;
        if out.status.success() {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "node {id} did not start; see {}",
                dir.join("rookery.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "Rookery is running standalone (replication is not implemented yet, so this is one \
         node, not three).\n  connect:  zkCli.sh -server 127.0.0.1:{port}\n  config:   {}\n  log:      {}\n  \
         stop:     cargo xtask cluster down",
        cfg.display(),
        dir.join("rookery.log").display()
    );
    Ok(())
}

fn status(root: &Path, cluster: &Path) -> Result<()> {
    let bin = rookery_bin(root);
    let mut any = false;
    for id in 0..3u16 {
        let cfg = node_dir(cluster, id).join("zoo.cfg");
        if !cfg.is_file() {
            continue;
        }
        any = true;
        println!("node {id}:");
        let out = Command::new(&bin)
            .args(["status", "--config"])
            .arg(&cfg)
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    if !any {
        println!(
            "no cluster under {}; run `cargo xtask cluster up`",
            cluster.display()
        );
    }
    Ok(())
}

fn down(cluster: &Path) -> Result<()> {
    for id in 0..3u16 {
        let dir = node_dir(cluster, id);
        if let Some(pid) = running_pid(&dir) {
            let status = Command::new("kill").arg(pid.to_string()).status()?;
            if status.success() {
                println!("stopped node {id} (pid {pid})");
            }
        }
        let _ = std::fs::remove_file(dir.join("rookery.pid"));
    }
    Ok(())
}

/// The pid in the node's pid file, if that process is still alive.
fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("rookery.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}
