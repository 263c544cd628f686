//! One function per inventory operation; each takes the connection.
//!
//! Every write transaction starts with a write, so that on SQLite it takes
//! the write lock at once instead of upgrading a read lock (which fails
//! with `SQLITE_BUSY` under concurrency instead of waiting).

use std::collections::HashMap;

use chorus_contracts::{
    Cart, CartLine, CheckoutId, ProductId,
    inventory::{Availability, Reservation, ReservationStatus, Reserve, Shortage, StockLevel},
};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Order, QueryFilter, QueryOrder,
    TransactionTrait, prelude::*,
    sea_query::{ExprTrait, LockType, OnConflict, Query, ReturningClause},
};
use time::OffsetDateTime;

use crate::{
    InventoryError,
    entity::{reservation, reservation_line, stock_level},
};

/// The largest single restock.
pub const MAX_RESTOCK: i64 = 1_000_000_000;

const HELD: &str = "HELD";
const RELEASED: &str = "RELEASED";
const COMMITTED: &str = "COMMITTED";
const REJECTED: &str = "REJECTED";

/// Whether every line could be reserved now; holds nothing.
pub async fn check(db: &impl ConnectionTrait, cart: &Cart) -> Result<Availability, InventoryError> {
    let items = cart.lines();
    let levels = available_by_product(db, items).await?;
    let unknown: Vec<ProductId> = items.iter().map(|l| l.product_id).filter(|id| !levels.contains_key(id)).collect();
    let shortages: Vec<Shortage> = items
        .iter()
        .filter_map(|line| {
            let available = levels.get(&line.product_id).copied().unwrap_or(0);
            (available < i64::from(line.quantity)).then_some(Shortage {
                product_id: line.product_id,
                requested: line.quantity,
                available,
            })
        })
        .collect();
    Ok(Availability { available: shortages.is_empty(), shortages, unknown })
}

/// Holds stock for every line, all or nothing, once per idempotency key.
pub async fn reserve(db: &DatabaseConnection, req: Reserve) -> Result<Reservation, InventoryError> {
    if req.idempotency_key.is_empty() || req.idempotency_key.len() > 200 {
        return Err(InventoryError::BadInput("an idempotency key has 1 to 200 characters".into()));
    }
    let now = OffsetDateTime::now_utc();
    let id = Uuid::now_v7();
    let txn = db.begin().await?;
    // Claim the key first: a concurrent call with the same key waits here
    // (unique index) and then finds this reservation instead of making one.
    let claimed = claim_key(&txn, id, (&req.idempotency_key, req.checkout_id), HELD, None, now).await?;
    if !claimed {
        txn.rollback().await?;
        return existing(db, &req.idempotency_key).await;
    }
    // Lock rows in one order (by product id) so that two multi-line
    // reservations on Postgres cannot deadlock.
    let mut lines = req.items.lines().to_vec();
    lines.sort_by_key(|l| l.product_id);
    for line in &lines {
        let quantity = i64::from(line.quantity);
        let taken = stock_level::Entity::update_many()
            .col_expr(stock_level::Column::Available, Expr::col(stock_level::Column::Available).sub(quantity))
            .col_expr(stock_level::Column::Reserved, Expr::col(stock_level::Column::Reserved).add(quantity))
            .col_expr(stock_level::Column::UpdatedAt, Expr::value(now))
            .filter(stock_level::Column::ProductId.eq(line.product_id))
            .filter(stock_level::Column::Available.gte(quantity))
            .exec(&txn)
            .await?;
        if taken.rows_affected == 0 {
            let available = stock_level::Entity::find_by_id(line.product_id)
                .one(&txn)
                .await?
                .map_or(0, |l| l.available);
            txn.rollback().await?;
            let reason = format!(
                "product {} has {available} available, {} requested",
                line.product_id, line.quantity
            );
            return reject(db, &req, reason).await;
        }
    }
    reservation_line::Entity::insert_many(lines.iter().map(|line| reservation_line::ActiveModel {
        reservation_id: Set(id),
        product_id: Set(line.product_id),
        quantity: Set(i64::from(line.quantity)),
    }))
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(Reservation { id, checkout_id: req.checkout_id, status: ReservationStatus::Held, items: req.items.into() })
}

/// Inserts the reservation row unless the key is taken; true if inserted.
async fn claim_key(
    db: &impl ConnectionTrait,
    id: Uuid,
    (key, checkout_id): (&str, CheckoutId),
    status: &str,
    failure: Option<String>,
    now: OffsetDateTime,
) -> Result<bool, InventoryError> {
    let row = reservation::ActiveModel {
        id: Set(id),
        idempotency_key: Set(key.to_owned()),
        checkout_id: Set(checkout_id),
        status: Set(status.to_owned()),
        failure: Set(failure),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let inserted = reservation::Entity::insert(row)
        .on_conflict(OnConflict::column(reservation::Column::IdempotencyKey).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(n) => Ok(n > 0),
        Err(DbErr::RecordNotInserted) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Records a refusal under the key, so a retry gets the same answer.
async fn reject(db: &DatabaseConnection, req: &Reserve, reason: String) -> Result<Reservation, InventoryError> {
    let claimed = claim_key(db, Uuid::now_v7(), (&req.idempotency_key, req.checkout_id), REJECTED, Some(reason.clone()), OffsetDateTime::now_utc()).await?;
    if claimed {
        Err(InventoryError::InsufficientStock(reason))
    } else {
        existing(db, &req.idempotency_key).await
    }
}

/// The answer first given to an idempotency key.
async fn existing(db: &impl ConnectionTrait, key: &str) -> Result<Reservation, InventoryError> {
    let row = reservation::Entity::find()
        .filter(reservation::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?
        .ok_or_else(|| InventoryError::BadInput(format!("idempotency key {key} vanished")))?;
    if row.status == REJECTED {
        return Err(InventoryError::InsufficientStock(row.failure.unwrap_or_default()));
    }
    load(db, row).await
}

async fn load(db: &impl ConnectionTrait, row: reservation::Model) -> Result<Reservation, InventoryError> {
    let items = reservation_line::Entity::find()
        .filter(reservation_line::Column::ReservationId.eq(row.id))
        .order_by_asc(reservation_line::Column::ProductId)
        .all(db)
        .await?
        .into_iter()
        .map(|l| CartLine { product_id: l.product_id, quantity: u32::try_from(l.quantity).unwrap_or(u32::MAX) })
        .collect();
    Ok(Reservation { id: row.id, checkout_id: row.checkout_id, status: status(&row.status)?, items })
}

fn status(raw: &str) -> Result<ReservationStatus, InventoryError> {
    match raw {
        HELD => Ok(ReservationStatus::Held),
        RELEASED => Ok(ReservationStatus::Released),
        COMMITTED => Ok(ReservationStatus::Committed),
        other => Err(InventoryError::Db(DbErr::Custom(format!("unknown reservation status {other}")))),
    }
}

/// Undoes whatever a reserve with `key` did or will do (see
/// [`CancelReservation`](chorus_contracts::inventory::CancelReservation)).
pub async fn cancel(
    db: &DatabaseConnection,
    key: &str,
    checkout_id: CheckoutId,
    restock_sold: bool,
) -> Result<Option<Reservation>, InventoryError> {
    // A tombstone: the key claimed with nothing reserved.
    let reason = Some("cancelled before anything was reserved".to_owned());
    if claim_key(db, Uuid::now_v7(), (key, checkout_id), RELEASED, reason, OffsetDateTime::now_utc()).await? {
        return Ok(None);
    }
    let row = reservation::Entity::find()
        .filter(reservation::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?
        .ok_or_else(|| InventoryError::BadInput(format!("idempotency key {key} vanished")))?;
    match row.status.as_str() {
        REJECTED => Ok(None),
        HELD => release(db, row.id).await.map(Some),
        // Sold to an order that is being undone: the units go back on sale.
        COMMITTED if restock_sold => settle(db, row.id, COMMITTED, RELEASED, "cancel").await.map(Some),
        COMMITTED => Err(InventoryError::Conflict { id: row.id, status: row.status, action: "cancel" }),
        _ => {
            let reservation = load(db, row).await?;
            Ok((!reservation.items.is_empty()).then_some(reservation))
        }
    }
}

/// Gives held stock back; idempotent.
pub async fn release(db: &DatabaseConnection, id: Uuid) -> Result<Reservation, InventoryError> {
    settle(db, id, HELD, RELEASED, "release").await
}

/// Counts held stock as sold; idempotent.
pub async fn commit(db: &DatabaseConnection, id: Uuid) -> Result<Reservation, InventoryError> {
    settle(db, id, HELD, COMMITTED, "commit").await
}

/// Moves a reservation from status `from` to `target` and its stock between
/// the matching columns (`HELD` counts in `reserved`, `COMMITTED` in `sold`,
/// `RELEASED` in `available`), in one transaction.
async fn settle(
    db: &DatabaseConnection,
    id: Uuid,
    from: &'static str,
    target: &'static str,
    action: &'static str,
) -> Result<Reservation, InventoryError> {
    let column = |status: &str| match status {
        HELD => stock_level::Column::Reserved,
        COMMITTED => stock_level::Column::Sold,
        _ => stock_level::Column::Available,
    };
    let now = OffsetDateTime::now_utc();
    let txn = db.begin().await?;
    // The move and the row it moved in one statement; the row is read
    // apart only when nothing moved (already there, elsewhere, or unknown).
    let moved = reservation::Entity::update_many()
        .col_expr(reservation::Column::Status, Expr::value(target))
        .col_expr(reservation::Column::UpdatedAt, Expr::value(now))
        .filter(reservation::Column::Id.eq(id))
        .filter(reservation::Column::Status.eq(from))
        .exec_with_returning(&txn)
        .await?
        .pop();
    let Some(row) = moved else {
        let row = reservation::Entity::find_by_id(id).one(&txn).await?;
        txn.rollback().await?;
        return match row.filter(|r| r.status != REJECTED) {
            None => Err(InventoryError::NotFound(id)),
            Some(row) if row.status == target => load(db, row).await,
            Some(row) => Err(InventoryError::Conflict { id, status: row.status, action }),
        };
    };
    let items = move_stock(&txn, id, (column(from), column(target)), now).await?;
    txn.commit().await?;
    Ok(Reservation { id: row.id, checkout_id: row.checkout_id, status: status(&row.status)?, items })
}

/// Moves every line of reservation `id` from column `out_of` to `to` in one
/// statement, whatever the number of lines (on Postgres, after locking the
/// rows in order), and answers with the lines moved, by product id.
async fn move_stock(
    db: &impl ConnectionTrait,
    id: Uuid,
    (out_of, to): (stock_level::Column, stock_level::Column),
    now: OffsetDateTime,
) -> Result<Vec<CartLine>, InventoryError> {
    use reservation_line::{Column as Line, Entity as Lines};
    use stock_level::{Column as Stock, Entity as Levels};
    // This reservation's quantity of the stock row being updated.
    let quantity = || {
        Expr::from(
            Query::select()
                .column(Line::Quantity)
                .from(Lines)
                .and_where(Expr::col((Lines, Line::ReservationId)).eq(id))
                .and_where(Expr::col((Lines, Line::ProductId)).equals((Levels, Stock::ProductId)))
                .to_owned(),
        )
    };
    let products = Query::select().column(Line::ProductId).from(Lines).and_where(Expr::col(Line::ReservationId).eq(id)).to_owned();
    if db.get_database_backend() == DbBackend::Postgres {
        // One UPDATE locks its rows in whatever order its plan reads them;
        // take them in product order first, as `reserve` does, so that the
        // two cannot deadlock. (SQLite locks the whole database instead.)
        let lock = Query::select()
            .column(Stock::ProductId)
            .from(Levels)
            .and_where(Expr::col(Stock::ProductId).in_subquery(products.clone()))
            .order_by(Stock::ProductId, Order::Asc)
            .lock(LockType::Update)
            .to_owned();
        db.query_all(&lock).await?;
    }
    let update = Query::update()
        .table(Levels)
        .value(out_of, Expr::col(out_of).sub(quantity()))
        .value(to, Expr::col(to).add(quantity()))
        .value(Stock::UpdatedAt, now)
        .and_where(Expr::col(Stock::ProductId).in_subquery(products))
        .returning(ReturningClause::Exprs(vec![Expr::col(Stock::ProductId), quantity()]))
        .to_owned();
    let mut lines = Vec::new();
    for row in db.query_all(&update).await? {
        let (product_id, quantity): (ProductId, i64) = row.try_get_many_by_index()?;
        lines.push(CartLine { product_id, quantity: u32::try_from(quantity).unwrap_or(u32::MAX) });
    }
    lines.sort_by_key(|l| l.product_id);
    Ok(lines)
}

/// Adds stock, creating the product's level on first use.
pub async fn restock(db: &impl ConnectionTrait, product_id: ProductId, quantity: i64) -> Result<StockLevel, InventoryError> {
    if !(0..=MAX_RESTOCK).contains(&quantity) {
        return Err(InventoryError::BadInput(format!("a restock adds 0 to {MAX_RESTOCK} units")));
    }
    let now = OffsetDateTime::now_utc();
    let row = stock_level::ActiveModel {
        product_id: Set(product_id),
        available: Set(quantity),
        reserved: Set(0),
        sold: Set(0),
        updated_at: Set(now),
    };
    stock_level::Entity::insert(row)
        .on_conflict(
            OnConflict::column(stock_level::Column::ProductId)
                .value(
                    stock_level::Column::Available,
                    Expr::col((stock_level::Entity, stock_level::Column::Available)).add(quantity),
                )
                .value(stock_level::Column::UpdatedAt, Expr::value(now))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    let level = stock_level::Entity::find_by_id(product_id)
        .one(db)
        .await?
        .ok_or_else(|| InventoryError::Db(DbErr::RecordNotFound(product_id.to_string())))?;
    Ok(to_contract(level))
}

/// Stock levels of these products, or of all.
pub async fn levels(db: &impl ConnectionTrait, ids: Option<&[ProductId]>) -> Result<Vec<StockLevel>, InventoryError> {
    let mut query = stock_level::Entity::find().order_by_asc(stock_level::Column::ProductId);
    if let Some(ids) = ids {
        if ids.len() > 1000 {
            return Err(InventoryError::BadInput("at most 1000 products per request".into()));
        }
        query = query.filter(stock_level::Column::ProductId.is_in(ids.iter().copied()));
    }
    Ok(query.all(db).await?.into_iter().map(to_contract).collect())
}

async fn available_by_product(db: &impl ConnectionTrait, items: &[CartLine]) -> Result<HashMap<ProductId, i64>, InventoryError> {
    let rows = stock_level::Entity::find()
        .filter(stock_level::Column::ProductId.is_in(items.iter().map(|l| l.product_id)))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.product_id, r.available)).collect())
}

fn to_contract(row: stock_level::Model) -> StockLevel {
    StockLevel { product_id: row.product_id, available: row.available, reserved: row.reserved, sold: row.sold }
}
