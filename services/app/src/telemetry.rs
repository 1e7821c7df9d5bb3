//! Structured logs on stderr, plain text or JSON lines, the Prometheus recorder, and the OTLP
//! trace export when the `OTEL_*` variables ask for one.

use std::io::IsTerminal;

use clap::ValueEnum;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber; `filter` uses `RUST_LOG` syntax (`info,eventline=debug`).
/// When `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, spans
/// are also exported over OTLP/HTTP (see [`tracer_provider`]); keep the returned [`Telemetry`]
/// until the process ends, so that the spans still queued are exported.
/// Also installs the metrics recorder `/metrics` renders, before any service records: the
/// `metrics` facade drops what is recorded while no recorder is installed, so a gauge set
/// once at start (a JWKS URL's readiness) or a counter shown at zero would never appear.
pub fn init(format: LogFormat, filter: &str, service: &str) -> Telemetry {
    eventline_http::prometheus();
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (provider, failure) = match tracer_provider(service) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    // Spans are exported down to `info` whatever the log filter: quieter logs keep traces.
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("eventline"))
            .with_filter(LevelFilter::INFO)
    });
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(traces);
    let _ = match format {
        LogFormat::Text => registry.with(lines.with_filter(filter)).try_init(),
        LogFormat::Json => registry
            .with(lines.json().flatten_event(true).with_filter(filter))
            .try_init(),
    };
    if let Some(error) = failure {
        tracing::warn!(%error, "traces are not exported: the OTLP exporter could not be built");
    }
    Telemetry { provider }
}

/// The trace export of a process, if it has one. Dropping it exports the spans still queued
/// (waiting at most the exporter's timeout) and stops the exporter's thread.
#[derive(Debug)]
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: exporting the last spans failed: {error}");
        }
    }
}

/// The OTLP trace pipeline the standard `OTEL_*` variables describe, or `None` when they ask
/// for none: no `OTEL_EXPORTER_OTLP_ENDPOINT` nor `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
/// `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`. Then no exporter thread runs and
/// spans stay local to the logs.
///
/// The exporter speaks OTLP over HTTP with protobuf (port 4318, plain `http://`) and reads
/// `OTEL_EXPORTER_OTLP_{,TRACES_}{ENDPOINT,HEADERS,TIMEOUT}`; the batch processor
/// `OTEL_BSP_*`; the sampler `OTEL_TRACES_SAMPLER{,_ARG}` (default: follow the caller's
/// decision, else sample); the resource `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
/// Without a service name there, the service is `service` (`eventline-relay`, ...).
pub fn tracer_provider(
    service: &str,
) -> Option<Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError>> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| {
        std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let wanted = set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if !wanted || is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none") {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => return Some(Err(error)),
    };
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::new("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let resource = if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(service.to_owned())
            .build()
    };
    Some(Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build()))
}
