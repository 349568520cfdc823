//! Deletes events older than the retention window, in the background.
//!
//! Replay does not depend on it: a gap reaching back past the window answers
//! `recovered: false` whether or not its rows are still there.

use std::time::Duration;

use actix::prelude::*;

use crate::{
    core::wire,
    store::{db::Db, event_log},
};

pub struct Pruner {
    db: Db,
    retention: Duration,
    every: Duration,
    /// How long a write's stored answer counts (`HERALD_IDEMPOTENCY_SECS`).
    receipts: Duration,
}

impl Pruner {
    pub fn new(db: Db, retention: Duration, every: Duration, receipts: Duration) -> Self {
        Pruner {
            db,
            retention,
            every,
            receipts,
        }
    }
}

impl Actor for Pruner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |pruner, ctx| {
            let db = pruner.db.clone();
            let before = wire::now_ms() - pruner.retention.as_millis() as i64;
            let receipts = pruner.receipts.as_millis() as i64;
            // One prune at a time: the next tick waits for this one.
            ctx.wait(
                async move {
                    // Chunk by chunk, each its own short statement on the
                    // writer: other writes queue between chunks, not behind
                    // the whole backlog.
                    let mut total = 0;
                    loop {
                        match event_log::prune_chunk(&db.write, before).await {
                            Ok(n) => {
                                total += n;
                                if n < event_log::PRUNE_CHUNK {
                                    break;
                                }
                                tokio::task::yield_now().await;
                            }
                            Err(err) => {
                                log::warn!("pruning old events failed (will retry): {err}");
                                break;
                            }
                        }
                    }
                    if total > 0 {
                        log::info!("pruned {total} events older than the retention window");
                    }
                    let expired = wire::now_ms() - receipts;
                    if let Err(err) = event_log::prune_idempotency_keys(&db.write, expired).await {
                        log::warn!("pruning old idempotency keys failed (will retry): {err}");
                    }
                }
                .into_actor(pruner),
            );
        });
    }
}
