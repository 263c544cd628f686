//! The GraphQL gateway: the only door into Chorus (DESIGN §4).
//!
//! - [`schema`]: the GraphQL types, queries and mutations (no HTTP here);
//! - [`views`]: checkouts, events and orders read from the event store and read models;
//! - [`auth`]: bearer JWTs and who may do what; [`live`]: the fan-out behind subscriptions;
//! - [`error`]: the one mapping from every failure to `extensions.code`;
//! - this file: the axum wiring (`/graphql`, GraphiQL at `/`, `/health`,
//!   `/metrics`) and [`serve`].

pub mod auth;
pub mod error;
mod guard;
pub mod live;
mod loaders;
pub mod schema;
pub mod views;

use std::{net::SocketAddr, time::Duration};

use async_graphql::{ErrorExtensions, http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource}};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket, rejection::GraphQLRejection};
use axum::{
    Json, Router,
    extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderValue, Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
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
    /// The live fan-out behind subscriptions.
    pub hub: live::Hub,
    pub auth: auth::Auth,
    /// For calls that wait for a whole saga (a longer timeout).
    pub checkouts: ServiceClient,
    /// Whether `setFault` may change faults (`CHORUS_FAULT_INJECTION=1`).
    pub fault_injection: bool,
}

/// One WebSocket connection, numbered in the order they were opened.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionId(pub u64);

static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Largest request body accepted (a query with its variables).
pub const MAX_BODY: usize = 64 * 1024;

/// What the `/graphql` handler needs.
#[derive(Clone)]
struct Gql {
    schema: ChorusSchema,
    auth: auth::Auth,
}

/// The gateway's routes.
pub fn router(state: GatewayState, metrics: PrometheusHandle, cors: &[String]) -> Router {
    let gql = Gql { schema: build_schema(state.clone()), auth: state.auth.clone() };
    let router = Router::new()
        .route("/", get(graphiql))
        .route("/app", get(example_app))
        .route("/graphql", get(graphql).post(graphql).with_state(gql))
        .route("/health", get(health).with_state(state))
        .merge(chorus_runtime::metrics::router(metrics))
        .layer(RequestBodyLimitLayer::new(MAX_BODY));
    match cors_layer(cors) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// `CHORUS_CORS_ORIGINS`: `*`, or a list of origins allowed to call from a browser.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]);
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(layer.allow_origin(AllowOrigin::list(list)))
}

/// `/graphql`: queries and mutations over HTTP (POST, or GET with the query
/// in the URL), subscriptions over WebSocket on the same path.
async fn graphql(State(gql): State<Gql>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if parts.headers.contains_key(header::UPGRADE) {
        let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
            Ok(protocol) => protocol,
            Err(status) => return status.into_response(),
        };
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        return upgrade
            .protocols(ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |socket| {
                let auth = gql.auth.clone();
                GraphQLWebSocket::new(socket, gql.schema, protocol)
                    .on_connection_init(move |payload| async move {
                        // Refusing here closes the socket (graphql-transport-ws: 4403).
                        let principal = auth
                            .principal(init_token(&payload).as_deref())
                            .map_err(|e| async_graphql::Error::new(format!("{}: {e}", e.code())))?;
                        let mut data = async_graphql::Data::default();
                        data.insert(principal);
                        data.insert(ConnectionId(CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
                        Ok(data)
                    })
                    .serve()
            })
            .into_response();
    }
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let client_trace = parts
        .headers
        .get(chorus_runtime::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(chorus_runtime::trace::TraceParent::parse);
    let principal = match gql.auth.principal(authorization.as_deref()) {
        Ok(principal) => principal,
        Err(e) => return GraphQLResponse::from(refusal(e)).into_response(),
    };
    let request = match GraphQLRequest::<GraphQLRejection>::from_request(Request::from_parts(parts, body), &()).await {
        Ok(request) => request.into_inner(),
        Err(rejection) => {
            let e = GatewayError::BadUserInput(format!("not a GraphQL request: {}", rejection.0));
            return GraphQLResponse::from(refusal(e)).into_response();
        }
    };
    let mut request = request.data(principal);
    // A client's trace context continues; otherwise the gateway starts one.
    if let Some(trace) = client_trace {
        request = request.data(trace);
    }
    GraphQLResponse::from(gql.schema.execute(request).await).into_response()
}

/// A whole request refused before it runs, with its code.
fn refusal(e: GatewayError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![e.extend().into_server_error(async_graphql::Pos::default())])
}

/// The bearer token of a `connection_init` payload: `{"Authorization":
/// "Bearer …"}` (as GraphiQL's headers send it), `{"authorization": …}` or
/// `{"token": "…"}`.
fn init_token(payload: &serde_json::Value) -> Option<String> {
    let field = |name: &str| payload.get(name).and_then(|v| v.as_str());
    field("Authorization")
        .or_else(|| field("authorization"))
        .map(str::to_owned)
        .or_else(|| field("token").map(|t| format!("Bearer {t}")))
}

/// The example frontend (`examples/web/`), the page a frontend developer copies.
async fn example_app() -> impl IntoResponse {
    Html(include_str!("../../examples/web/index.html"))
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
