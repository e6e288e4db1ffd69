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
use crate::tree::{
    DataTree, DigestHash, TreeConfig, node_digest, node_digest_with, session_digest,
};
use crate::{SessionId, Zxid};

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
    /// A count that the rest of the snapshot cannot hold. Not a codec error: those can
    /// mean "wait for the next piece", this one cannot.
    #[error("count {count} at byte {at} exceeds what is left of the snapshot")]
    Count { at: usize, count: u64 },
    #[error("session {0:#x} out of order in snapshot")]
    SessionOrder(i64),
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
    /// are TTL nodes). The same steps as a streamed restore ([`SnapshotDecoder`] and
    /// [`TreeBuilder`]) on one thread, with the checksum checked before anything else.
    pub fn restore_with(bytes: &[u8], config: TreeConfig) -> Result<DataTree, SnapshotError> {
        if bytes.len() < MAGIC.len() + 1 + 4 {
            return Err(SnapshotError::TooShort);
        }
        check_start(bytes)?;
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(crc);
        if crc32fast::hash(body) != u32::from_be_bytes(crc_bytes) {
            return Err(SnapshotError::Checksum);
        }
        let mut decoder = SnapshotDecoder::checksum_checked(bytes.len());
        let mut nodes = Vec::new();
        decoder.push(bytes, &mut nodes)?;
        let mut builder = TreeBuilder::default();
        builder.add(nodes)?;
        builder.finish(decoder.finish()?, config)
    }
}

/// Checks the magic and version of a snapshot's first bytes (at least five).
fn check_start(bytes: &[u8]) -> Result<u8, SnapshotError> {
    if &bytes[..4] != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let version = bytes[4];
    if !READ_VERSIONS.contains(&version) {
        return Err(SnapshotError::Version(version));
    }
    Ok(version)
}

/// Whether `node` is `path` or one of its ancestors.
fn is_ancestor_or_self(node: &str, path: &str) -> bool {
    node == ROOT
        || path
            .strip_prefix(node)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A node decoded from a snapshot, to be linked into its tree by a [`TreeBuilder`].
#[derive(Debug)]
pub struct RestoredNode {
    path: PathKey,
    node: Arc<Node>,
}

/// What a snapshot holds besides its nodes, once all of its bytes have been decoded.
#[derive(Debug)]
pub struct SnapshotTail {
    version: u8,
    last_zxid: Zxid,
    stored_digest: u64,
    /// The current digest of the nodes and sessions decoded, summed as they came.
    digest: u64,
    sessions: OrdMap<SessionId, i32>,
    acls: AclCache,
}

/// How far a [`SnapshotDecoder`] has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Sessions(usize),
    NodeCount,
    Nodes(usize),
    Done,
}

/// Decodes a snapshot as its bytes arrive, so that a server restoring a large one never
/// holds all of its bytes beside the tree, and can read the next bytes from disk on
/// another thread while this decodes. Pieces may split a record anywhere.
#[derive(Debug)]
pub struct SnapshotDecoder {
    /// The snapshot's whole length, checksum included, as its store recorded it.
    total: usize,
    /// Bytes pushed so far.
    seen: usize,
    /// Bytes pushed and not decoded yet: the start of a record the last piece cut.
    pending: Vec<u8>,
    /// Bytes of the whole snapshot decoded before `pending`.
    decoded: usize,
    /// The running checksum; `None` when the caller checked it over the whole snapshot.
    crc: Option<crc32fast::Hasher>,
    stage: Stage,
    version: u8,
    last_zxid: Zxid,
    stored_digest: u64,
    digest: u64,
    sessions: OrdMap<SessionId, i32>,
    last_session: Option<SessionId>,
    last_path: Option<PathKey>,
    acls: AclCache,
}

/// The least a node's record takes: path, data and ACL lengths, six i64 and three i32.
const MIN_NODE_BYTES: usize = 4 + 4 + 4 + 8 * 6 + 4 * 3;

impl SnapshotDecoder {
    /// A decoder for a snapshot of `total` bytes.
    pub fn new(total: usize) -> SnapshotDecoder {
        SnapshotDecoder {
            crc: Some(crc32fast::Hasher::new()),
            ..SnapshotDecoder::checksum_checked(total)
        }
    }

    /// A decoder for a snapshot of `total` bytes whose checksum the caller has already
    /// checked, so that a snapshot held whole is not hashed twice.
    fn checksum_checked(total: usize) -> SnapshotDecoder {
        SnapshotDecoder {
            total,
            seen: 0,
            pending: Vec::new(),
            decoded: 0,
            crc: None,
            stage: Stage::Header,
            version: VERSION,
            last_zxid: 0,
            stored_digest: 0,
            digest: 0,
            sessions: OrdMap::new(),
            last_session: None,
            last_path: None,
            acls: AclCache::default(),
        }
    }

    /// Takes the next bytes and appends every node they complete to `out`, in path
    /// order.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<RestoredNode>) -> Result<(), SnapshotError> {
        let body_end = self.total.saturating_sub(4);
        let body_here = body_end.saturating_sub(self.seen).min(bytes.len());
        if let Some(crc) = &mut self.crc {
            crc.update(&bytes[..body_here]);
        }
        self.seen += bytes.len();
        if self.seen > self.total {
            return Err(SnapshotError::Trailing(self.seen - self.total));
        }
        // Decoded in place unless the last piece ended inside a record.
        if self.pending.is_empty() {
            let used = self.decode(bytes, out)?;
            self.pending.extend_from_slice(&bytes[used..]);
        } else {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(bytes);
            let used = self.decode(&joined, out)?;
            joined.drain(..used);
            self.pending = joined;
        }
        Ok(())
    }

    /// Decodes whole records from `input`, the bytes after the `decoded` first; returns
    /// the bytes they took. A record cut short waits for the next piece unless the
    /// snapshot is complete.
    fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<RestoredNode>,
    ) -> Result<usize, SnapshotError> {
        // The checksum's bytes, the stream's last, are not records.
        let crc_here = self.seen.saturating_sub(self.total.saturating_sub(4));
        let records = &input[..input.len().saturating_sub(crc_here)];
        let complete = self.seen == self.total;
        let mut used = 0;
        while self.stage != Stage::Done {
            let mut d = Dec::new(&records[used..]);
            let at = self.decoded + used;
            match self.step(&mut d, at, out) {
                Ok(()) => used += d.position(),
                Err(SnapshotError::Codec(e)) if !complete && self.may_come(at, &e) => break,
                Err(e) => return Err(e),
            }
        }
        // Past the last node only the checksum may come: anything else is not waited
        // for (nor held).
        if self.stage == Stage::Done && used < records.len() {
            return Err(SnapshotError::Trailing(records.len() - used));
        }
        self.decoded += used;
        Ok(used)
    }

    /// Whether `e`, decoding a record at `at`, only says its bytes have not all come
    /// yet: a length that the rest of the snapshot cannot hold never will.
    fn may_come(&self, at: usize, e: &CodecError) -> bool {
        match *e {
            CodecError::Truncated(_) => true,
            // A count of `len` items takes at least `len` bytes after its own four.
            CodecError::BadLength { at: prefix, len } => {
                let end = (at + prefix + 4) as u64 + len;
                end <= self.total.saturating_sub(4) as u64
            }
            CodecError::BadUtf8(_) => false,
        }
    }

    /// Decodes one record: the header, one session, the node count or one node.
    /// `at` is where `d` starts in the whole snapshot.
    fn step(
        &mut self,
        d: &mut Dec,
        at: usize,
        out: &mut Vec<RestoredNode>,
    ) -> Result<(), SnapshotError> {
        match self.stage {
            Stage::Header => {
                if self.total < MAGIC.len() + 1 + 4 {
                    return Err(SnapshotError::TooShort);
                }
                let start = d.take(MAGIC.len() + 1)?;
                self.version = check_start(start)?;
                self.last_zxid = d.i64()?;
                self.stored_digest = d.u64()?;
                let n = self.total_count(d, at, 12)?;
                self.stage = Stage::Sessions(n);
            }
            Stage::Sessions(0) => self.stage = Stage::NodeCount,
            Stage::Sessions(left) => {
                let id = d.i64()?;
                let timeout = d.i32()?;
                // Written in id order (the map's): a repeat would count twice.
                if self.last_session.is_some_and(|last| last >= id) {
                    return Err(SnapshotError::SessionOrder(id));
                }
                self.last_session = Some(id);
                self.sessions.insert(id, timeout);
                self.digest = self.digest.wrapping_add(session_digest(id, timeout));
                self.stage = Stage::Sessions(left - 1);
            }
            Stage::NodeCount => {
                let n = self.total_count(d, at, MIN_NODE_BYTES)?;
                self.stage = Stage::Nodes(n);
            }
            Stage::Nodes(0) => self.stage = Stage::Done,
            Stage::Nodes(left) => {
                out.push(self.node(d)?);
                self.stage = Stage::Nodes(left - 1);
            }
            Stage::Done => {}
        }
        Ok(())
    }

    /// A count of items each at least `min_item` bytes long, checked against what is
    /// left of the whole snapshot (a piece holds only part of it).
    fn total_count(&self, d: &mut Dec, at: usize, min_item: usize) -> Result<usize, SnapshotError> {
        let n = d.u32()? as usize;
        let left = self.total.saturating_sub(4 + at + d.position());
        if n.saturating_mul(min_item) > left {
            let at = at + d.position() - 4;
            return Err(SnapshotError::Count {
                at,
                count: n as u64,
            });
        }
        Ok(n)
    }

    fn node(&mut self, d: &mut Dec) -> Result<RestoredNode, SnapshotError> {
        let p = d.str()?;
        let data = if self.version == 1 {
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
        // Checked only once the record is whole: a cut one is decoded again.
        if !path::is_valid(&p) {
            return Err(SnapshotError::Path(p));
        }
        match self.last_path.as_deref().map(|last| last.cmp(p.as_str())) {
            Some(Ordering::Equal) => return Err(SnapshotError::Duplicate(p)),
            Some(Ordering::Greater) => return Err(SnapshotError::Order(p)),
            _ => {}
        }
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
        let path = PathKey::from(p);
        let node = Node::new(data, self.acls.intern(&acl), stat);
        self.digest = self.digest.wrapping_add(node_digest(&path, &node));
        self.last_path = Some(path.clone());
        Ok(RestoredNode {
            path,
            node: Arc::new(node),
        })
    }

    /// Checks that every byte arrived and was decoded and that the checksum holds.
    pub fn finish(self) -> Result<SnapshotTail, SnapshotError> {
        if self.total < MAGIC.len() + 1 + 4 {
            return Err(SnapshotError::TooShort);
        }
        if self.stage != Stage::Done || self.seen < self.total {
            return Err(CodecError::Truncated(self.decoded).into());
        }
        // What was not decoded: the checksum, after any bytes past the last node.
        let Some(body_left) = self.pending.len().checked_sub(4) else {
            return Err(CodecError::Truncated(self.decoded).into());
        };
        if body_left != 0 {
            return Err(SnapshotError::Trailing(body_left));
        }
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(&self.pending);
        if let Some(crc) = self.crc {
            if crc.finalize() != u32::from_be_bytes(crc_bytes) {
                return Err(SnapshotError::Checksum);
            }
        }
        Ok(SnapshotTail {
            version: self.version,
            last_zxid: self.last_zxid,
            stored_digest: self.stored_digest,
            digest: self.digest,
            sessions: self.sessions,
            acls: self.acls,
        })
    }
}

/// Links decoded nodes into a tree. Separate from the [`SnapshotDecoder`] so that a
/// server can decode on one thread and build the map on another as nodes arrive.
#[derive(Debug, Default)]
pub struct TreeBuilder {
    nodes: OrdMap<PathKey, Arc<Node>>,
    /// The last node added and those of its ancestors that may still get children,
    /// root first. A node goes into the map once a node outside its subtree comes:
    /// children are linked without a lookup while their parent is here.
    open: Vec<(PathKey, Arc<Node>)>,
    started: bool,
}

impl TreeBuilder {
    /// Takes the next nodes in path order (a parent before its children, as a
    /// snapshot writes them) and links each into its parent's children.
    pub fn add(&mut self, batch: Vec<RestoredNode>) -> Result<(), SnapshotError> {
        for RestoredNode { path, node } in batch {
            if !self.started {
                // "/" sorts before every other path.
                if &*path != ROOT {
                    return Err(SnapshotError::NoRoot);
                }
                self.started = true;
                self.open.push((path, node));
                continue;
            }
            let parent = path::split(&path).map_or(ROOT, |(parent, _)| parent);
            while let Some((top, _)) = self.open.last() {
                if is_ancestor_or_self(top, parent) {
                    break;
                }
                if let Some((done, n)) = self.open.pop() {
                    self.nodes.insert(done, n);
                }
            }
            // The child's path is its parent's children entry: the key, shared.
            // No clone: nothing else holds the parent's `Arc` yet.
            match self.open.last_mut() {
                Some((top, n)) if **top == *parent => {
                    Arc::make_mut(n).children.insert(path.clone());
                }
                // Byte order can put a path between a parent and its children ("/a",
                // "/a!", "/a/b"), so the parent may be in the map already.
                _ => match self.nodes.get_mut(parent) {
                    Some(n) => {
                        Arc::make_mut(n).children.insert(path.clone());
                    }
                    None => return Err(SnapshotError::Orphan(path.to_string())),
                },
            }
            self.open.push((path, node));
        }
        Ok(())
    }

    /// The tree, once the decoder has seen the whole snapshot; checks its digest.
    pub fn finish(self, tail: SnapshotTail, config: TreeConfig) -> Result<DataTree, SnapshotError> {
        if !self.started {
            return Err(SnapshotError::NoRoot);
        }
        let mut nodes = self.nodes;
        nodes.extend(self.open);
        let mut tree = DataTree {
            nodes,
            ephemerals: OrdMap::new(),
            containers: Default::default(),
            ttls: Default::default(),
            sessions: tail.sessions,
            last_zxid: tail.last_zxid,
            digest: tail.digest,
            config,
            quota_roots: Default::default(),
            acls: tail.acls,
        };
        tree.rebuild_indexes();
        let actual = match tail.version {
            VERSION => tree.digest,
            version => {
                let config = match (version, tree.nodes.get(CONFIG)) {
                    (1 | 2, Some(n)) => node_digest_with(DigestHash::Fnv, CONFIG, n),
                    _ => 0,
                };
                tree.recompute_digest_with(DigestHash::Fnv)
                    .wrapping_add(config)
            }
        };
        if actual != tail.stored_digest {
            return Err(SnapshotError::Digest {
                stored: tail.stored_digest,
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
