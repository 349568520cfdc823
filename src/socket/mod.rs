//! One WebSocket connection: its bytes in and out.

pub mod connection;
pub mod queue;
pub mod reader;
