//! Mutual TLS on the gRPC admin API (`admin.ssl.*`), through the real `rookery admin`
//! CLI: a caller with a certificate the server trusts is served; one without a
//! certificate, with one another CA signed, or speaking plain HTTP/2 is refused. Then
//! the server's certificate is replaced on disk and the next handshake presents the new
//! one, without a restart, while the server keeps answering.
//!
//! Rookery only: Apache ZooKeeper has no gRPC admin API.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rookery_tests::certs::{TestCa, presented_certificate};
use rookery_tests::{Server, Target, rookery_bin};

const WAIT: Duration = Duration::from_secs(30);

fn admin(args: &[&str]) -> Output {
    Command::new(rookery_bin())
        .arg("admin")
        .args(args)
        .env_remove("ROOKERY_ADMIN_TOKEN")
        .env("ZOOCFGDIR", "/nonexistent/rookery-tls-admin-tests")
        .stdin(Stdio::null())
        .output()
        .expect("running rookery admin")
}

fn describe(o: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `rookery admin --json status` with these TLS flags.
fn status(endpoint: &str, tls: &[&str]) -> Output {
    let mut args = vec!["--endpoint", endpoint];
    args.extend_from_slice(tls);
    args.extend(["--json", "status"]);
    admin(&args)
}

#[test]
fn the_admin_api_demands_trusted_client_certificates_and_reloads_its_own() {
    if Target::from_env() == Target::ZooKeeper {
        println!("SKIPPED: the gRPC admin API is Rookery's own; ZooKeeper has none");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("admin");
    let ca_file = ca.write_trust_store(d);
    let server_id = ca.issue("rookery-admin", d, "server");
    let operator = ca.issue("operator", d, "operator");
    let stranger = TestCa::new("stranger").issue("operator", d, "stranger");

    let server = Server::start_with(
        Target::Rookery,
        &format!(
            "admin.ssl.keyStore.location={}\nadmin.ssl.trustStore.location={}\n",
            server_id.key_store.display(),
            ca_file.display()
        ),
    );
    let endpoint = server.admin_endpoint();
    let ca_arg = ca_file.display().to_string();
    let op_arg = operator.key_store.display().to_string();
    let trusted = [
        "--tls-ca",
        ca_arg.as_str(),
        "--tls-identity",
        op_arg.as_str(),
    ];

    // The admin API starts a moment after the client port.
    let deadline = Instant::now() + WAIT;
    let ok = loop {
        let o = status(&endpoint, &trusted);
        if o.status.success() || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        ok.status.success(),
        "trusted caller refused: {}",
        describe(&ok)
    );
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(json["mode"], "standalone", "{json:#}");

    let no_cert = status(&endpoint, &["--tls-ca", ca_arg.as_str()]);
    assert!(
        !no_cert.status.success(),
        "served a caller without a certificate: {}",
        describe(&no_cert)
    );
    let st = stranger.key_store.display().to_string();
    let wrong = status(
        &endpoint,
        &["--tls-ca", ca_arg.as_str(), "--tls-identity", st.as_str()],
    );
    assert!(
        !wrong.status.success(),
        "served a caller another CA vouches for: {}",
        describe(&wrong)
    );
    let plain = status(&endpoint, &[]);
    assert!(
        !plain.status.success(),
        "served plain HTTP/2 on a TLS port: {}",
        describe(&plain)
    );

    // Reload: the same files, a new certificate in them.
    assert_eq!(
        presented_certificate(&endpoint, &ca_file, &operator, b"h2"),
        server_id.der()
    );
    let renewed = ca.issue("rookery-admin", d, "server");
    assert_ne!(renewed.serial, server_id.serial);
    let deadline = Instant::now() + WAIT;
    loop {
        let now = presented_certificate(&endpoint, &ca_file, &operator, b"h2");
        if now == renewed.der() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admin port still presents the old certificate after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = status(&endpoint, &trusted);
    assert!(
        after.status.success(),
        "refused after the reload: {}",
        describe(&after)
    );

    // A key store that no longer parses is not taken: the renewed one stays in use.
    std::fs::write(&renewed.key_store, "not a key store").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        presented_certificate(&endpoint, &ca_file, &operator, b"h2"),
        renewed.der()
    );
    let still = status(&endpoint, &trusted);
    assert!(
        still.status.success(),
        "a broken key store on disk broke the admin API: {}",
        describe(&still)
    );
    assert!(
        server
            .log()
            .contains("TLS certificates changed but do not load"),
        "no log line for the unreadable key store:\n{}",
        server.log()
    );
}
