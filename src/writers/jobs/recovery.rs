//! Taking over the jobs of nodes that are gone (at startup, then from the
//! supervisor every lease / 2).

use std::time::Duration;

use crate::{
    bus::{node::live_nodes, Bus},
    store::{
        command::{self, DomainError},
        db::Db,
        jobs as job_domain,
    },
};

/// Recovery of jobs whose node is gone (at startup, then every lease / 2):
/// a node holds its built-in jobs while its heartbeat is younger than the
/// lease. Running jobs of a node without a fresh heartbeat fail with
/// `interrupted` (their orders keep the number they got, or go back to
/// `pending`); queued ones are claimed by this node and answered to run.
/// A live node's jobs are never touched, so a node that restarts or starts
/// fails nothing another node is running.
pub async fn take_over(
    db: &Db,
    bus: &Bus,
    lease: Duration,
) -> Result<Vec<(String, String)>, DomainError> {
    let Some(me) = db.node else {
        return Ok(Vec::new());
    };
    let mut live: Vec<i64> = if db.is_sqlite() {
        Vec::new()
    } else {
        live_nodes(db, lease)
            .await?
            .into_iter()
            .map(|n| n.id)
            .collect()
    };
    if !live.contains(&me) {
        live.push(me);
    }
    for user_id in job_domain::users_to_recover(&db.read, &live).await? {
        let recover = job_domain::Recover {
            user_id: user_id.clone(),
            live: live.clone(),
        };
        let (count, events) = command::execute(db, recover).await?;
        bus.publish(events, None);
        if count > 0 {
            log::warn!(
                "marked {count} interrupted job(s) of {user_id} as failed (their node is gone)"
            );
        }
    }
    let claimed = job_domain::claim_queued(&db.write, me, &live).await?;
    if !claimed.is_empty() {
        log::info!(
            "took over {} queued job(s) of nodes that are gone",
            claimed.len()
        );
    }
    Ok(claimed)
}
