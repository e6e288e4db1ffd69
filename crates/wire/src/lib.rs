//! The ZooKeeper client protocol, as pure functions over bytes.
//!
//! Everything a ZooKeeper client and server say to each other on the client port is
//! jute-encoded records behind a 4-byte length prefix. This crate knows those records,
//! the numbered constants they carry, and the framing; it does no I/O, so the server,
//! the tests and the fuzzers all use the same code.
//!
//! Layout:
//! - [`jute`]: the primitive encoding (`Reader`, `Writer`, the `Record` trait).
//! - [`codes`]: opcodes, error codes, event types, keeper states, create modes.
//! - [`data`]: `Stat`, `Id`, `ACL`.

pub mod codes;
pub mod data;
pub mod error;
pub mod jute;

pub use codes::{AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, OpCode, WatcherType};
pub use data::{Acl, Id, Stat};
pub use error::{DecodeError, DecodeErrorKind, DecodeResult};
pub use jute::{Reader, Record, Writer};
