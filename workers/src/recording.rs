//! The loop of a recording worker (audit, read models): its replicas pull
//! in one priority group, the server pins one of them, and that one gets
//! the events in order, stores what arrives within a short linger as one
//! batch (retrying it in place until it is stored) and acks the batch with
//! one ack of its last event (`AckPolicy::All`).

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{
    WorkerName, Workers,
    consumer::{REBIND_AFTER, Received, next_message, opened, receive, retry_holding, settle_unless_dropped},
};

/// The priority group a recording worker's replicas pull in; the server
/// pins one of them.
pub(crate) const PIN_GROUP: &str = "chorus";
/// Most events a recording worker stores as one batch.
const RECORD_BATCH: usize = 256;
/// How long a recording worker waits, after an event arrives, for more to
/// store with it. A checkout's events come a few milliseconds apart, so
/// this turns one read-model write, one audit insert and one ack per event
/// into about one per checkout; the read models lag by as much (queries
/// never do: `checkout(id)` folds the stream when its view is behind).
const RECORD_LINGER: Duration = Duration::from_millis(20);

/// How a pinned client keeps its pin: the expiry of its pulls (each pull
/// renews the pin) and how long the server waits after the last one before
/// it pins a standby replica. The pin outlasts `ack_wait`, so that when it
/// moves, whatever the old client held unacked is already due for
/// redelivery and comes first: a later batch's ack (which acks everything
/// before it) can never cover an event nobody stored.
pub(crate) fn pin_timing(ack_wait: Duration) -> (Duration, Duration) {
    let expires = (ack_wait / 2).clamp(Duration::from_secs(1), Duration::from_secs(5));
    (expires, ack_wait + 2 * expires)
}

/// The loop of a recording worker: while this replica holds the pin, take
/// what has arrived (up to [`RECORD_BATCH`]), store it, ack it once.
pub(crate) async fn record(worker: WorkerName, ctx: Workers, mut consumer: PullConsumer, token: CancellationToken) {
    let (expires, pin_timeout) = pin_timing(ctx.settings.ack_wait);
    // When this replica last stored a batch: only the pinned one does.
    let mut stored_at = None;
    while !token.is_cancelled() {
        let pulled = consumer.stream().group(PIN_GROUP).expires(expires).max_messages_per_batch(RECORD_BATCH).messages().await;
        let Some(mut messages) = opened(worker, &ctx, &mut consumer, pulled).await else {
            continue;
        };
        while let Some(message) = next_message(worker, &mut messages, &token).await {
            let mut batch = vec![message];
            // Take what arrives within the linger, up to a full batch.
            let linger = tokio::time::sleep(RECORD_LINGER);
            tokio::pin!(linger);
            while batch.len() < RECORD_BATCH {
                tokio::select! {
                    next = messages.next() => match next {
                        Some(Ok(message)) => batch.push(message),
                        Some(Err(_)) | None => break,
                    },
                    () = &mut linger => break,
                }
            }
            if !record_batch(worker, &ctx, batch, &token).await {
                break;
            }
            stored_at = Some(std::time::Instant::now());
        }
        if !token.is_cancelled() {
            tokio::time::sleep(REBIND_AFTER).await;
        }
    }
    // Stopping with the pin: give it up, so that a standby replica (or
    // this one, restarted) takes over now rather than after the timeout.
    // A standby replica must not: it would unpin the one at work.
    if stored_at.is_some_and(|at| at.elapsed() < pin_timeout)
        && let Err(e) = ctx.events.stream().unpin_consumer(worker.durable(), PIN_GROUP).await
    {
        tracing::debug!(worker = %worker, error = %e, "pin not released; it times out");
    }
    tracing::info!(worker = %worker, "stopped pulling");
}

/// Stores a batch, retrying in place until it is stored (these workers
/// never give up, and storing an event twice changes nothing), then acks
/// its last event, which acks all of it. A batch is never skipped: the
/// next one's ack would cover it. False when the process stops first; the
/// batch is then redelivered to whichever replica is pinned next.
async fn record_batch(worker: WorkerName, ctx: &Workers, messages: Vec<Message>, token: &CancellationToken) -> bool {
    let mut events = Vec::with_capacity(messages.len());
    for message in &messages {
        // A message that is not an event is terminated by `receive`.
        if let Some(Received { event, .. }) = receive(worker, message).await {
            events.push(event);
        }
    }
    let stored = retry_holding(worker, ctx, &messages, token, |_| true, || crate::worker(worker).handle_batch(ctx, &events)).await;
    if let Err(e) = stored {
        tracing::info!(worker = %worker, error = %e, "stopping with a batch not stored; it is redelivered");
        return false;
    }
    if ctx.settings.crash_before_ack == Some(worker) {
        tracing::warn!("CHORUS_TEST_CRASH_BEFORE_ACK: dying after the effect, before the ack");
        std::process::abort();
    }
    if let Some(last) = messages.last() {
        settle_unless_dropped(worker, last, AckKind::Ack, ctx.settings.drop_acks).await;
    }
    tracing::debug!(worker = %worker, events = events.len(), "batch stored");
    true
}

