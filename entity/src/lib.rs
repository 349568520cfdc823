//! sea-orm entities of herald's database, one module per table.
//!
//! Times are stored as milliseconds since the Unix epoch (`i64`): they compare
//! and index the same way on SQLite and PostgreSQL, and the server renders
//! them as RFC 3339 with milliseconds on the wire. JSON payloads are stored as
//! text, byte for byte as the client sent them.

pub mod categories;
pub mod counters;
pub mod device_orders;
pub mod devices;
pub mod drafts;
pub mod events;
pub mod idempotency_keys;
pub mod jobs;
pub mod meta;
pub mod node_messages;
pub mod nodes;
pub mod pending_orders;
pub mod products;
pub mod streams;
pub mod venues;
