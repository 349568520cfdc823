//! The writers of drafts, pending orders and venues: each owns its
//! domain's writes and commits them in groups.
//!
//! A command runs in a transaction with its events
//! ([`command`]); a writer runs the commands that
//! arrived while its previous group was committing together, in arrival
//! order, in one transaction and one fsync (group commit, as the
//! publisher does). Each command runs under a savepoint of its own: one
//! that is refused (404, 409, a terminal's `DEVICE_NOT_FOUND`, ...) or that
//! the database refuses changes nothing and gets its own error, and the
//! commands after it see exactly the state before it. Every accepted
//! command's events get their seqs in order; only after the commit are they
//! handed to the bus, in that order, and the answers sent. A [`Barrier`]
//! is a step of the queue: it is answered once everything queued before it
//! has committed.

use std::{collections::VecDeque, marker::PhantomData};

use actix::prelude::*;
use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::oneshot;

use crate::{
    bus::Bus,
    core::{
        events::{ConnId, Record, RoomKey},
        wire,
    },
    store::{
        command::{self, BoxFuture, Command, DomainError},
        db::Db,
        drafts, event_log, pending_orders,
        receipts::WithReceipt,
        venue,
    },
};

/// Commands in one group at most: a burst commits in a few groups rather
/// than holding its first answers behind a huge one.
const GROUP_MAX: usize = 256;

/// Commands waiting at most: past this a write is refused at once (retry)
/// rather than held, so no client can make a writer hold more.
const QUEUE_MAX: usize = 16_384;

/// Run this command: `Exec(drafts::Update { .. })`.
pub struct Exec<C>(pub C);

impl<C: Command> Message for Exec<C> {
    type Result = Result<C::Output, DomainError>;
}

/// Commands the drafts writer owns.
pub trait DraftCommand: Command {}
impl DraftCommand for drafts::Create {}
impl DraftCommand for drafts::Update {}
impl DraftCommand for drafts::Delete {}
impl DraftCommand for drafts::Convert {}
impl<C: DraftCommand> DraftCommand for WithReceipt<C> {}

/// Commands the pending-orders writer owns.
pub trait OrderCommand: Command {}
impl OrderCommand for pending_orders::Create {}
impl OrderCommand for pending_orders::BatchUpsert {}
impl OrderCommand for pending_orders::Update {}
impl OrderCommand for pending_orders::Delete {}
impl<C: OrderCommand> OrderCommand for WithReceipt<C> {}

/// Commands the venue writer owns (cashier terminals and their REST).
pub trait VenueCommand: Command {}
impl VenueCommand for venue::Apply {}
impl VenueCommand for venue::CreateDevice {}
impl VenueCommand for venue::SetCategories {}
impl VenueCommand for venue::SetProducts {}
impl<C: VenueCommand> VenueCommand for WithReceipt<C> {}

/// Which domain a writer owns.
pub struct Drafts;
pub struct Orders;
pub struct Venues;

pub type DraftsActor = Writer<Drafts>;
pub type OrdersActor = Writer<Orders>;
pub type VenueActor = Writer<Venues>;

/// A command waiting for its group, its type erased.
trait Pending: Send {
    fn room(&self) -> RoomKey;
    fn exclude(&self) -> Option<ConnId>;
    /// Runs under a savepoint of `txn` and appends its events; answers its
    /// records (none when refused: the refusal is kept for its answer).
    fn run<'a>(
        &'a mut self,
        txn: &'a DatabaseTransaction,
        now: i64,
        node: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<Record>, DbErr>>;
    /// Sends the answer: its own result, or the group's failure.
    fn answer(self: Box<Self>, group: Result<(), &DbErr>);
}

struct Item<C: Command> {
    room: RoomKey,
    exclude: Option<ConnId>,
    command: Option<C>,
    result: Option<Result<C::Output, DomainError>>,
    reply: oneshot::Sender<Result<C::Output, DomainError>>,
}

impl<C: Command> Pending for Item<C> {
    fn room(&self) -> RoomKey {
        self.room.clone()
    }

    fn exclude(&self) -> Option<ConnId> {
        self.exclude.clone()
    }

    fn run<'a>(
        &'a mut self,
        txn: &'a DatabaseTransaction,
        now: i64,
        node: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<Record>, DbErr>> {
        Box::pin(async move {
            let command = self.command.take().expect("a command runs once");
            let savepoint = txn.begin().await?;
            let ran = match command.run(&savepoint, now).await {
                Ok((output, news)) => {
                    match event_log::append(&savepoint, &self.room, news, now, node).await {
                        Ok(records) => Ok((output, records)),
                        Err(err) => Err(DomainError::Db(err)),
                    }
                }
                Err(err) => Err(err),
            };
            match ran {
                Ok((output, records)) => {
                    savepoint.commit().await?;
                    self.result = Some(Ok(output));
                    Ok(records)
                }
                Err(err) => {
                    savepoint.rollback().await?;
                    self.result = Some(Err(err));
                    Ok(Vec::new())
                }
            }
        })
    }

    fn answer(self: Box<Self>, group: Result<(), &DbErr>) {
        let answer = match group {
            Ok(()) => self.result.unwrap_or_else(|| {
                Err(DomainError::Db(DbErr::Custom(
                    "the command did not run".into(),
                )))
            }),
            Err(err) => Err(DomainError::Db(DbErr::Custom(format!(
                "the group it was committed in failed: {err}"
            )))),
        };
        let _ = self.reply.send(answer);
    }
}

enum Step {
    Write(Box<dyn Pending>),
    Barrier(oneshot::Sender<()>),
}

/// A domain's writer (see the module's docs).
pub struct Writer<D> {
    db: Db,
    bus: Bus,
    queue: VecDeque<Step>,
    committing: bool,
    _domain: PhantomData<fn() -> D>,
}

impl<D: 'static> Writer<D> {
    pub fn new(db: Db, bus: Bus) -> Self {
        Writer {
            db,
            bus,
            queue: VecDeque::new(),
            committing: false,
            _domain: PhantomData,
        }
    }

    fn enqueue<C: Command>(
        &mut self,
        command: C,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<C::Output, DomainError>> {
        if self.queue.len() >= QUEUE_MAX {
            return Box::pin(async {
                Err(DomainError::Db(DbErr::Custom(
                    "the writer's queue is full; retry".into(),
                )))
            });
        }
        let (reply, answer) = oneshot::channel();
        self.queue.push_back(Step::Write(Box::new(Item {
            room: command.room(),
            exclude: command.exclude(),
            command: Some(command),
            result: None,
            reply,
        })));
        self.next(ctx);
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(DomainError::Db(DbErr::Custom(
                    "the writer stopped before answering; retry".into(),
                )))
            })
        })
    }

    /// Starts the next group, unless one is committing.
    fn next(&mut self, ctx: &mut Context<Self>) {
        if self.committing {
            return;
        }
        while let Some(Step::Barrier(_)) = self.queue.front() {
            if let Some(Step::Barrier(done)) = self.queue.pop_front() {
                let _ = done.send(());
            }
        }
        let mut group = Vec::new();
        while group.len() < GROUP_MAX {
            match self.queue.front() {
                Some(Step::Write(_)) => {
                    if let Some(Step::Write(item)) = self.queue.pop_front() {
                        group.push(item);
                    }
                }
                _ => break,
            }
        }
        if group.is_empty() {
            return;
        }
        self.committing = true;
        let (db, bus) = (self.db.clone(), self.bus.clone());
        ctx.spawn(
            async move { commit_group(&db, &bus, group).await }
                .into_actor(self)
                .map(|_, act, ctx| {
                    act.committing = false;
                    act.next(ctx);
                }),
        );
    }
}

/// One group: one transaction, a savepoint per command, one commit; then
/// the events go to the bus in order and every command is answered.
async fn commit_group(db: &Db, bus: &Bus, mut group: Vec<Box<dyn Pending>>) {
    let ran = async {
        let txn = db.begin().await?;
        // Each stream's clock starts after its last event. On PostgreSQL
        // its row lock also orders this group against the other nodes'
        // writers, held until the commit; the group's streams are locked
        // first, in key order, so two nodes' groups that share streams
        // lock them in the same order and cannot deadlock.
        let mut rooms: Vec<RoomKey> = group.iter().map(|item| item.room()).collect();
        rooms.sort();
        rooms.dedup();
        let wall = wire::now_ms();
        let mut clocks = Vec::with_capacity(rooms.len());
        for room in rooms {
            let now = command::stream_clock(db, &txn, &room, wall).await?;
            clocks.push((room, now));
        }
        let mut records = Vec::with_capacity(group.len());
        for item in group.iter_mut() {
            let room = item.room();
            let now = clocks
                .iter()
                .find(|(r, _)| *r == room)
                .map_or(wall, |(_, now)| *now);
            records.push(item.run(&txn, now, db.node).await?);
        }
        txn.commit().await?;
        Ok::<_, DbErr>(records)
    }
    .await;
    match ran {
        Ok(records) => {
            for (item, records) in group.iter().zip(records) {
                bus.publish(records, item.exclude());
            }
            for item in group {
                item.answer(Ok(()));
            }
        }
        Err(err) => {
            log::warn!("a group of {} write(s) failed: {err}", group.len());
            for item in group {
                item.answer(Err(&err));
            }
        }
    }
}

impl<D: 'static> Actor for Writer<D> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl<C: DraftCommand> Handler<Exec<C>> for Writer<Drafts> {
    type Result = ResponseFuture<Result<C::Output, DomainError>>;

    fn handle(&mut self, msg: Exec<C>, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(msg.0, ctx)
    }
}

impl<C: OrderCommand> Handler<Exec<C>> for Writer<Orders> {
    type Result = ResponseFuture<Result<C::Output, DomainError>>;

    fn handle(&mut self, msg: Exec<C>, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(msg.0, ctx)
    }
}

impl<C: VenueCommand> Handler<Exec<C>> for Writer<Venues> {
    type Result = ResponseFuture<Result<C::Output, DomainError>>;

    fn handle(&mut self, msg: Exec<C>, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(msg.0, ctx)
    }
}

/// Answers once every change queued before it has been committed (and
/// published): a terminal that connects again first waits for this, so the
/// state it is given holds every change it sent before.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier;

impl<D: 'static> Handler<Barrier> for Writer<D> {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Barrier, ctx: &mut Self::Context) -> Self::Result {
        let (done, answer) = oneshot::channel();
        self.queue.push_back(Step::Barrier(done));
        self.next(ctx);
        Box::pin(async move {
            let _ = answer.await;
        })
    }
}
