//! The inventory service: stock levels, reservations, releases, in its own
//! database.
//!
//! The invariant it keeps, for every product at every moment:
//! `available + reserved + sold` = everything ever stocked. Every change of
//! a level is one conditional `UPDATE` inside the transaction that records
//! why, so two reservations can never take the same unit (row locks on
//! Postgres; one writer at a time on SQLite).
//!
//! - [`entity`]: tables `stock_levels`, `reservations`, `reservation_lines`;
//! - [`migration`]: the migrator, run at every start (idempotent);
//! - [`handlers`]: one function per endpoint, taking the connection.

pub mod entity;
mod error;
pub mod handlers;
pub mod migration;

pub use error::InventoryError;

use chorus_contracts::{faults::Faults, inventory::*, server::ServiceDef};
use chorus_runtime::shutdown::Shutdown;
use sea_orm::DatabaseConnection;

/// The `inventory` service definition over `db`.
pub fn service(db: DatabaseConnection) -> ServiceDef<DatabaseConnection> {
    ServiceDef::new("inventory", "Stock levels and reservations", db)
        .endpoint(|db, req: CheckAvailability| async move { Ok(handlers::check(&db, &req.items).await?) })
        .endpoint(|db, req: Reserve| async move { Ok(handlers::reserve(&db, req).await?) })
        .endpoint(|db, req: Release| async move { Ok(handlers::release(&db, req.reservation_id).await?) })
        .endpoint(|db, req: CancelReservation| async move {
            Ok(handlers::cancel(&db, &req.idempotency_key, req.checkout_id, req.restock_sold).await?)
        })
        .endpoint(|db, req: Commit| async move { Ok(handlers::commit(&db, req.reservation_id).await?) })
        .endpoint(|db, req: Restock| async move { Ok(handlers::restock(&db, req.product_id, req.quantity).await?) })
        .endpoint(|db, req: Levels| async move { Ok(handlers::levels(&db, req.product_ids.as_deref()).await?) })
}

/// Migrates `db` and serves inventory until shutdown.
pub async fn start(db: DatabaseConnection, nats: async_nats::Client, faults: Faults, shutdown: &Shutdown) -> Result<(), InventoryError> {
    migration::migrate(&db).await?;
    service(db).serve(nats, faults, shutdown).await.map_err(InventoryError::Nats)
}
