//! Open sockets: the registry and the two kinds of session.

pub mod presence;
pub mod realtime;
pub mod registry;
pub mod terminal;
