//! Logging and tracing setup.

use tracing_subscriber::{fmt, EnvFilter};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// Errors from setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("bad log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global logger is already installed")]
    AlreadySet,
}

/// Build the filter from `--log-filter`, else `RUST_LOG`, else `info`.
pub fn filter(explicit: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let text = match explicit {
        Some(f) => f.to_string(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()),
    };
    EnvFilter::try_new(&text).map_err(|source| TelemetryError::Filter {
        filter: text.clone(),
        source,
    })
}

/// Install the global subscriber. Logs go to stderr so that stdout stays clean
/// for command output (`host inventory --json`, the VMM's serial console).
pub fn init(format: LogFormat, explicit_filter: Option<&str>) -> Result<(), TelemetryError> {
    let filter = filter(explicit_filter)?;
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let res = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    res.map_err(|_| TelemetryError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_accepts_rust_log_syntax() {
        assert!(filter(Some("info,novakvm::rpc=debug")).is_ok());
    }

    #[test]
    fn filter_rejects_garbage() {
        let err = filter(Some("novakvm=notalevel")).unwrap_err();
        assert!(err.to_string().contains("bad log filter"));
    }
}
