//! `rookery serve`: load the configuration, run the server until SIGINT or SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use rookery_server::ServerConfig;
use tracing::{error, info, warn};

use crate::LogArgs;
use crate::logging;

pub(crate) fn run(config_path: &Path, log: &LogArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(config_path).context("invalid configuration")?;
    // Before logging: the trace exporter's gRPC channel lives on this runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let export = logging::TraceExport::new(
        &config.otel,
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok(),
    );
    let mut installed = {
        let _rt = runtime.enter();
        logging::init_with(
            log.format.unwrap_or(config.log_format),
            log.level.as_deref(),
            config.log_level.as_deref(),
            "info",
            export,
        )
    };
    if let Some(bad) = &installed.bad_env {
        warn!(rust_log = %bad, "RUST_LOG does not parse as a log filter; ignored");
    }
    info!(
        format = %installed.format,
        filter = %installed.filter,
        filter_from = installed.source.as_str(),
        "logging"
    );
    if let Some(t) = &installed.tracing {
        info!(
            endpoint = %t.export.endpoint,
            endpoint_from = t.export.endpoint_from,
            service_name = %t.export.service_name,
            "tracing: exporting spans over OTLP/gRPC"
        );
    }
    if let Some(e) = &installed.tracing_failed {
        warn!(error = %e, "tracing: the OTLP exporter could not start; not tracing");
    }
    for warning in &config.warnings {
        warn!("{warning}");
    }
    log_settings(&config);
    let served = runtime.block_on(async {
        let mut server = rookery_server::start(&config)
            .await
            .context("the server could not start")?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
            _ = term.recv() => info!("SIGTERM: shutting down"),
            e = server.failed() => {
                error!(error = %e, "server stopped");
                return Err(anyhow::Error::new(e).context("the server stopped"));
            }
        }
        server.shutdown().await.context("shutting down")?;
        Ok(ExitCode::SUCCESS)
    });
    // The last spans go out while the runtime still drives the exporter's channel.
    if let Some(t) = installed.tracing.take() {
        t.shutdown();
    }
    served
}

fn log_settings(c: &ServerConfig) {
    info!(
        config = %c.config_path.display(),
        mode = ?c.mode(),
        my_id = ?c.my_id,
        peer_type = %c.peer_type,
        "configuration loaded"
    );
    info!(
        data_dir = %c.data_dir.display(),
        data_log_dir = %c.data_log_dir.display(),
        fsync_warning_threshold_ms = c.fsync_warning_threshold_ms,
        snap_retain_count = c.snap_retain_count,
        purge_interval_hours = c.purge_interval_hours,
        "storage"
    );
    info!(
        client_address = ?c.client_listen_address().map(|a| a.to_string()),
        secure_client_port = ?c.secure_client_port,
        max_client_cnxns = c.max_client_cnxns,
        jute_max_buffer = c.jute_max_buffer,
        "clients"
    );
    info!(
        tick_time_ms = c.tick_time_ms,
        init_limit_ticks = c.init_limit_ticks,
        sync_limit_ticks = c.sync_limit_ticks,
        min_session_timeout_ms = c.min_session_timeout_ms,
        max_session_timeout_ms = c.max_session_timeout_ms,
        "timing"
    );
    for s in c.servers.values() {
        let addresses: Vec<String> = s
            .addresses
            .iter()
            .map(|a| format!("{}:{}:{}", bracket(&a.host), a.quorum_port, a.election_port))
            .collect();
        info!(
            id = s.id,
            addresses = %addresses.join("|"),
            learner_type = %s.learner_type,
            client_address = ?s.client_address.as_ref().map(|a| a.to_string()),
            "server"
        );
    }
    info!(
        four_letter_words = ?c.four_letter_words,
        admin_grpc_address = ?c.admin_grpc_address.as_ref().map(|a| a.to_string()),
        metrics_http_port = ?c.metrics_http_port,
        standalone_enabled = c.standalone_enabled,
        reconfig_enabled = c.reconfig_enabled,
        extended_types_enabled = c.extended_types_enabled,
        super_digest = c.super_digest.is_some(),
        container_check_interval_ms = c.container_check_interval_ms,
        "features"
    );
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
