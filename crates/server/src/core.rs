//! The core: one thread that owns the tree, the sessions, the watches and the ZAB peer,
//! and decides the order of everything. Connections and the peer transport send it
//! [`CoreCmd`]s; it answers through each connection's outbound queue and the transport.
//!
//! Why one thread: ZooKeeper's guarantees (FIFO per session, a watch event before any
//! later reply, writes applied in zxid order) are all statements about one order.
//! Keeping that order in one place makes them hold by construction; the expensive
//! parts (fsync, socket I/O, snapshot serialization) happen elsewhere or in batches.
//!
//! A round: take every command already queued (at most [`MAX_BATCH`]). A write is
//! prepped into a Txn and proposed (leader) or forwarded to the leader (learner); a read
//! is answered at once unless its session has something in flight, in which case it
//! queues behind it. Then one flush makes the round's log appends durable (group
//! commit) and acknowledges them; whatever the peer reports committed is applied in
//! zxid order, firing watches, and each session's queue is answered in the order its
//! requests came. A standalone server is an ensemble of one voter: the same path.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rookery_storage::SledStorage;
use rookery_tree::prep::{Op, PendingChanges};
use rookery_tree::session::SessionTracker;
use rookery_tree::txn::{
    ApplyResult, CreateKind, OpResult, Txn, TxnHeader, decode_entry, encode_entry,
};
use rookery_tree::watch::{SetWatches as TreeSetWatches, WatchManager};
use rookery_tree::{Caller, DataTree, TreeConfig, acl};
use rookery_wire::codes::xid;
use rookery_wire::frame::FourLetterWord;
use rookery_wire::proto::{
    self as wp, ClientRequest, ConnectRequest, ConnectResponse, Request, Response,
};
use rookery_wire::{AddWatchMode, CreateMode, ErrorCode, Id, KeeperState, Record, WatcherType};
use rookery_zab::message::Message;
use rookery_zab::peer::{LearnerPhase, Peer, PeerConfig, ProposeError, Role, RoleChange};
use rookery_zab::quorum::ServerId;
use rookery_zab::storage::{LogEntry, SnapshotStore, StorageError};
use tokio::sync::{mpsc, oneshot};
use tracing::{Span, debug, error, info, info_span, warn};

use crate::conn::{MAX_QUEUED_BYTES, OutQueue};
use crate::forward::Forward;
use crate::metrics::RequestKind;
use crate::metrics::storage::MeteredStorage;
use crate::quorum::PeerSender;
use crate::stats::ServerStats;
use crate::words;

mod admin;
use crate::membership::Ensemble;
pub(crate) use admin::{AdminBackend, AdminQuery, MemberConfig};

mod flush;
#[cfg(feature = "inject-bugs")]
mod inject;
mod reconfig;
mod scrape;

/// A stage of a client request's trace (`prep`, `propose`, `quorum_ack`, `apply`,
/// `reply`, and `forward` on a learner): a DEBUG span whose parent is `$parent`, the
/// request's span, carried explicitly across the hand-offs (the waiter holds it until
/// the commit). Nothing is made when the parent is disabled (internal writes such as
/// expiry have no request) or DEBUG spans are (no exporter and no debug logging):
/// then this is `Span::none()`, with no allocation.
macro_rules! stage {
    ($parent:expr, $name:literal) => {{
        let parent: &Span = $parent;
        if parent.is_disabled() {
            Span::none()
        } else {
            tracing::debug_span!(parent: parent, $name)
        }
    }};
}

/// Whether stage spans can be enabled at all (trace export installed, or debug
/// logging): one atomic load, so the default hot path does no span bookkeeping.
fn stages_possible() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG
}

/// The current span (a request's) as the parent of stages, if they can be enabled.
fn stage_parent() -> Span {
    if stages_possible() {
        Span::current()
    } else {
        Span::none()
    }
}

/// `0x…`, for span fields: formatted only if a subscriber records the field.
#[derive(Debug, Clone, Copy)]
struct Hex(i64);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// An opcode as ZooKeeper spells it (`Request.op2String`: `create`, `getData`), for
/// span fields; the number if it is not one.
#[derive(Debug, Clone, Copy)]
struct OpName(i32);

impl std::fmt::Display for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(op) = rookery_wire::OpCode::from_i32(self.0) else {
            return write!(f, "{}", self.0);
        };
        let name = op.name();
        let mut chars = name.chars();
        match chars.next() {
            Some(first) => write!(f, "{}{}", first.to_ascii_lowercase(), chars.as_str()),
            None => Ok(()),
        }
    }
}

/// What applying a Txn means for the core beyond the tree (sessions, membership).
enum Effect {
    SessionCreated(i32),
    SessionClosed,
    Reconfigured(Vec<u8>),
    None,
}

/// Most commands taken into one round (one fsync).
pub(crate) const MAX_BATCH: usize = 4096;

pub(crate) type ConnId = u64;
pub(crate) type SessionId = i64;

/// What a connection's writer task does next.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One frame payload; the writer adds the length prefix.
    Frame(Vec<u8>),
    /// Flush what came before, then close the socket.
    Close,
}

#[derive(Debug)]
pub(crate) enum CoreCmd {
    Connect {
        conn: ConnId,
        peer: SocketAddr,
        req: ConnectRequest,
        out: OutQueue,
    },
    Request {
        conn: ConnId,
        req: ClientRequest,
    },
    Disconnected {
        conn: ConnId,
    },
    /// Consensus time, session expiry, container reaping and snapshots are driven
    /// from here.
    Tick,
    FourLetter {
        word: FourLetterWord,
        peer: SocketAddr,
        reply: oneshot::Sender<String>,
    },
    /// A message from another server of the ensemble.
    Peer {
        from: u64,
        msg: Message,
    },
    /// A snapshot serialized off this thread for a learner that needs a SNAP.
    LearnerSnapshot {
        to: u64,
        zxid: i64,
        data: Vec<u8>,
    },
    /// The connection from another server broke.
    PeerLost {
        from: u64,
    },
    /// A call of the gRPC admin API.
    Admin(AdminQuery),
    /// A Prometheus scrape: the exposition text.
    Metrics {
        reply: oneshot::Sender<String>,
    },
    /// The sync thread finished a group commit.
    Flushed(flush::Flushed),
    /// Finish the round and stop.
    Shutdown,
}

#[derive(Debug, Clone)]
pub(crate) struct CoreHandle {
    tx: mpsc::UnboundedSender<CoreCmd>,
}

impl CoreHandle {
    pub(crate) fn new(tx: mpsc::UnboundedSender<CoreCmd>) -> Self {
        CoreHandle { tx }
    }

    /// Fails only when the core has stopped.
    pub(crate) fn send(&self, cmd: CoreCmd) -> Result<(), ()> {
        self.tx.send(cmd).map_err(|_| ())
    }
}

/// The settings the core needs, resolved from zoo.cfg.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    pub server_id: u8,
    pub tick_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub tree: TreeConfig,
    pub super_digest: Option<String>,
    pub four_letter_words: crate::config::FourLetterWhitelist,
    pub container_check_interval_ms: i64,
    /// Take a snapshot after this many Txns.
    pub snap_count: u64,
    /// An fsync of the log slower than this is logged (`fsync.warningthresholdms`).
    pub fsync_warning: std::time::Duration,
    pub snap_retain_count: usize,
    /// `autopurge.purgeInterval` > 0: after each snapshot keep `snap_retain_count`
    /// snapshots and the log they need. 0 keeps everything, as in ZooKeeper.
    pub purge: bool,
    /// For `conf` and `dirs`.
    pub describe: words::ConfigDescription,
    /// Membership and timing for the ZAB peer (one voter when standalone).
    pub peer: PeerConfig,
    /// No `server.N` lines: `srvr` says `standalone`, as ZooKeeper does.
    pub standalone: bool,
    /// Learners relay their sessions' touches to the leader this often.
    pub touch_interval_ms: i64,
    /// `readonlymode.enabled` (with local sessions, as ZooKeeper needs them for it): a
    /// server without a leader serves reads to clients that accept a read-only server.
    pub read_only_mode: bool,
    /// The members, for the admin API (the committed configuration's, once one is).
    pub members: Vec<MemberConfig>,
    /// The committed configuration (zoo.cfg's, or the one persisted by the last
    /// reconfiguration applied); `None` standalone.
    pub ensemble: Option<Ensemble>,
    /// zoo.cfg's quorum address per server: they win over the replicated
    /// configuration's, so a member behind a proxy or NAT keeps being dialled where this
    /// server was told to (members added later are dialled where their line says).
    pub local_peers: BTreeMap<u64, String>,
    /// `reconfigEnabled`: ZooKeeper's reconfig request is served (the admin API's
    /// membership calls always are).
    pub reconfig_enabled: bool,
    /// `admin.minVoters`: the fewest voters a membership change may leave.
    pub min_voters: usize,
    /// Test-only known bugs (`crate::inject`); the peer's and the tree's flags are set
    /// in `peer` and `tree`.
    #[cfg(feature = "inject-bugs")]
    pub bugs: crate::inject::InjectedBugs,
}

#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    out: OutQueue,
    /// Set once the client fell [`MAX_QUEUED_BYTES`] behind: nothing more is queued.
    falling_behind: bool,
    session: Option<SessionId>,
    /// `ip:<addr>` plus whatever addauth added; per connection, as in ZooKeeper.
    auth: Vec<Id>,
    /// Whether the client sent the trailing readOnly byte (answer in kind).
    read_only_byte: bool,
    negotiated_timeout_ms: i32,
    stats: words::ConnStats,
    /// A read-only session of a server without a leader: reads only, never committed.
    read_only: bool,
}

/// What to do when a session's write has been applied.
#[derive(Debug, Clone, Copy)]
enum AfterApply {
    /// Answer the request.
    Reply,
    /// Finish a new session's handshake.
    Connected,
    /// Answer closeSession, then close the connection.
    Closed,
}

/// Something a session waits for, answered strictly in the order the session asked.
#[derive(Debug)]
enum Waiter {
    /// A write proposed or forwarded; `done` holds its zxid and result once applied.
    Write {
        conn: ConnId,
        cxid: i32,
        /// The request's opcode, for the latency histograms.
        op: i32,
        after: AfterApply,
        /// The request's span; the stages are its children.
        span: Span,
        /// `quorum_ack` (`forward`ed writes too): open from the proposal until the
        /// commit reaches this server, then closed by `apply_entry`.
        waiting: Span,
        received: Instant,
        done: Option<(i64, OpResult)>,
    },
    /// A read that must see the session's earlier writes.
    Read {
        conn: ConnId,
        req: ClientRequest,
        span: Span,
        received: Instant,
    },
    /// `sync`: waits until this server has applied what the leader had committed.
    Sync {
        conn: ConnId,
        req: ClientRequest,
        token: u64,
        span: Span,
        received: Instant,
        done: bool,
    },
}

pub(crate) struct Core {
    cfg: CoreConfig,
    tree: DataTree,
    pending: PendingChanges,
    sessions: SessionTracker,
    watches: WatchManager,
    peer: Peer<MeteredStorage<SledStorage>>,
    /// To the other servers; `None` when standalone.
    transport: Option<PeerSender>,
    /// To ourselves, for work finished off this thread (learner snapshots).
    handle: Option<CoreHandle>,
    /// The thread that syncs the log; `None` (syncs on this thread) without a handle.
    flusher: Option<flush::Flusher>,
    conns: BTreeMap<ConnId, Conn>,
    session_conn: BTreeMap<SessionId, ConnId>,
    /// Per session, what it waits for, in request order.
    waiting: BTreeMap<SessionId, VecDeque<Waiter>>,
    next_sync_token: u64,
    sync_sessions: BTreeMap<u64, SessionId>,
    /// Leader: which server each session's client is connected to (ZooKeeper's
    /// session owner); a write arriving through another server gets SessionMoved.
    owners: BTreeMap<SessionId, u64>,
    /// Learner: reconnects of sessions this server has not seen yet, waiting for a
    /// sync with the leader (the session may be committed but not yet applied here).
    revalidating: BTreeMap<u64, (ConnId, SocketAddr, ConnectRequest, OutQueue)>,
    txns_since_snapshot: u64,
    /// Whether this server has served since it started (see `role_changed`).
    served: bool,
    /// The snapshot being serialized and saved off this thread; at most one at a time.
    snapshot_task: Option<SnapshotTask>,
    /// The log purge after a snapshot, on its own thread (it can take seconds).
    purge_task: Option<std::thread::JoinHandle<Result<u64, StorageError>>>,
    last_container_check_ms: i64,
    last_touch_ms: i64,
    started: Instant,
    start_wall_ms: i64,
    stats: ServerStats,
    /// Admin ExpireSession calls waiting for their session's closeSession to apply.
    admin_expiring:
        BTreeMap<SessionId, Vec<oneshot::Sender<Result<i64, rookery_admin::BackendError>>>>,
    /// Admin TakeSnapshot calls waiting for the next snapshot to start.
    snapshot_wanted: Vec<admin::SnapshotWaiter>,
    /// Role changes and operator actions, newest last, for the admin API's Status.
    events: VecDeque<(i64, String)>,
    /// Leader: the reconfiguration proposed last, until it is applied (one at a time,
    /// including while an epoch roll holds it back from the log).
    reconfig_zxid: Option<i64>,
    /// Admin membership calls waiting for their reconfiguration to be applied.
    admin_reconfigs: BTreeMap<i64, admin::ReconfigWaiter>,
    /// The transport's peers follow the committed membership and the pending ones
    /// (see `refresh_peers`): whether the committed one changed, and which pending ones
    /// it was last set for.
    peers_stale: bool,
    peers_pending: Vec<i64>,
    /// `ack-before-durable`: when the log was last synced.
    #[cfg(feature = "inject-bugs")]
    lazy_synced: Instant,
}

/// A snapshot in flight: a frozen clone of the tree being serialized, saved and
/// retention-checked on its own thread while the core keeps applying.
struct SnapshotTask {
    last_zxid: i64,
    handle: std::thread::JoinHandle<Result<SnapshotSaved, StorageError>>,
    /// Admin TakeSnapshot calls this snapshot answers.
    waiters: Vec<admin::SnapshotWaiter>,
}

/// What the snapshot thread reports once the snapshot is durable.
struct SnapshotSaved {
    bytes: usize,
    serialize_ms: u64,
    save_ms: u64,
    /// Serializing and saving, for `snapshottime` (finer than the two ms above).
    took: std::time::Duration,
    /// The valid snapshots kept by retention, newest first; `None` if retention failed.
    retained: Option<Vec<i64>>,
}

/// A storage failure: the server must stop (DESIGN: storage failure stops the node).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("recovery failed: {0}")]
    Recovery(String),
    #[error("the log's sync thread stopped")]
    SyncThread,
}

/// How many recent events Status shows.
const EVENTS_KEPT: usize = 32;

/// What this server is doing, as `srvr` and the admin API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Standalone,
    /// No leader, serving reads to clients that accept a read-only server.
    ReadOnly,
    /// Electing or syncing: not serving clients.
    Looking,
    Leader,
    Follower,
    Observer,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::ReadOnly => "read-only",
            Mode::Looking => "looking",
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
        }
    }
}

/// The configuration a tree holds in `/zookeeper/config`, if it parses.
fn tree_ensemble(tree: &DataTree) -> Option<Ensemble> {
    let data = tree.node("/zookeeper/config")?.data.as_deref()?;
    Ensemble::parse(std::str::from_utf8(data).ok()?).ok()
}

/// A tree loaded from a snapshot shows the committed configuration in
/// `/zookeeper/config`, as ZooKeeper's ZKDatabase does on load: the persisted one if
/// the tree's is older (the reconfiguration is replayed from the log later anyway),
/// and zoo.cfg's until a reconfiguration ever happened.
fn with_config(mut tree: DataTree, ensemble: Option<&Ensemble>) -> DataTree {
    if let Some(e) = ensemble {
        if tree_ensemble(&tree)
            .is_none_or(|t| t.version < e.version || t.version == 0 && e.version == 0)
        {
            tree.set_local_config(e.text().as_bytes());
        }
    }
    tree
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Core {
    /// Restores the tree from the newest valid snapshot and starts the peer on the
    /// log. The log after the snapshot is applied once the peer knows it is committed:
    /// at once for a single server, after syncing with the leader in an ensemble.
    pub(crate) fn open(
        cfg: CoreConfig,
        storage: SledStorage,
        transport: Option<PeerSender>,
        handle: Option<CoreHandle>,
    ) -> Result<Core, CoreError> {
        let restored = crate::recover::restore_latest(&storage, &cfg.tree)?;
        let snapshot_zxid = restored.as_ref().map(DataTree::last_zxid);
        let tree = restored.unwrap_or_else(|| DataTree::new(cfg.tree.clone()));
        let tree = with_config(tree, cfg.ensemble.as_ref());
        let mut peer = Peer::new(
            cfg.peer.clone(),
            MeteredStorage::new(storage),
            tree.last_zxid(),
        )?;
        if let Some(e) = cfg.ensemble.as_ref().filter(|e| e.version > 0) {
            peer.set_committed_entry(e.version, crate::membership::config_entry(e));
        }
        info!(
            snapshot = snapshot_zxid.map(|z| format!("{z:#x}")),
            last_logged = format!("{:#x}", peer.last_zxid()),
            current_epoch = peer.current_epoch(),
            "recovered; looking for a leader"
        );
        let now = wall_ms();
        let sessions = SessionTracker::new(cfg.server_id, cfg.tick_ms, now);
        let flusher = match &handle {
            Some(h) => Some(
                flush::Flusher::start(
                    {
                        let handle = peer.storage().sync_handle();
                        move || handle.sync()
                    },
                    h.clone(),
                )
                .map_err(|e| StorageError::Backend(Box::new(e)))?,
            ),
            None => None,
        };
        let mut core = Core {
            last_container_check_ms: now,
            last_touch_ms: now,
            cfg,
            tree,
            pending: PendingChanges::new(),
            sessions,
            watches: WatchManager::new(),
            peer,
            transport,
            handle,
            flusher,
            conns: BTreeMap::new(),
            session_conn: BTreeMap::new(),
            waiting: BTreeMap::new(),
            next_sync_token: 1,
            sync_sessions: BTreeMap::new(),
            owners: BTreeMap::new(),
            revalidating: BTreeMap::new(),
            txns_since_snapshot: 0,
            served: false,
            snapshot_task: None,
            purge_task: None,
            started: Instant::now(),
            start_wall_ms: now,
            stats: ServerStats::default(),
            admin_expiring: BTreeMap::new(),
            snapshot_wanted: Vec::new(),
            events: VecDeque::new(),
            reconfig_zxid: None,
            admin_reconfigs: BTreeMap::new(),
            peers_stale: true,
            peers_pending: Vec::new(),
            #[cfg(feature = "inject-bugs")]
            lazy_synced: Instant::now(),
        };
        if !core.cfg.standalone {
            core.stats.metrics.looking(Instant::now());
        }
        // A single voter is leader at once and applies its whole log here.
        core.drive()?;
        Ok(core)
    }

    /// Monotonic milliseconds that read like wall-clock time.
    fn now_ms(&self) -> i64 {
        self.start_wall_ms + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(0)
    }

    /// Runs until every handle is dropped. Returns an error only for storage failure.
    pub(crate) fn run(mut self, mut rx: mpsc::UnboundedReceiver<CoreCmd>) -> Result<(), CoreError> {
        let mut stopping = false;
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(cmd) = next.take() {
                if matches!(cmd, CoreCmd::Shutdown) {
                    stopping = true;
                    break;
                }
                self.handle(cmd)?;
                taken += 1;
                if taken < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.finish_round()?;
            if stopping {
                info!("core stopped");
                break;
            }
        }
        // Let an in-flight snapshot finish: it holds a storage handle, and the log
        // purge it allows happens only once it is saved. The sync thread holds one too.
        if let Some(f) = &mut self.flusher {
            f.stop();
        }
        self.finish_snapshot()?;
        self.finish_purge();
        Ok(())
    }

    fn handle(&mut self, cmd: CoreCmd) -> Result<(), CoreError> {
        match cmd {
            CoreCmd::Connect {
                conn,
                peer,
                req,
                out,
            } => self.connect(conn, peer, req, out, false),
            CoreCmd::Request { conn, req } => self.request(conn, req)?,
            CoreCmd::Disconnected { conn } => self.disconnected(conn),
            CoreCmd::Tick => self.tick()?,
            CoreCmd::FourLetter { word, peer, reply } => {
                let text = self.four_letter(word, peer);
                let _ = reply.send(text);
            }
            CoreCmd::Peer { from, msg } => {
                tracing::trace!(from, kind = msg.kind(), role = ?self.peer.role(), "peer message");
                if let Message::Notification(n) = &msg {
                    // ZooKeeper logs each notification; the order of these and of the
                    // lost links below is what explains a slow election.
                    debug!(
                        from,
                        leader = n.leader.0,
                        zxid = %Hex(n.zxid),
                        round = n.election_epoch,
                        state = ?n.state,
                        "election notification"
                    );
                }
                self.note_peer_message(&msg);
                self.peer.step(ServerId(from), msg)?;
                self.drive()?;
            }
            CoreCmd::LearnerSnapshot { to, zxid, data } => {
                info!(
                    learner = to,
                    zxid = format!("{zxid:#x}"),
                    bytes = data.len(),
                    "sending SNAP"
                );
                self.peer.snapshot_ready(ServerId(to), zxid, data)?;
                self.drive()?;
            }
            CoreCmd::PeerLost { from } => {
                debug!(from, "quorum connection from the peer lost");
                self.peer.link_lost(ServerId(from))?;
                self.drive()?;
            }
            CoreCmd::Admin(query) => self.admin(query)?,
            CoreCmd::Metrics { reply } => {
                let _ = reply.send(self.metrics_text());
            }
            CoreCmd::Flushed(done) => self.flushed(done)?,
            // Taken by `run` before it gets here.
            CoreCmd::Shutdown => {}
        }
        Ok(())
    }

    /// Makes the round durable, acknowledges it, and applies what that committed.
    fn finish_round(&mut self) -> Result<(), CoreError> {
        self.drive()?;
        #[cfg(feature = "inject-bugs")]
        let sync_now = !self.ack_before_durable()?;
        #[cfg(not(feature = "inject-bugs"))]
        let sync_now = true;
        if sync_now {
            self.flush_appends()?;
        }
        self.record_syncs();
        self.maybe_snapshot()
    }

    // ---------------------------------------------------------------------------------
    // The peer's output.

    /// Acts on everything the peer has ready, in the order its contract gives.
    fn drive(&mut self) -> Result<(), CoreError> {
        loop {
            let ready = self.peer.take_ready()?;
            if ready.is_empty() {
                return Ok(());
            }
            if let Some(snap) = ready.install_snapshot {
                let zxid = snap.last_zxid;
                let tree = DataTree::restore_with(&snap.data, self.cfg.tree.clone())
                    .map_err(|e| CoreError::Recovery(format!("SNAP {zxid:#x}: {e}")))?;
                self.tree = tree;
                // The leader's tree carries the configuration committed at its zxid.
                match tree_ensemble(&self.tree) {
                    Some(e)
                        if self
                            .cfg
                            .ensemble
                            .as_ref()
                            .is_some_and(|c| e.version > c.version) =>
                    {
                        if let Ok(q) = e.quorum() {
                            self.peer.install_config(q);
                            self.peer.set_committed_entry(
                                e.version,
                                crate::membership::config_entry(&e),
                            );
                        }
                        self.ensemble_committed(e)?;
                    }
                    _ => {
                        self.tree =
                            with_config(std::mem::take(&mut self.tree), self.cfg.ensemble.as_ref())
                    }
                }
                self.pending = PendingChanges::new();
                self.txns_since_snapshot = 0;
                info!(
                    zxid = format!("{zxid:#x}"),
                    nodes = self.tree.node_count(),
                    "installed the leader's snapshot"
                );
            }
            if let Some((zxid, entry)) = ready.adopted_config {
                let adopted = rookery_tree::reconfig_in_entry(&entry)
                    .and_then(|d| String::from_utf8(d).ok())
                    .and_then(|t| Ensemble::parse(&t).ok());
                if let Some(mut e) = adopted {
                    e.version = zxid;
                    info!(
                        version = format!("{zxid:#x}"),
                        "a peer told of a membership change this server missed"
                    );
                    self.ensemble_committed(e)?;
                }
            }
            if let Some(last) = ready.committed.last() {
                self.stats.metrics.committed(last.zxid, Instant::now());
            }
            for entry in ready.committed {
                self.apply_entry(entry)?;
            }
            self.pending.applied_through(self.tree.last_zxid());
            for change in ready.role_changes {
                self.role_changed(change);
            }
            for token in ready.synced {
                self.sync_done(token);
            }
            for to in ready.snapshot_requests {
                self.snapshot_for_learner(to);
            }
            if let Some(t) = &self.transport {
                for (to, msg) in ready.messages {
                    // How each learner is brought up to date, for operators.
                    match &msg {
                        Message::Diff { last_zxid: z, .. } | Message::Trunc { zxid: z, .. } => {
                            self.stats.metrics.learner_synced_by_diff();
                            info!(
                                learner = to.0,
                                how = msg.kind(),
                                zxid = format!("{z:#x}"),
                                "syncing a learner"
                            );
                        }
                        Message::Snap {
                            zxid,
                            offset: 0,
                            total,
                            ..
                        } => {
                            self.stats.metrics.learner_synced_by_snap();
                            info!(
                                learner = to.0,
                                how = "snap",
                                zxid = format!("{zxid:#x}"),
                                bytes = total,
                                "syncing a learner"
                            );
                        }
                        _ => {}
                    }
                    t.send(to.0, msg);
                }
            }
            // Only now: a member that a committed change removed still gets what this
            // round queued for it (the COMMIT of its removal).
            self.refresh_peers();
            for (from, payload) in ready.requests {
                self.forwarded(from, &payload)?;
            }
        }
    }

    fn role_changed(&mut self, change: RoleChange) {
        match change {
            RoleChange::Looking => {
                self.stats.metrics.looking(Instant::now());
                self.record_event("stopped serving: looking for a leader".to_owned());
                warn!(
                    connections = self.conns.len(),
                    "not serving: looking for a leader; closing client connections"
                );
                for c in self.conns.values() {
                    c.out.close();
                }
                self.waiting.clear();
                self.sync_sessions.clear();
                self.owners.clear();
                for (_, (_, _, _, out)) in std::mem::take(&mut self.revalidating) {
                    out.close();
                }
                self.pending = PendingChanges::new();
                self.admin_abandon_expiries();
                self.admin_abandon_reconfigs();
            }
            RoleChange::Serving {
                role,
                leader,
                epoch,
            } => {
                self.stats.metrics.serving(Instant::now());
                // ZooKeeper's loadData ends with a snapshot, so the next start restores
                // it instead of replaying the same log again (a crash loop, a restart
                // after a long run). Here, the first time a server serves after it
                // applied log entries (its own replayed, or a leader's), the next round
                // takes one in the background. The first batch of those entries comes
                // in the same Ready as this change and is applied before it; the rest
                // come in later Readies of the same `drive`, before the round's check.
                if !self.served {
                    self.served = true;
                    if self.txns_since_snapshot > 0 {
                        self.txns_since_snapshot =
                            self.txns_since_snapshot.max(self.cfg.snap_count);
                    }
                }
                let what = if self.cfg.standalone {
                    format!("serving as standalone (epoch {epoch})")
                } else {
                    format!(
                        "serving as {} (leader {}, epoch {epoch})",
                        role.as_str(),
                        leader.0
                    )
                };
                self.record_event(what);
                info!(
                    mode = role.as_str(),
                    leader = leader.0,
                    epoch,
                    zxid = format!("{:#x}", self.tree.last_zxid()),
                    "serving"
                );
                self.pending = PendingChanges::new();
                // Read-only clients go and find a server that takes writes, as
                // ZooKeeper's read-only server shuts down when a leader appears.
                for c in self.conns.values().filter(|c| c.read_only) {
                    c.out.close();
                }
                if role == Role::Leading {
                    // The leader decides expiry now: every session gets a full timeout
                    // to be touched, as after a restart.
                    let now = self.now_ms();
                    for (&id, &timeout) in self.tree.sessions() {
                        self.sessions.track(id, timeout, now);
                    }
                }
            }
        }
    }

    /// Serializes the tree as applied now (the zxid the peer expects) off this thread.
    fn snapshot_for_learner(&mut self, to: ServerId) {
        let Some(handle) = self.handle.clone() else {
            return;
        };
        let frozen = self.tree.clone();
        let zxid = frozen.last_zxid();
        let spawned = std::thread::Builder::new()
            .name("learner-snapshot".into())
            .spawn(move || {
                let data = frozen.snapshot();
                let _ = handle.send(CoreCmd::LearnerSnapshot {
                    to: to.0,
                    zxid,
                    data,
                });
            });
        if let Err(e) = spawned {
            error!(error = %e, learner = to.0, "could not start the snapshot thread");
        }
    }

    /// The leader's side of a learner's REQUEST.
    fn forwarded(&mut self, from: ServerId, payload: &[u8]) -> Result<(), CoreError> {
        let fwd = match Forward::decode(payload) {
            Ok(f) => f,
            Err(e) => {
                warn!(learner = from.0, error = %e, "undecodable request from a learner");
                return Ok(());
            }
        };
        match fwd {
            Forward::Touch { sessions } => {
                let now = self.now_ms();
                for s in sessions {
                    self.sessions.touch(s, now);
                }
            }
            Forward::Claim { session } => {
                self.sessions.touch(session, self.now_ms());
                self.owners.insert(session, from.0);
            }
            Forward::Expire { session } => {
                if self.tree.sessions().contains_key(&session) && !self.sessions.is_closing(session)
                {
                    self.expire_as_leader(session, "by an admin request")?;
                }
            }
            Forward::CreateSession {
                session,
                timeout_ms,
            } => {
                self.owners.insert(session, from.0);
                let caller = Caller {
                    session_id: session,
                    auth: &[],
                    is_super: false,
                };
                self.propose(session, 0, &caller, Ok(&Op::CreateSession { timeout_ms }))?;
            }
            Forward::Request {
                session,
                auth,
                frame,
            } => {
                let req = match rookery_wire::proto::decode_request(&frame) {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(learner = from.0, error = %e, "undecodable forwarded request");
                        return Ok(());
                    }
                };
                let Some(write) = to_op(&req.body) else {
                    return Ok(());
                };
                let write = self.reconfig_or(&req.body, write);
                let write = self.check_owner(session, from.0, write);
                self.sessions.touch(session, self.now_ms());
                if matches!(write, Ok(Op::CloseSession)) {
                    self.sessions.set_closing(session);
                }
                let is_super = self.is_super(&auth);
                let caller = Caller {
                    session_id: session,
                    auth: &auth,
                    is_super,
                };
                // The leader's side of a learner's write: its own trace (the learner's
                // request span is not propagated), with the prep and propose stages.
                let span = info_span!(
                    "forwarded",
                    learner = from.0,
                    session = %Hex(session),
                    xid = req.header.xid,
                    op = req.header.op,
                    opcode = %OpName(req.header.op),
                    zxid = tracing::field::Empty
                );
                let _g = span.enter();
                self.propose(
                    session,
                    req.header.xid,
                    &caller,
                    write.as_ref().map_err(|e| *e),
                )?;
            }
        }
        Ok(())
    }

    /// Leader: a write through a server that no longer holds the session fails with
    /// SessionMoved (ZooKeeper's `checkSession` owner test). An unknown owner (a new
    /// leader) is taken from the first server that writes for the session.
    fn check_owner(
        &mut self,
        session: SessionId,
        via: u64,
        write: Result<Op, ErrorCode>,
    ) -> Result<Op, ErrorCode> {
        match self.owners.get(&session) {
            Some(&owner) if owner != via => {
                info!(
                    session = format!("{session:#x}"),
                    owner, via, "write through a server the session has left: SessionMoved"
                );
                Err(ErrorCode::SessionMoved)
            }
            Some(_) => write,
            None => {
                self.owners.insert(session, via);
                write
            }
        }
    }

    /// Leader: preps `op` at the next zxid and proposes it. A failed op still takes a
    /// zxid and is logged as an error Txn, as ZooKeeper does; so does a write rejected
    /// before prep (`op` is its error). Returns false if this server cannot propose.
    fn propose(
        &mut self,
        session: SessionId,
        cxid: i32,
        caller: &Caller<'_>,
        op: Result<&Op, ErrorCode>,
    ) -> Result<bool, CoreError> {
        let time_ms = wall_ms();
        let tree = &self.tree;
        let pending = &mut self.pending;
        // The request's (or forwarded request's) span: `prep` covers the checks that
        // decide the Txn, `propose` its encoding and the log append.
        let parent = Span::current();
        let mut proposing = Span::none();
        let proposed = self.peer.propose(|zxid| {
            let prep = stage!(&parent, "prep");
            let prepping = prep.enter();
            // A reconfiguration's version is the zxid it gets.
            let versioned;
            let op = match op {
                Ok(Op::Reconfig { data }) => {
                    let mut data = data.clone();
                    data.extend_from_slice(format!("version={zxid:x}").as_bytes());
                    versioned = Op::Reconfig { data };
                    Ok(&versioned)
                }
                other => other,
            };
            let txn = op
                .and_then(|op| tree.prep(pending, caller, op, zxid, time_ms))
                .unwrap_or_else(Txn::Error);
            drop(prepping);
            drop(prep);
            proposing = stage!(&parent, "propose");
            let _g = proposing.enter();
            let header = TxnHeader {
                session_id: session,
                cxid,
                zxid,
                time_ms,
            };
            encode_entry(&header, &txn)
        });
        drop(proposing);
        match proposed {
            Ok(zxid) => {
                self.stats.metrics.proposed(zxid, Instant::now());
                parent.record("zxid", tracing::field::display(Hex(zxid)));
                if matches!(op, Ok(Op::Reconfig { .. })) {
                    self.reconfig_zxid = Some(zxid);
                }
                Ok(true)
            }
            Err(ProposeError::NotServing(e)) => {
                debug!(error = %e, "cannot propose");
                Ok(false)
            }
            Err(ProposeError::Storage(e)) => {
                error!(error = %e, "log append failed");
                Err(e.into())
            }
        }
    }

    /// Opens the `quorum_ack` stage of the write `session` just submitted (the back of
    /// its queue): it lasts until the commit reaches this server (`apply_entry`).
    fn await_quorum(&mut self, session: SessionId, request: &Span) {
        if !stages_possible() || request.is_disabled() {
            return;
        }
        if let Some(Waiter::Write { waiting, .. }) =
            self.waiting.get_mut(&session).and_then(VecDeque::back_mut)
        {
            *waiting = stage!(request, "quorum_ack");
        }
    }

    /// Sends a write on its way: proposed here on the leader, forwarded by a learner.
    /// False if neither is possible now (the connection is then closed).
    fn submit(
        &mut self,
        session: SessionId,
        cxid: i32,
        caller: &Caller<'_>,
        op: Result<&Op, ErrorCode>,
        frame: Option<Vec<u8>>,
    ) -> Result<bool, CoreError> {
        match self.peer.role() {
            Role::Leading => self.propose(session, cxid, caller, op),
            Role::Following | Role::Observing => {
                let forward = stage!(&stage_parent(), "forward");
                let _g = forward.enter();
                let fwd = match (op, frame) {
                    (Ok(Op::CreateSession { timeout_ms }), _) => Forward::CreateSession {
                        session,
                        timeout_ms: *timeout_ms,
                    },
                    (_, Some(frame)) => Forward::Request {
                        session,
                        auth: caller.auth.to_vec(),
                        frame,
                    },
                    // Internal writes (expiry, reaping) are the leader's alone.
                    (_, None) => return Ok(false),
                };
                Ok(self.peer.forward(fwd.encode()).is_ok())
            }
            Role::Looking => Ok(false),
        }
    }

    /// Applies one committed Txn: the tree, sessions, watches, then the waiting session.
    fn apply_entry(&mut self, entry: LogEntry) -> Result<(), CoreError> {
        let (header, txn) = decode_entry(&entry.payload)
            .map_err(|e| CoreError::Recovery(format!("log entry {:#x}: {e}", entry.zxid)))?;
        // A request of this server's waits for this Txn: its `quorum_ack` ends and its
        // `apply` (the tree, sessions, watches) begins. A learner learns the zxid here.
        let leading = self.peer.role() == Role::Leading;
        let waiter = if stages_possible() {
            self.waiting.get_mut(&header.session_id).and_then(|q| {
                q.iter_mut().find(
                    |w| matches!(w, Waiter::Write { cxid, done: None, .. } if *cxid == header.cxid),
                )
            })
        } else {
            None
        };
        let apply = match waiter {
            Some(Waiter::Write { span, waiting, .. }) => {
                *waiting = Span::none();
                if !leading {
                    span.record("zxid", tracing::field::display(Hex(header.zxid)));
                }
                stage!(span, "apply")
            }
            _ => Span::none(),
        };
        let applying = apply.enter();
        // What the core does besides the tree, decided before the tree takes the Txn.
        let effect = match &txn {
            Txn::CreateSession { timeout_ms } => Effect::SessionCreated(*timeout_ms),
            Txn::CloseSession { .. } => Effect::SessionClosed,
            // Rare: the copy keeps the tree's move of the data on every other write.
            Txn::Reconfig { data } => Effect::Reconfigured(data.clone()),
            _ => Effect::None,
        };
        let closes_session = matches!(effect, Effect::SessionClosed);
        let ApplyResult {
            result, triggers, ..
        } = self.tree.apply(&header, txn);
        self.txns_since_snapshot += 1;
        let session = header.session_id;
        match effect {
            Effect::SessionCreated(timeout_ms) => {
                let now = self.now_ms();
                self.sessions.track(session, timeout_ms, now);
            }
            Effect::SessionClosed => {
                self.sessions.remove(session);
                self.owners.remove(&session);
                self.admin_session_closed(session, header.zxid);
            }
            Effect::Reconfigured(data) => {
                let parsed = std::str::from_utf8(&data)
                    .map_err(|e| e.to_string())
                    .and_then(Ensemble::parse);
                match parsed {
                    // Replayed history older than the membership this server already
                    // knows committed (persisted, or adopted from a peer) changes nothing.
                    Ok(mut e)
                        if self
                            .cfg
                            .ensemble
                            .as_ref()
                            .is_none_or(|c| header.zxid > c.version) =>
                    {
                        e.version = header.zxid;
                        self.ensemble_committed(e)?;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        error!(zxid = format!("{:#x}", header.zxid), error = %e, "a committed reconfiguration does not parse");
                    }
                }
                if self.reconfig_zxid.is_some_and(|z| z <= header.zxid) {
                    self.reconfig_zxid = None;
                }
                self.admin_reconfig_applied(header.zxid);
            }
            Effect::None => {}
        }
        for t in &triggers {
            let fired = self.watches.trigger(t);
            self.stats.metrics.watches_fired(t.event_type, fired.len());
            for (watcher, ev) in fired {
                let Some(c) = self.conns.get(&watcher) else {
                    continue;
                };
                let auth = &c.auth;
                if !t.visible_to(&self.cfg.tree.auth_schemes, auth, self.is_super(auth)) {
                    continue;
                }
                self.notify(watcher, ev.event_type.as_i32(), &ev.path, ev.zxid);
            }
        }
        drop(applying);
        drop(apply);
        let matched = self.waiting.get_mut(&session).and_then(|q| {
            q.iter_mut().find_map(|w| match w {
                Waiter::Write { cxid, done, .. } if done.is_none() && *cxid == header.cxid => {
                    *done = Some((header.zxid, result.clone()));
                    Some(())
                }
                _ => None,
            })
        });
        if matched.is_some() {
            self.drain_session(session);
        } else if closes_session {
            // Expired by the leader, or closed through another server.
            self.waiting.remove(&session);
            if let Some(conn) = self.session_conn.remove(&session) {
                self.close_conn(conn);
            }
        }
        Ok(())
    }

    /// Answers the front of a session's queue for as long as it can be answered.
    fn drain_session(&mut self, session: SessionId) {
        loop {
            let Some(q) = self.waiting.get_mut(&session) else {
                return;
            };
            let ready = match q.front() {
                None => {
                    self.waiting.remove(&session);
                    return;
                }
                Some(Waiter::Write { done, .. }) => done.is_some(),
                Some(Waiter::Read { .. }) => true,
                Some(Waiter::Sync { done, .. }) => *done,
            };
            if !ready {
                return;
            }
            let Some(w) = q.pop_front() else { return };
            match w {
                Waiter::Write {
                    conn,
                    cxid,
                    op,
                    after,
                    span,
                    waiting: _,
                    received,
                    done: Some((zxid, result)),
                } => {
                    let _g = span.enter();
                    let reply = stage!(&span, "reply");
                    let replying = reply.enter();
                    self.answer_write(session, conn, cxid, after, zxid, &result);
                    drop(replying);
                    drop(reply);
                    self.stats
                        .record_request(op, RequestKind::Update, received.elapsed());
                }
                Waiter::Write { .. } => {}
                Waiter::Read {
                    conn,
                    req,
                    span,
                    received,
                }
                | Waiter::Sync {
                    conn,
                    req,
                    span,
                    received,
                    ..
                } => {
                    let _g = span.enter();
                    self.read(conn, &req);
                    self.stats
                        .record_request(req.header.op, RequestKind::Read, received.elapsed());
                }
            }
        }
    }

    fn answer_write(
        &mut self,
        session: SessionId,
        conn: ConnId,
        cxid: i32,
        after: AfterApply,
        zxid: i64,
        result: &OpResult,
    ) {
        match after {
            AfterApply::Reply if matches!(result, OpResult::Error(ErrorCode::SessionMoved)) => {
                // ZooKeeper treats it as a connection-level error: no reply, the
                // connection is torn down (ZOOKEEPER-710).
                info!("the session moved to another server; closing this connection");
                if self.session_conn.get(&session) == Some(&conn) {
                    self.session_conn.remove(&session);
                }
                self.close_conn(conn);
            }
            AfterApply::Reply => {
                let (err, body) = reply_for(result);
                self.send_reply(conn, cxid, zxid, err, &body);
            }
            AfterApply::Connected => {
                if let Some(c) = self.conns.get(&conn) {
                    send_connect_response(
                        c,
                        c.negotiated_timeout_ms,
                        session,
                        session_password(session),
                    );
                }
            }
            AfterApply::Closed => {
                self.session_conn.remove(&session);
                self.send_reply(conn, cxid, zxid, ErrorCode::Ok, &Response::Empty);
                self.close_conn(conn);
            }
        }
    }

    fn sync_done(&mut self, token: u64) {
        if let Some((conn, peer, req, out)) = self.revalidating.remove(&token) {
            self.connect(conn, peer, req, out, true);
            return;
        }
        let Some(session) = self.sync_sessions.remove(&token) else {
            return;
        };
        if let Some(q) = self.waiting.get_mut(&session) {
            for w in q.iter_mut() {
                if let Waiter::Sync { token: t, done, .. } = w {
                    if *t == token {
                        *done = true;
                    }
                }
            }
        }
        self.drain_session(session);
    }

    // ---------------------------------------------------------------------------------
    // Sessions and connections.

    fn negotiate_timeout(&self, asked: i32) -> i32 {
        asked.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        )
    }

    /// `revalidated`: a learner already synced with the leader for this handshake.
    fn connect(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        req: ConnectRequest,
        out: OutQueue,
        revalidated: bool,
    ) {
        let span = info_span!("connect", %peer, session = format!("{:#x}", req.session_id));
        let _g = span.enter();
        let timeout = self.negotiate_timeout(req.timeout_ms);
        let mut c = Conn {
            peer,
            out,
            falling_behind: false,
            session: None,
            auth: vec![Id::new("ip", peer.ip().to_string())],
            read_only_byte: req.read_only.is_some(),
            negotiated_timeout_ms: timeout,
            stats: words::ConnStats::new(self.now_ms()),
            read_only: false,
        };
        if !self.peer.is_serving() && self.cfg.read_only_mode && req.read_only == Some(true) {
            // ZooKeeper's ReadOnlyZooKeeperServer: a local session, reads of what this
            // server has, writes refused with NotReadOnly.
            let session = match req.session_id {
                0 => self.sessions.create_session(timeout, self.now_ms()),
                s => s,
            };
            c.session = Some(session);
            c.read_only = true;
            let resp = ConnectResponse {
                protocol_version: 0,
                timeout_ms: timeout,
                session_id: session,
                passwd: session_password(session),
                read_only: Some(true),
            };
            c.out.frame(resp.to_bytes());
            info!(
                session = format!("{session:#x}"),
                "read-only session (no leader)"
            );
            self.session_conn.insert(session, conn);
            self.conns.insert(conn, c);
            return;
        }
        if !self.peer.is_serving() {
            // ZooKeeper's words; the client tries the next server.
            info!("Closing connection from {peer}: ZooKeeperServer not running");
            c.out.close();
            return;
        }
        if req.last_zxid_seen > self.tree.last_zxid() {
            // ZooKeeper's words: the client must try a server that has caught up.
            warn!(
                "Refusing session request for client {peer} as it has seen zxid {:#x} our last zxid is {:#x} client must try another server",
                req.last_zxid_seen,
                self.tree.last_zxid()
            );
            c.out.close();
            return;
        }
        if req.session_id == 0 {
            let now = self.now_ms();
            let session = self.sessions.create_session(timeout, now);
            if self.peer.role() == Role::Leading {
                self.owners.insert(session, self.peer.self_id().0);
            }
            c.session = Some(session);
            self.conns.insert(conn, c);
            self.session_conn.insert(session, conn);
            let caller = Caller {
                session_id: session,
                auth: &[],
                is_super: false,
            };
            self.waiting
                .entry(session)
                .or_default()
                .push_back(Waiter::Write {
                    conn,
                    cxid: 0,
                    op: rookery_wire::OpCode::CreateSession.as_i32(),
                    after: AfterApply::Connected,
                    span: span.clone(),
                    waiting: Span::none(),
                    received: Instant::now(),
                    done: None,
                });
            let op = Op::CreateSession {
                timeout_ms: timeout,
            };
            match self.submit(session, 0, &caller, Ok(&op), None) {
                Ok(true) => {
                    self.await_quorum(session, &span);
                    info!(session = format!("{session:#x}"), timeout, "new session");
                }
                _ => {
                    self.waiting.remove(&session);
                    self.close_conn(conn);
                }
            }
            return;
        }
        let session = req.session_id;
        if !revalidated
            && self.peer.role() != Role::Leading
            && !self.tree.sessions().contains_key(&session)
        {
            // Created through another server moments ago? Catch up with the leader
            // before answering (ZooKeeper's learners revalidate with the leader).
            let token = self.next_sync_token;
            self.next_sync_token += 1;
            if self.peer.sync(token).is_ok() {
                self.revalidating.insert(token, (conn, peer, req, c.out));
                return;
            }
        }
        let valid = self.tree.sessions().contains_key(&session)
            && !self.sessions.is_closing(session)
            && req.passwd == session_password(session);
        if !valid {
            info!("Invalid session {session:#x} for client {peer}, probably expired");
            send_connect_response(&c, 0, 0, vec![0; 16]);
            c.out.close();
            return;
        }
        self.sessions.touch(session, self.now_ms());
        c.session = Some(session);
        if let Some(old) = self.session_conn.insert(session, conn) {
            if let Some(old_conn) = self.conns.get_mut(&old) {
                // The session moved: the old connection must not act for it any more.
                info!(old_peer = %old_conn.peer, "closing the session's previous connection");
                old_conn.session = None;
                old_conn.out.close();
            }
        }
        send_connect_response(&c, timeout, session, session_password(session));
        info!(
            session = format!("{session:#x}"),
            timeout, "session reconnected"
        );
        self.conns.insert(conn, c);
        if self.peer.role() == Role::Leading {
            self.owners.insert(session, self.peer.self_id().0);
        } else {
            // Tell the leader at once: the session is ours now, and alive.
            let _ = self.peer.forward(Forward::Claim { session }.encode());
        }
    }

    fn disconnected(&mut self, conn: ConnId) {
        self.revalidating.retain(|_, (c, ..)| *c != conn);
        if let Some(c) = self.conns.remove(&conn) {
            self.watches.remove_watcher(conn);
            if let Some(s) = c.session {
                if self.session_conn.get(&s) == Some(&conn) {
                    self.session_conn.remove(&s);
                    self.waiting.remove(&s);
                }
            }
            debug!(peer = %c.peer, "connection gone");
        }
    }

    fn tick(&mut self) -> Result<(), CoreError> {
        self.peer.tick()?;
        self.drive()?;
        let now = self.now_ms();
        match self.peer.role() {
            Role::Leading if self.peer.is_serving() => {}
            Role::Following | Role::Observing if self.peer.is_serving() => {
                if now - self.last_touch_ms >= self.cfg.touch_interval_ms {
                    self.last_touch_ms = now;
                    let sessions: Vec<SessionId> = self.session_conn.keys().copied().collect();
                    if !sessions.is_empty() {
                        let _ = self.peer.forward(Forward::Touch { sessions }.encode());
                    }
                }
                return Ok(());
            }
            _ => return Ok(()),
        }
        self.sample_learner_lag();
        // The leader: session expiry and container reaping are its writes.
        for session in self.sessions.expired(now) {
            self.expire_as_leader(session, "timeout exceeded")?;
        }
        if now - self.last_container_check_ms >= self.cfg.container_check_interval_ms {
            self.last_container_check_ms = now;
            // 0: containers that never had a child stay (znode.container.maxNeverUsedIntervalMs).
            for path in self.tree.container_candidates(now, 0) {
                let span = info_span!("reap", %path, zxid = tracing::field::Empty);
                let _g = span.enter();
                debug!("reaping container or expired TTL node");
                let caller = Caller::system();
                self.propose(0, 0, &caller, Ok(&Op::DeleteContainer { path }))?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------
    // Requests.

    fn request(&mut self, conn: ConnId, req: ClientRequest) -> Result<(), CoreError> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let Some(session) = c.session else {
            // The session moved to another connection (or the handshake failed).
            debug!(peer = %c.peer, "request on a connection without a session");
            return Ok(());
        };
        c.stats.received += 1;
        self.stats.packets_received += 1;
        let now = self.now_ms();
        self.sessions.touch(session, now);
        let op = req.header.op;
        let xid_ = req.header.xid;
        // One span per client request (not per ping): its stages are children made
        // with it as explicit parent, so they stay in its trace when they end in a
        // later round (the waiter carries it). Fields are formatted lazily.
        let span = if xid_ == xid::PING {
            Span::none()
        } else {
            info_span!(
                "request",
                session = %Hex(session),
                xid = xid_,
                op,
                opcode = %OpName(op),
                zxid = tracing::field::Empty
            )
        };
        let _g = span.enter();
        let received = Instant::now();

        match &req.body {
            Request::Auth(auth) => {
                self.add_auth(conn, xid_, auth);
                return Ok(());
            }
            // A client opcode whose body did not decode (conn.rs passes it on as Unknown):
            // ZooKeeper answers MarshallingError in order and keeps the connection.
            Request::Unknown { op, .. } if is_malformed_client_op(*op) => {}
            Request::Sasl(_) => {
                // ZooKeeper without a SASL login (no JAAS `Server` section) answers every
                // token OK with a null token and the connection stays, unauthenticated:
                // clients configured for SASL carry on (ZooKeeperServer.processSasl).
                debug!("SASL token but no SASL configured; answering a null token");
                let body = Response::Sasl(wp::SetSaslResponse { token: None });
                self.send_reply(conn, xid_, 0, ErrorCode::Ok, &body);
                return Ok(());
            }
            Request::Unknown { .. } => {
                warn!("unimplemented opcode {op}; closing the connection as ZooKeeper does");
                let zxid = self.tree.last_zxid();
                self.send_reply(conn, xid_, zxid, ErrorCode::Unimplemented, &Response::Empty);
                self.close_conn(conn);
                return Ok(());
            }
            _ => {}
        }

        let read_only = self.conns.get(&conn).is_some_and(|c| c.read_only);
        if read_only && (to_op(&req.body).is_some() || matches!(req.body, Request::Sync(_))) {
            if matches!(req.body, Request::CloseSession) {
                self.send_reply(conn, xid_, 0, ErrorCode::Ok, &Response::Empty);
                self.close_conn(conn);
            } else {
                let zxid = self.tree.last_zxid();
                self.send_reply(conn, xid_, zxid, ErrorCode::NotReadOnly, &Response::Empty);
            }
            return Ok(());
        }

        // A write rejected before prep (disabled reconfig, a bad create mode) is still
        // an error Txn, as in ZooKeeper: it takes a zxid and is answered in order.
        if let Some(write) = to_op(&req.body) {
            let write = self.reconfig_or(&req.body, write);
            let after = if matches!(write, Ok(Op::CloseSession)) {
                self.sessions.set_closing(session);
                AfterApply::Closed
            } else {
                AfterApply::Reply
            };
            let write = if self.peer.role() == Role::Leading {
                self.check_owner(session, self.peer.self_id().0, write)
            } else {
                write
            };
            let auth = c_auth(&self.conns, conn);
            let is_super = self.is_super(&auth);
            let caller = Caller {
                session_id: session,
                auth: &auth,
                is_super,
            };
            self.waiting
                .entry(session)
                .or_default()
                .push_back(Waiter::Write {
                    conn,
                    cxid: xid_,
                    op,
                    after,
                    span: span.clone(),
                    waiting: Span::none(),
                    received,
                    done: None,
                });
            let frame = (self.peer.role() != Role::Leading).then(|| req.encode());
            if !self.submit(
                session,
                xid_,
                &caller,
                write.as_ref().map_err(|e| *e),
                frame,
            )? {
                // No leader to take it: the client reconnects elsewhere, as it would
                // to ZooKeeper.
                warn!("no leader to take the write; closing the connection");
                self.waiting.remove(&session);
                self.close_conn(conn);
            } else {
                self.await_quorum(session, &span);
            }
            return Ok(());
        }

        if matches!(req.body, Request::Sync(_)) {
            let token = self.next_sync_token;
            self.next_sync_token += 1;
            if self.peer.sync(token).is_err() {
                self.close_conn(conn);
                return Ok(());
            }
            self.sync_sessions.insert(token, session);
            self.waiting
                .entry(session)
                .or_default()
                .push_back(Waiter::Sync {
                    conn,
                    req,
                    token,
                    span: span.clone(),
                    received,
                    done: false,
                });
            return Ok(());
        }

        // A read or watch operation.
        if let Some(q) = self.waiting.get_mut(&session) {
            q.push_back(Waiter::Read {
                conn,
                req,
                span: span.clone(),
                received,
            });
        } else {
            self.read(conn, &req);
            self.stats
                .record_request(op, RequestKind::Read, received.elapsed());
        }
        Ok(())
    }

    fn is_super(&self, auth: &[Id]) -> bool {
        auth.iter().any(|id| id.scheme == "super")
    }

    fn add_auth(&mut self, conn: ConnId, xid_: i32, auth: &wp::AuthPacket) {
        let zxid = self.tree.last_zxid();
        let ids = match auth.scheme.as_str() {
            "digest" => {
                // Like ZooKeeper, any text authenticates: without a ':' the whole text
                // is hashed and becomes the user part of the id.
                let text =
                    String::from_utf8_lossy(auth.auth.as_deref().unwrap_or_default()).into_owned();
                acl::digest_auth_ids(&text, self.cfg.super_digest.as_deref())
            }
            // ZooKeeper's ip provider ignores the text and adds the peer's address.
            "ip" => self
                .conns
                .get(&conn)
                .map(|c| vec![Id::new("ip", c.peer.ip().to_string())])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if ids.is_empty() {
            // The scheme only: the credential text may be a password.
            warn!(scheme = %auth.scheme, "authentication failed; closing the connection");
            self.send_reply(conn, xid_, zxid, ErrorCode::AuthFailed, &Response::Empty);
            self.close_conn(conn);
            return;
        }
        debug!(
            scheme = %auth.scheme,
            user = auth_user_for_log(auth),
            is_super = self.is_super(&ids),
            "authenticated"
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            for id in ids {
                if !c.auth.contains(&id) {
                    c.auth.push(id);
                }
            }
        }
        self.send_reply(conn, xid_, 0, ErrorCode::Ok, &Response::Empty);
    }

    fn read(&mut self, conn: ConnId, req: &ClientRequest) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Some(session) = c.session else { return };
        let auth = c.auth.clone();
        let caller = Caller {
            session_id: session,
            auth: &auth,
            is_super: self.is_super(&auth),
        };
        let zxid = self.tree.last_zxid();
        let xid_ = req.header.xid;
        // A read's stages: `apply` is the read of the tree (and the watch it sets).
        let request = stage_parent();
        let apply = stage!(&request, "apply");
        let applying = apply.enter();
        let (err, body) = self.read_body(conn, session, &caller, &req.body);
        drop(applying);
        drop(apply);
        if xid_ == xid::PING {
            self.send_reply(conn, xid::PING, zxid, ErrorCode::Ok, &Response::Empty);
            return;
        }
        let reply = stage!(&request, "reply");
        let _g = reply.enter();
        self.send_reply(conn, xid_, zxid, err, &body);
    }

    fn read_body(
        &mut self,
        conn: ConnId,
        session: SessionId,
        caller: &Caller<'_>,
        body: &Request,
    ) -> (ErrorCode, Response) {
        let ok = |r| (ErrorCode::Ok, r);
        match body {
            Request::Ping => ok(Response::Empty),
            Request::Exists(r) => match self.tree.exists(caller, &r.path) {
                Ok(Some(stat)) => {
                    if r.watch {
                        self.watches.add_data_watch(&r.path, conn);
                    }
                    ok(Response::Exists(wp::ExistsResponse { stat }))
                }
                Ok(None) => {
                    if r.watch {
                        self.watches.add_data_watch(&r.path, conn);
                    }
                    (ErrorCode::NoNode, Response::Empty)
                }
                Err(e) => (e, Response::Empty),
            },
            Request::GetData(r) => match self.tree.get_data(caller, &r.path) {
                Ok((data, stat)) => {
                    // Null data goes back as null (jute length -1), as ZooKeeper does.
                    let data = data.map(<[u8]>::to_vec);
                    if r.watch {
                        self.watches.add_data_watch(&r.path, conn);
                    }
                    ok(Response::GetData(wp::GetDataResponse { data, stat }))
                }
                Err(e) => (e, Response::Empty),
            },
            Request::GetChildren(r) => match self.tree.get_children(caller, &r.path) {
                Ok(children) => {
                    if r.watch {
                        self.watches.add_child_watch(&r.path, conn);
                    }
                    ok(Response::GetChildren(wp::GetChildrenResponse { children }))
                }
                Err(e) => (e, Response::Empty),
            },
            Request::GetChildren2(r) => match self.tree.get_children2(caller, &r.path) {
                Ok((children, stat)) => {
                    if r.watch {
                        self.watches.add_child_watch(&r.path, conn);
                    }
                    ok(Response::GetChildren2(wp::GetChildren2Response {
                        children,
                        stat,
                    }))
                }
                Err(e) => (e, Response::Empty),
            },
            Request::GetAcl(r) => match self.tree.get_acl(caller, &r.path) {
                Ok((acl, stat)) => ok(Response::GetAcl(wp::GetAclResponse { acl, stat })),
                Err(e) => (e, Response::Empty),
            },
            Request::Sync(r) => ok(Response::Sync(wp::SyncResponse {
                path: r.path.clone(),
            })),
            Request::MultiRead(m) => {
                let results = m
                    .ops
                    .iter()
                    .map(|op| match op {
                        Request::GetData(r) => match self.tree.get_data(caller, &r.path) {
                            Ok((data, stat)) => wp::OpResult::GetData(wp::GetDataResponse {
                                data: data.map(<[u8]>::to_vec),
                                stat,
                            }),
                            Err(e) => wp::OpResult::Error(e.as_i32()),
                        },
                        Request::GetChildren(r) => match self.tree.get_children(caller, &r.path) {
                            Ok(children) => {
                                wp::OpResult::GetChildren(wp::GetChildrenResponse { children })
                            }
                            Err(e) => wp::OpResult::Error(e.as_i32()),
                        },
                        _ => wp::OpResult::Error(ErrorCode::MarshallingError.as_i32()),
                    })
                    .collect();
                ok(Response::MultiRead(wp::MultiResponse { results }))
            }
            Request::GetEphemerals(r) => {
                let ephemerals = self.tree.get_ephemerals(session, &r.prefix_path);
                ok(Response::GetEphemerals(wp::GetEphemeralsResponse {
                    ephemerals,
                }))
            }
            Request::GetAllChildrenNumber(r) => {
                match self.tree.get_all_children_number(caller, &r.path) {
                    Ok(total_number) => ok(Response::GetAllChildrenNumber(
                        wp::GetAllChildrenNumberResponse { total_number },
                    )),
                    Err(e) => (e, Response::Empty),
                }
            }
            Request::WhoAmI => {
                let client_info = caller
                    .auth
                    .iter()
                    .map(|id| wp::ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: whoami_user(id),
                    })
                    .collect();
                ok(Response::WhoAmI(wp::WhoAmIResponse { client_info }))
            }
            Request::AddWatch(r) => {
                let Some(mode) = AddWatchMode::from_i32(r.mode) else {
                    return (ErrorCode::BadArguments, Response::Empty);
                };
                if !rookery_tree::path::is_valid(&r.path) {
                    return (ErrorCode::BadArguments, Response::Empty);
                }
                self.watches.add_watch(&r.path, conn, mode);
                ok(Response::AddWatch(wp::ErrorResponse { err: 0 }))
            }
            Request::CheckWatches(r) => match WatcherType::from_i32(r.watcher_type) {
                Some(kind) => match self.watches.check_watches(&r.path, conn, kind) {
                    Ok(()) => ok(Response::Empty),
                    Err(e) => (e, Response::Empty),
                },
                None => (ErrorCode::BadArguments, Response::Empty),
            },
            Request::RemoveWatches(r) => match WatcherType::from_i32(r.watcher_type) {
                Some(kind) => match self.watches.remove_watches(&r.path, conn, kind) {
                    Ok(()) => ok(Response::Empty),
                    Err(e) => (e, Response::Empty),
                },
                None => (ErrorCode::BadArguments, Response::Empty),
            },
            Request::SetWatches(r) => {
                let req = TreeSetWatches {
                    relative_zxid: r.relative_zxid,
                    data: &r.data_watches,
                    exist: &r.exist_watches,
                    child: &r.child_watches,
                    persistent: &[],
                    persistent_recursive: &[],
                };
                self.set_watches(conn, &req);
                ok(Response::Empty)
            }
            Request::SetWatches2(r) => {
                let req = TreeSetWatches {
                    relative_zxid: r.relative_zxid,
                    data: &r.data_watches,
                    exist: &r.exist_watches,
                    child: &r.child_watches,
                    persistent: &r.persistent_watches,
                    persistent_recursive: &r.persistent_recursive_watches,
                };
                self.set_watches(conn, &req);
                ok(Response::Empty)
            }
            Request::Unknown { .. } => (ErrorCode::MarshallingError, Response::Empty),
            // Writes, auth and unknown opcodes never reach here.
            _ => (ErrorCode::Unimplemented, Response::Empty),
        }
    }

    fn set_watches(&mut self, conn: ConnId, req: &TreeSetWatches<'_>) {
        for ev in self.watches.set_watches(&self.tree, conn, req) {
            self.notify(conn, ev.event_type.as_i32(), &ev.path, ev.zxid);
        }
    }

    // ---------------------------------------------------------------------------------
    // Output.

    fn notify(&mut self, conn: ConnId, event_type: i32, path: &str, zxid: i64) {
        let resp = wp::ServerResponse {
            header: wp::ReplyHeader {
                xid: xid::NOTIFICATION,
                zxid,
                err: 0,
            },
            body: Response::Notification(wp::WatcherEvent {
                event_type,
                state: KeeperState::SyncConnected.as_i32(),
                path: path.to_owned(),
            }),
        };
        self.send(conn, resp.encode());
    }

    fn send_reply(&mut self, conn: ConnId, xid_: i32, zxid: i64, err: ErrorCode, body: &Response) {
        let resp = wp::ServerResponse {
            header: wp::ReplyHeader {
                xid: xid_,
                zxid,
                err: err.as_i32(),
            },
            body: if err == ErrorCode::Ok || matches!(body, Response::Multi(_)) {
                body.clone()
            } else {
                Response::Empty
            },
        };
        self.send(conn, resp.encode());
    }

    fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.falling_behind {
            return;
        }
        if c.out.frame(frame) {
            c.stats.sent += 1;
            self.stats.packets_sent += 1;
        } else {
            // The session survives: the client may reconnect and resume it.
            warn!(
                peer = %c.peer,
                limit_mib = MAX_QUEUED_BYTES >> 20,
                "closing connection: the client stopped reading its replies"
            );
            c.falling_behind = true;
            c.out.close();
        }
    }

    fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            c.out.close();
        }
    }

    // ---------------------------------------------------------------------------------
    // Snapshots and four-letter words.

    /// Every `snap_count` Txns, freezes the tree (an O(1) clone of its persistent
    /// maps, exactly the state at its last zxid) and hands it to a thread that
    /// serializes, saves and applies retention, so writes never wait for a snapshot.
    /// At most one is in flight; a snapshot due meanwhile starts after it finishes.
    fn maybe_snapshot(&mut self) -> Result<(), CoreError> {
        if self.purge_task.as_ref().is_some_and(|t| t.is_finished()) {
            self.finish_purge();
        }
        if self
            .snapshot_task
            .as_ref()
            .is_some_and(|t| t.handle.is_finished())
        {
            self.finish_snapshot()?;
        }
        let due =
            self.txns_since_snapshot >= self.cfg.snap_count || !self.snapshot_wanted.is_empty();
        if !due || self.snapshot_task.is_some() {
            return Ok(());
        }
        if self.tree.last_zxid() > self.peer.durable_zxid() {
            // The tree holds entries the log may still lose (committed by the others'
            // ACKs before our sync finished): a snapshot of it followed by a crash would
            // leave a hole in the log behind the snapshot. A later round takes it.
            return Ok(());
        }
        self.txns_since_snapshot = 0;
        let started = Instant::now();
        let frozen = self.tree.clone();
        let last = frozen.last_zxid();
        let mut store = self.peer.storage().snapshot_store();
        let retain = self.cfg.purge.then_some(self.cfg.snap_retain_count);
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let t = Instant::now();
                let whole = t;
                let bytes = frozen.snapshot();
                // The clone's copy of every node changed since the freeze goes now.
                drop(frozen);
                let serialize_ms = t.elapsed().as_millis() as u64;
                let t = Instant::now();
                store.save_snapshot(last, &bytes)?;
                let save_ms = t.elapsed().as_millis() as u64;
                let took = whole.elapsed();
                // Not needed past here: retention (which reads every kept snapshot
                // back to check it) can take a while.
                let len = bytes.len();
                drop(bytes);
                let retained = match retain.map(|n| store.retain_snapshots(n)) {
                    None => None,
                    Some(Ok(r)) => {
                        debug!(retained = ?r.retained, deleted = ?r.deleted, "snapshot retention");
                        Some(r.retained)
                    }
                    Some(Err(e)) => {
                        error!(error = %e, "snapshot retention failed");
                        None
                    }
                };
                Ok(SnapshotSaved {
                    bytes: len,
                    serialize_ms,
                    save_ms,
                    took,
                    retained,
                })
            });
        match spawned {
            Ok(handle) => {
                self.snapshot_task = Some(SnapshotTask {
                    last_zxid: last,
                    handle,
                    waiters: std::mem::take(&mut self.snapshot_wanted),
                });
                debug!(
                    zxid = format!("{last:#x}"),
                    core_us = started.elapsed().as_micros() as u64,
                    "snapshot started"
                );
            }
            Err(e) => {
                error!(error = %e, "could not start the snapshot thread");
                for w in self.snapshot_wanted.drain(..) {
                    let _ = w.send(Err(rookery_admin::BackendError::Unavailable(format!(
                        "could not start the snapshot thread: {e}"
                    ))));
                }
            }
        }
        Ok(())
    }

    /// Waits for the snapshot in flight (if any), then drops the log before the
    /// oldest retained snapshot: only a saved snapshot may stand in for the log.
    fn finish_snapshot(&mut self) -> Result<(), CoreError> {
        let Some(task) = self.snapshot_task.take() else {
            return Ok(());
        };
        let zxid = format!("{:#x}", task.last_zxid);
        let failed = |waiters: Vec<admin::SnapshotWaiter>, why: String| {
            for w in waiters {
                let _ = w.send(Err(rookery_admin::BackendError::Unavailable(why.clone())));
            }
        };
        let saved = match task.handle.join() {
            Ok(Ok(saved)) => saved,
            Ok(Err(e)) => {
                error!(%zxid, error = %e, "snapshot save failed");
                failed(task.waiters, format!("snapshot save failed: {e}"));
                return Ok(());
            }
            Err(_) => {
                error!(%zxid, "snapshot thread panicked");
                failed(task.waiters, "snapshot thread panicked".into());
                return Ok(());
            }
        };
        for w in task.waiters {
            let _ = w.send(Ok((task.last_zxid, saved.bytes as u64)));
        }
        self.stats.metrics.snapshot(saved.took, saved.bytes);
        info!(
            %zxid,
            bytes = saved.bytes,
            serialize_ms = saved.serialize_ms,
            save_ms = saved.save_ms,
            "snapshot taken"
        );
        let retain = self.cfg.snap_retain_count;
        if let Some(&oldest) = saved
            .retained
            .as_ref()
            .filter(|r| r.len() >= retain)
            .and_then(|r| r.last())
        {
            if self.purge_task.is_some() {
                // The last purge still runs; the next snapshot purges further.
                return Ok(());
            }
            let purger = self.peer.storage().log_purger();
            let spawned = std::thread::Builder::new()
                .name("log-purge".into())
                .spawn(move || purger.purge_before(oldest));
            match spawned {
                Ok(handle) => self.purge_task = Some(handle),
                Err(e) => error!(error = %e, "could not start the log purge thread"),
            }
        }
        Ok(())
    }

    /// Waits for the log purge in flight, if any. A failed purge leaves old entries
    /// behind (the next one retries); it is logged, not fatal.
    fn finish_purge(&mut self) {
        let Some(task) = self.purge_task.take() else {
            return;
        };
        match task.join() {
            Ok(Ok(entries)) => debug!(
                entries,
                "purged log entries older than the retained snapshots"
            ),
            Ok(Err(e)) => error!(error = %e, "log purge failed"),
            Err(_) => error!("log purge thread panicked"),
        }
    }

    /// Keeps the last [`EVENTS_KEPT`] for Status; the log has them all.
    fn record_event(&mut self, what: String) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back((wall_ms(), what));
    }

    fn mode(&self) -> Mode {
        if self.cfg.standalone {
            return Mode::Standalone;
        }
        if !self.peer.is_serving() {
            return if self.cfg.read_only_mode {
                Mode::ReadOnly
            } else {
                Mode::Looking
            };
        }
        match self.peer.role() {
            Role::Leading => Mode::Leader,
            Role::Following => Mode::Follower,
            Role::Observing => Mode::Observer,
            Role::Looking => Mode::Looking,
        }
    }

    /// What the four-letter words and `/metrics` print, borrowed for one answer;
    /// `peer` is the asking client connection (a scrape is none).
    fn words_view(&self, peer: Option<SocketAddr>) -> words::View<'_> {
        let mode = self.mode();
        let role = self.peer.role();
        let leader = (role == Role::Leading && !self.cfg.standalone).then(|| {
            let learners = self.peer.learners();
            let synced = |observer: bool| {
                learners
                    .iter()
                    .filter(|l| l.observer == observer && l.phase >= LearnerPhase::Synced)
                    .count()
            };
            words::LeaderSummary {
                learners: learners.len(),
                synced_followers: synced(false),
                synced_observers: synced(true),
                pending_syncs: self.peer.pending_syncs(),
            }
        });
        words::View {
            mode: mode.as_str(),
            leader,
            tree: &self.tree,
            watches: &self.watches,
            stats: &self.stats,
            conns: self
                .conns
                .iter()
                .map(|(id, c)| words::ConnView {
                    id: *id,
                    peer: c.peer,
                    session: c.session,
                    timeout_ms: c.negotiated_timeout_ms,
                    stats: &c.stats,
                })
                .collect(),
            sessions: self.sessions.len(),
            describe: &self.cfg.describe,
            now_ms: self.now_ms(),
            started_ms: self.start_wall_ms,
            peer,
        }
    }

    fn four_letter(&mut self, word: FourLetterWord, peer: SocketAddr) -> String {
        let name = word.as_str();
        if !self.cfg.four_letter_words.is_enabled(name) {
            return format!("{name} is not executed because it is not in the whitelist.\n");
        }
        let mode = self.mode();
        if mode == Mode::Looking && !words::answers_when_not_serving(word) {
            return words::NOT_SERVING.to_owned();
        }
        let view = self.words_view(Some(peer));
        let text = words::answer(word, &view);
        match word {
            FourLetterWord::Srst => self.stats.reset(),
            FourLetterWord::Crst => {
                let now = self.now_ms();
                for c in self.conns.values_mut() {
                    c.stats = words::ConnStats::new(now);
                }
            }
            _ => {}
        }
        text
    }
}

fn c_auth(conns: &BTreeMap<ConnId, Conn>, conn: ConnId) -> Vec<Id> {
    conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default()
}

/// The user name whoami reports: ZooKeeper's `getUserName`, which for digest is the
/// name before the colon (never the password hash) and for other schemes the id.
fn whoami_user(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
        _ => id.id.clone(),
    }
}

/// The 16-byte session password. ZooKeeper derives it from the session id and a fixed
/// secret (`new Random(sessionId ^ superSecret)`), so any server can check it without
/// shared state; we do the same with the same generator, which keeps it stable across
/// restarts and, later, across the ensemble.
pub(crate) fn session_password(session: SessionId) -> Vec<u8> {
    const SUPER_SECRET: i64 = 0xB341_5C00;
    let mut seed = ((session ^ SUPER_SECRET) ^ 0x5DEE_CE66D) & ((1 << 48) - 1);
    let mut next_int = || {
        seed = (seed.wrapping_mul(0x5DEE_CE66D).wrapping_add(0xB)) & ((1 << 48) - 1);
        (seed >> 16) as i32
    };
    let mut out = Vec::with_capacity(16);
    while out.len() < 16 {
        let mut rnd = next_int();
        for _ in 0..4.min(16 - out.len()) {
            out.push(rnd as u8);
            rnd >>= 8;
        }
    }
    out
}

fn send_connect_response(c: &Conn, timeout_ms: i32, session_id: SessionId, passwd: Vec<u8>) {
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id,
        passwd,
        read_only: c.read_only_byte.then_some(false),
    };
    c.out.frame(resp.to_bytes());
}

/// The write a request asks for, or None for reads. Requests that cannot be a valid
/// write (an unknown create mode) yield the error ZooKeeper answers with.
fn to_op(body: &Request) -> Option<Result<Op, ErrorCode>> {
    let create =
        |kind: CreateKind, r: &wp::CreateRequest, ttl: Option<i64>| -> Result<Op, ErrorCode> {
            let mode = CreateMode::from_i32(r.flags).ok_or(ErrorCode::BadArguments)?;
            Ok(Op::Create {
                kind,
                path: r.path.clone(),
                data: r.data.clone(),
                acl: r.acl.clone(),
                mode,
                ttl_ms: ttl,
            })
        };
    Some(match body {
        Request::Create(r) => create(CreateKind::Create, r, None),
        Request::Create2(r) => create(CreateKind::Create2, r, None),
        Request::CreateContainer(r) => create(CreateKind::CreateContainer, r, None),
        Request::CreateTtl(r) => {
            let as_create = wp::CreateRequest {
                path: r.path.clone(),
                data: r.data.clone(),
                acl: r.acl.clone(),
                flags: r.flags,
            };
            create(CreateKind::CreateTtl, &as_create, Some(r.ttl))
        }
        Request::Delete(r) => Ok(Op::Delete {
            path: r.path.clone(),
            version: r.version,
        }),
        Request::SetData(r) => Ok(Op::SetData {
            path: r.path.clone(),
            data: r.data.clone(),
            version: r.version,
        }),
        Request::SetAcl(r) => Ok(Op::SetAcl {
            path: r.path.clone(),
            acl: r.acl.clone(),
            version: r.version,
        }),
        Request::Check(r) => Ok(Op::Check {
            path: r.path.clone(),
            version: r.version,
        }),
        Request::Multi(m) => {
            let mut ops = Vec::with_capacity(m.ops.len());
            for sub in &m.ops {
                match to_op(sub) {
                    Some(Ok(op)) => ops.push(op),
                    Some(Err(e)) => return Some(Err(e)),
                    None => return Some(Err(ErrorCode::MarshallingError)),
                }
            }
            Ok(Op::Multi(ops))
        }
        Request::CloseSession => Ok(Op::CloseSession),
        // Reconfig is disabled (reconfigEnabled=false), as in a default ZooKeeper.
        Request::Reconfig(_) => Err(ErrorCode::ReconfigDisabled),
        // Only the server's reaper may delete containers; ZooKeeper's prep rejects a
        // client's op 20 with BadArguments (an error Txn; the connection stays).
        Request::DeleteContainer(_) => Err(ErrorCode::BadArguments),
        // A write whose body did not decode: ZooKeeper's prep still makes it an error
        // Txn (MarshallingError) that takes a zxid.
        Request::Unknown { op, .. } if is_malformed_write_op(*op) => {
            Err(ErrorCode::MarshallingError)
        }
        _ => return None,
    })
}

/// Who an `addauth` says it is, fit for a log line: the user part of a `digest`
/// credential (`user:password`), never the password nor the digest id
/// (`user:base64(sha1)`), which is as good as the password to anyone who can read the
/// log and try passwords against it offline. A digest credential without a `:` is
/// all secret (ZooKeeper hashes the whole text as the user), so nothing of it is
/// shown; other schemes' text is not shown either.
fn auth_user_for_log(auth: &wp::AuthPacket) -> &str {
    const HIDDEN: &str = "<not shown>";
    if auth.scheme != "digest" {
        return HIDDEN;
    }
    auth.auth
        .as_deref()
        .and_then(|text| std::str::from_utf8(text).ok())
        .and_then(|text| text.split_once(':'))
        .map_or(HIDDEN, |(user, _)| user)
}

/// Whether an `Unknown` body carries a client opcode that has a body decoder, which
/// only a body that failed to decode does.
fn is_malformed_client_op(op: i32) -> bool {
    use rookery_wire::OpCode as O;
    O::from_i32(op).is_some_and(|code| {
        !matches!(
            code,
            O::Notification | O::CreateSession | O::Error | O::Sasl
        )
    })
}

/// Whether a malformed-body `Unknown` is of an opcode that ZooKeeper preps as a Txn.
fn is_malformed_write_op(op: i32) -> bool {
    use rookery_wire::OpCode as O;
    O::from_i32(op).is_some_and(|code| {
        matches!(
            code,
            O::Create
                | O::Create2
                | O::CreateContainer
                | O::CreateTtl
                | O::Delete
                | O::SetData
                | O::SetAcl
                | O::Check
                | O::Multi
                | O::Reconfig
        )
    })
}

/// ZooKeeper's reply to an applied Txn: the header error and body.
fn reply_for(result: &OpResult) -> (ErrorCode, Response) {
    match result {
        OpResult::Error(e) => (*e, Response::Empty),
        OpResult::Create { kind, path, stat } => (
            ErrorCode::Ok,
            if *kind == CreateKind::Create {
                Response::Create(wp::CreateResponse { path: path.clone() })
            } else {
                Response::Create2(wp::Create2Response {
                    path: path.clone(),
                    stat: *stat,
                })
            },
        ),
        OpResult::SetData { stat } => (
            ErrorCode::Ok,
            Response::SetData(wp::SetDataResponse { stat: *stat }),
        ),
        OpResult::SetAcl { stat } => (
            ErrorCode::Ok,
            Response::SetAcl(wp::SetAclResponse { stat: *stat }),
        ),
        OpResult::Reconfig { data, stat } => (
            ErrorCode::Ok,
            Response::Reconfig(wp::GetDataResponse {
                data: Some(data.clone()),
                stat: *stat,
            }),
        ),
        OpResult::Multi(results) => (
            ErrorCode::Ok,
            Response::Multi(wp::MultiResponse {
                results: results.iter().map(multi_result).collect(),
            }),
        ),
        OpResult::Delete | OpResult::Check | OpResult::CreateSession | OpResult::CloseSession => {
            (ErrorCode::Ok, Response::Empty)
        }
    }
}

fn multi_result(r: &OpResult) -> wp::OpResult {
    match r {
        OpResult::Create {
            kind: CreateKind::Create,
            path,
            ..
        } => wp::OpResult::Create(wp::CreateResponse { path: path.clone() }),
        OpResult::Create { path, stat, .. } => wp::OpResult::Create2(wp::Create2Response {
            path: path.clone(),
            stat: *stat,
        }),
        OpResult::Delete => wp::OpResult::Delete,
        OpResult::SetData { stat } => wp::OpResult::SetData(wp::SetDataResponse { stat: *stat }),
        OpResult::Check => wp::OpResult::Check,
        OpResult::Error(e) => wp::OpResult::Error(e.as_i32()),
        // Not possible inside a multi; answer as ZooKeeper would for a bad op.
        _ => wp::OpResult::Error(ErrorCode::MarshallingError.as_i32()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_zab::storage::TxnLog;

    #[test]
    fn session_password_is_16_bytes_and_stable() {
        let a = session_password(0x1000_0000_0000_0001);
        assert_eq!(a.len(), 16);
        assert_eq!(a, session_password(0x1000_0000_0000_0001));
        assert_ne!(a, session_password(0x1000_0000_0000_0002));
    }

    #[test]
    fn auth_log_names_the_digest_user_and_nothing_secret() {
        let auth = |scheme: &str, text: &[u8]| wp::AuthPacket {
            auth_type: 0,
            scheme: scheme.to_owned(),
            auth: Some(text.to_vec()),
        };
        assert_eq!(
            auth_user_for_log(&auth("digest", b"alice:s3cret:x")),
            "alice"
        );
        // Without a ':' the whole text is the secret.
        assert_eq!(auth_user_for_log(&auth("digest", b"s3cret")), "<not shown>");
        assert_eq!(auth_user_for_log(&auth("x509", b"s3cret:x")), "<not shown>");
        assert_eq!(auth_user_for_log(&auth("digest", b"\xff:s")), "<not shown>");
    }

    fn snapshot_core(dir: &std::path::Path) -> Core {
        snapshot_core_with(dir, true)
    }

    fn snapshot_core_with(dir: &std::path::Path, purge: bool) -> Core {
        let cfg = CoreConfig {
            server_id: 1,
            tick_ms: 2000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            tree: TreeConfig::default(),
            super_digest: None,
            four_letter_words: Default::default(),
            container_check_interval_ms: 60_000,
            snap_count: 10,
            fsync_warning: std::time::Duration::from_secs(1),
            snap_retain_count: 3,
            purge,
            describe: Default::default(),
            peer: PeerConfig {
                self_id: ServerId(1),
                quorum: rookery_zab::quorum::QuorumMaj::new([ServerId(1)], [], 0).unwrap(),
                config_in_entry: rookery_zab::peer::no_configs,
                timeouts: Default::default(),
                bugs: Default::default(),
                roll_epoch_at_counter: rookery_zab::peer::DEFAULT_ROLL_EPOCH_AT_COUNTER,
            },
            standalone: true,
            touch_interval_ms: 1000,
            read_only_mode: false,
            members: Vec::new(),
            ensemble: None,
            local_peers: BTreeMap::new(),
            reconfig_enabled: false,
            min_voters: 1,
            #[cfg(feature = "inject-bugs")]
            bugs: Default::default(),
        };
        // One entry per log segment: the purge drops whole segments, so this makes it
        // exact and the tests can check where the log starts.
        let storage = SledStorage::open_with_segment_entries(dir, 1).unwrap();
        Core::open(cfg, storage, None, None).unwrap()
    }

    /// The last zxids of the snapshots in `core`'s storage, oldest first.
    fn snapshot_zxids(core: &Core) -> Vec<i64> {
        let listed = core.peer.storage().list_snapshots().unwrap();
        listed.iter().map(|s| s.last_zxid).collect()
    }

    /// Proposes one Txn and finishes the round (flush, commit, apply).
    fn write(core: &mut Core, txn: Txn) -> i64 {
        let zxid = core
            .peer
            .propose(|zxid| {
                let header = TxnHeader {
                    session_id: 0,
                    cxid: 0,
                    zxid,
                    time_ms: 1_000,
                };
                encode_entry(&header, &txn)
            })
            .unwrap();
        // A round without its snapshot check: the tests decide when to snapshot.
        core.peer.flush().unwrap();
        core.drive().unwrap();
        assert_eq!(core.tree.last_zxid(), zxid);
        zxid
    }

    fn create(core: &mut Core, path: String) -> i64 {
        let parent_cversion = core.tree.node("/").map_or(0, |n| n.stat.cversion) + 1;
        write(
            core,
            Txn::Create {
                kind: CreateKind::Create,
                path,
                data: Some(b"v".to_vec()),
                acl: rookery_wire::Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion,
            },
        )
    }

    #[test]
    fn a_background_snapshot_is_the_state_at_its_zxid_and_purges_only_once_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut core = snapshot_core(dir.path());
        let first = create(&mut core, "/n0".into());
        let mut taken = Vec::new();
        for round in 0..4 {
            for i in 0..9 {
                create(&mut core, format!("/r{round}-{i}"));
            }
            let expected = core.tree.snapshot();
            let at = core.tree.last_zxid();
            core.maybe_snapshot().unwrap();
            assert!(
                core.snapshot_task.is_some(),
                "round {round}: no snapshot started"
            );
            // Writes go on while the snapshot thread serializes the frozen tree.
            write(
                &mut core,
                Txn::SetData {
                    path: "/n0".into(),
                    data: Some(format!("after {round}").into_bytes()),
                    version: round + 1,
                },
            );
            create(&mut core, format!("/after{round}"));
            core.finish_snapshot().unwrap();
            // The purge runs on its own thread; wait for it before looking at the log.
            core.finish_purge();
            let saved = core.peer.storage().load_snapshot(at).unwrap().unwrap();
            assert_eq!(
                saved.data, expected,
                "round {round}: not the state at {at:#x}"
            );
            taken.push(at);
            // Fewer than snap_retain_count saved snapshots: the whole log stays.
            let oldest_kept = if taken.len() < 3 {
                first
            } else {
                taken[taken.len() - 3]
            };
            assert_eq!(core.peer.storage().first_zxid().unwrap(), Some(oldest_kept));
        }
        assert_eq!(snapshot_zxids(&core), taken[1..]);
        // Recovery from the newest snapshot plus the log after it.
        let live = core.tree.clone();
        drop(core);
        let core = snapshot_core(dir.path());
        assert_eq!(core.tree, live);
    }

    #[test]
    fn a_start_that_replays_the_log_snapshots_once_and_the_next_start_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut core = snapshot_core(dir.path());
        for i in 0..5 {
            create(&mut core, format!("/n{i}"));
        }
        let live = core.tree.clone();
        drop(core);
        let mut core = snapshot_core(dir.path());
        assert_eq!(core.tree, live);
        assert!(core.peer.storage().list_snapshots().unwrap().is_empty());
        // Five Txns replayed, fewer than snapCount (10): due all the same.
        core.maybe_snapshot().unwrap();
        core.finish_snapshot().unwrap();
        assert_eq!(snapshot_zxids(&core), vec![live.last_zxid()]);
        drop(core);
        // Nothing after the snapshot to replay: no second one.
        let mut core = snapshot_core(dir.path());
        assert_eq!(core.tree, live);
        core.maybe_snapshot().unwrap();
        assert!(core.snapshot_task.is_none());
    }

    #[test]
    fn purge_interval_zero_keeps_every_snapshot_and_the_whole_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut core = snapshot_core_with(dir.path(), false);
        let first = create(&mut core, "/n0".into());
        for round in 0..5 {
            for i in 0..10 {
                create(&mut core, format!("/r{round}-{i}"));
            }
            core.maybe_snapshot().unwrap();
            core.finish_snapshot().unwrap();
        }
        assert_eq!(core.peer.storage().list_snapshots().unwrap().len(), 5);
        assert_eq!(core.peer.storage().first_zxid().unwrap(), Some(first));
    }
}
