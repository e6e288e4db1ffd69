//! Server-wide counters for `srvr`, `stat` and `mntr`, and the Prometheus histograms
//! recorded beside them (one place records each request, fsync and snapshot).

use std::time::Duration;

use crate::metrics::{Metrics, RequestKind};

/// Min/avg/max of a series in whole milliseconds, as ZooKeeper's ServerStats keeps
/// request latency.
#[derive(Debug, Clone, Default)]
pub(crate) struct Latency {
    count: u64,
    total_ms: u64,
    min_ms: Option<u64>,
    max_ms: u64,
}

impl Latency {
    pub(crate) fn record(&mut self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.count += 1;
        self.total_ms = self.total_ms.saturating_add(ms);
        self.min_ms = Some(self.min_ms.map_or(ms, |m| m.min(ms)));
        self.max_ms = self.max_ms.max(ms);
    }

    pub(crate) fn min(&self) -> u64 {
        self.min_ms.unwrap_or(0)
    }

    pub(crate) fn max(&self) -> u64 {
        self.max_ms
    }

    pub(crate) fn avg(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ms as f64 / self.count as f64
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ServerStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub fsync_count: u64,
    pub fsync: Latency,
    pub latency: Latency,
    /// For `/metrics`; `srst` leaves it alone (Prometheus series only grow).
    pub metrics: Metrics,
}

impl ServerStats {
    /// One fsync of the log, and how many entries it made durable.
    pub(crate) fn record_fsync(&mut self, d: Duration, entries: u64) {
        self.fsync_count += 1;
        self.fsync.record(d);
        self.metrics.fsync(d, entries);
    }

    /// A request answered `d` after it arrived.
    pub(crate) fn record_request(&mut self, op: i32, kind: RequestKind, d: Duration) {
        self.latency.record(d);
        self.metrics.request(op, kind, d);
    }

    /// `srst`: what `srvr` and `mntr` count starts again; the metrics do not.
    pub(crate) fn reset(&mut self) {
        let metrics = std::mem::take(&mut self.metrics);
        *self = ServerStats {
            metrics,
            ..ServerStats::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_tracks_min_avg_max() {
        let mut l = Latency::default();
        assert_eq!((l.min(), l.max(), l.avg()), (0, 0, 0.0));
        l.record(Duration::from_millis(4));
        l.record(Duration::from_millis(2));
        assert_eq!((l.min(), l.max(), l.avg()), (2, 4, 3.0));
    }

    #[test]
    fn srst_keeps_the_prometheus_series() {
        let mut s = ServerStats::default();
        s.record_request(4, RequestKind::Read, Duration::from_millis(2));
        s.record_fsync(Duration::from_millis(1), 3);
        s.reset();
        assert_eq!((s.fsync_count, s.latency.max()), (0, 0));
        let mut out = crate::metrics::Exposition::default();
        s.metrics.encode(&mut out);
        let text = out.finish();
        assert!(text.contains("\nreadlatency_count 1\n"), "{text}");
        assert!(text.contains("\nfsynctime_count 1\n"), "{text}");
        assert!(
            text.contains("rookery_request_latency_ms_count{op=\"getData\"} 1\n"),
            "{text}"
        );
    }
}
