//! cqrs-projection (`choreo-cqrs`): applies every event of both patterns to
//! the read models (`checkouts`, `orders_by_client`).

use chorus_event_store::RecordedEvent;

use crate::{WorkerError, Workers, consumer::Handled};

pub async fn handle(ctx: &Workers, event: &RecordedEvent) -> Result<Handled, WorkerError> {
    ctx.projections.apply(event).await?;
    Ok(Handled::Done)
}
