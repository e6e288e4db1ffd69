//! The load generator: ZooKeeper sessions of the `zookeeper-client` crate, each with
//! several requests outstanding at once (the crate sends a request when it is called,
//! so one session's futures run concurrently and are answered in order), driving
//! getData, setData, create+delete or a mix in closed loops; the watch fan-out; the
//! bulk load; and the probes that time a restart or a failover.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, EventType};

use crate::error::BenchError;
use crate::hist::Histogram;

/// Valid for both servers' defaults: ZooKeeper allows 2 to 20 ticks (tickTime 2000
/// standalone, 500 in the harness's ensembles).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// The node every watcher watches and the writer sets.
pub const WATCH_PATH: &str = "/bench/watch";
/// The node the failover probes write.
pub const FAILOVER_PATH: &str = "/bench/failover";
/// Children per directory in the bulk load, so no parent holds a million.
const PER_DIR: u64 = 1_000;

fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// A session to one server; `fail_eagerly` so that a probe's attempt fails at once
/// rather than cycling through reconnects with backoff.
pub async fn connect(port: u16, connection_timeout: Duration) -> Result<Client, BenchError> {
    Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_connection_timeout(connection_timeout)
        .with_fail_eagerly()
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .map_err(|e| BenchError::client(format!("connecting to 127.0.0.1:{port}"), e))
}

/// Sessions of a pool, and the connection attempts that failed before each connected.
#[derive(Debug)]
pub struct Pool {
    pub clients: Vec<Client>,
    /// Failed attempts that were retried: worth a note, since neither server should
    /// refuse a session.
    pub retried: Vec<String>,
}

/// `n` sessions, session `i` on `ports[i % ports.len()]`, so an ensemble's clients
/// spread evenly over its servers. A session that fails to connect is tried twice more.
pub async fn connect_pool(ports: &[u16], n: usize) -> Result<Pool, BenchError> {
    if ports.is_empty() {
        return Err(BenchError::Failed("no client ports".into()));
    }
    let mut set = JoinSet::new();
    for i in 0..n {
        let port = ports[i % ports.len()];
        set.spawn(async move {
            let mut failed = Vec::new();
            loop {
                match connect(port, Duration::from_secs(10)).await {
                    Ok(c) => return (i, Ok(c), failed),
                    Err(e) if failed.len() < 2 => {
                        failed.push(format!("session {i}: {e}"));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return (i, Err(e), failed),
                }
            }
        });
    }
    let mut clients: Vec<Option<Client>> = (0..n).map(|_| None).collect();
    let mut retried = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, c, failed) =
            joined.map_err(|e| BenchError::Failed(format!("connect task: {e}")))?;
        retried.extend(failed);
        clients[i] = Some(c?);
    }
    Ok(Pool {
        clients: clients.into_iter().flatten().collect(),
        retried,
    })
}

/// Creates `path` unless it exists.
async fn ensure(c: &Client, path: &str, data: &[u8]) -> Result<(), BenchError> {
    match c.create(path, data, &persistent()).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
        Err(e) => Err(BenchError::client(format!("creating {path}"), e)),
    }
}

/// The get/set key `i`.
pub fn kv_path(i: usize) -> String {
    format!("/bench/kv/k{i}")
}

/// The bulk-loaded znode `i`: a thousand per directory.
pub fn znode_path(i: u64) -> String {
    format!("/bench/m/d{}/n{}", i / PER_DIR, i % PER_DIR)
}

/// The tree the cells need: `/bench`, `keys` get/set keys holding `value`, and the
/// parents of the create+delete, watch and failover nodes.
pub async fn setup(c: &Client, keys: usize, value: &[u8]) -> Result<(), BenchError> {
    for p in [
        "/bench",
        "/bench/kv",
        "/bench/cd",
        WATCH_PATH,
        FAILOVER_PATH,
    ] {
        ensure(c, p, b"").await?;
    }
    let mut set = JoinSet::new();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(64) {
        let c = c.clone();
        let chunk = chunk.to_vec();
        let value = value.to_vec();
        set.spawn(async move {
            for i in chunk {
                ensure(&c, &kv_path(i), &value).await?;
            }
            Ok::<(), BenchError>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| BenchError::Failed(format!("setup task: {e}")))??;
    }
    Ok(())
}

/// What a closed-loop cell does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Get,
    Set,
    /// 90% getData, 10% setData.
    Mixed,
    /// create a fresh node, then delete it; both count as operations.
    CreateDelete,
}

/// How hard and how long to drive a closed-loop cell.
#[derive(Debug, Clone)]
pub struct LoadParams {
    /// Requests each session keeps outstanding.
    pub outstanding: usize,
    /// Run but not recorded.
    pub warmup: Duration,
    /// Recorded.
    pub duration: Duration,
    /// Get/set keys (`kv_path(0..keys)`).
    pub keys: usize,
    /// The data written by setData and create.
    pub value: Arc<Vec<u8>>,
}

/// What a cell measured: operations (or notifications) completed in the recorded
/// window, their latencies in microseconds, and the errors seen.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub hist: Histogram,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ops as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn absorb(&mut self, other: Outcome) {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.hist.merge(&other.hist);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// splitmix64: key choice without a dependency; seeded per worker.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n.max(1) as u64) as usize
    }
}

/// The recorded window of a closed-loop cell.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    end: Instant,
}

/// Runs one request, timing it from just before it is issued; counts it if it
/// completed inside the window. Returns whether it succeeded.
async fn timed<T, F, Fut>(out: &mut Outcome, w: Window, issue: F) -> bool
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, zookeeper_client::Error>>,
{
    let t0 = Instant::now();
    let r = issue().await;
    let t1 = Instant::now();
    let counted = t1 >= w.from && t1 <= w.end;
    match r {
        Ok(_) => {
            if counted {
                out.hist.record(micros(t1 - t0));
                out.ops += 1;
            }
            true
        }
        Err(e) => {
            if counted {
                out.errors += 1;
            }
            out.first_error.get_or_insert_with(|| e.to_string());
            // A broken session fails at once; do not spin on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
            false
        }
    }
}

/// Numbers each closed-loop run, so create+delete paths never repeat across runs: a
/// create whose reply was lost with its connection may have left its node behind.
static RUNS: AtomicU64 = AtomicU64::new(0);

async fn worker(c: Client, mix: Mix, id: usize, run: u64, p: LoadParams, w: Window) -> Outcome {
    let mut out = Outcome::default();
    let mut rng = Rng(id as u64 + 1);
    let mut seq = 0u64;
    let keys: Vec<String> = (0..p.keys).map(kv_path).collect();
    while Instant::now() < w.end {
        let write = match mix {
            Mix::Get => false,
            Mix::Set => true,
            Mix::Mixed => rng.below(10) == 0,
            Mix::CreateDelete => {
                let path = format!("/bench/cd/r{run}-w{id}-{seq}");
                seq += 1;
                if timed(&mut out, w, || c.create(&path, &p.value, &persistent())).await {
                    timed(&mut out, w, || c.delete(&path, None)).await;
                }
                continue;
            }
        };
        let key = &keys[rng.below(keys.len())];
        if write {
            timed(&mut out, w, || c.set_data(key, &p.value, None)).await;
        } else {
            timed(&mut out, w, || c.get_data(key)).await;
        }
    }
    out
}

/// Drives `clients` for warm-up plus duration, `outstanding` closed loops per session.
pub async fn run_load(clients: &[Client], mix: Mix, p: &LoadParams) -> Outcome {
    let from = Instant::now() + p.warmup;
    let w = Window {
        from,
        end: from + p.duration,
    };
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut set = JoinSet::new();
    for (s, c) in clients.iter().enumerate() {
        for k in 0..p.outstanding {
            let id = s * p.outstanding + k;
            set.spawn(worker(c.clone(), mix, id, run, p.clone(), w));
        }
    }
    let mut total = Outcome {
        seconds: p.duration.as_secs_f64(),
        ..Outcome::default()
    };
    while let Some(r) = set.join_next().await {
        match r {
            Ok(o) => total.absorb(o),
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert_with(|| format!("worker: {e}"));
            }
        }
    }
    total
}

/// Watch fan-out: every watcher session holds a getData watch on [`WATCH_PATH`]; once
/// all are armed, the writer sets it, and each notification's latency is from just
/// before that setData was issued to the watcher's receipt. Watchers re-arm after
/// each notification; the next write waits for all of them.
pub async fn run_watch(
    watchers: &[Client],
    writer: &Client,
    p: &LoadParams,
) -> Result<Outcome, BenchError> {
    let n = watchers.len();
    let (armed_tx, mut armed_rx) = mpsc::channel::<()>(2 * n.max(1));
    let (note_tx, mut note_rx) = mpsc::channel::<Result<Instant, String>>(2 * n.max(1));
    let mut tasks = JoinSet::new();
    for c in watchers {
        let c = c.clone();
        let armed_tx = armed_tx.clone();
        let note_tx = note_tx.clone();
        tasks.spawn(async move {
            loop {
                match c.get_and_watch_data(WATCH_PATH).await {
                    Ok((_, _, watcher)) => {
                        if armed_tx.send(()).await.is_err() {
                            return;
                        }
                        let ev = watcher.changed().await;
                        let at = Instant::now();
                        let note = if ev.event_type == EventType::NodeDataChanged {
                            Ok(at)
                        } else {
                            Err(format!("unexpected watch event {ev:?}"))
                        };
                        if note_tx.send(note).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = note_tx.send(Err(format!("arming the watch: {e}"))).await;
                        return;
                    }
                }
            }
        });
    }
    let wait = Duration::from_secs(10);
    let from = Instant::now() + p.warmup;
    let end = from + p.duration;
    let mut out = Outcome::default();
    let result = async {
        while Instant::now() < end {
            for _ in 0..n {
                match tokio::time::timeout(wait, armed_rx.recv()).await {
                    Ok(Some(())) => {}
                    _ => return Err(BenchError::Timeout("watchers did not re-arm".into())),
                }
            }
            let sent = Instant::now();
            writer
                .set_data(WATCH_PATH, &p.value, None)
                .await
                .map_err(|e| BenchError::client("setting the watched node", e))?;
            for _ in 0..n {
                match tokio::time::timeout(wait, note_rx.recv()).await {
                    Ok(Some(Ok(at))) => {
                        if sent >= from {
                            out.hist.record(micros(at.saturating_duration_since(sent)));
                            out.ops += 1;
                        }
                    }
                    Ok(Some(Err(e))) => return Err(BenchError::Failed(e)),
                    _ => {
                        return Err(BenchError::Timeout(
                            "a watcher got no notification within 10 s".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    tasks.abort_all();
    result?;
    out.seconds = from.elapsed().as_secs_f64();
    Ok(out)
}

/// Creates `total` znodes of `size` bytes (`znode_path(0..total)`) with multi requests
/// of `batch` creates, `outstanding` per session, and returns how long it took. `done`
/// counts the multis answered, for a watchdog.
pub async fn load_znodes(
    clients: &[Client],
    total: u64,
    size: usize,
    batch: u64,
    outstanding: usize,
    done: Arc<AtomicU64>,
) -> Result<Duration, BenchError> {
    let first = clients
        .first()
        .ok_or_else(|| BenchError::Failed("no sessions".into()))?;
    let started = Instant::now();
    ensure(first, "/bench", b"").await?;
    ensure(first, "/bench/m", b"").await?;
    let dirs = total.div_ceil(PER_DIR);
    let mut set = JoinSet::new();
    for d in 0..dirs {
        let c = clients[d as usize % clients.len()].clone();
        set.spawn(async move { ensure(&c, &format!("/bench/m/d{d}"), b"").await });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| BenchError::Failed(format!("load task: {e}")))??;
    }
    let batch = batch.max(1);
    let batches = total.div_ceil(batch);
    let next = Arc::new(AtomicU64::new(0));
    let data = Arc::new(vec![b'z'; size]);
    let mut set = JoinSet::new();
    for c in clients {
        for _ in 0..outstanding {
            let (c, next, data) = (c.clone(), Arc::clone(&next), Arc::clone(&data));
            let done = Arc::clone(&done);
            set.spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return Ok::<(), BenchError>(());
                    }
                    let mut multi = c.new_multi_writer();
                    for i in b * batch..((b + 1) * batch).min(total) {
                        multi
                            .add_create(&znode_path(i), &data, &persistent())
                            .map_err(|e| BenchError::client("building a multi", e))?;
                    }
                    multi
                        .commit()
                        .await
                        .map_err(|e| BenchError::client(format!("multi create #{b}"), e.into()))?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| BenchError::Failed(format!("load task: {e}")))??;
    }
    Ok(started.elapsed())
}

/// Starts `attempt(i)` every `every` (at most `max_in_flight` at once) until one
/// succeeds, and returns the time from `since` to that attempt's success (the instant
/// it returns). Gives up after `limit`.
pub async fn first_success<F, Fut>(
    since: Instant,
    every: Duration,
    max_in_flight: usize,
    limit: Duration,
    attempt: F,
) -> Result<Duration, BenchError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Instant, String>> + Send + 'static,
{
    let deadline = tokio::time::Instant::from_std(since + limit);
    let mut set = JoinSet::new();
    let mut tick = tokio::time::interval(every);
    let mut i = 0;
    let mut last_error = String::from("no attempt finished");
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                set.abort_all();
                return Err(BenchError::Timeout(format!(
                    "no success within {limit:?}; last error: {last_error}"
                )));
            }
            _ = tick.tick(), if set.len() < max_in_flight => {
                set.spawn(attempt(i));
                i += 1;
            }
            Some(r) = set.join_next(), if !set.is_empty() => match r {
                Ok(Ok(at)) => {
                    set.abort_all();
                    return Ok(at.saturating_duration_since(since));
                }
                Ok(Err(e)) => last_error = e,
                Err(e) => last_error = format!("attempt task: {e}"),
            },
        }
    }
}

/// One failover probe: a new session on `port`, then a setData; the instant it was
/// acknowledged.
pub async fn write_probe(port: u16) -> Result<Instant, String> {
    let attempt = async {
        let c = connect(port, Duration::from_secs(1))
            .await
            .map_err(|e| e.to_string())?;
        c.set_data(FAILOVER_PATH, b"x", None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Instant::now())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("probe timed out".into()))
}

/// One restart probe: a new session on `port`, then a getData of `path`.
pub async fn read_probe(port: u16, path: String) -> Result<Instant, String> {
    let attempt = async {
        let c = connect(port, Duration::from_secs(1))
            .await
            .map_err(|e| e.to_string())?;
        c.get_data(&path)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(Instant::now())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("probe timed out".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn znodes_are_spread_a_thousand_per_directory() {
        assert_eq!(znode_path(0), "/bench/m/d0/n0");
        assert_eq!(znode_path(999), "/bench/m/d0/n999");
        assert_eq!(znode_path(1_000), "/bench/m/d1/n0");
        assert_eq!(znode_path(999_999), "/bench/m/d999/n999");
    }

    #[test]
    fn key_choice_covers_every_key() {
        let mut rng = Rng(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800 && n < 1_200), "{seen:?}");
    }
}
