//! Kill -9 under load loses no acknowledged write and half-applies no multi.
//!
//! Several sessions write concurrently (create, versioned setData, delete, and a multi
//! that creates two nodes) while the server is killed with SIGKILL at a random moment,
//! again and again. Each writer owns its nodes and pipelines up to four requests, so
//! it knows exactly what the server acknowledged and which requests were unanswered
//! when it died. After every restart the whole tree under /d must equal, per writer,
//! the acknowledged state plus some prefix of the unanswered requests (FIFO order),
//! each applied whole: every acknowledged write present with its data and version,
//! nothing unacknowledged half there, no later request without an earlier one.
//!
//! The kill points come from a seeded RNG; the seed is printed, and
//! `ROOKERY_DURABILITY_SEED=<n>` replays the same choices (the server's timing still
//! varies).

mod raw_client;

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use raw_client::{CallError, RawClient};
use rookery_tests::{Server, Target};
use rookery_wire::{ErrorCode, OpCode, Request, Response};

const WRITERS: usize = 4;
const KILL_ROUNDS: usize = 10;
/// Short, so the sessions of killed rounds expire soon after each restart.
const SESSION_TIMEOUT_MS: i32 = 4000;

/// splitmix64: small, seedable, good enough to pick kill points and payloads.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    if let Some(s) = std::env::var("ROOKERY_DURABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    std::collections::hash_map::RandomState::new().hash_one(SystemTime::now())
}

/// A request whose fate is unknown until the check after the restart.
#[derive(Debug, Clone)]
enum Pending {
    Create {
        path: String,
        data: Vec<u8>,
    },
    Set {
        path: String,
        data: Vec<u8>,
    },
    Delete {
        path: String,
    },
    /// Two creates in one multi: both or neither.
    Pair {
        a: (String, Vec<u8>),
        b: (String, Vec<u8>),
    },
}

/// What one writer knows: the state of its nodes as acknowledged, path -> (data,
/// version), and the requests sent but not yet answered, oldest first.
#[derive(Debug, Default)]
struct Writer {
    id: usize,
    nodes: BTreeMap<String, (Vec<u8>, i32)>,
    next_k: u64,
    pending: VecDeque<Pending>,
    acked: u64,
}

type Nodes = BTreeMap<String, (Vec<u8>, i32)>;

fn apply(nodes: &mut Nodes, op: &Pending) {
    match op {
        Pending::Create { path, data } => {
            nodes.insert(path.clone(), (data.clone(), 0));
        }
        Pending::Set { path, data } => {
            let v = nodes.get(path).map_or(0, |(_, v)| v + 1);
            nodes.insert(path.clone(), (data.clone(), v));
        }
        Pending::Delete { path } => {
            nodes.remove(path);
        }
        Pending::Pair { a, b } => {
            nodes.insert(a.0.clone(), (a.1.clone(), 0));
            nodes.insert(b.0.clone(), (b.1.clone(), 0));
        }
    }
}

fn payload(rng: &mut Rng, tag: &str) -> Vec<u8> {
    let mut d = tag.as_bytes().to_vec();
    let pad = rng.below(300);
    d.extend((0..pad).map(|_| b'a' + rng.below(26) as u8));
    d
}

impl Writer {
    /// A random next write against `projected` (the acknowledged state with every
    /// unanswered request applied), the request that makes it, and the version its
    /// reply must carry (setData).
    fn next_op(&mut self, rng: &mut Rng, projected: &Nodes) -> (Pending, Request, Option<i32>) {
        let w = self.id;
        let roll = if projected.is_empty() {
            0
        } else {
            rng.below(100)
        };
        if roll < 35 {
            let k = self.next_k;
            self.next_k += 1;
            let path = format!("/d/w{w}-n{k}");
            let data = payload(rng, &format!("{path}@0:"));
            let req = raw_client::create_req(&path, &data);
            (Pending::Create { path, data }, req, None)
        } else if roll < 70 {
            let i = rng.below(projected.len() as u64) as usize;
            let (path, (_, v)) = projected.iter().nth(i).expect("index in range");
            let data = payload(rng, &format!("{path}@{}:", v + 1));
            let req = raw_client::set_data_req(path, &data, *v);
            let path = path.clone();
            (Pending::Set { path, data }, req, Some(v + 1))
        } else if roll < 88 {
            let k = self.next_k;
            self.next_k += 1;
            let a = format!("/d/w{w}-m{k}a");
            let b = format!("/d/w{w}-m{k}b");
            let (da, db) = (payload(rng, &a), payload(rng, &b));
            let req = raw_client::multi_create_req(&[(&a, &da), (&b, &db)]);
            (
                Pending::Pair {
                    a: (a, da),
                    b: (b, db),
                },
                req,
                None,
            )
        } else {
            let i = rng.below(projected.len() as u64) as usize;
            let (path, (_, v)) = projected.iter().nth(i).expect("index in range");
            let req = raw_client::delete_req(path, *v);
            (Pending::Delete { path: path.clone() }, req, None)
        }
    }

    /// Writes, keeping up to `depth` requests unanswered, until the connection dies or
    /// `stop` is set. Returns an error only for a reply that contradicts the model (a
    /// server bug).
    fn run(
        &mut self,
        port: u16,
        rng: &mut Rng,
        acks: &AtomicU64,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        let Ok(mut zk) = RawClient::connect(port, SESSION_TIMEOUT_MS) else {
            return Ok(());
        };
        let w = self.id;
        let depth = 1 + rng.below(4) as usize;
        let mut projected = self.nodes.clone();
        let mut sent: VecDeque<(i32, OpCode, Option<i32>)> = VecDeque::new();
        loop {
            while sent.len() < depth && !stop.load(Ordering::Relaxed) {
                let (op, req, want_version) = self.next_op(rng, &projected);
                apply(&mut projected, &op);
                self.pending.push_back(op);
                match zk.send(req) {
                    Ok((xid, code)) => sent.push_back((xid, code, want_version)),
                    Err(_) => return Ok(()),
                }
            }
            let Some((xid, code, want_version)) = sent.pop_front() else {
                return Ok(());
            };
            let resp = match zk.reply(xid, code) {
                Ok(r) => r,
                Err(CallError::Closed) => return Ok(()),
                Err(e) => return Err(format!("writer {w}: xid {xid}: {e:?}")),
            };
            let op = self
                .pending
                .pop_front()
                .expect("a pending op per sent request");
            if resp.header.err != ErrorCode::Ok.as_i32() {
                return Err(format!(
                    "writer {w}: {op:?} answered err {} (the model says it must succeed)",
                    resp.header.err
                ));
            }
            // The reply must also say what the model expects.
            match (&op, &resp.body) {
                (Pending::Create { path, .. }, Response::Create2(r)) if &r.path == path => {}
                (Pending::Set { .. }, Response::SetData(r))
                    if Some(r.stat.version) == want_version => {}
                (Pending::Delete { .. }, Response::Empty) => {}
                (Pending::Pair { .. }, Response::Multi(m)) if m.results.len() == 2 => {}
                (_, body) => return Err(format!("writer {w}: {op:?} answered {body:?}")),
            }
            apply(&mut self.nodes, &op);
            self.acked += 1;
            acks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a check after restart found.
#[derive(Debug, Default)]
struct Checked {
    nodes: usize,
    in_flight_applied: usize,
    in_flight_lost: usize,
}

/// Compares the server's /d with every writer's model and resolves each in-flight
/// request to applied (whole) or not applied.
fn verify(port: u16, writers: &mut [Writer], round: usize) -> Checked {
    let mut zk = RawClient::connect(port, 30_000).expect("connect after restart");
    let mut actual: Vec<BTreeMap<String, (Vec<u8>, i32)>> =
        (0..writers.len()).map(|_| BTreeMap::new()).collect();
    for child in zk.children("/d") {
        let w: usize = child
            .strip_prefix('w')
            .and_then(|s| s.split('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: unexpected node /d/{child}"));
        let path = format!("/d/{child}");
        let state = zk
            .get_data(&path)
            .unwrap_or_else(|| panic!("round {round}: {path} listed but gone"));
        actual[w].insert(path, state);
    }
    let mut checked = Checked::default();
    for (writer, actual) in writers.iter_mut().zip(actual) {
        checked.nodes += actual.len();
        // Requests execute in the order sent, so what survived is the acknowledged
        // state plus some prefix of the unanswered requests, each applied whole.
        let pending: Vec<Pending> = writer.pending.drain(..).collect();
        let mut candidate = writer.nodes.clone();
        let mut applied = None;
        for n in 0..=pending.len() {
            if n > 0 {
                apply(&mut candidate, &pending[n - 1]);
            }
            if candidate == actual {
                applied = Some(n);
                break;
            }
        }
        let Some(n) = applied else {
            report(round, writer, &actual, &pending);
        };
        writer.nodes = actual;
        checked.in_flight_applied += n;
        checked.in_flight_lost += pending.len() - n;
    }
    zk.close();
    checked
}

fn report(
    round: usize,
    writer: &Writer,
    actual: &BTreeMap<String, (Vec<u8>, i32)>,
    pending: &[Pending],
) -> ! {
    let mut diff = String::new();
    for (p, (d, v)) in &writer.nodes {
        match actual.get(p) {
            None => diff += &format!("  {p} v{v} (acknowledged) is MISSING\n"),
            Some((ad, av)) if ad != d || av != v => {
                diff += &format!(
                    "  {p}: acknowledged v{v} {:?}, found v{av} {:?}\n",
                    String::from_utf8_lossy(&d[..d.len().min(40)]),
                    String::from_utf8_lossy(&ad[..ad.len().min(40)])
                )
            }
            Some(_) => {}
        }
    }
    for p in actual.keys().filter(|p| !writer.nodes.contains_key(*p)) {
        diff += &format!("  {p} present but not acknowledged\n");
    }
    panic!(
        "round {round}, writer {}: state after restart matches neither the acknowledged \
         state nor it plus a prefix of the unanswered requests {:?}:\n{diff}",
        writer.id,
        pending.iter().map(Pending::brief).collect::<Vec<_>>()
    );
}

impl Pending {
    /// The op and its paths, without the data.
    fn brief(&self) -> String {
        match self {
            Pending::Create { path, .. } => format!("create {path}"),
            Pending::Set { path, data } => format!(
                "set {path} ({})",
                String::from_utf8_lossy(&data[..data.len().min(30)])
            ),
            Pending::Delete { path } => format!("delete {path}"),
            Pending::Pair { a, b } => format!("multi create {} {}", a.0, b.0),
        }
    }
}

#[test]
fn kill9_under_load_loses_no_acknowledged_write() {
    let target = Target::from_env();
    if target == Target::ZooKeeper {
        rookery_tests::require!("zookeeper");
    }
    let seed = seed();
    println!("durability seed: {seed} (replay with ROOKERY_DURABILITY_SEED={seed})");
    let mut rng = Rng(seed);
    // A small snapCount makes kills land during snapshots, retention and log purges too.
    let mut server = Server::start_with(target, "snapCount=300");
    {
        let mut zk = RawClient::connect(server.port, 30_000).unwrap();
        assert_eq!(zk.create("/d", b"").unwrap().header.err, 0);
        zk.close();
    }
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|id| Writer {
            id,
            ..Writer::default()
        })
        .collect();
    let started = Instant::now();
    let mut checks = 0;
    let mut in_flight_applied = 0;
    let mut in_flight_lost = 0;
    for round in 1..=KILL_ROUNDS {
        let acks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let port = server.port;
        let handles: Vec<_> = writers
            .drain(..)
            .map(|mut w| {
                let mut wrng = Rng(rng.next());
                let acks = acks.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let r = w.run(port, &mut wrng, &acks, &stop);
                    (w, r)
                })
            })
            .collect();
        // Kill at a random point once the load is under way.
        let min_acks = 5 + rng.below(150);
        let deadline = Instant::now() + Duration::from_secs(30);
        while acks.load(Ordering::Relaxed) < min_acks && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        let acked_before_kill = acks.load(Ordering::Relaxed);
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let (w, r) = h.join().expect("writer thread panicked");
            if let Err(e) = r {
                panic!("round {round}: {e}");
            }
            writers.push(w);
        }
        writers.sort_by_key(|w| w.id);
        assert!(
            acked_before_kill >= min_acks,
            "round {round}: only {acked_before_kill} writes acknowledged in 30 s"
        );
        let pending: usize = writers.iter().map(|w| w.pending.len()).sum();
        server.restart();
        let c = verify(server.port, &mut writers, round);
        let acked: u64 = writers.iter().map(|w| w.acked).sum();
        checks += c.nodes;
        in_flight_applied += c.in_flight_applied;
        in_flight_lost += c.in_flight_lost;
        println!(
            "round {round}: killed after {acked_before_kill} acks this round; {acked} acknowledged \
             writes so far; {} nodes checked; {pending} requests in flight",
            c.nodes
        );
    }
    let acked: u64 = writers.iter().map(|w| w.acked).sum();
    println!(
        "{KILL_ROUNDS} kill rounds, {acked} acknowledged writes, {checks} node checks, \
         in-flight requests: {in_flight_applied} applied whole, {in_flight_lost} not applied; \
         {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked > 0);
}
