//! The tree from the newest snapshot at start, read and built on two threads.

use std::sync::atomic::{AtomicBool, Ordering};
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
const READER_THREAD: &str = "rookery-snaprd";

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
/// holds the snapshot's bytes whole (hundreds of megabytes, each page of which costs
/// a fault the first time it is touched).
fn restore(
    storage: &SledStorage,
    last_zxid: Zxid,
    config: &TreeConfig,
) -> Result<Result<DataTree, Corruption>, CoreError> {
    let invalid = |e: SnapshotError| CoreError::Recovery(format!("snapshot {last_zxid:#x}: {e}"));
    let stop = AtomicBool::new(false);
    let (built, read, decoded) = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<RestoredNode>>(BATCHES_AHEAD);
        let stop = &stop;
        let reader = std::thread::Builder::new()
            .name(READER_THREAD.to_owned())
            .spawn_scoped(scope, move || read(storage, last_zxid, &tx, stop))
            .map_err(|e| CoreError::Recovery(format!("cannot start {READER_THREAD}: {e}")))?;
        let mut builder = TreeBuilder::default();
        let mut built = Ok(());
        for batch in rx {
            built = builder.add(batch);
            if built.is_err() {
                // The reader stops at its next piece (or send: the receiver goes).
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        let (read, decoded) = reader
            .join()
            .map_err(|_| CoreError::Recovery(format!("the {READER_THREAD} thread panicked")))?;
        Ok::<_, CoreError>((built.map(|()| builder), read?, decoded))
    })?;
    // The store's verdict first: corrupt bytes explain any decoding error. A read
    // stopped early by one has not checked the rest, so it is read through for that.
    let stopped = built.is_err() || decoded.is_err();
    let verdict = if stopped {
        storage.read_snapshot(last_zxid, &mut |_, _| true)?
    } else {
        read
    };
    if let Err(corruption) = verdict {
        return Ok(Err(corruption));
    }
    let builder = built.map_err(invalid)?;
    let tail = decoded.and_then(SnapshotDecoder::finish).map_err(invalid)?;
    builder
        .finish(tail, config.clone())
        .map(Ok)
        .map_err(invalid)
}

/// The reading thread: decodes each chunk as the store hands it over and sends the
/// nodes on in batches. Returns the store's verdict and the decoder to finish.
fn read(
    storage: &SledStorage,
    last_zxid: Zxid,
    tx: &mpsc::SyncSender<Vec<RestoredNode>>,
    stop: &AtomicBool,
) -> (
    Result<Result<(), Corruption>, StorageError>,
    Result<SnapshotDecoder, SnapshotError>,
) {
    let mut decoder: Option<Result<SnapshotDecoder, SnapshotError>> = None;
    let mut batch = Vec::with_capacity(BATCH_NODES);
    let read = storage.read_snapshot(last_zxid, &mut |len, bytes| {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_storage::SEGMENT_ENTRIES;
    use rookery_tree::txn::{CreateKind, Txn, TxnHeader};

    /// `/a` with `children` children, each created by its own Txn.
    fn tree_with(children: usize) -> DataTree {
        let mut tree = DataTree::default();
        let mut zxid = 0;
        let mut create = |tree: &mut DataTree, path: String, parent_cversion: i32| {
            zxid += 1;
            let header = TxnHeader {
                session_id: 0,
                cxid: 0,
                zxid,
                time_ms: 1,
            };
            let txn = Txn::Create {
                kind: CreateKind::Create,
                path,
                data: Some(b"v".to_vec()),
                acl: rookery_wire::Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion,
            };
            tree.apply(&header, txn);
        };
        create(&mut tree, "/a".into(), 1);
        for i in 0..children {
            create(&mut tree, format!("/a/n{i:06}"), i as i32 + 1);
        }
        tree
    }

    fn save(storage: &mut SledStorage, tree: &DataTree) {
        storage
            .save_snapshot(tree.last_zxid(), &tree.snapshot())
            .unwrap();
    }

    /// More nodes than the channel holds, so the reader blocks on it.
    const MANY: usize = BATCH_NODES * (BATCHES_AHEAD + 4);

    #[test]
    fn the_newest_snapshot_restores_on_two_threads_as_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = SledStorage::open(dir.path()).unwrap();
        let config = TreeConfig::default();
        assert!(restore_latest(&storage, &config).unwrap().is_none());
        let older = tree_with(3);
        save(&mut storage, &older);
        let tree = tree_with(MANY);
        save(&mut storage, &tree);
        let restored = restore_latest(&storage, &config).unwrap().unwrap();
        assert_eq!(restored, tree);
        assert_eq!(restored.digest(), tree.digest());
    }

    #[test]
    fn a_corrupt_newest_snapshot_is_skipped_for_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = SledStorage::open(dir.path()).unwrap();
        let older = tree_with(3);
        save(&mut storage, &older);
        let newest = tree_with(MANY);
        save(&mut storage, &newest);
        drop(storage);
        // A chunk well inside it: the reader has sent nodes on before the store
        // finds the damage.
        rookery_storage::testing::corrupt_snapshot_chunk(dir.path(), newest.last_zxid(), 40);
        let storage = rookery_storage::testing::open_retrying(dir.path(), SEGMENT_ENTRIES);
        let restored = restore_latest(&storage, &TreeConfig::default())
            .unwrap()
            .unwrap();
        assert_eq!(restored, older);
    }

    #[test]
    fn a_snapshot_the_store_vouches_for_that_does_not_build_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = SledStorage::open(dir.path()).unwrap();
        let tree = tree_with(MANY);
        // "/a" renamed "/A" (still in order): every child after it is an orphan, and
        // the builder stops at the first while the reader has thousands more to send.
        let mut bytes = tree.snapshot();
        bytes.truncate(bytes.len() - 4);
        let at = bytes
            .windows(6)
            .position(|w| w == [0, 0, 0, 2, b'/', b'a'])
            .unwrap();
        bytes[at + 5] = b'A';
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        storage.save_snapshot(tree.last_zxid(), &bytes).unwrap();
        let err = restore_latest(&storage, &TreeConfig::default()).unwrap_err();
        assert!(
            matches!(&err, CoreError::Recovery(m) if m.contains("has no parent")),
            "{err}"
        );
    }
}
