//! The orders schema, as an ordered list of migrations. Never edit one that
//! has shipped: add the next.

use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261125_000001_create_orders::Migration)]
    }

    fn migration_table_name() -> DynIden {
        "orders_migrations".into_iden()
    }
}

/// Brings the schema up to date; running it again, or from several
/// replicas at once, changes nothing.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    chorus_runtime::db::migrate::<Migrator>(db).await
}

mod m20261125_000001_create_orders {
    use sea_orm_migration::{prelude::*, schema::*};

    #[derive(DeriveMigrationName)]
    pub struct Migration;

    #[derive(DeriveIden)]
    enum Orders {
        Table,
        Id,
        IdempotencyKey,
        ClientId,
        CheckoutId,
        Status,
        TotalCents,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    enum OrderItems {
        Table,
        OrderId,
        ProductId,
        Quantity,
        UnitPriceCents,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Orders::Table)
                        .if_not_exists()
                        .col(uuid(Orders::Id).primary_key())
                        .col(string_uniq(Orders::IdempotencyKey))
                        .col(uuid(Orders::ClientId))
                        .col(uuid(Orders::CheckoutId))
                        .col(string(Orders::Status))
                        .col(big_integer(Orders::TotalCents))
                        .col(timestamp_with_time_zone(Orders::CreatedAt))
                        .col(timestamp_with_time_zone(Orders::UpdatedAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("orders_by_client")
                        .table(Orders::Table)
                        .col(Orders::ClientId)
                        .col(Orders::CreatedAt)
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(OrderItems::Table)
                        .if_not_exists()
                        .col(uuid(OrderItems::OrderId))
                        .col(uuid(OrderItems::ProductId))
                        .col(big_integer(OrderItems::Quantity))
                        .col(big_integer(OrderItems::UnitPriceCents))
                        .primary_key(Index::create().col(OrderItems::OrderId).col(OrderItems::ProductId))
                        .foreign_key(
                            ForeignKey::create()
                                .from(OrderItems::Table, OrderItems::OrderId)
                                .to(Orders::Table, Orders::Id),
                        )
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(OrderItems::Table).to_owned()).await?;
            manager.drop_table(Table::drop().table(Orders::Table).to_owned()).await
        }
    }
}
