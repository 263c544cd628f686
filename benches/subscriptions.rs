//! How many live subscriptions one gateway holds, what each costs in memory,
//! and the delay from an event stored to its frame on a subscription.
//!
//! `cargo bench --bench subscriptions` (env `SUBS`, default 2000; `EVENTS`,
//! default 2000). It runs a release `chorus up --no-seed` on its own
//! nats-server, opens `SUBS` idle `checkoutProgress` subscriptions (32 per
//! WebSocket), reads the gateway process's RSS before and after, then
//! appends `EVENTS` events at a steady pace while one `allCheckoutEvents`
//! subscriber measures `received - emittedAt`.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use chorus_event_store::{Envelope, EventPayload, EventStore, Pattern};
use chorus_runtime::nats_server::{NatsServer, free_port};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::{Message, client::IntoClientRequest, http::HeaderValue}};
use uuid::Uuid;

const PER_SOCKET: usize = 32;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_owned())))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket(addr: &str) -> Socket {
    let mut request = format!("ws://{addr}/graphql").into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = connect_async(request).await.expect("connect");
    ws.send(Message::Text(json!({ "type": "connection_init", "payload": {} }).to_string().into())).await.expect("init");
    while let Some(Ok(Message::Text(t))) = ws.next().await {
        if t.contains("connection_ack") {
            break;
        }
    }
    ws
}

async fn subscribe(ws: &mut Socket, id: usize, query: &str, variables: Value) {
    let message = json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": query, "variables": variables } });
    ws.send(Message::Text(message.to_string().into())).await.expect("subscribe");
}

async fn gauge(http: &reqwest::Client, addr: &str) -> f64 {
    let Ok(response) = http.get(format!("http://{addr}/metrics")).send().await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("gateway_subscriptions ")).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (subs, events) = (env("SUBS", 2_000), env("EVENTS", 2_000));
    let dir = tempfile::tempdir().expect("temp dir");
    let nats = NatsServer::start("nats-server", &dir.path().join("nats")).expect("nats-server");
    let addr = format!("127.0.0.1:{}", free_port().expect("port"));
    let mut chorus = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["up", "--no-seed"])
        .env("NATS_URL", nats.url())
        .env("CHORUS_DATA_DIR", dir.path())
        .env("GATEWAY_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chorus up");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("http://{addr}/health")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "chorus up never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(chorus.id());

    let mut sockets = Vec::new();
    let query = "subscription($id: ID!) { checkoutProgress(checkoutId: $id) { type } }";
    let watched: Vec<Uuid> = (0..subs).map(|_| Uuid::new_v4()).collect();
    for chunk in watched.chunks(PER_SOCKET) {
        let mut ws = socket(&addr).await;
        for (i, id) in chunk.iter().enumerate() {
            subscribe(&mut ws, i, query, json!({ "id": id })).await;
        }
        sockets.push(ws);
    }
    while (gauge(&http, &addr).await as usize) < subs {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(chorus.id());

    let mut probe = socket(&addr).await;
    subscribe(&mut probe, 0, "subscription { allCheckoutEvents { emittedAt } }", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let store = EventStore::open(client).await.expect("event store");
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        for i in 0..events {
            tick.tick().await;
            // Every other event goes to a checkout somebody watches.
            let checkout = match watched.get(i % watched.len().max(1)) {
                Some(id) if i % 2 == 0 => *id,
                _ => Uuid::new_v4(),
            };
            let event = Envelope::new(checkout.into(), Pattern::Choreographed, EventPayload::StockReleased { reservation_id: Uuid::nil() });
            store.append(&event, None).await.expect("append");
        }
    });
    let mut delays = Vec::with_capacity(events);
    while delays.len() < events {
        let Some(Ok(Message::Text(text))) = tokio::time::timeout(Duration::from_secs(30), probe.next()).await.expect("frame in time") else {
            continue;
        };
        let received = time::OffsetDateTime::now_utc();
        let frame: Value = serde_json::from_str(&text).expect("json");
        let Some(at) = frame["payload"]["data"]["allCheckoutEvents"]["emittedAt"].as_str() else { continue };
        let emitted = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).expect("time");
        delays.push((received - emitted).as_seconds_f64() * 1e3);
    }
    publisher.await.expect("publisher");
    delays.sort_by(f64::total_cmp);
    println!(
        "{subs} idle subscriptions on {} sockets: gateway RSS {before} KiB -> {after} KiB ({:.1} KiB per subscription)",
        sockets.len(),
        after.saturating_sub(before) as f64 / subs.max(1) as f64
    );
    println!(
        "{events} events at 500/s, stored -> frame on allCheckoutEvents: P50 {:.2} ms, P95 {:.2} ms, P99 {:.2} ms, max {:.2} ms",
        percentile(&delays, 0.50),
        percentile(&delays, 0.95),
        percentile(&delays, 0.99),
        delays[delays.len() - 1]
    );
    let _ = chorus.kill();
    let _ = chorus.wait();
}
