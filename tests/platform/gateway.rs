//! The gateway's first cut: products, admin mutations, validation, error
//! codes, faults, health and metrics.

use serde_json::json;
use uuid::Uuid;

use crate::{
    both_backends,
    support::{Backend, TestApp, error_code},
};

both_backends!(
    demo_products_are_served,
    products_are_created_restocked_and_deactivated,
    bad_input_is_refused_and_writes_nothing,
    unknown_products_are_not_found,
    faults_are_refused_unless_enabled,
);

async fn demo_products_are_served(backend: Backend) {
    let app = TestApp::start(backend).await;
    let products = app.products().await;
    let names: Vec<&str> = products.as_array().expect("list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names.len(), chorus::seed::DEMO_PRODUCTS.len());
    assert!(names.contains(&"Espresso beans 1 kg"), "{names:?}");
    let espresso = &products[0];
    assert_eq!(espresso["priceCents"], 2490);
    assert_eq!(espresso["stock"], 100);
    assert_eq!(espresso["reserved"], 0);
    app.stop().await;
}

async fn products_are_created_restocked_and_deactivated(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    assert_eq!(app.products().await, json!([]));

    let id = app.create_product("Tamper", 1999, 7).await;
    let restocked = app
        .gql_ok(
            "mutation($id: ID!) { restock(productId: $id, quantity: 5) { stock reserved } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(restocked["restock"], json!({ "stock": 12, "reserved": 0 }));

    let off = app
        .gql_ok(
            "mutation($id: ID!) { setProductActive(productId: $id, active: false) { active stock } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(off["setProductActive"], json!({ "active": false, "stock": 12 }));

    let one = app
        .gql_ok("query($id: ID!) { product(id: $id) { name priceCents active stock } }", json!({ "id": id }))
        .await;
    assert_eq!(one["product"], json!({ "name": "Tamper", "priceCents": 1999, "active": false, "stock": 12 }));

    // A product made with no stock still has a level of zero.
    let empty = app.create_product("Scale", 4500, 0).await;
    let p = app.gql_ok("query($id: ID!) { product(id: $id) { stock reserved } }", json!({ "id": empty })).await;
    assert_eq!(p["product"], json!({ "stock": 0, "reserved": 0 }));
    app.stop().await;
}

async fn bad_input_is_refused_and_writes_nothing(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let id = app.create_product("Milk jug", 1500, 3).await;
    let before = app.products().await;

    let cases = [
        ("mutation { createProduct(name: \"\", priceCents: 100, stock: 1) { id } }", json!({})),
        ("mutation { createProduct(name: \"   \", priceCents: 100, stock: 1) { id } }", json!({})),
        ("mutation { createProduct(name: \"x\", priceCents: -1, stock: 1) { id } }", json!({})),
        ("mutation { createProduct(name: \"x\", priceCents: 100, stock: -5) { id } }", json!({})),
        ("mutation($n: String!) { createProduct(name: $n, priceCents: 1, stock: 1) { id } }", json!({ "n": "x".repeat(201) })),
        ("mutation { restock(productId: \"not-a-uuid\", quantity: 5) { id } }", json!({})),
        ("mutation($id: ID!) { restock(productId: $id, quantity: 0) { id } }", json!({ "id": id })),
        ("mutation($id: ID!) { restock(productId: $id, quantity: -3) { id } }", json!({ "id": id })),
        ("mutation { setProductActive(productId: \"42\", active: false) { id } }", json!({})),
        ("query { product(id: \"nope\") { id } }", json!({})),
        ("mutation { setFault(target: \"orders.delete\", mode: ERROR, rate: 1.0) }", json!({})),
        ("mutation { setFault(target: \"orders.create\", mode: ERROR, rate: 1.5) }", json!({})),
    ];
    for (query, vars) in cases {
        let body = app.gql(query, vars).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{query}: {body}");
    }
    assert_eq!(app.products().await, before, "bad input changed something");
    app.stop().await;
}

async fn unknown_products_are_not_found(backend: Backend) {
    let app = TestApp::start_with(backend, &[], false).await;
    let ghost = Uuid::new_v4();
    let body = app.gql("query($id: ID!) { product(id: $id) { id } }", json!({ "id": ghost })).await;
    assert_eq!(body["data"]["product"], json!(null), "{body}");
    for query in [
        "mutation($id: ID!) { restock(productId: $id, quantity: 1) { id } }",
        "mutation($id: ID!) { setProductActive(productId: $id, active: true) { id } }",
    ] {
        let body = app.gql(query, json!({ "id": ghost })).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{query}: {body}");
    }
    assert_eq!(app.products().await, json!([]));
    app.stop().await;
}

async fn faults_are_refused_unless_enabled(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = app.gql("mutation { setFault(target: \"catalogue.get\", mode: ERROR, rate: 1.0) }", json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_map_to_service_unavailable_and_timeout() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_FAULT_INJECTION", "1")], false).await;
    let id = app.create_product("Cups", 900, 10).await;
    let get = "query($id: ID!) { product(id: $id) { name } }";

    let set = app.gql_ok("mutation { setFault(target: \"catalogue.get\", mode: ERROR, rate: 1.0) }", json!({})).await;
    assert_eq!(set["setFault"], true);
    let body = app.gql(get, json!({ "id": id })).await;
    assert_eq!(error_code(&body), Some("SERVICE_UNAVAILABLE"), "{body}");

    app.gql_ok("mutation { setFault(target: \"catalogue.get\", mode: TIMEOUT, rate: 1.0) }", json!({})).await;
    let body = app.gql(get, json!({ "id": id })).await;
    assert_eq!(error_code(&body), Some("TIMEOUT"), "{body}");

    app.gql_ok("mutation { setFault(target: \"catalogue.get\", mode: NONE, rate: 0.0) }", json!({})).await;
    let body = app.gql_ok(get, json!({ "id": id })).await;
    assert_eq!(body["product"]["name"], "Cups");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_can_be_set_at_start() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_FAULTS", "catalogue.get=error:1.0")], false).await;
    let body = app.gql("query($id: ID!) { product(id: $id) { name } }", json!({ "id": Uuid::new_v4() })).await;
    assert_eq!(error_code(&body), Some("SERVICE_UNAVAILABLE"), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_playground_answer() {
    let app = TestApp::start(Backend::Sqlite).await;
    let health = app.http.get(format!("http://{}/health", app.addr)).send().await.expect("health");
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.expect("json");
    assert_eq!(body["services"], json!({ "catalogue": "ok", "inventory": "ok", "orders": "ok", "orchestrator": "ok" }));

    app.products().await;
    let metrics = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains("external_service_call_duration_seconds"), "{text}");

    let page = app.http.get(format!("http://{}/", app.addr)).send().await.expect("playground");
    assert!(page.text().await.expect("html").to_lowercase().contains("graphiql"));
    playground_is_served_whole(&app, "off").await;
    let example = app.http.get(format!("http://{}/app", app.addr)).send().await.expect("example app");
    assert!(example.text().await.expect("html").contains("checkoutProgress"));

    // An alias bomb is refused before it runs: 700 aliased product lists.
    let expensive: String = (0..700).map(|i| format!("a{i}: products {{ id name }} ")).collect();
    let body = app.gql(&format!("{{ {expensive} }}"), json!({})).await;
    assert_eq!(crate::support::error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("aliases"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn schema_graphql_matches_the_code() {
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql exists");
    assert_eq!(
        file,
        chorus::cli::schema_sdl(),
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

/// Requests a service's endpoint has answered, from the NATS service API's
/// `$SRV.STATS` (what `nats micro stats` shows).
async fn served(app: &TestApp, service: &str, endpoint: &str) -> u64 {
    let reply = app.platform().nats.request(format!("$SRV.STATS.{service}"), "".into()).await.expect("stats");
    let stats: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
    stats["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["subject"] == format!("{service}.{endpoint}"))
        .and_then(|e| e["num_requests"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_orders_and_products_load_in_one_call_per_batch() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let (a, b) = (app.create_product("Cup", 300, 50).await, app.create_product("Saucer", 200, 50).await);
    let client = Uuid::new_v4();
    for _ in 0..4 {
        let id = crate::choreographed::checkout(&app, client, &[(a, 1), (b, 2)]).await;
        crate::choreographed::terminal(&app, id).await;
    }
    let query = "query($c: ID!) { ordersByClient(clientId: $c) { totalOrders orders { id totalCents items { quantity product { name stock } } } } }";
    let ready = crate::support::eventually(std::time::Duration::from_secs(30), || async {
        app.gql_ok(query, json!({ "c": client })).await["ordersByClient"]["totalOrders"] == 4
    })
    .await;
    assert!(ready, "the read model never showed four orders");
    let calls = || async {
        [
            served(&app, "orders", "get_many").await,
            served(&app, "orders", "get").await,
            served(&app, "catalogue", "get").await,
            served(&app, "inventory", "levels").await,
        ]
    };
    let before = calls().await;
    let data = app.gql_ok(query, json!({ "c": client })).await;
    let after = calls().await;
    let orders = data["ordersByClient"]["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 4);
    assert!(orders.iter().all(|o| o["totalCents"] == 700 && o["items"].as_array().map(Vec::len) == Some(2)));
    assert_eq!(orders[0]["items"][0]["product"]["name"], "Cup");
    let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(delta, [1, 0, 1, 1], "orders.get_many, orders.get, catalogue.get, inventory.levels per query");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_field_of_the_schema_is_described() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let query = "{ __schema { types { name kind description fields { name description args { name description } } inputFields { name description } enumValues { name } } } }";
    let data = app.gql_ok(query, json!({})).await;
    let mut missing = Vec::new();
    for t in data["__schema"]["types"].as_array().expect("types") {
        let name = t["name"].as_str().unwrap_or_default();
        if name.starts_with("__") || ["String", "Int", "Float", "Boolean", "ID"].contains(&name) {
            continue;
        }
        if t["description"].as_str().unwrap_or("").is_empty() {
            missing.push(name.to_owned());
        }
        for list in ["fields", "inputFields"] {
            for f in t[list].as_array().into_iter().flatten() {
                if f["description"].as_str().unwrap_or("").is_empty() {
                    missing.push(format!("{name}.{}", f["name"].as_str().unwrap_or_default()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented in the schema: {}", missing.join(", "));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_listing_carries_each_sagas_own_log() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Logged", 100, 2).await;
    for quantity in [1, 5, 1] {
        let input = json!({ "input": { "clientId": Uuid::new_v4(), "items": [{ "productId": product, "quantity": quantity }] } });
        app.gql_ok("mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id } }", input).await;
    }
    let listed = app.gql_ok("{ sagas(limit: 10) { id state transitions { sagaId to } } }", json!({})).await;
    let sagas = listed["sagas"].as_array().expect("sagas");
    assert_eq!(sagas.len(), 3);
    for saga in sagas {
        let one = app.gql_ok("query($id: ID!) { saga(id: $id) { transitions { sagaId to } } }", json!({ "id": saga["id"] })).await;
        assert_eq!(saga["transitions"], one["saga"]["transitions"], "the listing and the saga agree");
        assert!(saga["transitions"].as_array().expect("log").iter().all(|t| t["sagaId"] == saga["id"]));
        let last = saga["transitions"].as_array().and_then(|t| t.last()).expect("a log");
        assert_eq!(last["to"], saga["state"]);
    }
    app.stop().await;
}

/// GraphiQL comes whole from the gateway, under a Content-Security-Policy
/// that runs scripts from it alone, and knows whether auth is on.
async fn playground_is_served_whole(app: &TestApp, auth: &str) {
    let page = app.http.get(format!("http://{}/", app.addr)).send().await.expect("playground");
    let csp = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains(&format!("data-auth=\"{auth}\"")), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script>"), "no outside asset, no inline script: {html}");
    for (file, media_type) in [("graphiql.min.js", "text/javascript"), ("graphiql.min.css", "text/css"), ("react.production.min.js", "text/javascript"), ("chorus.js", "text/javascript")] {
        let asset = app.http.get(format!("http://{}/assets/graphiql/{file}", app.addr)).send().await.expect("asset");
        assert_eq!(asset.status(), 200, "{file}");
        assert_eq!(asset.headers().get("content-type").and_then(|v| v.to_str().ok()), Some(media_type), "{file}");
    }
    let missing = app.http.get(format!("http://{}/assets/graphiql/../Cargo.toml", app.addr)).send().await.expect("asset");
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_on_the_playground_asks_for_a_token() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_JWT_SECRET", "a-secret-of-at-least-32-bytes-long!!")], false).await;
    playground_is_served_whole(&app, "on").await;
    app.stop().await;
}
