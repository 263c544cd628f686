//! The event store on a real nats-server: order, dedupe, pages, restart,
//! live follow, and one checkout read among 100k events without a scan.

mod support;

use std::time::Duration;

use chorus_event_store::{CheckoutId, Envelope, EventPayload, EventStore, Pattern, RecordedEvent, SagaState};
use chorus_runtime::{nats_server::NatsServer, trace::TraceParent};
use futures::StreamExt;
use uuid::Uuid;

struct Fixture {
    server: NatsServer,
    store: EventStore,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = NatsServer::start("nats-server", &dir.path().join("nats")).expect("nats-server");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let store = EventStore::provision(client, 1).await.expect("provision");
    Fixture { server, store, _dir: dir }
}

fn envelopes(events: &[RecordedEvent]) -> Vec<Envelope> {
    events.iter().map(|e| e.envelope.clone()).collect()
}

#[tokio::test]
async fn a_checkout_reads_back_in_order_with_its_trace() {
    let f = fixture().await;
    let (a, b) = (CheckoutId::new_v4(), CheckoutId::new_v4());
    let (events_a, events_b) = (support::checkout_events(a), support::checkout_events(b));
    let trace = TraceParent::new_root();
    for (ea, eb) in events_a.iter().zip(&events_b) {
        f.store.append(ea, Some(&trace)).await.expect("append a");
        f.store.append(eb, None).await.expect("append b");
    }
    let read = f.store.read_checkout(a).await.expect("read");
    assert_eq!(envelopes(&read), events_a);
    assert!(read.windows(2).all(|w| w[0].sequence < w[1].sequence));
    for event in &read {
        let header = event.traceparent.as_deref().expect("traceparent stored");
        let parsed = TraceParent::parse(header).expect("valid traceparent");
        assert_eq!(parsed.trace_id(), trace.trace_id(), "one checkout, one trace");
    }
    assert_eq!(envelopes(&f.store.read_checkout(b).await.expect("read b")), events_b);
    assert!(f.store.read_checkout(CheckoutId::new_v4()).await.expect("unknown").is_empty());
}

#[tokio::test]
async fn a_republished_event_is_stored_once() {
    let f = fixture().await;
    let id = CheckoutId::new_v4();
    let event = Envelope::new(id, Pattern::Choreographed, EventPayload::CheckoutSucceeded { order_id: Uuid::new_v4(), client_id: None });
    let first = f.store.append(&event, None).await.expect("first");
    let again = f.store.append(&event, None).await.expect("again");
    assert_eq!(first, again, "a re-publish answers the first sequence");
    assert_eq!(f.store.last_sequence().await.expect("last"), first);
    assert_eq!(f.store.read_checkout(id).await.expect("read").len(), 1);

    // Deterministic ids make a worker's re-publish after a crash a duplicate too.
    let redo = |e: &Envelope| e.clone().with_derived_id("stock-released");
    let released = Envelope::new(id, Pattern::Choreographed, EventPayload::StockReleased { reservation_id: Uuid::nil() });
    let s1 = f.store.append(&redo(&released), None).await.expect("s1");
    let rebuilt = Envelope::new(id, Pattern::Choreographed, EventPayload::StockReleased { reservation_id: Uuid::nil() });
    let s2 = f.store.append(&redo(&rebuilt), None).await.expect("s2");
    assert_eq!(s1, s2);
    assert_eq!(f.store.read_checkout(id).await.expect("read").len(), 2);
}

#[tokio::test]
async fn concurrent_appenders_lose_no_event() {
    let f = fixture().await;
    let id = CheckoutId::new_v4();
    let tasks: Vec<_> = (0..25)
        .map(|i| {
            let store = f.store.clone();
            let event = Envelope::new(
                id,
                Pattern::Orchestrated,
                EventPayload::SagaTransitioned { from: None, to: SagaState::Pending, reason: Some(format!("move {i}")), via: Vec::new() },
            );
            tokio::spawn(async move { store.append(&event, None).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("append");
    }
    assert_eq!(f.store.read_checkout(id).await.expect("read").len(), 25);
}

#[tokio::test]
async fn a_long_history_is_read_whole_across_batches_and_alone() {
    let f = fixture().await;
    support::fill(f.store.jetstream(), 50).await;
    let id = CheckoutId::new_v4();
    let events: Vec<Envelope> = (0..600)
        .map(|i| Envelope::new(id, Pattern::Orchestrated, EventPayload::SagaTransitioned { from: None, to: SagaState::Pending, reason: Some(format!("move {i}")), via: Vec::new() }))
        .collect();
    f.store.append_all(&events, None).await.expect("append");
    support::fill(f.store.jetstream(), 50).await;
    let read = f.store.read_checkout(id).await.expect("read");
    assert_eq!(read.len(), 600, "a history longer than one batch is read whole");
    assert!(read.iter().all(|e| e.envelope.checkout_id == id), "only that checkout's events");
    assert!(read.windows(2).all(|w| w[0].sequence < w[1].sequence), "in stream order");
    assert_eq!(f.store.last_of_checkout(id).await.expect("last"), read.last().map(|e| e.sequence));
    assert!(f.store.read_checkout(CheckoutId::new_v4()).await.expect("read").is_empty());
    assert_eq!(f.store.last_of_checkout(CheckoutId::new_v4()).await.expect("last"), None);
}

#[tokio::test]
async fn pages_walk_the_whole_stream() {
    let f = fixture().await;
    support::fill(f.store.jetstream(), 600).await; // 3,600 events
    let total = f.store.last_sequence().await.expect("last");
    assert_eq!(total, 3_600);
    let mut from = 1;
    let mut seen = Vec::new();
    loop {
        let page = f.store.read_page(from, 250).await.expect("page");
        assert!(page.events.len() <= 250);
        seen.extend(page.events.iter().map(|e| e.sequence));
        match page.next_sequence {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 3_600);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "pages overlap or go back");
    let past_the_end = f.store.read_page(total + 10, 10).await.expect("empty page");
    assert!(past_the_end.events.is_empty() && past_the_end.next_sequence.is_none());
}

#[tokio::test]
async fn history_survives_a_server_restart() {
    let mut f = fixture().await;
    let id = CheckoutId::new_v4();
    let events = support::checkout_events(id);
    for e in &events[..3] {
        f.store.append(e, None).await.expect("append");
    }
    f.server.restart().expect("restart");
    let client = async_nats::connect(f.server.url()).await.expect("reconnect");
    let store = EventStore::provision(client, 1).await.expect("provisioning again is harmless");
    for e in &events[3..] {
        store.append(e, None).await.expect("append after restart");
    }
    assert_eq!(envelopes(&store.read_checkout(id).await.expect("read")), events);
}

#[tokio::test]
async fn follow_replays_then_goes_live() {
    let f = fixture().await;
    let id = CheckoutId::new_v4();
    let events = support::checkout_events(id);
    let mut sequences = Vec::new();
    for e in &events[..3] {
        sequences.push(f.store.append(e, None).await.expect("append"));
    }
    let mut live = f.store.follow(sequences[1]).await.expect("follow");
    for e in &events[3..] {
        f.store.append(e, None).await.expect("append");
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        let next = tokio::time::timeout(Duration::from_secs(5), live.next()).await.expect("in time");
        got.push(next.expect("open").expect("event").envelope);
    }
    assert_eq!(got, events[1..].to_vec(), "replay from the sequence, then live, no gap, no duplicate");
}

#[tokio::test]
async fn one_checkout_among_100k_events_is_read_without_a_scan() {
    let f = fixture().await;
    let js = f.store.jetstream().clone();
    support::fill(&js, 8_500).await;
    let id = CheckoutId::new_v4();
    let events = support::checkout_events(id);
    for e in &events[..3] {
        f.store.append(e, None).await.expect("append");
    }
    support::fill(&js, 8_500).await; // 102,000 filler events in all
    for e in &events[3..] {
        f.store.append(e, None).await.expect("append");
    }
    let read = f.store.read_checkout(id).await.expect("read");
    assert_eq!(envelopes(&read), events);
    let info = js.get_stream("CHECKOUT_EVENTS").await.expect("stream").get_info().await.expect("info");
    assert!(info.state.messages > 100_000);
    assert_eq!(info.state.consumer_count, 0, "reading a checkout created a consumer (a scan)");
}
