//! Property test: the WatchManager against a plain set-of-registrations model of
//! ZooKeeper's WatchManager (two tables, modes per (path, watcher)).

use std::collections::BTreeSet;

use proptest::prelude::*;
use rookery_tree::WatchManager;
use rookery_wire::{AddWatchMode, ErrorCode, EventType, WatcherType};

const PATHS: &[&str] = &["/", "/a", "/a/b", "/a/b/c", "/x"];
const STD: u8 = 0;
const PER: u8 = 1;
const REC: u8 = 2;

#[derive(Debug, Clone)]
enum W {
    Data(usize, u64),
    Child(usize, u64),
    Add(usize, u64, bool),
    Remove(usize, u64, WatcherType),
    Trigger(usize, EventType),
    Disconnect(u64),
}

fn w_op() -> impl Strategy<Value = W> {
    let p = 0..PATHS.len();
    let w = 1..4u64;
    let wt = prop_oneof![
        Just(WatcherType::Children),
        Just(WatcherType::Data),
        Just(WatcherType::Any),
        Just(WatcherType::Persistent),
        Just(WatcherType::PersistentRecursive)
    ];
    let ev = prop_oneof![
        Just(EventType::NodeCreated),
        Just(EventType::NodeDeleted),
        Just(EventType::NodeDataChanged),
        Just(EventType::NodeChildrenChanged)
    ];
    prop_oneof![
        1 => (p.clone(), w.clone()).prop_map(|(p, w)| W::Data(p, w)),
        1 => (p.clone(), w.clone()).prop_map(|(p, w)| W::Child(p, w)),
        1 => (p.clone(), w.clone(), any::<bool>()).prop_map(|(p, w, r)| W::Add(p, w, r)),
        1 => (p.clone(), w.clone(), wt).prop_map(|(p, w, t)| W::Remove(p, w, t)),
        3 => (p, ev).prop_map(|(p, e)| W::Trigger(p, e)),
        1 => w.prop_map(W::Disconnect),
    ]
}

type Reg = (u8, &'static str, u64, u8);

fn ancestors(p: &str) -> Vec<&'static str> {
    PATHS
        .iter()
        .copied()
        .filter(|a| *a != p && (*a == "/" || p.starts_with(&format!("{a}/"))))
        .collect()
}

fn fire(regs: &mut BTreeSet<Reg>, t: u8, path: &'static str) -> BTreeSet<u64> {
    let mut fired: BTreeSet<u64> = regs
        .iter()
        .filter(|r| r.0 == t && r.1 == path)
        .map(|r| r.2)
        .collect();
    for a in ancestors(path) {
        fired.extend(
            regs.iter()
                .filter(|r| r.0 == t && r.1 == a && r.3 == REC)
                .map(|r| r.2),
        );
    }
    regs.retain(|r| !(r.0 == t && r.1 == path && r.3 == STD));
    fired
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn watch_manager_matches_model(ops in proptest::collection::vec(w_op(), 1..80)) {
        let mut wm = WatchManager::new();
        let mut regs: BTreeSet<Reg> = BTreeSet::new();
        for op in ops {
            match op {
                W::Data(p, w) => {
                    wm.add_data_watch(PATHS[p], w);
                    regs.insert((0, PATHS[p], w, STD));
                }
                W::Child(p, w) => {
                    wm.add_child_watch(PATHS[p], w);
                    regs.insert((1, PATHS[p], w, STD));
                }
                W::Add(p, w, recursive) => {
                    if recursive {
                        wm.add_watch(PATHS[p], w, AddWatchMode::PersistentRecursive);
                        regs.insert((0, PATHS[p], w, REC));
                    } else {
                        wm.add_watch(PATHS[p], w, AddWatchMode::Persistent);
                        regs.insert((0, PATHS[p], w, PER));
                        regs.insert((1, PATHS[p], w, PER));
                    }
                }
                W::Remove(p, w, t) => {
                    let path = PATHS[p];
                    let before = regs.len();
                    regs.retain(|r| {
                        let hit = r.1 == path && r.2 == w && match t {
                            WatcherType::Children => r.0 == 1 && r.3 == STD,
                            WatcherType::Data => r.0 == 0 && r.3 == STD,
                            WatcherType::Persistent => r.3 == PER,
                            WatcherType::PersistentRecursive => r.3 == REC,
                            WatcherType::Any => true,
                        };
                        !hit
                    });
                    let expected = if regs.len() < before { Ok(()) } else { Err(ErrorCode::NoWatcher) };
                    prop_assert_eq!(wm.remove_watches(path, w, t), expected);
                }
                W::Trigger(p, e) => {
                    let path = PATHS[p];
                    let expected: Vec<u64> = match e {
                        EventType::NodeChildrenChanged => fire(&mut regs, 1, path).into_iter().collect(),
                        EventType::NodeDeleted => {
                            let d = fire(&mut regs, 0, path);
                            let c = fire(&mut regs, 1, path);
                            d.iter().copied().chain(c.difference(&d).copied()).collect()
                        }
                        _ => fire(&mut regs, 0, path).into_iter().collect(),
                    };
                    let got: Vec<u64> = wm.trigger_path(path, e, 7).into_iter().map(|(w, ev)| {
                        assert_eq!((ev.event_type, ev.path.as_str(), ev.zxid), (e, path, 7));
                        w
                    }).collect();
                    prop_assert_eq!(got, expected);
                }
                W::Disconnect(w) => {
                    wm.remove_watcher(w);
                    regs.retain(|r| r.2 != w);
                }
            }
            wm.assert_consistent();
            let pairs: BTreeSet<(u8, &str, u64)> = regs.iter().map(|r| (r.0, r.1, r.2)).collect();
            prop_assert_eq!(wm.watch_count(), pairs.len());
            for p in PATHS {
                for w in 1..4u64 {
                    let has = |t: u8, m: u8| regs.contains(&(t, *p, w, m));
                    prop_assert_eq!(wm.contains(p, w, WatcherType::Data), has(0, STD));
                    prop_assert_eq!(wm.contains(p, w, WatcherType::Children), has(1, STD));
                    prop_assert_eq!(wm.contains(p, w, WatcherType::Persistent), has(0, PER));
                    prop_assert_eq!(wm.contains(p, w, WatcherType::PersistentRecursive), has(0, REC));
                }
            }
        }
    }
}
