//! The GraphQL schema, one module per root: [`query`], [`mutation`],
//! [`subscription`]. Resolvers parse their input into typed values first
//! (`inputs`), so bad input writes nothing, then call services through the
//! typed client; the object types are in `types` and `views`, and what a
//! resolver knows of its request (caller, state, trace) in `request`.

use async_graphql::{Schema, dataloader::DataLoader};

use crate::{
    GatewayState,
    loaders::{OrderLoader, ProductLoader},
};

mod mutation;
mod query;
mod subscription;

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type ChorusSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted. GraphiQL's introspection query (its `TypeRef`
/// fragment nests `ofType` nine times) is about 15 deep; no query of
/// Chorus's own types goes past 7, as the schema has no cycles.
pub const MAX_DEPTH: usize = 16;
/// Most complex query accepted.
pub const MAX_COMPLEXITY: usize = 2_000;

pub fn build_schema(state: GatewayState) -> ChorusSchema {
    let products = DataLoader::new(ProductLoader(state.services.clone()), tokio::spawn);
    let orders = DataLoader::new(OrderLoader(state.services.clone()), tokio::spawn);
    let state_rate = state.limits.rate_limit.map(crate::limits::RateLimiter::new);
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(state)
        .data(products)
        .data(orders)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(crate::guard::Guard { rate: state_rate })
        .finish()
}

/// The schema's SDL, without needing services (`chorus schema`).
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).finish().sdl()
}
