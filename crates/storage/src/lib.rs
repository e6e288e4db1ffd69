//! rookery-zab's storage traits on one sled database in dataDir; the only crate that names
//! sled, so its beta on-disk format and any later swap stay here.
//!
//! Layout inside the database (all keys big-endian, so sled's byte order is zxid order):
//! - the log, in segment trees `log.<16 hex digits>`: the segment's first zxid with its
//!   sign bit flipped, as in keys, so names sort like zxids. Each holds records of one or
//!   more entries, `zxid(8) ++ chunk(4)` -> `seal(key, header(4) ++ bytes)`, keyed by the
//!   record's first zxid, for zxids from the segment's first up to the next segment's
//!   first. The header is the chunk count with [`BATCH_FLAG`] set; the chunks' bytes
//!   together are `count(4)` then `zxid(8) ++ len(4) ++ payload` per entry. Without the
//!   flag (databases from before batches) a record is one entry, all bytes its payload.
//!   A record's chunks are always in one segment. A tree named `log` (databases from
//!   before segments) is read as the oldest segment;
//! - tree `meta`: name -> `seal(name, value)`;
//! - tree `snapshot_chunks`: `zxid(8) ++ chunk(4)` -> `seal(key, bytes)`;
//! - tree `snapshots`: `zxid(8)` -> `seal(key, len(8) ++ chunk_count(4) ++ crc(4))`,
//!   written after the chunks, so a snapshot without one is unfinished.
//!
//! Segments exist so retention can drop a whole tree (`drop_tree`) instead of deleting
//! keys one by one: deletes dirty pages that the writer's next fsync must carry, which
//! cost a saturated write load a fifth of its throughput.
//!
//! Values are cut into chunks of at most [`CHUNK_BYTES`]: sled 0.34 moves larger values to
//! separate blob files that its flush never fsyncs.
//!
//! Durability: sled's `flush()` uses `sync_file_range` on Linux, which neither flushes the
//! drive's write cache nor file metadata (sled issues #1351, #1452), so every sync here is
//! `flush()` followed by our own `fdatasync` of sled's data file.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rookery_zab::storage::{
    Corruption, Epoch, LogRecovery, MetaStore, RecordKind, SnapshotInfo, SnapshotStore,
    StorageError, TxnLog, Zxid, checksum, seal, unseal,
};

#[cfg(test)]
mod purge_timing;

/// Damage to stored data as a failing disk would do it, for the tests of the layers
/// above (which must not name sled).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;

    /// Flips a bit in the middle of chunk `chunk` of snapshot `last_zxid` in the data
    /// directory `dir`, which no open [`SledStorage`] may hold. Panics if there is no
    /// such chunk: a test that damages nothing would prove nothing.
    pub fn corrupt_snapshot_chunk(dir: &Path, last_zxid: Zxid, chunk: u32) {
        let chunks = open_raw(dir)
            .open_tree(SNAPSHOT_CHUNK_TREE)
            .expect("the chunk tree");
        let key = chunk_key(last_zxid, chunk);
        let mut value = chunks
            .get(key)
            .expect("reading the chunk")
            .unwrap_or_else(|| panic!("snapshot {last_zxid:#x} has no chunk {chunk}"))
            .to_vec();
        let middle = value.len() / 2;
        value[middle] ^= 0x01;
        chunks.insert(key, value).expect("writing the chunk");
        chunks.flush().expect("flushing the chunk");
    }

    /// Opens `dir` in a process that has just dropped a handle on it. sled's flusher
    /// thread can hold the old handle's file lock for a moment after the drop (a new
    /// process never meets that), so a busy lock is retried.
    pub fn open_retrying(dir: &Path, segment_entries: u64) -> SledStorage {
        let mut tries = 0;
        loop {
            match SledStorage::open_with_segment_entries(dir, segment_entries) {
                Ok(s) => return s,
                Err(e) if tries < 100 && format!("{e:?}").contains("could not acquire lock") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("opening sled storage: {e:?}"),
            }
        }
    }

    /// sled opened directly, retried as in [`open_retrying`].
    pub(crate) fn open_raw(dir: &Path) -> sled::Db {
        let mut tries = 0;
        loop {
            match sled::open(dir) {
                Ok(db) => return db,
                Err(_) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("opening sled: {e:?}"),
            }
        }
    }
}

/// Most bytes reserved for a record before its chunks are read: its chunk count is
/// read from disk, so not trusted with an allocation. A larger record (an entry near
/// jute.maxbuffer) grows as it is read.
const RESERVE_BYTES: usize = 1 << 20;

/// Largest value written to sled: log entries and snapshots are stored in chunks of
/// this size. Small because of how sled 0.34 bounds its page cache: the LRU is split
/// into 256 shards of `cache_capacity / 256` (64 KiB here), a leaf page holds up to 17
/// values, and a shard never evicts the page it has just been handed. With 64 KiB
/// chunks each shard kept one page of up to 1 MiB, so sled held up to ~100 MiB of log
/// after a bulk load of 15 KiB multis (and more after a large snapshot); with 4 KiB
/// chunks a page fits its shard and sled stays near the configured cache, for a few
/// more inserts per large entry. Readers take any chunk size: the count is stored.
pub const CHUNK_BYTES: usize = 4 * 1024;

/// Set in a log record's header when the record is a batch of entries (see the crate
/// docs). Why batches: sled's insert costs about 21k instructions whatever the value's
/// size up to a chunk, which was 45% of a write's CPU on the core thread when each entry
/// was its own record; a round's entries now share one record, written at the sync.
pub const BATCH_FLAG: u32 = 1 << 31;

/// A record of appended entries is closed once it holds this many bytes, and the next
/// entry starts another, so a reader of one entry reassembles at most this plus one
/// entry.
const RECORD_BYTES: usize = 16 * CHUNK_BYTES;

/// Entries per log segment before `append` starts a new one. The background purge drops
/// only whole segments, so it leaves up to this many entries it could have removed:
/// 10,000 is a tenth of ZooKeeper's default snapCount, a few percent more log than three
/// retained snapshots need. Smaller would mean more trees (sled keeps every tree's root in
/// one metadata page that each create and drop rewrites); bigger, longer drops: one of
/// 10,000 1 KiB entries took 10-30 ms (`purge_timing`).
pub const SEGMENT_ENTRIES: u64 = 10_000;

/// sled's page cache. Its default, 1 GiB, filled with log pages the server rarely
/// reads again: with 1M znodes loaded it held about 110 MiB of the process's RSS. The
/// log is appended at its tail, and snapshots and catch-up reads are sequential.
const SLED_CACHE_BYTES: u64 = 16 << 20;

/// The log tree of databases from before segments; read, never created.
const LEGACY_LOG_TREE: &str = "log";
const SEGMENT_PREFIX: &str = "log.";
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

/// See [`SledStorage::sync_handle`].
#[derive(Debug, Clone)]
pub struct SyncHandle {
    durability: Durability,
    unwritten: Arc<Unwritten>,
}

impl SyncHandle {
    /// Writes the entries appended so far to sled (here, so not on the appending
    /// thread unless one of its reads came first), then makes them durable.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.unwritten.write_out()?;
        self.durability.sync()
    }
}

/// Entries appended but not yet in sled, as batch records. Shared by [`SledStorage`]
/// and its [`SyncHandle`]: whoever needs them in sled (a sync, a read, a truncation)
/// writes them out first. Two locks, so an append never waits for sled: `records`
/// is held only to add an entry or take the records, and `writer` across the writing,
/// so records reach sled in order and a write-out returns only once every record
/// taken before it, by either side, is in.
#[derive(Debug, Default)]
struct Unwritten {
    records: Mutex<Records>,
    writer: Mutex<()>,
}

#[derive(Debug, Default)]
struct Records {
    /// The one appends go to.
    open: Option<Record>,
    /// Full, or of an earlier segment; oldest first.
    sealed: Vec<Record>,
}

/// A batch record being built for segment `tree`, to be written under `first`.
struct Record {
    tree: sled::Tree,
    first: Zxid,
    bytes: RecordBytes,
}

// By hand: sled's `Debug` for a tree walks all of it.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("first", &self.first)
            .field("entries", &self.bytes.entries)
            .finish_non_exhaustive()
    }
}

impl Record {
    fn write(&mut self) -> Result<(), StorageError> {
        write_record(&self.tree, self.first, self.bytes.finish())
    }
}

/// A batch record's bytes (see the crate docs) as entries are added: the one builder
/// for appends and for the halves of a split record.
#[derive(Debug)]
struct RecordBytes {
    bytes: Vec<u8>,
    entries: u32,
}

impl Default for RecordBytes {
    fn default() -> Self {
        RecordBytes {
            // The count, filled in by `finish`.
            bytes: 0_u32.to_be_bytes().to_vec(),
            entries: 0,
        }
    }
}

impl RecordBytes {
    /// Adds one entry; `len` is [`entry_len`] of `payload`, checked by the caller
    /// before it changes anything.
    fn push(&mut self, zxid: Zxid, len: u32, payload: &[u8]) {
        self.bytes.extend_from_slice(&zxid.to_be_bytes());
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(payload);
        self.entries += 1;
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The bytes with the count filled in.
    fn finish(&mut self) -> &[u8] {
        if let Some(head) = self.bytes.get_mut(..4) {
            head.copy_from_slice(&self.entries.to_be_bytes());
        }
        &self.bytes
    }

    fn into_bytes(mut self) -> Vec<u8> {
        self.finish();
        self.bytes
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change under these locks is a push, a take or a put-back: a panic cannot
    // leave one half-done. A panic while writing loses the records taken, but it also
    // fails the sync (or read) that took them, which stops the server before it
    // acknowledges anything they hold.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Unwritten {
    /// Adds an entry for segment `tree`; a record that reaches [`RECORD_BYTES`] is
    /// sealed for the next write-out.
    fn push(&self, tree: &sled::Tree, zxid: Zxid, payload: &[u8]) -> Result<(), StorageError> {
        let len = entry_len(payload)?;
        let mut records = lock(&self.records);
        let Records { open, sealed } = &mut *records;
        let record = open.get_or_insert_with(|| Record {
            tree: tree.clone(),
            first: zxid,
            bytes: RecordBytes::default(),
        });
        record.bytes.push(zxid, len, payload);
        if record.bytes.len() >= RECORD_BYTES {
            sealed.extend(open.take());
        }
        Ok(())
    }

    /// Closes the open record: the next entry goes to a new segment.
    fn seal(&self) {
        let mut records = lock(&self.records);
        let Records { open, sealed } = &mut *records;
        sealed.extend(open.take());
    }

    fn write_out(&self) -> Result<(), StorageError> {
        let _writing = lock(&self.writer);
        let taken = {
            let mut records = lock(&self.records);
            let Records { open, sealed } = &mut *records;
            let mut taken = std::mem::take(sealed);
            taken.extend(open.take());
            taken
        };
        let mut taken = taken.into_iter();
        while let Some(mut record) = taken.next() {
            if let Err(e) = record.write() {
                // Back in front, so no later write-out can report them written.
                let mut records = lock(&self.records);
                let back: Vec<Record> = std::iter::once(record).chain(taken).collect();
                records.sealed.splice(0..0, back);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Writes one batch record (its bytes as described in the crate docs) under `first`.
fn write_record(tree: &sled::Tree, first: Zxid, bytes: &[u8]) -> Result<(), StorageError> {
    if bytes.len() <= CHUNK_BYTES {
        let key = chunk_key(first, 0);
        tree.insert(key, sealed_chunk(&key, 1, bytes))
            .map_err(sled_err)?;
        return Ok(());
    }
    // One batch, so a crash cannot leave part of a record (recovery would cut it).
    let mut batch = sled::Batch::default();
    add_record(&mut batch, first, bytes)?;
    tree.apply_batch(batch).map_err(sled_err)
}

/// Adds the chunks of one batch record to `batch`.
fn add_record(batch: &mut sled::Batch, first: Zxid, bytes: &[u8]) -> Result<(), StorageError> {
    let chunks = chunk_count(bytes.len())?;
    for (index, piece) in (0..chunks).zip(bytes.chunks(CHUNK_BYTES)) {
        let key = chunk_key(first, index);
        batch.insert(&key, sealed_chunk(&key, chunks, piece));
    }
    Ok(())
}

/// `seal(key, header ++ piece)` for a chunk of a batch record of `chunks` chunks, built
/// in one buffer.
fn sealed_chunk(key: &[u8; 12], chunks: u32, piece: &[u8]) -> Vec<u8> {
    let header = (chunks | BATCH_FLAG).to_be_bytes();
    let mut value = Vec::with_capacity(8 + piece.len());
    value.extend_from_slice(&checksum(&[key, &header, piece]).to_be_bytes());
    value.extend_from_slice(&header);
    value.extend_from_slice(piece);
    value
}

/// An entry's length as a batch record stores it.
fn entry_len(payload: &[u8]) -> Result<u32, StorageError> {
    u32::try_from(payload.len()).map_err(|_| {
        StorageError::Backend(format!("entry of {} bytes is too big", payload.len()).into())
    })
}

/// An entry of a record being read, borrowed from the record's reassembled bytes, so a
/// scan copies a payload only when its caller keeps it.
#[derive(Debug, Clone, Copy)]
struct EntryRef<'a> {
    zxid: Zxid,
    payload: &'a [u8],
}

/// A batch record's bytes holding `entries`, for rewriting part of a record.
fn batch_bytes(entries: &[EntryRef<'_>]) -> Result<Vec<u8>, StorageError> {
    let mut record = RecordBytes::default();
    for entry in entries {
        record.push(entry.zxid, entry_len(entry.payload)?, entry.payload);
    }
    Ok(record.into_bytes())
}

/// The entries of a record reassembled from its chunks (`batch`: its header had
/// [`BATCH_FLAG`]), all checked before any is handed on; the error says what is wrong,
/// for a [`Corruption`].
fn decode_record(
    first: Zxid,
    batch: bool,
    bytes: &[u8],
) -> Result<Vec<EntryRef<'_>>, &'static str> {
    if !batch {
        return Ok(vec![EntryRef {
            zxid: first,
            payload: bytes,
        }]);
    }
    let (count, mut rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("batch count missing")?;
    let count = u32::from_be_bytes(*count) as usize;
    let mut entries: Vec<EntryRef<'_>> = Vec::with_capacity(count.min(1024));
    while let Some((zxid, after)) = rest.split_first_chunk::<8>() {
        let (len, after) = after
            .split_first_chunk::<4>()
            .ok_or("batch entry cut short")?;
        let len = u32::from_be_bytes(*len) as usize;
        let (payload, after) = after.split_at_checked(len).ok_or("batch entry cut short")?;
        let zxid = Zxid::from_be_bytes(*zxid);
        if entries.last().is_some_and(|e| e.zxid >= zxid) {
            return Err("batch entries out of order");
        }
        entries.push(EntryRef { zxid, payload });
        rest = after;
    }
    if !rest.is_empty() {
        return Err("batch entry cut short");
    }
    if entries.len() != count {
        return Err("batch count does not match its entries");
    }
    if entries.first().map(|e| e.zxid) != Some(first) {
        return Err("batch does not start at its key");
    }
    Ok(entries)
}

/// How many entries the record whose first chunk this is holds, for counting what a
/// removal took. Read past the checksum, so a corrupt record that recovery cuts still
/// counts what it says it held; one if even its header is gone.
fn entries_in_record(value: &[u8]) -> u64 {
    let header = value.get(4..8).and_then(|h| <[u8; 4]>::try_from(h).ok());
    let count = value.get(8..12).and_then(|c| <[u8; 4]>::try_from(c).ok());
    match (header.map(u32::from_be_bytes), count) {
        (Some(header), Some(count)) if header & BATCH_FLAG != 0 => {
            u64::from(u32::from_be_bytes(count))
        }
        _ => 1,
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

/// How many chunks a value of `len` bytes takes; below [`BATCH_FLAG`], which the same
/// header field carries.
fn chunk_count(len: usize) -> Result<u32, StorageError> {
    u32::try_from(len.div_ceil(CHUNK_BYTES).max(1))
        .ok()
        .filter(|chunks| chunks & BATCH_FLAG == 0)
        .ok_or_else(|| {
            StorageError::Backend(format!("value of {len} bytes has too many chunks").into())
        })
}

/// sled's answer for a tree that `drop_tree` removed: a segment the background purge
/// dropped while this thread read it, which then reads as empty.
fn gone(error: &sled::Error) -> bool {
    matches!(error, sled::Error::CollectionNotFound(_))
}

/// One tree of the log.
#[derive(Clone)]
struct Segment {
    /// No zxid in it is lower; [`Zxid::MIN`] for the legacy tree.
    first: Zxid,
    name: String,
    tree: sled::Tree,
    /// Entries it holds: exact for every segment but the last, whose count
    /// [`SledStorage`] keeps itself so appends need no lock (see [`SegmentList::publish`]).
    entries: u64,
}

// By hand: sled's `Debug` for a tree walks all of it.
impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

fn segment_name(first: Zxid) -> String {
    format!(
        "{SEGMENT_PREFIX}{:016x}",
        u64::from_be_bytes(zxid_bytes(first))
    )
}

/// The first zxid a tree name stands for, if it is a log tree's name.
fn parse_segment_name(name: &[u8]) -> Option<Zxid> {
    if name == LEGACY_LOG_TREE.as_bytes() {
        return Some(Zxid::MIN);
    }
    let hex = name.strip_prefix(SEGMENT_PREFIX.as_bytes())?;
    // Exactly what `segment_name` writes, so one zxid has one name.
    if hex.len() != 16 || !hex.iter().all(|&b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bits = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    Some((bits ^ (1 << 63)) as Zxid)
}

/// The log's segments, oldest first, shared by [`SledStorage`] and its [`LogPurger`]s.
/// Only the storage's thread adds segments (at the end); either side removes some, and
/// whoever takes a segment out of the list drops its tree. The lock is never held
/// across sled I/O.
#[derive(Debug, Default)]
struct SegmentList(Mutex<Vec<Segment>>);

impl SegmentList {
    fn lock(&self) -> MutexGuard<'_, Vec<Segment>> {
        // Each change under the lock is one Vec call or field store: a panic cannot
        // leave the list half-changed.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn all(&self) -> Vec<Segment> {
        self.lock().clone()
    }

    /// The segments that can hold zxids >= `zxid`.
    fn from(&self, zxid: Zxid) -> Vec<Segment> {
        let list = self.lock();
        let start = list.partition_point(|s| s.first <= zxid).saturating_sub(1);
        list.get(start..).map_or_else(Vec::new, <[Segment]>::to_vec)
    }

    fn last(&self) -> Option<Segment> {
        self.lock().last().cloned()
    }

    /// Records the last segment's entry count, which only the storage's thread tracks.
    fn publish(&self, last_entries: u64) {
        if let Some(last) = self.lock().last_mut() {
            last.entries = last_entries;
        }
    }

    /// Adds a new last segment; the one before holds `last_entries`.
    fn push(&self, last_entries: u64, segment: Segment) {
        let mut list = self.lock();
        if let Some(last) = list.last_mut() {
            last.entries = last_entries;
        }
        list.push(segment);
    }

    fn set_entries(&self, name: &str, entries: u64) {
        if let Some(segment) = self.lock().iter_mut().find(|s| s.name == name) {
            segment.entries = entries;
        }
    }

    /// Takes `name` out of the list; false if someone else already did.
    fn take(&self, name: &str) -> bool {
        let mut list = self.lock();
        let before = list.len();
        list.retain(|s| s.name != name);
        list.len() != before
    }

    /// Takes out the oldest segments whose entries are all below `zxid` (the next
    /// segment starts at or before it), never the last one, which appends go to.
    fn take_before(&self, zxid: Zxid) -> Vec<Segment> {
        let mut list = self.lock();
        let n = list.windows(2).take_while(|w| w[1].first <= zxid).count();
        list.drain(..n).collect()
    }

    /// Puts back segments taken by [`SegmentList::take_before`] but not dropped.
    fn put_back(&self, segments: Vec<Segment>) {
        let mut list = self.lock();
        list.splice(0..0, segments);
    }
}

/// A log record being reassembled from its chunks.
struct Pending {
    zxid: Zxid,
    /// The header as stored: chunk count and [`BATCH_FLAG`].
    header: u32,
    next: u32,
    bytes: Vec<u8>,
}

/// Where a scan found the valid prefix of the log to end: before `key` in the scanned
/// segment at index `segment`.
struct Cut {
    corruption: Corruption,
    segment: usize,
    key: Vec<u8>,
}

enum SegmentScan {
    /// The segment is done; go on to the next one.
    Next,
    /// `visit` asked to stop.
    Stop,
    /// A bad record, and the key the valid prefix ends before.
    Bad(Corruption, Vec<u8>),
}

/// Walks `segments` from `from` and hands each complete, checked entry (with the index of
/// its segment) to `visit` until it returns false. Entries must ascend across segments
/// too. Returns where the valid prefix ends, if something is bad.
fn scan_log(
    segments: &[Segment],
    from: Zxid,
    mut visit: impl FnMut(usize, EntryRef<'_>) -> bool,
) -> Result<Option<Cut>, StorageError> {
    let mut previous = None;
    for (index, segment) in segments.iter().enumerate() {
        let visit = |entry: EntryRef<'_>| visit(index, entry);
        match scan_segment(&segment.tree, from, &mut previous, visit)? {
            SegmentScan::Next => {}
            SegmentScan::Stop => return Ok(None),
            SegmentScan::Bad(corruption, key) => {
                return Ok(Some(Cut {
                    corruption,
                    segment: index,
                    key,
                }));
            }
        }
    }
    Ok(None)
}

/// The key of the first chunk of the record that holds `zxid`, if that record is in
/// `tree`: the last record starting at or before it (a later one starts past it).
fn record_start(tree: &sled::Tree, zxid: Zxid) -> sled::Result<[u8; 12]> {
    let before = tree.get_lt(chunk_key(zxid, 0))?;
    Ok(
        match before.as_ref().and_then(|(key, _)| parse_chunk_key(key)) {
            Some((first, _)) => chunk_key(first, 0),
            None => chunk_key(zxid, 0),
        },
    )
}

/// [`scan_log`] over one tree; `previous` is the last zxid visited, in any segment.
fn scan_segment(
    tree: &sled::Tree,
    from: Zxid,
    previous: &mut Option<Zxid>,
    mut visit: impl FnMut(EntryRef<'_>) -> bool,
) -> Result<SegmentScan, StorageError> {
    let start = match record_start(tree, from) {
        Ok(start) => start,
        Err(e) if gone(&e) => return Ok(SegmentScan::Next),
        Err(e) => return Err(sled_err(e)),
    };
    let mut out_of_order = None;
    let scan = scan_records(tree, &start, |first_key, entries| {
        for &entry in entries {
            // Only an earlier record or segment can hold a higher zxid: they overlap.
            if previous.is_some_and(|p| entry.zxid <= p) {
                let reason = "out of order across log segments";
                out_of_order = Some((Corruption::log_entry(entry.zxid, reason), first_key));
                return false;
            }
            *previous = Some(entry.zxid);
            if entry.zxid >= from && !visit(entry) {
                return false;
            }
        }
        true
    })?;
    Ok(match out_of_order {
        Some((corruption, key)) => SegmentScan::Bad(corruption, key),
        None => scan,
    })
}

/// Reassembles the records of `tree` from the key `start` on and hands each one's
/// entries, with its first key, to `visit` until it returns false.
fn scan_records(
    tree: &sled::Tree,
    start: &[u8],
    mut visit: impl FnMut(Vec<u8>, &[EntryRef<'_>]) -> bool,
) -> Result<SegmentScan, StorageError> {
    let mut pending: Option<(Pending, Vec<u8>)> = None;
    for item in tree.range(start..) {
        let (key, value) = match item {
            Ok(item) => item,
            // Dropped by the background purge meanwhile: its entries are gone.
            Err(e) if gone(&e) => return Ok(SegmentScan::Next),
            Err(e) => return Err(sled_err(e)),
        };
        let bad = |reason: &str| Corruption::new(RecordKind::LogEntry, describe_key(&key), reason);
        let cut_at =
            |pending: Option<(Pending, Vec<u8>)>| pending.map_or_else(|| key.to_vec(), |(_, k)| k);
        let Some((zxid, chunk)) = parse_chunk_key(&key) else {
            return Ok(SegmentScan::Bad(bad("malformed key"), cut_at(pending)));
        };
        let body = match unseal(&key, &value) {
            Ok(body) => body,
            Err(reason) => return Ok(SegmentScan::Bad(bad(reason), cut_at(pending))),
        };
        let Some((header, data)) = body.split_first_chunk::<4>() else {
            return Ok(SegmentScan::Bad(
                bad("chunk header missing"),
                cut_at(pending),
            ));
        };
        let header = u32::from_be_bytes(*header);
        let (mut record, first_key) = match pending.take() {
            Some((p, first_key)) if p.zxid == zxid => (p, first_key),
            Some((p, first_key)) => {
                let corruption = Corruption::log_entry(p.zxid, "missing chunks");
                return Ok(SegmentScan::Bad(corruption, first_key));
            }
            None => (
                Pending {
                    zxid,
                    header,
                    next: 0,
                    // Room for the record, so reassembly copies each byte once: every
                    // chunk but the last is as long as the first (exact for one chunk);
                    // bounded, as the count is read from disk.
                    bytes: Vec::with_capacity(
                        ((header & !BATCH_FLAG) as usize)
                            .saturating_mul(data.len())
                            .min(RESERVE_BYTES),
                    ),
                },
                key.to_vec(),
            ),
        };
        if chunk != record.next || header != record.header {
            return Ok(SegmentScan::Bad(bad("chunks out of sequence"), first_key));
        }
        record.bytes.extend_from_slice(data);
        record.next += 1;
        if record.next == record.header & !BATCH_FLAG {
            let batch = record.header & BATCH_FLAG != 0;
            let entries = match decode_record(record.zxid, batch, &record.bytes) {
                Ok(entries) => entries,
                Err(reason) => {
                    let corruption = Corruption::log_entry(record.zxid, reason);
                    return Ok(SegmentScan::Bad(corruption, first_key));
                }
            };
            if !visit(first_key, &entries) {
                return Ok(SegmentScan::Stop);
            }
        } else {
            pending = Some((record, first_key));
        }
    }
    // A record's chunks never span segments: the rest of this one is not coming.
    Ok(match pending {
        Some((p, first_key)) => {
            SegmentScan::Bad(Corruption::log_entry(p.zxid, "missing chunks"), first_key)
        }
        None => SegmentScan::Next,
    })
}

/// Rewrites the record of `tree` that holds entries both below `at` and from it on as
/// two records split there, in one batch, so that removing the keys from (or before)
/// `chunk_key(at, 0)` removes exactly the entries on that side. A record there that
/// does not read back is an error: removing around it could take entries on the wrong
/// side (the server stops; recovery at the next start cuts the log there).
fn split_record(tree: &sled::Tree, at: Zxid) -> Result<(), StorageError> {
    let start = match record_start(tree, at) {
        Ok(start) => start,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(sled_err(e)),
    };
    let mut record = None;
    let scan = scan_records(tree, &start, |first_key, entries| {
        record = Some((first_key, split_halves(entries, at)));
        false
    })?;
    if let SegmentScan::Bad(corruption, _) = scan {
        return Err(corruption.into());
    }
    let Some((first_key, halves)) = record else {
        return Ok(());
    };
    let Some([(low, low_bytes), (high, high_bytes)]) = halves? else {
        return Ok(());
    };
    let mut batch = sled::Batch::default();
    let prefix = first_key.get(..8).unwrap_or_default();
    let removed = tree
        .scan_prefix(prefix)
        .keys()
        .try_for_each(|key| key.map(|key| batch.remove(key)));
    add_record(&mut batch, low, &low_bytes)?;
    add_record(&mut batch, high, &high_bytes)?;
    match removed.and_then(|()| tree.apply_batch(batch)) {
        // Dropped by the background purge meanwhile: nothing left to split.
        Err(e) if gone(&e) => Ok(()),
        other => other.map_err(sled_err),
    }
}

/// A record to write: its first zxid and its bytes.
type RecordParts = (Zxid, Vec<u8>);

/// The two records `entries` become when split before `at`; `None` when all are on
/// one side: nothing to split.
fn split_halves(
    entries: &[EntryRef<'_>],
    at: Zxid,
) -> Result<Option<[RecordParts; 2]>, StorageError> {
    let (lower, upper) = entries.split_at(entries.partition_point(|e| e.zxid < at));
    let (Some(low), Some(high)) = (lower.first(), upper.first()) else {
        return Ok(None);
    };
    Ok(Some([
        (low.zxid, batch_bytes(lower)?),
        (high.zxid, batch_bytes(upper)?),
    ]))
}

/// Calls `each` with every key of `tree` in `range`; returns how many entries the records
/// there hold (a key whose first 8 bytes differ from the one before and that is no
/// record's first chunk counts as one).
fn for_entry_keys<K, R>(
    tree: &sled::Tree,
    range: R,
    mut each: impl FnMut(sled::IVec),
) -> Result<u64, sled::Error>
where
    K: AsRef<[u8]>,
    R: RangeBounds<K>,
{
    let mut entries = 0;
    let mut previous: Option<Vec<u8>> = None;
    for item in tree.range(range) {
        let (key, value) = item?;
        let prefix = key.get(..8).unwrap_or(&key);
        if previous.as_deref() != Some(prefix) {
            entries += match parse_chunk_key(&key) {
                Some((_, 0)) => entries_in_record(&value),
                _ => 1,
            };
            previous = Some(prefix.to_vec());
        }
        each(key);
    }
    Ok(entries)
}

/// How many entries `tree` holds; 0 once it is dropped.
fn count_entries(tree: &sled::Tree) -> Result<u64, StorageError> {
    match for_entry_keys::<&[u8], _>(tree, .., |_| ()) {
        Err(e) if gone(&e) => Ok(0),
        other => other.map_err(sled_err),
    }
}

/// Removes every key of `tree` in `range` in one batch; returns how many entries that
/// was. A tree dropped meanwhile counts 0: whoever dropped it counts its entries.
fn remove_entries<K, R>(tree: &sled::Tree, range: R) -> Result<u64, StorageError>
where
    K: AsRef<[u8]>,
    R: RangeBounds<K>,
{
    let mut batch = sled::Batch::default();
    let removed = for_entry_keys(tree, range, |key| batch.remove(key))
        .and_then(|entries| tree.apply_batch(batch).map(|()| entries));
    match removed {
        Err(e) if gone(&e) => Ok(0),
        other => other.map_err(sled_err),
    }
}

/// The zxid of the first key among `segments`, skipping empty and dropped ones: a
/// record's key is its first entry's.
fn first_key_zxid(segments: &[Segment]) -> Result<Option<Zxid>, StorageError> {
    for segment in segments {
        match segment.tree.first() {
            Ok(Some((key, _))) => return Ok(key_zxid(&key)),
            Ok(None) => {}
            Err(e) if gone(&e) => {}
            Err(e) => return Err(sled_err(e)),
        }
    }
    Ok(None)
}

/// Snapshot storage; a separate handle so a snapshot can be written on another thread
/// while the log keeps appending (sled trees are safe to write concurrently).
#[derive(Debug, Clone)]
pub struct SledSnapshots {
    manifests: sled::Tree,
    chunks: sled::Tree,
    durability: Durability,
    /// Snapshots being saved through any handle (a learner's SNAP on the core thread
    /// can overlap a background save): their chunks have no manifest yet but are not
    /// orphans.
    saving: Arc<Mutex<BTreeMap<Zxid, usize>>>,
}

/// Marks a snapshot as being saved until dropped (counted: two saves of one zxid).
struct Saving<'a> {
    saves: &'a Mutex<BTreeMap<Zxid, usize>>,
    zxid: Zxid,
}

impl<'a> Saving<'a> {
    fn start(saves: &'a Mutex<BTreeMap<Zxid, usize>>, zxid: Zxid) -> Self {
        *lock(saves).entry(zxid).or_default() += 1;
        Saving { saves, zxid }
    }
}

impl Drop for Saving<'_> {
    fn drop(&mut self) {
        let mut saves = lock(self.saves);
        if let Some(n) = saves.get_mut(&self.zxid) {
            *n -= 1;
            if *n == 0 {
                saves.remove(&self.zxid);
            }
        }
    }
}

impl SledSnapshots {
    fn remove_chunks(&self, last_zxid: Zxid) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.chunks.scan_prefix(zxid_bytes(last_zxid)).keys() {
            batch.remove(item.map_err(sled_err)?);
        }
        self.chunks.apply_batch(batch).map_err(sled_err)
    }

    /// Removes chunks no manifest points at: the remains of a save cut by a crash (never
    /// read: a load goes by its manifest). Seeks from one snapshot's chunks to the next,
    /// so a kept snapshot costs one read, not one per chunk.
    fn remove_orphan_chunks(&self) -> Result<(), StorageError> {
        // Held to the end, so no save starts between finding its zxid's chunks
        // unowned and deleting them.
        let saving = lock(&self.saving);
        let mut orphans = sled::Batch::default();
        let mut from = Vec::new();
        while let Some(item) = self.chunks.range(from.as_slice()..).next() {
            let (key, _) = item.map_err(sled_err)?;
            let Some(prefix) = key.get(..8).and_then(|p| <[u8; 8]>::try_from(p).ok()) else {
                // Too short for a chunk key: whatever wrote it, no manifest owns it.
                from = [&key[..], &[0]].concat();
                orphans.remove(key);
                continue;
            };
            let under_way = key_zxid(&prefix).is_some_and(|z| saving.contains_key(&z));
            if !under_way && !self.manifests.contains_key(prefix).map_err(sled_err)? {
                for orphan in self.chunks.scan_prefix(prefix).keys() {
                    orphans.remove(orphan.map_err(sled_err)?);
                }
            }
            match after_prefix(&prefix) {
                Some(next) => from = next,
                None => break,
            }
        }
        self.chunks.apply_batch(orphans).map_err(sled_err)
    }
}

/// The smallest key above every key that starts with `prefix`: its trailing 0xff bytes
/// dropped and the last byte left incremented; `None` if it is all 0xff.
fn after_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut next = prefix[..=last].to_vec();
    next[last] += 1;
    Some(next)
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
        // What an earlier save cut by a crash left. Here rather than at open, where
        // deleting a cut 200 MB save held a restart up by 1.5 s (sled reads its pages
        // back to delete them). Saves run off the request path: the background
        // snapshot, or a learner's SNAP while it syncs.
        let _saving = Saving::start(&self.saving, last_zxid);
        self.remove_orphan_chunks()?;
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

    fn read_snapshot(
        &self,
        last_zxid: Zxid,
        piece: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<Result<(), Corruption>, StorageError> {
        let key = zxid_bytes(last_zxid);
        let Some(record) = self.manifests.get(key).map_err(sled_err)? else {
            return Ok(Err(Corruption::snapshot(last_zxid, "missing")));
        };
        let manifest = match Manifest::decode(last_zxid, &key, &record) {
            Ok(manifest) => manifest,
            Err(corruption) => return Ok(Err(corruption)),
        };
        let mut read = 0u64;
        let mut crc = crc32fast::Hasher::new();
        // Chunk by chunk with point lookups, not a scan: the pages a sled 0.34 iterator
        // reads stay in its cache (its LRU shard evicts only once it has logged enough
        // accesses), and a restart from a 203 MB snapshot kept ~190 MiB of them.
        for index in 0..manifest.chunks {
            let chunk_key = chunk_key(last_zxid, index);
            let Some(record) = self.chunks.get(chunk_key).map_err(sled_err)? else {
                return Ok(Err(Corruption::snapshot(last_zxid, "incomplete")));
            };
            let bytes = match unseal(&chunk_key, &record) {
                Ok(bytes) => bytes,
                Err(reason) => {
                    let reason = format!("chunk {index}: {reason}");
                    return Ok(Err(Corruption::snapshot(last_zxid, reason)));
                }
            };
            read += bytes.len() as u64;
            if read > manifest.len {
                return Ok(Err(Corruption::snapshot(
                    last_zxid,
                    "longer than its manifest",
                )));
            }
            crc.update(bytes);
            if !piece(manifest.len, bytes) {
                return Ok(Ok(()));
            }
        }
        if read != manifest.len {
            return Ok(Err(Corruption::snapshot(last_zxid, "incomplete")));
        }
        if crc.finalize() != manifest.crc {
            return Ok(Err(Corruption::snapshot(last_zxid, "checksum mismatch")));
        }
        Ok(Ok(()))
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

/// After each segment it drops, [`LogPurger`] rests this many times as long as the drop
/// took (at least [`PURGE_MIN_PAUSE`]), so it uses a bounded share of the disk and the
/// CPU whatever the machine.
const PURGE_REST_FACTOR: u32 = 3;
const PURGE_MIN_PAUSE: Duration = Duration::from_millis(2);

/// Drops the segments whose entries are all below `zxid` (see
/// [`SegmentList::take_before`]), resting between drops if `pace`; returns how many
/// entries they held.
fn drop_segments_before(
    db: &sled::Db,
    segments: &SegmentList,
    zxid: Zxid,
    pace: bool,
) -> Result<u64, StorageError> {
    let mut doomed = segments.take_before(zxid).into_iter();
    let mut dropped = 0;
    while let Some(segment) = doomed.next() {
        let started = Instant::now();
        match db.drop_tree(&segment.name) {
            Ok(true) => dropped += segment.entries,
            Ok(false) => {}
            Err(e) => {
                // Listed again, so reads still find them and a later purge retries.
                segments.put_back(std::iter::once(segment).chain(doomed).collect());
                return Err(sled_err(e));
            }
        }
        if pace && !doomed.as_slice().is_empty() {
            std::thread::sleep((started.elapsed() * PURGE_REST_FACTOR).max(PURGE_MIN_PAUSE));
        }
    }
    Ok(dropped)
}

/// See [`SledStorage::log_purger`].
#[derive(Debug, Clone)]
pub struct LogPurger {
    db: sled::Db,
    segments: Arc<SegmentList>,
}

impl LogPurger {
    /// Drops the log segments whose entries are all below `zxid`, which must be at most
    /// what the server has applied (entries after it may be appended or cut meanwhile).
    ///
    /// Whole segments only, never the one appends go to: up to one segment
    /// ([`SEGMENT_ENTRIES`]) of entries below `zxid` stays until a later purge, the price
    /// of not deleting keys (every deleted key is a dirty page the writer's next fsync
    /// carries). Durable with the storage's next sync; a crash brings dropped segments
    /// back whole, never a hole. Returns how many entries went, from counts kept in
    /// memory, not by reading the trees.
    pub fn purge_before(&self, zxid: Zxid) -> Result<u64, StorageError> {
        drop_segments_before(&self.db, &self.segments, zxid, true)
    }
}

/// Opens every log tree in the database, oldest first; their entry counts come later,
/// from recovery's scan.
fn load_segments(db: &sled::Db) -> Result<Vec<Segment>, StorageError> {
    let mut segments = Vec::new();
    for name in db.tree_names() {
        let Some(first) = parse_segment_name(&name) else {
            continue;
        };
        segments.push(Segment {
            first,
            // ASCII: `parse_segment_name` accepts nothing else.
            name: String::from_utf8_lossy(&name).into_owned(),
            tree: db.open_tree(&name).map_err(sled_err)?,
            entries: 0,
        });
    }
    // By name too: `log` goes before a segment named for `Zxid::MIN`.
    segments.sort_by(|a, b| (a.first, &a.name).cmp(&(b.first, &b.name)));
    Ok(segments)
}

/// True only if `tree` surely holds nothing (a failed read says no).
fn surely_empty(tree: &sled::Tree) -> bool {
    matches!(tree.first(), Ok(None))
}

/// The log, metadata and snapshots of one server, in one sled database in dataDir.
#[derive(Debug)]
pub struct SledStorage {
    segments: Arc<SegmentList>,
    /// The last segment, which appends go to, and its entry count; kept here so an
    /// append takes no lock. Re-read from `segments` after anything else changes them.
    current: Option<Segment>,
    current_entries: u64,
    segment_entries: u64,
    unwritten: Arc<Unwritten>,
    meta: sled::Tree,
    snapshots: SledSnapshots,
    durability: Durability,
    last_zxid: Option<Zxid>,
    recovery: LogRecovery,
}

impl SledStorage {
    /// Opens (or creates) the database in `dir` and recovers it: a corrupt log tail is
    /// cut; see [`SledStorage::recovery`]. (Chunks of an unfinished snapshot save are
    /// left to the next save.)
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with_segment_entries(dir, SEGMENT_ENTRIES)
    }

    /// [`SledStorage::open`] with log segments of `segment_entries` entries instead of
    /// [`SEGMENT_ENTRIES`]; tests use small ones to cross segment boundaries often.
    pub fn open_with_segment_entries(
        dir: impl AsRef<Path>,
        segment_entries: u64,
    ) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(sled_err)?;
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
            saving: Arc::default(),
        };
        let mut storage = Self {
            segments: Arc::new(SegmentList(Mutex::new(load_segments(&db)?))),
            current: None,
            current_entries: 0,
            segment_entries: segment_entries.max(1),
            unwritten: Arc::default(),
            meta: tree(META_TREE)?,
            snapshots,
            durability,
            last_zxid: None,
            recovery: LogRecovery::default(),
        };
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

    /// A handle that drops the head of the log on another thread (after a snapshot),
    /// a whole segment at a time, so a purge does not hold up appends. It keeps the
    /// database open: drop it before reopening the directory.
    pub fn log_purger(&self) -> LogPurger {
        LogPurger {
            db: self.durability.db.clone(),
            segments: Arc::clone(&self.segments),
        }
    }

    /// A handle that syncs this database from another thread: what was appended
    /// before [`SyncHandle::sync`] is called is durable when it returns, while appends
    /// may go on meanwhile (the fsync of one round overlaps the next round's work).
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            durability: self.durability.clone(),
            unwritten: Arc::clone(&self.unwritten),
        }
    }

    /// A snapshot handle that can be moved to another thread, so saving a snapshot does
    /// not hold up appends and syncs on this one. It keeps the database open: drop it
    /// before reopening the directory.
    pub fn snapshot_store(&self) -> SledSnapshots {
        self.snapshots.clone()
    }

    /// Puts the entries appended since the last write-out into sled.
    fn write_out(&self) -> Result<(), StorageError> {
        self.unwritten.write_out()
    }

    /// The last entry's zxid in sled: the last record's, read through.
    fn read_last_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        for segment in self.segments.all().iter().rev() {
            let key = match segment.tree.last() {
                Ok(Some((key, _))) => key,
                Ok(None) => continue,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(sled_err(e)),
            };
            let Some((first, _)) = parse_chunk_key(&key) else {
                return Ok(key_zxid(&key));
            };
            let mut last = first;
            // What is bad in it, recovery has cut (this runs after it).
            scan_records(&segment.tree, &chunk_key(first, 0), |_, entries| {
                last = entries.last().map_or(last, |e| e.zxid);
                true
            })?;
            return Ok(Some(last));
        }
        Ok(None)
    }

    /// Starts the segment that the entry `first`, about to be appended, opens. The tree
    /// exists before its first entry: a crash in between leaves it empty, and recovery
    /// drops empty segments.
    fn roll(&mut self, first: Zxid) -> Result<(), StorageError> {
        let name = segment_name(first);
        let tree = self.durability.db.open_tree(&name).map_err(sled_err)?;
        let segment = Segment {
            first,
            name,
            tree,
            entries: 0,
        };
        self.segments.push(self.current_entries, segment.clone());
        self.current = Some(segment);
        self.current_entries = 0;
        Ok(())
    }

    /// Runs `change` on the segment list with every count in it exact, then re-reads the
    /// last segment (also on failure, so appends never go to a dropped tree).
    fn change_segments<T>(
        &mut self,
        change: impl FnOnce(&Self) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.write_out()?;
        self.segments.publish(self.current_entries);
        let result = change(self);
        self.current = self.segments.last();
        self.current_entries = self.current.as_ref().map_or(0, |s| s.entries);
        result
    }

    /// Takes `segment` out of the list and drops its tree, unless the purger took it.
    fn drop_segment(&self, segment: &Segment) -> Result<(), StorageError> {
        if self.segments.take(&segment.name) {
            self.durability
                .db
                .drop_tree(&segment.name)
                .map_err(sled_err)?;
        }
        Ok(())
    }

    /// After `cut` entries went from `segment`: drops it if that emptied it, else
    /// records its new count.
    fn after_removing(&self, segment: &Segment, cut: u64) -> Result<(), StorageError> {
        if cut == 0 {
            Ok(())
        } else if surely_empty(&segment.tree) {
            self.drop_segment(segment)
        } else {
            let left = segment.entries.saturating_sub(cut);
            self.segments.set_entries(&segment.name, left);
            Ok(())
        }
    }

    /// Removes every entry >= `zxid`: whole segments from the newest down, then the tail
    /// of the one before, so a crash part way leaves a prefix of the log, never a hole.
    fn remove_from(&self, zxid: Zxid) -> Result<u64, StorageError> {
        let segments = self.segments.all();
        let keep = segments.partition_point(|s| s.first < zxid);
        let mut removed = 0;
        for segment in segments.get(keep..).unwrap_or_default().iter().rev() {
            removed += count_entries(&segment.tree)?;
            self.drop_segment(segment)?;
        }
        if let Some(segment) = keep.checked_sub(1).and_then(|i| segments.get(i)) {
            split_record(&segment.tree, zxid)?;
            let cut = remove_entries(&segment.tree, chunk_key(zxid, 0)..)?;
            self.after_removing(segment, cut)?;
            removed += cut;
        }
        Ok(removed)
    }

    /// Removes every entry < `zxid`: whole segments, then the head of the next one.
    fn remove_before(&self, zxid: Zxid) -> Result<u64, StorageError> {
        let mut removed = drop_segments_before(&self.durability.db, &self.segments, zxid, false)?;
        if let Some(segment) = self.segments.all().first() {
            split_record(&segment.tree, zxid)?;
            let cut = remove_entries(&segment.tree, ..chunk_key(zxid, 0))?;
            self.after_removing(segment, cut)?;
            removed += cut;
        }
        Ok(removed)
    }

    /// Scans the whole log, cuts it at the first bad record (every later segment, then
    /// the rest of that one, newest first) and drops empty segments.
    fn recover_segments(&self) -> Result<LogRecovery, StorageError> {
        let segments = self.segments.all();
        let mut counts = vec![0_u64; segments.len()];
        let cut = scan_log(&segments, Zxid::MIN, |index, _| {
            if let Some(count) = counts.get_mut(index) {
                *count += 1;
            }
            true
        })?;
        let mut report = LogRecovery::default();
        let mut kept = segments.len();
        if let Some(cut) = cut {
            kept = cut.segment + 1;
            for segment in segments.get(kept..).unwrap_or_default().iter().rev() {
                report.entries_cut += count_entries(&segment.tree)?;
                self.drop_segment(segment)?;
            }
            if let Some(segment) = segments.get(cut.segment) {
                report.entries_cut += remove_entries(&segment.tree, cut.key.as_slice()..)?;
            }
            report.first_corruption = Some(cut.corruption);
        }
        // Empty: a roll cut short by a crash, emptied by the cut above, or a legacy `log`
        // that older versions created in every database.
        let mut dropped = false;
        for (segment, &entries) in segments.iter().zip(&counts).take(kept) {
            if surely_empty(&segment.tree) {
                self.drop_segment(segment)?;
                dropped = true;
            } else {
                self.segments.set_entries(&segment.name, entries);
            }
        }
        if report.first_corruption.is_some() || dropped {
            self.durability.sync()?;
        }
        Ok(report)
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
        // A record never spans segments.
        if self.current.is_none() || self.current_entries >= self.segment_entries {
            self.unwritten.seal();
            self.roll(zxid)?;
        }
        let Some(segment) = &self.current else {
            return Err(StorageError::Backend("no log segment after a roll".into()));
        };
        self.unwritten.push(&segment.tree, zxid, payload)?;
        self.current_entries += 1;
        self.last_zxid = Some(zxid);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.write_out()?;
        self.durability.sync()
    }

    fn last_zxid(&self) -> Option<Zxid> {
        self.last_zxid
    }

    fn first_zxid(&self) -> Result<Option<Zxid>, StorageError> {
        self.write_out()?;
        first_key_zxid(&self.segments.all())
    }

    fn visit_from(
        &self,
        zxid: Zxid,
        visit: &mut dyn FnMut(Zxid, &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.write_out()?;
        let bad = scan_log(&self.segments.from(zxid), zxid, |_, entry| {
            visit(entry.zxid, entry.payload)
        })?;
        match bad {
            Some(cut) => Err(cut.corruption.into()),
            None => Ok(()),
        }
    }

    fn truncate_after(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        // Also when nothing can be removed: the last zxid is read back from sled.
        self.write_out()?;
        let removed = match zxid.checked_add(1) {
            Some(next) => self.change_segments(|s| s.remove_from(next))?,
            None => 0,
        };
        self.durability.sync()?;
        self.last_zxid = self.read_last_zxid()?;
        Ok(removed)
    }

    /// Exact, unlike [`LogPurger::purge_before`]: drops whole segments, then deletes keys
    /// in the one holding `zxid`, after splitting the record that holds it.
    fn purge_before(&mut self, zxid: Zxid) -> Result<u64, StorageError> {
        let Some(last) = self.last_zxid else {
            return Ok(0);
        };
        self.change_segments(|s| s.remove_before(zxid.min(last)))
    }

    fn recover(&mut self) -> Result<LogRecovery, StorageError> {
        let mut report = self.change_segments(Self::recover_segments)?;
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

    fn read_snapshot(
        &self,
        last_zxid: Zxid,
        piece: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<Result<(), Corruption>, StorageError> {
        self.snapshots.read_snapshot(last_zxid, piece)
    }

    fn delete_snapshot(&mut self, last_zxid: Zxid) -> Result<bool, StorageError> {
        self.snapshots.delete_snapshot(last_zxid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_zab::storage::LogEntry;
    use rookery_zab::storage::conformance::{self, Harness};

    /// A temporary dataDir; "reopen" drops the storage and opens the directory again.
    struct SledHarness {
        dir: tempfile::TempDir,
        segment_entries: u64,
    }

    impl SledHarness {
        fn new() -> Self {
            Self::with_segments(SEGMENT_ENTRIES)
        }

        fn with_segments(segment_entries: u64) -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
                segment_entries,
            }
        }

        /// Edits one tree with sled directly while our storage is closed.
        fn with_raw_tree(&self, name: &str, edit: impl FnOnce(&sled::Tree)) {
            self.with_raw_db(|db| edit(&db.open_tree(name).unwrap()));
        }

        /// Edits the log segment holding `zxid` with sled directly.
        fn with_raw_segment_of(&self, zxid: Zxid, edit: impl FnOnce(&sled::Tree)) {
            self.with_raw_db(|db| {
                let tree = db
                    .tree_names()
                    .into_iter()
                    .filter(|name| parse_segment_name(name).is_some())
                    .map(|name| db.open_tree(name).unwrap())
                    .find(|tree| tree.contains_key(chunk_key(zxid, 0)).unwrap())
                    .unwrap_or_else(|| panic!("no segment holds {zxid}"));
                edit(&tree);
            });
        }

        /// Names of the log trees in the database, sorted, while our storage is closed.
        fn raw_log_trees(&self) -> Vec<String> {
            let mut names = Vec::new();
            self.with_raw_db(|db| {
                for name in db.tree_names() {
                    if parse_segment_name(&name).is_some() {
                        names.push(String::from_utf8(name.to_vec()).unwrap());
                    }
                }
            });
            names.sort();
            names
        }

        /// Runs `edit` on the database with sled directly while our storage is closed.
        fn with_raw_db(&self, edit: impl FnOnce(&sled::Db)) {
            let db = crate::testing::open_raw(self.dir.path());
            edit(&db);
            db.flush().unwrap();
        }

        fn open_retrying(&self) -> SledStorage {
            crate::testing::open_retrying(self.dir.path(), self.segment_entries)
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
            // A record is what can be corrupt: make `zxid` start one, then flip the last
            // byte of its first chunk (a payload byte: the count stays readable).
            self.with_raw_db(|db| {
                for name in db.tree_names() {
                    if parse_segment_name(&name).is_some() {
                        split_record(&db.open_tree(name).unwrap(), zxid).unwrap();
                    }
                }
            });
            self.with_raw_segment_of(zxid, |log| {
                let key = chunk_key(zxid, 0);
                let mut value = log.get(key).unwrap().expect("the entry is stored").to_vec();
                if let Some(last) = value.last_mut() {
                    *last ^= 0xff;
                }
                log.insert(key, value).unwrap();
            });
            self.open_with_report()
        }

        fn corrupt_snapshot(&mut self, storage: SledStorage, last_zxid: Zxid) -> SledStorage {
            drop(storage);
            crate::testing::corrupt_snapshot_chunk(self.dir.path(), last_zxid, 1);
            self.open()
        }
    }

    macro_rules! conformance_tests {
        ($($name:ident),* $(,)?) => {
            $(
                #[test]
                fn $name() {
                    conformance::$name(&mut SledHarness::new());
                }
            )*
            /// Again with two entries a segment, so every check crosses segment boundaries.
            mod two_entry_segments {
                use super::*;
                $(
                    #[test]
                    fn $name() {
                        conformance::$name(&mut SledHarness::with_segments(2));
                    }
                )*
            }
        };
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
        // A sync after each, so each is a record of its own.
        for (zxid, payload) in [
            (1, &b"small"[..]),
            (2, &[7; 3 * CHUNK_BYTES]),
            (3, b"after"),
        ] {
            s.append(zxid, payload).unwrap();
            s.sync().unwrap();
        }
        drop(s);
        h.with_raw_segment_of(2, |log| {
            log.remove(chunk_key(2, 1)).unwrap().unwrap();
        });
        let (s, recovery) = h.open_with_report();
        assert_eq!(recovery.entries_cut, 2);
        assert_eq!(s.last_zxid(), Some(1));
    }

    /// Databases written before the chunk size went from 64 KiB to 4 KiB read as before.
    #[test]
    fn entries_and_snapshots_in_64_kib_chunks_still_read() {
        const OLD_CHUNK: usize = 64 * 1024;
        let payload: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let snapshot: Vec<u8> = payload.iter().rev().copied().collect();
        let mut h = SledHarness::new();
        let mut s = h.open();
        s.append(1, b"small").unwrap();
        s.sync().unwrap();
        drop(s);
        let pieces = payload.chunks(OLD_CHUNK).collect::<Vec<_>>();
        let count = u32::try_from(pieces.len()).unwrap();
        h.with_raw_segment_of(1, |log| {
            for (index, piece) in (0..count).zip(&pieces) {
                let key = chunk_key(2, index);
                let mut body = count.to_be_bytes().to_vec();
                body.extend_from_slice(piece);
                log.insert(key, seal(&key, &body)).unwrap();
            }
        });
        let old_pieces = snapshot.chunks(OLD_CHUNK).collect::<Vec<_>>();
        h.with_raw_tree(SNAPSHOT_CHUNK_TREE, |chunks| {
            for (index, piece) in (0..).zip(&old_pieces) {
                let key = chunk_key(7, index);
                chunks.insert(key, seal(&key, piece)).unwrap();
            }
        });
        h.with_raw_tree(SNAPSHOT_TREE, |manifests| {
            let key = zxid_bytes(7);
            let mut manifest = (snapshot.len() as u64).to_be_bytes().to_vec();
            manifest.extend_from_slice(&u32::try_from(old_pieces.len()).unwrap().to_be_bytes());
            manifest.extend_from_slice(&checksum(&[&snapshot]).to_be_bytes());
            manifests.insert(key, seal(&key, &manifest)).unwrap();
        });
        let (mut s, recovery) = h.open_with_report();
        assert_eq!(recovery.entries_cut, 0, "{recovery:?}");
        assert_eq!(s.last_zxid(), Some(2));
        let entries = s.entries_from(2, 10).unwrap();
        assert_eq!(entries.len(), 1);
        assert!(
            entries[0].payload == payload,
            "the old entry reads back whole"
        );
        let loaded = s.load_snapshot(7).unwrap().unwrap();
        assert!(loaded.data == snapshot, "the old snapshot reads back whole");
        // New writes use the new size beside them.
        s.append(3, &payload).unwrap();
        s.sync().unwrap();
        assert!(s.entries_from(3, 1).unwrap()[0].payload == payload);
    }

    #[test]
    fn a_garbage_key_is_cut() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        for zxid in 1..=4 {
            s.append(zxid, b"x").unwrap();
            s.sync().unwrap();
        }
        drop(s);
        let mut odd_key = zxid_bytes(3).to_vec();
        odd_key.push(9);
        h.with_raw_segment_of(3, |log| {
            log.insert(odd_key, &b"whatever"[..]).unwrap();
        });
        let (s, recovery) = h.open_with_report();
        // The stray key sorts after entry 3's chunk: it and entry 4 go, 3 stays.
        assert_eq!(recovery.entries_cut, 2, "{recovery:?}");
        assert_eq!(s.last_zxid(), Some(3));
        assert_eq!(s.entries_from(0, 10).unwrap().len(), 3);
    }

    #[test]
    fn an_unfinished_snapshot_save_is_never_read_and_the_next_save_removes_it() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        s.save_snapshot(5, b"kept").unwrap();
        let kept = vec![7_u8; 3 * CHUNK_BYTES];
        s.save_snapshot(7, &kept).unwrap();
        drop(s);
        // Orphans before, between and after the kept snapshots' chunks, one with two
        // chunks, and a key too short to be a chunk's.
        let orphans = [(3, 0), (6, 0), (6, 1), (9, 0)].map(|(zxid, chunk)| chunk_key(zxid, chunk));
        let odd = [1_u8, 2];
        h.with_raw_tree(SNAPSHOT_CHUNK_TREE, |chunks| {
            for key in orphans {
                chunks.insert(key, seal(&key, b"half a snapshot")).unwrap();
            }
            chunks.insert(odd, &b"odd"[..]).unwrap();
        });
        let left = |h: &SledHarness| {
            let mut n = 0;
            h.with_raw_tree(SNAPSHOT_CHUNK_TREE, |chunks| {
                let keys = orphans.iter().map(|k| &k[..]).chain([&odd[..]]);
                n = keys.filter(|k| chunks.contains_key(k).unwrap()).count();
            });
            n
        };
        let s = h.open();
        let zxids: Vec<Zxid> = s
            .list_snapshots()
            .unwrap()
            .iter()
            .map(|i| i.last_zxid)
            .collect();
        assert_eq!(zxids, vec![5, 7]);
        assert_eq!(s.load_snapshot(5).unwrap().unwrap().data, b"kept");
        assert_eq!(s.load_snapshot(7).unwrap().unwrap().data, kept);
        drop(s);
        assert_eq!(left(&h), 5, "opening leaves them");
        let mut s = h.open_retrying();
        s.save_snapshot(8, b"next").unwrap();
        assert_eq!(s.load_snapshot(7).unwrap().unwrap().data, kept);
        drop(s);
        assert_eq!(left(&h), 0, "the next save removes them");
    }

    #[test]
    fn a_save_under_way_through_another_handle_is_not_an_orphan() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        let other = s.snapshot_store();
        let half = chunk_key(6, 0);
        let saving = Saving::start(&other.saving, 6);
        other.chunks.insert(half, seal(&half, b"half")).unwrap();
        s.save_snapshot(8, b"a learner's SNAP").unwrap();
        assert!(other.chunks.contains_key(half).unwrap(), "removed mid-save");
        drop(saving);
        s.save_snapshot(9, b"later").unwrap();
        assert!(!other.chunks.contains_key(half).unwrap(), "left once cut");
    }

    #[test]
    fn after_prefix_is_above_every_key_with_the_prefix_and_below_the_rest() {
        assert_eq!(after_prefix(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(after_prefix(&[0x80, 0xff, 0xff]), Some(vec![0x81]));
        assert_eq!(after_prefix(&[0xff, 0xff]), None);
        // A key shorter than 8 bytes just past a prefix ending in 0xff is not skipped.
        let prefix = [0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let next = after_prefix(&prefix).unwrap();
        assert!(next.as_slice() > [&prefix[..], &[0xff; 8]].concat().as_slice());
        assert!(next.as_slice() <= &[0x81][..]);
    }

    #[test]
    fn a_snapshot_missing_a_chunk_or_bytes_is_incomplete() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        let data = vec![9_u8; 3 * CHUNK_BYTES];
        s.save_snapshot(7, &data).unwrap();
        s.save_snapshot(8, &data).unwrap();
        drop(s);
        h.with_raw_tree(SNAPSHOT_CHUNK_TREE, |chunks| {
            chunks.remove(chunk_key(7, 1)).unwrap().unwrap();
            // The last chunk of 8, sealed anew without its last byte.
            let key = chunk_key(8, 2);
            chunks
                .insert(key, seal(&key, &[9; CHUNK_BYTES - 1]))
                .unwrap();
        });
        let s = h.open();
        for zxid in [7, 8] {
            let corruption = s.load_snapshot(zxid).unwrap().unwrap_err();
            assert!(
                corruption.to_string().contains("incomplete"),
                "{corruption}"
            );
        }
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

    fn zxids_of(entries: &[LogEntry]) -> Vec<Zxid> {
        entries.iter().map(|e| e.zxid).collect()
    }

    /// The entries the tests below append: tiny, except every fifth spans chunks.
    fn entry(zxid: Zxid) -> Vec<u8> {
        let len = if zxid % 5 == 0 {
            2 * CHUNK_BYTES + 3
        } else {
            8
        };
        conformance::payload(zxid, len)
    }

    fn append_synced(s: &mut SledStorage, zxids: impl IntoIterator<Item = Zxid>) {
        for zxid in zxids {
            s.append(zxid, &entry(zxid)).unwrap();
        }
        s.sync().unwrap();
    }

    fn assert_log(s: &SledStorage, expected: impl IntoIterator<Item = Zxid>) {
        let all = s.entries_from(Zxid::MIN, usize::MAX).unwrap();
        let expected: Vec<Zxid> = expected.into_iter().collect();
        assert_eq!(zxids_of(&all), expected);
        for e in &all {
            assert!(e.payload == entry(e.zxid), "bytes of {}", e.zxid);
        }
        assert_eq!(s.first_zxid().unwrap(), expected.first().copied());
        assert_eq!(s.last_zxid(), expected.last().copied());
    }

    fn segment_firsts(s: &SledStorage) -> Vec<Zxid> {
        s.segments.all().iter().map(|seg| seg.first).collect()
    }

    /// The first zxid of every record in the log's trees, read with sled directly.
    fn raw_record_firsts(h: &SledHarness) -> Vec<Zxid> {
        let mut firsts = Vec::new();
        h.with_raw_db(|db| {
            for name in db.tree_names() {
                if parse_segment_name(&name).is_some() {
                    for key in db.open_tree(name).unwrap().iter().keys() {
                        if let Some((zxid, 0)) = parse_chunk_key(&key.unwrap()) {
                            firsts.push(zxid);
                        }
                    }
                }
            }
        });
        firsts.sort();
        firsts
    }

    #[test]
    fn the_entries_appended_before_a_sync_share_one_record() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        append_synced(&mut s, 1..=12);
        append_synced(&mut s, 13..=14);
        assert_eq!(zxids_of(&s.entries_from(7, 3).unwrap()), [7, 8, 9]);
        assert_eq!(s.first_zxid().unwrap(), Some(1));
        drop(s);
        assert_eq!(raw_record_firsts(&h), [1, 13]);
        let (s, recovery) = h.open_with_report();
        assert_eq!(
            recovery,
            LogRecovery {
                last_zxid: Some(14),
                ..LogRecovery::default()
            }
        );
        assert_log(&s, 1..=14);
    }

    #[test]
    fn a_sync_handle_writes_the_appended_entries_in_records_of_at_most_64_kib() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        let big = |zxid| conformance::payload(zxid, CHUNK_BYTES);
        // 16 entries of a chunk each fill a record; the 17th starts the next.
        for zxid in 1..=20 {
            s.append(zxid, &big(zxid)).unwrap();
        }
        let handle = s.sync_handle();
        std::thread::spawn(move || handle.sync().unwrap())
            .join()
            .unwrap();
        for zxid in 21..=22 {
            s.append(zxid, &big(zxid)).unwrap();
        }
        // Not synced: not promised to survive, and not in sled yet either.
        drop(s);
        assert_eq!(raw_record_firsts(&h), [1, 17]);
        let (s, _) = h.open_with_report();
        let all = s.entries_from(Zxid::MIN, usize::MAX).unwrap();
        assert_eq!(zxids_of(&all), (1..=20).collect::<Vec<_>>());
        assert!(all.iter().all(|e| e.payload == big(e.zxid)));
    }

    #[test]
    fn reads_see_every_append_while_another_thread_syncs() {
        let mut h = SledHarness::with_segments(300);
        let mut s = h.open();
        let handle = s.sync_handle();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let syncer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    handle.sync().unwrap();
                }
            })
        };
        for zxid in 1..=2_000 {
            s.append(zxid, &entry(zxid)).unwrap();
            if zxid % 97 == 0 {
                let read = s.entries_from(zxid - 90, usize::MAX).unwrap();
                assert_eq!(zxids_of(&read), (zxid - 90..=zxid).collect::<Vec<_>>());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        syncer.join().unwrap();
        s.sync().unwrap();
        let (s, recovery) = h.reopen(s);
        assert_eq!(recovery.entries_cut, 0);
        assert_log(&s, 1..=2_000);
    }

    #[test]
    fn a_write_out_that_failed_fails_again_instead_of_reporting_the_entries_written() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        append_synced(&mut s, 1..=2);
        s.append(3, b"lost with its tree").unwrap();
        // The segment the record goes to is gone: sled refuses the write.
        let name = s.segments.last().unwrap().name;
        assert!(s.durability.db.drop_tree(&name).unwrap());
        let handle = s.sync_handle();
        assert!(handle.sync().is_err());
        assert!(handle.sync().is_err(), "the record is still waiting");
        assert!(s.sync().is_err());
    }

    #[test]
    fn splitting_a_record_that_does_not_read_back_is_an_error() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        append_synced(&mut s, 1..=10);
        let tree = s.segments.last().unwrap().tree;
        let key = chunk_key(1, 0);
        let mut value = tree.get(key).unwrap().unwrap().to_vec();
        *value.last_mut().unwrap() ^= 0xff;
        tree.insert(key, value).unwrap();
        let err = s
            .purge_before(5)
            .expect_err("entries 5.. would go with the record");
        assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
        let err = s
            .truncate_after(5)
            .expect_err("entries 1..=5 would stay whole");
        assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn truncating_or_purging_inside_a_record_splits_it() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        append_synced(&mut s, 1..=10);
        assert_eq!(s.truncate_after(6).unwrap(), 4);
        assert_eq!(s.last_zxid(), Some(6));
        assert_eq!(s.purge_before(3).unwrap(), 2);
        assert_eq!(s.first_zxid().unwrap(), Some(3));
        assert_log(&s, 3..=6);
        append_synced(&mut s, 7..=8);
        // At a record's first entry, or past the last entry: no record is split.
        assert_eq!(s.purge_before(3).unwrap(), 0);
        assert_eq!(s.truncate_after(8).unwrap(), 0);
        drop(s);
        assert_eq!(raw_record_firsts(&h), [3, 7]);
        let (mut s, recovery) = h.open_with_report();
        assert_eq!(recovery.entries_cut, 0);
        assert_log(&s, 3..=8);
        // A purge up to a record's first entry removes the records before it whole.
        assert_eq!(s.purge_before(7).unwrap(), 4);
        drop(s);
        assert_eq!(raw_record_firsts(&h), [7]);
        let (s, recovery) = h.open_with_report();
        assert_eq!(recovery.entries_cut, 0);
        assert_log(&s, 7..=8);
    }

    #[test]
    fn a_batch_whose_entries_do_not_add_up_is_cut_whole() {
        let mut h = SledHarness::new();
        let mut s = h.open();
        append_synced(&mut s, 1..=2);
        append_synced(&mut s, 3..=6);
        drop(s);
        // Sealed correctly, but the count says one more entry than the bytes hold.
        h.with_raw_segment_of(3, |log| {
            let payloads: Vec<(Zxid, Vec<u8>)> = (3..=6).map(|z| (z, entry(z))).collect();
            let entries: Vec<EntryRef<'_>> = payloads
                .iter()
                .map(|(zxid, payload)| EntryRef {
                    zxid: *zxid,
                    payload,
                })
                .collect();
            let mut bytes = batch_bytes(&entries).unwrap();
            bytes[..4].copy_from_slice(&5_u32.to_be_bytes());
            let keys: Vec<_> = log
                .scan_prefix(zxid_bytes(3))
                .keys()
                .map(Result::unwrap)
                .collect();
            for key in keys {
                log.remove(key).unwrap();
            }
            let mut batch = sled::Batch::default();
            add_record(&mut batch, 3, &bytes).unwrap();
            log.apply_batch(batch).unwrap();
        });
        let (s, recovery) = h.open_with_report();
        let corruption = recovery.first_corruption.unwrap();
        assert_eq!(corruption.reason, "batch count does not match its entries");
        assert_eq!(corruption.id, "0x3");
        assert_eq!(recovery.entries_cut, 5, "what the record said it held");
        assert_log(&s, 1..=2);
    }

    #[test]
    fn segment_names_sort_like_zxids_and_parse_back() {
        let zxids = [i64::MIN + 1, -1, 0, 1, 0xffff_ffff, 1 << 32, i64::MAX];
        for pair in zxids.windows(2) {
            assert!(segment_name(pair[0]) < segment_name(pair[1]));
        }
        for zxid in zxids {
            assert_eq!(
                parse_segment_name(segment_name(zxid).as_bytes()),
                Some(zxid)
            );
        }
        assert_eq!(parse_segment_name(b"log"), Some(Zxid::MIN));
        for other in [
            &b"log."[..],
            b"log.800000000000000A",
            b"log.+80000000000000",
            b"meta",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other:?}");
        }
    }

    #[test]
    fn entries_spanning_segments_read_back_and_survive_reopen_after_a_roll() {
        let mut h = SledHarness::with_segments(3);
        let mut s = h.open();
        append_synced(&mut s, 1..=10);
        assert_eq!(segment_firsts(&s), vec![1, 4, 7, 10]);
        assert_log(&s, 1..=10);
        // Bounded reads that start inside one segment and end in another.
        assert_eq!(zxids_of(&s.entries_from(3, 4).unwrap()), vec![3, 4, 5, 6]);
        assert_eq!(zxids_of(&s.entries_from(6, 2).unwrap()), vec![6, 7]);
        assert_eq!(zxids_of(&s.entries_from(10, 5).unwrap()), vec![10]);
        assert!(s.entries_from(11, 5).unwrap().is_empty());

        let (mut s, recovery) = h.reopen(s);
        assert_eq!(recovery.entries_cut, 0);
        assert_log(&s, 1..=10);
        // The last segment's count came back from the recovery scan: two more fit.
        append_synced(&mut s, 11..=12);
        assert_eq!(segment_firsts(&s), vec![1, 4, 7, 10]);
        append_synced(&mut s, [13]);
        assert_eq!(segment_firsts(&s), vec![1, 4, 7, 10, 13]);
        let (s, _) = h.reopen(s);
        assert_log(&s, 1..=13);
        drop(s);
        assert_eq!(
            h.raw_log_trees(),
            [1, 4, 7, 10, 13].map(segment_name).to_vec()
        );
    }

    #[test]
    fn recovery_cuts_a_corrupt_entry_in_a_middle_segment_and_every_later_segment() {
        let mut h = SledHarness::with_segments(3);
        let mut s = h.open();
        append_synced(&mut s, 1..=10);
        let (mut s, recovery) = h.corrupt_log_entry(s, 5);
        assert_eq!(recovery.entries_cut, 6, "{recovery:?}");
        assert_eq!(recovery.last_zxid, Some(4));
        assert_eq!(recovery.first_corruption.unwrap().id, "0x5");
        assert_log(&s, 1..=4);
        assert_eq!(segment_firsts(&s), vec![1, 4]);
        // The cut zxids are free again, and the segment of 4 has room for two.
        append_synced(&mut s, 5..=7);
        assert_eq!(segment_firsts(&s), vec![1, 4, 7]);
        let (s, recovery) = h.reopen(s);
        assert_eq!(recovery.entries_cut, 0);
        assert_log(&s, 1..=7);

        // A segment's first entry: the whole segment goes, none is left empty.
        let (mut s, recovery) = h.corrupt_log_entry(s, 4);
        assert_eq!(recovery.entries_cut, 4, "{recovery:?}");
        assert_log(&s, 1..=3);
        assert_eq!(segment_firsts(&s), vec![1]);
        append_synced(&mut s, [4]);
        assert_eq!(segment_firsts(&s), vec![1, 4]);
        drop(s);
        assert_eq!(h.raw_log_trees(), [1, 4].map(segment_name).to_vec());
    }

    #[test]
    fn a_segment_holding_zxids_of_a_later_one_is_cut_as_out_of_order() {
        let mut h = SledHarness::with_segments(3);
        let mut s = h.open();
        for zxid in 1..=6 {
            append_synced(&mut s, [zxid]);
        }
        drop(s);
        // A copy of entry 6 in the first segment: zxids no longer ascend across trees.
        h.with_raw_db(|db| {
            let key = chunk_key(6, 0);
            let value = db
                .open_tree(segment_name(4))
                .unwrap()
                .get(key)
                .unwrap()
                .unwrap();
            db.open_tree(segment_name(1))
                .unwrap()
                .insert(key, value)
                .unwrap();
        });
        let (s, recovery) = h.open_with_report();
        let corruption = recovery.first_corruption.unwrap();
        assert_eq!(corruption.reason, "out of order across log segments");
        assert_eq!(corruption.id, "0x4");
        // The scan reads 1, 2, 3, 6, then 4: the second segment goes.
        assert_eq!(recovery.entries_cut, 3);
        assert_log(&s, [1, 2, 3, 6]);
        assert_eq!(segment_firsts(&s), vec![1]);
    }

    #[test]
    fn an_empty_segment_left_by_a_crash_during_a_roll_is_dropped() {
        let mut h = SledHarness::with_segments(3);
        let mut s = h.open();
        append_synced(&mut s, 1..=6);
        drop(s);
        h.with_raw_db(|db| {
            db.open_tree(segment_name(7)).unwrap();
        });
        let (mut s, recovery) = h.open_with_report();
        assert_eq!(recovery.entries_cut, 0);
        assert_eq!(segment_firsts(&s), vec![1, 4]);
        append_synced(&mut s, 7..=8);
        assert_eq!(segment_firsts(&s), vec![1, 4, 7]);
        let (s, _) = h.reopen(s);
        assert_log(&s, 1..=8);
    }

    #[test]
    fn truncate_after_crosses_segment_boundaries() {
        let mut h = SledHarness::with_segments(3);
        let mut s = h.open();
        append_synced(&mut s, 1..=10);
        // Inside a segment: later segments go whole, this one keeps its head.
        assert_eq!(s.truncate_after(5).unwrap(), 5);
        assert_log(&s, 1..=5);
        assert_eq!(segment_firsts(&s), vec![1, 4]);
        // Appends fill the cut segment up before a new one starts.
        append_synced(&mut s, 6..=7);
        assert_eq!(segment_firsts(&s), vec![1, 4, 7]);
        // Right at a boundary: nothing empty is left behind.
        assert_eq!(s.truncate_after(3).unwrap(), 4);
        assert_eq!(segment_firsts(&s), vec![1]);
        let (mut s, _) = h.reopen(s);
        assert_log(&s, 1..=3);
        append_synced(&mut s, [4]);
        assert_eq!(segment_firsts(&s), vec![1, 4]);
        assert_eq!(s.truncate_after(0).unwrap(), 4);
        assert!(segment_firsts(&s).is_empty());
        append_synced(&mut s, [1]);
        let (s, _) = h.reopen(s);
        assert_log(&s, [1]);
        drop(s);
        assert_eq!(h.raw_log_trees(), vec![segment_name(1)]);
    }

    #[test]
    fn the_exact_purge_drops_whole_segments_then_keys_of_the_next() {
        let mut h = SledHarness::with_segments(3);
        let mut s = h.open();
        append_synced(&mut s, 1..=10);
        assert_eq!(s.purge_before(5).unwrap(), 4);
        assert_eq!(segment_firsts(&s), vec![4, 7, 10]);
        assert_log(&s, 5..=10);
        // The segment of 4 now counts 2 entries; all go with it.
        assert_eq!(s.purge_before(7).unwrap(), 2);
        assert_log(&s, 7..=10);
        // Never the last entry.
        assert_eq!(s.purge_before(100).unwrap(), 3);
        assert_eq!(segment_firsts(&s), vec![10]);
        let (s, _) = h.reopen(s);
        assert_log(&s, [10]);
    }

    #[test]
    fn the_log_purger_drops_whole_segments_on_another_thread_while_appends_go_on() {
        let mut h = SledHarness::with_segments(1_000);
        let mut s = h.open();
        for z in 1..=10_000 {
            let payload = if z % 2_500 == 0 {
                entry(5)
            } else {
                b"x".to_vec()
            };
            s.append(z, &payload).unwrap();
        }
        s.sync().unwrap();
        let purger = s.log_purger();
        let purge = std::thread::spawn(move || purger.purge_before(6_000));
        let mut z = 10_000;
        while !purge.is_finished() || z < 12_000 {
            for _ in 0..10 {
                z += 1;
                s.append(z, b"y").unwrap();
            }
            s.sync().unwrap();
        }
        // Whole segments only: 1..=5000; the one of 5001..=6000 has 6000 in it.
        assert_eq!(purge.join().unwrap().unwrap(), 5_000);
        assert_eq!(s.first_zxid().unwrap(), Some(5_001));
        assert_eq!(zxids_of(&s.entries_from(0, 2).unwrap()), vec![5_001, 5_002]);
        assert_eq!(s.entries_from(9_990, 100).unwrap().len(), 100);
        assert_eq!(s.last_zxid(), Some(z));

        // The segment appends go to is never dropped, whatever the zxid.
        let purger = s.log_purger();
        let dropped = purger.purge_before(Zxid::MAX).unwrap();
        assert_eq!(dropped, z as u64 - 5_000 - (z as u64 - 1) % 1_000 - 1);
        let firsts = segment_firsts(&s);
        assert_eq!(firsts.len(), 1);
        assert_eq!(s.first_zxid().unwrap(), Some(firsts[0]));
        s.append(z + 1, b"z").unwrap();
        s.sync().unwrap();
        drop(purger);
        let (s, recovery) = h.reopen(s);
        assert_eq!(recovery.entries_cut, 0);
        assert_eq!(s.first_zxid().unwrap(), Some(firsts[0]));
        assert_eq!(s.last_zxid(), Some(z + 1));
    }

    #[test]
    fn reads_racing_the_log_purger_never_fail() {
        let mut h = SledHarness::with_segments(100);
        let mut s = h.open();
        for z in 1..=3_000 {
            s.append(z, b"entry").unwrap();
        }
        s.sync().unwrap();
        let purger = s.log_purger();
        std::thread::scope(|scope| {
            let purge = scope.spawn(|| {
                for next_first in (101..=2_901).step_by(100) {
                    assert_eq!(purger.purge_before(next_first).unwrap(), 100);
                }
            });
            // Reads from below the purge point, through segments being dropped.
            while !purge.is_finished() {
                let read = s.entries_from(0, 300).unwrap();
                assert!(read.windows(2).all(|w| w[0].zxid < w[1].zxid));
                assert!(s.first_zxid().unwrap().is_some());
            }
        });
        assert_eq!(segment_firsts(&s), vec![2_901]);
        assert_eq!(s.entries_from(0, 1).unwrap()[0].zxid, 2_901);
        assert_eq!(s.read_last_zxid().unwrap(), Some(3_000));
    }

    #[test]
    fn a_legacy_log_tree_is_read_as_the_oldest_segment_and_purged_whole() {
        let mut h = SledHarness::with_segments(3);
        // What versions before segments wrote.
        h.with_raw_tree(LEGACY_LOG_TREE, |log| {
            for zxid in 1..=5 {
                let payload = entry(zxid);
                let chunks = chunk_count(payload.len()).unwrap();
                for (index, piece) in (0..chunks).zip(payload.chunks(CHUNK_BYTES)) {
                    let key = chunk_key(zxid, index);
                    let mut body = chunks.to_be_bytes().to_vec();
                    body.extend_from_slice(piece);
                    log.insert(key, seal(&key, &body)).unwrap();
                }
            }
        });
        let mut s = h.open();
        assert_log(&s, 1..=5);
        assert_eq!(segment_firsts(&s), vec![Zxid::MIN]);
        // It holds more than a segment: the next append starts one.
        append_synced(&mut s, 6..=9);
        assert_eq!(segment_firsts(&s), vec![Zxid::MIN, 6, 9]);
        let (s, _) = h.reopen(s);
        assert_log(&s, 1..=9);
        assert_eq!(s.log_purger().purge_before(7).unwrap(), 5);
        assert_log(&s, 6..=9);
        drop(s);
        assert_eq!(h.raw_log_trees(), [6, 9].map(segment_name).to_vec());
    }

    #[test]
    fn an_empty_legacy_log_tree_is_dropped() {
        let mut h = SledHarness::with_segments(3);
        h.with_raw_tree(LEGACY_LOG_TREE, |_| {});
        assert_eq!(h.raw_log_trees(), vec![LEGACY_LOG_TREE.to_string()]);
        let mut s = h.open();
        assert!(segment_firsts(&s).is_empty());
        append_synced(&mut s, [1]);
        drop(s);
        assert_eq!(h.raw_log_trees(), vec![segment_name(1)]);
    }
}
