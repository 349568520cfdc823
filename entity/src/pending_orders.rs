//! Orders waiting to be sent to the order system (the ERP).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// `pending`, `submitting`, `submitted` or `failed`.
    pub status: String,
    pub order_number: Option<String>,
    pub job_id: Option<String>,
    /// Why the last submission failed, if it did.
    pub error: Option<String>,
    pub updated_at: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
