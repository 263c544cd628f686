//! The GraphQL object types of the services' answers (products, sagas,
//! orders) and the enum of fault modes. Plain data converted from the
//! contracts; the fields that load more (an order line's product) are
//! resolved beside their loader, in `loaders`.

use async_graphql::{Enum, ID, SimpleObject};
use chorus_contracts::{catalogue, inventory::StockLevel, orchestrator, orders};
use chorus_domain::SagaState;
use chorus_event_store::RecordedEvent;
use chorus_runtime::config::FaultMode as RuntimeFaultMode;

/// A product with its stock. `stock` can still be sold; `reserved` is held
/// by reservations not yet turned into orders; `sold` went out in orders.
/// `stock + reserved + sold` is everything ever stocked.
#[derive(SimpleObject, Debug, Clone)]
pub struct Product {
    /// The product id.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// Its price, in cents.
    pub price_cents: i64,
    /// Whether it can be sold.
    pub active: bool,
    /// How many can still be sold.
    pub stock: i64,
    /// How many are held by checkouts in progress.
    pub reserved: i64,
    /// How many went out in orders.
    pub sold: i64,
}

impl Product {
    pub(crate) fn from_parts(p: catalogue::Product, level: Option<&StockLevel>) -> Self {
        Product {
            id: ID(p.id.to_string()),
            name: p.name,
            price_cents: p.price_cents,
            active: p.active,
            stock: level.map_or(0, |l| l.available),
            reserved: level.map_or(0, |l| l.reserved),
            sold: level.map_or(0, |l| l.sold),
        }
    }
}

/// What a fault does (DESIGN §4).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultMode {
    None,
    Error,
    Timeout,
}

impl From<FaultMode> for RuntimeFaultMode {
    fn from(m: FaultMode) -> Self {
        match m {
            FaultMode::None => RuntimeFaultMode::None,
            FaultMode::Error => RuntimeFaultMode::Error,
            FaultMode::Timeout => RuntimeFaultMode::Timeout,
        }
    }
}

/// One logged move of a saga.
#[derive(SimpleObject, Debug, Clone)]
pub struct SagaTransition {
    /// The saga that moved.
    pub saga_id: ID,
    /// The state it left (null for the first).
    pub from: Option<SagaState>,
    /// The state it entered.
    pub to: SagaState,
    /// Why, when the move has a reason (a failure, a forced compensation).
    pub reason: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// An orchestrated checkout; its id is the checkout id.
#[derive(SimpleObject, Debug, Clone)]
pub struct Saga {
    /// The saga id, which is the checkout id.
    pub id: ID,
    /// Where the saga stands.
    pub state: SagaState,
    /// Who bought.
    pub client_id: ID,
    /// The order, once created.
    pub order_id: Option<ID>,
    /// Why it failed; kept once `CANCELLED`.
    pub failure_reason: Option<String>,
    /// Every move of its state machine, in order (the saga log).
    pub transitions: Vec<SagaTransition>,
    /// When it started (RFC 3339).
    pub created_at: String,
    /// When it last moved (RFC 3339).
    pub updated_at: String,
}

impl From<orchestrator::Saga> for Saga {
    fn from(s: orchestrator::Saga) -> Self {
        let saga_id = ID(s.id.to_string());
        let transitions = s
            .transitions
            .into_iter()
            .map(|t| SagaTransition { saga_id: saga_id.clone(), from: t.from, to: t.to, reason: t.reason, at: t.at })
            .collect();
        Saga {
            id: saga_id,
            state: s.state,
            client_id: ID(s.client_id.to_string()),
            order_id: s.order_id.map(|o| ID(o.to_string())),
            failure_reason: s.failure_reason,
            transitions,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// One line of an order, at the price it was sold at.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct OrderItem {
    /// The product sold.
    pub product_id: ID,
    /// How many.
    pub quantity: i32,
    /// The price of one, in cents, when it was sold.
    pub unit_price_cents: i64,
}

/// An order: what a successful checkout produced.
#[derive(SimpleObject, Debug, Clone)]
pub struct Order {
    /// The order id.
    pub id: ID,
    /// Who ordered.
    pub client_id: ID,
    /// The checkout that created it.
    pub checkout_id: ID,
    /// `CREATED`, or `CANCELLED` when a saga was compensated.
    pub status: String,
    /// The sum of its lines, in cents.
    pub total_cents: i64,
    /// Its lines, at the prices they were sold at.
    pub items: Vec<OrderItem>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl From<orders::Order> for Order {
    fn from(o: orders::Order) -> Self {
        Order {
            id: ID(o.id.to_string()),
            client_id: ID(o.client_id.to_string()),
            checkout_id: ID(o.checkout_id.to_string()),
            status: o.status.as_str().to_owned(),
            total_cents: o.total_cents,
            items: o
                .items
                .into_iter()
                .map(|i| OrderItem {
                    product_id: ID(i.product_id.to_string()),
                    quantity: i32::try_from(i.quantity).unwrap_or(i32::MAX),
                    unit_price_cents: i.unit_price_cents,
                })
                .collect(),
            created_at: o.created_at,
        }
    }
}

impl SagaTransition {
    /// The transitions an event records, if it is a `SagaTransitioned`
    /// (several when one write passed through states).
    pub(crate) fn from_event(event: &RecordedEvent) -> Vec<Self> {
        let at = chorus_event_store::event::micros_rfc3339::format(event.envelope.emitted_at).unwrap_or_default();
        event
            .envelope
            .payload
            .transitions()
            .into_iter()
            .map(|t| SagaTransition {
                saga_id: ID(event.envelope.checkout_id.to_string()),
                from: t.from,
                to: t.to,
                reason: t.reason.map(str::to_owned),
                at: at.clone(),
            })
            .collect()
    }
}
