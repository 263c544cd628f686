//! The container deployment's files, checked without Docker: the compose
//! file parses and has every role (two replicas of the orchestrator and of
//! each worker) on one image, each service knows only its own database,
//! Prometheus scrapes every role, the NATS cluster configs are valid for
//! `nats-server`, and the image is multi-stage.

use std::collections::BTreeSet;

use chorus_workers::WorkerName;
use serde_norway::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    let mut value: Value = serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    value.apply_merge().unwrap_or_else(|e| panic!("{path}: {e}"));
    value
}

#[test]
fn the_compose_file_runs_every_role_on_one_image_with_its_own_database() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect();
    let mut roles = vec!["gateway".to_owned(), "catalogue".into(), "inventory".into(), "orders".into(), "orchestrator".into()];
    roles.extend(WorkerName::ALL.iter().map(|w| format!("worker-{w}")));
    for needed in roles.iter().map(String::as_str).chain(["nats-1", "nats-2", "nats-3", "postgres", "prometheus", "grafana", "jaeger"]) {
        assert!(names.contains(needed), "docker-compose.yml has no service {needed}");
    }
    for role in &roles {
        let service = &compose["services"][role.as_str()];
        assert_eq!(service["image"].as_str(), Some("chorus:latest"), "{role} runs the one Chorus image");
        let env = &service["environment"];
        assert_eq!(env["CHORUS_STREAM_REPLICAS"].as_str(), Some("3"), "{role}: the stream at R3");
        let urls: Vec<&str> = env.as_mapping().expect("env").keys().filter_map(|k| k.as_str()).filter(|k| k.ends_with("_DATABASE_URL")).collect();
        let own = match role.as_str() {
            "catalogue" | "inventory" | "orders" | "orchestrator" => vec![format!("{}_DATABASE_URL", role.to_uppercase())],
            "worker-audit" => vec!["AUDIT_DATABASE_URL".to_owned()],
            _ => Vec::new(),
        };
        assert_eq!(urls, own, "{role} knows only its own database");
        let command: Vec<&str> = service["command"].as_sequence().expect("command").iter().filter_map(|c| c.as_str()).collect();
        let expected: Vec<String> = match role.strip_prefix("worker-") {
            Some(worker) => vec!["worker".into(), worker.into()],
            None if role == "gateway" => vec!["gateway".into()],
            None => vec!["service".into(), role.clone()],
        };
        assert_eq!(command, expected, "{role}'s command");
        let replicas = service["deploy"]["replicas"].as_u64().unwrap_or(1);
        if role == "orchestrator" || role.starts_with("worker-") {
            assert_eq!(replicas, 2, "{role} runs two replicas");
        }
    }
    let init = read("deploy/postgres/init.sql");
    for db in ["catalogue", "inventory", "orders", "orchestrator", "audit"] {
        assert!(init.contains(&format!("CREATE DATABASE {db} OWNER {db};")), "init.sql: database {db}");
        assert!(init.contains(&format!("GRANT CONNECT ON DATABASE {db} TO {db};")), "init.sql: user {db}");
    }
    assert!(init.contains("FROM PUBLIC"), "init.sql revokes the default access");

    // Prometheus scrapes every Chorus role, by its compose name.
    let prometheus = yaml("observability/prometheus.yml");
    let scraped: BTreeSet<String> = prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| job["dns_sd_configs"].as_sequence().cloned().unwrap_or_default())
        .flat_map(|sd| sd["names"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert_eq!(scraped, roles.iter().cloned().collect::<BTreeSet<_>>(), "Prometheus scrapes exactly the Chorus roles");

    let dockerfile = read("Dockerfile");
    assert_eq!(dockerfile.lines().filter(|l| l.starts_with("FROM ")).count(), 2, "a multi-stage Dockerfile");
}

#[test]
fn the_nats_cluster_configs_are_valid_for_nats_server() {
    for node in 1..=3 {
        let path = format!("{ROOT}/nats/cluster/nats-{node}.conf");
        let output = std::process::Command::new("nats-server").args(["-c", &path, "-t"]).output().expect("nats-server runs");
        assert!(output.status.success(), "{path}: {}", String::from_utf8_lossy(&output.stderr));
        let text = read(&format!("nats/cluster/nats-{node}.conf"));
        assert_eq!(text.matches("nats-route://").count(), 3, "{path} routes to every node");
        assert!(text.contains(&format!("server_name: nats-{node}")));
    }
}
