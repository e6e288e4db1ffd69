//! OpenTelemetry traces over OTLP/gRPC from the real binary: an in-process OTLP trace
//! receiver (opentelemetry-proto's `TraceService` on tonic, on 127.0.0.1:0) is named
//! as `otel.exporter.otlp.endpoint` in zoo.cfg, a client writes and reads through the
//! `zookeeper-client` crate, and the spans that arrive are checked: one `request`
//! span per client request, carrying the session, xid, opcode and zxid, whose
//! children (same trace, `parent_span_id` the request's, inside its time) are the
//! stages `prep`, `propose`, `quorum_ack`, `apply` and `reply` for a write and
//! `apply` and `reply` for a read. Standalone, and a three-voter ensemble written
//! through its leader and through a follower (which forwards the write).
//!
//! The spans of the standalone write are printed (`--nocapture` shows them) and, when
//! `ROOKERY_DUMP_TRACE` names a file, written there.
//!
//! Rookery only: ZooKeeper has no OTLP exporter, so with `ROOKERY_TEST_TARGET=zookeeper`
//! these tests print why and pass.

use rookery_tests::zk::{connect, persistent, runtime};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use rookery_tests::{ClusterOptions, Server, Target};
use zookeeper_client::{Client, Stat};

/// Long enough for a loaded 2-core CI machine; nothing here is a timing assertion.
const WAIT: Duration = Duration::from_secs(30);

/// Exports every 100 ms instead of the SDK's 5 s, so spans arrive soon.
const FAST_EXPORT: &str = "otel.bsp.schedule.delay=100";

const WRITE_STAGES: [&str; 5] = ["prep", "propose", "quorum_ack", "apply", "reply"];
const READ_STAGES: [&str; 2] = ["apply", "reply"];
const FORWARDED_STAGES: [&str; 4] = ["forward", "quorum_ack", "apply", "reply"];

macro_rules! rookery_only {
    () => {
        if Target::from_env() == Target::ZooKeeper {
            println!("SKIPPED: ZooKeeper has no OTLP trace exporter");
            return;
        }
    };
}

// ---------------------------------------------------------------------------------
// The receiver.

/// One span as received, with the `service.name` of the resource it came under.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    start: u64,
    end: u64,
    attributes: BTreeMap<String, String>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Child of `parent`: same trace, parent span id the parent's, inside its time.
    #[track_caller]
    fn assert_child_of(&self, parent: &Got) {
        assert_eq!(
            self.trace_id, parent.trace_id,
            "{self:#?}\nnot in {parent:#?}"
        );
        assert_eq!(
            self.parent_span_id, parent.span_id,
            "{self:#?}\nnot a child of {parent:#?}"
        );
        assert!(
            parent.start <= self.start && self.end <= parent.end && self.start <= self.end,
            "{self:#?}\nnot within {parent:#?}"
        );
    }
}

fn text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

#[derive(Debug, Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .and_then(|a| a.get("service.name").cloned())
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                got.push(Got {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    start: span.start_time_unix_nano,
                    end: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                });
            }
        }
        self.spans.lock().expect("receiver lock").extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Serves OTLP/gRPC on 127.0.0.1:0 on `rt`; returns its `http://` endpoint.
    fn start(&self, rt: &tokio::runtime::Runtime) -> String {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the OTLP receiver");
        let addr: SocketAddr = listener.local_addr().expect("receiver address");
        let service = TraceServiceServer::new(self.clone());
        rt.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().expect("receiver lock").clone()
    }

    /// Waits until `found` finds what it looks for in the spans received so far.
    fn wait_for<T>(&self, what: &str, found: impl Fn(&[Got]) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let spans = self.spans();
            if let Some(t) = found(&spans) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {WAIT:?}; received:\n{}",
                dump(&spans)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `request` span of `session`'s `xid` (on the server named `span_name`,
    /// `request` or `forwarded`) and its children named `stages`, once all arrived.
    fn request_trace(
        &self,
        span_name: &str,
        session: &str,
        xid: i32,
        stages: &[&str],
    ) -> (Got, Vec<Got>) {
        let xid = xid.to_string();
        self.wait_for(
            &format!("{span_name} span of {session} xid {xid} with {stages:?}"),
            |spans| {
                let request = spans.iter().find(|s| {
                    s.name == span_name
                        && s.attr("session") == Some(session)
                        && s.attr("xid") == Some(xid.as_str())
                })?;
                let children: Vec<Got> = spans
                    .iter()
                    .filter(|s| s.parent_span_id == request.span_id)
                    .cloned()
                    .collect();
                stages
                    .iter()
                    .all(|st| children.iter().any(|c| c.name == *st))
                    .then(|| (request.clone(), children))
            },
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Name, ids, parent, duration and attributes, one span a line (children indented).
fn dump(spans: &[Got]) -> String {
    let mut out = String::new();
    for s in spans {
        let indent = if s.parent_span_id.is_empty() {
            ""
        } else {
            "  "
        };
        let attrs: Vec<String> = s
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "{indent}{name:<11} trace={trace} span={span} parent={parent} \
             start={start} duration={dur:.3}ms service={service} {attrs}",
            name = s.name,
            trace = hex(&s.trace_id),
            span = hex(&s.span_id),
            parent = if s.parent_span_id.is_empty() {
                "-".to_owned()
            } else {
                hex(&s.parent_span_id)
            },
            start = s.start,
            dur = s.end.saturating_sub(s.start) as f64 / 1e6,
            service = s.service,
            attrs = attrs.join(" "),
        );
    }
    out
}

/// Checks a request span and its children: the fields, the stages (each exactly
/// once, a child inside the request's time, in pipeline order) and no others from
/// `absent`.
#[track_caller]
fn check_request(
    request: &Got,
    children: &[Got],
    opcode: &str,
    zxid: Option<i64>,
    stages: &[&str],
    absent: &[&str],
) {
    assert_eq!(request.attr("opcode"), Some(opcode), "{request:#?}");
    assert!(
        request.parent_span_id.is_empty(),
        "a request starts its own trace: {request:#?}"
    );
    match zxid {
        Some(z) => assert_eq!(
            request.attr("zxid"),
            Some(format!("{z:#x}").as_str()),
            "{request:#?}"
        ),
        None => assert_eq!(request.attr("zxid"), None, "{request:#?}"),
    }
    let mut last_start = request.start;
    for stage in stages {
        let found: Vec<&Got> = children.iter().filter(|c| c.name == *stage).collect();
        assert_eq!(found.len(), 1, "{stage} of\n{}", dump(children));
        found[0].assert_child_of(request);
        assert!(
            found[0].start >= last_start,
            "{stage} starts before the stage ahead of it:\n{}",
            dump(children)
        );
        last_start = found[0].start;
    }
    for stage in absent {
        assert!(
            children.iter().all(|c| c.name != *stage),
            "a {stage} span under {request:#?}:\n{}",
            dump(children)
        );
    }
}

// ---------------------------------------------------------------------------------
// Clients.

fn session_of(zk: &Client) -> String {
    format!("{:#x}", zk.session_id().0)
}

/// A fresh session's first two requests: the create (xid 1) and a getData (xid 2).
/// The crate sends `create2` (the 3.5+ create that returns the Stat).
fn create_then_read(rt: &tokio::runtime::Runtime, zk: &Client, path: &str) -> Stat {
    rt.block_on(async {
        let (stat, _) = zk.create(path, b"traced", &persistent()).await.unwrap();
        let (data, _) = zk.get_data(path).await.unwrap();
        assert_eq!(data, b"traced");
        stat
    })
}

// ---------------------------------------------------------------------------------
// Tests.

#[test]
fn standalone_write_and_read_are_traced() {
    rookery_only!();
    let rt = runtime();
    let receiver = Receiver::default();
    let endpoint = receiver.start(&rt);
    let server = Server::start_with(
        Target::Rookery,
        &format!(
            "otel.exporter.otlp.endpoint={endpoint}\notel.serviceName=rookery-otel-test\n\
             {FAST_EXPORT}"
        ),
    );
    assert!(
        server
            .log()
            .contains("tracing: exporting spans over OTLP/gRPC")
            && server.log().contains(&endpoint),
        "no start-up line naming the endpoint:\n{}",
        server.log()
    );
    let zk = connect(&rt, &format!("127.0.0.1:{}", server.port));
    let session = session_of(&zk);
    let stat = create_then_read(&rt, &zk, "/traced");

    let (request, children) = receiver.request_trace("request", &session, 1, &WRITE_STAGES);
    check_request(
        &request,
        &children,
        "create2",
        Some(stat.czxid),
        &WRITE_STAGES,
        &["forward"],
    );
    assert_eq!(request.service, "rookery-otel-test", "{request:#?}");
    let mut write = vec![request.clone()];
    write.extend(children.iter().cloned());
    let dumped = dump(&write);
    println!("the spans of one write (create2 /traced):\n{dumped}");
    if let Some(path) = std::env::var_os("ROOKERY_DUMP_TRACE") {
        let head = format!(
            "# rookery-tests tests/otel.rs: the spans of one write (create2 /traced, \
             czxid {:#x}) on a standalone server,\n# as the in-process OTLP/gRPC receiver got \
             them (times in ns since the epoch).\n",
            stat.czxid
        );
        std::fs::write(&path, head + &dumped).expect("writing ROOKERY_DUMP_TRACE");
    }

    // The read: the tree is read (apply) and answered (reply); nothing is proposed.
    let (read, children) = receiver.request_trace("request", &session, 2, &READ_STAGES);
    check_request(
        &read,
        &children,
        "getData",
        None,
        &READ_STAGES,
        &["prep", "propose", "quorum_ack"],
    );
    assert_ne!(read.trace_id, request.trace_id, "one trace per request");
    drop(zk);
}

#[test]
fn ensemble_writes_through_leader_and_follower_are_traced() {
    rookery_only!();
    let rt = runtime();
    let receiver = Receiver::default();
    let endpoint = receiver.start(&rt);
    let Some(mut c) = rookery_tests::start_cluster_if_available(ClusterOptions {
        extra_config: format!("otel.exporter.otlp.endpoint={endpoint}\n{FAST_EXPORT}"),
        ..ClusterOptions::default()
    }) else {
        return;
    };
    let leader = c
        .leader()
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let follower = c.ids().find(|&n| n != leader).expect("a follower");

    // Through the leader: every stage on the server the client is connected to.
    let on_leader = connect(&rt, &format!("127.0.0.1:{}", c.client_port(leader)));
    let session = session_of(&on_leader);
    let stat = create_then_read(&rt, &on_leader, "/via-leader");
    let (request, children) = receiver.request_trace("request", &session, 1, &WRITE_STAGES);
    check_request(
        &request,
        &children,
        "create2",
        Some(stat.czxid),
        &WRITE_STAGES,
        &["forward"],
    );
    assert_eq!(request.service, "rookery", "the default service name");
    let (read, children) = receiver.request_trace("request", &session, 2, &READ_STAGES);
    check_request(
        &read,
        &children,
        "getData",
        None,
        &READ_STAGES,
        &["prep", "propose", "quorum_ack"],
    );

    // Through a follower: it forwards the write and waits for the commit
    // (quorum_ack), then applies and replies; the zxid is learnt from the commit.
    // The leader traces its side as a `forwarded` span with prep and propose.
    let on_follower = connect(&rt, &format!("127.0.0.1:{}", c.client_port(follower)));
    let session = session_of(&on_follower);
    let stat = create_then_read(&rt, &on_follower, "/via-follower");
    let (request, children) = receiver.request_trace("request", &session, 1, &FORWARDED_STAGES);
    check_request(
        &request,
        &children,
        "create2",
        Some(stat.czxid),
        &FORWARDED_STAGES,
        &["prep", "propose"],
    );
    let (forwarded, children) =
        receiver.request_trace("forwarded", &session, 1, &["prep", "propose"]);
    assert_eq!(
        forwarded.attr("zxid"),
        Some(format!("{:#x}", stat.czxid).as_str()),
        "{forwarded:#?}"
    );
    assert_eq!(forwarded.attr("opcode"), Some("create2"), "{forwarded:#?}");
    for child in &children {
        child.assert_child_of(&forwarded);
    }
    drop((on_leader, on_follower));
}

#[test]
fn without_an_endpoint_nothing_is_traced_and_clients_are_served() {
    rookery_only!();
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        println!("SKIPPED: OTEL_EXPORTER_OTLP_ENDPOINT is set in this environment");
        return;
    }
    let rt = runtime();
    let server = Server::start_with(Target::Rookery, "");
    let zk = connect(&rt, &format!("127.0.0.1:{}", server.port));
    let stat = create_then_read(&rt, &zk, "/untraced");
    assert!(stat.czxid > 0, "{stat:?}");
    let log = server.log();
    assert!(log.contains("logging"), "{log}");
    assert!(
        !log.contains("tracing:"),
        "trace export started without an endpoint:\n{log}"
    );
}
