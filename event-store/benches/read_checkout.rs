//! `read_checkout` with ≥ 1M events in the stream (DESIGN §2), next to the
//! filtered-consumer scan it replaces.
//!
//! `cargo bench -p chorus-event-store --bench read_checkout`
//! (`CHORUS_BENCH_EVENTS` changes the stream size; default 1,000,000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use chorus_event_store::{EventStore, subjects};
use chorus_runtime::nats_server::NatsServer;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use rand::seq::IndexedRandom;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let events: usize = std::env::var("CHORUS_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let server = NatsServer::start("nats-server", &dir.path().join("nats")).expect("nats-server");
    let (store, ids) = rt.block_on(async {
        let client = async_nats::connect(server.url()).await.expect("connect");
        let store = EventStore::provision(client, 1).await.expect("provision");
        let started = Instant::now();
        let ids = support::fill(store.jetstream(), events.div_ceil(6)).await;
        let stored = store.last_sequence().await.expect("last");
        eprintln!(
            "stored {stored} events in {:.1?} ({:.0} events/s pipelined)",
            started.elapsed(),
            stored as f64 / started.elapsed().as_secs_f64()
        );
        (store, ids)
    });

    let mut group = c.benchmark_group(format!("one checkout among {}k events", events / 1000));
    group.bench_function("read_checkout (index + direct gets)", |b| {
        b.to_async(&rt).iter(|| async {
            let id = *ids.choose(&mut rand::rng()).expect("ids");
            let read = store.read_checkout(id).await.expect("read");
            assert_eq!(read.len(), 6);
        })
    });
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("filtered ordered consumer (stream scan)", |b| {
        b.to_async(&rt).iter(|| async {
            let id = *ids.choose(&mut rand::rng()).expect("ids");
            let stream = store.jetstream().get_stream(subjects::STREAM).await.expect("stream");
            let consumer = stream
                .create_consumer(OrderedConfig {
                    filter_subject: subjects::checkout(id),
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                })
                .await
                .expect("consumer");
            let mut messages = consumer.messages().await.expect("messages");
            for _ in 0..6 {
                messages.next().await.expect("open").expect("message");
            }
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
