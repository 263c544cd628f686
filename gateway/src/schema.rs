//! The GraphQL schema: types, queries and mutations. Resolvers parse their
//! input into typed values first (so bad input writes nothing), then call
//! services through the typed client.

use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, ID, InputObject, Object, ResultExt, Schema, SimpleObject, Subscription,
    dataloader::DataLoader,
};
use chorus_event_store::RecordedEvent;
use futures::{Stream, StreamExt};
use tracing::Instrument;
use chorus_contracts::{
    IdempotencyKey, cart,
    catalogue::{self, CreateProduct, GetProducts, ListProducts, SetProductActive},
    faults,
    inventory::{Levels, Line, Restock, StockLevel},
    orchestrator::{self, CompensateSaga, GetSaga, ListSagas, StartCheckout},
    orders::{self, GetOrder},
};
use chorus_runtime::config::{FaultMode as RuntimeFaultMode, FaultSpec};
use uuid::Uuid;

use crate::{
    GatewayError, GatewayState,
    auth::Principal,
    loaders::{OrderLoader, ProductLoader},
    views::{Checkout, CheckoutAccepted, CheckoutEvent, ClientOrders, EventPage},
};
use chorus_event_store::{CartLine, Envelope, EventPayload, Pattern};

/// Most events one `streamEvents` page returns.
pub const MAX_PAGE: i32 = 1_000;

pub type ChorusSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted. GraphiQL's introspection query (its `TypeRef`
/// fragment nests `ofType` nine times) is about 15 deep; no query of
/// Chorus's own types goes past 7, as the schema has no cycles.
pub const MAX_DEPTH: usize = 16;
/// Most complex query accepted.
pub const MAX_COMPLEXITY: usize = 2_000;
/// Most units one restock or new product may add.
pub const MAX_STOCK: i64 = 1_000_000_000;

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

/// A product with its stock. `stock` can still be sold; `reserved` is held
/// by reservations not yet turned into orders; `sold` went out in orders.
/// `stock + reserved + sold` is everything ever stocked.
#[derive(SimpleObject, Debug, Clone)]
pub struct Product {
    /// The product id.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// Its price, in cents.
    pub price_cents: i64,
    /// Whether it can be sold.
    pub active: bool,
    /// How many can still be sold.
    pub stock: i64,
    /// How many are held by checkouts in progress.
    pub reserved: i64,
    /// How many went out in orders.
    pub sold: i64,
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
            sold: level.map_or(0, |l| l.sold),
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

/// The caller, as the HTTP handler or the WebSocket `connection_init` found it.
/// The caller; anonymous once the token of its socket has expired, so that
/// nothing more runs on a socket whose token ran out.
fn principal(ctx: &Context<'_>) -> Principal {
    if ctx.data_opt::<crate::auth::Expiry>().is_some_and(crate::auth::Expiry::passed) {
        return Principal::Anonymous;
    }
    ctx.data_opt::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

/// `stream`, ended with `UNAUTHENTICATED` when the socket's token expires.
fn until_expiry<S, T>(ctx: &Context<'_>, stream: S) -> impl Stream<Item = async_graphql::Result<T>> + use<S, T>
where
    S: Stream<Item = async_graphql::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let Some(expiry) = ctx.data_opt::<crate::auth::Expiry>().copied() else { return stream.left_stream() };
    let deadline = Box::pin(tokio::time::sleep(expiry.remaining()));
    futures::stream::unfold(Some((Box::pin(stream), deadline)), |state| async move {
        let (mut stream, mut deadline) = state?;
        tokio::select! {
            item = stream.next() => item.map(|item| (item, Some((stream, deadline)))),
            () = &mut deadline => Some((Err(GatewayError::Unauthenticated.extend()), None)),
        }
    })
    .right_stream()
}

/// The gateway's span of this request: a child of the client's
/// `traceparent` header when it sent one, else the root of a new trace.
fn request_trace(ctx: &Context<'_>) -> chorus_runtime::trace::TraceParent {
    ctx.data_opt::<chorus_runtime::trace::TraceParent>()
        .map(chorus_runtime::trace::TraceParent::child)
        .unwrap_or_else(chorus_runtime::trace::TraceParent::new_root)
}

/// The client a checkout's history belongs to.
fn client_of(events: &[chorus_event_store::RecordedEvent]) -> Option<Uuid> {
    events.iter().find_map(|e| match &e.envelope.payload {
        EventPayload::CheckoutInitiated { client_id, .. } | EventPayload::OrderCreated { client_id, .. } => Some(*client_id),
        _ => None,
    })
}

fn state<'a>(ctx: &Context<'a>) -> &'a GatewayState {
    // Registered by `build_schema`; its absence is a programming error that
    // every test would catch at the first request.
    ctx.data_unchecked::<GatewayState>()
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

async fn product_by_id(state: &GatewayState, id: Uuid) -> Result<Option<Product>, GatewayError> {
    let found = state.services.call(&GetProducts { ids: vec![id], checkout_id: None }).await?;
    Ok(products_with_stock(&state.services, found).await?.pop())
}

/// The states of an orchestrated checkout (DESIGN §3.1).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SagaState {
    Pending,
    VerifyingStock,
    StockVerified,
    FetchingProducts,
    ProductsFetched,
    ReservingStock,
    StockReserved,
    CreatingOrder,
    OrderCreated,
    Completed,
    FailedInsufficientStock,
    FailedProductUnavailable,
    FailedStockReservation,
    FailedOrderCreation,
    Compensating,
    Cancelled,
    /// An undo met an error retrying cannot cure; `failureReason` says which.
    CompensationFailed,
}

impl SagaState {
    /// Nothing follows it.
    pub fn is_terminal(self) -> bool {
        matches!(self, SagaState::Completed | SagaState::Cancelled | SagaState::CompensationFailed)
    }

    pub fn parse(raw: &str) -> Result<Self, GatewayError> {
        use SagaState::*;
        Ok(match raw {
            "PENDING" => Pending,
            "VERIFYING_STOCK" => VerifyingStock,
            "STOCK_VERIFIED" => StockVerified,
            "FETCHING_PRODUCTS" => FetchingProducts,
            "PRODUCTS_FETCHED" => ProductsFetched,
            "RESERVING_STOCK" => ReservingStock,
            "STOCK_RESERVED" => StockReserved,
            "CREATING_ORDER" => CreatingOrder,
            "ORDER_CREATED" => OrderCreated,
            "COMPLETED" => Completed,
            "FAILED_INSUFFICIENT_STOCK" => FailedInsufficientStock,
            "FAILED_PRODUCT_UNAVAILABLE" => FailedProductUnavailable,
            "FAILED_STOCK_RESERVATION" => FailedStockReservation,
            "FAILED_ORDER_CREATION" => FailedOrderCreation,
            "COMPENSATING" => Compensating,
            "CANCELLED" => Cancelled,
            "COMPENSATION_FAILED" => CompensationFailed,
            other => {
                return Err(GatewayError::Internal(format!("unknown saga state {other}")));
            }
        })
    }

    /// The stored name, as the orchestrator spells it.
    fn name(self) -> String {
        async_graphql::Value::from(self).to_string()
    }
}

/// One logged move of a saga.
#[derive(SimpleObject, Debug, Clone)]
pub struct SagaTransition {
    /// The saga that moved.
    pub saga_id: ID,
    /// The state it left (null for the first).
    pub from: Option<SagaState>,
    /// The state it entered.
    pub to: SagaState,
    /// Why, when the move has a reason (a failure, a forced compensation).
    pub reason: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// An orchestrated checkout; its id is the checkout id.
#[derive(SimpleObject, Debug, Clone)]
pub struct Saga {
    /// The saga id, which is the checkout id.
    pub id: ID,
    /// Where the saga stands.
    pub state: SagaState,
    /// Who bought.
    pub client_id: ID,
    /// The order, once created.
    pub order_id: Option<ID>,
    /// Why it failed; kept once `CANCELLED`.
    pub failure_reason: Option<String>,
    /// Every move of its state machine, in order (the saga log).
    pub transitions: Vec<SagaTransition>,
    /// When it started (RFC 3339).
    pub created_at: String,
    /// When it last moved (RFC 3339).
    pub updated_at: String,
}

impl TryFrom<orchestrator::Saga> for Saga {
    type Error = GatewayError;
    fn try_from(s: orchestrator::Saga) -> Result<Self, GatewayError> {
        let saga_id = ID(s.id.to_string());
        let transitions = s
            .transitions
            .into_iter()
            .map(|t| {
                Ok(SagaTransition {
                    saga_id: saga_id.clone(),
                    from: t.from.as_deref().map(SagaState::parse).transpose()?,
                    to: SagaState::parse(&t.to)?,
                    reason: t.reason,
                    at: t.at,
                })
            })
            .collect::<Result<_, GatewayError>>()?;
        Ok(Saga {
            id: saga_id,
            state: SagaState::parse(&s.state)?,
            client_id: ID(s.client_id.to_string()),
            order_id: s.order_id.map(|o| ID(o.to_string())),
            failure_reason: s.failure_reason,
            transitions,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
    }
}

/// One line of an order, at the price it was sold at.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct OrderItem {
    /// The product sold.
    pub product_id: ID,
    /// How many.
    pub quantity: i32,
    /// The price of one, in cents, when it was sold.
    pub unit_price_cents: i64,
}

#[ComplexObject]
impl OrderItem {
    /// The product as it is now (price, stock); loaded in one batch for
    /// every item of the response. Null if it was removed.
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        let id = parse_uuid("productId", &self.product_id).map_err(|e| e.extend())?;
        ctx.data_unchecked::<DataLoader<ProductLoader>>().load_one(id).await.map_err(|e| e.as_ref().extend())
    }
}

/// An order: what a successful checkout produced.
#[derive(SimpleObject, Debug, Clone)]
pub struct Order {
    /// The order id.
    pub id: ID,
    /// Who ordered.
    pub client_id: ID,
    /// The checkout that created it.
    pub checkout_id: ID,
    /// `CREATED`, or `CANCELLED` when a saga was compensated.
    pub status: String,
    /// The sum of its lines, in cents.
    pub total_cents: i64,
    /// Its lines, at the prices they were sold at.
    pub items: Vec<OrderItem>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl From<orders::Order> for Order {
    fn from(o: orders::Order) -> Self {
        Order {
            id: ID(o.id.to_string()),
            client_id: ID(o.client_id.to_string()),
            checkout_id: ID(o.checkout_id.to_string()),
            status: o.status.as_str().to_owned(),
            total_cents: o.total_cents,
            items: o
                .items
                .into_iter()
                .map(|i| OrderItem {
                    product_id: ID(i.product_id.to_string()),
                    quantity: i32::try_from(i.quantity).unwrap_or(i32::MAX),
                    unit_price_cents: i.unit_price_cents,
                })
                .collect(),
            created_at: o.created_at,
        }
    }
}

/// One line of a cart.
#[derive(InputObject, Debug, Clone)]
pub struct CartItemInput {
    /// The product (a uuid).
    pub product_id: ID,
    /// How many, 1 to 1000.
    pub quantity: i32,
}

/// A cart to check out: 1 to 100 lines, each product once.
#[derive(InputObject, Debug, Clone)]
pub struct CheckoutInput {
    /// Who buys (a uuid); with auth, the caller itself.
    pub client_id: ID,
    /// The lines of the cart.
    pub items: Vec<CartItemInput>,
    /// Scoped to the client: the same key returns the same checkout.
    pub idempotency_key: Option<String>,
}

/// A checkout, parsed and checked: what the services are given.
struct Cart {
    client_id: Uuid,
    items: Vec<Line>,
    idempotency_key: Option<IdempotencyKey>,
}

impl CheckoutInput {
    /// Every rule of DESIGN §3 on the input, before anything is written.
    fn parse(self) -> Result<Cart, GatewayError> {
        let client_id = parse_uuid("clientId", &self.client_id)?;
        let items = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let product_id = parse_uuid(&format!("items[{i}].productId"), &item.product_id)?;
                let quantity = u32::try_from(item.quantity).map_err(|_| {
                    GatewayError::BadUserInput(format!("items[{i}]: quantity {} is outside 1..={}", item.quantity, cart::MAX_QUANTITY))
                })?;
                Ok(Line { product_id, quantity })
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        cart::validate(items.iter().map(|l| (l.product_id, l.quantity))).map_err(GatewayError::BadUserInput)?;
        let idempotency_key = self.idempotency_key.map(IdempotencyKey::parse).transpose().map_err(GatewayError::BadUserInput)?;
        Ok(Cart { client_id, items, idempotency_key })
    }
}

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
            let id = parse_uuid("id", &id)?;
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
            let id = parse_uuid("id", &id)?;
            match state.services.call(&GetSaga { id }).await {
                Ok(saga) => {
                    who.acts_as(saga.client_id)?;
                    Saga::try_from(saga).map(Some)
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
            let request = ListSagas { state: state.map(SagaState::name), limit: limit.unsigned_abs() };
            gateway.services.call(&request).await?.into_iter().map(Saga::try_from).collect()
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
            let id = parse_uuid("id", &id)?;
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
            let id = parse_uuid("checkoutId", &checkout_id)?;
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

    /// A client's orders (the `orders_by_client` read model), or null when
    /// the client has none.
    async fn orders_by_client(&self, ctx: &Context<'_>, client_id: ID) -> async_graphql::Result<Option<ClientOrders>> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let id = parse_uuid("clientId", &client_id)?;
            who.acts_as(id)?;
            Ok::<_, GatewayError>(state.projections.orders_by_client(id).await?.map(ClientOrders::from))
        }
        .await
        .extend()
    }

    /// One product, or null if there is none with this id.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Product>> {
        let state = state(ctx);
        async {
            principal(ctx).authenticated()?;
            let id = parse_uuid("id", &id)?;
            product_by_id(state, id).await
        }
        .await
        .extend()
    }
}

pub struct MutationRoot;

/// Writes: checkouts in either pattern, and the admin operations.
#[Object]
impl MutationRoot {
    /// Runs an orchestrated checkout and returns its saga once terminal.
    /// A business failure is not an error: the saga ends `CANCELLED` with
    /// its `failureReason`.
    async fn checkout_orchestrated(&self, ctx: &Context<'_>, input: CheckoutInput) -> async_graphql::Result<Saga> {
        let state = state(ctx);
        let trace = request_trace(ctx);
        let span = tracing::info_span!("checkout", pattern = "orchestrated", trace_id = %trace.trace_id());
        trace.adopt(&span);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let cart = input.parse()?;
            who.acts_as(cart.client_id)?;
            // Every checkout gets its id here, so that asking again (after a
            // replica died mid-saga) names the same saga, key or no key.
            let request = StartCheckout {
                client_id: cart.client_id,
                items: cart.items,
                idempotency_key: cart.idempotency_key,
                checkout_id: Some(Uuid::now_v7()),
                traceparent: Some(trace.child().to_string()),
            };
            Saga::try_from(ask_again_until_answered(state, &request).await?)
        }
        .instrument(span)
        .await
        .extend()
    }

    /// Starts a choreographed checkout: checks the input, publishes
    /// `CheckoutInitiated` and returns at once; the workers take it from
    /// there (follow it with `checkout` or `checkoutEvents`). With an
    /// `idempotencyKey` this client already used, returns that checkout.
    async fn checkout_choreographed(&self, ctx: &Context<'_>, input: CheckoutInput) -> async_graphql::Result<CheckoutAccepted> {
        let state = state(ctx);
        let trace = request_trace(ctx);
        let span = tracing::info_span!("checkout", pattern = "choreographed", trace_id = %trace.trace_id());
        trace.adopt(&span);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let cart = input.parse()?;
            who.acts_as(cart.client_id)?;
            let checkout_id = match &cart.idempotency_key {
                // The same client and key name the same checkout, and its
                // first event the same message id: a racing repeat is deduplicated.
                Some(key) => Uuid::new_v5(&cart.client_id, format!("choreographed:{key}").as_bytes()),
                None => Uuid::now_v7(),
            };
            let items: Vec<CartLine> = cart.items.iter().map(|l| CartLine { product_id: l.product_id, quantity: l.quantity }).collect();
            if cart.idempotency_key.is_some()
                && let Some(existing) = state.projections.checkout_fresh(&state.events, checkout_id).await?
            {
                // The key names that checkout: only for the same cart.
                let history = state.events.read_checkout(checkout_id).await?;
                same_cart(history.iter().map(|e| &e.envelope), &items)?;
                return Ok(CheckoutAccepted { checkout_id: ID(checkout_id.to_string()), status: existing.status.as_str().to_owned() });
            }
            let keyed = cart.idempotency_key.is_some();
            let payload = EventPayload::CheckoutInitiated { client_id: cart.client_id, items: items.clone(), idempotency_key: cart.idempotency_key.map(String::from) };
            let event = Envelope::new(checkout_id, Pattern::Choreographed, payload).with_derived_id("CheckoutInitiated");
            // A repeat racing the first with the same key: the stream kept
            // the first (same message id) and says where; this one is
            // refused unless it is the same cart.
            if let Some(first) = store_initiation(state, &event, &trace).await?
                && keyed
                && let Some(stored) = state.events.get(first).await?
            {
                same_cart(std::iter::once(&stored.envelope), &items)?;
            }
            tracing::info!(checkout_id = %checkout_id, "choreographed checkout accepted");
            Ok::<_, GatewayError>(CheckoutAccepted { checkout_id: ID(checkout_id.to_string()), status: "PENDING".into() })
        }
        .instrument(span)
        .await
        .extend()
    }

    /// Forces compensation of a saga that is not terminal (admin); a
    /// completed saga is refused.
    async fn compensate_saga(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Saga> {
        let state = state(ctx);
        async {
            let who = principal(ctx);
            who.authenticated()?;
            let id = parse_uuid("id", &id)?;
            who.admin()?;
            match state.checkouts.call(&CompensateSaga { id }).await {
                Err(chorus_contracts::ServiceError::Conflict(m)) => Err(GatewayError::BadUserInput(m)),
                other => Saga::try_from(other?),
            }
        }
        .await
        .extend()
    }

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
            let who = principal(ctx);
            who.authenticated()?;
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
            who.admin()?;
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
            let who = principal(ctx);
            who.authenticated()?;
            let id = parse_uuid("productId", &product_id)?;
            if quantity < 1 || i64::from(quantity) > MAX_STOCK {
                return Err(GatewayError::BadUserInput(format!("quantity: 1 to {MAX_STOCK}")));
            }
            who.admin()?;
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
            let who = principal(ctx);
            who.authenticated()?;
            let id = parse_uuid("productId", &product_id)?;
            who.admin()?;
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
            let who = principal(ctx);
            who.authenticated()?;
            let spec = FaultSpec::new(&target, mode.into(), rate).map_err(GatewayError::BadUserInput)?;
            who.admin()?;
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

pub struct SubscriptionRoot;

/// Live views of checkouts (WebSocket, `graphql-transport-ws` or `graphql-ws`).
#[Subscription]
impl SubscriptionRoot {
    /// Every event of one checkout, from its first, then live as they are
    /// stored, each once and in order; completes after the event that ends
    /// the checkout. Opened after the checkout ended, it replays everything
    /// and completes.
    async fn checkout_progress(
        &self,
        ctx: &Context<'_>,
        checkout_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CheckoutEvent>> + use<>> {
        let state = state(ctx);
        let who = principal(ctx);
        async {
            who.authenticated()?;
            let id = parse_uuid("checkoutId", &checkout_id)?;
            let live = state.hub.checkout(&state.events, id, &caller(ctx, &who)).await?;
            Ok::<_, GatewayError>(owned_by(live, who).map(|e| e.map(|e| CheckoutEvent::from((*e).clone())).map_err(|e| e.extend())))
        }
        .await
        .map(|stream| until_expiry(ctx, stream))
        .extend()
    }

    /// The transitions of one orchestrated saga (replayed, then live;
    /// completes at its terminal state), or of every saga from now on
    /// (admin) when no id is given.
    async fn saga_transitions(
        &self,
        ctx: &Context<'_>,
        saga_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SagaTransition>> + use<>> {
        let state = state(ctx);
        let who = principal(ctx);
        async {
            who.authenticated()?;
            let live = match saga_id {
                Some(id) => {
                    let id = parse_uuid("sagaId", &id)?;
                    owned_by(state.hub.checkout(&state.events, id, &caller(ctx, &who)).await?, who).boxed()
                }
                None => {
                    who.admin()?;
                    state.hub.all(&caller(ctx, &who))?.boxed()
                }
            };
            Ok::<_, GatewayError>(live.flat_map(|e| {
                let items = match e {
                    Ok(e) => SagaTransition::from_event(&e).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e.extend())],
                };
                futures::stream::iter(items)
            }))
        }
        .await
        .map(|stream| until_expiry(ctx, stream))
        .extend()
    }

    /// Every event stored from now on, of every checkout (admin).
    async fn all_checkout_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CheckoutEvent>> + use<>> {
        let state = state(ctx);
        let who = principal(ctx);
        async {
            who.admin()?;
            let live = state.hub.all(&caller(ctx, &who))?;
            Ok::<_, GatewayError>(live.map(|e| e.map(|e| CheckoutEvent::from((*e).clone())).map_err(|e| e.extend())))
        }
        .await
        .map(|stream| until_expiry(ctx, stream))
        .extend()
    }
}

/// Whose share of the per-caller subscription cap a subscription takes:
/// the client or admin, or on an open gateway (no auth) the connection.
fn caller(ctx: &Context<'_>, who: &Principal) -> String {
    match (who, ctx.data_opt::<crate::ConnectionId>()) {
        (Principal::Open, Some(connection)) => format!("open:{}", connection.0),
        _ => who.key(),
    }
}

/// Ends a checkout's stream with `FORBIDDEN` at its first event naming
/// another client, so a client follows only its own checkouts. Events that
/// come before any names the owner reach only an admin: a checkout's first
/// event names it, so an owner misses nothing.
fn owned_by<S>(live: S, who: Principal) -> impl Stream<Item = Result<Arc<RecordedEvent>, GatewayError>> + use<S>
where
    S: Stream<Item = Result<Arc<RecordedEvent>, GatewayError>>,
{
    #[derive(Clone, Copy, PartialEq)]
    enum Owner {
        Unknown,
        Caller,
        Refused,
    }
    let start = if who.admin().is_ok() { Owner::Caller } else { Owner::Unknown };
    live.scan(start, move |owner, item| {
        let item = match (*owner, item) {
            (Owner::Refused, _) => return futures::future::ready(None),
            (_, Err(e)) => Some(Err(e)),
            (known, Ok(event)) => match client_of(std::slice::from_ref(&event)).map(|c| who.acts_as(c)) {
                Some(Err(e)) => {
                    *owner = Owner::Refused;
                    Some(Err(e))
                }
                Some(Ok(())) => {
                    *owner = Owner::Caller;
                    Some(Ok(event))
                }
                None if known == Owner::Caller => Some(Ok(event)),
                None => None,
            },
        };
        futures::future::ready(Some(item))
    })
    .filter_map(futures::future::ready)
}

impl SagaTransition {
    /// The transitions an event records, if it is a `SagaTransitioned`
    /// (several when one write passed through states).
    fn from_event(event: &RecordedEvent) -> Vec<Self> {
        let at = chorus_event_store::event::micros_rfc3339::format(event.envelope.emitted_at).unwrap_or_default();
        event
            .envelope
            .payload
            .transitions()
            .into_iter()
            .filter_map(|t| {
                Some(SagaTransition {
                    saga_id: ID(event.envelope.checkout_id.to_string()),
                    from: t.from.and_then(|f| SagaState::parse(f).ok()),
                    to: SagaState::parse(t.to).ok()?,
                    reason: t.reason.map(str::to_owned),
                    at: at.clone(),
                })
            })
            .collect()
    }
}

/// The schema's SDL, without needing services (`chorus schema`).
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).finish().sdl()
}

/// How long one ask of the orchestrator for a keyed checkout may go
/// unanswered before it is asked again.
const ASK_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a choreographed checkout keeps trying to store its first event
/// (a JetStream leader election takes seconds) before it answers
/// `SERVICE_UNAVAILABLE`.
const STORE_INITIATION_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Stores a choreographed checkout's `CheckoutInitiated`, retrying (its id
/// is derived, so a retry is deduplicated) while the event store is
/// unavailable; `Some(sequence)` when the stream already held it there.
/// The checkout is accepted once the stream has it; otherwise
/// `SERVICE_UNAVAILABLE`, naming the checkout.
async fn store_initiation(state: &GatewayState, event: &Envelope, trace: &chorus_runtime::trace::TraceParent) -> Result<Option<u64>, GatewayError> {
    use chorus_event_store::EventStoreError;
    let policy = chorus_runtime::retry::forever(std::time::Duration::from_millis(100), std::time::Duration::from_secs(2));
    let retryable = |e: &EventStoreError| matches!(e, EventStoreError::Publish { .. });
    let append =
        chorus_runtime::retry::until_ok("storing CheckoutInitiated", policy, retryable, || state.events.append_once(event, Some(trace)));
    match tokio::time::timeout(STORE_INITIATION_WITHIN, append).await {
        Ok(Ok(appended)) => Ok(appended.duplicate.then_some(appended.sequence)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(GatewayError::ServiceUnavailable(format!(
            "the event store is unavailable: checkout {} was not confirmed; look it up with checkout(id) or retry with the same idempotencyKey",
            event.checkout_id
        ))),
    }
}

/// Refuses (`CONFLICT`) a cart other than the one the checkout's
/// `CheckoutInitiated` (among `events`) holds: an idempotency key names one cart.
fn same_cart<'e>(events: impl IntoIterator<Item = &'e Envelope>, items: &[CartLine]) -> Result<(), GatewayError> {
    let stored = events.into_iter().find_map(|e| match &e.payload {
        EventPayload::CheckoutInitiated { items, .. } => Some(items),
        _ => None,
    });
    let lines = |c: &[CartLine]| c.iter().map(|l| (l.product_id, l.quantity)).collect::<Vec<_>>();
    match stored {
        Some(stored) if !chorus_contracts::cart::same_lines(lines(stored), lines(items)) => {
            Err(GatewayError::Conflict("idempotencyKey already names a checkout of another cart".into()))
        }
        _ => Ok(()),
    }
}

/// A replica that dies mid-saga never answers. Asking again is safe (the
/// checkout id and any idempotency key name the same saga, which another
/// replica takes over), so a checkout is asked in slices instead of waiting
/// out the whole limit on a dead replica (found by `chorus chaos`).
async fn ask_again_until_answered(
    state: &GatewayState,
    request: &StartCheckout,
) -> Result<chorus_contracts::orchestrator::Saga, chorus_contracts::ServiceError> {
    let deadline = std::time::Instant::now() + state.checkouts.timeout();
    let slice = state.checkouts.with_timeout(ASK_AGAIN_AFTER);
    loop {
        match slice.call(request).await {
            Err(chorus_contracts::ServiceError::Timeout(_) | chorus_contracts::ServiceError::Unavailable(_))
                if std::time::Instant::now() + ASK_AGAIN_AFTER < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}
