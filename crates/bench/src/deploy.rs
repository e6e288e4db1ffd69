//! The servers under test, started by the integration-test harness (`rookery-tests`):
//! either system standalone or as a three-voter ensemble, plus what the memory cells
//! read from the outside (resident memory, data directory size).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rookery_tests::{Cluster, ClusterOptions, Server, Target};
use serde::Serialize;

use crate::error::BenchError;

/// Appended to both systems' zoo.cfg: ZooKeeper's default of 60 connections per client
/// address would refuse the benchmark's sessions, which all come from 127.0.0.1.
pub const EXTRA_CONFIG: &str = "maxClientCnxns=0\n";

/// How many servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    Standalone,
    /// Three voters, as `Cluster::start(3, 0)`.
    Ensemble3,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::Ensemble3 => "3-node",
        }
    }

    /// `standalone`, `ensemble`, `3-node`, `cluster`.
    pub fn parse(s: &str) -> Option<Topology> {
        match s.trim() {
            "standalone" => Some(Topology::Standalone),
            "ensemble" | "3-node" | "3node" | "cluster" => Some(Topology::Ensemble3),
            _ => None,
        }
    }
}

/// Runs `f`, turning a harness panic (which carries the servers' logs) into an error
/// with the start of its message.
pub fn harness<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, BenchError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".to_owned());
        BenchError::Harness(format!("{what}: {}", truncate(&msg, 1_500)))
    })
}

/// At most `max` bytes of `s`, cut at a character boundary, marked if cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// One system's servers.
#[derive(Debug)]
pub enum Deployment {
    Standalone(Server),
    Ensemble(Cluster),
}

impl Deployment {
    pub fn start(system: Target, topology: Topology) -> Result<Deployment, BenchError> {
        match topology {
            Topology::Standalone => harness(&format!("starting {}", system.name()), || {
                Server::start_with(system, EXTRA_CONFIG)
            })
            .map(Deployment::Standalone),
            Topology::Ensemble3 => {
                let opts = ClusterOptions {
                    voters: 3,
                    extra_config: EXTRA_CONFIG.to_owned(),
                    ..ClusterOptions::default()
                };
                match harness(&format!("starting a {} ensemble", system.name()), || {
                    Cluster::try_start(system, opts)
                })? {
                    Ok(c) => Ok(Deployment::Ensemble(c)),
                    Err(e) => Err(BenchError::Harness(truncate(&e.to_string(), 1_500))),
                }
            }
        }
    }

    /// Every server's client port, in id order.
    pub fn client_ports(&self) -> Vec<u16> {
        match self {
            Deployment::Standalone(s) => vec![s.port],
            Deployment::Ensemble(c) => c.ids().map(|n| c.client_port(n)).collect(),
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        match self {
            Deployment::Standalone(s) => s.pid().into_iter().collect(),
            Deployment::Ensemble(c) => c.ids().filter_map(|n| c.pid(n)).collect(),
        }
    }

    /// Waits until the servers are idle (under [`QUIET_TICKS`] of CPU in a
    /// [`QUIET_WINDOW`]), at most `limit`, and returns how long that took. What one
    /// system does after it was timed (our snapshot at start, ZooKeeper's JIT and GC)
    /// would otherwise run while the other system is timed, on the same two cores.
    pub fn wait_quiet(&self, limit: Duration) -> Result<Duration, BenchError> {
        let since = Instant::now();
        let ticks =
            |pids: &[u32]| -> Result<u64, BenchError> { pids.iter().map(|&p| cpu_ticks(p)).sum() };
        let pids = self.pids();
        let mut before = ticks(&pids)?;
        loop {
            std::thread::sleep(QUIET_WINDOW);
            let now = ticks(&pids)?;
            if now.saturating_sub(before) < QUIET_TICKS {
                return Ok(since.elapsed());
            }
            if since.elapsed() >= limit {
                return Err(BenchError::Timeout(format!(
                    "the servers were still busy after {} s",
                    limit.as_secs()
                )));
            }
            before = now;
        }
    }

    pub fn data_dirs(&self) -> Vec<PathBuf> {
        match self {
            Deployment::Standalone(s) => vec![s.data_dir()],
            Deployment::Ensemble(c) => c.ids().map(|n| c.data_dir(n)).collect(),
        }
    }

    /// Every server's log since its last start (an ensemble's headed by node ids).
    pub fn logs(&self) -> String {
        match self {
            Deployment::Standalone(s) => s.log(),
            Deployment::Ensemble(c) => c.logs(),
        }
    }

    /// The first line of `srvr` (`Zookeeper version: ...`), from the first server.
    pub fn version(&self) -> Option<String> {
        let port = *self.client_ports().first()?;
        let reply = rookery_tests::four_letter(port, "srvr")?;
        reply.lines().next().map(str::to_owned)
    }
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

/// The window [`Deployment::wait_quiet`] measures CPU use over.
pub const QUIET_WINDOW: Duration = Duration::from_millis(500);
/// CPU time (all servers together) under which a window counts as quiet: 50 ms, 10% of
/// one core. Idle servers use a few ticks (ZooKeeper's JVM its timers, ours its tick).
pub const QUIET_TICKS: u64 = 5;

/// User plus system CPU time of a `/proc/PID/stat` text, in clock ticks (USER_HZ,
/// 1/100 s on Linux).
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time process `pid` has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(&path, e))?;
    parse_stat_ticks(&text).ok_or_else(|| BenchError::Failed(format!("no CPU times in {path}")))
}

/// The resident memory of process `pid` (for ZooKeeper, the JVM itself).
pub fn rss_bytes(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(&path, e))?;
    parse_vm_rss(&text).ok_or_else(|| BenchError::Failed(format!("no VmRSS in {path}")))
}

/// Disk use of a directory tree as `du` counts it (allocated blocks, so ZooKeeper's
/// preallocated, sparse log files count for what they hold), and its apparent size.
pub fn dir_usage(dir: &Path) -> Result<(u64, u64), BenchError> {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| BenchError::io(d.display().to_string(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BenchError::io(d.display().to_string(), e))?;
            let meta = entry
                .metadata()
                .map_err(|e| BenchError::io(entry.path().display().to_string(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                allocated += meta.blocks() * 512;
                apparent += meta.len();
            }
        }
    }
    Ok((allocated, apparent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tjava\nVmPeak:\t 9000 kB\nVmRSS:\t  123456 kB\nThreads:\t40\n";
        assert_eq!(parse_vm_rss(status), Some(123_456 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        // utime 1500 and stime 27 (fields 14 and 15); the name holds ") 9 9 (".
        let stat = "4242 (java) 9 9 () S 1 4242 4242 0 -1 4194560 52 0 0 0 1500 27 0 0 20 0";
        assert_eq!(parse_stat_ticks(stat), Some(1527));
        assert_eq!(parse_stat_ticks("4242 (java) S 1"), None);
        let me = cpu_ticks(std::process::id()).unwrap();
        assert!(me < 100 * 3600, "{me} ticks in a test process");
    }

    #[test]
    fn a_directory_tree_is_summed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 10_000]).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![2u8; 5_000]).unwrap();
        let (allocated, apparent) = dir_usage(dir.path()).unwrap();
        assert_eq!(apparent, 15_000);
        assert!(allocated >= 15_000, "{allocated}");
    }

    #[test]
    fn topologies_parse() {
        assert_eq!(Topology::parse("standalone"), Some(Topology::Standalone));
        assert_eq!(Topology::parse("3-node"), Some(Topology::Ensemble3));
        assert_eq!(Topology::parse("ensemble"), Some(Topology::Ensemble3));
        assert_eq!(Topology::parse("five"), None);
    }
}
