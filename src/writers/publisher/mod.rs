//! The publisher: `POST /api/publish` events into the log, with group commit.
//!
//! Requests that arrive while a transaction is committing wait and are then
//! committed together in the next one. Each request is answered only after
//! the transaction holding its events committed, and only then are the
//! events handed to their rooms. Under load this turns many small commits
//! into few large ones; alone, a request commits at once. Each HTTP worker
//! has its own publisher ([`Publishers`]); [`group`] is one group's
//! transaction.

mod group;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use actix::prelude::*;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::{
    bus::{
        node::{connections_of, live_nodes},
        Bus,
    },
    core::{
        events::{Record, RoomKey},
        messages::{ConnKind, ConnectedUsers},
        wire::{self, realtime::is_transient},
    },
    store::{db::Db, event_log},
};

/// A commit group closes at this many events (recipients × requests)...
const MAX_GROUP_EVENTS: usize = 4096;
/// ...or at this many payload bytes, whichever comes first (a request alone
/// may exceed either: it is never split).
const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub enum Targets {
    Users(Vec<String>),
    /// Every user with a stream, and every user connected now.
    All,
}

/// The seq given to each user (`None` for transient events).
pub type Seqs = BTreeMap<String, Option<u64>>;

/// A publish's answer: the seqs, and whether they are a stored answer given
/// again (a repeated `Idempotency-Key`).
#[derive(Debug, Clone)]
pub struct Published {
    pub seqs: Seqs,
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the event could not be stored: {0}")]
    Database(#[source] Arc<sea_orm::DbErr>),
    #[error("the publisher stopped")]
    Stopped,
    /// Recipients × payload bytes over `HERALD_MAX_PUBLISH_BYTES`.
    #[error("{users} recipients × {bytes} bytes is over the publish limit")]
    TooLarge { users: usize, bytes: usize },
    /// The `Idempotency-Key` was used with another body.
    #[error("this Idempotency-Key was used with another body")]
    KeyReused,
}

/// A publish's `Idempotency-Key` (its receipt, scoped to its caller, with
/// a hash of the request): a repeat with the same hash answers the first
/// publish's seqs.
pub type IdempotencyKey = crate::store::receipts::Receipt;

#[derive(Message)]
#[rtype(result = "Result<Published, PublishError>")]
pub struct Publish {
    pub targets: Targets,
    pub kind: String,
    pub payload: Arc<RawValue>,
    pub origin: Option<String>,
    /// Stored answers: none for a transient publish.
    pub idempotency: Option<IdempotencyKey>,
    /// The key the request came with: its events' `mutationId`.
    pub mutation_id: Option<Arc<str>>,
}

impl Publish {
    /// Events and payload bytes this request writes (`all` counts as one
    /// recipient until it is resolved).
    fn weight(&self) -> (usize, usize) {
        let users = match &self.targets {
            Targets::Users(users) => users.len(),
            Targets::All => 1,
        };
        (users, users * self.payload.get().len())
    }
}

struct Waiting {
    request: Publish,
    reply: oneshot::Sender<Result<Published, PublishError>>,
}

/// What it takes to start a publisher. Each HTTP worker starts its own
/// (`startup`), so a publish is grouped and committed on the thread that
/// read its request: no hop to another thread and back before the
/// database. Several publishers are several writers, like the CRUD and job
/// actors or other nodes: the write connection orders their commits, and
/// rooms put events that arrive out of commit order back in seq order.
#[derive(Clone)]
pub struct Publishers {
    db: Db,
    /// Who is connected now (the registry), for `all`.
    connected: Recipient<ConnectedUsers>,
    bus: Bus,
    /// Recipients × payload bytes one publish may write.
    max_fan_out_bytes: u64,
}

impl Publishers {
    pub fn new(
        db: Db,
        connected: Recipient<ConnectedUsers>,
        bus: Bus,
        max_fan_out_bytes: u64,
    ) -> Self {
        Publishers {
            db,
            connected,
            bus,
            max_fan_out_bytes,
        }
    }

    /// A publisher on the current thread's arbiter.
    pub fn start_here(&self) -> Addr<Publisher> {
        Publisher {
            setup: self.clone(),
            queue: VecDeque::new(),
            committing: false,
        }
        .start()
    }
}

pub struct Publisher {
    setup: Publishers,
    queue: VecDeque<Waiting>,
    committing: bool,
}

impl Publisher {
    /// The next commit group: whole requests, closed by events or bytes.
    fn next_group(&mut self) -> Vec<Waiting> {
        let (mut events, mut bytes) = (0usize, 0usize);
        let mut group = Vec::new();
        while let Some(next) = self.queue.front() {
            let (e, b) = next.request.weight();
            if !group.is_empty() && (events + e > MAX_GROUP_EVENTS || bytes + b > MAX_GROUP_BYTES) {
                break;
            }
            events += e;
            bytes += b;
            group.push(self.queue.pop_front().expect("peeked"));
        }
        group
    }

    fn commit_next(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.queue.is_empty() {
            return;
        }
        self.committing = true;
        let batch = self.next_group();
        let Publishers {
            db,
            connected,
            bus,
            max_fan_out_bytes: cap,
        } = self.setup.clone();
        let work = async move {
            // `all` is resolved once per batch, however many requests ask for it.
            let all = if batch
                .iter()
                .any(|w| matches!(w.request.targets, Targets::All))
            {
                match everyone(&db, &connected).await {
                    Ok(users) => Some(users),
                    Err(err) => return fail_batch(batch, err),
                }
            } else {
                None
            };
            let (batch, refused) = refuse_oversized_all(batch, all.as_deref(), cap);
            for (waiting, err) in refused {
                let _ = waiting.reply.send(Err(err));
            }
            match group::commit_batch(&db, &batch, all.as_deref()).await {
                Ok((events, per_request)) => {
                    bus.publish(events, None);
                    for (waiting, answer) in batch.into_iter().zip(per_request) {
                        let _ = waiting.reply.send(answer);
                    }
                }
                Err(err) => fail_batch(batch, err),
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, publisher, ctx| {
            publisher.committing = false;
            publisher.commit_next(ctx);
        }));
    }
}

/// Answers every request of a batch that could not be stored.
fn fail_batch(batch: Vec<Waiting>, err: sea_orm::DbErr) {
    log::error!("publishing {} request(s) failed: {err}", batch.len());
    let err = Arc::new(err);
    for waiting in batch {
        let _ = waiting.reply.send(Err(PublishError::Database(err.clone())));
    }
}

/// Every user with a stream, and every user connected now (to any node:
/// the others' lists are their last heartbeats').
async fn everyone(
    db: &Db,
    connected: &Recipient<ConnectedUsers>,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut users = event_log::user_streams(&db.read).await?;
    users.extend(connected.send(ConnectedUsers).await.unwrap_or_default());
    if !db.is_sqlite() {
        for node in live_nodes(db, std::time::Duration::from_secs(30)).await? {
            users.extend(
                connections_of(&node)
                    .into_iter()
                    .filter(|c| c.kind == ConnKind::Realtime)
                    .map(|c| c.user_id),
            );
        }
    }
    users.sort();
    users.dedup();
    Ok(users)
}

/// Whether writing `bytes` of payload to each of `users` recipients is over
/// the cap (`HERALD_MAX_PUBLISH_BYTES`); an empty payload still costs a row.
/// The one place the cap is checked: at once for a list of users, once
/// `all` is resolved for the others.
fn exceeds_fan_out(users: usize, bytes: usize, cap: u64) -> bool {
    (users as u64).saturating_mul(bytes.max(1) as u64) > cap
}

/// Answers `TooLarge` to `all` publishes whose payload, times every user
/// (`all`, resolved for the batch), is over the cap; keeps the rest.
fn refuse_oversized_all(
    batch: Vec<Waiting>,
    all: Option<&[String]>,
    cap: u64,
) -> (Vec<Waiting>, Vec<(Waiting, PublishError)>) {
    let Some(all) = all else {
        return (batch, Vec::new());
    };
    let users = all.len();
    let mut keep = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for waiting in batch {
        let bytes = waiting.request.payload.get().len();
        if matches!(waiting.request.targets, Targets::All) && exceeds_fan_out(users, bytes, cap) {
            refused.push((waiting, PublishError::TooLarge { users, bytes }));
        } else {
            keep.push(waiting);
        }
    }
    (keep, refused)
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
    }
}

impl Handler<Publish> for Publisher {
    type Result = ResponseFuture<Result<Published, PublishError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        if let Targets::Users(users) = &msg.targets {
            let (users, bytes) = (users.len(), msg.payload.get().len());
            if exceeds_fan_out(users, bytes, self.setup.max_fan_out_bytes) {
                return Box::pin(async move { Err(PublishError::TooLarge { users, bytes }) });
            }
        }
        if is_transient(&msg.kind) {
            // Live only: nothing to store, nothing to wait for.
            let (connected, bus) = (self.setup.connected.clone(), self.setup.bus.clone());
            return Box::pin(async move {
                let users = match msg.targets {
                    Targets::Users(users) => users,
                    Targets::All => connected.send(ConnectedUsers).await.unwrap_or_default(),
                };
                let now = wire::now_ms();
                let records: Vec<Record> = users
                    .iter()
                    .map(|u| Record {
                        room: RoomKey::User(u.clone()),
                        seq: None,
                        kind: msg.kind.clone(),
                        payload: msg.payload.clone(),
                        origin: msg.origin.clone(),
                        mutation_id: msg.mutation_id.as_deref().map(str::to_owned),
                        created_at: now,
                    })
                    .collect();
                bus.publish(records, None);
                Ok(Published {
                    seqs: users.into_iter().map(|u| (u, None)).collect(),
                    replayed: false,
                })
            });
        }
        let (reply, answer) = oneshot::channel();
        self.queue.push_back(Waiting {
            request: msg,
            reply,
        });
        self.commit_next(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(PublishError::Stopped)) })
    }
}
