//! The CQRS read models (DESIGN §3.3), kept in NATS KV buckets.
//!
//! A view is a pure function of the *set* of events applied to it: each
//! view records the stream sequences it has applied, so applying an event
//! twice, or two events out of order (two projection replicas sharing the
//! consumer), gives the same value. Writes are compare-and-set on the KV
//! revision, so concurrent appliers never lose an update. A rebuild purges a
//! bucket and folds the whole stream again; it yields the same values.

use std::{collections::HashMap, time::Instant};

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use chorus_runtime::nats::until_provisioned;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    EventPayload, EventStore, EventStoreError, Pattern, RecordedEvent,
    event::micros_rfc3339,
    known::Known,
    store::{cas, kv_stream_config},
};

/// KV bucket of [`CheckoutView`]s, keyed by checkout id.
pub const CHECKOUTS_BUCKET: &str = "CHECKOUTS";
/// KV bucket of [`ClientOrders`], keyed by client id.
pub const ORDERS_BY_CLIENT_BUCKET: &str = "ORDERS_BY_CLIENT";
/// How many KV writes a rebuild keeps in flight.
const REBUILD_WRITES_IN_FLIGHT: usize = 64;

/// A read model, by the name `chorus replay --rebuild` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Projection {
    Checkouts,
    OrdersByClient,
}

impl Projection {
    pub const ALL: [Projection; 2] = [Projection::Checkouts, Projection::OrdersByClient];

    pub fn name(self) -> &'static str {
        match self {
            Projection::Checkouts => "checkouts",
            Projection::OrdersByClient => "orders_by_client",
        }
    }

    pub fn bucket(self) -> &'static str {
        match self {
            Projection::Checkouts => CHECKOUTS_BUCKET,
            Projection::OrdersByClient => ORDERS_BY_CLIENT_BUCKET,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Projection::ALL.into_iter().find(|p| p.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            Projection::Checkouts => "Chorus read model: checkout id -> status, order, failure, step times",
            Projection::OrdersByClient => "Chorus read model: client id -> orders",
        }
    }
}

/// Where a checkout stands, in either pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckoutStatus {
    Pending,
    Succeeded,
    Failed,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutStatus::Pending => "PENDING",
            CheckoutStatus::Succeeded => "SUCCEEDED",
            CheckoutStatus::Failed => "FAILED",
        }
    }
}

/// The `checkouts` read model: one checkout as a reader wants it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckoutView {
    pub checkout_id: Uuid,
    pub pattern: Pattern,
    pub status: CheckoutStatus,
    pub client_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub failure_reason: Option<String>,
    pub failed_step: Option<String>,
    /// When each step happened: event type (or, for the orchestrated saga,
    /// the state it entered) → first time seen.
    pub steps: std::collections::BTreeMap<String, String>,
    #[serde(with = "micros_rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "micros_rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The highest stream sequence applied.
    pub last_sequence: u64,
    /// Every sequence applied, sorted: what makes re-applying harmless.
    pub applied: Vec<u64>,
    /// The terminal event that decided the status (the first in the stream).
    pub terminal_sequence: Option<u64>,
}

impl CheckoutView {
    /// The view with `event` applied, or `None` if it was already applied.
    pub fn apply(view: Option<Self>, event: &RecordedEvent) -> Option<Self> {
        let e = &event.envelope;
        let mut view = match view {
            Some(v) if v.applied.binary_search(&event.sequence).is_ok() => return None,
            Some(v) => v,
            None => CheckoutView {
                checkout_id: e.checkout_id,
                pattern: e.pattern,
                status: CheckoutStatus::Pending,
                client_id: None,
                order_id: None,
                failure_reason: None,
                failed_step: None,
                steps: Default::default(),
                created_at: e.emitted_at,
                updated_at: e.emitted_at,
                last_sequence: 0,
                applied: Vec::new(),
                terminal_sequence: None,
            },
        };
        let at = micros_rfc3339::format(e.emitted_at).unwrap_or_default();
        let steps: Vec<&str> = match &e.payload {
            EventPayload::SagaTransitioned { .. } => e.payload.transitions().into_iter().map(|t| t.to).collect(),
            other => vec![other.event_type()],
        };
        for step in steps {
            view.steps.entry(step.to_owned()).and_modify(|t| if at < *t { t.clone_from(&at) }).or_insert_with(|| at.clone());
        }
        match &e.payload {
            EventPayload::CheckoutInitiated { client_id, .. } | EventPayload::OrderCreated { client_id, .. } => {
                view.client_id = Some(*client_id);
            }
            _ => {}
        }
        if let EventPayload::OrderCreated { order_id, .. } = &e.payload {
            view.order_id.get_or_insert(*order_id);
        }
        // The first terminal event in stream order decides, whatever the
        // order in which they are applied.
        if e.payload.is_terminal() && view.terminal_sequence.is_none_or(|t| event.sequence < t) {
            view.terminal_sequence = Some(event.sequence);
            match &e.payload {
                EventPayload::CheckoutSucceeded { order_id, .. } => {
                    view.status = CheckoutStatus::Succeeded;
                    view.order_id = Some(*order_id);
                    view.failure_reason = None;
                    view.failed_step = None;
                }
                EventPayload::CheckoutFailed { reason, step, .. } => {
                    view.status = CheckoutStatus::Failed;
                    view.failure_reason = Some(reason.clone());
                    view.failed_step = Some(step.clone());
                }
                _ => {}
            }
        }
        view.created_at = view.created_at.min(e.emitted_at);
        view.updated_at = view.updated_at.max(e.emitted_at);
        view.last_sequence = view.last_sequence.max(event.sequence);
        let at = view.applied.partition_point(|s| *s < event.sequence);
        view.applied.insert(at, event.sequence);
        Some(view)
    }

    /// Folds a checkout's events into its view, as the projection would.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Option<Self> {
        events.into_iter().fold(None, |view, event| Self::apply(view.clone(), event).or(view))
    }
}

/// One order in a client's read model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientOrder {
    pub order_id: Uuid,
    pub checkout_id: Uuid,
    pub pattern: Pattern,
    pub total_cents: i64,
    pub sequence: u64,
    #[serde(with = "micros_rfc3339")]
    pub at: OffsetDateTime,
}

/// The `orders_by_client` read model (the seed's): a client's orders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientOrders {
    pub client_id: Uuid,
    pub total_orders: u64,
    pub last_order_id: Option<Uuid>,
    pub last_checkout_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_update_ts: Option<OffsetDateTime>,
    /// In stream order.
    pub orders: Vec<ClientOrder>,
    pub last_sequence: u64,
}

impl ClientOrders {
    /// The read model with `event` applied; `None` when it does not concern
    /// this model or was already applied.
    pub fn apply(view: Option<Self>, event: &RecordedEvent) -> Option<Self> {
        let e = &event.envelope;
        let EventPayload::OrderCreated { order_id, client_id, total_cents, .. } = &e.payload else {
            return None;
        };
        let mut view = view.unwrap_or(ClientOrders {
            client_id: *client_id,
            total_orders: 0,
            last_order_id: None,
            last_checkout_id: None,
            last_update_ts: None,
            orders: Vec::new(),
            last_sequence: 0,
        });
        if view.orders.iter().any(|o| o.sequence == event.sequence || o.order_id == *order_id) {
            return None;
        }
        let order = ClientOrder {
            order_id: *order_id,
            checkout_id: e.checkout_id,
            pattern: e.pattern,
            total_cents: *total_cents,
            sequence: event.sequence,
            at: e.emitted_at,
        };
        let at = view.orders.partition_point(|o| o.sequence < event.sequence);
        view.orders.insert(at, order);
        view.total_orders = view.orders.len() as u64;
        if let Some(last) = view.orders.last() {
            view.last_order_id = Some(last.order_id);
            view.last_checkout_id = Some(last.checkout_id);
            view.last_update_ts = Some(last.at);
            view.last_sequence = last.sequence;
        }
        Some(view)
    }
}

/// What every read model is to the machinery that stores it.
trait View: Serialize + DeserializeOwned + Clone {
    fn key(event: &RecordedEvent) -> Option<String>;
    /// Whether `event` is the first its key ever sees, so that writing it
    /// most likely creates the key.
    fn starts(_event: &RecordedEvent) -> bool {
        false
    }
    fn apply(view: Option<Self>, event: &RecordedEvent) -> Option<Self>;
    fn applied(&self) -> Vec<u64>;
}

impl View for CheckoutView {
    fn key(event: &RecordedEvent) -> Option<String> {
        Some(event.envelope.checkout_id.to_string())
    }
    fn starts(event: &RecordedEvent) -> bool {
        matches!(event.envelope.payload, EventPayload::CheckoutInitiated { .. })
    }
    fn apply(view: Option<Self>, event: &RecordedEvent) -> Option<Self> {
        CheckoutView::apply(view, event)
    }
    fn applied(&self) -> Vec<u64> {
        self.applied.clone()
    }
}

impl View for ClientOrders {
    fn key(event: &RecordedEvent) -> Option<String> {
        match &event.envelope.payload {
            EventPayload::OrderCreated { client_id, .. } => Some(client_id.to_string()),
            _ => None,
        }
    }
    fn apply(view: Option<Self>, event: &RecordedEvent) -> Option<Self> {
        ClientOrders::apply(view, event)
    }
    fn applied(&self) -> Vec<u64> {
        self.orders.iter().map(|o| o.sequence).collect()
    }
}

/// What a rebuild did.
#[derive(Clone, Debug)]
pub struct RebuildReport {
    pub projection: Projection,
    pub events: u64,
    pub keys: u64,
    pub elapsed: std::time::Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The read models' buckets; cheap to clone.
#[derive(Clone)]
pub struct Projections {
    js: jetstream::Context,
    checkouts: kv::Store,
    orders_by_client: kv::Store,
    /// What this process's applies last wrote to each bucket.
    known: [Known; 2],
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections").finish_non_exhaustive()
    }
}

impl Projections {
    /// Creates or updates both buckets (idempotent).
    pub async fn provision(js: jetstream::Context, replicas: usize) -> Result<Self, EventStoreError> {
        let mut stores = Vec::new();
        for projection in Projection::ALL {
            let err = |e: async_nats::Error| EventStoreError::Provision { what: projection.bucket(), source: e };
            let config = kv_stream_config(projection.bucket(), projection.description(), replicas);
            until_provisioned(projection.bucket(), || js.create_or_update_stream(config.clone())).await.map_err(|e| err(e.into()))?;
            let store =
                until_provisioned(projection.bucket(), || js.get_key_value(projection.bucket())).await.map_err(|e| err(e.into()))?;
            stores.push(store);
        }
        let orders_by_client = stores.pop().ok_or_else(|| EventStoreError::read_model("no bucket"))?;
        let checkouts = stores.pop().ok_or_else(|| EventStoreError::read_model("no bucket"))?;
        Ok(Projections { js, checkouts, orders_by_client, known: Default::default() })
    }

    /// Binds to buckets that already exist, changing nothing.
    pub async fn open(js: jetstream::Context) -> Result<Self, EventStoreError> {
        let checkouts = js.get_key_value(CHECKOUTS_BUCKET).await.map_err(EventStoreError::read)?;
        let orders_by_client = js.get_key_value(ORDERS_BY_CLIENT_BUCKET).await.map_err(EventStoreError::read)?;
        Ok(Projections { js, checkouts, orders_by_client, known: Default::default() })
    }

    fn store(&self, projection: Projection) -> &kv::Store {
        match projection {
            Projection::Checkouts => &self.checkouts,
            Projection::OrdersByClient => &self.orders_by_client,
        }
    }

    /// Applies one event to every read model it concerns; harmless to repeat.
    pub async fn apply(&self, event: &RecordedEvent) -> Result<(), EventStoreError> {
        self.apply_all(std::slice::from_ref(event)).await
    }

    /// Applies a batch of events with one write per key: the events of one
    /// checkout (or client) are folded together, in the order given, and
    /// written with a single compare-and-set.
    pub async fn apply_all(&self, events: &[RecordedEvent]) -> Result<(), EventStoreError> {
        let [checkouts, orders_by_client] = &self.known;
        futures::try_join!(
            update_all::<CheckoutView>(&self.checkouts, checkouts, events),
            update_all::<ClientOrders>(&self.orders_by_client, orders_by_client, events),
        )?;
        Ok(())
    }

    /// The stored view of a checkout (maybe behind the stream: see
    /// [`Self::checkout_fresh`]).
    pub async fn checkout(&self, id: Uuid) -> Result<Option<CheckoutView>, EventStoreError> {
        read(&self.checkouts, &id.to_string()).await
    }

    /// The view of a checkout including every event already stored: the
    /// read model when it has applied the checkout's last event, else a
    /// fold of the checkout's events (read-your-writes right after a mutation).
    pub async fn checkout_fresh(&self, events: &EventStore, id: Uuid) -> Result<Option<CheckoutView>, EventStoreError> {
        let (stored, last) = futures::try_join!(self.checkout(id), events.last_of_checkout(id))?;
        match (stored, last) {
            (_, None) => Ok(None),
            (Some(view), Some(last)) if view.applied.binary_search(&last).is_ok() => Ok(Some(view)),
            _ => Ok(CheckoutView::fold(&events.read_checkout(id).await?)),
        }
    }

    pub async fn orders_by_client(&self, client_id: Uuid) -> Result<Option<ClientOrders>, EventStoreError> {
        read(&self.orders_by_client, &client_id.to_string()).await
    }

    /// Every key and raw value of one read model, sorted by key (for
    /// comparing a model with its rebuild).
    pub async fn dump(&self, projection: Projection) -> Result<Vec<(String, serde_json::Value)>, EventStoreError> {
        let store = self.store(projection);
        let keys: Vec<String> = store.keys().await.map_err(EventStoreError::read_model)?.try_collect().await.map_err(EventStoreError::read_model)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = store.get(&key).await.map_err(EventStoreError::read_model)? {
                let value = serde_json::from_slice(&value).map_err(|source| EventStoreError::Decode { sequence: 0, source })?;
                out.push((key, value));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Drops one read model and folds the whole stream into it again.
    /// Safe while the projection worker runs: a key it wrote meanwhile is
    /// merged (every view records what it has applied), not overwritten.
    pub async fn rebuild(&self, events: &EventStore, projection: Projection) -> Result<RebuildReport, EventStoreError> {
        let started = Instant::now();
        let bucket_stream = self
            .js
            .get_stream(format!("KV_{}", projection.bucket()))
            .await
            .map_err(EventStoreError::read_model)?;
        bucket_stream.purge().await.map_err(EventStoreError::read_model)?;
        let (count, keys) = match projection {
            Projection::Checkouts => rebuild_into::<CheckoutView>(events, self.store(projection)).await?,
            Projection::OrdersByClient => rebuild_into::<ClientOrders>(events, self.store(projection)).await?,
        };
        Ok(RebuildReport { projection, events: count, keys, elapsed: started.elapsed() })
    }
}

async fn read<T: DeserializeOwned>(store: &kv::Store, key: &str) -> Result<Option<T>, EventStoreError> {
    match store.get(key).await.map_err(EventStoreError::read_model)? {
        Some(value) => serde_json::from_slice(&value).map(Some).map_err(|source| EventStoreError::Decode { sequence: 0, source }),
        None => Ok(None),
    }
}

/// Applies `events` grouped by key: one compare-and-set per key, the keys
/// written concurrently.
async fn update_all<V: View>(store: &kv::Store, known: &Known, events: &[RecordedEvent]) -> Result<(), EventStoreError> {
    let mut by_key: HashMap<String, Vec<&RecordedEvent>> = HashMap::new();
    for event in events {
        if let Some(key) = V::key(event) {
            by_key.entry(key).or_default().push(event);
        }
    }
    // A join, not a stream combinator: the latter's closure makes the
    // future not `Send` for every lifetime, so callers could not spawn it.
    let writes = by_key.into_iter().map(|(key, events)| update_key::<V>(store, known, key, events));
    futures::future::try_join_all(writes).await?;
    Ok(())
}

async fn update_key<V: View>(store: &kv::Store, known: &Known, key: String, events: Vec<&RecordedEvent>) -> Result<(), EventStoreError> {
    let new_key = events.iter().any(|e| V::starts(e));
    modify::<V>(store, Some(known), new_key, &key, |current| {
        // `None` from `apply` means "nothing new": write only if some event
        // of the group changed the view.
        let mut changed = false;
        let mut view = current;
        for event in &events {
            if let Some(next) = V::apply(view.clone(), event) {
                view = Some(next);
                changed = true;
            }
        }
        if changed { view } else { None }
    })
    .await
}

/// Writes `change(current)` to `key` unless it returns `None`, with CAS.
async fn modify<V: View>(
    store: &kv::Store,
    known: Option<&Known>,
    new_key: bool,
    key: &str,
    change: impl Fn(Option<V>) -> Option<V>,
) -> Result<(), EventStoreError> {
    cas(store, key, known, new_key, |current| {
        let current = current
            .map(serde_json::from_slice::<V>)
            .transpose()
            .map_err(|source| EventStoreError::Decode { sequence: 0, source })?;
        Ok(change(current).map(|next| serde_json::to_vec(&next).map(Bytes::from)).transpose()?)
    })
    .await
}

/// Folds the whole stream in memory (one write per key, not per event),
/// then writes every key, merging with whatever a live projector wrote.
async fn rebuild_into<V: View + Send + Sync + 'static>(events: &EventStore, store: &kv::Store) -> Result<(u64, u64), EventStoreError> {
    let last = events.last_sequence().await?;
    let mut views: HashMap<String, V> = HashMap::new();
    let mut count = 0u64;
    if last > 0 {
        let mut stream = events.follow(1).await?;
        while let Some(event) = stream.next().await {
            let event = event?;
            count += 1;
            if let Some(key) = V::key(&event) {
                let current = views.remove(&key);
                let next = V::apply(current.clone(), &event).or(current);
                if let Some(next) = next {
                    views.insert(key, next);
                }
            }
            if event.sequence >= last {
                break;
            }
        }
    }
    let keys = views.len() as u64;
    futures::stream::iter(views)
        .map(|(key, rebuilt)| async move {
            let sequences = rebuilt.applied();
            let rebuilt_ref = &rebuilt;
            // `None` current: write the rebuilt view. A live write got there
            // first: apply the rebuilt view's events to it.
            let missing = loop {
                let current: Option<V> = read(store, &key).await?;
                let Some(current) = current else {
                    match store.create(&key, Bytes::from(serde_json::to_vec(rebuilt_ref)?)).await {
                        Ok(_) => return Ok::<(), EventStoreError>(()),
                        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(EventStoreError::read_model(e)),
                    }
                };
                let have = current.applied();
                break sequences.iter().copied().filter(|s| !have.contains(s)).collect::<Vec<_>>();
            };
            for sequence in missing {
                if let Some(event) = events.get(sequence).await? {
                    modify::<V>(store, None, false, &key, |current| V::apply(current, &event)).await?;
                }
            }
            Ok(())
        })
        .buffer_unordered(REBUILD_WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok((count, keys))
}

/// The stream config of a projection bucket, for `nats/` and its test.
pub fn bucket_stream_config(projection: Projection, replicas: usize) -> stream::Config {
    kv_stream_config(projection.bucket(), projection.description(), replicas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    fn at(seq: u64, checkout: Uuid, payload: EventPayload) -> RecordedEvent {
        let mut envelope = Envelope::new(checkout, Pattern::Choreographed, payload);
        envelope.emitted_at = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seq as i64);
        RecordedEvent { sequence: seq, envelope, traceparent: None }
    }

    fn happy(checkout: Uuid, client: Uuid, order: Uuid) -> Vec<RecordedEvent> {
        vec![
            at(3, checkout, EventPayload::CheckoutInitiated { client_id: client, items: vec![], idempotency_key: None }),
            at(5, checkout, EventPayload::StockReserved { reservation_id: Uuid::nil(), items: vec![], priced: vec![], client_id: None, initiated_at: None }),
            at(8, checkout, EventPayload::OrderCreated { order_id: order, client_id: client, total_cents: 500, items: vec![] }),
            at(9, checkout, EventPayload::CheckoutSucceeded { order_id: order, client_id: None }),
        ]
    }

    #[test]
    fn a_checkout_view_does_not_depend_on_order_or_repetition() {
        let (checkout, client, order) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let events = happy(checkout, client, order);
        let forward = CheckoutView::fold(&events).expect("view");
        assert_eq!(forward.status, CheckoutStatus::Succeeded);
        assert_eq!(forward.order_id, Some(order));
        assert_eq!(forward.client_id, Some(client));
        assert_eq!(forward.applied, vec![3, 5, 8, 9]);
        assert_eq!(forward.steps.len(), 4);
        let mut shuffled: Vec<&RecordedEvent> = events.iter().rev().collect();
        shuffled.extend(events.iter());
        assert_eq!(CheckoutView::fold(shuffled).expect("view"), forward);
        assert!(CheckoutView::apply(Some(forward.clone()), &events[1]).is_none(), "a re-applied event writes nothing");
    }

    #[test]
    fn the_first_terminal_event_in_the_stream_decides() {
        let checkout = Uuid::new_v4();
        let failed = at(4, checkout, EventPayload::CheckoutFailed { reason: "stalled".into(), step: "stalled".into(), client_id: None });
        let late = at(7, checkout, EventPayload::CheckoutSucceeded { order_id: Uuid::new_v4(), client_id: None });
        for events in [vec![&failed, &late], vec![&late, &failed]] {
            let view = CheckoutView::fold(events).expect("view");
            assert_eq!(view.status, CheckoutStatus::Failed);
            assert_eq!(view.failure_reason.as_deref(), Some("stalled"));
        }
    }

    #[test]
    fn client_orders_count_each_order_once_and_track_the_last() {
        let client = Uuid::new_v4();
        let (c1, c2) = (Uuid::new_v4(), Uuid::new_v4());
        let (o1, o2) = (Uuid::new_v4(), Uuid::new_v4());
        let e1 = at(10, c1, EventPayload::OrderCreated { order_id: o1, client_id: client, total_cents: 1, items: vec![] });
        let e2 = at(20, c2, EventPayload::OrderCreated { order_id: o2, client_id: client, total_cents: 2, items: vec![] });
        let view = ClientOrders::apply(None, &e2).expect("first");
        let view = ClientOrders::apply(Some(view), &e1).expect("second");
        assert!(ClientOrders::apply(Some(view.clone()), &e1).is_none());
        assert_eq!(view.total_orders, 2);
        assert_eq!(view.last_order_id, Some(o2));
        assert_eq!(view.last_checkout_id, Some(c2));
        assert_eq!(view.last_sequence, 20);
        let other = at(30, c1, EventPayload::CheckoutSucceeded { order_id: o1, client_id: None });
        assert!(ClientOrders::apply(Some(view), &other).is_none(), "only OrderCreated concerns it");
    }
}
