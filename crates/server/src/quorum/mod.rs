//! The peer protocol between the servers of an ensemble.
//!
//! - [`codec`]: the protobuf messages of `proto/rookery/quorum/v1/quorum.proto`, their
//!   mapping to [`rookery_zab::message::Message`], and the length-prefixed frames.

// The server wires the transport in separately; until then only the tests use it.
#![allow(dead_code, unused_imports)]

pub(crate) mod codec;

pub(crate) use codec::{CodecError, decode, encode};
