//! How committed events reach the hub, on one node or many.

pub mod node;
pub mod tailer;
