//! Several nodes on one PostgreSQL database.
//!
//! - `events.node`: the node that wrote the row (its tailer skips its own
//!   rows, which it delivered in-process after commit).
//! - `events.txid` / `node_messages.txid` (PostgreSQL only): the writing
//!   transaction's id, set by a column default. A tailer reads rows whose
//!   transaction is older than every transaction still running
//!   (`pg_snapshot_xmin`), so a row that commits late is never skipped.
//! - A statement trigger sends one empty `NOTIFY herald` per writing
//!   transaction (PostgreSQL folds identical notifications of a transaction).
//! - `nodes`: every node's heartbeat, stats and connections.
//! - `node_messages`: what one node tells the others (transient events,
//!   kicks, job cancels), read by the same tailer.
//! - `jobs.node`: the node that owns a built-in job; it holds it as long as
//!   its heartbeat is fresh (the lease).

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const PG_UP: &str = r#"
ALTER TABLE events ADD COLUMN txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX idx_events_txid ON events (txid, stream, seq);
ALTER TABLE node_messages ADD COLUMN txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX idx_node_messages_txid ON node_messages (txid, id);
CREATE OR REPLACE FUNCTION herald_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('herald', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER herald_events_notify AFTER INSERT ON events
  FOR EACH STATEMENT EXECUTE FUNCTION herald_notify();
CREATE TRIGGER herald_node_messages_notify AFTER INSERT ON node_messages
  FOR EACH STATEMENT EXECUTE FUNCTION herald_notify();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            (Alias::new("events"), Alias::new("node")),
            (Alias::new("jobs"), Alias::new("node")),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(big_integer_null(column))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Nodes::Table)
                    .if_not_exists()
                    .col(pk_auto(Nodes::Id).big_integer())
                    .col(string(Nodes::Name))
                    .col(string(Nodes::Address))
                    .col(big_integer(Nodes::StartedAt))
                    .col(big_integer(Nodes::HeartbeatAt))
                    .col(text(Nodes::Stats).default("{}"))
                    .col(text(Nodes::Connections).default("[]"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NodeMessages::Table)
                    .if_not_exists()
                    .col(pk_auto(NodeMessages::Id).big_integer())
                    .col(big_integer(NodeMessages::Source))
                    .col(big_integer_null(NodeMessages::Target))
                    .col(string(NodeMessages::Kind))
                    .col(text(NodeMessages::Body))
                    .col(big_integer(NodeMessages::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_node_messages_created_at")
                    .table(NodeMessages::Table)
                    .col(NodeMessages::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager.get_connection().execute_unprepared(PG_UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "DROP TRIGGER IF EXISTS herald_events_notify ON events; \
                 DROP FUNCTION IF EXISTS herald_notify() CASCADE; \
                 DROP INDEX IF EXISTS idx_events_txid; \
                 ALTER TABLE events DROP COLUMN IF EXISTS txid",
            )
            .await?;
        }
        manager
            .drop_table(Table::drop().table(NodeMessages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Nodes::Table).to_owned())
            .await?;
        for table in [Alias::new("events"), Alias::new("jobs")] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new("node"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Id,
    Name,
    Address,
    StartedAt,
    HeartbeatAt,
    Stats,
    Connections,
}

#[derive(DeriveIden)]
enum NodeMessages {
    Table,
    Id,
    Source,
    Target,
    Kind,
    Body,
    CreatedAt,
}
