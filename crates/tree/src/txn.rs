//! Transactions: what prep decides and every server applies, their binary log format,
//! and the client-visible results apply produces.

use rookery_wire::{Acl, ErrorCode, EventType, OpCode, Stat};

use crate::acl::AclList;
use crate::codec::{CodecError, Dec, Enc};
use crate::node::{SessionId, Zxid};

/// Which create opcode a request arrived with; results echo it (clients such as
/// go-zookeeper only understand the opcode they sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    /// `create` (1): the result is `CreateResponse{path}`.
    Create,
    /// `create2` (15): `Create2Response{path, stat}`.
    Create2,
    /// `createContainer` (19): `Create2Response`; the node is always a container.
    CreateContainer,
    /// `createTTL` (21): `Create2Response`.
    CreateTtl,
}

impl CreateKind {
    pub fn opcode(self) -> OpCode {
        match self {
            CreateKind::Create => OpCode::Create,
            CreateKind::Create2 => OpCode::Create2,
            CreateKind::CreateContainer => OpCode::CreateContainer,
            CreateKind::CreateTtl => OpCode::CreateTtl,
        }
    }

    pub fn from_opcode(op: OpCode) -> Option<CreateKind> {
        match op {
            OpCode::Create => Some(CreateKind::Create),
            OpCode::Create2 => Some(CreateKind::Create2),
            OpCode::CreateContainer => Some(CreateKind::CreateContainer),
            OpCode::CreateTtl => Some(CreateKind::CreateTtl),
            _ => None,
        }
    }

    /// Whether the response carries a Stat (`Create2Response`).
    pub fn returns_stat(self) -> bool {
        self != CreateKind::Create
    }
}

/// `delete` from a client, or `deleteContainer` from the server's container/TTL reaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteKind {
    Delete,
    DeleteContainer,
}

/// Ordering metadata of a Txn, fixed by the leader. `time_ms` is the leader's wall
/// clock when it prepped the request; every server uses it for ctime/mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxnHeader {
    pub session_id: SessionId,
    pub cxid: i32,
    pub zxid: Zxid,
    pub time_ms: i64,
}

/// A state change. Everything that can fail was decided by prep, so applying a Txn
/// that prep produced always succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout_ms: i32,
    },
    /// Deletes the listed ephemerals (and any other the session still owns) and ends
    /// the session.
    CloseSession {
        paths: Vec<String>,
    },
    Create {
        kind: CreateKind,
        path: String,
        /// `None` is null data.
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        /// The parent's stored cversion after this create.
        parent_cversion: i32,
    },
    Delete {
        kind: DeleteKind,
        path: String,
    },
    SetData {
        path: String,
        /// `None` is null data.
        data: Option<Vec<u8>>,
        /// The node's version after the change.
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        /// The node's aversion after the change.
        version: i32,
    },
    /// A `check` inside a multi; changes nothing.
    Check {
        path: String,
        version: i32,
    },
    /// New dynamic configuration: sets `/zookeeper/config` with version -1, as
    /// ZooKeeper's reconfig does.
    Reconfig {
        data: Vec<u8>,
    },
    /// All sub-Txns share one zxid. A failed multi holds only `Error` entries
    /// (`Ok` before the failing op, its error, `RuntimeInconsistency` after).
    Multi(Vec<Txn>),
    /// A request that failed in prep but is logged anyway, as ZooKeeper does.
    Error(ErrorCode),
}

/// The client-visible result of one applied Txn (or sub-Txn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Create {
        kind: CreateKind,
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    Check,
    /// Reply to reconfig: the server sends `GetDataResponse{data, stat}`.
    Reconfig {
        data: Vec<u8>,
        stat: Stat,
    },
    CreateSession,
    CloseSession,
    /// Per-op results; a failed multi has only `Error` entries.
    Multi(Vec<OpResult>),
    /// `ErrorResult` inside a multi, or the reply error of a single op.
    Error(ErrorCode),
}

impl OpResult {
    /// The `ReplyHeader.err` ZooKeeper sends: the error of a failed single op, and 0
    /// for any multi (clients read the per-op results).
    pub fn reply_err(&self) -> ErrorCode {
        match self {
            OpResult::Error(e) => *e,
            _ => ErrorCode::Ok,
        }
    }
}

/// A watch trigger caused by apply, as DataTree.triggerWatch calls. `acl` is the ACL
/// of the node the event is about (the parent for NodeChildrenChanged): ZooKeeper
/// 3.9 delivers an event only to watchers with READ on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: String,
    pub event_type: EventType,
    pub zxid: Zxid,
    /// The node's ACL, shared with the tree: watchers without READ get no event.
    pub acl: AclList,
}

/// What applying one Txn produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyResult {
    pub header: TxnHeader,
    pub result: OpResult,
    /// In the order ZooKeeper triggers them.
    pub triggers: Vec<WatchTrigger>,
}

/// Why a logged Txn could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnDecodeError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("unknown txn format version {0}")]
    Version(u8),
    #[error("unknown txn tag {0}")]
    Tag(u8),
    #[error("unknown error code {0}")]
    ErrorCode(i32),
    #[error("multi nested inside multi")]
    NestedMulti,
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Version 2 can carry null znode data (length u32::MAX in Create and SetData);
/// version 1, which could not, is still decoded.
const TXN_VERSION: u8 = 2;

mod tag {
    pub(super) const CREATE_SESSION: u8 = 1;
    pub(super) const CLOSE_SESSION: u8 = 2;
    pub(super) const CREATE: u8 = 3;
    pub(super) const DELETE: u8 = 4;
    pub(super) const SET_DATA: u8 = 5;
    pub(super) const SET_ACL: u8 = 6;
    pub(super) const CHECK: u8 = 7;
    pub(super) const RECONFIG: u8 = 8;
    pub(super) const MULTI: u8 = 9;
    pub(super) const ERROR: u8 = 10;
}

impl Txn {
    /// The log format: a version byte, then the Txn.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(TXN_VERSION);
        self.encode_into(&mut e);
        e.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Txn, TxnDecodeError> {
        let mut d = Dec::new(bytes);
        let v = d.u8()?;
        if v != 1 && v != TXN_VERSION {
            return Err(TxnDecodeError::Version(v));
        }
        let t = Txn::decode_from(&mut d, v, false)?;
        if d.remaining() != 0 {
            return Err(TxnDecodeError::Trailing(d.remaining()));
        }
        Ok(t)
    }

    /// About the bytes [`Txn::encode_into`] writes (a little more): the variable parts
    /// plus a fixed allowance per record.
    fn size_hint(&self) -> usize {
        const FIXED: usize = 32;
        let acl = |acl: &[Acl]| {
            acl.iter()
                .map(|a| 12 + a.id.scheme.len() + a.id.id.len())
                .sum::<usize>()
        };
        let data = |d: &Option<Vec<u8>>| d.as_ref().map_or(0, Vec::len);
        FIXED
            + match self {
                Txn::CreateSession { .. } | Txn::Error(_) => 0,
                Txn::CloseSession { paths } => paths.iter().map(|p| 4 + p.len()).sum(),
                Txn::Create {
                    path,
                    data: d,
                    acl: a,
                    ..
                } => path.len() + data(d) + acl(a),
                Txn::Delete { path, .. } | Txn::Check { path, .. } => path.len(),
                Txn::SetData { path, data: d, .. } => path.len() + data(d),
                Txn::SetAcl { path, acl: a, .. } => path.len() + acl(a),
                Txn::Reconfig { data } => data.len(),
                Txn::Multi(txns) => txns.iter().map(Txn::size_hint).sum(),
            }
    }

    pub(crate) fn encode_into(&self, e: &mut Enc) {
        match self {
            Txn::CreateSession { timeout_ms } => {
                e.u8(tag::CREATE_SESSION);
                e.i32(*timeout_ms);
            }
            Txn::CloseSession { paths } => {
                e.u8(tag::CLOSE_SESSION);
                e.len(paths.len());
                for p in paths {
                    e.str(p);
                }
            }
            Txn::Create {
                kind,
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                e.u8(tag::CREATE);
                e.i32(kind.opcode().as_i32());
                e.str(path);
                e.opt_bytes(data.as_deref());
                e.acl(acl);
                e.i64(*ephemeral_owner);
                e.i32(*parent_cversion);
            }
            Txn::Delete { kind, path } => {
                e.u8(tag::DELETE);
                e.u8(match kind {
                    DeleteKind::Delete => 0,
                    DeleteKind::DeleteContainer => 1,
                });
                e.str(path);
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                e.u8(tag::SET_DATA);
                e.str(path);
                e.opt_bytes(data.as_deref());
                e.i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                e.u8(tag::SET_ACL);
                e.str(path);
                e.acl(acl);
                e.i32(*version);
            }
            Txn::Check { path, version } => {
                e.u8(tag::CHECK);
                e.str(path);
                e.i32(*version);
            }
            Txn::Reconfig { data } => {
                e.u8(tag::RECONFIG);
                e.bytes(data);
            }
            Txn::Multi(txns) => {
                e.u8(tag::MULTI);
                e.len(txns.len());
                for t in txns {
                    t.encode_into(e);
                }
            }
            Txn::Error(code) => {
                e.u8(tag::ERROR);
                e.i32(code.as_i32());
            }
        }
    }

    fn decode_from(d: &mut Dec<'_>, version: u8, in_multi: bool) -> Result<Txn, TxnDecodeError> {
        let t = d.u8()?;
        let data = |d: &mut Dec<'_>| match version {
            1 => d.bytes().map(Some),
            _ => d.opt_bytes(),
        };
        Ok(match t {
            tag::CREATE_SESSION => Txn::CreateSession {
                timeout_ms: d.i32()?,
            },
            tag::CLOSE_SESSION => {
                let n = d.count(4)?;
                let mut paths = Vec::with_capacity(n);
                for _ in 0..n {
                    paths.push(d.str()?);
                }
                Txn::CloseSession { paths }
            }
            tag::CREATE => {
                let op = d.i32()?;
                let kind = OpCode::from_i32(op)
                    .and_then(CreateKind::from_opcode)
                    .ok_or(TxnDecodeError::Tag(t))?;
                Txn::Create {
                    kind,
                    path: d.str()?,
                    data: data(d)?,
                    acl: d.acl()?,
                    ephemeral_owner: d.i64()?,
                    parent_cversion: d.i32()?,
                }
            }
            tag::DELETE => {
                let kind = match d.u8()? {
                    0 => DeleteKind::Delete,
                    1 => DeleteKind::DeleteContainer,
                    _ => return Err(TxnDecodeError::Tag(t)),
                };
                Txn::Delete {
                    kind,
                    path: d.str()?,
                }
            }
            tag::SET_DATA => Txn::SetData {
                path: d.str()?,
                data: data(d)?,
                version: d.i32()?,
            },
            tag::SET_ACL => Txn::SetAcl {
                path: d.str()?,
                acl: d.acl()?,
                version: d.i32()?,
            },
            tag::CHECK => Txn::Check {
                path: d.str()?,
                version: d.i32()?,
            },
            tag::RECONFIG => Txn::Reconfig { data: d.bytes()? },
            tag::MULTI => {
                if in_multi {
                    return Err(TxnDecodeError::NestedMulti);
                }
                let n = d.count(5)?;
                let mut txns = Vec::with_capacity(n);
                for _ in 0..n {
                    txns.push(Txn::decode_from(d, version, true)?);
                }
                Txn::Multi(txns)
            }
            tag::ERROR => {
                let c = d.i32()?;
                Txn::Error(ErrorCode::from_i32(c).ok_or(TxnDecodeError::ErrorCode(c))?)
            }
            _ => return Err(TxnDecodeError::Tag(t)),
        })
    }
}

impl TxnHeader {
    pub const WIRE_LEN: usize = 8 + 4 + 8 + 8;

    pub fn encode(&self) -> [u8; Self::WIRE_LEN] {
        // Straight into the array: this runs for every Txn, and a growing Vec here was
        // an allocation per write (docs/performance.md).
        let mut out = [0u8; Self::WIRE_LEN];
        out[0..8].copy_from_slice(&self.session_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.cxid.to_be_bytes());
        out[12..20].copy_from_slice(&self.zxid.to_be_bytes());
        out[20..28].copy_from_slice(&self.time_ms.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TxnHeader, TxnDecodeError> {
        let mut d = Dec::new(bytes);
        let h = TxnHeader {
            session_id: d.i64()?,
            cxid: d.i32()?,
            zxid: d.i64()?,
            time_ms: d.i64()?,
        };
        if d.remaining() != 0 {
            return Err(TxnDecodeError::Trailing(d.remaining()));
        }
        Ok(h)
    }
}

/// A log entry: header then Txn, so one blob carries everything apply needs.
pub fn encode_entry(header: &TxnHeader, txn: &Txn) -> Vec<u8> {
    // One buffer, sized up front: a write's data is copied once, not grown into and
    // then copied again (the write path's profile showed both; docs/performance.md).
    let mut e = Enc {
        buf: Vec::with_capacity(TxnHeader::WIRE_LEN + 1 + txn.size_hint()),
    };
    e.buf.extend_from_slice(&header.encode());
    e.u8(TXN_VERSION);
    txn.encode_into(&mut e);
    e.buf
}

/// The new configuration text if `bytes` is a reconfiguration entry. Looks at the tag
/// first: the consensus core asks this of every entry it logs and commits.
pub fn reconfig_in_entry(bytes: &[u8]) -> Option<Vec<u8>> {
    // The header, the Txn's format version, then its tag.
    if bytes.get(TxnHeader::WIRE_LEN + 1) != Some(&tag::RECONFIG) {
        return None;
    }
    match decode_entry(bytes) {
        Ok((_, Txn::Reconfig { data })) => Some(data),
        _ => None,
    }
}

pub fn decode_entry(bytes: &[u8]) -> Result<(TxnHeader, Txn), TxnDecodeError> {
    if bytes.len() < TxnHeader::WIRE_LEN {
        return Err(CodecError::Truncated(bytes.len()).into());
    }
    let (h, t) = bytes.split_at(TxnHeader::WIRE_LEN);
    Ok((TxnHeader::decode(h)?, Txn::decode(t)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;
    use rookery_wire::Id;

    #[test]
    fn reconfig_entries_are_recognised_by_their_tag() {
        let header = TxnHeader {
            session_id: 1,
            cxid: 2,
            zxid: 3,
            time_ms: 4,
        };
        let data = b"server.1=a:1:2:participant\nversion=3".to_vec();
        let entry = encode_entry(&header, &Txn::Reconfig { data: data.clone() });
        assert_eq!(reconfig_in_entry(&entry), Some(data));
        for txn in samples() {
            if !matches!(txn, Txn::Reconfig { .. }) {
                assert_eq!(
                    reconfig_in_entry(&encode_entry(&header, &txn)),
                    None,
                    "{txn:?}"
                );
            }
        }
        assert_eq!(reconfig_in_entry(&entry[..TxnHeader::WIRE_LEN + 2]), None);
    }

    pub(crate) fn samples() -> Vec<Txn> {
        let acl = vec![
            Acl::new(31, Id::anyone()),
            Acl::new(1, Id::new("digest", "u:h=")),
        ];
        vec![
            Txn::CreateSession { timeout_ms: 30000 },
            Txn::CloseSession {
                paths: vec!["/a".into(), "/b/c".into()],
            },
            Txn::Create {
                kind: CreateKind::CreateTtl,
                path: "/x".into(),
                data: Some(b"hello".to_vec()),
                acl: acl.clone(),
                ephemeral_owner: -1,
                parent_cversion: i32::MIN,
            },
            Txn::Create {
                kind: CreateKind::Create,
                path: "/null".into(),
                data: None,
                acl: acl.clone(),
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
            Txn::Delete {
                kind: DeleteKind::DeleteContainer,
                path: "/x".into(),
            },
            Txn::SetData {
                path: "/x".into(),
                data: Some(vec![]),
                version: 7,
            },
            Txn::SetData {
                path: "/x".into(),
                data: None,
                version: 8,
            },
            Txn::SetAcl {
                path: "/x".into(),
                acl,
                version: 2,
            },
            Txn::Check {
                path: "/x".into(),
                version: 3,
            },
            Txn::Reconfig {
                data: b"server.1=a:1:2".to_vec(),
            },
            Txn::Multi(vec![
                Txn::Error(ErrorCode::Ok),
                Txn::Error(ErrorCode::NoNode),
                Txn::Error(ErrorCode::RuntimeInconsistency),
            ]),
            Txn::Multi(vec![]),
            Txn::Error(ErrorCode::BadVersion),
        ]
    }

    #[test]
    fn round_trip_every_variant() {
        for t in samples() {
            let b = t.encode();
            assert_eq!(Txn::decode(&b).unwrap(), t);
            let h = TxnHeader {
                session_id: 0x1234,
                cxid: -5,
                zxid: 1 << 32 | 9,
                time_ms: 1_700_000_000_000,
            };
            assert_eq!(decode_entry(&encode_entry(&h, &t)).unwrap(), (h, t.clone()));
            // Every strict prefix is an error, never a panic.
            for i in 0..b.len() {
                assert!(Txn::decode(&b[..i]).is_err(), "prefix {i} of {t:?}");
            }
        }
    }

    #[test]
    fn corrupt_inputs_are_errors() {
        assert_eq!(
            Txn::decode(&[3, 1, 0, 0, 0, 0]),
            Err(TxnDecodeError::Version(3))
        );
        assert_eq!(Txn::decode(&[1, 99]), Err(TxnDecodeError::Tag(99)));
        let nested = [1, tag::MULTI, 0, 0, 0, 1, tag::MULTI, 0, 0, 0, 0];
        assert_eq!(Txn::decode(&nested), Err(TxnDecodeError::NestedMulti));
        let mut b = Txn::Error(ErrorCode::NoNode).encode();
        b.push(0);
        assert_eq!(Txn::decode(&b), Err(TxnDecodeError::Trailing(1)));
        // A huge declared length is rejected before allocating.
        let huge = [1, tag::RECONFIG, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Txn::decode(&huge),
            Err(TxnDecodeError::Codec(CodecError::BadLength { .. }))
        ));
        assert_eq!(
            Txn::decode(&[1, tag::ERROR, 0, 0, 0, 5]),
            Err(TxnDecodeError::ErrorCode(5))
        );
    }

    #[test]
    fn null_data_is_not_empty_data() {
        let set = |data| Txn::SetData {
            path: "/x".into(),
            data,
            version: 1,
        };
        let null = set(None).encode();
        let empty = set(Some(vec![])).encode();
        assert_ne!(null, empty);
        assert_eq!(Txn::decode(&null).unwrap(), set(None));
        assert_eq!(Txn::decode(&empty).unwrap(), set(Some(vec![])));
        // Null is the jute length -1 where the data length goes.
        let at = 1 + 1 + 4 + 2;
        assert_eq!(null[at..at + 4], [0xff; 4]);
    }

    #[test]
    fn version_1_logs_still_decode() {
        // Version 1 wrote data as plain bytes, and non-null data is unchanged in v2.
        let t = Txn::Multi(vec![
            Txn::Create {
                kind: CreateKind::Create2,
                path: "/a".into(),
                data: Some(b"v".to_vec()),
                acl: vec![],
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
            Txn::SetData {
                path: "/a".into(),
                data: Some(vec![]),
                version: 1,
            },
        ]);
        let mut v1 = t.encode();
        v1[0] = 1;
        assert_eq!(Txn::decode(&v1).unwrap(), t);
        // Version 1 had no null: its marker there is a bad length, as it always was.
        let mut v1_null = Txn::SetData {
            path: "/x".into(),
            data: None,
            version: 1,
        }
        .encode();
        v1_null[0] = 1;
        assert!(matches!(
            Txn::decode(&v1_null),
            Err(TxnDecodeError::Codec(CodecError::BadLength { .. }))
        ));
    }

    fn arb_leaf() -> impl proptest::strategy::Strategy<Value = Txn> {
        use proptest::prelude::*;
        let path = "/[a-z]{0,6}(/[a-z0-9]{1,4}){0,2}";
        let data = proptest::collection::vec(any::<u8>(), 0..16);
        let opt_data = proptest::option::of(data.clone());
        let acl = proptest::collection::vec(
            (any::<i32>(), "[a-z]{0,5}", ".{0,8}")
                .prop_map(|(p, s, i)| Acl::new(p, rookery_wire::Id::new(s, i))),
            0..3,
        );
        let kind = prop_oneof![
            Just(CreateKind::Create),
            Just(CreateKind::Create2),
            Just(CreateKind::CreateContainer),
            Just(CreateKind::CreateTtl)
        ];
        prop_oneof![
            any::<i32>().prop_map(|timeout_ms| Txn::CreateSession { timeout_ms }),
            proptest::collection::vec(path, 0..3).prop_map(|paths| Txn::CloseSession { paths }),
            (
                kind,
                path,
                opt_data.clone(),
                acl.clone(),
                any::<i64>(),
                any::<i32>()
            )
                .prop_map(
                    |(kind, path, data, acl, ephemeral_owner, parent_cversion)| Txn::Create {
                        kind,
                        path,
                        data,
                        acl,
                        ephemeral_owner,
                        parent_cversion
                    }
                ),
            (any::<bool>(), path).prop_map(|(c, path)| Txn::Delete {
                kind: if c {
                    DeleteKind::DeleteContainer
                } else {
                    DeleteKind::Delete
                },
                path
            }),
            (path, opt_data, any::<i32>()).prop_map(|(path, data, version)| Txn::SetData {
                path,
                data,
                version
            }),
            (path, acl, any::<i32>()).prop_map(|(path, acl, version)| Txn::SetAcl {
                path,
                acl,
                version
            }),
            (path, any::<i32>()).prop_map(|(path, version)| Txn::Check { path, version }),
            data.prop_map(|data| Txn::Reconfig { data }),
            proptest::sample::select(ErrorCode::ALL).prop_map(Txn::Error),
        ]
    }

    proptest::proptest! {
        #[test]
        fn random_txns_round_trip(
            t in proptest::prop_oneof![
                arb_leaf(),
                proptest::collection::vec(arb_leaf(), 0..4).prop_map(Txn::Multi)
            ]
        ) {
            proptest::prop_assert_eq!(Txn::decode(&t.encode()).unwrap(), t);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = Txn::decode(&bytes);
            let _ = decode_entry(&bytes);
        }
    }
}
