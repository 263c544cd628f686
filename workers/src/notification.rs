//! notification (`choreo-notification`): tells the client how each of its
//! checkouts ended, on core NATS `notifications.<client_id>`, both patterns.
//! At least once: the message carries the terminal event's id
//! (`Chorus-Event-Id`) so a client can drop a repeat.

use chorus_domain::{CheckoutId, ClientId};
use async_nats::HeaderMap;
use chorus_event_store::{EventPayload, EventType, RecordedEvent};
use futures::future::BoxFuture;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    Worker, WorkerError, WorkerName, Workers,
    settle::Checkout,
    worker::{Delivery, Handled},
};

/// The subject a client's notifications go to.
pub fn subject(client_id: ClientId) -> String {
    format!("notifications.{client_id}")
}

/// What a client is told.
#[derive(Debug, Serialize)]
pub struct Notification<'a> {
    pub checkout_id: CheckoutId,
    pub pattern: &'static str,
    /// `SUCCEEDED` or `FAILED`.
    pub status: &'static str,
    pub order_id: Option<Uuid>,
    pub reason: Option<&'a str>,
    pub message: String,
}

pub async fn handle(ctx: &Workers, event: &RecordedEvent) -> Result<Handled, WorkerError> {
    let e = &event.envelope;
    let (status, order_id, reason, client_id) = match &e.payload {
        EventPayload::CheckoutSucceeded { order_id, client_id } => ("SUCCEEDED", Some(*order_id), None, *client_id),
        EventPayload::CheckoutFailed { reason, client_id, .. } => ("FAILED", None, Some(reason.as_str()), *client_id),
        _ => return Ok(Handled::Done),
    };
    // A terminal event stored before they named the client: read the history.
    let client_id = match client_id {
        Some(id) => id,
        None => Checkout::load(ctx, e.checkout_id).await?.client_id,
    };
    let message = match (order_id, reason) {
        (Some(order), _) => format!("Your order {order} is confirmed."),
        (None, Some(reason)) => format!("Your checkout failed: {reason}"),
        (None, None) => "Your checkout ended.".to_owned(),
    };
    let note = Notification { checkout_id: e.checkout_id, pattern: e.pattern.as_str(), status, order_id, reason, message };
    let body = serde_json::to_vec(&note).map_err(chorus_event_store::EventStoreError::from)?;
    let mut headers = HeaderMap::new();
    headers.insert("Chorus-Event-Id", e.id.to_string().as_str());
    ctx.nats
        .publish_with_headers(subject(client_id), headers, body.into())
        .await
        .map_err(WorkerError::nats)?;
    Ok(Handled::Done)
}

/// The worker of this module: only the two terminal events are delivered
/// to it (a consumer with several filters), none to skip and ack.
pub struct NotificationWorker;

impl Worker for NotificationWorker {
    fn name(&self) -> WorkerName {
        WorkerName::Notification
    }

    fn durable(&self) -> &'static str {
        "choreo-notification"
    }

    fn consumes(&self) -> &'static [EventType] {
        &[EventType::CheckoutSucceeded, EventType::CheckoutFailed]
    }

    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, _: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>> {
        Box::pin(handle(ctx, event))
    }
}
