//! Inventory's schema, as an ordered list of migrations. Never edit one that
//! has shipped: add the next.

use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261125_000001_create_stock::Migration)]
    }

    fn migration_table_name() -> DynIden {
        "inventory_migrations".into_iden()
    }
}

/// Brings the schema up to date; running it again, or from several
/// replicas at once, changes nothing.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    chorus_runtime::db::migrate::<Migrator>(db).await
}

mod m20261125_000001_create_stock {
    use sea_orm_migration::{prelude::*, schema::*};

    #[derive(DeriveMigrationName)]
    pub struct Migration;

    #[derive(DeriveIden)]
    enum StockLevels {
        Table,
        ProductId,
        Available,
        Reserved,
        Sold,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    enum Reservations {
        Table,
        Id,
        IdempotencyKey,
        CheckoutId,
        Status,
        Failure,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    enum ReservationLines {
        Table,
        ReservationId,
        ProductId,
        Quantity,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(StockLevels::Table)
                        .if_not_exists()
                        .col(uuid(StockLevels::ProductId).primary_key())
                        .col(big_integer(StockLevels::Available))
                        .col(big_integer(StockLevels::Reserved))
                        .col(big_integer(StockLevels::Sold))
                        .col(timestamp_with_time_zone(StockLevels::UpdatedAt))
                        .check(Expr::col(StockLevels::Available).gte(0))
                        .check(Expr::col(StockLevels::Reserved).gte(0))
                        .check(Expr::col(StockLevels::Sold).gte(0))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Reservations::Table)
                        .if_not_exists()
                        .col(uuid(Reservations::Id).primary_key())
                        .col(string_uniq(Reservations::IdempotencyKey))
                        .col(uuid(Reservations::CheckoutId))
                        .col(string(Reservations::Status))
                        .col(text_null(Reservations::Failure))
                        .col(timestamp_with_time_zone(Reservations::CreatedAt))
                        .col(timestamp_with_time_zone(Reservations::UpdatedAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("reservations_by_checkout")
                        .table(Reservations::Table)
                        .col(Reservations::CheckoutId)
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(ReservationLines::Table)
                        .if_not_exists()
                        .col(uuid(ReservationLines::ReservationId))
                        .col(uuid(ReservationLines::ProductId))
                        .col(big_integer(ReservationLines::Quantity))
                        .primary_key(
                            Index::create()
                                .col(ReservationLines::ReservationId)
                                .col(ReservationLines::ProductId),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(ReservationLines::Table, ReservationLines::ReservationId)
                                .to(Reservations::Table, Reservations::Id),
                        )
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(ReservationLines::Table).to_owned()).await?;
            manager.drop_table(Table::drop().table(Reservations::Table).to_owned()).await?;
            manager.drop_table(Table::drop().table(StockLevels::Table).to_owned()).await
        }
    }
}
