//! The checkout event model, and NATS JetStream as its event store.
//!
//! - [`event`]: the envelope and every event type (DESIGN §3.2), as serde types;
//! - [`subjects`]: the one place that builds subjects and filters;
//! - [`store`]: stream provisioning, `append`, `read_checkout`, `read_page`, `follow`;
//! - [`projections`]: the CQRS read models `checkouts` and `orders_by_client` in KV buckets.
//!
//! One event is one message on `ecommerce.checkout.<checkout_id>.<EventType>`
//! in stream `CHECKOUT_EVENTS`, its `Nats-Msg-Id` the event id. Reading one
//! checkout never scans the stream: a KV index maps each checkout to the
//! sequences of its events, and replay is a direct get per sequence (DESIGN §2
//! measured the filtered-consumer scan at hundreds of milliseconds on 2.9).

mod error;
pub mod event;
pub mod projections;
pub mod store;
pub mod subjects;

pub use error::EventStoreError;
pub use event::{CartLine, Envelope, EventPayload, OrderLine, Pattern, RecordedEvent};
pub use projections::{CheckoutStatus, CheckoutView, ClientOrders, Projection, Projections};
pub use store::{EventStore, Page};
