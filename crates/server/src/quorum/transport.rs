//! Connections between the servers of an ensemble.
//!
//! Each server dials every peer and only *sends* on that connection; connections it
//! accepts it only *reads*. Two TCP connections per pair means no tie-breaking over who
//! dials whom (ZooKeeper's "higher sid wins" dance) and no shared socket state.
//!
//! - Outbound: one task per peer connects, sends the [`Handshake`](pb::Handshake), then
//!   writes whatever [`PeerSender::send`] queued, batching frames before a flush. When
//!   the connection fails or the peer closes it, the queue is dropped (as a broken TCP
//!   stream would drop it) and the task reconnects with backoff. While there is no
//!   connection, sends are dropped: the consensus core resends what matters.
//! - Inbound: the first frame must be a Rookery handshake from another server id;
//!   every later frame is decoded and handed to the core as `(sender id, Message)`,
//!   which ignores servers that are not members. A newer connection from the same peer
//!   replaces an older one, so a half-open socket left by a crashed peer does not
//!   linger.
//! - Membership changes at run time ([`PeerSender::set_peers`]): a server joining is
//!   dialled from then on, a server leaving is no longer. Its handshake names no server
//!   list for that reason (a joiner's zoo.cfg differs from the others').
//! - `sslQuorum=true`: both connections of a pair are TLS with certificates on both
//!   sides, checked against `ssl.quorum.trustStore.location`; the handshake frame then
//!   travels inside TLS. A peer without a trusted certificate never gets to send one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rookery_zab::message::Message;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, field, info, info_span, warn};

use crate::tls::{ClientTls, ServerTls, SplitStream};

use super::codec::{
    self, FrameError, MAGIC, MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION, encode_frame, frame_body_len,
    handshake_frame, read_frame,
};

#[cfg(test)]
use super::codec::DEFAULT_MAX_FRAME;

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Also how long a link must have lived for its loss to reset the backoff, so a peer
/// that accepts and at once closes (a rejected handshake) is not redialled in a loop.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A dial to a black-holed address would otherwise wait for the kernel's SYN timeout
/// (minutes); ZooKeeper's `cnxTimeout` is the same 5 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An accepted socket that has not identified itself by then is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages written per flush at most, so a core that never stops sending still gets
/// its frames flushed and the link still notices a shutdown or a closed peer.
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct TransportConfig {
    pub self_id: u64,
    /// [`ensemble_id`] of the configured membership, sent for diagnosis only: members
    /// change at run time, so peers no longer have to agree on it.
    pub ensemble_id: String,
    /// Where to accept peers (used by [`start`]; [`start_on`] takes a bound listener).
    pub listen: SocketAddr,
    /// Every other member's quorum address, `host:port`: the name is resolved again
    /// on every dial, as ZooKeeper does, so a peer that comes back at a new address
    /// (a recreated container) is found.
    pub peers: BTreeMap<u64, String>,
    /// Largest frame body sent or accepted, in bytes (at most 4 GiB - 1, the length
    /// prefix being 32 bits).
    pub max_frame: usize,
    /// Told the peer's id when its newest connection to us ends (it died, or the
    /// network broke): a follower learns at once that its leader is gone, as a
    /// ZooKeeper follower does from its socket.
    pub lost: Option<mpsc::UnboundedSender<u64>>,
    /// `sslQuorum`: TLS both ways, `None` for plain TCP.
    pub tls: Option<QuorumTls>,
}

/// The current certificates for both directions of a quorum link.
#[derive(Debug, Clone)]
pub(crate) struct QuorumTls {
    pub accept: ServerTls,
    pub dial: ClientTls,
}

/// A stable name for a membership: the first 16 hex digits of the SHA-1 of the sorted
/// `id=host:quorumPort:electionPort` lines. Servers compare it in the handshake so a
/// misconfigured server of another ensemble cannot join this one's quorums.
pub(crate) fn ensemble_id(servers: impl Iterator<Item = (u64, String)>) -> String {
    let mut lines: Vec<(u64, String)> = servers.collect();
    lines.sort();
    let mut hasher = Sha1::new();
    for (id, addr) in &lines {
        hasher.update(format!("{id}={addr}\n").as_bytes());
    }
    let mut hex = String::with_capacity(16);
    for byte in &hasher.finalize()[..8] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Binds `cfg.listen`, then runs the transport as [`start_on`] does.
pub(crate) async fn start(
    cfg: TransportConfig,
    inbound: mpsc::UnboundedSender<(u64, Message)>,
) -> io::Result<PeerSender> {
    let listener = TcpListener::bind(cfg.listen).await?;
    Ok(start_on(listener, cfg, inbound))
}

/// Runs the transport on an already bound listener (tests bind port 0 first to learn
/// every address). Messages received from peers go to `inbound` tagged with the
/// sender's id. Everything runs until [`PeerSender::shutdown`]; must be called inside
/// a tokio runtime.
pub(crate) fn start_on(
    listener: TcpListener,
    cfg: TransportConfig,
    inbound: mpsc::UnboundedSender<(u64, Message)>,
) -> PeerSender {
    let max_frame = cfg.max_frame.min(u32::MAX as usize);
    // A server listed among its own peers would dial itself and accept its own frames.
    let peers: BTreeMap<u64, String> = cfg
        .peers
        .into_iter()
        .filter(|&(id, _)| id != cfg.self_id)
        .collect();
    let (stop_tx, stop) = watch::channel(false);
    let shared = Arc::new(Shared {
        links: Mutex::new(BTreeMap::new()),
        stop: stop_tx,
        runtime: tokio::runtime::Handle::current(),
        hello: handshake_frame(&cfg.ensemble_id, cfg.self_id),
        self_id: cfg.self_id,
        max_frame,
        tls: cfg.tls.as_ref().map(|t| t.dial.clone()),
    });
    let acceptor = Arc::new(Acceptor {
        self_id: cfg.self_id,
        max_frame,
        tls: cfg.tls.map(|t| t.accept),
        newest: Mutex::new(BTreeMap::new()),
        inbound,
        lost: cfg.lost,
    });
    tokio::spawn(accept_loop(listener, acceptor, stop));
    let sender = PeerSender { shared };
    sender.set_peers(peers);
    sender
}

/// The handle the core sends through; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PeerSender {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    links: Mutex<BTreeMap<u64, Arc<Link>>>,
    stop: watch::Sender<bool>,
    /// Dialers are started from the core's thread too, which is not a runtime worker.
    runtime: tokio::runtime::Handle,
    hello: Vec<u8>,
    self_id: u64,
    max_frame: usize,
    tls: Option<ClientTls>,
}

/// The queue of the live outbound connection to one peer, `None` while there is none.
/// Replacing the sender is how a broken connection discards its backlog.
#[derive(Debug)]
struct Link {
    addr: String,
    queue: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    /// Set when the peer leaves the membership (or moves): its dialer stops.
    retired: watch::Sender<bool>,
}

impl Link {
    fn set(&self, queue: Option<mpsc::UnboundedSender<Message>>) {
        *self.queue.lock().unwrap_or_else(PoisonError::into_inner) = queue;
    }

    #[allow(dead_code)]
    fn is_up(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

impl PeerSender {
    /// Dials exactly these peers (id -> `host:quorumPort`) from now on: new ones are
    /// connected, removed ones closed, one whose address changed redialled.
    pub(crate) fn set_peers(&self, peers: BTreeMap<u64, String>) {
        let shared = &self.shared;
        let mut links = shared.links.lock().unwrap_or_else(PoisonError::into_inner);
        links.retain(|id, link| {
            let keep = peers.get(id) == Some(&link.addr);
            if !keep {
                link.retired.send_replace(true);
                link.set(None);
            }
            keep
        });
        for (&peer, addr) in &peers {
            if peer == shared.self_id || links.contains_key(&peer) {
                continue;
            }
            let link = Arc::new(Link {
                addr: addr.clone(),
                queue: Mutex::new(None),
                retired: watch::channel(false).0,
            });
            links.insert(peer, Arc::clone(&link));
            let dialer = Dialer {
                link,
                peer,
                hello: shared.hello.clone(),
                max_frame: shared.max_frame,
                stop: shared.stop.subscribe(),
                tls: shared.tls.clone(),
            };
            shared.runtime.spawn(
                dialer
                    .run()
                    .instrument(info_span!("quorum_out", peer, %addr)),
            );
        }
    }

    /// Queues `msg` for peer `to`. Never blocks and never fails: without a live link
    /// (or for an id that is not a peer) the message is dropped, as a broken TCP
    /// stream would drop it.
    pub(crate) fn send(&self, to: u64, msg: Message) {
        let link = self
            .shared
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&to)
            .cloned();
        let Some(link) = link else {
            debug!(
                to,
                kind = msg.kind(),
                "dropping message for an unknown peer"
            );
            return;
        };
        let queue = link.queue.lock().unwrap_or_else(PoisonError::into_inner);
        match queue.as_ref() {
            Some(tx) => {
                if let Err(mpsc::error::SendError(msg)) = tx.send(msg) {
                    debug!(to, kind = msg.kind(), "link going down; dropping message");
                }
            }
            None => debug!(to, kind = msg.kind(), "no link; dropping message"),
        }
    }

    /// Stops every task: links close, the listener is released, queued messages are
    /// dropped and later sends too.
    pub(crate) fn shutdown(&self) {
        self.shared.stop.send_replace(true);
        let links = self
            .shared
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for link in links.values() {
            link.set(None);
        }
    }

    /// Peers this server currently has a live outbound connection to.
    /// For status reports (the admin API) and the tests.
    #[allow(dead_code)]
    pub(crate) fn connected(&self) -> BTreeSet<u64> {
        self.shared
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, link)| link.is_up())
            .map(|(&id, _)| id)
            .collect()
    }
}

/// Resolves once the transport is shutting down (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// The outbound side of one peer.
struct Dialer {
    link: Arc<Link>,
    peer: u64,
    hello: Vec<u8>,
    max_frame: usize,
    stop: watch::Receiver<bool>,
    tls: Option<ClientTls>,
}

/// Why an outbound connection ended.
enum Ended {
    Shutdown,
    Broken(String),
}

impl Dialer {
    async fn run(mut self) {
        let link = Arc::clone(&self.link);
        let _ = self.peer;
        self.dial(&link).await;
        if *link.retired.borrow() {
            info!("peer left the membership; link closed");
        }
    }

    /// Connects and reconnects until the transport stops or the peer leaves the
    /// membership. A peer that leaves still gets what was queued for it (the COMMIT
    /// of its own removal, say): its queue is closed, not dropped, and drains first.
    async fn dial(&mut self, link: &Link) {
        let mut retired = link.retired.subscribe();
        let mut backoff = MIN_BACKOFF;
        // Consecutive failed attempts (refused, or closed within MAX_BACKOFF): only the
        // first of a streak is logged at info, so a peer that is down or rejects us
        // does not flood the log.
        let mut failures = 0u32;
        loop {
            if *retired.borrow_and_update() {
                return;
            }
            let attempt = tokio::select! {
                () = stopped(&mut self.stop) => return,
                _ = retired.changed() => return,
                r = connect(&link.addr, &self.hello, self.tls.as_ref()) => r,
            };
            match attempt {
                Ok(stream) => {
                    let up = Instant::now();
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    link.set(Some(tx));
                    if *retired.borrow() {
                        // Retired meanwhile: close the queue so the pump ends.
                        link.set(None);
                    }
                    if failures == 0 {
                        info!("quorum link up");
                    } else {
                        debug!("quorum link up");
                    }
                    let ended = match stream {
                        Dialled::Plain(s) => {
                            pump(s, &mut rx, self.max_frame, failures, &mut self.stop).await
                        }
                        Dialled::Tls(s) => {
                            pump(*s, &mut rx, self.max_frame, failures, &mut self.stop).await
                        }
                    };
                    link.set(None);
                    drop(rx);
                    match ended {
                        Ended::Shutdown => return,
                        Ended::Broken(why) if up.elapsed() >= MAX_BACKOFF => {
                            info!(reason = %why, "quorum link down; reconnecting");
                            failures = 0;
                            backoff = MIN_BACKOFF;
                        }
                        Ended::Broken(why) => {
                            if failures == 0 {
                                info!(reason = %why, "quorum link closed right after connecting (a peer that rejects our handshake does this: see its log)");
                            } else {
                                debug!(reason = %why, "quorum link closed right after connecting");
                            }
                            failures += 1;
                        }
                    }
                }
                Err(e) => {
                    if failures == 0 {
                        info!(error = %e, "cannot reach peer; retrying");
                    } else {
                        debug!(error = %e, "cannot reach peer; retrying");
                    }
                    failures += 1;
                }
            }
            tokio::select! {
                () = stopped(&mut self.stop) => return,
                _ = retired.changed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// An outbound connection, as `sslQuorum` says.
enum Dialled {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Dials `addr` and identifies this server with `hello`; the link is usable once this
/// returns. With TLS the peer's certificate is checked against the name in `addr`
/// (unless `ssl.quorum.hostnameVerification=false`).
async fn connect(addr: &str, hello: &[u8], tls: Option<&ClientTls>) -> io::Result<Dialled> {
    let dial = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let Some(tls) = tls else {
            return Ok(Dialled::Plain(stream));
        };
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(tls.borrow().clone());
        Ok::<_, io::Error>(Dialled::Tls(Box::new(
            connector.connect(name, stream).await?,
        )))
    };
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, dial)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    match &mut stream {
        Dialled::Plain(s) => s.write_all(hello).await?,
        Dialled::Tls(s) => {
            s.write_all(hello).await?;
            s.flush().await?;
        }
    }
    Ok(stream)
}

/// Writes queued messages until the connection breaks or the transport stops.
/// The peer never writes on this connection, so a readable socket means it closed
/// (or misbehaves): either way the link is over. This notices a restarted peer
/// before the next write would.
async fn pump(
    stream: impl SplitStream,
    rx: &mut mpsc::UnboundedReceiver<Message>,
    max_frame: usize,
    failures: u32,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let (mut rd, wr) = stream.split();
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut probe = [0u8; 1];
    // After failed attempts "link up" waits until the link has lasted, so a peer that
    // keeps rejecting us does not log it once a second.
    let mut announce = (failures > 0).then(|| tokio::time::Instant::now() + MAX_BACKOFF);
    loop {
        let first = tokio::select! {
            () = stopped(stop) => return Ended::Shutdown,
            () = tokio::time::sleep_until(announce.unwrap_or_else(tokio::time::Instant::now)), if announce.is_some() => {
                announce = None;
                info!(failed_attempts = failures, "quorum link up");
                continue;
            }
            r = rd.read(&mut probe) => return Ended::Broken(match r {
                Ok(0) => "closed by the peer".to_owned(),
                Ok(_) => "the peer wrote on a send-only link".to_owned(),
                Err(e) => e.to_string(),
            }),
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Ended::Shutdown,
            },
        };
        let batch = async {
            write(&mut wr, first, max_frame).await?;
            for _ in 1..MAX_BATCH {
                let Ok(m) = rx.try_recv() else { break };
                write(&mut wr, m, max_frame).await?;
            }
            wr.flush().await
        };
        tokio::select! {
            () = stopped(stop) => return Ended::Shutdown,
            r = batch => if let Err(e) = r {
                return Ended::Broken(e.to_string());
            },
        }
    }
}

async fn write(
    wr: &mut BufWriter<impl AsyncWrite + Unpin>,
    msg: Message,
    max_frame: usize,
) -> io::Result<()> {
    let kind = msg.kind();
    let frame = encode_frame(msg);
    let len = frame_body_len(&frame);
    if len > max_frame {
        // The peer would close the link over it; dropping one message is cheaper.
        warn!(
            kind,
            len,
            max = max_frame,
            "dropping a message larger than the frame limit"
        );
        return Ok(());
    }
    wr.write_all(&frame).await
}

/// The inbound side, shared by every accepted connection.
struct Acceptor {
    self_id: u64,
    max_frame: usize,
    /// Per peer, a counter bumped by each accepted connection; an older connection
    /// that sees it move closes itself.
    newest: Mutex<BTreeMap<u64, watch::Sender<u64>>>,
    inbound: mpsc::UnboundedSender<(u64, Message)>,
    lost: Option<mpsc::UnboundedSender<u64>>,
    tls: Option<ServerTls>,
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Arc<Acceptor>,
    mut stop: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, self_id = acceptor.self_id, "accepting quorum connections");
    }
    loop {
        let accepted = tokio::select! {
            () = stopped(&mut stop) => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, addr)) => {
                let span = info_span!("quorum_in", %addr, peer = field::Empty);
                let acceptor = Arc::clone(&acceptor);
                let stop = stop.clone();
                tokio::spawn(
                    async move {
                        let _ = stream.set_nodelay(true);
                        let Some(tls) = &acceptor.tls else {
                            return serve(stream, addr, acceptor, stop).await;
                        };
                        let config = tls.borrow().clone();
                        match crate::tls::accept(config, stream, HANDSHAKE_TIMEOUT).await {
                            Ok(s) => serve(s, addr, acceptor, stop).await,
                            Err(e) => warn!("rejecting quorum connection from {addr}: {e}"),
                        }
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accepting a quorum connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One accepted connection: the handshake, then frames until it ends.
async fn serve(
    mut stream: impl AsyncRead + Unpin,
    addr: SocketAddr,
    acceptor: Arc<Acceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let first = tokio::select! {
        () = stopped(&mut stop) => return,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut stream, MAX_HANDSHAKE_FRAME)) => r,
    };
    let hello = match first {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => {
            debug!("quorum connection closed before its handshake");
            return;
        }
        Ok(Err(e)) => {
            warn!("rejecting quorum connection from {addr}: bad handshake frame: {e}");
            return;
        }
        Err(_) => {
            warn!(
                "rejecting quorum connection from {addr}: no handshake within {HANDSHAKE_TIMEOUT:?}"
            );
            return;
        }
    };
    let Some(peer) = acceptor.check(addr, &hello) else {
        return;
    };
    tracing::Span::current().record("peer", peer);
    let newest = acceptor
        .newest
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(peer)
        .or_insert_with(|| watch::channel(0u64).0)
        .clone();
    let newest = &newest;
    let mut me = 0;
    newest.send_modify(|n| {
        *n += 1;
        me = *n;
    });
    // `wait_for` looks at the current value first, so a connection that was already
    // superseded before subscribing closes at once.
    let mut superseded = newest.subscribe();
    debug!("quorum connection accepted");

    loop {
        let frame = tokio::select! {
            () = stopped(&mut stop) => return,
            _ = superseded.wait_for(|&n| n != me) => {
                info!("closing quorum connection: the peer opened a newer one");
                return;
            }
            r = read_frame(&mut stream, acceptor.max_frame) => r,
        };
        let bytes = match frame {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                debug!("quorum connection closed by the peer");
                acceptor.report_lost(peer, newest, me);
                return;
            }
            Err(FrameError::TooLarge { len, max }) => {
                warn!(
                    len,
                    max, "closing quorum connection: frame exceeds the limit"
                );
                return;
            }
            Err(FrameError::Io(e)) => {
                debug!(error = %e, "quorum connection broke");
                acceptor.report_lost(peer, newest, me);
                return;
            }
        };
        match codec::decode(&bytes) {
            Ok(msg) => {
                if acceptor.inbound.send((peer, msg)).is_err() {
                    debug!("core gone; closing quorum connection");
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, len = bytes.len(), "closing quorum connection: undecodable message");
                return;
            }
        }
    }
}

impl Acceptor {
    /// A connection from `peer` ended; if no newer one replaced it, say so.
    fn report_lost(&self, peer: u64, newest: &watch::Sender<u64>, me: u64) {
        if *newest.borrow() == me {
            if let Some(lost) = &self.lost {
                let _ = lost.send(peer);
            }
        }
    }

    /// The sender's id if the handshake is one of ours; otherwise says why not.
    fn check(&self, addr: SocketAddr, bytes: &[u8]) -> Option<u64> {
        let why = match codec::decode_handshake(bytes) {
            Err(e) => format!("malformed handshake ({e})"),
            Ok(h) if h.magic != MAGIC => format!(
                "magic {:?} != {MAGIC:?} (not a Rookery quorum peer?)",
                h.magic
            ),
            Ok(h) if h.protocol_version != PROTOCOL_VERSION => format!(
                "protocol version {} != ours {PROTOCOL_VERSION}",
                h.protocol_version
            ),
            Ok(h) if h.sender_id == self.self_id => format!(
                "sender id {} is this server's own (duplicate myid?)",
                h.sender_id
            ),
            Ok(h) => return Some(h.sender_id),
        };
        warn!("rejecting quorum connection from {addr}: {why}");
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::UnboundedReceiver;

    type Inbox = UnboundedReceiver<(u64, Message)>;

    async fn listener() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    /// Servers 1..=n, each with a bound listener, and their addresses.
    async fn listeners(n: u64) -> (BTreeMap<u64, TcpListener>, BTreeMap<u64, SocketAddr>) {
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let (l, a) = listener().await;
            listeners.insert(id, l);
            addrs.insert(id, a);
        }
        (listeners, addrs)
    }

    fn config(self_id: u64, ensemble: &str, addrs: &BTreeMap<u64, SocketAddr>) -> TransportConfig {
        TransportConfig {
            self_id,
            ensemble_id: ensemble.to_owned(),
            listen: addrs[&self_id],
            peers: addrs
                .iter()
                .filter(|(id, _)| **id != self_id)
                .map(|(&id, &a)| (id, a.to_string()))
                .collect(),
            max_frame: DEFAULT_MAX_FRAME,
            lost: None,
            tls: None,
        }
    }

    fn node(l: TcpListener, cfg: TransportConfig) -> (PeerSender, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        (start_on(l, cfg, tx), rx)
    }

    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn recv(inbox: &mut Inbox) -> (u64, Message) {
        tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("timed out waiting for a message")
            .expect("inbound channel closed")
    }

    #[test]
    fn ensemble_id_is_stable_and_order_free() {
        let a =
            ensemble_id([(1, "a:2888:3888".to_owned()), (2, "b:2888:3888".to_owned())].into_iter());
        let b =
            ensemble_id([(2, "b:2888:3888".to_owned()), (1, "a:2888:3888".to_owned())].into_iter());
        let c =
            ensemble_id([(1, "a:2888:3888".to_owned()), (2, "c:2888:3888".to_owned())].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    fn tls_for(dir: &std::path::Path, ca: &rookery_tests::certs::TestCa, id: u64) -> QuorumTls {
        let me = ca.issue(&format!("server{id}"), dir, &format!("server{id}"));
        let mut settings = crate::tls::TlsSettings::new("ssl.quorum.", me.key_store);
        settings.trust_store = Some(ca.write_trust_store(dir));
        QuorumTls {
            accept: crate::tls::server_tls(settings.clone(), &[]).unwrap(),
            dial: crate::tls::client_tls(settings).unwrap(),
        }
    }

    #[tokio::test]
    async fn tls_links_carry_messages_and_keep_out_a_stranger() {
        use rookery_tests::certs::TestCa;
        let dir = tempfile::tempdir().unwrap();
        let ours = TestCa::new("ours");
        let theirs = TestCa::new("theirs");
        let (listeners, addrs) = listeners(3).await;
        let mut nodes = BTreeMap::new();
        for (id, l) in listeners {
            let mut cfg = config(id, "ens", &addrs);
            // Server 3's certificate and trust come from another CA.
            let ca = if id == 3 { &theirs } else { &ours };
            cfg.tls = Some(tls_for(dir.path(), ca, id));
            nodes.insert(id, node(l, cfg));
        }
        eventually("1 -> 2 up", || nodes[&1].0.connected().contains(&2)).await;
        eventually("2 -> 1 up", || nodes[&2].0.connected().contains(&1)).await;
        for token in 0..50 {
            nodes[&1].0.send(2, Message::Sync { token });
            nodes[&3].0.send(
                1,
                Message::Sync {
                    token: 1000 + token,
                },
            );
            nodes[&1].0.send(
                3,
                Message::Sync {
                    token: 2000 + token,
                },
            );
        }
        for token in 0..50 {
            let (from, msg) = recv(&mut nodes.get_mut(&2).unwrap().1).await;
            assert_eq!((from, msg), (1, Message::Sync { token }));
        }
        // Give the stranger's frames time to arrive, were they let through.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            nodes.get_mut(&1).unwrap().1.try_recv().is_err(),
            "server 1 took frames from a peer it does not trust"
        );
        assert!(
            nodes.get_mut(&3).unwrap().1.try_recv().is_err(),
            "server 3 took frames from a peer it does not trust"
        );
        for (sender, _) in nodes.values() {
            sender.shutdown();
        }
    }

    #[tokio::test]
    async fn plain_peer_is_refused_by_a_tls_listener() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rookery_tests::certs::TestCa::new("ca");
        let (l1, a1) = listener().await;
        let (l2, a2) = listener().await;
        let addrs = BTreeMap::from([(1, a1), (2, a2)]);
        let mut c1 = config(1, "ens", &addrs);
        c1.tls = Some(tls_for(dir.path(), &ca, 1));
        let (s1, mut in1) = node(l1, c1);
        let (s2, _in2) = node(l2, config(2, "ens", &addrs));
        for token in 0..20 {
            s2.send(1, Message::Sync { token });
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(in1.try_recv().is_err(), "a TLS listener took plain frames");
        s1.shutdown();
        s2.shutdown();
    }

    #[tokio::test]
    async fn three_servers_exchange_messages_in_order() {
        let (listeners, addrs) = listeners(3).await;
        let mut nodes = BTreeMap::new();
        for (id, l) in listeners {
            nodes.insert(id, node(l, config(id, "ens", &addrs)));
        }
        for (id, (sender, _)) in &nodes {
            let want: BTreeSet<u64> = addrs.keys().copied().filter(|p| p != id).collect();
            eventually("all links up", || sender.connected() == want).await;
        }

        const N: u64 = 200;
        for i in 0..N {
            for (&from, (sender, _)) in &nodes {
                for &to in addrs.keys().filter(|&&to| to != from) {
                    // The token names the sender and the sequence number.
                    sender.send(
                        to,
                        Message::Sync {
                            token: from * 1_000_000 + i,
                        },
                    );
                }
            }
        }
        for (&id, (_, inbox)) in &mut nodes {
            let mut next: BTreeMap<u64, u64> = BTreeMap::new();
            for _ in 0..2 * N {
                let (from, msg) = recv(inbox).await;
                assert_ne!(from, id);
                let Message::Sync { token } = msg else {
                    panic!("unexpected {msg:?}");
                };
                assert_eq!(token / 1_000_000, from, "sender id is the connection's");
                let seq = next.entry(from).or_default();
                assert_eq!(token % 1_000_000, *seq, "FIFO from {from} to {id}");
                *seq += 1;
            }
            assert!(next.values().all(|&n| n == N));
        }
        for (sender, _) in nodes.values() {
            sender.shutdown();
        }
    }

    #[tokio::test]
    async fn peers_join_and_leave_at_run_time() {
        let (la, a) = listener().await;
        let (lb, b) = listener().await;
        let (lc, c) = listener().await;
        let ab: BTreeMap<u64, SocketAddr> = [(1, a), (2, b)].into();
        let (sa, _inbox_a) = node(la, config(1, "ens", &ab));
        let (sb, mut inbox_b) = node(lb, config(2, "ens", &ab));
        // Server 3 joins with a server list of its own (a different ensemble id).
        let abc: BTreeMap<u64, SocketAddr> = [(1, a), (2, b), (3, c)].into();
        let (sc, mut inbox_c) = node(lc, config(3, "joiner", &abc));
        eventually("c's link to b", || sc.connected().contains(&2)).await;
        sc.send(2, Message::Sync { token: 3 });
        assert_eq!(recv(&mut inbox_b).await, (3, Message::Sync { token: 3 }));
        // b learns of c only when its membership does.
        assert!(!sb.connected().contains(&3));
        sb.set_peers([(1, a.to_string()), (3, c.to_string())].into());
        eventually("b's link to c", || sb.connected().contains(&3)).await;
        sb.send(3, Message::Sync { token: 2 });
        assert_eq!(recv(&mut inbox_c).await, (2, Message::Sync { token: 2 }));
        // c leaves b's membership: the link closes and sends are dropped.
        sb.set_peers([(1, a.to_string())].into());
        eventually("b's link to c closed", || !sb.connected().contains(&3)).await;
        sb.send(3, Message::Sync { token: 99 });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(inbox_c.try_recv().is_err(), "nothing after c left");
        for s in [sa, sb, sc] {
            s.shutdown();
        }
    }

    #[tokio::test]
    async fn a_restarted_peer_is_reconnected() {
        let (la, a) = listener().await;
        let (lb, b) = listener().await;
        let addrs: BTreeMap<u64, SocketAddr> = [(1, a), (2, b)].into();
        let (sa, _inbox_a) = node(la, config(1, "ens", &addrs));
        let (sb, mut inbox_b) = node(lb, config(2, "ens", &addrs));
        eventually("a's link to b", || sa.connected().contains(&2)).await;
        sa.send(2, Message::Ack { zxid: 1 });
        assert_eq!(recv(&mut inbox_b).await, (1, Message::Ack { zxid: 1 }));

        sb.shutdown();
        eventually("a notices b is gone", || !sa.connected().contains(&2)).await;
        // Sent while b is down: dropped, never delivered to the new b.
        sa.send(2, Message::Ack { zxid: 2 });

        // b comes back on the same port (its old listener closes asynchronously).
        let lb = loop {
            match TcpListener::bind(b).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let (sb, mut inbox_b) = node(lb, config(2, "ens", &addrs));
        eventually("a reconnects to b", || sa.connected().contains(&2)).await;
        sa.send(2, Message::Ack { zxid: 3 });
        assert_eq!(recv(&mut inbox_b).await, (1, Message::Ack { zxid: 3 }));
        sa.shutdown();
        sb.shutdown();
    }

    /// Raw sockets at server 1 of a two-server ensemble; returns its sender and inbox.
    async fn lone_server(max_frame: usize) -> (SocketAddr, PeerSender, Inbox) {
        let (la, a) = listener().await;
        // Peer 2's address is never listened on; only its id matters here.
        let (_, b) = listener().await;
        let mut cfg = config(1, "ens", &[(1, a), (2, b)].into());
        cfg.max_frame = max_frame;
        let (s, inbox) = node(la, cfg);
        (a, s, inbox)
    }

    /// Reads until the server closes the socket; fails if it does not within 5 s.
    async fn assert_closed(mut sock: TcpStream) {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "connection left open: {n:?}"
        );
    }

    #[tokio::test]
    async fn bad_handshakes_and_frames_close_the_connection() {
        let (a, s, mut inbox) = lone_server(1024).await;

        // Garbage instead of a handshake.
        let mut sock = TcpStream::connect(a).await.unwrap();
        sock.write_all(b"\x00\x00\x00\x05hello").await.unwrap();
        assert_closed(sock).await;

        // This server's own id.
        let mut sock = TcpStream::connect(a).await.unwrap();
        sock.write_all(&handshake_frame("ens", 1)).await.unwrap();
        assert_closed(sock).await;

        // A valid handshake, a valid message, then an undecodable frame.
        let mut sock = TcpStream::connect(a).await.unwrap();
        sock.write_all(&handshake_frame("ens", 2)).await.unwrap();
        sock.write_all(&encode_frame(Message::Ack { zxid: 7 }))
            .await
            .unwrap();
        sock.write_all(b"\x00\x00\x00\x02\xff\xff").await.unwrap();
        assert_closed(sock).await;
        assert_eq!(recv(&mut inbox).await, (2, Message::Ack { zxid: 7 }));

        // A frame over the limit.
        let mut sock = TcpStream::connect(a).await.unwrap();
        sock.write_all(&handshake_frame("ens", 2)).await.unwrap();
        sock.write_all(&[0, 0, 0x10, 0]).await.unwrap();
        assert_closed(sock).await;
        assert!(inbox.try_recv().is_err());
        s.shutdown();
    }

    #[tokio::test]
    async fn a_newer_connection_replaces_an_older_one() {
        let (a, s, mut inbox) = lone_server(1024).await;
        let mut old = TcpStream::connect(a).await.unwrap();
        old.write_all(&handshake_frame("ens", 2)).await.unwrap();
        old.write_all(&encode_frame(Message::Ack { zxid: 1 }))
            .await
            .unwrap();
        assert_eq!(recv(&mut inbox).await, (2, Message::Ack { zxid: 1 }));

        let mut new = TcpStream::connect(a).await.unwrap();
        new.write_all(&handshake_frame("ens", 2)).await.unwrap();
        new.write_all(&encode_frame(Message::Ack { zxid: 2 }))
            .await
            .unwrap();
        assert_eq!(recv(&mut inbox).await, (2, Message::Ack { zxid: 2 }));
        assert_closed(old).await;
        s.shutdown();
    }

    #[tokio::test]
    async fn oversized_messages_are_dropped_by_the_sender() {
        let (la, a) = listener().await;
        let (lb, b) = listener().await;
        let addrs: BTreeMap<u64, SocketAddr> = [(1, a), (2, b)].into();
        let mut cfg = config(1, "ens", &addrs);
        cfg.max_frame = 100;
        let (sa, _ia) = node(la, cfg);
        let (sb, mut inbox_b) = node(lb, config(2, "ens", &addrs));
        eventually("a's link to b", || sa.connected().contains(&2)).await;
        sa.send(
            2,
            Message::Request {
                payload: vec![0; 200],
            },
        );
        sa.send(2, Message::Ack { zxid: 1 });
        assert_eq!(recv(&mut inbox_b).await, (1, Message::Ack { zxid: 1 }));
        assert!(sa.connected().contains(&2), "the link survives");
        sa.shutdown();
        sb.shutdown();
    }
}
