//! A cancel is kept on the job: `jobs.cancel_requested` names who asked to
//! cancel a running built-in job. The runner sees it at its next
//! checkpoint, on whichever node it runs, and a node that recovers the job
//! after its runner's node died ends it as cancelled, not interrupted: a
//! 202 answer to a cancel is a promise kept whatever happens to the node.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("jobs"))
                    .add_column(text_null(Alias::new("cancel_requested")))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("jobs"))
                    .drop_column(Alias::new("cancel_requested"))
                    .to_owned(),
            )
            .await
    }
}
