//! `prep`: ZooKeeper's PrepRequestProcessor. Checks a write against the tree plus the
//! changes already prepped but not yet applied (ZooKeeper's outstandingChanges), and
//! turns it into a Txn or an error code, in ZooKeeper's order of checks.

use std::collections::{BTreeMap, BTreeSet};

use rookery_wire::codes::perms;
use rookery_wire::{Acl, CreateMode, ErrorCode};

use crate::acl::{self, AclList};
use crate::node::{CONTAINER_OWNER, EphemeralType, SessionId, StatPersisted, Zxid, ttl_owner};
use crate::path::{self, CONFIG};
use crate::tree::{Caller, DataTree};
use crate::txn::{CreateKind, DeleteKind, Txn};

/// A client (or server-internal) write, as the server hands it to prep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        kind: CreateKind,
        path: String,
        /// `None` is a null buffer (jute length -1), kept apart from empty data.
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        mode: CreateMode,
        /// Only read for `CreateKind::CreateTtl` (other create requests carry no TTL).
        ttl_ms: Option<i64>,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        /// `None` is a null buffer, as for Create.
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    /// Only Create, Delete, SetData and Check may appear inside (as in ZooKeeper's
    /// MultiOperationRecord); anything else is MarshallingError.
    Multi(Vec<Op>),
    CreateSession {
        timeout_ms: i32,
    },
    CloseSession,
    /// Server-internal: the container and TTL reaper's delete (no ACL check).
    DeleteContainer {
        path: String,
    },
    /// Server-internal half of reconfig: the new config text for `/zookeeper/config`
    /// (WRITE on that node is checked; quorum checks are the server's).
    Reconfig {
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeRec {
    stat: StatPersisted,
    child_count: i32,
    acl: AclList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Open,
    Closing,
}

/// The effects of Txns prepped but not yet applied, per path and per session, newest
/// last. Owned by the leader beside its tree.
#[derive(Debug, Clone, Default)]
pub struct PendingChanges {
    nodes: BTreeMap<String, Vec<(Zxid, Option<NodeRec>)>>,
    sessions: BTreeMap<SessionId, Vec<(Zxid, SessionState)>>,
    /// `TreeConfig::inject_seq_reuse`: the next sequence number per parent path, in
    /// memory only. Kept by [`PendingChanges::clear`]; a new `PendingChanges` starts over.
    #[cfg(feature = "inject-bugs")]
    seq_counters: BTreeMap<String, i32>,
}

impl PendingChanges {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops every change with a zxid up to `zxid`: call after applying that Txn, when
    /// the tree itself shows its effect.
    pub fn applied_through(&mut self, zxid: Zxid) {
        self.nodes.retain(|_, stack| {
            stack.retain(|(z, _)| *z > zxid);
            !stack.is_empty()
        });
        self.sessions.retain(|_, stack| {
            stack.retain(|(z, _)| *z > zxid);
            !stack.is_empty()
        });
    }

    /// Forgets everything (a new leader, or proposals that will never commit).
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.sessions.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.sessions.is_empty()
    }

    /// Paths whose predicted state (the newest change up to `zxid`) differs from the
    /// tree after applying through `zxid`. Empty when prep and apply agree; for tests
    /// and debug assertions.
    pub fn mismatches(&self, tree: &DataTree, zxid: Zxid) -> Vec<String> {
        let mut out = Vec::new();
        for (path, stack) in &self.nodes {
            let Some((_, predicted)) = stack.iter().rev().find(|(z, _)| *z <= zxid) else {
                continue;
            };
            let actual = tree.nodes.get(path.as_str()).map(|n| NodeRec {
                stat: n.stat,
                child_count: i32::try_from(n.children.len()).unwrap_or(i32::MAX),
                acl: n.acl.clone(),
            });
            if &actual != predicted {
                out.push(format!(
                    "{path}: predicted {predicted:?}, applied {actual:?}"
                ));
            }
        }
        out
    }

    /// Drops the changes of one zxid (a multi that failed part way).
    fn rollback(&mut self, zxid: Zxid) {
        self.nodes.retain(|_, stack| {
            stack.retain(|(z, _)| *z != zxid);
            !stack.is_empty()
        });
        self.sessions.retain(|_, stack| {
            stack.retain(|(z, _)| *z != zxid);
            !stack.is_empty()
        });
    }
}

impl DataTree {
    /// Checks `op` from `caller` against this tree plus `pending`, and on success
    /// records its effect in `pending` and returns the Txn to propose at `zxid`.
    /// `zxid` must exceed every zxid already in `pending`.
    ///
    /// A multi yields `Ok(Txn::Multi)` (or MarshallingError when it holds an op a
    /// multi may not carry); when one op fails, the Txn holds only
    /// the error layout and `pending` is left as before. A single op that fails yields
    /// `Err(code)` and changes nothing; ZooKeeper still logs such a failure as an
    /// error Txn, which the caller may do with `Txn::Error(code)`.
    ///
    /// Session rules: writes from a session the tree does not know fail with
    /// UnknownSession (ephemeral creates with SessionExpired), and every write after a
    /// prepped CloseSession fails with SessionExpired. DeleteContainer, Reconfig's
    /// session check aside, is not tied to a session.
    pub fn prep(
        &self,
        pending: &mut PendingChanges,
        caller: &Caller<'_>,
        op: &Op,
        zxid: Zxid,
        time_ms: i64,
    ) -> Result<Txn, ErrorCode> {
        let mut p = Prep {
            tree: self,
            pending,
            caller,
            zxid,
            time_ms,
        };
        match op {
            Op::Multi(ops) => p.multi(ops),
            Op::CreateSession { timeout_ms } => {
                p.push_session(caller.session_id, SessionState::Open);
                Ok(Txn::CreateSession {
                    timeout_ms: *timeout_ms,
                })
            }
            Op::CloseSession => Ok(p.close_session()),
            Op::DeleteContainer { path } => p.delete_container(path),
            Op::Reconfig { data } => p.reconfig(data),
            single => p.single(single),
        }
    }
}

struct Prep<'a, 'c> {
    tree: &'a DataTree,
    pending: &'a mut PendingChanges,
    caller: &'a Caller<'c>,
    zxid: Zxid,
    time_ms: i64,
}

impl Prep<'_, '_> {
    fn record(&self, path: &str) -> Option<NodeRec> {
        if let Some(stack) = self.pending.nodes.get(path) {
            if let Some((_, rec)) = stack.last() {
                return rec.clone();
            }
        }
        self.tree.nodes.get(path).map(|n| NodeRec {
            stat: n.stat,
            child_count: i32::try_from(n.children.len()).unwrap_or(i32::MAX),
            acl: n.acl.clone(),
        })
    }

    fn push(&mut self, path: &str, rec: Option<NodeRec>) {
        self.pending
            .nodes
            .entry(path.to_owned())
            .or_default()
            .push((self.zxid, rec));
    }

    fn push_session(&mut self, session: SessionId, state: SessionState) {
        self.pending
            .sessions
            .entry(session)
            .or_default()
            .push((self.zxid, state));
    }

    fn session_state(&self, session: SessionId) -> Option<SessionState> {
        if let Some((_, s)) = self.pending.sessions.get(&session).and_then(|v| v.last()) {
            return Some(*s);
        }
        self.tree
            .sessions
            .contains_key(&session)
            .then_some(SessionState::Open)
    }

    /// `SessionTracker.checkSession` / `checkGlobalSession`.
    fn check_session(&self, global: bool) -> Result<(), ErrorCode> {
        match self.session_state(self.caller.session_id) {
            Some(SessionState::Open) => Ok(()),
            Some(SessionState::Closing) => Err(ErrorCode::SessionExpired),
            None if global => Err(ErrorCode::SessionExpired),
            None => Err(ErrorCode::UnknownSession),
        }
    }

    fn check_acl(&self, acl: &[Acl], perm: i32) -> Result<(), ErrorCode> {
        if acl::check(
            &self.tree.config.auth_schemes,
            acl,
            perm,
            self.caller.auth,
            self.caller.is_super,
        ) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn fixup(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
        acl::fixup(&self.tree.config.auth_schemes, self.caller.auth, acl)
    }

    fn multi(&mut self, ops: &[Op]) -> Result<Txn, ErrorCode> {
        let allowed = |op: &Op| {
            matches!(
                op,
                Op::Create { .. } | Op::Delete { .. } | Op::SetData { .. } | Op::Check { .. }
            )
        };
        if !ops.iter().all(allowed) {
            // ZooKeeper cannot even parse such a multi: the whole request fails.
            return Err(ErrorCode::MarshallingError);
        }
        let mut txns = Vec::with_capacity(ops.len());
        let mut failed = false;
        for op in ops {
            if failed {
                txns.push(Txn::Error(ErrorCode::RuntimeInconsistency));
                continue;
            }
            match self.single(op) {
                Ok(t) => txns.push(t),
                Err(e) => {
                    failed = true;
                    self.pending.rollback(self.zxid);
                    for t in txns.iter_mut() {
                        *t = Txn::Error(ErrorCode::Ok);
                    }
                    txns.push(Txn::Error(e));
                }
            }
        }
        Ok(Txn::Multi(txns))
    }

    fn single(&mut self, op: &Op) -> Result<Txn, ErrorCode> {
        match op {
            Op::Create {
                kind,
                path,
                data,
                acl,
                mode,
                ttl_ms,
            } => self.create(*kind, path, data.as_deref(), acl, *mode, *ttl_ms),
            Op::Delete { path, version } => self.delete(path, *version),
            Op::SetData {
                path,
                data,
                version,
            } => self.set_data(path, data.as_deref(), *version),
            Op::SetAcl { path, acl, version } => self.set_acl(path, acl, *version),
            Op::Check { path, version } => self.check(path, *version),
            _ => Err(ErrorCode::MarshallingError),
        }
    }

    fn create(
        &mut self,
        kind: CreateKind,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: Option<i64>,
    ) -> Result<Txn, ErrorCode> {
        // validateCreateRequest
        if mode.is_ttl() && !self.tree.config.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl = match kind {
            CreateKind::CreateTtl => ttl_ms.unwrap_or(-1),
            _ => -1,
        };
        let ttl_owner_value = if mode.is_ttl() {
            Some(ttl_owner(ttl).ok_or(ErrorCode::BadArguments)?)
        } else if ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        } else {
            None
        };
        if kind == CreateKind::CreateTtl && ttl_owner_value.is_none() {
            // ZooKeeper would fail applying a createTTL without a TTL mode; refuse it.
            return Err(ErrorCode::BadArguments);
        }
        self.check_session(mode.is_ephemeral())?;
        // validatePathForCreate
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let (parent_path, _) = path::split(path).ok_or(ErrorCode::BadArguments)?;
        let acl = self.fixup(acl)?;
        let parent = self.record(parent_path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&parent.acl, perms::CREATE)?;
        let path = if mode.is_sequential() {
            let seq = parent.stat.cversion;
            #[cfg(feature = "inject-bugs")]
            let seq = self.injected_seq(parent_path, &parent).unwrap_or(seq);
            format!("{path}{seq:010}")
        } else {
            path.to_owned()
        };
        if !path::is_valid(&path) {
            return Err(ErrorCode::BadArguments);
        }
        if self.record(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if EphemeralType::of(parent.stat.ephemeral_owner, self.tree.config.extended_types)
            == EphemeralType::Normal
        {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let data_len = data.map_or(0, <[u8]>::len) as i64;
        self.tree.check_quota(&path, data_len, 1)?;
        let new_cversion = parent.stat.cversion.wrapping_add(1);
        // The owner DataTree ends up with for each opcode.
        let owner = match kind {
            CreateKind::CreateContainer => CONTAINER_OWNER,
            CreateKind::CreateTtl => ttl_owner_value.unwrap_or(0),
            CreateKind::Create | CreateKind::Create2 => {
                if mode.is_ephemeral() {
                    self.caller.session_id
                } else {
                    0
                }
            }
        };
        let mut parent_rec = parent;
        parent_rec.child_count += 1;
        parent_rec.stat.cversion = new_cversion;
        parent_rec.stat.pzxid = self.zxid;
        self.push(parent_path, Some(parent_rec));
        self.push(
            &path,
            Some(NodeRec {
                stat: StatPersisted::new(self.zxid, self.time_ms, owner),
                child_count: 0,
                acl: AclList::new(acl.clone()),
            }),
        );
        Ok(Txn::Create {
            kind,
            path,
            data: data.map(<[u8]>::to_vec),
            acl,
            ephemeral_owner: owner,
            parent_cversion: new_cversion,
        })
    }

    /// The sequence number the `seq-reuse` bug hands out, if it is on: a counter per
    /// parent that starts at the parent's current number of children the first time the
    /// parent is used, rather than the replicated `cversion`.
    #[cfg(feature = "inject-bugs")]
    fn injected_seq(&mut self, parent_path: &str, parent: &NodeRec) -> Option<i32> {
        if !self.tree.config.inject_seq_reuse {
            return None;
        }
        let next = self
            .pending
            .seq_counters
            .entry(parent_path.to_owned())
            .or_insert(parent.child_count);
        let seq = *next;
        *next = next.wrapping_add(1);
        Some(seq)
    }

    /// `getParentPathAndValidate`.
    fn parent_for_delete(path: &str) -> Result<&str, ErrorCode> {
        if path.contains('\0') || path::is_special(path) {
            return Err(ErrorCode::BadArguments);
        }
        path::split(path)
            .map(|(p, _)| p)
            .ok_or(ErrorCode::BadArguments)
    }

    fn remove(&mut self, parent_path: &str, mut parent: NodeRec, path: &str) {
        parent.child_count -= 1;
        parent.stat.pzxid = self.zxid;
        self.push(parent_path, Some(parent));
        self.push(path, None);
    }

    fn delete(&mut self, path: &str, version: i32) -> Result<Txn, ErrorCode> {
        self.check_session(false)?;
        let parent_path = Self::parent_for_delete(path)?;
        let parent = self.record(parent_path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&parent.acl, perms::DELETE)?;
        let node = self.record(path).ok_or(ErrorCode::NoNode)?;
        check_version(node.stat.version, version)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove(parent_path, parent, path);
        Ok(Txn::Delete {
            kind: DeleteKind::Delete,
            path: path.to_owned(),
        })
    }

    fn delete_container(&mut self, path: &str) -> Result<Txn, ErrorCode> {
        let parent_path = Self::parent_for_delete(path)?;
        let node = self.record(path).ok_or(ErrorCode::NoNode)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if EphemeralType::of(node.stat.ephemeral_owner, self.tree.config.extended_types)
            == EphemeralType::Normal
        {
            return Err(ErrorCode::BadVersion);
        }
        let parent = self.record(parent_path).ok_or(ErrorCode::NoNode)?;
        self.remove(parent_path, parent, path);
        Ok(Txn::Delete {
            kind: DeleteKind::DeleteContainer,
            path: path.to_owned(),
        })
    }

    fn validate(path: &str) -> Result<(), ErrorCode> {
        if path::is_valid(path) {
            Ok(())
        } else {
            Err(ErrorCode::BadArguments)
        }
    }

    fn set_data(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
    ) -> Result<Txn, ErrorCode> {
        self.check_session(false)?;
        Self::validate(path)?;
        let mut node = self.record(path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&node.acl, perms::WRITE)?;
        let old_len = self.tree.node(path).map_or(0, |n| n.data_len() as i64);
        let new_len = data.map_or(0, <[u8]>::len) as i64;
        self.tree.check_quota(path, new_len - old_len, 0)?;
        let new_version = check_version(node.stat.version, version)?;
        node.stat.version = new_version;
        node.stat.mtime = self.time_ms;
        node.stat.mzxid = self.zxid;
        self.push(path, Some(node));
        Ok(Txn::SetData {
            path: path.to_owned(),
            data: data.map(<[u8]>::to_vec),
            version: new_version,
        })
    }

    fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Result<Txn, ErrorCode> {
        self.check_session(false)?;
        Self::validate(path)?;
        let acl = self.fixup(acl)?;
        let mut node = self.record(path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&node.acl, perms::ADMIN)?;
        let new_version = check_version(node.stat.aversion, version)?;
        node.stat.aversion = new_version;
        node.acl = AclList::new(acl.clone());
        self.push(path, Some(node));
        Ok(Txn::SetAcl {
            path: path.to_owned(),
            acl,
            version: new_version,
        })
    }

    fn check(&mut self, path: &str, version: i32) -> Result<Txn, ErrorCode> {
        self.check_session(false)?;
        Self::validate(path)?;
        let node = self.record(path).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&node.acl, perms::READ)?;
        let v = check_version(node.stat.version, version)?;
        Ok(Txn::Check {
            path: path.to_owned(),
            version: v,
        })
    }

    fn reconfig(&mut self, data: &[u8]) -> Result<Txn, ErrorCode> {
        // Session 0 is the server itself (the admin API's member calls), as for reaping.
        if self.caller.session_id != 0 {
            self.check_session(false)?;
        }
        let mut node = self.record(CONFIG).ok_or(ErrorCode::NoNode)?;
        self.check_acl(&node.acl, perms::WRITE)?;
        node.stat.version = -1;
        node.stat.mtime = self.time_ms;
        node.stat.mzxid = self.zxid;
        self.push(CONFIG, Some(node));
        Ok(Txn::Reconfig {
            data: data.to_vec(),
        })
    }

    fn close_session(&mut self) -> Txn {
        let session = self.caller.session_id;
        let mut paths: BTreeSet<String> =
            self.tree.ephemerals(session).map(str::to_owned).collect();
        for (p, stack) in &self.pending.nodes {
            match stack.last() {
                Some((_, Some(rec))) if rec.stat.ephemeral_owner == session => {
                    paths.insert(p.clone());
                }
                Some(_) => {
                    paths.remove(p);
                }
                None => {}
            }
        }
        for p in &paths {
            if let Some((parent_path, _)) = path::split(p) {
                if let Some(parent) = self.record(parent_path) {
                    self.remove(parent_path, parent, p);
                } else {
                    self.push(p, None);
                }
            }
        }
        self.push_session(session, SessionState::Closing);
        Txn::CloseSession {
            paths: paths.into_iter().collect(),
        }
    }
}

/// `checkAndIncVersion`: -1 matches any version.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}
