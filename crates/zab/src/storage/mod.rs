//! What the consensus core persists, in ZooKeeper's terms: the transaction log, the epochs
//! and config it must never forget, and snapshots of the tree. Payloads are opaque bytes;
//! the Txn encoding belongs to the tree crate.
//!
//! Durability contract (ZooKeeper's SyncRequestProcessor): `append` only buffers; a
//! follower may ACK a proposal only after a `sync` that started after its `append` has
//! returned. Callers append a batch, then sync once (group commit).
//!
//! Layout: `mod.rs` (types, traits, retention), `mem.rs` ([`MemStorage`], models
//! written-vs-synced for the simulator), `conformance.rs` (the suite every implementation
//! must pass, behind the `conformance` feature).

mod mem;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use mem::{CrashMode, MemStorage, SyncMark};

/// ZooKeeper transaction id: `epoch << 32 | counter`.
pub type Zxid = i64;

/// ZooKeeper epoch (acceptedEpoch/currentEpoch); a `long` in ZooKeeper's files.
pub type Epoch = i64;

/// ZooKeeper's `autopurge.snapRetainCount` default, which is also its minimum.
pub const DEFAULT_SNAP_RETAIN_COUNT: usize = 3;
/// Below this ZooKeeper refuses the setting; we clamp to it.
pub const MIN_SNAP_RETAIN_COUNT: usize = 3;

/// Which kind of stored record failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    LogEntry,
    Meta,
    Snapshot,
}

/// A stored record that failed its checksum or structure check. A value, not only an
/// error, so recovery and snapshot loading can report what they skipped and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt {kind:?} {id}: {reason}")]
pub struct Corruption {
    pub kind: RecordKind,
    /// Zxid for log entries and snapshots, or a description of the key.
    pub id: String,
    pub reason: String,
}

impl Corruption {
    pub fn new(kind: RecordKind, id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
            reason: reason.into(),
        }
    }

    pub fn log_entry(zxid: Zxid, reason: impl Into<String>) -> Self {
        Self::new(RecordKind::LogEntry, format!("{zxid:#x}"), reason)
    }

    pub fn snapshot(zxid: Zxid, reason: impl Into<String>) -> Self {
        Self::new(RecordKind::Snapshot, format!("{zxid:#x}"), reason)
    }
}

/// Storage failures. Any of these should stop the node (DESIGN: "storage failure stops
/// the node"); expected outcomes such as a corrupt snapshot are returned as values.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The log is a strictly increasing sequence; a caller that breaks it has a bug.
    #[error("append of zxid {zxid:#x} out of order: last zxid is {last:#x}")]
    OutOfOrder { last: Zxid, zxid: Zxid },
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// The implementation's own error (sled, I/O), kept as the source.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One transaction in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub zxid: Zxid,
    pub payload: Vec<u8>,
}

/// What [`TxnLog::recover`] found: the log keeps the longest valid prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Entries removed because they were corrupt or followed a corrupt one.
    pub entries_cut: u64,
    /// The first bad record, if any, for the operator's log line.
    pub first_corruption: Option<Corruption>,
    /// The last valid zxid left in the log.
    pub last_zxid: Option<Zxid>,
}

/// The transaction log (ZooKeeper's FileTxnLog).
pub trait TxnLog {
    /// Buffers an entry; `zxid` must exceed [`TxnLog::last_zxid`]. Not durable until
    /// [`TxnLog::sync`] returns.
    fn append(&mut self, zxid: Zxid, payload: &[u8]) -> Result<(), StorageError>;

    /// Makes every entry appended so far durable (fsync). One call per batch.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// The highest zxid appended (synced or not), or `None` for an empty log.
    fn last_zxid(&self) -> Option<Zxid>;

    /// The lowest zxid still in the log (retention moves it up).
    fn first_zxid(&self) -> Result<Option<Zxid>, StorageError>;

    /// Hands each entry with zxid >= `zxid`, in order, to `visit` until it returns false.
    /// The payload is borrowed: a scan that only looks (for configurations at start-up,
    /// say) copies nothing. An error (a corrupt entry) may come after some visits.
    fn visit_from(
        &self,
        zxid: Zxid,
        visit: &mut dyn FnMut(Zxid, &[u8]) -> bool,
    ) -> Result<(), StorageError>;

    /// Up to `max_entries` entries with zxid >= `zxid`, in order; bounded so a DIFF to a
    /// far-behind learner can be streamed in pieces.
    fn entries_from(&self, zxid: Zxid, max_entries: usize) -> Result<Vec<LogEntry>, StorageError> {
        let mut entries = Vec::new();
        if max_entries == 0 {
            return Ok(entries);
        }
        self.visit_from(zxid, &mut |zxid, payload| {
            entries.push(LogEntry {
                zxid,
                payload: payload.to_vec(),
            });
            entries.len() < max_entries
        })?;
        Ok(entries)
    }

    /// Removes entries with zxid > `zxid` (the TRUNC a new leader orders); durable on
    /// return, since a re-appearing truncated entry could be voted on. Returns how many.
    fn truncate_after(&mut self, zxid: Zxid) -> Result<u64, StorageError>;

    /// Removes entries with zxid < `zxid` (retention), but never the last entry, so the
    /// ordering high-water mark survives. Durable with the next sync; redoing it after a
    /// crash is harmless. Returns how many.
    fn purge_before(&mut self, zxid: Zxid) -> Result<u64, StorageError>;

    /// Checks every entry's checksum and cuts the log at the first bad one (a torn tail
    /// after a crash, or a corrupt record): the log must be a gap-free prefix. Durable on
    /// return. Implementations run this when they open, so their users need not.
    fn recover(&mut self) -> Result<LogRecovery, StorageError>;
}

/// Small state that must survive restarts, mostly ZAB's epochs.
pub trait MetaStore {
    fn accepted_epoch(&self) -> Result<Option<Epoch>, StorageError>;
    /// Durable on return: a voter must persist acceptedEpoch before it ACKs NEWEPOCH.
    fn set_accepted_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError>;

    fn current_epoch(&self) -> Result<Option<Epoch>, StorageError>;
    /// Durable on return: currentEpoch is persisted before ACKing NEWLEADER.
    fn set_current_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError>;

    /// The zxid the tree has applied up to; a hint for recovery, not a promise.
    fn last_applied_zxid(&self) -> Result<Option<Zxid>, StorageError>;
    /// Durable with the next [`TxnLog::sync`]: it is written often and cheap to lose.
    fn set_last_applied_zxid(&mut self, zxid: Zxid) -> Result<(), StorageError>;

    /// Opaque membership config (later: the last committed /zookeeper/config).
    fn config(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// Durable on return.
    fn set_config(&mut self, config: &[u8]) -> Result<(), StorageError>;
}

/// A fuzzy snapshot of the tree: replay the log after `last_zxid` on top of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub last_zxid: Zxid,
    pub data: Vec<u8>,
}

/// A stored snapshot as listed, without reading its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub last_zxid: Zxid,
    pub len_bytes: u64,
}

/// The result of [`SnapshotStore::load_latest_snapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedSnapshot {
    /// The newest snapshot that passed its checks; `None` means start from an empty tree.
    pub snapshot: Option<Snapshot>,
    /// Newer snapshots that failed their checks, newest first, for the caller to log.
    pub skipped: Vec<Corruption>,
}

/// What [`SnapshotStore::retain_snapshots`] kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotRetention {
    /// Valid snapshots kept, newest first.
    pub retained: Vec<Zxid>,
    /// Snapshots deleted (older than the oldest retained one), newest first.
    pub deleted: Vec<Zxid>,
    /// Corrupt snapshots newer than the oldest retained one, left for inspection.
    pub corrupt_kept: Vec<Corruption>,
}

/// Snapshot storage (ZooKeeper's FileSnap).
///
/// Saving must not stall the log: the caller serializes the tree off the log path (the
/// slow part); `save_snapshot` then only writes bytes. Implementations whose log and
/// snapshots can be written concurrently (sled) hand out a separate snapshot handle so
/// that write and its fsync run on another thread while appends continue.
pub trait SnapshotStore {
    /// Stores a snapshot atomically (a crash leaves either all of it or none visible);
    /// durable on return. Saving the same `last_zxid` again replaces it.
    fn save_snapshot(&mut self, last_zxid: Zxid, data: &[u8]) -> Result<(), StorageError>;

    /// Every stored snapshot, oldest first, unchecked.
    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError>;

    /// Reads and checks one snapshot piece by piece, handing `piece` each one with the
    /// snapshot's whole length, so that a reader need not hold all of it (a restore
    /// builds the tree as the bytes come). Each piece is checked before it is handed
    /// over, but `Ok(Err(_))` can still come after some were: the reader then drops what
    /// it made of them. `piece` returns false to stop reading (then `Ok(Ok(()))`).
    fn read_snapshot(
        &self,
        last_zxid: Zxid,
        piece: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<Result<(), Corruption>, StorageError>;

    /// Reads and checks one snapshot whole. `Ok(Err(_))` is an expected outcome (skip
    /// it and try an older one); the outer error is a failing backend.
    fn load_snapshot(&self, last_zxid: Zxid) -> Result<Result<Snapshot, Corruption>, StorageError> {
        let mut data = Vec::new();
        let mut reserved = Ok(());
        let read = self.read_snapshot(last_zxid, &mut |len, bytes| {
            // Reserved whole, so a large snapshot is not copied as it grows. The length
            // is from disk but checked: one that cannot be reserved is a memory
            // shortage, an error rather than an abort, and not a corrupt snapshot (which
            // would be skipped for an older one).
            if data.capacity() == 0 {
                reserved = usize::try_from(len)
                    .map_err(|e| StorageError::Backend(Box::new(e)))
                    .and_then(|len| {
                        data.try_reserve_exact(len)
                            .map_err(|e| StorageError::Backend(Box::new(e)))
                    });
                if reserved.is_err() {
                    return false;
                }
            }
            data.extend_from_slice(bytes);
            true
        })?;
        reserved?;
        Ok(read.map(|()| Snapshot { last_zxid, data }))
    }

    /// Deletes one snapshot; returns whether it existed.
    fn delete_snapshot(&mut self, last_zxid: Zxid) -> Result<bool, StorageError>;

    /// The newest snapshot whose checks pass, skipping (and reporting) corrupt ones.
    fn load_latest_snapshot(&self) -> Result<LoadedSnapshot, StorageError> {
        let mut loaded = LoadedSnapshot::default();
        for info in self.list_snapshots()?.iter().rev() {
            match self.load_snapshot(info.last_zxid)? {
                Ok(snapshot) => {
                    loaded.snapshot = Some(snapshot);
                    break;
                }
                Err(corruption) => loaded.skipped.push(corruption),
            }
        }
        Ok(loaded)
    }

    /// Keeps the newest `count` valid snapshots (at least [`MIN_SNAP_RETAIN_COUNT`]) and
    /// deletes every snapshot older than the oldest of them. Only valid ones count, so a
    /// corrupt newest snapshot never costs the log an older valid one still needs.
    fn retain_snapshots(&mut self, count: usize) -> Result<SnapshotRetention, StorageError> {
        let count = count.max(MIN_SNAP_RETAIN_COUNT);
        let mut report = SnapshotRetention::default();
        for info in self.list_snapshots()?.iter().rev() {
            if report.retained.len() >= count {
                self.delete_snapshot(info.last_zxid)?;
                report.deleted.push(info.last_zxid);
                continue;
            }
            // Checked without holding it: a snapshot can be hundreds of megabytes.
            match self.read_snapshot(info.last_zxid, &mut |_, _| true)? {
                Ok(()) => report.retained.push(info.last_zxid),
                Err(corruption) => report.corrupt_kept.push(corruption),
            }
        }
        Ok(report)
    }
}

/// What [`purge`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub snapshots: SnapshotRetention,
    /// Log entries removed because no retained snapshot needs them.
    pub log_entries_purged: u64,
}

/// ZooKeeper's autopurge: keep the newest `snap_retain_count` valid snapshots and the log
/// entries from the oldest of them on (replay after a snapshot needs only later zxids).
/// With no valid snapshot the log is left whole, since it is then the only copy.
pub fn purge<S>(storage: &mut S, snap_retain_count: usize) -> Result<PurgeReport, StorageError>
where
    S: TxnLog + SnapshotStore + ?Sized,
{
    let snapshots = storage.retain_snapshots(snap_retain_count)?;
    let log_entries_purged = match snapshots.retained.last() {
        Some(&oldest) => storage.purge_before(oldest)?,
        None => 0,
    };
    Ok(PurgeReport {
        snapshots,
        log_entries_purged,
    })
}

/// CRC32 over several byte slices, as if concatenated. Every stored record carries one so
/// a torn or flipped record is detected on read.
pub fn checksum(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

/// Frames a record as `crc32(context ++ data) ++ data`. The context (usually the key)
/// binds the record to where it is stored, so a value under the wrong key also fails.
pub fn seal(context: &[u8], data: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(4 + data.len());
    record.extend_from_slice(&checksum(&[context, data]).to_be_bytes());
    record.extend_from_slice(data);
    record
}

/// Checks and strips the frame written by [`seal`]; the error says why, for a [`Corruption`].
pub fn unseal<'a>(context: &[u8], record: &'a [u8]) -> Result<&'a [u8], &'static str> {
    let (crc, data) = record
        .split_first_chunk::<4>()
        .ok_or("record shorter than its checksum")?;
    if u32::from_be_bytes(*crc) == checksum(&[context, data]) {
        Ok(data)
    } else {
        Err("checksum mismatch")
    }
}
