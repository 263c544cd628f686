//! The contracts between Chorus services: every endpoint's request and
//! response type, the typed [`client::ServiceClient`] that calls them over
//! NATS request/reply, and the [`server`] side every service runs on (the
//! NATS service API, fault injection, metrics).
//!
//! A request type names its endpoint through [`Endpoint`], so a call cannot
//! pair a request with the wrong subject or response type.

pub mod catalogue;
pub mod client;
mod error;
pub mod faults;
pub mod inventory;
pub mod orchestrator;
pub mod orders;
pub mod server;

pub use client::ServiceClient;
pub use error::ServiceError;
pub use chorus_domain::{Cart, CartLine, CheckoutId, ClientId, IdempotencyKey, ProductId};

use serde::{Serialize, de::DeserializeOwned};

/// A request with a fixed service, operation and response type.
pub trait Endpoint: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The service name (`catalogue`, `inventory`, `orders`).
    const SERVICE: &'static str;
    /// The operation; the subject is `<service>.<operation>`, and a fault
    /// targets it by the same name.
    const OPERATION: &'static str;
    type Response: Serialize + DeserializeOwned + Send + 'static;

    /// The checkout this request is part of, for logs.
    fn checkout_id(&self) -> Option<CheckoutId> {
        None
    }
}

/// The NATS subject of an endpoint.
pub fn subject<E: Endpoint>() -> String {
    format!("{}.{}", E::SERVICE, E::OPERATION)
}
