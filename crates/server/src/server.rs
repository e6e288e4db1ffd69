//! Starting a server from its configuration: storage, the core thread, the client
//! listener and the tick that drives expiry.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rookery_storage::SledStorage;
use rookery_tree::TreeConfig;
use rookery_tree::acl::AuthSchemes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::{ServerConfig, ServerMode};
use crate::conn::{self, ConnLimits};
use crate::core::{Core, CoreCmd, CoreConfig, CoreError, CoreHandle, MemberConfig};
use crate::membership::Ensemble;
use crate::quorum::{self, TransportConfig};
use crate::words::ConfigDescription;
use rookery_zab::election::ElectionTimeouts;
use rookery_zab::peer::{PeerConfig, PeerTimeouts};
use rookery_zab::quorum::{QuorumMaj, ServerId};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "no client port configured (clientPort, secureClientPort or a ;clientPort suffix on \
         this server's line)"
    )]
    NoClientPort,
    #[error("this server's id {0} has no server.{0} line in the configuration (myid)")]
    NotAMember(u64),
    #[error("invalid membership: {0}")]
    Membership(#[from] rookery_zab::quorum::MembershipError),
    #[error("cannot resolve the quorum address {addr} of server.{id}")]
    Resolve { id: u64, addr: String },
    #[error("myid {0} does not fit in a byte (session ids carry it in their top byte)")]
    ServerIdTooLarge(u64),
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open storage in {path}: {source}")]
    Storage {
        path: String,
        source: rookery_zab::storage::StorageError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("the {0} thread panicked")]
    ThreadPanicked(String),
    #[error(transparent)]
    Admin(#[from] rookery_admin::ServeError),
    #[error("cannot read admin.authTokenFile {path}: {source}")]
    AdminToken {
        path: String,
        source: std::io::Error,
    },
    #[error("admin.authTokenFile {0} is empty")]
    AdminTokenEmpty(String),
    #[cfg(feature = "inject-bugs")]
    #[error(transparent)]
    InjectBug(#[from] crate::inject::UnknownBug),
}

/// A server that is accepting clients.
#[derive(Debug)]
pub struct RunningServer {
    /// `clientPort`'s address and listener; none when only `secureClientPort` is set.
    plain: Option<(SocketAddr, JoinHandle<()>)>,
    core: std::thread::JoinHandle<Result<(), CoreError>>,
    /// `secureClientPort`'s address and listener.
    secure: Option<(SocketAddr, JoinHandle<()>)>,
    tick: JoinHandle<()>,
    transport: Option<crate::quorum::PeerSender>,
    handle: CoreHandle,
    admin: Option<AdminTask>,
    metrics: Option<crate::metrics::http::MetricsEndpoint>,
}

/// The gRPC admin API's task and the means to stop it.
#[derive(Debug)]
struct AdminTask {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Where plain clients connect (`clientPort`; the bound address, useful with port 0
    /// in tests). None for a secure-only server: TLS clients use
    /// [`RunningServer::secure_client_addr`].
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().map(|p| p.0)
    }

    /// Where TLS clients connect (`secureClientPort`), if it is on.
    pub fn secure_client_addr(&self) -> Option<SocketAddr> {
        self.secure.as_ref().map(|s| s.0)
    }

    /// Where the gRPC admin API listens, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// Where `/metrics` is served (`metricsProvider.httpPort`), if it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// Stops accepting and waits for the core to finish what it has; returns the
    /// core's error if it stopped on its own (storage failure).
    pub async fn shutdown(self) -> Result<(), ServerError> {
        if let Some(a) = self.admin {
            let _ = a.stop.send(());
            let _ = a.task.await;
        }
        if let Some(m) = &self.metrics {
            m.task.abort();
        }
        for (_, t) in self.plain.iter().chain(&self.secure) {
            t.abort();
        }
        self.tick.abort();
        if let Some(t) = &self.transport {
            t.shutdown();
        }
        // Connections and the transport hold handles too: tell the core to stop.
        let _ = self.handle.send(CoreCmd::Shutdown);
        for (_, t) in self.plain.into_iter().chain(self.secure) {
            let _ = t.await;
        }
        let _ = self.tick.await;
        join_core(self.core).await
    }

    /// Resolves when the core stops by itself, which only a fatal error makes it do.
    pub async fn failed(&mut self) -> ServerError {
        loop {
            if self.core.is_finished() {
                return ServerError::ThreadPanicked(CORE_THREAD.into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The core thread's name, as `top -H` and a panic message show it.
const CORE_THREAD: &str = "rookery-core";

async fn join_core(
    core: std::thread::JoinHandle<Result<(), CoreError>>,
) -> Result<(), ServerError> {
    match tokio::task::spawn_blocking(move || core.join()).await {
        Ok(Ok(r)) => Ok(r?),
        _ => Err(ServerError::ThreadPanicked(CORE_THREAD.into())),
    }
}

/// Runs `f` on a thread that ends with it. For recovery: it frees much of what it
/// allocated (sled's reads, a replay's decoded entries), and the allocator hands a
/// thread's freed pages back when the thread ends, where a thread of tokio's blocking
/// pool idles on for seconds.
async fn on_own_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServerError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(ServerError::Thread)?;
    rx.await
        .map_err(|_| ServerError::ThreadPanicked(name.to_owned()))
}

/// Where a server keeps its sled database: a versioned directory in dataLogDir.
pub(crate) fn store_dir(cfg: &ServerConfig) -> std::path::PathBuf {
    cfg.data_log_dir.join("rookery-v1")
}

/// Opens storage, recovers the tree and starts listening for clients.
pub async fn start(cfg: &ServerConfig) -> Result<RunningServer, ServerError> {
    #[cfg(feature = "inject-bugs")]
    let bugs = crate::inject::InjectedBugs::from_env()?;
    #[cfg(not(feature = "inject-bugs"))]
    crate::inject::warn_if_requested();
    let standalone = cfg.mode() == ServerMode::Standalone;
    // Either port or both; with only `secureClientPort` no plain listener opens.
    let listen = cfg.client_listen_address();
    if listen.is_none() && cfg.secure_client_port.is_none() {
        return Err(ServerError::NoClientPort);
    }
    let server_id = cfg.my_id.unwrap_or(0);
    let server_id =
        u8::try_from(server_id).map_err(|_| ServerError::ServerIdTooLarge(server_id))?;

    let store_dir = store_dir(cfg);
    std::fs::create_dir_all(&store_dir).map_err(|source| ServerError::DataDir {
        path: store_dir.display().to_string(),
        source,
    })?;
    let storage = {
        let dir = store_dir.clone();
        on_own_thread("rookery-open", move || SledStorage::open(dir))
            .await?
            .map_err(|source| ServerError::Storage {
                path: store_dir.display().to_string(),
                source,
            })?
    };

    let tick_ms = i64::from(cfg.tick_time_ms);
    let period_ms = peer_tick_ms(tick_ms);
    let persisted = {
        use rookery_zab::storage::MetaStore as _;
        storage.config().map_err(|source| ServerError::Storage {
            path: cfg.data_dir.display().to_string(),
            source,
        })?
    };
    let membership = membership(cfg, standalone, persisted.as_deref())?;
    let peer_cfg = PeerConfig {
        self_id: ServerId(u64::from(server_id)),
        quorum: membership.quorum.clone(),
        config_in_entry: crate::membership::config_in_entry,
        timeouts: peer_timeouts(cfg, period_ms),
        bugs: Default::default(),
        roll_epoch_at_counter: cfg
            .roll_epoch_at_counter
            .unwrap_or(rookery_zab::peer::DEFAULT_ROLL_EPOCH_AT_COUNTER),
    };
    let core_cfg = CoreConfig {
        server_id,
        tick_ms,
        min_session_timeout_ms: i32::try_from(cfg.min_session_timeout_ms).unwrap_or(i32::MAX),
        max_session_timeout_ms: i32::try_from(cfg.max_session_timeout_ms).unwrap_or(i32::MAX),
        tree: TreeConfig {
            extended_types: cfg.extended_types_enabled,
            auth_schemes: AuthSchemes::default(),
            ..TreeConfig::default()
        },
        super_digest: cfg.super_digest.clone(),
        four_letter_words: cfg.four_letter_words.clone(),
        container_check_interval_ms: i64::try_from(cfg.container_check_interval_ms)
            .unwrap_or(i64::MAX),
        snap_count: cfg.snap_count,
        fsync_warning: std::time::Duration::from_millis(cfg.fsync_warning_threshold_ms),
        snap_retain_count: usize::try_from(cfg.snap_retain_count).unwrap_or(3),
        purge: cfg.purge_interval_hours > 0,
        describe: ConfigDescription {
            client_port: listen.as_ref().map_or(-1, |l| i32::from(l.port)),
            secure_client_port: cfg.secure_client_port.map_or(-1, i32::from),
            data_dir: cfg.data_dir.display().to_string(),
            data_log_dir: cfg.data_log_dir.display().to_string(),
            tick_ms,
            max_client_cnxns: cfg.max_client_cnxns,
            min_session_timeout_ms: i32::try_from(cfg.min_session_timeout_ms).unwrap_or(i32::MAX),
            max_session_timeout_ms: i32::try_from(cfg.max_session_timeout_ms).unwrap_or(i32::MAX),
            server_id: i64::from(server_id),
        },
        peer: peer_cfg,
        standalone,
        touch_interval_ms: (tick_ms / 2).max(1),
        read_only_mode: !standalone && cfg.read_only_mode_enabled && cfg.local_sessions_enabled,
        members: match &membership.ensemble {
            Some(e) => e.member_configs(),
            None => standalone_member(cfg, listen.as_ref()),
        },
        local_peers: membership
            .transport
            .as_ref()
            .map(|t| t.peers.clone())
            .unwrap_or_default(),
        ensemble: membership.ensemble.clone(),
        reconfig_enabled: cfg.reconfig_enabled,
        min_voters: cfg.admin_min_voters,
        #[cfg(feature = "inject-bugs")]
        bugs: Default::default(),
    };
    #[cfg(feature = "inject-bugs")]
    let core_cfg = bugs.apply(core_cfg);
    // Checked before anything starts: an admin API open to the network without
    // authentication is a configuration error, not a warning.
    let admin_access = admin_access(cfg)?;
    let admin_addr = match &cfg.admin_grpc_address {
        Some(a) => resolve_admin(a).await,
        None => None,
    };
    if let Some(addr) = admin_addr {
        rookery_admin::check_access(addr, &admin_access)?;
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let handle = CoreHandle::new(tx);
    let transport = match &membership.transport {
        None => None,
        Some(t) => {
            let (in_tx, mut in_rx) = mpsc::unbounded_channel();
            let (lost_tx, mut lost_rx) = mpsc::unbounded_channel();
            let mut t = t.clone();
            t.lost = Some(lost_tx);
            if let Some(settings) = &cfg.quorum_tls {
                t.tls = Some(quorum::QuorumTls {
                    accept: crate::tls::server_tls(settings.clone(), &[])?,
                    dial: crate::tls::client_tls(settings.clone())?,
                });
                info!("quorum links use TLS (sslQuorum)");
            }
            let sender =
                quorum::start(t.clone(), in_tx)
                    .await
                    .map_err(|source| ServerError::Bind {
                        addr: t.listen.to_string(),
                        source,
                    })?;
            let to_core = handle.clone();
            tokio::spawn(async move {
                loop {
                    // Messages first: a peer's last frames (the COMMIT of this server's
                    // own removal, say) are queued before its connection is reported
                    // lost, and must reach the core before the loss does.
                    let cmd = tokio::select! {
                        biased;
                        m = in_rx.recv() => match m {
                            Some((from, msg)) => CoreCmd::Peer { from, msg },
                            None => return,
                        },
                        l = lost_rx.recv() => match l {
                            Some(from) => CoreCmd::PeerLost { from },
                            None => return,
                        },
                    };
                    if to_core.send(cmd).is_err() {
                        return;
                    }
                }
            });
            info!(quorum = %t.listen, peers = t.peers.len(), ensemble = %t.ensemble_id, "quorum transport listening");
            Some(sender)
        }
    };
    let core_handle = handle.clone();
    let core_transport = transport.clone();
    let core = on_own_thread("rookery-restore", move || {
        Core::open(core_cfg, storage, core_transport, Some(core_handle))
    })
    .await??;

    let listener = match &listen {
        Some(l) => Some(bind_clients(&format!("{}:{}", l.host, l.port)).await?),
        None => None,
    };

    // As with ZooKeeper's metrics provider, a port it cannot bind stops the start-up:
    // the operator asked for metrics, and a server silently without them is worse.
    let metrics_listener = match cfg.metrics_http_port {
        Some(port) => {
            let host = &cfg.metrics_http_host;
            let l = crate::metrics::http::bind(host, port)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: format!("{host}:{port} (metricsProvider.httpPort)"),
                    source,
                })?;
            Some(l)
        }
        None => None,
    };

    let core = std::thread::Builder::new()
        .name(CORE_THREAD.into())
        .spawn(move || core.run(rx))
        .map_err(ServerError::Thread)?;

    let tick = {
        let handle = handle.clone();
        let period = Duration::from_millis(u64::try_from(period_ms).unwrap_or(100));
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            loop {
                every.tick().await;
                if handle.send(CoreCmd::Tick).is_err() {
                    return;
                }
            }
        })
    };

    let limits = Arc::new(ConnLimits {
        max_frame: usize::try_from(cfg.jute_max_buffer).unwrap_or(usize::MAX),
        handshake_timeout: Duration::from_millis(u64::from(
            cfg.max_session_timeout_ms.max(cfg.tick_time_ms),
        )),
    });
    let metrics = match metrics_listener {
        Some(l) => {
            let m = crate::metrics::http::serve(l, handle.clone()).map_err(|source| {
                ServerError::Bind {
                    addr: "metricsProvider.httpPort".into(),
                    source,
                }
            })?;
            info!(addr = %m.addr, "serving Prometheus metrics at /metrics");
            Some(m)
        }
        None => None,
    };
    let max_per_ip = cfg.max_client_cnxns;
    let per_ip: Arc<Mutex<BTreeMap<IpAddr, u32>>> = Arc::default();
    let next_conn = Arc::new(AtomicU64::new(1));
    let acceptor = |tls| Acceptor {
        core: handle.clone(),
        limits: limits.clone(),
        max_per_ip,
        per_ip: per_ip.clone(),
        next_conn: next_conn.clone(),
        tls,
    };
    let plain = listener.map(|(addr, l)| (addr, tokio::spawn(acceptor(None).run(l))));
    let secure = match (cfg.secure_client_port, &cfg.client_tls) {
        (Some(port), Some(settings)) => {
            let tls = crate::tls::server_tls(settings.clone(), &[])?;
            let host = cfg
                .secure_client_port_address
                .clone()
                .unwrap_or_else(|| "0.0.0.0".to_owned());
            let (addr, l) =
                bind_clients(&crate::config::HostPort::new(host, port).to_string()).await?;
            Some((addr, tokio::spawn(acceptor(Some(tls)).run(l))))
        }
        _ => None,
    };
    let admin = match admin_addr {
        Some(addr) => start_admin(addr, admin_access, handle.clone(), u64::from(server_id)).await?,
        None => None,
    };
    let client_addr = plain.as_ref().map(|p| p.0);
    let secure_client_addr = secure.as_ref().map(|s| s.0);
    info!(
        client_addr = %client_addr.map_or_else(|| "none (no clientPort)".to_owned(), |a| a.to_string()),
        secure_client_addr = %secure_client_addr.map_or_else(|| "none (no secureClientPort)".to_owned(), |a| a.to_string()),
        server_id,
        mode = if standalone { "standalone" } else { "ensemble" },
        "listening for clients"
    );
    Ok(RunningServer {
        plain,
        core,
        secure,
        tick,
        transport,
        handle,
        admin,
        metrics,
    })
}

/// The bearer token from `admin.authTokenFile`, if configured.
fn admin_access(cfg: &ServerConfig) -> Result<rookery_admin::Access, ServerError> {
    let tls = match &cfg.admin_tls {
        None => None,
        Some(settings) => Some(rookery_admin::ServerTls {
            // gRPC clients insist on HTTP/2 being agreed in the handshake.
            config: crate::tls::server_tls(settings.clone(), &[b"h2"])?,
            clients_authenticated: settings.client_auth == crate::tls::ClientAuth::Need,
        }),
    };
    let Some(path) = &cfg.admin_auth_token_file else {
        return Ok(rookery_admin::Access {
            bearer_token: None,
            tls,
        });
    };
    let text = std::fs::read_to_string(path).map_err(|source| ServerError::AdminToken {
        path: path.display().to_string(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ServerError::AdminTokenEmpty(path.display().to_string()));
    }
    Ok(rookery_admin::Access {
        bearer_token: Some(token.to_owned()),
        tls,
    })
}

/// Starts the gRPC admin API. Like ZooKeeper's AdminServer, a port it cannot bind
/// is logged and the server runs on without it: clients matter more than the admin
/// plane. An unauthenticated non-loopback address was refused before start-up.
async fn start_admin(
    addr: SocketAddr,
    access: rookery_admin::Access,
    core: CoreHandle,
    server_id: u64,
) -> Result<Option<AdminTask>, ServerError> {
    let listener = match rookery_admin::bind(addr, &access).await {
        Ok(l) => l,
        Err(e @ rookery_admin::ServeError::Bind { .. }) => {
            error!(error = %e, "admin API not started");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let addr = listener.local_addr().unwrap_or(addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let backend = Arc::new(crate::core::AdminBackend::new(core, server_id));
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = rookery_admin::serve(listener, backend, access, shutdown).await {
            error!(error = %e, "admin API stopped");
        }
    });
    Ok(Some(AdminTask { addr, stop, task }))
}

/// Where the admin API will listen; `None` (logged) if the name does not resolve.
async fn resolve_admin(at: &crate::config::HostPort) -> Option<SocketAddr> {
    let text = at.to_string();
    let addr = tokio::net::lookup_host(&text)
        .await
        .ok()
        .and_then(|mut it| it.next());
    if addr.is_none() {
        error!(address = %text, "admin API not started: admin.grpcAddress does not resolve");
    }
    addr
}

/// Binds a client listener on `bind` (`host:port`); returns the bound address too.
async fn bind_clients(bind: &str) -> Result<(SocketAddr, TcpListener), ServerError> {
    let err = |source| ServerError::Bind {
        addr: bind.to_owned(),
        source,
    };
    let listener = TcpListener::bind(bind).await.map_err(err)?;
    Ok((listener.local_addr().map_err(err)?, listener))
}

/// Standalone, the one member the admin API lists. Its client address is the plain
/// port's, empty on a secure-only server: as in ZooKeeper's `server.N` lines, which
/// carry only a plain client address, never `secureClientPort`.
fn standalone_member(
    cfg: &ServerConfig,
    listen: Option<&crate::config::HostPort>,
) -> Vec<MemberConfig> {
    vec![MemberConfig {
        id: cfg.my_id.unwrap_or(0),
        observer: false,
        quorum_address: String::new(),
        election_address: String::new(),
        client_address: listen.map(ToString::to_string).unwrap_or_default(),
    }]
}

/// One client listener; the plain and the secure port share the per-IP counts
/// (`maxClientCnxns` counts both, as ZooKeeper's does) and the connection ids.
struct Acceptor {
    core: CoreHandle,
    limits: Arc<ConnLimits>,
    max_per_ip: u32,
    per_ip: Arc<Mutex<BTreeMap<IpAddr, u32>>>,
    next_conn: Arc<AtomicU64>,
    /// The secure client port's certificates, current as of each handshake.
    tls: Option<crate::tls::ServerTls>,
}

impl Acceptor {
    async fn run(self, listener: TcpListener) {
        let Acceptor {
            core,
            limits,
            max_per_ip,
            per_ip,
            next_conn,
            tls,
        } = self;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ip = peer.ip();
            {
                let mut counts = per_ip.lock().unwrap_or_else(|p| p.into_inner());
                let n = counts.entry(ip).or_default();
                if max_per_ip > 0 && *n >= max_per_ip {
                    warn!("Too many connections from /{ip} - max is {max_per_ip}");
                    drop(stream);
                    continue;
                }
                *n += 1;
            }
            let conn = next_conn.fetch_add(1, Ordering::Relaxed);
            let core = core.clone();
            let limits = limits.clone();
            let per_ip = per_ip.clone();
            // The configuration, not the receiver: a live connection must not keep the
            // certificate reloader running after the server shuts down.
            let tls = tls.as_ref().map(|t| t.borrow().clone());
            tokio::spawn(
                async move {
                    let _ = stream.set_nodelay(true);
                    match tls {
                        None => conn::serve(stream, peer, conn, core, limits).await,
                        Some(tls) => {
                            match crate::tls::accept(tls, stream, limits.handshake_timeout).await {
                                Ok(s) => conn::serve(s, peer, conn, core, limits).await,
                                // A caller that never speaks is a port scan as often as not.
                                Err(e @ crate::tls::HandshakeError::TimedOut(_)) => {
                                    info!(%peer, error = %e, "closing connection")
                                }
                                Err(e) => warn!(%peer, error = %e, "closing connection"),
                            }
                        }
                    }
                    let mut counts = per_ip.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(n) = counts.get_mut(&ip) {
                        *n -= 1;
                        if *n == 0 {
                            counts.remove(&ip);
                        }
                    }
                }
                .instrument(info_span!("conn", %peer, conn)),
            );
        }
    }
}

/// The consensus clock: fine enough for elections and heartbeats on a LAN, whatever
/// tickTime is (ZooKeeper's own election timers are in milliseconds, not ticks).
fn peer_tick_ms(tick_ms: i64) -> i64 {
    (tick_ms / 2).clamp(1, 100)
}

/// initLimit and syncLimit are in tickTime units; the peer counts its own ticks.
fn peer_timeouts(cfg: &ServerConfig, period_ms: i64) -> PeerTimeouts {
    let ticks = |limit: u32, default: u32| {
        let limit = if limit == 0 { default } else { limit };
        let ms = i64::from(limit) * i64::from(cfg.tick_time_ms);
        u32::try_from(ms / period_ms).unwrap_or(u32::MAX).max(2)
    };
    let per = |ms: i64| u32::try_from(ms / period_ms).unwrap_or(u32::MAX).max(1);
    PeerTimeouts {
        init_limit_ticks: ticks(cfg.init_limit_ticks, 10),
        sync_limit_ticks: ticks(cfg.sync_limit_ticks, 5),
        retry_ticks: per(200),
        election: ElectionTimeouts {
            // ZooKeeper's finalizeWait and minNotificationInterval (200 ms); re-sends
            // back off to 2 s rather than its 60 s, so a cluster started one server at
            // a time settles quickly.
            finalize_wait_ticks: per(200),
            min_notification_interval_ticks: per(200),
            max_notification_interval_ticks: per(2000),
        },
    }
}

/// Who votes, who observes, and how to reach them.
struct Membership {
    quorum: QuorumMaj,
    /// The committed configuration (`None` standalone).
    ensemble: Option<Ensemble>,
    transport: Option<TransportConfig>,
}

/// zoo.cfg's membership, unless a reconfiguration was applied since: then the copy
/// persisted in the data directory is the membership (ZooKeeper's dynamic config file),
/// and zoo.cfg's server lines only say where to dial the servers they name.
fn membership(
    cfg: &ServerConfig,
    standalone: bool,
    persisted: Option<&[u8]>,
) -> Result<Membership, ServerError> {
    let my_id = cfg.my_id.unwrap_or(0);
    if standalone {
        return Ok(Membership {
            quorum: QuorumMaj::new([ServerId(my_id)], [], 0)?,
            ensemble: None,
            transport: None,
        });
    }
    let configured = Ensemble::from_config(cfg);
    let ensemble = match persisted.map(|b| Ensemble::parse(&String::from_utf8_lossy(b))) {
        Some(Ok(e)) if e.version > configured.version => {
            info!(
                version = format!("{:#x}", e.version),
                "membership from the last reconfiguration (persisted), not zoo.cfg's server lines"
            );
            e
        }
        Some(Err(e)) => {
            warn!(error = %e, "the persisted membership does not parse; using zoo.cfg's");
            configured
        }
        _ => configured,
    };
    let me = cfg
        .servers
        .get(&my_id)
        .ok_or(ServerError::NotAMember(my_id))?;
    let quorum = ensemble.quorum()?;
    let resolve = |s: &crate::config::QuorumServer| -> Result<SocketAddr, ServerError> {
        let a = s.addresses.first().ok_or(ServerError::NotAMember(s.id))?;
        let text = format!("{}:{}", a.host, a.quorum_port);
        std::net::ToSocketAddrs::to_socket_addrs(&text)
            .ok()
            .and_then(|mut it| it.next())
            .ok_or(ServerError::Resolve {
                id: s.id,
                addr: text,
            })
    };
    let listen = resolve(me)?;
    let mut peers = BTreeMap::new();
    for s in cfg.servers.values().filter(|s| s.id != my_id) {
        // Resolved on every dial (a peer may not be up, or may come back elsewhere).
        let a = s.addresses.first().ok_or(ServerError::NotAMember(s.id))?;
        let host = if a.host.contains(':') && !a.host.starts_with('[') {
            format!("[{}]", a.host)
        } else {
            a.host.clone()
        };
        peers.insert(s.id, format!("{host}:{}", a.quorum_port));
    }
    // Members added by reconfiguration are dialled where their line says.
    for (id, addr) in ensemble.peers(my_id) {
        peers.entry(id).or_insert(addr);
    }
    peers.retain(|id, _| ensemble.servers.contains_key(id));
    // What every member's zoo.cfg agrees on: ids, roles, quorum hosts and client
    // ports. Not the quorum ports, which a proxy in between may change per server.
    let ensemble_id = quorum::ensemble_id(cfg.servers.values().map(|s| {
        let host = s.addresses.first().map_or("", |a| a.host.as_str());
        let client = s.client_address.as_ref().map_or(0, |c| c.port);
        (s.id, format!("{}@{host};{client}", s.learner_type))
    }));
    Ok(Membership {
        quorum,
        ensemble: Some(ensemble),
        transport: Some(TransportConfig {
            self_id: my_id,
            ensemble_id,
            listen,
            peers,
            max_frame: quorum::codec::DEFAULT_MAX_FRAME,
            lost: None,
            tls: None,
        }),
    })
}
