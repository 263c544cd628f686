//! DataLoaders: fields that would call a service once per parent (an order's
//! products, a client's orders) are batched into one call per request tick.
//! No cache: a batch lives for one tick, so stock is never stale.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use chorus_contracts::{ProductId, ServiceClient, catalogue::GetProducts, orders::GetOrders};
use uuid::Uuid;

use async_graphql::{ComplexObject, Context, ErrorExtensions, dataloader::DataLoader};
use chorus_contracts::{
    catalogue,
    inventory::Levels,
};

use crate::{
    GatewayError, GatewayState,
    inputs::parse_id,
    types::{Order, OrderItem, Product},
};

/// Products (with their stock) by id: one catalogue call and one inventory
/// call per batch.
pub struct ProductLoader(pub ServiceClient);

impl Loader<ProductId> for ProductLoader {
    type Value = Product;
    type Error = Arc<GatewayError>;

    async fn load(&self, keys: &[ProductId]) -> Result<HashMap<ProductId, Product>, Self::Error> {
        let found = self.0.call(&GetProducts { ids: keys.to_vec(), checkout_id: None }).await.map_err(|e| Arc::new(e.into()))?;
        let products = products_with_stock(&self.0, found).await.map_err(Arc::new)?;
        Ok(products.into_iter().filter_map(|p| Some((p.id.as_str().parse::<ProductId>().ok()?, p))).collect())
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

#[ComplexObject]
impl OrderItem {
    /// The product as it is now (price, stock); loaded in one batch for
    /// every item of the response. Null if it was removed.
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        let id: ProductId = parse_id("productId", &self.product_id).map_err(|e| e.extend())?;
        ctx.data_unchecked::<DataLoader<ProductLoader>>().load_one(id).await.map_err(|e| e.as_ref().extend())
    }
}

pub(crate) async fn products_with_stock(
    services: &chorus_contracts::ServiceClient,
    products: Vec<catalogue::Product>,
) -> Result<Vec<Product>, GatewayError> {
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let ids = products.iter().map(|p| p.id).collect();
    let levels = services.call(&Levels { product_ids: Some(ids) }).await?;
    Ok(products
        .into_iter()
        .map(|p| {
            let level = levels.iter().find(|l| l.product_id == p.id);
            Product::from_parts(p, level)
        })
        .collect())
}

pub(crate) async fn product_by_id(state: &GatewayState, id: ProductId) -> Result<Option<Product>, GatewayError> {
    let found = state.services.call(&GetProducts { ids: vec![id], checkout_id: None }).await?;
    Ok(products_with_stock(&state.services, found).await?.pop())
}
