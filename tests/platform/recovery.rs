//! No single point of failure: orchestrator replicas as separate processes
//! on one Postgres database; one is SIGKILLed in the middle of sagas and the
//! other finishes them, with nothing done twice.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::{
    lifecycle::{chorus, gql, healthy},
    support::{Backend, TestDatabases, TestNats, eventually, skip_postgres},
};

const HAPPY_PATH: [&str; 10] = [
    "PENDING", "VERIFYING_STOCK", "STOCK_VERIFIED", "FETCHING_PRODUCTS", "PRODUCTS_FETCHED",
    "RESERVING_STOCK", "STOCK_RESERVED", "CREATING_ORDER", "ORDER_CREATED", "COMPLETED",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_orchestrators_sagas_are_finished_by_another_replica() {
    if skip_postgres() {
        return;
    }
    let nats = TestNats::start();
    let data = tempfile::tempdir().expect("temp dir");
    let dbs = TestDatabases::create(Backend::Postgres, data.path()).await;
    let addr = format!("127.0.0.1:{}", chorus_runtime::nats_server::free_port().expect("port"));
    let mut env: Vec<(&str, String)> = vec![
        ("NATS_URL", nats.url()),
        ("CHORUS_DATA_DIR", data.path().display().to_string()),
        ("GATEWAY_ADDR", addr.clone()),
        ("CHORUS_FAULT_INJECTION", "1".into()),
        ("CHORUS_SERVICE_TIMEOUT", "500ms".into()),
        ("CHORUS_SAGA_LEASE", "2s".into()),
        ("CHORUS_STEP_ATTEMPTS", "100".into()),
        ("CHORUS_STEP_BACKOFF", "50ms".into()),
    ];
    env.extend(dbs.vars());
    let _services = [
        chorus(&["service", "catalogue"], &env),
        chorus(&["service", "inventory"], &env),
        chorus(&["service", "orders"], &env),
        chorus(&["gateway"], &env),
    ];
    let mut replica_a = chorus(&["service", "orchestrator"], &env);
    let _replica_b = chorus(&["service", "orchestrator"], &env);
    let http = reqwest::Client::new();
    assert!(eventually(Duration::from_secs(60), || healthy(&http, &addr)).await, "never healthy");

    let created = gql(&http, &addr, "mutation { createProduct(name: \"Beans\", priceCents: 1000, stock: 20) { id } }").await;
    let product = created["data"]["createProduct"]["id"].as_str().expect("product").to_owned();
    gql(&http, &addr, "mutation { setFault(target: \"orders.create\", mode: TIMEOUT, rate: 1.0) }").await;

    // Eight checkouts, spread over both replicas, all held creating their order.
    let clients: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let pending: Vec<_> = clients
        .iter()
        .map(|client| {
            let (http, addr) = (http.clone(), addr.clone());
            let query = format!(
                "mutation {{ checkoutOrchestrated(input: {{ clientId: \"{client}\", items: [{{ productId: \"{product}\", quantity: 2 }}], idempotencyKey: \"cart\" }}) {{ id state }} }}"
            );
            tokio::spawn(async move { gql(&http, &addr, &query).await })
        })
        .collect();
    let all_held = eventually(Duration::from_secs(30), || async {
        let body = gql(&http, &addr, "{ sagas(state: CREATING_ORDER) { id } }").await;
        body["data"]["sagas"].as_array().map(Vec::len) == Some(8)
    })
    .await;
    assert!(all_held, "the sagas never all reached CREATING_ORDER");

    replica_a.child.kill().expect("SIGKILL");
    let killed = Instant::now();
    gql(&http, &addr, "mutation { setFault(target: \"orders.create\", mode: NONE, rate: 0) }").await;

    // A client retrying with its idempotency key gets its saga, once terminal,
    // whichever replica started it.
    let retry = format!(
        "mutation {{ checkoutOrchestrated(input: {{ clientId: \"{}\", items: [{{ productId: \"{product}\", quantity: 2 }}], idempotencyKey: \"cart\" }}) {{ id state clientId }} }}",
        clients[0]
    );
    let retried = gql(&http, &addr, &retry).await;
    assert_eq!(retried["data"]["checkoutOrchestrated"]["state"], "COMPLETED", "{retried}");

    let all_done = eventually(Duration::from_secs(60), || async {
        let body = gql(&http, &addr, "{ sagas(state: COMPLETED) { id } }").await;
        body["data"]["sagas"].as_array().map(Vec::len) == Some(8)
    })
    .await;
    if !all_done {
        let states = gql(&http, &addr, "{ sagas { state failureReason transitions { to at } } }").await;
        panic!("not every saga completed after the SIGKILL: {states}");
    }
    eprintln!("recovery: every saga COMPLETED {:?} after the SIGKILL (lease 2s)", killed.elapsed());
    for task in pending {
        task.abort();
    }

    let sagas = gql(&http, &addr, "{ sagas { id clientId state orderId transitions { to } } }").await;
    let sagas = sagas["data"]["sagas"].as_array().expect("sagas");
    assert_eq!(sagas.len(), 8, "the retry started a second saga");
    let first = sagas.iter().find(|s| s["clientId"] == clients[0].to_string()).expect("client 0's saga");
    assert_eq!(first["id"], retried["data"]["checkoutOrchestrated"]["id"]);
    for saga in sagas {
        let path: Vec<&str> = saga["transitions"].as_array().expect("log").iter().filter_map(|t| t["to"].as_str()).collect();
        assert_eq!(path, HAPPY_PATH, "a step was driven twice or skipped: {saga}");
        let order = gql(&http, &addr, &format!("{{ order(id: \"{}\") {{ clientId totalCents }} }}", saga["orderId"].as_str().expect("order"))).await;
        assert_eq!(order["data"]["order"], json!({ "clientId": saga["clientId"], "totalCents": 2000 }));
    }
    let products = gql(&http, &addr, "{ products { stock reserved } }").await;
    assert_eq!(products["data"]["products"], json!([{ "stock": 4, "reserved": 0 }]), "stock not conserved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopping_gracefully_hands_its_sagas_back_at_once() {
    if skip_postgres() {
        return;
    }
    let nats = TestNats::start();
    let data = tempfile::tempdir().expect("temp dir");
    let dbs = TestDatabases::create(Backend::Postgres, data.path()).await;
    let addr = format!("127.0.0.1:{}", chorus_runtime::nats_server::free_port().expect("port"));
    let mut env: Vec<(&str, String)> = vec![
        ("NATS_URL", nats.url()),
        ("CHORUS_DATA_DIR", data.path().display().to_string()),
        ("GATEWAY_ADDR", addr.clone()),
        ("CHORUS_FAULT_INJECTION", "1".into()),
        ("CHORUS_SERVICE_TIMEOUT", "500ms".into()),
        // Far longer than the test waits: only a hand-back lets B take over in time.
        ("CHORUS_SAGA_LEASE", "60s".into()),
        ("CHORUS_STEP_ATTEMPTS", "100".into()),
        ("CHORUS_STEP_BACKOFF", "50ms".into()),
    ];
    env.extend(dbs.vars());
    let _services = [
        chorus(&["service", "catalogue"], &env),
        chorus(&["service", "inventory"], &env),
        chorus(&["service", "orders"], &env),
        chorus(&["gateway"], &env),
    ];
    let mut replica_a = chorus(&["service", "orchestrator"], &env);
    let http = reqwest::Client::new();
    assert!(eventually(Duration::from_secs(60), || healthy(&http, &addr)).await, "never healthy");
    let created = gql(&http, &addr, "mutation { createProduct(name: \"Cups\", priceCents: 500, stock: 10) { id } }").await;
    let product = created["data"]["createProduct"]["id"].as_str().expect("product").to_owned();
    gql(&http, &addr, "mutation { setFault(target: \"orders.create\", mode: TIMEOUT, rate: 1.0) }").await;

    // Only replica A runs while the checkouts start, so A holds them all.
    let pending: Vec<_> = (0..4)
        .map(|_| {
            let (http, addr) = (http.clone(), addr.clone());
            let query = format!(
                "mutation {{ checkoutOrchestrated(input: {{ clientId: \"{}\", items: [{{ productId: \"{product}\", quantity: 1 }}] }}) {{ id }} }}",
                Uuid::new_v4()
            );
            tokio::spawn(async move { gql(&http, &addr, &query).await })
        })
        .collect();
    let held = eventually(Duration::from_secs(30), || async {
        let body = gql(&http, &addr, "{ sagas(state: CREATING_ORDER) { id } }").await;
        body["data"]["sagas"].as_array().map(Vec::len) == Some(4)
    })
    .await;
    assert!(held, "the sagas never all reached CREATING_ORDER");
    let _replica_b = chorus(&["service", "orchestrator"], &env);

    let stopping = Instant::now();
    replica_a.signal("TERM");
    gql(&http, &addr, "mutation { setFault(target: \"orders.create\", mode: NONE, rate: 0) }").await;
    let done = eventually(Duration::from_secs(20), || async {
        let body = gql(&http, &addr, "{ sagas(state: COMPLETED) { id } }").await;
        body["data"]["sagas"].as_array().map(Vec::len) == Some(4)
    })
    .await;
    assert!(done, "B did not finish A's sagas well before A's 60 s leases expired");
    eprintln!("hand-back: every saga COMPLETED {:?} after SIGTERM of its replica", stopping.elapsed());
    // A, draining, still answers the checkouts it took: B finished them.
    for task in pending {
        let answer = task.await.expect("checkout task");
        assert!(answer["data"]["checkoutOrchestrated"]["id"].is_string(), "{answer}");
    }
    assert!(replica_a.wait_exit(Duration::from_secs(30)).success(), "A did not stop cleanly");
    let products = gql(&http, &addr, "{ products { stock reserved } }").await;
    assert_eq!(products["data"]["products"], json!([{ "stock": 6, "reserved": 0 }]));
}
