//! Receipts: a write's stored answer under its `Idempotency-Key`.
//!
//! A write that carries a key claims it in the write's own transaction
//! (a row of `idempotency_keys`), runs, and fills the row with the answer
//! it gives (status and body) before the commit: the change and its
//! receipt commit together or not at all. A repeat finds the row and gets
//! the same answer without running again; on PostgreSQL a concurrent
//! repeat (any node) waits on the row's unique key until the first commits
//! and then reads it. A rejection the command decides (404, 409, 410, ...)
//! is stored the same way, with the command's changes rolled back to a
//! savepoint; a failure of the database is not stored, so a retry runs
//! again. [`WithReceipt`] wraps any [`Command`] so; [`store`] keeps a
//! rejection decided before any command ran.

use std::sync::Arc;

use entity::idempotency_keys;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, TransactionTrait,
};

use crate::{
    core::events::{ConnId, RoomKey},
    store::{
        command::{Command, DomainError, Outcome},
        db::Db,
    },
};

/// A write's key, scoped and hashed at the edge.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The row's key: the caller and the user it acts for, and the key.
    pub id: String,
    /// SHA-256 (hex) of the route, the resource and the parsed body: the
    /// same key with another of these is `IDEMPOTENCY_KEY_REUSED`.
    pub request_hash: String,
    /// The key as the client sent it: its events' `mutationId`.
    pub mutation_id: Arc<str>,
    /// How long a stored answer counts (`HERALD_IDEMPOTENCY_SECS`).
    pub ttl_ms: i64,
}

/// An answer as it was (or is to be) given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

/// A keyed write's answer, and whether it is a repeat's.
#[derive(Debug, Clone)]
pub struct Reply {
    pub stored: Stored,
    pub replayed: bool,
}

/// What a lookup finds under a key.
#[derive(Debug)]
pub enum Found {
    Nothing,
    /// The stored answer of the same request.
    Answer(Stored),
    /// The key came with another request.
    Reused,
    /// An answer older than the key's time: as if there were none.
    Expired,
}

/// The error a reused key gets (409, never stored).
pub fn reused() -> DomainError {
    DomainError::Conflict {
        code: "IDEMPOTENCY_KEY_REUSED",
        message: "this Idempotency-Key was used with another request (route, resource or body); \
                  use a new key for a new write"
            .into(),
        current: None,
    }
}

/// Looks `receipt` up (a claim not yet filled is nothing; a row past its
/// time is [`Found::Expired`]).
pub async fn lookup<C: ConnectionTrait>(
    conn: &C,
    receipt: &Receipt,
    now_ms: i64,
) -> Result<Found, DbErr> {
    let Some(row) = idempotency_keys::Entity::find_by_id(receipt.id.clone())
        .one(conn)
        .await?
    else {
        return Ok(Found::Nothing);
    };
    if row.created_at < now_ms - receipt.ttl_ms {
        return Ok(Found::Expired);
    }
    if row.request_hash != receipt.request_hash {
        return Ok(Found::Reused);
    }
    if row.status == 0 {
        return Ok(Found::Nothing);
    }
    Ok(Found::Answer(Stored {
        status: row.status as u16,
        body: row.response,
    }))
}

/// Takes the key in `txn` (an empty row, filled before the commit); false
/// when a committed row holds it. On PostgreSQL this waits for a
/// concurrent transaction that took it first.
async fn claim(txn: &DatabaseTransaction, receipt: &Receipt, now_ms: i64) -> Result<bool, DbErr> {
    let inserted = idempotency_keys::Entity::insert(idempotency_keys::ActiveModel {
        key: Set(receipt.id.clone()),
        request_hash: Set(receipt.request_hash.clone()),
        response: Set(String::new()),
        created_at: Set(now_ms),
        status: Set(0),
    })
    .on_conflict_do_nothing_on([idempotency_keys::Column::Key])
    .exec_without_returning(txn)
    .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n == 1))
}

async fn fill(txn: &DatabaseTransaction, receipt: &Receipt, stored: &Stored) -> Result<(), DbErr> {
    idempotency_keys::Entity::update_many()
        .col_expr(
            idempotency_keys::Column::Status,
            (stored.status as i32).into(),
        )
        .col_expr(
            idempotency_keys::Column::Response,
            stored.body.clone().into(),
        )
        .filter(idempotency_keys::Column::Key.eq(receipt.id.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Takes the key, or answers what holds it: `None` when this write runs;
/// a stored answer's reply; `reused` for another request's key. A row past
/// its time is removed by the lookup and the key taken again.
async fn claim_or_answer(
    txn: &DatabaseTransaction,
    receipt: &Receipt,
    now_ms: i64,
) -> Result<Option<Reply>, DomainError> {
    for _ in 0..2 {
        if claim(txn, receipt, now_ms).await? {
            return Ok(None);
        }
        match lookup(txn, receipt, now_ms).await? {
            Found::Answer(stored) => {
                return Ok(Some(Reply {
                    stored,
                    replayed: true,
                }))
            }
            Found::Reused => return Err(reused()),
            Found::Expired => {
                idempotency_keys::Entity::delete_by_id(receipt.id.clone())
                    .exec(txn)
                    .await?;
            }
            Found::Nothing => {}
        }
    }
    Err(DomainError::Db(DbErr::Custom(
        "an Idempotency-Key's row could be neither taken nor read; retry".into(),
    )))
}

/// Stores a rejection decided before any command ran (a body that does not
/// parse, a forbidden user, ...) in a transaction of its own; answers the
/// stored answer, which is another's if a concurrent request stored first.
pub async fn store(
    db: &Db,
    receipt: &Receipt,
    stored: Stored,
    now_ms: i64,
) -> Result<Reply, DomainError> {
    let txn = db.begin().await?;
    if let Some(reply) = claim_or_answer(&txn, receipt, now_ms).await? {
        txn.commit().await?;
        return Ok(reply);
    }
    fill(&txn, receipt, &stored).await?;
    txn.commit().await?;
    Ok(Reply {
        stored,
        replayed: false,
    })
}

/// How a command's result is answered over HTTP; `None` for an answer
/// that must not be stored (a 5xx, 429, 503: a retry runs again).
pub type Render<O> = Box<dyn FnOnce(Result<&O, &DomainError>) -> Option<Stored> + Send>;

/// A command run under a receipt: a repeat answers the stored reply; a
/// first run's events carry the key as `mutationId`.
pub struct WithReceipt<C: Command> {
    pub command: C,
    pub receipt: Receipt,
    pub render: Render<C::Output>,
}

impl<C: Command> Command for WithReceipt<C> {
    type Output = Reply;

    fn room(&self) -> RoomKey {
        self.command.room()
    }

    fn exclude(&self) -> Option<ConnId> {
        self.command.exclude()
    }

    fn run(self, txn: &DatabaseTransaction, now_ms: i64) -> Outcome<'_, Reply> {
        Box::pin(async move {
            let WithReceipt {
                command,
                receipt,
                render,
            } = self;
            if let Some(reply) = claim_or_answer(txn, &receipt, now_ms).await? {
                return Ok((reply, Vec::new()));
            }
            let savepoint = txn.begin().await?;
            match command.run(&savepoint, now_ms).await {
                Ok((output, mut events)) => {
                    savepoint.commit().await?;
                    let Some(stored) = render(Ok(&output)) else {
                        return Err(DomainError::Db(DbErr::Custom(
                            "a write's answer could not be stored".into(),
                        )));
                    };
                    fill(txn, &receipt, &stored).await?;
                    for event in &mut events {
                        event.mutation_id = Some(receipt.mutation_id.to_string());
                    }
                    let reply = Reply {
                        stored,
                        replayed: false,
                    };
                    Ok((reply, events))
                }
                Err(DomainError::Db(err)) => Err(DomainError::Db(err)),
                Err(err) => {
                    savepoint.rollback().await?;
                    match render(Err(&err)) {
                        Some(stored) => {
                            fill(txn, &receipt, &stored).await?;
                            let reply = Reply {
                                stored,
                                replayed: false,
                            };
                            Ok((reply, Vec::new()))
                        }
                        None => Err(err),
                    }
                }
            }
        })
    }
}

/// A write's result: as it is (no key), or its keyed reply.
pub enum Written<O> {
    Plain(O),
    Keyed(Reply),
}

/// Runs `cmd` under `receipt` if there is one; answers the result and the
/// committed records (for the caller to publish), like
/// [`execute`](super::command::execute).
pub async fn execute<C: Command>(
    db: &Db,
    cmd: C,
    receipt: Option<(Receipt, Render<C::Output>)>,
) -> Result<(Written<C::Output>, Vec<crate::core::events::Record>), DomainError> {
    match receipt {
        None => {
            let (output, records) = super::command::execute(db, cmd).await?;
            Ok((Written::Plain(output), records))
        }
        Some((receipt, render)) => {
            let command = WithReceipt {
                command: cmd,
                receipt,
                render,
            };
            let (reply, records) = super::command::execute(db, command).await?;
            Ok((Written::Keyed(reply), records))
        }
    }
}
