//! Auth and limits at the gateway: who may do what, over HTTP and
//! WebSocket, each refusal with its code and nothing written.

use std::time::Duration;

use chorus_event_store::{Envelope, EventPayload, Pattern};
use chorus_gateway::auth::{self, Claims, Role};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    subscriptions::{Frame, Proto, Ws},
    support::{Backend, TestApp, error_code},
};

const SECRET: &str = "test-secret-for-chorus";
const PROGRESS: &str = "subscription($id: ID!) { checkoutProgress(checkoutId: $id) { type } }";
const CHOREO: &str = "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId } }";
const ORCH: &str = "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id state } }";

fn token(sub: &str, role: Role) -> String {
    auth::issue(SECRET, sub, role, Duration::from_secs(600)).expect("token")
}

fn cart(client: Uuid, product: Uuid) -> Value {
    json!({ "input": { "clientId": client, "items": [{ "productId": product, "quantity": 1 }] } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_gets_the_right_code_over_http_and_nothing_is_written() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_JWT_SECRET", SECRET)], false).await;
    let admin = token("ops", Role::Admin);
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let (alice_token, bob_token) = (token(&alice.to_string(), Role::Client), token(&bob.to_string(), Role::Client));
    let created = app
        .gql_as(Some(&admin), "mutation { createProduct(name: \"Guarded\", priceCents: 100, stock: 5) { id } }", json!({}))
        .await;
    let product = Uuid::parse_str(created["data"]["createProduct"]["id"].as_str().expect("admin creates")).expect("uuid");
    let events = &app.platform().events;
    let before = events.last_sequence().await.expect("sequence");

    // Authentication first: no token, a forged one, an expired one.
    let forged = auth::issue("not-the-secret", &alice.to_string(), Role::Admin, Duration::from_secs(600)).expect("token");
    let expired = auth::encode(SECRET, &Claims { sub: alice.to_string(), role: Role::Client, exp: 1_000_000_000, nbf: None }).expect("token");
    for bad in [None, Some(forged.as_str()), Some(expired.as_str()), Some("not-a-jwt")] {
        let body = app.gql_as(bad, "{ products { id } }", json!({})).await;
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{bad:?}: {body}");
        let body = app.gql_as(bad, CHOREO, cart(alice, product)).await;
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{bad:?}: {body}");
    }
    // Then input, then authorization.
    let malformed = json!({ "input": { "clientId": "nope", "items": [] } });
    assert_eq!(error_code(&app.gql_as(None, CHOREO, malformed.clone()).await), Some("UNAUTHENTICATED"));
    assert_eq!(error_code(&app.gql_as(Some(&alice_token), CHOREO, malformed).await), Some("BAD_USER_INPUT"));

    // A client acts only as itself, and is no admin.
    for (query, variables) in [
        (CHOREO, cart(bob, product)),
        (ORCH, cart(bob, product)),
        ("mutation { createProduct(name: \"X\", priceCents: 1, stock: 1) { id } }", json!({})),
        ("mutation($p: ID!) { restock(productId: $p, quantity: 5) { stock } }", json!({ "p": product })),
        ("mutation($p: ID!) { setProductActive(productId: $p, active: false) { active } }", json!({ "p": product })),
        ("{ streamEvents { events { sequence } } }", json!({})),
        ("{ sagas { id } }", json!({})),
        ("query($c: ID!) { ordersByClient(clientId: $c) { totalOrders } }", json!({ "c": bob })),
    ] {
        let body = app.gql_as(Some(&alice_token), query, variables).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{query}: {body}");
    }
    assert_eq!(events.last_sequence().await.expect("sequence"), before, "nothing was published");
    let products = app.gql_as(Some(&admin), "{ products { name stock active } }", json!({})).await;
    assert_eq!(products["data"]["products"], json!([{ "name": "Guarded", "stock": 5, "active": true }]));

    // Alice's own checkout works, and only Alice (or an admin) reads it.
    let own = app.gql_as(Some(&alice_token), ORCH, cart(alice, product)).await;
    assert_eq!(own["data"]["checkoutOrchestrated"]["state"], "COMPLETED", "{own}");
    let id = own["data"]["checkoutOrchestrated"]["id"].as_str().expect("id").to_owned();
    let order = app.gql_as(Some(&alice_token), "query($id: ID!) { saga(id: $id) { orderId } }", json!({ "id": id })).await;
    let order_id = order["data"]["saga"]["orderId"].as_str().expect("order").to_owned();
    for (query, variables) in [
        ("query($id: ID!) { saga(id: $id) { state } }", json!({ "id": id })),
        ("query($id: ID!) { checkout(id: $id) { status } }", json!({ "id": id })),
        ("query($id: ID!) { checkoutEvents(checkoutId: $id) { type } }", json!({ "id": id })),
        ("query($id: ID!) { order(id: $id) { totalCents } }", json!({ "id": order_id })),
    ] {
        assert!(app.gql_as(Some(&alice_token), query, variables.clone()).await.get("errors").is_none(), "{query}");
        assert!(app.gql_as(Some(&admin), query, variables.clone()).await.get("errors").is_none(), "{query}");
        let body = app.gql_as(Some(&bob_token), query, variables).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{query}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_whose_owner_is_unknown_is_read_by_admins_only() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_JWT_SECRET", SECRET)], false).await;
    // A history without the event that names its client (written by hand,
    // as an operator replaying or a bug might).
    let id = Uuid::now_v7();
    let failed = EventPayload::CheckoutFailed { reason: "written by hand".into(), step: "verify_stock".into(), client_id: None };
    app.platform().events.append(&Envelope::new(id.into(), Pattern::Choreographed, failed), None).await.expect("append");
    let alice = token(&Uuid::new_v4().to_string(), Role::Client);
    let admin = token("ops", Role::Admin);
    let events = "query($id: ID!) { checkoutEvents(checkoutId: $id) { type } }";
    let body = app.gql_as(Some(&alice), events, json!({ "id": id })).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = app.gql_as(Some(&admin), events, json!({ "id": id })).await;
    assert_eq!(body["data"]["checkoutEvents"], json!([{ "type": "CheckoutFailed" }]), "{body}");
    let view = "query($id: ID!) { checkout(id: $id) { status } }";
    let body = app.gql_as(Some(&alice), view, json!({ "id": id })).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_callers_are_checked_at_init_and_per_subscription() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_JWT_SECRET", SECRET)], false).await;
    let admin = token("ops", Role::Admin);
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let created = app
        .gql_as(Some(&admin), "mutation { createProduct(name: \"Watched\", priceCents: 100, stock: 5) { id } }", json!({}))
        .await;
    let product = Uuid::parse_str(created["data"]["createProduct"]["id"].as_str().expect("id")).expect("uuid");
    let alice_token = token(&alice.to_string(), Role::Client);
    let accepted = app.gql_as(Some(&alice_token), CHOREO, cart(alice, product)).await;
    let id = accepted["data"]["checkoutChoreographed"]["checkoutId"].as_str().expect("id").to_owned();

    // A forged token is refused at connection_init: the socket closes.
    let forged = auth::issue("nope", &alice.to_string(), Role::Client, Duration::from_secs(60)).expect("token");
    for proto in [Proto::Transport, Proto::Legacy] {
        let mut ws = Ws::connect(&app, proto, json!({ "Authorization": format!("Bearer {forged}") })).await;
        let refused = ws.acked().await.expect_err("refused");
        assert!(refused.contains("UNAUTHENTICATED") || refused.contains("4403"), "{proto:?}: {refused}");
    }
    // No token: the subscription is refused as unauthenticated.
    let mut anonymous = Ws::open(&app, Proto::Transport, json!({})).await;
    anonymous.subscribe("a", PROGRESS, json!({ "id": id })).await;
    assert_code(anonymous.frame("a").await, "UNAUTHENTICATED");
    // Bob may not follow Alice's checkout, nor the firehose.
    let mut bob_ws = Ws::open(&app, Proto::Transport, json!({ "token": token(&bob.to_string(), Role::Client) })).await;
    bob_ws.subscribe("b", PROGRESS, json!({ "id": id })).await;
    assert_code(bob_ws.frame("b").await, "FORBIDDEN");
    bob_ws.subscribe("f", "subscription { allCheckoutEvents { type } }", json!({})).await;
    assert_code(bob_ws.frame("f").await, "FORBIDDEN");
    // Alice follows her own to the end.
    let mut alice_ws = Ws::open(&app, Proto::Legacy, json!({ "Authorization": format!("Bearer {alice_token}") })).await;
    alice_ws.subscribe("mine", PROGRESS, json!({ "id": id })).await;
    let frames = alice_ws.until_complete("mine").await;
    assert_eq!(frames.last().expect("frames")["checkoutProgress"]["type"], "CheckoutSucceeded");
    app.stop().await;
}

fn assert_code(frame: Frame, code: &str) {
    match frame {
        Frame::Error(error) => assert_eq!(error["extensions"]["code"], code, "{error}"),
        other => panic!("expected a {code} error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_abuse_and_the_gateway_stays_healthy() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    // Too deep (introspection stays available, within the limit).
    let deep = format!("{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}", "ofType { ".repeat(16), "} ".repeat(16));
    let body = app.gql(&deep, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("deep"), "{body}");
    let introspection = app.gql("{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(introspection["data"]["__schema"]["queryType"]["name"], "QueryRoot");
    // An oversized body never reaches GraphQL.
    let huge = format!("{{ products {{ id }} }} # {}", "x".repeat(chorus_gateway::MAX_BODY));
    let response = app
        .http
        .post(format!("http://{}/graphql", app.addr))
        .json(&json!({ "query": huge }))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 413);
    // A cap on live subscriptions per caller.
    let mut ws = Ws::open(&app, Proto::Transport, json!({})).await;
    let cap = chorus_gateway::live::MAX_SUBSCRIPTIONS_PER_CALLER;
    for i in 0..cap {
        ws.subscribe(&format!("s{i}"), "subscription { allCheckoutEvents { type } }", json!({})).await;
    }
    // One more: whichever the server registers last is refused.
    ws.subscribe("over", "subscription { allCheckoutEvents { type } }", json!({})).await;
    match ws.any_frame().await {
        (_, Frame::Error(error)) => assert!(error["message"].as_str().unwrap_or("").contains("at most"), "{error}"),
        other => panic!("the subscription over the cap was not refused: {other:?}"),
    }
    ws.close().await;
    let health = app.http.get(format!("http://{}/health", app.addr)).send().await.expect("health");
    assert_eq!(health.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_from_configured_origins_may_call() {
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_CORS_ORIGINS", "https://shop.example")], false).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("http://{}/graphql", app.addr))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type,authorization")
            .send()
    };
    let allowed = preflight("https://shop.example").await.expect("answered");
    assert_eq!(allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("https://shop.example"));
    let other = preflight("https://evil.example").await.expect("answered");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}
