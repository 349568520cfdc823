//! The durable event log (the outbox): one row per buffered event.
//!
//! Rows are written in the same transaction as the change they describe and
//! pruned after the retention window.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub event_type: String,
    /// The payload as JSON text, exactly as it is sent on the wire.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// `originDeviceId` for dashboard events, the sender's `clientId` for
    /// cashier broadcasts.
    pub origin: Option<String>,
    pub created_at: i64,
    /// The node that wrote it (none on rows older than several-node support).
    pub node: Option<i64>,
    /// The `Idempotency-Key` of the write that caused it (`mutationId`).
    pub mutation_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
