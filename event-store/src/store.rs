//! JetStream as the event store: provisioning, append, reads and live follow.

use std::time::Duration;

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        consumer::{DeliverPolicy, pull::OrderedConfig},
        kv,
        stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
    },
};
use bytes::Bytes;
use chorus_runtime::{
    nats::until_provisioned,
    trace::{TRACEPARENT, TraceParent},
};
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use uuid::Uuid;

use crate::{CheckoutId, EventStoreError, Envelope, RecordedEvent, known::Known, subjects};

/// How long events are kept (DESIGN §2).
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long the stream remembers a `Nats-Msg-Id` to drop a re-publish.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// How long a page read waits for a message the stream said it holds.
const PAGE_STALL: Duration = Duration::from_secs(2);

/// A page of the stream, for walking it from a sequence.
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<RecordedEvent>,
    /// Where the next page starts; `None` when this page reached the end.
    pub next_sequence: Option<u64>,
}

/// Where an appended event sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub sequence: u64,
    /// The stream already held this event id (within its dedupe window).
    pub duplicate: bool,
}

/// A handle on stream `CHECKOUT_EVENTS`; cheap to clone.
#[derive(Clone)]
pub struct EventStore {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore").field("stream", &subjects::STREAM).finish()
    }
}

/// The stream exactly as DESIGN §2 describes it; `nats/stream.json` is the
/// same definition for the `nats` CLI.
pub fn stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: subjects::STREAM.to_owned(),
        description: Some("Chorus checkout events (both saga patterns)".to_owned()),
        subjects: vec![subjects::ALL.to_owned()],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        max_age: RETENTION,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas,
        allow_direct: true,
        ..Default::default()
    }
}

/// The stream behind a KV bucket (one value per key), written as such rather
/// than through `create_key_value`, whose account query does not parse a
/// 2.9 server's answer (ADR-8).
pub fn kv_stream_config(bucket: &str, description: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: RETENTION,
        max_message_size: -1,
        max_bytes: -1,
        storage: StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    }
}

impl EventStore {
    /// Creates or updates the stream (idempotent: every process may call it
    /// at start).
    pub async fn provision(client: async_nats::Client, replicas: usize) -> Result<Self, EventStoreError> {
        let js = jetstream::new(client);
        // A cluster that has just formed (or is electing a leader) answers
        // these with timeouts for a while: wait for it, saying so.
        let stream_err = |e: async_nats::Error| EventStoreError::Provision { what: "stream CHECKOUT_EVENTS", source: e };
        until_provisioned("provisioning stream CHECKOUT_EVENTS", || js.create_or_update_stream(stream_config(replicas)))
            .await
            .map_err(|e| stream_err(e.into()))?;
        let stream = until_provisioned("binding stream CHECKOUT_EVENTS", || js.get_stream(subjects::STREAM))
            .await
            .map_err(|e| stream_err(e.into()))?;
        Ok(EventStore { js, stream })
    }

    /// Binds to a stream that already exists, changing nothing
    /// (for tools run against a deployment they must not reconfigure).
    pub async fn open(client: async_nats::Client) -> Result<Self, EventStoreError> {
        let js = jetstream::new(client);
        let stream = js.get_stream(subjects::STREAM).await.map_err(EventStoreError::read)?;
        Ok(EventStore { js, stream })
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The stream itself, for durable consumers (the workers).
    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }

    /// Appends one event and returns its stream sequence. Publishing the
    /// same event again (same id) stores nothing new and returns the first
    /// sequence, so a caller may retry freely.
    pub async fn append(&self, event: &Envelope, trace: Option<&TraceParent>) -> Result<u64, EventStoreError> {
        self.append_once(event, trace).await.map(|a| a.sequence)
    }

    /// Like [`Self::append`], and says whether the stream already held it.
    pub async fn append_once(&self, event: &Envelope, trace: Option<&TraceParent>) -> Result<Appended, EventStoreError> {
        let mut appended = self.append_all(std::slice::from_ref(event), trace).await?;
        appended.pop().ok_or(EventStoreError::Publish { event_id: event.id, source: "no acknowledgement".into() })
    }

    /// Appends events in the order given with every publish in flight at
    /// once; returns where each landed. Same dedupe and retry rules as [`Self::append`]. One
    /// connection keeps the order, so a checkout's events stay in sequence.
    pub async fn append_all(&self, events: &[Envelope], trace: Option<&TraceParent>) -> Result<Vec<Appended>, EventStoreError> {
        let events: Vec<_> = events.iter().map(|e| (e, trace)).collect();
        self.append_traced(&events).await
    }

    /// [`Self::append_all`] with a trace context per event.
    pub async fn append_traced(&self, events: &[(&Envelope, Option<&TraceParent>)]) -> Result<Vec<Appended>, EventStoreError> {
        let publish_err = |id: Uuid| move |e: async_nats::Error| EventStoreError::Publish { event_id: id, source: e };
        let mut sent = Vec::new();
        let mut pending = Vec::new();
        for &(event, trace) in events {
            let subject = subjects::event(event.checkout_id, event.event_type());
            let payload = Bytes::from(serde_json::to_vec(event)?);
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
            let trace = trace.map(TraceParent::child).unwrap_or_else(TraceParent::new_root);
            headers.insert(TRACEPARENT, trace.to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| publish_err(event.id)(e.into()))?;
            pending.push(async move { ack.await.map_err(|e| publish_err(event.id)(e.into())) });
            sent.push(event);
        }
        let acks = futures::future::try_join_all(pending).await?;
        for (event, ack) in sent.iter().zip(&acks) {
            if !ack.duplicate {
                metrics::counter!("events_published_total", "topic" => subjects::TOPIC, "type" => event.event_type().as_str())
                    .increment(1);
            }
        }
        Ok(acks.iter().map(|ack| Appended { sequence: ack.sequence, duplicate: ack.duplicate }).collect())
    }

    /// One checkout's events in stream order, each id once: two batch
    /// direct gets by subject (`ecommerce.checkout.<id>.*`). Never scans the
    /// stream (nats-server 2.11 finds a subject's messages by itself).
    pub async fn read_checkout(&self, checkout_id: CheckoutId) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let mut events = crate::direct::read_subject(&self.js.client(), &subjects::checkout(checkout_id)).await?;
        // An event re-published after the stream's dedupe window is stored
        // twice (same id, two sequences); a replay shows it once, first.
        let mut seen = std::collections::HashSet::new();
        events.retain(|e| seen.insert(e.envelope.id));
        Ok(events)
    }

    /// The sequence of the checkout's last stored event, if it has any: one
    /// direct get of the last message under its subjects.
    pub async fn last_of_checkout(&self, checkout_id: CheckoutId) -> Result<Option<u64>, EventStoreError> {
        match self.stream.direct_get_last_for_subject(subjects::checkout(checkout_id)).await {
            Ok(msg) => Ok(Some(msg.sequence)),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(EventStoreError::read(e)),
        }
    }

    /// The event at `sequence`, or `None` if it expired or never existed.
    pub async fn get(&self, sequence: u64) -> Result<Option<RecordedEvent>, EventStoreError> {
        match self.stream.direct_get(sequence).await {
            Ok(msg) => decode(msg.sequence, &msg.payload, Some(&msg.headers)).map(Some),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(EventStoreError::read(e)),
        }
    }

    /// The sequence of the last stored event (0 when empty).
    pub async fn last_sequence(&self) -> Result<u64, EventStoreError> {
        Ok(self.stream.get_info().await.map_err(EventStoreError::read)?.state.last_sequence)
    }

    /// Up to `limit` events from `from` on, in order; for admin views and
    /// tools walking the whole stream (a scan is the point here).
    pub async fn read_page(&self, from: u64, limit: usize) -> Result<Page, EventStoreError> {
        self.read_page_filtered(from, limit, None).await
    }

    /// Like [`Self::read_page`], only events whose subject matches `filter`
    /// (for example [`subjects::event_type`]). A filtered read walks the
    /// stream on NATS 2.9: for tools, not for request paths.
    pub async fn read_page_filtered(&self, from: u64, limit: usize, filter: Option<String>) -> Result<Page, EventStoreError> {
        let from = from.max(1);
        let last = self.last_sequence().await?;
        if limit == 0 || from > last {
            return Ok(Page { events: Vec::new(), next_sequence: None });
        }
        let mut consumer = self
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from },
                filter_subject: filter.unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(EventStoreError::read)?;
        if consumer.info().await.map_err(EventStoreError::read)?.num_pending == 0 {
            return Ok(Page { events: Vec::new(), next_sequence: None });
        }
        let mut messages = consumer.messages().await.map_err(EventStoreError::read)?;
        let mut events = Vec::with_capacity(limit.min(1024));
        let mut pending = 0;
        while events.len() < limit {
            let next = match tokio::time::timeout(PAGE_STALL, messages.next()).await {
                Ok(Some(next)) => next.map_err(EventStoreError::read)?,
                // The stream lost messages below `last` (expiry): the page ends here.
                Ok(None) | Err(_) => break,
            };
            let info = next.info().map_err(EventStoreError::read)?;
            let sequence = info.stream_sequence;
            pending = info.pending;
            events.push(decode(sequence, &next.payload, next.headers.as_ref())?);
            if pending == 0 || sequence >= last {
                break;
            }
        }
        let next_sequence = match events.last() {
            Some(e) if pending > 0 => Some(e.sequence + 1),
            _ => None,
        };
        Ok(Page { events, next_sequence })
    }

    /// Every event from `from` on, then live as they are appended. One
    /// ordered consumer: the server pushes, nothing is polled per event.
    pub async fn follow(
        &self,
        from: u64,
    ) -> Result<BoxStream<'static, Result<RecordedEvent, EventStoreError>>, EventStoreError> {
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from.max(1) },
                ..Default::default()
            })
            .await
            .map_err(EventStoreError::read)?;
        let messages = consumer.messages().await.map_err(EventStoreError::read)?;
        Ok(messages
            .map_err(EventStoreError::read)
            .and_then(|msg| async move {
                let sequence = msg.info().map_err(EventStoreError::read)?.stream_sequence;
                decode(sequence, &msg.payload, msg.headers.as_ref())
            })
            .boxed())
    }
}

/// Writes `change(current value)` to `key` unless it returns `None`, as a
/// compare-and-set on the key's revision, reading again after a lost race:
/// concurrent writers of one key never lose each other's updates.
pub(crate) async fn cas(
    store: &kv::Store,
    key: &str,
    known: Option<&Known>,
    new_key: bool,
    change: impl Fn(Option<&[u8]>) -> Result<Option<Bytes>, EventStoreError>,
) -> Result<(), EventStoreError> {
    // First try what this process last wrote, if it remembers, or, for a
    // key that is most likely new, nothing: no read either way.
    let mut guess = match known.and_then(|k| k.get(key)) {
        Some((revision, value)) => Some((Some(value), Some(revision))),
        None if new_key => Some((None, None)),
        None => None,
    };
    loop {
        let (current, revision) = match guess.take() {
            Some(guessed) => guessed,
            None => match store.entry(key).await.map_err(EventStoreError::read_model)? {
                Some(entry) if entry.operation == kv::Operation::Put => (Some(entry.value), Some(entry.revision)),
                // A purged key keeps a marker: the next write must follow it.
                Some(entry) => (None, Some(entry.revision)),
                None => (None, None),
            },
        };
        let Some(value) = change(current.as_deref())? else {
            return Ok(());
        };
        let written = match revision {
            Some(revision) => store
                .update(key, value.clone(), revision)
                .await
                .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, async_nats::Error::from(e))),
            None => store
                .create(key, value.clone())
                .await
                .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, async_nats::Error::from(e))),
        };
        match written {
            Ok(revision) => {
                if let Some(known) = known {
                    known.remember(key, revision, value);
                }
                return Ok(());
            }
            // Someone else wrote it: read it, and apply again.
            Err((true, _)) => {
                if let Some(known) = known {
                    known.forget(key);
                }
            }
            Err((false, e)) => return Err(EventStoreError::ReadModel(e)),
        }
    }
}

/// An event from a stream message (what every consumer of the stream reads).
pub fn decode(sequence: u64, payload: &[u8], headers: Option<&HeaderMap>) -> Result<RecordedEvent, EventStoreError> {
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|source| EventStoreError::Decode { sequence, source })?;
    let traceparent = headers.and_then(|h| h.get(TRACEPARENT)).map(|v| v.as_str().to_owned());
    Ok(RecordedEvent { sequence, envelope, traceparent })
}

