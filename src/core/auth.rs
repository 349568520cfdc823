//! Tokens: HS256 JWTs, the secret they are signed with, and their claims.
//!
//! There is no built-in secret. When `HERALD_JWT_SECRET` is unset the first
//! start generates one into a file beside the database (mode 0600) and every
//! later start, and `herald token`, reads the same file.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock-skew leeway when checking `exp`; the contract allows at most 5 s.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Admin,
    Service,
    Cashier,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Service => "service",
            Role::Cashier => "cashier",
        }
    }

    /// Admins and services may act for any user.
    pub fn is_privileged(self) -> bool {
        matches!(self, Role::Admin | Role::Service)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
}

impl Claims {
    /// The cashier venue this token belongs to (`main` when unset).
    pub fn venue(&self) -> &str {
        self.venue.as_deref().unwrap_or("main")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: send `Authorization: Bearer <token>` or `?token=`")]
    Missing,
    #[error("token expired; mint a new one with `herald token`")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) if data.claims.sub.is_empty() => {
                Err(AuthError::Invalid("the `sub` claim is empty".into()))
            }
            Ok(data) => Ok(data.claims),
            Err(err) => match err.kind() {
                ErrorKind::ExpiredSignature => Err(AuthError::Expired),
                ErrorKind::InvalidSignature => {
                    Err(AuthError::Invalid("signature does not match".into()))
                }
                ErrorKind::MissingRequiredClaim(claim) => Err(AuthError::Invalid(format!(
                    "the `{claim}` claim is required"
                ))),
                ErrorKind::Json(e) => Err(AuthError::Invalid(format!("bad claims: {e}"))),
                _ => Err(AuthError::Invalid(err.to_string())),
            },
        }
    }

    pub fn mint(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Mints a token for `sub` valid for `ttl` from now.
    pub fn mint_for(&self, sub: &str, role: Role, ttl: Duration, venue: Option<String>) -> String {
        let exp = unix_now() + ttl.as_secs();
        self.mint(&Claims {
            sub: sub.to_owned(),
            role,
            exp,
            venue,
        })
    }
}

/// How long until a token with this `exp` (seconds) expires; a socket is
/// closed then (the leeway only forgives clock skew at the upgrade).
pub fn until_expiry(exp: u64) -> Duration {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis((exp.saturating_mul(1000)).saturating_sub(now_ms))
}

/// The token of an `Authorization: Bearer ...` header, if it has one.
pub fn bearer_token(headers: &actix_web::http::header::HeaderMap) -> Option<&str> {
    let value = headers
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let token = k.mint_for("alice", Role::Agent, Duration::from_secs(60), None);
        let claims = k.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, Role::Agent);
        assert_eq!(claims.venue(), "main");
    }

    #[test]
    fn leeway_is_at_most_five_seconds() {
        let k = keys();
        let mut claims = Claims {
            sub: "a".into(),
            role: Role::Agent,
            exp: unix_now() - 3,
            venue: None,
        };
        assert!(k.verify(&k.mint(&claims)).is_ok());
        claims.exp = unix_now() - 7;
        assert!(matches!(
            k.verify(&k.mint(&claims)),
            Err(AuthError::Expired)
        ));
    }

    #[test]
    fn wrong_secret_and_garbage() {
        let other = TokenKeys::new(b"another-secret-of-enough-length");
        let token = other.mint_for("a", Role::Admin, Duration::from_secs(60), None);
        assert!(matches!(keys().verify(&token), Err(AuthError::Invalid(_))));
        assert!(matches!(
            keys().verify("abc.def"),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(keys().verify(""), Err(AuthError::Missing)));
    }
}
