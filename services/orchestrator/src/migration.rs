//! The orchestrator's schema, as an ordered list of migrations. Never edit
//! one that has shipped: add the next.

use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261125_000001_create_sagas::Migration), Box::new(m20261203_000002_create_outbox::Migration)]
    }

    fn migration_table_name() -> DynIden {
        "orchestrator_migrations".into_iden()
    }
}

/// Brings the schema up to date; running it again, or from several
/// replicas at once, changes nothing.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    chorus_runtime::db::migrate::<Migrator>(db).await
}

mod m20261125_000001_create_sagas {
    use sea_orm_migration::{prelude::*, schema::*};

    #[derive(DeriveMigrationName)]
    pub struct Migration;

    #[derive(DeriveIden)]
    enum Sagas {
        Table,
        Id,
        ClientId,
        IdempotencyKey,
        Items,
        Lines,
        State,
        Version,
        ReservationId,
        OrderId,
        FailureReason,
        FailureStep,
        LeaseOwner,
        LeaseExpiresAt,
        Attempts,
        Traceparent,
        CreatedAt,
        UpdatedAt,
    }

    #[derive(DeriveIden)]
    enum SagaLog {
        Table,
        SagaId,
        Seq,
        FromState,
        ToState,
        Reason,
        At,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Sagas::Table)
                        .if_not_exists()
                        .col(uuid(Sagas::Id).primary_key())
                        .col(uuid(Sagas::ClientId))
                        .col(string_null(Sagas::IdempotencyKey))
                        .col(text(Sagas::Items))
                        .col(text_null(Sagas::Lines))
                        .col(string(Sagas::State))
                        .col(big_integer(Sagas::Version))
                        .col(uuid_null(Sagas::ReservationId))
                        .col(uuid_null(Sagas::OrderId))
                        .col(text_null(Sagas::FailureReason))
                        .col(string_null(Sagas::FailureStep))
                        .col(string_null(Sagas::LeaseOwner))
                        .col(timestamp_with_time_zone_null(Sagas::LeaseExpiresAt))
                        .col(big_integer(Sagas::Attempts))
                        .col(string_null(Sagas::Traceparent))
                        .col(timestamp_with_time_zone(Sagas::CreatedAt))
                        .col(timestamp_with_time_zone(Sagas::UpdatedAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("sagas_by_client_key")
                        .table(Sagas::Table)
                        .col(Sagas::ClientId)
                        .col(Sagas::IdempotencyKey)
                        .unique()
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("sagas_by_state")
                        .table(Sagas::Table)
                        .col(Sagas::State)
                        .col(Sagas::LeaseExpiresAt)
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(SagaLog::Table)
                        .if_not_exists()
                        .col(uuid(SagaLog::SagaId))
                        .col(big_integer(SagaLog::Seq))
                        .col(string_null(SagaLog::FromState))
                        .col(string(SagaLog::ToState))
                        .col(text_null(SagaLog::Reason))
                        .col(timestamp_with_time_zone(SagaLog::At))
                        .primary_key(Index::create().col(SagaLog::SagaId).col(SagaLog::Seq))
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(SagaLog::Table).to_owned()).await?;
            manager.drop_table(Table::drop().table(Sagas::Table).to_owned()).await
        }
    }
}

mod m20261203_000002_create_outbox {
    use sea_orm_migration::{prelude::*, schema::*};

    pub struct Migration;

    // Named by hand: `DeriveMigrationName` names a migration after its
    // file, and the first one (shipped as "migration") lives in this file too.
    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261203_000002_create_outbox"
        }
    }

    #[derive(DeriveIden)]
    enum Outbox {
        Table,
        Seq,
        EventId,
        CheckoutId,
        Body,
        Traceparent,
        Owner,
        CreatedAt,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Outbox::Table)
                        .if_not_exists()
                        .col(big_pk_auto(Outbox::Seq))
                        .col(uuid(Outbox::EventId))
                        .col(uuid(Outbox::CheckoutId))
                        .col(text(Outbox::Body))
                        .col(string_null(Outbox::Traceparent))
                        .col(string(Outbox::Owner))
                        .col(timestamp_with_time_zone(Outbox::CreatedAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create().if_not_exists().name("outbox_by_checkout").table(Outbox::Table).col(Outbox::CheckoutId).to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(Outbox::Table).to_owned()).await
        }
    }
}
