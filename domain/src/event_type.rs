//! The name of each kind of event: the envelope's `type` field and the last
//! token of its subject (DESIGN §2).

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

/// Every event type, in the order a successful checkout emits them, then
/// the failures and the orchestrator's transitions.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[cfg_attr(feature = "db", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(
    feature = "db",
    sea_orm(rs_type = "String", db_type = "String(sea_orm::sea_query::StringLen::None)", rename_all = "PascalCase")
)]
pub enum EventType {
    CheckoutInitiated,
    StockReserved,
    StockReservationFailed,
    OrderCreated,
    OrderCreationFailed,
    StockReleased,
    CheckoutSucceeded,
    CheckoutFailed,
    SagaTransitioned,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_variant_names() {
        assert_eq!(EventType::VARIANTS.len(), 9);
        for &t in EventType::VARIANTS {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(serde_json::to_string(&t).expect("json"), format!("\"{t}\""));
        }
        assert_eq!(EventType::CheckoutInitiated.as_str(), "CheckoutInitiated");
    }
}
