use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;

fn sid(id: u64) -> ServerId {
    ServerId(id)
}

fn quorum(voters: &[u64], observers: &[u64]) -> QuorumMaj {
    QuorumMaj::new(
        voters.iter().copied().map(ServerId),
        observers.iter().copied().map(ServerId),
        0,
    )
    .unwrap()
}

fn vote(leader: u64, zxid: Zxid, peer_epoch: Epoch) -> Vote {
    Vote {
        leader: sid(leader),
        zxid,
        peer_epoch,
    }
}

fn zxid(epoch: i64, counter: i64) -> Zxid {
    (epoch << 32) | counter
}

/// Servers on a reliable FIFO network; ticks happen only when nothing is in flight.
struct Net {
    nodes: BTreeMap<ServerId, Election>,
    up: BTreeSet<ServerId>,
    queue: VecDeque<Outgoing>,
}

impl Net {
    /// `servers`: (sid, last zxid, current epoch); who votes is decided by `q`.
    fn new(q: &QuorumMaj, servers: &[(u64, Zxid, Epoch)]) -> Self {
        let nodes = servers
            .iter()
            .map(|&(id, z, e)| {
                let election = Election::new(sid(id), q.clone(), z, e, ElectionTimeouts::default());
                (sid(id), election)
            })
            .collect();
        let up = servers.iter().map(|s| sid(s.0)).collect();
        Self {
            nodes,
            up,
            queue: VecDeque::new(),
        }
    }

    fn start(&mut self, id: u64) {
        let out = self.nodes.get_mut(&sid(id)).unwrap().start();
        self.queue.extend(out);
    }

    fn start_all(&mut self) {
        let ids: Vec<u64> = self.up.iter().map(|s| s.0).collect();
        for id in ids {
            self.start(id);
        }
    }

    /// Delivers until quiet, ticking when nothing is in flight, for at most `ticks` ticks.
    fn run(&mut self, ticks: u32) {
        for _ in 0..ticks {
            while let Some(msg) = self.queue.pop_front() {
                if !self.up.contains(&msg.to) {
                    continue;
                }
                let out = self
                    .nodes
                    .get_mut(&msg.to)
                    .unwrap()
                    .step(msg.notification.sid, msg.notification);
                self.queue.extend(out);
            }
            for id in self.up.clone() {
                let out = self.nodes.get_mut(&id).unwrap().tick();
                self.queue.extend(out);
            }
        }
    }

    fn decision(&self, id: u64) -> Option<Decision> {
        self.nodes[&sid(id)].decision().copied()
    }
}

#[test]
fn total_order_is_epoch_then_zxid_then_sid() {
    let q = Quorums::from(quorum(&[1, 2, 3], &[4]));
    // Epoch first, even against a higher zxid and sid (a server that accepted epoch 3
    // before any transaction of it versus one with more of epoch 2).
    assert!(total_order_predicate(
        &q,
        &vote(1, zxid(1, 5), 3),
        &vote(3, zxid(2, 7), 2)
    ));
    assert!(!total_order_predicate(
        &q,
        &vote(3, zxid(2, 7), 2),
        &vote(1, zxid(1, 5), 3)
    ));
    assert!(total_order_predicate(
        &q,
        &vote(1, zxid(2, 0), 2),
        &vote(3, zxid(1, 9), 1)
    ));
    assert!(!total_order_predicate(
        &q,
        &vote(3, zxid(1, 9), 1),
        &vote(1, zxid(2, 0), 2)
    ));
    // Then zxid, against a higher sid.
    assert!(total_order_predicate(&q, &vote(1, 7, 1), &vote(3, 6, 1)));
    assert!(!total_order_predicate(&q, &vote(3, 6, 1), &vote(1, 7, 1)));
    // Then sid.
    assert!(total_order_predicate(&q, &vote(3, 7, 1), &vote(2, 7, 1)));
    assert!(!total_order_predicate(&q, &vote(2, 7, 1), &vote(3, 7, 1)));
    // An equal vote does not supersede.
    assert!(!total_order_predicate(&q, &vote(2, 7, 1), &vote(2, 7, 1)));
    // A vote for an observer (weight 0) never wins.
    assert!(!total_order_predicate(
        &q,
        &vote(4, zxid(9, 9), 9),
        &vote(1, 0, 0)
    ));
}

#[test]
fn term_predicate_counts_a_majority_of_voters_only() {
    let q = Quorums::from(quorum(&[1, 2, 3], &[4, 5]));
    let b = |leader, round, state| Ballot {
        vote: vote(leader, 5, 1),
        election_epoch: round,
        state,
    };
    let ours = b(3, 1, ServerState::Looking);
    let mut votes = BTreeMap::new();
    votes.insert(sid(1), ours);
    votes.insert(sid(4), ours);
    votes.insert(sid(5), ours);
    assert!(
        !term_predicate(&q, &votes, &ours),
        "observers are not a quorum"
    );
    votes.insert(sid(2), b(3, 2, ServerState::Looking));
    assert!(
        !term_predicate(&q, &votes, &ours),
        "another round does not agree"
    );
    votes.insert(sid(2), ours);
    assert!(term_predicate(&q, &votes, &ours));
    // Between settled servers only leader and peer epoch must match.
    let mut settled = BTreeMap::new();
    settled.insert(sid(1), b(3, 4, ServerState::Following));
    settled.insert(
        sid(3),
        Ballot {
            vote: vote(3, 99, 1),
            election_epoch: 7,
            state: ServerState::Leading,
        },
    );
    assert!(term_predicate(
        &q,
        &settled,
        &b(3, 9, ServerState::Following)
    ));
    assert!(!term_predicate(
        &q,
        &settled,
        &Ballot {
            vote: vote(3, 5, 2),
            election_epoch: 4,
            state: ServerState::Following
        }
    ));
}

#[test]
fn highest_zxid_beats_higher_sid() {
    let q = quorum(&[1, 2, 3], &[]);
    let mut net = Net::new(
        &q,
        &[(1, zxid(1, 9), 1), (2, zxid(1, 3), 1), (3, zxid(1, 8), 1)],
    );
    net.start_all();
    net.run(10);
    for id in 1..=3 {
        let d = net.decision(id).unwrap();
        assert_eq!(d.leader, sid(1), "server {id}");
        assert_eq!(d.vote.zxid, zxid(1, 9));
    }
    assert_eq!(net.decision(1).unwrap().state, ServerState::Leading);
    assert_eq!(net.decision(2).unwrap().state, ServerState::Following);
}

#[test]
fn higher_epoch_beats_higher_zxid() {
    let q = quorum(&[1, 2, 3], &[]);
    let mut net = Net::new(
        &q,
        // Server 1 accepted epoch 2 but logged nothing in it; 3 has more of epoch 1.
        &[(1, zxid(1, 3), 2), (2, zxid(1, 2), 1), (3, zxid(1, 8), 1)],
    );
    net.start_all();
    net.run(10);
    for id in 1..=3 {
        assert_eq!(net.decision(id).unwrap().leader, sid(1));
    }
}

#[test]
fn ties_are_broken_by_sid() {
    let q = quorum(&[1, 2, 3, 4, 5], &[]);
    let servers: Vec<_> = (1..=5).map(|id| (id, zxid(3, 4), 3)).collect();
    let mut net = Net::new(&q, &servers);
    net.start_all();
    net.run(10);
    for id in 1..=5 {
        assert_eq!(net.decision(id).unwrap().leader, sid(5), "server {id}");
    }
}

#[test]
fn observer_learns_the_leader_without_voting() {
    // The observer has by far the newest history; it must neither win nor count.
    let q = quorum(&[1, 2, 3], &[4]);
    let servers = [(1, 5, 1), (2, 6, 1), (3, 4, 1), (4, zxid(9, 9), 9)];
    let mut net = Net::new(&q, &servers);
    net.start_all();
    net.run(20);
    for id in 1..=3 {
        assert_eq!(net.decision(id).unwrap().leader, sid(2), "server {id}");
    }
    let d = net.decision(4).unwrap();
    assert_eq!(d.leader, sid(2));
    assert_eq!(d.state, ServerState::Observing);

    // One voter and an observer are not a quorum: the voter never decides.
    let mut net = Net::new(&q, &servers);
    net.up = [sid(1), sid(4)].into();
    net.start_all();
    net.run(50);
    assert_eq!(net.decision(1), None);
    assert_eq!(net.nodes[&sid(1)].state(), ServerState::Looking);
    assert_eq!(net.decision(4), None);
    // Voter 1 answered the observer at once with its vote, which the observer holds.
    assert_eq!(net.nodes[&sid(4)].proposal(), vote(1, 5, 1));
}

#[test]
fn restarted_server_joins_a_settled_ensemble() {
    let q = quorum(&[1, 2, 3], &[]);
    let mut net = Net::new(&q, &[(1, 5, 1), (2, 9, 1), (3, 7, 1)]);
    net.start_all();
    net.run(10);
    assert_eq!(net.decision(1).unwrap().leader, sid(2));
    let settled_round = net.decision(1).unwrap().election_epoch;

    // Server 3 comes back with a newer history and a later round; the ensemble does
    // not re-elect, it tells server 3 whom to follow.
    let out = net.nodes.get_mut(&sid(3)).unwrap().restart(zxid(2, 1), 2);
    net.queue.extend(out);
    net.run(10);
    let d = net.decision(3).unwrap();
    assert_eq!(d.leader, sid(2));
    assert_eq!(d.state, ServerState::Following);
    assert_eq!(net.nodes[&sid(3)].logical_clock(), settled_round);
    assert_eq!(net.decision(1).unwrap().election_epoch, settled_round);
    assert_eq!(net.decision(2).unwrap().state, ServerState::Leading);
}

#[test]
fn followers_without_their_leader_are_not_joined() {
    // checkLeader: a quorum of FOLLOWING notifications is not enough without the
    // leader's own LEADING one, so a dead leader is not followed again.
    let q = quorum(&[1, 2, 3, 4, 5], &[]);
    let servers: Vec<_> = (1..=5).map(|id| (id, 7, 1)).collect();
    let mut net = Net::new(&q, &servers);
    net.start_all();
    net.run(10);
    assert_eq!(net.decision(1).unwrap().leader, sid(5));
    net.up.remove(&sid(5));
    let out = net.nodes.get_mut(&sid(1)).unwrap().restart(7, 1);
    net.queue.extend(out);
    net.run(10);
    assert_eq!(net.decision(1), None);
    // With the leader back, the same server joins at once.
    net.up.insert(sid(5));
    net.run(10);
    assert_eq!(net.decision(1).unwrap().leader, sid(5));
}

#[test]
fn a_lower_round_is_answered_with_ours() {
    let q = quorum(&[1, 2, 3], &[]);
    let mut e = Election::new(sid(1), q, 5, 1, ElectionTimeouts::default());
    for _ in 0..3 {
        e.start();
    }
    assert_eq!(e.logical_clock(), 3);
    let stale = Notification {
        leader: sid(2),
        zxid: 4,
        election_epoch: 1,
        state: ServerState::Looking,
        sid: sid(2),
        peer_epoch: 1,
        config_version: 0,
    };
    let out = e.step(sid(2), stale);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, sid(2));
    assert_eq!(out[0].notification.election_epoch, 3);
    assert_eq!(out[0].notification.leader, sid(1));
    assert_eq!(out[0].notification.zxid, 5);
    // The stale vote is not adopted even though it is for our round's loser.
    assert_eq!(e.proposal(), vote(1, 5, 1));
}

#[test]
fn finalize_wait_lets_a_better_vote_in() {
    let q = quorum(&[1, 2, 3], &[]);
    let mut e = Election::new(sid(1), q, 1, 1, ElectionTimeouts::default());
    e.start();
    let from = |id: u64, z: Zxid| looking(id, id, z);
    // Server 2 (same zxid, higher sid) makes a quorum {1, 2} for vote 2.
    e.step(sid(2), from(2, 1));
    assert_eq!(e.proposal().leader, sid(2));
    assert_eq!(e.decision(), None, "finalizeWait first");
    // Server 3's better vote arrives within finalizeWait: 1 switches, and {1, 3} now
    // hold vote 3. Every voter has voted, so nothing is left to wait for.
    let out = e.step(sid(3), from(3, 9));
    assert_eq!(e.proposal().leader, sid(3));
    assert_eq!(out.len(), 2, "the new vote goes to both peers");
    let d = e.decision().unwrap();
    assert_eq!(d.leader, sid(3));
    assert_eq!(d.state, ServerState::Following);

    // Without a better vote the quorum's choice stands after finalizeWait.
    let q = quorum(&[1, 2, 3], &[]);
    let mut e = Election::new(sid(1), q, 1, 1, ElectionTimeouts::default());
    e.start();
    e.step(sid(2), from(2, 1));
    assert_eq!(e.proposal().leader, sid(2));
    assert_eq!(e.decision(), None);
    e.tick();
    assert_eq!(e.decision().unwrap().leader, sid(2));
    assert_eq!(e.decision().unwrap().state, ServerState::Following);
}

fn looking(id: u64, leader: u64, z: Zxid) -> Notification {
    Notification {
        leader: sid(leader),
        zxid: z,
        election_epoch: 1,
        state: ServerState::Looking,
        sid: sid(id),
        peer_epoch: 1,
        config_version: 0,
    }
}

#[test]
fn finalize_wait_ends_once_every_voter_has_voted() {
    // During finalizeWait: the last voter's vote, not better, decides at once.
    let q = quorum(&[1, 2, 3], &[]);
    let mut e = Election::new(sid(1), q.clone(), 1, 1, ElectionTimeouts::default());
    e.start();
    e.step(sid(2), looking(2, 2, 1));
    assert_eq!(e.decision(), None, "3 has not voted yet");
    e.step(sid(3), looking(3, 3, 0));
    assert_eq!(e.decision().unwrap().leader, sid(2));

    // Before it: a quorum that forms with the last vote decides without waiting.
    let mut e = Election::new(sid(1), q, 1, 1, ElectionTimeouts::default());
    e.start();
    e.step(sid(3), looking(3, 3, 0));
    e.step(sid(2), looking(2, 2, 1));
    assert_eq!(e.decision().unwrap().leader, sid(2));
}

#[test]
fn finalize_wait_does_not_wait_for_a_voter_whose_link_broke() {
    let q = quorum(&[1, 2, 3], &[]);
    // The link broke before the round: the quorum decides at once (a leader failover:
    // the dead leader will not vote).
    let mut e = Election::new(sid(1), q.clone(), 1, 1, ElectionTimeouts::default());
    e.link_lost(sid(3));
    e.start();
    e.step(sid(2), looking(2, 2, 1));
    assert_eq!(e.decision().unwrap().leader, sid(2));

    // It breaks during finalizeWait: that ends the wait.
    let mut e = Election::new(sid(1), q.clone(), 1, 1, ElectionTimeouts::default());
    e.start();
    e.step(sid(2), looking(2, 2, 1));
    assert_eq!(e.decision(), None);
    e.link_lost(sid(3));
    assert_eq!(e.decision().unwrap().leader, sid(2));

    // Heard from again (it came back), it is waited for as usual, and its better vote
    // wins.
    let mut e = Election::new(sid(1), q, 1, 1, ElectionTimeouts::default());
    e.link_lost(sid(3));
    e.heard_from(sid(3));
    e.start();
    e.step(sid(2), looking(2, 2, 1));
    assert_eq!(e.decision(), None, "3 may still send a better vote");
    e.step(sid(3), looking(3, 3, 9));
    assert_eq!(e.proposal().leader, sid(3));
    e.tick();
    assert_eq!(e.decision().unwrap().leader, sid(3));
}

#[test]
fn silence_resends_with_backoff() {
    let q = quorum(&[1, 2, 3], &[]);
    let timeouts = ElectionTimeouts {
        finalize_wait_ticks: 1,
        min_notification_interval_ticks: 1,
        max_notification_interval_ticks: 4,
    };
    let mut e = Election::new(sid(1), q, 1, 1, timeouts);
    assert_eq!(e.start().len(), 2);
    let sends: Vec<usize> = (0..16).map(|_| e.tick().len()).collect();
    // Intervals 1, 2, 4, 4, 4: re-sends after ticks 1, 3, 7, 11, 15.
    let at: Vec<usize> = sends
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(at, vec![1, 3, 7, 11, 15]);
}

#[test]
fn observers_and_voters_do_not_ping_pong() {
    let q = quorum(&[1, 2, 3], &[4]);
    let mut voter = Election::new(sid(1), q.clone(), 5, 1, ElectionTimeouts::default());
    let mut observer = Election::new(sid(4), q, 9, 1, ElectionTimeouts::default());
    voter.start();
    for _ in 0..3 {
        observer.start();
    }
    // The observer (round 3) asks the voter (round 1): the voter answers at once...
    let to_voter = observer
        .start()
        .into_iter()
        .find(|o| o.to == sid(1))
        .unwrap();
    let answer = voter.step(sid(4), to_voter.notification);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].notification.election_epoch, 1);
    // ...and the observer, in a later round, neither counts it nor answers back.
    assert!(observer.step(sid(1), answer[0].notification).is_empty());
    assert_eq!(observer.decision(), None);
}

#[test]
fn late_joiner_follows_a_leader_a_majority_with_it_follows() {
    // Five voters. The joiner counts itself among the leader's followers (a pending
    // membership change may need it), so it needs two of the others to agree.
    let q = quorum(&[1, 2, 3, 4, 5], &[]);
    let mut net = Net::new(&q, &[(1, 5, 1), (2, 9, 1), (3, 7, 1), (4, 1, 1), (5, 1, 1)]);
    net.up.remove(&sid(4));
    net.up.remove(&sid(5));
    net.start_all();
    net.run(10);
    assert_eq!(net.decision(1).unwrap().leader, sid(2));
    // Discovery settled epoch 2, but only the leader announces it yet; its followers
    // still agree with each other, and with the joiner they are three of five.
    net.nodes.get_mut(&sid(2)).unwrap().update_election_vote(2);
    net.up.insert(sid(4));
    net.start(4);
    net.run(10);
    assert_eq!(net.decision(4).map(|d| d.leader), Some(sid(2)));
}

#[test]
fn a_joiner_does_not_follow_a_leader_without_a_majority() {
    let q = quorum(&[1, 2, 3, 4, 5], &[]);
    let mut net = Net::new(&q, &[(1, 5, 1), (2, 9, 1), (3, 7, 1), (4, 1, 1), (5, 1, 1)]);
    net.up.remove(&sid(4));
    net.up.remove(&sid(5));
    net.start_all();
    net.run(10);
    // Its followers gone, the leader still says it leads (it has not noticed yet):
    // the leader and the joiner are two of five.
    net.up.remove(&sid(1));
    net.up.remove(&sid(3));
    net.up.insert(sid(4));
    net.start(4);
    net.run(10);
    assert_eq!(net.decision(4), None);
}

/// A voter that missed the handover's ELECT keeps the usual order (3 beats 2 on a tie),
/// while the other holds out for the named successor (2): neither makes a quorum of
/// the two voters until the preference's deadline passes; then the usual order decides.
#[test]
fn a_handover_preference_one_voter_missed_expires() {
    let q = quorum(&[2, 3], &[1]);
    let servers: Vec<_> = [1, 2, 3].map(|id| (id, zxid(4, 7), 4)).to_vec();
    let mut net = Net::new(&q, &servers);
    net.nodes.get_mut(&sid(2)).unwrap().prefer(sid(2));
    let deadline = 2 * ElectionTimeouts::default().max_notification_interval_ticks;
    net.start_all();
    net.run(deadline / 2);
    for id in 1..=3 {
        assert_eq!(
            net.decision(id),
            None,
            "server {id} decided while 2 held out"
        );
    }
    net.run(deadline);
    for id in [2, 3] {
        let d = net
            .decision(id)
            .unwrap_or_else(|| panic!("server {id} never decided"));
        assert_eq!(d.leader, sid(3), "server {id}");
    }
    // The observer backed off to the longest re-send interval meanwhile.
    net.run(deadline / 2 + 1);
    assert_eq!(net.decision(1).map(|d| d.leader), Some(sid(3)));
}

/// When every voter got the ELECT, the named successor wins at once, whatever its id.
#[test]
fn a_handover_preference_all_voters_hold_wins() {
    let q = quorum(&[1, 2, 3], &[]);
    let servers: Vec<_> = [1, 2, 3].map(|id| (id, zxid(4, 7), 4)).to_vec();
    let mut net = Net::new(&q, &servers);
    for id in 1..=3 {
        net.nodes.get_mut(&sid(id)).unwrap().prefer(sid(1));
    }
    net.start_all();
    net.run(10);
    for id in 1..=3 {
        assert_eq!(net.decision(id).unwrap().leader, sid(1), "server {id}");
    }
}

#[test]
fn a_looking_voter_answers_only_a_looking_observer() {
    let q = quorum(&[1, 2, 3], &[4]);
    let mut e = Election::new(sid(1), q, 1, 1, ElectionTimeouts::default());
    e.start();
    let from_observer = |state| Notification {
        leader: sid(2),
        zxid: 1,
        election_epoch: 1,
        state,
        sid: sid(4),
        peer_epoch: 1,
        config_version: 0,
    };
    let out = e.step(sid(4), from_observer(ServerState::Looking));
    assert_eq!(out.len(), 1, "a looking observer learns our vote");
    assert_eq!(out[0].to, sid(4));
    // A settled observer answers our LOOKING notifications; answering it back would
    // bounce notifications between us until we decide.
    assert!(
        e.step(sid(4), from_observer(ServerState::Observing))
            .is_empty()
    );
}

#[test]
fn a_settled_ballot_for_a_better_vote_keeps_finalize_wait() {
    // Election simulation, lossless seed 358: observer 4 holds a ballot of this round
    // from every voter, but 2's says it leads a vote better than the one 1 and 3 sent
    // earlier. Deciding for 1 at once would pick a leader no quorum follows.
    let q = quorum(&[1, 2, 3], &[4]);
    let mut e = Election::new(sid(4), q, 1, 1, ElectionTimeouts::default());
    e.start();
    e.step(sid(1), looking(1, 1, 1));
    let mut leads = looking(2, 2, 5);
    leads.state = ServerState::Leading;
    e.step(sid(2), leads);
    e.step(sid(3), looking(3, 1, 1));
    assert_eq!(e.decision(), None, "decided at once: {:?}", e.decision());
}
