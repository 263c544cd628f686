//! Both patterns on a real three-node JetStream cluster (the stream, the
//! buckets and every consumer at R3) through the faults a cluster has: its
//! stream leader killed, a rolling restart of every node, a node frozen
//! (SIGSTOP) for longer than an election, every node down at once. Checked as a user would: every
//! checkout answered ends, its events are in the store (the orchestrator's
//! outbox drains to empty), the read model agrees, and stock is conserved.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use chorus_contracts::inventory::Levels;
use chorus_event_store::EventPayload;
use chorus_runtime::nats_cluster::NatsCluster;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::support::{Backend, TestDatabases, eventually, launch, skip_postgres};

const STOCK: i64 = 100_000;
const ORCHESTRATED: &str = "mutation($input: CheckoutInput!) { checkoutOrchestrated(input: $input) { id state } }";
const CHOREOGRAPHED: &str = "mutation($input: CheckoutInput!) { checkoutChoreographed(input: $input) { checkoutId } }";

#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    RollingRestart,
    PauseNode,
    /// Every node down at once, with checkouts in flight.
    Outage,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_stream_leader_loses_nothing_sqlite() {
    through(Backend::Sqlite, Fault::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_stream_leader_loses_nothing_postgres() {
    if skip_postgres() {
        return;
    }
    through(Backend::Postgres, Fault::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_node_loses_nothing() {
    through(Backend::Sqlite, Fault::RollingRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_frozen_past_an_election_loses_nothing() {
    through(Backend::Sqlite, Fault::PauseNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_of_nats_down_for_fifteen_seconds_loses_nothing() {
    through(Backend::Sqlite, Fault::Outage).await;
}

/// What the clients saw: each checkout's id, pattern and when it was answered.
#[derive(Default)]
struct Seen {
    orchestrated: Vec<(Uuid, String, Instant)>,
    choreographed: Vec<(Uuid, Instant)>,
}

async fn through(backend: Backend, fault: Fault) {
    let nats_dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = NatsCluster::start("nats-server", nats_dir.path(), 3).expect("three nats-servers start");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let dbs = TestDatabases::create(backend, data_dir.path()).await;
    let extra = [("CHORUS_STREAM_REPLICAS", "3"), ("CHORUS_STEP_BACKOFF", "50ms"), ("CHORUS_SERVICE_TIMEOUT", "2s")];
    let platform = launch(&cluster.urls(), &dbs, data_dir.path(), &extra, false, &[]).await;
    let url = format!("http://{}/graphql", platform.gateway_addr.expect("gateway"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(150)).build().expect("http client");

    let created = gql(&http, &url, "mutation($s: Int!) { createProduct(name: \"Kettle\", priceCents: 900, stock: $s) { id } }", json!({ "s": STOCK })).await;
    let product: Uuid = created["data"]["createProduct"]["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{created}"));

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients: Vec<_> = (0..4)
        .map(|c| tokio::spawn(client(http.clone(), url.clone(), product, c % 2 == 0, stop.clone(), seen.clone())))
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = || async {
        let info = platform.events.stream().get_info().await.expect("stream info");
        let name = info.cluster.and_then(|c| c.leader).expect("the stream has a leader");
        cluster.index_of(&name).expect("a node of ours")
    };
    let fault_started = Instant::now();
    let fault_over = match fault {
        Fault::KillLeader => {
            let i = leader().await;
            cluster.node(i).kill();
            tokio::time::sleep(Duration::from_secs(10)).await;
            let over = Instant::now();
            cluster.node(i).start_again().expect("the node comes back");
            over
        }
        Fault::RollingRestart => {
            for i in 0..cluster.len() {
                cluster.node(i).stop();
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.node(i).start_again().expect("the node comes back");
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            Instant::now()
        }
        Fault::Outage => {
            for i in 0..cluster.len() {
                cluster.node(i).kill();
            }
            tokio::time::sleep(Duration::from_secs(15)).await;
            for i in 0..cluster.len() {
                cluster.node(i).start_again().expect("the node comes back");
            }
            Instant::now()
        }
        Fault::PauseNode => {
            let i = leader().await;
            cluster.node(i).pause();
            tokio::time::sleep(Duration::from_secs(8)).await;
            cluster.node(i).resume();
            Instant::now()
        }
    };
    // A cluster that was all down re-forms and elects its leaders first.
    let after = if matches!(fault, Fault::Outage) { 20 } else { 5 };
    tokio::time::sleep(Duration::from_secs(after)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("a client ran to the end");
    }

    let seen = seen.lock().await;
    let first_after = |at: &mut dyn Iterator<Item = Instant>| at.filter(|t| *t > fault_started).min().map(|t| t - fault_started);
    eprintln!(
        "{fault:?} on {backend:?}: {} orchestrated ({} completed), {} choreographed; first answers after the fault began: orchestrated {:?}, choreographed {:?}",
        seen.orchestrated.len(),
        seen.orchestrated.iter().filter(|(_, s, _)| s == "COMPLETED").count(),
        seen.choreographed.len(),
        first_after(&mut seen.orchestrated.iter().filter(|(_, s, _)| s == "COMPLETED").map(|(_, _, t)| *t)),
        first_after(&mut seen.choreographed.iter().map(|(_, t)| *t)),
    );
    assert!(!seen.orchestrated.is_empty() && !seen.choreographed.is_empty(), "both patterns ran");
    assert!(
        seen.orchestrated.iter().any(|(_, state, at)| state == "COMPLETED" && *at > fault_over)
            && seen.choreographed.iter().any(|(_, at)| *at > fault_over),
        "checkouts of both patterns went through after the fault"
    );

    // The outbox drains: every event a saga write implied is in the store.
    let orchestrator_db = dbs.urls.iter().find(|(s, _)| *s == "ORCHESTRATOR").expect("orchestrator db").1.clone();
    let db = sea_orm::Database::connect(orchestrator_db.as_str()).await.expect("orchestrator db");
    let drained = eventually(Duration::from_secs(60), || async {
        chorus_orchestrator::outbox::pending_count(&db).await.is_ok_and(|n| n == 0)
    })
    .await;
    assert!(drained, "the outbox never drained");

    let mut sold = 0;
    for (id, state, _) in &seen.orchestrated {
        let events = platform.events.read_checkout((*id).into()).await.expect("events");
        let types: Vec<&str> = events.iter().map(|e| e.envelope.event_type().as_str()).collect();
        let outcome = if state == "COMPLETED" { "CheckoutSucceeded" } else { "CheckoutFailed" };
        assert!(types.first() == Some(&"CheckoutInitiated") && types.contains(&outcome), "saga {id} {state}: {types:?}");
        assert!(
            matches!(events.last().map(|e| &e.envelope.payload), Some(EventPayload::SagaTransitioned { to, .. }) if to.as_str() == state),
            "saga {id} {state}: {types:?}"
        );
        sold += i64::from(state == "COMPLETED");
        let view = read_model(&http, &url, *id, if state == "COMPLETED" { "SUCCEEDED" } else { "FAILED" }).await;
        assert!(view, "the read model of saga {id} does not say {state}");
    }
    for (id, _) in &seen.choreographed {
        let ending = || async {
            let events = platform.events.read_checkout((*id).into()).await.unwrap_or_default();
            events.iter().find(|e| e.envelope.payload.is_terminal()).map(|e| e.envelope.event_type().as_str() == "CheckoutSucceeded")
        };
        let done = eventually(Duration::from_secs(60), || async { ending().await.is_some() }).await;
        assert!(done, "choreographed checkout {id} never ended");
        let succeeded = ending().await == Some(true);
        sold += i64::from(succeeded);
        assert!(read_model(&http, &url, *id, if succeeded { "SUCCEEDED" } else { "FAILED" }).await, "read model of {id}");
    }

    // Stock is conserved, nothing is left reserved, and sold is what succeeded.
    let settled = eventually(Duration::from_secs(30), || async {
        let levels = platform.services.call(&Levels { product_ids: Some(vec![product.into()]) }).await;
        levels.ok().and_then(|l| l.into_iter().next()).is_some_and(|l| l.reserved == 0)
    })
    .await;
    let level = platform.services.call(&Levels { product_ids: Some(vec![product.into()]) }).await.expect("levels");
    let level = level.into_iter().next().expect("a level");
    assert!(settled, "stock left reserved: {level:?}");
    assert_eq!(level.available + level.reserved + level.sold, STOCK, "{level:?}");
    assert_eq!(level.sold, sold, "{level:?}");
    platform.stop().await;
}

/// One client: checkouts of one pattern, one after the other, until told
/// to stop. A `SERVICE_UNAVAILABLE` or `TIMEOUT` is retried with the same
/// idempotency key, as a client should; any other error fails the test.
async fn client(http: reqwest::Client, url: String, product: Uuid, orchestrated: bool, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let client_id = Uuid::new_v4();
    while !stop.load(Ordering::SeqCst) {
        let key = Uuid::new_v4().to_string();
        let input = json!({ "input": { "clientId": client_id, "items": [{ "productId": product, "quantity": 1 }], "idempotencyKey": key } });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let body = gql(&http, &url, if orchestrated { ORCHESTRATED } else { CHOREOGRAPHED }, input.clone()).await;
            let code = body["errors"][0]["extensions"]["code"].as_str();
            if matches!(code, Some("SERVICE_UNAVAILABLE" | "TIMEOUT")) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            assert!(body.get("errors").is_none(), "a checkout failed with an error a client cannot act on: {body}");
            let mut seen = seen.lock().await;
            if orchestrated {
                let saga = &body["data"]["checkoutOrchestrated"];
                let id = saga["id"].as_str().and_then(|s| s.parse().ok()).expect("saga id");
                let state = saga["state"].as_str().expect("state").to_owned();
                assert!(state == "COMPLETED" || state == "CANCELLED", "answered before its end: {body}");
                seen.orchestrated.push((id, state, Instant::now()));
            } else {
                let id = body["data"]["checkoutChoreographed"]["checkoutId"].as_str().and_then(|s| s.parse().ok()).expect("id");
                seen.choreographed.push((id, Instant::now()));
            }
            break;
        }
    }
}

async fn gql(http: &reqwest::Client, url: &str, query: &str, variables: Value) -> Value {
    for _ in 0..3 {
        if let Ok(response) = http.post(url).json(&json!({ "query": query, "variables": variables })).send().await
            && let Ok(body) = response.json::<Value>().await
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the gateway did not answer");
}

/// Whether `checkout(id)` comes to say `status`.
async fn read_model(http: &reqwest::Client, url: &str, id: Uuid, status: &str) -> bool {
    eventually(Duration::from_secs(30), || async {
        let body = gql(http, url, "query($id: ID!) { checkout(id: $id) { status } }", json!({ "id": id })).await;
        body["data"]["checkout"]["status"] == status
    })
    .await
}
