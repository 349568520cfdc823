//! herald: a realtime server for order-management dashboards and cashier
//! terminals.

pub mod bus;
pub mod cli;
pub mod core;
pub mod http;
pub mod hub;
pub mod sessions;
pub mod shutdown;
pub mod socket;
pub mod startup;
pub mod store;
pub mod writers;
