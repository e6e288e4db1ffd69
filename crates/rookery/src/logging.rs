//! Log set-up: which format, which filter, and where each came from.
//!
//! The filter is taken from the first of: `--log-level`, `RUST_LOG`, zoo.cfg's
//! `log.level`, the command's default. The command line wins because it is the most
//! deliberate choice; `RUST_LOG` beats zoo.cfg so that an operator can turn up one
//! module on one run without editing a file the whole ensemble shares. The format is
//! `--log-format`, else zoo.cfg's `log.format`, else human.
//!
//! Lines go to stderr (systemd's journal and `docker logs` collect it); ANSI colours
//! only when stderr is a terminal, so files and log shippers get plain text.
//!
//! Traces: when `rookery serve` has an OTLP endpoint (zoo.cfg's
//! `otel.exporter.otlp.endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`), one more layer,
//! `tracing_opentelemetry`'s, turns the core's spans (a client request and its
//! stages, see rookery-server's core) into OpenTelemetry spans, which a batch span
//! processor exports over OTLP/gRPC (tonic, on the server's tokio runtime). The log
//! filter then moves from the whole subscriber onto the log layer, so what is traced
//! does not depend on the log level. Without an endpoint nothing of this is
//! installed. Export failures are logged by the SDK (target `opentelemetry_sdk`),
//! never fatal.

use std::fmt::{self, Write as _};
use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use rookery_server::config::{LogFormat, OtelConfig};
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::{Filter, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Where the filter in effect came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterSource {
    Flag,
    Env,
    Config,
    Default,
}

impl FilterSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FilterSource::Flag => "--log-level",
            FilterSource::Env => "RUST_LOG",
            FilterSource::Config => "zoo.cfg log.level",
            FilterSource::Default => "default",
        }
    }
}

/// What [`init`] set up, to be logged once logging works.
#[derive(Debug)]
pub(crate) struct Installed {
    pub(crate) format: LogFormat,
    pub(crate) filter: String,
    pub(crate) source: FilterSource,
    /// `RUST_LOG` was set but did not parse, so the next source was used.
    pub(crate) bad_env: Option<String>,
    /// Spans exported over OTLP, when asked for and the exporter could be made.
    pub(crate) tracing: Option<Tracing>,
    /// Why asked-for trace export is not running.
    pub(crate) tracing_failed: Option<String>,
}

/// Trace export over OTLP/gRPC, as `rookery serve` was asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceExport {
    pub(crate) endpoint: String,
    /// Where the endpoint was named, for the start-up line.
    pub(crate) endpoint_from: &'static str,
    pub(crate) service_name: String,
    /// Between batch exports; the SDK's default (or `OTEL_BSP_SCHEDULE_DELAY`) if None.
    pub(crate) schedule_delay: Option<Duration>,
}

impl TraceExport {
    /// zoo.cfg's `otel.*` settings; `env_endpoint` (`OTEL_EXPORTER_OTLP_ENDPOINT`) when
    /// zoo.cfg names no endpoint. `None`: no endpoint anywhere, nothing is traced.
    pub(crate) fn new(config: &OtelConfig, env_endpoint: Option<String>) -> Option<TraceExport> {
        let (endpoint, endpoint_from) = match (&config.endpoint, env_endpoint) {
            (Some(e), _) => (e.clone(), "zoo.cfg otel.exporter.otlp.endpoint"),
            (None, Some(e)) if !e.trim().is_empty() => {
                (e.trim().to_owned(), "OTEL_EXPORTER_OTLP_ENDPOINT")
            }
            _ => return None,
        };
        Some(TraceExport {
            endpoint,
            endpoint_from,
            service_name: config.service_name.clone(),
            schedule_delay: config.schedule_delay_ms.map(Duration::from_millis),
        })
    }
}

/// The running exporter. [`Tracing::shutdown`] flushes what is queued; it must run
/// while the tokio runtime the exporter was made on is still up.
#[derive(Debug)]
pub(crate) struct Tracing {
    provider: SdkTracerProvider,
    pub(crate) export: TraceExport,
}

impl Tracing {
    /// Exports what is still queued (bounded: a collector that is down does not hold
    /// up the exit for long) and stops the export thread. Failures are logged.
    pub(crate) fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "tracing: flushing the last spans failed");
        }
    }
}

/// Checks `--log-level` when the arguments are parsed, so a bad filter is a usage
/// error rather than a silently different one.
pub(crate) fn parse_filter(directives: &str) -> Result<String, String> {
    EnvFilter::builder()
        .parse(directives)
        .map(|_| directives.to_owned())
        .map_err(|e| {
            format!("not a log filter (RUST_LOG syntax, e.g. info,rookery_server=debug): {e}")
        })
}

/// Installs the global subscriber. `flag` is `--log-level`, `configured` zoo.cfg's
/// `log.level` (already checked by the config parser), `default` the command's.
pub(crate) fn init(
    format: LogFormat,
    flag: Option<&str>,
    configured: Option<&str>,
    default: &str,
) -> Installed {
    init_with(format, flag, configured, default, None)
}

/// [`init`], exporting spans as `export` says. Must run inside a tokio runtime when
/// `export` is given (the gRPC channel is made on it).
pub(crate) fn init_with(
    format: LogFormat,
    flag: Option<&str>,
    configured: Option<&str>,
    default: &str,
    export: Option<TraceExport>,
) -> Installed {
    let mut bad_env = None;
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut chosen: Option<(EnvFilter, String, FilterSource)> =
        flag.and_then(|f| parse(f).map(|filter| (filter, f.to_owned(), FilterSource::Flag)));
    if chosen.is_none() {
        if let Some(env) = env {
            match parse(&env) {
                Some(filter) => chosen = Some((filter, env, FilterSource::Env)),
                None => bad_env = Some(env),
            }
        }
    }
    let (filter, text, source) = chosen
        .or_else(|| {
            configured.and_then(|c| parse(c).map(|f| (f, c.to_owned(), FilterSource::Config)))
        })
        .unwrap_or_else(|| {
            (
                EnvFilter::new(default),
                default.to_owned(),
                FilterSource::Default,
            )
        });

    let mut tracing = None;
    let mut tracing_failed = None;
    match export.map(|e| otel_layer(&e).map(|(layer, provider)| (layer, provider, e))) {
        None => tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(format, filter_fn(safe_to_log)))
            .init(),
        Some(Ok((otel, provider, export))) => {
            // Per-layer filters: the log filter keeps deciding what is written, the
            // trace filter what is exported.
            tracing_subscriber::registry()
                .with(log_layer(format, filter_fn(safe_to_log).and(filter)))
                .with(otel)
                .init();
            tracing = Some(Tracing { provider, export });
        }
        Some(Err(e)) => {
            tracing_failed = Some(e);
            tracing_subscriber::registry()
                .with(filter)
                .with(log_layer(format, filter_fn(safe_to_log)))
                .init();
        }
    }
    Installed {
        format,
        filter: text,
        source,
        bad_env,
        tracing,
        tracing_failed,
    }
}

/// The log line writer in `format`, writing what `filter` lets through.
fn log_layer<S, F>(format: LogFormat, filter: F) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: Filter<S> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => layer.fmt_fields(PlainFields).with_filter(filter).boxed(),
        // One object per line: timestamp, level, target, the event's fields, the
        // innermost span and the whole span list (session, xid, op of a request).
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
    }
}

/// The human format's fields, written as tracing-subscriber's default writes them
/// (`name=value` by `Debug`, the message first and unnamed, control characters in it
/// escaped) but without its per-field styling. The log layer formats every span's
/// fields when the span opens, whether or not a line is ever written inside it, and
/// each client request opens one: with the default formatter that was about a sixth
/// of the server's instructions per setData (callgrind; docs/performance.md).
#[derive(Debug, Clone, Copy, Default)]
struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            sanitize: writer.sanitizes_ansi_escapes(),
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'w> {
    writer: Writer<'w>,
    sanitize: bool,
    empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    fn write(&mut self, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
        let name = field.name();
        if name.starts_with("log.") {
            // The `log` crate's metadata, already in the line's prefix.
            return Ok(());
        }
        if !std::mem::replace(&mut self.empty, false) {
            self.writer.write_char(' ')?;
        }
        if name == "message" {
            return if self.sanitize {
                write!(Escaping(&mut self.writer), "{value:?}")
            } else {
                write!(self.writer, "{value:?}")
            };
        }
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        write!(self.writer, "={value:?}")
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = String::new();
        let mut out = |s: &str| {
            if self.sanitize {
                let _ = Escaping(&mut text).write_str(s);
            } else {
                text.push_str(s);
            }
        };
        out(&value.to_string());
        let mut next = value.source();
        if next.is_some() {
            out(&format!(" {}.sources=[", field.name()));
            let mut first = true;
            while let Some(e) = next {
                if !std::mem::replace(&mut first, false) {
                    out(", ");
                }
                out(&e.to_string());
                next = e.source();
            }
            out("]");
        }
        self.record_debug(field, &format_args!("{text}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.write(field, value);
        }
    }
}

/// Writes through, escaping the control characters a terminal could act on (as the
/// default formatter does for messages: they may carry client input).
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let risky = |c: char| {
            matches!(
                c,
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
            )
        };
        let mut rest = s;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| risky(c)) {
            let (safe, tail) = rest.split_at(at);
            self.0.write_str(safe)?;
            if c.is_ascii() {
                write!(self.0, "\\x{:02x}", c as u32)?;
            } else {
                write!(self.0, "\\u{{{:x}}}", c as u32)?;
            }
            let mut after = tail.chars();
            after.next();
            rest = after.as_str();
        }
        self.0.write_str(rest)
    }
}

/// The OpenTelemetry layer and its provider: OTLP/gRPC through a batch span
/// processor.
fn otel_layer<S>(
    export: &TraceExport,
) -> Result<(impl Layer<S> + use<S>, SdkTracerProvider), String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(export.endpoint.clone())
        .build()
        .map_err(|e| format!("the OTLP exporter for {}: {e}", export.endpoint))?;
    let mut batch = BatchConfigBuilder::default();
    if let Some(delay) = export.schedule_delay {
        batch = batch.with_scheduled_delay(delay);
    }
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name(export.service_name.clone())
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("rookery"))
        .with_threads(false)
        .with_filter(filter_fn(traced));
    Ok((layer, provider))
}

/// What is exported: the core's spans (client requests and their stages, handshakes,
/// forwarded writes) down to DEBUG, whatever the log filter says; no events.
fn traced(meta: &Metadata<'_>) -> bool {
    const CORE: &str = "rookery_server::core";
    meta.is_span()
        && *meta.level() <= Level::DEBUG
        && meta
            .target()
            .strip_prefix(CORE)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Libraries whose debug and trace lines print the bytes they handle. sled's trace
/// lines print every page it links (`Set(key, value)`): our log entries, that is Txns
/// with znode data and digest ACL ids; its debug lines can print a page that lost a
/// race. Those lines are never written, whatever the filter says (no filter can be
/// trusted to keep them out: `sled::pagecache=trace` is more specific than any cap),
/// so that no level is unsafe to turn on when chasing a problem.
const PAYLOAD_LOGGING_CRATES: [&str; 1] = ["sled"];

fn safe_to_log(meta: &Metadata<'_>) -> bool {
    writable(meta.target(), *meta.level())
}

/// False for the lines [`PAYLOAD_LOGGING_CRATES`] log below INFO.
fn writable(target: &str, level: Level) -> bool {
    if !matches!(level, Level::DEBUG | Level::TRACE) {
        return true;
    }
    !PAYLOAD_LOGGING_CRATES.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

fn parse(directives: &str) -> Option<EnvFilter> {
    EnvFilter::builder().parse(directives).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the human format writes for the same events and spans with `fields`.
    fn lines_with<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("could not \x1b[2Jsync")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                session = %format_args!("{:#x}", 0x1a2b_u64),
                xid = 7,
                op = -11,
                zxid = tracing::field::Empty
            );
            let _g = span.enter();
            span.record("zxid", tracing::field::display("0x100000002"));
            tracing::info!(
                path = "/a\"b\x1b",
                r#type = "x",
                flag = true,
                big = u64::MAX,
                ratio = 0.5,
                "client said \x1b[31m{} and \u{85}",
                "hi"
            );
            tracing::warn!(
                error = &Outer(std::io::Error::other("disk")) as &dyn std::error::Error,
                "failed"
            );
            tracing::warn!(error = &std::io::Error::other("alone") as &dyn std::error::Error);
            tracing::info!(only = 1);
        });
        let lines = buf.0.lock().unwrap().clone();
        String::from_utf8(lines).unwrap()
    }

    #[test]
    fn plain_fields_write_what_the_default_formatter_writes() {
        let default = lines_with(tracing_subscriber::fmt::format::DefaultFields::new());
        assert!(
            default.contains("\\x1b[31m"),
            "the check needs escaping: {default}"
        );
        assert!(default.contains("zxid=0x100000002"), "{default}");
        assert_eq!(lines_with(PlainFields), default);
    }

    #[test]
    fn storage_engine_lines_below_info_are_never_written() {
        let meta = |target: &str, level: Level| writable(target, level);
        assert!(!meta("sled", Level::TRACE));
        assert!(!meta("sled::pagecache", Level::DEBUG));
        assert!(meta("sled::pagecache", Level::INFO));
        assert!(meta("sled::tree", Level::WARN));
        assert!(meta("sledge", Level::TRACE));
        assert!(meta("rookery_server::core", Level::TRACE));
    }

    #[test]
    fn the_core_spans_are_traced_and_nothing_else() {
        use tracing::callsite::DefaultCallsite;
        use tracing::metadata::Kind;
        macro_rules! meta {
            ($target:literal, $level:expr, $kind:expr) => {{
                static CALLSITE: DefaultCallsite = DefaultCallsite::new(&META);
                static META: Metadata<'static> = Metadata::new(
                    "test",
                    $target,
                    $level,
                    None,
                    None,
                    None,
                    tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
                    $kind,
                );
                &META
            }};
        }
        assert!(traced(meta!(
            "rookery_server::core",
            Level::INFO,
            Kind::SPAN
        )));
        assert!(traced(meta!(
            "rookery_server::core",
            Level::DEBUG,
            Kind::SPAN
        )));
        assert!(traced(meta!(
            "rookery_server::core::admin",
            Level::INFO,
            Kind::SPAN
        )));
        assert!(!traced(meta!(
            "rookery_server::core",
            Level::TRACE,
            Kind::SPAN
        )));
        assert!(!traced(meta!(
            "rookery_server::core",
            Level::INFO,
            Kind::EVENT
        )));
        assert!(!traced(meta!(
            "rookery_server::conn",
            Level::INFO,
            Kind::SPAN
        )));
        assert!(!traced(meta!(
            "rookery_server::coreish",
            Level::INFO,
            Kind::SPAN
        )));
    }

    #[test]
    fn trace_export_needs_an_endpoint_from_zoo_cfg_or_the_environment() {
        let mut config = OtelConfig::default();
        assert_eq!(TraceExport::new(&config, None), None);
        assert_eq!(TraceExport::new(&config, Some(" ".into())), None);
        let from_env = TraceExport::new(&config, Some("http://collector:4317".into()))
            .expect("the environment's endpoint");
        assert_eq!(from_env.endpoint, "http://collector:4317");
        assert_eq!(from_env.endpoint_from, "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert_eq!(from_env.service_name, "rookery");
        assert_eq!(from_env.schedule_delay, None);

        config.endpoint = Some("http://127.0.0.1:4317".into());
        config.service_name = "zk-east".into();
        config.schedule_delay_ms = Some(250);
        let from_cfg = TraceExport::new(&config, Some("http://collector:4317".into()))
            .expect("zoo.cfg's endpoint");
        assert_eq!(from_cfg.endpoint, "http://127.0.0.1:4317");
        assert_eq!(
            from_cfg.endpoint_from,
            "zoo.cfg otel.exporter.otlp.endpoint"
        );
        assert_eq!(from_cfg.service_name, "zk-east");
        assert_eq!(from_cfg.schedule_delay, Some(Duration::from_millis(250)));
    }

    #[test]
    fn filters_parse_as_rust_log_does() {
        assert!(parse_filter("info,rookery_server::quorum=debug").is_ok());
        assert!(parse_filter("trace").is_ok());
        assert!(parse_filter("rookery_server=loud").is_err());
    }
}
