//! Orders placed at a station, in order (`position` 0, 1, ...). Prices are kept
//! exactly as written in `price_json`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub venue_id: String,
    pub device_id: String,
    pub position: i32,
    pub name: String,
    /// Whole units (rounded); kept for readers of the table.
    pub price: i64,
    /// The exact JSON number a client wrote (`1000`, `1000.0`, `12.5`).
    pub price_json: String,
    pub quantity: i64,
    pub notes: String,
    /// As the terminal sent it (RFC 3339, any offset).
    pub first_order_time: String,
    pub last_order_time: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
