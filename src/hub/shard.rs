//! One room thread's rooms: started on demand, counted, swept when idle.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use actix::prelude::*;

use crate::{
    core::events::{ConnId, RoomKey, SharedEvent},
    hub::room::{self, Join, Leave, Room, RoomConfig, StopRoom},
};

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
pub struct Shard {
    config: RoomConfig,
    rooms: HashMap<RoomKey, RoomEntry>,
}

impl Shard {
    pub(super) fn new(config: RoomConfig) -> Self {
        Shard {
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

impl Actor for Shard {
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
pub(super) struct Enter {
    pub key: RoomKey,
    pub join: Join,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Exit {
    pub key: RoomKey,
    pub conn_id: ConnId,
}

/// Committed (or transient) events, for whichever of the shard's rooms are live.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Deliver {
    pub events: Vec<SharedEvent>,
    pub exclude: Option<ConnId>,
}

impl Handler<Enter> for Shard {
    type Result = ();

    fn handle(&mut self, msg: Enter, _: &mut Self::Context) {
        let entry = self.room(&msg.key);
        entry.members.insert(msg.join.conn_id.clone());
        entry.addr.do_send(msg.join);
    }
}

impl Handler<Exit> for Shard {
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

impl Handler<Deliver> for Shard {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
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
                entry.addr.do_send(room::Deliver {
                    events,
                    exclude: msg.exclude.clone(),
                });
            }
        }
    }
}
