//! Hand-built vectors: frames a real ZooKeeper 3.8 cannot be made to send or accept
//! through the client port (handshakes of older or read-only peers, the server-internal
//! createSession and deleteContainer bodies, Unimplemented and SessionExpired replies),
//! and independent hand-written copies of the multiRead, checkWatches and multi layouts
//! that the `raw` scenario also records from the real server.
//!
//! Each is assembled field by field from `zookeeper.jute` and from how ZooKeeper 3.8
//! serializes the composite records (`MultiOperationRecord`, `MultiResponse`), with a
//! big-endian writer of its own: deliberately not rookery-wire's, so the golden test
//! checks rookery-wire against an independent reading of the layouts.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::{Row, op_name};

/// Jute's primitives, big-endian, written out by hand.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn int(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn long(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn boolean(mut self, v: bool) -> Self {
        self.0.push(u8::from(v));
        self
    }
    /// `buffer`: int32 length then the bytes; `None` is length -1.
    fn buffer(self, v: Option<&[u8]>) -> Self {
        match v {
            None => self.int(-1),
            Some(b) => {
                let mut s = self.int(i32::try_from(b.len()).unwrap_or(i32::MAX));
                s.0.extend_from_slice(b);
                s
            }
        }
    }
    fn ustring(self, v: &str) -> Self {
        self.buffer(Some(v.as_bytes()))
    }
    fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    fn strings(self, v: &[&str]) -> Self {
        let mut s = self.int(i32::try_from(v.len()).unwrap_or(i32::MAX));
        for x in v {
            s = s.ustring(x);
        }
        s
    }
    /// `vector<ACL>` holding one `ACL{perms, Id{scheme, id}}`.
    fn acl1(self, perms: i32, scheme: &str, id: &str) -> Self {
        self.int(1).int(perms).ustring(scheme).ustring(id)
    }
    /// `Stat`: czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner,
    /// dataLength, numChildren, pzxid.
    fn stat(self, zxid: i64, owner: i64, data_len: i32, children: i32) -> Self {
        self.long(zxid)
            .long(zxid + 1)
            .long(1_795_680_000_123)
            .long(1_795_680_000_456)
            .int(1)
            .int(children)
            .int(0)
            .long(owner)
            .int(data_len)
            .int(children)
            .long(zxid + 2)
    }
    /// `RequestHeader{xid, type}`.
    fn req(xid: i32, op: i32) -> Self {
        Bytes::default().int(xid).int(op)
    }
    /// `ReplyHeader{xid, zxid, err}`.
    fn reply(xid: i32, zxid: i64, err: i32) -> Self {
        Bytes::default().int(xid).long(zxid).int(err)
    }
    /// `MultiHeader{type, done, err}`.
    fn mh(self, op: i32, done: bool, err: i32) -> Self {
        self.int(op).boolean(done).int(err)
    }
}

const ALL: i32 = 31;
const ZXID: i64 = 0x0000_0001_0000_002a;
const SESSION: i64 = 0x0100_0010_9610_0000;
/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
const CONTAINER_OWNER: i64 = i64::MIN;
/// `EphemeralType.TTL`: 0xff in the high byte, the TTL in ms in the low bits.
const TTL_OWNER: i64 = (0xff_i64 << 56) | 60_000;

struct Vector {
    what: &'static str,
    direction: &'static str,
    /// `None` for handshake frames.
    op: Option<i32>,
    xid: Option<i32>,
    err: Option<i32>,
    bytes: Vec<u8>,
}

fn request(what: &'static str, op: i32, xid: i32, b: Bytes) -> Vector {
    Vector {
        what,
        direction: "request",
        op: Some(op),
        xid: Some(xid),
        err: None,
        bytes: b.0,
    }
}

fn response(what: &'static str, op: i32, xid: i32, err: i32, b: Bytes) -> Vector {
    Vector {
        what,
        direction: "response",
        op: Some(op),
        xid: Some(xid),
        err: Some(err),
        bytes: b.0,
    }
}

fn handshake(what: &'static str, direction: &'static str, b: Bytes) -> Vector {
    Vector {
        what,
        direction,
        op: None,
        xid: None,
        err: None,
        bytes: b.0,
    }
}

fn vectors() -> Vec<Vector> {
    let passwd = [0x5a_u8; 16];
    let zero16 = [0_u8; 16];
    vec![
        // --- multiRead (22): only the Java API has it (not zkCli); `raw` records it live.
        request(
            "multiRead: getChildren, getData, getData of a missing node",
            22,
            7,
            Bytes::req(7, 22)
                .mh(8, false, -1)
                .ustring("/app")
                .boolean(false)
                .mh(4, false, -1)
                .ustring("/app/a")
                .boolean(false)
                .mh(4, false, -1)
                .ustring("/app/missing")
                .boolean(false)
                .mh(-1, true, -1),
        ),
        response(
            "multiRead reply: children, data+stat, per-op ErrorResult(NoNode); header err 0",
            22,
            7,
            0,
            Bytes::reply(7, ZXID, 0)
                .mh(8, false, 0)
                .strings(&["a", "b"])
                .mh(4, false, 0)
                .buffer(Some(b"hello"))
                .stat(ZXID - 5, 0, 5, 0)
                .mh(-1, false, -101)
                .int(-101)
                .mh(-1, true, -1),
        ),
        request(
            "multiRead with no ops",
            22,
            8,
            Bytes::req(8, 22).mh(-1, true, -1),
        ),
        response(
            "multiRead reply with no results",
            22,
            8,
            0,
            Bytes::reply(8, ZXID, 0).mh(-1, true, -1),
        ),
        // --- checkWatches (17): the Java client's removeWatches(path, watcher, ...) sends
        // it; zkCli's removewatches uses removeAllWatches (18) instead.
        request(
            "checkWatches Data",
            17,
            9,
            Bytes::req(9, 17).ustring("/app").int(2),
        ),
        response(
            "checkWatches reply OK (no body)",
            17,
            9,
            0,
            Bytes::reply(9, ZXID, 0),
        ),
        request(
            "checkWatches Children",
            17,
            10,
            Bytes::req(10, 17).ustring("/app/none").int(1),
        ),
        response(
            "checkWatches reply NoWatcher",
            17,
            10,
            -121,
            Bytes::reply(10, ZXID, -121),
        ),
        // --- multi with the create variants a Java/Curator client puts in a transaction.
        request(
            "multi: create2, createTTL, createContainer, setData, check, delete",
            14,
            11,
            Bytes::req(11, 14)
                .mh(15, false, -1)
                .ustring("/m/c2")
                .buffer(Some(b"x"))
                .acl1(ALL, "world", "anyone")
                .int(0)
                .mh(21, false, -1)
                .ustring("/m/ttl")
                .buffer(Some(b""))
                .acl1(ALL, "world", "anyone")
                .int(5)
                .long(60_000)
                .mh(19, false, -1)
                .ustring("/m/cont")
                .buffer(None)
                .acl1(ALL, "world", "anyone")
                .int(4)
                .mh(5, false, -1)
                .ustring("/m")
                .buffer(Some(b"d"))
                .int(-1)
                .mh(13, false, -1)
                .ustring("/m")
                .int(1)
                .mh(2, false, -1)
                .ustring("/m/old")
                .int(3)
                .mh(-1, true, -1),
        ),
        response(
            "multi reply: Create2Response for create2/createTTL/createContainer (type 15), \
             SetDataResponse, check and delete without body",
            14,
            11,
            0,
            Bytes::reply(11, ZXID, 0)
                .mh(15, false, 0)
                .ustring("/m/c2")
                .stat(ZXID, 0, 1, 0)
                .mh(15, false, 0)
                .ustring("/m/ttl")
                .stat(ZXID, TTL_OWNER, 0, 0)
                .mh(15, false, 0)
                .ustring("/m/cont")
                .stat(ZXID, CONTAINER_OWNER, 0, 0)
                .mh(5, false, 0)
                .stat(ZXID - 10, 0, 1, 3)
                .mh(13, false, 0)
                .mh(2, false, 0)
                .mh(-1, true, -1),
        ),
        // --- deleteContainer (20): issued only by the server's ContainerManager. Its body
        // is the path's raw UTF-8 bytes, without a jute length prefix
        // (PrepRequestProcessor: `new String(request.request.array())`).
        request(
            "deleteContainer (server-internal; body = raw path bytes)",
            20,
            0,
            Bytes::req(0, 20).raw(b"/app/cont"),
        ),
        // --- createSession (-10): server-internal, body = int timeOut
        // (ZooKeeperServer.createSession wraps the negotiated timeout in a ByteBuffer).
        request(
            "createSession (server-internal; body = int timeOut)",
            -10,
            0,
            Bytes::req(0, -10).int(30_000),
        ),
        // --- sasl (102), as the Java client sends it (kazoo's exchange is recorded too).
        request(
            "sasl GetSASLRequest with empty token",
            102,
            1,
            Bytes::req(1, 102).buffer(Some(b"")),
        ),
        response(
            "sasl SetSASLResponse with a challenge token",
            102,
            1,
            0,
            Bytes::reply(1, 0, 0).buffer(Some(b"realm=\"zk-sasl-md5\",nonce=\"abc\"")),
        ),
        // --- error replies for ops the clients cannot provoke.
        response(
            "createTTL reply Unimplemented (server without extendedTypesEnabled)",
            21,
            12,
            -6,
            Bytes::reply(12, ZXID, -6),
        ),
        response(
            "multi reply to an expired session: SessionExpired, header only",
            14,
            13,
            -112,
            Bytes::reply(13, ZXID, -112),
        ),
        // --- handshake variants.
        handshake(
            "ConnectRequest of a pre-3.4 client: no readOnly byte",
            "request",
            Bytes::default()
                .int(0)
                .long(0)
                .int(30_000)
                .long(0)
                .buffer(Some(&zero16)),
        ),
        handshake(
            "ConnectRequest re-attaching a session, readOnly=true",
            "request",
            Bytes::default()
                .int(0)
                .long(ZXID)
                .int(10_000)
                .long(SESSION)
                .buffer(Some(&passwd))
                .boolean(true),
        ),
        handshake(
            "ConnectResponse of a pre-3.4 server: no readOnly byte",
            "response",
            Bytes::default()
                .int(0)
                .int(10_000)
                .long(SESSION)
                .buffer(Some(&passwd)),
        ),
        handshake(
            "ConnectResponse from a read-only server: readOnly=true",
            "response",
            Bytes::default()
                .int(0)
                .int(10_000)
                .long(SESSION)
                .buffer(Some(&passwd))
                .boolean(true),
        ),
        handshake(
            "ConnectResponse for an expired session: timeOut 0, sessionId 0, zero passwd",
            "response",
            Bytes::default()
                .int(0)
                .int(0)
                .long(0)
                .buffer(Some(&zero16))
                .boolean(false),
        ),
    ]
}

/// Writes `<out>/handbuilt/*.bin` and returns their manifest rows.
pub(crate) fn write(out: &Path) -> Result<Vec<Row>> {
    let dir = out.join("handbuilt");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    for (i, v) in vectors().into_iter().enumerate() {
        let n = i + 1;
        let opname = v.op.map_or_else(|| "connect".to_string(), op_name);
        let file = format!("handbuilt/{n:04}-{}-{opname}.bin", v.direction);
        fs::write(out.join(&file), &v.bytes).with_context(|| format!("writing {file}"))?;
        let dash = || "-".to_string();
        rows.push(Row {
            file,
            client: "handbuilt".into(),
            step: format!("{n:02} {}", v.what),
            direction: v.direction,
            opcode: v
                .op
                .map_or_else(|| "connect".to_string(), |o| o.to_string()),
            xid: v.xid.map_or_else(dash, |x| x.to_string()),
            err: v.err.map_or_else(dash, |e| e.to_string()),
        });
    }
    println!("golden: wrote {} hand-built vectors", rows.len());
    Ok(rows)
}
