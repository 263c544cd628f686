//! The recording workers (read models, audit): one replica at a time is
//! pinned and acks a stored batch with one ack. A standby replica takes
//! over when the pinned one dies, and nothing the dead one held is lost;
//! a consumer an earlier version made (explicit acks) is replaced without
//! replaying what it had acked.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PriorityPolicy, PullConsumer};
use chorus_event_store::EventPayload;
use chorus_workers::{WorkerName, consumer::consumer_config};
use futures::StreamExt;
use uuid::Uuid;

use crate::{
    choreographed::{checkout, terminal},
    lifecycle::{Proc, chorus},
    support::{Backend, TestApp, eventually},
};

const SETTLE: Duration = Duration::from_secs(30);
const ACK_WAIT: Duration = Duration::from_secs(1);

/// A `chorus worker cqrs-projection` on the app's NATS, with its metrics on `port`.
fn projection(app: &TestApp, port: u16) -> Proc {
    let mut env = vec![
        ("NATS_URL", app.nats.url()),
        ("CHORUS_DATA_DIR", app.data_dir.path().display().to_string()),
        ("CHORUS_METRICS_ADDR", format!("127.0.0.1:{port}")),
        ("CHORUS_ACK_WAIT", "1s".to_owned()),
    ];
    env.extend(app.dbs.vars());
    chorus(&["worker", "cqrs-projection"], &env)
}

/// Events the projection on `port` has taken, or `None` while it does not answer.
async fn consumed(http: &reqwest::Client, port: u16) -> Option<u64> {
    let text = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.ok()?.text().await.ok()?;
    let counted = text
        .lines()
        .filter(|l| l.starts_with("events_consumed_total{") && l.contains("consumer=\"choreo-cqrs\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, n)| n.parse::<u64>().ok()))
        .sum();
    Some(counted)
}

/// Whether the read model (the bucket itself, not the gateway, which folds
/// the stream when the bucket lags) has `id` succeeded.
async fn projected(app: &TestApp, id: Uuid) -> bool {
    let view = app.platform().projections.checkout(id.into()).await.ok().flatten();
    view.is_some_and(|v| v.status == chorus_event_store::CheckoutStatus::Succeeded)
}

/// Waits until every checkout of `ids` is in the read model.
async fn all_projected(app: &TestApp, ids: &[Uuid]) {
    let done = eventually(SETTLE, || async {
        for id in ids {
            if !projected(app, *id).await {
                return false;
            }
        }
        true
    });
    assert!(done.await, "not every checkout reached the read model");
}

/// Waits until every event of `id` up to its end is in the stream.
async fn stored(app: &TestApp, id: Uuid) {
    let ended = eventually(SETTLE, || async {
        let events = app.platform().events.read_checkout(id.into()).await.unwrap_or_default();
        events.iter().any(|e| matches!(e.envelope.payload, EventPayload::CheckoutSucceeded { .. }))
    })
    .await;
    assert!(ended, "checkout {id} never succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_projection_replica_is_pinned_and_a_standby_takes_over_when_it_dies() {
    let app = TestApp::start_without(Backend::Sqlite, &[], false, &[WorkerName::CqrsProjection]).await;
    let product = app.create_product("Pinned", 100, 100).await;
    let ports: Vec<u16> = (0..2).map(|_| chorus_runtime::nats_server::free_port().expect("port")).collect();
    let mut replicas: Vec<Option<Proc>> = ports.iter().map(|port| Some(projection(&app, *port))).collect();
    let up = eventually(SETTLE, || async {
        consumed(&app.http, ports[0]).await.is_some() && consumed(&app.http, ports[1]).await.is_some()
    });
    assert!(up.await, "the replicas never served metrics");

    let items = [(product, 1)];
    let first = futures::future::join_all((0..10).map(|_| checkout(&app, Uuid::new_v4(), &items))).await;
    all_projected(&app, &first).await;
    let counts = (consumed(&app.http, ports[0]).await.unwrap_or(0), consumed(&app.http, ports[1]).await.unwrap_or(0));
    assert!((counts.0 == 0) != (counts.1 == 0), "exactly one replica is pinned: {counts:?}");
    let (pinned, standby) = if counts.0 > 0 { (0, 1) } else { (1, 0) };

    // The pinned replica dies without a word; the standby is pinned once
    // the pin times out, and every checkout reaches the read model.
    replicas[pinned].take().expect("replica").signal("KILL");
    let second = futures::future::join_all((0..10).map(|_| checkout(&app, Uuid::new_v4(), &items))).await;
    for id in &second {
        assert_eq!(terminal(&app, *id).await["status"], "SUCCEEDED");
    }
    all_projected(&app, &second).await;
    assert!(consumed(&app.http, ports[standby]).await.unwrap_or(0) > 0, "the standby took over");
    crate::choreographed::assert_conserved(&app, product, 100).await;
    drop(replicas);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_with_explicit_acks_is_replaced_from_its_ack_floor() {
    let app = TestApp::start_without(Backend::Sqlite, &[], false, &[WorkerName::CqrsProjection]).await;
    let product = app.create_product("Upgraded", 100, 10).await;
    let mut stream = app.platform().events.stream().clone();

    // An earlier version's consumer has projected (acked) the first checkout.
    let acked = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    stored(&app, acked).await;
    let mut old = consumer_config(WorkerName::CqrsProjection, 3, ACK_WAIT, Duration::from_secs(30));
    old.ack_policy = AckPolicy::Explicit;
    old.priority_policy = PriorityPolicy::None;
    old.priority_groups.clear();
    old.priority_timeout = Duration::ZERO;
    let consumer: PullConsumer = stream.create_consumer(old).await.expect("the old consumer");
    let pending = stream.info().await.expect("stream info").state.messages as usize;
    let mut messages = consumer.fetch().max_messages(pending).expires(Duration::from_secs(2)).messages().await.expect("fetch");
    let mut last = 0;
    while let Some(Ok(message)) = messages.next().await {
        last = message.info().expect("metadata").stream_sequence;
        message.double_ack().await.expect("ack");
    }
    assert_eq!(last, pending as u64, "every stored event was acked");

    // Events the old consumer never saw, then the new version starts.
    let fresh = checkout(&app, Uuid::new_v4(), &[(product, 1)]).await;
    stored(&app, fresh).await;
    let port = chorus_runtime::nats_server::free_port().expect("port");
    let _worker = projection(&app, port);
    all_projected(&app, &[fresh]).await;

    let mut info = stream.consumer_info(WorkerName::CqrsProjection.durable()).await.expect("consumer");
    assert_eq!(info.config.ack_policy, AckPolicy::All);
    assert_eq!(info.config.priority_policy, PriorityPolicy::PinnedClient);
    assert_eq!(info.config.deliver_policy, DeliverPolicy::ByStartSequence { start_sequence: last + 1 });
    // Nothing the old consumer had acked was delivered again.
    assert!(app.platform().projections.checkout(acked.into()).await.expect("read model").is_none(), "replayed what was acked");
    info = stream.consumer_info(WorkerName::CqrsProjection.durable()).await.expect("consumer");
    assert!(info.ack_floor.stream_sequence > last, "{:?}", info.ack_floor);
    app.stop().await;
}
