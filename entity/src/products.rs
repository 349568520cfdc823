//! A venue's products and their prices (exact JSON numbers in `price_json`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub venue_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// Whole units (rounded); kept for readers of the table.
    pub price: i64,
    /// The exact JSON number a client wrote (`1000`, `1000.0`, `12.5`).
    pub price_json: String,
    pub category_id: Option<String>,
    pub available: bool,
    pub position: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
