//! One worker per session: each loops over its workload's operations until the
//! deadline, recording every invocation and completion. A worker whose operation is
//! indeterminate takes a new process number (Jepsen's crashed process), and one whose
//! session is lost connects again.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rookery_jepsen::{F, Outcome, Record, Rng, Workload, register::INITIAL};
use zookeeper_client::{Acls, AddWatchMode, Client, CreateMode, Error as ZkError, EventType, Stat};

use super::client::{
    OP_TIMEOUT, connect_once, connect_retrying, error_text, op, outcome_of, session_hex,
    session_lost,
};

/// Set elements per set key: reads list one set, so sets stay small.
pub(crate) const SET_SIZE: i64 = 500;
/// A lock waiter gives up (and deletes its node) after this.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// What every worker shares.
pub(crate) struct Ctx {
    pub(crate) connect: String,
    pub(crate) start: Instant,
    pub(crate) deadline: Instant,
    pub(crate) seed: u64,
    /// Process numbers step by this after a crash, so they stay unique.
    pub(crate) workers: u64,
    pub(crate) register_keys: usize,
    pub(crate) sync_reads: bool,
    /// Unique values for writes, adds and enqueues.
    pub(crate) next_value: AtomicI64,
}

impl Ctx {
    pub(crate) fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// A worker's state: its process number, session and history.
struct Proc {
    ctx: Arc<Ctx>,
    id: u64,
    rng: Rng,
    process: u64,
    client: Option<Client>,
    history: Vec<Record>,
}

impl Proc {
    /// The session, connecting one if there is none; None (after a short pause) while
    /// no server answers.
    async fn client(&mut self, detached: bool) -> Option<Client> {
        if let Some(c) = &self.client {
            return Some(c.clone());
        }
        match connect_once(&self.ctx.connect, detached).await {
            Ok(c) => {
                self.client = Some(c.clone());
                Some(c)
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                None
            }
        }
    }

    fn begin(&self, c: &Client, key: &str, f: F) -> Record {
        Record::new(self.process, &session_hex(c), key, f, self.ctx.now_us())
    }

    /// Completes `r` with `err`'s outcome (ok when None) and records it. An
    /// indeterminate outcome crashes the process; a lost session is dropped.
    fn finish(&mut self, mut r: Record, err: Option<&ZkError>) -> Outcome {
        r.complete_us = self.ctx.now_us();
        if let Some(e) = err {
            r.outcome = outcome_of(e);
            r.error = Some(error_text(e));
            if session_lost(e) {
                self.client = None;
            }
        }
        let outcome = r.outcome;
        self.history.push(r);
        if outcome == Outcome::Info {
            self.process += self.ctx.workers;
        }
        outcome
    }

    async fn pause(&mut self) {
        let ms = 5 + self.rng.below(20);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Runs one worker of `workload` until the deadline and returns its history.
pub(crate) async fn run(ctx: Arc<Ctx>, workload: Workload, id: u64) -> Vec<Record> {
    let mut p = Proc {
        rng: Rng::new(ctx.seed ^ (id + 1).wrapping_mul(0xA24B_AED4_963E_E407)),
        ctx,
        id,
        process: id,
        client: None,
        history: Vec::new(),
    };
    let mut eph: Option<(i64, u64)> = None;
    let mut opened = 0;
    while Instant::now() < p.ctx.deadline {
        match workload {
            Workload::Register => register_op(&mut p).await,
            Workload::Set => set_op(&mut p).await,
            Workload::Ids => ids_op(&mut p).await,
            Workload::Queue => queue_op(&mut p).await,
            Workload::Lock => lock_op(&mut p).await,
            Workload::Sessions => sessions_op(&mut p, &mut eph, &mut opened).await,
        }
        p.pause().await;
    }
    p.history
}

/// The register workload's watcher: one session at a time keeps a persistent
/// recursive watch on /jepsen, reads random registers (sync, getData), and after each
/// read records the events already delivered, stamped with the read's completion
/// (`register::check_watch_events`, `check_watch_before_data`). Any session event
/// (a disconnection) ends the session, so each session's events have no gap.
pub(crate) async fn watch_registers(ctx: Arc<Ctx>, process: u64) -> Vec<Record> {
    let mut history = Vec::new();
    let mut rng = Rng::new(ctx.seed ^ 0x7761_7463_6865_7273);
    'sessions: while Instant::now() < ctx.deadline {
        let Ok(c) = connect_once(&ctx.connect, false).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let session = session_hex(&c);
        let Ok(mut watcher) = op(c.watch("/jepsen", AddWatchMode::PersistentRecursive)).await
        else {
            continue;
        };
        while Instant::now() < ctx.deadline {
            let k = rng.below(ctx.register_keys as u64);
            let key = format!("r{k}");
            let mut r = Record::new(process, &session, &key, F::Read, ctx.now_us());
            // The events drained next carry the read's completion time: they were
            // delivered by then.
            let stamp = match read(&c, &format!("/jepsen/{key}"), true).await {
                Ok((value, stat)) => {
                    r.value = Some(value);
                    r.version = Some(stat.version);
                    r.zxid = Some(stat.mzxid);
                    r.complete_us = ctx.now_us();
                    let stamp = r.complete_us;
                    history.push(r);
                    stamp
                }
                Err(e) => {
                    r.complete_us = ctx.now_us();
                    r.outcome = outcome_of(&e);
                    r.error = Some(error_text(&e));
                    history.push(r);
                    continue 'sessions;
                }
            };
            // What is already delivered: a zero timeout still polls the watcher once.
            while let Ok(ev) = tokio::time::timeout(Duration::ZERO, watcher.changed()).await {
                if ev.event_type == EventType::Session {
                    // The connection broke (and maybe came back) around that read:
                    // events of changes made meanwhile need not come (ZOOKEEPER-4698),
                    // so the read proves nothing. A marker without a zxid says so, and
                    // the session ends.
                    let mut m = Record::new(process, &session, &key, F::Event, stamp);
                    m.error = Some(format!("session {:?}", ev.session_state));
                    history.push(m);
                    continue 'sessions;
                }
                let Some(key) = ev
                    .path
                    .strip_prefix("/jepsen/")
                    .filter(|k| Workload::of_key(k) == Some(Workload::Register))
                else {
                    continue;
                };
                let mut e = Record::new(process, &session, key, F::Event, stamp);
                e.zxid = Some(ev.zxid);
                history.push(e);
            }
            let ms = 5 + rng.below(20);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    history
}

/// Creates the workloads' parent znodes and the registers, retrying while the new
/// ensemble warms up.
pub(crate) async fn setup(connect: &str, register_keys: usize) -> anyhow::Result<()> {
    let client = connect_retrying(connect, Duration::from_secs(30)).await?;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let initial = INITIAL.value.to_string();
    let mut paths: Vec<String> = ["/jepsen", "/jepsen/ids", "/jepsen/queue", "/jepsen/lock"]
        .iter()
        .chain(&["/jepsen/eph", "/jepsen/s0"])
        .map(|s| s.to_string())
        .collect();
    paths.extend((0..register_keys).map(|k| format!("/jepsen/r{k}")));
    for path in paths {
        match client.create(&path, initial.as_bytes(), &opts).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => anyhow::bail!("creating {path}: {e}"),
        }
    }
    Ok(())
}

fn parse_value(data: &[u8]) -> i64 {
    // Bytes the workload never wrote become a value it never wrote, which the
    // checkers then report.
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(i64::MIN)
}

/// The number after the last '-' of a child's name (`i-0000000012`, `e42`→42).
fn parse_name(name: &str) -> i64 {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(i64::MIN)
}

/// sync (when asked), then getData: a read no older than the sync.
async fn read(c: &Client, path: &str, sync: bool) -> Result<(i64, Stat), ZkError> {
    op(async {
        if sync {
            c.sync(path).await?;
        }
        let (data, stat) = c.get_data(path).await?;
        Ok((parse_value(&data), stat))
    })
    .await
}

/// sync, then the children's numbers.
async fn list(c: &Client, path: &str) -> Result<Vec<i64>, ZkError> {
    op(async {
        c.sync(path).await?;
        let children = c.list_children(path).await?;
        Ok(children.iter().map(|n| parse_name(n)).collect())
    })
    .await
}

async fn register_op(p: &mut Proc) {
    let Some(c) = p.client(false).await else {
        return;
    };
    let k = p.rng.below(p.ctx.register_keys as u64);
    let (key, path) = (format!("r{k}"), format!("/jepsen/r{k}"));
    let f = p.rng.pick(&[F::Read, F::Write, F::Cas]);
    // A read; for a cas, the read that picks the expected version.
    let mut expected = None;
    if f != F::Write {
        let mut r = p.begin(&c, &key, F::Read);
        match read(&c, &path, p.ctx.sync_reads).await {
            Ok((value, stat)) => {
                r.value = Some(value);
                r.version = Some(stat.version);
                r.zxid = Some(stat.mzxid);
                expected = Some(stat.version);
                p.finish(r, None);
            }
            Err(e) => {
                p.finish(r, Some(&e));
                return;
            }
        }
        if f == F::Read {
            return;
        }
    }
    let value = p.ctx.next_value.fetch_add(1, Ordering::Relaxed);
    let mut r = p.begin(&c, &key, f);
    r.value = Some(value);
    r.expected_version = expected;
    let data = value.to_string();
    match op(c.set_data(&path, data.as_bytes(), expected)).await {
        Ok(stat) => {
            r.version = Some(stat.version);
            r.zxid = Some(stat.mzxid);
            p.finish(r, None);
        }
        Err(e) => {
            p.finish(r, Some(&e));
        }
    }
}

async fn set_op(p: &mut Proc) {
    let Some(c) = p.client(false).await else {
        return;
    };
    if p.rng.below(10) < 8 {
        let v = p.ctx.next_value.fetch_add(1, Ordering::Relaxed);
        let set = format!("/jepsen/s{}", v / SET_SIZE);
        let key = format!("s{}", v / SET_SIZE);
        let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let element = format!("{set}/{v}");
        let mut r = p.begin(&c, &key, F::Add);
        r.value = Some(v);
        let result = op(c.create(&element, b"", &opts)).await;
        if !matches!(result, Err(ZkError::NoNode)) {
            p.finish(r, result.err().as_ref());
            return;
        }
        // The set does not exist yet: that add provably did nothing. Make the set
        // (anyone may, so NodeExists is fine) and add again.
        p.finish(r, Some(&ZkError::NoNode));
        let _ = op(c.create(&set, b"", &opts)).await;
        let mut r = p.begin(&c, &key, F::Add);
        r.value = Some(v);
        let result = op(c.create(&element, b"", &opts)).await;
        p.finish(r, result.err().as_ref());
    } else {
        let newest = (p.ctx.next_value.load(Ordering::Relaxed) - 1).max(0) / SET_SIZE;
        let k = newest - p.rng.below(2).min(newest as u64) as i64;
        let mut r = p.begin(&c, &format!("s{k}"), F::ReadAll);
        match list(&c, &format!("/jepsen/s{k}")).await {
            Ok(values) => {
                r.values = Some(values);
                p.finish(r, None);
            }
            Err(e) => {
                p.finish(r, Some(&e));
            }
        }
    }
}

async fn ids_op(p: &mut Proc) {
    let Some(c) = p.client(false).await else {
        return;
    };
    let r = p.begin(&c, "ids", F::Generate);
    let opts = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let result = op(c.create("/jepsen/ids/i-", b"", &opts)).await;
    finish_create(p, r, result);
}

/// Records a sequential create's number and czxid.
fn finish_create(
    p: &mut Proc,
    mut r: Record,
    result: Result<(Stat, zookeeper_client::CreateSequence), ZkError>,
) {
    match result {
        Ok((stat, seq)) => {
            r.seq = Some(seq.into_i64());
            r.zxid = Some(stat.czxid);
            p.finish(r, None);
        }
        Err(e) => {
            p.finish(r, Some(&e));
        }
    }
}

async fn queue_op(p: &mut Proc) {
    let Some(c) = p.client(false).await else {
        return;
    };
    if p.rng.below(2) == 0 {
        let v = p.ctx.next_value.fetch_add(1, Ordering::Relaxed);
        let mut r = p.begin(&c, "queue", F::Enqueue);
        r.value = Some(v);
        let opts = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
        let data = v.to_string();
        let result = op(c.create("/jepsen/queue/q-", data.as_bytes(), &opts)).await;
        finish_create(p, r, result);
        return;
    }
    let mut r = p.begin(&c, "queue", F::Dequeue);
    let mut children = match op(async {
        c.sync("/jepsen/queue").await?;
        c.list_children("/jepsen/queue").await
    })
    .await
    {
        Ok(children) => children,
        Err(e) => {
            p.finish(r, Some(&e));
            return;
        }
    };
    children.sort();
    // The lowest few: a competitor may take the first.
    for name in children.iter().take(3) {
        let path = format!("/jepsen/queue/{name}");
        let value = match op(c.get_data(&path)).await {
            Ok((data, _)) => parse_value(&data),
            Err(ZkError::NoNode) => continue,
            Err(e) => {
                p.finish(r, Some(&e));
                return;
            }
        };
        r.value = Some(value);
        r.seq = Some(parse_name(name));
        match op(c.delete(&path, None)).await {
            Ok(()) => {
                p.finish(r, None);
                return;
            }
            Err(ZkError::NoNode) => continue,
            Err(e) => {
                p.finish(r, Some(&e));
                return;
            }
        }
    }
    r.value = None;
    r.seq = None;
    r.outcome = Outcome::Fail;
    r.error = Some("empty".into());
    p.finish(r, None);
}

async fn lock_op(p: &mut Proc) {
    let Some(c) = p.client(false).await else {
        return;
    };
    let mut r = p.begin(&c, "lock", F::Acquire);
    let opts = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let (own, seq) = match op(c.create("/jepsen/lock/l-", b"", &opts)).await {
        Ok((_, seq)) => (format!("l-{seq}"), seq.into_i64()),
        Err(e) => {
            p.finish(r, Some(&e));
            return;
        }
    };
    r.value = Some(seq);
    let path = format!("/jepsen/lock/{own}");
    let give_up = Instant::now() + LOCK_WAIT;
    loop {
        match op(c.list_children("/jepsen/lock")).await {
            Ok(children) if children.iter().min() == Some(&own) => break,
            Ok(_) if Instant::now() < give_up => {
                let ms = 10 + p.rng.below(20);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(_) => {
                // Gave up waiting: withdraw; if even that fails, the session goes.
                let withdrawn = op(c.delete(&path, None)).await;
                r.outcome = Outcome::Fail;
                r.error = Some("gave up waiting".into());
                p.finish(r, None);
                if withdrawn.is_err() {
                    p.client = None;
                }
                return;
            }
            Err(e) => {
                // Whether we hold it is unknown; the session is dropped, and with it
                // the node.
                p.finish(r, Some(&e));
                p.client = None;
                return;
            }
        }
    }
    p.finish(r, None);
    let hold = 5 + p.rng.below(20);
    tokio::time::sleep(Duration::from_millis(hold)).await;
    let mut release = p.begin(&c, "lock", F::Release);
    release.value = Some(seq);
    let result = op(c.delete(&path, None)).await;
    if p.finish(release, result.as_ref().err()) != Outcome::Ok {
        p.client = None;
    }
}

/// Sessions: open a session (half of them detached, so they expire rather than
/// close), create its ephemeral, then a few pings and listings, then end it.
async fn sessions_op(p: &mut Proc, eph: &mut Option<(i64, u64)>, opened: &mut i64) {
    let Some((id, left)) = *eph else {
        p.client = None;
        let detached = p.rng.below(2) == 0;
        let Some(c) = p.client(detached).await else {
            return;
        };
        *opened += 1;
        let id = p.id as i64 * 1_000_000 + *opened;
        let mut r = p.begin(&c, "eph", F::Open);
        r.value = Some(id);
        let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        let result = op(c.create(&format!("/jepsen/eph/e{id}"), b"", &opts)).await;
        if p.finish(r, result.as_ref().err()) == Outcome::Ok {
            *eph = Some((id, 5 + p.rng.below(30)));
        } else {
            p.client = None;
        }
        return;
    };
    let Some(c) = p.client.clone() else {
        *eph = None;
        return;
    };
    if left == 0 {
        *eph = None;
        p.client = None;
        return;
    }
    *eph = Some((id, left - 1));
    let result = if p.rng.below(2) == 0 {
        let mut r = p.begin(&c, "eph", F::Ping);
        let path = format!("/jepsen/eph/e{id}");
        let result = op(async {
            c.sync(&path).await?;
            c.check_stat(&path).await
        })
        .await;
        if let Ok(stat) = &result {
            r.value = Some(i64::from(stat.is_some()));
        }
        p.finish(r, result.as_ref().err())
    } else {
        let mut r = p.begin(&c, "eph", F::ReadAll);
        let result = list(&c, "/jepsen/eph").await;
        if let Ok(values) = &result {
            r.values = Some(values.clone());
        }
        p.finish(r, result.as_ref().err())
    };
    if result != Outcome::Ok {
        // The session's fate is unknown: start over with a new one.
        *eph = None;
        p.client = None;
    }
}

/// After the heal and the quiet period: every workload's state from every server
/// alone, each read after a sync, by process `first_process + i` for server `i`.
pub(crate) async fn final_reads(
    ctx: &Ctx,
    servers: &[std::net::SocketAddr],
    workloads: &[Workload],
    first_process: u64,
    set_keys: &[String],
) -> Vec<Record> {
    let mut out = Vec::new();
    for (i, addr) in servers.iter().enumerate() {
        let process = first_process + i as u64;
        let server = addr.to_string();
        let client = connect_retrying(&server, Duration::from_secs(30))
            .await
            .ok();
        let session = client.as_ref().map(session_hex).unwrap_or_default();
        let record = |key: &str, f: F| Record::new(process, &session, key, f, ctx.now_us());
        for w in workloads {
            let mut reads: Vec<(String, String)> = Vec::new();
            match w {
                Workload::Register => {
                    for k in 0..ctx.register_keys {
                        let mut r = record(&format!("r{k}"), F::Read);
                        let result = match &client {
                            Some(c) => read(c, &format!("/jepsen/r{k}"), true).await,
                            None => Err(ZkError::ConnectionLoss),
                        };
                        match result {
                            Ok((value, stat)) => {
                                r.value = Some(value);
                                r.version = Some(stat.version);
                                r.zxid = Some(stat.mzxid);
                            }
                            Err(e) => fail_final(&mut r, &e),
                        }
                        r.complete_us = ctx.now_us();
                        out.push(r);
                    }
                }
                Workload::Set => {
                    for key in set_keys {
                        reads.push((key.clone(), format!("/jepsen/{key}")));
                    }
                }
                Workload::Ids => reads.push(("ids".into(), "/jepsen/ids".into())),
                Workload::Sessions => reads.push(("eph".into(), "/jepsen/eph".into())),
                Workload::Queue => {
                    let mut r = record("queue", F::ReadAll);
                    let result = match &client {
                        Some(c) => queue_contents(c).await,
                        None => Err(ZkError::ConnectionLoss),
                    };
                    match result {
                        Ok(values) => r.values = Some(values),
                        Err(e) => fail_final(&mut r, &e),
                    }
                    r.complete_us = ctx.now_us();
                    out.push(r);
                }
                Workload::Lock => {}
            }
            for (key, path) in reads {
                let mut r = record(&key, F::ReadAll);
                let result = match &client {
                    Some(c) => list(c, &path).await,
                    None => Err(ZkError::ConnectionLoss),
                };
                match result {
                    Ok(values) => r.values = Some(values),
                    // Only a set is made lazily: one nobody managed to make is empty.
                    Err(ZkError::NoNode) if *w == Workload::Set => r.values = Some(Vec::new()),
                    Err(e) => fail_final(&mut r, &e),
                }
                r.complete_us = ctx.now_us();
                out.push(r);
            }
        }
    }
    out
}

fn fail_final(r: &mut Record, e: &ZkError) {
    r.outcome = Outcome::Info;
    r.error = Some(error_text(e));
}

/// The values still queued, read child by child after a sync.
async fn queue_contents(c: &Client) -> Result<Vec<i64>, ZkError> {
    c.sync("/jepsen/queue").await?;
    let children = c.list_children("/jepsen/queue").await?;
    let mut values = Vec::with_capacity(children.len());
    for name in children {
        let (data, _) =
            super::client::timed(OP_TIMEOUT, c.get_data(&format!("/jepsen/queue/{name}"))).await?;
        values.push(parse_value(&data));
    }
    Ok(values)
}
