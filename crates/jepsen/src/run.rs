//! The binary's live parts: real ZooKeeper sessions doing each workload's operations,
//! and the nemesis acting on the cluster.

pub(crate) mod client;
pub(crate) mod nemesis;
pub(crate) mod workers;
