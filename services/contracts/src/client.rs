//! The typed client every caller of a service uses.

use std::time::{Duration, Instant};

use async_nats::{HeaderMap, RequestErrorKind};
use chorus_runtime::trace::{TRACEPARENT, TraceParent};

use crate::{Endpoint, ServiceError, subject};

/// The NATS service API's error headers.
pub(crate) const ERROR_HEADER: &str = "Nats-Service-Error";
pub(crate) const ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";

/// Calls services over NATS request/reply; cheap to clone.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    nats: async_nats::Client,
    timeout: Duration,
}

impl ServiceClient {
    /// `timeout` bounds each call (`CHORUS_SERVICE_TIMEOUT`).
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        ServiceClient { nats, timeout }
    }

    /// The same client with another per-call timeout (a checkout waits for
    /// its whole saga).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        ServiceClient { nats: self.nats.clone(), timeout }
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Calls `E`'s endpoint once, in a new trace.
    pub async fn call<E: Endpoint>(&self, request: &E) -> Result<E::Response, ServiceError> {
        self.call_traced(request, None).await
    }

    /// Calls `E`'s endpoint once, as a hop of `trace`. No retry here: the
    /// caller knows whether a retry is safe (idempotency keys) and worth it.
    pub async fn call_traced<E: Endpoint>(
        &self,
        request: &E,
        trace: Option<&TraceParent>,
    ) -> Result<E::Response, ServiceError> {
        let payload = serde_json::to_vec(request).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut headers = HeaderMap::new();
        let trace = trace.map(TraceParent::child).unwrap_or_else(TraceParent::new_root);
        headers.insert(TRACEPARENT, trace.to_string().as_str());
        let started = Instant::now();
        let result = self
            .nats
            .send_request(
                subject::<E>(),
                async_nats::Request::new()
                    .payload(payload.into())
                    .headers(headers)
                    .timeout(Some(self.timeout)),
            )
            .await;
        metrics::histogram!("external_service_call_duration_seconds", "service" => E::SERVICE)
            .record(started.elapsed().as_secs_f64());
        let reply = result.map_err(|e| match e.kind() {
            RequestErrorKind::TimedOut => ServiceError::Timeout(format!(
                "{} did not answer within {:?}",
                subject::<E>(),
                self.timeout
            )),
            RequestErrorKind::NoResponders => {
                ServiceError::Unavailable(format!("no {} replica is running", E::SERVICE))
            }
            _ => ServiceError::Unavailable(format!("{}: {e}", subject::<E>())),
        })?;
        if let Some(code) = reply.headers.as_ref().and_then(|h| h.get(ERROR_CODE_HEADER)) {
            let code = code.as_str().parse().unwrap_or(500);
            let message = reply
                .headers
                .as_ref()
                .and_then(|h| h.get(ERROR_HEADER))
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            return Err(ServiceError::from_wire(code, message));
        }
        serde_json::from_slice(&reply.payload)
            .map_err(|e| ServiceError::Internal(format!("unreadable answer from {}: {e}", subject::<E>())))
    }

    /// Whether at least one replica of `service` answers the NATS service
    /// API's `$SRV.PING`.
    pub async fn ping(&self, service: &str) -> Result<(), ServiceError> {
        let request = async_nats::Request::new().timeout(Some(self.timeout));
        self.nats
            .send_request(format!("$SRV.PING.{service}"), request)
            .await
            .map(drop)
            .map_err(|e| ServiceError::Unavailable(format!("{service} does not answer a ping: {e}")))
    }
}
