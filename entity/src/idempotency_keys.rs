//! `Idempotency-Key`s of writes that were answered: who sent the key, a hash
//! of the request it came with, and the answer, stored in the same
//! transaction as the write itself, so a crash cannot separate them. A
//! repeat within 24 h gets the stored answer; the same key with another body
//! is refused.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// `<route>:<caller's sub>:<key>`: keys of different callers never meet.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// SHA-256 (hex) of the request body as parsed.
    pub request_hash: String,
    /// The answer's JSON body (empty for a 204).
    pub response: String,
    pub created_at: i64,
    /// The answer's HTTP status (0 while the write that claimed the key
    /// has not committed).
    pub status: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
