//! The GraphQL input types, and their parsing into the typed values the
//! services take: every rule on an input is checked here, before anything
//! is written.

use async_graphql::{ID, InputObject};
use chorus_domain::{Cart, CartLine, IdempotencyKey};
use chorus_domain::{ClientId, ProductId};
use uuid::Uuid;

use crate::GatewayError;

/// Parses a GraphQL `ID` that must be a uuid into the id it names
/// (`CheckoutId`, `ProductId`, `ClientId`, or a plain `Uuid`).
pub fn parse_id<T: From<Uuid>>(field: &str, id: &ID) -> Result<T, GatewayError> {
    Uuid::parse_str(id.as_str())
        .map(T::from)
        .map_err(|_| GatewayError::BadUserInput(format!("{field}: `{}` is not a uuid", id.as_str())))
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
pub(crate) struct Checkout {
    pub client_id: ClientId,
    pub cart: Cart,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl CheckoutInput {
    /// Every rule of DESIGN §3 on the input, before anything is written.
    pub(crate) fn parse(self) -> Result<Checkout, GatewayError> {
        let client_id: ClientId = parse_id("clientId", &self.client_id)?;
        let lines = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let product_id: ProductId = parse_id(&format!("items[{i}].productId"), &item.product_id)?;
                let quantity = u32::try_from(item.quantity).map_err(|_| {
                    GatewayError::BadUserInput(format!("items[{i}]: quantity {} is outside 1..={}", item.quantity, Cart::MAX_QUANTITY))
                })?;
                Ok(CartLine { product_id, quantity })
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        let cart = Cart::parse(lines).map_err(GatewayError::BadUserInput)?;
        let idempotency_key = self.idempotency_key.map(IdempotencyKey::parse).transpose().map_err(GatewayError::BadUserInput)?;
        Ok(Checkout { client_id, cart, idempotency_key })
    }
}
