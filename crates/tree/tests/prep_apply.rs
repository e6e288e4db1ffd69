//! prep + apply against ZooKeeper 3.9's rules (PrepRequestProcessor, DataTree,
//! FinalRequestProcessor, DataNode.copyStat).

mod common;

use common::*;
use rookery_tree::{
    CONTAINER_OWNER, Caller, CreateKind, DataTree, MAX_TTL_MS, Op, OpResult, TreeConfig, Txn,
    TxnHeader, digest_for,
};
use rookery_wire::codes::perms;
use rookery_wire::{Acl, CreateMode, ErrorCode, EventType, Id, Stat};

fn stat(h: &H, p: &str) -> Stat {
    h.tree.stat(p).unwrap_or_else(|| panic!("{p} missing"))
}

#[test]
fn system_nodes_as_zookeeper_creates_them() {
    let t = DataTree::default();
    let root = t.stat("/").unwrap();
    // Stored cversion 0 with one child: clients see 2*0-1.
    assert_eq!(
        (root.czxid, root.mzxid, root.pzxid, root.version),
        (0, 0, 0, 0)
    );
    assert_eq!((root.cversion, root.num_children), (-1, 1));
    let zk = t.stat("/zookeeper").unwrap();
    assert_eq!((zk.cversion, zk.num_children), (-2, 2));
    let quota = t.stat("/zookeeper/quota").unwrap();
    assert_eq!(
        (quota.cversion, quota.num_children, quota.aversion),
        (0, 0, 0)
    );
    let config = t.stat("/zookeeper/config").unwrap();
    assert_eq!(config.aversion, -1, "addConfigNode's setACL(.., -1)");
    assert_eq!(config.data_length, 0);
    let c = Caller::new(1, &[]);
    assert_eq!(
        t.get_acl(&c, "/zookeeper/config").unwrap().0,
        Acl::read_unsafe()
    );
    assert_eq!(t.get_acl(&c, "/").unwrap().0, Acl::open_unsafe());
    assert_eq!(t.get_children(&c, "/").unwrap(), vec!["zookeeper"]);
    assert_eq!(
        t.get_children(&c, "/zookeeper").unwrap(),
        vec!["config", "quota"]
    );
    assert_eq!(t.get_all_children_number(&c, "/").unwrap(), 3);
    assert_eq!(t.get_all_children_number(&c, "/zookeeper").unwrap(), 2);
    assert_eq!(t.digest(), t.recompute_digest());
}

#[test]
fn stat_fields_after_each_op() {
    let mut h = H::with_sessions(); // zxids 1, 2
    let r = h.create("/a", b"xy").unwrap();
    let OpResult::Create {
        kind,
        path,
        stat: s,
    } = r.result
    else {
        panic!("{r:?}")
    };
    assert_eq!((kind, path.as_str()), (CreateKind::Create2, "/a"));
    assert_eq!((s.czxid, s.mzxid, s.pzxid), (3, 3, 3));
    assert_eq!((s.ctime, s.mtime), (h.time, h.time));
    assert_eq!(
        (s.version, s.cversion, s.aversion, s.ephemeral_owner),
        (0, 0, 0, 0)
    );
    assert_eq!((s.data_length, s.num_children), (2, 0));
    assert_eq!(s, stat(&h, "/a"));
    let root = stat(&h, "/");
    assert_eq!((root.cversion, root.pzxid, root.num_children), (0, 3, 2));

    h.create("/a/b", b"").unwrap(); // zxid 4
    let a = stat(&h, "/a");
    assert_eq!((a.cversion, a.pzxid, a.num_children, a.mzxid), (1, 4, 1, 3));

    h.run(S1, &[], del("/a/b", 0)).unwrap(); // zxid 5
    let a = stat(&h, "/a");
    assert_eq!((a.cversion, a.pzxid, a.num_children, a.mzxid), (2, 5, 0, 3));

    let r = h.run(S1, &[], set("/a", b"hello", -1)).unwrap(); // zxid 6
    let t6 = h.time;
    let OpResult::SetData { stat: s } = r.result else {
        panic!()
    };
    assert_eq!((s.version, s.mzxid, s.mtime, s.data_length), (1, 6, t6, 5));
    assert_eq!((s.czxid, s.cversion, s.pzxid), (3, 2, 5));
    assert_eq!(
        h.run(S1, &[], set("/a", b"", 0)),
        Err(ErrorCode::BadVersion)
    );
    h.run(S1, &[], set("/a", b"", 1)).unwrap();
    assert_eq!(stat(&h, "/a").version, 2);

    let r = h
        .run(
            S1,
            &[],
            Op::SetAcl {
                path: "/a".into(),
                acl: Acl::read_unsafe(),
                version: 0,
            },
        )
        .unwrap();
    let OpResult::SetAcl { stat: s } = r.result else {
        panic!()
    };
    assert_eq!((s.aversion, s.version), (1, 2));
    assert!(r.triggers.is_empty(), "setACL triggers no watch");
    assert_eq!(h.tree.digest(), h.tree.recompute_digest());
}

#[test]
fn create_error_codes_in_zookeeper_order() {
    let mut h = H::with_sessions();
    h.create("/a", b"").unwrap();
    assert_eq!(h.create("/x/y", b"").unwrap_err(), ErrorCode::NoNode);
    assert_eq!(h.create("/a", b"").unwrap_err(), ErrorCode::NodeExists);
    assert_eq!(h.create("/", b"").unwrap_err(), ErrorCode::NodeExists);
    assert_eq!(h.create("a", b"").unwrap_err(), ErrorCode::BadArguments);
    assert_eq!(h.create("", b"").unwrap_err(), ErrorCode::BadArguments);
    assert_eq!(h.create("/a\0b", b"").unwrap_err(), ErrorCode::BadArguments);
    // Path validation comes after the parent lookup: /q/ has parent /q.
    assert_eq!(h.create("/q/", b"").unwrap_err(), ErrorCode::NoNode);
    assert_eq!(h.create("/a/", b"").unwrap_err(), ErrorCode::BadArguments);
    assert_eq!(h.create("/a//b", b"").unwrap_err(), ErrorCode::NoNode);
    assert_eq!(h.create("/a/.", b"").unwrap_err(), ErrorCode::BadArguments);
    // ... which is why a sequential create may end in '/'.
    let r = h
        .run(
            S1,
            &[],
            create("/a/", b"", CreateMode::PersistentSequential),
        )
        .unwrap();
    assert!(matches!(r.result, OpResult::Create { ref path, .. } if path == "/a/0000000000"));
    // Empty ACL is InvalidACL before the parent is even looked up.
    assert_eq!(
        h.run(
            S1,
            &[],
            create_acl("/nope/x", b"", CreateMode::Persistent, vec![])
        ),
        Err(ErrorCode::InvalidAcl)
    );
    // Ephemeral parents cannot have children; NodeExists is checked first.
    h.run(S1, &[], create("/e", b"", CreateMode::Ephemeral))
        .unwrap();
    assert_eq!(
        h.create("/e/c", b"").unwrap_err(),
        ErrorCode::NoChildrenForEphemerals
    );
}

#[test]
fn delete_and_set_error_codes() {
    let mut h = H::with_sessions();
    h.create("/a", b"").unwrap();
    h.create("/a/b", b"").unwrap();
    assert_eq!(h.run(S1, &[], del("/a", -1)), Err(ErrorCode::NotEmpty));
    assert_eq!(h.run(S1, &[], del("/a/b", 3)), Err(ErrorCode::BadVersion));
    assert_eq!(h.run(S1, &[], del("/a/zz", -1)), Err(ErrorCode::NoNode));
    assert_eq!(h.run(S1, &[], del("/zz/a", -1)), Err(ErrorCode::NoNode));
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(
            h.run(S1, &[], del(special, -1)),
            Err(ErrorCode::BadArguments)
        );
    }
    assert_eq!(
        h.run(S1, &[], del("nopath", -1)),
        Err(ErrorCode::BadArguments)
    );
    // Version is checked before emptiness.
    assert_eq!(h.run(S1, &[], del("/a", 5)), Err(ErrorCode::BadVersion));
    assert_eq!(h.run(S1, &[], set("/zz", b"", -1)), Err(ErrorCode::NoNode));
    assert_eq!(
        h.run(S1, &[], set("/a/", b"", -1)),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(h.run(S1, &[], check("/a", 1)), Err(ErrorCode::BadVersion));
    let r = h.run(S1, &[], check("/a", 0)).unwrap();
    assert_eq!(r.result, OpResult::Check);
    h.run(S1, &[], del("/a/b", 0)).unwrap();
    h.run(S1, &[], del("/a", 0)).unwrap();
    assert!(h.tree.node("/a").is_none());
}

#[test]
fn sequential_names_use_the_parents_create_counter() {
    let mut h = H::with_sessions();
    h.create("/s", b"").unwrap();
    let name = |r: rookery_tree::ApplyResult| match r.result {
        OpResult::Create { path, .. } => path,
        other => panic!("{other:?}"),
    };
    let seq = CreateMode::PersistentSequential;
    assert_eq!(
        name(h.run(S1, &[], create("/s/x-", b"", seq)).unwrap()),
        "/s/x-0000000000"
    );
    assert_eq!(
        name(h.run(S1, &[], create("/s/x-", b"", seq)).unwrap()),
        "/s/x-0000000001"
    );
    h.create("/s/plain", b"").unwrap(); // also counts
    h.run(S1, &[], del("/s/x-0000000000", -1)).unwrap(); // deletes do not
    assert_eq!(
        name(h.run(S1, &[], create("/s/x-", b"", seq)).unwrap()),
        "/s/x-0000000003"
    );
    // Client-visible cversion counts creates and deletes: 4 creates + 1 delete.
    assert_eq!(stat(&h, "/s").cversion, 5);
    let eseq = CreateMode::EphemeralSequential;
    assert_eq!(
        name(h.run(S1, &[], create("/s/e", b"", eseq)).unwrap()),
        "/s/e0000000004"
    );

    // Signed overflow: after 2147483647 comes -2147483648 (Java's %010d of a negative).
    let hdr = TxnHeader {
        session_id: S1,
        cxid: 0,
        zxid: h.zxid + 1,
        time_ms: 0,
    };
    h.zxid += 1;
    h.tree.apply(
        &hdr,
        Txn::Create {
            kind: CreateKind::Create,
            path: "/s/jump".into(),
            data: Some(vec![]),
            acl: Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: i32::MAX,
        },
    );
    assert_eq!(
        name(h.run(S1, &[], create("/s/x-", b"", seq)).unwrap()),
        "/s/x-2147483647"
    );
    assert_eq!(
        name(h.run(S1, &[], create("/s/x-", b"", seq)).unwrap()),
        "/s/x--2147483648"
    );
    assert_eq!(
        name(h.run(S1, &[], create("/s/x-", b"", seq)).unwrap()),
        "/s/x--2147483647"
    );
}

#[test]
fn prep_sees_pending_changes() {
    let mut h = H::with_sessions();
    h.prep(S1, &[], create("/a", b"", CreateMode::Persistent))
        .unwrap();
    h.prep(S1, &[], create("/a/b", b"", CreateMode::Persistent))
        .unwrap();
    assert_eq!(
        h.prep(S1, &[], create("/a", b"", CreateMode::Persistent)),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(h.prep(S1, &[], del("/a", -1)), Err(ErrorCode::NotEmpty));
    h.prep(S1, &[], set("/a/b", b"1", 0)).unwrap();
    assert_eq!(
        h.prep(S1, &[], set("/a/b", b"2", 0)),
        Err(ErrorCode::BadVersion)
    );
    h.prep(S1, &[], set("/a/b", b"2", 1)).unwrap();
    let seq = CreateMode::PersistentSequential;
    let (_, t1) = h.prep(S1, &[], create("/a/s", b"", seq)).unwrap();
    let (_, t2) = h.prep(S1, &[], create("/a/s", b"", seq)).unwrap();
    let path = |t: &Txn| match t {
        Txn::Create { path, .. } => path.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (path(&t1), path(&t2)),
        ("/a/s0000000001".into(), "/a/s0000000002".into())
    );
    h.prep(S1, &[], del("/a/b", 2)).unwrap();
    assert!(h.tree.node("/a").is_none(), "nothing applied yet");
    let results = h.apply_all();
    assert!(
        results
            .iter()
            .all(|r| r.result.reply_err() == ErrorCode::Ok),
        "{results:?}"
    );
    assert!(h.pending.is_empty());
    assert_eq!(stat(&h, "/a").num_children, 2);
    assert!(h.tree.node("/a/b").is_none());
}

#[test]
fn multi_success_shares_one_zxid_and_echoes_opcodes() {
    let mut h = H::with_sessions();
    let ops = vec![
        Op::Create {
            kind: CreateKind::Create,
            path: "/m".into(),
            data: Some(b"d".to_vec()),
            acl: Acl::open_unsafe(),
            mode: CreateMode::Persistent,
            ttl_ms: None,
        },
        create("/m/c", b"", CreateMode::Persistent),
        set("/m", b"dd", 0),
        check("/m", 1),
        del("/m/c", 0),
    ];
    let r = h.run(S1, &[], Op::Multi(ops)).unwrap();
    let OpResult::Multi(rs) = &r.result else {
        panic!()
    };
    assert_eq!(rs.len(), 5);
    assert!(
        matches!(&rs[0], OpResult::Create { kind: CreateKind::Create, path, .. } if path == "/m")
    );
    assert!(
        matches!(&rs[1], OpResult::Create { kind: CreateKind::Create2, path, .. } if path == "/m/c")
    );
    assert!(matches!(&rs[2], OpResult::SetData { stat } if stat.version == 1));
    assert_eq!(rs[3], OpResult::Check);
    assert_eq!(rs[4], OpResult::Delete);
    let m = stat(&h, "/m");
    assert_eq!(
        (m.czxid, m.mzxid, m.pzxid, m.version, m.cversion),
        (3, 3, 3, 1, 2)
    );
    // created, children changed, data changed, deleted, children changed ...
    let kinds: Vec<EventType> = r.triggers.iter().map(|t| t.event_type).collect();
    assert_eq!(
        kinds,
        vec![
            EventType::NodeCreated,
            EventType::NodeChildrenChanged,
            EventType::NodeCreated,
            EventType::NodeChildrenChanged,
            EventType::NodeDataChanged,
            EventType::NodeDeleted,
            EventType::NodeChildrenChanged,
        ]
    );
    assert!(r.triggers.iter().all(|t| t.zxid == 3));
}

#[test]
fn failed_multi_layout_changes_nothing_and_fires_nothing() {
    let mut h = H::with_sessions();
    h.create("/x", b"").unwrap(); // zxid 3
    let before = h.tree.clone();
    let ops = vec![
        create("/f", b"", CreateMode::Persistent),
        set("/x", b"1", -1),
        del("/nope", -1),
        set("/x", b"2", -1),
    ];
    let (_, txn) = h.prep(S1, &[], Op::Multi(ops)).unwrap();
    assert_eq!(
        txn,
        Txn::Multi(vec![
            Txn::Error(ErrorCode::Ok),
            Txn::Error(ErrorCode::Ok),
            Txn::Error(ErrorCode::NoNode),
            Txn::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert!(
        h.pending.is_empty(),
        "failed multi rolled back its pending changes"
    );
    let r = h.apply_all().pop().unwrap();
    assert_eq!(
        r.result,
        OpResult::Multi(vec![
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::NoNode),
            OpResult::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert_eq!(
        r.result.reply_err(),
        ErrorCode::Ok,
        "ReplyHeader.err of a multi is 0"
    );
    assert!(r.triggers.is_empty());
    assert_eq!(h.tree.last_zxid(), 4, "the failed multi consumed a zxid");
    assert_eq!(h.tree.digest(), before.digest());
    assert_eq!(h.tree.nodes().count(), before.nodes().count());
    // The rolled-back create does not linger: /f can be created.
    h.create("/f", b"").unwrap();
}

#[test]
fn failed_multi_restores_earlier_pending_changes() {
    let mut h = H::with_sessions();
    h.prep(S1, &[], create("/p", b"", CreateMode::Persistent))
        .unwrap();
    h.prep(S1, &[], Op::Multi(vec![set("/p", b"1", 0), del("/zz", -1)]))
        .unwrap();
    // The multi's setData was rolled back: version is still 0 in the overlay.
    h.prep(S1, &[], set("/p", b"2", 0)).unwrap();
    let seq = CreateMode::PersistentSequential;
    h.prep(
        S1,
        &[],
        Op::Multi(vec![create("/p/s", b"", seq), del("/zz", -1)]),
    )
    .unwrap();
    let (_, t) = h.prep(S1, &[], create("/p/s", b"", seq)).unwrap();
    assert!(matches!(t, Txn::Create { ref path, .. } if path == "/p/s0000000000"));
    h.apply_all();
    assert_eq!(stat(&h, "/p").version, 1);
}

#[test]
fn multi_may_not_carry_other_ops() {
    let mut h = H::with_sessions();
    let bad = Op::Multi(vec![Op::SetAcl {
        path: "/".into(),
        acl: Acl::open_unsafe(),
        version: -1,
    }]);
    assert_eq!(h.prep(S1, &[], bad), Err(ErrorCode::MarshallingError));
    let r = h.run(S1, &[], Op::Multi(vec![])).unwrap();
    assert_eq!(r.result, OpResult::Multi(vec![]));
}

#[test]
fn ephemerals_and_close_session() {
    let mut h = H::with_sessions();
    h.create("/p", b"").unwrap();
    let r = h
        .run(S1, &[], create("/p/e1", b"", CreateMode::Ephemeral))
        .unwrap();
    assert!(matches!(r.result, OpResult::Create { stat, .. } if stat.ephemeral_owner == S1));
    h.run(S1, &[], create("/e2", b"", CreateMode::Ephemeral))
        .unwrap();
    h.run(S2, &[], create("/e3", b"", CreateMode::Ephemeral))
        .unwrap();
    assert_eq!(h.tree.get_ephemerals(S1, "/"), vec!["/e2", "/p/e1"]);
    assert_eq!(h.tree.get_ephemerals(S1, ""), vec!["/e2", "/p/e1"]);
    assert_eq!(h.tree.get_ephemerals(S1, "/p"), vec!["/p/e1"]);
    assert_eq!(h.tree.get_ephemerals(S2, "/"), vec!["/e3"]);
    // An ephemeral prepped but not applied is closed too.
    h.prep(S1, &[], create("/e4", b"", CreateMode::Ephemeral))
        .unwrap();
    let (_, close) = h.prep(S1, &[], Op::CloseSession).unwrap();
    assert_eq!(
        close,
        Txn::CloseSession {
            paths: vec!["/e2".into(), "/e4".into(), "/p/e1".into()]
        }
    );
    // The session is closing: everything else it sends is SessionExpired.
    assert_eq!(
        h.prep(S1, &[], set("/p", b"", -1)),
        Err(ErrorCode::SessionExpired)
    );
    assert_eq!(
        h.prep(S1, &[], create("/e5", b"", CreateMode::Ephemeral)),
        Err(ErrorCode::SessionExpired)
    );
    let results = h.apply_all();
    let closed = results.last().unwrap();
    assert_eq!(closed.result, OpResult::CloseSession);
    let deleted: Vec<&str> = closed
        .triggers
        .iter()
        .filter(|t| t.event_type == EventType::NodeDeleted)
        .map(|t| t.path.as_str())
        .collect();
    assert_eq!(deleted, vec!["/e2", "/e4", "/p/e1"]);
    assert_eq!(
        closed.triggers.len(),
        6,
        "each delete also changes its parent's children"
    );
    assert!(h.tree.get_ephemerals(S1, "/").is_empty());
    assert!(!h.tree.sessions().contains_key(&S1));
    assert!(h.tree.node("/e3").is_some());
    let p = stat(&h, "/p");
    assert_eq!(p.pzxid, closed.header.zxid);
    // A session the tree does not know.
    assert_eq!(
        h.prep(S1, &[], set("/p", b"", -1)),
        Err(ErrorCode::UnknownSession)
    );
    assert_eq!(
        h.prep(S1, &[], create("/e6", b"", CreateMode::Ephemeral)),
        Err(ErrorCode::SessionExpired)
    );
    assert_eq!(h.tree.digest(), h.tree.recompute_digest());
}

#[test]
fn containers() {
    let mut h = H::with_sessions();
    let op = Op::Create {
        kind: CreateKind::CreateContainer,
        path: "/c".into(),
        data: Some(vec![]),
        acl: Acl::open_unsafe(),
        mode: CreateMode::Container,
        ttl_ms: None,
    };
    let r = h.run(S1, &[], op).unwrap();
    assert!(
        matches!(r.result, OpResult::Create { kind: CreateKind::CreateContainer, stat, .. } if stat.ephemeral_owner == 0)
    );
    assert_eq!(
        h.tree.node("/c").unwrap().stat.ephemeral_owner,
        CONTAINER_OWNER
    );
    assert!(h.tree.containers().contains("/c"));
    assert!(
        h.tree.container_candidates(i64::MAX, 0).is_empty(),
        "never had a child"
    );
    assert_eq!(h.tree.container_candidates(h.time + 1000, 500), vec!["/c"]);
    h.create("/c/x", b"").unwrap();
    assert!(h.tree.container_candidates(i64::MAX, 0).is_empty());
    let sys = Caller::system();
    assert_eq!(
        h.run_as(&sys, Op::DeleteContainer { path: "/c".into() }),
        Err(ErrorCode::NotEmpty)
    );
    h.run(S1, &[], del("/c/x", -1)).unwrap();
    assert_eq!(h.tree.container_candidates(0, 0), vec!["/c"]);
    let r = h
        .run_as(&sys, Op::DeleteContainer { path: "/c".into() })
        .unwrap();
    assert_eq!(r.result, OpResult::Delete);
    assert!(h.tree.containers().is_empty());
    h.run(S1, &[], create("/e", b"", CreateMode::Ephemeral))
        .unwrap();
    assert_eq!(
        h.run_as(&sys, Op::DeleteContainer { path: "/e".into() }),
        Err(ErrorCode::BadVersion)
    );
}

fn ttl_op(path: &str, mode: CreateMode, ttl: Option<i64>) -> Op {
    Op::Create {
        kind: CreateKind::CreateTtl,
        path: path.into(),
        data: Some(vec![]),
        acl: Acl::open_unsafe(),
        mode,
        ttl_ms: ttl,
    }
}

#[test]
fn ttl_nodes() {
    let mut h = H::with_sessions();
    let ttl = CreateMode::PersistentWithTtl;
    assert_eq!(
        h.run(S1, &[], ttl_op("/t", ttl, Some(100))),
        Err(ErrorCode::Unimplemented)
    );

    let mut h = H::with(TreeConfig {
        extended_types: true,
        ..TreeConfig::default()
    });
    h.open(S1);
    assert_eq!(
        h.run(S1, &[], ttl_op("/t", ttl, Some(0))),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.run(S1, &[], ttl_op("/t", ttl, None)),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.run(S1, &[], ttl_op("/t", ttl, Some(MAX_TTL_MS + 1))),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        h.run(S1, &[], ttl_op("/t", CreateMode::Persistent, Some(100))),
        Err(ErrorCode::BadArguments)
    );
    // A TTL mode needs createTTL: plain create carries no TTL.
    assert_eq!(
        h.run(S1, &[], create("/t", b"", CreateMode::PersistentWithTtl)),
        Err(ErrorCode::BadArguments)
    );
    let r = h.run(S1, &[], ttl_op("/t", ttl, Some(100))).unwrap();
    let created = h.time;
    assert!(matches!(r.result, OpResult::Create { stat, .. } if stat.ephemeral_owner == 0));
    assert_eq!(
        h.tree.node("/t").unwrap().stat.ephemeral_owner as u64,
        0xff00_0000_0000_0064
    );
    assert!(h.tree.ttl_nodes().contains("/t"));
    assert!(h.tree.container_candidates(created + 100, 0).is_empty());
    assert_eq!(h.tree.container_candidates(created + 101, 0), vec!["/t"]);
    let seq = CreateMode::PersistentSequentialWithTtl;
    let r = h.run(S1, &[], ttl_op("/t/s", seq, Some(5))).unwrap();
    assert!(matches!(r.result, OpResult::Create { ref path, .. } if path == "/t/s0000000000"));
    assert!(
        h.tree
            .container_candidates(i64::MAX, 0)
            .iter()
            .all(|p| p != "/t"),
        "has a child"
    );
}

#[test]
fn acl_enforcement() {
    let mut h = H::with_sessions();
    let u = vec![
        Id::new("ip", "127.0.0.1"),
        Id::new("digest", digest_for("u", "p")),
    ];
    let other = vec![
        Id::new("ip", "127.0.0.1"),
        Id::new("digest", digest_for("u", "wrong")),
    ];
    let acl = vec![Acl::new(
        perms::CREATE | perms::READ,
        Id::new("digest", digest_for("u", "p")),
    )];
    h.run(
        S1,
        &u,
        create_acl("/sec", b"s", CreateMode::Persistent, acl),
    )
    .unwrap();
    let cu = Caller::new(S1, &u);
    let co = Caller::new(S2, &other);
    assert!(h.tree.get_data(&cu, "/sec").is_ok());
    assert_eq!(h.tree.get_data(&co, "/sec").unwrap_err(), ErrorCode::NoAuth);
    assert_eq!(h.tree.exists(&co, "/sec").unwrap_err(), ErrorCode::NoAuth);
    assert_eq!(h.tree.exists(&co, "/missing").unwrap(), None);
    assert_eq!(
        h.tree.exists(&co, "/a\0").unwrap_err(),
        ErrorCode::BadArguments
    );
    assert_eq!(
        h.tree.get_children(&co, "/sec").unwrap_err(),
        ErrorCode::NoAuth
    );
    assert_eq!(
        h.tree.get_children2(&co, "/sec").unwrap_err(),
        ErrorCode::NoAuth
    );
    assert_eq!(
        h.tree.get_all_children_number(&co, "/sec").unwrap_err(),
        ErrorCode::NoAuth
    );
    assert_eq!(
        h.run(S2, &other, create("/sec/c", b"", CreateMode::Persistent)),
        Err(ErrorCode::NoAuth)
    );
    h.run(S1, &u, create("/sec/c", b"", CreateMode::Persistent))
        .unwrap();
    assert_eq!(
        h.run(S1, &u, set("/sec", b"", -1)),
        Err(ErrorCode::NoAuth),
        "no WRITE"
    );
    assert_eq!(
        h.run(S1, &u, del("/sec/c", -1)),
        Err(ErrorCode::NoAuth),
        "no DELETE on parent"
    );
    // NoAuth on the parent comes before NoNode on the child.
    assert_eq!(h.run(S1, &u, del("/sec/none", -1)), Err(ErrorCode::NoAuth));
    let op = Op::SetAcl {
        path: "/sec".into(),
        acl: Acl::open_unsafe(),
        version: -1,
    };
    assert_eq!(
        h.run(S1, &u, op.clone()),
        Err(ErrorCode::NoAuth),
        "no ADMIN"
    );
    // getACL: READ without ADMIN sees masked digests; neither is NoAuth.
    let (acl, _) = h.tree.get_acl(&cu, "/sec").unwrap();
    assert_eq!(acl[0].id.id, "u:x");
    assert_eq!(h.tree.get_acl(&co, "/sec").unwrap_err(), ErrorCode::NoAuth);
    // Super bypasses everything and sees the real ACL.
    let sup = [Id::new("super", "")];
    let cs = Caller::new(S1, &sup);
    assert_eq!(
        h.tree.get_acl(&cs, "/sec").unwrap().0[0].id.id,
        digest_for("u", "p")
    );
    let su = Caller {
        session_id: S1,
        auth: &[],
        is_super: true,
    };
    h.run_as(&su, set("/sec", b"x", -1)).unwrap();
    h.run_as(&su, op).unwrap();
    assert!(h.tree.get_data(&co, "/sec").is_ok());
}

#[test]
fn acl_lists_are_fixed_up() {
    let mut h = H::with_sessions();
    let auth_acl = vec![Acl::new(perms::ALL, Id::new("auth", ""))];
    let ip_only = vec![Id::new("ip", "127.0.0.1")];
    assert_eq!(
        h.run(
            S1,
            &ip_only,
            create_acl("/a", b"", CreateMode::Persistent, auth_acl.clone())
        ),
        Err(ErrorCode::InvalidAcl)
    );
    let d = Id::new("digest", digest_for("bob", "pw"));
    let with_d = vec![Id::new("ip", "127.0.0.1"), d.clone()];
    h.run(
        S1,
        &with_d,
        create_acl("/a", b"", CreateMode::Persistent, auth_acl),
    )
    .unwrap();
    let c = Caller::new(S1, &with_d);
    assert_eq!(
        h.tree.get_acl(&c, "/a").unwrap().0,
        vec![Acl::new(perms::ALL, d)]
    );
    // setACL: InvalidACL is checked before NoNode.
    let op = Op::SetAcl {
        path: "/missing".into(),
        acl: vec![],
        version: -1,
    };
    assert_eq!(h.run(S1, &[], op), Err(ErrorCode::InvalidAcl));
    let ip_acl = vec![Acl::new(perms::ALL, Id::new("ip", "10.0.0.0/8"))];
    h.run(
        S1,
        &[],
        create_acl("/ip", b"", CreateMode::Persistent, ip_acl),
    )
    .unwrap();
    let inside = [Id::new("ip", "10.1.2.3")];
    let outside = [Id::new("ip", "11.0.0.1")];
    assert!(h.tree.get_data(&Caller::new(S1, &inside), "/ip").is_ok());
    assert_eq!(
        h.tree
            .get_data(&Caller::new(S1, &outside), "/ip")
            .unwrap_err(),
        ErrorCode::NoAuth
    );
    let bad_ip = vec![Acl::new(perms::ALL, Id::new("ip", "10.0.0.0/99"))];
    assert_eq!(
        h.run(
            S1,
            &[],
            create_acl("/b", b"", CreateMode::Persistent, bad_ip)
        ),
        Err(ErrorCode::InvalidAcl)
    );
}

#[test]
fn reads() {
    let mut h = H::with_sessions();
    for p in ["/r", "/r/b", "/r/a", "/r/a/x", "/r-sibling"] {
        h.create(p, p.as_bytes()).unwrap();
    }
    let c = Caller::new(S1, &[]);
    assert_eq!(h.tree.get_children(&c, "/r").unwrap(), vec!["a", "b"]);
    let (kids, st) = h.tree.get_children2(&c, "/r").unwrap();
    assert_eq!((kids.len(), st.num_children), (2, 2));
    assert_eq!(h.tree.get_all_children_number(&c, "/r").unwrap(), 3);
    assert_eq!(h.tree.get_all_children_number(&c, "/").unwrap(), 8);
    assert_eq!(
        h.tree.get_all_children_number(&c, "/zz").unwrap_err(),
        ErrorCode::NoNode
    );
    let (data, st) = h.tree.get_data(&c, "/r/a/x").unwrap();
    assert_eq!((data, st.data_length), (Some(&b"/r/a/x"[..]), 6));
    assert_eq!(h.tree.get_data(&c, "/zz").unwrap_err(), ErrorCode::NoNode);
    assert_eq!(h.tree.exists(&c, "/r").unwrap(), h.tree.stat("/r"));
}

#[test]
fn reconfig_sets_config_with_version_minus_one() {
    let mut h = H::with_sessions();
    let op = Op::Reconfig {
        data: b"server.1=a:1:2;3".to_vec(),
    };
    assert_eq!(h.run(S1, &[], op.clone()), Err(ErrorCode::NoAuth));
    let su = Caller {
        session_id: S1,
        auth: &[],
        is_super: true,
    };
    let r = h.run_as(&su, op).unwrap();
    let OpResult::Reconfig { data, stat } = r.result else {
        panic!()
    };
    assert_eq!(data, b"server.1=a:1:2;3");
    assert_eq!((stat.version, stat.mzxid), (-1, 3));
    assert_eq!(r.triggers[0].event_type, EventType::NodeDataChanged);
}

#[test]
fn error_txn_applies_as_an_error_reply() {
    let mut t = DataTree::default();
    let h = TxnHeader {
        session_id: 1,
        cxid: 1,
        zxid: 7,
        time_ms: 0,
    };
    let r = t.apply(&h, Txn::Error(ErrorCode::BadVersion));
    assert_eq!(r.result.reply_err(), ErrorCode::BadVersion);
    assert_eq!(t.last_zxid(), 7);
    // A Txn inconsistent with the tree is an error result, not a panic.
    let r = t.apply(
        &h,
        Txn::Delete {
            kind: rookery_tree::DeleteKind::Delete,
            path: "/nope".into(),
        },
    );
    assert_eq!(r.result, OpResult::Error(ErrorCode::NoNode));
    let r = t.apply(
        &h,
        Txn::Delete {
            kind: rookery_tree::DeleteKind::Delete,
            path: "/".into(),
        },
    );
    assert!(matches!(r.result, OpResult::Error(_)));
    assert!(t.node("/").is_some());
}

#[test]
fn replicas_applying_the_same_txns_agree() {
    let mut h = H::with_sessions();
    let mut replica = DataTree::default();
    h.create("/a", b"1").unwrap();
    h.run(
        S1,
        &[],
        create("/a/e", b"", CreateMode::EphemeralSequential),
    )
    .unwrap();
    h.run(S2, &[], Op::Multi(vec![set("/a", b"2", 0), del("/zz", -1)]))
        .unwrap();
    h.run(S1, &[], Op::CloseSession).unwrap();
    // Replay the log on a fresh replica through the encoded form.
    let mut h2 = H::with_sessions();
    h2.create("/a", b"1").unwrap();
    h2.run(
        S1,
        &[],
        create("/a/e", b"", CreateMode::EphemeralSequential),
    )
    .unwrap();
    let mut log = Vec::new();
    let mut leader = H::with_sessions();
    for op in [
        (S1, create("/a", b"1", CreateMode::Persistent)),
        (S1, create("/a/e", b"", CreateMode::EphemeralSequential)),
        (S2, Op::Multi(vec![set("/a", b"2", 0), del("/zz", -1)])),
        (S1, Op::CloseSession),
    ] {
        leader.prep(op.0, &[], op.1).unwrap();
    }
    log.extend(
        leader
            .queue
            .iter()
            .map(|(h, t)| rookery_tree::encode_entry(h, t)),
    );
    leader.apply_all();
    // The replica needs the session txns too.
    for s in [S1, S2] {
        let hdr = TxnHeader {
            session_id: s,
            cxid: 0,
            zxid: if s == S1 { 1 } else { 2 },
            time_ms: 0,
        };
        replica.apply(&hdr, Txn::CreateSession { timeout_ms: 30_000 });
    }
    for entry in &log {
        let (hdr, txn) = rookery_tree::decode_entry(entry).unwrap();
        replica.apply(&hdr, txn);
    }
    // Times differ between the harness runs, but the leader and its replica agree.
    assert_eq!(replica.digest(), leader.tree.digest());
    assert_eq!(replica.snapshot(), leader.tree.snapshot());
    assert_eq!(h.tree.nodes().count(), leader.tree.nodes().count());
}

/// Applies `txn` as S1's at the next zxid, bypassing prep (as a logged Txn does).
fn apply_next(h: &mut H, txn: Txn) -> rookery_tree::ApplyResult {
    h.zxid += 1;
    let hdr = TxnHeader {
        session_id: S1,
        cxid: 0,
        zxid: h.zxid,
        time_ms: 0,
    };
    h.tree.apply(&hdr, txn)
}

#[test]
fn a_create_txn_for_an_existing_node_or_under_a_missing_parent_changes_nothing() {
    let mut h = H::with_sessions();
    h.run(S1, &[], create("/a", b"", CreateMode::Persistent))
        .unwrap();
    h.run(S1, &[], create("/a/b", b"", CreateMode::Persistent))
        .unwrap();
    let seen = |h: &H| {
        (
            h.tree.digest(),
            stat(h, "/"),
            stat(h, "/a"),
            stat(h, "/a/b"),
        )
    };
    let before = seen(&h);
    for (path, want) in [
        ("/a", ErrorCode::NodeExists),
        ("/a/b", ErrorCode::NodeExists),
        ("/zookeeper", ErrorCode::NodeExists),
        ("/", ErrorCode::NodeExists),
        ("/c/d", ErrorCode::NoNode),
    ] {
        let applied = apply_next(
            &mut h,
            Txn::Create {
                kind: CreateKind::Create,
                path: path.into(),
                data: Some(vec![1]),
                acl: Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: 99,
            },
        );
        assert_eq!(applied.result.reply_err(), want, "{path}");
        assert!(
            applied.triggers.is_empty(),
            "{path}: {:?}",
            applied.triggers
        );
    }
    assert_eq!(seen(&h), before, "a failed create changed the tree");
    assert_eq!(h.tree.recompute_digest(), h.tree.digest());
}

#[test]
fn a_delete_txn_for_a_parent_or_a_missing_node_changes_nothing() {
    let mut h = H::with_sessions();
    h.run(S1, &[], create("/a", b"x", CreateMode::Persistent))
        .unwrap();
    h.run(S1, &[], create("/a/b", b"", CreateMode::Persistent))
        .unwrap();
    let seen = |h: &H| {
        (
            h.tree.digest(),
            h.tree.nodes().count(),
            stat(h, "/"),
            stat(h, "/a"),
            stat(h, "/a/b"),
        )
    };
    let before = seen(&h);
    for (path, want) in [
        ("/a", ErrorCode::NotEmpty),
        ("/zookeeper", ErrorCode::NotEmpty),
        ("/c", ErrorCode::NoNode),
        ("/a/c", ErrorCode::NoNode),
        ("/c/d", ErrorCode::NoNode),
        ("/", ErrorCode::BadArguments),
    ] {
        let applied = apply_next(
            &mut h,
            Txn::Delete {
                kind: rookery_tree::DeleteKind::Delete,
                path: path.into(),
            },
        );
        assert_eq!(applied.result.reply_err(), want, "{path}");
        assert!(
            applied.triggers.is_empty(),
            "{path}: {:?}",
            applied.triggers
        );
    }
    assert_eq!(seen(&h), before, "a failed delete changed the tree");
    assert_eq!(h.tree.recompute_digest(), h.tree.digest());
    // And the node put back is the one that was there: it still reads and deletes.
    let node = h.tree.node("/a").expect("/a");
    assert_eq!(node.data.as_deref(), Some(&b"x"[..]));
    assert_eq!(node.child_names().collect::<Vec<_>>(), ["b"]);
    h.run(S1, &[], del("/a/b", -1)).unwrap();
    h.run(S1, &[], del("/a", -1)).unwrap();
    assert!(h.tree.node("/a").is_none());
    assert_eq!(h.tree.recompute_digest(), h.tree.digest());
}
