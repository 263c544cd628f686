//! The orders service: orders and their lines, in its own database.
//!
//! - [`entity`]: tables `orders`, `order_items`;
//! - [`migration`]: the migrator, run at every start (idempotent);
//! - [`handlers`]: one function per endpoint, taking the connection.

pub mod entity;
mod error;
pub mod handlers;
pub mod migration;

pub use error::OrdersError;

use chorus_contracts::{faults::Faults, orders::*, server::ServiceDef};
use chorus_runtime::shutdown::Shutdown;
use sea_orm::DatabaseConnection;

/// The `orders` service definition over `db`.
pub fn service(db: DatabaseConnection) -> ServiceDef {
    let (d1, d2, d3, d4) = (db.clone(), db.clone(), db.clone(), db);
    ServiceDef::new("orders", "Orders")
        .endpoint(move |req: CreateOrder| {
            let db = d1.clone();
            async move { Ok(handlers::create(&db, req).await?) }
        })
        .endpoint(move |req: GetOrder| {
            let db = d2.clone();
            async move { Ok(handlers::get(&db, req.id).await?) }
        })
        .endpoint(move |req: ListOrdersByClient| {
            let db = d3.clone();
            async move { Ok(handlers::list_by_client(&db, req.client_id, req.limit).await?) }
        })
        .endpoint(move |req: CancelOrder| {
            let db = d4.clone();
            async move { Ok(handlers::cancel(&db, req.id).await?) }
        })
}

/// Migrates `db` and serves orders until shutdown.
pub async fn start(
    db: DatabaseConnection,
    nats: async_nats::Client,
    faults: Faults,
    shutdown: &Shutdown,
) -> Result<(), OrdersError> {
    migration::migrate(&db).await?;
    service(db).serve(nats, faults, shutdown).await.map_err(OrdersError::Nats)
}
