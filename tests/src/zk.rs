//! What the tests that drive servers through the Rust `zookeeper-client` crate share:
//! a runtime of their own (so the tests stay synchronous and the clients keep pinging
//! while a test blocks on a process), and the usual create options.

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, CreateOptions};

/// Two workers: enough for the clients, light on a 2-core CI machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A persistent znode anyone may do anything to.
pub fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// Connects to `addr` (`host:port`, or a connect string) with a 20 s session, panicking
/// with the address when it cannot.
pub fn connect(rt: &tokio::runtime::Runtime, addr: &str) -> Client {
    rt.block_on(
        Client::connector()
            .with_session_timeout(Duration::from_secs(20))
            .connect(addr),
    )
    .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}
