//! The GraphQL gateway: the only door into Chorus (DESIGN §4).
//!
//! - [`schema`]: the GraphQL types, queries and mutations (no HTTP here);
//! - [`views`]: checkouts, events and orders read from the event store and read models;
//! - [`error`]: the one mapping from every failure to `extensions.code`;
//! - this file: the axum wiring (`/graphql`, GraphiQL at `/`, `/health`,
//!   `/metrics`) and [`serve`].

pub mod error;
pub mod schema;
pub mod views;

use std::{net::SocketAddr, time::Duration};

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::GraphQL;
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse},
    routing::get,
};
use chorus_contracts::ServiceClient;
use chorus_event_store::{EventStore, Projections};
use chorus_runtime::shutdown::Shutdown;
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::GatewayError;
pub use schema::{ChorusSchema, build_schema};

/// The services `/health` requires.
pub const SERVICES: &[&str] = &["catalogue", "inventory", "orders", "orchestrator"];

/// What every resolver needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct GatewayState {
    pub services: ServiceClient,
    pub events: EventStore,
    pub projections: Projections,
    /// For calls that wait for a whole saga (a longer timeout).
    pub checkouts: ServiceClient,
    /// Whether `setFault` may change faults (`CHORUS_FAULT_INJECTION=1`).
    pub fault_injection: bool,
}

/// The gateway's routes.
pub fn router(state: GatewayState, metrics: PrometheusHandle) -> Router {
    let schema = build_schema(state.clone());
    Router::new()
        .route("/", get(graphiql))
        .route_service("/graphql", GraphQL::new(schema))
        .route("/health", get(health).with_state(state))
        .merge(chorus_runtime::metrics::router(metrics))
}

/// Serves on `listener` until `shutdown` is cancelled, then lets in-flight
/// requests finish (tracked, so the process waits for them).
pub fn serve(listener: tokio::net::TcpListener, router: Router, shutdown: &Shutdown) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let token = shutdown.token.clone();
    shutdown.tracker.spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "gateway stopped");
        }
    });
    Ok(addr)
}

async fn graphiql() -> impl IntoResponse {
    Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql").title("Chorus").finish())
}

/// 200 when NATS is connected and every service answers a ping, else 503
/// with what is missing.
async fn health(State(state): State<GatewayState>) -> impl IntoResponse {
    let nats_ok = state.services.nats().connection_state() == async_nats::connection::State::Connected;
    let pings = SERVICES.iter().map(|name| {
        let client = state.services.clone();
        async move {
            let answered = tokio::time::timeout(Duration::from_secs(2), client.ping(name)).await;
            (*name, matches!(answered, Ok(Ok(()))))
        }
    });
    let services: Vec<(&str, bool)> = futures::future::join_all(pings).await;
    let healthy = nats_ok && services.iter().all(|(_, ok)| *ok);
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "nats": if nats_ok { "ok" } else { "disconnected" },
        "services": services.iter().map(|(n, ok)| (n.to_string(), serde_json::Value::from(if *ok { "ok" } else { "unavailable" })))
            .collect::<serde_json::Map<_, _>>(),
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
