//! Watch semantics (WatchManager.triggerWatch, DataTree.setWatches, removeWatches).

mod common;

use common::*;
use rookery_tree::watch::SetWatches;
use rookery_tree::{AuthSchemes, WatchManager, WatchedEvent, WatcherKey};
use rookery_wire::codes::perms;
use rookery_wire::{Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, WatcherType};

const W1: WatcherKey = 1;
const W2: WatcherKey = 2;

/// Runs an op and feeds its triggers to the watch manager.
fn fire(
    h: &mut H,
    wm: &mut WatchManager,
    op: rookery_tree::Op,
) -> Vec<(WatcherKey, EventType, String)> {
    let r = h.run(S1, &[], op).unwrap();
    r.triggers
        .iter()
        .flat_map(|t| wm.trigger(t))
        .map(|(w, e)| (w, e.event_type, e.path))
        .collect()
}

fn ev(w: WatcherKey, t: EventType, p: &str) -> (WatcherKey, EventType, String) {
    (w, t, p.to_owned())
}

#[test]
fn standard_watches_are_one_shot() {
    let mut h = H::with_sessions();
    let mut wm = WatchManager::new();
    h.create("/a", b"").unwrap();
    wm.add_data_watch("/a", W1);
    wm.add_child_watch("/a", W2);
    assert_eq!(
        fire(&mut h, &mut wm, set("/a", b"1", -1)),
        vec![ev(W1, EventType::NodeDataChanged, "/a")]
    );
    assert!(
        fire(&mut h, &mut wm, set("/a", b"2", -1)).is_empty(),
        "consumed"
    );
    assert_eq!(
        fire(&mut h, &mut wm, create("/a/b", b"", CreateMode::Persistent)),
        vec![ev(W2, EventType::NodeChildrenChanged, "/a")]
    );
    assert!(fire(&mut h, &mut wm, create("/a/c", b"", CreateMode::Persistent)).is_empty());
    // Exist watch on a missing node fires NodeCreated.
    wm.add_data_watch("/n", W1);
    assert_eq!(
        fire(&mut h, &mut wm, create("/n", b"", CreateMode::Persistent)),
        vec![ev(W1, EventType::NodeCreated, "/n")]
    );
    assert_eq!(wm.watch_count(), 0);
}

#[test]
fn delete_notifies_data_and_child_watchers_once() {
    let mut h = H::with_sessions();
    let mut wm = WatchManager::new();
    h.create("/a", b"").unwrap();
    h.create("/a/b", b"").unwrap();
    wm.add_data_watch("/a/b", W1);
    wm.add_child_watch("/a/b", W1);
    wm.add_child_watch("/a/b", W2);
    wm.add_child_watch("/a", W2);
    assert_eq!(
        fire(&mut h, &mut wm, del("/a/b", -1)),
        vec![
            ev(W1, EventType::NodeDeleted, "/a/b"),
            ev(W2, EventType::NodeDeleted, "/a/b"),
            ev(W2, EventType::NodeChildrenChanged, "/a"),
        ]
    );
    assert_eq!(wm.watch_count(), 0);
}

#[test]
fn persistent_and_recursive() {
    let mut h = H::with_sessions();
    let mut wm = WatchManager::new();
    h.create("/a", b"").unwrap();
    wm.add_watch("/a", W1, AddWatchMode::Persistent);
    wm.add_watch("/a", W2, AddWatchMode::PersistentRecursive);
    for i in 0..2 {
        assert_eq!(
            fire(&mut h, &mut wm, set("/a", b"x", -1)),
            vec![
                ev(W1, EventType::NodeDataChanged, "/a"),
                ev(W2, EventType::NodeDataChanged, "/a")
            ],
            "round {i}"
        );
    }
    // A child create: persistent sees NodeChildrenChanged on /a; recursive sees the
    // NodeCreated of the child, with the child's path, never NodeChildrenChanged.
    assert_eq!(
        fire(&mut h, &mut wm, create("/a/b", b"", CreateMode::Persistent)),
        vec![
            ev(W2, EventType::NodeCreated, "/a/b"),
            ev(W1, EventType::NodeChildrenChanged, "/a")
        ]
    );
    assert_eq!(
        fire(
            &mut h,
            &mut wm,
            create("/a/b/c", b"", CreateMode::Persistent)
        ),
        vec![ev(W2, EventType::NodeCreated, "/a/b/c")]
    );
    assert_eq!(
        fire(&mut h, &mut wm, set("/a/b/c", b"", -1)),
        vec![ev(W2, EventType::NodeDataChanged, "/a/b/c")]
    );
    assert_eq!(
        fire(&mut h, &mut wm, del("/a/b/c", -1)),
        vec![ev(W2, EventType::NodeDeleted, "/a/b/c")]
    );
    assert!(
        fire(
            &mut h,
            &mut wm,
            create("/other", b"", CreateMode::Persistent)
        )
        .is_empty()
    );
    fire(&mut h, &mut wm, del("/a/b", -1));
    // Deleting the watched node itself: persistent watchers get NodeDeleted once and
    // keep their registration.
    assert_eq!(
        fire(&mut h, &mut wm, del("/a", -1)),
        vec![
            ev(W1, EventType::NodeDeleted, "/a"),
            ev(W2, EventType::NodeDeleted, "/a"),
        ]
    );
    assert_eq!(
        fire(&mut h, &mut wm, create("/a", b"", CreateMode::Persistent)),
        vec![
            ev(W1, EventType::NodeCreated, "/a"),
            ev(W2, EventType::NodeCreated, "/a")
        ]
    );
}

#[test]
fn recursive_watch_on_root_sees_everything_but_children_changed() {
    let mut h = H::with_sessions();
    let mut wm = WatchManager::new();
    wm.add_watch("/", W1, AddWatchMode::PersistentRecursive);
    let evs = fire(&mut h, &mut wm, create("/x", b"", CreateMode::Persistent));
    assert_eq!(evs, vec![ev(W1, EventType::NodeCreated, "/x")]);
}

#[test]
fn several_modes_on_one_path() {
    let mut h = H::with_sessions();
    let mut wm = WatchManager::new();
    h.create("/a", b"").unwrap();
    wm.add_data_watch("/a", W1);
    wm.add_watch("/a", W1, AddWatchMode::Persistent);
    wm.add_watch("/a", W1, AddWatchMode::PersistentRecursive);
    assert!(wm.contains("/a", W1, WatcherType::Data));
    assert!(wm.contains("/a", W1, WatcherType::Persistent));
    assert!(wm.contains("/a", W1, WatcherType::PersistentRecursive));
    assert!(!wm.contains("/a", W1, WatcherType::Children));
    assert!(wm.contains("/a", W1, WatcherType::Any));
    // One event per trigger, however many modes match.
    assert_eq!(
        fire(&mut h, &mut wm, set("/a", b"", -1)),
        vec![ev(W1, EventType::NodeDataChanged, "/a")]
    );
    assert!(
        !wm.contains("/a", W1, WatcherType::Data),
        "the standard one was consumed"
    );
    assert!(wm.contains("/a", W1, WatcherType::Persistent));
    assert_eq!(
        wm.remove_watches("/a", W1, WatcherType::Data),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        wm.check_watches("/a", W1, WatcherType::Data),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(wm.remove_watches("/a", W1, WatcherType::Persistent), Ok(()));
    assert_eq!(
        wm.remove_watches("/a", W1, WatcherType::Persistent),
        Err(ErrorCode::NoWatcher)
    );
    assert!(wm.contains("/a", W1, WatcherType::PersistentRecursive));
    assert_eq!(
        wm.check_watches("/a", W2, WatcherType::Any),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(wm.remove_watches("/a", W1, WatcherType::Any), Ok(()));
    assert_eq!(wm.watch_count(), 0);
    assert!(fire(&mut h, &mut wm, set("/a", b"", -1)).is_empty());
}

#[test]
fn disconnect_removes_all_of_a_watchers_registrations() {
    let mut wm = WatchManager::new();
    wm.add_data_watch("/a", W1);
    wm.add_child_watch("/b", W1);
    wm.add_watch("/c", W1, AddWatchMode::PersistentRecursive);
    wm.add_data_watch("/a", W2);
    let s = wm.summary();
    assert_eq!(
        (s.connections, s.paths, s.total),
        (2, 2, 3),
        "data watches, as wchs counts"
    );
    assert_eq!(wm.watch_count(), 4);
    wm.remove_watcher(W1);
    assert_eq!(wm.watch_count(), 1);
    assert_eq!(wm.by_path().get("/a"), Some(&vec![W2]));
    assert!(!wm.by_watcher().contains_key(&W1));
}

#[test]
fn set_watches_reports_missed_events() {
    let mut h = H::with_sessions(); // zxid 2
    for p in ["/same", "/changed", "/kids", "/gone", "/gone2", "/born"] {
        if p != "/born" {
            h.create(p, b"").unwrap();
        }
    }
    let rel = h.zxid;
    h.run(S1, &[], set("/changed", b"x", -1)).unwrap();
    h.create("/kids/k", b"").unwrap();
    h.run(S1, &[], del("/gone", -1)).unwrap();
    h.run(S1, &[], del("/gone2", -1)).unwrap();
    h.create("/born", b"").unwrap();
    let mut wm = WatchManager::new();
    let s = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let data = s(&["/same", "/changed", "/gone"]);
    let exist = s(&["/born", "/never"]);
    let child = s(&["/kids", "/gone2", "/same"]);
    let persistent = s(&["/p"]);
    let events = wm.set_watches(
        &h.tree,
        W1,
        &SetWatches {
            relative_zxid: rel,
            data: &data,
            exist: &exist,
            child: &child,
            persistent: &persistent,
            persistent_recursive: &[],
        },
    );
    let e = |t, p: &str| WatchedEvent {
        event_type: t,
        path: p.into(),
        zxid: -1,
    };
    assert_eq!(
        events,
        vec![
            e(EventType::NodeDataChanged, "/changed"),
            e(EventType::NodeDeleted, "/gone"),
            e(EventType::NodeCreated, "/born"),
            e(EventType::NodeChildrenChanged, "/kids"),
            e(EventType::NodeDeleted, "/gone2"),
        ]
    );
    assert!(wm.contains("/same", W1, WatcherType::Data));
    assert!(wm.contains("/same", W1, WatcherType::Children));
    assert!(wm.contains("/never", W1, WatcherType::Data));
    assert!(
        !wm.contains("/changed", W1, WatcherType::Data),
        "already fired"
    );
    assert!(wm.contains("/p", W1, WatcherType::Persistent));
    // With a current relative zxid nothing is missed.
    let events = wm.set_watches(
        &h.tree,
        W2,
        &SetWatches {
            relative_zxid: h.zxid,
            data: &s(&["/changed"]),
            child: &s(&["/kids"]),
            ..SetWatches::default()
        },
    );
    assert!(events.is_empty());
}

#[test]
fn failed_multi_fires_no_watch() {
    let mut h = H::with_sessions();
    let mut wm = WatchManager::new();
    h.create("/a", b"").unwrap();
    wm.add_data_watch("/a", W1);
    wm.add_child_watch("/", W1);
    let evs = fire(
        &mut h,
        &mut wm,
        rookery_tree::Op::Multi(vec![set("/a", b"", -1), del("/zz", -1)]),
    );
    assert!(evs.is_empty());
    assert_eq!(wm.watch_count(), 2);
}

#[test]
fn events_are_withheld_from_watchers_without_read() {
    let mut h = H::with_sessions();
    let acl = vec![Acl::new(perms::ALL, Id::new("ip", "10.0.0.1"))];
    let r = h
        .run(
            S1,
            &[],
            create_acl("/sec", b"", CreateMode::Persistent, acl),
        )
        .unwrap();
    let created = &r.triggers[0];
    let schemes = AuthSchemes::default();
    assert!(created.visible_to(&schemes, &[Id::new("ip", "10.0.0.1")], false));
    assert!(!created.visible_to(&schemes, &[Id::new("ip", "10.0.0.2")], false));
    assert!(created.visible_to(&schemes, &[], true));
    // NodeChildrenChanged carries the parent's (open) ACL.
    assert!(r.triggers[1].visible_to(&schemes, &[], false));
}
