//! `rookery-jepsen`: the register workload under the combined nemesis. Starts a proxied
//! ensemble of the target through the test harness, runs client workers (one real
//! ZooKeeper session each) and a seeded nemesis thread side by side, heals, reads every
//! key from every server, then checks the history and writes the report directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rookery_jepsen::{F, Fault, Finding, NemesisEvent, Outcome, Record, Rng, check_all, svg};
use rookery_tests::Target;
use rookery_tests::{Cluster, ClusterOptions, StartError};
use serde_json::json;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

/// Whichever server's client port answers; larger than the harness's tick-based
/// minimum (2 x 500 ms) so a short pause does not expire every session.
const SESSION_TIMEOUT: Duration = Duration::from_secs(5);
/// After this an operation is recorded as indeterminate and its session abandoned.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Final reads are done by processes numbered from here (one per server).
const FINAL_PROCESS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TargetArg {
    Rookery,
    Zookeeper,
}

#[derive(Debug, Parser)]
#[command(about = "Jepsen-style register test of a Rookery or Apache ZooKeeper ensemble")]
struct Args {
    #[arg(long, value_enum, default_value = "rookery")]
    target: TargetArg,
    /// Seconds of workload under the nemesis (the heal and final reads come after).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Seeds the nemesis schedule and the workers' choices; random when absent.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Client workers, each with its own session.
    #[arg(long, default_value_t = 5)]
    concurrency: usize,
    /// Register keys /jepsen/r0.. .
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// Seconds between faults, and how long each lasts.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    /// Where report directories go.
    #[arg(long, default_value = "target/jepsen")]
    out: PathBuf,
    /// Give up on the linearizability search after this many seconds (verdict unknown).
    #[arg(long, default_value_t = 300)]
    check_timeout: u64,
    /// Workload reads skip the sync before getData. ZooKeeper lets such reads be stale,
    /// so the linearizability checker should then flag some under partitions: a way to
    /// see that the checker is awake, not a bug in the server.
    #[arg(long)]
    unsynced_reads: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.nodes == 0 || args.concurrency == 0 || args.keys == 0 {
        bail!("--nodes, --concurrency and --keys must be at least 1");
    }
    let target = match args.target {
        TargetArg::Rookery => Target::Rookery,
        TargetArg::Zookeeper => Target::ZooKeeper,
    };
    if target == Target::ZooKeeper {
        if let Some(reason) = rookery_tests::missing(&["zookeeper"]) {
            bail!("cannot run against ZooKeeper: {reason}");
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!(
        "jepsen: target {} nodes {} concurrency {} time {} s seed {seed}\n\
         jepsen: replay with: cargo xtask jepsen --target {} --time {} --nodes {} --concurrency {} --seed {seed}",
        target.name(),
        args.nodes,
        args.concurrency,
        args.time,
        target.name(),
        args.time,
        args.nodes,
        args.concurrency,
    );
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = args.out.join(format!("{stamp}-{}", target.name()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let cluster = match Cluster::try_start(
        target,
        ClusterOptions {
            voters: args.nodes,
            proxied: true,
            ..ClusterOptions::default()
        },
    ) {
        Ok(c) => c,
        Err(StartError::Unsupported(m)) => bail!("{m}"),
        Err(e) => bail!("{e}"),
    };
    let connect = cluster.connect_string();
    let ports: Vec<u16> = cluster.ids().map(|n| cluster.client_port(n)).collect();
    println!("jepsen: cluster up: {connect}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let keys: Vec<String> = (0..args.keys).map(|k| format!("/jepsen/r{k}")).collect();
    rt.block_on(setup(&connect, &keys))?;

    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.time);
    let interval = Duration::from_secs(args.interval.max(1));
    let nemesis = std::thread::spawn(move || nemesis(cluster, seed, start, deadline, interval));
    let next_value = Arc::new(AtomicI64::new(1));
    let mut history: Vec<Record> = rt.block_on(async {
        let mut tasks = Vec::new();
        for id in 0..args.concurrency as u64 {
            tasks.push(tokio::spawn(worker(
                id,
                args.concurrency as u64,
                connect.clone(),
                keys.clone(),
                seed,
                start,
                deadline,
                next_value.clone(),
                !args.unsynced_reads,
            )));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        all
    });
    let (cluster, events) = nemesis
        .join()
        .map_err(|_| anyhow::anyhow!("the nemesis thread panicked"))?;
    let mut cluster = cluster;
    let settled = cluster.wait_settled(Duration::from_secs(60));
    println!(
        "jepsen: workload done ({} ops); healed, settled: {settled}; quiet period",
        history.len()
    );
    std::thread::sleep(Duration::from_secs(3));
    let finals = rt.block_on(final_reads(&ports, &keys, start));
    history.extend(finals);
    let span_us = elapsed_us(start);
    history.sort_by_key(|r| (r.invoke_us, r.complete_us));

    let mut lines = String::new();
    for r in &history {
        lines.push_str(&serde_json::to_string(r)?);
        lines.push('\n');
    }
    std::fs::write(dir.join("history.jsonl"), lines)?;
    let mut nem = String::new();
    for e in &events {
        nem.push_str(&serde_json::to_string(e)?);
        nem.push('\n');
    }
    std::fs::write(dir.join("nemesis.jsonl"), nem)?;
    std::fs::write(
        dir.join("latency.svg"),
        svg::latency_plot(
            &format!("{} register, seed {seed}", target.name()),
            &history,
            &events,
            span_us,
        ),
    )?;
    if !settled {
        std::fs::write(dir.join("cluster.log"), cluster.logs())?;
    }
    drop(cluster);

    let count = |o: Outcome| history.iter().filter(|r| r.outcome == o).count();
    let (ok, fail, info) = (
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Info),
    );
    println!(
        "jepsen: {} ops: {ok} ok, {fail} fail, {info} info; {} nemesis events; checking",
        history.len(),
        events.len()
    );
    let checked_at = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let to_check = history.clone();
    std::thread::spawn(move || {
        let _ = tx.send(check_all(&to_check, |r| r.process >= FINAL_PROCESS));
    });
    let findings: Option<Vec<Finding>> = rx
        .recv_timeout(Duration::from_secs(args.check_timeout))
        .ok();
    let verdict = match &findings {
        None => "unknown",
        Some(f) if f.is_empty() => "valid",
        Some(_) => "anomaly",
    };
    let by_f = |f: F| history.iter().filter(|r| r.f == f).count();
    let report = json!({
        "verdict": verdict,
        "target": target.name(),
        "seed": seed,
        "time_s": args.time,
        "nodes": args.nodes,
        "concurrency": args.concurrency,
        "ops": {"total": history.len(), "ok": ok, "fail": fail, "info": info,
                "read": by_f(F::Read), "write": by_f(F::Write), "cas": by_f(F::Cas)},
        "check_ms": checked_at.elapsed().as_millis() as u64,
        "nemesis": events,
        "findings": findings.clone().unwrap_or_default(),
    });
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    for f in findings.iter().flatten() {
        println!("ANOMALY [{}] key {}: {}", f.check, f.key, f.message);
        for r in &f.records {
            println!("    {}", serde_json::to_string(r)?);
        }
    }
    println!(
        "jepsen: verdict {verdict} (checked in {} ms); report in {}",
        checked_at.elapsed().as_millis(),
        dir.display()
    );
    match verdict {
        "valid" => Ok(()),
        "unknown" => std::process::exit(2),
        _ => std::process::exit(1),
    }
}

fn elapsed_us(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// Creates /jepsen and the keys with the initial value, retrying while the new
/// ensemble warms up.
async fn setup(connect: &str, keys: &[String]) -> Result<()> {
    let client = connect_retrying(connect, Duration::from_secs(30)).await?;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let initial = rookery_jepsen::INITIAL.value.to_string();
    for path in std::iter::once("/jepsen").chain(keys.iter().map(String::as_str)) {
        match client.create(path, initial.as_bytes(), &opts).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => bail!("creating {path}: {e}"),
        }
    }
    Ok(())
}

async fn connect_once(connect: &str) -> Result<Client, ZkError> {
    match tokio::time::timeout(
        OP_TIMEOUT * 2,
        Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(Duration::from_secs(2))
            .connect(connect),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ZkError::Timeout),
    }
}

async fn connect_retrying(connect: &str, within: Duration) -> Result<Client> {
    let until = Instant::now() + within;
    loop {
        match connect_once(connect).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= until => bail!("connecting to {connect}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Which errors prove a setData did nothing: everything else (timeouts, connection
/// loss, session expiry, "unexpected") leaves it indeterminate.
fn write_outcome(e: &ZkError) -> Outcome {
    match e {
        ZkError::BadVersion | ZkError::NoNode | ZkError::NoAuth | ZkError::BadArguments(_) => {
            Outcome::Fail
        }
        _ => Outcome::Info,
    }
}

fn error_text(e: &ZkError) -> String {
    match e {
        ZkError::BadVersion => rookery_jepsen::BAD_VERSION.into(),
        other => other.to_string(),
    }
}

/// Whether the session is worth keeping after this error.
fn session_lost(e: &ZkError) -> bool {
    matches!(
        e,
        ZkError::Timeout | ZkError::SessionExpired | ZkError::ClientClosed
    )
}

fn parse_value(data: &[u8]) -> i64 {
    // Bytes the workload never wrote become a value it never wrote, which the
    // checkers then report.
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(i64::MIN)
}

/// A linearizable-enough read: sync, then getData, in one session (ZooKeeper serves
/// plain reads from the connected server, which may lag; sync catches it up first).
async fn read(
    client: &Client,
    path: &str,
    sync: bool,
) -> Result<(i64, zookeeper_client::Stat), ZkError> {
    let op = async {
        if sync {
            client.sync(path).await?;
        }
        client.get_data(path).await
    };
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(Ok((data, stat))) => Ok((parse_value(&data), stat)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ZkError::Timeout),
    }
}

async fn set(
    client: &Client,
    path: &str,
    value: i64,
    version: Option<i32>,
) -> Result<zookeeper_client::Stat, ZkError> {
    let data = value.to_string();
    match tokio::time::timeout(OP_TIMEOUT, client.set_data(path, data.as_bytes(), version)).await {
        Ok(r) => r,
        Err(_) => Err(ZkError::Timeout),
    }
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    id: u64,
    workers: u64,
    connect: String,
    keys: Vec<String>,
    seed: u64,
    start: Instant,
    deadline: Instant,
    next_value: Arc<AtomicI64>,
    sync_reads: bool,
) -> Vec<Record> {
    let mut rng = Rng::new(seed ^ (id + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut history = Vec::new();
    let mut process = id;
    let mut client: Option<Client> = None;
    while Instant::now() < deadline {
        let c = match &client {
            Some(c) => c.clone(),
            None => match connect_once(&connect).await {
                Ok(c) => {
                    client = Some(c.clone());
                    c
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let session = format!("{:x}", c.session_id().0);
        let key = rng.below(keys.len() as u64) as usize;
        let path = &keys[key];
        let name = path.trim_start_matches("/jepsen/").to_string();
        let f = rng.pick(&[F::Read, F::Write, F::Cas]);
        let rec = |f, invoke_us, outcome, value, expected_version, version, mzxid, error| Record {
            process,
            session: session.clone(),
            key: name.clone(),
            f,
            invoke_us,
            complete_us: elapsed_us(start),
            outcome,
            value,
            expected_version,
            version,
            mzxid,
            error,
        };
        let mut lost: Option<ZkError> = None;
        let mut indeterminate = false;
        // A read; for a cas, the read that picks the expected version.
        let t0 = elapsed_us(start);
        let seen = if f == F::Read || f == F::Cas {
            match read(&c, path, sync_reads).await {
                Ok((value, stat)) => {
                    history.push(rec(
                        F::Read,
                        t0,
                        Outcome::Ok,
                        Some(value),
                        None,
                        Some(stat.version),
                        Some(stat.mzxid),
                        None,
                    ));
                    Some(stat.version)
                }
                Err(e) => {
                    let outcome = if matches!(e, ZkError::NoNode) {
                        Outcome::Fail
                    } else {
                        Outcome::Info
                    };
                    indeterminate = outcome == Outcome::Info;
                    history.push(rec(
                        F::Read,
                        t0,
                        outcome,
                        None,
                        None,
                        None,
                        None,
                        Some(error_text(&e)),
                    ));
                    lost = Some(e);
                    None
                }
            }
        } else {
            None
        };
        let write = match (f, seen) {
            (F::Write, _) => Some(None),
            (F::Cas, Some(v)) => Some(Some(v)),
            _ => None,
        };
        if let Some(expected) = write {
            let value = next_value.fetch_add(1, Ordering::Relaxed);
            let t0 = elapsed_us(start);
            let r = set(&c, path, value, expected).await;
            let (outcome, version, mzxid, error) = match &r {
                Ok(stat) => (Outcome::Ok, Some(stat.version), Some(stat.mzxid), None),
                Err(e) => (write_outcome(e), None, None, Some(error_text(e))),
            };
            indeterminate |= outcome == Outcome::Info;
            history.push(rec(
                f,
                t0,
                outcome,
                Some(value),
                expected,
                version,
                mzxid,
                error,
            ));
            if let Err(e) = r {
                lost = Some(e);
            }
        }
        if indeterminate {
            // Jepsen's rule: a process whose operation is indeterminate is crashed.
            process += workers;
        }
        if lost.as_ref().is_some_and(session_lost) {
            client = None;
        }
        tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
    }
    history
}

/// After the heal: every key from every server alone, each after a sync.
async fn final_reads(ports: &[u16], keys: &[String], start: Instant) -> Vec<Record> {
    let mut out = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let process = FINAL_PROCESS + i as u64 + 1;
        let server = format!("127.0.0.1:{port}");
        let client = connect_retrying(&server, Duration::from_secs(30))
            .await
            .ok();
        for path in keys {
            let key = path.trim_start_matches("/jepsen/").to_string();
            let t0 = elapsed_us(start);
            let (session, r) = match &client {
                Some(c) => (format!("{:x}", c.session_id().0), read(c, path, true).await),
                None => (String::new(), Err(ZkError::ConnectionLoss)),
            };
            let (outcome, value, version, mzxid, error) = match r {
                Ok((v, stat)) => (
                    Outcome::Ok,
                    Some(v),
                    Some(stat.version),
                    Some(stat.mzxid),
                    None,
                ),
                Err(e) => (Outcome::Info, None, None, None, Some(error_text(&e))),
            };
            out.push(Record {
                process,
                session,
                key,
                f: F::Read,
                invoke_us: t0,
                complete_us: elapsed_us(start),
                outcome,
                value,
                expected_version: None,
                version,
                mzxid,
                error,
            });
        }
    }
    out
}

/// The combined nemesis: every `interval`, one seeded fault held for `interval`, then
/// undone; at the deadline everything is healed, resumed and restarted.
fn nemesis(
    mut cluster: Cluster,
    seed: u64,
    start: Instant,
    deadline: Instant,
    interval: Duration,
) -> (Cluster, Vec<NemesisEvent>) {
    let mut rng = Rng::new(seed ^ 0x6E65_6D65_7369_7321);
    let n = cluster.ids().count();
    let mut events = Vec::new();
    let log = |what: &str| println!("[{:6.1}s] nemesis: {what}", start.elapsed().as_secs_f64());
    loop {
        std::thread::sleep(interval);
        if Instant::now() + interval >= deadline {
            break;
        }
        let fault = rng.pick(&Fault::ALL);
        let random = 1 + rng.below(n as u64) as usize;
        let minority = rookery_jepsen::random_minority(&mut rng, n);
        let leader = match fault {
            Fault::KillLeader | Fault::PauseLeader | Fault::IsolateLeader => {
                cluster.wait_for_leader(Duration::from_secs(5))
            }
            _ => None,
        };
        let who = |l: Option<usize>| match l {
            Some(l) => (l, format!("node {l} (leader)")),
            None => (random, format!("node {random} (no single leader; random)")),
        };
        let start_us = elapsed_us(start);
        let detail = match fault {
            Fault::KillRandom | Fault::KillLeader => {
                let (node, name) = who(if fault == Fault::KillLeader {
                    leader
                } else {
                    Some(random)
                });
                let name = if fault == Fault::KillRandom {
                    format!("node {node}")
                } else {
                    name
                };
                cluster.kill9(node);
                log(&format!("kill -9 {name}"));
                std::thread::sleep(interval);
                let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cluster.restart(node)
                }))
                .is_ok();
                log(&format!(
                    "restart node {node}: {}",
                    if restarted { "serving" } else { "NOT serving" }
                ));
                format!("kill -9 {name}, restart")
            }
            Fault::PauseRandom | Fault::PauseLeader => {
                let (node, name) = who(if fault == Fault::PauseLeader {
                    leader
                } else {
                    Some(random)
                });
                let name = if fault == Fault::PauseRandom {
                    format!("node {node}")
                } else {
                    name
                };
                cluster.stop(node);
                log(&format!("SIGSTOP {name}"));
                std::thread::sleep(interval);
                cluster.resume(node);
                log(&format!("SIGCONT node {node}"));
                format!("SIGSTOP {name}, SIGCONT")
            }
            Fault::IsolateLeader => {
                let (node, name) = who(leader);
                cluster.isolate(node);
                log(&format!("isolate {name}"));
                std::thread::sleep(interval);
                cluster.heal_all();
                log("heal");
                format!("isolate {name}, heal")
            }
            Fault::RandomHalves => {
                for &a in &minority {
                    for b in cluster.ids() {
                        if !minority.contains(&b) {
                            cluster.cut(a, b);
                        }
                    }
                }
                log(&format!("partition {minority:?} from the rest"));
                std::thread::sleep(interval);
                cluster.heal_all();
                log("heal");
                format!("partition {minority:?} from the rest, heal")
            }
        };
        events.push(NemesisEvent {
            fault,
            detail,
            start_us,
            end_us: elapsed_us(start),
        });
        if Instant::now() >= deadline {
            break;
        }
    }
    // The final heal: links, pauses, dead processes.
    cluster.heal_all();
    let ids: Vec<usize> = cluster.ids().collect();
    for &node in &ids {
        if cluster.is_stopped(node) {
            cluster.resume(node);
        }
        if !cluster.is_running(node) {
            let ok =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cluster.restart(node)))
                    .is_ok();
            log(&format!("final restart of node {node}: {ok}"));
        }
    }
    log("healed everything");
    (cluster, events)
}
