//! W3C trace context between `tracing` spans and what carries it from one service to the
//! next: the `traceparent` HTTP header of a command, the event metadata the command records,
//! the Kafka header the relay writes.
//!
//! Only `traceparent` travels (`tracestate` is dropped): it is all a span needs to join a
//! trace. Spans are OpenTelemetry spans only when the binary installed the OpenTelemetry
//! layer (`OTEL_EXPORTER_OTLP_ENDPOINT` set); without it [`of`] finds nothing and
//! [`set_parent`] and [`add_link`] do nothing, so the functions are safe to call everywhere.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (HTTP and Kafka) and the name of the value, as the W3C recommendation spells it.
pub const TRACEPARENT: &str = "traceparent";

/// The span a `traceparent` value names (`00-<trace id>-<parent id>-<flags>`), if it is a
/// valid one. Versions after `00` are read as `00`, as the recommendation asks.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let span_id = parts.next()?;
    let flags = parts.next()?;
    let well_formed = version.len() == 2
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && trace_id.len() == 32
        && span_id.len() == 16
        && flags.len() == 2;
    if !well_formed || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let context = SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8()),
        true,
        TraceState::NONE,
    );
    context.is_valid().then_some(context)
}

/// The `traceparent` of `span`: `None` when the span is not an OpenTelemetry span (no layer,
/// or the span is disabled).
pub fn of(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Makes `span` a child of the span `traceparent` names. Call it before the span is first
/// entered: a started span keeps its parent. An invalid value leaves the span a root.
pub fn set_parent(span: &Span, traceparent: &str) {
    if let Some(parent) = parse(traceparent) {
        // Fails only without the OpenTelemetry layer, when there is no trace to join.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}

/// Links `span` to the span `traceparent` names: for a span that serves several traces at
/// once (a batch), which can have only one parent.
pub fn add_link(span: &Span, traceparent: &str) {
    if let Some(linked) = parse(traceparent) {
        span.add_link(linked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses_and_malformed_ones_do_not() {
        let context = parse(PARENT).expect("valid");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert!(context.is_remote());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn without_the_opentelemetry_layer_spans_have_no_traceparent() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("no_layer");
            set_parent(&span, PARENT);
            assert_eq!(of(&span), None);
        });
    }

    #[test]
    fn a_span_given_a_parent_continues_its_trace() {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("child");
            set_parent(&span, PARENT);
            let traceparent = of(&span).expect("an OpenTelemetry span");
            let context = parse(&traceparent).expect("valid");
            assert_eq!(
                context.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(context.span_id().to_string(), "00f067aa0ba902b7");
        });
    }
}
