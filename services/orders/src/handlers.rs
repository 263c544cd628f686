//! One function per orders operation; each takes the connection.

use chorus_domain::{CheckoutId, ClientId};
use chorus_contracts::{
    Cart, CartLine,
    orders::{CreateOrder, Order, OrderLine, OrderStatus},
};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, prelude::*, sea_query::OnConflict,
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    OrdersError,
    entity::{order, order_item},
};

/// Most orders one listing returns.
pub const MAX_LIST: u32 = 1000;

/// The status of a key claimed by a cancellation before any order existed;
/// such rows are not orders and are never shown.
const VOID: &str = "VOID";

/// Creates an order once per idempotency key; a repeat returns the first.
pub async fn create(db: &DatabaseConnection, req: CreateOrder) -> Result<Order, OrdersError> {
    // An order's lines keep the rules of the cart they were priced from.
    Cart::parse(req.items.iter().map(|l| CartLine { product_id: l.product_id, quantity: l.quantity }).collect())
        .map_err(OrdersError::BadInput)?;
    if req.items.iter().any(|l| l.unit_price_cents < 0) {
        return Err(OrdersError::BadInput("a unit price cannot be negative".into()));
    }
    if req.idempotency_key.is_empty() || req.idempotency_key.len() > 200 {
        return Err(OrdersError::BadInput("an idempotency key has 1 to 200 characters".into()));
    }
    let total_cents = req
        .items
        .iter()
        .try_fold(0i64, |sum, l| sum.checked_add(l.unit_price_cents.checked_mul(i64::from(l.quantity))?))
        .ok_or_else(|| OrdersError::BadInput("the order total overflows".into()))?;
    // The order answered here is the order every later read returns.
    let now = chorus_runtime::clock::now_micros();
    let id = Uuid::now_v7();
    let row = order::Model {
        id,
        idempotency_key: req.idempotency_key.clone(),
        client_id: req.client_id,
        checkout_id: req.checkout_id,
        status: OrderStatus::Created.as_str().to_owned(),
        total_cents,
        created_at: now,
        updated_at: now,
    };
    let txn = db.begin().await?;
    // The key is claimed by the first statement, a write, so concurrent
    // repeats wait on the unique index and then find this order.
    let inserted = order::Entity::insert(row.clone().into_active_model())
        .on_conflict(OnConflict::column(order::Column::IdempotencyKey).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await;
    let inserted = match inserted {
        Ok(n) => n > 0,
        Err(DbErr::RecordNotInserted) => false,
        Err(e) => return Err(e.into()),
    };
    if !inserted {
        txn.rollback().await?;
        let first = order::Entity::find()
            .filter(order::Column::IdempotencyKey.eq(&req.idempotency_key))
            .one(db)
            .await?
            .ok_or_else(|| OrdersError::BadInput("idempotency key vanished".into()))?;
        if first.status == VOID {
            return Err(OrdersError::Voided(first.checkout_id));
        }
        return load(db, first).await;
    }
    // In the order `load` reads them back.
    let mut items: Vec<order_item::Model> = req
        .items
        .iter()
        .map(|l| order_item::Model { order_id: id, product_id: l.product_id, quantity: i64::from(l.quantity), unit_price_cents: l.unit_price_cents })
        .collect();
    items.sort_by_key(|i| i.product_id);
    order_item::Entity::insert_many(items.iter().cloned().map(IntoActiveModel::into_active_model))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    // What was written is answered as written: no read back.
    Ok(to_order(row, items))
}

pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Order, OrdersError> {
    let row = order::Entity::find_by_id(id)
        .filter(order::Column::Status.ne(VOID))
        .one(db)
        .await?
        .ok_or(OrdersError::NotFound(id))?;
    load(db, row).await
}

/// A client's orders, newest first.
/// The orders among `ids` that exist, with their lines (two queries).
pub async fn get_many(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<Order>, OrdersError> {
    if ids.len() > MAX_LIST as usize {
        return Err(OrdersError::BadInput(format!("at most {MAX_LIST} orders at once")));
    }
    let rows = order::Entity::find()
        .filter(order::Column::Id.is_in(ids.iter().copied()))
        .filter(order::Column::Status.ne(VOID))
        .all(db)
        .await?;
    with_items(db, rows).await
}

/// The orders of `rows` with their lines, read in one query for all of them.
async fn with_items(db: &impl ConnectionTrait, rows: Vec<order::Model>) -> Result<Vec<Order>, OrdersError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut items: std::collections::HashMap<Uuid, Vec<order_item::Model>> = std::collections::HashMap::new();
    let all = order_item::Entity::find()
        .filter(order_item::Column::OrderId.is_in(rows.iter().map(|r| r.id)))
        .order_by_asc(order_item::Column::ProductId)
        .all(db)
        .await?;
    for item in all {
        items.entry(item.order_id).or_default().push(item);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = items.remove(&row.id).unwrap_or_default();
            to_order(row, mine)
        })
        .collect())
}

pub async fn list_by_client(db: &impl ConnectionTrait, client_id: ClientId, limit: Option<u32>) -> Result<Vec<Order>, OrdersError> {
    let limit = limit.unwrap_or(100).min(MAX_LIST);
    let rows = order::Entity::find()
        .filter(order::Column::ClientId.eq(client_id))
        .filter(order::Column::Status.ne(VOID))
        .order_by_desc(order::Column::CreatedAt)
        .order_by_desc(order::Column::Id)
        .limit(u64::from(limit))
        .all(db)
        .await?;
    with_items(db, rows).await
}

/// Cancels an order; cancelling it again changes nothing.
pub async fn cancel(db: &impl ConnectionTrait, id: Uuid) -> Result<Order, OrdersError> {
    let updated = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(OrderStatus::Cancelled.as_str()))
        .col_expr(order::Column::UpdatedAt, Expr::value(OffsetDateTime::now_utc()))
        .filter(order::Column::Id.eq(id))
        .filter(order::Column::Status.ne(VOID))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(OrdersError::NotFound(id));
    }
    get(db, id).await
}

/// The order created with `key`, unless the key was voided first.
pub async fn find_by_key(db: &impl ConnectionTrait, key: &str) -> Result<Option<Order>, OrdersError> {
    let row = order::Entity::find()
        .filter(order::Column::IdempotencyKey.eq(key))
        .filter(order::Column::Status.ne(VOID))
        .one(db)
        .await?;
    match row {
        Some(row) => load(db, row).await.map(Some),
        None => Ok(None),
    }
}

/// Undoes whatever a create with `key` did or will do (see
/// [`CancelOrderByKey`](chorus_contracts::orders::CancelOrderByKey)).
pub async fn cancel_by_key(
    db: &impl ConnectionTrait,
    key: &str,
    client_id: ClientId,
    checkout_id: CheckoutId,
) -> Result<Option<Order>, OrdersError> {
    let now = OffsetDateTime::now_utc();
    let claimed = order::Entity::insert(order::ActiveModel {
        id: Set(Uuid::now_v7()),
        idempotency_key: Set(key.to_owned()),
        client_id: Set(client_id),
        checkout_id: Set(checkout_id),
        status: Set(VOID.to_owned()),
        total_cents: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(OnConflict::column(order::Column::IdempotencyKey).do_nothing().to_owned())
    .exec_without_returning(db)
    .await;
    match claimed {
        Ok(n) if n > 0 => return Ok(None),
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e.into()),
    }
    let row = order::Entity::find()
        .filter(order::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?
        .ok_or_else(|| OrdersError::BadInput("idempotency key vanished".into()))?;
    if row.status == VOID {
        return Ok(None);
    }
    cancel(db, row.id).await.map(Some)
}

async fn load(db: &impl ConnectionTrait, row: order::Model) -> Result<Order, OrdersError> {
    let items = order_item::Entity::find()
        .filter(order_item::Column::OrderId.eq(row.id))
        .order_by_asc(order_item::Column::ProductId)
        .all(db)
        .await?;
    Ok(to_order(row, items))
}

fn to_order(row: order::Model, items: Vec<order_item::Model>) -> Order {
    let items = items
        .into_iter()
        .map(|i| OrderLine {
            product_id: i.product_id,
            quantity: u32::try_from(i.quantity).unwrap_or(u32::MAX),
            unit_price_cents: i.unit_price_cents,
        })
        .collect();
    let status = match row.status.as_str() {
        "CANCELLED" => OrderStatus::Cancelled,
        _ => OrderStatus::Created,
    };
    Order {
        id: row.id,
        client_id: row.client_id,
        checkout_id: row.checkout_id,
        status,
        total_cents: row.total_cents,
        items,
        created_at: row.created_at.format(&Rfc3339).unwrap_or_default(),
    }
}
