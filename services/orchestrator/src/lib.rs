//! The orchestrated checkout saga (DESIGN §3.1): one coordinator drives an
//! explicit, persisted state machine with synchronous calls to the services,
//! compensates automatically, and keeps a saga log.
//!
//! - the state machine is `chorus_domain::saga` (`decide` refuses illegal
//!   moves), shared with the gateway and the events;
//! - [`entity`], [`migration`]: tables `sagas`, `saga_log` and `outbox`;
//! - [`repo`]: compare-and-set persistence (state, version, lease owner),
//!   each write with its events in the same transaction ([`events`]);
//! - [`outbox`]: the relay that stores those events in JetStream, in order;
//! - [`driver`]: driving, leases and recovery; its `steps` module holds
//!   each state's calls, retries and compensation.
//!
//! Invariants: a transition is stored (saga row, log rows and its events in
//! the outbox, one transaction) before the next call whose effect would
//! need undoing; a caller learns
//! that a saga ended only once its events are in the event store; a saga is driven by the one
//! replica holding its lease; every call carries `<saga_id>:<step>` as its
//! idempotency key, so re-running a step after a crash changes nothing twice.

pub mod driver;
pub mod entity;
mod error;
pub mod events;
pub mod migration;
pub mod outbox;
pub mod repo;

pub use driver::{Orchestrator, Settings};
pub use error::OrchestratorError;

use chorus_contracts::{ServiceClient, faults::Faults, orchestrator::*, server::ServiceDef};
use chorus_event_store::EventStore;
use chorus_runtime::shutdown::Shutdown;
use sea_orm::DatabaseConnection;

/// Most sagas one listing returns.
pub const MAX_LIST: u32 = 500;

/// The `orchestrator` service definition.
pub fn service(orchestrator: Orchestrator) -> ServiceDef<Orchestrator> {
    ServiceDef::new("orchestrator", "The orchestrated checkout saga", orchestrator)
        .endpoint(|o, req: StartCheckout| async move { Ok(o.checkout(req).await?) })
        .endpoint(|o, req: GetSaga| async move { Ok(repo::view(o.db(), req.id).await?) })
        .endpoint(|o, req: ListSagas| async move {
            Ok(repo::list(o.db(), req.state, u64::from(req.limit.min(MAX_LIST))).await?)
        })
        .endpoint(|o, req: CompensateSaga| async move { Ok(o.compensate(req.id).await?) })
        .endpoint(|o, _: SagaHealth| async move { Ok(o.health().await?) })
}

/// Migrates `db`, serves the orchestrator and starts recovery until shutdown.
pub async fn start(
    db: DatabaseConnection,
    nats: async_nats::Client,
    services: ServiceClient,
    events: EventStore,
    settings: Settings,
    faults: Faults,
    shutdown: &Shutdown,
) -> Result<Orchestrator, OrchestratorError> {
    migration::migrate(&db).await?;
    let orchestrator = Orchestrator::new(db, services, events, settings, shutdown.clone());
    service(orchestrator.clone()).serve(nats, faults, shutdown).await.map_err(OrchestratorError::Nats)?;
    orchestrator.spawn_recovery();
    Ok(orchestrator)
}
