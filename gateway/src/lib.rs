//! The GraphQL gateway: the only door into Chorus (DESIGN §4).
//!
//! - [`schema`]: the schema, one module per root (no HTTP here); [`types`]
//!   and [`views`]: its object types (services' answers; checkouts, events
//!   and orders from the event store and read models); `inputs`: its input
//!   types and their parsing;
//! - [`auth`]: bearer JWTs and who may do what; [`live`]: the fan-out behind subscriptions;
//! - [`error`]: the one mapping from every failure to `extensions.code`;
//! - `assets`: GraphiQL at `/`, every file of it embedded;
//! - this file: the axum wiring (`/graphql`, `/`, `/assets/…`, `/app`,
//!   `/health`, `/metrics`) and [`serve`].

mod assets;
pub mod auth;
pub mod error;
mod guard;
mod inputs;
pub mod limits;
pub mod live;
mod platform;
mod loaders;
mod request;
mod retry;
pub mod schema;
pub mod types;
mod socket;
pub mod views;

use std::{net::SocketAddr, time::Duration};

use async_graphql::{ErrorExtensions, http::ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::{GraphQLRequest, rejection::GraphQLRejection};
use axum::{
    Json, Router,
    extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderValue, Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
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
    /// Timeouts, connection caps, the rate limit and the response size cap.
    pub limits: limits::Limits,
}

/// One WebSocket connection, numbered in the order they were opened.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionId(pub u64);


/// Largest request body accepted (a query with its variables).
pub const MAX_BODY: usize = 64 * 1024;

/// What the `/graphql` handler needs.
#[derive(Clone)]
struct Gql {
    schema: ChorusSchema,
    auth: auth::Auth,
    /// `CHORUS_CORS_ORIGINS`: the browser origins besides the gateway's own.
    origins: std::sync::Arc<Vec<String>>,
    /// A WebSocket's timings: `connection_init` within, ping every.
    socket: socket::Timing,
    max_response: usize,
}

/// The gateway's routes.
pub fn router(state: GatewayState, metrics: PrometheusHandle, cors: &[String]) -> Router {
    let gql = Gql {
        schema: build_schema(state.clone()),
        auth: state.auth.clone(),
        origins: std::sync::Arc::new(cors.to_vec()),
        socket: socket::Timing { init_within: state.limits.ws_init_timeout, ping_every: state.limits.ws_ping_interval },
        max_response: state.limits.max_response_bytes,
    };
    let router = Router::new()
        .route("/", get(assets::graphiql).with_state(state.clone()))
        .route("/assets/graphiql/{file}", get(assets::file))
        .route("/app", get(example_app))
        .route("/graphql", get(graphql).post(graphql).with_state(gql))
        .route("/health", get(health).with_state(state))
        .merge(chorus_runtime::metrics::router(metrics))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        // A bug that panics in one request answers that request 500; the
        // connection, the others and the process go on.
        .layer(CatchPanicLayer::new());
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
    // Set by [`serve`] on every request of a connection.
    let ip = parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| limits::ClientIp(c.0.ip()));
    let admitted = parts.extensions.get::<std::sync::Arc<limits::Admitted>>().cloned();
    // A page in someone's browser can reach a gateway on 127.0.0.1: only
    // the gateway's own pages and the configured origins may call it
    // (cross-site request forgery, with or without auth).
    if !origin_allowed(&parts.headers, &gql.origins) {
        return http_refusal(StatusCode::FORBIDDEN, GatewayError::Forbidden("this origin may not call the gateway (CHORUS_CORS_ORIGINS)".into()));
    }
    if parts.method == Method::POST && !parts.headers.contains_key(header::UPGRADE) && !json_body(&parts.headers) {
        return http_refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::BadUserInput("a GraphQL POST body is application/json".into()),
        );
    }
    if parts.headers.contains_key(header::UPGRADE) {
        // The first subprotocol offered that async-graphql speaks.
        let offered = parts.headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let Some(protocol) = offered.split(',').find_map(|p| p.trim().parse::<async_graphql::http::WebSocketProtocols>().ok()) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        return upgrade
            .protocols(ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |socket| async move {
                socket::serve(socket, gql.schema, protocol, gql.auth, gql.socket, ip).await;
                // The socket's place among the open connections is freed now.
                drop(admitted);
            })
            .into_response();
    }
    let media = ResponseMedia { kind: MediaKind::of(&parts.headers), max_bytes: gql.max_response };
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let client_trace = parts
        .headers
        .get(chorus_runtime::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(chorus_runtime::trace::TraceParent::parse);
    let (principal, _) = match gql.auth.session(authorization.as_deref()) {
        Ok(session) => session,
        Err(e) => return media.respond(refusal(e)),
    };
    let is_get = parts.method == Method::GET;
    // async-graphql reads `operation_name` from a GET's URL; the GraphQL
    // over HTTP spec (and every client) writes `operationName`.
    let get_operation = is_get
        .then(|| axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(&parts.uri).ok())
        .flatten()
        .and_then(|q| q.0.get("operationName").cloned());
    let request = match GraphQLRequest::<GraphQLRejection>::from_request(Request::from_parts(parts, body), &()).await {
        Ok(request) => match get_operation {
            Some(name) if request.0.operation_name.is_none() => request.into_inner().operation_name(name),
            _ => request.into_inner(),
        },
        Err(rejection) => {
            // Not JSON, or not a GraphQL request: 400 whatever the media
            // type (no client could have meant it).
            let e = GatewayError::BadUserInput(format!("not a GraphQL request: {}", rejection.0));
            let mut response = media.respond(refusal(e));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    // GET is for reading: a link or an <img> must never change anything.
    if is_get && is_mutation(&request) {
        let mut response = http_refusal(StatusCode::METHOD_NOT_ALLOWED, GatewayError::BadUserInput("mutations are sent with POST".into()));
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let mut request = request.data(principal);
    if let Some(ip) = ip {
        request = request.data(ip);
    }
    // A client's trace context continues; otherwise the gateway starts one.
    if let Some(trace) = client_trace {
        request = request.data(trace);
    }
    media.respond(gql.schema.execute(request).await)
}

/// The response's media type, as the client's `Accept` asks (GraphQL over
/// HTTP): `application/graphql-response+json` when it is accepted, with
/// its status codes (400 for a request that never ran); otherwise
/// `application/json`, always 200 (what older clients expect). Either way
/// a rate-limited request is 429 with `Retry-After`, and a body over
/// `max_bytes` is replaced by an error.
#[derive(Clone, Copy, Debug)]
struct ResponseMedia {
    kind: MediaKind,
    max_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaKind {
    GraphQl,
    Json,
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

impl MediaKind {
    fn of(headers: &axum::http::HeaderMap) -> Self {
        let accept = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
        let types: Vec<String> = accept.split(',').map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()).collect();
        if types.iter().any(|t| t == GRAPHQL_RESPONSE) { MediaKind::GraphQl } else { MediaKind::Json }
    }
}

impl ResponseMedia {
    fn respond(self, response: async_graphql::Response) -> Response {
        // A request that never ran (unparseable, invalid, refused) has no
        // `data` at all, rather than `data: null`.
        let never_ran = response.data == async_graphql::Value::Null && !response.errors.is_empty();
        let retry_after = response.errors.iter().find_map(|e| {
            let extensions = e.extensions.as_ref()?;
            match (extensions.get("code"), extensions.get("retryAfter")) {
                (Some(async_graphql::Value::String(code)), Some(async_graphql::Value::Number(after))) if code == "RATE_LIMITED" => after.as_u64(),
                _ => None,
            }
        });
        let mut body = serde_json::to_value(&response).unwrap_or_else(|_| serde_json::json!({ "errors": [{ "message": "internal error" }] }));
        if never_ran && let Some(object) = body.as_object_mut() {
            object.remove("data");
        }
        let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
        if bytes.len() > self.max_bytes {
            // Counted as sent, so a list that grows cannot hold a gateway's
            // memory and bandwidth for one request (what a page would be for).
            let e = GatewayError::BadUserInput(format!(
                "the response would be {} bytes; at most {} (CHORUS_MAX_RESPONSE_BYTES): ask for fewer fields or items",
                bytes.len(),
                self.max_bytes
            ));
            bytes = serde_json::to_vec(&serde_json::json!({ "data": null, "errors": [{ "message": e.to_string(), "extensions": { "code": e.code() } }] }))
                .unwrap_or_default();
        }
        let (status, content_type) = match self.kind {
            _ if retry_after.is_some() => (StatusCode::TOO_MANY_REQUESTS, if self.kind == MediaKind::GraphQl { GRAPHQL_RESPONSE } else { "application/json" }),
            MediaKind::GraphQl if never_ran => (StatusCode::BAD_REQUEST, GRAPHQL_RESPONSE),
            MediaKind::GraphQl => (StatusCode::OK, GRAPHQL_RESPONSE),
            MediaKind::Json => (StatusCode::OK, "application/json"),
        };
        let mut http = (status, bytes).into_response();
        http.headers_mut().extend(response.http_headers);
        http.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(after) = retry_after {
            http.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after));
        }
        http
    }
}

/// Whether the operation the request would run is a mutation. Text that
/// nests too deep is not parsed here (the guard refuses it before the
/// parser); text that does not parse is left to the schema's error.
fn is_mutation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    if guard::check_nesting(&request.query).is_err() {
        return false;
    }
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else { return false };
    let ty = match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    };
    ty == Some(OperationType::Mutation)
}

/// Whether a POST carries JSON (`application/json`, or the GraphQL response
/// type some clients send), the only bodies a GraphQL POST may have: a form
/// or `text/plain` is what a cross-site page can send without asking.
fn json_body(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let media = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == "application/json" || media == "application/graphql-response+json"
}

/// Requests without `Origin` come from programs, not pages; a page's
/// origin must be the gateway's own (`Host`) or one of `origins`.
fn origin_allowed(headers: &axum::http::HeaderMap, origins: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let own = [format!("http://{host}"), format!("https://{host}")];
    own.iter().any(|o| o == origin) || origins.iter().any(|o| o == "*" || o == origin)
}

/// An HTTP-level refusal: `status`, and the GraphQL error body with its code.
fn http_refusal(status: StatusCode, e: GatewayError) -> Response {
    (status, Json(serde_json::json!({ "errors": [{ "message": e.to_string(), "extensions": { "code": e.code() } }] }))).into_response()
}

/// A whole request refused before it runs, with its code.
fn refusal(e: GatewayError) -> async_graphql::Response {
    async_graphql::Response::from_errors(vec![e.extend().into_server_error(async_graphql::Pos::default())])
}

/// The bearer token of a `connection_init` payload: `{"Authorization":
/// "Bearer …"}` (as GraphiQL's headers send it), `{"authorization": …}` or
/// `{"token": "…"}`.
pub(crate) fn init_token(payload: &serde_json::Value) -> Option<String> {
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

/// How long in-flight requests get to finish at shutdown.
const DRAIN_AT_STOP: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` is cancelled, then lets in-flight
/// requests finish (tracked, so the process waits for them). Served with
/// hyper directly rather than `axum::serve`, for what a door facing the
/// open needs:
/// - a client that dribbles its headers (slowloris), or holds an idle
///   keep-alive connection, is cut off after `read_timeout` (hyper's header
///   read timer runs while it waits for the next request too); bodies have
///   the same bound;
/// - at most `max_connections` open, `max_connections_per_ip` from one
///   address: one more is answered 503 and closed;
/// - every request knows the address it came from (`ConnectInfo`), for the
///   rate limit.
pub fn serve(listener: tokio::net::TcpListener, router: Router, limits: &limits::Limits, shutdown: &Shutdown) -> std::io::Result<SocketAddr> {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto::Builder, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    let addr = listener.local_addr()?;
    let token = shutdown.token.clone();
    let read_timeout = limits.read_timeout;
    let gate = limits::ConnectionGate::new(limits);
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(read_timeout));
    shutdown.tracker.spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut builder = Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout);
        // HTTP/2 (prior knowledge): a peer that stops answering pings is dropped.
        builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(read_timeout)).keep_alive_timeout(read_timeout);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = token.cancelled() => break,
            };
            let admitted = match gate.admit(peer.ip()) {
                Ok(admitted) => admitted,
                Err(refused) => {
                    metrics::counter!("gateway_connections_refused_total", "reason" => refused.as_str()).increment(1);
                    tracing::debug!(%peer, reason = refused.as_str(), "connection refused");
                    tokio::spawn(refuse(stream));
                    continue;
                }
            };
            // Shared with a WebSocket the connection upgrades to, which
            // outlives this connection's task.
            let admitted = std::sync::Arc::new(admitted);
            let held = admitted.clone();
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(router.clone(), move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                request.extensions_mut().insert(held.clone());
                request
            }));
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended");
                }
                drop(admitted);
            });
        }
        if tokio::time::timeout(DRAIN_AT_STOP, graceful.shutdown()).await.is_err() {
            tracing::warn!("requests still running at stop were cut off");
        }
    });
    Ok(addr)
}

/// Answers a connection over the caps 503 (come back later) and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await
    })
    .await;
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
