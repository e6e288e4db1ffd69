//! The queue workload's checks. `enqueue` is a persistent sequential create holding
//! a unique value; `dequeue` reads the lowest child and deletes it, and is ok only if
//! its delete succeeded. So:
//! - sequence numbers are unique and rise with the zxid (a reused name would let an
//!   item be created twice under one name after the first was consumed);
//! - nothing is dequeued twice, and nothing dequeued was never enqueued;
//! - every acknowledged enqueue is, at the end, either dequeued (acknowledged or
//!   possibly) or still in the queue on every server, and not both;
//! - the final contents agree across servers.

use std::collections::{BTreeMap, BTreeSet};

use crate::{F, Finding, Outcome, Record, check_finals_agree, check_sequences};

pub fn check(key: &str, ops: &[&Record], finals: &[&Record]) -> Vec<Finding> {
    let enqueues: Vec<&Record> = ops.iter().copied().filter(|r| r.f == F::Enqueue).collect();
    let dequeues: Vec<&Record> = ops.iter().copied().filter(|r| r.f == F::Dequeue).collect();
    let mut found = check_sequences(key, &enqueues);
    let tried: BTreeSet<i64> = enqueues
        .iter()
        .filter(|r| r.outcome != Outcome::Fail)
        .filter_map(|r| r.value)
        .collect();
    let mut taken: BTreeMap<i64, &Record> = BTreeMap::new();
    for d in dequeues.iter().copied().filter(|r| r.is_ok()) {
        let Some(v) = d.value else { continue };
        if !tried.contains(&v) {
            found.push(Finding::new(
                "queue-phantom",
                key,
                format!("dequeued {v}, which no enqueue tried"),
                vec![d.clone()],
            ));
        }
        if let Some(first) = taken.insert(v, d) {
            found.push(Finding::new(
                "queue-duplicate",
                key,
                format!("{v} was dequeued twice"),
                vec![first.clone(), d.clone()],
            ));
        }
    }
    let maybe_taken: BTreeSet<i64> = dequeues
        .iter()
        .filter(|r| r.outcome == Outcome::Info)
        .filter_map(|r| r.value)
        .collect();
    for f in finals.iter().filter(|r| r.is_ok()) {
        let left = f.value_set();
        for v in left.iter().filter(|v| taken.contains_key(v)) {
            found.push(Finding::new(
                "queue-duplicate",
                key,
                format!("{v} was dequeued and is still in the queue at the end"),
                vec![taken[v].clone(), (*f).clone()],
            ));
        }
        let lost: Vec<&Record> = enqueues
            .iter()
            .copied()
            .filter(|r| r.is_ok())
            .filter(|r| {
                r.value.is_some_and(|v| {
                    !left.contains(&v) && !taken.contains_key(&v) && !maybe_taken.contains(&v)
                })
            })
            .collect();
        if let Some(first) = lost.first() {
            found.push(Finding::new(
                "queue-lost",
                key,
                format!(
                    "{} acknowledged enqueue(s) neither dequeued nor in the final read of session {}",
                    lost.len(),
                    f.session
                ),
                vec![(*first).clone(), (*f).clone()],
            ));
        }
    }
    found.extend(check_finals_agree(key, finals));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: F, v: i64, seq: i64, t: (u64, u64), outcome: Outcome) -> Record {
        let mut r = Record::new(1, "a", "queue", f, t.0);
        r.complete_us = t.1;
        r.outcome = outcome;
        r.value = Some(v);
        r.seq = Some(seq);
        r.zxid = Some(100 + t.0 as i64);
        r
    }

    fn left(values: &[i64]) -> Record {
        let mut r = Record::new(9, "f", "queue", F::ReadAll, 1000);
        r.values = Some(values.to_vec());
        r
    }

    fn names(ops: &[Record], finals: &[Record]) -> Vec<String> {
        let ops: Vec<&Record> = ops.iter().collect();
        let finals: Vec<&Record> = finals.iter().collect();
        check("queue", &ops, &finals)
            .into_iter()
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn a_healthy_queue_passes() {
        let ops = [
            op(F::Enqueue, 10, 0, (0, 5), Outcome::Ok),
            op(F::Enqueue, 11, 1, (10, 15), Outcome::Ok),
            op(F::Enqueue, 12, 2, (20, 25), Outcome::Ok),
            op(F::Dequeue, 10, 0, (30, 35), Outcome::Ok),
            op(F::Dequeue, 11, 1, (40, 45), Outcome::Info),
        ];
        assert!(names(&ops, &[left(&[12]), left(&[12])]).is_empty());
        // The possibly-dequeued 11 may also still be there.
        assert!(names(&ops, &[left(&[11, 12])]).is_empty());
    }

    #[test]
    fn reuse_duplicates_and_losses_are_caught() {
        // After 10 (seq 0) was consumed, 13 got seq 0 again: a reused name.
        let ops = [
            op(F::Enqueue, 10, 0, (0, 5), Outcome::Ok),
            op(F::Dequeue, 10, 0, (10, 15), Outcome::Ok),
            op(F::Enqueue, 13, 0, (20, 25), Outcome::Ok),
        ];
        let found = names(&ops, &[left(&[13])]);
        assert!(found.contains(&"sequence-unique".to_string()), "{found:?}");
        let ops = [
            op(F::Enqueue, 10, 0, (0, 5), Outcome::Ok),
            op(F::Dequeue, 10, 0, (10, 15), Outcome::Ok),
            op(F::Dequeue, 10, 0, (20, 25), Outcome::Ok),
        ];
        assert_eq!(names(&ops, &[left(&[])]), ["queue-duplicate"]);
        let ops = [op(F::Enqueue, 10, 0, (0, 5), Outcome::Ok)];
        assert_eq!(names(&ops, &[left(&[])]), ["queue-lost"]);
        let ops = [op(F::Dequeue, 7, 0, (0, 5), Outcome::Ok)];
        assert_eq!(names(&ops, &[]), ["queue-phantom"]);
    }
}
