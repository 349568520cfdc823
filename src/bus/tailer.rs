//! The tailer: how one node hears what the others committed (PostgreSQL).
//!
//! **The cursor.** Commit order is not id order: a transaction that got its
//! id first may commit last. So the tailer never reads past the oldest
//! transaction still running: a row is read only once its transaction id
//! is below `pg_snapshot_xmin(pg_current_snapshot())`, when every
//! transaction with a smaller id has committed or aborted and no row can
//! appear behind the cursor any more. The cursor is the last row read,
//! `(txid, stream, seq)` for events and `(txid, id)` for node messages
//! (the column defaults `pg_current_xact_id()` fill `txid`). Within a
//! stream seqs are given under the stream's row lock, so one stream's rows
//! arrive in seq order or nearly (rooms put them in order and drop ones
//! they already have).
//!
//! **Waking.** A statement trigger sends `NOTIFY herald` (empty; PostgreSQL
//! sends one per transaction) and the tailer reads at once. A notification
//! can be lost (the `LISTEN` connection drops; it is made again with
//! backoff), so the tailer also reads every `HERALD_POLL_MS`: a lost
//! notification only delays delivery. While other writers are mid-commit
//! it reads again shortly, since their rows become readable only when the
//! oldest of them ends.
//!
//! When PostgreSQL is unreachable, reads fail and are retried with the
//! same cursor: nothing is skipped, delivery resumes where it stopped.

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
use tokio::sync::Notify;

use crate::{
    bus::{told::Told, Bus, Links},
    core::{
        events::{Event, RoomKey, SharedEvent},
        messages::{CancelRun, Kick},
        metrics::METRICS,
        wire,
    },
    store::{db::Db, event_log},
};

/// Rows one read takes at most (it reads again at once when it got as many).
const PAGE: i64 = 2000;
/// Read again this soon while other transactions are still running.
const IN_FLIGHT_RETRY: Duration = Duration::from_millis(3);
/// The `LISTEN` connection's first and longest wait before reconnecting.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

pub struct Tailer {
    pub db: Db,
    pub url: String,
    pub node: i64,
    pub poll: Duration,
    pub bus: Bus,
    pub links: Links,
}

#[derive(Debug, FromQueryResult)]
struct Horizon {
    xmin: i64,
    xmax: i64,
}

#[derive(Debug, FromQueryResult)]
struct EventRow {
    txid: i64,
    stream: String,
    seq: i64,
    event_type: String,
    payload: String,
    origin: Option<String>,
    created_at: i64,
    node: Option<i64>,
}

#[derive(Debug, FromQueryResult)]
struct ToldRow {
    txid: i64,
    id: i64,
    body: String,
}

struct Cursor {
    events: (i64, String, i64),
    told: (i64, i64),
}

impl Tailer {
    /// Starts reading from now: rows committed before this node started are
    /// in the database, where rooms read their stream from.
    pub fn spawn(self) -> Stopper {
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listener = spawn_listener(self.url.clone(), wake.clone(), stopped);
        actix_web::rt::spawn(async move { self.run(wake).await });
        Stopper { stop, listener }
    }

    async fn run(self, wake: Arc<Notify>) {
        let mut cursor = loop {
            match horizon(&self.db).await {
                Ok(h) => {
                    break Cursor {
                        events: (h.xmin, String::new(), -1),
                        told: (h.xmin, -1),
                    }
                }
                Err(err) => {
                    log::error!("tailer: cannot read the log's horizon ({err}); retrying");
                    tokio::time::sleep(self.poll).await;
                }
            }
        };
        log::info!(
            "tailer: reading other nodes' events from transaction {} (every {:?}, and on NOTIFY)",
            cursor.events.0,
            self.poll
        );
        let mut soon = false;
        let mut timed = false;
        loop {
            if !soon {
                timed = tokio::select! {
                    _ = wake.notified() => false,
                    _ = tokio::time::sleep(self.poll) => true,
                };
            } else {
                tokio::time::sleep(IN_FLIGHT_RETRY).await;
            }
            match self.read(&mut cursor).await {
                Ok((found, in_flight)) => {
                    if found > 0 {
                        log::debug!(
                            "tailer: read {found} row(s) (timed: {timed}, in flight: {in_flight})"
                        );
                    }
                    if found > 0 && timed {
                        METRICS.poll_fallbacks.inc();
                    }
                    // Rows may be waiting behind a transaction still running.
                    soon = in_flight;
                    if !soon {
                        timed = false;
                    }
                }
                Err(err) => {
                    log::warn!("tailer: reading the shared log failed ({err}); retrying from the same place");
                    soon = false;
                }
            }
        }
    }

    /// Reads everything readable now; answers how many rows, and whether
    /// other writers were mid-transaction.
    async fn read(&self, cursor: &mut Cursor) -> Result<(usize, bool), DbErr> {
        let h = horizon(&self.db).await?;
        let mut found = 0;
        loop {
            let rows = EventRow::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT txid, stream, seq, event_type, payload, origin, created_at, node \
                 FROM events WHERE (txid, stream, seq) > ($1, $2, $3) AND txid < $4 \
                 ORDER BY txid, stream, seq LIMIT $5",
                [
                    cursor.events.0.into(),
                    cursor.events.1.clone().into(),
                    cursor.events.2.into(),
                    h.xmin.into(),
                    PAGE.into(),
                ],
            ))
            .all(&self.db.read)
            .await?;
            let n = rows.len();
            found += n;
            if let Some(last) = rows.last() {
                cursor.events = (last.txid, last.stream.clone(), last.seq);
            }
            self.deliver(rows);
            if (n as i64) < PAGE {
                break;
            }
        }
        loop {
            let rows = ToldRow::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT txid, id, body FROM node_messages \
                 WHERE (txid, id) > ($1, $2) AND txid < $3 AND source <> $4 \
                 AND (target IS NULL OR target = $4) ORDER BY txid, id LIMIT $5",
                [
                    cursor.told.0.into(),
                    cursor.told.1.into(),
                    h.xmin.into(),
                    self.node.into(),
                    PAGE.into(),
                ],
            ))
            .all(&self.db.read)
            .await?;
            let n = rows.len();
            found += n;
            if let Some(last) = rows.last() {
                cursor.told = (last.txid, last.id);
            }
            self.obey(rows);
            if (n as i64) < PAGE {
                break;
            }
        }
        METRICS.tailer_rows.inc_by(found as u64);
        Ok((found, h.xmin < h.xmax))
    }

    fn deliver(&self, rows: Vec<EventRow>) {
        let now = wire::now_ms();
        let events: Vec<SharedEvent> = rows
            .into_iter()
            // This node delivered its own rows after their commit.
            .filter(|r| r.node != Some(self.node))
            .filter_map(|r| {
                let room = RoomKey::parse(&r.stream)?;
                METRICS
                    .tailer_lag
                    .observe((now - r.created_at).max(0) as f64 / 1000.0);
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
                Err(err) => log::warn!("tailer: ignoring node message {}: {err}", row.id),
            }
        }
        if !transient.is_empty() {
            self.bus.deliver_remote(transient);
        }
    }
}

async fn horizon(db: &Db) -> Result<Horizon, DbErr> {
    let stmt = Statement::from_string(
        DbBackend::Postgres,
        "SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, pg_snapshot_xmax(s)::text::bigint AS xmax \
         FROM pg_current_snapshot() AS s",
    );
    let row = db.read.query_one_raw(stmt).await?;
    let row = row.ok_or_else(|| DbErr::RecordNotFound("pg_current_snapshot".into()))?;
    Horizon::from_query_result(&row, "")
}

/// Holds the dedicated `LISTEN herald` connection and wakes the tailer on
/// each notification; made again with backoff when it drops, after which
/// the tailer reads at once (what was announced meanwhile is not lost,
/// only unannounced).
fn spawn_listener(
    url: String,
    wake: Arc<Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => {}
            _ = listen(url, wake) => {}
        }
    })
}

/// Ends the `LISTEN` connection while the runtime still runs (its pool
/// cannot be dropped outside it).
pub struct Stopper {
    stop: tokio::sync::watch::Sender<bool>,
    listener: tokio::task::JoinHandle<()>,
}

impl Stopper {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.listener.await;
    }
}

async fn listen(url: String, wake: Arc<Notify>) {
    use sea_orm::sqlx::postgres::PgListener;
    {
        let mut delay = RECONNECT_FIRST;
        let mut was_connected = false;
        loop {
            let listener = async {
                let mut l = PgListener::connect(&url).await?;
                l.listen("herald").await?;
                Ok::<_, sea_orm::sqlx::Error>(l)
            };
            match listener.await {
                Ok(mut listener) => {
                    if was_connected {
                        METRICS.notify_reconnects.inc();
                        log::info!("tailer: LISTEN connection made again");
                    }
                    was_connected = true;
                    delay = RECONNECT_FIRST;
                    wake.notify_one();
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(_)) => wake.notify_one(),
                            Ok(None) => break,
                            Err(err) => {
                                log::warn!("tailer: LISTEN connection lost: {err}");
                                break;
                            }
                        }
                    }
                    wake.notify_one();
                }
                Err(err) => {
                    log::warn!("tailer: cannot LISTEN ({err}); polling every interval until it can, retrying in {delay:?}");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_MAX);
        }
    }
}
