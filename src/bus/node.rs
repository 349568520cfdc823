//! This process as one node: its row in `nodes`, and its heartbeat.
//!
//! Each node keeps a row in `nodes` with a heartbeat; a fresh heartbeat is
//! the lease on the built-in jobs it owns (`jobs.node`). The heartbeat also
//! carries the node's stats and connection list (asked of the registry
//! through [`Links`](super::Links)), so the admin API on any node covers
//! every node.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use entity::{node_messages, nodes};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait,
    QueryFilter,
};

use crate::{
    core::{
        messages::{ConnInfo, GetStats, ListConnections},
        wire,
    },
    store::db::Db,
};

/// This process as one node among others.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: i64,
    pub name: Arc<str>,
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
pub fn spawn_heartbeat(
    db: Db,
    node: Node,
    stats: Recipient<GetStats>,
    connections: Recipient<ListConnections>,
    lease: Duration,
) {
    let every = (lease / 5).max(Duration::from_millis(100));
    actix_web::rt::spawn(async move {
        let mut last_connections = String::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = wire::now_ms();
            let stats_now = stats.send(GetStats).await.ok();
            let mut update = nodes::Entity::update_many()
                .col_expr(nodes::Column::HeartbeatAt, Expr::value(now))
                .filter(nodes::Column::Id.eq(node.id));
            if let Some(now_stats) = stats_now {
                update = update.col_expr(
                    nodes::Column::Stats,
                    Expr::value(serde_json::to_string(&now_stats).expect("stats serialize")),
                );
            }
            if !db.is_sqlite() {
                if let Ok(list) = connections.send(ListConnections).await {
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
