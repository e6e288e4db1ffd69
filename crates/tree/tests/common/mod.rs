//! Shared test harness: a leader that preps and applies in zxid order.
#![allow(dead_code, unreachable_pub, clippy::new_without_default)]

use rookery_tree::{
    ApplyResult, Caller, CreateKind, DataTree, Op, PendingChanges, SessionId, TreeConfig, Txn,
    TxnHeader,
};
use rookery_wire::{Acl, CreateMode, ErrorCode, Id};

#[derive(Debug)]
pub struct H {
    pub tree: DataTree,
    pub pending: PendingChanges,
    pub zxid: i64,
    pub time: i64,
    /// Prepped but not yet applied, in zxid order.
    pub queue: Vec<(TxnHeader, Txn)>,
}

pub const S1: SessionId = 0x0100_0000_0000_0001;
pub const S2: SessionId = 0x0100_0000_0000_0002;

impl H {
    pub fn new() -> Self {
        H::with(TreeConfig::default())
    }

    pub fn with(config: TreeConfig) -> Self {
        H {
            tree: DataTree::new(config),
            pending: PendingChanges::new(),
            zxid: 0,
            time: 1_000,
            queue: Vec::new(),
        }
    }

    /// A tree with sessions S1 and S2 open (zxids 1 and 2).
    pub fn with_sessions() -> Self {
        let mut h = H::new();
        h.open(S1);
        h.open(S2);
        h
    }

    pub fn open(&mut self, s: SessionId) {
        self.run(s, &[], Op::CreateSession { timeout_ms: 30_000 })
            .unwrap();
    }

    pub fn prep_as(&mut self, caller: &Caller<'_>, op: Op) -> Result<(TxnHeader, Txn), ErrorCode> {
        let zxid = self.zxid + 1;
        self.time += 10;
        let txn = self
            .tree
            .prep(&mut self.pending, caller, &op, zxid, self.time)?;
        self.zxid = zxid;
        let h = TxnHeader {
            session_id: caller.session_id,
            cxid: zxid as i32,
            zxid,
            time_ms: self.time,
        };
        self.queue.push((h, txn.clone()));
        Ok((h, txn))
    }

    pub fn prep(
        &mut self,
        s: SessionId,
        auth: &[Id],
        op: Op,
    ) -> Result<(TxnHeader, Txn), ErrorCode> {
        self.prep_as(&Caller::new(s, auth), op)
    }

    /// Applies everything queued, in order.
    pub fn apply_all(&mut self) -> Vec<ApplyResult> {
        let q = std::mem::take(&mut self.queue);
        q.into_iter()
            .map(|(h, t)| {
                let r = self.tree.apply(&h, t);
                let wrong = self.pending.mismatches(&self.tree, h.zxid);
                assert!(wrong.is_empty(), "prep mispredicted apply: {wrong:?}");
                self.pending.applied_through(h.zxid);
                r
            })
            .collect()
    }

    pub fn run_as(&mut self, caller: &Caller<'_>, op: Op) -> Result<ApplyResult, ErrorCode> {
        assert!(self.queue.is_empty());
        self.prep_as(caller, op)?;
        Ok(self.apply_all().pop().unwrap())
    }

    pub fn run(&mut self, s: SessionId, auth: &[Id], op: Op) -> Result<ApplyResult, ErrorCode> {
        self.run_as(&Caller::new(s, auth), op)
    }

    pub fn create(&mut self, path: &str, data: &[u8]) -> Result<ApplyResult, ErrorCode> {
        self.run(S1, &[], create(path, data, CreateMode::Persistent))
    }
}

pub fn create(path: &str, data: &[u8], mode: CreateMode) -> Op {
    create_acl(path, data, mode, Acl::open_unsafe())
}

pub fn create_acl(path: &str, data: &[u8], mode: CreateMode, acl: Vec<Acl>) -> Op {
    Op::Create {
        kind: CreateKind::Create2,
        path: path.into(),
        data: Some(data.to_vec()),
        acl,
        mode,
        ttl_ms: None,
    }
}

pub fn set(path: &str, data: &[u8], version: i32) -> Op {
    Op::SetData {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    }
}

pub fn del(path: &str, version: i32) -> Op {
    Op::Delete {
        path: path.into(),
        version,
    }
}

pub fn check(path: &str, version: i32) -> Op {
    Op::Check {
        path: path.into(),
        version,
    }
}
