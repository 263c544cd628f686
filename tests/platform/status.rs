//! `chorus status` and the `platform` query: an operator's one question,
//! answered from the running platform (replicas that answer pings, consumer
//! backlogs, stalled sagas, the outbox, the stream), and for admins only.

use std::time::Duration;

use chorus_gateway::auth::{self, Role};
use serde_json::{Value, json};

use crate::support::{Backend, TestApp, error_code};

const QUERY: &str = "{ platform { natsVersion stream { messages lastSequence } services { name replicas }
    consumers { durable pending ackPending waiting } sagas { stalled outboxPending } problems } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_a_running_platform_with_no_problem() {
    let app = TestApp::start(Backend::Sqlite).await;
    let product = app.create_product("Status lamp", 1_000, 5).await;
    let cart = json!({ "input": { "clientId": uuid::Uuid::new_v4(), "items": [{ "productId": product, "quantity": 1 }] } });
    let saga = app.gql_ok("mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { state } }", cart).await;
    assert_eq!(saga["checkoutOrchestrated"]["state"], "COMPLETED");

    // Workers pull in long polls; between two there can be a moment with
    // none waiting, so the report is read until it settles.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let last = loop {
        let report = app.gql_ok(QUERY, json!({})).await["platform"].take();
        if report["problems"].as_array().is_some_and(Vec::is_empty) || std::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last["problems"], json!([]), "problems on a healthy platform: {last:#}");
    assert!(last["natsVersion"].as_str().is_some_and(|v| v.starts_with('2')), "{last:#}");
    assert!(last["stream"]["messages"].as_i64().is_some_and(|n| n >= 7), "a checkout's events are stored: {last:#}");
    let replicas = |name: &str| last["services"].as_array().and_then(|s| s.iter().find(|s| s["name"] == name)).map(|s| s["replicas"].clone());
    for service in ["catalogue", "inventory", "orders", "orchestrator"] {
        assert_eq!(replicas(service), Some(json!(1)), "{service}: {last:#}");
    }
    let durables: Vec<&str> = last["consumers"].as_array().expect("consumers").iter().filter_map(|c| c["durable"].as_str()).collect();
    for durable in ["choreo-audit", "choreo-compensation", "choreo-cqrs", "choreo-notification", "choreo-order", "choreo-reservation", "choreo-stall"] {
        assert!(durables.contains(&durable), "{durable} missing from {durables:?}");
    }
    assert_eq!(last["sagas"], json!({ "stalled": 0, "outboxPending": 0 }));

    // The command line says the same, as JSON, and exits 0.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["status", "--json", "--url", &format!("http://{}", app.addr)])
        .output()
        .await
        .expect("chorus status runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(report["stream"]["lastSequence"].as_i64().map(|n| n >= 7), Some(true), "{report:#}");
    // Exit 0 exactly when the report found no problem.
    assert_eq!(output.status.success(), report["problems"].as_array().is_some_and(Vec::is_empty), "{report:#}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_may_ask_and_the_table_names_every_part() {
    const SECRET: &str = "test-secret-for-chorus";
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_JWT_SECRET", SECRET)], false).await;
    let client = auth::issue(SECRET, &uuid::Uuid::new_v4().to_string(), Role::Client, Duration::from_secs(600)).expect("token");
    let refused = app.gql_as(Some(&client), QUERY, json!({})).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");

    let admin = auth::issue(SECRET, "ops", Role::Admin, Duration::from_secs(600)).expect("token");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["status", "--url", &format!("http://{}", app.addr), "--token", &admin])
        .output()
        .await
        .expect("chorus status runs");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("choreo-reservation") && table.contains("orchestrator"), "{table}");
    app.stop().await;
}
