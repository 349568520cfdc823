//! Database connections: one writer, many readers.
//!
//! SQLite allows one writer at a time. Rather than letting transactions
//! collide and retry on `SQLITE_BUSY`, every write goes through a pool of one
//! connection (writers queue fairly on the pool) and starts `IMMEDIATE`; reads
//! use a separate pool and see committed data (WAL). PostgreSQL uses one pool
//! for both; its row locks serialize writers of one stream.

pub mod postgres;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sea_query::Expr,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
    ActiveValue::Set,
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use crate::core::config::{DatabaseSettings, SyncMode};

#[derive(Clone)]
pub struct Db {
    /// Every transaction that writes.
    pub write: DatabaseConnection,
    /// Queries that only read.
    pub read: DatabaseConnection,
    sqlite: bool,
    sync: SyncMode,
    /// This process's row in `nodes`, once registered: stamped on the events
    /// it writes (its tailer skips them) and on the jobs it owns.
    pub node: Option<i64>,
}

/// The advisory lock key nodes take turns on while migrating (PostgreSQL):
/// "herald m" in ASCII.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64_206d;

/// `meta` key present while a process runs with `HERALD_SYNC=normal`.
const UNCLEAN_MARK: &str = "nondurable_run";

fn options(url: &str, max: u32, sqlite: bool, sync: SyncMode) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max)
        .min_connections(if sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(10))
        // SQLite's writers queue on one connection; a PostgreSQL that is
        // down should be answered 503 in seconds, not after half a minute.
        .acquire_timeout(Duration::from_secs(if sqlite { 30 } else { 5 }))
        .sqlx_logging(false);
    if sqlite {
        // An embedded connection cannot go stale (no server, no network
        // between): the ping sqlx sends on every acquire was one more round
        // trip to SQLite's thread for every transaction.
        opts.test_before_acquire(false);
        opts.map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(match sync {
                    SyncMode::Full => SqliteSynchronous::Full,
                    SyncMode::Normal => SqliteSynchronous::Normal,
                })
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // A statement's rollback journal (multi-row inserts and
                // upserts keep one) spills to a temporary file past 64 KiB:
                // an open, writes and an unlink per large statement. In
                // memory it is a copy; it never needs to survive a crash.
                .pragma("temp_store", "memory")
        });
    } else {
        // `CREATE TABLE IF NOT EXISTS` (the migrations' table, on every
        // start) makes PostgreSQL send a NOTICE per existing relation,
        // which sqlx logs: noise, not news.
        opts.map_sqlx_postgres_opts(|o| o.options([("client_min_messages", "warning")]));
    }
    opts
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// PostgreSQL could not be reached: where, why, and what to do.
    #[error(transparent)]
    Postgres(#[from] postgres::Unreachable),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Holds `<database>.lock` for as long as the process serves: SQLite serves
/// exactly one node, and a second process on the same file would hand out
/// the same seqs twice (each keeps its own rooms and writer).
#[derive(Debug)]
pub struct SingleNode {
    _file: std::fs::File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another herald process is serving {0}: SQLite serves exactly one node. Stop the other process, or run several nodes on PostgreSQL (HERALD_DATABASE_URL=postgres://...)")]
    Taken(std::path::PathBuf),
    #[error("cannot create the lock file {path}: {source}; check that its directory is writable")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl SingleNode {
    /// Takes the lock of the SQLite file in `settings` (nothing to take for
    /// PostgreSQL or an in-memory database). The OS drops it when the
    /// process ends, however it ends.
    pub fn lock(settings: &DatabaseSettings) -> Result<Option<SingleNode>, LockError> {
        let Some(path) = settings.sqlite_path() else {
            return Ok(None);
        };
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let lock_path = path.with_file_name(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| LockError::Io {
                path: lock_path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SingleNode { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Taken(path)),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io {
                path: lock_path,
                source,
            }),
        }
    }
}

impl Db {
    pub async fn connect(settings: &DatabaseSettings) -> Result<Db, OpenError> {
        let sqlite = settings.is_sqlite();
        let sync = settings.sync;
        if !sqlite {
            // The pool would say only "pool timed out": one connection
            // first, whose error says what is wrong.
            postgres::try_connect(&settings.url).await?;
            let pool = Database::connect(options(&settings.url, 16, false, sync)).await?;
            return Ok(Db {
                read: pool.clone(),
                write: pool,
                sqlite,
                sync,
                node: None,
            });
        }
        let write = Database::connect(options(&settings.url, 1, true, sync)).await?;
        // An in-memory database exists once per connection: share the writer.
        let read = if settings.sqlite_path().is_some() {
            Database::connect(options(&settings.url, 4, true, sync)).await?
        } else {
            write.clone()
        };
        Ok(Db {
            write,
            read,
            sqlite,
            sync,
            node: None,
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

    /// A read-only transaction whose statements all see one snapshot.
    pub async fn begin_consistent_read(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.sqlite {
            return self.read.begin().await;
        }
        self.read
            .begin_with_config(
                Some(sea_orm::IsolationLevel::RepeatableRead),
                Some(sea_orm::AccessMode::ReadOnly),
            )
            .await
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// A migrated in-memory SQLite database, for unit tests.
    #[cfg(test)]
    pub async fn memory() -> Db {
        let db = Db::connect(&crate::core::config::DatabaseSettings {
            url: "sqlite::memory:".into(),
            sync: crate::core::config::SyncMode::Full,
        })
        .await
        .expect("an in-memory database");
        db.migrate().await.expect("migrations run");
        db
    }

    /// Applies the migrations not applied yet. On PostgreSQL several nodes
    /// may start at once on a fresh database: they take turns under an
    /// advisory lock, held by one transaction that also runs the migrations
    /// (so the second node, once it has the lock, finds them applied).
    pub async fn migrate(&self) -> Result<(), DbErr> {
        if self.sqlite {
            return Migrator::up(&self.write, None).await;
        }
        let txn = self.write.begin().await?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        Migrator::up(&txn, None).await?;
        txn.commit().await
    }

    /// The database's epoch, created with the database, and renewed when the
    /// last process ran without durable commits and did not stop cleanly.
    /// Marks this run as unclean when it is not durable either.
    pub async fn epoch(&self) -> Result<String, DbErr> {
        use entity::meta;
        let fresh_epoch = || uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        let fresh = meta::ActiveModel {
            key: Set("epoch".into()),
            value: Set(fresh_epoch()),
        };
        meta::Entity::insert(fresh)
            .on_conflict_do_nothing_on([meta::Column::Key])
            .exec_without_returning(&self.write)
            .await?;
        let unclean = meta::Entity::find_by_id(UNCLEAN_MARK.to_owned())
            .one(&self.write)
            .await?
            .is_some();
        if unclean {
            let epoch = fresh_epoch();
            log::warn!(
                "the last run used HERALD_SYNC=normal and did not stop cleanly: answered \
                 writes may have been lost, so the database gets a new epoch ({epoch}) and \
                 every device will refetch"
            );
            meta::Entity::update_many()
                .col_expr(meta::Column::Value, Expr::value(epoch))
                .filter(meta::Column::Key.eq("epoch"))
                .exec(&self.write)
                .await?;
            meta::Entity::delete_by_id(UNCLEAN_MARK.to_owned())
                .exec(&self.write)
                .await?;
        }
        if self.sync == SyncMode::Normal && self.sqlite {
            log::warn!(
                "HERALD_SYNC=normal: commits are answered before they reach the disk; an OS \
                 crash or power cut may lose them (the next start then changes the epoch)"
            );
            meta::Entity::insert(meta::ActiveModel {
                key: Set(UNCLEAN_MARK.into()),
                value: Set(crate::core::wire::now_ms().to_string()),
            })
            .on_conflict_do_nothing_on([meta::Column::Key])
            .exec_without_returning(&self.write)
            .await?;
        }
        // Under `normal` a checkpoint is what reaches the disk: make a new
        // epoch and the mark durable before anything is served (under `full`
        // every commit above was synced already).
        if unclean || self.sync == SyncMode::Normal {
            self.checkpoint().await?;
        }
        meta::Entity::find_by_id("epoch".to_owned())
            .one(&self.write)
            .await?
            .map(|m| m.value)
            .ok_or_else(|| DbErr::RecordNotFound("meta.epoch".into()))
    }

    /// A clean stop: everything is on disk, so the unclean mark goes.
    pub async fn close_cleanly(&self) -> Result<(), DbErr> {
        if !self.sqlite || self.sync != SyncMode::Normal {
            return Ok(());
        }
        self.checkpoint().await?;
        entity::meta::Entity::delete_by_id(UNCLEAN_MARK.to_owned())
            .exec(&self.write)
            .await?;
        self.checkpoint().await
    }

    /// Copies the WAL into the database file, syncing both (SQLite only).
    async fn checkpoint(&self) -> Result<(), DbErr> {
        if self.sqlite {
            self.write
                .execute_unprepared("PRAGMA wal_checkpoint(FULL)")
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{FromQueryResult, Statement};

    #[derive(FromQueryResult)]
    struct TempStore {
        temp_store: i64,
    }

    /// Statement journals stay in memory on every connection (2 = MEMORY).
    #[actix_web::test]
    async fn temp_files_are_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&DatabaseSettings {
            url,
            sync: SyncMode::Full,
        })
        .await
        .unwrap();
        for conn in [&db.write, &db.read] {
            let row = TempStore::find_by_statement(Statement::from_string(
                conn.get_database_backend(),
                "PRAGMA temp_store",
            ))
            .one(conn)
            .await
            .unwrap()
            .unwrap();
            assert_eq!(row.temp_store, 2);
        }
    }

    /// SQLite's connections are handed out without a ping (one round trip
    /// to its thread less per transaction); PostgreSQL's are still pinged,
    /// so a pool finds a connection a restarted server dropped.
    #[test]
    fn only_network_connections_are_pinged_before_use() {
        let sqlite = options("sqlite::memory:", 1, true, SyncMode::Full);
        assert!(!sqlite.get_test_before_acquire());
        let postgres = options("postgres://h/db", 16, false, SyncMode::Full);
        assert!(postgres.get_test_before_acquire());
    }
}
