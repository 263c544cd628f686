//! order-creation (`choreo-order`): on `StockReserved`, creates the order
//! at the prices the event carries and turns the reservation into sold
//! stock; emits `OrderCreated` + `CheckoutSucceeded`, or
//! `OrderCreationFailed` (the compensation worker then releases the stock).

use chorus_contracts::{
    ServiceError,
    catalogue::{self, GetProducts},
    inventory::{Commit, ReservationStatus},
    orders::{CancelOrderByKey, CreateOrder, OrderLine, OrderStatus},
};
use chorus_event_store::{EventPayload, EventType, Pattern, RecordedEvent};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{
    Worker, WorkerError, WorkerName, Workers,
    settle::{self, Checkout, ORDER},
    worker::{Delivery, Handled},
};

const SOURCE: &str = "order-creation";

pub async fn handle(ctx: &Workers, event: &RecordedEvent) -> Result<Handled, WorkerError> {
    let e = &event.envelope;
    let (EventPayload::StockReserved { reservation_id, items, priced, client_id, initiated_at }, Pattern::Choreographed) =
        (&e.payload, e.pattern)
    else {
        return Ok(Handled::Done);
    };
    // The event says all the order needs; an older one does not, and its
    // history is read. Either way a checkout failed meanwhile makes no
    // order: failing it voided the order's key (`Conflict` below).
    let checkout = match client_id {
        Some(client_id) if !priced.is_empty() => {
            Checkout { id: e.checkout_id, client_id: *client_id, items: items.clone(), started_at: *initiated_at, history: Vec::new() }
        }
        _ => Checkout::load(ctx, e.checkout_id).await?,
    };
    if checkout.ended() {
        return Ok(Handled::Done);
    }
    let trace = settle::trace_of(event);
    // Priced when the stock was reserved; an older event is priced now.
    let items = if priced.is_empty() {
        let ids = checkout.items.iter().map(|l| l.product_id).collect();
        let products = ctx.services.call_traced(&GetProducts { ids, checkout_id: Some(checkout.id) }, trace.as_ref()).await?;
        match catalogue::price(&checkout.items, &products) {
            Ok(items) => items,
            Err(reason) => return fail(ctx, &checkout, event, *reservation_id, reason, "PRODUCT_UNAVAILABLE").await,
        }
    } else {
        priced.iter().map(|l| OrderLine { product_id: l.product_id, quantity: l.quantity, unit_price_cents: l.unit_price_cents }).collect()
    };
    let create = CreateOrder { idempotency_key: settle::key(checkout.id, ORDER), client_id: checkout.client_id, checkout_id: checkout.id, items };
    let order = match ctx.services.call_traced(&create, trace.as_ref()).await {
        Ok(order) => order,
        // The key was voided: the checkout was failed meanwhile.
        Err(ServiceError::Conflict(_)) => return Ok(Handled::Done),
        Err(ServiceError::BadInput(reason) | ServiceError::NotFound(reason) | ServiceError::ProductUnavailable(reason)) => {
            return fail(ctx, &checkout, event, *reservation_id, reason, "ORDER_REFUSED").await;
        }
        Err(e) => return Err(e.into()),
    };
    if order.status == OrderStatus::Cancelled {
        return Ok(Handled::Done);
    }
    match ctx.services.call_traced(&Commit { reservation_id: *reservation_id }, trace.as_ref()).await {
        Ok(reservation) if reservation.status == ReservationStatus::Committed => {
            settle::succeed(ctx, &checkout, event, &order, SOURCE).await?;
        }
        Ok(_) | Err(ServiceError::Conflict(_)) => {
            // The reservation was released: whoever released it fails the
            // checkout; the order made meanwhile must not stay.
            let cancel = CancelOrderByKey { idempotency_key: create.idempotency_key, client_id: checkout.client_id, checkout_id: checkout.id };
            ctx.services.call_traced(&cancel, trace.as_ref()).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Handled::Done)
}

/// Every delivery failed (orders or inventory down): hand the checkout to
/// compensation.
pub async fn give_up(ctx: &Workers, event: &RecordedEvent, error: &WorkerError) -> Result<(), WorkerError> {
    let EventPayload::StockReserved { reservation_id, .. } = &event.envelope.payload else { return Ok(()) };
    let checkout = Checkout::load(ctx, event.envelope.checkout_id).await?;
    fail(ctx, &checkout, event, *reservation_id, format!("the order could not be created: {error}"), "SERVICE_UNAVAILABLE").await.map(drop)
}

async fn fail(
    ctx: &Workers,
    checkout: &Checkout,
    cause: &RecordedEvent,
    reservation_id: Uuid,
    reason: String,
    code: &str,
) -> Result<Handled, WorkerError> {
    let failed = EventPayload::OrderCreationFailed { reservation_id: Some(reservation_id), reason, code: code.to_owned() };
    settle::publish(ctx, checkout.id, cause, failed).await?;
    Ok(Handled::Done)
}

/// The worker of this module.
pub struct OrderCreation;

impl Worker for OrderCreation {
    fn name(&self) -> WorkerName {
        WorkerName::OrderCreation
    }

    fn durable(&self) -> &'static str {
        "choreo-order"
    }

    fn consumes(&self) -> &'static [EventType] {
        &[EventType::StockReserved]
    }

    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, _: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>> {
        Box::pin(handle(ctx, event))
    }

    fn give_up<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, error: &'a WorkerError) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(give_up(ctx, event, error))
    }
}
