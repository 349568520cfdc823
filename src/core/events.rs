//! An event, in its two forms: a [`Record`] as the log stores it (its room,
//! its place in the stream, its type and payload), and an [`Event`] as it
//! travels to sockets, with its wire bytes serialized once and shared by
//! every recipient. Storage hands out records; whoever delivers builds the
//! event ([`Event::from_record`]), once per node.

use std::{fmt, sync::Arc};

use bytestring::ByteString;
use serde_json::value::RawValue;

use crate::core::wire;

/// One socket's id (a UUID), shared by the registry, its room and the
/// writers that must not echo a terminal's own change back to it.
pub type ConnId = Arc<str>;

/// A room, and the stream of events it serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomKey {
    /// One dashboard user's devices.
    User(String),
    /// One cashier venue's terminals.
    Venue(String),
}

impl Default for RoomKey {
    /// Only for a connection read from another node's list (it has no room
    /// here); never used to deliver.
    fn default() -> Self {
        RoomKey::User(String::new())
    }
}

impl RoomKey {
    /// The room of a `streams.stream` value.
    pub fn parse(stream: &str) -> Option<RoomKey> {
        if let Some(user) = stream.strip_prefix("user:") {
            return Some(RoomKey::User(user.to_owned()));
        }
        stream
            .strip_prefix("venue:")
            .map(|venue| RoomKey::Venue(venue.to_owned()))
    }

    /// The `streams.stream` / `events.stream` value of this room.
    pub fn stream_id(&self) -> String {
        match self {
            RoomKey::User(id) => format!("user:{id}"),
            RoomKey::Venue(id) => format!("venue:{id}"),
        }
    }
}

impl fmt::Display for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stream_id())
    }
}

/// An event as the log keeps it, without wire bytes: committed (`seq` set),
/// or transient (`seq: None`, never stored).
#[derive(Debug, Clone)]
pub struct Record {
    pub room: RoomKey,
    pub seq: Option<u64>,
    pub kind: String,
    /// Shared: a publish to many users holds one copy of it.
    pub payload: Arc<RawValue>,
    /// The device (dashboards) or client id (cashier terminals) that caused it.
    pub origin: Option<String>,
    /// The `Idempotency-Key` of the write that caused it (`mutationId`).
    pub mutation_id: Option<String>,
    pub created_at: i64,
}

/// One event, ready to be fanned out.
#[derive(Debug)]
pub struct Event {
    pub room: RoomKey,
    /// `None` for transient events (live only, never stored).
    pub seq: Option<u64>,
    pub kind: String,
    /// The device (dashboards) or client id (cashier terminals) that caused it.
    pub origin: Option<String>,
    pub created_at: i64,
    /// The exact text frame every recipient gets.
    pub frame: ByteString,
}

pub type SharedEvent = Arc<Event>;

impl Event {
    /// The event of a record, its frame built in the room's protocol.
    pub fn from_record(record: &Record) -> SharedEvent {
        Event::new(
            record.room.clone(),
            record.seq,
            record.kind.clone(),
            &record.payload,
            record.origin.clone(),
            record.mutation_id.as_deref(),
            record.created_at,
        )
    }

    /// Builds the event and its frame in the room's protocol.
    pub fn new(
        room: RoomKey,
        seq: Option<u64>,
        kind: String,
        payload: &RawValue,
        origin: Option<String>,
        mutation_id: Option<&str>,
        created_at: i64,
    ) -> SharedEvent {
        let frame = match &room {
            RoomKey::User(_) => wire::realtime::event_frame(
                &kind,
                seq,
                payload,
                created_at,
                origin.as_deref(),
                mutation_id,
            ),
            RoomKey::Venue(_) => {
                wire::cashier::event_frame(&kind, seq, payload, created_at, origin.as_deref())
            }
        };
        Arc::new(Event {
            room,
            seq,
            kind,
            origin,
            created_at,
            frame,
        })
    }
}
