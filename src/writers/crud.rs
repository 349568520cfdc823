//! CRUD actors: one per domain (drafts, pending orders), each owning its
//! domain's writes.
//!
//! A command runs in one transaction with its events ([`command::execute`]);
//! an actor runs its commands one at a time (so last-write-wins and
//! `serverUpdatedAt` are decided in one place whatever the database), and
//! only after the commit hands the events to the bus.

use actix::prelude::*;

use crate::{
    bus::Bus,
    store::{
        command::{self, Command, DomainError},
        db::Db,
        drafts, pending_orders,
        receipts::WithReceipt,
        venue,
    },
};

/// Run this command: `Exec(drafts::Update { .. })`.
pub struct Exec<C>(pub C);

impl<C: Command> Message for Exec<C> {
    type Result = Result<C::Output, DomainError>;
}

/// Commands the drafts actor owns.
pub trait DraftCommand: Command {}
impl DraftCommand for drafts::Create {}
impl DraftCommand for drafts::Update {}
impl DraftCommand for drafts::Delete {}
impl DraftCommand for drafts::Convert {}
impl<C: DraftCommand> DraftCommand for WithReceipt<C> {}

/// Commands the pending-orders actor owns.
pub trait OrderCommand: Command {}
impl OrderCommand for pending_orders::Create {}
impl OrderCommand for pending_orders::BatchUpsert {}
impl OrderCommand for pending_orders::Update {}
impl OrderCommand for pending_orders::Delete {}
impl<C: OrderCommand> OrderCommand for WithReceipt<C> {}

/// Runs one command and, once committed, publishes its events on the bus.
fn run<A, C>(db: Db, bus: Bus, cmd: C) -> AtomicResponse<A, Result<C::Output, DomainError>>
where
    A: Actor<Context = Context<A>>,
    C: Command,
{
    AtomicResponse::new(Box::pin(actix::fut::wrap_future::<_, A>(async move {
        let exclude = cmd.exclude();
        let (output, events) = command::execute(&db, cmd).await?;
        bus.publish(events, exclude);
        Ok(output)
    })))
}

pub struct DraftsActor {
    db: Db,
    bus: Bus,
}

impl DraftsActor {
    pub fn new(db: Db, bus: Bus) -> Self {
        DraftsActor { db, bus }
    }
}

impl Actor for DraftsActor {
    type Context = Context<Self>;
}

impl<C: DraftCommand> Handler<Exec<C>> for DraftsActor {
    type Result = AtomicResponse<Self, Result<C::Output, DomainError>>;

    fn handle(&mut self, msg: Exec<C>, _: &mut Self::Context) -> Self::Result {
        run(self.db.clone(), self.bus.clone(), msg.0)
    }
}

pub struct OrdersActor {
    db: Db,
    bus: Bus,
}

impl OrdersActor {
    pub fn new(db: Db, bus: Bus) -> Self {
        OrdersActor { db, bus }
    }
}

impl Actor for OrdersActor {
    type Context = Context<Self>;
}

impl<C: OrderCommand> Handler<Exec<C>> for OrdersActor {
    type Result = AtomicResponse<Self, Result<C::Output, DomainError>>;

    fn handle(&mut self, msg: Exec<C>, _: &mut Self::Context) -> Self::Result {
        run(self.db.clone(), self.bus.clone(), msg.0)
    }
}

/// Commands the venue actor owns (cashier terminals and their REST).
pub trait VenueCommand: Command {}
impl VenueCommand for venue::Apply {}
impl VenueCommand for venue::CreateDevice {}
impl VenueCommand for venue::SetCategories {}
impl VenueCommand for venue::SetProducts {}
impl<C: VenueCommand> VenueCommand for WithReceipt<C> {}

/// Owns every venue's writes: terminals' messages and the devices/catalog
/// REST calls go through the same commands.
pub struct VenueActor {
    db: Db,
    bus: Bus,
}

impl VenueActor {
    pub fn new(db: Db, bus: Bus) -> Self {
        VenueActor { db, bus }
    }
}

impl Actor for VenueActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// Answers once every venue change queued before it has been applied (and
/// published): a terminal that connects again first waits for this, so the
/// state it is given holds every change it sent before.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier;

impl Handler<Barrier> for VenueActor {
    type Result = ();

    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

impl<C: VenueCommand> Handler<Exec<C>> for VenueActor {
    type Result = AtomicResponse<Self, Result<C::Output, DomainError>>;

    fn handle(&mut self, msg: Exec<C>, _: &mut Self::Context) -> Self::Result {
        run(self.db.clone(), self.bus.clone(), msg.0)
    }
}
