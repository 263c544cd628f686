//! Tracing for every process: JSON lines for machines, pretty text for people.
//!
//! Spans about a checkout carry a `checkout_id` field; with the JSON format
//! the current span's fields are flattened into each line, so every line
//! about a checkout can be found by that one key.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    Resource, runtime,
    trace::{SdkTracerProvider, span_processor_with_async_runtime},
};
use tracing::Level;
use tracing_subscriber::{EnvFilter, filter::Targets, fmt, prelude::*};

use crate::config::LogFormat;

/// What must outlive the process's work: the trace exporter, flushed at stop.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (at shutdown). Blocks while the
    /// runtime's export task works, so it must not run on the runtime.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace export did not flush");
        }
    }
}

/// Installs the global subscriber: logs, and with `OTEL_EXPORTER_OTLP_ENDPOINT`
/// set, spans exported over OTLP/HTTP as `service` (the exporter reads the
/// standard `OTEL_*` variables). Safe to call more than once (tests start
/// several platforms in one process): later calls change nothing.
pub fn init(format: LogFormat, service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,async_nats=warn"));
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => match exporter(service) {
            Ok(provider) => Some(provider),
            Err(e) => {
                eprintln!("chorus: traces are not exported ({endpoint}): {e}");
                None
            }
        },
        _ => None,
    };
    // Spans are exported whatever RUST_LOG says about log lines: Chorus's
    // own spans at INFO, no library's.
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("chorus"))
            .with_filter(Targets::new().with_target("chorus", Level::INFO))
    });
    let registry = tracing_subscriber::registry().with(spans);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_writer(std::io::stderr).with_filter(filter)).try_init(),
    };
    // An error only means a subscriber is already installed.
    let _ = result;
    Telemetry { provider }
}

fn exporter(service: &str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let resource = Resource::builder().with_service_name(service.to_owned()).build();
    // The HTTP client runs on tokio: batch and export on the runtime too.
    let batch = span_processor_with_async_runtime::BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
    Ok(SdkTracerProvider::builder().with_span_processor(batch).with_resource(resource).build())
}
