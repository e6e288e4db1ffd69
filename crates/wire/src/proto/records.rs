//! Every record of `zookeeper.jute` (release-3.9.5) that the client protocol carries,
//! field for field in jute's order.
//!
//! Nullability follows what real peers send, so that decode-then-encode is byte-exact:
//! buffers that clients or the server really send as null (create/setData data, getData
//! and reconfig response data, SASL tokens, auth bytes) and the reconfig strings are
//! `Option`; everything else reads null as empty (no real peer sends null there, and an
//! empty path is as invalid to ZooKeeper as a null one).

use crate::data::{Acl, Stat, read_acl_list, write_acl_list};
use crate::error::DecodeResult;
use crate::jute::{Reader, Record, Writer};

/// How one field type is read and written; keeps the record definitions declarative.
pub(crate) trait Field: Sized {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self>;
    fn write(&self, w: &mut Writer);
}

impl Field for i32 {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_i32(name)
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(*self);
    }
}

impl Field for i64 {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_i64(name)
    }
    fn write(&self, w: &mut Writer) {
        w.write_i64(*self);
    }
}

impl Field for bool {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_bool(name)
    }
    fn write(&self, w: &mut Writer) {
        w.write_bool(*self);
    }
}

/// `ustring`, null read as empty.
impl Field for String {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_string(name)
    }
    fn write(&self, w: &mut Writer) {
        w.write_string(self);
    }
}

/// `ustring` that may be null.
impl Field for Option<String> {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_string_opt(name)
    }
    fn write(&self, w: &mut Writer) {
        w.write_string_opt(self.as_deref());
    }
}

/// `buffer`, null read as empty.
impl Field for Vec<u8> {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_buffer(name)
    }
    fn write(&self, w: &mut Writer) {
        w.write_buffer(self);
    }
}

/// `buffer` that may be null.
impl Field for Option<Vec<u8>> {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_buffer_opt(name)
    }
    fn write(&self, w: &mut Writer) {
        w.write_buffer_opt(self.as_deref());
    }
}

/// `vector<ustring>`, null read as empty.
impl Field for Vec<String> {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_vec(name, 4, |r| r.read_string(name))
    }
    fn write(&self, w: &mut Writer) {
        w.write_vec(self, |w, s| w.write_string(s));
    }
}

/// `vector<ACL>`, null read as empty.
impl Field for Vec<Acl> {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        read_acl_list(r, name)
    }
    fn write(&self, w: &mut Writer) {
        write_acl_list(w, self);
    }
}

impl Field for Stat {
    fn read(r: &mut Reader<'_>, _name: &'static str) -> DecodeResult<Self> {
        Stat::decode(r)
    }
    fn write(&self, w: &mut Writer) {
        self.encode(w);
    }
}

/// `vector<ClientInfo>`, null read as empty.
impl Field for Vec<ClientInfo> {
    fn read(r: &mut Reader<'_>, name: &'static str) -> DecodeResult<Self> {
        r.read_vec(name, 8, ClientInfo::decode)
    }
    fn write(&self, w: &mut Writer) {
        w.write_vec(self, |w, c| c.encode(w));
    }
}

/// Declares a record struct whose fields are encoded in declaration order. Each field
/// names its jute field, so decode errors read like `CreateRequest.path`.
macro_rules! record {
    ($(#[$meta:meta])* $name:ident {
        $($(#[$fmeta:meta])* $field:ident : $ty:ty = $wire:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl Record for $name {
            #[allow(unused_variables)]
            fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
                Ok($name {
                    $($field: <$ty as Field>::read(r, concat!(stringify!($name), ".", $wire))?,)*
                })
            }

            #[allow(unused_variables)]
            fn encode(&self, w: &mut Writer) {
                $(Field::write(&self.$field, w);)*
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// Headers and the session handshake.

record! {
    /// Precedes every request body except the handshake. `op` stays a raw `i32` so an
    /// unknown opcode can still be answered with Unimplemented under the right xid.
    RequestHeader {
        xid: i32 = "xid",
        op: i32 = "type",
    }
}

record! {
    /// Precedes every reply body. `zxid` is the server's last processed zxid (for a
    /// notification, since 3.9, the zxid of the change that fired the watch).
    ReplyHeader {
        xid: i32 = "xid",
        zxid: i64 = "zxid",
        err: i32 = "err",
    }
}

record! {
    /// Frames each operation inside a multi request or response. A header with `done`
    /// set ends the list (ZooKeeper writes `{-1, true, -1}`).
    MultiHeader {
        op_type: i32 = "type",
        done: bool = "done",
        err: i32 = "err",
    }
}

impl MultiHeader {
    /// What every ZooKeeper client and server writes after the last operation.
    pub const END: MultiHeader = MultiHeader {
        op_type: -1,
        done: true,
        err: -1,
    };
}

/// The first frame a client sends. `read_only` is `None` when the client did not send
/// the trailing byte (pre-3.4 clients, node-zookeeper-client, ClickHouse): 44 bytes
/// instead of 45 with a 16-byte password; the server must then answer without it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    /// The connect request is always a frame of its own, so "the byte is there" is
    /// "anything is left" (`ProtocolManager.deserializeConnectRequest`).
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32("ConnectRequest.protocolVersion")?,
            last_zxid_seen: r.read_i64("ConnectRequest.lastZxidSeen")?,
            timeout_ms: r.read_i32("ConnectRequest.timeOut")?,
            session_id: r.read_i64("ConnectRequest.sessionId")?,
            passwd: r.read_buffer("ConnectRequest.passwd")?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool("ConnectRequest.readOnly")?)
            },
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i64(self.last_zxid_seen);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

/// The server's answer to [`ConnectRequest`]. `read_only: None` encodes the 36-byte form
/// (with a 16-byte password) that clients which did not send the flag expect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl Record for ConnectResponse {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32("ConnectResponse.protocolVersion")?,
            timeout_ms: r.read_i32("ConnectResponse.timeOut")?,
            session_id: r.read_i64("ConnectResponse.sessionId")?,
            passwd: r.read_buffer("ConnectResponse.passwd")?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool("ConnectResponse.readOnly")?)
            },
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

record! {
    /// A watch event, sent with xid -1. `event_type` and `state` stay raw so a value
    /// from a newer server still round-trips (see [`crate::EventType`], [`crate::KeeperState`]).
    WatcherEvent {
        event_type: i32 = "type",
        state: i32 = "state",
        path: String = "path",
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies.

record! {
    /// Body of create (1), create2 (15) and createContainer (19). `data: None` is the
    /// Java client's `create(path, null, ...)`, which ZooKeeper stores as null data.
    CreateRequest {
        path: String = "path",
        data: Option<Vec<u8>> = "data",
        acl: Vec<Acl> = "acl",
        flags: i32 = "flags",
    }
}

record! {
    /// Body of createTTL (21).
    CreateTtlRequest {
        path: String = "path",
        data: Option<Vec<u8>> = "data",
        acl: Vec<Acl> = "acl",
        flags: i32 = "flags",
        ttl: i64 = "ttl",
    }
}

record! {
    DeleteRequest {
        path: String = "path",
        version: i32 = "version",
    }
}

/// Op 20, meant only for the server's own container manager. Its body is the path's
/// raw bytes with no length prefix (`PrepRequestProcessor` reads
/// `new String(request.request.array())`), so it is not a jute record; kept as bytes
/// because nothing guarantees they are UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DeleteContainerRequest {
    pub path: Vec<u8>,
}

impl Record for DeleteContainerRequest {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self> {
        Ok(DeleteContainerRequest {
            path: r.read_rest().to_vec(),
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.write_raw(&self.path);
    }
}

record! {
    ExistsRequest {
        path: String = "path",
        watch: bool = "watch",
    }
}

record! {
    GetDataRequest {
        path: String = "path",
        watch: bool = "watch",
    }
}

record! {
    SetDataRequest {
        path: String = "path",
        data: Option<Vec<u8>> = "data",
        version: i32 = "version",
    }
}

record! {
    GetAclRequest {
        path: String = "path",
    }
}

record! {
    SetAclRequest {
        path: String = "path",
        acl: Vec<Acl> = "acl",
        version: i32 = "version",
    }
}

record! {
    GetChildrenRequest {
        path: String = "path",
        watch: bool = "watch",
    }
}

record! {
    GetChildren2Request {
        path: String = "path",
        watch: bool = "watch",
    }
}

record! {
    SyncRequest {
        path: String = "path",
    }
}

record! {
    CheckVersionRequest {
        path: String = "path",
        version: i32 = "version",
    }
}

record! {
    /// Incremental reconfig sets joining/leaving and leaves `new_members` null; a
    /// non-incremental one does the opposite, so all three are nullable on the wire.
    ReconfigRequest {
        joining_servers: Option<String> = "joiningServers",
        leaving_servers: Option<String> = "leavingServers",
        new_members: Option<String> = "newMembers",
        cur_config_id: i64 = "curConfigId",
    }
}

record! {
    /// `watcher_type` is a [`crate::WatcherType`] value.
    CheckWatchesRequest {
        path: String = "path",
        watcher_type: i32 = "type",
    }
}

record! {
    /// `watcher_type` is a [`crate::WatcherType`] value.
    RemoveWatchesRequest {
        path: String = "path",
        watcher_type: i32 = "type",
    }
}

record! {
    /// Sent with xid -4. `auth_type` is always 0 in every client we know.
    AuthPacket {
        auth_type: i32 = "type",
        scheme: String = "scheme",
        auth: Option<Vec<u8>> = "auth",
    }
}

record! {
    /// Re-registers watches after a reconnect (xid -8); the server fires those whose
    /// node changed after `relative_zxid`.
    SetWatches {
        relative_zxid: i64 = "relativeZxid",
        data_watches: Vec<String> = "dataWatches",
        exist_watches: Vec<String> = "existWatches",
        child_watches: Vec<String> = "childWatches",
    }
}

record! {
    /// [`SetWatches`] plus persistent watches (op 105, 3.6+).
    SetWatches2 {
        relative_zxid: i64 = "relativeZxid",
        data_watches: Vec<String> = "dataWatches",
        exist_watches: Vec<String> = "existWatches",
        child_watches: Vec<String> = "childWatches",
        persistent_watches: Vec<String> = "persistentWatches",
        persistent_recursive_watches: Vec<String> = "persistentRecursiveWatches",
    }
}

record! {
    /// A client SASL token (op 102, ordinary xid).
    GetSaslRequest {
        token: Option<Vec<u8>> = "token",
    }
}

record! {
    /// The server's SASL token; null when the mechanism has nothing to say, and also
    /// sent (null) with AuthFailed when SASL fails (`ZooKeeperServer.processSasl`).
    SetSaslResponse {
        token: Option<Vec<u8>> = "token",
    }
}

record! {
    GetEphemeralsRequest {
        prefix_path: String = "prefixPath",
    }
}

record! {
    GetEphemeralsResponse {
        ephemerals: Vec<String> = "ephemerals",
    }
}

record! {
    GetAllChildrenNumberRequest {
        path: String = "path",
    }
}

record! {
    GetAllChildrenNumberResponse {
        total_number: i32 = "totalNumber",
    }
}

record! {
    /// `mode` is an [`crate::AddWatchMode`] value.
    AddWatchRequest {
        path: String = "path",
        mode: i32 = "mode",
    }
}

// ---------------------------------------------------------------------------------------
// Response bodies.

record! {
    /// One identity of the caller, as whoAmI reports it.
    ClientInfo {
        auth_scheme: String = "authScheme",
        user: String = "user",
    }
}

record! {
    WhoAmIResponse {
        client_info: Vec<ClientInfo> = "clientInfo",
    }
}

record! {
    /// Answer to create (1).
    CreateResponse {
        path: String = "path",
    }
}

record! {
    /// Answer to create2, createContainer and createTTL.
    Create2Response {
        path: String = "path",
        stat: Stat = "stat",
    }
}

record! {
    ExistsResponse {
        stat: Stat = "stat",
    }
}

record! {
    /// Also the answer to reconfig (the new config as data). `data: None` for a node
    /// created with null data.
    GetDataResponse {
        data: Option<Vec<u8>> = "data",
        stat: Stat = "stat",
    }
}

record! {
    /// Also the body ZooKeeper sends for a stand-alone check (op 13).
    SetDataResponse {
        stat: Stat = "stat",
    }
}

record! {
    GetAclResponse {
        acl: Vec<Acl> = "acl",
        stat: Stat = "stat",
    }
}

record! {
    SetAclResponse {
        stat: Stat = "stat",
    }
}

record! {
    GetChildrenResponse {
        children: Vec<String> = "children",
    }
}

record! {
    GetChildren2Response {
        children: Vec<String> = "children",
        stat: Stat = "stat",
    }
}

record! {
    SyncResponse {
        path: String = "path",
    }
}

record! {
    /// A failed operation inside a multi response; also the 4-byte body (err 0)
    /// ZooKeeper sends in reply to addWatch.
    ErrorResponse {
        err: i32 = "err",
    }
}
