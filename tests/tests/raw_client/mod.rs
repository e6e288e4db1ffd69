//! A minimal blocking ZooKeeper client built on `rookery-wire` records, for tests that
//! need to see the protocol itself: exactly which request got which reply, and when
//! the server closed the connection. One request at a time; notifications are skipped.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rookery_wire::proto::records::{
    CreateRequest, DeleteRequest, GetChildrenRequest, GetDataRequest, SetDataRequest,
};
use rookery_wire::{
    Acl, ClientRequest, ConnectRequest, ConnectResponse, CreateMode, MultiRequest, OpCode, Record,
    Request, RequestHeader, Response, ServerResponse, decode_response, write_frame,
};

/// How long a read may block before the test calls the server hung.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call got no reply.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing arrived within [`READ_TIMEOUT`].
    TimedOut,
    /// The reply did not decode.
    Garbled(String),
}

pub(crate) struct RawClient {
    pub(crate) stream: TcpStream,
    pub(crate) session_id: i64,
    pub(crate) timeout_ms: i32,
    /// Whether the server answered the handshake as a read-only server.
    pub(crate) read_only: bool,
    xid: i32,
}

/// The 45-byte-form handshake a new session sends.
pub(crate) fn connect_request(timeout_ms: i32) -> Vec<u8> {
    connect_request_ro(timeout_ms, false)
}

/// The handshake of a new session, `can_be_read_only` as a client that accepts a
/// read-only server (ZooKeeper's `canBeReadOnly`) sends it.
pub(crate) fn connect_request_ro(timeout_ms: i32, can_be_read_only: bool) -> Vec<u8> {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(can_be_read_only),
    }
    .to_bytes()
}

pub(crate) fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    write_frame(payload, &mut out);
    out
}

/// Reads one length-prefixed frame; `Err(Closed)` on EOF or reset.
pub(crate) fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, CallError> {
    let mut len = [0u8; 4];
    read_exact(stream, &mut len)?;
    let n = i32::from_be_bytes(len);
    let n = usize::try_from(n).map_err(|_| CallError::Garbled(format!("frame length {n}")))?;
    let mut payload = vec![0u8; n];
    read_exact(stream, &mut payload)?;
    Ok(payload)
}

fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), CallError> {
    match stream.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(CallError::TimedOut)
        }
        Err(_) => Err(CallError::Closed),
    }
}

/// Whether the server has closed `stream`: waits up to `within` for EOF or a reset,
/// discarding whatever else arrives. `false` if the connection is still open then.
pub(crate) fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(500))));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
}

impl RawClient {
    /// Opens a new session on `127.0.0.1:port`.
    pub(crate) fn connect(port: u16, timeout_ms: i32) -> Result<RawClient, CallError> {
        RawClient::connect_with(port, timeout_ms, READ_TIMEOUT, false)
    }

    /// Opens a new session on `127.0.0.1:port`, waiting at most `read_timeout` for
    /// the handshake and for every later reply; `can_be_read_only` accepts a
    /// read-only server.
    pub(crate) fn connect_with(
        port: u16,
        timeout_ms: i32,
        read_timeout: Duration,
        can_be_read_only: bool,
    ) -> Result<RawClient, CallError> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream =
            TcpStream::connect_timeout(&addr, read_timeout).map_err(|_| CallError::Closed)?;
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(|_| CallError::Closed)?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(&framed(&connect_request_ro(timeout_ms, can_be_read_only)))
            .map_err(|_| CallError::Closed)?;
        let reply = read_frame(&mut stream)?;
        let resp =
            ConnectResponse::from_bytes(&reply).map_err(|e| CallError::Garbled(e.to_string()))?;
        if resp.session_id == 0 {
            return Err(CallError::Closed);
        }
        Ok(RawClient {
            stream,
            session_id: resp.session_id,
            timeout_ms: resp.timeout_ms,
            read_only: resp.read_only == Some(true),
            xid: 0,
        })
    }

    /// Sends one request and waits for its reply, skipping watch notifications.
    pub(crate) fn call(&mut self, body: Request) -> Result<ServerResponse, CallError> {
        let (xid, op) = self.send(body)?;
        self.reply(xid, op)
    }

    /// Sends one request without waiting; returns its xid and opcode for [`Self::reply`].
    pub(crate) fn send(&mut self, body: Request) -> Result<(i32, OpCode), CallError> {
        let op = body.op_code();
        self.xid += 1;
        let xid = self.xid;
        let req = ClientRequest {
            header: RequestHeader { xid, op },
            body,
        };
        self.stream
            .write_all(&framed(&req.encode()))
            .map_err(|_| CallError::Closed)?;
        Ok((xid, OpCode::from_i32(op).unwrap_or(OpCode::Error)))
    }

    /// Waits for the reply to `xid` (the oldest request still unanswered: replies come
    /// in the order sent), skipping watch notifications.
    pub(crate) fn reply(&mut self, xid: i32, op: OpCode) -> Result<ServerResponse, CallError> {
        loop {
            let payload = read_frame(&mut self.stream)?;
            let resp =
                decode_response(op, &payload).map_err(|e| CallError::Garbled(e.to_string()))?;
            if resp.header.xid == xid {
                return Ok(resp);
            }
            if resp.header.xid >= 0 {
                return Err(CallError::Garbled(format!(
                    "reply to xid {} while waiting for {xid}",
                    resp.header.xid
                )));
            }
        }
    }

    pub(crate) fn create(&mut self, path: &str, data: &[u8]) -> Result<ServerResponse, CallError> {
        self.call(create_req(path, data))
    }

    /// `(data, version)`, or `None` if the node does not exist.
    pub(crate) fn get_data(&mut self, path: &str) -> Option<(Vec<u8>, i32)> {
        let resp = self
            .call(Request::GetData(GetDataRequest {
                path: path.to_owned(),
                watch: false,
            }))
            .expect("getData");
        match resp.body {
            Response::GetData(r) => Some((r.data.unwrap_or_default(), r.stat.version)),
            _ if resp.header.err == rookery_wire::ErrorCode::NoNode.as_i32() => None,
            other => panic!("getData {path}: err {} {other:?}", resp.header.err),
        }
    }

    pub(crate) fn children(&mut self, path: &str) -> Vec<String> {
        let resp = self
            .call(Request::GetChildren(GetChildrenRequest {
                path: path.to_owned(),
                watch: false,
            }))
            .expect("getChildren");
        match resp.body {
            Response::GetChildren(r) => r.children,
            other => panic!("getChildren {path}: err {} {other:?}", resp.header.err),
        }
    }

    /// Ends the session politely.
    pub(crate) fn close(mut self) {
        let _ = self.call(Request::CloseSession);
    }
}

/// A create2 of a persistent, open node.
pub(crate) fn create_req(path: &str, data: &[u8]) -> Request {
    Request::Create2(create_body(path, data))
}

pub(crate) fn set_data_req(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        version,
    })
}

pub(crate) fn delete_req(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest {
        path: path.to_owned(),
        version,
    })
}

/// All-or-nothing creates of every path.
pub(crate) fn multi_create_req(nodes: &[(&str, &[u8])]) -> Request {
    Request::Multi(MultiRequest {
        ops: nodes
            .iter()
            .map(|(p, d)| Request::Create2(create_body(p, d)))
            .collect(),
    })
}

fn create_body(path: &str, data: &[u8]) -> CreateRequest {
    CreateRequest {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags: CreateMode::Persistent.as_i32(),
    }
}
