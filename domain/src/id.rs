//! The ids of the domain's things, one type each, so that a product id is
//! never passed where a checkout id is meant and a signature says which
//! it takes. Each is a UUID on the wire (serde transparent, so JSON and
//! event bodies are unchanged), in subjects (hyphenated) and in database
//! columns (the `db` feature: sea-orm `DeriveValueType`). Any UUID is a
//! valid id: parsing one is parsing a UUID.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "db", derive(sea_orm::DeriveValueType))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id, time-ordered (UUIDv7: rows and keys sort by creation).
            pub fn now_v7() -> Self {
                Self(Uuid::now_v7())
            }

            /// A new random id (UUIDv4).
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        /// Only for sea-orm's primary-key bound: an id is never a number.
        #[cfg(feature = "db")]
        impl sea_orm::TryFromU64 for $name {
            fn try_from_u64(_: u64) -> Result<Self, sea_orm::DbErr> {
                Err(sea_orm::DbErr::ConvertFromU64(stringify!($name)))
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::from_str(s).map(Self)
            }
        }
    };
}

id! {
    /// A checkout: the saga's id (orchestrated) and the subject token
    /// of all its events (`ecommerce.checkout.<id>.<Type>`).
    CheckoutId
}

id! {
    /// A product of the catalogue, and its stock level in inventory.
    ProductId
}

id! {
    /// The client (a shopper) a checkout and its order belong to.
    ClientId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_uuid_on_the_wire_and_in_text() {
        let uuid = Uuid::now_v7();
        let id = CheckoutId::from(uuid);
        assert_eq!(serde_json::to_value(id).expect("json"), serde_json::json!(uuid.to_string()));
        assert_eq!(serde_json::from_value::<CheckoutId>(serde_json::json!(uuid.to_string())).expect("decodes"), id);
        assert_eq!(id.to_string(), uuid.hyphenated().to_string());
        assert_eq!(id.to_string().parse::<CheckoutId>().expect("parses"), id);
        assert!("not-a-uuid".parse::<ProductId>().is_err());
        assert_eq!(Uuid::from(id), uuid);
    }
}
