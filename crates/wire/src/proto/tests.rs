//! Layout tests: bytes are built by hand from `zookeeper.jute` field order (not with
//! our `Writer`), decoded, checked field by field, and re-encoded byte for byte.

use super::*;
use crate::codes::{ErrorCode, OpCode, xid};
use crate::data::{Acl, Id, Stat};
use crate::error::DecodeErrorKind;
use crate::jute::Record;

/// A hand-rolled big-endian byte builder, deliberately independent of `Writer`.
#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn new() -> Self {
        B::default()
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend(v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend(v.to_be_bytes());
        self
    }
    fn bool(mut self, v: bool) -> Self {
        self.0.push(v as u8);
        self
    }
    fn buf(self, v: &[u8]) -> Self {
        let mut s = self.i32(v.len() as i32);
        s.0.extend(v);
        s
    }
    fn null(self) -> Self {
        self.i32(-1)
    }
    fn str(self, v: &str) -> Self {
        self.buf(v.as_bytes())
    }
    fn stat(self, s: &Stat) -> Self {
        self.i64(s.czxid)
            .i64(s.mzxid)
            .i64(s.ctime)
            .i64(s.mtime)
            .i32(s.version)
            .i32(s.cversion)
            .i32(s.aversion)
            .i64(s.ephemeral_owner)
            .i32(s.data_length)
            .i32(s.num_children)
            .i64(s.pzxid)
    }
    fn open_acl(self) -> Self {
        self.i32(1).i32(31).str("world").str("anyone")
    }
    fn multi_header(self, t: i32, done: bool, err: i32) -> Self {
        self.i32(t).bool(done).i32(err)
    }
    fn end(self) -> Self {
        self.multi_header(-1, true, -1)
    }
    fn bytes(self) -> Vec<u8> {
        self.0
    }
}

fn sample_stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0002,
        mzxid: 0x1_0000_0003,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_500,
        version: 1,
        cversion: 2,
        aversion: 0,
        ephemeral_owner: 0x0100_0000_0000_0001,
        data_length: 5,
        num_children: 0,
        pzxid: 0x1_0000_0002,
    }
}

fn round_trip_request(bytes: &[u8]) -> ClientRequest {
    let req = decode_request(bytes).unwrap();
    assert_eq!(req.encode(), bytes, "re-encode of {req:?}");
    req
}

fn round_trip_response(op: OpCode, bytes: &[u8]) -> ServerResponse {
    let rsp = decode_response(op, bytes).unwrap();
    assert_eq!(rsp.encode(), bytes, "re-encode of {rsp:?}");
    rsp
}

fn connect_request_bytes(read_only: Option<bool>) -> Vec<u8> {
    let b = B::new()
        .i32(0)
        .i64(0x1_0000_0007)
        .i32(30_000)
        .i64(0x0100_0000_0000_002a)
        .buf(&[7u8; 16]);
    match read_only {
        Some(ro) => b.bool(ro).bytes(),
        None => b.bytes(),
    }
}

#[test]
fn connect_request_with_and_without_read_only() {
    let old = connect_request_bytes(None);
    assert_eq!(old.len(), 44);
    let req = ConnectRequest::from_bytes(&old).unwrap();
    assert_eq!(req.read_only, None);
    assert_eq!(req.last_zxid_seen, 0x1_0000_0007);
    assert_eq!(req.timeout_ms, 30_000);
    assert_eq!(req.session_id, 0x0100_0000_0000_002a);
    assert_eq!(req.passwd, [7u8; 16]);
    assert_eq!(req.to_bytes(), old);

    let new = connect_request_bytes(Some(true));
    assert_eq!(new.len(), 45);
    let req = ConnectRequest::from_bytes(&new).unwrap();
    assert_eq!(req.read_only, Some(true));
    assert_eq!(req.to_bytes(), new);

    let mut junk = connect_request_bytes(Some(false));
    junk.push(0);
    let err = ConnectRequest::from_bytes(&junk).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::TrailingBytes(1));
    assert_eq!(err.offset, 45);
}

#[test]
fn connect_response_with_and_without_read_only() {
    let base = B::new()
        .i32(0)
        .i32(10_000)
        .i64(0x0100_0000_0000_002a)
        .buf(&[9u8; 16]);
    let old = base.bytes();
    assert_eq!(old.len(), 36);
    let rsp = ConnectResponse::from_bytes(&old).unwrap();
    assert_eq!(rsp.read_only, None);
    assert_eq!(rsp.timeout_ms, 10_000);
    assert_eq!(rsp.to_bytes(), old);

    let mut new = old.clone();
    new.push(0);
    let rsp = ConnectResponse::from_bytes(&new).unwrap();
    assert_eq!(rsp.read_only, Some(false));
    assert_eq!(rsp.to_bytes(), new);

    let err = ConnectResponse::from_bytes(&old[..30]).unwrap_err();
    assert_eq!(err.field, "ConnectResponse.passwd");
}

#[test]
fn notification_decodes_by_its_xid_whatever_request_is_pending() {
    let bytes = B::new()
        .i32(xid::NOTIFICATION)
        .i64(0x2_0000_0011)
        .i32(0)
        .i32(3)
        .i32(3)
        .str("/app/node")
        .bytes();
    for op in [OpCode::GetData, OpCode::Multi, OpCode::Create] {
        let rsp = round_trip_response(op, &bytes);
        assert_eq!(rsp.header.zxid, 0x2_0000_0011);
        assert_eq!(
            rsp.body,
            Response::Notification(WatcherEvent {
                event_type: 3,
                state: 3,
                path: "/app/node".into(),
            })
        );
    }
}

#[test]
fn special_xid_replies_have_no_body() {
    for x in [xid::PING, xid::AUTH, xid::SET_WATCHES] {
        let bytes = B::new().i32(x).i64(5).i32(0).bytes();
        let rsp = round_trip_response(OpCode::GetData, &bytes);
        assert_eq!(rsp.body, Response::Empty);
    }
    let auth_failed = B::new()
        .i32(xid::AUTH)
        .i64(0)
        .i32(ErrorCode::AuthFailed.as_i32())
        .bytes();
    assert_eq!(
        round_trip_response(OpCode::Auth, &auth_failed).body,
        Response::Empty
    );
}

#[test]
fn ping_auth_and_set_watches_requests() {
    let ping = B::new().i32(xid::PING).i32(11).bytes();
    assert_eq!(round_trip_request(&ping).body, Request::Ping);

    let auth = B::new()
        .i32(xid::AUTH)
        .i32(100)
        .i32(0)
        .str("digest")
        .str("user:pw")
        .bytes();
    let req = round_trip_request(&auth);
    assert_eq!(
        req.body,
        Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Some(b"user:pw".to_vec()),
        })
    );

    let sw2 = B::new()
        .i32(xid::SET_WATCHES)
        .i32(105)
        .i64(0x1_0000_0009)
        .i32(1)
        .str("/d")
        .i32(0)
        .i32(2)
        .str("/c1")
        .str("/c2")
        .i32(0)
        .i32(1)
        .str("/r")
        .bytes();
    let req = round_trip_request(&sw2);
    let Request::SetWatches2(sw) = req.body else {
        panic!("not SetWatches2: {req:?}");
    };
    assert_eq!(sw.relative_zxid, 0x1_0000_0009);
    assert_eq!(sw.data_watches, ["/d"]);
    assert!(sw.exist_watches.is_empty());
    assert_eq!(sw.child_watches, ["/c1", "/c2"]);
    assert_eq!(sw.persistent_recursive_watches, ["/r"]);
}

#[test]
fn create_with_null_data_stays_null() {
    let bytes = B::new()
        .i32(7)
        .i32(1)
        .str("/n")
        .null()
        .open_acl()
        .i32(0)
        .bytes();
    let req = round_trip_request(&bytes);
    assert_eq!(req.header, RequestHeader { xid: 7, op: 1 });
    assert_eq!(
        req.body,
        Request::Create(CreateRequest {
            path: "/n".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
        })
    );
}

#[test]
fn create_opcodes_share_the_body_but_keep_their_variant() {
    for (op, name) in [(1, "Create"), (15, "Create2"), (19, "CreateContainer")] {
        let bytes = B::new()
            .i32(3)
            .i32(op)
            .str("/x")
            .buf(b"d")
            .open_acl()
            .i32(if op == 19 { 4 } else { 0 })
            .bytes();
        let req = round_trip_request(&bytes);
        assert_eq!(req.body.op_code(), op);
        assert!(format!("{:?}", req.body).starts_with(name));
    }
    let ttl = B::new()
        .i32(3)
        .i32(21)
        .str("/t")
        .buf(b"")
        .open_acl()
        .i32(5)
        .i64(60_000)
        .bytes();
    let req = round_trip_request(&ttl);
    let Request::CreateTtl(c) = req.body else {
        panic!("not CreateTtl");
    };
    assert_eq!(c.ttl, 60_000);
    assert_eq!(c.data, Some(vec![]));
}

#[test]
fn reconfig_request_keeps_null_strings() {
    let bytes = B::new()
        .i32(9)
        .i32(16)
        .str("server.4=h:2888:3888;2181")
        .null()
        .null()
        .i64(-1)
        .bytes();
    let req = round_trip_request(&bytes);
    let Request::Reconfig(r) = req.body else {
        panic!("not Reconfig");
    };
    assert_eq!(
        r.joining_servers.as_deref(),
        Some("server.4=h:2888:3888;2181")
    );
    assert_eq!(r.leaving_servers, None);
    assert_eq!(r.new_members, None);
}

#[test]
fn multi_request_layout() {
    let bytes = B::new()
        .i32(42)
        .i32(14)
        .multi_header(1, false, -1)
        .str("/a")
        .buf(b"x")
        .open_acl()
        .i32(0)
        .multi_header(2, false, -1)
        .str("/b")
        .i32(-1)
        .multi_header(13, false, -1)
        .str("/c")
        .i32(2)
        .multi_header(5, false, -1)
        .str("/c")
        .null()
        .i32(2)
        .end()
        .bytes();
    let req = round_trip_request(&bytes);
    let Request::Multi(m) = &req.body else {
        panic!("not Multi");
    };
    assert_eq!(
        m.ops,
        vec![
            Request::Create(CreateRequest {
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
            Request::Delete(DeleteRequest {
                path: "/b".into(),
                version: -1,
            }),
            Request::Check(CheckVersionRequest {
                path: "/c".into(),
                version: 2,
            }),
            Request::SetData(SetDataRequest {
                path: "/c".into(),
                data: None,
                version: 2,
            }),
        ]
    );

    let empty = B::new().i32(1).i32(14).end().bytes();
    assert_eq!(
        round_trip_request(&empty).body,
        Request::Multi(MultiRequest::default())
    );
}

#[test]
fn multi_read_request_layout() {
    let bytes = B::new()
        .i32(43)
        .i32(22)
        .multi_header(4, false, -1)
        .str("/a")
        .bool(false)
        .multi_header(8, false, -1)
        .str("/")
        .bool(false)
        .end()
        .bytes();
    let req = round_trip_request(&bytes);
    let Request::MultiRead(m) = req.body else {
        panic!("not MultiRead");
    };
    assert_eq!(m.ops.len(), 2);
    assert!(m.ops.iter().all(Request::is_multi_read_op));
}

#[test]
fn multi_rejects_mixed_kinds_and_foreign_ops() {
    let mixed = B::new()
        .i32(1)
        .i32(14)
        .multi_header(2, false, -1)
        .str("/b")
        .i32(-1)
        .multi_header(4, false, -1)
        .str("/a")
        .bool(false)
        .end()
        .bytes();
    let err = decode_request(&mixed).unwrap_err();
    // Offset of the second MultiHeader: 8 (header) + 9 + 6 + 4.
    assert_eq!(err.offset, 8 + 9 + 6 + 4);
    assert!(err.field.starts_with("MultiHeader.type"));

    let exists_in_multi = B::new()
        .i32(1)
        .i32(14)
        .multi_header(3, false, -1)
        .str("/a")
        .bool(false)
        .end()
        .bytes();
    let err = decode_request(&exists_in_multi).unwrap_err();
    assert_eq!(err.field, "MultiHeader.type");
    assert_eq!(err.offset, 8);
    assert_eq!(err.kind, DecodeErrorKind::UnknownValue(3));

    let unterminated = B::new()
        .i32(1)
        .i32(14)
        .multi_header(2, false, -1)
        .str("/b")
        .i32(-1)
        .bytes();
    let err = decode_request(&unterminated).unwrap_err();
    assert_eq!(err.field, "MultiHeader.type");
    assert!(matches!(err.kind, DecodeErrorKind::Truncated { .. }));
}

#[test]
fn failed_multi_response_layout() {
    // A three-op multi whose second op failed with NoNode: header err 0, every
    // result an ErrorResponse, OK before, the error at, RuntimeInconsistency after.
    let bytes = B::new()
        .i32(42)
        .i64(0x1_0000_0010)
        .i32(0)
        .multi_header(-1, false, 0)
        .i32(0)
        .multi_header(-1, false, -101)
        .i32(-101)
        .multi_header(-1, false, -2)
        .i32(-2)
        .end()
        .bytes();
    let rsp = round_trip_response(OpCode::Multi, &bytes);
    assert_eq!(rsp.header.err, 0);
    assert_eq!(
        rsp.body,
        Response::Multi(MultiResponse {
            results: vec![
                OpResult::Error(0),
                OpResult::Error(ErrorCode::NoNode.as_i32()),
                OpResult::Error(ErrorCode::RuntimeInconsistency.as_i32()),
            ],
        })
    );
}

#[test]
fn successful_multi_response_layout() {
    let stat = sample_stat();
    let bytes = B::new()
        .i32(42)
        .i64(0x1_0000_0010)
        .i32(0)
        .multi_header(1, false, 0)
        .str("/a")
        .multi_header(15, false, 0)
        .str("/b0000000001")
        .stat(&stat)
        .multi_header(2, false, 0)
        .multi_header(5, false, 0)
        .stat(&stat)
        .multi_header(13, false, 0)
        .end()
        .bytes();
    let rsp = round_trip_response(OpCode::Multi, &bytes);
    let Response::Multi(m) = rsp.body else {
        panic!("not Multi");
    };
    assert_eq!(
        m.results,
        vec![
            OpResult::Create(CreateResponse { path: "/a".into() }),
            OpResult::Create2(Create2Response {
                path: "/b0000000001".into(),
                stat,
            }),
            OpResult::Delete,
            OpResult::SetData(SetDataResponse { stat }),
            OpResult::Check,
        ]
    );
    // The Java client rejects create types other than 1 and 15 in a multi result.
    let bad = B::new()
        .i32(1)
        .i64(1)
        .i32(0)
        .multi_header(19, false, 0)
        .str("/c")
        .stat(&stat)
        .end()
        .bytes();
    let err = decode_response(OpCode::Multi, &bad).unwrap_err();
    assert_eq!((err.field, err.offset), ("MultiHeader.type", 16));
}

#[test]
fn multi_read_response_layout() {
    let stat = sample_stat();
    let bytes = B::new()
        .i32(43)
        .i64(0x1_0000_0010)
        .i32(0)
        .multi_header(4, false, 0)
        .buf(b"hello")
        .stat(&stat)
        .multi_header(-1, false, -101)
        .i32(-101)
        .multi_header(8, false, 0)
        .i32(2)
        .str("x")
        .str("y")
        .multi_header(4, false, 0)
        .null()
        .stat(&stat)
        .end()
        .bytes();
    let rsp = round_trip_response(OpCode::MultiRead, &bytes);
    assert_eq!(
        rsp.body,
        Response::MultiRead(MultiResponse {
            results: vec![
                OpResult::GetData(GetDataResponse {
                    data: Some(b"hello".to_vec()),
                    stat,
                }),
                OpResult::Error(-101),
                OpResult::GetChildren(GetChildrenResponse {
                    children: vec!["x".into(), "y".into()],
                }),
                OpResult::GetData(GetDataResponse { data: None, stat }),
            ],
        })
    );
}

#[test]
fn error_replies_have_no_body() {
    let bytes = B::new().i32(5).i64(0x10).i32(-101).bytes();
    for op in OpCode::ALL {
        let rsp = round_trip_response(*op, &bytes);
        assert_eq!(rsp.body, Response::Empty, "{op}");
    }
    // Success with a missing body is malformed.
    let ok = B::new().i32(5).i64(0x10).i32(0).bytes();
    let err = decode_response(OpCode::GetData, &ok).unwrap_err();
    assert_eq!((err.field, err.offset), ("GetDataResponse.data", 16));
    assert_eq!(
        round_trip_response(OpCode::Delete, &ok).body,
        Response::Empty
    );
}

#[test]
fn sasl_failure_reply_carries_a_null_token() {
    // ZooKeeperServer.processSasl: ReplyHeader{xid, 0, AuthFailed} + SetSASLResponse(null).
    let bytes = B::new().i32(3).i64(0).i32(-115).null().bytes();
    let rsp = round_trip_response(OpCode::Sasl, &bytes);
    assert_eq!(rsp.body, Response::Sasl(SetSaslResponse { token: None }));
    let ok = B::new().i32(3).i64(0).i32(0).buf(b"tok").bytes();
    let rsp = round_trip_response(OpCode::Sasl, &ok);
    assert_eq!(
        rsp.body,
        Response::Sasl(SetSaslResponse {
            token: Some(b"tok".to_vec())
        })
    );
}

#[test]
fn get_data_reply_and_null_data() {
    let stat = sample_stat();
    let bytes = B::new().i32(8).i64(9).i32(0).null().stat(&stat).bytes();
    let rsp = round_trip_response(OpCode::GetData, &bytes);
    assert_eq!(
        rsp.body,
        Response::GetData(GetDataResponse { data: None, stat })
    );
    let trunc = &bytes[..bytes.len() - 3];
    let err = decode_response(OpCode::GetData, trunc).unwrap_err();
    assert_eq!(err.field, "stat.pzxid");
    assert_eq!(err.offset, 16 + 4 + 60);
}

#[test]
fn assorted_reply_bodies() {
    let stat = sample_stat();
    let hdr = || B::new().i32(11).i64(0x20).i32(0);

    let add_watch = hdr().i32(0).bytes();
    assert_eq!(
        round_trip_response(OpCode::AddWatch, &add_watch).body,
        Response::AddWatch(ErrorResponse { err: 0 })
    );

    let who = hdr()
        .i32(2)
        .str("ip")
        .str("127.0.0.1")
        .str("digest")
        .str("alice")
        .bytes();
    let Response::WhoAmI(w) = round_trip_response(OpCode::WhoAmI, &who).body else {
        panic!("not WhoAmI");
    };
    assert_eq!(w.client_info[1].user, "alice");

    let acl = hdr()
        .i32(1)
        .i32(1)
        .str("digest")
        .str("u:x")
        .stat(&stat)
        .bytes();
    assert_eq!(
        round_trip_response(OpCode::GetAcl, &acl).body,
        Response::GetAcl(GetAclResponse {
            acl: vec![Acl::new(1, Id::new("digest", "u:x"))],
            stat,
        })
    );

    let c2 = hdr().str("/q").stat(&stat).bytes();
    for op in [OpCode::Create2, OpCode::CreateContainer, OpCode::CreateTtl] {
        assert!(matches!(
            round_trip_response(op, &c2).body,
            Response::Create2(_)
        ));
    }

    let reconfig = hdr()
        .buf(b"server.1=a:1:2;3\nversion=100000000")
        .stat(&stat)
        .bytes();
    assert!(matches!(
        round_trip_response(OpCode::Reconfig, &reconfig).body,
        Response::Reconfig(_)
    ));

    let n = hdr().i32(17).bytes();
    assert_eq!(
        round_trip_response(OpCode::GetAllChildrenNumber, &n).body,
        Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number: 17 })
    );

    let check = hdr().stat(&stat).bytes();
    assert_eq!(
        round_trip_response(OpCode::Check, &check).body,
        Response::SetData(SetDataResponse { stat })
    );
}

#[test]
fn unknown_opcodes_round_trip_raw() {
    let bytes = B::new().i32(12).i32(999).i32(1).i32(2).bytes();
    let req = round_trip_request(&bytes);
    assert_eq!(
        req.body,
        Request::Unknown {
            op: 999,
            body: B::new().i32(1).i32(2).bytes(),
        }
    );
    assert_eq!(req.body.op_code(), 999);

    // Server-internal codes are not client requests either.
    let create_session = B::new().i32(12).i32(-10).bytes();
    assert!(matches!(
        round_trip_request(&create_session).body,
        Request::Unknown { op: -10, .. }
    ));
    let close = B::new().i32(12).i32(-11).bytes();
    assert_eq!(round_trip_request(&close).body, Request::CloseSession);
    let who = B::new().i32(12).i32(107).bytes();
    assert_eq!(round_trip_request(&who).body, Request::WhoAmI);
}

#[test]
fn trailing_bytes_and_bad_header_are_errors() {
    let bytes = B::new().i32(1).i32(4).str("/a").bool(true).i32(0).bytes();
    let err = decode_request(&bytes).unwrap_err();
    assert_eq!(err.field, "Request.body");
    assert_eq!(err.offset, 8 + 6 + 1);
    assert_eq!(err.kind, DecodeErrorKind::TrailingBytes(4));
    // The header still decodes, so the server can answer MarshallingError to xid 1.
    assert_eq!(
        decode_request_header(&bytes).unwrap(),
        RequestHeader { xid: 1, op: 4 }
    );

    let ping_with_body = B::new().i32(-2).i32(11).i32(0).bytes();
    assert!(decode_request(&ping_with_body).is_err());

    let err = decode_request(&[0, 0, 0]).unwrap_err();
    assert_eq!((err.field, err.offset), ("RequestHeader.xid", 0));

    let bad_utf8 = B::new()
        .i32(1)
        .i32(3)
        .buf(&[0xff, 0xfe])
        .bool(false)
        .bytes();
    let err = decode_request(&bad_utf8).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::BadUtf8);
    assert_eq!((err.field, err.offset), ("ExistsRequest.path", 8));

    let ping_reply_with_body = B::new().i32(-2).i64(0).i32(0).i32(0).bytes();
    let err = decode_response(OpCode::Ping, &ping_reply_with_body).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::TrailingBytes(4));
}

#[test]
fn hostile_vector_lengths_are_rejected() {
    let bytes = B::new().i32(1).i64(0).i32(0).i32(i32::MAX).bytes();
    let err = decode_response(OpCode::GetChildren, &bytes).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::BadLength(i64::from(i32::MAX)));
    assert_eq!(
        (err.field, err.offset),
        ("GetChildrenResponse.children", 16)
    );
}
