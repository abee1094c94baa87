//! OpenTelemetry traces: every reconcile a trace, exported over OTLP.
//!
//! Off unless an endpoint is configured (`bosun run --otlp-endpoint`, or
//! the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Then the host's own `tracing`
//! spans become OpenTelemetry spans through a layer of their own: a
//! reconcile (module, object, trigger) with, below it, the time it waited
//! in the queue, the guest call, each read the guest made, each HTTP
//! request it sent (whose server receives the trace's W3C `traceparent`),
//! and each write to the API server with its result. Log lines are not
//! exported; warnings and errors become events of the span they happen in.
//!
//! The metrics' latency histograms (reconcile time, guest calls, guest HTTP
//! requests) carry the sampled trace's ID as an OpenMetrics exemplar
//! (`# {trace_id="…"}` on the bucket the observation fell in), so a
//! dashboard links a slow bucket to a trace of it ([`sampled_trace_id`]).
//!
//! When off, no layer is installed: the spans below the log level are
//! disabled at their call sites as before, the propagator is the no-op
//! global one (no header is added), [`queue_wait`] returns at once and no
//! exemplar is taken.
//!
//! Sampling: `--trace-sample-ratio` (a share of reconciles, each whole),
//! else `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` as the SDK
//! reads them (by default every trace).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The name traces carry as `service.name` unless `OTEL_SERVICE_NAME` says
/// otherwise.
pub const SERVICE_NAME: &str = "bosun";

/// Whether a trace layer is installed: until it is, nothing asks a span
/// for its trace (the metrics' exemplars cost one load of this).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// How the host exports traces.
#[derive(Debug, Clone, Default)]
pub struct TraceConfig {
    /// The OTLP/HTTP endpoint's base URL (`http://collector:4318`); the
    /// traces path is added. None: the `OTEL_EXPORTER_OTLP_*` variables
    /// decide, and without them traces are off.
    pub endpoint: Option<String>,
    /// The share of reconciles traced, 0 to 1; None: the SDK's sampler
    /// variables decide.
    pub sample_ratio: Option<f64>,
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The sample ratio is not a share.
    #[error("the trace sample ratio is {0}: give a number from 0 to 1")]
    Ratio(f64),
    /// The OTLP exporter refused its configuration.
    #[error("setting up the OTLP trace exporter for {endpoint}: {source}")]
    Exporter {
        /// The endpoint, as configured.
        endpoint: String,
        /// What the exporter said.
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

impl TraceConfig {
    /// Whether traces are on: an endpoint given, or one in the environment.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
            || [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
    }
}

/// The running exporter: flushes what is still batched when dropped.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("warning: flushing the last traces failed: {error}");
        }
    }
}

/// The layer that turns the host's spans into OpenTelemetry spans, and the
/// exporter to keep until exit; None when traces are off. Installs the W3C
/// trace-context propagator and the tracer provider globally, so the HTTP
/// layer and [`queue_wait`] reach them without being handed anything.
///
/// Must run outside an async runtime: the exporter's HTTP client blocks.
pub fn layer<S>(
    config: &TraceConfig,
) -> Result<Option<(impl Layer<S> + use<S>, Tracing)>, TraceError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    if !config.enabled() {
        return Ok(None);
    }
    // reqwest has no TLS provider of its own here (see
    // `modules::artifact::install_tls_provider`): ring, as kube's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = &config.endpoint {
        exporter = exporter.with_endpoint(traces_url(endpoint));
    }
    let exporter = exporter.build().map_err(|source| TraceError::Exporter {
        endpoint: config
            .endpoint
            .clone()
            .unwrap_or_else(|| "OTEL_EXPORTER_OTLP_*".into()),
        source,
    })?;
    let mut provider = SdkTracerProvider::builder().with_batch_exporter(exporter);
    if let Some(ratio) = config.sample_ratio {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(TraceError::Ratio(ratio));
        }
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(ratio),
        )));
    }
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        provider = provider.with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(SERVICE_NAME)
                .build(),
        );
    }
    let provider = provider.build();
    global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer(SERVICE_NAME);
    INSTALLED.store(true, Ordering::Relaxed);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            // bosun's spans at any level; of events only warnings and
            // errors (as span events): a debug log line per call would
            // cost more than the trace.
            meta.target().starts_with("bosun")
                && (meta.is_span() || *meta.level() <= tracing::Level::WARN)
        }));
    Ok(Some((layer, Tracing { provider })))
}

/// The OTLP/HTTP traces URL of a base endpoint: `/v1/traces` added unless
/// the URL has a path of its own.
fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// Records, below the current span, the time a key waited in the queue:
/// the `waited` up to now. Nothing when traces are off or the current
/// reconcile is not sampled.
pub fn queue_wait(waited: Duration, trigger: &dyn std::fmt::Debug) {
    let parent = tracing::Span::current().context();
    if !parent.span().span_context().is_sampled() {
        return;
    }
    let now = SystemTime::now();
    let queued_at = now.checked_sub(waited).unwrap_or(now);
    let tracer = global::tracer(SERVICE_NAME);
    let mut span = tracer
        .span_builder("queue_wait")
        .with_start_time(queued_at)
        .with_attributes([KeyValue::new("trigger", format!("{trigger:?}"))])
        .start_with_context(&tracer, &parent);
    span.end_with_timestamp(now);
}

/// The trace ID of the current span when traces are on and its trace is
/// sampled: what a metric's exemplar links to. None otherwise, at the cost
/// of one atomic load when traces are off.
pub fn sampled_trace_id() -> Option<String> {
    if !INSTALLED.load(Ordering::Relaxed) {
        return None;
    }
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_sampled()
        .then(|| span_context.trace_id().to_string())
}

/// Adds the current span's W3C trace context (`traceparent`, and
/// `tracestate` if any) to an outgoing request's headers, replacing any
/// the guest set: the host's trace is the one the server joins. Nothing
/// when traces are off.
pub fn inject_trace_context(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return;
    }
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_endpoint_gets_the_traces_path_and_a_full_one_is_kept() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("https://c.example/otlp/v1/traces"),
            "https://c.example/otlp/v1/traces"
        );
    }

    #[test]
    fn without_traces_nothing_is_injected() {
        let mut headers = http::HeaderMap::new();
        inject_trace_context(&mut headers);
        assert!(headers.is_empty());
    }
}
