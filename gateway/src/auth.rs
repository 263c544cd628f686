//! Who is asking (DESIGN §4): a bearer JWT (HS256, `jsonwebtoken`) on HTTP
//! `Authorization` or in the WebSocket `connection_init` payload; `sub` is
//! the client id, `role` is `client` or `admin`; `exp` and `nbf` are
//! checked with a small leeway, and a WebSocket keeps its token's
//! [`Expiry`]: past it, the socket's principal is anonymous (nothing more
//! runs) and its subscriptions end with `UNAUTHENTICATED`.
//!
//! A request with no token is `Anonymous`; every resolver asks for the
//! principal it needs as its first step, so authentication is checked before
//! input, and authorization (acting as someone else) after it. A token that
//! is present but bad refuses the whole request. Without a secret the gateway
//! is `Open` (loopback only): everyone acts as admin.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use chorus_domain::ClientId;

use crate::GatewayError;

/// The claims Chorus reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// When the token a caller presented stops being valid (its `exp` plus the
/// leeway): kept with a WebSocket, which outlives the check at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry(pub std::time::SystemTime);

impl Expiry {
    pub fn passed(&self) -> bool {
        std::time::SystemTime::now() >= self.0
    }

    /// How long until it passes (zero once it has).
    pub fn remaining(&self) -> std::time::Duration {
        self.0.duration_since(std::time::SystemTime::now()).unwrap_or_default()
    }
}

/// Clock skew allowed on `exp` and `nbf` unless configured.
pub const DEFAULT_LEEWAY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Admin,
}

/// The caller of one request or WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No secret is configured: no auth (loopback only).
    Open,
    /// A secret is configured and no token was sent.
    Anonymous,
    Client(ClientId),
    Admin(String),
}

impl Principal {
    /// Anyone authenticated.
    pub fn authenticated(&self) -> Result<(), GatewayError> {
        match self {
            Principal::Anonymous => Err(GatewayError::Unauthenticated),
            _ => Ok(()),
        }
    }

    /// Only an admin (or an open gateway).
    pub fn admin(&self) -> Result<(), GatewayError> {
        match self {
            Principal::Open | Principal::Admin(_) => Ok(()),
            Principal::Anonymous => Err(GatewayError::Unauthenticated),
            Principal::Client(_) => Err(GatewayError::Forbidden("this operation needs the admin role".into())),
        }
    }

    /// Only the client itself (or an admin).
    pub fn acts_as(&self, client_id: ClientId) -> Result<(), GatewayError> {
        match self {
            Principal::Open | Principal::Admin(_) => Ok(()),
            Principal::Anonymous => Err(GatewayError::Unauthenticated),
            Principal::Client(me) if *me == client_id => Ok(()),
            Principal::Client(_) => Err(GatewayError::Forbidden("a client acts and reads only as itself".into())),
        }
    }

    /// Only the owner of a checkout (or an admin). When the owner is not
    /// known (a history without the event that names it), only an admin:
    /// an unknown owner must not mean anyone may read it.
    pub fn owns(&self, owner: Option<ClientId>) -> Result<(), GatewayError> {
        match owner {
            Some(client_id) => self.acts_as(client_id),
            None => self.admin(),
        }
    }

    /// A key for per-caller limits.
    pub fn key(&self) -> String {
        match self {
            Principal::Open => "open".into(),
            Principal::Anonymous => "anonymous".into(),
            Principal::Client(id) => format!("client:{id}"),
            Principal::Admin(sub) => format!("admin:{sub}"),
        }
    }
}

/// Checks tokens against the configured secret; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    key: Option<DecodingKey>,
    leeway: std::time::Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("enabled", &self.key.is_some()).finish()
    }
}

impl Auth {
    pub fn new(secret: Option<&str>) -> Self {
        Self::with_leeway(secret, DEFAULT_LEEWAY)
    }

    pub fn with_leeway(secret: Option<&str>, leeway: std::time::Duration) -> Self {
        Auth { key: secret.map(|s| DecodingKey::from_secret(s.as_bytes())), leeway }
    }

    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    /// The principal of a request from its `Authorization` header value (or
    /// the `connection_init` payload's), if any.
    pub fn principal(&self, authorization: Option<&str>) -> Result<Principal, GatewayError> {
        self.session(authorization).map(|(principal, _)| principal)
    }

    /// The principal and, for a token, when it expires.
    pub fn session(&self, authorization: Option<&str>) -> Result<(Principal, Option<Expiry>), GatewayError> {
        let Some(key) = &self.key else { return Ok((Principal::Open, None)) };
        let Some(header) = authorization else { return Ok((Principal::Anonymous, None)) };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(GatewayError::Unauthenticated)?
            .trim();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|_| GatewayError::Unauthenticated)?
            .claims;
        let expiry = Expiry(std::time::UNIX_EPOCH + std::time::Duration::from_secs(claims.exp) + self.leeway);
        let principal = match claims.role {
            Role::Admin => Principal::Admin(claims.sub),
            Role::Client => claims.sub.parse::<ClientId>().map(Principal::Client).map_err(|_| GatewayError::Unauthenticated)?,
        };
        Ok((principal, Some(expiry)))
    }
}

/// Signs a token valid for `valid_for` (for tests, examples and operators' scripts).
pub fn issue(secret: &str, sub: &str, role: Role, valid_for: std::time::Duration) -> Result<String, GatewayError> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        .saturating_add(valid_for)
        .as_secs();
    encode(secret, &Claims { sub: sub.to_owned(), role, exp, nbf: None })
}

/// Signs `claims` as they are (an expired token, for tests).
pub fn encode(secret: &str, claims: &Claims) -> Result<String, GatewayError> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_name_their_principal_and_bad_ones_are_refused() {
        let auth = Auth::new(Some("s3cret"));
        let client = ClientId::new_v4();
        let token = issue("s3cret", &client.to_string(), Role::Client, Duration::from_secs(60)).expect("token");
        assert_eq!(auth.principal(Some(&format!("Bearer {token}"))).expect("valid"), Principal::Client(client));
        let admin = issue("s3cret", "ops", Role::Admin, Duration::from_secs(60)).expect("token");
        assert_eq!(auth.principal(Some(&format!("Bearer {admin}"))).expect("valid"), Principal::Admin("ops".into()));
        assert_eq!(auth.principal(None).expect("no token"), Principal::Anonymous);
        let forged = issue("other", &client.to_string(), Role::Admin, Duration::from_secs(60)).expect("token");
        assert!(matches!(auth.principal(Some(&format!("Bearer {forged}"))), Err(GatewayError::Unauthenticated)));
        assert!(matches!(auth.principal(Some("Basic abc")), Err(GatewayError::Unauthenticated)));
        assert_eq!(Auth::new(None).principal(Some("Bearer junk")).expect("open"), Principal::Open);
    }

    #[test]
    fn not_before_and_expiry_hold_with_the_leeway() {
        let auth = Auth::with_leeway(Some("s3cret"), Duration::from_secs(5));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let token = |exp: u64, nbf: Option<u64>| {
            let claims = Claims { sub: "ops".into(), role: Role::Admin, exp, nbf };
            format!("Bearer {}", encode("s3cret", &claims).expect("token"))
        };
        assert!(auth.principal(Some(&token(now + 60, Some(now + 120)))).is_err(), "nbf in the future");
        assert!(auth.principal(Some(&token(now + 60, Some(now + 2)))).is_ok(), "nbf within the leeway");
        assert!(auth.principal(Some(&token(now - 60, None))).is_err(), "expired");
        let (_, expiry) = auth.session(Some(&token(now + 60, None))).expect("valid");
        let expiry = expiry.expect("a token has an expiry");
        assert!(!expiry.passed() && expiry.remaining() > Duration::from_secs(60));
    }

    #[test]
    fn clients_act_only_as_themselves() {
        let me = ClientId::new_v4();
        let p = Principal::Client(me);
        assert!(p.acts_as(me).is_ok());
        assert!(matches!(p.acts_as(ClientId::new_v4()), Err(GatewayError::Forbidden(_))));
        assert!(matches!(p.admin(), Err(GatewayError::Forbidden(_))));
        assert!(matches!(Principal::Anonymous.acts_as(me), Err(GatewayError::Unauthenticated)));
        assert!(Principal::Admin("ops".into()).acts_as(me).is_ok());
        // An unknown owner is no one's: only an admin (or an open gateway) reads.
        assert!(p.owns(Some(me)).is_ok());
        assert!(matches!(p.owns(None), Err(GatewayError::Forbidden(_))));
        assert!(Principal::Admin("ops".into()).owns(None).is_ok());
        assert!(Principal::Open.owns(None).is_ok());
    }
}
