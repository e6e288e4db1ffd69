//! ZAB consensus core (work in progress).

// Bytes from the network or the disk are never unwrapped (ARCHITECTURE.md); tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod election;
pub mod quorum;
pub mod storage;

pub use storage::{Epoch, Zxid};
