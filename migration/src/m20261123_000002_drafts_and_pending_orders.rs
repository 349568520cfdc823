//! Drafts and pending orders.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Drafts::Table)
                    .if_not_exists()
                    .col(string(Drafts::Id).primary_key())
                    .col(string(Drafts::UserId))
                    .col(string_null(Drafts::DeviceId))
                    .col(text(Drafts::Payload))
                    .col(big_integer(Drafts::ServerUpdatedAt))
                    .col(boolean(Drafts::Deleted).default(false))
                    .col(big_integer(Drafts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_drafts_user")
                    .table(Drafts::Table)
                    .col(Drafts::UserId)
                    .col(Drafts::ServerUpdatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PendingOrders::Table)
                    .if_not_exists()
                    .col(string(PendingOrders::Id).primary_key())
                    .col(string(PendingOrders::UserId))
                    .col(text(PendingOrders::Payload))
                    .col(string(PendingOrders::Status))
                    .col(string_null(PendingOrders::OrderNumber))
                    .col(string_null(PendingOrders::JobId))
                    .col(text_null(PendingOrders::Error))
                    .col(big_integer(PendingOrders::UpdatedAt))
                    .col(big_integer(PendingOrders::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pending_orders_user")
                    .table(PendingOrders::Table)
                    .col(PendingOrders::UserId)
                    .col(PendingOrders::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Crash recovery finds orders left `submitting`.
        manager
            .create_index(
                Index::create()
                    .name("idx_pending_orders_status")
                    .table(PendingOrders::Table)
                    .col(PendingOrders::Status)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PendingOrders::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Drafts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Drafts {
    Table,
    Id,
    UserId,
    DeviceId,
    Payload,
    ServerUpdatedAt,
    Deleted,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PendingOrders {
    Table,
    Id,
    UserId,
    Payload,
    Status,
    OrderNumber,
    JobId,
    Error,
    UpdatedAt,
    CreatedAt,
}
