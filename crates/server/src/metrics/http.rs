//! The `/metrics` endpoint: a deliberately small HTTP/1.1 server on tokio.
//!
//! Why not an HTTP crate: a scrape is one GET and one reply. This answers `GET` and
//! `HEAD /metrics` with the core's exposition, any other path with 404, any other
//! method on `/metrics` with 405, and anything that is not an HTTP/1.x request head
//! with 400, then closes the connection (`Connection: close`, which every scraper
//! handles). Request bodies are never read; a head larger than [`MAX_HEAD_BYTES`] or
//! slower than [`REQUEST_TIMEOUT`] is refused, and at most [`MAX_CONCURRENT`] scrapes
//! run at once, so the endpoint cannot be used to pile work onto the core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::CONTENT_TYPE;
use crate::core::{CoreCmd, CoreHandle};

/// A request line and headers of a scrape fit easily (Prometheus sends about 300 bytes).
const MAX_HEAD_BYTES: usize = 8192;
/// The whole exchange: read the request, ask the core, write the reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONCURRENT: usize = 16;

/// The running endpoint.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Binds `host:port`; separate from [`serve`] so that start-up can fail on the port
/// before anything else runs.
pub(crate) async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}

/// Serves scrapes on `listener` until the task is aborted.
pub(crate) fn serve(listener: TcpListener, core: CoreHandle) -> std::io::Result<MetricsEndpoint> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, core));
    Ok(MetricsEndpoint { addr, task })
}

async fn accept_loop(listener: TcpListener, core: CoreHandle) {
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        // Taken before accepting: extra scrapers wait in the listen backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors, say: back off instead of spinning.
                warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let core = core.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(REQUEST_TIMEOUT, exchange(stream, peer, core)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, error = %e, "metrics scrape connection failed"),
                Err(_) => info!(%peer, "metrics request timed out; closing"),
            }
        });
    }
}

/// What the request head asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `GET` (`head: false`) or `HEAD` of `/metrics`.
    Metrics { head: bool },
    /// A well-formed request for something else, and the status it gets.
    Refused {
        status: &'static str,
        head: bool,
        allow: bool,
    },
}

/// Why the bytes are not an HTTP/1.x request head.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum BadRequest {
    #[error("the request head is not UTF-8")]
    NotText,
    #[error("malformed request line")]
    RequestLine,
    #[error("not HTTP/1.x: {0:?}")]
    Version(String),
    #[error("malformed header line")]
    Header,
}

async fn exchange(
    mut stream: TcpStream,
    peer: SocketAddr,
    core: CoreHandle,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut len = 0;
    let head_len = loop {
        if let Some(end) = head_end(&buf[..len]) {
            break end;
        }
        if len == buf.len() {
            info!(%peer, "metrics request head over {MAX_HEAD_BYTES} bytes; closing");
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
                false,
            )
            .await;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            debug!(%peer, "metrics connection closed before a full request");
            return Ok(());
        }
        len += n;
    };
    match parse(&buf[..head_len]) {
        Err(e) => {
            info!(%peer, error = %e, "bad metrics request; closing");
            respond(&mut stream, "400 Bad Request", "", false, false).await
        }
        Ok(Request::Refused {
            status,
            head,
            allow,
        }) => {
            debug!(%peer, status, "metrics request refused");
            respond(&mut stream, status, "", head, allow).await
        }
        Ok(Request::Metrics { head }) => {
            let (tx, rx) = oneshot::channel();
            let text = match core.send(CoreCmd::Metrics { reply: tx }) {
                Ok(()) => rx.await.ok(),
                Err(()) => None,
            };
            match text {
                Some(body) => respond(&mut stream, "200 OK", &body, head, false).await,
                None => respond(&mut stream, "503 Service Unavailable", "", head, false).await,
            }
        }
    }
}

/// The length of the head including its blank line, if it is all there. Lines may end
/// in CRLF or a bare LF (RFC 9112 lets a recipient accept that).
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        let rest = &buf[i..];
        if rest.starts_with(b"\n\r\n") {
            Some(i + 3)
        } else if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

fn parse(head: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(head).map_err(|_| BadRequest::NotText)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(BadRequest::RequestLine)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::RequestLine);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) || target.is_empty() {
        return Err(BadRequest::RequestLine);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(BadRequest::Version(version.chars().take(16).collect()));
    }
    for line in lines.filter(|l| !l.is_empty()) {
        match line.split_once(':') {
            Some((name, _)) if !name.is_empty() && !name.contains([' ', '\t']) => {}
            _ => return Err(BadRequest::Header),
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let head = method == "HEAD";
    Ok(match (method, path) {
        ("GET" | "HEAD", "/metrics") => Request::Metrics { head },
        (_, "/metrics") => Request::Refused {
            status: "405 Method Not Allowed",
            head,
            allow: true,
        },
        _ => Request::Refused {
            status: "404 Not Found",
            head,
            allow: false,
        },
    })
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
    allow: bool,
) -> std::io::Result<()> {
    let body = if body.is_empty() && !status.starts_with("200") {
        format!("{status}; metrics are at /metrics\n")
    } else {
        body.to_owned()
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if allow {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[test]
    fn parses_what_scrapers_send() {
        let prometheus = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:7000\r\nUser-Agent: Prometheus/2.45.0\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
        assert_eq!(head_end(prometheus), Some(prometheus.len()));
        assert_eq!(parse(prometheus), Ok(Request::Metrics { head: false }));
        assert_eq!(
            parse(b"HEAD /metrics?x=1 HTTP/1.0\n\n"),
            Ok(Request::Metrics { head: true })
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Request::Refused {
                status: "404 Not Found",
                ..
            })
        ));
        assert!(matches!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Ok(Request::Refused {
                status: "405 Method Not Allowed",
                allow: true,
                ..
            })
        ));
    }

    #[test]
    fn refuses_what_is_not_http() {
        assert_eq!(parse(b"ruok\n\n"), Err(BadRequest::RequestLine));
        assert_eq!(
            parse(b"GET /metrics HTTP/2.0\r\n\r\n"),
            Err(BadRequest::Version("HTTP/2.0".into()))
        );
        assert_eq!(
            parse(b"GET  /metrics HTTP/1.1\r\n\r\n"),
            Err(BadRequest::RequestLine)
        );
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"),
            Err(BadRequest::Header)
        );
        assert_eq!(
            parse(b"GET /\xff HTTP/1.1\r\n\r\n"),
            Err(BadRequest::NotText)
        );
        assert_eq!(head_end(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
    }

    /// A stand-in core that answers every scrape with `text`.
    fn fake_core(text: &'static str) -> CoreHandle {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                if let CoreCmd::Metrics { reply } = cmd {
                    let _ = reply.send(text.to_owned());
                }
            }
        });
        CoreHandle::new(tx)
    }

    async fn fetch(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_refuses_the_rest() {
        let listener = bind("127.0.0.1", 0).await.unwrap();
        let ep = serve(listener, fake_core("up 1\n")).unwrap();
        let ok = fetch(ep.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(
            ok,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\nup 1\n"
        );
        let head = fetch(ep.addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            head.ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
        let missing = fetch(ep.addr, b"GET /other HTTP/1.1\r\n\r\n").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let bad = fetch(ep.addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n").await;
        assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
        let huge = fetch(ep.addr, &[b'a'; MAX_HEAD_BYTES]).await;
        assert!(huge.starts_with("HTTP/1.1 431 "), "{huge}");
        ep.task.abort();
    }

    #[tokio::test]
    async fn a_stopped_core_is_unavailable() {
        let (tx, rx) = mpsc::unbounded_channel();
        drop(rx);
        let listener = bind("127.0.0.1", 0).await.unwrap();
        let ep = serve(listener, CoreHandle::new(tx)).unwrap();
        let reply = fetch(ep.addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}");
        ep.task.abort();
    }
}
