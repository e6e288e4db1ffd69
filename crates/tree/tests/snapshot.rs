//! Snapshot round trips and corruption handling.

mod common;

use common::*;
use rookery_tree::{DataTree, SnapshotError, TreeConfig};
use rookery_wire::CreateMode;

fn sample() -> DataTree {
    let mut h = H::with_sessions();
    h.create("/a", b"data").unwrap();
    h.create("/a/b", b"").unwrap();
    h.run(
        S1,
        &[],
        create("/a/e", b"eph", CreateMode::EphemeralSequential),
    )
    .unwrap();
    h.run(S1, &[], set("/a", b"more", 0)).unwrap();
    h.run(S2, &[], del("/a/b", -1)).unwrap();
    h.tree
}

#[test]
fn round_trip_preserves_everything() {
    let t = sample();
    let bytes = t.snapshot();
    let r = DataTree::restore(&bytes).unwrap();
    assert_eq!(r, t);
    assert_eq!(r.digest(), t.digest());
    assert_eq!(r.last_zxid(), t.last_zxid());
    assert_eq!(r.get_ephemerals(S1, "/"), vec!["/a/e0000000001"]);
    assert_eq!(r.snapshot(), bytes);
    let fresh = DataTree::default();
    assert_eq!(DataTree::restore(&fresh.snapshot()).unwrap(), fresh);
}

#[test]
fn every_corruption_is_an_error() {
    let bytes = sample().snapshot();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        assert!(DataTree::restore(&b).is_err(), "flipped byte {i}");
    }
    for n in 0..bytes.len() {
        assert!(DataTree::restore(&bytes[..n]).is_err(), "truncated to {n}");
    }
    assert_eq!(DataTree::restore(b"nope"), Err(SnapshotError::TooShort));
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(DataTree::restore(&b), Err(SnapshotError::Magic));
    let mut b = bytes.clone();
    b[4] = 9;
    assert_eq!(DataTree::restore(&b), Err(SnapshotError::Version(9)));
    let mut b = bytes;
    let last = b.len() - 1;
    b[last] ^= 1;
    assert_eq!(DataTree::restore(&b), Err(SnapshotError::Checksum));
}

#[test]
fn structural_errors_are_caught_even_with_a_valid_checksum() {
    // Re-seal a snapshot whose content was edited: remove the root's record by
    // renaming "/" — it becomes an orphan/invalid path, not a panic.
    let t = DataTree::default();
    let mut b = t.snapshot();
    b.truncate(b.len() - 4);
    // The first node is "/" (length 1): find its length prefix and make it "x".
    let pos = b.windows(5).position(|w| w == [0, 0, 0, 1, b'/']).unwrap();
    b[pos + 4] = b'x';
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    assert!(matches!(DataTree::restore(&b), Err(SnapshotError::Path(p)) if p == "x"));
}

#[test]
fn ttl_classification_follows_the_config() {
    let cfg = TreeConfig {
        extended_types: true,
        ..TreeConfig::default()
    };
    let mut h = H::with(cfg.clone());
    h.open(S1);
    h.run(
        S1,
        &[],
        rookery_tree::Op::Create {
            kind: rookery_tree::CreateKind::CreateTtl,
            path: "/t".into(),
            data: Some(vec![]),
            acl: rookery_wire::Acl::open_unsafe(),
            mode: CreateMode::PersistentWithTtl,
            ttl_ms: Some(1000),
        },
    )
    .unwrap();
    let r = DataTree::restore_with(&h.tree.snapshot(), cfg).unwrap();
    assert!(r.ttl_nodes().contains("/t"));
    assert_eq!(r, h.tree);
}
