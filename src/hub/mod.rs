//! The hub: every room of this node, and the one handle to reach them.
//!
//! A room ([`room::Room`]) is the devices of one user, or the terminals of
//! one venue: its members, its stream's last seq, a ring of recent events,
//! fan-out and replay. Rooms live on the room threads
//! (`HERALD_ROOM_THREADS`), each thread's rooms owned by one [`Shard`],
//! which starts them, counts their members and stops the idle ones.
//!
//! [`Hub`] is the handle: sessions [`join`](Hub::join) and
//! [`leave`](Hub::leave) rooms through it, and the bus
//! [`deliver`](Hub::deliver)s events to them; each call goes straight to
//! the shard of its room, so nothing queues behind one thread. The hub
//! knows neither who writes events nor how many nodes there are.

pub mod room;
mod shard;

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

use actix::prelude::*;

pub use shard::Shard;

use crate::{
    core::events::{ConnId, RoomKey, SharedEvent},
    hub::room::{Join, RoomConfig},
};

/// Joins, leaves and delivers to rooms, on whichever thread each room runs.
/// Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shards: Arc<[Addr<Shard>]>,
}

impl Hub {
    /// One shard on each of `threads` (none: one shard on the current
    /// arbiter, as unit tests use it).
    pub fn start(config: RoomConfig, threads: &[ArbiterHandle]) -> Hub {
        let shards: Vec<Addr<Shard>> = if threads.is_empty() {
            vec![Shard::new(config).start()]
        } else {
            threads
                .iter()
                .map(|t| {
                    let config = config.clone();
                    Shard::start_in_arbiter(t, move |_| Shard::new(config))
                })
                .collect()
        };
        Hub {
            shards: shards.into(),
        }
    }

    fn shard(&self, key: &RoomKey) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() as usize) % self.shards.len()
    }

    /// Joins a member to its room (started if it is not running).
    pub fn join(&self, key: RoomKey, join: Join) {
        self.shards[self.shard(&key)].do_send(shard::Enter { key, join });
    }

    /// The member left.
    pub fn leave(&self, key: RoomKey, conn_id: ConnId) {
        self.shards[self.shard(&key)].do_send(shard::Exit { key, conn_id });
    }

    /// Hands events to their rooms, each room's in the order given. A room
    /// puts events that arrive out of seq order back in order and drops
    /// ones it has, so any writer on any node may deliver.
    pub fn deliver(&self, events: Vec<SharedEvent>, exclude: Option<ConnId>) {
        if events.is_empty() {
            return;
        }
        if self.shards.len() == 1 {
            return self.shards[0].do_send(shard::Deliver { events, exclude });
        }
        let mut by_shard: BTreeMap<usize, Vec<SharedEvent>> = BTreeMap::new();
        for event in events {
            by_shard
                .entry(self.shard(&event.room))
                .or_default()
                .push(event);
        }
        for (shard, events) in by_shard {
            self.shards[shard].do_send(shard::Deliver {
                events,
                exclude: exclude.clone(),
            });
        }
    }
}
