//! Receipts for every write: an event caused by a write that carried an
//! `Idempotency-Key` keeps that key (`events.mutation_id`, sent as
//! `mutationId` live and in replays), and a stored answer keeps its HTTP
//! status beside its body (`idempotency_keys.status`; the publish answers
//! stored before were all 200).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("events"))
                    .add_column(text_null(Alias::new("mutation_id")))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("idempotency_keys"))
                    .add_column(integer(Alias::new("status")).default(200))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("idempotency_keys"))
                    .drop_column(Alias::new("status"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("events"))
                    .drop_column(Alias::new("mutation_id"))
                    .to_owned(),
            )
            .await
    }
}
