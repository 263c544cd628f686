//! One checkout is one trace: the trace a client starts (its `traceparent`
//! header) is on every event of its checkout, in either pattern, and on
//! every log line about it, in a real `chorus up` process writing JSON logs;
//! with `OTEL_EXPORTER_OTLP_ENDPOINT` set, its spans are exported over OTLP.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use chorus_runtime::{nats_server::free_port, trace::TraceParent};
use serde_json::{Value, json};

use crate::{lifecycle::healthy, support::eventually};

async fn gql(http: &reqwest::Client, addr: &str, trace: Option<&TraceParent>, query: &str, variables: Value) -> Value {
    let mut request = http.post(format!("http://{addr}/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(trace) = trace {
        request = request.header("traceparent", trace.to_string());
    }
    let body: Value = request.send().await.expect("answered").json().await.expect("json");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// A release-like `chorus up --no-seed` in `dir`, with nothing of the
/// test's environment but `PATH` and `env`; returns once it is healthy.
async fn up(dir: &std::path::Path, addr: &str, env: &[(&str, String)], stderr: Stdio) -> (std::process::Child, reqwest::Client) {
    let chorus = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["up", "--no-seed"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CHORUS_DATA_DIR", dir.join("data"))
        .env("GATEWAY_ADDR", addr)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("chorus up");
    let http = reqwest::Client::new();
    assert!(eventually(Duration::from_secs(60), || healthy(&http, addr)).await, "chorus up never became healthy");
    (chorus, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_trace_across_events_and_log_lines_in_both_patterns() {
    let data = tempfile::tempdir().expect("temp dir");
    let log_path = data.path().join("chorus.log");
    let addr = format!("127.0.0.1:{}", free_port().expect("port"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let env = [
        ("CHORUS_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info,chorus_workers=debug,chorus_orchestrator=debug,sqlx=warn,async_nats=warn".to_owned()),
    ];
    let (mut chorus, http) = up(data.path(), &addr, &env, Stdio::from(log)).await;

    let created = gql(&http, &addr, None, "mutation { createProduct(name: \"Traced\", priceCents: 100, stock: 5) { id } }", json!({})).await;
    let product = created["createProduct"]["id"].as_str().expect("id").to_owned();
    let cart = |quantity: u32| json!({ "input": { "clientId": uuid::Uuid::new_v4(), "items": [{ "productId": product, "quantity": quantity }] } });
    let mut checkouts = Vec::new();
    for quantity in [1, 9] {
        let trace = TraceParent::new_root();
        let saga = gql(&http, &addr, Some(&trace), "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id } }", cart(quantity)).await;
        checkouts.push((saga["checkoutOrchestrated"]["id"].as_str().expect("id").to_owned(), trace));
        let trace = TraceParent::new_root();
        let accepted = gql(&http, &addr, Some(&trace), "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId } }", cart(quantity)).await;
        checkouts.push((accepted["checkoutChoreographed"]["checkoutId"].as_str().expect("id").to_owned(), trace));
    }
    for (id, trace) in &checkouts {
        let ended = eventually(Duration::from_secs(30), || async {
            gql(&http, &addr, None, "query($id: ID!) { checkout(id: $id) { status } }", json!({ "id": id })).await["checkout"]["status"] != "PENDING"
        })
        .await;
        assert!(ended, "checkout {id} never ended");
        // Let the terminal transition and the workers' last acks land.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let events = gql(&http, &addr, None, "query($id: ID!) { checkoutEvents(checkoutId: $id) { type traceparent } }", json!({ "id": id })).await;
        let events = events["checkoutEvents"].as_array().expect("events").clone();
        assert!(events.len() >= 3, "{events:?}");
        for event in &events {
            let carried = event["traceparent"].as_str().and_then(TraceParent::parse).expect("a traceparent on every event");
            assert_eq!(carried.trace_id(), trace.trace_id(), "event {} of {id} left the trace", event["type"]);
        }
    }
    Command::new("kill").args(["-s", "TERM", &chorus.id().to_string()]).status().expect("kill");
    chorus.wait().expect("exited");

    let log = std::fs::read_to_string(&log_path).expect("log");
    for (id, trace) in &checkouts {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(id.as_str())).collect();
        assert!(lines.len() >= 2, "hardly a line about {id}:\n{log}");
        for line in lines {
            let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(line.contains(&trace.trace_id()), "a line about {id} without its trace id {}: {parsed}", trace.trace_id());
            assert!(line.contains("checkout_id"), "a line about {id} without checkout_id: {parsed}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_when_a_collector_is_set() {
    // A stand-in collector: it keeps what is posted to /v1/traces.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&body);
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let collector_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let data = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port().expect("port"));
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector_addr}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        // Spans are exported whatever the log filter keeps.
        ("RUST_LOG", "warn".to_owned()),
    ];
    let (mut chorus, http) = up(data.path(), &addr, &env, Stdio::null()).await;
    let created = gql(&http, &addr, None, "mutation { createProduct(name: \"Exported\", priceCents: 100, stock: 5) { id } }", json!({})).await;
    let product = created["createProduct"]["id"].as_str().expect("id").to_owned();
    let cart = json!({ "input": { "clientId": uuid::Uuid::new_v4(), "items": [{ "productId": product, "quantity": 1 }] } });
    let (orchestrated, choreographed) = (TraceParent::new_root(), TraceParent::new_root());
    gql(&http, &addr, Some(&orchestrated), "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id } }", cart.clone()).await;
    let accepted = gql(&http, &addr, Some(&choreographed), "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId } }", cart).await;
    let id = accepted["checkoutChoreographed"]["checkoutId"].as_str().expect("id").to_owned();
    let ended = eventually(Duration::from_secs(30), || async {
        gql(&http, &addr, None, "query($id: ID!) { checkout(id: $id) { status } }", json!({ "id": id })).await["checkout"]["status"] == "SUCCEEDED"
    })
    .await;
    assert!(ended);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Command::new("kill").args(["-s", "TERM", &chorus.id().to_string()]).status().expect("kill");
    chorus.wait().expect("exited");

    let bytes = received.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for trace in [&orchestrated, &choreographed] {
        let raw = u128::from_str_radix(&trace.trace_id(), 16).expect("hex").to_be_bytes();
        assert!(contains(&raw), "no exported span of trace {}", trace.trace_id());
    }
    for name in ["checkout", "service_request", "saga_steps", "event"] {
        assert!(contains(name.as_bytes()), "no span named {name} was exported");
    }
}
