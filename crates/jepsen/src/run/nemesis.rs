//! The nemesis: every `interval`, one seeded fault from the allowed list, held for
//! `interval`, then undone; at the deadline everything is healed, resumed and
//! restarted. Faults act through the harness: signals to the server processes and the
//! per-link TCP proxies between them.

use std::time::{Duration, Instant};

use rookery_jepsen::{Fault, NemesisEvent, Rng, random_minority};
use rookery_tests::Cluster;

pub(crate) struct Schedule {
    pub(crate) seed: u64,
    pub(crate) start: Instant,
    pub(crate) deadline: Instant,
    pub(crate) interval: Duration,
    pub(crate) faults: Vec<Fault>,
}

fn log(start: Instant, what: &str) {
    println!("[{:6.1}s] nemesis: {what}", start.elapsed().as_secs_f64());
}

/// Restarts node `n`, reporting rather than panicking when it does not serve.
fn restart(cluster: &mut Cluster, n: usize) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cluster.restart(n))).is_ok()
}

pub(crate) fn run(mut cluster: Cluster, s: Schedule) -> (Cluster, Vec<NemesisEvent>) {
    let mut rng = Rng::new(s.seed ^ 0x6E65_6D65_7369_7321);
    let ids: Vec<usize> = cluster.ids().collect();
    let n = ids.len();
    let mut events = Vec::new();
    let interval = s.interval;
    loop {
        std::thread::sleep(interval);
        if s.faults.is_empty() || Instant::now() + interval >= s.deadline {
            break;
        }
        let fault = rng.pick(&s.faults);
        let random = 1 + rng.below(n as u64) as usize;
        let minority = random_minority(&mut rng, n);
        let other = 1 + (random + rng.below(n as u64 - 1) as usize) % n;
        let leader = match fault {
            Fault::KillLeader
            | Fault::PauseLeader
            | Fault::IsolateLeader
            | Fault::SilenceLeader => cluster.wait_for_leader(Duration::from_secs(5)),
            _ => None,
        };
        let (target, name) = match leader {
            Some(l) => (l, format!("node {l} (leader)")),
            None if matches!(
                fault,
                Fault::KillLeader
                    | Fault::PauseLeader
                    | Fault::IsolateLeader
                    | Fault::SilenceLeader
            ) =>
            {
                (random, format!("node {random} (no single leader; random)"))
            }
            None => (random, format!("node {random}")),
        };
        let start_us = s.start.elapsed().as_micros() as u64;
        let detail = match fault {
            Fault::KillRandom | Fault::KillLeader => {
                cluster.kill9(target);
                log(s.start, &format!("kill -9 {name}"));
                std::thread::sleep(interval);
                let ok = restart(&mut cluster, target);
                log(s.start, &format!("restart node {target}: serving {ok}"));
                format!("kill -9 {name}, restart")
            }
            Fault::KillAll => {
                for &m in &ids {
                    cluster.kill9(m);
                }
                log(s.start, "kill -9 every node");
                std::thread::sleep(interval);
                for &m in &ids {
                    cluster.start_again(m);
                }
                let serving = ids
                    .iter()
                    .filter(|&&m| cluster.wait_for_mode(m, Duration::from_secs(30)).is_some())
                    .count();
                log(s.start, &format!("restarted every node: {serving} serving"));
                "kill -9 every node, restart".into()
            }
            Fault::PauseRandom | Fault::PauseLeader => {
                cluster.stop(target);
                log(s.start, &format!("SIGSTOP {name}"));
                std::thread::sleep(interval);
                cluster.resume(target);
                log(s.start, &format!("SIGCONT node {target}"));
                format!("SIGSTOP {name}, SIGCONT")
            }
            Fault::IsolateLeader => {
                cluster.isolate(target);
                log(s.start, &format!("isolate {name}"));
                std::thread::sleep(interval);
                cluster.heal_all();
                log(s.start, "heal");
                format!("isolate {name}, heal")
            }
            Fault::SilenceLeader => {
                cluster.isolate_silently(target);
                log(s.start, &format!("silence every link of {name}"));
                std::thread::sleep(interval);
                cluster.heal_all();
                log(s.start, "heal");
                format!("silence {name}, heal")
            }
            Fault::RandomHalves => {
                for &a in &minority {
                    for &b in ids.iter().filter(|b| !minority.contains(b)) {
                        cluster.cut(a, b);
                    }
                }
                log(s.start, &format!("partition {minority:?} from the rest"));
                std::thread::sleep(interval);
                cluster.heal_all();
                log(s.start, "heal");
                format!("partition {minority:?} from the rest, heal")
            }
            Fault::Bridge => {
                // `random` talks to everyone; the others split into two halves.
                let rest: Vec<usize> = ids.iter().copied().filter(|&m| m != random).collect();
                let (left, right) = rest.split_at(rest.len() / 2);
                for &a in left {
                    for &b in right {
                        cluster.cut(a, b);
                    }
                }
                log(
                    s.start,
                    &format!("bridge: {left:?} and {right:?} meet only through node {random}"),
                );
                std::thread::sleep(interval);
                cluster.heal_all();
                log(s.start, "heal");
                format!("bridge {left:?} | {random} | {right:?}, heal")
            }
            Fault::OneWay => {
                cluster.cut_one_way(random, other);
                log(
                    s.start,
                    &format!("one-way: connections node {random} dials to node {other} cut"),
                );
                std::thread::sleep(interval);
                cluster.heal_all();
                log(s.start, "heal");
                format!("one-way {random} -> {other}, heal")
            }
        };
        events.push(NemesisEvent {
            fault,
            detail,
            start_us,
            end_us: s.start.elapsed().as_micros() as u64,
        });
        if Instant::now() >= s.deadline {
            break;
        }
    }
    // The final heal: links, pauses, dead processes.
    cluster.heal_all();
    for &m in &ids {
        if cluster.is_stopped(m) {
            cluster.resume(m);
        }
        if !cluster.is_running(m) {
            cluster.start_again(m);
        }
    }
    for &m in &ids {
        let serving = cluster.wait_for_mode(m, Duration::from_secs(60)).is_some();
        if !serving {
            log(s.start, &format!("node {m} does not serve after the heal"));
        }
    }
    log(s.start, "healed everything");
    (cluster, events)
}
