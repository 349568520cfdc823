//! The publisher: `POST /api/publish` events into the log, with group commit.
//!
//! Requests that arrive while a transaction is committing wait and are then
//! committed together in the next one. Each request is answered only after
//! the transaction holding its events committed, and only then are the
//! events handed to their rooms. Under load this turns many small commits
//! into few large ones; alone, a request commits at once.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use actix::prelude::*;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::{
    actors::{
        registry::{ConnectedUsers, Registry},
        rooms::Rooms,
    },
    db::Db,
    events::{Event, RoomKey, SharedEvent},
    outbox::{self, NewEvent},
    wire::{self, realtime::is_transient},
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

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the event could not be stored: {0}")]
    Database(String),
    #[error("the publisher stopped")]
    Stopped,
    /// Recipients × payload bytes over `HERALD_MAX_PUBLISH_BYTES`.
    #[error("{users} recipients × {bytes} bytes is over the publish limit")]
    TooLarge { users: usize, bytes: usize },
    /// The `Idempotency-Key` was used with another body.
    #[error("this Idempotency-Key was used with another body")]
    KeyReused,
}

/// A publish's `Idempotency-Key`, scoped to its caller, and a hash of its
/// body: a repeat with the same hash answers the first publish's seqs.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

#[derive(Message)]
#[rtype(result = "Result<Seqs, PublishError>")]
pub struct Publish {
    pub targets: Targets,
    pub kind: String,
    pub payload: Arc<RawValue>,
    pub origin: Option<String>,
    pub idempotency: Option<IdempotencyKey>,
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
    reply: oneshot::Sender<Result<Seqs, PublishError>>,
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
    registry: Addr<Registry>,
    rooms: Rooms,
    max_fan_out_bytes: u64,
}

impl Publishers {
    pub fn new(db: Db, registry: Addr<Registry>, rooms: Rooms, max_fan_out_bytes: u64) -> Self {
        Publishers {
            db,
            registry,
            rooms,
            max_fan_out_bytes,
        }
    }

    /// A publisher on the current thread's arbiter.
    pub fn start_here(&self) -> Addr<Publisher> {
        Publisher::new(
            self.db.clone(),
            self.registry.clone(),
            self.rooms.clone(),
            self.max_fan_out_bytes,
        )
        .start()
    }
}

pub struct Publisher {
    db: Db,
    registry: Addr<Registry>,
    rooms: Rooms,
    queue: VecDeque<Waiting>,
    committing: bool,
    /// Recipients × payload bytes one publish may write.
    max_fan_out_bytes: u64,
}

impl Publisher {
    pub fn new(db: Db, registry: Addr<Registry>, rooms: Rooms, max_fan_out_bytes: u64) -> Self {
        Publisher {
            db,
            registry,
            rooms,
            queue: VecDeque::new(),
            committing: false,
            max_fan_out_bytes,
        }
    }

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
        let (db, registry, rooms, cap) = (
            self.db.clone(),
            self.registry.clone(),
            self.rooms.clone(),
            self.max_fan_out_bytes,
        );
        let work = async move {
            // `all` is resolved once per batch, however many requests ask for it.
            let all = if batch
                .iter()
                .any(|w| matches!(w.request.targets, Targets::All))
            {
                match everyone(&db, &registry).await {
                    Ok(users) => Some(users),
                    Err(err) => return fail_batch(batch, &err),
                }
            } else {
                None
            };
            let (batch, refused) = refuse_oversized_all(batch, all.as_deref(), cap);
            for (waiting, err) in refused {
                let _ = waiting.reply.send(Err(err));
            }
            match commit_batch(&db, &batch, all.as_deref()).await {
                Ok((events, per_request)) => {
                    rooms.dispatch(events, None);
                    for (waiting, answer) in batch.into_iter().zip(per_request) {
                        let _ = waiting.reply.send(answer);
                    }
                }
                Err(err) => fail_batch(batch, &err),
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, publisher, ctx| {
            publisher.committing = false;
            publisher.commit_next(ctx);
        }));
    }
}

/// Answers every request of a batch that could not be stored.
fn fail_batch(batch: Vec<Waiting>, err: &sea_orm::DbErr) {
    log::error!("publishing {} request(s) failed: {err}", batch.len());
    for waiting in batch {
        let _ = waiting
            .reply
            .send(Err(PublishError::Database(err.to_string())));
    }
}

/// Every user with a stream, and every user connected now (to any node:
/// the others' lists are their last heartbeats').
async fn everyone(db: &Db, registry: &Addr<Registry>) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut users = outbox::user_streams(&db.read).await?;
    users.extend(registry.send(ConnectedUsers).await.unwrap_or_default());
    if !db.is_sqlite() {
        for node in crate::cluster::live_nodes(db, std::time::Duration::from_secs(30)).await? {
            users.extend(
                crate::cluster::connections_of(&node)
                    .into_iter()
                    .filter(|c| c.kind == crate::actors::registry::ConnKind::Realtime)
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
pub fn exceeds_fan_out(users: usize, bytes: usize, cap: u64) -> bool {
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

/// What a request of a batch turns out to be once its key is looked up.
enum Fate {
    /// Publish it.
    New,
    /// A repeat of an earlier request of this batch (index).
    SameAs(usize),
    /// A repeat of a stored publish: its answer.
    Stored(Seqs),
    /// The key came with another body.
    Reused,
}

/// Looks `key` up in the log's transaction (a row older than the TTL no
/// longer counts, and goes).
async fn stored_answer(
    txn: &sea_orm::DatabaseTransaction,
    key: &IdempotencyKey,
    now: i64,
) -> Result<Option<Fate>, sea_orm::DbErr> {
    use entity::idempotency_keys;
    use sea_orm::EntityTrait;
    let Some(row) = idempotency_keys::Entity::find_by_id(key.key.clone())
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    if row.created_at < now - IDEMPOTENCY_TTL_MS {
        idempotency_keys::Entity::delete_by_id(row.key)
            .exec(txn)
            .await?;
        return Ok(None);
    }
    if row.request_hash != key.request_hash {
        return Ok(Some(Fate::Reused));
    }
    Ok(Some(Fate::Stored(
        serde_json::from_str(&row.response).unwrap_or_default(),
    )))
}

/// One transaction for the whole batch; answers the events in commit order
/// and each request's answer. A request with an `Idempotency-Key` that was
/// answered before gets that answer and publishes nothing; a new key is
/// stored with its answer in the same transaction as its events.
async fn commit_batch(
    db: &Db,
    batch: &[Waiting],
    all: Option<&[String]>,
) -> Result<(Vec<SharedEvent>, Vec<Result<Seqs, PublishError>>), sea_orm::DbErr> {
    if batch.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let txn = db.begin().await?;
    // Taken under the write lock; the log orders timestamps per stream.
    let now = wire::now_ms();
    let mut fates = Vec::with_capacity(batch.len());
    let mut first_of: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (i, waiting) in batch.iter().enumerate() {
        let fate = match &waiting.request.idempotency {
            None => Fate::New,
            Some(key) => match first_of.get(key.key.as_str()) {
                Some(&(j, hash)) if hash == key.request_hash => Fate::SameAs(j),
                Some(_) => Fate::Reused,
                None => match stored_answer(&txn, key, now).await? {
                    Some(fate) => fate,
                    None => {
                        first_of.insert(&key.key, (i, &key.request_hash));
                        Fate::New
                    }
                },
            },
        };
        fates.push(fate);
    }
    // Claim the new keys before writing anything, in key order (so two
    // nodes' groups claiming the same keys cannot deadlock). On PostgreSQL a
    // key another node's group is storing right now makes this insert wait
    // for that group's commit; then the key is theirs, and this request
    // gets their answer instead of publishing again.
    let mut claims: Vec<(&str, usize)> = first_of.iter().map(|(k, (i, _))| (*k, *i)).collect();
    claims.sort();
    for (_, i) in claims {
        let key = batch[i].request.idempotency.as_ref().expect("keyed");
        if !claim_key(&txn, key, now).await? {
            fates[i] = stored_answer(&txn, key, now).await?.unwrap_or(Fate::Reused);
        }
    }
    // Group by user, keeping request order within each user's stream.
    let mut per_user: BTreeMap<String, Vec<(usize, NewEvent)>> = BTreeMap::new();
    for (i, waiting) in batch.iter().enumerate() {
        if !matches!(fates[i], Fate::New) {
            continue;
        }
        let req = &waiting.request;
        let users = match &req.targets {
            Targets::Users(users) => users,
            Targets::All => all.expect("resolved for the batch"),
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
    // Every user's events in one upsert and one insert (per chunk).
    let mut owners: Vec<(String, Vec<usize>)> = Vec::with_capacity(per_user.len());
    let mut streams = BTreeMap::new();
    for (user, items) in per_user {
        let (mine, news): (Vec<usize>, Vec<NewEvent>) = items.into_iter().unzip();
        streams.insert(RoomKey::User(user.clone()), news);
        owners.push((user, mine));
    }
    let appended = outbox::append_many(&txn, streams, now, db.node).await?;
    let mut events = Vec::new();
    let mut seqs: Vec<Seqs> = vec![Seqs::new(); batch.len()];
    for ((user, mine), stream) in owners.into_iter().zip(appended) {
        for (owner, event) in mine.into_iter().zip(&stream) {
            seqs[owner].insert(user.clone(), event.seq);
        }
        events.extend(stream);
    }
    for (i, waiting) in batch.iter().enumerate() {
        if let (Fate::New, Some(key)) = (&fates[i], &waiting.request.idempotency) {
            use entity::idempotency_keys;
            use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
            idempotency_keys::Entity::update_many()
                .col_expr(
                    idempotency_keys::Column::Response,
                    Expr::value(serde_json::to_string(&seqs[i]).expect("seqs serialize")),
                )
                .filter(idempotency_keys::Column::Key.eq(key.key.as_str()))
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    let answer = |i: usize| match &fates[i] {
        Fate::New => Ok(seqs[i].clone()),
        Fate::Stored(stored) => Ok(stored.clone()),
        Fate::Reused | Fate::SameAs(_) => Err(PublishError::KeyReused),
    };
    let answers = (0..batch.len())
        .map(|i| match fates[i] {
            // The same answer as the first request with its key, whatever
            // that one turned out to be.
            Fate::SameAs(j) => answer(j),
            _ => answer(i),
        })
        .collect();
    Ok((events, answers))
}

/// Takes `key` for this group (a row whose answer is filled in before the
/// commit); false when another group already holds it.
async fn claim_key(
    txn: &sea_orm::DatabaseTransaction,
    key: &IdempotencyKey,
    now: i64,
) -> Result<bool, sea_orm::DbErr> {
    use entity::idempotency_keys;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let inserted = idempotency_keys::Entity::insert(idempotency_keys::ActiveModel {
        key: Set(key.key.clone()),
        request_hash: Set(key.request_hash.clone()),
        response: Set("{}".into()),
        created_at: Set(now),
    })
    .on_conflict_do_nothing_on([idempotency_keys::Column::Key])
    .exec_without_returning(txn)
    .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n == 1))
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
            let (registry, rooms) = (self.registry.clone(), self.rooms.clone());
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
                rooms.dispatch(events, None);
                Ok(users.into_iter().map(|u| (u, None)).collect())
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
