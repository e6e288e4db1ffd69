//! Client-to-server frames after the handshake: a [`RequestHeader`] and the body its
//! opcode names.

use super::records::*;
use crate::codes::OpCode;
use crate::error::{DecodeErrorKind, DecodeResult};
use crate::jute::{Reader, Record, Writer};

/// A request body, by opcode. The variant is the opcode: create, create2 and
/// createContainer share a body record but are answered differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// op 1, answered with [`CreateResponse`].
    Create(CreateRequest),
    /// op 15, answered with [`Create2Response`].
    Create2(CreateRequest),
    /// op 19.
    CreateContainer(CreateRequest),
    /// op 21.
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    Sync(SyncRequest),
    /// xid -2, no body.
    Ping,
    Check(CheckVersionRequest),
    /// op 14: write operations, committed all or nothing.
    Multi(MultiRequest),
    /// op 22: read operations (getData, getChildren), each answered on its own.
    MultiRead(MultiRequest),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    /// xid -4.
    Auth(AuthPacket),
    /// xid -8.
    SetWatches(SetWatches),
    /// xid -8.
    SetWatches2(SetWatches2),
    Sasl(GetSaslRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    AddWatch(AddWatchRequest),
    /// No body.
    WhoAmI,
    /// No body; the client's way of ending its session.
    CloseSession,
    DeleteContainer(DeleteContainerRequest),
    /// Any opcode a client may not send (or that does not exist): the body is kept raw
    /// so the server can answer Unimplemented and the bytes still round-trip.
    Unknown {
        op: i32,
        body: Vec<u8>,
    },
}

impl Request {
    pub fn op_code(&self) -> i32 {
        use OpCode as O;
        let op = match self {
            Request::Create(_) => O::Create,
            Request::Create2(_) => O::Create2,
            Request::CreateContainer(_) => O::CreateContainer,
            Request::CreateTtl(_) => O::CreateTtl,
            Request::Delete(_) => O::Delete,
            Request::Exists(_) => O::Exists,
            Request::GetData(_) => O::GetData,
            Request::SetData(_) => O::SetData,
            Request::GetAcl(_) => O::GetAcl,
            Request::SetAcl(_) => O::SetAcl,
            Request::GetChildren(_) => O::GetChildren,
            Request::GetChildren2(_) => O::GetChildren2,
            Request::Sync(_) => O::Sync,
            Request::Ping => O::Ping,
            Request::Check(_) => O::Check,
            Request::Multi(_) => O::Multi,
            Request::MultiRead(_) => O::MultiRead,
            Request::Reconfig(_) => O::Reconfig,
            Request::CheckWatches(_) => O::CheckWatches,
            Request::RemoveWatches(_) => O::RemoveWatches,
            Request::Auth(_) => O::Auth,
            Request::SetWatches(_) => O::SetWatches,
            Request::SetWatches2(_) => O::SetWatches2,
            Request::Sasl(_) => O::Sasl,
            Request::GetEphemerals(_) => O::GetEphemerals,
            Request::GetAllChildrenNumber(_) => O::GetAllChildrenNumber,
            Request::AddWatch(_) => O::AddWatch,
            Request::WhoAmI => O::WhoAmI,
            Request::CloseSession => O::CloseSession,
            Request::DeleteContainer(_) => O::DeleteContainer,
            Request::Unknown { op, .. } => return *op,
        };
        op.as_i32()
    }

    /// Whether this may appear inside a multi (op 14); `MultiOperationRecord` accepts
    /// exactly these plus the two reads.
    pub fn is_multi_write_op(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::Check(_)
        )
    }

    /// Whether this may appear inside a multiRead (op 22).
    pub fn is_multi_read_op(&self) -> bool {
        matches!(self, Request::GetData(_) | Request::GetChildren(_))
    }

    /// Decodes the body for `op`, which must fill `r` exactly.
    pub fn decode_body(op: i32, r: &mut Reader<'_>) -> DecodeResult<Request> {
        let Some(code) = OpCode::from_i32(op) else {
            return Ok(Request::Unknown {
                op,
                body: r.read_rest().to_vec(),
            });
        };
        use OpCode as O;
        let req = match code {
            O::Create => Request::Create(CreateRequest::decode(r)?),
            O::Create2 => Request::Create2(CreateRequest::decode(r)?),
            O::CreateContainer => Request::CreateContainer(CreateRequest::decode(r)?),
            O::CreateTtl => Request::CreateTtl(CreateTtlRequest::decode(r)?),
            O::Delete => Request::Delete(DeleteRequest::decode(r)?),
            O::Exists => Request::Exists(ExistsRequest::decode(r)?),
            O::GetData => Request::GetData(GetDataRequest::decode(r)?),
            O::SetData => Request::SetData(SetDataRequest::decode(r)?),
            O::GetAcl => Request::GetAcl(GetAclRequest::decode(r)?),
            O::SetAcl => Request::SetAcl(SetAclRequest::decode(r)?),
            O::GetChildren => Request::GetChildren(GetChildrenRequest::decode(r)?),
            O::GetChildren2 => Request::GetChildren2(GetChildren2Request::decode(r)?),
            O::Sync => Request::Sync(SyncRequest::decode(r)?),
            O::Ping => Request::Ping,
            O::Check => Request::Check(CheckVersionRequest::decode(r)?),
            O::Multi => Request::Multi(MultiRequest::decode(r)?),
            O::MultiRead => Request::MultiRead(MultiRequest::decode(r)?),
            O::Reconfig => Request::Reconfig(ReconfigRequest::decode(r)?),
            O::CheckWatches => Request::CheckWatches(CheckWatchesRequest::decode(r)?),
            O::RemoveWatches => Request::RemoveWatches(RemoveWatchesRequest::decode(r)?),
            O::Auth => Request::Auth(AuthPacket::decode(r)?),
            O::SetWatches => Request::SetWatches(SetWatches::decode(r)?),
            O::SetWatches2 => Request::SetWatches2(SetWatches2::decode(r)?),
            O::Sasl => Request::Sasl(GetSaslRequest::decode(r)?),
            O::GetEphemerals => Request::GetEphemerals(GetEphemeralsRequest::decode(r)?),
            O::GetAllChildrenNumber => {
                Request::GetAllChildrenNumber(GetAllChildrenNumberRequest::decode(r)?)
            }
            O::AddWatch => Request::AddWatch(AddWatchRequest::decode(r)?),
            O::WhoAmI => Request::WhoAmI,
            O::CloseSession => Request::CloseSession,
            O::DeleteContainer => Request::DeleteContainer(DeleteContainerRequest::decode(r)?),
            // Server-internal or server-to-client codes: never a client request body.
            O::Notification | O::CreateSession | O::Error => Request::Unknown {
                op,
                body: r.read_rest().to_vec(),
            },
        };
        r.finish("Request.body")?;
        Ok(req)
    }

    /// Appends the body (not the header).
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Request::Create(b) | Request::Create2(b) | Request::CreateContainer(b) => b.encode(w),
            Request::CreateTtl(b) => b.encode(w),
            Request::Delete(b) => b.encode(w),
            Request::Exists(b) => b.encode(w),
            Request::GetData(b) => b.encode(w),
            Request::SetData(b) => b.encode(w),
            Request::GetAcl(b) => b.encode(w),
            Request::SetAcl(b) => b.encode(w),
            Request::GetChildren(b) => b.encode(w),
            Request::GetChildren2(b) => b.encode(w),
            Request::Sync(b) => b.encode(w),
            Request::Check(b) => b.encode(w),
            Request::Multi(b) | Request::MultiRead(b) => b.encode(w),
            Request::Reconfig(b) => b.encode(w),
            Request::CheckWatches(b) => b.encode(w),
            Request::RemoveWatches(b) => b.encode(w),
            Request::Auth(b) => b.encode(w),
            Request::SetWatches(b) => b.encode(w),
            Request::SetWatches2(b) => b.encode(w),
            Request::Sasl(b) => b.encode(w),
            Request::GetEphemerals(b) => b.encode(w),
            Request::GetAllChildrenNumber(b) => b.encode(w),
            Request::AddWatch(b) => b.encode(w),
            Request::DeleteContainer(b) => b.encode(w),
            Request::Unknown { body, .. } => w.write_raw(body),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        }
    }
}

/// The operations of a multi (op 14) or multiRead (op 22), in order.
///
/// On the wire each op is a [`MultiHeader`]`{type, false, -1}` and its request record,
/// and the list ends with `{-1, true, -1}`. Like `MultiOperationRecord`, decoding
/// accepts only create/create2/createContainer/createTTL/delete/setData/check and
/// getData/getChildren, and rejects a list that mixes writes with reads. Like Java,
/// it ignores the `err` of each header and the type of the end marker; encoding always
/// writes what every real client writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiRequest {
    pub ops: Vec<Request>,
}

impl Record for MultiRequest {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        let mut ops = Vec::new();
        let mut kind: Option<bool> = None; // Some(true) = reads
        loop {
            let at = r.offset();
            let h = MultiHeader::decode(r)?;
            if h.done {
                break;
            }
            let op = match OpCode::from_i32(h.op_type) {
                Some(OpCode::Create) => Request::Create(CreateRequest::decode(r)?),
                Some(OpCode::Create2) => Request::Create2(CreateRequest::decode(r)?),
                Some(OpCode::CreateContainer) => {
                    Request::CreateContainer(CreateRequest::decode(r)?)
                }
                Some(OpCode::CreateTtl) => Request::CreateTtl(CreateTtlRequest::decode(r)?),
                Some(OpCode::Delete) => Request::Delete(DeleteRequest::decode(r)?),
                Some(OpCode::SetData) => Request::SetData(SetDataRequest::decode(r)?),
                Some(OpCode::Check) => Request::Check(CheckVersionRequest::decode(r)?),
                Some(OpCode::GetChildren) => Request::GetChildren(GetChildrenRequest::decode(r)?),
                Some(OpCode::GetData) => Request::GetData(GetDataRequest::decode(r)?),
                _ => {
                    return Err(crate::error::DecodeError {
                        field: "MultiHeader.type",
                        offset: at,
                        kind: DecodeErrorKind::UnknownValue(i64::from(h.op_type)),
                    });
                }
            };
            let is_read = op.is_multi_read_op();
            if *kind.get_or_insert(is_read) != is_read {
                return Err(crate::error::DecodeError {
                    field: "MultiHeader.type (reads mixed with writes)",
                    offset: at,
                    kind: DecodeErrorKind::UnknownValue(i64::from(h.op_type)),
                });
            }
            ops.push(op);
        }
        Ok(MultiRequest { ops })
    }

    fn encode(&self, w: &mut Writer) {
        for op in &self.ops {
            MultiHeader {
                op_type: op.op_code(),
                done: false,
                err: -1,
            }
            .encode(w);
            op.encode_body(w);
        }
        MultiHeader::END.encode(w);
    }
}

/// One decoded client frame (after the handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    pub header: RequestHeader,
    pub body: Request,
}

impl ClientRequest {
    /// The frame payload (without the length prefix); the inverse of [`decode_request`].
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.header.encode(&mut w);
        self.body.encode_body(&mut w);
        w.into_inner()
    }
}

/// Decodes one request frame's payload (the frame without its 4-byte length).
///
/// An error means ZooKeeper could not have parsed it either. ZooKeeper answers a body
/// it cannot read with MarshallingError under the request's xid; use
/// [`decode_request_header`] to recover that xid.
pub fn decode_request(payload: &[u8]) -> DecodeResult<ClientRequest> {
    let mut r = Reader::new(payload);
    let header = RequestHeader::decode(&mut r)?;
    let body = Request::decode_body(header.op, &mut r)?;
    Ok(ClientRequest { header, body })
}

/// Just the header of a request frame, for answering a frame whose body is malformed.
pub fn decode_request_header(payload: &[u8]) -> DecodeResult<RequestHeader> {
    RequestHeader::decode(&mut Reader::new(payload))
}
