//! ZAB consensus core, sans-IO: election, discovery, synchronization and broadcast
//! ([`peer::Peer`]), the peer messages, and the storage traits they persist through.

// Bytes from the network or the disk are never unwrapped (ARCHITECTURE.md); tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod election;
pub mod message;
pub mod peer;
pub mod quorum;
pub mod storage;

pub use storage::{Epoch, Zxid};
