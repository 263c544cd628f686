//! A client's idempotency key (DESIGN §3): scoped to the client, the same
//! key names the same checkout. Parsed once, where it enters (the gateway's
//! input, a request's body); past that it is this type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 1 to [`IdempotencyKey::MAX_CHARS`] characters: counted as characters,
/// not bytes, so that a key in any script has the same room.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.is_empty() || raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("idempotencyKey: 1 to {} characters", Self::MAX_CHARS));
        }
        Ok(IdempotencyKey(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        IdempotencyKey::parse(raw)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> String {
        key.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_count_not_bytes() {
        assert!(IdempotencyKey::parse("é".repeat(200)).is_ok(), "200 characters, 400 bytes");
        assert!(IdempotencyKey::parse("k".repeat(201)).is_err());
        assert!(IdempotencyKey::parse(String::new()).is_err());
    }

    #[test]
    fn a_body_with_a_bad_key_does_not_decode() {
        let bad = format!("\"{}\"", "k".repeat(201));
        assert!(serde_json::from_str::<IdempotencyKey>(&bad).is_err());
        let good: IdempotencyKey = serde_json::from_str("\"cart-1\"").expect("decodes");
        assert_eq!(serde_json::to_string(&good).expect("encodes"), "\"cart-1\"");
    }
}
