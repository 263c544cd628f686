//! The GraphQL over HTTP conformance audit (npm `graphql-http`'s
//! `auditServer`, run by node from `tests/http-audit/`) against the real
//! gateway: on the no-auth default and with auth on (an admin token on
//! every request). Every MUST passes, and at least 20 of the 23 SHOULDs.
//!
//! Needs Node.js and `npm ci --prefix tests/http-audit` (the README's test
//! command installs both); without them the test fails saying so.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::support::{Backend, TestApp, node};

/// Far more than the audit takes (about a second).
const AUDIT_LIMIT: Duration = Duration::from_secs(60);
/// Of the 23 SHOULD audits, at least this many pass (the issue's bar).
const SHOULD_AT_LEAST: usize = 20;

#[derive(Debug, Deserialize)]
struct Audit {
    name: String,
    level: String,
    status: String,
    reason: Option<String>,
}

async fn audit(app: &TestApp, authorization: Option<&str>) -> Vec<Audit> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/http-audit");
    assert!(
        dir.join("node_modules/graphql-http").is_dir(),
        "the audit needs its packages: npm ci --prefix tests/http-audit (./scripts/test.sh does it)"
    );
    let mut args = vec![format!("http://{}/graphql", app.addr)];
    args.extend(authorization.map(str::to_owned));
    let output = node(&dir.join("audit.mjs"), &args, &[], AUDIT_LIMIT).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "audit.mjs failed ({}):\n{stderr}", output.status);
    let audits: Vec<Audit> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not an audit line ({e}): {line}")))
        .collect();
    assert!(audits.len() > 50, "the audit ran {} checks:\n{stderr}", audits.len());
    audits
}

fn assert_conformant(audits: &[Audit], label: &str) {
    let failed = |level: &str| -> Vec<String> {
        audits
            .iter()
            .filter(|a| a.level == level && a.status != "ok")
            .map(|a| format!("{} ({}): {}", a.name, a.status, a.reason.as_deref().unwrap_or_default()))
            .collect()
    };
    let must = failed("MUST");
    assert!(must.is_empty(), "{label}: MUST audits failed:\n{}", must.join("\n"));
    let should = audits.iter().filter(|a| a.level == "SHOULD").count();
    let should_failed = failed("SHOULD");
    eprintln!("{label}: SHOULD {}/{should} passed; not passed: {should_failed:?}", should - should_failed.len());
    assert!(
        should - should_failed.len() >= SHOULD_AT_LEAST,
        "{label}: only {} of {should} SHOULD audits passed:\n{}",
        should - should_failed.len(),
        should_failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_the_graphql_over_http_audit() {
    let app = TestApp::start_with(Backend::Sqlite, &[], false).await;
    assert_conformant(&audit(&app, None).await, "no auth");
    app.stop().await;

    const SECRET: &str = "audit-secret";
    let app = TestApp::start_with(Backend::Sqlite, &[("CHORUS_JWT_SECRET", SECRET)], false).await;
    let token = chorus_gateway::auth::issue(SECRET, "auditor", chorus_gateway::auth::Role::Admin, Duration::from_secs(600)).expect("token");
    assert_conformant(&audit(&app, Some(&format!("Bearer {token}"))).await, "auth, admin token");
    app.stop().await;
}
