//! The tailer: how one node hears what the others committed (PostgreSQL).
//!
//! **What is read.** The tailer reads `events` and `node_messages` rows in
//! rounds, each bounded by herald's own writers only ([`horizon`](mod@horizon)): rows of
//! a transaction that has ended are read at once, rows of one still running
//! in herald's database when it ends. A transaction of another database,
//! or a long one in this database, delays nothing but its own rows; a long
//! one is named in the log (backend pid, user, application) after 5 s, and
//! once a minute while it stays open. Within a stream seqs are given under
//! the stream's row lock, so one stream's rows arrive in seq order or
//! nearly (rooms put them in order and drop ones they already have).
//!
//! **Waking.** A statement trigger sends `NOTIFY herald` (empty; PostgreSQL
//! sends one per transaction, at its commit) and the tailer reads at once;
//! notifications that arrive while it reads make one more round, so a busy
//! node reads in batches. At idle nothing is read but every
//! `HERALD_POLL_MS`, in case a notification was lost (the `LISTEN`
//! connection drops; it is made again with backoff and a round follows).
//!
//! **What it read** (several nodes): the node's `read_horizon` in `nodes`
//! says which `node_messages` it has read, so messages are deleted only
//! once every live node has read them, and an admin on another node can
//! tell that a kick was carried out.
//!
//! When PostgreSQL is unreachable, reads fail and are retried with the
//! same cursor: nothing is skipped, delivery resumes where it stopped.

mod horizon;
mod listen;

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
use tokio::sync::Notify;

pub use listen::Stopper;

use crate::{
    bus::{told::Told, Bus, Links},
    core::{
        events::{Event, RoomKey, SharedEvent},
        messages::{CancelRun, Kick, RemotePresence},
        metrics::METRICS,
        wire,
    },
    store::{db::Db, event_log},
};
use horizon::{horizon, ids_literal, Cursor, Round};

/// Rows one read takes at most (it reads the next page at once).
const PAGE: i64 = 2000;
/// How long a transaction runs before the log names it.
const NAME_AFTER: Duration = Duration::from_secs(5);

pub struct Tailer {
    pub db: Db,
    pub url: String,
    pub node: i64,
    pub poll: Duration,
    pub bus: Bus,
    pub links: Links,
    /// What this node has read of `node_messages` (see
    /// [`Cursor::read_horizon`]): the heartbeat keeps it in `nodes`, and the
    /// tailer writes it at once after reading messages someone may be
    /// waiting on (a kick's answer).
    pub read_horizon: Arc<AtomicI64>,
}

#[derive(Debug, FromQueryResult)]
struct EventRow {
    txid: i64,
    stream: String,
    seq: i64,
    event_type: String,
    payload: String,
    origin: Option<String>,
    mutation_id: Option<String>,
    created_at: i64,
    node: Option<i64>,
}

#[derive(Debug, FromQueryResult)]
struct ToldRow {
    txid: i64,
    id: i64,
    body: String,
}

impl Tailer {
    /// Starts reading from now: rows committed before this node started are
    /// in the database, where rooms read their stream from. Returns once
    /// its starting point is read, so the caller starts serving only after
    /// it: a socket that joins a room first and reads the stream from the
    /// database cannot miss what commits between that read and the
    /// tailer's start (what both see, the room drops once).
    pub async fn start(self) -> Stopper {
        let wake = Arc::new(Notify::new());
        let stopper = listen::spawn(self.url.clone(), wake.clone());
        let cursor = loop {
            match horizon(&self.db).await {
                Ok(h) => break Cursor::starting_at(&h),
                Err(err) => {
                    log::error!("tailer: cannot read the log's horizon ({err}); retrying");
                    tokio::time::sleep(self.poll).await;
                }
            }
        };
        actix_web::rt::spawn(async move { self.run(wake, cursor).await });
        stopper
    }

    async fn run(self, wake: Arc<Notify>, mut cursor: Cursor) {
        log::info!(
            "tailer: reading other nodes' events from transaction {} (on NOTIFY, and every {:?})",
            cursor.next,
            self.poll
        );
        loop {
            let timed = tokio::select! {
                _ = wake.notified() => false,
                _ = tokio::time::sleep(self.poll) => true,
            };
            match self.read(&mut cursor).await {
                Ok((events, told)) => {
                    if events + told > 0 && timed {
                        METRICS.poll_fallbacks.inc();
                    }
                    self.name_long_transactions(&mut cursor).await;
                    let horizon = cursor.read_horizon();
                    self.read_horizon.store(horizon, Ordering::SeqCst);
                    if told > 0 {
                        if let Err(err) = self.write_read_horizon(horizon).await {
                            log::warn!("tailer: keeping what it read failed: {err}");
                        }
                    }
                }
                Err(err) => {
                    log::warn!("tailer: reading the shared log failed ({err}); retrying from the same place");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    wake.notify_one();
                }
            }
            METRICS.tailer_waiting.set(cursor.waiting.len() as i64);
            METRICS
                .tailer_oldest_waiting
                .set(cursor.oldest_waiting().map_or(0.0, |d| d.as_secs_f64()));
        }
    }

    /// One round: everything readable now; answers how many event rows and
    /// node messages it read.
    async fn read(&self, cursor: &mut Cursor) -> Result<(usize, usize), DbErr> {
        let h = horizon(&self.db).await?;
        let round = cursor.round(&h);
        let events = self.read_events(&round).await?;
        let told = self.read_told(&round).await?;
        cursor.advance(&round);
        METRICS.tailer_rows.inc_by((events + told) as u64);
        Ok((events, told))
    }

    /// The round's `WHERE`: its range but the running ones, and the ended ones.
    fn round_values(round: &Round) -> [sea_orm::Value; 4] {
        [
            round.next.into(),
            round.xmax.into(),
            ids_literal(round.skip.iter().copied()).into(),
            ids_literal(round.ended.iter().copied()).into(),
        ]
    }

    async fn read_events(&self, round: &Round) -> Result<usize, DbErr> {
        let mut after: (i64, String, i64) = (i64::MIN, String::new(), -1);
        let mut found = 0;
        loop {
            let mut values = Self::round_values(round).to_vec();
            values.extend([
                after.0.into(),
                after.1.clone().into(),
                after.2.into(),
                PAGE.into(),
            ]);
            let rows = EventRow::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT txid, stream, seq, event_type, payload, origin, created_at, node, mutation_id \
                 FROM events \
                 WHERE ((txid >= $1 AND txid < $2 AND NOT (txid = ANY($3::text::bigint[]))) \
                        OR txid = ANY($4::text::bigint[])) \
                   AND (txid, stream, seq) > ($5, $6, $7) \
                 ORDER BY txid, stream, seq LIMIT $8",
                values,
            ))
            .all(&self.db.read)
            .await?;
            let n = rows.len();
            found += n;
            if let Some(last) = rows.last() {
                after = (last.txid, last.stream.clone(), last.seq);
            }
            self.deliver(rows);
            if (n as i64) < PAGE {
                return Ok(found);
            }
        }
    }

    async fn read_told(&self, round: &Round) -> Result<usize, DbErr> {
        let mut after: (i64, i64) = (i64::MIN, -1);
        let mut found = 0;
        loop {
            let mut values = Self::round_values(round).to_vec();
            values.extend([
                after.0.into(),
                after.1.into(),
                self.node.into(),
                PAGE.into(),
            ]);
            let rows = ToldRow::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT txid, id, body FROM node_messages \
                 WHERE ((txid >= $1 AND txid < $2 AND NOT (txid = ANY($3::text::bigint[]))) \
                        OR txid = ANY($4::text::bigint[])) \
                   AND (txid, id) > ($5, $6) AND source <> $7 \
                   AND (target IS NULL OR target = $7) \
                 ORDER BY txid, id LIMIT $8",
                values,
            ))
            .all(&self.db.read)
            .await?;
            let n = rows.len();
            found += n;
            if let Some(last) = rows.last() {
                after = (last.txid, last.id);
            }
            self.obey(rows);
            if (n as i64) < PAGE {
                return Ok(found);
            }
        }
    }

    /// Names the transactions that have held their own rows back for long.
    async fn name_long_transactions(&self, cursor: &mut Cursor) {
        for (xid, open) in cursor.long_running(NAME_AFTER) {
            let who = horizon::holder(&self.db, xid)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| "a backend of this database".into());
            log::warn!(
                "tailer: transaction {xid} ({who}) has been open for {} s in herald's database; \
                 other transactions' events are delivered meanwhile, its own when it commits",
                open.as_secs()
            );
        }
    }

    /// Says which node messages this node has read (`nodes.read_horizon`).
    async fn write_read_horizon(&self, horizon: i64) -> Result<(), DbErr> {
        self.db
            .write
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE nodes SET read_horizon = $1 WHERE id = $2",
                [horizon.into(), self.node.into()],
            ))
            .await?;
        Ok(())
    }

    fn deliver(&self, rows: Vec<EventRow>) {
        let now = wire::now_ms();
        let events: Vec<SharedEvent> = rows
            .into_iter()
            // This node delivered its own rows after their commit.
            .filter(|r| r.node != Some(self.node))
            .filter_map(|r| {
                let room = RoomKey::parse(&r.stream)?;
                let lag = (now - r.created_at).max(0) as f64 / 1000.0;
                METRICS.tailer_lag.observe(lag);
                METRICS.tailer_lag_last.set(lag);
                // The same event (and frame) a replay builds from this row.
                Some(Event::from_record(&event_log::to_record(
                    &room,
                    entity::events::Model {
                        stream: r.stream,
                        seq: r.seq,
                        event_type: r.event_type,
                        payload: r.payload,
                        origin: r.origin,
                        created_at: r.created_at,
                        node: r.node,
                        mutation_id: r.mutation_id,
                    },
                )))
            })
            .collect();
        if !events.is_empty() {
            self.bus.deliver_remote(events);
        }
    }

    fn obey(&self, rows: Vec<ToldRow>) {
        let mut transient = Vec::new();
        for row in rows {
            match serde_json::from_str::<Told>(&row.body) {
                Ok(t @ Told::Transient { .. }) => transient.extend(t.into_event()),
                Ok(Told::Kick { conn_id }) => self.links.kick.do_send(Kick { conn_id }),
                Ok(Told::CancelJob {
                    user_id,
                    job_id,
                    by,
                }) => self.links.cancel.do_send(CancelRun {
                    user_id,
                    job_id,
                    by,
                }),
                Ok(Told::Presence { changes }) => {
                    self.links.presence.do_send(RemotePresence(changes))
                }
                Err(err) => log::warn!("tailer: ignoring node message {}: {err}", row.id),
            }
        }
        if !transient.is_empty() {
            self.bus.deliver_remote(transient);
        }
    }
}
