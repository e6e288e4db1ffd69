//! Group commit on a thread of its own.
//!
//! Why: with the fsync on the core thread, each round was "prepare, append, wait for
//! the disk, apply, answer", and the core sat idle through the wait while reads and
//! the next writes queued behind it. The sync thread runs one fsync at a time; the core
//! appends, prepares and answers reads meanwhile, and acknowledges up to what the sync
//! covered when it reports back ([`Peer::begin_flush`], [`Peer::flush_done`]). What a
//! client is told is unchanged: a write is answered only once a quorum holds it
//! durably.
//!
//! [`Peer::begin_flush`]: rookery_zab::peer::Peer::begin_flush
//! [`Peer::flush_done`]: rookery_zab::peer::Peer::flush_done

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rookery_zab::peer::FlushTicket;
use rookery_zab::storage::StorageError;
use tracing::warn;

use super::{Core, CoreCmd, CoreError, CoreHandle};

/// A sync to run: the peer's ticket, and how many appends it makes durable (for the
/// group-commit histogram).
struct Job {
    ticket: FlushTicket,
    entries: u64,
}

/// What the sync thread reports back to the core, as a [`CoreCmd::Flushed`].
#[derive(Debug)]
pub(crate) struct Flushed {
    ticket: FlushTicket,
    entries: u64,
    elapsed: Duration,
    result: Result<(), StorageError>,
}

/// The core's side of the sync thread.
pub(super) struct Flusher {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    in_flight: bool,
}

impl Flusher {
    /// `sync` makes every append so far durable (the storage's fsync).
    pub(super) fn start(
        mut sync: impl FnMut() -> Result<(), StorageError> + Send + 'static,
        core: CoreHandle,
    ) -> std::io::Result<Flusher> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("rookery-sync".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let started = Instant::now();
                    let result = sync_reporting_panics(&mut sync);
                    let panicked = result.is_err();
                    let done = Flushed {
                        ticket: job.ticket,
                        entries: job.entries,
                        elapsed: started.elapsed(),
                        result,
                    };
                    if core.send(CoreCmd::Flushed(done)).is_err() || panicked {
                        return;
                    }
                }
            })?;
        Ok(Flusher {
            jobs: Some(jobs),
            thread: Some(thread),
            in_flight: false,
        })
    }

    /// Waits for the sync in flight, if any, and ends the thread.
    pub(super) fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the sync thread panicked");
            }
        }
    }
}

/// Runs `sync`, turning a panic into an error: the core waits for every report, so a
/// sync thread that died silently would leave writes hanging instead of stopping the
/// server with a reason.
fn sync_reporting_panics(
    sync: &mut impl FnMut() -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(sync)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(StorageError::Backend(
                format!("the log's sync panicked: {what}").into(),
            ))
        }
    }
}

impl Core {
    /// End of a round: makes its appends durable. With a sync thread this only starts
    /// the sync (unless one is running: its report starts the next); without one (unit
    /// tests) it syncs here.
    pub(super) fn flush_appends(&mut self) -> Result<(), CoreError> {
        if !self.peer.needs_flush() {
            return Ok(());
        }
        let Some(flusher) = &mut self.flusher else {
            self.peer.flush()?;
            return self.drive();
        };
        if flusher.in_flight {
            return Ok(());
        }
        let Some(ticket) = self.peer.begin_flush() else {
            return Ok(());
        };
        let entries = self.peer.storage_mut().take_appended();
        let sent = flusher
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job { ticket, entries }).is_ok());
        if !sent {
            return Err(CoreError::SyncThread);
        }
        flusher.in_flight = true;
        Ok(())
    }

    /// The sync thread's report: acknowledge what it made durable.
    pub(super) fn flushed(&mut self, done: Flushed) -> Result<(), CoreError> {
        if let Some(flusher) = &mut self.flusher {
            flusher.in_flight = false;
        }
        done.result?;
        self.note_fsync(done.elapsed, done.entries);
        self.peer.flush_done(done.ticket)?;
        self.drive()
    }

    /// Counts an fsync of the log (`mntr`, the histograms) and warns when it was slower
    /// than `fsync.warningthresholdms`: every write of its round waited for it. The
    /// time covers writing the round's records into sled and sled's flush.
    pub(super) fn note_fsync(&mut self, elapsed: Duration, entries: u64) {
        if elapsed > self.cfg.fsync_warning {
            // ZooKeeper's words (FileTxnLog), which operators' log alerts look for.
            warn!(
                elapsed_ms = elapsed.as_millis() as u64,
                entries,
                threshold_ms = self.cfg.fsync_warning.as_millis() as u64,
                "fsync-ing the write ahead log in SyncThread:{} took {}ms which will \
                 adversely effect operation latency. See the ZooKeeper troubleshooting guide",
                self.cfg.server_id,
                elapsed.as_millis(),
            );
        }
        self.stats.record_fsync(elapsed, entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_that_panics_is_reported_as_an_error() {
        let mut sync = || -> Result<(), StorageError> { panic!("the disk is gone") };
        let err = sync_reporting_panics(&mut sync).expect_err("a panic is an error");
        assert!(err.to_string().contains("storage backend failed"), "{err}");
        let source = std::error::Error::source(&err).expect("the panic as the source");
        assert_eq!(
            source.to_string(),
            "the log's sync panicked: the disk is gone"
        );
    }

    #[test]
    fn a_sync_that_works_or_fails_is_passed_through() {
        assert!(sync_reporting_panics(&mut || Ok(())).is_ok());
        let mut failing = || Err(StorageError::OutOfOrder { last: 2, zxid: 1 });
        assert!(matches!(
            sync_reporting_panics(&mut failing),
            Err(StorageError::OutOfOrder { last: 2, zxid: 1 })
        ));
    }
}
