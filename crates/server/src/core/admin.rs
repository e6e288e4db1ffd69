//! The admin API's view of the core: each call is a [`AdminQuery`] answered on the
//! core thread from its own state, so answers are consistent with what clients see.

use std::time::Duration;

use rookery_admin::{Backend, BackendError, MemberChange, SnapshotData, pb};
use rookery_tree::Caller;
use rookery_tree::DataTree;
use rookery_tree::prep::Op;
use rookery_zab::peer::{LearnerPhase, Role};
use rookery_zab::storage::SnapshotStore;
use tokio::sync::oneshot;
use tracing::{info, info_span, warn};

use super::{Core, CoreCmd, CoreError, CoreHandle, Mode, SessionId};
use crate::forward::Forward;

/// How long ExpireSession waits for the closeSession Txn to be applied here.
const EXPIRE_WAIT: Duration = Duration::from_secs(10);
/// How long a membership call waits for its reconfiguration to be applied here.
const RECONFIG_WAIT: Duration = Duration::from_secs(30);
/// An observer is promoted only this close to the leader's log (unless forced): etcd's
/// "can only promote a learner member which is in sync with leader".
const PROMOTE_MAX_LAG_TXNS: u64 = 1000;

/// A configured member, as the `server.N` line names it.
#[derive(Debug, Clone)]
pub(crate) struct MemberConfig {
    pub id: u64,
    pub observer: bool,
    pub quorum_address: String,
    pub election_address: String,
    pub client_address: String,
}

#[derive(Debug)]
pub(crate) enum AdminQuery {
    /// Cheap, for the health service's frequent polls.
    Mode(oneshot::Sender<pb::Mode>),
    Status(oneshot::Sender<pb::StatusResponse>),
    Members(oneshot::Sender<pb::ListMembersResponse>),
    Sessions(oneshot::Sender<pb::ListSessionsResponse>),
    Expire {
        session: SessionId,
        reply: oneshot::Sender<Result<i64, BackendError>>,
    },
    /// The applied tree (an O(1) clone), serialized off the core thread.
    Snapshot(oneshot::Sender<Result<DataTree, BackendError>>),
    /// Write a snapshot into this server's storage now.
    TakeSnapshot(SnapshotWaiter),
    Change {
        change: MemberChange,
        reply: ReconfigWaiter,
    },
    Transfer {
        to: Option<u64>,
        reply: oneshot::Sender<Result<u64, BackendError>>,
    },
}

/// Answered with the new membership once the reconfiguration is applied.
pub(crate) type ReconfigWaiter = oneshot::Sender<Result<pb::ListMembersResponse, BackendError>>;

/// Answered with the snapshot's zxid and size once it is durable.
pub(crate) type SnapshotWaiter = oneshot::Sender<Result<(i64, u64), BackendError>>;

impl Core {
    pub(super) fn admin(&mut self, query: AdminQuery) -> Result<(), CoreError> {
        match query {
            AdminQuery::Mode(reply) => {
                let _ = reply.send(self.admin_mode());
            }
            AdminQuery::Status(reply) => {
                let _ = reply.send(self.admin_status());
            }
            AdminQuery::Members(reply) => {
                let _ = reply.send(self.admin_membership());
            }
            AdminQuery::Change { change, reply } => self.admin_change(change, reply)?,
            AdminQuery::Transfer { to, reply } => {
                let answer = self
                    .peer
                    .transfer_leadership(to.map(rookery_zab::quorum::ServerId))
                    .map(|t| t.0)
                    .map_err(|e| BackendError::FailedPrecondition(e.to_string()));
                if let Ok(t) = &answer {
                    self.record_event(format!("operator asked: hand leadership to server {t}"));
                }
                let _ = reply.send(answer);
                self.drive()?;
            }
            AdminQuery::Sessions(reply) => {
                let _ = reply.send(self.admin_sessions());
            }
            AdminQuery::Expire { session, reply } => self.admin_expire(session, reply)?,
            AdminQuery::Snapshot(reply) => {
                let answer = if self.peer.is_serving() || self.cfg.standalone {
                    Ok(self.tree.clone())
                } else {
                    Err(BackendError::Unavailable(
                        "this server is not serving (electing or syncing): its tree may be stale"
                            .into(),
                    ))
                };
                let _ = reply.send(answer);
            }
            // Started at the end of this round (maybe_snapshot), after any in flight.
            AdminQuery::TakeSnapshot(reply) => {
                self.record_event("operator asked for a snapshot".to_owned());
                self.snapshot_wanted.push(reply);
            }
        }
        Ok(())
    }

    fn admin_mode(&self) -> pb::Mode {
        match self.mode() {
            Mode::Standalone => pb::Mode::Standalone,
            Mode::ReadOnly => pb::Mode::ReadOnly,
            Mode::Looking => pb::Mode::Looking,
            Mode::Leader => pb::Mode::Leader,
            Mode::Follower => pb::Mode::Follower,
            Mode::Observer => pb::Mode::Observer,
        }
    }

    /// The leader this server follows or is; none while electing, and none standalone
    /// (one server leading itself is an implementation detail ZooKeeper does not show).
    fn leader_id(&self) -> Option<u64> {
        if self.cfg.standalone || !self.peer.is_serving() {
            return None;
        }
        self.peer.leader().map(|l| l.0)
    }

    fn admin_status(&self) -> pb::StatusResponse {
        let storage = self.peer.storage();
        let snapshots = storage.list_snapshots().unwrap_or_else(|e| {
            warn!(error = %e, "cannot list snapshots for status");
            Vec::new()
        });
        pb::StatusResponse {
            server_id: u64::from(self.cfg.server_id),
            mode: self.admin_mode().into(),
            leader_id: self.leader_id(),
            current_epoch: self.peer.current_epoch(),
            accepted_epoch: self.peer.accepted_epoch(),
            last_logged_zxid: self.peer.last_zxid(),
            committed_zxid: self.peer.commit_zxid(),
            applied_zxid: self.tree.last_zxid(),
            members: self.admin_members(),
            session_count: self.tree.sessions().len() as u64,
            znode_count: self.tree.node_count() as u64,
            watch_count: self.watches.watch_count() as u64,
            approximate_data_size: self.tree.approximate_data_size(),
            snapshot_count: snapshots.len() as u64,
            snapshot_bytes: snapshots.iter().map(|s| s.len_bytes).sum(),
            db_bytes_on_disk: storage.size_on_disk().unwrap_or(0),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            version: crate::words::VERSION.to_owned(),
            client_connections: self.conns.len() as u64,
            digest: self.tree.digest(),
            recent_events: self
                .events
                .iter()
                .map(|(time_ms, what)| pb::Event {
                    time_ms: *time_ms,
                    what: what.clone(),
                })
                .collect(),
        }
    }

    fn admin_membership(&self) -> pb::ListMembersResponse {
        pb::ListMembersResponse {
            members: self.admin_members(),
            config_version: self
                .cfg
                .ensemble
                .as_ref()
                .map_or(self.cfg.peer.quorum.version(), |e| e.version),
        }
    }

    /// AddMember, PromoteMember, RemoveMember: checked against the committed
    /// membership, then proposed as a reconfiguration Txn by this leader.
    fn admin_change(
        &mut self,
        change: MemberChange,
        reply: ReconfigWaiter,
    ) -> Result<(), CoreError> {
        let refuse = |reply: ReconfigWaiter, why: String| {
            let _ = reply.send(Err(BackendError::FailedPrecondition(why)));
        };
        let Ok(current) = self.committed_ensemble() else {
            refuse(
                reply,
                "a standalone server has no membership to change".into(),
            );
            return Ok(());
        };
        if self.peer.role() != Role::Leading {
            let leader = self
                .leader_id()
                .map_or("not known now".to_owned(), |l| format!("server {l}"));
            refuse(
                reply,
                format!("membership changes are made on the leader ({leader}); this is not it"),
            );
            return Ok(());
        }
        let (spec, leaving, force) = match &change {
            MemberChange::Add {
                id,
                quorum_address,
                election_address,
                client_address,
            } => {
                if current.servers.contains_key(id) {
                    refuse(reply, format!("server {id} is already a member"));
                    return Ok(());
                }
                let (Some(q), Some(e)) = (
                    quorum_address.rsplit_once(':'),
                    election_address.rsplit_once(':'),
                ) else {
                    let _ = reply.send(Err(BackendError::InvalidArgument(
                        "quorum and election addresses are host:port".into(),
                    )));
                    return Ok(());
                };
                if q.0 != e.0 {
                    let _ = reply.send(Err(BackendError::InvalidArgument(
                        "the quorum and election addresses must name the same host".into(),
                    )));
                    return Ok(());
                }
                let mut spec = format!("server.{id}={}:{}:{}:observer", q.0, q.1, e.1);
                if !client_address.is_empty() {
                    spec.push_str(&format!(";{client_address}"));
                }
                (spec, String::new(), false)
            }
            MemberChange::Promote { id, force } => {
                let Some(s) = current.servers.get(id) else {
                    refuse(reply, format!("server {id} is not a member"));
                    return Ok(());
                };
                if s.learner_type == crate::config::LearnerType::Participant {
                    refuse(reply, format!("server {id} is already a voter"));
                    return Ok(());
                }
                if !force {
                    let last = self.peer.last_zxid();
                    let view = self.peer.learners().into_iter().find(|l| l.id.0 == *id);
                    let caught_up = view.as_ref().is_some_and(|l| {
                        l.phase >= LearnerPhase::UpToDate
                            && txns_between(l.caught_up_to(), last) <= PROMOTE_MAX_LAG_TXNS
                    });
                    if !caught_up {
                        let how = view.map_or("not connected to the leader".to_owned(), |l| {
                            format!(
                                "{:?}, {} Txns behind",
                                l.phase,
                                txns_between(l.caught_up_to(), last)
                            )
                        });
                        refuse(
                            reply,
                            format!(
                                "server {id} has not caught up ({how}); promote it once it is within {PROMOTE_MAX_LAG_TXNS} Txns of the leader, or force"
                            ),
                        );
                        return Ok(());
                    }
                }
                let mut s = s.clone();
                s.learner_type = crate::config::LearnerType::Participant;
                let mut next = current.clone();
                next.servers.insert(*id, s);
                (next.body(), String::new(), *force)
            }
            MemberChange::Remove { id, force } => {
                if !current.servers.contains_key(id) {
                    refuse(reply, format!("server {id} is not a member"));
                    return Ok(());
                }
                (String::new(), id.to_string(), *force)
            }
        };
        let next = match current.incremental(&spec, &leaving) {
            Ok(n) => n,
            Err(code) => {
                let _ = reply.send(Err(BackendError::InvalidArgument(format!(
                    "the new membership is not valid ({code:?})"
                ))));
                return Ok(());
            }
        };
        if let Err((_, why)) = self.check_change(&next, force) {
            refuse(reply, why);
            return Ok(());
        }
        let op = self.reconfig_op(&next);
        let caller = Caller {
            session_id: 0,
            auth: &[],
            is_super: true,
        };
        let span = info_span!("admin_reconfig", change = ?change, zxid = tracing::field::Empty);
        let _g = span.enter();
        self.reconfig_zxid = None;
        self.propose(0, 0, &caller, Ok(&op))?;
        match self.reconfig_zxid {
            Some(zxid) => {
                self.record_event(format!("operator asked: {change:?}"));
                self.admin_reconfigs.insert(zxid, reply);
            }
            None => {
                let _ = reply.send(Err(BackendError::Unavailable(
                    "this leader could not propose the change now; retry".into(),
                )));
            }
        }
        Ok(())
    }

    /// The reconfiguration at `zxid` is applied here: answer whoever asked for it.
    pub(super) fn admin_reconfig_applied(&mut self, zxid: i64) {
        if let Some(reply) = self.admin_reconfigs.remove(&zxid) {
            let _ = reply.send(Ok(self.admin_membership()));
        }
    }

    /// This server stopped leading: a reconfiguration in flight may or may not commit.
    pub(super) fn admin_abandon_reconfigs(&mut self) {
        for (zxid, reply) in std::mem::take(&mut self.admin_reconfigs) {
            let _ = reply.send(Err(BackendError::Unavailable(format!(
                "this server stopped leading before the change (zxid {zxid:#x}) was applied; \
                 it may still commit: check ListMembers on the new leader"
            ))));
        }
        self.reconfig_zxid = None;
    }

    /// Every configured member; the leader adds how each learner is doing.
    fn admin_members(&self) -> Vec<pb::Member> {
        let me = u64::from(self.cfg.server_id);
        let serving = self.peer.is_serving();
        let leader = self.leader_id();
        let leading = serving && !self.cfg.standalone && self.peer.role() == Role::Leading;
        let learners = self.peer.learners();
        let last = self.peer.last_zxid();
        self.cfg
            .members
            .iter()
            .map(|m| {
                let (link, lag) = if m.id == me {
                    (pb::LinkState::Self_, None)
                } else if leading {
                    match learners.iter().find(|l| l.id.0 == m.id) {
                        None => (pb::LinkState::Disconnected, None),
                        Some(l) if l.phase >= LearnerPhase::Synced => (
                            pb::LinkState::Synced,
                            Some(txns_between(l.caught_up_to(), last)),
                        ),
                        Some(_) => (pb::LinkState::Syncing, None),
                    }
                } else if Some(m.id) == leader {
                    (pb::LinkState::Synced, None)
                } else {
                    (pb::LinkState::Unknown, None)
                };
                pb::Member {
                    id: m.id,
                    role: if m.observer {
                        pb::MemberRole::Observer
                    } else {
                        pb::MemberRole::Voter
                    }
                    .into(),
                    quorum_address: m.quorum_address.clone(),
                    election_address: m.election_address.clone(),
                    client_address: m.client_address.clone(),
                    link: link.into(),
                    lag_txns: lag,
                    is_leader: Some(m.id) == leader,
                }
            })
            .collect()
    }

    fn admin_sessions(&self) -> pb::ListSessionsResponse {
        let sessions = self
            .tree
            .sessions()
            .iter()
            .map(|(&id, &timeout_ms)| {
                let here = self.session_conn.get(&id).and_then(|c| self.conns.get(c));
                pb::Session {
                    session_id: id,
                    timeout_ms,
                    ephemeral_count: self.tree.ephemerals(id).count() as u64,
                    connected_here: here.is_some(),
                    client_address: here.map(|c| c.peer.to_string()).unwrap_or_default(),
                }
            })
            .collect();
        pb::ListSessionsResponse { sessions }
    }

    /// Ends the session as its timeout would: the leader proposes closeSession, a
    /// learner asks the leader to. The answer comes when the Txn is applied here.
    fn admin_expire(
        &mut self,
        session: SessionId,
        reply: oneshot::Sender<Result<i64, BackendError>>,
    ) -> Result<(), CoreError> {
        if !self.tree.sessions().contains_key(&session) {
            let _ = reply.send(Err(BackendError::NotFound(format!(
                "no session {session:#x}"
            ))));
            return Ok(());
        }
        let sent = match self.peer.role() {
            // A closing session is already on its way out.
            Role::Leading if self.peer.is_serving() => {
                self.sessions.is_closing(session)
                    || self.expire_as_leader(session, "by an admin request")?
            }
            Role::Following | Role::Observing if self.peer.is_serving() => self
                .peer
                .forward(Forward::Expire { session }.encode())
                .is_ok(),
            _ => false,
        };
        if sent {
            self.record_event(format!("operator expired session {session:#x}"));
            let waiting = self.admin_expiring.entry(session).or_default();
            // Callers that gave up (the backend's timeout) leave closed senders.
            waiting.retain(|w| !w.is_closed());
            waiting.push(reply);
        } else {
            let _ = reply.send(Err(BackendError::Unavailable(
                "this server has no leader now; try again or ask another server".into(),
            )));
        }
        Ok(())
    }

    /// Leader: proposes closeSession for an expired session (its timeout, or an
    /// operator).
    pub(super) fn expire_as_leader(
        &mut self,
        session: SessionId,
        why: &'static str,
    ) -> Result<bool, CoreError> {
        info!(session = format!("{session:#x}"), "Expiring session, {why}");
        self.sessions.set_closing(session);
        let caller = Caller {
            session_id: session,
            auth: &[],
            is_super: false,
        };
        let span = info_span!(
            "expire",
            session = format!("{session:#x}"),
            zxid = tracing::field::Empty
        );
        let _g = span.enter();
        self.propose(session, 0, &caller, Ok(&Op::CloseSession))
    }

    /// This server stopped serving: a closeSession asked for may never come now.
    pub(super) fn admin_abandon_expiries(&mut self) {
        for (session, waiters) in std::mem::take(&mut self.admin_expiring) {
            for w in waiters {
                let _ = w.send(Err(BackendError::Unavailable(format!(
                    "this server lost its leader before session {session:#x} was closed; \
                     check ListSessions and retry"
                ))));
            }
        }
    }

    /// Called when a session's closeSession Txn is applied.
    pub(super) fn admin_session_closed(&mut self, session: SessionId, zxid: i64) {
        for reply in self.admin_expiring.remove(&session).unwrap_or_default() {
            let _ = reply.send(Ok(zxid));
        }
    }
}

/// Txns from `from` up to `to`, when both are in one epoch (a synced learner is in the
/// leader's); across epochs, the counter of `to`, a lower bound.
pub(super) fn txns_between(from: i64, to: i64) -> u64 {
    let (fe, te) = (from >> 32, to >> 32);
    let counter = |z: i64| z & 0xffff_ffff;
    if fe == te {
        u64::try_from(counter(to) - counter(from)).unwrap_or(0)
    } else {
        u64::try_from(counter(to)).unwrap_or(0)
    }
}

/// The admin API's handle on the core.
#[derive(Debug, Clone)]
pub(crate) struct AdminBackend {
    core: CoreHandle,
    server_id: u64,
}

impl AdminBackend {
    pub(crate) fn new(core: CoreHandle, server_id: u64) -> Self {
        AdminBackend { core, server_id }
    }

    async fn ask<T>(
        &self,
        query: impl FnOnce(oneshot::Sender<T>) -> AdminQuery,
    ) -> Result<T, BackendError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || BackendError::Unavailable("the server is stopping".into());
        self.core
            .send(CoreCmd::Admin(query(tx)))
            .map_err(|()| stopped())?;
        rx.await.map_err(|_| stopped())
    }
}

impl Backend for AdminBackend {
    async fn mode(&self) -> Result<pb::Mode, BackendError> {
        self.ask(AdminQuery::Mode).await
    }

    async fn status(&self) -> Result<pb::StatusResponse, BackendError> {
        self.ask(AdminQuery::Status).await
    }

    async fn list_members(&self) -> Result<pb::ListMembersResponse, BackendError> {
        self.ask(AdminQuery::Members).await
    }

    async fn list_sessions(&self) -> Result<pb::ListSessionsResponse, BackendError> {
        self.ask(AdminQuery::Sessions).await
    }

    async fn expire_session(&self, session_id: i64) -> Result<i64, BackendError> {
        let asked = self.ask(|reply| AdminQuery::Expire {
            session: session_id,
            reply,
        });
        match tokio::time::timeout(EXPIRE_WAIT, asked).await {
            Ok(answer) => answer?,
            Err(_) => Err(BackendError::Unavailable(format!(
                "session {session_id:#x} was not closed within {} s (leader change?); \
                 check ListSessions and retry",
                EXPIRE_WAIT.as_secs()
            ))),
        }
    }

    async fn take_snapshot(&self) -> Result<(i64, u64), BackendError> {
        self.ask(AdminQuery::TakeSnapshot).await?
    }

    async fn transfer_leadership(&self, to: Option<u64>) -> Result<u64, BackendError> {
        self.ask(|reply| AdminQuery::Transfer { to, reply }).await?
    }

    async fn change_members(
        &self,
        change: MemberChange,
    ) -> Result<pb::ListMembersResponse, BackendError> {
        let asked = self.ask(|reply| AdminQuery::Change { change, reply });
        match tokio::time::timeout(RECONFIG_WAIT, asked).await {
            Ok(answer) => answer?,
            Err(_) => Err(BackendError::Unavailable(format!(
                "the change was not applied within {} s; it may still commit: check ListMembers",
                RECONFIG_WAIT.as_secs()
            ))),
        }
    }

    async fn snapshot(&self) -> Result<SnapshotData, BackendError> {
        let tree = self.ask(AdminQuery::Snapshot).await??;
        let last_zxid = tree.last_zxid();
        let digest = tree.digest();
        let bytes = tokio::task::spawn_blocking(move || tree.snapshot())
            .await
            .map_err(|_| BackendError::Unavailable("snapshot serialization failed".into()))?;
        Ok(SnapshotData {
            last_zxid,
            digest,
            bytes,
            server_id: self.server_id,
        })
    }
}
