//! The Prometheus endpoint (`metricsProvider.httpPort`, ZooKeeper 3.6+'s key) of the
//! real binary: a standalone server and a three-voter ensemble do client work, then
//! `/metrics` is scraped over plain HTTP, parsed strictly as the text exposition format
//! (every line a comment or `name{labels} value`, one TYPE per family before its
//! samples, histogram buckets cumulative up to `+Inf` with `_count` equal to it), and
//! the numbers are checked against what the clients did and what `mntr` says.
//!
//! Rookery only: Debian's ZooKeeper 3.8 package ships without the Prometheus provider's
//! jars (prometheus simpleclient, Jetty servlets), so with
//! `ROOKERY_TEST_TARGET=zookeeper` these tests print why and pass.

use rookery_tests::zk::{connect, persistent, runtime};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rookery_tests::{CLUSTER_WAIT, ClusterOptions, Server, Target, four_letter, free_port};

/// Long enough for a loaded 2-core CI machine; nothing here is a timing assertion.
const WAIT: Duration = Duration::from_secs(30);

macro_rules! rookery_only {
    () => {
        if Target::from_env() == Target::ZooKeeper {
            println!(
                "SKIPPED: Debian's ZooKeeper package lacks the Prometheus metrics provider's jars"
            );
            return;
        }
    };
}

// ---------------------------------------------------------------------------------
// HTTP and the exposition format.

/// One HTTP/1.1 exchange on a fresh connection; the server closes it after replying.
fn http(port: u16, request: &[u8]) -> (String, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the reply");
    let raw = String::from_utf8(raw).expect("a UTF-8 reply");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of the reply head: {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}

/// GET /metrics: checks the status and headers and returns the parsed body.
fn scrape(port: u16) -> Scrape {
    let (status, headers, body) = http(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain;version=0.0.4\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        headers.get("content-length"),
        Some(&body.len().to_string()),
        "{headers:?}"
    );
    Scrape::parse(&body)
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, checked line by line as Prometheus's text parser would.
#[derive(Debug)]
struct Scrape {
    text: String,
    /// Family name -> TYPE.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

/// `{a="x",b="y\"z"}` after the name; returns the labels and the rest of the line.
fn parse_labels(line: &str, rest: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let Some(mut s) = rest.strip_prefix('{') else {
        return (labels, rest.to_owned());
    };
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return (labels, after.to_owned());
        }
        let (name, after) = s
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\" in {line:?}"));
        assert!(is_label_name(name), "bad label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.insert(name.to_owned(), value).is_none(),
            "label {name} twice in {line:?}"
        );
        s = &after[end + 1..];
        if let Some(more) = s.strip_prefix(',') {
            s = more;
        } else {
            assert!(s.starts_with('}'), "expected , or }} in {line:?}");
        }
    }
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        assert!(
            text.ends_with('\n'),
            "the exposition must end with a newline"
        );
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut helps = BTreeSet::new();
        let mut samples: Vec<Sample> = Vec::new();
        let mut seen_series = BTreeSet::new();
        // Families whose samples have started, and the one being written: a family's
        // samples must be contiguous.
        let mut finished: BTreeSet<String> = BTreeSet::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            assert!(!line.is_empty(), "empty line in the exposition");
            if let Some(comment) = line.strip_prefix('#') {
                let mut parts = comment.trim_start().splitn(3, ' ');
                match parts.next() {
                    Some("TYPE") => {
                        let name = parts.next().expect("TYPE names a metric");
                        let kind = parts.next().expect("TYPE gives a kind");
                        assert!(is_metric_name(name), "{line:?}");
                        assert!(
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                            "{line:?}"
                        );
                        assert!(
                            !finished.contains(name) && current.as_deref() != Some(name),
                            "TYPE after samples of {name}"
                        );
                        assert!(
                            types.insert(name.to_owned(), kind.to_owned()).is_none(),
                            "two TYPE lines for {name}"
                        );
                    }
                    Some("HELP") => {
                        let name = parts.next().expect("HELP names a metric");
                        assert!(is_metric_name(name), "{line:?}");
                        assert!(helps.insert(name.to_owned()), "two HELP lines for {name}");
                    }
                    _ => {}
                }
                continue;
            }
            let name_end = line
                .find(['{', ' '])
                .unwrap_or_else(|| panic!("no value in {line:?}"));
            let name = &line[..name_end];
            assert!(is_metric_name(name), "bad metric name in {line:?}");
            let (labels, rest) = parse_labels(line, &line[name_end..]);
            let value = rest
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
            assert!(!value.contains(' '), "extra fields in {line:?}");
            let value = parse_value(value).unwrap_or_else(|| panic!("bad value in {line:?}"));
            // The family this sample belongs to, by its TYPE.
            let family = [
                name,
                name.strip_suffix("_bucket").unwrap_or(""),
                name.strip_suffix("_sum").unwrap_or(""),
                name.strip_suffix("_count").unwrap_or(""),
            ]
            .into_iter()
            .find(|f| match types.get(*f).map(String::as_str) {
                Some("histogram") => *f != name,
                Some(_) => *f == name,
                None => false,
            })
            .unwrap_or_else(|| panic!("sample without a TYPE: {line:?}"))
            .to_owned();
            if current.as_deref() != Some(family.as_str()) {
                assert!(
                    !finished.contains(&family),
                    "samples of {family} are not together: {line:?}"
                );
                if let Some(prev) = current.replace(family.clone()) {
                    finished.insert(prev);
                }
            }
            assert!(
                seen_series.insert((name.to_owned(), labels.clone())),
                "duplicate series {line:?}"
            );
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        let scrape = Scrape {
            text: text.to_owned(),
            types,
            samples,
        };
        scrape.check_histograms();
        scrape
    }

    /// Buckets strictly increasing in `le`, counts non-decreasing, ending with `+Inf`,
    /// whose count is `_count`; `_sum` present.
    fn check_histograms(&self) {
        for (family, _) in self.types.iter().filter(|(_, k)| *k == "histogram") {
            let bucket = format!("{family}_bucket");
            let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self.samples.iter().filter(|s| s.name == bucket) {
                let mut labels = s.labels.clone();
                let le = labels
                    .remove("le")
                    .unwrap_or_else(|| panic!("{bucket} without le: {s:?}"));
                let le = parse_value(&le).unwrap_or_else(|| panic!("bad le in {s:?}"));
                series.entry(labels).or_default().push((le, s.value));
            }
            for (labels, buckets) in series {
                for w in buckets.windows(2) {
                    assert!(w[0].0 < w[1].0, "{family}{labels:?}: le not increasing");
                    assert!(
                        w[0].1 <= w[1].1,
                        "{family}{labels:?}: counts not cumulative"
                    );
                }
                let (le, inf_count) = *buckets.last().expect("a bucket");
                assert_eq!(le, f64::INFINITY, "{family}{labels:?}: no +Inf bucket");
                let count = self
                    .get(&format!("{family}_count"), &labels)
                    .unwrap_or_else(|| panic!("{family}{labels:?}: no _count"));
                assert_eq!(count, inf_count, "{family}{labels:?}: _count != +Inf");
                let sum = self
                    .get(&format!("{family}_sum"), &labels)
                    .unwrap_or_else(|| panic!("{family}{labels:?}: no _sum"));
                assert!(sum >= 0.0, "{family}{labels:?}: negative _sum");
            }
        }
    }

    fn get(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
            .map(|s| s.value)
    }

    /// The value of an unlabelled series; panics with the scrape if it is missing.
    fn value(&self, name: &str) -> f64 {
        self.labelled(name, &[])
    }

    fn labelled(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.get(name, &labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{}", self.text))
    }

    /// Every series of `name`, by its labels.
    fn series(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    }
}

/// `mntr`'s value for `key`, as a number.
fn mntr(port: u16, key: &str) -> f64 {
    let reply = four_letter(port, "mntr").expect("mntr answers");
    reply
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key} in mntr:\n{reply}"))
}

/// Scrapes until `ok` holds, or panics with the last scrape.
fn scrape_until(port: u16, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(port);
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; last scrape:\n{}",
            s.text
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------
// Clients.

/// ZooKeeper's documented provider settings, with the port this server gets.
fn metrics_config(port: u16) -> String {
    format!(
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.httpHost=127.0.0.1\n\
         metricsProvider.httpPort={port}\n\
         metricsProvider.exportJvmInfo=false\n"
    )
}

// ---------------------------------------------------------------------------------
// Scenarios.

#[test]
fn standalone_scrape_counts_what_clients_did() {
    rookery_only!();
    let metrics_port = free_port();
    // A snapshot every few Txns, so snapshottime moves too.
    let server = Server::start_with(
        Target::Rookery,
        &format!("{}snapCount=10\n", metrics_config(metrics_port)),
    );
    let rt = runtime();
    let zk = connect(&rt, &format!("127.0.0.1:{}", server.port));
    const WRITES: usize = 25;
    const READS: usize = 7;
    rt.block_on(async {
        zk.create("/m", b"0", &persistent()).await.unwrap();
        for i in 0..WRITES {
            zk.set_data("/m", i.to_string().as_bytes(), None)
                .await
                .unwrap();
        }
        for _ in 0..READS {
            zk.get_data("/m").await.unwrap();
        }
    });
    // A data watch, left set, then one that fires.
    let (_, _, _kept) = rt.block_on(zk.get_and_watch_data("/m")).unwrap();
    let other = connect(&rt, &format!("127.0.0.1:{}", server.port));
    let (_, _, fired) = rt.block_on(other.get_and_watch_data("/m")).unwrap();
    rt.block_on(zk.set_data("/m", b"last", None)).unwrap();
    rt.block_on(async { tokio::time::timeout(WAIT, fired.changed()).await })
        .expect("the watch fires");
    let (_, _, _watching) = rt.block_on(zk.get_and_watch_data("/m")).unwrap();

    // The snapshot is saved off the core thread and counted when it is joined.
    let s = scrape_until(metrics_port, "a snapshot", |s| {
        s.value("snapshottime_count") >= 1.0
    });
    println!("standalone scrape:\n{}", s.text);

    assert_eq!(
        s.labelled("zk_server_state", &[("state", "standalone")]),
        1.0
    );
    let set_data = s.labelled("rookery_request_latency_ms_count", &[("op", "setData")]);
    assert!(set_data >= (WRITES + 1) as f64, "setData count {set_data}");
    let get_data = s.labelled("rookery_request_latency_ms_count", &[("op", "getData")]);
    assert!(get_data >= (READS + 3) as f64, "getData count {get_data}");
    assert!(s.value("updatelatency_count") >= (WRITES + 2) as f64);
    assert!(s.value("readlatency_count") >= (READS + 3) as f64);
    // Every logged Txn was made durable by some fsync: the batch sizes add up to them.
    assert!(s.value("fsynctime_count") >= 1.0);
    assert!(
        s.value("sync_processor_batch_size_sum") >= (WRITES + 2) as f64,
        "{}",
        s.text
    );
    assert_eq!(s.value("zk_fsync_count"), s.value("fsynctime_count"));
    assert!(s.value("node_changed_watch_count_count") >= 1.0);
    assert!(s.value("rookery_snapshot_size_bytes_sum") > 0.0);
    assert!(s.value("zk_global_sessions") >= 2.0);
    assert!(s.value("zk_watch_count") >= 1.0);
    // A standalone server proposes and commits its own Txns as a one-voter ensemble.
    assert!(s.value("quorum_ack_latency_count") >= (WRITES + 2) as f64);
    assert!(s.value("zk_uptime") > 0.0);
    assert!(s.value("zk_last_zxid") > 0.0);

    // The gauges are mntr's rows: nothing changes between these two reads.
    let s = scrape(metrics_port);
    for key in [
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_global_sessions",
        "zk_approximate_data_size",
        "zk_watched_paths",
    ] {
        assert_eq!(s.value(key), mntr(server.port, key), "{key}");
    }
    // A scrape is not a client connection: mntr counts itself, the scrape does not.
    assert_eq!(
        s.value("zk_num_alive_connections") + 1.0,
        mntr(server.port, "zk_num_alive_connections")
    );

    // srst resets mntr's counters, never the Prometheus series.
    let packets = mntr(server.port, "zk_packets_received");
    let before = s.value("readlatency_count");
    four_letter(server.port, "srst").expect("srst");
    assert!(mntr(server.port, "zk_packets_received") < packets);
    assert!(scrape(metrics_port).value("readlatency_count") >= before);

    // Not /metrics, not GET, not HTTP.
    let (status, _, _) = http(metrics_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = http(metrics_port, b"DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(headers.get("allow").map(String::as_str), Some("GET, HEAD"));
    let (status, headers, body) = http(metrics_port, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.is_empty());
    assert!(headers["content-length"].parse::<usize>().unwrap() > 1000);
    let (status, _, _) = http(metrics_port, b"mntr\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let deadline = Instant::now() + WAIT;
    while !server.log().contains("bad metrics request") {
        assert!(
            Instant::now() < deadline,
            "no log line for the bad request:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_port_in_use_stops_the_start() {
    rookery_only!();
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let port = held.local_addr().expect("its address").port();
    let mut server = Server::configure_with(Target::Rookery, &metrics_config(port));
    let out = std::process::Command::new(rookery_tests::rookery_bin())
        .args(["serve", "--config"])
        .arg(server.config_path())
        .output()
        .expect("running rookery serve");
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "started despite the port in use:\n{stderr}"
    );
    assert!(stderr.contains("metricsProvider.httpPort"), "{stderr}");
    assert!(!server.is_running());
}

#[test]
fn leader_reports_learners_proposals_and_elections() {
    rookery_only!();
    let Some(mut c) = rookery_tests::start_cluster_if_available(ClusterOptions {
        voters: 3,
        ..ClusterOptions::default()
    }) else {
        return;
    };
    // Each server needs its own metrics port, and the harness writes one zoo.cfg text
    // for all: add a line to each file, then restart the servers one by one (which
    // also makes the last leader's election one this process timed).
    let ports: BTreeMap<usize, u16> = c.ids().map(|n| (n, free_port())).collect();
    let first_leader = c
        .leader()
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let mut order: Vec<usize> = c.ids().filter(|&n| n != first_leader).collect();
    order.push(first_leader);
    for &n in &order {
        let mut cfg = std::fs::read_to_string(c.config_path(n)).expect("zoo.cfg");
        cfg.push_str(&metrics_config(ports[&n]));
        std::fs::write(c.config_path(n), cfg).expect("zoo.cfg");
        c.restart(n);
    }
    assert!(c.wait_settled(CLUSTER_WAIT), "not settled\n{}", c.logs());
    let leader = c
        .leader()
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let followers: Vec<usize> = c.ids().filter(|&n| n != leader).collect();

    // Writes through the leader and through a follower (forwarded).
    let rt = runtime();
    let on_leader = connect(&rt, &format!("127.0.0.1:{}", c.client_port(leader)));
    let on_follower = connect(&rt, &format!("127.0.0.1:{}", c.client_port(followers[0])));
    const WRITES: usize = 30;
    rt.block_on(async {
        on_leader.create("/p", b"", &persistent()).await.unwrap();
        for i in 0..WRITES {
            on_leader
                .set_data("/p", i.to_string().as_bytes(), None)
                .await
                .unwrap();
            on_follower
                .create(&format!("/p/{i}"), b"", &persistent())
                .await
                .unwrap();
        }
    });
    let txns = (2 * WRITES + 1) as f64;

    let leader_port = ports[&leader];
    let s = scrape_until(leader_port, "both followers caught up", |s| {
        let lags = s.series("rookery_learner_lag_txns");
        lags.len() == 2 && lags.iter().all(|(_, v)| *v == 0.0)
    });
    println!("leader (server.{leader}) scrape:\n{}", s.text);

    assert_eq!(s.labelled("zk_server_state", &[("state", "leader")]), 1.0);
    let learners: BTreeSet<String> = s
        .series("rookery_learner_lag_txns")
        .into_iter()
        .filter_map(|(l, _)| l.get("learner").cloned())
        .collect();
    let expected: BTreeSet<String> = followers.iter().map(|n| n.to_string()).collect();
    assert_eq!(learners, expected);
    for f in &followers {
        let sampled = s.labelled(
            "rookery_learner_lag_sample_txns_count",
            &[("learner", &f.to_string())],
        );
        assert!(sampled >= 1.0, "learner {f} never sampled");
    }
    assert_eq!(s.value("zk_synced_followers"), 2.0);
    assert_eq!(
        s.value("zk_synced_followers"),
        mntr(c.client_port(leader), "zk_synced_followers")
    );
    assert_eq!(
        s.value("zk_znode_count"),
        mntr(c.client_port(leader), "zk_znode_count")
    );
    // Every Txn (the follower's forwarded ones too) was proposed and committed here,
    // and timed from proposal to quorum.
    assert!(s.value("proposal_count") >= txns, "{}", s.text);
    assert!(s.value("commit_count") >= txns);
    assert!(s.value("quorum_ack_latency_count") >= txns);
    assert!(s.labelled("rookery_request_latency_ms_count", &[("op", "setData")]) >= WRITES as f64);
    assert!(s.value("sync_processor_batch_size_sum") >= txns);
    // It led after an election this process timed, and brought both followers up to
    // date itself (DIFF or SNAP).
    assert!(s.value("election_time_count") >= 1.0);
    assert!(s.value("looking_count") >= 1.0);
    assert!(s.value("diff_count") + s.value("snap_count") >= 2.0);

    for &f in &followers {
        let fs = scrape_until(ports[&f], "the follower received every proposal", |s| {
            s.value("learner_proposal_received_count") >= txns
        });
        assert_eq!(
            fs.labelled("zk_server_state", &[("state", "follower")]),
            1.0
        );
        assert!(fs.value("learner_commit_received_count") >= 1.0);
        assert!(fs.value("proposal_latency_count") >= 1.0);
        assert!(fs.value("sync_processor_batch_size_sum") >= txns);
        assert!(fs.series("rookery_learner_lag_txns").is_empty());
    }
    // The follower that forwarded the creates timed them as its clients' updates.
    let fs = scrape(ports[&followers[0]]);
    let creates: f64 = fs
        .series("rookery_request_latency_ms_count")
        .iter()
        .filter(|(l, _)| {
            l.get("op")
                .is_some_and(|op| op == "create" || op == "create2")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(creates >= WRITES as f64, "{}", fs.text);
}
