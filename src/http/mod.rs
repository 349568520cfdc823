//! HTTP: routes, middleware, the API's description and its state.

pub mod auth;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod receipts;
pub mod routes;
pub mod sampler;
pub mod schemas;
pub mod server;
pub mod state;
pub mod tls;
