use chorus_contracts::ServiceError;
use chorus_event_store::EventStoreError;

/// Why a worker could not handle an event (this time).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    EventStore(#[from] EventStoreError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("NATS: {0}")]
    Nats(#[source] async_nats::Error),
    #[error("checkout {0} has no CheckoutInitiated event")]
    NoInitiation(chorus_domain::CheckoutId),
    #[error("{0}")]
    Config(String),
}

impl WorkerError {
    /// NATS or the event store is away (a leader election, an outage):
    /// retrying cures it, and it says nothing about the step itself.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            WorkerError::EventStore(
                EventStoreError::Publish { .. } | EventStoreError::Read(_) | EventStoreError::ReadModel(_) | EventStoreError::Provision { .. }
            ) | WorkerError::Nats(_)
        )
    }

    pub(crate) fn nats(e: impl Into<async_nats::Error>) -> Self {
        WorkerError::Nats(e.into())
    }
}
