//! The transactional outbox: every event a saga write implies is a row
//! written in that write's transaction, and the relay publishes the rows to
//! JetStream in the order they were written, deleting each once the stream
//! has acknowledged it. So the saga log and the event store never disagree:
//! a crash before the commit leaves neither, a crash after it leaves rows
//! that this or another replica's relay publishes (with `Nats-Msg-Id` = the
//! event id, so publishing a row twice stores it once).
//!
//! The relay never gives up: a failed publish is retried with backoff for as
//! long as it takes (minutes of NATS outage included), and whatever is
//! pending at start is drained first.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use chorus_domain::CheckoutId;
use chorus_event_store::{Envelope, EventPayload, EventStore};
use chorus_runtime::{retry, shutdown::Shutdown, trace::TraceParent};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    prelude::*,
    sea_query::Query,
};
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::{OrchestratorError, entity::outbox};

/// Most rows published as one pipelined batch.
const MAX_BATCH: u64 = 512;
/// How often the relay looks for rows nobody woke it for (another
/// replica's, left behind when it died).
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How old another replica's row must be before this relay takes it: its
/// own relay had that long and did not publish it.
const ORPHANED_AFTER: Duration = Duration::from_secs(2);
/// At shutdown, how long the relay keeps trying to drain; what is left is
/// published at the next start (it is in the database, not lost).
const DRAIN_AT_STOP: Duration = Duration::from_secs(5);

/// Writes `events` as outbox rows of `owner`, inside the caller's transaction.
pub async fn write(
    txn: &impl ConnectionTrait,
    owner: &str,
    events: &[Envelope],
    traceparent: Option<&str>,
    at: OffsetDateTime,
) -> Result<(), OrchestratorError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        rows.push(outbox::ActiveModel {
            seq: NotSet,
            event_id: Set(event.id),
            checkout_id: Set(event.checkout_id),
            body: Set(serde_json::to_string(event).map_err(|e| OrchestratorError::Corrupt(e.to_string()))?),
            traceparent: Set(traceparent.map(str::to_owned)),
            owner: Set(owner.to_owned()),
            created_at: Set(at),
        });
    }
    outbox::Entity::insert_many(rows).exec_without_returning(txn).await?;
    Ok(())
}

/// Whether any event of `checkout_id` still waits to be stored.
pub async fn has_pending(db: &impl ConnectionTrait, checkout_id: CheckoutId) -> Result<bool, OrchestratorError> {
    let pending = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Seq)
        .filter(outbox::Column::CheckoutId.eq(checkout_id))
        .limit(1)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(pending.is_some())
}

/// How many events wait to be stored (every replica's).
pub async fn pending_count(db: &impl ConnectionTrait) -> Result<u64, OrchestratorError> {
    Ok(outbox::Entity::find().count(db).await?)
}

/// Whether `event` is a saga's move into a terminal state.
fn ends_saga(event: &Envelope) -> bool {
    matches!(&event.payload, EventPayload::SagaTransitioned { to, .. } if to.is_terminal())
}

/// The relay of one replica: woken by that replica's writes, and sweeping
/// for orphaned rows every [`SWEEP_EVERY`].
#[derive(Clone, Debug)]
pub struct Relay {
    wake: Arc<Notify>,
    stored: broadcast::Sender<CheckoutId>,
}

impl Relay {
    /// Starts the relay task (it drains what is pending at once).
    pub fn start(db: DatabaseConnection, events: EventStore, owner: String, shutdown: &Shutdown) -> Relay {
        let (stored, _) = broadcast::channel(4096);
        let relay = Relay { wake: Arc::new(Notify::new()), stored };
        let task = RelayTask { db, events, owner, relay: relay.clone(), token: shutdown.token.clone() };
        shutdown.tracker.spawn(task.run());
        relay
    }

    /// Says that rows were just committed: publish them now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Checkout ids, each sent once the batch holding its terminal transition was stored.
    pub fn stored(&self) -> broadcast::Receiver<CheckoutId> {
        self.stored.subscribe()
    }
}

struct RelayTask {
    db: DatabaseConnection,
    events: EventStore,
    owner: String,
    relay: Relay,
    token: CancellationToken,
}

impl RelayTask {
    async fn run(self) {
        loop {
            let stopping = self.token.is_cancelled();
            let batch = match self.pending().await {
                Ok(batch) => batch,
                Err(e) if stopping => {
                    tracing::warn!(error = %e, "outbox not drained at stop; it is published at the next start");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(SWEEP_EVERY) => {}
                        () = self.token.cancelled() => {}
                    }
                    continue;
                }
            };
            let waiting =
                if batch.len() as u64 == MAX_BATCH { pending_count(&self.db).await.unwrap_or(MAX_BATCH) } else { batch.len() as u64 };
            metrics::gauge!("outbox_pending_messages").set(waiting as f64);
            if batch.is_empty() {
                if stopping {
                    return;
                }
                self.idle().await;
                continue;
            }
            let Some(ended) = self.publish(&batch).await else {
                if self.token.is_cancelled() {
                    tracing::warn!(pending = batch.len(), "outbox not drained at stop; it is published at the next start");
                    return;
                }
                continue;
            };
            let seqs: Vec<i64> = batch.iter().map(|row| row.seq).collect();
            if !self.delete(seqs).await {
                return;
            }
            for id in ended {
                let _ = self.relay.stored.send(id);
            }
            // A batch that was not full took everything committed when it
            // was read; whatever was committed since woke the relay (a wake
            // is kept until it is waited for), so no need to look again now.
            if batch.len() < MAX_BATCH as usize && !self.token.is_cancelled() {
                metrics::gauge!("outbox_pending_messages").set(0.0);
                self.idle().await;
            }
        }
    }

    /// The next rows to publish, in writing order: this replica's, those of
    /// checkouts it has rows for (so a checkout's events keep their order
    /// when a saga changed hands), and anyone's left too long.
    async fn pending(&self) -> Result<Vec<outbox::Model>, OrchestratorError> {
        let orphaned = OffsetDateTime::now_utc() - ORPHANED_AFTER;
        let mine = Query::select()
            .column(outbox::Column::CheckoutId)
            .from(outbox::Entity)
            .and_where(outbox::Column::Owner.eq(self.owner.as_str()))
            .to_owned();
        let rows = outbox::Entity::find()
            .filter(
                Condition::any()
                    .add(outbox::Column::Owner.eq(self.owner.as_str()))
                    .add(outbox::Column::CreatedAt.lt(orphaned))
                    .add(outbox::Column::CheckoutId.in_subquery(mine)),
            )
            .order_by_asc(outbox::Column::Seq)
            .limit(MAX_BATCH)
            .all(&self.db)
            .await?;
        Ok(rows)
    }

    /// Publishes `batch` in order until the stream has taken all of it, and
    /// returns the checkouts whose terminal transition it held (only then
    /// is a waiter's answer ready); `None` when it was not stored (stopping
    /// and the drain time is over, or a row that is not an event blocks the
    /// queue until someone fixes it).
    async fn publish(&self, batch: &[outbox::Model]) -> Option<BTreeSet<CheckoutId>> {
        let mut decoded = Vec::with_capacity(batch.len());
        for row in batch {
            match serde_json::from_str::<Envelope>(&row.body) {
                Ok(event) => decoded.push((event, row.traceparent.as_deref().and_then(TraceParent::parse))),
                // Written by this code from an Envelope: unreadable only if
                // the table was edited by hand. Keep it and say so loudly.
                Err(e) => {
                    tracing::error!(seq = row.seq, error = %e, "an outbox row is not an event; fix or delete it by hand");
                    metrics::counter!("outbox_publish_failures_total").increment(1);
                    self.pause(SWEEP_EVERY).await;
                    return None;
                }
            }
        }
        let ended = decoded.iter().filter(|(event, _)| ends_saga(event)).map(|(event, _)| event.checkout_id).collect();
        let events: Vec<_> = decoded.iter().map(|(e, t)| (e, t.as_ref())).collect();
        let append = || self.events.append_traced(&events);
        let policy = retry::forever(Duration::from_millis(50), Duration::from_secs(5));
        let retried = retry::until_ok(
            "publishing the outbox",
            policy,
            |_| true,
            || async {
                let result = append().await;
                if result.is_err() {
                    metrics::counter!("outbox_publish_failures_total").increment(1);
                }
                result
            },
        );
        tokio::select! {
            stored = retried => stored.ok().map(|_| ended),
            () = self.drain_over() => None,
        }
    }

    /// Deletes published rows, retrying until the database takes it; false
    /// only when stopping (the rows are then published again, deduplicated).
    async fn delete(&self, seqs: Vec<i64>) -> bool {
        let policy = retry::forever(Duration::from_millis(50), Duration::from_secs(5));
        let delete = retry::until_ok(
            "deleting published outbox rows",
            policy,
            |_| true,
            || outbox::Entity::delete_many().filter(outbox::Column::Seq.is_in(seqs.iter().copied())).exec(&self.db),
        );
        tokio::select! {
            deleted = delete => deleted.is_ok(),
            () = self.drain_over() => false,
        }
    }

    /// Until a write wakes the relay, the sweep is due, or the process stops.
    async fn idle(&self) {
        tokio::select! {
            () = self.relay.wake.notified() => {}
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            () = self.token.cancelled() => {}
        }
    }

    /// Resolves [`DRAIN_AT_STOP`] after the process began to stop: until
    /// then a retry goes on, after it what is left waits for the next start.
    async fn drain_over(&self) {
        self.token.cancelled().await;
        tokio::time::sleep(DRAIN_AT_STOP).await;
    }

    async fn pause(&self, pause: Duration) {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = self.token.cancelled() => {}
        }
    }
}
