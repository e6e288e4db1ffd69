//! The matrix: for each topology, both systems run side by side (both started, each
//! cell's repetitions alternating Rookery, ZooKeeper, Rookery, ...) so that whatever
//! else loads the machine falls on both alike; the results become report rows.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rookery_tests::{CLUSTER_WAIT, Target};
use serde::Serialize;
use tokio::runtime::Runtime;
use zookeeper_client::Client;

use crate::deploy::{Deployment, QUIET_WINDOW, Topology, dir_usage, harness, rss_bytes};
use crate::error::BenchError;
use crate::report::{Better, Row, Samples, Unit};
use crate::workload::{self, LoadParams, Mix, Outcome};

/// The systems in the order each repetition runs them.
pub const SYSTEMS: [Target; 2] = [Target::Rookery, Target::ZooKeeper];

/// One kind of measurement; `--only` takes their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    Get,
    Set,
    Mixed,
    CreateDelete,
    Watch,
    Failover,
    Memory,
    Restart,
    FailoverLoaded,
}

impl Cell {
    pub const ALL: [Cell; 9] = [
        Cell::Get,
        Cell::Set,
        Cell::Mixed,
        Cell::CreateDelete,
        Cell::Watch,
        Cell::Failover,
        Cell::Memory,
        Cell::Restart,
        Cell::FailoverLoaded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cell::Get => "get",
            Cell::Set => "set",
            Cell::Mixed => "mixed",
            Cell::CreateDelete => "create_delete",
            Cell::Watch => "watch",
            Cell::Failover => "failover",
            Cell::Memory => "memory",
            Cell::Restart => "restart",
            Cell::FailoverLoaded => "failover_loaded",
        }
    }

    pub fn parse(s: &str) -> Option<Cell> {
        let s = s.trim().replace('-', "_");
        Cell::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Only ensembles have a leader to kill.
    fn needs_ensemble(self) -> bool {
        matches!(self, Cell::Failover | Cell::FailoverLoaded)
    }

    fn needs_bulk_load(self) -> bool {
        matches!(self, Cell::Memory | Cell::Restart | Cell::FailoverLoaded)
    }
}

/// What to run and how hard.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub cells: Vec<Cell>,
    pub topologies: Vec<Topology>,
    pub reps: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    /// Unrecorded load on each system once it has started, before its first cell:
    /// ZooKeeper's JIT compiles its hot paths here rather than in the first cell.
    pub start_warmup_secs: f64,
    pub sessions: usize,
    pub outstanding: usize,
    pub watchers: usize,
    pub keys: usize,
    pub value_bytes: usize,
    pub znodes: u64,
    pub znode_bytes: usize,
    pub load_batch: u64,
}

impl Config {
    fn params(&self) -> LoadParams {
        LoadParams {
            outstanding: self.outstanding,
            warmup: Duration::from_secs_f64(self.warmup_secs),
            duration: Duration::from_secs_f64(self.duration_secs),
            keys: self.keys,
            value: Arc::new(vec![b'v'; self.value_bytes]),
        }
    }

    fn has(&self, c: Cell) -> bool {
        self.cells.contains(&c)
    }
}

/// `1M`, `100k`, `2500`.
pub fn short_count(n: u64) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// A metric's name, how it prints, which way is better and issue 7's goal.
#[derive(Debug, Clone, Copy)]
struct Metric {
    name: &'static str,
    unit: Unit,
    better: Better,
    goal: Option<f64>,
}

const fn metric(name: &'static str, unit: Unit, better: Better, goal: Option<f64>) -> Metric {
    Metric {
        name,
        unit,
        better,
        goal,
    }
}

const LOAD_P50: Metric = metric("p50 ms", Unit::Millis, Better::Lower, None);
const LOAD_P99: Metric = metric("p99 ms", Unit::Millis, Better::Lower, Some(0.5));
const LOAD_P999: Metric = metric("p99.9 ms", Unit::Millis, Better::Lower, Some(0.5));
const FAILOVER: Metric = metric(
    "kill -9 leader -> write acked, s",
    Unit::Seconds,
    Better::Lower,
    Some(0.5),
);
const RESTART: Metric = metric(
    "kill -9 -> restarted and read answered, s",
    Unit::Seconds,
    Better::Lower,
    Some(0.25),
);
const LOAD_RATE: Metric = metric("bulk load, znodes/s", Unit::Rate, Better::Higher, None);
const RSS: Metric = metric(
    "RSS MiB (max per server)",
    Unit::Mib,
    Better::Lower,
    Some(0.25),
);
const DISK: Metric = metric(
    "dataDir MiB (max per server)",
    Unit::Mib,
    Better::Lower,
    Some(0.25),
);
const WATCH_RATE: Metric = metric("notifications/s", Unit::Rate, Better::Higher, None);
const WATCH_P50: Metric = metric("notify p50 ms", Unit::Millis, Better::Lower, None);
const WATCH_P99: Metric = metric("notify p99 ms", Unit::Millis, Better::Lower, Some(0.5));
const WATCH_P999: Metric = metric("notify p99.9 ms", Unit::Millis, Better::Lower, None);

fn throughput(goal: Option<f64>) -> Metric {
    metric("ops/s", Unit::Rate, Better::Higher, goal)
}

/// The rows of a cell, in print order.
fn metrics(cell: Cell) -> Vec<Metric> {
    match cell {
        Cell::Get => vec![throughput(Some(2.0)), LOAD_P50, LOAD_P99, LOAD_P999],
        Cell::Set | Cell::CreateDelete => {
            vec![throughput(Some(3.0)), LOAD_P50, LOAD_P99, LOAD_P999]
        }
        Cell::Mixed => vec![throughput(None), LOAD_P50, LOAD_P99, LOAD_P999],
        Cell::Watch => vec![WATCH_RATE, WATCH_P50, WATCH_P99, WATCH_P999],
        Cell::Failover | Cell::FailoverLoaded => vec![FAILOVER],
        Cell::Memory => vec![LOAD_RATE, RSS, DISK],
        Cell::Restart => vec![RESTART],
    }
}

/// Collects rows in the order values first arrive, plus notes (errors that did not
/// stop a cell).
#[derive(Debug, Default)]
pub struct Results {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Results {
    fn row(&mut self, topology: Topology, label: &str, m: &Metric) -> &mut Row {
        let pos = self
            .rows
            .iter()
            .position(|r| r.topology == topology.name() && r.cell == label && r.metric == m.name);
        let pos = pos.unwrap_or_else(|| {
            self.rows.push(Row {
                topology: topology.name().to_owned(),
                cell: label.to_owned(),
                metric: m.name.to_owned(),
                unit: m.unit,
                better: m.better,
                goal: m.goal,
                rookery: Samples::default(),
                zookeeper: Samples::default(),
            });
            self.rows.len() - 1
        });
        &mut self.rows[pos]
    }

    fn samples(&mut self, t: Topology, label: &str, m: &Metric, s: Target) -> &mut Samples {
        let row = self.row(t, label, m);
        match s {
            Target::Rookery => &mut row.rookery,
            Target::ZooKeeper => &mut row.zookeeper,
        }
    }

    fn add(&mut self, t: Topology, label: &str, m: &Metric, s: Target, v: f64) {
        self.samples(t, label, m, s).values.push(v);
    }

    fn fail(&mut self, t: Topology, label: &str, ms: &[Metric], s: Target, e: &str) {
        for m in ms {
            self.samples(t, label, m, s).errors.push(e.to_owned());
        }
        self.notes
            .push(format!("{} {label}, {}: {e}", t.name(), s.name()));
    }
}

/// A cell's label in the table.
fn label(cell: Cell, cfg: &Config) -> String {
    let z = short_count(cfg.znodes);
    let v = if cfg.value_bytes % 1024 == 0 {
        format!("{} KiB", cfg.value_bytes / 1024)
    } else {
        format!("{} B", cfg.value_bytes)
    };
    match cell {
        Cell::Get => format!("getData {v}"),
        Cell::Set => format!("setData {v}"),
        Cell::Mixed => "90% get / 10% set".to_owned(),
        Cell::CreateDelete => "create+delete".to_owned(),
        Cell::Watch => format!("watch fan-out ({} watchers)", cfg.watchers),
        Cell::Failover => "leader failover".to_owned(),
        Cell::Memory => format!("{z} znodes x {} B", cfg.znode_bytes),
        Cell::Restart => format!("restart with {z} znodes"),
        Cell::FailoverLoaded => format!("leader failover, {z} znodes"),
    }
}

/// Runs the matrix; `progress` gets a line as each measurement ends. For each
/// topology, the closed-loop, watch and failover cells share one pair of deployments;
/// the bulk-load cells get a fresh pair, so memory and disk hold the loaded znodes and
/// not the history of the other cells. The servers' logs (since each one's last start)
/// are saved into `log_dir` before they are stopped, and those of a system whose bulk
/// load failed as soon as it failed.
pub fn run(
    cfg: &Config,
    rt: &Runtime,
    log_dir: Option<&Path>,
    progress: &mut dyn FnMut(String),
) -> Results {
    let mut results = Results::default();
    for &topology in &cfg.topologies {
        let cells: Vec<Cell> = Cell::ALL
            .into_iter()
            .filter(|&c| cfg.has(c) && (topology == Topology::Ensemble3 || !c.needs_ensemble()))
            .collect();
        let (bulk, small): (Vec<Cell>, Vec<Cell>) =
            cells.into_iter().partition(|c| c.needs_bulk_load());
        if !small.is_empty() {
            let deps = start_both(cfg, rt, topology, cfg.keys, &small, &mut results, progress);
            let mut tm = TopologyRun {
                cfg,
                rt,
                topology,
                deps,
                results: &mut results,
                progress,
                log_dir,
            };
            tm.warm_up();
            for &cell in &small {
                match cell {
                    Cell::Get => tm.load_cell(cell, Mix::Get),
                    Cell::Set => tm.load_cell(cell, Mix::Set),
                    Cell::Mixed => tm.load_cell(cell, Mix::Mixed),
                    Cell::CreateDelete => tm.load_cell(cell, Mix::CreateDelete),
                    Cell::Watch => tm.watch_cell(),
                    Cell::Failover => tm.failover_cell(Cell::Failover),
                    _ => {}
                }
            }
            tm.stop("");
        }
        if !bulk.is_empty() {
            let deps = start_both(cfg, rt, topology, 0, &bulk, &mut results, progress);
            let mut tm = TopologyRun {
                cfg,
                rt,
                topology,
                deps,
                results: &mut results,
                progress,
                log_dir,
            };
            let loaded = tm.bulk_load(bulk.contains(&Cell::Memory));
            for &cell in &bulk {
                match cell {
                    Cell::Restart => tm.restart_cell(&loaded),
                    Cell::FailoverLoaded => tm.failover_cell_loaded(&loaded),
                    _ => {}
                }
            }
            tm.stop("-loaded");
        }
    }
    results
}

/// Starts both systems (fresh data directories) with the benchmark's nodes and `keys`
/// get/set keys; a system that fails to start fails every one of `cells`.
fn start_both(
    cfg: &Config,
    rt: &Runtime,
    topology: Topology,
    keys: usize,
    cells: &[Cell],
    results: &mut Results,
    progress: &mut dyn FnMut(String),
) -> Vec<(Target, Option<Deployment>)> {
    progress(format!("== {}: starting both systems", topology.name()));
    let mut deps = Vec::new();
    for s in SYSTEMS {
        let started = Deployment::start(s, topology).and_then(|d| {
            let ports = d.client_ports();
            rt.block_on(async {
                let c = workload::connect(ports[0], Duration::from_secs(10)).await?;
                workload::setup(&c, keys, &vec![b'v'; cfg.value_bytes]).await
            })?;
            Ok(d)
        });
        match started {
            Ok(d) => {
                progress(format!(
                    "   {}: {}",
                    s.name(),
                    d.version().unwrap_or_default()
                ));
                deps.push((s, Some(d)));
            }
            Err(e) => {
                for &c in cells {
                    results.fail(topology, &label(c, cfg), &metrics(c), s, &e.to_string());
                }
                deps.push((s, None));
            }
        }
    }
    deps
}

/// One topology's state: both systems' deployments (None once failed).
struct TopologyRun<'a> {
    cfg: &'a Config,
    rt: &'a Runtime,
    topology: Topology,
    deps: Vec<(Target, Option<Deployment>)>,
    results: &'a mut Results,
    progress: &'a mut dyn FnMut(String),
    /// Where the servers' logs go before a deployment is stopped or dropped.
    log_dir: Option<&'a Path>,
}

fn ms(us: Option<u64>) -> f64 {
    us.map(|v| v as f64 / 1_000.0).unwrap_or(f64::NAN)
}

impl TopologyRun<'_> {
    fn say(&mut self, line: String) {
        (self.progress)(line);
    }

    /// Records a closed-loop outcome, or the error if nothing completed.
    fn record_outcome(&mut self, cell: Cell, s: Target, rep: usize, o: &Outcome) {
        let label = label(cell, self.cfg);
        let ms_list = metrics(cell);
        let t = self.topology;
        if o.ops == 0 {
            let e = o
                .first_error
                .clone()
                .unwrap_or_else(|| "no operation completed".into());
            self.results.fail(t, &label, &ms_list, s, &e);
            return;
        }
        let values = [
            o.rate(),
            ms(o.hist.quantile(0.5)),
            ms(o.hist.quantile(0.99)),
            ms(o.hist.quantile(0.999)),
        ];
        for (m, v) in ms_list.iter().zip(values) {
            self.results.add(t, &label, m, s, v);
        }
        if o.errors > 0 {
            self.results.notes.push(format!(
                "{} {label}, {} rep {}: {} request(s) failed, first: {}",
                t.name(),
                s.name(),
                rep + 1,
                o.errors,
                o.first_error.as_deref().unwrap_or("?")
            ));
        }
        self.say(format!(
            "   {:<28} {:<9} rep {}: {:>9.0}/s  p50 {:.3}  p99 {:.3}  p99.9 {:.3} ms{}",
            label,
            s.name(),
            rep + 1,
            values[0],
            values[1],
            values[2],
            values[3],
            if o.errors > 0 {
                format!("  ({} errors)", o.errors)
            } else {
                String::new()
            }
        ));
    }

    /// Saves the logs (file names end in `suffix`) and stops both systems.
    fn stop(mut self, suffix: &str) {
        for i in 0..self.deps.len() {
            self.save_log(i, suffix);
        }
        self.say(format!(
            "== {}: stopping both systems",
            self.topology.name()
        ));
    }

    /// Saves the logs of `self.deps[i]`, if it is live, into `log_dir`.
    fn save_log(&mut self, i: usize, suffix: &str) {
        let Some(d) = &self.deps[i].1 else {
            return;
        };
        let logs = d.logs();
        self.save_text(i, &format!("{suffix}.log"), &logs);
    }

    /// Writes `text` as `<topology>-<system><suffix>` in the run's log directory.
    fn save_text(&mut self, i: usize, suffix: &str, text: &str) {
        let Some(dir) = self.log_dir else {
            return;
        };
        let s = self.deps[i].0;
        let path = dir.join(format!("{}-{}{suffix}", self.topology.name(), s.name()));
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text)) {
            self.say(format!("   saving {}: {e}", path.display()));
        }
    }

    /// Connects `n` sessions to each live system, spread over its servers.
    fn pools(&mut self, cell: Cell, n: usize) -> Vec<(Target, Vec<Client>)> {
        let mut pools = Vec::new();
        for i in 0..self.deps.len() {
            let (s, Some(d)) = &self.deps[i] else {
                continue;
            };
            let (s, ports) = (*s, d.client_ports());
            match self.rt.block_on(workload::connect_pool(&ports, n)) {
                Ok(p) => {
                    self.note_retries(cell, s, &p.retried);
                    pools.push((s, p.clients));
                }
                Err(e) => {
                    let label = label(cell, self.cfg);
                    self.results
                        .fail(self.topology, &label, &metrics(cell), s, &e.to_string());
                }
            }
        }
        pools
    }

    fn note_retries(&mut self, cell: Cell, s: Target, retried: &[String]) {
        if let Some(first) = retried.first() {
            let note = format!(
                "{} {}, {}: {} session connect(s) failed and were retried, first: {first}",
                self.topology.name(),
                label(cell, self.cfg),
                s.name(),
                retried.len()
            );
            self.say(format!("   {note}"));
            self.results.notes.push(note);
        }
    }

    /// Closes sessions (the client sends closeSession when its last handle goes).
    fn close(&self, pools: Vec<(Target, Vec<Client>)>) {
        drop(pools);
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Unrecorded load on each system (see [`Config::start_warmup_secs`]): a quarter
    /// of the time in each closed-loop mix, so every request path is compiled.
    fn warm_up(&mut self) {
        if self.cfg.start_warmup_secs <= 0.0 {
            return;
        }
        let mixes = [Mix::Get, Mix::Set, Mix::Mixed, Mix::CreateDelete];
        let mut params = self.cfg.params();
        params.warmup = Duration::ZERO;
        params.duration = Duration::from_secs_f64(self.cfg.start_warmup_secs / mixes.len() as f64);
        for i in 0..self.deps.len() {
            let (s, Some(d)) = &self.deps[i] else {
                continue;
            };
            let (s, ports) = (*s, d.client_ports());
            let cfg = self.cfg;
            let o = self.rt.block_on(async {
                let pool = workload::connect_pool(&ports, cfg.sessions).await?;
                let mut rates = Vec::new();
                for mix in mixes {
                    let o = workload::run_load(&pool.clients, mix, &params).await;
                    rates.push(format!("{mix:?} {:.0}/s ({} errors)", o.rate(), o.errors));
                }
                Ok::<_, BenchError>(rates.join(", "))
            });
            match o {
                Ok(rates) => self.say(format!("   warm-up {:<9}: {rates}", s.name())),
                Err(e) => self.say(format!("   warm-up of {} failed: {e}", s.name())),
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    fn load_cell(&mut self, cell: Cell, mix: Mix) {
        let pools = self.pools(cell, self.cfg.sessions);
        let params = self.cfg.params();
        for rep in 0..self.cfg.reps {
            for (s, pool) in &pools {
                let o = self.rt.block_on(workload::run_load(pool, mix, &params));
                self.record_outcome(cell, *s, rep, &o);
            }
        }
        self.close(pools);
    }

    fn watch_cell(&mut self) {
        let cell = Cell::Watch;
        let pools = self.pools(cell, self.cfg.watchers + 1);
        let params = self.cfg.params();
        for rep in 0..self.cfg.reps {
            for (s, pool) in &pools {
                let Some((writer, watchers)) = pool.split_last() else {
                    continue;
                };
                match self
                    .rt
                    .block_on(workload::run_watch(watchers, writer, &params))
                {
                    Ok(o) => self.record_outcome(cell, *s, rep, &o),
                    Err(e) => {
                        let label = label(cell, self.cfg);
                        self.results.fail(
                            self.topology,
                            &label,
                            &metrics(cell),
                            *s,
                            &e.to_string(),
                        );
                    }
                }
            }
        }
        self.close(pools);
    }

    fn failover_cell(&mut self, cell: Cell) {
        let label = label(cell, self.cfg);
        for rep in 0..self.cfg.reps {
            for i in 0..self.deps.len() {
                let s = self.deps[i].0;
                if self.deps[i].1.is_none() {
                    continue;
                }
                self.wait_idle();
                let Some(Deployment::Ensemble(c)) = self.deps[i].1.as_mut() else {
                    continue;
                };
                match failover_once(c, self.rt) {
                    Ok(secs) => {
                        self.results.add(self.topology, &label, &FAILOVER, s, secs);
                        self.say(format!(
                            "   {label:<28} {:<9} rep {}: {secs:.3} s",
                            s.name(),
                            rep + 1
                        ));
                    }
                    Err(e) => {
                        self.results
                            .fail(self.topology, &label, &[FAILOVER], s, &e.to_string())
                    }
                }
            }
        }
    }

    /// Waits until every deployment is idle ([`Deployment::wait_quiet`]), so that a
    /// restart or failover is timed on a machine where neither system is still busy with
    /// what came before (a bulk load's snapshots, our snapshot at start, ZooKeeper's
    /// JIT and GC). A long wait is reported; one that gives up is a note.
    fn wait_idle(&mut self) {
        for j in 0..self.deps.len() {
            let s = self.deps[j].0;
            let Some(d) = self.deps[j].1.as_ref() else {
                continue;
            };
            match d.wait_quiet(QUIET_LIMIT) {
                Ok(waited) if waited > 2 * QUIET_WINDOW => self.say(format!(
                    "   {:<38} {:<9} busy for {:.1} s",
                    "(waiting for idle servers)",
                    s.name(),
                    waited.as_secs_f64()
                )),
                Ok(_) => {}
                Err(e) => {
                    let note = format!("{} {}: {e}", self.topology.name(), s.name());
                    self.say(format!("   {note}"));
                    self.results.notes.push(note);
                }
            }
        }
    }

    /// `failover_cell` for the systems whose bulk load succeeded.
    fn failover_cell_loaded(&mut self, loaded: &[Target]) {
        self.only_loaded(Cell::FailoverLoaded, loaded);
        self.failover_cell(Cell::FailoverLoaded);
    }

    /// Marks the systems whose load failed as failed for `cell` and takes them out of
    /// the run (their trees are not what the cell measures).
    fn only_loaded(&mut self, cell: Cell, loaded: &[Target]) {
        for i in 0..self.deps.len() {
            let s = self.deps[i].0;
            if self.deps[i].1.is_some() && !loaded.contains(&s) {
                let label = label(cell, self.cfg);
                self.results.fail(
                    self.topology,
                    &label,
                    &metrics(cell),
                    s,
                    "the bulk load failed",
                );
                self.deps[i].1 = None;
            }
        }
    }

    /// Loads the znodes into every live system; measures memory and disk if asked.
    /// Returns the systems that hold them.
    fn bulk_load(&mut self, measure: bool) -> Vec<Target> {
        let cell = Cell::Memory;
        let label = label(cell, self.cfg);
        let mut loaded = Vec::new();
        for i in 0..self.deps.len() {
            let s = self.deps[i].0;
            let Some(d) = self.deps[i].1.as_ref() else {
                continue;
            };
            let ports = d.client_ports();
            let pids = d.pids();
            let cfg = self.cfg;
            let stalled = Arc::new(Mutex::new(None));
            let took = self.rt.block_on(async {
                let pool = workload::connect_pool(&ports, cfg.sessions).await?;
                let done = Arc::new(AtomicU64::new(0));
                let watchdog = tokio::spawn(capture_if_stalled(
                    Arc::clone(&done),
                    pids,
                    ports.clone(),
                    Arc::clone(&stalled),
                ));
                let took = workload::load_znodes(
                    &pool.clients,
                    cfg.znodes,
                    cfg.znode_bytes,
                    cfg.load_batch,
                    cfg.outstanding,
                    done,
                )
                .await;
                watchdog.abort();
                took
            });
            let stalled = stalled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let took = match took {
                Ok(t) => t,
                Err(e) => {
                    self.results
                        .fail(self.topology, &label, &metrics(cell), s, &e.to_string());
                    // At once, whatever cells follow: why the load failed is in there.
                    self.save_log(i, "-load-failed");
                    if let Some(state) = stalled {
                        self.save_text(i, "-load-stalled-state.txt", &state);
                    }
                    continue;
                }
            };
            if let Some(state) = stalled {
                // Slower than a load should be, though it finished: worth reading.
                let note = format!(
                    "{} {label}, {}: no multi was answered for {} s (the load finished); threads and sockets in logs/",
                    self.topology.name(),
                    s.name(),
                    STALL_CAPTURE.as_secs()
                );
                self.say(format!("   {note}"));
                self.results.notes.push(note);
                self.save_text(i, "-load-stalled-state.txt", &state);
            }
            loaded.push(s);
            if !measure {
                continue;
            }
            // Let closed sessions go and background work (a snapshot) settle.
            std::thread::sleep(Duration::from_secs(2));
            let Some(d) = self.deps[i].1.as_ref() else {
                continue;
            };
            let rate = self.cfg.znodes as f64 / took.as_secs_f64();
            let pids = d.pids();
            let rss: Result<Vec<u64>, BenchError> = pids.iter().copied().map(rss_bytes).collect();
            let disk: Result<Vec<(u64, u64)>, BenchError> =
                d.data_dirs().iter().map(|p| dir_usage(p)).collect();
            let t = self.topology;
            self.results.add(t, &label, &LOAD_RATE, s, rate);
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            let mut line = format!("   {label:<28} {:<9}: {rate:.0} znodes/s", s.name());
            match rss {
                Ok(v) => {
                    let max = v.iter().copied().max().unwrap_or(0);
                    self.results.add(t, &label, &RSS, s, mib(max));
                    line.push_str(&format!(
                        "  RSS {:?} MiB",
                        v.iter().map(|b| mib(*b) as u64).collect::<Vec<_>>()
                    ));
                }
                Err(e) => self.results.fail(t, &label, &[RSS], s, &e.to_string()),
            }
            match disk {
                Ok(v) => {
                    let max = v.iter().map(|(a, _)| *a).max().unwrap_or(0);
                    self.results.add(t, &label, &DISK, s, mib(max));
                    line.push_str(&format!(
                        "  dataDir {:?} MiB (apparent {:?})",
                        v.iter().map(|(a, _)| mib(*a) as u64).collect::<Vec<_>>(),
                        v.iter().map(|(_, b)| mib(*b) as u64).collect::<Vec<_>>()
                    ));
                }
                Err(e) => self.results.fail(t, &label, &[DISK], s, &e.to_string()),
            }
            self.say(line);
            if s == Target::ZooKeeper {
                let note = zk_live_heap_note(&pids);
                self.say(format!("   {note}"));
                self.results
                    .notes
                    .push(format!("{} {label}: {note}", self.topology.name()));
            }
        }
        loaded
    }

    /// Standalone: kill -9 the server and start it again. Ensemble: the same for one
    /// follower. Timed from the kill to the first read the restarted server answers
    /// (probes on its port only).
    fn restart_cell(&mut self, loaded: &[Target]) {
        let cell = Cell::Restart;
        self.only_loaded(cell, loaded);
        let label = label(cell, self.cfg);
        let path = workload::znode_path(self.cfg.znodes.saturating_sub(1));
        for rep in 0..self.cfg.reps {
            for i in 0..self.deps.len() {
                let s = self.deps[i].0;
                if self.deps[i].1.is_none() {
                    continue;
                }
                self.wait_idle();
                let Some(d) = self.deps[i].1.as_mut() else {
                    continue;
                };
                match restart_once(d, self.rt, &path) {
                    Ok(secs) => {
                        self.results.add(self.topology, &label, &RESTART, s, secs);
                        self.say(format!(
                            "   {label:<28} {:<9} rep {}: {secs:.3} s",
                            s.name(),
                            rep + 1
                        ));
                    }
                    Err(e) => {
                        self.results
                            .fail(self.topology, &label, &[RESTART], s, &e.to_string())
                    }
                }
            }
        }
    }
}

/// How long a bulk load may go without an answered multi before its state is taken.
/// Short of the client's 4 s "no response from connection", after which the failed
/// session's socket is already gone.
const STALL_CAPTURE: Duration = Duration::from_secs(2);

/// Watches a bulk load's count of answered multis and, the first time it stands still
/// for [`STALL_CAPTURE`], puts [`stuck_state`] into `out` (once; the load aborts this
/// task when it ends).
async fn capture_if_stalled(
    done: Arc<AtomicU64>,
    pids: Vec<u32>,
    ports: Vec<u16>,
    out: Arc<Mutex<Option<String>>>,
) {
    let mut last = done.load(Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = done.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
            continue;
        }
        if since.elapsed() >= STALL_CAPTURE {
            let state = tokio::task::spawn_blocking(move || stuck_state(&pids, &ports))
                .await
                .unwrap_or_else(|e| format!("taking the state failed: {e}\n"));
            let text = format!(
                "no multi answered for {} s, after {now} multis\n{state}",
                STALL_CAPTURE.as_secs()
            );
            *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
            return;
        }
    }
}

/// What the servers' threads and their client connections were doing: each thread's
/// state and wait channel (and kernel stack, where readable), then `ss -tinm` of every
/// TCP connection on the client ports (queues, windows, retransmission timers).
fn stuck_state(pids: &[u32], ports: &[u16]) -> String {
    let mut out = String::new();
    let read = |path: String| std::fs::read_to_string(path).unwrap_or_default();
    for pid in pids {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten();
        for task in tasks {
            let dir = task.path().display().to_string();
            let stat = read(format!("{dir}/stat"));
            let state = stat
                .rfind(')')
                .and_then(|at| stat[at + 1..].split_whitespace().next())
                .unwrap_or("?");
            out.push_str(&format!(
                "--- pid {pid} {} {} state {state} wchan {}\n{}",
                task.file_name().to_string_lossy(),
                read(format!("{dir}/comm")).trim(),
                read(format!("{dir}/wchan")),
                read(format!("{dir}/stack")),
            ));
        }
    }
    let filter: Vec<String> = ports
        .iter()
        .map(|p| format!("sport = :{p} or dport = :{p}"))
        .collect();
    let ss = std::process::Command::new("ss")
        .args(["-tinm", &format!("( {} )", filter.join(" or "))])
        .output();
    match ss {
        Ok(o) => out.push_str(&String::from_utf8_lossy(&o.stdout)),
        Err(e) => out.push_str(&format!("ss: {e}\n")),
    }
    out
}

/// ZooKeeper's RSS follows the JVM's heap, which G1 lets grow towards -Xmx before it
/// collects; for the reader, what the heap holds after a forced full GC (`jcmd`, when
/// the JDK has it) and the RSS after that. Run after RSS was measured.
fn zk_live_heap_note(pids: &[u32]) -> String {
    let mut parts = Vec::new();
    for pid in pids {
        let jcmd = |what: &str| {
            std::process::Command::new("jcmd")
                .args([&pid.to_string(), what])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        if jcmd("GC.run").is_none() {
            return "ZooKeeper's live heap was not read (no jcmd)".to_owned();
        }
        let used = jcmd("GC.heap_info").and_then(|t| parse_heap_used_kib(&t));
        let rss = rss_bytes(*pid).ok();
        parts.push(format!(
            "{} MiB live heap, RSS then {} MiB",
            used.map_or("?".to_owned(), |k| (k / 1024).to_string()),
            rss.map_or("?".to_owned(), |b| (b / (1024 * 1024)).to_string())
        ));
    }
    format!(
        "ZooKeeper after a forced full GC (jcmd GC.run), per server: {}",
        parts.join("; ")
    )
}

/// The `used NNNK` of the heap line of `jcmd PID GC.heap_info`.
fn parse_heap_used_kib(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.contains(" heap") && l.contains("used"))?;
    let after = line.split("used").nth(1)?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Longest wait for a system to go idle after a restart or failover repetition.
const QUIET_LIMIT: Duration = Duration::from_secs(20);

/// How often a probe starts, and how many may be in flight.
const PROBE_EVERY: Duration = Duration::from_millis(20);
const PROBES_IN_FLIGHT: usize = 16;

/// Kills the leader, times until a new session on a surviving server gets a write
/// acknowledged, then restarts the old leader and waits for the ensemble to settle.
fn failover_once(c: &mut rookery_tests::Cluster, rt: &Runtime) -> Result<f64, BenchError> {
    let leader = harness("finding the leader", || c.leader())?
        .ok_or_else(|| BenchError::Failed("no leader".into()))?;
    let survivors: Vec<u16> = c
        .voters()
        .into_iter()
        .filter(|&n| n != leader)
        .map(|n| c.client_port(n))
        .collect();
    let since = Instant::now();
    c.kill9(leader);
    let took = rt.block_on(workload::first_success(
        since,
        PROBE_EVERY,
        PROBES_IN_FLIGHT,
        CLUSTER_WAIT,
        |i| workload::write_probe(survivors[i % survivors.len()]),
    ));
    harness("restarting the old leader", || c.restart(leader))?;
    if !harness("waiting for the ensemble", || c.wait_settled(CLUSTER_WAIT))? {
        return Err(BenchError::Timeout(format!(
            "the ensemble did not settle after node {leader} rejoined"
        )));
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(took?.as_secs_f64())
}

fn restart_once(d: &mut Deployment, rt: &Runtime, path: &str) -> Result<f64, BenchError> {
    match d {
        Deployment::Standalone(s) => {
            s.kill9();
            let since = Instant::now();
            let port = s.port;
            let path = path.to_owned();
            let probes = rt.spawn(workload::first_success(
                since,
                PROBE_EVERY,
                PROBES_IN_FLIGHT,
                CLUSTER_WAIT * 2,
                move |_| workload::read_probe(port, path.clone()),
            ));
            harness("restarting", || s.restart())?;
            let took = rt
                .block_on(probes)
                .map_err(|e| BenchError::Failed(format!("probe task: {e}")))??;
            Ok(took.as_secs_f64())
        }
        Deployment::Ensemble(c) => {
            let leader = harness("finding the leader", || c.leader())?
                .ok_or_else(|| BenchError::Failed("no leader".into()))?;
            let f = c
                .voters()
                .into_iter()
                .find(|&n| n != leader)
                .ok_or_else(|| BenchError::Failed("no follower".into()))?;
            c.kill9(f);
            let since = Instant::now();
            let port = c.client_port(f);
            let path = path.to_owned();
            let probes = rt.spawn(workload::first_success(
                since,
                PROBE_EVERY,
                PROBES_IN_FLIGHT,
                CLUSTER_WAIT * 2,
                move |_| workload::read_probe(port, path.clone()),
            ));
            harness("restarting a follower", || c.restart(f))?;
            let took = rt
                .block_on(probes)
                .map_err(|e| BenchError::Failed(format!("probe task: {e}")))??;
            if !harness("waiting for the ensemble", || c.wait_settled(CLUSTER_WAIT))? {
                return Err(BenchError::Timeout("the ensemble did not settle".into()));
            }
            Ok(took.as_secs_f64())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_parse_by_name_and_every_cell_has_rows() {
        for c in Cell::ALL {
            assert_eq!(Cell::parse(c.name()), Some(c));
            assert!(!metrics(c).is_empty());
        }
        assert_eq!(Cell::parse("create-delete"), Some(Cell::CreateDelete));
        assert_eq!(Cell::parse("nope"), None);
    }

    #[test]
    fn the_heap_used_is_read_from_jcmd() {
        let text = "12345:\n garbage-first heap   total 2097152K, used 123456K \
                    [0x0000000080000000, 0x0000000100000000)\n  region size 1024K\n";
        assert_eq!(parse_heap_used_kib(text), Some(123_456));
        assert_eq!(parse_heap_used_kib("12345:\nnothing\n"), None);
    }

    #[test]
    fn counts_shorten() {
        assert_eq!(short_count(1_000_000), "1M");
        assert_eq!(short_count(100_000), "100k");
        assert_eq!(short_count(2_500), "2500");
    }

    #[test]
    fn results_keep_both_systems_on_one_row() {
        let mut r = Results::default();
        let t = Topology::Standalone;
        r.add(t, "x", &RSS, Target::Rookery, 100.0);
        r.add(t, "x", &RSS, Target::ZooKeeper, 400.0);
        r.fail(t, "x", &[DISK], Target::ZooKeeper, "gone");
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0].ratio(), Some(0.25));
        assert_eq!(r.rows[1].zookeeper.errors, vec!["gone".to_owned()]);
        assert_eq!(r.notes.len(), 1);
    }
}
