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

use std::io::IsTerminal as _;

use rookery_server::config::LogFormat;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

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
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    pub(crate) format: LogFormat,
    pub(crate) filter: String,
    pub(crate) source: FilterSource,
    /// `RUST_LOG` was set but did not parse, so the next source was used.
    pub(crate) bad_env: Option<String>,
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

    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry
            .with(layer.with_filter(filter_fn(safe_to_log)))
            .init(),
        // One object per line: timestamp, level, target, the event's fields, the
        // innermost span and the whole span list (session, xid, op of a request).
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_filter(filter_fn(safe_to_log)),
            )
            .init(),
    }
    Installed {
        format,
        filter: text,
        source,
        bad_env,
    }
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
    fn filters_parse_as_rust_log_does() {
        assert!(parse_filter("info,rookery_server::quorum=debug").is_ok());
        assert!(parse_filter("trace").is_ok());
        assert!(parse_filter("rookery_server=loud").is_err());
    }
}
