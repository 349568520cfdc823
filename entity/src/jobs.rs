//! Background jobs: built-in ones run by herald, others by external workers.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub kind: String,
    /// JSON text.
    #[sea_orm(column_type = "Text")]
    pub params: String,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// 0-100.
    pub progress: i32,
    pub label: Option<String>,
    /// JSON text: the outcome, or for a running submission what is done so far.
    #[sea_orm(column_type = "Text", nullable)]
    pub result: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The node that owns a built-in job while its heartbeat is fresh.
    pub node: Option<i64>,
    /// Who asked to cancel it while it ran (the runner, or whoever recovers
    /// the job, ends it as cancelled).
    pub cancel_requested: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
