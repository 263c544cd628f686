//! The read models' values, and how each folds an event in. Pure: no I/O
//! here, so a view's rules are tested without a server.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{CheckoutId, ClientId};

use crate::{EventPayload, Pattern, RecordedEvent, event::micros_rfc3339};

pub use chorus_domain::CheckoutStatus;

/// The `checkouts` read model: one checkout as a reader wants it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckoutView {
    pub checkout_id: CheckoutId,
    pub pattern: Pattern,
    pub status: CheckoutStatus,
    pub client_id: Option<ClientId>,
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
            EventPayload::SagaTransitioned { .. } => e.payload.transitions().into_iter().map(|t| t.to.as_str()).collect(),
            other => vec![other.event_type().as_str()],
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
    pub checkout_id: CheckoutId,
    pub pattern: Pattern,
    pub total_cents: i64,
    pub sequence: u64,
    #[serde(with = "micros_rfc3339")]
    pub at: OffsetDateTime,
}

/// Orders a client's read model lists: its most recent ones. The value is
/// rewritten on every order, so a full history would make each order cost
/// as much as every order before it (measured: choreographed throughput
/// fell from 688/s in a 4 s bench to 583/s in a 20 s one, 32 clients each
/// ordering ~300 times), and a client past ~6,000 orders would outgrow
/// NATS's 1 MB message and stop the projection. The orders service keeps
/// every order.
pub const RECENT_ORDERS: usize = 20;

/// The `orders_by_client` read model (the seed's): a client's order count
/// and its most recent orders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientOrders {
    pub client_id: ClientId,
    /// Every order applied, including those no longer in `orders`.
    pub total_orders: u64,
    pub last_order_id: Option<Uuid>,
    pub last_checkout_id: Option<CheckoutId>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_update_ts: Option<OffsetDateTime>,
    /// The [`RECENT_ORDERS`] latest, in stream order.
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
        // Older than every order kept, with the list full: applied before
        // and dropped since (the projection applies in stream order, and a
        // redelivery repeats what it applied).
        if view.orders.len() >= RECENT_ORDERS && view.orders.first().is_some_and(|o| event.sequence < o.sequence) {
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
        view.total_orders += 1;
        view.keep(order);
        Some(view)
    }

    /// Lists `order` in stream order, dropping the oldest beyond
    /// [`RECENT_ORDERS`], and points the `last_*` fields at the newest.
    fn keep(&mut self, order: ClientOrder) {
        let at = self.orders.partition_point(|o| o.sequence < order.sequence);
        self.orders.insert(at, order);
        let surplus = self.orders.len().saturating_sub(RECENT_ORDERS);
        self.orders.drain(..surplus);
        if let Some(last) = self.orders.last() {
            self.last_order_id = Some(last.order_id);
            self.last_checkout_id = Some(last.checkout_id);
            self.last_update_ts = Some(last.at);
            self.last_sequence = self.last_sequence.max(last.sequence);
        }
    }

    /// A rebuilt view (every order up to `rebuilt.last_sequence`) with the
    /// orders a live projector added after it. Orders counted live but no
    /// longer listed (more than [`RECENT_ORDERS`] placed during the rebuild)
    /// are not counted.
    pub fn merge(live: &Self, rebuilt: &Self) -> Self {
        let mut merged = rebuilt.clone();
        for order in live.orders.iter().filter(|o| o.sequence > rebuilt.last_sequence) {
            merged.total_orders += 1;
            merged.keep(order.clone());
        }
        merged
    }
}

/// What every read model is to the machinery that stores it.
pub(super) trait View: Serialize + DeserializeOwned + Clone {
    fn key(event: &RecordedEvent) -> Option<String>;
    /// Whether `event` is the first its key ever sees, so that writing it
    /// most likely creates the key.
    fn starts(_event: &RecordedEvent) -> bool {
        false
    }
    fn apply(view: Option<Self>, event: &RecordedEvent) -> Option<Self>;
    fn applied(&self) -> Vec<u64>;
    /// Whether a rebuilt view is merged into what a live projector wrote
    /// meanwhile by value ([`View::merge`]) rather than by applying the
    /// rebuilt view's events that the live one lacks (exact only when
    /// `applied` lists every event).
    const MERGES_BY_VALUE: bool = false;
    /// The merged view to write, when [`Self::MERGES_BY_VALUE`].
    fn merge(_live: &Self, _rebuilt: &Self) -> Option<Self> {
        None
    }
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
    const MERGES_BY_VALUE: bool = true;
    fn merge(live: &Self, rebuilt: &Self) -> Option<Self> {
        Some(ClientOrders::merge(live, rebuilt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    fn at(seq: u64, checkout: CheckoutId, payload: EventPayload) -> RecordedEvent {
        let mut envelope = Envelope::new(checkout, Pattern::Choreographed, payload);
        envelope.emitted_at = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seq as i64);
        RecordedEvent { sequence: seq, envelope, traceparent: None }
    }

    fn happy(checkout: CheckoutId, client: ClientId, order: Uuid) -> Vec<RecordedEvent> {
        vec![
            at(3, checkout, EventPayload::CheckoutInitiated { client_id: client, items: vec![], idempotency_key: None }),
            at(5, checkout, EventPayload::StockReserved { reservation_id: Uuid::nil(), items: vec![], priced: vec![], client_id: None, initiated_at: None }),
            at(8, checkout, EventPayload::OrderCreated { order_id: order, client_id: client, total_cents: 500, items: vec![] }),
            at(9, checkout, EventPayload::CheckoutSucceeded { order_id: order, client_id: None }),
        ]
    }

    #[test]
    fn a_checkout_view_does_not_depend_on_order_or_repetition() {
        let (checkout, client, order) = (CheckoutId::new_v4(), ClientId::new_v4(), Uuid::new_v4());
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
        let checkout = CheckoutId::new_v4();
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
        let client = ClientId::new_v4();
        let (c1, c2) = (CheckoutId::new_v4(), CheckoutId::new_v4());
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

    /// A client's view after `events`, as the projection folds them.
    fn orders_of(events: &[RecordedEvent]) -> ClientOrders {
        events.iter().fold(None, |view, e| ClientOrders::apply(view.clone(), e).or(view)).expect("an order")
    }

    fn order(seq: u64, client: ClientId) -> RecordedEvent {
        let payload = EventPayload::OrderCreated { order_id: Uuid::new_v4(), client_id: client, total_cents: 1, items: vec![] };
        at(seq, CheckoutId::new_v4(), payload)
    }

    #[test]
    fn a_client_lists_its_latest_orders_and_counts_every_one_once() {
        let client = ClientId::new_v4();
        let events: Vec<RecordedEvent> = (1..=RECENT_ORDERS as u64 + 5).map(|n| order(n * 10, client)).collect();
        let view = orders_of(&events);
        assert_eq!(view.total_orders, RECENT_ORDERS as u64 + 5);
        assert_eq!(view.orders.len(), RECENT_ORDERS);
        assert_eq!(view.orders.first().map(|o| o.sequence), Some(60), "the five oldest are no longer listed");
        assert_eq!(view.last_sequence, events.last().expect("events").sequence);
        for again in [&events[0], &events[10], &events[events.len() - 1]] {
            assert!(ClientOrders::apply(Some(view.clone()), again).is_none(), "redelivered order {} counted twice", again.sequence);
        }
    }

    #[test]
    fn a_rebuilt_client_keeps_the_orders_placed_while_it_was_rebuilt() {
        let client = ClientId::new_v4();
        let history: Vec<RecordedEvent> = (1..=30).map(|n| order(n * 10, client)).collect();
        let rebuilt = orders_of(&history);
        // Written live after the purge: one order the rebuild also read, two after it.
        let live = orders_of(&[history[29].clone(), order(310, client), order(320, client)]);
        let merged = ClientOrders::merge(&live, &rebuilt);
        assert_eq!(merged.total_orders, 32);
        assert_eq!(merged.orders.len(), RECENT_ORDERS);
        assert_eq!(merged.last_sequence, 320);
        assert_eq!(merged.last_order_id, live.last_order_id);
    }
}
