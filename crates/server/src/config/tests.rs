use super::*;

/// The `zoo_sample.cfg` ZooKeeper ships (identical to Debian's `/etc/zookeeper/conf/zoo.cfg`).
const ZOO_SAMPLE: &str = "\
# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial 
# synchronization phase can take
initLimit=10
# The number of ticks that can pass between 
# sending a request and getting an acknowledgement
syncLimit=5
# the directory where the snapshot is stored.
# do not use /tmp for storage, /tmp here is just 
# example sakes.
dataDir=/tmp/zookeeper
# the port at which the clients will connect
clientPort=2181
# the maximum number of client connections.
# increase this if you need to handle more clients
#maxClientCnxns=60
#
# Be sure to read the maintenance section of the 
# administrator guide before turning on autopurge.
#
# https://zookeeper.apache.org/doc/current/zookeeperAdmin.html#sc_maintenance
#
# The number of snapshots to retain in dataDir
#autopurge.snapRetainCount=3
# Purge task interval in hours
# Set to \"0\" to disable auto purge feature
#autopurge.purgeInterval=1

## Metrics Providers
#
# https://prometheus.io Metrics Exporter
#metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
#metricsProvider.httpHost=0.0.0.0
#metricsProvider.httpPort=7000
#metricsProvider.exportJvmInfo=true
";

/// The seed tutorial: zoo_sample.cfg with dataDir changed and three server lines added.
fn seed_config() -> String {
    ZOO_SAMPLE.replace("dataDir=/tmp/zookeeper", "dataDir=/usr/local/zk/data")
        + "server.0=hadoop1:2888:3888\nserver.1=hadoop2:2888:3888\nserver.2=hadoop3:2888:3888\n"
}

fn parse_with(text: &str, files: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
    let files: BTreeMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    ServerConfig::parse(Path::new("/conf/zoo.cfg"), text, &|p| {
        Ok(files.get(p).cloned())
    })
}

fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
    parse_with(text, &[])
}

fn ok(text: &str) -> ServerConfig {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

const MIN: &str = "dataDir=/d\nclientPort=2181\n";

#[track_caller]
fn assert_line_error(text: &str, line: usize, needle: &str) {
    let err = parse(text).expect_err("config should be refused");
    assert_eq!(err.path(), Path::new("/conf/zoo.cfg"), "{err}");
    assert_eq!(err.line(), Some(line), "{err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("/conf/zoo.cfg:{line}: ")),
        "{shown}"
    );
    assert!(shown.contains(needle), "{shown} lacks {needle}");
}

#[test]
fn seed_tutorial_config_on_each_node() {
    for id in 0..3u64 {
        let myid = format!("{id}\n");
        let cfg = parse_with(&seed_config(), &[("/usr/local/zk/data/myid", &myid)])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.my_id, Some(id));
        assert_eq!(cfg.mode(), ServerMode::Ensemble);
        assert_eq!(cfg.tick_time_ms, 2000);
        assert_eq!(cfg.init_limit_ticks, 10);
        assert_eq!(cfg.sync_limit_ticks, 5);
        assert_eq!(cfg.data_dir, PathBuf::from("/usr/local/zk/data"));
        assert_eq!(cfg.data_log_dir, PathBuf::from("/usr/local/zk/data"));
        assert_eq!(cfg.client_port, Some(2181));
        assert_eq!(
            cfg.client_listen_address(),
            Some(HostPort::new("0.0.0.0", 2181))
        );
        assert_eq!(cfg.peer_type, LearnerType::Participant);
        assert_eq!(
            cfg.servers.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let own = cfg.own_server().unwrap();
        assert_eq!(
            own.addresses,
            vec![PeerAddress {
                host: format!("hadoop{}", id + 1),
                quorum_port: 2888,
                election_port: 3888
            }]
        );
        assert_eq!(own.line, 37 + id as usize);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }
}

#[test]
fn seed_config_without_myid_names_the_myid_file() {
    let err = parse(&seed_config()).unwrap_err();
    assert_eq!(err.path(), Path::new("/usr/local/zk/data/myid"));
    assert!(err.to_string().contains("myid file is missing"), "{err}");
}

#[test]
fn myid_without_its_server_line_is_refused() {
    let err = parse_with(&seed_config(), &[("/usr/local/zk/data/myid", "3\n")]).unwrap_err();
    assert_eq!(err.path(), Path::new("/usr/local/zk/data/myid"));
    assert!(err.to_string().contains("no server.3 line"), "{err}");
}

#[test]
fn myid_that_is_not_a_number_is_refused() {
    let err = parse_with(&seed_config(), &[("/usr/local/zk/data/myid", "one\n")]).unwrap_err();
    assert_eq!(err.path(), Path::new("/usr/local/zk/data/myid"));
    assert!(err.to_string().contains("'one' is not a number"), "{err}");
    // Debian ships a placeholder myid; it must be refused, not read as some id.
    let debian = "replace this text with the cluster-unique zookeeper's instance id (1-255)\n";
    assert!(parse_with(&seed_config(), &[("/usr/local/zk/data/myid", debian)]).is_err());
}

#[test]
fn myid_tolerates_whitespace_and_crlf() {
    let cfg = parse_with(&seed_config(), &[("/usr/local/zk/data/myid", " 2 \r\n")]).unwrap();
    assert_eq!(cfg.my_id, Some(2));
}

#[test]
fn zoo_sample_is_standalone_with_zookeeper_defaults() {
    let cfg = ok(ZOO_SAMPLE);
    assert_eq!(cfg.mode(), ServerMode::Standalone);
    assert_eq!(cfg.my_id, None);
    assert_eq!(cfg.tick_time_ms, 2000);
    assert_eq!(cfg.max_client_cnxns, 60);
    assert_eq!(cfg.min_session_timeout_ms, 4000);
    assert_eq!(cfg.max_session_timeout_ms, 40000);
    assert_eq!(cfg.snap_retain_count, 3);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn debian_files_parse_when_present() {
    let mut seen = 0;
    for path in [
        "/etc/zookeeper/conf/zoo.cfg",
        "/usr/share/zookeeper/conf/zoo_sample.cfg",
        "/etc/zookeeper/conf_example/zoo.cfg",
    ] {
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("{path} not present; skipped");
            continue;
        };
        seen += 1;
        // Their dataDir (/tmp/zookeeper) may hold anything; give it no myid.
        let cfg = ServerConfig::parse(Path::new(path), &text, &|_| Ok(None))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.mode(), ServerMode::Standalone, "{path}");
        assert!(cfg.client_port.is_some(), "{path}");
    }
    eprintln!("parsed {seen} Debian config files");
}

#[test]
fn defaults() {
    let cfg = ok("dataDir=/var/lib/rookery\nclientPort=2181\n");
    assert_eq!(cfg.tick_time_ms, 3000);
    assert_eq!(cfg.init_limit_ticks, 0);
    assert_eq!(cfg.sync_limit_ticks, 0);
    assert_eq!(cfg.data_log_dir, PathBuf::from("/var/lib/rookery"));
    assert_eq!(cfg.client_port_address, None);
    assert_eq!(cfg.secure_client_port, None);
    assert_eq!(cfg.max_client_cnxns, 60);
    assert_eq!(cfg.min_session_timeout_ms, 6000);
    assert_eq!(cfg.max_session_timeout_ms, 60000);
    assert!(cfg.servers.is_empty());
    assert_eq!(cfg.peer_type, LearnerType::Participant);
    assert!(cfg.standalone_enabled);
    assert!(!cfg.reconfig_enabled);
    // ZooKeeper's reconfig refuses fewer than two participants while standaloneEnabled.
    assert_eq!(cfg.admin_min_voters, 2);
    assert_eq!(cfg.four_letter_words, FourLetterWhitelist::default());
    assert!(cfg.four_letter_words.is_enabled("srvr"));
    assert!(!cfg.four_letter_words.is_enabled("ruok"));
    assert_eq!(cfg.snap_retain_count, 3);
    assert_eq!(cfg.purge_interval_hours, 1);
    assert!(!cfg.extended_types_enabled);
    assert_eq!(cfg.jute_max_buffer, 0xfffff);
    assert_eq!(cfg.super_digest, None);
    assert_eq!(cfg.container_check_interval_ms, 60_000);
    assert_eq!(
        cfg.admin_grpc_address,
        Some(HostPort::new("127.0.0.1", 7181))
    );
    assert_eq!(cfg.metrics_http_port, None);
    assert_eq!(cfg.fsync_warning_threshold_ms, 1000);
    assert_eq!(cfg.mode(), ServerMode::Standalone);
}

#[test]
fn every_supported_key() {
    let text = "\
tickTime = 1000
initLimit=7
syncLimit=3
dataDir=/d
dataLogDir=/l
clientPort=2281
clientPortAddress=[::1]
secureClientPort=2282
secureClientPortAddress=10.0.0.1
ssl.keyStore.location=/tls/server.pem
ssl.trustStore.location=/tls/ca.pem
ssl.clientAuth=want
maxClientCnxns=0
minSessionTimeout=1500
maxSessionTimeout=90000
4lw.commands.whitelist= ruok , mntr,,stat
autopurge.snapRetainCount=5
autopurge.purgeInterval=0
extendedTypesEnabled=TRUE
jute.maxbuffer=0x400000
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
znode.container.checkIntervalMs=5000
standaloneEnabled=true
reconfigEnabled=true
admin.grpcAddress=[::1]:7000
admin.minVoters=3
metricsProvider.httpPort=7001
metricsProvider.httpHost=127.0.0.1
forceSync=yes
fsync.warningthresholdms=250
readonlymode.enabled=true
";
    let cfg = ok(text);
    assert_eq!(cfg.tick_time_ms, 1000);
    assert_eq!(cfg.init_limit_ticks, 7);
    assert_eq!(cfg.sync_limit_ticks, 3);
    assert_eq!(cfg.data_log_dir, PathBuf::from("/l"));
    assert_eq!(
        cfg.client_listen_address(),
        Some(HostPort::new("::1", 2281))
    );
    assert_eq!(
        cfg.client_listen_address().unwrap().to_string(),
        "[::1]:2281"
    );
    assert_eq!(cfg.secure_client_port, Some(2282));
    assert_eq!(cfg.secure_client_port_address.as_deref(), Some("10.0.0.1"));
    let tls = cfg
        .client_tls
        .as_ref()
        .expect("ssl.* for the secure client port");
    assert_eq!(tls.key_store, PathBuf::from("/tls/server.pem"));
    assert_eq!(tls.trust_store, Some(PathBuf::from("/tls/ca.pem")));
    assert_eq!(tls.client_auth, crate::tls::ClientAuth::Want);
    assert_eq!(cfg.max_client_cnxns, 0);
    assert_eq!(cfg.min_session_timeout_ms, 1500);
    assert_eq!(cfg.max_session_timeout_ms, 90000);
    let expected: BTreeSet<String> = ["isro", "mntr", "ruok", "srvr", "stat"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(cfg.four_letter_words, FourLetterWhitelist::Only(expected));
    assert_eq!(cfg.snap_retain_count, 5);
    assert_eq!(cfg.purge_interval_hours, 0);
    assert!(cfg.extended_types_enabled);
    assert_eq!(cfg.jute_max_buffer, 4 * 1024 * 1024);
    assert_eq!(
        cfg.super_digest.as_deref(),
        Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
    );
    assert_eq!(cfg.container_check_interval_ms, 5000);
    assert!(cfg.reconfig_enabled);
    assert_eq!(cfg.admin_min_voters, 3);
    assert_eq!(cfg.admin_grpc_address, Some(HostPort::new("::1", 7000)));
    assert_eq!(cfg.metrics_http_port, Some(7001));
    assert_eq!(cfg.metrics_http_host, "127.0.0.1");
    assert_eq!(cfg.fsync_warning_threshold_ms, 250);
    assert!(cfg.read_only_mode_enabled);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn super_digest_long_and_short_names() {
    for key in [
        "superDigest",
        "DigestAuthenticationProvider.superDigest",
        "zookeeper.DigestAuthenticationProvider.superDigest",
    ] {
        let cfg = ok(&format!("{MIN}{key}=super:abc=\n"));
        assert_eq!(cfg.super_digest.as_deref(), Some("super:abc="), "{key}");
    }
    assert_line_error(&format!("{MIN}superDigest=nocolon\n"), 3, "superDigest");
}

#[test]
fn zookeeper_prefixed_spellings_are_the_same_key() {
    let cfg = ok(&format!(
        "{MIN}zookeeper.4lw.commands.whitelist=*\nzookeeper.forceSync=no\n\
         zookeeper.fsync.warningthresholdms=0\n"
    ));
    assert_eq!(cfg.four_letter_words, FourLetterWhitelist::All);
    assert!(cfg.four_letter_words.is_enabled("mntr"));
    assert!(!cfg.four_letter_words.is_enabled("xxxx"));
    assert_eq!(cfg.fsync_warning_threshold_ms, 0);
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.message.contains("zookeeper.forceSync=no is ignored")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn force_sync_no_is_ignored_with_a_warning() {
    let cfg = ok(&format!("{MIN}forceSync=NO\n"));
    let w = cfg
        .warnings
        .iter()
        .find(|w| w.message.contains("forceSync=no is ignored"))
        .unwrap_or_else(|| panic!("no warning: {:?}", cfg.warnings));
    assert_eq!(w.line, Some(3), "{w:?}");
    assert!(ok(&format!("{MIN}forceSync=yes\n")).warnings.is_empty());
}

#[test]
fn whitelist_star_enables_everything_and_unknown_words_warn() {
    let cfg = ok(&format!("{MIN}4lw.commands.whitelist=stat, *\n"));
    assert_eq!(cfg.four_letter_words, FourLetterWhitelist::All);
    let cfg = ok(&format!("{MIN}4lw.commands.whitelist=ruok,bogus\n"));
    assert!(cfg.four_letter_words.is_enabled("ruok"));
    assert!(cfg.four_letter_words.is_enabled("srvr"));
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(cfg.warnings[0].line, Some(3));
    assert!(cfg.warnings[0].message.contains("bogus"));
}

#[test]
fn jute_maxbuffer_forms() {
    for (v, n) in [
        ("1048575", 1_048_575),
        ("0xfffff", 0xfffff),
        ("0XFF", 255),
        ("#10", 16),
    ] {
        assert_eq!(
            ok(&format!("{MIN}jute.maxbuffer={v}\n")).jute_max_buffer,
            n,
            "{v}"
        );
    }
    assert_line_error(&format!("{MIN}jute.maxbuffer=010\n"), 3, "octal");
    assert_line_error(&format!("{MIN}jute.maxbuffer=0x\n"), 3, "jute.maxbuffer");
    assert_line_error(&format!("{MIN}jute.maxbuffer=0\n"), 3, "out of range");
    assert_line_error(&format!("{MIN}jute.maxbuffer=-5\n"), 3, "jute.maxbuffer");
    assert_line_error(&format!("{MIN}jute.maxbuffer=4GB\n"), 3, "jute.maxbuffer");
}

#[test]
fn snap_retain_count_below_three_is_raised_with_a_warning() {
    let cfg = ok(&format!("{MIN}autopurge.snapRetainCount=1\n"));
    assert_eq!(cfg.snap_retain_count, 3);
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(cfg.warnings[0].line, Some(3));
}

#[test]
fn negative_purge_interval_means_off_as_in_zookeeper() {
    assert_eq!(
        ok(&format!("{MIN}autopurge.purgeInterval=-1\n")).purge_interval_hours,
        0
    );
    assert_eq!(
        ok(&format!("{MIN}autopurge.purgeInterval=24\n")).purge_interval_hours,
        24
    );
}

#[test]
fn session_timeout_defaults_follow_tick_time_and_minus_one_means_default() {
    let cfg = ok(&format!("{MIN}tickTime=500\nminSessionTimeout=-1\n"));
    assert_eq!(cfg.min_session_timeout_ms, 1000);
    assert_eq!(cfg.max_session_timeout_ms, 10000);
}

#[test]
fn unknown_and_ignored_keys_warn_with_their_line() {
    let cfg = ok(&format!(
        "{MIN}fooBar=1\npreAllocSize=65536\nssl.keyStore.location=/k\n"
    ));
    let lines: Vec<_> = cfg.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![Some(3), Some(4), Some(5)]);
    assert!(cfg.warnings[0].message.contains("unknown key fooBar"));
    assert!(cfg.warnings[1].message.contains("does not use"));
    assert!(
        cfg.warnings[2].message.contains("ssl.keyStore.location")
            && cfg.warnings[2].message.contains("secureClientPort"),
        "{}",
        cfg.warnings[2]
    );
    assert_eq!(
        cfg.warnings[0].to_string(),
        "/conf/zoo.cfg:3: unknown key fooBar; ignored"
    );
}

#[test]
fn duplicate_keys_last_wins_with_a_warning() {
    let cfg = ok(&format!("{MIN}tickTime=1000\ntickTime=4000\n"));
    assert_eq!(cfg.tick_time_ms, 4000);
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(cfg.warnings[0].line, Some(4));
    assert!(cfg.warnings[0].message.contains("first on line 3"));
}

#[test]
fn relative_data_dir_warns() {
    let cfg = ok("dataDir=data\nclientPort=2181\n");
    assert_eq!(cfg.warnings.len(), 1);
    assert!(cfg.warnings[0].message.contains("relative"));
}

#[test]
fn properties_syntax_from_java() {
    let cfg = ok("  dataDir : /d\\\n    /more\nclientPort 2181\n! comment\n");
    assert_eq!(cfg.data_dir, PathBuf::from("/d/more"));
    assert_eq!(cfg.client_port, Some(2181));
}

#[test]
fn malformed_values_name_file_line_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "dataDir=/d\nclientPort=abc\n",
            2,
            "clientPort: 'abc' is not a whole number",
        ),
        ("dataDir=/d\nclientPort=70000\n", 2, "out of range"),
        ("dataDir=/d\nclientPort=-1\n", 2, "out of range"),
        ("dataDir=/d\nclientPort=2181\ntickTime=0\n", 3, "tickTime"),
        ("dataDir=/d\nclientPort=2181\ntickTime=2s\n", 3, "tickTime"),
        (
            "dataDir=/d\nclientPort=2181\ninitLimit=-3\n",
            3,
            "initLimit",
        ),
        ("dataDir=/d\nclientPort=2181\nsyncLimit=x\n", 3, "syncLimit"),
        (
            "dataDir=/d\nclientPort=2181\nfsync.warningthresholdms=-1\n",
            3,
            "fsync.warningthresholdms: -1 is out of range",
        ),
        (
            "dataDir=/d\nclientPort=2181\nmaxClientCnxns=-1\n",
            3,
            "maxClientCnxns",
        ),
        (
            "dataDir=/d\nclientPort=2181\nminSessionTimeout=-2\n",
            3,
            "minSessionTimeout",
        ),
        (
            "dataDir=/d\nclientPort=2181\nminSessionTimeout=9000\nmaxSessionTimeout=8000\n",
            3,
            "must not be larger",
        ),
        (
            "dataDir=/d\nclientPort=2181\nmaxSessionTimeout=100\n",
            3,
            "must not be larger",
        ),
        (
            "dataDir=/d\nclientPort=2181\nstandaloneEnabled=yes\n",
            3,
            "choose 'true' or 'false'",
        ),
        (
            "dataDir=/d\nclientPort=2181\nreconfigEnabled=1\n",
            3,
            "reconfigEnabled",
        ),
        (
            "dataDir=/d\nclientPort=2181\nextendedTypesEnabled=on\n",
            3,
            "extendedTypesEnabled",
        ),
        (
            "dataDir=/d\nclientPort=2181\nforceSync=false\n",
            3,
            "choose 'yes' or 'no'",
        ),
        (
            "dataDir=/d\nclientPort=2181\nautopurge.snapRetainCount=many\n",
            3,
            "autopurge.snapRetainCount",
        ),
        (
            "dataDir=/d\nclientPort=2181\nautopurge.purgeInterval=1h\n",
            3,
            "autopurge.purgeInterval",
        ),
        (
            "dataDir=/d\nclientPort=2181\nznode.container.checkIntervalMs=0\n",
            3,
            "znode.container.checkIntervalMs",
        ),
        (
            "dataDir=/d\nclientPort=2181\nadmin.grpcAddress=localhost\n",
            3,
            "admin.grpcAddress",
        ),
        (
            "dataDir=/d\nclientPort=2181\nadmin.minVoters=0\n",
            3,
            "admin.minVoters",
        ),
        (
            "dataDir=/d\nclientPort=2181\nadmin.grpcAddress=[::1:7000\n",
            3,
            "admin.grpcAddress",
        ),
        (
            "dataDir=/d\nclientPort=2181\nmetricsProvider.httpPort=port\n",
            3,
            "metricsProvider.httpPort",
        ),
        (
            "dataDir=/d\nclientPort=2181\nsecureClientPort=x\n",
            3,
            "secureClientPort",
        ),
        ("dataDir=/d\nclientPort=2181\nelectionAlg=1\n", 3, "only 3"),
        (
            "dataDir=/d\nclientPort=2181\npeerType=leader\n",
            3,
            "peer type",
        ),
        (
            "dataDir=/d\nclientPortAddress=127.0.0.1\n",
            2,
            "clientPort is not set",
        ),
        (
            "dataDir=/d\nclientPort=2181\nsecureClientPortAddress=::1\n",
            3,
            "secureClientPort is not set",
        ),
        (
            "dataDir=/d\nclientPort=2181\nclientPortAddress=\n",
            3,
            "clientPortAddress",
        ),
        (
            "dataDir=/d\nclientPort=2181\nweight.1=2\n",
            3,
            "hierarchical",
        ),
        ("dataDir=/d\nclientPort=2181\nx=\\u00zz\n", 3, "\\u"),
        ("dataDir=\nclientPort=2181\n", 1, "dataDir"),
    ];
    for (text, line, needle) in cases {
        assert_line_error(text, *line, needle);
    }
}

#[test]
fn errors_without_a_line_still_name_the_file() {
    let err = parse("clientPort=2181\n").unwrap_err();
    assert_eq!(err.to_string(), "/conf/zoo.cfg: dataDir is not set");
    let err = parse("dataDir=/d\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/conf/zoo.cfg: either clientPort or secureClientPort must be set"
    );
}

const ENSEMBLE: &str = "dataDir=/d\nclientPort=2181\ninitLimit=10\nsyncLimit=5\n";

fn ensemble(lines: &str, myid: &str) -> Result<ServerConfig, ConfigError> {
    parse_with(&format!("{ENSEMBLE}{lines}"), &[("/d/myid", myid)])
}

#[test]
fn malformed_server_lines_name_their_line() {
    let cases: &[(&str, &str)] = &[
        ("server.x=h:2888:3888", "server id 'x'"),
        ("server.-1=h:2888:3888", "server id '-1'"),
        ("server.1=h:2888", "does not have the form"),
        ("server.1=h", "does not have the form"),
        ("server.1=", "does not have the form"),
        (
            "server.1=h:2888:3888:participant:extra",
            "does not have the form",
        ),
        ("server.1=h:2888:3888:leader", "peer type 'leader'"),
        ("server.1=h:2888:2888", "must be different"),
        ("server.1=h:28x8:3888", "quorum port"),
        ("server.1=h:2888:99999", "election port"),
        ("server.1=h:2888:3888;", "client port"),
        ("server.1=h:2888:3888;abc", "client port"),
        ("server.1=h:2888:3888;a:b:2181", "does not have the form"),
        ("server.1=h:2888:3888;2181;x", "does not have the form"),
        ("server.1=[::1:2888:3888", "no matching ']'"),
        ("server.1=[::1]2888:3888", "after ']'"),
        ("server.1=[::1]:", "doesn't have a port"),
        ("server.1=a:2888:3888|b:2888:3888", "multiAddress.enabled"),
    ];
    for (line, needle) in cases {
        let text = format!("{ENSEMBLE}server.0=h0:2888:3888\n{line}\nserver.2=h2:2888:3888\n");
        assert_line_error(&text, 6, needle);
    }
}

#[test]
fn observers_and_client_address_suffixes() {
    let lines = "\
server.0=zk0:2888:3888:participant;2181
server.1=zk1:2888:3888;10.0.0.2:2181
server.2=[fe80::1]:2888:3888:participant;[fe80::1]:2181
server.3=zk3:2888:3888:OBSERVER
server.4=zk4:2888:3888:observer;0.0.0.0:2181
";
    let cfg = ensemble(lines, "1").unwrap();
    assert_eq!(cfg.mode(), ServerMode::Ensemble);
    let s = &cfg.servers;
    assert_eq!(s[&0].client_address, Some(HostPort::new("0.0.0.0", 2181)));
    assert_eq!(s[&1].client_address, Some(HostPort::new("10.0.0.2", 2181)));
    assert_eq!(s[&2].addresses[0].host, "fe80::1");
    assert_eq!(s[&2].addresses[0].quorum_port, 2888);
    assert_eq!(s[&2].client_address, Some(HostPort::new("fe80::1", 2181)));
    assert_eq!(s[&3].learner_type, LearnerType::Observer);
    assert_eq!(s[&3].client_address, None);
    assert_eq!(s[&4].learner_type, LearnerType::Observer);
    assert_eq!(s[&4].line, 9);
    // Server 1's own line decides its client address.
    assert_eq!(
        cfg.client_listen_address(),
        Some(HostPort::new("10.0.0.2", 2181))
    );
    assert_eq!(cfg.peer_type, LearnerType::Participant);

    let cfg = ensemble(lines, "4").unwrap();
    assert_eq!(cfg.peer_type, LearnerType::Observer);
    assert_eq!(
        cfg.client_listen_address(),
        Some(HostPort::new("0.0.0.0", 2181))
    );
}

#[test]
fn static_client_port_conflicting_with_the_server_line_is_refused() {
    let lines = "server.0=a:2888:3888;2182\nserver.1=b:2888:3888\nserver.2=c:2888:3888\n";
    let err = ensemble(lines, "0").unwrap_err();
    assert_eq!(err.line(), Some(2), "{err}");
    assert!(err.to_string().contains("server.0 line"), "{err}");
    // No clientPort in the static part: the server line supplies it.
    let text = format!("dataDir=/d\ninitLimit=10\nsyncLimit=5\n{lines}");
    let cfg = parse_with(&text, &[("/d/myid", "0")]).unwrap();
    assert_eq!(cfg.client_port, Some(2182));
    assert_eq!(cfg.client_port_address, None);
}

#[test]
fn peer_type_disagreeing_with_the_server_line_warns_and_the_line_wins() {
    let lines =
        "peerType=observer\nserver.0=a:2888:3888\nserver.1=b:2888:3888\nserver.2=c:2888:3888\n";
    let cfg = ensemble(lines, "0").unwrap();
    assert_eq!(cfg.peer_type, LearnerType::Participant);
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(cfg.warnings[0].line, Some(5));
}

#[test]
fn mode_follows_zookeepers_rule() {
    // No server lines: standalone.
    assert_eq!(ok(MIN).mode(), ServerMode::Standalone);
    // One server line with standaloneEnabled (default): standalone, with a warning, no myid needed.
    let cfg = ok(&format!("{MIN}server.1=a:2888:3888\n"));
    assert_eq!(cfg.mode(), ServerMode::Standalone);
    assert_eq!(cfg.warnings.len(), 1);
    // One server line with standaloneEnabled=false: a one-voter ensemble.
    let cfg = ensemble("standaloneEnabled=false\nserver.1=a:2888:3888\n", "1").unwrap();
    assert_eq!(cfg.mode(), ServerMode::Ensemble);
    // Two voters: an ensemble (that tolerates no failure: warned).
    let cfg = ensemble("server.1=a:2888:3888\nserver.2=b:2888:3888\n", "1").unwrap();
    assert_eq!(cfg.mode(), ServerMode::Ensemble);
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.message.contains("at least 3"))
    );
    // Four voters: warned to use an odd number.
    let four = "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\n";
    let cfg = ensemble(four, "1").unwrap();
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.message.contains("odd number"))
    );
    // Observers do not count as voters.
    let cfg = ok(&format!(
        "{MIN}server.1=a:2888:3888\nstandaloneEnabled=true\n"
    ));
    assert_eq!(cfg.mode(), ServerMode::Standalone);
}

#[test]
fn invalid_memberships_are_refused() {
    let err = parse(&format!("{MIN}standaloneEnabled=false\n")).unwrap_err();
    assert!(
        err.to_string().contains("at least one participant"),
        "{err}"
    );
    assert_line_error(
        &format!("{MIN}server.1=a:2888:3888:observer\n"),
        3,
        "observers without participants",
    );
    assert_line_error(
        &format!("{MIN}server.1=a:2888:3888\nserver.2=b:2888:3888:observer\n"),
        4,
        "observers without a quorum",
    );
}

#[test]
fn ensemble_needs_init_and_sync_limits() {
    let lines = "server.0=a:1:2\nserver.1=b:1:2\nserver.2=c:1:2\n";
    let err = parse_with(
        &format!("dataDir=/d\nclientPort=1\nsyncLimit=5\n{lines}"),
        &[("/d/myid", "0")],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "/conf/zoo.cfg: initLimit is not set");
    let err = parse_with(
        &format!("dataDir=/d\nclientPort=1\ninitLimit=5\n{lines}"),
        &[("/d/myid", "0")],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "/conf/zoo.cfg: syncLimit is not set");
}

#[test]
fn myid_is_read_from_data_dir_not_data_log_dir() {
    let text =
        format!("{ENSEMBLE}dataLogDir=/log\nserver.7=a:1:2\nserver.8=b:1:2\nserver.9=c:1:2\n");
    let cfg = parse_with(&text, &[("/d/myid", "8"), ("/log/myid", "9")]).unwrap();
    assert_eq!(cfg.my_id, Some(8));
}

#[test]
fn extended_types_limit_server_ids() {
    let lines = "extendedTypesEnabled=true\nserver.255=a:1:2\nserver.1=b:1:2\nserver.2=c:1:2\n";
    let err = ensemble(lines, "255").unwrap_err();
    assert_eq!(err.line(), Some(5), "{err}");
    assert!(ensemble(lines, "1").is_ok());
}

#[test]
fn multi_address_needs_the_switch() {
    let lines =
        "multiAddress.enabled=true\nserver.0=a1:1:2|a2:1:2\nserver.1=b:1:2\nserver.2=c:1:2\n";
    let cfg = ensemble(lines, "0").unwrap();
    assert_eq!(cfg.servers[&0].addresses.len(), 2);
    let mixed = "multiAddress.enabled=true\nserver.0=a1:1:2:observer|a2:1:2:participant\n";
    assert_line_error(&format!("{ENSEMBLE}{mixed}"), 6, "same role");
}

#[test]
fn dynamic_config_file_holds_the_server_lines() {
    let text = format!(
        "{ENSEMBLE}reconfigEnabled=true\ndynamicConfigFile=/conf/zoo.cfg.dynamic.100000000\n"
    );
    let dynamic = "server.0=a:2888:3888:participant;0.0.0.0:2181\nserver.1=b:2888:3888:participant;2181\nserver.2=c:2888:3888:observer;2181\n";
    let cfg = parse_with(
        &text,
        &[
            ("/conf/zoo.cfg.dynamic.100000000", dynamic),
            ("/d/myid", "2"),
        ],
    );
    let cfg = cfg.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.servers.len(), 3);
    assert_eq!(
        cfg.servers[&2].source,
        PathBuf::from("/conf/zoo.cfg.dynamic.100000000")
    );
    assert_eq!(cfg.peer_type, LearnerType::Observer);
    assert_eq!(cfg.config_version, Some(0x1_0000_0000));

    // A server line in zoo.cfg next to dynamicConfigFile is an error on that line.
    assert_line_error(
        &format!("{text}server.5=x:1:2\n"),
        7,
        "separate dynamic config file",
    );

    // Errors in the dynamic file name the dynamic file and its line.
    let err = parse_with(
        &text,
        &[
            (
                "/conf/zoo.cfg.dynamic.100000000",
                "server.0=a:1:2\nserver.1=b:1\n",
            ),
            ("/d/myid", "0"),
        ],
    )
    .unwrap_err();
    assert_eq!(err.path(), Path::new("/conf/zoo.cfg.dynamic.100000000"));
    assert_eq!(err.line(), Some(2));
    let err = parse_with(
        &text,
        &[
            (
                "/conf/zoo.cfg.dynamic.100000000",
                "server.0=a:1:2\nclientPort=1\n",
            ),
            ("/d/myid", "0"),
        ],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("unrecognised parameter: clientPort"),
        "{err}"
    );
    // A missing dynamic file names it.
    let err = parse_with(&text, &[("/d/myid", "0")]).unwrap_err();
    assert_eq!(err.path(), Path::new("/conf/zoo.cfg.dynamic.100000000"));
}

#[test]
fn static_version_key_is_hex() {
    assert_eq!(ok(&format!("{MIN}version=1a\n")).config_version, Some(0x1a));
    assert_eq!(ok(MIN).config_version, None);
    assert_line_error(&format!("{MIN}version=xyz\n"), 3, "hex version");
}

#[test]
fn load_reads_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("myid"), "1\n").unwrap();
    let cfg_path = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg_path,
        format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort=2181\n\
             server.0=127.0.0.1:2888:3888\nserver.1=127.0.0.1:2889:3889\nserver.2=127.0.0.1:2890:3890\n",
            data.display()
        ),
    )
    .unwrap();
    let cfg = ServerConfig::load(&cfg_path).unwrap();
    assert_eq!(cfg.my_id, Some(1));
    assert_eq!(cfg.config_path, cfg_path);

    let err = ServerConfig::load(&dir.path().join("absent.cfg")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("absent.cfg"), "{err}");
}

#[test]
fn snap_count_is_read_and_raised_to_two_as_zookeeper_does() {
    assert_eq!(ok(MIN).snap_count, 100_000);
    assert_eq!(ok(&format!("{MIN}snapCount=500\n")).snap_count, 500);
    assert_eq!(ok(&format!("{MIN}snapCount=1\n")).snap_count, 2);
}

#[test]
fn log_format_and_level() {
    let c = ok(MIN);
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.log_level, None);

    let c = ok(&format!(
        "{MIN}log.format=JSON\nlog.level=info,rookery_server::quorum=debug\n"
    ));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(
        c.log_level.as_deref(),
        Some("info,rookery_server::quorum=debug")
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // Empty means the default, as for other keys that name something optional.
    assert_eq!(ok(&format!("{MIN}log.level=\n")).log_level, None);
    assert_eq!(
        ok(&format!("{MIN}log.format=human\n")).log_format,
        LogFormat::Human
    );
}

#[test]
fn bad_log_settings_name_their_line() {
    assert_line_error(
        &format!("{MIN}log.format=logfmt\n"),
        3,
        "choose 'human' or 'json'",
    );
    assert_line_error(
        &format!("{MIN}\nlog.level=info,rookery_server=loud\n"),
        4,
        "not a log filter",
    );
}

#[test]
fn a_log_level_that_is_really_a_module_name_is_warned_about() {
    let c = ok(&format!("{MIN}log.level=warning\n"));
    assert_eq!(c.log_level.as_deref(), Some("warning"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].line, Some(3));
    assert!(c.warnings[0].message.contains("'warning' is not a level"));
    // Module paths and target=level pairs are what they look like.
    let c = ok(&format!(
        "{MIN}log.level=debug,rookery_server::quorum,h2=warn\n"
    ));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn otel_trace_export_settings() {
    // Off unless an endpoint is configured (the binary then looks at
    // OTEL_EXPORTER_OTLP_ENDPOINT).
    let c = ok(MIN);
    assert_eq!(c.otel, OtelConfig::default());
    assert_eq!(c.otel.endpoint, None);
    assert_eq!(c.otel.service_name, "rookery");
    assert_eq!(c.otel.schedule_delay_ms, None);

    let c = ok(&format!(
        "{MIN}otel.exporter.otlp.endpoint=http://127.0.0.1:4317\notel.serviceName=zk-east\n\
         otel.bsp.schedule.delay=200\n"
    ));
    assert_eq!(c.otel.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
    assert_eq!(c.otel.service_name, "zk-east");
    assert_eq!(c.otel.schedule_delay_ms, Some(200));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // The OpenTelemetry SDKs' spelling of the service name; empty values are defaults.
    let c = ok(&format!("{MIN}otel.service.name=zk-west\n"));
    assert_eq!(c.otel.service_name, "zk-west");
    let c = ok(&format!(
        "{MIN}otel.exporter.otlp.endpoint=\notel.serviceName=\n"
    ));
    assert_eq!(c.otel, OtelConfig::default());
}

#[test]
fn bad_otel_settings_name_their_line() {
    assert_line_error(
        &format!("{MIN}otel.exporter.otlp.endpoint=127.0.0.1:4317\n"),
        3,
        "give http://host:port",
    );
    assert_line_error(
        &format!("{MIN}otel.exporter.otlp.endpoint=https://collector:4317\n"),
        3,
        "not an OTLP/gRPC endpoint",
    );
    assert_line_error(
        &format!("{MIN}\notel.bsp.schedule.delay=0\n"),
        4,
        "otel.bsp.schedule.delay",
    );
}

#[test]
fn tls_keys_map_to_settings_and_bad_ones_are_named() {
    let quorum = ok(&format!(
        "{MIN}sslQuorum=true\nssl.quorum.keyStore.location=/q.pem\n\
         ssl.quorum.trustStore.location=/ca.pem\nssl.quorum.hostnameVerification=false\n\
         ssl.quorum.keyStore.password=hunter2\nadmin.ssl.keyStore.location=/a.pem\n\
         admin.ssl.trustStore.location=/ca.pem\n"
    ));
    let q = quorum.quorum_tls.as_ref().expect("sslQuorum settings");
    assert_eq!(q.key_store, PathBuf::from("/q.pem"));
    assert!(!q.hostname_verification);
    assert_eq!(q.client_auth, crate::tls::ClientAuth::Need);
    assert!(quorum.client_tls.is_none());
    let a = quorum.admin_tls.as_ref().expect("admin.ssl settings");
    assert_eq!(a.key_store, PathBuf::from("/a.pem"));
    // The password is not used and never repeated back.
    let pw = quorum
        .warnings
        .iter()
        .find(|w| w.message.contains("ssl.quorum.keyStore.password"))
        .expect("a warning for the unused password");
    assert!(!pw.message.contains("hunter2"), "{pw}");

    let e = parse(&format!("{MIN}sslQuorum=true\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ssl.quorum.keyStore.location"), "{e}");
    assert_line_error(
        &format!("{MIN}secureClientPort=2281\nssl.keyStore.location=/k\nssl.keyStore.type=JKS\n"),
        5,
        "PEM",
    );
    assert_line_error(
        &format!("{MIN}secureClientPort=2281\nssl.keyStore.location=/k\nssl.clientAuth=maybe\n"),
        5,
        "'none', 'want' or 'need'",
    );
}
