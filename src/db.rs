//! Database connections: one writer, many readers.
//!
//! SQLite allows one writer at a time. Rather than letting transactions
//! collide and retry on `SQLITE_BUSY`, every write goes through a pool of one
//! connection (writers queue fairly on the pool) and starts `IMMEDIATE`; reads
//! use a separate pool and see committed data (WAL). PostgreSQL uses one pool
//! for both; its row locks serialize writers of one stream.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
    ActiveValue::Set,
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::configuration::DatabaseSettings;

#[derive(Clone)]
pub struct Db {
    /// Every transaction that writes.
    pub write: DatabaseConnection,
    /// Queries that only read.
    pub read: DatabaseConnection,
    sqlite: bool,
}

fn options(url: &str, max: u32, sqlite: bool) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max)
        .min_connections(if sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if sqlite {
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    }
    opts
}

impl Db {
    pub async fn connect(settings: &DatabaseSettings) -> Result<Db, DbErr> {
        let sqlite = settings.is_sqlite();
        if !sqlite {
            let pool = Database::connect(options(&settings.url, 16, false)).await?;
            return Ok(Db {
                read: pool.clone(),
                write: pool,
                sqlite,
            });
        }
        let write = Database::connect(options(&settings.url, 1, true)).await?;
        // An in-memory database exists once per connection: share the writer.
        let read = if settings.sqlite_path().is_some() {
            Database::connect(options(&settings.url, 4, true)).await?
        } else {
            write.clone()
        };
        Ok(Db {
            write,
            read,
            sqlite,
        })
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite, so it takes
    /// the write lock up front instead of failing on upgrade).
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.sqlite {
            self.write
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
        } else {
            self.write.begin().await
        }
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.write, None).await
    }

    /// The database's epoch, created with the database.
    pub async fn epoch(&self) -> Result<String, DbErr> {
        use entity::meta;
        let fresh = meta::ActiveModel {
            key: Set("epoch".into()),
            value: Set(uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()),
        };
        meta::Entity::insert(fresh)
            .on_conflict_do_nothing_on([meta::Column::Key])
            .exec_without_returning(&self.write)
            .await?;
        meta::Entity::find_by_id("epoch".to_owned())
            .one(&self.write)
            .await?
            .map(|m| m.value)
            .ok_or_else(|| DbErr::RecordNotFound("meta.epoch".into()))
    }
}
