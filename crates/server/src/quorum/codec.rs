//! Peer messages to bytes and back, and the frames that carry them.
//!
//! A frame is a 4-byte big-endian length and that many bytes of protobuf. The length
//! is checked against a limit before anything is allocated for it, and every decode
//! failure is a [`CodecError`]: bytes from the network never panic the server.

use std::io;

use prost::Message as _;
use rookery_zab::election::{Notification, ServerId, ServerState};
use rookery_zab::message::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The types prost generates from `quorum.proto`.
#[allow(unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod pb {
    include!(concat!(env!("OUT_DIR"), "/rookery.quorum.v1.rs"));
}

/// Tells a quorum port from some other service's.
pub(crate) const MAGIC: &str = "rookery-quorum";
/// The version of `quorum.proto` this build speaks.
pub(crate) const PROTOCOL_VERSION: u32 = 1;
/// A SNAP carries a whole snapshot in one frame, so the default is generous.
pub(crate) const DEFAULT_MAX_FRAME: usize = 64 << 20;
/// The handshake is a few dozen bytes; a larger first frame is not a Rookery peer.
pub(crate) const MAX_HANDSHAKE_FRAME: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("peer message has no body (a message type this version does not know?)")]
    MissingBody,
    #[error("invalid server state {0}")]
    InvalidServerState(i32),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
}

/// The protobuf bytes of `msg` (no length prefix).
#[cfg(test)]
pub(crate) fn encode(msg: &Message) -> Vec<u8> {
    to_proto(msg.clone()).encode_to_vec()
}

/// Parses the protobuf bytes of one peer message (no length prefix).
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    from_proto(pb::PeerMessage::decode(bytes)?)
}

/// `msg` as one frame, length prefix included. Takes the message by value so a
/// snapshot's bytes are moved into the encoder, not copied twice.
pub(crate) fn encode_frame(msg: Message) -> Vec<u8> {
    frame_of(&to_proto(msg))
}

pub(crate) fn handshake_frame(ensemble_id: &str, sender_id: u64) -> Vec<u8> {
    frame_of(&pb::Handshake {
        magic: MAGIC.to_owned(),
        protocol_version: PROTOCOL_VERSION,
        ensemble_id: ensemble_id.to_owned(),
        sender_id,
    })
}

pub(crate) fn decode_handshake(bytes: &[u8]) -> Result<pb::Handshake, CodecError> {
    Ok(pb::Handshake::decode(bytes)?)
}

/// The length prefix is written last so the body is encoded straight into the frame.
/// A body over 4 GiB gets a wrapped length that no receiver's limit accepts;
/// senders check [`frame_body_len`] against their limit first.
fn frame_of(body: &impl prost::Message) -> Vec<u8> {
    let len = body.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    body.encode_raw(&mut buf);
    buf
}

/// The body length of a frame built by [`encode_frame`].
pub(crate) fn frame_body_len(frame: &[u8]) -> usize {
    frame.len().saturating_sub(4)
}

/// Reads one frame's body. `Ok(None)` is a clean end of stream between frames.
/// Memory grows with the bytes that actually arrive, so a peer that announces a huge
/// frame and sends nothing costs nothing.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = Vec::with_capacity(len.min(1 << 20));
    r.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(body))
}

fn state_to_proto(state: ServerState) -> i32 {
    // The Rust discriminants are the wire values (see election.rs).
    state as i32
}

fn state_from_proto(value: i32) -> Result<ServerState, CodecError> {
    match value {
        0 => Ok(ServerState::Looking),
        1 => Ok(ServerState::Following),
        2 => Ok(ServerState::Leading),
        3 => Ok(ServerState::Observing),
        other => Err(CodecError::InvalidServerState(other)),
    }
}

fn to_proto(msg: Message) -> pb::PeerMessage {
    use pb::peer_message::Body;
    let body = match msg {
        Message::Notification(n) => Body::Notification(pb::Notification {
            leader: n.leader.0,
            zxid: n.zxid,
            election_epoch: n.election_epoch,
            state: state_to_proto(n.state),
            sid: n.sid.0,
            peer_epoch: n.peer_epoch,
            config_version: n.config_version,
        }),
        Message::FollowerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        } => Body::FollowerInfo(pb::FollowerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        }),
        Message::LeaderInfo {
            new_epoch,
            term,
            observer,
        } => Body::LeaderInfo(pb::LeaderInfo {
            new_epoch,
            term,
            observer,
        }),
        Message::AckEpoch {
            current_epoch,
            last_zxid,
            observer,
        } => Body::AckEpoch(pb::AckEpoch {
            current_epoch,
            last_zxid,
            observer,
        }),
        Message::Diff { last_zxid, term } => Body::Diff(pb::Diff { last_zxid, term }),
        Message::Trunc { zxid, term } => Body::Trunc(pb::Trunc { zxid, term }),
        Message::Snap {
            zxid,
            term,
            offset,
            total,
            data,
        } => Body::Snap(pb::Snap {
            zxid,
            term,
            offset,
            total,
            data,
        }),
        Message::NewLeader { epoch, last_zxid } => {
            Body::NewLeader(pb::NewLeader { epoch, last_zxid })
        }
        Message::AckNewLeader { epoch } => Body::AckNewLeader(pb::AckNewLeader { epoch }),
        Message::UpToDate { commit_zxid } => Body::UpToDate(pb::UpToDate { commit_zxid }),
        Message::NewEpoch { epoch, last_zxid } => Body::NewEpoch(pb::NewEpoch { epoch, last_zxid }),
        Message::AckNewEpoch { epoch } => Body::AckNewEpoch(pb::AckNewEpoch { epoch }),
        Message::Proposal {
            zxid,
            prev_zxid,
            payload,
        } => Body::Proposal(pb::Proposal {
            zxid,
            prev_zxid,
            payload,
        }),
        Message::Ack { zxid } => Body::Ack(pb::Ack { zxid }),
        Message::Commit { zxid } => Body::Commit(pb::Commit { zxid }),
        Message::Inform {
            zxid,
            prev_zxid,
            payload,
        } => Body::Inform(pb::Inform {
            zxid,
            prev_zxid,
            payload,
        }),
        Message::Ping { zxid, last_zxid } => Body::Ping(pb::Ping { zxid, last_zxid }),
        Message::Request { payload } => Body::Request(pb::Request { payload }),
        Message::Sync { token } => Body::Sync(pb::Sync { token }),
        Message::SyncReply { token, zxid } => Body::SyncReply(pb::SyncReply { token, zxid }),
        Message::Config { zxid, entry } => Body::Config(pb::Config { zxid, entry }),
        Message::Elect { leader } => Body::Elect(pb::Elect { leader: leader.0 }),
    };
    pb::PeerMessage { body: Some(body) }
}

fn from_proto(msg: pb::PeerMessage) -> Result<Message, CodecError> {
    use pb::peer_message::Body;
    Ok(match msg.body.ok_or(CodecError::MissingBody)? {
        Body::Notification(n) => Message::Notification(Notification {
            leader: ServerId(n.leader),
            zxid: n.zxid,
            election_epoch: n.election_epoch,
            state: state_from_proto(n.state)?,
            sid: ServerId(n.sid),
            peer_epoch: n.peer_epoch,
            config_version: n.config_version,
        }),
        Body::FollowerInfo(m) => Message::FollowerInfo {
            accepted_epoch: m.accepted_epoch,
            last_zxid: m.last_zxid,
            observer: m.observer,
        },
        Body::LeaderInfo(m) => Message::LeaderInfo {
            new_epoch: m.new_epoch,
            term: m.term,
            observer: m.observer,
        },
        Body::AckEpoch(m) => Message::AckEpoch {
            current_epoch: m.current_epoch,
            last_zxid: m.last_zxid,
            observer: m.observer,
        },
        Body::Diff(m) => Message::Diff {
            last_zxid: m.last_zxid,
            term: m.term,
        },
        Body::Trunc(m) => Message::Trunc {
            zxid: m.zxid,
            term: m.term,
        },
        Body::Snap(m) => Message::Snap {
            zxid: m.zxid,
            term: m.term,
            offset: m.offset,
            total: m.total,
            data: m.data,
        },
        Body::NewLeader(m) => Message::NewLeader {
            epoch: m.epoch,
            last_zxid: m.last_zxid,
        },
        Body::AckNewLeader(m) => Message::AckNewLeader { epoch: m.epoch },
        Body::UpToDate(m) => Message::UpToDate {
            commit_zxid: m.commit_zxid,
        },
        Body::NewEpoch(m) => Message::NewEpoch {
            epoch: m.epoch,
            last_zxid: m.last_zxid,
        },
        Body::AckNewEpoch(m) => Message::AckNewEpoch { epoch: m.epoch },
        Body::Proposal(m) => Message::Proposal {
            zxid: m.zxid,
            prev_zxid: m.prev_zxid,
            payload: m.payload,
        },
        Body::Ack(m) => Message::Ack { zxid: m.zxid },
        Body::Commit(m) => Message::Commit { zxid: m.zxid },
        Body::Inform(m) => Message::Inform {
            zxid: m.zxid,
            prev_zxid: m.prev_zxid,
            payload: m.payload,
        },
        Body::Ping(m) => Message::Ping {
            zxid: m.zxid,
            last_zxid: m.last_zxid,
        },
        Body::Request(m) => Message::Request { payload: m.payload },
        Body::Sync(m) => Message::Sync { token: m.token },
        Body::Elect(m) => Message::Elect {
            leader: ServerId(m.leader),
        },
        Body::Config(m) => Message::Config {
            zxid: m.zxid,
            entry: m.entry,
        },
        Body::SyncReply(m) => Message::SyncReply {
            token: m.token,
            zxid: m.zxid,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = ServerState> {
        prop_oneof![
            Just(ServerState::Looking),
            Just(ServerState::Following),
            Just(ServerState::Leading),
            Just(ServerState::Observing),
        ]
    }

    fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..64)
    }

    /// Every variant of [`Message`]; `to_proto`'s exhaustive match makes a new variant
    /// fail to compile until the codec knows it, and this list is the reminder to add
    /// it here too.
    fn any_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u64>(),
                any::<i64>(),
                any::<i64>(),
                any_state(),
                any::<u64>(),
                any::<i64>(),
                any::<i64>()
            )
                .prop_map(
                    |(leader, zxid, election_epoch, state, sid, peer_epoch, config_version)| {
                        Message::Notification(Notification {
                            leader: ServerId(leader),
                            zxid,
                            election_epoch,
                            state,
                            sid: ServerId(sid),
                            peer_epoch,
                            config_version,
                        })
                    }
                ),
            (any::<i64>(), any::<i64>(), any::<bool>()).prop_map(|(a, z, o)| {
                Message::FollowerInfo {
                    accepted_epoch: a,
                    last_zxid: z,
                    observer: o,
                }
            }),
            (any::<i64>(), any::<i64>(), any::<bool>()).prop_map(|(e, t, o)| {
                Message::LeaderInfo {
                    new_epoch: e,
                    term: t,
                    observer: o,
                }
            }),
            (any::<i64>(), any::<i64>(), any::<bool>()).prop_map(|(e, z, o)| {
                Message::AckEpoch {
                    current_epoch: e,
                    last_zxid: z,
                    observer: o,
                }
            }),
            (any::<i64>(), any::<i64>()).prop_map(|(z, term)| Message::Diff { last_zxid: z, term }),
            (any::<i64>(), any::<i64>()).prop_map(|(z, term)| Message::Trunc { zxid: z, term }),
            (
                any::<i64>(),
                any::<i64>(),
                any::<u64>(),
                any::<u64>(),
                any_bytes()
            )
                .prop_map(|(zxid, term, offset, total, data)| Message::Snap {
                    zxid,
                    term,
                    offset,
                    total,
                    data
                }),
            (any::<i64>(), any::<i64>())
                .prop_map(|(epoch, last_zxid)| Message::NewLeader { epoch, last_zxid }),
            any::<i64>().prop_map(|epoch| Message::AckNewLeader { epoch }),
            any::<i64>().prop_map(|z| Message::UpToDate { commit_zxid: z }),
            (any::<i64>(), any::<i64>())
                .prop_map(|(epoch, last_zxid)| Message::NewEpoch { epoch, last_zxid }),
            any::<i64>().prop_map(|epoch| Message::AckNewEpoch { epoch }),
            (any::<i64>(), any::<i64>(), any_bytes()).prop_map(|(zxid, prev_zxid, payload)| {
                Message::Proposal {
                    zxid,
                    prev_zxid,
                    payload,
                }
            }),
            any::<i64>().prop_map(|zxid| Message::Ack { zxid }),
            any::<i64>().prop_map(|zxid| Message::Commit { zxid }),
            (any::<i64>(), any::<i64>(), any_bytes()).prop_map(|(zxid, prev_zxid, payload)| {
                Message::Inform {
                    zxid,
                    prev_zxid,
                    payload,
                }
            }),
            (any::<i64>(), any::<i64>())
                .prop_map(|(zxid, last_zxid)| Message::Ping { zxid, last_zxid }),
            any_bytes().prop_map(|payload| Message::Request { payload }),
            any::<u64>().prop_map(|token| Message::Sync { token }),
            (any::<u64>(), any::<i64>())
                .prop_map(|(token, zxid)| Message::SyncReply { token, zxid }),
            (any::<i64>(), any_bytes()).prop_map(|(zxid, entry)| Message::Config { zxid, entry }),
            any::<u64>().prop_map(|l| Message::Elect {
                leader: ServerId(l)
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(msg in any_message()) {
            prop_assert_eq!(decode(&encode(&msg)).ok(), Some(msg.clone()));
            // The frame is the same bytes behind a big-endian length.
            let frame = encode_frame(msg.clone());
            prop_assert_eq!(frame_body_len(&frame), frame.len() - 4);
            prop_assert_eq!(&frame[..4], &((frame.len() - 4) as u32).to_be_bytes()[..]);
            prop_assert_eq!(&frame[4..], &encode(&msg)[..]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let _ = decode_handshake(&bytes);
        }

        #[test]
        fn truncated_messages_never_panic(msg in any_message(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&msg);
            let _ = decode(&bytes[..cut.index(bytes.len() + 1)]);
        }
    }

    #[test]
    fn zero_and_negative_values_round_trip() {
        // proto3 omits zero fields; -1 ("no zxid") is a ten-byte varint.
        for msg in [
            Message::Ack { zxid: 0 },
            Message::Ack { zxid: -1 },
            Message::Snap {
                zxid: i64::MIN,
                term: 0,
                offset: u64::MAX,
                total: 0,
                data: Vec::new(),
            },
        ] {
            assert_eq!(decode(&encode(&msg)).ok(), Some(msg));
        }
    }

    #[test]
    fn a_message_without_a_body_is_an_error() {
        assert!(matches!(decode(&[]), Err(CodecError::MissingBody)));
        // Field 99 is a body a later version might add: skipped, so still no body.
        let unknown = [0x9a, 0x06, 0x00];
        assert!(matches!(decode(&unknown), Err(CodecError::MissingBody)));
    }

    #[test]
    fn an_unknown_server_state_is_an_error() {
        let msg = pb::PeerMessage {
            body: Some(pb::peer_message::Body::Notification(pb::Notification {
                state: 7,
                ..Default::default()
            })),
        };
        assert!(matches!(
            decode(&msg.encode_to_vec()),
            Err(CodecError::InvalidServerState(7))
        ));
    }

    #[test]
    fn malformed_protobuf_is_an_error() {
        // Field 11 (proposal), length-delimited, claims 100 bytes and has 1.
        assert!(matches!(
            decode(&[0x5a, 100, 0]),
            Err(CodecError::Protobuf(_))
        ));
    }

    #[test]
    fn the_handshake_round_trips() {
        let frame = handshake_frame("abc", 3);
        let hs = decode_handshake(&frame[4..]).unwrap();
        assert_eq!(hs.magic, MAGIC);
        assert_eq!(hs.protocol_version, PROTOCOL_VERSION);
        assert_eq!(hs.ensemble_id, "abc");
        assert_eq!(hs.sender_id, 3);
    }

    #[tokio::test]
    async fn frames_are_read_back_and_limits_hold() {
        let mut bytes = encode_frame(Message::Ack { zxid: 5 });
        bytes.extend(encode_frame(Message::Request {
            payload: vec![7; 100],
        }));
        let mut r = &bytes[..];
        let a = read_frame(&mut r, 1000).await.unwrap().unwrap();
        assert_eq!(decode(&a).unwrap(), Message::Ack { zxid: 5 });
        let b = read_frame(&mut r, 1000).await.unwrap().unwrap();
        assert!(matches!(decode(&b).unwrap(), Message::Request { .. }));
        assert!(read_frame(&mut r, 1000).await.unwrap().is_none());

        // Over the limit: refused before reading the body.
        let mut r = &bytes[..];
        let _ = read_frame(&mut r, 1000).await.unwrap();
        assert!(matches!(
            read_frame(&mut r, 10).await,
            Err(FrameError::TooLarge { max: 10, .. })
        ));

        // A lie about the length is a truncated stream, not a huge allocation.
        let liar = [0xff, 0xff, 0xff, 0x00, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut &liar[..], usize::MAX).await,
            Err(FrameError::Io(_))
        ));
        // End of stream inside the length prefix.
        assert!(matches!(
            read_frame(&mut &[0u8, 0][..], 10).await,
            Err(FrameError::Io(_))
        ));
    }
}
