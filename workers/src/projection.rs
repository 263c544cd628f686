//! cqrs-projection (`choreo-cqrs`): applies every event of both patterns to
//! the read models (`checkouts`, `orders_by_client`), a pulled batch at a
//! time so that a checkout's events in one batch cost one write.

use chorus_event_store::{EventType, RecordedEvent};
use futures::future::BoxFuture;

use crate::{
    Role, Worker, WorkerError, WorkerName, Workers,
    worker::{Delivery, Handled},
};

pub async fn handle_batch(ctx: &Workers, events: &[RecordedEvent]) -> Result<(), WorkerError> {
    ctx.projections.apply_all(events).await?;
    Ok(())
}

/// The worker of this module.
pub struct CqrsProjection;

impl Worker for CqrsProjection {
    fn name(&self) -> WorkerName {
        WorkerName::CqrsProjection
    }

    fn durable(&self) -> &'static str {
        "choreo-cqrs"
    }

    fn consumes(&self) -> &'static [EventType] {
        &[]
    }

    fn role(&self) -> Role {
        Role::Records
    }

    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, _: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>> {
        Box::pin(async move { handle_batch(ctx, std::slice::from_ref(event)).await.map(|()| Handled::Done) })
    }

    fn handle_batch<'a>(&'a self, ctx: &'a Workers, events: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(handle_batch(ctx, events))
    }
}
