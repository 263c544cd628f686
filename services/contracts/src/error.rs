//! The one error type of a service call, as the caller sees it.

/// Why a service call failed. It crosses the wire as the NATS service API's
/// error headers (`Nats-Service-Error-Code` and `Nats-Service-Error`), so
/// `nats micro stats` counts the errors too.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; nothing was written.
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Not enough stock to reserve; nothing was reserved.
    #[error("insufficient stock: {0}")]
    InsufficientStock(String),
    /// A product is unknown or inactive.
    #[error("product unavailable: {0}")]
    ProductUnavailable(String),
    /// The request conflicts with the current state (e.g. releasing a
    /// reservation that became an order).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The service failed or no replica answers.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// No answer within the call's timeout.
    #[error("timeout: {0}")]
    Timeout(String),
    /// A bug or an infrastructure failure inside the service.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// The code sent in `Nats-Service-Error-Code` (HTTP-like, as the NATS
    /// service API suggests).
    pub fn code(&self) -> usize {
        match self {
            ServiceError::BadInput(_) => 400,
            ServiceError::NotFound(_) => 404,
            ServiceError::Conflict(_) => 409,
            ServiceError::InsufficientStock(_) => 412,
            ServiceError::ProductUnavailable(_) => 422,
            ServiceError::Internal(_) => 500,
            ServiceError::Unavailable(_) => 503,
            ServiceError::Timeout(_) => 504,
        }
    }

    /// The human part, without the kind.
    pub fn message(&self) -> &str {
        match self {
            ServiceError::BadInput(m)
            | ServiceError::NotFound(m)
            | ServiceError::InsufficientStock(m)
            | ServiceError::ProductUnavailable(m)
            | ServiceError::Conflict(m)
            | ServiceError::Unavailable(m)
            | ServiceError::Timeout(m)
            | ServiceError::Internal(m) => m,
        }
    }

    /// Rebuilds the error from the wire; unknown codes are service failures.
    pub fn from_wire(code: usize, message: String) -> Self {
        match code {
            400 => ServiceError::BadInput(message),
            404 => ServiceError::NotFound(message),
            409 => ServiceError::Conflict(message),
            412 => ServiceError::InsufficientStock(message),
            422 => ServiceError::ProductUnavailable(message),
            500 => ServiceError::Internal(message),
            504 => ServiceError::Timeout(message),
            _ => ServiceError::Unavailable(message),
        }
    }

    /// Whether trying again later may succeed (the orchestrator retries these).
    pub fn is_transient(&self) -> bool {
        matches!(self, ServiceError::Unavailable(_) | ServiceError::Timeout(_) | ServiceError::Internal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_wire() {
        let all = [
            ServiceError::BadInput("a".into()),
            ServiceError::NotFound("b".into()),
            ServiceError::InsufficientStock("c".into()),
            ServiceError::ProductUnavailable("d".into()),
            ServiceError::Conflict("e".into()),
            ServiceError::Unavailable("f".into()),
            ServiceError::Timeout("g".into()),
            ServiceError::Internal("h".into()),
        ];
        for e in all {
            assert_eq!(ServiceError::from_wire(e.code(), e.message().to_owned()), e);
        }
    }
}
