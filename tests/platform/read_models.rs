//! What the choreographed saga leaves behind, read back: the read models
//! and the audit trail across a restart and a rebuild, `orders_by_client`'s
//! window, a checkout's events through GraphQL, a plain ordered consumer
//! and `chorus events` / `chorus replay`.

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use chorus_event_store::{Envelope, EventPayload, Pattern, Projection, subjects};
use chorus_workers::WorkerName;
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    choreographed::{EVENTS, SETTLE, VIEW, assert_conserved, audit_db, checkout, consumers_idle, poll, terminal},
    support::{Backend, TestApp, eventually},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_and_audit_survive_a_restart_and_rebuild_the_same() {
    let mut app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Kept", 100, 3).await;
    let client = Uuid::new_v4();
    let mut ids = Vec::new();
    for quantity in [1, 1, 5] {
        ids.push(checkout(&app, client, &[(product, quantity)]).await);
    }
    let orchestrated = app
        .gql_ok(
            "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id state } }",
            json!({ "input": { "clientId": client, "items": [{ "productId": product, "quantity": 1 }] } }),
        )
        .await;
    assert_eq!(orchestrated["checkoutOrchestrated"]["state"], "COMPLETED");
    ids.push(Uuid::parse_str(orchestrated["checkoutOrchestrated"]["id"].as_str().expect("id")).expect("uuid"));
    for id in &ids {
        terminal(&app, *id).await;
    }
    let all = [WorkerName::CqrsProjection, WorkerName::Audit, WorkerName::Notification];
    assert!(eventually(SETTLE, || consumers_idle(&app, &all)).await, "projections never caught up");
    let view = app.gql_ok(VIEW, json!({ "id": ids[3] })).await["checkout"].clone();
    assert_eq!((view["pattern"].as_str(), view["status"].as_str()), (Some("orchestrated"), Some("SUCCEEDED")), "{view}");
    let orders = app.gql_ok("query($c: ID!) { ordersByClient(clientId: $c) { totalOrders orderIds } }", json!({ "c": client })).await;
    assert_eq!(orders["ordersByClient"]["totalOrders"], 3, "two choreographed and one orchestrated order: {orders}");

    let projections = app.platform().projections.clone();
    let before = [
        projections.dump(Projection::Checkouts).await.expect("dump"),
        projections.dump(Projection::OrdersByClient).await.expect("dump"),
    ];
    let audit_before = chorus_workers::audit::count(&audit_db(&app).await).await.expect("count");
    assert_eq!(before[0].len(), 4);

    app.restart(&[]).await;
    let projections = app.platform().projections.clone();
    assert_eq!(projections.dump(Projection::Checkouts).await.expect("dump"), before[0]);
    assert_eq!(projections.dump(Projection::OrdersByClient).await.expect("dump"), before[1]);
    assert_eq!(chorus_workers::audit::count(&audit_db(&app).await).await.expect("count"), audit_before);
    assert_eq!(app.gql_ok(VIEW, json!({ "id": ids[0] })).await["checkout"]["status"], "SUCCEEDED");

    for (i, projection) in Projection::ALL.into_iter().enumerate() {
        let report = projections.rebuild(&app.platform().events, projection).await.expect("rebuild");
        assert!(report.events > 0);
        assert_eq!(projections.dump(projection).await.expect("dump"), before[i], "{} rebuilt differently", projection.name());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_client_lists_its_latest_orders_counts_them_all_and_rebuilds_the_same() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Refill", 100, 30).await;
    let client = Uuid::new_v4();
    let mut ids = Vec::new();
    for _ in 0..23 {
        ids.push(checkout(&app, client, &[(product, 1)]).await);
    }
    for id in &ids {
        assert_eq!(terminal(&app, *id).await["status"], "SUCCEEDED");
    }
    let query = "query($c: ID!) { ordersByClient(clientId: $c) { totalOrders lastOrderId orderIds orders { id } } }";
    let (projected, orders) = poll(&app, query, json!({ "c": client }), "ordersByClient", |o| o["totalOrders"] == 23).await;
    assert!(projected, "ordersByClient never counted 23 orders: {orders}");
    let listed = orders["orderIds"].as_array().expect("orderIds");
    assert_eq!(listed.len(), 20, "the 20 latest orders are listed: {orders}");
    assert_eq!(orders["lastOrderId"], listed[19], "the last listed is the latest");
    let loaded: Vec<&Value> = orders["orders"].as_array().expect("orders").iter().map(|o| &o["id"]).collect();
    assert_eq!(loaded, listed.iter().collect::<Vec<_>>(), "the orders are those listed, in order");
    let l = assert_conserved(&app, product, 30).await;
    assert_eq!((l.available, l.reserved, l.sold), (7, 0, 23));

    let projections = app.platform().projections.clone();
    let before = projections.dump(Projection::OrdersByClient).await.expect("dump");
    projections.rebuild(&app.platform().events, Projection::OrdersByClient).await.expect("rebuild");
    assert_eq!(projections.dump(Projection::OrdersByClient).await.expect("dump"), before, "rebuilt differently");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_ordered_consumer_replays_what_checkout_events_returns() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Replayed", 100, 5).await;
    let id = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    terminal(&app, id).await;
    let other = checkout(&app, Uuid::new_v4(), &[(product, 9)]).await;
    terminal(&app, other).await;

    let consumer = app
        .platform()
        .events
        .stream()
        .create_consumer(OrderedConfig {
            filter_subject: subjects::checkout(id.into()),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut replayed = Vec::new();
    while replayed.len() < 4 {
        let msg = tokio::time::timeout(SETTLE, messages.next()).await.expect("in time").expect("some").expect("ok");
        let envelope: Envelope = serde_json::from_slice(&msg.payload).expect("an event");
        replayed.push(json!({ "id": envelope.id.to_string(), "sequence": msg.info().expect("info").stream_sequence, "type": envelope.event_type().as_str() }));
    }
    let data = app.gql_ok(EVENTS, json!({ "id": id })).await;
    let listed: Vec<Value> = data["checkoutEvents"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| json!({ "id": e["id"], "sequence": e["sequence"], "type": e["type"] }))
        .collect();
    assert_eq!(listed, replayed);
    assert_eq!(data["checkoutEvents"][0]["pattern"], Pattern::Choreographed.as_str());
    assert!(matches!(
        app.platform().events.read_checkout(id.into()).await.expect("read")[1].envelope.payload,
        EventPayload::StockReserved { .. }
    ));
    app.stop().await;
}

/// Runs the `chorus` binary to completion against the app's NATS.
fn tool(app: &TestApp, args: &[&str]) -> (String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NATS_URL", app.nats.url())
        .env("CHORUS_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .output()
        .expect("chorus runs");
    let (out, err) = (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned());
    assert!(output.status.success(), "chorus {args:?} failed: {err}");
    (out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chorus_events_and_replay_read_the_stream() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Listed", 100, 5).await;
    let id = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    terminal(&app, id).await;
    let failed = checkout(&app, Uuid::new_v4(), &[(product, 50)]).await;
    terminal(&app, failed).await;
    let id_arg = id.to_string();

    let (out, _) = tool(&app, &["events", "--checkout", &id_arg, "--format", "json"]);
    let listed: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let types: Vec<&str> = listed.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["CheckoutInitiated", "StockReserved", "OrderCreated", "CheckoutSucceeded"]);
    assert!(listed.iter().all(|e| e["checkout_id"] == id_arg && e["sequence"].as_u64().is_some()));

    let (out, _) = tool(&app, &["events", "--type", "CheckoutFailed"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].contains(&failed.to_string()) && rows[0].contains("CheckoutFailed"), "{out}");

    let (out, err) = tool(&app, &["replay", "--checkout", &id_arg]);
    assert_eq!(out.lines().count(), 5, "a header and four events: {out}");
    assert!(err.contains("replayed 4 events"), "{err}");

    assert!(eventually(SETTLE, || consumers_idle(&app, &[WorkerName::CqrsProjection])).await);
    let before = app.platform().projections.dump(Projection::Checkouts).await.expect("dump");
    let (out, _) = tool(&app, &["replay", "--rebuild", "all"]);
    assert!(out.contains("rebuilt checkouts") && out.contains("rebuilt orders_by_client") && out.contains("events/s"), "{out}");
    assert_eq!(app.platform().projections.dump(Projection::Checkouts).await.expect("dump"), before);

    let (out, _) = tool(&app, &["replay"]);
    let last = app.platform().events.last_sequence().await.expect("last");
    assert!(out.contains(&format!("replayed {last} events")), "{out}");
    app.stop().await;
}
