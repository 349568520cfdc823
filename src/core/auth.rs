//! Tokens: HS256 JWTs, the secret they are signed with, and their claims.
//!
//! There is no built-in secret. When `HERALD_JWT_SECRET` is unset the first
//! start generates one into a file beside the database (mode 0600) and every
//! later start, and `herald token`, reads the same file.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::core::config::DatabaseSettings;

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

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or create the JWT secret file {path}: {source}; set HERALD_JWT_SECRET or fix the permissions")]
    Io { path: PathBuf, source: io::Error },
    #[error("the JWT secret file {0} is empty or too short; delete it to have a new one generated, or set HERALD_JWT_SECRET")]
    TooShort(PathBuf),
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

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where the generated secret is kept: beside the SQLite file, or in the
/// working directory for other databases.
pub fn secret_path(db: &DatabaseSettings) -> PathBuf {
    match db.sqlite_path() {
        Some(path) => {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".jwt-secret");
            path.with_file_name(name)
        }
        None => PathBuf::from("herald.jwt-secret"),
    }
}

/// The secret from `HERALD_JWT_SECRET`, or else the one kept beside the
/// database (generated on first use).
/// On PostgreSQL without `HERALD_JWT_SECRET`: the secret every node shares,
/// kept in the database (`meta.jwt_secret`, readable through herald's own
/// connection only). The first node to start generates it; the others, and
/// `herald token`, read the same one.
pub async fn shared_secret<C: sea_orm::ConnectionTrait>(
    conn: &C,
) -> Result<Vec<u8>, sea_orm::DbErr> {
    use entity::meta;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    meta::Entity::insert(meta::ActiveModel {
        key: Set(SHARED_SECRET_KEY.into()),
        value: Set(fresh),
    })
    .on_conflict_do_nothing_on([meta::Column::Key])
    .exec_without_returning(conn)
    .await?;
    meta::Entity::find_by_id(SHARED_SECRET_KEY.to_owned())
        .one(conn)
        .await?
        .map(|m| m.value.into_bytes())
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("meta.jwt_secret".into()))
}

const SHARED_SECRET_KEY: &str = "jwt_secret";

pub fn load_or_create_secret(
    explicit: Option<&str>,
    db: &DatabaseSettings,
) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = explicit {
        return Ok(secret.as_bytes().to_vec());
    }
    let path = secret_path(db);
    read_or_generate(&path)
}

fn read_or_generate(path: &Path) -> Result<Vec<u8>, SecretError> {
    let io_err = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.len() < 16 {
                return Err(SecretError::TooShort(path.to_owned()));
            }
            Ok(secret.as_bytes().to_vec())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(io_err)?;
            }
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(mut file) => {
                    file.write_all(secret.as_bytes()).map_err(io_err)?;
                    file.sync_all().map_err(io_err)?;
                    log::info!("generated a new JWT secret in {}", path.display());
                    Ok(secret.into_bytes())
                }
                // Another process won the race: use its secret.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_or_generate(path),
                Err(e) => Err(io_err(e)),
            }
        }
        Err(e) => Err(io_err(e)),
    }
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

    #[test]
    fn secret_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseSettings {
            url: format!("sqlite://{}/h.db?mode=rwc", dir.path().display()),
            sync: crate::core::config::SyncMode::Full,
        };
        let a = load_or_create_secret(None, &db).unwrap();
        let b = load_or_create_secret(None, &db).unwrap();
        assert_eq!(a, b);
        let path = secret_path(&db);
        assert_eq!(path, dir.path().join("h.db.jwt-secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
