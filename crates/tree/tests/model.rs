//! Property test: random op sequences, prepped ahead of apply (pipelined as a leader
//! does), against a plain BTreeMap reference model of ZooKeeper's rules. Data is null,
//! empty or one byte, so null and empty data must stay apart.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use rookery_tree::{CreateKind, DataTree, Op, OpResult, SessionId, Txn};
use rookery_wire::{Acl, CreateMode, ErrorCode};

const PATHS: &[&str] = &["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/q", "/a/", "/c/d"];

#[derive(Debug, Clone)]
enum MOp {
    Create {
        p: usize,
        data: Option<Vec<u8>>,
        seq: bool,
        eph: Option<SessionId>,
    },
    Delete {
        p: usize,
        version: i32,
    },
    Set {
        p: usize,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        p: usize,
        version: i32,
    },
    Multi(Vec<MOp>),
    Cycle(SessionId),
    Apply(usize),
}

fn leaf() -> impl Strategy<Value = MOp> {
    let p = 0..PATHS.len();
    let v = -1..3i32;
    let s = prop_oneof![Just(None), Just(Some(S1)), Just(Some(S2))];
    let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..2));
    prop_oneof![
        3 => (p.clone(), data.clone(), any::<bool>(), s).prop_map(|(p, data, seq, eph)| MOp::Create { p, data, seq, eph }),
        2 => (p.clone(), v.clone()).prop_map(|(p, version)| MOp::Delete { p, version }),
        2 => (p.clone(), data, v.clone()).prop_map(|(p, data, version)| MOp::Set { p, data, version }),
        1 => (p, v).prop_map(|(p, version)| MOp::Check { p, version }),
    ]
}

fn op() -> impl Strategy<Value = MOp> {
    prop_oneof![
        8 => leaf(),
        2 => proptest::collection::vec(leaf(), 0..4).prop_map(MOp::Multi),
        1 => prop_oneof![Just(S1), Just(S2)].prop_map(MOp::Cycle),
        3 => (0..4usize).prop_map(MOp::Apply),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MNode {
    data: Option<Vec<u8>>,
    version: i32,
    creates: i32,
    owner: SessionId,
}

#[derive(Debug, Clone, PartialEq)]
struct Model {
    nodes: BTreeMap<String, MNode>,
}

fn parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => p[..i].into(),
        None => "/".into(),
    }
}

impl Model {
    fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_owned(),
            MNode {
                data: Some(vec![]),
                version: 0,
                creates: 0,
                owner: 0,
            },
        );
        Model { nodes }
    }

    fn has_children(&self, p: &str) -> bool {
        self.nodes.keys().any(|k| k != p && parent(k) == p)
    }

    fn check_version(cur: i32, v: i32) -> Result<(), ErrorCode> {
        if v != -1 && v != cur {
            Err(ErrorCode::BadVersion)
        } else {
            Ok(())
        }
    }

    /// Applies one op, returning the error ZooKeeper would give.
    fn step(&mut self, op: &MOp, session: SessionId) -> Result<(), ErrorCode> {
        match op {
            MOp::Create { p, data, seq, eph } => {
                let path = PATHS[*p];
                let par = parent(path);
                let Some(pn) = self.nodes.get(&par) else {
                    return Err(ErrorCode::NoNode);
                };
                let name = if *seq {
                    format!("{path}{:010}", pn.creates)
                } else {
                    path.to_owned()
                };
                if name.ends_with('/') {
                    return Err(ErrorCode::BadArguments);
                }
                if self.nodes.contains_key(&name) {
                    return Err(ErrorCode::NodeExists);
                }
                if pn.owner != 0 {
                    return Err(ErrorCode::NoChildrenForEphemerals);
                }
                self.nodes.get_mut(&par).unwrap().creates += 1;
                self.nodes.insert(
                    name,
                    MNode {
                        data: data.clone(),
                        version: 0,
                        creates: 0,
                        owner: eph.map(|_| session).unwrap_or(0),
                    },
                );
                Ok(())
            }
            MOp::Delete { p, version } => {
                let path = PATHS[*p];
                if !self.nodes.contains_key(&parent(path)) {
                    return Err(ErrorCode::NoNode);
                }
                let n = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                Self::check_version(n.version, *version)?;
                if self.has_children(path) {
                    return Err(ErrorCode::NotEmpty);
                }
                self.nodes.remove(path);
                Ok(())
            }
            MOp::Set { p, data, version } => {
                let path = PATHS[*p];
                if path.ends_with('/') {
                    return Err(ErrorCode::BadArguments);
                }
                let n = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
                Self::check_version(n.version, *version)?;
                n.version += 1;
                n.data = data.clone();
                Ok(())
            }
            MOp::Check { p, version } => {
                let path = PATHS[*p];
                if path.ends_with('/') {
                    return Err(ErrorCode::BadArguments);
                }
                let n = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                Self::check_version(n.version, *version)
            }
            _ => unreachable!(),
        }
    }

    fn close(&mut self, s: SessionId) {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.owner == s)
            .map(|(k, _)| k.clone())
            .collect();
        for g in gone {
            self.nodes.remove(&g);
        }
    }
}

fn to_op(m: &MOp) -> Op {
    match m {
        MOp::Create { p, data, seq, eph } => {
            let mode = match (eph.is_some(), *seq) {
                (false, false) => CreateMode::Persistent,
                (false, true) => CreateMode::PersistentSequential,
                (true, false) => CreateMode::Ephemeral,
                (true, true) => CreateMode::EphemeralSequential,
            };
            Op::Create {
                kind: CreateKind::Create2,
                path: PATHS[*p].into(),
                data: data.clone(),
                acl: Acl::open_unsafe(),
                mode,
                ttl_ms: None,
            }
        }
        MOp::Delete { p, version } => del(PATHS[*p], *version),
        MOp::Set { p, data, version } => Op::SetData {
            path: PATHS[*p].into(),
            data: data.clone(),
            version: *version,
        },
        MOp::Check { p, version } => check(PATHS[*p], *version),
        MOp::Multi(ops) => Op::Multi(ops.iter().map(to_op).collect()),
        _ => unreachable!(),
    }
}

fn session_of(m: &MOp) -> SessionId {
    match m {
        MOp::Create { eph: Some(s), .. } => *s,
        _ => S1,
    }
}

fn assert_matches(tree: &DataTree, model: &Model) {
    type Row<'a> = (Option<&'a [u8]>, i32, i32, i64);
    let tree_nodes: BTreeMap<&str, Row<'_>> = tree
        .nodes()
        .filter(|(p, _)| !p.starts_with("/zookeeper"))
        .map(|(p, n)| {
            (
                p,
                (
                    n.data.as_deref(),
                    n.stat.version,
                    n.stat.cversion,
                    n.stat.ephemeral_owner,
                ),
            )
        })
        .collect();
    let model_nodes: BTreeMap<&str, Row<'_>> = model
        .nodes
        .iter()
        .map(|(p, n)| {
            let row = (n.data.as_deref(), n.version, n.creates, n.owner);
            (p.as_str(), row)
        })
        .collect();
    assert_eq!(tree_nodes, model_nodes);
    for (p, n) in tree.nodes() {
        if p.starts_with("/zookeeper") {
            continue;
        }
        let kids: Vec<&str> = model
            .nodes
            .keys()
            .filter(|k| k.as_str() != p && parent(k) == p)
            .map(|k| k.rsplit('/').next().unwrap())
            .collect();
        let mut tree_kids: Vec<&str> = n
            .child_names()
            .filter(|c| !(p == "/" && *c == "zookeeper"))
            .collect();
        tree_kids.sort();
        assert_eq!(tree_kids, kids, "children of {p}");
    }
    assert_eq!(tree.digest(), tree.recompute_digest());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tree_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut h = H::with_sessions();
        let mut model = Model::new();
        // Model state after each prepped zxid, to compare after partial applies.
        let mut history: BTreeMap<i64, Model> = BTreeMap::new();
        history.insert(h.zxid, model.clone());
        let check_applied = |h: &H, history: &BTreeMap<i64, Model>| {
            let z = h.tree.last_zxid();
            assert_matches(&h.tree, &history[&z]);
        };
        // A clone after each partial apply, with its snapshot at that moment: later
        // applies to the live tree must not show through the shared structure.
        let mut frozen: Vec<(DataTree, Vec<u8>)> = Vec::new();
        for m in &ops {
            match m {
                MOp::Apply(k) => {
                    let k = (*k).min(h.queue.len());
                    let rest = h.queue.split_off(k);
                    let results = h.apply_all();
                    h.queue = rest;
                    for r in results {
                        prop_assert!(!matches!(r.result, OpResult::Error(_)), "{r:?}");
                    }
                    check_applied(&h, &history);
                    frozen.push((h.tree.clone(), h.tree.snapshot()));
                }
                MOp::Cycle(s) => {
                    h.prep(*s, &[], Op::CloseSession).unwrap();
                    model.close(*s);
                    history.insert(h.zxid, model.clone());
                    h.prep(*s, &[], Op::CreateSession { timeout_ms: 1000 }).unwrap();
                    history.insert(h.zxid, model.clone());
                }
                MOp::Multi(sub) => {
                    let mut scratch = model.clone();
                    let mut expected = Vec::new();
                    let mut failed = false;
                    for s in sub {
                        if failed {
                            expected.push(Txn::Error(ErrorCode::RuntimeInconsistency));
                            continue;
                        }
                        match scratch.step(s, S1) {
                            Ok(()) => expected.push(Txn::Error(ErrorCode::Ok)),
                            Err(e) => {
                                failed = true;
                                for x in expected.iter_mut() {
                                    *x = Txn::Error(ErrorCode::Ok);
                                }
                                expected.push(Txn::Error(e));
                            }
                        }
                    }
                    let (_, txn) = h.prep(S1, &[], to_op(m)).unwrap();
                    let Txn::Multi(got) = txn else { panic!() };
                    if failed {
                        prop_assert_eq!(got, expected);
                    } else {
                        prop_assert!(got.iter().all(|t| !matches!(t, Txn::Error(_))));
                        model = scratch;
                    }
                    history.insert(h.zxid, model.clone());
                }
                single => {
                    let s = session_of(single);
                    let expected = model.step(single, s);
                    let got = h.prep(s, &[], to_op(single)).map(|_| ());
                    prop_assert_eq!(got, expected, "{:?}", single);
                    if expected.is_ok() {
                        history.insert(h.zxid, model.clone());
                    }
                }
            }
        }
        h.apply_all();
        prop_assert!(h.pending.is_empty());
        assert_matches(&h.tree, &model);
        let snap = h.tree.snapshot();
        let restored = DataTree::restore(&snap).unwrap();
        prop_assert_eq!(restored.digest(), h.tree.digest());
        prop_assert_eq!(&restored, &h.tree);
        prop_assert_eq!(restored.snapshot(), snap);
        for (tree, bytes) in &frozen {
            assert_matches(tree, &history[&tree.last_zxid()]);
            prop_assert_eq!(&tree.snapshot(), bytes);
            prop_assert_eq!(tree.recompute_digest(), tree.digest());
        }
    }
}
