//! Snapshot format: `RKTS` magic, a version byte, the last applied zxid, the digest,
//! the sessions, every node in path order, then a crc32 of all preceding bytes.
//! Version 2 can store null node data (length u32::MAX); version 1, which could not,
//! is still read.
//! Restoring checks the checksum, the structure (valid paths, parents present, root
//! present) and the digest, so corrupt input is an error, never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;

use crate::codec::{CodecError, Dec, Enc};
use crate::node::{Node, StatPersisted};
use crate::path::{self, ROOT};
use crate::tree::{DataTree, TreeConfig};

const MAGIC: &[u8; 4] = b"RKTS";
const VERSION: u8 = 2;
/// Older versions [`DataTree::restore`] still reads.
const READ_VERSIONS: [u8; 2] = [1, VERSION];

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
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
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
            if nodes.contains_key(&p) {
                return Err(SnapshotError::Duplicate(p));
            }
            nodes.insert(p, Node::new(data, acl, stat));
        }
        if d.remaining() != 0 {
            return Err(SnapshotError::Trailing(d.remaining()));
        }
        if !nodes.contains_key(ROOT) {
            return Err(SnapshotError::NoRoot);
        }
        let links: Vec<(String, String)> = nodes
            .keys()
            .filter(|p| p.as_str() != ROOT)
            .filter_map(|p| {
                path::split(p).map(|(parent, child)| (parent.to_owned(), child.to_owned()))
            })
            .collect();
        for (parent, child) in links {
            match nodes.get_mut(&parent) {
                Some(n) => {
                    n.children.insert(child);
                }
                None => return Err(SnapshotError::Orphan(path::join(&parent, &child))),
            }
        }
        let nodes = nodes
            .into_iter()
            .map(|(p, n)| (Arc::from(p), Arc::new(n)))
            .collect();
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
        };
        tree.rebuild_indexes();
        if tree.digest != stored_digest {
            return Err(SnapshotError::Digest {
                stored: stored_digest,
                actual: tree.digest,
            });
        }
        Ok(tree)
    }
}
