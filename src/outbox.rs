//! The durable event log: appending events inside a caller's transaction,
//! reading them back for replay, and pruning them after retention.
//!
//! Appending bumps `streams.last_seq` with an `UPDATE ... RETURNING` in the
//! same transaction, so seqs are contiguous per stream, are never reused after
//! a rollback, and writers of one stream serialize on its row.

use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::value::RawValue;

use entity::{events, streams};

use crate::events::{Event, RoomKey, SharedEvent};

/// An event to append: its type, payload (JSON) and origin.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub payload: Box<RawValue>,
    pub origin: Option<String>,
}

impl NewEvent {
    pub fn new(
        kind: impl Into<String>,
        payload: &impl serde::Serialize,
        origin: Option<String>,
    ) -> Self {
        let text = serde_json::to_string(payload).expect("payloads are plain JSON values");
        NewEvent {
            kind: kind.into(),
            payload: RawValue::from_string(text).expect("serde_json output is valid JSON"),
            origin,
        }
    }
}

/// Rows per `INSERT`: keeps the statement under SQLite's bound-variable limit.
const INSERT_CHUNK: usize = 500;

/// Appends `batch` to `room`'s stream in the caller's transaction, giving them
/// the next seqs in order. The caller commits, then dispatches the result.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    batch: Vec<NewEvent>,
    now_ms: i64,
) -> Result<Vec<SharedEvent>, DbErr> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let stream = room.stream_id();
    streams::Entity::insert(streams::ActiveModel {
        stream: Set(stream.clone()),
        last_seq: Set(0),
        created_at: Set(now_ms),
    })
    .on_conflict_do_nothing_on([streams::Column::Stream])
    .exec_without_returning(conn)
    .await?;
    let n = batch.len() as i64;
    let updated = streams::Entity::update_many()
        .col_expr(
            streams::Column::LastSeq,
            Expr::col(streams::Column::LastSeq).add(n),
        )
        .filter(streams::Column::Stream.eq(stream.as_str()))
        .exec_with_returning(conn)
        .await?;
    let last = updated
        .first()
        .map(|m| m.last_seq)
        .ok_or_else(|| DbErr::RecordNotFound(format!("stream {stream}")))?;
    let first = last - n + 1;

    let rows: Vec<events::ActiveModel> = batch
        .iter()
        .enumerate()
        .map(|(i, ev)| events::ActiveModel {
            stream: Set(stream.clone()),
            seq: Set(first + i as i64),
            event_type: Set(ev.kind.clone()),
            payload: Set(ev.payload.get().to_owned()),
            origin: Set(ev.origin.clone()),
            created_at: Set(now_ms),
        })
        .collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        events::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(batch
        .into_iter()
        .enumerate()
        .map(|(i, ev)| {
            Event::new(
                room.clone(),
                Some((first + i as i64) as u64),
                ev.kind,
                &ev.payload,
                ev.origin,
                now_ms,
            )
        })
        .collect())
}

/// The last seq given in `room`'s stream (0 when it has none yet).
pub async fn last_seq<C: ConnectionTrait>(conn: &C, room: &RoomKey) -> Result<u64, DbErr> {
    Ok(streams::Entity::find_by_id(room.stream_id())
        .one(conn)
        .await?
        .map(|m| m.last_seq as u64)
        .unwrap_or(0))
}

fn to_event(room: &RoomKey, row: events::Model) -> SharedEvent {
    let payload = RawValue::from_string(row.payload)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"));
    Event::new(
        room.clone(),
        Some(row.seq as u64),
        row.event_type,
        &payload,
        row.origin,
        row.created_at,
    )
}

/// Stored events of `room` with `since < seq <= upto`, in order.
pub async fn fetch_range<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    since: u64,
    upto: u64,
) -> Result<Vec<SharedEvent>, DbErr> {
    let rows = events::Entity::find()
        .filter(events::Column::Stream.eq(room.stream_id()))
        .filter(events::Column::Seq.gt(since as i64))
        .filter(events::Column::Seq.lte(upto as i64))
        .order_by_asc(events::Column::Seq)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| to_event(room, r)).collect())
}

/// Stored events of `room` created after `after_ms` with `seq <= upto`, in order.
pub async fn fetch_after_time<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    after_ms: i64,
    upto: u64,
) -> Result<Vec<SharedEvent>, DbErr> {
    let rows = events::Entity::find()
        .filter(events::Column::Stream.eq(room.stream_id()))
        .filter(events::Column::CreatedAt.gt(after_ms))
        .filter(events::Column::Seq.lte(upto as i64))
        .order_by_asc(events::Column::Seq)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| to_event(room, r)).collect())
}

/// Every user that has a stream (for `all: true` publishes).
pub async fn user_streams<C: ConnectionTrait>(conn: &C) -> Result<Vec<String>, DbErr> {
    let rows: Vec<String> = streams::Entity::find()
        .select_only()
        .column(streams::Column::Stream)
        .filter(streams::Column::Stream.starts_with("user:"))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|s| s.strip_prefix("user:").map(str::to_owned))
        .collect())
}

/// Deletes events created before `before_ms`; answers how many.
pub async fn prune<C: ConnectionTrait>(conn: &C, before_ms: i64) -> Result<u64, DbErr> {
    let res = events::Entity::delete_many()
        .filter(events::Column::CreatedAt.lt(before_ms))
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}
