//! Issue 7's benchmark: Rookery and Apache ZooKeeper 3.8 side by side in one run,
//! started by the integration-test harness (`rookery-tests`), driven through the same
//! Rust client (`zookeeper-client`), reported as median [min-max] over repetitions
//! with the ratio Rookery/ZooKeeper per cell. `cargo xtask bench` builds and runs it.
//!
//! [`matrix`] runs the cells, [`workload`] is the load generator and the probes,
//! [`deploy`] starts the servers and reads their memory and disk, [`hist`] and
//! [`report`] are the pure parts (percentiles, the table).

pub mod deploy;
pub mod error;
pub mod hist;
pub mod matrix;
pub mod report;
pub mod workload;
