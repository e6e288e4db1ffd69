//! The core's part of the test-only `ack-before-durable` bug (see `crate::inject`).

use std::time::{Duration, Instant};

use super::{Core, CoreError};
use crate::inject::LAZY_SYNC_MS;

impl Core {
    /// `ack-before-durable`: acknowledges this round's appends without syncing them
    /// (the leader counts its own vote, a follower ACKs), and applies and answers
    /// whatever that commits. Returns whether the round's sync is put off, which it is
    /// unless [`LAZY_SYNC_MS`] have passed since the last one. Without the bug: does
    /// nothing and puts nothing off.
    pub(super) fn ack_before_durable(&mut self) -> Result<bool, CoreError> {
        if !self.cfg.bugs.ack_before_durable {
            return Ok(false);
        }
        if self.peer.needs_flush() {
            self.peer.acknowledge_unsynced()?;
            self.drive()?;
        }
        if self.lazy_synced.elapsed() < Duration::from_millis(LAZY_SYNC_MS) {
            return Ok(true);
        }
        self.lazy_synced = Instant::now();
        Ok(false)
    }
}
