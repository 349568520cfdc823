//! One row per event stream (a dashboard user, or a cashier venue), created
//! with the stream's first event.
//!
//! `last_seq` is bumped in the same transaction that inserts events, so the
//! per-stream sequence is contiguous and survives restarts.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "streams")]
pub struct Model {
    /// `user:<id>` or `venue:<id>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    pub last_seq: i64,
    /// The timestamp (ms) of the stream's last event: the next one is later.
    pub last_ts: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
