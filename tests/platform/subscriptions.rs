//! Subscriptions over WebSocket, both protocols, against the real gateway:
//! replay then live, each event once and in order, completion, auth.

use std::time::Duration;

use chorus_workers::WorkerName;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};
use uuid::Uuid;

use crate::{
    choreographed::{event_types, terminal},
    support::{Backend, TestApp, eventually, subscribed},
};

const PROGRESS: &str = "subscription($id: ID!) { checkoutProgress(checkoutId: $id) { id sequence type checkoutId pattern payload } }";
const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// `graphql-transport-ws` (graphql-ws library, GraphiQL).
    Transport,
    /// The legacy `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

/// A GraphQL WebSocket client speaking either protocol.
pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    proto: Proto,
    close_reason: Option<String>,
}

/// What the server said about one subscription.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Data(Value),
    Error(Value),
    Complete,
    Closed(String),
}

impl Ws {
    /// Connects and sends `connection_init` with `payload`; the answer
    /// (ack, or the close that refuses it) is read by [`Ws::acked`].
    pub async fn connect(app: &TestApp, proto: Proto, payload: Value) -> Self {
        let mut request = format!("ws://{}/graphql", app.addr).into_client_request().expect("request");
        let name = match proto {
            Proto::Transport => "graphql-transport-ws",
            Proto::Legacy => "graphql-ws",
        };
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(name));
        let (socket, _) = connect_async(request).await.expect("WebSocket connects");
        let mut ws = Ws { socket, proto, close_reason: None };
        ws.send(json!({ "type": "connection_init", "payload": payload })).await;
        ws
    }

    /// Connects and waits for the ack.
    pub async fn open(app: &TestApp, proto: Proto, payload: Value) -> Self {
        let mut ws = Self::connect(app, proto, payload).await;
        assert_eq!(ws.acked().await, Ok(()), "connection refused");
        ws
    }

    /// `Ok` on `connection_ack`; the close reason or error otherwise.
    pub async fn acked(&mut self) -> Result<(), String> {
        loop {
            match self.raw().await {
                Some(v) if v["type"] == "connection_ack" => return Ok(()),
                Some(v) if v["type"] == "ka" || v["type"] == "ping" || v["type"] == "pong" => continue,
                Some(v) => return Err(v.to_string()),
                None => return Err(self.close_reason.take().unwrap_or_default()),
            }
        }
    }

    async fn send(&mut self, message: Value) {
        self.socket.send(Message::Text(message.to_string().into())).await.expect("send");
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = match self.proto {
            Proto::Transport => "subscribe",
            Proto::Legacy => "start",
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } })).await;
    }

    /// The next JSON message; `None` once the socket closed.
    async fn raw(&mut self) -> Option<Value> {
        loop {
            let message = match tokio::time::timeout(WAIT, self.socket.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(_))) | Ok(None) => return None,
                Err(_) => panic!("no message within {WAIT:?}"),
            };
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");
                    if value["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(value);
                }
                Message::Close(frame) => {
                    self.close_reason = Some(frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default());
                    return None;
                }
                _ => continue,
            }
        }
    }

    /// The next frame of subscription `id`.
    pub async fn frame(&mut self, id: &str) -> Frame {
        loop {
            let (of, frame) = self.any_frame().await;
            if of.as_deref() == Some(id) || matches!(frame, Frame::Closed(_)) {
                return frame;
            }
        }
    }

    /// The next frame of any subscription, with its id.
    pub async fn any_frame(&mut self) -> (Option<String>, Frame) {
        loop {
            let Some(v) = self.raw().await else {
                return (None, Frame::Closed(self.close_reason.take().unwrap_or_default()));
            };
            let id = v["id"].as_str().map(str::to_owned);
            let frame = match v["type"].as_str() {
                Some("next") | Some("data") => match v["payload"]["errors"].as_array() {
                    Some(errors) if !errors.is_empty() => Frame::Error(v["payload"]["errors"][0].clone()),
                    _ => Frame::Data(v["payload"]["data"].clone()),
                },
                Some("error") => Frame::Error(v["payload"].get(0).cloned().unwrap_or_else(|| v["payload"].clone())),
                Some("complete") => Frame::Complete,
                _ => continue,
            };
            return (id, frame);
        }
    }

    /// Every data frame of `id` until it completes (or errs: then panics).
    pub async fn until_complete(&mut self, id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            match self.frame(id).await {
                Frame::Data(data) => out.push(data),
                Frame::Complete => return out,
                other => panic!("subscription {id} ended with {other:?} after {out:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// The checkout id the gateway derives from a client and idempotency key,
/// so a test can subscribe before the checkout exists.
fn choreographed_id(client: Uuid, key: &str) -> Uuid {
    Uuid::new_v5(&client, format!("choreographed:{key}").as_bytes())
}

fn types_of(frames: &[Value], field: &str) -> Vec<String> {
    frames.iter().map(|f| f[field]["type"].as_str().expect("type").to_owned()).collect()
}

fn sequences_of(frames: &[Value], field: &str) -> Vec<i64> {
    frames.iter().map(|f| f[field]["sequence"].as_i64().expect("sequence")).collect()
}

async fn before_and_after_a_choreographed_checkout(proto: Proto) {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Live", 100, 5).await;
    let client = Uuid::new_v4();
    let id = choreographed_id(client, "live-1");

    let mut before = Ws::open(&app, proto, json!({})).await;
    before.subscribe("1", PROGRESS, json!({ "id": id })).await;
    // Subscribed first.
    subscribed(&app, 1).await;
    let input = json!({ "input": { "clientId": client, "items": [{ "productId": product, "quantity": 1 }], "idempotencyKey": "live-1" } });
    let accepted = app
        .gql_ok("mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId } }", input)
        .await;
    assert_eq!(accepted["checkoutChoreographed"]["checkoutId"], id.to_string());
    let live = before.until_complete("1").await;
    let expected = ["CheckoutInitiated", "StockReserved", "OrderCreated", "CheckoutSucceeded"];
    assert_eq!(types_of(&live, "checkoutProgress"), expected);
    let sequences = sequences_of(&live, "checkoutProgress");
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    before.close().await;

    // Opened after the end: the same events, replayed, then complete.
    let mut after = Ws::open(&app, proto, json!({})).await;
    after.subscribe("2", PROGRESS, json!({ "id": id })).await;
    let replayed = after.until_complete("2").await;
    assert_eq!(replayed, live);
    assert_eq!(event_types(&app, id).await, expected);
    after.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_before_and_after_a_choreographed_checkout_transport_ws() {
    before_and_after_a_choreographed_checkout(Proto::Transport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_before_and_after_a_choreographed_checkout_legacy_graphql_ws() {
    before_and_after_a_choreographed_checkout(Proto::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_opened_during_a_checkout_stitches_replay_and_live() {
    // No order worker: the checkout waits after StockReserved until the stall
    // watch fails it, so the subscription opens in the middle.
    let extra = [("CHORUS_STALL_DEADLINE", "2s")];
    let app = TestApp::start_without(Backend::Sqlite, &extra, false, &[WorkerName::OrderCreation]).await;
    let product = app.create_product("Midway", 100, 5).await;
    let id = crate::choreographed::checkout(&app, Uuid::new_v4(), &[(product, 2)]).await;
    assert!(eventually(WAIT, || async { event_types(&app, id).await.len() == 2 }).await);
    let mut ws = Ws::open(&app, Proto::Transport, json!({})).await;
    ws.subscribe("mid", PROGRESS, json!({ "id": id })).await;
    let frames = ws.until_complete("mid").await;
    assert_eq!(
        types_of(&frames, "checkoutProgress"),
        ["CheckoutInitiated", "StockReserved", "StockReleased", "CheckoutFailed"]
    );
    assert_eq!(terminal(&app, id).await["status"], "FAILED");
    ws.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrated_checkout_replays_to_its_terminal_transition() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Driven", 100, 5).await;
    let saga = app
        .gql_ok(
            "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id state } }",
            json!({ "input": { "clientId": Uuid::new_v4(), "items": [{ "productId": product, "quantity": 1 }] } }),
        )
        .await;
    let id = saga["checkoutOrchestrated"]["id"].as_str().expect("id").to_owned();
    let mut ws = Ws::open(&app, Proto::Transport, json!({})).await;
    ws.subscribe("p", PROGRESS, json!({ "id": id })).await;
    let frames = ws.until_complete("p").await;
    let types = types_of(&frames, "checkoutProgress");
    assert_eq!(types.first().map(String::as_str), Some("CheckoutInitiated"));
    assert!(types.contains(&"CheckoutSucceeded".to_owned()), "{types:?}");
    let last = frames.last().expect("frames");
    assert_eq!(last["checkoutProgress"]["payload"]["to"], "COMPLETED");
    let listed = app.gql_ok("query($id: ID!) { checkoutEvents(checkoutId: $id) { type } }", json!({ "id": id })).await;
    assert_eq!(listed["checkoutEvents"].as_array().expect("list").len(), frames.len());

    ws.subscribe("t", "subscription($id: ID) { sagaTransitions(sagaId: $id) { sagaId from to reason } }", json!({ "id": id })).await;
    let transitions = ws.until_complete("t").await;
    let states: Vec<&str> = transitions.iter().map(|t| t["sagaTransitions"]["to"].as_str().expect("to")).collect();
    // Every state, though a write that passes through states stores them
    // in one event; each transition starts where the one before ended.
    let path = [
        "PENDING", "VERIFYING_STOCK", "STOCK_VERIFIED", "FETCHING_PRODUCTS", "PRODUCTS_FETCHED",
        "RESERVING_STOCK", "STOCK_RESERVED", "CREATING_ORDER", "ORDER_CREATED", "COMPLETED",
    ];
    assert_eq!(states, path);
    for pair in transitions.windows(2) {
        assert_eq!(pair[1]["sagaTransitions"]["from"], pair[0]["sagaTransitions"]["to"]);
    }
    ws.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_firehose_streams_every_new_event_and_closing_releases_it() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Hose", 100, 5).await;
    let mut ws = Ws::open(&app, Proto::Legacy, json!({})).await;
    ws.subscribe("all", "subscription { allCheckoutEvents { type checkoutId sequence } }", json!({})).await;
    subscribed(&app, 1).await;
    let id = crate::choreographed::checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match ws.frame("all").await {
            Frame::Data(d) if d["allCheckoutEvents"]["checkoutId"] == id.to_string() => {
                seen.push(d["allCheckoutEvents"]["type"].as_str().expect("type").to_owned());
            }
            Frame::Data(_) => {}
            other => panic!("firehose ended: {other:?}"),
        }
    }
    assert_eq!(seen, ["CheckoutInitiated", "StockReserved", "OrderCreated", "CheckoutSucceeded"]);
    let gauge = || async {
        let text = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics").text().await.expect("text");
        text.lines().find_map(|l| l.strip_prefix("gateway_subscriptions ")).and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(gauge().await, Some(1.0));
    ws.close().await;
    assert!(eventually(WAIT, || async { gauge().await == Some(0.0) }).await, "closing the socket released nothing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_dropped_not_buffered() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let mut ws = Ws::open(&app, Proto::Transport, json!({})).await;
    ws.subscribe("slow", "subscription { allCheckoutEvents { id type checkoutId payload } }", json!({})).await;
    let gauge = || async {
        let text = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics").text().await.expect("text");
        text.lines().find_map(|l| l.strip_prefix("gateway_subscriptions ")).and_then(|v| v.parse::<f64>().ok())
    };
    assert!(eventually(WAIT, || async { gauge().await == Some(1.0) }).await);
    // Far more than the socket and the subscriber's buffer hold, never read.
    let events = &app.platform().events;
    let mut dropped = false;
    for _ in 0..40 {
        let batch = (0..1_000).map(|_| {
            let payload = chorus_event_store::EventPayload::CheckoutFailed { reason: "x".repeat(400), step: "test".into(), client_id: None };
            let event = chorus_event_store::Envelope::new(Uuid::new_v4().into(), chorus_event_store::Pattern::Choreographed, payload);
            async move { events.append(&event, None).await.expect("append") }
        });
        futures::future::join_all(batch).await;
        if gauge().await == Some(0.0) {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the slow subscriber was never dropped");
    // Reading now: what was buffered, then the error that ended it.
    let ended = loop {
        match ws.frame("slow").await {
            Frame::Data(_) => continue,
            other => break other,
        }
    };
    match ended {
        Frame::Error(e) => assert!(e["message"].as_str().unwrap_or("").contains("fell behind"), "{e}"),
        other => panic!("expected the fell-behind error, got {other:?}"),
    }
    let health = app.http.get(format!("http://{}/health", app.addr)).send().await.expect("health");
    assert_eq!(health.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrated_transitions_live_before_and_progress_opened_during() {
    // Every order attempt times out: the saga runs for seconds, then compensates.
    let extra = [("CHORUS_FAULTS", "orders.create=timeout:1.0")];
    let app = TestApp::start_with(Backend::Sqlite, &extra, false).await;
    let product = app.create_product("Slow", 100, 5).await;
    let mut all = Ws::open(&app, Proto::Transport, json!({})).await;
    all.subscribe("all", "subscription { sagaTransitions { sagaId from to } }", json!({})).await;
    subscribed(&app, 1).await;

    let input = json!({ "input": { "clientId": Uuid::new_v4(), "items": [{ "productId": product, "quantity": 2 }] } });
    let running = {
        let app_http = app.http.clone();
        let url = format!("http://{}/graphql", app.addr);
        tokio::spawn(async move {
            let body = json!({ "query": "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id state } }", "variables": input });
            app_http.post(url).json(&body).send().await.expect("answered").json::<Value>().await.expect("json")
        })
    };
    // The first live transition names the saga: open its progress mid-flight.
    let id = match all.frame("all").await {
        Frame::Data(d) => d["sagaTransitions"]["sagaId"].as_str().expect("id").to_owned(),
        other => panic!("no live transition: {other:?}"),
    };
    let mut during = Ws::open(&app, Proto::Legacy, json!({})).await;
    during.subscribe("p", PROGRESS, json!({ "id": id })).await;
    let frames = during.until_complete("p").await;
    let done = running.await.expect("join");
    assert_eq!(done["data"]["checkoutOrchestrated"]["state"], "CANCELLED", "{done}");
    let types = types_of(&frames, "checkoutProgress");
    assert_eq!(types.first().map(String::as_str), Some("CheckoutInitiated"));
    assert!(types.contains(&"CheckoutFailed".to_owned()), "{types:?}");
    assert_eq!(frames.last().expect("frames")["checkoutProgress"]["payload"]["to"], "CANCELLED");
    let sequences = sequences_of(&frames, "checkoutProgress");
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let listed = app.gql_ok("query($id: ID!) { checkoutEvents(checkoutId: $id) { sequence } }", json!({ "id": id })).await;
    let listed: Vec<i64> = listed["checkoutEvents"].as_array().expect("list").iter().map(|e| e["sequence"].as_i64().expect("seq")).collect();
    assert_eq!(sequences, listed, "every stored event once, none more");

    // The firehose of transitions saw this saga from PENDING to CANCELLED, in order.
    let mut states = vec!["PENDING".to_owned()];
    while states.last().map(String::as_str) != Some("CANCELLED") {
        match all.frame("all").await {
            Frame::Data(d) if d["sagaTransitions"]["sagaId"] == id.as_str() => {
                assert_eq!(d["sagaTransitions"]["from"].as_str(), states.last().map(String::as_str));
                states.push(d["sagaTransitions"]["to"].as_str().expect("to").to_owned());
            }
            Frame::Data(_) => {}
            other => panic!("the firehose ended: {other:?}"),
        }
    }
    let l = crate::choreographed::assert_conserved(&app, product, 5).await;
    assert_eq!((l.available, l.reserved), (5, 0));
    app.stop().await;
}
