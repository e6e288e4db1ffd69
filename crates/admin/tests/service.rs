//! The admin service served in-process on 127.0.0.1:0 over a fake [`Backend`]: health
//! follows the backend's mode, reflection lists the services, the bearer token guards
//! the admin calls (not health), a non-loopback bind needs a token, snapshots stream
//! intact and a tampered stream is refused, and shutdown ends `serve`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rookery_admin::pb::{self, Mode};
use rookery_admin::{
    Access, Backend, BackendError, DownloadError, MemberChange, SNAPSHOT_CHUNK_BYTES, ServeError,
    SnapshotData,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const SERVER_ID: u64 = 3;
const LAST_ZXID: i64 = 0x5_0000_002a;
const DIGEST: u64 = 0xdead_beef_cafe;
/// Not a multiple of the chunk size, so the last chunk is partial: 4 chunks.
const SNAPSHOT_LEN: usize = 3 * SNAPSHOT_CHUNK_BYTES + 12_345;
/// A `mode` value that makes the fake's status fail, as a server that cannot answer.
const STATUS_FAILS: i32 = -1;
/// How long a poll waits for the health loop (which polls every 500 ms) to catch up.
const DEADLINE: Duration = Duration::from_secs(5);

/// Fixed data; the mode is switchable while the service runs.
struct Fake {
    mode: AtomicI32,
    snapshot: Vec<u8>,
}

impl Fake {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Fake {
            mode: AtomicI32::new(mode as i32),
            snapshot: patterned(SNAPSHOT_LEN),
        })
    }

    fn set_mode(&self, mode: i32) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// Bytes that differ from chunk to chunk, so a reordered or repeated chunk shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect()
}

impl Backend for Fake {
    async fn mode(&self) -> Result<pb::Mode, BackendError> {
        let mode = self.mode.load(Ordering::SeqCst);
        if mode == STATUS_FAILS {
            return Err(BackendError::Unavailable(
                "the core is not answering".into(),
            ));
        }
        pb::Mode::try_from(mode).map_err(|_| BackendError::Unavailable("bad mode".into()))
    }

    async fn status(&self) -> Result<pb::StatusResponse, BackendError> {
        let mode = self.mode.load(Ordering::SeqCst);
        if mode == STATUS_FAILS {
            return Err(BackendError::Unavailable(
                "the core is not answering".into(),
            ));
        }
        Ok(pb::StatusResponse {
            server_id: SERVER_ID,
            mode,
            leader_id: Some(SERVER_ID),
            applied_zxid: LAST_ZXID,
            znode_count: 7,
            version: "test".into(),
            ..Default::default()
        })
    }

    async fn list_members(&self) -> Result<pb::ListMembersResponse, BackendError> {
        Ok(pb::ListMembersResponse {
            members: vec![pb::Member {
                id: SERVER_ID,
                quorum_address: "127.0.0.1:2888".into(),
                election_address: "127.0.0.1:3888".into(),
                is_leader: true,
                ..Default::default()
            }],
            config_version: 0x1_0000_0000,
        })
    }

    async fn list_sessions(&self) -> Result<pb::ListSessionsResponse, BackendError> {
        Ok(pb::ListSessionsResponse {
            sessions: vec![pb::Session {
                session_id: 0x100,
                timeout_ms: 10_000,
                ..Default::default()
            }],
        })
    }

    async fn expire_session(&self, session_id: i64) -> Result<i64, BackendError> {
        if session_id == 0x100 {
            Ok(LAST_ZXID + 1)
        } else {
            Err(BackendError::NotFound(format!(
                "no session {session_id:#x}"
            )))
        }
    }

    async fn snapshot(&self) -> Result<SnapshotData, BackendError> {
        Ok(SnapshotData {
            last_zxid: LAST_ZXID,
            digest: DIGEST,
            bytes: self.snapshot.clone(),
            server_id: SERVER_ID,
        })
    }

    async fn take_snapshot(&self) -> Result<(i64, u64), BackendError> {
        Ok((LAST_ZXID, SNAPSHOT_LEN as u64))
    }

    async fn transfer_leadership(&self, to: Option<u64>) -> Result<u64, BackendError> {
        match to {
            None | Some(2) => Ok(2),
            Some(other) => Err(BackendError::FailedPrecondition(format!(
                "server {other} is not a voter in sync with the leader"
            ))),
        }
    }

    /// Adds member 4 as an observer; anything else is refused as a leader would.
    async fn change_members(
        &self,
        change: MemberChange,
    ) -> Result<pb::ListMembersResponse, BackendError> {
        match change {
            MemberChange::Add {
                id: 4,
                quorum_address,
                ..
            } => Ok(pb::ListMembersResponse {
                members: vec![pb::Member {
                    id: 4,
                    role: pb::MemberRole::Observer.into(),
                    quorum_address,
                    ..Default::default()
                }],
                config_version: LAST_ZXID + 1,
            }),
            other => Err(BackendError::FailedPrecondition(format!(
                "refused: {other:?}"
            ))),
        }
    }
}

/// A running `serve`: where it listens, how to stop it, and its result.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Resolves the shutdown future and returns what `serve` returned.
    async fn stop(mut self) -> Result<(), ServeError> {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve did not return after shutdown")
            .expect("serve panicked")
    }
}

async fn start(backend: Arc<Fake>, access: Access) -> Running {
    let listener = rookery_admin::bind("127.0.0.1:0".parse().unwrap(), &access)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(rookery_admin::serve(
        listener,
        backend,
        access,
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn health_of(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let resp = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("Health/Check({service:?}) failed: {e}"));
    resp.into_inner().status()
}

/// Polls Health/Check for both "" and the admin service until both report `want`.
async fn await_health(client: &mut HealthClient<Channel>, want: ServingStatus) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let overall = health_of(client, "").await;
        let admin = health_of(client, "rookery.admin.v1.Admin").await;
        if overall == want && admin == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health stayed at \"\"={overall:?}, Admin={admin:?}; wanted {want:?} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_follows_the_backend_mode() {
    // Looking first: "" starts SERVING in tonic-health's reporter, so only the status
    // loop can make it NOT_SERVING.
    let fake = Fake::new(Mode::Looking);
    let server = start(fake.clone(), Access::default()).await;
    let mut health = HealthClient::new(server.channel().await);

    await_health(&mut health, ServingStatus::NotServing).await;
    fake.set_mode(Mode::Leader as i32);
    await_health(&mut health, ServingStatus::Serving).await;
    fake.set_mode(Mode::Looking as i32);
    await_health(&mut health, ServingStatus::NotServing).await;
    fake.set_mode(Mode::Follower as i32);
    await_health(&mut health, ServingStatus::Serving).await;
    // A backend that cannot answer is not ready either.
    fake.set_mode(STATUS_FAILS);
    await_health(&mut health, ServingStatus::NotServing).await;
    fake.set_mode(Mode::ReadOnly as i32);
    await_health(&mut health, ServingStatus::Serving).await;

    // A service the server does not have is NotFound, not SERVING.
    let err = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    server.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_the_admin_and_health_services() {
    let server = start(Fake::new(Mode::Leader), Access::default()).await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("no response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["rookery.admin.v1.Admin", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not in ListServices: {names:?}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_bearer_token_guards_admin_calls_but_not_health() {
    let access = Access {
        bearer_token: Some("s3cret".into()),
        ..Default::default()
    };
    let server = start(Fake::new(Mode::Leader), access).await;
    let endpoint = server.endpoint();

    let mut anonymous = rookery_admin::connect(&endpoint, None).await.unwrap();
    let err = anonymous.status(pb::StatusRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    // Streaming calls pass the same check.
    let err = anonymous
        .download_snapshot(pb::DownloadSnapshotRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    for wrong in ["s3cre", "s3cret!", "S3CRET", ""] {
        let mut client = rookery_admin::connect(&endpoint, Some(wrong))
            .await
            .unwrap();
        let err = client.status(pb::StatusRequest {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "token {wrong:?}: {err}");
    }

    // The token without the "Bearer " scheme is not the header the server wants.
    let mut bare = pb::admin_client::AdminClient::with_interceptor(
        server.channel().await,
        |mut req: tonic::Request<()>| {
            req.metadata_mut()
                .insert("authorization", "s3cret".parse().unwrap());
            Ok(req)
        },
    );
    let err = bare.status(pb::StatusRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    let mut client = rookery_admin::connect(&endpoint, Some("s3cret"))
        .await
        .unwrap();
    let status = client
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.mode(), Mode::Leader);
    assert_eq!(status.server_id, SERVER_ID);
    let members = client
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1);
    assert!(members.members[0].is_leader);

    // Kubernetes probes carry no token: health answers without one.
    let mut health = HealthClient::new(server.channel().await);
    await_health(&mut health, ServingStatus::Serving).await;

    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_token_the_service_answers_anyone() {
    let server = start(Fake::new(Mode::Standalone), Access::default()).await;
    let mut client = rookery_admin::connect(&server.endpoint(), None)
        .await
        .unwrap();
    let status = client
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.mode(), Mode::Standalone);
    let sessions = client
        .list_sessions(pb::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sessions.sessions.len(), 1);
    assert_eq!(sessions.sessions[0].session_id, 0x100);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn backend_errors_keep_their_codes() {
    let server = start(Fake::new(Mode::Leader), Access::default()).await;
    let mut client = rookery_admin::connect(&server.endpoint(), None)
        .await
        .unwrap();
    let expired = client
        .expire_session(pb::ExpireSessionRequest { session_id: 0x100 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expired.zxid, LAST_ZXID + 1);
    let err = client
        .expire_session(pb::ExpireSessionRequest { session_id: 0x999 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("0x999"), "{err}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn member_calls_reach_the_backend_as_changes() {
    let server = start(Fake::new(Mode::Leader), Access::default()).await;
    let mut client = rookery_admin::connect(&server.endpoint(), None)
        .await
        .unwrap();
    let added = client
        .add_member(pb::AddMemberRequest {
            id: 4,
            quorum_address: "127.0.0.1:2891".into(),
            election_address: "127.0.0.1:3891".into(),
            client_address: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.config_version, LAST_ZXID + 1);
    assert_eq!(added.members[0].quorum_address, "127.0.0.1:2891");
    assert_eq!(added.members[0].role(), pb::MemberRole::Observer);
    let refused = client
        .remove_member(pb::RemoveMemberRequest { id: 2, force: true })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("Remove { id: 2, force: true }"),
        "{refused}"
    );
    let best = client
        .transfer_leadership(pb::TransferLeadershipRequest { id: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(best.new_leader, 2, "0 asks for the best voter");
    let refused = client
        .transfer_leadership(pb::TransferLeadershipRequest { id: 7 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let refused = client
        .promote_member(pb::PromoteMemberRequest {
            id: 5,
            force: false,
        })
        .await
        .unwrap_err();
    assert!(
        refused
            .message()
            .contains("Promote { id: 5, force: false }"),
        "{refused}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_non_loopback_bind_needs_a_token() {
    let open: SocketAddr = "0.0.0.0:0".parse().unwrap();
    match rookery_admin::bind(open, &Access::default()).await {
        Err(ServeError::UnauthenticatedNonLoopback(addr)) => assert_eq!(addr, open),
        other => panic!("bind to {open} without a token: {other:?}"),
    }
    assert!(matches!(
        rookery_admin::check_access(open, &Access::default()),
        Err(ServeError::UnauthenticatedNonLoopback(_))
    ));

    let token = Access {
        bearer_token: Some("s3cret".into()),
        ..Default::default()
    };
    rookery_admin::check_access(open, &token).unwrap();
    let listener = rookery_admin::bind(open, &token).await.unwrap();
    let bound = listener.local_addr().unwrap();
    assert!(bound.ip().is_unspecified());
    assert_ne!(bound.port(), 0);

    // Loopback needs no token, and a port already taken is reported as such.
    let lo = rookery_admin::bind("127.0.0.1:0".parse().unwrap(), &Access::default())
        .await
        .unwrap();
    let taken = lo.local_addr().unwrap();
    match rookery_admin::bind(taken, &Access::default()).await {
        Err(ServeError::Bind { addr, .. }) => assert_eq!(addr, taken),
        other => panic!("second bind to {taken}: {other:?}"),
    }
}

#[tokio::test]
async fn a_snapshot_downloads_whole_and_checked() {
    let fake = Fake::new(Mode::Leader);
    let server = start(fake.clone(), Access::default()).await;
    let mut client = rookery_admin::connect(&server.endpoint(), None)
        .await
        .unwrap();

    // On the wire: several chunks, the header on the first only.
    let mut raw = client
        .download_snapshot(pb::DownloadSnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = raw.message().await.unwrap() {
        chunks.push(chunk);
    }
    assert_eq!(chunks.len(), SNAPSHOT_LEN.div_ceil(SNAPSHOT_CHUNK_BYTES));
    assert!(chunks.len() >= 4);
    assert!(chunks[0].header.is_some());
    assert!(chunks[1..].iter().all(|c| c.header.is_none()));
    assert!(chunks.iter().all(|c| c.data.len() <= SNAPSHOT_CHUNK_BYTES));

    // Through receive_snapshot: the same bytes, and a header that describes them.
    let stream = client
        .download_snapshot(pb::DownloadSnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let (header, bytes) = rookery_admin::receive_snapshot(stream).await.unwrap();
    assert_eq!(bytes.len(), SNAPSHOT_LEN);
    assert!(
        bytes == fake.snapshot,
        "downloaded bytes differ from the backend's"
    );
    assert_eq!(header.total_bytes, SNAPSHOT_LEN as u64);
    assert_eq!(header.crc32, crc32fast::hash(&fake.snapshot));
    assert_eq!(header.last_zxid, LAST_ZXID);
    assert_eq!(header.digest, DIGEST);
    assert_eq!(header.server_id, SERVER_ID);

    server.stop().await.unwrap();
}

/// How the tampering server spoils the stream the real service would send.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// Sent as the real service sends it: the control.
    Nothing,
    /// One byte of one chunk flipped after the header was computed.
    FlipByte,
    /// The last chunk left off.
    DropLastChunk,
    /// The header left off.
    NoHeader,
}

/// An Admin service that streams the fake's snapshot, spoiled as asked. The chunks are
/// made the way the real service makes them (header on the first, CRC-32 of the whole).
struct Tampering(Tamper);

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotChunk, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for Tampering {
    async fn status(
        &self,
        _: tonic::Request<pb::StatusRequest>,
    ) -> Result<tonic::Response<pb::StatusResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }
    async fn list_members(
        &self,
        _: tonic::Request<pb::ListMembersRequest>,
    ) -> Result<tonic::Response<pb::ListMembersResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }
    async fn list_sessions(
        &self,
        _: tonic::Request<pb::ListSessionsRequest>,
    ) -> Result<tonic::Response<pb::ListSessionsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }
    async fn expire_session(
        &self,
        _: tonic::Request<pb::ExpireSessionRequest>,
    ) -> Result<tonic::Response<pb::ExpireSessionResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }
    async fn take_snapshot(
        &self,
        _: tonic::Request<pb::TakeSnapshotRequest>,
    ) -> Result<tonic::Response<pb::TakeSnapshotResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }

    async fn add_member(
        &self,
        _: tonic::Request<pb::AddMemberRequest>,
    ) -> Result<tonic::Response<pb::ListMembersResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }
    async fn promote_member(
        &self,
        _: tonic::Request<pb::PromoteMemberRequest>,
    ) -> Result<tonic::Response<pb::ListMembersResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }
    async fn remove_member(
        &self,
        _: tonic::Request<pb::RemoveMemberRequest>,
    ) -> Result<tonic::Response<pb::ListMembersResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }
    async fn transfer_leadership(
        &self,
        _: tonic::Request<pb::TransferLeadershipRequest>,
    ) -> Result<tonic::Response<pb::TransferLeadershipResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("tampering server"))
    }

    type DownloadSnapshotStream = ChunkStream;

    async fn download_snapshot(
        &self,
        _: tonic::Request<pb::DownloadSnapshotRequest>,
    ) -> Result<tonic::Response<ChunkStream>, tonic::Status> {
        let bytes = patterned(SNAPSHOT_LEN);
        let header = pb::SnapshotHeader {
            last_zxid: LAST_ZXID,
            total_bytes: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
            digest: DIGEST,
            server_id: SERVER_ID,
        };
        let mut chunks: Vec<pb::SnapshotChunk> = bytes
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .map(|c| pb::SnapshotChunk {
                header: None,
                data: c.to_vec().into(),
            })
            .collect();
        chunks[0].header = Some(header);
        match self.0 {
            Tamper::Nothing => {}
            Tamper::FlipByte => {
                let mut data = chunks[2].data.to_vec();
                data[777] ^= 0x01;
                chunks[2].data = data.into();
            }
            Tamper::DropLastChunk => {
                chunks.pop();
            }
            Tamper::NoHeader => chunks[0].header = None,
        }
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }
}

/// Downloads from a tampering server through the generated client and `receive_snapshot`.
async fn receive_from(tamper: Tamper) -> Result<(pb::SnapshotHeader, Vec<u8>), DownloadError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::admin_server::AdminServer::new(Tampering(tamper)))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = stopped.await;
                },
            ),
    );
    let mut client = rookery_admin::connect(&addr.to_string(), None)
        .await
        .unwrap();
    let stream = client
        .download_snapshot(pb::DownloadSnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let result = rookery_admin::receive_snapshot(stream).await;
    drop(client);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    result
}

#[tokio::test]
async fn a_tampered_snapshot_stream_is_refused() {
    let expected_bytes = patterned(SNAPSHOT_LEN);
    let expected_crc = crc32fast::hash(&expected_bytes);

    // The control: the tampering server, untampered, is accepted.
    let (header, bytes) = receive_from(Tamper::Nothing).await.unwrap();
    assert_eq!(header.crc32, expected_crc);
    assert!(bytes == expected_bytes);

    match receive_from(Tamper::FlipByte).await {
        Err(DownloadError::Checksum { expected, actual }) => {
            assert_eq!(expected, expected_crc);
            let mut spoiled = expected_bytes.clone();
            spoiled[2 * SNAPSHOT_CHUNK_BYTES + 777] ^= 0x01;
            assert_eq!(actual, crc32fast::hash(&spoiled));
        }
        other => panic!("a flipped byte: {:?}", other.map(|(h, _)| h)),
    }

    match receive_from(Tamper::DropLastChunk).await {
        Err(DownloadError::Short { got, expected }) => {
            assert_eq!(expected, SNAPSHOT_LEN as u64);
            assert_eq!(
                got,
                (SNAPSHOT_LEN / SNAPSHOT_CHUNK_BYTES * SNAPSHOT_CHUNK_BYTES) as u64
            );
        }
        other => panic!("a missing chunk: {:?}", other.map(|(h, _)| h)),
    }

    match receive_from(Tamper::NoHeader).await {
        Err(DownloadError::NoHeader) => {}
        other => panic!("no header: {:?}", other.map(|(h, _)| h)),
    }
}

#[tokio::test]
async fn serve_returns_ok_when_shutdown_resolves() {
    let server = start(Fake::new(Mode::Leader), Access::default()).await;
    // A connected client with a call behind it, still open at shutdown.
    let mut client = rookery_admin::connect(&server.endpoint(), None)
        .await
        .unwrap();
    client.status(pb::StatusRequest {}).await.unwrap();
    assert!(!server.task.is_finished(), "serve returned before shutdown");
    let addr = server.addr;

    server.stop().await.unwrap();

    // The listener is gone with it.
    let err = rookery_admin::connect(&addr.to_string(), None)
        .await
        .expect_err("connected to a stopped admin service");
    assert!(
        matches!(err, rookery_admin::ConnectError::Connect(..)),
        "{err}"
    );
}
