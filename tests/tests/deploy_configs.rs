//! Every zoo.cfg shipped under deploy/ (the examples in deploy/conf/, the image's
//! standalone default and the one deploy/docker/compose.yaml mounts) is one Rookery
//! accepts: parsed by the server's own `ServerConfig`, once as each server it lists
//! (with that server's myid), with no warnings, and meaning what its comments say. And
//! compose.yaml gives each container the files and ports that zoo.cfg calls for.

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
    assert_eq!(c.servers.len(), 4);
    assert_eq!(c.servers[&3].learner_type, LearnerType::Observer);
    assert_eq!(c.data_dir, Path::new("/data"), "the image's data volume");

    let solo = load("standalone.cfg", None);
    assert!(solo.servers.is_empty());
}

/// `path`'s text with the commented-out `key=value` lines whose key starts with one of
/// `prefixes` uncommented, and how many there were.
fn uncomment(path: &Path, prefixes: &[&str]) -> (String, usize) {
    let text = std::fs::read_to_string(path).expect("readable");
    let mut uncommented = 0;
    let text = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(kv) if prefixes.iter().any(|p| kv.starts_with(p)) => {
                uncommented += 1;
                format!("{kv}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    (text, uncommented)
}

/// three-node.cfg's commented quorum and admin TLS lines, uncommented, turn both on
/// without warnings.
#[test]
fn three_node_tls_example_parses_when_uncommented() {
    let path = deploy_dir().join("conf").join("three-node.cfg");
    let (text, uncommented) = uncomment(&path, &["sslQuorum=", "ssl.quorum.", "admin.ssl."]);
    assert_eq!(uncommented, 7, "the TLS example's lines");
    let c = parse_as(&path, &text, Some(1));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let q = c.quorum_tls.expect("sslQuorum settings");
    assert_eq!(q.key_store, Path::new("/etc/rookery/tls/server.pem"));
    assert!(q.hostname_verification);
    let a = c.admin_tls.expect("admin.ssl settings");
    assert_eq!(
        a.trust_store.as_deref(),
        Some(Path::new("/etc/rookery/tls/ca.pem"))
    );
    assert_eq!(a.client_auth, rookery_server::tls::ClientAuth::Need);
}

/// standalone.cfg's commented TLS block, uncommented, is a secure client port with
/// PEM stores and no warnings.
#[test]
fn standalone_tls_example_parses_when_uncommented() {
    use rookery_server::tls::ClientAuth;
    let path = deploy_dir().join("conf").join("standalone.cfg");
    let (text, uncommented) = uncomment(&path, &["secureClientPort=", "ssl."]);
    assert_eq!(uncommented, 6, "the TLS example's lines");
    let c = parse_as(&path, &text, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.secure_client_port, Some(2281));
    assert_eq!(c.client_port, Some(2181));
    let tls = c.client_tls.expect("ssl.* settings");
    assert_eq!(tls.key_store, Path::new("/etc/rookery/tls/server.pem"));
    assert_eq!(
        tls.trust_store.as_deref(),
        Some(Path::new("/etc/rookery/tls/ca.pem"))
    );
    assert_eq!(tls.client_auth, ClientAuth::Need);
}

/// `src:dst[:mode]` volume entries of a compose service, as (src, dst).
fn compose_volumes(service: &serde_yaml::Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(|v| {
            let mut parts = v.as_str().expect("short volume syntax").split(':');
            let src = parts.next().expect("source").to_owned();
            let dst = parts.next().expect("destination").to_owned();
            (src, dst)
        })
        .collect()
}

/// compose.yaml: one service per server line, each with the shared zoo.cfg, its own
/// myid in dataDir (matching the server line of its host name), its own data volume,
/// the admin token where zoo.cfg looks for it, a health check that needs no shell and
/// client and admin ports published on loopback only, away from the other tests'.
#[test]
fn compose_gives_each_server_what_its_zoo_cfg_needs() {
    let dir = deploy_dir().join("docker");
    let text = std::fs::read_to_string(dir.join("compose.yaml")).expect("compose.yaml");
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    compose.apply_merge().expect("merge keys");
    let services = compose["services"].as_mapping().expect("services");
    let named_volumes = compose["volumes"].as_mapping().expect("volumes");
    let mut host_ports = Vec::new();
    let mut observers = 0;
    let mut ids = Vec::new();
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        assert_eq!(service["hostname"].as_str(), Some(name), "{name}: hostname");
        let volumes = compose_volumes(service);
        let source = |dst: &Path| {
            volumes
                .iter()
                .find(|(_, d)| Path::new(d) == dst)
                .map(|(s, _)| s.clone())
                .unwrap_or_else(|| panic!("{name}: nothing mounted at {}", dst.display()))
        };
        let cfg_path = dir.join(source(Path::new("/conf/zoo.cfg")));
        let cfg_text = std::fs::read_to_string(&cfg_path).expect("zoo.cfg");
        let any = parse_as(&cfg_path, &cfg_text, Some(0));
        let myid_file = dir.join(source(&any.data_dir.join("myid")));
        let myid: u64 = std::fs::read_to_string(&myid_file)
            .expect("myid file")
            .trim()
            .parse()
            .expect("a number");
        let c = parse_as(&cfg_path, &cfg_text, Some(myid));
        assert!(c.warnings.is_empty(), "{name}: {:?}", c.warnings);
        let own = c.own_server().expect("own server line");
        assert_eq!(own.addresses[0].host, name, "{name}: myid {myid}");
        observers += usize::from(own.learner_type == LearnerType::Observer);
        ids.push(myid);
        assert_eq!(c.servers.len(), services.len(), "a service per server line");

        let data = source(&c.data_dir);
        assert!(
            named_volumes.contains_key(data.as_str()),
            "{name}: dataDir is the named volume {data}"
        );
        let token = c.admin_auth_token_file.as_deref().expect("admin token");
        let token_text = std::fs::read_to_string(dir.join(source(token))).expect("token");
        assert!(!token_text.trim().is_empty());

        let check: Vec<&str> = service["healthcheck"]["test"]
            .as_sequence()
            .expect("healthcheck")
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect();
        assert_eq!(
            check,
            ["CMD", "rookery", "status", "--config", "/conf/zoo.cfg"]
        );

        let admin = c.admin_grpc_address.as_ref().expect("admin address");
        let mut published = Vec::new();
        for p in service["ports"].as_sequence().expect("ports") {
            let parts: Vec<&str> = p.as_str().expect("short syntax").split(':').collect();
            assert_eq!(parts.len(), 3, "{name}: ip:host:container");
            assert_eq!(parts[0], "127.0.0.1", "{name}: loopback only");
            let host: u16 = parts[1].parse().expect("host port");
            assert!(
                !(2181..=2183).contains(&host) && !(7181..=7183).contains(&host),
                "{name}: {host} clashes with the other tests' ports"
            );
            host_ports.push(host);
            published.push(parts[2].parse::<u16>().expect("container port"));
        }
        published.sort();
        let mut want = vec![c.client_port.expect("clientPort"), admin.port];
        want.sort();
        assert_eq!(published, want, "{name}: client and admin ports");
    }
    ids.sort();
    assert_eq!(ids, (0..services.len() as u64).collect::<Vec<_>>());
    assert_eq!(observers, 1, "three voters and one observer");
    let count = host_ports.len();
    host_ports.sort();
    host_ports.dedup();
    assert_eq!(host_ports.len(), count, "distinct host ports");
    println!(
        "compose.yaml: {} services, ids {ids:?}, host ports {host_ports:?}",
        services.len()
    );
}

/// The commented OpenTelemetry lines of the zoo.cfg examples, uncommented, turn trace
/// export on without warnings.
#[test]
fn tracing_example_parses_when_uncommented() {
    for name in ["standalone.cfg", "three-node.cfg"] {
        let path = deploy_dir().join("conf").join(name);
        let (text, uncommented) = uncomment(&path, &["otel."]);
        assert_eq!(uncommented, 2, "{name}: the tracing example's lines");
        let my_id = (name != "standalone.cfg").then_some(1);
        let c = parse_as(&path, &text, my_id);
        assert!(c.warnings.is_empty(), "{name}: {:?}", c.warnings);
        assert_eq!(
            c.otel.endpoint.as_deref(),
            Some("http://127.0.0.1:4317"),
            "{name}"
        );
        assert_eq!(c.otel.service_name, "rookery", "{name}");
    }
}
