//! Rookery's admin plane over gRPC (`proto/rookery/admin/v1/admin.proto`): the
//! service, served beside the standard health service and server reflection, and the
//! typed client the `rookery admin` CLI uses.
//!
//! The server hands in a [`Backend`], a narrow handle onto its core; this crate knows
//! nothing of trees or consensus, only how to answer over gRPC and who may ask.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::{info, info_span, warn};

/// The generated messages and gRPC stubs.
#[allow(unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod pb {
    tonic::include_proto!("rookery.admin.v1");

    /// For server reflection, so grpcurl works without the .proto.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("admin_descriptor");
}

pub use pb::admin_client::AdminClient;
/// A call's failure as the server gave it (code and message).
pub use tonic::Status as RpcStatus;

/// Snapshot bytes go out in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// What the server could not do for an admin call, mapped to a gRPC status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The server is stopping, electing or otherwise cannot answer now.
    #[error("{0}")]
    Unavailable(String),
    /// The call is valid but not here or not now (e.g. needs the leader).
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
}

impl From<BackendError> for Status {
    fn from(e: BackendError) -> Status {
        match e {
            BackendError::Unavailable(m) => Status::unavailable(m),
            BackendError::FailedPrecondition(m) => Status::failed_precondition(m),
            BackendError::NotFound(m) => Status::not_found(m),
            BackendError::InvalidArgument(m) => Status::invalid_argument(m),
        }
    }
}

/// A snapshot of the applied tree, in Rookery's snapshot format.
#[derive(Debug, Clone)]
pub struct SnapshotData {
    pub last_zxid: i64,
    pub digest: u64,
    pub bytes: Vec<u8>,
    /// The server it was taken on, for the operator's records.
    pub server_id: u64,
}

/// The server side of the admin API: a handle onto the server's core.
pub trait Backend: Send + Sync + 'static {
    /// Cheap: the health service polls it.
    fn mode(&self) -> impl Future<Output = Result<pb::Mode, BackendError>> + Send;
    fn status(&self) -> impl Future<Output = Result<pb::StatusResponse, BackendError>> + Send;
    fn list_members(
        &self,
    ) -> impl Future<Output = Result<pb::ListMembersResponse, BackendError>> + Send;
    fn list_sessions(
        &self,
    ) -> impl Future<Output = Result<pb::ListSessionsResponse, BackendError>> + Send;
    /// Resolves once the session's closeSession Txn is applied here; returns its zxid.
    fn expire_session(
        &self,
        session_id: i64,
    ) -> impl Future<Output = Result<i64, BackendError>> + Send;
    fn snapshot(&self) -> impl Future<Output = Result<SnapshotData, BackendError>> + Send;
    /// Writes a snapshot into the server's own storage; returns its zxid and size.
    fn take_snapshot(&self) -> impl Future<Output = Result<(i64, u64), BackendError>> + Send;
    /// Starts handing leadership to `to` (or the best voter); returns the successor.
    fn transfer_leadership(
        &self,
        to: Option<u64>,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;
    /// Resolves once the change is committed and applied here; returns the membership.
    fn change_members(
        &self,
        change: MemberChange,
    ) -> impl Future<Output = Result<pb::ListMembersResponse, BackendError>> + Send;
}

/// One membership change (the AddMember, PromoteMember and RemoveMember calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Joins as an observer.
    Add {
        id: u64,
        quorum_address: String,
        election_address: String,
        client_address: String,
    },
    Promote {
        id: u64,
        force: bool,
    },
    Remove {
        id: u64,
        force: bool,
    },
}

/// Who may call the admin service.
#[derive(Clone, Default)]
pub struct Access {
    /// `Authorization: Bearer <token>` required on every admin call when set.
    pub bearer_token: Option<String>,
    /// TLS on the admin port, current as of each handshake (certificates reload).
    pub tls: Option<ServerTls>,
}

/// The admin port's TLS: the configuration to use for the next handshake, and whether
/// it demands client certificates (mutual TLS authenticates callers as a token does).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: tokio::sync::watch::Receiver<Arc<rustls::ServerConfig>>,
    pub clients_authenticated: bool,
}

impl Access {
    fn authenticates(&self) -> bool {
        self.bearer_token.is_some() || self.tls.as_ref().is_some_and(|t| t.clients_authenticated)
    }
}

impl std::fmt::Debug for Access {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("tls", &self.tls.as_ref().map(|t| t.clients_authenticated))
            .finish()
    }
}

/// Why the admin service would not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "admin.grpcAddress {0} is not a loopback address: set admin.authTokenFile or \
         admin.ssl.* (mutual TLS) so callers must authenticate, or bind the admin API to \
         127.0.0.1 or ::1"
    )]
    UnauthenticatedNonLoopback(SocketAddr),
    #[error("cannot listen on admin.grpcAddress {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin service failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Refuses an admin API open to the network without authentication.
pub fn check_access(addr: SocketAddr, access: &Access) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && !access.authenticates() {
        return Err(ServeError::UnauthenticatedNonLoopback(addr));
    }
    Ok(())
}

/// Binds the admin listener; separate from [`serve`] so a taken port is reported at
/// start-up, before the server claims to be up.
pub async fn bind(
    addr: SocketAddr,
    access: &Access,
) -> Result<tokio::net::TcpListener, ServeError> {
    check_access(addr, access)?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves the admin service, the health service and reflection on `listener` until
/// `shutdown` resolves. Health is SERVING while the backend answers with a mode that
/// serves clients, so a readiness probe follows the server's real state.
pub async fn serve<B: Backend>(
    listener: tokio::net::TcpListener,
    backend: Arc<B>,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().ok();
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        // Served here too: without its descriptors reflection would not list it.
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            // The descriptor set is compiled in: failing here is a build defect.
            warn!(error = %e, "gRPC reflection unavailable");
            e
        })
        .ok();
    let watch_backend = backend.clone();
    let health_task = tokio::spawn(async move {
        let mut last = None;
        loop {
            // A core that does not answer within the poll is not serving either.
            let mode = tokio::time::timeout(Duration::from_secs(2), watch_backend.mode()).await;
            let serving = matches!(
                mode,
                Ok(Ok(pb::Mode::Leader
                    | pb::Mode::Follower
                    | pb::Mode::Observer
                    | pb::Mode::Standalone
                    | pb::Mode::ReadOnly))
            );
            if last != Some(serving) {
                let status = if serving {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
                reporter
                    .set_service_status("rookery.admin.v1.Admin", status)
                    .await;
                last = Some(serving);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let service = pb::admin_server::AdminServer::with_interceptor(
        AdminService {
            backend,
            downloads: Arc::new(tokio::sync::Semaphore::new(1)),
        },
        Authenticator::new(&access),
    );
    info!(
        addr = ?addr,
        token = access.bearer_token.is_some(),
        tls = access.tls.is_some(),
        client_certificates = access.tls.as_ref().is_some_and(|t| t.clients_authenticated),
        "admin API listening"
    );
    let router = tonic::transport::Server::builder()
        .add_service(health)
        .add_optional_service(reflection)
        .add_service(service);
    let result = match access.tls {
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Some(tls) => {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            let handshakes = tokio::spawn(tls_handshakes(listener, tls.config, tx));
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            let r = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await;
            handshakes.abort();
            r
        }
    };
    health_task.abort();
    result.map_err(ServeError::from)
}

/// How long a caller has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type TlsConn = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Accepts and handshakes each connection on its own task, so one slow or hostile
/// caller holds up nobody; only connections that passed go on to gRPC.
async fn tls_handshakes(
    listener: tokio::net::TcpListener,
    config: tokio::sync::watch::Receiver<Arc<rustls::ServerConfig>>,
    tx: tokio::sync::mpsc::Sender<Result<TlsConn, std::io::Error>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "admin API: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config.borrow().clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(conn)) => {
                    let _ = tx.send(Ok(conn)).await;
                }
                Ok(Err(e)) => warn!(%peer, error = %e, "admin API: TLS handshake failed"),
                Err(_) => warn!(%peer, "admin API: TLS handshake timed out"),
            }
        });
    }
}

/// Checks the bearer token in constant time over its length.
#[derive(Clone)]
struct Authenticator {
    expected: Option<Arc<str>>,
}

impl Authenticator {
    fn new(access: &Access) -> Self {
        Authenticator {
            expected: access
                .bearer_token
                .as_ref()
                .map(|t| Arc::from(format!("Bearer {t}").as_str())),
        }
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(req)
        } else {
            warn!(
                remote = ?req.remote_addr(),
                "admin call refused: missing or wrong bearer token"
            );
            Err(Status::unauthenticated(
                "the admin API requires 'authorization: Bearer <token>' (admin.authTokenFile)",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct AdminService<B> {
    backend: Arc<B>,
    downloads: Arc<tokio::sync::Semaphore>,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

impl<B: Backend> AdminService<B> {
    /// Every membership call is logged with what it asked and how it ended.
    async fn change(
        &self,
        change: MemberChange,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        info!(?change, "admin: membership change requested");
        match self.backend.change_members(change.clone()).await {
            Ok(r) => {
                info!(
                    ?change,
                    version = format!("{:#x}", r.config_version),
                    "admin: membership changed"
                );
                Ok(Response::new(r))
            }
            Err(e) => {
                warn!(?change, error = %e, "admin: membership change refused or failed");
                Err(e.into())
            }
        }
    }
}

#[tonic::async_trait]
impl<B: Backend> pb::admin_server::Admin for AdminService<B> {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let span = info_span!("admin", call = "Status");
        let _g = span.enter();
        Ok(Response::new(self.backend.status().await?))
    }

    async fn list_members(
        &self,
        _req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        Ok(Response::new(self.backend.list_members().await?))
    }

    async fn list_sessions(
        &self,
        _req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        Ok(Response::new(self.backend.list_sessions().await?))
    }

    async fn expire_session(
        &self,
        req: Request<pb::ExpireSessionRequest>,
    ) -> Result<Response<pb::ExpireSessionResponse>, Status> {
        let session_id = req.into_inner().session_id;
        info!(
            session = format!("{session_id:#x}"),
            "admin: expiring session"
        );
        let zxid = self.backend.expire_session(session_id).await?;
        Ok(Response::new(pb::ExpireSessionResponse { zxid }))
    }

    async fn take_snapshot(
        &self,
        _req: Request<pb::TakeSnapshotRequest>,
    ) -> Result<Response<pb::TakeSnapshotResponse>, Status> {
        let (last_zxid, bytes) = self.backend.take_snapshot().await?;
        info!(
            last_zxid = format!("{last_zxid:#x}"),
            bytes, "admin: snapshot taken on request"
        );
        Ok(Response::new(pb::TakeSnapshotResponse { last_zxid, bytes }))
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let r = req.into_inner();
        self.change(MemberChange::Add {
            id: r.id,
            quorum_address: r.quorum_address,
            election_address: r.election_address,
            client_address: r.client_address,
        })
        .await
    }

    async fn promote_member(
        &self,
        req: Request<pb::PromoteMemberRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let r = req.into_inner();
        self.change(MemberChange::Promote {
            id: r.id,
            force: r.force,
        })
        .await
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let r = req.into_inner();
        self.change(MemberChange::Remove {
            id: r.id,
            force: r.force,
        })
        .await
    }

    async fn transfer_leadership(
        &self,
        req: Request<pb::TransferLeadershipRequest>,
    ) -> Result<Response<pb::TransferLeadershipResponse>, Status> {
        let id = req.into_inner().id;
        let to = (id != 0).then_some(id);
        info!(?to, "admin: leadership transfer requested");
        match self.backend.transfer_leadership(to).await {
            Ok(new_leader) => {
                info!(new_leader, "admin: handing over leadership");
                Ok(Response::new(pb::TransferLeadershipResponse { new_leader }))
            }
            Err(e) => {
                warn!(error = %e, "admin: leadership transfer refused");
                Err(e.into())
            }
        }
    }

    type DownloadSnapshotStream = ChunkStream;

    async fn download_snapshot(
        &self,
        _req: Request<pb::DownloadSnapshotRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        // A snapshot is held whole in memory while it streams: one download at a time.
        let permit =
            self.downloads.clone().try_acquire_owned().map_err(|_| {
                Status::resource_exhausted("a snapshot download is already running")
            })?;
        let snap = self.backend.snapshot().await?;
        info!(
            last_zxid = format!("{:#x}", snap.last_zxid),
            bytes = snap.bytes.len(),
            "admin: streaming a snapshot"
        );
        let header = pb::SnapshotHeader {
            last_zxid: snap.last_zxid,
            total_bytes: snap.bytes.len() as u64,
            crc32: crc32fast::hash(&snap.bytes),
            digest: snap.digest,
            server_id: snap.server_id,
        };
        let chunks = snapshot_chunks(header, snap.bytes);
        let stream = tokio_stream::StreamExt::map(tokio_stream::iter(chunks), move |c| {
            // Released when the stream is dropped, finished or not.
            let _held = &permit;
            Ok(c)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Splits a snapshot into the stream's chunks; the first carries the header. An empty
/// snapshot still yields one chunk, so the header always arrives.
fn snapshot_chunks(header: pb::SnapshotHeader, bytes: Vec<u8>) -> Vec<pb::SnapshotChunk> {
    let bytes = bytes::Bytes::from(bytes);
    let mut out: Vec<pb::SnapshotChunk> = (0..bytes.len())
        .step_by(SNAPSHOT_CHUNK_BYTES)
        .map(|start| pb::SnapshotChunk {
            header: None,
            data: bytes.slice(start..(start + SNAPSHOT_CHUNK_BYTES).min(bytes.len())),
        })
        .collect();
    if out.is_empty() {
        out.push(pb::SnapshotChunk::default());
    }
    out[0].header = Some(header);
    out
}

/// Why a downloaded snapshot was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}")]
    Rpc(#[from] Status),
    #[error("the snapshot stream had no header")]
    NoHeader,
    #[error("the snapshot stream ended after {got} of {expected} bytes")]
    Short { got: u64, expected: u64 },
    #[error("snapshot checksum {actual:#010x} does not match the server's {expected:#010x}")]
    Checksum { expected: u32, actual: u32 },
}

/// Reassembles a snapshot stream, checking its length and checksum.
pub async fn receive_snapshot(
    mut stream: tonic::Streaming<pb::SnapshotChunk>,
) -> Result<(pb::SnapshotHeader, Vec<u8>), DownloadError> {
    let mut header = None;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        if header.is_none() {
            header = chunk.header;
            if let Some(h) = &header {
                bytes.reserve(usize::try_from(h.total_bytes).unwrap_or(0).min(1 << 30));
            }
        }
        bytes.extend_from_slice(&chunk.data);
    }
    let header = header.ok_or(DownloadError::NoHeader)?;
    if bytes.len() as u64 != header.total_bytes {
        return Err(DownloadError::Short {
            got: bytes.len() as u64,
            expected: header.total_bytes,
        });
    }
    let actual = crc32fast::hash(&bytes);
    if actual != header.crc32 {
        return Err(DownloadError::Checksum {
            expected: header.crc32,
            actual,
        });
    }
    Ok((header, bytes))
}

/// Adds the bearer token to each call of a client.
#[derive(Clone)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    /// `None` sends no token. A token that is not valid header text is an error.
    pub fn new(token: Option<&str>) -> Result<Self, tonic::metadata::errors::InvalidMetadataValue> {
        let value = token
            .map(|t| format!("Bearer {t}").parse::<tonic::metadata::MetadataValue<_>>())
            .transpose()?;
        Ok(BearerToken(value.map(|mut v| {
            // Kept out of tonic's and hyper's debug output.
            v.set_sensitive(true);
            v
        })))
    }
}

impl std::fmt::Debug for BearerToken {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerToken(<set>)"
        } else {
            "BearerToken(None)"
        })
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connected admin client that sends the token on every call.
pub type Client = AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

/// Connects to `endpoint` (`host:port` or a URL).
pub async fn connect(endpoint: &str, token: Option<&str>) -> Result<Client, ConnectError> {
    connect_with(endpoint, token, None).await
}

/// PEM files for calling an admin API that speaks TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The certificates that sign the server's.
    pub ca_pem: Vec<u8>,
    /// This caller's private key and certificate chain (one PEM, as a key store), for
    /// a server that demands client certificates.
    pub identity_pem: Option<Vec<u8>>,
}

/// Connects to `endpoint` as [`connect`] does, over TLS when `tls` is given.
pub async fn connect_with(
    endpoint: &str,
    token: Option<&str>,
    tls: Option<&ClientTls>,
) -> Result<Client, ConnectError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("{scheme}://{endpoint}")
    };
    let mut ep = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| ConnectError::Endpoint(endpoint.to_owned(), e.to_string()))?;
    if let Some(tls) = tls {
        let mut config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem));
        if let Some(id) = &tls.identity_pem {
            config = config.identity(tonic::transport::Identity::from_pem(id, id));
        }
        ep = ep
            .tls_config(config)
            .map_err(|e| ConnectError::Endpoint(endpoint.to_owned(), e.to_string()))?;
    }
    let channel = ep
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| ConnectError::Connect(endpoint.to_owned(), e.to_string()))?;
    let token = BearerToken::new(token).map_err(|_| ConnectError::Token)?;
    Ok(AdminClient::with_interceptor(channel, token))
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("'{0}' is not an admin endpoint: {1}")]
    Endpoint(String, String),
    #[error("cannot reach the admin API at {0}: {1}")]
    Connect(String, String),
    #[error("the admin token is not valid header text")]
    Token,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_the_header_first_and_rejoin_to_the_snapshot() {
        let bytes: Vec<u8> = (0..(SNAPSHOT_CHUNK_BYTES * 2 + 7))
            .map(|i| i as u8)
            .collect();
        let header = pb::SnapshotHeader {
            total_bytes: bytes.len() as u64,
            ..Default::default()
        };
        let chunks = snapshot_chunks(header, bytes.clone());
        assert_eq!(chunks.len(), 3);
        assert!(chunks[0].header.is_some());
        assert!(chunks[1..].iter().all(|c| c.header.is_none()));
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(joined, bytes);
        let empty = snapshot_chunks(pb::SnapshotHeader::default(), Vec::new());
        assert_eq!(empty.len(), 1);
        assert!(empty[0].header.is_some());
    }

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        let open: SocketAddr = "0.0.0.0:7181".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:7181".parse().unwrap();
        let lo6: SocketAddr = "[::1]:7181".parse().unwrap();
        let token = Access {
            bearer_token: Some("t".into()),
            ..Default::default()
        };
        assert!(matches!(
            check_access(open, &Access::default()),
            Err(ServeError::UnauthenticatedNonLoopback(_))
        ));
        assert!(check_access(open, &token).is_ok());
        assert!(check_access(lo, &Access::default()).is_ok());
        assert!(check_access(lo6, &Access::default()).is_ok());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
        assert!(!constant_time_eq(b"", b"Bearer abc"));
    }

    #[test]
    fn access_debug_hides_the_token() {
        let a = Access {
            bearer_token: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
