//! Which rows the tailer may read: the horizon of herald's own writers.
//!
//! Commit order is not transaction-id order: a transaction that got its id
//! first may commit last. A row's `txid` (a column default,
//! `pg_current_xact_id()`) names its transaction, and the [`Cursor`] says
//! which transactions have been read: every one below `next`, except the
//! ones [`waiting`](Cursor::waiting), which were still running in herald's
//! database when the cursor passed them.
//!
//! Each round asks PostgreSQL for a snapshot's `xmax` (no transaction below
//! it can start any more) and for which transactions below it are still
//! running *in herald's own database* ([`Horizon`]). Rows of every other
//! transaction below `xmax` can be read now; rows of the running ones wait
//! until they end (a `NOTIFY` at their commit wakes the tailer). So a long
//! transaction delays only its own rows: another application's, in another
//! database or in this one, delays nothing (it was the snapshot's `xmin`,
//! which covers every database on the server, that held every node's
//! delivery for as long as any transaction anywhere stayed open).
//!
//! "Running in herald's database" is a transaction that holds its own
//! transaction-id lock (`pg_locks`, which every role can read) or shows as
//! `backend_xid` (which covers the instant between an id being assigned and
//! its lock being taken, for backends of herald's own role), on a backend
//! connected to this database. The snapshot comes first (it is the
//! statement's own), the backends are read after it, so no transaction can
//! slip between the two.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};

use crate::store::db::Db;

/// What one round may read.
#[derive(Debug, Clone)]
pub(super) struct Horizon {
    /// No transaction below this can start any more.
    pub xmax: i64,
    /// Transactions below `xmax` still running in herald's database.
    pub running: BTreeSet<i64>,
}

#[derive(FromQueryResult)]
struct HorizonRow {
    xmax: i64,
    running: String,
}

/// Asks for this round's horizon (one statement).
pub(super) async fn horizon(db: &Db) -> Result<Horizon, DbErr> {
    let stmt = Statement::from_string(
        DbBackend::Postgres,
        "SELECT pg_snapshot_xmax(s)::text::bigint AS xmax, \
           ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x \
                 WHERE (x::text::bigint % 4294967296) IN ( \
                   SELECT a.backend_xid::text::bigint FROM pg_stat_activity a \
                    WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL \
                   UNION \
                   SELECT l.transactionid::text::bigint FROM pg_locks l \
                     JOIN pg_stat_activity a ON a.pid = l.pid \
                    WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' \
                      AND l.granted AND a.datname = current_database()) \
                 ORDER BY 1)::text AS running \
         FROM pg_current_snapshot() AS s",
    );
    let row = db
        .read
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("pg_current_snapshot".into()))?;
    let row = HorizonRow::from_query_result(&row, "")?;
    Ok(Horizon {
        xmax: row.xmax,
        running: parse_ids(&row.running),
    })
}

/// A PostgreSQL `bigint[]` as text (`{1,2,3}`).
fn parse_ids(text: &str) -> BTreeSet<i64> {
    text.trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Ids as a PostgreSQL array literal, for `$n::text::bigint[]`.
pub(super) fn ids_literal(ids: impl IntoIterator<Item = i64>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    format!("{{{}}}", ids.join(","))
}

/// A transaction the cursor passed while it ran.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    pub since: Instant,
    /// When it was last named in the log (a long one is, once a minute).
    pub warned: Option<Instant>,
}

/// Where the tailer stands: every transaction below `next` has been read,
/// except those still `waiting`.
#[derive(Debug, Clone)]
pub(super) struct Cursor {
    pub next: i64,
    pub waiting: BTreeMap<i64, Waiting>,
}

/// One round's reads: transactions in `next..xmax` but `skip`, and the
/// waiting ones that have ended (`ended`).
#[derive(Debug, Clone)]
pub(super) struct Round {
    pub next: i64,
    pub xmax: i64,
    pub skip: BTreeSet<i64>,
    pub ended: BTreeSet<i64>,
}

impl Cursor {
    /// Starts at `horizon`: what committed before is in the database, where
    /// rooms read their streams from; what runs now is waited for.
    pub fn starting_at(horizon: &Horizon) -> Cursor {
        let now = Instant::now();
        Cursor {
            next: horizon.xmax,
            waiting: horizon
                .running
                .iter()
                .map(|&x| {
                    (
                        x,
                        Waiting {
                            since: now,
                            warned: None,
                        },
                    )
                })
                .collect(),
        }
    }

    /// What to read in a round with `horizon`.
    pub fn round(&self, horizon: &Horizon) -> Round {
        Round {
            next: self.next,
            xmax: horizon.xmax.max(self.next),
            skip: horizon.running.range(self.next..).copied().collect(),
            ended: self
                .waiting
                .keys()
                .filter(|x| !horizon.running.contains(x))
                .copied()
                .collect(),
        }
    }

    /// The round was read whole: the cursor moves past it.
    pub fn advance(&mut self, round: &Round) {
        for x in &round.ended {
            self.waiting.remove(x);
        }
        let now = Instant::now();
        for &x in &round.skip {
            self.waiting.entry(x).or_insert(Waiting {
                since: now,
                warned: None,
            });
        }
        self.next = round.xmax;
    }

    /// Every `node_messages` row of a transaction below this has been read.
    pub fn read_horizon(&self) -> i64 {
        self.waiting
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next)
            .min(self.next)
    }

    /// Waiting transactions open longer than `after` and not named in the
    /// last minute; they are marked named now.
    pub fn long_running(&mut self, after: Duration) -> Vec<(i64, Duration)> {
        let now = Instant::now();
        self.waiting
            .iter_mut()
            .filter(|(_, w)| {
                now.duration_since(w.since) >= after
                    && w.warned
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
            })
            .map(|(&x, w)| {
                w.warned = Some(now);
                (x, now.duration_since(w.since))
            })
            .collect()
    }

    /// How long the oldest waiting transaction has been running, if any.
    pub fn oldest_waiting(&self) -> Option<Duration> {
        self.waiting.values().map(|w| w.since.elapsed()).max()
    }
}

/// Who holds a long transaction: the backends of herald's database that
/// run `xid` (for the log line that names it).
pub(super) async fn holder(db: &Db, xid: i64) -> Result<Option<String>, DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT string_agg(format('pid %s, user %s, application %L, from %s', a.pid, \
                a.usename, a.application_name, coalesce(a.client_addr::text, 'local')), '; ') AS who \
           FROM pg_stat_activity a \
          WHERE a.datname = current_database() AND (a.backend_xid::text::bigint = $1 \
             OR a.pid IN (SELECT l.pid FROM pg_locks l WHERE l.locktype = 'transactionid' \
                AND l.mode = 'ExclusiveLock' AND l.granted AND l.transactionid::text::bigint = $1))",
        [(xid % 4_294_967_296).into()],
    );
    let row = db.read.query_one_raw(stmt).await?;
    Ok(row.and_then(|r| r.try_get::<Option<String>>("", "who").ok().flatten()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn horizon(xmax: i64, running: &[i64]) -> Horizon {
        Horizon {
            xmax,
            running: running.iter().copied().collect(),
        }
    }

    /// A transaction that runs across rounds holds back only its own rows,
    /// and is read once it ends; the cursor never goes back.
    #[test]
    fn a_running_transaction_waits_alone() {
        let mut cursor = Cursor::starting_at(&horizon(100, &[90]));
        assert_eq!(cursor.next, 100);
        assert_eq!(cursor.read_horizon(), 90);
        // Round 1: 105 runs; 90 still runs.
        let round = cursor.round(&horizon(110, &[90, 105]));
        assert_eq!((round.next, round.xmax), (100, 110));
        assert_eq!(round.skip, [105].into());
        assert!(round.ended.is_empty());
        cursor.advance(&round);
        assert_eq!(
            cursor.waiting.keys().copied().collect::<Vec<_>>(),
            [90, 105]
        );
        // Round 2: 90 ended (read it), 105 still runs.
        let round = cursor.round(&horizon(120, &[105]));
        assert_eq!(round.ended, [90].into());
        assert!(round.skip.is_empty());
        cursor.advance(&round);
        assert_eq!(cursor.read_horizon(), 105);
        // Round 3: 105 ended.
        let round = cursor.round(&horizon(120, &[]));
        assert_eq!(round.ended, [105].into());
        cursor.advance(&round);
        assert!(cursor.waiting.is_empty());
        assert_eq!(cursor.read_horizon(), 120);
    }

    #[test]
    fn arrays_as_text() {
        assert_eq!(parse_ids("{}"), BTreeSet::new());
        assert_eq!(parse_ids("{3,1,2}"), [1, 2, 3].into());
        assert_eq!(ids_literal([1, 2]), "{1,2}");
        assert_eq!(ids_literal([]), "{}");
    }
}
