//! The safety properties, named after the invariants of the ZAB TLA+ specification in
//! apache/zookeeper (`zookeeper-specifications/protocol-spec/Zab.tla`, repeated in
//! `system-spec/zk-3.7/ZkV3_7_0.tla`), checked against what the simulated hosts do.
//!
//! The spec's `history[i]` with `lastCommitted[i]` is, here, the sequence of entries a
//! host applied (its tree restored from a snapshot stands for the prefix the snapshot
//! covers). All hosts' applied sequences must be prefixes of one committed history,
//! kept by the [`Checker`]: the first host to apply a zxid extends it, every
//! other host must apply exactly the same entry after exactly the same predecessor and
//! reach the same tree digest.

use std::collections::BTreeMap;
use std::fmt;

use rookery_tree::{DataTree, Txn};
use rookery_zab::election::ServerId;
use rookery_zab::message::{epoch_of, make_zxid};
use rookery_zab::{Epoch, Zxid};

use crate::rng::Fnv;

/// Which property broke. The first group are the spec's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// At most one established leader per epoch at any time.
    Leadership1,
    /// At most one server ever establishes itself leader of a given epoch (and one
    /// leader proposes each zxid).
    Leadership2,
    /// Committed prefixes agree: every host applies the committed history in order,
    /// without gaps.
    PrefixConsistency,
    /// Two hosts that applied the same zxid applied the same Txn.
    Agreement,
    /// A host applies only what some leader proposed.
    Integrity,
    /// Each host applies zxids in strictly increasing order (which also gives
    /// GlobalPrimaryOrder: epochs never go back).
    TotalOrder,
    /// If a leader proposed a before b, whoever applies b applied a first.
    LocalPrimaryOrder,
    /// An established leader's history holds every Txn committed in earlier epochs
    /// (checked against the epoch it was established in: it committed its whole
    /// history then).
    PrimaryIntegrity,
    /// Hosts that applied the same prefix have the same tree (digest).
    ReplicaDigest,
    /// An acknowledged write is in every host's tree after the heal.
    AckedWritesDurable,
    /// ZooKeeper's sync: once a server answers it, the server has applied everything
    /// the leader had proposed when the sync reached the leader.
    SyncUpToDate,
    /// After the heal the cluster elects a leader and every host catches up.
    Convergence,
    /// The host could not do what the core asked (undecodable entry or snapshot,
    /// storage error): a bug in the core or the simulator.
    HostContract,
}

impl Invariant {
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Leadership1 => "Leadership1",
            Invariant::Leadership2 => "Leadership2",
            Invariant::PrefixConsistency => "PrefixConsistency",
            Invariant::Agreement => "Agreement",
            Invariant::Integrity => "Integrity",
            Invariant::TotalOrder => "TotalOrder",
            Invariant::LocalPrimaryOrder => "LocalPrimaryOrder",
            Invariant::PrimaryIntegrity => "PrimaryIntegrity",
            Invariant::ReplicaDigest => "ReplicaDigest",
            Invariant::AckedWritesDurable => "AckedWritesDurable",
            Invariant::SyncUpToDate => "SyncUpToDate",
            Invariant::Convergence => "Convergence",
            Invariant::HostContract => "HostContract",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: Invariant, detail: impl Into<String>) -> Self {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

pub type Checked = Result<(), Violation>;

/// A zxid in ZooKeeper's hex notation, with the epoch and counter spelled out.
pub fn z(zxid: Zxid) -> String {
    format!("{zxid:#x}(e{} c{})", epoch_of(zxid), zxid & 0xffff_ffff)
}

#[derive(Debug, Clone, Copy)]
struct Committed {
    hash: u64,
    /// The tree digest after applying it.
    digest: u64,
    first_by: ServerId,
}

#[derive(Debug, Clone, Copy)]
struct Proposed {
    hash: u64,
    leader: ServerId,
}

/// The last committed effect on a path, to check trees after the heal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathState {
    /// Exists with this data fingerprint.
    Present(u64),
    Absent,
}

/// Global knowledge the invariants are checked against.
#[derive(Debug, Default)]
pub struct Checker {
    committed: BTreeMap<Zxid, Committed>,
    proposed: BTreeMap<Zxid, Proposed>,
    epoch_leader: BTreeMap<Epoch, ServerId>,
    /// Acknowledged writes: zxid -> payload fingerprint.
    acked: BTreeMap<Zxid, u64>,
    last_write: BTreeMap<String, (Zxid, PathState)>,
}

fn data_fingerprint(data: Option<&[u8]>) -> u64 {
    match data {
        None => 0,
        Some(d) => Fnv::of(d) | 1,
    }
}

impl Checker {
    pub fn acked_count(&self) -> usize {
        self.acked.len()
    }

    pub fn committed_count(&self) -> usize {
        self.committed.len()
    }

    pub fn last_committed(&self) -> Zxid {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    /// A leader appended `zxid` to its log and sent it out.
    pub fn on_propose(&mut self, leader: ServerId, zxid: Zxid, hash: u64) -> Checked {
        if let Some(p) = self.proposed.get(&zxid) {
            if p.leader != leader || p.hash != hash {
                return Err(Violation::new(
                    Invariant::Leadership2,
                    format!(
                        "zxid {} proposed twice: by {} and now by {leader} (same payload: {})",
                        z(zxid),
                        p.leader,
                        p.hash == hash
                    ),
                ));
            }
        }
        self.proposed.insert(zxid, Proposed { hash, leader });
        Ok(())
    }

    /// `leader` established itself (a quorum acked NEWLEADER) in `epoch`.
    pub fn on_established(&mut self, leader: ServerId, epoch: Epoch) -> Checked {
        match self.epoch_leader.get(&epoch) {
            Some(&other) if other != leader => Err(Violation::new(
                Invariant::Leadership2,
                format!("epoch {epoch} established by {other} and by {leader}"),
            )),
            _ => {
                self.epoch_leader.insert(epoch, leader);
                Ok(())
            }
        }
    }

    /// `server`, whose tree was at `prev`, applied the committed entry `zxid`.
    pub fn on_apply(
        &mut self,
        server: ServerId,
        prev: Zxid,
        zxid: Zxid,
        hash: u64,
        digest: u64,
        txn: &Txn,
    ) -> Checked {
        if zxid <= prev {
            return Err(Violation::new(
                Invariant::TotalOrder,
                format!("{server} applied {} after {}", z(zxid), z(prev)),
            ));
        }
        match self.proposed.get(&zxid) {
            None => {
                return Err(Violation::new(
                    Invariant::Integrity,
                    format!("{server} applied {}, which no leader proposed", z(zxid)),
                ));
            }
            Some(p) if p.hash != hash => {
                return Err(Violation::new(
                    Invariant::Integrity,
                    format!(
                        "{server} applied {} with a payload other than the one {} proposed",
                        z(zxid),
                        p.leader
                    ),
                ));
            }
            Some(_) => {}
        }
        if let Some(c) = self.committed.get(&zxid).copied() {
            if c.hash != hash {
                return Err(Violation::new(
                    Invariant::Agreement,
                    format!(
                        "{server} applied {} with another payload than {} did",
                        z(zxid),
                        c.first_by
                    ),
                ));
            }
            let pred = self
                .committed
                .range(..zxid)
                .next_back()
                .map_or(0, |(k, _)| *k);
            if pred != prev {
                return Err(Violation::new(
                    Invariant::PrefixConsistency,
                    format!(
                        "{server} applied {} right after {}, but in the committed history it follows {}",
                        z(zxid),
                        z(prev),
                        z(pred)
                    ),
                ));
            }
            if c.digest != digest {
                return Err(Violation::new(
                    Invariant::ReplicaDigest,
                    format!(
                        "{server}'s tree after {} has digest {digest:#x}, {}'s had {:#x}",
                        z(zxid),
                        c.first_by,
                        c.digest
                    ),
                ));
            }
            return Ok(());
        }
        let last = self.last_committed();
        if zxid < last {
            return Err(Violation::new(
                Invariant::PrefixConsistency,
                format!(
                    "{server} committed {}, below {} which was committed without it",
                    z(zxid),
                    z(last)
                ),
            ));
        }
        if prev != last {
            return Err(Violation::new(
                Invariant::PrefixConsistency,
                format!(
                    "{server} applied {} after {}, but the committed history ends at {}",
                    z(zxid),
                    z(prev),
                    z(last)
                ),
            ));
        }
        let epoch_start = make_zxid(epoch_of(zxid), 0);
        if let Some((&missing, p)) = self
            .proposed
            .range(epoch_start..zxid)
            .find(|(k, _)| !self.committed.contains_key(k))
        {
            return Err(Violation::new(
                Invariant::LocalPrimaryOrder,
                format!(
                    "{server} applied {} but not {}, which {} proposed before it",
                    z(zxid),
                    z(missing),
                    p.leader
                ),
            ));
        }
        self.committed.insert(
            zxid,
            Committed {
                hash,
                digest,
                first_by: server,
            },
        );
        self.record_writes(zxid, txn);
        Ok(())
    }

    fn record_writes(&mut self, zxid: Zxid, txn: &Txn) {
        match txn {
            Txn::Create { path, data, .. } | Txn::SetData { path, data, .. } => {
                let state = PathState::Present(data_fingerprint(data.as_deref()));
                self.last_write.insert(path.clone(), (zxid, state));
            }
            Txn::Delete { path, .. } => {
                self.last_write
                    .insert(path.clone(), (zxid, PathState::Absent));
            }
            Txn::Multi(txns) => {
                for t in txns {
                    self.record_writes(zxid, t);
                }
            }
            _ => {}
        }
    }

    /// `server` replaced its tree with a snapshot at `zxid` whose digest is `digest`.
    pub fn on_install(&self, server: ServerId, zxid: Zxid, digest: u64) -> Checked {
        if zxid == 0 {
            let empty = DataTree::default().digest();
            return if digest == empty {
                Ok(())
            } else {
                Err(Violation::new(
                    Invariant::ReplicaDigest,
                    format!("{server} installed a snapshot at 0 that is not the empty tree"),
                ))
            };
        }
        match self.committed.get(&zxid) {
            None => Err(Violation::new(
                Invariant::PrefixConsistency,
                format!(
                    "{server} installed a snapshot at {}, which is not committed",
                    z(zxid)
                ),
            )),
            Some(c) if c.digest != digest => Err(Violation::new(
                Invariant::ReplicaDigest,
                format!(
                    "{server} installed a snapshot at {} with digest {digest:#x}; {} had {:#x}",
                    z(zxid),
                    c.first_by,
                    c.digest
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// The leader host applied its own proposal `zxid`: the client is answered.
    pub fn on_acked(&mut self, zxid: Zxid, hash: u64) {
        self.acked.insert(zxid, hash);
    }

    /// PrimaryIntegrity for a leader established in `epoch` whose tree is at `applied`.
    pub fn check_primary(&self, leader: ServerId, epoch: Epoch, applied: Zxid) -> Checked {
        let Some((&before, c)) = self.committed.range(..make_zxid(epoch, 0)).next_back() else {
            return Ok(());
        };
        if applied < before {
            let acked = if self.acked.contains_key(&before) {
                " (an acknowledged write)"
            } else {
                ""
            };
            return Err(Violation::new(
                Invariant::PrimaryIntegrity,
                format!(
                    "{leader} leads epoch {epoch} with its tree at {}, without {}{acked}, \
                     which {} applied",
                    z(applied),
                    z(before),
                    c.first_by
                ),
            ));
        }
        Ok(())
    }

    /// After the heal: every acknowledged write is applied by each host, and each host's
    /// tree shows the last committed write to every path.
    pub fn check_final(&self, hosts: &[(ServerId, Zxid, &DataTree)]) -> Checked {
        for (&zxid, &hash) in &self.acked {
            match self.committed.get(&zxid) {
                Some(c) if c.hash == hash => {}
                _ => {
                    return Err(Violation::new(
                        Invariant::AckedWritesDurable,
                        format!("acknowledged {} is not in the committed history", z(zxid)),
                    ));
                }
            }
            for (id, applied, _) in hosts {
                if *applied < zxid {
                    return Err(Violation::new(
                        Invariant::AckedWritesDurable,
                        format!(
                            "{id} ends at {}, without acknowledged {}",
                            z(*applied),
                            z(zxid)
                        ),
                    ));
                }
            }
        }
        for (path, (zxid, state)) in &self.last_write {
            for (id, _, tree) in hosts {
                let actual = match tree.node(path) {
                    Some(n) => PathState::Present(data_fingerprint(n.data.as_deref())),
                    None => PathState::Absent,
                };
                if actual != *state {
                    let acked = if self.acked.contains_key(zxid) {
                        "acknowledged "
                    } else {
                        ""
                    };
                    return Err(Violation::new(
                        Invariant::AckedWritesDurable,
                        format!(
                            "{id}'s tree has {path} as {actual:?}, but the {acked}write {} left it {state:?}",
                            z(*zxid)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
