//! `rookery-bench`: runs the matrix and writes `report.md` and `report.json` into the
//! report directory. `cargo xtask bench` builds the release binaries, sets
//! `ROOKERY_BIN` and `ROOKERY_ZK_JVM_OPTS`, and runs this.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use rookery_bench::deploy::{Topology, truncate};
use rookery_bench::matrix::{self, Cell, Config};
use rookery_bench::report::{self, utc_compact, utc_display};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(about = "Rookery vs Apache ZooKeeper, side by side, through the same client")]
struct Args {
    /// Cells to run, comma-separated: get, set, mixed, create_delete, watch, failover,
    /// memory, restart, failover_loaded (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Topologies, comma-separated: standalone, ensemble (3 voters) (default: both).
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Repetitions of each cell (the bulk load and its memory and disk: once).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Recorded seconds of each closed-loop or watch cell.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds of load before recording starts, in each repetition.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds of unrecorded load on each system after it starts, split over get, set,
    /// mixed and create+delete (so ZooKeeper's JIT has compiled them).
    #[arg(long, default_value_t = 8.0)]
    start_warmup: f64,
    /// Client sessions of the closed-loop cells (spread over an ensemble's servers).
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Requests each session keeps outstanding.
    #[arg(long, default_value_t = 4)]
    outstanding: usize,
    /// Sessions watching the one node in the watch cell (plus one writer).
    #[arg(long, default_value_t = 64)]
    watchers: usize,
    /// Keys read and written by get, set and mixed.
    #[arg(long, default_value_t = 1_000)]
    keys: usize,
    /// Bytes of each value in get, set, mixed and create+delete.
    #[arg(long, default_value_t = 1_024)]
    value_bytes: usize,
    /// Znodes of the memory, restart and failover_loaded cells.
    #[arg(long, default_value_t = 1_000_000)]
    znodes: u64,
    /// Bytes of each of those znodes.
    #[arg(long, default_value_t = 100)]
    znode_bytes: usize,
    /// Creates per multi request in the bulk load (1: one create per request).
    #[arg(long, default_value_t = 100)]
    load_batch: u64,
    /// Where the report goes (default: <target dir>/bench/<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    mem_total: String,
    kernel: String,
    rustc: String,
    java: String,
    zookeeper: String,
    rookery_bin: String,
    rookery_commit: String,
    zk_jvm_opts: String,
    load_before: String,
    load_after: String,
}

#[derive(Serialize)]
struct Report<'a> {
    started: String,
    finished: String,
    wall_seconds: f64,
    command: String,
    config: &'a Config,
    machine: &'a Machine,
    rows: &'a [report::Row],
    notes: &'a [String],
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let out = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            first_line(&String::from_utf8_lossy(&out))
        })
        .unwrap_or_else(|e| format!("({program}: {e})"))
}

fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// MemTotal in GiB.
fn mem_total() -> String {
    let kb: Option<f64> = proc_field("/proc/meminfo", "MemTotal")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok());
    kb.map(|kb| format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse_config(a: &Args) -> Result<Config> {
    let cells = if a.only.is_empty() {
        Cell::ALL.to_vec()
    } else {
        a.only
            .iter()
            .map(|s| Cell::parse(s).with_context(|| format!("unknown cell {s:?}")))
            .collect::<Result<Vec<_>>>()?
    };
    let topologies = if a.targets.is_empty() {
        vec![Topology::Standalone, Topology::Ensemble3]
    } else {
        a.targets
            .iter()
            .map(|s| Topology::parse(s).with_context(|| format!("unknown target {s:?}")))
            .collect::<Result<Vec<_>>>()?
    };
    if a.reps == 0 || a.sessions == 0 || a.outstanding == 0 || a.watchers == 0 || a.keys == 0 {
        bail!("--reps, --sessions, --outstanding, --watchers and --keys must be at least 1");
    }
    if !(a.duration > 0.0 && a.warmup >= 0.0) {
        bail!("--duration must be positive and --warmup not negative");
    }
    Ok(Config {
        cells,
        topologies,
        reps: a.reps,
        warmup_secs: a.warmup,
        duration_secs: a.duration,
        start_warmup_secs: a.start_warmup.max(0.0),
        sessions: a.sessions,
        outstanding: a.outstanding,
        watchers: a.watchers,
        keys: a.keys,
        value_bytes: a.value_bytes,
        znodes: a.znodes.max(1),
        znode_bytes: a.znode_bytes,
        load_batch: a.load_batch.max(1),
    })
}

fn markdown(r: &Report<'_>, table: &str, goals: &str) -> String {
    let m = r.machine;
    let c = r.config;
    let mut s = String::new();
    s.push_str(&format!(
        "Run {} to {} (wall {:.0} s): `{}`\n\n",
        r.started, r.finished, r.wall_seconds, r.command
    ));
    s.push_str(&format!(
        "- Machine: {} cores ({}), {} RAM, kernel {}\n- {}; {}; {}\n\
         - Rookery {} (`{}`); ZooKeeper JVM flags `{}` (the harness adds \
         `-Dzookeeper.admin.enableServer=false`; forceSync is ZooKeeper's default, yes; Rookery always fsyncs)\n\
         - Load average (1/5/15 min) before: {}; after: {}\n",
        m.nproc,
        m.cpu,
        m.mem_total,
        m.kernel,
        m.rustc,
        m.java,
        m.zookeeper,
        m.rookery_commit,
        m.rookery_bin,
        m.zk_jvm_opts,
        m.load_before,
        m.load_after
    ));
    s.push_str(&format!(
        "- Load: {} sessions x {} outstanding, {} s warm-up + {} s recorded per repetition, \
         {} repetitions (alternating Rookery and ZooKeeper), after {} s of unrecorded load (get, set, \
         mixed, create+delete) on each system once started; {} keys of {} B; watch: {} watchers \
         + 1 writer; bulk load, on a fresh pair of deployments: {} znodes x {} B in multis of {}\n\n",
        c.sessions,
        c.outstanding,
        c.warmup_secs,
        c.duration_secs,
        c.reps,
        c.start_warmup_secs,
        c.keys,
        c.value_bytes,
        c.watchers,
        c.znodes,
        c.znode_bytes,
        c.load_batch
    ));
    s.push_str(table);
    s.push_str("\nAgainst issue 7's goals (ratio of medians, Rookery/ZooKeeper):\n\n");
    s.push_str(goals);
    if !r.notes.is_empty() {
        s.push_str("\nErrors and notes:\n\n");
        for n in r.notes {
            s.push_str(&format!("- {}\n", truncate(&n.replace('\n', " "), 600)));
        }
    }
    s
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = parse_config(&args)?;
    let Some(bin) = std::env::var_os("ROOKERY_BIN").map(PathBuf::from) else {
        bail!(
            "set ROOKERY_BIN to a release build of rookery (`cargo xtask bench` builds one and sets it)"
        );
    };
    if !bin.is_file() {
        bail!("ROOKERY_BIN={} is not a file", bin.display());
    }
    let Ok(jvm) = std::env::var("ROOKERY_ZK_JVM_OPTS") else {
        bail!(
            "set ROOKERY_ZK_JVM_OPTS (e.g. -Xmx2g; `cargo xtask bench` does): the harness's \
             test defaults are too small a heap for the bulk load"
        );
    };
    if let Some(why) = rookery_tests::missing(&["zookeeper"]) {
        bail!("{why}: apt-get install zookeeper (cargo xtask bench does, as root)");
    }
    let started_secs = now_secs();
    let out = match &args.out {
        Some(o) => o.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent()?.parent().map(|t| t.join("bench")))
            .unwrap_or_else(|| PathBuf::from("target/bench"))
            .join(utc_compact(started_secs)),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // The harness panics with whole server logs; print only their start.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                info.payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
            })
            .unwrap_or_default();
        eprintln!("panic: {}", truncate(&msg, 3_000));
    }));

    let mut machine = Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: proc_field("/proc/cpuinfo", "model name"),
        mem_total: mem_total(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        rustc: command_line("rustc", &["--version"]),
        java: command_line("java", &["-version"]),
        zookeeper: String::new(),
        rookery_bin: bin.display().to_string(),
        rookery_commit: command_line("git", &["describe", "--always", "--dirty"]),
        zk_jvm_opts: jvm,
        load_before: loadavg(),
        load_after: String::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let t0 = Instant::now();
    let mut zk_version = String::new();
    let log_dir = out.join("logs");
    let results = matrix::run(&cfg, &rt, Some(&log_dir), &mut |line: String| {
        if zk_version.is_empty() && line.contains("zookeeper: Zookeeper version") {
            zk_version = line.trim().trim_start_matches("zookeeper: ").to_owned();
        }
        let (_, _, _, h, m, sec) = report::utc(now_secs());
        eprintln!("{h:02}:{m:02}:{sec:02} {line}");
    });
    let wall = t0.elapsed();
    rt.shutdown_timeout(Duration::from_secs(2));
    machine.zookeeper = if zk_version.is_empty() {
        "ZooKeeper (version not read)".to_owned()
    } else {
        zk_version
    };
    machine.load_after = loadavg();

    let command = std::iter::once("cargo xtask bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let report = Report {
        started: utc_display(started_secs),
        finished: utc_display(now_secs()),
        wall_seconds: wall.as_secs_f64(),
        command,
        config: &cfg,
        machine: &machine,
        rows: &results.rows,
        notes: &results.notes,
    };
    let table = report::render_table(&results.rows);
    let goals = report::render_goals(&results.rows);
    let md = markdown(&report, &table, &goals);
    std::fs::write(out.join("report.md"), &md).context("writing report.md")?;
    let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
    std::fs::write(out.join("report.json"), json).context("writing report.json")?;
    println!("{md}");
    println!("report: {}", out.join("report.md").display());
    Ok(())
}
