//! Known bugs put back on purpose, so the Jepsen-style harness (`cargo xtask jepsen`)
//! and the tests can prove they notice when a guarantee breaks.
//!
//! Only a build with the `inject-bugs` feature has them, and even then only the ones
//! [`ENV_VAR`] names are on. That build logs a WARN line naming the active bugs at
//! start-up and refuses to start if the variable names an unknown bug. A normal build
//! ignores the variable, but logs a warning when it is set, so a proof run against the
//! wrong binary shows up in the log instead of passing.
//!
//! The bugs, each a regression of a guarantee in DESIGN.md:
//! - `ack-before-durable`: voters ACK a proposal when they receive it, and the leader
//!   counts its own vote, before the proposal is on disk. The core acknowledges every
//!   round without a sync and syncs at most every `LAZY_SYNC_MS`. A kill -9 of every
//!   server soon after acknowledged writes loses some of them.
//! - `leader-alone`: a leader that lost its quorum keeps serving writes. It commits on
//!   its own ACK and does not step down when its followers stop answering. When it is
//!   cut off, the others elect a new leader, and both leaders accept writes. Nothing
//!   tells the old leader that the others moved on, so it keeps leading until it is
//!   restarted. Then its log is truncated back to the new leader's, and the writes it
//!   committed alone are lost.
//! - `seq-reuse`: the leader numbers sequential znodes from a counter per parent that
//!   is kept only in memory. When the counter is created (the process starts or the
//!   server becomes leader), it starts at the parent's number of children instead of
//!   the persisted cversion. After deletes and a restart, a sequential create returns
//!   a name that was already handed out.

/// The comma-separated list of bugs to switch on, read once by `server::start`.
pub(crate) const ENV_VAR: &str = "ROOKERY_INJECT_BUG";

/// A build without the feature: say that the variable is ignored, if it names anything.
#[cfg(not(feature = "inject-bugs"))]
pub(crate) fn warn_if_requested() {
    let value = std::env::var_os(ENV_VAR).filter(|v| !v.to_string_lossy().trim().is_empty());
    if let Some(value) = value {
        tracing::warn!(
            value = %value.to_string_lossy(),
            "{ENV_VAR} is set, but this binary was built without the inject-bugs feature: \
             it is ignored and no bug is injected"
        );
    }
}

/// `ack-before-durable` syncs the log at most this often (and only at the end of a
/// core round, so at least every peer tick while appends are waiting).
#[cfg(feature = "inject-bugs")]
pub(crate) const LAZY_SYNC_MS: u64 = 500;

/// The bugs known to [`InjectedBugs::parse`], in the order they are reported.
#[cfg(feature = "inject-bugs")]
const NAMES: [&str; 3] = ["ack-before-durable", "leader-alone", "seq-reuse"];

/// Which bugs are on.
#[cfg(feature = "inject-bugs")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InjectedBugs {
    pub(crate) ack_before_durable: bool,
    pub(crate) leader_alone: bool,
    pub(crate) seq_reuse: bool,
}

/// [`ENV_VAR`] names something that is not a bug of [`NAMES`]: the server does not start.
#[cfg(feature = "inject-bugs")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ENV_VAR}: unknown bug {name:?}; known: ack-before-durable, leader-alone, seq-reuse")]
pub struct UnknownBug {
    name: String,
}

#[cfg(feature = "inject-bugs")]
impl InjectedBugs {
    /// A comma-separated list of bug names. Blanks around names and empty items are
    /// ignored, so an empty list means no bug.
    pub(crate) fn parse(list: &str) -> Result<InjectedBugs, UnknownBug> {
        let mut bugs = InjectedBugs::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "ack-before-durable" => bugs.ack_before_durable = true,
                "leader-alone" => bugs.leader_alone = true,
                "seq-reuse" => bugs.seq_reuse = true,
                _ => {
                    return Err(UnknownBug {
                        name: name.to_owned(),
                    });
                }
            }
        }
        Ok(bugs)
    }

    /// Reads [`ENV_VAR`] and logs which bugs are on: a WARN line if any are.
    pub(crate) fn from_env() -> Result<InjectedBugs, UnknownBug> {
        let value = std::env::var_os(ENV_VAR).unwrap_or_default();
        let bugs = InjectedBugs::parse(&value.to_string_lossy())?;
        let names = bugs.names();
        if names.is_empty() {
            tracing::info!("built with inject-bugs; {ENV_VAR} names no bug, none is injected");
        } else {
            tracing::warn!(
                bugs = %names.join(","),
                "INJECTED BUGS ACTIVE ({ENV_VAR}): this server breaks its guarantees on \
                 purpose, for testing the tests; never use it for real data"
            );
        }
        Ok(bugs)
    }

    /// The names of the bugs that are on.
    pub(crate) fn names(self) -> Vec<&'static str> {
        let on = [self.ack_before_durable, self.leader_alone, self.seq_reuse];
        NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect()
    }

    /// Switches the bugs on in the core's configuration: the peer's flags, the tree's
    /// flag, and the core's own copy (for how it syncs).
    pub(crate) fn apply(self, mut cfg: crate::core::CoreConfig) -> crate::core::CoreConfig {
        // Followers ACK each proposal on receipt; the core does the rest.
        cfg.peer.bugs.ack_before_sync |= self.ack_before_durable;
        cfg.peer.bugs.leader_alone |= self.leader_alone;
        cfg.tree.inject_seq_reuse |= self.seq_reuse;
        cfg.bugs = self;
        cfg
    }
}

#[cfg(all(test, feature = "inject-bugs"))]
mod tests {
    use super::*;

    #[test]
    fn parses_a_comma_separated_list() {
        assert_eq!(InjectedBugs::parse(""), Ok(InjectedBugs::default()));
        assert_eq!(InjectedBugs::parse(" , "), Ok(InjectedBugs::default()));
        let all = InjectedBugs::parse("seq-reuse, ack-before-durable,leader-alone").unwrap();
        assert_eq!(
            all.names(),
            ["ack-before-durable", "leader-alone", "seq-reuse"]
        );
        assert_eq!(
            InjectedBugs::parse("leader-alone").unwrap().names(),
            ["leader-alone"]
        );
    }

    #[test]
    fn refuses_an_unknown_name() {
        let err = InjectedBugs::parse("seq-reuse,ack-before-sync").unwrap_err();
        assert_eq!(err.name, "ack-before-sync");
        assert!(
            err.to_string().contains("unknown bug \"ack-before-sync\""),
            "{err}"
        );
    }
}
