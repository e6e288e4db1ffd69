//! rookery-zab's storage traits on one sled database in dataDir; the only crate that names
//! sled, so its beta on-disk format and any later swap stay here.
//!
//! Layout inside the database (all keys big-endian, so sled's byte order is zxid order):
//! - tree `log`: `zxid(8) ++ chunk(4)` -> `seal(key, chunk_count(4) ++ bytes)`;
//! - tree `meta`: name -> `seal(name, value)`;
//! - tree `snapshot_chunks`: `zxid(8) ++ chunk(4)` -> `seal(key, bytes)`;
//! - tree `snapshots`: `zxid(8)` -> `seal(key, len(8) ++ chunk_count(4) ++ crc(4))`,
//!   written after the chunks, so a snapshot without one is unfinished.
//!
//! Values are cut into chunks of at most [`CHUNK_BYTES`]: sled 0.34 moves larger values to
//! separate blob files that its flush never fsyncs.
//!
//! Durability: sled's `flush()` uses `sync_file_range` on Linux, which neither flushes the
//! drive's write cache nor file metadata (sled issues #1351, #1452), so every sync here is
//! `flush()` followed by our own `fdatasync` of sled's data file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rookery_zab::storage::{
    Corruption, Epoch, LogEntry, LogRecovery, MetaStore, RecordKind, Snapshot, SnapshotInfo,
    SnapshotStore, StorageError, TxnLog, Zxid, checksum, seal, unseal,
};

/// Largest value written to sled; below sled 0.34's blob threshold (segment/4, ~128 KiB).
pub const CHUNK_BYTES: usize = 64 * 1024;

const LOG_TREE: &str = "log";
const META_TREE: &str = "meta";
const SNAPSHOT_TREE: &str = "snapshots";
const SNAPSHOT_CHUNK_TREE: &str = "snapshot_chunks";

const ACCEPTED_EPOCH: &str = "acceptedEpoch";
const CURRENT_EPOCH: &str = "currentEpoch";
const LAST_APPLIED_ZXID: &str = "lastAppliedZxid";
const CONFIG: &str = "config";

/// Failures of sled or of the file system under it.
#[derive(Debug, thiserror::Error)]
pub enum SledStorageError {
    #[error("sled failed")]
    Sled(#[from] sled::Error),
    #[error("I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<SledStorageError> for StorageError {
    fn from(error: SledStorageError) -> Self {
        StorageError::Backend(Box::new(error))
    }
}

fn sled_err(error: sled::Error) -> StorageError {
    SledStorageError::Sled(error).into()
}

/// Makes sled's writes durable: `flush()` then a real `fdatasync` (see the crate docs).
#[derive(Debug, Clone)]
struct Durability {
    db: sled::Db,
    data_file: Arc<File>,
    data_path: PathBuf,
}

impl Durability {
    fn sync(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(sled_err)?;
        self.data_file
            .sync_data()
            .map_err(|source| SledStorageError::Io {
                path: self.data_path.clone(),
                source,
            })?;
        Ok(())
    }
}

fn zxid_bytes(zxid: Zxid) -> [u8; 8] {
    // Flipping the sign bit makes unsigned big-endian byte order match signed order.
    ((zxid as u64) ^ (1 << 63)).to_be_bytes()
}

fn chunk_key(zxid: Zxid, chunk: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&zxid_bytes(zxid));
    key[8..].copy_from_slice(&chunk.to_be_bytes());
    key
}

fn key_zxid(key: &[u8]) -> Option<Zxid> {
    let prefix: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(prefix) ^ (1 << 63)) as Zxid)
}

fn parse_chunk_key(key: &[u8]) -> Option<(Zxid, u32)> {
    if key.len() != 12 {
        return None;
    }
    let chunk: [u8; 4] = key.get(8..12)?.try_into().ok()?;
    Some((key_zxid(key)?, u32::from_be_bytes(chunk)))
}

fn describe_key(key: &[u8]) -> String {
    match key_zxid(key) {
        Some(zxid) if key.len() == 12 => format!("{zxid:#x}"),
        _ => format!("key {key:02x?}"),
    }
}

fn chunk_count(len: usize) -> Result<u32, StorageError> {
    u32::try_from(len.div_ceil(CHUNK_BYTES).max(1)).map_err(|_| {
        StorageError::Backend(format!("value of {len} bytes has too many chunks").into())
    })
}

/// A log entry being reassembled from its chunks.
struct Pending {
    zxid: Zxid,
    count: u32,
    next: u32,
    payload: Vec<u8>,
}

/// Walks the log from `from` and hands each complete, checked entry to `visit` until it
/// returns false. Returns the first bad record and the key the valid prefix ends before.
fn scan_log(
    log: &sled::Tree,
    from: Zxid,
    mut visit: impl FnMut(LogEntry) -> bool,
) -> Result<Option<(Corruption, Vec<u8>)>, StorageError> {
    let mut pending: Option<(Pending, Vec<u8>)> = None;
    for item in log.range(chunk_key(from, 0)..) {
        let (key, value) = item.map_err(sled_err)?;
        let bad = |reason: &str| Corruption::new(RecordKind::LogEntry, describe_key(&key), reason);
        let Some((zxid, chunk)) = parse_chunk_key(&key) else {
            let first = pending.map_or_else(|| key.to_vec(), |(_, k)| k);
            return Ok(Some((bad("malformed key"), first)));
        };
        let body = match unseal(&key, &value) {
            Ok(body) => body,
            Err(reason) => {
                let first = pending.map_or_else(|| key.to_vec(), |(_, k)| k);
                return Ok(Some((bad(reason), first)));
            }
        };
        let Some((count, data)) = body.split_first_chunk::<4>() else {
            let first = pending.map_or_else(|| key.to_vec(), |(_, k)| k);
            return Ok(Some((bad("chunk header missing"), first)));
        };
        let count = u32::from_be_bytes(*count);
        let (mut entry, first_key) = match pending.take() {
            Some((p, first_key)) if p.zxid == zxid => (p, first_key),
            Some((p, first_key)) => {
                let corruption = Corruption::log_entry(p.zxid, "missing chunks");
                return Ok(Some((corruption, first_key)));
            }
            None => (
                Pending {
                    zxid,
                    count,
                    next: 0,
                    payload: Vec::new(),
                },
                key.to_vec(),
            ),
        };
        if chunk != entry.next || count != entry.count {
            return Ok(Some((bad("chunks out of sequence"), first_key)));
        }
        entry.payload.extend_from_slice(data);
        entry.next += 1;
        if entry.next == entry.count {
            let done = LogEntry {
                zxid: entry.zxid,
                payload: entry.payload,
            };
            if !visit(done) {
                return Ok(None);
            }
        } else {
            pending = Some((entry, first_key));
        }
    }
    Ok(pending.map(|(p, first_key)| (Corruption::log_entry(p.zxid, "missing chunks"), first_key)))
}

/// Snapshot storage; a separate handle so a snapshot can be written on another thread
/// while the log keeps appending (sled trees are safe to write concurrently).
#[derive(Debug, Clone)]
pub struct SledSnapshots {
    manifests: sled::Tree,
    chunks: sled::Tree,
    durability: Durability,
}

impl SledSnapshots {
    fn remove_chunks(&self, last_zxid: Zxid) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.chunks.scan_prefix(zxid_bytes(last_zxid)).keys() {
            batch.remove(item.map_err(sled_err)?);
        }
        self.chunks.apply_batch(batch).map_err(sled_err)
    }

    /// Removes chunks no manifest points at: the remains of a save cut by a crash.
    fn remove_orphan_chunks(&self) -> Result<u64, StorageError> {
        let mut orphans = sled::Batch::default();
        let mut removed = 0;
        for item in self.chunks.iter().keys() {
            let key = item.map_err(sled_err)?;
            let owned = match key.get(..8) {
                Some(prefix) => self.manifests.contains_key(prefix).map_err(sled_err)?,
                None => false,
            };
            if !owned {
                orphans.remove(key);
                removed += 1;
            }
        }
        self.chunks.apply_batch(orphans).map_err(sled_err)?;
        Ok(removed)
    }
}

struct Manifest {
    len: u64,
    chunks: u32,
    crc: u32,
}

impl Manifest {
    fn decode(last_zxid: Zxid, key: &[u8], record: &[u8]) -> Result<Self, Corruption> {
        let body = unseal(key, record).map_err(|r| Corruption::snapshot(last_zxid, r))?;
        let fields: &[u8; 16] = body
            .try_into()
            .map_err(|_| Corruption::snapshot(last_zxid, "manifest is not 16 bytes"))?;
        let (len, rest) = fields.split_at(8);
        let (chunks, crc) = rest.split_at(4);
        let to_u32 = |b: &[u8]| b.try_into().map(u32::from_be_bytes);
        match (
            len.try_into().map(u64::from_be_bytes),
            to_u32(chunks),
            to_u32(crc),
        ) {
            (Ok(len), Ok(chunks), Ok(crc)) => Ok(Self { len, chunks, crc }),
            _ => Err(Corruption::snapshot(last_zxid, "manifest fields")),
        }
    }
}

impl SnapshotStore for SledSnapshots {
    fn save_snapshot(&mut self, last_zxid: Zxid, data: &[u8]) -> Result<(), StorageError> {
        let key = zxid_bytes(last_zxid);
        // Replacing: drop the old manifest first so its chunks are never read mixed.
        self.manifests.remove(key).map_err(sled_err)?;
        self.remove_chunks(last_zxid)?;
        let chunks = chunk_count(data.len())?;
        for (index, piece) in (0..chunks).zip(data.chunks(CHUNK_BYTES).chain([&[][..]])) {
            let key = chunk_key(last_zxid, index);
            self.chunks
                .insert(key, seal(&key, piece))
                .map_err(sled_err)?;
        }
        let mut manifest = Vec::with_capacity(16);
        manifest.extend_from_slice(&(data.len() as u64).to_be_bytes());
        manifest.extend_from_slice(&chunks.to_be_bytes());
        manifest.extend_from_slice(&checksum(&[data]).to_be_bytes());
        self.manifests
            .insert(key, seal(&key, &manifest))
            .map_err(sled_err)?;
        self.durability.sync()
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        let mut infos = Vec::new();
        for item in self.manifests.iter() {
            let (key, record) = item.map_err(sled_err)?;
            let Some(last_zxid) = key_zxid(&key).filter(|_| key.len() == 8) else {
                continue;
            };
            // Unchecked listing: an unreadable manifest shows with length 0 and fails to load.
            let len_bytes = Manifest::decode(last_zxid, &key, &record).map_or(0, |m| m.len);
            infos.push(SnapshotInfo {
                last_zxid,
                len_bytes,
            });
        }
        Ok(infos)
    }

    fn load_snapshot(&self, last_zxid: Zxid) -> Result<Result<Snapshot, Corruption>, StorageError> {
        let key = zxid_bytes(last_zxid);
        let Some(record) = self.manifests.get(key).map_err(sled_err)? else {
            return Ok(Err(Corruption::snapshot(last_zxid, "missing")));
        };
        let manifest = match Manifest::decode(last_zxid, &key, &record) {
            Ok(manifest) => manifest,
            Err(corruption) => return Ok(Err(corruption)),
        };
        // The length comes from disk: trust it for a capacity hint only up to a bound.
        let hint = usize::try_from(manifest.len).map_or(0, |len| len.min(64 << 20));
        let mut data = Vec::with_capacity(hint);
        let mut next = 0_u32;
        for item in self.chunks.scan_prefix(key) {
            let (chunk_key, record) = item.map_err(sled_err)?;
            if parse_chunk_key(&chunk_key).map(|(_, i)| i) != Some(next) {
                return Ok(Err(Corruption::snapshot(
                    last_zxid,
                    "chunks out of sequence",
                )));
            }
            match unseal(&chunk_key, &record) {
                Ok(piece) => data.extend_from_slice(piece),
                Err(reason) => {
                    let reason = format!("chunk {next}: {reason}");
                    return Ok(Err(Corruption::snapshot(last_zxid, reason)));
                }
            }
            next += 1;
        }
        if next != manifest.chunks || data.len() as u64 != manifest.len {
            return Ok(Err(Corruption::snapshot(last_zxid, "incomplete")));
        }
        if checksum(&[&data]) != manifest.crc {
            return Ok(Err(Corruption::snapshot(last_zxid, "checksum mismatch")));
        }
        Ok(Ok(Snapshot { last_zxid, data }))
    }

    fn delete_snapshot(&mut self, last_zxid: Zxid) -> Result<bool, StorageError> {
        let existed = self
            .manifests
            .remove(zxid_bytes(last_zxid))
            .map_err(sled_err)?
            .is_some();
        self.remove_chunks(last_zxid)?;
        Ok(existed)
    }
}

/// Keys removed per batch by [`LogPurger`]: small batches keep each one short, and
/// the pause between them lets the writer's appends and syncs in. The writer's next
/// fsync carries whatever the purge dirtied, so a big batch is a write's latency
/// spike: at 4096 keys the p99 of a saturated setData load tripled (BENCHMARKS.md).
const PURGE_BATCH: usize = 512;
/// After each batch the purge rests this many times as long as the batch took (at
/// least [`PURGE_MIN_PAUSE`]), so it uses a bounded share of the disk and the CPU
/// whatever the machine.
const PURGE_REST_FACTOR: u32 = 3;
const PURGE_MIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// See [`SledStorage::log_purger`].
#[derive(Debug, Clone)]
pub struct LogPurger {
    log: sled::Tree,
}

impl LogPurger {
    /// Removes the entries before `zxid`, which must be at most what the server has
    /// applied (entries after it may be appended or cut meanwhile). Returns how many
    /// keys went.
    pub fn purge_before(&self, zxid: Zxid) -> Result<u64, StorageError> {
        let end = chunk_key(zxid, 0);
        let mut removed = 0;
        loop {
            let started = std::time::Instant::now();
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in self.log.range(..end).keys().take(PURGE_BATCH) {
                batch.remove(item.map_err(sled_err)?);
                n += 1;
            }
            if n == 0 {
                return Ok(removed);
            }
            self.log.apply_batch(batch).map_err(sled_err)?;
            removed += n as u64;
            std::thread::sleep((started.elapsed() * PURGE_REST_FACTOR).max(PURGE_MIN_PAUSE));
        }
    }
}

/// The log, metadata and snapshots of one server, in one sled database in dataDir.
#[derive(Debug)]
pub struct SledStorage {
    log: sled::Tree,
    meta: sled::Tree,
    snapshots: SledSnapshots,
    durability: Durability,
    last_zxid: Option<Zxid>,
    recovery: LogRecovery,
    orphan_snapshot_chunks_removed: u64,
}

impl SledStorage {
    /// Opens (or creates) the database in `dir` and recovers it: a corrupt log tail is cut
    /// and unfinished snapshots are removed; see [`SledStorage::recovery`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        let db = sled::Config::new().path(dir).open().map_err(sled_err)?;
        // sled 0.34 keeps its pages in this file; it exists once open returns.
        let data_path = dir.join("db");
        let data_file = File::open(&data_path).map_err(|source| SledStorageError::Io {
            path: data_path.clone(),
            source,
        })?;
        let durability = Durability {
            db: db.clone(),
            data_file: Arc::new(data_file),
            data_path,
        };
        let tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let snapshots = SledSnapshots {
            manifests: tree(SNAPSHOT_TREE)?,
            chunks: tree(SNAPSHOT_CHUNK_TREE)?,
            durability: durability.clone(),
        };
        let mut storage = Self {
            log: tree(LOG_TREE)?,
            meta: tree(META_TREE)?,
            snapshots,
            durability,
            last_zxid: None,
            recovery: LogRecovery::default(),
            orphan_snapshot_chunks_removed: 0,
        };
        storage.orphan_snapshot_chunks_removed = storage.snapshots.remove_orphan_chunks()?;
        storage.recovery = storage.recover()?;
        // A new database directory entry must itself be durable.
        if let Ok(dir_handle) = File::open(dir) {
            dir_handle
                .sync_all()
                .map_err(|source| SledStorageError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        Ok(storage)
    }

    /// What recovery at open found, for the operator's log.
    pub fn recovery(&self) -> &LogRecovery {
        &self.recovery
    }

    /// The whole database's size on disk (log, snapshots and metadata), for status.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.durability.db.size_on_disk().map_err(sled_err)
    }

    /// Snapshot chunks removed at open because their save never finished.
    pub fn orphan_snapshot_chunks_removed(&self) -> u64 {
        self.orphan_snapshot_chunks_removed
    }

    /// A handle that drops the head of the log on another thread (after a snapshot),
    /// so a purge of hundreds of thousands of entries does not hold up appends.
    pub fn log_purger(&self) -> LogPurger {
        LogPurger {
            log: self.log.clone(),
        }
    }

    /// A snapshot handle that can be moved to another thread, so saving a snapshot does
    /// not hold up appends and syncs on this one. It keeps the database open: drop it
    /// before reopening the directory.
    pub fn snapshot_store(&self) -> SledSnapshots {
        self.snapshots.clone()
    }

    fn read_last_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        Ok(self
            .log
            .last()
            .map_err(sled_err)?
            .and_then(|(key, _)| key_zxid(&key)))
    }

    /// Removes every key in `range`; returns how many distinct entries that was.
    fn remove_entries<K, R>(&self, range: R) -> Result<u64, StorageError>
    where
        K: AsRef<[u8]>,
        R: std::ops::RangeBounds<K>,
    {
        let mut batch = sled::Batch::default();
        let mut entries = 0;
        let mut previous: Option<Vec<u8>> = None;
        for item in self.log.range(range).keys() {
            let key = item.map_err(sled_err)?;
            // A malformed key has no zxid prefix; it counts as one entry by itself.
            let prefix = key.get(..8).unwrap_or(&key).to_vec();
            if previous.as_ref() != Some(&prefix) {
                entries += 1;
                previous = Some(prefix);
            }
            batch.remove(key);
        }
        self.log.apply_batch(batch).map_err(sled_err)?;
        Ok(entries)
    }

    fn read_meta(&self, name: &'static str) -> Result<Option<Vec<u8>>, StorageError> {
        match self.meta.get(name).map_err(sled_err)? {
            None => Ok(None),
            Some(record) => unseal(name.as_bytes(), &record)
                .map(|data| Some(data.to_vec()))
                .map_err(|reason| Corruption::new(RecordKind::Meta, name, reason).into()),
        }
    }

    fn read_meta_i64(&self, name: &'static str) -> Result<Option<i64>, StorageError> {
        match self.read_meta(name)? {
            None => Ok(None),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(|b| Some(i64::from_be_bytes(b)))
                .map_err(|_| Corruption::new(RecordKind::Meta, name, "not 8 bytes").into()),
        }
    }

    fn write_meta(
        &self,
        name: &'static str,
        data: &[u8],
        durable: bool,
    ) -> Result<(), StorageError> {
        self.meta
            .insert(name, seal(name.as_bytes(), data))
            .map_err(sled_err)?;
        if durable {
            self.durability.sync()?;
        }
        Ok(())
    }
}

impl TxnLog for SledStorage {
    fn append(&mut self, zxid: Zxid, payload: &[u8]) -> Result<(), StorageError> {
        if let Some(last) = self.last_zxid
            && zxid <= last
        {
            return Err(StorageError::OutOfOrder { last, zxid });
        }
        let chunks = chunk_count(payload.len())?;
        let mut body = Vec::with_capacity(4 + payload.len().min(CHUNK_BYTES));
        let mut write = |key: [u8; 12], piece: &[u8]| {
            body.clear();
            body.extend_from_slice(&chunks.to_be_bytes());
            body.extend_from_slice(piece);
            seal(&key, &body)
        };
        if chunks == 1 {
            let key = chunk_key(zxid, 0);
            self.log
                .insert(key, write(key, payload))
                .map_err(sled_err)?;
        } else {
            // One batch, so a crash cannot leave part of an entry (recovery would cut it).
            let mut batch = sled::Batch::default();
            for (index, piece) in (0..chunks).zip(payload.chunks(CHUNK_BYTES)) {
                let key = chunk_key(zxid, index);
                batch.insert(&key, write(key, piece));
            }
            self.log.apply_batch(batch).map_err(sled_err)?;
        }
        self.last_zxid = Some(zxid);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.durability.sync()
    }

    fn last_zxid(&self) -> Option<Zxid> {
        self.last_zxid
    }

    fn first_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        Ok(self
            .log
            .first()
            .map_err(sled_err)?
            .and_then(|(key, _)| key_zxid(&key)))
    }

    fn entries_from(&self, zxid: Zxid, max_entries: usize) -> Result<Vec<LogEntry>, StorageError> {
        let mut entries = Vec::new();
        if max_entries == 0 {
            return Ok(entries);
        }
        let bad = scan_log(&self.log, zxid, |entry| {
            entries.push(entry);
            entries.len() < max_entries
        })?;
        match bad {
            Some((corruption, _)) => Err(corruption.into()),
            None => Ok(entries),
        }
    }

    fn truncate_after(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        let removed = match zxid.checked_add(1) {
            Some(next) => self.remove_entries(chunk_key(next, 0)..)?,
            None => 0,
        };
        self.durability.sync()?;
        self.last_zxid = self.read_last_zxid()?;
        Ok(removed)
    }

    fn purge_before(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        let Some(last) = self.last_zxid else {
            return Ok(0);
        };
        self.remove_entries(..chunk_key(zxid.min(last), 0))
    }

    fn recover(&mut self) -> Result<LogRecovery, StorageError> {
        let mut report = LogRecovery::default();
        if let Some((corruption, cut_key)) = scan_log(&self.log, Zxid::MIN, |_| true)? {
            report.entries_cut = self.remove_entries(cut_key.as_slice()..)?;
            self.durability.sync()?;
            report.first_corruption = Some(corruption);
        }
        self.last_zxid = self.read_last_zxid()?;
        report.last_zxid = self.last_zxid;
        Ok(report)
    }
}

impl MetaStore for SledStorage {
    fn accepted_epoch(&self) -> Result<Option<Epoch>, StorageError> {
        self.read_meta_i64(ACCEPTED_EPOCH)
    }

    fn set_accepted_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError> {
        self.write_meta(ACCEPTED_EPOCH, &epoch.to_be_bytes(), true)
    }

    fn current_epoch(&self) -> Result<Option<Epoch>, StorageError> {
        self.read_meta_i64(CURRENT_EPOCH)
    }

    fn set_current_epoch(&mut self, epoch: Epoch) -> Result<(), StorageError> {
        self.write_meta(CURRENT_EPOCH, &epoch.to_be_bytes(), true)
    }

    fn last_applied_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        self.read_meta_i64(LAST_APPLIED_ZXID)
    }

    fn set_last_applied_zxid(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.write_meta(LAST_APPLIED_ZXID, &zxid.to_be_bytes(), false)
    }

    fn config(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_meta(CONFIG)
    }

    fn set_config(&mut self, config: &[u8]) -> Result<(), StorageError> {
        self.write_meta(CONFIG, config, true)
    }
}

impl SnapshotStore for SledStorage {
    fn save_snapshot(&mut self, last_zxid: Zxid, data: &[u8]) -> Result<(), StorageError> {
        self.snapshots.save_snapshot(last_zxid, data)
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        self.snapshots.list_snapshots()
    }

    fn load_snapshot(&self, last_zxid: Zxid) -> Result<Result<Snapshot, Corruption>, StorageError> {
        self.snapshots.load_snapshot(last_zxid)
    }

    fn delete_snapshot(&mut self, last_zxid: Zxid) -> Result<bool, StorageError> {
        self.snapshots.delete_snapshot(last_zxid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_zab::storage::conformance::{self, Harness};

    #[test]
    fn the_log_purger_drops_the_head_on_another_thread_while_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SledStorage::open(dir.path()).unwrap();
        let big = vec![7u8; CHUNK_BYTES + 10];
        for z in 1..=10_000 {
            // A few multi-chunk entries, whose keys share a zxid.
            let payload: &[u8] = if z % 2_500 == 0 { &big } else { b"x" };
            s.append(z, payload).unwrap();
        }
        let purger = s.log_purger();
        let purge = std::thread::spawn(move || purger.purge_before(6_000));
        for z in 10_001..=10_100 {
            s.append(z, b"y").unwrap();
        }
        let removed = purge.join().unwrap().unwrap();
        // Keys: 5999 entries, two of them (2500 and 5000) in two chunks.
        assert_eq!(removed, 6_001);
        assert_eq!(s.first_zxid().unwrap(), Some(6_000));
        assert_eq!(s.last_zxid(), Some(10_100));
        let head = s.entries_from(0, 2).unwrap();
        assert_eq!(head[0].zxid, 6_000);
        assert_eq!(head[1].zxid, 6_001);
    }

    /// A temporary dataDir; "reopen" drops the storage and opens the directory again.
    struct SledHarness {
        dir: tempfile::TempDir,
    }

    impl SledHarness {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        /// Edits one tree with sled directly while our storage is closed.
        fn with_raw_tree(&self, name: &str, edit: impl FnOnce(&sled::Tree)) {
            let mut tries = 0;
            let db = loop {
                match sled::open(self.dir.path()) {
                    Ok(db) => break db,
                    // As in `open_retrying`: the last handle's lock may linger a moment.
                    Err(_) if tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("opening sled: {e:?}"),
                }
            };
            let tree = db.open_tree(name).unwrap();
            edit(&tree);
            db.flush().unwrap();
        }

        /// sled's flusher thread can hold the previous handle's file lock for a moment
        /// after the drop; a new process never meets that, a reopen in one does.
        fn open_retrying(&self) -> SledStorage {
            let mut tries = 0;
            loop {
                match SledStorage::open(self.dir.path()) {
                    Ok(s) => return s,
                    Err(e)
                        if tries < 100 && format!("{e:?}").contains("could not acquire lock") =>
                    {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("opening sled storage: {e:?}"),
                }
            }
        }

        fn open_with_report(&mut self) -> (SledStorage, LogRecovery) {
            let storage = self.open_retrying();
            let recovery = storage.recovery().clone();
            (storage, recovery)
        }
    }

    impl Harness for SledHarness {
        type Storage = SledStorage;

        fn open(&mut self) -> SledStorage {
            self.open_retrying()
        }

        fn reopen(&mut self, storage: SledStorage) -> (SledStorage, LogRecovery) {
            drop(storage);
            self.open_with_report()
        }

        fn corrupt_log_entry(
            &mut self,
            storage: SledStorage,
            zxid: Zxid,
        ) -> (SledStorage, LogRecovery) {
            drop(storage);
            self.with_raw_tree(LOG_TREE, |log| {
                let old = log.insert(chunk_key(zxid, 0), &b"garbage"[..]).unwrap();
                assert!(old.is_some(), "entry {zxid} was stored");
            });
            self.open_with_report()
        }

        fn corrupt_snapshot(&mut self, storage: SledStorage, last_zxid: Zxid) -> SledStorage {
            drop(storage);
            self.with_raw_tree(SNAPSHOT_CHUNK_TREE, |chunks| {
                let key = chunk_key(last_zxid, 1);
                let mut value = chunks.get(key).unwrap().unwrap().to_vec();
                let middle = value.len() / 2;
                value[middle] ^= 0x01;
                chunks.insert(key, value).unwrap();
            });
            self.open()
        }
    }

    macro_rules! conformance_tests {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                conformance::$name(&mut SledHarness::new());
            }
        )*};
    }

    conformance_tests!(
        append_in_order,
        synced_entries_survive_reopen,
        crash_keeps_synced_prefix,
        truncate_after,
        purge_before,
        meta_survives_reopen,
        snapshots_save_load_list,
        purge_retains_snapshots_and_needed_log,
        corrupt_snapshot_is_skipped,
        corrupt_log_entry_is_cut,
    );

    #[test]
    fn the_suite_lists_no_check_this_file_misses() {
        assert_eq!(conformance::checks::<SledHarness>().len(), 10);
    }

    #[test]
    fn zxid_keys_sort_like_zxids() {
        let zxids = [i64::MIN, -1, 0, 1, 0xffff_ffff, 1 << 32, i64::MAX];
        for pair in zxids.windows(2) {
            assert!(chunk_key(pair[0], u32::MAX) < chunk_key(pair[1], 0));
        }
        for zxid in zxids {
            assert_eq!(parse_chunk_key(&chunk_key(zxid, 7)), Some((zxid, 7)));
        }
    }

    #[test]
    fn a_missing_middle_chunk_is_cut_with_its_entry() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        s.append(1, b"small").unwrap();
        s.append(2, &vec![7; 3 * CHUNK_BYTES]).unwrap();
        s.append(3, b"after").unwrap();
        s.sync().unwrap();
        drop(s);
        h.with_raw_tree(LOG_TREE, |log| {
            log.remove(chunk_key(2, 1)).unwrap().unwrap();
        });
        let (s, recovery) = h.open_with_report();
        assert_eq!(recovery.entries_cut, 2);
        assert_eq!(s.last_zxid(), Some(1));
    }

    #[test]
    fn a_garbage_key_is_cut() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        for zxid in 1..=4 {
            s.append(zxid, b"x").unwrap();
        }
        s.sync().unwrap();
        drop(s);
        let mut odd_key = zxid_bytes(3).to_vec();
        odd_key.push(9);
        h.with_raw_tree(LOG_TREE, |log| {
            log.insert(odd_key, &b"whatever"[..]).unwrap();
        });
        let (s, recovery) = h.open_with_report();
        // The stray key sorts after entry 3's chunk: it and entry 4 go, 3 stays.
        assert_eq!(recovery.entries_cut, 2, "{recovery:?}");
        assert_eq!(s.last_zxid(), Some(3));
        assert_eq!(s.entries_from(0, 10).unwrap().len(), 3);
    }

    #[test]
    fn an_unfinished_snapshot_save_is_removed_at_open() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        s.save_snapshot(5, b"kept").unwrap();
        drop(s);
        h.with_raw_tree(SNAPSHOT_CHUNK_TREE, |chunks| {
            let key = chunk_key(9, 0);
            chunks.insert(key, seal(&key, b"half a snapshot")).unwrap();
        });
        let s = h.open();
        assert_eq!(s.orphan_snapshot_chunks_removed(), 1);
        let zxids: Vec<Zxid> = s
            .list_snapshots()
            .unwrap()
            .iter()
            .map(|i| i.last_zxid)
            .collect();
        assert_eq!(zxids, vec![5]);
    }

    #[test]
    fn a_snapshot_handle_saves_from_another_thread_while_the_log_appends() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        let mut snapshots = s.snapshot_store();
        let data = vec![3_u8; 4 * 1024 * 1024];
        let expected = data.clone();
        let saver = std::thread::spawn(move || snapshots.save_snapshot(1000, &data).unwrap());
        for zxid in 1..=2000 {
            s.append(zxid, b"entry").unwrap();
            if zxid % 100 == 0 {
                s.sync().unwrap();
            }
        }
        saver.join().unwrap();
        let (s, _) = h.reopen(s);
        assert_eq!(s.last_zxid(), Some(2000));
        let loaded = s.load_latest_snapshot().unwrap().snapshot.unwrap();
        assert!(loaded.data == expected);
    }
}
