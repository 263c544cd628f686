//! The Prometheus recorder (metrics-exporter-prometheus, without its HTTP
//! listener: `/metrics` is an axum route, so the gateway serves it on its own
//! port and other roles on `CHORUS_METRICS_ADDR`).

use std::{net::SocketAddr, sync::OnceLock};

use axum::{Router, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets that resolve milliseconds: from 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Every metric Chorus exports, with its kind and help text (DESIGN §5 and
/// ours): the catalogue `/metrics` describes and the dashboards query.
pub const CATALOGUE: &[(&str, Kind, &str)] = &[
    ("saga_started_total", Kind::Counter, "Orchestrated sagas started"),
    ("saga_completed_total", Kind::Counter, "Orchestrated sagas that completed"),
    ("saga_failed_total", Kind::Counter, "Orchestrated sagas that failed, by reason and failed step"),
    (
        "saga_compensation_failed_total",
        Kind::Counter,
        "Orchestrated sagas whose compensation met an error retrying cannot cure (state COMPENSATION_FAILED): alert on any",
    ),
    ("outbox_pending_messages", Kind::Gauge, "Events in the orchestrator's outbox waiting to be stored, as its relay last saw them"),
    (
        "outbox_publish_failures_total",
        Kind::Counter,
        "Failed attempts of the orchestrator's relay to store a batch of outbox events (each retried)",
    ),
    ("db_statements_total", Kind::Counter, "Statements run on a service's own database, by database (what `chorus bench` divides per checkout)"),
    ("saga_execution_duration_seconds", Kind::Histogram, "Time from an orchestrated saga's start to its terminal state"),
    ("external_service_call_duration_seconds", Kind::Histogram, "Round trip of one call to a service, by service"),
    ("events_published_total", Kind::Counter, "Events appended to the stream (duplicates not counted), by topic and type"),
    ("events_consumed_total", Kind::Counter, "Event deliveries to a worker, by topic, type and durable consumer"),
    ("event_latency_seconds", Kind::Histogram, "Time from an event's emission to its first delivery to a worker, by topic and type"),
    ("events_poison_total", Kind::Counter, "Events a worker gave up on (or could not decode), by durable consumer"),
    ("saga_choreo_success_total", Kind::Counter, "Choreographed checkouts that succeeded, by the worker that ended them"),
    ("saga_choreo_failed_total", Kind::Counter, "Choreographed checkouts that failed, by the worker that ended them"),
    ("saga_choreo_duration_seconds", Kind::Histogram, "Time from a choreographed checkout's CheckoutInitiated to its terminal event, by outcome"),
    ("consumer_lag_messages", Kind::Gauge, "Events not yet delivered to a durable consumer"),
    ("consumer_ack_pending_messages", Kind::Gauge, "Events delivered to a durable consumer and not yet acked"),
    ("gateway_subscriptions", Kind::Gauge, "Live GraphQL subscriptions this gateway holds"),
];

/// What kind of metric a catalogue entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Installs the process-wide recorder once and returns its handle; every
/// later call returns the same handle (one recorder per process).
pub fn install(enabled: bool) -> Result<PrometheusHandle, RuntimeError> {
    if !enabled {
        // A recorder nobody records into: `/metrics` stays empty and every
        // `metrics::` macro is a no-op (to measure what metrics cost).
        return Ok(PrometheusBuilder::new().build_recorder().handle());
    }
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| RuntimeError::Metrics(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    match metrics::set_global_recorder(recorder) {
        Ok(()) => {
            let _ = HANDLE.set(handle.clone());
            // HELP lines, so `promtool check metrics` finds nothing to lint.
            for (name, kind, help) in CATALOGUE {
                match kind {
                    Kind::Counter => metrics::describe_counter!(*name, *help),
                    Kind::Gauge => metrics::describe_gauge!(*name, *help),
                    Kind::Histogram => {
                        metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help)
                    }
                }
            }
            Ok(handle)
        }
        // Lost a race with another caller: use the winner's handle.
        Err(_) => HANDLE
            .get()
            .cloned()
            .ok_or_else(|| RuntimeError::Metrics("a foreign recorder is installed".into())),
    }
}

/// `GET /metrics` in the Prometheus text format.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    )
}

/// Serves `/metrics` on `addr` until `shutdown` is cancelled; for roles
/// without an HTTP server of their own. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> Result<SocketAddr, RuntimeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| RuntimeError::Bind { addr, source })?;
    tokio::spawn(async move {
        let served = axum::serve(listener, router(handle))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%bound, "metrics at http://{bound}/metrics");
    Ok(bound)
}
