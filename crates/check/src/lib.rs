//! Checkers for histories recorded against a ZooKeeper-compatible service (issue 6's
//! `rookery-check`). Pure: no clock, no I/O; a history is data handed in.
//!
//! [`register`] checks linearizability of one znode used as a compare-and-set register
//! (getData; setData with or without an expected version), with the Wing & Gong search
//! and Lowe's memoization, as Porcupine does. Operations whose outcome is unknown (a
//! timeout or a lost connection) may or may not have taken effect: the search may place
//! them anywhere after their invocation, or leave them out.

// Histories come from recorders, not from the network or disk; still, no unwraps.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod register;
