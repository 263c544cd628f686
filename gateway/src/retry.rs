//! How the gateway asks again: an orchestrated checkout whose replica
//! died, a choreographed checkout's first event while the event store
//! elects a leader. Both are safe to repeat (the checkout id, and the
//! event's derived id, name the same thing), so the caller gets an answer
//! rather than a timeout.

use chorus_contracts::{ServiceError, orchestrator::{Saga, StartCheckout}};
use chorus_event_store::{Envelope, EventStoreError};
use chorus_runtime::trace::TraceParent;

use crate::{GatewayError, GatewayState};

/// A replica that dies mid-saga never answers. Asking again is safe (the
/// checkout id and any idempotency key name the same saga, which another
/// replica takes over), so a checkout is asked in slices instead of waiting
/// out the whole limit on a dead replica (found by `chorus chaos`); each
/// slice is the saga lease ([`crate::limits::Limits::ask_again_after`]).
pub(crate) async fn ask_again_until_answered(
    state: &GatewayState,
    request: &StartCheckout,
) -> Result<Saga, ServiceError> {
    let ask_again_after = state.limits.ask_again_after;
    let deadline = std::time::Instant::now() + state.checkouts.timeout();
    let slice = state.checkouts.with_timeout(ask_again_after);
    loop {
        match slice.call(request).await {
            Err(ServiceError::Timeout(_) | ServiceError::Unavailable(_))
                if std::time::Instant::now() + ask_again_after < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// How long a choreographed checkout keeps trying to store its first event
/// (a JetStream leader election takes seconds) before it answers
/// `SERVICE_UNAVAILABLE`.
const STORE_INITIATION_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Stores a choreographed checkout's `CheckoutInitiated`, retrying (its id
/// is derived, so a retry is deduplicated) while the event store is
/// unavailable; `Some(sequence)` when the stream already held it there.
/// The checkout is accepted once the stream has it; otherwise
/// `SERVICE_UNAVAILABLE`, naming the checkout.
pub(crate) async fn store_initiation(state: &GatewayState, event: &Envelope, trace: &TraceParent) -> Result<Option<u64>, GatewayError> {
    let policy = chorus_runtime::retry::forever(std::time::Duration::from_millis(100), std::time::Duration::from_secs(2));
    let retryable = |e: &EventStoreError| matches!(e, EventStoreError::Publish { .. });
    let append =
        chorus_runtime::retry::until_ok("storing CheckoutInitiated", policy, retryable, || state.events.append_once(event, Some(trace)));
    match tokio::time::timeout(STORE_INITIATION_WITHIN, append).await {
        Ok(Ok(appended)) => Ok(appended.duplicate.then_some(appended.sequence)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(GatewayError::ServiceUnavailable(format!(
            "the event store is unavailable: checkout {} was not confirmed; look it up with checkout(id) or retry with the same idempotencyKey",
            event.checkout_id
        ))),
    }
}
