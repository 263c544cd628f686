//! End-to-end tests: the platform on a real nats-server and real databases
//! (SQLite and Postgres), driven through its public interfaces.

mod support;

mod auth;
mod bench;
mod browser;
mod chaos;
mod choreographed;
mod cluster;
mod deployment;
mod gateway;
mod hostile;
mod http_audit;
mod inventory;
mod lifecycle;
mod metrics;
mod observability;
mod orchestrated;
mod orders;
mod read_models;
mod recording;
mod recovery;
mod runtime;
mod stall;
mod status;
mod subscriptions;
mod topology;
mod trace_context;
