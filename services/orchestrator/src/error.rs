use chorus_domain::CheckoutId;
use chorus_contracts::ServiceError;

/// Everything the orchestrator can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("{0}")]
    BadInput(String),
    /// The idempotency key (or checkout id) already names another cart's
    /// saga, or another client's.
    #[error("{0}")]
    KeyConflict(String),
    #[error("saga {0} not found")]
    NotFound(CheckoutId),
    #[error("saga {0} is completed: there is nothing to compensate")]
    AlreadyCompleted(CheckoutId),
    /// Another replica holds the saga now; this one stops driving it.
    #[error("saga {0} is driven by another replica")]
    LeaseLost(CheckoutId),
    #[error(transparent)]
    IllegalTransition(#[from] chorus_domain::IllegalTransition),
    /// The saga ended, but the event store has not taken its events yet
    /// (JetStream unavailable): its end is not shown until they are stored.
    #[error("checkout {0} has ended, but the event store is unavailable and its events are not stored yet; ask again")]
    EventsPending(CheckoutId),
    #[error("stored saga is unreadable: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("NATS: {0}")]
    Nats(async_nats::Error),
}

impl From<OrchestratorError> for ServiceError {
    fn from(e: OrchestratorError) -> Self {
        match e {
            OrchestratorError::BadInput(m) => ServiceError::BadInput(m),
            OrchestratorError::KeyConflict(m) => ServiceError::Conflict(m),
            e @ OrchestratorError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            e @ OrchestratorError::AlreadyCompleted(_) => ServiceError::Conflict(e.to_string()),
            e @ (OrchestratorError::LeaseLost(_) | OrchestratorError::EventsPending(_)) => ServiceError::Unavailable(e.to_string()),
            e @ (OrchestratorError::IllegalTransition(_)
            | OrchestratorError::Corrupt(_)
            | OrchestratorError::Db(_)
            | OrchestratorError::Nats(_)) => ServiceError::Internal(e.to_string()),
        }
    }
}
