use std::collections::VecDeque;

use super::*;
use crate::storage::MemStorage;

/// A tiny lossless cluster: every message is delivered in order, every node flushes
/// after each delivery round. The simulator (rookery-sim) does the adversarial part.
struct Net {
    peers: BTreeMap<ServerId, Peer<MemStorage>>,
    down: BTreeSet<ServerId>,
    queue: VecDeque<(ServerId, ServerId, Message)>,
    /// What each server applied, in order.
    applied: BTreeMap<ServerId, Vec<Zxid>>,
    synced: BTreeMap<ServerId, Vec<u64>>,
    /// What leaders send as a snapshot, and what learners installed.
    snapshot: Vec<u8>,
    installed: BTreeMap<ServerId, Vec<u8>>,
}

fn cfg(id: u64, voters: &[u64], observers: &[u64]) -> PeerConfig {
    PeerConfig {
        self_id: ServerId(id),
        quorum: QuorumMaj::new(
            voters.iter().map(|&v| ServerId(v)),
            observers.iter().map(|&v| ServerId(v)),
            0,
        )
        .unwrap(),
        config_in_entry: no_configs,
        timeouts: PeerTimeouts::default(),
        bugs: InjectedBugs::default(),
        roll_epoch_at_counter: DEFAULT_ROLL_EPOCH_AT_COUNTER,
    }
}

impl Net {
    fn new(voters: &[u64], observers: &[u64]) -> Net {
        let mut net = Net {
            peers: BTreeMap::new(),
            down: BTreeSet::new(),
            queue: VecDeque::new(),
            applied: BTreeMap::new(),
            synced: BTreeMap::new(),
            snapshot: vec![1, 2, 3],
            installed: BTreeMap::new(),
        };
        for &id in voters.iter().chain(observers) {
            let peer = Peer::new(cfg(id, voters, observers), MemStorage::new(), 0).unwrap();
            net.peers.insert(ServerId(id), peer);
            net.drain(ServerId(id));
        }
        net
    }

    fn drain(&mut self, id: ServerId) {
        let peer = self.peers.get_mut(&id).unwrap();
        loop {
            let ready = peer.take_ready().unwrap();
            if ready.is_empty() {
                break;
            }
            if let Some(snap) = &ready.install_snapshot {
                self.applied.entry(id).or_default().clear();
                self.installed.insert(id, snap.data.clone());
            }
            for e in &ready.committed {
                self.applied.entry(id).or_default().push(e.zxid);
            }
            self.synced.entry(id).or_default().extend(&ready.synced);
            for to in ready.snapshot_requests {
                let zxid = peer.applied_zxid();
                peer.snapshot_ready(to, zxid, self.snapshot.clone())
                    .unwrap();
            }
            for (to, m) in ready.messages {
                self.queue.push_back((id, to, m));
            }
        }
    }

    fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let mut n = 0;
            while let Some((from, to, m)) = self.queue.pop_front() {
                n += 1;
                if self.down.contains(&to) || self.down.contains(&from) {
                    continue;
                }
                self.peers.get_mut(&to).unwrap().step(from, m).unwrap();
                self.drain(to);
                if n > 100_000 {
                    panic!("message storm");
                }
            }
            let ids: Vec<ServerId> = self.peers.keys().copied().collect();
            for id in ids {
                if self.down.contains(&id) {
                    continue;
                }
                let p = self.peers.get_mut(&id).unwrap();
                p.flush().unwrap();
                p.tick().unwrap();
                self.drain(id);
            }
        }
    }

    fn leader(&self) -> Option<ServerId> {
        self.peers
            .iter()
            .find(|(id, p)| !self.down.contains(id) && p.role() == Role::Leading && p.is_serving())
            .map(|(id, _)| *id)
    }

    fn propose(&mut self, payload: u8) -> Zxid {
        let leader = self.leader().expect("a leader");
        let zxid = self
            .peers
            .get_mut(&leader)
            .unwrap()
            .propose(|_| vec![payload])
            .unwrap();
        self.drain(leader);
        zxid
    }
}

#[test]
fn a_single_voter_leads_at_once() {
    let net = Net::new(&[1], &[]);
    let p = &net.peers[&ServerId(1)];
    assert_eq!(p.role(), Role::Leading);
    assert!(p.is_serving());
    assert_eq!(p.current_epoch(), 1);
}

#[test]
fn three_voters_elect_the_highest_and_replicate() {
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.run(10);
    assert_eq!(net.leader(), Some(ServerId(3)));
    for (id, p) in &net.peers {
        assert!(p.is_serving(), "{id} serving");
        assert_eq!(p.current_epoch(), 1);
    }
    assert_eq!(net.peers[&ServerId(4)].role(), Role::Observing);
    let mut zxids = Vec::new();
    for i in 0..5 {
        zxids.push(net.propose(i));
    }
    net.run(3);
    for id in 1..=4 {
        assert_eq!(net.applied[&ServerId(id)], zxids, "server {id} applied");
    }
}

#[test]
fn nothing_commits_before_the_quorum_has_flushed() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.run(10);
    let zxid = net.propose(7);
    // Deliver the proposal but let nobody flush: nothing may be committed anywhere.
    while let Some((from, to, m)) = net.queue.pop_front() {
        net.peers.get_mut(&to).unwrap().step(from, m).unwrap();
        net.drain(to);
    }
    for p in net.peers.values() {
        assert!(p.commit_zxid() < zxid);
    }
    net.run(2);
    assert!(net.peers.values().all(|p| p.commit_zxid() >= zxid));
}

#[test]
fn a_flush_begun_before_more_appends_acknowledges_only_what_it_covers() {
    let mut net = Net::new(&[1], &[]);
    let first = net.propose(1);
    let p = net.peers.get_mut(&ServerId(1)).unwrap();
    let ticket = p.begin_flush().expect("an append to flush");
    assert_eq!(ticket.through(), first);
    assert!(!p.needs_flush(), "the flush in flight covers every append");
    assert_eq!(p.begin_flush(), None);
    let second = net.propose(2);
    let p = net.peers.get_mut(&ServerId(1)).unwrap();
    assert!(
        p.needs_flush(),
        "an append after the flush began needs another"
    );
    p.flush_done(ticket).unwrap();
    assert_eq!(p.durable_zxid(), first);
    assert_eq!(
        p.commit_zxid(),
        first,
        "the second append is not durable yet"
    );
    net.drain(ServerId(1));
    assert_eq!(net.applied[&ServerId(1)], vec![first]);
    let p = net.peers.get_mut(&ServerId(1)).unwrap();
    let ticket = p.begin_flush().expect("the second append");
    p.flush_done(ticket).unwrap();
    assert_eq!(p.commit_zxid(), second);
}

#[test]
fn a_flush_begun_before_the_log_is_cut_acknowledges_nothing() {
    let mut net = Net::new(&[1], &[]);
    let cut = net.propose(1);
    let p = net.peers.get_mut(&ServerId(1)).unwrap();
    let stale = p.begin_flush().expect("an append to flush");
    // What a learner's TRUNC does while that flush still runs (a leader never cuts its
    // log; a lone voter just makes the zxid come round again).
    p.cut_log_after(0).unwrap();
    let again = net.propose(2);
    assert_eq!(again, cut, "the same zxid, a different entry");
    let p = net.peers.get_mut(&ServerId(1)).unwrap();
    p.flush_done(stale).unwrap();
    assert_eq!(p.durable_zxid(), 0);
    assert_eq!(
        p.commit_zxid(),
        0,
        "the stale flush covered the cut entry, not this one"
    );
    let fresh = p.begin_flush().expect("the new entry needs its own flush");
    p.flush_done(fresh).unwrap();
    assert_eq!(p.commit_zxid(), again);
}

#[test]
fn a_new_leader_is_elected_after_the_leader_dies_and_history_survives() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.run(10);
    let first = net.propose(1);
    net.run(3);
    net.down.insert(ServerId(3));
    net.run(40);
    let leader = net.leader().expect("new leader");
    assert_ne!(leader, ServerId(3));
    assert_eq!(net.peers[&leader].current_epoch(), 2);
    let second = net.propose(2);
    net.run(3);
    for id in [1, 2] {
        assert_eq!(net.applied[&ServerId(id)], vec![first, second]);
    }
    // The old leader comes back and catches up.
    net.down.remove(&ServerId(3));
    net.run(40);
    assert_eq!(net.peers[&ServerId(3)].role(), Role::Following);
    assert!(net.peers[&ServerId(3)].is_serving());
    assert_eq!(net.applied[&ServerId(3)], vec![first, second]);
}

#[test]
fn sync_answers_after_the_leaders_proposals_commit() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.run(10);
    let zxid = net.propose(1);
    net.peers.get_mut(&ServerId(1)).unwrap().sync(42).unwrap();
    net.drain(ServerId(1));
    net.run(3);
    assert_eq!(net.synced[&ServerId(1)], vec![42]);
    assert!(net.applied[&ServerId(1)].contains(&zxid));
}

#[test]
fn a_wiped_learner_gets_a_chunked_snap() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.run(10);
    let first = net.propose(1);
    net.run(3);
    // Server 1 loses everything; the leader's log still starts at `first`, so only a
    // SNAP can bring a learner at zero up to date.
    net.down.insert(ServerId(1));
    net.run(2);
    let cfg1 = cfg(1, &[1, 2, 3], &[]);
    net.peers
        .insert(ServerId(1), Peer::new(cfg1, MemStorage::new(), 0).unwrap());
    net.applied.remove(&ServerId(1));
    net.snapshot = (0..SNAP_CHUNK_BYTES * 2 + 5).map(|i| i as u8).collect();
    net.drain(ServerId(1));
    net.down.remove(&ServerId(1));
    net.run(40);
    assert!(net.peers[&ServerId(1)].is_serving());
    assert_eq!(net.installed[&ServerId(1)], net.snapshot);
    assert_eq!(net.peers[&ServerId(1)].applied_zxid(), first);
    let second = net.propose(2);
    net.run(3);
    assert_eq!(net.applied[&ServerId(1)], vec![second]);
}

#[test]
fn the_leader_rolls_to_a_new_epoch_before_its_counter_runs_out() {
    let mut net = Net::new(&[1, 2, 3], &[4]);
    for p in net.peers.values_mut() {
        p.cfg.roll_epoch_at_counter = 3;
    }
    net.run(10);
    let leader = net.leader().unwrap();
    let mut zxids = Vec::new();
    for i in 0..10 {
        zxids.push(net.propose(i));
        net.run(1);
    }
    net.run(3);
    // The same leader, never out of service, now in a later epoch.
    assert_eq!(net.leader(), Some(leader));
    assert!(net.peers.values().all(|p| p.is_serving()));
    let epochs: Vec<i64> = zxids.iter().map(|z| epoch_of(*z)).collect();
    // Three proposals per epoch at this threshold: 1, 1, 1, 2, 2, 2, 3, ...
    assert_eq!(
        epochs,
        vec![1, 1, 1, 2, 2, 2, 3, 3, 3, 4],
        "zxids {zxids:x?}"
    );
    assert!(zxids.windows(2).all(|w| w[0] < w[1]));
    for id in 1..=4 {
        assert_eq!(net.applied[&ServerId(id)], zxids, "server {id}");
        assert_eq!(net.peers[&ServerId(id)].current_epoch(), 4, "server {id}");
    }
    // A restarted follower still syncs with the rolled leader.
    let follower = ServerId(if leader == ServerId(1) { 2 } else { 1 });
    net.down.insert(follower);
    net.run(20);
    let z = net.propose(99);
    net.down.remove(&follower);
    net.run(40);
    assert!(net.peers[&follower].is_serving());
    assert_eq!(net.applied[&follower].last(), Some(&z));
}

// ---------------------------------------------------------------------------------
// Reconfiguration: payloads that start with CONFIG carry a membership.

const CONFIG: u8 = 0xC0;

/// `[CONFIG, voters..., 0, observers...]`.
fn config_payload(voters: &[u64], observers: &[u64]) -> Vec<u8> {
    let mut p = vec![CONFIG];
    p.extend(voters.iter().map(|&v| v as u8));
    p.push(0);
    p.extend(observers.iter().map(|&v| v as u8));
    p
}

fn config_in_test_entry(zxid: Zxid, p: &[u8]) -> Option<QuorumMaj> {
    let rest = p.strip_prefix(&[CONFIG])?;
    let split = rest.iter().position(|&b| b == 0)?;
    let ids = |b: &[u8]| {
        b.iter()
            .map(|&v| ServerId(u64::from(v)))
            .collect::<Vec<_>>()
    };
    QuorumMaj::new(ids(&rest[..split]), ids(&rest[split + 1..]), zxid).ok()
}

impl Net {
    fn with_configs(voters: &[u64], observers: &[u64]) -> Net {
        let mut net = Net::new(&[], &[]);
        for &id in voters.iter().chain(observers) {
            net.start(id, voters, observers);
        }
        net
    }

    /// Starts server `id` with this configuration (as its zoo.cfg would give it).
    fn start(&mut self, id: u64, voters: &[u64], observers: &[u64]) {
        let mut c = cfg(id, voters, observers);
        c.config_in_entry = config_in_test_entry;
        let peer = Peer::new(c, MemStorage::new(), 0).unwrap();
        self.peers.insert(ServerId(id), peer);
        self.drain(ServerId(id));
    }

    fn reconfig(&mut self, voters: &[u64], observers: &[u64]) -> Zxid {
        let leader = self.leader().expect("a leader");
        let payload = config_payload(voters, observers);
        let zxid = self
            .peers
            .get_mut(&leader)
            .unwrap()
            .propose(|_| payload)
            .unwrap();
        self.drain(leader);
        zxid
    }

    fn voters_of(&self, id: u64) -> Vec<u64> {
        self.peers[&ServerId(id)]
            .quorums()
            .committed()
            .voters()
            .iter()
            .map(|s| s.0)
            .collect()
    }
}

#[test]
fn a_server_is_added_as_an_observer_promoted_and_counted() {
    let mut net = Net::with_configs(&[1, 2, 3], &[]);
    net.run(10);
    let first = net.propose(1);
    net.run(3);
    // Server 4 starts knowing the ensemble and itself as an observer; the leader
    // ignores it until the ensemble has added it.
    net.start(4, &[1, 2, 3], &[4]);
    net.run(5);
    assert!(!net.peers[&ServerId(4)].is_serving());
    let added = net.reconfig(&[1, 2, 3], &[4]);
    net.run(30);
    let p4 = &net.peers[&ServerId(4)];
    assert_eq!(p4.role(), Role::Observing);
    assert!(p4.is_serving());
    assert!(net.applied[&ServerId(4)].contains(&added) || p4.applied_zxid() >= added);
    let _ = first;
    // Promoted: it follows, and the committed configuration has four voters everywhere.
    let promoted = net.reconfig(&[1, 2, 3, 4], &[]);
    net.run(20);
    assert_eq!(net.peers[&ServerId(4)].role(), Role::Following);
    for id in 1..=4 {
        assert_eq!(net.voters_of(id), vec![1, 2, 3, 4], "server {id}");
        assert!(net.peers[&ServerId(id)].applied_zxid() >= promoted);
    }
    // Four voters: with two of them down nothing commits, with three it does.
    let leader = net.leader().unwrap().0;
    let others: Vec<u64> = (1..=4).filter(|&i| i != leader).collect();
    net.down.insert(ServerId(others[0]));
    net.down.insert(ServerId(others[1]));
    let z = net.propose(2);
    net.run(2);
    assert!(
        net.peers[&ServerId(leader)].commit_zxid() < z,
        "2 of 4 committed"
    );
    net.down.remove(&ServerId(others[1]));
    net.run(40);
    let leader = net.leader().expect("a leader with 3 of 4");
    let z = net.propose(3);
    net.run(3);
    assert!(net.peers[&leader].commit_zxid() >= z);
}

#[test]
fn a_leaders_sync_waits_until_the_host_has_every_entry_it_covers() {
    // rookery-sim seed 3352 (--reconfig, with the then optional sync check): the leader's flush commits a
    // change that leaves it the only voter, which at once commits what it proposed
    // after it. The sync must come out with that entry applied, not with the change.
    let mut net = Net::with_configs(&[1, 2], &[]);
    net.run(10);
    let leader = net.leader().expect("a leader");
    let other = ServerId(3 - leader.0);
    let change = net.reconfig(&[leader.0], &[other.0]);
    // The other voter logs and acknowledges the change; the leader has not flushed it.
    while let Some((from, to, m)) = net.queue.pop_front() {
        net.peers.get_mut(&to).unwrap().step(from, m).unwrap();
        if to == other {
            net.peers.get_mut(&other).unwrap().flush().unwrap();
        }
        net.drain(to);
    }
    let p = net.peers.get_mut(&leader).unwrap();
    let after = p.propose(|_| vec![9]).unwrap();
    p.sync(7).unwrap();
    p.flush().unwrap();
    let mut applied = 0;
    loop {
        let ready = p.take_ready().unwrap();
        assert!(!ready.is_empty(), "the sync was never answered");
        if let Some(e) = ready.committed.last() {
            applied = e.zxid;
        }
        if ready.synced.contains(&7) {
            assert!(
                applied >= after,
                "answered with {applied:#x}, before {after:#x}"
            );
            break;
        }
    }
    assert!(applied > change);
}

#[test]
fn a_removed_voter_stops_counting_and_a_removed_leader_steps_down() {
    let mut net = Net::with_configs(&[1, 2, 3], &[]);
    net.run(10);
    let leader = net.leader().unwrap().0;
    let removed = net.reconfig(&(1..=3).filter(|&i| i != leader).collect::<Vec<_>>(), &[]);
    net.run(40);
    let new_leader = net.leader().expect("the remaining voters elect a leader");
    assert_ne!(new_leader.0, leader);
    for id in (1..=3).filter(|&i| i != leader) {
        assert!(net.peers[&ServerId(id)].applied_zxid() >= removed);
        assert_eq!(net.voters_of(id).len(), 2, "server {id}");
    }
    assert!(!net.peers[&ServerId(leader)].is_serving());
    let z = net.propose(9);
    net.run(3);
    assert!(net.peers[&new_leader].commit_zxid() >= z);
}

#[test]
fn a_voter_that_missed_a_removal_learns_the_membership_and_rejoins() {
    let mut net = Net::with_configs(&[1, 2, 3, 4], &[]);
    net.run(10);
    let leader = net.leader().unwrap().0;
    let others: Vec<u64> = (1..=4).filter(|&i| i != leader).collect();
    let (late, removed) = (others[0], others[1]);
    net.down.insert(ServerId(late));
    net.run(2);
    let voters: Vec<u64> = (1..=4).filter(|&i| i != removed).collect();
    let zxid = net.reconfig(&voters, &[]);
    net.run(5);
    assert!(net.peers[&ServerId(leader)].commit_zxid() >= zxid);
    // The late voter still counts four voters; without the leader's word it could not
    // find a quorum of three that follows the leader.
    net.down.insert(ServerId(removed));
    net.down.remove(&ServerId(late));
    net.peers
        .get_mut(&ServerId(late))
        .unwrap()
        .link_lost(ServerId(leader))
        .unwrap();
    net.run(60);
    let p = &net.peers[&ServerId(late)];
    assert!(p.is_serving(), "the late voter rejoined");
    assert_eq!(p.role(), Role::Following);
    assert_eq!(net.voters_of(late), voters);
}

#[test]
fn leadership_is_handed_to_a_named_voter() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.run(10);
    let first = net.propose(1);
    net.run(3);
    // Server 3 leads (highest id among equals); hand over to server 1, which an
    // ordinary election among equally up-to-date servers would never pick.
    assert_eq!(net.leader(), Some(ServerId(3)));
    let leader = net.peers.get_mut(&ServerId(3)).unwrap();
    assert_eq!(
        leader.transfer_leadership(Some(ServerId(3))),
        Err(TransferError::AlreadyLeader)
    );
    assert_eq!(
        leader.transfer_leadership(Some(ServerId(1))),
        Ok(ServerId(1))
    );
    net.drain(ServerId(3));
    net.run(40);
    assert_eq!(net.leader(), Some(ServerId(1)));
    let second = net.propose(2);
    net.run(3);
    for id in 1..=3 {
        assert_eq!(
            net.applied[&ServerId(id)],
            vec![first, second],
            "server {id}"
        );
    }
}

/// rookery-server's `leader-alone`: with its followers gone for longer than syncLimit,
/// the leader keeps leading and commits on its own ACK; without the bug it steps down.
#[cfg(feature = "inject-bugs")]
#[test]
fn leader_alone_keeps_leading_and_commits_without_a_quorum() {
    for bug in [false, true] {
        let mut net = Net::new(&[1, 2, 3], &[]);
        net.run(10);
        let leader = net.leader().expect("a leader");
        for p in net.peers.values_mut() {
            p.cfg.bugs.leader_alone = bug;
        }
        let followers: Vec<ServerId> = net
            .peers
            .keys()
            .copied()
            .filter(|&id| id != leader)
            .collect();
        net.down.extend(followers);
        // Four times syncLimit (5 ticks).
        net.run(20);
        if !bug {
            assert_eq!(net.peers[&leader].role(), Role::Looking);
            continue;
        }
        assert_eq!(net.peers[&leader].role(), Role::Leading);
        assert!(net.peers[&leader].is_serving());
        let zxid = net.propose(9);
        net.run(1);
        assert!(net.peers[&leader].commit_zxid() >= zxid);
        assert_eq!(net.applied[&leader].last(), Some(&zxid));
    }
}

/// rookery-server's `ack-before-durable`: voters that acknowledge without syncing get a
/// proposal committed and applied that a crash of every server then loses.
#[cfg(feature = "inject-bugs")]
#[test]
fn acknowledging_unsynced_commits_what_a_crash_of_every_server_loses() {
    use crate::storage::CrashMode;
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.run(10);
    for p in net.peers.values_mut() {
        p.cfg.bugs.ack_before_sync = true;
    }
    let leader = net.leader().expect("a leader");
    let zxid = net.propose(5);
    // Deliver everything, acknowledging after each pass, never flushing.
    for _ in 0..10 {
        while let Some((from, to, m)) = net.queue.pop_front() {
            net.peers.get_mut(&to).unwrap().step(from, m).unwrap();
            net.drain(to);
        }
        let ids: Vec<ServerId> = net.peers.keys().copied().collect();
        for id in ids {
            net.peers
                .get_mut(&id)
                .unwrap()
                .acknowledge_unsynced()
                .unwrap();
            net.drain(id);
        }
    }
    assert_eq!(
        net.applied[&leader].last(),
        Some(&zxid),
        "committed and applied"
    );
    for p in net.peers.values_mut() {
        assert!(p.needs_flush(), "never synced");
        p.storage_mut().crash(CrashMode::DropUnsynced);
        assert!(
            p.storage().last_zxid().unwrap_or(0) < zxid,
            "lost by the crash"
        );
    }
}

/// Found by rookery-sim (`--reconfig`, seed 6233): the only candidate was a voter of
/// the committed configuration, and a voter of the pending one only held a proposal
/// the candidate had lost. The candidate gave up at every ACKEPOCH (waitForEpochAck),
/// for ever.
#[test]
fn a_leader_cuts_back_a_pending_voter_that_holds_more_than_it() {
    use crate::storage::CrashMode;
    let (leader, pending) = (ServerId(3), ServerId(2));
    let mut net = Net::with_configs(&[3], &[2]);
    net.run(10);
    assert_eq!(net.leader(), Some(leader));
    // Like `run`, but 2's ACKs (of NEWLEADER too) are lost, so what needs 2 in its
    // quorum never commits; and only the servers in `flush` sync.
    let lossy = |net: &mut Net, rounds: usize, flush: &[ServerId]| {
        for _ in 0..rounds {
            while let Some((from, to, m)) = net.queue.pop_front() {
                if from == pending
                    && matches!(m, Message::Ack { .. } | Message::AckNewLeader { .. })
                {
                    continue;
                }
                net.peers.get_mut(&to).unwrap().step(from, m).unwrap();
                net.drain(to);
            }
            for id in [leader, pending] {
                let p = net.peers.get_mut(&id).unwrap();
                if flush.contains(&id) {
                    p.flush().unwrap();
                }
                p.tick().unwrap();
                net.drain(id);
            }
        }
    };
    // A configuration making 2 a voter: logged everywhere, durable on 3, never committed.
    let config = net.reconfig(&[2, 3], &[]);
    lossy(&mut net, 20, &[leader, pending]);
    assert!(net.peers[&leader].commit_zxid() < config);
    assert_eq!(net.peers[&pending].role(), Role::Following);
    // A proposal only 2 makes durable; the leader then crashes before its own sync.
    let lost = net.propose(7);
    lossy(&mut net, 2, &[pending]);
    assert_eq!(net.peers[&pending].durable_zxid(), lost, "2 holds it");
    let applied = net.peers[&leader].applied_zxid();
    let mut disk = std::mem::take(net.peers.get_mut(&leader).unwrap().storage_mut());
    disk.crash(CrashMode::DropUnsynced);
    assert_eq!(disk.last_zxid(), Some(config), "3 lost it");
    let mut c = cfg(3, &[3], &[2]);
    c.config_in_entry = config_in_test_entry;
    net.peers
        .insert(leader, Peer::new(c, disk, applied).unwrap());
    net.drain(leader);

    net.run(60);
    assert_eq!(net.leader(), Some(leader), "3 leads although 2 holds more");
    let p2 = &net.peers[&pending];
    assert!(p2.is_serving(), "2 follows");
    assert_ne!(
        p2.storage()
            .entries_from(lost, 1)
            .unwrap()
            .first()
            .map(|e| e.zxid),
        Some(lost),
        "the proposal only 2 held is cut"
    );
    assert_eq!(net.voters_of(2), vec![2, 3], "the configuration committed");
    let z = net.propose(8);
    net.run(3);
    assert!(net.peers[&leader].commit_zxid() >= z);
    assert_eq!(net.peers[&pending].commit_zxid(), z);
}

/// A follower with a logged history, in a new handshake with the same leader
/// (re-elected since: a later term), waiting for its DIFF, TRUNC or SNAP. Returns the
/// leader, the follower, the earlier term and this one.
fn awaiting_base_in_a_later_term(net: &mut Net) -> (ServerId, ServerId, Epoch, Epoch) {
    net.run(10);
    let leader = net.leader().expect("a leader");
    for k in 0..3 {
        net.propose(k);
    }
    net.run(5);
    let f = *net.peers.keys().find(|id| **id != leader).unwrap();
    let p = net.peers.get_mut(&f).unwrap();
    assert!(p.storage().last_zxid().is_some_and(|z| z > 0));
    let l = p.learner_state().expect("following");
    l.stage = LearnerStage::AwaitingBase;
    let earlier = l.term.expect("a term from LEADERINFO");
    l.term = Some(earlier + 1);
    (leader, f, earlier, earlier + 1)
}

fn snap_of_term(p: &Peer<MemStorage>, term: Epoch) -> Message {
    Message::Snap {
        zxid: p.applied_zxid(),
        term,
        offset: 0,
        total: 3,
        data: vec![1, 2, 3],
    }
}

#[test]
fn a_sync_packet_from_an_earlier_leadership_is_dropped() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let (leader, f, earlier, term) = awaiting_base_in_a_later_term(&mut net);
    let p = net.peers.get_mut(&f).unwrap();
    let logged = p.storage().last_zxid();
    let (stale, fresh) = (snap_of_term(p, earlier), snap_of_term(p, term));
    // Late copies from the leader's earlier leadership (found by rookery-sim: such a
    // SNAP was installed and cut committed entries from the log).
    p.step(
        leader,
        Message::Diff {
            last_zxid: 0,
            term: earlier,
        },
    )
    .unwrap();
    p.step(leader, stale).unwrap();
    assert_eq!(p.storage().last_zxid(), logged, "the log is untouched");
    assert!(p.take_ready().unwrap().install_snapshot.is_none());
    assert_eq!(
        p.learner_state().map(|l| l.stage),
        Some(LearnerStage::AwaitingBase)
    );
    // The same SNAP of this term is installed: the term is what told them apart.
    p.step(leader, fresh).unwrap();
    assert!(p.take_ready().unwrap().install_snapshot.is_some());
    assert_eq!(
        p.storage().last_zxid(),
        None,
        "the snapshot replaced the log"
    );
}

#[test]
fn a_sync_packet_without_a_term_is_taken_as_this_terms() {
    // A leader from before the term field sends 0 (proto3's default): a rolling
    // upgrade must sync as it did before the field.
    let mut net = Net::new(&[1, 2, 3], &[]);
    let (leader, f, _, _) = awaiting_base_in_a_later_term(&mut net);
    let p = net.peers.get_mut(&f).unwrap();
    let untermed = snap_of_term(p, 0);
    p.step(leader, untermed).unwrap();
    assert!(p.take_ready().unwrap().install_snapshot.is_some());
    assert_eq!(p.storage().last_zxid(), None);
}

#[test]
fn a_voter_that_promised_a_later_epoch_is_let_in_by_a_roll() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.run(10);
    let leader = net.leader().expect("a leader");
    net.propose(1);
    net.run(5);
    let epoch = net.peers[&leader].current_epoch();
    let f = *net.peers.keys().find(|id| **id != leader).unwrap();
    // It promised an epoch to a leader that never got going (it can happen when an
    // election splits): ZooKeeper would keep it out until this leader goes.
    let promised = epoch + 5;
    let p = net.peers.get_mut(&f).unwrap();
    p.storage.set_accepted_epoch(promised).unwrap();
    p.accepted_epoch = promised;
    p.go_looking("test: rejoin with a later promise");
    net.drain(f);
    net.run(40);
    let p = &net.peers[&f];
    assert!(p.is_serving(), "the voter rejoined");
    assert_eq!(p.leader(), Some(leader), "under the same leader");
    assert!(
        net.peers[&leader].current_epoch() > promised,
        "the leader rolled past the promise"
    );
    let z = net.propose(2);
    net.run(5);
    assert!(net.peers[&f].commit_zxid() >= z);
}
