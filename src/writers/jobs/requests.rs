//! The requests that change a job from outside: a create and a cancel
//! (REST, keyed or not), and a cancel another node asked for.

use std::sync::{atomic::Ordering, Arc, Mutex};

use actix::prelude::*;

use super::{CancelJob, Cancelled, CreateJob, JobSupervisor};
use crate::{
    bus::told::{tell, Told},
    core::{messages::CancelRun, wire::dashboard::Job},
    store::{
        command::DomainError,
        jobs as job_domain,
        receipts::{self, Render, Written},
    },
};

impl Handler<CreateJob> for JobSupervisor {
    type Result = AtomicResponse<Self, Result<Written<Job>, DomainError>>;

    fn handle(&mut self, msg: CreateJob, _: &mut Self::Context) -> Self::Result {
        let (db, bus) = (self.db.clone(), self.bus.clone());
        let cmd = job_domain::Create {
            user_id: msg.user_id,
            id: msg.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            kind: msg.kind,
            params: msg.params,
            node: self.db.node,
        };
        // A new built-in job goes on the queue once committed; a keyed
        // create notes here whether it made one.
        let made: Arc<Mutex<Option<Job>>> = Arc::default();
        let receipt = msg.receipt.map(|(receipt, render)| {
            let made = made.clone();
            let render: Render<(Job, bool)> = Box::new(move |result| {
                if let Ok((job, true)) = result {
                    *made.lock().expect("not poisoned") = Some(job.clone());
                }
                render(result.map(|(job, _)| job))
            });
            (receipt, render)
        });
        let noted = made.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let (written, events) = receipts::execute(&db, cmd, receipt).await?;
                bus.publish(events, None);
                let made = noted;
                Ok(match written {
                    Written::Plain((job, fresh)) => {
                        if fresh {
                            *made.lock().expect("not poisoned") = Some(job.clone());
                        }
                        Written::Plain(job)
                    }
                    Written::Keyed(reply) => Written::Keyed(reply),
                })
            }
            .into_actor(self)
            .map(move |res: Result<Written<Job>, DomainError>, act, ctx| {
                let new = made.lock().expect("not poisoned").take();
                if let (Ok(_), Some(job)) = (&res, new) {
                    if job_domain::is_builtin(&job.kind) {
                        act.queue.push_back((job.user_id.clone(), job.id.clone()));
                        act.pump(ctx);
                    }
                }
                res
            }),
        ))
    }
}

impl Handler<CancelJob> for JobSupervisor {
    type Result = AtomicResponse<Self, Result<Written<Cancelled>, DomainError>>;

    fn handle(&mut self, msg: CancelJob, _: &mut Self::Context) -> Self::Result {
        let (db, bus) = (self.db.clone(), self.bus.clone());
        let running_here = match self.running.get(&msg.job_id) {
            // A runner is on it: it stops between two orders. The cancel
            // is also kept on the job, so it holds if this node dies first.
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                true
            }
            None => {
                self.queue.retain(|(_, id)| id != &msg.job_id);
                self.throttles.remove(&msg.job_id);
                false
            }
        };
        let cmd = job_domain::Cancel {
            user_id: msg.user_id.clone(),
            job_id: msg.job_id.clone(),
            by: msg.by.clone(),
            running_here,
            node: db.node,
            lease_ms: self.lease.as_millis() as i64,
        };
        // Running on another live node: the cancel is kept on the job, which
        // that node's runner reads before its next order (and whoever
        // recovers the job honours); a message tells the runner at once.
        let elsewhere: Arc<Mutex<Option<i64>>> = Arc::default();
        let note = |cancelled: &Cancelled, elsewhere: &Mutex<Option<i64>>| {
            if let Cancelled::Requested {
                elsewhere: Some(node),
                ..
            } = cancelled
            {
                *elsewhere.lock().expect("not poisoned") = Some(*node);
            }
        };
        let receipt = msg.receipt.map(|(receipt, render)| {
            let elsewhere = elsewhere.clone();
            let render: Render<Cancelled> = Box::new(move |result| {
                if let Ok(cancelled) = result {
                    note(cancelled, &elsewhere);
                }
                render(result)
            });
            (receipt, render)
        });
        AtomicResponse::new(Box::pin(
            async move {
                let (written, events) = receipts::execute(&db, cmd, receipt).await?;
                bus.publish(events, None);
                if let Written::Plain(cancelled) = &written {
                    note(cancelled, &elsewhere);
                }
                let owner = elsewhere.lock().expect("not poisoned").take();
                if let (Some(owner), Some(me)) = (owner, db.node) {
                    let told = Told::CancelJob {
                        user_id: msg.user_id,
                        job_id: msg.job_id,
                        by: msg.by,
                    };
                    tell(&db, me, Some(owner), &[told]).await?;
                }
                Ok(written)
            }
            .into_actor(self),
        ))
    }
}

/// A cancel another node asked for: as if asked here, answered to nobody.
impl Handler<CancelRun> for JobSupervisor {
    type Result = ();

    fn handle(&mut self, msg: CancelRun, ctx: &mut Self::Context) {
        ctx.address().do_send(CancelJob {
            user_id: msg.user_id,
            job_id: msg.job_id,
            by: msg.by,
            receipt: None,
        });
    }
}
