//! Apache Curator (Debian's 5.4 on the ZooKeeper 3.8 client) against the server:
//! tests/clients/CuratorScenarios.java, compiled once per source version into the
//! target directory, runs one scenario per test and prints what it observed.
//! Every scenario also runs against Apache ZooKeeper (ROOKERY_TEST_TARGET=zookeeper).

use rookery_tests::{CURATOR_JARS, Server, Target, client_script, require};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn classpath() -> String {
    CURATOR_JARS
        .iter()
        .map(|j| format!("/usr/share/java/{j}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The compiled scenarios, under a directory named after the source's hash so an edit
/// recompiles and an unchanged source does not.
fn classes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = client_script("CuratorScenarios.java");
        let text = std::fs::read(&src).unwrap();
        let hash =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(&text);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let dir = target
            .join("curator-scenarios")
            .join(format!("{hash:016x}"));
        if dir.join("CuratorScenarios.class").is_file() {
            return dir;
        }
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        // Compile beside, then rename: another test binary may be doing the same.
        let tmp = tempfile::tempdir_in(dir.parent().unwrap()).unwrap();
        let out = Command::new("javac")
            .args(["-nowarn", "-cp", &classpath(), "-d"])
            .arg(tmp.path())
            .arg(&src)
            .output()
            .expect("running javac");
        assert!(
            out.status.success(),
            "javac failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let built = tmp.keep();
        if std::fs::rename(&built, &dir).is_err() {
            // Someone else won the race; theirs is the same source.
            let _ = std::fs::remove_dir_all(&built);
        }
        dir
    })
}

/// Runs one scenario against a fresh server; returns its stdout lines.
fn scenario(name: &str) -> Option<Vec<String>> {
    let server = rookery_tests::start_if_available(
        &["curator"],
        "extendedTypesEnabled=true\nznode.container.checkIntervalMs=100",
    )?;
    let cp = format!("{}:{}", classes().display(), classpath());
    let out = Command::new("java")
        .args([
            "-Xmx256m",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            &cp,
        ])
        .arg("CuratorScenarios")
        .arg(server.connect_string())
        .arg(name)
        .output()
        .expect("running java");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Curator scenario {name} failed ({})\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    Some(stdout.lines().map(str::to_owned).collect())
}

fn v(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

#[test]
fn inter_process_mutex_is_exclusive_across_clients() {
    require!("curator");
    let Some(out) = scenario("mutex") else { return };
    assert_eq!(
        out,
        v(&[
            "mutex acquisitions=30",
            "mutex max holders=1",
            "mutex lock nodes left=0",
        ])
    );
}

#[test]
fn leader_latch_elects_one_and_moves_on_close() {
    require!("curator");
    let Some(out) = scenario("latch") else { return };
    assert_eq!(
        out,
        v(&[
            "latch leaders=1",
            "latch agreed=true",
            "latch participants=2",
            "latch latch nodes=2",
            "latch moved=true",
            "latch leader after close is the other=true",
            "latch latch nodes after close=1",
        ])
    );
}

/// Curator 5.4 picks persistent recursive watches (addWatch, op 106) when the ZooKeeper
/// client library has `AddWatchMode`, as 3.8's does; the server cannot advertise it.
#[test]
fn curator_cache_sees_creates_changes_and_deletes() {
    require!("curator");
    let Some(out) = scenario("cache") else { return };
    assert_eq!(
        out,
        v(&[
            "cache persistent watchers in client library=true",
            "cache initial create /cache root",
            "cache initial create /cache/pre p",
            "cache create /cache/a 1",
            "cache create /cache/a/b 2",
            "cache change /cache/a 1 -> 3 version 1",
            "cache change /cache root -> root2 version 1",
            "cache delete /cache/a/b",
            "cache delete /cache/a",
            "cache create /cache/pre/e eph",
            "cache delete /cache/pre/e",
            "cache size=2",
            "cache extra event=null",
        ])
    );
}

/// create2 (op 15) with a Stat, createContainer (op 19) parents reaped by the server,
/// TTL, ephemeral owner, orSetData, version errors, transactions (multi), getConfig.
#[test]
fn creates_containers_ttl_and_transactions() {
    require!("curator");
    let Some(out) = scenario("create") else {
        return;
    };
    assert_eq!(
        out,
        v(&[
            "create2 path=/seq-0000000000",
            "create2 stat version=0 cversion=0 aversion=0 dataLength=5 numChildren=0 ephemeralOwner=0",
            "create2 czxid==mzxid==pzxid=true",
            "create2 stat equals exists=true",
            "ephemeral owner is session=true",
            "containers parent data=",
            "containers parent ephemeralOwner=0",
            "containers reaped=true",
            "plain parents kept=true",
            "ttl node ephemeralOwner=0",
            "orSetData data=2 version=1",
            "bad version=BADVERSION",
            "duplicate=NODEEXISTS",
            "tx CREATE /tx /tx err=0", // a multi create (op 1) carries no Stat
            "tx SET_DATA /v null err=0 version=2",
            "tx CHECK /tx null err=0",
            "tx DELETE /eph null err=0",
            "failed tx=BADVERSION tx2 exists=false",
            "config length=0",
        ])
    );
}

/// The plain Java client pipelines 100 creates and then a reconfig the server rejects
/// (reconfigEnabled=false) on one session: the rejection must come after the creates'
/// replies, or the client sees an out-of-order xid and drops the connection.
#[test]
fn java_client_gets_a_rejected_write_reply_in_order() {
    require!("curator");
    let Some(out) = scenario("pipeline") else {
        return;
    };
    assert_eq!(
        out,
        v(&[
            "pipeline creates ok=100",
            "pipeline reconfig RECONFIGDISABLED",
            "pipeline after OK",
            "pipeline children=101",
        ])
    );
}

/// SharedCount (versioned setData), DistributedAtomicLong under contention from three
/// clients, InterProcessSemaphoreV2, DistributedDoubleBarrier, the one-shot-watch
/// TreeCache and a namespaced client.
#[test]
fn more_recipes_agree() {
    require!("curator");
    let Some(out) = scenario("recipes") else {
        return;
    };
    assert_eq!(
        out,
        v(&[
            "sharedcount stale set won=false",
            "sharedcount other client sees=5",
            "atomic long=60",
            "semaphore third lease while full=false",
            "semaphore third lease after return=true",
            "barrier [entered, entered, entered, left, left, left]",
            "treecache NODE_ADDED /tree t",
            "treecache INITIALIZED",
            "treecache NODE_ADDED /tree/a 1",
            "treecache NODE_ADDED /tree/a/b 2",
            "treecache NODE_UPDATED /tree/a/b 3",
            "treecache [NODE_REMOVED /tree/a 1, NODE_REMOVED /tree/a/b 3]",
            "namespace raw path data=v",
            "namespace children=[y]",
        ])
    );
}

/// The plain Java client rides out a kill -9 and restart of the server: same session,
/// its ephemeral kept, its watches re-registered on reconnect and fired.
#[test]
fn java_client_keeps_its_session_across_a_server_restart() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    require!("curator");
    if Target::from_env() == Target::ZooKeeper {
        require!("zookeeper");
    }
    let mut server = Server::start_with(Target::from_env(), "");
    let cp = format!("{}:{}", classes().display(), classpath());
    let mut child = Command::new("java")
        .args([
            "-Xmx256m",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            &cp,
        ])
        .arg("CuratorScenarios")
        .arg(server.connect_string())
        .arg("restart")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running java");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the scenario did not get ready");
    server.restart();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "restart scenario failed ({})\nstdout:\n{rest}\nstderr:\n{}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(
        rest.lines().collect::<Vec<_>>(),
        [
            "restart same session=true",
            "restart ephemeral kept=true",
            "restart data=v0",
            "restart watches fired=[NodeDataChanged /p, NodeCreated /later]",
        ]
    );
}
