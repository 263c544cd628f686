//! stock-compensation (`choreo-compensation`): on `OrderCreationFailed`,
//! undoes the checkout (no order, stock released) and emits `StockReleased`
//! + `CheckoutFailed`.

use chorus_event_store::{EventPayload, Pattern, RecordedEvent};

use crate::{
    WorkerError, Workers,
    consumer::Handled,
    settle::{self, Checkout, Failure},
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
