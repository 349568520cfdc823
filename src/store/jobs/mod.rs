//! Jobs: queued, running, then completed, failed or cancelled; each state
//! change is one transaction with its event. Progress is transient (no
//! event row) but kept on the job so a reconnecting device can read it.
//!
//! This module holds what every job shares (kinds, reads, create, cancel,
//! progress); [`submission`] is the built-in job that sends pending orders
//! to the order system, [`worker`] what external workers report, and
//! [`recovery`] what a node does for jobs a crashed or stopped node left.

mod cancel;
mod recovery;
mod submission;
mod worker;

use entity::jobs;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::value::RawValue;
use submission::eligible_orders;

use super::command::{Command, DomainError, Outcome};
use crate::{
    core::{
        events::RoomKey,
        wire::dashboard::{types, Job, JobEvent},
    },
    store::event_log::NewEvent,
};

pub use cancel::{Cancel, Cancelled};
pub use recovery::{claim_queued, users_to_recover, Recover};
pub use submission::{
    checkpoint, submit_order_ids, FinishSubmission, OrderResult, Start, Started, SubmissionEnd,
};
pub use worker::{Report, WorkerReport};

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

/// `JOB_FINISHED`, with the job as it is; `more` ends the message.
pub(super) fn already_finished(row: &jobs::Model, more: &str) -> DomainError {
    DomainError::Conflict {
        code: "JOB_FINISHED",
        message: format!("job {} is already {}{more}", row.id, row.status),
        current: Some(serde_json::to_value(Job::from(row)).expect("jobs serialize")),
    }
}

pub(super) fn job_event(kind: &str, job: &Job) -> NewEvent {
    NewEvent::new(kind, &JobEvent { job }, None)
}

pub(super) fn to_raw(value: &serde_json::Value) -> String {
    serde_json::to_string(value).expect("JSON values serialize")
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
                cancel_requested: Set(None),
            }
            .insert(txn)
            .await?;
            let job = Job::from(&row);
            let ev = job_event(types::JOB_QUEUED, &job);
            Ok(((job, true), vec![ev]))
        })
    }
}

/// Keeps the current progress (and, for a submission, what is done so far)
/// on the job row. Progress is transient on the wire, so no event row.
/// Answers `None` when the job is no longer running here (cancelled, or
/// taken over by another node after this node's lease ran out): the runner
/// stops. Otherwise the job, and who asked to cancel it if anyone did: the
/// write is the runner's confirmation that it may go on.
pub async fn save_progress<C: ConnectionTrait>(
    db: &C,
    job_id: &str,
    progress: i32,
    label: Option<String>,
    result: Option<String>,
    now: i64,
    node: Option<i64>,
) -> Result<Option<(Job, Option<String>)>, DomainError> {
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
    let Some(row) = update.exec_with_returning(db).await?.pop() else {
        return Ok(None);
    };
    let cancel = row.cancel_requested.clone();
    Ok(Some((Job::from(&row), cancel)))
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
