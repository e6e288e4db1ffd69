//! Snapshot format: `RKTS` magic, a version byte, the last applied zxid, the digest,
//! the sessions, every node in path order, then a crc32 of all preceding bytes.
//! Version 2 can store null node data (length u32::MAX); version 3's digest leaves out
//! `/zookeeper/config`. Versions 1 (no null data) and 2 are still read.
//! Restoring checks the checksum, the structure (valid paths, parents present, root
//! present) and the digest, so corrupt input is an error, never a panic.

use std::cmp::Ordering;
use std::sync::Arc;

use imbl::OrdMap;

use crate::acl::AclCache;
use crate::codec::{CodecError, Dec, Enc};
use crate::node::{Node, PathKey, StatPersisted};
use crate::path::{self, CONFIG, ROOT};
use crate::tree::{DataTree, DigestHash, TreeConfig, node_digest_with};

const MAGIC: &[u8; 4] = b"RKTS";
const VERSION: u8 = 4;
/// Older versions [`DataTree::restore`] still reads. Before 4 the stored digest was
/// hashed byte by byte ([`DigestHash::Fnv`]); before 3 it counted `/zookeeper/config`.
const READ_VERSIONS: [u8; 4] = [1, 2, 3, VERSION];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot too short")]
    TooShort,
    #[error("bad snapshot magic")]
    Magic,
    #[error("unknown snapshot version {0}")]
    Version(u8),
    #[error("snapshot checksum mismatch")]
    Checksum,
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("invalid path {0:?} in snapshot")]
    Path(String),
    #[error("duplicate path {0:?} in snapshot")]
    Duplicate(String),
    #[error("path {0:?} out of order in snapshot")]
    Order(String),
    #[error("node {0:?} has no parent in snapshot")]
    Orphan(String),
    #[error("snapshot has no root node")]
    NoRoot,
    #[error("snapshot digest {stored:#x} does not match its content {actual:#x}")]
    Digest { stored: u64, actual: u64 },
    #[error("{0} trailing bytes in snapshot")]
    Trailing(usize),
}

impl DataTree {
    /// Serializes the whole tree. Takes as long as the tree is large: a server calls
    /// it on a clone (O(1), see [`DataTree`]) on another thread.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.buf.extend_from_slice(MAGIC);
        e.u8(VERSION);
        e.i64(self.last_zxid);
        e.u64(self.digest);
        e.len(self.sessions.len());
        for (id, timeout) in &self.sessions {
            e.i64(*id);
            e.i32(*timeout);
        }
        e.len(self.nodes.len());
        for (p, n) in &self.nodes {
            e.str(p);
            e.opt_bytes(n.data.as_deref());
            e.acl(&n.acl);
            let s = &n.stat;
            for v in [s.czxid, s.mzxid, s.ctime, s.mtime] {
                e.i64(v);
            }
            for v in [s.version, s.cversion, s.aversion] {
                e.i32(v);
            }
            e.i64(s.ephemeral_owner);
            e.i64(s.pzxid);
        }
        let crc = crc32fast::hash(&e.buf);
        e.u32(crc);
        e.buf
    }

    /// Restores with the default [`TreeConfig`].
    pub fn restore(bytes: &[u8]) -> Result<DataTree, SnapshotError> {
        DataTree::restore_with(bytes, TreeConfig::default())
    }

    /// Restores a snapshot; `config` must be the cluster's (it decides which owners
    /// are TTL nodes).
    pub fn restore_with(bytes: &[u8], config: TreeConfig) -> Result<DataTree, SnapshotError> {
        if bytes.len() < MAGIC.len() + 1 + 4 {
            return Err(SnapshotError::TooShort);
        }
        if &bytes[..4] != MAGIC {
            return Err(SnapshotError::Magic);
        }
        let version = bytes[4];
        if !READ_VERSIONS.contains(&version) {
            return Err(SnapshotError::Version(version));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(crc);
        if crc32fast::hash(body) != u32::from_be_bytes(crc_bytes) {
            return Err(SnapshotError::Checksum);
        }
        let mut d = Dec::new(&body[5..]);
        let last_zxid = d.i64()?;
        let stored_digest = d.u64()?;
        let n_sessions = d.count(12)?;
        let mut sessions = OrdMap::new();
        for _ in 0..n_sessions {
            let id = d.i64()?;
            let t = d.i32()?;
            sessions.insert(id, t);
        }
        let n_nodes = d.count(4 + 4 + 4 + 8 * 6 + 4 * 3)?;
        // Written in path order (the map's), so a parent precedes its children and a
        // sorted Vec does for a map here; a path out of order is a corrupt snapshot.
        // Each node goes into its `Arc` as it is decoded: a second pass moving a million
        // nodes from a `Vec` into their `Arc`s was a sixth of a restore.
        let mut nodes: Vec<(PathKey, Arc<Node>)> = Vec::with_capacity(n_nodes);
        let mut acls = AclCache::default();
        for _ in 0..n_nodes {
            let p = d.str()?;
            if !path::is_valid(&p) {
                return Err(SnapshotError::Path(p));
            }
            let data = if version == 1 {
                Some(d.bytes()?)
            } else {
                d.opt_bytes()?
            };
            let acl = d.acl()?;
            let czxid = d.i64()?;
            let mzxid = d.i64()?;
            let ctime = d.i64()?;
            let mtime = d.i64()?;
            let version = d.i32()?;
            let cversion = d.i32()?;
            let aversion = d.i32()?;
            let ephemeral_owner = d.i64()?;
            let pzxid = d.i64()?;
            let stat = StatPersisted {
                czxid,
                mzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                ephemeral_owner,
                pzxid,
            };
            match nodes.last().map(|(last, _)| (**last).cmp(p.as_str())) {
                Some(Ordering::Equal) => return Err(SnapshotError::Duplicate(p)),
                Some(Ordering::Greater) => return Err(SnapshotError::Order(p)),
                _ => {}
            }
            let node = Node::new(data, acls.intern(&acl), stat);
            nodes.push((PathKey::from(p), Arc::new(node)));
        }
        if d.remaining() != 0 {
            return Err(SnapshotError::Trailing(d.remaining()));
        }
        // "/" sorts before every other path.
        if nodes.first().is_none_or(|(p, _)| &**p != ROOT) {
            return Err(SnapshotError::NoRoot);
        }
        // Each child's path is its parent's children entry: the key itself, shared.
        // Siblings mostly come in a run, so the last parent is tried before a search.
        let mut parent_at = 0;
        for i in 1..nodes.len() {
            let child = nodes[i].0.clone();
            let Some((parent, _)) = path::split(&child) else {
                continue;
            };
            if &*nodes[parent_at].0 != parent {
                parent_at = nodes[..i]
                    .binary_search_by(|(p, _)| (**p).cmp(parent))
                    .map_err(|_| SnapshotError::Orphan(child.to_string()))?;
            }
            // No clone: nothing else holds the parent's `Arc` yet.
            Arc::make_mut(&mut nodes[parent_at].1)
                .children
                .insert(child);
        }
        let nodes = nodes.into_iter().collect();
        let mut tree = DataTree {
            nodes,
            ephemerals: OrdMap::new(),
            containers: Default::default(),
            ttls: Default::default(),
            sessions,
            last_zxid,
            digest: 0,
            config,
            quota_roots: Default::default(),
            acls,
        };
        tree.rebuild_indexes();
        let actual = match version {
            VERSION => tree.digest,
            _ => {
                let config = match (version, tree.nodes.get(CONFIG)) {
                    (1 | 2, Some(n)) => node_digest_with(DigestHash::Fnv, CONFIG, n),
                    _ => 0,
                };
                tree.recompute_digest_with(DigestHash::Fnv)
                    .wrapping_add(config)
            }
        };
        if actual != stored_digest {
            return Err(SnapshotError::Digest {
                stored: stored_digest,
                actual,
            });
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Re-seals a snapshot with another version byte and digest.
    fn resealed(snap: &[u8], version: u8, digest: u64) -> Vec<u8> {
        let mut snap = snap[..snap.len() - 4].to_vec();
        snap[4] = version;
        snap[13..21].copy_from_slice(&digest.to_be_bytes());
        let crc = crc32fast::hash(&snap);
        snap.extend_from_slice(&crc.to_be_bytes());
        snap
    }

    /// The digest an older version stored: FNV, and before 3 with the config node.
    fn old_digest(tree: &DataTree, version: u8) -> u64 {
        let config = match (version, tree.node(CONFIG)) {
            (1 | 2, Some(n)) => node_digest_with(DigestHash::Fnv, CONFIG, n),
            _ => 0,
        };
        tree.recompute_digest_with(DigestHash::Fnv)
            .wrapping_add(config)
    }

    #[test]
    fn versions_1_to_3_still_restore_with_their_digest_rule() {
        let mut tree = DataTree::default();
        tree.set_local_config(b"server.1=a:1:2:participant\nversion=0");
        tree.apply(
            &crate::txn::TxnHeader {
                session_id: 0,
                cxid: 0,
                zxid: 1,
                time_ms: 5,
            },
            crate::txn::Txn::CreateSession { timeout_ms: 4000 },
        );
        let snap = tree.snapshot();
        for version in [1, 2, 3] {
            let old = resealed(&snap, version, old_digest(&tree, version));
            let r = DataTree::restore(&old).unwrap();
            assert_eq!(r, tree, "version {version}");
            assert_eq!(r.digest(), tree.digest(), "version {version}");
            assert_eq!(r.snapshot()[4], VERSION, "rewritten as the current version");
            // Each version's digest rule is its own: another's is refused.
            let wrong = resealed(&snap, version, tree.digest());
            assert!(
                matches!(DataTree::restore(&wrong), Err(SnapshotError::Digest { .. })),
                "version {version}"
            );
        }
        let wrong = resealed(&snap, VERSION, old_digest(&tree, 3));
        assert!(matches!(
            DataTree::restore(&wrong),
            Err(SnapshotError::Digest { .. })
        ));
    }

    #[test]
    fn the_local_config_does_not_change_the_digest() {
        let plain = DataTree::default();
        let mut a = DataTree::default();
        a.set_local_config(b"server.1=0.0.0.0:2888:3888:participant\nversion=0");
        let mut b = DataTree::default();
        b.set_local_config(b"server.1=hadoop1:2888:3888:participant\nversion=0");
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest(), plain.digest());
        assert_eq!(a.recompute_digest(), a.digest());
        assert_eq!(
            DataTree::restore(&a.snapshot()).unwrap().digest(),
            a.digest()
        );
    }
}
