//! stall-watch (`choreo-stall`): holds each choreographed checkout's
//! `CheckoutInitiated` (nak with a delay, durable on the server) until the
//! checkout ends; when it has had no event for `CHORUS_STALL_DEADLINE`
//! (a worker down, an event given up on), it fails and compensates it.

use std::time::Duration;

use chorus_event_store::{EventPayload, Pattern, RecordedEvent};
use time::OffsetDateTime;

use crate::{
    WorkerError, Workers,
    consumer::{Delivery, Handled},
    settle::{self, Checkout, Failure},
};

/// Margin past the deadline before looking again, so that one look suffices.
const SLACK: Duration = Duration::from_millis(50);

pub async fn handle(ctx: &Workers, event: &RecordedEvent, delivery: Delivery) -> Result<Handled, WorkerError> {
    let e = &event.envelope;
    if !matches!((&e.payload, e.pattern), (EventPayload::CheckoutInitiated { .. }, Pattern::Choreographed)) {
        return Ok(Handled::Done);
    }
    let deadline = ctx.settings.stall_deadline;
    if delivery.attempt == 1 && (OffsetDateTime::now_utc() - e.emitted_at) < deadline {
        // Fresh checkouts end within milliseconds: look once, after the deadline.
        return Ok(Handled::Later(deadline + SLACK));
    }
    let checkout = Checkout::load(ctx, e.checkout_id).await?;
    if checkout.ended() {
        return Ok(Handled::Done);
    }
    let Some(last) = checkout.history.iter().max_by_key(|e| e.envelope.emitted_at) else {
        return Ok(Handled::Done);
    };
    let idle: Duration = (OffsetDateTime::now_utc() - last.envelope.emitted_at).try_into().unwrap_or_default();
    if idle < deadline {
        return Ok(Handled::Later(deadline - idle + SLACK));
    }
    let reason = format!("stalled: no progress for {}s after {}", deadline.as_secs_f64(), last.envelope.event_type());
    tracing::warn!(idle = ?idle, "checkout stalled: failing and compensating it");
    let failure = Failure { reason, step: "stalled", preface: None, source: "stall-watch" };
    settle::abort(ctx, &checkout, event, failure).await?;
    Ok(Handled::Done)
}
