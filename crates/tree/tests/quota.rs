//! Quota stats kept by apply and hard limits enforced by prep.

mod common;

use common::*;
use rookery_tree::{DataTree, TreeConfig};
use rookery_wire::{CreateMode, ErrorCode};

fn stats(h: &H) -> String {
    String::from_utf8(
        h.tree
            .node("/zookeeper/quota/app/zookeeper_stats")
            .unwrap()
            .data
            .as_deref()
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

fn setup(enforce: bool) -> H {
    let mut h = H::with(TreeConfig {
        enforce_quota: enforce,
        ..TreeConfig::default()
    });
    h.open(S1);
    h.create("/app", b"").unwrap();
    h.create("/app/a", b"xyz").unwrap();
    // What zkCli's setquota does.
    h.create("/zookeeper/quota/app", b"").unwrap();
    h.create(
        "/zookeeper/quota/app/zookeeper_limits",
        b"count=-1,bytes=-1=;countHardLimit=3",
    )
    .unwrap();
    h.create("/zookeeper/quota/app/zookeeper_stats", b"count=0,bytes=0")
        .unwrap();
    h
}

#[test]
fn stats_follow_the_subtree() {
    let mut h = setup(false);
    assert_eq!(
        stats(&h),
        "count=2,bytes=3",
        "recounted when the stats node is created"
    );
    let st = h.tree.stat("/zookeeper/quota/app/zookeeper_stats").unwrap();
    h.create("/app/b", b"12").unwrap();
    assert_eq!(stats(&h), "count=3,bytes=5");
    let st2 = h.tree.stat("/zookeeper/quota/app/zookeeper_stats").unwrap();
    assert_eq!(
        st2.mzxid, st.mzxid,
        "quota updates leave the stats node's Stat alone"
    );
    h.create("/app/c", b"").unwrap(); // soft limits only log
    h.run(S1, &[], set("/app/a", b"", -1)).unwrap();
    assert_eq!(stats(&h), "count=4,bytes=2");
    h.run(S1, &[], del("/app/b", -1)).unwrap();
    assert_eq!(stats(&h), "count=3,bytes=0");
    assert_eq!(h.tree.quota_prefix("/app/a"), Some("/app"));
    assert_eq!(h.tree.quota_prefix("/apple"), None);
    let restored = DataTree::restore(&h.tree.snapshot()).unwrap();
    assert_eq!(restored, h.tree);
    h.run(S1, &[], del("/zookeeper/quota/app/zookeeper_limits", -1))
        .unwrap();
    assert_eq!(h.tree.quota_prefix("/app/a"), None);
    h.create("/app/d", b"zz").unwrap();
    assert_eq!(stats(&h), "count=3,bytes=0");
    assert_eq!(h.tree.digest(), h.tree.recompute_digest());
}

#[test]
fn hard_limits_are_enforced_when_enabled() {
    let mut h = setup(true);
    h.create("/app/b", b"").unwrap();
    assert_eq!(h.create("/app/c", b""), Err(ErrorCode::QuotaExceeded));
    assert_eq!(
        h.run(S1, &[], create("/app/c", b"", CreateMode::Ephemeral)),
        Err(ErrorCode::QuotaExceeded)
    );
    h.run(
        S1,
        &[],
        set(
            "/zookeeper/quota/app/zookeeper_limits",
            b"count=-1,bytes=-1=;byteHardLimit=4",
            -1,
        ),
    )
    .unwrap();
    h.run(S1, &[], set("/app/a", b"abcd", -1)).unwrap();
    assert_eq!(
        h.run(S1, &[], set("/app/a", b"abcde", -1)),
        Err(ErrorCode::QuotaExceeded)
    );
    h.create("/other", b"anything").unwrap();
}

#[test]
fn absurd_stats_do_not_overflow() {
    let mut h = setup(true);
    h.run(
        S1,
        &[],
        set(
            "/zookeeper/quota/app/zookeeper_stats",
            b"count=9223372036854775807,bytes=9223372036854775807",
            -1,
        ),
    )
    .unwrap();
    h.run(
        S1,
        &[],
        set(
            "/zookeeper/quota/app/zookeeper_limits",
            b"count=-1,bytes=-1",
            -1,
        ),
    )
    .unwrap();
    h.create("/app/big", b"x").unwrap();
    assert_eq!(
        stats(&h),
        "count=9223372036854775807,bytes=9223372036854775807"
    );
}
