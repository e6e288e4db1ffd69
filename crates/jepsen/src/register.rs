//! The register workload's checks: each key is a compare-and-set register (getData;
//! setData with or without an expected version), checked for linearizability with
//! [`rookery_check::register`], plus the cheap checks zxids and versions make possible.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use rookery_check::register::{self, Call, Ret, State};

use crate::{F, Finding, Outcome, Record, check_finals_agree};

/// The value and version every register key is created with before the run.
pub const INITIAL: State = State {
    value: 0,
    version: 0,
};

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

/// Runs the linearizability checker on one key's records.
pub fn check_linearizable(key: &str, records: &[&Record]) -> Option<Finding> {
    let (ops, from) = to_check_ops(records);
    // The versioned check first: linear, and exact for the workload's unique values.
    // Only what it cannot settle goes to the exhaustive search, which long histories
    // with many lost answers would not finish.
    let unconfirmed = match register::check_versioned(INITIAL, &ops) {
        Ok(()) => return None,
        Err(u) if u.definite || ops.len() > SEARCH_LIMIT => u,
        Err(_) => return search(key, records, &ops, &from),
    };
    let mut message = format!("no linearization: {unconfirmed}");
    if !unconfirmed.definite {
        message.push_str(" (the history is too long for the exhaustive search to confirm)");
    }
    Some(Finding::new(
        "linearizable",
        key,
        message,
        unconfirmed
            .ops
            .iter()
            .map(|&i| records[from[i]].clone())
            .collect(),
    ))
}

/// Histories longer than this are not given to the exhaustive search.
const SEARCH_LIMIT: usize = 20_000;

/// The exhaustive search's verdict.
fn search(key: &str, records: &[&Record], ops: &[register::Op], from: &[usize]) -> Option<Finding> {
    match register::check(INITIAL, ops) {
        Ok(_) => None,
        Err(anomaly) => {
            // The last few operations placed, then the ones that could not be.
            let tail = anomaly.prefix.len().saturating_sub(8);
            let shown: Vec<Record> = anomaly.prefix[tail..]
                .iter()
                .chain(anomaly.stuck.iter())
                .map(|&i| records[from[i]].clone())
                .collect();
            Some(Finding::new(
                "linearizable",
                key,
                anomaly.to_string(),
                shown,
            ))
        }
    }
}

/// Per session and key, the versions and zxids that successful operations observed
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
                    || (r.zxid.is_some() && prev.zxid.is_some() && r.zxid < prev.zxid));
            if went_back {
                found.push(Finding {
                    check: "session-monotonic".into(),
                    key: key.into(),
                    message: format!(
                        "session {} saw version {:?} (zxid {:?}) after version {:?} (zxid {:?})",
                        r.session, r.version, r.zxid, prev.version, prev.zxid
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
/// version of a key must agree on its value and zxid.
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
                let zxid_differs = first.zxid.is_some() && r.zxid.is_some() && first.zxid != r.zxid;
                if first.value != r.value || zxid_differs {
                    found.push(Finding {
                        check: "versions-agree".into(),
                        key: key.into(),
                        message: format!(
                            "version {version} seen as value {:?} zxid {:?} and as value {:?} zxid {:?}",
                            first.value, first.zxid, r.value, r.zxid
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
    let mut found = check_finals_agree(key, finals);
    if let Some(first) = finals.iter().find(|r| r.is_ok()) {
        let written = first.value == Some(INITIAL.value)
            || records
                .iter()
                .any(|r| matches!(r.f, F::Write | F::Cas) && r.value == first.value);
        if !written {
            found.push(Finding::new(
                "final-written",
                key,
                format!("final value {:?} was never written", first.value),
                vec![(*first).clone()],
            ));
        }
    }
    found
}

/// Watch events on a key arrive in zxid order in each session (ZooKeeper delivers a
/// session's notifications in the order the changes were applied, reconnects
/// included), and each names a change of this key: never a zxid that another key's
/// write or read shows as its own.
pub fn check_watch_events(
    key: &str,
    records: &[&Record],
    others: &BTreeMap<i64, &str>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut last: BTreeMap<&str, &Record> = BTreeMap::new();
    let mut events: Vec<&Record> = records
        .iter()
        .copied()
        .filter(|r| r.f == F::Event)
        .collect();
    events.sort_by_key(|r| r.complete_us);
    for e in events {
        // ZooKeeper before 3.9 sends -1 in a notification's header: no order to check.
        let Some(zxid) = e.zxid.filter(|&z| z >= 0) else {
            continue;
        };
        if let Some(prev) = last.get(e.session.as_str()) {
            if prev.zxid >= e.zxid {
                found.push(Finding::new(
                    "watch-order",
                    key,
                    format!(
                        "session {} got the event of zxid {zxid:#x} after the one of {:#x}",
                        e.session,
                        prev.zxid.unwrap_or_default()
                    ),
                    vec![(*prev).clone(), e.clone()],
                ));
            }
        }
        if let Some(other) = others.get(&zxid).filter(|k| **k != key) {
            found.push(Finding::new(
                "watch-path",
                key,
                format!("an event for {key} carries zxid {zxid:#x}, a change of {other}"),
                vec![e.clone()],
            ));
        }
        last.insert(e.session.as_str(), e);
    }
    found
}

/// ZooKeeper's watch guarantee: a client sees the event of a change before it sees the
/// data of that change. In each watching session, once a read of this key has shown
/// mzxid M1, a later read showing M2 > M1 must find the event of M2 already delivered
/// (recorded no later than that read's completion). Sessions whose events carry no
/// zxid (ZooKeeper before 3.9 sends -1) cannot be checked.
pub fn check_watch_before_data(key: &str, records: &[&Record]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut sessions: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().copied() {
        sessions.entry(r.session.as_str()).or_default().push(r);
    }
    for (session, mut rs) in sessions {
        let events: Vec<&Record> = rs.iter().copied().filter(|r| r.f == F::Event).collect();
        if events.is_empty() || events.iter().any(|e| e.zxid.is_some_and(|z| z < 0)) {
            continue;
        }
        // A marker (no zxid) says the connection broke around the read it follows:
        // from there on, missed events are allowed.
        let broken_at = events
            .iter()
            .filter(|e| e.zxid.is_none())
            .map(|e| e.invoke_us)
            .min()
            .unwrap_or(u64::MAX);
        rs.sort_by_key(|r| r.complete_us);
        let mut seen: Option<i64> = None;
        for r in rs
            .iter()
            .filter(|r| r.f == F::Read && r.is_ok() && r.complete_us < broken_at)
        {
            let Some(m) = r.zxid else { continue };
            if seen.is_some_and(|s| m > s) {
                let delivered = events
                    .iter()
                    .any(|e| e.zxid == Some(m) && e.invoke_us <= r.complete_us);
                if !delivered {
                    found.push(Finding::new(
                        "watch-before-data",
                        key,
                        format!(
                            "session {session} read the data of zxid {m:#x} before its watch event"
                        ),
                        vec![(*r).clone()],
                    ));
                }
            }
            seen = Some(seen.map_or(m, |s| s.max(m)));
        }
    }
    found
}

/// Every register check on one key; `records` includes the final reads.
pub fn check(key: &str, records: &[&Record], finals: &[&Record]) -> Vec<Finding> {
    let mut found = Vec::new();
    found.extend(check_linearizable(key, records));
    found.extend(check_session_monotonic(key, records));
    found.extend(check_versions_agree(key, records));
    if !finals.is_empty() {
        found.extend(check_final(key, records, finals));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_history(history: &[Record], is_final: impl Fn(&Record) -> bool) -> Vec<Finding> {
        crate::check_all(history, is_final)
    }

    fn rec(
        process: u64,
        f: F,
        t: (u64, u64),
        outcome: Outcome,
        value: i64,
        version: i32,
    ) -> Record {
        let mut r = Record::new(process, &format!("s{process}"), "r0", f, t.0);
        r.complete_us = t.1;
        r.outcome = outcome;
        r.value = Some(value);
        r.expected_version = (f == F::Cas).then_some(version - 1);
        r.version = Some(version);
        r.zxid = Some(100 + i64::from(version));
        r
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_an_anomaly() {
        let history = vec![
            rec(1, F::Write, (0, 10), Outcome::Ok, 7, 1),
            // Invoked after the write was acknowledged, yet sees the initial state.
            rec(2, F::Read, (20, 30), Outcome::Ok, 0, 0),
        ];
        let found = check_history(&history, |_| false);
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
        assert_eq!(check_history(&history, |_| false), vec![]);
    }

    #[test]
    fn an_indeterminate_write_may_or_may_not_have_happened() {
        let mut lost = rec(1, F::Write, (0, 5), Outcome::Info, 9, 1);
        lost.version = None;
        let mut took = lost.clone();
        took.value = Some(8);
        let seen_nothing = vec![lost.clone(), rec(2, F::Read, (40, 50), Outcome::Ok, 0, 0)];
        assert_eq!(check_history(&seen_nothing, |_| false), vec![]);
        let seen_it = vec![took, rec(2, F::Read, (40, 50), Outcome::Ok, 8, 1)];
        assert_eq!(check_history(&seen_it, |_| false), vec![]);
        // But a value nobody wrote is not explained by it.
        let phantom = vec![lost, rec(2, F::Read, (40, 50), Outcome::Ok, 5, 1)];
        assert!(!check_history(&phantom, |_| false).is_empty());
    }

    #[test]
    fn a_cas_bad_version_is_checked_against_the_model() {
        let mut bad = rec(1, F::Cas, (20, 30), Outcome::Fail, 3, 1);
        bad.expected_version = Some(0);
        bad.version = None;
        bad.error = Some(BAD_VERSION.into());
        // Nothing wrote before it, so version 0 was current: BadVersion is wrong.
        let found = check_history(&[bad.clone()], |_| false);
        assert_eq!(found.len(), 1, "{found:?}");
        let with_write = vec![rec(2, F::Write, (0, 10), Outcome::Ok, 4, 1), bad];
        assert_eq!(check_history(&with_write, |_| false), vec![]);
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
    fn watch_events_must_come_in_zxid_order_and_name_their_key() {
        let event = |session: &str, t: u64, zxid: i64| {
            let mut r = Record::new(7, session, "r0", F::Event, t);
            r.zxid = Some(zxid);
            r
        };
        let others: BTreeMap<i64, &str> = [(5, "r0"), (6, "r1"), (7, "r0")].into_iter().collect();
        let good = [event("a", 1, 5), event("a", 2, 7), event("b", 3, 5)];
        let refs: Vec<&Record> = good.iter().collect();
        assert!(check_watch_events("r0", &refs, &others).is_empty());
        let bad = [event("a", 1, 7), event("a", 2, 5), event("a", 3, 6)];
        let refs: Vec<&Record> = bad.iter().collect();
        let checks: Vec<String> = check_watch_events("r0", &refs, &others)
            .into_iter()
            .map(|f| f.check)
            .collect();
        assert_eq!(checks, ["watch-order", "watch-path"]);
    }

    #[test]
    fn a_read_must_not_see_a_change_before_its_watch_event() {
        let read = |t: u64, zxid: i64| {
            let mut r = Record::new(7, "w", "r0", F::Read, t);
            r.complete_us = t + 1;
            r.value = Some(1);
            r.version = Some(1);
            r.zxid = Some(zxid);
            r
        };
        let event = |t: u64, zxid: i64| {
            let mut r = Record::new(7, "w", "r0", F::Event, t);
            r.zxid = Some(zxid);
            r
        };
        let on_time = [read(0, 5), event(1, 5), read(10, 9), event(11, 9)];
        let refs: Vec<&Record> = on_time.iter().collect();
        assert!(check_watch_before_data("r0", &refs).is_empty());
        let late = [read(0, 5), event(1, 5), read(10, 9), event(20, 9)];
        let refs: Vec<&Record> = late.iter().collect();
        let found = check_watch_before_data("r0", &refs);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].check, "watch-before-data");
        // A broken connection right after the read excuses it.
        let mut marker = event(11, 0);
        marker.zxid = None;
        let excused = [read(0, 5), event(1, 5), read(10, 9), marker];
        let refs: Vec<&Record> = excused.iter().collect();
        assert!(check_watch_before_data("r0", &refs).is_empty());
        // Without zxids in the events (ZooKeeper 3.8) there is nothing to check.
        let blind = [read(0, 5), event(1, -1), read(10, 9)];
        let refs: Vec<&Record> = blind.iter().collect();
        assert!(check_watch_before_data("r0", &refs).is_empty());
    }
}
