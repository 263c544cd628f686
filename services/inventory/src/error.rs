use chorus_contracts::ServiceError;
use uuid::Uuid;

/// Everything inventory can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    InsufficientStock(String),
    #[error("reservation {0} not found")]
    NotFound(Uuid),
    #[error("reservation {id} is {status}: {action} is not possible")]
    Conflict { id: Uuid, status: String, action: &'static str },
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("NATS: {0}")]
    Nats(async_nats::Error),
}

impl From<InventoryError> for ServiceError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::BadInput(m) => ServiceError::BadInput(m),
            InventoryError::InsufficientStock(m) => ServiceError::InsufficientStock(m),
            e @ InventoryError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            e @ InventoryError::Conflict { .. } => ServiceError::Conflict(e.to_string()),
            e @ (InventoryError::Db(_) | InventoryError::Nats(_)) => ServiceError::Internal(e.to_string()),
        }
    }
}
