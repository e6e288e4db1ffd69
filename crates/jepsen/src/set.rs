//! The set workload's checks. Each key is a grow-only set: `add` creates a child named
//! by a unique value, `read-all` lists the children after a sync. Because nothing is
//! ever removed, linearizability comes down to three rules checked directly:
//! - a read sees only values some add tried (no phantom elements);
//! - a read sees every add that was acknowledged before it was invoked (no lost ones);
//! - a read sees everything any read that completed before it was invoked saw (no
//!   going back);
//!
//! and the final reads from every server agree.

use std::collections::BTreeSet;

use crate::{F, Finding, Outcome, Record, check_finals_agree};

/// Every set check on one key; `finals` are the final reads.
pub fn check(key: &str, ops: &[&Record], finals: &[&Record]) -> Vec<Finding> {
    let mut found = Vec::new();
    let tried: BTreeSet<i64> = ops
        .iter()
        .filter(|r| r.f == F::Add && r.outcome != Outcome::Fail)
        .filter_map(|r| r.value)
        .collect();
    let reads: Vec<&Record> = ops
        .iter()
        .chain(finals)
        .copied()
        .filter(|r| r.f == F::ReadAll && r.is_ok())
        .collect();
    for r in &reads {
        let phantom: Vec<i64> = r.value_set().difference(&tried).copied().collect();
        if !phantom.is_empty() {
            found.push(Finding::new(
                "set-phantom",
                key,
                format!("read saw {phantom:?}, which no add tried"),
                vec![(*r).clone()],
            ));
        }
    }
    // Sweep reads in invocation order; `known` holds what completed before.
    let mut completions: Vec<&Record> = ops
        .iter()
        .chain(finals)
        .copied()
        .filter(|r| r.is_ok() && matches!(r.f, F::Add | F::ReadAll))
        .collect();
    completions.sort_by_key(|r| r.complete_us);
    let mut by_invoke = reads.clone();
    by_invoke.sort_by_key(|r| r.invoke_us);
    let mut known: BTreeSet<i64> = BTreeSet::new();
    let mut witness: std::collections::BTreeMap<i64, &Record> = Default::default();
    let mut next = 0;
    for r in by_invoke {
        while next < completions.len() && completions[next].complete_us < r.invoke_us {
            let c = completions[next];
            let vals: Vec<i64> = match c.f {
                F::Add => c.value.into_iter().collect(),
                _ => c.values.clone().unwrap_or_default(),
            };
            for v in vals {
                if known.insert(v) {
                    witness.insert(v, c);
                }
            }
            next += 1;
        }
        let seen = r.value_set();
        let missing: Vec<i64> = known.difference(&seen).copied().collect();
        if let Some(first) = missing.first() {
            let mut records = vec![(*r).clone()];
            records.extend(witness.get(first).map(|w| (*w).clone()));
            found.push(Finding::new(
                "set-lost",
                key,
                format!(
                    "read misses {} value(s) acknowledged or read before it began: {:?}{}",
                    missing.len(),
                    &missing[..missing.len().min(10)],
                    if missing.len() > 10 { " ..." } else { "" }
                ),
                records,
            ));
        }
    }
    found.extend(check_finals_agree(key, finals));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(v: i64, t: (u64, u64), outcome: Outcome) -> Record {
        let mut r = Record::new(1, "a", "s0", F::Add, t.0);
        r.complete_us = t.1;
        r.outcome = outcome;
        r.value = Some(v);
        r
    }

    fn read(values: &[i64], t: (u64, u64)) -> Record {
        let mut r = Record::new(2, "b", "s0", F::ReadAll, t.0);
        r.complete_us = t.1;
        r.values = Some(values.to_vec());
        r
    }

    fn checks(ops: &[Record], finals: &[Record]) -> Vec<String> {
        let ops: Vec<&Record> = ops.iter().collect();
        let finals: Vec<&Record> = finals.iter().collect();
        check("s0", &ops, &finals)
            .into_iter()
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn a_healthy_set_passes() {
        let ops = [
            add(1, (0, 10), Outcome::Ok),
            add(2, (5, 50), Outcome::Info),
            read(&[1], (20, 30)),
            read(&[1, 2], (60, 70)),
        ];
        let finals = [read(&[1, 2], (100, 110)), read(&[1, 2], (100, 120))];
        assert!(checks(&ops, &finals).is_empty());
        // A concurrent add may or may not be seen.
        let ops = [add(1, (0, 40), Outcome::Ok), read(&[], (10, 20))];
        assert!(checks(&ops, &[]).is_empty());
    }

    #[test]
    fn lost_phantom_and_backwards_reads_are_caught() {
        let ops = [add(1, (0, 10), Outcome::Ok), read(&[], (20, 30))];
        assert_eq!(checks(&ops, &[]), ["set-lost"]);
        let ops = [add(1, (0, 10), Outcome::Fail), read(&[1], (20, 30))];
        assert_eq!(checks(&ops, &[]), ["set-phantom"]);
        let ops = [
            add(1, (0, 100), Outcome::Info),
            read(&[1], (20, 30)),
            read(&[], (40, 50)),
        ];
        assert_eq!(checks(&ops, &[]), ["set-lost"]);
        let finals = [read(&[1], (100, 110)), read(&[], (100, 120))];
        let found = checks(&[add(1, (0, 200), Outcome::Info)], &finals);
        assert!(found.contains(&"final-agree".to_string()), "{found:?}");
    }
}
