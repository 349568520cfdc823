//! Cashier venues: devices, their orders, categories and products.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Venues::Table)
                    .if_not_exists()
                    .col(string(Venues::Id).primary_key())
                    .col(big_integer(Venues::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .if_not_exists()
                    .col(string(Devices::VenueId))
                    .col(string(Devices::Id))
                    .col(string(Devices::Name))
                    .col(boolean(Devices::IsRunning).default(false))
                    .col(big_integer(Devices::ElapsedSeconds).default(0))
                    .col(string(Devices::Mode))
                    .col(big_integer(Devices::CustomerCount).default(1))
                    .col(text(Devices::Notes))
                    .col(big_integer(Devices::CreatedAt))
                    .col(big_integer(Devices::UpdatedAt))
                    .primary_key(Index::create().col(Devices::VenueId).col(Devices::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeviceOrders::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DeviceOrders::Id))
                    .col(string(DeviceOrders::VenueId))
                    .col(string(DeviceOrders::DeviceId))
                    .col(integer(DeviceOrders::Position))
                    .col(string(DeviceOrders::Name))
                    .col(big_integer(DeviceOrders::Price))
                    .col(big_integer(DeviceOrders::Quantity))
                    .col(text(DeviceOrders::Notes))
                    .col(string(DeviceOrders::FirstOrderTime))
                    .col(string(DeviceOrders::LastOrderTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_device_orders_device")
                    .table(DeviceOrders::Table)
                    .col(DeviceOrders::VenueId)
                    .col(DeviceOrders::DeviceId)
                    .col(DeviceOrders::Position)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .if_not_exists()
                    .col(string(Categories::VenueId))
                    .col(string(Categories::Id))
                    .col(string(Categories::Name))
                    .col(integer(Categories::Position))
                    .primary_key(Index::create().col(Categories::VenueId).col(Categories::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .if_not_exists()
                    .col(string(Products::VenueId))
                    .col(string(Products::Id))
                    .col(string(Products::Name))
                    .col(big_integer(Products::Price))
                    .col(string_null(Products::CategoryId))
                    .col(boolean(Products::Available).default(true))
                    .col(integer(Products::Position))
                    .primary_key(Index::create().col(Products::VenueId).col(Products::Id))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Products::Table.into_iden(),
            Categories::Table.into_iden(),
            DeviceOrders::Table.into_iden(),
            Devices::Table.into_iden(),
            Venues::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Venues {
    Table,
    Id,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    VenueId,
    Id,
    Name,
    IsRunning,
    ElapsedSeconds,
    Mode,
    CustomerCount,
    Notes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeviceOrders {
    Table,
    Id,
    VenueId,
    DeviceId,
    Position,
    Name,
    Price,
    Quantity,
    Notes,
    FirstOrderTime,
    LastOrderTime,
}

#[derive(DeriveIden)]
enum Categories {
    Table,
    VenueId,
    Id,
    Name,
    Position,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    VenueId,
    Id,
    Name,
    Price,
    CategoryId,
    Available,
    Position,
}
