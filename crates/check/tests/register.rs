//! The register checker against histories whose verdict is known by construction.

use proptest::prelude::*;
use rookery_check::register::{Call, Op, Ret, State, check, check_versioned, step};

const START: State = State {
    value: 0,
    version: 0,
};

fn op(client: u64, invoked: u64, completed: u64, call: Call, ret: Ret) -> Op {
    Op {
        client,
        invoked,
        completed,
        call,
        ret,
    }
}

fn read(value: i64, version: i32) -> Ret {
    Ret::Read(State { value, version })
}

#[test]
fn a_sequential_history_of_correct_answers_is_linearizable() {
    let h = [
        op(1, 0, 1, Call::Write(5), Ret::Written { version: 1 }),
        op(1, 2, 3, Call::Read, read(5, 1)),
        op(
            1,
            4,
            5,
            Call::Cas {
                expected_version: 1,
                value: 7,
            },
            Ret::Written { version: 2 },
        ),
        op(
            1,
            6,
            7,
            Call::Cas {
                expected_version: 1,
                value: 9,
            },
            Ret::BadVersion,
        ),
        op(1, 8, 9, Call::Read, read(7, 2)),
    ];
    assert_eq!(check(START, &h), Ok(vec![0, 1, 2, 3, 4]));
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in [read(0, 0), read(5, 1)] {
        let h = [
            op(1, 0, 10, Call::Write(5), Ret::Written { version: 1 }),
            op(2, 2, 4, Call::Read, seen),
        ];
        assert!(check(START, &h).is_ok(), "{seen:?}");
    }
}

#[test]
fn a_stale_read_after_a_completed_write_is_an_anomaly() {
    let h = [
        op(1, 0, 1, Call::Write(5), Ret::Written { version: 1 }),
        op(2, 2, 3, Call::Read, read(0, 0)),
    ];
    let anomaly = check(START, &h).unwrap_err();
    assert_eq!(anomaly.prefix, vec![0]);
    assert_eq!(
        anomaly.state,
        State {
            value: 5,
            version: 1
        }
    );
    assert_eq!(anomaly.stuck, vec![1]);
    assert!(anomaly.to_string().contains("none of operations [1]"));
}

#[test]
fn two_cas_winners_on_one_version_are_an_anomaly() {
    // Both clients read version 0 and both were told their setData won.
    let cas = |client, value| {
        op(
            client,
            0,
            10,
            Call::Cas {
                expected_version: 0,
                value,
            },
            Ret::Written { version: 1 },
        )
    };
    assert!(check(START, &[cas(1, 1), cas(2, 2)]).is_err());
}

#[test]
fn reads_must_not_go_back_in_time() {
    // Two writes in sequence; a reader sees the second, then (later) the first.
    let h = [
        op(1, 0, 1, Call::Write(1), Ret::Written { version: 1 }),
        op(1, 2, 20, Call::Write(2), Ret::Written { version: 2 }),
        op(2, 3, 4, Call::Read, read(2, 2)),
        op(2, 5, 6, Call::Read, read(1, 1)),
    ];
    assert!(check(START, &h).is_err());
}

#[test]
fn an_unknown_write_may_have_happened_or_not() {
    let lost = op(1, 0, 0, Call::Write(9), Ret::Unknown);
    // A later read sees it: it happened.
    assert!(check(START, &[lost, op(2, 5, 6, Call::Read, read(9, 1))]).is_ok());
    // A later read does not: it did not (yet).
    assert!(check(START, &[lost, op(2, 5, 6, Call::Read, read(0, 0))]).is_ok());
    // But it cannot have happened before it was invoked.
    let late = op(1, 10, 0, Call::Write(9), Ret::Unknown);
    assert!(check(START, &[op(2, 1, 2, Call::Read, read(9, 1)), late]).is_err());
}

#[test]
fn the_specification_matches_zookeeper_set_data() {
    let s = State {
        value: 3,
        version: 4,
    };
    assert_eq!(step(s, Call::Read, read(3, 4)), Some(s));
    assert_eq!(step(s, Call::Read, read(3, 5)), None);
    assert_eq!(
        step(s, Call::Write(8), Ret::Written { version: 5 }),
        Some(State {
            value: 8,
            version: 5
        })
    );
    assert_eq!(step(s, Call::Write(8), Ret::Written { version: 9 }), None);
    let cas = |expected_version| Call::Cas {
        expected_version,
        value: 1,
    };
    assert_eq!(step(s, cas(4), Ret::BadVersion), None);
    assert_eq!(step(s, cas(3), Ret::BadVersion), Some(s));
    assert_eq!(step(s, cas(3), Ret::Written { version: 5 }), None);
    assert_eq!(step(s, Call::Read, Ret::BadVersion), None);
    // Version -1 is setData's "any version".
    assert_eq!(
        step(s, cas(-1), Ret::Written { version: 5 }),
        Some(State {
            value: 1,
            version: 5
        })
    );
}

/// A random sequential run against the specification, stretched into overlapping
/// intervals that keep every real-time order of the run: always linearizable. The same
/// history with one read's answer changed to a value never written: never.
fn run_history(calls: &[(u64, u8, i64, u64, u64)]) -> Vec<Op> {
    let mut state = START;
    let mut out = Vec::new();
    for (i, &(client, kind, value, before, after)) in calls.iter().enumerate() {
        let t = 10 * i as u64;
        let call = match kind % 3 {
            0 => Call::Read,
            1 => Call::Write(value),
            _ => Call::Cas {
                expected_version: state.version + (value % 2) as i32,
                value,
            },
        };
        let (next, ret) = match call {
            Call::Read => (state, Ret::Read(state)),
            Call::Write(v) => {
                let n = State {
                    value: v,
                    version: state.version + 1,
                };
                (n, Ret::Written { version: n.version })
            }
            Call::Cas {
                expected_version,
                value,
            } => {
                if expected_version == state.version {
                    let n = State {
                        value,
                        version: state.version + 1,
                    };
                    (n, Ret::Written { version: n.version })
                } else {
                    (state, Ret::BadVersion)
                }
            }
        };
        state = next;
        // The linearization point is at t; the interval around it may reach into the
        // neighbours' (< 10 either side), which keeps the run a valid linearization.
        out.push(op(client, t - before.min(t), t + after, call, ret));
    }
    out
}

/// `run_history` with every written value unique (the write's index), some answers
/// lost (Unknown, as a timeout leaves them), and optionally one read forged to an
/// older version's state: the input for comparing the two checkers.
fn unique_history(calls: &[(u64, u8, i64, u64, u64)], lose: &[bool]) -> Vec<Op> {
    let unique: Vec<(u64, u8, i64, u64, u64)> = calls
        .iter()
        .enumerate()
        .map(|(i, &(c, k, _, b, a))| (c, k, i as i64 + 1, b, a))
        .collect();
    let mut history = run_history(&unique);
    for (op, &lost) in history.iter_mut().zip(lose) {
        if lost && op.call != Call::Read {
            op.ret = Ret::Unknown;
        }
    }
    history
}

proptest! {
    /// The versioned check never calls valid what the exhaustive search rejects, and a
    /// definite verdict of it always agrees with the search.
    #[test]
    fn the_versioned_check_agrees_with_the_search(
        calls in proptest::collection::vec(
            (0u64..4, 0u8..3, 0i64..1, 0u64..15, 0u64..15), 1..30),
        lose in proptest::collection::vec(any::<bool>(), 30),
        forge in any::<proptest::sample::Index>(),
        forge_to in 0i32..3,
    ) {
        let mut history = unique_history(&calls, &lose);
        let reads: Vec<usize> = history
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.ret, Ret::Read(_)))
            .map(|(i, _)| i)
            .collect();
        if !reads.is_empty() && forge_to > 0 {
            // Swap one read's answer for another read's: often stale, sometimes fine.
            let i = reads[forge.index(reads.len())];
            let j = reads[(forge.index(reads.len()) + forge_to as usize) % reads.len()];
            history[i].ret = history[j].ret;
        }
        let exhaustive = check(START, &history).is_ok();
        match check_versioned(START, &history) {
            Ok(()) => prop_assert!(exhaustive, "versioned says valid, search does not: {history:?}"),
            Err(u) if u.definite => prop_assert!(!exhaustive, "definite {u} but the search found an order: {history:?}"),
            Err(_) => {}
        }
        if forge_to == 0 {
            prop_assert!(exhaustive);
        }
    }

    #[test]
    fn correct_runs_pass_and_a_forged_read_fails(
        calls in proptest::collection::vec(
            (0u64..4, 0u8..3, 1i64..1000, 0u64..9, 0u64..9), 1..40),
        forge in any::<proptest::sample::Index>(),
    ) {
        let history = run_history(&calls);
        prop_assert!(check(START, &history).is_ok());
        let reads: Vec<usize> = history
            .iter()
            .enumerate()
            .filter(|(_, o)| o.call == Call::Read)
            .map(|(i, _)| i)
            .collect();
        if !reads.is_empty() {
            let i = reads[forge.index(reads.len())];
            let mut forged = history.clone();
            forged[i].ret = read(-1, 0);
            prop_assert!(check(START, &forged).is_err());
        }
    }
}

#[test]
fn a_long_overlapping_history_is_checked() {
    // 3,000 operations of 4 clients, every interval overlapping its neighbours': the
    // memoized search must get through it (no time is asserted, only the verdict).
    let calls: Vec<(u64, u8, i64, u64, u64)> = (0..3000u64)
        .map(|i| (i % 4, (i * 7 % 3) as u8, (i * 31 % 997) as i64 + 1, 9, 9))
        .collect();
    let history = run_history(&calls);
    assert_eq!(check(START, &history).map(|order| order.len()), Ok(3000));
}

#[test]
fn the_versioned_check_takes_a_long_history_with_lost_answers() {
    // 200,000 operations, one answer in 50 lost: linear in the length.
    let calls: Vec<(u64, u8, i64, u64, u64)> = (0..200_000u64)
        .map(|i| (i % 8, (i * 7 % 3) as u8, 0, 9, 9))
        .collect();
    let lose: Vec<bool> = (0..200_000).map(|i| i % 50 == 7).collect();
    let history = unique_history(&calls, &lose);
    assert_eq!(check_versioned(START, &history), Ok(()));
    // A read moved to a later version's answer, long before it was written, is caught.
    let mut stale = history.clone();
    let early = stale
        .iter()
        .position(|o| matches!(o.ret, Ret::Read(_)))
        .unwrap();
    let late = stale
        .iter()
        .rposition(|o| matches!(o.ret, Ret::Read(s) if s.version > 10))
        .unwrap();
    stale[early].ret = stale[late].ret;
    assert!(check_versioned(START, &stale).is_err_and(|u| u.definite));
}
