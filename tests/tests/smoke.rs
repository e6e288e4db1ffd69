//! The harness itself: a server starts, answers four-letter words as ZooKeeper does,
//! and comes back after kill -9.

use rookery_tests::{Server, four_letter, require};

#[test]
fn server_starts_reports_standalone_and_survives_kill9() {
    if rookery_tests::Target::from_env() == rookery_tests::Target::ZooKeeper {
        require!("zookeeper");
    }
    let mut server = Server::start();
    assert_eq!(four_letter(server.port, "ruok").as_deref(), Some("imok"));
    let srvr = four_letter(server.port, "srvr").unwrap();
    assert!(srvr.contains("Mode: standalone\n"), "{srvr}");
    assert!(srvr.starts_with("Zookeeper version: "), "{srvr}");
    server.kill9();
    assert!(!server.is_running());
    server.restart();
    assert_eq!(four_letter(server.port, "ruok").as_deref(), Some("imok"));
}
