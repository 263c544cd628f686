//! cqrs-projection (`choreo-cqrs`): applies every event of both patterns to
//! the read models (`checkouts`, `orders_by_client`), a pulled batch at a
//! time so that a checkout's events in one batch cost one write.

use chorus_event_store::RecordedEvent;

use crate::{WorkerError, Workers};

pub async fn handle_batch(ctx: &Workers, events: &[RecordedEvent]) -> Result<(), WorkerError> {
    ctx.projections.apply_all(events).await?;
    Ok(())
}
