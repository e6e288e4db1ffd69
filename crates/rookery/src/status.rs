//! `rookery status`: `zkServer.sh status`, line for line.
//!
//! zkServer.sh prints `Using config: <path>` on stderr, then on stdout `Client port found:
//! <port>. Client address: <addr>. Client SSL: <bool>.` and the `Mode:` line of the
//! server's `srvr` reply (exit 0), or `Error contacting service. It is probably not
//! running.` (exit 1). Monitoring scripts parse exactly these lines, so we keep them.

use std::env;
use std::path::PathBuf;
use std::process::ExitCode;

use rookery_server::ServerConfig;
use rookery_server::four_letter;
use tracing::debug;

const NOT_RUNNING: &str = "Error contacting service. It is probably not running.";

/// zkEnv.sh's rule: `$ZOOCFGDIR/$ZOOCFG`, with ZOOCFGDIR defaulting to `../conf` beside
/// the binary and ZOOCFG to `zoo.cfg`.
pub(crate) fn default_config_path() -> PathBuf {
    let dir = env::var_os("ZOOCFGDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|bin| bin.join("..").join("conf")))
                .unwrap_or_else(|| PathBuf::from("conf"))
        });
    let file = env::var_os("ZOOCFG").unwrap_or_else(|| "zoo.cfg".into());
    dir.join(file)
}

pub(crate) fn run(config: Option<PathBuf>) -> ExitCode {
    let path = config.unwrap_or_else(default_config_path);
    eprintln!("Using config: {}", path.display());
    let config = match ServerConfig::load(&path) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("rookery: {err}");
            return ExitCode::FAILURE;
        }
    };

    let (port, address, ssl) = if let Some(port) = config.client_port {
        let address = config
            .client_port_address
            .clone()
            .unwrap_or_else(|| "localhost".to_string());
        (port, address, false)
    } else {
        outln!("Client port not found. Looking for secureClientPort in the static config.");
        let Some(port) = config.secure_client_port else {
            outln!(
                "Unable to find either secure or unsecure client port in any configs. Terminating."
            );
            return ExitCode::FAILURE;
        };
        let address = config
            .secure_client_port_address
            .clone()
            .unwrap_or_else(|| "localhost".to_string());
        (port, address, true)
    };
    outln!("Client port found: {port}. Client address: {address}. Client SSL: {ssl}.");

    if ssl {
        // zkServer.sh would ask `srvr` over TLS here; saying the server is probably not
        // running would mislead, so say why nothing was asked.
        eprintln!(
            "rookery: cannot ask {address}:{port}: this configuration has no clientPort, and \
             rookery status sends its four-letter word in plain text only (not over TLS to \
             secureClientPort)"
        );
        return ExitCode::FAILURE;
    }

    let reply = match ask_srvr(&address, port) {
        Ok(reply) => reply,
        Err(err) => {
            debug!("srvr to {address}:{port} failed: {err}");
            outln!("{NOT_RUNNING}");
            return ExitCode::FAILURE;
        }
    };
    match mode_lines(&reply) {
        Some(stat) => {
            outln!("{stat}");
            ExitCode::SUCCESS
        }
        None => {
            debug!("srvr reply without a Mode line: {reply:?}");
            outln!("{NOT_RUNNING}");
            ExitCode::FAILURE
        }
    }
}

fn ask_srvr(address: &str, port: u16) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(four_letter::send(
        address,
        port,
        "srvr",
        four_letter::DEFAULT_TIMEOUT,
    ))?;
    Ok(reply)
}

/// `grep Mode` then `echo $STAT`: matching lines, whitespace collapsed to single spaces.
fn mode_lines(reply: &str) -> Option<String> {
    let words: Vec<&str> = reply
        .lines()
        .filter(|l| l.contains("Mode"))
        .flat_map(str::split_whitespace)
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::mode_lines;

    #[test]
    fn mode_is_grepped_like_zkserver_sh() {
        let srvr = "Zookeeper version: 3.8.0-debian\nLatency min/avg/max: 0/0.0/0\nReceived: 1\n\
                    Sent: 0\nConnections: 1\nOutstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 5\n";
        assert_eq!(mode_lines(srvr).as_deref(), Some("Mode: standalone"));
        assert_eq!(
            mode_lines("Mode:   leader\r\n").as_deref(),
            Some("Mode: leader")
        );
        assert_eq!(
            mode_lines("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
        assert_eq!(
            mode_lines("srvr is not executed because it is not in the whitelist.\n"),
            None
        );
    }
}
