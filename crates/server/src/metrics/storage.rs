//! The storage the ZAB peer writes through, with each fsync timed.
//!
//! Why a wrapper: the peer (sans-IO, no clocks) decides when to sync, sometimes inside
//! a protocol step that needs durability first. Timing at the one place those syncs
//! pass through counts them all, and counting appends between two syncs gives the
//! group-commit size exactly. The round's group commit runs on the sync thread
//! (`core::flush`), which times it there and takes the append count from here
//! ([`MeteredStorage::take_appended`]). The wrapper only notes; the core collects the
//! notes after each round ([`MeteredStorage::take_syncs`]) into the same stats `mntr`
//! reads.

use std::ops::Deref;
use std::time::{Duration, Instant};

use rookery_zab::storage::{
    Corruption, Epoch, LoadedSnapshot, LogRecovery, MetaStore, SnapshotInfo, SnapshotRetention,
    SnapshotStore, StorageError, TxnLog, Zxid,
};

/// One `sync` of the log: how long it took and how many appends it made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncNote {
    pub elapsed: Duration,
    pub entries: u64,
}

/// `S` with its syncs timed; everything else passes straight through. Reads of the
/// inner storage's own methods (`size_on_disk`, `snapshot_store`) go through `Deref`;
/// there is no `DerefMut`, so no write can bypass the meter.
#[derive(Debug)]
pub(crate) struct MeteredStorage<S> {
    inner: S,
    appended: u64,
    syncs: Vec<SyncNote>,
}

impl<S> MeteredStorage<S> {
    pub(crate) fn new(inner: S) -> Self {
        MeteredStorage {
            inner,
            appended: 0,
            syncs: Vec::new(),
        }
    }

    /// Appends since the last sync, for a sync run on another thread; the count starts
    /// again.
    pub(crate) fn take_appended(&mut self) -> u64 {
        std::mem::take(&mut self.appended)
    }

    /// The syncs since the last call, oldest first.
    pub(crate) fn take_syncs(&mut self) -> Vec<SyncNote> {
        std::mem::take(&mut self.syncs)
    }
}

impl<S> Deref for MeteredStorage<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.inner
    }
}

impl<S: TxnLog> TxnLog for MeteredStorage<S> {
    fn append(&mut self, zxid: Zxid, payload: &[u8]) -> Result<(), StorageError> {
        self.inner.append(zxid, payload)?;
        self.appended += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let started = Instant::now();
        self.inner.sync()?;
        self.syncs.push(SyncNote {
            elapsed: started.elapsed(),
            entries: std::mem::take(&mut self.appended),
        });
        Ok(())
    }

    fn last_zxid(&self) -> Option<Zxid> {
        self.inner.last_zxid()
    }

    fn first_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        self.inner.first_zxid()
    }

    fn visit_from(
        &self,
        zxid: Zxid,
        visit: &mut dyn FnMut(Zxid, &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.inner.visit_from(zxid, visit)
    }

    fn truncate_after(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        self.inner.truncate_after(zxid)
    }

    fn purge_before(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        self.inner.purge_before(zxid)
    }

    fn recover(&mut self) -> Result<LogRecovery, StorageError> {
        self.inner.recover()
    }
}

impl<S: MetaStore> MetaStore for MeteredStorage<S> {
    fn accepted_epoch(&self) -> Result<Option<Epoch>, StorageError> {
        self.inner.accepted_epoch()
    }

    fn set_accepted_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError> {
        self.inner.set_accepted_epoch(epoch)
    }

    fn current_epoch(&self) -> Result<Option<Epoch>, StorageError> {
        self.inner.current_epoch()
    }

    fn set_current_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError> {
        self.inner.set_current_epoch(epoch)
    }

    fn last_applied_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        self.inner.last_applied_zxid()
    }

    fn set_last_applied_zxid(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.inner.set_last_applied_zxid(zxid)
    }

    fn config(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.config()
    }

    fn set_config(&mut self, config: &[u8]) -> Result<(), StorageError> {
        self.inner.set_config(config)
    }
}

impl<S: SnapshotStore> SnapshotStore for MeteredStorage<S> {
    fn save_snapshot(&mut self, last_zxid: Zxid, data: &[u8]) -> Result<(), StorageError> {
        self.inner.save_snapshot(last_zxid, data)
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        self.inner.list_snapshots()
    }

    fn read_snapshot(
        &self,
        last_zxid: Zxid,
        piece: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<Result<(), Corruption>, StorageError> {
        self.inner.read_snapshot(last_zxid, piece)
    }

    fn delete_snapshot(&mut self, last_zxid: Zxid) -> Result<bool, StorageError> {
        self.inner.delete_snapshot(last_zxid)
    }

    fn load_latest_snapshot(&self) -> Result<LoadedSnapshot, StorageError> {
        self.inner.load_latest_snapshot()
    }

    fn retain_snapshots(&mut self, count: usize) -> Result<SnapshotRetention, StorageError> {
        self.inner.retain_snapshots(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_zab::storage::MemStorage;

    #[test]
    fn each_sync_notes_the_appends_it_made_durable() {
        let mut s = MeteredStorage::new(MemStorage::new());
        s.append(1, b"a").unwrap();
        s.append(2, b"b").unwrap();
        s.sync().unwrap();
        s.sync().unwrap();
        s.append(3, b"c").unwrap();
        s.sync().unwrap();
        let entries: Vec<u64> = s.take_syncs().iter().map(|n| n.entries).collect();
        assert_eq!(entries, vec![2, 0, 1]);
        assert!(s.take_syncs().is_empty());
        assert_eq!(s.last_zxid(), Some(3));
    }
}
