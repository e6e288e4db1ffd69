//! Fast Leader Election as a sans-IO state machine.
//!
//! Follows Apache ZooKeeper's `server/quorum/FastLeaderElection.java` (`lookForLeader`,
//! `totalOrderPredicate`, `checkLeader`, the `WorkerReceiver` replies) and `Vote.equals`.
//! A vote is (leader sid, last zxid, peer epoch), ordered by (epoch, zxid, sid). A voter
//! decides once a quorum of voters sends the vote it holds in its round (logicalclock),
//! then waits `finalize_wait_ticks` for a better vote. A server that arrives late learns
//! the leader from a quorum of FOLLOWING/LEADING notifications (the `outofelection` map),
//! without a new election. Observers never vote: voters answer them with their current
//! vote, and they only learn the result.
//!
//! The caller drives it: [`Election::start`], [`Election::step`] for each notification
//! received, [`Election::tick`] for time; each returns the notifications to send.
//!
//! Differences from ZooKeeper:
//! - Time is in ticks: `poll(notTimeout)` and `poll(finalizeWait)` become tick counts
//!   ([`ElectionTimeouts`]); a tick is the runtime's choice (the defaults assume 200 ms,
//!   ZooKeeper's finalizeWait).
//! - A voter's own notification is recorded directly instead of looping back through
//!   the connection manager.
//! - Config versions travel in [`Notification::config_version`] but are not acted on:
//!   reconfiguration during an election (processReconfig) is not handled here.
//! - The `-1` zxid guard (servers with no database) and the mixed-version `Vote.equals`
//!   rule (ZOOKEEPER-1732 rolling upgrades) are left out; peer epochs are always compared.
//! - A looking observer does not answer a voter in an older round. ZooKeeper's does,
//!   the voter ignores the answer (it comes from a non-voter) and answers back, and the
//!   two ping-pong until one of them leaves the round.
//! - A voter answers a non-voter only while the non-voter is LOOKING. ZooKeeper also
//!   answers a settled observer, which answers back while the voter looks: a storm
//!   of notifications for as long as the election lasts.
//! - Connection handling (`haveDelivered`, `connectAll`) belongs to the transport: a
//!   notification timeout always re-sends, and it runs on its own clock rather than
//!   restarting whenever a notification arrives.
//! - finalizeWait is skipped when no better vote can come: every other voter has
//!   voted in this round for nothing better than ours, or its connection to us broke
//!   and it has been silent since ([`Election::link_lost`]). ZooKeeper 3.4 skipped it
//!   only when all voters had voted; waiting for a server that just died bought
//!   nothing, and was most of a leader failover.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::quorum::ServerId;
use crate::quorum::{QuorumMaj, Quorums};
use crate::{Epoch, Zxid};

/// ZooKeeper's `logicalclock`: the election round, raised by each new election and by
/// any notification from a later round.
pub type ElectionEpoch = i64;

/// `QuorumPeer.ServerState`; the discriminants are the wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

/// A proposed leader and the history it would bring: compared by
/// [`Vote::supersedes`] (epoch, then zxid, then sid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub leader: ServerId,
    pub zxid: Zxid,
    pub peer_epoch: Epoch,
}

impl Vote {
    /// `totalOrderPredicate` without the weight check: a higher epoch wins, then a
    /// higher zxid, then a higher sid.
    pub fn supersedes(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// `FastLeaderElection.Notification`: what one server tells another about its vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notification {
    pub leader: ServerId,
    pub zxid: Zxid,
    pub election_epoch: ElectionEpoch,
    pub state: ServerState,
    /// The sender. [`Election::step`] trusts its `from` argument (the transport knows
    /// the connection) over this field.
    pub sid: ServerId,
    pub peer_epoch: Epoch,
    pub config_version: i64,
}

impl Notification {
    pub fn vote(&self) -> Vote {
        Vote {
            leader: self.leader,
            zxid: self.zxid,
            peer_epoch: self.peer_epoch,
        }
    }
}

/// A notification to send to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outgoing {
    pub to: ServerId,
    pub notification: Notification,
}

/// The outcome of an election at this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub leader: ServerId,
    /// Leading, Following, or Observing for an observer.
    pub state: ServerState,
    pub vote: Vote,
    pub election_epoch: ElectionEpoch,
}

/// ZooKeeper's election timers, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTimeouts {
    /// `finalizeWait` (200 ms): after a quorum agrees, how long to wait for a better vote.
    pub finalize_wait_ticks: u32,
    /// `fastleader.minNotificationInterval` (200 ms): silence before the first re-send.
    pub min_notification_interval_ticks: u32,
    /// `fastleader.maxNotificationInterval` (60 s): the re-send interval doubles up to this.
    pub max_notification_interval_ticks: u32,
}

impl Default for ElectionTimeouts {
    /// One tick = 200 ms.
    fn default() -> Self {
        Self {
            finalize_wait_ticks: 1,
            min_notification_interval_ticks: 1,
            max_notification_interval_ticks: 300,
        }
    }
}

/// ZooKeeper's `Vote` with the sender's round and state, as kept in `recvset` and
/// `outofelection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ballot {
    vote: Vote,
    election_epoch: ElectionEpoch,
    state: ServerState,
}

impl Ballot {
    /// What `n` says, as recorded in `recvset` / `outofelection`.
    fn of(n: &Notification) -> Ballot {
        Ballot {
            vote: n.vote(),
            election_epoch: n.election_epoch,
            state: n.state,
        }
    }

    /// `Vote.equals`: while either side is LOOKING everything must match; between
    /// settled servers only leader and peer epoch (ZOOKEEPER-1805: their zxid and round
    /// can legitimately differ).
    fn agrees(&self, other: &Ballot) -> bool {
        if self.state == ServerState::Looking || other.state == ServerState::Looking {
            self.vote == other.vote && self.election_epoch == other.election_epoch
        } else {
            self.vote.leader == other.vote.leader && self.vote.peer_epoch == other.vote.peer_epoch
        }
    }
}

/// `totalOrderPredicate`: `new` beats `current` and proposes a voter.
pub fn total_order_predicate(quorum: &Quorums, new: &Vote, current: &Vote) -> bool {
    quorum.weight(new.leader) != 0 && new.supersedes(current)
}

/// termPredicate (`getVoteTracker(...).hasAllQuorums()`): a quorum of voters holds a
/// ballot that agrees with `ballot`.
fn term_predicate(quorum: &Quorums, votes: &BTreeMap<ServerId, Ballot>, ballot: &Ballot) -> bool {
    quorum.contains_quorum(
        votes
            .iter()
            .filter(|(_, b)| b.agrees(ballot))
            .map(|(sid, _)| sid),
    )
}

/// One server's side of Fast Leader Election; kept for the server's life so it can
/// answer LOOKING peers after it has decided, and [`Election::restart`]ed when the
/// server looks for a leader again.
#[derive(Debug, Clone)]
pub struct Election {
    self_id: ServerId,
    quorum: Quorums,
    timeouts: ElectionTimeouts,
    last_zxid: Zxid,
    current_epoch: Epoch,
    logical_clock: ElectionEpoch,
    proposal: Vote,
    state: ServerState,
    started: bool,
    /// Votes of this round (`recvset`).
    recv_set: BTreeMap<ServerId, Ballot>,
    /// FOLLOWING/LEADING ballots of any round (`outofelection`).
    out_of_election: BTreeMap<ServerId, Ballot>,
    /// Ticks left of finalizeWait, once a quorum agrees with our proposal.
    finalizing: Option<u32>,
    /// Servers whose connection to us broke and that have sent nothing since.
    silent: BTreeSet<ServerId>,
    idle_ticks: u32,
    notification_interval_ticks: u32,
    decision: Option<Decision>,
    /// A leader handing over named its successor: among votes equal in epoch and
    /// zxid it wins, whatever its id (see [`Election::prefer`]), for the ticks left.
    preferred: Option<(ServerId, u32)>,
}

impl Election {
    /// `last_zxid` is the last logged zxid, `current_epoch` the persisted currentEpoch.
    pub fn new(
        self_id: ServerId,
        quorum: QuorumMaj,
        last_zxid: Zxid,
        current_epoch: Epoch,
        timeouts: ElectionTimeouts,
    ) -> Self {
        let mut election = Self {
            self_id,
            quorum: quorum.into(),
            timeouts,
            last_zxid,
            current_epoch,
            logical_clock: 0,
            proposal: Vote {
                leader: self_id,
                zxid: last_zxid,
                peer_epoch: current_epoch,
            },
            state: ServerState::Looking,
            started: false,
            recv_set: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            finalizing: None,
            silent: BTreeSet::new(),
            idle_ticks: 0,
            notification_interval_ticks: timeouts.min_notification_interval_ticks.max(1),
            decision: None,
            preferred: None,
        };
        election.proposal = election.initial_vote();
        election
    }

    /// `getInitId`/`getInitLastLoggedZxid`/`getPeerEpoch`: a voter proposes itself; an
    /// observer proposes nothing any vote beats (ZooKeeper's `Long.MIN_VALUE`s).
    fn initial_vote(&self) -> Vote {
        if self.quorum.weight(self.self_id) > 0 {
            Vote {
                leader: self.self_id,
                zxid: self.last_zxid,
                peer_epoch: self.current_epoch,
            }
        } else {
            Vote {
                leader: self.self_id,
                zxid: Zxid::MIN,
                peer_epoch: Epoch::MIN,
            }
        }
    }

    fn is_voter(&self) -> bool {
        self.quorum.is_voter(self.self_id)
    }

    pub fn self_id(&self) -> ServerId {
        self.self_id
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn logical_clock(&self) -> ElectionEpoch {
        self.logical_clock
    }

    /// The vote this server currently proposes (while looking).
    pub fn proposal(&self) -> Vote {
        self.proposal
    }

    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// `lookForLeader`: a new round, proposing ourselves, told to every voter.
    pub fn start(&mut self) -> Vec<Outgoing> {
        self.started = true;
        self.state = ServerState::Looking;
        self.decision = None;
        self.recv_set.clear();
        self.out_of_election.clear();
        self.finalizing = None;
        self.idle_ticks = 0;
        self.notification_interval_ticks = self.timeouts.min_notification_interval_ticks.max(1);
        self.logical_clock += 1;
        self.proposal = self.initial_vote();
        let mut out = Vec::new();
        self.send_notifications(&mut out);
        out
    }

    /// The next election should pick `leader` among equally up-to-date candidates (a
    /// leadership transfer: the leader waited until it held everything). Only ties on
    /// (epoch, zxid) are decided differently, so the winner still holds every commit.
    ///
    /// A hint with a deadline: a voter that missed the leader's ELECT (dropped, or it
    /// restarted) keeps the usual order, and two voters each holding out for a
    /// different candidate would never make a quorum. After twice the longest re-send
    /// interval without a decision the preference is dropped and the usual order
    /// decides (found by the simulator: seed 2584 with `--reconfig`).
    pub fn prefer(&mut self, leader: ServerId) {
        let ticks = self
            .timeouts
            .max_notification_interval_ticks
            .max(1)
            .saturating_mul(2);
        self.preferred = Some((leader, ticks));
    }

    /// The leader a handover still prefers, if its deadline has not passed.
    fn preferred(&self) -> Option<ServerId> {
        self.preferred.map(|(leader, _)| leader)
    }

    /// `totalOrderPredicate`, with the transfer's tie-break.
    fn beats(&self, new: &Vote, current: &Vote) -> bool {
        if self.quorum.weight(new.leader) == 0 {
            return false;
        }
        if let Some(p) = self.preferred() {
            if (new.peer_epoch, new.zxid) == (current.peer_epoch, current.zxid) {
                if current.leader == p {
                    return false;
                }
                if new.leader == p {
                    return true;
                }
            }
        }
        new.supersedes(current)
    }

    /// A settled server's role changed without an election (an observer promoted to
    /// follower, or the reverse): what it tells looking peers must say so, or they
    /// would not count it toward the leader's quorum.
    pub fn set_settled_state(&mut self, state: ServerState) {
        if let Some(d) = &mut self.decision {
            d.state = state;
            self.state = state;
        }
    }

    /// The configurations changed (one was logged, committed or cut): votes and
    /// quorums count by them from now on.
    pub fn set_quorums(&mut self, quorums: Quorums) {
        self.quorum = quorums;
    }

    /// Looks for a leader again (the leader was lost), with the log as it is now.
    pub fn restart(&mut self, last_zxid: Zxid, current_epoch: Epoch) -> Vec<Outgoing> {
        self.last_zxid = last_zxid;
        self.current_epoch = current_epoch;
        self.start()
    }

    /// `QuorumPeer.updateElectionVote`: once discovery settles a new epoch, settled
    /// servers announce it so late arrivals can match a quorum on (leader, epoch).
    pub fn update_election_vote(&mut self, peer_epoch: Epoch) {
        if let Some(decision) = &mut self.decision {
            decision.vote.peer_epoch = peer_epoch;
        }
    }

    /// The transport lost its connection from `sid` (it closed or broke): until it is
    /// heard from again ([`Election::heard_from`], which the host calls for every
    /// message), no vote is expected from it. Ends finalizeWait when it was the
    /// only voter left to hear from.
    pub fn link_lost(&mut self, sid: ServerId) {
        self.silent.insert(sid);
        if self.finalizing.is_some() && self.no_better_vote_coming() {
            self.decide(self.proposal, self.logical_clock);
        }
    }

    /// Any message from `sid` shows it is there again.
    pub fn heard_from(&mut self, sid: ServerId) {
        self.silent.remove(&sid);
    }

    /// Every other voter has gone silent or voted in this round for nothing better
    /// than our proposal: a voter never votes below its own history, so none can
    /// bring a better vote. (A LOOKING vote that beat ours would have been adopted; a
    /// FOLLOWING or LEADING ballot of this round is recorded without that check, so it
    /// is compared here: found by the election simulation, an observer that saw a
    /// voter lead a better vote and decided for its own.)
    fn no_better_vote_coming(&self) -> bool {
        self.quorum.voters().iter().all(|v| {
            *v == self.self_id
                || self.silent.contains(v)
                || self
                    .recv_set
                    .get(v)
                    .is_some_and(|b| !self.beats(&b.vote, &self.proposal))
        })
    }

    /// Handles a notification from `from`; returns the notifications to send.
    pub fn step(&mut self, from: ServerId, notification: Notification) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let n = Notification {
            sid: from,
            ..notification
        };
        // WorkerReceiver: a non-voter is answered at once and never counted. Only by
        // a voter: two non-voters (their memberships differ while one catches up)
        // would otherwise answer each other's answers for ever. And only while it
        // looks: a settled observer answers a looking voter, and the two would
        // otherwise bounce notifications until the voter decides.
        if !self.quorum.is_voter(from) {
            if self.is_voter() && n.state == ServerState::Looking {
                let (vote, _) = self.current_vote();
                out.push(self.notification_to(from, vote, self.logical_clock, self.state));
            }
            return out;
        }
        if self.state != ServerState::Looking {
            // Settled: tell a LOOKING voter whom we follow.
            if n.state == ServerState::Looking {
                let (vote, round) = self.current_vote();
                out.push(self.notification_to(from, vote, round, self.state));
            }
            return out;
        }
        if n.state == ServerState::Looking
            && n.election_epoch < self.logical_clock
            && self.is_voter()
        {
            // A voter in an older round: bring it forward with our proposal.
            out.push(self.notification_to(
                from,
                self.proposal,
                self.logical_clock,
                ServerState::Looking,
            ));
        }
        if self.started {
            self.process(n, &mut out);
        }
        out
    }

    /// Advances time by one tick; returns the notifications to send.
    pub fn tick(&mut self) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if !self.started || self.state != ServerState::Looking {
            return out;
        }
        if let Some((_, left)) = &mut self.preferred {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.preferred = None;
            }
        }
        if let Some(left) = self.finalizing {
            if left <= 1 {
                self.decide(self.proposal, self.logical_clock);
            } else {
                self.finalizing = Some(left - 1);
            }
            return out;
        }
        self.idle_ticks += 1;
        if self.idle_ticks >= self.notification_interval_ticks {
            self.idle_ticks = 0;
            self.notification_interval_ticks = self
                .notification_interval_ticks
                .saturating_mul(2)
                .min(self.timeouts.max_notification_interval_ticks.max(1));
            self.send_notifications(&mut out);
        }
        out
    }

    /// The body of `lookForLeader`'s loop for one notification from a voter.
    fn process(&mut self, n: Notification, out: &mut Vec<Outgoing>) {
        // Unlike ZooKeeper's poll timeout, incoming notifications do not postpone our
        // own re-send: a peer repeating a losing vote would otherwise keep two voters
        // that lost each other's notifications from ever hearing from each other.
        if self.finalizing.is_some() {
            if self.beats(&n.vote(), &self.proposal) {
                // A better vote ends finalizeWait; it is handled below as usual.
                self.finalizing = None;
            } else {
                // ZooKeeper drops it and polls again for a full finalizeWait. A ballot
                // of this round is kept: it may be the last one we were waiting for.
                if n.election_epoch == self.logical_clock && n.state != ServerState::Observing {
                    self.recv_set.insert(n.sid, Ballot::of(&n));
                }
                if self.no_better_vote_coming() {
                    self.decide(self.proposal, self.logical_clock);
                } else {
                    self.finalizing = Some(self.timeouts.finalize_wait_ticks);
                }
                return;
            }
        }
        if !self.quorum.is_voter(n.leader) {
            return;
        }
        match n.state {
            ServerState::Looking => {
                if n.election_epoch > self.logical_clock {
                    self.logical_clock = n.election_epoch;
                    self.recv_set.clear();
                    let init = self.initial_vote();
                    self.proposal = if self.beats(&n.vote(), &init) {
                        n.vote()
                    } else {
                        init
                    };
                    self.send_notifications(out);
                } else if n.election_epoch < self.logical_clock {
                    return;
                } else if self.beats(&n.vote(), &self.proposal) {
                    self.proposal = n.vote();
                    self.send_notifications(out);
                }
                self.recv_set.insert(n.sid, Ballot::of(&n));
                self.check_proposal_quorum();
            }
            ServerState::Observing => {}
            ServerState::Following | ServerState::Leading => {
                let ballot = Ballot::of(&n);
                if n.election_epoch == self.logical_clock {
                    self.recv_set.insert(n.sid, ballot);
                    if term_predicate(&self.quorum, &self.recv_set, &ballot)
                        && self.check_leader(&self.recv_set, n.leader, n.election_epoch)
                    {
                        self.decide(n.vote(), n.election_epoch);
                        return;
                    }
                }
                // Joining a settled ensemble: a quorum follows this leader and the
                // leader itself says it leads (ZOOKEEPER-1732). We count ourselves
                // among its followers: a membership change logged but not committed
                // may need us for its majority, and the leader cannot commit it, nor
                // anything after it, until we follow. (Following decides nothing: the
                // leader's own quorums do.)
                self.out_of_election.insert(n.sid, ballot);
                let mut with_us = self.out_of_election.clone();
                if self.is_voter() {
                    with_us.insert(self.self_id, ballot);
                }
                // Following decides nothing, so a majority of the committed membership
                // is enough to find the leader: a server that lags still calls itself
                // an observer of a pending change, and waiting for a majority of that
                // one could keep us out for good (found in review, with whole-membership
                // changes in the simulator). Leading needs every majority.
                let found = if n.leader == self.self_id {
                    term_predicate(&self.quorum, &with_us, &ballot)
                } else {
                    term_predicate(
                        &Quorums::from(self.quorum.committed().clone()),
                        &with_us,
                        &ballot,
                    )
                };
                if found && self.check_leader(&self.out_of_election, n.leader, n.election_epoch) {
                    self.logical_clock = n.election_epoch;
                    self.decide(n.vote(), n.election_epoch);
                }
            }
        }
    }

    /// After our vote changes or is re-sent: if a quorum of this round holds our
    /// proposal, start finalizeWait.
    fn check_proposal_quorum(&mut self) {
        if self.finalizing.is_some() || self.state != ServerState::Looking {
            return;
        }
        let ours = Ballot {
            vote: self.proposal,
            election_epoch: self.logical_clock,
            state: ServerState::Looking,
        };
        if term_predicate(&self.quorum, &self.recv_set, &ours) {
            if self.timeouts.finalize_wait_ticks == 0 || self.no_better_vote_coming() {
                self.decide(self.proposal, self.logical_clock);
            } else {
                self.finalizing = Some(self.timeouts.finalize_wait_ticks);
            }
        }
    }

    /// `checkLeader`: a vote for another server counts only if that server says it is
    /// LEADING (so a crashed leader is not elected over and over); a vote for us only
    /// in our own round.
    fn check_leader(
        &self,
        votes: &BTreeMap<ServerId, Ballot>,
        leader: ServerId,
        election_epoch: ElectionEpoch,
    ) -> bool {
        if leader == self.self_id {
            self.logical_clock == election_epoch
        } else {
            votes
                .get(&leader)
                .is_some_and(|b| b.state == ServerState::Leading)
        }
    }

    fn decide(&mut self, vote: Vote, election_epoch: ElectionEpoch) {
        self.preferred = None;
        let state = if vote.leader == self.self_id {
            ServerState::Leading
        } else if self.is_voter() {
            ServerState::Following
        } else {
            ServerState::Observing
        };
        self.state = state;
        self.finalizing = None;
        self.recv_set.clear();
        self.out_of_election.clear();
        self.decision = Some(Decision {
            leader: vote.leader,
            state,
            vote,
            election_epoch,
        });
    }

    /// `self.getCurrentVote()`: the decided vote and its round, or the proposal.
    fn current_vote(&self) -> (Vote, ElectionEpoch) {
        match &self.decision {
            Some(d) => (d.vote, d.election_epoch),
            None => (self.proposal, self.logical_clock),
        }
    }

    fn notification_to(
        &self,
        to: ServerId,
        vote: Vote,
        election_epoch: ElectionEpoch,
        state: ServerState,
    ) -> Outgoing {
        Outgoing {
            to,
            notification: Notification {
                leader: vote.leader,
                zxid: vote.zxid,
                election_epoch,
                state,
                sid: self.self_id,
                peer_epoch: vote.peer_epoch,
                config_version: self.quorum.committed().version(),
            },
        }
    }

    /// `sendNotifications`: our proposal to every voter. Our own copy is recorded here
    /// rather than looped back, then counted as ZooKeeper counts the looped-back copy.
    fn send_notifications(&mut self, out: &mut Vec<Outgoing>) {
        for to in self.quorum.voters() {
            if to != self.self_id {
                out.push(self.notification_to(
                    to,
                    self.proposal,
                    self.logical_clock,
                    ServerState::Looking,
                ));
            }
        }
        if self.is_voter() {
            self.recv_set.insert(
                self.self_id,
                Ballot {
                    vote: self.proposal,
                    election_epoch: self.logical_clock,
                    state: ServerState::Looking,
                },
            );
            self.check_proposal_quorum();
        }
    }
}

#[cfg(test)]
mod tests;
