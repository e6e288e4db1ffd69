//! Who may vote, and when a set of voters is a quorum: ZooKeeper's `QuorumMaj`
//! (`server/quorum/flexible/QuorumMaj.java`). Observers are members that never count.
//! Hierarchical and weighted quorums (`group.x`, `weight.x`) are not supported.

use std::collections::BTreeSet;

/// A server's `myid`, the `x` of `server.x` in zoo.cfg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub u64);

impl std::fmt::Display for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A membership that cannot form quorums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("no voting members")]
    NoVoters,
    #[error("server {0} is both a voter and an observer")]
    VoterAndObserver(ServerId),
}

/// Majority quorums over the voting members (participants); observers are excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumMaj {
    voters: BTreeSet<ServerId>,
    observers: BTreeSet<ServerId>,
    /// ZooKeeper's config version (the zxid that committed this configuration).
    version: i64,
}

impl QuorumMaj {
    pub fn new(
        voters: impl IntoIterator<Item = ServerId>,
        observers: impl IntoIterator<Item = ServerId>,
        version: i64,
    ) -> Result<Self, MembershipError> {
        let voters: BTreeSet<ServerId> = voters.into_iter().collect();
        let observers: BTreeSet<ServerId> = observers.into_iter().collect();
        if voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if let Some(both) = voters.intersection(&observers).next() {
            return Err(MembershipError::VoterAndObserver(*both));
        }
        Ok(Self {
            voters,
            observers,
            version,
        })
    }

    pub fn voters(&self) -> &BTreeSet<ServerId> {
        &self.voters
    }

    pub fn observers(&self) -> &BTreeSet<ServerId> {
        &self.observers
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn is_voter(&self, sid: ServerId) -> bool {
        self.voters.contains(&sid)
    }

    pub fn is_member(&self, sid: ServerId) -> bool {
        self.is_voter(sid) || self.observers.contains(&sid)
    }

    /// `QuorumVerifier.getWeight`: 1 for a voter, 0 for anyone else (a vote for a
    /// non-voter never wins).
    pub fn weight(&self, sid: ServerId) -> u64 {
        u64::from(self.is_voter(sid))
    }

    /// More than half of the voters are in `acks`; non-voters in `acks` are ignored, as
    /// `SyncedLearnerTracker.addAck` ignores them.
    pub fn contains_quorum<'a>(&self, acks: impl IntoIterator<Item = &'a ServerId>) -> bool {
        let counted: BTreeSet<&ServerId> = acks
            .into_iter()
            .filter(|sid| self.is_voter(**sid))
            .collect();
        counted.len() > self.voters.len() / 2
    }
}

/// The configurations every quorum decision must satisfy: the committed one, and each
/// logged after it and not yet committed (ZooKeeper's `lastSeenQuorumVerifier`). One
/// change at a time keeps the second list short; requiring a majority of every one of
/// them is what keeps a server that has not heard of a commit from electing or
/// committing with the old voters alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorums {
    committed: QuorumMaj,
    /// By the zxid of the entry that carries each, ascending.
    pending: Vec<(crate::Zxid, QuorumMaj)>,
}

impl From<QuorumMaj> for Quorums {
    fn from(committed: QuorumMaj) -> Self {
        Self {
            committed,
            pending: Vec::new(),
        }
    }
}

impl Quorums {
    pub fn committed(&self) -> &QuorumMaj {
        &self.committed
    }

    pub fn pending(&self) -> &[(crate::Zxid, QuorumMaj)] {
        &self.pending
    }

    /// The newest configuration: the last pending one, or the committed one.
    pub fn latest(&self) -> &QuorumMaj {
        self.pending.last().map_or(&self.committed, |(_, q)| q)
    }

    fn all(&self) -> impl Iterator<Item = &QuorumMaj> {
        std::iter::once(&self.committed).chain(self.pending.iter().map(|(_, q)| q))
    }

    /// A configuration logged at `zxid`, not yet known committed. One no newer than
    /// the committed configuration (a sync replaying history this server already
    /// knows the outcome of) changes nothing.
    pub fn push_pending(&mut self, zxid: crate::Zxid, q: QuorumMaj) {
        if zxid <= self.committed.version() {
            return;
        }
        self.pending.retain(|(z, _)| *z < zxid);
        self.pending.push((zxid, q));
    }

    /// The log was cut after `zxid`: configurations logged later are gone.
    pub fn truncate_after(&mut self, zxid: crate::Zxid) {
        self.pending.retain(|(z, _)| *z <= zxid);
    }

    /// The entry at `zxid` carrying `q` is committed: `q` is the configuration now,
    /// unless a newer one is known committed already (learned from a peer).
    pub fn commit(&mut self, zxid: crate::Zxid, q: QuorumMaj) {
        self.pending.retain(|(z, _)| *z > zxid);
        if zxid > self.committed.version() {
            self.committed = q;
        }
    }

    /// Replaces everything (a snapshot was installed).
    pub fn reset(&mut self, committed: QuorumMaj) {
        self.committed = committed;
        self.pending.clear();
    }

    /// A voter in any of the configurations: it may vote and must be heard.
    pub fn is_voter(&self, sid: ServerId) -> bool {
        self.all().any(|q| q.is_voter(sid))
    }

    pub fn is_member(&self, sid: ServerId) -> bool {
        self.all().any(|q| q.is_member(sid))
    }

    /// Who may be elected: a voter of the committed configuration, as ZooKeeper's
    /// totalOrderPredicate weighs candidates by its current (committed) verifier.
    /// Servers that logged different pending configurations still agree on who may
    /// lead (those that disagree on the committed one are sent it: Message::Config).
    pub fn weight(&self, sid: ServerId) -> u64 {
        u64::from(self.committed.is_voter(sid))
    }

    /// Every voter of any configuration.
    pub fn voters(&self) -> BTreeSet<ServerId> {
        self.all()
            .flat_map(|q| q.voters().iter().copied())
            .collect()
    }

    /// Every member of any configuration.
    pub fn members(&self) -> BTreeSet<ServerId> {
        self.all()
            .flat_map(|q| q.voters().iter().chain(q.observers()).copied())
            .collect()
    }

    /// A majority of the voters of every configuration is in `acks`.
    pub fn contains_quorum<'a>(&self, acks: impl IntoIterator<Item = &'a ServerId>) -> bool {
        let acks: BTreeSet<&ServerId> = acks.into_iter().collect();
        self.all().all(|q| q.contains_quorum(acks.iter().copied()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<ServerId> {
        v.iter().copied().map(ServerId).collect()
    }

    #[test]
    fn majority_of_voters_only() {
        let q = QuorumMaj::new(ids(&[1, 2, 3]), ids(&[4, 5]), 0).unwrap();
        assert!(!q.contains_quorum(&ids(&[1])));
        assert!(q.contains_quorum(&ids(&[1, 3])));
        // Observers never make up the difference.
        assert!(!q.contains_quorum(&ids(&[1, 4, 5])));
        // Duplicates count once.
        assert!(!q.contains_quorum(&ids(&[2, 2])));
        let q4 = QuorumMaj::new(ids(&[1, 2, 3, 4]), [], 0).unwrap();
        assert!(!q4.contains_quorum(&ids(&[1, 2])));
        assert!(q4.contains_quorum(&ids(&[1, 2, 4])));
        assert_eq!(q.weight(ServerId(4)), 0);
        assert_eq!(q.weight(ServerId(2)), 1);
    }

    #[test]
    fn pending_configurations_all_need_their_majority() {
        let old = QuorumMaj::new(ids(&[1, 2, 3]), ids(&[4]), 1).unwrap();
        let new = QuorumMaj::new(ids(&[1, 2, 3, 4]), [], 9).unwrap();
        let mut qs = Quorums::from(old.clone());
        assert!(qs.contains_quorum(&ids(&[1, 2])));
        qs.push_pending(9, new.clone());
        // A majority of the old voters is not one of the new.
        assert!(!qs.contains_quorum(&ids(&[1, 2])));
        // Nor is a majority of the new one that leaves out the old majority.
        assert!(!qs.contains_quorum(&ids(&[1, 4, 9])));
        assert!(qs.contains_quorum(&ids(&[1, 2, 4])));
        assert!(qs.is_voter(ServerId(4)));
        assert_eq!(qs.latest().version(), 9);
        assert_eq!(qs.committed().version(), 1);
        qs.truncate_after(8);
        assert!(qs.contains_quorum(&ids(&[1, 2])));
        assert!(!qs.is_voter(ServerId(4)));
        qs.push_pending(9, new.clone());
        qs.commit(9, new.clone());
        assert_eq!(qs.committed(), &new);
        assert!(qs.pending().is_empty());
        assert!(!qs.contains_quorum(&ids(&[1, 2])));
        // Replaying history older than the committed configuration changes nothing.
        qs.push_pending(5, old.clone());
        assert!(qs.pending().is_empty());
        qs.commit(5, old);
        assert_eq!(qs.committed(), &new);
    }

    #[test]
    fn bad_memberships_are_refused() {
        assert_eq!(
            QuorumMaj::new([], ids(&[1]), 0),
            Err(MembershipError::NoVoters)
        );
        assert_eq!(
            QuorumMaj::new(ids(&[1, 2]), ids(&[2]), 0),
            Err(MembershipError::VoterAndObserver(ServerId(2)))
        );
    }
}
