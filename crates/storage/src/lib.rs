//! sled storage (work in progress).
