//! What a snapshot costs the thread that owns the tree, and what holding one costs
//! the writes after it. Not a test: it prints numbers and asserts no timings.
//!
//! `cargo run --release -p rookery-tree --example snapshot_bench [-- NODES]`
//!
//! Builds NODES (default 1,000,000) znodes of 100 bytes under 1,000 parents, then
//! reports the process RSS, the time to clone the tree, to serialize it and to restore
//! it from those bytes, and the
//! time to apply 100,000 setData Txns with and without a clone held alive (best of
//! three, a fresh clone each time), and while another thread serializes that clone,
//! as the server does; last, the time to delete every leaf.

use std::time::{Duration, Instant};

use rookery_tree::{CreateKind, DataTree, DeleteKind, Txn, TxnHeader};
use rookery_wire::Acl;

const PARENTS: usize = 1_000;
const WRITES: usize = 100_000;

/// VmRSS from /proc/self/status, in MiB (Linux only; `None` elsewhere).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Bench {
    tree: DataTree,
    zxid: i64,
    children_per_parent: usize,
    /// Deterministic LCG picking which leaf a setData hits.
    rng: u64,
    versions: Vec<i32>,
}

impl Bench {
    fn header(&mut self) -> TxnHeader {
        self.zxid += 1;
        TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid: self.zxid,
            time_ms: self.zxid,
        }
    }

    fn create(&mut self, path: String, data: Option<Vec<u8>>, parent_cversion: i32) {
        let h = self.header();
        let txn = Txn::Create {
            kind: CreateKind::Create,
            path,
            data,
            acl: Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion,
        };
        self.tree.apply(&h, txn);
    }

    fn build(nodes: usize) -> Bench {
        let children_per_parent = nodes.div_ceil(PARENTS).max(1);
        let mut b = Bench {
            tree: DataTree::default(),
            zxid: 0,
            children_per_parent,
            rng: 0x2545_f491_4f6c_dd1d,
            versions: vec![0; PARENTS * children_per_parent],
        };
        b.create("/b".into(), Some(Vec::new()), 2);
        for p in 0..PARENTS {
            b.create(format!("/b/p{p:04}"), Some(Vec::new()), p as i32 + 1);
        }
        for p in 0..PARENTS {
            for c in 0..children_per_parent {
                let data = Some(vec![b'x'; 100]);
                b.create(format!("/b/p{p:04}/c{c:06}"), data, c as i32 + 1);
            }
        }
        b
    }

    fn set_data(&mut self, n: usize) {
        for _ in 0..n {
            self.rng = self
                .rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let leaf = (self.rng >> 33) as usize % self.versions.len();
            let (p, c) = (
                leaf / self.children_per_parent,
                leaf % self.children_per_parent,
            );
            self.versions[leaf] += 1;
            let h = self.header();
            let txn = Txn::SetData {
                path: format!("/b/p{p:04}/c{c:06}"),
                data: Some(vec![b'y'; 100]),
                version: self.versions[leaf],
            };
            self.tree.apply(&h, txn);
        }
    }

    /// Deletes every leaf, parent by parent.
    fn delete_leaves(&mut self) {
        for p in 0..PARENTS {
            for c in 0..self.children_per_parent {
                let h = self.header();
                let txn = Txn::Delete {
                    kind: DeleteKind::Delete,
                    path: format!("/b/p{p:04}/c{c:06}"),
                };
                self.tree.apply(&h, txn);
            }
        }
    }
}

fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rss0 = rss_mib().unwrap_or(0.0);
    let t = Instant::now();
    let mut b = Bench::build(nodes);
    println!(
        "build: {} znodes in {:.0} ms",
        b.tree.node_count(),
        ms(t.elapsed())
    );
    let rss_built = rss_mib().unwrap_or(0.0);
    println!("rss: {rss0:.0} MiB at start, {rss_built:.0} MiB after build");

    let t = Instant::now();
    let frozen = b.tree.clone();
    let clone_time = t.elapsed();
    let rss_cloned = rss_mib().unwrap_or(0.0);
    println!(
        "(a) clone: {:.1} us; rss with the clone alive: {rss_cloned:.0} MiB",
        clone_time.as_secs_f64() * 1e6
    );
    drop(frozen);

    let t = Instant::now();
    let bytes = b.tree.snapshot();
    println!(
        "(b) serialize: {:.0} ms, {} MiB",
        ms(t.elapsed()),
        bytes.len() >> 20
    );
    let t = Instant::now();
    let restored = DataTree::restore(&bytes).expect("restore");
    println!(
        "(b') restore: {:.0} ms, {} znodes",
        ms(t.elapsed()),
        restored.node_count()
    );
    drop(restored);
    drop(bytes);

    let best = (0..3)
        .map(|_| {
            let t = Instant::now();
            b.set_data(WRITES);
            t.elapsed()
        })
        .min()
        .unwrap_or_default();
    println!("(c) {WRITES} setData, no clone alive: {:.0} ms", ms(best));

    let mut rss_alive = 0.0;
    let best = (0..3)
        .map(|_| {
            let frozen = b.tree.clone();
            let t = Instant::now();
            b.set_data(WRITES);
            let took = t.elapsed();
            rss_alive = rss_mib().unwrap_or(0.0);
            drop(frozen);
            took
        })
        .min()
        .unwrap_or_default();
    println!(
        "(c) {WRITES} setData, a clone alive: {:.0} ms; rss with it: {rss_alive:.0} MiB",
        ms(best)
    );

    // As the server does: clone on this thread, serialize on another while writing.
    let t = Instant::now();
    let frozen = b.tree.clone();
    let core_time = t.elapsed();
    let saver = std::thread::spawn(move || {
        let t = Instant::now();
        let len = frozen.snapshot().len();
        (t.elapsed(), len)
    });
    let t = Instant::now();
    b.set_data(WRITES);
    let write_time = t.elapsed();
    let (ser_time, len) = saver.join().unwrap_or_default();
    println!(
        "(c) {WRITES} setData while another thread serializes: {:.0} ms \
         (clone on this thread {:.1} us; background serialize {:.0} ms, {} MiB)",
        ms(write_time),
        core_time.as_secs_f64() * 1e6,
        ms(ser_time),
        len >> 20
    );

    let t = Instant::now();
    b.delete_leaves();
    println!(
        "(d) delete the leaves: {:.0} ms, {} znodes left",
        ms(t.elapsed()),
        b.tree.node_count()
    );
}
