//! Rookery's own admin plane, through the real binary: `rookery admin ...` against a
//! running `rookery serve` (standalone and a three-voter ensemble), its `--json`
//! output parsed and checked against what ZooKeeper clients did and see: status,
//! sessions (list, expire, forwarded from a follower), snapshot save and offline
//! restore into a new server, the bearer token, and the refusal of an unauthenticated
//! admin API on a non-loopback address.
//!
//! Rookery only: Apache ZooKeeper has no such API, so with
//! `ROOKERY_TEST_TARGET=zookeeper` every test here prints why and passes.

use rookery_tests::zk::{persistent, runtime};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rookery_tests::{
    CLUSTER_WAIT, Cluster, ClusterOptions, Server, Target, free_port, rookery_bin,
};
use serde_json::Value;
use zookeeper_client::{
    Acls, Client, CreateMode, CreateOptions, Error, EventType, SessionState, Stat,
};

/// Long enough for a loaded 2-core CI machine; nothing here is a timing assertion.
const WAIT: Duration = Duration::from_secs(30);

/// Where `rookery admin` looks for a default zoo.cfg: nowhere, so nothing on the
/// machine running the tests (a token file, an endpoint) leaks into them.
const NO_CONFIG_DIR: &str = "/nonexistent/rookery-admin-tests";

macro_rules! rookery_only {
    () => {
        if Target::from_env() == Target::ZooKeeper {
            println!("SKIPPED: the gRPC admin API is Rookery's own; ZooKeeper has none");
            return;
        }
    };
}

// ---------------------------------------------------------------------------------
// Running `rookery admin`.

/// What one `rookery admin` run did.
struct Run {
    args: String,
    output: Output,
}

impl Run {
    fn success(&self) -> bool {
        self.output.status.success()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "`rookery {}` ({})\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Stdout, panicking with everything when the run failed.
    fn ok(self) -> String {
        assert!(self.success(), "expected success: {}", self.describe());
        self.stdout()
    }

    /// Stdout parsed as JSON.
    fn json(self) -> Value {
        let text = self.ok();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
    }

    /// Stderr, panicking when the run succeeded.
    fn failed(self) -> String {
        assert!(!self.success(), "expected failure: {}", self.describe());
        self.stderr()
    }
}

/// `rookery admin <args>`, with neither a token from the environment nor a default
/// zoo.cfg.
fn admin_command(args: &[&str]) -> Command {
    let mut c = Command::new(rookery_bin());
    c.arg("admin")
        .args(args)
        .env_remove("ROOKERY_ADMIN_TOKEN")
        .env("ZOOCFGDIR", NO_CONFIG_DIR)
        .stdin(Stdio::null());
    c
}

fn run(mut cmd: Command) -> Run {
    let args = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let output = cmd.output().expect("running rookery admin");
    Run { args, output }
}

/// `rookery admin --endpoint <endpoint> <args>`.
fn admin(endpoint: &str, args: &[&str]) -> Run {
    let mut all = vec!["--endpoint", endpoint];
    all.extend_from_slice(args);
    run(admin_command(&all))
}

/// Waits until the admin API at `endpoint` answers `--json status` (it starts a
/// moment after the client port the harness waits for) and returns that answer.
fn wait_for_admin(endpoint: &str, extra: &[&str]) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut args = extra.to_vec();
    args.extend(["--json", "status"]);
    loop {
        let r = admin(endpoint, &args);
        if r.success() {
            return r.json();
        }
        assert!(
            Instant::now() < deadline,
            "the admin API at {endpoint} did not answer within {WAIT:?}: {}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `f` every 100 ms until it returns Some, panicking with `what` after `timeout`.
fn poll<T>(timeout: Duration, what: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{} (after {timeout:?})", what());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hex(v: i64) -> String {
    format!("{v:#x}")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v:#}"))
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {v:#}"))
}

/// The `--json sessions list` entry for `session` (hex), if listed.
fn find_session(list: &Value, session: &str) -> Option<Value> {
    list.as_array()
        .unwrap_or_else(|| panic!("sessions list is not an array: {list:#}"))
        .iter()
        .find(|s| s["session_id"].as_str() == Some(session))
        .cloned()
}

// ---------------------------------------------------------------------------------
// ZooKeeper clients (the `zookeeper-client` crate) on a runtime of their own, so the
// tests stay synchronous and the clients keep pinging while a CLI run blocks.

fn connect(rt: &tokio::runtime::Runtime, connect_string: &str, timeout: Duration) -> Client {
    rt.block_on(
        Client::connector()
            .with_session_timeout(timeout)
            .connect(connect_string),
    )
    .unwrap_or_else(|e| panic!("connecting to {connect_string}: {e}"))
}

fn ephemeral() -> CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(Acls::anyone_all())
}

fn create(rt: &tokio::runtime::Runtime, zk: &Client, path: &str, data: &[u8]) -> Stat {
    rt.block_on(zk.create(path, data, &persistent()))
        .unwrap_or_else(|e| panic!("create {path}: {e}"))
        .0
}

/// Waits until the client's session state is Expired.
fn wait_expired(rt: &tokio::runtime::Runtime, zk: &Client) {
    let mut watcher = zk.state_watcher();
    // The timer must be made inside the runtime.
    let seen = rt.block_on(async move {
        tokio::time::timeout(WAIT, async move {
            let mut state = watcher.state();
            while state != SessionState::Expired {
                if state.is_terminated() {
                    return state;
                }
                state = watcher.changed().await;
            }
            state
        })
        .await
    });
    assert_eq!(
        seen,
        Ok(SessionState::Expired),
        "the client did not see its session expire within {WAIT:?} (now {})",
        zk.state()
    );
}

/// Kills a process the test started itself when it goes out of scope.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------

#[test]
fn standalone_status_counts_what_clients_did() {
    rookery_only!();
    let server = Server::start_with(Target::Rookery, "");
    let ep = server.admin_endpoint();
    let idle = wait_for_admin(&ep, &[]);
    assert_eq!(str_field(&idle, "mode"), "standalone", "{idle:#}");
    // As in ZooKeeper, a standalone server has no leader.
    assert_eq!(idle["leader_id"], Value::Null, "{idle:#}");
    assert_eq!(idle["members"][0]["leader"], Value::Bool(false), "{idle:#}");
    assert_eq!(u64_field(&idle, "sessions"), 0, "{idle:#}");

    let rt = runtime();
    let a = connect(&rt, &server.connect_string(), Duration::from_secs(20));
    let b = connect(&rt, &server.connect_string(), Duration::from_secs(20));

    let before = admin(&ep, &["--json", "status"]).json();
    assert_eq!(u64_field(&before, "sessions"), 2, "{before:#}");
    let znodes_before = u64_field(&before, "znodes");

    create(&rt, &a, "/status", b"parent");
    create(&rt, &a, "/status/one", b"1");
    let last = create(&rt, &b, "/status/two", b"22");

    let after = admin(&ep, &["--json", "status"]).json();
    assert_eq!(str_field(&after, "mode"), "standalone", "{after:#}");
    assert_eq!(u64_field(&after, "znodes"), znodes_before + 3, "{after:#}");
    assert_eq!(u64_field(&after, "sessions"), 2, "{after:#}");
    assert_eq!(
        str_field(&after, "applied_zxid"),
        hex(last.mzxid),
        "{after:#}"
    );
    assert_eq!(
        str_field(&after, "applied_zxid"),
        hex(last.czxid),
        "{after:#}"
    );

    let human = admin(&ep, &["status"]).ok();
    let mode_line = human
        .lines()
        .find(|l| l.starts_with("Mode:"))
        .unwrap_or_else(|| panic!("no Mode: line in\n{human}"));
    assert!(mode_line.contains("standalone"), "{human}");
    let header = human
        .lines()
        .find(|l| l.starts_with("ID"))
        .unwrap_or_else(|| panic!("no members table in\n{human}"));
    assert!(
        header.contains("ROLE") && header.contains("LINK"),
        "{human}"
    );

    // `rookery admin status | head -1`: the reader is gone before the output is, and
    // the command ends quietly with success rather than panicking on the closed pipe.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut piped = admin_command(&["--endpoint", &ep, "status"]);
    piped.stdout(writer);
    let closed = run(piped);
    assert!(closed.success(), "{}", closed.describe());
    assert!(
        !closed.stderr().contains("panicked"),
        "{}",
        closed.describe()
    );

    // `snapshot take` writes one into the server's own storage at the applied zxid.
    assert_eq!(u64_field(&after, "snapshots"), 0, "{after:#}");
    let taken = admin(&ep, &["--json", "snapshot", "take"]).json();
    assert_eq!(str_field(&taken, "last_zxid"), hex(last.mzxid), "{taken:#}");
    assert!(u64_field(&taken, "bytes") > 0, "{taken:#}");
    let with_snapshot = admin(&ep, &["--json", "status"]).json();
    assert_eq!(
        u64_field(&with_snapshot, "snapshots"),
        1,
        "{with_snapshot:#}"
    );
    assert_eq!(
        u64_field(&with_snapshot, "snapshot_bytes"),
        u64_field(&taken, "bytes"),
        "{with_snapshot:#}"
    );
    drop((a, b));
}

#[test]
fn sessions_list_and_expire() {
    rookery_only!();
    let server = Server::start_with(Target::Rookery, "");
    let ep = server.admin_endpoint();
    wait_for_admin(&ep, &[]);

    let rt = runtime();
    let owner = connect(&rt, &server.connect_string(), Duration::from_secs(20));
    let other = connect(&rt, &server.connect_string(), Duration::from_secs(20));
    rt.block_on(owner.create("/eph", b"mine", &ephemeral()))
        .expect("create the ephemeral");
    let id = hex(owner.session_id().0);

    let list = admin(&ep, &["--json", "sessions", "list"]).json();
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list:#}");
    let entry = find_session(&list, &id).unwrap_or_else(|| panic!("{id} not in {list:#}"));
    assert_eq!(u64_field(&entry, "ephemerals"), 1, "{entry:#}");
    assert_eq!(entry["connected_here"], Value::Bool(true), "{entry:#}");
    let other_entry = find_session(&list, &hex(other.session_id().0))
        .unwrap_or_else(|| panic!("the other session is not in {list:#}"));
    assert_eq!(u64_field(&other_entry, "ephemerals"), 0, "{other_entry:#}");

    let (_, deleted) = rt
        .block_on(other.check_and_watch_stat("/eph"))
        .expect("watch the ephemeral");
    let out = admin(&ep, &["sessions", "expire", &id]).ok();
    assert!(out.contains(&id), "{out}");

    wait_expired(&rt, &owner);
    assert_eq!(
        rt.block_on(owner.get_data("/eph")).err(),
        Some(Error::SessionExpired)
    );
    let event = rt
        .block_on(async { tokio::time::timeout(WAIT, deleted.changed()).await })
        .expect("no NodeDeleted for the ephemeral");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeDeleted, "/eph")
    );
    assert_eq!(rt.block_on(other.check_stat("/eph")), Ok(None));
    let list = admin(&ep, &["--json", "sessions", "list"]).json();
    assert!(find_session(&list, &id).is_none(), "{list:#}");

    // Status shows what happened: the server started serving, then the expiry.
    let status = admin(&ep, &["--json", "status"]).json();
    let events: Vec<&str> = status["recent_events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["what"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        events,
        [
            "serving as standalone (epoch 1)".to_owned(),
            format!("operator expired session {id}")
        ],
        "{status:#}"
    );
    let human = admin(&ep, &["status"]).ok();
    assert!(
        human.contains(&format!("operator expired session {id}")),
        "{human}"
    );

    // A session that does not exist: the server's NotFound, and a failure exit.
    let err = admin(&ep, &["sessions", "expire", "0x1234abcd"]).failed();
    assert!(err.contains("NotFound"), "{err}");
    // And one that just expired is gone for good.
    let err = admin(&ep, &["sessions", "expire", &id]).failed();
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn snapshot_save_and_restore_into_a_new_server() {
    rookery_only!();
    let source = Server::start_with(Target::Rookery, "");
    let ep = source.admin_endpoint();
    wait_for_admin(&ep, &[]);

    let rt = runtime();
    let nodes: [(&str, &[u8]); 4] = [
        ("/app", b"root of the app"),
        ("/app/config", b"{\"replicas\":3}"),
        ("/app/empty", b""),
        ("/app/config/binary", &[0, 1, 2, 255, 254]),
    ];
    {
        let zk = connect(&rt, &source.connect_string(), Duration::from_secs(20));
        for (path, data) in nodes {
            create(&rt, &zk, path, data);
        }
        rt.block_on(zk.set_data("/app", b"root, updated", None))
            .expect("setData");
        // Closed before the snapshot, so the restored server has no session to expire
        // (which would move its zxid past the source's).
        drop(zk);
    }
    let src = poll(
        WAIT,
        || "the source still lists a session after its client closed".into(),
        || {
            let s = admin(&ep, &["--json", "status"]).json();
            (u64_field(&s, "sessions") == 0).then_some(s)
        },
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app.snapshot");
    let file_arg = file.to_str().expect("utf-8 path");
    let saved = admin(&ep, &["--json", "snapshot", "save", file_arg]).json();
    assert!(file.is_file(), "no {}", file.display());
    assert!(
        !file.with_extension("partial").exists(),
        "a .partial file was left behind"
    );
    assert_eq!(
        u64_field(&saved, "bytes"),
        std::fs::metadata(&file).unwrap().len(),
        "{saved:#}"
    );
    assert_eq!(
        saved["last_zxid"], src["applied_zxid"],
        "{saved:#}\n{src:#}"
    );
    assert_eq!(saved["digest"], src["digest"], "{saved:#}\n{src:#}");

    // A new server, configured but not started; restore is offline.
    let mut restored = Server::configure_with(Target::Rookery, "");
    let cfg = restored.config_path();
    let cfg_arg = cfg.to_str().expect("utf-8 path");
    let r = run(admin_command(&[
        "--config", cfg_arg, "--json", "snapshot", "restore", file_arg,
    ]))
    .json();
    assert_eq!(r["last_zxid"], src["applied_zxid"], "{r:#}\n{src:#}");
    assert_eq!(r["digest"], src["digest"], "{r:#}\n{src:#}");
    assert_eq!(r["znodes"], src["znodes"], "{r:#}\n{src:#}");

    restored.restart();
    let new = wait_for_admin(&restored.admin_endpoint(), &[]);
    assert_eq!(str_field(&new, "mode"), "standalone", "{new:#}");
    assert_eq!(new["applied_zxid"], src["applied_zxid"], "{new:#}\n{src:#}");
    assert_eq!(new["digest"], src["digest"], "{new:#}\n{src:#}");
    assert_eq!(new["znodes"], src["znodes"], "{new:#}\n{src:#}");

    let zk = connect(&rt, &restored.connect_string(), Duration::from_secs(20));
    for (path, data) in nodes.iter().skip(1) {
        let (got, _) = rt
            .block_on(zk.get_data(path))
            .unwrap_or_else(|e| panic!("{path} on the restored server: {e}"));
        assert_eq!(got, *data, "{path}");
    }
    let (root, stat) = rt.block_on(zk.get_data("/app")).expect("/app");
    assert_eq!(root, b"root, updated");
    assert_eq!(stat.version, 1, "{stat:?}");
    drop(zk);

    // Restore only ever seeds an empty data directory.
    restored.kill9();
    let err = run(admin_command(&[
        "--config", cfg_arg, "snapshot", "restore", file_arg,
    ]))
    .failed();
    assert!(err.contains("already holds data"), "{err}");
}

#[test]
fn the_bearer_token_is_required_when_configured() {
    rookery_only!();
    let secrets = tempfile::tempdir().expect("tempdir");
    let token = "s3cret-admin-token";
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");
    let token_arg = token_file.to_str().expect("utf-8 path");
    let server = Server::start_with(
        Target::Rookery,
        &format!("admin.authTokenFile={}", token_file.display()),
    );
    let ep = server.admin_endpoint();
    wait_for_admin(&ep, &["--token-file", token_arg]);

    let err = admin(&ep, &["status"]).failed();
    assert!(err.contains("Unauthenticated"), "{err}");

    let out = admin(&ep, &["--token-file", token_arg, "status"]).ok();
    assert!(out.contains("standalone"), "{out}");

    let mut with_env = admin_command(&["--endpoint", &ep, "status"]);
    with_env.env("ROOKERY_ADMIN_TOKEN", token);
    let out = run(with_env).ok();
    assert!(out.contains("standalone"), "{out}");

    let mut wrong = admin_command(&["--endpoint", &ep, "status"]);
    wrong.env("ROOKERY_ADMIN_TOKEN", "not-the-token");
    let err = run(wrong).failed();
    assert!(err.contains("Unauthenticated"), "{err}");

    // Without --endpoint and --token-file, both come from the server's zoo.cfg.
    let cfg = server.config_path();
    let out = run(admin_command(&[
        "--config",
        cfg.to_str().expect("utf-8 path"),
        "status",
    ]))
    .ok();
    assert!(out.contains("standalone"), "{out}");
}

#[test]
fn a_non_loopback_admin_address_without_a_token_is_refused() {
    rookery_only!();
    let server = Server::configure_with(
        Target::Rookery,
        &format!("admin.grpcAddress=0.0.0.0:{}", free_port()),
    );
    let log = server.dir().join("refused.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut child = Reaper(
        Command::new(rookery_bin())
            .args(["serve", "--config"])
            .arg(server.config_path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting rookery serve"),
    );
    let read_log = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let status = poll(
        Duration::from_secs(10),
        || {
            format!(
                "rookery serve with admin.grpcAddress=0.0.0.0 and no token file is still \
                 running:\n{}",
                read_log(&log)
            )
        },
        || child.0.try_wait().expect("try_wait"),
    );
    let text = read_log(&log);
    assert!(!status.success(), "exited with {status}:\n{text}");
    assert!(text.contains("admin.authTokenFile"), "{text}");
    assert!(text.contains("0.0.0.0"), "{text}");
}

/// A three-voter ensemble and its leader; `None` where clusters cannot run here.
fn three_voters() -> Option<(Cluster, usize)> {
    let mut c = rookery_tests::start_cluster_if_available(ClusterOptions {
        voters: 3,
        observers: 0,
        ..ClusterOptions::default()
    })?;
    let leader = c
        .leader()
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    Some((c, leader))
}

#[test]
fn cluster_status_members_and_expire_through_a_follower() {
    rookery_only!();
    let Some((c, leader)) = three_voters() else {
        return;
    };
    let followers: Vec<usize> = c.ids().filter(|&n| n != leader).collect();
    let leader_ep = c.node(leader).admin_endpoint();
    let leader_id = c.node(leader).id() as u64;

    let status = wait_for_admin(&leader_ep, &[]);
    assert_eq!(str_field(&status, "mode"), "leader", "{status:#}");
    assert_eq!(u64_field(&status, "server_id"), leader_id, "{status:#}");
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(3),
        "{status:#}"
    );

    // The leader's view of its followers: synced, with a lag it can count.
    let members = poll(
        CLUSTER_WAIT,
        || "the leader does not list both followers as synced".into(),
        || {
            let m = admin(&leader_ep, &["--json", "members", "list"]).json();
            let list = m["members"].as_array()?.clone();
            let synced = list
                .iter()
                .filter(|x| x["id"].as_u64() != Some(leader_id))
                .all(|x| x["link"] == "synced" && x["lag_txns"].is_u64());
            (list.len() == 3 && synced).then_some(list)
        },
    );
    for m in &members {
        let id = m["id"].as_u64().expect("member id");
        assert_eq!(m["role"], "voter", "{m:#}");
        assert_eq!(m["leader"], Value::Bool(id == leader_id), "{m:#}");
        if id == leader_id {
            assert_eq!(m["link"], "self", "{m:#}");
        }
    }

    for &f in &followers {
        let s = wait_for_admin(&c.node(f).admin_endpoint(), &[]);
        assert_eq!(str_field(&s, "mode"), "follower", "node {f}: {s:#}");
        assert_eq!(s["leader_id"].as_u64(), Some(leader_id), "node {f}: {s:#}");
    }

    // A session on one follower, expired through the other follower's admin API.
    let (asked, holder) = (followers[0], followers[1]);
    let rt = runtime();
    let zk = connect(
        &rt,
        &format!("127.0.0.1:{}", c.client_port(holder)),
        Duration::from_secs(10),
    );
    rt.block_on(zk.create("/held", b"", &ephemeral()))
        .expect("create an ephemeral");
    let id = hex(zk.session_id().0);
    let on_leader = poll(
        WAIT,
        || format!("session {id} is not in the leader's list"),
        || {
            find_session(
                &admin(&leader_ep, &["--json", "sessions", "list"]).json(),
                &id,
            )
        },
    );
    assert_eq!(
        on_leader["connected_here"],
        Value::Bool(false),
        "{on_leader:#}"
    );
    assert_eq!(u64_field(&on_leader, "ephemerals"), 1, "{on_leader:#}");
    let on_holder = find_session(
        &admin(
            &c.node(holder).admin_endpoint(),
            &["--json", "sessions", "list"],
        )
        .json(),
        &id,
    )
    .unwrap_or_else(|| panic!("session {id} is not listed on node {holder}"));
    assert_eq!(
        on_holder["connected_here"],
        Value::Bool(true),
        "{on_holder:#}"
    );

    admin(
        &c.node(asked).admin_endpoint(),
        &["sessions", "expire", &id],
    )
    .ok();
    poll(
        WAIT,
        || format!("session {id} is still in the leader's list"),
        || {
            let list = admin(&leader_ep, &["--json", "sessions", "list"]).json();
            find_session(&list, &id).is_none().then_some(())
        },
    );
    wait_expired(&rt, &zk);

    let human = admin(&leader_ep, &["status"]).ok();
    println!("`rookery admin status` on the leader (node {leader}):\n{human}");
    assert!(human.contains("leader"), "{human}");
}

#[test]
fn a_follower_that_replayed_its_log_at_start_snapshots_once() {
    rookery_only!();
    let Some((mut c, leader)) = three_voters() else {
        return;
    };
    let rt = runtime();
    let zk = connect(&rt, &c.connect_string(), Duration::from_secs(10));
    create_many(&rt, &zk, 50);
    let snapshots = |c: &Cluster, n: usize| {
        let s = wait_for_admin(&c.node(n).admin_endpoint(), &[]);
        u64_field(&s, "snapshots")
    };
    // Far below snapCount: nobody has taken one.
    for n in c.ids() {
        assert_eq!(snapshots(&c, n), 0, "node {n}");
    }
    let (restarted, other) = {
        let f: Vec<usize> = c.ids().filter(|&n| n != leader).collect();
        (f[0], f[1])
    };
    c.restart(restarted);
    // It replayed its log once it synced, so it snapshots, as ZooKeeper's loadData
    // does, and its next start restores that instead of replaying again.
    poll(
        CLUSTER_WAIT,
        || {
            format!(
                "node {restarted} took no snapshot after its restart\n{}",
                c.log(restarted)
            )
        },
        || (snapshots(&c, restarted) == 1).then_some(()),
    );
    assert_eq!(snapshots(&c, other), 0, "node {other}, not restarted");
    c.restart(restarted);
    let after = wait_for_admin(&c.node(restarted).admin_endpoint(), &[]);
    assert_eq!(str_field(&after, "mode"), "follower", "{after:#}");
    // Nothing to replay the second time: still one.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(snapshots(&c, restarted), 1, "node {restarted}");
    drop(zk);
}

/// How many znodes the joiner must catch up on; `ROOKERY_MEMBERSHIP_ZNODES=100000`
/// measures a large catch-up (the note on issue 5 quotes it).
fn membership_znodes() -> usize {
    std::env::var("ROOKERY_MEMBERSHIP_ZNODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// Writes `n` znodes under `/bulk`, many in flight at once.
fn create_many(rt: &tokio::runtime::Runtime, zk: &Client, n: usize) {
    create(rt, zk, "/bulk", b"");
    rt.block_on(async {
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let mut pending = tokio::task::JoinSet::new();
            for i in chunk {
                let path = format!("/bulk/n{i:06}");
                let zk = zk.clone();
                pending.spawn(async move { zk.create(&path, &[7u8; 100], &persistent()).await });
            }
            while let Some(r) = pending.join_next().await {
                r.expect("bulk create task").expect("bulk create");
            }
        }
    });
}

/// A write through `zk` that must commit within `timeout`.
fn write_commits(rt: &tokio::runtime::Runtime, zk: &Client, path: &str, timeout: Duration) -> bool {
    rt.block_on(async {
        tokio::time::timeout(timeout, zk.create(path, b"", &persistent()))
            .await
            .is_ok_and(|r| r.is_ok())
    })
}

fn member(list: &Value, id: usize) -> Option<&Value> {
    list["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"].as_u64() == Some(id as u64))
}

#[test]
fn members_are_added_promoted_and_removed_through_the_cli() {
    rookery_only!();
    let Some(mut c) = rookery_tests::start_cluster_if_available(ClusterOptions::default()) else {
        return;
    };
    let leader = c
        .leader()
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let leader_ep = c.node(leader).admin_endpoint();
    wait_for_admin(&leader_ep, &[]);
    let rt = runtime();
    let zk = connect(
        &rt,
        &format!("127.0.0.1:{}", c.client_port(leader)),
        Duration::from_secs(10),
    );
    let znodes = membership_znodes();
    create_many(&rt, &zk, znodes);

    // A fourth server joins as an observer, catches up, and is promoted.
    let started = Instant::now();
    let new = c.add_server();
    let (q, e, cp) = (
        c.node(new).quorum_port(),
        c.node(new).election_port(),
        c.client_port(new),
    );
    let added = admin(
        &leader_ep,
        &[
            "--json",
            "members",
            "add",
            &new.to_string(),
            &format!("127.0.0.1:{q}"),
            &format!("127.0.0.1:{e}"),
            "--client",
            &format!("127.0.0.1:{cp}"),
        ],
    )
    .json();
    assert_eq!(
        member(&added, new).map(|m| m["role"].clone()),
        Some(Value::from("observer")),
        "{added:#}"
    );
    let version_added = str_field(&added, "config_version").to_owned();
    // The change is in the leader's recent events, with who asked for it.
    let status = admin(&leader_ep, &["--json", "status"]).json();
    let events: Vec<String> = status["recent_events"]
        .as_array()
        .map(|a| a.iter().map(|e| e["what"].to_string()).collect())
        .unwrap_or_default();
    assert!(
        events.iter().any(|e| e.contains("operator asked: Add"))
            && events
                .iter()
                .any(|e| e.contains(&format!("{new}:observer"))),
        "{events:?}"
    );
    assert!(
        c.wait_for_mode_eq(new, "observer", CLUSTER_WAIT),
        "the joiner did not observe\n{}",
        c.logs()
    );
    let promoted = poll(
        CLUSTER_WAIT,
        || format!("server {new} was never promoted\n{}", c.logs()),
        || {
            let r = admin(
                &leader_ep,
                &["--json", "members", "promote", &new.to_string()],
            );
            if !r.success() {
                // Refused until it has caught up: the reason says so.
                assert!(r.stderr().contains("caught up"), "{}", r.describe());
            }
            r.success().then(|| r.json())
        },
    );
    let took = started.elapsed();
    println!(
        "add + catch-up ({znodes} znodes) + promote of server {new} took {} ms",
        took.as_millis()
    );
    assert_eq!(
        member(&promoted, new).map(|m| m["role"].clone()),
        Some(Value::from("voter")),
        "{promoted:#}"
    );
    assert_ne!(str_field(&promoted, "config_version"), version_added);
    c.set_observer(new, false);
    assert!(
        c.wait_for_mode_eq(new, "follower", CLUSTER_WAIT),
        "the promoted server does not follow\n{}",
        c.logs()
    );
    // /zookeeper/config shows it, in ZooKeeper's format, on every server.
    let (config, _) = rt
        .block_on(zk.get_data("/zookeeper/config"))
        .expect("read /zookeeper/config");
    let config = String::from_utf8_lossy(&config).into_owned();
    assert!(
        config.contains(&format!(
            "server.{new}=127.0.0.1:{q}:{e}:participant;127.0.0.1:{cp}"
        )),
        "{config}"
    );
    assert!(
        config.ends_with(&format!(
            "version={}",
            str_field(&promoted, "config_version")
        )),
        "{config}"
    );

    // It counts: with one original voter down, three of four (the new one among them)
    // still commit; with the new one paused too, two of four cannot.
    let down = c
        .ids()
        .find(|&n| n != leader && n != new)
        .expect("a follower");
    c.kill9(down);
    assert!(
        write_commits(&rt, &zk, "/with-three-of-four", WAIT),
        "a write did not commit with 3 of 4 voters\n{}",
        c.logs()
    );
    c.stop(new);
    assert!(
        !write_commits(&rt, &zk, "/with-two-of-four", Duration::from_secs(5)),
        "a write committed with 2 of 4 voters: the new voter was not counted"
    );
    c.resume(new);
    c.restart(down);
    let leader = c
        .wait_for_leader(CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no leader after the pause\n{}", c.logs()));
    let leader_ep = c.node(leader).admin_endpoint();
    wait_for_admin(&leader_ep, &[]);
    let zk = connect(&rt, &c.connect_string(), Duration::from_secs(10));
    assert!(write_commits(&rt, &zk, "/all-four-back", WAIT));

    // Removing a member: the rest go on.
    let gone = c
        .ids()
        .find(|&n| n != leader && n != new)
        .expect("an original follower");
    let removed = poll(
        CLUSTER_WAIT,
        || format!("server {gone} was not removed\n{}", c.logs()),
        || {
            let r = admin(
                &leader_ep,
                &["--json", "members", "remove", &gone.to_string()],
            );
            r.success().then(|| r.json())
        },
    );
    assert!(member(&removed, gone).is_none(), "{removed:#}");
    assert_eq!(removed["members"].as_array().map(Vec::len), Some(3));
    c.kill9(gone);
    assert!(write_commits(&rt, &zk, "/after-remove", WAIT));

    // Removing a member so that no quorum is left is refused, with the reason.
    let other = c
        .ids()
        .find(|&n| n != leader && n != gone && n != new)
        .expect("the last original follower");
    c.kill9(other);
    // Once the leader has noticed (its view of a learner lags a crash by up to
    // syncLimit; a change asked before then is accepted and waits for the dead voter).
    poll(
        CLUSTER_WAIT,
        || format!("the leader still lists server {other} as synced"),
        || {
            let list = admin(&leader_ep, &["--json", "members", "list"]).json();
            member(&list, other)
                .is_some_and(|m| m["link"] != "synced")
                .then_some(())
        },
    );
    let refused = admin(&leader_ep, &["members", "remove", &new.to_string()]);
    assert!(!refused.success(), "{}", refused.describe());
    assert!(
        refused.stderr().contains("in sync"),
        "{}",
        refused.describe()
    );
    c.restart(other);

    // The membership survives a restart of every member that is still in it.
    let before = admin(&leader_ep, &["--json", "members", "list"]).json();
    let members: Vec<usize> = c.ids().filter(|&n| n != gone).collect();
    for &n in &members {
        c.restart(n);
    }
    let leader = c
        .wait_for_leader_among(&members, CLUSTER_WAIT)
        .unwrap_or_else(|| panic!("no leader after restarts\n{}", c.logs()));
    let ep = c.node(leader).admin_endpoint();
    wait_for_admin(&ep, &[]);
    let after = admin(&ep, &["--json", "members", "list"]).json();
    assert_eq!(before["config_version"], after["config_version"]);
    let ids = |v: &Value| -> Vec<u64> {
        v["members"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_u64()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids(&before), ids(&after));
    let human = admin(&ep, &["members", "list"]).ok();
    println!("`rookery admin members list` after the changes:\n{human}");

    // Leadership handed to a named follower, which then takes writes.
    let next = members
        .iter()
        .copied()
        .filter(|&n| n != leader)
        .min()
        .expect("a follower");
    // A leader is found before every restarted follower has joined it, and a transfer
    // to one not yet in sync is refused (FailedPrecondition): wait for it first.
    poll(
        CLUSTER_WAIT,
        || format!("server {next} never synced with the leader\n{}", c.logs()),
        || {
            let list = admin(&ep, &["--json", "members", "list"]).json();
            member(&list, next)
                .is_some_and(|m| m["link"] == "synced")
                .then_some(())
        },
    );
    let moved = admin(&ep, &["leader", "transfer", "--to", &next.to_string()]);
    assert!(
        moved.success(),
        "{}\nmodes {:?}\n{}",
        moved.describe(),
        c.modes(),
        c.logs()
    );
    assert_eq!(moved.stdout().trim(), format!("server {next} leads"));
    assert_eq!(c.wait_for_leader_among(&members, CLUSTER_WAIT), Some(next));
    let zk = connect(
        &rt,
        &format!("127.0.0.1:{}", c.client_port(next)),
        Duration::from_secs(10),
    );
    assert!(write_commits(&rt, &zk, "/after-transfer", WAIT));
    // Asking a follower is refused with the reason.
    let refused = admin(&ep, &["leader", "transfer"]);
    assert!(!refused.success(), "{}", refused.describe());
    assert!(
        refused.stderr().contains("only an established leader"),
        "{}",
        refused.describe()
    );

    // Down to the configured minimum of voters (admin.minVoters, 2 by default, as
    // ZooKeeper's reconfig keeps two participants) and no further.
    let ep = c.node(next).admin_endpoint();
    let others: Vec<usize> = members.iter().copied().filter(|&n| n != next).collect();
    // (The new leader's followers may still be syncing: refused until one is.)
    poll(
        CLUSTER_WAIT,
        || format!("server {} was not removed\n{}", others[0], c.logs()),
        || {
            let r = admin(&ep, &["members", "remove", &others[0].to_string()]);
            if !r.success() {
                assert!(r.stderr().contains("in sync"), "{}", r.describe());
            }
            r.success().then_some(())
        },
    );
    let refused = admin(&ep, &["members", "remove", &others[1].to_string()]);
    assert!(!refused.success(), "{}", refused.describe());
    assert!(
        refused.stderr().contains("admin.minVoters=2"),
        "{}",
        refused.describe()
    );
}
