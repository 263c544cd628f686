//! The GraphQL types read from the event store and the read models:
//! checkouts of both patterns, their events, pages of the stream, and a
//! client's orders.

use async_graphql::{ComplexObject, Context, ErrorExtensions, ID, Json, SimpleObject, dataloader::DataLoader};
use uuid::Uuid;

use crate::{loaders::OrderLoader, types::Order};
use chorus_event_store::{CheckoutView, ClientOrders as ClientOrdersView, RecordedEvent, event::micros_rfc3339};

/// A checkout of either pattern, from the `checkouts` read model.
#[derive(SimpleObject, Debug, Clone)]
pub struct Checkout {
    /// The checkout id (for an orchestrated checkout, also its saga id).
    pub id: ID,
    /// `orchestrated` or `choreographed`.
    pub pattern: String,
    /// `PENDING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// Who bought.
    pub client_id: ID,
    /// The order, once it exists.
    pub order_id: Option<ID>,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
    /// The step that failed (`reserve_stock`, `create_order`, `stalled`, …).
    pub failed_step: Option<String>,
    /// When each step happened, in time order.
    pub steps: Vec<CheckoutStep>,
    /// When its first event was emitted (RFC 3339).
    pub created_at: String,
    /// When its latest event was emitted (RFC 3339).
    pub updated_at: String,
    /// The highest stream sequence this view includes.
    pub last_sequence: i64,
}

/// One step of a checkout: an event type, or for the orchestrated saga the
/// state it entered.
#[derive(SimpleObject, Debug, Clone)]
pub struct CheckoutStep {
    /// The event type, or the saga state entered.
    pub name: String,
    /// When (RFC 3339, microseconds).
    pub at: String,
}

impl From<CheckoutView> for Checkout {
    fn from(v: CheckoutView) -> Self {
        let mut steps: Vec<CheckoutStep> = v.steps.into_iter().map(|(name, at)| CheckoutStep { name, at }).collect();
        steps.sort_by(|a, b| a.at.cmp(&b.at));
        Checkout {
            id: ID(v.checkout_id.to_string()),
            pattern: v.pattern.as_str().to_owned(),
            status: v.status.as_str().to_owned(),
            client_id: ID(v.client_id.unwrap_or_default().to_string()),
            order_id: v.order_id.map(|o| ID(o.to_string())),
            failure_reason: v.failure_reason,
            failed_step: v.failed_step,
            steps,
            created_at: time_string(v.created_at),
            updated_at: time_string(v.updated_at),
            last_sequence: i64::try_from(v.last_sequence).unwrap_or(i64::MAX),
        }
    }
}

/// One stored event.
#[derive(SimpleObject, Debug, Clone)]
pub struct CheckoutEvent {
    /// The event id; also its `Nats-Msg-Id`, so a re-publish is stored once.
    pub id: ID,
    /// Its position in stream `CHECKOUT_EVENTS`.
    pub sequence: i64,
    /// The event type: `CheckoutInitiated`, `StockReserved`, `OrderCreated`, `CheckoutSucceeded`, `CheckoutFailed`, `SagaTransitioned`, …
    #[graphql(name = "type")]
    pub event_type: String,
    /// The checkout it belongs to.
    pub checkout_id: ID,
    /// `orchestrated` or `choreographed`.
    pub pattern: String,
    /// When it was emitted (RFC 3339, microseconds).
    pub emitted_at: String,
    /// The event that caused this one, if any.
    pub causation_id: Option<ID>,
    /// The event's own fields.
    pub payload: Json<serde_json::Value>,
    /// The W3C trace context it was published with.
    pub traceparent: Option<String>,
}

impl From<RecordedEvent> for CheckoutEvent {
    fn from(e: RecordedEvent) -> Self {
        let envelope = e.envelope;
        // The envelope serializes `{"type", "payload"}` from its payload enum.
        let payload = serde_json::to_value(&envelope.payload)
            .ok()
            .and_then(|mut v| v.get_mut("payload").map(serde_json::Value::take))
            .unwrap_or(serde_json::Value::Null);
        CheckoutEvent {
            id: ID(envelope.id.to_string()),
            sequence: i64::try_from(e.sequence).unwrap_or(i64::MAX),
            event_type: envelope.event_type().to_string(),
            checkout_id: ID(envelope.checkout_id.to_string()),
            pattern: envelope.pattern.as_str().to_owned(),
            emitted_at: time_string(envelope.emitted_at),
            causation_id: envelope.causation_id.map(|c| ID(c.to_string())),
            payload: Json(payload),
            traceparent: e.traceparent,
        }
    }
}

/// A page of the stream.
#[derive(SimpleObject, Debug, Clone)]
pub struct EventPage {
    /// The events of this page, in stream order.
    pub events: Vec<CheckoutEvent>,
    /// Where the next page starts; null at the end of the stream.
    pub next_sequence: Option<i64>,
}

/// A client's orders, from the `orders_by_client` read model.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct ClientOrders {
    /// The client.
    pub client_id: ID,
    /// How many orders the client has placed.
    pub total_orders: i64,
    /// The most recent order.
    pub last_order_id: Option<ID>,
    /// The checkout of the most recent order.
    pub last_checkout_id: Option<ID>,
    /// When the most recent order was placed (RFC 3339).
    pub last_update_ts: Option<String>,
    /// The most recent orders (up to 20), in the order they were placed.
    pub order_ids: Vec<ID>,
}

#[ComplexObject]
impl ClientOrders {
    /// The most recent orders themselves (those of `orderIds`), in the
    /// order they were placed (one orders call for all of them).
    async fn orders(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Order>> {
        let ids: Vec<Uuid> = self.order_ids.iter().filter_map(|id| Uuid::parse_str(id.as_str()).ok()).collect();
        let mut found = ctx
            .data_unchecked::<DataLoader<OrderLoader>>()
            .load_many(ids.iter().copied())
            .await
            .map_err(|e| e.as_ref().extend())?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

impl From<ClientOrdersView> for ClientOrders {
    fn from(v: ClientOrdersView) -> Self {
        ClientOrders {
            client_id: ID(v.client_id.to_string()),
            total_orders: i64::try_from(v.total_orders).unwrap_or(i64::MAX),
            last_order_id: v.last_order_id.map(|o| ID(o.to_string())),
            last_checkout_id: v.last_checkout_id.map(|c| ID(c.to_string())),
            last_update_ts: v.last_update_ts.map(time_string),
            order_ids: v.orders.into_iter().map(|o| ID(o.order_id.to_string())).collect(),
        }
    }
}

/// A choreographed checkout, accepted: follow it with `checkout` or
/// `checkoutEvents`.
#[derive(SimpleObject, Debug, Clone)]
pub struct CheckoutAccepted {
    /// The new (or, for a repeated idempotency key, the existing) checkout.
    pub checkout_id: ID,
    /// `PENDING` for a new checkout; for a repeated idempotency key, where
    /// that checkout stands.
    pub status: String,
}

fn time_string(t: time::OffsetDateTime) -> String {
    micros_rfc3339::format(t).unwrap_or_default()
}
