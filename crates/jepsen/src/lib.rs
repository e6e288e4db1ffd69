//! The pure parts of `rookery-jepsen`: the recorded history's format, its adaptation to
//! [`rookery_check::register`], the cheap ZooKeeper-specific checks, the seeded choices
//! and the latency plot. Everything here is deterministic so it can be unit-tested; the
//! binary (`main.rs`) owns the clients, the cluster and the clock.

pub mod svg;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use rookery_check::register::{self, Call, Ret, State};
use serde::{Deserialize, Serialize};

/// The value and version every register key is created with before the run.
pub const INITIAL: State = State {
    value: 0,
    version: 0,
};

/// What an operation asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    /// getData.
    Read,
    /// setData with version -1.
    Write,
    /// setData with the version a read just returned.
    Cas,
}

/// How an operation ended, in Jepsen's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered with success.
    Ok,
    /// Answered with an error that proves nothing changed (BadVersion, NoNode...).
    Fail,
    /// No answer, or one that does not say whether it took effect (timeout,
    /// connection loss, session expiry): it may or may not have happened.
    Info,
}

/// One operation of the history, as written to history.jsonl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The worker's process number; a new one after every indeterminate result, as
    /// Jepsen's processes crash on `info`.
    pub process: u64,
    /// The ZooKeeper session id (hex) the operation went through.
    pub session: String,
    pub key: String,
    pub f: F,
    /// Microseconds since the run started.
    pub invoke_us: u64,
    pub complete_us: u64,
    pub outcome: Outcome,
    /// Write/cas: the value written. Read (ok): the value read.
    pub value: Option<i64>,
    /// Cas: the expected version.
    pub expected_version: Option<i32>,
    /// Read: the version read. Write/cas (ok): the new version.
    pub version: Option<i32>,
    /// The znode's Stat.mzxid in the answer.
    pub mzxid: Option<i64>,
    /// The error, for fail and info.
    pub error: Option<String>,
}

/// Splits a history by key (P-compositionality: each znode is checked on its own).
pub fn by_key(history: &[Record]) -> BTreeMap<String, Vec<&Record>> {
    let mut keys: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in history {
        keys.entry(r.key.clone()).or_default().push(r);
    }
    keys
}

/// One key's records as the checker's operations, with the index of the record each
/// came from. Reads that were not answered with data are dropped (a read changes
/// nothing); failed writes are dropped (they provably did nothing), except a cas's
/// BadVersion, which the model checks; indeterminate writes stay as `Unknown`.
pub fn to_check_ops(records: &[&Record]) -> (Vec<register::Op>, Vec<usize>) {
    let mut ops = Vec::new();
    let mut from = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let call = match (r.f, r.value, r.expected_version) {
            (F::Read, _, _) => Call::Read,
            (F::Write, Some(v), _) => Call::Write(v),
            (F::Cas, Some(value), Some(expected_version)) => Call::Cas {
                expected_version,
                value,
            },
            _ => continue,
        };
        let ret = match (r.f, r.outcome) {
            (F::Read, Outcome::Ok) => match (r.value, r.version) {
                (Some(value), Some(version)) => Ret::Read(State { value, version }),
                _ => continue,
            },
            (F::Read, _) => continue,
            (_, Outcome::Ok) => match r.version {
                Some(version) => Ret::Written { version },
                None => continue,
            },
            (F::Cas, Outcome::Fail) if r.error.as_deref() == Some(BAD_VERSION) => Ret::BadVersion,
            (_, Outcome::Fail) => continue,
            (_, Outcome::Info) => Ret::Unknown,
        };
        ops.push(register::Op {
            client: r.process,
            invoked: r.invoke_us,
            completed: r.complete_us,
            call,
            ret,
        });
        from.push(i);
    }
    (ops, from)
}

/// The error text a cas's BadVersion is recorded with.
pub const BAD_VERSION: &str = "BadVersion";

/// What the checks found wrong, one key at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub check: String,
    pub key: String,
    pub message: String,
    /// The records that show it (a short sub-history).
    pub records: Vec<Record>,
}

/// Runs the linearizability checker on one key's records.
pub fn check_linearizable(key: &str, records: &[&Record]) -> Option<Finding> {
    let (ops, from) = to_check_ops(records);
    match register::check(INITIAL, &ops) {
        Ok(_) => None,
        Err(anomaly) => {
            // The last few operations placed, then the ones that could not be.
            let tail = anomaly.prefix.len().saturating_sub(8);
            let shown: Vec<Record> = anomaly.prefix[tail..]
                .iter()
                .chain(anomaly.stuck.iter())
                .map(|&i| records[from[i]].clone())
                .collect();
            Some(Finding {
                check: "linearizable".into(),
                key: key.into(),
                message: anomaly.to_string(),
                records: shown,
            })
        }
    }
}

/// Per session and key, the versions and mzxids that successful operations observed
/// never go back (ZooKeeper's per-session ordering, which holds across reconnects
/// because the client presents its last zxid). Records are taken in completion order.
pub fn check_session_monotonic(key: &str, records: &[&Record]) -> Vec<Finding> {
    let mut sorted: Vec<&Record> = records
        .iter()
        .copied()
        .filter(|r| r.outcome == Outcome::Ok && r.version.is_some())
        .collect();
    sorted.sort_by_key(|r| r.complete_us);
    let mut last: BTreeMap<&str, &Record> = BTreeMap::new();
    let mut found = Vec::new();
    for r in sorted {
        if let Some(prev) = last.get(r.session.as_str()) {
            // A later operation was invoked after the earlier one completed only if
            // they did not overlap; overlapping ones of one session may answer either way
            // only for pipelined requests, which the workers do not issue.
            let went_back = r.invoke_us >= prev.complete_us
                && (r.version < prev.version
                    || (r.mzxid.is_some() && prev.mzxid.is_some() && r.mzxid < prev.mzxid));
            if went_back {
                found.push(Finding {
                    check: "session-monotonic".into(),
                    key: key.into(),
                    message: format!(
                        "session {} saw version {:?} (mzxid {:?}) after version {:?} (mzxid {:?})",
                        r.session, r.version, r.mzxid, prev.version, prev.mzxid
                    ),
                    records: vec![(*prev).clone(), r.clone()],
                });
            }
        }
        last.insert(r.session.as_str(), r);
    }
    found
}

/// A version is made by exactly one setData, so every successful observation of one
/// version of a key must agree on its value and mzxid.
pub fn check_versions_agree(key: &str, records: &[&Record]) -> Vec<Finding> {
    let mut seen: BTreeMap<i32, &Record> = BTreeMap::new();
    let mut found = Vec::new();
    for r in records.iter().copied().filter(|r| r.outcome == Outcome::Ok) {
        let Some(version) = r.version else { continue };
        match seen.entry(version) {
            Entry::Vacant(e) => {
                e.insert(r);
            }
            Entry::Occupied(e) => {
                let first = *e.get();
                let mzxid_differs =
                    first.mzxid.is_some() && r.mzxid.is_some() && first.mzxid != r.mzxid;
                if first.value != r.value || mzxid_differs {
                    found.push(Finding {
                        check: "versions-agree".into(),
                        key: key.into(),
                        message: format!(
                            "version {version} seen as value {:?} mzxid {:?} and as value {:?} mzxid {:?}",
                            first.value, first.mzxid, r.value, r.mzxid
                        ),
                        records: vec![first.clone(), r.clone()],
                    });
                }
            }
        }
    }
    found
}

/// The final reads (one per server, after heal and sync) must all agree, and the value
/// must be the initial one or one some write (acknowledged or not) tried to write.
pub fn check_final(key: &str, records: &[&Record], finals: &[&Record]) -> Vec<Finding> {
    let mut found = Vec::new();
    let answered: Vec<&Record> = finals
        .iter()
        .copied()
        .filter(|r| r.outcome == Outcome::Ok)
        .collect();
    if answered.len() != finals.len() || answered.is_empty() {
        found.push(Finding {
            check: "final-read".into(),
            key: key.into(),
            message: format!(
                "only {} of {} servers answered the final read",
                answered.len(),
                finals.len()
            ),
            records: finals.iter().map(|r| (*r).clone()).collect(),
        });
    }
    if let Some(first) = answered.first() {
        if answered
            .iter()
            .any(|r| (r.value, r.version) != (first.value, first.version))
        {
            found.push(Finding {
                check: "final-agree".into(),
                key: key.into(),
                message: "servers disagree on the final value".into(),
                records: answered.iter().map(|r| (*r).clone()).collect(),
            });
        }
        let written = first.value == Some(INITIAL.value)
            || records
                .iter()
                .any(|r| matches!(r.f, F::Write | F::Cas) && r.value == first.value);
        if !written {
            found.push(Finding {
                check: "final-written".into(),
                key: key.into(),
                message: format!("final value {:?} was never written", first.value),
                records: vec![(*first).clone()],
            });
        }
    }
    found
}

/// Every check over a whole history; `final_process` marks the final reads' records.
pub fn check_all(history: &[Record], is_final: impl Fn(&Record) -> bool) -> Vec<Finding> {
    let mut found = Vec::new();
    for (key, records) in by_key(history) {
        let finals: Vec<&Record> = records.iter().copied().filter(|r| is_final(r)).collect();
        if let Some(f) = check_linearizable(&key, &records) {
            found.push(f);
        }
        found.extend(check_session_monotonic(&key, &records));
        found.extend(check_versions_agree(&key, &records));
        if !finals.is_empty() {
            found.extend(check_final(&key, &records, &finals));
        }
    }
    found
}

/// splitmix64: tiny, seedable, and enough for choosing ops and faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The faults of the combined nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    KillRandom,
    KillLeader,
    PauseRandom,
    PauseLeader,
    IsolateLeader,
    RandomHalves,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::KillRandom,
        Fault::KillLeader,
        Fault::PauseRandom,
        Fault::PauseLeader,
        Fault::IsolateLeader,
        Fault::RandomHalves,
    ];
}

/// A nemesis window, for the report and the plot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    pub fault: Fault,
    /// What exactly was done, e.g. "kill -9 node 2 (leader)".
    pub detail: String,
    pub start_us: u64,
    pub end_us: u64,
}

/// The minority side of a random split of nodes 1..=n (never empty, never all).
pub fn random_minority(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (1..=n).collect();
    // Fisher-Yates.
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    let size = 1 + rng.below(((n.saturating_sub(1)) / 2).max(1) as u64) as usize;
    let mut minority = ids[..size.min(n.saturating_sub(1)).max(1)].to_vec();
    minority.sort_unstable();
    minority
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        process: u64,
        f: F,
        t: (u64, u64),
        outcome: Outcome,
        value: i64,
        version: i32,
    ) -> Record {
        Record {
            process,
            session: format!("s{process}"),
            key: "r0".into(),
            f,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
            value: Some(value),
            expected_version: (f == F::Cas).then_some(version - 1),
            version: Some(version),
            mzxid: Some(100 + i64::from(version)),
            error: None,
        }
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_an_anomaly() {
        let history = vec![
            rec(1, F::Write, (0, 10), Outcome::Ok, 7, 1),
            // Invoked after the write was acknowledged, yet sees the initial state.
            rec(2, F::Read, (20, 30), Outcome::Ok, 0, 0),
        ];
        let found = check_all(&history, |_| false);
        let lin: Vec<&Finding> = found.iter().filter(|f| f.check == "linearizable").collect();
        assert_eq!(lin.len(), 1, "{found:?}");
        assert_eq!(lin[0].key, "r0");
        assert!(
            lin[0]
                .records
                .iter()
                .any(|r| r.f == F::Read && r.value == Some(0))
        );
    }

    #[test]
    fn the_same_read_concurrent_with_the_write_is_fine() {
        let history = vec![
            rec(1, F::Write, (0, 30), Outcome::Ok, 7, 1),
            rec(2, F::Read, (10, 20), Outcome::Ok, 0, 0),
            rec(2, F::Read, (40, 50), Outcome::Ok, 7, 1),
        ];
        assert_eq!(check_all(&history, |_| false), vec![]);
    }

    #[test]
    fn an_indeterminate_write_may_or_may_not_have_happened() {
        let mut lost = rec(1, F::Write, (0, 5), Outcome::Info, 9, 1);
        lost.version = None;
        let mut took = lost.clone();
        took.value = Some(8);
        let seen_nothing = vec![lost.clone(), rec(2, F::Read, (40, 50), Outcome::Ok, 0, 0)];
        assert_eq!(check_all(&seen_nothing, |_| false), vec![]);
        let seen_it = vec![took, rec(2, F::Read, (40, 50), Outcome::Ok, 8, 1)];
        assert_eq!(check_all(&seen_it, |_| false), vec![]);
        // But a value nobody wrote is not explained by it.
        let phantom = vec![lost, rec(2, F::Read, (40, 50), Outcome::Ok, 5, 1)];
        assert!(!check_all(&phantom, |_| false).is_empty());
    }

    #[test]
    fn a_cas_bad_version_is_checked_against_the_model() {
        let mut bad = rec(1, F::Cas, (20, 30), Outcome::Fail, 3, 1);
        bad.expected_version = Some(0);
        bad.version = None;
        bad.error = Some(BAD_VERSION.into());
        // Nothing wrote before it, so version 0 was current: BadVersion is wrong.
        let found = check_all(&[bad.clone()], |_| false);
        assert_eq!(found.len(), 1, "{found:?}");
        let with_write = vec![rec(2, F::Write, (0, 10), Outcome::Ok, 4, 1), bad];
        assert_eq!(check_all(&with_write, |_| false), vec![]);
    }

    #[test]
    fn a_session_that_goes_back_in_versions_is_caught() {
        let history = [
            rec(1, F::Write, (0, 10), Outcome::Ok, 7, 1),
            rec(2, F::Write, (0, 12), Outcome::Ok, 8, 2),
            rec(1, F::Read, (20, 30), Outcome::Ok, 8, 2),
            rec(1, F::Read, (40, 50), Outcome::Ok, 7, 1),
        ];
        let found = check_session_monotonic("r0", &history.iter().collect::<Vec<_>>());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].records[1].invoke_us, 40);
    }

    #[test]
    fn two_values_for_one_version_are_caught() {
        let history = [
            rec(1, F::Write, (0, 10), Outcome::Ok, 7, 1),
            rec(2, F::Read, (20, 30), Outcome::Ok, 6, 1),
        ];
        let found = check_versions_agree("r0", &history.iter().collect::<Vec<_>>());
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn final_reads_must_agree_and_be_written() {
        let w = rec(1, F::Write, (0, 10), Outcome::Ok, 7, 1);
        let a = rec(1001, F::Read, (20, 30), Outcome::Ok, 7, 1);
        let b = rec(1002, F::Read, (20, 30), Outcome::Ok, 0, 0);
        let records = [&w, &a, &b];
        let found = check_final("r0", &records, &[&a, &b]);
        assert!(found.iter().any(|f| f.check == "final-agree"), "{found:?}");
        assert!(check_final("r0", &records, &[&a, &a.clone()]).is_empty());
        let phantom = rec(1001, F::Read, (20, 30), Outcome::Ok, 99, 1);
        let found = check_final("r0", &records, &[&phantom]);
        assert!(
            found.iter().any(|f| f.check == "final-written"),
            "{found:?}"
        );
    }

    #[test]
    fn the_rng_and_splits_are_deterministic_and_in_range() {
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut r = Rng::new(7);
        for n in [3, 5] {
            for _ in 0..100 {
                let m = random_minority(&mut r, n);
                assert!(!m.is_empty() && m.len() <= (n - 1) / 2, "{m:?} of {n}");
                assert!(m.iter().all(|&x| (1..=n).contains(&x)));
            }
        }
    }

    #[test]
    fn records_round_trip_through_json_lines() {
        let r = rec(3, F::Cas, (1, 2), Outcome::Ok, 5, 4);
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains("\"f\":\"cas\"") && line.contains("\"outcome\":\"ok\""),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
