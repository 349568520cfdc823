//! The durable event log: appending events inside a caller's transaction,
//! reading them back for replay, and pruning them after retention. It hands
//! out [`Record`]s; wire bytes are built by whoever delivers them.
//!
//! Appending bumps `streams.last_seq` with an `UPDATE ... RETURNING` in the
//! same transaction, so seqs are contiguous per stream, are never reused after
//! a rollback, and writers of one stream serialize on its row.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use entity::{events, streams};
use sea_orm::{
    sea_query::{Alias, Expr, ExprTrait, OnConflict},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::value::RawValue;

use crate::core::events::{Record, RoomKey};

/// An event to append: its type, payload (JSON) and origin. The payload is
/// shared: a publish to many users holds one copy of it, not one per user.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub payload: Arc<RawValue>,
    pub origin: Option<String>,
    /// The `Idempotency-Key` of the write that caused it.
    pub mutation_id: Option<String>,
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
            payload: RawValue::from_string(text)
                .expect("serde_json output is valid JSON")
                .into(),
            origin,
            mutation_id: None,
        }
    }
}

/// Rows per `INSERT`: keeps the statement under SQLite's bound-variable limit.
const INSERT_CHUNK: usize = 500;

/// Appends `batch` to `room`'s stream in the caller's transaction, giving them
/// the next seqs and timestamps in order. The caller commits, then
/// publishes the result.
///
/// Timestamps are assigned here, under the stream's row lock, from the
/// stream's last one: each event is at least 1 ms after the one before it
/// (`now_ms` when the clock is ahead, else the previous one + 1), so a
/// `lastEventTs` names exactly one place in the stream, whatever the clock
/// does and however many writers race.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    batch: Vec<NewEvent>,
    now_ms: i64,
    node: Option<i64>,
) -> Result<Vec<Record>, DbErr> {
    let batches = BTreeMap::from([(room.clone(), batch)]);
    Ok(append_many(conn, batches, now_ms, node)
        .await?
        .pop()
        .unwrap_or_default())
}

/// [`append`] for many streams at once (a publish group): one statement
/// creates or bumps every stream's row (taking its lock) and one inserts
/// every event, however many streams. Streams are bumped in key order, so
/// two nodes' groups lock common streams in the same order and cannot
/// deadlock. Answers the events stream by stream, in key order.
pub async fn append_many<C: ConnectionTrait>(
    conn: &C,
    batches: BTreeMap<RoomKey, Vec<NewEvent>>,
    now_ms: i64,
    node: Option<i64>,
) -> Result<Vec<Vec<Record>>, DbErr> {
    let batches: Vec<(RoomKey, String, Vec<NewEvent>)> = batches
        .into_iter()
        .filter(|(_, b)| !b.is_empty())
        .map(|(room, b)| {
            let stream = room.stream_id();
            (room, stream, b)
        })
        .collect();
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    // The stream's next seqs and timestamps, for all streams at once:
    // INSERT .. ON CONFLICT (stream) DO UPDATE SET
    //   last_seq = streams.last_seq + excluded.last_seq,
    //   last_ts = CASE WHEN streams.last_ts >= now
    //             THEN streams.last_ts + excluded.last_seq
    //             ELSE now + excluded.last_seq - 1 END
    // RETURNING *, where excluded.last_seq is the stream's event count.
    let mut lasts: HashMap<String, (i64, i64)> = HashMap::with_capacity(batches.len());
    for chunk in batches.chunks(STREAM_CHUNK) {
        let rows = chunk.iter().map(|(_, stream, batch)| {
            let n = batch.len() as i64;
            streams::ActiveModel {
                stream: Set(stream.clone()),
                last_seq: Set(n),
                last_ts: Set(now_ms + n - 1),
                created_at: Set(now_ms),
            }
        });
        let current = |c: streams::Column| Expr::col((streams::Entity, c));
        let excluded = Expr::col((Alias::new("excluded"), streams::Column::LastSeq));
        let bump = OnConflict::column(streams::Column::Stream)
            .value(
                streams::Column::LastSeq,
                current(streams::Column::LastSeq).add(excluded.clone()),
            )
            .value(
                streams::Column::LastTs,
                Expr::case(
                    current(streams::Column::LastTs).gte(now_ms),
                    current(streams::Column::LastTs).add(excluded.clone()),
                )
                .finally(Expr::val(now_ms - 1).add(excluded)),
            )
            .to_owned();
        let updated = streams::Entity::insert_many(rows)
            .on_conflict(bump)
            .exec_with_returning(conn)
            .await?;
        for m in updated {
            lasts.insert(m.stream, (m.last_seq, m.last_ts));
        }
    }
    let mut rows: Vec<events::ActiveModel> = Vec::new();
    let mut out = Vec::with_capacity(batches.len());
    for (room, stream, batch) in batches {
        let (last, last_ts) = *lasts
            .get(&stream)
            .ok_or_else(|| DbErr::RecordNotFound(format!("stream {stream}")))?;
        let n = batch.len() as i64;
        let (first, first_ts) = (last - n + 1, last_ts - n + 1);
        rows.extend(batch.iter().enumerate().map(|(i, ev)| events::ActiveModel {
            stream: Set(stream.clone()),
            seq: Set(first + i as i64),
            event_type: Set(ev.kind.clone()),
            payload: Set(ev.payload.get().to_owned()),
            origin: Set(ev.origin.clone()),
            created_at: Set(first_ts + i as i64),
            node: Set(node),
            mutation_id: Set(ev.mutation_id.clone()),
        }));
        out.push(
            batch
                .into_iter()
                .enumerate()
                .map(|(i, ev)| Record {
                    room: room.clone(),
                    seq: Some((first + i as i64) as u64),
                    kind: ev.kind,
                    payload: ev.payload,
                    origin: ev.origin,
                    mutation_id: ev.mutation_id,
                    created_at: first_ts + i as i64,
                })
                .collect(),
        );
    }
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<events::ActiveModel> = rows.by_ref().take(INSERT_CHUNK).collect();
        events::Entity::insert_many(chunk)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(out)
}

/// Streams per upsert in [`append_many`] (four bound values each).
const STREAM_CHUNK: usize = 1000;

/// Takes `room`'s stream row lock in the caller's transaction and holds it
/// until commit; answers the stream's last timestamp.
///
/// This is what makes a command safe across processes: on one node the
/// writers ran one command after another, on several nodes every command of
/// one user (or venue) first waits here for the others to commit, so its
/// reads see their writes (last-write-wins, 409/410, statuses, positions,
/// job state) and its clock starts after theirs.
pub async fn lock_stream<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    now_ms: i64,
) -> Result<i64, DbErr> {
    let stream = room.stream_id();
    // One statement creates the row or locks it (a no-op update), and
    // answers it: a command's first round trip is also its lock.
    let locked = streams::Entity::insert(streams::ActiveModel {
        stream: Set(stream.clone()),
        last_seq: Set(0),
        last_ts: Set(0),
        created_at: Set(now_ms),
    })
    .on_conflict(
        OnConflict::column(streams::Column::Stream)
            .value(
                streams::Column::LastSeq,
                Expr::col((streams::Entity, streams::Column::LastSeq)),
            )
            .to_owned(),
    )
    .exec_with_returning(conn)
    .await?;
    debug_assert_eq!(locked.stream, stream);
    Ok(locked.last_ts)
}

/// The last seq given in `room`'s stream (0 when it has none yet).
pub async fn last_seq<C: ConnectionTrait>(conn: &C, room: &RoomKey) -> Result<u64, DbErr> {
    Ok(streams::Entity::find_by_id(room.stream_id())
        .one(conn)
        .await?
        .map(|m| m.last_seq as u64)
        .unwrap_or(0))
}

/// The record of a stored row.
pub fn to_record(room: &RoomKey, row: events::Model) -> Record {
    let payload = RawValue::from_string(row.payload)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"));
    Record {
        room: room.clone(),
        seq: Some(row.seq as u64),
        kind: row.event_type,
        payload: payload.into(),
        origin: row.origin,
        mutation_id: row.mutation_id,
        created_at: row.created_at,
    }
}

/// Stored rows of `room` with `since < seq <= upto`, in order (a replay
/// page: the caller bounds the range).
pub async fn fetch_rows<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    since: u64,
    upto: u64,
) -> Result<Vec<events::Model>, DbErr> {
    events::Entity::find()
        .filter(events::Column::Stream.eq(room.stream_id()))
        .filter(events::Column::Seq.gt(since as i64))
        .filter(events::Column::Seq.lte(upto as i64))
        .order_by_asc(events::Column::Seq)
        .all(conn)
        .await
}

/// Stored events of `room` with `since < seq <= upto`, in order.
pub async fn fetch_range<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    since: u64,
    upto: u64,
) -> Result<Vec<Record>, DbErr> {
    let rows = fetch_rows(conn, room, since, upto).await?;
    Ok(rows.into_iter().map(|r| to_record(room, r)).collect())
}

/// Whether every event of `room` with `since < seq <= upto` is still stored
/// and the first of them is inside the retention window (a gap reaching back
/// past it is not recovered even if its rows are not pruned yet). Reads two
/// numbers, not the rows: a replay decides before it sends anything.
pub async fn gap_is_stored<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    since: u64,
    upto: u64,
    retention_floor_ms: i64,
) -> Result<bool, DbErr> {
    if upto <= since {
        return Ok(true);
    }
    let first: Option<(i64, i64)> = events::Entity::find()
        .select_only()
        .column(events::Column::Seq)
        .column(events::Column::CreatedAt)
        .filter(events::Column::Stream.eq(room.stream_id()))
        .filter(events::Column::Seq.eq((since + 1) as i64))
        .into_tuple()
        .one(conn)
        .await?;
    let Some((_, created_at)) = first else {
        return Ok(false);
    };
    if created_at < retention_floor_ms {
        return Ok(false);
    }
    let count = events::Entity::find()
        .filter(events::Column::Stream.eq(room.stream_id()))
        .filter(events::Column::Seq.gt(since as i64))
        .filter(events::Column::Seq.lte(upto as i64))
        .count(conn)
        .await?;
    Ok(count == upto - since)
}

/// The seq a `lastEventTs` names: the last event of `room` created at or
/// before `after_ms` (timestamps strictly increase with seq, so this is
/// exact), as the seq before the first one created after it; `upto` when
/// none is newer.
pub async fn seq_at_time<C: ConnectionTrait>(
    conn: &C,
    room: &RoomKey,
    after_ms: i64,
    upto: u64,
) -> Result<u64, DbErr> {
    let first_after: Option<i64> = events::Entity::find()
        .select_only()
        .column(events::Column::Seq)
        .filter(events::Column::Stream.eq(room.stream_id()))
        .filter(events::Column::CreatedAt.gt(after_ms))
        .filter(events::Column::Seq.lte(upto as i64))
        .order_by_asc(events::Column::Seq)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(first_after
        .map(|s| (s as u64).saturating_sub(1))
        .unwrap_or(upto))
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

/// Rows one prune statement deletes at most: a large backlog is removed in
/// many short write transactions, never one long one that holds writers up.
pub const PRUNE_CHUNK: u64 = 2000;

/// Deletes up to [`PRUNE_CHUNK`] events created before `before_ms`; answers
/// how many (the caller repeats while it gets a full chunk).
pub async fn prune_chunk<C: ConnectionTrait>(conn: &C, before_ms: i64) -> Result<u64, DbErr> {
    let stmt = sea_orm::Statement::from_sql_and_values(
        conn.get_database_backend(),
        match conn.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                "DELETE FROM events WHERE ctid IN \
                 (SELECT ctid FROM events WHERE created_at < $1 LIMIT $2)"
            }
            _ => {
                "DELETE FROM events WHERE rowid IN \
                 (SELECT rowid FROM events WHERE created_at < ? LIMIT ?)"
            }
        },
        [before_ms.into(), (PRUNE_CHUNK as i64).into()],
    );
    Ok(conn.execute_raw(stmt).await?.rows_affected())
}

/// Forgets `Idempotency-Key`s answered before `before_ms`.
pub async fn prune_idempotency_keys<C: ConnectionTrait>(
    conn: &C,
    before_ms: i64,
) -> Result<u64, DbErr> {
    use entity::idempotency_keys;
    Ok(idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::CreatedAt.lt(before_ms))
        .exec(conn)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests;
