//! What a worker is, to the loops that run it: [`Worker`], implemented once
//! per worker in that worker's module, and what it tells them ([`Handled`],
//! [`Delivery`]). The one table from a [`WorkerName`] to its worker is
//! [`crate::worker`]; the consumer loop, the recording loop and the stall
//! watch know workers only through these, so adding a worker is one module
//! and one line in that table. This module depends on no worker.

use std::{str::FromStr, time::Duration};

use chorus_event_store::{EventType, RecordedEvent};
use futures::future::BoxFuture;
use strum::{Display, IntoStaticStr, VariantArray};

use crate::{WorkerError, Workers};

/// A worker, by the name `chorus worker <name>` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Display, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "kebab-case")]
pub enum WorkerName {
    StockReservation,
    OrderCreation,
    StockCompensation,
    Notification,
    Audit,
    CqrsProjection,
    StallWatch,
}

impl WorkerName {
    pub const ALL: &'static [WorkerName] = <WorkerName as VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The durable consumer its replicas share (DESIGN §3.2).
    pub fn durable(self) -> &'static str {
        crate::worker(self).durable()
    }
}

impl FromStr for WorkerName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkerName::ALL.iter().copied().find(|w| w.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = WorkerName::ALL.iter().map(|w| w.as_str()).collect();
            format!("unknown worker `{s}`; one of: {}", names.join(", "))
        })
    }
}

/// What a handler decided about an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Done (or nothing to do): ack it.
    Done,
    /// Look again after this long (not a failure; the stall watch).
    Later(Duration),
}

/// Which delivery of the event this is.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    pub attempt: i64,
    /// No redelivery follows this one: a failure now is final.
    pub last: bool,
}

/// How a worker takes its events; the consumer's settings follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Acts on each event (calls services, publishes follow-ups): explicit
    /// acks, and after `CHORUS_STEP_ATTEMPTS` deliveries it gives up.
    Acts,
    /// Only records (audit, read models): what is pulled together is one
    /// batch (one transaction, one ack), one replica at a time (pinned), and
    /// it never gives up, as it must see every event.
    Records,
    /// The stall watch: holds each event until its deadline (in memory, so
    /// its ack wait and ack-pending limit are larger) and never gives up.
    Watches,
}

/// One choreographed worker.
pub trait Worker: Send + Sync {
    fn name(&self) -> WorkerName;

    /// The durable consumer its replicas share (DESIGN §3.2).
    fn durable(&self) -> &'static str;

    /// The event types its consumer takes; empty for every event.
    fn consumes(&self) -> &'static [EventType];

    fn role(&self) -> Role {
        Role::Acts
    }

    /// Refuses to start without what it needs (the audit worker's database).
    fn ready(&self, _ctx: &Workers) -> Result<(), WorkerError> {
        Ok(())
    }

    /// Handles one event.
    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, delivery: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>>;

    /// Handles a pulled batch (only a worker that [`Role::Records`]).
    fn handle_batch<'a>(&'a self, _ctx: &'a Workers, _events: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), WorkerError>> {
        let name = self.name();
        Box::pin(async move { Err(WorkerError::Config(format!("{name} does not handle batches"))) })
    }

    /// The last delivery of `event` failed with `error`: end the checkout
    /// rather than leave it waiting. By default nothing: the stall watch
    /// settles what a worker leaves.
    fn give_up<'a>(&'a self, _ctx: &'a Workers, _event: &'a RecordedEvent, _error: &'a WorkerError) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_to_its_worker_and_back() {
        for &name in WorkerName::ALL {
            assert_eq!(crate::worker(name).name(), name);
            assert_eq!(name.as_str().parse::<WorkerName>(), Ok(name));
        }
        assert_eq!(WorkerName::CqrsProjection.as_str(), "cqrs-projection");
        assert_eq!(WorkerName::StallWatch.durable(), "choreo-stall");
    }
}
