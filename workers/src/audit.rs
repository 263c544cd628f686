//! audit (`choreo-audit`): appends every event of both patterns to the
//! audit trail, its own append-only table (`AUDIT_DATABASE_URL`, SQLite by
//! default), unique on the event id so a redelivery adds nothing.

use chorus_domain::{CheckoutId};
use chorus_event_store::{EventType, RecordedEvent, event::micros_rfc3339};
use futures::future::BoxFuture;
use sea_orm::{
    DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    sea_query::OnConflict, ColumnTrait,
};
use time::OffsetDateTime;

use crate::{
    Role, Worker, WorkerError, WorkerName, Workers,
    worker::{Delivery, Handled},
};

pub mod entry {
    use chorus_domain::{CheckoutId, EventType, Pattern};
    use sea_orm::entity::prelude::*;

    /// One event as it was recorded; never updated, never deleted.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: Uuid,
        pub sequence: i64,
        pub checkout_id: CheckoutId,
        pub event_type: EventType,
        pub pattern: Pattern,
        /// RFC 3339 with microseconds, as on the wire.
        pub emitted_at: String,
        /// The whole envelope, as JSON.
        pub body: String,
        pub traceparent: Option<String>,
        pub recorded_at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod migration {
    use sea_orm_migration::prelude::*;

    pub struct Migrator;

    #[async_trait::async_trait]
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(m20261125_000001_create_audit_events::Migration)]
        }

        fn migration_table_name() -> DynIden {
            "audit_migrations".into_iden()
        }
    }

    mod m20261125_000001_create_audit_events {
        use sea_orm_migration::{prelude::*, schema::*};

        #[derive(DeriveMigrationName)]
        pub struct Migration;

        #[derive(DeriveIden)]
        enum AuditEvents {
            Table,
            EventId,
            Sequence,
            CheckoutId,
            EventType,
            Pattern,
            EmittedAt,
            Body,
            Traceparent,
            RecordedAt,
        }

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .create_table(
                        Table::create()
                            .table(AuditEvents::Table)
                            .if_not_exists()
                            .col(uuid(AuditEvents::EventId).primary_key())
                            .col(big_integer(AuditEvents::Sequence))
                            .col(uuid(AuditEvents::CheckoutId))
                            .col(string(AuditEvents::EventType))
                            .col(string(AuditEvents::Pattern))
                            .col(string(AuditEvents::EmittedAt))
                            .col(text(AuditEvents::Body))
                            .col(string_null(AuditEvents::Traceparent))
                            .col(timestamp_with_time_zone(AuditEvents::RecordedAt))
                            .to_owned(),
                    )
                    .await?;
                manager
                    .create_index(
                        Index::create()
                            .if_not_exists()
                            .name("audit_events_by_checkout")
                            .table(AuditEvents::Table)
                            .col(AuditEvents::CheckoutId)
                            .col(AuditEvents::Sequence)
                            .to_owned(),
                    )
                    .await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager.drop_table(Table::drop().table(AuditEvents::Table).to_owned()).await
            }
        }
    }
}

/// Brings the audit schema up to date (idempotent, safe from several replicas).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    chorus_runtime::db::migrate::<migration::Migrator>(db).await
}

/// Records a pulled batch in one statement.
pub async fn handle_batch(ctx: &Workers, events: &[RecordedEvent]) -> Result<(), WorkerError> {
    let db = ctx.audit.as_ref().ok_or_else(|| WorkerError::Config("the audit worker has no database".into()))?;
    record_all(db, events).await
}

/// Appends `event` unless its id is already in the trail.
pub async fn record(db: &DatabaseConnection, event: &RecordedEvent) -> Result<(), WorkerError> {
    record_all(db, std::slice::from_ref(event)).await
}

/// Appends every event whose id is not already in the trail, in one
/// statement (one transaction) for the whole batch.
pub async fn record_all(db: &DatabaseConnection, events: &[RecordedEvent]) -> Result<(), WorkerError> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = events.iter().map(row).collect::<Result<Vec<_>, _>>()?;
    let inserted = entry::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(entry::Column::EventId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn row(event: &RecordedEvent) -> Result<entry::ActiveModel, WorkerError> {
    let e = &event.envelope;
    let body = serde_json::to_string(e).map_err(chorus_event_store::EventStoreError::from)?;
    Ok(entry::ActiveModel {
        event_id: Set(e.id),
        sequence: Set(i64::try_from(event.sequence).unwrap_or(i64::MAX)),
        checkout_id: Set(e.checkout_id),
        event_type: Set(e.event_type()),
        pattern: Set(e.pattern),
        emitted_at: Set(micros_rfc3339::format(e.emitted_at).unwrap_or_default()),
        body: Set(body),
        traceparent: Set(event.traceparent.clone()),
        recorded_at: Set(OffsetDateTime::now_utc()),
    })
}

/// One checkout's trail, in stream order.
pub async fn trail(db: &DatabaseConnection, checkout_id: CheckoutId) -> Result<Vec<entry::Model>, DbErr> {
    entry::Entity::find()
        .filter(entry::Column::CheckoutId.eq(checkout_id))
        .order_by_asc(entry::Column::Sequence)
        .all(db)
        .await
}

/// How many events the trail holds.
pub async fn count(db: &DatabaseConnection) -> Result<u64, DbErr> {
    entry::Entity::find().count(db).await
}

/// The worker of this module.
pub struct Audit;

impl Worker for Audit {
    fn name(&self) -> WorkerName {
        WorkerName::Audit
    }

    fn durable(&self) -> &'static str {
        "choreo-audit"
    }

    fn consumes(&self) -> &'static [EventType] {
        &[]
    }

    fn role(&self) -> Role {
        Role::Records
    }

    fn ready(&self, ctx: &Workers) -> Result<(), WorkerError> {
        match ctx.audit {
            Some(_) => Ok(()),
            None => Err(WorkerError::Config("the audit worker needs its database".into())),
        }
    }

    fn handle<'a>(&'a self, ctx: &'a Workers, event: &'a RecordedEvent, _: Delivery) -> BoxFuture<'a, Result<Handled, WorkerError>> {
        Box::pin(async move { handle_batch(ctx, std::slice::from_ref(event)).await.map(|()| Handled::Done) })
    }

    fn handle_batch<'a>(&'a self, ctx: &'a Workers, events: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), WorkerError>> {
        Box::pin(handle_batch(ctx, events))
    }
}
