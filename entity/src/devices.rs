//! A venue's stations (`pc1`, `table-4`): timer, mode, customers, notes.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub venue_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub is_running: bool,
    pub elapsed_seconds: i64,
    /// When `elapsed_seconds` was last true (ms): a running station's time
    /// now is `elapsed_seconds` plus the time since.
    pub elapsed_at: i64,
    /// `single` or `multi`.
    pub mode: String,
    pub customer_count: i64,
    pub notes: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
