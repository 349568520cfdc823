//! Cancelling a job, wherever it runs, in one transaction.
//!
//! A job that no runner works on (queued, or run by an external worker)
//! ends at once: `JOB_FAILED` with status `cancelled`. A built-in job a
//! runner is on (this node's, or a live other node's) keeps the cancel on
//! its row (`jobs.cancel_requested`): the runner stops between two orders,
//! and whoever recovers the job after its node died honours it.

use entity::{jobs, nodes};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter,
};

use super::{already_finished, find, is_finished, job_event};
use crate::{
    core::{
        events::RoomKey,
        wire::dashboard::{types, Job},
    },
    store::command::{Command, Outcome},
};

/// Whether a cancel took effect now, or will between two orders.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// Cancelled (200).
    Now(Job),
    /// A runner stops it after its current order (202); `elsewhere` names
    /// the live node whose runner is on it, to be told at once.
    Requested { job: Job, elsewhere: Option<i64> },
}

impl Cancelled {
    pub fn job(&self) -> &Job {
        match self {
            Cancelled::Now(job) | Cancelled::Requested { job, .. } => job,
        }
    }
}

/// Cancels a job.
pub struct Cancel {
    pub user_id: String,
    pub job_id: String,
    /// Who asked (the token's `sub`).
    pub by: String,
    /// A runner of this node is on the job.
    pub running_here: bool,
    /// This node (several nodes), and how long a silent node counts as live.
    pub node: Option<i64>,
    pub lease_ms: i64,
}

impl Command for Cancel {
    type Output = Cancelled;

    fn room(&self) -> RoomKey {
        RoomKey::User(self.user_id.clone())
    }

    fn run(self, txn: &DatabaseTransaction, now: i64) -> Outcome<'_, Cancelled> {
        Box::pin(async move {
            let row = find(txn, &self.job_id, Some(&self.user_id)).await?;
            let elsewhere = match (row.node, self.node, row.status.as_str()) {
                (Some(owner), Some(me), "running") if owner != me => {
                    let live = nodes::Entity::find_by_id(owner)
                        .filter(nodes::Column::HeartbeatAt.gte(now - self.lease_ms))
                        .one(txn)
                        .await?;
                    live.map(|n| n.id)
                }
                _ => None,
            };
            if self.running_here || elsewhere.is_some() {
                jobs::Entity::update_many()
                    .col_expr(jobs::Column::CancelRequested, Expr::value(self.by.as_str()))
                    .filter(jobs::Column::Id.eq(self.job_id.as_str()))
                    .filter(jobs::Column::UserId.eq(self.user_id.as_str()))
                    .filter(jobs::Column::Status.eq("running"))
                    .exec(txn)
                    .await?;
                let job = Job::from(&row);
                return Ok((Cancelled::Requested { job, elsewhere }, Vec::new()));
            }
            if is_finished(&row.status) {
                return Err(already_finished(&row, ""));
            }
            let mut active = row.into_active_model();
            active.status = Set("cancelled".into());
            active.error = Set(Some(format!("cancelled by {}", self.by)));
            active.updated_at = Set(now);
            active.finished_at = Set(Some(now));
            let job = Job::from(&active.update(txn).await?);
            let ev = job_event(types::JOB_FAILED, &job);
            Ok((Cancelled::Now(job), vec![ev]))
        })
    }
}
