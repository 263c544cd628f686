//! The composition root of Chorus: which parts run in a process and how
//! they are wired.
//!
//! - [`cli`]: the `chorus` command line (`up`, `gateway`, `service`, `worker`,
//!   `events`, `replay`, `schema`);
//! - [`platform`]: starts a role's parts on one NATS connection and stops
//!   them in order (the same code serves `chorus up` and the tests);
//! - [`seed`]: demo products on a first start;
//! - [`tools`]: `chorus events` and `chorus replay`, the operator's view of the event store;
//! - [`bench`]: `chorus bench`, the two saga styles measured side by side;
//! - [`chaos`]: `chorus chaos`, the invariants checked under faults.

pub mod bench;
pub mod chaos;
pub mod cli;
pub mod client;
pub mod cluster;
mod error;
pub mod platform;
pub mod seed;
pub mod status;
pub mod tools;

pub use error::ChorusError;
