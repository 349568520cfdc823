//! Every node serving this database: its heartbeat (which is also the lease
//! on its built-in jobs), its stats and its connections, so admin calls on
//! any node cover every node.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `HERALD_NODE_NAME`, else the host name and process id.
    pub name: String,
    /// The address it listens on.
    pub address: String,
    pub started_at: i64,
    /// 0 once it stopped cleanly: its jobs are free at once.
    pub heartbeat_at: i64,
    /// JSON text: its `Stats`.
    #[sea_orm(column_type = "Text")]
    pub stats: String,
    /// JSON text: its connection list.
    #[sea_orm(column_type = "Text")]
    pub connections: String,
    /// Every `node_messages` row with a transaction id below this has been
    /// read by this node (several nodes).
    pub read_horizon: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
