//! The work of each state: which calls it makes and what their answers
//! mean for the state machine.
//!
//! Two pairs of calls run between one write of the saga and the next,
//! because nothing needs recording between them:
//! - checking stock and fetching the products are both reads, so they run
//!   together in `VERIFYING_STOCK`; a crash before the write repeats two
//!   reads;
//! - the order and the commit of its reservation run in `CREATING_ORDER`;
//!   both are idempotent by key (a crash repeats them and changes nothing
//!   twice) and compensation from `CREATING_ORDER` undoes both.
//!
//! Each pair is then stored as one write whose moves pass through the
//! states between (`STOCK_VERIFIED`, `FETCHING_PRODUCTS`, … ; `ORDER_CREATED`),
//! so the saga log still holds every state of the chain. Sagas stored
//! resting in `FETCHING_PRODUCTS` or `ORDER_CREATED` by an earlier version
//! still run that one call.

use std::{collections::HashSet, time::Duration};

use chorus_contracts::{
    Cart, ServiceError,
    catalogue::GetProducts,
    inventory::{CancelReservation, CheckAvailability, Commit, ReservationStatus, Reserve},
    orders::{CancelOrderByKey, CreateOrder},
};
use chorus_domain::{ProductId, SagaEvent, SagaState};
use chorus_runtime::{retry, trace::TraceParent};

use super::Orchestrator;
use crate::{
    OrchestratorError,
    entity::saga,
    repo::{self, Patch},
};

/// What a step decided, before it is persisted: the events in the order
/// they happened (after each, the state's follow-on, see
/// [`SagaState::follow_on`]), each with its reason, and what the step produced.
pub(super) struct Outcome {
    pub events: Vec<(SagaEvent, Option<String>)>,
    pub patch: Patch,
}

impl Outcome {
    fn next(event: SagaEvent) -> Self {
        Outcome { events: vec![(event, None)], patch: Patch::default() }
    }

    fn fail(state: SagaState, step: &'static str, reason: String) -> Self {
        Outcome {
            events: vec![(SagaEvent::StepFailed(state), Some(reason.clone()))],
            patch: Patch { failure: Some((reason, step)), ..Patch::default() },
        }
    }

    fn with(mut self, patch: Patch) -> Self {
        self.patch = patch;
        self
    }

    fn failed(&self) -> bool {
        self.patch.failure.is_some()
    }

    /// This outcome, then `next` when this one succeeded.
    fn then(mut self, next: Outcome) -> Self {
        if self.failed() {
            return self;
        }
        self.events.extend(next.events);
        let (mine, theirs) = (self.patch, next.patch);
        self.patch = Patch {
            lines: theirs.lines.or(mine.lines),
            reservation_id: theirs.reservation_id.or(mine.reservation_id),
            order_id: theirs.order_id.or(mine.order_id),
            failure: theirs.failure,
        };
        self
    }
}

impl Orchestrator {
    /// The work of one state; forward calls are retried a bounded number of
    /// times, undo calls until they succeed.
    pub(super) async fn step(&self, row: &saga::Model, state: SagaState) -> Result<Outcome, OrchestratorError> {
        use SagaState::*;
        let trace = row.traceparent.as_deref().and_then(TraceParent::parse);
        let trace = trace.as_ref();
        Ok(match state {
            // Passed through: the next move is decided by `follow_on`, the
            // same rule that stores it with the move into this state.
            Pending | StockVerified | ProductsFetched | StockReserved | FailedInsufficientStock | FailedProductUnavailable
            | FailedStockReservation | FailedOrderCreation => match state.follow_on() {
                Some(event) => Outcome::next(event),
                None => {
                    return Err(OrchestratorError::Corrupt(format!("{state} has no follow-on")));
                }
            },
            VerifyingStock => {
                let items = repo::items_of(row)?;
                let (verified, fetched) = tokio::join!(self.verify(row, &items, trace), self.fetch(row, &items, trace));
                verified.then(fetched)
            }
            FetchingProducts => self.fetch(row, &repo::items_of(row)?, trace).await,
            ReservingStock => self.reserve(row, trace).await?,
            CreatingOrder => {
                let created = self.create_order(row, trace).await?;
                if created.failed() { created } else { created.then(self.commit(row, trace).await?) }
            }
            OrderCreated => self.commit(row, trace).await?,
            Compensating => self.compensate_steps(row, trace).await?,
            Completed | Cancelled | CompensationFailed => {
                return Err(OrchestratorError::Corrupt(format!("saga {} is already terminal", row.id)));
            }
        })
    }

    async fn verify(&self, row: &saga::Model, items: &Cart, trace: Option<&TraceParent>) -> Outcome {
        use SagaState::*;
        let request = CheckAvailability { items: items.clone(), checkout_id: Some(row.id) };
        match self.call(&request, trace).await {
            Ok(a) if !a.unknown.is_empty() => {
                let ids: Vec<String> = a.unknown.iter().map(ProductId::to_string).collect();
                Outcome::fail(FailedProductUnavailable, "verify_stock", format!("unknown product: {}", ids.join(", ")))
            }
            Ok(a) if a.available => Outcome::next(SagaEvent::StepSucceeded),
            Ok(a) => {
                let short: Vec<String> = a
                    .shortages
                    .iter()
                    .map(|s| format!("product {} has {} available, {} requested", s.product_id, s.available, s.requested))
                    .collect();
                Outcome::fail(FailedInsufficientStock, "verify_stock", format!("insufficient stock: {}", short.join("; ")))
            }
            Err(e) => Outcome::fail(FailedStockReservation, "verify_stock", format!("inventory: {e}")),
        }
    }

    async fn fetch(&self, row: &saga::Model, items: &Cart, trace: Option<&TraceParent>) -> Outcome {
        let ids = items.lines().iter().map(|l| l.product_id).collect();
        let unavailable = |reason| Outcome::fail(SagaState::FailedProductUnavailable, "fetch_products", reason);
        match self.call(&GetProducts { ids, checkout_id: Some(row.id) }, trace).await {
            Ok(products) => match chorus_contracts::catalogue::price(items.lines(), &products) {
                Ok(lines) => Outcome::next(SagaEvent::StepSucceeded).with(Patch { lines: Some(lines), ..Patch::default() }),
                Err(reason) => unavailable(reason),
            },
            Err(e) => unavailable(format!("catalogue: {e}")),
        }
    }

    async fn reserve(&self, row: &saga::Model, trace: Option<&TraceParent>) -> Result<Outcome, OrchestratorError> {
        use SagaState::*;
        let request = Reserve { idempotency_key: key(row, "reserve_stock"), checkout_id: row.id, items: repo::items_of(row)? };
        Ok(match self.call(&request, trace).await {
            Ok(r) if r.status == ReservationStatus::Held => {
                Outcome::next(SagaEvent::StepSucceeded).with(Patch { reservation_id: Some(r.id), ..Patch::default() })
            }
            Ok(r) => Outcome::fail(FailedStockReservation, "reserve_stock", format!("reservation {} is {:?}", r.id, r.status)),
            Err(ServiceError::InsufficientStock(m)) => Outcome::fail(FailedInsufficientStock, "reserve_stock", format!("insufficient stock: {m}")),
            Err(e) => Outcome::fail(FailedStockReservation, "reserve_stock", format!("inventory: {e}")),
        })
    }

    async fn create_order(&self, row: &saga::Model, trace: Option<&TraceParent>) -> Result<Outcome, OrchestratorError> {
        let request =
            CreateOrder { idempotency_key: key(row, "create_order"), client_id: row.client_id, checkout_id: row.id, items: repo::lines_of(row)? };
        Ok(match self.call(&request, trace).await {
            Ok(order) => Outcome::next(SagaEvent::StepSucceeded).with(Patch { order_id: Some(order.id), ..Patch::default() }),
            Err(e) => Outcome::fail(SagaState::FailedOrderCreation, "create_order", format!("orders: {e}")),
        })
    }

    /// Counts the reserved stock as sold, once the order exists.
    async fn commit(&self, row: &saga::Model, trace: Option<&TraceParent>) -> Result<Outcome, OrchestratorError> {
        let reservation_id =
            row.reservation_id.ok_or_else(|| OrchestratorError::Corrupt(format!("saga {} has an order but no reservation", row.id)))?;
        Ok(match self.undo(&Commit { reservation_id }, trace).await {
            Ok(_) => Outcome::next(SagaEvent::StepSucceeded),
            // Released meanwhile (a forced compensation): no sale.
            Err(e) => Outcome::fail(SagaState::FailedOrderCreation, "create_order", format!("inventory: the reservation cannot be committed: {e}")),
        })
    }

    /// Undoes every step the saga reached, in reverse order; a call that may
    /// still be in flight is undone by key, which also stops it from landing later.
    async fn compensate_steps(&self, row: &saga::Model, trace: Option<&TraceParent>) -> Result<Outcome, OrchestratorError> {
        use SagaState::*;
        let reached: HashSet<SagaState> = repo::transitions(&self.inner.db, row.id).await?.into_iter().map(|l| l.to_state).collect();
        let undone = async {
            if reached.contains(&CreatingOrder) {
                let cancel = CancelOrderByKey { idempotency_key: key(row, "create_order"), client_id: row.client_id, checkout_id: row.id };
                self.undo(&cancel, trace).await.map_err(|e| format!("orders: cannot cancel the order: {e}"))?;
            }
            if reached.contains(&ReservingStock) {
                // Its order is cancelled by now, so stock already counted
                // as sold (a forced compensation after the commit) goes
                // back on sale too.
                let cancel = CancelReservation { idempotency_key: key(row, "reserve_stock"), checkout_id: row.id, restock_sold: true };
                self.undo(&cancel, trace).await.map_err(|e| format!("inventory: cannot release the stock: {e}"))?;
            }
            Ok::<(), String>(())
        };
        Ok(match undone.await {
            Ok(()) => Outcome {
                events: vec![(SagaEvent::CompensationFinished, Some("every completed step undone".into()))],
                patch: Patch::default(),
            },
            Err(reason) => {
                tracing::error!(%reason, "compensation cannot finish: the saga ends in COMPENSATION_FAILED for an operator");
                metrics::counter!("saga_compensation_failed_total").increment(1);
                let failure = format!("compensation failed: {reason}");
                Outcome {
                    events: vec![(SagaEvent::CompensationImpossible, Some(failure.clone()))],
                    patch: Patch { failure: Some((failure, "compensate")), ..Patch::default() },
                }
            }
        })
    }

    /// A forward call: timeout per attempt (the client's), bounded retries
    /// of transient errors with exponential backoff and jitter.
    async fn call<E: chorus_contracts::Endpoint>(&self, request: &E, trace: Option<&TraceParent>) -> Result<E::Response, ServiceError> {
        let s = &self.inner.settings;
        let policy = retry::bounded(s.backoff, Duration::from_secs(5), s.step_attempts);
        let what = format!("{}.{}", E::SERVICE, E::OPERATION);
        retry::until_ok(&what, policy, ServiceError::is_transient, || self.inner.services.call_traced(request, trace)).await
    }

    /// An undo or commit call, retried for as long as its error is one that
    /// time can cure (a service down, a timeout): a saga must not be left
    /// half-done. A permanent error (the call can never succeed) is
    /// returned, so that the saga ends in a state that says so instead of
    /// looping. Backoff is capped so recovery is quick once the service is back.
    pub(super) async fn undo<E: chorus_contracts::Endpoint>(&self, request: &E, trace: Option<&TraceParent>) -> Result<E::Response, ServiceError> {
        let policy = retry::forever(self.inner.settings.backoff, Duration::from_secs(5));
        let what = format!("{}.{} until it succeeds", E::SERVICE, E::OPERATION);
        retry::until_ok(&what, policy, ServiceError::is_transient, || self.inner.services.call_traced(request, trace)).await
    }
}

/// The idempotency key of a step's call: `<saga_id>:<step>`.
fn key(row: &saga::Model, step: &str) -> String {
    format!("{}:{step}", row.id)
}

/// The step a running state belongs to, for `failure_step`.
pub(super) fn step_of(state: SagaState) -> &'static str {
    match state {
        SagaState::Pending | SagaState::VerifyingStock | SagaState::StockVerified => "verify_stock",
        SagaState::FetchingProducts | SagaState::ProductsFetched => "fetch_products",
        SagaState::ReservingStock | SagaState::StockReserved => "reserve_stock",
        SagaState::CreatingOrder | SagaState::OrderCreated => "create_order",
        _ => "compensate",
    }
}
