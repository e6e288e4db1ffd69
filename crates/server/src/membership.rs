//! The ensemble as replicated state. Its text is `/zookeeper/config` in ZooKeeper's
//! format (`server.N=host:quorumPort:electionPort:role[;clientAddr:clientPort]` lines,
//! then `version=<hex>`); a reconfiguration is a Txn carrying the new text, which the
//! consensus core counts from the moment it is logged and the server applies (tree,
//! transport, persisted copy) once it is committed. Changes are one at a time, as
//! ZooKeeper's incremental `reconfig` and the admin API make them.

use std::collections::BTreeMap;

use rookery_wire::ErrorCode;
use rookery_zab::Zxid;
use rookery_zab::quorum::{MembershipError, QuorumMaj, ServerId};

use crate::config::{HostPort, LearnerType, QuorumServer, ServerConfig, parse_server};
use crate::core::MemberConfig;

/// The members and the version (the zxid of the reconfiguration that made them; 0 for
/// the configuration zoo.cfg started with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ensemble {
    pub servers: BTreeMap<u64, QuorumServer>,
    pub version: i64,
}

impl Ensemble {
    pub(crate) fn from_config(cfg: &ServerConfig) -> Self {
        Ensemble {
            servers: cfg.servers.clone(),
            version: cfg
                .config_version
                .map_or(0, |v| i64::try_from(v).unwrap_or(0)),
        }
    }

    /// Parses `/zookeeper/config` text (a trailing `version=` line is optional).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut servers = BTreeMap::new();
        let mut version = 0;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("'{line}' is not key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            if key == "version" {
                version = i64::from_str_radix(value, 16)
                    .map_err(|_| format!("version '{value}' is not hexadecimal"))?;
            } else if key.starts_with("server.") {
                let s = parse_server(key, value, true).map_err(|e| format!("{key}: {e}"))?;
                servers.insert(s.id, s);
            } else {
                return Err(format!("unexpected '{key}' in a configuration"));
            }
        }
        Ok(Ensemble { servers, version })
    }

    /// The text without its version line: what a reconfiguration proposes, the version
    /// being the zxid it gets.
    pub(crate) fn body(&self) -> String {
        let mut out = String::new();
        for s in self.servers.values() {
            out.push_str(&server_line(s));
            out.push('\n');
        }
        out
    }

    /// `/zookeeper/config` as ZooKeeper writes it.
    pub(crate) fn text(&self) -> String {
        format!("{}version={:x}", self.body(), self.version)
    }

    pub(crate) fn quorum(&self) -> Result<QuorumMaj, MembershipError> {
        let ids = |t: LearnerType| {
            self.servers
                .values()
                .filter(move |s| s.learner_type == t)
                .map(|s| ServerId(s.id))
        };
        QuorumMaj::new(
            ids(LearnerType::Participant),
            ids(LearnerType::Observer),
            self.version,
        )
    }

    /// The members as the admin API lists them.
    pub(crate) fn member_configs(&self) -> Vec<MemberConfig> {
        self.servers
            .values()
            .map(|s| {
                let a = s.addresses.first();
                let addr = |port: u16| {
                    a.map(|a| HostPort::new(a.host.clone(), port).to_string())
                        .unwrap_or_default()
                };
                MemberConfig {
                    id: s.id,
                    observer: s.learner_type == LearnerType::Observer,
                    quorum_address: a.map(|a| addr(a.quorum_port)).unwrap_or_default(),
                    election_address: a.map(|a| addr(a.election_port)).unwrap_or_default(),
                    client_address: s
                        .client_address
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    pub(crate) fn voters(&self) -> impl Iterator<Item = u64> + '_ {
        self.servers
            .values()
            .filter(|s| s.learner_type == LearnerType::Participant)
            .map(|s| s.id)
    }

    /// Every other member's `host:quorumPort`, for the transport.
    pub(crate) fn peers(&self, me: u64) -> BTreeMap<u64, String> {
        self.servers
            .values()
            .filter(|s| s.id != me)
            .filter_map(|s| {
                let a = s.addresses.first()?;
                let host = if a.host.contains(':') {
                    format!("[{}]", a.host)
                } else {
                    a.host.clone()
                };
                Some((s.id, format!("{host}:{}", a.quorum_port)))
            })
            .collect()
    }

    /// ZooKeeper's incremental reconfig: `joining` adds or replaces members (comma- or
    /// newline-separated `server.N=...` specs), `leaving` removes ids (one that is not a
    /// member is ignored, as ZooKeeper ignores it).
    pub(crate) fn incremental(&self, joining: &str, leaving: &str) -> Result<Self, ErrorCode> {
        let mut next = self.clone();
        for spec in split_specs(joining) {
            let s = parse_spec(spec)?;
            next.servers.insert(s.id, s);
        }
        for id in split_specs(leaving) {
            // ZooKeeper's Long.parseLong failure comes back as MarshallingError.
            let id: u64 = id.parse().map_err(|_| ErrorCode::MarshallingError)?;
            next.servers.remove(&id);
        }
        Ok(next)
    }

    /// ZooKeeper's non-incremental reconfig: `members` is the whole new membership.
    pub(crate) fn replaced(&self, members: &str) -> Result<Self, ErrorCode> {
        let mut servers = BTreeMap::new();
        for spec in split_specs(members) {
            let s = parse_spec(spec)?;
            servers.insert(s.id, s);
        }
        Ok(Ensemble {
            servers,
            version: self.version,
        })
    }
}

fn split_specs(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `server.N=...`, or `N=...` as zkCli.sh also accepts.
fn parse_spec(spec: &str) -> Result<QuorumServer, ErrorCode> {
    let (key, value) = spec.split_once('=').ok_or(ErrorCode::BadArguments)?;
    let key = key.trim();
    let key = if key.starts_with("server.") {
        key.to_owned()
    } else {
        format!("server.{key}")
    };
    parse_server(&key, value.trim(), true).map_err(|_| ErrorCode::BadArguments)
}

fn server_line(s: &QuorumServer) -> String {
    let addresses: Vec<String> = s
        .addresses
        .iter()
        .map(|a| {
            let host = if a.host.contains(':') {
                format!("[{}]", a.host)
            } else {
                a.host.clone()
            };
            format!("{host}:{}:{}", a.quorum_port, a.election_port)
        })
        .collect();
    let mut line = format!("server.{}={}:{}", s.id, addresses.join("|"), s.learner_type);
    if let Some(c) = &s.client_address {
        line.push_str(&format!(";{c}"));
    }
    line
}

/// A log entry that makes `e` the configuration (what a reconfiguration Txn at its
/// version looks like), for the consensus core to hand to peers that missed it.
pub(crate) fn config_entry(e: &Ensemble) -> Vec<u8> {
    let header = rookery_tree::TxnHeader {
        session_id: 0,
        cxid: 0,
        zxid: e.version,
        time_ms: 0,
    };
    rookery_tree::encode_entry(
        &header,
        &rookery_tree::Txn::Reconfig {
            data: e.text().into_bytes(),
        },
    )
}

/// [`rookery_zab::peer::ConfigInEntry`] for the server's log entries: a reconfig Txn
/// carries the new membership; its zxid is the version.
pub(crate) fn config_in_entry(zxid: Zxid, payload: &[u8]) -> Option<QuorumMaj> {
    let data = rookery_tree::reconfig_in_entry(payload)?;
    let text = String::from_utf8(data).ok()?;
    let mut ensemble = Ensemble::parse(&text).ok()?;
    ensemble.version = zxid;
    ensemble.quorum().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "server.1=a:2888:3888:participant;0.0.0.0:2181\n\
                        server.2=b:2888:3888:participant;0.0.0.0:2181\n\
                        server.3=c:2888:3888:observer\n\
                        version=100000004";

    #[test]
    fn text_round_trips_and_makes_the_quorum() {
        let e = Ensemble::parse(TEXT).unwrap();
        assert_eq!(e.version, 0x1_0000_0004);
        assert_eq!(e.text(), TEXT);
        let q = e.quorum().unwrap();
        assert_eq!(q.voters().len(), 2);
        assert!(q.observers().contains(&ServerId(3)));
        assert_eq!(q.version(), 0x1_0000_0004);
        assert_eq!(
            e.peers(1),
            [(2, "b:2888".to_owned()), (3, "c:2888".to_owned())].into()
        );
    }

    #[test]
    fn incremental_changes_add_replace_and_remove() {
        let e = Ensemble::parse(TEXT).unwrap();
        let promoted = e
            .incremental("server.3=c:2888:3888:participant", "")
            .unwrap();
        assert_eq!(promoted.voters().count(), 3);
        let joined = e.incremental("4=d:2888:3888:observer;2181", "1").unwrap();
        assert!(joined.servers.contains_key(&4));
        assert!(!joined.servers.contains_key(&1));
        assert_eq!(e.incremental("", "9").unwrap(), e, "removing a stranger");
        assert_eq!(
            e.incremental("", "x").unwrap_err(),
            ErrorCode::MarshallingError
        );
        assert_eq!(
            e.incremental("server.x=bad", "").unwrap_err(),
            ErrorCode::BadArguments
        );
        let whole = e
            .replaced("server.1=a:2888:3888:participant,server.2=b:2888:3888:participant")
            .unwrap();
        assert_eq!(whole.servers.len(), 2);
    }
}
