//! DataLoaders: fields that would call a service once per parent (an order's
//! products, a client's orders) are batched into one call per request tick.
//! No cache: a batch lives for one tick, so stock is never stale.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use chorus_contracts::{ServiceClient, catalogue::GetProducts, orders::GetOrders};
use uuid::Uuid;

use crate::{
    GatewayError,
    schema::{Order, Product, products_with_stock},
};

/// Products (with their stock) by id: one catalogue call and one inventory
/// call per batch.
pub struct ProductLoader(pub ServiceClient);

impl Loader<Uuid> for ProductLoader {
    type Value = Product;
    type Error = Arc<GatewayError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Product>, Self::Error> {
        let found = self.0.call(&GetProducts { ids: keys.to_vec(), checkout_id: None }).await.map_err(|e| Arc::new(e.into()))?;
        let products = products_with_stock(&self.0, found).await.map_err(Arc::new)?;
        Ok(products.into_iter().filter_map(|p| Some((Uuid::parse_str(p.id.as_str()).ok()?, p))).collect())
    }
}

/// Orders by id: one orders call per batch.
pub struct OrderLoader(pub ServiceClient);

impl Loader<Uuid> for OrderLoader {
    type Value = Order;
    type Error = Arc<GatewayError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Order>, Self::Error> {
        let found = self.0.call(&GetOrders { ids: keys.to_vec() }).await.map_err(|e| Arc::new(e.into()))?;
        Ok(found.into_iter().map(|o| (o.id, Order::from(o))).collect())
    }
}
