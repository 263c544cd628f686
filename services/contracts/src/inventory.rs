//! Inventory: stock levels, reservations, releases.
//!
//! For every product, at every moment: `available + reserved + sold` equals
//! everything ever stocked (DESIGN §4).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use chorus_domain::{Cart, CartLine};

use crate::{CheckoutId, Endpoint, ProductId};

/// One product's stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub product_id: ProductId,
    /// Can still be sold.
    pub available: i64,
    /// Held by reservations not yet turned into orders.
    pub reserved: i64,
    /// Taken by committed reservations.
    pub sold: i64,
}

/// Whether every line could be reserved now (nothing is held).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckAvailability {
    pub items: Cart,
    #[serde(default)]
    pub checkout_id: Option<CheckoutId>,
}

/// A line that cannot be served in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    pub product_id: ProductId,
    pub requested: u32,
    pub available: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub available: bool,
    pub shortages: Vec<Shortage>,
    /// Products inventory has never stocked (not in the catalogue, most likely).
    #[serde(default)]
    pub unknown: Vec<ProductId>,
}

impl Endpoint for CheckAvailability {
    const SERVICE: &'static str = "inventory";
    const OPERATION: &'static str = "check";
    type Response = Availability;
    fn checkout_id(&self) -> Option<CheckoutId> {
        self.checkout_id
    }
}

/// Holds stock for every line, all or nothing. The first call with a key
/// decides; every later call with that key returns the same answer (the
/// reservation, or the same insufficient-stock error) and changes nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reserve {
    pub idempotency_key: String,
    pub checkout_id: CheckoutId,
    pub items: Cart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// Stock is held.
    Held,
    /// Stock went back to available.
    Released,
    /// Stock counts as sold.
    Committed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: Uuid,
    pub checkout_id: CheckoutId,
    pub status: ReservationStatus,
    pub items: Vec<CartLine>,
}

impl Endpoint for Reserve {
    const SERVICE: &'static str = "inventory";
    const OPERATION: &'static str = "reserve";
    type Response = Reservation;
    fn checkout_id(&self) -> Option<CheckoutId> {
        Some(self.checkout_id)
    }
}

/// Gives held stock back. Idempotent: releasing a released reservation
/// returns it unchanged; a committed one is a `Conflict`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Release {
    pub reservation_id: Uuid,
}

impl Endpoint for Release {
    const SERVICE: &'static str = "inventory";
    const OPERATION: &'static str = "release";
    type Response = Reservation;
}

/// Turns held stock into sold stock, once its order exists. Idempotent;
/// a released reservation is a `Conflict`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Commit {
    pub reservation_id: Uuid,
}

impl Endpoint for Commit {
    const SERVICE: &'static str = "inventory";
    const OPERATION: &'static str = "commit";
    type Response = Reservation;
}

/// Adds stock (and creates the product's stock level on first use).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Restock {
    pub product_id: ProductId,
    pub quantity: i64,
}

impl Endpoint for Restock {
    const SERVICE: &'static str = "inventory";
    const OPERATION: &'static str = "restock";
    type Response = StockLevel;
}

/// Stock levels of these products (all products when `None`); a product
/// inventory has never seen has no level.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Levels {
    pub product_ids: Option<Vec<ProductId>>,
}

impl Endpoint for Levels {
    const SERVICE: &'static str = "inventory";
    const OPERATION: &'static str = "levels";
    type Response = Vec<StockLevel>;
}

/// Undoes whatever a `Reserve` with this key did or will do: releases the
/// reservation if there is one, and otherwise claims the key as released,
/// so that a reserve still in flight (a timed-out call) reserves nothing
/// when it lands. Idempotent; a committed reservation is a `Conflict`,
/// unless `restock_sold` asks for its sold units to go back on sale (the
/// orchestrator undoing a checkout whose order it cancelled).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CancelReservation {
    pub idempotency_key: String,
    pub checkout_id: CheckoutId,
    #[serde(default)]
    pub restock_sold: bool,
}

impl Endpoint for CancelReservation {
    const SERVICE: &'static str = "inventory";
    const OPERATION: &'static str = "cancel";
    /// The released reservation, or `None` when nothing had been reserved.
    type Response = Option<Reservation>;
    fn checkout_id(&self) -> Option<CheckoutId> {
        Some(self.checkout_id)
    }
}
