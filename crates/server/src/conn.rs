//! One client connection: four-letter-word detection, the handshake, then frames in
//! and out. The connection owns no state of the tree; it turns bytes into
//! [`CoreCmd`]s and writes back whatever the core sends it, so that all ordering
//! decisions live in one place (the core).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rookery_wire::Record;
use rookery_wire::frame::{four_letter_word, split_frame};
use rookery_wire::proto::{
    ClientRequest, ConnectRequest, Request, decode_request, decode_request_header,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::core::{ConnId, CoreCmd, CoreHandle, Outbound};
use crate::tls::SplitStream;

/// Limits a connection enforces before the core sees anything.
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    pub max_frame: usize,
    /// A peer that has not finished its handshake by then is dropped, so idle sockets
    /// cannot pile up.
    pub handshake_timeout: Duration,
}

/// How long a four-letter-word connection is kept open after the answer, for the
/// client to close its side.
const FOUR_LETTER_LINGER: Duration = Duration::from_secs(1);

/// Reads and drops what a four-letter-word client sent after the word (`stat\n`'s
/// newline) until it closes its side, for at most [`FOUR_LETTER_LINGER`] and a few
/// KiB. Closing a socket with input unread makes the kernel send a reset instead of
/// ending the stream: a client that answered quickly then fails its own
/// `shutdown(SHUT_WR)` (zktop: "Transport endpoint is not connected", and it shows
/// the server as unavailable) or can lose the answer.
async fn drain_until_closed(stream: &mut (impl AsyncRead + Unpin)) {
    let mut sink = [0u8; 512];
    let drain = async {
        for _ in 0..8 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(FOUR_LETTER_LINGER, drain).await;
}

pub(crate) async fn serve(
    stream: impl SplitStream,
    peer: SocketAddr,
    conn: ConnId,
    core: CoreHandle,
    limits: Arc<ConnLimits>,
) {
    let mut stream = stream;
    let mut first = [0u8; 4];
    match tokio::time::timeout(limits.handshake_timeout, stream.read_exact(&mut first)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "connection closed before its first bytes");
            return;
        }
        Err(_) => {
            info!(%peer, "closing connection that sent nothing");
            return;
        }
    }
    if let Some(word) = four_letter_word(first) {
        let (tx, rx) = oneshot::channel();
        if core
            .send(CoreCmd::FourLetter {
                word,
                peer,
                reply: tx,
            })
            .is_err()
        {
            return;
        }
        if let Ok(text) = rx.await {
            let _ = stream.write_all(text.as_bytes()).await;
        }
        let _ = stream.shutdown().await;
        drain_until_closed(&mut stream).await;
        return;
    }

    // Not a 4lw: those four bytes are the length prefix of the ConnectRequest.
    let len = i32::from_be_bytes(first);
    let Some(len) = usize::try_from(len).ok().filter(|n| *n <= limits.max_frame) else {
        warn!(%peer, len, "closing connection: handshake length out of range (Len error)");
        return;
    };
    let mut payload = vec![0u8; len];
    match tokio::time::timeout(limits.handshake_timeout, stream.read_exact(&mut payload)).await {
        Ok(Ok(_)) => {}
        _ => {
            info!(%peer, "closing connection: incomplete handshake");
            return;
        }
    }
    let req = match ConnectRequest::from_bytes(&payload) {
        Ok(r) => r,
        Err(e) => {
            warn!(%peer, error = %e, "closing connection: malformed ConnectRequest");
            return;
        }
    };

    let (out, out_rx, queued) = OutQueue::new();
    let (rd, wr) = stream.split();
    if core
        .send(CoreCmd::Connect {
            conn,
            peer,
            req,
            out,
        })
        .is_err()
    {
        return;
    }
    // Whichever side ends first ends the connection: the client closing, bad input,
    // or the core asking to close (expired session, auth failure, session moved).
    tokio::select! {
        () = read_loop(rd, peer, conn, &core, &limits) => {}
        () = write_loop(wr, out_rx, queued) => {}
    }
    let _ = core.send(CoreCmd::Disconnected { conn });
}

/// What one read asks the socket for, at least a quarter of it: requests are small
/// and a client has few outstanding, so a larger buffer per connection would mostly
/// sit idle (a large frame grows the buffer as it arrives).
const READ_BYTES: usize = 16 * 1024;

async fn read_loop(
    mut rd: impl AsyncRead + Unpin,
    peer: SocketAddr,
    conn: ConnId,
    core: &CoreHandle,
    limits: &ConnLimits,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BYTES);
    loop {
        // Hand every complete frame in the buffer to the core, in order.
        let mut consumed = 0;
        loop {
            match split_frame(&buf[consumed..], limits.max_frame) {
                Ok(Some((payload, used))) => {
                    match decode_request(payload) {
                        Ok(req) => {
                            if core.send(CoreCmd::Request { conn, req }).is_err() {
                                return;
                            }
                        }
                        // A body ZooKeeper cannot read is answered MarshallingError under
                        // its xid, in order, and the connection stays: the core does that
                        // for an Unknown body under a client opcode.
                        Err(e) => match decode_request_header(payload) {
                            Ok(header) => {
                                debug!(%peer, error = %e, "malformed request body");
                                let body = Request::Unknown {
                                    op: header.op,
                                    body: payload.get(8..).unwrap_or_default().to_vec(),
                                };
                                let req = ClientRequest { header, body };
                                if core.send(CoreCmd::Request { conn, req }).is_err() {
                                    return;
                                }
                            }
                            Err(_) => {
                                warn!(%peer, error = %e, "closing connection: malformed request");
                                return;
                            }
                        },
                    }
                    consumed += used;
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: Len error");
                    return;
                }
            }
        }
        buf.drain(..consumed);
        if buf.capacity() - buf.len() < READ_BYTES / 4 {
            buf.reserve(READ_BYTES);
        }
        // Straight into the buffer's spare room: no bounce buffer to copy from.
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                debug!(%peer, "client closed the connection");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(%peer, error = %e, "read failed");
                return;
            }
        }
    }
}

/// Bytes a connection may have queued but not yet written before the server gives up
/// on it: a client that stops reading must not make the server buffer without bound.
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The outbound side of a connection as the core holds it: frames for the writer task,
/// and a count of the bytes not yet written.
#[derive(Debug, Clone)]
pub(crate) struct OutQueue {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
}

impl OutQueue {
    pub(crate) fn new() -> (
        OutQueue,
        mpsc::UnboundedReceiver<Outbound>,
        Arc<AtomicUsize>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            OutQueue {
                tx,
                queued: queued.clone(),
            },
            rx,
            queued,
        )
    }

    /// Queues one frame; false, queuing nothing, when the client is already
    /// [`MAX_QUEUED_BYTES`] behind (the caller then closes the connection).
    pub(crate) fn frame(&self, bytes: Vec<u8>) -> bool {
        let len = bytes.len() + 4;
        if self.queued.load(Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
            return false;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        let _ = self.tx.send(Outbound::Frame(bytes));
        true
    }

    /// Flush what came before, then close the socket.
    pub(crate) fn close(&self) {
        let _ = self.tx.send(Outbound::Close);
    }
}

async fn write_loop(
    mut wr: impl AsyncWrite + Unpin,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    queued: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        // Coalesce whatever is already queued into one write.
        let mut close = false;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outbound::Frame(bytes) => {
                    batch.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    batch.extend_from_slice(&bytes);
                }
                Outbound::Close => {
                    close = true;
                    break;
                }
            }
            if batch.len() < 1 << 20 {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if wr.write_all(&batch).await.is_err() {
                return;
            }
            queued.fetch_sub(batch.len(), Ordering::Relaxed);
            batch.clear();
        }
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}
