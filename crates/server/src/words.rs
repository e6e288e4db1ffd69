//! The server side of the four-letter words on the client port, in ZooKeeper's text
//! formats (monitoring scripts, zktop and kazoo parse them).

use std::fmt::Write as _;
use std::net::SocketAddr;

use rookery_tree::DataTree;
use rookery_tree::watch::WatchManager;
use rookery_wire::frame::FourLetterWord;

use crate::stats::ServerStats;

/// The version we report. The `3.9.x` prefix is what clients parse (kazoo reads the
/// digits of `zookeeper.version=` from `envi`): the protocol level Rookery speaks.
pub(crate) const VERSION: &str = concat!(
    "3.9.3-rookery-",
    env!("CARGO_PKG_VERSION"),
    ", built on 1970-01-01 00:00 UTC"
);

/// Per-connection counters for `cons`.
#[derive(Debug, Clone)]
pub(crate) struct ConnStats {
    pub received: u64,
    pub sent: u64,
    pub established_ms: i64,
}

impl ConnStats {
    pub(crate) fn new(now_ms: i64) -> Self {
        ConnStats {
            received: 0,
            sent: 0,
            established_ms: now_ms,
        }
    }
}

/// Settings `conf` and `dirs` print.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigDescription {
    /// -1 without `clientPort`, as ZooKeeper prints it.
    pub client_port: i32,
    pub secure_client_port: i32,
    pub data_dir: String,
    pub data_log_dir: String,
    pub tick_ms: i64,
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub server_id: i64,
}

#[derive(Debug)]
pub(crate) struct ConnView<'a> {
    pub id: u64,
    pub peer: SocketAddr,
    pub session: Option<i64>,
    pub timeout_ms: i32,
    pub stats: &'a ConnStats,
}

/// Everything a four-letter word may print, borrowed from the core for one answer.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub mode: &'a str,
    /// The leader's learners, for `mntr` (ZooKeeper prints these only on the leader).
    pub leader: Option<LeaderSummary>,
    pub tree: &'a DataTree,
    pub watches: &'a WatchManager,
    pub stats: &'a ServerStats,
    pub conns: Vec<ConnView<'a>>,
    pub sessions: usize,
    pub describe: &'a ConfigDescription,
    pub now_ms: i64,
    pub started_ms: i64,
    /// The asking connection (ZooKeeper counts it among `Connections`); `None` for a
    /// metrics scrape, which is not a client connection.
    pub peer: Option<SocketAddr>,
}

/// What the leader knows of its learners.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LeaderSummary {
    pub learners: usize,
    pub synced_followers: usize,
    pub synced_observers: usize,
    pub pending_syncs: usize,
}

/// ZooKeeper's answer from a server that is electing or syncing.
pub(crate) const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

/// Words ZooKeeper answers even while the server is not serving.
pub(crate) fn answers_when_not_serving(word: FourLetterWord) -> bool {
    use FourLetterWord as W;
    matches!(word, W::Ruok | W::Envi | W::Conf | W::Isro | W::Dirs)
}

pub(crate) fn answer(word: FourLetterWord, v: &View<'_>) -> String {
    use FourLetterWord as W;
    match word {
        W::Ruok => "imok".to_owned(),
        W::Srvr => srvr(v, false),
        W::Stat => srvr(v, true),
        W::Mntr => mntr(v),
        W::Conf => conf(v),
        W::Cons => format!("{}\n", cons(v, false)),
        W::Crst => "Connection stats reset.\n".to_owned(),
        W::Srst => "Server stats reset.\n".to_owned(),
        W::Envi => envi(),
        W::Wchs => {
            let s = v.watches.summary();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                s.connections, s.paths, s.total
            )
        }
        W::Wchc => {
            let mut out = String::new();
            for (watcher, paths) in v.watches.by_watcher() {
                let session = v
                    .conns
                    .iter()
                    .find(|c| c.id == *watcher)
                    .and_then(|c| c.session)
                    .unwrap_or(0);
                let _ = writeln!(out, "0x{session:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            format!("{out}\n")
        }
        W::Wchp => {
            let mut out = String::new();
            for (path, watchers) in v.watches.by_path() {
                let _ = writeln!(out, "{path}");
                for w in watchers {
                    let session = v
                        .conns
                        .iter()
                        .find(|c| c.id == w)
                        .and_then(|c| c.session)
                        .unwrap_or(0);
                    let _ = writeln!(out, "\t0x{session:x}");
                }
            }
            format!("{out}\n")
        }
        W::Dump => dump(v),
        W::Isro => if v.mode == "read-only" { "ro" } else { "rw" }.to_owned(),
        W::Dirs => format!(
            "datadir_size: {0}\nlogdir_size: {0}\n",
            dir_size(&v.describe.data_dir)
        ),
        W::Hash => format!("digest: {:x}\n", v.tree.digest()),
        // ZooTrace's default mask (client requests, server packets, sessions, warnings),
        // printed without a newline as ZooKeeper does; Rookery has no trace levels.
        W::Gtmk => "306".to_owned(),
        W::Stmk => "0\n".to_owned(),
    }
}

fn connections(v: &View<'_>) -> usize {
    // ZooKeeper counts the connection asking for the stats too.
    v.conns.len() + usize::from(v.peer.is_some())
}

fn srvr(v: &View<'_>, with_clients: bool) -> String {
    let mut out = format!("Zookeeper version: {VERSION}\n");
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&cons(v, true));
        out.push('\n');
    }
    let l = &v.stats.latency;
    let _ = write!(
        out,
        "Latency min/avg/max: {}/{:?}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: 0\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        l.min(),
        l.avg(),
        l.max(),
        v.stats.packets_received,
        v.stats.packets_sent,
        connections(v),
        v.tree.last_zxid(),
        v.mode,
        v.tree.node_count(),
    );
    out
}

/// `brief` is the form `stat` prints (ZooKeeper's `dumpConnectionInfo(pw, true)`): the
/// counters without the session details.
fn cons(v: &View<'_>, brief: bool) -> String {
    let mut out = String::new();
    for c in &v.conns {
        let details = match c.session {
            Some(s) if !brief => format!(
                ",sid=0x{s:x},est={},to={}",
                c.stats.established_ms, c.timeout_ms
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            " /{}[1](queued=0,recved={},sent={}{details})",
            c.peer, c.stats.received, c.stats.sent
        );
    }
    if let Some(peer) = v.peer {
        let _ = writeln!(out, " /{peer}[0](queued=0,recved=1,sent=0)");
    }
    out
}

/// One `mntr` value: printed as `mntr` prints it, and exported as a `zk_*` gauge.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MntrValue {
    Text(String),
    Int(i64),
    Float(f64),
    /// Printed in hex, exported as a number.
    Zxid(i64),
}

impl std::fmt::Display for MntrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MntrValue::Text(t) => f.write_str(t),
            MntrValue::Int(n) => write!(f, "{n}"),
            MntrValue::Float(x) => write!(f, "{x:?}"),
            MntrValue::Zxid(z) => write!(f, "0x{z:x}"),
        }
    }
}

fn int(n: impl TryInto<i64>) -> MntrValue {
    MntrValue::Int(n.try_into().unwrap_or(i64::MAX))
}

/// `mntr`'s rows, in its order; `/metrics` exports the same rows.
pub(crate) fn mntr_rows(v: &View<'_>) -> Vec<(&'static str, MntrValue)> {
    use MntrValue::{Float, Text, Zxid};
    let s = v.watches.summary();
    let l = &v.stats.latency;
    let mut rows = vec![
        ("zk_version", Text(VERSION.to_owned())),
        ("zk_server_state", Text(v.mode.to_owned())),
        ("zk_avg_latency", Float(l.avg())),
        ("zk_max_latency", int(l.max())),
        ("zk_min_latency", int(l.min())),
        ("zk_packets_received", int(v.stats.packets_received)),
        ("zk_packets_sent", int(v.stats.packets_sent)),
        ("zk_num_alive_connections", int(connections(v))),
        ("zk_outstanding_requests", int(0)),
        ("zk_znode_count", int(v.tree.node_count())),
        ("zk_watch_count", int(v.watches.watch_count())),
        ("zk_ephemerals_count", int(v.tree.ephemeral_count())),
        (
            "zk_approximate_data_size",
            int(v.tree.approximate_data_size()),
        ),
        ("zk_global_sessions", int(v.sessions)),
        ("zk_local_sessions", int(0)),
        ("zk_uptime", int(v.now_ms - v.started_ms)),
        ("zk_fsync_count", int(v.stats.fsync_count)),
        ("zk_last_zxid", Zxid(v.tree.last_zxid())),
        ("zk_watched_paths", int(s.paths)),
        ("zk_open_file_descriptor_count", int(open_fds())),
    ];
    if let Some(l) = v.leader {
        rows.extend([
            ("zk_learners", int(l.learners)),
            ("zk_synced_followers", int(l.synced_followers)),
            ("zk_synced_non_voting_followers", int(0)),
            ("zk_synced_observers", int(l.synced_observers)),
            ("zk_pending_syncs", int(l.pending_syncs)),
        ]);
    }
    rows
}

fn mntr(v: &View<'_>) -> String {
    let mut out = String::new();
    for (k, val) in mntr_rows(v) {
        let _ = writeln!(out, "{k}\t{val}");
    }
    out
}

fn conf(v: &View<'_>) -> String {
    let d = v.describe;
    format!(
        "clientPort={}\nsecureClientPort={}\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n",
        d.client_port,
        d.secure_client_port,
        d.data_dir,
        dir_size(&d.data_dir),
        d.data_log_dir,
        dir_size(&d.data_log_dir),
        d.tick_ms,
        d.max_client_cnxns,
        d.min_session_timeout_ms,
        d.max_session_timeout_ms,
        d.server_id,
    )
}

fn envi() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={VERSION}\nhost.name={host}\nos.name={}\nos.arch={}\nuser.dir={cwd}\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

fn dump(v: &View<'_>) -> String {
    let mut out = format!(
        "SessionTracker dump:\nSession Sets ({})/({}):\nephemeral nodes dump:\n",
        v.sessions, v.sessions
    );
    let owners: Vec<i64> = v.tree.sessions().keys().copied().collect();
    let with: Vec<i64> = owners
        .into_iter()
        .filter(|s| v.tree.ephemerals(*s).next().is_some())
        .collect();
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", with.len());
    for s in with {
        let _ = writeln!(out, "0x{s:x}:");
        for p in v.tree.ephemerals(s) {
            let _ = writeln!(out, "\t{p}");
        }
    }
    let _ = writeln!(
        out,
        "Connections dump:\nConnections Sets (1)/({}):",
        v.conns.len()
    );
    for c in &v.conns {
        let _ = writeln!(
            out,
            "\tip: /{} sessionId: 0x{:x}",
            c.peer,
            c.session.unwrap_or(0)
        );
    }
    out
}

/// Total size of the files under `dir`, as `dirs`/`conf` report it.
fn dir_size(dir: &str) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(std::path::Path::new(dir))
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_starts_with_digits_kazoo_can_parse() {
        let digits: String = VERSION
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let parts: Vec<u32> = digits.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts, vec![3, 9, 3]);
    }
}
