//! Starting a server from its configuration: storage, the core thread, the client
//! listener and the tick that drives expiry.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
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
use crate::core::{Core, CoreCmd, CoreConfig, CoreError, CoreHandle};
use crate::words::ConfigDescription;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no client port configured (clientPort or a ;clientPort suffix on this server's line)")]
    NoClientPort,
    #[error("Rookery runs standalone only for now; replication is not implemented yet")]
    EnsembleNotSupported,
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
    #[error("the core thread panicked")]
    CorePanicked,
}

/// A server that is accepting clients.
#[derive(Debug)]
pub struct RunningServer {
    client_addr: SocketAddr,
    core: std::thread::JoinHandle<Result<(), CoreError>>,
    accept: JoinHandle<()>,
    tick: JoinHandle<()>,
}

impl RunningServer {
    /// Where clients connect (the bound address, useful with port 0 in tests).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Stops accepting and waits for the core to finish what it has; returns the
    /// core's error if it stopped on its own (storage failure).
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.accept.abort();
        self.tick.abort();
        let _ = self.accept.await;
        let _ = self.tick.await;
        join_core(self.core).await
    }

    /// Resolves when the core stops by itself, which only a fatal error makes it do.
    pub async fn failed(&mut self) -> ServerError {
        loop {
            if self.core.is_finished() {
                return ServerError::CorePanicked;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn join_core(
    core: std::thread::JoinHandle<Result<(), CoreError>>,
) -> Result<(), ServerError> {
    match tokio::task::spawn_blocking(move || core.join()).await {
        Ok(Ok(r)) => Ok(r?),
        _ => Err(ServerError::CorePanicked),
    }
}

/// Opens storage, recovers the tree and starts listening for clients.
pub async fn start(cfg: &ServerConfig) -> Result<RunningServer, ServerError> {
    if cfg.mode() == ServerMode::Ensemble {
        return Err(ServerError::EnsembleNotSupported);
    }
    let listen = cfg
        .client_listen_address()
        .ok_or(ServerError::NoClientPort)?;
    let server_id = cfg.my_id.unwrap_or(0);
    let server_id =
        u8::try_from(server_id).map_err(|_| ServerError::ServerIdTooLarge(server_id))?;

    let store_dir = cfg.data_log_dir.join("rookery-v1");
    std::fs::create_dir_all(&store_dir).map_err(|source| ServerError::DataDir {
        path: store_dir.display().to_string(),
        source,
    })?;
    let storage = {
        let dir = store_dir.clone();
        tokio::task::spawn_blocking(move || SledStorage::open(dir))
            .await
            .map_err(|_| ServerError::CorePanicked)?
            .map_err(|source| ServerError::Storage {
                path: store_dir.display().to_string(),
                source,
            })?
    };

    let tick_ms = i64::from(cfg.tick_time_ms);
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
        snap_retain_count: usize::try_from(cfg.snap_retain_count).unwrap_or(3),
        purge: cfg.purge_interval_hours > 0,
        describe: ConfigDescription {
            client_port: listen.port,
            secure_client_port: cfg.secure_client_port.map_or(-1, i32::from),
            data_dir: cfg.data_dir.display().to_string(),
            data_log_dir: cfg.data_log_dir.display().to_string(),
            tick_ms,
            max_client_cnxns: cfg.max_client_cnxns,
            min_session_timeout_ms: i32::try_from(cfg.min_session_timeout_ms).unwrap_or(i32::MAX),
            max_session_timeout_ms: i32::try_from(cfg.max_session_timeout_ms).unwrap_or(i32::MAX),
            server_id: i64::from(server_id),
        },
    };
    let core = tokio::task::spawn_blocking(move || Core::open(core_cfg, storage))
        .await
        .map_err(|_| ServerError::CorePanicked)??;

    let bind = format!("{}:{}", listen.host, listen.port);
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let client_addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr: bind, source })?;

    let (tx, rx) = mpsc::unbounded_channel();
    let handle = CoreHandle::new(tx);
    let core = std::thread::Builder::new()
        .name("rookery-core".into())
        .spawn(move || core.run(rx))
        .map_err(|source| ServerError::DataDir {
            path: "core thread".into(),
            source,
        })?;

    let tick = {
        let handle = handle.clone();
        let period = Duration::from_millis(u64::try_from(tick_ms / 2).unwrap_or(1).max(1));
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
    let max_per_ip = cfg.max_client_cnxns;
    let accept = tokio::spawn(accept_loop(listener, handle, limits, max_per_ip));
    info!(%client_addr, server_id, "serving clients (standalone)");
    Ok(RunningServer {
        client_addr,
        core,
        accept,
        tick,
    })
}

async fn accept_loop(
    listener: TcpListener,
    core: CoreHandle,
    limits: Arc<ConnLimits>,
    max_per_ip: u32,
) {
    let per_ip: Arc<Mutex<BTreeMap<IpAddr, u32>>> = Arc::default();
    let mut next_conn: u64 = 1;
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
        let conn = next_conn;
        next_conn += 1;
        let core = core.clone();
        let limits = limits.clone();
        let per_ip = per_ip.clone();
        tokio::spawn(
            async move {
                conn::serve(stream, peer, conn, core, limits).await;
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
