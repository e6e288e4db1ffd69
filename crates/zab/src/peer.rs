//! One server's side of ZAB, sans-IO: election, discovery, synchronization and
//! broadcast, for leaders, followers and observers.
//!
//! The caller feeds it peer messages ([`Peer::step`]), time ([`Peer::tick`]), writes
//! ([`Peer::propose`] on the leader, [`Peer::forward`] on a learner) and durability
//! ([`Peer::flush`], which syncs the log and only then acknowledges), and after each call
//! drains [`Peer::take_ready`] until it is empty: messages to send, committed entries to
//! apply in zxid order, sync tokens answered, forwarded requests (leader), snapshots to
//! install (learner) or to produce (leader), and role changes.
//!
//! It follows Apache ZooKeeper's `Leader`, `LearnerHandler`, `Learner`, `Follower` and
//! `Observer` and the Zab 1.0 phases. Differences, all invisible to clients:
//! - ACK and COMMIT are cumulative, and every PROPOSAL names the entry before it, so a
//!   lost, duplicated or reordered packet is detected (a gap sends the learner back to
//!   election, as a broken TCP stream does in ZooKeeper) and never leaves a hole.
//! - A learner applies only committed Txns: a restarted server recovers its tree from
//!   the snapshot and applies the log once the leader says what is committed, so a TRUNC
//!   never has to undo the tree (ZooKeeper reloads its database for that).
//! - Observers are synced only to the commit point and then informed of each commit.
//! - A leader whose zxid counter is exhausted steps down, as ZooKeeper does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::election::{Decision, Election, ElectionTimeouts, ServerState};
use crate::message::{Message, counter_of, epoch_of, make_zxid};
use crate::quorum::{QuorumMaj, Quorums, ServerId};
use crate::storage::{LogEntry, MetaStore, Snapshot, SnapshotStore, StorageError, TxnLog};
use crate::{Epoch, Zxid};

/// Most log entries read for one DIFF batch or one [`Ready`]'s committed list.
const READ_BATCH: usize = 10_000;

/// A SNAP travels in chunks of this size.
pub const SNAP_CHUNK_BYTES: usize = 1 << 20;

/// A sync begun with [`Peer::begin_flush`], to hand back to [`Peer::flush_done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushTicket {
    generation: u64,
    through: Zxid,
}

impl FlushTicket {
    /// The last entry the sync must cover.
    pub fn through(&self) -> Zxid {
        self.through
    }
}

/// What a peer needs from its storage.
pub trait PeerStorage: TxnLog + MetaStore + SnapshotStore {}
impl<T: TxnLog + MetaStore + SnapshotStore> PeerStorage for T {}

/// Timing, in ticks (ZooKeeper's tickTime units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTimeouts {
    /// `initLimit`: how long discovery and synchronization may take.
    pub init_limit_ticks: u32,
    /// `syncLimit`: how long a leader and a learner may not hear from each other.
    pub sync_limit_ticks: u32,
    /// Re-send FOLLOWERINFO this often while the leader has not answered.
    pub retry_ticks: u32,
    pub election: ElectionTimeouts,
}

impl Default for PeerTimeouts {
    fn default() -> Self {
        Self {
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            retry_ticks: 2,
            election: ElectionTimeouts::default(),
        }
    }
}

/// Known bugs the simulator (and, through rookery-server's `inject-bugs`, the
/// Jepsen-style harness) must catch; they take effect only with the `inject-bugs` feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// Followers ACK a proposal when it is appended, before the log is synced.
    pub ack_before_sync: bool,
    /// The leader commits a proposal as soon as it has logged it, without a quorum.
    pub commit_without_quorum: bool,
    /// A leader that lost its quorum keeps leading: it commits on its own ACK alone (a
    /// quorum of one, after its own flush) and does not step down when its followers
    /// fall silent for syncLimit. Once the others elect a new leader there are two, and
    /// what the old one committed alone is truncated when it rejoins (rookery-server's
    /// `leader-alone`).
    #[cfg(feature = "inject-bugs")]
    pub leader_alone: bool,
}

/// Reads the configuration a log entry carries, if it is a reconfiguration; the
/// entry's zxid is the configuration's version. Payloads are the host's: this is how
/// the core learns which of them change membership.
pub type ConfigInEntry = fn(Zxid, &[u8]) -> Option<QuorumMaj>;

/// For hosts whose entries never change membership.
pub fn no_configs(_: Zxid, _: &[u8]) -> Option<QuorumMaj> {
    None
}

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub self_id: ServerId,
    /// The last committed configuration the host knows (zoo.cfg's, or the one it
    /// persisted when a reconfiguration was applied).
    pub quorum: QuorumMaj,
    pub config_in_entry: ConfigInEntry,
    pub timeouts: PeerTimeouts,
    pub bugs: InjectedBugs,
    /// The leader starts moving to a new epoch when its zxid counter reaches this, so
    /// the counter never runs out under clients (see [`Message::NewEpoch`]).
    pub roll_epoch_at_counter: u32,
}

/// 2^32 - 2^16: the roll starts with 65,535 zxids to spare, and proposals made while
/// it waits for its quorum are numbered in the new epoch. Only if a roll cannot finish
/// before the counter runs out does the leader give up and hold an election, which is
/// what ZooKeeper always does there. rookery-sim runs rolls with low thresholds.
pub const DEFAULT_ROLL_EPOCH_AT_COUNTER: u32 = 0xffff_0000;

/// The role as operators see it (`Mode:` in `srvr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Looking,
    Leading,
    Following,
    Observing,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Looking => "looking",
            Role::Leading => "leader",
            Role::Following => "follower",
            Role::Observing => "observer",
        }
    }
}

/// A change the host must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Back to election: stop serving clients, drop what waits on the old leader.
    Looking,
    /// Established as leader (a quorum acked NEWLEADER) or synced as a learner (UPTODATE):
    /// serve clients.
    Serving {
        role: Role,
        leader: ServerId,
        epoch: Epoch,
    },
}

/// What the host must do after a call, in this order: install the snapshot, apply
/// `committed`, answer `synced`, produce `snapshot_requests`, send `messages`, handle
/// `requests`. Messages are already safe to send: ACKs are made only after a sync.
#[derive(Debug, Default)]
pub struct Ready {
    pub role_changes: Vec<RoleChange>,
    /// A learner's SNAP: replace the tree with this before applying anything.
    pub install_snapshot: Option<Snapshot>,
    /// Committed entries to apply, in zxid order, each exactly once.
    pub committed: Vec<LogEntry>,
    /// Sync tokens answered: everything committed when the sync was asked is in
    /// `committed` of this or an earlier Ready.
    pub synced: Vec<u64>,
    /// Leader: learners that need a snapshot; answer with [`Peer::snapshot_ready`] with
    /// the tree at [`Peer::applied_zxid`] once `committed` is applied.
    pub snapshot_requests: Vec<ServerId>,
    pub messages: Vec<(ServerId, Message)>,
    /// Leader: payloads learners forwarded with [`Peer::forward`].
    pub requests: Vec<(ServerId, Vec<u8>)>,
    /// A newer committed configuration learned from a peer while looking (the log
    /// entry that made it, and its zxid): persist it and dial its members.
    pub adopted_config: Option<(Zxid, Vec<u8>)>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.role_changes.is_empty()
            && self.install_snapshot.is_none()
            && self.committed.is_empty()
            && self.synced.is_empty()
            && self.snapshot_requests.is_empty()
            && self.messages.is_empty()
            && self.requests.is_empty()
            && self.adopted_config.is_none()
    }
}

/// Why a write or a sync could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotServing {
    #[error("this server is not serving (looking for a leader or syncing)")]
    NotServing,
    #[error("only the leader proposes")]
    NotLeader,
}

/// How far a learner has come with the leader, as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LearnerPhase {
    /// FOLLOWERINFO received; LEADERINFO sent once the epoch is known.
    Discovery,
    /// ACKEPOCH received; waiting for the leader's epoch to be settled, or for its snapshot.
    AwaitingSync,
    /// The sync stream and NEWLEADER are sent.
    Syncing,
    /// It acked NEWLEADER: its ACKs count.
    Synced,
    /// UPTODATE sent: it serves.
    UpToDate,
}

/// The leader's view of one learner (`LearnerHandler`).
#[derive(Debug, Clone)]
pub struct LearnerView {
    pub id: ServerId,
    pub observer: bool,
    pub phase: LearnerPhase,
    accepted_epoch: Epoch,
    /// From ACKEPOCH.
    last_zxid: Zxid,
    current_epoch: Epoch,
    /// Cumulative ACK.
    pub acked: Zxid,
    /// Observers: the last entry informed (or synced).
    informed: Zxid,
    last_heard_tick: u64,
    /// The epoch it has persisted as current: NEWLEADER's, then each NEWEPOCH it acked.
    epoch: Epoch,
    /// The epoch of the NEWLEADER it was sent; its ACKNEWLEADER must name it.
    newleader_epoch: Epoch,
}

impl LearnerView {
    /// How far the learner has the leader's log: what a follower acknowledged, what an
    /// observer was sent (observers never ACK).
    pub fn caught_up_to(&self) -> Zxid {
        if self.observer || self.phase >= LearnerPhase::Synced {
            // A follower's ACK of NEWLEADER covered the whole sync stream.
            self.informed.max(self.acked)
        } else {
            self.acked
        }
    }
}

#[derive(Debug)]
struct LeaderState {
    /// The new epoch, once a quorum of FOLLOWERINFOs chose it.
    new_epoch: Option<Epoch>,
    /// The first of those: this leadership's term, which epoch rolls leave alone.
    term: Epoch,
    /// Voters (and the leader) whose ACKEPOCH arrived.
    epoch_acks: BTreeSet<ServerId>,
    /// Voters that acked NEWLEADER, the leader included.
    newleader_acks: BTreeSet<ServerId>,
    established: bool,
    learners: BTreeMap<ServerId, LearnerView>,
    /// The leader's own durable point (what it would ACK).
    self_acked: Zxid,
    /// Learners' syncs: answered once commit reaches the zxid.
    syncs: Vec<(Zxid, ServerId, u64)>,
    /// An epoch roll in progress.
    rolling: Option<EpochRoll>,
    /// The fence of the latest roll: a learner that joined during it is told again.
    last_fence: Zxid,
    started_tick: u64,
    /// A leadership transfer under way: to whom, and since which tick. No proposal is
    /// taken meanwhile, so the successor can hold everything this leader has.
    transfer: Option<(ServerId, u64)>,
}

/// The leader's move to `epoch` (see [`Peer::propose`]).
#[derive(Debug)]
struct EpochRoll {
    epoch: Epoch,
    /// The old epoch's last proposal: voters must hold it before taking the new epoch.
    fence: Zxid,
    /// Voters (the leader included) that persisted the new epoch.
    acks: BTreeSet<ServerId>,
    /// Proposals numbered in the new epoch, waiting for it.
    held: Vec<(Zxid, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LearnerStage {
    /// FOLLOWERINFO sent; waiting for LEADERINFO.
    Discovery,
    /// ACKEPOCH sent; waiting for DIFF, TRUNC or SNAP.
    AwaitingBase,
    /// Receiving the sync stream, until NEWLEADER.
    Syncing,
    /// NEWLEADER acked; waiting for UPTODATE.
    AwaitingUpToDate,
    Serving,
}

#[derive(Debug)]
struct LearnerState {
    leader: ServerId,
    observer: bool,
    stage: LearnerStage,
    /// The epoch held with this leader: LEADERINFO's, then each rolled epoch from its
    /// first Txn on. ACKs go out only in it.
    epoch: Option<Epoch>,
    last_heard_tick: u64,
    last_sent_tick: u64,
    started_tick: u64,
    /// Last ACK sent (cumulative).
    acked: Zxid,
    /// A SNAP being received: its zxid, total size and the bytes so far.
    snap: Option<(Zxid, u64, Vec<u8>)>,
    /// ACKs are for this leader's proposals: those after its first epoch began.
    ack_floor: Zxid,
    /// The leader's term from LEADERINFO: what we ACKed stays ACKed across its rolls.
    term: Option<Epoch>,
}

#[derive(Debug)]
enum State {
    Looking,
    Leading(LeaderState),
    Learning(LearnerState),
}

/// One server's ZAB state machine over its storage.
#[derive(Debug)]
pub struct Peer<S: PeerStorage> {
    cfg: PeerConfig,
    storage: S,
    /// The committed configuration and those logged after it.
    quorums: Quorums,
    /// The log entry that made the committed configuration (and its zxid), to hand to
    /// peers that missed it; `None` for the configuration the host started with.
    committed_entry: Option<(Zxid, Vec<u8>)>,
    election: Election,
    state: State,
    ticks: u64,
    /// Last logged zxid (or the snapshot's, when the log is empty).
    last_zxid: Zxid,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    /// Highest zxid known committed.
    commit_zxid: Zxid,
    /// Highest zxid handed to the host to apply.
    applied_zxid: Zxid,
    /// Every log entry up to this zxid is durable (and belongs to the current log:
    /// a truncation resets it).
    durable_zxid: Zxid,
    /// Appends up to this zxid are covered by a sync begun ([`Peer::begin_flush`]) or
    /// done; appends above it need a flush.
    flush_begun: Zxid,
    /// Bumped whenever the log is cut, so a sync begun on the old log acknowledges nothing.
    log_generation: u64,
    /// Entries appended by this process and not yet applied, so applying them does not
    /// read them back; `recent_base` is the log entry before the first of them.
    recent: VecDeque<LogEntry>,
    recent_base: Zxid,
    ready: Ready,
    leader: Option<ServerId>,
    serving: bool,
    /// The last ACK sent: to which leader, in which of its terms, up to which zxid.
    /// Outlives re-handshakes with the same leader (and its epoch rolls), to recognise
    /// stale sync packets: within one term the leader never cuts below what we ACKed.
    acked_to: Option<(ServerId, Epoch, Zxid)>,
    /// Syncs of this server's clients, released once the zxid is applied: the host
    /// answers them after applying the Ready's entries, and a commit can run ahead of
    /// what one Ready holds (batches; a membership change that lets more commit).
    local_syncs: Vec<(Zxid, u64)>,
}

impl<S: PeerStorage> Peer<S> {
    /// `applied_zxid` is what the host's tree holds (the snapshot it restored): nothing
    /// later is applied until it is known committed. `storage` has recovered its log, as
    /// every implementation does when it opens.
    pub fn new(cfg: PeerConfig, storage: S, applied_zxid: Zxid) -> Result<Self, StorageError> {
        let last_zxid = storage.last_zxid().unwrap_or(0).max(applied_zxid);
        let accepted_epoch = storage.accepted_epoch()?.unwrap_or(0);
        let current_epoch = storage.current_epoch()?.unwrap_or(0);
        let mut quorums = Quorums::from(cfg.quorum.clone());
        // Configurations logged after what the host applied may be uncommitted: until
        // a leader says, every decision needs their majorities too.
        storage.visit_from(applied_zxid + 1, &mut |zxid, payload| {
            if let Some(q) = (cfg.config_in_entry)(zxid, payload) {
                if q.version() > quorums.committed().version() {
                    quorums.push_pending(zxid, q);
                }
            }
            true
        })?;
        let mut timeouts = cfg.timeouts.election;
        if quorums.voters().len() == 1 && quorums.pending().is_empty() {
            // Alone, there is no better vote to wait for.
            timeouts.finalize_wait_ticks = 0;
        }
        let mut election = Election::new(
            cfg.self_id,
            cfg.quorum.clone(),
            last_zxid,
            current_epoch,
            timeouts,
        );
        election.set_quorums(quorums.clone());
        let mut peer = Self {
            cfg,
            storage,
            quorums,
            committed_entry: None,
            election,
            state: State::Looking,
            ticks: 0,
            last_zxid,
            accepted_epoch,
            current_epoch,
            commit_zxid: applied_zxid,
            applied_zxid,
            durable_zxid: last_zxid,
            flush_begun: last_zxid,
            log_generation: 0,
            recent: VecDeque::new(),
            recent_base: 0,
            ready: Ready::default(),
            leader: None,
            serving: false,
            acked_to: None,
            local_syncs: Vec::new(),
        };
        let out = peer.election.start();
        peer.send_notifications(out);
        peer.check_decision()?;
        Ok(peer)
    }

    // ---------------------------------------------------------------------------------
    // Accessors.

    pub fn self_id(&self) -> ServerId {
        self.cfg.self_id
    }

    pub fn role(&self) -> Role {
        match &self.state {
            State::Looking => Role::Looking,
            State::Leading(_) => Role::Leading,
            State::Learning(l) if l.observer => Role::Observing,
            State::Learning(_) => Role::Following,
        }
    }

    /// Whether clients may be served: an established leader or an up-to-date learner.
    pub fn is_serving(&self) -> bool {
        self.serving
    }

    pub fn leader(&self) -> Option<ServerId> {
        self.leader
    }

    pub fn current_epoch(&self) -> Epoch {
        self.current_epoch
    }

    pub fn accepted_epoch(&self) -> Epoch {
        self.accepted_epoch
    }

    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    pub fn commit_zxid(&self) -> Zxid {
        self.commit_zxid
    }

    pub fn applied_zxid(&self) -> Zxid {
        self.applied_zxid
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// For snapshots and purges, which the consensus does not order.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    pub fn election(&self) -> &Election {
        &self.election
    }

    /// The committed configuration and any logged after it.
    pub fn quorums(&self) -> &Quorums {
        &self.quorums
    }

    /// The host installed a snapshot (a SNAP from the leader) whose tree holds
    /// `committed` as its configuration: nothing logged before it is pending any more.
    pub fn install_config(&mut self, committed: QuorumMaj) {
        self.quorums.reset(committed);
        self.configs_changed(true);
    }

    /// The log entry (in the host's format, which `config_in_entry` reads) that made
    /// the committed configuration the host started with, so this server can hand it
    /// to peers that missed it.
    pub fn set_committed_entry(&mut self, zxid: Zxid, entry: Vec<u8>) {
        if zxid == self.quorums.committed().version() {
            self.committed_entry = Some((zxid, entry));
        }
    }

    /// Syncs the leader has not answered yet, its own clients' included (0 elsewhere).
    pub fn pending_syncs(&self) -> usize {
        match &self.state {
            State::Leading(l) => l.syncs.len() + self.local_syncs.len(),
            _ => 0,
        }
    }

    /// The leader's learners (empty elsewhere).
    pub fn learners(&self) -> Vec<LearnerView> {
        match &self.state {
            State::Leading(l) => l.learners.values().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// What to do now; call until it returns an empty Ready (committed entries come
    /// in bounded batches).
    pub fn take_ready(&mut self) -> Result<Ready, StorageError> {
        self.collect_committed()?;
        let applied = self.applied_zxid;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.local_syncs)
            .into_iter()
            .partition(|(z, _)| *z <= applied);
        self.local_syncs = waiting;
        self.ready.synced.extend(done.into_iter().map(|(_, t)| t));
        Ok(std::mem::take(&mut self.ready))
    }

    // ---------------------------------------------------------------------------------
    // Inputs.

    /// Handles one message from `from`.
    pub fn step(&mut self, from: ServerId, msg: Message) -> Result<(), StorageError> {
        self.election.heard_from(from);
        if let Message::Notification(n) = msg {
            if let Some((zxid, entry)) = &self.committed_entry {
                // Notifications carry the sender's committed configuration's version.
                if n.state == crate::election::ServerState::Looking && n.config_version < *zxid {
                    let (zxid, entry) = (*zxid, entry.clone());
                    self.send(from, Message::Config { zxid, entry });
                }
            }
            let out = self.election.step(from, n);
            self.send_notifications(out);
            return self.check_decision();
        }
        if let Message::Config { zxid, entry } = msg {
            self.adopt_config(zxid, entry);
            return self.check_decision();
        }
        match &self.state {
            State::Looking => Ok(()),
            State::Leading(_) => self.leader_step(from, msg),
            State::Learning(l) if l.leader == from => self.learner_step(msg),
            State::Learning(_) => Ok(()),
        }
    }

    /// Advances time by one tick.
    pub fn tick(&mut self) -> Result<(), StorageError> {
        self.ticks += 1;
        match &self.state {
            State::Looking => {
                if self.election.decision().is_some()
                    && !self.quorums.is_member(self.cfg.self_id)
                    && self.ticks % u64::from(self.cfg.timeouts.init_limit_ticks.max(1)) == 0
                {
                    // Removed: ask around now and then, in case we were added back
                    // (a member answers with its newer configuration).
                    let out = self.election.restart(self.last_zxid, self.current_epoch);
                    self.send_notifications(out);
                }
                let out = self.election.tick();
                self.send_notifications(out);
                self.check_decision()
            }
            State::Leading(_) => self.leader_tick(),
            State::Learning(_) => self.learner_tick(),
        }
    }

    /// Makes every appended entry durable, then acknowledges: a follower ACKs, the
    /// leader counts its own ACK. Call once per batch of appends (group commit).
    /// [`Peer::begin_flush`] and [`Peer::flush_done`] are the same in two halves, for a
    /// host that syncs on another thread.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if let Some(ticket) = self.begin_flush() {
            self.storage.sync()?;
            return self.flush_done(ticket);
        }
        self.acknowledge_durable()
    }

    /// Starts a group commit the host runs elsewhere: it must make every entry
    /// appended so far durable (a sync of the storage begun after this call does), go
    /// on appending meanwhile if it likes, and then call [`Peer::flush_done`]. `None`
    /// when nothing new is appended. Overlapping the fsync with the next round's work
    /// is the point; one in flight at a time is enough for that.
    pub fn begin_flush(&mut self) -> Option<FlushTicket> {
        if self.last_zxid <= self.flush_begun {
            return None;
        }
        self.flush_begun = self.last_zxid;
        Some(FlushTicket {
            generation: self.log_generation,
            through: self.last_zxid,
        })
    }

    /// The sync of `ticket` is done: acknowledges what it made durable. A ticket from
    /// before a truncation acknowledges nothing, since the entries it covered may be
    /// gone (a new one covers what is appended now).
    pub fn flush_done(&mut self, ticket: FlushTicket) -> Result<(), StorageError> {
        if ticket.generation == self.log_generation && ticket.through > self.durable_zxid {
            self.durable_zxid = ticket.through;
        }
        self.acknowledge_durable()
    }

    /// Syncs now, inside a protocol step that needs the whole log durable first.
    fn sync_log(&mut self) -> Result<(), StorageError> {
        self.storage.sync()?;
        self.durable_zxid = self.last_zxid;
        self.flush_begun = self.last_zxid;
        Ok(())
    }

    /// [`Peer::sync_log`] unless all that is logged is durable already.
    fn sync_log_if_behind(&mut self) -> Result<(), StorageError> {
        if self.durable_zxid < self.last_zxid {
            self.sync_log()?;
        }
        Ok(())
    }

    /// Cuts the log after `after` (truncation is durable). It then ends at the last
    /// entry storage holds, or at what is applied if that is later (a snapshot just
    /// installed). Configurations logged past the end never happened, and a flush
    /// begun before the cut acknowledges nothing.
    fn cut_log_after(&mut self, after: Zxid) -> Result<(), StorageError> {
        self.storage.truncate_after(after)?;
        self.recent.clear();
        self.last_zxid = self.storage.last_zxid().unwrap_or(0).max(self.applied_zxid);
        self.log_generation += 1;
        self.durable_zxid = self.last_zxid;
        self.flush_begun = self.last_zxid;
        let before = self.quorums.pending().len();
        self.quorums.truncate_after(after.min(self.last_zxid));
        if self.quorums.pending().len() != before {
            self.election.set_quorums(self.quorums.clone());
        }
        Ok(())
    }

    /// After a sync (by [`Peer::flush`] or one the protocol needed): ACK what is durable.
    fn acknowledge_durable(&mut self) -> Result<(), StorageError> {
        self.acknowledge_through(self.durable_zxid)
    }

    /// The leader counts its own ACK up to `through`; a learner ACKs what is durable.
    fn acknowledge_through(&mut self, through: Zxid) -> Result<(), StorageError> {
        match &mut self.state {
            State::Leading(l) => {
                l.self_acked = through;
                self.try_commit()?;
                self.check_transfer();
            }
            State::Learning(_) => self.send_ack(),
            State::Looking => {}
        }
        Ok(())
    }

    /// Acknowledges what is appended as [`Peer::flush`] would, but without syncing: the
    /// leader counts its own ACK and a learner ACKs (the latter only with
    /// [`InjectedBugs::ack_before_sync`], which also makes it ACK each proposal as it
    /// arrives). A host that calls this instead of `flush` and syncs only now and then
    /// answers writes a crash of every server can still lose (rookery-server's
    /// `ack-before-durable`).
    #[cfg(feature = "inject-bugs")]
    pub fn acknowledge_unsynced(&mut self) -> Result<(), StorageError> {
        self.acknowledge_through(self.last_zxid)
    }

    /// Whether appends wait for a flush to begin ([`Peer::flush`] or
    /// [`Peer::begin_flush`] has something to do).
    pub fn needs_flush(&self) -> bool {
        self.last_zxid > self.flush_begun
    }

    /// Every log entry up to this zxid is durable. A host snapshots its tree only at or
    /// below it, so a crash never leaves a snapshot ahead of the log it follows.
    pub fn durable_zxid(&self) -> Zxid {
        self.durable_zxid
    }

    /// Leader: appends a Txn built for the next zxid and sends it to the voters. It is
    /// committed once a quorum, this server included (after [`Peer::flush`]), has it.
    pub fn propose(&mut self, build: impl FnOnce(Zxid) -> Vec<u8>) -> Result<Zxid, ProposeError> {
        let State::Leading(l) = &mut self.state else {
            return Err(ProposeError::NotServing(NotServing::NotLeader));
        };
        if !l.established || l.transfer.is_some() {
            return Err(ProposeError::NotServing(NotServing::NotServing));
        }
        if let Some(roll) = &mut l.rolling {
            // Behind the fence: numbered in the new epoch, logged once a quorum has it.
            let zxid = roll
                .held
                .last()
                .map_or(make_zxid(roll.epoch, 1), |(z, _)| z + 1);
            roll.held.push((zxid, build(zxid)));
            return Ok(zxid);
        }
        let epoch = self.current_epoch;
        let zxid = if epoch_of(self.last_zxid) == epoch {
            if self.last_zxid & 0xffff_ffff == 0xffff_ffff {
                // Only if a roll could not finish: ZooKeeper's answer, an election.
                self.go_looking("zxid counter exhausted; a new epoch is needed");
                return Err(ProposeError::NotServing(NotServing::NotServing));
            }
            self.last_zxid + 1
        } else {
            make_zxid(epoch, 1)
        };
        let payload = build(zxid);
        self.append_and_broadcast(zxid, payload)?;
        #[cfg(feature = "inject-bugs")]
        if self.cfg.bugs.commit_without_quorum {
            if let State::Leading(l) = &mut self.state {
                l.self_acked = zxid;
            }
            self.advance_commit(zxid);
        }
        if counter_of(zxid) >= self.cfg.roll_epoch_at_counter {
            self.start_epoch_roll(0)?;
        }
        Ok(zxid)
    }

    /// Leader: logs a proposal and sends it to every voter being synced or in sync.
    fn append_and_broadcast(&mut self, zxid: Zxid, payload: Vec<u8>) -> Result<(), StorageError> {
        let prev_zxid = self.last_zxid;
        self.append(zxid, payload)?;
        let State::Leading(l) = &self.state else {
            return Ok(());
        };
        // The payload now lives in `recent`: each voter gets a copy of that one.
        let Some(entry) = self.recent.back() else {
            return Ok(());
        };
        let proposals: Vec<(ServerId, Message)> = l
            .learners
            .values()
            .filter(|v| !v.observer && v.phase >= LearnerPhase::Syncing)
            .map(|v| {
                let payload = entry.payload.clone();
                let proposal = Message::Proposal {
                    zxid,
                    prev_zxid,
                    payload,
                };
                (v.id, proposal)
            })
            .collect();
        self.ready.messages.extend(proposals);
        Ok(())
    }

    /// Leader: fences the current epoch at its last proposal and asks the learners to
    /// take the next one once they hold everything up to the fence. Like NEWLEADER
    /// without a sync: a voter that makes the new epoch its currentEpoch must have the
    /// whole old one, or an election could prefer it over a server holding commits.
    /// Proposals meanwhile are numbered in the new epoch and held back.
    /// `at_least`: an epoch some server has accepted, which the new one must exceed.
    fn start_epoch_roll(&mut self, at_least: Epoch) -> Result<(), StorageError> {
        let next = self.accepted_epoch.max(self.current_epoch).max(at_least) + 1;
        let fence = self.last_zxid;
        let self_id = self.cfg.self_id;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        if l.rolling.is_some() {
            return Ok(());
        }
        self.storage.set_accepted_epoch(next)?;
        self.accepted_epoch = next;
        // Followers that promise announce the new epoch in their settled vote; so does
        // the leader, or a server joining during the roll would never see a quorum of
        // them agree with it (and the roll may need that server to finish).
        self.election.update_election_vote(next);
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        l.rolling = Some(EpochRoll {
            epoch: next,
            fence,
            acks: BTreeSet::from([self_id]),
            held: Vec::new(),
        });
        l.last_fence = fence;
        // Observers get no NEWEPOCH: they never hold the fence (they learn only what
        // is committed) and never vote; they take the epoch from its first INFORM.
        let to: Vec<ServerId> = l
            .learners
            .values()
            .filter(|v| !v.observer && v.phase >= LearnerPhase::Synced)
            .map(|v| v.id)
            .collect();
        for id in to {
            self.send(
                id,
                Message::NewEpoch {
                    epoch: next,
                    last_zxid: fence,
                },
            );
        }
        // A leader that is a quorum alone (one voter) has persisted it already.
        self.finish_epoch_roll()
    }

    /// A quorum holds the fenced history and persisted the new epoch: it becomes this
    /// leader's epoch, and the proposals held back go out.
    fn finish_epoch_roll(&mut self) -> Result<(), StorageError> {
        let quorum = self.quorums.clone();
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let Some(roll) = &l.rolling else {
            return Ok(());
        };
        if !quorum.contains_quorum(roll.acks.iter()) {
            return Ok(());
        }
        let Some(roll) = l.rolling.take() else {
            return Ok(());
        };
        l.new_epoch = Some(roll.epoch);
        // Our own history up to the fence is durable before we claim the epoch.
        self.sync_log_if_behind()?;
        self.storage.set_current_epoch(roll.epoch)?;
        self.current_epoch = roll.epoch;
        self.election.update_election_vote(roll.epoch);
        self.acknowledge_durable()?;
        for (zxid, payload) in roll.held {
            self.append_and_broadcast(zxid, payload)?;
        }
        Ok(())
    }

    /// Leader: hands leadership to `to` (or to the voter furthest along) once it holds
    /// everything this leader has logged. Proposals are refused meanwhile; the leader
    /// then steps down and asks the voters to elect the successor, which wins among
    /// equally up-to-date candidates. Gives up after initLimit (proposals resume).
    pub fn transfer_leadership(&mut self, to: Option<ServerId>) -> Result<ServerId, TransferError> {
        let me = self.cfg.self_id;
        let quorums = self.quorums.clone();
        let ticks = self.ticks;
        let State::Leading(l) = &mut self.state else {
            return Err(TransferError::NotLeader);
        };
        if !l.established {
            return Err(TransferError::NotLeader);
        }
        if l.rolling.is_some() || !quorums.pending().is_empty() {
            return Err(TransferError::Busy);
        }
        let eligible = |v: &LearnerView| {
            !v.observer && v.phase >= LearnerPhase::Synced && quorums.committed().is_voter(v.id)
        };
        let target = match to {
            Some(t) if t == me => return Err(TransferError::AlreadyLeader),
            Some(t) => match l.learners.get(&t) {
                Some(v) if eligible(v) => t,
                _ => return Err(TransferError::NotEligible(t)),
            },
            None => l
                .learners
                .values()
                .filter(|v| eligible(v))
                .max_by_key(|v| (v.acked, v.id))
                .map(|v| v.id)
                .ok_or(TransferError::NoCandidate)?,
        };
        l.transfer = Some((target, ticks));
        self.check_transfer();
        Ok(target)
    }

    /// The successor holds all we logged, durably: step down and let it be elected.
    fn check_transfer(&mut self) {
        let last = self.last_zxid;
        let Some(l) = self.leader_state() else {
            return;
        };
        let Some((target, _)) = l.transfer else {
            return;
        };
        let caught_up = l.self_acked == last
            && l.learners
                .get(&target)
                .is_some_and(|v| v.phase >= LearnerPhase::Synced && v.caught_up_to() >= last);
        if !caught_up {
            return;
        }
        let voters: Vec<ServerId> = l
            .learners
            .values()
            .filter(|v| !v.observer && v.phase >= LearnerPhase::Synced)
            .map(|v| v.id)
            .collect();
        for id in voters {
            self.send(id, Message::Elect { leader: target });
        }
        self.election.prefer(target);
        self.go_looking("leadership transferred");
    }

    /// The transport lost its connection from `from`. A learner whose leader it was
    /// looks for a leader at once rather than after syncLimit, as a ZooKeeper follower
    /// does when its socket to the leader breaks; an election stops expecting a vote
    /// from it (see [`Election::link_lost`]).
    pub fn link_lost(&mut self, from: ServerId) -> Result<(), StorageError> {
        self.election.link_lost(from);
        if matches!(&self.state, State::Learning(l) if l.leader == from) {
            self.go_looking("the connection from the leader broke");
        }
        self.check_decision()
    }

    /// Learner: sends a payload (a write or session touches) to the leader.
    pub fn forward(&mut self, payload: Vec<u8>) -> Result<(), NotServing> {
        match &self.state {
            State::Learning(l) if l.stage == LearnerStage::Serving => {
                let leader = l.leader;
                self.send(leader, Message::Request { payload });
                Ok(())
            }
            State::Leading(_) => Err(NotServing::NotLeader),
            _ => Err(NotServing::NotServing),
        }
    }

    /// ZooKeeper's `sync`: `token` appears in [`Ready::synced`] once this server has
    /// applied everything the leader had proposed when the sync reached it.
    pub fn sync(&mut self, token: u64) -> Result<(), NotServing> {
        if !self.serving {
            return Err(NotServing::NotServing);
        }
        match &mut self.state {
            State::Leading(_) => {
                self.local_syncs.push((self.last_zxid, token));
                Ok(())
            }
            State::Learning(l) => {
                let leader = l.leader;
                self.send(leader, Message::Sync { token });
                Ok(())
            }
            State::Looking => Err(NotServing::NotServing),
        }
    }

    /// Leader: the snapshot a learner asked for ([`Ready::snapshot_requests`]): the
    /// tree at `zxid`, which must be this server's applied zxid when it was taken.
    pub fn snapshot_ready(
        &mut self,
        to: ServerId,
        zxid: Zxid,
        data: Vec<u8>,
    ) -> Result<(), StorageError> {
        let State::Leading(l) = &mut self.state else {
            return Ok(());
        };
        let Some(view) = l.learners.get_mut(&to) else {
            return Ok(());
        };
        if view.phase != LearnerPhase::AwaitingSync || zxid > self.commit_zxid {
            return Ok(());
        }
        view.phase = LearnerPhase::Syncing;
        let term = l.term;
        let total = data.len() as u64;
        let mut offset = 0u64;
        for chunk in data.chunks(SNAP_CHUNK_BYTES) {
            self.send(
                to,
                Message::Snap {
                    zxid,
                    term,
                    offset,
                    total,
                    data: chunk.to_vec(),
                },
            );
            offset += chunk.len() as u64;
        }
        if data.is_empty() {
            self.send(
                to,
                Message::Snap {
                    zxid,
                    term,
                    offset: 0,
                    total: 0,
                    data: Vec::new(),
                },
            );
        }
        self.send_sync_tail(to, zxid)
    }

    // ---------------------------------------------------------------------------------
    // Election and role changes.

    fn send_notifications(&mut self, out: Vec<crate::election::Outgoing>) {
        for o in out {
            self.ready
                .messages
                .push((o.to, Message::Notification(o.notification)));
        }
    }

    fn check_decision(&mut self) -> Result<(), StorageError> {
        if !matches!(self.state, State::Looking) {
            return Ok(());
        }
        let Some(decision) = self.election.decision().copied() else {
            return Ok(());
        };
        self.start_role(decision)
    }

    fn start_role(&mut self, d: Decision) -> Result<(), StorageError> {
        if !self.quorums.is_member(self.cfg.self_id) {
            // Removed from the ensemble: nobody would sync us.
            return Ok(());
        }
        self.leader = Some(d.leader);
        match d.state {
            ServerState::Leading => {
                // Whatever the log holds is this leader's history and must be durable
                // before anyone counts on it.
                self.sync_log()?;
                let mut l = LeaderState {
                    new_epoch: None,
                    term: 0,
                    epoch_acks: BTreeSet::new(),
                    newleader_acks: BTreeSet::new(),
                    established: false,
                    learners: BTreeMap::new(),
                    self_acked: self.last_zxid,
                    syncs: Vec::new(),
                    rolling: None,
                    last_fence: 0,
                    started_tick: self.ticks,
                    transfer: None,
                };
                l.epoch_acks.insert(self.cfg.self_id);
                self.state = State::Leading(l);
                self.maybe_choose_epoch()?;
            }
            ServerState::Following | ServerState::Observing => {
                let observer = d.state == ServerState::Observing;
                self.state = State::Learning(LearnerState {
                    leader: d.leader,
                    observer,
                    stage: LearnerStage::Discovery,
                    epoch: None,
                    last_heard_tick: self.ticks,
                    last_sent_tick: self.ticks,
                    started_tick: self.ticks,
                    acked: 0,
                    snap: None,
                    ack_floor: Zxid::MAX,
                    term: None,
                });
                self.send_follower_info();
            }
            ServerState::Looking => {}
        }
        Ok(())
    }

    /// Back to election, with the log as it is now.
    fn go_looking(&mut self, _why: &str) {
        if matches!(self.state, State::Looking) {
            return;
        }
        self.state = State::Looking;
        self.leader = None;
        self.serving = false;
        self.local_syncs.clear();
        self.ready.role_changes.push(RoleChange::Looking);
        let out = self.election.restart(self.last_zxid, self.current_epoch);
        self.send_notifications(out);
        // A single voter decides at once.
        let _ = self.check_decision();
    }

    fn send(&mut self, to: ServerId, msg: Message) {
        self.ready.messages.push((to, msg));
    }

    /// Takes the payload by value: it is kept in `recent` until applied.
    fn append(&mut self, zxid: Zxid, payload: Vec<u8>) -> Result<(), StorageError> {
        self.storage.append(zxid, &payload)?;
        if self.recent.is_empty() {
            self.recent_base = self.last_zxid;
        }
        let config = (self.cfg.config_in_entry)(zxid, &payload);
        self.recent.push_back(LogEntry { zxid, payload });
        self.last_zxid = zxid;
        if let Some(q) = config {
            // Counted from the moment it is logged (ZooKeeper's lastSeenQuorumVerifier).
            self.quorums.push_pending(zxid, q);
            self.configs_changed(false);
        }
        Ok(())
    }

    /// A peer's committed configuration, newer than ours: we missed its commit (we
    /// were down). Taken only while looking, as ZooKeeper's election does: it says who
    /// votes, so we can find the leader; the sync that follows brings the log.
    fn adopt_config(&mut self, zxid: Zxid, entry: Vec<u8>) {
        if !matches!(self.state, State::Looking) || zxid <= self.quorums.committed().version() {
            return;
        }
        let Some(q) = (self.cfg.config_in_entry)(zxid, &entry) else {
            return;
        };
        self.quorums.commit(zxid, q);
        self.committed_entry = Some((zxid, entry.clone()));
        self.ready.adopted_config = Some((zxid, entry));
        self.configs_changed(true);
        // Our vote went out under the old membership: tell the new one.
        let out = self.election.restart(self.last_zxid, self.current_epoch);
        self.send_notifications(out);
    }

    /// Committed entries just handed to the host: a configuration among them is the
    /// configuration from now on.
    /// Returns whether one was.
    fn activate_committed_configs(&mut self, from_index: usize) -> bool {
        let found: Vec<(Zxid, QuorumMaj, &Vec<u8>)> = self.ready.committed[from_index..]
            .iter()
            .filter_map(|e| {
                (self.cfg.config_in_entry)(e.zxid, &e.payload).map(|q| (e.zxid, q, &e.payload))
            })
            .collect();
        if found.is_empty() {
            return false;
        }
        let mut last = None;
        for (zxid, q, payload) in found {
            self.quorums.commit(zxid, q);
            last = Some((zxid, payload.clone()));
        }
        self.committed_entry = last;
        self.configs_changed(true);
        true
    }

    /// Moves the commit point forward (never past what is logged) and answers syncs.
    fn advance_commit(&mut self, zxid: Zxid) {
        let zxid = zxid.min(self.last_zxid);
        if zxid > self.commit_zxid {
            self.commit_zxid = zxid;
        }
    }

    /// Reads committed entries the host has not applied into the Ready.
    fn collect_committed(&mut self) -> Result<(), StorageError> {
        let from_index = self.ready.committed.len();
        self.read_committed()?;
        if self.activate_committed_configs(from_index) && matches!(self.state, State::Leading(_)) {
            // Fewer voters may need to hold what is logged now: commit it, and finish
            // an epoch roll that waited for a voter the change took away.
            self.try_commit()?;
            self.finish_epoch_roll()?;
        }
        Ok(())
    }

    fn read_committed(&mut self) -> Result<(), StorageError> {
        if self.commit_zxid <= self.applied_zxid || !self.ready.committed.is_empty() {
            return Ok(());
        }
        // The hot path: what this process appended is still in memory.
        while self
            .recent
            .front()
            .is_some_and(|e| e.zxid <= self.applied_zxid)
        {
            if let Some(e) = self.recent.pop_front() {
                self.recent_base = e.zxid;
            }
        }
        if self.recent_base <= self.applied_zxid && !self.recent.is_empty() {
            while self
                .recent
                .front()
                .is_some_and(|e| e.zxid <= self.commit_zxid)
            {
                if let Some(e) = self.recent.pop_front() {
                    self.recent_base = e.zxid;
                    self.applied_zxid = e.zxid;
                    self.ready.committed.push(e);
                }
            }
            return Ok(());
        }
        for e in self
            .storage
            .entries_from(self.applied_zxid + 1, READ_BATCH)?
        {
            if e.zxid > self.commit_zxid {
                break;
            }
            self.applied_zxid = e.zxid;
            self.ready.committed.push(e);
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------
    // Leader.

    fn leader_state(&mut self) -> Option<&mut LeaderState> {
        match &mut self.state {
            State::Leading(l) => Some(l),
            _ => None,
        }
    }

    fn leader_step(&mut self, from: ServerId, msg: Message) -> Result<(), StorageError> {
        let ticks = self.ticks;
        let is_member = self.quorums.is_member(from);
        if !is_member {
            return Ok(());
        }
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        if let Some(v) = l.learners.get_mut(&from) {
            v.last_heard_tick = ticks;
        }
        match msg {
            Message::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            } => {
                // The leader's configurations decide: an observer being promoted
                // is synced as a follower, so its ACKs count for the new voters.
                let _ = observer;
                let observer = !self.quorums.is_voter(from);
                let Some(l) = self.leader_state() else {
                    return Ok(());
                };
                // A (re)connecting learner starts over.
                l.epoch_acks.remove(&from);
                l.newleader_acks.remove(&from);
                l.learners.insert(
                    from,
                    LearnerView {
                        id: from,
                        observer,
                        phase: LearnerPhase::Discovery,
                        accepted_epoch,
                        last_zxid,
                        current_epoch: -1,
                        acked: 0,
                        informed: 0,
                        last_heard_tick: ticks,
                        epoch: -1,
                        newleader_epoch: -1,
                    },
                );
                let term = l.term;
                let established = l.established;
                match l.new_epoch {
                    Some(e) => {
                        self.send(
                            from,
                            Message::LeaderInfo {
                                new_epoch: e,
                                term,
                                observer,
                            },
                        );
                        // A server that promised a later epoch (to a leader that never
                        // got going) refuses this one. ZooKeeper leaves it out until
                        // the leader changes; rolling to an epoch above its promise
                        // lets it in when it tries again.
                        if established && accepted_epoch > e {
                            self.start_epoch_roll(accepted_epoch)?;
                        }
                    }
                    None => self.maybe_choose_epoch()?,
                }
            }
            Message::AckEpoch {
                current_epoch,
                last_zxid,
                observer,
            } => {
                let (leader_epoch, leader_last) = (self.current_epoch, self.last_zxid);
                // Only a voter of the committed configuration proposes itself in an
                // election, so only its vote says its history is no later than ours.
                let could_lead = self.quorums.weight(from) > 0;
                let Some(l) = self.leader_state() else {
                    return Ok(());
                };
                let Some(v) = l.learners.get_mut(&from) else {
                    return Ok(());
                };
                if v.phase != LearnerPhase::Discovery {
                    return Ok(());
                }
                if v.observer != observer {
                    // It took its role from a LEADERINFO of an earlier handshake: the
                    // two would never agree on whether its ACKs count (found in review).
                    self.resync_learner(from);
                    return Ok(());
                }
                v.phase = LearnerPhase::AwaitingSync;
                v.current_epoch = current_epoch;
                v.last_zxid = last_zxid;
                let voter = !v.observer;
                if !l.established
                    && could_lead
                    && (current_epoch, last_zxid) > (leader_epoch, leader_last)
                {
                    // waitForEpochAck: a follower is ahead of us; we must not lead.
                    // A voter of a pending configuration only may be ahead: it defers
                    // to candidates in elections whatever it holds, and what it holds
                    // beyond us is uncommitted (a commit needs a majority of the
                    // committed configuration, and one of those voted for us, so no
                    // later than us). The sync cuts it back (TRUNC).
                    self.go_looking("a follower has a later history");
                    return Ok(());
                }
                if voter {
                    l.epoch_acks.insert(from);
                }
                self.maybe_start_syncs()?;
            }
            Message::AckNewLeader { epoch } => {
                let established;
                let observer;
                {
                    let Some(l) = self.leader_state() else {
                        return Ok(());
                    };
                    let Some(v) = l.learners.get_mut(&from) else {
                        return Ok(());
                    };
                    // The epoch of the NEWLEADER this learner was sent: a roll may have
                    // moved the leader on since (the tick then sends it NEWEPOCH).
                    if v.phase != LearnerPhase::Syncing || epoch != v.newleader_epoch {
                        return Ok(());
                    }
                    observer = v.observer;
                    v.phase = LearnerPhase::Synced;
                    v.epoch = epoch;
                    if !v.observer {
                        l.newleader_acks.insert(from);
                    }
                    established = l.established;
                }
                let roll = self.leader_state().and_then(|l| l.rolling.as_ref());
                if let (Some(roll), false) = (roll, observer) {
                    let (epoch, last_zxid) = (roll.epoch, roll.fence);
                    self.send(from, Message::NewEpoch { epoch, last_zxid });
                }
                if established {
                    self.send_up_to_date(from)?;
                } else {
                    self.maybe_establish()?;
                }
                self.try_commit()?;
            }
            Message::Ack { zxid } => {
                let Some(l) = self.leader_state() else {
                    return Ok(());
                };
                if let Some(v) = l.learners.get_mut(&from) {
                    if v.phase >= LearnerPhase::Synced && zxid > v.acked {
                        v.acked = zxid;
                    }
                }
                self.try_commit()?;
                self.check_transfer();
            }
            Message::AckNewEpoch { epoch } => {
                let Some(l) = self.leader_state() else {
                    return Ok(());
                };
                let synced_voter = match l.learners.get_mut(&from) {
                    Some(v) if v.phase >= LearnerPhase::Synced => {
                        v.epoch = v.epoch.max(epoch);
                        !v.observer
                    }
                    _ => false,
                };
                if let Some(roll) = &mut l.rolling {
                    if roll.epoch == epoch && synced_voter {
                        roll.acks.insert(from);
                    }
                }
                self.finish_epoch_roll()?;
            }
            Message::Ping { .. } => {}
            Message::Request { payload } => {
                let Some(l) = self.leader_state() else {
                    return Ok(());
                };
                let up = l
                    .learners
                    .get(&from)
                    .is_some_and(|v| v.phase == LearnerPhase::UpToDate);
                if up && l.established {
                    self.ready.requests.push((from, payload));
                }
            }
            Message::Sync { token } => {
                let last = self.last_zxid;
                let Some(l) = self.leader_state() else {
                    return Ok(());
                };
                let up = l
                    .learners
                    .get(&from)
                    .is_some_and(|v| v.phase == LearnerPhase::UpToDate);
                if up {
                    l.syncs.push((last, from, token));
                    self.resolve_syncs();
                }
            }
            // Another server thinks it leads this epoch, or stale learner-bound packets.
            _ => {}
        }
        Ok(())
    }

    /// `getEpochToPropose`: once a quorum of voters (the leader included) reported
    /// their acceptedEpoch, the new epoch is one past the largest.
    fn maybe_choose_epoch(&mut self) -> Result<(), StorageError> {
        let self_id = self.cfg.self_id;
        let accepted = self.accepted_epoch;
        let quorum = self.quorums.clone();
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        if l.new_epoch.is_some() {
            return Ok(());
        }
        let voters: Vec<&LearnerView> = l.learners.values().filter(|v| !v.observer).collect();
        let ids: Vec<ServerId> = voters.iter().map(|v| v.id).chain([self_id]).collect();
        if !quorum.contains_quorum(ids.iter()) {
            return Ok(());
        }
        let max = voters
            .iter()
            .map(|v| v.accepted_epoch)
            .chain([accepted])
            .max()
            .unwrap_or(accepted);
        let new_epoch = max + 1;
        self.storage.set_accepted_epoch(new_epoch)?;
        self.accepted_epoch = new_epoch;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        l.new_epoch = Some(new_epoch);
        l.term = new_epoch;
        let to: Vec<(ServerId, bool)> = l.learners.values().map(|v| (v.id, v.observer)).collect();
        for (id, observer) in to {
            self.send(
                id,
                Message::LeaderInfo {
                    new_epoch,
                    term: new_epoch,
                    observer,
                },
            );
        }
        self.maybe_start_syncs()
    }

    /// `waitForEpochAck` done: sync every learner that acked; later ones at once.
    fn maybe_start_syncs(&mut self) -> Result<(), StorageError> {
        let quorum = self.quorums.clone();
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let Some(new_epoch) = l.new_epoch else {
            return Ok(());
        };
        if !l.established && !quorum.contains_quorum(l.epoch_acks.iter()) {
            return Ok(());
        }
        if self.current_epoch != new_epoch {
            // The leader accepts its own history for the new epoch (its NEWLEADER ack).
            self.storage.set_current_epoch(new_epoch)?;
            self.current_epoch = new_epoch;
            self.election.update_election_vote(new_epoch);
            let self_id = self.cfg.self_id;
            if let Some(l) = self.leader_state() {
                l.newleader_acks.insert(self_id);
            }
        }
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let waiting: Vec<ServerId> = l
            .learners
            .values()
            .filter(|v| v.phase == LearnerPhase::AwaitingSync)
            .map(|v| v.id)
            .collect();
        for id in waiting {
            self.sync_learner(id)?;
        }
        self.maybe_establish()?;
        Ok(())
    }

    /// `LearnerHandler.syncFollower`: DIFF, TRUNC or SNAP, the entries after it, then
    /// NEWLEADER.
    fn sync_learner(&mut self, id: ServerId) -> Result<(), StorageError> {
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let Some(v) = l.learners.get(&id) else {
            return Ok(());
        };
        let peer_last = v.last_zxid;
        let leader_last = self.last_zxid;
        let base = self.common_point(peer_last, leader_last)?;
        // DIFF needs every entry after the base still in the log: the base itself must
        // be there (a fresh learner at zero gets a SNAP, since the log may be purged).
        let diff_ok = base == leader_last || self.entry_exists(base)?;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let Some(v) = l.learners.get_mut(&id) else {
            return Ok(());
        };
        if !diff_ok {
            // SNAP: the host serializes the tree at its applied zxid.
            self.ready.snapshot_requests.push(id);
            return Ok(());
        }
        v.phase = LearnerPhase::Syncing;
        let term = l.term;
        if base == peer_last {
            self.send(
                id,
                Message::Diff {
                    last_zxid: base,
                    term,
                },
            );
        } else {
            self.send(id, Message::Trunc { zxid: base, term });
        }
        self.send_sync_tail(id, base)
    }

    /// The last entry both the learner (whose log ends at `peer_last`) and the leader
    /// (through `leader_last`) hold. Within one epoch histories are contiguous runs of
    /// the same proposals, so the learner's epoch tells how far they agree.
    fn common_point(&self, peer_last: Zxid, leader_last: Zxid) -> Result<Zxid, StorageError> {
        if peer_last >= leader_last
            && (peer_last == leader_last || leader_last == 0 || self.entry_exists(leader_last)?)
        {
            return Ok(leader_last);
        }
        if self.entry_exists(peer_last)? || peer_last == 0 {
            return Ok(peer_last.min(leader_last));
        }
        // The learner's last entry is not ours: cut it back to our last entry before it.
        // Zero if none: then only a SNAP can sync it.
        let mut best = 0;
        let mut from = self.storage.first_zxid()?.unwrap_or(0);
        loop {
            let batch = self.storage.entries_from(from, READ_BATCH)?;
            let Some(last) = batch.last().map(|e| e.zxid) else {
                break;
            };
            for e in &batch {
                if e.zxid < peer_last && e.zxid <= leader_last {
                    best = e.zxid;
                }
            }
            if last >= peer_last {
                break;
            }
            from = last + 1;
        }
        Ok(best)
    }

    fn entry_exists(&self, zxid: Zxid) -> Result<bool, StorageError> {
        if zxid == 0 {
            return Ok(false);
        }
        Ok(self
            .storage
            .entries_from(zxid, 1)?
            .first()
            .is_some_and(|e| e.zxid == zxid))
    }

    /// After the base: every entry up to the leader's last (observers too; they apply
    /// what later COMMITs cover), then NEWLEADER.
    fn send_sync_tail(&mut self, id: ServerId, base: Zxid) -> Result<(), StorageError> {
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        if !l.learners.contains_key(&id) {
            return Ok(());
        }
        let Some(epoch) = l.new_epoch else {
            return Ok(());
        };
        let until = self.last_zxid;
        let mut prev = base;
        let mut from = base + 1;
        'read: loop {
            let batch = self.storage.entries_from(from, READ_BATCH)?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                if e.zxid > until {
                    break 'read;
                }
                from = e.zxid + 1;
                let zxid = e.zxid;
                self.send(
                    id,
                    Message::Proposal {
                        zxid,
                        prev_zxid: prev,
                        payload: e.payload,
                    },
                );
                prev = zxid;
            }
        }
        if let Some(l) = self.leader_state() {
            if let Some(v) = l.learners.get_mut(&id) {
                v.informed = prev;
                v.newleader_epoch = epoch;
            }
        }
        self.send(
            id,
            Message::NewLeader {
                epoch,
                last_zxid: prev,
            },
        );
        Ok(())
    }

    /// `waitForNewLeaderAck` done: the leader is established; its whole history is
    /// committed and the synced learners are told to serve.
    fn maybe_establish(&mut self) -> Result<(), StorageError> {
        let quorum = self.quorums.clone();
        let last = self.last_zxid;
        let epoch = self.current_epoch;
        let self_id = self.cfg.self_id;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        if l.established
            || l.new_epoch != Some(epoch)
            || !quorum.contains_quorum(l.newleader_acks.iter())
        {
            return Ok(());
        }
        l.established = true;
        let synced: Vec<ServerId> = l
            .learners
            .values()
            .filter(|v| v.phase == LearnerPhase::Synced)
            .map(|v| v.id)
            .collect();
        self.advance_commit(last);
        self.serving = true;
        self.ready.role_changes.push(RoleChange::Serving {
            role: Role::Leading,
            leader: self_id,
            epoch,
        });
        for id in synced {
            self.send_up_to_date(id)?;
        }
        Ok(())
    }

    fn send_up_to_date(&mut self, id: ServerId) -> Result<(), StorageError> {
        let commit = self.commit_zxid;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let Some(v) = l.learners.get_mut(&id) else {
            return Ok(());
        };
        v.phase = LearnerPhase::UpToDate;
        let observer = v.observer;
        self.send(
            id,
            Message::UpToDate {
                commit_zxid: commit,
            },
        );
        if observer {
            // Observers learn what was proposed after their sync by INFORM.
            self.inform_observer(id)?;
        }
        Ok(())
    }

    /// Commits the highest zxid of this epoch that a quorum of voters has durably.
    fn try_commit(&mut self) -> Result<(), StorageError> {
        let self_id = self.cfg.self_id;
        let State::Leading(l) = &self.state else {
            return Ok(());
        };
        if !l.established {
            return Ok(());
        }
        let mut acks: Vec<(ServerId, Zxid)> = l
            .learners
            .values()
            .filter(|v| !v.observer && v.phase >= LearnerPhase::Synced)
            .map(|v| (v.id, v.acked))
            .collect();
        acks.push((self_id, l.self_acked));
        #[cfg(feature = "inject-bugs")]
        let self_acked = l.self_acked;
        let mut candidates: Vec<Zxid> = acks.iter().map(|(_, z)| *z).collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        let mut new_commit = None;
        for c in candidates {
            // Everything up to the establishment point was committed by it.
            if c <= self.commit_zxid {
                break;
            }
            let acked = acks.iter().filter(|(_, z)| *z >= c).map(|(id, _)| id);
            if self.quorums.contains_quorum(acked) {
                new_commit = Some(c);
                break;
            }
        }
        #[cfg(feature = "inject-bugs")]
        if self.cfg.bugs.leader_alone && self_acked > self.commit_zxid {
            // A quorum of one: what the leader itself has is committed.
            new_commit = Some(new_commit.map_or(self_acked, |c: Zxid| c.max(self_acked)));
        }
        let before = self.commit_zxid;
        if let Some(c) = new_commit {
            self.advance_commit(c);
        }
        if self.commit_zxid > before {
            self.announce_commit()?;
        } else {
            self.resolve_syncs();
        }
        Ok(())
    }

    /// Tells learners about the commit point and answers syncs it satisfies.
    fn announce_commit(&mut self) -> Result<(), StorageError> {
        let commit = self.commit_zxid;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        // Observers too: their sync stream may hold proposals committed only now.
        let followers: Vec<ServerId> = l
            .learners
            .values()
            .filter(|v| v.phase >= LearnerPhase::Synced)
            .map(|v| v.id)
            .collect();
        let observers: Vec<ServerId> = l
            .learners
            .values()
            .filter(|v| v.observer && v.phase == LearnerPhase::UpToDate && v.informed < commit)
            .map(|v| v.id)
            .collect();
        for id in followers {
            self.send(id, Message::Commit { zxid: commit });
        }
        for id in observers {
            self.inform_observer(id)?;
        }
        self.resolve_syncs();
        Ok(())
    }

    /// INFORM an observer of every committed entry after the last it was sent.
    fn inform_observer(&mut self, id: ServerId) -> Result<(), StorageError> {
        let commit = self.commit_zxid;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let Some(v) = l.learners.get(&id) else {
            return Ok(());
        };
        let mut prev = v.informed;
        if prev >= commit {
            return Ok(());
        }
        let mut entries = self.storage.entries_from(prev, READ_BATCH)?;
        // The entry the observer holds last must still be in our log (or, for an empty
        // observer, the log must start at the first entry ever), or we cannot name
        // each INFORM's predecessor truthfully: make it sync again instead.
        let first = entries.first().map(|e| e.zxid);
        let chained = first == Some(prev) || (prev == 0 && first == Some(make_zxid(1, 1)));
        if !chained {
            self.resync_learner(id);
            return Ok(());
        }
        if first == Some(prev) {
            entries.remove(0);
        }
        for e in entries {
            if e.zxid > commit {
                break;
            }
            let zxid = e.zxid;
            self.send(
                id,
                Message::Inform {
                    zxid,
                    prev_zxid: prev,
                    payload: e.payload,
                },
            );
            prev = zxid;
        }
        if let Some(l) = self.leader_state() {
            if let Some(v) = l.learners.get_mut(&id) {
                v.informed = prev;
            }
        }
        Ok(())
    }

    /// Makes a learner start its handshake over (a LEADERINFO does that to a synced
    /// learner); it is told its role again when it comes back.
    fn resync_learner(&mut self, id: ServerId) {
        let epoch = self.current_epoch;
        let observer = !self.quorums.is_voter(id);
        let Some(l) = self.leader_state() else {
            return;
        };
        l.learners.remove(&id);
        l.epoch_acks.remove(&id);
        l.newleader_acks.remove(&id);
        let term = l.term;
        self.send(
            id,
            Message::LeaderInfo {
                new_epoch: epoch,
                term,
                observer,
            },
        );
    }

    /// The configurations changed: the election counts by them, and the leader syncs
    /// again each learner whose role changed (an observer being promoted must ACK).
    /// `committed`: one became the configuration (committed, installed or adopted),
    /// so roles follow it too: a learner whose role changed syncs again in it, one
    /// removed stops, and a leader that is no longer a voter steps down, as ZooKeeper's
    /// does (it hands off; here the voters elect). Only a logged one (from `append`,
    /// in the middle of proposing or syncing) never changes this server's own state.
    fn configs_changed(&mut self, committed: bool) {
        self.election.set_quorums(self.quorums.clone());
        let me = self.cfg.self_id;
        let quorums = self.quorums.clone();
        match &self.state {
            State::Looking => {}
            State::Leading(l) => {
                if committed && !quorums.committed().is_voter(me) && !quorums.latest().is_voter(me)
                {
                    self.go_looking("no longer a voter");
                    return;
                }
                let gone: Vec<ServerId> = l
                    .learners
                    .values()
                    .filter(|v| !quorums.is_member(v.id))
                    .map(|v| v.id)
                    .collect();
                let moved: Vec<ServerId> = l
                    .learners
                    .values()
                    .filter(|v| quorums.is_member(v.id) && v.observer == quorums.is_voter(v.id))
                    .map(|v| v.id)
                    .collect();
                if let Some(l) = self.leader_state() {
                    for id in &gone {
                        l.learners.remove(id);
                        l.epoch_acks.remove(id);
                        l.newleader_acks.remove(id);
                    }
                }
                for id in moved {
                    self.resync_learner(id);
                }
            }
            State::Learning(_) if !committed => {}
            State::Learning(l) => {
                if !quorums.is_member(me) {
                    self.go_looking("removed from the ensemble");
                } else if l.observer == quorums.is_voter(me) {
                    self.restart_learning();
                }
            }
        }
    }

    fn resolve_syncs(&mut self) {
        let commit = self.commit_zxid;
        let Some(l) = self.leader_state() else {
            return;
        };
        let (done, waiting): (Vec<_>, Vec<_>) =
            l.syncs.drain(..).partition(|(z, _, _)| *z <= commit);
        l.syncs = waiting;
        for (_, to, token) in done {
            self.send(
                to,
                Message::SyncReply {
                    token,
                    zxid: commit,
                },
            );
        }
    }

    fn leader_tick(&mut self) -> Result<(), StorageError> {
        let ticks = self.ticks;
        // Staying up is liveness, not safety (commits count every configuration): an
        // observer being promoted must not make a leader of a full quorum step down.
        let quorum = self.quorums.committed().clone();
        let self_id = self.cfg.self_id;
        let timeouts = self.cfg.timeouts;
        let commit = self.commit_zxid;
        #[cfg(feature = "inject-bugs")]
        let leader_alone = self.cfg.bugs.leader_alone;
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        // Learners silent for too long are dropped; they come back with FOLLOWERINFO.
        let limit = |v: &LearnerView| {
            if v.phase >= LearnerPhase::Synced {
                u64::from(timeouts.sync_limit_ticks)
            } else {
                u64::from(timeouts.init_limit_ticks)
            }
        };
        let gone: Vec<ServerId> = l
            .learners
            .values()
            .filter(|v| ticks.saturating_sub(v.last_heard_tick) > limit(v))
            .map(|v| v.id)
            .collect();
        for id in &gone {
            l.learners.remove(id);
            l.newleader_acks.remove(id);
            l.epoch_acks.remove(id);
        }
        if l.transfer.is_some_and(|(_, since)| {
            ticks.saturating_sub(since) > u64::from(timeouts.init_limit_ticks)
        }) {
            // The successor never caught up: keep leading.
            l.transfer = None;
        }
        if l.established {
            // Leader.lead's loop: step down without a quorum of synced voters in touch.
            let synced = l
                .learners
                .values()
                .filter(|v| !v.observer && v.phase >= LearnerPhase::Synced)
                .map(|v| v.id)
                .chain([self_id])
                .collect::<Vec<_>>();
            #[cfg(not(feature = "inject-bugs"))]
            if !quorum.contains_quorum(synced.iter()) {
                self.go_looking("lost the quorum");
                return Ok(());
            }
            #[cfg(feature = "inject-bugs")]
            if !quorum.contains_quorum(synced.iter()) && !leader_alone {
                self.go_looking("lost the quorum");
                return Ok(());
            }
        } else if ticks.saturating_sub(l.started_tick) > u64::from(timeouts.init_limit_ticks) {
            self.go_looking("no quorum joined within initLimit");
            return Ok(());
        }
        let Some(l) = self.leader_state() else {
            return Ok(());
        };
        let to: Vec<(ServerId, bool)> = l
            .learners
            .values()
            .filter(|v| v.phase >= LearnerPhase::Synced)
            .map(|v| (v.id, v.observer))
            .collect();
        let last = self.last_zxid;
        for (id, observer) in to {
            // Observers are sent only what is committed.
            let last_zxid = if observer { commit } else { last };
            self.send(
                id,
                Message::Ping {
                    zxid: commit,
                    last_zxid,
                },
            );
        }
        // A NEWEPOCH or its ACK may be lost: repeat it until every synced learner has
        // the epoch the leader is in or rolling to.
        let current = self.current_epoch;
        if let Some(l) = self.leader_state() {
            let (target, fence) = l
                .rolling
                .as_ref()
                .map_or((current, l.last_fence), |r| (r.epoch, r.fence));
            let behind: Vec<ServerId> = l
                .learners
                .values()
                .filter(|v| !v.observer && v.phase >= LearnerPhase::Synced && v.epoch < target)
                .map(|v| v.id)
                .collect();
            for id in behind {
                self.send(
                    id,
                    Message::NewEpoch {
                        epoch: target,
                        last_zxid: fence,
                    },
                );
            }
        }
        // Answer settled-election queries too (the Election keeps its decision).
        let out = self.election.tick();
        self.send_notifications(out);
        Ok(())
    }

    // ---------------------------------------------------------------------------------
    // Learner.

    fn learner_state(&mut self) -> Option<&mut LearnerState> {
        match &mut self.state {
            State::Learning(l) => Some(l),
            _ => None,
        }
    }

    fn send_follower_info(&mut self) {
        let accepted_epoch = self.accepted_epoch;
        let last_zxid = self.last_zxid;
        let ticks = self.ticks;
        let Some(l) = self.learner_state() else {
            return;
        };
        l.last_sent_tick = ticks;
        let (leader, observer) = (l.leader, l.observer);
        self.send(
            leader,
            Message::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            },
        );
    }

    fn learner_step(&mut self, msg: Message) -> Result<(), StorageError> {
        let ticks = self.ticks;
        let Some(l) = self.learner_state() else {
            return Ok(());
        };
        l.last_heard_tick = ticks;
        let stage = l.stage;
        let leader = l.leader;
        match msg {
            Message::LeaderInfo {
                new_epoch,
                term,
                observer,
            } => {
                if stage != LearnerStage::Discovery {
                    // The leader restarted our handshake (or a stale copy): start over.
                    if stage == LearnerStage::Serving || stage == LearnerStage::AwaitingUpToDate {
                        self.restart_learning();
                    }
                    return Ok(());
                }
                if new_epoch < self.accepted_epoch {
                    self.go_looking("the leader's epoch is older than our acceptedEpoch");
                    return Ok(());
                }
                if new_epoch > self.accepted_epoch {
                    self.storage.set_accepted_epoch(new_epoch)?;
                    self.accepted_epoch = new_epoch;
                }
                let (current_epoch, last_zxid) = (self.current_epoch, self.last_zxid);
                self.election.set_settled_state(if observer {
                    ServerState::Observing
                } else {
                    ServerState::Following
                });
                if let Some(l) = self.learner_state() {
                    l.observer = observer;
                    l.epoch = Some(new_epoch);
                    // A peer without terms sends 0: its epoch then stands for its term.
                    l.term = Some(if term > 0 { term } else { new_epoch });
                    l.ack_floor = make_zxid(new_epoch, 0);
                    l.stage = LearnerStage::AwaitingBase;
                }
                self.send(
                    leader,
                    Message::AckEpoch {
                        current_epoch,
                        last_zxid,
                        observer,
                    },
                );
            }
            Message::Diff { last_zxid, term } => {
                if stage != LearnerStage::AwaitingBase || self.of_another_term(term) {
                    return Ok(());
                }
                if last_zxid != self.last_zxid {
                    self.restart_learning();
                    return Ok(());
                }
                self.set_stage(LearnerStage::Syncing);
            }
            Message::Trunc { zxid, term } => {
                if stage != LearnerStage::AwaitingBase || self.of_another_term(term) {
                    return Ok(());
                }
                if zxid < self.applied_zxid {
                    // Only uncommitted entries may be cut, and we apply only committed
                    // ones; a TRUNC below the tree means the leader lost a commit.
                    self.go_looking("TRUNC below what this server has applied");
                    return Ok(());
                }
                if self.acked_to_leader(leader) > zxid {
                    // This leader has what we ACKed to it in this epoch, so it never
                    // cuts below that: a stale copy from an earlier handshake.
                    return Ok(());
                }
                self.cut_log_after(zxid)?;
                if self.last_zxid != zxid {
                    // Our history differs below the leader's guess: keep only what is
                    // applied (committed, so the leader has it) and sync from there.
                    self.cut_log_after(self.applied_zxid)?;
                    self.restart_learning();
                    return Ok(());
                }
                self.set_stage(LearnerStage::Syncing);
            }
            Message::Snap {
                zxid,
                offset,
                total,
                data,
                term,
            } => {
                if stage != LearnerStage::AwaitingBase || self.of_another_term(term) {
                    return Ok(());
                }
                if self.acked_to_leader(leader) > zxid {
                    // Stale, as for TRUNC: a fresh SNAP holds all we ACKed.
                    return Ok(());
                }
                let Some(data) = self.snap_chunk(zxid, offset, total, data) else {
                    return Ok(());
                };
                if zxid < self.applied_zxid {
                    // As for TRUNC: what we applied is committed, and installing an
                    // older tree would drop it from our log. A leader syncs us with a
                    // SNAP only when we are behind its log, so this one is stale (a
                    // duplicate from an earlier handshake).
                    self.go_looking("SNAP older than what this server has applied");
                    return Ok(());
                }
                // The snapshot first, durable, then the log it replaces.
                self.storage.save_snapshot(zxid, &data)?;
                self.applied_zxid = zxid;
                self.commit_zxid = zxid;
                // The host tells the snapshot's configuration (install_config).
                self.cut_log_after(-1)?;
                self.ready.committed.clear();
                self.ready.install_snapshot = Some(Snapshot {
                    last_zxid: zxid,
                    data,
                });
                self.set_stage(LearnerStage::Syncing);
            }
            Message::Proposal {
                zxid,
                prev_zxid,
                payload,
            } => {
                if !matches!(
                    stage,
                    LearnerStage::Syncing | LearnerStage::AwaitingUpToDate | LearnerStage::Serving
                ) {
                    return Ok(());
                }
                self.accept_entry(zxid, prev_zxid, payload)?;
                #[cfg(feature = "inject-bugs")]
                if self.cfg.bugs.ack_before_sync {
                    self.send_ack();
                }
            }
            Message::Inform {
                zxid,
                prev_zxid,
                payload,
            } => {
                if stage != LearnerStage::Serving {
                    return Ok(());
                }
                if self.accept_entry(zxid, prev_zxid, payload)? {
                    self.advance_commit(zxid);
                }
            }
            Message::NewLeader { epoch, last_zxid } => {
                if stage == LearnerStage::AwaitingUpToDate || stage == LearnerStage::Serving {
                    return Ok(());
                }
                let our_epoch = self.learner_state().and_then(|l| l.epoch);
                if stage != LearnerStage::Syncing || our_epoch != Some(epoch) {
                    return Ok(());
                }
                if last_zxid != self.last_zxid {
                    self.restart_learning();
                    return Ok(());
                }
                // The sync stream must be durable before we accept this history.
                self.sync_log()?;
                self.storage.set_current_epoch(epoch)?;
                self.current_epoch = epoch;
                self.election.update_election_vote(epoch);
                self.set_stage(LearnerStage::AwaitingUpToDate);
                self.send(leader, Message::AckNewLeader { epoch });
            }
            Message::UpToDate { commit_zxid } => {
                if stage != LearnerStage::AwaitingUpToDate {
                    return Ok(());
                }
                self.advance_commit(commit_zxid);
                self.set_stage(LearnerStage::Serving);
                self.serving = true;
                let role = self.role();
                let epoch = self.current_epoch;
                self.ready.role_changes.push(RoleChange::Serving {
                    role,
                    leader,
                    epoch,
                });
                self.send_ack();
            }
            Message::NewEpoch { epoch, last_zxid }
                if matches!(
                    stage,
                    LearnerStage::AwaitingUpToDate | LearnerStage::Serving
                ) =>
            {
                if epoch < self.accepted_epoch {
                    self.go_looking("NEWEPOCH older than our acceptedEpoch");
                    return Ok(());
                }
                if self.last_zxid < last_zxid {
                    // Part of the old epoch never came (nothing follows it while the
                    // leader holds new proposals back, so no gap shows): sync again.
                    self.restart_learning();
                    return Ok(());
                }
                // What we hold of the old epoch is durable before we claim the new one.
                self.sync_log_if_behind()?;
                // A promise only: the epoch becomes current with its first Txn, which
                // the leader sends once a quorum has promised it (see accept_entry).
                if epoch > self.accepted_epoch {
                    self.storage.set_accepted_epoch(epoch)?;
                    self.accepted_epoch = epoch;
                }
                // A server joining late must see us and the leader agree on its epoch.
                // (Only the settled vote: an election we start uses currentEpoch.)
                self.election.update_election_vote(epoch);
                let Some(l) = self.learner_state() else {
                    return Ok(());
                };
                if !l.observer {
                    self.send(leader, Message::AckNewEpoch { epoch });
                }
                // The sync above made proposals durable that may wait for an ACK.
                self.acknowledge_durable()?;
            }
            Message::Commit { zxid } if stage == LearnerStage::Serving => {
                self.advance_commit(zxid);
            }
            Message::Elect { leader: next }
                if !self.learner_state().is_some_and(|l| l.observer) =>
            {
                // Our leader hands over: elect its successor (after what it sent us).
                self.election.prefer(next);
                self.go_looking("the leader handed over leadership");
            }
            Message::Ping { zxid, last_zxid } => {
                if stage == LearnerStage::Serving {
                    if zxid > self.last_zxid || last_zxid > self.last_zxid {
                        // The leader committed entries we never got: the PROPOSAL or
                        // INFORM at the tail of the stream was lost, and no later one
                        // came to show the gap. Sync again rather than stay behind.
                        self.restart_learning();
                        return Ok(());
                    }
                    self.advance_commit(zxid);
                    // An ACK lost at the tail would stall the commit: repeat the last.
                    if let Some(l) = self.learner_state() {
                        if !l.observer && l.acked > 0 {
                            let acked = l.acked;
                            self.send(leader, Message::Ack { zxid: acked });
                        }
                    }
                }
                let last = self.last_zxid;
                self.send(
                    leader,
                    Message::Ping {
                        zxid: last,
                        last_zxid: last,
                    },
                );
            }
            Message::SyncReply { token, zxid } if stage == LearnerStage::Serving => {
                if zxid > self.last_zxid {
                    // Entries the leader committed before answering never came.
                    self.restart_learning();
                    return Ok(());
                }
                self.advance_commit(zxid);
                self.local_syncs.push((zxid, token));
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends an entry that follows our last one. A duplicate is ignored (false); a gap
    /// means the stream lost packets, and we start over with the leader.
    fn accept_entry(
        &mut self,
        zxid: Zxid,
        prev_zxid: Zxid,
        payload: Vec<u8>,
    ) -> Result<bool, StorageError> {
        if zxid <= self.last_zxid {
            return Ok(false);
        }
        let epoch = epoch_of(zxid);
        let (synced, held) = self.learner_state().map_or((false, None), |l| {
            (
                matches!(
                    l.stage,
                    LearnerStage::AwaitingUpToDate | LearnerStage::Serving
                ),
                l.epoch,
            )
        });
        if synced && held.is_some_and(|held| epoch < held) {
            // Once synced, the leader sends only Txns of the epoch we hold with it:
            // an older one is a late packet of an earlier handshake (found by
            // rookery-sim: an observer applied one the new epoch had dropped).
            return Ok(false);
        }
        if prev_zxid != self.last_zxid {
            self.restart_learning();
            return Ok(false);
        }
        let observer = self.learner_state().is_some_and(|l| l.observer);
        if synced && epoch > self.current_epoch {
            // The first Txn of a rolled epoch: the leader sends it only once a quorum
            // has promised the epoch and holds the old one. Taking the epoch as current
            // at NEWEPOCH instead let a roll that never finished outvote, in the next
            // election, a leader established in that same epoch number elsewhere.
            // An observer (no vote, no NEWEPOCH) takes it from a committed INFORM.
            if observer && epoch > self.accepted_epoch {
                self.storage.set_accepted_epoch(epoch)?;
                self.accepted_epoch = epoch;
            }
            if epoch != self.accepted_epoch {
                // We never promised it (a NEWEPOCH lost): sync again.
                self.restart_learning();
                return Ok(false);
            }
            self.storage.set_current_epoch(epoch)?;
            self.current_epoch = epoch;
            self.election.update_election_vote(epoch);
            if let Some(l) = self.learner_state() {
                // ACKs are sent in the epoch we hold with this leader.
                l.epoch = Some(epoch);
            }
        }
        self.append(zxid, payload)?;
        Ok(true)
    }

    /// Collects SNAP chunks; returns the whole snapshot once the last one is in. A
    /// duplicate is ignored; a missing chunk is a gap, handled like any other.
    fn snap_chunk(
        &mut self,
        zxid: Zxid,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let l = self.learner_state()?;
        if offset == 0 {
            l.snap = Some((zxid, total, Vec::new()));
        }
        let gap = match &mut l.snap {
            None => true,
            Some((z, t, buf)) => {
                if *z != zxid || *t != total || offset > buf.len() as u64 {
                    true
                } else if offset < buf.len() as u64 {
                    return None;
                } else {
                    buf.extend_from_slice(&data);
                    if (buf.len() as u64) < total {
                        return None;
                    }
                    buf.len() as u64 != total
                }
            }
        };
        let complete = l.snap.take().map(|(_, _, b)| b);
        if gap {
            self.restart_learning();
            return None;
        }
        complete
    }

    fn set_stage(&mut self, stage: LearnerStage) {
        if let Some(l) = self.learner_state() {
            l.stage = stage;
        }
    }

    /// A broken stream: reconnect to the same leader (FOLLOWERINFO again). ZooKeeper
    /// goes through election for this; the leader is still the leader, so we skip it.
    fn restart_learning(&mut self) {
        let ticks = self.ticks;
        let was_serving = self.serving;
        self.local_syncs.clear();
        if let Some(l) = self.learner_state() {
            l.stage = LearnerStage::Discovery;
            l.epoch = None;
            l.snap = None;
            l.started_tick = ticks;
            l.acked = 0;
        }
        if was_serving {
            self.serving = false;
            self.ready.role_changes.push(RoleChange::Looking);
        }
        self.send_follower_info();
    }

    /// A DIFF, TRUNC or SNAP from an earlier leadership of our leader (a late copy:
    /// installing such a SNAP once cut committed entries from a log). A peer that
    /// predates terms on these sends 0, which is taken as ours.
    fn of_another_term(&self, term: Epoch) -> bool {
        term != 0 && matches!(&self.state, State::Learning(l) if l.term.is_some_and(|t| t != term))
    }

    /// The highest zxid this learner ACKed to `leader` in the epoch it is joining now
    /// (zero if none): history that leader holds and can never ask us to cut.
    fn acked_to_leader(&self, leader: ServerId) -> Zxid {
        match (&self.acked_to, &self.state) {
            (Some((l, t, z)), State::Learning(s)) if *l == leader && Some(*t) == s.term => *z,
            _ => 0,
        }
    }

    /// Cumulative ACK of what is durable, once NEWLEADER is acked (followers only).
    fn send_ack(&mut self) {
        #[cfg(not(feature = "inject-bugs"))]
        let last = self.durable_zxid;
        #[cfg(feature = "inject-bugs")]
        let last = if self.cfg.bugs.ack_before_sync {
            self.last_zxid
        } else {
            self.durable_zxid
        };
        let epoch = self.current_epoch;
        let Some(l) = self.learner_state() else {
            return;
        };
        if l.observer
            || !matches!(
                l.stage,
                LearnerStage::AwaitingUpToDate | LearnerStage::Serving
            )
            || l.epoch != Some(epoch)
            || last <= l.ack_floor
            || last <= l.acked
            // A proposal of an epoch we have not persisted (a NEWEPOCH lost or still
            // on its way) must not count: an election would not know we hold it.
            || epoch_of(last) > epoch
        {
            return;
        }
        let Some(l) = self.learner_state() else {
            return;
        };
        l.acked = last;
        let leader = l.leader;
        let term = l.term.unwrap_or(epoch);
        self.acked_to = Some((leader, term, last));
        self.send(leader, Message::Ack { zxid: last });
    }

    fn learner_tick(&mut self) -> Result<(), StorageError> {
        let ticks = self.ticks;
        let timeouts = self.cfg.timeouts;
        let Some(l) = self.learner_state() else {
            return Ok(());
        };
        let limit = if l.stage == LearnerStage::Serving {
            timeouts.sync_limit_ticks
        } else {
            timeouts.init_limit_ticks
        };
        if ticks.saturating_sub(l.last_heard_tick) > u64::from(limit)
            || (l.stage != LearnerStage::Serving
                && ticks.saturating_sub(l.started_tick) > u64::from(timeouts.init_limit_ticks))
        {
            self.go_looking("lost the leader");
            return Ok(());
        }
        if l.stage == LearnerStage::Discovery
            && ticks.saturating_sub(l.last_sent_tick) >= u64::from(timeouts.retry_ticks.max(1))
        {
            self.send_follower_info();
        }
        let out = self.election.tick();
        self.send_notifications(out);
        Ok(())
    }
}

/// Why [`Peer::transfer_leadership`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("only an established leader hands over leadership")]
    NotLeader,
    #[error("this server already leads")]
    AlreadyLeader,
    #[error("server {0} is not a voter in sync with the leader")]
    NotEligible(ServerId),
    #[error("no voter is in sync with the leader")]
    NoCandidate,
    #[error("a membership change or an epoch roll is in progress; retry")]
    Busy,
}

/// Why [`Peer::propose`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error(transparent)]
    NotServing(#[from] NotServing),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[cfg(test)]
mod tests;
