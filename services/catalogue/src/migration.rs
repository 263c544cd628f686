//! The catalogue's schema, as an ordered list of migrations. Never edit one
//! that has shipped: add the next.

use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261125_000001_create_products::Migration)]
    }

    /// Its own name, so that a database shared in a test never confuses
    /// one service's migrations with another's.
    fn migration_table_name() -> DynIden {
        "catalogue_migrations".into_iden()
    }
}

/// Brings the schema up to date; running it again, or from several
/// replicas at once, changes nothing.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    chorus_runtime::db::migrate::<Migrator>(db).await
}

mod m20261125_000001_create_products {
    use sea_orm_migration::{prelude::*, schema::*};

    #[derive(DeriveMigrationName)]
    pub struct Migration;

    #[derive(DeriveIden)]
    enum Products {
        Table,
        Id,
        Name,
        PriceCents,
        Active,
        CreatedAt,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Products::Table)
                        .if_not_exists()
                        .col(uuid(Products::Id).primary_key())
                        .col(string(Products::Name))
                        .col(big_integer(Products::PriceCents))
                        .col(boolean(Products::Active))
                        .col(timestamp_with_time_zone(Products::CreatedAt))
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(Products::Table).to_owned()).await
        }
    }
}
