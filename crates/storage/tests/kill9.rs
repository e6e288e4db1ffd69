//! kill -9 while appending: every zxid a writer reported as synced must be there, with its
//! bytes, after reopening. The writer is this test binary re-executed as a child (sled's
//! own crash tests work the same way).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rookery_storage::SledStorage;
use rookery_zab::storage::conformance::payload;
use rookery_zab::storage::{TxnLog, Zxid};

const CHILD_DIR_ENV: &str = "ROOKERY_STORAGE_KILL9_CHILD_DIR";
const ROUNDS: usize = 10;
/// Small log segments, so kills land during segment rolls too.
const SEGMENT_ENTRIES: u64 = 100;

/// Mostly small entries, and now and then one that spans several sled values.
fn entry_payload(zxid: Zxid) -> Vec<u8> {
    let len = if zxid % 97 == 0 { 150_000 } else { 100 };
    payload(zxid, len)
}

/// The child: append batches of 1..=10 and sync, forever, reporting each synced zxid.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return; // Not a child: nothing to do.
    };
    let mut storage = SledStorage::open_with_segment_entries(&dir, SEGMENT_ENTRIES).unwrap();
    let mut zxid = storage.last_zxid().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for batch in (1..=10).cycle() {
        for _ in 0..batch {
            zxid += 1;
            storage.append(zxid, &entry_payload(zxid)).unwrap();
        }
        storage.sync().unwrap();
        writeln!(out, "synced {zxid}").unwrap();
        out.flush().unwrap();
    }
}

/// xorshift64*, seeded from the clock and printed, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn kill_9_loses_no_synced_entry() {
    if std::env::var_os(CHILD_DIR_ENV).is_some() {
        return;
    }
    let seed = std::env::var("KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill9 seed {seed} (rerun with KILL9_SEED={seed})");
    let mut rng = Rng(seed);
    // On the target dir's disk, not /tmp, which may be tmpfs where fsync is free.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut synced_before = 0;

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        // Kill at a random moment once the child is writing.
        let mut synced: Vec<Zxid> = Vec::new();
        let mut record = |line: &str| {
            if let Some(zxid) = line.strip_prefix("synced ") {
                synced.push(zxid.parse().unwrap());
            }
        };
        loop {
            let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
            if line.starts_with("synced ") {
                record(&line);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10 + rng.below(300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in lines.try_iter() {
            record(&line);
        }
        let Some(&last_synced) = synced.last() else {
            panic!("round {round}: the child reported nothing synced")
        };

        let storage = SledStorage::open_with_segment_entries(dir.path(), SEGMENT_ENTRIES).unwrap();
        let recovery = storage.recovery().clone();
        let entries = storage.entries_from(0, usize::MAX).unwrap();
        let last = storage.last_zxid().unwrap();
        eprintln!(
            "round {round}: synced {} batches up to {last_synced}, log ends at {last}, \
             recovery cut {} ({:?})",
            synced.len(),
            recovery.entries_cut,
            recovery.first_corruption
        );
        assert!(last >= last_synced, "round {round}: lost synced zxids");
        assert!(synced.iter().all(|&z| z > synced_before));
        assert_eq!(entries.len() as Zxid, last, "gap-free from 1");
        for (expected, entry) in (1..).zip(&entries) {
            assert_eq!(entry.zxid, expected);
            assert!(
                entry.payload == entry_payload(expected),
                "bytes of {expected}"
            );
        }
        synced_before = last;
        drop(storage);
    }
    eprintln!("{ROUNDS} kills in {:?}", started.elapsed());
}
