//! TLS on the secure client port (`secureClientPort`, keys under `ssl.`: PEM key and
//! trust stores) with real TLS clients: kazoo with `use_ssl`, ZooKeeper's Java client
//! on its Netty socket (`zookeeper.client.secure=true`), and Python's `ssl` module for
//! the certificate itself. Each test makes its own CA and certificates
//! ([`rookery_tests::certs`]) and starts its own server with both the plain and the
//! secure port, or (`secure_only_server_*`) with the secure port alone; the clients'
//! scenarios live in tests/clients/kazoo_tls.py.
//!
//! Every scenario also runs against Apache ZooKeeper 3.8 (`ROOKERY_TEST_TARGET=zookeeper`,
//! with `serverCnxnFactory=NettyServerCnxnFactory`, which its secure port needs), except
//! certificate reload, which ZooKeeper 3.8 does not do on the client port.

mod raw_client;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raw_client::{connect_request, framed};
use rookery_tests::certs::{Identity, TestCa, client_config, four_letter_tls};
use rookery_tests::{
    DEBIAN_PYTHON, SecureOnly, Server, Target, ZOOKEEPER_NETTY_JARS, client_script, four_letter,
    free_port, zookeeper_classpath,
};

/// A bound on hung tests, not a timing assertion.
const WAIT: Duration = Duration::from_secs(30);

/// A server with a secure client port, and the certificates around it.
struct TlsServer {
    server: Server,
    secure_port: u16,
    /// The CA that signed the server's and the client's certificates (a PEM file).
    ca: PathBuf,
    issuer: TestCa,
    server_id: Identity,
    client_id: Identity,
    dir: tempfile::TempDir,
}

impl TlsServer {
    /// `127.0.0.1:<secure port>`.
    fn secure(&self) -> String {
        format!("127.0.0.1:{}", self.secure_port)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Starts the target with a secure client port (`extra` zoo.cfg lines added), unless
/// `clients` or the target is missing: then prints why and returns None.
fn start(clients: &[&str], extra: &str) -> Option<TlsServer> {
    start_tls(clients, extra, false)
}

/// [`start`], and with `secure_only` no `clientPort`: the server's `port` is then a
/// free port not in its zoo.cfg.
fn start_tls(clients: &[&str], extra: &str, secure_only: bool) -> Option<TlsServer> {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = TestCa::new("tls-client-test");
    let ca = issuer.write_trust_store(dir.path());
    let server_id = issuer.issue("server", dir.path(), "server");
    let client_id = issuer.issue("client", dir.path(), "client");
    let secure_port = free_port();
    let config = format!(
        "secureClientPort={secure_port}\n\
         secureClientPortAddress=127.0.0.1\n\
         serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
         ssl.keyStore.location={}\n\
         ssl.keyStore.type=PEM\n\
         ssl.trustStore.location={}\n\
         ssl.trustStore.type=PEM\n{extra}",
        server_id.key_store.display(),
        ca.display(),
    );
    let server = if secure_only {
        let target = Target::from_env();
        let mut needs = clients.to_vec();
        if target == Target::ZooKeeper {
            needs.push("zookeeper");
        }
        if let Some(reason) = rookery_tests::missing(&needs) {
            println!("SKIPPED: {reason}");
            return None;
        }
        // Ready once `srvr` over TLS names a mode.
        let probe = SecureOnly {
            port: secure_port,
            tls: Arc::new(client_config(&ca, &client_id)),
        };
        Server::start_secure_only(target, &config, probe)
    } else {
        rookery_tests::start_if_available(clients, &config)?
    };
    // The harness waits for the plain port; the secure one may come up just after.
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", secure_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the secure client port {secure_port} does not accept connections:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(TlsServer {
        server,
        secure_port,
        ca,
        issuer,
        server_id,
        client_id,
        dir,
    })
}

// ---------------------------------------------------------------------------------
// The Python side.

/// Runs a kazoo_tls.py scenario; returns its `RESULT` lines, or panics with its
/// output and the server's log unless it printed `OK <scenario>`.
fn python(t: &TlsServer, args: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new(DEBIAN_PYTHON)
        .arg(client_script("kazoo_tls.py"))
        .args(args)
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == format!("OK {}", args[0])),
        "kazoo_tls.py {args:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        out.status,
        t.server.log()
    );
    results(&stdout)
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

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The serial of the certificate the secure port presents now, as lowercase hex, and
/// `ruok` answered over TLS.
fn peer(t: &TlsServer) -> (String, String) {
    let port = t.secure_port.to_string();
    let r = python(
        t,
        &[
            "peer",
            "127.0.0.1",
            &port,
            path_str(&t.ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ],
    );
    (get(&r, "serial").to_owned(), get(&r, "ruok").to_owned())
}

fn hex(serial: &[u8]) -> String {
    let s: String = serial.iter().map(|b| format!("{b:02x}")).collect();
    let s = s.trim_start_matches('0');
    if s.is_empty() { "0".into() } else { s.into() }
}

// ---------------------------------------------------------------------------------
// kazoo.

#[test]
fn kazoo_over_tls_reads_writes_and_watches() {
    let Some(t) = start(&["kazoo"], "") else {
        return;
    };
    let r = python(
        &t,
        &[
            "crud",
            &t.secure(),
            &t.server.connect_string(),
            path_str(&t.ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ],
    );
    assert!(
        get(&r, "tls_version").starts_with("TLSv1."),
        "kazoo's connection is not TLS: {r:?}"
    );
    assert_eq!(get(&r, "events"), "CHANGED,CHILD,DELETED");
    // The secure port speaks TLS only: `ruok` over TLS is answered.
    let (serial, ruok) = peer(&t);
    assert_eq!(serial, hex(&t.server_id.serial), "the server's certificate");
    assert_eq!(ruok, "imok");
}

/// `secureClientPort` without `clientPort` (ZooKeeper 3.8 serves TLS clients only): the
/// server starts, kazoo over TLS writes and reads, and no plain port is open.
#[test]
fn secure_only_server_serves_tls_clients_and_no_plain_port() {
    let Some(t) = start_tls(&["kazoo"], "", true) else {
        return;
    };
    let cfg = std::fs::read_to_string(t.server.config_path()).expect("zoo.cfg");
    assert!(
        !cfg.lines().any(|l| l.starts_with("clientPort")),
        "the harness wrote a clientPort:\n{cfg}"
    );
    let r = python(
        &t,
        &[
            "secure_only",
            &t.secure(),
            path_str(&t.ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ],
    );
    assert!(
        get(&r, "tls_version").starts_with("TLSv1."),
        "kazoo's connection is not TLS: {r:?}"
    );
    assert_eq!(get(&r, "data"), "tls");
    // `conf` over TLS: no plain client port, as ZooKeeper prints it.
    let secure: SocketAddr = t.secure().parse().expect("secure address");
    let conf = four_letter_tls(secure, "conf", Arc::new(client_config(&t.ca, &t.client_id)))
        .expect("conf over TLS");
    assert!(
        conf.lines().any(|l| l == "clientPort=-1"),
        "conf on a secure-only server:\n{conf}"
    );
    // Nothing listens on the plain port the harness set aside (and left out of zoo.cfg).
    match TcpStream::connect(("127.0.0.1", t.server.port)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("port {} accepts connections", t.server.port),
    }
    // Rookery says at start where it listens, and that no plain port is open.
    if t.server.target == Target::Rookery {
        let log = t.server.log();
        assert!(
            log.contains("client_addr=none (no clientPort)")
                && log.contains(&format!("secure_client_addr={}", t.secure())),
            "the start-up log does not say where it listens:\n{log}"
        );
    }
}

/// kazoo logged a TLS alert from the server about the client's certificate: a bad or
/// missing one (ZooKeeper, TLS 1.2), one required (TLS 1.3), or an unknown CA.
fn assert_refused_for_its_certificate(errors: &str) {
    let alert = errors.split(" | ").find(|e| {
        e.starts_with("Connection dropped")
            && e.contains("[SSL: ")
            && e.contains("ALERT")
            && (e.contains("CERTIFICATE") || e.contains("UNKNOWN_CA"))
    });
    assert!(
        alert.is_some(),
        "expected the server's TLS alert about the client certificate, got: {errors}"
    );
}

#[test]
fn kazoo_without_a_client_certificate_is_refused() {
    // ssl.clientAuth is not set: `need` is the default, as in ZooKeeper.
    let Some(t) = start(&["kazoo"], "") else {
        return;
    };
    let r = python(&t, &["refused", &t.secure(), path_str(&t.ca), "-", "-"]);
    assert_eq!(get(&r, "connected"), "False");
    assert_refused_for_its_certificate(get(&r, "errors"));
    // The same client with its certificate gets in (so it was the certificate).
    let r = python(
        &t,
        &[
            "connects",
            &t.secure(),
            path_str(&t.ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ],
    );
    assert_eq!(get(&r, "connected"), "True");
}

#[test]
fn kazoo_with_a_certificate_from_another_ca_is_refused() {
    // Spelled out this time.
    let Some(t) = start(&["kazoo"], "ssl.clientAuth=need") else {
        return;
    };
    let stranger = TestCa::new("stranger");
    let outsider = stranger.issue("outsider", t.dir(), "outsider");
    let r = python(
        &t,
        &[
            "refused",
            &t.secure(),
            path_str(&t.ca),
            path_str(&outsider.cert),
            path_str(&outsider.key),
        ],
    );
    assert_eq!(get(&r, "connected"), "False");
    assert_refused_for_its_certificate(get(&r, "errors"));
}

#[test]
fn kazoo_trusting_another_ca_does_not_connect() {
    let Some(t) = start(&["kazoo"], "") else {
        return;
    };
    let stranger = TestCa::new("stranger");
    let wrong_ca = stranger.write_trust_store(t.dir());
    let r = python(
        &t,
        &[
            "refused",
            &t.secure(),
            path_str(&wrong_ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ],
    );
    assert_eq!(get(&r, "connected"), "False");
    let errors = get(&r, "errors");
    assert!(
        errors.contains("CERTIFICATE_VERIFY_FAILED"),
        "expected the client to reject the server's certificate, got: {errors}"
    );
}

#[test]
fn client_auth_want_admits_clients_without_a_certificate() {
    let Some(t) = start(&["kazoo"], "ssl.clientAuth=want") else {
        return;
    };
    let r = python(&t, &["connects", &t.secure(), path_str(&t.ca), "-", "-"]);
    assert_eq!(get(&r, "connected"), "True");
    // A certificate the server does not trust is still refused.
    let stranger = TestCa::new("stranger");
    let outsider = stranger.issue("outsider", t.dir(), "outsider");
    let r = python(
        &t,
        &[
            "refused",
            &t.secure(),
            path_str(&t.ca),
            path_str(&outsider.cert),
            path_str(&outsider.key),
        ],
    );
    assert_eq!(get(&r, "connected"), "False");
}

// ---------------------------------------------------------------------------------
// ZooKeeper's Java client on its Netty socket.

/// Why the Java client cannot run here, if it cannot.
fn java_missing() -> Option<String> {
    if let Some(reason) = rookery_tests::missing(&["zookeeper"]) {
        return Some(reason);
    }
    ZOOKEEPER_NETTY_JARS
        .iter()
        .find(|j| !Path::new(j).is_file())
        .map(|j| format!("{j} is not installed (libnetty-java)"))
}

/// `ZooKeeperMain -server <server> <command...>` (zkCli.sh's class, one command and
/// exit) with `props` as system properties; returns (exit status success, stdout and
/// stderr together).
fn zk_main(server: &str, props: &[String], command: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["60", "java", "-Xmx128m"])
        .args(props)
        .args(["-cp", &zookeeper_classpath()])
        .arg("org.apache.zookeeper.ZooKeeperMain")
        .args(["-server", server])
        .args(command)
        .output()
        .expect("running java");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The Java client's TLS settings: Netty, PEM key and trust stores, host names checked.
fn java_tls_props(key_store: &Path, trust_store: &Path) -> Vec<String> {
    vec![
        "-Dzookeeper.client.secure=true".into(),
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty".into(),
        format!("-Dzookeeper.ssl.keyStore.location={}", key_store.display()),
        "-Dzookeeper.ssl.keyStore.type=PEM".into(),
        format!(
            "-Dzookeeper.ssl.trustStore.location={}",
            trust_store.display()
        ),
        "-Dzookeeper.ssl.trustStore.type=PEM".into(),
        "-Dzookeeper.ssl.hostnameVerification=true".into(),
    ]
}

#[test]
fn java_client_over_netty_tls() {
    if let Some(reason) = java_missing() {
        println!("SKIPPED: {reason}");
        return;
    }
    let Some(t) = start(&[], "") else {
        return;
    };
    let tls = java_tls_props(&t.client_id.key_store, &t.ca);
    let (ok, out) = zk_main(&t.secure(), &tls, &["create", "/java-tls", "over-tls"]);
    assert!(
        ok && out.lines().any(|l| l == "Created /java-tls"),
        "create over TLS:\n{out}\nserver log:\n{}",
        t.server.log()
    );
    let (ok, out) = zk_main(&t.secure(), &tls, &["get", "/java-tls"]);
    assert!(
        ok && out.lines().any(|l| l == "over-tls"),
        "get over TLS:\n{out}"
    );
    // The plain port, the Java client's default NIO socket: the same tree.
    let (ok, out) = zk_main(&t.server.connect_string(), &[], &["get", "/java-tls"]);
    assert!(
        ok && out.lines().any(|l| l == "over-tls"),
        "get over the plain port:\n{out}"
    );

    // Trusting another CA, the client refuses the server and its request fails.
    let stranger = TestCa::new("stranger");
    let wrong_ca = stranger.write_trust_store(t.dir());
    let bad = java_tls_props(&t.client_id.key_store, &wrong_ca);
    let (ok, out) = zk_main(&t.secure(), &bad, &["create", "/java-wrong-ca", "x"]);
    assert!(
        !ok && out.contains("ConnectionLoss") && !out.contains("Created /java-wrong-ca"),
        "a client that does not trust the server's CA must not get through:\n{out}"
    );
    // With a certificate the server does not trust, likewise.
    let outsider = stranger.issue("outsider", t.dir(), "outsider");
    let bad = java_tls_props(&outsider.key_store, &t.ca);
    let (ok, out) = zk_main(&t.secure(), &bad, &["create", "/java-outsider", "x"]);
    assert!(
        !ok && out.contains("ConnectionLoss") && !out.contains("Created /java-outsider"),
        "a client certificate from another CA must be refused:\n{out}"
    );
    for path in ["/java-wrong-ca", "/java-outsider"] {
        let (_, out) = zk_main(&t.server.connect_string(), &[], &["get", path]);
        assert!(
            out.contains(&format!("Node does not exist: {path}")),
            "{path} must not exist:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Bad input on the secure port.

/// Sends `bytes` on a fresh TCP connection to the secure port and returns what came
/// back before the server closed it; panics if it stays open.
fn closes_after(t: &TlsServer, case: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", t.secure_port)).expect("connect");
    s.write_all(bytes).expect("write");
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{case}: the secure port kept the connection open; got {got:02x?}"
        );
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return got,
        }
    }
}

/// What a TLS server may say to a non-TLS client before closing: nothing, or alert
/// records (content type 21) only, never a ZooKeeper reply.
fn assert_only_alerts(case: &str, got: &[u8]) {
    let mut rest = got;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 5 && rest[0] == 21 && rest[1] == 3,
            "{case}: the secure port answered with something other than a TLS alert: {got:02x?}"
        );
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        rest = &rest[(5 + len).min(rest.len())..];
    }
}

#[test]
fn plain_handshake_on_the_secure_port_is_closed() {
    let Some(mut t) = start(&["kazoo"], "") else {
        return;
    };
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "a plain ZooKeeper handshake",
            framed(&connect_request(30_000)),
        ),
        ("a plain four-letter word", b"ruok".to_vec()),
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "a TLS handshake record with a garbage body",
            [&[22u8, 3, 1, 0, 40][..], &[0xee; 40]].concat(),
        ),
    ];
    for (case, bytes) in &cases {
        let got = closes_after(&t, case, bytes);
        assert_only_alerts(case, &got);
    }
    if t.server.target == Target::Rookery {
        assert!(
            t.server.is_running(),
            "the server exited:\n{}",
            t.server.log()
        );
    }
    // Still serving: TLS clients on the secure port, plain ones on the other.
    let (serial, ruok) = peer(&t);
    assert_eq!(serial, hex(&t.server_id.serial));
    assert_eq!(ruok, "imok");
    let r = python(
        &t,
        &[
            "connects",
            &t.secure(),
            path_str(&t.ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ],
    );
    assert_eq!(get(&r, "connected"), "True");
    assert_eq!(
        four_letter(t.server.port, "ruok").as_deref(),
        Some("imok"),
        "the plain port"
    );
}

// ---------------------------------------------------------------------------------
// Certificate reload (Rookery only).

#[test]
fn server_certificate_reloads_without_dropping_sessions() {
    if Target::from_env() == Target::ZooKeeper {
        println!(
            "SKIPPED: ZooKeeper 3.8 reloads certificate files only on the quorum port \
             (sslQuorumReloadCertFiles), never on the client port"
        );
        return;
    }
    let Some(t) = start(&["kazoo"], "") else {
        return;
    };
    let (serial, _) = peer(&t);
    assert_eq!(serial, hex(&t.server_id.serial), "the first certificate");

    // A session opened with the first certificate, held across the change.
    let mut held = Command::new(DEBIAN_PYTHON)
        .arg(client_script("kazoo_tls.py"))
        .args([
            "held",
            &t.secure(),
            path_str(&t.ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running python3");
    let mut stdout = BufReader::new(held.stdout.take().expect("stdout"));
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("read") == 0 {
            let mut err = String::new();
            let _ = held.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("the held session ended early:\n{out}\nstderr:\n{err}");
        }
        out.push_str(&line);
        if line.starts_with("READY ") {
            break;
        }
    }

    // Same file, new certificate (a new key and serial), written whole.
    let renewed = t.issuer.issue("server", t.dir(), "server");
    assert_eq!(renewed.key_store, t.server_id.key_store);
    assert_ne!(renewed.serial, t.server_id.serial);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (serial, ruok) = peer(&t);
        assert_eq!(ruok, "imok");
        if serial == hex(&renewed.serial) {
            break;
        }
        assert_eq!(
            serial,
            hex(&t.server_id.serial),
            "neither the old nor the new certificate"
        );
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 15 s:\n{}",
            t.server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The session from before the change still works, on its first connection.
    writeln!(held.stdin.as_mut().expect("stdin"), "CHECK").expect("write");
    stdout.read_to_string(&mut out).expect("read");
    let mut err = String::new();
    let _ = held.stderr.take().map(|mut e| e.read_to_string(&mut err));
    let status = held.wait().expect("wait");
    assert!(
        status.success() && out.lines().any(|l| l == "OK held"),
        "the held session ({status}):\n{out}\nstderr:\n{err}\nserver log:\n{}",
        t.server.log()
    );
    assert_eq!(get(&results(&out), "same_session"), "True");

    // New kazoo sessions work with the new certificate.
    let r = python(
        &t,
        &[
            "connects",
            &t.secure(),
            path_str(&t.ca),
            path_str(&t.client_id.cert),
            path_str(&t.client_id.key),
        ],
    );
    assert_eq!(get(&r, "connected"), "True");
}
