//! The database's epoch (`meta`), the per-stream sequence (`streams`) and the
//! durable event log (`events`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Meta::Table)
                    .if_not_exists()
                    .col(string(Meta::Key).primary_key())
                    .col(string(Meta::Value))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Streams::Table)
                    .if_not_exists()
                    .col(string(Streams::Stream).primary_key())
                    .col(big_integer(Streams::LastSeq).default(0))
                    .col(big_integer(Streams::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(string(Events::Stream))
                    .col(big_integer(Events::Seq))
                    .col(string(Events::EventType))
                    .col(text(Events::Payload))
                    .col(string_null(Events::Origin))
                    .col(big_integer(Events::CreatedAt))
                    .primary_key(Index::create().col(Events::Stream).col(Events::Seq))
                    .to_owned(),
            )
            .await?;
        // Retention pruning scans by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_events_created_at")
                    .table(Events::Table)
                    .col(Events::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Streams::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Meta::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Meta {
    Table,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Streams {
    Table,
    Stream,
    LastSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Stream,
    Seq,
    EventType,
    Payload,
    Origin,
    CreatedAt,
}
