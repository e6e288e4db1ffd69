//! `rookery serve` start-up: configuration errors stop it with file and line; an
//! ensemble configuration is logged and then refused honestly, since replication does
//! not exist yet. Serving itself is tested in the workspace's tests/.

use std::process::Command;

fn rookery() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rookery"));
    cmd.env("RUST_LOG", "info");
    cmd
}

#[test]
fn malformed_config_names_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(&cfg, "tickTime=2000\ndataDir=/d\nclientPort=21x81\n").unwrap();
    let out = rookery()
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3: clientPort: '21x81' is not a whole number",
            cfg.display()
        )),
        "{stderr}"
    );
}

#[test]
fn missing_myid_in_an_ensemble_names_the_myid_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort=2181\n\
             server.0=hadoop1:2888:3888\nserver.1=hadoop2:2888:3888\nserver.2=hadoop3:2888:3888\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = rookery().arg("serve").arg("-c").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let myid = dir.path().join("myid");
    assert!(
        stderr.contains(&format!("{}: myid file is missing", myid.display())),
        "{stderr}"
    );
}

#[test]
fn ensemble_config_is_logged_and_an_unresolvable_own_address_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("myid"), "0\n").unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort=2181\n\
             server.0=hadoop1:2888:3888\nserver.1=hadoop2:2888:3888\nserver.2=hadoop3:2888:3888\n\
             someFutureKey=1\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = rookery()
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // hadoop1 does not resolve here: the server cannot bind its quorum port and says
    // which address of which server line.
    assert!(
        stderr.contains("cannot resolve the quorum address hadoop1:2888 of server.0"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown key someFutureKey"), "{stderr}");
    assert!(stderr.contains(r#""mode":"Ensemble""#), "{stderr}");
    assert!(stderr.contains("hadoop2:2888:3888"), "{stderr}");
}
