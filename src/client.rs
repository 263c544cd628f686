//! What `chorus bench`, `chorus chaos` and `chorus status` see of the
//! platform: the public GraphQL API over HTTP, and (the bench's) one
//! `allCheckoutEvents` subscription over WebSocket that every client of a
//! run shares.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use uuid::Uuid;

use crate::ChorusError;

fn bench_err(message: impl std::fmt::Display) -> ChorusError {
    ChorusError::Bench(message.to_string())
}

/// The GraphQL endpoint, with the caller's token if any.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A GraphQL error as the gateway reported it.
#[derive(Debug)]
pub struct GqlError {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for GqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ChorusError> {
        let http = reqwest::Client::builder()
            // One connection per client task is reused; no request waits on a pool.
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .map_err(bench_err)?;
        Ok(Api { http, base: base.trim_end_matches('/').to_owned(), token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Statements run so far on each database, from the platform's
    /// `db_statements_total{db}` on `/metrics`; `None` when unreadable.
    pub async fn statements(&self) -> Option<std::collections::BTreeMap<String, u64>> {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await.ok()?.text().await.ok()?;
        let counts = text.lines().filter_map(|line| {
            let rest = line.strip_prefix("db_statements_total{")?;
            let (labels, value) = rest.split_once("} ")?;
            let db = labels.split(',').find_map(|l| l.strip_prefix("db=\"")?.strip_suffix('"'))?;
            Some((db.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        });
        Some(counts.collect())
    }

    /// One GraphQL request; `Err` carries the first error's code.
    pub async fn gql(&self, query: &str, variables: Value) -> Result<Value, GqlError> {
        let mut request = self.http.post(format!("{}/graphql", self.base)).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let transport = |e: reqwest::Error| GqlError { code: "TRANSPORT".into(), message: e.to_string() };
        let mut body: Value = request.send().await.map_err(transport)?.json().await.map_err(transport)?;
        if let Some(error) = body.get("errors").and_then(|e| e.get(0)) {
            return Err(GqlError {
                code: error["extensions"]["code"].as_str().unwrap_or("UNKNOWN").to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(body["data"].take())
    }

    /// Waits for `/health` to answer 200 (a platform that is still starting).
    pub async fn wait_healthy(&self, limit: Duration) -> Result<(), ChorusError> {
        let deadline = Instant::now() + limit;
        loop {
            match self.http.get(format!("{}/health", self.base)).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(bench_err(format!("{} did not become healthy within {limit:?}", self.base)));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// How a checkout ended, as its events tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
}

/// What the feed learnt of one checkout.
#[derive(Debug, Default)]
struct Track {
    events: u32,
    /// Stock was reserved, then given back (the saga compensated).
    compensated: bool,
    terminal: Option<(Instant, Outcome)>,
    waiter: Option<oneshot::Sender<(Instant, Outcome)>>,
    /// When the order step failed for good, and when the stock came back.
    order_failed_at: Option<Instant>,
    freed_after: Option<Duration>,
}

/// Every stored event, as an `allCheckoutEvents` subscriber receives it.
#[derive(Clone, Debug)]
pub struct Feed {
    tracks: Arc<Mutex<HashMap<Uuid, Track>>>,
    /// When the last frame arrived (quiescence is "nothing for a while").
    last_frame: Arc<Mutex<Instant>>,
    task: Arc<AbortOnDropHandle<()>>,
}

/// What the feed knows of one checkout once the run is over.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    pub events: u32,
    pub compensated: bool,
    pub freed_after: Option<Duration>,
}

impl Feed {
    /// Opens the subscription and returns once the gateway has acknowledged it.
    pub async fn open(api: &Api) -> Result<Feed, ChorusError> {
        let ws_url = format!("{}/graphql", api.base().replacen("http", "ws", 1));
        let mut request = ws_url.into_client_request().map_err(bench_err)?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| bench_err(format!("cannot open a subscription on {}: {e}", api.base())))?;
        let payload = api.token.as_ref().map(|t| json!({ "Authorization": format!("Bearer {t}") })).unwrap_or(json!({}));
        let send = |m: Value| Message::Text(m.to_string().into());
        ws.send(send(json!({ "type": "connection_init", "payload": payload }))).await.map_err(bench_err)?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.contains("connection_ack") => break,
                Ok(Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)))) => {}
                other => return Err(bench_err(format!("the gateway refused the subscription's connection: {other:?}"))),
            }
        }
        let query = "subscription { allCheckoutEvents { checkoutId type payload } }";
        ws.send(send(json!({ "id": "feed", "type": "subscribe", "payload": { "query": query } }))).await.map_err(bench_err)?;
        let tracks: Arc<Mutex<HashMap<Uuid, Track>>> = Arc::default();
        let last_frame = Arc::new(Mutex::new(Instant::now()));
        let (t, l) = (tracks.clone(), last_frame.clone());
        let task = tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else { continue };
                let at = Instant::now();
                *lock(&l) = at;
                let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                if frame["type"] == "error" || frame["type"] == "complete" {
                    tracing::error!(frame = %text, "the bench's event subscription ended");
                    break;
                }
                let event = &frame["payload"]["data"]["allCheckoutEvents"];
                let Some(id) = event["checkoutId"].as_str().and_then(|s| s.parse().ok()) else { continue };
                observe(&mut lock(&t), id, event, at);
            }
        });
        // graphql-transport-ws confirms no subscription: give the gateway a
        // moment to register it before the first checkout is sent.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Feed { tracks, last_frame, task: Arc::new(AbortOnDropHandle::new(task)) })
    }

    /// Resolves when the checkout's terminal event arrives (at once if it
    /// already has): when, and how it ended.
    pub fn terminal(&self, id: Uuid) -> oneshot::Receiver<(Instant, Outcome)> {
        let (tx, rx) = oneshot::channel();
        let mut tracks = lock(&self.tracks);
        let track = tracks.entry(id).or_default();
        match track.terminal {
            Some(t) => {
                let _ = tx.send(t);
            }
            None => track.waiter = Some(tx),
        }
        rx
    }

    pub fn seen(&self, id: Uuid) -> Seen {
        lock(&self.tracks)
            .get(&id)
            .map(|t| Seen { events: t.events, compensated: t.compensated, freed_after: t.freed_after })
            .unwrap_or_default()
    }

    /// Waits until no event has arrived for `quiet` (bounded by `limit`).
    pub async fn settle(&self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && lock(&self.last_frame).elapsed() < quiet {
            tokio::time::sleep(quiet / 4).await;
        }
    }

    pub fn is_open(&self) -> bool {
        !self.task.is_finished()
    }
}

/// Folds one event into its checkout's track.
fn observe(tracks: &mut HashMap<Uuid, Track>, id: Uuid, event: &Value, at: Instant) {
    let track = tracks.entry(id).or_default();
    track.events += 1;
    // The states a transition event entered: those it passed through, then `to`.
    let payload = &event["payload"];
    let passed = payload["via"].as_array().into_iter().flatten().map(|p| &p["state"]);
    let entered = |state: &str| passed.clone().chain([&payload["to"]]).any(|s| s == state);
    let transition = event["type"] == "SagaTransitioned";
    let outcome = match event["type"].as_str() {
        Some("CheckoutSucceeded") => Some(Outcome::Succeeded),
        Some("CheckoutFailed") => Some(Outcome::Failed),
        Some("OrderCreationFailed") | Some("SagaTransitioned") if !transition || entered("FAILED_ORDER_CREATION") => {
            track.order_failed_at = Some(at);
            None
        }
        Some("StockReleased") | Some("SagaTransitioned") if !transition || entered("CANCELLED") => {
            if let Some(failed) = track.order_failed_at {
                track.compensated = true;
                track.freed_after = Some(at.saturating_duration_since(failed));
            } else if event["type"] == "StockReleased" {
                track.compensated = true;
            }
            None
        }
        _ => None,
    };
    if let Some(outcome) = outcome
        && track.terminal.is_none()
    {
        track.terminal = Some((at, outcome));
        if let Some(waiter) = track.waiter.take() {
            let _ = waiter.send((at, outcome));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, payload: Value) -> Value {
        json!({ "type": kind, "payload": payload })
    }

    #[test]
    fn a_compensated_checkout_is_told_from_its_events() {
        let mut tracks = HashMap::new();
        let id = Uuid::new_v4();
        let t0 = Instant::now();
        for (kind, payload) in [
            ("CheckoutInitiated", json!({})),
            ("StockReserved", json!({})),
            ("OrderCreationFailed", json!({})),
            ("StockReleased", json!({})),
            ("CheckoutFailed", json!({})),
        ] {
            observe(&mut tracks, id, &event(kind, payload), t0);
        }
        let track = &tracks[&id];
        assert_eq!(track.events, 5);
        assert!(track.compensated);
        assert_eq!(track.terminal.map(|t| t.1), Some(Outcome::Failed));
        assert!(track.freed_after.is_some());
    }

    #[test]
    fn an_orchestrated_failure_before_reserving_is_not_a_compensation() {
        let mut tracks = HashMap::new();
        let id = Uuid::new_v4();
        let t0 = Instant::now();
        let passed = |state: &str| json!({ "state": state, "reason": null });
        for payload in [
            json!({ "to": "VERIFYING_STOCK", "via": [passed("PENDING")] }),
            json!({ "to": "COMPENSATING", "via": [passed("FAILED_INSUFFICIENT_STOCK")] }),
            json!({ "to": "CANCELLED" }),
        ] {
            observe(&mut tracks, id, &event("SagaTransitioned", payload), t0);
        }
        observe(&mut tracks, id, &event("CheckoutFailed", json!({})), t0);
        assert!(!tracks[&id].compensated);
        assert_eq!(tracks[&id].terminal.map(|t| t.1), Some(Outcome::Failed));
    }

    #[test]
    fn an_orchestrated_order_failure_is_a_compensation() {
        let mut tracks = HashMap::new();
        let id = Uuid::new_v4();
        let t0 = Instant::now();
        let passed = |state: &str| json!({ "state": state, "reason": null });
        for payload in [json!({ "to": "COMPENSATING", "via": [passed("FAILED_ORDER_CREATION")] }), json!({ "to": "CANCELLED" })] {
            observe(&mut tracks, id, &event("SagaTransitioned", payload), t0);
        }
        observe(&mut tracks, id, &event("CheckoutFailed", json!({})), t0);
        assert!(tracks[&id].compensated);
        assert!(tracks[&id].freed_after.is_some());
    }

    #[tokio::test]
    async fn a_waiter_registered_after_the_end_is_answered_at_once() {
        let mut tracks = HashMap::new();
        let id = Uuid::new_v4();
        observe(&mut tracks, id, &event("CheckoutSucceeded", json!({})), Instant::now());
        let feed = Feed {
            tracks: Arc::new(Mutex::new(tracks)),
            last_frame: Arc::new(Mutex::new(Instant::now())),
            task: Arc::new(AbortOnDropHandle::new(tokio::spawn(async {}))),
        };
        let mut rx = feed.terminal(id);
        assert_eq!(rx.try_recv().map(|t| t.1).ok(), Some(Outcome::Succeeded));
    }
}
