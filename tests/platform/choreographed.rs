//! The choreographed saga end to end: the workers on real NATS, the
//! services on SQLite and Postgres, driven through the gateway.

use std::time::{Duration, Instant};

use chorus_contracts::inventory::{Levels, StockLevel};
use chorus_event_store::{Envelope, EventPayload, Pattern};
use chorus_workers::WorkerName;
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    both_backends,
    lifecycle::chorus,
    support::{Backend, TestApp, error_code, eventually},
};

const CHECKOUT: &str = "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId status } }";
pub const VIEW: &str = "query($id: ID!) { checkout(id: $id) { id pattern status clientId orderId failureReason failedStep steps { name at } } }";
pub const EVENTS: &str = "query($id: ID!) { checkoutEvents(checkoutId: $id) { id sequence type checkoutId pattern emittedAt payload } }";
/// Long enough for any checkout on a loaded CI machine; a bound, not a target.
pub const SETTLE: Duration = Duration::from_secs(30);

pub async fn checkout(app: &TestApp, client: Uuid, items: &[(Uuid, u32)]) -> Uuid {
    let items: Vec<Value> = items.iter().map(|(p, q)| json!({ "productId": p, "quantity": q })).collect();
    let data = app.gql_ok(CHECKOUT, json!({ "input": { "clientId": client, "items": items } })).await;
    assert_eq!(data["checkoutChoreographed"]["status"], "PENDING");
    Uuid::parse_str(data["checkoutChoreographed"]["checkoutId"].as_str().expect("id")).expect("uuid")
}

/// The checkout's view once it is no longer `PENDING`.
pub async fn terminal(app: &TestApp, id: Uuid) -> Value {
    let view = poll(app, VIEW, json!({ "id": id }), "checkout", |v| !v.is_null() && v["status"] != "PENDING").await;
    assert!(view.0, "checkout {id} did not end: {}", view.1);
    view.1
}

/// Polls a query's `field` until `done` holds (or [`SETTLE`] passes).
pub async fn poll(app: &TestApp, query: &str, variables: Value, field: &str, done: impl Fn(&Value) -> bool) -> (bool, Value) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let value = app.gql_ok(query, variables.clone()).await[field].clone();
        if done(&value) {
            return (true, value);
        }
        if Instant::now() > deadline {
            return (false, value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn event_types(app: &TestApp, id: Uuid) -> Vec<String> {
    let data = app.gql_ok(EVENTS, json!({ "id": id })).await;
    let events = data["checkoutEvents"].as_array().expect("list").clone();
    let sequences: Vec<i64> = events.iter().map(|e| e["sequence"].as_i64().expect("sequence")).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "not in stream order: {sequences:?}");
    events.iter().map(|e| e["type"].as_str().expect("type").to_owned()).collect()
}

pub async fn level(app: &TestApp, product: Uuid) -> StockLevel {
    let levels = app.platform().services.call(&Levels { product_ids: Some(vec![product.into()]) }).await.expect("levels");
    levels.into_iter().next().expect("a stock level")
}

/// available + reserved + sold = everything stocked.
pub async fn assert_conserved(app: &TestApp, product: Uuid, stocked: i64) -> StockLevel {
    let l = level(app, product).await;
    assert_eq!(l.available + l.reserved + l.sold, stocked, "stock not conserved: {l:?}");
    l
}

async fn happy_path(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Lamp", 2_500, 10).await;
    let client = Uuid::new_v4();
    let mut notes = app.platform().nats.subscribe(format!("notifications.{client}")).await.expect("subscribe");

    let id = checkout(&app, client, &[(product, 3)]).await;
    let view = terminal(&app, id).await;
    assert_eq!(view["status"], "SUCCEEDED", "{view}");
    assert_eq!(view["pattern"], "choreographed");
    assert_eq!(view["clientId"], client.to_string());
    let order_id = view["orderId"].as_str().expect("an order").to_owned();
    assert_eq!(
        event_types(&app, id).await,
        ["CheckoutInitiated", "StockReserved", "OrderCreated", "CheckoutSucceeded"]
    );
    let order = app.gql_ok("query($id: ID!) { order(id: $id) { totalCents status checkoutId } }", json!({ "id": order_id })).await;
    assert_eq!(order["order"], json!({ "totalCents": 7_500, "status": "CREATED", "checkoutId": id.to_string() }));
    let l = assert_conserved(&app, product, 10).await;
    assert_eq!((l.available, l.reserved, l.sold), (7, 0, 3));

    // The read models: the checkout with its steps, the client's orders.
    let steps: Vec<&str> = view["steps"].as_array().expect("steps").iter().map(|s| s["name"].as_str().expect("name")).collect();
    assert_eq!(steps, ["CheckoutInitiated", "StockReserved", "OrderCreated", "CheckoutSucceeded"]);
    let query = "query($c: ID!) { ordersByClient(clientId: $c) { clientId totalOrders lastOrderId lastCheckoutId orderIds } }";
    let (projected, orders) = poll(&app, query, json!({ "c": client }), "ordersByClient", |o| o["totalOrders"] == 1).await;
    assert!(projected, "ordersByClient never showed the order: {orders}");
    assert_eq!(orders["lastOrderId"], order_id.as_str());
    assert_eq!(orders["lastCheckoutId"], id.to_string());
    assert_eq!(orders["orderIds"], json!([order_id]));

    // The client was told, once per terminal event.
    let note = tokio::time::timeout(SETTLE, notes.next()).await.expect("a notification").expect("message");
    let note: Value = serde_json::from_slice(&note.payload).expect("json");
    assert_eq!(note["checkout_id"], id.to_string());
    assert_eq!(note["status"], "SUCCEEDED");
    assert_eq!(note["order_id"], order_id.as_str());

    // The audit trail holds each event once.
    let audit = audit_db(&app).await;
    let trail_ok = eventually(SETTLE, || async {
        chorus_workers::audit::trail(&audit, id.into()).await.map(|t| t.len() == 4).unwrap_or(false)
    })
    .await;
    assert!(trail_ok, "audit trail incomplete");
    app.stop().await;
}

async fn insufficient_stock_moves_nothing(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Rare", 100, 2).await;
    let id = checkout(&app, Uuid::new_v4(), &[(product, 5)]).await;
    let view = terminal(&app, id).await;
    assert_eq!(view["status"], "FAILED");
    assert_eq!(view["failedStep"], "reserve_stock");
    assert!(view["failureReason"].as_str().expect("reason").contains("2 available"), "{view}");
    assert!(view["orderId"].is_null());
    assert_eq!(event_types(&app, id).await, ["CheckoutInitiated", "StockReservationFailed", "CheckoutFailed"]);
    let data = app.gql_ok(EVENTS, json!({ "id": id })).await;
    assert_eq!(data["checkoutEvents"][1]["payload"]["code"], "INSUFFICIENT_STOCK");
    let l = assert_conserved(&app, product, 2).await;
    assert_eq!((l.available, l.reserved, l.sold), (2, 0, 0));
    app.stop().await;
}

async fn a_failed_order_releases_the_stock(backend: Backend) {
    let app = TestApp::start_with(backend, &[("CHORUS_FAULTS", "orders.create=error:1.0")], false).await;
    let product = app.create_product("Chair", 4_000, 5).await;
    let started = Instant::now();
    let id = checkout(&app, Uuid::new_v4(), &[(product, 2)]).await;
    let view = terminal(&app, id).await;
    eprintln!("order failure compensated in {:?}", started.elapsed());
    assert_eq!(view["status"], "FAILED", "{view}");
    assert_eq!(view["failedStep"], "create_order");
    assert_eq!(
        event_types(&app, id).await,
        ["CheckoutInitiated", "StockReserved", "OrderCreationFailed", "StockReleased", "CheckoutFailed"]
    );
    let l = assert_conserved(&app, product, 5).await;
    assert_eq!((l.available, l.reserved, l.sold), (5, 0, 0));
    app.stop().await;
}

async fn unknown_and_inactive_products_fail_the_checkout(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Gone", 100, 5).await;
    app.gql_ok("mutation($p: ID!) { setProductActive(productId: $p, active: false) { active } }", json!({ "p": product })).await;
    for (items, needle) in [(vec![(Uuid::new_v4(), 1)], "does not exist"), (vec![(product, 1)], "not for sale")] {
        let id = checkout(&app, Uuid::new_v4(), &items).await;
        let view = terminal(&app, id).await;
        assert_eq!(view["status"], "FAILED");
        assert!(view["failureReason"].as_str().expect("reason").contains(needle), "{view}");
        let data = app.gql_ok(EVENTS, json!({ "id": id })).await;
        assert_eq!(data["checkoutEvents"][1]["payload"]["code"], "PRODUCT_UNAVAILABLE");
    }
    let l = assert_conserved(&app, product, 5).await;
    assert_eq!(l.available, 5);
    app.stop().await;
}

async fn many_buyers_of_scarce_stock(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Scarce", 999, 5).await;
    let items = [(product, 1)];
    let ids = futures::future::join_all((0..20).map(|_| checkout(&app, Uuid::new_v4(), &items))).await;
    let views = futures::future::join_all(ids.iter().map(|id| terminal(&app, *id))).await;
    let succeeded = views.iter().filter(|v| v["status"] == "SUCCEEDED").count();
    assert_eq!(succeeded, 5, "exactly the available units sell");
    assert_eq!(views.iter().filter(|v| v["status"] == "FAILED").count(), 15);
    let l = assert_conserved(&app, product, 5).await;
    assert_eq!((l.available, l.reserved, l.sold), (0, 0, 5));
    app.stop().await;
}

both_backends!(
    happy_path,
    insufficient_stock_moves_nothing,
    a_failed_order_releases_the_stock,
    unknown_and_inactive_products_fail_the_checkout,
    many_buyers_of_scarce_stock,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_publishes_nothing() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Valid", 100, 5).await;
    let before = app.platform().events.last_sequence().await.expect("sequence");
    for input in [
        json!({ "clientId": "nope", "items": [{ "productId": product, "quantity": 1 }] }),
        json!({ "clientId": Uuid::new_v4(), "items": [] }),
        json!({ "clientId": Uuid::new_v4(), "items": [{ "productId": product, "quantity": 0 }] }),
        json!({ "clientId": Uuid::new_v4(), "items": [{ "productId": product, "quantity": 1 }, { "productId": product, "quantity": 2 }] }),
    ] {
        let body = app.gql(CHECKOUT, json!({ "input": input })).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    assert_eq!(app.platform().events.last_sequence().await.expect("sequence"), before, "nothing was published");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_event_that_does_not_name_its_client_still_notifies_it() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let (client, id) = (Uuid::new_v4(), Uuid::now_v7());
    let mut notes = app.platform().nats.subscribe(format!("notifications.{client}")).await.expect("subscribe");
    // As stored before terminal events carried `client_id` (orchestrated,
    // so that no choreographed worker acts on the cart).
    let items = vec![chorus_event_store::CartLine { product_id: Uuid::new_v4().into(), quantity: 1 }];
    let initiated = EventPayload::CheckoutInitiated { client_id: client.into(), items, idempotency_key: None };
    let failed = EventPayload::CheckoutFailed { reason: "an old failure".into(), step: "create_order".into(), client_id: None };
    for payload in [initiated, failed] {
        app.platform().events.append(&Envelope::new(id.into(), Pattern::Orchestrated, payload), None).await.expect("append");
    }
    let note = tokio::time::timeout(SETTLE, notes.next()).await.expect("a notification").expect("message");
    let note: Value = serde_json::from_slice(&note.payload).expect("json");
    assert_eq!((note["checkout_id"].as_str(), note["status"].as_str()), (Some(id.to_string().as_str()), Some("FAILED")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_reservation_stored_before_it_named_its_client_still_gets_its_order() {
    // No reservation worker: the test reserves and publishes as an older
    // version did (no client, no prices), and the order step reads the history.
    let app = TestApp::start_without(Backend::Sqlite, &[], false, &[WorkerName::StockReservation]).await;
    let product = app.create_product("Old", 250, 5).await;
    let (client, id) = (Uuid::new_v4(), Uuid::now_v7());
    let items = vec![chorus_event_store::CartLine { product_id: product.into(), quantity: 2 }];
    let events = &app.platform().events;
    let initiated = EventPayload::CheckoutInitiated { client_id: client.into(), items: items.clone(), idempotency_key: None };
    events.append(&Envelope::new(id.into(), Pattern::Choreographed, initiated).with_derived_id("CheckoutInitiated"), None).await.expect("append");
    let reserve = chorus_contracts::inventory::Reserve {
        idempotency_key: format!("{id}:reserve"),
        checkout_id: id.into(),
        items: chorus_contracts::Cart::parse(items.clone()).expect("cart"),
    };
    let reservation = app.platform().services.call(&reserve).await.expect("reserved");
    let reserved =
        EventPayload::StockReserved { reservation_id: reservation.id, items, priced: Vec::new(), client_id: None, initiated_at: None };
    events.append(&Envelope::new(id.into(), Pattern::Choreographed, reserved).with_derived_id("StockReserved"), None).await.expect("append");
    let view = terminal(&app, id).await;
    assert_eq!(view["status"], "SUCCEEDED", "{view}");
    let theirs = eventually(SETTLE, || async {
        let orders = app.gql_ok("query($c: ID!) { ordersByClient(clientId: $c) { totalOrders } }", json!({ "c": client })).await;
        orders["ordersByClient"]["totalOrders"] == 1
    })
    .await;
    assert!(theirs, "the order is not the client's");
    let l = assert_conserved(&app, product, 5).await;
    assert_eq!((l.available, l.reserved, l.sold), (3, 0, 2));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_or_event_changes_nothing_twice() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Once", 100, 10).await;
    let client = Uuid::new_v4();
    let input = json!({ "input": { "clientId": client, "items": [{ "productId": product, "quantity": 2 }], "idempotencyKey": "k-1" } });
    let first = app.gql_ok(CHECKOUT, input.clone()).await["checkoutChoreographed"].clone();
    let id = Uuid::parse_str(first["checkoutId"].as_str().expect("id")).expect("uuid");
    terminal(&app, id).await;
    let again = app.gql_ok(CHECKOUT, input).await["checkoutChoreographed"].clone();
    assert_eq!(again, json!({ "checkoutId": id.to_string(), "status": "SUCCEEDED" }));
    // The same key with another cart is refused, not silently the first.
    let other = json!({ "input": { "clientId": client, "items": [{ "productId": product, "quantity": 5 }], "idempotencyKey": "k-1" } });
    let refused = app.gql(CHECKOUT, other).await;
    assert_eq!(error_code(&refused), Some("CONFLICT"), "{refused}");

    // The same CheckoutInitiated published again (same id: deduplicated),
    // and a copy under a new id (past the dedupe window): neither reserves
    // or orders a second time.
    let history = app.platform().events.read_checkout(id.into()).await.expect("history");
    let initiated = history[0].envelope.clone();
    app.platform().events.append(&initiated, None).await.expect("re-publish");
    let mut copy = initiated.clone();
    copy.id = Uuid::now_v7();
    app.platform().events.append(&copy, None).await.expect("copy");
    let events = &app.platform().events;
    let handled = eventually(SETTLE, || async {
        consumers_idle(&app, &[WorkerName::StockReservation, WorkerName::OrderCreation]).await
    })
    .await;
    assert!(handled, "the copy was never handled");
    let types: Vec<&str> = events.read_checkout(id.into()).await.expect("history").iter().map(|e| e.envelope.event_type().as_str()).collect();
    assert_eq!(types, ["CheckoutInitiated", "StockReserved", "OrderCreated", "CheckoutSucceeded", "CheckoutInitiated"]);
    let l = assert_conserved(&app, product, 10).await;
    assert_eq!((l.available, l.reserved, l.sold), (8, 0, 2));
    let orders = app.gql_ok("query($c: ID!) { ordersByClient(clientId: $c) { totalOrders } }", json!({ "c": client })).await;
    assert_eq!(orders["ordersByClient"]["totalOrders"], 1);

    // Two new carts racing on one key: one checkout, the other refused
    // (the stream kept the first's CheckoutInitiated under the same id).
    let race = |quantity: u32| {
        let input = json!({ "input": { "clientId": client, "items": [{ "productId": product, "quantity": quantity }], "idempotencyKey": "k-2" } });
        app.gql(CHECKOUT, input)
    };
    let (x, y) = tokio::join!(race(1), race(3));
    let codes = [error_code(&x), error_code(&y)];
    assert!(codes.contains(&None) && codes.contains(&Some("CONFLICT")), "{x} {y}");
    let won = [&x, &y].into_iter().find(|r| error_code(r).is_none()).expect("one checkout");
    let won = Uuid::parse_str(won["data"]["checkoutChoreographed"]["checkoutId"].as_str().expect("id")).expect("uuid");
    assert_eq!(terminal(&app, won).await["status"], "SUCCEEDED");
    let l = assert_conserved(&app, product, 10).await;
    assert!(l.sold == 3 || l.sold == 5, "sold {}", l.sold);
    app.stop().await;
}

pub async fn audit_db(app: &TestApp) -> sea_orm::DatabaseConnection {
    let url = &app.dbs.urls.iter().find(|(s, _)| *s == "AUDIT").expect("audit database").1;
    sea_orm::Database::connect(url.as_str()).await.expect("audit database")
}

/// Whether these workers' consumers have nothing left to deliver or ack.
pub async fn consumers_idle(app: &TestApp, workers: &[WorkerName]) -> bool {
    for worker in workers {
        match consumer_info(app, *worker).await {
            Some(info) if info.num_pending == 0 && info.num_ack_pending == 0 => {}
            _ => return false,
        }
    }
    true
}

/// What the server says of `worker`'s durable consumer now, if it can be read.
pub async fn consumer_info(app: &TestApp, worker: WorkerName) -> Option<async_nats::jetstream::consumer::Info> {
    let mut consumer =
        app.platform().events.stream().get_consumer::<async_nats::jetstream::consumer::pull::Config>(worker.durable()).await.ok()?;
    consumer.info().await.ok().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_its_effect_and_its_ack_changes_nothing_twice() {
    let app = TestApp::start_without(Backend::Sqlite, &[], false, &[WorkerName::StockReservation]).await;
    let product = app.create_product("Twice", 100, 10).await;
    let env = |crash: bool| {
        let mut env = vec![
            ("NATS_URL", app.nats.url()),
            ("CHORUS_DATA_DIR", app.data_dir.path().display().to_string()),
            ("CHORUS_ACK_WAIT", "1s".to_owned()),
        ];
        env.extend(app.dbs.vars());
        if crash {
            env.push(("CHORUS_TEST_CRASH_BEFORE_ACK", "stock-reservation".to_owned()));
        }
        env
    };
    let mut doomed = chorus(&["worker", "stock-reservation"], &env(true));
    let id = checkout(&app, Uuid::new_v4(), &[(product, 4)]).await;
    let status = tokio::task::spawn_blocking(move || doomed.wait_exit(Duration::from_secs(60))).await.expect("join");
    assert!(!status.success(), "the worker was to die before its ack");
    // It reserved and published before dying; the rest of the saga ran on.
    assert_eq!(terminal(&app, id).await["status"], "SUCCEEDED");

    // A healthy replica gets the unacked event again and changes nothing.
    let _replica = chorus(&["worker", "stock-reservation"], &env(false));
    let redelivered = eventually(SETTLE, || async { consumers_idle(&app, &[WorkerName::StockReservation]).await }).await;
    assert!(redelivered, "the event was never redelivered and acked");
    let l = assert_conserved(&app, product, 10).await;
    assert_eq!((l.available, l.reserved, l.sold), (6, 0, 4), "reserved once, sold once");
    assert_eq!(event_types(&app, id).await, ["CheckoutInitiated", "StockReserved", "OrderCreated", "CheckoutSucceeded"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_events_outcomes_and_lag() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Counted", 100, 1).await;
    let ok = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    terminal(&app, ok).await;
    let short = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    terminal(&app, short).await;
    assert!(eventually(SETTLE, || consumers_idle(&app, &[WorkerName::Audit, WorkerName::CqrsProjection])).await);
    let text = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics").text().await.expect("text");
    for expected in [
        r#"events_published_total{topic="ecommerce.checkout",type="CheckoutInitiated"} 2"#,
        r#"events_published_total{topic="ecommerce.checkout",type="CheckoutSucceeded"} 1"#,
        r#"events_consumed_total{topic="ecommerce.checkout",type="StockReserved",consumer="choreo-order"} 1"#,
        r#"events_consumed_total{topic="ecommerce.checkout",type="CheckoutFailed",consumer="choreo-cqrs"} 1"#,
        r#"saga_choreo_success_total{source="order-creation"} 1"#,
        r#"saga_choreo_failed_total{source="stock-reservation"} 1"#,
        r#"event_latency_seconds_count{topic="ecommerce.checkout",type="CheckoutInitiated"}"#,
        r#"consumer_lag_messages{consumer="choreo-reservation"}"#,
        r#"consumer_ack_pending_messages{consumer="choreo-stall"}"#,
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_a_worker_share_its_consumer() {
    let app = TestApp::start_without(Backend::Sqlite, &[], false, &[WorkerName::OrderCreation]).await;
    let product = app.create_product("Shared", 100, 100).await;
    let ports: Vec<u16> = (0..2).map(|_| chorus_runtime::nats_server::free_port().expect("port")).collect();
    let _replicas: Vec<_> = ports
        .iter()
        .map(|port| {
            let mut env = vec![
                ("NATS_URL", app.nats.url()),
                ("CHORUS_DATA_DIR", app.data_dir.path().display().to_string()),
                ("CHORUS_METRICS_ADDR", format!("127.0.0.1:{port}")),
            ];
            env.extend(app.dbs.vars());
            chorus(&["worker", "order-creation"], &env)
        })
        .collect();
    let scrape = |port: u16| {
        let http = app.http.clone();
        async move {
            let text = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.ok()?.text().await.ok()?;
            let line = r#"events_consumed_total{topic="ecommerce.checkout",type="StockReserved",consumer="choreo-order"} "#;
            Some(text.lines().find_map(|l| l.strip_prefix(line)).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0))
        }
    };
    assert!(eventually(SETTLE, || async { scrape(ports[0]).await.is_some() && scrape(ports[1]).await.is_some() }).await);
    // Both replicas pull from the one durable consumer. (Which of them gets
    // which event is the server's choice: a waiting pull takes events until
    // its batch is full, so one replica may take all 40; asserting a share
    // for each made this test flaky.)
    let both_pull = eventually(SETTLE, || async { consumer_info(&app, WorkerName::OrderCreation).await.is_some_and(|info| info.num_waiting >= 2) }).await;
    assert!(both_pull, "the two replicas do not both pull from choreo-order");
    let items = [(product, 1)];
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.extend(futures::future::join_all((0..8).map(|_| checkout(&app, Uuid::new_v4(), &items))).await);
    }
    for id in &ids {
        assert_eq!(terminal(&app, *id).await["status"], "SUCCEEDED");
    }
    let handled = (scrape(ports[0]).await.unwrap_or(0), scrape(ports[1]).await.unwrap_or(0));
    assert_eq!(handled.0 + handled.1, 40, "each StockReserved handled once: {handled:?}");
    let l = assert_conserved(&app, product, 100).await;
    assert_eq!((l.sold, l.reserved), (40, 0));
    app.stop().await;
}

/// With NATS down, a choreographed checkout is refused as retryable and
/// nothing of it exists; the same idempotency key once NATS is back makes
/// exactly one checkout, which completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_event_store_is_down_a_checkout_is_refused_retryably_and_writes_nothing() {
    let mut app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Outage mug", 700, 5).await;
    let client = Uuid::new_v4();
    let input = json!({ "input": { "clientId": client, "items": [{ "productId": product, "quantity": 1 }], "idempotencyKey": "during-outage" } });
    let mutation = "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId status } }";

    tokio::task::block_in_place(|| app.nats.server.stop());
    let refused = app.gql(mutation, input.clone()).await;
    assert_eq!(error_code(&refused), Some("SERVICE_UNAVAILABLE"), "{refused}");
    tokio::task::block_in_place(|| app.nats.server.start_again()).expect("NATS comes back");

    let expected = Uuid::new_v5(&client, b"choreographed:during-outage");
    let stored = app.platform().events.read_checkout(expected.into()).await.expect("read");
    assert!(stored.is_empty(), "a refused checkout wrote {stored:?}");

    let accepted = eventually(Duration::from_secs(30), || async {
        app.gql(mutation, input.clone()).await["data"]["checkoutChoreographed"]["checkoutId"] == json!(expected.to_string())
    })
    .await;
    assert!(accepted, "the retry was not accepted once NATS was back");
    let ended = eventually(Duration::from_secs(30), || async {
        let events = app.platform().events.read_checkout(expected.into()).await.unwrap_or_default();
        events.iter().any(|e| e.envelope.event_type().as_str() == "CheckoutSucceeded")
    })
    .await;
    assert!(ended, "the checkout never succeeded");
    let initiated = app.platform().events.read_checkout(expected.into()).await.expect("read");
    assert_eq!(initiated.iter().filter(|e| e.envelope.event_type().as_str() == "CheckoutInitiated").count(), 1);
}
