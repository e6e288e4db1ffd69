//! `rookery-jepsen`: workloads under a seeded nemesis. Starts a proxied ensemble of the
//! target through the test harness, runs client workers (one real ZooKeeper session
//! each) and the nemesis thread side by side, heals, waits out a quiet period, reads
//! every workload's state from every server, then checks the history and writes the
//! report directory.

mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use rookery_jepsen::{F, Fault, Finding, Outcome, Record, Workload, check_all, svg};
use rookery_tests::{Cluster, ClusterOptions, StartError, Target};
use serde_json::json;

use run::client::SESSION_TIMEOUT;
use run::nemesis::Schedule;
use run::workers::Ctx;

/// Final reads are done by processes numbered from here (one per server).
const FINAL_PROCESS: u64 = 1_000_000;

#[derive(Debug, Parser)]
#[command(about = "Jepsen-style test of a Rookery or Apache ZooKeeper ensemble")]
struct Args {
    /// rookery or zookeeper.
    #[arg(long, default_value = "rookery")]
    target: String,
    /// Comma-separated: register, set, ids, queue, lock, sessions, or all (side by side
    /// on one cluster, each with its own keys and workers).
    #[arg(long, default_value = "register")]
    workload: String,
    /// Comma-separated nemesis families (kill, pause, partition), single faults
    /// (kill-random, kill-leader, kill-all, pause-random, pause-leader, isolate-leader,
    /// random-halves, bridge, one-way, silence-leader), combined (all) or none.
    #[arg(long, default_value = "combined")]
    nemesis: String,
    /// Seconds of workload under the nemesis (the heal and final reads come after).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Seeds the nemesis schedule and the workers' choices; random when absent.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Client workers per workload, each with its own session.
    #[arg(long, default_value_t = 5)]
    concurrency: usize,
    /// Register keys /jepsen/r0.. .
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// How link faults are made: `proxy` (per-link TCP proxies, no root needed) or
    /// `netns` (each server in its own network namespace, faults as iptables rules;
    /// needs root).
    #[arg(long, default_value = "proxy")]
    net: String,
    /// Seconds between faults, and how long each lasts.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    /// Where report directories go.
    #[arg(long, default_value = "target/jepsen")]
    out: PathBuf,
    /// Give up on the checks after this many seconds (verdict unknown).
    #[arg(long, default_value_t = 300)]
    check_timeout: u64,
    /// Register reads skip the sync before getData. ZooKeeper lets such reads be stale,
    /// so the linearizability checker should then flag some under partitions: a way to
    /// see that the checker is awake, not a bug in the server.
    #[arg(long)]
    unsynced_reads: bool,
    /// Check a recorded history.jsonl again (no cluster, no run): to replay a verdict
    /// or try a checker change on a real history.
    #[arg(long, value_name = "HISTORY")]
    check_only: Option<PathBuf>,
}

fn parse_workloads(list: &str) -> Result<Vec<Workload>> {
    if list == "all" {
        return Ok(Workload::ALL.to_vec());
    }
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let w = Workload::from_name(name).with_context(|| {
            format!("unknown workload {name:?}: register, set, ids, queue, lock, sessions, all")
        })?;
        if !out.contains(&w) {
            out.push(w);
        }
    }
    if out.is_empty() {
        bail!("--workload names none");
    }
    Ok(out)
}

/// `--check-only`: the checks over a recorded history; exit 1 on any finding.
fn check_only(path: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut history = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: Record = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a history record", path.display(), n + 1))?;
        history.push(r);
    }
    let started = Instant::now();
    let findings = check_all(&history, |r| r.process >= FINAL_PROCESS);
    for f in &findings {
        println!("ANOMALY [{}] key {}: {}", f.check, f.key, f.message);
        for r in &f.records {
            println!("    {}", serde_json::to_string(r)?);
        }
    }
    println!(
        "jepsen: {} records, {} findings, checked in {} ms",
        history.len(),
        findings.len(),
        started.elapsed().as_millis()
    );
    if !findings.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.check_only {
        return check_only(path);
    }
    if args.nodes == 0 || args.concurrency == 0 || args.keys == 0 {
        bail!("--nodes, --concurrency and --keys must be at least 1");
    }
    let target = match args.target.as_str() {
        "rookery" => Target::Rookery,
        "zookeeper" => Target::ZooKeeper,
        other => bail!("unknown --target {other:?}: rookery or zookeeper"),
    };
    let workloads = parse_workloads(&args.workload)?;
    let mut faults = Fault::parse_list(&args.nemesis)
        .map_err(|bad| anyhow::anyhow!("unknown nemesis {bad:?} (see --help)"))?;
    if args.nodes < 2 {
        faults.retain(|f| f.family() != "partition");
    }
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
    let names: Vec<&str> = workloads.iter().map(|w| w.name()).collect();
    let names = names.join(",");
    println!(
        "jepsen: target {} workload {names} nemesis {} nodes {} concurrency {} time {} s seed {seed}\n\
         jepsen: replay with: cargo xtask jepsen -- --target {} --workload {names} --nemesis {} --net {} --time {} --nodes {} --concurrency {} --seed {seed}",
        target.name(),
        args.nemesis,
        args.nodes,
        args.concurrency,
        args.time,
        target.name(),
        args.nemesis,
        args.net,
        args.time,
        args.nodes,
        args.concurrency,
    );
    if let Ok(bugs) = std::env::var("ROOKERY_INJECT_BUG") {
        println!("jepsen: ROOKERY_INJECT_BUG={bugs} (servers run with injected bugs)");
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = args.out.join(format!("{stamp}-{}-{seed}", target.name()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let netns = match args.net.as_str() {
        "proxy" => false,
        "netns" => true,
        other => bail!("unknown --net {other:?}: proxy or netns"),
    };
    let cluster = match Cluster::try_start(
        target,
        ClusterOptions {
            voters: args.nodes,
            proxied: !netns,
            netns,
            ..ClusterOptions::default()
        },
    ) {
        Ok(c) => c,
        Err(StartError::Unsupported(m)) => bail!("{m}"),
        Err(e) => bail!("{e}"),
    };
    let connect = cluster.connect_string();
    let servers: Vec<SocketAddr> = cluster.ids().map(|n| cluster.client_addr(n)).collect();
    println!("jepsen: cluster up: {connect}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run::workers::setup(&connect, args.keys))?;

    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.time);
    let workers_per = args.concurrency as u64;
    let ctx = Arc::new(Ctx {
        connect,
        start,
        deadline,
        seed,
        workers: workers_per * workloads.len() as u64,
        register_keys: args.keys,
        sync_reads: !args.unsynced_reads,
        next_value: AtomicI64::new(1),
    });
    let schedule = Schedule {
        seed,
        start,
        deadline,
        interval: Duration::from_secs(args.interval.max(1)),
        faults,
    };
    let nemesis = std::thread::spawn(move || run::nemesis::run(cluster, schedule));
    let mut history: Vec<Record> = rt.block_on(async {
        let mut tasks = Vec::new();
        for (i, &w) in workloads.iter().enumerate() {
            for k in 0..workers_per {
                let id = i as u64 * workers_per + k;
                tasks.push(tokio::spawn(run::workers::run(ctx.clone(), w, id)));
            }
        }
        if workloads.contains(&Workload::Register) {
            // Numbered after every worker's possible process numbers.
            let process = FINAL_PROCESS - 1;
            tasks.push(tokio::spawn(run::workers::watch_registers(
                ctx.clone(),
                process,
            )));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        all
    });
    let (mut cluster, events) = nemesis
        .join()
        .map_err(|_| anyhow::anyhow!("the nemesis thread panicked"))?;
    let settled = cluster.wait_settled(Duration::from_secs(60));
    // Sessions that were dropped or abandoned must be gone before the final reads.
    let quiet = if workloads.contains(&Workload::Sessions) {
        SESSION_TIMEOUT * 2 + Duration::from_secs(2)
    } else {
        Duration::from_secs(3)
    };
    println!(
        "jepsen: workload done ({} ops); healed, settled: {settled}; quiet for {} s",
        history.len(),
        quiet.as_secs()
    );
    std::thread::sleep(quiet);
    let mut set_keys: Vec<String> = history
        .iter()
        .filter(|r| r.f == F::Add)
        .map(|r| r.key.clone())
        .collect();
    set_keys.sort();
    set_keys.dedup();
    let finals = rt.block_on(run::workers::final_reads(
        &ctx,
        &servers,
        &workloads,
        FINAL_PROCESS,
        &set_keys,
    ));
    history.extend(finals);
    let digests = (target == Target::Rookery).then(|| agreed_digests(&servers));
    let span_us = ctx.now_us();
    history.sort_by_key(|r| (r.invoke_us, r.complete_us));
    write_lines(&dir.join("history.jsonl"), &history)?;
    write_lines(&dir.join("nemesis.jsonl"), &events)?;
    std::fs::write(
        dir.join("latency.svg"),
        svg::latency_plot(
            &format!("{} {names}, seed {seed}", target.name()),
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
    let mut findings: Option<Vec<Finding>> = rx
        .recv_timeout(Duration::from_secs(args.check_timeout))
        .ok();
    if let (Some(found), Some(Err(seen))) = (findings.as_mut(), &digests) {
        found.push(Finding::new(
            "final-digest",
            "",
            format!("servers end with different tree digests: {seen:?}"),
            Vec::new(),
        ));
    }
    let verdict = match &findings {
        None => "unknown",
        Some(f) if f.is_empty() => "valid",
        Some(_) => "anomaly",
    };
    let per_workload: serde_json::Map<String, serde_json::Value> = workloads
        .iter()
        .map(|w| {
            let of = |r: &&Record| Workload::of_key(&r.key) == Some(*w);
            let n = history.iter().filter(of).count();
            let ok = history.iter().filter(of).filter(|r| r.is_ok()).count();
            let bad = findings
                .iter()
                .flatten()
                .filter(|f| Workload::of_key(&f.key) == Some(*w))
                .count();
            (
                w.name().to_string(),
                json!({"ops": n, "ok": ok, "findings": bad}),
            )
        })
        .collect();
    let report = json!({
        "verdict": verdict,
        "target": target.name(),
        "workloads": names,
        "nemesis": args.nemesis,
        "seed": seed,
        "time_s": args.time,
        "nodes": args.nodes,
        "concurrency": args.concurrency,
        "injected_bugs": std::env::var("ROOKERY_INJECT_BUG").ok(),
        "final_digest": digests.as_ref().map(|d| match d {
            Ok(d) => json!(d),
            Err(seen) => json!({"disagree": seen}),
        }),
        "ops": {"total": history.len(), "ok": ok, "fail": fail, "info": info},
        "per_workload": per_workload,
        "check_ms": checked_at.elapsed().as_millis() as u64,
        "nemesis_events": events,
        "findings": findings.clone().unwrap_or_default(),
    });
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    for (w, v) in &per_workload {
        println!("jepsen: {w}: {v}");
    }
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

/// Every server's tree digest (`hash`), polled until they agree: the final readers'
/// sessions close just before, and each server applies those closes in its own time.
/// Err holds the last disagreeing answers.
fn agreed_digests(servers: &[SocketAddr]) -> Result<String, Vec<Option<String>>> {
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen = servers
            .iter()
            .map(|&a| rookery_tests::four_letter_at(a, "hash").map(|h| h.trim().to_string()))
            .collect();
        if let Some(Some(first)) = seen.first() {
            if seen.iter().all(|d| d.as_ref() == Some(first)) {
                return Ok(first.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(seen)
}

fn write_lines<T: serde::Serialize>(path: &std::path::Path, items: &[T]) -> Result<()> {
    let mut lines = String::new();
    for item in items {
        lines.push_str(&serde_json::to_string(item)?);
        lines.push('\n');
    }
    std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))
}
