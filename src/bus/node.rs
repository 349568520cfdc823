//! This process as one node: its row in `nodes`, and its heartbeat.
//!
//! Each node keeps a row in `nodes` with a heartbeat; a fresh heartbeat is
//! the lease on the built-in jobs it owns (`jobs.node`). The heartbeat also
//! carries the node's stats and connection list (asked of the registry
//! through [`Links`](super::Links)), so the admin API on any node covers
//! every node.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::prelude::*;
use entity::nodes;
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr,
    EntityTrait, QueryFilter,
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

/// Node messages older than this go even if a live node never read them: a
/// node whose tailer has not read for a day is broken, not slow.
const TOLD_KEEP_AT_MOST: Duration = Duration::from_secs(86_400);

/// Deletes the node messages every live node has read (each node's tailer
/// keeps its `read_horizon`); a node that died is not waited for.
pub async fn prune_read_messages(db: &Db, lease: Duration) -> Result<u64, DbErr> {
    let now = wire::now_ms();
    let stmt = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "DELETE FROM node_messages WHERE txid < \
           (SELECT coalesce(min(read_horizon), 0) FROM nodes WHERE heartbeat_at >= $1) \
           OR created_at < $2",
        [
            (now - lease.as_millis() as i64).into(),
            (now - TOLD_KEEP_AT_MOST.as_millis() as i64).into(),
        ],
    );
    Ok(db.write.execute_raw(stmt).await?.rows_affected())
}

/// Beats this node's heartbeat every `lease / 5`, with its stats and (when
/// they changed, several nodes only) its connections; once a lease, deletes
/// the node messages every live node has read.
pub fn spawn_heartbeat(
    db: Db,
    node: Node,
    stats: Recipient<GetStats>,
    connections: Recipient<ListConnections>,
    lease: Duration,
    read_horizon: Arc<AtomicI64>,
) {
    let every = (lease / 5).max(Duration::from_millis(100));
    actix_web::rt::spawn(async move {
        let mut last_connections = String::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for beat in 0u64.. {
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
                let read = read_horizon.load(Ordering::SeqCst);
                if read > 0 {
                    update = update.col_expr(nodes::Column::ReadHorizon, Expr::value(read));
                }
                if let Ok(list) = connections.send(ListConnections).await {
                    let text = serde_json::to_string(&list).expect("connections serialize");
                    if text != last_connections {
                        update =
                            update.col_expr(nodes::Column::Connections, Expr::value(text.clone()));
                        last_connections = text;
                    }
                }
                if beat % 5 == 4 {
                    if let Err(err) = prune_read_messages(&db, lease).await {
                        log::warn!("deleting node messages every node has read failed: {err}");
                    }
                }
            }
            if let Err(err) = update.exec(&db.write).await {
                log::warn!("node heartbeat failed (the database is unreachable?): {err}");
            }
        }
    });
}
