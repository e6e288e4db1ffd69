//! The replicated ZooKeeper state machine, as pure deterministic code.
//!
//! Every state change is a [`Txn`] with a zxid. The leader turns a client write
//! ([`Op`]) into a Txn with [`DataTree::prep`], which sees the effects of Txns prepped
//! but not yet applied through [`PendingChanges`] (ZooKeeper's outstandingChanges).
//! Every server applies committed Txns in zxid order with [`DataTree::apply`], which
//! returns the client-visible [`OpResult`] and the [`WatchTrigger`]s to fire. Apply
//! never fails on a Txn that prep produced: errors are decided in prep, and a failed
//! multi is a Txn that consumes its zxid, changes nothing and fires no watches.
//!
//! No clocks, randomness, threads or I/O: time arrives as `time_ms` / `now_ms`, and
//! all maps are ordered (BTreeMap, or `imbl`'s persistent OrdMap where a DataTree clone
//! must be cheap: snapshots) so iteration order is deterministic.
//!
//! ```
//! use rookery_tree::{Caller, CreateKind, DataTree, Op, OpResult, PendingChanges, TxnHeader};
//! use rookery_wire::{Acl, CreateMode};
//!
//! let mut tree = DataTree::default();
//! let mut pending = PendingChanges::new();
//! let session = 0x0100_0000_0000_0001;
//! let caller = Caller::new(session, &[]);
//! let ops = [
//!     Op::CreateSession { timeout_ms: 30_000 },
//!     Op::Create {
//!         kind: CreateKind::Create2,
//!         path: "/app".into(),
//!         data: Some(b"v1".to_vec()),
//!         acl: Acl::open_unsafe(),
//!         mode: CreateMode::Persistent,
//!         ttl_ms: None,
//!     },
//! ];
//! // The leader preps both before either is applied ...
//! let mut log = Vec::new();
//! for (i, op) in ops.iter().enumerate() {
//!     let zxid = i as i64 + 1;
//!     let txn = tree.prep(&mut pending, &caller, op, zxid, 1_000).unwrap();
//!     log.push((TxnHeader { session_id: session, cxid: zxid as i32, zxid, time_ms: 1_000 }, txn));
//! }
//! // ... and every server applies them in zxid order.
//! for (header, txn) in log {
//!     let applied = tree.apply(&header, txn);
//!     pending.applied_through(header.zxid);
//!     if let OpResult::Create { stat, .. } = &applied.result {
//!         assert_eq!((stat.czxid, stat.version), (2, 0));
//!     }
//! }
//! assert_eq!(tree.get_data(&caller, "/app").unwrap().0, Some(&b"v1"[..]));
//! ```
//!
//! # Layout
//!
//! - [`tree`]: [`DataTree`] (nodes by path, ephemeral/container/TTL indexes, the
//!   replicated session table), reads with ACL checks (`get_data`, `exists`,
//!   `get_children`, `get_children2`, `get_acl`, `get_ephemerals`,
//!   `get_all_children_number`), `apply`, the digest, container/TTL candidates.
//! - [`prep`]: [`Op`], [`PendingChanges`], `DataTree::prep` with ZooKeeper 3.9's checks
//!   and error codes in ZooKeeper's order.
//! - [`txn`]: [`Txn`], [`TxnHeader`], [`OpResult`], [`WatchTrigger`], [`ApplyResult`];
//!   `Txn::encode`/`Txn::decode` (versioned log format), `encode_entry`/`decode_entry`.
//! - [`snapshot`]: `DataTree::snapshot`/`DataTree::restore` (magic, version, last
//!   zxid, digest, sessions, nodes, crc32).
//! - [`watch`]: [`WatchManager`]: standard, persistent and persistent-recursive
//!   watches per watcher key, triggering, removeWatches/checkWatches, setWatches.
//!   DESIGN.md places the watch manager in the server; it is deterministic logic, so it
//!   lives here where it is unit tested, and the server owns an instance.
//! - [`session`]: [`SessionTracker`]: the leader's expiry queue bucketed by tick and
//!   ZooKeeper's session id layout.
//! - [`quota`]: quota stats kept in `/zookeeper/quota` by apply, `StatsTrack`, and
//!   hard-limit enforcement in prep.
//! - [`acl`]: ACL checks, `fixupACL`, `digest_for`, `ip` CIDR matching.
//! - [`path`]: `PathUtils.validatePath` and the parent/child split.
//! - [`node`]: [`Node`], [`StatPersisted`], `ephemeralOwner` encodings.

// Bytes from the network or the disk are never unwrapped (ARCHITECTURE.md); tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
mod codec;
pub mod node;
pub mod path;
pub mod prep;
pub mod quota;
pub mod session;
pub mod snapshot;
pub mod tree;
pub mod txn;
pub mod watch;

pub use acl::{AuthSchemes, digest_for};
pub use codec::CodecError;
pub use node::{
    CONTAINER_OWNER, Children, EphemeralType, MAX_TTL_MS, Node, PathKey, SessionId, StatPersisted,
    Zxid,
};
pub use prep::{Op, PendingChanges};
pub use session::SessionTracker;
pub use snapshot::SnapshotError;
pub use tree::{Caller, DataTree, TreeConfig};
pub use txn::{
    ApplyResult, CreateKind, DeleteKind, OpResult, Txn, TxnDecodeError, TxnHeader, WatchTrigger,
    decode_entry, encode_entry, reconfig_in_entry,
};
pub use watch::{WatchManager, WatchedEvent, WatcherKey};
