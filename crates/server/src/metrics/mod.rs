//! Prometheus metrics: the instruments the core records into, the text exposition
//! format (version 0.0.4) they are written in, the HTTP endpoint that serves them
//! (`http`) and the storage wrapper that times fsyncs (`storage`).
//!
//! One source of numbers: the gauges are `mntr`'s rows (the same function answers the
//! four-letter word), and the histograms are recorded at the same places as `mntr`'s
//! latency, on the core thread, which renders the whole text for each scrape. Nothing
//! here is shared between threads, so nothing needs atomics or locks.
//!
//! Names follow ZooKeeper's where ZooKeeper has the quantity: `mntr`'s keys as `zk_*`
//! gauges, and the names of ZooKeeper's `ServerMetrics` (`fsynctime`, `readlatency`,
//! `election_time`, ...), in ZooKeeper's unit (milliseconds), but as Prometheus
//! histograms rather than ZooKeeper's summaries, so they aggregate across servers.
//! Quantities ZooKeeper does not export carry the `rookery_` prefix.
//!
//! Unlike `mntr`'s counters, nothing here is reset by `srst`: Prometheus counters and
//! histograms must only grow (ZooKeeper's Prometheus provider ignores the reset too).

pub(crate) mod http;
pub(crate) mod storage;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rookery_wire::{EventType, OpCode};

/// Request latencies and fsyncs, in milliseconds.
const LATENCY_MS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0,
];
/// Elections and snapshots, in milliseconds: from a blink to minutes.
const LONG_MS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 120000.0,
];
/// Log entries made durable by one fsync (the core takes at most 4096 commands a round).
const BATCH: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// Snapshot sizes: 1 KiB to 4 GiB in powers of four.
const BYTES: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
];
/// Transactions a learner is behind the leader.
const LAG_TXNS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 10000.0, 100000.0,
];
/// Watchers one event fires.
const WATCHERS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 10000.0,
];

/// Proposals the leader remembers for `quorum_ack_latency`; a leader that stops
/// committing steps down long before this many are outstanding.
const MAX_TIMED_PROPOSALS: usize = 1 << 16;

/// A Prometheus histogram with fixed upper bounds; `+Inf` is implicit.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; one more than `bounds` (the `+Inf` overflow).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// NaN is dropped: it would poison `_sum` forever.
    pub(crate) fn observe(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub(crate) fn observe_ms(&mut self, d: Duration) {
        self.observe(d.as_secs_f64() * 1000.0);
    }

    #[cfg(test)]
    fn count(&self) -> u64 {
        self.count
    }
}

/// Which latency series a request belongs to, as ZooKeeper splits them: a request
/// with a Txn is an update, everything else (reads, sync, ping) a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Read,
    Update,
}

/// Every histogram and counter, never reset. Owned by the core's `ServerStats`.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    /// Per opcode; `None` for an opcode ZooKeeper does not define (bounded labels).
    request_latency: BTreeMap<Option<OpCode>, Histogram>,
    read_latency: Histogram,
    update_latency: Histogram,
    fsync: Histogram,
    batch_size: Histogram,
    quorum_ack_latency: Histogram,
    proposal_latency: Histogram,
    election_time: Histogram,
    snapshot_time: Histogram,
    snapshot_size: Histogram,
    learner_lag: BTreeMap<u64, Histogram>,
    /// NodeCreated, NodeDeleted, NodeDataChanged, NodeChildrenChanged.
    watchers_fired: [Histogram; 4],
    looking_count: u64,
    proposal_count: u64,
    commit_count: u64,
    diff_count: u64,
    snap_count: u64,
    learner_proposal_received_count: u64,
    learner_commit_received_count: u64,
    /// Leader: when each outstanding proposal was made, in zxid order.
    proposed_at: VecDeque<(i64, Instant)>,
    /// Since when this server has been looking for a leader.
    looking_since: Option<Instant>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            request_latency: BTreeMap::new(),
            read_latency: Histogram::new(LATENCY_MS),
            update_latency: Histogram::new(LATENCY_MS),
            fsync: Histogram::new(LATENCY_MS),
            batch_size: Histogram::new(BATCH),
            quorum_ack_latency: Histogram::new(LATENCY_MS),
            proposal_latency: Histogram::new(LATENCY_MS),
            election_time: Histogram::new(LONG_MS),
            snapshot_time: Histogram::new(LONG_MS),
            snapshot_size: Histogram::new(BYTES),
            learner_lag: BTreeMap::new(),
            watchers_fired: std::array::from_fn(|_| Histogram::new(WATCHERS)),
            looking_count: 0,
            proposal_count: 0,
            commit_count: 0,
            diff_count: 0,
            snap_count: 0,
            learner_proposal_received_count: 0,
            learner_commit_received_count: 0,
            proposed_at: VecDeque::new(),
            looking_since: None,
        }
    }
}

impl Metrics {
    pub(crate) fn request(&mut self, op: i32, kind: RequestKind, d: Duration) {
        self.request_latency
            .entry(OpCode::from_i32(op))
            .or_insert_with(|| Histogram::new(LATENCY_MS))
            .observe_ms(d);
        match kind {
            RequestKind::Read => self.read_latency.observe_ms(d),
            RequestKind::Update => self.update_latency.observe_ms(d),
        }
    }

    /// One fsync of the log and how many entries it made durable.
    pub(crate) fn fsync(&mut self, d: Duration, entries: u64) {
        self.fsync.observe_ms(d);
        self.batch_size.observe(entries as f64);
    }

    /// Leader: a Txn was proposed at `zxid`.
    pub(crate) fn proposed(&mut self, zxid: i64, now: Instant) {
        self.proposal_count += 1;
        if self.proposed_at.len() == MAX_TIMED_PROPOSALS {
            self.proposed_at.pop_front();
        }
        self.proposed_at.push_back((zxid, now));
    }

    /// Leader: everything up to `zxid` is committed (commits come in zxid order).
    pub(crate) fn committed(&mut self, zxid: i64, now: Instant) {
        while let Some(&(z, at)) = self.proposed_at.front() {
            if z > zxid {
                break;
            }
            self.proposed_at.pop_front();
            self.commit_count += 1;
            self.quorum_ack_latency
                .observe_ms(now.saturating_duration_since(at));
        }
    }

    /// Follower: a PROPOSAL arrived `latency_ms` after the leader stamped its Txn
    /// (wall clocks, as ZooKeeper measures it; a negative skew is dropped as there).
    pub(crate) fn proposal_received(&mut self, latency_ms: i64) {
        self.learner_proposal_received_count += 1;
        if latency_ms >= 0 {
            self.proposal_latency.observe(latency_ms as f64);
        }
    }

    pub(crate) fn commit_received(&mut self) {
        self.learner_commit_received_count += 1;
    }

    /// The server started looking for a leader (at start-up, or when it lost one).
    pub(crate) fn looking(&mut self, now: Instant) {
        self.looking_count += 1;
        self.looking_since.get_or_insert(now);
        // Whatever this server proposed as leader is no longer its to time.
        self.proposed_at.clear();
    }

    /// The server serves again: the election (with discovery and sync) is over.
    pub(crate) fn serving(&mut self, now: Instant) {
        if let Some(since) = self.looking_since.take() {
            self.election_time
                .observe_ms(now.saturating_duration_since(since));
        }
    }

    /// Leader: how a learner is being brought up to date.
    pub(crate) fn learner_synced_by_diff(&mut self) {
        self.diff_count += 1;
    }

    pub(crate) fn learner_synced_by_snap(&mut self) {
        self.snap_count += 1;
    }

    pub(crate) fn learner_lag(&mut self, learner: u64, txns: u64) {
        self.learner_lag
            .entry(learner)
            .or_insert_with(|| Histogram::new(LAG_TXNS))
            .observe(txns as f64);
    }

    pub(crate) fn snapshot(&mut self, d: Duration, bytes: usize) {
        self.snapshot_time.observe_ms(d);
        self.snapshot_size.observe(bytes as f64);
    }

    /// One event fired `watchers` watches (ZooKeeper records only events that fire any).
    pub(crate) fn watches_fired(&mut self, event: EventType, watchers: usize) {
        let i = match event {
            EventType::NodeCreated => 0,
            EventType::NodeDeleted => 1,
            EventType::NodeDataChanged => 2,
            EventType::NodeChildrenChanged => 3,
            _ => return,
        };
        if watchers > 0 {
            self.watchers_fired[i].observe(watchers as f64);
        }
    }

    /// Writes every histogram and counter.
    pub(crate) fn encode(&self, out: &mut Exposition) {
        out.family(
            "rookery_request_latency_ms",
            "histogram",
            "Time from a request's arrival at this server to its reply being queued, per opcode, in ms.",
        );
        for (op, h) in &self.request_latency {
            let name = op.map_or_else(|| "unknown".to_owned(), op_label);
            out.histogram("rookery_request_latency_ms", &[("op", &name)], h);
        }
        let histograms: [(&str, &str, &Histogram); 9] = [
            (
                "readlatency",
                "ZooKeeper's readlatency: requests without a Txn (reads, sync, ping), arrival to reply, in ms.",
                &self.read_latency,
            ),
            (
                "updatelatency",
                "ZooKeeper's updatelatency: writes of this server's clients, arrival to reply (after quorum and apply), in ms.",
                &self.update_latency,
            ),
            (
                "fsynctime",
                "ZooKeeper's fsynctime: one fsync of the transaction log (group commit), in ms.",
                &self.fsync,
            ),
            (
                "sync_processor_batch_size",
                "ZooKeeper's sync_processor_batch_size: log entries made durable by one fsync (group commit size).",
                &self.batch_size,
            ),
            (
                "quorum_ack_latency",
                "ZooKeeper's quorum_ack_latency: leader, from proposing a Txn to its commit by a quorum, in ms.",
                &self.quorum_ack_latency,
            ),
            (
                "proposal_latency",
                "ZooKeeper's proposal_latency: follower, from the leader's Txn timestamp to the PROPOSAL's arrival (wall clocks), in ms.",
                &self.proposal_latency,
            ),
            (
                "election_time",
                "ZooKeeper's election_time: from looking for a leader to serving (election, discovery and sync), in ms.",
                &self.election_time,
            ),
            (
                "snapshottime",
                "ZooKeeper's snapshottime: serializing and saving one snapshot, in ms.",
                &self.snapshot_time,
            ),
            (
                "rookery_snapshot_size_bytes",
                "Size of each snapshot saved, in bytes.",
                &self.snapshot_size,
            ),
        ];
        for (name, help, h) in histograms {
            out.family(name, "histogram", help);
            out.histogram(name, &[], h);
        }
        let watch_names = [
            "node_created_watch_count",
            "node_deleted_watch_count",
            "node_changed_watch_count",
            "node_children_watch_count",
        ];
        for (name, h) in watch_names.iter().zip(&self.watchers_fired) {
            out.family(
                name,
                "histogram",
                &format!("ZooKeeper's {name}: watchers fired by one event of this type."),
            );
            out.histogram(name, &[], h);
        }
        out.family(
            "rookery_learner_lag_sample_txns",
            "histogram",
            "Leader: how many Txns each synced learner is behind, sampled every peer tick.",
        );
        for (learner, h) in &self.learner_lag {
            out.histogram(
                "rookery_learner_lag_sample_txns",
                &[("learner", &learner.to_string())],
                h,
            );
        }
        let counters: [(&str, &str, u64); 7] = [
            (
                "looking_count",
                "ZooKeeper's looking_count: times this server started looking for a leader.",
                self.looking_count,
            ),
            (
                "proposal_count",
                "ZooKeeper's proposal_count: Txns this server proposed as leader.",
                self.proposal_count,
            ),
            (
                "commit_count",
                "ZooKeeper's commit_count: Txns this server committed as leader.",
                self.commit_count,
            ),
            (
                "diff_count",
                "ZooKeeper's diff_count: learners this leader synced with a DIFF (or TRUNC).",
                self.diff_count,
            ),
            (
                "snap_count",
                "ZooKeeper's snap_count: learners this leader synced with a SNAP.",
                self.snap_count,
            ),
            (
                "learner_proposal_received_count",
                "ZooKeeper's learner_proposal_received_count: PROPOSALs received while following.",
                self.learner_proposal_received_count,
            ),
            (
                "learner_commit_received_count",
                "ZooKeeper's learner_commit_received_count: COMMITs received while following.",
                self.learner_commit_received_count,
            ),
        ];
        for (name, help, v) in counters {
            out.family(name, "counter", help);
            out.sample(name, &[], v as f64);
        }
    }
}

/// `SetData` -> `setData`: ZooKeeper's spelling of opcodes (`Request.op2String`).
fn op_label(op: OpCode) -> String {
    let name = op.name();
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A Prometheus text exposition (format 0.0.4) being written. Each family's `# HELP`
/// and `# TYPE` come once, before its samples, which the caller keeps together.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

/// What scrapers are told the body is.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// `_bucket` lines (cumulative, ending with `+Inf`), then `_sum` and `_count`.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = match h.bounds.get(i) {
                Some(b) => {
                    let mut s = String::new();
                    push_value(&mut s, *b);
                    s
                }
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, h.sum);
        let _ = write!(self.out, "\n{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Prometheus spells the special values `+Inf`, `-Inf` and `NaN`; Rust's `Display`
/// never uses an exponent, which the format accepts as it is.
fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_bounds_and_cumulative() {
        let mut h = Histogram::new(&[1.0, 5.0]);
        for v in [0.5, 1.0, 3.0, 7.0, f64::NAN] {
            h.observe(v);
        }
        let mut out = Exposition::default();
        out.family("t", "histogram", "help");
        out.histogram("t", &[("op", "a\"b")], &h);
        assert_eq!(
            out.finish(),
            "# HELP t help\n# TYPE t histogram\n\
             t_bucket{op=\"a\\\"b\",le=\"1\"} 2\n\
             t_bucket{op=\"a\\\"b\",le=\"5\"} 3\n\
             t_bucket{op=\"a\\\"b\",le=\"+Inf\"} 4\n\
             t_sum{op=\"a\\\"b\"} 11.5\n\
             t_count{op=\"a\\\"b\"} 4\n"
        );
    }

    #[test]
    fn special_values_are_spelled_as_prometheus_does() {
        let mut out = Exposition::default();
        out.sample("a", &[], f64::INFINITY);
        out.sample("b", &[], f64::NAN);
        out.sample("c", &[], 0.25);
        out.sample("d", &[], 1e21);
        assert_eq!(
            out.finish(),
            "a +Inf\nb NaN\nc 0.25\nd 1000000000000000000000\n"
        );
    }

    #[test]
    fn opcodes_are_named_as_zookeeper_spells_them() {
        assert_eq!(op_label(OpCode::SetData), "setData");
        assert_eq!(op_label(OpCode::GetChildren2), "getChildren2");
        assert_eq!(op_label(OpCode::CreateSession), "createSession");
    }

    #[test]
    fn quorum_ack_latency_times_each_proposal_until_its_commit() {
        let mut m = Metrics::default();
        let t0 = Instant::now();
        m.proposed(1, t0);
        m.proposed(2, t0);
        m.proposed(3, t0);
        m.committed(2, t0 + Duration::from_millis(4));
        assert_eq!(m.quorum_ack_latency.count(), 2);
        assert_eq!(m.commit_count, 2);
        // Losing leadership forgets the rest: a later leader's commit is not ours.
        m.looking(t0);
        m.committed(3, t0);
        assert_eq!(m.quorum_ack_latency.count(), 2);
        assert_eq!(m.proposal_count, 3);
    }

    #[test]
    fn election_time_runs_from_the_first_looking_to_serving() {
        let mut m = Metrics::default();
        let t0 = Instant::now();
        m.looking(t0);
        m.looking(t0 + Duration::from_millis(5));
        m.serving(t0 + Duration::from_millis(30));
        m.serving(t0 + Duration::from_millis(60));
        assert_eq!(m.looking_count, 2);
        assert_eq!(m.election_time.count(), 1);
        assert!((m.election_time.sum - 30.0).abs() < 1e-9);
    }
}
