//! The data tree: nodes by path, the indexes ZooKeeper keeps beside them (ephemerals
//! per session, containers, TTL nodes), the replicated session table, reads with ACL
//! checks, and the deterministic `apply`.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use rookery_wire::codes::perms;
use rookery_wire::{Acl, ErrorCode, EventType, Id, Stat};

use crate::acl::{self, AclCache, AclList, AuthSchemes};
use crate::node::{EphemeralType, Node, PathKey, SessionId, StatPersisted, Zxid};
use crate::path::{self, CONFIG, QUOTA, ROOT, ZOOKEEPER};
use crate::quota;
use crate::txn::{ApplyResult, OpResult, Txn, TxnHeader, WatchTrigger};

/// Cluster-wide settings that change how Txns are prepped and applied. Every server
/// of an ensemble must use the same values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeConfig {
    /// `zookeeper.extendedTypesEnabled`: TTL nodes exist only when this is on.
    pub extended_types: bool,
    pub auth_schemes: AuthSchemes,
    /// `enforceQuota`: hard quota limits fail writes with QuotaExceeded.
    pub enforce_quota: bool,
    /// A known bug, for proving the checkers (rookery-server's `seq-reuse`): prep numbers
    /// sequential nodes from an in-memory counter per parent kept in [`PendingChanges`],
    /// which starts at the parent's number of children whenever that state is new
    /// (process start, a new leader) instead of at the persisted `cversion`. After
    /// deletes and a restart, a sequential create reuses a name already handed out.
    ///
    /// [`PendingChanges`]: crate::prep::PendingChanges
    #[cfg(feature = "inject-bugs")]
    pub inject_seq_reuse: bool,
}

/// Who is asking: the session and the ids it has authenticated as (including its
/// `ip:` id, which the server adds for every connection as ZooKeeper does).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub session_id: SessionId,
    pub auth: &'a [Id],
    /// Bypasses every ACL check (the super digest, or `skipACL`). A `super:` id in
    /// `auth` has the same effect.
    pub is_super: bool,
}

impl<'a> Caller<'a> {
    pub fn new(session_id: SessionId, auth: &'a [Id]) -> Self {
        Caller {
            session_id,
            auth,
            is_super: false,
        }
    }

    /// The server itself (container reaper, tests): session 0, all permissions.
    pub fn system() -> Caller<'static> {
        Caller {
            session_id: 0,
            auth: &[],
            is_super: true,
        }
    }
}

/// The replicated state: every server that applied the same Txns in the same order has
/// an equal `DataTree` (and equal [`DataTree::digest`]).
///
/// The large collections are persistent (structurally shared) ordered maps, so
/// `clone` is O(1): a snapshot freezes the tree at its `last_zxid` with a clone and
/// serializes it on another thread while this one keeps applying. A write after the
/// clone copies only the few map nodes on its path (and the znode it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTree {
    /// `Arc` keys and values keep the copy of a shared map node to reference counts.
    pub(crate) nodes: OrdMap<PathKey, Arc<Node>>,
    pub(crate) ephemerals: OrdMap<SessionId, OrdSet<String>>,
    pub(crate) containers: OrdSet<String>,
    pub(crate) ttls: OrdSet<String>,
    /// Open sessions and their negotiated timeouts (ZooKeeper's sessionsWithTimeouts).
    pub(crate) sessions: OrdMap<SessionId, i32>,
    pub(crate) last_zxid: Zxid,
    pub(crate) digest: u64,
    pub(crate) config: TreeConfig,
    /// Paths with a quota (a `zookeeper_limits` node), ZooKeeper's PathTrie.
    pub(crate) quota_roots: BTreeSet<String>,
    /// Shares one copy of each distinct ACL among the znodes that carry it.
    pub(crate) acls: AclCache,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new(TreeConfig::default())
    }
}

impl DataTree {
    /// A fresh tree with ZooKeeper's system nodes: `/`, `/zookeeper`,
    /// `/zookeeper/quota` (all zxid 0, world:anyone ALL) and `/zookeeper/config`
    /// (world:anyone READ, aversion -1, as `DataTree.addConfigNode` leaves it).
    pub fn new(config: TreeConfig) -> Self {
        let mut t = DataTree {
            nodes: OrdMap::new(),
            ephemerals: OrdMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            sessions: OrdMap::new(),
            last_zxid: 0,
            digest: 0,
            config,
            quota_roots: BTreeSet::new(),
            acls: AclCache::default(),
        };
        let open = t.acls.intern(&Acl::open_unsafe());
        let read = t.acls.intern(&Acl::read_unsafe());
        let [root, zookeeper, quota, config] = [ROOT, ZOOKEEPER, QUOTA, CONFIG].map(PathKey::from);
        let sys = |acl: &AclList, children: &[&PathKey], aversion: i32| {
            let mut n = Node::new(Some(Vec::new()), Arc::clone(acl), StatPersisted::default());
            n.stat.aversion = aversion;
            n.children = children.iter().map(|&c| c.clone()).collect();
            n
        };
        t.insert_raw(root, sys(&open, &[&zookeeper], 0));
        let node = sys(&open, &[&config, &quota], 0);
        t.insert_raw(zookeeper, node);
        t.insert_raw(quota, sys(&open, &[], 0));
        t.insert_raw(config, sys(&read, &[], -1));
        t
    }

    fn insert_raw(&mut self, path: PathKey, node: Node) {
        self.digest = self.digest.wrapping_add(node_digest(&path, &node));
        self.nodes.insert(path, Arc::new(node));
    }

    pub fn config(&self) -> &TreeConfig {
        &self.config
    }

    /// Sets `/zookeeper/config` to this server's view of the ensemble, outside the
    /// log, as ZooKeeper does when it loads its database: version -1 and zxid 0. The
    /// mtime stays 0 (ZooKeeper's is each server's load time) so that servers with
    /// the same configuration keep equal digests.
    pub fn set_local_config(&mut self, data: &[u8]) {
        let _ = self.modify(CONFIG, |n| {
            if n.data.as_deref() != Some(data) {
                n.data = Some(Box::from(data));
            }
            n.stat.version = -1;
        });
    }

    /// The zxid of the last applied Txn.
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    /// Order-independent digest of all nodes (but `/zookeeper/config`, each server's
    /// own) and sessions, kept up to date by apply.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest computed from scratch; equals [`DataTree::digest`] unless the tree is
    /// corrupt.
    pub fn recompute_digest(&self) -> u64 {
        self.recompute_digest_with(DigestHash::Words)
    }

    /// The digest from scratch with `hash`; `/zookeeper/config` left out as always.
    pub(crate) fn recompute_digest_with(&self, hash: DigestHash) -> u64 {
        let nodes = self
            .nodes
            .iter()
            .filter(|(p, _)| &***p != CONFIG)
            .fold(0u64, |acc, (p, n)| {
                acc.wrapping_add(node_digest_with(hash, p, n))
            });
        self.sessions.iter().fold(nodes, |acc, (s, t)| {
            acc.wrapping_add(session_digest_with(hash, *s, *t))
        })
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path).map(|n| &**n)
    }

    /// All nodes in path order.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(p, n)| (&**p, &**n))
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The client-visible Stat of a node.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes
            .get(path)
            .map(|n| n.client_stat(self.config.extended_types))
    }

    pub fn sessions(&self) -> &OrdMap<SessionId, i32> {
        &self.sessions
    }

    /// A session's ephemeral paths, sorted.
    pub fn ephemerals(&self, session: SessionId) -> impl Iterator<Item = &str> {
        self.ephemerals
            .get(&session)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Number of ephemeral nodes over all sessions (`zk_ephemerals_count`).
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(OrdSet::len).sum()
    }

    pub fn containers(&self) -> &OrdSet<String> {
        &self.containers
    }

    pub fn ttl_nodes(&self) -> &OrdSet<String> {
        &self.ttls
    }

    /// Sum of path and data lengths (`zk_approximate_data_size`).
    pub fn approximate_data_size(&self) -> u64 {
        self.nodes
            .iter()
            .map(|(p, n)| (p.len() + n.data_len()) as u64)
            .sum()
    }

    fn allowed(&self, node: &Node, perm: i32, caller: &Caller<'_>) -> bool {
        acl::check(
            &self.config.auth_schemes,
            &node.acl,
            perm,
            caller.auth,
            caller.is_super,
        )
    }

    fn readable(&self, path: &str, caller: &Caller<'_>) -> Result<&Node, ErrorCode> {
        let n = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        if !self.allowed(n, perms::READ, caller) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(n)
    }

    /// getData: NoNode, then READ (NoAuth). `None` is null data, which the reply
    /// must carry as null (jute length -1), not as empty.
    pub fn get_data(
        &self,
        caller: &Caller<'_>,
        path: &str,
    ) -> Result<(Option<&[u8]>, Stat), ErrorCode> {
        let n = self.readable(path, caller)?;
        Ok((n.data.as_deref(), n.client_stat(self.config.extended_types)))
    }

    /// exists: `Ok(None)` for a missing node (an exist watch may still be set). A path
    /// containing NUL is BadArguments; an existing node needs READ (ZooKeeper
    /// 3.9.2+/3.8.4+), and on NoAuth no watch is set.
    pub fn exists(&self, caller: &Caller<'_>, path: &str) -> Result<Option<Stat>, ErrorCode> {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        match self.nodes.get(path) {
            None => Ok(None),
            Some(n) if self.allowed(n, perms::READ, caller) => {
                Ok(Some(n.client_stat(self.config.extended_types)))
            }
            Some(_) => Err(ErrorCode::NoAuth),
        }
    }

    /// getChildren: names in lexicographic order (ZooKeeper returns HashSet order,
    /// which clients must not rely on).
    pub fn get_children(&self, caller: &Caller<'_>, path: &str) -> Result<Vec<String>, ErrorCode> {
        let n = self.readable(path, caller)?;
        Ok(n.child_names().map(str::to_owned).collect())
    }

    pub fn get_children2(
        &self,
        caller: &Caller<'_>,
        path: &str,
    ) -> Result<(Vec<String>, Stat), ErrorCode> {
        let n = self.readable(path, caller)?;
        Ok((
            n.child_names().map(str::to_owned).collect(),
            n.client_stat(self.config.extended_types),
        ))
    }

    /// getACL: needs READ or ADMIN; without ADMIN, digest hashes are shown as `x`.
    pub fn get_acl(&self, caller: &Caller<'_>, path: &str) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let n = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        if !self.allowed(n, perms::READ | perms::ADMIN, caller) {
            return Err(ErrorCode::NoAuth);
        }
        let stat = n.client_stat(self.config.extended_types);
        if self.allowed(n, perms::ADMIN, caller) {
            Ok((n.acl.to_vec(), stat))
        } else {
            Ok((acl::mask_digests(&n.acl), stat))
        }
    }

    /// getEphemerals: the caller session's ephemerals whose path starts with `prefix`
    /// (all of them for an empty or `/` prefix), sorted.
    pub fn get_ephemerals(&self, session: SessionId, prefix: &str) -> Vec<String> {
        let all = prefix.trim().is_empty() || prefix.trim() == "/";
        self.ephemerals(session)
            .filter(|p| all || p.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// getAllChildrenNumber: every descendant (not the node itself); for `/` that is
    /// every node but the root, system nodes included.
    pub fn get_all_children_number(
        &self,
        caller: &Caller<'_>,
        path: &str,
    ) -> Result<i32, ErrorCode> {
        self.readable(path, caller)?;
        let n = if path == ROOT {
            self.nodes.len() - 1
        } else {
            // Descendants are exactly the keys in ["path/", "path0"): '0' follows '/'.
            let lo = format!("{path}/");
            let hi = format!("{path}0");
            let range = (Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str()));
            self.nodes.range::<_, str>(range).count()
        };
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// What `ContainerManager.getCandidates` would delete now: empty containers that
    /// once had a child (or are older than `max_never_used_ms` when that is non-zero),
    /// and empty TTL nodes unmodified for longer than their TTL.
    pub fn container_candidates(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(n) = self.nodes.get(p.as_str()) {
                if n.children.is_empty()
                    && (n.stat.cversion > 0
                        || (max_never_used_ms != 0
                            && now_ms.saturating_sub(n.stat.mtime) > max_never_used_ms))
                {
                    out.push(p.clone());
                }
            }
        }
        for p in &self.ttls {
            if let Some(n) = self.nodes.get(p.as_str()) {
                if let EphemeralType::Ttl(ttl) =
                    EphemeralType::of(n.stat.ephemeral_owner, self.config.extended_types)
                {
                    if n.children.is_empty()
                        && ttl != 0
                        && now_ms.saturating_sub(n.stat.mtime) > ttl
                    {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }

    /// Applies a committed Txn. Deterministic; never panics. A Txn that prep produced
    /// against the preceding state always succeeds; anything else (a corrupt or
    /// misordered log) yields an error result, as ZooKeeper's processTxn does.
    pub fn apply(&mut self, header: &TxnHeader, txn: Txn) -> ApplyResult {
        let mut triggers = Vec::new();
        let result = match txn {
            Txn::CreateSession { timeout_ms } => {
                self.set_session(header.session_id, Some(timeout_ms));
                OpResult::CreateSession
            }
            Txn::CloseSession { paths } => {
                self.close_session(header.session_id, &paths, header.zxid, &mut triggers);
                OpResult::CloseSession
            }
            Txn::Multi(txns) => self.apply_multi(header, txns, &mut triggers),
            other => self
                .apply_one(header, other, &mut triggers)
                .unwrap_or_else(OpResult::Error),
        };
        if header.zxid > self.last_zxid {
            self.last_zxid = header.zxid;
        }
        ApplyResult {
            header: *header,
            result,
            triggers,
        }
    }

    fn apply_multi(
        &mut self,
        header: &TxnHeader,
        txns: Vec<Txn>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> OpResult {
        if txns.iter().any(|t| matches!(t, Txn::Error(_))) {
            // DataTree.processTxn: a failed multi changes nothing; ops before the first
            // error report Ok, ops after it RuntimeInconsistency.
            let mut seen_error = false;
            let results = txns
                .iter()
                .map(|t| match t {
                    Txn::Error(e) => {
                        seen_error = true;
                        OpResult::Error(*e)
                    }
                    _ if seen_error => OpResult::Error(ErrorCode::RuntimeInconsistency),
                    _ => OpResult::Error(ErrorCode::Ok),
                })
                .collect();
            return OpResult::Multi(results);
        }
        let results = txns
            .into_iter()
            .map(|t| match t {
                Txn::Multi(_) | Txn::CreateSession { .. } | Txn::CloseSession { .. } => {
                    OpResult::Error(ErrorCode::BadArguments)
                }
                other => self
                    .apply_one(header, other, triggers)
                    .unwrap_or_else(OpResult::Error),
            })
            .collect();
        OpResult::Multi(results)
    }

    fn apply_one(
        &mut self,
        h: &TxnHeader,
        txn: Txn,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<OpResult, ErrorCode> {
        match txn {
            Txn::Create {
                kind,
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                let stat = self.create_node(
                    &path,
                    data,
                    acl,
                    ephemeral_owner,
                    parent_cversion,
                    h,
                    triggers,
                )?;
                Ok(OpResult::Create { kind, path, stat })
            }
            Txn::Delete { path, .. } => {
                self.delete_node(&path, h.zxid, triggers)?;
                Ok(OpResult::Delete)
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                let stat = self.set_data(&path, data, version, h, triggers)?;
                Ok(OpResult::SetData { stat })
            }
            Txn::Reconfig { data } => {
                let stat = self.set_data(CONFIG, Some(data.clone()), -1, h, triggers)?;
                Ok(OpResult::Reconfig { data, stat })
            }
            Txn::SetAcl { path, acl, version } => {
                let stat = self.set_acl(&path, acl, version)?;
                Ok(OpResult::SetAcl { stat })
            }
            Txn::Check { path, .. } => {
                if self.nodes.contains_key(path.as_str()) {
                    Ok(OpResult::Check)
                } else {
                    Err(ErrorCode::NoNode)
                }
            }
            Txn::Error(e) => Err(e),
            Txn::CreateSession { .. } | Txn::CloseSession { .. } | Txn::Multi(_) => {
                Err(ErrorCode::BadArguments)
            }
        }
    }

    fn set_session(&mut self, session: SessionId, timeout_ms: Option<i32>) {
        if let Some(old) = self.sessions.remove(&session) {
            self.digest = self.digest.wrapping_sub(session_digest(session, old));
        }
        if let Some(t) = timeout_ms {
            self.sessions.insert(session, t);
            self.digest = self.digest.wrapping_add(session_digest(session, t));
        }
    }

    fn close_session(
        &mut self,
        session: SessionId,
        paths: &[String],
        zxid: Zxid,
        triggers: &mut Vec<WatchTrigger>,
    ) {
        // DataTree.killSession: the Txn's list first, then anything else the session
        // still owns here.
        for p in paths {
            let _ = self.delete_node(p, zxid, triggers);
        }
        let rest: Vec<String> = self
            .ephemerals
            .get(&session)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for p in rest {
            let _ = self.delete_node(&p, zxid, triggers);
        }
        self.ephemerals.remove(&session);
        self.set_session(session, None);
    }

    fn index(&mut self, path: &str, owner: i64) {
        match EphemeralType::of(owner, self.config.extended_types) {
            EphemeralType::Void => {}
            EphemeralType::Container => {
                self.containers.insert(path.to_owned());
            }
            EphemeralType::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
            EphemeralType::Normal => {
                self.ephemerals
                    .entry(owner)
                    .or_default()
                    .insert(path.to_owned());
            }
        }
    }

    fn unindex(&mut self, path: &str, owner: i64) {
        match EphemeralType::of(owner, self.config.extended_types) {
            EphemeralType::Void => {}
            EphemeralType::Container => {
                self.containers.remove(path);
            }
            EphemeralType::Ttl(_) => {
                self.ttls.remove(path);
            }
            EphemeralType::Normal => {
                if let Some(set) = self.ephemerals.get_mut(&owner) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&owner);
                    }
                }
            }
        }
    }

    /// Runs `f` on a node, keeping the digest in step.
    pub(crate) fn modify<R>(
        &mut self,
        path: &str,
        f: impl FnOnce(&mut Node) -> R,
    ) -> Result<R, ErrorCode> {
        let shared = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
        // Copies the znode only if a snapshot still holds it.
        let node = Arc::make_mut(shared);
        let before = node_digest(path, node);
        let r = f(node);
        let after = node_digest(path, node);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        owner: i64,
        parent_cversion: i32,
        h: &TxnHeader,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Stat, ErrorCode> {
        let (parent, child) = path::split(path).ok_or(ErrorCode::NoNode)?;
        if child.is_empty() {
            return Err(ErrorCode::NodeExists);
        }
        let zxid = h.zxid;
        let key = PathKey::from(path);
        // The parent's children say whether the node exists: one search of that set,
        // which inserts too, rather than one of the whole tree before the insert there.
        let parent_acl = self.modify(parent, |p| {
            if !p.children.insert(key.clone()) {
                return Err(ErrorCode::NodeExists);
            }
            p.stat.cversion = parent_cversion;
            p.stat.pzxid = zxid;
            Ok(Arc::clone(&p.acl))
        })??;
        let acl = self.acls.intern(&acl);
        let node = Node::new(
            data,
            Arc::clone(&acl),
            StatPersisted::new(zxid, h.time_ms, owner),
        );
        let stat = node.client_stat(self.config.extended_types);
        let bytes = node.data_len() as i64;
        self.insert_raw(key, node);
        self.index(path, owner);
        if let Some(root) = quota::trim(parent).map(str::to_owned) {
            if child == quota::LIMIT_NODE {
                self.quota_roots.insert(root.clone());
            }
            if child == quota::STAT_NODE {
                self.update_quota_for_path(&root);
            }
        }
        if let Some(root) = self.quota_prefix(path).map(str::to_owned) {
            self.update_quota_stat(&root, bytes, 1);
        }
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event_type: EventType::NodeCreated,
            zxid,
            acl,
        });
        triggers.push(WatchTrigger {
            path: parent.to_owned(),
            event_type: EventType::NodeChildrenChanged,
            zxid,
            acl: parent_acl,
        });
        Ok(stat)
    }

    fn delete_node(
        &mut self,
        path: &str,
        zxid: Zxid,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(), ErrorCode> {
        if path == ROOT {
            return Err(ErrorCode::BadArguments);
        }
        let (parent, child) = path::split(path).ok_or(ErrorCode::NoNode)?;
        // One search of the map, which takes the node out; it goes back in the cases
        // that fail, which prep has already refused, so a logged Delete does not meet
        // them.
        let (key, shared) = self.nodes.remove_with_key(path).ok_or(ErrorCode::NoNode)?;
        let unlinked = if shared.children.is_empty() {
            self.modify(parent, |p| {
                p.children.remove(path);
                if zxid > p.stat.pzxid {
                    p.stat.pzxid = zxid;
                }
                Arc::clone(&p.acl)
            })
        } else {
            Err(ErrorCode::NotEmpty)
        };
        let parent_acl = match unlinked {
            Ok(acl) => acl,
            Err(e) => {
                self.nodes.insert(key, shared);
                return Err(e);
            }
        };
        let node = Arc::unwrap_or_clone(shared);
        self.digest = self.digest.wrapping_sub(node_digest(path, &node));
        self.unindex(path, node.stat.ephemeral_owner);
        if child == quota::LIMIT_NODE {
            if let Some(root) = quota::trim(parent) {
                self.quota_roots.remove(root);
            }
        }
        if let Some(root) = self.quota_prefix(path).map(str::to_owned) {
            self.update_quota_stat(&root, -(node.data_len() as i64), -1);
        }
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event_type: EventType::NodeDeleted,
            zxid,
            acl: node.acl,
        });
        triggers.push(WatchTrigger {
            path: parent.to_owned(),
            event_type: EventType::NodeChildrenChanged,
            zxid,
            acl: parent_acl,
        });
        Ok(())
    }

    fn set_data(
        &mut self,
        path: &str,
        data: Option<Vec<u8>>,
        version: i32,
        h: &TxnHeader,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Stat, ErrorCode> {
        let ext = self.config.extended_types;
        let new_len = data.as_ref().map_or(0, Vec::len) as i64;
        let (stat, acl, old_len) = self.modify(path, |n| {
            let old_len = n.data_len() as i64;
            n.data = data.map(Vec::into_boxed_slice);
            n.stat.mtime = h.time_ms;
            n.stat.mzxid = h.zxid;
            n.stat.version = version;
            (n.client_stat(ext), Arc::clone(&n.acl), old_len)
        })?;
        if let Some(root) = self.quota_prefix(path).map(str::to_owned) {
            self.update_quota_stat(&root, new_len - old_len, 0);
        }
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event_type: EventType::NodeDataChanged,
            zxid: h.zxid,
            acl,
        });
        Ok(stat)
    }

    fn set_acl(&mut self, path: &str, acl: Vec<Acl>, version: i32) -> Result<Stat, ErrorCode> {
        let ext = self.config.extended_types;
        let acl = self.acls.intern(&acl);
        self.modify(path, |n| {
            n.acl = acl;
            n.stat.aversion = version;
            n.client_stat(ext)
        })
    }

    /// Rebuilds the ephemeral, container, TTL and quota indexes after a restore loaded
    /// the nodes (the restore sums the digest as it decodes).
    pub(crate) fn rebuild_indexes(&mut self) {
        self.ephemerals.clear();
        self.containers.clear();
        self.ttls.clear();
        // Only owned nodes are indexed: most are persistent, and a restore of a million
        // should not copy a million paths to find the few.
        let owners: Vec<(PathKey, i64)> = self
            .nodes
            .iter()
            .filter(|(p, n)| n.stat.ephemeral_owner != 0 && &***p != ROOT)
            .map(|(p, n)| (p.clone(), n.stat.ephemeral_owner))
            .collect();
        for (p, o) in owners {
            self.index(&p, o);
        }
        let limit = format!("/{}", quota::LIMIT_NODE);
        self.quota_roots = self
            .nodes
            .keys()
            .filter_map(|p| {
                let parent = p.strip_suffix(limit.as_str())?;
                quota::trim(parent).map(str::to_owned)
            })
            .collect();
    }
}

/// How a node's or session's share of the digest is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DigestHash {
    /// FNV-1a byte by byte: snapshots before version 4. Kept to check them at restore.
    Fnv,
    /// Eight bytes per step: a 1 KiB setData hashes the node twice, and byte-wise FNV
    /// was 6% of a write's CPU and a fifth of a restart's.
    Words,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The fields of a node or session hashed in order, then a SplitMix64 finaliser so that
/// the wrapping sum of many digests stays well mixed. One implementation per
/// [`DigestHash`], so the hashing of a write (the words) decides nothing per step.
trait Mix: Sized {
    fn start(domain: u8) -> Self;

    fn i64(&mut self, v: i64);

    /// The bytes alone; a field's end is fixed by its length prefix (`field`).
    fn bytes(&mut self, b: &[u8]);

    /// Length-prefixed, so the zero padding of the last word is unambiguous.
    fn field(&mut self, b: &[u8]) {
        self.i64(b.len() as i64);
        self.bytes(b);
    }

    fn state(&self) -> u64;

    fn finish(self) -> u64 {
        let mut z = self.state().wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// [`DigestHash::Fnv`].
struct Fnv(u64);

impl Mix for Fnv {
    fn start(domain: u8) -> Self {
        let mut h = Fnv(FNV_OFFSET);
        h.bytes(&[domain]);
        h
    }

    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn state(&self) -> u64 {
        self.0
    }
}

/// [`DigestHash::Words`].
struct Words(u64);

impl Words {
    /// A multiply, then a shift that brings the product's high bits down, so a
    /// changed bit reaches every bit of the state within two words.
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }
}

impl Mix for Words {
    fn start(domain: u8) -> Self {
        let mut h = Words(FNV_OFFSET);
        h.word(u64::from(domain));
        h
    }

    fn i64(&mut self, v: i64) {
        self.word(v as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(w);
            self.word(u64::from_le_bytes(bytes));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut bytes = [0; 8];
            bytes[..tail.len()].copy_from_slice(tail);
            self.word(u64::from_le_bytes(bytes));
        }
    }

    fn state(&self) -> u64 {
        self.0
    }
}

/// A node's share of the tree digest. `/zookeeper/config` has none: each server sets
/// it from its own configuration (as ZooKeeper, whose digest skips `/zookeeper/`), so
/// servers holding the same data report the same digest.
pub(crate) fn node_digest(path: &str, n: &Node) -> u64 {
    if path == CONFIG {
        return 0;
    }
    node_digest_with(DigestHash::Words, path, n)
}

/// A node's share hashed with `hash`, config node included (snapshots before version 3
/// counted it).
pub(crate) fn node_digest_with(hash: DigestHash, path: &str, n: &Node) -> u64 {
    match hash {
        DigestHash::Fnv => node_fields(Fnv::start(1), path, n),
        DigestHash::Words => node_fields(Words::start(1), path, n),
    }
}

fn node_fields(mut h: impl Mix, path: &str, n: &Node) -> u64 {
    h.field(path.as_bytes());
    // Null and empty data are different client-visible states, so they hash apart
    // (ZooKeeper's digest treats them alike).
    match &n.data {
        Some(d) => h.field(d),
        None => h.i64(-1),
    }
    let s = &n.stat;
    for v in [
        s.czxid,
        s.mzxid,
        s.ctime,
        s.mtime,
        s.ephemeral_owner,
        s.pzxid,
    ] {
        h.i64(v);
    }
    for v in [s.version, s.cversion, s.aversion] {
        h.i64(i64::from(v));
    }
    h.i64(n.acl.len() as i64);
    for a in n.acl.iter() {
        h.i64(i64::from(a.perms));
        h.field(a.id.scheme.as_bytes());
        h.field(a.id.id.as_bytes());
    }
    // Children are implied by the other nodes' paths, so they are not hashed here.
    h.finish()
}

pub(crate) fn session_digest(session: SessionId, timeout_ms: i32) -> u64 {
    session_digest_with(DigestHash::Words, session, timeout_ms)
}

fn session_digest_with(hash: DigestHash, session: SessionId, timeout_ms: i32) -> u64 {
    match hash {
        DigestHash::Fnv => session_fields(Fnv::start(2), session, timeout_ms),
        DigestHash::Words => session_fields(Words::start(2), session, timeout_ms),
    }
}

fn session_fields(mut h: impl Mix, session: SessionId, timeout_ms: i32) -> u64 {
    h.i64(session);
    h.i64(i64::from(timeout_ms));
    h.finish()
}
