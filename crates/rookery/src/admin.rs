//! `rookery admin ...`: the gRPC admin API for people (tables) and scripts (`--json`).
//! Exits non-zero with the server's reason when a call fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use rookery_admin::pb;
use rookery_server::ServerConfig;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The admin API, host:port. Defaults to admin.grpcAddress of the local zoo.cfg.
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// zoo.cfg to take the endpoint and token file from (default as `rookery status`).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// File holding the bearer token (default: $ROOKERY_ADMIN_TOKEN, then the
    /// config's admin.authTokenFile if readable).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Speak TLS, trusting the CA certificates in this PEM file (default: the config's
    /// admin.ssl.trustStore.location when admin.ssl.* is set).
    #[arg(long, global = true)]
    tls_ca: Option<PathBuf>,
    /// PEM file with this caller's private key and certificate chain, for mutual TLS
    /// (default: the config's admin.ssl.keyStore.location).
    #[arg(long, global = true)]
    tls_identity: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// The server's mode, zxids, members and counts.
    Status,
    /// The ensemble's members.
    Members {
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// The ensemble's sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Hand leadership to another voter (ask the leader).
    Leader {
        #[command(subcommand)]
        command: LeaderCommand,
    },
    /// Save a snapshot of the server's tree, or restore one into a new dataDir.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MembersCommand {
    List,
    /// Add a new server as a non-voting observer (ask the leader). Start it with a
    /// zoo.cfg listing the members and itself as `:observer`; promote it once synced.
    Add {
        /// Its myid.
        id: u64,
        /// host:port of its quorum port (2888 in zoo.cfg examples).
        quorum_address: String,
        /// host:port of its election port (3888).
        election_address: String,
        /// [host:]port its clients use, if it should be published in /zookeeper/config.
        #[arg(long)]
        client: Option<String>,
    },
    /// Make an observer a voter; refused until it has caught up with the leader.
    Promote {
        id: u64,
        #[arg(long)]
        force: bool,
    },
    /// Remove a member; refused if the voters left could not form a quorum.
    Remove {
        id: u64,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LeaderCommand {
    /// Writes pause until the successor holds everything, then it is elected; waits
    /// until this server follows it.
    Transfer {
        /// The successor's id; the voter furthest along if left out.
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    List,
    /// End a session now, as its timeout would (its ephemerals are deleted).
    Expire {
        /// Session id, hex (0x...) as ZooKeeper prints it, or decimal.
        session: String,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Make the server write a snapshot into its own dataDir now.
    Take,
    /// Download the server's tree into FILE (checked against the server's checksum).
    Save { file: PathBuf },
    /// Seed the (empty) data directory of the server configured by --config with FILE;
    /// run it offline, on each server of a new cluster, before starting them.
    Restore { file: PathBuf },
}

pub(crate) fn run(args: AdminArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rookery admin: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rookery admin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(args: AdminArgs) -> Result<()> {
    if let AdminCommand::Snapshot {
        command: SnapshotCommand::Restore { file },
    } = &args.command
    {
        return restore(&args, file);
    }
    let mut client = connect(&args).await?;
    match &args.command {
        AdminCommand::Status => {
            let s = client.status(pb::StatusRequest {}).await.map_err(rpc)?;
            print_status(&s.into_inner(), args.json);
        }
        AdminCommand::Leader {
            command: LeaderCommand::Transfer { to },
        } => {
            let next = client
                .transfer_leadership(pb::TransferLeadershipRequest {
                    id: to.unwrap_or(0),
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .new_leader;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let s = client.status(pb::StatusRequest {}).await;
                if let Ok(s) = s.map(|r| r.into_inner()) {
                    if s.leader_id == Some(next) && s.mode() != pb::Mode::Looking {
                        break;
                    }
                }
                if std::time::Instant::now() > deadline {
                    anyhow::bail!(
                        "server {next} was asked to take over but does not lead after 30 s; check status"
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if args.json {
                outln!("{}", json!({ "new_leader": next }));
            } else {
                outln!("server {next} leads");
            }
        }
        AdminCommand::Members { command } => {
            let m = match command {
                MembersCommand::List => client.list_members(pb::ListMembersRequest {}).await,
                MembersCommand::Add {
                    id,
                    quorum_address,
                    election_address,
                    client: client_address,
                } => {
                    client
                        .add_member(pb::AddMemberRequest {
                            id: *id,
                            quorum_address: quorum_address.clone(),
                            election_address: election_address.clone(),
                            client_address: client_address.clone().unwrap_or_default(),
                        })
                        .await
                }
                MembersCommand::Promote { id, force } => {
                    client
                        .promote_member(pb::PromoteMemberRequest {
                            id: *id,
                            force: *force,
                        })
                        .await
                }
                MembersCommand::Remove { id, force } => {
                    client
                        .remove_member(pb::RemoveMemberRequest {
                            id: *id,
                            force: *force,
                        })
                        .await
                }
            }
            .map_err(rpc)?
            .into_inner();
            if args.json {
                let v = json!({
                    "config_version": format!("{:x}", m.config_version),
                    "members": m.members.iter().map(member_json).collect::<Vec<_>>(),
                });
                outln!("{v:#}");
            } else {
                print_members(&m.members);
            }
        }
        AdminCommand::Sessions {
            command: SessionsCommand::List,
        } => {
            let s = client
                .list_sessions(pb::ListSessionsRequest {})
                .await
                .map_err(rpc)?
                .into_inner();
            print_sessions(&s.sessions, args.json);
        }
        AdminCommand::Sessions {
            command: SessionsCommand::Expire { session },
        } => {
            let id = parse_session(session)?;
            let r = client
                .expire_session(pb::ExpireSessionRequest { session_id: id })
                .await
                .map_err(rpc)?
                .into_inner();
            if args.json {
                outln!("{:#}", json!({"session_id": hex(id), "zxid": hex(r.zxid)}));
            } else {
                outln!("session {} expired at zxid {}", hex(id), hex(r.zxid));
            }
        }
        AdminCommand::Snapshot {
            command: SnapshotCommand::Take,
        } => {
            let r = client
                .take_snapshot(pb::TakeSnapshotRequest {})
                .await
                .map_err(rpc)?
                .into_inner();
            if args.json {
                outln!(
                    "{:#}",
                    json!({"last_zxid": hex(r.last_zxid), "bytes": r.bytes})
                );
            } else {
                outln!(
                    "snapshot of {} taken at zxid {}",
                    human_bytes(r.bytes),
                    hex(r.last_zxid)
                );
            }
        }
        AdminCommand::Snapshot {
            command: SnapshotCommand::Save { file },
        } => {
            let stream = client
                .download_snapshot(pb::DownloadSnapshotRequest {})
                .await
                .map_err(rpc)?
                .into_inner();
            let (header, bytes) = rookery_admin::receive_snapshot(stream).await?;
            write_atomically(file, &bytes)?;
            if args.json {
                outln!(
                    "{:#}",
                    json!({
                        "file": file.display().to_string(),
                        "last_zxid": hex(header.last_zxid),
                        "bytes": header.total_bytes,
                        "crc32": format!("{:08x}", header.crc32),
                        "digest": format!("{:x}", header.digest),
                    })
                );
            } else {
                outln!(
                    "saved {} bytes at zxid {} to {} (crc32 {:08x}, digest {:x})",
                    header.total_bytes,
                    hex(header.last_zxid),
                    file.display(),
                    header.crc32,
                    header.digest
                );
            }
        }
        AdminCommand::Snapshot {
            command: SnapshotCommand::Restore { .. },
        } => unreachable!("handled above"),
    }
    Ok(())
}

/// The server's message, not tonic's debug dump.
fn rpc(status: rookery_admin::RpcStatus) -> anyhow::Error {
    anyhow!("{:?}: {}", status.code(), status.message())
}

fn config_path(args: &AdminArgs) -> PathBuf {
    args.config
        .clone()
        .unwrap_or_else(crate::status::default_config_path)
}

async fn connect(args: &AdminArgs) -> Result<rookery_admin::Client> {
    let local = if args.endpoint.is_none() || args.token_file.is_none() || args.tls_ca.is_none() {
        ServerConfig::load(&config_path(args)).ok()
    } else {
        None
    };
    let endpoint = match (&args.endpoint, &local) {
        (Some(e), _) => e.clone(),
        (None, Some(cfg)) => cfg
            .admin_grpc_address
            .as_ref()
            .map(|a| a.to_string())
            .ok_or_else(|| anyhow!("the admin API is off in {}", config_path(args).display()))?,
        (None, None) => bail!(
            "no --endpoint, and no readable zoo.cfg at {} to take admin.grpcAddress from",
            config_path(args).display()
        ),
    };
    let token = if let Some(f) = &args.token_file {
        Some(read_token(f)?)
    } else if let Ok(t) = std::env::var("ROOKERY_ADMIN_TOKEN") {
        Some(t)
    } else {
        local
            .as_ref()
            .and_then(|c| c.admin_auth_token_file.as_ref())
            .and_then(|f| read_token(f).ok())
    };
    let admin_tls = local.as_ref().and_then(|c| c.admin_tls.as_ref());
    let ca = args
        .tls_ca
        .clone()
        .or_else(|| admin_tls.and_then(|t| t.trust_store.clone()));
    let tls = match ca {
        None if admin_tls.is_some() => bail!(
            "the admin API speaks TLS: pass --tls-ca (the config has no admin.ssl.trustStore.location)"
        ),
        None => None,
        Some(ca) => {
            let identity = args
                .tls_identity
                .clone()
                .or_else(|| admin_tls.map(|t| t.key_store.clone()));
            let read =
                |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            Some(rookery_admin::ClientTls {
                ca_pem: read(&ca)?,
                identity_pem: identity.as_deref().map(read).transpose()?,
            })
        }
    };
    Ok(rookery_admin::connect_with(&endpoint, token.as_deref(), tls.as_ref()).await?)
}

fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    Ok(text.trim().to_owned())
}

fn restore(args: &AdminArgs, file: &Path) -> Result<()> {
    let path = config_path(args);
    let cfg = ServerConfig::load(&path).with_context(|| {
        format!(
            "restore needs the new server's zoo.cfg ({})",
            path.display()
        )
    })?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let r = rookery_server::restore::restore_snapshot(&cfg, &bytes)?;
    if args.json {
        outln!(
            "{:#}",
            json!({
                "data_dir": cfg.data_log_dir.display().to_string(),
                "last_zxid": hex(r.last_zxid),
                "digest": format!("{:x}", r.digest),
                "znodes": r.znodes,
            })
        );
    } else {
        outln!(
            "restored {} znodes at zxid {} (digest {:x}) into {}",
            r.znodes,
            hex(r.last_zxid),
            r.digest,
            cfg.data_log_dir.display()
        );
    }
    Ok(())
}

/// Writes beside the target and renames, so a failed download leaves no half file.
fn write_atomically(file: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = file.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot rename to {}", file.display()))
}

fn parse_session(text: &str) -> Result<i64> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).map(|v| v as i64),
        None => t
            .parse::<i64>()
            .or_else(|_| u64::from_str_radix(t, 16).map(|v| v as i64)),
    };
    parsed.map_err(|_| {
        anyhow!("'{text}' is not a session id (hex like 0x1000a2b3c4d0000, or decimal)")
    })
}

fn hex(v: i64) -> String {
    format!("0x{v:x}")
}

fn mode_name(m: pb::Mode) -> &'static str {
    match m {
        pb::Mode::Leader => "leader",
        pb::Mode::Follower => "follower",
        pb::Mode::Observer => "observer",
        pb::Mode::Looking => "looking",
        pb::Mode::Standalone => "standalone",
        pb::Mode::ReadOnly => "read-only",
        pb::Mode::Unspecified => "unknown",
    }
}

fn role_name(r: pb::MemberRole) -> &'static str {
    match r {
        pb::MemberRole::Voter => "voter",
        pb::MemberRole::Observer => "observer",
        pb::MemberRole::Unspecified => "unknown",
    }
}

fn link_name(l: pb::LinkState) -> &'static str {
    match l {
        pb::LinkState::Self_ => "self",
        pb::LinkState::Syncing => "syncing",
        pb::LinkState::Synced => "synced",
        pb::LinkState::Disconnected => "disconnected",
        pb::LinkState::Unknown | pb::LinkState::Unspecified => "-",
    }
}

fn member_json(m: &pb::Member) -> Value {
    json!({
        "id": m.id,
        "role": role_name(m.role()),
        "leader": m.is_leader,
        "quorum_address": m.quorum_address,
        "election_address": m.election_address,
        "client_address": m.client_address,
        "link": link_name(m.link()),
        "lag_txns": m.lag_txns,
    })
}

fn print_status(s: &pb::StatusResponse, as_json: bool) {
    if as_json {
        let v = json!({
            "server_id": s.server_id,
            "mode": mode_name(s.mode()),
            "leader_id": s.leader_id,
            "current_epoch": s.current_epoch,
            "accepted_epoch": s.accepted_epoch,
            "last_logged_zxid": hex(s.last_logged_zxid),
            "committed_zxid": hex(s.committed_zxid),
            "applied_zxid": hex(s.applied_zxid),
            "members": s.members.iter().map(member_json).collect::<Vec<_>>(),
            "sessions": s.session_count,
            "znodes": s.znode_count,
            "watches": s.watch_count,
            "approximate_data_size": s.approximate_data_size,
            "snapshots": s.snapshot_count,
            "snapshot_bytes": s.snapshot_bytes,
            "db_bytes_on_disk": s.db_bytes_on_disk,
            "client_connections": s.client_connections,
            "digest": format!("{:x}", s.digest),
            "uptime_ms": s.uptime_ms,
            "version": s.version,
            "recent_events": s.recent_events.iter().map(|e| json!({
                "time_ms": e.time_ms,
                "what": e.what,
            })).collect::<Vec<_>>(),
        });
        outln!("{v:#}");
        return;
    }
    let leader = s
        .leader_id
        .map_or_else(|| "-".to_owned(), |l| l.to_string());
    let rows = [
        ("Server", s.server_id.to_string()),
        ("Mode", mode_name(s.mode()).to_owned()),
        ("Leader", leader),
        (
            "Epoch",
            format!("{} (accepted {})", s.current_epoch, s.accepted_epoch),
        ),
        (
            "Zxid",
            format!(
                "logged {}  committed {}  applied {}",
                hex(s.last_logged_zxid),
                hex(s.committed_zxid),
                hex(s.applied_zxid)
            ),
        ),
        ("Znodes", s.znode_count.to_string()),
        ("Sessions", s.session_count.to_string()),
        ("Connections", s.client_connections.to_string()),
        ("Watches", s.watch_count.to_string()),
        ("Data size", human_bytes(s.approximate_data_size)),
        (
            "On disk",
            format!(
                "{} ({} snapshots, {})",
                human_bytes(s.db_bytes_on_disk),
                s.snapshot_count,
                human_bytes(s.snapshot_bytes)
            ),
        ),
        ("Digest", format!("{:x}", s.digest)),
        ("Uptime", human_duration(s.uptime_ms)),
        ("Version", s.version.clone()),
    ];
    for (k, v) in rows {
        outln!("{:<12} {v}", format!("{k}:"));
    }
    outln!();
    print_members(&s.members);
    if !s.recent_events.is_empty() {
        outln!();
        outln!("Recent events (newest last):");
        let now = s
            .recent_events
            .last()
            .map_or(0, |e| e.time_ms)
            .max(unix_ms());
        for e in s.recent_events.iter().rev().take(10).rev() {
            let ago = u64::try_from(now - e.time_ms).unwrap_or(0);
            outln!("  {:>8} ago  {}", human_duration(ago), e.what);
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn print_members(members: &[pb::Member]) {
    let rows: Vec<[String; 6]> = members
        .iter()
        .map(|m| {
            [
                m.id.to_string(),
                format!(
                    "{}{}",
                    role_name(m.role()),
                    if m.is_leader { " (leader)" } else { "" }
                ),
                m.quorum_address.clone(),
                m.client_address.clone(),
                link_name(m.link()).to_owned(),
                m.lag_txns.map_or_else(|| "-".to_owned(), |l| l.to_string()),
            ]
        })
        .collect();
    table(["ID", "ROLE", "QUORUM", "CLIENT", "LINK", "LAG"], &rows);
}

fn print_sessions(sessions: &[pb::Session], as_json: bool) {
    if as_json {
        let v: Vec<Value> = sessions
            .iter()
            .map(|s| {
                json!({
                    "session_id": hex(s.session_id),
                    "timeout_ms": s.timeout_ms,
                    "ephemerals": s.ephemeral_count,
                    "connected_here": s.connected_here,
                    "client_address": s.client_address,
                })
            })
            .collect();
        outln!("{:#}", Value::Array(v));
        return;
    }
    let rows: Vec<[String; 4]> = sessions
        .iter()
        .map(|s| {
            [
                hex(s.session_id),
                s.timeout_ms.to_string(),
                s.ephemeral_count.to_string(),
                if s.connected_here {
                    s.client_address.clone()
                } else {
                    "-".to_owned()
                },
            ]
        })
        .collect();
    table(
        ["SESSION", "TIMEOUT_MS", "EPHEMERALS", "CLIENT (HERE)"],
        &rows,
    );
}

fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_parse_as_zookeeper_prints_them() {
        assert_eq!(parse_session("0x100").unwrap(), 256);
        assert_eq!(parse_session("256").unwrap(), 256);
        assert_eq!(
            parse_session("0xff00000000000001").unwrap(),
            0xff00000000000001u64 as i64
        );
        assert!(parse_session("zz").is_err());
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_duration(59_999), "59s");
        assert_eq!(human_duration(61_000), "1m1s");
        assert_eq!(human_duration(3_720_000), "1h2m");
    }
}
