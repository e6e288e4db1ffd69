//! The small records every other record is built from: `Stat`, `Id`, `ACL`.

use crate::error::DecodeResult;
use crate::jute::{Reader, Record, Writer};

/// A znode's metadata, in jute's field order (which differs from the order the Java
/// `Stat.toString` prints: `dataLength` and `numChildren` come before `pzxid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    /// Encoded size: 6 longs and 5 ints.
    pub const WIRE_LEN: usize = 6 * 8 + 5 * 4;
}

impl Record for Stat {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(Stat {
            czxid: r.read_i64("stat.czxid")?,
            mzxid: r.read_i64("stat.mzxid")?,
            ctime: r.read_i64("stat.ctime")?,
            mtime: r.read_i64("stat.mtime")?,
            version: r.read_i32("stat.version")?,
            cversion: r.read_i32("stat.cversion")?,
            aversion: r.read_i32("stat.aversion")?,
            ephemeral_owner: r.read_i64("stat.ephemeralOwner")?,
            data_length: r.read_i32("stat.dataLength")?,
            num_children: r.read_i32("stat.numChildren")?,
            pzxid: r.read_i64("stat.pzxid")?,
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.write_i64(self.czxid);
        w.write_i64(self.mzxid);
        w.write_i64(self.ctime);
        w.write_i64(self.mtime);
        w.write_i32(self.version);
        w.write_i32(self.cversion);
        w.write_i32(self.aversion);
        w.write_i64(self.ephemeral_owner);
        w.write_i32(self.data_length);
        w.write_i32(self.num_children);
        w.write_i64(self.pzxid);
    }
}

/// An authentication identity: `scheme:id`, e.g. `world:anyone` or `digest:u:hash`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    pub fn anyone() -> Self {
        Id::new("world", "anyone")
    }
}

impl Record for Id {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(Id {
            scheme: r.read_string_opt("id.scheme")?.unwrap_or_default(),
            id: r.read_string_opt("id.id")?.unwrap_or_default(),
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.write_string(&self.scheme);
        w.write_string(&self.id);
    }
}

/// One ACL entry: a permission bitmask (`perms`) granted to an identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    /// Smallest encoding: perms plus two empty strings.
    pub const MIN_WIRE_LEN: usize = 4 + 4 + 4;

    pub fn new(perms: i32, id: Id) -> Self {
        Acl { perms, id }
    }

    /// `ZooDefs.Ids.OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::codes::perms::ALL, Id::anyone())]
    }

    /// `ZooDefs.Ids.READ_ACL_UNSAFE`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::codes::perms::READ, Id::anyone())]
    }
}

impl Record for Acl {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(Acl {
            perms: r.read_i32("acl.perms")?,
            id: Id::decode(r)?,
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.write_i32(self.perms);
        self.id.encode(w);
    }
}

/// Reads a `vector<ACL>`; null decodes as empty (ZooKeeper treats both as no ACL,
/// which it rejects with InvalidACL).
pub fn read_acl_list(r: &mut Reader<'_>, field: &'static str) -> DecodeResult<Vec<Acl>> {
    Ok(r.read_vec_opt(field, Acl::MIN_WIRE_LEN, Acl::decode)?
        .unwrap_or_default())
}

pub fn write_acl_list(w: &mut Writer, acl: &[Acl]) {
    w.write_vec_opt(Some(acl), |w, a| a.encode(w));
}
