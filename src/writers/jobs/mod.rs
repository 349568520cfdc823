//! The job supervisor: queues jobs, runs built-in ones (at most
//! `HERALD_JOB_CONCURRENCY` at a time), takes external workers' reports, and
//! cancels. Built-in jobs run in [`runner`]; [`recovery`] takes over the
//! jobs of nodes that are gone.
//!
//! Every state change is a [`store::jobs`](crate::store::jobs) command: one
//! transaction with its event, published on the bus after commit. `JOB_PROGRESS` is transient and throttled
//! to about four a second per job (the latest value is sent when the window
//! closes, and 100 always goes out at once).

mod recovery;
mod requests;
mod runner;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix::prelude::*;
use serde_json::value::RawValue;

pub use job_domain::Cancelled;
pub use recovery::take_over;
use runner::{run_submission, send_progress, Stops};

use crate::{
    bus::Bus,
    core::wire::dashboard::Job,
    store::command,
    store::command::DomainError,
    store::db::Db,
    store::jobs::{self as job_domain, Report},
    store::receipts::{Receipt, Render, Written},
    writers::erp::ErpConnector,
};

/// Shortest time between two `JOB_PROGRESS` of one job.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[derive(Message)]
#[rtype(result = "Result<Written<Job>, DomainError>")]
pub struct CreateJob {
    pub user_id: String,
    /// Chosen by the caller's `Idempotency-Key`: a job with this id already
    /// queued for the user is answered instead of queuing another.
    pub id: Option<String>,
    pub kind: String,
    pub params: Box<RawValue>,
    /// The request's `Idempotency-Key`, and how its answer is stored.
    pub receipt: Option<(Receipt, Render<Job>)>,
}

#[derive(Message)]
#[rtype(result = "Result<Written<Cancelled>, DomainError>")]
pub struct CancelJob {
    pub user_id: String,
    pub job_id: String,
    pub by: String,
    pub receipt: Option<(Receipt, Render<Cancelled>)>,
}

#[derive(Message)]
#[rtype(result = "Result<Job, DomainError>")]
pub struct WorkerReport {
    pub user_id: String,
    pub job_id: String,
    pub report: Report,
}

/// A built-in runner finished.
#[derive(Message)]
#[rtype(result = "()")]
struct RunnerDone {
    job_id: String,
}

/// Sends a throttled progress whose window has closed.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushProgress {
    job_id: String,
}

struct Throttle {
    last: Instant,
    pending: Option<Job>,
    scheduled: bool,
}

pub struct JobSupervisor {
    db: Db,
    bus: Bus,
    erp: Arc<dyn ErpConnector>,
    concurrency: usize,
    queue: VecDeque<(String, String)>,
    running: HashMap<String, Arc<AtomicBool>>,
    throttles: HashMap<String, Throttle>,
    /// How long a node's heartbeat holds its jobs (see [`take_over`]).
    lease: Duration,
    sweeping: bool,
    /// The server is stopping: runners stop before their next order and no
    /// job starts (see [`Drain`]).
    stopping: Arc<AtomicBool>,
    /// Answered once no runner is left.
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl JobSupervisor {
    pub fn new(db: Db, bus: Bus, erp: Arc<dyn ErpConnector>, concurrency: usize) -> Self {
        JobSupervisor {
            db,
            bus,
            erp,
            concurrency: concurrency.max(1),
            queue: VecDeque::new(),
            running: HashMap::new(),
            throttles: HashMap::new(),
            lease: Duration::from_secs(10),
            sweeping: false,
            stopping: Arc::new(AtomicBool::new(false)),
            drained: Vec::new(),
        }
    }

    /// How long a node's heartbeat holds its jobs.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Takes over the jobs of nodes whose lease ran out (every lease / 2).
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let (db, bus, lease) = (self.db.clone(), self.bus.clone(), self.lease);
        ctx.spawn(
            async move { take_over(&db, &bus, lease).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.sweeping = false;
                    match res {
                        Ok(claimed) => act.resume(claimed, ctx),
                        Err(err) => log::warn!("taking over dead nodes' jobs failed: {err}"),
                    }
                }),
        );
    }

    /// Starts queued built-in jobs while there is room.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        while self.running.len() < self.concurrency {
            let Some((user_id, job_id)) = self.queue.pop_front() else {
                return;
            };
            let cancel = Arc::new(AtomicBool::new(false));
            self.running.insert(job_id.clone(), cancel.clone());
            let runner = run_submission(
                self.db.clone(),
                self.bus.clone(),
                self.erp.clone(),
                user_id,
                job_id.clone(),
                Stops {
                    cancel,
                    stopping: self.stopping.clone(),
                    lease: self.lease,
                },
            );
            let me = ctx.address();
            // A task of its own, not a future of this actor: the actor's
            // atomic handlers pause its own futures, and a runner paused in
            // the middle of a transaction would hold the writer connection.
            actix_web::rt::spawn(async move {
                runner.await;
                me.do_send(RunnerDone { job_id });
            });
        }
    }

    /// Sends a worker's progress now, or when the throttle window closes.
    fn throttle_progress(&mut self, job: Job, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let entry = self.throttles.entry(job.id.clone()).or_insert(Throttle {
            last: now - PROGRESS_EVERY,
            pending: None,
            scheduled: false,
        });
        if job.progress >= 100 || now.duration_since(entry.last) >= PROGRESS_EVERY {
            entry.last = now;
            entry.pending = None;
            send_progress(&self.bus, &job);
            return;
        }
        entry.pending = Some(job.clone());
        if !entry.scheduled {
            entry.scheduled = true;
            let wait = PROGRESS_EVERY.saturating_sub(now.duration_since(entry.last));
            ctx.notify_later(FlushProgress { job_id: job.id }, wait);
        }
    }

    /// Queues built-in jobs left queued by a previous process.
    pub fn resume(&mut self, jobs: Vec<(String, String)>, ctx: &mut Context<Self>) {
        self.queue.extend(jobs);
        self.pump(ctx);
    }
}

/// Queues built-in jobs found at startup.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume(pub Vec<(String, String)>);

impl Handler<Resume> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Resume, ctx: &mut Self::Context) {
        self.resume(msg.0, ctx);
    }
}

impl Actor for JobSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.lease / 2, |act, ctx| act.sweep(ctx));
    }
}

impl Handler<WorkerReport> for JobSupervisor {
    type Result = AtomicResponse<Self, Result<Job, DomainError>>;

    fn handle(&mut self, msg: WorkerReport, _: &mut Self::Context) -> Self::Result {
        let (db, bus) = (self.db.clone(), self.bus.clone());
        let is_progress = matches!(msg.report, Report::Progress { .. });
        let cmd = job_domain::WorkerReport {
            user_id: msg.user_id,
            job_id: msg.job_id,
            report: msg.report,
        };
        AtomicResponse::new(Box::pin(
            async move {
                let (job, events) = command::execute(&db, cmd).await?;
                bus.publish(events, None);
                Ok(job)
            }
            .into_actor(self)
            .map(move |res: Result<Job, DomainError>, act, ctx| {
                if let Ok(job) = &res {
                    if is_progress {
                        act.throttle_progress(job.clone(), ctx);
                    } else {
                        act.throttles.remove(&job.id);
                    }
                }
                res
            }),
        ))
    }
}

impl Handler<RunnerDone> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RunnerDone, ctx: &mut Self::Context) {
        self.running.remove(&msg.job_id);
        self.pump(ctx);
        if self.running.is_empty() {
            for done in self.drained.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

/// A graceful stop: runners stop before their next order (what the order
/// system answered is stored first), no queued job starts; answered once no
/// runner is left. The jobs they leave `running` are recovered (as
/// `interrupted`, every order with its number kept) by the next start or by
/// another node once this one deregisters.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for JobSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        self.stopping.store(true, Ordering::SeqCst);
        let (done, drained) = tokio::sync::oneshot::channel();
        if self.running.is_empty() {
            let _ = done.send(());
        } else {
            self.drained.push(done);
        }
        Box::pin(async move {
            let _ = drained.await;
        })
    }
}

impl Handler<FlushProgress> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: FlushProgress, _: &mut Self::Context) {
        if let Some(entry) = self.throttles.get_mut(&msg.job_id) {
            entry.scheduled = false;
            if let Some(job) = entry.pending.take() {
                entry.last = Instant::now();
                send_progress(&self.bus, &job);
            }
        }
    }
}

#[cfg(test)]
mod tests;
