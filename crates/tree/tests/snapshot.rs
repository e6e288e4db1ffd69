//! Snapshot round trips and corruption handling.

mod common;

use common::*;
use rookery_tree::snapshot::{SnapshotDecoder, TreeBuilder};
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

/// A way to restore a snapshot's bytes.
type Restore = fn(&[u8]) -> Result<DataTree, SnapshotError>;

/// The two ways a snapshot is restored: held whole, and streamed in pieces of 7 bytes.
const RESTORES: [(&str, Restore); 2] = [
    ("whole", DataTree::restore),
    ("streamed", |b| restore_in_pieces(b, 7)),
];

#[test]
fn every_corruption_is_an_error() {
    let bytes = sample().snapshot();
    for (how, restore) in RESTORES {
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            assert!(restore(&b).is_err(), "{how}: flipped byte {i}");
        }
        for n in 0..bytes.len() {
            assert!(restore(&bytes[..n]).is_err(), "{how}: truncated to {n}");
        }
        assert_eq!(restore(b"nope"), Err(SnapshotError::TooShort), "{how}");
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(restore(&b), Err(SnapshotError::Magic), "{how}");
        let mut b = bytes.clone();
        b[4] = 9;
        assert_eq!(restore(&b), Err(SnapshotError::Version(9)), "{how}");
        let mut b = bytes.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(restore(&b), Err(SnapshotError::Checksum), "{how}");
    }
    // Streamed, the decoder is told the length: fewer bytes than that...
    let mut decoder = SnapshotDecoder::new(bytes.len());
    decoder
        .push(&bytes[..bytes.len() - 1], &mut Vec::new())
        .unwrap();
    assert!(matches!(decoder.finish(), Err(SnapshotError::Codec(_))));
    // ... or more.
    let mut decoder = SnapshotDecoder::new(bytes.len() - 1);
    assert!(matches!(
        decoder.push(&bytes, &mut Vec::new()),
        Err(SnapshotError::Trailing(1))
    ));
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

/// A tree large enough that its maps have several levels, with every kind of node the
/// snapshot stores: null data, containers, TTL nodes, ephemerals of two sessions,
/// digest ACLs, deletes and rewrites.
fn larger() -> H {
    let cfg = TreeConfig {
        extended_types: true,
        ..TreeConfig::default()
    };
    let mut h = H::with(cfg);
    h.open(S1);
    h.open(S2);
    let digest_acl = vec![rookery_wire::Acl {
        perms: rookery_wire::codes::perms::ALL,
        id: rookery_wire::Id {
            scheme: "digest".into(),
            id: "u:hash=".into(),
        },
    }];
    for p in 0..12 {
        let (kind, mode) = if p % 4 == 3 {
            (
                rookery_tree::CreateKind::CreateContainer,
                CreateMode::Container,
            )
        } else {
            (rookery_tree::CreateKind::Create2, CreateMode::Persistent)
        };
        let op = rookery_tree::Op::Create {
            kind,
            path: format!("/p{p}"),
            data: Some(b"parent".to_vec()),
            acl: rookery_wire::Acl::open_unsafe(),
            mode,
            ttl_ms: None,
        };
        h.run(S1, &[], op).unwrap();
        for c in 0..25 {
            let path = format!("/p{p}/c{c}");
            let op = match c % 5 {
                0 => rookery_tree::Op::Create {
                    kind: rookery_tree::CreateKind::Create2,
                    path,
                    data: None,
                    acl: rookery_wire::Acl::open_unsafe(),
                    mode: CreateMode::Persistent,
                    ttl_ms: None,
                },
                1 => create(&path, b"eph", CreateMode::Ephemeral),
                2 => create_acl(&path, b"secret", CreateMode::Persistent, digest_acl.clone()),
                3 => rookery_tree::Op::Create {
                    kind: rookery_tree::CreateKind::CreateTtl,
                    path,
                    data: Some(b"ttl".to_vec()),
                    acl: rookery_wire::Acl::open_unsafe(),
                    mode: CreateMode::PersistentWithTtl,
                    ttl_ms: Some(60_000),
                },
                _ => create(
                    &path,
                    format!("v{p}.{c}").as_bytes(),
                    CreateMode::Persistent,
                ),
            };
            let session = if p % 2 == 0 { S1 } else { S2 };
            h.run(session, &[], op).unwrap();
        }
    }
    for p in 0..12 {
        h.run(S1, &[], set(&format!("/p{p}/c4"), b"rewritten", 0))
            .unwrap();
        h.run(S1, &[], del(&format!("/p{p}/c9"), -1)).unwrap();
    }
    h
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    hex(&sha1::Sha1::digest(bytes))
}

/// The bytes `DataTree::snapshot` wrote for `sample()` when the tree was kept in
/// `std` BTreeMaps (format version 2, whose digest counted `/zookeeper/config`): the
/// persistent maps must not change the format, and version 2 must still restore.
const SAMPLE_SNAPSHOT_V2: &str = concat!(
    "524b545302000000000000000773c8d19016f461b000000002010000000000000100007530010000",
    "00000000020000753000000006000000012f00000000000000010000001f00000005776f726c6400",
    "000006616e796f6e6500000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000010000000000000000000000000000000000000003000000022f61000000046d",
    "6f7265000000010000001f00000005776f726c6400000006616e796f6e6500000000000000030000",
    "00000000000600000000000004060000000000000424000000010000000200000000000000000000",
    "000000000000000000070000000e2f612f6530303030303030303031000000036570680000000100",
    "00001f00000005776f726c6400000006616e796f6e65000000000000000500000000000000050000",
    "00000000041a000000000000041a0000000000000000000000000100000000000001000000000000",
    "00050000000a2f7a6f6f6b656570657200000000000000010000001f00000005776f726c64000000",
    "06616e796f6e65000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000112f7a6f6f6b65657065",
    "722f636f6e66696700000000000000010000000100000005776f726c6400000006616e796f6e6500",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000ff",
    "ffffff00000000000000000000000000000000000000102f7a6f6f6b65657065722f71756f746100",
    "000000000000010000001f00000005776f726c6400000006616e796f6e6500000000000000000000",
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000d847e47c",
);

/// The same tree in format version 3 (only the version byte, digest and checksum
/// differ from version 2).
const SAMPLE_SNAPSHOT_V3: &str = concat!(
    "524b5453030000000000000007afe46e77fa39a57200000002010000000000000100007530010000",
    "00000000020000753000000006000000012f00000000000000010000001f00000005776f726c6400",
    "000006616e796f6e6500000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000010000000000000000000000000000000000000003000000022f61000000046d",
    "6f7265000000010000001f00000005776f726c6400000006616e796f6e6500000000000000030000",
    "00000000000600000000000004060000000000000424000000010000000200000000000000000000",
    "000000000000000000070000000e2f612f6530303030303030303031000000036570680000000100",
    "00001f00000005776f726c6400000006616e796f6e65000000000000000500000000000000050000",
    "00000000041a000000000000041a0000000000000000000000000100000000000001000000000000",
    "00050000000a2f7a6f6f6b656570657200000000000000010000001f00000005776f726c64000000",
    "06616e796f6e65000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000112f7a6f6f6b65657065",
    "722f636f6e66696700000000000000010000000100000005776f726c6400000006616e796f6e6500",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000ff",
    "ffffff00000000000000000000000000000000000000102f7a6f6f6b65657065722f71756f746100",
    "000000000000010000001f00000005776f726c6400000006616e796f6e6500000000000000000000",
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000d5c3c682",
);

/// The same tree in format version 4, whose digest hashes eight bytes per step (only
/// the version byte, digest and checksum differ from version 3).
const SAMPLE_SNAPSHOT: &str = concat!(
    "524b5453040000000000000007ef62bed56efbd2b400000002010000000000000100007530010000",
    "00000000020000753000000006000000012f00000000000000010000001f00000005776f726c6400",
    "000006616e796f6e6500000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000010000000000000000000000000000000000000003000000022f61000000046d",
    "6f7265000000010000001f00000005776f726c6400000006616e796f6e6500000000000000030000",
    "00000000000600000000000004060000000000000424000000010000000200000000000000000000",
    "000000000000000000070000000e2f612f6530303030303030303031000000036570680000000100",
    "00001f00000005776f726c6400000006616e796f6e65000000000000000500000000000000050000",
    "00000000041a000000000000041a0000000000000000000000000100000000000001000000000000",
    "00050000000a2f7a6f6f6b656570657200000000000000010000001f00000005776f726c64000000",
    "06616e796f6e65000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000112f7a6f6f6b65657065",
    "722f636f6e66696700000000000000010000000100000005776f726c6400000006616e796f6e6500",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000ff",
    "ffffff00000000000000000000000000000000000000102f7a6f6f6b65657065722f71756f746100",
    "000000000000010000001f00000005776f726c6400000006616e796f6e6500000000000000000000",
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000001e305305",
);

#[test]
fn snapshot_bytes_are_unchanged_by_the_persistent_maps() {
    let bytes = sample().snapshot();
    assert_eq!(hex(&bytes), SAMPLE_SNAPSHOT);
    for old in [SAMPLE_SNAPSHOT_V2, SAMPLE_SNAPSHOT_V3] {
        let old = unhex(old);
        assert_eq!(DataTree::restore(&old).unwrap(), sample());
        assert_eq!(old[21..old.len() - 4], bytes[21..bytes.len() - 4]);
    }
    let h = larger();
    let bytes = h.tree.snapshot();
    assert_eq!(h.tree.node_count(), 304);
    assert_eq!(bytes.len(), 32_181);
    // SHA-1 of what the BTreeMap tree wrote for the same Txns (086eb27d... in format
    // version 2), re-sealed as version 3 (6d6d5d80...) and as version 4 with its digest.
    assert_eq!(sha1_hex(&bytes), "8b46f5f5c8988766a52269997f5778368ee8c76c");
    let cfg = h.tree.config().clone();
    let r = DataTree::restore_with(&bytes, cfg).unwrap();
    assert_eq!(r, h.tree);
    assert_eq!(r.snapshot(), bytes);
    assert_eq!(r.containers().len(), 3);
    assert_eq!(r.ttl_nodes().len(), 60);
    assert_eq!(r.ephemeral_count(), 60);
}

#[test]
fn a_clone_serializes_the_state_it_was_taken_at() {
    let mut h = larger();
    let frozen = h.tree.clone();
    let before = h.tree.snapshot();
    let before_digest = h.tree.digest();
    // Touch every kind of state the clone shares: data, ACLs, children sets, the
    // ephemeral, container and TTL indexes, and the session table.
    h.run(S1, &[], set("/p0/c4", b"after the clone", 1))
        .unwrap();
    h.run(
        S1,
        &[],
        rookery_tree::Op::SetAcl {
            path: "/p1/c4".into(),
            acl: rookery_wire::Acl::read_unsafe(),
            version: -1,
        },
    )
    .unwrap();
    h.create("/p0/new", b"").unwrap();
    h.run(S1, &[], del("/p3/c4", -1)).unwrap();
    h.run(S1, &[], del("/p2/c3", -1)).unwrap();
    h.run(S1, &[], rookery_tree::Op::CloseSession).unwrap();
    h.open(0x0100_0000_0000_0003);
    assert_ne!(h.tree.snapshot(), before);
    assert_ne!(h.tree.digest(), before_digest);

    assert_eq!(frozen.snapshot(), before);
    assert_eq!(frozen.digest(), before_digest);
    assert_eq!(frozen.recompute_digest(), before_digest);
    assert!(frozen.node("/p0/new").is_none());
    assert!(frozen.node("/p3/c4").is_some());
    assert_eq!(frozen.ephemerals(S1).count(), 30);
    assert_eq!(frozen.sessions().len(), 2);
    let cfg = frozen.config().clone();
    assert_eq!(DataTree::restore_with(&before, cfg).unwrap(), frozen);
    // And the live tree is exactly what its own snapshot restores to.
    let cfg = h.tree.config().clone();
    let live = h.tree.snapshot();
    assert_eq!(DataTree::restore_with(&live, cfg).unwrap(), h.tree);
    assert_eq!(h.tree.ephemerals(S1).count(), 0);
    assert_eq!(h.tree.recompute_digest(), h.tree.digest());
}

/// The server moves the clone to its snapshot thread.
#[test]
fn a_tree_can_be_sent_to_another_thread() {
    fn send_and_sync<T: Send + Sync + 'static>() {}
    send_and_sync::<DataTree>();
}

#[test]
fn znodes_with_equal_acls_share_one_list_when_created_and_when_restored() {
    let mut h = H::with_sessions();
    h.create("/x", b"").unwrap();
    h.create("/y", b"").unwrap();
    let shared = |t: &DataTree| {
        let (x, y) = (t.node("/x").unwrap(), t.node("/y").unwrap());
        std::sync::Arc::ptr_eq(&x.acl, &y.acl)
    };
    assert!(shared(&h.tree));
    let restored = DataTree::restore(&h.tree.snapshot()).unwrap();
    assert!(shared(&restored));
    assert_eq!(restored, h.tree);
}

#[test]
fn a_duplicate_or_out_of_order_path_is_an_error() {
    let mut h = H::with_sessions();
    h.create("/a", b"").unwrap();
    h.create("/b", b"").unwrap();
    let resealed_with = |name: u8| {
        let mut b = h.tree.snapshot();
        b.truncate(b.len() - 4);
        let pos = b
            .windows(6)
            .position(|w| w == [0, 0, 0, 2, b'/', b'b'])
            .unwrap();
        b[pos + 5] = name;
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        DataTree::restore(&b)
    };
    assert!(matches!(resealed_with(b'a'), Err(SnapshotError::Duplicate(p)) if p == "/a"));
    assert!(matches!(resealed_with(b'0'), Err(SnapshotError::Order(p)) if p == "/0"));
    // Renamed in order, the file is well formed but its digest no longer matches.
    assert!(matches!(
        resealed_with(b'c'),
        Err(SnapshotError::Digest { .. })
    ));
}

/// Restores `bytes` handed over in pieces of `piece` bytes, as a server streams them.
fn restore_in_pieces(bytes: &[u8], piece: usize) -> Result<DataTree, SnapshotError> {
    let mut decoder = SnapshotDecoder::new(bytes.len());
    let mut builder = TreeBuilder::default();
    for chunk in bytes.chunks(piece) {
        let mut nodes = Vec::new();
        decoder.push(chunk, &mut nodes)?;
        builder.add(nodes)?;
    }
    builder.finish(decoder.finish()?, TreeConfig::default())
}

#[test]
fn a_snapshot_restores_the_same_from_pieces_split_anywhere() {
    let t = sample();
    let bytes = t.snapshot();
    for piece in (1..=64).chain([bytes.len() - 1, bytes.len()]) {
        let r = restore_in_pieces(&bytes, piece).unwrap();
        assert_eq!(r, t, "pieces of {piece}");
        assert_eq!(r.digest(), t.digest(), "pieces of {piece}");
    }
}

#[test]
fn a_path_sorting_between_a_parent_and_its_children_restores() {
    // Byte order puts "/a!" and "/a.b" between "/a" and "/a/b": the builder meets a
    // child whose parent it has already put away.
    let mut h = H::with_sessions();
    for p in ["/a", "/a!", "/a.b", "/a/b", "/a/b/c", "/a/c", "/a!/d", "/b"] {
        h.create(p, p.as_bytes()).unwrap();
    }
    let bytes = h.tree.snapshot();
    assert_eq!(DataTree::restore(&bytes).unwrap(), h.tree);
    for piece in [1, 5, 64] {
        assert_eq!(restore_in_pieces(&bytes, piece).unwrap(), h.tree, "{piece}");
    }
}

#[test]
fn a_length_the_rest_cannot_hold_fails_at_once_when_streamed() {
    let t = sample();
    let mut bytes = t.snapshot();
    // The length of "/a"'s data ("more"), made larger than the whole snapshot.
    let at = bytes
        .windows(6)
        .position(|w| w == [0, 0, 0, 2, b'/', b'a'])
        .unwrap()
        + 6;
    assert_eq!(&bytes[at..at + 4], &[0, 0, 0, 4]);
    bytes[at..at + 4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    let mut decoder = SnapshotDecoder::new(bytes.len());
    let pieces: Vec<&[u8]> = bytes.chunks(3).collect();
    let failed_at = pieces
        .iter()
        .position(|piece| decoder.push(piece, &mut Vec::new()).is_err())
        .expect("an error");
    assert!(
        failed_at < pieces.len() - 1,
        "waited for the last piece ({failed_at} of {})",
        pieces.len()
    );
}
