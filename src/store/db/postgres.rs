//! Why PostgreSQL cannot be reached, in words that say what to do.
//!
//! A pool that cannot connect answers only "pool timed out", after its
//! acquire timeout; so before the pool is made, one connection is tried
//! directly, and its error is named with the host, port, user and database
//! it was for, and advice that fits it.

use std::{str::FromStr, time::Duration};

use sea_orm::sqlx::{
    self,
    postgres::{PgConnectOptions, PgConnection},
    Connection,
};

/// How long the first connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connecting failed: where to, what happened, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to PostgreSQL at {host}:{port} as user `{user}`, database `{database}`: {what}. {advice}")]
pub struct Unreachable {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub what: String,
    pub advice: String,
}

/// Tries one connection to `url`; answers why it failed, if it did.
pub async fn try_connect(url: &str) -> Result<(), Unreachable> {
    let opts = match PgConnectOptions::from_str(url) {
        Ok(opts) => opts,
        Err(err) => return Err(Unreachable {
            host: String::new(),
            port: 0,
            user: String::new(),
            database: String::new(),
            what: format!("the URL cannot be read ({err})"),
            advice:
                "Write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE in HERALD_DATABASE_URL."
                    .into(),
        }),
    };
    let (user, database) = (
        opts.get_username().to_owned(),
        opts.get_database()
            .unwrap_or(opts.get_username())
            .to_owned(),
    );
    // The advice names this user and database.
    let unreachable = |what: String, advice: &str| Unreachable {
        host: opts.get_host().to_owned(),
        port: opts.get_port(),
        what,
        advice: advice.replace("USER", &user).replace("DATABASE", &database),
        user: user.clone(),
        database: database.clone(),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Err(_) => Err(unreachable(
            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            "Check that the host is reachable from here and that PostgreSQL listens on that port (listen_addresses and port in postgresql.conf).",
        )),
        Ok(Err(err)) => Err(explain(err, unreachable)),
    }
}

fn explain(err: sqlx::Error, unreachable: impl Fn(String, &str) -> Unreachable) -> Unreachable {
    match err {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => unreachable(
            "connection refused".into(),
            "Is PostgreSQL running and listening there? On Debian: `sudo pg_ctlcluster 15 main start` (or `sudo systemctl start postgresql`); it listens on 127.0.0.1:5432 unless postgresql.conf says otherwise.",
        ),
        sqlx::Error::Io(io) => unreachable(
            format!("{io}"),
            "Check the host and port in HERALD_DATABASE_URL.",
        ),
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let advice = match code.as_str() {
                "28P01" => "Check the password in HERALD_DATABASE_URL (postgres://USER:PASSWORD@HOST/DATABASE), or set it: `sudo -u postgres psql -c \"ALTER ROLE USER PASSWORD '...'\"`.",
                "3D000" => "Create it, owned by herald's role: `sudo -u postgres createdb -O USER DATABASE`.",
                "28000" if message.contains("pg_hba.conf") => "Allow this client in pg_hba.conf (for example `host DATABASE USER 127.0.0.1/32 scram-sha-256`), then `sudo systemctl reload postgresql`.",
                "28000" if message.contains("does not exist") => "Create the role with a password: `sudo -u postgres createuser --pwprompt USER`.",
                "28000" => "Check the user and password in HERALD_DATABASE_URL, and pg_hba.conf.",
                "53300" => "PostgreSQL has no connection left (max_connections); stop idle clients or raise it.",
                _ => "Check HERALD_DATABASE_URL and PostgreSQL's log.",
            };
            let what = if code.is_empty() {
                message
            } else {
                format!("{message} (SQLSTATE {code})")
            };
            unreachable(what, advice)
        }
        sqlx::Error::Tls(tls) => unreachable(
            format!("TLS failed: {tls}"),
            "Check sslmode in HERALD_DATABASE_URL (`?sslmode=disable` for a server without TLS).",
        ),
        other => unreachable(other.to_string(), "Check HERALD_DATABASE_URL."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nobody listens on: refused at once, with the advice to start
    /// PostgreSQL, and every part of the address named.
    #[actix_web::test]
    async fn a_refused_connection_says_where_and_what_to_do() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = try_connect(&format!("postgres://alice:pw@127.0.0.1:{port}/orders"))
            .await
            .unwrap_err();
        let text = err.to_string();
        for part in [
            "127.0.0.1",
            &port.to_string(),
            "`alice`",
            "`orders`",
            "connection refused",
            "pg_ctlcluster",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("pw"), "no password in {text}");
    }
}
