//! The server side every Chorus service runs on: the NATS service API
//! (`nats micro ls|info|stats` work, queue groups balance replicas), typed
//! handlers, fault injection, tracing and graceful stop.

use std::{future::Future, sync::Arc};

use async_nats::service::{self, ServiceExt};
use bytes::Bytes;
use chorus_runtime::{
    config::FaultMode,
    shutdown::Shutdown,
    trace::{TRACEPARENT, TraceParent},
};
use futures::{StreamExt, future::BoxFuture};
use tracing::Instrument;

use crate::{Endpoint, ServiceError, faults::Faults};

type Handler = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Result<Bytes, ServiceError>> + Send + Sync>;

/// A service: its name, the state its handlers share (a database handle,
/// say) and its endpoints, ready to [`serve`](Self::serve).
pub struct ServiceDef<S> {
    name: &'static str,
    description: &'static str,
    state: S,
    endpoints: Vec<(&'static str, Handler)>,
}

impl<S> std::fmt::Debug for ServiceDef<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: Vec<&str> = self.endpoints.iter().map(|(op, _)| *op).collect();
        f.debug_struct("ServiceDef").field("name", &self.name).field("endpoints", &ops).finish()
    }
}

impl<S: Clone + Send + Sync + 'static> ServiceDef<S> {
    pub fn new(name: &'static str, description: &'static str, state: S) -> Self {
        ServiceDef { name, description, state, endpoints: Vec::new() }
    }

    /// Adds the endpoint of request type `E`, answered by `handler` with a
    /// clone of the service's state.
    pub fn endpoint<E, F, Fut>(mut self, handler: F) -> Self
    where
        E: Endpoint,
        F: Fn(S, E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E::Response, ServiceError>> + Send + 'static,
    {
        debug_assert_eq!(E::SERVICE, self.name, "endpoint registered on the wrong service");
        let handler = Arc::new(handler);
        let state = self.state.clone();
        let erased: Handler = Arc::new(move |payload: Bytes| {
            let (handler, state) = (handler.clone(), state.clone());
            Box::pin(async move {
                let request: E = serde_json::from_slice(&payload)
                    .map_err(|e| ServiceError::BadInput(format!("malformed {} request: {e}", E::OPERATION)))?;
                if let Some(id) = request.checkout_id() {
                    tracing::Span::current().record("checkout_id", tracing::field::display(id));
                }
                let response = handler(state, request).await?;
                serde_json::to_vec(&response)
                    .map(Bytes::from)
                    .map_err(|e| ServiceError::Internal(e.to_string()))
            })
        });
        self.endpoints.push((E::OPERATION, erased));
        self
    }

    /// Registers the service and its endpoints on NATS, then answers
    /// requests until `shutdown` is cancelled; in-flight requests are
    /// tracked so that the process finishes them before it drains NATS.
    pub async fn serve(
        self,
        nats: async_nats::Client,
        faults: Faults,
        shutdown: &Shutdown,
    ) -> Result<(), async_nats::Error> {
        let service = nats
            .service_builder()
            .description(self.description)
            .start(self.name, env!("CARGO_PKG_VERSION"))
            .await?;
        let group = service.group(self.name);
        for (operation, handler) in self.endpoints {
            let mut endpoint = group.endpoint(operation).await?;
            let (token, tracker) = (shutdown.token.clone(), shutdown.tracker.clone());
            let faults = faults.clone();
            let name = self.name;
            shutdown.tracker.spawn(async move {
                loop {
                    let request = tokio::select! {
                        () = token.cancelled() => break,
                        request = endpoint.next() => match request { Some(r) => r, None => break },
                    };
                    tracker.spawn(answer(name, operation, request, handler.clone(), faults.clone()));
                }
                let _ = endpoint.stop().await;
            });
        }
        let token = shutdown.token.clone();
        shutdown.tracker.spawn(async move {
            token.cancelled().await;
            if let Err(e) = service.stop().await {
                tracing::warn!(error = %e, "service did not deregister cleanly");
            }
        });
        tracing::info!(service = self.name, "service ready");
        Ok(())
    }
}

async fn answer(
    service_name: &'static str,
    operation: &'static str,
    request: service::Request,
    handler: Handler,
    faults: Faults,
) {
    let trace = request
        .message
        .headers
        .as_ref()
        .and_then(|h| h.get(TRACEPARENT))
        .and_then(|v| TraceParent::parse(v.as_str()))
        .unwrap_or_else(TraceParent::new_root);
    let span = tracing::info_span!(
        "service_request",
        service = service_name,
        operation,
        trace_id = %trace.trace_id(),
        checkout_id = tracing::field::Empty,
    );
    trace.adopt(&span);
    async move {
        let target = format!("{service_name}.{operation}");
        let result = match faults.roll(&target) {
            Some(FaultMode::Timeout) => {
                tracing::warn!(fault = %target, "injected timeout: not answering");
                return;
            }
            Some(FaultMode::Error) => {
                tracing::warn!(fault = %target, "injected error");
                Err(ServiceError::Unavailable(format!("injected fault on {target}")))
            }
            Some(FaultMode::None) | None => handler(request.message.payload.clone()).await,
        };
        let response = result.map_err(|e| {
            let status = match &e {
                // The cause stays in this service's log; callers learn only the kind.
                ServiceError::Internal(detail) => {
                    tracing::error!(error = %detail, "request failed");
                    "internal error".to_owned()
                }
                other => {
                    tracing::debug!(error = %other, "request refused");
                    other.message().to_owned()
                }
            };
            service::error::Error { status, code: e.code() }
        });
        if let Err(e) = request.respond(response).await {
            tracing::warn!(error = %e, "could not send the answer");
        }
    }
    .instrument(span)
    .await;
}
