//! A znode as the tree stores it, and the `ephemeralOwner` encodings (`EphemeralType`).

use imbl::OrdSet;

use rookery_wire::Stat;

use crate::acl::AclList;

pub type Zxid = i64;
pub type SessionId = i64;

/// A znode's full path as the tree keys it, shared by the node map and the parent's
/// children set. Thin (one word, the length beside the bytes) rather than `Arc<str>`'s
/// two: both collections hold one per znode in B-tree leaves sized by the key, which
/// with a million znodes is tens of MiB.
pub type PathKey = arcstr::ArcStr;

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// `EphemeralType.TTL.maxValue()`: the low 40 bits.
pub const MAX_TTL_MS: i64 = 0x0000_00ff_ffff_ffff;
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
const RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;

/// What an `ephemeralOwner` value means (`EphemeralType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralType {
    /// Persistent (owner 0).
    Void,
    /// An ordinary ephemeral: the owner is the session id.
    Normal,
    Container,
    /// A TTL node; the value is the TTL in ms.
    Ttl(i64),
}

impl EphemeralType {
    /// Classifies an owner. TTL owners (high byte 0xff, TTL bits 0) exist only with
    /// extended types enabled; otherwise such a value is a session id.
    pub fn of(owner: i64, extended_types: bool) -> EphemeralType {
        if extended_types
            && owner & EXTENDED_MASK == EXTENDED_MASK
            && owner & RESERVED_BITS_MASK == 0
        {
            return EphemeralType::Ttl(owner & MAX_TTL_MS);
        }
        match owner {
            0 => EphemeralType::Void,
            CONTAINER_OWNER => EphemeralType::Container,
            _ => EphemeralType::Normal,
        }
    }
}

/// `EphemeralType.TTL.toEphemeralOwner`; `None` for a TTL outside `1..=MAX_TTL_MS`.
pub fn ttl_owner(ttl_ms: i64) -> Option<i64> {
    (1..=MAX_TTL_MS)
        .contains(&ttl_ms)
        .then_some(EXTENDED_MASK | ttl_ms)
}

/// `StatPersisted`: what the tree keeps per node. `cversion` here counts child
/// creations only; clients see `2 * cversion - numChildren` (`DataNode.copyStat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatPersisted {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: Zxid,
}

impl StatPersisted {
    /// `DataTree.createStat`.
    pub fn new(zxid: Zxid, time_ms: i64, ephemeral_owner: i64) -> Self {
        StatPersisted {
            czxid: zxid,
            mzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            pzxid: zxid,
        }
    }

    /// The client-visible `Stat` (`DataNode.copyStat`): containers and TTL nodes show
    /// ephemeralOwner 0.
    pub fn to_stat(&self, data_len: usize, num_children: usize, extended_types: bool) -> Stat {
        let num_children = i32::try_from(num_children).unwrap_or(i32::MAX);
        let owner = match EphemeralType::of(self.ephemeral_owner, extended_types) {
            EphemeralType::Normal => self.ephemeral_owner,
            _ => 0,
        };
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: self.aversion,
            ephemeral_owner: owner,
            data_length: i32::try_from(data_len).unwrap_or(i32::MAX),
            num_children,
            pzxid: self.pzxid,
        }
    }
}

/// One znode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// `None` is null data (a create or setData with a null buffer), which ZooKeeper
    /// keeps apart from empty data and hands back as null.
    /// Boxed, not a `Vec`: 8 bytes less per znode. With the one-word ACL and children
    /// this keeps `Node` at 96 bytes and `Arc<Node>` in the allocator's 112-byte class
    /// (a test below holds it there).
    pub data: Option<Box<[u8]>>,
    pub acl: AclList,
    pub stat: StatPersisted,
    pub children: Children,
}

/// A znode's children: their full paths, sharing the tree's keys (no string of their
/// own), sorted by path, which is by name, since they share this node's prefix.
/// Persistent, so a node with many children is cheap to copy when a snapshot still
/// shares it. Boxed and absent while empty: most znodes are leaves, and the set's
/// three words inline would put every `Arc<Node>` in a larger allocator class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Children(Option<Box<OrdSet<PathKey>>>);

impl Children {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    /// `insert`, `remove` and `from_iter` never leave an empty set boxed.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// In path order.
    pub fn iter(&self) -> impl Iterator<Item = &PathKey> {
        self.0.iter().flat_map(|s| s.iter())
    }

    /// False when an equal path was there already (now replaced by `child`).
    pub fn insert(&mut self, child: PathKey) -> bool {
        self.0.get_or_insert_default().insert(child).is_none()
    }

    pub fn remove(&mut self, child: &str) {
        if let Some(s) = &mut self.0 {
            s.remove(child);
            if s.is_empty() {
                self.0 = None;
            }
        }
    }
}

impl FromIterator<PathKey> for Children {
    fn from_iter<I: IntoIterator<Item = PathKey>>(iter: I) -> Self {
        let set: OrdSet<PathKey> = iter.into_iter().collect();
        Children((!set.is_empty()).then(|| Box::new(set)))
    }
}

impl Node {
    pub fn new(data: Option<Vec<u8>>, acl: AclList, stat: StatPersisted) -> Self {
        Node {
            // Free: decoded and prepped data has no spare capacity.
            data: data.map(Vec::into_boxed_slice),
            acl,
            stat,
            children: Children::default(),
        }
    }

    /// Null data counts as 0 bytes (dataLength, quotas), as in ZooKeeper.
    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    /// The children's names, in order.
    pub fn child_names(&self) -> impl Iterator<Item = &str> {
        self.children
            .iter()
            .map(|child| child.rsplit_once('/').map_or(&**child, |(_, name)| name))
    }

    pub fn client_stat(&self, extended_types: bool) -> Stat {
        self.stat
            .to_stat(self.data_len(), self.children.len(), extended_types)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_encodings() {
        assert_eq!(EphemeralType::of(0, true), EphemeralType::Void);
        assert_eq!(
            EphemeralType::of(CONTAINER_OWNER, false),
            EphemeralType::Container
        );
        assert_eq!(
            EphemeralType::of(0x0100_0000_0000_0001, true),
            EphemeralType::Normal
        );
        let t = ttl_owner(5000).unwrap();
        assert_eq!(t as u64, 0xff00_0000_0000_1388);
        assert_eq!(EphemeralType::of(t, true), EphemeralType::Ttl(5000));
        assert_eq!(EphemeralType::of(t, false), EphemeralType::Normal);
        assert_eq!(ttl_owner(0), None);
        assert_eq!(ttl_owner(MAX_TTL_MS + 1), None);
        assert!(ttl_owner(MAX_TTL_MS).is_some());
        assert_eq!(MAX_TTL_MS, 1_099_511_627_775);
    }

    #[test]
    fn a_node_fits_the_112_byte_allocator_class() {
        // Arc<Node> is the node plus two counts; one word more and every znode costs
        // the next class up (128 with glibc, 160 with mimalloc).
        assert!(
            std::mem::size_of::<Node>() <= 96,
            "{}",
            std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn children_stay_sorted_and_drop_their_set_when_emptied() {
        let mut c = Children::default();
        assert!(c.is_empty());
        for name in ["/p/b", "/p/c", "/p/a"] {
            c.insert(PathKey::from(name));
        }
        c.insert(PathKey::from("/p/a"));
        assert_eq!(c.len(), 3);
        let order: Vec<&str> = c.iter().map(|k| k.as_str()).collect();
        assert_eq!(order, ["/p/a", "/p/b", "/p/c"]);
        c.remove("/p/x");
        assert_eq!(c.len(), 3);
        for name in ["/p/a", "/p/b", "/p/c"] {
            c.remove(name);
        }
        // Emptied is the same state as never filled: trees that differ only in a
        // parent's history compare (and digest) equal.
        assert!(c.is_empty());
        assert_eq!(c, Children::default());
        let collected: Children = Vec::<PathKey>::new().into_iter().collect();
        assert_eq!(collected, Children::default());
        let collected: Children = [PathKey::from("/q")].into_iter().collect();
        assert_eq!(collected.len(), 1);
    }

    #[test]
    fn client_cversion_counts_changes() {
        let mut s = StatPersisted::new(1, 0, 0);
        s.cversion = 3; // three creates
        // one child left: 3 creates + 2 deletes = 5 changes
        assert_eq!(s.to_stat(0, 1, false).cversion, 5);
        let c = StatPersisted::new(1, 0, CONTAINER_OWNER);
        assert_eq!(c.to_stat(0, 0, false).ephemeral_owner, 0);
    }
}
