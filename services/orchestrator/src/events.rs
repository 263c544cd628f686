//! The events a saga write implies, built from the row as it is written
//! and stored with it through the outbox. Ids are derived from the saga and
//! the log row (`transition:<seq>`) or the event type, so a replica that
//! writes the same move again after a crash produces the same ids, which the
//! stream deduplicates.

use chorus_contracts::Cart;
use chorus_event_store::{Envelope, EventPayload, OrderLine, PassedState, Pattern};

use chorus_domain::SagaState;

use crate::{entity::saga, repo};

/// A new saga's first events: `CheckoutInitiated` (the same first event as
/// a choreographed checkout, so read models, audit and notifications see
/// both patterns alike) and its moves (into `PENDING` and on), logged from
/// row 0.
pub fn started(row: &saga::Model, items: &Cart, moves: &[repo::Move<'_>]) -> Vec<Envelope> {
    let items = items.lines().to_vec();
    let initiated = EventPayload::CheckoutInitiated { client_id: row.client_id, items, idempotency_key: row.idempotency_key.clone() };
    let mut events = vec![event(row, initiated, "CheckoutInitiated")];
    events.extend(transition(row, 0, None, moves));
    events
}

/// The events of one write that logged `moves` from row `seq` on: one
/// `SagaTransitioned` carrying them all and, when the last move ends the
/// saga, its outcome events just before it: the terminal transition stays
/// the checkout's last event, where subscriptions end.
pub fn moved(row: &saga::Model, seq: i64, from: SagaState, moves: &[repo::Move<'_>]) -> Vec<Envelope> {
    let mut events = Vec::with_capacity(3);
    if let Some(&(to, _)) = moves.last()
        && to.is_terminal()
    {
        events.extend(outcome(row, to));
    }
    events.extend(transition(row, seq, Some(from), moves));
    events
}

/// The `SagaTransitioned` of `moves`, logged from row `seq`: the states
/// before the last are its `via`. Its id names the first row, so a write
/// repeated after a crash (same rows) is deduplicated.
fn transition(row: &saga::Model, seq: i64, from: Option<SagaState>, moves: &[repo::Move<'_>]) -> Option<Envelope> {
    let (&(to, reason), passed) = moves.split_last()?;
    let payload = EventPayload::SagaTransitioned {
        from,
        to,
        reason: reason.map(str::to_owned),
        via: passed.iter().map(|&(state, reason)| PassedState { state, reason: reason.map(str::to_owned) }).collect(),
    };
    Some(event(row, payload, &format!("transition:{seq}")))
}

/// What the saga's end means for the read models: the order and its
/// success, or the failure with its reason.
fn outcome(row: &saga::Model, to: SagaState) -> Vec<Envelope> {
    if to == SagaState::Completed {
        let (Some(order_id), Ok(lines)) = (row.order_id, repo::lines_of(row)) else {
            return Vec::new();
        };
        let total_cents = lines.iter().map(|l| l.unit_price_cents * i64::from(l.quantity)).sum();
        let items = lines
            .into_iter()
            .map(|l| OrderLine { product_id: l.product_id, quantity: l.quantity, unit_price_cents: l.unit_price_cents })
            .collect();
        vec![
            event(row, EventPayload::OrderCreated { order_id, client_id: row.client_id, total_cents, items }, "OrderCreated"),
            event(row, EventPayload::CheckoutSucceeded { order_id, client_id: Some(row.client_id) }, "CheckoutSucceeded"),
        ]
    } else {
        let reason = row.failure_reason.clone().unwrap_or_else(|| "cancelled".into());
        let step = row.failure_step.clone().unwrap_or_else(|| "unknown".into());
        vec![event(row, EventPayload::CheckoutFailed { reason, step, client_id: Some(row.client_id) }, "CheckoutFailed")]
    }
}

fn event(row: &saga::Model, payload: EventPayload, name: &str) -> Envelope {
    Envelope::new(row.id, Pattern::Orchestrated, payload).with_derived_id(name)
}
