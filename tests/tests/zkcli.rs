//! ZooKeeper's own Java shell, zkCli.sh, against the server: one JVM per session, fed
//! commands on stdin (JLine is off when stdin is not a terminal, so there is no prompt;
//! a `get` of a missing marker path after each command delimits its output).
//! Every scenario also runs against Apache ZooKeeper (ROOKERY_TEST_TARGET=zookeeper).

#[path = "support/interactive.rs"]
mod interactive;

use interactive::Interactive;
use rookery_tests::{Server, ZKCLI, require};
use std::collections::BTreeMap;

struct ZkCli {
    p: Interactive,
    marks: u32,
}

impl ZkCli {
    fn connect(server: &Server) -> ZkCli {
        ZkCli::connect_to(&server.connect_string())
    }

    /// `address` may end in a chroot path.
    fn connect_to(address: &str) -> ZkCli {
        let mut p = Interactive::spawn(ZKCLI, &["-server", address]);
        p.wait_for("SyncConnected", |l| {
            l == "WatchedEvent state:SyncConnected type:None path:null"
        });
        ZkCli { p, marks: 0 }
    }

    /// Runs one command and returns what it printed, watch notifications left out.
    fn run(&mut self, cmd: &str) -> Vec<String> {
        self.marks += 1;
        let marker = format!("/zkcli-end-{}", self.marks);
        self.p.send_lines(&[cmd, &format!("get {marker}")]);
        let end = format!("Node does not exist: {marker}");
        let mut lines = self.p.wait_for(&end, |l| l == end);
        lines.pop();
        strip_events(lines)
    }

    /// For a command that prints nothing: its output without blank lines. A
    /// notification block ("", "WATCHER::", "", "WatchedEvent ...") from another
    /// client's change can straddle the end-of-command marker and leave its leading
    /// blank line in this window.
    fn run_quiet(&mut self, cmd: &str) -> Vec<String> {
        let mut lines = self.run(cmd);
        lines.retain(|l| !l.is_empty());
        lines
    }

    /// Every "WatchedEvent ..." line so far, the connection event included.
    /// `quit` closes the session (end of input alone exits without closing it).
    fn quit(mut self) {
        self.p.send("quit");
        self.p.finish();
    }

    fn events(&self) -> Vec<String> {
        self.p
            .all_lines()
            .into_iter()
            .filter(|l| l.starts_with("WatchedEvent "))
            .collect()
    }

    /// Waits until `event` has been printed `n` times in the whole session.
    fn wait_event(&mut self, event: &str, n: usize) {
        self.p.wait_until(event, |lines| {
            lines.iter().filter(|l| *l == event).count() >= n
        });
    }
}

/// zkCli prints a notification as "", "WATCHER::", "", "WatchedEvent ...".
fn strip_events(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut skip_blank = false;
    for l in lines {
        if l == "WATCHER::" {
            if out.last().is_some_and(|p| p.is_empty()) {
                out.pop();
            }
            skip_blank = true;
            continue;
        }
        if l.starts_with("WatchedEvent ") || (skip_blank && l.is_empty()) {
            skip_blank = false;
            continue;
        }
        skip_blank = false;
        out.push(l);
    }
    out
}

/// The "name = value" lines of a printed Stat.
fn stat(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The counter half of a printed zxid: ZooKeeper standalone stays in epoch 0, and the
/// epoch is not something a client can rely on, but the counter is deterministic on a
/// fresh server (the session's createSession is Txn 1; failed writes consume one too).
fn counter(hex: &str) -> u64 {
    let h = hex
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("not hex: {hex}"));
    u64::from_str_radix(h, 16).unwrap() & 0xffff_ffff
}

const STAT_KEYS: [&str; 11] = [
    "cZxid",
    "ctime",
    "mZxid",
    "mtime",
    "pZxid",
    "cversion",
    "dataVersion",
    "aclVersion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
];

/// Checks a printed Stat: the lines in ZooKeeper's order, zxid counters and the rest exact.
fn assert_stat(lines: &[String], czxid: u64, mzxid: u64, pzxid: u64, rest: &[(&str, &str)]) {
    let keys: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .collect();
    assert_eq!(keys, STAT_KEYS, "{lines:#?}");
    let s = stat(lines);
    assert_eq!(counter(&s["cZxid"]), czxid, "cZxid in {lines:#?}");
    assert_eq!(counter(&s["mZxid"]), mzxid, "mZxid in {lines:#?}");
    assert_eq!(counter(&s["pZxid"]), pzxid, "pZxid in {lines:#?}");
    for (k, v) in rest {
        assert_eq!(s[*k], *v, "{k} in {lines:#?}");
    }
}

fn start(extra: &str) -> Option<Server> {
    rookery_tests::start_if_available(&["zkcli"], extra)
}

fn v(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

#[test]
fn create_get_set_ls_stat_delete() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut c = ZkCli::connect(&server);
    // Txn 1 is this session.
    assert_eq!(c.run("create /a"), v(&["Created /a"])); // 2
    assert_eq!(c.run("create /a"), v(&["Node already exists: /a"])); // 3 (error Txn)
    assert_eq!(c.run("create /b hello"), v(&["Created /b"])); // 4
    assert_eq!(c.run("create -e /b/e1 eph"), v(&["Created /b/e1"])); // 5
    assert_eq!(c.run("create -s /b/s seq"), v(&["Created /b/s0000000001"])); // 6
    assert_eq!(c.run("create -s /b/s seq"), v(&["Created /b/s0000000002"])); // 7

    let out = c.run("get -s /b");
    assert_eq!(out[0], "hello");
    assert_stat(
        &out[1..],
        4,
        4,
        7,
        &[
            ("cversion", "3"),
            ("dataVersion", "0"),
            ("aclVersion", "0"),
            ("ephemeralOwner", "0x0"),
            ("dataLength", "5"),
            ("numChildren", "3"),
        ],
    );
    let s = stat(&out[1..]);
    assert_eq!(s["ctime"], s["mtime"], "a new node's mtime is its ctime");

    assert_eq!(c.run("get /b"), v(&["hello"]));
    assert_eq!(c.run("set -v 5 /b x"), v(&["version No is not valid : /b"])); // 8 (error Txn)
    assert_eq!(c.run_quiet("set -v 0 /b world"), Vec::<String>::new()); // 9
    let out = c.run("get -s /b");
    assert_eq!(out[0], "world");
    assert_stat(
        &out[1..],
        4,
        9,
        7,
        &[
            ("dataVersion", "1"),
            ("dataLength", "5"),
            ("numChildren", "3"),
        ],
    );
    let out = c.run("set -s /b again"); // 10
    assert_stat(&out, 4, 10, 7, &[("dataVersion", "2"), ("dataLength", "5")]);

    assert_eq!(c.run("ls /"), v(&["[a, b, zookeeper]"]));
    let out = c.run("ls -s /b");
    assert_eq!(out[0], "[e1, s0000000001, s0000000002]");
    assert_stat(
        &out[1..],
        4,
        10,
        7,
        &[("cversion", "3"), ("numChildren", "3")],
    );
    assert_eq!(
        c.run("ls -R /"),
        v(&[
            "/",
            "/a",
            "/b",
            "/zookeeper",
            "/b/e1",
            "/b/s0000000001",
            "/b/s0000000002",
            "/zookeeper/config",
            "/zookeeper/quota",
        ])
    );

    let out = c.run("stat /b/e1");
    assert_stat(
        &out,
        5,
        5,
        5,
        &[("dataLength", "3"), ("numChildren", "0"), ("cversion", "0")],
    );
    let owner = stat(&out)["ephemeralOwner"].clone();
    assert_ne!(owner, "0x0", "an ephemeral's owner is its session");

    assert_eq!(c.run("delete /b"), v(&["Node not empty: /b"])); // 11
    assert_eq!(
        c.run("delete /nothere"),
        v(&["Node does not exist: /nothere"])
    ); // 12
    assert_eq!(
        c.run("delete -v 3 /a"),
        v(&["version No is not valid : /a"])
    ); // 13
    assert_eq!(c.run_quiet("delete -v 0 /a"), Vec::<String>::new()); // 14
    assert_eq!(c.run("create /x/y/z"), v(&["Node does not exist: /x/y/z"])); // 15
    assert_eq!(
        c.run("delete /zookeeper"),
        v(&["Arguments are not valid : /zookeeper"])
    ); // 16
    assert_eq!(c.run_quiet("deleteall /b"), Vec::<String>::new()); // one multi: 17
    assert_eq!(c.run("stat /b"), v(&["Node does not exist: /b"]));
    assert_eq!(c.run("get /b/e1"), v(&["Node does not exist: /b/e1"]));
    assert_eq!(c.run("ls /"), v(&["[zookeeper]"]));
    assert_eq!(c.run("create /c"), v(&["Created /c"])); // 18
    let out = c.run("stat /c");
    assert_stat(&out, 18, 18, 18, &[("dataLength", "0")]);
    let out = c.run("stat /");
    let root = stat(&out);
    assert_eq!(counter(&root["pZxid"]), 18, "{out:#?}");
    assert_eq!(root["numChildren"], "2", "{out:#?}");

    assert_eq!(c.run("create -e /eph x"), v(&["Created /eph"])); // 19
    assert_eq!(
        c.run("create -e /eph/child"),
        v(&["Ephemerals cannot have children: /eph/child"])
    );
    c.quit();

    // The session is closed: its ephemerals are gone for the next one.
    let mut c2 = ZkCli::connect(&server);
    assert_eq!(c2.run("stat /eph"), v(&["Node does not exist: /eph"]));
    assert_eq!(c2.run("ls /"), v(&["[c, zookeeper]"]));
}

/// `create` without data sends a null buffer; ZooKeeper keeps null apart from empty
/// and zkCli prints "null" for it.
#[test]
fn create_without_data_reads_back_null() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut c = ZkCli::connect(&server);
    assert_eq!(c.run("create /n"), v(&["Created /n"]));
    assert_eq!(c.run("get /n"), v(&["null"]));
    assert_eq!(c.run("create /e ''"), v(&["Created /e"]));
    assert_eq!(
        c.run("get /e"),
        v(&[""]),
        "zkCli's parser strips the quotes"
    );
    assert_eq!(c.run_quiet("set /n data"), Vec::<String>::new());
    assert_eq!(c.run("get /n"), v(&["data"]));
}

#[test]
fn containers_ttl_and_sequential_ephemerals() {
    require!("zkcli");
    let Some(server) = start("extendedTypesEnabled=true\nznode.container.checkIntervalMs=200")
    else {
        return;
    };
    let mut c = ZkCli::connect(&server);
    assert_eq!(c.run("create -c /cc cdata"), v(&["Created /cc"])); // 2
    assert_eq!(c.run("create /cc/x"), v(&["Created /cc/x"])); // 3
    assert_eq!(c.run("create -s /cc/q"), v(&["Created /cc/q0000000001"])); // 4
    assert_eq!(c.run("create -t 600000 /tt ttl"), v(&["Created /tt"])); // 5
    assert_eq!(c.run("create -s -e /se"), v(&["Created /se0000000002"])); // 6
    let out = c.run("get -s /cc");
    assert_eq!(out[0], "cdata");
    // Containers and TTL nodes show ephemeralOwner 0 to clients.
    assert_stat(
        &out[1..],
        2,
        2,
        4,
        &[
            ("ephemeralOwner", "0x0"),
            ("numChildren", "2"),
            ("cversion", "2"),
        ],
    );
    assert_stat(&c.run("stat /tt"), 5, 5, 5, &[("ephemeralOwner", "0x0")]);
    let out = c.run("stat /se0000000002");
    assert_ne!(stat(&out)["ephemeralOwner"], "0x0", "{out:#?}");
    assert_eq!(
        c.run("create -t 0 /t0 x"),
        v(&["ttl must be positive and cannot be larger than: 1099511627775"])
    );

    // The container goes once its last child does.
    assert_eq!(c.run_quiet("delete /cc/x"), Vec::<String>::new());
    assert_eq!(c.run_quiet("delete /cc/q0000000001"), Vec::<String>::new());
    let deadline = std::time::Instant::now() + interactive::WAIT;
    loop {
        if c.run("stat /cc") == v(&["Node does not exist: /cc"]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container /cc never reaped"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // An empty container that never had a child stays.
    assert_eq!(c.run("create -c /fresh"), v(&["Created /fresh"]));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(c.run("ls /fresh"), v(&["[]"]));
}

#[test]
fn ttl_is_unimplemented_without_extended_types() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut c = ZkCli::connect(&server);
    assert_eq!(
        c.run("create -t 5000 /t x"),
        v(&["KeeperErrorCode = Unimplemented for /t"])
    );
    assert_eq!(c.run("create -c /c"), v(&["Created /c"]));
    assert_eq!(c.run("ls /"), v(&["[c, zookeeper]"]));
}

#[test]
fn acls_digest_auth_and_whoami() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut c = ZkCli::connect(&server);
    assert_eq!(c.run("whoami"), v(&["Auth scheme: User", "ip: 127.0.0.1"]));
    assert_eq!(c.run("getAcl /"), v(&["'world,'anyone", ": cdrwa"]));
    assert_eq!(c.run("create /acl data"), v(&["Created /acl"]));
    assert_eq!(
        c.run_quiet("addauth digest alice:secret"),
        Vec::<String>::new()
    );
    let mut who = c.run("whoami");
    assert_eq!(who.remove(0), "Auth scheme: User");
    who.sort(); // ZooKeeper keeps a session's ids in a hash set
    assert_eq!(who, v(&["digest: alice", "ip: 127.0.0.1"]));
    assert_eq!(
        c.run_quiet("setAcl /acl auth:alice:secret:cdrwa"),
        Vec::<String>::new()
    );
    // base64(sha1("alice:secret"))
    assert_eq!(
        c.run("getAcl /acl"),
        v(&["'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=", ": cdrwa"])
    );
    let out = c.run("getAcl -s /acl");
    assert_eq!(
        out[..2],
        v(&["'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=", ": cdrwa"])
    );
    assert_eq!(stat(&out[2..])["aclVersion"], "1", "{out:#?}");
    assert_eq!(c.run("get /acl"), v(&["data"]));
    assert_eq!(
        c.run("setAcl -v 0 /acl world:anyone:r"),
        v(&["version No is not valid : /acl"])
    );
    assert_eq!(
        c.run("create /mixed x digest:bob:KtDT8UKmR7DAW4vLCBjk+69n+8o=:r,world:anyone:c"),
        v(&["Created /mixed"])
    );
    // getAcl needs READ or ADMIN.
    assert_eq!(
        c.run("getAcl /mixed"),
        v(&["Insufficient permission : /mixed"])
    );
    assert_eq!(
        c.run("get /mixed"),
        v(&["Insufficient permission : /mixed"])
    );
    assert_eq!(c.run("create /mixed/kid k"), v(&["Created /mixed/kid"]));
    assert_eq!(
        c.run("set /mixed y"),
        v(&["Insufficient permission : /mixed"])
    );
    assert_eq!(c.run("create /ro x"), v(&["Created /ro"]));
    assert_eq!(
        c.run_quiet("setAcl /ro world:anyone:r"),
        Vec::<String>::new()
    );
    assert_eq!(c.run("set /ro y"), v(&["Insufficient permission : /ro"]));
    assert_eq!(
        c.run("setAcl /ro world:anyone:cdrwa"),
        v(&["Insufficient permission : /ro"])
    );
    assert_eq!(c.run("get /ro"), v(&["x"]));
    c.quit();

    // A second session without alice's credentials, then with wrong and right ones.
    let mut c = ZkCli::connect(&server);
    assert_eq!(c.run("get /acl"), v(&["Insufficient permission : /acl"]));
    assert_eq!(c.run("set /acl z"), v(&["Insufficient permission : /acl"]));
    assert_eq!(c.run("getAcl /acl"), v(&["Insufficient permission : /acl"]));
    assert_eq!(
        c.run_quiet("addauth digest alice:wrong"),
        Vec::<String>::new()
    );
    assert_eq!(c.run("get /acl"), v(&["Insufficient permission : /acl"]));
    assert_eq!(
        c.run_quiet("addauth digest alice:secret"),
        Vec::<String>::new()
    );
    assert_eq!(c.run("get /acl"), v(&["data"]));
    let mut who = c.run("whoami");
    assert_eq!(who.remove(0), "Auth scheme: User");
    who.sort();
    assert_eq!(who, v(&["digest: alice", "digest: alice", "ip: 127.0.0.1"]));
    assert_eq!(c.run_quiet("delete /acl"), Vec::<String>::new());
}

#[test]
fn persistent_watches_fire_for_another_clients_changes() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut w = ZkCli::connect(&server);
    assert_eq!(w.run("create /w"), v(&["Created /w"]));
    assert_eq!(w.run("create /w/c1 a"), v(&["Created /w/c1"]));
    assert_eq!(w.run("create /r"), v(&["Created /r"]));
    assert_eq!(w.run("create /o o"), v(&["Created /o"]));
    assert_eq!(
        w.run_quiet("addWatch -m PERSISTENT /w"),
        Vec::<String>::new()
    );
    assert_eq!(
        w.run_quiet("addWatch -m PERSISTENT_RECURSIVE /r"),
        Vec::<String>::new()
    );
    assert_eq!(w.run("get -w /o"), v(&["o"]));

    let mut other = ZkCli::connect(&server);
    for cmd in [
        "set /w x",
        "create /w/c2",
        "set /w/c1 b",
        "create /r/a",
        "create /r/a/b",
        "set /r/a/b q",
        "delete /r/a/b",
        "set /o x",
        "set /o y",
    ] {
        other.run(cmd);
    }
    // A one-shot data watch on /o was the last to fire; everything before it has been
    // delivered in order.
    w.wait_event(
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/o",
        1,
    );
    assert_eq!(
        w.events(),
        v(&[
            "WatchedEvent state:SyncConnected type:None path:null",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/w",
            "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/w",
            "WatchedEvent state:SyncConnected type:NodeCreated path:/r/a",
            "WatchedEvent state:SyncConnected type:NodeCreated path:/r/a/b",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/r/a/b",
            "WatchedEvent state:SyncConnected type:NodeDeleted path:/r/a/b",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/o",
        ])
    );

    // removewatches: the server confirms, and the watches stop firing.
    assert_eq!(w.run_quiet("removewatches /w"), Vec::<String>::new());
    w.wait_event(
        "WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:/w",
        1,
    );
    assert_eq!(w.run_quiet("removewatches /r -a"), Vec::<String>::new());
    w.wait_event(
        "WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:/r",
        1,
    );
    assert_eq!(
        w.run("removewatches /nothere"),
        v(&["KeeperErrorCode = No such watcher for /nothere"])
    );
    assert_eq!(w.run("get -w /o"), v(&["y"]));
    for cmd in ["set /w z", "create /w/c3", "create /r/z", "set /o done"] {
        other.run(cmd);
    }
    w.wait_event(
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/o",
        2,
    );
    let events = w.events();
    assert_eq!(
        events[8..],
        v(&[
            "WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:/w",
            "WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:/r",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/o",
        ]),
        "{events:#?}"
    );
}

#[test]
fn sync_config_reconfig_ephemerals_and_counts() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut c = ZkCli::connect(&server);
    assert_eq!(c.run("sync /"), v(&["Sync is OK"]));
    assert_eq!(
        c.run("sync /nothere"),
        v(&["Sync is OK"]),
        "sync does not check the path"
    );
    // Standalone: /zookeeper/config exists and is empty.
    assert_eq!(c.run("config"), v(&[""]));
    let out = c.run("config -s");
    assert_eq!(out[0], "");
    assert_stat(
        &out[1..],
        0,
        0,
        0,
        &[("dataLength", "0"), ("numChildren", "0")],
    );
    assert_eq!(
        c.run("reconfig -add server.5=127.0.0.1:2888:3888;2181"),
        v(&["KeeperErrorCode = Reconfig is disabled"])
    );
    assert_eq!(c.run("getEphemerals"), v(&["[]"]));
    for cmd in [
        "create /e1 x",
        "create -e /e1/a x",
        "create -e /e2 x",
        "create -e /e1/b x",
    ] {
        c.run(cmd);
    }
    // The rejected reconfig took a zxid (an error Txn), as every rejected write does.
    let out = c.run("stat /e1");
    assert_eq!(counter(&stat(&out)["cZxid"]), 3, "{out:#?}");
    let list = c.run("getEphemerals");
    assert_eq!(list.len(), 1, "{list:?}");
    // ZooKeeper returns them in hash-set order.
    let mut names: Vec<&str> = list[0]
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(", ")
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["/e1/a", "/e1/b", "/e2"]);
    let mut under: Vec<String> = c.run("getEphemerals /e1");
    assert_eq!(under.len(), 1);
    let under = under.remove(0);
    assert!(
        under == "[/e1/a, /e1/b]" || under == "[/e1/b, /e1/a]",
        "{under}"
    );
    // /zookeeper, /zookeeper/config, /zookeeper/quota and the four above.
    assert_eq!(c.run("getAllChildrenNumber /"), v(&["7"]));
    assert_eq!(c.run("getAllChildrenNumber /e1"), v(&["2"]));
    assert_eq!(c.run("getAllChildrenNumber /e1/a"), v(&["0"]));
    assert_eq!(
        c.run("getAllChildrenNumber /nothere"),
        v(&["Node does not exist: /nothere"])
    );
    // Another session sees none of them as its own.
    let mut d = ZkCli::connect(&server);
    assert_eq!(d.run("getEphemerals"), v(&["[]"]));
}

/// One-shot watches from `get -w`, `ls -w` and `stat -w`: one txn that fires two of
/// them delivers the created node's event before its parent's children event.
#[test]
fn one_shot_watches_fire_once_in_order() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut w = ZkCli::connect(&server);
    assert_eq!(w.run("create /x x"), v(&["Created /x"]));
    assert_eq!(w.run("ls -w /x"), v(&["[]"]));
    assert_eq!(w.run("stat -w /x/new"), v(&["Node does not exist: /x/new"]));
    assert_eq!(w.run("get -w /x"), v(&["x"]));
    let mut other = ZkCli::connect(&server);
    assert_eq!(other.run("create /x/new n"), v(&["Created /x/new"]));
    assert_eq!(other.run_quiet("set /x y"), Vec::<String>::new());
    assert_eq!(other.run_quiet("set /x z"), Vec::<String>::new());
    assert_eq!(other.run("create /x/new2"), v(&["Created /x/new2"]));
    assert_eq!(other.run_quiet("delete /x/new"), Vec::<String>::new());
    // A fresh watch as a barrier: everything before it has been delivered.
    assert_eq!(w.run("get -w /x/new2"), v(&["null"]));
    assert_eq!(other.run_quiet("set /x/new2 b"), Vec::<String>::new());
    w.wait_event(
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/x/new2",
        1,
    );
    assert_eq!(
        w.events(),
        v(&[
            "WatchedEvent state:SyncConnected type:None path:null",
            "WatchedEvent state:SyncConnected type:NodeCreated path:/x/new",
            "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/x",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/x",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/x/new2",
        ])
    );
}

/// setquota/listquota/delquota keep their limits and stats under /zookeeper/quota
/// (soft limits only: ZooKeeper enforces hard ones only with zookeeper.enforceQuota).
#[test]
fn quotas_are_recorded_and_listed() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut c = ZkCli::connect(&server);
    let abs = "absolute path is /zookeeper/quota/q/zookeeper_limits";
    assert_eq!(c.run("create /q"), v(&["Created /q"]));
    assert_eq!(c.run_quiet("setquota -n 2 /q"), Vec::<String>::new());
    assert_eq!(
        c.run("listquota /q"),
        v(&[
            abs,
            "Output quota for /q count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
            "Output stat for /q count=1,bytes=0",
        ])
    );
    for n in ["a", "b", "c"] {
        c.run(&format!("create /q/{n}"));
    }
    // zkCli checks the count limit (2) against the 4 nodes whenever it sets one.
    assert_eq!(
        c.run("setquota -b 10 /q"),
        v(&["[Warning]: the count quota you create is less than the existing count:4"])
    );
    assert_eq!(
        c.run("setquota -N 4 /q"),
        v(&["[Warning]: the count quota you create is less than the existing count:4"])
    );
    assert_eq!(
        c.run("listquota /q"),
        v(&[
            abs,
            "Output quota for /q count=2,bytes=10=;byteHardLimit=-1;countHardLimit=4",
            "Output stat for /q count=4,bytes=0",
        ])
    );
    assert_eq!(c.run("create /q/d"), v(&["Created /q/d"]));
    assert_eq!(c.run_quiet("set /q/a 0123456789"), Vec::<String>::new());
    assert_eq!(c.run_quiet("delquota -n /q"), Vec::<String>::new());
    assert_eq!(
        c.run("listquota /q"),
        v(&[
            abs,
            "Output quota for /q count=-1,bytes=10=;byteHardLimit=-1;countHardLimit=4",
            "Output stat for /q count=5,bytes=10",
        ])
    );
    assert_eq!(
        c.run("setquota -n 2 /q/a"),
        v(&["/q/a has a parent /q which has a quota"])
    );
    assert_eq!(
        c.run("ls -R /zookeeper/quota"),
        v(&[
            "/zookeeper/quota",
            "/zookeeper/quota/q",
            "/zookeeper/quota/q/zookeeper_limits",
            "/zookeeper/quota/q/zookeeper_stats",
        ])
    );
    assert_eq!(
        c.run("get /zookeeper/quota/q/zookeeper_stats"),
        v(&["count=5,bytes=10"])
    );
    assert_eq!(c.run_quiet("delquota /q"), Vec::<String>::new());
    assert_eq!(
        c.run("listquota /q"),
        v(&[abs, "quota for /q does not exist."])
    );
}

/// A chroot in the connect string: the client prefixes every path and strips the prefix
/// from what the server sends back, notifications included.
#[test]
fn chroot_paths_and_watch_events() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut root = ZkCli::connect(&server);
    assert_eq!(root.run("create /app"), v(&["Created /app"]));
    let mut app = ZkCli::connect_to(&format!("{}/app", server.connect_string()));
    assert_eq!(app.run("create /x x"), v(&["Created /x"]));
    assert_eq!(app.run("create -s /x/s"), v(&["Created /x/s0000000000"]));
    assert_eq!(app.run("ls /"), v(&["[x]"]));
    assert_eq!(
        app.run_quiet("addWatch -m PERSISTENT_RECURSIVE /x"),
        Vec::<String>::new()
    );
    // No second (one-shot) watch on /x: ZooKeeper 3.8.0 lets a standard watch replace
    // a same-session persistent recursive one on the same path (Rookery keeps both).
    assert_eq!(
        root.run("ls -R /app"),
        v(&["/app", "/app/x", "/app/x/s0000000000"])
    );
    assert_eq!(root.run("create /app/x/y"), v(&["Created /app/x/y"]));
    assert_eq!(root.run_quiet("set /app/x z"), Vec::<String>::new());
    assert_eq!(root.run_quiet("delete /app/x/y"), Vec::<String>::new());
    app.wait_event(
        "WatchedEvent state:SyncConnected type:NodeDeleted path:/x/y",
        1,
    );
    assert_eq!(
        app.events(),
        v(&[
            "WatchedEvent state:SyncConnected type:None path:null",
            "WatchedEvent state:SyncConnected type:NodeCreated path:/x/y",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/x",
            "WatchedEvent state:SyncConnected type:NodeDeleted path:/x/y",
        ])
    );
    assert_eq!(app.run("getAllChildrenNumber /"), v(&["2"]));
}

/// `deleteall` removes a 321-node tree in one multi (zkCli batches up to 1000 deletes),
/// which takes one zxid.
#[test]
fn deleteall_removes_a_large_tree_in_one_multi() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let mut c = ZkCli::connect(&server);
    // Txn 1 is the session, 2 /big, 3..=302 its children, 303..=322 grandchildren.
    let mut script = vec!["create /big".to_owned()];
    script.extend((1..=300).map(|i| format!("create /big/n{i}")));
    script.extend((1..=20).map(|i| format!("create /big/n1/c{i}")));
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    c.p.send_lines(&lines);
    c.p.wait_for("the last create", |l| l == "Created /big/n1/c20");
    assert_eq!(c.run("getAllChildrenNumber /big"), v(&["320"]));
    let out = c.run("stat /big/n1");
    assert_stat(
        &out,
        3,
        3,
        322,
        &[("cversion", "20"), ("numChildren", "20")],
    );
    assert_eq!(c.run_quiet("deleteall /big"), Vec::<String>::new()); // 323
    assert_eq!(c.run("ls /big"), v(&["Node does not exist: /big"]));
    let out = c.run("stat /");
    assert_eq!(counter(&stat(&out)["pZxid"]), 323, "{out:#?}");
    assert_eq!(stat(&out)["numChildren"], "1", "{out:#?}");
    assert_eq!(c.run("create /next"), v(&["Created /next"])); // 324
    assert_stat(&c.run("stat /next"), 324, 324, 324, &[]);
}

/// One-shot mode (`zkCli.sh -server ... <command> <args>`), as scripts use it: the
/// command's output and exit status 0, or 1 with the error text.
#[test]
fn one_shot_commands_exit_with_status() {
    require!("zkcli");
    let Some(server) = start("") else { return };
    let one_shot = |args: &[&str]| -> (i32, Vec<String>) {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&1")
            .arg(ZKCLI)
            .args(["-server", &server.connect_string()])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // What the command printed comes after "Connecting to"; zkCli's event thread
        // prints the connection event concurrently, so it may come before or after.
        let lines: Vec<String> = text
            .lines()
            .skip_while(|l| !l.starts_with("Connecting to "))
            .skip(1)
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("SLF4J:")
                    && *l != "WATCHER::"
                    && !l.starts_with("WatchedEvent state:SyncConnected type:None")
            })
            .map(str::to_owned)
            .collect();
        (out.status.code().unwrap_or(-1), lines)
    };
    assert_eq!(
        one_shot(&["create", "/one", "data"]),
        (0, v(&["Created /one"]))
    );
    assert_eq!(one_shot(&["get", "/one"]), (0, v(&["data"])));
    assert_eq!(
        one_shot(&["get", "/none"]),
        (1, v(&["Node does not exist: /none"]))
    );
    assert_eq!(
        one_shot(&["create", "/one", "again"]),
        (1, v(&["Node already exists: /one"]))
    );
}
