//! Jobs: queued, running, then completed, failed or cancelled; each state
//! change is one transaction with its event. Progress is transient (no
//! event row) but kept on the job so a reconnecting device can read it.

use std::collections::{BTreeMap, HashSet};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{json, value::RawValue};

use entity::{jobs, pending_orders};

use super::{pending_orders::parse_uuid, Command, DomainError, Outcome};
use crate::{
    events::RoomKey,
    outbox::NewEvent,
    wire::dashboard::{
        types, BatchUpserted, Job, JobEvent, NumberMapping, OrderEvent, OrderNumbersResolved,
        PendingOrder,
    },
};

/// The built-in job kind that sends pending orders to the order system.
pub const SUBMIT_PENDING_ORDERS: &str = "submit-pending-orders";

/// Most orders one submission may carry.
pub const MAX_SUBMIT: usize = 1000;

pub fn is_builtin(kind: &str) -> bool {
    kind == SUBMIT_PENDING_ORDERS
}

pub fn is_finished(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// A job kind: 1-64 of `a-z 0-9 - _ .`.
pub fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

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

pub async fn list<C: ConnectionTrait>(db: &C, user_id: &str) -> Result<Vec<Job>, DomainError> {
    let rows = jobs::Entity::find()
        .filter(jobs::Column::UserId.eq(user_id))
        .order_by_desc(jobs::Column::CreatedAt)
        .order_by_desc(jobs::Column::Id)
        .limit(500)
        .all(db)
        .await?;
    Ok(rows.iter().map(Job::from).collect())
}

/// The job, if `user_id` may see it (`None`: any user, for services).
pub async fn find<C: ConnectionTrait>(
    db: &C,
    id: &str,
    user_id: Option<&str>,
) -> Result<jobs::Model, DomainError> {
    match jobs::Entity::find_by_id(id.to_owned()).one(db).await? {
        Some(row) if user_id.is_none_or(|u| u == row.user_id) => Ok(row),
        _ => Err(DomainError::NotFound(format!("no job {id}"))),
    }
}

fn job_event(kind: &str, job: &Job) -> NewEvent {
    NewEvent::new(kind, &JobEvent { job }, None)
}

fn to_raw(value: &serde_json::Value) -> String {
    serde_json::to_string(value).expect("JSON values serialize")
}

/// Orders a submission may take: the user's, `pending` or `failed`.
async fn eligible_orders<C: ConnectionTrait>(
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

/// Queues a job (`JOB_QUEUED`).
pub struct Create {
    pub user_id: String,
    pub id: String,
    pub kind: String,
    pub params: Box<RawValue>,
    /// The node queuing it (it owns the built-in ones).
    pub node: Option<i64>,
}

impl Command for Create {
    /// The job, and whether it is new (false: this id was queued before,
    /// by a create retried under the same `Idempotency-Key`).
    type Output = (Job, bool);

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, (Job, bool)> {
        Box::pin(async move {
            if let Some(row) = jobs::Entity::find_by_id(self.id.clone()).one(txn).await? {
                if row.user_id != self.user_id {
                    return Err(DomainError::Conflict {
                        code: "ID_TAKEN",
                        message: "this Idempotency-Key names another user's job; use a new key"
                            .into(),
                        current: None,
                    });
                }
                return Ok(((Job::from(&row), false), Vec::new()));
            }
            if self.kind == SUBMIT_PENDING_ORDERS {
                let params: serde_json::Value = serde_json::from_str(self.params.get())
                    .map_err(|e| DomainError::Validation(format!("`params`: {e}")))?;
                let ids = submit_order_ids(&params)?;
                eligible_orders(txn, &self.user_id, &ids).await?;
            }
            // A built-in job belongs to the node that queued it.
            let builtin_node = self.node.filter(|_| is_builtin(&self.kind));
            let row = jobs::ActiveModel {
                id: Set(self.id),
                user_id: Set(self.user_id),
                kind: Set(self.kind),
                params: Set(self.params.get().to_owned()),
                status: Set("queued".into()),
                progress: Set(0),
                label: Set(None),
                result: Set(None),
                error: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                started_at: Set(None),
                finished_at: Set(None),
                node: Set(builtin_node),
            }
            .insert(txn)
            .await?;
            let job = Job::from(&row);
            let ev = job_event(types::JOB_QUEUED, &job);
            Ok(((job, true), vec![ev]))
        })
    }
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

/// Keeps the current progress (and, for a submission, what is done so far)
/// on the job row. Progress is transient on the wire, so no event row.
/// Answers `None` when the job is no longer running here (cancelled, or
/// taken over by another node after this node's lease ran out): the runner
/// stops.
pub async fn save_progress<C: ConnectionTrait>(
    db: &C,
    job_id: &str,
    progress: i32,
    label: Option<String>,
    result: Option<String>,
    now: i64,
    node: Option<i64>,
) -> Result<Option<Job>, DomainError> {
    use sea_orm::sea_query::Expr;
    let mut update = jobs::Entity::update_many()
        .col_expr(jobs::Column::Progress, Expr::value(progress))
        .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
        .filter(jobs::Column::Id.eq(job_id))
        .filter(jobs::Column::Status.eq("running"));
    if let Some(label) = label {
        update = update.col_expr(jobs::Column::Label, Expr::value(label));
    }
    if let Some(result) = result {
        update = update.col_expr(jobs::Column::Result, Expr::value(result));
    }
    if let Some(node) = node {
        update = update.filter(jobs::Column::Node.eq(node));
    }
    if update.exec(db).await?.rows_affected == 0 {
        return Ok(None);
    }
    let row = jobs::Entity::find_by_id(job_id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("no job {job_id}")))?;
    Ok(Some(Job::from(&row)))
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

fn result_json(mapping: &[NumberMapping], results: &BTreeMap<String, OrderResult>) -> String {
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(id, r)| match r {
            OrderResult::Rejected(e) => Some(json!({"pendingOrderId": id, "error": e})),
            OrderResult::Submitted(_) => None,
        })
        .collect();
    to_raw(&json!({"mapping": mapping, "failed": failed}))
}

/// The mapping so far, as kept on a running job's `result`.
pub fn checkpoint(order_ids: &[String], results: &BTreeMap<String, OrderResult>) -> String {
    result_json(&mapping_of(order_ids, results), results)
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
                events.push(NewEvent::new(
                    types::PENDING_UPDATED,
                    &OrderEvent { order: &order },
                    None,
                ));
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
            active.result = Set(Some(result_json(&mapping, &self.results)));
            active.updated_at = Set(now);
            active.finished_at = Set(Some(now));
            let job = Job::from(&active.update(txn).await?);
            events.push(job_event(kind, &job));
            Ok((job, events))
        })
    }
}

/// What an external worker reports.
#[derive(Debug, Clone)]
pub enum Report {
    Progress {
        progress: i32,
        label: Option<String>,
    },
    Complete {
        result: Box<RawValue>,
    },
    Fail {
        error: String,
    },
}

/// A worker's report on an external job: the first report starts a queued
/// job (`JOB_STARTED`); complete and fail finish it.
pub struct WorkerReport {
    pub user_id: String,
    pub job_id: String,
    pub report: Report,
}

impl Command for WorkerReport {
    type Output = Job;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Job> {
        Box::pin(async move {
            let row = find(txn, &self.job_id, Some(&self.user_id)).await?;
            if is_builtin(&row.kind) {
                return Err(DomainError::Conflict {
                    code: "JOB_NOT_EXTERNAL",
                    message: format!(
                        "job {} ({}) is run by herald itself, not by a worker",
                        row.id, row.kind
                    ),
                    current: None,
                });
            }
            if is_finished(&row.status) {
                return Err(DomainError::Conflict {
                    code: "JOB_FINISHED",
                    message: format!(
                        "job {} is already {}; nothing more to report",
                        row.id, row.status
                    ),
                    current: Some(serde_json::to_value(Job::from(&row)).expect("jobs serialize")),
                });
            }
            let mut events = Vec::new();
            let mut active = row.clone().into_active_model();
            if row.status == "queued" {
                active.status = Set("running".into());
                active.started_at = Set(Some(now));
                active.updated_at = Set(now);
                let job = Job::from(&active.clone().update(txn).await?);
                events.push(job_event(types::JOB_STARTED, &job));
                active = jobs::Entity::find_by_id(job.id.clone())
                    .one(txn)
                    .await?
                    .expect("just updated")
                    .into_active_model();
            }
            match self.report {
                Report::Progress { progress, label } => {
                    active.progress = Set(progress);
                    if label.is_some() {
                        active.label = Set(label);
                    }
                    active.updated_at = Set(now);
                    let job = Job::from(&active.update(txn).await?);
                    Ok((job, events))
                }
                Report::Complete { result } => {
                    active.status = Set("completed".into());
                    active.progress = Set(100);
                    active.result = Set(Some(result.get().to_owned()));
                    active.updated_at = Set(now);
                    active.finished_at = Set(Some(now));
                    let job = Job::from(&active.update(txn).await?);
                    events.push(job_event(types::JOB_COMPLETED, &job));
                    Ok((job, events))
                }
                Report::Fail { error } => {
                    active.status = Set("failed".into());
                    active.error = Set(Some(error));
                    active.updated_at = Set(now);
                    active.finished_at = Set(Some(now));
                    let job = Job::from(&active.update(txn).await?);
                    events.push(job_event(types::JOB_FAILED, &job));
                    Ok((job, events))
                }
            }
        })
    }
}

/// Cancels a job that no runner is working on right now (queued, or run by
/// an external worker): `JOB_FAILED` with status `cancelled`.
pub struct Cancel {
    pub user_id: String,
    pub job_id: String,
    pub by: String,
}

impl Command for Cancel {
    type Output = Job;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Job> {
        Box::pin(async move {
            let row = find(txn, &self.job_id, Some(&self.user_id)).await?;
            if is_finished(&row.status) {
                return Err(DomainError::Conflict {
                    code: "JOB_FINISHED",
                    message: format!("job {} is already {}", row.id, row.status),
                    current: Some(serde_json::to_value(Job::from(&row)).expect("jobs serialize")),
                });
            }
            let mut active = row.into_active_model();
            active.status = Set("cancelled".into());
            active.error = Set(Some(format!("cancelled by {}", self.by)));
            active.updated_at = Set(now);
            active.finished_at = Set(Some(now));
            let job = Job::from(&active.update(txn).await?);
            let ev = job_event(types::JOB_FAILED, &job);
            Ok((job, vec![ev]))
        })
    }
}

/// A built-in job that could not be started after every retry: it fails
/// with the reason instead of staying `queued` forever.
pub struct FailStart {
    pub user_id: String,
    pub job_id: String,
    pub reason: String,
}

impl Command for FailStart {
    type Output = Option<Job>;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Option<Job>> {
        Box::pin(async move {
            let row = find(txn, &self.job_id, Some(&self.user_id)).await?;
            if row.status != "queued" {
                return Ok((None, Vec::new())); // it moved on meanwhile
            }
            let mut active = row.into_active_model();
            active.status = Set("failed".into());
            active.error = Set(Some(format!("could not start: {}", self.reason)));
            active.updated_at = Set(now);
            active.finished_at = Set(Some(now));
            let job = Job::from(&active.update(txn).await?);
            let ev = job_event(types::JOB_FAILED, &job);
            Ok((Some(job.clone()), vec![ev]))
        })
    }
}

/// After a crash: the user's running built-in jobs (the ones this process
/// ran) fail with `interrupted`; external workers' jobs are theirs to finish
/// and stay as they are. Orders
/// left `submitting` keep the number their job had already got for them
/// (`submitted`), or go back to `pending`.
pub struct Recover {
    pub user_id: String,
    /// Nodes whose heartbeat is fresh: their jobs and orders are left alone.
    pub live: Vec<i64>,
}

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
            let mut numbers: BTreeMap<String, String> = BTreeMap::new();
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
                        numbers.insert(m.pending_order_id, m.order_number);
                    }
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
                match numbers.get(&row.id) {
                    Some(n) => {
                        o.status = Set("submitted".into());
                        o.order_number = Set(Some(n.clone()));
                    }
                    None => {
                        o.status = Set("pending".into());
                        o.job_id = Set(None);
                    }
                }
                o.updated_at = Set(now);
                let order = PendingOrder::from(&o.update(txn).await?);
                events.push(NewEvent::new(
                    types::PENDING_UPDATED,
                    &OrderEvent { order: &order },
                    None,
                ));
            }
            let count = running.len();
            for job in running {
                let mut active = job.into_active_model();
                active.status = Set("failed".into());
                active.error = Set(Some("interrupted".into()));
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
