//! Replication seen from outside (issue 4): ensembles of the current target (Rookery,
//! or Apache ZooKeeper 3.8 with `ROOKERY_TEST_TARGET=zookeeper`, which proves the
//! scenarios) under kill -9, restarts, wiped data and partitions (cut or silent).
//!
//! Two kinds of client drive them. Protocol sessions pinned to one server
//! (`raw_client`) say exactly what that server acknowledged, and never fail over to
//! another, which is what "a client of the isolated server" and "read it on this
//! follower" need. Real clients given the whole connect string (kazoo, zkCli.sh,
//! cli_mt, the Rust `zookeeper-client` crate) fail over as their users see it.
//!
//! Every scenario keeps a [`Ledger`] of the writes a server acknowledged and ends by
//! reading the tree on every server after a sync: all the same, every acknowledged
//! write there. Durations (failover, catch-up) are measured and printed, never
//! asserted; waits are bounded by [`CLUSTER_WAIT`] only so that a hang fails.

mod raw_client;

#[path = "support/interactive.rs"]
mod interactive;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use raw_client::{CallError, RawClient};
use rookery_tests::{CLUSTER_WAIT, Cluster, ClusterOptions, Target, four_letter};
use rookery_wire::proto::records::{GetChildrenRequest, GetDataRequest, SyncRequest};
use rookery_wire::{ErrorCode, Request, Response, ServerResponse};

/// One ensemble at a time: four JVMs are plenty for a two-core machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a pinned session waits for a handshake or a reply before it calls the
/// request lost. Short, so a scenario moves on to another server quickly.
const CALL: Duration = Duration::from_secs(3);

/// The session timeout the pinned sessions ask for (the harness's tickTime is 500 ms,
/// so ZooKeeper allows 1 to 10 s).
const SESSION_MS: i32 = 10_000;

fn start(voters: usize, observers: usize, proxied: bool) -> Option<Cluster> {
    start_with(voters, observers, proxied, "")
}

fn start_with(voters: usize, observers: usize, proxied: bool, extra: &str) -> Option<Cluster> {
    rookery_tests::start_cluster_if_available(ClusterOptions {
        voters,
        observers,
        proxied,
        extra_config: extra.to_owned(),
        ..ClusterOptions::default()
    })
}

fn target_name() -> &'static str {
    Target::from_env().name()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ---------------------------------------------------------------------------------
// A session pinned to one server.

/// A protocol session on one server; it never moves to another.
struct Zk {
    raw: RawClient,
    node: usize,
}

impl Zk {
    fn connect(c: &Cluster, n: usize) -> Result<Zk, CallError> {
        Zk::connect_with(c, n, CALL, false)
    }

    fn connect_with(
        c: &Cluster,
        n: usize,
        wait: Duration,
        can_be_read_only: bool,
    ) -> Result<Zk, CallError> {
        let raw = RawClient::connect_with(c.client_port(n), SESSION_MS, wait, can_be_read_only)?;
        Ok(Zk { raw, node: n })
    }

    fn call(&mut self, req: Request) -> Result<ServerResponse, CallError> {
        self.raw.call(req)
    }

    /// A persistent create: the reply's error code (0 when it was created).
    fn create(&mut self, path: &str, data: &[u8]) -> Result<i32, CallError> {
        Ok(self.call(raw_client::create_req(path, data))?.header.err)
    }

    fn sync(&mut self, path: &str) -> Result<i32, CallError> {
        let r = self.call(Request::Sync(SyncRequest {
            path: path.to_owned(),
        }))?;
        Ok(r.header.err)
    }

    /// The node's data, None if it does not exist; Err for anything else.
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let r = self
            .call(Request::GetData(GetDataRequest {
                path: path.to_owned(),
                watch: false,
            }))
            .map_err(|e| format!("getData {path} on node {}: {e:?}", self.node))?;
        match r.body {
            Response::GetData(d) => Ok(Some(d.data.unwrap_or_default())),
            _ if r.header.err == ErrorCode::NoNode.as_i32() => Ok(None),
            other => Err(format!(
                "getData {path} on node {}: err {} {other:?}",
                self.node, r.header.err
            )),
        }
    }

    fn children(&mut self, path: &str) -> Result<Option<Vec<String>>, String> {
        let r = self
            .call(Request::GetChildren(GetChildrenRequest {
                path: path.to_owned(),
                watch: false,
            }))
            .map_err(|e| format!("getChildren {path} on node {}: {e:?}", self.node))?;
        match r.body {
            Response::GetChildren(d) => Ok(Some(d.children)),
            _ if r.header.err == ErrorCode::NoNode.as_i32() => Ok(None),
            other => Err(format!(
                "getChildren {path} on node {}: err {} {other:?}",
                self.node, r.header.err
            )),
        }
    }

    /// Every node under `root` (itself included) with its data.
    fn tree(&mut self, root: &str) -> Result<Tree, String> {
        let mut out = Tree::new();
        let mut todo = vec![root.to_owned()];
        while let Some(p) = todo.pop() {
            let Some(data) = self.get(&p)? else { continue };
            out.insert(p.clone(), data);
            for child in self.children(&p)?.unwrap_or_default() {
                todo.push(if p == "/" {
                    format!("/{child}")
                } else {
                    format!("{p}/{child}")
                });
            }
        }
        Ok(out)
    }
}

type Tree = BTreeMap<String, Vec<u8>>;

/// A session on node `n`, retrying until it serves; panics with the logs after
/// [`CLUSTER_WAIT`].
fn connect_serving(c: &mut Cluster, n: usize) -> Zk {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        match Zk::connect(c, n) {
            Ok(zk) => return zk,
            Err(e) if Instant::now() >= deadline => panic!(
                "node {n} took no session within {CLUSTER_WAIT:?} ({e:?}); modes {:?}\n{}",
                c.modes(),
                c.logs()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The writes the servers acknowledged, path -> data, in one scenario.
#[derive(Debug, Default)]
struct Ledger {
    acked: Tree,
}

impl Ledger {
    fn ack(&mut self, path: &str, data: &[u8]) {
        self.acked.insert(path.to_owned(), data.to_vec());
    }

    fn len(&self) -> usize {
        self.acked.len()
    }

    /// Every acknowledged write is in `tree` with its data.
    fn check(&self, tree: &Tree, whose: &str) {
        let lost: Vec<String> = self
            .acked
            .iter()
            .filter(|(p, d)| tree.get(*p) != Some(*d))
            .map(|(p, d)| {
                format!(
                    "{p}: acknowledged {:?}, found {:?}",
                    String::from_utf8_lossy(d),
                    tree.get(p).map(|v| String::from_utf8_lossy(v).into_owned())
                )
            })
            .collect();
        assert!(
            lost.is_empty(),
            "{whose} lost {} of {} acknowledged writes:\n{}",
            lost.len(),
            self.acked.len(),
            lost.join("\n")
        );
    }
}

/// Creates `path` through `zk`, which must acknowledge it, and records it.
fn must_create(zk: &mut Zk, ledger: &mut Ledger, path: &str, data: &[u8]) {
    match zk.create(path, data) {
        Ok(0) => ledger.ack(path, data),
        other => panic!("create {path} through node {}: {other:?}", zk.node),
    }
}

/// Creates `path` through node `n`, reconnecting until one create is acknowledged.
/// Only for a path no earlier attempt can have created.
fn create_via(c: &mut Cluster, n: usize, ledger: &mut Ledger, path: &str, data: &[u8]) {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        let mut zk = connect_serving(c, n);
        match zk.create(path, data) {
            Ok(0) => {
                ledger.ack(path, data);
                return;
            }
            // An earlier attempt whose reply was lost did it.
            Ok(e) if e == ErrorCode::NodeExists.as_i32() => {
                if zk.sync(path).is_ok() && zk.get(path).ok().flatten().as_deref() == Some(data) {
                    ledger.ack(path, data);
                    return;
                }
                panic!("{path} exists with other data");
            }
            other => assert!(
                Instant::now() < deadline,
                "create {path} through node {n}: {other:?}\n{}",
                c.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Tries creates of fresh paths `{prefix}-{k}` through `candidates` in turn until one
/// is acknowledged; returns (node, path, attempts). An attempt whose reply is lost may
/// still commit, so each attempt uses a new path.
fn first_ack(
    c: &mut Cluster,
    candidates: &[usize],
    ledger: &mut Ledger,
    prefix: &str,
) -> (usize, String, usize) {
    let deadline = Instant::now() + CLUSTER_WAIT;
    let mut attempt = 0;
    loop {
        for &n in candidates {
            attempt += 1;
            let path = format!("{prefix}-{attempt}");
            let data = format!("first write after the fault, attempt {attempt} via node {n}");
            if let Ok(mut zk) = Zk::connect(c, n) {
                if let Ok(0) = zk.create(&path, data.as_bytes()) {
                    ledger.ack(&path, data.as_bytes());
                    return (n, path, attempt);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged through {candidates:?} within {CLUSTER_WAIT:?}; modes {:?}\n{}",
            c.modes(),
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Node `n`'s tree under `root` after a sync, retrying while it does not serve.
fn tree_after_sync(c: &mut Cluster, n: usize, root: &str) -> Tree {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        let got = Zk::connect(c, n)
            .map_err(|e| format!("connect: {e:?}"))
            .and_then(|mut zk| match zk.sync(root) {
                Ok(0) => zk.tree(root),
                other => Err(format!("sync: {other:?}")),
            });
        match got {
            Ok(t) => return t,
            Err(e) => assert!(
                Instant::now() < deadline,
                "node {n} never read {root} after a sync: {e}\n{}",
                c.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every running, unstopped node holds the same tree under `root` after a sync, with
/// every acknowledged write in it. Returns that tree.
fn assert_converged(c: &mut Cluster, root: &str, ledger: &Ledger) -> Tree {
    let ids: Vec<usize> = c.ids().collect();
    let nodes: Vec<usize> = ids
        .into_iter()
        .filter(|&n| !c.is_stopped(n) && c.is_running(n))
        .collect();
    let mut first: Option<(usize, Tree)> = None;
    for n in nodes.iter().copied() {
        let tree = tree_after_sync(c, n, root);
        ledger.check(&tree, &format!("node {n}"));
        match &first {
            None => first = Some((n, tree)),
            Some((m, t)) => assert_eq!(
                &tree,
                t,
                "node {n} and node {m} differ under {root}\n{}",
                c.logs()
            ),
        }
    }
    let (_, tree) = first.expect("no node running");
    println!(
        "[{}] converged: nodes {nodes:?} hold the same {} znodes under {root}; all {} \
         acknowledged writes present",
        target_name(),
        tree.len(),
        ledger.len()
    );
    tree
}

/// The voters other than `n`.
fn other_voters(c: &Cluster, n: usize) -> Vec<usize> {
    c.voters().into_iter().filter(|&v| v != n).collect()
}

fn leader(c: &mut Cluster) -> usize {
    c.leader()
        .unwrap_or_else(|| panic!("no leader: {:?}\n{}", c.modes(), c.logs()))
}

fn wait_mode(c: &mut Cluster, n: usize, mode: &str) {
    assert!(
        c.wait_for_mode_eq(n, mode, CLUSTER_WAIT),
        "node {n} is not {mode}: {:?}\n{}",
        c.modes(),
        c.logs()
    );
}

/// Prints node `n`'s log lines that mention one of `words` (case-insensitive), so a
/// run shows how a learner was synchronized. Information only: nothing asserts on
/// log text.
fn print_log_lines(c: &Cluster, n: usize, words: &[&str]) {
    let log = strip_ansi(&c.log(n));
    let hits: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            words.iter().any(|w| l.contains(&w.to_ascii_lowercase()))
        })
        .collect();
    println!("[{}] node {n}'s log on how it synced:", target_name());
    for l in hits.iter().take(12) {
        println!("    {}", l.trim());
    }
}

/// What ZooKeeper (Learner, LearnerHandler, ZKDatabase) and Rookery (core) log about
/// recovery and learner synchronization.
const SYNC_WORDS: [&str; 10] = [
    "syncing a learner",
    "getting a diff",
    "getting a snapshot",
    "truncat",
    "synchronizing with learner",
    "highest zxid",
    "recovered; looking",
    "sending snap",
    "installed the leader's snapshot",
    "core: serving",
];

/// The text of a log without terminal colour codes (tracing's ESC [ ... m).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// 1. A write through any server is read on every other after sync.

#[test]
fn a_write_through_any_server_is_read_on_every_server_after_sync() {
    let _serial = serial();
    let Some(mut c) = start(3, 1, false) else {
        return;
    };
    let mut ledger = Ledger::default();
    let l = leader(&mut c);
    create_via(&mut c, l, &mut ledger, "/any", b"");
    let ids: Vec<usize> = c.ids().collect();
    for &n in &ids {
        let path = format!("/any/via-{n}");
        let data = format!("written through node {n} ({:?})", c.mode(n));
        let mut writer = connect_serving(&mut c, n);
        must_create(&mut writer, &mut ledger, &path, data.as_bytes());
        // A second write in the same session right after: FIFO on the writer.
        let path2 = format!("{path}-again");
        must_create(&mut writer, &mut ledger, &path2, b"again");
        for &m in ids.iter().filter(|&&m| m != n) {
            let mut reader = connect_serving(&mut c, m);
            assert_eq!(reader.sync(&path2).ok(), Some(0), "sync on node {m}");
            assert_eq!(
                reader.get(&path).unwrap().as_deref(),
                Some(data.as_bytes()),
                "node {m} after sync, written through node {n}"
            );
            assert_eq!(
                reader.get(&path2).unwrap().as_deref(),
                Some(&b"again"[..]),
                "node {m} after sync, written through node {n}"
            );
        }
    }
    let tree = assert_converged(&mut c, "/any", &ledger);
    assert_eq!(tree.len(), 1 + 2 * ids.len());
    assert_config_node(&mut c);
}

/// Before the zxid counter runs out, Rookery's leader moves to a new epoch without an
/// election (ZooKeeper holds one there, so this is Rookery's alone). With the roll at
/// counter 20, writes through sessions on the leader, a follower and an observer cross
/// several epochs: every write is acknowledged, no session (on the leader, a follower
/// or an observer) is dropped, the leader stays, and every server ends with every write.
#[test]
fn epoch_rolls_keep_the_leader_and_its_sessions() {
    let _serial = serial();
    if Target::from_env() != Target::Rookery {
        println!("SKIPPED: the epoch roll is Rookery's (ZooKeeper elects a new leader)");
        return;
    }
    let Some(mut c) = start_with(3, 1, false, "rookery.testing.rollEpochAtCounter=20\n") else {
        return;
    };
    let mut ledger = Ledger::default();
    let l = leader(&mut c);
    let f = other_voters(&c, l)[0];
    create_via(&mut c, l, &mut ledger, "/roll", b"");
    let o = c.observers()[0];
    let mut on_leader = connect_serving(&mut c, l);
    let mut on_follower = connect_serving(&mut c, f);
    let mut on_observer = connect_serving(&mut c, o);
    let mut epochs = std::collections::BTreeSet::new();
    for i in 0..40 {
        for (zk, via) in [
            (&mut on_leader, "leader"),
            (&mut on_follower, "follower"),
            (&mut on_observer, "observer"),
        ] {
            let path = format!("/roll/{via}-{i}");
            let r = zk
                .call(raw_client::create_req(&path, b"x"))
                .unwrap_or_else(|e| panic!("create {path}: {e:?}\n{}", c.logs()));
            assert_eq!(r.header.err, 0, "create {path}");
            ledger.ack(&path, b"x");
            epochs.insert(r.header.zxid >> 32);
        }
    }
    println!("[rookery] 120 writes spanned epochs {epochs:?}");
    // No server went looking or synced again: each started serving exactly once.
    for n in c.ids() {
        let log = strip_ansi(&c.log(n));
        let starts = log.lines().filter(|l| l.contains("serving mode=")).count();
        assert_eq!(starts, 1, "node {n} started serving {starts} times:\n{log}");
    }
    assert!(epochs.len() >= 5, "only epochs {epochs:?} for 120 writes");
    assert_eq!(c.leader(), Some(l), "the leader changed");
    assert_converged(&mut c, "/roll", &ledger);
}

/// Every server shows the ensemble in `/zookeeper/config` as ZooKeeper 3.8 writes it
/// (kazoo's `get_config`, zkCli's `config` read it): a line per member with its role,
/// then the config version in hex; the node's version is -1.
fn assert_config_node(c: &mut Cluster) {
    let mut expected = String::new();
    for n in c.ids() {
        let node = c.node(n);
        let role = if node.is_observer() {
            "observer"
        } else {
            "participant"
        };
        expected.push_str(&format!(
            "server.{n}=127.0.0.1:{}:{}:{role}\n",
            node.quorum_port(),
            node.election_port()
        ));
    }
    expected.push_str("version=0");
    let ids: Vec<usize> = c.ids().collect();
    for n in ids {
        let mut zk = connect_serving(c, n);
        let (data, version) = zk
            .raw
            .get_data("/zookeeper/config")
            .unwrap_or_else(|| panic!("node {n}: no /zookeeper/config"));
        assert_eq!(
            String::from_utf8_lossy(&data),
            expected,
            "node {n}'s /zookeeper/config"
        );
        assert_eq!(version, -1, "node {n}'s /zookeeper/config version");
    }
}

// ---------------------------------------------------------------------------------
// 2. kill -9 of the leader: a new one is elected and writes resume.

#[test]
fn a_killed_leader_is_replaced_and_writes_resume() {
    let _serial = serial();
    let Some(mut c) = start(3, 1, false) else {
        return;
    };
    let mut ledger = Ledger::default();
    let first = leader(&mut c);
    create_via(&mut c, first, &mut ledger, "/failover", b"");
    let mut measured = Vec::new();
    for round in 1..=3 {
        let old = leader(&mut c);
        for n in c.ids().collect::<Vec<_>>() {
            let path = format!("/failover/r{round}-before-via-{n}");
            create_via(&mut c, n, &mut ledger, &path, b"before");
        }
        let survivors: Vec<usize> = c.ids().filter(|&n| n != old).collect();
        let ports: Vec<u16> = other_voters(&c, old)
            .iter()
            .map(|&n| c.client_port(n))
            .collect();
        let killed_at = Instant::now();
        c.kill9(old);
        let elected = leader_watch(ports, killed_at);
        let (via, path, attempts) = first_ack(
            &mut c,
            &survivors,
            &mut ledger,
            &format!("/failover/r{round}-after"),
        );
        let took = killed_at.elapsed();
        let new = c
            .wait_for_leader_among(&other_voters(&c, old), CLUSTER_WAIT)
            .expect("a new leader");
        assert_ne!(new, old);
        let elected = elected.join().expect("leader watch");
        println!(
            "[{}] FAILOVER round {round}: leader node {old} killed -9; first acknowledged \
             write {} ms later ({path} through node {via}, attempt {attempts}); srvr showed \
             the new leader node {new} after {} ms",
            target_name(),
            ms(took),
            elected.map_or_else(|| "?".into(), |d| ms(d).to_string())
        );
        measured.push(ms(took));
        // Writes keep going through every survivor.
        for &n in &survivors {
            create_via(
                &mut c,
                n,
                &mut ledger,
                &format!("/failover/r{round}-later-via-{n}"),
                b"later",
            );
        }
        c.restart(old);
        wait_mode(&mut c, old, "follower");
    }
    println!(
        "[{}] FAILOVER kill -9 of the leader -> first acknowledged write, ms: {measured:?}",
        target_name()
    );
    assert_converged(&mut c, "/failover", &ledger);
}

/// Polls srvr on `ports` (every 20 ms, for at most [`CLUSTER_WAIT`]) and returns how
/// long after `since` one of them first said `Mode: leader`.
fn leader_watch(ports: Vec<u16>, since: Instant) -> std::thread::JoinHandle<Option<Duration>> {
    std::thread::spawn(move || {
        while since.elapsed() < CLUSTER_WAIT {
            for &p in &ports {
                let mode = four_letter(p, "srvr").and_then(|r| rookery_tests::parse_mode(&r));
                if mode.as_deref() == Some("leader") {
                    return Some(since.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    })
}

// ---------------------------------------------------------------------------------
// 3. Catching up: a restarted follower (DIFF), a wiped one (SNAP), a deposed leader
//    with Txns nobody else has (TRUNC).

/// `count` acknowledged creates `{prefix}-{i}` through one session on node `n`.
fn write_many(c: &mut Cluster, n: usize, ledger: &mut Ledger, prefix: &str, count: usize) {
    let mut zk = connect_serving(c, n);
    for i in 0..count {
        let path = format!("{prefix}-{i:04}");
        let data = format!("{path} through node {n}");
        match zk.create(&path, data.as_bytes()) {
            Ok(0) => ledger.ack(&path, data.as_bytes()),
            // A reply later than CALL (both servers have stalled that long in a fsync
            // on a busy CI machine) is not a failure of the scenario: settle this
            // path on a new session, then go on with that one.
            other => {
                println!("[{}] create {path}: {other:?}; retrying", target_name());
                create_via(c, n, ledger, &path, data.as_bytes());
                zk = connect_serving(c, n);
            }
        }
    }
}

/// Node `n`, read directly after a sync, holds every acknowledged write; prints how
/// long after `since` (its restart, or a heal: `what`) that first worked.
fn assert_caught_up(
    c: &mut Cluster,
    n: usize,
    root: &str,
    ledger: &Ledger,
    (since, what): (Instant, &str),
) {
    let tree = tree_after_sync(c, n, root);
    ledger.check(&tree, &format!("node {n}, read directly after {what}"));
    println!(
        "[{}] node {n} served all {} acknowledged writes {} ms after {what}",
        target_name(),
        ledger.len(),
        ms(since.elapsed())
    );
}

#[test]
fn a_restarted_follower_catches_up() {
    let _serial = serial();
    let Some(mut c) = start(3, 0, false) else {
        return;
    };
    let mut ledger = Ledger::default();
    let l = leader(&mut c);
    let f = other_voters(&c, l)[0];
    create_via(&mut c, l, &mut ledger, "/diff", b"");
    write_many(&mut c, f, &mut ledger, "/diff/before", 20);

    c.kill9(f);
    write_many(&mut c, l, &mut ledger, "/diff/missed", 200);

    let t = Instant::now();
    c.restart(f);
    wait_mode(&mut c, f, "follower");
    assert_caught_up(&mut c, f, "/diff", &ledger, (t, "its restart began"));
    print_log_lines(&c, f, &SYNC_WORDS);
    print_log_lines(&c, l, &SYNC_WORDS);
    // It follows again: writes through it commit.
    write_many(&mut c, f, &mut ledger, "/diff/after", 5);
    assert_converged(&mut c, "/diff", &ledger);
}

#[test]
fn a_wiped_follower_catches_up_from_nothing() {
    let _serial = serial();
    let Some(mut c) = start(3, 0, false) else {
        return;
    };
    let mut ledger = Ledger::default();
    let l = leader(&mut c);
    let f = other_voters(&c, l)[0];
    create_via(&mut c, l, &mut ledger, "/snap", b"");
    write_many(&mut c, l, &mut ledger, "/snap/before", 100);

    c.kill9(f);
    let data_dir = c.data_dir(f);
    let mut wiped = Vec::new();
    for entry in std::fs::read_dir(&data_dir).expect("data dir") {
        let entry = entry.expect("data dir entry");
        if entry.file_name() == "myid" {
            continue;
        }
        let p = entry.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("wipe");
        } else {
            std::fs::remove_file(&p).expect("wipe");
        }
        wiped.push(entry.file_name().to_string_lossy().into_owned());
    }
    println!(
        "[{}] wiped node {f}'s data dir except myid: {wiped:?}",
        target_name()
    );
    write_many(&mut c, l, &mut ledger, "/snap/missed", 100);

    let t = Instant::now();
    c.restart(f);
    wait_mode(&mut c, f, "follower");
    assert_caught_up(&mut c, f, "/snap", &ledger, (t, "its restart began"));
    print_log_lines(&c, f, &SYNC_WORDS);
    print_log_lines(&c, l, &SYNC_WORDS);
    write_many(&mut c, f, &mut ledger, "/snap/after", 5);
    // Its own restart now recovers from what it wrote to disk since.
    c.kill9(f);
    c.restart(f);
    wait_mode(&mut c, f, "follower");
    assert_converged(&mut c, "/snap", &ledger);
}

/// A leader takes writes it can never commit (its links silently drop everything),
/// is killed -9, and the others elect a new leader and write a new history, part of
/// it to the same paths. Restarted, the old leader must drop its uncommitted Txns
/// (TRUNC) and end with exactly the new history.
#[test]
fn a_deposed_leader_truncates_its_uncommitted_txns() {
    let _serial = serial();
    let Some(mut c) = start(3, 0, true) else {
        return;
    };
    let mut ledger = Ledger::default();
    let old = leader(&mut c);
    create_via(&mut c, old, &mut ledger, "/trunc", b"");
    write_many(&mut c, old, &mut ledger, "/trunc/committed", 10);
    let mut zk = connect_serving(&mut c, old);
    must_create(&mut zk, &mut ledger, "/trunc/session-ready", b"");

    // Silenced rather than cut: the leader sees no reset, so it goes on leading (and
    // logging proposals) until its syncLimit runs out.
    c.isolate_silently(old);
    let uncommitted: Vec<String> = (0..5).map(|i| format!("/trunc/uncommitted-{i}")).collect();
    let mut sent = Vec::new();
    for p in &uncommitted {
        let req = raw_client::create_req(p, b"old leader, never committed");
        sent.push(zk.raw.send(req).expect("send to the old leader"));
    }
    // Long enough for the leader to log them; far less than syncLimit (2.5 s).
    zk.raw
        .stream
        .set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let (xid, op) = sent[0];
    match zk.raw.reply(xid, op) {
        Ok(r) => assert_ne!(
            r.header.err, 0,
            "a write the isolated leader could not replicate was acknowledged"
        ),
        Err(e) => println!(
            "[{}] the isolated leader answered none of its writes ({e:?})",
            target_name()
        ),
    }
    c.kill9(old);
    drop(zk);

    let others = other_voters(&c, old);
    let new = c
        .wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no new leader: {:?}\n{}", c.modes(), c.logs()));
    // The new history reuses two of the old leader's paths with other data.
    create_via(
        &mut c,
        new,
        &mut ledger,
        &uncommitted[0],
        b"new leader, committed",
    );
    create_via(
        &mut c,
        others[0],
        &mut ledger,
        &uncommitted[1],
        b"new leader, committed",
    );
    write_many(&mut c, new, &mut ledger, "/trunc/new-epoch", 20);

    c.heal_all();
    let t = Instant::now();
    c.restart(old);
    wait_mode(&mut c, old, "follower");
    assert_caught_up(&mut c, old, "/trunc", &ledger, (t, "its restart began"));
    print_log_lines(&c, old, &SYNC_WORDS);
    print_log_lines(&c, new, &SYNC_WORDS);
    let tree = assert_converged(&mut c, "/trunc", &ledger);
    for p in &uncommitted[2..] {
        assert!(
            !tree.contains_key(p),
            "{p}, never committed, is in the history: {tree:?}"
        );
    }
    // And it stays so across another restart of the old leader.
    c.kill9(old);
    c.restart(old);
    wait_mode(&mut c, old, "follower");
    let again = tree_after_sync(&mut c, old, "/trunc");
    assert_eq!(again, tree, "node {old} after a second restart");
}

// ---------------------------------------------------------------------------------
// 4. The minority side of a partition commits nothing; the majority goes on; after
//    the heal everything converges.

/// What became of one write through the minority side.
#[derive(Debug)]
enum Attempt {
    /// The server took no session (refused, closed or silent).
    NoSession(String),
    /// Sent; the reply's error code.
    Answered(String, i32),
    /// Sent; no reply (closed or timed out).
    Lost(String, String),
}

/// Writes fresh paths `{prefix}-{k}` through `first`'s server until `stop`, starting
/// in `first`'s session (opened before the fault) and reconnecting to the same server
/// (never another) when it is gone. Returns every attempt.
fn hammer(
    first: Zk,
    port: u16,
    prefix: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<Attempt>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut session = Some(first.raw);
        let mut k = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let raw = match session.take() {
                Some(raw) => raw,
                None => match RawClient::connect_with(port, SESSION_MS, CALL, false) {
                    Ok(raw) => raw,
                    Err(e) => {
                        out.push(Attempt::NoSession(format!("{e:?}")));
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                },
            };
            let mut raw = raw;
            k += 1;
            let path = format!("{prefix}-{k}");
            match raw.call(raw_client::create_req(&path, b"minority")) {
                Ok(r) => {
                    out.push(Attempt::Answered(path, r.header.err));
                    session = Some(raw);
                }
                Err(e) => out.push(Attempt::Lost(path, format!("{e:?}"))),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        out
    })
}

/// No write through the minority side was acknowledged; prints what happened to them.
/// Returns the paths that were sent.
fn assert_none_acknowledged(attempts: &[Attempt], who: &str) -> Vec<String> {
    let acked: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| matches!(a, Attempt::Answered(_, 0)))
        .collect();
    assert!(
        acked.is_empty(),
        "{who} acknowledged writes it could not replicate: {acked:?}"
    );
    let mut no_session = BTreeMap::<&str, usize>::new();
    for a in attempts {
        if let Attempt::NoSession(why) = a {
            *no_session.entry(why.as_str()).or_default() += 1;
        }
    }
    let mut sent = Vec::new();
    let mut answered = BTreeMap::<i32, usize>::new();
    let mut lost = BTreeMap::<String, usize>::new();
    for a in attempts {
        match a {
            Attempt::Answered(p, e) => {
                *answered.entry(*e).or_default() += 1;
                sent.push(p.clone());
            }
            Attempt::Lost(p, why) => {
                *lost.entry(why.clone()).or_default() += 1;
                sent.push(p.clone());
            }
            Attempt::NoSession(_) => {}
        }
    }
    println!(
        "[{}] {who}: {} write attempts, none acknowledged: {} sent and lost {lost:?}, \
         answered with error codes {answered:?}; no session {no_session:?}",
        target_name(),
        attempts.len(),
        sent.len() - answered.values().sum::<usize>(),
    );
    sent
}

#[test]
fn an_isolated_leader_commits_nothing_and_the_majority_moves_on() {
    let _serial = serial();
    let Some(mut c) = start(3, 0, true) else {
        return;
    };
    let mut ledger = Ledger::default();
    let old = leader(&mut c);
    create_via(&mut c, old, &mut ledger, "/part", b"");
    write_many(&mut c, old, &mut ledger, "/part/before", 10);
    let mut zk = connect_serving(&mut c, old);
    must_create(&mut zk, &mut ledger, "/part/session-ready", b"");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = Instant::now();
    c.isolate(old);
    let minority = hammer(
        zk,
        c.client_port(old),
        "/part/minority".into(),
        stop.clone(),
    );
    let others = other_voters(&c, old);
    let new = c
        .wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no new leader: {:?}\n{}", c.modes(), c.logs()));
    println!(
        "[{}] leader node {old} isolated; node {new} leads {} ms later",
        target_name(),
        ms(t.elapsed())
    );
    for &n in &others {
        write_many(
            &mut c,
            n,
            &mut ledger,
            &format!("/part/majority-via-{n}"),
            10,
        );
    }
    assert!(
        c.wait_until(CLUSTER_WAIT, |c| (c.mode(old).as_deref() != Some("leader"))
            .then_some(()))
            .is_some(),
        "the isolated node {old} still leads: {:?}",
        c.modes()
    );
    // Keep the minority client trying a while after everything settled.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let attempts = minority.join().expect("minority writer");
    let sent = assert_none_acknowledged(&attempts, &format!("isolated old leader node {old}"));

    c.heal_all();
    wait_mode(&mut c, old, "follower");
    assert_eq!(c.leader(), Some(new));
    write_many(&mut c, old, &mut ledger, "/part/after-heal", 5);
    let tree = assert_converged(&mut c, "/part", &ledger);
    let applied: Vec<&String> = sent.iter().filter(|p| tree.contains_key(*p)).collect();
    assert!(
        applied.is_empty(),
        "writes the isolated leader took but could not replicate are in the history: \
         {applied:?}"
    );
}

#[test]
fn a_follower_cut_off_commits_nothing_and_catches_up_when_healed() {
    let _serial = serial();
    let Some(mut c) = start(3, 0, true) else {
        return;
    };
    let mut ledger = Ledger::default();
    let l = leader(&mut c);
    let f = other_voters(&c, l)[0];
    let g = other_voters(&c, l)[1];
    create_via(&mut c, l, &mut ledger, "/cutoff", b"");
    write_many(&mut c, f, &mut ledger, "/cutoff/before", 10);
    let mut zk = connect_serving(&mut c, f);
    must_create(&mut zk, &mut ledger, "/cutoff/session-ready", b"");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    c.isolate(f);
    let minority = hammer(
        zk,
        c.client_port(f),
        "/cutoff/minority".into(),
        stop.clone(),
    );
    // The majority keeps its leader and commits.
    write_many(&mut c, l, &mut ledger, "/cutoff/majority-via-leader", 20);
    write_many(&mut c, g, &mut ledger, "/cutoff/majority-via-follower", 20);
    assert!(
        c.wait_until(CLUSTER_WAIT, |c| (c.mode(f).is_none()).then_some(()))
            .is_some(),
        "the cut-off follower {f} still serves as {:?}",
        c.mode(f)
    );
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let attempts = minority.join().expect("minority writer");
    let sent = assert_none_acknowledged(&attempts, &format!("cut-off follower node {f}"));
    assert_eq!(
        c.wait_for_leader_among(&[l, g], CLUSTER_WAIT),
        Some(l),
        "the majority changed its leader"
    );

    let t = Instant::now();
    c.heal_all();
    wait_mode(&mut c, f, "follower");
    assert_eq!(c.leader(), Some(l));
    assert_caught_up(&mut c, f, "/cutoff", &ledger, (t, "the heal"));
    write_many(&mut c, f, &mut ledger, "/cutoff/after-heal", 5);
    let tree = assert_converged(&mut c, "/cutoff", &ledger);
    let applied: Vec<&String> = sent.iter().filter(|p| tree.contains_key(*p)).collect();
    assert!(
        applied.is_empty(),
        "writes sent to the cut-off follower were applied later: {applied:?}"
    );
}

// ---------------------------------------------------------------------------------
// 5. An observer when two of three voters are down.
//
// What Apache ZooKeeper 3.8 does, observed with these tests: by default the observer
// stops serving once it loses its leader (srvr: "This ZooKeeper instance is not
// currently serving requests"); it closes its clients' connections and every new
// one, read-only or not, so no client reads or writes through it until a quorum is
// back. With `-Dreadonlymode.enabled=true` it starts a read-only server about two
// seconds later (srvr: "READ-ONLY mode; serving only read-only clients"), but with
// the default global sessions that server cannot open a session: a new client's
// handshake is answered with a bare reply header carrying NotReadOnly (-119), which
// kazoo calls an invalid server response, and an existing session never reattaches.
// Only with `localSessionsEnabled=true` as well do clients that accept a read-only
// server (canBeReadOnly) get a new session there, read what was committed, and have
// their writes refused with NotReadOnly.

/// The line of node `n`'s srvr answer that says how it serves, for messages.
fn srvr_head(c: &Cluster, n: usize) -> String {
    four_letter(c.client_port(n), "srvr")
        .and_then(|s| {
            s.lines()
                .find(|l| l.contains("Mode:") || l.contains("serving"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "(no answer)".into())
}

/// Three voters and an observer; the data under /obs written and, on the observer,
/// synced; then two voters (the leader among them) killed -9. Returns the cluster,
/// the ledger, the killed voters, and a session opened on the observer before.
fn observer_alone(extra: &str) -> Option<(Cluster, Ledger, Vec<usize>, Zk)> {
    let mut c = start_with(3, 1, false, extra)?;
    let mut ledger = Ledger::default();
    let l = leader(&mut c);
    let obs = c.observers()[0];
    create_via(&mut c, l, &mut ledger, "/obs", b"");
    write_many(&mut c, obs, &mut ledger, "/obs/via-observer", 10);
    write_many(&mut c, l, &mut ledger, "/obs/via-leader", 10);
    let mut held = connect_serving(&mut c, obs);
    assert_eq!(held.sync("/obs").ok(), Some(0));
    let before = held.tree("/obs").expect("the observer's tree");
    ledger.check(&before, "the observer before the fault");
    let f = other_voters(&c, l)[0];
    c.kill9(l);
    c.kill9(f);
    println!(
        "[{}] killed -9 voters {l} (leader) and {f}; observer node {obs} alone with voter {}",
        target_name(),
        other_voters(&c, l)[1]
    );
    Some((c, ledger, vec![l, f], held))
}

/// Brings the killed voters back; the observer observes again, writes through it
/// commit, and everything converges without the writes of the outage.
fn observer_recovers(c: &mut Cluster, ledger: &mut Ledger, killed: &[usize], outage: &[String]) {
    for &n in killed {
        c.restart(n);
    }
    let obs = c.observers()[0];
    wait_mode(c, obs, "observer");
    assert!(c.wait_settled(CLUSTER_WAIT), "{:?}", c.modes());
    write_many(c, obs, ledger, "/obs/after", 5);
    let tree = assert_converged(c, "/obs", ledger);
    let applied: Vec<&String> = outage.iter().filter(|p| tree.contains_key(*p)).collect();
    assert!(
        applied.is_empty(),
        "writes sent during the outage were applied: {applied:?}"
    );
}

#[test]
fn an_observer_without_a_quorum_stops_serving_and_commits_nothing() {
    let _serial = serial();
    let Some((mut c, mut ledger, killed, held)) = observer_alone("") else {
        return;
    };
    let obs = c.observers()[0];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = Instant::now();
    let writer = hammer(held, c.client_port(obs), "/obs/outage".into(), stop.clone());
    // It stops serving: srvr says so, and it takes no session of any kind.
    assert!(
        c.wait_until(CLUSTER_WAIT, |c| c.mode(obs).is_none().then_some(()))
            .is_some(),
        "the observer still serves: {}",
        srvr_head(&c, obs)
    );
    println!(
        "[{}] observer stopped serving {} ms after the kills: {}",
        target_name(),
        ms(t.elapsed()),
        srvr_head(&c, obs)
    );
    std::thread::sleep(Duration::from_secs(3));
    for can_be_read_only in [false, true] {
        let got = Zk::connect_with(&c, obs, CALL, can_be_read_only).map(|z| z.raw.read_only);
        assert!(
            got.is_err(),
            "the observer without a quorum gave a session (canBeReadOnly \
             {can_be_read_only}, read-only {got:?})"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let attempts = writer.join().expect("outage writer");
    let sent = assert_none_acknowledged(&attempts, &format!("observer node {obs} alone"));
    observer_recovers(&mut c, &mut ledger, &killed, &sent);
}

#[test]
fn with_read_only_mode_an_observer_without_a_quorum_serves_reads_only() {
    let _serial = serial();
    // ZooKeeper reads readonlymode.enabled only as a system property (the harness
    // passes it as -D); without local sessions its read-only server opens no session.
    let extra = "readonlymode.enabled=true\nlocalSessionsEnabled=true";
    let Some((mut c, mut ledger, killed, held)) = observer_alone(extra) else {
        return;
    };
    let obs = c.observers()[0];
    drop(held);
    let t = Instant::now();
    let deadline = Instant::now() + CLUSTER_WAIT;
    let mut ro = loop {
        match Zk::connect_with(&c, obs, CALL, true) {
            Ok(zk) if zk.raw.read_only => break zk,
            other => assert!(
                Instant::now() < deadline,
                "no read-only session on the observer: {:?}; srvr: {}\n{}",
                other.map(|z| z.raw.read_only),
                srvr_head(&c, obs),
                c.log(obs)
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "[{}] observer serves read-only sessions {} ms after the kills: {}",
        target_name(),
        ms(t.elapsed()),
        srvr_head(&c, obs)
    );
    // Reads: everything committed before the fault.
    let tree = ro.tree("/obs").expect("reads on the read-only observer");
    ledger.check(&tree, "the read-only observer");
    // Writes: refused, NotReadOnly.
    let mut outage = Vec::new();
    for i in 0..3 {
        let path = format!("/obs/outage-ro-{i}");
        let got = ro.create(&path, b"read-only");
        assert_eq!(
            got.ok(),
            Some(ErrorCode::NotReadOnly.as_i32()),
            "a write on the read-only observer"
        );
        outage.push(path);
    }
    // A client that does not accept a read-only server gets no session.
    assert!(
        Zk::connect_with(&c, obs, CALL, false).is_err(),
        "a read-write session on the read-only observer"
    );
    drop(ro);
    observer_recovers(&mut c, &mut ledger, &killed, &outage);
}

// ---------------------------------------------------------------------------------
// 6 and 8. Real clients with the whole connect string: sessions, ephemerals and
//    watches survive their server's death; the clients fail over and go on.

/// Which node's client port is `port`.
fn node_of_port(c: &Cluster, port: u16) -> usize {
    c.ids()
        .find(|&n| c.client_port(n) == port)
        .unwrap_or_else(|| panic!("no node has client port {port}"))
}

/// `127.0.0.1:<port>` of each node, in the order given.
fn hosts(c: &Cluster, nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|&n| format!("127.0.0.1:{}", c.client_port(n)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The node whose `cons` lists session `sid` (the server a client is connected to),
/// waiting for it to show up.
fn node_with_session(c: &mut Cluster, sid: i64) -> usize {
    let needle = format!("sid={sid:#x}");
    c.wait_until(CLUSTER_WAIT, |c| {
        c.ids()
            .find(|&n| four_letter(c.client_port(n), "cons").is_some_and(|s| s.contains(&needle)))
    })
    .unwrap_or_else(|| panic!("no server lists session {sid:#x} in cons"))
}

/// Runs a kazoo script that asks for faults (`KILL port`, `RESTART port`) and reports
/// acknowledged writes (`ACKED path data`); returns its `RESULT` lines.
fn run_kazoo(c: &mut Cluster, ledger: &mut Ledger, args: &[String]) -> BTreeMap<String, String> {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(rookery_tests::DEBIAN_PYTHON)
        .arg(rookery_tests::client_script("kazoo_cluster.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running python3");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut out = String::new();
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        let line = line.expect("script output");
        out.push_str(&line);
        out.push('\n');
        if let Some(port) = line.strip_prefix("KILL ") {
            let n = node_of_port(c, port.parse().expect("port"));
            println!(
                "[{}] kazoo asks: kill -9 node {n} ({:?})",
                target_name(),
                c.mode(n)
            );
            c.kill9(n);
            writeln!(stdin, "DONE").expect("answering the script");
        } else if let Some(port) = line.strip_prefix("RESTART ") {
            let n = node_of_port(c, port.parse().expect("port"));
            c.restart(n);
            writeln!(stdin, "DONE").expect("answering the script");
        } else if let Some(rest) = line.strip_prefix("ACKED ") {
            let (path, data) = rest.split_once(' ').unwrap_or((rest, ""));
            ledger.ack(path, data.as_bytes());
        } else if let Some(kv) = line.strip_prefix("RESULT ") {
            if let Some((k, v)) = kv.split_once('=') {
                results.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    drop(stdin);
    let status = child.wait().expect("python3");
    let err = err_reader.join().unwrap_or_default();
    assert!(
        status.success() && out.lines().any(|l| l.starts_with("OK ")),
        "kazoo script failed ({status})\nstdout:\n{out}\nstderr:\n{err}\nmodes {:?}\n{}",
        c.modes(),
        c.logs()
    );
    results
}

#[test]
fn kazoo_sessions_ephemerals_and_watches_survive_their_servers_death() {
    let _serial = serial();
    if let Some(reason) = rookery_tests::missing(&["kazoo"]) {
        println!("SKIPPED: {reason}");
        return;
    }
    let Some(mut c) = start(3, 0, false) else {
        return;
    };
    let mut ledger = Ledger::default();
    let l = leader(&mut c);
    let f = other_voters(&c, l);
    let leader_first = hosts(&c, &[l, f[0], f[1]]);
    let follower_first = hosts(&c, &[f[0], f[1], l]);
    let all = c.connect_string();
    let r = run_kazoo(
        &mut c,
        &mut ledger,
        &["failover".into(), leader_first, follower_first, all],
    );
    println!(
        "[{}] kazoo moved {} after its follower died: back in {} ms; {} after its \
         leader died: back in {} ms",
        target_name(),
        r["follower_moved"],
        r["follower_reconnect_ms"],
        r["leader_moved"],
        r["leader_reconnect_ms"]
    );
    assert_converged(&mut c, "/kf", &ledger);
}

/// Waits for a new leader among the voters other than `old` (just killed), then
/// returns it.
fn new_leader_after(c: &mut Cluster, old: usize) -> usize {
    let others = other_voters(c, old);
    c.wait_for_leader_among(&others, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no new leader: {:?}\n{}", c.modes(), c.logs()))
}

/// A pinned session on some serving node other than `not`.
fn session_elsewhere(c: &mut Cluster, not: usize) -> Zk {
    let n = c
        .voters()
        .into_iter()
        .find(|&n| n != not && c.is_running(n))
        .expect("another running voter");
    connect_serving(c, n)
}

/// setData through a pinned session, retrying on another server while the cluster
/// elects; records it.
fn set_elsewhere(c: &mut Cluster, not: usize, ledger: &mut Ledger, path: &str, data: &[u8]) {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        let mut zk = session_elsewhere(c, not);
        if let Ok(r) = zk.call(raw_client::set_data_req(path, data, -1)) {
            assert_eq!(r.header.err, 0, "setData {path}");
            ledger.ack(path, data);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "setData {path} never went through"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// zkCli.sh fed on stdin (see tests/zkcli.rs): a `get` of a missing marker after
/// each command delimits its output.
struct ZkCli {
    p: interactive::Interactive,
    marks: u32,
}

const ZKCLI_CONNECTED: &str = "WatchedEvent state:SyncConnected type:None path:null";

impl ZkCli {
    fn connect(hosts: &str) -> ZkCli {
        let mut p = interactive::Interactive::spawn(rookery_tests::ZKCLI, &["-server", hosts]);
        p.wait_for("SyncConnected", |l| l == ZKCLI_CONNECTED);
        ZkCli { p, marks: 0 }
    }

    /// One command's output, notifications left out. The marker's `get` ends it
    /// with NoNode, or with ConnectionLoss when the connection broke under it.
    fn run(&mut self, cmd: &str) -> Vec<String> {
        self.marks += 1;
        let marker = format!("/zkcli-end-{}", self.marks);
        self.p.send_lines(&[cmd, &format!("get {marker}")]);
        let end = format!("Node does not exist: {marker}");
        let lost = format!("KeeperErrorCode = ConnectionLoss for {marker}");
        let mut lines = self.p.wait_for(&end, |l| l == end || l == lost);
        lines.pop();
        lines
            .into_iter()
            .filter(|l| !l.is_empty() && l != "WATCHER::" && !l.starts_with("WatchedEvent "))
            .collect()
    }

    fn count(&self, line: &str) -> usize {
        self.p.all_lines().iter().filter(|l| *l == line).count()
    }

    /// Waits until `line` has been printed `n` times in all.
    fn wait_count(&mut self, line: &str, n: usize) {
        self.p.wait_until(line, |lines| {
            lines.iter().filter(|l| *l == line).count() >= n
        });
    }

    /// A read, again while the connection is lost under it (the cluster may still be
    /// electing when the client has reconnected).
    fn read(&mut self, cmd: &str) -> Vec<String> {
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let out = self.run(cmd);
            if !out.iter().any(|l| l.contains("ConnectionLoss")) || Instant::now() >= deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The session, from an ephemeral's `stat`.
    fn owner(&mut self, path: &str) -> i64 {
        let out = self.read(&format!("stat {path}"));
        let hex = out
            .iter()
            .find_map(|l| l.strip_prefix("ephemeralOwner = 0x"))
            .unwrap_or_else(|| panic!("no ephemeralOwner in {out:?}"));
        i64::from_str_radix(hex, 16).expect("hex session id")
    }

    /// `create path data`, again after a lost connection (an earlier attempt may have
    /// done it: then the node must hold `data`).
    fn create(&mut self, path: &str, data: &str, ledger: &mut Ledger) {
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let out = self.run(&format!("create {path} {data}"));
            if out == [format!("Created {path}")] {
                break;
            }
            if out.iter().any(|l| l.starts_with("Node already exists")) {
                assert_eq!(self.run(&format!("get {path}")), [data], "{path}");
                break;
            }
            assert!(
                Instant::now() < deadline && out.iter().any(|l| l.contains("ConnectionLoss")),
                "create {path}: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        ledger.ack(path, data.as_bytes());
    }

    fn quit(mut self) {
        self.p.send("quit");
        self.p.finish();
    }
}

/// What the failover scenarios need of a shell client (zkCli.sh, cli_mt).
trait Shell {
    /// For the printed measurements.
    const NAME: &'static str;
    /// The line it prints each time its session (re)connects.
    const CONNECTED: &'static str;
    fn count(&self, line: &str) -> usize;
    fn wait_count(&mut self, line: &str, n: usize);
    fn owner(&mut self, path: &str) -> i64;
}

impl Shell for ZkCli {
    const NAME: &'static str = "zkCli";
    const CONNECTED: &'static str = ZKCLI_CONNECTED;
    fn count(&self, line: &str) -> usize {
        ZkCli::count(self, line)
    }
    fn wait_count(&mut self, line: &str, n: usize) {
        ZkCli::wait_count(self, line, n)
    }
    fn owner(&mut self, path: &str) -> i64 {
        ZkCli::owner(self, path)
    }
}

impl Shell for CliMt {
    const NAME: &'static str = "cli_mt";
    const CONNECTED: &'static str = CMT_CONNECTED;
    fn count(&self, line: &str) -> usize {
        CliMt::count(self, line)
    }
    fn wait_count(&mut self, line: &str, n: usize) {
        CliMt::wait_count(self, line, n)
    }
    fn owner(&mut self, path: &str) -> i64 {
        CliMt::owner(self, path)
    }
}

/// Kills -9 the server holding session `sid` and waits until the shell says it is
/// connected again, on another server, with the session and its ephemeral `eph`;
/// prints how long that took. Returns the killed node.
fn kill_sessions_server<S: Shell>(c: &mut Cluster, shell: &mut S, sid: i64, eph: &str) -> usize {
    let n = node_with_session(c, sid);
    let connected = shell.count(S::CONNECTED);
    let mode = c.mode(n);
    let t = Instant::now();
    c.kill9(n);
    shell.wait_count(S::CONNECTED, connected + 1);
    let to = node_with_session(c, sid);
    println!(
        "[{}] {} on node {n} ({mode:?}) killed -9: reconnected to node {to} in {} ms",
        target_name(),
        S::NAME,
        ms(t.elapsed())
    );
    assert_ne!(to, n);
    assert_eq!(shell.owner(eph), sid, "the session and its ephemeral");
    n
}

/// Changes `base` and adds a child to it through a server other than `dead`; the
/// watches the shell set on `dead` fire, each event line printed once.
fn fire_watches_elsewhere<S: Shell>(
    c: &mut Cluster,
    dead: usize,
    ledger: &mut Ledger,
    shell: &mut S,
    base: &str,
    events: [&str; 2],
) {
    set_elsewhere(c, dead, ledger, base, b"v2");
    let mut zk = session_elsewhere(c, dead);
    must_create(&mut zk, ledger, &format!("{base}/child"), b"c");
    for event in events {
        shell.wait_count(event, 1);
    }
}

/// Kills -9 the leader (the shell's server or not), then has the shell `write`; prints
/// how long after the kill the write went through. Returns the old leader.
fn kill_leader_then<S: Shell>(
    c: &mut Cluster,
    shell: &mut S,
    sid: i64,
    write: impl FnOnce(&mut S, &mut Ledger),
    ledger: &mut Ledger,
) -> usize {
    let l = leader(c);
    let on = node_with_session(c, sid);
    let t = Instant::now();
    c.kill9(l);
    let new = new_leader_after(c, l);
    write(shell, ledger);
    println!(
        "[{}] {name} on node {on}, leader node {l} killed -9: node {new} leads; {name}'s \
         create went through {} ms after the kill",
        target_name(),
        ms(t.elapsed()),
        name = S::NAME,
    );
    l
}

#[test]
fn zkcli_fails_over_with_the_whole_connect_string() {
    let _serial = serial();
    rookery_tests::require!("zkcli");
    let Some(mut c) = start(3, 0, false) else {
        return;
    };
    let mut ledger = Ledger::default();
    let mut z = ZkCli::connect(&c.connect_string());
    z.create("/zc", "v1", &mut ledger);
    assert_eq!(z.run("create -e /zc/eph e"), ["Created /zc/eph"]);
    let sid = z.owner("/zc/eph");

    // Round 1: kill the server it is connected to.
    assert_eq!(z.run("get -w /zc"), ["v1"]);
    assert_eq!(z.run("ls -w /zc"), ["[eph]"]);
    let n = kill_sessions_server(&mut c, &mut z, sid, "/zc/eph");
    // The watches it set on the dead server fire.
    fire_watches_elsewhere(
        &mut c,
        n,
        &mut ledger,
        &mut z,
        "/zc",
        [
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/zc",
            "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/zc",
        ],
    );
    z.create("/zc/after", "a1", &mut ledger);
    assert_eq!(z.read("get /zc/after"), ["a1"]);
    c.restart(n);

    // Round 2: kill the leader, its server or not.
    let l = kill_leader_then(
        &mut c,
        &mut z,
        sid,
        |z, ledger| z.create("/zc/after-leader", "a2", ledger),
        &mut ledger,
    );
    assert_eq!(z.read("get /zc/after-leader"), ["a2"]);
    assert_eq!(z.owner("/zc/eph"), sid, "the session and its ephemeral");
    c.restart(l);
    z.quit();
    assert_converged(&mut c, "/zc", &ledger);
}

/// cli_mt, the C client's sample shell (see tests/cmt.rs): a `get` of a missing
/// marker after each command delimits its output.
struct CliMt {
    p: interactive::Interactive,
    marks: u32,
    session: i64,
}

const CMT_CONNECTED: &str = "Watcher SESSION_EVENT state = CONNECTED_STATE";

impl CliMt {
    fn connect(hosts: &str) -> CliMt {
        let mut p = interactive::Interactive::spawn(rookery_tests::CLI_MT, &["-h", hosts]);
        p.wait_for("CONNECTED_STATE", |l| l == CMT_CONNECTED);
        let line = p.wait_for("session id", |l| l.starts_with("Got a new session id: 0x"));
        let hex = line
            .last()
            .and_then(|l| l.strip_prefix("Got a new session id: 0x"))
            .expect("session id");
        let session = i64::from_str_radix(hex, 16).expect("hex session id");
        CliMt {
            p,
            marks: 0,
            session,
        }
    }

    fn run(&mut self, cmd: &str) -> Vec<String> {
        self.marks += 1;
        let marker = format!("/cmt-end-{}", self.marks);
        self.p.send_lines(&[cmd, &format!("get {marker}")]);
        // NoNode, or ConnectionLoss (-4) when the connection broke under it.
        let end = format!("{marker}: rc = -101");
        let lost = format!("{marker}: rc = -4");
        let mut lines = self.p.wait_for(&end, |l| l == end || l == lost);
        lines.pop();
        self.p.wait_for("marker's null Stat", |l| l == "null");
        // The C library logs to stderr too ("...:ZOO_ERROR@check_events@3011: ...")
        // when it loses a server.
        lines.retain(|l| {
            !l.starts_with("time = ") && !l.starts_with("Watcher ") && !l.contains(":ZOO_")
        });
        lines
    }

    fn count(&self, line: &str) -> usize {
        self.p.all_lines().iter().filter(|l| *l == line).count()
    }

    fn wait_count(&mut self, line: &str, n: usize) {
        self.p.wait_until(line, |lines| {
            lines.iter().filter(|l| *l == line).count() >= n
        });
    }

    /// cli_mt creates every node with the data "new"; retried after a lost
    /// connection (rc -4).
    fn create(&mut self, path: &str, ledger: &mut Ledger) {
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let out = self.run(&format!("create {path}"));
            let rc = out
                .iter()
                .find_map(|l| l.strip_prefix(&format!("[{path}]: rc = ")))
                .unwrap_or_else(|| panic!("create {path}: {out:?}"))
                .to_owned();
            // 0 done; -110 NodeExists: an earlier attempt whose answer was lost did it.
            if rc == "0" || rc == "-110" {
                break;
            }
            assert!(
                Instant::now() < deadline && rc == "-4",
                "create {path}: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        ledger.ack(path, b"new");
    }

    /// The ephemeralOwner of `path`'s Stat, as cli_mt prints it (hex, no 0x); the
    /// `get` again while it fails with ConnectionLoss (-4).
    fn owner(&mut self, path: &str) -> i64 {
        let deadline = Instant::now() + CLUSTER_WAIT;
        let lost = format!("{path}: rc = -4");
        let mut out = self.run(&format!("get {path}"));
        while out.first() == Some(&lost) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            out = self.run(&format!("get {path}"));
        }
        assert_eq!(
            out.first().map(String::as_str),
            Some(&*format!("{path}: rc = 0"))
        );
        let hex = out
            .iter()
            .flat_map(|l| l.split('\t'))
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == "ephemeralOwner").then_some(v)
            })
            .unwrap_or_else(|| panic!("no ephemeralOwner in {out:?}"));
        i64::from_str_radix(hex.trim(), 16).expect("hex session id")
    }

    fn quit(mut self) {
        self.p.send("quit");
        self.p.finish();
    }
}

#[test]
fn cli_mt_fails_over_with_the_whole_connect_string() {
    let _serial = serial();
    rookery_tests::require!("cli_mt");
    let Some(mut c) = start(3, 0, false) else {
        return;
    };
    let mut ledger = Ledger::default();
    let mut m = CliMt::connect(&c.connect_string());
    let sid = m.session;
    m.create("/cm", &mut ledger);
    assert_eq!(m.run("create +e /cm/eph")[1], "[/cm/eph]: rc = 0");
    assert_eq!(m.owner("/cm/eph"), sid);
    // get and ls leave watches (cli_mt's default watcher).
    assert_eq!(m.run("get /cm")[0], "/cm: rc = 0");
    assert_eq!(m.run("ls /cm")[0], "/cm: rc = 0");

    let n = kill_sessions_server(&mut c, &mut m, sid, "/cm/eph");
    fire_watches_elsewhere(
        &mut c,
        n,
        &mut ledger,
        &mut m,
        "/cm",
        [
            "Watcher CHANGED_EVENT state = CONNECTED_STATE for path /cm",
            "Watcher CHILD_EVENT state = CONNECTED_STATE for path /cm",
        ],
    );
    m.create("/cm/after", &mut ledger);
    c.restart(n);

    let l = kill_leader_then(
        &mut c,
        &mut m,
        sid,
        |m, ledger| m.create("/cm/after-leader", ledger),
        &mut ledger,
    );
    assert_eq!(m.owner("/cm/eph"), sid, "the session and its ephemeral");
    let all = m.p.all_lines();
    assert_eq!(
        all.iter()
            .filter(|l| l.starts_with("Got a new session id"))
            .count(),
        1,
        "cli_mt got another session: {all:#?}"
    );
    c.restart(l);
    m.quit();
    assert_converged(&mut c, "/cm", &ledger);
}

/// The Rust zookeeper-client crate: a request retried while the client reconnects.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, zookeeper_client::Error>>,
{
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(zookeeper_client::Error::ConnectionLoss) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

#[test]
fn rust_client_fails_over_with_the_whole_connect_string() {
    use zookeeper_client::{Acls, Client, CreateMode, Error, EventType, SessionState};
    let _serial = serial();
    let Some(mut c) = start(3, 0, false) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut ledger = Ledger::default();
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let hosts = c.connect_string();
    let (zk, sid) = rt.block_on(async {
        let zk = Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&hosts)
            .await
            .expect("connect");
        zk.create("/rc", b"v1", &persistent).await.expect("create");
        zk.create("/rc/eph", b"e", &ephemeral)
            .await
            .expect("create");
        let sid = zk.session_id().0;
        (zk, sid)
    });
    ledger.ack("/rc", b"v1");
    // One-shot watches only: zookeeper-client 0.11.2 re-registers persistent watches
    // with the wrong request after a reconnect (WatchManager::resend_watches keeps
    // `index = index.max(index)`, so it always sends SetWatches without the
    // persistent lists), against ZooKeeper and Rookery alike.
    let (oneshot, children, mut states) = rt.block_on(async {
        let (_, _, oneshot) = zk.get_and_watch_data("/rc").await.expect("watch");
        let (_, _, children) = zk.get_and_watch_children("/rc").await.expect("watch");
        (oneshot, children, zk.state_watcher())
    });

    let n = node_with_session(&mut c, sid);
    let mode = c.mode(n);
    let t = Instant::now();
    c.kill9(n);
    rt.block_on(async {
        // The watcher reports the latest state: a quick reconnect can hide the
        // Disconnected in between.
        tokio::time::timeout(CLUSTER_WAIT, async {
            loop {
                match states.changed().await {
                    SessionState::SyncConnected => break,
                    SessionState::Disconnected => {}
                    other => panic!("the session ended: {other:?}"),
                }
            }
        })
        .await
        .expect("the client did not reconnect");
    });
    let to = node_with_session(&mut c, sid);
    println!(
        "[{}] zookeeper-client on node {n} ({mode:?}) killed -9: reconnected to node {to} \
         in {} ms",
        target_name(),
        ms(t.elapsed())
    );
    assert_ne!(to, n);
    assert_eq!(zk.session_id().0, sid);
    set_elsewhere(&mut c, n, &mut ledger, "/rc", b"v2");
    let mut other = session_elsewhere(&mut c, n);
    must_create(&mut other, &mut ledger, "/rc/child", b"c");
    rt.block_on(async {
        let e = tokio::time::timeout(CLUSTER_WAIT, oneshot.changed())
            .await
            .expect("the one-shot watch did not fire after the move");
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDataChanged, "/rc")
        );
        let e = tokio::time::timeout(CLUSTER_WAIT, children.changed())
            .await
            .expect("the child watch did not fire after the move");
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, "/rc")
        );
        let (_, st) = retry("get /rc/eph", || zk.get_data("/rc/eph")).await;
        assert_eq!(st.ephemeral_owner, sid, "the ephemeral after the move");
        retry("create /rc/after", || async {
            match zk.create("/rc/after", b"a1", &persistent).await {
                Err(Error::NodeExists) => Ok(()),
                r => r.map(|_| ()),
            }
        })
        .await;
    });
    ledger.ack("/rc/after", b"a1");
    c.restart(n);

    let l = leader(&mut c);
    let on = node_with_session(&mut c, sid);
    let t = Instant::now();
    c.kill9(l);
    let new = new_leader_after(&mut c, l);
    rt.block_on(async {
        retry("create /rc/after-leader", || async {
            match zk.create("/rc/after-leader", b"a2", &persistent).await {
                Err(Error::NodeExists) => Ok(()),
                r => r.map(|_| ()),
            }
        })
        .await;
    });
    ledger.ack("/rc/after-leader", b"a2");
    println!(
        "[{}] zookeeper-client on node {on}, leader node {l} killed -9: node {new} leads; \
         its create went through {} ms after the kill",
        target_name(),
        ms(t.elapsed())
    );
    rt.block_on(async {
        let (data, _) = retry("get", || zk.get_data("/rc/after-leader")).await;
        assert_eq!(data, b"a2");
        let (_, st) = retry("get /rc/eph", || zk.get_data("/rc/eph")).await;
        assert_eq!(st.ephemeral_owner, sid);
        assert_eq!(zk.session_id().0, sid);
    });
    c.restart(l);
    // Dropping the last handle ends the session; its ephemeral goes (closed, or at
    // worst expired), before the trees are compared.
    drop(zk);
    let mut check = connect_serving(&mut c, l);
    let gone = Instant::now() + CLUSTER_WAIT;
    while check.get("/rc/eph").expect("get /rc/eph").is_some() {
        assert!(
            Instant::now() < gone,
            "the dropped client's ephemeral stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(rt);
    assert_converged(&mut c, "/rc", &ledger);
}

// ---------------------------------------------------------------------------------
// ZooKeeper's own reconfig: kazoo removes a member, zkCli.sh adds it back.

#[test]
fn reconfig_from_kazoo_and_zkcli_removes_and_adds_back_a_member() {
    let _serial = serial();
    rookery_tests::require!("kazoo", "zkcli");
    let Some(mut c) = rookery_tests::start_cluster_if_available(ClusterOptions {
        extra_config: format!("reconfigEnabled=true\n{SUPER_DIGEST}\n"),
        ..ClusterOptions::default()
    }) else {
        return;
    };
    let leader = c.leader().expect("a leader");
    let leaving = c.ids().find(|&n| n != leader).expect("a follower");
    // Through the server being removed first (kazoo keeps this order): it must still
    // apply the COMMIT of its own removal and answer (the leader drops its link to it
    // right after). Rookery's removed server then stops serving, where ZooKeeper's
    // stays a non-voting follower, so kazoo moves on to the others.
    let hosts = std::iter::once(leaving)
        .chain(c.ids().filter(|&n| n != leaving))
        .map(|n| format!("127.0.0.1:{}", c.client_port(n)))
        .collect::<Vec<_>>()
        .join(",");
    let out = std::process::Command::new(rookery_tests::DEBIAN_PYTHON)
        .arg(rookery_tests::client_script("kazoo_reconfig.py"))
        .args([&hosts, &leaving.to_string()])
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.lines().any(|l| l == "OK"),
        "[{}] kazoo reconfig failed\nstdout:\n{stdout}\nstderr:\n{}\n{}",
        target_name(),
        String::from_utf8_lossy(&out.stderr),
        c.logs()
    );
    if let Some(ids) = admin_member_ids(&c, leader) {
        let rest: Vec<usize> = c.ids().filter(|&n| n != leaving).collect();
        assert_eq!(ids, rest, "ListMembers after kazoo's remove");
    }
    // Writes go on with the two members left.
    let mut zk = connect_serving(&mut c, leader);
    assert_eq!(zk.create("/after-remove", b"x").ok(), Some(0));

    // zkCli.sh puts it back as a participant.
    let node = c.node(leaving);
    let spec = format!(
        "server.{leaving}=127.0.0.1:{}:{}:participant;127.0.0.1:{}",
        node.quorum_port(),
        node.election_port(),
        node.client_port()
    );
    let mut cli = ZkCli::connect(&format!("127.0.0.1:{}", c.client_port(leader)));
    cli.run("addauth digest super:admin");
    let added = cli.run(&format!("reconfig -add {spec}"));
    assert!(
        added
            .iter()
            .any(|l| l.starts_with(&format!("server.{leaving}="))),
        "[{}] zkCli reconfig -add: {added:?}",
        target_name()
    );
    let config = cli.run("config");
    cli.quit();
    assert!(
        config.iter().any(|l| l.starts_with(&format!(
            "server.{leaving}=127.0.0.1:{}",
            node.quorum_port()
        ))),
        "{config:?}"
    );
    // It serves again, and every member agrees on the data.
    assert!(
        c.wait_for_mode_eq(leaving, "follower", CLUSTER_WAIT),
        "[{}] node {leaving} does not follow after being added back (modes {:?})\n{}",
        target_name(),
        c.modes(),
        c.logs()
    );
    let mut back = connect_serving(&mut c, leaving);
    assert_eq!(back.sync("/").ok(), Some(0));
    assert_eq!(
        back.get("/after-remove"),
        Ok(Some(b"x".to_vec())),
        "node {leaving} lacks a write made while it was out"
    );
    if let Some(ids) = admin_member_ids(&c, leader) {
        assert_eq!(
            ids,
            c.ids().collect::<Vec<_>>(),
            "ListMembers after the add"
        );
    }

    // And zkCli.sh's reconfig -remove takes a member out again.
    let mut cli = ZkCli::connect(&format!("127.0.0.1:{}", c.client_port(leader)));
    cli.run("addauth digest super:admin");
    let removed = cli.run(&format!("reconfig -remove {leaving}"));
    cli.quit();
    assert!(
        removed.iter().any(|l| l.starts_with("server."))
            && !removed
                .iter()
                .any(|l| l.starts_with(&format!("server.{leaving}="))),
        "[{}] zkCli reconfig -remove: {removed:?}",
        target_name()
    );
    if let Some(ids) = admin_member_ids(&c, leader) {
        let rest: Vec<usize> = c.ids().filter(|&n| n != leaving).collect();
        assert_eq!(ids, rest, "ListMembers after zkCli's remove");
    }
}

/// The member ids `rookery admin members list` reports on node `n` (Rookery only: None
/// against ZooKeeper, which has no admin API).
fn admin_member_ids(c: &Cluster, n: usize) -> Option<Vec<usize>> {
    if c.target() != Target::Rookery {
        return None;
    }
    let out = std::process::Command::new(rookery_tests::rookery_bin())
        .args(["admin", "--endpoint", &c.node(n).admin_endpoint()])
        .args(["--json", "members", "list"])
        .env("ZOOCFGDIR", "/nonexistent/rookery-tests")
        .env_remove("ROOKERY_ADMIN_TOKEN")
        .output()
        .expect("running rookery admin");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut ids: Vec<usize> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_u64().map(|i| i as usize))
        .collect();
    ids.sort_unstable();
    Some(ids)
}

/// `super:admin`: reconfig needs the super user (`/zookeeper/config` is read-only to
/// everyone else), in ZooKeeper as here.
const SUPER_DIGEST: &str = "superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=";
