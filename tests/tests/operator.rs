//! What operators and client libraries check that the other scenarios do not: zktop
//! parses `stat`, the super digest from zoo.cfg passes every ACL, and a client that has
//! seen a newer zxid than the server is sent elsewhere. Scripts in
//! clients/operator_checks.py; each runs against Rookery and Apache ZooKeeper alike.

use rookery_tests::{client_script, run_python, start_if_available};

/// `super:admin`, as zoo.cfg's superDigest (base64 of SHA-1 of "super:admin").
const SUPER_DIGEST: &str = "superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=";

fn check(clients: &[&str], extra: &str, scenario: &str) {
    let Some(server) = start_if_available(clients, extra) else {
        return;
    };
    let out = run_python(
        &client_script("operator_checks.py"),
        &[&server.connect_string(), scenario],
    );
    assert_eq!(
        out.trim(),
        format!("OK {scenario}"),
        "server log:\n{}",
        server.log()
    );
}

#[test]
fn zktop_parses_stat() {
    check(&["zktop"], "", "zktop");
}

#[test]
fn super_digest_passes_every_acl() {
    check(&["kazoo"], SUPER_DIGEST, "superdigest");
}

#[test]
fn client_that_has_seen_a_newer_zxid_is_refused() {
    check(&[], "", "zxid_ahead");
}
