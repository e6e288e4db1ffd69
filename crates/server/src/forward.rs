//! What a learner sends its leader inside ZAB's REQUEST packet: a client's write (with
//! the session and the connection's auth ids the leader's prep needs), a new session,
//! or the touches of the sessions it serves. ZooKeeper sends the request bytes plus
//! authinfo, and session touches in its PING; the encoding here is jute, like the
//! client protocol, and only Rookery servers read it.

use rookery_wire::jute::{Reader, Writer};
use rookery_wire::{DecodeError, Id};

use crate::core::SessionId;

const REQUEST: u8 = 1;
const CREATE_SESSION: u8 = 2;
const TOUCH: u8 = 3;
const CLAIM: u8 = 4;
const EXPIRE: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forward {
    /// A client frame as received (header and body), for the leader to prep.
    Request {
        session: SessionId,
        auth: Vec<Id>,
        frame: Vec<u8>,
    },
    /// A session the learner created for a connecting client.
    CreateSession { session: SessionId, timeout_ms: i32 },
    /// Sessions with a live connection here: the leader decides expiry from these.
    Touch { sessions: Vec<SessionId> },
    /// A client reconnected here with this session: requests still arriving through
    /// its previous server get SessionMoved.
    Claim { session: SessionId },
    /// An operator asked (admin ExpireSession) to end this session now.
    Expire { session: SessionId },
}

impl Forward {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Forward::Request {
                session,
                auth,
                frame,
            } => {
                w.write_u8(REQUEST);
                w.write_i64(*session);
                w.write_vec(auth, |w, id| {
                    w.write_string(&id.scheme);
                    w.write_string(&id.id);
                });
                w.write_buffer(frame);
            }
            Forward::CreateSession {
                session,
                timeout_ms,
            } => {
                w.write_u8(CREATE_SESSION);
                w.write_i64(*session);
                w.write_i32(*timeout_ms);
            }
            Forward::Touch { sessions } => {
                w.write_u8(TOUCH);
                w.write_vec(sessions, |w, s| w.write_i64(*s));
            }
            Forward::Claim { session } => {
                w.write_u8(CLAIM);
                w.write_i64(*session);
            }
            Forward::Expire { session } => {
                w.write_u8(EXPIRE);
                w.write_i64(*session);
            }
        }
        w.into_inner()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Forward, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = r.read_u8("kind")?;
        let f = match kind {
            REQUEST => Forward::Request {
                session: r.read_i64("session")?,
                auth: r.read_vec("auth", 8, |r| {
                    Ok(Id::new(r.read_string("scheme")?, r.read_string("id")?))
                })?,
                frame: r.read_buffer("frame")?,
            },
            CREATE_SESSION => Forward::CreateSession {
                session: r.read_i64("session")?,
                timeout_ms: r.read_i32("timeout")?,
            },
            TOUCH => Forward::Touch {
                sessions: r.read_vec("sessions", 8, |r| r.read_i64("session"))?,
            },
            CLAIM => Forward::Claim {
                session: r.read_i64("session")?,
            },
            EXPIRE => Forward::Expire {
                session: r.read_i64("session")?,
            },
            _ => {
                return Err(r.error(
                    "kind",
                    rookery_wire::DecodeErrorKind::UnknownValue(i64::from(kind)),
                ));
            }
        };
        r.finish("forward")?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for f in [
            Forward::Request {
                session: 0x100_0000_0000_0001,
                auth: vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:x")],
                frame: vec![0, 0, 0, 1, 0, 0, 0, 5],
            },
            Forward::CreateSession {
                session: 7,
                timeout_ms: 30_000,
            },
            Forward::Touch {
                sessions: vec![1, 2, 3],
            },
            Forward::Claim { session: -5 },
            Forward::Expire { session: 9 },
        ] {
            assert_eq!(Forward::decode(&f.encode()).unwrap(), f);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Forward::decode(&[]).is_err());
        assert!(Forward::decode(&[9]).is_err());
        assert!(Forward::decode(&[REQUEST, 0, 0]).is_err());
        let mut ok = Forward::Touch { sessions: vec![1] }.encode();
        ok.push(0);
        assert!(Forward::decode(&ok).is_err());
    }
}
