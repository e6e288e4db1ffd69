//! The pure parts of `rookery-jepsen`: the recorded history's format, one checker per
//! workload, the seeded choices and the latency plot. Everything here is deterministic
//! so it can be unit-tested; the binary (`main.rs`) owns the clients, the cluster and
//! the clock.
//!
//! Each workload keeps to its own keys (`r0`.. register, `s0`.. set, `ids`, `queue`,
//! `lock`, `eph`), so one history can hold several workloads run side by side and
//! [`check_all`] judges each key with its workload's checker.

pub mod ids;
pub mod lock;
pub mod queue;
pub mod register;
pub mod sessions;
pub mod set;
pub mod svg;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What an operation asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum F {
    /// Register: getData.
    Read,
    /// Register: setData with version -1.
    Write,
    /// Register: setData with the version a read just returned.
    Cas,
    /// Set: create a child named by the value.
    Add,
    /// Set, ids, queue, sessions: the children (or the queue's values) after a sync.
    ReadAll,
    /// Ids: a persistent sequential create; `seq` is the number it got.
    Generate,
    /// Queue: a persistent sequential create holding the value.
    Enqueue,
    /// Queue: read the lowest child, then delete it; ok only if the delete succeeded.
    Dequeue,
    /// Lock: ephemeral sequential create, then wait until it is the lowest child.
    Acquire,
    /// Lock: delete the holder's node.
    Release,
    /// Sessions: a new session creates its ephemeral (`value` is the ephemeral's id).
    Open,
    /// Sessions: the owner syncs and checks its own ephemeral (`value` 1 if it exists).
    Ping,
    /// Register: a persistent recursive watch's event on the key, with its zxid.
    Event,
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
    /// The value written, added, enqueued, dequeued or read; a lock's or an
    /// ephemeral's id.
    pub value: Option<i64>,
    /// Cas: the expected version.
    pub expected_version: Option<i32>,
    /// Register read: the version read. Write/cas (ok): the new version.
    pub version: Option<i32>,
    /// The zxid the answer's Stat carried: mzxid for register reads and writes, czxid
    /// for creates.
    pub zxid: Option<i64>,
    /// Sequential creates: the sequence number the server appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// ReadAll: what was there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<i64>>,
    /// The error, for fail and info.
    pub error: Option<String>,
}

impl Record {
    /// An ok record with nothing but its identity and times filled in.
    pub fn new(process: u64, session: &str, key: &str, f: F, invoke_us: u64) -> Record {
        Record {
            process,
            session: session.into(),
            key: key.into(),
            f,
            invoke_us,
            complete_us: invoke_us,
            outcome: Outcome::Ok,
            value: None,
            expected_version: None,
            version: None,
            zxid: None,
            seq: None,
            values: None,
            error: None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// The values an ok ReadAll saw, as a set.
    pub fn value_set(&self) -> BTreeSet<i64> {
        self.values.iter().flatten().copied().collect()
    }
}

/// The workloads, each with its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Compare-and-set registers, checked for linearizability.
    Register,
    /// A grow-only set: add-unique, then read-all.
    Set,
    /// Unique ids from sequential creates.
    Ids,
    /// A queue: sequential create, delete-min.
    Queue,
    /// Mutual exclusion with ephemeral sequential nodes.
    Lock,
    /// Ephemerals through failover.
    Sessions,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Register,
        Workload::Set,
        Workload::Ids,
        Workload::Queue,
        Workload::Lock,
        Workload::Sessions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Set => "set",
            Workload::Ids => "ids",
            Workload::Queue => "queue",
            Workload::Lock => "lock",
            Workload::Sessions => "sessions",
        }
    }

    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Which workload a key belongs to.
    pub fn of_key(key: &str) -> Option<Workload> {
        let numbered = |prefix: char| {
            key.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        match key {
            "ids" => Some(Workload::Ids),
            "queue" => Some(Workload::Queue),
            "lock" => Some(Workload::Lock),
            "eph" => Some(Workload::Sessions),
            _ if numbered('r') => Some(Workload::Register),
            _ if numbered('s') => Some(Workload::Set),
            _ => None,
        }
    }
}

/// What the checks found wrong, one key at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub check: String,
    pub key: String,
    pub message: String,
    /// The records that show it (a short sub-history).
    pub records: Vec<Record>,
}

impl Finding {
    pub fn new(check: &str, key: &str, message: String, records: Vec<Record>) -> Finding {
        Finding {
            check: check.into(),
            key: key.into(),
            message,
            records,
        }
    }
}

/// Splits a history by key (P-compositionality: each znode or workload key is checked
/// on its own).
pub fn by_key(history: &[Record]) -> BTreeMap<String, Vec<&Record>> {
    let mut keys: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in history {
        keys.entry(r.key.clone()).or_default().push(r);
    }
    keys
}

/// Every check over a whole history; `is_final` marks the final reads' records (made
/// after the heal and the quiet period, one session per server).
pub fn check_all(history: &[Record], is_final: impl Fn(&Record) -> bool) -> Vec<Finding> {
    let mut found = Vec::new();
    // Which register key each known zxid changed, for the watch checks.
    let changed: BTreeMap<i64, &str> = history
        .iter()
        .filter(|r| r.is_ok() && Workload::of_key(&r.key) == Some(Workload::Register))
        .filter(|r| matches!(r.f, F::Read | F::Write | F::Cas))
        .filter_map(|r| Some((r.zxid?, r.key.as_str())))
        .collect();
    for (key, records) in by_key(history) {
        let (finals, ops): (Vec<&Record>, Vec<&Record>) =
            records.iter().copied().partition(|r| is_final(r));
        match Workload::of_key(&key) {
            Some(Workload::Register) => {
                let (events, rest): (Vec<&Record>, Vec<&Record>) =
                    records.iter().copied().partition(|r| r.f == F::Event);
                found.extend(register::check(&key, &rest, &finals));
                found.extend(register::check_watch_events(&key, &events, &changed));
                found.extend(register::check_watch_before_data(&key, &records));
            }
            Some(Workload::Set) => found.extend(set::check(&key, &ops, &finals)),
            Some(Workload::Ids) => found.extend(ids::check(&key, &ops, &finals)),
            Some(Workload::Queue) => found.extend(queue::check(&key, &ops, &finals)),
            Some(Workload::Lock) => found.extend(lock::check(&key, &ops)),
            Some(Workload::Sessions) => found.extend(sessions::check(&key, &ops, &finals)),
            None => found.push(Finding::new(
                "unknown-key",
                &key,
                "no workload owns this key".into(),
                Vec::new(),
            )),
        }
    }
    cap_repeats(found)
}

/// One anomaly often shows in many later operations (every read after a lost write
/// misses it): the first few findings of a check on a key, and a count of the rest.
fn cap_repeats(found: Vec<Finding>) -> Vec<Finding> {
    const SHOWN: usize = 3;
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for f in found {
        let n = seen.entry((f.check.clone(), f.key.clone())).or_default();
        *n += 1;
        if *n <= SHOWN {
            out.push(f);
        }
    }
    for ((check, key), n) in seen {
        if n > SHOWN {
            out.push(Finding::new(
                &check,
                &key,
                format!(
                    "... and {} more findings of this check on this key",
                    n - SHOWN
                ),
                Vec::new(),
            ));
        }
    }
    out
}

/// The final reads must all have been answered and must agree: after the heal and a
/// sync, every server holds the same state.
pub fn check_finals_agree(key: &str, finals: &[&Record]) -> Vec<Finding> {
    let mut found = Vec::new();
    if finals.is_empty() {
        // No final reads were taken (a unit test, or a workload without them).
        return found;
    }
    let answered: Vec<&Record> = finals.iter().copied().filter(|r| r.is_ok()).collect();
    if answered.len() != finals.len() {
        found.push(Finding::new(
            "final-read",
            key,
            format!(
                "only {} of {} servers answered the final read",
                answered.len(),
                finals.len()
            ),
            finals.iter().map(|r| (*r).clone()).collect(),
        ));
    }
    if let Some(first) = answered.first() {
        let differs = |r: &&Record| {
            (r.value, r.version, r.value_set()) != (first.value, first.version, first.value_set())
        };
        if answered.iter().any(differs) {
            found.push(Finding::new(
                "final-agree",
                key,
                "servers disagree in the final read".into(),
                answered.iter().map(|r| (*r).clone()).collect(),
            ));
        }
    }
    found
}

/// Sequence numbers from sequential creates (ids' generates, queue's enqueues) that
/// succeeded must be unique and rise with the creating zxid: the parent's counter is
/// replicated state and never goes back, restarts included.
pub fn check_sequences(key: &str, creates: &[&Record]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut by_seq: BTreeMap<i64, &Record> = BTreeMap::new();
    for r in creates.iter().copied().filter(|r| r.is_ok()) {
        let Some(seq) = r.seq else { continue };
        if let Some(first) = by_seq.insert(seq, r) {
            found.push(Finding::new(
                "sequence-unique",
                key,
                format!("sequence number {seq} was handed out twice"),
                vec![first.clone(), r.clone()],
            ));
        }
    }
    let mut by_zxid: Vec<&Record> = creates
        .iter()
        .copied()
        .filter(|r| r.is_ok() && r.seq.is_some() && r.zxid.is_some())
        .collect();
    by_zxid.sort_by_key(|r| r.zxid);
    for w in by_zxid.windows(2) {
        if w[1].seq <= w[0].seq {
            found.push(Finding::new(
                "sequence-order",
                key,
                format!(
                    "zxid {:?} got sequence {:?}, after zxid {:?} got {:?}",
                    w[1].zxid, w[1].seq, w[0].zxid, w[0].seq
                ),
                vec![w[0].clone(), w[1].clone()],
            ));
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
    /// kill -9 of every server at once, then restart: only what was durable survives.
    KillAll,
    PauseRandom,
    PauseLeader,
    IsolateLeader,
    RandomHalves,
    /// Two halves that cannot talk, and one node that talks to both.
    Bridge,
    /// The connections one node dials to another lose everything; the reverse works.
    OneWay,
    /// The leader's links stay open but carry nothing: only timeouts notice.
    SilenceLeader,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::KillRandom,
        Fault::KillLeader,
        Fault::KillAll,
        Fault::PauseRandom,
        Fault::PauseLeader,
        Fault::IsolateLeader,
        Fault::RandomHalves,
        Fault::Bridge,
        Fault::OneWay,
        Fault::SilenceLeader,
    ];

    /// The nemesis families `--nemesis` names: kill, pause, partition, or all of them
    /// as "combined".
    pub fn family(self) -> &'static str {
        match self {
            Fault::KillRandom | Fault::KillLeader | Fault::KillAll => "kill",
            Fault::PauseRandom | Fault::PauseLeader => "pause",
            Fault::IsolateLeader
            | Fault::RandomHalves
            | Fault::Bridge
            | Fault::OneWay
            | Fault::SilenceLeader => "partition",
        }
    }

    /// The faults of a comma-separated list of families and fault names (`combined`
    /// is every fault), or the name that is neither.
    pub fn parse_list(list: &str) -> Result<Vec<Fault>, String> {
        let mut faults = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let matching: Vec<Fault> = Fault::ALL
                .into_iter()
                .filter(|f| {
                    item == "combined"
                        || item == f.family()
                        || serde_json::to_value(f)
                            .ok()
                            .as_ref()
                            .and_then(|v| v.as_str())
                            == Some(item)
                })
                .collect();
            if matching.is_empty() && item != "none" {
                return Err(item.to_string());
            }
            for f in matching {
                if !faults.contains(&f) {
                    faults.push(f);
                }
            }
        }
        Ok(faults)
    }
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

    pub(crate) fn created(process: u64, t: (u64, u64), seq: i64, zxid: i64) -> Record {
        let mut r = Record::new(process, &format!("s{process}"), "ids", F::Generate, t.0);
        r.complete_us = t.1;
        r.seq = Some(seq);
        r.zxid = Some(zxid);
        r
    }

    #[test]
    fn keys_map_to_their_workloads() {
        assert_eq!(Workload::of_key("r12"), Some(Workload::Register));
        assert_eq!(Workload::of_key("s0"), Some(Workload::Set));
        assert_eq!(Workload::of_key("ids"), Some(Workload::Ids));
        assert_eq!(Workload::of_key("eph"), Some(Workload::Sessions));
        assert_eq!(Workload::of_key("r"), None);
        assert_eq!(Workload::of_key("rx"), None);
        for w in Workload::ALL {
            assert_eq!(Workload::from_name(w.name()), Some(w));
        }
    }

    #[test]
    fn reused_or_reordered_sequence_numbers_are_caught() {
        let a = created(1, (0, 10), 1, 100);
        let b = created(2, (20, 30), 2, 101);
        assert!(check_sequences("ids", &[&a, &b]).is_empty());
        let reused = created(3, (40, 50), 1, 102);
        let found = check_sequences("ids", &[&a, &b, &reused]);
        let checks: Vec<&str> = found.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(checks, ["sequence-unique", "sequence-order"], "{found:?}");
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
    fn nemesis_lists_name_families_and_faults() {
        assert_eq!(
            Fault::parse_list("combined").unwrap().len(),
            Fault::ALL.len()
        );
        assert_eq!(
            Fault::parse_list("kill").unwrap(),
            [Fault::KillRandom, Fault::KillLeader, Fault::KillAll]
        );
        assert_eq!(
            Fault::parse_list("pause,one-way").unwrap(),
            [Fault::PauseRandom, Fault::PauseLeader, Fault::OneWay]
        );
        assert_eq!(Fault::parse_list("none").unwrap(), []);
        assert_eq!(Fault::parse_list("kill,nap"), Err("nap".to_string()));
    }

    #[test]
    fn records_round_trip_through_json_lines() {
        let mut r = created(3, (1, 2), 5, 4);
        r.values = Some(vec![1, 2]);
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains("\"f\":\"generate\"") && line.contains("\"outcome\":\"ok\""),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
        // Fields that are absent stay absent.
        let plain = Record::new(1, "s", "r0", F::Read, 0);
        assert!(!serde_json::to_string(&plain).unwrap().contains("values"));
    }
}
