//! Hardening: each stream remembers the timestamp of its last event (so
//! timestamps strictly increase per stream, whatever the clock or the number
//! of writers), and prices keep the exact JSON number a client wrote
//! (`1000`, `1000.0`, `12.5`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER per column: SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Streams::Table)
                    .add_column(big_integer(Streams::LastTs).default(0))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE streams SET last_ts = COALESCE((SELECT MAX(e.created_at) FROM events e \
             WHERE e.stream = streams.stream), 0)",
        )
        .await?;
        for table in [DeviceOrders::Table.into_iden(), Products::Table.into_iden()] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(string(Alias::new("price_json")).default("0"))
                        .to_owned(),
                )
                .await?;
        }
        db.execute_unprepared("UPDATE device_orders SET price_json = CAST(price AS TEXT)")
            .await?;
        db.execute_unprepared("UPDATE products SET price_json = CAST(price AS TEXT)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Streams::Table)
                    .drop_column(Streams::LastTs)
                    .to_owned(),
            )
            .await?;
        for table in [DeviceOrders::Table.into_iden(), Products::Table.into_iden()] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new("price_json"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Streams {
    Table,
    LastTs,
}

#[derive(DeriveIden)]
enum DeviceOrders {
    Table,
}

#[derive(DeriveIden)]
enum Products {
    Table,
}
