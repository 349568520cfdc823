//! How the domain writes: a write is a [`Command`]. It runs inside one
//! transaction, changes its rows and says which events describe the
//! change; [`execute`] appends those events to the log in the same
//! transaction, commits, and answers the committed [`Record`]s for the
//! caller to publish (the writers hand them to the bus). Each domain's
//! commands and reads are its own module beside this one
//! ([`drafts`](super::drafts), [`pending_orders`](super::pending_orders),
//! [`jobs`](super::jobs), [`venue`](super::venue)).

use std::{future::Future, pin::Pin};

use sea_orm::{DatabaseTransaction, DbErr};
use serde_json::Value;

use crate::{
    core::{
        events::{ConnId, Record, RoomKey},
        wire,
    },
    store::{
        db::Db,
        event_log::{self, NewEvent},
    },
};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a command's `run` answers: its result and the events describing it.
pub type Outcome<'a, T> = BoxFuture<'a, Result<(T, Vec<NewEvent>), DomainError>>;

/// Why a command changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    /// 409, optionally with the current state of the resource.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        current: Option<Value>,
    },
    /// 410: the resource was deleted (tombstone), with its tombstone.
    #[error("{message}")]
    Gone { message: String, current: Value },
    /// Refused with a protocol's own code (cashier: `DEVICE_NOT_FOUND`, ...).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// One write: rows and events in one transaction.
pub trait Command: Send + 'static {
    type Output: Send + 'static;

    /// The stream its events go to.
    fn room(&self) -> RoomKey;

    /// The connection that caused it, which must not get its events back
    /// (cashier terminals).
    fn exclude(&self) -> Option<ConnId> {
        None
    }

    /// Changes the rows; answers the result and the events describing it.
    fn run(self, txn: &DatabaseTransaction, now_ms: i64) -> Outcome<'_, Self::Output>;
}

/// Runs `cmd` and appends its events in one transaction; answers the result
/// and the committed records (for the caller to publish on the bus).
pub async fn execute<C: Command>(db: &Db, cmd: C) -> Result<(C::Output, Vec<Record>), DomainError> {
    let room = cmd.room();
    let txn = db.begin().await?;
    // Taken under the write lock, so writers' clocks follow commit order:
    // SQLite's (`BEGIN IMMEDIATE`), or on PostgreSQL the stream's row lock,
    // which serializes this room's commands across every node. There the
    // clock also never goes behind the stream's last event, whichever
    // node's clock wrote it.
    let now = stream_clock(db, &txn, &room, wire::now_ms()).await?;
    let (output, news) = cmd.run(&txn, now).await?;
    let events = event_log::append(&txn, &room, news, now, db.node).await?;
    txn.commit().await?;
    Ok((output, events))
}

/// The clock a write to `room` runs at in `txn`: `now`, on PostgreSQL never
/// behind the stream's last event whichever node's clock wrote it, taking
/// the stream's row lock (held until the commit), which orders this
/// transaction after every other node's write to the stream. On SQLite the
/// write lock of `BEGIN IMMEDIATE` already orders writers.
pub async fn stream_clock(
    db: &Db,
    txn: &DatabaseTransaction,
    room: &RoomKey,
    now: i64,
) -> Result<i64, DbErr> {
    if db.is_sqlite() {
        return Ok(now);
    }
    let last_ts = event_log::lock_stream(txn, room, now).await?;
    Ok(now.max(last_ts + 1))
}

/// A draft or order payload: any JSON but `null`. Its size is bounded by
/// the body limit alone (`HERALD_MAX_MESSAGE_BYTES`), as the contract says.
pub fn check_payload(payload: &serde_json::value::RawValue, what: &str) -> Result<(), DomainError> {
    if payload.get().trim() == "null" {
        return Err(DomainError::Validation(format!("{what} must not be null")));
    }
    Ok(())
}
