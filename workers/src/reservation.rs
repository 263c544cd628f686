//! stock-reservation (`choreo-reservation`): on `CheckoutInitiated`, checks
//! that every product is for sale and reserves the stock; emits
//! `StockReserved` (with the cart priced, for the order step), or
//! `StockReservationFailed` + `CheckoutFailed`.

use chorus_contracts::{
    Cart, ServiceError,
    catalogue::{self, GetProducts},
    inventory::{ReservationStatus, Reserve},
};
use chorus_event_store::{EventPayload, EventType, OrderLine, Pattern, RecordedEvent};
use futures::future::BoxFuture;

use crate::{
    Worker, WorkerError, WorkerName, Workers,
    settle::{self, Checkout, Failure, RESERVE},
    worker::{Delivery, Handled},
};

const SOURCE: &str = "stock-reservation";

pub async fn handle(ctx: &Workers, event: &RecordedEvent) -> Result<Handled, WorkerError> {
    let e = &event.envelope;
    let (Some(checkout), Pattern::Choreographed) = (Checkout::initiated(event), e.pattern) else {
        return Ok(Handled::Done);
    };
    let items = &checkout.items;
    let trace = settle::trace_of(event);
    let ids = items.iter().map(|l| l.product_id).collect();
    let products = ctx.services.call_traced(&GetProducts { ids, checkout_id: Some(checkout.id) }, trace.as_ref()).await?;
    let priced = match catalogue::price(items, &products) {
        Ok(lines) => lines,
        Err(reason) => return refuse(ctx, &checkout, event, reason, "PRODUCT_UNAVAILABLE").await,
    };
    // Parsed here, where the cart leaves the event for a service: an event
    // stored with a cart that breaks the rules fails its checkout.
    let cart = match Cart::parse(items.clone()) {
        Ok(cart) => cart,
        Err(reason) => return refuse(ctx, &checkout, event, reason, "BAD_USER_INPUT").await,
    };
    let reserve = Reserve { idempotency_key: settle::key(checkout.id, RESERVE), checkout_id: checkout.id, items: cart };
    match ctx.services.call_traced(&reserve, trace.as_ref()).await {
        Ok(reservation) if reservation.status == ReservationStatus::Released => {
            // The key was claimed by whoever failed this checkout: they
            // publish its end, there is nothing to do here.
            Ok(Handled::Done)
        }
        Ok(reservation) => {
            let priced = priced
                .into_iter()
                .map(|l| OrderLine { product_id: l.product_id, quantity: l.quantity, unit_price_cents: l.unit_price_cents })
                .collect();
            let reserved = EventPayload::StockReserved {
                reservation_id: reservation.id,
                items: items.clone(),
                priced,
                client_id: Some(checkout.client_id),
                initiated_at: Some(e.emitted_at),
            };
            settle::publish(ctx, checkout.id, event, reserved).await?;
            Ok(Handled::Done)
        }
        Err(ServiceError::InsufficientStock(reason)) => refuse(ctx, &checkout, event, reason, "INSUFFICIENT_STOCK").await,
        Err(ServiceError::ProductUnavailable(reason) | ServiceError::NotFound(reason)) => {
            refuse(ctx, &checkout, event, reason, "PRODUCT_UNAVAILABLE").await
        }
        Err(ServiceError::BadInput(reason)) => refuse(ctx, &checkout, event, reason, "BAD_USER_INPUT").await,
        Err(e) => Err(e.into()),
    }
}

/// Every delivery failed (inventory or catalogue down): fail the checkout.
pub async fn give_up(ctx: &Workers, event: &RecordedEvent, error: &WorkerError) -> Result<(), WorkerError> {
    let Some(checkout) = Checkout::initiated(event) else { return Ok(()) };
    refuse(ctx, &checkout, event, format!("stock could not be reserved: {error}"), "SERVICE_UNAVAILABLE").await.map(drop)
}

async fn refuse(ctx: &Workers, checkout: &Checkout, cause: &RecordedEvent, reason: String, code: &str) -> Result<Handled, WorkerError> {
    let preface = EventPayload::StockReservationFailed { reason: reason.clone(), code: code.to_owned() };
    let failure = Failure { reason, step: "reserve_stock", preface: Some(preface), source: SOURCE };
    settle::abort(ctx, checkout, cause, failure).await?;
    Ok(Handled::Done)
}

/// The worker of this module.
pub struct StockReservation;

impl Worker for StockReservation {
    fn name(&self) -> WorkerName {
        WorkerName::StockReservation
    }

    fn durable(&self) -> &'static str {
        "choreo-reservation"
    }

    fn consumes(&self) -> &'static [EventType] {
        &[EventType::CheckoutInitiated]
    }

    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, _: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>> {
        Box::pin(handle(ctx, event))
    }

    fn give_up<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, error: &'a WorkerError) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(give_up(ctx, event, error))
    }
}
