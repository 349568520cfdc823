//! herald: a realtime server for order-management dashboards and cashier
//! terminals. See `README.md` for how one event travels from a REST call to
//! every socket.

pub mod actors;
pub mod auth;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod configuration;
pub mod db;
pub mod domain;
pub mod erp;
pub mod error;
pub mod events;
pub mod logging;
pub mod metrics;
pub mod middleware;
pub mod outbox;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tls;
pub mod wire;
pub mod wsio;
