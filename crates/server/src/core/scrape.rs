//! The core's side of `/metrics`: rendering a scrape from the same view `mntr` prints,
//! and the observations that need the core's state (peer messages, learner lag,
//! the storage's fsync notes). The consensus core reads no clock, so everything it
//! does is timed here, from the commands and outputs the core already handles.

use rookery_tree::txn::TxnHeader;
use rookery_zab::message::Message;
use rookery_zab::peer::{LearnerPhase, Role};

use super::admin::txns_between;
use super::{Core, wall_ms};
use crate::metrics::Exposition;
use crate::words::{self, MntrValue};

impl Core {
    /// The whole exposition: `mntr`'s rows as `zk_*` gauges, the leader's learners,
    /// then every histogram and counter.
    pub(super) fn metrics_text(&self) -> String {
        let mut out = Exposition::default();
        let view = self.words_view(None);
        for (key, value) in words::mntr_rows(&view) {
            let help = format!("mntr's {key}");
            out.family(key, "gauge", &help);
            match value {
                MntrValue::Int(n) => out.sample(key, &[], n as f64),
                MntrValue::Float(x) => out.sample(key, &[], x),
                MntrValue::Zxid(z) => out.sample(key, &[], z as f64),
                // Text rows become a label on a constant 1, Prometheus's "info" idiom.
                MntrValue::Text(t) => {
                    let label = if key == "zk_server_state" {
                        "state"
                    } else {
                        "version"
                    };
                    out.sample(key, &[(label, &t)], 1.0);
                }
            }
        }
        out.family(
            "rookery_learner_lag_txns",
            "gauge",
            "Leader: how many Txns each synced learner is behind now.",
        );
        for (learner, lag) in self.learner_lags() {
            out.sample(
                "rookery_learner_lag_txns",
                &[("learner", &learner.to_string())],
                lag as f64,
            );
        }
        self.stats.metrics.encode(&mut out);
        out.finish()
    }

    /// Leader: each synced learner's distance from the log's end, as the admin API's
    /// member list counts it.
    fn learner_lags(&self) -> Vec<(u64, u64)> {
        if self.cfg.standalone || self.peer.role() != Role::Leading || !self.peer.is_serving() {
            return Vec::new();
        }
        let last = self.peer.last_zxid();
        self.peer
            .learners()
            .iter()
            .filter(|l| l.phase >= LearnerPhase::Synced)
            .map(|l| (l.id.0, txns_between(l.caught_up_to(), last)))
            .collect()
    }

    /// Every peer tick on the leader.
    pub(super) fn sample_learner_lag(&mut self) {
        for (learner, lag) in self.learner_lags() {
            self.stats.metrics.learner_lag(learner, lag);
        }
    }

    /// Before the peer steps `msg`: what a following server receives.
    pub(super) fn note_peer_message(&mut self, msg: &Message) {
        if self.peer.role() != Role::Following || !self.peer.is_serving() {
            // The sync stream's proposals are history, not broadcast latency.
            return;
        }
        match msg {
            Message::Proposal { payload, .. } => {
                let stamped = payload
                    .get(..TxnHeader::WIRE_LEN)
                    .and_then(|h| TxnHeader::decode(h).ok())
                    .map(|h| h.time_ms);
                // An undecodable entry is the apply path's to report; count it only.
                let latency = stamped.map_or(-1, |t| wall_ms().saturating_sub(t));
                self.stats.metrics.proposal_received(latency);
            }
            Message::Commit { .. } => self.stats.metrics.commit_received(),
            _ => {}
        }
    }

    /// The fsyncs the storage made on this thread since the last round (the
    /// protocol's own, outside the sync thread's group commit).
    pub(super) fn record_syncs(&mut self) {
        for note in self.peer.storage_mut().take_syncs() {
            self.note_fsync(note.elapsed, note.entries);
        }
    }
}
