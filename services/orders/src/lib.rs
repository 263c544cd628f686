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
pub fn service(db: DatabaseConnection) -> ServiceDef<DatabaseConnection> {
    ServiceDef::new("orders", "Orders", db)
        .endpoint(|db, req: CreateOrder| async move { Ok(handlers::create(&db, req).await?) })
        .endpoint(|db, req: GetOrder| async move { Ok(handlers::get(&db, req.id).await?) })
        .endpoint(|db, req: GetOrders| async move { Ok(handlers::get_many(&db, &req.ids).await?) })
        .endpoint(|db, req: ListOrdersByClient| async move {
            Ok(handlers::list_by_client(&db, req.client_id, req.limit).await?)
        })
        .endpoint(|db, req: CancelOrder| async move { Ok(handlers::cancel(&db, req.id).await?) })
        .endpoint(|db, req: FindOrderByKey| async move { Ok(handlers::find_by_key(&db, &req.idempotency_key).await?) })
        .endpoint(|db, req: CancelOrderByKey| async move {
            Ok(handlers::cancel_by_key(&db, &req.idempotency_key, req.client_id, req.checkout_id).await?)
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
