//! `rookery status` against a real Apache ZooKeeper (Debian's package), compared line for
//! line with Debian's own `zkServer.sh status`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const ZK_SERVER_SH: &str = "/usr/share/zookeeper/bin/zkServer.sh";

fn rookery() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rookery"));
    cmd.env_remove("RUST_LOG");
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn status(config: &Path) -> Output {
    rookery()
        .args(["status", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Kills the ZooKeeper JVM this test started, however the test ends.
struct ZooKeeper(Child);

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_standalone_config(dir: &Path, port: u16) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             admin.enableServer=false\n",
            data.display()
        ),
    )
    .unwrap();
    cfg
}

fn zookeeper_available() -> Option<&'static str> {
    if !Path::new("/usr/share/zookeeper").is_dir() {
        return Some("/usr/share/zookeeper is absent (Debian package zookeeper not installed)");
    }
    if !Path::new(ZOOKEEPER_JAR).is_file() {
        return Some("/usr/share/java/zookeeper.jar is absent");
    }
    if Command::new("java").arg("-version").output().is_err() {
        return Some("no java on PATH");
    }
    None
}

#[test]
fn status_reports_standalone_for_a_real_zookeeper() {
    if let Some(reason) = zookeeper_available() {
        println!("SKIPPED: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_standalone_config(dir.path(), port);
    let log = std::fs::File::create(dir.path().join("zookeeper.out")).unwrap();
    let _zk = ZooKeeper(
        Command::new("java")
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg(format!("-Dzookeeper.log.dir={}", dir.path().display()))
            .args(["-cp", ZOOKEEPER_JAR])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let deadline = Instant::now() + Duration::from_secs(90);
    let out = loop {
        let out = status(&cfg);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "rookery status never succeeded.\nstdout:\n{stdout}\nstderr:\n{stderr}\nzookeeper log:\n{}",
        std::fs::read_to_string(dir.path().join("zookeeper.out")).unwrap_or_default()
    );
    assert_eq!(
        stdout,
        format!(
            "Client port found: {port}. Client address: localhost. Client SSL: false.\n\
             Mode: standalone\n"
        )
    );
    assert_eq!(stderr, format!("Using config: {}\n", cfg.display()));

    // The same question through Debian's zkServer.sh must give the same stdout and code.
    if Path::new(ZK_SERVER_SH).is_file() {
        let theirs = Command::new("bash")
            .arg(ZK_SERVER_SH)
            .arg("status")
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(text(&theirs.stdout), stdout, "zkServer.sh status differs");
        assert_eq!(theirs.status.code(), Some(0));
        assert!(
            text(&theirs.stderr).contains(&format!("Using config: {}\n", cfg.display())),
            "{}",
            text(&theirs.stderr)
        );
    } else {
        println!("{ZK_SERVER_SH} absent: not compared");
    }
}

#[test]
fn status_when_nothing_listens_matches_zkserver_sh() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_standalone_config(dir.path(), port);
    let out = status(&cfg);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout,
        format!(
            "Client port found: {port}. Client address: localhost. Client SSL: false.\n\
             Error contacting service. It is probably not running.\n"
        )
    );
    assert_eq!(
        text(&out.stderr),
        format!("Using config: {}\n", cfg.display())
    );

    if zookeeper_available().is_none() && Path::new(ZK_SERVER_SH).is_file() {
        let theirs = Command::new("bash")
            .arg(ZK_SERVER_SH)
            .arg("status")
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(text(&theirs.stdout), stdout, "zkServer.sh status differs");
        assert_eq!(theirs.status.code(), Some(1));
    } else {
        println!("zkServer.sh or java absent: not compared");
    }
}

#[test]
fn status_uses_client_port_address_and_the_server_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("myid"), "1\n").unwrap();
    let port = free_port();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "initLimit=10\nsyncLimit=5\ndataDir={}\n\
             server.0=127.0.0.1:2888:3888\nserver.1=127.0.0.1:2889:3889;127.0.0.1:{port}\n\
             server.2=127.0.0.1:2890:3890\n",
            data.display()
        ),
    )
    .unwrap();
    let out = status(&cfg);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Client port found: {port}. Client address: 127.0.0.1. Client SSL: false.\n\
             Error contacting service. It is probably not running.\n"
        )
    );
}

#[test]
fn status_against_a_fake_srvr_prints_the_mode_line() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut sock, _) = listener.accept().unwrap();
        let mut word = [0u8; 4];
        sock.read_exact(&mut word).unwrap();
        sock.write_all(
            b"Zookeeper version: test\nZxid: 0x100000000\nMode: follower\nNode count: 4\n",
        )
        .unwrap();
        word
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = status(&cfg);
    assert_eq!(&server.join().unwrap(), b"srvr");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Client port found: {port}. Client address: 127.0.0.1. Client SSL: false.\n\
             Mode: follower\n"
        )
    );
}

/// With only `secureClientPort`, status says it cannot ask (no plain port) instead of
/// claiming the server is not running, and returns at once.
#[test]
fn status_with_only_a_secure_client_port_says_why_it_cannot_ask() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let pem = dir.path().join("unused.pem");
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nsecureClientPort={port}\n\
             ssl.keyStore.location={}\nssl.trustStore.location={}\n",
            dir.path().join("data").display(),
            pem.display(),
            pem.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = status(&cfg);
    assert!(started.elapsed() < Duration::from_secs(10), "status hung");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!(
            "Client port not found. Looking for secureClientPort in the static config.\n\
             Client port found: {port}. Client address: localhost. Client SSL: true.\n"
        )
    );
    assert!(
        stderr.contains("no clientPort") && stderr.contains("not over TLS to secureClientPort"),
        "{stderr}"
    );
    assert!(!stdout.contains("not running"), "{stdout}");
}
