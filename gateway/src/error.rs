//! Every failure a client can see, mapped once to `extensions.code`.

use async_graphql::ErrorExtensions;
use chorus_contracts::ServiceError;

/// What the gateway answers when an operation fails. Internal causes are
/// logged here and never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadUserInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    InsufficientStock(String),
    #[error("{0}")]
    ProductUnavailable(String),
    /// The request contradicts what already exists: an idempotency key
    /// reused with another cart.
    #[error("{0}")]
    Conflict(String),
    /// Over `CHORUS_RATE_LIMIT`; `retry_after` is when the next one is let in.
    #[error("rate limit exceeded; retry in {}s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: std::time::Duration },
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("internal error")]
    Internal(String),
}

impl GatewayError {
    /// The `extensions.code` of DESIGN §4; no `_` arm, so a new variant
    /// cannot ship without a code.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadUserInput(_) => "BAD_USER_INPUT",
            GatewayError::NotFound(_) => "NOT_FOUND",
            GatewayError::Unauthenticated => "UNAUTHENTICATED",
            GatewayError::Forbidden(_) => "FORBIDDEN",
            GatewayError::InsufficientStock(_) => "INSUFFICIENT_STOCK",
            GatewayError::ProductUnavailable(_) => "PRODUCT_UNAVAILABLE",
            GatewayError::Conflict(_) => "CONFLICT",
            GatewayError::RateLimited { .. } => "RATE_LIMITED",
            GatewayError::ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            GatewayError::Timeout(_) => "TIMEOUT",
            GatewayError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<ServiceError> for GatewayError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::BadInput(m) => GatewayError::BadUserInput(m),
            ServiceError::NotFound(m) => GatewayError::NotFound(m),
            ServiceError::InsufficientStock(m) => GatewayError::InsufficientStock(m),
            ServiceError::ProductUnavailable(m) => GatewayError::ProductUnavailable(m),
            ServiceError::Unavailable(m) => GatewayError::ServiceUnavailable(m),
            ServiceError::Timeout(m) => GatewayError::Timeout(m),
            ServiceError::Conflict(m) => GatewayError::Conflict(m),
            ServiceError::Internal(m) => GatewayError::Internal(m),
        }
    }
}

impl From<chorus_event_store::EventStoreError> for GatewayError {
    fn from(e: chorus_event_store::EventStoreError) -> Self {
        use chorus_event_store::EventStoreError as E;
        match e {
            // NATS or a JetStream leader away: the client may retry.
            E::Provision { .. } | E::Publish { .. } | E::Read(_) | E::ReadModel(_) => {
                tracing::warn!(error = %e, "event store unavailable");
                GatewayError::ServiceUnavailable("the event store is unavailable; retry shortly".into())
            }
            E::Decode { .. } | E::Encode(_) => GatewayError::Internal(format!("event store: {e}")),
        }
    }
}

impl ErrorExtensions for GatewayError {
    fn extend(&self) -> async_graphql::Error {
        if let GatewayError::Internal(detail) = self {
            tracing::error!(error = %detail, "request failed");
        }
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| {
            e.set("code", self.code());
            if let GatewayError::RateLimited { retry_after } = self {
                e.set("retryAfter", retry_after.as_secs().max(1));
            }
        })
    }
}
