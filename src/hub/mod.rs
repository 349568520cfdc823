//! Where rooms live: one [`RoomShard`] per room thread (`HERALD_ROOM_THREADS`)
//! owns the rooms whose key hashes to it, starts them on its thread, counts
//! their members and sweeps the idle ones.
//!
//! [`Rooms`] is the handle every writer holds: [`Rooms::dispatch`] sends a
//! committed batch straight to the shard of each of its rooms, so events
//! never queue behind one thread on their way to the rooms (the registry
//! only sees connections come and go).

pub mod room;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;

use crate::{
    bus::node::Forward,
    core::events::{RoomKey, SharedEvent},
    core::metrics::METRICS,
    hub::room::{ConnId, Deliver, Join, Leave, Room, RoomConfig, StopRoom},
};

/// Sends events to rooms and members into them, on whichever thread each
/// room runs. Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    shards: Arc<[Addr<RoomShard>]>,
    /// Several nodes: where this node's transient events go to reach the
    /// others (stored events reach them through the log).
    forward: Option<Recipient<Forward>>,
}

impl Rooms {
    /// One shard on each of `threads` (none: one shard on the current
    /// arbiter, as unit tests use it).
    pub fn start(config: RoomConfig, threads: &[ArbiterHandle]) -> Rooms {
        let shards: Vec<Addr<RoomShard>> = if threads.is_empty() {
            vec![RoomShard::new(config).start()]
        } else {
            threads
                .iter()
                .map(|t| {
                    let config = config.clone();
                    RoomShard::start_in_arbiter(t, move |_| RoomShard::new(config))
                })
                .collect()
        };
        Rooms {
            shards: shards.into(),
            forward: None,
        }
    }

    /// Several nodes: forwards transient events to `forward`.
    pub fn forwarding(mut self, forward: Option<Recipient<Forward>>) -> Self {
        self.forward = forward;
        self
    }

    fn index(&self, key: &RoomKey) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() as usize) % self.shards.len()
    }

    /// Joins a member to its room (started if it is not running).
    pub fn enter(&self, key: RoomKey, join: Join) {
        self.shards[self.index(&key)].do_send(Enter { key, join });
    }

    /// The member left.
    pub fn exit(&self, key: RoomKey, conn_id: ConnId) {
        self.shards[self.index(&key)].do_send(Exit { key, conn_id });
    }

    /// Counts `events` as published and hands them to their rooms: the one
    /// way every writer (publisher, CRUD and job actors) fans events out.
    pub fn dispatch(&self, events: Vec<SharedEvent>, exclude: Option<ConnId>) {
        if events.is_empty() {
            return;
        }
        METRICS.events_published.inc_by(events.len() as u64);
        if let Some(forward) = &self.forward {
            let transient: Vec<SharedEvent> =
                events.iter().filter(|e| e.seq.is_none()).cloned().collect();
            if !transient.is_empty() {
                forward.do_send(Forward(transient));
            }
        }
        self.deliver(events, exclude);
    }

    /// Hands events another node wrote (read by the tailer) to their rooms.
    pub fn deliver_remote(&self, events: Vec<SharedEvent>) {
        self.deliver(events, None);
    }

    fn deliver(&self, events: Vec<SharedEvent>, exclude: Option<ConnId>) {
        if self.shards.len() == 1 {
            return self.shards[0].do_send(Dispatch { events, exclude });
        }
        let mut by_shard: BTreeMap<usize, Vec<SharedEvent>> = BTreeMap::new();
        for event in events {
            by_shard
                .entry(self.index(&event.room))
                .or_default()
                .push(event);
        }
        for (shard, events) in by_shard {
            self.shards[shard].do_send(Dispatch {
                events,
                exclude: exclude.clone(),
            });
        }
    }
}

struct RoomEntry {
    addr: Addr<Room>,
    /// Members of this start of the room: a room that stopped (it could
    /// not read its stream, or was swept) is replaced by a new one, and a
    /// late leaver of the old one must not count against the new one.
    members: HashSet<ConnId>,
    /// When the room last had no members or last got an event while empty.
    idle_since: Instant,
}

/// The rooms of one thread.
pub struct RoomShard {
    config: RoomConfig,
    rooms: HashMap<RoomKey, RoomEntry>,
}

impl RoomShard {
    fn new(config: RoomConfig) -> Self {
        RoomShard {
            config,
            rooms: HashMap::new(),
        }
    }

    fn room(&mut self, key: &RoomKey) -> &mut RoomEntry {
        let fresh = match self.rooms.get(key) {
            Some(entry) => !entry.addr.connected(),
            None => true,
        };
        if fresh {
            let addr = Room::new(key.clone(), self.config.clone()).start();
            self.rooms.insert(
                key.clone(),
                RoomEntry {
                    addr,
                    members: HashSet::new(),
                    idle_since: Instant::now(),
                },
            );
        }
        self.rooms.get_mut(key).expect("inserted above")
    }

    /// Stops rooms that have had no members for longer than the ring keeps
    /// events: their ring is empty by then, and replay falls back to the log.
    fn sweep(&mut self) {
        let ttl = self.config.buffer_ttl;
        self.rooms.retain(|_, entry| {
            let keep = !entry.members.is_empty() || entry.idle_since.elapsed() < ttl;
            if !keep {
                entry.addr.do_send(StopRoom);
            }
            keep
        });
    }
}

impl Actor for RoomShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        let every =
            (self.config.buffer_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        ctx.run_interval(every, |shard, _| shard.sweep());
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Enter {
    key: RoomKey,
    join: Join,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Exit {
    key: RoomKey,
    conn_id: ConnId,
}

/// Committed (or transient) events, for whichever of the shard's rooms are live.
#[derive(Message)]
#[rtype(result = "()")]
struct Dispatch {
    events: Vec<SharedEvent>,
    exclude: Option<ConnId>,
}

impl Handler<Enter> for RoomShard {
    type Result = ();

    fn handle(&mut self, msg: Enter, _: &mut Self::Context) {
        let entry = self.room(&msg.key);
        entry.members.insert(msg.join.conn_id.clone());
        entry.addr.do_send(msg.join);
    }
}

impl Handler<Exit> for RoomShard {
    type Result = ();

    fn handle(&mut self, msg: Exit, _: &mut Self::Context) {
        if let Some(entry) = self.rooms.get_mut(&msg.key) {
            if entry.members.remove(&msg.conn_id) {
                if entry.members.is_empty() {
                    entry.idle_since = Instant::now();
                }
                entry.addr.do_send(Leave {
                    conn_id: msg.conn_id,
                });
            }
        }
    }
}

impl Handler<Dispatch> for RoomShard {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, _: &mut Self::Context) {
        // Keep each room's events in the order given.
        let mut by_room: BTreeMap<&RoomKey, Vec<SharedEvent>> = BTreeMap::new();
        for event in &msg.events {
            by_room.entry(&event.room).or_default().push(event.clone());
        }
        for (key, events) in by_room {
            if let Some(entry) = self.rooms.get_mut(key) {
                if entry.members.is_empty() {
                    entry.idle_since = Instant::now();
                }
                entry.addr.do_send(Deliver {
                    events,
                    exclude: msg.exclude.clone(),
                });
            }
        }
    }
}
