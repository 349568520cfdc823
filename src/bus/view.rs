//! Every live node's stats and connections, for the admin API.

use std::time::Duration;

use sea_orm::DbErr;
use serde::Serialize;

use crate::{
    bus::node::{connections_of, live_nodes, Node},
    core::{
        messages::{ConnCounts, ConnInfo, Stats},
        wire,
    },
    store::db::Db,
};

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
    /// How old its connection list and figures are: 0 for the node that
    /// answers, else the time since that node's last heartbeat.
    pub list_age_ms: i64,
    /// Its figures (version, memory, uptime, tailer lag, ...), as of
    /// `listAgeMs` ago.
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
    let (mut stats, conns) = here;
    let now = wire::now_ms();
    if db.is_sqlite() {
        // One node: no tailer.
        stats.tailer_lag_seconds = None;
        stats.tailer_oldest_waiting_seconds = None;
    }
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
        list_age_ms: 0,
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
            list_age_ms: (now - row.heartbeat_at).max(0),
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
