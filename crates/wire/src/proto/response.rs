//! Server-to-client frames after the handshake: a [`ReplyHeader`] and, depending on the
//! request it answers, a body.
//!
//! Replies do not name their opcode, so decoding needs the opcode of the request being
//! answered; the special xids (notification, ping, auth, setWatches) decide by
//! themselves.

use super::records::*;
use crate::codes::{OpCode, xid};
use crate::error::{DecodeError, DecodeErrorKind, DecodeResult};
use crate::jute::{Reader, Record, Writer};

/// A reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: every error reply (ZooKeeper sends the header alone), and the success
    /// replies of delete, ping, auth, setWatches, checkWatches, removeWatches,
    /// closeSession and deleteContainer.
    Empty,
    /// xid -1.
    Notification(WatcherEvent),
    Create(CreateResponse),
    /// Answer to create2, createContainer and createTTL.
    Create2(Create2Response),
    Exists(ExistsResponse),
    GetData(GetDataResponse),
    /// Answer to setData, and to a stand-alone check (ZooKeeper sends the node's Stat).
    SetData(SetDataResponse),
    GetAcl(GetAclResponse),
    SetAcl(SetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    /// Sent with header err 0 even when the multi failed; see [`MultiResponse`].
    Multi(MultiResponse),
    MultiRead(MultiResponse),
    /// The new configuration as data.
    Reconfig(GetDataResponse),
    Sasl(SetSaslResponse),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    WhoAmI(WhoAmIResponse),
    /// addWatch is answered with a 4-byte `ErrorResponse{err: 0}` body
    /// (`FinalRequestProcessor`), not with the header alone.
    AddWatch(ErrorResponse),
}

impl Response {
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Notification(b) => b.encode(w),
            Response::Create(b) => b.encode(w),
            Response::Create2(b) => b.encode(w),
            Response::Exists(b) => b.encode(w),
            Response::GetData(b) | Response::Reconfig(b) => b.encode(w),
            Response::SetData(b) => b.encode(w),
            Response::GetAcl(b) => b.encode(w),
            Response::SetAcl(b) => b.encode(w),
            Response::GetChildren(b) => b.encode(w),
            Response::GetChildren2(b) => b.encode(w),
            Response::Sync(b) => b.encode(w),
            Response::Multi(b) | Response::MultiRead(b) => b.encode(w),
            Response::Sasl(b) => b.encode(w),
            Response::GetEphemerals(b) => b.encode(w),
            Response::GetAllChildrenNumber(b) => b.encode(w),
            Response::WhoAmI(b) => b.encode(w),
            Response::AddWatch(b) => b.encode(w),
        }
    }
}

/// The result of one operation of a multi or multiRead, tagged on the wire with the
/// [`MultiHeader`] type given beside each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// type 1.
    Create(CreateResponse),
    /// type 15. ZooKeeper answers create2, createContainer and createTTL sub-ops alike
    /// with this (`OpResult.CreateResult(path, stat)` has type create2), and the Java
    /// client rejects any other create type here, so 19 and 21 never appear.
    Create2(Create2Response),
    /// type 2, no body.
    Delete,
    /// type 5.
    SetData(SetDataResponse),
    /// type 13, no body.
    Check,
    /// type 4 (multiRead).
    GetData(GetDataResponse),
    /// type 8 (multiRead).
    GetChildren(GetChildrenResponse),
    /// type -1 with `ErrorResponse{err}`; the header's err carries the same code.
    Error(i32),
}

impl OpResult {
    /// The [`MultiHeader`] type this result is written with.
    pub fn op_type(&self) -> i32 {
        match self {
            OpResult::Create(_) => OpCode::Create.as_i32(),
            OpResult::Create2(_) => OpCode::Create2.as_i32(),
            OpResult::Delete => OpCode::Delete.as_i32(),
            OpResult::SetData(_) => OpCode::SetData.as_i32(),
            OpResult::Check => OpCode::Check.as_i32(),
            OpResult::GetData(_) => OpCode::GetData.as_i32(),
            OpResult::GetChildren(_) => OpCode::GetChildren.as_i32(),
            OpResult::Error(_) => OpCode::Error.as_i32(),
        }
    }
}

/// The per-operation results of a multi or multiRead.
///
/// A failed multi is still a reply with header err 0: every result is
/// [`OpResult::Error`], OK (0) for the ops before the failing one, its error for the
/// failing op, RuntimeInconsistency (-2) for those after it. The list ends with a
/// [`MultiHeader::END`]; like Java, decoding ignores the err of non-error headers and
/// the type of the end marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiResponse {
    pub results: Vec<OpResult>,
}

impl Record for MultiResponse {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let mut results = Vec::new();
        loop {
            let at = r.offset();
            let h = MultiHeader::decode(r)?;
            if h.done {
                break;
            }
            let result = match OpCode::from_i32(h.op_type) {
                Some(OpCode::Create) => OpResult::Create(CreateResponse::decode(r)?),
                Some(OpCode::Create2) => OpResult::Create2(Create2Response::decode(r)?),
                Some(OpCode::Delete) => OpResult::Delete,
                Some(OpCode::SetData) => OpResult::SetData(SetDataResponse::decode(r)?),
                Some(OpCode::Check) => OpResult::Check,
                Some(OpCode::GetData) => OpResult::GetData(GetDataResponse::decode(r)?),
                Some(OpCode::GetChildren) => OpResult::GetChildren(GetChildrenResponse::decode(r)?),
                Some(OpCode::Error) => OpResult::Error(ErrorResponse::decode(r)?.err),
                _ => {
                    return Err(DecodeError {
                        field: "MultiHeader.type",
                        offset: at,
                        kind: DecodeErrorKind::UnknownValue(i64::from(h.op_type)),
                    });
                }
            };
            results.push(result);
        }
        Ok(MultiResponse { results })
    }

    fn encode(&self, w: &mut Writer) {
        for result in &self.results {
            let err = match result {
                OpResult::Error(e) => *e,
                _ => 0,
            };
            MultiHeader {
                op_type: result.op_type(),
                done: false,
                err,
            }
            .encode(w);
            match result {
                OpResult::Create(b) => b.encode(w),
                OpResult::Create2(b) => b.encode(w),
                OpResult::SetData(b) => b.encode(w),
                OpResult::GetData(b) => b.encode(w),
                OpResult::GetChildren(b) => b.encode(w),
                OpResult::Error(e) => ErrorResponse { err: *e }.encode(w),
                OpResult::Delete | OpResult::Check => {}
            }
        }
        MultiHeader::END.encode(w);
    }
}

/// One decoded server frame (after the handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerResponse {
    pub header: ReplyHeader,
    pub body: Response,
}

impl ServerResponse {
    /// The frame payload (without the length prefix); the inverse of [`decode_response`].
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.header.encode(&mut w);
        self.body.encode_body(&mut w);
        w.into_inner()
    }
}

/// Decodes one reply frame's payload (without its 4-byte length).
///
/// `request_op` is the opcode of the request this answers (the client matches replies
/// to requests by order); it is ignored for the special xids -1 (notification), -2
/// (ping), -4 (auth) and -8 (setWatches). A reply with a non-zero err and nothing after
/// the header decodes as [`Response::Empty`]. ZooKeeper does send a body with an error
/// in one place (a null [`SetSaslResponse`] with AuthFailed), so a body after an error
/// is decoded by `request_op` like any other.
pub fn decode_response(request_op: OpCode, payload: &[u8]) -> DecodeResult<ServerResponse> {
    let mut r = Reader::new(payload);
    let header = ReplyHeader::decode(&mut r)?;
    let body = match header.xid {
        xid::NOTIFICATION => Response::Notification(WatcherEvent::decode(&mut r)?),
        xid::PING | xid::AUTH | xid::SET_WATCHES => Response::Empty,
        _ if header.err != 0 && r.is_empty() => Response::Empty,
        _ => decode_body(request_op, &mut r)?,
    };
    r.finish("ServerResponse.body")?;
    Ok(ServerResponse { header, body })
}

fn decode_body(op: OpCode, r: &mut Reader<'_>) -> DecodeResult<Response> {
    use OpCode as O;
    Ok(match op {
        O::Create => Response::Create(CreateResponse::decode(r)?),
        O::Create2 | O::CreateContainer | O::CreateTtl => {
            Response::Create2(Create2Response::decode(r)?)
        }
        O::Exists => Response::Exists(ExistsResponse::decode(r)?),
        O::GetData => Response::GetData(GetDataResponse::decode(r)?),
        O::SetData => Response::SetData(SetDataResponse::decode(r)?),
        // A stand-alone check carries a Stat when it succeeds; tolerate its absence.
        O::Check if r.is_empty() => Response::Empty,
        O::Check => Response::SetData(SetDataResponse::decode(r)?),
        O::GetAcl => Response::GetAcl(GetAclResponse::decode(r)?),
        O::SetAcl => Response::SetAcl(SetAclResponse::decode(r)?),
        O::GetChildren => Response::GetChildren(GetChildrenResponse::decode(r)?),
        O::GetChildren2 => Response::GetChildren2(GetChildren2Response::decode(r)?),
        O::Sync => Response::Sync(SyncResponse::decode(r)?),
        O::Multi => Response::Multi(MultiResponse::decode(r)?),
        O::MultiRead => Response::MultiRead(MultiResponse::decode(r)?),
        O::Reconfig => Response::Reconfig(GetDataResponse::decode(r)?),
        O::Sasl => Response::Sasl(SetSaslResponse::decode(r)?),
        O::GetEphemerals => Response::GetEphemerals(GetEphemeralsResponse::decode(r)?),
        O::GetAllChildrenNumber => {
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse::decode(r)?)
        }
        O::WhoAmI => Response::WhoAmI(WhoAmIResponse::decode(r)?),
        O::AddWatch => Response::AddWatch(ErrorResponse::decode(r)?),
        O::Delete
        | O::DeleteContainer
        | O::Ping
        | O::CheckWatches
        | O::RemoveWatches
        | O::Auth
        | O::SetWatches
        | O::SetWatches2
        | O::CloseSession
        | O::Notification
        | O::CreateSession
        | O::Error => Response::Empty,
    })
}
