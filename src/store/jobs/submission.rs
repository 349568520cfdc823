//! The built-in job `submit-pending-orders`: its orders are checked when it
//! is queued, marked `submitting` when it starts, and each given its number
//! (or its error) when it ends, in the same transaction as the job's end.

use std::collections::{BTreeMap, HashSet};

use entity::pending_orders;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter,
};
use serde_json::json;

use super::{find, job_event, to_raw, MAX_SUBMIT, SUBMIT_PENDING_ORDERS};
use crate::{
    core::{
        events::RoomKey,
        wire::dashboard::{
            types, BatchUpserted, Job, NumberMapping, OrderNumbersResolved, PendingOrder,
        },
    },
    store::{
        command::{Command, DomainError, Outcome},
        event_log::NewEvent,
        pending_orders::{order_event, parse_uuid},
    },
};

/// The order ids of a `submit-pending-orders` job's params.
pub fn submit_order_ids(params: &serde_json::Value) -> Result<Vec<String>, DomainError> {
    let list = params
        .get("orderIds")
        .and_then(|v| v.as_array())
        .ok_or_else(|| {
            DomainError::Validation("`params.orderIds` must be an array of order ids".into())
        })?;
    if list.is_empty() || list.len() > MAX_SUBMIT {
        return Err(DomainError::Validation(format!(
            "`params.orderIds` must hold 1 to {MAX_SUBMIT} ids"
        )));
    }
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let id = v.as_str().ok_or_else(|| {
            DomainError::Validation(format!("`params.orderIds[{i}]` must be a string"))
        })?;
        let id = parse_uuid(id, &format!("`params.orderIds[{i}]`"))?;
        if !seen.insert(id.clone()) {
            return Err(DomainError::Validation(format!(
                "`params.orderIds[{i}]` repeats {id}"
            )));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Orders a submission may take: the user's, `pending` or `failed`.
pub(super) async fn eligible_orders<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    ids: &[String],
) -> Result<Vec<pending_orders::Model>, DomainError> {
    let rows = pending_orders::Entity::find()
        .filter(pending_orders::Column::Id.is_in(ids.iter().cloned()))
        .all(db)
        .await?;
    let mut by_id: BTreeMap<String, pending_orders::Model> =
        rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut ordered = Vec::with_capacity(ids.len());
    for id in ids {
        match by_id.remove(id) {
            Some(row) if row.user_id == user_id => {
                if row.status != "pending" && row.status != "failed" {
                    return Err(DomainError::Conflict {
                        code: "ORDER_NOT_SUBMITTABLE",
                        message: format!(
                            "order {id} is {}; only pending or failed orders can be submitted",
                            row.status
                        ),
                        current: None,
                    });
                }
                ordered.push(row);
            }
            _ => return Err(DomainError::NotFound(format!("no pending order {id}"))),
        }
    }
    Ok(ordered)
}

/// What starting a built-in submission found.
pub enum Started {
    /// Running: these orders are now `submitting`.
    Running(Box<Job>, Vec<PendingOrder>),
    /// The job ended before it began (cancelled, or its orders changed).
    Ended,
}

/// Starts a queued job: `JOB_STARTED`; for a submission also marks its
/// orders `submitting` (one `PENDING_BATCH_UPSERTED`). If the orders can no
/// longer be submitted the job fails instead (`JOB_FAILED`).
pub struct Start {
    pub user_id: String,
    pub job_id: String,
    /// The node starting it: it must still own it.
    pub node: Option<i64>,
}

impl Command for Start {
    type Output = Started;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Started> {
        Box::pin(async move {
            let row = find(txn, &self.job_id, Some(&self.user_id)).await?;
            // Another node took it over (this node's lease ran out): theirs now.
            if row.status != "queued" || (self.node.is_some() && row.node != self.node) {
                return Ok((Started::Ended, Vec::new()));
            }
            let mut orders = Vec::new();
            let mut problem = None;
            if row.kind == SUBMIT_PENDING_ORDERS {
                let params: serde_json::Value =
                    serde_json::from_str(&row.params).unwrap_or(serde_json::Value::Null);
                match submit_order_ids(&params) {
                    Ok(ids) => match eligible_orders(txn, &self.user_id, &ids).await {
                        Ok(rows) => orders = rows,
                        Err(DomainError::Db(e)) => return Err(e.into()),
                        Err(e) => problem = Some(e.to_string()),
                    },
                    Err(e) => problem = Some(e.to_string()),
                }
            }
            let mut active = row.into_active_model();
            active.updated_at = Set(now);
            if let Some(problem) = problem {
                active.status = Set("failed".into());
                active.error = Set(Some(problem));
                active.finished_at = Set(Some(now));
                let job = Job::from(&active.update(txn).await?);
                return Ok((Started::Ended, vec![job_event(types::JOB_FAILED, &job)]));
            }
            active.status = Set("running".into());
            active.started_at = Set(Some(now));
            active.label = Set(Some(format!("Sending {} order(s)", orders.len())));
            let job = Job::from(&active.update(txn).await?);
            let mut events = vec![job_event(types::JOB_STARTED, &job)];
            let mut marked = BatchUpserted::default();
            for order in orders {
                let mut o = order.into_active_model();
                o.status = Set("submitting".into());
                o.job_id = Set(Some(job.id.clone()));
                o.error = Set(None);
                o.updated_at = Set(now);
                marked
                    .updated
                    .push(PendingOrder::from(&o.update(txn).await?));
            }
            if !marked.updated.is_empty() {
                events.push(NewEvent::new(types::PENDING_BATCH_UPSERTED, &marked, None));
            }
            Ok((Started::Running(Box::new(job), marked.updated), events))
        })
    }
}

/// How a submission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmissionEnd {
    /// Every order was answered (some may have been rejected).
    Completed,
    /// The order system could not be reached: the rest are marked failed.
    Failed(String),
    /// Cancelled between orders: the rest go back to `pending`.
    Cancelled(String),
}

/// The answer for one order.
#[derive(Debug, Clone)]
pub enum OrderResult {
    Submitted(String),
    Rejected(String),
}

#[derive(Clone)]
/// Ends a submission in one transaction: `ORDER_NUMBERS_RESOLVED` (when any
/// order got a number), a `PENDING_UPDATED` per order, then `JOB_COMPLETED`
/// or `JOB_FAILED`.
pub struct FinishSubmission {
    pub user_id: String,
    pub job_id: String,
    /// Every order of the job, in order.
    pub order_ids: Vec<String>,
    pub results: BTreeMap<String, OrderResult>,
    pub end: SubmissionEnd,
    /// The node that ran it: if it no longer owns the job (another node
    /// took it over after this one's lease ran out), nothing changes.
    pub node: Option<i64>,
}

fn result_json(
    mapping: &[NumberMapping],
    results: &BTreeMap<String, OrderResult>,
) -> serde_json::Value {
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(id, r)| match r {
            OrderResult::Rejected(e) => Some(json!({"pendingOrderId": id, "error": e})),
            OrderResult::Submitted(_) => None,
        })
        .collect();
    json!({"mapping": mapping, "failed": failed})
}

/// What is done so far, as kept on a running job's `result`, and the order
/// about to be sent (`sending`): written before each send, so a node that
/// recovers the job knows which order the order system may have got without
/// herald hearing its answer.
pub fn checkpoint(
    order_ids: &[String],
    results: &BTreeMap<String, OrderResult>,
    sending: Option<&str>,
) -> String {
    let mut kept = result_json(&mapping_of(order_ids, results), results);
    if let Some(id) = sending {
        kept["sending"] = json!(id);
    }
    to_raw(&kept)
}

fn mapping_of(order_ids: &[String], results: &BTreeMap<String, OrderResult>) -> Vec<NumberMapping> {
    order_ids
        .iter()
        .filter_map(|id| match results.get(id) {
            Some(OrderResult::Submitted(n)) => Some(NumberMapping {
                pending_order_id: id.clone(),
                order_number: n.clone(),
            }),
            _ => None,
        })
        .collect()
}

impl Command for FinishSubmission {
    type Output = Job;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Job> {
        Box::pin(async move {
            let row = find(txn, &self.job_id, Some(&self.user_id)).await?;
            if row.status != "running" || (self.node.is_some() && row.node != self.node) {
                log::warn!(
                    "job {}: not storing this run's outcome; the job is {} on node {:?} now",
                    self.job_id,
                    row.status,
                    row.node
                );
                return Ok((Job::from(&row), Vec::new()));
            }
            let mapping = mapping_of(&self.order_ids, &self.results);
            let mut events = Vec::new();
            if !mapping.is_empty() {
                events.push(NewEvent::new(
                    types::ORDER_NUMBERS_RESOLVED,
                    &OrderNumbersResolved {
                        job_id: &self.job_id,
                        mapping: &mapping,
                    },
                    None,
                ));
            }
            for id in &self.order_ids {
                let Some(row) = pending_orders::Entity::find_by_id(id.clone())
                    .one(txn)
                    .await?
                else {
                    continue;
                };
                if row.job_id.as_deref() != Some(self.job_id.as_str()) || row.status != "submitting"
                {
                    continue;
                }
                let mut o = row.into_active_model();
                match (self.results.get(id), &self.end) {
                    (Some(OrderResult::Submitted(n)), _) => {
                        o.status = Set("submitted".into());
                        o.order_number = Set(Some(n.clone()));
                        o.error = Set(None);
                    }
                    (Some(OrderResult::Rejected(e)), _) => {
                        o.status = Set("failed".into());
                        o.error = Set(Some(e.clone()));
                    }
                    (None, SubmissionEnd::Failed(reason)) => {
                        o.status = Set("failed".into());
                        o.error = Set(Some(reason.clone()));
                    }
                    (None, _) => {
                        o.status = Set("pending".into());
                        o.job_id = Set(None);
                    }
                }
                o.updated_at = Set(now);
                let order = PendingOrder::from(&o.update(txn).await?);
                events.push(order_event(types::PENDING_UPDATED, &order, &None));
            }
            let row = find(txn, &self.job_id, Some(&self.user_id)).await?;
            let mut active = row.into_active_model();
            let done = self.results.len();
            let total = self.order_ids.len();
            let (status, error, label, kind) = match &self.end {
                SubmissionEnd::Completed => {
                    let rejected = self
                        .results
                        .values()
                        .filter(|r| matches!(r, OrderResult::Rejected(_)))
                        .count();
                    let label = format!(
                        "Sent {} of {total} order(s), {rejected} rejected",
                        total - rejected
                    );
                    ("completed", None, label, types::JOB_COMPLETED)
                }
                SubmissionEnd::Failed(reason) => (
                    "failed",
                    Some(reason.clone()),
                    format!("Stopped after {done} of {total} order(s)"),
                    types::JOB_FAILED,
                ),
                SubmissionEnd::Cancelled(reason) => (
                    "cancelled",
                    Some(reason.clone()),
                    format!("Cancelled after {done} of {total} order(s)"),
                    types::JOB_FAILED,
                ),
            };
            active.status = Set(status.into());
            active.error = Set(error);
            active.label = Set(Some(label));
            if matches!(self.end, SubmissionEnd::Completed) {
                active.progress = Set(100);
            }
            active.result = Set(Some(to_raw(&result_json(&mapping, &self.results))));
            active.updated_at = Set(now);
            active.finished_at = Set(Some(now));
            let job = Job::from(&active.update(txn).await?);
            events.push(job_event(kind, &job));
            Ok((job, events))
        })
    }
}
