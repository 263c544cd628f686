//! Filling a real stream fast, for the tests and the benchmark: events are
//! published pipelined (thousands of acks in flight).

#![allow(dead_code)]

use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use chorus_event_store::{CheckoutId, ClientId, Envelope, EventPayload, Pattern, ProductId, SagaState, subjects};
use uuid::Uuid;

/// The six events of a successful choreographed checkout.
pub fn checkout_events(checkout_id: CheckoutId) -> Vec<Envelope> {
    let client_id = ClientId::new_v4();
    let reservation_id = Uuid::new_v4();
    let order_id = Uuid::new_v4();
    let items = vec![chorus_event_store::CartLine { product_id: ProductId::new_v4(), quantity: 2 }];
    let payloads = vec![
        EventPayload::CheckoutInitiated { client_id, items: items.clone(), idempotency_key: None },
        EventPayload::StockReserved { reservation_id, items, priced: Vec::new(), client_id: None, initiated_at: None },
        EventPayload::OrderCreated { order_id, client_id, total_cents: 4980, items: vec![] },
        EventPayload::CheckoutSucceeded { order_id, client_id: None },
        EventPayload::SagaTransitioned { from: None, to: SagaState::Pending, reason: None, via: Vec::new() },
        EventPayload::SagaTransitioned { from: Some(SagaState::Pending), to: SagaState::Completed, reason: None, via: Vec::new() },
    ];
    payloads.into_iter().map(|p| Envelope::new(checkout_id, Pattern::Choreographed, p)).collect()
}

/// Stores `checkouts` checkouts of six events each; returns their ids.
pub async fn fill(js: &jetstream::Context, checkouts: usize) -> Vec<CheckoutId> {
    const BATCH: usize = 500;
    let mut ids = Vec::with_capacity(checkouts);
    let mut remaining = checkouts;
    while remaining > 0 {
        let n = remaining.min(BATCH);
        remaining -= n;
        let batch: Vec<CheckoutId> = (0..n).map(|_| CheckoutId::new_v4()).collect();
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(n * 6);
        for id in &batch {
            for event in checkout_events(*id) {
                let subject = subjects::event(*id, event.event_type());
                let body = Bytes::from(serde_json::to_vec(&event).expect("encode"));
                acks.push(js.publish(subject, body).await.expect("publish"));
            }
        }
        for ack in acks {
            ack.await.expect("ack");
        }
        ids.extend(batch);
    }
    ids
}
