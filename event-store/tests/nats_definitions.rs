//! `nats/*.json` (the `nats` CLI's format) says what Chorus provisions; this
//! test fails when the two drift apart.

use async_nats::jetstream::stream::Config;
use chorus_event_store::EventStore;
use chorus_runtime::nats_server::NatsServer;

fn definition(name: &str) -> Config {
    let path = format!("{}/../nats/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_same(file: &Config, live: &Config) {
    assert_eq!(file.name, live.name);
    assert_eq!(file.description, live.description, "{}", file.name);
    assert_eq!(file.subjects, live.subjects, "{}", file.name);
    assert_eq!(file.retention, live.retention, "{}", file.name);
    assert_eq!(file.storage, live.storage, "{}", file.name);
    assert_eq!(file.discard, live.discard, "{}", file.name);
    assert_eq!(file.max_age, live.max_age, "{}", file.name);
    assert_eq!(file.max_messages_per_subject, live.max_messages_per_subject, "{}", file.name);
    assert_eq!(file.duplicate_window, live.duplicate_window, "{}", file.name);
    assert_eq!(file.allow_direct, live.allow_direct, "{}", file.name);
    assert_eq!(file.allow_rollup, live.allow_rollup, "{}", file.name);
    assert_eq!(file.deny_delete, live.deny_delete, "{}", file.name);
    assert_eq!(file.num_replicas, live.num_replicas, "{}", file.name);
}

#[tokio::test]
async fn the_nats_folder_matches_what_chorus_provisions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = NatsServer::start("nats-server", &dir.path().join("nats")).expect("nats-server");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let events = EventStore::provision(client.clone(), 1).await.expect("provision");
    chorus_event_store::Projections::provision(events.jetstream().clone(), 1).await.expect("provision read models");
    let js = async_nats::jetstream::new(client);
    for name in ["CHECKOUT_EVENTS", "KV_CHECKOUTS", "KV_ORDERS_BY_CLIENT"] {
        let live = js.get_stream(name).await.expect("provisioned").cached_info().config.clone();
        assert_same(&definition(name), &live);
    }
}
