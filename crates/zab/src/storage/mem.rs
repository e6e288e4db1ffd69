//! In-memory storage that remembers what was written versus what was synced, so the
//! simulator can crash a node and lose exactly what a real disk might lose.

use std::collections::BTreeMap;

use super::{
    Corruption, Epoch, LogRecovery, MetaStore, RecordKind, SnapshotInfo, SnapshotStore,
    StorageError, TxnLog, Zxid, seal, unseal,
};

const ACCEPTED_EPOCH: &str = "acceptedEpoch";
const CURRENT_EPOCH: &str = "currentEpoch";
const LAST_APPLIED_ZXID: &str = "lastAppliedZxid";
const CONFIG: &str = "config";

/// How much of the unsynced log survives a crash. Any prefix of the unsynced appends may
/// reach the disk, and the last one may be torn; the simulator picks with its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Lose every entry appended after the last sync.
    DropUnsynced,
    /// Keep the first `keep` unsynced entries; if `tear_next`, the one after them survives
    /// torn (cut short), for recovery to detect and cut.
    KeepUnsynced { keep: usize, tear_next: bool },
}

/// Storage in memory. Records are stored sealed with the same checksums as on disk, so
/// corruption and recovery take the real code paths. Only the log tail and
/// `last_applied_zxid` can be lost; purges and snapshots are durable at once (allowed by
/// the traits, which promise no less).
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    /// zxid -> sealed payload; everything written, synced or not.
    log: BTreeMap<Zxid, Vec<u8>>,
    /// Entries above this were appended after the last sync. Appends are increasing and
    /// truncation syncs, so the unsynced entries are always a suffix.
    synced_through: Option<Zxid>,
    meta: BTreeMap<&'static str, Vec<u8>>,
    durable_meta: BTreeMap<&'static str, Vec<u8>>,
    /// Snapshots are durable when saved, so one map is enough.
    snapshots: BTreeMap<Zxid, Vec<u8>>,
    /// Truncations so far: a sync begun before one covers nothing after it.
    truncations: u64,
}

/// Where the log stood when a sync began on another thread ([`MemStorage::sync_mark`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMark {
    truncations: u64,
    through: Option<Zxid>,
    /// The one meta value written without a sync of its own.
    last_applied: Option<Vec<u8>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes what a sync beginning now would cover, for [`MemStorage::sync_to`].
    pub fn sync_mark(&self) -> SyncMark {
        SyncMark {
            truncations: self.truncations,
            through: self.last_zxid(),
            last_applied: self.meta.get(LAST_APPLIED_ZXID).cloned(),
        }
    }

    /// Finishes a sync begun at `mark`: what was appended up to then is durable, and
    /// nothing appended since (the least a real sync running beside appends promises).
    /// A truncation since then synced everything left of that log already.
    pub fn sync_to(&mut self, mark: SyncMark) {
        if mark.truncations == self.truncations && mark.through > self.synced_through {
            self.synced_through = mark.through;
        }
        if let Some(value) = mark.last_applied {
            self.durable_meta.insert(LAST_APPLIED_ZXID, value);
        }
    }

    /// Simulates a crash and restart: unsynced state is lost as `mode` says, then the
    /// log is recovered as an implementation does when it opens.
    pub fn crash(&mut self, mode: CrashMode) -> LogRecovery {
        let unsynced: Vec<Zxid> = match self.synced_through {
            Some(synced) => self.log.range(synced + 1..).map(|(z, _)| *z).collect(),
            None => self.log.keys().copied().collect(),
        };
        let (keep, tear_next) = match mode {
            CrashMode::DropUnsynced => (0, false),
            CrashMode::KeepUnsynced { keep, tear_next } => (keep, tear_next),
        };
        for (index, zxid) in unsynced.into_iter().enumerate() {
            if index < keep {
                continue;
            }
            if index == keep && tear_next {
                if let Some(record) = self.log.get_mut(&zxid) {
                    let torn_len = record.len() / 2;
                    record.truncate(torn_len);
                }
                continue;
            }
            self.log.remove(&zxid);
        }
        self.synced_through = self.log.keys().next_back().copied();
        self.meta = self.durable_meta.clone();
        // Cannot fail in memory: recovery only removes records.
        self.recover().unwrap_or_default()
    }

    /// Damages a stored log entry in place (flips its last byte); returns whether it
    /// existed.
    pub fn corrupt_log_entry(&mut self, zxid: Zxid) -> bool {
        self.log.get_mut(&zxid).is_some_and(|r| flip_last_byte(r))
    }

    /// Damages a stored snapshot in place; returns whether it existed.
    pub fn corrupt_snapshot(&mut self, last_zxid: Zxid) -> bool {
        self.snapshots
            .get_mut(&last_zxid)
            .is_some_and(|r| flip_last_byte(r))
    }

    fn read_meta(&self, key: &'static str) -> Result<Option<Vec<u8>>, StorageError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(record) => unseal(key.as_bytes(), record)
                .map(|data| Some(data.to_vec()))
                .map_err(|reason| Corruption::new(RecordKind::Meta, key, reason).into()),
        }
    }

    fn read_meta_i64(&self, key: &'static str) -> Result<Option<i64>, StorageError> {
        match self.read_meta(key)? {
            None => Ok(None),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(|b| Some(i64::from_be_bytes(b)))
                .map_err(|_| Corruption::new(RecordKind::Meta, key, "not 8 bytes").into()),
        }
    }

    fn write_meta(&mut self, key: &'static str, data: &[u8], durable: bool) {
        let record = seal(key.as_bytes(), data);
        if durable {
            self.durable_meta.insert(key, record.clone());
        }
        self.meta.insert(key, record);
    }
}

fn flip_last_byte(record: &mut [u8]) -> bool {
    if let Some(byte) = record.last_mut() {
        *byte ^= 0xff;
    }
    true
}

impl TxnLog for MemStorage {
    fn append(&mut self, zxid: Zxid, payload: &[u8]) -> Result<(), StorageError> {
        if let Some(last) = self.last_zxid()
            && zxid <= last
        {
            return Err(StorageError::OutOfOrder { last, zxid });
        }
        self.log.insert(zxid, seal(&zxid.to_be_bytes(), payload));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.synced_through = self.last_zxid();
        self.durable_meta = self.meta.clone();
        Ok(())
    }

    fn last_zxid(&self) -> Option<Zxid> {
        self.log.keys().next_back().copied()
    }

    fn first_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        Ok(self.log.keys().next().copied())
    }

    fn visit_from(
        &self,
        zxid: Zxid,
        visit: &mut dyn FnMut(Zxid, &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        for (&zxid, record) in self.log.range(zxid..) {
            let payload = unseal(&zxid.to_be_bytes(), record)
                .map_err(|reason| Corruption::log_entry(zxid, reason))?;
            if !visit(zxid, payload) {
                break;
            }
        }
        Ok(())
    }

    fn truncate_after(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        let removed = self.log.split_off(&zxid.saturating_add(1));
        self.truncations += 1;
        self.sync()?;
        Ok(removed.len() as u64)
    }

    fn purge_before(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        let Some(last) = self.last_zxid() else {
            return Ok(0);
        };
        let keep = self.log.split_off(&zxid.min(last));
        let purged = std::mem::replace(&mut self.log, keep);
        Ok(purged.len() as u64)
    }

    fn recover(&mut self) -> Result<LogRecovery, StorageError> {
        let first_bad = self.log.iter().find_map(|(&zxid, record)| {
            unseal(&zxid.to_be_bytes(), record).err().map(|r| (zxid, r))
        });
        let mut report = LogRecovery::default();
        if let Some((zxid, reason)) = first_bad {
            let cut = self.log.split_off(&zxid);
            report.entries_cut = cut.len() as u64;
            report.first_corruption = Some(Corruption::log_entry(zxid, reason));
            self.sync()?;
        }
        report.last_zxid = self.last_zxid();
        Ok(report)
    }
}

impl MetaStore for MemStorage {
    fn accepted_epoch(&self) -> Result<Option<Epoch>, StorageError> {
        self.read_meta_i64(ACCEPTED_EPOCH)
    }

    fn set_accepted_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError> {
        self.write_meta(ACCEPTED_EPOCH, &epoch.to_be_bytes(), true);
        Ok(())
    }

    fn current_epoch(&self) -> Result<Option<Epoch>, StorageError> {
        self.read_meta_i64(CURRENT_EPOCH)
    }

    fn set_current_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError> {
        self.write_meta(CURRENT_EPOCH, &epoch.to_be_bytes(), true);
        Ok(())
    }

    fn last_applied_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        self.read_meta_i64(LAST_APPLIED_ZXID)
    }

    fn set_last_applied_zxid(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.write_meta(LAST_APPLIED_ZXID, &zxid.to_be_bytes(), false);
        Ok(())
    }

    fn config(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_meta(CONFIG)
    }

    fn set_config(&mut self, config: &[u8]) -> Result<(), StorageError> {
        self.write_meta(CONFIG, config, true);
        Ok(())
    }
}

impl SnapshotStore for MemStorage {
    fn save_snapshot(&mut self, last_zxid: Zxid, data: &[u8]) -> Result<(), StorageError> {
        self.snapshots
            .insert(last_zxid, seal(&last_zxid.to_be_bytes(), data));
        Ok(())
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        Ok(self
            .snapshots
            .iter()
            .map(|(&last_zxid, record)| SnapshotInfo {
                last_zxid,
                len_bytes: record.len().saturating_sub(4) as u64,
            })
            .collect())
    }

    fn read_snapshot(
        &self,
        last_zxid: Zxid,
        piece: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<Result<(), Corruption>, StorageError> {
        Ok(match self.snapshots.get(&last_zxid) {
            None => Err(Corruption::snapshot(last_zxid, "missing")),
            Some(record) => unseal(&last_zxid.to_be_bytes(), record)
                .map(|data| {
                    piece(data.len() as u64, data);
                })
                .map_err(|reason| Corruption::snapshot(last_zxid, reason)),
        })
    }

    fn delete_snapshot(&mut self, last_zxid: Zxid) -> Result<bool, StorageError> {
        Ok(self.snapshots.remove(&last_zxid).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::{self, Harness, payload};

    /// One MemStorage; "reopen" is a crash in which the disk happened to keep everything.
    #[derive(Default)]
    struct MemHarness;

    const KEEP_ALL: CrashMode = CrashMode::KeepUnsynced {
        keep: usize::MAX,
        tear_next: false,
    };

    impl Harness for MemHarness {
        type Storage = MemStorage;

        fn open(&mut self) -> MemStorage {
            MemStorage::new()
        }

        fn reopen(&mut self, mut storage: MemStorage) -> (MemStorage, LogRecovery) {
            let recovery = storage.crash(KEEP_ALL);
            (storage, recovery)
        }

        fn crash(&mut self, mut storage: MemStorage) -> Option<(MemStorage, LogRecovery)> {
            let recovery = storage.crash(CrashMode::DropUnsynced);
            Some((storage, recovery))
        }

        fn corrupt_log_entry(
            &mut self,
            mut storage: MemStorage,
            zxid: Zxid,
        ) -> (MemStorage, LogRecovery) {
            assert!(storage.corrupt_log_entry(zxid));
            self.reopen(storage)
        }

        fn corrupt_snapshot(&mut self, mut storage: MemStorage, last_zxid: Zxid) -> MemStorage {
            assert!(storage.corrupt_snapshot(last_zxid));
            storage
        }
    }

    #[test]
    fn conformance_suite() {
        conformance::run_all(MemHarness::default);
    }

    fn log_zxids(s: &MemStorage) -> Vec<Zxid> {
        s.entries_from(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.zxid)
            .collect()
    }

    fn storage_with_unsynced() -> MemStorage {
        let mut s = MemStorage::new();
        for zxid in 1..=3 {
            s.append(zxid, &payload(zxid, 10)).unwrap();
        }
        s.sync().unwrap();
        for zxid in 4..=7 {
            s.append(zxid, &payload(zxid, 10)).unwrap();
        }
        s
    }

    #[test]
    fn crash_drops_exactly_the_unsynced_entries() {
        let mut s = storage_with_unsynced();
        s.set_last_applied_zxid(7).unwrap();
        let recovery = s.crash(CrashMode::DropUnsynced);
        assert_eq!(recovery.entries_cut, 0);
        assert_eq!(log_zxids(&s), vec![1, 2, 3]);
        assert_eq!(
            s.last_applied_zxid().unwrap(),
            None,
            "unsynced meta is lost"
        );
        s.append(4, b"again").unwrap();
    }

    #[test]
    fn crash_can_keep_a_prefix_and_tear_the_next_entry() {
        let mut s = storage_with_unsynced();
        let recovery = s.crash(CrashMode::KeepUnsynced {
            keep: 2,
            tear_next: true,
        });
        assert_eq!(recovery.entries_cut, 1);
        assert_eq!(
            recovery.first_corruption.map(|c| c.id),
            Some("0x6".to_string())
        );
        assert_eq!(log_zxids(&s), vec![1, 2, 3, 4, 5]);
        // What survived counts as synced now: a second crash keeps it.
        s.crash(CrashMode::DropUnsynced);
        assert_eq!(log_zxids(&s), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_synced_entry_is_never_torn() {
        let mut s = storage_with_unsynced();
        s.sync().unwrap();
        let recovery = s.crash(CrashMode::KeepUnsynced {
            keep: 0,
            tear_next: true,
        });
        assert_eq!(recovery.entries_cut, 0);
        assert_eq!(log_zxids(&s), (1..=7).collect::<Vec<_>>());
    }

    #[test]
    fn reading_a_corrupt_entry_is_an_error_not_a_panic() {
        let mut s = storage_with_unsynced();
        assert!(s.corrupt_log_entry(2));
        assert!(matches!(
            s.entries_from(0, 10),
            Err(StorageError::Corrupt(Corruption {
                kind: RecordKind::LogEntry,
                ..
            }))
        ));
        assert_eq!(s.entries_from(3, 10).unwrap().len(), 5);
    }
}
