//! The storage conformance suite: every implementation of the storage traits runs these
//! checks (openraft's storage-suite pattern). Each check takes a fresh [`Harness`]; the
//! checks panic on failure, so call them from `#[test]` functions.

// A test suite (compiled only for tests and the `conformance` feature): a failed
// storage call is a failed check, so unwrapping is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    LogEntry, LogRecovery, MetaStore, RecordKind, SnapshotStore, StorageError, TxnLog, Zxid, purge,
};

/// How the suite opens, reopens, crashes and damages one implementation.
pub trait Harness {
    type Storage: TxnLog + MetaStore + SnapshotStore;

    /// Opens the storage over this harness's place, empty the first time.
    fn open(&mut self) -> Self::Storage;

    /// Closes and opens again; returns what the recovery at open reported.
    fn reopen(&mut self, storage: Self::Storage) -> (Self::Storage, LogRecovery);

    /// Crashes, losing everything not synced, and restarts; `None` if the implementation
    /// cannot simulate a crash in-process (sled: a kill -9 test covers it instead).
    fn crash(&mut self, storage: Self::Storage) -> Option<(Self::Storage, LogRecovery)> {
        drop(storage);
        None
    }

    /// Damages the stored bytes of log entry `zxid`, then reopens.
    fn corrupt_log_entry(
        &mut self,
        storage: Self::Storage,
        zxid: Zxid,
    ) -> (Self::Storage, LogRecovery);

    /// Damages the stored bytes of snapshot `last_zxid`, then reopens.
    fn corrupt_snapshot(&mut self, storage: Self::Storage, last_zxid: Zxid) -> Self::Storage;
}

/// Runs every check, each against a fresh harness from `new_harness`.
pub fn run_all<H: Harness>(mut new_harness: impl FnMut() -> H) {
    for (name, check) in checks::<H>() {
        eprintln!("storage conformance: {name}");
        check(&mut new_harness());
    }
}

/// A named conformance check.
pub type Check<H> = (&'static str, fn(&mut H));

/// Every check by name, for implementations that want one `#[test]` each.
pub fn checks<H: Harness>() -> Vec<Check<H>> {
    vec![
        ("append_in_order", append_in_order::<H>),
        (
            "synced_entries_survive_reopen",
            synced_entries_survive_reopen::<H>,
        ),
        ("crash_keeps_synced_prefix", crash_keeps_synced_prefix::<H>),
        ("truncate_after", truncate_after::<H>),
        ("purge_before", purge_before::<H>),
        ("meta_survives_reopen", meta_survives_reopen::<H>),
        ("snapshots_save_load_list", snapshots_save_load_list::<H>),
        (
            "purge_retains_snapshots_and_needed_log",
            purge_retains_snapshots_and_needed_log::<H>,
        ),
        (
            "corrupt_snapshot_is_skipped",
            corrupt_snapshot_is_skipped::<H>,
        ),
        ("corrupt_log_entry_is_cut", corrupt_log_entry_is_cut::<H>),
    ]
}

/// A deterministic payload per zxid, of varying length, so mixed-up entries show.
pub fn payload(zxid: Zxid, len: usize) -> Vec<u8> {
    let seed = zxid.to_be_bytes();
    (0..len)
        .map(|i| seed[i % 8] ^ (i as u8).wrapping_mul(31))
        .collect()
}

fn append_all<S: TxnLog>(storage: &mut S, zxids: impl IntoIterator<Item = Zxid>) {
    for zxid in zxids {
        storage
            .append(zxid, &payload(zxid, 16 + (zxid as usize % 50)))
            .unwrap();
    }
}

fn all_entries<S: TxnLog>(storage: &S) -> Vec<LogEntry> {
    storage.entries_from(Zxid::MIN, usize::MAX).unwrap()
}

fn zxids(entries: &[LogEntry]) -> Vec<Zxid> {
    entries.iter().map(|e| e.zxid).collect()
}

fn assert_payloads(entries: &[LogEntry]) {
    for entry in entries {
        assert_eq!(
            entry.payload,
            payload(entry.zxid, 16 + (entry.zxid as usize % 50)),
            "payload of {:#x}",
            entry.zxid
        );
    }
}

pub fn append_in_order<H: Harness>(h: &mut H) {
    let mut s = h.open();
    assert_eq!(s.last_zxid(), None);
    assert_eq!(s.first_zxid().unwrap(), None);
    assert!(all_entries(&s).is_empty());
    append_all(&mut s, [1, 2, 3]);
    for bad in [3, 2, -1] {
        match s.append(bad, b"x") {
            Err(StorageError::OutOfOrder { last: 3, zxid }) => assert_eq!(zxid, bad),
            other => panic!("append {bad} after 3 gave {other:?}"),
        }
    }
    // Gaps are allowed (a new epoch jumps); the epoch boundary must order correctly.
    let next_epoch = (1_i64 << 32) | 1;
    s.append(
        next_epoch,
        &payload(next_epoch, 16 + (next_epoch as usize % 50)),
    )
    .unwrap();
    // An empty payload and one large enough to need splitting on disk.
    s.append(next_epoch + 1, b"").unwrap();
    let big = payload(next_epoch + 2, 300 * 1024);
    s.append(next_epoch + 2, &big).unwrap();
    s.sync().unwrap();
    assert_eq!(s.last_zxid(), Some(next_epoch + 2));
    assert_eq!(s.first_zxid().unwrap(), Some(1));

    let all = all_entries(&s);
    assert_eq!(
        zxids(&all),
        vec![1, 2, 3, next_epoch, next_epoch + 1, next_epoch + 2]
    );
    assert_payloads(&all[..4]);
    assert_eq!(all[4].payload, b"");
    assert_eq!(all[5].payload, big);

    assert_eq!(zxids(&s.entries_from(2, 1).unwrap()), vec![2]);
    assert_eq!(
        zxids(&s.entries_from(4, 10).unwrap()),
        vec![next_epoch, next_epoch + 1, next_epoch + 2]
    );
    assert_eq!(
        zxids(&s.entries_from(next_epoch + 3, 10).unwrap()),
        Vec::<Zxid>::new()
    );
    assert!(s.entries_from(1, 0).unwrap().is_empty());
    // A visit sees what the reads return, from its zxid on, and stops when told.
    let mut seen = Vec::new();
    s.visit_from(3, &mut |zxid, payload| {
        seen.push(LogEntry {
            zxid,
            payload: payload.to_vec(),
        });
        seen.len() < 3
    })
    .unwrap();
    assert_eq!(seen, all[2..5]);
    let mut seen = Vec::new();
    s.visit_from(2, &mut |zxid, _| {
        seen.push(zxid);
        zxid < 3
    })
    .unwrap();
    assert_eq!(seen, vec![2, 3]);

    let (s, recovery) = h.reopen(s);
    assert_eq!(recovery.entries_cut, 0);
    assert_eq!(all_entries(&s), all);
}

pub fn synced_entries_survive_reopen<H: Harness>(h: &mut H) {
    let mut s = h.open();
    append_all(&mut s, 1..=10);
    s.sync().unwrap();
    let (mut s, recovery) = h.reopen(s);
    assert_eq!(recovery.entries_cut, 0);
    assert_eq!(recovery.last_zxid, Some(10));
    assert_eq!(s.last_zxid(), Some(10));
    let all = all_entries(&s);
    assert_eq!(zxids(&all), (1..=10).collect::<Vec<_>>());
    assert_payloads(&all);
    assert!(matches!(
        s.append(10, b"again"),
        Err(StorageError::OutOfOrder { last: 10, zxid: 10 })
    ));
    append_all(&mut s, 11..=12);
    s.sync().unwrap();
    let (s, _) = h.reopen(s);
    assert_eq!(s.last_zxid(), Some(12));
}

pub fn crash_keeps_synced_prefix<H: Harness>(h: &mut H) {
    let mut s = h.open();
    append_all(&mut s, 1..=5);
    s.sync().unwrap();
    s.set_accepted_epoch(3).unwrap();
    append_all(&mut s, 6..=8);
    let Some((mut s, recovery)) = h.crash(s) else {
        return;
    };
    let all = all_entries(&s);
    // Synced entries are all there; unsynced ones may or may not be, but only as a
    // gap-free continuation with the right bytes.
    assert!(all.len() >= 5 && all.len() <= 8, "{:?}", zxids(&all));
    assert_eq!(zxids(&all), (1..=all.len() as Zxid).collect::<Vec<_>>());
    assert_payloads(&all);
    assert_eq!(recovery.last_zxid, s.last_zxid());
    assert_eq!(
        s.accepted_epoch().unwrap(),
        Some(3),
        "epochs are durable on set"
    );
    // The node goes on from whatever survived.
    let next = s.last_zxid().unwrap_or(0) + 1;
    append_all(&mut s, next..=next + 1);
    s.sync().unwrap();
}

pub fn truncate_after<H: Harness>(h: &mut H) {
    let mut s = h.open();
    append_all(&mut s, 1..=10);
    s.sync().unwrap();
    assert_eq!(s.truncate_after(100).unwrap(), 0);
    assert_eq!(s.truncate_after(6).unwrap(), 4);
    assert_eq!(s.last_zxid(), Some(6));
    assert_eq!(zxids(&all_entries(&s)), (1..=6).collect::<Vec<_>>());
    // The truncated zxids are free again, with different bytes this time.
    s.append(7, b"after trunc").unwrap();
    s.sync().unwrap();
    let (mut s, _) = h.reopen(s);
    let all = all_entries(&s);
    assert_eq!(zxids(&all), (1..=7).collect::<Vec<_>>());
    assert_eq!(all[6].payload, b"after trunc");
    assert_payloads(&all[..6]);

    // Truncation is durable on return, without a later sync.
    assert_eq!(s.truncate_after(3).unwrap(), 4);
    let (mut s, _) = match h.crash(s) {
        Some(crashed) => crashed,
        None => h.open_after_drop(),
    };
    assert_eq!(s.last_zxid(), Some(3));
    assert_eq!(s.truncate_after(0).unwrap(), 3);
    assert_eq!(s.last_zxid(), None);
    s.append(1, b"fresh").unwrap();
}

/// Lets a check continue after a harness without crash support dropped the storage.
trait OpenAfterDrop: Harness {
    fn open_after_drop(&mut self) -> (Self::Storage, LogRecovery);
}

impl<H: Harness> OpenAfterDrop for H {
    fn open_after_drop(&mut self) -> (Self::Storage, LogRecovery) {
        let s = self.open();
        self.reopen(s)
    }
}

pub fn purge_before<H: Harness>(h: &mut H) {
    let mut s = h.open();
    assert_eq!(s.purge_before(5).unwrap(), 0, "purging an empty log");
    append_all(&mut s, 1..=10);
    s.sync().unwrap();
    assert_eq!(s.purge_before(4).unwrap(), 3);
    assert_eq!(s.first_zxid().unwrap(), Some(4));
    assert_eq!(zxids(&s.entries_from(0, 2).unwrap()), vec![4, 5]);
    // Never the last entry: it carries the ordering high-water mark.
    assert_eq!(s.purge_before(100).unwrap(), 6);
    assert_eq!(zxids(&all_entries(&s)), vec![10]);
    assert!(s.append(10, b"x").is_err());
    append_all(&mut s, [11]);
    s.sync().unwrap();
    let (s, _) = h.reopen(s);
    assert_eq!(zxids(&all_entries(&s)), vec![10, 11]);
    assert_payloads(&all_entries(&s));
}

pub fn meta_survives_reopen<H: Harness>(h: &mut H) {
    let mut s = h.open();
    assert_eq!(s.accepted_epoch().unwrap(), None);
    assert_eq!(s.current_epoch().unwrap(), None);
    assert_eq!(s.last_applied_zxid().unwrap(), None);
    assert_eq!(s.config().unwrap(), None);
    s.set_accepted_epoch(5).unwrap();
    s.set_current_epoch(4).unwrap();
    s.set_config(b"server.1=a:2888:3888:participant\nversion=100000000")
        .unwrap();
    s.set_last_applied_zxid(0x4_0000_0007).unwrap();
    s.sync().unwrap();
    let (mut s, _) = h.reopen(s);
    assert_eq!(s.accepted_epoch().unwrap(), Some(5));
    assert_eq!(s.current_epoch().unwrap(), Some(4));
    assert_eq!(s.last_applied_zxid().unwrap(), Some(0x4_0000_0007));
    assert_eq!(
        s.config().unwrap().as_deref(),
        Some(&b"server.1=a:2888:3888:participant\nversion=100000000"[..])
    );

    // Epochs and config are durable when set, with no sync after them.
    s.set_accepted_epoch(6).unwrap();
    s.set_current_epoch(6).unwrap();
    s.set_config(b"").unwrap();
    let (s, _) = match h.crash(s) {
        Some(crashed) => crashed,
        None => h.open_after_drop(),
    };
    assert_eq!(s.accepted_epoch().unwrap(), Some(6));
    assert_eq!(s.current_epoch().unwrap(), Some(6));
    assert_eq!(s.config().unwrap().as_deref(), Some(&b""[..]));
}

pub fn snapshots_save_load_list<H: Harness>(h: &mut H) {
    let mut s = h.open();
    let empty = s.load_latest_snapshot().unwrap();
    assert!(empty.snapshot.is_none() && empty.skipped.is_empty());
    assert!(s.list_snapshots().unwrap().is_empty());
    assert!(!s.delete_snapshot(1).unwrap());

    let big = payload(300, 700 * 1024);
    s.save_snapshot(100, b"snap at 100").unwrap();
    s.save_snapshot(300, &big).unwrap();
    s.save_snapshot(200, b"").unwrap();
    let (mut s, _) = h.reopen(s);
    let listed: Vec<(Zxid, u64)> = s
        .list_snapshots()
        .unwrap()
        .iter()
        .map(|i| (i.last_zxid, i.len_bytes))
        .collect();
    assert_eq!(listed, vec![(100, 11), (200, 0), (300, big.len() as u64)]);
    let latest = s.load_latest_snapshot().unwrap();
    assert!(latest.skipped.is_empty());
    let latest = latest.snapshot.unwrap();
    assert_eq!(latest.last_zxid, 300);
    assert!(latest.data == big, "big snapshot round trip");
    assert_eq!(s.load_snapshot(100).unwrap().unwrap().data, b"snap at 100");
    assert!(s.load_snapshot(150).unwrap().is_err(), "a missing snapshot");

    // Saving the same zxid again replaces it, big to small.
    s.save_snapshot(300, b"smaller").unwrap();
    assert_eq!(s.load_snapshot(300).unwrap().unwrap().data, b"smaller");
    assert!(s.delete_snapshot(100).unwrap());
    let (s, _) = h.reopen(s);
    let zxids: Vec<Zxid> = s
        .list_snapshots()
        .unwrap()
        .iter()
        .map(|i| i.last_zxid)
        .collect();
    assert_eq!(zxids, vec![200, 300]);
    assert_eq!(
        s.load_latest_snapshot().unwrap().snapshot.unwrap().data,
        b"smaller"
    );
}

pub fn purge_retains_snapshots_and_needed_log<H: Harness>(h: &mut H) {
    let mut s = h.open();
    append_all(&mut s, 1..=70);
    s.sync().unwrap();
    // No snapshot: the log is the only copy and stays whole.
    let report = purge(&mut s, 3).unwrap();
    assert_eq!(report.log_entries_purged, 0);
    for zxid in [10, 20, 30, 40, 50, 60] {
        s.save_snapshot(zxid, &payload(zxid, 100)).unwrap();
    }
    // A count below the minimum is raised to it.
    let report = purge(&mut s, 1).unwrap();
    assert_eq!(report.snapshots.retained, vec![60, 50, 40]);
    assert_eq!(report.snapshots.deleted, vec![30, 20, 10]);
    assert_eq!(report.log_entries_purged, 39);
    assert_eq!(s.first_zxid().unwrap(), Some(40));
    s.sync().unwrap();
    let (mut s, _) = h.reopen(s);
    let zxids: Vec<Zxid> = s
        .list_snapshots()
        .unwrap()
        .iter()
        .map(|i| i.last_zxid)
        .collect();
    assert_eq!(zxids, vec![40, 50, 60]);
    assert_eq!(s.first_zxid().unwrap(), Some(40));
    assert_eq!(s.last_zxid(), Some(70));
    // Nothing more to do with a larger count.
    let report = purge(&mut s, 5).unwrap();
    assert!(report.snapshots.deleted.is_empty());
    assert_eq!(report.log_entries_purged, 0);
}

pub fn corrupt_snapshot_is_skipped<H: Harness>(h: &mut H) {
    let mut s = h.open();
    for zxid in [10, 20, 30] {
        s.save_snapshot(zxid, &payload(zxid, 200 * 1024)).unwrap();
    }
    let mut s = h.corrupt_snapshot(s, 30);
    let loaded = s.load_latest_snapshot().unwrap();
    let snapshot = loaded.snapshot.unwrap();
    assert_eq!(snapshot.last_zxid, 20);
    assert!(snapshot.data == payload(20, 200 * 1024));
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].kind, RecordKind::Snapshot);
    assert_eq!(loaded.skipped[0].id, format!("{:#x}", 30));
    // The corrupt one does not count toward retention, nor is it deleted.
    let retention = s.retain_snapshots(3).unwrap();
    assert_eq!(retention.retained, vec![20, 10]);
    assert!(retention.deleted.is_empty());
    assert_eq!(retention.corrupt_kept.len(), 1);
}

pub fn corrupt_log_entry_is_cut<H: Harness>(h: &mut H) {
    let mut s = h.open();
    append_all(&mut s, 1..=10);
    s.sync().unwrap();
    let (mut s, recovery) = h.corrupt_log_entry(s, 7);
    assert_eq!(recovery.entries_cut, 4);
    assert_eq!(recovery.last_zxid, Some(6));
    let corruption = recovery.first_corruption.unwrap();
    assert_eq!(corruption.kind, RecordKind::LogEntry);
    assert_eq!(corruption.id, format!("{:#x}", 7));
    assert_eq!(s.last_zxid(), Some(6));
    let all = all_entries(&s);
    assert_eq!(zxids(&all), (1..=6).collect::<Vec<_>>());
    assert_payloads(&all);
    // The cut is durable, and the log continues from it.
    append_all(&mut s, 7..=8);
    s.sync().unwrap();
    let (s, recovery) = h.reopen(s);
    assert_eq!(recovery.entries_cut, 0);
    assert_eq!(s.last_zxid(), Some(8));
    assert_payloads(&all_entries(&s));
}
