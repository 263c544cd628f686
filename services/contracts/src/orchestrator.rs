//! The orchestrator: the orchestrated checkout saga (DESIGN §3.1).

use chorus_domain::{Cart, SagaState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CheckoutId, ClientId, Endpoint, IdempotencyKey};

/// One logged move of a saga's state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Option<SagaState>,
    pub to: SagaState,
    pub reason: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// A saga as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saga {
    pub id: CheckoutId,
    pub state: SagaState,
    pub client_id: ClientId,
    pub order_id: Option<Uuid>,
    pub failure_reason: Option<String>,
    pub transitions: Vec<Transition>,
    pub created_at: String,
    pub updated_at: String,
}

/// Starts an orchestrated checkout and answers once it is terminal. With an
/// idempotency key this client already used, answers that saga (waiting for
/// it, too) and starts nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartCheckout {
    pub client_id: ClientId,
    pub items: Cart,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The checkout's id, chosen by the caller so that asking again (after
    /// a replica died mid-saga) names the same saga even without an
    /// idempotency key; a new id when absent.
    #[serde(default)]
    pub checkout_id: Option<CheckoutId>,
    /// W3C trace context of the caller, continued by every step.
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl Endpoint for StartCheckout {
    const SERVICE: &'static str = "orchestrator";
    const OPERATION: &'static str = "checkout";
    type Response = Saga;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetSaga {
    pub id: CheckoutId,
}

impl Endpoint for GetSaga {
    const SERVICE: &'static str = "orchestrator";
    const OPERATION: &'static str = "get";
    type Response = Saga;
    fn checkout_id(&self) -> Option<CheckoutId> {
        Some(self.id)
    }
}

/// Sagas, newest first, optionally in one state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListSagas {
    pub state: Option<SagaState>,
    pub limit: u32,
}

impl Endpoint for ListSagas {
    const SERVICE: &'static str = "orchestrator";
    const OPERATION: &'static str = "list";
    type Response = Vec<Saga>;
}

/// Forces compensation of a saga that is not terminal and answers once it
/// is `CANCELLED`; a `COMPLETED` saga is a `Conflict`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompensateSaga {
    pub id: CheckoutId,
}

impl Endpoint for CompensateSaga {
    const SERVICE: &'static str = "orchestrator";
    const OPERATION: &'static str = "compensate";
    type Response = Saga;
    fn checkout_id(&self) -> Option<CheckoutId> {
        Some(self.id)
    }
}

/// What an operator asks of the orchestrator (`chorus status`, the
/// `platform` query): sagas that stopped moving, and events not yet stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SagaHealth {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaHealthReport {
    /// Sagas not terminal whose last move is older than `stalled_after_ms`
    /// (the lease: a live driver moves or hands back well within it).
    pub stalled: u64,
    /// When the longest-stalled of them last moved (RFC 3339).
    pub oldest_stalled_since: Option<String>,
    pub stalled_after_ms: u64,
    /// Events written to the outbox and not yet in the event store.
    pub outbox_pending: u64,
}

impl Endpoint for SagaHealth {
    const SERVICE: &'static str = "orchestrator";
    const OPERATION: &'static str = "health";
    type Response = SagaHealthReport;
}
