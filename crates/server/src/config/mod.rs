//! `zoo.cfg` and `myid`, read the way ZooKeeper's `QuorumPeerConfig` reads them.
//!
//! Operators bring their existing ZooKeeper files, so the rules follow ZooKeeper 3.8/3.9:
//! keys and values are trimmed; the last of duplicate keys wins; `server.N` lines define the
//! ensemble; `myid` is the first line of `dataDir/myid`; ZooKeeper's defaults apply. Where
//! ZooKeeper only takes a setting as a Java system property (`jute.maxbuffer`,
//! `zookeeper.DigestAuthenticationProvider.superDigest`, `zookeeper.forceSync`, ...) we
//! also take it from `zoo.cfg`, because Rookery has no JVM to pass `-D` flags to.
//!
//! Deliberate differences from ZooKeeper, each chosen so that a file ZooKeeper accepts
//! either means the same here or is refused loudly:
//! - `autopurge.purgeInterval` defaults to 1 hour (ZooKeeper: 0, off); retention is on by
//!   default. `autopurge.purgeInterval=0` still turns it off.
//! - Negative or out-of-range numbers are errors, not Java's silent oddities.
//! - `forceSync` takes only `yes`/`no` (ZooKeeper reads anything but `no` as yes, so
//!   `forceSync=false` silently kept fsync on there; here it is an error), and `no` is
//!   ignored with a warning: Rookery never acknowledges a write it has not fsynced.
//! - `jute.maxbuffer` takes decimal or `0x` hex; a leading `0` (octal to Java) is refused.
//! - `myid` may carry surrounding whitespace.
//! - Hierarchical quorums (`group.N`, `weight.N`) are refused: a silently ignored quorum
//!   system would be unsafe.

mod properties;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use properties::RawEntry;

/// Rookery's own admin API default: loopback only, because it can change membership.
/// Port 7181 keeps clear of the 2181..2183 client ports of ZooKeeper's pseudo-cluster
/// examples and of 8080 (ZooKeeper's AdminServer).
pub const DEFAULT_ADMIN_GRPC_HOST: &str = "127.0.0.1";
pub const DEFAULT_ADMIN_GRPC_PORT: u16 = 7181;
/// `ZooKeeperServer.DEFAULT_TICK_TIME`.
pub const DEFAULT_TICK_TIME_MS: u32 = 3000;
/// `jute.maxbuffer` default, 0xfffff bytes.
pub const DEFAULT_JUTE_MAX_BUFFER: u32 = 0xfffff;
/// Retention is on by default in Rookery (ZooKeeper's default is 0, never purge).
pub const DEFAULT_PURGE_INTERVAL_HOURS: u32 = 1;
/// ZooKeeper's `znode.container.checkIntervalMs` default, one minute.
pub const DEFAULT_CONTAINER_CHECK_INTERVAL_MS: u64 = 60_000;
/// ZooKeeper refuses to keep fewer snapshots than this (`PurgeTxnLog`).
pub const MIN_SNAP_RETAIN_COUNT: u32 = 3;
/// ZooKeeper's `snapCount` default.
pub const DEFAULT_SNAP_COUNT: u64 = 100_000;
/// ZooKeeper's `fsync.warningthresholdms` default.
pub const DEFAULT_FSYNC_WARNING_THRESHOLD_MS: u64 = 1000;
/// Every four-letter word ZooKeeper 3.9 knows; `*` in the whitelist means these.
pub const FOUR_LETTER_WORDS: [&str; 20] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "icfg", "isro", "mntr", "ruok",
    "srst", "srvr", "stat", "stmk", "sysp", "wchc", "wchp", "wchs",
];

/// Why the configuration cannot be used. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

impl ConfigError {
    /// The file the error is about (zoo.cfg, the dynamic file, or myid).
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. }
            | ConfigError::Line { path, .. }
            | ConfigError::File { path, .. } => path,
        }
    }

    /// The 1-based line, when the error is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Something start-up should log but that does not stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// A host (name, IPv4 or IPv6 literal without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
        }
    }

    fn is_wildcard(&self) -> bool {
        self.host == "0.0.0.0" || self.host == "::" || self.host == "0:0:0:0:0:0:0:0"
    }
}

impl fmt::Display for HostPort {
    /// `host:port`, bracketing IPv6 literals so the result parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Voter or non-voter, as in ZooKeeper's `LearnerType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LearnerType {
    Participant,
    Observer,
}

impl fmt::Display for LearnerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LearnerType::Participant => "participant",
            LearnerType::Observer => "observer",
        })
    }
}

/// One `host:quorumPort:electionPort` of a server line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerAddress {
    pub host: String,
    /// Followers connect to the leader here (2888 in the examples).
    pub quorum_port: u16,
    /// Leader election traffic (3888 in the examples).
    pub election_port: u16,
}

/// A `server.N=...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumServer {
    pub id: u64,
    /// More than one only with `multiAddress.enabled=true` (`a:1:2|b:1:2`).
    pub addresses: Vec<PeerAddress>,
    pub learner_type: LearnerType,
    /// The `;[clientAddr:]clientPort` suffix; a bare port means all interfaces (0.0.0.0).
    pub client_address: Option<HostPort>,
    /// The line it came from, in `source`.
    pub line: usize,
    /// zoo.cfg, or the dynamic config file when `dynamicConfigFile` is set.
    pub source: PathBuf,
}

impl ServerConfig {
    /// The ensemble as ZooKeeper writes it into `/zookeeper/config`: a
    /// `server.N=host:quorumPort:electionPort:role[;clientHost:clientPort]` line per
    /// member (addresses joined by `|`), then `version=` and the config version in hex.
    pub fn dynamic_config_text(&self) -> String {
        crate::membership::Ensemble::from_config(self).text()
    }
}

/// Whether the server runs alone or joins an ensemble (ZooKeeper's `isDistributed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    Standalone,
    Ensemble,
}

/// Which four-letter words answer (`4lw.commands.whitelist`). `srvr` always does:
/// `zkServer.sh status` depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    All,
    Only(BTreeSet<String>),
}

impl FourLetterWhitelist {
    pub fn is_enabled(&self, command: &str) -> bool {
        match self {
            FourLetterWhitelist::All => FOUR_LETTER_WORDS.contains(&command),
            FourLetterWhitelist::Only(set) => set.contains(command),
        }
    }
}

impl Default for FourLetterWhitelist {
    fn default() -> Self {
        FourLetterWhitelist::Only(BTreeSet::from(["srvr".to_string()]))
    }
}

/// How the server writes its log lines (`log.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, for people reading a terminal or `journalctl`.
    #[default]
    Human,
    /// One JSON object per line (timestamp, level, target, fields, spans), for log
    /// shippers that would otherwise have to parse the human form.
    Json,
}

impl LogFormat {
    /// `human` or `json`, in any case.
    pub fn from_name(name: &str) -> Option<LogFormat> {
        if name.eq_ignore_ascii_case("human") {
            Some(LogFormat::Human)
        } else if name.eq_ignore_ascii_case("json") {
            Some(LogFormat::Json)
        } else {
            None
        }
    }
}

/// OpenTelemetry trace export (`otel.*`, the OpenTelemetry SDKs' own property names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// `otel.exporter.otlp.endpoint`: the OTLP/gRPC collector (`http://host:4317`);
    /// `None` here lets the binary use `OTEL_EXPORTER_OTLP_ENDPOINT`, and without
    /// either nothing is traced.
    pub endpoint: Option<String>,
    /// `otel.serviceName` (or `otel.service.name`): the `service.name` resource.
    pub service_name: String,
    /// `otel.bsp.schedule.delay`: ms between batch exports (the SDK's default, 5 s,
    /// or `OTEL_BSP_SCHEDULE_DELAY`, when `None`).
    pub schedule_delay_ms: Option<u64>,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            endpoint: None,
            service_name: "rookery".to_owned(),
            schedule_delay_ms: None,
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

/// The typed contents of `zoo.cfg` (plus `myid` and any dynamic config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub config_path: PathBuf,
    /// `tickTime`; every other timeout is a multiple of it.
    pub tick_time_ms: u32,
    /// `initLimit`; 0 = not set (required in an ensemble).
    pub init_limit_ticks: u32,
    /// `syncLimit`; 0 = not set (required in an ensemble).
    pub sync_limit_ticks: u32,
    pub data_dir: PathBuf,
    /// `dataLogDir`, defaulting to `dataDir`.
    pub data_log_dir: PathBuf,
    /// Client port: `clientPort`, or this server's `;clientPort` suffix.
    pub client_port: Option<u16>,
    /// Client listen host: `clientPortAddress`, or this server's `;host:port` suffix;
    /// `None` means all interfaces.
    pub client_port_address: Option<String>,
    /// `secureClientPort`: clients speak TLS here (keys under `ssl.`).
    pub secure_client_port: Option<u16>,
    pub secure_client_port_address: Option<String>,
    /// `ssl.*`: the secure client port's certificates; set with `secureClientPort`.
    pub client_tls: Option<crate::tls::TlsSettings>,
    /// `sslQuorum=true` with `ssl.quorum.*`: TLS between the servers.
    pub quorum_tls: Option<crate::tls::TlsSettings>,
    /// `admin.ssl.*`: TLS (mutual unless `admin.ssl.clientAuth=none`) on the admin API.
    pub admin_tls: Option<crate::tls::TlsSettings>,
    /// `maxClientCnxns`, per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// `server.N` lines, by id.
    pub servers: BTreeMap<u64, QuorumServer>,
    /// From `dataDir/myid`; `None` when the file does not exist (fine when standalone).
    pub my_id: Option<u64>,
    /// `peerType`, corrected to what this server's `server.N` line says.
    pub peer_type: LearnerType,
    pub standalone_enabled: bool,
    pub reconfig_enabled: bool,
    pub multi_address_enabled: bool,
    pub dynamic_config_file: Option<PathBuf>,
    /// The membership version (hex, the zxid of the reconfig that made it): `version=` in
    /// zoo.cfg, or the suffix of the dynamic file's name (`zoo.cfg.dynamic.100000000`).
    pub config_version: Option<u64>,
    pub four_letter_words: FourLetterWhitelist,
    pub read_only_mode_enabled: bool,
    pub local_sessions_enabled: bool,
    pub snap_retain_count: u32,
    /// `snapCount`: Txns logged between snapshots (ZooKeeper's default 100,000).
    pub snap_count: u64,
    /// `autopurge.purgeInterval`; 0 = never purge.
    pub purge_interval_hours: u32,
    /// TTL nodes and other extended ephemeral types (`extendedTypesEnabled`).
    pub extended_types_enabled: bool,
    /// Largest packet (and znode payload) in bytes.
    pub jute_max_buffer: u32,
    /// `user:base64(sha1(user:password))` for the `super` digest user.
    pub super_digest: Option<String>,
    /// How often empty containers and expired TTL nodes are looked for.
    pub container_check_interval_ms: u64,
    /// Rookery's gRPC admin API; `admin.grpcAddress=` (empty) turns it off.
    pub admin_grpc_address: Option<HostPort>,
    /// `admin.authTokenFile`: callers of the admin API must send this file's content
    /// as a bearer token. Required when the admin API is not on loopback.
    pub admin_auth_token_file: Option<PathBuf>,
    /// `admin.minVoters`: a membership change may not leave fewer voters (the admin
    /// API's `--force` overrides it). Defaults to 2 while `standaloneEnabled` is true,
    /// as ZooKeeper's reconfig refuses fewer than two participants then, else 1.
    pub admin_min_voters: usize,
    /// `rookery.testing.rollEpochAtCounter`: for tests only, the zxid counter at which
    /// the leader rolls to a new epoch (default 2^32 - 2^16).
    pub roll_epoch_at_counter: Option<u32>,
    /// Prometheus exporter, off unless `metricsProvider.httpPort` is set.
    pub metrics_http_host: String,
    pub metrics_http_port: Option<u16>,
    /// `fsync.warningthresholdms`: an fsync of the log that takes longer is logged as
    /// a warning, as ZooKeeper does, because every write in its round waited for it.
    pub fsync_warning_threshold_ms: u64,
    /// `log.format`: `human` (the default) or `json`.
    pub log_format: LogFormat,
    /// `log.level`: `tracing` filter directives in `RUST_LOG`'s syntax, a default level
    /// and levels per module (`info,rookery_server::quorum=debug`), checked here so a
    /// typo is an error with its line rather than a silently different filter. `None`
    /// leaves the binary's default (`info`); `RUST_LOG` overrides it when set.
    pub log_level: Option<String>,
    /// `otel.*`: traces over OTLP/gRPC, off unless an endpoint is configured.
    pub otel: OtelConfig,
    pub warnings: Vec<ConfigWarning>,
}

impl ServerConfig {
    /// Reads `path`, its `myid` and (if named) its dynamic config file from disk.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = read_text(path)?.ok_or_else(|| ConfigError::Read {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
        })?;
        ServerConfig::parse(path, &text, &read_text)
    }

    /// Parses zoo.cfg `text` (named `path` in messages); `read_file` supplies other
    /// files (`myid`, the dynamic config) and answers `Ok(None)` when one does not exist.
    pub fn parse(
        path: &Path,
        text: &str,
        read_file: &ReadFile<'_>,
    ) -> Result<ServerConfig, ConfigError> {
        Builder::new(path).build(text, read_file)
    }

    /// ZooKeeper's rule (`QuorumPeerConfig.isDistributed`): an ensemble when there are
    /// two or more voters, or when `standaloneEnabled=false`.
    pub fn mode(&self) -> ServerMode {
        mode_of(&self.servers, self.standalone_enabled)
    }

    /// Where the client listener binds, if there is one.
    pub fn client_listen_address(&self) -> Option<HostPort> {
        let port = self.client_port?;
        let host = self
            .client_port_address
            .clone()
            .unwrap_or_else(|| "0.0.0.0".to_string());
        Some(HostPort::new(host, port))
    }

    /// This server's own `server.N` line, when it is in an ensemble.
    pub fn own_server(&self) -> Option<&QuorumServer> {
        self.my_id.and_then(|id| self.servers.get(&id))
    }
}

fn mode_of(servers: &BTreeMap<u64, QuorumServer>, standalone_enabled: bool) -> ServerMode {
    let voters = servers
        .values()
        .filter(|s| s.learner_type == LearnerType::Participant)
        .count();
    if !standalone_enabled || voters > 1 {
        ServerMode::Ensemble
    } else {
        ServerMode::Standalone
    }
}

fn read_text(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(decode(bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// UTF-8 when valid; otherwise ISO-8859-1, which is what `Properties.load` assumes.
fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// A trimmed entry, as `QuorumPeerConfig.parseProperties` sees it.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
    line: usize,
}

/// ZooKeeper keys Rookery accepts but does not act on (JVM, SASL, TLS-quorum, tuning).
const IGNORED_KEYS: &[&str] = &[
    "admin.enableServer",
    "admin.serverAddress",
    "admin.serverPort",
    "admin.idleTimeout",
    "admin.commandURL",
    "clientPortListenBacklog",
    "connectToLearnerMasterLimit",
    "globalOutstandingLimit",
    "maxCnxns",
    "metricsProvider.exportJvmInfo",
    "multiAddress.reachabilityCheckEnabled",
    "multiAddress.reachabilityCheckTimeoutMs",
    "observerMasterPort",
    "portUnification",
    "preAllocSize",
    "quorum.auth.enableSasl",
    "quorum.auth.kerberos.servicePrincipal",
    "quorum.auth.learner.saslLoginContext",
    "quorum.auth.learnerRequireSasl",
    "quorum.auth.server.saslLoginContext",
    "quorum.auth.serverRequireSasl",
    "quorum.cnxn.threads.size",
    "quorumListenOnAllIPs",
    // Rookery always reloads changed certificate files.
    "sslQuorumReloadCertFiles",
    "client.certReload",
    "syncEnabled",
    "jvm.pause.info-threshold.ms",
    "jvm.pause.warn-threshold.ms",
    "jvm.pause.sleep.time.ms",
    "jvm.pause.monitor",
    "localSessionsUpgradingEnabled",
    "electionPortBindRetry",
    "serverCnxnFactory",
    "oraclePath",
];

const SUPER_DIGEST_KEYS: [&str; 3] = [
    "superDigest",
    "DigestAuthenticationProvider.superDigest",
    "zookeeper.DigestAuthenticationProvider.superDigest",
];

struct Builder {
    path: PathBuf,
    warnings: Vec<ConfigWarning>,
}

/// Reads a file named by the configuration; `Ok(None)` when it does not exist.
pub type ReadFile<'a> = dyn Fn(&Path) -> Result<Option<String>, ConfigError> + 'a;

impl Builder {
    fn new(path: &Path) -> Self {
        Builder {
            path: path.to_path_buf(),
            warnings: Vec::new(),
        }
    }

    fn err(&self, e: &Entry, reason: impl fmt::Display) -> ConfigError {
        ConfigError::Line {
            path: self.path.clone(),
            line: e.line,
            reason: format!("{}: {reason}", e.key),
        }
    }

    fn err_at(&self, line: Option<usize>, reason: impl Into<String>) -> ConfigError {
        match line {
            Some(line) => ConfigError::Line {
                path: self.path.clone(),
                line,
                reason: reason.into(),
            },
            None => ConfigError::File {
                path: self.path.clone(),
                reason: reason.into(),
            },
        }
    }

    fn warn(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            path: self.path.clone(),
            line,
            message: message.into(),
        });
    }

    fn int(&self, e: &Entry, min: i64, max: i64) -> Result<i64, ConfigError> {
        let n: i64 = e
            .value
            .parse()
            .map_err(|_| self.err(e, format!("'{}' is not a whole number", e.value)))?;
        if n < min || n > max {
            return Err(self.err(e, format!("{n} is out of range {min}..={max}")));
        }
        Ok(n)
    }

    fn u32_at_least(&self, e: &Entry, min: u32) -> Result<u32, ConfigError> {
        let n = self.int(e, i64::from(min), i64::from(i32::MAX))?;
        u32::try_from(n).map_err(|_| self.err(e, "out of range"))
    }

    fn port(&self, e: &Entry) -> Result<u16, ConfigError> {
        let n = self.int(e, 0, 65535)?;
        u16::try_from(n).map_err(|_| self.err(e, "out of range"))
    }

    fn boolean(&self, e: &Entry) -> Result<bool, ConfigError> {
        if e.value.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if e.value.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(self.err(
                e,
                format!("invalid option '{}'; choose 'true' or 'false'", e.value),
            ))
        }
    }

    fn host(&self, e: &Entry) -> Result<String, ConfigError> {
        let host = strip_brackets(&e.value);
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(self.err(e, format!("'{}' is not a host name or address", e.value)));
        }
        Ok(host.to_string())
    }

    /// The TLS keys under `prefix` (taken out of `ssl`), as one [`TlsSettings`]; `None`
    /// when not `required` and no key store is given. Only PEM files are read: a JKS
    /// or PKCS#12 store is refused by name rather than failing later as bad PEM.
    fn tls_settings(
        &mut self,
        prefix: &str,
        ssl: &mut BTreeMap<&str, &Entry>,
        required: bool,
    ) -> Result<Option<crate::tls::TlsSettings>, ConfigError> {
        use crate::tls::{ClientAuth, TlsSettings};
        // "ssl." must not take "ssl.quorum.*".
        let mine: Vec<(String, &Entry)> = ssl
            .iter()
            .filter_map(|(k, e)| {
                let suffix = k.strip_prefix(prefix)?;
                (prefix != "ssl." || !suffix.starts_with("quorum."))
                    .then(|| (suffix.to_owned(), *e))
            })
            .collect();
        let location = mine.iter().find(|(s, _)| s == "keyStore.location");
        let Some((_, store)) = location.filter(|(_, e)| !e.value.is_empty()) else {
            if required {
                let why = if prefix == "ssl.quorum." {
                    "sslQuorum=true"
                } else {
                    "secureClientPort"
                };
                return Err(self.err_at(
                    None,
                    format!("{why} needs {prefix}keyStore.location (a PEM file with the key and certificate chain)"),
                ));
            }
            return Ok(None);
        };
        let mut settings = TlsSettings::new(prefix, PathBuf::from(&store.value));
        for (suffix, e) in &mine {
            ssl.remove(format!("{prefix}{suffix}").as_str());
            match suffix.as_str() {
                "keyStore.location" => {}
                "trustStore.location" => {
                    settings.trust_store = (!e.value.is_empty()).then(|| PathBuf::from(&e.value));
                }
                "keyStore.type" | "trustStore.type" => {
                    if !e.value.eq_ignore_ascii_case("PEM") {
                        return Err(self.err(
                            e,
                            format!(
                                "Rookery reads PEM files only, not {}; convert the store \
                                 (openssl pkcs12 -nodes, or keytool then openssl)",
                                e.value
                            ),
                        ));
                    }
                }
                "keyStore.password" | "trustStore.password" => self.warn(
                    Some(e.line),
                    format!("{} is not used: Rookery reads unencrypted PEM files", e.key),
                ),
                "clientAuth" => {
                    settings.client_auth = ClientAuth::from_name(&e.value).ok_or_else(|| {
                        self.err(
                            e,
                            format!(
                                "invalid option '{}'; choose 'none', 'want' or 'need'",
                                e.value
                            ),
                        )
                    })?;
                }
                "hostnameVerification" => settings.hostname_verification = self.boolean(e)?,
                _ => self.warn(
                    Some(e.line),
                    format!(
                        "{} is a ZooKeeper setting Rookery does not use; ignored",
                        e.key
                    ),
                ),
            }
        }
        Ok(Some(settings))
    }

    /// `otel.exporter.otlp.endpoint`: plain gRPC (`http://`, to a collector nearby);
    /// empty turns export off. TLS to the collector is not offered.
    fn otlp_endpoint(&self, e: &Entry) -> Result<Option<String>, ConfigError> {
        if e.value.is_empty() {
            return Ok(None);
        }
        match e.value.strip_prefix("http://") {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(Some(e.value.clone())),
            _ => Err(self.err(
                e,
                format!(
                    "'{}' is not an OTLP/gRPC endpoint; give http://host:port (plain gRPC, \
                     e.g. http://127.0.0.1:4317)",
                    e.value
                ),
            )),
        }
    }

    /// `log.level`: parsed as `RUST_LOG` would be, so what starts is what was checked.
    /// A bare word that is not a level is valid filter syntax ("every level of target
    /// X, nothing else"), but far more often a misspelt level (`warning`, `verbose`):
    /// it is kept, with a warning saying what it means.
    fn log_level(&mut self, e: &Entry) -> Result<Option<String>, ConfigError> {
        if e.value.is_empty() {
            return Ok(None);
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&e.value)
            .map_err(|err| self.err(e, format!("'{}' is not a log filter: {err}", e.value)))?;
        for directive in e.value.split(',').map(str::trim) {
            let bare = !directive.is_empty() && !directive.contains(['=', '[', ':']);
            if bare
                && directive
                    .parse::<tracing::level_filters::LevelFilter>()
                    .is_err()
            {
                self.warn(
                    Some(e.line),
                    format!(
                        "log.level: '{directive}' is not a level (off, error, warn, info, \
                         debug, trace); it is read as a module name whose events are all \
                         logged"
                    ),
                );
            }
        }
        Ok(Some(e.value.clone()))
    }

    fn build(mut self, text: &str, read_file: &ReadFile<'_>) -> Result<ServerConfig, ConfigError> {
        let raw = properties::parse(text).map_err(|e| ConfigError::Line {
            path: self.path.clone(),
            line: e.line,
            reason: e.reason,
        })?;
        let entries = self.dedupe(raw);

        let mut tick_time_ms = DEFAULT_TICK_TIME_MS;
        let mut tick_line = None;
        let mut init_limit_ticks = 0;
        let mut sync_limit_ticks = 0;
        let mut data_dir = None;
        let mut data_log_dir = None;
        let mut client_port: Option<u16> = None;
        let mut client_port_entry = None;
        let mut client_port_address: Option<(String, usize)> = None;
        let mut secure_client_port = None;
        let mut secure_client_port_address: Option<(String, usize)> = None;
        let mut max_client_cnxns = 60;
        let mut min_session: Option<(u32, usize)> = None;
        let mut max_session: Option<(u32, usize)> = None;
        let mut peer_type: Option<(LearnerType, usize)> = None;
        let mut standalone_enabled = true;
        let mut reconfig_enabled = false;
        let mut multi_address_enabled = false;
        let mut dynamic_config_file: Option<(PathBuf, usize)> = None;
        let mut whitelist: Option<&Entry> = None;
        let mut read_only_mode_enabled = false;
        let mut local_sessions_enabled = false;
        let mut snap_retain_count = MIN_SNAP_RETAIN_COUNT;
        let mut snap_count: u64 = DEFAULT_SNAP_COUNT;
        let mut purge_interval_hours = DEFAULT_PURGE_INTERVAL_HOURS;
        let mut extended_types_enabled = false;
        let mut extended_types_line = None;
        let mut jute_max_buffer = DEFAULT_JUTE_MAX_BUFFER;
        let mut super_digest = None;
        let mut container_check_interval_ms = DEFAULT_CONTAINER_CHECK_INTERVAL_MS;
        let mut admin_grpc_address = Some(HostPort::new(
            DEFAULT_ADMIN_GRPC_HOST,
            DEFAULT_ADMIN_GRPC_PORT,
        ));
        let mut admin_auth_token_file = None;
        let mut admin_min_voters = None;
        let mut roll_epoch_at_counter = None;
        let mut metrics_http_host = "0.0.0.0".to_string();
        let mut metrics_http_port = None;
        let mut fsync_warning_threshold_ms = DEFAULT_FSYNC_WARNING_THRESHOLD_MS;
        let mut log_format = LogFormat::default();
        let mut log_level = None;
        let mut otel = OtelConfig::default();
        let mut server_entries: Vec<&Entry> = Vec::new();
        let mut hierarchical: Option<&Entry> = None;
        let mut config_version = None;
        let mut ssl: BTreeMap<&str, &Entry> = BTreeMap::new();
        let mut ssl_quorum = false;

        for e in &entries {
            let key = canonical_key(&e.key);
            match key {
                "dataDir" => data_dir = Some(self.dir(e)?),
                "dataLogDir" => data_log_dir = Some(self.dir(e)?),
                "clientPort" => {
                    let p = self.port(e)?;
                    // ZooKeeper reads clientPort=0 as "not set".
                    client_port = (p != 0).then_some(p);
                    client_port_entry = Some(e.line);
                }
                "clientPortAddress" => client_port_address = Some((self.host(e)?, e.line)),
                "secureClientPort" => {
                    let p = self.port(e)?;
                    secure_client_port = (p != 0).then_some(p);
                }
                "secureClientPortAddress" => {
                    secure_client_port_address = Some((self.host(e)?, e.line))
                }
                "tickTime" => {
                    tick_time_ms = self.u32_at_least(e, 1)?;
                    tick_line = Some(e.line);
                }
                "initLimit" => init_limit_ticks = self.u32_at_least(e, 0)?,
                "syncLimit" => sync_limit_ticks = self.u32_at_least(e, 0)?,
                "maxClientCnxns" => max_client_cnxns = self.u32_at_least(e, 0)?,
                "minSessionTimeout" => {
                    // -1 is ZooKeeper's explicit "use the default".
                    let n = self.int(e, -1, i64::from(i32::MAX))?;
                    min_session = u32::try_from(n).ok().map(|n| (n, e.line));
                }
                "maxSessionTimeout" => {
                    let n = self.int(e, -1, i64::from(i32::MAX))?;
                    max_session = u32::try_from(n).ok().map(|n| (n, e.line));
                }
                "electionAlg" => {
                    if e.value != "3" {
                        return Err(self.err(e, "invalid electionAlg value; only 3 is supported"));
                    }
                }
                "peerType" => {
                    let t = learner_type(&e.value).ok_or_else(|| {
                        self.err(e, format!("unrecognised peer type '{}'", e.value))
                    })?;
                    peer_type = Some((t, e.line));
                }
                "standaloneEnabled" => standalone_enabled = self.boolean(e)?,
                "reconfigEnabled" => reconfig_enabled = self.boolean(e)?,
                "multiAddress.enabled" => multi_address_enabled = self.boolean(e)?,
                "dynamicConfigFile" => {
                    if e.value.is_empty() {
                        return Err(self.err(e, "empty file name"));
                    }
                    dynamic_config_file = Some((PathBuf::from(&e.value), e.line));
                }
                "4lw.commands.whitelist" => whitelist = Some(e),
                "readonlymode.enabled" => read_only_mode_enabled = self.boolean(e)?,
                "localSessionsEnabled" => {
                    local_sessions_enabled = self.boolean(e)?;
                    if local_sessions_enabled {
                        self.warn(
                            Some(e.line),
                            "localSessionsEnabled=true: local sessions are not implemented \
                             by Rookery yet; all sessions are global",
                        );
                    }
                }
                "snapCount" => {
                    // ZooKeeper raises anything below 2 to 2 (SyncRequestProcessor).
                    let n = self.int(e, i64::MIN, i64::MAX)?;
                    snap_count = u64::try_from(n.max(2)).unwrap_or(DEFAULT_SNAP_COUNT);
                }
                "autopurge.snapRetainCount" => {
                    let n = self.int(e, i64::from(i32::MIN), i64::from(i32::MAX))?;
                    if n < i64::from(MIN_SNAP_RETAIN_COUNT) {
                        self.warn(
                            Some(e.line),
                            format!(
                                "invalid autopurge.snapRetainCount {n}; using the minimum, \
                                 {MIN_SNAP_RETAIN_COUNT}"
                            ),
                        );
                        snap_retain_count = MIN_SNAP_RETAIN_COUNT;
                    } else {
                        snap_retain_count = u32::try_from(n).unwrap_or(MIN_SNAP_RETAIN_COUNT);
                    }
                }
                "autopurge.purgeInterval" => {
                    // ZooKeeper schedules no purge for any value <= 0.
                    let n = self.int(e, i64::from(i32::MIN), i64::from(i32::MAX))?;
                    purge_interval_hours = u32::try_from(n.max(0)).unwrap_or(0);
                }
                "extendedTypesEnabled" => {
                    extended_types_enabled = self.boolean(e)?;
                    extended_types_line = Some(e.line);
                }
                "jute.maxbuffer" => jute_max_buffer = self.jute_max_buffer(e)?,
                k if SUPER_DIGEST_KEYS.contains(&k) => {
                    match e.value.split_once(':') {
                        Some((user, digest)) if !user.is_empty() && !digest.is_empty() => {}
                        _ => {
                            return Err(self.err(
                                e,
                                "expected user:base64-sha1-digest, as printed by \
                                 DigestAuthenticationProvider.generateDigest",
                            ));
                        }
                    }
                    super_digest = Some(e.value.clone());
                }
                "znode.container.checkIntervalMs" => {
                    let n = self.int(e, 1, i64::from(i32::MAX))?;
                    container_check_interval_ms =
                        u64::try_from(n).unwrap_or(DEFAULT_CONTAINER_CHECK_INTERVAL_MS);
                }
                "rookery.testing.rollEpochAtCounter" => {
                    let n = self.int(e, 2, i64::from(u32::MAX))?;
                    roll_epoch_at_counter = u32::try_from(n).ok();
                }
                "admin.minVoters" => {
                    admin_min_voters = Some(usize::try_from(self.int(e, 1, 255)?).unwrap_or(1));
                }
                "admin.authTokenFile" => {
                    admin_auth_token_file = (!e.value.is_empty()).then(|| PathBuf::from(&e.value));
                }
                "admin.grpcAddress" => {
                    admin_grpc_address = if e.value.is_empty() {
                        None
                    } else {
                        let (host, port) = split_host_port(&e.value).ok_or_else(|| {
                            self.err(e, format!("'{}' is not host:port", e.value))
                        })?;
                        Some(HostPort::new(host, port))
                    };
                }
                "metricsProvider.className" => {
                    if !e.value.ends_with("PrometheusMetricsProvider")
                        && !e.value.ends_with("DefaultMetricsProvider")
                    {
                        self.warn(
                            Some(e.line),
                            format!(
                                "metricsProvider.className {} is a Java class; Rookery \
                                 exports Prometheus metrics when metricsProvider.httpPort is set",
                                e.value
                            ),
                        );
                    }
                }
                "metricsProvider.httpHost" => metrics_http_host = self.host(e)?,
                "metricsProvider.httpPort" => {
                    let p = self.port(e)?;
                    metrics_http_port = (p != 0).then_some(p);
                }
                "forceSync" => {
                    if e.value.eq_ignore_ascii_case("no") {
                        self.warn(
                            Some(e.line),
                            format!(
                                "{}=no is ignored: Rookery always fsyncs the log before it \
                                 acknowledges a write",
                                e.key
                            ),
                        );
                    } else if !e.value.eq_ignore_ascii_case("yes") {
                        return Err(self.err(
                            e,
                            format!("invalid option '{}'; choose 'yes' or 'no'", e.value),
                        ));
                    }
                }
                "fsync.warningthresholdms" => {
                    let n = self.int(e, 0, i64::from(i32::MAX))?;
                    fsync_warning_threshold_ms =
                        u64::try_from(n).unwrap_or(DEFAULT_FSYNC_WARNING_THRESHOLD_MS);
                }
                "log.format" => {
                    log_format = LogFormat::from_name(&e.value).ok_or_else(|| {
                        self.err(
                            e,
                            format!("invalid option '{}'; choose 'human' or 'json'", e.value),
                        )
                    })?;
                }
                "log.level" => log_level = self.log_level(e)?,
                "otel.exporter.otlp.endpoint" => otel.endpoint = self.otlp_endpoint(e)?,
                "otel.serviceName" | "otel.service.name" if !e.value.is_empty() => {
                    otel.service_name = e.value.clone();
                }
                "otel.serviceName" | "otel.service.name" => {}
                "otel.bsp.schedule.delay" => {
                    otel.schedule_delay_ms = Some(self.int(e, 1, 3_600_000)? as u64);
                }
                "version" => {
                    let v = u64::from_str_radix(&e.value, 16)
                        .map_err(|_| self.err(e, format!("'{}' is not a hex version", e.value)))?;
                    config_version = Some(v);
                }
                "sslQuorum" => ssl_quorum = self.boolean(e)?,
                k if k.starts_with("ssl.") || k.starts_with("admin.ssl.") => {
                    ssl.insert(k, e);
                }
                k if k.starts_with("server.") => server_entries.push(e),
                k if k.starts_with("group.") || k.starts_with("weight.") => {
                    hierarchical.get_or_insert(e);
                }
                k if IGNORED_KEYS.contains(&k) || k.starts_with("authProvider.") => {
                    self.warn(
                        Some(e.line),
                        format!(
                            "{} is a ZooKeeper setting Rookery does not use; ignored",
                            e.key
                        ),
                    );
                }
                _ => self.warn(Some(e.line), format!("unknown key {}; ignored", e.key)),
            }
        }

        if let Some(e) = hierarchical {
            return Err(self.err(
                e,
                "hierarchical quorums (group./weight.) are not supported; use majority quorums",
            ));
        }

        let Some(data_dir) = data_dir else {
            return Err(self.err_at(None, "dataDir is not set"));
        };
        let data_log_dir = data_log_dir.unwrap_or_else(|| data_dir.clone());

        if client_port.is_none() {
            if let Some((_, line)) = &client_port_address {
                return Err(self.err_at(
                    Some(*line),
                    "clientPortAddress is set but clientPort is not set",
                ));
            }
        }
        if secure_client_port.is_none() {
            if let Some((_, line)) = &secure_client_port_address {
                return Err(self.err_at(
                    Some(*line),
                    "secureClientPortAddress is set but secureClientPort is not set",
                ));
            }
        }

        let client_tls = match secure_client_port {
            Some(_) => self.tls_settings("ssl.", &mut ssl, true)?,
            None => None,
        };
        let quorum_tls = match ssl_quorum {
            true => self.tls_settings("ssl.quorum.", &mut ssl, true)?,
            false => None,
        };
        let admin_tls = self.tls_settings("admin.ssl.", &mut ssl, false)?;
        for e in ssl.values() {
            self.warn(
                Some(e.line),
                format!(
                    "{} is not used: TLS is on only with secureClientPort (ssl.*), \
                     sslQuorum=true (ssl.quorum.*) or admin.ssl.keyStore.location; ignored",
                    e.key
                ),
            );
        }

        let default_min = tick_time_ms.saturating_mul(2);
        let default_max = tick_time_ms.saturating_mul(20);
        let min_session_timeout_ms = min_session.map_or(default_min, |(n, _)| n);
        let max_session_timeout_ms = max_session.map_or(default_max, |(n, _)| n);
        if min_session_timeout_ms > max_session_timeout_ms {
            let line = min_session
                .map(|(_, l)| l)
                .or(max_session.map(|(_, l)| l))
                .or(tick_line);
            return Err(self.err_at(
                line,
                format!(
                    "minSessionTimeout ({min_session_timeout_ms} ms) must not be larger than \
                     maxSessionTimeout ({max_session_timeout_ms} ms)"
                ),
            ));
        }

        let four_letter_words = self.whitelist(whitelist, read_only_mode_enabled);

        // Server lines: from zoo.cfg, or from the dynamic file when one is named.
        let mut servers = BTreeMap::new();
        match &dynamic_config_file {
            Some((dyn_path, _)) => {
                if let Some(e) = server_entries.first() {
                    return Err(self.err(e, "must be in a separate dynamic config file"));
                }
                servers = self.dynamic_servers(dyn_path, multi_address_enabled, read_file)?;
                config_version = version_from_file_name(dyn_path);
            }
            None => {
                for e in server_entries {
                    let s = parse_server(&e.key, &e.value, multi_address_enabled)
                        .map_err(|reason| self.err(e, reason))?;
                    let s = QuorumServer {
                        line: e.line,
                        source: self.path.clone(),
                        ..s
                    };
                    servers.insert(s.id, s);
                }
            }
        }

        self.check_membership(&servers, standalone_enabled)?;
        let mode = mode_of(&servers, standalone_enabled);

        let my_id = self.read_my_id(&data_dir, read_file)?;

        // This server's own line decides its client address and its type.
        let mut peer_type_resolved = peer_type.map_or(LearnerType::Participant, |(t, _)| t);
        let mut client_port_address = client_port_address.map(|(h, _)| h);
        if let Some(own) = my_id.and_then(|id| servers.get(&id)) {
            if let Some(addr) = &own.client_address {
                if let Some(port) = client_port {
                    let static_addr = HostPort::new(
                        client_port_address
                            .clone()
                            .unwrap_or_else(|| "0.0.0.0".to_string()),
                        port,
                    );
                    let conflict = if static_addr.is_wildcard() {
                        static_addr.port != addr.port
                    } else {
                        static_addr != *addr
                    };
                    if conflict {
                        return Err(self.err_at(
                            client_port_entry,
                            format!(
                                "client address for this server (id = {}) is {static_addr} \
                                 here but {addr} in its server.{} line",
                                own.id, own.id
                            ),
                        ));
                    }
                }
                client_port = Some(addr.port);
                client_port_address = if addr.is_wildcard() {
                    client_port_address
                } else {
                    Some(addr.host.clone())
                };
            }
            if peer_type_resolved != own.learner_type {
                if let Some((_, line)) = peer_type {
                    self.warn(
                        Some(line),
                        format!(
                            "peerType {peer_type_resolved} does not match server.{} \
                             ({}); using the server line",
                            own.id, own.learner_type
                        ),
                    );
                }
                peer_type_resolved = own.learner_type;
            }
        }

        if mode == ServerMode::Ensemble {
            if init_limit_ticks == 0 {
                return Err(self.err_at(None, "initLimit is not set"));
            }
            if sync_limit_ticks == 0 {
                return Err(self.err_at(None, "syncLimit is not set"));
            }
            let myid_path = data_dir.join("myid");
            let Some(id) = my_id else {
                return Err(ConfigError::File {
                    path: myid_path,
                    reason: "myid file is missing; an ensemble member needs it \
                             (write this server's N from its server.N line)"
                        .to_string(),
                });
            };
            if !servers.contains_key(&id) {
                let ids: Vec<String> = servers.keys().map(u64::to_string).collect();
                return Err(ConfigError::File {
                    path: myid_path,
                    reason: format!(
                        "myid is {id} but {} has no server.{id} line (it has server.{})",
                        self.path.display(),
                        ids.join(", server.")
                    ),
                });
            }
            if client_port.is_none() && secure_client_port.is_none() {
                self.warn(
                    None,
                    "no clientPort and no client port in this server's line: it will serve \
                     no clients",
                );
            }
        } else if client_port.is_none() && secure_client_port.is_none() {
            return Err(self.err_at(None, "either clientPort or secureClientPort must be set"));
        }

        if extended_types_enabled {
            if let Some(id) = my_id.filter(|&id| id > 254) {
                return Err(self.err_at(
                    extended_types_line,
                    format!(
                        "server id {id} must be less than 255 when extendedTypesEnabled is true"
                    ),
                ));
            }
        }

        Ok(ServerConfig {
            config_path: self.path.clone(),
            tick_time_ms,
            init_limit_ticks,
            sync_limit_ticks,
            data_dir,
            data_log_dir,
            client_port,
            client_port_address,
            secure_client_port,
            secure_client_port_address: secure_client_port_address.map(|(h, _)| h),
            client_tls,
            quorum_tls,
            admin_tls,
            max_client_cnxns,
            min_session_timeout_ms,
            max_session_timeout_ms,
            servers,
            my_id,
            peer_type: peer_type_resolved,
            standalone_enabled,
            admin_min_voters: admin_min_voters.unwrap_or(if standalone_enabled { 2 } else { 1 }),
            reconfig_enabled,
            multi_address_enabled,
            dynamic_config_file: dynamic_config_file.map(|(p, _)| p),
            config_version,
            four_letter_words,
            read_only_mode_enabled,
            local_sessions_enabled,
            snap_retain_count,
            snap_count,
            purge_interval_hours,
            extended_types_enabled,
            jute_max_buffer,
            super_digest,
            container_check_interval_ms,
            admin_grpc_address,
            admin_auth_token_file,
            roll_epoch_at_counter,
            metrics_http_host,
            metrics_http_port,
            fsync_warning_threshold_ms,
            log_format,
            log_level,
            otel,
            warnings: self.warnings,
        })
    }

    /// Trims like ZooKeeper and keeps the last of duplicate keys, with a warning.
    fn dedupe(&mut self, raw: Vec<RawEntry>) -> Vec<Entry> {
        let mut by_key: BTreeMap<String, Entry> = BTreeMap::new();
        for r in raw {
            let e = Entry {
                key: r.key.trim().to_string(),
                value: r.value.trim().to_string(),
                line: r.line,
            };
            if let Some(old) = by_key.get(&e.key) {
                let msg = format!(
                    "{} is set again (first on line {}); the later value wins",
                    e.key, old.line
                );
                self.warn(Some(e.line), msg);
            }
            by_key.insert(e.key.clone(), e);
        }
        let mut entries: Vec<Entry> = by_key.into_values().collect();
        entries.sort_by_key(|e| e.line);
        entries
    }

    fn dir(&mut self, e: &Entry) -> Result<PathBuf, ConfigError> {
        if e.value.is_empty() {
            return Err(self.err(e, "empty directory name"));
        }
        let p = PathBuf::from(&e.value);
        if p.is_relative() {
            self.warn(
                Some(e.line),
                format!(
                    "{} is relative ({}); it is resolved against the working directory",
                    e.key, e.value
                ),
            );
        }
        Ok(p)
    }

    /// Decimal or `0x` hex; Java would read a leading 0 as octal, so that is refused.
    fn jute_max_buffer(&self, e: &Entry) -> Result<u32, ConfigError> {
        let v = e.value.as_str();
        let parsed = if let Some(hex) = v
            .strip_prefix("0x")
            .or_else(|| v.strip_prefix("0X"))
            .or_else(|| v.strip_prefix('#'))
        {
            u32::from_str_radix(hex, 16).ok()
        } else if v.len() > 1 && v.starts_with('0') {
            return Err(self.err(
                e,
                format!("'{v}' has a leading 0 (octal to Java); write it in decimal or 0x hex"),
            ));
        } else {
            v.parse::<u32>().ok()
        };
        match parsed {
            Some(n) if n > 0 && n <= i32::MAX as u32 => Ok(n),
            Some(n) => Err(self.err(e, format!("{n} is out of range 1..={}", i32::MAX))),
            None => Err(self.err(e, format!("'{v}' is not a decimal or 0x hex number"))),
        }
    }

    fn whitelist(&mut self, entry: Option<&Entry>, read_only: bool) -> FourLetterWhitelist {
        let mut set = BTreeSet::new();
        if let Some(e) = entry {
            for word in e.value.split(',').map(str::trim) {
                if word == "*" {
                    return FourLetterWhitelist::All;
                }
                if word.is_empty() {
                    continue;
                }
                if !FOUR_LETTER_WORDS.contains(&word) {
                    self.warn(
                        Some(e.line),
                        format!("unknown four-letter word '{word}' in whitelist"),
                    );
                }
                set.insert(word.to_string());
            }
        }
        if read_only {
            set.insert("isro".to_string());
        }
        set.insert("srvr".to_string());
        FourLetterWhitelist::Only(set)
    }

    /// ZooKeeper's checks in `parseDynamicConfig`.
    fn check_membership(
        &mut self,
        servers: &BTreeMap<u64, QuorumServer>,
        standalone_enabled: bool,
    ) -> Result<(), ConfigError> {
        let voters = servers
            .values()
            .filter(|s| s.learner_type == LearnerType::Participant)
            .count();
        let first_observer = servers
            .values()
            .find(|s| s.learner_type == LearnerType::Observer);
        if voters == 0 {
            if !standalone_enabled {
                return Err(self.err_at(
                    None,
                    "standaloneEnabled=false needs at least one participant server line",
                ));
            }
            if let Some(s) = first_observer {
                return Err(server_error(
                    s,
                    "observers without participants is an invalid configuration",
                ));
            }
        } else if voters == 1 && standalone_enabled {
            if let Some(s) = first_observer {
                return Err(server_error(
                    s,
                    "observers without a quorum is an invalid configuration",
                ));
            }
            let line = servers.values().next().map(|s| s.line);
            self.warn(
                line,
                "only one server line: running standalone (set standaloneEnabled=false to \
                 run a one-server ensemble)",
            );
        } else if voters <= 2 {
            self.warn(
                None,
                "no server failure will be tolerated; you need at least 3 servers",
            );
        } else if voters % 2 == 0 {
            self.warn(
                None,
                "non-optimal configuration; consider an odd number of servers",
            );
        }
        Ok(())
    }

    fn dynamic_servers(
        &mut self,
        dyn_path: &Path,
        multi_address_enabled: bool,
        read_file: &ReadFile<'_>,
    ) -> Result<BTreeMap<u64, QuorumServer>, ConfigError> {
        let text = read_file(dyn_path)?.ok_or_else(|| ConfigError::File {
            path: dyn_path.to_path_buf(),
            reason: format!(
                "dynamic config file named by {} does not exist",
                self.path.display()
            ),
        })?;
        let line_err = |line: usize, reason: String| ConfigError::Line {
            path: dyn_path.to_path_buf(),
            line,
            reason,
        };
        let raw = properties::parse(&text).map_err(|e| line_err(e.line, e.reason))?;
        let mut servers = BTreeMap::new();
        for r in raw {
            let key = r.key.trim();
            let value = r.value.trim();
            if key == "version" {
                return Err(line_err(
                    r.line,
                    "dynamic file shouldn't have version inside".into(),
                ));
            } else if key.starts_with("server.") {
                let s = parse_server(key, value, multi_address_enabled)
                    .map_err(|reason| line_err(r.line, format!("{key}: {reason}")))?;
                servers.insert(
                    s.id,
                    QuorumServer {
                        line: r.line,
                        source: dyn_path.to_path_buf(),
                        ..s
                    },
                );
            } else if key.starts_with("group.") || key.starts_with("weight.") {
                return Err(line_err(
                    r.line,
                    format!("{key}: hierarchical quorums are not supported"),
                ));
            } else {
                return Err(line_err(r.line, format!("unrecognised parameter: {key}")));
            }
        }
        Ok(servers)
    }

    /// ZooKeeper's `setupMyId`: first line of `dataDir/myid`, if the file exists.
    fn read_my_id(
        &self,
        data_dir: &Path,
        read_file: &ReadFile<'_>,
    ) -> Result<Option<u64>, ConfigError> {
        let path = data_dir.join("myid");
        let Some(text) = read_file(&path)? else {
            return Ok(None);
        };
        let first = text.lines().next().unwrap_or("").trim();
        first
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ConfigError::File {
                path,
                reason: format!("server id '{first}' is not a number"),
            })
    }
}

fn server_error(s: &QuorumServer, reason: &str) -> ConfigError {
    ConfigError::Line {
        path: s.source.clone(),
        line: s.line,
        reason: format!("server.{}: {reason}", s.id),
    }
}

/// `zookeeper.`-prefixed spellings of our keys mean the same key (ZooKeeper itself turns
/// unknown zoo.cfg keys into `zookeeper.<key>` system properties).
fn canonical_key(key: &str) -> &str {
    if SUPER_DIGEST_KEYS.contains(&key) {
        return key;
    }
    key.strip_prefix("zookeeper.").unwrap_or(key)
}

/// ZooKeeper's `getVersionFromFilename`: the hex number after the last `.`, if any.
fn version_from_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let (_, suffix) = name.rsplit_once('.')?;
    u64::from_str_radix(suffix, 16).ok()
}

fn learner_type(s: &str) -> Option<LearnerType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "participant" => Some(LearnerType::Participant),
        "observer" => Some(LearnerType::Observer),
        _ => None,
    }
}

fn strip_brackets(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s)
}

/// `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let parts = host_and_parts(s).ok()?;
    match parts.as_slice() {
        [host, port] if !host.is_empty() => Some((host.clone(), port.parse().ok()?)),
        _ => None,
    }
}

/// ZooKeeper's `ConfigUtils.getHostAndPort`: split on `:`, keeping a bracketed IPv6
/// literal whole as the first part.
fn host_and_parts(s: &str) -> Result<Vec<String>, String> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| format!("{s} starts with '[' but has no matching ']'"))?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let Some(ports) = after.strip_prefix(':') else {
            return Err(format!("{s} has no ':' and port after ']'"));
        };
        if ports.is_empty() {
            return Err(format!("{s} doesn't have a port after colon"));
        }
        let mut parts = vec![host.to_string()];
        parts.extend(ports.split(':').map(str::to_string));
        Ok(parts)
    } else {
        Ok(s.split(':').map(str::to_string).collect())
    }
}

const WRONG_FORMAT: &str = "does not have the form host:quorumPort:electionPort[:participant|observer][;[clientAddress:]clientPort]";

fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("{what} '{s}' is not a port number (1..=65535)")),
    }
}

/// `server.N=host:quorumPort:electionPort[:type][|...][;[clientAddress:]clientPort]`.
pub(crate) fn parse_server(
    key: &str,
    value: &str,
    multi_address_enabled: bool,
) -> Result<QuorumServer, String> {
    let id_text = &key["server.".len()..];
    let id: u64 = id_text
        .parse()
        .map_err(|_| format!("server id '{id_text}' is not a non-negative whole number"))?;
    let halves: Vec<&str> = value.split(';').collect();
    if halves.len() > 2 || value.is_empty() {
        return Err(format!("'{value}' {WRONG_FORMAT}"));
    }
    let client_address = match halves.get(1) {
        None => None,
        Some(client) => {
            let parts = host_and_parts(client.trim())?;
            match parts.as_slice() {
                [port] => Some(HostPort::new("0.0.0.0", parse_port(port, "client port")?)),
                [host, port] if !host.is_empty() => Some(HostPort::new(
                    host.clone(),
                    parse_port(port, "client port")?,
                )),
                _ => return Err(format!("'{value}' {WRONG_FORMAT}")),
            }
        }
    };
    let mut addresses = Vec::new();
    let mut learner: Option<LearnerType> = None;
    let alternatives: Vec<&str> = halves[0].split('|').collect();
    if alternatives.len() > 1 && !multi_address_enabled {
        return Err(format!(
            "multiple addresses for server {id} but multiAddress.enabled is not true"
        ));
    }
    for alt in alternatives {
        let parts = host_and_parts(alt.trim())?;
        if parts.len() < 3 || parts.len() > 4 || parts[0].is_empty() {
            return Err(format!("'{value}' {WRONG_FORMAT}"));
        }
        let quorum_port = parse_port(&parts[1], "quorum port")?;
        let election_port = parse_port(&parts[2], "election port")?;
        if quorum_port == election_port {
            return Err(format!(
                "quorum and election port must be different (both {quorum_port})"
            ));
        }
        if let Some(t) = parts.get(3) {
            let t = learner_type(t).ok_or_else(|| format!("unrecognised peer type '{t}'"))?;
            if learner.is_some_and(|l| l != t) {
                return Err("multiple addresses should have the same role".to_string());
            }
            learner = Some(t);
        }
        addresses.push(PeerAddress {
            host: parts[0].clone(),
            quorum_port,
            election_port,
        });
    }
    Ok(QuorumServer {
        id,
        addresses,
        learner_type: learner.unwrap_or(LearnerType::Participant),
        client_address,
        line: 0,
        source: PathBuf::new(),
    })
}

#[cfg(test)]
mod tests;
