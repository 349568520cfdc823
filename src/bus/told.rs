//! What one node tells the others: [`Told`] rows in `node_messages` (a
//! transient event, a kick, a job cancel), read by every other node's
//! tailer, which hands each to whoever acts on it here through a
//! [`Recipient`] (see [`Links`](super::Links)). Transient events of this
//! node's writers go out through the [`Forwarder`].

use std::sync::Arc;

use actix::prelude::*;
use entity::node_messages;
use sea_orm::{ActiveValue::Set, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::{
    core::{
        events::{Event, RoomKey, SharedEvent},
        messages::PresenceChange,
        wire,
    },
    store::db::Db,
};

/// What one node tells the others (a `node_messages` row).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Told {
    /// A transient event: its room, type, origin, time and wire frame.
    Transient {
        stream: String,
        #[serde(rename = "type")]
        kind: String,
        origin: Option<String>,
        created_at: i64,
        frame: String,
    },
    /// Close this connection with 4003 (an admin on another node asked).
    Kick { conn_id: String },
    /// Stop this running job between two orders.
    CancelJob {
        user_id: String,
        job_id: String,
        by: String,
    },
    /// Devices that joined or left on the sending node.
    Presence { changes: Vec<PresenceChange> },
}

impl Told {
    fn kind(&self) -> &'static str {
        match self {
            Told::Transient { .. } => "transient",
            Told::Kick { .. } => "kick",
            Told::CancelJob { .. } => "cancel_job",
            Told::Presence { .. } => "presence",
        }
    }

    pub fn transient(event: &Event) -> Told {
        Told::Transient {
            stream: event.room.stream_id(),
            kind: event.kind.clone(),
            origin: event.origin.clone(),
            created_at: event.created_at,
            frame: event.frame.to_string(),
        }
    }

    /// The event a `Transient` describes (none for another kind, or a
    /// stream name this version does not know).
    pub fn into_event(self) -> Option<SharedEvent> {
        let Told::Transient {
            stream,
            kind,
            origin,
            created_at,
            frame,
        } = self
        else {
            return None;
        };
        Some(Arc::new(Event {
            room: RoomKey::parse(&stream)?,
            seq: None,
            kind,
            origin,
            created_at,
            frame: frame.into(),
        }))
    }
}

/// Writes `told` for `target` (none: every other node).
pub async fn tell(db: &Db, node: i64, target: Option<i64>, told: &[Told]) -> Result<(), DbErr> {
    if told.is_empty() {
        return Ok(());
    }
    let now = wire::now_ms();
    let rows = told.iter().map(|t| node_messages::ActiveModel {
        source: Set(node),
        target: Set(target),
        kind: Set(t.kind().to_owned()),
        body: Set(serde_json::to_string(t).expect("messages serialize")),
        created_at: Set(now),
        ..Default::default()
    });
    node_messages::Entity::insert_many(rows)
        .exec_without_returning(&db.write)
        .await?;
    Ok(())
}

/// Writes one message for `target` (PostgreSQL); answers its transaction id,
/// which the target's `read_horizon` passes once it has read (and so acted
/// on) it.
pub async fn tell_one(db: &Db, node: i64, target: i64, told: &Told) -> Result<i64, DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO node_messages (source, target, kind, body, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING txid",
        [
            node.into(),
            target.into(),
            told.kind().into(),
            serde_json::to_string(told)
                .expect("messages serialize")
                .into(),
            wire::now_ms().into(),
        ],
    );
    let row = db
        .write
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?;
    row.try_get("", "txid")
}

/// Waits up to `limit` for `target` to have read a message of transaction
/// `txid`; answers whether it did.
pub async fn read_by(db: &Db, target: i64, txid: i64, limit: std::time::Duration) -> bool {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let deadline = std::time::Instant::now() + limit;
    loop {
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT read_horizon FROM nodes WHERE id = $1",
            [target.into()],
        );
        if let Ok(Some(row)) = db.read.query_one_raw(stmt).await {
            if row
                .try_get::<i64>("", "read_horizon")
                .is_ok_and(|h| h > txid)
            {
                return true;
            }
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Forwards this node's transient events to the other nodes (PostgreSQL).
/// The events that arrive while one insert is in flight go out together in
/// the next (at most [`FORWARD_MAX`] rows), in the order they were
/// published: a burst (3,000 devices' `PRESENCE_JOINED`, a job's progress
/// for many users) is a few statements, not one per event.
pub struct Forwarder {
    db: Db,
    node: i64,
    waiting: Vec<Told>,
    inserting: bool,
}

/// Rows per insert at most (five bound values each).
const FORWARD_MAX: usize = 1000;

/// Events waiting at most: past this (the database is down or far behind)
/// new transient events are not forwarded, as the contract allows, rather
/// than held without bound.
const WAITING_MAX: usize = 50_000;

impl Forwarder {
    pub fn new(db: Db, node: i64) -> Self {
        Forwarder {
            db,
            node,
            waiting: Vec::new(),
            inserting: false,
        }
    }

    /// Inserts what waits, unless an insert is in flight (it calls this
    /// again when it ends).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.inserting || self.waiting.is_empty() {
            return;
        }
        let rest = self.waiting.split_off(self.waiting.len().min(FORWARD_MAX));
        let told = std::mem::replace(&mut self.waiting, rest);
        self.inserting = true;
        let (db, node) = (self.db.clone(), self.node);
        ctx.spawn(
            async move {
                if let Err(err) = tell(&db, node, None, &told).await {
                    // Transient events are best-effort by contract: the
                    // devices on this node got them; the others miss them.
                    log::warn!(
                        "forwarding {} transient event(s) to other nodes failed: {err}",
                        told.len()
                    );
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                act.inserting = false;
                act.flush(ctx);
            }),
        );
    }
}

impl Actor for Forwarder {
    type Context = Context<Self>;
}

/// Transient events a local writer published.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forward(pub Vec<SharedEvent>);

impl Handler<Forward> for Forwarder {
    type Result = ();

    fn handle(&mut self, msg: Forward, ctx: &mut Self::Context) {
        if self.waiting.len() + msg.0.len() > WAITING_MAX {
            log::warn!(
                "{} transient event(s) not forwarded to other nodes: {} wait for the database",
                msg.0.len(),
                self.waiting.len()
            );
        } else {
            self.waiting
                .extend(msg.0.iter().map(|e| Told::transient(e)));
        }
        self.flush(ctx);
    }
}
