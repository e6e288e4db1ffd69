//! What peers say to each other: ZooKeeper's quorum packets (`Leader.java` constants),
//! plus the election notification. The transport encodes them (prost, `proto/`); the core
//! only sees these values and trusts the transport for who sent them.
//!
//! Differences from ZooKeeper's packets:
//! - ACK and COMMIT are cumulative: `Ack { zxid }` says every proposal of this epoch up
//!   to `zxid` is durable at the sender, `Commit { zxid }` commits everything up to it.
//!   ZooKeeper acks and commits one zxid at a time over TCP; cumulative messages give
//!   the same result and survive a lost packet.
//! - `Ping` carries no session table: learners relay session touches as
//!   [`Message::Request`] payloads the server defines.
//! - `Sync` has a token so a learner can match answers to its waiting clients.

use crate::election::Notification;
use crate::quorum::ServerId;
use crate::{Epoch, Zxid};

/// One peer message. Payloads (Txns, forwarded requests, snapshots) are opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Fast leader election.
    Notification(Notification),

    // Discovery.
    /// FOLLOWERINFO / OBSERVERINFO: learner -> leader on connecting.
    FollowerInfo {
        accepted_epoch: Epoch,
        last_zxid: Zxid,
        observer: bool,
    },
    /// LEADERINFO: the epoch the leader proposes, and its term: the epoch it was
    /// established in, which its epoch rolls do not change. `observer`: the role the
    /// learner takes with this leader, which the leader's configurations decide (an
    /// observer being promoted syncs as a follower).
    LeaderInfo {
        new_epoch: Epoch,
        term: Epoch,
        observer: bool,
    },
    /// ACKEPOCH: the learner accepted `new_epoch` and reports its history, and the
    /// role LEADERINFO gave it: a leader that meanwhile decided otherwise (a LEADERINFO
    /// of an earlier handshake arrived late) starts the handshake over.
    AckEpoch {
        current_epoch: Epoch,
        last_zxid: Zxid,
        observer: bool,
    },

    // Synchronization: one of Diff/Trunc/Snap, then Proposals (and Commits) of the
    // leader's history after it, then NewLeader; the learner acks it and waits for
    // UpToDate before it serves. Each of the three names the leader's term (its
    // LEADERINFO's), so a copy that arrives late from an earlier leadership of the
    // same server is told apart; 0 from a peer that predates the field.
    /// DIFF: the learner's log is a prefix of the leader's up to `last_zxid`.
    Diff {
        last_zxid: Zxid,
        term: Epoch,
    },
    /// TRUNC: drop everything after `zxid`, then continue as a DIFF.
    Trunc {
        zxid: Zxid,
        term: Epoch,
    },
    /// SNAP: the leader's tree at `zxid`, `total` bytes, in chunks from `offset`;
    /// replaces the learner's tree and log once complete. Chunks keep every frame
    /// small however large the tree.
    Snap {
        zxid: Zxid,
        term: Epoch,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    },
    /// NEWLEADER: the sync stream is complete through `last_zxid`; ack once it is
    /// durable. A learner whose log ends elsewhere missed part of the stream.
    NewLeader {
        epoch: Epoch,
        last_zxid: Zxid,
    },
    /// ACK of NEWLEADER (ZooKeeper sends an ACK with zxid `epoch << 32`).
    AckNewLeader {
        epoch: Epoch,
    },
    /// UPTODATE: a quorum accepted this leader; serve, and apply through `commit_zxid`.
    UpToDate {
        commit_zxid: Zxid,
    },

    // Epoch roll (not in ZooKeeper, which holds an election when the counter runs
    // out): an established leader moves to `epoch` once a quorum has persisted it.
    /// Promise `epoch` to the same leader once holding its history through
    /// `last_zxid`, the old epoch's last proposal. It becomes the learner's current
    /// epoch only with the epoch's first Txn, which the leader sends after a quorum
    /// promised it.
    NewEpoch {
        epoch: Epoch,
        last_zxid: Zxid,
    },
    AckNewEpoch {
        epoch: Epoch,
    },

    // Broadcast.
    /// `prev_zxid` is the entry before it in the leader's log: a learner appends only
    /// onto that entry, so a lost or reordered packet is a detected gap, never a hole.
    Proposal {
        zxid: Zxid,
        prev_zxid: Zxid,
        payload: Vec<u8>,
    },
    /// Cumulative (see the module doc).
    Ack {
        zxid: Zxid,
    },
    /// Cumulative (see the module doc).
    Commit {
        zxid: Zxid,
    },
    /// INFORM: a committed Txn for an observer.
    Inform {
        zxid: Zxid,
        prev_zxid: Zxid,
        payload: Vec<u8>,
    },

    // Liveness and learner requests.
    /// Leader -> learner heartbeat: the commit point, and the last zxid sent to this
    /// learner (one behind it lost the stream's tail and no later packet showed the
    /// gap). The learner answers with its last logged zxid in both.
    Ping {
        zxid: Zxid,
        last_zxid: Zxid,
    },
    /// REQUEST: a learner forwards a write (or a session touch) to the leader.
    Request {
        payload: Vec<u8>,
    },
    /// SYNC from a learner; answered by `SyncReply` once everything the leader had
    /// proposed when it arrived is committed.
    Sync {
        token: u64,
    },
    /// `zxid`: the commit point that answers it; the learner answers its client once
    /// it has applied that far (a lost COMMIT cannot make it answer early).
    SyncReply {
        token: u64,
        zxid: Zxid,
    },
    /// The sender's committed configuration: the log entry that made it, committed at
    /// `zxid`. Sent to a server whose notifications carry an older config version, so
    /// one that missed a membership change (it was down) can still count a quorum of
    /// the current members and find the leader; ZooKeeper's notifications carry the
    /// configuration for the same reason.
    Config {
        zxid: Zxid,
        entry: Vec<u8>,
    },
    /// Leadership transfer: the leader, holding nothing its successor lacks, steps
    /// down and asks its voters to elect `leader` (preferred among equals).
    Elect {
        leader: ServerId,
    },
}

impl Message {
    /// Short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Notification(_) => "notification",
            Message::FollowerInfo { .. } => "followerinfo",
            Message::LeaderInfo { .. } => "leaderinfo",
            Message::AckEpoch { .. } => "ackepoch",
            Message::Diff { .. } => "diff",
            Message::Trunc { .. } => "trunc",
            Message::Snap { .. } => "snap",
            Message::NewLeader { .. } => "newleader",
            Message::AckNewLeader { .. } => "acknewleader",
            Message::UpToDate { .. } => "uptodate",
            Message::NewEpoch { .. } => "newepoch",
            Message::AckNewEpoch { .. } => "acknewepoch",
            Message::Proposal { .. } => "proposal",
            Message::Ack { .. } => "ack",
            Message::Commit { .. } => "commit",
            Message::Inform { .. } => "inform",
            Message::Ping { .. } => "ping",
            Message::Request { .. } => "request",
            Message::Sync { .. } => "sync",
            Message::SyncReply { .. } => "syncreply",
            Message::Config { .. } => "config",
            Message::Elect { .. } => "elect",
        }
    }
}

/// The epoch half of a zxid.
pub fn epoch_of(zxid: Zxid) -> Epoch {
    zxid >> 32
}

/// The counter half of a zxid.
pub fn counter_of(zxid: Zxid) -> u32 {
    (zxid & 0xffff_ffff) as u32
}

/// `ZxidUtils.makeZxid`.
pub fn make_zxid(epoch: Epoch, counter: u32) -> Zxid {
    (epoch << 32) | i64::from(counter)
}
