//! The unique-ids workload's checks. Each id is the sequence number of a persistent
//! sequential create under one parent. Ids must be unique, rise with the creating
//! zxid, rise in real time (an id handed out after another was acknowledged is
//! larger), and every acknowledged one must be there at the end on every server.

use std::collections::BTreeSet;

use crate::{F, Finding, Record, check_finals_agree, check_sequences};

pub fn check(key: &str, ops: &[&Record], finals: &[&Record]) -> Vec<Finding> {
    let creates: Vec<&Record> = ops.iter().copied().filter(|r| r.f == F::Generate).collect();
    let mut found = check_sequences(key, &creates);
    found.extend(check_realtime_order(key, &creates));
    found.extend(check_present_at_end(key, &creates, finals, |r| r.seq));
    found.extend(check_finals_agree(key, finals));
    found
}

/// If create A was acknowledged before create B was invoked, A's number is smaller.
pub fn check_realtime_order(key: &str, creates: &[&Record]) -> Vec<Finding> {
    let mut ok: Vec<&Record> = creates
        .iter()
        .copied()
        .filter(|r| r.is_ok() && r.seq.is_some())
        .collect();
    let mut by_complete = ok.clone();
    by_complete.sort_by_key(|r| r.complete_us);
    ok.sort_by_key(|r| r.invoke_us);
    let mut found = Vec::new();
    let mut highest: Option<&Record> = None;
    let mut next = 0;
    for r in ok {
        while next < by_complete.len() && by_complete[next].complete_us < r.invoke_us {
            let c = by_complete[next];
            if highest.is_none_or(|h| c.seq > h.seq) {
                highest = Some(c);
            }
            next += 1;
        }
        if let Some(h) = highest {
            if r.seq <= h.seq {
                found.push(Finding::new(
                    "sequence-realtime",
                    key,
                    format!(
                        "got sequence {:?} after sequence {:?} was acknowledged",
                        r.seq, h.seq
                    ),
                    vec![h.clone(), r.clone()],
                ));
            }
        }
    }
    found
}

/// Every acknowledged create's mark (`mark_of`) appears in every final read.
pub fn check_present_at_end(
    key: &str,
    creates: &[&Record],
    finals: &[&Record],
    mark_of: impl Fn(&Record) -> Option<i64>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    for f in finals.iter().filter(|r| r.is_ok()) {
        let there: BTreeSet<i64> = f.value_set();
        let lost: Vec<&Record> = creates
            .iter()
            .copied()
            .filter(|r| r.is_ok())
            .filter(|r| mark_of(r).is_some_and(|m| !there.contains(&m)))
            .collect();
        if let Some(first) = lost.first() {
            found.push(Finding::new(
                "lost-at-end",
                key,
                format!(
                    "{} acknowledged create(s) missing from the final read of session {}",
                    lost.len(),
                    f.session
                ),
                vec![(*first).clone(), (*f).clone()],
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::created;

    fn final_read(values: &[i64]) -> Record {
        let mut r = Record::new(9, "f", "ids", F::ReadAll, 1000);
        r.complete_us = 1001;
        r.values = Some(values.to_vec());
        r
    }

    #[test]
    fn ids_are_unique_ordered_and_kept() {
        let a = created(1, (0, 10), 1, 100);
        let b = created(2, (5, 30), 0, 99);
        let c = created(1, (40, 50), 2, 101);
        let good = final_read(&[0, 1, 2]);
        assert!(check("ids", &[&a, &b, &c], &[&good]).is_empty());
        // Acknowledged before c began, yet c got a smaller number.
        let late = created(3, (60, 70), 1, 102);
        let found = check("ids", &[&a, &c, &late], &[]);
        let names: Vec<&str> = found.iter().map(|f| f.check.as_str()).collect();
        assert!(names.contains(&"sequence-realtime"), "{names:?}");
        let lost = check("ids", &[&a, &b, &c], &[&final_read(&[0, 2])]);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].check, "lost-at-end");
    }
}
