//! ZAB consensus core (work in progress).

pub mod storage;

pub use storage::{Epoch, Zxid};
