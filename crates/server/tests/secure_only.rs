//! A server with `secureClientPort` and no `clientPort`, started in-process: it opens
//! no plain listener, reports none, and serves four-letter words over TLS on its
//! secure port. (Sessions over TLS from real clients: tests/tests/tls_client.rs.)

use std::net::SocketAddr;
use std::sync::Arc;

use rookery_server::ServerConfig;
use rookery_tests::certs::{TestCa, client_config, four_letter_tls};
use rookery_tests::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn secure_only_server_listens_on_the_secure_port_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("secure-only");
    let trust = ca.write_trust_store(dir.path());
    let server_id = ca.issue("server", dir.path(), "server");
    let client_id = ca.issue("client", dir.path(), "client");
    let port = free_port();
    let cfg_path = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg_path,
        format!(
            "tickTime=2000\ndataDir={}\nsecureClientPort={port}\nsecureClientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=*\nssl.keyStore.location={}\nssl.trustStore.location={}\n",
            dir.path().join("data").display(),
            server_id.key_store.display(),
            trust.display(),
        ),
    )
    .unwrap();
    let cfg = ServerConfig::load(&cfg_path).expect("a secure-only zoo.cfg is valid");
    assert_eq!(cfg.client_listen_address(), None);

    let server = rookery_server::start(&cfg)
        .await
        .expect("a secure-only server starts");
    assert_eq!(server.client_addr(), None, "no plain listener");
    let secure = server.secure_client_addr().expect("the secure listener");
    assert_eq!(secure, SocketAddr::from(([127, 0, 0, 1], port)));

    let tls = Arc::new(client_config(&trust, &client_id));
    let ask = |word: &'static str| {
        let tls = tls.clone();
        tokio::task::spawn_blocking(move || four_letter_tls(secure, word, tls))
    };
    let srvr = ask("srvr").await.unwrap().expect("srvr over TLS");
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    let conf = ask("conf").await.unwrap().expect("conf over TLS");
    assert!(conf.lines().any(|l| l == "clientPort=-1"), "{conf}");
    assert!(
        conf.lines()
            .any(|l| l == format!("secureClientPort={port}")),
        "{conf}"
    );

    server.shutdown().await.expect("clean shutdown");
    assert!(
        std::net::TcpStream::connect(secure).is_err(),
        "the secure port still accepts after shutdown"
    );
}
