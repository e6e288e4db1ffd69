//! What simulated clients ask for, and the request payload a learner forwards to the
//! leader ([`rookery_zab::peer::Peer::forward`] carries opaque bytes; this is ours).

use rookery_tree::{CreateKind, Op, SessionId};
use rookery_wire::{Acl, CreateMode};

use crate::rng::Rng;

/// Sessions the simulated clients write under (each needs a CreateSession first).
pub const CLIENTS: u64 = 4;

/// One client write. Paths are unique per request (or sequential), data names the
/// request, so every Txn payload is distinct and a lost or duplicated one shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Create { path: String, sequential: bool },
    SetData { path: String, version: i32 },
    Delete { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    pub session: SessionId,
    pub req_id: u64,
    pub op: WriteOp,
}

impl ClientRequest {
    /// A random write by a random client; `known` are paths that were created at some
    /// point (they may be gone by now: then the write fails in prep, which is fine).
    pub fn random(rng: &mut Rng, req_id: u64, known: &[String]) -> ClientRequest {
        let client = rng.below(CLIENTS);
        let session = session_of(client);
        let target = rng.pick(known).cloned();
        let op = match (rng.below(10), target) {
            (0..=1, _) | (_, None) => WriteOp::Create {
                path: format!("/c{client}-{req_id}"),
                sequential: false,
            },
            (2, _) => WriteOp::Create {
                path: "/q-".to_owned(),
                sequential: true,
            },
            (3..=7, Some(path)) => WriteOp::SetData {
                path,
                // Mostly unconditional; sometimes a guessed version (BadVersion is fine).
                version: if rng.permille(700) {
                    -1
                } else {
                    rng.below(3) as i32
                },
            },
            (_, Some(path)) => WriteOp::Delete { path },
        };
        ClientRequest {
            session,
            req_id,
            op,
        }
    }

    pub fn data(&self) -> Vec<u8> {
        format!("r{}", self.req_id).into_bytes()
    }

    /// The tree operation prep checks.
    pub fn to_op(&self) -> Op {
        match &self.op {
            WriteOp::Create { path, sequential } => Op::Create {
                kind: CreateKind::Create,
                path: path.clone(),
                data: Some(self.data()),
                acl: Acl::open_unsafe(),
                mode: if *sequential {
                    CreateMode::PersistentSequential
                } else {
                    CreateMode::Persistent
                },
                ttl_ms: None,
            },
            WriteOp::SetData { path, version } => Op::SetData {
                path: path.clone(),
                data: Some(self.data()),
                version: *version,
            },
            WriteOp::Delete { path } => Op::Delete {
                path: path.clone(),
                version: -1,
            },
        }
    }

    /// `session, req_id, tag, [version], path`, big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&self.req_id.to_be_bytes());
        let (tag, version, path) = match &self.op {
            WriteOp::Create {
                path,
                sequential: false,
            } => (0u8, 0, path),
            WriteOp::Create {
                path,
                sequential: true,
            } => (1, 0, path),
            WriteOp::SetData { path, version } => (2, *version, path),
            WriteOp::Delete { path } => (3, 0, path),
        };
        out.push(tag);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(path.as_bytes());
        out
    }

    /// `None` for bytes [`ClientRequest::encode`] did not produce.
    pub fn decode(bytes: &[u8]) -> Option<ClientRequest> {
        let (session, rest) = bytes.split_first_chunk::<8>()?;
        let (req_id, rest) = rest.split_first_chunk::<8>()?;
        let (tag, rest) = rest.split_first()?;
        let (version, rest) = rest.split_first_chunk::<4>()?;
        let path = String::from_utf8(rest.to_vec()).ok()?;
        let version = i32::from_be_bytes(*version);
        let op = match tag {
            0 => WriteOp::Create {
                path,
                sequential: false,
            },
            1 => WriteOp::Create {
                path,
                sequential: true,
            },
            2 => WriteOp::SetData { path, version },
            3 => WriteOp::Delete { path },
            _ => return None,
        };
        Some(ClientRequest {
            session: i64::from_be_bytes(*session),
            req_id: u64::from_be_bytes(*req_id),
            op,
        })
    }
}

/// ZooKeeper-shaped session ids (server id in the top byte), one per client.
pub fn session_of(client: u64) -> SessionId {
    (0x0100_0000_0000_0000_u64 | (client + 1)) as SessionId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let mut rng = Rng::new(7);
        let known = vec!["/a".to_owned(), "/b".to_owned()];
        for i in 0..200 {
            let r = ClientRequest::random(&mut rng, i, &known);
            assert_eq!(ClientRequest::decode(&r.encode()), Some(r));
        }
        assert_eq!(ClientRequest::decode(&[1, 2, 3]), None);
    }
}
