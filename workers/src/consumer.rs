//! The loops workers run. An action worker pulls from its durable
//! consumer, decodes, handles, then acks each event; on failure it naks
//! with backoff; on the last delivery it gives up the worker's way (fail
//! the checkout) and terminates the message, so that nothing is redelivered
//! forever. A recording worker (audit, read models) runs the loop of
//! [`crate::recording`] instead.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    AckKind, Message,
    consumer::{AckPolicy, DeliverPolicy, PriorityPolicy, PullConsumer, pull},
};
use chorus_event_store::{RecordedEvent, store::decode, subjects};
use chorus_runtime::{retry, shutdown::Shutdown};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    Role, Worker, WorkerError, WorkerName, Workers,
    recording::{self, PIN_GROUP, pin_timing},
    worker::{Delivery, Handled},
};

/// Events one worker process handles at once.
const IN_FLIGHT: usize = 64;
/// Unacked events a consumer may have out across all its replicas.
const MAX_ACK_PENDING: i64 = 1_000;
/// The stall watch holds every open checkout's `CheckoutInitiated` unacked
/// until its deadline, so it may have many more out (at 1,000 checkouts a
/// second and a 30 s deadline, 30,000).
const STALL_MAX_ACK_PENDING: i64 = 100_000;
/// Longest redelivery delay after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often consumer lag is sampled into the gauges.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Longest pause between two tries while the event store is away.
const OUTAGE_RETRY_CAP: Duration = Duration::from_secs(2);
/// Pause before re-binding a consumer whose message stream ended.
pub(crate) const REBIND_AFTER: Duration = Duration::from_secs(1);
/// The subjects its consumer filters on: the event types it acts on, or
/// every event.
pub fn filters(worker: &dyn Worker) -> Vec<String> {
    match worker.consumes() {
        [] => vec![subjects::ALL.to_owned()],
        types => types.iter().map(|&t| subjects::event_type(t)).collect(),
    }
}

/// Deliveries before giving up; `-1` (never) for the workers that must see
/// every event (read models, audit) or that wait on purpose (stall).
pub fn max_deliver(worker: &dyn Worker, attempts: u32) -> i64 {
    match worker.role() {
        Role::Acts => i64::from(attempts.max(1)),
        Role::Records | Role::Watches => -1,
    }
}

/// The durable consumer of `worker`, exactly as `nats/consumers/` describes
/// it. The stall watch holds each event it gets for up to `stall_deadline`
/// in memory before it looks, so its ack wait is that much longer.
pub fn consumer_config(name: WorkerName, attempts: u32, ack_wait: Duration, stall_deadline: Duration) -> pull::Config {
    let worker = crate::worker(name);
    let (watches, records) = (worker.role() == Role::Watches, worker.role() == Role::Records);
    let ack_wait = if watches { stall_deadline + ack_wait } else { ack_wait };
    // One filter is written as `filter_subject`, as before several were allowed.
    let (filter_subject, filter_subjects) = match filters(worker) {
        mut one if one.len() == 1 => (one.remove(0), Vec::new()),
        several => (String::new(), several),
    };
    pull::Config {
        durable_name: Some(worker.durable().to_owned()),
        description: Some(format!("Chorus worker {name}")),
        filter_subject,
        filter_subjects,
        deliver_policy: DeliverPolicy::All,
        ack_policy: if records { AckPolicy::All } else { AckPolicy::Explicit },
        ack_wait,
        max_deliver: max_deliver(worker, attempts),
        max_ack_pending: if watches { STALL_MAX_ACK_PENDING } else { MAX_ACK_PENDING },
        priority_policy: if records { PriorityPolicy::PinnedClient } else { PriorityPolicy::None },
        priority_groups: if records { vec![PIN_GROUP.to_owned()] } else { Vec::new() },
        priority_timeout: if records { pin_timing(ack_wait).1 } else { Duration::ZERO },
        ..Default::default()
    }
}

/// Creates (or updates) the worker's consumer and runs it until shutdown.
pub async fn start(worker: WorkerName, ctx: Workers, shutdown: &Shutdown) -> Result<(), WorkerError> {
    crate::worker(worker).ready(&ctx)?;
    let consumer = bind(worker, &ctx).await?;
    let token = shutdown.token.clone();
    let tracker = shutdown.tracker.clone();
    shutdown.tracker.spawn(report_lag(worker, consumer.clone(), token.clone()));
    tracing::info!(worker = %worker, consumer = worker.durable(), "worker started");
    if crate::worker(worker).role() == Role::Records {
        shutdown.tracker.spawn(recording::record(worker, ctx, consumer, token));
        return Ok(());
    }
    shutdown.tracker.spawn(async move {
        let permits = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut consumer = consumer;
        while !token.is_cancelled() {
            // Pull no more than can be handled at once, so that no event
            // waits in a client buffer while its ack wait runs out.
            let pulled = consumer.stream().max_messages_per_batch(IN_FLIGHT).messages().await;
            let Some(mut messages) = opened(worker, &ctx, &mut consumer, pulled).await else {
                continue;
            };
            while let Some(message) = next_message(worker, &mut messages, &token).await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (ctx, token, permits) = (ctx.clone(), token.clone(), permits.clone());
                tracker.spawn(async move { process(worker, &ctx, message, &token, permit, &permits).await });
            }
            if !token.is_cancelled() {
                tokio::time::sleep(REBIND_AFTER).await;
            }
        }
        tracing::info!(worker = %worker, "stopped pulling");
    });
    Ok(())
}

/// The next message; `None` when the stream ended or the process stops.
pub(crate) async fn next_message(worker: WorkerName, messages: &mut pull::Stream, token: &CancellationToken) -> Option<Message> {
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            () = token.cancelled() => return None,
        };
        match next? {
            Ok(message) => return Some(message),
            // A pull's status (a missed heartbeat, a lost pin): it goes on.
            Err(e) => tracing::debug!(worker = %worker, error = %e, "pull status"),
        }
    }
}

/// The message stream `pulled`, or, when it could not be opened, `None`
/// after a pause and a new binding of `consumer` (the caller tries again).
pub(crate) async fn opened<E: std::fmt::Display>(
    worker: WorkerName,
    ctx: &Workers,
    consumer: &mut PullConsumer,
    pulled: Result<pull::Stream, E>,
) -> Option<pull::Stream> {
    match pulled {
        Ok(messages) => Some(messages),
        Err(e) => {
            tracing::warn!(worker = %worker, error = %e, "cannot pull; retrying");
            tokio::time::sleep(REBIND_AFTER).await;
            if let Ok(again) = bind(worker, ctx).await {
                *consumer = again;
            }
            None
        }
    }
}

/// Creates or updates the worker's consumer. Where it exists, its deliver
/// policy (where it started) is kept; where its ack or priority policy is
/// one the server cannot change in place (made by an earlier version), it
/// is replaced by one that starts after the last event the old one had
/// acked, so nothing is skipped and little is seen twice.
pub(crate) async fn bind(worker: WorkerName, ctx: &Workers) -> Result<PullConsumer, WorkerError> {
    let s = &ctx.settings;
    let mut config = consumer_config(worker, s.attempts, s.ack_wait, s.stall_deadline);
    let stream = ctx.events.stream();
    let what = format!("provisioning consumer {}", worker.durable());
    let existing = chorus_runtime::nats::until_provisioned(&what, || async {
        match stream.consumer_info(worker.durable()).await {
            Ok(info) => Ok(Some(info)),
            Err(e) if e.kind() == async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(WorkerError::nats)?;
    if let Some(info) = existing {
        let old = &info.config;
        if old.ack_policy != config.ack_policy || old.priority_policy != config.priority_policy {
            let start_sequence = info.ack_floor.stream_sequence + 1;
            tracing::warn!(consumer = worker.durable(), start_sequence, "replacing a consumer made with other policies");
            stream.delete_consumer(worker.durable()).await.map_err(WorkerError::nats)?;
            config.deliver_policy = DeliverPolicy::ByStartSequence { start_sequence };
        } else {
            config.deliver_policy = old.deliver_policy;
        }
    }
    chorus_runtime::nats::until_provisioned(&what, || stream.create_consumer(config.clone())).await.map_err(WorkerError::nats)
}

/// An event as received: decoded, counted, with its span (the checkout's
/// trace adopted as parent) and which delivery this is.
pub(crate) struct Received {
    pub event: RecordedEvent,
    delivered: i64,
    span: tracing::Span,
}

/// Decodes a message and records its metrics; a message that will never
/// decode is terminated here and `None` returned.
pub(crate) async fn receive(worker: WorkerName, message: &Message) -> Option<Received> {
    let (sequence, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(e) => {
            tracing::error!(worker = %worker, error = %e, "a message without JetStream metadata");
            return None;
        }
    };
    let event = match decode(sequence, &message.payload, message.headers.as_ref()) {
        Ok(event) => event,
        Err(e) => {
            // It will never decode: report it and stop its redelivery.
            tracing::error!(worker = %worker, sequence, error = %e, "poison message: not a Chorus event");
            metrics::counter!("events_poison_total", "consumer" => worker.durable()).increment(1);
            settle(worker, message, AckKind::Term).await;
            return None;
        }
    };
    let event_type = event.envelope.event_type().as_str();
    let trace_id = event.traceparent.as_deref().and_then(|t| t.split('-').nth(1)).unwrap_or_default().to_owned();
    let span = tracing::info_span!(
        "event",
        consumer = worker.durable(),
        checkout_id = %event.envelope.checkout_id,
        event_type,
        sequence,
        delivered,
        trace_id,
    );
    if let Some(parent) = crate::settle::trace_of(&event) {
        parent.adopt(&span);
    }
    metrics::counter!("events_consumed_total", "topic" => subjects::TOPIC, "type" => event_type, "consumer" => worker.durable())
        .increment(1);
    if delivered == 1 {
        let age = (OffsetDateTime::now_utc() - event.envelope.emitted_at).as_seconds_f64().max(0.0);
        metrics::histogram!("event_latency_seconds", "topic" => subjects::TOPIC, "type" => event_type).record(age);
    }
    Some(Received { event, delivered, span })
}

/// Handles one message, holding one of `permits` while it works, and
/// settles it with the server.
///
/// A first `Later` of the stall watch is waited out here, without a permit,
/// rather than by a nak with a delay: holding the event in memory costs no
/// message, where the nak, its advisory and the redelivery cost three per
/// checkout. Should the process stop meanwhile, the server redelivers the
/// event after the stall watch's ack wait, which outlasts the deadline.
async fn process(
    worker: WorkerName,
    ctx: &Workers,
    message: Message,
    token: &CancellationToken,
    permit: OwnedSemaphorePermit,
    permits: &Arc<Semaphore>,
) {
    let Some(Received { event, delivered, span }) = receive(worker, &message).await else {
        return;
    };
    async {
        let max = max_deliver(crate::worker(worker), ctx.settings.attempts);
        let delivery = Delivery { attempt: delivered, last: max > 0 && delivered >= max };
        let mut handled = persist(worker, ctx, &message, token, || handle(worker, ctx, &event, delivery)).await;
        if let Ok(Handled::Later(delay)) = handled
            && crate::worker(worker).role() == Role::Watches
        {
            drop(permit);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = token.cancelled() => return,
            }
            let Ok(_permit) = permits.clone().acquire_owned().await else {
                return;
            };
            handled = persist(worker, ctx, &message, token, || handle(worker, ctx, &event, delivery)).await;
        }
        let ack = match handled {
            // Stopping while the event store is away: another replica (or
            // this one, restarted) takes the event again.
            Err(e) if e.is_outage() => {
                tracing::info!(error = %e, "stopping during an event store outage; the event is redelivered");
                AckKind::Nak(None)
            }
            Ok(Handled::Done) => {
                tracing::debug!("event handled");
                if ctx.settings.crash_before_ack == Some(worker) {
                    tracing::warn!("CHORUS_TEST_CRASH_BEFORE_ACK: dying after the effect, before the ack");
                    std::process::abort();
                }
                AckKind::Ack
            }
            Ok(Handled::Later(delay)) => AckKind::Nak(Some(delay)),
            Err(e) if !delivery.last => {
                let delay = backoff(ctx.settings.backoff, delivered);
                tracing::warn!(error = %e, retry_in = ?delay, "handling failed; will retry");
                AckKind::Nak(Some(delay))
            }
            Err(e) => {
                tracing::error!(error = %e, "handling failed on the last delivery: giving up");
                metrics::counter!("events_poison_total", "consumer" => worker.durable()).increment(1);
                if give_up(worker, ctx, &message, token, &event, &e).await { AckKind::Term } else { AckKind::Nak(None) }
            }
        };
        settle_unless_dropped(worker, &message, ack, ctx.settings.drop_acks).await;
    }
    .instrument(span)
    .await;
}

async fn handle(worker: WorkerName, ctx: &Workers, event: &RecordedEvent, delivery: Delivery) -> Result<Handled, WorkerError> {
    crate::worker(worker).handle(ctx, event, delivery).await
}

/// The last delivery failed: end the checkout rather than leave it waiting.
/// True when that is done (or is the stall watch's to do); false when the
/// process stops during an event store outage, so the event must come back.
async fn give_up(
    worker: WorkerName,
    ctx: &Workers,
    message: &Message,
    token: &CancellationToken,
    event: &RecordedEvent,
    error: &WorkerError,
) -> bool {
    let given_up = persist(worker, ctx, message, token, || crate::worker(worker).give_up(ctx, event, error)).await;
    match given_up {
        Ok(()) => true,
        Err(e) if e.is_outage() => false,
        Err(e) => {
            tracing::error!(error = %e, "giving up failed too; the stall watch will settle the checkout");
            true
        }
    }
}

/// Runs `work` again for as long as it fails because the event store (or
/// NATS) is away, telling the server the event is still being worked on, so
/// that an outage never uses up the event's deliveries: only failures of the
/// step itself count towards giving up. Ends with the outage error only
/// when the process stops.
async fn persist<T, Fut>(
    worker: WorkerName,
    ctx: &Workers,
    message: &Message,
    token: &CancellationToken,
    work: impl FnMut() -> Fut,
) -> Result<T, WorkerError>
where
    Fut: Future<Output = Result<T, WorkerError>>,
{
    retry_holding(worker, ctx, std::slice::from_ref(message), token, WorkerError::is_outage, work).await
}

/// Runs `work` again while it fails with an error `retry` accepts, telling
/// the server `messages` are still being worked on (so they are not
/// redelivered meanwhile), with capped backoff; until the process stops.
pub(crate) async fn retry_holding<T, Fut>(
    worker: WorkerName,
    ctx: &Workers,
    messages: &[Message],
    token: &CancellationToken,
    retry: impl Fn(&WorkerError) -> bool,
    mut work: impl FnMut() -> Fut,
) -> Result<T, WorkerError>
where
    Fut: Future<Output = Result<T, WorkerError>>,
{
    let mut delays = retry::delays(ctx.settings.backoff, OUTAGE_RETRY_CAP);
    loop {
        match work().await {
            Err(e) if retry(&e) && !token.is_cancelled() => {
                let delay = delays.next().unwrap_or(OUTAGE_RETRY_CAP);
                tracing::warn!(worker = %worker, events = messages.len(), error = %e, retry_in = ?delay, "failed; retrying");
                for message in messages {
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::debug!(error = %e, "in-progress ack not sent");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = token.cancelled() => {}
                }
            }
            other => return other,
        }
    }
}

async fn settle(worker: WorkerName, message: &Message, kind: AckKind) {
    settle_unless_dropped(worker, message, kind, 0.0).await;
}

/// Settles the message, except that a share `drop` of acks is "lost" on
/// purpose (`CHORUS_TEST_DROP_ACKS`): the server redelivers those.
pub(crate) async fn settle_unless_dropped(worker: WorkerName, message: &Message, kind: AckKind, drop: f64) {
    if matches!(kind, AckKind::Ack) && drop > 0.0 && rand::random::<f64>() < drop {
        tracing::debug!(worker = %worker, "CHORUS_TEST_DROP_ACKS: not acking");
        return;
    }
    if let Err(e) = message.ack_with(kind).await {
        // The server redelivers after ack_wait; every handler is idempotent.
        tracing::warn!(worker = %worker, error = %e, "ack not sent");
    }
}

/// The redelivery delay after failed delivery `attempt`: exponential from
/// `base` with jitter, at most [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempt: i64) -> Duration {
    retry::delay(base, MAX_BACKOFF, u32::try_from(attempt).unwrap_or(u32::MAX))
}

/// Samples the consumer's backlog into `consumer_lag_messages{consumer}`
/// (not yet delivered) and `consumer_ack_pending_messages{consumer}`.
async fn report_lag(worker: WorkerName, mut consumer: PullConsumer, token: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(LAG_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = token.cancelled() => return,
        }
        if let Ok(info) = consumer.info().await {
            metrics::gauge!("consumer_lag_messages", "consumer" => worker.durable()).set(info.num_pending as f64);
            metrics::gauge!("consumer_ack_pending_messages", "consumer" => worker.durable()).set(info.num_ack_pending as f64);
        }
    }
}
