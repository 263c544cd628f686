//! stall-watch (`choreo-stall`): holds each choreographed checkout's
//! `CheckoutInitiated` unacked until the checkout ends: in memory for the
//! first deadline (see `consumer::process`; its ack wait outlasts it), then
//! by naks with a delay, durable on the server, for a checkout still open;
//! when it has had no event for `CHORUS_STALL_DEADLINE`
//! (a worker down, an event given up on), it fails and compensates it.
//! A checkout that is merely queued (its next worker is alive and busy with a
//! backlog) is not stalled: it is looked at again later.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::consumer;
use chorus_event_store::{EventPayload, EventType, Pattern, RecordedEvent};
use futures::future::BoxFuture;
use time::OffsetDateTime;

use crate::{
    Role, Worker, WorkerError, WorkerName, Workers,
    settle::{self, Checkout, Failure},
    worker::{Delivery, Handled},
};

/// Margin past the deadline before looking again, so that one look suffices.
const SLACK: Duration = Duration::from_millis(50);
/// How long one look at a consumer's state serves every stall check.
const INFO_FRESH_FOR: Duration = Duration::from_millis(250);

/// The last state read of each worker's consumer, shared by the stall
/// checks of one process: with many open checkouts and a short deadline,
/// one request per check is thousands a second to the server's JetStream
/// API, which the workers being asked about share.
#[derive(Clone, Default)]
pub struct ConsumerInfos(Arc<tokio::sync::Mutex<HashMap<WorkerName, (Instant, consumer::Info)>>>);

impl ConsumerInfos {
    async fn get(&self, ctx: &Workers, worker: WorkerName) -> Option<consumer::Info> {
        // Held across the request, so that concurrent checks wait for one
        // answer instead of each asking.
        let mut infos = self.0.lock().await;
        if let Some((at, info)) = infos.get(&worker)
            && at.elapsed() < INFO_FRESH_FOR
        {
            return Some(info.clone());
        }
        let info = ctx.events.stream().consumer_info(worker.durable()).await.ok()?;
        infos.insert(worker, (Instant::now(), info.clone()));
        Some(info)
    }
}

impl std::fmt::Debug for ConsumerInfos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerInfos").finish_non_exhaustive()
    }
}

pub async fn handle(ctx: &Workers, event: &RecordedEvent, delivery: Delivery) -> Result<Handled, WorkerError> {
    let e = &event.envelope;
    if !matches!((&e.payload, e.pattern), (EventPayload::CheckoutInitiated { .. }, Pattern::Choreographed)) {
        return Ok(Handled::Done);
    }
    let deadline = ctx.settings.stall_deadline;
    let age: Duration = (OffsetDateTime::now_utc() - e.emitted_at).try_into().unwrap_or_default();
    if delivery.attempt == 1 && age < deadline {
        // Fresh checkouts end within milliseconds: look once, after the deadline.
        return Ok(Handled::Later(deadline - age + SLACK));
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
    if next_worker_is_busy(ctx, &checkout).await {
        tracing::info!(idle = ?idle, "checkout queued behind a backlog; its worker is alive");
        return Ok(Handled::Later(deadline));
    }
    // The worker may have moved on since the history was read: it publishes
    // before it acks, so a history read after its consumer's state shows it.
    let again = Checkout::load(ctx, e.checkout_id).await?;
    if again.ended() {
        return Ok(Handled::Done);
    }
    if again.history.len() > checkout.history.len() {
        return Ok(Handled::Later(deadline));
    }
    let reason = format!("stalled: no progress for {}s after {}", deadline.as_secs_f64(), last.envelope.event_type());
    tracing::warn!(idle = ?idle, "checkout stalled: failing and compensating it");
    let failure = Failure { reason, step: "stalled", preface: None, source: "stall-watch" };
    settle::abort(ctx, &checkout, event, failure).await?;
    Ok(Handled::Done)
}

/// Whether the worker that acts next on this checkout has its event still
/// to handle and has been delivered or acked something lately (within the
/// deadline or the ack wait, whichever is longer): then the checkout waits
/// in a queue, it is not stalled. The worker that acts next is the one that
/// consumes the latest event an acting worker consumes.
async fn next_worker_is_busy(ctx: &Workers, checkout: &Checkout) -> bool {
    let acting = || WorkerName::ALL.iter().map(|&name| crate::worker(name)).filter(|w| w.role() == Role::Acts);
    let next = checkout.history.iter().rev().find_map(|e| {
        let event_type = e.envelope.event_type();
        acting().find(|w| w.consumes().contains(&event_type)).map(|w| (w.name(), e))
    });
    let Some((worker, pending)) = next else {
        return false;
    };
    let Some(info) = ctx.consumer_infos.get(ctx, worker).await else {
        return false;
    };
    let unhandled = pending.sequence > info.ack_floor.stream_sequence;
    // A worker that pulls gets deliveries, and one holding a batch acks or
    // loses it within the ack wait; a dead one gets and acks nothing.
    let window = ctx.settings.stall_deadline.max(ctx.settings.ack_wait);
    let recent = |at: Option<OffsetDateTime>| at.is_some_and(|at| OffsetDateTime::now_utc() - at < window);
    let alive = recent(info.delivered.last_active) || recent(info.ack_floor.last_active);
    unhandled && alive
}

/// The worker of this module.
pub struct StallWatch;

impl Worker for StallWatch {
    fn name(&self) -> WorkerName {
        WorkerName::StallWatch
    }

    fn durable(&self) -> &'static str {
        "choreo-stall"
    }

    fn consumes(&self) -> &'static [EventType] {
        &[EventType::CheckoutInitiated]
    }

    fn role(&self) -> Role {
        Role::Watches
    }

    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, delivery: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>> {
        Box::pin(handle(ctx, event, delivery))
    }
}
