//! `nats/consumers/*.json` (the `nats` CLI's format, for
//! `nats consumer add CHECKOUT_EVENTS --config …`) says what each worker's
//! durable consumer is; this test fails when they drift from the code.
//! `CHORUS_TEST_WRITE_DEFS=1` rewrites the files from what the server reports.

use std::time::Duration;

use async_nats::jetstream::consumer::Config;
use chorus_event_store::EventStore;
use chorus_runtime::nats_server::NatsServer;
use chorus_workers::{WorkerName, consumer::consumer_config};

/// The defaults of `CHORUS_STEP_ATTEMPTS`, `CHORUS_ACK_WAIT` and `CHORUS_STALL_DEADLINE`.
const ATTEMPTS: u32 = 3;
const ACK_WAIT: Duration = Duration::from_secs(10);
const STALL_DEADLINE: Duration = Duration::from_secs(30);

fn path(worker: WorkerName) -> String {
    format!("{}/../nats/consumers/{}.json", env!("CARGO_MANIFEST_DIR"), worker.durable())
}

#[tokio::test]
async fn the_nats_folder_matches_the_workers_consumers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = NatsServer::start("nats-server", &dir.path().join("nats")).expect("nats-server");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let events = EventStore::provision(client, 1).await.expect("provision");
    let write = std::env::var("CHORUS_TEST_WRITE_DEFS").as_deref() == Ok("1");
    for &worker in WorkerName::ALL {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            events.stream().create_consumer(consumer_config(worker, ATTEMPTS, ACK_WAIT, STALL_DEADLINE)).await.expect("consumer");
        let mut live: Config = consumer.info().await.expect("info").config.clone();
        // The server's own notes (its version), not ours to pin.
        live.metadata.retain(|k, _| !k.starts_with("_nats"));
        if write {
            let text = serde_json::to_string_pretty(&live).expect("json") + "\n";
            std::fs::write(path(worker), text).expect("write");
            continue;
        }
        let text = std::fs::read_to_string(path(worker)).unwrap_or_else(|e| panic!("{}: {e}", path(worker)));
        let file: Config = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path(worker)));
        let name = worker.durable();
        assert_eq!(file.durable_name, live.durable_name, "{name}");
        assert_eq!(file.description, live.description, "{name}");
        assert_eq!(file.filter_subject, live.filter_subject, "{name}");
        assert_eq!(file.filter_subjects, live.filter_subjects, "{name}");
        assert_eq!(file.deliver_policy, live.deliver_policy, "{name}");
        assert_eq!(file.ack_policy, live.ack_policy, "{name}");
        assert_eq!(file.ack_wait, live.ack_wait, "{name}");
        assert_eq!(file.max_deliver, live.max_deliver, "{name}");
        assert_eq!(file.max_ack_pending, live.max_ack_pending, "{name}");
        assert_eq!(file.replay_policy, live.replay_policy, "{name}");
        assert_eq!(file.priority_policy, live.priority_policy, "{name}");
        assert_eq!(file.priority_groups, live.priority_groups, "{name}");
        assert_eq!(file.priority_timeout, live.priority_timeout, "{name}");
    }
}
