//! The watch manager (ZooKeeper's two `WatchManager`s, data and child, behind one
//! API). Pure: watchers are opaque keys (a connection or session number); the server
//! maps keys to connections and sends the events.

use std::collections::{BTreeMap, BTreeSet};

use rookery_wire::codes::perms;
use rookery_wire::{AddWatchMode, ErrorCode, EventType, Id, WatcherType};

use crate::acl::{self, AuthSchemes};
use crate::node::Zxid;
use crate::tree::DataTree;
use crate::txn::WatchTrigger;

/// Identifies one watcher (ZooKeeper's `ServerCnxn`).
pub type WatcherKey = u64;

/// A notification to send (`WatcherEvent` with xid -1 and `zxid` in the reply header;
/// state is always SyncConnected). Events produced by setWatches carry zxid -1
/// (`WatchedEvent.NO_ZXID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub path: String,
    pub zxid: Zxid,
}

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    by_path: BTreeMap<String, BTreeMap<WatcherKey, u8>>,
    by_watcher: BTreeMap<WatcherKey, BTreeSet<String>>,
    recursive: usize,
}

impl Table {
    fn add(&mut self, path: &str, w: WatcherKey, mode: u8) -> bool {
        let modes = self
            .by_path
            .entry(path.to_owned())
            .or_default()
            .entry(w)
            .or_insert(0);
        if *modes & mode != 0 {
            return false;
        }
        *modes |= mode;
        if mode == RECURSIVE {
            self.recursive += 1;
        }
        self.by_watcher
            .entry(w)
            .or_default()
            .insert(path.to_owned());
        true
    }

    fn modes(&self, path: &str, w: WatcherKey) -> u8 {
        self.by_path
            .get(path)
            .and_then(|m| m.get(&w))
            .copied()
            .unwrap_or(0)
    }

    fn contains(&self, path: &str, w: WatcherKey, mode: Option<u8>) -> bool {
        let m = self.modes(path, w);
        match mode {
            Some(mode) => m & mode != 0,
            None => m != 0,
        }
    }

    /// Sets a watcher's modes on a path, keeping both indexes and the recursive count.
    fn set(&mut self, path: &str, w: WatcherKey, new: u8) {
        let old = self.modes(path, w);
        if old & RECURSIVE != 0 && new & RECURSIVE == 0 {
            self.recursive -= 1;
        }
        if new == 0 {
            if let Some(m) = self.by_path.get_mut(path) {
                m.remove(&w);
                if m.is_empty() {
                    self.by_path.remove(path);
                }
            }
            if let Some(s) = self.by_watcher.get_mut(&w) {
                s.remove(path);
                if s.is_empty() {
                    self.by_watcher.remove(&w);
                }
            }
        } else if let Some(m) = self.by_path.get_mut(path) {
            m.insert(w, new);
        }
    }

    /// `removeWatcher(path, watcher, mode)`: one mode, or all with `None`.
    fn remove(&mut self, path: &str, w: WatcherKey, mode: Option<u8>) -> bool {
        let old = self.modes(path, w);
        let new = match mode {
            Some(m) => old & !m,
            None => 0,
        };
        if old == new {
            return false;
        }
        self.set(path, w, new);
        true
    }

    fn remove_watcher(&mut self, w: WatcherKey) {
        let paths: Vec<String> = self
            .by_watcher
            .get(&w)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for p in paths {
            self.set(&p, w, 0);
        }
    }

    /// `triggerWatch`: every watcher on `path` fires (standard watches are consumed),
    /// and recursive watchers on its ancestors fire too.
    fn trigger(&mut self, path: &str) -> BTreeSet<WatcherKey> {
        let mut fired = BTreeSet::new();
        if let Some(ws) = self.by_path.get(path) {
            let ws: Vec<(WatcherKey, u8)> = ws.iter().map(|(w, m)| (*w, *m)).collect();
            for (w, m) in ws {
                fired.insert(w);
                if m & STANDARD != 0 {
                    self.set(path, w, m & !STANDARD);
                }
            }
        }
        if self.recursive > 0 {
            let mut p = path;
            while let Some(i) = p.rfind('/') {
                p = if i == 0 {
                    if p == "/" {
                        break;
                    }
                    "/"
                } else {
                    &p[..i]
                };
                if let Some(ws) = self.by_path.get(p) {
                    fired.extend(
                        ws.iter()
                            .filter(|(_, m)| **m & RECURSIVE != 0)
                            .map(|(w, _)| *w),
                    );
                }
            }
        }
        fired
    }

    fn total(&self) -> usize {
        self.by_path.values().map(BTreeMap::len).sum()
    }
}

/// Counts as the `wchs` four-letter word prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSummary {
    pub connections: usize,
    pub paths: usize,
    pub total: usize,
}

/// The watch lists of a SetWatches / SetWatches2 request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetWatches<'a> {
    pub relative_zxid: Zxid,
    pub data: &'a [String],
    pub exist: &'a [String],
    pub child: &'a [String],
    pub persistent: &'a [String],
    pub persistent_recursive: &'a [String],
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchManager {
    data: Table,
    child: Table,
}

impl WatchManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// getData/exists with watch=true (an exist watch on a missing node is a data
    /// watch, as in ZooKeeper).
    pub fn add_data_watch(&mut self, path: &str, w: WatcherKey) {
        self.data.add(path, w, STANDARD);
    }

    /// getChildren/getChildren2 with watch=true.
    pub fn add_child_watch(&mut self, path: &str, w: WatcherKey) {
        self.child.add(path, w, STANDARD);
    }

    /// addWatch: persistent watches sit in both tables; recursive ones only in the data
    /// table, which is why they never see NodeChildrenChanged.
    pub fn add_watch(&mut self, path: &str, w: WatcherKey, mode: AddWatchMode) {
        match mode {
            AddWatchMode::Persistent => {
                self.data.add(path, w, PERSISTENT);
                self.child.add(path, w, PERSISTENT);
            }
            AddWatchMode::PersistentRecursive => {
                self.data.add(path, w, RECURSIVE);
            }
        }
    }

    /// The events one apply trigger causes, in watcher order. Standard watches are
    /// consumed even when the server then withholds the event for lack of READ (see
    /// [`WatchTrigger::visible_to`]), as ZooKeeper 3.9 does.
    pub fn trigger(&mut self, t: &WatchTrigger) -> Vec<(WatcherKey, WatchedEvent)> {
        self.trigger_path(&t.path, t.event_type, t.zxid)
    }

    /// Fires watches for one event: NodeCreated/NodeDataChanged go to the data table,
    /// NodeChildrenChanged to the child table, NodeDeleted to both (a watcher in both
    /// gets one event). Other event types fire nothing.
    pub fn trigger_path(
        &mut self,
        path: &str,
        event_type: EventType,
        zxid: Zxid,
    ) -> Vec<(WatcherKey, WatchedEvent)> {
        let event = |w| {
            (
                w,
                WatchedEvent {
                    event_type,
                    path: path.to_owned(),
                    zxid,
                },
            )
        };
        match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                self.data.trigger(path).into_iter().map(event).collect()
            }
            EventType::NodeChildrenChanged => {
                self.child.trigger(path).into_iter().map(event).collect()
            }
            EventType::NodeDeleted => {
                let data = self.data.trigger(path);
                let child = self.child.trigger(path);
                data.iter()
                    .copied()
                    .chain(child.difference(&data).copied())
                    .map(event)
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Checks the internal indexes agree (for tests).
    #[doc(hidden)]
    pub fn assert_consistent(&self) {
        for t in [&self.data, &self.child] {
            let mut recursive = 0;
            for (p, ws) in &t.by_path {
                assert!(!ws.is_empty(), "empty watcher map for {p}");
                for (w, m) in ws {
                    assert!(*m != 0 && *m & !(STANDARD | PERSISTENT | RECURSIVE) == 0);
                    assert!(t.by_watcher.get(w).is_some_and(|s| s.contains(p)));
                    if m & RECURSIVE != 0 {
                        recursive += 1;
                    }
                }
            }
            for (w, ps) in &t.by_watcher {
                assert!(!ps.is_empty());
                for p in ps {
                    assert!(t.by_path.get(p).is_some_and(|m| m.contains_key(w)));
                }
            }
            assert_eq!(recursive, t.recursive);
        }
    }

    /// `DataTree.containsWatcher`.
    pub fn contains(&self, path: &str, w: WatcherKey, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.contains(path, w, Some(STANDARD)),
            WatcherType::Data => self.data.contains(path, w, Some(STANDARD)),
            WatcherType::Persistent => self.data.contains(path, w, Some(PERSISTENT)),
            WatcherType::PersistentRecursive => self.data.contains(path, w, Some(RECURSIVE)),
            WatcherType::Any => {
                self.child.contains(path, w, None) || self.data.contains(path, w, None)
            }
        }
    }

    /// checkWatches: NoWatcher when there is none of that type.
    pub fn check_watches(
        &self,
        path: &str,
        w: WatcherKey,
        kind: WatcherType,
    ) -> Result<(), ErrorCode> {
        if self.contains(path, w, kind) {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// removeWatches (`DataTree.removeWatch`): NoWatcher when nothing was removed.
    /// The client itself generates the *WatchRemoved events.
    pub fn remove_watches(
        &mut self,
        path: &str,
        w: WatcherKey,
        kind: WatcherType,
    ) -> Result<(), ErrorCode> {
        let removed = match kind {
            WatcherType::Children => self.child.remove(path, w, Some(STANDARD)),
            WatcherType::Data => self.data.remove(path, w, Some(STANDARD)),
            WatcherType::Persistent => {
                let c = self.child.remove(path, w, Some(PERSISTENT));
                let d = self.data.remove(path, w, Some(PERSISTENT));
                c || d
            }
            WatcherType::PersistentRecursive => self.data.remove(path, w, Some(RECURSIVE)),
            WatcherType::Any => {
                let c = self.child.remove(path, w, None);
                let d = self.data.remove(path, w, None);
                c || d
            }
        };
        if removed {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// Drops every registration of a watcher (its connection closed).
    pub fn remove_watcher(&mut self, w: WatcherKey) {
        self.data.remove_watcher(w);
        self.child.remove_watcher(w);
    }

    /// `DataTree.setWatches`: re-registers a reconnecting client's watches and returns
    /// the events it missed since `relative_zxid` (those watches are not registered,
    /// being already fired): NodeDeleted for a data/child watch on a node now gone,
    /// NodeDataChanged if mzxid > relZxid, NodeChildrenChanged if pzxid > relZxid,
    /// NodeCreated for an exist watch on a node that now exists. No ACL filtering,
    /// as in ZooKeeper.
    pub fn set_watches(
        &mut self,
        tree: &DataTree,
        w: WatcherKey,
        req: &SetWatches<'_>,
    ) -> Vec<WatchedEvent> {
        let mut out = Vec::new();
        let ev = |event_type, path: &str| WatchedEvent {
            event_type,
            path: path.to_owned(),
            zxid: -1,
        };
        for p in req.data {
            match tree.node(p) {
                None => out.push(ev(EventType::NodeDeleted, p)),
                Some(n) if n.stat.mzxid > req.relative_zxid => {
                    out.push(ev(EventType::NodeDataChanged, p))
                }
                Some(_) => self.add_data_watch(p, w),
            }
        }
        for p in req.exist {
            if tree.node(p).is_some() {
                out.push(ev(EventType::NodeCreated, p));
            } else {
                self.add_data_watch(p, w);
            }
        }
        for p in req.child {
            match tree.node(p) {
                None => out.push(ev(EventType::NodeDeleted, p)),
                Some(n) if n.stat.pzxid > req.relative_zxid => {
                    out.push(ev(EventType::NodeChildrenChanged, p))
                }
                Some(_) => self.add_child_watch(p, w),
            }
        }
        for p in req.persistent {
            self.add_watch(p, w, AddWatchMode::Persistent);
        }
        for p in req.persistent_recursive {
            self.add_watch(p, w, AddWatchMode::PersistentRecursive);
        }
        out
    }

    /// `wchs`: over the data watches, as ZooKeeper counts them.
    pub fn summary(&self) -> WatchSummary {
        WatchSummary {
            connections: self.data.by_watcher.len(),
            paths: self.data.by_path.len(),
            total: self.data.by_watcher.values().map(BTreeSet::len).sum(),
        }
    }

    /// `zk_watch_count`: data plus child registrations.
    pub fn watch_count(&self) -> usize {
        self.data.total() + self.child.total()
    }

    /// `wchc`: data-watched paths per watcher.
    pub fn by_watcher(&self) -> &BTreeMap<WatcherKey, BTreeSet<String>> {
        &self.data.by_watcher
    }

    /// `wchp`: watchers per data-watched path.
    pub fn by_path(&self) -> BTreeMap<&str, Vec<WatcherKey>> {
        self.data
            .by_path
            .iter()
            .map(|(p, ws)| (p.as_str(), ws.keys().copied().collect()))
            .collect()
    }
}

impl WatchTrigger {
    /// Whether a watcher with these ids may receive this event: ZooKeeper 3.9 sends
    /// an event only to watchers with READ on the node's ACL.
    pub fn visible_to(&self, schemes: &AuthSchemes, auth: &[Id], is_super: bool) -> bool {
        acl::check(schemes, &self.acl, perms::READ, auth, is_super)
    }
}
