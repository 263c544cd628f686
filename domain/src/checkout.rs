//! A checkout's two words that both patterns share.

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

/// Which saga style runs a checkout (and produced an event).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
#[cfg_attr(feature = "db", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(
    feature = "db",
    sea_orm(rs_type = "String", db_type = "String(sea_orm::sea_query::StringLen::None)", rename_all = "lowercase")
)]
pub enum Pattern {
    Orchestrated,
    Choreographed,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where a checkout stands, in either pattern.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckoutStatus {
    Pending,
    Succeeded,
    Failed,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_wire_names() {
        for &p in Pattern::VARIANTS {
            assert_eq!(serde_json::to_string(&p).expect("json"), format!("\"{p}\""));
            assert_eq!(p.as_str().parse::<Pattern>(), Ok(p));
        }
        for &s in CheckoutStatus::VARIANTS {
            assert_eq!(serde_json::to_string(&s).expect("json"), format!("\"{s}\""));
        }
        assert_eq!(Pattern::Orchestrated.as_str(), "orchestrated");
        assert_eq!(CheckoutStatus::Succeeded.as_str(), "SUCCEEDED");
    }
}
