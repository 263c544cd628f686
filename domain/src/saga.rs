//! The saga's state machine (DESIGN §3.1) as a type: [`SagaState::decide`]
//! is the only way to move, and it refuses every move the diagram does not
//! draw, so an illegal transition is never stored.

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

// One name per state (`STOCK_RESERVED`, …) everywhere: JSON, the saga
// tables' columns, the GraphQL enum, the events.
/// The states of an orchestrated checkout (DESIGN §3.1).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
#[cfg_attr(feature = "db", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(
    feature = "db",
    sea_orm(rs_type = "String", db_type = "String(sea_orm::sea_query::StringLen::None)", rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum SagaState {
    // The seed's names (EN_ATTENTE, …) are in DESIGN §3.1.
    Pending,
    VerifyingStock,
    StockVerified,
    FetchingProducts,
    ProductsFetched,
    ReservingStock,
    StockReserved,
    CreatingOrder,
    OrderCreated,
    Completed,
    FailedInsufficientStock,
    FailedProductUnavailable,
    FailedStockReservation,
    FailedOrderCreation,
    Compensating,
    Cancelled,
    /// An undo met an error retrying cannot cure; `failureReason` says which.
    CompensationFailed,
}

/// What happened, as the orchestrator tells the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaEvent {
    /// The next step starts.
    StepStarted,
    /// The running step succeeded.
    StepSucceeded,
    /// The running step failed for good, with this failure state.
    StepFailed(SagaState),
    /// Compensation starts (after a failure, or forced by an admin).
    CompensationStarted,
    /// Every completed step is undone.
    CompensationFinished,
    /// An undo can never succeed (a permanent service error).
    CompensationImpossible,
}

/// A move the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal saga transition: {event:?} in {from}")]
pub struct IllegalTransition {
    pub from: SagaState,
    pub event: SagaEvent,
}

impl SagaState {
    /// The states nothing follows.
    pub const TERMINAL: [SagaState; 3] = [SagaState::Completed, SagaState::Cancelled, SagaState::CompensationFailed];

    /// The next state after `event`, or why that move is illegal.
    pub fn decide(self, event: SagaEvent) -> Result<SagaState, IllegalTransition> {
        use SagaEvent::*;
        use SagaState::*;
        let next = match (self, event) {
            (Pending, StepStarted) => Some(VerifyingStock),
            (VerifyingStock, StepSucceeded) => Some(StockVerified),
            (
                VerifyingStock,
                StepFailed(f @ (FailedInsufficientStock | FailedProductUnavailable | FailedStockReservation)),
            ) => Some(f),
            (StockVerified, StepStarted) => Some(FetchingProducts),
            (FetchingProducts, StepSucceeded) => Some(ProductsFetched),
            (FetchingProducts, StepFailed(f @ FailedProductUnavailable)) => Some(f),
            (ProductsFetched, StepStarted) => Some(ReservingStock),
            (ReservingStock, StepSucceeded) => Some(StockReserved),
            (ReservingStock, StepFailed(f @ (FailedInsufficientStock | FailedStockReservation))) => Some(f),
            (StockReserved, StepStarted) => Some(CreatingOrder),
            (CreatingOrder, StepSucceeded) => Some(OrderCreated),
            (CreatingOrder, StepFailed(f @ FailedOrderCreation)) => Some(f),
            (OrderCreated, StepSucceeded) => Some(Completed),
            // The reservation could not be committed (it was released): no
            // sale, so the order is undone like any failed order.
            (OrderCreated, StepFailed(f @ FailedOrderCreation)) => Some(f),
            // Every failure is compensated, even with nothing to undo, so the log says why.
            (s, CompensationStarted) if s.is_failed() => Some(Compensating),
            // An admin may force compensation of a saga that is still running.
            (s, CompensationStarted) if s.is_running() => Some(Compensating),
            (Compensating, CompensationFinished) => Some(Cancelled),
            (Compensating, CompensationImpossible) => Some(CompensationFailed),
            _ => None,
        };
        next.ok_or(IllegalTransition { from: self, event })
    }

    /// The event that follows this state at once, with no call in between
    /// (a step's end and the next one's start; a failure and its
    /// compensation). The driver stores both moves in one transaction.
    pub fn follow_on(self) -> Option<SagaEvent> {
        match self {
            SagaState::Pending | SagaState::StockVerified | SagaState::ProductsFetched | SagaState::StockReserved => {
                Some(SagaEvent::StepStarted)
            }
            s if s.is_failed() => Some(SagaEvent::CompensationStarted),
            _ => None,
        }
    }

    /// `COMPLETED`, `CANCELLED` or `COMPENSATION_FAILED`: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        SagaState::TERMINAL.contains(&self)
    }

    /// One of the `FAILED_*` states.
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            SagaState::FailedInsufficientStock
                | SagaState::FailedProductUnavailable
                | SagaState::FailedStockReservation
                | SagaState::FailedOrderCreation
        )
    }

    /// On the forward path, not yet completed.
    pub fn is_running(self) -> bool {
        !self.is_terminal() && !self.is_failed() && self != SagaState::Compensating
    }

    /// The name stored and shown (`STOCK_RESERVED`, …).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::{SagaEvent::*, SagaState::*, *};

    /// Given a state, when an event, then the next state.
    const LEGAL: &[(SagaState, SagaEvent, SagaState)] = &[
        (Pending, StepStarted, VerifyingStock),
        (VerifyingStock, StepSucceeded, StockVerified),
        (VerifyingStock, StepFailed(FailedInsufficientStock), FailedInsufficientStock),
        (VerifyingStock, StepFailed(FailedStockReservation), FailedStockReservation),
        (VerifyingStock, StepFailed(FailedProductUnavailable), FailedProductUnavailable),
        (StockVerified, StepStarted, FetchingProducts),
        (FetchingProducts, StepSucceeded, ProductsFetched),
        (FetchingProducts, StepFailed(FailedProductUnavailable), FailedProductUnavailable),
        (ProductsFetched, StepStarted, ReservingStock),
        (ReservingStock, StepSucceeded, StockReserved),
        (ReservingStock, StepFailed(FailedInsufficientStock), FailedInsufficientStock),
        (ReservingStock, StepFailed(FailedStockReservation), FailedStockReservation),
        (StockReserved, StepStarted, CreatingOrder),
        (CreatingOrder, StepSucceeded, OrderCreated),
        (CreatingOrder, StepFailed(FailedOrderCreation), FailedOrderCreation),
        (OrderCreated, StepSucceeded, Completed),
        (FailedInsufficientStock, CompensationStarted, Compensating),
        (FailedProductUnavailable, CompensationStarted, Compensating),
        (FailedStockReservation, CompensationStarted, Compensating),
        (FailedOrderCreation, CompensationStarted, Compensating),
        (Pending, CompensationStarted, Compensating),
        (ReservingStock, CompensationStarted, Compensating),
        (OrderCreated, CompensationStarted, Compensating),
        (Compensating, CompensationFinished, Cancelled),
        (Compensating, CompensationImpossible, CompensationFailed),
        (OrderCreated, StepFailed(FailedOrderCreation), FailedOrderCreation),
    ];

    const ILLEGAL: &[(SagaState, SagaEvent)] = &[
        (Pending, StepSucceeded),
        (Pending, StepFailed(FailedOrderCreation)),
        (VerifyingStock, StepFailed(FailedOrderCreation)),
        (FetchingProducts, StepFailed(FailedInsufficientStock)),
        (CreatingOrder, StepFailed(FailedStockReservation)),
        (StockVerified, StepSucceeded),
        (Completed, StepStarted),
        (Completed, CompensationStarted),
        (Cancelled, CompensationStarted),
        (Cancelled, StepStarted),
        (Compensating, StepStarted),
        (Compensating, CompensationStarted),
        (FailedOrderCreation, StepStarted),
        (FailedOrderCreation, CompensationFinished),
        (FailedOrderCreation, CompensationImpossible),
        (OrderCreated, StepFailed(FailedStockReservation)),
    ];

    #[test]
    fn every_legal_transition() {
        for &(from, event, to) in LEGAL {
            assert_eq!(from.decide(event), Ok(to), "given {from}, when {event:?}");
        }
    }

    #[test]
    fn a_sample_of_illegal_transitions_is_refused() {
        for &(from, event) in ILLEGAL {
            assert_eq!(from.decide(event), Err(IllegalTransition { from, event }), "given {from}, when {event:?}");
        }
    }

    #[test]
    fn terminal_states_accept_nothing() {
        let events = [
            StepStarted,
            StepSucceeded,
            CompensationStarted,
            CompensationFinished,
            CompensationImpossible,
            StepFailed(FailedOrderCreation),
        ];
        for state in SagaState::TERMINAL {
            for event in events {
                assert!(state.decide(event).is_err(), "{state} accepted {event:?}");
            }
        }
    }

    #[test]
    fn follow_ons_are_legal_and_never_end_a_saga() {
        for &state in SagaState::VARIANTS {
            if let Some(event) = state.follow_on() {
                let next = state.decide(event).expect("a follow-on is a legal move");
                assert!(!next.is_terminal() && next.follow_on().is_none(), "{state} → {next}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for &state in SagaState::VARIANTS {
            assert_eq!(state.as_str().parse::<SagaState>(), Ok(state));
            let json = serde_json::to_string(&state).expect("json");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }
}
