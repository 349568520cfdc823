//! Presence: which devices are connected now, per user stream and per
//! venue, on every node.
//!
//! The registry tells this actor of every socket that joins or leaves. A
//! device (its `deviceId` on `/ws/realtime`, its `clientId` on `/ws`; a
//! socket without one is a device of its own) is present from its first
//! socket until its last one has been gone for the grace period
//! (`HERALD_PRESENCE_GRACE_SECS`): one that drops and comes back within it
//! never shows as gone. With several nodes each node tells the others when
//! a device joins or leaves here ([`Told::Presence`], batched), keeps what
//! they told it, and forgets a node whose lease ended.
//!
//! Events: a user's stream gets transient `PRESENCE_JOINED` when a device
//! appears (on no node before) and `PRESENCE_LEFT` when it is gone from
//! every node; the node where it happened sends them (for a dead node's
//! devices, the live node with the lowest id). Venues get no events: the
//! cashier protocol is fixed.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;

use crate::{
    bus::{node::live_nodes, told::tell, told::Told, Bus},
    core::{
        events::{ConnId, Record, RoomKey},
        messages::{ConnInfo, PresenceChange, PresenceDevice, RemotePresence},
        wire,
    },
    store::db::Db,
};

/// The transient events of a user's stream.
pub const PRESENCE_JOINED: &str = "PRESENCE_JOINED";
pub const PRESENCE_LEFT: &str = "PRESENCE_LEFT";

/// How often changes are told to the other nodes (batched).
const TELL_EVERY: Duration = Duration::from_millis(50);

/// A socket joined (the registry, after `Connect`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Joined(pub ConnInfo);

/// A socket left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Left(pub ConnInfo);

/// Who is present: every stream, or those asked for.
#[derive(Message, Default)]
#[rtype(result = "Snapshot")]
pub struct GetPresence {
    pub user: Option<String>,
    pub venue: Option<String>,
    /// Only the streams named above (an agent's, a terminal's).
    pub only_named: bool,
}

/// Devices per user and per venue.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub users: BTreeMap<String, Vec<PresenceDevice>>,
    pub venues: BTreeMap<String, Vec<PresenceDevice>>,
}

/// A device and its stream.
type Key = (String, String);

struct Local {
    device: PresenceDevice,
    /// It has a device id of its own (not its socket's).
    named: bool,
    sockets: usize,
    /// Its last socket left; it goes when this runs.
    grace: Option<SpawnHandle>,
}

pub struct Presence {
    db: Db,
    bus: Bus,
    node_id: i64,
    node_name: Arc<str>,
    grace: Duration,
    lease: Duration,
    /// Several nodes (PostgreSQL): others are told, and tell.
    shared: bool,
    local: HashMap<Key, Local>,
    /// What other nodes hold: (device, node id) -> device, named.
    remote: HashMap<(Key, i64), (PresenceDevice, bool)>,
    outbox: Vec<PresenceChange>,
    flushing: bool,
}

impl Presence {
    pub fn new(
        db: Db,
        bus: Bus,
        node_id: i64,
        node_name: Arc<str>,
        grace: Duration,
        lease: Duration,
    ) -> Self {
        let shared = !db.is_sqlite();
        Presence {
            db,
            bus,
            node_id,
            node_name,
            grace,
            lease,
            shared,
            local: HashMap::new(),
            remote: HashMap::new(),
            outbox: Vec::new(),
            flushing: false,
        }
    }

    fn key(info: &ConnInfo) -> Key {
        let device = info
            .device_id
            .clone()
            .unwrap_or_else(|| info.id.to_string());
        (info.room_key.stream_id(), device)
    }

    /// Present on any node (this one counts while in grace).
    fn present(&self, key: &Key) -> bool {
        self.local.contains_key(key) || self.remote.keys().any(|(k, _)| k == key)
    }

    fn tell_others(&mut self, stream: &str, local: &Local, joined: bool, ctx: &mut Context<Self>) {
        if !self.shared {
            return;
        }
        self.outbox.push(PresenceChange {
            stream: stream.to_owned(),
            node_id: self.node_id,
            device: local.device.clone(),
            joined,
            named: local.named,
        });
        if !self.flushing {
            self.flushing = true;
            ctx.run_later(TELL_EVERY, |act, ctx| act.flush(ctx));
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        let changes = std::mem::take(&mut self.outbox);
        let (db, node) = (self.db.clone(), self.node_id);
        ctx.wait(
            async move {
                if let Err(err) = tell(&db, node, None, &[Told::Presence { changes }]).await {
                    log::warn!("telling other nodes of presence failed (they catch up at the next heartbeat): {err}");
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                act.flushing = false;
                if !act.outbox.is_empty() {
                    act.flushing = true;
                    ctx.run_later(TELL_EVERY, |act, ctx| act.flush(ctx));
                }
            }),
        );
    }

    /// A transient event on the user's stream (venues get none; a socket
    /// that named no device is listed, never announced: on its return it
    /// is another device, so a grace could not hide its reconnect).
    /// `exclude`: the socket the event is about.
    fn announce(
        &self,
        stream: &str,
        device: &PresenceDevice,
        named: bool,
        kind: &str,
        exclude: Option<ConnId>,
    ) {
        let Some(RoomKey::User(user)) = RoomKey::parse(stream) else {
            return;
        };
        if !named {
            return;
        }
        let payload = serde_json::json!({ "device": device }).to_string();
        let record = Record {
            room: RoomKey::User(user),
            seq: None,
            kind: kind.to_owned(),
            payload: serde_json::value::RawValue::from_string(payload)
                .expect("JSON")
                .into(),
            origin: None,
            mutation_id: None,
            created_at: wire::now_ms(),
        };
        self.bus.publish(vec![record], exclude);
    }

    fn expire(&mut self, key: Key, ctx: &mut Context<Self>) {
        let Some(local) = self.local.get(&key) else {
            return;
        };
        if local.sockets > 0 {
            return;
        }
        let local = self.local.remove(&key).expect("just seen");
        self.tell_others(&key.0, &local, false, ctx);
        if !self.present(&key) {
            self.announce(&key.0, &local.device, local.named, PRESENCE_LEFT, None);
        }
    }

    /// Drops what dead nodes held; loads what live ones hold (at start,
    /// and each half lease). The live node with the lowest id announces
    /// the dead nodes' devices as gone.
    fn sweep(&mut self, ctx: &mut Context<Self>, first: bool) {
        if !self.shared {
            return;
        }
        let (db, lease) = (self.db.clone(), self.lease);
        ctx.spawn(
            async move { live_nodes(&db, lease).await }
                .into_actor(self)
                .map(move |live, act, _| {
                    let Ok(live) = live else { return };
                    let alive: std::collections::HashSet<i64> = live.iter().map(|n| n.id).collect();
                    let dead: Vec<(Key, i64)> = act
                        .remote
                        .keys()
                        .filter(|(_, node)| !alive.contains(node))
                        .cloned()
                        .collect();
                    let lowest = alive.iter().min().copied() == Some(act.node_id);
                    for entry in dead {
                        if let Some((device, named)) = act.remote.remove(&entry) {
                            if lowest && !act.present(&entry.0) {
                                act.announce(&entry.0 .0, &device, named, PRESENCE_LEFT, None);
                            }
                        }
                    }
                    if first {
                        for node in live.iter().filter(|n| n.id != act.node_id) {
                            for c in crate::bus::node::connections_of(node) {
                                let key = Presence::key(&c);
                                let device = PresenceDevice {
                                    device_id: key.1.clone(),
                                    kind: c.kind,
                                    node: node.name.clone(),
                                    since: c.connected_at.clone(),
                                };
                                act.remote
                                    .entry((key, node.id))
                                    .or_insert((device, c.device_id.is_some()));
                            }
                        }
                    }
                }),
        );
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep(ctx, true);
        if self.shared {
            ctx.run_interval(self.lease / 2, |act, ctx| act.sweep(ctx, false));
        }
    }
}

impl Handler<Joined> for Presence {
    type Result = ();

    fn handle(&mut self, Joined(info): Joined, ctx: &mut Self::Context) {
        let key = Presence::key(&info);
        if let Some(local) = self.local.get_mut(&key) {
            local.sockets += 1;
            if let Some(grace) = local.grace.take() {
                ctx.cancel_future(grace);
            }
            return;
        }
        let was_present = self.present(&key);
        let local = Local {
            device: PresenceDevice {
                device_id: key.1.clone(),
                kind: info.kind,
                node: self.node_name.to_string(),
                since: wire::format_ms(wire::now_ms()),
            },
            named: info.device_id.is_some(),
            sockets: 1,
            grace: None,
        };
        self.tell_others(&key.0, &local, true, ctx);
        if !was_present {
            // Its own socket knows it arrived.
            let own = Some(info.id.clone());
            self.announce(&key.0, &local.device, local.named, PRESENCE_JOINED, own);
        }
        self.local.insert(key, local);
    }
}

impl Handler<Left> for Presence {
    type Result = ();

    fn handle(&mut self, Left(info): Left, ctx: &mut Self::Context) {
        let key = Presence::key(&info);
        let Some(local) = self.local.get_mut(&key) else {
            return;
        };
        local.sockets = local.sockets.saturating_sub(1);
        if local.sockets > 0 {
            return;
        }
        if self.grace.is_zero() {
            return self.expire(key, ctx);
        }
        let later = key.clone();
        local.grace = Some(ctx.run_later(self.grace, move |act, ctx| act.expire(later, ctx)));
    }
}

impl Handler<RemotePresence> for Presence {
    type Result = ();

    fn handle(&mut self, RemotePresence(changes): RemotePresence, _: &mut Self::Context) {
        for change in changes {
            if change.node_id == self.node_id {
                continue;
            }
            let entry = (
                (change.stream, change.device.device_id.clone()),
                change.node_id,
            );
            if change.joined {
                self.remote.insert(entry, (change.device, change.named));
            } else {
                self.remote.remove(&entry);
            }
        }
    }
}

impl Handler<GetPresence> for Presence {
    type Result = MessageResult<GetPresence>;

    fn handle(&mut self, ask: GetPresence, _: &mut Self::Context) -> Self::Result {
        let wanted = |stream: &str| match RoomKey::parse(stream) {
            Some(RoomKey::User(u)) => match &ask.user {
                Some(want) => *want == u,
                None => !ask.only_named && ask.venue.is_none(),
            },
            Some(RoomKey::Venue(v)) => match &ask.venue {
                Some(want) => *want == v,
                None => !ask.only_named && ask.user.is_none(),
            },
            None => false,
        };
        // One entry per device: the earliest stay when it is on two nodes.
        let mut devices: BTreeMap<Key, PresenceDevice> = BTreeMap::new();
        let all = self
            .local
            .iter()
            .map(|(k, l)| (k, &l.device))
            .chain(self.remote.iter().map(|((k, _), (d, _))| (k, d)));
        for (key, device) in all {
            if !wanted(&key.0) {
                continue;
            }
            let keep = devices
                .get(key)
                .is_none_or(|known| device.since < known.since);
            if keep {
                devices.insert(key.clone(), device.clone());
            }
        }
        let mut snapshot = Snapshot::default();
        if let Some(user) = &ask.user {
            snapshot.users.entry(user.clone()).or_default();
        }
        if let Some(venue) = &ask.venue {
            snapshot.venues.entry(venue.clone()).or_default();
        }
        for ((stream, _), device) in devices {
            match RoomKey::parse(&stream) {
                Some(RoomKey::User(u)) => snapshot.users.entry(u).or_default().push(device),
                Some(RoomKey::Venue(v)) => snapshot.venues.entry(v).or_default().push(device),
                None => {}
            }
        }
        MessageResult(snapshot)
    }
}
