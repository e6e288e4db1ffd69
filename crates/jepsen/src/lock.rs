//! The lock workload's check: no two holders at once. A holder's hold is the time
//! from its acquire's completion to its release's invocation. Only holds whose release
//! succeeded count: their ephemeral node provably existed from creation to release,
//! so any later acquirer could see itself lowest only after that release committed.
//! A hold whose session was lost may overlap a later one legitimately (the lock
//! ended with the session), so it is not checked.

use crate::{F, Finding, Record};

pub fn check(key: &str, ops: &[&Record]) -> Vec<Finding> {
    // Pair each ok acquire with the same process's next release.
    let mut sorted: Vec<&Record> = ops.to_vec();
    sorted.sort_by_key(|r| (r.process, r.invoke_us));
    let mut holds: Vec<(&Record, &Record)> = Vec::new();
    for w in sorted.windows(2) {
        let (a, r) = (w[0], w[1]);
        let paired = a.f == F::Acquire && r.f == F::Release && r.process == a.process;
        if paired && a.is_ok() && r.is_ok() {
            holds.push((a, r));
        }
    }
    holds.sort_by_key(|(a, _)| a.complete_us);
    let mut found = Vec::new();
    let mut longest: Option<(&Record, &Record)> = None;
    for (a, r) in holds {
        if let Some((pa, pr)) = longest {
            if a.complete_us < pr.invoke_us {
                found.push(Finding::new(
                    "lock-exclusive",
                    key,
                    format!(
                        "process {} held the lock from {} us while process {} held it until {} us",
                        a.process, a.complete_us, pa.process, pr.invoke_us
                    ),
                    vec![pa.clone(), pr.clone(), a.clone(), r.clone()],
                ));
            }
        }
        if longest.is_none_or(|(_, pr)| r.invoke_us > pr.invoke_us) {
            longest = Some((a, r));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn op(process: u64, f: F, t: (u64, u64), outcome: Outcome) -> Record {
        let mut r = Record::new(process, "s", "lock", f, t.0);
        r.complete_us = t.1;
        r.outcome = outcome;
        r
    }

    #[test]
    fn holds_must_not_overlap() {
        let ok = Outcome::Ok;
        let turns = [
            op(1, F::Acquire, (0, 10), ok),
            op(1, F::Release, (20, 25), ok),
            op(2, F::Acquire, (5, 30), ok),
            op(2, F::Release, (40, 45), ok),
        ];
        assert!(check("lock", &turns.iter().collect::<Vec<_>>()).is_empty());
        let overlap = [
            op(1, F::Acquire, (0, 10), ok),
            op(1, F::Release, (20, 25), ok),
            op(2, F::Acquire, (5, 15), ok),
            op(2, F::Release, (40, 45), ok),
        ];
        let found = check("lock", &overlap.iter().collect::<Vec<_>>());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].check, "lock-exclusive");
        // A hold whose release was lost is not held against anyone.
        let lost = [
            op(1, F::Acquire, (0, 10), ok),
            op(1, F::Release, (20, 25), Outcome::Info),
            op(2, F::Acquire, (5, 15), ok),
            op(2, F::Release, (40, 45), ok),
        ];
        assert!(check("lock", &lost.iter().collect::<Vec<_>>()).is_empty());
    }
}
