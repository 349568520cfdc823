//! The JWT secret the server signs with, when `HERALD_JWT_SECRET` does not
//! give one: generated once and kept in a file beside the SQLite database
//! (mode 0600), or in the database itself on PostgreSQL so every node and
//! `herald token` share it.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use rand::RngCore;

use crate::core::config::DatabaseSettings;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or create the JWT secret file {path}: {source}; set HERALD_JWT_SECRET or fix the permissions")]
    Io { path: PathBuf, source: io::Error },
    #[error("the JWT secret file {0} is empty or too short; delete it to have a new one generated, or set HERALD_JWT_SECRET")]
    TooShort(PathBuf),
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

/// Where the secret comes from, in words: what `herald token` and `herald
/// tail` say, so a token refused by the server points at the mismatch.
pub fn secret_source(explicit: bool, db: &DatabaseSettings) -> String {
    if explicit {
        "HERALD_JWT_SECRET (--jwt-secret)".into()
    } else if db.is_sqlite() {
        format!("the file {}", secret_path(db).display())
    } else {
        "the secret kept in the PostgreSQL database (table meta)".into()
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
