//! Inventory's tables.

pub mod stock_level {
    use chorus_domain::ProductId;
    use sea_orm::entity::prelude::*;

    /// One product's stock; the three counters always sum to what was stocked.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stock_levels")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: ProductId,
        pub available: i64,
        pub reserved: i64,
        pub sold: i64,
        pub updated_at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod reservation {
    use chorus_domain::CheckoutId;
    use sea_orm::entity::prelude::*;

    /// A reservation, or the record of a refused one (`REJECTED`, with the
    /// reason) so that a retry with the same key gets the same answer.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reservations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub idempotency_key: String,
        pub checkout_id: CheckoutId,
        /// `HELD`, `RELEASED`, `COMMITTED` or `REJECTED`.
        pub status: String,
        pub failure: Option<String>,
        pub created_at: TimeDateTimeWithTimeZone,
        pub updated_at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod reservation_line {
    use chorus_domain::ProductId;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reservation_lines")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub reservation_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: ProductId,
        pub quantity: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
