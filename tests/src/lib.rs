//! The harness the integration tests share: start a server (the `rookery` binary, or
//! Apache ZooKeeper from Debian's package) on a free loopback port with its own data
//! directory, kill and restart it, and find the real clients.
//!
//! [`netns`] builds hosts out of network namespaces (root only), for the seed tutorial
//! and for clusters whose links fail at the packet level
//! ([`ClusterOptions::netns`]).
//!
//! One switch picks the server: `ROOKERY_TEST_TARGET=zookeeper` runs every scenario
//! against Apache ZooKeeper, which is how the tests themselves are proven; the default
//! is Rookery.

pub mod certs;
mod cluster;
pub mod netns;
pub mod zk;

pub use cluster::{
    CLUSTER_WAIT, Cluster, ClusterOptions, Node, REFUSES_ENSEMBLES, StartError, parse_mode,
    start_cluster_if_available,
};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which server the scenarios run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Rookery,
    ZooKeeper,
}

impl Target {
    /// `ROOKERY_TEST_TARGET=zookeeper` selects Apache ZooKeeper; anything else Rookery.
    pub fn from_env() -> Target {
        match std::env::var("ROOKERY_TEST_TARGET").as_deref() {
            Ok("zookeeper") | Ok("zk") => Target::ZooKeeper,
            _ => Target::Rookery,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Rookery => "rookery",
            Target::ZooKeeper => "zookeeper",
        }
    }
}

pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
pub const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";
pub const CLI_MT: &str = "/usr/lib/zookeeper/bin/cli_mt";
/// Netty jars Debian's zookeeper.jar manifest leaves out but TLS needs (its
/// `SslHandler` is a netty-codec decoder; the Netty client resolves through
/// netty-resolver): without them ZooKeeper's secure port and the Java client's Netty
/// socket fail with `NoClassDefFoundError`. libnetty-java ships them.
pub const ZOOKEEPER_NETTY_JARS: [&str; 2] = [
    "/usr/share/java/netty-codec.jar",
    "/usr/share/java/netty-resolver.jar",
];

/// The classpath for ZooKeeper's server and Java client: Debian's own
/// (`/etc/zookeeper/conf` and zookeeper.jar, whose manifest names the rest) plus
/// [`ZOOKEEPER_NETTY_JARS`].
pub fn zookeeper_classpath() -> String {
    let mut cp = format!("/etc/zookeeper/conf:{ZOOKEEPER_JAR}");
    for jar in ZOOKEEPER_NETTY_JARS {
        if Path::new(jar).is_file() {
            cp.push(':');
            cp.push_str(jar);
        }
    }
    cp
}

/// Under /usr/share/java: Debian's Curator 5.4 (libcurator-*-java) and what it needs
/// besides the ZooKeeper client.
pub const CURATOR_JARS: [&str; 8] = [
    "curator-client.jar",
    "curator-framework.jar",
    "curator-recipes.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
];
/// Debian's python3 (with python3-kazoo), not whatever `python3` is first on PATH.
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Why a test cannot run here, if it cannot: the tests print it and pass, so a
/// machine without the Debian packages still runs everything else. CI installs them.
pub fn missing(what: &[&str]) -> Option<String> {
    for w in what {
        let ok = match *w {
            "zookeeper" => {
                Path::new(ZOOKEEPER_JAR).is_file()
                    && Command::new("java").arg("-version").output().is_ok()
            }
            "zkcli" => Path::new(ZKCLI).is_file(),
            "cli_mt" => Path::new(CLI_MT).is_file(),
            "zktop" => Path::new("/usr/lib/python3/dist-packages/zktop.py").is_file(),
            "kazoo" => Command::new(DEBIAN_PYTHON)
                .args(["-c", "import kazoo"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "curator" => {
                CURATOR_JARS
                    .iter()
                    .all(|j| Path::new("/usr/share/java").join(j).is_file())
                    && Command::new("javac").arg("-version").output().is_ok()
            }
            other => panic!("unknown requirement {other}"),
        };
        if !ok {
            return Some(format!("{w} is not installed"));
        }
    }
    None
}

/// Skips the current test (returning from it) with a printed reason when a
/// requirement is missing.
#[macro_export]
macro_rules! require {
    ($($what:expr),+) => {
        if let Some(reason) = $crate::missing(&[$($what),+]) {
            println!("SKIPPED: {reason}");
            return;
        }
    };
}

/// Starts the target from the environment with `extra_config`, unless a client in
/// `clients` (or, for the ZooKeeper target, ZooKeeper itself) is missing: then prints
/// why and returns None, and the test returns without running.
pub fn start_if_available(clients: &[&str], extra_config: &str) -> Option<Server> {
    let target = Target::from_env();
    let mut needs = clients.to_vec();
    if target == Target::ZooKeeper {
        needs.push("zookeeper");
    }
    if let Some(reason) = missing(&needs) {
        println!("SKIPPED: {reason}");
        return None;
    }
    Some(Server::start_with(target, extra_config))
}

/// A loopback port nothing else in this process has been handed, free when asked.
pub fn free_port() -> u16 {
    reserve_port()
        .local_addr()
        .map(|a| a.port())
        .expect("a bound listener has an address")
}

/// The first port [`reserve_port`] may hand out; the range ends below the kernel's
/// ephemeral range (32768 up on Linux).
const PORT_RANGE_START: u32 = 10_000;
const PORT_RANGE_LEN: u32 = 22_000;

/// A listener on a loopback port that no other call in this process has been given,
/// held until the caller drops it (just before a server is told to bind it).
///
/// Why not `bind(0)`: the kernel hands a port back out as soon as its listener is
/// dropped, so between a test dropping its reservation and its server binding the
/// port, a test on another thread could be given the same port and win it (CI saw
/// "Address already in use" that way). Ports here come from a counter below the
/// ephemeral range, which neither `bind(0)` nor outgoing connections draw from, and a
/// port is never handed out twice; the start is spread by process id so test binaries
/// run side by side rarely meet.
pub fn reserve_port() -> TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(7919)));
    for _ in 0..PORT_RANGE_LEN {
        let port = PORT_RANGE_START + next.fetch_add(1, Ordering::Relaxed) % PORT_RANGE_LEN;
        let port = u16::try_from(port).expect("the range is below 65536");
        if let Ok(listener) = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)) {
            return listener;
        }
    }
    panic!("no free loopback port in {PORT_RANGE_START}..+{PORT_RANGE_LEN}")
}

/// The workspace's target directory (where `cargo test` put the test binary).
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("target"))
        .expect("workspace root")
}

/// The `rookery` binary, built on first use if `cargo test` has not built it.
/// `ROOKERY_BIN` names one instead (the benchmark's release build) and skips the build.
pub fn rookery_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("ROOKERY_BIN") {
                return PathBuf::from(bin);
            }
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "rookery"])
                .current_dir(workspace)
                .status()
                .expect("running cargo build -p rookery");
            assert!(status.success(), "cargo build -p rookery failed");
            target_dir().join("debug").join("rookery")
        })
        .clone()
}

/// How the harness reaches a server that has no `clientPort`
/// ([`Server::start_secure_only`]): `srvr` over TLS on its secure client port.
#[derive(Debug, Clone)]
pub struct SecureOnly {
    /// `secureClientPort`, on 127.0.0.1 (the test's zoo.cfg lines configure it).
    pub port: u16,
    /// The client side of the handshake: a certificate the server trusts.
    pub tls: Arc<rustls::ClientConfig>,
}

/// A server process with its own data directory, killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub target: Target,
    /// `clientPort`; for a [`Server::start_secure_only`] server, a free port that is
    /// not in zoo.cfg (nothing should listen on it).
    pub port: u16,
    /// Rookery's gRPC admin API (its default port would clash across test servers).
    pub admin_port: u16,
    dir: tempfile::TempDir,
    extra_config: String,
    secure_only: Option<SecureOnly>,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    /// Starts the target from the environment with a standalone zoo.cfg.
    pub fn start() -> Server {
        Server::start_with(Target::from_env(), "")
    }

    /// `extra_config` lines are appended to the generated zoo.cfg.
    pub fn start_with(target: Target, extra_config: &str) -> Server {
        let mut s = Server::configure_with(target, extra_config);
        s.spawn();
        s
    }

    /// Like [`Server::start_with`], but zoo.cfg has no `clientPort`: `extra_config`
    /// must set `secureClientPort` (`secure.port`) and its `ssl.` keys, and readiness
    /// is `srvr` over TLS there.
    pub fn start_secure_only(target: Target, extra_config: &str, secure: SecureOnly) -> Server {
        let mut s = Server::configure(target, extra_config, Some(secure));
        s.spawn();
        s
    }

    /// Like [`Server::start_with`], but only writes zoo.cfg and creates the data
    /// directory: nothing runs until [`Server::restart`] starts it.
    pub fn configure_with(target: Target, extra_config: &str) -> Server {
        Server::configure(target, extra_config, None)
    }

    fn configure(target: Target, extra_config: &str, secure_only: Option<SecureOnly>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Server {
            target,
            port: free_port(),
            admin_port: free_port(),
            dir,
            extra_config: extra_config.to_owned(),
            secure_only,
            child: None,
            starts: 0,
        };
        s.write_config();
        s
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("zoo.cfg")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `127.0.0.1:<admin port>`, for `rookery admin --endpoint`.
    pub fn admin_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.admin_port)
    }

    /// `127.0.0.1:<port>`, the connect string for clients.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn write_config(&self) {
        std::fs::create_dir_all(self.data_dir()).expect("data dir");
        // ZooKeeper warns about keys it does not know; only Rookery gets this one, and
        // only when the test does not set it itself.
        let admin =
            if self.target == Target::Rookery && !self.extra_config.contains("admin.grpcAddress") {
                format!("admin.grpcAddress=127.0.0.1:{}\n", self.admin_port)
            } else {
                String::new()
            };
        let client = match self.secure_only {
            None => format!("clientPort={}\nclientPortAddress=127.0.0.1\n", self.port),
            Some(_) => String::new(),
        };
        let cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\n{client}\
             4lw.commands.whitelist=*\nadmin.enableServer=false\n{admin}{}\n",
            self.data_dir().display(),
            self.extra_config
        );
        std::fs::write(self.config_path(), cfg).expect("zoo.cfg");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let err = log.try_clone().expect("log file");
        let mut cmd = match self.target {
            Target::Rookery => {
                let mut c = Command::new(rookery_bin());
                c.args(["serve", "--config"]).arg(self.config_path());
                c.env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                );
                c
            }
            Target::ZooKeeper => {
                let mut c = Command::new("java");
                let props = zk_system_properties(&self.extra_config);
                c.args(zk_jvm_flags(&["-Xmx512m"]))
                    .arg("-Dzookeeper.admin.enableServer=false")
                    .arg(format!("-Dzookeeper.log.dir={}", self.dir.path().display()))
                    .args(props)
                    .args(["-cp", &zookeeper_classpath()])
                    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                    .arg(self.config_path());
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("starting the server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the server serves requests: `srvr` names a mode (ZooKeeper answers
    /// `ruok` before it has loaded its database, so that is not enough). Asked on the
    /// plain port, or over TLS on the secure one of a secure-only server.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let srvr = match &self.secure_only {
                None => four_letter(self.port, "srvr"),
                Some(s) => certs::four_letter_tls(
                    SocketAddr::from(([127, 0, 0, 1], s.port)),
                    "srvr",
                    s.tls.clone(),
                ),
            };
            if srvr.is_some_and(|s| s.contains("Mode: ")) {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{} exited during start-up ({status}):\n{}",
                        self.target.name(),
                        self.log()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start:\n{}",
                self.target.name(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything the server has logged since its last start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The server's process id while it runs (for ZooKeeper, the JVM's).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// ZooKeeper's JVM heap, GC and JIT flags: `defaults`, sized for tests, unless
/// `ROOKERY_ZK_JVM_OPTS` (whitespace-separated) replaces them, as the benchmark does: a
/// million znodes need a bigger heap, and a fair comparison the server JIT.
pub(crate) fn zk_jvm_flags(defaults: &[&str]) -> Vec<String> {
    match std::env::var("ROOKERY_ZK_JVM_OPTS") {
        Ok(opts) => opts.split_whitespace().map(str::to_owned).collect(),
        Err(_) => defaults.iter().map(|f| (*f).to_owned()).collect(),
    }
}

/// ZooKeeper reads some settings only as Java system properties; Rookery reads them
/// from zoo.cfg. Pass the zoo.cfg lines that need it as `-D` flags too.
pub(crate) fn zk_system_properties(extra_config: &str) -> Vec<String> {
    extra_config
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            matches!(
                k.trim(),
                "extendedTypesEnabled"
                    | "jute.maxbuffer"
                    | "znode.container.checkIntervalMs"
                    | "readonlymode.enabled"
            ) || k.trim().ends_with("superDigest")
        })
        .map(|(k, v)| {
            let k = k.trim();
            // ZooKeeper reads `znode.container.*` and `readonlymode.enabled` without
            // the `zookeeper.` prefix.
            let key = if k.starts_with("zookeeper.")
                || k.starts_with("znode.")
                || k.starts_with("readonlymode.")
                || k == "jute.maxbuffer"
            {
                k.to_owned()
            } else if k.ends_with("superDigest") {
                "zookeeper.DigestAuthenticationProvider.superDigest".to_owned()
            } else {
                format!("zookeeper.{k}")
            };
            format!("-D{key}={}", v.trim())
        })
        .collect()
}

/// Sends a four-letter word to `127.0.0.1:port` and returns the whole answer, or None
/// if the server did not answer.
pub fn four_letter(port: u16, word: &str) -> Option<String> {
    four_letter_at(SocketAddr::from(([127, 0, 0, 1], port)), word)
}

/// [`four_letter`] to any address (a cluster node in its own network namespace has
/// its own: [`Cluster::client_addr`]). The connect is bounded too: an address nobody
/// answers ARP for takes seconds to fail.
pub fn four_letter_at(addr: SocketAddr, word: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Runs a script under Debian's python3 (kazoo) with arguments; returns stdout, or
/// panics with both streams when it fails.
pub fn run_python(script: &Path, args: &[&str]) -> String {
    let out = Command::new(DEBIAN_PYTHON)
        .arg(script)
        .args(args)
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        script.display(),
        out.status
    );
    stdout
}

/// A file under tests/clients/.
pub fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}
