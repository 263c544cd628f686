//! The orchestrated saga through the gateway: the happy path in the seed's
//! order, every failure compensated, concurrency, idempotency, forced
//! compensation. Stock is conserved in every test.

use chorus_contracts::inventory::{Levels, StockLevel};
use chorus_event_store::EventPayload;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    both_backends,
    support::{Backend, TestApp, error_code, eventually},
};

both_backends!(
    a_checkout_completes_in_the_seeds_order,
    every_failure_is_compensated,
    concurrent_buyers_never_oversell,
    a_repeated_idempotency_key_is_one_checkout,
);

const CHECKOUT: &str = "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) {
    id state clientId orderId failureReason transitions { sagaId from to reason at } createdAt updatedAt } }";

/// Fast retries so that failure tests do not wait.
const FAST: &[(&str, &str)] = &[("CHORUS_STEP_BACKOFF", "5ms"), ("CHORUS_SERVICE_TIMEOUT", "300ms")];

async fn checkout(app: &TestApp, client: Uuid, items: Value, key: Option<&str>) -> Value {
    let input = json!({ "clientId": client, "items": items, "idempotencyKey": key });
    app.gql_ok(CHECKOUT, json!({ "input": input })).await["checkoutOrchestrated"].clone()
}

async fn level(app: &TestApp, product: Uuid) -> StockLevel {
    let levels = app.platform().services.call(&Levels { product_ids: Some(vec![product.into()]) }).await.expect("levels");
    levels.into_iter().next().expect("a level")
}

fn states(saga: &Value) -> Vec<String> {
    saga["transitions"].as_array().expect("transitions").iter().map(|t| t["to"].as_str().unwrap_or("").to_owned()).collect()
}

async fn a_checkout_completes_in_the_seeds_order(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Beans", 1250, 10).await;
    let client = Uuid::new_v4();
    let saga = checkout(&app, client, json!([{ "productId": product, "quantity": 3 }]), None).await;

    assert_eq!(saga["state"], "COMPLETED", "{saga}");
    assert_eq!(
        states(&saga),
        [
            "PENDING", "VERIFYING_STOCK", "STOCK_VERIFIED", "FETCHING_PRODUCTS", "PRODUCTS_FETCHED",
            "RESERVING_STOCK", "STOCK_RESERVED", "CREATING_ORDER", "ORDER_CREATED", "COMPLETED"
        ]
    );
    assert_eq!(saga["failureReason"], Value::Null);
    let order = app
        .gql_ok("query($id: ID!) { order(id: $id) { clientId checkoutId status totalCents items { quantity unitPriceCents } } }", json!({ "id": saga["orderId"] }))
        .await["order"]
        .clone();
    assert_eq!(order["totalCents"], 3 * 1250);
    assert_eq!(order["status"], "CREATED");
    assert_eq!(order["checkoutId"], saga["id"]);
    assert_eq!(order["items"], json!([{ "quantity": 3, "unitPriceCents": 1250 }]));

    let after = level(&app, product).await;
    assert_eq!((after.available, after.reserved, after.sold), (7, 0, 3));

    // The same saga, read back; and its events in the store.
    let read = app.gql_ok("query($id: ID!) { saga(id: $id) { state transitions { to } } }", json!({ "id": saga["id"] })).await;
    assert_eq!(read["saga"]["state"], "COMPLETED");
    let id = Uuid::parse_str(saga["id"].as_str().expect("id")).expect("uuid");
    let events = app.platform().events.read_checkout(id.into()).await.expect("events");
    let types: Vec<&str> = events.iter().map(|e| e.envelope.event_type().as_str()).collect();
    // One transition event per write of the saga log (the states a write
    // passes through ride in its `via`); spelled out, they are the log.
    // Four writes: created; stock checked and products fetched (two reads,
    // one write); stock reserved; order created and stock committed.
    assert_eq!(types.iter().filter(|t| **t == "SagaTransitioned").count(), 4, "{types:?}");
    assert_eq!(types.len(), 7, "{types:?}");
    let logged: Vec<&str> = read["saga"]["transitions"].as_array().expect("log").iter().filter_map(|t| t["to"].as_str()).collect();
    let recorded: Vec<&str> = events.iter().flat_map(|e| e.envelope.payload.transitions()).map(|t| t.to.as_str()).collect();
    assert_eq!(recorded, logged);
    assert_eq!(logged.len(), 10, "{logged:?}");
    assert!(types.ends_with(&["OrderCreated", "CheckoutSucceeded", "SagaTransitioned"]), "{types:?}");
    assert!(events.iter().all(|e| e.envelope.pattern == chorus_event_store::Pattern::Orchestrated));
    assert!(matches!(events.last().map(|e| &e.envelope.payload), Some(EventPayload::SagaTransitioned { to, .. }) if to.as_str() == "COMPLETED"));

    let metrics = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics").text().await.expect("text");
    for name in ["saga_started_total", "saga_completed_total", "saga_execution_duration_seconds_bucket", "events_published_total{topic=\"ecommerce.checkout\",type=\"CheckoutSucceeded\"}", "external_service_call_duration_seconds_bucket{service=\"orders\""] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    app.stop().await;
}

async fn every_failure_is_compensated(backend: Backend) {
    // (name, faults, stock, quantity, deactivate, unknown product, expected failure state, reason fragment)
    type Case<'a> = (&'a str, &'a str, i64, u32, bool, bool, &'a str, &'a str);
    let cases: &[Case] = &[
        ("insufficient stock", "", 2, 3, false, false, "FAILED_INSUFFICIENT_STOCK", "insufficient stock"),
        ("unknown product", "", 5, 1, false, true, "FAILED_PRODUCT_UNAVAILABLE", "unknown product"),
        ("inactive product", "", 5, 1, true, false, "FAILED_PRODUCT_UNAVAILABLE", "not for sale"),
        // Stock checked, the catalogue (asked at the same time) failing.
        ("catalogue error", "catalogue.get=error:1.0", 5, 1, false, false, "FAILED_PRODUCT_UNAVAILABLE", "catalogue"),
        ("reservation error", "inventory.reserve=error:1.0", 5, 1, false, false, "FAILED_STOCK_RESERVATION", "injected fault"),
        ("order error", "orders.create=error:1.0", 5, 2, false, false, "FAILED_ORDER_CREATION", "injected fault"),
        ("order timeout", "orders.create=timeout:1.0", 5, 2, false, false, "FAILED_ORDER_CREATION", "timeout"),
    ];
    for &(name, faults, stock, quantity, deactivate, unknown, failed, reason) in cases {
        let mut vars = FAST.to_vec();
        if !faults.is_empty() {
            vars.push(("CHORUS_FAULTS", faults));
        }
        let app = TestApp::start_with(backend, &vars, false).await;
        let product = app.create_product("Grinder", 12900, stock).await;
        if deactivate {
            app.gql_ok("mutation($id: ID!) { setProductActive(productId: $id, active: false) { id } }", json!({ "id": product })).await;
        }
        let target = if unknown { Uuid::new_v4() } else { product };
        let saga = checkout(&app, Uuid::new_v4(), json!([{ "productId": target, "quantity": quantity }]), None).await;

        assert_eq!(saga["state"], "CANCELLED", "{name}: {saga}");
        let path = states(&saga);
        assert_eq!(&path[path.len() - 3..], [failed, "COMPENSATING", "CANCELLED"], "{name}: {path:?}");
        let why = saga["failureReason"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{name}: {why}");
        assert_eq!(saga["orderId"], Value::Null, "{name}");

        let after = level(&app, product).await;
        assert_eq!((after.available, after.reserved, after.sold), (stock, 0, 0), "{name}: {after:?}");
        let client_orders = app.platform().services.call(&chorus_contracts::orders::ListOrdersByClient {
            client_id: Uuid::parse_str(saga["clientId"].as_str().expect("client")).expect("uuid").into(),
            limit: None,
        }).await.expect("orders");
        assert!(client_orders.is_empty(), "{name}: an order survived compensation");
        app.stop().await;
    }
}

async fn concurrent_buyers_never_oversell(backend: Backend) {
    let app = TestApp::start_with(backend, &[("CHORUS_SERVICE_TIMEOUT", "10s")], false).await;
    const STOCK: i64 = 5;
    let product = app.create_product("Limited kettle", 5900, STOCK).await;
    let app = std::sync::Arc::new(app);
    let buyers: Vec<_> = (0..12)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { checkout(&app, Uuid::new_v4(), json!([{ "productId": product, "quantity": 1 }]), None).await })
        })
        .collect();
    let mut completed = 0;
    for buyer in buyers {
        let saga = buyer.await.expect("buyer");
        match saga["state"].as_str() {
            Some("COMPLETED") => completed += 1,
            Some("CANCELLED") => assert!(saga["failureReason"].as_str().unwrap_or("").contains("insufficient stock"), "{saga}"),
            other => panic!("not terminal: {other:?}"),
        }
    }
    assert_eq!(completed, STOCK);
    let after = level(&app, product).await;
    assert_eq!((after.available, after.reserved, after.sold), (0, 0, STOCK));
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}

async fn a_repeated_idempotency_key_is_one_checkout(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let product = app.create_product("Filters", 690, 10).await;
    let client = Uuid::new_v4();
    let items = json!([{ "productId": product, "quantity": 2 }]);
    let (a, b) = tokio::join!(checkout(&app, client, items.clone(), Some("cart-1")), checkout(&app, client, items.clone(), Some("cart-1")));
    assert_eq!(a["id"], b["id"]);
    assert_eq!((a["state"].as_str(), b["state"].as_str()), (Some("COMPLETED"), Some("COMPLETED")));
    let again = checkout(&app, client, items.clone(), Some("cart-1")).await;
    assert_eq!(again["id"], a["id"]);
    // The same key with another cart is refused, not silently the first.
    let input = json!({ "clientId": client, "items": [{ "productId": product, "quantity": 3 }], "idempotencyKey": "cart-1" });
    let refused = app.gql(CHECKOUT, json!({ "input": input })).await;
    assert_eq!(error_code(&refused), Some("CONFLICT"), "{refused}");
    // Two new carts racing on one key: one checkout, the other refused.
    let race = |quantity: u32| {
        let input = json!({ "clientId": client, "items": [{ "productId": product, "quantity": quantity }], "idempotencyKey": "cart-2" });
        app.gql(CHECKOUT, json!({ "input": input }))
    };
    let (x, y) = tokio::join!(race(1), race(2));
    let codes = [error_code(&x), error_code(&y)];
    assert!(codes.contains(&None) && codes.contains(&Some("CONFLICT")), "{x} {y}");
    // Another client's identical key is another checkout.
    let other = checkout(&app, Uuid::new_v4(), items, Some("cart-1")).await;
    assert_ne!(other["id"], a["id"]);

    let orders = app.platform().services.call(&chorus_contracts::orders::ListOrdersByClient { client_id: client.into(), limit: None }).await.expect("orders");
    assert_eq!(orders.len(), 2, "a repeated key made another order");
    let after = level(&app, product).await;
    assert_eq!(after.available + after.reserved + after.sold, 10, "stock not conserved");
    assert_eq!(after.reserved, 0);
    assert!(after.sold == 5 || after.sold == 6, "sold {}", after.sold);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_checkouts_are_refused_and_write_nothing() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Cups", 900, 10).await;
    let p = product.to_string();
    let client = Uuid::new_v4().to_string();
    let many: Vec<Value> = (0..101).map(|_| json!({ "productId": Uuid::new_v4(), "quantity": 1 })).collect();
    let cases = [
        json!({ "clientId": "nope", "items": [{ "productId": p, "quantity": 1 }] }),
        json!({ "clientId": client, "items": [] }),
        json!({ "clientId": client, "items": many }),
        json!({ "clientId": client, "items": [{ "productId": p, "quantity": 0 }] }),
        json!({ "clientId": client, "items": [{ "productId": p, "quantity": -2 }] }),
        json!({ "clientId": client, "items": [{ "productId": p, "quantity": 1001 }] }),
        json!({ "clientId": client, "items": [{ "productId": "x", "quantity": 1 }] }),
        json!({ "clientId": client, "items": [{ "productId": p, "quantity": 1 }, { "productId": p, "quantity": 2 }] }),
        json!({ "clientId": client, "items": [{ "productId": p, "quantity": 1 }], "idempotencyKey": "" }),
    ];
    for input in cases {
        let body = app.gql(CHECKOUT, json!({ "input": input })).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{input}: {body}");
    }
    let sagas = app.gql_ok("{ sagas { id } }", json!({})).await;
    assert_eq!(sagas["sagas"], json!([]), "bad input wrote a saga");
    assert_eq!(level(&app, product).await.available, 10);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_counts_characters_not_bytes() {
    // 200 characters of two bytes each: within the limit the gateway states.
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Keys", 100, 5).await;
    let client = Uuid::new_v4();
    let key = "é".repeat(200);
    let first = checkout(&app, client, json!([{ "productId": product, "quantity": 1 }]), Some(&key)).await;
    assert_eq!(first["state"], "COMPLETED", "{first}");
    let again = checkout(&app, client, json!([{ "productId": product, "quantity": 1 }]), Some(&key)).await;
    assert_eq!(again["id"], first["id"], "the same key names the same saga");
    let long = json!({ "clientId": client, "items": [{ "productId": product, "quantity": 1 }], "idempotencyKey": "é".repeat(201) });
    assert_eq!(error_code(&app.gql(CHECKOUT, json!({ "input": long })).await), Some("BAD_USER_INPUT"));
    assert_eq!(level(&app, product).await.available, 4, "one sale");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensation_is_forced_on_a_running_saga_and_refused_on_a_completed_one() {
    let vars = [("CHORUS_FAULT_INJECTION", "1"), ("CHORUS_SERVICE_TIMEOUT", "2s"), ("CHORUS_STEP_ATTEMPTS", "50")];
    let app = std::sync::Arc::new(TestApp::start_with(Backend::Sqlite, &vars, false).await);
    let product = app.create_product("Scale", 4500, 4).await;
    let done = checkout(&app, Uuid::new_v4(), json!([{ "productId": product, "quantity": 1 }]), None).await;
    let refused = app.gql("mutation($id: ID!) { compensateSaga(id: $id) { state } }", json!({ "id": done["id"] })).await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{refused}");
    let missing = app.gql("mutation($id: ID!) { compensateSaga(id: $id) { state } }", json!({ "id": Uuid::new_v4() })).await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"), "{missing}");

    // A saga stuck creating its order (the orders service never answers).
    app.gql_ok("mutation { setFault(target: \"orders.create\", mode: TIMEOUT, rate: 1.0) }", json!({})).await;
    let stuck = {
        let app = app.clone();
        tokio::spawn(async move { checkout(&app, Uuid::new_v4(), json!([{ "productId": product, "quantity": 2 }]), None).await })
    };
    let creating = eventually(std::time::Duration::from_secs(20), || async {
        let body = app.gql_ok("{ sagas(state: CREATING_ORDER) { id } }", json!({})).await;
        body["sagas"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await;
    assert!(creating, "the saga never reached CREATING_ORDER");
    let id = app.gql_ok("{ sagas(state: CREATING_ORDER) { id } }", json!({})).await["sagas"][0]["id"].clone();
    let forced = app.gql_ok("mutation($id: ID!) { compensateSaga(id: $id) { state failureReason transitions { to } } }", json!({ "id": id })).await;
    assert_eq!(forced["compensateSaga"]["state"], "CANCELLED", "{forced}");
    let path = states(&forced["compensateSaga"]);
    assert!(path.ends_with(&["CREATING_ORDER".to_owned(), "COMPENSATING".to_owned(), "CANCELLED".to_owned()]), "{path:?}");
    assert_eq!(stuck.await.expect("checkout returns")["state"], "CANCELLED");
    app.gql_ok("mutation { setFault(target: \"orders.create\", mode: NONE, rate: 0) }", json!({})).await;

    let after = level(&app, product).await;
    assert_eq!((after.available, after.reserved, after.sold), (3, 0, 1), "{after:?}");
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}
