//! The short version of every `chorus chaos` scenario: a platform of
//! separate processes is broken under load, then checked from outside. Each
//! scenario is its own test so that each stays well inside the time limit.

use std::process::Command;

use serde_json::Value;

use crate::support::{Backend, TestDatabases, skip_postgres};

const BIN: &str = env!("CARGO_BIN_EXE_chorus");

/// Runs one scenario briefly and checks the report it writes.
fn scenario(name: &str) {
    scenario_with(name, &[]);
}

fn scenario_with(name: &str, env: &[(&str, String)]) {
    scenario_on(name, env, 1);
}

/// `scenario_with` on `nats_nodes` NATS nodes (`--nats-cluster`).
fn scenario_on(name: &str, env: &[(&str, String)], nats_nodes: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("chaos.json");
    let out = Command::new(BIN)
        .args(["chaos", "--scenario", name, "--duration", "5", "--clients", "4", "--settle", "60", "--json"])
        .arg(&json)
        .args(["--nats-cluster", &nats_nodes.to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("NATS_URL")
        .env("CHORUS_DATA_DIR", dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("chorus chaos runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chaos {name} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("| {name} |")), "the table is printed: {stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(report["passed"], true, "{report:#}");
    let runs = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(runs.len(), 1, "{report:#}");
    let run = &runs[0];
    let n = |k: &str| run[k].as_u64().unwrap_or_else(|| panic!("{k} in {run:#}"));
    assert_eq!(run["scenario"], name);
    assert_eq!(n("lost"), 0, "{run:#}");
    assert!(n("faults_injected") > 0, "the scenario broke something: {run:#}");
    assert!(n("accepted") > 0 && n("completed") > 0, "checkouts went through: {run:#}");
    // Scarce stock and invalid carts: both failure paths were exercised.
    assert!(n("compensated") > 0 && n("invalid_refused") > 0, "{run:#}");
    assert_eq!(n("completed") + n("compensated"), n("accepted"), "{run:#}");
    let invariants = run["invariants"].as_array().expect("invariants");
    assert!(invariants.len() >= 8, "{run:#}");
    for invariant in invariants {
        assert_eq!(invariant["ok"], true, "{invariant:#}");
    }
}

#[test]
fn an_orchestrator_replica_killed_loses_nothing() {
    scenario("kill-orchestrator");
}

#[test]
fn workers_killed_lose_nothing() {
    scenario("kill-workers");
}

#[test]
fn services_killed_lose_nothing() {
    scenario("kill-services");
}

#[test]
fn a_nats_restart_loses_nothing() {
    scenario("restart-nats");
}

#[test]
fn service_faults_lose_nothing() {
    scenario("faults");
}

#[test]
fn duplicate_deliveries_change_nothing_twice() {
    scenario("duplicates");
}

#[test]
fn a_gateway_restart_leaves_no_gap_in_subscriptions() {
    scenario("restart-gateway");
}

#[test]
fn all_of_nats_down_loses_nothing() {
    scenario("nats-outage");
}

#[test]
fn a_frozen_orchestrator_drives_nothing_it_lost() {
    scenario("pause-orchestrator");
}

#[test]
fn killing_the_nats_leader_of_a_cluster_loses_nothing() {
    scenario_on("kill-nats-leader", &[], 3);
}

#[test]
fn cluster_scenarios_need_a_cluster() {
    let out = Command::new(BIN).args(["chaos", "--scenario", "pause-nats-node"]).output().expect("chorus chaos runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nats-cluster 3"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_loses_nothing() {
    if skip_postgres() {
        return;
    }
    let data = tempfile::tempdir().expect("temp dir");
    let dbs = TestDatabases::create(Backend::Postgres, data.path()).await;
    let vars: Vec<(&str, String)> = dbs.vars();
    tokio::task::spawn_blocking(move || scenario_with("db-outage", &vars)).await.expect("the scenario ran");
}

#[test]
fn a_database_outage_needs_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .args(["chaos", "--scenario", "db-outage"])
        .env("CHORUS_DATA_DIR", dir.path())
        .env_remove("INVENTORY_DATABASE_URL")
        .output()
        .expect("chorus chaos runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Postgres"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    let out = Command::new(BIN).args(["chaos", "--duration", "0"]).output().expect("chorus chaos runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN).args(["chaos", "--scenario", "meteor"]).output().expect("chorus chaos runs");
    assert!(!out.status.success());
}
