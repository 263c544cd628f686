//! Orders.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CheckoutId, ClientId, Endpoint, ProductId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub client_id: ClientId,
    pub checkout_id: CheckoutId,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub items: Vec<OrderLine>,
    /// RFC 3339.
    pub created_at: String,
}

/// Creates an order. The first call with a key decides; later calls with
/// it return that order and create nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateOrder {
    pub idempotency_key: String,
    pub client_id: ClientId,
    pub checkout_id: CheckoutId,
    pub items: Vec<OrderLine>,
}

impl Endpoint for CreateOrder {
    const SERVICE: &'static str = "orders";
    const OPERATION: &'static str = "create";
    type Response = Order;
    fn checkout_id(&self) -> Option<CheckoutId> {
        Some(self.checkout_id)
    }
}

/// One order, or `NotFound`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetOrder {
    pub id: Uuid,
}

impl Endpoint for GetOrder {
    const SERVICE: &'static str = "orders";
    const OPERATION: &'static str = "get";
    type Response = Order;
}

/// A client's orders, newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListOrdersByClient {
    pub client_id: ClientId,
    pub limit: Option<u32>,
}

impl Endpoint for ListOrdersByClient {
    const SERVICE: &'static str = "orders";
    const OPERATION: &'static str = "list_by_client";
    type Response = Vec<Order>;
}

/// Cancels an order (saga compensation). Idempotent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CancelOrder {
    pub id: Uuid,
}

impl Endpoint for CancelOrder {
    const SERVICE: &'static str = "orders";
    const OPERATION: &'static str = "cancel";
    type Response = Order;
}

/// Undoes whatever a `CreateOrder` with this key did or will do: cancels
/// the order if there is one, and otherwise claims the key, so that a create
/// still in flight creates nothing when it lands. Idempotent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CancelOrderByKey {
    pub idempotency_key: String,
    pub client_id: ClientId,
    pub checkout_id: CheckoutId,
}

impl Endpoint for CancelOrderByKey {
    const SERVICE: &'static str = "orders";
    const OPERATION: &'static str = "cancel_by_key";
    /// The cancelled order, or `None` when none had been created.
    type Response = Option<Order>;
    fn checkout_id(&self) -> Option<CheckoutId> {
        Some(self.checkout_id)
    }
}

/// The order a `CreateOrder` with this key made, if it made one and it was
/// not undone by `CancelOrderByKey` before it existed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FindOrderByKey {
    pub idempotency_key: String,
}

impl Endpoint for FindOrderByKey {
    const SERVICE: &'static str = "orders";
    const OPERATION: &'static str = "find_by_key";
    type Response = Option<Order>;
}

/// Several orders at once (a DataLoader's batch); unknown ids are left out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetOrders {
    pub ids: Vec<Uuid>,
}

impl Endpoint for GetOrders {
    const SERVICE: &'static str = "orders";
    const OPERATION: &'static str = "get_many";
    type Response = Vec<Order>;
}
