//! The compose example for real (deploy/docker/compose.yaml): builds the image with
//! `cargo xtask image`, brings up the three voters and the observer under a project
//! name of its own, waits for their health checks, writes and reads through the
//! published client ports with the Rust `zookeeper-client` crate, `docker kill`s the
//! leader, sees another voter lead with the data intact, starts the killed container
//! again and sees it follow and serve what was written while it was down, and tears
//! everything down (`down -v`) whatever happened.
//!
//! Skipped, with the reason printed, where there is no Docker engine or no compose
//! tool, and under ROOKERY_TEST_TARGET=zookeeper (the image is Rookery's).

use rookery_tests::zk::persistent;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rookery_tests::{Target, four_letter, parse_mode};
use zookeeper_client::Client;

/// Service, published client port, published admin port: as compose.yaml has them.
const SERVICES: [(&str, u16, u16); 4] = [
    ("hadoop1", 21811, 27181),
    ("hadoop2", 21812, 27182),
    ("hadoop3", 21813, 27183),
    ("hadoop4", 21814, 27184),
];
const OBSERVER: &str = "hadoop4";
/// Long enough for a loaded 2-core CI machine; the times are printed, not asserted.
const WAIT: Duration = Duration::from_secs(90);
const CHILDREN: usize = 10;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `docker compose` (the plugin) if it is there, else `docker-compose`.
fn compose_tool() -> Option<Vec<String>> {
    if succeeds("docker", &["compose", "version"]) {
        Some(vec!["docker".into(), "compose".into()])
    } else if succeeds("docker-compose", &["version"]) {
        Some(vec!["docker-compose".into()])
    } else {
        None
    }
}

/// What to run compose with, or why this test cannot run here.
fn preflight() -> Result<Vec<String>, String> {
    if Target::from_env() == Target::ZooKeeper {
        return Err("the image runs Rookery; nothing to compare with ZooKeeper".into());
    }
    if !succeeds("docker", &["info", "--format", "{{.ServerVersion}}"]) {
        return Err("no Docker engine answers `docker info`".into());
    }
    compose_tool().ok_or_else(|| "neither `docker compose` nor `docker-compose` works".into())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A compose project; `down -v` when dropped, so a failed assertion leaves no
/// containers, network or volumes behind.
struct Project {
    tool: Vec<String>,
    name: String,
    file: PathBuf,
}

impl Project {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tool[0]);
        cmd.args(&self.tool[1..])
            .arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(&self.file)
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("running compose");
        assert!(out.status.success(), "compose {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn container(&self, service: &str) -> String {
        let id = self.run(&["ps", "-q", service]);
        assert!(!id.is_empty(), "no container for {service}");
        id
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) = self
                .command(&["logs", "--no-color", "--tail", "30"])
                .output()
            {
                eprintln!("--- compose logs ---\n{}", text(&out));
            }
        }
        let started = Instant::now();
        match self.command(&["down", "-v", "--timeout", "10"]).output() {
            Ok(out) if out.status.success() => {
                println!("down -v: {:.1} s", started.elapsed().as_secs_f64())
            }
            Ok(out) => eprintln!("compose down -v failed: {}", text(&out)),
            Err(e) => eprintln!("compose down -v did not run: {e}"),
        }
    }
}

/// Each service's mode from `srvr` through its published client port (None: down or
/// not serving).
fn modes() -> Vec<(&'static str, Option<String>)> {
    SERVICES
        .iter()
        .map(|&(s, port, _)| (s, four_letter(port, "srvr").as_deref().and_then(parse_mode)))
        .collect()
}

fn mode_of(modes: &[(&str, Option<String>)], service: &str) -> Option<String> {
    modes.iter().find(|(s, _)| *s == service)?.1.clone()
}

/// Polls `check` until it returns Some, or fails naming `what` and the last modes.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; modes {:?}",
            modes()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The ensemble as it should be: one leader among `voters`, the others followers,
/// the observer observing. Returns the leader.
fn settled(voters: &[&str]) -> Option<String> {
    let m = modes();
    let mut leader = None;
    for v in voters {
        match mode_of(&m, v).as_deref() {
            Some("leader") if leader.is_none() => leader = Some(v.to_string()),
            Some("follower") => {}
            _ => return None,
        }
    }
    if mode_of(&m, OBSERVER).as_deref() != Some("observer") {
        return None;
    }
    leader
}

fn port(service: &str) -> u16 {
    SERVICES
        .iter()
        .find(|(s, _, _)| *s == service)
        .map(|&(_, p, _)| p)
        .expect("a compose service")
}

async fn connect(service: &str) -> Client {
    let at = format!("127.0.0.1:{}", port(service));
    tokio::time::timeout(
        WAIT,
        Client::connector()
            .with_session_timeout(Duration::from_secs(20))
            .connect(&at),
    )
    .await
    .unwrap_or_else(|_| panic!("no session with {service} at {at}"))
    .unwrap_or_else(|e| panic!("connect to {service} at {at}: {e}"))
}

/// `/docker` and its children as `service` sees them after a sync.
async fn read_back(service: &str) -> (Vec<u8>, Vec<String>) {
    let zk = connect(service).await;
    zk.sync("/docker").await.expect("sync");
    let (data, _) = zk.get_data("/docker").await.expect("get /docker");
    let (mut children, _) = zk.get_children("/docker").await.expect("children");
    children.sort();
    (data, children)
}

fn seconds(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

#[test]
fn compose_cluster_survives_the_loss_of_its_leader() {
    let tool = match preflight() {
        Ok(t) => t,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return;
        }
    };
    let root = workspace();
    for &(service, client, admin) in &SERVICES {
        for p in [client, admin] {
            assert!(
                TcpListener::bind(("127.0.0.1", p)).is_ok(),
                "127.0.0.1:{p} ({service} in compose.yaml) is taken; \
                 `docker ps --filter publish={p}` tells by what"
            );
        }
    }

    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--locked", "-p", "xtask", "--", "image"])
        .current_dir(&root)
        .output()
        .expect("running cargo xtask image");
    assert!(out.status.success(), "cargo xtask image: {}", text(&out));
    println!("cargo xtask image: {}", seconds(started));
    let size = docker(&["image", "inspect", "--format", "{{.Size}}", "rookery:dev"]);
    println!("rookery:dev: {size} bytes");

    let project = Project {
        tool,
        name: format!("rookery-docker-test-{}", std::process::id()),
        file: root.join("deploy/docker/compose.yaml"),
    };
    let started = Instant::now();
    project.run(&["up", "-d"]);
    let voters: Vec<&str> = SERVICES
        .iter()
        .map(|s| s.0)
        .filter(|s| *s != OBSERVER)
        .collect();
    let leader = wait_for("one leader, two followers, one observer", || {
        settled(&voters)
    });
    println!("up: {leader} leads, {}; {:?}", seconds(started), modes());
    // The health check is `rookery status` (exit 0 on a Mode line): no shell needed.
    let ids: Vec<(&str, String)> = SERVICES
        .iter()
        .map(|&(s, _, _)| (s, project.container(s)))
        .collect();
    wait_for("every container healthy", || {
        ids.iter()
            .all(|(_, id)| {
                docker(&["inspect", "--format", "{{.State.Health.Status}}", id]) == "healthy"
            })
            .then_some(())
    });
    println!("all healthy: {}", seconds(started));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let want_children: Vec<String> = (0..CHILDREN).map(|i| format!("n{i}")).collect();
    runtime.block_on(async {
        let zk = connect("hadoop1").await;
        zk.create("/docker", b"written through hadoop1", &persistent())
            .await
            .expect("create /docker");
        for name in &want_children {
            zk.create(&format!("/docker/{name}"), name.as_bytes(), &persistent())
                .await
                .expect("create a child");
        }
        for (service, _, _) in SERVICES {
            let (data, children) = read_back(service).await;
            assert_eq!(data, b"written through hadoop1", "{service}");
            assert_eq!(children, want_children, "{service}");
        }
    });
    println!("written through hadoop1, read back through all four");

    let leader_id = ids
        .iter()
        .find(|(s, _)| *s == leader)
        .map(|(_, id)| id.clone())
        .expect("the leader's container");
    let killed = Instant::now();
    docker(&["kill", &leader_id]);
    let rest: Vec<&str> = voters.iter().copied().filter(|v| *v != leader).collect();
    let new_leader = wait_for("a new leader among the other two voters", || settled(&rest));
    println!(
        "docker kill {leader} (the leader): {new_leader} leads after {}",
        seconds(killed)
    );
    assert_ne!(new_leader, leader);
    let state = docker(&["inspect", "--format", "{{.State.Status}}", &leader_id]);
    assert_eq!(
        state, "exited",
        "the killed leader stays down until started"
    );

    let follower = rest
        .iter()
        .copied()
        .find(|v| *v != new_leader)
        .expect("a follower");
    runtime.block_on(async {
        let (data, children) = read_back(follower).await;
        assert_eq!(
            data, b"written through hadoop1",
            "{follower} after the failover"
        );
        assert_eq!(children, want_children, "{follower} after the failover");
        let zk = connect(follower).await;
        zk.create("/docker/after-failover", b"x", &persistent())
            .await
            .expect("a write with one voter down");
        let (_, children) = read_back(OBSERVER).await;
        assert!(
            children.contains(&"after-failover".to_string()),
            "{children:?}"
        );
    });
    println!("data intact on {follower}; a write with {leader} down reached {OBSERVER}");

    let restarted = Instant::now();
    docker(&["start", &leader_id]);
    wait_for("the old leader back as a follower", || {
        (mode_of(&modes(), &leader).as_deref() == Some("follower")).then_some(())
    });
    println!(
        "docker start {leader}: follower after {}",
        seconds(restarted)
    );
    runtime.block_on(async {
        let (data, children) = read_back(&leader).await;
        assert_eq!(
            data, b"written through hadoop1",
            "{leader} after its restart"
        );
        let mut want = want_children.clone();
        want.push("after-failover".into());
        want.sort();
        assert_eq!(children, want, "{leader} caught up with what it missed");
    });
    assert_eq!(
        settled(&voters).as_deref(),
        Some(new_leader.as_str()),
        "the rejoined server did not take over"
    );
    println!(
        "{leader} serves what was written while it was down; modes {:?}",
        modes()
    );
    drop(runtime);
    drop(project);
}
