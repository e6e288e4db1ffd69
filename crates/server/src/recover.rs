//! The tree from the newest snapshot at start, read and built on two threads.

use std::sync::mpsc;

use rookery_storage::SledStorage;
use rookery_tree::snapshot::{RestoredNode, SnapshotDecoder, SnapshotError, TreeBuilder};
use rookery_tree::{DataTree, TreeConfig};
use rookery_zab::Zxid;
use rookery_zab::storage::{Corruption, SnapshotStore, StorageError};
use tracing::warn;

use crate::core::CoreError;

/// Nodes handed from the reading thread to the building one at a time.
const BATCH_NODES: usize = 1024;
/// Batches the reader may be ahead of the builder.
const BATCHES_AHEAD: usize = 16;
/// The reading thread's name (Linux keeps 15 bytes).
const READER_THREAD: &str = "rookery-snapread";

/// The tree from the newest snapshot that reads back whole, skipping (and logging)
/// corrupt ones; `None` without one. A snapshot the store vouches for that does not
/// decode is an error, as a bug would be: skipping it would lose what it holds.
pub(crate) fn restore_latest(
    storage: &SledStorage,
    config: &TreeConfig,
) -> Result<Option<DataTree>, CoreError> {
    for info in storage.list_snapshots()?.iter().rev() {
        match restore(storage, info.last_zxid, config)? {
            Ok(tree) => return Ok(Some(tree)),
            Err(skipped) => warn!(%skipped, "skipping corrupt snapshot"),
        }
    }
    Ok(None)
}

/// Restores one snapshot. A thread of its own reads the chunks and decodes the nodes
/// while this one links them into the tree's map: the restore uses two cores and never
/// holds the snapshot's bytes whole (hundreds of megabytes, which this VM's kernel then
/// has to fault in afresh).
fn restore(
    storage: &SledStorage,
    last_zxid: Zxid,
    config: &TreeConfig,
) -> Result<Result<DataTree, Corruption>, CoreError> {
    let invalid = |e: SnapshotError| CoreError::Recovery(format!("snapshot {last_zxid:#x}: {e}"));
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<RestoredNode>>(BATCHES_AHEAD);
        let reader = std::thread::Builder::new()
            .name(READER_THREAD.to_owned())
            .spawn_scoped(scope, move || read(storage, last_zxid, &tx))
            .map_err(|e| CoreError::Recovery(format!("cannot start {READER_THREAD}: {e}")))?;
        let mut builder = TreeBuilder::default();
        let mut built = Ok(());
        // A builder error ends the loop, which drops the receiver: the reader then stops.
        for batch in rx {
            built = builder.add(batch);
            if built.is_err() {
                break;
            }
        }
        let (read, decoded) = reader
            .join()
            .map_err(|_| CoreError::Recovery(format!("the {READER_THREAD} thread panicked")))?;
        // The store's verdict first: corrupt bytes explain any decoding error.
        if let Err(corruption) = read? {
            return Ok(Err(corruption));
        }
        built.map_err(invalid)?;
        let tail = decoded.and_then(SnapshotDecoder::finish).map_err(invalid)?;
        builder
            .finish(tail, config.clone())
            .map(Ok)
            .map_err(invalid)
    })
}

/// The reading thread: decodes each chunk as the store hands it over and sends the
/// nodes on in batches. Returns the store's verdict and the decoder to finish.
fn read(
    storage: &SledStorage,
    last_zxid: Zxid,
    tx: &mpsc::SyncSender<Vec<RestoredNode>>,
) -> (
    Result<Result<(), Corruption>, StorageError>,
    Result<SnapshotDecoder, SnapshotError>,
) {
    let mut decoder: Option<Result<SnapshotDecoder, SnapshotError>> = None;
    let mut batch = Vec::with_capacity(BATCH_NODES);
    let read = storage.read_snapshot(last_zxid, &mut |len, bytes| {
        let decoding = decoder.get_or_insert_with(|| {
            Ok(SnapshotDecoder::new(
                usize::try_from(len).unwrap_or(usize::MAX),
            ))
        });
        let pushed = match decoding {
            Ok(d) => d.push(bytes, &mut batch),
            Err(_) => return false,
        };
        if let Err(e) = pushed {
            *decoding = Err(e);
            return false;
        }
        if batch.len() >= BATCH_NODES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_NODES));
            // Fails only once the builder has stopped on an error of its own.
            return tx.send(full).is_ok();
        }
        true
    });
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    // A snapshot of no bytes never called back: its decoder finds it too short.
    let decoded = decoder.unwrap_or_else(|| Ok(SnapshotDecoder::new(0)));
    (read, decoded)
}
