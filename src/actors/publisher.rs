//! The publisher: `POST /api/publish` events into the log, with group commit.
//!
//! Requests that arrive while a transaction is committing wait and are then
//! committed together in the next one. Each request is answered only after
//! the transaction holding its events committed, and only then are the
//! events handed to the registry. Under load this turns many small commits
//! into few large ones; alone, a request commits at once.

use std::collections::BTreeMap;

use actix::prelude::*;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::{
    actors::registry::{dispatch, ConnectedUsers, Registry},
    db::Db,
    events::{Event, RoomKey, SharedEvent},
    outbox::{self, NewEvent},
    wire::{self, realtime::is_transient},
};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone)]
pub enum Targets {
    Users(Vec<String>),
    /// Every user with a stream, and every user connected now.
    All,
}

/// The seq given to each user (`None` for transient events).
pub type Seqs = BTreeMap<String, Option<u64>>;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the event could not be stored: {0}")]
    Database(String),
    #[error("the publisher stopped")]
    Stopped,
}

#[derive(Message)]
#[rtype(result = "Result<Seqs, PublishError>")]
pub struct Publish {
    pub targets: Targets,
    pub kind: String,
    pub payload: Box<RawValue>,
    pub origin: Option<String>,
}

struct Waiting {
    request: Publish,
    reply: oneshot::Sender<Result<Seqs, PublishError>>,
}

pub struct Publisher {
    db: Db,
    registry: Addr<Registry>,
    queue: Vec<Waiting>,
    committing: bool,
}

impl Publisher {
    pub fn new(db: Db, registry: Addr<Registry>) -> Self {
        Publisher {
            db,
            registry,
            queue: Vec::new(),
            committing: false,
        }
    }

    fn commit_next(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.queue.is_empty() {
            return;
        }
        self.committing = true;
        let take = self.queue.len().min(MAX_BATCH);
        let batch: Vec<Waiting> = self.queue.drain(..take).collect();
        let (db, registry) = (self.db.clone(), self.registry.clone());
        let work = async move {
            let result = commit_batch(&db, &registry, &batch).await;
            match result {
                Ok((events, per_request)) => {
                    dispatch(&registry, events, None);
                    for (waiting, seqs) in batch.into_iter().zip(per_request) {
                        let _ = waiting.reply.send(Ok(seqs));
                    }
                }
                Err(err) => {
                    log::error!("publishing {} request(s) failed: {err}", batch.len());
                    for waiting in batch {
                        let _ = waiting
                            .reply
                            .send(Err(PublishError::Database(err.to_string())));
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, publisher, ctx| {
            publisher.committing = false;
            publisher.commit_next(ctx);
        }));
    }
}

/// Every user with a stream, and every user connected now.
async fn everyone(db: &Db, registry: &Addr<Registry>) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut users = outbox::user_streams(&db.read).await?;
    users.extend(registry.send(ConnectedUsers).await.unwrap_or_default());
    users.sort();
    users.dedup();
    Ok(users)
}

/// One transaction for the whole batch; answers the events in commit order
/// and each request's seqs.
async fn commit_batch(
    db: &Db,
    registry: &Addr<Registry>,
    batch: &[Waiting],
) -> Result<(Vec<SharedEvent>, Vec<Seqs>), sea_orm::DbErr> {
    // Group by user, keeping request order within each user's stream.
    let mut per_user: BTreeMap<String, Vec<(usize, NewEvent)>> = BTreeMap::new();
    // `all` is resolved once per batch, however many requests ask for it.
    let mut all: Option<Vec<String>> = None;
    for (i, waiting) in batch.iter().enumerate() {
        let req = &waiting.request;
        let users = match &req.targets {
            Targets::Users(users) => users,
            Targets::All => match &mut all {
                Some(list) => &*list,
                slot => &*slot.insert(everyone(db, registry).await?),
            },
        };
        for user in users {
            per_user.entry(user.clone()).or_default().push((
                i,
                NewEvent {
                    kind: req.kind.clone(),
                    payload: req.payload.clone(),
                    origin: req.origin.clone(),
                },
            ));
        }
    }
    let now = wire::now_ms();
    let txn = db.begin().await?;
    let mut events = Vec::new();
    let mut seqs: Vec<Seqs> = vec![Seqs::new(); batch.len()];
    for (user, items) in per_user {
        let (owners, news): (Vec<usize>, Vec<NewEvent>) = items.into_iter().unzip();
        let appended = outbox::append(&txn, &RoomKey::User(user.clone()), news, now).await?;
        for (owner, event) in owners.into_iter().zip(&appended) {
            seqs[owner].insert(user.clone(), event.seq);
        }
        events.extend(appended);
    }
    txn.commit().await?;
    Ok((events, seqs))
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
    }
}

impl Handler<Publish> for Publisher {
    type Result = ResponseFuture<Result<Seqs, PublishError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        if is_transient(&msg.kind) {
            // Live only: nothing to store, nothing to wait for.
            let registry = self.registry.clone();
            return Box::pin(async move {
                let users = match msg.targets {
                    Targets::Users(users) => users,
                    Targets::All => registry.send(ConnectedUsers).await.unwrap_or_default(),
                };
                let now = wire::now_ms();
                let events: Vec<SharedEvent> = users
                    .iter()
                    .map(|u| {
                        Event::new(
                            RoomKey::User(u.clone()),
                            None,
                            msg.kind.clone(),
                            &msg.payload,
                            msg.origin.clone(),
                            now,
                        )
                    })
                    .collect();
                dispatch(&registry, events, None);
                Ok(users.into_iter().map(|u| (u, None)).collect())
            });
        }
        let (reply, answer) = oneshot::channel();
        self.queue.push(Waiting {
            request: msg,
            reply,
        });
        self.commit_next(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(PublishError::Stopped)) })
    }
}
