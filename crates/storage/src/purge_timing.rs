//! What a background purge costs the writer: deleting keys (the purge before segments)
//! against dropping whole segments. Prints the numbers and checks only that the log is
//! whole afterwards; run in release on a real disk (the temp dir, or
//! `ROOKERY_PURGE_TIMING_DIR`):
//! `cargo test --release -p rookery-storage purge_timing -- --ignored --nocapture`

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

const ENTRY_BYTES: usize = 1024;
const FILL: Zxid = 200_000;
const DURING: Zxid = 50_000;
const SYNC_EVERY: Zxid = 64;
/// Leaves a few snapshots' worth of log, as retention does.
const PURGE_BEFORE: Zxid = 190_000;

/// Odd while the purge thread is in a sled call (a delete batch, a `drop_tree`), so the
/// writer can tell which of its syncs overlapped one.
#[derive(Debug, Default)]
struct Busy(AtomicU64);

impl Busy {
    fn during<T>(&self, call: impl FnOnce() -> T) -> T {
        self.0.fetch_add(1, Ordering::SeqCst);
        let result = call();
        self.0.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The purge before segments: keys removed in batches of 512, resting three times as
/// long as each batch took (at least 2 ms) between them. Returns the calls' durations.
fn purge_by_key_deletes(log: &sled::Tree, zxid: Zxid, busy: &Busy) -> Vec<Duration> {
    let end = chunk_key(zxid, 0);
    let mut calls = Vec::new();
    loop {
        let started = Instant::now();
        let n = busy.during(|| {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in log.range(..end).keys().take(512) {
                batch.remove(item.unwrap());
                n += 1;
            }
            log.apply_batch(batch).unwrap();
            n
        });
        if n == 0 {
            return calls;
        }
        calls.push(started.elapsed());
        std::thread::sleep((started.elapsed() * 3).max(Duration::from_millis(2)));
    }
}

/// What [`LogPurger::purge_before`] does, but a segment a call, to time each `drop_tree`.
fn purge_by_dropping(purger: &LogPurger, zxid: Zxid, busy: &Busy) -> Vec<Duration> {
    let step = usize::try_from(SEGMENT_ENTRIES).unwrap();
    let mut calls = Vec::new();
    for next_first in (1 + step as Zxid..=zxid).step_by(step) {
        let started = Instant::now();
        let dropped = busy.during(|| purger.purge_before(next_first).unwrap());
        assert_eq!(dropped, SEGMENT_ENTRIES);
        calls.push(started.elapsed());
        std::thread::sleep((started.elapsed() * PURGE_REST_FACTOR).max(PURGE_MIN_PAUSE));
    }
    calls
}

/// CPU time of the calling thread so far.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat.split_whitespace().next().and_then(|n| n.parse().ok());
    Duration::from_nanos(ns.unwrap_or(0))
}

/// Bytes this process has sent toward the disk so far.
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
enum Purge {
    Off,
    KeyDeletes,
    DropSegments,
}

fn run(purge: Purge) {
    let base =
        std::env::var_os("ROOKERY_PURGE_TIMING_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    // Key deletes ran on the one `log` tree: one segment as big as the whole log.
    let segment_entries = match purge {
        Purge::KeyDeletes => u64::MAX,
        Purge::Off | Purge::DropSegments => SEGMENT_ENTRIES,
    };
    let mut s = SledStorage::open_with_segment_entries(dir.path(), segment_entries).unwrap();
    let payload = vec![0x5a_u8; ENTRY_BYTES];
    let filling = Instant::now();
    for zxid in 1..=FILL {
        s.append(zxid, &payload).unwrap();
        if zxid % SYNC_EVERY == 0 {
            s.sync().unwrap();
        }
    }
    s.sync().unwrap();
    let filled = filling.elapsed();

    let purger = s.log_purger();
    let log = s.current.as_ref().unwrap().tree.clone();
    let busy = Arc::new(Busy::default());
    let (cpu_before, written_before) = (thread_cpu(), written_bytes());
    let purging = std::thread::spawn({
        let busy = Arc::clone(&busy);
        move || {
            let (started, cpu) = (Instant::now(), thread_cpu());
            let mut calls = match purge {
                Purge::Off => Vec::new(),
                Purge::KeyDeletes => purge_by_key_deletes(&log, PURGE_BEFORE, &busy),
                Purge::DropSegments => purge_by_dropping(&purger, PURGE_BEFORE, &busy),
            };
            calls.sort();
            (started.elapsed(), calls, thread_cpu() - cpu)
        }
    });
    // At least DURING more entries, and on until the purge is done.
    let (mut in_call, mut resting, mut no_purge) = <[Samples; 3]>::default().into();
    let mut zxid = FILL;
    while zxid < FILL + DURING || !purging.is_finished() {
        let (running, calls_before) = (!purging.is_finished(), busy.now());
        let group = Instant::now();
        for _ in 0..SYNC_EVERY {
            zxid += 1;
            s.append(zxid, &payload).unwrap();
        }
        s.sync().unwrap();
        let took = group.elapsed();
        let samples = if calls_before % 2 == 1 || busy.now() != calls_before {
            &mut in_call
        } else if running && !purging.is_finished() {
            &mut resting
        } else {
            &mut no_purge
        };
        samples.0.push(took);
    }
    let (writer_cpu, written) = (thread_cpu() - cpu_before, written_bytes() - written_before);
    let (purge_took, calls, purge_cpu) = purging.join().unwrap();
    let appended = zxid - FILL;
    // Whatever went, the log is one run from the first kept entry to the last appended.
    let first_kept = match purge {
        Purge::Off => 1,
        Purge::KeyDeletes => PURGE_BEFORE,
        Purge::DropSegments => PURGE_BEFORE - (PURGE_BEFORE - 1) % SEGMENT_ENTRIES as Zxid,
    };
    assert_eq!(s.first_zxid().unwrap(), Some(first_kept), "{purge:?}");
    assert_eq!(s.last_zxid(), Some(zxid), "{purge:?}");
    let head = s.entries_from(first_kept, 3).unwrap();
    let zxids: Vec<Zxid> = head.iter().map(|e| e.zxid).collect();
    assert_eq!(
        zxids,
        [first_kept, first_kept + 1, first_kept + 2],
        "{purge:?}"
    );
    println!(
        "{purge:?}: fill {FILL} x {ENTRY_BYTES} B in {filled:.1?}; purge took {purge_took:.1?}, \
         first zxid now {:?}",
        s.first_zxid().unwrap()
    );
    if let (Some(fastest), Some(slowest)) = (calls.first(), calls.last()) {
        let median = calls[calls.len() / 2];
        println!(
            "  {} purge calls: fastest {fastest:.1?}, median {median:.1?}, slowest {slowest:.1?}",
            calls.len()
        );
    }
    println!(
        "  {appended} appended meanwhile; CPU: writer {writer_cpu:.1?}, purge {purge_cpu:.1?}; \
         written {} MiB, {} B per entry appended",
        written >> 20,
        written / appended as u64
    );
    println!(
        "  append x{SYNC_EVERY} + sync, overlapping a purge call: {}",
        in_call.summary()
    );
    println!(
        "  append x{SYNC_EVERY} + sync, purge resting:            {}",
        resting.summary()
    );
    println!(
        "  append x{SYNC_EVERY} + sync, no purge running:         {}",
        no_purge.summary()
    );
}

/// Durations of `SYNC_EVERY` appends and a sync.
#[derive(Debug, Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn summary(mut self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0.sort();
        let total: Duration = self.0.iter().sum();
        let at = |p: f64| self.0[((self.0.len() as f64 * p).ceil() as usize).max(1) - 1];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:>5} syncs, {:>6.0} entries/s, p50 {:>5.2} ms, p99 {:>6.2} ms, max {:>6.2} ms",
            self.0.len(),
            (self.0.len() as f64 * SYNC_EVERY as f64) / total.as_secs_f64(),
            ms(at(0.50)),
            ms(at(0.99)),
            ms(at(1.0)),
        )
    }
}

#[test]
#[ignore = "timing, seconds of disk I/O: run in release with --ignored --nocapture"]
fn purge_timing_key_deletes_vs_dropped_segments() {
    let rounds = std::env::var("ROOKERY_PURGE_TIMING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut order = [Purge::Off, Purge::KeyDeletes, Purge::DropSegments];
    for _ in 0..rounds {
        for purge in order {
            run(purge);
        }
        // A different one first each round, in case the disk warms up.
        order.rotate_left(1);
    }
}
