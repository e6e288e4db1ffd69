//! The peer transport: how servers of one ensemble carry `rookery_zab` messages to each
//! other over TCP.
//!
//! - [`codec`]: the protobuf messages of `proto/rookery/quorum/v1/quorum.proto`, their
//!   mapping to [`rookery_zab::message::Message`], and the length-prefixed frames.
//! - [`transport`]: one send-only outbound connection per peer and receive-only inbound
//!   connections, with a handshake that keeps other ensembles out.
//!
//! The transport promises FIFO order per connection and nothing across reconnections:
//! a broken link drops whatever was queued, and the consensus core recovers from the
//! gap as it would from a broken TCP stream in ZooKeeper.

pub(crate) mod codec;
pub(crate) mod transport;

pub(crate) use transport::{PeerSender, QuorumTls, TransportConfig, ensemble_id, start};
