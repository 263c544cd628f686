//! The deployment's observability files: every PromQL expression of the
//! Grafana dashboards names metrics the platform exports (and every metric
//! is on a dashboard), and `promtool check config` accepts the Prometheus
//! configuration.

use std::collections::BTreeSet;

use chorus_runtime::metrics::CATALOGUE;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The metric names an expression reads (identifiers that look like ours).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| ["_total", "_seconds", "_messages", "_subscriptions", "_bucket", "_count", "_sum"].iter().any(|s| t.ends_with(s)))
        .map(|t| t.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum").to_owned())
        .collect()
}

#[test]
fn every_dashboard_query_names_an_exported_metric_and_every_metric_is_shown() {
    let dir = format!("{ROOT}/observability/grafana/dashboards");
    let mut shown = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        files += 1;
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("dashboard JSON");
        let mut all = Vec::new();
        exprs(&dashboard, &mut all);
        assert!(!all.is_empty(), "{} has no queries", path.display());
        for expr in all {
            let names = metric_names(&expr);
            assert!(!names.is_empty(), "{}: `{expr}` reads no Chorus metric", path.display());
            for name in names {
                assert!(CATALOGUE.iter().any(|(m, _, _)| *m == name), "{}: `{expr}` reads `{name}`, which Chorus does not export", path.display());
                shown.insert(name);
            }
        }
    }
    assert!(files > 0, "no dashboards under {dir}");
    let missing: Vec<&str> = CATALOGUE.iter().map(|(m, _, _)| *m).filter(|m| !shown.contains(*m)).collect();
    assert!(missing.is_empty(), "metrics on no dashboard: {missing:?}");
}

#[test]
fn promtool_accepts_the_prometheus_configuration() {
    let config = format!("{ROOT}/observability/prometheus.yml");
    let output = std::process::Command::new("promtool")
        .args(["check", "config", &config])
        .output()
        .unwrap_or_else(|e| panic!("promtool is needed (apt-get install prometheus): {e}"));
    assert!(output.status.success(), "{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}
