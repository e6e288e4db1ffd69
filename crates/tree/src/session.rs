//! The leader's session expiry bookkeeping (`SessionTrackerImpl` + `ExpiryQueue`).
//! Not replicated: the set of open sessions lives in the DataTree; this only decides
//! when one has gone quiet for too long. Time is passed in.

use std::collections::{BTreeMap, BTreeSet};

use crate::node::{CONTAINER_OWNER, SessionId};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    timeout_ms: i32,
    expires_at: i64,
    closing: bool,
}

/// Sessions bucketed by expiry time, rounded up to the next tick
/// (`ExpiryQueue.roundToNextInterval`), so one timer per tick expires a whole bucket.
#[derive(Debug, Clone)]
pub struct SessionTracker {
    interval_ms: i64,
    next_expiration_ms: i64,
    next_session_id: i64,
    sessions: BTreeMap<SessionId, Entry>,
    buckets: BTreeMap<i64, BTreeSet<SessionId>>,
}

/// `SessionTrackerImpl.initializeNextSessionId`: the low 40 bits of the clock shifted
/// left by 16, and the server id in the top byte.
pub fn initial_session_id(server_id: u8, time_ms: i64) -> SessionId {
    let t = ((time_ms as u64) << 24) >> 8;
    let id = (t | (u64::from(server_id) << 56)) as i64;
    if id == CONTAINER_OWNER { id + 1 } else { id }
}

impl SessionTracker {
    /// `tick_ms` is ZooKeeper's tickTime (the expiry bucket width).
    pub fn new(server_id: u8, tick_ms: i64, now_ms: i64) -> Self {
        let interval_ms = tick_ms.max(1);
        SessionTracker {
            interval_ms,
            next_expiration_ms: round_up(now_ms, interval_ms),
            next_session_id: initial_session_id(server_id, now_ms),
            sessions: BTreeMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    /// A new session id (the caller proposes CreateSession for it), then tracks it.
    pub fn create_session(&mut self, timeout_ms: i32, now_ms: i64) -> SessionId {
        let mut id = self.next_session_id;
        while id == 0 || id == CONTAINER_OWNER || self.sessions.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_session_id = id.wrapping_add(1);
        self.track(id, timeout_ms, now_ms);
        id
    }

    /// Starts tracking a session (e.g. after becoming leader, for every session in
    /// the tree); returns false if it was already tracked (its expiry is refreshed).
    pub fn track(&mut self, id: SessionId, timeout_ms: i32, now_ms: i64) -> bool {
        let added = !self.sessions.contains_key(&id);
        self.sessions.entry(id).or_insert(Entry {
            timeout_ms,
            expires_at: i64::MIN,
            closing: false,
        });
        self.update_expiry(id, now_ms);
        added
    }

    fn update_expiry(&mut self, id: SessionId, now_ms: i64) {
        let Some(e) = self.sessions.get_mut(&id) else {
            return;
        };
        let new = round_up(
            now_ms.saturating_add(i64::from(e.timeout_ms)),
            self.interval_ms,
        );
        if new == e.expires_at {
            return;
        }
        let old = std::mem::replace(&mut e.expires_at, new);
        if let Some(b) = self.buckets.get_mut(&old) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&old);
            }
        }
        self.buckets.entry(new).or_default().insert(id);
    }

    /// Client activity: pushes the expiry out. False for an unknown or closing
    /// session (`touchSession`).
    pub fn touch(&mut self, id: SessionId, now_ms: i64) -> bool {
        match self.sessions.get(&id) {
            Some(e) if !e.closing => {
                self.update_expiry(id, now_ms);
                true
            }
            _ => false,
        }
    }

    /// Marks a session closing: no more touches; its CloseSession is in flight.
    pub fn set_closing(&mut self, id: SessionId) {
        if let Some(e) = self.sessions.get_mut(&id) {
            e.closing = true;
        }
    }

    pub fn is_closing(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(|e| e.closing)
    }

    pub fn remove(&mut self, id: SessionId) {
        if let Some(e) = self.sessions.remove(&id) {
            if let Some(b) = self.buckets.get_mut(&e.expires_at) {
                b.remove(&id);
                if b.is_empty() {
                    self.buckets.remove(&e.expires_at);
                }
            }
        }
    }

    pub fn contains(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn timeout_ms(&self, id: SessionId) -> Option<i32> {
        self.sessions.get(&id).map(|e| e.timeout_ms)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Milliseconds until the next bucket is due (`ExpiryQueue.getWaitTime`).
    pub fn wait_ms(&self, now_ms: i64) -> i64 {
        (self.next_expiration_ms - now_ms).max(0)
    }

    /// Every session whose bucket is due at `now_ms`, in id order; they are marked
    /// closing (the caller proposes a CloseSession for each) and stay tracked until
    /// [`SessionTracker::remove`].
    pub fn expired(&mut self, now_ms: i64) -> Vec<SessionId> {
        if now_ms < self.next_expiration_ms {
            return Vec::new();
        }
        let due: Vec<i64> = self.buckets.range(..=now_ms).map(|(t, _)| *t).collect();
        let mut out = BTreeSet::new();
        for t in due {
            if let Some(ids) = self.buckets.remove(&t) {
                out.extend(ids);
            }
        }
        for id in &out {
            if let Some(e) = self.sessions.get_mut(id) {
                e.closing = true;
                e.expires_at = i64::MIN;
            }
        }
        self.next_expiration_ms = round_up(now_ms, self.interval_ms);
        out.into_iter().collect()
    }
}

/// `(time / interval + 1) * interval`.
fn round_up(time: i64, interval: i64) -> i64 {
    time.div_euclid(interval)
        .saturating_add(1)
        .saturating_mul(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_layout() {
        let id = initial_session_id(1, 0x12_3456_789a);
        assert_eq!(id as u64, 0x0112_3456_789a_0000);
        // Only the low 40 bits of the clock survive.
        assert_eq!(
            initial_session_id(2, 0x7f12_3456_789a) as u64,
            0x0212_3456_789a_0000
        );
        assert_eq!(initial_session_id(0x80, 0), CONTAINER_OWNER + 1);
        let mut t = SessionTracker::new(3, 2000, 0x100);
        let a = t.create_session(30000, 0x100);
        let b = t.create_session(30000, 0x100);
        assert_eq!(a as u64 >> 56, 3);
        assert_eq!(b, a + 1);
    }

    #[test]
    fn expiry_is_bucketed_by_tick() {
        let mut t = SessionTracker::new(1, 2000, 0);
        let s = t.create_session(5000, 100); // 5100 rounds up to 6000
        assert!(t.expired(5999).is_empty());
        assert_eq!(t.wait_ms(5999), 1);
        assert_eq!(t.expired(6000), vec![s]);
        assert!(t.is_closing(s));
        assert!(!t.touch(s, 6000), "closing sessions cannot be touched");
        t.remove(s);
        assert!(!t.contains(s));
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut t = SessionTracker::new(1, 1000, 0);
        let s = t.create_session(3000, 0); // expires at 4000
        assert!(t.touch(s, 2500)); // now 6000
        assert!(t.expired(4000).is_empty());
        assert!(t.expired(5999).is_empty());
        assert_eq!(t.expired(6000), vec![s]);
        assert!(!t.touch(12345, 0), "unknown session");
    }

    #[test]
    fn many_due_buckets_at_once() {
        let mut t = SessionTracker::new(1, 1000, 0);
        let a = t.create_session(1000, 0);
        let b = t.create_session(5000, 0);
        let c = t.create_session(50_000, 0);
        assert_eq!(t.expired(1_000_000), vec![a, b, c]);
        assert!(t.expired(2_000_000).is_empty());
    }
}
