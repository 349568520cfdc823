//! A room: the devices of one user (or the terminals of one cashier venue),
//! the stream's last seq, a ring of recent events, fan-out and replay.
//!
//! Events reach the room only after their transaction committed, possibly out
//! of order (several writers commit in parallel); the room delivers them to
//! members strictly in seq order, holding back any that arrive early until
//! the gap is filled (from the database if the missing one is slow to come).
//!
//! A joining member with a `since` is served from the ring when it covers the
//! gap, else from the database; while a database replay runs, live events for
//! that member are held, so it sees the replay, `REPLAY_COMPLETE`, then live
//! events: in order, with no gap and no duplicate.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use bytestring::ByteString;
use tokio::sync::oneshot;

mod join;
mod order;
pub(crate) mod replay;
#[cfg(test)]
mod tests;

use crate::{
    core::events::{RoomKey, SharedEvent},
    core::messages::SessionCtl,
    core::metrics::METRICS,
    core::wire,
    socket::queue::{QueueError, SendQueue},
    store::db::Db,
    store::event_log,
};

/// Settings every room shares.
#[derive(Clone)]
pub struct RoomConfig {
    pub db: Db,
    pub epoch: Arc<str>,
    pub buffer_events: usize,
    pub buffer_ttl: Duration,
    pub retention: Duration,
    pub heartbeat_secs: u64,
    /// Held live events per replaying member before it counts as too slow.
    pub max_pending: usize,
    /// Most missed events one join replays; more answers `recovered: false`.
    pub max_replay: u64,
}

pub use crate::core::events::ConnId;

/// Where a joining member resumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumeFrom {
    /// A fresh start: live events only.
    Now,
    /// After `since` of the stream named `epoch` (None: the client did not say).
    Seq { since: u64, epoch: Option<String> },
    /// After the given time (ms since the epoch).
    Time(i64),
}

/// What a joining member speaks, and what it must be sent first.
#[derive(Clone, Debug)]
pub enum JoinMode {
    Realtime {
        user_id: String,
        device_id: Option<String>,
        from: ResumeFrom,
    },
    Cashier {
        client_id: String,
        /// The last venue seq the terminal saw, to resume from.
        last_seq: Option<u64>,
        /// The database epoch the terminal's `lastSeq` belongs to, if it said.
        epoch: Option<String>,
    },
}

/// Why a member could not join its room.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JoinError {
    #[error("the stream is unavailable: {0}")]
    Unavailable(#[source] Arc<sea_orm::DbErr>),
    #[error("the room stopped")]
    Stopped,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub conn_id: ConnId,
    pub queue: SendQueue,
    pub ctl: Recipient<SessionCtl>,
    pub mode: JoinMode,
    /// Answered once the member's first frames are queued.
    pub done: oneshot::Sender<Result<(), JoinError>>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub conn_id: ConnId,
}

/// Committed (or transient) events for this room, in seq order.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    pub events: Vec<SharedEvent>,
    /// The connection that caused them and must not get them back (cashier).
    pub exclude: Option<ConnId>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRoom;

struct Member {
    queue: SendQueue,
    ctl: Recipient<SessionCtl>,
    /// Events with a seq at or below this were already sent (or covered by a snapshot).
    floor: u64,
    /// Live events held while a replay is read from the database.
    pending: Option<Vec<(SharedEvent, Option<ConnId>)>>,
    /// Cashier terminals never get their own broadcasts replayed.
    client_id: Option<String>,
    /// A terminal that resumed (kept its screen, its own changes included)
    /// gets none of its own broadcasts, from whichever socket it sent them.
    /// One that took the state gets those committed after it, except from
    /// the socket that sent them.
    skip_own: bool,
}

impl Member {
    fn is_own(&self, event: &SharedEvent) -> bool {
        self.skip_own && self.client_id.is_some() && event.origin == self.client_id
    }
}

pub struct Room {
    key: RoomKey,
    config: RoomConfig,
    last_seq: u64,
    ring: VecDeque<SharedEvent>,
    early: BTreeMap<u64, (SharedEvent, Option<ConnId>)>,
    gap_check: Option<SpawnHandle>,
    members: HashMap<ConnId, Member>,
    /// Transient events that arrived while buffered ones were held early:
    /// they wait behind them, so nothing overtakes an event sent before it.
    held_transients: Vec<(SharedEvent, Option<ConnId>)>,
    /// Why the room cannot serve (its stream could not be read).
    broken: Option<Arc<sea_orm::DbErr>>,
}

impl Room {
    pub fn new(key: RoomKey, config: RoomConfig) -> Self {
        Room {
            key,
            config,
            last_seq: 0,
            ring: VecDeque::new(),
            early: BTreeMap::new(),
            gap_check: None,
            members: HashMap::new(),
            held_transients: Vec::new(),
            broken: None,
        }
    }

    fn now_ms() -> i64 {
        wire::now_ms()
    }

    fn retention_floor_ms(&self) -> i64 {
        Self::now_ms() - self.config.retention.as_millis() as i64
    }

    /// Sends one frame to one member; a full queue closes it as too slow.
    fn send_to(&mut self, conn: &ConnId, frame: ByteString) -> bool {
        let Some(member) = self.members.get(conn) else {
            return false;
        };
        match member.queue.push(frame) {
            Ok(()) => true,
            Err(err) => {
                self.drop_member(conn, err);
                false
            }
        }
    }

    fn drop_member(&mut self, conn: &ConnId, err: QueueError) {
        if let Some(member) = self.members.remove(conn) {
            if err == QueueError::Full {
                METRICS.slow_consumer_closes.inc();
                member.ctl.do_send(SessionCtl::TooSlow);
            }
        }
    }

    /// Accepts a committed event that is next in seq order.
    fn accept(&mut self, event: SharedEvent, exclude: Option<ConnId>) {
        self.last_seq = event.seq.expect("accepted events have a seq");
        self.ring.push_back(event.clone());
        METRICS.buffered_events.inc();
        while self.ring.len() > self.config.buffer_events {
            self.ring.pop_front();
            METRICS.buffered_events.dec();
        }
        self.fan_out(event, exclude);
    }

    fn fan_out(&mut self, event: SharedEvent, exclude: Option<ConnId>) {
        let mut failed: Vec<(ConnId, QueueError)> = Vec::new();
        let mut too_many: Vec<ConnId> = Vec::new();
        let max_pending = self.config.max_pending;
        for (id, member) in self.members.iter_mut() {
            // The sender's socket never gets its change back; nor does the
            // same terminal on a newer socket (it reconnected while its
            // change was in flight, and applied it already).
            if exclude.as_ref() == Some(id) || member.is_own(&event) {
                continue;
            }
            if let Some(pending) = member.pending.as_mut() {
                pending.push((event.clone(), exclude.clone()));
                if pending.len() > max_pending {
                    too_many.push(id.clone());
                }
                continue;
            }
            if matches!(event.seq, Some(seq) if seq <= member.floor) {
                continue;
            }
            match member.queue.push(event.frame.clone()) {
                Ok(()) => METRICS.events_delivered.inc(),
                Err(err) => failed.push((id.clone(), err)),
            }
        }
        for (id, err) in failed {
            self.drop_member(&id, err);
        }
        for id in too_many {
            self.drop_member(&id, QueueError::Full);
        }
    }

    /// Closes every member; each reconnects and replays from its `since`.
    fn close_members(&mut self, reason: &str) {
        for (_, member) in self.members.drain() {
            member.ctl.do_send(SessionCtl::Close {
                code: wire::close::GOING_AWAY,
                reason: reason.to_owned(),
            });
        }
    }

    fn evict_expired(&mut self) {
        let oldest = Self::now_ms() - self.config.buffer_ttl.as_millis() as i64;
        while self.ring.front().is_some_and(|e| e.created_at < oldest) {
            self.ring.pop_front();
            METRICS.buffered_events.dec();
        }
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        METRICS.rooms.inc();
        let (db, key) = (self.config.db.clone(), self.key.clone());
        // Nothing else runs until the room knows where its stream stands.
        ctx.wait(
            async move { event_log::last_seq(&db.read, &key).await }
                .into_actor(self)
                .map(|res, room, _| match res {
                    Ok(seq) => room.last_seq = seq,
                    Err(err) => {
                        log::error!("{}: cannot read the stream: {err}", room.key);
                        room.broken = Some(Arc::new(err));
                    }
                }),
        );
        let tick = (self.config.buffer_ttl / 10)
            .clamp(Duration::from_millis(200), Duration::from_secs(10));
        ctx.run_interval(tick, |room, _| room.evict_expired());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        METRICS.rooms.dec();
        METRICS.buffered_events.sub(self.ring.len() as i64);
        // No member stays attached to a room that will never deliver again.
        self.close_members("the room restarted; reconnect and replay");
    }
}

impl Handler<Join> for Room {
    type Result = ();

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) {
        if let Some(err) = &self.broken {
            let _ = join.done.send(Err(JoinError::Unavailable(err.clone())));
            ctx.stop();
            return;
        }
        match join.mode.clone() {
            JoinMode::Realtime {
                user_id,
                device_id,
                from,
            } => self.join_realtime(join, user_id, device_id, from, ctx),
            JoinMode::Cashier {
                last_seq, epoch, ..
            } => {
                // A lastSeq of another database's history cannot be resumed.
                let same = epoch.as_deref().is_none_or(|e| e == &*self.config.epoch);
                let resume = last_seq.map(|s| (s, same));
                self.join_cashier(join, resume, ctx)
            }
        }
    }
}

impl Handler<replay::ReplayDone> for Room {
    type Result = ();

    fn handle(&mut self, msg: replay::ReplayDone, _: &mut Self::Context) {
        match msg.result {
            Ok(()) => {
                METRICS.events_replayed.inc_by(msg.sent);
                self.finish_replay(&msg.conn, Vec::new(), true, msg.upto, msg.sent)
            }
            Err(err) => self.replay_failed(&msg.conn, &err),
        }
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Self::Context) {
        self.members.remove(&msg.conn_id);
    }
}

impl Handler<Deliver> for Room {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.deliver(msg.events, msg.exclude, ctx);
    }
}

impl Handler<StopRoom> for Room {
    type Result = ();

    fn handle(&mut self, _: StopRoom, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
