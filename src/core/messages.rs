//! Messages sent through an actix `Recipient`: both sides name
//! them here, so neither names the other (actix/examples' chat-broker keeps
//! its messages the same way). Rooms close sessions with [`SessionCtl`]; the
//! bus asks the registry for [`Stats`] and [`ConnInfo`]s and hands it
//! [`Kick`]s, and hands [`CancelRun`]s to the job supervisor, all without
//! naming either.

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::core::events::{ConnId, RoomKey};

/// Orders a session gets from rooms and the registry.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SessionCtl {
    /// Close with this code (admin kick 4003, shutdown 1001, ...).
    Close { code: u16, reason: String },
    /// The send queue filled: close with 4008 ahead of anything queued.
    TooSlow,
    /// The server is stopping: read nothing more from the client (what was
    /// read is still handled and committed); the close follows.
    StopReading,
    /// A newer connection of the same terminal (`clientId`) joined the
    /// venue on this node: read nothing more, then close (1000). Answered
    /// once the frames read so far are handed to the writer.
    Replaced,
}

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
    /// Watches a stream without being one of its devices (an admin's or a
    /// service's socket on a user's stream, a cashier board): not counted
    /// in presence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub observer: bool,
    #[serde(skip)]
    #[schema(ignore)]
    pub room_key: RoomKey,
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
    /// One node's own figures (absent from the totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its resident memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Several nodes: how late its tailer read the last event another node
    /// committed (seconds), and how long the oldest transaction it waits on
    /// has been open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailer_lag_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailer_oldest_waiting_seconds: Option<f64>,
}

/// This process's resident memory (Linux), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Sockets, dashboard users (each counted once, however many devices) and
/// cashier terminals among `conns`: this node's, or every node's.
pub struct ConnCounts {
    pub total: usize,
    pub users: usize,
    pub cashiers: usize,
}

impl ConnCounts {
    pub fn of<'a>(conns: impl Iterator<Item = &'a ConnInfo>) -> ConnCounts {
        let mut users = std::collections::HashSet::new();
        let (mut total, mut cashiers) = (0, 0);
        for c in conns {
            total += 1;
            match c.kind {
                ConnKind::Realtime => {
                    users.insert(c.user_id.as_str());
                }
                ConnKind::Cashier => cashiers += 1,
            }
        }
        ConnCounts {
            total,
            users: users.len(),
            cashiers,
        }
    }
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

/// Asks every open session to stop reading (a graceful stop); answers how
/// many were asked.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StopReading;

/// Stops a running built-in job between two orders (a cancel asked on
/// another node, or by this one's own REST call).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CancelRun {
    pub user_id: String,
    pub job_id: String,
    /// Who asked (the token's `sub`).
    pub by: String,
}

/// A device as presence shows it: one per device id (a socket without one
/// counts as its own device).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceDevice {
    pub device_id: String,
    pub kind: ConnKind,
    /// The node holding its socket (`HERALD_NODE_NAME`).
    pub node: String,
    /// When it connected (RFC 3339, ms): the first socket of its stay.
    pub since: String,
}

/// A change of presence another node made: a device of `stream` joined
/// (first socket there) or left (its grace ended) on `node`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChange {
    pub stream: String,
    pub node_id: i64,
    pub device: PresenceDevice,
    pub joined: bool,
    /// The socket named its device (a `deviceId`, a `clientId`): only
    /// those are announced, as only they can be known again on return.
    #[serde(default)]
    pub named: bool,
}

/// What other nodes told of presence (several nodes).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RemotePresence(pub Vec<PresenceChange>);
