//! The CQRS read models (DESIGN §3.3), kept in NATS KV buckets.
//!
//! A view is a pure function of the *set* of events applied to it: each
//! view records the stream sequences it has applied, so applying an event
//! twice, or two events out of order (two projection replicas sharing the
//! consumer), gives the same value. (`orders_by_client` keeps only its
//! latest orders and so relies on stream order: see [`ClientOrders`].)
//! Writes are compare-and-set on the KV revision, so concurrent appliers
//! never lose an update. A rebuild purges a bucket and folds the whole
//! stream again; it yields the same values.

use std::{collections::HashMap, time::Instant};

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use chorus_runtime::nats::until_provisioned;
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use crate::{
    CheckoutId, ClientId,
    EventStore, EventStoreError, RecordedEvent,
    known::Known,
    store::{cas, kv_stream_config},
};

mod views;

use views::View;
pub use views::{CheckoutStatus, CheckoutView, ClientOrder, ClientOrders};

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
    pub async fn checkout(&self, id: CheckoutId) -> Result<Option<CheckoutView>, EventStoreError> {
        read(&self.checkouts, &id.to_string()).await
    }

    /// The view of a checkout including every event already stored: the
    /// read model when it has applied the checkout's last event, else a
    /// fold of the checkout's events (read-your-writes right after a mutation).
    pub async fn checkout_fresh(&self, events: &EventStore, id: CheckoutId) -> Result<Option<CheckoutView>, EventStoreError> {
        let (stored, last) = futures::try_join!(self.checkout(id), events.last_of_checkout(id))?;
        match (stored, last) {
            (_, None) => Ok(None),
            (Some(view), Some(last)) if view.applied.binary_search(&last).is_ok() => Ok(Some(view)),
            _ => Ok(CheckoutView::fold(&events.read_checkout(id).await?)),
        }
    }

    pub async fn orders_by_client(&self, client_id: ClientId) -> Result<Option<ClientOrders>, EventStoreError> {
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
                if V::MERGES_BY_VALUE {
                    // Merged by value, again from what is stored if the
                    // compare-and-set meets a newer write.
                    let merge = |live: Option<V>| match live {
                        Some(live) => V::merge(&live, rebuilt_ref),
                        None => Some(rebuilt_ref.clone()),
                    };
                    return modify::<V>(store, None, false, &key, merge).await;
                }
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
