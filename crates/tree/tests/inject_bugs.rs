//! The `seq-reuse` bug (`TreeConfig::inject_seq_reuse`) does what it is for: once the
//! leader's in-memory state is new (a restart, a new leader), a sequential create
//! reuses a name already handed out. Runs only with `--features inject-bugs`.
#![cfg(feature = "inject-bugs")]

mod common;

use common::*;
use rookery_tree::{OpResult, PendingChanges, TreeConfig};
use rookery_wire::CreateMode;

fn created(h: &mut H, path: &str) -> String {
    match h.run(S1, &[], create(path, b"", CreateMode::PersistentSequential)) {
        Ok(r) => match r.result {
            OpResult::Create { path, .. } => path,
            other => panic!("{other:?}"),
        },
        Err(e) => panic!("create {path}: {e:?}"),
    }
}

/// Create, delete, "restart" (fresh `PendingChanges`), create: same name twice with
/// the bug; a new name without it.
fn names_across_a_restart(bug: bool) -> (String, String) {
    let mut h = H::with(TreeConfig {
        inject_seq_reuse: bug,
        ..TreeConfig::default()
    });
    h.open(S1);
    h.create("/q", b"").unwrap();
    let first = created(&mut h, "/q/n-");
    h.run(S1, &[], del(&first, -1)).unwrap();
    // What a restarted leader holds: the replicated tree, a new PendingChanges.
    h.pending = PendingChanges::new();
    let second = created(&mut h, "/q/n-");
    (first, second)
}

#[test]
fn seq_reuse_hands_out_a_name_twice_after_a_restart() {
    let (first, second) = names_across_a_restart(true);
    assert_eq!(first, "/q/n-0000000000");
    assert_eq!(second, first, "the bug reuses the deleted node's name");
}

#[test]
fn without_the_bug_the_same_steps_give_a_new_name() {
    let (first, second) = names_across_a_restart(false);
    assert_eq!(first, "/q/n-0000000000");
    // The stored cversion counts the creates, replicated and persisted.
    assert_eq!(second, "/q/n-0000000001");
}
