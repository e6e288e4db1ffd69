//! Quotas as ZooKeeper keeps them inside the tree: a quota on `/p` is the node
//! `/zookeeper/quota/p/zookeeper_limits`; apply keeps `/zookeeper/quota/p/zookeeper_stats`
//! up to date (count of nodes in the subtree including `/p`, and bytes of data), and
//! prep enforces hard limits when `TreeConfig::enforce_quota` is on
//! (`DataTree.updateQuotaStat`, `ZooKeeperServer.checkQuota`, `StatsTrack`).

use std::collections::BTreeMap;
use std::ops::Bound;

use rookery_wire::ErrorCode;

use crate::path::QUOTA;
use crate::tree::DataTree;

pub const LIMIT_NODE: &str = "zookeeper_limits";
pub const STAT_NODE: &str = "zookeeper_stats";

pub fn limit_path(path: &str) -> String {
    format!("{QUOTA}{path}/{LIMIT_NODE}")
}

pub fn stat_path(path: &str) -> String {
    format!("{QUOTA}{path}/{STAT_NODE}")
}

/// `StatsTrack`: `count=..,bytes=..` plus optional `;key=value` extras. Missing keys
/// read as -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    stats: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses leniently: pairs separated by `,` or `;`; malformed pairs are skipped.
    pub fn parse(data: &[u8]) -> StatsTrack {
        let s = String::from_utf8_lossy(data);
        let mut stats = BTreeMap::new();
        for pair in s.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                continue;
            };
            let v = if v.is_empty() {
                Some(-1)
            } else {
                v.parse().ok()
            };
            if let Some(v) = v {
                stats.insert(k.to_owned(), v);
            }
        }
        StatsTrack { stats }
    }

    pub fn get(&self, key: &str) -> i64 {
        self.stats.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, v: i64) {
        self.stats.insert(key.to_owned(), v);
    }

    pub fn count(&self) -> i64 {
        self.get("count")
    }

    pub fn bytes(&self) -> i64 {
        self.get("bytes")
    }

    /// `StatsTrack.toString`: count and bytes first; extras sorted after a `=` that
    /// old parsers ignore.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("count={},bytes={}", self.count(), self.bytes());
        let extras: Vec<(&String, &i64)> = self
            .stats
            .iter()
            .filter(|(k, _)| k.as_str() != "count" && k.as_str() != "bytes")
            .collect();
        if !extras.is_empty() {
            s.push('=');
            for (k, v) in extras {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s.into_bytes()
    }
}

/// The quota root `/p` for a `/zookeeper/quota/p` parent path, if any.
pub(crate) fn trim(parent: &str) -> Option<&str> {
    let rest = parent.strip_prefix(QUOTA)?;
    (rest.starts_with('/') && rest.len() > 1).then_some(rest)
}

impl DataTree {
    /// The deepest quota root at or above `path` (`getMaxPrefixWithQuota`).
    pub fn quota_prefix(&self, path: &str) -> Option<&str> {
        let mut p = path;
        loop {
            if let Some(r) = self.quota_roots.get(p) {
                return Some(r.as_str());
            }
            match p.rfind('/') {
                Some(0) | None => return None,
                Some(i) => p = &p[..i],
            }
        }
    }

    /// `updateQuotaStat`: adjusts the stats node of a quota root in place (its Stat is
    /// untouched, as in ZooKeeper).
    pub(crate) fn update_quota_stat(&mut self, root: &str, bytes_diff: i64, count_diff: i64) {
        let sp = stat_path(root);
        let _ = self.modify(&sp, |n| {
            let mut st = StatsTrack::parse(n.data.as_deref().unwrap_or_default());
            st.set("count", st.count().saturating_add(count_diff));
            st.set("bytes", st.bytes().saturating_add(bytes_diff));
            n.data = Some(st.encode().into_boxed_slice());
        });
    }

    /// `updateQuotaForPath`: recounts a subtree into its stats node.
    pub(crate) fn update_quota_for_path(&mut self, root: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(n) = self.nodes.get(root) {
            count += 1;
            bytes += n.data_len() as i64;
        }
        let lo = format!("{root}/");
        let hi = format!("{root}0");
        let range = (Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str()));
        for (_, n) in self.nodes.range::<_, str>(range) {
            count += 1;
            bytes += n.data_len() as i64;
        }
        let mut st = StatsTrack::default();
        st.set("count", count);
        st.set("bytes", bytes);
        let data = st.encode();
        let _ = self.modify(&stat_path(root), |n| n.data = Some(data.into_boxed_slice()));
    }

    /// `checkQuota` (only with enforce_quota): QuotaExceeded when a hard limit would be
    /// passed. Reads the applied tree, not pending changes, as ZooKeeper does.
    pub(crate) fn check_quota(
        &self,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
    ) -> Result<(), ErrorCode> {
        if !self.config.enforce_quota {
            return Ok(());
        }
        let Some(root) = self.quota_prefix(path) else {
            return Ok(());
        };
        let Some(limit_node) = self.nodes.get(limit_path(root).as_str()) else {
            return Ok(());
        };
        let limits = StatsTrack::parse(limit_node.data.as_deref().unwrap_or_default());
        let check_count =
            count_diff != 0 && (limits.count() > -1 || limits.get("countHardLimit") > -1);
        let check_bytes =
            bytes_diff != 0 && (limits.bytes() > -1 || limits.get("byteHardLimit") > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let Some(stat_node) = self.nodes.get(stat_path(root).as_str()) else {
            return Ok(());
        };
        let current = StatsTrack::parse(stat_node.data.as_deref().unwrap_or_default());
        let hard_count = limits.get("countHardLimit");
        if check_count && hard_count > -1 && current.count().saturating_add(count_diff) > hard_count
        {
            return Err(ErrorCode::QuotaExceeded);
        }
        let hard_bytes = limits.get("byteHardLimit");
        if check_bytes && hard_bytes > -1 && current.bytes().saturating_add(bytes_diff) > hard_bytes
        {
            return Err(ErrorCode::QuotaExceeded);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_format() {
        let s = StatsTrack::parse(b"count=3,bytes=10");
        assert_eq!((s.count(), s.bytes()), (3, 10));
        assert_eq!(s.encode(), b"count=3,bytes=10");
        let s = StatsTrack::parse(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2");
        assert_eq!(s.get("countHardLimit"), 2);
        assert_eq!(
            s.encode(),
            b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2"
        );
        assert_eq!(StatsTrack::parse(b"garbage,x=y").count(), -1);
    }

    #[test]
    fn trim_quota_paths() {
        assert_eq!(trim("/zookeeper/quota/a/b"), Some("/a/b"));
        assert_eq!(trim("/zookeeper/quota"), None);
        assert_eq!(trim("/zookeeper/quotax"), None);
    }
}
