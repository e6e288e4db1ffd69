//! Membership changes: ZooKeeper's `reconfig` request and the admin API's member calls
//! take this one path. The leader checks the change, proposes the new configuration
//! as a Txn, and every server applies it once committed (see `membership`).

use std::collections::BTreeMap;

use rookery_tree::prep::Op;
use rookery_wire::ErrorCode;
use rookery_wire::proto::{ReconfigRequest, Request};
use rookery_zab::peer::{LearnerPhase, Role};
use rookery_zab::storage::{MetaStore, TxnLog};
use tracing::info;

use super::{Core, CoreError};
use crate::membership::Ensemble;

impl Core {
    /// The write a request makes: a reconfig on the leader is checked and turned into
    /// the new configuration here; everything else is `write` as it is.
    pub(super) fn reconfig_or(
        &mut self,
        body: &Request,
        write: Result<Op, ErrorCode>,
    ) -> Result<Op, ErrorCode> {
        match body {
            Request::Reconfig(r) if self.peer.role() == Role::Leading => {
                if !self.cfg.reconfig_enabled {
                    return Err(ErrorCode::ReconfigDisabled);
                }
                self.reconfig_request(r)
            }
            _ => write,
        }
    }

    fn reconfig_request(&mut self, r: &ReconfigRequest) -> Result<Op, ErrorCode> {
        let current = self.committed_ensemble()?;
        if r.cur_config_id != -1 && r.cur_config_id != current.version {
            return Err(ErrorCode::BadVersion);
        }
        let next = match &r.new_members {
            Some(members) if !members.trim().is_empty() => current.replaced(members)?,
            _ => current.incremental(
                r.joining_servers.as_deref().unwrap_or(""),
                r.leaving_servers.as_deref().unwrap_or(""),
            )?,
        };
        self.check_change(&next, false).map_err(|(code, _)| code)?;
        Ok(self.reconfig_op(&next))
    }

    pub(super) fn committed_ensemble(&self) -> Result<Ensemble, ErrorCode> {
        self.cfg.ensemble.clone().ok_or(ErrorCode::Unimplemented)
    }

    /// Whether the leader may propose `next` now: one change at a time, a membership
    /// that can form quorums, and (unless `force`) a majority of its voters already in
    /// sync with this leader, so the change can commit and the ensemble stays writable
    /// (ZooKeeper's NewConfigNoQuorum). The reason goes to operators as it is.
    pub(super) fn check_change(
        &self,
        next: &Ensemble,
        force: bool,
    ) -> Result<(), (ErrorCode, String)> {
        if self.peer.role() != Role::Leading || !self.peer.is_serving() {
            return Err((
                ErrorCode::NotReadOnly,
                "only the leader changes the membership".into(),
            ));
        }
        let in_flight = self
            .reconfig_zxid
            .is_some_and(|z| z > self.tree.last_zxid());
        if in_flight || !self.peer.quorums().pending().is_empty() {
            return Err((
                ErrorCode::ReconfigInProgress,
                "another membership change is still in progress".into(),
            ));
        }
        let voters: Vec<u64> = next.voters().collect();
        if voters.is_empty() {
            return Err((
                ErrorCode::BadArguments,
                "no voting member would be left".into(),
            ));
        }
        if force {
            return Ok(());
        }
        if voters.len() < self.cfg.min_voters {
            // ZooKeeper refuses fewer than two participants while standaloneEnabled;
            // admin.minVoters, whose default that is, says so here.
            return Err((
                ErrorCode::BadArguments,
                format!(
                    "the new membership would have {} voter(s), fewer than admin.minVoters={}",
                    voters.len(),
                    self.cfg.min_voters
                ),
            ));
        }
        let me = self.peer.self_id().0;
        let synced: Vec<u64> = self
            .peer
            .learners()
            .iter()
            .filter(|l| l.phase >= LearnerPhase::Synced)
            .map(|l| l.id.0)
            .chain([me])
            .collect();
        let up = voters.iter().filter(|v| synced.contains(v)).count();
        if up <= voters.len() / 2 {
            return Err((
                ErrorCode::NewConfigNoQuorum,
                format!(
                    "only {up} of the {} voters of the new membership are in sync with the leader; a majority must be",
                    voters.len()
                ),
            ));
        }
        Ok(())
    }

    /// The Txn's op (the members it adds are dialled once it is logged:
    /// `refresh_peers`).
    pub(super) fn reconfig_op(&mut self, next: &Ensemble) -> Op {
        Op::Reconfig {
            data: next.body().into_bytes(),
        }
    }

    /// Dials the members of the committed membership and of every pending one: a new
    /// voter of a logged change must hear from whoever leads next, before the change
    /// commits (its majority may need it). Pending memberships are read from the log
    /// when they change, which is rare.
    pub(super) fn refresh_peers(&mut self) {
        // Called every round: compare without allocating.
        let unchanged = self
            .peer
            .quorums()
            .pending()
            .iter()
            .map(|(z, _)| *z)
            .eq(self.peers_pending.iter().copied());
        if !self.peers_stale && unchanged {
            return;
        }
        let pending: Vec<i64> = self
            .peer
            .quorums()
            .pending()
            .iter()
            .map(|(z, _)| *z)
            .collect();
        let (Some(t), Some(committed)) = (self.transport.clone(), self.cfg.ensemble.clone()) else {
            return;
        };
        self.peers_stale = false;
        let mut peers = self.peer_addresses(&committed);
        for &zxid in &pending {
            let entry = self
                .peer
                .storage()
                .entries_from(zxid, 1)
                .ok()
                .and_then(|mut v| v.pop())
                .filter(|e| e.zxid == zxid);
            let logged = entry
                .and_then(|e| rookery_tree::reconfig_in_entry(&e.payload))
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|text| Ensemble::parse(&text).ok());
            if let Some(e) = logged {
                for (id, addr) in self.peer_addresses(&e) {
                    peers.entry(id).or_insert(addr);
                }
            }
        }
        self.peers_pending = pending;
        t.set_peers(peers);
    }

    /// Where to dial each member of `e`: zoo.cfg's address if it names the server.
    pub(super) fn peer_addresses(&self, e: &Ensemble) -> BTreeMap<u64, String> {
        let mut peers = e.peers(u64::from(self.cfg.server_id));
        for (id, addr) in &mut peers {
            if let Some(local) = self.cfg.local_peers.get(id) {
                addr.clone_from(local);
            }
        }
        peers
    }

    /// A configuration is committed (applied here, or installed with the leader's
    /// snapshot): it is persisted so restarts use it, the transport dials exactly its
    /// members, and the admin API lists them.
    pub(super) fn ensemble_committed(&mut self, e: Ensemble) -> Result<(), CoreError> {
        self.peer.storage_mut().set_config(e.text().as_bytes())?;
        // The links follow after this round's messages are sent (refresh_peers).
        self.peers_stale = true;
        let summary: Vec<String> = e
            .servers
            .values()
            .map(|s| format!("{}:{}", s.id, s.learner_type))
            .collect();
        info!(
            version = format!("{:#x}", e.version),
            members = summary.join(" "),
            "membership changed"
        );
        self.record_event(format!(
            "membership {:#x}: {}",
            e.version,
            summary.join(" ")
        ));
        self.cfg.members = e.member_configs();
        self.cfg.ensemble = Some(e);
        Ok(())
    }
}
