//! Several nodes on one PostgreSQL database, with the database as the only
//! thing between them.
//!
//! How one event reaches every socket:
//!
//! 1. A writer (publisher, CRUD or job actor) commits the event row; the
//!    row names the node that wrote it (`events.node`).
//! 2. That node hands the committed event to its own rooms at once
//!    ([`crate::hub::Rooms::dispatch`]): on SQLite this is the
//!    only path, and on PostgreSQL it is the same one.
//! 3. Every other node's [`tailer`] reads the row from the shared log (woken
//!    by the statement trigger's `NOTIFY herald`, or by its poll timer) and
//!    hands it to its rooms the same way. Rooms order events by seq and
//!    drop one they already have, so it does not matter which path is first.
//!
//! Transient events (never stored), kicks and job cancels travel as
//! [`Told`] rows in `node_messages`, read by the same tailer.
//!
//! Each node keeps a row in `nodes` with a heartbeat; a fresh heartbeat is
//! the lease on the built-in jobs it owns (`jobs.node`). The heartbeat also
//! carries the node's stats and connection list, so the admin API on any
//! node covers every node.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait,
    QueryFilter,
};
use serde::{Deserialize, Serialize};

use entity::{node_messages, nodes};

use crate::{
    core::events::{Event, RoomKey, SharedEvent},
    core::wire,
    sessions::registry::{ConnCounts, ConnInfo, GetStats, ListConnections, Registry, Stats},
    store::db::Db,
};

/// This process as one node among others.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: i64,
    pub name: Arc<str>,
}

/// What one node tells the others (a `node_messages` row).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Told {
    /// A transient event: its room, type, origin, time and wire frame.
    Transient {
        stream: String,
        #[serde(rename = "type")]
        kind: String,
        origin: Option<String>,
        created_at: i64,
        frame: String,
    },
    /// Close this connection with 4003 (an admin on another node asked).
    Kick { conn_id: String },
    /// Stop this running job between two orders.
    CancelJob {
        user_id: String,
        job_id: String,
        by: String,
    },
}

impl Told {
    fn kind(&self) -> &'static str {
        match self {
            Told::Transient { .. } => "transient",
            Told::Kick { .. } => "kick",
            Told::CancelJob { .. } => "cancel_job",
        }
    }

    pub fn transient(event: &Event) -> Told {
        Told::Transient {
            stream: event.room.stream_id(),
            kind: event.kind.clone(),
            origin: event.origin.clone(),
            created_at: event.created_at,
            frame: event.frame.to_string(),
        }
    }

    /// The event a `Transient` describes (none for another kind, or a
    /// stream name this version does not know).
    pub fn into_event(self) -> Option<SharedEvent> {
        let Told::Transient {
            stream,
            kind,
            origin,
            created_at,
            frame,
        } = self
        else {
            return None;
        };
        Some(Arc::new(Event {
            room: RoomKey::parse(&stream)?,
            seq: None,
            kind,
            origin,
            created_at,
            frame: frame.into(),
        }))
    }
}

/// Writes `told` for `target` (none: every other node).
pub async fn tell(db: &Db, node: i64, target: Option<i64>, told: &[Told]) -> Result<(), DbErr> {
    if told.is_empty() {
        return Ok(());
    }
    let now = wire::now_ms();
    let rows = told.iter().map(|t| node_messages::ActiveModel {
        source: Set(node),
        target: Set(target),
        kind: Set(t.kind().to_owned()),
        body: Set(serde_json::to_string(t).expect("messages serialize")),
        created_at: Set(now),
        ..Default::default()
    });
    node_messages::Entity::insert_many(rows)
        .exec_without_returning(&db.write)
        .await?;
    Ok(())
}

/// Forwards this node's transient events to the other nodes (PostgreSQL).
pub struct Forwarder {
    db: Db,
    node: i64,
}

impl Forwarder {
    pub fn new(db: Db, node: i64) -> Self {
        Forwarder { db, node }
    }
}

impl Actor for Forwarder {
    type Context = Context<Self>;
}

/// Transient events a local writer dispatched.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forward(pub Vec<SharedEvent>);

impl Handler<Forward> for Forwarder {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Forward, _: &mut Self::Context) -> Self::Result {
        let (db, node) = (self.db.clone(), self.node);
        let told: Vec<Told> = msg.0.iter().map(|e| Told::transient(e)).collect();
        Box::pin(async move {
            if let Err(err) = tell(&db, node, None, &told).await {
                // Transient events are best-effort by contract: the devices
                // on this node got it; the others miss one progress update.
                log::warn!(
                    "forwarding {} transient event(s) to other nodes failed: {err}",
                    told.len()
                );
            }
        })
    }
}

/// Default node name: host name and process id.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "herald".into());
    format!("{host}-{}", std::process::id())
}

/// Adds this process to `nodes` and answers its id. On SQLite (one node by
/// the file lock) every earlier row is a dead run; a node restarted under a
/// fixed name (`HERALD_NODE_NAME`) frees its earlier run's row too, so its
/// jobs are recovered now instead of after the lease.
pub async fn register(db: &Db, name: &str, address: &str) -> Result<Node, DbErr> {
    let now = wire::now_ms();
    let mut stale =
        nodes::Entity::update_many().col_expr(nodes::Column::HeartbeatAt, Expr::value(0i64));
    if !db.is_sqlite() {
        stale = stale.filter(nodes::Column::Name.eq(name));
    }
    stale.exec(&db.write).await?;
    // Rows of nodes gone for a day are history nobody reads.
    nodes::Entity::delete_many()
        .filter(nodes::Column::HeartbeatAt.lt(now - 86_400_000))
        .filter(nodes::Column::StartedAt.lt(now - 86_400_000))
        .exec(&db.write)
        .await?;
    let row = nodes::ActiveModel {
        name: Set(name.to_owned()),
        address: Set(address.to_owned()),
        started_at: Set(now),
        heartbeat_at: Set(now),
        stats: Set("{}".into()),
        connections: Set("[]".into()),
        ..Default::default()
    }
    .insert(&db.write)
    .await?;
    Ok(Node {
        id: row.id,
        name: name.into(),
    })
}

/// Nodes whose heartbeat is younger than `lease` (this one included).
pub async fn live_nodes(db: &Db, lease: Duration) -> Result<Vec<nodes::Model>, DbErr> {
    let since = wire::now_ms() - lease.as_millis() as i64;
    nodes::Entity::find()
        .filter(nodes::Column::HeartbeatAt.gte(since))
        .all(&db.read)
        .await
}

/// A node's connection list as of its last heartbeat.
pub fn connections_of(node: &nodes::Model) -> Vec<ConnInfo> {
    serde_json::from_str(&node.connections).unwrap_or_default()
}

/// Marks this node stopped: its jobs are free for the others at once.
pub async fn deregister(db: &Db, node: i64) -> Result<(), DbErr> {
    nodes::Entity::update_many()
        .col_expr(nodes::Column::HeartbeatAt, Expr::value(0i64))
        .filter(nodes::Column::Id.eq(node))
        .exec(&db.write)
        .await?;
    Ok(())
}

/// How long `node_messages` rows are kept (every live node read them by then).
const TOLD_KEEP: Duration = Duration::from_secs(60);

/// Beats this node's heartbeat every `lease / 5`, with its stats and (when
/// they changed, several nodes only) its connections; prunes old messages.
pub fn spawn_heartbeat(db: Db, node: Node, registry: Addr<Registry>, lease: Duration) {
    let every = (lease / 5).max(Duration::from_millis(100));
    actix_web::rt::spawn(async move {
        let mut last_connections = String::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = wire::now_ms();
            let stats = registry.send(GetStats).await.ok();
            let mut update = nodes::Entity::update_many()
                .col_expr(nodes::Column::HeartbeatAt, Expr::value(now))
                .filter(nodes::Column::Id.eq(node.id));
            if let Some(stats) = stats {
                update = update.col_expr(
                    nodes::Column::Stats,
                    Expr::value(serde_json::to_string(&stats).expect("stats serialize")),
                );
            }
            if !db.is_sqlite() {
                if let Ok(list) = registry.send(ListConnections).await {
                    let text = serde_json::to_string(&list).expect("connections serialize");
                    if text != last_connections {
                        update =
                            update.col_expr(nodes::Column::Connections, Expr::value(text.clone()));
                        last_connections = text;
                    }
                }
                let _ = node_messages::Entity::delete_many()
                    .filter(node_messages::Column::CreatedAt.lt(now - TOLD_KEEP.as_millis() as i64))
                    .exec(&db.write)
                    .await;
            }
            if let Err(err) = update.exec(&db.write).await {
                log::warn!("node heartbeat failed (the database is unreachable?): {err}");
            }
        }
    });
}

/// Every live node's stats and connections, for the admin API: this node's
/// read now, the others' from their last heartbeat (at most `lease / 5` old).
pub struct ClusterView {
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub started_at: String,
    pub last_heartbeat_at: String,
    pub this_node: bool,
    /// Its open sockets.
    pub connections: usize,
    #[serde(skip)]
    pub stats: Option<Stats>,
    #[serde(skip)]
    pub conns: Vec<ConnInfo>,
}

/// Reads every live node; `here` fills this node's part from its registry.
pub async fn view(
    db: &Db,
    node: &Node,
    lease: Duration,
    here: (Stats, Vec<ConnInfo>),
) -> Result<ClusterView, DbErr> {
    let mut out = Vec::new();
    let rows = if db.is_sqlite() {
        Vec::new()
    } else {
        live_nodes(db, lease).await?
    };
    let (stats, conns) = here;
    let now = wire::now_ms();
    out.push(NodeView {
        id: node.id,
        name: node.name.to_string(),
        address: rows
            .iter()
            .find(|r| r.id == node.id)
            .map(|r| r.address.clone())
            .unwrap_or_default(),
        started_at: wire::format_ms(now - stats.uptime_sec as i64 * 1000),
        last_heartbeat_at: wire::format_ms(now),
        this_node: true,
        connections: conns.len(),
        stats: Some(stats),
        conns,
    });
    for row in rows.into_iter().filter(|r| r.id != node.id) {
        out.push(NodeView {
            id: row.id,
            name: row.name.clone(),
            address: row.address.clone(),
            started_at: wire::format_ms(row.started_at),
            last_heartbeat_at: wire::format_ms(row.heartbeat_at),
            this_node: false,
            connections: 0,
            stats: serde_json::from_str(&row.stats).ok(),
            conns: connections_of(&row),
        });
        if let Some(n) = out.last_mut() {
            n.connections = n.conns.len();
        }
    }
    Ok(ClusterView { nodes: out })
}

impl ClusterView {
    /// Every live node's connections, oldest first.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let mut list: Vec<ConnInfo> = self.nodes.iter().flat_map(|n| n.conns.clone()).collect();
        list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at).then(a.id.cmp(&b.id)));
        list
    }

    /// The node holding connection `id`, if any live node lists it.
    pub fn holder(&self, id: &str) -> Option<&NodeView> {
        self.nodes
            .iter()
            .find(|n| n.conns.iter().any(|c| &*c.id == id))
    }

    /// Totals over every node (users are counted once, whichever nodes
    /// their devices are on); uptime is this node's.
    pub fn totals(&self) -> Stats {
        let counts = ConnCounts::of(self.nodes.iter().flat_map(|n| n.conns.iter()));
        let mut total = Stats {
            total_connections: counts.total,
            active_users: counts.users,
            cashier_connections: counts.cashiers,
            ..Stats::default()
        };
        for node in &self.nodes {
            if let Some(stats) = &node.stats {
                total.rooms += stats.rooms;
                total.buffered_events += stats.buffered_events;
                total.events_published += stats.events_published;
                if node.this_node {
                    total.uptime_sec = stats.uptime_sec;
                }
            }
        }
        total
    }
}
