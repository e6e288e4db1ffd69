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

/// A client that sends `stat\n` and half-closes only after the answer is in (zktop
/// does this) still ends cleanly: the server reads what followed the word before it
/// closes, since closing with input unread resets the connection and the client's
/// own shutdown then fails ("Transport endpoint is not connected": zktop showed the
/// server as unavailable). Rookery only: Apache ZooKeeper 3.8 has the same race (this
/// test passed against it on one run and failed with that error in a CI run).
#[test]
fn a_four_letter_word_client_that_half_closes_late_ends_cleanly() {
    use std::io::{Read, Write};
    if rookery_tests::Target::from_env() == rookery_tests::Target::ZooKeeper {
        eprintln!("skipped: Apache ZooKeeper resets such a connection at times too");
        return;
    }
    let server = Server::start();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"ruok\n").unwrap();
    // Time for the server to answer and, before the fix, to close and reset.
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.shutdown(std::net::Shutdown::Write)
        .expect("the connection is still there to half-close");
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .expect("the answer, then a clean end of stream");
    assert_eq!(answer, "imok");
}
