//! proptest strategies for every record, shared by the round-trip and no-panic tests.
#![allow(dead_code, unreachable_pub)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use rookery_wire::proto::*;
use rookery_wire::{Acl, Id, OpCode, Stat};

pub fn string() -> impl Strategy<Value = String> {
    prop_oneof!["/[a-z0-9/]{0,12}", "\\PC{0,6}", Just(String::new()),]
}

pub fn opt_string() -> impl Strategy<Value = Option<String>> {
    option::of(string())
}

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

pub fn opt_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    option::of(bytes())
}

pub fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(string(), 0..4)
}

pub fn stat() -> impl Strategy<Value = Stat> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<i32>(), any::<i32>(), any::<i32>()),
        (any::<i64>(), any::<i32>(), any::<i32>(), any::<i64>()),
    )
        .prop_map(
            |(
                (czxid, mzxid, ctime, mtime),
                (version, cversion, aversion),
                (ephemeral_owner, data_length, num_children, pzxid),
            )| Stat {
                czxid,
                mzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                ephemeral_owner,
                data_length,
                num_children,
                pzxid,
            },
        )
}

pub fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec(
        (any::<i32>(), string(), string()).prop_map(|(p, s, i)| Acl::new(p, Id::new(s, i))),
        0..3,
    )
}

pub fn create_request() -> impl Strategy<Value = CreateRequest> {
    (string(), opt_bytes(), acls(), any::<i32>()).prop_map(|(path, data, acl, flags)| {
        CreateRequest {
            path,
            data,
            acl,
            flags,
        }
    })
}

pub fn create_ttl_request() -> impl Strategy<Value = CreateTtlRequest> {
    (string(), opt_bytes(), acls(), any::<i32>(), any::<i64>()).prop_map(
        |(path, data, acl, flags, ttl)| CreateTtlRequest {
            path,
            data,
            acl,
            flags,
            ttl,
        },
    )
}

pub fn path_version() -> impl Strategy<Value = (String, i32)> {
    (string(), any::<i32>())
}

pub fn path_watch() -> impl Strategy<Value = (String, bool)> {
    (string(), any::<bool>())
}

pub fn multi_write_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_request().prop_map(Request::Create),
        create_request().prop_map(Request::Create2),
        create_request().prop_map(Request::CreateContainer),
        create_ttl_request().prop_map(Request::CreateTtl),
        path_version().prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        (string(), opt_bytes(), any::<i32>()).prop_map(|(path, data, version)| {
            Request::SetData(SetDataRequest {
                path,
                data,
                version,
            })
        }),
        path_version()
            .prop_map(|(path, version)| Request::Check(CheckVersionRequest { path, version })),
    ]
}

pub fn multi_read_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        path_watch().prop_map(|(path, watch)| Request::GetData(GetDataRequest { path, watch })),
        path_watch()
            .prop_map(|(path, watch)| Request::GetChildren(GetChildrenRequest { path, watch })),
    ]
}

/// Opcodes that decode as `Request::Unknown`.
pub fn unknown_op() -> impl Strategy<Value = i32> {
    prop_oneof![
        any::<i32>().prop_filter("known opcode", |op| OpCode::from_i32(*op).is_none()),
        Just(0),
        Just(-1),
        Just(-10),
    ]
}

pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        multi_write_op(),
        multi_read_op(),
        path_watch().prop_map(|(path, watch)| Request::Exists(ExistsRequest { path, watch })),
        string().prop_map(|path| Request::GetAcl(GetAclRequest { path })),
        (string(), acls(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        path_watch()
            .prop_map(|(path, watch)| Request::GetChildren2(GetChildren2Request { path, watch })),
        string().prop_map(|path| Request::Sync(SyncRequest { path })),
        Just(Request::Ping),
        vec(multi_write_op(), 0..4).prop_map(|ops| Request::Multi(MultiRequest { ops })),
        vec(multi_read_op(), 0..4).prop_map(|ops| Request::MultiRead(MultiRequest { ops })),
        (opt_string(), opt_string(), opt_string(), any::<i64>()).prop_map(|(j, l, n, c)| {
            Request::Reconfig(ReconfigRequest {
                joining_servers: j,
                leaving_servers: l,
                new_members: n,
                cur_config_id: c,
            })
        }),
        (string(), any::<i32>()).prop_map(|(path, watcher_type)| {
            Request::CheckWatches(CheckWatchesRequest { path, watcher_type })
        }),
        (string(), any::<i32>()).prop_map(|(path, watcher_type)| {
            Request::RemoveWatches(RemoveWatchesRequest { path, watcher_type })
        }),
        (any::<i32>(), string(), opt_bytes()).prop_map(|(auth_type, scheme, auth)| {
            Request::Auth(AuthPacket {
                auth_type,
                scheme,
                auth,
            })
        }),
        (any::<i64>(), strings(), strings(), strings()).prop_map(|(z, d, e, c)| {
            Request::SetWatches(SetWatches {
                relative_zxid: z,
                data_watches: d,
                exist_watches: e,
                child_watches: c,
            })
        }),
        (
            any::<i64>(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings()
        )
            .prop_map(|(z, d, e, c, p, r)| Request::SetWatches2(SetWatches2 {
                relative_zxid: z,
                data_watches: d,
                exist_watches: e,
                child_watches: c,
                persistent_watches: p,
                persistent_recursive_watches: r,
            })),
        opt_bytes().prop_map(|token| Request::Sasl(GetSaslRequest { token })),
        string()
            .prop_map(|prefix_path| Request::GetEphemerals(GetEphemeralsRequest { prefix_path })),
        string()
            .prop_map(|path| Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path })),
        (string(), any::<i32>())
            .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
        string().prop_map(|path| {
            Request::DeleteContainer(DeleteContainerRequest { path: path.into() })
        }),
        (unknown_op(), bytes()).prop_map(|(op, body)| Request::Unknown { op, body }),
    ]
}

pub fn client_request() -> impl Strategy<Value = ClientRequest> {
    (any::<i32>(), request()).prop_map(|(xid, body)| ClientRequest {
        header: RequestHeader {
            xid,
            op: body.op_code(),
        },
        body,
    })
}

pub fn op_result() -> impl Strategy<Value = OpResult> {
    prop_oneof![
        string().prop_map(|path| OpResult::Create(CreateResponse { path })),
        (string(), stat())
            .prop_map(|(path, stat)| OpResult::Create2(Create2Response { path, stat })),
        Just(OpResult::Delete),
        stat().prop_map(|stat| OpResult::SetData(SetDataResponse { stat })),
        Just(OpResult::Check),
        (opt_bytes(), stat())
            .prop_map(|(data, stat)| OpResult::GetData(GetDataResponse { data, stat })),
        strings().prop_map(|children| OpResult::GetChildren(GetChildrenResponse { children })),
        any::<i32>().prop_map(OpResult::Error),
    ]
}

pub fn multi_response() -> impl Strategy<Value = MultiResponse> {
    vec(op_result(), 0..5).prop_map(|results| MultiResponse { results })
}

/// A successful body together with the opcode it answers.
pub fn answered_body() -> impl Strategy<Value = (OpCode, Response)> {
    use OpCode as O;
    prop_oneof![
        string().prop_map(|path| (O::Create, Response::Create(CreateResponse { path }))),
        (
            prop_oneof![
                Just(O::Create2),
                Just(O::CreateContainer),
                Just(O::CreateTtl)
            ],
            string(),
            stat()
        )
            .prop_map(|(op, path, stat)| (op, Response::Create2(Create2Response { path, stat }))),
        stat().prop_map(|stat| (O::Exists, Response::Exists(ExistsResponse { stat }))),
        (opt_bytes(), stat()).prop_map(|(data, stat)| (
            O::GetData,
            Response::GetData(GetDataResponse { data, stat })
        )),
        stat().prop_map(|stat| (O::SetData, Response::SetData(SetDataResponse { stat }))),
        stat().prop_map(|stat| (O::Check, Response::SetData(SetDataResponse { stat }))),
        (acls(), stat())
            .prop_map(|(acl, stat)| (O::GetAcl, Response::GetAcl(GetAclResponse { acl, stat }))),
        stat().prop_map(|stat| (O::SetAcl, Response::SetAcl(SetAclResponse { stat }))),
        strings().prop_map(|children| (
            O::GetChildren,
            Response::GetChildren(GetChildrenResponse { children })
        )),
        (strings(), stat()).prop_map(|(children, stat)| (
            O::GetChildren2,
            Response::GetChildren2(GetChildren2Response { children, stat })
        )),
        string().prop_map(|path| (O::Sync, Response::Sync(SyncResponse { path }))),
        multi_response().prop_map(|m| (O::Multi, Response::Multi(m))),
        multi_response().prop_map(|m| (O::MultiRead, Response::MultiRead(m))),
        (opt_bytes(), stat()).prop_map(|(data, stat)| (
            O::Reconfig,
            Response::Reconfig(GetDataResponse { data, stat })
        )),
        opt_bytes().prop_map(|token| (O::Sasl, Response::Sasl(SetSaslResponse { token }))),
        strings().prop_map(|ephemerals| (
            O::GetEphemerals,
            Response::GetEphemerals(GetEphemeralsResponse { ephemerals })
        )),
        any::<i32>().prop_map(|total_number| (
            O::GetAllChildrenNumber,
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number })
        )),
        vec((string(), string()), 0..3).prop_map(|infos| (
            O::WhoAmI,
            Response::WhoAmI(WhoAmIResponse {
                client_info: infos
                    .into_iter()
                    .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                    .collect(),
            })
        )),
        any::<i32>().prop_map(|err| (O::AddWatch, Response::AddWatch(ErrorResponse { err }))),
        prop_oneof![
            Just(O::Delete),
            Just(O::DeleteContainer),
            Just(O::CheckWatches),
            Just(O::RemoveWatches),
            Just(O::SetWatches2),
            Just(O::CloseSession),
            Just(O::Check),
        ]
        .prop_map(|op| (op, Response::Empty)),
    ]
}

fn ordinary_xid() -> impl Strategy<Value = i32> {
    any::<i32>().prop_filter("special xid", |x| ![-1, -2, -4, -8].contains(x))
}

fn any_op() -> impl Strategy<Value = OpCode> {
    proptest::sample::select(OpCode::ALL.to_vec())
}

/// A reply as ZooKeeper could send it, with the opcode of the request it answers.
pub fn server_response() -> impl Strategy<Value = (OpCode, ServerResponse)> {
    prop_oneof![
        4 => (ordinary_xid(), any::<i64>(), answered_body()).prop_map(|(xid, zxid, (op, body))| {
            (op, ServerResponse { header: ReplyHeader { xid, zxid, err: 0 }, body })
        }),
        1 => (ordinary_xid(), any::<i64>(), any::<i32>().prop_filter("ok", |e| *e != 0), any_op())
            .prop_map(|(xid, zxid, err, op)| {
                (op, ServerResponse { header: ReplyHeader { xid, zxid, err }, body: Response::Empty })
            }),
        1 => (any::<i64>(), any::<i32>(), any::<i32>(), string(), any_op()).prop_map(
            |(zxid, event_type, state, path, op)| {
                (op, ServerResponse {
                    header: ReplyHeader { xid: -1, zxid, err: 0 },
                    body: Response::Notification(WatcherEvent { event_type, state, path }),
                })
            }
        ),
        1 => (prop_oneof![Just(-2), Just(-4), Just(-8)], any::<i64>(), any::<i32>(), any_op())
            .prop_map(|(xid, zxid, err, op)| {
                (op, ServerResponse { header: ReplyHeader { xid, zxid, err }, body: Response::Empty })
            }),
        1 => (ordinary_xid(), prop_oneof![Just(-115), Just(-124)], opt_bytes()).prop_map(
            |(xid, err, token)| {
                (OpCode::Sasl, ServerResponse {
                    header: ReplyHeader { xid, zxid: 0, err },
                    body: Response::Sasl(SetSaslResponse { token }),
                })
            }
        ),
    ]
}

pub fn connect_request() -> impl Strategy<Value = ConnectRequest> {
    (
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
        any::<i64>(),
        bytes(),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(protocol_version, last_zxid_seen, timeout_ms, session_id, passwd, read_only)| {
                ConnectRequest {
                    protocol_version,
                    last_zxid_seen,
                    timeout_ms,
                    session_id,
                    passwd,
                    read_only,
                }
            },
        )
}

pub fn connect_response() -> impl Strategy<Value = ConnectResponse> {
    (
        any::<i32>(),
        any::<i32>(),
        any::<i64>(),
        bytes(),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(protocol_version, timeout_ms, session_id, passwd, read_only)| ConnectResponse {
                protocol_version,
                timeout_ms,
                session_id,
                passwd,
                read_only,
            },
        )
}
