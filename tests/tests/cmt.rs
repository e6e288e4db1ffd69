//! ZooKeeper's C client through its sample shell cli_mt (Debian's zookeeper-bin): one
//! process per session, commands on stdin. cli_mt runs most commands asynchronously
//! and prints their completions to stderr, so a `get` of a missing marker path follows
//! each command to delimit its output (completions arrive in request order).
//! Every scenario also runs against Apache ZooKeeper (ROOKERY_TEST_TARGET=zookeeper).
//! cli_mt has no command for multi, so multi is covered by the other clients' tests.

#[path = "support/interactive.rs"]
mod interactive;

use interactive::Interactive;
use rookery_tests::{CLI_MT, Server, require};
use std::collections::BTreeMap;

struct CliMt {
    p: Interactive,
    marks: u32,
    /// As printed at connect, in hex without 0x.
    session: String,
}

impl CliMt {
    fn connect(server: &Server) -> CliMt {
        let mut p = Interactive::spawn(CLI_MT, &["-h", &server.connect_string()]);
        p.wait_for("CONNECTED_STATE", |l| {
            l == "Watcher SESSION_EVENT state = CONNECTED_STATE"
        });
        let line = p.wait_for("session id", |l| l.starts_with("Got a new session id: 0x"));
        let session = line
            .last()
            .unwrap()
            .trim_start_matches("Got a new session id: 0x")
            .to_owned();
        CliMt {
            p,
            marks: 0,
            session,
        }
    }

    /// Runs one command and returns what it printed (the "time = N msec" lines left out).
    fn run(&mut self, cmd: &str) -> Vec<String> {
        self.marks += 1;
        let marker = format!("/cmt-end-{}", self.marks);
        self.p.send_lines(&[cmd, &format!("get {marker}")]);
        let end = format!("{marker}: rc = -101");
        let mut lines = self.p.wait_for(&end, |l| l == end);
        lines.pop();
        // The marker's completion goes on with "", "Stat:", "null".
        self.p.wait_for("marker's null Stat", |l| l == "null");
        lines.retain(|l| !l.starts_with("time = ") && !l.starts_with("Watcher "));
        lines
    }

    /// Every "Watcher ..." line so far except the session's connection event.
    fn events(&self) -> Vec<String> {
        self.p
            .all_lines()
            .into_iter()
            .filter(|l| l.starts_with("Watcher ") && !l.starts_with("Watcher SESSION_EVENT"))
            .collect()
    }

    /// Waits until there are `n` watch events.
    fn wait_events(&mut self, n: usize) {
        self.p.wait_until(&format!("{n} watch events"), |lines| {
            lines
                .iter()
                .filter(|l| l.starts_with("Watcher ") && !l.starts_with("Watcher SESSION_EVENT"))
                .count()
                >= n
        });
    }

    /// `quit` closes the session; `myid` (printed on stdout, flushed at exit) must
    /// agree with the id the session event reported.
    fn quit(mut self) {
        self.p.send_lines(&["myid", "quit"]);
        let session = self.session.clone();
        let all = self.p.finish();
        assert!(
            all.iter().any(|l| *l == format!("session Id = {session}")),
            "{all:#?}"
        );
    }
}

/// The fields of a Stat as cli_mt dumps it ("\tczxid=76", "\tversion=1\taversion=0", ...).
fn stat(lines: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in lines {
        for part in l.split('\t').filter(|p| !p.is_empty()) {
            if let Some((k, v)) = part.split_once(" = ").or_else(|| part.split_once('=')) {
                m.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    m
}

/// The counter half of a zxid cli_mt prints (hex, no 0x): deterministic on a fresh
/// server, unlike ZooKeeper's and Rookery's epochs.
fn counter(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("not hex: {hex}")) & 0xffff_ffff
}

fn assert_stat(lines: &[String], czxid: u64, mzxid: u64, rest: &[(&str, &str)]) {
    let s = stat(lines);
    assert_eq!(counter(&s["czxid"]), czxid, "czxid in {lines:#?}");
    assert_eq!(counter(&s["mzxid"]), mzxid, "mzxid in {lines:#?}");
    for (k, v) in rest {
        assert_eq!(s[*k], *v, "{k} in {lines:#?}");
    }
    let keys: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.trim_start().split(['=', ' ']).next())
        .collect();
    assert_eq!(
        keys,
        [
            "ctime",
            "czxid",
            "mtime",
            "mzxid",
            "version",
            "ephemeralOwner"
        ],
        "{lines:#?}"
    );
}

fn v(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

fn start(extra: &str) -> Option<Server> {
    rookery_tests::start_if_available(&["cli_mt"], extra)
}

#[test]
fn create_get_set_ls_exists_delete() {
    require!("cli_mt");
    let Some(server) = start("") else { return };
    let mut c = CliMt::connect(&server);
    // Txn 1 is this session. cli_mt always creates with the data "new".
    assert_eq!(
        c.run("create /c"),
        v(&[
            "Creating [/c] node (mode: 0)",
            "[/c]: rc = 0",
            "\tname = /c"
        ])
    ); // 2
    assert_eq!(
        c.run("create /c"),
        v(&["Creating [/c] node (mode: 0)", "[/c]: rc = -110"])
    ); // 3 ZNODEEXISTS
    let out = c.run("get /c");
    assert_eq!(
        out[..4],
        v(&["/c: rc = 0", " value_len = 3", "new", "Stat:"])
    );
    assert_stat(
        &out[4..],
        2,
        2,
        &[("version", "0"), ("aversion", "0"), ("ephemeralOwner", "0")],
    );

    let out = c.run("set /c hello"); // 4
    assert_eq!(out[0], "/c: rc = 0 Stat:");
    assert_stat(&out[1..], 2, 4, &[("version", "1")]);
    let out = c.run("get /c");
    assert_eq!(
        out[..4],
        v(&["/c: rc = 0", " value_len = 5", "hello", "Stat:"])
    );
    assert_stat(&out[4..], 2, 4, &[("version", "1")]);

    assert_eq!(
        c.run("create +s /c/s"),
        v(&[
            "Creating [/c/s] node (mode: 2)",
            "[/c/s]: rc = 0",
            "\tname = /c/s0000000000"
        ])
    ); // 5
    assert_eq!(
        c.run("create /c/k"),
        v(&[
            "Creating [/c/k] node (mode: 0)",
            "[/c/k]: rc = 0",
            "\tname = /c/k"
        ])
    ); // 6
    let out = c.run("create2 +es /c/e"); // 7
    assert_eq!(
        out[..3],
        v(&[
            "Creating [/c/e] node (mode: 3)",
            "[/c/e]: rc = 0",
            "\tname = /c/e0000000002"
        ])
    );
    let session = c.session.clone();
    assert_stat(
        &out[3..],
        7,
        7,
        &[("version", "0"), ("ephemeralOwner", &session)],
    );

    // Children come in the server's order (ZooKeeper's is a hash set's): compare sorted.
    let mut out = c.run("ls /c");
    assert_eq!(out.remove(0), "/c: rc = 0");
    out.sort();
    assert_eq!(out, v(&["\te0000000002", "\tk", "\ts0000000000"]));
    let out = c.run("ls2 /c");
    assert_eq!(out[0], "/c: rc = 0");
    let mut kids = out[1..4].to_vec();
    kids.sort();
    assert_eq!(kids, v(&["\te0000000002", "\tk", "\ts0000000000"]));
    assert_stat(&out[4..], 2, 4, &[("version", "1")]);
    let mut out = c.run("ls /");
    assert_eq!(out.remove(0), "/: rc = 0");
    out.sort();
    assert_eq!(out, v(&["\tc", "\tzookeeper"]));

    assert_eq!(c.run("exists /c"), Vec::<String>::new());
    assert_eq!(c.run("exists /nothere"), v(&["Error -101 for /nothere"]));
    assert_eq!(
        c.run("get /nothere"),
        v(&["/nothere: rc = -101", "", "Stat:", "null"])
    );
    assert_eq!(c.run("ls /nothere"), v(&["/nothere: rc = -101"]));
    assert_eq!(
        c.run("set /nothere x"),
        v(&["/nothere: rc = -101 Stat:", "null"])
    ); // 8
    assert_eq!(c.run("delete /nothere"), v(&["/nothere: rc = -101"])); // 9
    assert_eq!(
        c.run("create /x/y"),
        v(&["Creating [/x/y] node (mode: 0)", "[/x/y]: rc = -101"])
    ); // 10
    assert_eq!(c.run("delete /c"), v(&["/c: rc = -111"])); // 11 ZNOTEMPTY
    assert_eq!(c.run("delete /zookeeper"), v(&["/zookeeper: rc = -8"])); // ZBADARGUMENTS
    assert_eq!(
        c.run("create +e /c/e0000000002/child"),
        v(&[
            "Creating [/c/e0000000002/child] node (mode: 1)",
            "[/c/e0000000002/child]: rc = -108"
        ])
    ); // ZNOCHILDRENFOREPHEMERALS
    assert_eq!(c.run("delete /c/k"), v(&["/c/k: rc = 0"]));
    assert_eq!(c.run("sync /c"), v(&["[/c]: rc = 0", "\tname = /c"]));
    assert_eq!(c.run("get x"), v(&["Path must start with /, found: x"]));
    c.quit();

    // The ephemeral went with the session.
    let mut d = CliMt::connect(&server);
    let mut out = d.run("ls /c");
    assert_eq!(out.remove(0), "/c: rc = 0");
    assert_eq!(out, v(&["\ts0000000000"]));
    d.quit();
}

#[test]
fn watches_fire_once_for_another_clients_changes() {
    require!("cli_mt");
    let Some(server) = start("") else { return };
    let mut a = CliMt::connect(&server);
    let mut b = CliMt::connect(&server);
    b.run("create /w");
    // get, ls and exists in cli_mt all leave a watch (the default watcher).
    assert_eq!(a.run("get /w")[0], "/w: rc = 0");
    assert_eq!(a.run("ls /w"), v(&["/w: rc = 0"]));
    assert_eq!(a.run("exists /nw"), v(&["Error -101 for /nw"]));
    assert_eq!(a.run("wexists /w2"), v(&["Error -101 for /w2"]));

    b.run("set /w x");
    b.run("set /w y"); // a data watch fires once
    b.run("create /w/k");
    b.run("create /w/k2");
    b.run("create /nw");
    b.run("create /w2");
    a.wait_events(4);
    // Everything those caused has arrived once the exists watch on /w/k fires.
    assert_eq!(a.run("exists /w/k"), Vec::<String>::new());
    b.run("delete /w/k");
    a.wait_events(5);
    assert_eq!(
        a.events(),
        v(&[
            "Watcher CHANGED_EVENT state = CONNECTED_STATE for path /w",
            "Watcher CHILD_EVENT state = CONNECTED_STATE for path /w",
            "Watcher CREATED_EVENT state = CONNECTED_STATE for path /nw",
            "Watcher CREATED_EVENT state = CONNECTED_STATE for path /w2",
            "Watcher DELETED_EVENT state = CONNECTED_STATE for path /w/k",
        ])
    );
    a.quit();
    b.quit();
}

#[test]
fn containers_ttl_config_and_reconfig() {
    require!("cli_mt");
    let Some(server) = start("extendedTypesEnabled=true") else {
        return;
    };
    let mut c = CliMt::connect(&server);
    assert_eq!(
        c.run("create +c /cx"),
        v(&[
            "Creating [/cx] node (mode: 4)",
            "[/cx]: rc = 0",
            "\tname = /cx"
        ])
    );
    assert_eq!(
        c.run("create +t=5000 /tx"),
        v(&[
            "Creating [/tx] node (mode: 5)",
            "[/tx]: rc = 0",
            "\tname = /tx"
        ])
    );
    // Containers and TTL nodes show ephemeralOwner 0 to clients.
    let out = c.run("get /cx");
    assert_stat(&out[4..], 2, 2, &[("ephemeralOwner", "0")]);
    let out = c.run("get /tx");
    assert_stat(&out[4..], 3, 3, &[("ephemeralOwner", "0")]);

    // Standalone: an empty /zookeeper/config whose ACL version ZooKeeper leaves at -1.
    let out = c.run("config");
    assert_eq!(
        out[..4],
        v(&["/zookeeper/config: rc = 0", " value_len = 0", "", "Stat:"])
    );
    assert_stat(
        &out[4..],
        0,
        0,
        &[
            ("version", "0"),
            ("aversion", "ffffffff"),
            ("ephemeralOwner", "0"),
        ],
    );
    let out = c.run("reconfig -add server.5=127.0.0.1:2888:3888;2181");
    assert_eq!(
        out,
        v(&[
            "-add server.5=127.0.0.1:2888:3888;2181: rc = -123",
            "",
            "Stat:",
            "null"
        ])
    ); // ZRECONFIGDISABLED
    c.quit();
}

#[test]
fn ttl_is_unimplemented_without_extended_types() {
    require!("cli_mt");
    let Some(server) = start("") else { return };
    let mut c = CliMt::connect(&server);
    assert_eq!(
        c.run("create +t=5000 /tx"),
        v(&["Creating [/tx] node (mode: 5)", "[/tx]: rc = -6"])
    ); // ZUNIMPLEMENTED
    assert_eq!(
        c.run("create /after"),
        v(&[
            "Creating [/after] node (mode: 0)",
            "[/after]: rc = 0",
            "\tname = /after"
        ])
    );
    c.quit();
}

/// cli_mt's `od` pipelines 200 pairs of a 64 KiB set and a watching get on /od: every
/// reply comes back OK and in order, and each get's watch is fired by the next set.
#[test]
fn od_pipelines_large_sets_and_watching_gets() {
    require!("cli_mt");
    let Some(server) = start("") else { return };
    let mut c = CliMt::connect(&server);
    assert_eq!(
        c.run("create /od"),
        v(&[
            "Creating [/od] node (mode: 0)",
            "[/od]: rc = 0",
            "\tname = /od"
        ])
    );
    c.p.send("od");
    c.p.wait_for("all od replies", |l| {
        l == "Recvd 200 responses for 200 requests sent"
    });
    let all = c.p.all_lines();
    let count = |s: &str| all.iter().filter(|l| *l == s).count();
    assert_eq!(count("od command response: rc = 0 Stat:"), 1);
    assert_eq!(count("Data completion /od rc = 0"), 200, "{all:#?}");
    assert_eq!(
        count("Watcher CHANGED_EVENT state = CONNECTED_STATE for path /od"),
        199
    );
    assert!(
        all.iter()
            .all(|l| !l.starts_with("Data completion") || l.ends_with("rc = 0")),
        "{all:#?}"
    );
    let out = c.run("get /od");
    assert_eq!(out[..2], v(&["/od: rc = 0", " value_len = 65535"]));
    let s = stat(&out);
    // The od command's own set, then 200 more.
    assert_eq!(s["version"], format!("{:x}", 201), "{out:#?}");
    c.quit();
}

/// Digest auth from the C client on a node whose ACL zkCli.sh set; an unknown scheme
/// fails the session (AUTH_FAILED) as ZooKeeper does; `-r` (read-only allowed) still
/// gets a read-write session from a standalone server.
#[test]
fn digest_auth_unknown_scheme_and_read_only_flag() {
    require!("cli_mt", "zkcli");
    let Some(server) = start("") else { return };
    let zkcli = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "printf 'create /sec s\\nsetAcl /sec digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa\\nquit\\n' \
             | {} -server {} 2>&1",
            rookery_tests::ZKCLI,
            server.connect_string()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&zkcli.stdout);
    assert!(text.contains("Created /sec"), "{text}");

    let mut c = CliMt::connect(&server);
    assert_eq!(
        c.run("get /sec"),
        v(&["/sec: rc = -102", "", "Stat:", "null"])
    ); // ZNOAUTH
    assert_eq!(c.run("addauth digest alice:wrong"), Vec::<String>::new());
    assert_eq!(
        c.run("get /sec"),
        v(&["/sec: rc = -102", "", "Stat:", "null"])
    );
    assert_eq!(c.run("addauth digest alice:secret"), Vec::<String>::new());
    assert_eq!(
        c.run("get /sec")[..3],
        v(&["/sec: rc = 0", " value_len = 1", "s"])
    );
    assert_eq!(c.run("delete /sec"), v(&["/sec: rc = 0"]));
    c.quit();

    let mut c = CliMt::connect(&server);
    c.p.send("addauth nosuchscheme whatever");
    c.p.wait_for("AUTH_FAILED", |l| {
        l == "Watcher SESSION_EVENT state = AUTH_FAILED_STATE"
    });
    c.p.wait_for("shutdown", |l| {
        l == "Authentication failure. Shutting down..."
    });
    drop(c);

    let mut p = interactive::Interactive::spawn(CLI_MT, &["-h", &server.connect_string(), "-r"]);
    p.wait_for("CONNECTED_STATE", |l| {
        l == "Watcher SESSION_EVENT state = CONNECTED_STATE"
    });
    p.send_lines(&["create /rw", "get /cmt-end"]);
    let out = p.wait_for("marker", |l| l == "/cmt-end: rc = -101");
    assert!(out.iter().any(|l| l == "[/rw]: rc = 0"), "{out:#?}");
}
