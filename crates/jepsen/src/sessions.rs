//! The sessions workload's checks: an ephemeral lives exactly as long as its session.
//! - Never before: while its owner's operations still succeed, the owner's ephemeral
//!   exists (the owner's own synced check, `ping`), and every synced listing that
//!   began after the create was acknowledged and ended before a later successful
//!   owner operation began shows it.
//! - Always after: once every workload session is closed or expired (the final reads
//!   come after a quiet period longer than the session timeout), none is left.

use std::collections::BTreeMap;

use crate::{F, Finding, Record};

pub fn check(key: &str, ops: &[&Record], finals: &[&Record]) -> Vec<Finding> {
    let mut found = Vec::new();
    // Each ephemeral: its create, and the latest invocation of an ok owner operation.
    let mut owned: BTreeMap<i64, (&Record, u64)> = BTreeMap::new();
    let mut by_session: BTreeMap<&str, i64> = BTreeMap::new();
    for r in ops.iter().copied().filter(|r| r.f == F::Open && r.is_ok()) {
        if let Some(id) = r.value {
            owned.insert(id, (r, r.complete_us));
            by_session.insert(r.session.as_str(), id);
        }
    }
    for p in ops.iter().copied().filter(|r| r.f == F::Ping && r.is_ok()) {
        let Some(&id) = by_session.get(p.session.as_str()) else {
            continue;
        };
        if p.value != Some(1) {
            found.push(Finding::new(
                "ephemeral-early",
                key,
                format!(
                    "session {} is alive but its ephemeral {id} is gone",
                    p.session
                ),
                vec![owned[&id].0.clone(), p.clone()],
            ));
        }
        if let Some(entry) = owned.get_mut(&id) {
            entry.1 = entry.1.max(p.invoke_us);
        }
    }
    // Listings by invocation; for each ephemeral only those inside its life can matter
    // (a listing that began after the owner's last success cannot end before it).
    let mut listings: Vec<&Record> = ops
        .iter()
        .copied()
        .filter(|r| r.f == F::ReadAll && r.is_ok())
        .collect();
    listings.sort_by_key(|r| r.invoke_us);
    for (id, (open, alive_at)) in &owned {
        let first = listings.partition_point(|l| l.invoke_us <= open.complete_us);
        for l in listings[first..]
            .iter()
            .take_while(|l| l.invoke_us < *alive_at)
        {
            if l.complete_us < *alive_at && !l.values.iter().flatten().any(|v| v == id) {
                found.push(Finding::new(
                    "ephemeral-early",
                    key,
                    format!(
                        "a listing misses ephemeral {id} while its session {} was still alive",
                        open.session
                    ),
                    vec![(*open).clone(), (*l).clone()],
                ));
            }
        }
    }
    for f in finals.iter().copied() {
        match &f.values {
            Some(left) if !left.is_empty() => found.push(Finding::new(
                "ephemeral-outlived",
                key,
                format!("ephemerals {left:?} outlived their sessions"),
                vec![f.clone()],
            )),
            Some(_) => {}
            None => found.push(Finding::new(
                "final-read",
                key,
                "the final listing was not answered".into(),
                vec![f.clone()],
            )),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(session: &str, f: F, t: (u64, u64)) -> Record {
        let mut r = Record::new(1, session, "eph", f, t.0);
        r.complete_us = t.1;
        r
    }

    fn names(ops: &[Record], finals: &[Record]) -> Vec<String> {
        let ops: Vec<&Record> = ops.iter().collect();
        let finals: Vec<&Record> = finals.iter().collect();
        check("eph", &ops, &finals)
            .into_iter()
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn ephemerals_live_as_long_as_their_sessions() {
        let mut open = op("a", F::Open, (0, 10));
        open.value = Some(7);
        let mut ping = op("a", F::Ping, (50, 60));
        ping.value = Some(1);
        let mut listed = op("b", F::ReadAll, (20, 30));
        listed.values = Some(vec![7]);
        let mut empty_final = op("f", F::ReadAll, (100, 110));
        empty_final.values = Some(vec![]);
        let healthy = [open.clone(), ping.clone(), listed.clone()];
        assert!(names(&healthy, &[empty_final.clone()]).is_empty());

        let mut missing = listed.clone();
        missing.values = Some(vec![]);
        assert_eq!(
            names(&[open.clone(), ping.clone(), missing], &[]),
            ["ephemeral-early"]
        );
        let mut gone = ping.clone();
        gone.value = Some(0);
        assert_eq!(names(&[open.clone(), gone], &[]), ["ephemeral-early"]);
        let mut left = empty_final;
        left.values = Some(vec![7]);
        assert_eq!(names(&healthy, &[left]), ["ephemeral-outlived"]);
    }
}
