//! `/metrics` after a checkout of each pattern: every name of DESIGN §5
//! with its label set, a HELP line for each, and `promtool check metrics`
//! (Debian's `prometheus` package) finds nothing to complain about.

use std::{collections::BTreeSet, io::Write, process::Stdio};

use chorus_runtime::metrics::CATALOGUE;
use chorus_workers::WorkerName;
use serde_json::json;
use uuid::Uuid;

use crate::{
    choreographed::{checkout, consumers_idle, terminal},
    support::{Backend, TestApp, eventually},
};

/// The label names each metric carries (histograms: on `_count`).
const LABELS: &[(&str, &[&str])] = &[
    ("saga_started_total", &[]),
    ("saga_completed_total", &[]),
    ("saga_failed_total", &["reason", "step"]),
    ("db_statements_total", &["db"]),
    ("saga_execution_duration_seconds", &[]),
    ("external_service_call_duration_seconds", &["service"]),
    ("events_published_total", &["topic", "type"]),
    ("events_consumed_total", &["consumer", "topic", "type"]),
    ("event_latency_seconds", &["topic", "type"]),
    ("saga_choreo_success_total", &["source"]),
    ("saga_choreo_failed_total", &["source"]),
    ("saga_choreo_duration_seconds", &["outcome"]),
    ("consumer_lag_messages", &["consumer"]),
    ("consumer_ack_pending_messages", &["consumer"]),
];

/// The label names of every sample of `name` (for a histogram, of `name_count`).
fn label_sets(text: &str, name: &str) -> Vec<BTreeSet<String>> {
    let count = format!("{name}_count");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, _) = l.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{').map_or((series, ""), |(m, rest)| (m, rest.trim_end_matches('}')));
            (metric == name || metric == count).then(|| {
                labels.split(',').filter(|kv| !kv.is_empty()).filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned())).collect()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_exported_with_its_labels_and_promtool_accepts_them() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    let product = app.create_product("Metered", 100, 2).await;
    for quantity in [1, 9] {
        let input = json!({ "input": { "clientId": Uuid::new_v4(), "items": [{ "productId": product, "quantity": quantity }] } });
        app.gql_ok("mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { state } }", input).await;
        let id = checkout(&app, Uuid::new_v4(), &[(product, quantity)]).await;
        terminal(&app, id).await;
    }
    let all = [WorkerName::Audit, WorkerName::CqrsProjection, WorkerName::Notification, WorkerName::OrderCreation];
    assert!(eventually(std::time::Duration::from_secs(30), || consumers_idle(&app, &all)).await);
    // Lag gauges are sampled every few seconds: wait for the first sample of each.
    let text = loop {
        let text = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics").text().await.expect("text");
        if WorkerName::ALL.iter().all(|w| text.contains(&format!("consumer_lag_messages{{consumer=\"{}\"}}", w.durable()))) {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };

    for (name, labels) in LABELS {
        let expected: BTreeSet<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        let sets = label_sets(&text, name);
        assert!(!sets.is_empty(), "{name} is not exported:\n{text}");
        assert!(sets.iter().all(|s| *s == expected), "{name} has labels {sets:?}, expected {expected:?}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP line");
    }
    assert!(text.contains("saga_execution_duration_seconds_bucket{le=\"0.005\"}"), "histograms resolve milliseconds");
    assert!(LABELS.iter().all(|(name, _)| CATALOGUE.iter().any(|(c, _, _)| c == name)));

    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool is needed (apt-get install prometheus): {e}"));
    let mut promtool = promtool;
    promtool.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let output = promtool.wait_with_output().expect("promtool ran");
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
}
