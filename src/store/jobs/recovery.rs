//! Crash and takeover recovery: running built-in jobs of nodes that are
//! gone fail as `interrupted` (or end `cancelled` when a cancel was asked
//! while they ran); each of their orders ends as its job's checkpoint says:
//! `submitted` with the number it got, `failed` with the order system's
//! refusal, `failed` as in doubt when it was being sent (the order system
//! may hold it), else back to `pending`. Queued jobs are claimed by a live
//! node.

use std::collections::BTreeMap;

use entity::{jobs, pending_orders};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
};

use super::{job_event, SUBMIT_PENDING_ORDERS};
use crate::{
    core::{
        events::RoomKey,
        wire::dashboard::{types, Job, NumberMapping, PendingOrder},
    },
    store::{
        command::{Command, DomainError, Outcome},
        pending_orders::order_event,
    },
};

/// After a crash: the user's running built-in jobs (the ones this process
/// ran) fail with `interrupted` (or end `cancelled`); external workers' jobs
/// are theirs to finish and stay as they are. Orders left `submitting` end
/// as their job's checkpoint says (see the module).
pub struct Recover {
    pub user_id: String,
    /// Nodes whose heartbeat is fresh: their jobs and orders are left alone.
    pub live: Vec<i64>,
}

/// What a recovered job's checkpoint says of one of its orders.
enum Known {
    /// The order system gave it this number.
    Number(String),
    /// The order system refused it, for this reason.
    Rejected(String),
    /// It was being sent when the node stopped: the order system may have it.
    InDoubt,
}

/// The error an order in doubt is left with: it must not be sent again
/// blindly, since the order system may hold it already.
pub const IN_DOUBT: &str = "in doubt: it was being sent to the order system when the node running \
     the job stopped, and its answer was lost; check the order system before sending it again \
     (herald sends it with the same Idempotency-Key, the pending order's id)";

/// Whether `node` (a job's owner) is one of `live`.
fn owned_by_live(node: Option<i64>, live: &[i64]) -> bool {
    node.is_some_and(|n| live.contains(&n))
}

impl Command for Recover {
    type Output = usize;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, usize> {
        Box::pin(async move {
            let all_running = jobs::Entity::find()
                .filter(jobs::Column::UserId.eq(self.user_id.as_str()))
                .filter(jobs::Column::Status.eq("running"))
                .filter(jobs::Column::Kind.eq(SUBMIT_PENDING_ORDERS))
                .all(txn)
                .await?;
            let (kept, running): (Vec<_>, Vec<_>) = all_running
                .into_iter()
                .partition(|j| owned_by_live(j.node, &self.live));
            let kept: Vec<String> = kept.into_iter().map(|j| j.id).collect();
            // What each job's checkpoint says of its orders.
            let mut known: BTreeMap<String, Known> = BTreeMap::new();
            for job in &running {
                let done: serde_json::Value = job
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                    .unwrap_or_default();
                if let Ok(mapping) =
                    serde_json::from_value::<Vec<NumberMapping>>(done["mapping"].clone())
                {
                    for m in mapping {
                        known.insert(m.pending_order_id, Known::Number(m.order_number));
                    }
                }
                for failed in done["failed"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(error)) =
                        (failed["pendingOrderId"].as_str(), failed["error"].as_str())
                    {
                        known.insert(id.to_owned(), Known::Rejected(error.to_owned()));
                    }
                }
                if let Some(id) = done["sending"].as_str() {
                    known.entry(id.to_owned()).or_insert(Known::InDoubt);
                }
            }
            let mut events = Vec::new();
            let stuck = pending_orders::Entity::find()
                .filter(pending_orders::Column::UserId.eq(self.user_id.as_str()))
                .filter(pending_orders::Column::Status.eq("submitting"))
                .all(txn)
                .await?;
            for row in stuck {
                // A live node's running job is still sending these.
                if row.job_id.as_ref().is_some_and(|id| kept.contains(id)) {
                    continue;
                }
                let mut o = row.clone().into_active_model();
                match known.get(&row.id) {
                    Some(Known::Number(n)) => {
                        o.status = Set("submitted".into());
                        o.order_number = Set(Some(n.clone()));
                    }
                    Some(Known::Rejected(error)) => {
                        o.status = Set("failed".into());
                        o.error = Set(Some(error.clone()));
                    }
                    Some(Known::InDoubt) => {
                        o.status = Set("failed".into());
                        o.error = Set(Some(IN_DOUBT.into()));
                    }
                    None => {
                        o.status = Set("pending".into());
                        o.job_id = Set(None);
                    }
                }
                o.updated_at = Set(now);
                let order = PendingOrder::from(&o.update(txn).await?);
                events.push(order_event(types::PENDING_UPDATED, &order, &None));
            }
            let count = running.len();
            for job in running {
                let cancelled_by = job.cancel_requested.clone();
                let mut active = job.into_active_model();
                match cancelled_by {
                    // A cancel asked while it ran is kept, whatever became
                    // of the node that ran it.
                    Some(by) => {
                        active.status = Set("cancelled".into());
                        active.error = Set(Some(format!("cancelled by {by}")));
                    }
                    None => {
                        active.status = Set("failed".into());
                        active.error = Set(Some("interrupted".into()));
                    }
                }
                active.updated_at = Set(now);
                active.finished_at = Set(Some(now));
                let job = Job::from(&active.update(txn).await?);
                events.push(job_event(types::JOB_FAILED, &job));
            }
            Ok((count, events))
        })
    }
}

/// Users with running built-in jobs of nodes not in `live`, or orders left
/// `submitting` by a job that no live node is running (crash recovery).
pub async fn users_to_recover<C: ConnectionTrait>(
    db: &C,
    live: &[i64],
) -> Result<Vec<String>, DomainError> {
    let running: Vec<(String, String, Option<i64>)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Id)
        .column(jobs::Column::UserId)
        .column(jobs::Column::Node)
        .filter(jobs::Column::Status.eq("running"))
        .filter(jobs::Column::Kind.eq(SUBMIT_PENDING_ORDERS))
        .into_tuple()
        .all(db)
        .await?;
    let kept: Vec<&str> = running
        .iter()
        .filter(|(_, _, node)| owned_by_live(*node, live))
        .map(|(id, _, _)| id.as_str())
        .collect();
    let mut users: Vec<String> = running
        .iter()
        .filter(|(_, _, node)| !owned_by_live(*node, live))
        .map(|(_, user, _)| user.clone())
        .collect();
    let more: Vec<(String, Option<String>)> = pending_orders::Entity::find()
        .select_only()
        .column(pending_orders::Column::UserId)
        .column(pending_orders::Column::JobId)
        .filter(pending_orders::Column::Status.eq("submitting"))
        .into_tuple()
        .all(db)
        .await?;
    users.extend(
        more.into_iter()
            .filter(|(_, job)| !job.as_deref().is_some_and(|j| kept.contains(&j)))
            .map(|(user, _)| user),
    );
    users.sort();
    users.dedup();
    Ok(users)
}

/// Claims built-in jobs still queued by nodes not in `live` (a restart, or
/// a node that died): they become `node`'s, oldest first; answers
/// `(user_id, job_id)`. On PostgreSQL rows another node is claiming at the
/// same moment are skipped (`FOR UPDATE SKIP LOCKED`), so each job is
/// claimed by exactly one node.
pub async fn claim_queued<C: ConnectionTrait>(
    db: &C,
    node: i64,
    live: &[i64],
) -> Result<Vec<(String, String)>, DomainError> {
    use sea_orm::{DbBackend, Statement, Value};
    let backend = db.get_database_backend();
    let pg = backend == DbBackend::Postgres;
    let mark = |i: usize| if pg { format!("${i}") } else { "?".to_owned() };
    let mut values: Vec<Value> = vec![node.into(), SUBMIT_PENDING_ORDERS.into()];
    let not_live = if live.is_empty() {
        String::new()
    } else {
        let marks: Vec<String> = live
            .iter()
            .map(|n| {
                values.push((*n).into());
                mark(values.len())
            })
            .collect();
        format!(" OR node NOT IN ({})", marks.join(", "))
    };
    let lock = if pg { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE jobs SET node = {n} WHERE id IN (SELECT id FROM jobs WHERE status = 'queued'          AND kind = {k} AND (node IS NULL{not_live}) ORDER BY created_at LIMIT 64{lock})          RETURNING user_id, id, created_at",
        n = mark(1),
        k = mark(2),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut claimed: Vec<(i64, String, String)> = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<i64>("", "created_at")?,
                r.try_get::<String>("", "user_id")?,
                r.try_get::<String>("", "id")?,
            ))
        })
        .collect::<Result<_, sea_orm::DbErr>>()?;
    claimed.sort();
    Ok(claimed.into_iter().map(|(_, u, id)| (u, id)).collect())
}
