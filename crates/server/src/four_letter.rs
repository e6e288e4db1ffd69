//! The client side of ZooKeeper's four-letter words (`srvr`, `ruok`, `mntr`, ...).
//!
//! Behaves like ZooKeeper's `FourLetterWordMain`: connect, send the four bytes, half-close,
//! read until the server closes, all under one timeout. `rookery status` and the cluster
//! tooling use it against Rookery and Apache ZooKeeper alike.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `FourLetterWordMain`'s default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// Replies larger than this are cut off; `mntr`/`cons` on a big server stay well below.
const MAX_REPLY_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FourLetterError {
    #[error("'{0}' is not a four-letter word")]
    BadCommand(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{host}:{port} resolves to no address")]
    NoAddress { host: String, port: u16 },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("talking to {host}:{port}: {source}")]
    Io {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("{host}:{port} did not answer within {timeout:?}")]
    Timeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
}

/// Sends `command` to `host:port` and returns everything the server wrote back.
pub async fn send(
    host: &str,
    port: u16,
    command: &str,
    timeout: Duration,
) -> Result<String, FourLetterError> {
    if command.len() != 4 || !command.is_ascii() {
        return Err(FourLetterError::BadCommand(command.to_string()));
    }
    let timed_out = || FourLetterError::Timeout {
        host: host.to_string(),
        port,
        timeout,
    };
    tokio::time::timeout(timeout, exchange(host, port, command))
        .await
        .map_err(|_| timed_out())?
}

async fn exchange(host: &str, port: u16, command: &str) -> Result<String, FourLetterError> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| FourLetterError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    let mut last_err = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let mut stream = match (stream, last_err) {
        (Some(s), _) => s,
        (None, Some(source)) => {
            return Err(FourLetterError::Connect {
                host: host.to_string(),
                port,
                source,
            });
        }
        (None, None) => {
            return Err(FourLetterError::NoAddress {
                host: host.to_string(),
                port,
            });
        }
    };
    let io_err = |source| FourLetterError::Io {
        host: host.to_string(),
        port,
        source,
    };
    stream.write_all(command.as_bytes()).await.map_err(io_err)?;
    stream.shutdown().await.map_err(io_err)?;
    let mut reply = Vec::new();
    stream
        .take(MAX_REPLY_BYTES)
        .read_to_end(&mut reply)
        .await
        .map_err(io_err)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn sends_the_word_and_reads_until_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            sock.read_to_end(&mut got).await.unwrap();
            sock.write_all(b"Zookeeper version: x\nMode: standalone\n")
                .await
                .unwrap();
            got
        });
        let reply = send("127.0.0.1", port, "srvr", DEFAULT_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(reply, "Zookeeper version: x\nMode: standalone\n");
        assert_eq!(server.await.unwrap(), b"srvr");
    }

    #[tokio::test]
    async fn refused_connection_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = send("127.0.0.1", port, "srvr", DEFAULT_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, FourLetterError::Connect { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(sock);
        });
        let err = send("127.0.0.1", port, "srvr", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, FourLetterError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn only_four_letters() {
        assert!(matches!(
            send("127.0.0.1", 1, "status", DEFAULT_TIMEOUT).await,
            Err(FourLetterError::BadCommand(_))
        ));
    }
}
