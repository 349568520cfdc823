//! Jobs run by external workers: their reports over HTTP start, advance
//! and end them.

use entity::jobs;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseTransaction, EntityTrait, IntoActiveModel,
};
use serde_json::value::RawValue;

use super::{already_finished, find, is_builtin, is_finished, job_event};
use crate::{
    core::{
        events::RoomKey,
        wire::dashboard::{types, Job},
    },
    store::command::{Command, DomainError, Outcome},
};

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
                return Err(already_finished(&row, "; nothing more to report"));
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
