//! One function per catalogue operation; each takes the connection, so a
//! caller may pass a transaction.

use chorus_domain::ProductId;
use chorus_contracts::catalogue::{CreateProduct, Product};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, prelude::*};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{CatalogueError, entity::product};

/// The most ids one `get` may ask for.
pub const MAX_IDS: usize = 1000;
/// The longest product name.
pub const MAX_NAME: usize = 200;

pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Product>, CatalogueError> {
    let rows = product::Entity::find()
        .order_by_asc(product::Column::CreatedAt)
        .order_by_asc(product::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(to_contract).collect())
}

pub async fn get_many(db: &impl ConnectionTrait, ids: &[ProductId]) -> Result<Vec<Product>, CatalogueError> {
    if ids.len() > MAX_IDS {
        return Err(CatalogueError::BadInput(format!("at most {MAX_IDS} ids per request")));
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = product::Entity::find()
        .filter(product::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(to_contract).collect())
}

/// Adds a product; the same request again returns it unchanged.
pub async fn create(db: &impl ConnectionTrait, req: CreateProduct) -> Result<Product, CatalogueError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(CatalogueError::BadInput(format!("a product name has 1 to {MAX_NAME} characters")));
    }
    if req.price_cents < 0 {
        return Err(CatalogueError::BadInput("a price cannot be negative".into()));
    }
    let row = product::ActiveModel {
        id: Set(req.id),
        name: Set(name.to_owned()),
        price_cents: Set(req.price_cents),
        active: Set(true),
        created_at: Set(OffsetDateTime::now_utc()),
    };
    product::Entity::insert(row)
        .on_conflict_do_nothing_on([product::Column::Id])
        .exec_without_returning(db)
        .await?;
    let stored = product::Entity::find_by_id(req.id)
        .one(db)
        .await?
        .ok_or(CatalogueError::NotFound(req.id))?;
    if stored.name != name || stored.price_cents != req.price_cents {
        return Err(CatalogueError::Conflict(req.id));
    }
    Ok(to_contract(stored))
}

pub async fn set_active(db: &impl ConnectionTrait, id: ProductId, active: bool) -> Result<Product, CatalogueError> {
    let updated = product::Entity::update_many()
        .col_expr(product::Column::Active, Expr::value(active))
        .filter(product::Column::Id.eq(id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(CatalogueError::NotFound(id));
    }
    let stored = product::Entity::find_by_id(id).one(db).await?.ok_or(CatalogueError::NotFound(id))?;
    Ok(to_contract(stored))
}

fn to_contract(row: product::Model) -> Product {
    Product {
        id: row.id,
        name: row.name,
        price_cents: row.price_cents,
        active: row.active,
        created_at: row.created_at.format(&Rfc3339).unwrap_or_default(),
    }
}
