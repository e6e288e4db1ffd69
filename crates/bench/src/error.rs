//! What can go wrong in a cell; the run records it in the report and goes on.

/// Why a cell (or its setup) produced no value.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Client {
        what: String,
        source: zookeeper_client::Error,
    },
    #[error("{0}")]
    Timeout(String),
    /// The harness panicked (it panics with the servers' logs); the message is cut.
    #[error("harness: {0}")]
    Harness(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    pub fn client(what: impl Into<String>, source: zookeeper_client::Error) -> BenchError {
        BenchError::Client {
            what: what.into(),
            source,
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}
