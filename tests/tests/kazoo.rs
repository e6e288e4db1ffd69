//! kazoo (Debian's python3-kazoo 2.8), a real client with its own recipes, against the
//! server. The scenarios live in tests/clients/kazoo_scenarios.py and assert what a
//! kazoo user observes; each test here starts its own server, runs one scenario and
//! checks the `RESULT key=value` lines the script prints. With
//! `ROOKERY_TEST_TARGET=zookeeper` the same scenarios run against Apache ZooKeeper.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use rookery_tests::{DEBIAN_PYTHON, Server, Target, client_script, run_python};

/// Why these tests cannot run on this machine, if they cannot.
fn missing() -> Option<String> {
    let mut needs = vec!["kazoo"];
    if Target::from_env() == Target::ZooKeeper {
        needs.push("zookeeper");
    }
    rookery_tests::missing(&needs)
}

macro_rules! require_kazoo {
    () => {
        if let Some(reason) = missing() {
            println!("SKIPPED: {reason}");
            return;
        }
    };
}

/// Runs one scenario against a fresh server; returns its `RESULT` lines.
fn scenario(name: &str) -> BTreeMap<String, String> {
    let server = Server::start();
    let out = run_python(
        &client_script("kazoo_scenarios.py"),
        &[&server.connect_string(), name],
    );
    check_ok(name, &out, &server);
    results(&out)
}

fn check_ok(name: &str, out: &str, server: &Server) {
    assert!(
        out.lines().any(|l| l == format!("OK {name}")),
        "scenario {name} did not finish:\n{out}\nserver log:\n{}",
        server.log()
    );
}

fn results(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn get<'a>(r: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    r.get(key)
        .unwrap_or_else(|| panic!("no RESULT {key} in {r:?}"))
}

#[test]
fn crud_errors_and_stat_fields() {
    require_kazoo!();
    let r = scenario("crud");
    assert_eq!(get(&r, "session_id_nonzero"), "True");
}

#[test]
fn create2_sequential_and_ephemeral_nodes() {
    require_kazoo!();
    let r = scenario("nodes");
    assert_eq!(
        get(&r, "seq_names"),
        "/seq/n-0000000000,/seq/n-0000000001,/seq/n-0000000002,\
         /seq/n-0000000004,/seq/n-0000000005,/seq/e-0000000006,/seq/0000000007"
    );
}

#[test]
fn watches_recipes_and_event_ordering() {
    require_kazoo!();
    scenario("watches");
}

#[test]
fn multi_results_rollback_and_watches() {
    require_kazoo!();
    let r = scenario("multi");
    // A failed multi is still one committed transaction with its own zxid.
    assert_eq!(get(&r, "failed_multi_zxid_delta"), "1");
    assert_eq!(get(&r, "multi_delete_event"), "CHANGED");
}

#[test]
fn acls_digest_world_and_auth_failure() {
    require_kazoo!();
    let r = scenario("acl");
    assert_eq!(
        get(&r, "auth_failed_states"),
        "CONNECTING,CONNECTED,AUTH_FAILED"
    );
}

#[test]
fn session_reattach_and_wrong_password() {
    require_kazoo!();
    let r = scenario("sessions");
    // Clamped to [2, 20] x tickTime (2000 ms).
    assert_eq!(get(&r, "negotiated_timeouts"), "4000,4000,10000,40000");
    assert_eq!(
        get(&r, "wrong_password_states"),
        "CONNECTING,EXPIRED_SESSION,CONNECTING,CONNECTED"
    );
}

#[test]
fn silent_session_expires() {
    require_kazoo!();
    let r = scenario("expiry");
    let seconds: f64 = get(&r, "expiry_seconds").parse().unwrap();
    // The session timeout is 4 s and the client pinged at most 4/3 s before it died:
    // a session that vanished sooner was expired for being disconnected, not silent.
    assert!(seconds >= 2.0, "expired after only {seconds} s");
}

#[test]
fn reconnect_set_watches_and_data_watch() {
    require_kazoo!();
    scenario("reconnect");
}

#[test]
fn notifications_on_the_wire_and_set_watches_by_zxid() {
    require_kazoo!();
    scenario("events");
}

#[test]
fn error_paths_acl_permissions_system_nodes_and_bad_requests() {
    require_kazoo!();
    scenario("edges");
}

#[test]
fn pipelined_requests_answer_in_order_and_read_own_writes() {
    require_kazoo!();
    let r = scenario("pipeline");
    assert_eq!(get(&r, "pipelined_requests"), "2400");
}

#[test]
fn sync_version_four_letter_words_and_reconfig() {
    require_kazoo!();
    let r = scenario("misc");
    assert!(get(&r, "server_version").starts_with("3."), "{r:?}");
    // ReconfigDisabled: a standalone server without reconfigEnabled.
    assert_eq!(get(&r, "reconfig_err"), "-123");
}

#[test]
fn recipes_lock_counter_barrier_queue_election() {
    require_kazoo!();
    scenario("recipes");
}

/// The script sets up sessions, a DataWatch, an ephemeral and a session whose client
/// was killed, prints READY, and waits; the server is killed with SIGKILL and
/// restarted; the live sessions resume and the dead one still expires.
#[test]
fn sessions_and_watches_survive_server_restart() {
    require_kazoo!();
    let mut server = Server::start();
    let mut child = Command::new(DEBIAN_PYTHON)
        .arg(client_script("kazoo_scenarios.py"))
        .args([server.connect_string().as_str(), "restart"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running python3");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        out.push_str(&line);
        if line.trim() == "READY" {
            server.restart();
            writeln!(child.stdin.as_mut().unwrap(), "RESTARTED").unwrap();
            break;
        }
    }
    stdout.read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "restart scenario failed ({status})\nstdout:\n{out}\nstderr:\n{err}\nserver log:\n{}",
        server.log()
    );
    check_ok("restart", &out, &server);
}
