//! The chaos suite's load: clients sending a steady mix of orchestrated and
//! choreographed checkouts (and some invalid carts) through the gateway,
//! retrying with the same idempotency key until they get an answer, as a
//! careful client would while the platform is being broken.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::Api;

/// How long a client keeps retrying one checkout before it counts it unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(90);
/// Pause between two tries of one request.
const RETRY_AFTER: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Orchestrated,
    Choreographed,
}

/// A checkout the platform accepted (answered with its id).
#[derive(Clone, Debug)]
pub struct Accepted {
    pub id: Uuid,
    pub pattern: Pattern,
}

/// What the clients did, for the checks and the report.
#[derive(Debug, Default)]
pub struct LoadLog {
    pub attempted: u64,
    pub accepted: Vec<Accepted>,
    /// Invalid carts refused with `BAD_USER_INPUT`, as they must be.
    pub invalid_refused: u64,
    /// Invalid carts the platform did not refuse that way (each a failure).
    pub invalid_not_refused: Vec<String>,
    /// Valid checkouts refused with `BAD_USER_INPUT` (each a failure).
    pub valid_refused: Vec<String>,
    /// Checkouts never answered within [`ANSWER_WITHIN`] of retries.
    pub unanswered: u64,
    /// Subscriptions that followed a choreographed checkout across
    /// gateway restarts: what each saw.
    pub watched: Vec<Watched>,
}

#[derive(Clone, Debug)]
pub struct Watched {
    pub id: Uuid,
    pub sequences: BTreeSet<u64>,
    pub saw_terminal: bool,
    pub reconnects: u32,
}

/// Running clients; [`Load::stop`] ends them and returns what they did.
pub struct Load {
    log: Arc<Mutex<LoadLog>>,
    stop: CancellationToken,
    clients: Vec<tokio::task::JoinHandle<()>>,
    watchers: Arc<Mutex<Vec<tokio::task::JoinHandle<Watched>>>>,
}

/// What the clients buy: plentiful products, and a scarce one some carts
/// include so that insufficient stock happens all along the run.
#[derive(Clone, Debug)]
pub struct Shelf {
    pub plentiful: Vec<Uuid>,
    pub scarce: Uuid,
}

impl Load {
    /// Starts `clients` clients; with `watch`, every choreographed checkout
    /// is also followed by a `checkoutProgress` subscription.
    pub fn start(api: &Api, shelf: &Shelf, clients: usize, watch: bool) -> Load {
        let log: Arc<Mutex<LoadLog>> = Arc::default();
        let stop = CancellationToken::new();
        let watchers: Arc<Mutex<Vec<tokio::task::JoinHandle<Watched>>>> = Arc::default();
        let clients = (0..clients)
            .map(|n| {
                let (api, shelf, log, stop, watchers) = (api.clone(), shelf.clone(), log.clone(), stop.clone(), watchers.clone());
                tokio::spawn(async move { client(n, api, shelf, log, stop, watch.then_some(watchers)).await })
            })
            .collect();
        Load { log, stop, clients, watchers }
    }

    /// Stops sending new checkouts, waits for the answers in flight and the
    /// subscriptions, and returns the log.
    pub async fn stop(self) -> LoadLog {
        self.stop.cancel();
        for client in self.clients {
            let _ = client.await;
        }
        let watchers: Vec<_> = std::mem::take(&mut *lock(&self.watchers));
        let mut watched = Vec::new();
        for watcher in watchers {
            if let Ok(w) = watcher.await {
                watched.push(w);
            }
        }
        let mut log = std::mem::take(&mut *lock(&self.log));
        log.watched = watched;
        log
    }
}

async fn client(
    n: usize,
    api: Api,
    shelf: Shelf,
    log: Arc<Mutex<LoadLog>>,
    stop: CancellationToken,
    watchers: Option<Arc<Mutex<Vec<tokio::task::JoinHandle<Watched>>>>>,
) {
    let mut i = 0usize;
    while !stop.is_cancelled() {
        i += 1;
        let pattern = if (n + i).is_multiple_of(2) { Pattern::Orchestrated } else { Pattern::Choreographed };
        let invalid = i.is_multiple_of(10);
        let product = shelf.plentiful[rand::random_range(0..shelf.plentiful.len())];
        let mut items = vec![json!({ "productId": product, "quantity": if invalid { 0 } else { rand::random_range(1..=2) } })];
        // Every fifth cart of each client also wants the scarce product:
        // counted, not drawn, so that even a short run sells it out and
        // exercises compensation (a 20% draw left a run of 80 checkouts
        // without one about one time in five).
        if !invalid && i % 5 == 2 {
            items.push(json!({ "productId": shelf.scarce, "quantity": 1 }));
        }
        let input = json!({ "clientId": Uuid::new_v4(), "items": items, "idempotencyKey": format!("chaos-{}", Uuid::new_v4()) });
        lock(&log).attempted += 1;
        let answer = send(&api, pattern, &input).await;
        let mut log = lock(&log);
        match (answer, invalid) {
            (Answer::Accepted(id), false) => {
                log.accepted.push(Accepted { id, pattern });
                if pattern == Pattern::Choreographed
                    && let Some(watchers) = &watchers
                {
                    lock(watchers).push(tokio::spawn(watch(api.clone(), id)));
                }
            }
            (Answer::BadInput(_), true) => log.invalid_refused += 1,
            (Answer::Accepted(id), true) => log.invalid_not_refused.push(format!("checkout {id} was accepted")),
            (Answer::BadInput(message), false) => log.valid_refused.push(message),
            (Answer::Unanswered, _) => log.unanswered += 1,
        }
    }
}

enum Answer {
    Accepted(Uuid),
    BadInput(String),
    Unanswered,
}

/// Sends one checkout, retrying every error but bad input with the same
/// idempotency key: a repeat names the checkout already started.
async fn send(api: &Api, pattern: Pattern, input: &Value) -> Answer {
    let (query, field, id) = match pattern {
        Pattern::Orchestrated => ("mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id state } }", "checkoutOrchestrated", "id"),
        Pattern::Choreographed => (
            "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId } }",
            "checkoutChoreographed",
            "checkoutId",
        ),
    };
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        match api.gql(query, json!({ "input": input })).await {
            Ok(data) => {
                if let Some(id) = data[field][id].as_str().and_then(|s| s.parse().ok()) {
                    return Answer::Accepted(id);
                }
            }
            Err(e) if e.code == "BAD_USER_INPUT" => return Answer::BadInput(e.to_string()),
            Err(e) => tracing::debug!(error = %e, "checkout not answered; retrying with its key"),
        }
        if Instant::now() > deadline {
            return Answer::Unanswered;
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// Follows one checkout with `checkoutProgress` until its terminal event,
/// reconnecting (and so replaying from its first event) whenever the
/// connection drops.
async fn watch(api: Api, id: Uuid) -> Watched {
    let mut watched = Watched { id, sequences: BTreeSet::new(), saw_terminal: false, reconnects: 0 };
    let deadline = Instant::now() + ANSWER_WITHIN;
    while Instant::now() < deadline {
        match follow(&api, id, &mut watched).await {
            Ok(()) if watched.saw_terminal => break,
            Ok(()) => {}
            Err(e) => tracing::debug!(checkout_id = %id, error = %e, "subscription dropped; reconnecting"),
        }
        watched.reconnects += 1;
        tokio::time::sleep(RETRY_AFTER).await;
    }
    watched
}

async fn follow(api: &Api, id: Uuid, watched: &mut Watched) -> Result<(), String> {
    let url = format!("{}/graphql", api.base().replacen("http", "ws", 1));
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
    let text = |m: Value| Message::Text(m.to_string().into());
    ws.send(text(json!({ "type": "connection_init", "payload": {} }))).await.map_err(|e| e.to_string())?;
    let query = "subscription($id: ID!) { checkoutProgress(checkoutId: $id) { sequence type } }";
    ws.send(text(json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": { "id": id } } })))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(frame) = tokio::time::timeout(ANSWER_WITHIN, ws.next()).await.map_err(|_| "silent".to_owned())? {
        let Message::Text(frame) = frame.map_err(|e| e.to_string())? else { continue };
        let frame: Value = serde_json::from_str(&frame).map_err(|e| e.to_string())?;
        match frame["type"].as_str() {
            Some("next") => {
                let event = &frame["payload"]["data"]["checkoutProgress"];
                if let Some(sequence) = event["sequence"].as_u64() {
                    watched.sequences.insert(sequence);
                }
                if matches!(event["type"].as_str(), Some("CheckoutSucceeded" | "CheckoutFailed")) {
                    watched.saw_terminal = true;
                }
            }
            Some("complete") => return Ok(()),
            Some("error") => return Err(frame.to_string()),
            _ => {}
        }
    }
    Err("closed".into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
