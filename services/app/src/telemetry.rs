//! Structured logs on stderr, plain text or JSON lines, and the Prometheus recorder.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber; `filter` uses `RUST_LOG` syntax (`info,eventline=debug`).
/// Also installs the metrics recorder `/metrics` renders, before any service records: the
/// `metrics` facade drops what is recorded while no recorder is installed, so a gauge set
/// once at start (a JWKS URL's readiness) or a counter shown at zero would never appear.
pub fn init(format: LogFormat, filter: &str) {
    eventline_http::prometheus();
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
