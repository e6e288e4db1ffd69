//! Measures group commit on SledStorage: entries/s with 1, 10 and 100 appends per sync,
//! and the on-disk size of 100k 100-byte entries. Numbers only, no assertions.
//!
//! `cargo run --release -p rookery-storage --example append_throughput [DIR]`
//! DIR (default: the current directory) should be on the disk under test, not tmpfs.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rookery_storage::SledStorage;
use rookery_zab::storage::{StorageError, TxnLog};

const ENTRY_BYTES: usize = 100;
const RUN_FOR: Duration = Duration::from_secs(3);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(std::env::current_dir, |p| Ok(p.into()))?;
    let payload = [0xab_u8; ENTRY_BYTES];

    // The disk's own price of a sync, for scale.
    let raw = tempfile::tempdir_in(&base)?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(raw.path().join("f"))?;
    let (mut syncs, started) = (0_u64, Instant::now());
    while started.elapsed() < RUN_FOR {
        file.write_all(&payload)?;
        file.sync_data()?;
        syncs += 1;
    }
    println!(
        "raw write+fdatasync: {:.0} syncs/s",
        syncs as f64 / started.elapsed().as_secs_f64()
    );

    // sled alone, flush() without our fdatasync: what the extra fdatasync costs.
    let dir = tempfile::tempdir_in(&base)?;
    let db = sled::open(dir.path())?;
    let (mut key, started) = (0_u64, Instant::now());
    while started.elapsed() < RUN_FOR {
        key += 1;
        db.insert(key.to_be_bytes(), &payload[..])?;
        db.flush()?;
    }
    println!(
        "sled insert+flush() only, batch 1: {:.0} entries/s",
        key as f64 / started.elapsed().as_secs_f64()
    );
    drop(db);

    for batch in [1_u64, 10, 100] {
        let dir = tempfile::tempdir_in(&base)?;
        let mut storage = SledStorage::open(dir.path())?;
        let (mut zxid, mut syncs, started) = (0_i64, 0_u64, Instant::now());
        while started.elapsed() < RUN_FOR {
            for _ in 0..batch {
                zxid += 1;
                storage.append(zxid, &payload)?;
            }
            storage.sync()?;
            syncs += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "batch {batch:>3}: {:>8.0} entries/s, {:>6.0} syncs/s, {:.3} ms/sync",
            zxid as f64 / secs,
            syncs as f64 / secs,
            secs * 1000.0 / syncs as f64
        );
    }

    let dir = tempfile::tempdir_in(&base)?;
    let started = Instant::now();
    write_entries(dir.path(), 100_000, &payload)?;
    let (apparent, allocated) = dir_size(dir.path())?;
    println!(
        "100k x {ENTRY_BYTES} B entries (batches of 1000): written in {:?}; on disk {:.1} MiB \
         apparent, {:.1} MiB allocated ({:.0} B/entry allocated)",
        started.elapsed(),
        apparent as f64 / (1 << 20) as f64,
        allocated as f64 / (1 << 20) as f64,
        allocated as f64 / 100_000.0
    );
    let started = Instant::now();
    let storage = SledStorage::open(dir.path())?;
    println!(
        "reopen with recovery scan of 100k entries: {:?} (cut {})",
        started.elapsed(),
        storage.recovery().entries_cut
    );
    Ok(())
}

fn write_entries(dir: &Path, count: i64, payload: &[u8]) -> Result<(), StorageError> {
    let mut storage = SledStorage::open(dir)?;
    for zxid in 1..=count {
        storage.append(zxid, payload)?;
        if zxid % 1000 == 0 {
            storage.sync()?;
        }
    }
    storage.sync()
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn dir_size(dir: &Path) -> std::io::Result<(u64, u64)> {
    let (mut apparent, mut allocated) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = dir_size(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((apparent, allocated))
}
