//! Running timers and what each node has read.
//!
//! - `devices.elapsed_at`: when `elapsed_seconds` was last true (ms). A
//!   running station's time in a snapshot is `elapsed_seconds` plus the time
//!   since then, so a terminal that connects later counts on from the right
//!   time. Existing rows take their `updated_at`.
//! - `nodes.read_horizon` (several nodes): every `node_messages` row whose
//!   transaction id is below it has been read by that node. Messages are
//!   deleted only once every live node has read them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("devices"))
                    .add_column(big_integer(Alias::new("elapsed_at")).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("UPDATE devices SET elapsed_at = updated_at")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("nodes"))
                    .add_column(big_integer(Alias::new("read_horizon")).default(0))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [("devices", "elapsed_at"), ("nodes", "read_horizon")] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Alias::new(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
