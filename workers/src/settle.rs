//! What several workers share: a checkout's facts from its history, the
//! idempotency keys of its steps, publishing follow-up events under derived
//! ids, and [`abort`], the one way a choreographed checkout is failed.

use chorus_domain::{CheckoutId, ClientId};
use chorus_contracts::{
    ServiceError,
    inventory::CancelReservation,
    orders::{CancelOrderByKey, FindOrderByKey},
};
use chorus_event_store::{CartLine, Envelope, EventPayload, OrderLine, Pattern, RecordedEvent};
use chorus_runtime::trace::TraceParent;
use time::OffsetDateTime;

use crate::{WorkerError, Workers};

/// The step names in idempotency keys (`<checkout_id>:<step>`).
pub const RESERVE: &str = "reserve";
pub const ORDER: &str = "order";

/// The idempotency key of one step of one checkout.
pub fn key(checkout_id: CheckoutId, step: &str) -> String {
    format!("{checkout_id}:{step}")
}

/// A choreographed checkout, as its `CheckoutInitiated` describes it.
#[derive(Clone, Debug)]
pub struct Checkout {
    pub id: CheckoutId,
    pub client_id: ClientId,
    pub items: Vec<CartLine>,
    /// When its `CheckoutInitiated` was emitted, if known.
    pub started_at: Option<OffsetDateTime>,
    /// Every event stored for it so far, in stream order (empty where the
    /// handler had what it needed in the event it handles).
    pub history: Vec<RecordedEvent>,
}

impl Checkout {
    /// Reads the checkout's history (index + direct gets, no scan).
    pub async fn load(ctx: &Workers, id: CheckoutId) -> Result<Self, WorkerError> {
        let history = ctx.events.read_checkout(id).await?;
        let (client_id, items, started_at) = history
            .iter()
            .find_map(|e| match &e.envelope.payload {
                EventPayload::CheckoutInitiated { client_id, items, .. } => Some((*client_id, items.clone(), e.envelope.emitted_at)),
                _ => None,
            })
            .ok_or(WorkerError::NoInitiation(id))?;
        Ok(Checkout { id, client_id, items, started_at: Some(started_at), history })
    }

    /// The checkout as its `CheckoutInitiated` describes it, without its history.
    pub fn initiated(event: &RecordedEvent) -> Option<Self> {
        let e = &event.envelope;
        let EventPayload::CheckoutInitiated { client_id, items, .. } = &e.payload else { return None };
        Some(Checkout { id: e.checkout_id, client_id: *client_id, items: items.clone(), started_at: Some(e.emitted_at), history: Vec::new() })
    }

    /// Whether a terminal event is already stored.
    pub fn ended(&self) -> bool {
        self.history.iter().any(|e| e.envelope.payload.is_terminal())
    }

}

/// The trace an event continues.
pub fn trace_of(event: &RecordedEvent) -> Option<TraceParent> {
    event.traceparent.as_deref().and_then(TraceParent::parse)
}

/// Publishes `payload` as a choreographed event caused by `cause`, under an
/// id derived from the checkout and the event type: publishing it again
/// (a redelivery, a racing worker) is dropped by the stream's dedupe.
/// Returns whether it was new.
pub async fn publish(ctx: &Workers, checkout_id: CheckoutId, cause: &RecordedEvent, payload: EventPayload) -> Result<bool, WorkerError> {
    Ok(publish_all(ctx, checkout_id, cause, vec![payload]).await?.pop().unwrap_or(false))
}

/// Several follow-ups at once, in order: one pipelined append and one
/// index write, instead of a round trip each. Says for each whether it is new.
pub async fn publish_all(ctx: &Workers, checkout_id: CheckoutId, cause: &RecordedEvent, payloads: Vec<EventPayload>) -> Result<Vec<bool>, WorkerError> {
    let events: Vec<Envelope> = payloads
        .into_iter()
        .map(|payload| {
            let name = payload.event_type();
            Envelope::new(checkout_id, Pattern::Choreographed, payload).with_derived_id(name.as_str()).caused_by(cause.envelope.id)
        })
        .collect();
    let appended = ctx.events.append_all(&events, trace_of(cause).as_ref()).await?;
    Ok(appended.iter().map(|a| !a.duplicate).collect())
}

/// How [`abort`] ended the checkout.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    Failed,
    /// The reservation had already been committed for an order: the
    /// checkout had in fact succeeded, and that was published instead.
    Succeeded,
}

/// Why a checkout is being failed.
#[derive(Debug)]
pub struct Failure {
    pub reason: String,
    /// The step that failed (`reserve_stock`, `create_order`, `stalled`).
    pub step: &'static str,
    /// Published first, once the undo is done (e.g. `StockReservationFailed`).
    pub preface: Option<EventPayload>,
    /// The worker deciding it: the `source` label of the metrics.
    pub source: &'static str,
}

/// Fails the checkout and undoes its effects: claims the reservation key
/// (releasing what it holds, and making a reserve still in flight reserve
/// nothing), claims the order key likewise, then publishes the preface,
/// `StockReleased` if stock was held, and `CheckoutFailed`. Idempotent. If
/// the reservation is already committed the order exists and the checkout
/// succeeded: that is published instead, so a checkout never ends twice.
pub async fn abort(ctx: &Workers, checkout: &Checkout, cause: &RecordedEvent, failure: Failure) -> Result<Settled, WorkerError> {
    let trace = trace_of(cause);
    let cancel = CancelReservation { idempotency_key: key(checkout.id, RESERVE), checkout_id: checkout.id, restock_sold: false };
    let released = match ctx.services.call_traced(&cancel, trace.as_ref()).await {
        Ok(released) => released,
        Err(ServiceError::Conflict(_)) => {
            return complete(ctx, checkout, cause, failure.source).await.map(|()| Settled::Succeeded);
        }
        Err(e) => return Err(e.into()),
    };
    let cancel_order = CancelOrderByKey { idempotency_key: key(checkout.id, ORDER), client_id: checkout.client_id, checkout_id: checkout.id };
    ctx.services.call_traced(&cancel_order, trace.as_ref()).await?;
    let released = released.map(|r| EventPayload::StockReleased { reservation_id: r.id });
    let failed = EventPayload::CheckoutFailed { reason: failure.reason, step: failure.step.to_owned(), client_id: Some(checkout.client_id) };
    let events: Vec<EventPayload> = failure.preface.into_iter().chain(released).chain([failed]).collect();
    if publish_all(ctx, checkout.id, cause, events).await?.last() == Some(&true) {
        metrics::counter!("saga_choreo_failed_total", "source" => failure.source).increment(1);
        record_duration(checkout, "failed");
    }
    Ok(Settled::Failed)
}

/// Publishes the success of a checkout whose reservation is committed.
async fn complete(ctx: &Workers, checkout: &Checkout, cause: &RecordedEvent, source: &'static str) -> Result<(), WorkerError> {
    let find = FindOrderByKey { idempotency_key: key(checkout.id, ORDER) };
    let order = ctx
        .services
        .call_traced(&find, trace_of(cause).as_ref())
        .await?
        .ok_or_else(|| ServiceError::Internal(format!("checkout {}: stock is sold but no order exists", checkout.id)))?;
    succeed(ctx, checkout, cause, &order, source).await
}

/// Publishes `OrderCreated` and `CheckoutSucceeded` for `order`.
pub async fn succeed(
    ctx: &Workers,
    checkout: &Checkout,
    cause: &RecordedEvent,
    order: &chorus_contracts::orders::Order,
    source: &'static str,
) -> Result<(), WorkerError> {
    let items = order
        .items
        .iter()
        .map(|l| OrderLine { product_id: l.product_id, quantity: l.quantity, unit_price_cents: l.unit_price_cents })
        .collect();
    let created = EventPayload::OrderCreated { order_id: order.id, client_id: order.client_id, total_cents: order.total_cents, items };
    let succeeded = EventPayload::CheckoutSucceeded { order_id: order.id, client_id: Some(checkout.client_id) };
    if publish_all(ctx, checkout.id, cause, vec![created, succeeded]).await?.last() == Some(&true) {
        metrics::counter!("saga_choreo_success_total", "source" => source).increment(1);
        record_duration(checkout, "succeeded");
    }
    Ok(())
}

/// `saga_choreo_duration_seconds{outcome}`: from `CheckoutInitiated` to the
/// terminal event, the choreographed twin of `saga_execution_duration_seconds`.
fn record_duration(checkout: &Checkout, outcome: &'static str) {
    if let Some(started) = checkout.started_at {
        let seconds = (OffsetDateTime::now_utc() - started).as_seconds_f64().max(0.0);
        metrics::histogram!("saga_choreo_duration_seconds", "outcome" => outcome).record(seconds);
    }
}
