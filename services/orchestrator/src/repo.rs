//! The saga's persistence. Every write is a compare-and-set on the saga's
//! state, version and lease owner, so a replica that lost its lease can
//! never overwrite the replica that took over.

use chorus_contracts::{Cart, orchestrator::{Saga, Transition}, orders::OrderLine};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Condition, TransactionTrait, prelude::*, sea_query::{ExprTrait, OnConflict},
};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use chorus_domain::{CheckoutId, ClientId, SagaState};
use chorus_event_store::Envelope;

use crate::{
    OrchestratorError,
    entity::{saga, saga_log},
    outbox,
};

/// What a step produced, stored with the transition that records it.
#[derive(Debug, Default, Clone)]
pub struct Patch {
    pub lines: Option<Vec<OrderLine>>,
    pub reservation_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub failure: Option<(String, &'static str)>,
}

/// A new saga, or the one this client's idempotency key already names.
pub enum Created {
    New(Box<saga::Model>),
    Existing(CheckoutId),
}

/// A saga to create: who, what, and how callers name it.
pub struct NewSaga<'a> {
    pub client_id: ClientId,
    pub items: &'a Cart,
    pub idempotency_key: Option<&'a str>,
    /// The id the caller chose (asking again names the same saga).
    pub checkout_id: Option<CheckoutId>,
    pub traceparent: Option<String>,
}

/// Creates the saga with its first log rows, `PENDING` and the state that
/// follows it at once (the first step's, entered before any call), and, in
/// the same transaction, the outbox rows `events` builds from the row and
/// those moves; or finds the saga that the idempotency key (or the caller's
/// checkout id) already names.
pub async fn create(
    db: &DatabaseConnection,
    new: NewSaga<'_>,
    owner: &str,
    lease: std::time::Duration,
    events: impl FnOnce(&saga::Model, &[Move<'_>]) -> Vec<Envelope>,
) -> Result<Created, OrchestratorError> {
    let NewSaga { client_id, items, idempotency_key, checkout_id, traceparent } = new;
    let mut moves: Vec<Move<'_>> = vec![(SagaState::Pending, Some("checkout received"))];
    if let Some(event) = SagaState::Pending.follow_on() {
        moves.push((SagaState::Pending.decide(event)?, None));
    }
    let (state, _) = moves[moves.len() - 1];
    let now = chorus_runtime::clock::now_micros();
    let id = checkout_id.unwrap_or_else(CheckoutId::now_v7);
    let items_json = serde_json::to_string(items).map_err(|e| OrchestratorError::Corrupt(e.to_string()))?;
    let row = saga::Model {
        id,
        client_id,
        idempotency_key: idempotency_key.map(str::to_owned),
        items: items_json,
        lines: None,
        state,
        version: moves.len() as i64,
        reservation_id: None,
        order_id: None,
        failure_reason: None,
        failure_step: None,
        lease_owner: Some(owner.to_owned()),
        lease_expires_at: Some(now + to_time(lease)),
        attempts: 1,
        traceparent,
        created_at: now,
        updated_at: now,
    };
    let txn = db.begin().await?;
    // No conflict target: a repeated id and a repeated (client, key) are
    // both "this saga exists already".
    let inserted = saga::Entity::insert(saga::ActiveModel::from(row.clone()))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await;
    let inserted = match inserted {
        Ok(n) => n > 0,
        Err(DbErr::RecordNotInserted) => false,
        Err(e) => return Err(e.into()),
    };
    if !inserted {
        txn.rollback().await?;
        let existing = match idempotency_key {
            Some(key) => {
                saga::Entity::find()
                    .filter(saga::Column::ClientId.eq(client_id))
                    .filter(saga::Column::IdempotencyKey.eq(key))
                    .one(db)
                    .await?
            }
            None => saga::Entity::find_by_id(id).one(db).await?.filter(|s| s.client_id == client_id),
        };
        let existing = existing.ok_or_else(|| OrchestratorError::KeyConflict(format!("checkout {id} belongs to another client")))?;
        // The key names that saga: only for the same cart.
        if !items.same_lines(items_of(&existing)?.lines()) {
            return Err(OrchestratorError::KeyConflict("idempotencyKey already names a checkout of another cart".into()));
        }
        return Ok(Created::Existing(existing.id));
    }
    let mut from = None;
    let logged: Vec<_> = moves.iter().map(|&(to, reason)| (from.replace(to), to, reason)).collect();
    log(&txn, id, 0, &logged, now).await?;
    outbox::write(&txn, owner, &events(&row, &moves), row.traceparent.as_deref(), now).await?;
    txn.commit().await?;
    Ok(Created::New(Box::new(row)))
}

/// Log rows `seq, seq + 1, …` for `moves` (from, to, reason), in one statement.
async fn log(
    db: &impl ConnectionTrait,
    saga_id: CheckoutId,
    seq: i64,
    moves: &[(Option<SagaState>, SagaState, Option<&str>)],
    at: OffsetDateTime,
) -> Result<(), OrchestratorError> {
    let rows = moves.iter().zip(seq..).map(|(&(from, to, reason), seq)| saga_log::ActiveModel {
        saga_id: Set(saga_id),
        seq: Set(seq),
        from_state: Set(from),
        to_state: Set(to),
        reason: Set(reason.map(str::to_owned)),
        at: Set(at),
    });
    saga_log::Entity::insert_many(rows).exec_without_returning(db).await?;
    Ok(())
}

/// One move of a saga: the state it goes to, and why.
pub type Move<'a> = (SagaState, Option<&'a str>);

/// Moves `current` through `moves` (usually one; two when a state is only
/// passed through, see [`SagaState::follow_on`]) if nobody moved it since
/// it was read and this replica still holds its lease; writes a log row per
/// move and the outbox rows `events` builds from the new row in the same
/// transaction, and renews the lease. `patch` is what the step produced.
/// Returns the new row.
pub async fn transition(
    db: &DatabaseConnection,
    current: &saga::Model,
    moves: &[Move<'_>],
    patch: Patch,
    owner: &str,
    lease: std::time::Duration,
    events: impl FnOnce(&saga::Model) -> Vec<Envelope>,
) -> Result<saga::Model, OrchestratorError> {
    let Some(&(to, _)) = moves.last() else {
        return Ok(current.clone());
    };
    let mut from = current.state;
    let logged: Vec<_> = moves
        .iter()
        .map(|&(to, reason)| (Some(std::mem::replace(&mut from, to)), to, reason))
        .collect();
    let now = chorus_runtime::clock::now_micros();
    let mut next = current.clone();
    next.state = to;
    next.version = current.version + moves.len() as i64;
    next.updated_at = now;
    next.lease_expires_at = Some(now + to_time(lease));
    let txn = db.begin().await?;
    let mut update = saga::Entity::update_many()
        .col_expr(saga::Column::State, Expr::value(to))
        .col_expr(saga::Column::Version, Expr::value(next.version))
        .col_expr(saga::Column::UpdatedAt, Expr::value(now))
        .col_expr(saga::Column::LeaseExpiresAt, Expr::value(next.lease_expires_at));
    if let Some(lines) = &patch.lines {
        let json = serde_json::to_string(lines).map_err(|e| OrchestratorError::Corrupt(e.to_string()))?;
        update = update.col_expr(saga::Column::Lines, Expr::value(json.clone()));
        next.lines = Some(json);
    }
    if let Some(id) = patch.reservation_id {
        update = update.col_expr(saga::Column::ReservationId, Expr::value(id));
        next.reservation_id = Some(id);
    }
    if let Some(id) = patch.order_id {
        update = update.col_expr(saga::Column::OrderId, Expr::value(id));
        next.order_id = Some(id);
    }
    if let Some((reason, step)) = patch.failure {
        update = update
            .col_expr(saga::Column::FailureReason, Expr::value(reason.clone()))
            .col_expr(saga::Column::FailureStep, Expr::value(step));
        next.failure_reason = Some(reason);
        next.failure_step = Some(step.to_owned());
    }
    let moved = update
        .filter(saga::Column::Id.eq(current.id))
        .filter(saga::Column::Version.eq(current.version))
        .filter(saga::Column::LeaseOwner.eq(owner))
        .exec(&txn)
        .await?;
    if moved.rows_affected == 0 {
        txn.rollback().await?;
        return Err(OrchestratorError::LeaseLost(current.id));
    }
    log(&txn, current.id, current.version, &logged, now).await?;
    outbox::write(&txn, owner, &events(&next), next.traceparent.as_deref(), now).await?;
    txn.commit().await?;
    // The row as written: no read back, since the compare-and-set above
    // proves nobody else changed it.
    Ok(next)
}

/// Extends this replica's lease; false when another replica holds it.
pub async fn renew(db: &DatabaseConnection, id: CheckoutId, owner: &str, lease: std::time::Duration) -> Result<bool, OrchestratorError> {
    let renewed = saga::Entity::update_many()
        .col_expr(saga::Column::LeaseExpiresAt, Expr::value(OffsetDateTime::now_utc() + to_time(lease)))
        .filter(saga::Column::Id.eq(id))
        .filter(saga::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(renewed.rows_affected == 1)
}

/// Gives a saga back so that any replica can take it at once.
pub async fn hand_back(db: &DatabaseConnection, id: CheckoutId, owner: &str) -> Result<(), OrchestratorError> {
    saga::Entity::update_many()
        .col_expr(saga::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(saga::Column::LeaseExpiresAt, Expr::value(Option::<OffsetDateTime>::None))
        .filter(saga::Column::Id.eq(id))
        .filter(saga::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

/// Takes the lease of a saga that is not terminal and whose lease expired
/// (or was handed back); true if this replica now holds it.
pub async fn take_over(db: &DatabaseConnection, id: CheckoutId, owner: &str, lease: std::time::Duration, force: bool) -> Result<bool, OrchestratorError> {
    let now = OffsetDateTime::now_utc();
    let mut update = saga::Entity::update_many()
        .col_expr(saga::Column::LeaseOwner, Expr::value(owner))
        .col_expr(saga::Column::LeaseExpiresAt, Expr::value(now + to_time(lease)))
        .col_expr(saga::Column::Attempts, Expr::col(saga::Column::Attempts).add(1))
        .filter(saga::Column::Id.eq(id))
        .filter(saga::Column::State.is_not_in(SagaState::TERMINAL));
    if !force {
        update = update.filter(
            Condition::any()
                .add(saga::Column::LeaseOwner.is_null())
                .add(saga::Column::LeaseExpiresAt.lt(now)),
        );
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// Sagas that are not terminal and that no live replica holds.
pub async fn orphans(db: &DatabaseConnection, limit: u64) -> Result<Vec<CheckoutId>, OrchestratorError> {
    let now = OffsetDateTime::now_utc();
    let rows = saga::Entity::find()
        .select_only()
        .column(saga::Column::Id)
        .filter(saga::Column::State.is_not_in(SagaState::TERMINAL))
        .filter(
            Condition::any()
                .add(saga::Column::LeaseOwner.is_null())
                .add(saga::Column::LeaseExpiresAt.lt(now)),
        )
        .order_by_asc(saga::Column::UpdatedAt)
        .limit(limit)
        .into_tuple::<CheckoutId>()
        .all(db)
        .await?;
    Ok(rows)
}

/// How many sagas are not terminal and have not moved since `before`, and
/// the last move of the oldest of them.
pub async fn stalled(db: &impl ConnectionTrait, before: OffsetDateTime) -> Result<(u64, Option<OffsetDateTime>), OrchestratorError> {
    let query = saga::Entity::find()
        .filter(saga::Column::State.is_not_in(SagaState::TERMINAL))
        .filter(saga::Column::UpdatedAt.lt(before));
    let count = query.clone().count(db).await?;
    let oldest = if count == 0 { None } else { query.order_by_asc(saga::Column::UpdatedAt).one(db).await?.map(|s| s.updated_at) };
    Ok((count, oldest))
}

pub async fn find(db: &impl ConnectionTrait, id: CheckoutId) -> Result<saga::Model, OrchestratorError> {
    saga::Entity::find_by_id(id).one(db).await?.ok_or(OrchestratorError::NotFound(id))
}

pub async fn transitions(db: &impl ConnectionTrait, id: CheckoutId) -> Result<Vec<saga_log::Model>, OrchestratorError> {
    Ok(saga_log::Entity::find()
        .filter(saga_log::Column::SagaId.eq(id))
        .order_by_asc(saga_log::Column::Seq)
        .all(db)
        .await?)
}

/// The saga as clients see it, with its whole log: one query (a join), as
/// every orchestrated checkout ends with this read.
pub async fn view(db: &impl ConnectionTrait, id: CheckoutId) -> Result<Saga, OrchestratorError> {
    let found = saga::Entity::find_by_id(id)
        .find_with_related(saga_log::Entity)
        .order_by_asc(saga_log::Column::Seq)
        .all(db)
        .await?
        .pop();
    let (row, log) = found.ok_or(OrchestratorError::NotFound(id))?;
    Ok(to_contract(row, log))
}

pub async fn list(db: &impl ConnectionTrait, state: Option<SagaState>, limit: u64) -> Result<Vec<Saga>, OrchestratorError> {
    let mut query = saga::Entity::find().order_by_desc(saga::Column::CreatedAt).order_by_desc(saga::Column::Id).limit(limit);
    if let Some(state) = state {
        query = query.filter(saga::Column::State.eq(state));
    }
    let rows = query.all(db).await?;
    // Every listed saga's log in one query, not one per saga.
    let mut logs: std::collections::HashMap<CheckoutId, Vec<saga_log::Model>> = std::collections::HashMap::new();
    let all = saga_log::Entity::find()
        .filter(saga_log::Column::SagaId.is_in(rows.iter().map(|r| r.id)))
        .order_by_asc(saga_log::Column::Seq)
        .all(db)
        .await?;
    for entry in all {
        logs.entry(entry.saga_id).or_default().push(entry);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let log = logs.remove(&row.id).unwrap_or_default();
            to_contract(row, log)
        })
        .collect())
}

pub fn items_of(row: &saga::Model) -> Result<Cart, OrchestratorError> {
    serde_json::from_str(&row.items).map_err(|e| OrchestratorError::Corrupt(e.to_string()))
}

pub fn lines_of(row: &saga::Model) -> Result<Vec<OrderLine>, OrchestratorError> {
    match &row.lines {
        Some(json) => serde_json::from_str(json).map_err(|e| OrchestratorError::Corrupt(e.to_string())),
        None => Err(OrchestratorError::Corrupt(format!("saga {} has no priced lines", row.id))),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn to_contract(row: saga::Model, log: Vec<saga_log::Model>) -> Saga {
    Saga {
        id: row.id,
        state: row.state,
        client_id: row.client_id,
        order_id: row.order_id,
        failure_reason: row.failure_reason,
        transitions: log
            .into_iter()
            .map(|l| Transition { from: l.from_state, to: l.to_state, reason: l.reason, at: rfc3339(l.at) })
            .collect(),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

fn to_time(d: std::time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::MAX)
}
