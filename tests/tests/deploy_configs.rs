//! Every zoo.cfg shipped under deploy/ (the examples in deploy/conf/ and the one
//! deploy/docker/compose.yaml mounts) is one Rookery accepts: parsed by the server's own
//! `ServerConfig`, once as each server it lists (with that server's myid), with no
//! warnings, and meaning what its comments say.

use std::path::{Path, PathBuf};

use rookery_server::config::LearnerType;
use rookery_server::{ServerConfig, ServerMode};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("deploy")
}

/// The `*.cfg` files directly under deploy/conf and deploy/docker.
fn shipped_configs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["conf", "docker"] {
        let dir = deploy_dir().join(sub);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "cfg") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The N of every `server.N=` line, read the simple way (the parser is what is tested).
fn server_ids(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("server."))
        .filter_map(|l| l.split_once('='))
        .filter_map(|(n, _)| n.trim().parse().ok())
        .collect()
}

/// Parses `path` as the server whose dataDir/myid holds `my_id` (none: no myid file).
fn parse_as(path: &Path, text: &str, my_id: Option<u64>) -> ServerConfig {
    let read = |p: &Path| {
        Ok(match my_id {
            Some(id) if p.file_name().is_some_and(|n| n == "myid") => Some(format!("{id}\n")),
            _ => None,
        })
    };
    ServerConfig::parse(path, text, &read)
        .unwrap_or_else(|e| panic!("{} does not parse as server {my_id:?}: {e}", path.display()))
}

#[test]
fn every_shipped_zoo_cfg_parses() {
    let files = shipped_configs();
    assert!(
        files.len() >= 4,
        "expected the deploy examples, found {files:?}"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let ids = server_ids(&text);
        if ids.is_empty() {
            let c = parse_as(&path, &text, None);
            assert_eq!(c.mode(), ServerMode::Standalone, "{}", path.display());
            assert!(
                c.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                c.warnings
            );
            println!("{}: standalone", path.display());
            continue;
        }
        for &id in &ids {
            let c = parse_as(&path, &text, Some(id));
            assert_eq!(c.mode(), ServerMode::Ensemble, "{}", path.display());
            assert_eq!(c.my_id, Some(id));
            assert_eq!(c.client_port, Some(2181), "{}", path.display());
            assert!(
                c.warnings.is_empty(),
                "{} as server {id}: {:?}",
                path.display(),
                c.warnings
            );
            let own = c.own_server().expect("its own server line");
            assert_eq!(c.peer_type, own.learner_type);
            assert!(
                own.addresses.iter().all(|a| a.quorum_port == 2888),
                "{}: quorum port",
                path.display()
            );
        }
        let c = parse_as(&path, &text, ids.first().copied());
        let observers = c
            .servers
            .values()
            .filter(|s| s.learner_type == LearnerType::Observer)
            .count();
        println!(
            "{}: ensemble of {} ({} observer(s)), parsed as each of {ids:?}",
            path.display(),
            c.servers.len(),
            observers
        );
    }
}

/// The observer example has what its name says; the seed's files have the tutorial's
/// three servers with ids 0..2.
#[test]
fn examples_have_the_shapes_their_names_say() {
    let conf = deploy_dir().join("conf");
    let load = |name: &str, id: Option<u64>| {
        let path = conf.join(name);
        let text = std::fs::read_to_string(&path).expect("readable");
        parse_as(&path, &text, id)
    };
    let seed = |c: &ServerConfig| {
        (0..3)
            .map(|id| {
                let s = &c.servers[&id];
                (s.id, s.addresses[0].host.clone(), s.learner_type)
            })
            .collect::<Vec<_>>()
    };
    let want: Vec<(u64, String, LearnerType)> = (0..3)
        .map(|i| (i, format!("hadoop{}", i + 1), LearnerType::Participant))
        .collect();

    let three = load("three-node.cfg", Some(0));
    assert_eq!(three.servers.len(), 3);
    assert_eq!(seed(&three), want);

    let observer = load("three-voters-one-observer.cfg", Some(3));
    assert_eq!(observer.servers.len(), 4);
    assert_eq!(seed(&observer), want);
    assert_eq!(observer.peer_type, LearnerType::Observer);

    let docker = deploy_dir().join("docker").join("zoo.cfg");
    let text = std::fs::read_to_string(&docker).expect("readable");
    let c = parse_as(&docker, &text, Some(1));
    assert_eq!(seed(&c), want);
    assert_eq!(c.data_dir, Path::new("/data"), "the image's data volume");

    let solo = load("standalone.cfg", None);
    assert!(solo.servers.is_empty());
}
