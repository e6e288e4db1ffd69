//! One znode as a register: its data (an integer here) and its version, as getData
//! and setData see them. Per-znode histories are independent (P-compositionality), so
//! a recorder splits its history by path and checks each part on its own.

use std::collections::HashSet;
use std::fmt;

/// The register's state: ZooKeeper's data and `Stat.version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    pub value: i64,
    pub version: i32,
}

/// What a client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// getData.
    Read,
    /// setData with version -1.
    Write(i64),
    /// setData with an expected version: the compare-and-set.
    Cas { expected_version: i32, value: i64 },
}

/// What the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// getData's data and version.
    Read(State),
    /// setData's new version.
    Written { version: i32 },
    /// setData's BadVersion: nothing changed.
    BadVersion,
    /// No answer (timeout, connection loss): it may or may not have taken effect.
    Unknown,
}

/// One operation: who, when it was invoked and answered (any monotonic clock, in the
/// same unit for the whole history), what it asked and what it got. `completed` is
/// ignored for [`Ret::Unknown`]: such an operation may take effect at any time after
/// its invocation, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub client: u64,
    pub invoked: u64,
    pub completed: u64,
    pub call: Call,
    pub ret: Ret,
}

/// The register's sequential specification: the state after `call`, if `ret` is what
/// a correct server could answer in `state`.
pub fn step(state: State, call: Call, ret: Ret) -> Option<State> {
    let next = |value| State {
        value,
        version: state.version.wrapping_add(1),
    };
    // setData's version -1 means "any version": a plain write.
    let call = match call {
        Call::Cas {
            expected_version: -1,
            value,
        } => Call::Write(value),
        other => other,
    };
    match (call, ret) {
        (Call::Read, Ret::Read(seen)) => (seen == state).then_some(state),
        (Call::Read, Ret::Unknown) => Some(state),
        (Call::Write(v), Ret::Written { version }) => {
            (version == state.version.wrapping_add(1)).then(|| next(v))
        }
        (Call::Write(v), Ret::Unknown) => Some(next(v)),
        (
            Call::Cas {
                expected_version,
                value,
            },
            Ret::Written { version },
        ) => (expected_version == state.version && version == state.version.wrapping_add(1))
            .then(|| next(value)),
        (
            Call::Cas {
                expected_version, ..
            },
            Ret::BadVersion,
        ) => (expected_version != state.version).then_some(state),
        (
            Call::Cas {
                expected_version,
                value,
            },
            Ret::Unknown,
        ) => Some(if expected_version == state.version {
            next(value)
        } else {
            state
        }),
        _ => None,
    }
}

/// Why a history is not linearizable: the longest prefix the search could order, the
/// state after it, and the operations none of which could come next (the anomaly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Indices into the history, in the order they were linearized.
    pub prefix: Vec<usize>,
    pub state: State,
    /// Answered operations that were due (invoked before the earliest pending answer)
    /// but could not be placed next.
    pub stuck: Vec<usize>,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no linearization: after {} operations the register is {:?}, and none of \
             operations {:?} can come next",
            self.prefix.len(),
            self.state,
            self.stuck
        )
    }
}

/// Whether `history` (one register, starting in `initial`) is linearizable.
pub fn check(initial: State, history: &[Op]) -> Result<Vec<usize>, Anomaly> {
    Search::new(initial, history).run()
}

/// An event of the search's list: an operation's invocation or its answer.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

struct Search<'a> {
    history: &'a [Op],
    events: Vec<Event>,
    /// Doubly linked list over `events` (index `len` is the head sentinel).
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Where each operation's call and answer are in `events`.
    call_at: Vec<usize>,
    ret_at: Vec<Option<usize>>,
    initial: State,
}

impl<'a> Search<'a> {
    fn new(initial: State, history: &'a [Op]) -> Self {
        // Answers sort after calls at the same instant: operations that touch in time
        // count as concurrent, the permissive reading of a clock's resolution.
        let mut timed: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
        for (i, op) in history.iter().enumerate() {
            timed.push((op.invoked, false, i));
            if op.ret != Ret::Unknown {
                timed.push((op.completed.max(op.invoked), true, i));
            }
        }
        timed.sort();
        let events: Vec<Event> = timed
            .iter()
            .map(|&(_, is_ret, op)| Event {
                op,
                is_call: !is_ret,
            })
            .collect();
        let n = events.len();
        let mut call_at = vec![0; history.len()];
        let mut ret_at = vec![None; history.len()];
        for (at, e) in events.iter().enumerate() {
            if e.is_call {
                call_at[e.op] = at;
            } else {
                ret_at[e.op] = Some(at);
            }
        }
        // Node `n` is the head sentinel: head -> 0 -> 1 -> ... -> n-1 -> head.
        let next: Vec<usize> = (0..=n).map(|i| (i + 1) % (n + 1)).collect();
        let prev: Vec<usize> = (0..=n).map(|i| (i + n) % (n + 1)).collect();
        Search {
            history,
            events,
            next,
            prev,
            call_at,
            ret_at,
            initial,
        }
    }

    fn head(&self) -> usize {
        self.events.len()
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = at;
        self.prev[n] = at;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_at[op]);
        if let Some(r) = self.ret_at[op] {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, op: usize) {
        if let Some(r) = self.ret_at[op] {
            self.relink(r);
        }
        self.relink(self.call_at[op]);
    }

    fn run(mut self) -> Result<Vec<usize>, Anomaly> {
        let words = self.history.len().div_ceil(64);
        let mut linearized = vec![0u64; words];
        let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
        let mut state = self.initial;
        // (op, state before it) for each linearized operation, innermost last.
        let mut stack: Vec<(usize, State)> = Vec::new();
        let mut best: Option<Anomaly> = None;
        let mut at = self.next[self.head()];
        loop {
            // Done when only unanswered operations remain: they may never have happened.
            if self.only_unknown_left() {
                return Ok(stack.iter().map(|&(op, _)| op).collect());
            }
            let e = if at == self.head() {
                None
            } else {
                Some(self.events[at])
            };
            match e {
                Some(Event { op, is_call: true }) => {
                    let h = self.history[op];
                    let moved = step(state, h.call, h.ret).and_then(|next| {
                        set(&mut linearized, op, true);
                        if seen.insert((linearized.clone(), next)) {
                            Some(next)
                        } else {
                            set(&mut linearized, op, false);
                            None
                        }
                    });
                    match moved {
                        Some(next) => {
                            stack.push((op, state));
                            state = next;
                            self.lift(op);
                            at = self.next[self.head()];
                        }
                        None => at = self.next[at],
                    }
                }
                // An answer (or the end) before every call was tried: back up.
                _ => {
                    if best.as_ref().is_none_or(|b| b.prefix.len() < stack.len()) {
                        best = Some(Anomaly {
                            prefix: stack.iter().map(|&(op, _)| op).collect(),
                            state,
                            stuck: self.due_calls(),
                        });
                    }
                    let Some((op, before)) = stack.pop() else {
                        return Err(best.unwrap_or(Anomaly {
                            prefix: Vec::new(),
                            state,
                            stuck: Vec::new(),
                        }));
                    };
                    set(&mut linearized, op, false);
                    state = before;
                    self.unlift(op);
                    at = self.next[self.call_at[op]];
                }
            }
        }
    }

    /// True when every event left belongs to an operation without an answer.
    fn only_unknown_left(&self) -> bool {
        let mut at = self.next[self.head()];
        while at != self.head() {
            if self.history[self.events[at].op].ret != Ret::Unknown {
                return false;
            }
            at = self.next[at];
        }
        true
    }

    /// Answered operations invoked before the first answer still in the list.
    fn due_calls(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.next[self.head()];
        while at != self.head() {
            let e = self.events[at];
            if !e.is_call {
                break;
            }
            if self.history[e.op].ret != Ret::Unknown {
                out.push(e.op);
            }
            at = self.next[at];
        }
        out
    }
}

fn set(bits: &mut [u64], i: usize, on: bool) {
    let (w, b) = (i / 64, i % 64);
    if let Some(word) = bits.get_mut(w) {
        if on {
            *word |= 1 << b;
        } else {
            *word &= !(1 << b);
        }
    }
}
