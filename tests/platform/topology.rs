//! The deployment's shape without containers: every role as its own
//! `chorus` process (gateway, each service, two orchestrators, two replicas
//! of each action worker, every other worker) on one NATS and a Postgres
//! database per service, with checkouts of both patterns through it.

use std::time::Duration;

use chorus_workers::WorkerName;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    lifecycle::{chorus, healthy},
    support::{Backend, TestDatabases, TestNats, eventually, skip_postgres},
};

const SETTLE: Duration = Duration::from_secs(60);

async fn gql(http: &reqwest::Client, addr: &str, query: &str, variables: Value) -> Value {
    let body: Value = http
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("gateway answers")
        .json()
        .await
        .expect("json");
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_as_its_own_process_runs_both_patterns() {
    if skip_postgres() {
        return;
    }
    let nats = TestNats::start();
    let data = tempfile::tempdir().expect("temp dir");
    let dbs = TestDatabases::create(Backend::Postgres, data.path()).await;
    let addr = format!("127.0.0.1:{}", chorus_runtime::nats_server::free_port().expect("port"));
    let env = || {
        let mut env: Vec<(&'static str, String)> = vec![
            ("NATS_URL", nats.url()),
            ("CHORUS_DATA_DIR", data.path().display().to_string()),
            ("GATEWAY_ADDR", addr.clone()),
        ];
        env.extend(dbs.vars());
        env
    };
    let mut roles: Vec<Vec<String>> = ["catalogue", "inventory", "orders", "orchestrator", "orchestrator"]
        .iter()
        .map(|s| vec!["service".to_owned(), (*s).to_owned()])
        .collect();
    for worker in WorkerName::ALL {
        let replicas = match worker {
            WorkerName::StockReservation | WorkerName::OrderCreation | WorkerName::StockCompensation => 2,
            _ => 1,
        };
        roles.extend((0..replicas).map(|_| vec!["worker".to_owned(), worker.as_str().to_owned()]));
    }
    roles.push(vec!["gateway".to_owned()]);
    let _procs: Vec<_> = roles
        .iter()
        .map(|args| chorus(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env()))
        .collect();
    let http = reqwest::Client::new();
    assert!(eventually(SETTLE, || healthy(&http, &addr)).await, "the processes never became healthy together");

    let created = gql(&http, &addr, "mutation { createProduct(name: \"Spread\", priceCents: 250, stock: 12) { id } }", json!({})).await;
    let product = created["createProduct"]["id"].as_str().expect("id").to_owned();
    let cart = |quantity: u32| json!({ "input": { "clientId": Uuid::new_v4(), "items": [{ "productId": product, "quantity": quantity }] } });

    let orchestrated = futures::future::join_all((0..5).map(|_| {
        gql(&http, &addr, "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id state } }", cart(1))
    }))
    .await;
    assert!(orchestrated.iter().all(|s| s["checkoutOrchestrated"]["state"] == "COMPLETED"), "{orchestrated:?}");
    let mut choreographed = Vec::new();
    for quantity in [1, 1, 1, 1, 1, 50] {
        let accepted = gql(&http, &addr, "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId } }", cart(quantity)).await;
        choreographed.push(accepted["checkoutChoreographed"]["checkoutId"].as_str().expect("id").to_owned());
    }
    let mut statuses = Vec::new();
    for id in &choreographed {
        let deadline = std::time::Instant::now() + SETTLE;
        let status = loop {
            let status = gql(&http, &addr, "query($id: ID!) { checkout(id: $id) { status } }", json!({ "id": id })).await["checkout"]["status"].clone();
            if !status.is_null() && status != "PENDING" {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "checkout {id} never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == "SUCCEEDED").count(), 5, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&json!("FAILED")), "50 of 12 cannot sell");

    let product_view = gql(&http, &addr, "query($id: ID!) { product(id: $id) { stock reserved } }", json!({ "id": product })).await;
    assert_eq!(product_view["product"], json!({ "stock": 2, "reserved": 0 }), "ten sold of twelve");
}
