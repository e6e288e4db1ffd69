//! A latency histogram of fixed size that merges by adding counts: exact below 64,
//! then 32 buckets per power of two, so a reported percentile is within 1/32 (about
//! 3%) above the true value. Per-worker histograms are merged at the end of a cell,
//! so recording needs no lock.

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 64;
/// Sub-buckets per power of two above the linear range (2^5).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two above the linear range: 2^6 .. 2^63.
const BUCKETS: usize = LINEAR as usize + (64 - 6) * SUB as usize;

/// Counts of recorded values (microseconds, in this crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= 6
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) - SUB; // 0..SUB
    LINEAR as usize + (msb as usize - 6) * SUB as usize + sub as usize
}

/// The largest value that lands in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let j = i - LINEAR as usize;
    let msb = 6 + (j / SUB as usize) as u32;
    let sub = (j % SUB as usize) as u128;
    let shift = msb - SUB_BITS;
    let high = ((u128::from(SUB) + sub + 1) << shift) - 1;
    u64::try_from(high).unwrap_or(u64::MAX)
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn min(&self) -> Option<u64> {
        (self.total > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }

    /// The value at quantile `q` (0.5, 0.99, 0.999): the smallest bucket bound at or
    /// below which at least `ceil(q * count)` values lie, clamped to the recorded
    /// minimum and maximum. None when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_high(i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_within_one_thirty_second() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= last, "index not monotonic at {v}");
            last = i;
            let high = bucket_high(i);
            assert!(high >= v, "{v} above its bucket's bound {high}");
            // The bucket's lower end is the previous bucket's bound + 1.
            let low = if i == 0 { 0 } else { bucket_high(i - 1) + 1 };
            assert!(low <= v, "{v} below its bucket's start {low}");
            assert!(
                (high - low) as f64 <= (low as f64 / 32.0).max(0.0) + 1e-9 || v < LINEAR,
                "bucket {i} [{low}, {high}] wider than 1/32"
            );
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_high(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn quantiles_of_one_to_ten_thousand() {
        let mut h = Histogram::new();
        for v in 1..=10_000 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.min(), Some(1));
        assert_eq!(h.max(), Some(10_000));
        assert_eq!(h.mean(), Some(5000.5));
        for (q, exact) in [(0.5, 5_000.0), (0.99, 9_900.0), (0.999, 9_990.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!(
                got >= exact && got <= exact * (1.0 + 1.0 / 32.0),
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile(1.0), Some(10_000));
        assert_eq!(h.quantile(0.0), Some(1));
    }

    #[test]
    fn small_values_are_exact_and_the_tail_is_seen() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(40);
        }
        h.record(50_000);
        assert_eq!(h.quantile(0.5), Some(40));
        assert_eq!(h.quantile(0.999), Some(40));
        // The one slow request is the 1000th of 1000.
        assert_eq!(h.quantile(0.9999), Some(50_000));
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in [3, 70, 900, 12_345, 1 << 40] {
            a.record(v);
            all.record(v);
        }
        for v in [5, 64, 65, 2_000_000] {
            b.record(v);
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(Histogram::new().quantile(0.5), None);
        let mut empty = Histogram::new();
        empty.merge(&Histogram::new());
        assert_eq!(empty.min(), None);
    }
}
