//! The registry: which sockets are open.
//!
//! Every join and leave passes through here: it holds the connection limit
//! and joins each socket to its room through the [`Hub`] (whose shards create,
//! count and stop rooms; committed events go to them directly, not through
//! here). It also answers stats, lists and kicks connections, and closes
//! every socket at shutdown.

use std::{collections::HashMap, sync::Arc, time::Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::{
    core::{
        messages::{
            resident_bytes, CloseAll, ConnCounts, ConnInfo, ConnKind, ConnectedUsers, GetStats,
            Kick, ListConnections, SessionCtl, Stats, StopReading,
        },
        metrics::METRICS,
        wire::close,
    },
    hub::{
        room::{ConnId, Join, JoinError, JoinMode},
        Hub,
    },
    sessions::presence::{Joined, Left, Presence},
    socket::queue::SendQueue,
};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connection limit reached; retry later")]
    TooMany,
    #[error("{0}")]
    RoomUnavailable(#[source] JoinError),
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

/// Takes a place under the connection limit for a socket about to open
/// (answers false when there is none). The place is held until the socket
/// joins its room (`Connect`) or goes (`Disconnect`), so a terminal that
/// has not yet said `connect` counts too.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Reserve {
    pub conn_id: ConnId,
}

/// A terminal connects again: its older connections on this node (same
/// venue, same `clientId`) stop reading and close. Answers once each has
/// handed on what it had read, so a [`Barrier`](crate::writers::crud::Barrier)
/// after it orders those changes before the newer connection's state.
#[derive(Message)]
#[rtype(result = "Vec<Recipient<SessionCtl>>")]
pub struct Supersede {
    pub room: crate::core::events::RoomKey,
    pub client_id: String,
    pub except: ConnId,
}

struct SessionEntry {
    info: ConnInfo,
    ctl: Recipient<SessionCtl>,
}

pub struct Registry {
    /// Where the rooms run; the registry joins and removes members there.
    hub: Hub,
    max_connections: usize,
    /// Boxed: an entry is a few hundred bytes, and a table keeps up to
    /// half its slots empty; 24-byte slots make those cheap.
    sessions: HashMap<ConnId, Box<SessionEntry>>,
    /// Sockets open but not joined yet (see [`Reserve`]).
    reserved: std::collections::HashSet<ConnId>,
    started: Instant,
    /// This node's name, shown on each connection.
    node_name: Arc<str>,
    /// Told of every socket that joins or leaves.
    presence: Option<Addr<Presence>>,
}

impl Registry {
    pub fn new(hub: Hub, max_connections: usize) -> Self {
        Registry {
            hub,
            max_connections,
            sessions: HashMap::new(),
            reserved: Default::default(),
            started: Instant::now(),
            node_name: Arc::from(""),
            presence: None,
        }
    }

    /// Names this node on its connections.
    pub fn named(mut self, node_name: Arc<str>) -> Self {
        self.node_name = node_name;
        self
    }

    /// Tells `presence` of every socket that joins or leaves.
    pub fn with_presence(mut self, presence: Addr<Presence>) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Sockets open now: joined, and reserved but not joined yet.
    fn open(&self) -> usize {
        self.sessions.len() + self.reserved.len()
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
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
        self.hub.join(
            msg.info.room_key.clone(),
            Join {
                conn_id: msg.info.id.clone(),
                queue: msg.queue,
                ctl: msg.ctl.clone(),
                mode: msg.mode,
                done,
            },
        );
        METRICS
            .connections
            .with_label_values(&[msg.info.kind.as_str()])
            .inc();
        if let (Some(presence), false) = (&self.presence, msg.info.observer) {
            presence.do_send(Joined(msg.info.clone()));
        }
        self.sessions.insert(
            msg.info.id.clone(),
            Box::new(SessionEntry {
                info: msg.info,
                ctl: msg.ctl,
            }),
        );
        Box::pin(async move {
            match answer.await {
                Ok(result) => result.map_err(ConnectError::RoomUnavailable),
                Err(_) => Err(ConnectError::RoomUnavailable(JoinError::Stopped)),
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
        if let (Some(presence), false) = (&self.presence, session.info.observer) {
            presence.do_send(Left(session.info.clone()));
        }
        self.hub.leave(session.info.room_key, msg.conn_id);
    }
}

impl Handler<GetStats> for Registry {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let counts = ConnCounts::of(self.sessions.values().map(|s| &s.info));
        MessageResult(Stats {
            total_connections: counts.total,
            active_users: counts.users,
            cashier_connections: counts.cashiers,
            rooms: METRICS.rooms.get().max(0) as usize,
            buffered_events: METRICS.buffered_events.get(),
            events_published: METRICS.events_published.get(),
            uptime_sec: self.started.elapsed().as_secs(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            memory_bytes: resident_bytes(),
            tailer_lag_seconds: Some(METRICS.tailer_lag_last.get()),
            tailer_oldest_waiting_seconds: Some(METRICS.tailer_oldest_waiting.get()),
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

impl Handler<Supersede> for Registry {
    type Result = MessageResult<Supersede>;

    fn handle(&mut self, msg: Supersede, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.sessions
                .iter()
                .filter(|(id, s)| {
                    **id != msg.except
                        && s.info.kind == ConnKind::Cashier
                        && s.info.room_key == msg.room
                        && s.info.device_id.as_deref() == Some(msg.client_id.as_str())
                })
                .map(|(_, s)| s.ctl.clone())
                .collect(),
        )
    }
}

impl Handler<StopReading> for Registry {
    type Result = usize;

    fn handle(&mut self, _: StopReading, _: &mut Self::Context) -> usize {
        for session in self.sessions.values() {
            session.ctl.do_send(SessionCtl::StopReading);
        }
        self.sessions.len()
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

    use std::time::Duration;

    use super::*;
    use crate::{
        core::config::{DatabaseSettings, SyncMode},
        core::events::{Event, RoomKey},
        hub::room::{ResumeFrom, RoomConfig},
        socket::queue,
        store::db::Db,
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
        flume::Receiver<queue::Frame>,
        Arc<Mutex<Vec<SessionCtl>>>,
    ) {
        let (queue, frames) = queue::detached(64);
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
            observer: false,
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
        let hub = Hub::start(config, &[]);
        let registry = Registry::new(hub.clone(), 100).start();
        let (first, _, _) = connect("early");
        assert!(
            registry.send(first).await.unwrap().is_err(),
            "the broken room refuses"
        );
        db.migrate().await.unwrap();
        let (second, frames, orders) = connect("later");
        registry.send(second).await.unwrap().unwrap();
        assert!(
            !frames.recv_async().await.unwrap().texts().is_empty(),
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
            None,
            0,
        );
        hub.deliver(vec![ev], None);
        let heard = tokio::time::timeout(Duration::from_secs(1), frames.recv_async()).await;
        let closed = !orders.lock().unwrap().is_empty();
        assert!(
            matches!(heard, Ok(Ok(_))) || closed,
            "the member neither hears events nor was told to reconnect: a deaf socket"
        );
        assert!(
            !closed,
            "its room is still live, so it is not closed either"
        );
    }
}
