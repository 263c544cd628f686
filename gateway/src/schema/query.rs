//! Reads: products, orders, sagas, checkouts of both patterns and their events.

use async_graphql::{Context, ID, Object, ResultExt};
use chorus_contracts::{
    catalogue::ListProducts,
    orchestrator::{GetSaga, ListSagas},
    orders::GetOrder,
};
use chorus_domain::{CheckoutId, ClientId, ProductId, SagaState};
use uuid::Uuid;

use crate::{
    GatewayError,
    request::{client_of, principal, state},
    inputs::parse_id,
    loaders::{product_by_id, products_with_stock},
    platform::{self, Platform},
    types::{Order, Product, Saga},
    views::{Checkout, CheckoutEvent, ClientOrders, EventPage},
};

/// Most events one `streamEvents` page returns.
pub const MAX_PAGE: i32 = 1_000;

pub struct QueryRoot;

/// Reads: products, orders, sagas, checkouts of both patterns and their events.
#[Object]
impl QueryRoot {
    /// Every product, with its stock.
    async fn products(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Product>> {
        let state = state(ctx);
        async {
            principal(ctx).authenticated()?;
            let products = state.services.call(&ListProducts {}).await?;
            products_with_stock(&state.services, products).await
        }
        .await
        .extend()
    }

    /// One order, or null.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Order>> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let id: Uuid = parse_id("id", &id)?;
            match state.services.call(&GetOrder { id }).await {
                Ok(order) => {
                    who.acts_as(order.client_id)?;
                    Ok::<_, GatewayError>(Some(Order::from(order)))
                }
                Err(chorus_contracts::ServiceError::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        .await
        .extend()
    }

    /// One orchestrated checkout with its transitions, or null.
    async fn saga(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Saga>> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let id: CheckoutId = parse_id("id", &id)?;
            match state.services.call(&GetSaga { id }).await {
                Ok(saga) => {
                    who.acts_as(saga.client_id)?;
                    Ok::<_, GatewayError>(Some(Saga::from(saga)))
                }
                Err(chorus_contracts::ServiceError::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        .await
        .extend()
    }

    /// Orchestrated checkouts, newest first.
    async fn sagas(
        &self,
        ctx: &Context<'_>,
        state: Option<SagaState>,
        #[graphql(default = 50)] limit: i32,
    ) -> async_graphql::Result<Vec<Saga>> {
        let gateway = self::state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            if !(1..=500).contains(&limit) {
                return Err(GatewayError::BadUserInput("limit: 1 to 500".into()));
            }
            who.admin()?;
            let request = ListSagas { state, limit: limit.unsigned_abs() };
            Ok::<_, GatewayError>(gateway.services.call(&request).await?.into_iter().map(Saga::from).collect::<Vec<_>>())
        }
        .await
        .extend()
    }

    /// One checkout of either pattern from the `checkouts` read model,
    /// never behind what the event store already holds; null if unknown.
    async fn checkout(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Checkout>> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let id: CheckoutId = parse_id("id", &id)?;
            let view = state.projections.checkout_fresh(&state.events, id).await?;
            if let Some(view) = &view {
                who.owns(view.client_id)?;
            }
            Ok::<_, GatewayError>(view.map(Checkout::from))
        }
        .await
        .extend()
    }

    /// Every event of one checkout, in stream order, replayed from the
    /// event store (an index lookup and direct gets: no stream scan).
    async fn checkout_events(&self, ctx: &Context<'_>, checkout_id: ID) -> async_graphql::Result<Vec<CheckoutEvent>> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let id: CheckoutId = parse_id("checkoutId", &checkout_id)?;
            let events = state.events.read_checkout(id).await?;
            if !events.is_empty() {
                who.owns(client_of(&events))?;
            }
            Ok::<_, GatewayError>(events.into_iter().map(CheckoutEvent::from).collect())
        }
        .await
        .extend()
    }

    /// A page of the whole stream from `fromSequence` (admin).
    async fn stream_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] from_sequence: i64,
        #[graphql(default = 100)] limit: i32,
    ) -> async_graphql::Result<EventPage> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            if from_sequence < 1 {
                return Err(GatewayError::BadUserInput("fromSequence: 1 or more".into()));
            }
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(GatewayError::BadUserInput(format!("limit: 1 to {MAX_PAGE}")));
            }
            who.admin()?;
            let page = state.events.read_page(from_sequence.unsigned_abs(), limit.unsigned_abs() as usize).await?;
            Ok(EventPage {
                events: page.events.into_iter().map(CheckoutEvent::from).collect(),
                next_sequence: page.next_sequence.and_then(|n| i64::try_from(n).ok()),
            })
        }
        .await
        .extend()
    }

    /// A client's order count and latest orders (the `orders_by_client`
    /// read model), or null when the client has none.
    async fn orders_by_client(&self, ctx: &Context<'_>, client_id: ID) -> async_graphql::Result<Option<ClientOrders>> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let id: ClientId = parse_id("clientId", &client_id)?;
            who.acts_as(id)?;
            Ok::<_, GatewayError>(state.projections.orders_by_client(id).await?.map(ClientOrders::from))
        }
        .await
        .extend()
    }

    /// What runs and what waits (admin; `chorus status`): service replicas,
    /// each durable consumer's backlog, stalled sagas, the outbox, the
    /// stream and the NATS version, with the problems found.
    async fn platform(&self, ctx: &Context<'_>) -> async_graphql::Result<Platform> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            who.admin()?;
            platform::read(state).await
        }
        .await
        .extend()
    }

    /// One product, or null if there is none with this id.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Product>> {
        let state = state(ctx);
        async {
            principal(ctx).authenticated()?;
            let id: ProductId = parse_id("id", &id)?;
            product_by_id(state, id).await
        }
        .await
        .extend()
    }
}
