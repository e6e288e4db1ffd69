//! Runtime glue for a Rookery server.
//!
//! Layout:
//! - [`config`]: the operator's `zoo.cfg` and `myid`.
//! - [`server`]: start-up: storage, recovery, the core thread, the client listener.
//! - `core`: the one thread that orders everything (sessions, prep, group commit,
//!   apply, watches, replies).
//! - `conn`: one client connection: 4lw detection, handshake, frames in and out.
//! - `quorum`: the peer protocol and its transport between the servers of an ensemble.
//! - `words`, `stats`: the four-letter words' answers and the counters behind them.
//! - `metrics`: Prometheus histograms, the `/metrics` endpoint
//!   (`metricsProvider.httpPort`) and the storage wrapper that times fsyncs.
//! - [`four_letter`]: the client side of four-letter words (`rookery status`).
//! - `core::admin`: the gRPC admin API's handle on the core; [`restore`]: seeding a
//!   new server from a snapshot the admin API saved.
//! - [`tls`]: rustls configurations from PEM files named as ZooKeeper names them,
//!   reloaded when the files change (client port, quorum, admin API).
//! - `inject`: test-only known bugs (`inject-bugs` feature, `ROOKERY_INJECT_BUG`).

pub mod config;
mod conn;
mod core;
mod forward;
pub mod four_letter;
mod inject;
mod membership;
mod metrics;
mod quorum;
mod recover;
pub mod restore;
pub mod server;
mod stats;
pub mod tls;
mod words;

pub use config::{ConfigError, ConfigWarning, ServerConfig, ServerMode};
pub use server::{RunningServer, ServerError, start};
