//! Sessions through the `zookeeper-client` crate, with the harness's timeouts and the
//! mapping of its errors to Jepsen's outcomes.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rookery_jepsen::{Outcome, register::BAD_VERSION};
use zookeeper_client::{Client, Error as ZkError};

/// Larger than the harness's tick-based minimum (2 x 500 ms) so a short pause does not
/// expire every session.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(5);
/// After this an operation is recorded as indeterminate and its session abandoned.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// One connection attempt. A detached session is not closed when dropped: it expires
/// after the session timeout, as a crashed client's does.
pub(crate) async fn connect_once(connect: &str, detached: bool) -> Result<Client, ZkError> {
    let mut connector = Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_connection_timeout(Duration::from_secs(2));
    if detached {
        connector = connector.with_detached();
    }
    timed(OP_TIMEOUT * 2, connector.connect(connect)).await
}

pub(crate) async fn connect_retrying(connect: &str, within: Duration) -> Result<Client> {
    let until = Instant::now() + within;
    loop {
        match connect_once(connect, false).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= until => bail!("connecting to {connect}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// `op` within `limit`, a timeout becoming [`ZkError::Timeout`].
pub(crate) async fn timed<T>(
    limit: Duration,
    op: impl Future<Output = Result<T, ZkError>>,
) -> Result<T, ZkError> {
    tokio::time::timeout(limit, op)
        .await
        .unwrap_or(Err(ZkError::Timeout))
}

/// `op` within [`OP_TIMEOUT`].
pub(crate) async fn op<T>(op: impl Future<Output = Result<T, ZkError>>) -> Result<T, ZkError> {
    timed(OP_TIMEOUT, op).await
}

/// Which errors prove an update did nothing: everything else (timeouts, connection
/// loss, session expiry, "unexpected") leaves it indeterminate.
pub(crate) fn outcome_of(e: &ZkError) -> Outcome {
    match e {
        ZkError::BadVersion
        | ZkError::NoNode
        | ZkError::NodeExists
        | ZkError::NotEmpty
        | ZkError::NoAuth
        | ZkError::BadArguments(_) => Outcome::Fail,
        _ => Outcome::Info,
    }
}

pub(crate) fn error_text(e: &ZkError) -> String {
    match e {
        ZkError::BadVersion => BAD_VERSION.into(),
        other => other.to_string(),
    }
}

/// Whether the session is not worth keeping after this error.
pub(crate) fn session_lost(e: &ZkError) -> bool {
    matches!(
        e,
        ZkError::Timeout | ZkError::SessionExpired | ZkError::ClientClosed
    )
}

pub(crate) fn session_hex(c: &Client) -> String {
    format!("{:x}", c.session_id().0)
}
