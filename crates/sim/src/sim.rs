//! The event loop: hosts (a [`Peer`] over [`MemStorage`] plus the [`DataTree`] it
//! feeds), a network that delays, drops, duplicates, reorders and partitions, crashes
//! that lose unsynced writes, clients, and the invariant checks after every event.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;

use rookery_tree::{Caller, DataTree, Op, PendingChanges, SessionId, Txn, TxnHeader};
use rookery_tree::{decode_entry, encode_entry};
use rookery_zab::election::{ElectionTimeouts, ServerId, ServerState};
use rookery_zab::message::Message;
use rookery_zab::peer::{
    FlushTicket, InjectedBugs, Peer, PeerConfig, PeerTimeouts, Ready, Role, RoleChange,
};
use rookery_zab::quorum::QuorumMaj;
use rookery_zab::storage::{CrashMode, MemStorage, SnapshotStore, SyncMark, purge};
use rookery_zab::{Epoch, Zxid};

use crate::check::{Checked, Checker, Invariant, Violation, z};
use crate::rng::{Fnv, Rng};
use crate::workload::ClientRequest;

/// ZooKeeper's tickTime, in simulated milliseconds.
const TICK_MS: u64 = 100;
/// How many recent events a failure report shows.
const RECENT: usize = 60;
/// Snapshots each host keeps when it purges (ZooKeeper's minimum snapRetainCount).
const SNAP_RETAIN: usize = 3;
/// Seeds the PRNG of asynchronous flushes, apart from the main one.
const FLUSH_STREAM: u64 = 0x6173_796e_635f_666c;
/// Seeds the draw of [`Scenario::crash_closes_links`], for the same reason.
const LINK_STREAM: u64 = 0x6c69_6e6b_5f6c_6f73;

/// What a run does; the seed decides everything else ([`Scenario`]).
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Events in the fault phase (each delivery, tick, flush, client write or fault is
    /// one step, and the invariants are checked after each).
    pub fault_steps: u64,
    /// Simulated time the heal phase may take before non-convergence is a failure.
    pub heal_ms: u64,
    /// Known bugs to switch on in every peer (only honoured with `inject-bugs`).
    pub bugs: InjectedBugs,
    /// Keep every event as text in [`RunReport::trace`].
    pub record_trace: bool,
    /// Checks and faults for gaps the core is known to have (off by default so CI
    /// stays meaningful; see [`Strict`]).
    pub strict: Strict,
    /// The leader changes the membership now and then (promote, demote, remove, add
    /// back), one change at a time, under the same faults. Off by default so every
    /// seed without it replays as it always did.
    pub reconfig: bool,
}

/// Known gaps of the core, each switched on by its own flag so a run reports one of
/// them precisely (`cargo xtask sim --check-stalls` ..., `--strict` for all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Strict {
    /// After the heal no proposal waits for a quorum forever: convergence then wants
    /// the leader's commit point at its last zxid before the final write. A lost
    /// PROPOSAL or ACK at the tail stalls it until the next write.
    pub stalls: bool,
    /// Hosts may snapshot a tree that is ahead of their synced log (the server does
    /// not: it snapshots after a flush). A crash then leaves a log with a hole that
    /// DIFF and TRUNC do not see.
    pub unsynced_snapshots: bool,
}

impl Strict {
    pub fn all() -> Strict {
        Strict {
            stalls: true,
            unsynced_snapshots: true,
        }
    }

    /// The `cargo xtask sim` flags that select this.
    pub fn flags(self) -> String {
        if self == Strict::all() {
            return " --strict".to_owned();
        }
        let mut out = String::new();
        for (on, flag) in [
            (self.stalls, " --check-stalls"),
            (self.unsynced_snapshots, " --unsynced-snapshots"),
        ] {
            if on {
                out.push_str(flag);
            }
        }
        out
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            fault_steps: 3_000,
            heal_ms: 60_000,
            bugs: InjectedBugs::default(),
            record_trace: false,
            strict: Strict::default(),
            reconfig: false,
        }
    }
}

/// The cluster and fault mix a seed picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub voters: u64,
    pub observers: u64,
    /// Per-message probabilities in the fault phase, per mille.
    pub loss_permille: u64,
    pub dup_permille: u64,
    /// A delayed message takes 100–800 ms instead of 1..=max_delay_ms, and later
    /// messages on its link overtake it.
    pub slow_permille: u64,
    /// Links are FIFO (as the TCP streams of the real transport are) except for slow
    /// messages and duplicates; with this set every message takes its own random delay
    /// in the fault phase, so consecutive messages on a link are reordered all the time.
    pub unordered_links: bool,
    pub max_delay_ms: u64,
    /// Longest wait between an append and the flush that covers it.
    pub max_flush_ms: u64,
    /// Flushes run beside the node's later work, as the server's sync thread does: a
    /// sync covers what was appended when it began, and acknowledges up to there when
    /// it ends, up to `max_flush_ms` later. Without it a flush is one step.
    pub async_flush: bool,
    /// A crash closes the crashed server's connections, and every server it could
    /// reach hears so ([`Peer::link_lost`]) after its last messages, as the server's
    /// transport reports a closed quorum connection. Without it a crash is only
    /// silence.
    pub crash_closes_links: bool,
    /// Mean time between faults (crash, partition, heal) in the fault phase.
    pub fault_every_ms: u64,
    /// Mean time between client writes in the fault phase.
    pub write_every_ms: u64,
    /// The leader's zxid counter at which it rolls to a new epoch: low on some seeds
    /// so rolls happen under faults.
    pub roll_epoch_at_counter: u32,
}

impl Scenario {
    fn pick(rng: &mut Rng) -> Scenario {
        let voters = *rng.pick(&[1, 3, 3, 3, 3, 5, 5, 7]).unwrap_or(&3);
        let observers = *rng.pick(&[0, 0, 0, 1, 1, 2]).unwrap_or(&0);
        Scenario {
            voters,
            observers,
            loss_permille: *rng.pick(&[0, 0, 5, 20, 50, 100]).unwrap_or(&0),
            dup_permille: *rng.pick(&[0, 0, 10, 50]).unwrap_or(&0),
            slow_permille: *rng.pick(&[0, 10, 50, 150]).unwrap_or(&0),
            unordered_links: rng.permille(125),
            max_delay_ms: rng.range(1, 40),
            max_flush_ms: *rng.pick(&[1, 10, 50, 200]).unwrap_or(&10),
            async_flush: false,
            crash_closes_links: false,
            fault_every_ms: rng.range(200, 2_000),
            write_every_ms: rng.range(3, 40),
            roll_epoch_at_counter: if rng.permille(250) {
                rng.range(5, 60) as u32
            } else {
                rookery_zab::peer::DEFAULT_ROLL_EPOCH_AT_COUNTER
            },
        }
    }
}

/// Counters that show which paths a run exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub messages_duplicated: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub leaders_established: u64,
    pub writes_submitted: u64,
    pub writes_proposed: u64,
    pub writes_acked: u64,
    pub committed: u64,
    pub syncs_asked: u64,
    pub syncs_answered: u64,
    /// Membership changes the leader proposed (with [`SimOptions::reconfig`]).
    pub reconfigs_proposed: u64,
    /// Leadership transfers asked for (with [`SimOptions::reconfig`]).
    pub transfers_asked: u64,
    pub snapshots_taken: u64,
    pub purges: u64,
    pub diffs: u64,
    pub truncs: u64,
    pub snaps: u64,
    /// NEWEPOCH packets delivered: epoch rolls under way.
    pub new_epochs: u64,
}

/// Why a run failed, with the events just before it and the cluster's state.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub fault_steps: u64,
    pub strict: Strict,
    pub reconfig: bool,
    pub invariant: Invariant,
    pub detail: String,
    pub step: u64,
    pub time_ms: u64,
    pub recent: Vec<String>,
    pub cluster: String,
}

impl Failure {
    /// What replays this failure.
    pub fn replay_command(&self) -> String {
        let steps = if self.fault_steps == SimOptions::default().fault_steps {
            String::new()
        } else {
            format!(" --steps {}", self.fault_steps)
        };
        format!(
            "cargo xtask sim --seed {}{steps}{}{}",
            self.seed,
            self.strict.flags(),
            if self.reconfig { " --reconfig" } else { "" }
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {}: {} violated at step {} (t={} ms): {}",
            self.seed, self.invariant, self.step, self.time_ms, self.detail
        )?;
        writeln!(f, "last events:")?;
        for line in &self.recent {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "cluster:")?;
        write!(f, "{}", self.cluster)?;
        write!(f, "replay: {}", self.replay_command())
    }
}

/// One run's outcome. Same seed and options, same `trace_hash`.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub scenario: Scenario,
    pub steps: u64,
    pub time_ms: u64,
    pub trace_hash: u64,
    pub stats: Stats,
    pub failure: Option<Failure>,
    /// Every event, when [`SimOptions::record_trace`] asked for it.
    pub trace: Vec<String>,
}

/// Runs one seed to the end: the fault phase, then the heal phase.
pub fn run(seed: u64, opts: &SimOptions) -> RunReport {
    let mut sim = Sim::new(seed, opts);
    let result = sim.run_all();
    let failure = result.err().map(|v| sim.failure(v));
    RunReport {
        seed,
        scenario: sim.scenario.clone(),
        steps: sim.step,
        time_ms: sim.now,
        trace_hash: sim.trace_hash.finish(),
        stats: sim.stats.clone(),
        failure,
        trace: std::mem::take(&mut sim.full_trace),
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: ServerId,
        to: ServerId,
        msg: Message,
    },
    Tick {
        node: ServerId,
        incarnation: u64,
    },
    /// A group commit begins: the sync runs beside the node's later work (as the
    /// server's sync thread does) and covers only what was appended so far.
    Flush {
        node: ServerId,
        incarnation: u64,
    },
    FlushDone {
        node: ServerId,
        incarnation: u64,
        mark: SyncMark,
        ticket: FlushTicket,
    },
    /// `node`'s transport reports the connection from `from` closed.
    LinkLost {
        node: ServerId,
        incarnation: u64,
        from: ServerId,
    },
    ClientWrite,
    ClientSync,
    Fault,
    Restart {
        node: ServerId,
    },
    HealPartition {
        generation: u64,
    },
    Snapshot,
    Reconfig,
}

#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// One server: the core, its storage while it is down, and the host's side (tree,
/// prep's pending changes, what it proposed).
#[derive(Debug)]
struct Host {
    id: ServerId,
    cfg: PeerConfig,
    peer: Option<Peer<MemStorage>>,
    /// The disk while the server is down.
    disk: MemStorage,
    tree: DataTree,
    pending: PendingChanges,
    /// Bumped by each crash, so timers of the previous life are ignored.
    incarnation: u64,
    flush_scheduled: bool,
    /// Tick period: clocks run at slightly different rates.
    tick_ms: u64,
    /// Proposals of this leadership: zxid -> payload fingerprint, acked when applied.
    proposals: BTreeMap<Zxid, u64>,
    /// Proposals the core numbered but holds back (during an epoch roll): they count
    /// as proposed once the leader logs them, and are void if it stops leading first.
    held: BTreeMap<Zxid, u64>,
    /// Sessions this leader proposed a CreateSession for, not yet applied.
    sessions_proposed: BTreeSet<SessionId>,
    /// The epoch this server was last established leader in (by discovery; an epoch
    /// roll later does not change it): its history then held every earlier commit.
    established_epoch: Option<Epoch>,
    /// The log entry that made `cfg.quorum` the membership (its version), as a server
    /// persists it: a restart starts from it.
    config_entry: Option<Vec<u8>>,
}

impl Host {
    fn leading(&self) -> Option<&Peer<MemStorage>> {
        self.peer
            .as_ref()
            .filter(|p| p.role() == Role::Leading && p.is_serving())
    }
}

/// A compact event record; formatted only for failures and recorded traces.
#[derive(Debug, Clone, Copy)]
struct Rec {
    step: u64,
    time: u64,
    what: &'static str,
    a: u64,
    b: u64,
    x: i64,
    y: i64,
}

impl std::fmt::Display for Rec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} t={} {} {}->{} {:#x} {:#x}",
            self.step, self.time, self.what, self.a, self.b, self.x, self.y
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Faults,
    Heal,
    /// Converged; a last write must reach everyone.
    FinalWrite(Option<Zxid>),
}

struct Sim {
    seed: u64,
    opts: SimOptions,
    scenario: Scenario,
    rng: Rng,
    /// The delays of asynchronous flushes.
    flush_rng: Rng,
    now: u64,
    step: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    hosts: BTreeMap<ServerId, Host>,
    blocked: BTreeSet<(ServerId, ServerId)>,
    /// When the last in-order message on each link arrives (FIFO links).
    link_clock: BTreeMap<(ServerId, ServerId), u64>,
    partition_generation: u64,
    loss_permille: u64,
    dup_permille: u64,
    slow_permille: u64,
    unordered_links: bool,
    phase: Phase,
    heal_started: u64,
    checker: Checker,
    next_req: u64,
    /// Sync token -> the leader's last zxid when the sync reached it (the first time).
    sync_required: BTreeMap<u64, Zxid>,
    known_paths: Vec<String>,
    stats: Stats,
    trace_hash: Fnv,
    recent: VecDeque<Rec>,
    full_trace: Vec<String>,
}

impl Sim {
    fn new(seed: u64, opts: &SimOptions) -> Sim {
        let mut rng = Rng::new(seed);
        let mut scenario = Scenario::pick(&mut rng);
        // Draws of their own, so the seeds that ran with one-step flushes before they
        // could be asynchronous replay the same as then.
        let mut flush_rng = Rng::new(seed ^ FLUSH_STREAM);
        scenario.async_flush = flush_rng.permille(500);
        scenario.crash_closes_links = Rng::new(seed ^ LINK_STREAM).permille(500);
        let voters: Vec<ServerId> = (1..=scenario.voters).map(ServerId).collect();
        let observers: Vec<ServerId> = (scenario.voters + 1..=scenario.voters + scenario.observers)
            .map(ServerId)
            .collect();
        let quorum = QuorumMaj::new(voters.iter().copied(), observers.iter().copied(), 0);
        let mut sim = Sim {
            seed,
            opts: opts.clone(),
            loss_permille: scenario.loss_permille,
            dup_permille: scenario.dup_permille,
            slow_permille: scenario.slow_permille,
            unordered_links: scenario.unordered_links,
            scenario,
            rng,
            flush_rng,
            now: 0,
            step: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            hosts: BTreeMap::new(),
            blocked: BTreeSet::new(),
            link_clock: BTreeMap::new(),
            partition_generation: 0,
            phase: Phase::Faults,
            heal_started: 0,
            checker: Checker::default(),
            next_req: 0,
            sync_required: BTreeMap::new(),
            known_paths: Vec::new(),
            stats: Stats::default(),
            trace_hash: Fnv::default(),
            recent: VecDeque::new(),
            full_trace: Vec::new(),
        };
        let Ok(quorum) = quorum else {
            return sim;
        };
        let timeouts = PeerTimeouts {
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            retry_ticks: 2,
            // ZooKeeper backs off to 60 s; 2 s keeps the heal phase short.
            election: ElectionTimeouts {
                finalize_wait_ticks: 1,
                min_notification_interval_ticks: 1,
                max_notification_interval_ticks: 20,
            },
        };
        for id in voters.iter().chain(&observers) {
            let tick_ms = TICK_MS * sim.rng.range(90, 110) / 100;
            sim.hosts.insert(
                *id,
                Host {
                    id: *id,
                    cfg: PeerConfig {
                        self_id: *id,
                        quorum: quorum.clone(),
                        config_in_entry: if opts.reconfig {
                            sim_config_in_entry
                        } else {
                            rookery_zab::peer::no_configs
                        },
                        timeouts,
                        bugs: opts.bugs,
                        roll_epoch_at_counter: sim.scenario.roll_epoch_at_counter,
                    },
                    peer: None,
                    disk: MemStorage::new(),
                    tree: DataTree::default(),
                    pending: PendingChanges::new(),
                    incarnation: 0,
                    flush_scheduled: false,
                    tick_ms,
                    proposals: BTreeMap::new(),
                    held: BTreeMap::new(),
                    sessions_proposed: BTreeSet::new(),
                    established_epoch: None,
                    config_entry: None,
                },
            );
        }
        sim
    }

    fn run_all(&mut self) -> Checked {
        if self.hosts.is_empty() {
            return Err(Violation::new(Invariant::HostContract, "no voters"));
        }
        let ids: Vec<ServerId> = self.hosts.keys().copied().collect();
        for id in ids {
            // Servers start a few ticks apart.
            let at = self.rng.below(3 * TICK_MS);
            self.schedule(at, Event::Restart { node: id });
        }
        let first_write = self.rng.below(self.scenario.write_every_ms * 2) + 1;
        self.schedule(first_write, Event::ClientWrite);
        let first_sync = self.rng.range(1, 500);
        self.schedule(first_sync, Event::ClientSync);
        let first_fault = self.rng.below(self.scenario.fault_every_ms * 2) + 1;
        self.schedule(first_fault, Event::Fault);
        let first_snapshot = self.rng.range(200, 1_500);
        self.schedule(first_snapshot, Event::Snapshot);
        if self.opts.reconfig {
            let first = self.rng.range(200, 2_000);
            self.schedule(first, Event::Reconfig);
        }
        loop {
            if self.phase == Phase::Faults && self.step >= self.opts.fault_steps {
                self.start_heal()?;
            }
            let Some(Reverse(next)) = self.queue.pop() else {
                return Err(Violation::new(Invariant::Convergence, "nothing left to do"));
            };
            self.now = next.time;
            self.step += 1;
            self.handle(next.event)?;
            self.check_step()?;
            if self.phase != Phase::Faults {
                if self.heal_step()? {
                    return Ok(());
                }
                if self.now > self.heal_started + self.opts.heal_ms {
                    return Err(Violation::new(
                        Invariant::Convergence,
                        format!(
                            "no convergence {} ms after the heal ({:?})",
                            self.opts.heal_ms, self.phase
                        ),
                    ));
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Scheduling and tracing.

    fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            time: self.now + delay,
            seq: self.seq,
            event,
        }));
    }

    /// `node`'s host, unless it restarted since `incarnation` (the event is stale).
    fn host(&mut self, node: ServerId, incarnation: u64) -> Option<&mut Host> {
        self.hosts
            .get_mut(&node)
            .filter(|h| h.incarnation == incarnation)
    }

    fn rec(&mut self, what: &'static str, a: u64, b: u64, x: i64, y: i64) {
        self.trace_hash.u64(self.now);
        self.trace_hash.str(what);
        self.trace_hash.u64(a);
        self.trace_hash.u64(b);
        self.trace_hash.i64(x);
        self.trace_hash.i64(y);
        let r = Rec {
            step: self.step,
            time: self.now,
            what,
            a,
            b,
            x,
            y,
        };
        if self.opts.record_trace {
            self.full_trace.push(r.to_string());
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(r);
    }

    fn failure(&self, v: Violation) -> Failure {
        Failure {
            seed: self.seed,
            fault_steps: self.opts.fault_steps,
            strict: self.opts.strict,
            reconfig: self.opts.reconfig,
            invariant: v.invariant,
            detail: v.detail,
            step: self.step,
            time_ms: self.now,
            recent: self.recent.iter().map(Rec::to_string).collect(),
            cluster: self.dump(),
        }
    }

    /// Every host's state, for failure reports.
    fn dump(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  {:?}; blocked links {:?}; committed history ends at {}",
            self.scenario,
            self.blocked
                .iter()
                .map(|(a, b)| (a.0, b.0))
                .collect::<Vec<_>>(),
            z(self.checker.last_committed())
        );
        for h in self.hosts.values() {
            let Some(p) = &h.peer else {
                let _ = writeln!(out, "  {}: down", h.id);
                continue;
            };
            let _ = writeln!(
                out,
                "  {}: {} serving={} leader={:?} accepted={} current={} last={} durable={} commit={} applied={} tree={} digest={:#x}",
                h.id,
                p.role().as_str(),
                p.is_serving(),
                p.leader().map(|l| l.0),
                p.accepted_epoch(),
                p.current_epoch(),
                z(p.last_zxid()),
                z(p.durable_zxid()),
                z(p.commit_zxid()),
                z(p.applied_zxid()),
                z(h.tree.last_zxid()),
                h.tree.digest()
            );
            if self.opts.reconfig {
                let q = p.quorums();
                let ids = |s: &BTreeSet<ServerId>| s.iter().map(|i| i.0).collect::<Vec<_>>();
                let _ = writeln!(
                    out,
                    "      membership {}: voters {:?} observers {:?}; pending {:?}",
                    z(q.committed().version()),
                    ids(q.committed().voters()),
                    ids(q.committed().observers()),
                    q.pending()
                        .iter()
                        .map(|(zx, c)| (z(*zx), ids(c.voters()), ids(c.observers())))
                        .collect::<Vec<_>>()
                );
            }
            for v in p.learners() {
                let _ = writeln!(
                    out,
                    "      learner {} observer={} {:?} acked={}",
                    v.id,
                    v.observer,
                    v.phase,
                    z(v.acked)
                );
            }
        }
        out
    }

    // ---------------------------------------------------------------------------------
    // Events.

    fn handle(&mut self, event: Event) -> Checked {
        match event {
            Event::Deliver { from, to, msg } => self.deliver(from, to, msg),
            Event::Tick { node, incarnation } => {
                let Some(h) = self.host(node, incarnation) else {
                    return Ok(());
                };
                let Some(p) = h.peer.as_mut() else {
                    return Ok(());
                };
                let tick_ms = h.tick_ms;
                storage_ok(node, p.tick())?;
                self.rec("tick", node.0, 0, 0, 0);
                let jitter = self.rng.below(5);
                self.schedule(tick_ms + jitter, Event::Tick { node, incarnation });
                self.drain(node)
            }
            Event::Flush { node, incarnation } => {
                let async_flush = self.scenario.async_flush;
                let Some(h) = self.host(node, incarnation) else {
                    return Ok(());
                };
                let Some(p) = h.peer.as_mut() else {
                    h.flush_scheduled = false;
                    return Ok(());
                };
                // A synchronous flush, or an async one with nothing new to sync (which
                // still acknowledges what an earlier one made durable).
                let ticket = if async_flush { p.begin_flush() } else { None };
                let Some(ticket) = ticket else {
                    h.flush_scheduled = false;
                    storage_ok(node, p.flush())?;
                    let last = p.last_zxid();
                    self.rec("flush", node.0, 0, last, 0);
                    return self.drain(node);
                };
                // What is appended now, which is what the flush just begun covers.
                let mark = p.storage().sync_mark();
                self.rec("flush", node.0, 0, ticket.through(), 0);
                let delay = self.flush_rng.range(0, self.scenario.max_flush_ms);
                self.schedule(
                    delay,
                    Event::FlushDone {
                        node,
                        incarnation,
                        mark,
                        ticket,
                    },
                );
                Ok(())
            }
            Event::FlushDone {
                node,
                incarnation,
                mark,
                ticket,
            } => {
                let Some(h) = self.host(node, incarnation) else {
                    return Ok(());
                };
                h.flush_scheduled = false;
                let Some(p) = h.peer.as_mut() else {
                    return Ok(());
                };
                p.storage_mut().sync_to(mark);
                storage_ok(node, p.flush_done(ticket))?;
                self.rec("flushed", node.0, 0, ticket.through(), 0);
                self.drain(node)
            }
            Event::LinkLost {
                node,
                incarnation,
                from,
            } => {
                let Some(h) = self.host(node, incarnation) else {
                    return Ok(());
                };
                let Some(p) = h.peer.as_mut() else {
                    return Ok(());
                };
                storage_ok(node, p.link_lost(from))?;
                self.rec("link-lost", node.0, from.0, 0, 0);
                self.drain(node)
            }
            Event::ClientWrite => {
                if self.phase != Phase::Faults {
                    return Ok(());
                }
                let every = self.scenario.write_every_ms;
                let delay = self.rng.range(1, every * 2);
                self.schedule(delay, Event::ClientWrite);
                self.client_write()
            }
            Event::ClientSync => {
                if self.phase != Phase::Faults {
                    return Ok(());
                }
                let delay = self.rng.range(1, 500);
                self.schedule(delay, Event::ClientSync);
                self.client_sync()
            }
            Event::Fault => {
                if self.phase != Phase::Faults {
                    return Ok(());
                }
                let every = self.scenario.fault_every_ms;
                let delay = self.rng.range(1, every * 2);
                self.schedule(delay, Event::Fault);
                self.fault()
            }
            Event::Restart { node } => self.restart(node),
            Event::HealPartition { generation } => {
                if generation == self.partition_generation && !self.blocked.is_empty() {
                    self.blocked.clear();
                    self.rec("heal-partition", 0, 0, 0, 0);
                }
                Ok(())
            }
            Event::Snapshot => {
                let delay = self.rng.range(200, 1_500);
                self.schedule(delay, Event::Snapshot);
                self.snapshot()
            }
            Event::Reconfig => {
                if self.phase != Phase::Faults {
                    return Ok(());
                }
                let delay = self.rng.range(300, 3_000);
                self.schedule(delay, Event::Reconfig);
                self.reconfig()
            }
        }
    }

    fn deliver(&mut self, from: ServerId, to: ServerId, msg: Message) -> Checked {
        if self.blocked.contains(&(from, to)) {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        let Some(p) = self.hosts.get_mut(&to).and_then(|h| h.peer.as_mut()) else {
            return Ok(());
        };
        let (x, y, payload) = msg_fields(&msg);
        let kind = msg.kind();
        match &msg {
            Message::Diff { .. } => self.stats.diffs += 1,
            Message::Trunc { .. } => self.stats.truncs += 1,
            Message::Snap { .. } => self.stats.snaps += 1,
            Message::NewEpoch { .. } => self.stats.new_epochs += 1,
            _ => {}
        }
        if let Message::Sync { token } = &msg {
            if p.role() == Role::Leading {
                let last = p.last_zxid();
                self.sync_required.entry(*token).or_insert(last);
            }
        }
        storage_ok(to, p.step(from, msg))?;
        self.trace_hash.u64(payload);
        self.rec(kind, from.0, to.0, x, y);
        self.drain(to)
    }

    /// Sends what a host's Ready holds, through the faults.
    fn send(&mut self, from: ServerId, to: ServerId, msg: Message) {
        self.stats.messages_sent += 1;
        if self.blocked.contains(&(from, to)) || self.rng.permille(self.loss_permille) {
            self.stats.messages_dropped += 1;
            return;
        }
        if self.rng.permille(self.dup_permille) {
            // A duplicate is a stray copy: it arrives whenever, out of order.
            self.stats.messages_duplicated += 1;
            let delay = self.rng.range(1, 800);
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
        let delay = if self.rng.permille(self.slow_permille) {
            self.rng.range(100, 800)
        } else {
            let delay = self.rng.range(1, self.scenario.max_delay_ms);
            if self.unordered_links {
                delay
            } else {
                let clock = self.link_clock.entry((from, to)).or_insert(0);
                let at = (self.now + delay).max(*clock);
                *clock = at;
                at - self.now
            }
        };
        self.schedule(delay, Event::Deliver { from, to, msg });
    }

    // ---------------------------------------------------------------------------------
    // The host role.

    /// Proposals held back by an epoch roll count as proposed once the leader has
    /// logged them: they are numbered above everything else in its log.
    fn held_logged(&mut self, id: ServerId) -> Checked {
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        let Some(p) = &h.peer else {
            return Ok(());
        };
        let logged: Vec<(Zxid, u64)> = h
            .held
            .range(..=p.last_zxid())
            .map(|(z, hash)| (*z, *hash))
            .collect();
        for (zxid, hash) in logged {
            h.held.remove(&zxid);
            self.checker.on_propose(id, zxid, hash)?;
        }
        Ok(())
    }

    /// Does what the core asks until its Ready is empty (see [`Ready`]'s order).
    fn drain(&mut self, id: ServerId) -> Checked {
        loop {
            let Some(h) = self.hosts.get_mut(&id) else {
                return Ok(());
            };
            let Some(p) = h.peer.as_mut() else {
                return Ok(());
            };
            let ready = storage_ok(id, p.take_ready())?;
            if ready.is_empty() {
                break;
            }
            self.handle_ready(id, ready)?;
        }
        self.held_logged(id)?;
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        if h.peer.as_ref().is_some_and(|p| p.role() != Role::Leading) {
            h.held.clear();
        }
        if let Some(p) = &h.peer {
            if p.needs_flush() && !h.flush_scheduled {
                h.flush_scheduled = true;
                let incarnation = h.incarnation;
                let delay = self.rng.range(0, self.scenario.max_flush_ms);
                self.schedule(
                    delay,
                    Event::Flush {
                        node: id,
                        incarnation,
                    },
                );
            }
        }
        Ok(())
    }

    fn handle_ready(&mut self, id: ServerId, ready: Ready) -> Checked {
        let Ready {
            role_changes,
            install_snapshot,
            committed,
            synced,
            snapshot_requests,
            messages,
            requests,
            adopted_config,
        } = ready;
        if let Some((zxid, entry)) = adopted_config {
            self.rec("adopt-config", id.0, 0, zxid, 0);
            self.config_committed(id, zxid, entry);
        }
        for rc in role_changes {
            let Some(h) = self.hosts.get_mut(&id) else {
                return Ok(());
            };
            h.pending.clear();
            h.sessions_proposed.clear();
            match rc {
                RoleChange::Looking => {
                    // The roll may have ended, logging what it held, in the same step
                    // that ended the leadership (a reconfiguration it committed).
                    self.held_logged(id)?;
                    let Some(h) = self.hosts.get_mut(&id) else {
                        return Ok(());
                    };
                    h.proposals.clear();
                    h.held.clear();
                    h.established_epoch = None;
                    self.rec("looking", id.0, 0, 0, 0);
                }
                RoleChange::Serving {
                    role,
                    leader,
                    epoch,
                } => {
                    self.rec(role.as_str(), id.0, leader.0, epoch, 0);
                    if role == Role::Leading {
                        if let Some(h) = self.hosts.get_mut(&id) {
                            h.established_epoch = Some(epoch);
                        }
                        self.stats.leaders_established += 1;
                        self.checker.on_established(id, epoch)?;
                    }
                }
            }
        }
        if let Some(snap) = install_snapshot {
            let tree = DataTree::restore(&snap.data).map_err(|e| {
                Violation::new(
                    Invariant::HostContract,
                    format!("{id} got an unreadable snapshot: {e}"),
                )
            })?;
            if tree.last_zxid() != snap.last_zxid {
                return Err(Violation::new(
                    Invariant::HostContract,
                    format!(
                        "{id} got a snapshot labelled {} holding a tree at {}",
                        z(snap.last_zxid),
                        z(tree.last_zxid())
                    ),
                ));
            }
            self.checker.on_install(id, snap.last_zxid, tree.digest())?;
            self.rec("install-snapshot", id.0, 0, snap.last_zxid, 0);
            let config = tree.node(CONFIG_PATH).and_then(|n| {
                let data = n.data.as_deref()?.to_vec();
                let zxid = n.stat.mzxid;
                let entry = reconfig_entry(zxid, data);
                sim_config_in_entry(zxid, &entry).map(|q| (zxid, q, entry))
            });
            if let Some(h) = self.hosts.get_mut(&id) {
                h.tree = tree;
                h.pending.clear();
                if let Some((zxid, q, entry)) = config {
                    if zxid > h.cfg.quorum.version() {
                        h.cfg.quorum = q.clone();
                        h.config_entry = Some(entry.clone());
                        if let Some(p) = h.peer.as_mut() {
                            p.install_config(q);
                            p.set_committed_entry(zxid, entry);
                        }
                    }
                }
            }
        }
        for e in committed {
            self.apply(id, e.zxid, &e.payload)?;
        }
        for token in synced {
            self.check_synced(id, token)?;
        }
        for to in snapshot_requests {
            let Some(h) = self.hosts.get_mut(&id) else {
                return Ok(());
            };
            let Some(p) = h.peer.as_mut() else {
                return Ok(());
            };
            let zxid = p.applied_zxid();
            if h.tree.last_zxid() != zxid {
                return Err(Violation::new(
                    Invariant::HostContract,
                    format!(
                        "{id}'s tree is at {} but the core says {} is applied",
                        z(h.tree.last_zxid()),
                        z(zxid)
                    ),
                ));
            }
            let data = h.tree.snapshot();
            storage_ok(id, p.snapshot_ready(to, zxid, data))?;
            self.rec("snapshot-for", id.0, to.0, zxid, 0);
        }
        for (to, msg) in messages {
            self.send(id, to, msg);
        }
        for (from, payload) in requests {
            match ClientRequest::decode(&payload) {
                Some(req) => {
                    self.rec("request", from.0, id.0, req.req_id as i64, 0);
                    self.leader_write(id, &req)?;
                }
                None => {
                    return Err(Violation::new(
                        Invariant::HostContract,
                        format!("{id} got a forwarded request it cannot decode"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, id: ServerId, zxid: Zxid, payload: &[u8]) -> Checked {
        let (header, txn) = decode_entry(payload).map_err(|e| {
            Violation::new(
                Invariant::HostContract,
                format!("{id} cannot decode committed {}: {e}", z(zxid)),
            )
        })?;
        if header.zxid != zxid {
            return Err(Violation::new(
                Invariant::HostContract,
                format!(
                    "{id}: log entry {} holds a Txn for {}",
                    z(zxid),
                    z(header.zxid)
                ),
            ));
        }
        let hash = Fnv::of(payload);
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        let prev = h.tree.last_zxid();
        if zxid > prev {
            h.tree.apply(&header, txn.clone());
            h.pending.applied_through(zxid);
        }
        let digest = h.tree.digest();
        let first = self.checker.committed_count();
        self.checker.on_apply(id, prev, zxid, hash, digest, &txn)?;
        if self.checker.committed_count() > first {
            self.stats.committed += 1;
        }
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        if matches!(txn, Txn::CreateSession { .. }) {
            h.sessions_proposed.remove(&header.session_id);
        }
        if matches!(txn, Txn::Reconfig { .. }) && zxid > h.cfg.quorum.version() {
            self.config_committed(id, zxid, payload.to_vec());
        }
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        if h.proposals.remove(&zxid) == Some(hash) && h.leading().is_some() {
            self.checker.on_acked(zxid, hash);
            self.stats.writes_acked += 1;
            self.rec("acked", id.0, 0, zxid, 0);
            if let Txn::Create { path, .. } = &txn {
                if self.known_paths.len() >= 64 {
                    let i = self.rng.below(64) as usize;
                    self.known_paths.swap_remove(i);
                }
                self.known_paths.push(path.clone());
            }
        }
        Ok(())
    }

    /// A client write arriving at a random server: the leader proposes it, a serving
    /// learner forwards it, anyone else turns it away (the client would retry).
    fn client_write(&mut self) -> Checked {
        let ids: Vec<ServerId> = self.hosts.keys().copied().collect();
        let Some(&id) = self.rng.pick(&ids) else {
            return Ok(());
        };
        self.next_req += 1;
        let req = ClientRequest::random(&mut self.rng, self.next_req, &self.known_paths);
        self.stats.writes_submitted += 1;
        let Some(p) = self.hosts.get_mut(&id).and_then(|h| h.peer.as_mut()) else {
            return Ok(());
        };
        if p.role() == Role::Leading {
            return self.leader_write(id, &req);
        }
        if p.forward(req.encode()).is_ok() {
            self.rec("forward", id.0, 0, req.req_id as i64, 0);
            return self.drain(id);
        }
        Ok(())
    }

    /// A client's `sync` at a random server.
    fn client_sync(&mut self) -> Checked {
        let ids: Vec<ServerId> = self.hosts.keys().copied().collect();
        let Some(&id) = self.rng.pick(&ids) else {
            return Ok(());
        };
        self.next_req += 1;
        let token = self.next_req;
        let Some(p) = self.hosts.get_mut(&id).and_then(|h| h.peer.as_mut()) else {
            return Ok(());
        };
        let last = p.last_zxid();
        let leading = p.role() == Role::Leading;
        if p.sync(token).is_err() {
            return Ok(());
        }
        if leading {
            self.sync_required.insert(token, last);
        }
        self.stats.syncs_asked += 1;
        self.rec("sync", id.0, 0, token as i64, 0);
        self.drain(id)
    }

    /// ZooKeeper's sync contract: once answered, this server has applied everything
    /// the leader had proposed when the sync reached it. (Optional until the leader's
    /// own syncs waited for their apply: 7ab62aa.)
    fn check_synced(&mut self, id: ServerId, token: u64) -> Checked {
        self.stats.syncs_answered += 1;
        let applied = self.hosts.get(&id).map_or(0, |h| h.tree.last_zxid());
        self.rec("synced", id.0, 0, token as i64, applied);
        match self.sync_required.get(&token) {
            None => Err(Violation::new(
                Invariant::SyncUpToDate,
                format!("{id} answered sync {token}, which never reached a leader"),
            )),
            Some(&required) if applied < required => Err(Violation::new(
                Invariant::SyncUpToDate,
                format!(
                    "{id} answered sync {token} with its tree at {}, but the leader had {} when the sync reached it",
                    z(applied),
                    z(required)
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// The leader host's request pipeline: prep against tree + pending, propose.
    fn leader_write(&mut self, id: ServerId, req: &ClientRequest) -> Checked {
        let Some(h) = self.hosts.get(&id) else {
            return Ok(());
        };
        if h.leading().is_none() {
            return Ok(());
        }
        if !h.tree.sessions().contains_key(&req.session)
            && !h.sessions_proposed.contains(&req.session)
        {
            let op = Op::CreateSession { timeout_ms: 30_000 };
            if self.propose(id, req.session, 0, &op)? {
                if let Some(h) = self.hosts.get_mut(&id) {
                    h.sessions_proposed.insert(req.session);
                }
            }
        }
        let cxid = (req.req_id & 0x7fff_ffff) as i32;
        self.propose(id, req.session, cxid, &req.to_op())?;
        self.drain(id)
    }

    /// Returns whether the core took the proposal.
    fn propose(
        &mut self,
        id: ServerId,
        session: SessionId,
        cxid: i32,
        op: &Op,
    ) -> Result<bool, Violation> {
        let now = self.now as i64;
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(false);
        };
        let Host {
            peer,
            tree,
            pending,
            ..
        } = h;
        let Some(p) = peer.as_mut() else {
            return Ok(false);
        };
        let mut hash = 0;
        let result = p.propose(|zxid| {
            let mut caller = Caller::new(session, &[]);
            // Session 0 is the server's own write (a membership change).
            caller.is_super = session == 0;
            // A failed op is still logged, as ZooKeeper logs an error Txn.
            let txn = tree
                .prep(pending, &caller, op, zxid, now)
                .unwrap_or_else(Txn::Error);
            let header = TxnHeader {
                session_id: session,
                cxid,
                zxid,
                time_ms: now,
            };
            let bytes = encode_entry(&header, &txn);
            hash = Fnv::of(&bytes);
            bytes
        });
        let zxid = match result {
            Ok(zxid) => zxid,
            Err(rookery_zab::peer::ProposeError::NotServing(_)) => return Ok(false),
            Err(rookery_zab::peer::ProposeError::Storage(e)) => {
                return Err(Violation::new(
                    Invariant::HostContract,
                    format!("{id}: storage failed on propose: {e}"),
                ));
            }
        };
        h.proposals.insert(zxid, hash);
        self.stats.writes_proposed += 1;
        if p.last_zxid() == zxid {
            self.checker.on_propose(id, zxid, hash)?;
        } else {
            h.held.insert(zxid, hash);
        }
        self.rec("propose", id.0, 0, zxid, 0);
        Ok(true)
    }

    // ---------------------------------------------------------------------------------
    // Faults.

    /// The leader moves one server: a voter becomes an observer or leaves, an observer
    /// becomes a voter or leaves, a server that left comes back as an observer.
    fn reconfig(&mut self) -> Checked {
        let Some(leader) = self.leader_id() else {
            return Ok(());
        };
        let Some(p) = self.hosts.get(&leader).and_then(|h| h.peer.as_ref()) else {
            return Ok(());
        };
        if !p.quorums().pending().is_empty() {
            return Ok(());
        }
        let current = p.quorums().committed().clone();
        let ids: Vec<ServerId> = self.hosts.keys().copied().collect();
        let Some(&x) = self.rng.pick(&ids) else {
            return Ok(());
        };
        if self.rng.permille(250) {
            // Or hand leadership to x (refused unless x is a voter in sync).
            self.stats.transfers_asked += 1;
            if let Some(p) = self.hosts.get_mut(&leader).and_then(|h| h.peer.as_mut()) {
                if p.transfer_leadership(Some(x)).is_ok() {
                    self.rec("transfer", leader.0, x.0, 0, 0);
                }
            }
            return self.drain(leader);
        }
        let mut voters: BTreeSet<ServerId> = current.voters().clone();
        let mut observers: BTreeSet<ServerId> = current.observers().clone();
        let leave = self.rng.permille(300);
        if voters.remove(&x) {
            if !leave {
                observers.insert(x);
            }
        } else if observers.remove(&x) {
            if !leave {
                voters.insert(x);
            }
        } else {
            observers.insert(x);
        }
        if voters.is_empty() {
            return Ok(());
        }
        let data = config_text(&voters, &observers).into_bytes();
        self.stats.reconfigs_proposed += 1;
        self.rec(
            "reconfig",
            leader.0,
            x.0,
            voters.len() as i64,
            observers.len() as i64,
        );
        self.propose(leader, 0, 0, &Op::Reconfig { data })?;
        self.drain(leader)
    }

    /// Host `id` knows `entry` (at `zxid`) is its committed membership: persisted, as
    /// a server persists it, so a restart starts from it.
    fn config_committed(&mut self, id: ServerId, zxid: Zxid, entry: Vec<u8>) {
        let Some(q) = sim_config_in_entry(zxid, &entry) else {
            return;
        };
        if let Some(h) = self.hosts.get_mut(&id) {
            if zxid > h.cfg.quorum.version() {
                h.cfg.quorum = q;
                h.config_entry = Some(entry);
            }
        }
    }

    fn up_ids(&self) -> Vec<ServerId> {
        self.hosts
            .values()
            .filter(|h| h.peer.is_some())
            .map(|h| h.id)
            .collect()
    }

    fn leader_id(&self) -> Option<ServerId> {
        self.hosts
            .values()
            .find(|h| h.leading().is_some())
            .map(|h| h.id)
    }

    fn fault(&mut self) -> Checked {
        let ids: Vec<ServerId> = self.hosts.keys().copied().collect();
        match self.rng.below(100) {
            0..=17 => {
                let up = self.up_ids();
                if let Some(&id) = self.rng.pick(&up) {
                    self.crash(id)?;
                }
            }
            18..=27 => {
                if let Some(id) = self.leader_id() {
                    self.crash(id)?;
                }
            }
            28..=31 => {
                // Everyone at once (power loss): only what was synced survives.
                for id in self.up_ids() {
                    self.crash(id)?;
                }
            }
            32..=36 => {
                // A majority of the voters at once: what they acknowledged must have
                // been on disk, or the survivors elect a leader without it.
                let mut voters: Vec<ServerId> = (1..=self.scenario.voters).map(ServerId).collect();
                let majority = voters.len() / 2 + 1;
                while voters.len() > majority {
                    let i = self.rng.below(voters.len() as u64) as usize;
                    voters.swap_remove(i);
                }
                for id in voters {
                    self.crash(id)?;
                }
            }
            37..=51 => {
                // Two random halves.
                let mut side = BTreeSet::new();
                for &id in &ids {
                    if self.rng.permille(500) {
                        side.insert(id);
                    }
                }
                let mut blocked = BTreeSet::new();
                for &a in &ids {
                    for &b in &ids {
                        if side.contains(&a) != side.contains(&b) {
                            blocked.insert((a, b));
                        }
                    }
                }
                self.partition(blocked, "partition-halves");
            }
            52..=66 => {
                let target = self.leader_id().or_else(|| self.rng.pick(&ids).copied());
                if let Some(t) = target {
                    let blocked = ids
                        .iter()
                        .filter(|&&o| o != t)
                        .flat_map(|&o| [(t, o), (o, t)])
                        .collect();
                    self.partition(blocked, "isolate");
                }
            }
            67..=76 => {
                // One way: a server hears but is not heard, or the reverse.
                let target = if self.rng.permille(500) {
                    self.leader_id()
                } else {
                    None
                }
                .or_else(|| self.rng.pick(&ids).copied());
                if let Some(t) = target {
                    let outgoing = self.rng.permille(500);
                    let blocked = ids
                        .iter()
                        .filter(|&&o| o != t)
                        .map(|&o| if outgoing { (t, o) } else { (o, t) })
                        .collect();
                    self.partition(blocked, "one-way");
                }
            }
            _ => {
                if !self.blocked.is_empty() {
                    self.blocked.clear();
                    self.rec("heal-partition", 0, 0, 0, 0);
                }
            }
        }
        Ok(())
    }

    fn partition(&mut self, blocked: BTreeSet<(ServerId, ServerId)>, what: &'static str) {
        self.stats.partitions += 1;
        self.partition_generation += 1;
        self.rec(what, blocked.len() as u64, 0, 0, 0);
        self.blocked = blocked;
        let generation = self.partition_generation;
        let after = self.rng.range(200, 4_000);
        self.schedule(after, Event::HealPartition { generation });
    }

    /// Kills a server: it loses its memory and whatever of its log was not synced.
    fn crash(&mut self, id: ServerId) -> Checked {
        if self.rng.permille(250) {
            // A snapshot just before dying: the tree (and so the snapshot) may be ahead
            // of the synced log, which the crash then cuts back.
            self.snapshot_host(id, false)?;
        }
        let mode = if self.rng.permille(500) {
            CrashMode::DropUnsynced
        } else {
            CrashMode::KeepUnsynced {
                keep: self.rng.below(4) as usize,
                tear_next: self.rng.permille(500),
            }
        };
        let restart_after = self.rng.range(50, 3_000);
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        let Some(mut peer) = h.peer.take() else {
            return Ok(());
        };
        let mut disk = std::mem::take(peer.storage_mut());
        drop(peer);
        let recovery = disk.crash(mode);
        h.disk = disk;
        h.incarnation += 1;
        h.flush_scheduled = false;
        h.tree = DataTree::default();
        h.pending.clear();
        h.proposals.clear();
        h.held.clear();
        h.sessions_proposed.clear();
        h.established_epoch = None;
        self.stats.crashes += 1;
        let (keep, torn) = match mode {
            CrashMode::DropUnsynced => (-1, 0),
            CrashMode::KeepUnsynced { keep, tear_next } => (keep as i64, i64::from(tear_next)),
        };
        self.rec("crash", id.0, recovery.entries_cut, keep, torn);
        self.schedule(restart_after, Event::Restart { node: id });
        if self.scenario.crash_closes_links {
            let hears: Vec<(ServerId, u64)> = self
                .hosts
                .iter()
                .filter(|(other, h)| {
                    **other != id && h.peer.is_some() && !self.blocked.contains(&(id, **other))
                })
                .map(|(other, h)| (*other, h.incarnation))
                .collect();
            for (node, incarnation) in hears {
                // After anything it sent before dying, on an ordered link.
                self.schedule(
                    self.scenario.max_delay_ms + 1,
                    Event::LinkLost {
                        node,
                        incarnation,
                        from: id,
                    },
                );
            }
        }
        Ok(())
    }

    /// Starts a server from its disk: the newest valid snapshot, then the core over
    /// the log (it applies the rest once it learns what is committed).
    fn restart(&mut self, id: ServerId) -> Checked {
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        if h.peer.is_some() {
            return Ok(());
        }
        let loaded = storage_ok(id, h.disk.load_latest_snapshot())?;
        let tree = match loaded.snapshot {
            Some(s) => {
                let tree = DataTree::restore(&s.data).map_err(|e| {
                    Violation::new(
                        Invariant::HostContract,
                        format!("{id}: stored snapshot {} unreadable: {e}", z(s.last_zxid)),
                    )
                })?;
                if tree.last_zxid() != s.last_zxid {
                    return Err(Violation::new(
                        Invariant::HostContract,
                        format!(
                            "{id}: snapshot {} holds a tree at {}",
                            z(s.last_zxid),
                            z(tree.last_zxid())
                        ),
                    ));
                }
                tree
            }
            None => DataTree::default(),
        };
        self.checker
            .on_install(id, tree.last_zxid(), tree.digest())?;
        let disk = std::mem::take(&mut h.disk);
        let applied = tree.last_zxid();
        h.tree = tree;
        let mut peer = storage_ok(id, Peer::new(h.cfg.clone(), disk, applied))?;
        if let Some(entry) = &h.config_entry {
            peer.set_committed_entry(h.cfg.quorum.version(), entry.clone());
        }
        h.peer = Some(peer);
        let incarnation = h.incarnation;
        let tick = h.tick_ms;
        self.rec("start", id.0, 0, applied, 0);
        let first = self.rng.below(tick) + 1;
        self.schedule(
            first,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        self.drain(id)
    }

    /// A host snapshots its tree (as ZooKeeper's SyncRequestProcessor does now and
    /// then) and sometimes purges old snapshots and the log they cover.
    fn snapshot(&mut self) -> Checked {
        let up = self.up_ids();
        let Some(&id) = self.rng.pick(&up) else {
            return Ok(());
        };
        let do_purge = self.rng.permille(400);
        self.snapshot_host(id, do_purge)
    }

    fn snapshot_host(&mut self, id: ServerId, do_purge: bool) -> Checked {
        let Some(h) = self.hosts.get_mut(&id) else {
            return Ok(());
        };
        let Some(p) = h.peer.as_mut() else {
            return Ok(());
        };
        let zxid = h.tree.last_zxid();
        // The server snapshots after a round's flush, so its snapshots hold only
        // entries its log has durably. A snapshot ahead of the synced log followed by
        // a crash leaves the log with a hole the core does not see (Strict).
        // With asynchronous flushes the log is seldom all durable under load, so the
        // server's rule is the tree at or below the durable point; one-step flushes
        // keep the stricter rule their seeds were found with.
        let ahead = if self.scenario.async_flush {
            zxid > p.durable_zxid()
        } else {
            p.needs_flush()
        };
        if zxid == 0 || (ahead && !self.opts.strict.unsynced_snapshots) {
            return Ok(());
        }
        let data = h.tree.snapshot();
        storage_ok(id, p.storage_mut().save_snapshot(zxid, &data))?;
        self.stats.snapshots_taken += 1;
        let mut purged = 0;
        if do_purge {
            let report = storage_ok(id, purge(p.storage_mut(), SNAP_RETAIN))?;
            purged = report.log_entries_purged;
            self.stats.purges += 1;
        }
        self.rec("snapshot", id.0, purged, zxid, 0);
        Ok(())
    }

    // ---------------------------------------------------------------------------------
    // Checks and the heal phase.

    /// Leadership1 and PrimaryIntegrity over the current states.
    fn check_step(&self) -> Checked {
        let mut leaders: BTreeMap<Epoch, ServerId> = BTreeMap::new();
        for h in self.hosts.values() {
            let Some(p) = h.leading() else {
                continue;
            };
            let epoch = p.current_epoch();
            if let Some(other) = leaders.insert(epoch, h.id) {
                return Err(Violation::new(
                    Invariant::Leadership1,
                    format!("{other} and {} both lead epoch {epoch}", h.id),
                ));
            }
            if let Some(established) = h.established_epoch {
                self.checker
                    .check_primary(h.id, established, h.tree.last_zxid())?;
            }
        }
        for h in self.hosts.values() {
            if let Some(p) = &h.peer {
                if p.applied_zxid() != h.tree.last_zxid() {
                    return Err(Violation::new(
                        Invariant::HostContract,
                        format!(
                            "{}: core applied {} but the tree is at {}",
                            h.id,
                            z(p.applied_zxid()),
                            z(h.tree.last_zxid())
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn start_heal(&mut self) -> Checked {
        self.phase = Phase::Heal;
        self.heal_started = self.now;
        self.blocked.clear();
        self.loss_permille = 0;
        self.dup_permille = 0;
        self.slow_permille = 0;
        // A healed network behaves like the real transport's TCP streams: in order.
        // (Sync streams of many proposals cannot get through a link that reorders
        // most of them: every gap restarts the sync.)
        self.unordered_links = false;
        self.rec("heal", 0, 0, 0, 0);
        let down: Vec<ServerId> = self
            .hosts
            .values()
            .filter(|h| h.peer.is_none())
            .map(|h| h.id)
            .collect();
        for id in down {
            self.restart(id)?;
        }
        Ok(())
    }

    /// The leader's id and commit point once every server is up, serves under it, has
    /// applied exactly its commit point and holds the same tree.
    fn converged(&self) -> Option<(ServerId, Zxid)> {
        let leader = self.leader_id()?;
        let lp = self.hosts.get(&leader)?.peer.as_ref()?;
        let commit = lp.commit_zxid();
        if self.opts.strict.stalls
            && (commit != lp.last_zxid() || lp.durable_zxid() != lp.last_zxid())
        {
            // Proposals still waiting for a quorum.
            return None;
        }
        let digest = self.hosts.get(&leader)?.tree.digest();
        let members = lp.quorums().committed().clone();
        for h in self.hosts.values() {
            if !members.is_member(h.id) {
                // Removed: it waits, idle, to be added back.
                continue;
            }
            let p = h.peer.as_ref()?;
            let follows = h.id == leader || p.leader() == Some(leader);
            if !p.is_serving()
                || !follows
                || h.tree.last_zxid() != commit
                || h.tree.digest() != digest
            {
                return None;
            }
        }
        Some((leader, commit))
    }

    /// Returns true when the run is done: converged, then a last write went through.
    fn heal_step(&mut self) -> Result<bool, Violation> {
        let Some((leader, commit)) = self.converged() else {
            return Ok(false);
        };
        match self.phase {
            Phase::Faults | Phase::Heal | Phase::FinalWrite(None) => {
                // The cluster must still take writes: one more, through the leader.
                self.rec("converged", leader.0, 0, commit, 0);
                self.next_req += 1;
                let req = ClientRequest {
                    session: crate::workload::session_of(0),
                    req_id: self.next_req,
                    op: crate::workload::WriteOp::Create {
                        path: format!("/final-{}", self.next_req),
                        sequential: false,
                    },
                };
                self.leader_write(leader, &req)?;
                let last = self
                    .hosts
                    .get(&leader)
                    .and_then(|h| h.peer.as_ref())
                    .map(|p| p.last_zxid());
                let proposed = last.filter(|&l| l > commit);
                self.phase = Phase::FinalWrite(proposed);
                Ok(false)
            }
            Phase::FinalWrite(Some(zxid)) if commit < zxid => {
                // A leader change dropped the uncommitted write: write again.
                let epoch = self
                    .hosts
                    .get(&leader)
                    .and_then(|h| h.peer.as_ref())
                    .map_or(0, |p| p.current_epoch());
                if epoch != rookery_zab::message::epoch_of(zxid) {
                    self.phase = Phase::FinalWrite(None);
                }
                Ok(false)
            }
            Phase::FinalWrite(Some(_)) => {
                let members = self
                    .hosts
                    .get(&leader)
                    .and_then(|h| h.peer.as_ref())
                    .map(|p| p.quorums().committed().clone());
                let hosts: Vec<(ServerId, Zxid, &DataTree)> = self
                    .hosts
                    .values()
                    .filter(|h| members.as_ref().is_none_or(|m| m.is_member(h.id)))
                    .map(|h| (h.id, h.tree.last_zxid(), &h.tree))
                    .collect();
                self.checker.check_final(&hosts)?;
                for h in self.hosts.values() {
                    if h.tree.recompute_digest() != h.tree.digest() {
                        return Err(Violation::new(
                            Invariant::ReplicaDigest,
                            format!("{}'s incremental digest disagrees with its tree", h.id),
                        ));
                    }
                }
                self.rec("done", leader.0, 0, commit, 0);
                Ok(true)
            }
        }
    }
}

const CONFIG_PATH: &str = "/zookeeper/config";

/// The simulator's membership text: `voters;observers`, ids comma-separated.
fn config_text(voters: &BTreeSet<ServerId>, observers: &BTreeSet<ServerId>) -> String {
    let list = |s: &BTreeSet<ServerId>| {
        s.iter()
            .map(|id| id.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{};{}", list(voters), list(observers))
}

/// [`rookery_zab::peer::ConfigInEntry`] for the simulator's hosts.
fn sim_config_in_entry(zxid: Zxid, payload: &[u8]) -> Option<QuorumMaj> {
    let data = rookery_tree::reconfig_in_entry(payload)?;
    let text = String::from_utf8(data).ok()?;
    let (v, o) = text.split_once(';')?;
    let ids = |t: &str| -> Option<Vec<ServerId>> {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok().map(ServerId))
            .collect()
    };
    QuorumMaj::new(ids(v)?, ids(o)?, zxid).ok()
}

/// The entry that makes `data` the membership at `zxid` (what a snapshot's
/// `/zookeeper/config` stands for).
fn reconfig_entry(zxid: Zxid, data: Vec<u8>) -> Vec<u8> {
    let header = TxnHeader {
        session_id: 0,
        cxid: 0,
        zxid,
        time_ms: 0,
    };
    encode_entry(&header, &Txn::Reconfig { data })
}

/// A storage error stops a real server; in the simulator it is a failure of the run.
fn storage_ok<T>(
    id: ServerId,
    r: Result<T, rookery_zab::storage::StorageError>,
) -> Result<T, Violation> {
    r.map_err(|e| {
        Violation::new(
            Invariant::HostContract,
            format!("{id}: storage failed: {e}"),
        )
    })
}

/// The numbers that identify a message in the trace: two fields and a payload hash.
fn msg_fields(m: &Message) -> (i64, i64, u64) {
    match m {
        Message::Notification(n) => {
            let state = match n.state {
                ServerState::Looking => 0,
                ServerState::Following => 1,
                ServerState::Leading => 2,
                ServerState::Observing => 3,
            };
            let mut h = Fnv::default();
            h.u64(n.leader.0);
            h.i64(n.peer_epoch);
            h.u64(state);
            h.u64(n.sid.0);
            (n.zxid, n.election_epoch, h.finish())
        }
        Message::FollowerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        } => (*accepted_epoch, *last_zxid, u64::from(*observer)),
        Message::LeaderInfo {
            new_epoch,
            term,
            observer,
        } => (*new_epoch, *term, u64::from(*observer)),
        Message::AckEpoch {
            current_epoch,
            last_zxid,
            observer,
        } => (*current_epoch, *last_zxid, u64::from(*observer)),
        Message::Diff { last_zxid, .. } => (*last_zxid, 0, 0),
        Message::Trunc { zxid, .. } => (*zxid, 0, 0),
        Message::Snap {
            zxid, offset, data, ..
        } => (*zxid, *offset as i64, Fnv::of(data)),
        Message::NewLeader { epoch, last_zxid } => (*epoch, *last_zxid, 0),
        Message::AckNewLeader { epoch } | Message::AckNewEpoch { epoch } => (*epoch, 0, 0),
        Message::NewEpoch { epoch, last_zxid } => (*epoch, *last_zxid, 0),
        Message::UpToDate { commit_zxid } => (*commit_zxid, 0, 0),
        Message::Proposal {
            zxid,
            prev_zxid,
            payload,
        }
        | Message::Inform {
            zxid,
            prev_zxid,
            payload,
        } => (*zxid, *prev_zxid, Fnv::of(payload)),
        Message::Ack { zxid } | Message::Commit { zxid } => (*zxid, 0, 0),
        Message::Ping { zxid, last_zxid } => (*zxid, *last_zxid, 0),
        Message::Request { payload } => (0, 0, Fnv::of(payload)),
        Message::Sync { token } => (*token as i64, 0, 0),
        Message::SyncReply { token, zxid } => (*token as i64, *zxid, 0),
        Message::Config { zxid, entry } => (*zxid, 0, Fnv::of(entry)),
        Message::Elect { leader } => (leader.0 as i64, 0, 0),
    }
}
