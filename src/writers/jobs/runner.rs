//! The built-in `submit-pending-orders` runner, and the transient
//! `JOB_PROGRESS` it (and the supervisor, for workers' reports) sends.
//!
//! A runner is a task of its own (see `JobSupervisor::pump`): every state
//! change is a [`store::jobs`](crate::store::jobs) command, one
//! transaction with its event, published on the bus after commit.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use super::PROGRESS_EVERY;
use crate::{
    bus::Bus,
    core::{
        events::{Record, RoomKey},
        wire::{
            self,
            dashboard::{types, Job, JobProgress},
        },
    },
    store::{
        command,
        db::Db,
        jobs::{self as job_domain, OrderResult, Started, SubmissionEnd},
    },
    writers::erp::{ErpConnector, ErpError},
};

/// Sends a transient `JOB_PROGRESS` for `job`.
pub(super) fn send_progress(bus: &Bus, job: &Job) {
    let payload = serde_json::value::to_raw_value(&JobProgress {
        job,
        progress: job.progress,
        label: job.label.as_deref(),
    })
    .expect("progress serializes");
    let record = Record {
        room: RoomKey::User(job.user_id.clone()),
        seq: None,
        kind: types::JOB_PROGRESS.into(),
        payload: payload.into(),
        mutation_id: None,
        origin: None,
        created_at: wire::now_ms(),
    };
    bus.publish(vec![record], None);
}

/// Tries to start a built-in job before failing it, and the first wait
/// (doubled after each try: 0.25 + 0.5 + 1 + 2 + 4 s).
const START_TRIES: u32 = 6;
const START_RETRY_FIRST: Duration = Duration::from_millis(250);

/// The built-in `submit-pending-orders` run: start, send each order (checking
/// for a cancel between orders), keep what is done on the job, finish.
pub(super) async fn run_submission(
    db: Db,
    bus: Bus,
    erp: Arc<dyn ErpConnector>,
    user_id: String,
    job_id: String,
    stops: Stops,
) {
    let Stops {
        cancel,
        stopping,
        lease,
    } = stops;
    let start = || job_domain::Start {
        user_id: user_id.clone(),
        job_id: job_id.clone(),
        node: db.node,
    };
    // A start can fail for a passing reason (database busy, disk full):
    // retry with backoff, then fail the job with the reason.
    let mut delay = START_RETRY_FIRST;
    let mut tries = 1;
    let (_, orders) = loop {
        match command::execute(&db, start()).await {
            Ok((Started::Running(job, orders), events)) => {
                bus.publish(events, None);
                break (job, orders);
            }
            Ok((Started::Ended, events)) => return bus.publish(events, None),
            Err(err) if tries < START_TRIES => {
                log::warn!("job {job_id} could not start (try {tries} of {START_TRIES}, retrying in {delay:?}): {err}");
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
            Err(err) => {
                log::error!("job {job_id} could not start after {START_TRIES} tries: {err}");
                let fail = job_domain::FailStart {
                    user_id: user_id.clone(),
                    job_id: job_id.clone(),
                    reason: err.to_string(),
                };
                match command::execute(&db, fail).await {
                    Ok((_, events)) => bus.publish(events, None),
                    Err(err) => log::error!(
                        "job {job_id} stays queued: failing it failed too ({err}); it is retried at the next start"
                    ),
                }
                return;
            }
        }
    };
    let order_ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let (total, sent_of) = (orders.len().max(1), orders.len());
    let mut results: BTreeMap<String, OrderResult> = BTreeMap::new();
    let mut end = SubmissionEnd::Completed;
    let mut last_progress: Option<Instant> = None;
    let mut progress_due = |job: &Job, progress: i32| {
        if last_progress.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) || progress >= 100 {
            last_progress = Some(Instant::now());
            send_progress(&bus, job);
        }
    };
    // The start just confirmed that the job is this node's.
    let mut confirmed = Instant::now();
    for (i, order) in orders.iter().enumerate() {
        if cancel.load(Ordering::SeqCst) {
            end = SubmissionEnd::Cancelled("cancelled while running".into());
            break;
        }
        if stopping.load(Ordering::SeqCst) {
            // What the order system answered so far is kept; the job is
            // recovered as `interrupted` once this node is gone.
            let keep = Keep {
                progress: (i * 100 / total) as i32,
                label: format!("Sent {i} of {sent_of} order(s)"),
                result: job_domain::checkpoint(&order_ids, &results, None),
            };
            let _ = confirm(&db, &job_id, keep, lease, &mut confirmed).await;
            log::info!("job {job_id}: the server is stopping; {i} of {sent_of} order(s) sent");
            return;
        }
        // Before each send: the job is still this node's, nobody cancelled
        // it, and the checkpoint names the order about to go, so whoever
        // recovers the job knows the order system may have it.
        let progress = (i * 100 / total) as i32;
        let keep = Keep {
            progress,
            label: format!("Sent {i} of {sent_of} order(s)"),
            result: job_domain::checkpoint(&order_ids, &results, Some(&order.id)),
        };
        match confirm(&db, &job_id, keep, lease, &mut confirmed).await {
            Confirmed::Ours(job, None) => progress_due(&job, progress),
            Confirmed::Ours(_, Some(by)) => {
                end = SubmissionEnd::Cancelled(format!("cancelled by {by}"));
                break;
            }
            Confirmed::Lost => {
                log::warn!(
                    "job {job_id}: no longer this node's (another took it over); stopping before order {} of {sent_of}",
                    i + 1
                );
                return;
            }
            Confirmed::Unreachable => {
                log::error!(
                    "job {job_id}: could not confirm for {:?} that the job is still this node's (the database is unreachable); \
                     stopping before order {} of {sent_of}, which another node may be sending after this node's lease",
                    lease / 2,
                    i + 1
                );
                return;
            }
        }
        match erp.submit(order).await {
            Ok(number) => {
                results.insert(order.id.clone(), OrderResult::Submitted(number));
            }
            Err(ErpError::Rejected(reason)) => {
                results.insert(order.id.clone(), OrderResult::Rejected(reason));
            }
            Err(err @ ErpError::Unavailable(_)) => {
                end = SubmissionEnd::Failed(err.to_string());
                break;
            }
        }
    }
    if matches!(end, SubmissionEnd::Completed) {
        // What the last order got, and 100 %, before the outcome.
        let keep = Keep {
            progress: 100,
            label: format!("Sent {sent_of} of {sent_of} order(s)"),
            result: job_domain::checkpoint(&order_ids, &results, None),
        };
        match confirm(&db, &job_id, keep, lease, &mut confirmed).await {
            Confirmed::Ours(job, _) => progress_due(&job, 100),
            Confirmed::Lost | Confirmed::Unreachable => {
                log::warn!("job {job_id}: every order was sent, but the job is no longer this node's; its recovery keeps the numbers");
                return;
            }
        }
    }
    let finish = job_domain::FinishSubmission {
        user_id,
        job_id: job_id.clone(),
        order_ids,
        results,
        end,
        node: db.node,
    };
    // The ERP has answered: keep trying until the outcome is stored.
    let mut delay = Duration::from_millis(200);
    loop {
        match command::execute(&db, finish.clone()).await {
            Ok((_, events)) => return bus.publish(events, None),
            Err(err) => {
                log::error!("job {job_id}: storing its outcome failed (retrying): {err}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// What stops a runner between two orders.
pub(super) struct Stops {
    /// This job was cancelled.
    pub cancel: Arc<AtomicBool>,
    /// The server is stopping.
    pub stopping: Arc<AtomicBool>,
    /// How long a node's heartbeat holds its jobs: a runner that cannot
    /// confirm the job is still its node's for half of it stops.
    pub lease: Duration,
}

/// What a runner keeps on its job before each send.
struct Keep {
    progress: i32,
    label: String,
    result: String,
}

/// Whether the runner may go on.
enum Confirmed {
    /// The job is this node's; who asked to cancel it, if anyone did.
    Ours(Box<Job>, Option<String>),
    /// Another node took it over (this node's lease ran out).
    Lost,
    /// The database could not be reached for half a lease: another node may
    /// take the job over at any moment, so nothing more may be sent.
    Unreachable,
}

/// Keeps `keep` on the job, which is also the check that the job is still
/// this node's; retried with backoff while the database is unreachable, but
/// never past half a lease since the last confirmation.
async fn confirm(
    db: &Db,
    job_id: &str,
    keep: Keep,
    lease: Duration,
    confirmed: &mut Instant,
) -> Confirmed {
    let mut delay = Duration::from_millis(100);
    loop {
        match job_domain::save_progress(
            &db.write,
            job_id,
            keep.progress,
            Some(keep.label.clone()),
            Some(keep.result.clone()),
            wire::now_ms(),
            db.node,
        )
        .await
        {
            Ok(Some((job, cancel))) => {
                *confirmed = Instant::now();
                return Confirmed::Ours(Box::new(job), cancel);
            }
            Ok(None) => return Confirmed::Lost,
            Err(err) => {
                if confirmed.elapsed() + delay >= lease / 2 {
                    return Confirmed::Unreachable;
                }
                log::warn!(
                    "job {job_id}: keeping its progress failed ({err}); retrying in {delay:?}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
