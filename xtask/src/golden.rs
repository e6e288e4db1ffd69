//! `cargo xtask golden`: golden wire vectors recorded from a real Apache ZooKeeper 3.8.
//!
//! `record` starts a throwaway standalone ZooKeeper (Debian's package) on a free loopback
//! port, puts a frame-splitting TCP proxy in front of it, and drives scenarios through
//! three real clients (kazoo, the Java `zkCli.sh`, the C `cli_mt`). Every frame that
//! crosses the proxy is written, without its 4-byte length prefix, to
//! `<out>/<client>/NNNN-<direction>-<opname>.bin`, and listed in `<out>/manifest.tsv`.
//! `handbuilt` writes the vectors for opcodes none of those clients can send (see
//! [`handbuilt`]). The test `crates/wire/tests/golden.rs` replays them all through
//! rookery-wire and demands byte-identical re-encoding.

mod handbuilt;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

const DEFAULT_OUT: &str = "crates/wire/tests/golden";
const MANIFEST_HEADER: &str = "file\tclient\tstep\tdirection\topcode\txid\terr";
const ZK_BIN: &str = "/usr/share/zookeeper/bin";
const CLI_MT: &str = "/usr/lib/zookeeper/bin/cli_mt";
const PYTHON: &str = "/usr/bin/python3";
const KAZOO_SCENARIO: &str = include_str!("golden/kazoo_scenario.py");
const RAW_SCENARIO: &str = include_str!("golden/raw_scenario.py");
/// Pings are recorded only this many times per connection and direction.
const MAX_PINGS: u32 = 2;
/// `raw` is a Python raw-socket client that sends, by hand-written jute, the requests no
/// library client sends, so ZooKeeper's real replies to them are recorded too.
const ALL_CLIENTS: &[&str] = &["kazoo", "zkcli", "cli_mt", "raw"];

#[derive(Debug, Subcommand)]
pub(crate) enum GoldenCmd {
    /// Record frames from Apache ZooKeeper through kazoo, zkCli.sh and cli_mt, then
    /// (re)write the hand-built vectors and the manifest.
    Record {
        /// Output directory, relative to the workspace root.
        #[arg(long, default_value = DEFAULT_OUT)]
        out: PathBuf,
        /// Record only these clients (comma separated); rows of the others are kept.
        #[arg(long, value_delimiter = ',')]
        clients: Vec<String>,
        /// Keep the temporary ZooKeeper directory (logs, client output) for debugging.
        #[arg(long)]
        keep_temp: bool,
    },
    /// Rewrite only the hand-built vectors (and their manifest rows).
    Handbuilt {
        #[arg(long, default_value = DEFAULT_OUT)]
        out: PathBuf,
    },
}

pub(crate) fn run(root: &Path, cmd: GoldenCmd) -> Result<()> {
    match cmd {
        GoldenCmd::Record {
            out,
            clients,
            keep_temp,
        } => {
            let clients: Vec<String> = if clients.is_empty() {
                ALL_CLIENTS.iter().map(|c| c.to_string()).collect()
            } else {
                clients
            };
            for c in &clients {
                if !ALL_CLIENTS.contains(&c.as_str()) {
                    bail!("unknown client {c:?}; known: {ALL_CLIENTS:?}");
                }
            }
            record(&root.join(out), &clients, keep_temp)
        }
        GoldenCmd::Handbuilt { out } => {
            let out = root.join(out);
            let rows = handbuilt::write(&out)?;
            merge_manifest(&out, &["handbuilt".to_string()], rows)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Manifest

#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) file: String,
    pub(crate) client: String,
    pub(crate) step: String,
    pub(crate) direction: &'static str,
    /// Numeric opcode, or "connect" for handshake frames.
    pub(crate) opcode: String,
    /// "-" for handshake frames.
    pub(crate) xid: String,
    /// "-" for requests and handshake frames.
    pub(crate) err: String,
}

impl Row {
    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.file, self.client, self.step, self.direction, self.opcode, self.xid, self.err
        )
    }
}

/// Replaces the rows of `clients` in the manifest with `rows`, keeping all others.
fn merge_manifest(out: &Path, clients: &[String], rows: Vec<Row>) -> Result<()> {
    let path = out.join("manifest.tsv");
    let mut lines: Vec<String> = Vec::new();
    if let Ok(old) = fs::read_to_string(&path) {
        for line in old.lines().skip(1) {
            let client = line.split('\t').nth(1).unwrap_or_default();
            if !line.is_empty() && !clients.iter().any(|c| c == client) {
                lines.push(line.to_string());
            }
        }
    }
    lines.extend(rows.iter().map(Row::line));
    // Group by client in a fixed order so re-recording one client gives a small diff.
    let order = |l: &String| {
        let client = l.split('\t').nth(1).unwrap_or_default().to_string();
        let rank = ALL_CLIENTS
            .iter()
            .position(|c| *c == client)
            .unwrap_or(ALL_CLIENTS.len());
        (rank, client)
    };
    lines.sort_by_key(|l| {
        (
            order(l),
            l.split('\t').next().unwrap_or_default().to_string(),
        )
    });
    let mut text = String::from(MANIFEST_HEADER);
    text.push('\n');
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    fs::create_dir_all(out)?;
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("golden: wrote {} ({} rows)", path.display(), lines.len());
    Ok(())
}

pub(crate) fn op_name(op: i32) -> String {
    let name = match op {
        0 => "notification",
        1 => "create",
        2 => "delete",
        3 => "exists",
        4 => "getData",
        5 => "setData",
        6 => "getACL",
        7 => "setACL",
        8 => "getChildren",
        9 => "sync",
        11 => "ping",
        12 => "getChildren2",
        13 => "check",
        14 => "multi",
        15 => "create2",
        16 => "reconfig",
        17 => "checkWatches",
        18 => "removeWatches",
        19 => "createContainer",
        20 => "deleteContainer",
        21 => "createTTL",
        22 => "multiRead",
        100 => "auth",
        101 => "setWatches",
        102 => "sasl",
        103 => "getEphemerals",
        104 => "getAllChildrenNumber",
        105 => "setWatches2",
        106 => "addWatch",
        107 => "whoAmI",
        -10 => "createSession",
        -11 => "closeSession",
        -1 => "error",
        other => return format!("op{other}"),
    };
    name.to_string()
}

// ---------------------------------------------------------------------------------------
// Recorder: shared by the proxy threads and the scenario drivers.

struct RecState {
    client: String,
    step_no: u32,
    step: String,
    seq: BTreeMap<String, u32>,
    rows: Vec<Row>,
    last_frame: Instant,
    frames_in_step: u32,
    bytes: usize,
    live: Vec<(u64, TcpStream, TcpStream)>,
}

struct Recorder {
    out: PathBuf,
    state: Mutex<RecState>,
    next_conn: AtomicU64,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, RecState> {
        // A panicking proxy thread must not take the whole recording down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_client(&self, client: &str) {
        let mut st = self.lock();
        st.client = client.to_string();
        st.step_no = 0;
        st.step = "00 start".to_string();
    }

    fn step(&self, label: &str) {
        let mut st = self.lock();
        st.step_no += 1;
        st.step = format!("{:02} {}", st.step_no, label.replace(['\t', '\n'], " "));
        st.frames_in_step = 0;
        println!("golden: [{}] step {}", st.client, st.step);
    }

    /// Writes one frame (payload without the length prefix) and its manifest row.
    fn frame(
        &self,
        direction: &'static str,
        op: Option<i32>,
        xid: Option<i32>,
        err: Option<i32>,
        payload: &[u8],
    ) {
        let mut st = self.lock();
        let client = st.client.clone();
        let seq = {
            let n = st.seq.entry(client.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let opname = op.map_or_else(|| "connect".to_string(), op_name);
        let file = format!("{client}/{seq:04}-{direction}-{opname}.bin");
        let path = self.out.join(&file);
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        if let Err(e) = fs::write(&path, payload) {
            eprintln!("golden: cannot write {}: {e}", path.display());
            return;
        }
        let dash = || "-".to_string();
        let row = Row {
            file,
            client,
            step: st.step.clone(),
            direction,
            opcode: op.map_or_else(|| "connect".to_string(), |o| o.to_string()),
            xid: xid.map_or_else(dash, |x| x.to_string()),
            err: err.map_or_else(dash, |e| e.to_string()),
        };
        st.rows.push(row);
        st.last_frame = Instant::now();
        st.frames_in_step += 1;
        st.bytes += payload.len();
    }

    /// Cuts every live client connection, so the clients reconnect with their sessions.
    fn drop_all(&self) {
        let mut st = self.lock();
        println!(
            "golden: [{}] dropping {} connection(s)",
            st.client,
            st.live.len()
        );
        for (_, a, b) in st.live.drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Waits until the wire has been quiet for `quiet` (after at least one frame in this
    /// step), or `max` has passed.
    fn settle(&self, quiet: Duration, max: Duration) {
        let start = Instant::now();
        loop {
            thread::sleep(Duration::from_millis(50));
            let (n, last) = {
                let st = self.lock();
                (st.frames_in_step, st.last_frame)
            };
            if (n > 0 && last.elapsed() >= quiet) || start.elapsed() >= max {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Proxy

#[derive(Default)]
struct ConnState {
    /// xid -> opcode of requests still waiting for their reply.
    pending: HashMap<i32, i32>,
    /// Which of setWatches (101) / setWatches2 (105) the client sent with xid -8.
    set_watches_op: i32,
    seen_connect_request: bool,
    seen_connect_response: bool,
    pings: [u32; 2],
    four_letter: bool,
}

struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(rec: Arc<Recorder>, upstream: u16) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let rec = rec.clone();
                thread::spawn(move || {
                    if let Err(e) = serve(rec, client, upstream) {
                        eprintln!("golden: proxy connection: {e:#}");
                    }
                });
            }
        });
        Ok(Proxy { port, stop })
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(rec: Arc<Recorder>, client: TcpStream, upstream: u16) -> Result<()> {
    let server = TcpStream::connect(("127.0.0.1", upstream)).context("connecting upstream")?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = rec.next_conn.fetch_add(1, Ordering::SeqCst);
    rec.lock()
        .live
        .push((id, client.try_clone()?, server.try_clone()?));
    let conn = Arc::new(Mutex::new(ConnState::default()));
    let (c_in, s_out) = (client.try_clone()?, server.try_clone()?);
    let (rec2, conn2) = (rec.clone(), conn.clone());
    let up = thread::spawn(move || pump(&rec2, &conn2, c_in, s_out, true));
    pump(&rec, &conn, server.try_clone()?, client.try_clone()?, false);
    let _ = up.join();
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    rec.lock().live.retain(|(i, _, _)| *i != id);
    Ok(())
}

/// Copies one direction, frame by frame, recording each frame before forwarding it (so
/// a reply can never be seen before the request it answers has been noted as pending).
fn pump(
    rec: &Recorder,
    conn: &Mutex<ConnState>,
    mut from: TcpStream,
    mut to: TcpStream,
    from_client: bool,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut raw = false;
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if raw || conn.lock().map(|c| c.four_letter).unwrap_or(false) {
            raw = true;
            if to.write_all(&chunk[..n]).is_err() {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk[..n]);
        if from_client && buf.len() >= 4 {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            if !c.seen_connect_request && buf[..4].iter().all(u8::is_ascii_lowercase) {
                c.four_letter = true;
                println!(
                    "golden: four-letter word {:?}, not recorded",
                    String::from_utf8_lossy(&buf[..4])
                );
                drop(c);
                raw = true;
                if to.write_all(&buf).is_err() {
                    break;
                }
                buf.clear();
                continue;
            }
        }
        let mut ok = true;
        while buf.len() >= 4 {
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if !(0..=16 * 1024 * 1024).contains(&len) {
                eprintln!("golden: bad frame length {len}, passing the rest through raw");
                raw = true;
                ok = to.write_all(&buf).is_ok();
                buf.clear();
                break;
            }
            let end = 4 + len as usize;
            if buf.len() < end {
                break;
            }
            note_frame(rec, conn, &buf[4..end], from_client);
            if to.write_all(&buf[..end]).is_err() {
                ok = false;
                break;
            }
            buf.drain(..end);
        }
        if !ok {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn note_frame(rec: &Recorder, conn: &Mutex<ConnState>, payload: &[u8], from_client: bool) {
    let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
    if from_client {
        if !c.seen_connect_request {
            c.seen_connect_request = true;
            drop(c);
            rec.frame("request", None, None, None, payload);
            return;
        }
        let (Some(xid), Some(op)) = (be_i32(payload, 0), be_i32(payload, 4)) else {
            eprintln!(
                "golden: short request frame ({} bytes), not recorded",
                payload.len()
            );
            return;
        };
        match xid {
            -2 => {
                c.pings[0] += 1;
                if c.pings[0] > MAX_PINGS {
                    return;
                }
            }
            -8 => c.set_watches_op = op,
            -4 => {}
            _ => {
                c.pending.insert(xid, op);
            }
        }
        drop(c);
        rec.frame("request", Some(op), Some(xid), None, payload);
    } else {
        if !c.seen_connect_response {
            c.seen_connect_response = true;
            drop(c);
            rec.frame("response", None, None, None, payload);
            return;
        }
        let (Some(xid), Some(err)) = (be_i32(payload, 0), be_i32(payload, 12)) else {
            eprintln!(
                "golden: short reply frame ({} bytes), not recorded",
                payload.len()
            );
            return;
        };
        let op = match xid {
            -1 => 0,
            -2 => {
                c.pings[1] += 1;
                if c.pings[1] > MAX_PINGS {
                    return;
                }
                11
            }
            -4 => 100,
            -8 => c.set_watches_op,
            _ => match c.pending.remove(&xid) {
                Some(op) => op,
                None => {
                    eprintln!("golden: reply with unknown xid {xid}, not recorded");
                    return;
                }
            },
        };
        drop(c);
        rec.frame("response", Some(op), Some(xid), Some(err), payload);
    }
}

// ---------------------------------------------------------------------------------------
// The throwaway ZooKeeper

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct ZooKeeper {
    child: Child,
    port: u16,
}

impl ZooKeeper {
    fn start(tmp: &Path) -> Result<ZooKeeper> {
        let port = free_port()?;
        let data = tmp.join("data");
        fs::create_dir_all(&data)?;
        let cfg = tmp.join("zoo.cfg");
        fs::write(
            &cfg,
            format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
                 authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
                data.display()
            ),
        )?;
        // A JAAS user for kazoo's SASL DIGEST-MD5 session (opcode 102).
        let jaas = tmp.join("jaas.conf");
        fs::write(
            &jaas,
            "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
             user_bob=\"bobsecret\";\n};\n",
        )?;
        let log = fs::File::create(tmp.join("zookeeper.out"))?;
        let child = Command::new(format!("{ZK_BIN}/zkServer.sh"))
            .arg("start-foreground")
            .arg(&cfg)
            .env("ZOO_LOG_DIR", tmp)
            // Container nodes are checked every second so a deleteContainer happens in the run.
            .env(
                "SERVER_JVMFLAGS",
                format!(
                    "-Dzookeeper.extendedTypesEnabled=true -Dznode.container.checkIntervalMs=1000 \
                     -Djava.security.auth.login.config={}",
                    jaas.display()
                ),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting zkServer.sh start-foreground")?;
        let mut zk = ZooKeeper { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if four_letter(port, "ruok").is_ok_and(|s| s == "imok") {
                break;
            }
            if let Some(status) = zk.child.try_wait()? {
                bail!(
                    "ZooKeeper exited early ({status}); see {}",
                    tmp.join("zookeeper.out").display()
                );
            }
            if Instant::now() > deadline {
                zk.stop();
                bail!("ZooKeeper did not answer ruok within 60 s");
            }
            thread::sleep(Duration::from_millis(250));
        }
        println!(
            "golden: ZooKeeper 3.8 up on 127.0.0.1:{port} ({})",
            tmp.display()
        );
        Ok(zk)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn four_letter(port: u16, word: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Scenario drivers

fn record(out: &Path, clients: &[String], keep_temp: bool) -> Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = std::env::temp_dir().join(format!("rookery-golden-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    for c in clients.iter().map(String::as_str).chain(["handbuilt"]) {
        let dir = out.join(c);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
    }
    fs::create_dir_all(out)?;

    let result = (|| -> Result<Vec<Row>> {
        let zk = ZooKeeper::start(&tmp)?;
        let rec = Arc::new(Recorder {
            out: out.to_path_buf(),
            state: Mutex::new(RecState {
                client: "none".into(),
                step_no: 0,
                step: "00 start".into(),
                seq: BTreeMap::new(),
                rows: Vec::new(),
                last_frame: Instant::now(),
                frames_in_step: 0,
                bytes: 0,
                live: Vec::new(),
            }),
            next_conn: AtomicU64::new(0),
        });
        let proxy = Proxy::start(rec.clone(), zk.port)?;
        let addr = format!("127.0.0.1:{}", proxy.port);
        // A four-letter word through the proxy: it must be passed on, not recorded.
        let srvr = four_letter(proxy.port, "srvr")?;
        println!(
            "golden: srvr via proxy: {}",
            srvr.lines().next().unwrap_or_default()
        );

        for client in clients {
            rec.set_client(client);
            let res = match client.as_str() {
                "kazoo" => scripted(&rec, "kazoo", KAZOO_SCENARIO, &addr, &tmp),
                "raw" => scripted(&rec, "raw", RAW_SCENARIO, &addr, &tmp),
                "zkcli" => zkcli(&rec, &addr, &tmp),
                "cli_mt" => cli_mt(&rec, &addr, &tmp),
                _ => unreachable!("checked in run()"),
            };
            res.with_context(|| format!("scenario {client}"))?;
            rec.drop_all();
        }
        proxy.stop();
        drop(zk);
        let st = rec.lock();
        println!(
            "golden: recorded {} frames, {} bytes",
            st.rows.len(),
            st.bytes
        );
        for c in clients {
            let n = st.rows.iter().filter(|r| &r.client == c).count();
            println!("golden:   {c}: {n} frames");
        }
        Ok(st.rows.clone())
    })();
    if keep_temp {
        println!("golden: temp dir kept at {}", tmp.display());
    } else {
        let _ = fs::remove_dir_all(&tmp);
    }
    let mut rows = result?;
    rows.extend(handbuilt::write(out)?);
    let mut replaced: Vec<String> = clients.to_vec();
    replaced.push("handbuilt".into());
    merge_manifest(out, &replaced, rows)
}

/// A client that reads commands from its stdin, one line per command.
struct LineClient {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl LineClient {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Result<LineClient> {
        let log = fs::File::create(log)?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdin = child.stdin.take();
        Ok(LineClient { name, child, stdin })
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Sends one command as its own step and waits for its frames.
    fn cmd(&mut self, rec: &Recorder, label: &str, line: &str) -> Result<()> {
        self.cmd_shown(rec, label, line, line)
    }

    /// Like `cmd`, but names the step after `shown` (a template without the
    /// run-dependent parts, so re-recordings keep the same labels).
    fn cmd_shown(&mut self, rec: &Recorder, label: &str, shown: &str, line: &str) -> Result<()> {
        rec.step(&format!("{label}: {shown}"));
        self.send(line)?;
        rec.settle(Duration::from_millis(400), Duration::from_secs(4));
        Ok(())
    }

    fn finish(mut self, wait: Duration) -> Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait()? {
                println!("golden: {} exited ({status})", self.name);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                println!("golden: {} killed after {wait:?}", self.name);
                return Ok(());
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Waits without sending anything, so the client's pings show up.
fn idle(rec: &Recorder, label: &str, d: Duration) {
    rec.step(label);
    thread::sleep(d);
}

fn reconnect(rec: &Recorder, label: &str, settle: Duration) {
    rec.step(label);
    rec.drop_all();
    rec.settle(Duration::from_millis(1500), settle);
}

fn zkcli(rec: &Recorder, addr: &str, tmp: &Path) -> Result<()> {
    let mut cli = LineClient::spawn(
        "zkCli.sh",
        Command::new(format!("{ZK_BIN}/zkCli.sh"))
            .args(["-timeout", "6000", "-server", addr])
            .env("ZOO_LOG_DIR", tmp)
            .env("CLIENT_JVMFLAGS", "-Dzookeeper.sasl.client=false"),
        &tmp.join("zkcli.out"),
    )?;
    rec.step("connect");
    rec.settle(Duration::from_millis(800), Duration::from_secs(20));
    let steps: &[(&str, &str)] = &[
        ("create persistent", "create /zkcli root"),
        ("create persistent", "create /zkcli/a hello"),
        ("create NodeExists", "create /zkcli/a again"),
        ("create ephemeral", "create -e /zkcli/eph e"),
        (
            "create NoChildrenForEphemerals",
            "create /zkcli/eph/child x",
        ),
        ("create sequential", "create -s /zkcli/seq- s"),
        ("create ephemeral sequential", "create -e -s /zkcli/eseq- s"),
        ("create container", "create -c /zkcli/cont c"),
        ("create in container", "create /zkcli/cont/kid k"),
        ("create node for ACL tests", "create /zkcli/acl v"),
        ("create TTL", "create -t 600000 /zkcli/ttl t"),
        (
            "create TTL sequential",
            "create -s -t 600000 /zkcli/ttlseq- t",
        ),
        ("create NoNode parent", "create /zkcli/missing/child x"),
        ("create without data (null buffer)", "create /zkcli/nodata"),
        ("get node with null data", "get /zkcli/nodata"),
        ("get", "get /zkcli/a"),
        ("get with stat", "get -s /zkcli/a"),
        ("get NoNode", "get /zkcli/nope"),
        ("stat", "stat /zkcli/a"),
        ("stat NoNode", "stat /zkcli/nope"),
        ("set", "set /zkcli/a world"),
        ("set with version", "set -v 1 /zkcli/a again"),
        ("set BadVersion", "set -v 99 /zkcli/a bad"),
        ("ls", "ls /zkcli"),
        ("ls with stat", "ls -s /zkcli"),
        ("ls NoNode", "ls /zkcli/nope"),
        ("delete NotEmpty", "delete /zkcli"),
        (
            "watch container (server reaps it later)",
            "stat -w /zkcli/cont",
        ),
        ("delete BadVersion", "delete -v 7 /zkcli/cont/kid"),
        ("delete with version", "delete -v 0 /zkcli/cont/kid"),
        // The container lost its only child: the server's container manager deletes it
        // (a deleteContainer txn) within a second or two, firing the watch set above.
        ("container reaped by server", "stat /zkcli/cont"),
        ("delete NoNode", "delete /zkcli/nope"),
        ("sync", "sync /zkcli"),
        ("getAcl", "getAcl /zkcli/a"),
        ("getAcl NoNode", "getAcl /zkcli/nope"),
        ("addauth digest", "addauth digest alice:secret"),
        (
            "create with auth ACL",
            "create /zkcli/secret s auth:alice:secret:cdrwa",
        ),
        (
            "setAcl digest with version",
            "setAcl -v 0 /zkcli/acl digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa,world:anyone:r",
        ),
        (
            "setAcl BadVersion",
            "setAcl -v 9 /zkcli/acl world:anyone:cdrwa",
        ),
        ("getAcl digest", "getAcl -s /zkcli/acl"),
        ("whoami", "whoami"),
        ("getEphemerals", "getEphemerals /zkcli"),
        ("getEphemerals all", "getEphemerals"),
        ("getAllChildrenNumber", "getAllChildrenNumber /zkcli"),
        ("config", "config"),
        (
            "reconfig ReconfigDisabled",
            "reconfig -add server.5=127.0.0.1:2888:3888;2181",
        ),
        ("watch exists absent", "stat -w /zkcli/w-absent"),
        ("watch exists present", "stat -w /zkcli/a"),
        ("watch data", "get -w /zkcli/a"),
        ("watch children", "ls -w /zkcli"),
        ("addWatch persistent", "addWatch -m PERSISTENT /zkcli/p"),
        ("addWatch recursive", "addWatch /zkcli/r"),
        (
            "addWatch recursive 2",
            "addWatch -m PERSISTENT_RECURSIVE /zkcli/rr",
        ),
    ];
    for (label, line) in steps {
        if label.starts_with("container reaped") {
            // checkIntervalMs is 1 s; give the reaper time, so its NodeDeleted lands here.
            rec.step("waiting for the container reaper (deleteContainer txn)");
            thread::sleep(Duration::from_millis(2500));
        }
        cli.cmd(rec, label, line)?;
    }
    idle(rec, "idle for pings", Duration::from_millis(5000));
    reconnect(
        rec,
        "proxy drops connection; reconnect with setWatches2 + auth",
        Duration::from_secs(20),
    );
    let after: &[(&str, &str)] = &[
        ("fire NodeCreated", "create /zkcli/w-absent x"),
        ("fire NodeDataChanged", "set /zkcli/a changed"),
        ("fire persistent NodeCreated", "create /zkcli/p p"),
        ("fire persistent NodeDataChanged", "set /zkcli/p p2"),
        ("fire recursive NodeCreated", "create /zkcli/r r"),
        ("fire recursive child NodeCreated", "create /zkcli/r/kid k"),
        ("removewatches persistent", "removewatches /zkcli/p -a"),
        ("removewatches recursive", "removewatches /zkcli/rr"),
        ("removewatches NoWatcher", "removewatches /zkcli/nowatch -d"),
        ("delete fires NodeDeleted", "delete /zkcli/r/kid"),
        ("close session", "close"),
        ("connect new session (no auth)", "connect 127.0.0.1:PORT"),
        ("get NoAuth", "get /zkcli/secret"),
        ("set NoAuth", "set /zkcli/secret x"),
        ("setAcl NoAuth", "setAcl /zkcli/secret world:anyone:cdrwa"),
        ("read digest-ACL node (world:anyone:r)", "get /zkcli/acl"),
        ("getAcl without auth", "getAcl /zkcli/acl"),
    ];
    let port = addr.rsplit(':').next().unwrap_or_default();
    for (label, template) in after {
        let line = template.replace("PORT", port);
        cli.cmd_shown(rec, label, template, &line)?;
        if line.starts_with("connect") {
            rec.settle(Duration::from_millis(800), Duration::from_secs(10));
        }
    }
    cli.cmd(
        rec,
        "addauth bad scheme AuthFailed",
        "addauth bogus whatever",
    )?;
    cli.cmd(rec, "quit", "quit")?;
    cli.finish(Duration::from_secs(10))
}

fn cli_mt(rec: &Recorder, addr: &str, tmp: &Path) -> Result<()> {
    let mut cli = LineClient::spawn(
        "cli_mt",
        Command::new(CLI_MT).args(["-h", addr]),
        &tmp.join("cli_mt.out"),
    )?;
    rec.step("connect");
    rec.settle(Duration::from_millis(800), Duration::from_secs(20));
    let steps: &[(&str, &str)] = &[
        ("create persistent", "create /c"),
        ("create persistent", "create /c/a"),
        ("create NodeExists", "create /c/a"),
        ("create ephemeral", "create +e /c/eph"),
        ("create NoChildrenForEphemerals", "create /c/eph/x"),
        ("create sequential", "create +s /c/seq-"),
        ("create ephemeral sequential", "create +es /c/eseq-"),
        ("create2", "create2 /c/b"),
        ("create2 ephemeral", "create2 +e /c/eph2"),
        ("create container", "create +c /c/cont"),
        ("create TTL", "create +t=600000 /c/ttl"),
        ("create NoNode parent", "create /c/missing/x"),
        ("get (watch)", "get /c/a"),
        ("get NoNode", "get /c/nope"),
        ("set", "set /c/a data"),
        ("ls (watch)", "ls /c"),
        ("ls2 (watch)", "ls2 /c"),
        ("ls NoNode", "ls /c/nope"),
        ("exists (watch)", "exists /c/a"),
        ("exists absent (watch)", "exists /c/absent"),
        ("wexists", "wexists /c/b"),
        ("sync", "sync /c"),
        ("delete NotEmpty", "delete /c"),
        ("delete NoNode", "delete /c/nope"),
        ("addauth digest", "addauth digest carol:pw"),
        ("config (getData /zookeeper/config)", "config"),
        (
            "reconfig ReconfigDisabled",
            "reconfig -add server.5=127.0.0.1:2888:3888;2181",
        ),
    ];
    for (label, line) in steps {
        cli.cmd(rec, label, line)?;
    }
    // cli_mt uses a 30 s session, so it pings after 10 s of silence.
    idle(rec, "idle for pings", Duration::from_millis(11500));
    reconnect(
        rec,
        "proxy drops connection; reconnect with setWatches + auth",
        Duration::from_secs(20),
    );
    let after: &[(&str, &str)] = &[
        ("fire NodeCreated", "create /c/absent"),
        (
            "fire NodeDataChanged + NodeChildrenChanged",
            "set /c/a changed",
        ),
        ("fire NodeDeleted", "delete /c/b"),
        ("delete", "delete /c/a"),
        ("quit (closeSession)", "quit"),
    ];
    for (label, line) in after {
        cli.cmd(rec, label, line)?;
    }
    cli.finish(Duration::from_secs(10))
}

/// Runs a Python scenario (`golden/*_scenario.py`), which prints `@step <label>` and
/// `@drop` lines and waits for `ok` on its stdin after each, so the steps line up with
/// the frames.
fn scripted(rec: &Recorder, name: &str, source: &str, addr: &str, tmp: &Path) -> Result<()> {
    let script = tmp.join(format!("{name}_scenario.py"));
    fs::write(&script, source)?;
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .arg(addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {name} scenario"))?;
    let mut stdin = child.stdin.take().context("scenario stdin")?;
    let stdout = child.stdout.take().context("scenario stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(label) = line.strip_prefix("@step ") {
            // Frames of the previous step may still be in flight (watch events).
            rec.settle(Duration::from_millis(150), Duration::from_millis(600));
            rec.step(label);
        } else if line == "@drop" {
            rec.drop_all();
        } else {
            println!("{name}: {line}");
            continue;
        }
        stdin.write_all(b"ok\n")?;
        stdin.flush()?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{name} scenario failed ({status})");
    }
    Ok(())
}
