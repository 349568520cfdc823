//! Draft orders: edited on several devices, last write wins, deletes are
//! tombstones (`deleted = true`) so a late write cannot resurrect them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "drafts")]
pub struct Model {
    /// A UUID, possibly chosen by the client.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    /// The device that wrote it last.
    pub device_id: Option<String>,
    /// JSON text, exactly as the client sent it.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// Strictly increases on every write (ms since the epoch).
    pub server_updated_at: i64,
    pub deleted: bool,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
