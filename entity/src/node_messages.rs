//! What one node tells the others through the database: transient events,
//! kicks and job cancels. Read by every node's tailer; pruned after a minute.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "node_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The node that sent it (it does not read its own).
    pub source: i64,
    /// The node it is for; none: every other node.
    pub target: Option<i64>,
    /// `transient`, `kick` or `cancel_job`.
    pub kind: String,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
