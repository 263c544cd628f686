//! Demo products, so that a first `chorus up` has something to sell.

use chorus_contracts::{
    ProductId, ServiceClient, ServiceError,
    catalogue::{CreateProduct, ListProducts},
    inventory::Restock,
};
use uuid::Uuid;

/// Name, price in cents, initial stock.
pub const DEMO_PRODUCTS: &[(&str, i64, i64)] = &[
    ("Espresso beans 1 kg", 2490, 100),
    ("Ceramic pour-over dripper", 3200, 40),
    ("Burr grinder", 12900, 15),
    ("Gooseneck kettle", 5900, 25),
    ("Paper filters (100)", 690, 500),
];

/// The fixed id of a demo product, so that a retried seed never adds twice.
pub fn demo_id(name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("chorus-demo:{name}").as_bytes())
}

/// Adds the demo products if the catalogue is empty; returns how many.
pub async fn seed_if_empty(services: &ServiceClient) -> Result<usize, ServiceError> {
    if !services.call(&ListProducts {}).await?.is_empty() {
        return Ok(0);
    }
    for (name, price_cents, stock) in DEMO_PRODUCTS {
        let id = ProductId::from(demo_id(name));
        services.call(&CreateProduct { id, name: (*name).to_owned(), price_cents: *price_cents }).await?;
        services.call(&Restock { product_id: id, quantity: *stock }).await?;
    }
    tracing::info!(products = DEMO_PRODUCTS.len(), "seeded demo products");
    Ok(DEMO_PRODUCTS.len())
}
