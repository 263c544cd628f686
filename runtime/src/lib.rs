//! What every Chorus process shares, so that each role (`chorus up`, `chorus
//! gateway`, `chorus service <name>`, …) starts the same way:
//!
//! - [`clock`]: now, at the precision every store keeps;
//! - [`config`]: the typed configuration, read once from the environment;
//! - `telemetry` (feature `telemetry`, the binary's): tracing as JSON lines
//!   or pretty text, spans over OTLP;
//! - [`metrics`]: the Prometheus recorder and its `/metrics` route;
//! - [`nats`]: a NATS connection with retry and a clear error;
//! - `db` (feature `db`, for the crates that own a database): a sea-orm
//!   connection to SQLite (embedded default) or Postgres;
//! - [`shutdown`]: SIGINT/SIGTERM turned into one cancellation token;
//! - [`trace`]: the W3C `traceparent` carried by every request and event.

pub mod clock;
pub mod config;
#[cfg(feature = "db")]
pub mod db;
mod error;
pub mod metrics;
pub mod nats;
pub mod nats_cluster;
pub mod nats_server;
pub mod retry;
pub mod shutdown;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod trace;

pub use config::Config;
pub use error::RuntimeError;
