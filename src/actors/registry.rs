//! The registry: which rooms and sockets exist.
//!
//! Every join, leave and committed event passes through here on its way to a
//! room, so the registry alone decides when a room is created and when an
//! idle one is stopped, and no message can reach a room after it was told to
//! stop. It also answers stats, lists and kicks connections, and closes every
//! socket at shutdown.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::{
    actors::{
        room::{ConnId, Deliver, Join, JoinMode, Leave, Room, RoomConfig, StopRoom},
        session::SessionCtl,
        writer::SendQueue,
    },
    events::{RoomKey, SharedEvent},
    metrics::METRICS,
    wire::close,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnKind {
    Realtime,
    Cashier,
}

impl ConnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnKind::Realtime => "realtime",
            ConnKind::Cashier => "cashier",
        }
    }
}

/// What the admin API shows of a connection.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnInfo {
    /// The node holding the socket (`HERALD_NODE_NAME`).
    #[serde(default)]
    pub node: String,
    #[schema(value_type = String)]
    pub id: ConnId,
    pub kind: ConnKind,
    pub user_id: String,
    pub role: String,
    pub room: String,
    pub device_id: Option<String>,
    pub remote_addr: Option<String>,
    pub connected_at: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub room_key: RoomKey,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connection limit reached; retry later")]
    TooMany,
    #[error("{0}")]
    RoomUnavailable(String),
}

impl ConnectError {
    pub fn close_code(&self) -> u16 {
        match self {
            ConnectError::TooMany => close::POLICY,
            ConnectError::RoomUnavailable(_) => close::INTERNAL,
        }
    }
}

/// A socket joins its room.
#[derive(Message)]
#[rtype(result = "Result<(), ConnectError>")]
pub struct Connect {
    pub info: ConnInfo,
    pub queue: SendQueue,
    pub ctl: Recipient<SessionCtl>,
    pub mode: JoinMode,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub conn_id: ConnId,
}

/// Committed (or transient) events, for whichever rooms are live.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dispatch {
    pub events: Vec<SharedEvent>,
    pub exclude: Option<ConnId>,
    /// Read from the shared log (another node wrote them): not forwarded.
    pub remote: bool,
}

/// Counts `events` as published and hands them to the registry: the one
/// way every writer (publisher, CRUD and job actors) fans events out. The
/// tailer hands other nodes' events to the registry the same way.
pub fn dispatch(registry: &Addr<Registry>, events: Vec<SharedEvent>, exclude: Option<ConnId>) {
    if !events.is_empty() {
        METRICS.events_published.inc_by(events.len() as u64);
        registry.do_send(Dispatch {
            events,
            exclude,
            remote: false,
        });
    }
}

#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total_connections: usize,
    pub active_users: usize,
    pub cashier_connections: usize,
    pub rooms: usize,
    pub buffered_events: i64,
    pub events_published: u64,
    pub uptime_sec: u64,
}

#[derive(Message)]
#[rtype(result = "Vec<ConnInfo>")]
pub struct ListConnections;

/// Closes one connection (4003); answers whether it existed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Kick {
    pub conn_id: String,
}

/// Closes every socket (shutdown: 1001); answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll {
    pub code: u16,
    pub reason: String,
}

/// Users with at least one open dashboard socket.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ConnectedUsers;

/// Takes a place under the connection limit for a socket about to open
/// (answers false when there is none). The place is held until the socket
/// joins its room (`Connect`) or goes (`Disconnect`), so a terminal that
/// has not yet said `connect` counts too.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Reserve {
    pub conn_id: ConnId,
}

struct RoomEntry {
    addr: Addr<Room>,
    /// Which start of this room it is: a room that stopped (it could not
    /// read its stream, or was swept) is replaced by a new instance, and only
    /// the sessions that joined this one count as its members.
    instance: u64,
    members: usize,
    /// When the room last had no members or last got an event while empty.
    idle_since: Instant,
}

struct SessionEntry {
    info: ConnInfo,
    ctl: Recipient<SessionCtl>,
    /// The room instance it joined.
    room_instance: u64,
}

pub struct Registry {
    config: RoomConfig,
    max_connections: usize,
    rooms: HashMap<RoomKey, RoomEntry>,
    sessions: HashMap<ConnId, SessionEntry>,
    /// Sockets open but not joined yet (see [`Reserve`]).
    reserved: std::collections::HashSet<ConnId>,
    /// The last room instance number given.
    instances: u64,
    started: Instant,
    /// This node's name, shown on each connection.
    node_name: Arc<str>,
    /// Several nodes: where this node's transient events go to reach the
    /// others (stored events reach them through the log).
    forward: Option<Recipient<crate::cluster::Forward>>,
    /// The threads rooms run on, by a hash of the room's key (none: the
    /// registry's own thread).
    room_threads: Vec<ArbiterHandle>,
}

impl Registry {
    pub fn new(config: RoomConfig, max_connections: usize) -> Self {
        Registry {
            config,
            max_connections,
            rooms: HashMap::new(),
            sessions: HashMap::new(),
            reserved: Default::default(),
            instances: 0,
            started: Instant::now(),
            node_name: Arc::from(""),
            forward: None,
            room_threads: Vec::new(),
        }
    }

    /// Spreads rooms over `threads` (one arbiter per core by default,
    /// `HERALD_ROOM_THREADS`): a room lives on one thread for its whole life,
    /// chosen by a hash of its key, so one busy room or a long replay never
    /// holds up rooms on the other threads.
    pub fn with_room_threads(mut self, threads: Vec<ArbiterHandle>) -> Self {
        self.room_threads = threads;
        self
    }

    /// Names this node on its connections; with several nodes, forwards
    /// transient events to `forward`.
    pub fn in_cluster(
        mut self,
        node_name: Arc<str>,
        forward: Option<Recipient<crate::cluster::Forward>>,
    ) -> Self {
        self.node_name = node_name;
        self.forward = forward;
        self
    }

    fn room(&mut self, key: &RoomKey) -> &mut RoomEntry {
        let fresh = match self.rooms.get(key) {
            Some(entry) => !entry.addr.connected(),
            None => true,
        };
        if fresh {
            let room = Room::new(key.clone(), self.config.clone());
            let addr = if self.room_threads.is_empty() {
                room.start()
            } else {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                let thread = &self.room_threads[(h.finish() as usize) % self.room_threads.len()];
                Room::start_in_arbiter(thread, move |_| room)
            };
            self.instances += 1;
            self.rooms.insert(
                key.clone(),
                RoomEntry {
                    addr,
                    instance: self.instances,
                    members: 0,
                    idle_since: Instant::now(),
                },
            );
        }
        self.rooms.get_mut(key).expect("inserted above")
    }

    /// Sockets open now: joined, and reserved but not joined yet.
    fn open(&self) -> usize {
        self.sessions.len() + self.reserved.len()
    }

    /// Stops rooms that have had no members for longer than the ring keeps
    /// events: their ring is empty by then, and replay falls back to the log.
    fn sweep(&mut self) {
        let ttl = self.config.buffer_ttl;
        self.rooms.retain(|_, entry| {
            let keep = entry.members > 0 || entry.idle_since.elapsed() < ttl;
            if !keep {
                entry.addr.do_send(StopRoom);
            }
            keep
        });
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        let every =
            (self.config.buffer_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        ctx.run_interval(every, |registry, _| registry.sweep());
    }
}

impl Handler<Connect> for Registry {
    type Result = ResponseFuture<Result<(), ConnectError>>;

    fn handle(&mut self, msg: Connect, _: &mut Self::Context) -> Self::Result {
        let reserved = self.reserved.remove(&msg.info.id);
        if !reserved && self.open() >= self.max_connections {
            return Box::pin(async { Err(ConnectError::TooMany) });
        }
        let (done, answer) = oneshot::channel();
        let entry = self.room(&msg.info.room_key);
        entry.members += 1;
        let room_instance = entry.instance;
        entry.addr.do_send(Join {
            conn_id: msg.info.id.clone(),
            queue: msg.queue,
            ctl: msg.ctl.clone(),
            mode: msg.mode,
            done,
        });
        METRICS
            .connections
            .with_label_values(&[msg.info.kind.as_str()])
            .inc();
        self.sessions.insert(
            msg.info.id.clone(),
            SessionEntry {
                info: msg.info,
                ctl: msg.ctl,
                room_instance,
            },
        );
        Box::pin(async move {
            match answer.await {
                Ok(result) => result.map_err(ConnectError::RoomUnavailable),
                Err(_) => Err(ConnectError::RoomUnavailable("the room stopped".into())),
            }
        })
    }
}

impl Handler<Disconnect> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Self::Context) {
        self.reserved.remove(&msg.conn_id);
        let Some(session) = self.sessions.remove(&msg.conn_id) else {
            return;
        };
        METRICS
            .connections
            .with_label_values(&[session.info.kind.as_str()])
            .dec();
        let entry = self
            .rooms
            .get_mut(&session.info.room_key)
            .filter(|entry| entry.instance == session.room_instance);
        if let Some(entry) = entry {
            entry.members = entry.members.saturating_sub(1);
            if entry.members == 0 {
                entry.idle_since = Instant::now();
            }
            entry.addr.do_send(Leave {
                conn_id: msg.conn_id,
            });
        }
    }
}

impl Handler<Dispatch> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, _: &mut Self::Context) {
        if let (false, Some(forward)) = (msg.remote, &self.forward) {
            let transient: Vec<SharedEvent> = msg
                .events
                .iter()
                .filter(|e| e.seq.is_none())
                .cloned()
                .collect();
            if !transient.is_empty() {
                forward.do_send(crate::cluster::Forward(transient));
            }
        }
        // Keep each room's events in the order given.
        let mut by_room: BTreeMap<&RoomKey, Vec<SharedEvent>> = BTreeMap::new();
        for event in &msg.events {
            by_room.entry(&event.room).or_default().push(event.clone());
        }
        for (key, events) in by_room {
            if let Some(entry) = self.rooms.get_mut(key) {
                if entry.members == 0 {
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

impl Handler<GetStats> for Registry {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let mut users = std::collections::HashSet::new();
        let mut cashiers = 0;
        for s in self.sessions.values() {
            match s.info.kind {
                ConnKind::Realtime => {
                    users.insert(s.info.user_id.as_str());
                }
                ConnKind::Cashier => cashiers += 1,
            }
        }
        MessageResult(Stats {
            total_connections: self.sessions.len(),
            active_users: users.len(),
            cashier_connections: cashiers,
            rooms: self.rooms.len(),
            buffered_events: METRICS.buffered_events.get(),
            events_published: METRICS.events_published.get(),
            uptime_sec: self.started.elapsed().as_secs(),
        })
    }
}

impl Handler<ListConnections> for Registry {
    type Result = MessageResult<ListConnections>;

    fn handle(&mut self, _: ListConnections, _: &mut Self::Context) -> Self::Result {
        let mut list: Vec<ConnInfo> = self
            .sessions
            .values()
            .map(|s| ConnInfo {
                node: self.node_name.to_string(),
                ..s.info.clone()
            })
            .collect();
        list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at).then(a.id.cmp(&b.id)));
        MessageResult(list)
    }
}

impl Handler<Kick> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: Kick, _: &mut Self::Context) -> bool {
        let id: ConnId = Arc::from(msg.conn_id.as_str());
        match self.sessions.get(&id) {
            Some(session) => {
                session.ctl.do_send(SessionCtl::Close {
                    code: close::KICKED,
                    reason: "closed by an admin".into(),
                });
                true
            }
            None => false,
        }
    }
}

impl Handler<CloseAll> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> usize {
        for session in self.sessions.values() {
            session.ctl.do_send(SessionCtl::Close {
                code: msg.code,
                reason: msg.reason.clone(),
            });
        }
        self.sessions.len()
    }
}

impl Handler<ConnectedUsers> for Registry {
    type Result = MessageResult<ConnectedUsers>;

    fn handle(&mut self, _: ConnectedUsers, _: &mut Self::Context) -> Self::Result {
        let mut users: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.info.kind == ConnKind::Realtime)
            .map(|s| s.info.user_id.clone())
            .collect();
        users.sort();
        users.dedup();
        MessageResult(users)
    }
}

impl Handler<Reserve> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: Reserve, _: &mut Self::Context) -> bool {
        if self.open() >= self.max_connections {
            return false;
        }
        self.reserved.insert(msg.conn_id);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::value::RawValue;

    use super::*;
    use crate::{
        actors::{room::ResumeFrom, writer},
        configuration::{DatabaseSettings, SyncMode},
        db::Db,
        events::Event,
    };

    struct Ctl(Arc<Mutex<Vec<SessionCtl>>>);

    impl Actor for Ctl {
        type Context = Context<Self>;
    }

    impl Handler<SessionCtl> for Ctl {
        type Result = ();
        fn handle(&mut self, msg: SessionCtl, _: &mut Self::Context) {
            self.0.lock().unwrap().push(msg);
        }
    }

    fn connect(
        id: &str,
    ) -> (
        Connect,
        tokio::sync::mpsc::Receiver<writer::Frame>,
        Arc<Mutex<Vec<SessionCtl>>>,
    ) {
        let (queue, frames) = writer::detached(64);
        let orders = Arc::new(Mutex::new(Vec::new()));
        let key = RoomKey::User("u".into());
        let info = ConnInfo {
            node: String::new(),
            id: ConnId::from(id),
            kind: ConnKind::Realtime,
            user_id: "u".into(),
            role: "agent".into(),
            room: key.stream_id(),
            device_id: None,
            remote_addr: None,
            connected_at: String::new(),
            room_key: key,
        };
        let msg = Connect {
            info,
            queue,
            ctl: Ctl(orders.clone()).start().recipient(),
            mode: JoinMode::Realtime {
                user_id: "u".into(),
                device_id: None,
                from: ResumeFrom::Now,
            },
        };
        (msg, frames, orders)
    }

    /// A room that could not start is replaced; the sessions that tried the
    /// old one leave late. They must not count against the new room, whose
    /// member would otherwise be swept with it and never hear another event.
    #[actix_web::test]
    async fn a_late_leaver_of_a_replaced_room_never_deafens_the_new_ones_member() {
        // No migrations yet: the first room cannot read its stream.
        let db = Db::connect(&DatabaseSettings {
            url: "sqlite::memory:".into(),
            sync: SyncMode::Full,
        })
        .await
        .unwrap();
        let config = RoomConfig {
            db: db.clone(),
            epoch: Arc::from("e"),
            buffer_events: 10,
            buffer_ttl: Duration::from_secs(1),
            retention: Duration::from_secs(3600),
            heartbeat_secs: 30,
            max_pending: 10,
            max_replay: 100,
        };
        let registry = Registry::new(config, 100).start();
        let (first, _, _) = connect("early");
        assert!(
            registry.send(first).await.unwrap().is_err(),
            "the broken room refuses"
        );
        db.migrate().await.unwrap();
        let (second, mut frames, orders) = connect("later");
        registry.send(second).await.unwrap().unwrap();
        assert!(
            !frames.recv().await.unwrap().texts().is_empty(),
            "CONNECTED"
        );
        // The first session's leave arrives now, then the sweep runs.
        registry.do_send(Disconnect {
            conn_id: ConnId::from("early"),
        });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let payload = RawValue::from_string("{}".into()).unwrap();
        let ev = Event::new(
            RoomKey::User("u".into()),
            None,
            "PING_PROGRESS".into(),
            &payload,
            None,
            0,
        );
        registry.do_send(Dispatch {
            events: vec![ev],
            exclude: None,
            remote: false,
        });
        let heard = tokio::time::timeout(Duration::from_secs(1), frames.recv()).await;
        let closed = !orders.lock().unwrap().is_empty();
        assert!(
            matches!(heard, Ok(Some(_))) || closed,
            "the member neither hears events nor was told to reconnect: a deaf socket"
        );
        assert!(
            !closed,
            "its room is still live, so it is not closed either"
        );
    }
}
