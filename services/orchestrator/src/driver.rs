//! Driving sagas: one task per saga runs its steps, persisting each
//! transition before the next step starts; a recovery loop takes over sagas
//! whose replica died; compensation undoes completed steps in reverse.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chorus_contracts::{
    IdempotencyKey, ServiceClient,
    orchestrator::{Saga, SagaHealthReport, StartCheckout},
};
use chorus_event_store::EventStore;
use chorus_runtime::{shutdown::Shutdown, trace::TraceParent};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use chorus_domain::{CheckoutId, SagaEvent, SagaState};

use self::steps::step_of;
use crate::{
    OrchestratorError,
    entity::saga,
    events,
    outbox::{self, Relay},
    repo::{self, Created, NewSaga, Patch},
};

mod steps;

/// How the orchestrator retries and leases; from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a replica's claim on a saga lasts without renewal.
    pub lease: Duration,
    /// Attempts of one forward call before its step fails.
    pub step_attempts: u32,
    /// First retry delay; doubled each attempt, with jitter.
    pub backoff: Duration,
    /// How long a checkout call waits for its saga to end.
    pub wait_limit: Duration,
}

/// One orchestrator replica; cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    services: ServiceClient,
    /// Publishes the outbox rows every saga write leaves, in order, so that
    /// a step never waits on the event store; a caller learns that a saga
    /// ended only once the relay has stored all its events.
    relay: Relay,
    settings: Settings,
    replica: String,
    shutdown: Shutdown,
    /// The sagas this replica drives, each with a token that interrupts
    /// its driver (a forced compensation replaces it).
    driving: Mutex<HashMap<CheckoutId, CancellationToken>>,
}

impl Orchestrator {
    pub fn new(db: DatabaseConnection, services: ServiceClient, events: EventStore, settings: Settings, shutdown: Shutdown) -> Self {
        let replica = format!("orchestrator-{}", Uuid::new_v4().simple());
        let relay = Relay::start(db.clone(), events, replica.clone(), &shutdown);
        Orchestrator { inner: Arc::new(Inner { db, services, relay, settings, replica, shutdown, driving: Mutex::new(HashMap::new()) }) }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Sagas that stopped moving (none for longer than the lease) and the
    /// outbox backlog, for an operator.
    pub async fn health(&self) -> Result<SagaHealthReport, OrchestratorError> {
        let lease = self.inner.settings.lease;
        let before = time::OffsetDateTime::now_utc() - time::Duration::try_from(lease).unwrap_or(time::Duration::MAX);
        let (stalled, oldest) = repo::stalled(&self.inner.db, before).await?;
        Ok(SagaHealthReport {
            stalled,
            oldest_stalled_since: oldest.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            stalled_after_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            outbox_pending: outbox::pending_count(&self.inner.db).await?,
        })
    }

    /// Starts a checkout (or finds the one its idempotency key names) and
    /// waits until it is terminal.
    pub async fn checkout(&self, req: StartCheckout) -> Result<Saga, OrchestratorError> {
        let new = NewSaga {
            client_id: req.client_id,
            items: &req.items,
            idempotency_key: req.idempotency_key.as_ref().map(IdempotencyKey::as_str),
            checkout_id: req.checkout_id,
            traceparent: req.traceparent.clone(),
        };
        let created =
            repo::create(&self.inner.db, new, &self.inner.replica, self.inner.settings.lease, |row, moves| events::started(row, &req.items, moves)).await?;
        match created {
            Created::New(row) => {
                metrics::counter!("saga_started_total").increment(1);
                self.inner.relay.wake();
                let id = row.id;
                self.spawn_drive(id, Some(*row));
                // Just created: nothing to look at before it moves.
                self.wait_terminal(id, false).await
            }
            Created::Existing(id) => self.wait_terminal(id, true).await,
        }
    }

    /// Forces compensation of a saga that is not terminal.
    pub async fn compensate(&self, id: CheckoutId) -> Result<Saga, OrchestratorError> {
        let row = repo::find(&self.inner.db, id).await?;
        match row.state {
            SagaState::Completed => return Err(OrchestratorError::AlreadyCompleted(id)),
            SagaState::Cancelled => return repo::view(&self.inner.db, id).await,
            _ => {}
        }
        // Take the saga from whoever drives it: their next write fails
        // (lease owner changed) and they stop.
        if repo::take_over(&self.inner.db, id, &self.inner.replica, self.inner.settings.lease, true).await? {
            let row = repo::find(&self.inner.db, id).await?;
            let state = row.state;
            if state.is_running() {
                let to = state.decide(SagaEvent::CompensationStarted)?;
                let reason = format!("compensation forced by an admin in {state}");
                let patch = Patch { failure: Some((reason.clone(), step_of(state))), ..Patch::default() };
                let moves = [(to, Some(reason.as_str()))];
                let (db, replica, lease) = (&self.inner.db, &self.inner.replica, self.inner.settings.lease);
                repo::transition(db, &row, &moves, patch, replica, lease, |next| events::moved(next, row.version, state, &moves)).await?;
                self.inner.relay.wake();
            }
            // A driver of ours may be inside a step that no longer matters:
            // interrupt it and start one that compensates.
            let previous = self.inner.driving.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            if let Some(previous) = previous {
                previous.cancel();
            }
            self.spawn_drive(id, None);
        }
        self.wait_terminal(id, true).await
    }

    /// Drives `id` in a task of its own unless this replica already does;
    /// from `row` when the caller has just written it, else as stored.
    fn spawn_drive(&self, id: CheckoutId, row: Option<saga::Model>) {
        let token = CancellationToken::new();
        {
            let mut driving = self.inner.driving.lock().unwrap_or_else(|p| p.into_inner());
            if driving.contains_key(&id) {
                return;
            }
            driving.insert(id, token.clone());
        }
        let this = self.clone();
        let span = tracing::info_span!("saga", checkout_id = %id, saga_id = %id, trace_id = tracing::field::Empty);
        self.inner.shutdown.tracker.spawn(
            async move {
                let driven = tokio::select! {
                    driven = this.drive(id, row) => driven,
                    () = token.cancelled() => Ok(()),
                };
                match driven {
                    Ok(()) => {}
                    Err(OrchestratorError::LeaseLost(_)) => {
                        tracing::info!("another driver took the saga over")
                    }
                    Err(e) => tracing::error!(error = %e, "saga driver stopped"),
                }
                // A cancelled token means our entry was already replaced.
                if !token.is_cancelled() {
                    this.inner.driving.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                }
            }
            .instrument(span),
        );
    }

    /// Runs the saga's steps until it is terminal, this replica loses its
    /// lease, or the process stops (then the saga is handed back).
    async fn drive(&self, id: CheckoutId, row: Option<saga::Model>) -> Result<(), OrchestratorError> {
        let row = match row {
            Some(row) => row,
            None => repo::find(&self.inner.db, id).await?,
        };
        // The steps run in a span of the checkout's trace (exported spans
        // nest under the gateway's), whichever replica drives them.
        let steps = tracing::info_span!("saga_steps", checkout_id = %id, saga_id = %id, trace_id = tracing::field::Empty);
        if let Some(trace) = row.traceparent.as_deref().and_then(TraceParent::parse) {
            tracing::Span::current().record("trace_id", tracing::field::display(trace.trace_id()));
            steps.record("trace_id", tracing::field::display(trace.trace_id()));
            trace.adopt(&steps);
        }
        self.drive_from(row).instrument(steps).await
    }

    async fn drive_from(&self, mut row: saga::Model) -> Result<(), OrchestratorError> {
        let inner = &self.inner;
        let id = row.id;
        loop {
            let state = row.state;
            if state.is_terminal() {
                return Ok(());
            }
            if row.lease_owner.as_deref() != Some(inner.replica.as_str()) {
                return Err(OrchestratorError::LeaseLost(id));
            }
            if inner.shutdown.token.is_cancelled() {
                repo::hand_back(&inner.db, id, &inner.replica).await?;
                tracing::info!(state = %state, "handed the saga back at shutdown");
                return Ok(());
            }
            // At shutdown the step in flight is abandoned (every step is
            // idempotent) and the saga handed back for another replica.
            let outcome = tokio::select! {
                outcome = self.with_heartbeat(id, self.step(&row, state)) => outcome??,
                () = inner.shutdown.token.cancelled() => continue,
            };
            // Each event's move, then its follow-on when there is one.
            let mut moves: Vec<repo::Move<'_>> = Vec::with_capacity(2 * outcome.events.len());
            let mut to = state;
            for (event, reason) in &outcome.events {
                to = to.decide(*event)?;
                moves.push((to, reason.as_deref()));
                if let Some(event) = to.follow_on() {
                    to = to.decide(event)?;
                    moves.push((to, None));
                }
            }
            let seq = row.version;
            let written = |next: &saga::Model| events::moved(next, seq, state, &moves);
            row = repo::transition(&inner.db, &row, &moves, outcome.patch, &inner.replica, inner.settings.lease, written).await?;
            inner.relay.wake();
            tracing::debug!(from = %state, to = %to, moves = moves.len(), "saga moved");
            if to.is_terminal() {
                record_end(&row, to);
            }
        }
    }

    /// Runs `work` while renewing this replica's lease; fails with
    /// `LeaseLost` if another replica took the saga meanwhile.
    async fn with_heartbeat<T>(&self, id: CheckoutId, work: impl Future<Output = T>) -> Result<T, OrchestratorError> {
        let inner = &self.inner;
        let period = inner.settings.lease / 3;
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                () = tokio::time::sleep(period) => {
                    if !repo::renew(&inner.db, id, &inner.replica, inner.settings.lease).await? {
                        return Err(OrchestratorError::LeaseLost(id));
                    }
                }
            }
        }
    }

    /// Waits until the saga is terminal and every event of it is in the
    /// event store (or the wait limit passes), and returns it. The relay
    /// wakes the waiter once it stored the saga's terminal transition (its
    /// last event), so a saga costs two looks, not one per step; sagas of
    /// other replicas are polled. A saga that ended while its events still wait
    /// (JetStream unavailable) is `EventsPending`: asking again is safe.
    async fn wait_terminal(&self, id: CheckoutId, look_first: bool) -> Result<Saga, OrchestratorError> {
        let mut ended = self.inner.relay.stored();
        let deadline = Instant::now() + self.inner.settings.wait_limit;
        let mut told = !look_first && self.until_stored(&mut ended, id).await;
        loop {
            let saga = repo::view(&self.inner.db, id).await?;
            let terminal = saga.state.is_terminal();
            // Told that its terminal transition is stored: so is every
            // event before it (the relay publishes a checkout's rows in order).
            let stored = terminal && (told || !outbox::has_pending(&self.inner.db, id).await?);
            if stored || (!terminal && Instant::now() >= deadline) {
                return Ok(saga);
            }
            if Instant::now() >= deadline {
                return Err(OrchestratorError::EventsPending(id));
            }
            told = self.until_stored(&mut ended, id).await;
        }
    }

    /// Until the relay says `id` ended (true), or 200 ms pass (a saga
    /// another replica drives, or news missed).
    async fn until_stored(&self, ended: &mut tokio::sync::broadcast::Receiver<CheckoutId>, id: CheckoutId) -> bool {
        let told = async {
            loop {
                match ended.recv().await {
                    Ok(e) if e == id => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => false,
            told = told => told,
        }
    }

    /// Takes over every saga whose replica stopped renewing its lease (or
    /// handed it back), now and then every second (at most every half
    /// lease), until shutdown.
    pub fn spawn_recovery(&self) {
        let this = self.clone();
        let token = self.inner.shutdown.token.clone();
        self.inner.shutdown.tracker.spawn(async move {
            let period = (this.inner.settings.lease / 2).min(Duration::from_secs(1));
            loop {
                if let Err(e) = this.recover_once().await {
                    tracing::warn!(error = %e, "recovery pass failed");
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(period) => {}
                }
            }
        });
    }

    /// One recovery pass; returns how many sagas this replica took over.
    pub async fn recover_once(&self) -> Result<usize, OrchestratorError> {
        let inner = &self.inner;
        let mut taken = 0;
        for id in repo::orphans(&inner.db, 100).await? {
            if repo::take_over(&inner.db, id, &inner.replica, inner.settings.lease, false).await? {
                tracing::info!(checkout_id = %id, "took over a saga whose replica stopped");
                taken += 1;
                self.spawn_drive(id, None);
            }
        }
        Ok(taken)
    }
}

fn record_end(row: &saga::Model, to: SagaState) {
    let elapsed = (row.updated_at - row.created_at).as_seconds_f64().max(0.0);
    metrics::histogram!("saga_execution_duration_seconds").record(elapsed);
    if to == SagaState::Completed {
        metrics::counter!("saga_completed_total").increment(1);
    } else {
        let reason = row.failure_reason.as_deref().map_or("unknown", failure_kind);
        let step = row.failure_step.clone().unwrap_or_else(|| "unknown".into());
        metrics::counter!("saga_failed_total", "reason" => reason, "step" => step).increment(1);
    }
}

/// A small set of label values for `saga_failed_total{reason}`.
fn failure_kind(reason: &str) -> &'static str {
    if reason.starts_with("insufficient stock") {
        "insufficient_stock"
    } else if reason.starts_with("unknown product") || reason.contains("does not exist") || reason.contains("not for sale") {
        "product_unavailable"
    } else if reason.contains("timeout") {
        "timeout"
    } else if reason.starts_with("compensation forced") {
        "forced"
    } else {
        "service_error"
    }
}
