//! The lowest layer: what every other layer shares and nothing depends on.

pub mod auth;
pub mod config;
pub mod drain;
pub mod events;
pub mod ids;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod wire;
