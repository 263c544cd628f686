//! The catalogue service: products and prices, in its own database.
//!
//! - [`entity`]: the sea-orm entities (table `products`);
//! - [`migration`]: the migrator, run at every start (idempotent);
//! - [`handlers`]: one function per endpoint, taking the connection;
//! - [`service`]: the endpoints wired to the NATS service `catalogue`.

pub mod entity;
mod error;
pub mod handlers;
pub mod migration;

pub use error::CatalogueError;

use chorus_contracts::{catalogue::*, faults::Faults, server::ServiceDef};
use chorus_runtime::shutdown::Shutdown;
use sea_orm::DatabaseConnection;

/// The `catalogue` service definition over `db`.
pub fn service(db: DatabaseConnection) -> ServiceDef<DatabaseConnection> {
    ServiceDef::new("catalogue", "Products and prices", db)
        .endpoint(|db, _: ListProducts| async move { Ok(handlers::list(&db).await?) })
        .endpoint(|db, req: GetProducts| async move { Ok(handlers::get_many(&db, &req.ids).await?) })
        .endpoint(|db, req: CreateProduct| async move { Ok(handlers::create(&db, req).await?) })
        .endpoint(|db, req: SetProductActive| async move { Ok(handlers::set_active(&db, req.id, req.active).await?) })
}

/// Migrates `db` and serves the catalogue until shutdown.
pub async fn start(
    db: DatabaseConnection,
    nats: async_nats::Client,
    faults: Faults,
    shutdown: &Shutdown,
) -> Result<(), CatalogueError> {
    migration::migrate(&db).await?;
    service(db).serve(nats, faults, shutdown).await.map_err(CatalogueError::Nats)
}
