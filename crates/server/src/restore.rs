//! `rookery admin snapshot restore`: seeds a new server's storage from a snapshot
//! saved through the admin API, so a server or a whole cluster starts from it.

use rookery_storage::SledStorage;
use rookery_tree::{DataTree, TreeConfig};
use rookery_zab::storage::{MetaStore, SnapshotStore, TxnLog};

use crate::config::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the snapshot is not valid: {0}")]
    Invalid(#[from] rookery_tree::snapshot::SnapshotError),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open storage in {path}: {source}")]
    Storage {
        path: String,
        source: rookery_zab::storage::StorageError,
    },
    #[error(
        "{path} already holds data (last zxid {last_zxid:#x}, epoch {epoch}); restore only into a new dataDir"
    )]
    NotEmpty {
        path: String,
        last_zxid: i64,
        epoch: i64,
    },
}

/// What was restored.
#[derive(Debug, Clone, Copy)]
pub struct Restored {
    pub last_zxid: i64,
    pub digest: u64,
    pub znodes: usize,
}

/// Checks the snapshot (its checksum, structure and digest) and stores it as the
/// newest snapshot of an empty data directory, with the epochs its zxid implies.
pub fn restore_snapshot(cfg: &ServerConfig, bytes: &[u8]) -> Result<Restored, RestoreError> {
    let tree = DataTree::restore_with(
        bytes,
        TreeConfig {
            extended_types: cfg.extended_types_enabled,
            ..TreeConfig::default()
        },
    )?;
    let dir = crate::server::store_dir(cfg);
    let path = dir.display().to_string();
    let storage_err = |source| RestoreError::Storage {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|source| RestoreError::Dir {
        path: path.clone(),
        source,
    })?;
    let mut storage = SledStorage::open(&dir).map_err(storage_err)?;
    let existing = storage
        .last_zxid()
        .into_iter()
        .chain(
            storage
                .list_snapshots()
                .map_err(storage_err)?
                .iter()
                .map(|s| s.last_zxid),
        )
        .max();
    // A server that ran, even without writing, has promised epochs: lowering them
    // could let it vote for a history it once helped replace.
    let epoch = storage
        .accepted_epoch()
        .map_err(storage_err)?
        .unwrap_or(0)
        .max(storage.current_epoch().map_err(storage_err)?.unwrap_or(0));
    if existing.is_some() || epoch > 0 {
        return Err(RestoreError::NotEmpty {
            path,
            last_zxid: existing.unwrap_or(0),
            epoch,
        });
    }
    let last_zxid = tree.last_zxid();
    let epoch = last_zxid >> 32;
    storage
        .save_snapshot(last_zxid, bytes)
        .map_err(storage_err)?;
    storage.set_accepted_epoch(epoch).map_err(storage_err)?;
    storage.set_current_epoch(epoch).map_err(storage_err)?;
    storage
        .set_last_applied_zxid(last_zxid)
        .map_err(storage_err)?;
    storage.sync().map_err(storage_err)?;
    Ok(Restored {
        last_zxid,
        digest: tree.digest(),
        znodes: tree.node_count(),
    })
}
