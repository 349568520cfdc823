//! Black-box tests: the real server on an ephemeral port with a fresh
//! database, driven over real HTTP and WebSockets.

mod helpers;
mod idempotency;

mod admin;
mod auth;
mod cashier;
mod cli;
mod cluster;
mod cluster_faults;
mod config;
mod convergence;
mod drafts;
mod fake_erp;
mod faults;
mod hardening;
mod jobs;
mod limits;
mod open_network;
mod openapi;
mod pending_orders;
mod postgres;
mod presence;
mod promises;
mod proxy;
mod publish;
mod realtime;
mod receipts;
mod replay;
mod schemathesis;
mod shutdown;
