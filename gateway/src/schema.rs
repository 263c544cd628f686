//! The GraphQL schema: types, queries and mutations. Resolvers parse their
//! input into typed values first (so bad input writes nothing), then call
//! services through the typed client.

use async_graphql::{
    Context, EmptySubscription, Enum, ID, Object, ResultExt, Schema, SimpleObject,
};
use chorus_contracts::{
    catalogue::{self, CreateProduct, GetProducts, ListProducts, SetProductActive},
    faults,
    inventory::{Levels, Restock, StockLevel},
};
use chorus_runtime::config::{FaultMode as RuntimeFaultMode, FaultSpec};
use uuid::Uuid;

use crate::{GatewayError, GatewayState};

pub type ChorusSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted.
pub const MAX_COMPLEXITY: usize = 2_000;
/// Most units one restock or new product may add.
pub const MAX_STOCK: i64 = 1_000_000_000;

pub fn build_schema(state: GatewayState) -> ChorusSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .data(state)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// A product with its stock. `stock` can still be sold; `reserved` is held
/// by reservations not yet turned into orders.
#[derive(SimpleObject, Debug, Clone)]
pub struct Product {
    pub id: ID,
    pub name: String,
    pub price_cents: i64,
    pub active: bool,
    pub stock: i64,
    pub reserved: i64,
}

impl Product {
    fn from_parts(p: catalogue::Product, level: Option<&StockLevel>) -> Self {
        Product {
            id: ID(p.id.to_string()),
            name: p.name,
            price_cents: p.price_cents,
            active: p.active,
            stock: level.map_or(0, |l| l.available),
            reserved: level.map_or(0, |l| l.reserved),
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

/// Parses a GraphQL `ID` that must be a uuid.
pub fn parse_uuid(field: &str, id: &ID) -> Result<Uuid, GatewayError> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| GatewayError::BadUserInput(format!("{field}: `{}` is not a uuid", id.as_str())))
}

fn state<'a>(ctx: &Context<'a>) -> &'a GatewayState {
    // Registered by `build_schema`; its absence is a programming error that
    // every test would catch at the first request.
    ctx.data_unchecked::<GatewayState>()
}

async fn products_with_stock(
    state: &GatewayState,
    products: Vec<catalogue::Product>,
) -> Result<Vec<Product>, GatewayError> {
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let ids = products.iter().map(|p| p.id).collect();
    let levels = state.services.call(&Levels { product_ids: Some(ids) }).await?;
    Ok(products
        .into_iter()
        .map(|p| {
            let level = levels.iter().find(|l| l.product_id == p.id);
            Product::from_parts(p, level)
        })
        .collect())
}

async fn product_by_id(state: &GatewayState, id: Uuid) -> Result<Option<Product>, GatewayError> {
    let found = state.services.call(&GetProducts { ids: vec![id], checkout_id: None }).await?;
    Ok(products_with_stock(state, found).await?.pop())
}

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Every product, with its stock.
    async fn products(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Product>> {
        let state = state(ctx);
        async {
            let products = state.services.call(&ListProducts {}).await?;
            products_with_stock(state, products).await
        }
        .await
        .extend()
    }

    /// One product, or null if there is none with this id.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Product>> {
        let state = state(ctx);
        async {
            let id = parse_uuid("id", &id)?;
            product_by_id(state, id).await
        }
        .await
        .extend()
    }
}

pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Adds a product with its initial stock (admin).
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        name: String,
        price_cents: i32,
        stock: i32,
    ) -> async_graphql::Result<Product> {
        let state = state(ctx);
        async {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(GatewayError::BadUserInput("name: 1 to 200 characters".into()));
            }
            if price_cents < 0 {
                return Err(GatewayError::BadUserInput("priceCents: cannot be negative".into()));
            }
            if stock < 0 {
                return Err(GatewayError::BadUserInput("stock: cannot be negative".into()));
            }
            let id = Uuid::now_v7();
            let product = state
                .services
                .call(&CreateProduct { id, name: name.to_owned(), price_cents: i64::from(price_cents) })
                .await?;
            let level = state.services.call(&Restock { product_id: id, quantity: i64::from(stock) }).await?;
            Ok::<_, GatewayError>(Product::from_parts(product, Some(&level)))
        }
        .await
        .extend()
    }

    /// Adds stock to a product (admin).
    async fn restock(&self, ctx: &Context<'_>, product_id: ID, quantity: i32) -> async_graphql::Result<Product> {
        let state = state(ctx);
        async {
            let id = parse_uuid("productId", &product_id)?;
            if quantity < 1 || i64::from(quantity) > MAX_STOCK {
                return Err(GatewayError::BadUserInput(format!("quantity: 1 to {MAX_STOCK}")));
            }
            let found = state.services.call(&GetProducts { ids: vec![id], checkout_id: None }).await?;
            let Some(product) = found.into_iter().next() else {
                return Err(GatewayError::NotFound(format!("product {id} not found")));
            };
            let level = state.services.call(&Restock { product_id: id, quantity: i64::from(quantity) }).await?;
            Ok::<_, GatewayError>(Product::from_parts(product, Some(&level)))
        }
        .await
        .extend()
    }

    /// Makes a product sellable or not (admin).
    async fn set_product_active(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        active: bool,
    ) -> async_graphql::Result<Product> {
        let state = state(ctx);
        async {
            let id = parse_uuid("productId", &product_id)?;
            let product = state.services.call(&SetProductActive { id, active }).await?;
            let levels = state.services.call(&Levels { product_ids: Some(vec![id]) }).await?;
            Ok::<_, GatewayError>(Product::from_parts(product, levels.first()))
        }
        .await
        .extend()
    }

    /// Makes a service operation fail for a share of its calls (admin; only
    /// with `CHORUS_FAULT_INJECTION=1`). Targets: `orders.create`,
    /// `inventory.reserve`, `inventory.release`, `catalogue.get`, …
    async fn set_fault(
        &self,
        ctx: &Context<'_>,
        target: String,
        mode: FaultMode,
        rate: f64,
    ) -> async_graphql::Result<bool> {
        let state = state(ctx);
        async {
            let spec = FaultSpec::new(&target, mode.into(), rate).map_err(GatewayError::BadUserInput)?;
            if !state.fault_injection {
                return Err(GatewayError::Forbidden(
                    "fault injection is off: start Chorus with CHORUS_FAULT_INJECTION=1".into(),
                ));
            }
            faults::broadcast(state.services.nats(), &spec).await?;
            Ok(true)
        }
        .await
        .extend()
    }
}

/// The schema's SDL, without needing services (`chorus schema`).
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription).finish().sdl()
}
