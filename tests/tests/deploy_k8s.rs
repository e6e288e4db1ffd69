//! The Kubernetes manifests (deploy/k8s/*.yaml) agree with the server they run: the
//! ConfigMap's zoo.cfg parses with the server's own `ServerConfig` as every pod, and
//! the StatefulSet, Services and PodDisruptionBudget use what that zoo.cfg says (ports,
//! dataDir, server names, admin token) and select the same pods. No cluster needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rookery_server::config::LearnerType;
use rookery_server::{ServerConfig, ServerMode};
use serde_yaml::Value;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("deploy")
        .join("k8s")
}

/// Every document of every `*.yaml` under deploy/k8s, keyed by `Kind/name`.
fn manifests() -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("deploy/k8s")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        // Documents are separated by `---` lines (kubectl's rule too).
        let mut docs = vec![String::new()];
        for line in text.lines() {
            if line.trim_end() == "---" {
                docs.push(String::new());
            } else if let Some(doc) = docs.last_mut() {
                doc.push_str(line);
                doc.push('\n');
            }
        }
        for doc in docs {
            let value: Value = serde_yaml::from_str(&doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            if value.is_null() {
                continue;
            }
            let key = format!("{}/{}", s(&value, "kind"), s(&value, "metadata.name"));
            assert!(
                all.insert(key.clone(), value).is_none(),
                "{key} defined twice"
            );
        }
    }
    all
}

/// The value at a dotted path of mapping keys; panics naming the path if absent.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |cur, key| {
        cur.get(key)
            .unwrap_or_else(|| panic!("no {path} (missing {key})"))
    })
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn n(v: &Value, path: &str) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number"))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path} is not a list"))
}

/// The item of a list whose `name` is `name`.
fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("nothing named {name}"))
}

fn get<'a>(all: &'a BTreeMap<String, Value>, key: &str) -> &'a Value {
    all.get(key)
        .unwrap_or_else(|| panic!("no {key} in deploy/k8s (have {:?})", all.keys()))
}

/// The ConfigMap's zoo.cfg, parsed as the server whose dataDir/myid holds `my_id`.
fn parse_as(text: &str, my_id: u64) -> ServerConfig {
    let read = |p: &Path| {
        Ok(p.file_name()
            .is_some_and(|n| n == "myid")
            .then(|| format!("{my_id}")))
    };
    ServerConfig::parse(Path::new("/conf/zoo.cfg"), text, &read)
        .unwrap_or_else(|e| panic!("the ConfigMap's zoo.cfg as server {my_id}: {e}"))
}

/// A container port by name, or a number as it is.
fn port_of(container: &Value, port: &Value) -> u64 {
    match port {
        Value::Number(p) => p.as_u64().expect("a port number"),
        Value::String(name) => n(named(seq(container, "ports"), name), "containerPort"),
        other => panic!("{other:?} is not a port"),
    }
}

#[test]
fn statefulset_agrees_with_its_zoo_cfg() {
    let all = manifests();
    let namespace = s(get(&all, "Namespace/rookery"), "metadata.name");
    for (key, v) in &all {
        if !key.starts_with("Namespace/") {
            assert_eq!(s(v, "metadata.namespace"), namespace, "{key}");
        }
    }

    let sts = get(&all, "StatefulSet/rookery");
    let name = s(sts, "metadata.name");
    let service_name = s(sts, "spec.serviceName");
    let replicas = n(sts, "spec.replicas");
    let pod = at(sts, "spec.template.spec");
    let container = named(seq(pod, "containers"), "rookery");
    let volumes = seq(pod, "volumes");
    let mounts = seq(container, "volumeMounts");

    // The config file the server is told to read is the ConfigMap's, where it is mounted.
    let args: Vec<&str> = seq(container, "args")
        .iter()
        .map(|a| a.as_str().expect("string args"))
        .collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| Path::new(w[1]))
        .expect("serve --config");
    assert_eq!(args[0], "serve");
    let conf_mount = mounts
        .iter()
        .find(|m| Path::new(s(m, "mountPath")) == config_path.parent().expect("a directory"))
        .expect("a volume mounted where --config points");
    let conf_volume = named(volumes, s(conf_mount, "name"));
    let cm_name = s(conf_volume, "configMap.name");
    let cm = get(&all, &format!("ConfigMap/{cm_name}"));
    let file = config_path
        .file_name()
        .and_then(|f| f.to_str())
        .expect("name");
    let text = at(cm, "data")
        .get(file)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("ConfigMap {cm_name} has no {file}"));

    // zoo.cfg as every pod: one server line per replica, ids = ordinals, the pods' names.
    let cfg = parse_as(text, 0);
    assert_eq!(
        cfg.servers.len() as u64,
        replicas,
        "replicas = server.N lines"
    );
    for ordinal in 0..replicas {
        let c = parse_as(text, ordinal);
        assert_eq!(c.mode(), ServerMode::Ensemble);
        assert!(
            c.warnings.is_empty(),
            "as server {ordinal}: {:?}",
            c.warnings
        );
        let own = c.own_server().expect("its own server line");
        assert_eq!(own.learner_type, LearnerType::Participant);
        assert_eq!(
            own.addresses[0].host,
            format!("{name}-{ordinal}.{service_name}.{namespace}.svc.cluster.local"),
            "server.{ordinal} is pod {name}-{ordinal} through the headless Service"
        );
    }
    println!(
        "zoo.cfg: {} servers, parsed as each of 0..{replicas}",
        cfg.servers.len()
    );

    // Ports: the container's are the config's.
    let client = u64::from(cfg.client_port.expect("clientPort"));
    let quorum = {
        let ports: Vec<u16> = cfg
            .servers
            .values()
            .map(|s| s.addresses[0].quorum_port)
            .collect();
        assert!(ports.windows(2).all(|w| w[0] == w[1]), "{ports:?}");
        u64::from(ports[0])
    };
    let admin = cfg.admin_grpc_address.as_ref().expect("admin.grpcAddress");
    let admin_port = u64::from(admin.port);
    let port = |name: &str| n(named(seq(container, "ports"), name), "containerPort");
    assert_eq!(port("client"), client);
    assert_eq!(port("quorum"), quorum);
    assert_eq!(port("admin"), admin_port);

    // Readiness is the gRPC health service on the admin port; liveness the client port.
    assert_eq!(
        port_of(container, at(container, "readinessProbe.grpc.port")),
        admin_port
    );
    assert_eq!(
        port_of(container, at(container, "livenessProbe.tcpSocket.port")),
        client
    );
    // A pod is ready only in a quorum: OrderedReady would wait for pod 0 forever.
    assert_eq!(s(sts, "spec.podManagementPolicy"), "Parallel");

    // An admin API on the pod network needs a token, from a mounted Secret.
    assert_eq!(
        admin.host, "0.0.0.0",
        "the probe reaches it from the kubelet"
    );
    let token = cfg
        .admin_auth_token_file
        .as_deref()
        .expect("admin.authTokenFile");
    let token_mount = mounts
        .iter()
        .find(|m| Path::new(s(m, "mountPath")) == token.parent().expect("a directory"))
        .expect("a volume mounted where admin.authTokenFile points");
    let secret = named(volumes, s(token_mount, "name"));
    assert!(!s(secret, "secret.secretName").is_empty());

    // dataDir is the per-pod volume; myid in it is the pod's ordinal.
    let data_mount = mounts
        .iter()
        .find(|m| Path::new(s(m, "mountPath")) == cfg.data_dir)
        .expect("a volume mounted at dataDir");
    let claim = s(data_mount, "name");
    let templates = seq(sts, "spec.volumeClaimTemplates");
    assert!(
        templates.iter().any(|t| s(t, "metadata.name") == claim),
        "dataDir is a volumeClaimTemplate, one volume per pod"
    );
    let myid_mount = mounts
        .iter()
        .find(|m| Path::new(s(m, "mountPath")) == cfg.data_dir.join("myid"))
        .expect("dataDir/myid mounted");
    let myid = named(volumes, s(myid_mount, "name"));
    let item = seq(myid, "downwardAPI.items")
        .iter()
        .find(|i| s(i, "path") == s(myid_mount, "subPath"))
        .expect("the mounted item");
    assert_eq!(
        s(item, "fieldRef.fieldPath"),
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );

    // The image's user (uid 1000) can write the volume.
    assert_eq!(n(pod, "securityContext.runAsUser"), 1000);
    assert_eq!(n(pod, "securityContext.fsGroup"), 1000);
    println!(
        "ports client {client}, quorum {quorum}, admin {admin_port}; dataDir {}",
        cfg.data_dir.display()
    );
}

#[test]
fn services_and_budget_select_the_statefulsets_pods() {
    let all = manifests();
    let sts = get(&all, "StatefulSet/rookery");
    let selector = at(sts, "spec.selector.matchLabels");
    let labels = at(sts, "spec.template.metadata.labels");
    for (k, v) in selector.as_mapping().expect("matchLabels") {
        assert_eq!(labels.get(k), Some(v), "the pod template has {k:?}");
    }
    let container = named(seq(sts, "spec.template.spec.containers"), "rookery");
    let target = |svc: &Value, name: &str| {
        let p = named(seq(svc, "spec.ports"), name);
        port_of(container, at(p, "targetPort"))
    };

    let headless = get(&all, &format!("Service/{}", s(sts, "spec.serviceName")));
    assert_eq!(s(headless, "spec.clusterIP"), "None");
    assert_eq!(
        at(headless, "spec.publishNotReadyAddresses").as_bool(),
        Some(true),
        "peers must resolve before they are ready"
    );
    assert_eq!(at(headless, "spec.selector"), selector);
    assert_eq!(
        target(headless, "quorum"),
        n(named(seq(container, "ports"), "quorum"), "containerPort")
    );

    let clients = get(&all, "Service/rookery");
    assert_ne!(
        at(clients, "spec").get("clusterIP").and_then(Value::as_str),
        Some("None"),
        "clients get a virtual IP"
    );
    assert_eq!(at(clients, "spec.selector"), selector);
    assert_eq!(
        target(clients, "client"),
        n(named(seq(container, "ports"), "client"), "containerPort")
    );

    let pdb = get(&all, "PodDisruptionBudget/rookery");
    assert_eq!(n(pdb, "spec.maxUnavailable"), 1);
    assert_eq!(at(pdb, "spec.selector.matchLabels"), selector);
    // One down of three voters keeps a quorum (2 of 3).
    assert!(n(sts, "spec.replicas") / 2 >= n(pdb, "spec.maxUnavailable"));
}
