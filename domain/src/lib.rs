//! Chorus's vocabulary: one type per domain word, defined once, at the
//! bottom of the crate graph so that every crate passes the type and none
//! passes its name as a string. Each type's names (serde, strum) are its
//! wire names; the `graphql` feature derives its GraphQL enum and the `db`
//! feature its database column from the same definition.
//!
//! Parse at the edge (a request's input, a message's body, a row), then
//! pass these types.

pub mod cart;
pub mod checkout;
pub mod event_type;
pub mod id;
pub mod key;
pub mod saga;

pub use cart::{Cart, CartLine};
pub use checkout::{CheckoutStatus, Pattern};
pub use event_type::EventType;
pub use id::{CheckoutId, ClientId, ProductId};
pub use key::IdempotencyKey;
pub use saga::{IllegalTransition, SagaEvent, SagaState};
