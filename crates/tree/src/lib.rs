//! The replicated ZooKeeper data tree (work in progress).
