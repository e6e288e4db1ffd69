//! The ZooKeeper client protocol, as pure functions over bytes.
//!
//! Everything a ZooKeeper client and server say to each other on the client port is
//! jute-encoded records behind a 4-byte length prefix. This crate knows those records,
//! the numbered constants they carry, and the framing; it does no I/O, so the server,
//! the tests and the fuzzers all use the same code.
//!
//! Layout:
//! - [`jute`]: the primitive encoding (`Reader`, `Writer`, the `Record` trait).
//! - [`codes`]: opcodes, error codes, event types, keeper states, create modes,
//!   permission bits, special xids.
//! - [`data`]: `Stat`, `Id`, `ACL`.
//! - [`proto`]: every client-protocol record of `zookeeper.jute`, the handshake,
//!   request frames ([`ClientRequest`], [`decode_request`]) and reply frames
//!   ([`ServerResponse`], [`decode_response`]), including the multi layouts.
//! - [`frame`]: the length prefix ([`split_frame`], [`write_frame`]) and
//!   four-letter-word detection.
//! - [`error`]: `DecodeError`, which names the field and byte offset that failed.
//!
//! Decoding never panics and never allocates more than the frame could hold; every
//! record that real clients or ZooKeeper send re-encodes to the same bytes.

// Bytes from the network or the disk are never unwrapped (ARCHITECTURE.md); tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod codes;
pub mod data;
pub mod error;
pub mod frame;
pub mod jute;
pub mod proto;

pub use codes::{AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, OpCode, WatcherType};
pub use data::{Acl, Id, Stat};
pub use error::{DecodeError, DecodeErrorKind, DecodeResult};
pub use frame::{
    DEFAULT_MAX_FRAME, FourLetterWord, FrameError, four_letter_word, split_frame, write_frame,
};
pub use jute::{Reader, Record, Writer};
pub use proto::{
    ClientRequest, ConnectRequest, ConnectResponse, MultiRequest, MultiResponse, OpResult,
    ReplyHeader, Request, RequestHeader, Response, ServerResponse, WatcherEvent, decode_request,
    decode_request_header, decode_response,
};
