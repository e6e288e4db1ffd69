//! The Rust `zookeeper-client` crate against the server: CRUD with versions and errors,
//! every create mode, multi, one-shot and persistent watches, the 3.6+ reads
//! (getEphemerals, getAllChildrenNumber, whoami), session re-establishment and the
//! config node. Every scenario runs against Apache ZooKeeper too
//! (`ROOKERY_TEST_TARGET=zookeeper`), which proves the expected values.

use rookery_tests::zk::persistent;
use std::time::Duration;

use rookery_tests::{Server, Target, require};
use zookeeper_client::{
    Acls, AddWatchMode, AuthUser, Client, CreateMode, CreateOptions, Error, EventType,
    MultiWriteError, MultiWriteResult, Permission, SessionState, Stat, WatchedEvent,
};

/// Long enough for a loaded 2-core CI machine; nothing here is a timing assertion.
const WAIT: Duration = Duration::from_secs(30);

/// TTL nodes need the extended types; a short container check interval lets the
/// container and TTL reaper run within the test.
const EXTRA: &str = "extendedTypesEnabled=true\nznode.container.checkIntervalMs=500";

fn start() -> Option<Server> {
    rookery_tests::start_if_available(&[], EXTRA)
}

async fn connect(server: &Server) -> Client {
    Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&server.connect_string())
        .await
        .unwrap()
}

fn mode(m: CreateMode) -> CreateOptions<'static> {
    m.with_acls(Acls::anyone_all())
}

async fn next<F: std::future::Future<Output = WatchedEvent>>(f: F) -> WatchedEvent {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("no watch event within 30 s")
}

fn event(t: EventType, path: &str) -> (EventType, String) {
    (t, path.to_owned())
}

fn got(e: &WatchedEvent) -> (EventType, String) {
    (e.event_type, e.path.clone())
}

/// The Stat fields a fresh node has whatever the server's clock and zxids.
fn assert_fresh(stat: &Stat, data_len: i32, owner: i64) {
    assert_eq!(stat.version, 0, "{stat:?}");
    assert_eq!(stat.cversion, 0, "{stat:?}");
    assert_eq!(stat.aversion, 0, "{stat:?}");
    assert_eq!(stat.num_children, 0, "{stat:?}");
    assert_eq!(stat.data_length, data_len, "{stat:?}");
    assert_eq!(stat.ephemeral_owner, owner, "{stat:?}");
    assert_eq!(stat.czxid, stat.mzxid, "{stat:?}");
    assert_eq!(stat.czxid, stat.pzxid, "{stat:?}");
    assert_eq!(stat.ctime, stat.mtime, "{stat:?}");
    assert!(stat.czxid > 0, "{stat:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_versions_and_errors() {
    let Some(server) = start() else { return };
    let zk = connect(&server).await;

    let (stat, seq) = zk.create("/crud", b"one", &persistent()).await.unwrap();
    assert_eq!(seq.into_i64(), -1);
    assert_fresh(&stat, 3, 0);
    let (data, got_stat) = zk.get_data("/crud").await.unwrap();
    assert_eq!(data, b"one");
    assert_eq!(got_stat, stat);

    // Errors on create.
    assert_eq!(
        zk.create("/crud", b"", &persistent()).await,
        Err(Error::NodeExists)
    );
    assert_eq!(
        zk.create("/missing/child", b"", &persistent()).await,
        Err(Error::NoNode)
    );

    // setData with and without versions.
    let s1 = zk.set_data("/crud", b"two", Some(0)).await.unwrap();
    assert_eq!(s1.version, 1);
    assert_eq!(s1.data_length, 3);
    assert_eq!(s1.czxid, stat.czxid);
    assert!(s1.mzxid > stat.mzxid);
    assert_eq!(s1.pzxid, stat.pzxid);
    assert_eq!(
        zk.set_data("/crud", b"stale", Some(0)).await,
        Err(Error::BadVersion)
    );
    let s2 = zk.set_data("/crud", b"", None).await.unwrap();
    assert_eq!(s2.version, 2);
    assert_eq!(s2.data_length, 0);
    assert_eq!(zk.set_data("/nope", b"x", None).await, Err(Error::NoNode));
    let (data, st) = zk.get_data("/crud").await.unwrap();
    assert_eq!(data, b"");
    assert_eq!(st.version, 2);

    // Children, cversion and pzxid.
    let (cstat, _) = zk.create("/crud/c1", b"c", &persistent()).await.unwrap();
    zk.create("/crud/c2", b"", &persistent()).await.unwrap();
    let (mut children, pstat) = zk.get_children("/crud").await.unwrap();
    children.sort();
    assert_eq!(children, ["c1", "c2"]);
    assert_eq!(pstat.num_children, 2);
    assert_eq!(pstat.cversion, 2);
    assert_eq!(
        pstat.version, 2,
        "a child does not change the parent's version"
    );
    assert!(pstat.pzxid > cstat.czxid);
    assert_eq!(zk.check_stat("/crud/nope").await, Ok(None));
    assert_eq!(
        zk.check_stat("/crud/c1").await.unwrap().map(|s| s.czxid),
        Some(cstat.czxid)
    );
    assert_eq!(zk.get_data("/crud/nope").await, Err(Error::NoNode));
    assert_eq!(zk.list_children("/crud/nope").await, Err(Error::NoNode));

    // delete: NotEmpty, BadVersion, NoNode, then success.
    assert_eq!(zk.delete("/crud", None).await, Err(Error::NotEmpty));
    assert_eq!(zk.delete("/crud/c1", Some(5)).await, Err(Error::BadVersion));
    zk.delete("/crud/c1", Some(0)).await.unwrap();
    assert_eq!(zk.delete("/crud/c1", None).await, Err(Error::NoNode));
    zk.delete("/crud/c2", None).await.unwrap();
    let (_, pstat) = zk.get_children("/crud").await.unwrap();
    assert_eq!(pstat.cversion, 4, "deletes bump cversion too");
    assert_eq!(pstat.num_children, 0);
    zk.delete("/crud", Some(2)).await.unwrap();
    assert_eq!(zk.check_stat("/crud").await, Ok(None));

    // Invalid paths never reach the server in this client; the root cannot be deleted.
    assert!(matches!(
        zk.create("/bad/", b"", &persistent()).await,
        Err(Error::BadArguments(_))
    ));
    assert!(matches!(
        zk.delete("/", None).await,
        Err(Error::BadArguments(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_modes_sequential_ephemeral_container_ttl() {
    let Some(server) = start() else { return };
    let zk = connect(&server).await;
    let other = connect(&server).await;
    let me = zk.session_id().0;

    // Sequential: the suffix is the parent's cversion, ten digits, shared across modes.
    zk.create("/seq", b"", &persistent()).await.unwrap();
    let mut names = Vec::new();
    for m in [
        CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential,
        CreateMode::PersistentSequential,
    ] {
        let (stat, seq) = zk.create("/seq/n-", b"s", &mode(m)).await.unwrap();
        names.push(format!("n-{seq}"));
        let owner = if m == CreateMode::EphemeralSequential {
            me
        } else {
            0
        };
        assert_fresh(&stat, 1, owner);
    }
    assert_eq!(names, ["n-0000000000", "n-0000000001", "n-0000000002"]);
    zk.create("/seq/plain", b"", &persistent()).await.unwrap();
    let (_, seq) = zk
        .create("/seq/", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(
        seq.to_string(),
        "0000000004",
        "cversion counts the plain child"
    );
    let mut children = zk.list_children("/seq").await.unwrap();
    children.sort();
    assert_eq!(
        children,
        [
            "0000000004",
            "n-0000000000",
            "n-0000000001",
            "n-0000000002",
            "plain"
        ]
    );

    // Ephemeral: owned by the session, no children, visible to others.
    let (stat, _) = zk
        .create("/eph", b"e", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    assert_fresh(&stat, 1, me);
    assert_eq!(
        zk.create("/eph/child", b"", &persistent()).await,
        Err(Error::NoChildrenForEphemerals)
    );
    let seen = other.check_stat("/eph").await.unwrap().unwrap();
    assert_eq!(seen.ephemeral_owner, me);

    // getEphemerals: this session's only, matched as a string prefix of the path.
    zk.create("/ephemeral-too", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    other
        .create("/eph-other", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(zk.list_ephemerals("/").await.unwrap()),
        ["/eph", "/ephemeral-too", "/seq/n-0000000001"]
    );
    assert_eq!(
        sorted(zk.list_ephemerals("/eph").await.unwrap()),
        ["/eph", "/ephemeral-too"]
    );
    assert_eq!(
        sorted(zk.list_ephemerals("/seq").await.unwrap()),
        ["/seq/n-0000000001"]
    );
    assert_eq!(other.list_ephemerals("/").await.unwrap(), ["/eph-other"]);
    assert!(zk.list_ephemerals("/nothing").await.unwrap().is_empty());

    // getAllChildrenNumber counts every descendant, not the node itself.
    zk.create("/seq/plain/a", b"", &persistent()).await.unwrap();
    zk.create("/seq/plain/a/b", b"", &persistent())
        .await
        .unwrap();
    assert_eq!(zk.count_descendants_number("/seq").await, Ok(7));
    assert_eq!(zk.count_descendants_number("/seq/plain/a/b").await, Ok(0));
    assert_eq!(
        zk.count_descendants_number("/nothing").await,
        Err(Error::NoNode)
    );

    // Closing the session removes its ephemerals and only its ephemerals.
    drop(zk);
    let deadline = tokio::time::Instant::now() + WAIT;
    while other.check_stat("/eph").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ephemeral outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(other.check_stat("/ephemeral-too").await, Ok(None));
    assert_eq!(other.check_stat("/seq/n-0000000001").await, Ok(None));
    assert!(
        other
            .check_stat("/seq/n-0000000000")
            .await
            .unwrap()
            .is_some()
    );
    assert!(other.check_stat("/eph-other").await.unwrap().is_some());

    // Container: removed once its last child goes, never while it is still empty-born.
    let zk = other;
    let (cstat, _) = zk
        .create("/cont", b"c", &mode(CreateMode::Container))
        .await
        .unwrap();
    // ZooKeeper keeps containers in a set of their own: the Stat shows no owner.
    assert_fresh(&cstat, 1, 0);
    zk.create("/never-had-children", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    zk.create("/cont/x", b"", &persistent()).await.unwrap();
    zk.delete("/cont/x", None).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while zk.check_stat("/cont").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "empty container was not reaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        zk.check_stat("/never-had-children")
            .await
            .unwrap()
            .is_some(),
        "a container that never had a child is kept"
    );

    // TTL: a persistent node without children goes once it is older than its TTL; one
    // with a child stays. TTL on an ephemeral is refused by the client before sending.
    let ttl = mode(CreateMode::Persistent).with_ttl(Duration::from_millis(300));
    let (tstat, _) = zk.create("/ttl", b"t", &ttl).await.unwrap();
    // Like a container's, a TTL node's Stat shows no owner.
    assert_fresh(&tstat, 1, 0);
    assert_eq!(zk.check_stat("/ttl").await.unwrap(), Some(tstat));
    let (_, seq) = zk
        .create(
            "/ttl-seq-",
            b"",
            &mode(CreateMode::PersistentSequential).with_ttl(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    let ttl_seq = format!("/ttl-seq-{seq}");
    zk.create("/ttl-kept", b"", &ttl).await.unwrap();
    zk.create("/ttl-kept/child", b"", &persistent())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while zk.check_stat("/ttl").await.unwrap().is_some()
        || zk.check_stat(&ttl_seq).await.unwrap().is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "TTL node was not reaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(zk.check_stat("/ttl-kept").await.unwrap().is_some());
    assert!(matches!(
        zk.create(
            "/ttl-eph",
            b"",
            &mode(CreateMode::Ephemeral).with_ttl(Duration::from_secs(1))
        )
        .await,
        Err(Error::BadArguments(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_results_and_failure() {
    let Some(server) = start() else { return };
    let zk = connect(&server).await;
    zk.create("/m", b"", &persistent()).await.unwrap();

    let mut w = zk.new_multi_writer();
    w.add_create("/m/a", b"a", &persistent()).unwrap();
    w.add_create("/m/s-", b"s", &mode(CreateMode::PersistentSequential))
        .unwrap();
    w.add_set_data("/m/a", b"a2", Some(0)).unwrap();
    w.add_check_version("/m/a", 1).unwrap();
    w.add_create("/m/gone", b"", &persistent()).unwrap();
    w.add_delete("/m/gone", Some(0)).unwrap();
    let results = w.commit().await.unwrap();
    assert_eq!(results.len(), 6, "{results:?}");
    let MultiWriteResult::Create { path, stat } = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(path, "/m/a");
    let create_stat = *stat;
    let MultiWriteResult::SetData { stat } = &results[2] else {
        panic!("{results:?}")
    };
    assert_eq!(stat.version, 1);
    assert_eq!(stat.data_length, 2);
    let txn_zxid = stat.mzxid;
    let MultiWriteResult::Create {
        path,
        stat: seq_stat,
    } = &results[1]
    else {
        panic!("{results:?}")
    };
    assert_eq!(path, "/m/s-0000000001");
    if server.target == Target::ZooKeeper && create_stat.is_invalid() {
        // ZooKeeper 3.8.0 answers a create2 inside a multi as a plain create, without
        // a Stat (ZOOKEEPER-4026, fixed in 3.9); Rookery sends the create2 result.
        assert!(seq_stat.is_invalid());
    } else {
        assert_fresh(&create_stat, 1, 0);
        assert_eq!(create_stat.czxid, txn_zxid, "one multi is one zxid");
        assert_eq!(seq_stat.czxid, txn_zxid);
        assert_eq!(seq_stat.data_length, 1);
    }
    assert!(matches!(results[3], MultiWriteResult::Check));
    assert!(matches!(results[4], MultiWriteResult::Create { .. }));
    assert!(matches!(results[5], MultiWriteResult::Delete));
    assert_eq!(zk.get_data("/m/a").await.unwrap().0, b"a2");
    assert_eq!(zk.check_stat("/m/gone").await, Ok(None));

    // A failing op fails the whole multi: nothing before it is applied.
    let mut w = zk.new_multi_writer();
    w.add_create("/m/b", b"", &persistent()).unwrap();
    w.add_set_data("/m/a", b"lost", None).unwrap();
    w.add_check_version("/m/a", 0).unwrap();
    w.add_create("/m/c", b"", &persistent()).unwrap();
    match w.commit().await {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (2, Error::BadVersion));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(zk.check_stat("/m/b").await, Ok(None));
    let (data, stat) = zk.get_data("/m/a").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"a2"[..], 1));

    // Errors inside a multi are the plain operation's errors.
    for (build, want_index, want) in [
        (0, 0, Error::NodeExists),
        (1, 1, Error::NoNode),
        (2, 0, Error::NotEmpty),
    ] {
        let mut w = zk.new_multi_writer();
        match build {
            0 => w.add_create("/m/a", b"", &persistent()).unwrap(),
            1 => {
                w.add_create("/m/d", b"", &persistent()).unwrap();
                w.add_delete("/m/nope", None).unwrap();
            }
            _ => w.add_delete("/m", None).unwrap(),
        }
        match w.commit().await {
            Err(MultiWriteError::OperationFailed { index, source }) => {
                assert_eq!((index, source), (want_index, want));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(zk.check_stat("/m/d").await, Ok(None));

    // An empty multi never reaches the server in this client; a check-writer does.
    let mut w = zk.new_check_writer("/m/a", Some(1)).unwrap();
    w.add_set_data("/m/a", b"a3", Some(1)).unwrap();
    let results = w.commit().await.unwrap();
    let [MultiWriteResult::SetData { stat }] = results.as_slice() else {
        panic!("{results:?}")
    };
    assert_eq!(stat.version, 2);

    // multiRead: each op answered on its own.
    let mut r = zk.new_multi_reader();
    r.add_get_data("/m/a").unwrap();
    r.add_get_children("/m").unwrap();
    r.add_get_data("/m/nope").unwrap();
    let results = r.commit().await.unwrap();
    assert_eq!(results.len(), 3);
    match &results[0] {
        zookeeper_client::MultiReadResult::Data { data, stat } => {
            assert_eq!((data.as_slice(), stat.version), (&b"a3"[..], 2));
        }
        other => panic!("{other:?}"),
    }
    match &results[1] {
        zookeeper_client::MultiReadResult::Children { children } => {
            let mut c = children.clone();
            c.sort();
            assert_eq!(c, ["a", "s-0000000001"]);
        }
        other => panic!("{other:?}"),
    }
    match &results[2] {
        zookeeper_client::MultiReadResult::Error { err } => assert_eq!(*err, Error::NoNode),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_watches() {
    let Some(server) = start() else { return };
    let zk = connect(&server).await;
    let writer = connect(&server).await;

    // exists watch on a missing node: NodeCreated.
    let (stat, w) = zk.check_and_watch_stat("/w").await.unwrap();
    assert_eq!(stat, None);
    writer.create("/w", b"0", &persistent()).await.unwrap();
    assert_eq!(
        got(&next(w.changed()).await),
        event(EventType::NodeCreated, "/w")
    );

    // data watch: NodeDataChanged, once.
    let (data, _, w) = zk.get_and_watch_data("/w").await.unwrap();
    assert_eq!(data, b"0");
    writer.set_data("/w", b"1", None).await.unwrap();
    let e = next(w.changed()).await;
    assert_eq!(got(&e), event(EventType::NodeDataChanged, "/w"));
    assert_eq!(e.session_state, SessionState::SyncConnected);

    // child watch: NodeChildrenChanged on the parent for a create and a delete; the
    // data watch set alongside sees only the data change.
    let (children, w_children) = zk.list_and_watch_children("/w").await.unwrap();
    assert!(children.is_empty());
    let (_, _, w_data) = zk.get_and_watch_data("/w").await.unwrap();
    writer.create("/w/c", b"", &persistent()).await.unwrap();
    assert_eq!(
        got(&next(w_children.changed()).await),
        event(EventType::NodeChildrenChanged, "/w")
    );
    let (_, _, w_children) = zk.get_and_watch_children("/w").await.unwrap();
    writer.delete("/w/c", None).await.unwrap();
    assert_eq!(
        got(&next(w_children.changed()).await),
        event(EventType::NodeChildrenChanged, "/w")
    );
    writer.set_data("/w", b"2", None).await.unwrap();
    assert_eq!(
        got(&next(w_data.changed()).await),
        event(EventType::NodeDataChanged, "/w")
    );

    // delete fires data, exists and child watches with NodeDeleted.
    let (_, _, w_data) = zk.get_and_watch_data("/w").await.unwrap();
    let (_, w_exists) = zk.check_and_watch_stat("/w").await.unwrap();
    let (_, w_children) = zk.list_and_watch_children("/w").await.unwrap();
    writer.delete("/w", None).await.unwrap();
    for w in [w_data, w_exists, w_children] {
        assert_eq!(
            got(&next(w.changed()).await),
            event(EventType::NodeDeleted, "/w")
        );
    }

    // A watcher's own write also fires its watch, before the write's reply.
    let (_, w) = zk.check_and_watch_stat("/own").await.unwrap();
    zk.create("/own", b"", &persistent()).await.unwrap();
    assert_eq!(
        got(&next(w.changed()).await),
        event(EventType::NodeCreated, "/own")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_recursive_watches() {
    let Some(server) = start() else { return };
    let zk = connect(&server).await;
    let writer = connect(&server).await;

    // Persistent: data, children, delete and re-create of the node itself, repeatedly,
    // never the grandchildren.
    let mut p = zk.watch("/p", AddWatchMode::Persistent).await.unwrap();
    writer.create("/p", b"", &persistent()).await.unwrap();
    writer.set_data("/p", b"1", None).await.unwrap();
    writer.create("/p/c", b"", &persistent()).await.unwrap();
    writer.create("/p/c/gc", b"", &persistent()).await.unwrap();
    writer.set_data("/p/c", b"x", None).await.unwrap();
    writer.set_data("/p", b"2", None).await.unwrap();
    writer.delete("/p/c/gc", None).await.unwrap();
    writer.delete("/p/c", None).await.unwrap();
    writer.delete("/p", None).await.unwrap();
    writer.create("/p", b"", &persistent()).await.unwrap();
    let want = [
        event(EventType::NodeCreated, "/p"),
        event(EventType::NodeDataChanged, "/p"),
        event(EventType::NodeChildrenChanged, "/p"),
        event(EventType::NodeDataChanged, "/p"),
        event(EventType::NodeChildrenChanged, "/p"),
        event(EventType::NodeDeleted, "/p"),
        event(EventType::NodeCreated, "/p"),
    ];
    let mut seen = Vec::new();
    for _ in 0..want.len() {
        seen.push(got(&next(p.changed()).await));
    }
    assert_eq!(seen, want);

    // Persistent recursive: every node below, each event on the changed path, and no
    // NodeChildrenChanged at all.
    let mut r = zk
        .watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    writer.create("/r", b"", &persistent()).await.unwrap();
    writer.create("/r/a", b"", &persistent()).await.unwrap();
    writer.set_data("/r/a", b"1", None).await.unwrap();
    writer.create("/r/a/b", b"", &persistent()).await.unwrap();
    writer.set_data("/r", b"1", None).await.unwrap();
    let mut mw = writer.new_multi_writer();
    mw.add_create("/r/a/m1", b"", &persistent()).unwrap();
    mw.add_set_data("/r/a/b", b"m", None).unwrap();
    mw.commit().await.unwrap();
    writer.create("/rr", b"", &persistent()).await.unwrap(); // a sibling prefix: not below /r
    writer.delete("/r/a/b", None).await.unwrap();
    writer.delete("/r/a/m1", None).await.unwrap();
    writer.delete("/r/a", None).await.unwrap();
    writer.create("/r/end", b"", &persistent()).await.unwrap();
    let want = [
        event(EventType::NodeCreated, "/r"),
        event(EventType::NodeCreated, "/r/a"),
        event(EventType::NodeDataChanged, "/r/a"),
        event(EventType::NodeCreated, "/r/a/b"),
        event(EventType::NodeDataChanged, "/r"),
        event(EventType::NodeCreated, "/r/a/m1"),
        event(EventType::NodeDataChanged, "/r/a/b"),
        event(EventType::NodeDeleted, "/r/a/b"),
        event(EventType::NodeDeleted, "/r/a/m1"),
        event(EventType::NodeDeleted, "/r/a"),
        event(EventType::NodeCreated, "/r/end"),
    ];
    let mut seen = Vec::new();
    for _ in 0..want.len() {
        seen.push(got(&next(r.changed()).await));
    }
    assert_eq!(seen, want);

    // The persistent watch on /p is still there after all that.
    writer.set_data("/p", b"3", None).await.unwrap();
    assert_eq!(
        got(&next(p.changed()).await),
        event(EventType::NodeDataChanged, "/p")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_config_and_session_reestablishment() {
    let Some(mut server) = start() else { return };
    let zk = connect(&server).await;

    // whoami: the ip identity, then the digest one after addauth.
    let users = zk.list_auth_users().await.unwrap();
    assert_eq!(users, [AuthUser::new("ip", "127.0.0.1")]);
    zk.auth("digest", b"alice:secret").await.unwrap();
    let mut users = zk.list_auth_users().await.unwrap();
    users.sort_by(|a, b| a.scheme().cmp(b.scheme()));
    assert_eq!(
        users,
        [
            AuthUser::new("digest", "alice"),
            AuthUser::new("ip", "127.0.0.1")
        ]
    );

    // The config node: standalone, no dynamic config, so empty data, version 0.
    let (config, stat) = zk.get_config().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&config), "");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 0);
    let (mut children, _) = zk.get_children("/zookeeper").await.unwrap();
    children.sort();
    assert_eq!(children, ["config", "quota"]);

    // Re-establish a detached session by id and password: same session, ephemerals kept.
    let first = Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .with_detached()
        .connect(&server.connect_string())
        .await
        .unwrap();
    let id = first.session_id();
    first
        .create("/mine", b"m", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    let info = first.session().clone();
    drop(first);
    let again = Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .with_session(info)
        .connect(&server.connect_string())
        .await
        .unwrap();
    assert_eq!(again.session_id(), id);
    let stat = again.check_stat("/mine").await.unwrap().unwrap();
    assert_eq!(stat.ephemeral_owner, id.0);
    assert_eq!(again.list_ephemerals("/").await.unwrap(), ["/mine"]);

    // kill -9 and restart: the client reconnects on its own with the same session, which
    // the server recovered from its log, and the ephemeral and a watch are still there.
    let mut state = again.state_watcher();
    let (_, w) = again.check_and_watch_stat("/later").await.unwrap();
    server.restart();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = tokio::time::timeout_at(deadline, state.changed())
            .await
            .expect("client did not reconnect");
        if s == SessionState::SyncConnected {
            break;
        }
        assert_eq!(s, SessionState::Disconnected);
    }
    assert_eq!(again.session_id(), id);
    let stat = again.check_stat("/mine").await.unwrap().unwrap();
    assert_eq!(stat.ephemeral_owner, id.0);
    zk.create("/later", b"", &persistent()).await.unwrap();
    assert_eq!(
        got(&next(w.changed()).await),
        event(EventType::NodeCreated, "/later")
    );

    // Closing it for good removes the ephemeral.
    drop(again);
    let deadline = tokio::time::Instant::now() + WAIT;
    while zk.check_stat("/mine").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ephemeral outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Without extendedTypesEnabled, a TTL create is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_needs_extended_types() {
    let target = Target::from_env();
    if target == Target::ZooKeeper {
        require!("zookeeper");
    }
    let server = Server::start_with(target, "");
    let zk = connect(&server).await;
    let ttl = mode(CreateMode::Persistent).with_ttl(Duration::from_secs(5));
    assert_eq!(
        zk.create("/ttl", b"", &ttl).await,
        Err(Error::Unimplemented)
    );
    assert_eq!(zk.check_stat("/ttl").await, Ok(None));
    // The session survives the refusal.
    zk.create("/after", b"", &persistent()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_sync_and_chroot() {
    let Some(server) = start() else { return };
    let alice = connect(&server).await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    let other = connect(&server).await;

    // creator_all becomes the creator's digest identity.
    alice
        .create(
            "/secure",
            b"s",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();
    let (acl, stat) = alice.get_acl("/secure").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(
        (acl[0].permission(), acl[0].scheme(), acl[0].id()),
        (
            Permission::ALL,
            "digest",
            "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
        )
    );
    assert_eq!(stat.aversion, 0);
    alice
        .create("/secure/child", b"", &persistent())
        .await
        .unwrap();

    // Without that identity: no reads, writes, children or child deletes; exists works.
    assert_eq!(other.get_data("/secure").await, Err(Error::NoAuth));
    assert_eq!(
        other.set_data("/secure", b"x", None).await,
        Err(Error::NoAuth)
    );
    assert_eq!(other.list_children("/secure").await, Err(Error::NoAuth));
    assert_eq!(
        other.create("/secure/mine", b"", &persistent()).await,
        Err(Error::NoAuth)
    );
    assert_eq!(
        other.delete("/secure/child", None).await,
        Err(Error::NoAuth)
    );
    // exists without READ: ZooKeeper 3.8.0 answers it; 3.8.4+ and Rookery check READ
    // (the ACL fix behind CVE-2024-23944's release), so either is right here.
    match (server.target, other.check_stat("/secure").await) {
        (Target::ZooKeeper, Ok(Some(_))) | (_, Err(Error::NoAuth)) => {}
        (_, r) => panic!("exists without READ: {r:?}"),
    }
    // The same identity from another session is enough.
    let alice2 = connect(&server).await;
    alice2.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(alice2.get_data("/secure").await.unwrap().0, b"s");

    // setACL with versions: aversion moves, a stale version is refused; once ADMIN is
    // gone, setACL is refused before its version is looked at.
    let alice_and_readers = [
        zookeeper_client::Acl::new(
            Permission::ALL,
            zookeeper_client::AuthId::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
        ),
        zookeeper_client::Acl::new(Permission::READ, zookeeper_client::AuthId::anyone()),
    ];
    let stat = alice
        .set_acl("/secure", &alice_and_readers, Some(0))
        .await
        .unwrap();
    assert_eq!((stat.aversion, stat.version), (1, 0));
    assert_eq!(
        alice.set_acl("/secure", &alice_and_readers, Some(0)).await,
        Err(Error::BadVersion)
    );
    assert_eq!(other.get_data("/secure").await.unwrap().0, b"s");
    assert_eq!(
        other.set_data("/secure", b"x", None).await,
        Err(Error::NoAuth)
    );
    assert_eq!(
        other.set_acl("/secure", &alice_and_readers, Some(1)).await,
        Err(Error::NoAuth)
    );
    let read_only = [zookeeper_client::Acl::new(
        Permission::READ,
        zookeeper_client::AuthId::anyone(),
    )];
    let stat = alice.set_acl("/secure", &read_only, Some(1)).await.unwrap();
    assert_eq!(stat.aversion, 2);
    assert_eq!(
        alice.set_data("/secure", b"x", None).await,
        Err(Error::NoAuth)
    );
    assert_eq!(
        alice.set_acl("/secure", &read_only, Some(9)).await,
        Err(Error::NoAuth)
    );
    let (acl, stat) = other.get_acl("/secure").await.unwrap();
    assert_eq!(acl, read_only);
    assert_eq!(stat.aversion, 2);

    // sync, then a read that sees a write made through another session.
    other.create("/synced", b"1", &persistent()).await.unwrap();
    alice.sync("/synced").await.unwrap();
    assert_eq!(alice.get_data("/synced").await.unwrap().0, b"1");

    // A chrooted client: paths, sequential names and watch events are relative.
    other.create("/app", b"", &persistent()).await.unwrap();
    let app = other.clone().chroot("/app").unwrap();
    let (_, w) = app.check_and_watch_stat("/x").await.unwrap();
    app.create("/x", b"in", &persistent()).await.unwrap();
    assert_eq!(
        got(&next(w.changed()).await),
        event(EventType::NodeCreated, "/x")
    );
    assert_eq!(other.get_data("/app/x").await.unwrap().0, b"in");
    let (_, seq) = app
        .create("/s-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.to_string(), "0000000001");
    let mut children = app.list_children("/").await.unwrap();
    children.sort();
    assert_eq!(children, ["s-0000000001", "x"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_removes_ephemerals_and_refuses_reattach() {
    let Some(server) = start() else { return };
    let watcher = connect(&server).await;
    let doomed = Client::connector()
        .with_session_timeout(Duration::from_millis(4000))
        .with_detached()
        .connect(&server.connect_string())
        .await
        .unwrap();
    assert_eq!(doomed.session_timeout(), Duration::from_millis(4000));
    doomed
        .create("/doomed", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    let (_, w) = watcher.check_and_watch_stat("/doomed").await.unwrap();
    let info = doomed.session().clone();
    // Gone without closing the session: it must expire on the server's clock.
    drop(doomed);
    assert_eq!(
        got(&next(w.changed()).await),
        event(EventType::NodeDeleted, "/doomed")
    );
    let again = Client::connector()
        .with_session_timeout(Duration::from_millis(4000))
        .with_session(info)
        .connect(&server.connect_string())
        .await;
    assert_eq!(again.err(), Some(Error::SessionExpired));
}
