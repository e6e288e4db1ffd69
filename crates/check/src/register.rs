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
        // Lowe's memo of (linearized set, state) configurations already explored. The
        // set is kept as a Zobrist fingerprint (the XOR of a random 128-bit key per
        // linearized operation) rather than a bitset: long histories would otherwise
        // copy n/8 bytes per step and keep every copy. Two different sets share a
        // fingerprint with probability about 2^-128 per pair.
        let keys: Vec<u128> = (0..self.history.len() as u64).map(zobrist_key).collect();
        let mut linearized: u128 = 0;
        let mut seen: HashSet<(u128, State)> = HashSet::new();
        // Answered operations not yet linearized: the search is done at zero.
        let mut answered_left = self
            .history
            .iter()
            .filter(|op| op.ret != Ret::Unknown)
            .count();
        let mut state = self.initial;
        // (op, state before it) for each linearized operation, innermost last.
        let mut stack: Vec<(usize, State)> = Vec::new();
        let mut best: Option<Anomaly> = None;
        let mut at = self.next[self.head()];
        loop {
            // Done when only unanswered operations remain: they may never have happened.
            if answered_left == 0 {
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
                    let moved = step(state, h.call, h.ret)
                        .filter(|&next| seen.insert((linearized ^ keys[op], next)));
                    match moved {
                        Some(next) => {
                            linearized ^= keys[op];
                            if h.ret != Ret::Unknown {
                                answered_left -= 1;
                            }
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
                    linearized ^= keys[op];
                    if self.history[op].ret != Ret::Unknown {
                        answered_left += 1;
                    }
                    state = before;
                    self.unlift(op);
                    at = self.next[self.call_at[op]];
                }
            }
        }
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

/// Operation `i`'s Zobrist key: splitmix64 of the index, twice, so keys are fixed
/// (the check stays deterministic) and independent of the history.
fn zobrist_key(i: u64) -> u128 {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (u128::from(mix(2 * i)) << 64) | u128::from(mix(2 * i + 1))
}

/// Why [`check_versioned`] could not confirm a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconfirmed {
    pub reason: String,
    /// Indices of the operations involved.
    pub ops: Vec<usize>,
    /// True when no linearization exists at all; false when only this check's
    /// shortcuts failed (then the exhaustive [`check`] decides).
    pub definite: bool,
}

impl fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (operations {:?})", self.reason, self.ops)
    }
}

/// Linearizability in O(n log n) for histories where every write writes a value no
/// other write writes, as ZooKeeper's versions then witness the order: version `v` was
/// made by exactly one write, which a successful write's answer or a read of `v` names.
/// So the order of the writes is known, each read sits between the write of its
/// version and the next, and what is left is to place every operation's point inside
/// its interval in that order. Earliest placement is optimal for that: each point
/// only bounds the later ones from below. Versions nobody observed being made are
/// given to unanswered writes (an unanswered cas only at its expected version + 1),
/// earliest invoked first, and a failed cas (BadVersion) must fit where the version
/// differed from its expected one; when either of these does not work out the answer
/// is not definite, as another choice might have.
///
/// `Ok` means a linearization exists (this check found one); a definite
/// [`Unconfirmed`] means none does.
pub fn check_versioned(initial: State, history: &[Op]) -> Result<(), Unconfirmed> {
    let unconfirmed = |reason: String, ops: Vec<usize>, definite: bool| {
        Err(Unconfirmed {
            reason,
            ops,
            definite,
        })
    };
    let normal = |call: Call| match call {
        Call::Cas {
            expected_version: -1,
            value,
        } => Call::Write(value),
        other => other,
    };
    let written = |call: Call| match call {
        Call::Write(v) | Call::Cas { value: v, .. } => Some(v),
        Call::Read => None,
    };
    // Who wrote each value.
    let mut writer_of: std::collections::HashMap<i64, usize> = Default::default();
    for (i, op) in history.iter().enumerate() {
        if let Some(v) = written(op.call) {
            if let Some(&j) = writer_of.get(&v) {
                return unconfirmed(
                    format!("value {v} is written twice: the versioned check needs unique values"),
                    vec![j, i],
                    false,
                );
            }
            writer_of.insert(v, i);
        }
    }
    // Which write made each version.
    let mut maker: std::collections::BTreeMap<i32, usize> = Default::default();
    let mut version_of: std::collections::HashMap<usize, i32> = Default::default();
    let mut assign = |v: i32, w: usize| -> Result<(), Unconfirmed> {
        if let Some(&other) = maker.get(&v) {
            if other != w {
                return unconfirmed(
                    format!("version {v} made by two writes"),
                    vec![other, w],
                    true,
                );
            }
        }
        if let Some(&before) = version_of.get(&w) {
            if before != v {
                return unconfirmed(
                    format!("one write made versions {before} and {v}"),
                    vec![w],
                    true,
                );
            }
        }
        maker.insert(v, w);
        version_of.insert(w, v);
        Ok(())
    };
    let mut reads_of: std::collections::BTreeMap<i32, Vec<usize>> = Default::default();
    for (i, op) in history.iter().enumerate() {
        match (normal(op.call), op.ret) {
            (_, Ret::Written { version }) => assign(version, i)?,
            (Call::Read, Ret::Read(seen)) => {
                if seen.version < initial.version {
                    return unconfirmed(
                        format!("read version {}, older than the first", seen.version),
                        vec![i],
                        true,
                    );
                }
                reads_of.entry(seen.version).or_default().push(i);
                if seen.version == initial.version {
                    if seen.value != initial.value {
                        return unconfirmed(
                            format!("read {seen:?}, but that version holds the initial value"),
                            vec![i],
                            true,
                        );
                    }
                    continue;
                }
                match writer_of.get(&seen.value) {
                    Some(&w) => assign(seen.version, w)?,
                    None => {
                        return unconfirmed(
                            format!("read value {}, which no write wrote", seen.value),
                            vec![i],
                            true,
                        );
                    }
                }
            }
            _ => {}
        }
    }
    // A cas that made version v expected v - 1.
    for (&v, &w) in &maker {
        if let Call::Cas {
            expected_version, ..
        } = normal(history[w].call)
        {
            if expected_version.wrapping_add(1) != v {
                return unconfirmed(
                    format!("a cas expecting version {expected_version} made version {v}"),
                    vec![w],
                    true,
                );
            }
        }
        if v <= initial.version {
            return unconfirmed(format!("a write made version {v}"), vec![w], true);
        }
    }
    let top = maker
        .keys()
        .chain(reads_of.keys())
        .copied()
        .max()
        .unwrap_or(initial.version);
    // Unanswered writes nobody observed, earliest invoked first, to fill the gaps.
    let mut spare: Vec<usize> = (0..history.len())
        .filter(|i| history[*i].ret == Ret::Unknown && !version_of.contains_key(i))
        .filter(|i| written(history[*i].call).is_some())
        .collect();
    spare.sort_by_key(|&i| history[i].invoked);
    let mut used = vec![false; spare.len()];
    let mut heuristic = false;
    // Place the points: `t` is the earliest the next one may be.
    let completed = |i: usize| match history[i].ret {
        Ret::Unknown => u64::MAX,
        _ => history[i].completed.max(history[i].invoked),
    };
    let mut made_at: std::collections::BTreeMap<i32, u64> = Default::default();
    let mut t = 0u64;
    // The operation whose invocation last moved `t`: with the one that does not fit,
    // it shows the anomaly.
    let mut pushed_by: Option<usize> = None;
    let mut v = initial.version;
    loop {
        if v != initial.version {
            let w = match maker.get(&v) {
                Some(&w) => w,
                None => {
                    heuristic = true;
                    let fits = |i: usize| match normal(history[i].call) {
                        Call::Cas {
                            expected_version, ..
                        } => expected_version.wrapping_add(1) == v,
                        _ => true,
                    };
                    let pick = (0..spare.len()).find(|&k| !used[k] && fits(spare[k]));
                    match pick {
                        Some(k) => {
                            used[k] = true;
                            spare[k]
                        }
                        None => {
                            return unconfirmed(
                                format!(
                                    "version {v} was observed later but no write can have made it"
                                ),
                                reads_of.get(&v).cloned().unwrap_or_default(),
                                false,
                            );
                        }
                    }
                }
            };
            if history[w].invoked > t {
                t = history[w].invoked;
                pushed_by = Some(w);
            }
            if t > completed(w) {
                return unconfirmed(
                    format!("the write of version {v} answered before the order lets it happen"),
                    pushed_by.into_iter().chain([w]).collect(),
                    !heuristic,
                );
            }
            made_at.insert(v, t);
        }
        let (mut after_reads, mut latest) = (t, pushed_by);
        for &r in reads_of.get(&v).into_iter().flatten() {
            let point = t.max(history[r].invoked);
            if point > completed(r) {
                return unconfirmed(
                    format!("a read of version {v} answered before version {v} can have been made"),
                    pushed_by.into_iter().chain([r]).collect(),
                    !heuristic,
                );
            }
            if point > after_reads {
                (after_reads, latest) = (point, Some(r));
            }
        }
        (t, pushed_by) = (after_reads, latest);
        if v >= top {
            break;
        }
        v = v.wrapping_add(1);
    }
    // A failed cas needs a moment in its interval when the version differed.
    for (i, op) in history.iter().enumerate() {
        let (
            Call::Cas {
                expected_version, ..
            },
            Ret::BadVersion,
        ) = (normal(op.call), op.ret)
        else {
            continue;
        };
        // Before the version was made (ordered just ahead of its write at a tie), after
        // the next was made, or at any moment if it never existed.
        let made = made_at.get(&expected_version).copied();
        let next = made_at.get(&expected_version.wrapping_add(1)).copied();
        let differed = if expected_version == initial.version {
            next.is_some_and(|u| completed(i) >= u)
        } else {
            match made {
                None => true,
                Some(m) => op.invoked <= m || next.is_some_and(|u| completed(i) >= u),
            }
        };
        if !differed {
            return unconfirmed(
                format!("BadVersion for version {expected_version} while it was current"),
                vec![i],
                false,
            );
        }
    }
    Ok(())
}
