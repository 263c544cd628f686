//! The choreographed checkout saga (DESIGN §3.2): reactive workers that talk
//! only through events, each on its own durable JetStream pull consumer.
//!
//! - [`worker`]: the [`Worker`] trait every worker implements, and the one
//!   table from a [`WorkerName`] to its worker;
//! - [`consumer`]: the loop every worker shares (pull, decode, handle, ack
//!   or retry with backoff, give up after `max_deliver`, lag gauges);
//! - one module per worker: [`reservation`], [`order`], [`compensation`],
//!   [`notification`], [`audit`], [`projection`], and [`stall`] (fails a
//!   checkout that stopped making progress);
//! - [`settle`]: the one way a checkout is failed and its effects undone,
//!   shared by compensation, give-ups and the stall watch.
//!
//! Invariants: an event is acked only after its effects and follow-up
//! events are durable; every effect goes through a service idempotency key
//! `<checkout_id>:<step>` and every follow-up event has an id derived from
//! the checkout and its name, so a redelivery or re-publish changes nothing
//! twice. Whoever first decides a step's key (do it, or cancel it) wins, so a
//! checkout ends exactly once even when a late worker races the stall watch.

pub mod audit;
pub mod compensation;
pub mod consumer;
mod error;
pub mod notification;
pub mod order;
pub mod projection;
mod recording;
pub mod reservation;
pub mod settle;
pub mod stall;
pub mod worker;

use std::time::Duration;

use chorus_contracts::ServiceClient;
use chorus_event_store::{EventStore, Projections};
use sea_orm::DatabaseConnection;

pub use error::WorkerError;
pub use worker::{Role, Worker, WorkerName};

/// The worker a name stands for: the one table of workers.
pub fn worker(name: WorkerName) -> &'static dyn Worker {
    match name {
        WorkerName::StockReservation => &reservation::StockReservation,
        WorkerName::OrderCreation => &order::OrderCreation,
        WorkerName::StockCompensation => &compensation::StockCompensation,
        WorkerName::Notification => &notification::NotificationWorker,
        WorkerName::Audit => &audit::Audit,
        WorkerName::CqrsProjection => &projection::CqrsProjection,
        WorkerName::StallWatch => &stall::StallWatch,
    }
}

/// How the workers retry and when they give up.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Deliveries of one event before an action worker gives up
    /// (`CHORUS_STEP_ATTEMPTS`): the consumer's `max_deliver`.
    pub attempts: u32,
    /// First redelivery delay after a failure, doubled each attempt.
    pub backoff: Duration,
    /// How long a choreographed checkout may go without an event.
    pub stall_deadline: Duration,
    /// How long a delivered event may stay unacked before it is redelivered
    /// (a worker that died holding it).
    pub ack_wait: Duration,
    /// Tests only (`CHORUS_TEST_CRASH_BEFORE_ACK`): this worker aborts the
    /// process after an event's effects and before its ack.
    pub crash_before_ack: Option<WorkerName>,
    /// Tests only (`CHORUS_TEST_DROP_ACKS`, 0 to 1): the share of handled
    /// events whose ack is "lost", so the server redelivers them after the
    /// ack wait (the chaos suite's duplicate deliveries).
    pub drop_acks: f64,
}

/// What every worker is started with; cheap to clone.
#[derive(Clone)]
pub struct Workers {
    pub services: ServiceClient,
    pub events: EventStore,
    pub projections: Projections,
    pub nats: async_nats::Client,
    pub settings: Settings,
    /// The audit trail's database (only the audit worker needs it).
    pub audit: Option<DatabaseConnection>,
    /// What the stall watch last read of each consumer's state.
    pub consumer_infos: stall::ConsumerInfos,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("settings", &self.settings).finish_non_exhaustive()
    }
}
