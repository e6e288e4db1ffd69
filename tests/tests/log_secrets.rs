//! Rookery's logs, read back from a real run: the format and filter zoo.cfg chooses
//! (`log.format`, `log.level`, overridden by `--log-format`/`--log-level` and
//! `RUST_LOG`), and no secret in them at the most verbose levels.
//!
//! An authenticated session does everything that carries a secret: `addauth digest`
//! with a password (also the super user's, against `superDigest`), a node whose ACL is
//! a digest id and whose data is secret, read, set and read again, a wrong password, a
//! credential in a scheme the server does not know, and admin API calls with the bearer
//! token from `admin.authTokenFile` and with a wrong one. Then the server's whole log is
//! searched for every secret, raw and in the encodings a careless `{:?}` or hex dump
//! would give, and must still show the session and the authentication in redacted form
//! (so that a server that logged nothing would fail too).
//!
//! Also ZooKeeper's warning for an fsync of the log slower than
//! `fsync.warningthresholdms`, which operators' log alerts look for.
//!
//! Rookery only: ZooKeeper's logs are log4j's; with `ROOKERY_TEST_TARGET=zookeeper`
//! every test here prints why and passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rookery_tests::{Server, Target, four_letter, rookery_bin};
use serde_json::Value;
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Error, Permission};

const WAIT: Duration = Duration::from_secs(30);

const USER: &str = "logtest";
const PASSWORD: &str = "pw-Zq7fK2-leakcheck";
/// `base64(sha1("logtest:pw-Zq7fK2-leakcheck"))`, ZooKeeper's digest of the password:
/// whoever has it can check password guesses offline, so it is a secret too.
const USER_DIGEST: &str = "U4E6TTVdH+jYJsvGw+lFcpxPa2M=";
const SUPER_PASSWORD: &str = "super-Xk91-leakcheck";
/// `base64(sha1("super:super-Xk91-leakcheck"))`, zoo.cfg's superDigest.
const SUPER_DIGEST: &str = "4Thb+h63MinRxQzKqZ9W6IsYM6k=";
const WRONG_PASSWORD: &str = "wrong-Lc6N-leakcheck";
const OTHER_SCHEME_CREDENTIAL: &str = "cred-Bv2Y-leakcheck";
const TOKEN: &str = "tok-Hq3V8-leakcheck";
const WRONG_TOKEN: &str = "badtok-Rr8D-leakcheck";
const DATA: &str = "data-Wm5R-leakcheck";
const DATA2: &str = "data2-Pj4T-leakcheck";

/// Every secret the session handles, by what it is.
const SECRETS: [(&str, &str); 10] = [
    ("the digest password", PASSWORD),
    ("the digest id's hash", USER_DIGEST),
    ("the super password", SUPER_PASSWORD),
    ("the superDigest hash", SUPER_DIGEST),
    ("a wrong password", WRONG_PASSWORD),
    ("an unknown scheme's credential", OTHER_SCHEME_CREDENTIAL),
    ("the admin token", TOKEN),
    ("a wrong admin token", WRONG_TOKEN),
    ("the node's data", DATA),
    ("the node's new data", DATA2),
];

/// Where `rookery admin` looks for a default zoo.cfg: nowhere.
const NO_CONFIG_DIR: &str = "/nonexistent/rookery-log-tests";

macro_rules! rookery_only {
    () => {
        if Target::from_env() == Target::ZooKeeper {
            println!(
                "SKIPPED: these check Rookery's own log settings and lines; ZooKeeper logs \
                 through log4j"
            );
            return;
        }
    };
}

/// A `rookery serve` started by this test rather than by [`Server`], whose start
/// always sets `RUST_LOG` (to `info` unless the test's environment has one), which
/// overrides zoo.cfg's `log.level` by design. [`Server::configure_with`] still writes
/// zoo.cfg and picks the ports.
struct Run {
    server: Server,
    child: Child,
    log: PathBuf,
}

impl Run {
    fn start(extra_config: &str, args: &[&str], rust_log: Option<&str>) -> Run {
        let server = Server::configure_with(Target::Rookery, extra_config);
        let log = server.dir().join("rookery.log");
        let child = serve(&server, &log, args, rust_log)
            .spawn()
            .expect("starting rookery serve");
        let mut run = Run { server, child, log };
        run.wait_ready();
        run
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !four_letter(self.server.port, "srvr").is_some_and(|s| s.contains("Mode: ")) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rookery exited during start-up ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "rookery did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server (SIGKILL: every line is written as it is logged) and returns
    /// its whole log.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rookery serve --config <zoo.cfg> <args>`, stdout and stderr into `log`.
fn serve(server: &Server, log: &Path, args: &[&str], rust_log: Option<&str>) -> Command {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut c = Command::new(rookery_bin());
    c.args(args)
        .args(["serve", "--config"])
        .arg(server.config_path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(v) = rust_log {
        c.env("RUST_LOG", v);
    }
    c
}

/// zoo.cfg lines for a server with a super digest and an admin token file, logging
/// in `format` at `level`.
fn secret_config(dir: &Path, format: &str, level: &str) -> String {
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    format!(
        "zookeeper.DigestAuthenticationProvider.superDigest=super:{SUPER_DIGEST}\n\
         admin.authTokenFile={}\n\
         log.format={format}\n\
         log.level={level}\n",
        token_file.display()
    )
}

/// `rookery admin --endpoint <admin> --token-file <file> --json status`.
fn admin_status(server: &Server, token: &str) -> Output {
    let file = server.dir().join(format!("client-{}.token", token.len()));
    std::fs::write(&file, token).expect("client token file");
    Command::new(rookery_bin())
        .args([
            "admin",
            "--endpoint",
            &server.admin_endpoint(),
            "--token-file",
        ])
        .arg(&file)
        .args(["--json", "status"])
        .env_remove("ROOKERY_ADMIN_TOKEN")
        .env("ZOOCFGDIR", NO_CONFIG_DIR)
        .stdin(Stdio::null())
        .output()
        .expect("running rookery admin")
}

async fn connect(server: &Server) -> Client {
    Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&server.connect_string())
        .await
        .expect("connecting")
}

/// Everything with a secret in it, through a real client and the admin CLI.
async fn authenticated_session(server: &Server) {
    let owner = connect(server).await;
    owner
        .auth("digest", format!("{USER}:{PASSWORD}").as_bytes())
        .await
        .expect("addauth digest");
    let acl = [Acl::new(
        Permission::ALL,
        AuthId::new("digest", &format!("{USER}:{USER_DIGEST}")),
    )];
    owner
        .create(
            "/secret",
            DATA.as_bytes(),
            &CreateMode::Persistent.with_acls(Acls::new(&acl)),
        )
        .await
        .expect("create /secret");
    assert_eq!(owner.get_data("/secret").await.unwrap().0, DATA.as_bytes());
    owner
        .set_data("/secret", DATA2.as_bytes(), None)
        .await
        .expect("setData /secret");
    assert_eq!(owner.get_data("/secret").await.unwrap().0, DATA2.as_bytes());
    let (acl_back, _) = owner.get_acl("/secret").await.unwrap();
    assert_eq!(acl_back, acl);

    // The super user, through zoo.cfg's superDigest, passes the ACL.
    let admin = connect(server).await;
    admin
        .auth("digest", format!("super:{SUPER_PASSWORD}").as_bytes())
        .await
        .expect("addauth super");
    assert_eq!(admin.get_data("/secret").await.unwrap().0, DATA2.as_bytes());

    // A wrong password authenticates as another id (as in ZooKeeper), which the ACL
    // refuses.
    let intruder = connect(server).await;
    intruder
        .auth("digest", format!("{USER}:{WRONG_PASSWORD}").as_bytes())
        .await
        .expect("addauth digest takes any password");
    assert_eq!(intruder.get_data("/secret").await, Err(Error::NoAuth));
    assert_eq!(
        intruder.set_data("/secret", b"x", None).await,
        Err(Error::NoAuth)
    );

    // A scheme the server has no provider for: AuthFailed, connection closed.
    let stranger = connect(server).await;
    assert!(
        stranger
            .auth("x-token", OTHER_SCHEME_CREDENTIAL.as_bytes())
            .await
            .is_err(),
        "an unknown auth scheme must fail"
    );

    // The admin API with the token, then with a wrong one.
    let ok = admin_status(server, TOKEN);
    assert!(
        ok.status.success(),
        "admin status with the token failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = admin_status(server, WRONG_TOKEN);
    assert!(
        !refused.status.success(),
        "admin status with a wrong token succeeded"
    );
    drop((owner, admin, intruder, stranger));
}

/// The ways a secret could show up besides its text: hex (a byte dump) and the
/// `[100, 97, ...]` of `{:?}` on bytes.
fn encodings(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let debug = format!("{bytes:?}");
    // A prefix of the debug list is enough to find it inside a longer buffer.
    let debug_prefix = debug
        .trim_start_matches('[')
        .split(", ")
        .take(8)
        .collect::<Vec<_>>()
        .join(", ");
    vec![secret.to_owned(), hex, debug_prefix]
}

fn assert_no_secrets(log: &str) {
    for (what, secret) in SECRETS {
        for form in encodings(secret) {
            if let Some(line) = log.lines().find(|l| l.contains(&form)) {
                panic!("{what} ({form}) is in the log:\n{line}");
            }
        }
    }
}

/// Runs the session against a server logging in `format` at `level` and returns the
/// log, checked for secrets.
fn logged_session(format: &str, level: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = Run::start(&secret_config(dir.path(), format, level), &[], None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(authenticated_session(&run.server));
    // Give the server a moment to log the closes after the clients went away.
    std::thread::sleep(Duration::from_millis(300));
    let log = run.stop();
    assert!(!log.trim().is_empty(), "the server logged nothing");
    assert_no_secrets(&log);
    log
}

#[test]
fn human_log_at_trace_holds_no_secret() {
    rookery_only!();
    let log = logged_session("human", "trace");
    let has = |needles: &[&str]| log.lines().any(|l| needles.iter().all(|n| l.contains(n)));
    // The filter came from zoo.cfg, and it let trace lines through.
    assert!(
        has(&["logging", "zoo.cfg log.level", "trace"]),
        "no start-up line naming the filter:\n{log}"
    );
    assert!(has(&["TRACE"]), "no TRACE line at log.level=trace:\n{log}");
    // The events happened and are there, redacted.
    assert!(has(&["new session"]), "no session line:\n{log}");
    assert!(
        has(&["authenticated", "scheme=digest", USER]),
        "no line for the digest addauth:\n{log}"
    );
    assert!(
        has(&["authenticated", "user=\"super\"", "is_super=true"]),
        "no line for the super addauth:\n{log}"
    );
    assert!(
        has(&["authentication failed", "x-token"]),
        "no line for the failed addauth:\n{log}"
    );
    assert!(
        has(&["admin call refused"]),
        "no line for the refused admin call:\n{log}"
    );
    // Plain text for files: no colour codes when stderr is not a terminal.
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file");
}

#[test]
fn json_log_at_debug_holds_no_secret_and_every_line_is_an_object() {
    rookery_only!();
    // Levels per module: debug for Rookery, trace for the gRPC stack and the storage
    // engine, info for the rest.
    let level = "info,rookery_server=debug,rookery_admin=trace,h2=trace,tonic=trace,sled=trace";
    let log = logged_session("json", level);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}):\n{l}")))
        .collect();
    for v in &lines {
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(v.get(key).is_some(), "no {key} in {v}");
        }
    }
    let message = |v: &Value| v["fields"]["message"].as_str().unwrap_or("").to_owned();
    let target = |v: &Value| v["target"].as_str().unwrap_or("").to_owned();
    let verbose = |v: &Value| v["level"] == "DEBUG" || v["level"] == "TRACE";
    assert!(
        lines
            .iter()
            .any(|v| v["level"] == "DEBUG" && target(v).starts_with("rookery_server::")),
        "no DEBUG line from rookery_server:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|v| v["level"] == "TRACE" && target(v).starts_with("h2::")),
        "no TRACE line from h2:\n{log}"
    );
    for v in lines.iter().filter(|v| verbose(v)) {
        let t = target(v);
        // The storage engine's verbose lines print pages (Txns): never written.
        assert!(!t.starts_with("sled"), "{v}");
        assert!(
            ["rookery_server", "rookery_admin", "h2", "tonic"]
                .iter()
                .any(|m| t == *m || t.starts_with(&format!("{m}::"))),
            "a {} line from {t}, which {level} keeps at info: {v}",
            v["level"]
        );
    }
    let start = lines
        .iter()
        .find(|v| message(v) == "logging")
        .unwrap_or_else(|| panic!("no start-up line naming the filter:\n{log}"));
    assert_eq!(
        start["fields"]["filter_from"], "zoo.cfg log.level",
        "{start}"
    );
    assert_eq!(start["fields"]["format"], "json", "{start}");

    // The digest addauth: scheme and user, inside the request's span, which names
    // the session, xid and opcode (100, auth).
    let auth = lines
        .iter()
        .find(|v| message(v) == "authenticated" && v["fields"]["user"] == USER)
        .unwrap_or_else(|| panic!("no line for the digest addauth:\n{log}"));
    assert_eq!(auth["fields"]["scheme"], "digest", "{auth}");
    assert_eq!(auth["fields"]["is_super"], false, "{auth}");
    assert_eq!(auth["span"]["name"], "request", "{auth}");
    assert_eq!(auth["span"]["op"], 100, "{auth}");
    let session = auth["span"]["session"].as_str().unwrap_or("");
    assert!(session.starts_with("0x"), "{auth}");
    assert!(
        auth["spans"].as_array().is_some_and(|s| !s.is_empty()),
        "{auth}"
    );
    assert!(
        lines
            .iter()
            .any(|v| message(v) == "new session" && v["fields"]["session"] == session),
        "no new-session line for {session}:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|v| message(v) == "authenticated" && v["fields"]["is_super"] == true),
        "no line for the super addauth:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|v| message(v).contains("authentication failed")
                && v["fields"]["scheme"] == "x-token"
                && v["level"] == "WARN"),
        "no line for the failed addauth:\n{log}"
    );
}

#[test]
fn command_line_and_rust_log_win_over_zoo_cfg() {
    rookery_only!();
    // zoo.cfg asks for human lines at trace; the command line for JSON, and RUST_LOG
    // for warnings except the binary's own start-up lines.
    let run = Run::start(
        "log.format=human\nlog.level=trace\n",
        &["--log-format", "json"],
        Some("warn,rookery=info"),
    );
    let log = run.stop();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}):\n{l}")))
        .collect();
    let start = lines
        .iter()
        .find(|v| v["fields"]["message"] == "logging")
        .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
    assert_eq!(start["fields"]["filter_from"], "RUST_LOG", "{start}");
    assert_eq!(start["fields"]["filter"], "warn,rookery=info", "{start}");
    assert!(
        lines
            .iter()
            .all(|v| v["level"] != "DEBUG" && v["level"] != "TRACE"),
        "debug or trace lines under RUST_LOG=warn,rookery=info:\n{log}"
    );

    // --log-level beats RUST_LOG.
    let run = Run::start("", &["--log-level", "info"], Some("off"));
    let log = run.stop();
    assert!(
        log.contains("filter_from=\"--log-level\"") || log.contains("filter_from=--log-level"),
        "{log}"
    );
}

#[test]
fn an_fsync_slower_than_the_threshold_is_a_warning() {
    rookery_only!();
    // At 0 ms every fsync is slower than the threshold.
    let run = Run::start(
        "log.format=json\nzookeeper.fsync.warningthresholdms=0\n",
        &[],
        None,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = connect(&run.server).await;
        client
            .create(
                "/fsync",
                b"x",
                &CreateMode::Persistent.with_acls(Acls::anyone_all()),
            )
            .await
            .expect("create");
    });
    // The create was answered after its fsync was reported, and so after the line.
    let log = run.stop();
    let warning = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        // The create's round (protocol syncs at start-up append no entries).
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("fsync-ing the write ahead log in "))
                && v["fields"]["entries"].as_u64().is_some_and(|n| n >= 1)
        })
        .unwrap_or_else(|| panic!("no fsync warning for a round at threshold 0:\n{log}"));
    // ZooKeeper's words, as alert rules match them: "... in SyncThread:<id> took <n>ms
    // which will adversely effect operation latency."
    let message = warning["fields"]["message"].as_str().unwrap_or_default();
    let took = message
        .strip_prefix("fsync-ing the write ahead log in SyncThread:")
        .and_then(|m| m.split_once(" took "))
        .and_then(|(id, rest)| {
            let (ms, _) = rest.split_once("ms which will adversely effect")?;
            Some((id, ms))
        });
    assert!(
        took.is_some_and(|(id, ms)| id.parse::<u32>().is_ok() && ms.parse::<u64>().is_ok()),
        "not ZooKeeper's wording: {message}"
    );
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["fields"]["threshold_ms"], 0, "{warning}");
    assert!(warning["fields"]["elapsed_ms"].is_u64(), "{warning}");
}

#[test]
fn an_unknown_log_format_is_refused_with_file_and_line() {
    rookery_only!();
    let server = Server::configure_with(Target::Rookery, "log.format=xml\n");
    let log = server.dir().join("rookery.log");
    let out = serve(&server, &log, &[], None)
        .output()
        .expect("running rookery serve");
    assert!(!out.status.success(), "rookery started with log.format=xml");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let cfg = std::fs::read_to_string(server.config_path()).expect("zoo.cfg");
    let line = cfg
        .lines()
        .position(|l| l == "log.format=xml")
        .expect("the line")
        + 1;
    let want = format!(
        "{}:{line}: log.format: invalid option 'xml'; choose 'human' or 'json'",
        server.config_path().display()
    );
    assert!(text.contains(&want), "expected {want:?} in:\n{text}");
}
