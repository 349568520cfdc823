//! The bus: the one way a committed (or transient) event reaches the hub,
//! on one node or on many.
//!
//! Every writer hands what it committed to [`Bus::publish`], which builds
//! each event's wire bytes once and gives the events to this node's
//! [`Hub`]. With several nodes (PostgreSQL), the others hear it through
//! the database: stored events are in the shared log, which every node's
//! [`tailer`] reads in commit order and hands to its own hub the same way;
//! transient events, kicks and job cancels travel as [`told::Told`] rows.
//! On SQLite there is one node and the log's only reader is replay.
//!
//! The bus names no actor above it: what another node asks of this one (a
//! kick, a cancel) and what the heartbeat reports (stats, connections)
//! reach the actors that act on them through the [`Recipient`]s in
//! [`Links`], messages defined in [`core::messages`](crate::core::messages)
//! (socketioxide's emitter works the same way).

pub mod node;
pub mod tailer;
pub mod told;
pub mod view;

use actix::prelude::*;

use crate::{
    bus::told::{Forward, Forwarder},
    core::{
        events::{ConnId, Event, Record, SharedEvent},
        messages::{CancelRun, GetStats, Kick, ListConnections, RemotePresence},
        metrics::METRICS,
    },
    hub::Hub,
    store::db::Db,
};

/// What the bus hands to the actors above it, by message.
#[derive(Clone)]
pub struct Links {
    /// Closes a connection of this node (an admin on another node asked).
    pub kick: Recipient<Kick>,
    /// Stops a job this node runs (a cancel asked on another node).
    pub cancel: Recipient<CancelRun>,
    /// This node's stats, for its heartbeat.
    pub stats: Recipient<GetStats>,
    /// This node's connections, for its heartbeat.
    pub connections: Recipient<ListConnections>,
    /// Devices that joined or left on other nodes.
    pub presence: Recipient<RemotePresence>,
}

/// Publishes events to every socket that should get them. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    hub: Hub,
    /// Several nodes: this node's transient events go to the others here.
    forward: Option<Addr<Forwarder>>,
}

impl Bus {
    /// A bus for this node's hub; on PostgreSQL it also forwards transient
    /// events to the other nodes (stored ones reach them through the log).
    pub fn new(hub: Hub, db: &Db, node: i64) -> Bus {
        let forward = (!db.is_sqlite()).then(|| Forwarder::new(db.clone(), node).start());
        Bus { hub, forward }
    }

    /// Hands `records` (committed, or transient) to every device that
    /// should get them: their wire bytes are built here, once, and shared.
    /// `exclude` is the connection that caused them (a cashier terminal
    /// never gets its own change back).
    pub fn publish(&self, records: Vec<Record>, exclude: Option<ConnId>) {
        if records.is_empty() {
            return;
        }
        METRICS.events_published.inc_by(records.len() as u64);
        let events: Vec<SharedEvent> = records.iter().map(Event::from_record).collect();
        if let Some(forward) = &self.forward {
            let transient: Vec<SharedEvent> =
                events.iter().filter(|e| e.seq.is_none()).cloned().collect();
            if !transient.is_empty() {
                forward.do_send(Forward(transient));
            }
        }
        self.hub.deliver(events, exclude);
    }

    /// Events another node wrote (read by the tailer), to this node's hub.
    fn deliver_remote(&self, events: Vec<SharedEvent>) {
        self.hub.deliver(events, None);
    }
}
