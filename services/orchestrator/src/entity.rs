//! The orchestrator's tables: the saga row (its current state, lease and
//! what each step produced), the append-only saga log, and the outbox of
//! events written with them and not yet stored in the event store.

pub mod saga {
    use chorus_domain::{CheckoutId, ClientId, SagaState};
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sagas")]
    pub struct Model {
        /// The checkout id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: CheckoutId,
        pub client_id: ClientId,
        /// Unique per client when present.
        pub idempotency_key: Option<String>,
        /// The cart, as JSON `[{product_id, quantity}]`.
        pub items: String,
        /// The priced lines once products are fetched, as JSON.
        pub lines: Option<String>,
        pub state: SagaState,
        /// How many transitions are logged; the next log row's `seq`.
        pub version: i64,
        pub reservation_id: Option<Uuid>,
        pub order_id: Option<Uuid>,
        pub failure_reason: Option<String>,
        pub failure_step: Option<String>,
        pub lease_owner: Option<String>,
        pub lease_expires_at: Option<TimeDateTimeWithTimeZone>,
        /// Times a replica took this saga over.
        pub attempts: i64,
        pub traceparent: Option<String>,
        pub created_at: TimeDateTimeWithTimeZone,
        pub updated_at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::saga_log::Entity")]
        Log,
    }

    impl Related<super::saga_log::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Log.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod saga_log {
    use chorus_domain::{CheckoutId, SagaState};
    use sea_orm::entity::prelude::*;

    /// One transition; `(saga_id, seq)` is unique, so two replicas can never
    /// both log the same step.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "saga_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub saga_id: CheckoutId,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub from_state: Option<SagaState>,
        pub to_state: SagaState,
        pub reason: Option<String>,
        pub at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(belongs_to = "super::saga::Entity", from = "Column::SagaId", to = "super::saga::Column::Id")]
        Saga,
    }

    impl Related<super::saga::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Saga.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    use chorus_domain::CheckoutId;
    use sea_orm::entity::prelude::*;

    /// One event a saga write implies, written in that write's transaction
    /// and deleted once the event store has acknowledged it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// Order of writing: the relay publishes in this order.
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub event_id: Uuid,
        pub checkout_id: CheckoutId,
        /// The event as JSON, as it is published.
        pub body: String,
        pub traceparent: Option<String>,
        /// The replica whose transaction wrote it; its relay publishes it
        /// at once, any other relay once it has waited too long.
        pub owner: String,
        pub created_at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
