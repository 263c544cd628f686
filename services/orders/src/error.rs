use chorus_domain::CheckoutId;
use chorus_contracts::ServiceError;
use uuid::Uuid;

/// Everything the orders service can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error("{0}")]
    BadInput(String),
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error("checkout {0} was cancelled before its order was created")]
    Voided(CheckoutId),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("NATS: {0}")]
    Nats(async_nats::Error),
}

impl From<OrdersError> for ServiceError {
    fn from(e: OrdersError) -> Self {
        match e {
            OrdersError::BadInput(m) => ServiceError::BadInput(m),
            e @ OrdersError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            e @ OrdersError::Voided(_) => ServiceError::Conflict(e.to_string()),
            e @ (OrdersError::Db(_) | OrdersError::Nats(_)) => ServiceError::Internal(e.to_string()),
        }
    }
}
