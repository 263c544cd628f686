//! Writes: checkouts in either pattern, and the admin operations.

use async_graphql::{Context, ID, Object, ResultExt};
use chorus_contracts::{
    catalogue::{CreateProduct, GetProducts, SetProductActive},
    faults,
    inventory::{Levels, Restock},
    orchestrator::{CompensateSaga, StartCheckout},
};
use chorus_domain::{Cart, CheckoutId, ProductId};
use chorus_event_store::{Envelope, EventPayload, Pattern};
use chorus_runtime::config::FaultSpec;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    GatewayError,
    request::{principal, request_trace, state},
    inputs::{CheckoutInput, parse_id},
    retry::{ask_again_until_answered, store_initiation},
    types::{FaultMode, Product, Saga},
    views::CheckoutAccepted,
};

/// Most units one restock or new product may add.
pub const MAX_STOCK: i64 = 1_000_000_000;

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
            let checkout = input.parse()?;
            who.acts_as(checkout.client_id)?;
            // Every checkout gets its id here, so that asking again (after a
            // replica died mid-saga) names the same saga, key or no key.
            let request = StartCheckout {
                client_id: checkout.client_id,
                items: checkout.cart,
                idempotency_key: checkout.idempotency_key,
                checkout_id: Some(CheckoutId::now_v7()),
                traceparent: Some(trace.child().to_string()),
            };
            Ok::<_, GatewayError>(Saga::from(ask_again_until_answered(state, &request).await?))
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
            let checkout = input.parse()?;
            who.acts_as(checkout.client_id)?;
            let checkout_id = match &checkout.idempotency_key {
                // The same client and key name the same checkout, and its
                // first event the same message id: a racing repeat is deduplicated.
                Some(key) => CheckoutId(Uuid::new_v5(&checkout.client_id.0, format!("choreographed:{key}").as_bytes())),
                None => CheckoutId::now_v7(),
            };
            let cart = &checkout.cart;
            if checkout.idempotency_key.is_some()
                && let Some(existing) = state.projections.checkout_fresh(&state.events, checkout_id).await?
            {
                // The key names that checkout: only for the same cart.
                let history = state.events.read_checkout(checkout_id).await?;
                same_cart(history.iter().map(|e| &e.envelope), cart)?;
                return Ok(CheckoutAccepted { checkout_id: ID(checkout_id.to_string()), status: existing.status.as_str().to_owned() });
            }
            let keyed = checkout.idempotency_key.is_some();
            let payload = EventPayload::CheckoutInitiated {
                client_id: checkout.client_id,
                items: cart.lines().to_vec(),
                idempotency_key: checkout.idempotency_key.clone().map(String::from),
            };
            let event = Envelope::new(checkout_id, Pattern::Choreographed, payload).with_derived_id("CheckoutInitiated");
            // A repeat racing the first with the same key: the stream kept
            // the first (same message id) and says where; this one is
            // refused unless it is the same cart.
            if let Some(first) = store_initiation(state, &event, &trace).await?
                && keyed
                && let Some(stored) = state.events.get(first).await?
            {
                same_cart(std::iter::once(&stored.envelope), cart)?;
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
            let id: CheckoutId = parse_id("id", &id)?;
            who.admin()?;
            match state.checkouts.call(&CompensateSaga { id }).await {
                Err(chorus_contracts::ServiceError::Conflict(m)) => Err(GatewayError::BadUserInput(m)),
                other => Ok(Saga::from(other?)),
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
            let id = ProductId::now_v7();
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
            let id: ProductId = parse_id("productId", &product_id)?;
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
            let id: ProductId = parse_id("productId", &product_id)?;
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

/// Refuses (`CONFLICT`) a cart other than the one the checkout's
/// `CheckoutInitiated` (among `events`) holds: an idempotency key names one cart.
fn same_cart<'e>(events: impl IntoIterator<Item = &'e Envelope>, cart: &Cart) -> Result<(), GatewayError> {
    let stored = events.into_iter().find_map(|e| match &e.payload {
        EventPayload::CheckoutInitiated { items, .. } => Some(items),
        _ => None,
    });
    match stored {
        Some(stored) if !cart.same_lines(stored) => {
            Err(GatewayError::Conflict("idempotencyKey already names a checkout of another cart".into()))
        }
        _ => Ok(()),
    }
}
