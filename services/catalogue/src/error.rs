use chorus_domain::ProductId;
use chorus_contracts::ServiceError;

/// Everything the catalogue can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("{0}")]
    BadInput(String),
    #[error("product {0} not found")]
    NotFound(ProductId),
    #[error("product {0} exists with another name or price")]
    Conflict(ProductId),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("NATS: {0}")]
    Nats(async_nats::Error),
}

impl From<CatalogueError> for ServiceError {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::BadInput(m) => ServiceError::BadInput(m),
            e @ CatalogueError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            e @ CatalogueError::Conflict(_) => ServiceError::Conflict(e.to_string()),
            e @ (CatalogueError::Db(_) | CatalogueError::Nats(_)) => ServiceError::Internal(e.to_string()),
        }
    }
}
