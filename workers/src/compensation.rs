//! stock-compensation (`choreo-compensation`): on `OrderCreationFailed`,
//! undoes the checkout (no order, stock released) and emits `StockReleased`
//! + `CheckoutFailed`.

use chorus_event_store::{EventPayload, EventType, Pattern, RecordedEvent};
use futures::future::BoxFuture;

use crate::{
    Worker, WorkerError, WorkerName, Workers,
    settle::{self, Checkout, Failure},
    worker::{Delivery, Handled},
};

pub async fn handle(ctx: &Workers, event: &RecordedEvent) -> Result<Handled, WorkerError> {
    let e = &event.envelope;
    let (EventPayload::OrderCreationFailed { reason, .. }, Pattern::Choreographed) = (&e.payload, e.pattern) else {
        return Ok(Handled::Done);
    };
    let checkout = Checkout::load(ctx, e.checkout_id).await?;
    let failure = Failure { reason: reason.clone(), step: "create_order", preface: None, source: "stock-compensation" };
    settle::abort(ctx, &checkout, event, failure).await?;
    Ok(Handled::Done)
}

/// The worker of this module; when it cannot finish, the stall watch
/// retries the compensation until it does.
pub struct StockCompensation;

impl Worker for StockCompensation {
    fn name(&self) -> WorkerName {
        WorkerName::StockCompensation
    }

    fn durable(&self) -> &'static str {
        "choreo-compensation"
    }

    fn consumes(&self) -> &'static [EventType] {
        &[EventType::OrderCreationFailed]
    }

    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, _: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>> {
        Box::pin(handle(ctx, event))
    }
}
